"""The method contract and the registry every method joins.

A method is a small stateless class that declares everything about itself:

=========================  ===================================================================
member                     what it says
=========================  ===================================================================
``name``                   what users pass as ``method=``
``domain``                 ``"spatial"`` or ``"frequency"``: where the products happen
``exact_sums``             it only multiplies and adds input values (exact on integers)
``native_padding_modes``   padding modes it applies itself (the plan pads for the others)
``unsupported_reason``     why it cannot run a spec, or ``None``
``workspace_bytes``        scratch memory one call needs beyond its inputs and output
``forward``                ``y`` (no bias)
``backward_input``         ``dx``
``backward_weight``        ``dw``
``backward_both``          ``(dx, dw)`` together; optional (default: the two passes)
``cost``                   predicted seconds of a pass, by phase, from the spec and priced terms
``error_bound``            bound on its normwise relative error for a spec; optional
=========================  ===================================================================

It receives a validated :class:`~convlab.problem.ConvSpec` whose
``padding_mode`` is one of its ``native_padding_modes`` and real arrays
already converted to ``spec.dtype``; it never re-checks user input and never
writes into its input arrays.

Three input classes are handled here, once for every method, around its own
passes (``run_forward`` and its backward twins):

* complex arrays: every pass is bilinear, so it runs on the real and
  imaginary parts (``(ar + i ai)(br + i bi) = ar br - ai bi + i (ar bi + ai br)``,
  four real passes, two when one argument is real);
* empty problems (N, C_in or C_out is 0): the result is zeros of the right
  shape (an empty sum), without calling the method;
* integer and bool inputs (``integral=True``): the exact integer result. A
  method with ``exact_sums`` computes it exactly while a bound on every
  partial sum stays below 2**53; any other method's result is rounded while
  the bound keeps its error below 1/4 (:data:`ROUNDED_BOUND`), and beyond
  that the pass runs by ``direct``. A bound at or beyond 2**53 raises
  :class:`~convlab.ConvError`: float64 cannot hold the result exactly.

To add a method, subclass :class:`Method`, fill in the table above, and
decorate the class with :func:`register`. That is all it takes to join
``method=`` choices, ``method="auto"``'s candidates (priced by its own
``cost``), the report (placed by its ``domain``) and the shared test suite.
:func:`verdicts` answers, for every caller, "which methods can run this spec
within its workspace limit, and why not the others".
"""

from __future__ import annotations

import abc
import dataclasses
import math
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import ConvError, WorkspaceLimitError
from ..padding import pad, pad_adjoint
from ..phases import PHASES
from ..problem import ConvSpec
from ..threads import blas_threads_for
from ..tolerances import tolerance
from .costs import CostTerms

__all__ = ["Method", "Verdict", "WeightDerived", "DOMAINS", "PASSES", "check_pass", "register", "unregister",
           "get_method", "methods", "verdicts", "verdict", "runnable", "require_workspace", "EXACT_INTEGER_LIMIT",
           "ROUNDED_BOUND"]

DOMAINS = frozenset({"spatial", "frequency"})
#: Integers float64 holds exactly: sums of products of integer inputs stay exact below this.
EXACT_INTEGER_LIMIT = 2.0 ** 53
#: A result bounded by this in magnitude has a float64 error (at most the tolerance times the bound,
#: the accuracy every method is tested to) below 1/4, so rounding it gives the exact integer.
ROUNDED_BOUND = 0.25 / tolerance(np.float64)

#: The three passes a plan runs, each with its own method choice (as cuDNN's forward,
#: backward-data and backward-filter algorithms).
PASSES = ("forward", "backward_input", "backward_weight")


def check_pass(pass_: object) -> str:
    """``pass_`` when it is one of :data:`PASSES`, else :class:`~convlab.ConvError` listing them."""
    if not isinstance(pass_, str) or pass_ not in PASSES:
        raise ConvError(f"pass_ must be one of {PASSES}, but got {pass_!r}")
    return pass_

_registry: dict[str, Method] = {}
_registry_lock = threading.Lock()


