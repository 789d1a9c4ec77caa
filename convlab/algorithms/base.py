"""The method contract and the registry every method joins.

A method is a small stateless class that declares everything about itself:

=========================  ===================================================================
member                     what it says
=========================  ===================================================================
``name``                   what users pass as ``method=``
``domain``                 ``"spatial"`` or ``"frequency"``: where the products happen
``native_padding_modes``   padding modes it applies itself (the plan pads for the others)
``unsupported_reason``     why it cannot run a spec, or ``None``
``workspace_bytes``        scratch memory one call needs beyond its inputs and output
``forward``                ``y`` (no bias)
``backward_input``         ``dx``
``backward_weight``        ``dw``
``cost``                   predicted forward seconds, from the spec and priced cost terms
``pass_cost``              predicted seconds of one pass (forward, ``dx`` or ``dw``); optional
``error_bound``            bound on its normwise relative error for a spec; optional
=========================  ===================================================================

It receives a validated :class:`~convlab.problem.ConvSpec` whose
``padding_mode`` is one of its ``native_padding_modes`` and arrays already
converted to ``spec.dtype``; it never re-checks user input and never writes
into its input arrays.

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
from collections.abc import Callable, Hashable
from typing import Any, ClassVar

import numpy as np

from ..errors import ConvError, WorkspaceLimitError
from ..padding import pad, pad_adjoint
from ..problem import ConvSpec
from ..threads import blas_threads_for
from ..tolerances import tolerance
from .costs import CostTerms

__all__ = ["Method", "Verdict", "WeightDerived", "DOMAINS", "PASSES", "check_pass", "register", "unregister",
           "get_method", "methods", "verdicts", "verdict", "runnable", "require_workspace"]

DOMAINS = frozenset({"spatial", "frequency"})

#: The three passes a plan runs, each with its own method choice (as cuDNN's forward,
#: backward-data and backward-filter algorithms).
PASSES = ("forward", "backward_input", "backward_weight")


def check_pass(pass_: object) -> str:
    """``pass_`` when it is one of :data:`PASSES`, else :class:`~convlab.ConvError` listing them."""
    if not isinstance(pass_, str) or pass_ not in PASSES:
        raise ConvError(f"pass_ must be one of {PASSES}, but got {pass_!r}")
    return pass_


def _seconds(value: Any) -> float:
    """A cost as seconds: a number, or the sum of a ``{phase: seconds}`` mapping."""
    return float(sum(value.values())) if isinstance(value, dict) else float(value)

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
    ...     def cost(self, spec, terms):
    ...         return terms.call + spec.flops / terms.peak  # einsum runs at about GEMM speed here
    >>> x, w = np.arange(10.0).reshape(1, 2, 5), np.ones((3, 2, 2))
    >>> bool(np.allclose(cl.conv(x, w, padding=1, method="einsum1d"), cl.conv(x, w, padding=1, method="direct")))
    True
    >>> "einsum1d" in cl.methods(), cl.get_method("einsum1d").domain
    (True, 'spatial')
    >>> unregister("einsum1d")
    """

    name: ClassVar[str]
    domain: ClassVar[str]
    native_padding_modes: ClassVar[frozenset[str]] = frozenset({"zeros"})

    def unsupported_reason(self, spec: ConvSpec) -> str | None:
        """Why this method cannot run ``spec``, or ``None`` when it can."""
        return None

    def supports(self, spec: ConvSpec) -> bool:
        """True when the method can run ``spec``."""
        return self.unsupported_reason(spec) is None

    def workspace_bytes(self, spec: ConvSpec) -> int:
        """Scratch memory one call needs beyond its inputs and output, in bytes."""
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

    @abc.abstractmethod
    def cost(self, spec: ConvSpec, terms: CostTerms) -> float:
        """Predicted seconds of one forward pass on ``spec`` (already this method's inner spec).

        Built from ``terms`` (GEMMs, streaming passes, gathers, FFTs priced
        by the machine's constants), mirroring what :meth:`forward` runs.
        """

    def pass_cost(self, spec: ConvSpec, terms: CostTerms, pass_: str = "forward") -> float:
        """Predicted seconds of one pass on ``spec`` (already this method's inner spec).

        ``pass_`` is one of :data:`PASSES`. The default prices either backward
        pass as the forward: each has the forward's multiply-adds and, for the
        methods here, the same transforms in the other direction. A method whose
        backward passes run differently (another product shape, a scatter-add
        instead of a gather) overrides this, so that ``method="auto"`` can choose
        another method for ``dx`` or ``dw`` than for ``y``.
        """
        return _seconds(self.cost(spec, terms))

    def predict_seconds(self, spec: ConvSpec, terms: CostTerms, pass_: str = "forward") -> float:
        """Predicted seconds of ``pass_`` on ``spec``, including the explicit padding copy (or, for
        ``dx``, its adjoint fold) when the plan pads for this method."""
        inner = self.inner_spec(spec)
        seconds = _seconds(self.pass_cost(inner, terms, check_pass(pass_)))
        if inner is not spec:
            seconds += terms.copy(math.prod(inner.x_shape))
        return seconds

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
        bound = self.error_bound(self.inner_spec(spec), check_pass(pass_))
        tol = tolerance(spec.dtype)
        if bound is not None and bound > tol:
            return (f"{pass_} error bound {bound:.2g} exceeds the {spec.dtype} tolerance {tol:.2g} "
                    f"(method={self.name!r} still runs it when named)")
        return None

    # ----- running a pass on any spec: the padding modes the method does not apply itself are
    # applied (and, for dx, folded back by the exact adjoint) around the method's own pass
    def run_forward(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``y`` (no bias) for ``spec`` in any padding mode; arrays already of ``spec.dtype``."""
        inner = self.inner_spec(spec)
        require_workspace(spec, self.name)
        if inner is not spec:
            x = pad(x, spec.padding, spec.padding_mode)
        with blas_threads_for(spec.flops):  # one BLAS thread where threading cannot pay (convlab.threads)
            return self.forward(inner, x, w)

    def run_backward_input(self, spec: ConvSpec, grad_y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``dx`` for ``spec`` in any padding mode."""
        inner = self.inner_spec(spec)
        require_workspace(spec, self.name)
        with blas_threads_for(spec.flops):
            dx = self.backward_input(inner, grad_y, w)
        return dx if inner is spec else pad_adjoint(dx, spec.padding, spec.padding_mode)

    def run_backward_weight(self, spec: ConvSpec, grad_y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``dw`` for ``spec`` in any padding mode."""
        inner = self.inner_spec(spec)
        require_workspace(spec, self.name)
        if inner is not spec:
            x = pad(x, spec.padding, spec.padding_mode)
        with blas_threads_for(spec.flops):
            return self.backward_weight(inner, grad_y, x)

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
    """:class:`Verdict` of method ``name`` on ``spec`` (``name`` must be registered)."""
    impl = get_method(name)
    inner = impl.inner_spec(spec)
    reason = impl.unsupported_reason(inner)
    if reason is not None:
        return Verdict(name, reason, None)
    needed = int(impl.workspace_bytes(inner))
    if needed > spec.limit:
        return Verdict(name, f"needs {needed} bytes of workspace, over the limit of {spec.limit}", needed)
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