class Method(abc.ABC):
    """Base class of the convolution methods.

    Examples
    --------
    A 1-D method in a few lines — its forward pass, its two backward
    passes and its cost model — joins everything once registered:

    >>> import numpy as np, convlab as cl
    >>> from convlab.algorithms import Method, register, unregister
    >>> @register
    ... class Einsum1d(Method):
    ...     name, domain = "einsum1d", "spatial"
    ...     def unsupported_reason(self, spec):
    ...         if spec.ndim != 1 or spec.stride != (1,) or spec.dilation != (1,) or spec.groups != 1:
    ...             return "1-D, stride 1, dilation 1 and groups 1 only"
    ...     def forward(self, spec, x, w):
    ...         windows = np.lib.stride_tricks.sliding_window_view(spec.zero_pad(x), w.shape[2], axis=2)
    ...         return np.einsum("ncpk,ock->nop", windows, w)
    ...     def backward_input(self, spec, grad_y, w):
    ...         dxp = np.zeros((spec.batch, spec.in_channels, *spec.padded_size), spec.dtype)
    ...         for j in range(w.shape[2]):
    ...             dxp[:, :, j:j + grad_y.shape[2]] += np.einsum("nop,oc->ncp", grad_y, w[:, :, j])
    ...         return spec.crop_padding(dxp)
    ...     def backward_weight(self, spec, grad_y, x):
    ...         windows = np.lib.stride_tricks.sliding_window_view(spec.zero_pad(x), spec.kernel_size[0], axis=2)
    ...         return np.einsum("nop,ncpk->ock", grad_y, windows)
    ...     def cost(self, spec, terms, pass_="forward"):
    ...         # einsum runs at about GEMM speed here, and each pass does the same arithmetic
    ...         return {"pack": terms.call, "product": spec.flops / terms.peak}
    >>> x, w = np.arange(10.0).reshape(1, 2, 5), np.ones((3, 2, 2))
    >>> bool(np.allclose(cl.conv(x, w, padding=1, method="einsum1d"), cl.conv(x, w, padding=1, method="direct")))
    True
    >>> "einsum1d" in cl.methods(), cl.get_method("einsum1d").domain
    (True, 'spatial')
    >>> from convlab.algorithms import DEFAULT_CONSTANTS, CostTerms
    >>> terms = CostTerms(DEFAULT_CONSTANTS["float64"], "float64")
    >>> sorted(cl.get_method("einsum1d").predict_phases(cl.spec(x.shape, w.shape, padding=1), terms))
    ['pack', 'product']
    >>> unregister("einsum1d")
    """

    name: ClassVar[str]
    domain: ClassVar[str]
    native_padding_modes: ClassVar[frozenset[str]] = frozenset({"zeros"})
    #: True when every value is a sum of products of input values (no transforms): exact on integers
    #: below 2**53. False (the safe default) means the integer results are rounded or recomputed.
    exact_sums: ClassVar[bool] = False

    def unsupported_reason(self, spec: ConvSpec) -> str | None:
        """Why this method cannot run ``spec``, or ``None`` when it can."""
        return None

    def supports(self, spec: ConvSpec) -> bool:
        """True when the method can run ``spec``."""
        return self.unsupported_reason(spec) is None

    def workspace_bytes(self, spec: ConvSpec) -> int:
        """Scratch memory one call needs beyond its inputs and output, in bytes: a function of the spec
        (and of ``spec.limit``, when the method chunks to fit it) only, as :func:`verdict` keeps the answer."""
        return 0

    def inner_spec(self, spec: ConvSpec) -> ConvSpec:
        """The spec this method runs: ``spec`` itself, or for a padding mode it does not
        apply natively, a valid convolution of the explicitly padded input."""
        return spec if spec.padding_mode in self.native_padding_modes else spec.explicitly_padded()

    @abc.abstractmethod
    def forward(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Return ``y`` of shape ``spec.output_shape`` (no bias)."""

    @abc.abstractmethod
    def backward_input(self, spec: ConvSpec, grad_y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Return ``dx`` of shape ``spec.x_shape``."""

    @abc.abstractmethod
    def backward_weight(self, spec: ConvSpec, grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Return ``dw`` of shape ``spec.w_shape``."""

    def backward_both(self, spec: ConvSpec, grad_y: np.ndarray, x: np.ndarray,
                      w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(dx, dw)``: by default the two passes one after the other. A method whose two
        backward passes share work on ``grad_y`` (the FFT methods transform it once) overrides this;
        :meth:`ConvPlan.backward <convlab.ConvPlan.backward>` calls it when one method runs both."""
        return self.backward_input(spec, grad_y, w), self.backward_weight(spec, grad_y, x)

    @abc.abstractmethod
    def cost(self, spec: ConvSpec, terms: CostTerms, pass_: str = "forward") -> Mapping[str, float]:
        """Predicted seconds of one pass on ``spec`` (already this method's inner spec), by phase.

        Parameters
        ----------
        spec : ConvSpec
            In one of the method's ``native_padding_modes``.
        terms : CostTerms
            The machine's priced terms (GEMMs, streaming passes, gathers, FFTs).
        pass_ : {"forward", "backward_input", "backward_weight"}
            Which pass to predict.

        Returns
        -------
        mapping of str to float
            ``{phase: seconds}`` over a subset of :data:`convlab.phases.PHASES`,
            mirroring what the pass runs (the phases it marks with
            :func:`convlab.phases.phase`).
        """

    def predict_phases(self, spec: ConvSpec, terms: CostTerms, pass_: str = "forward") -> dict[str, float]:
        """Predicted seconds of one pass on ``spec``, by phase, including the explicit padding (or its
        adjoint) when the plan pads for this method.

        Raises ``TypeError`` naming the method when its :meth:`cost` returns a phase outside
        :data:`convlab.phases.PHASES` or a negative or non-finite time.

        Examples
        --------
        >>> import convlab as cl
        >>> from convlab.algorithms import DEFAULT_CONSTANTS, CostTerms
        >>> s = cl.spec((8, 16, 32, 32), (32, 16, 3, 3), padding=1)
        >>> phases = cl.get_method("im2col").predict_phases(s, CostTerms(DEFAULT_CONSTANTS["float32"], s.dtype))
        >>> sorted(phases)
        ['pack', 'product']
        """
        check_pass(pass_)
        if spec.empty:
            return {}  # the zeros are made without running the method
        inner = self.inner_spec(spec)
        phases: dict[str, float] = {}
        for name, seconds in self.cost(inner, terms, pass_).items():
            seconds = float(seconds)
            if name not in PHASES or not (math.isfinite(seconds) and seconds >= 0):
                raise TypeError(f"{type(self).__name__}.cost must map phases of {PHASES} to seconds >= 0, "
                                f"but returned {name!r}: {seconds!r}")
            phases[name] = phases.get(name, 0.0) + seconds
        if inner is not spec:  # the plan's padded copy of x (forward, dw) or the adjoint fold of dx (dx)
            phases["pad"] = phases.get("pad", 0.0) + terms.copy(math.prod(inner.x_shape))
        if spec.is_complex:  # four real passes (see run_forward)
            phases = {name: 4 * seconds for name, seconds in phases.items()}
        return phases

    def predict_seconds(self, spec: ConvSpec, terms: CostTerms, pass_: str = "forward") -> float:
        """Predicted seconds of one pass on ``spec``: the sum of :meth:`predict_phases`."""
        return float(sum(self.predict_phases(spec, terms, pass_).values()))

    def needs_compiled_kernels(self, spec: ConvSpec, pass_: str = "forward") -> bool:
        """Whether ``pass_`` on ``spec`` (already this method's inner spec) runs compiled (numba) kernels
        for finite inputs; ``False`` unless the method says so. ``method="auto"`` runs the first calls of
        a pass whose kernels are not loaded in the process yet by a method that needs none, while they load
        in the background (:meth:`ConvPlan.forward <convlab.ConvPlan.forward>`).

        Examples
        --------
        >>> import convlab as cl
        >>> s = cl.spec((1, 1, 64, 64), (1, 1, 5, 5))
        >>> cl.get_method("winograd").needs_compiled_kernels(s), cl.get_method("fft").needs_compiled_kernels(s)
        (True, False)
        """
        return False

    def error_bound(self, spec: ConvSpec, pass_: str = "forward") -> float | None:
        """A bound on the normwise relative error (:func:`convlab.tolerances.relative_error`) of
        ``pass_`` on ``spec`` (already this method's inner spec), or ``None`` when the method
        computes plain sums of products (then it is within the dtype's tolerance by construction).

        A function of the shapes and dtype only, for inputs whose entries are of
        comparable magnitude: ``method="auto"`` chooses before it sees any data.
        """
        return None

    def accuracy_reason(self, spec: ConvSpec, pass_: str = "forward") -> str | None:
        """Why ``method="auto"`` must not pick this method for ``pass_`` on ``spec`` (its
        :meth:`error_bound` exceeds :func:`convlab.tolerances.tolerance` of ``spec.dtype``), or ``None``."""
        if spec.empty:
            return None  # the zeros are made without running the method
        bound = self.error_bound(self.inner_spec(spec), check_pass(pass_))
        tol = tolerance(spec.dtype)
        if bound is not None and bound > tol:
            return (f"{pass_} error bound {bound:.2g} exceeds the {spec.dtype} tolerance {tol:.2g} "
                    f"(method={self.name!r} still runs it when named)")
        return None

    # ----- running a pass on any spec: the padding modes the method does not apply itself are
    # applied (and, for dx, folded back by the exact adjoint) around the method's own pass; complex,
    # empty and integer inputs are handled once here for every method (see the module docstring)
    def run_forward(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, *, integral: bool = False) -> np.ndarray:
        """``y`` (no bias) for ``spec`` in any padding mode; arrays already of ``spec.result_dtype``.

        ``integral=True`` says the arrays hold integers (converted from integer or bool
        inputs): the result is then the exact integer-valued one.
        """
        return self._run("forward", spec, x, w, integral, spec.output_shape)

    def run_backward_input(self, spec: ConvSpec, grad_y: np.ndarray, w: np.ndarray, *,
                           integral: bool = False) -> np.ndarray:
        """``dx`` for ``spec`` in any padding mode (the adjoint of the forward map in ``x``: bilinear,
        with no conjugation; :class:`~convlab.ConvPlan` conjugates ``w`` for PyTorch's complex gradient)."""
        return self._run("backward_input", spec, grad_y, w, integral, spec.x_shape)

    def run_backward_weight(self, spec: ConvSpec, grad_y: np.ndarray, x: np.ndarray, *,
                            integral: bool = False) -> np.ndarray:
        """``dw`` for ``spec`` in any padding mode (bilinear, as :meth:`run_backward_input`)."""
        return self._run("backward_weight", spec, grad_y, x, integral, spec.w_shape)

    def run_backward_both(self, spec: ConvSpec, grad_y: np.ndarray, x: np.ndarray, w: np.ndarray, *,
                          integral: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(dx, dw)`` as :meth:`run_backward_input` and :meth:`run_backward_weight`, by :meth:`backward_both`
        for real non-integer arrays (complex, empty and integer problems run the two passes one by one)."""
        if spec.empty or integral or any(np.iscomplexobj(a) for a in (grad_y, x, w)):
            return (self.run_backward_input(spec, grad_y, w, integral=integral),
                    self.run_backward_weight(spec, grad_y, x, integral=integral))
        inner = self.inner_spec(spec)
        require_workspace(spec, self.name)
        with blas_threads_for(spec.flops):
            dx, dw = self.backward_both(inner, grad_y, x if inner is spec else pad(x, spec.padding, spec.padding_mode),
                                        w)
        return (dx if inner is spec else pad_adjoint(dx, spec.padding, spec.padding_mode)), dw

    def _run(self, kind: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray, integral: bool,
             shape: tuple) -> np.ndarray:
        if spec.empty:
            return np.zeros(shape, spec.result_dtype)
        if np.iscomplexobj(a) or np.iscomplexobj(b):
            return _by_parts(lambda p, q: self._run(kind, spec, p, q, False, shape), a, b, spec.result_dtype)
        if integral:
            return _exact_integers(self, kind, spec, a, b)
        return self._run_real(kind, spec, a, b)

    def _run_real(self, kind: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        inner = self.inner_spec(spec)
        require_workspace(spec, self.name)
        with blas_threads_for(spec.flops):  # one BLAS thread where threading cannot pay (convlab.threads)
            if kind == "forward":  # a = x, b = w
                return self.forward(inner, a if inner is spec else pad(a, spec.padding, spec.padding_mode), b)
            if kind == "backward_input":  # a = grad_y, b = w
                dx = self.backward_input(inner, a, b)
                return dx if inner is spec else pad_adjoint(dx, spec.padding, spec.padding_mode)
            # backward_weight: a = grad_y, b = x
            return self.backward_weight(inner, a, b if inner is spec else pad(b, spec.padding, spec.padding_mode))

    def __repr__(self) -> str:
        return f"<convlab method {self.name!r} ({self.domain})>"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether one method can run one spec within its workspace limit.

    Attributes
    ----------
    method : str
    reason : str or None
        Why it cannot (unsupported, or over the workspace limit); ``None`` when it can.
    workspace : int or None
        Its workspace estimate in bytes, when it supports the spec.
    """

    method: str
    reason: str | None
    workspace: int | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def verdict(spec: ConvSpec, name: str) -> Verdict:
    """:class:`Verdict` of method ``name`` on ``spec`` (``name`` must be registered).

    Kept on the spec per method instance and workspace limit (both methods'
    answers are functions of those): every run of a plan asks again.
    """
    impl = get_method(name)
    limit = spec.limit
    return spec.cached(("convlab.verdict", impl, limit), lambda: _verdict(spec, impl, name, limit))


def _verdict(spec: ConvSpec, impl: Method, name: str, limit: int) -> Verdict:
    inner = impl.inner_spec(spec)
    reason = impl.unsupported_reason(inner)
    if reason is not None:
        return Verdict(name, reason, None)
    if spec.empty:  # nothing to compute: the result is zeros, made without running the method
        return Verdict(name, None, 0)
    needed = int(impl.workspace_bytes(inner))
    if needed > limit:
        return Verdict(name, f"needs {needed} bytes of workspace, over the limit of {limit}", needed)
    return Verdict(name, None, needed)


def verdicts(spec: ConvSpec) -> tuple[Verdict, ...]:
    """Every registered method's :class:`Verdict` on ``spec``, in registration order.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> from convlab.algorithms import verdicts
    >>> s = cl.spec((1, 1, 16, 16), (1, 1, 3, 3), stride=2)
    >>> {v.method: v.reason for v in verdicts(s)}["winograd"]
    'stride=(2, 2): Winograd tiles need stride 1 in every dim'
    """
    return tuple(verdict(spec, name) for name in methods())


def runnable(spec: ConvSpec) -> tuple[str, ...]:
    """Names of the registered methods that support ``spec`` and fit its workspace limit."""
    return tuple(v.method for v in verdicts(spec) if v.ok)


def require_workspace(spec: ConvSpec, name: str) -> None:
    """Raise :class:`WorkspaceLimitError` (naming the methods that fit) when ``name`` exceeds the limit."""
    v = verdict(spec, name)
    if v.workspace is not None and v.workspace > spec.limit:
        raise WorkspaceLimitError(name, v.workspace, spec.limit, runnable(spec))


class WeightDerived:
    """Values a method derives from the weights (spectra, Winograd transforms), kept per spec
    and recomputed only when the weights change.

    Training loops and repeated inference call a plan again and again with the
    same weights; comparing ``w`` with a private copy costs ``O(|w|)``, far
    less than a transform. Keep one instance per spec (``spec.cached``).
    """

    def __init__(self) -> None:
        self.entry: tuple[np.ndarray | None, dict] = (None, {})

    def get(self, w: np.ndarray, kind: Hashable, factory: Callable[[], Any]) -> Any:
        """``factory()`` for ``kind``, computed once per distinct ``w``."""
        weights, derived = self.entry  # one atomic read: another thread may replace the entry
        if weights is None or weights.shape != w.shape or not np.array_equal(weights, w):
            weights, derived = w.copy(), {}
            self.entry = (weights, derived)
        if kind not in derived:
            derived[kind] = factory()
        return derived[kind]


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a :class:`Method` subclass to the registry under ``cls.name``.

    Registering is all a new method needs to join ``method=`` choices, ``"auto"``'s
    candidates, the report and the shared test suite; see :class:`Method` for an example.
    """
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"register expects a Method subclass, but got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name == "auto":
        raise TypeError(f"{cls.__name__}.name must be a non-empty str other than 'auto', but got {name!r}")
    domain = getattr(cls, "domain", None)
    if domain not in DOMAINS:
        raise TypeError(f"{cls.__name__}.domain must be one of {sorted(DOMAINS)}, but got {domain!r}")
    instance = cls()  # abstract members left out fail here, naming them
    with _registry_lock:
        _registry[name] = instance
    return cls


def unregister(name: str) -> None:
    """Remove a method from the registry (used by tests of the registry)."""
    with _registry_lock:
        _registry.pop(name, None)


def methods() -> tuple[str, ...]:
    """Names of the registered methods, in registration order.

    Examples
    --------
    >>> import convlab as cl
    >>> "direct" in cl.methods()
    True
    """
    return tuple(_registry)


def get_method(name: str) -> Method:
    """The registered :class:`Method` instance called ``name``.

    Examples
    --------
    >>> import convlab as cl
    >>> s = cl.spec((1, 1, 16, 16), (1, 1, 3, 3), stride=2)
    >>> cl.get_method("winograd").unsupported_reason(s)
    'stride=(2, 2): Winograd tiles need stride 1 in every dim'
    >>> cl.get_method("fft").domain
    'frequency'
    """
    try:
        return _registry[name]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(m) for m in ("auto", *_registry))
        raise ConvError(f"method must be one of {{{allowed}}}, but got {name!r}") from None


# --------------------------------------------------------------- complex and integer inputs
def _by_parts(run: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray,
              dtype: np.dtype) -> np.ndarray:
    """A bilinear pass ``run`` of complex arrays, from real passes of their parts."""
    def parts(v):
        if not np.iscomplexobj(v):
            return v, None
        # contiguous copies: methods may assume C order, and .real/.imag of a complex array are strided views
        return np.ascontiguousarray(v.real), np.ascontiguousarray(v.imag)

    (ar, ai), (br, bi) = parts(a), parts(b)
    real = run(ar, br)
    result = np.empty(real.shape, dtype)
    if ai is not None and bi is not None:
        real -= run(ai, bi)
        imag = run(ar, bi)
        imag += run(ai, br)
    else:
        imag = run(ai, br) if ai is not None else run(ar, bi)
    result.real, result.imag = real, imag
    return result


def _integer_bound(kind: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray) -> float:
    """An upper bound on |every partial sum| of the pass ``kind`` on integer-valued ``a``, ``b``.

    Each output sums products in which every entry of one argument appears at
    most once (forward: each tap of w; dx: each tap of w, times the number of
    padded positions a padding mode folds onto one input; dw: each entry of
    grad_y), so ``max|a or x| * sum|other|`` bounds it, taken per output channel where that is cheap.
    """
    def amax(v):
        return float(np.max(np.abs(v))) if v.size else 0.0

    if kind == "forward":  # a = x, b = w: max|x| * max over o of sum|w[o]|
        bound = amax(a) * float(np.abs(b).reshape(b.shape[0], -1).sum(axis=1).max())
    elif kind == "backward_input":  # a = grad_y, b = w
        bound = amax(a) * float(np.abs(b).sum())
        if spec.padding_mode != "zeros":
            bound *= math.prod(1 + lo + hi for lo, hi in spec.padding)
    else:  # a = grad_y, b = x
        bound = amax(b) * float(np.abs(a).swapaxes(0, 1).reshape(a.shape[1], -1).sum(axis=1).max())
    # the float64 sums above are of integers, exact below 2**53 and otherwise off by far less than this margin
    return bound * (1 + 1e-9)


def _exact_integers(method: Method, kind: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The pass ``kind`` on integer-valued arrays, exactly (see the module docstring)."""
    bound = _integer_bound(kind, spec, a, b)
    if bound >= EXACT_INTEGER_LIMIT:
        raise ConvError(
            f"integer inputs: {kind} results may reach {bound:.4g} in magnitude (a bound from max|input| "
            f"times the sum of |weights|), at or beyond 2**53, the largest integer range float64 holds "
            f"exactly; convert the inputs to float64 to accept a rounded result"
        )
    if method.exact_sums:
        return method._run_real(kind, spec, a, b)
    if bound <= ROUNDED_BOUND:
        return np.rint(method._run_real(kind, spec, a, b))
    # too large for rounding to be safe: the exact reference method (as scipy's choose_conv_method)
    return get_method("direct")._run_real(kind, spec, a, b)
