"""The plan: a validated problem bound to the methods that run its three passes.

:func:`plan` is three steps, each owned by its layer: validate the
parameters into a :class:`~convlab.problem.ConvSpec` (:mod:`convlab.problem`),
choose a method for it (:mod:`convlab.tuning`, unless one is named), and bind
the two into a :class:`ConvPlan`. As cuDNN chooses forward, backward-data and
backward-filter algorithms separately, ``method="auto"`` chooses a method per
pass: the forward's when the plan is built, ``dx``'s and ``dw``'s on the first
backward call (a plan used only for inference never prices or times them). Running a plan checks the arrays against
the spec and hands them to the method (:meth:`Method.run_forward
<convlab.algorithms.Method.run_forward>` and its backward twins, which apply
the padding modes a method does not apply itself).

First calls: a method that runs compiled kernels (numba's, imported and loaded
on first use: a few tenths of a second, seconds to compile on a cold cache)
would make the first call of a process wait for them. With ``method="auto"``,
a pass whose chosen method needs kernels not loaded yet runs by the fastest
method predicted that needs none (:func:`convlab.tuning.first_call_substitute`,
only when that is predicted sooner than waiting), while one background thread
loads the chosen method's kernels by running that pass once on zeros; the
calls after that use the chosen method. The results agree within the dtype's
tolerance either way. A named ``method=`` always runs as named.
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from .algorithms import Method, check_pass, get_method, methods
from .config import get_autotune
from .errors import ConvError, ConvTypeError
from .kernels._runtime import load_in_background
from .problem import ConvSpec, as_array, check_array, check_autotune, is_integral
from .problem import spec as make_spec
from .tuning import choose_method, explicit_method, first_call_substitute, tuned_method
from .tuning.calibration import QUIET_WAIT, background_work, in_call, wait_until_quiet

__all__ = ["ConvPlan", "ConvGrads", "plan"]

ConvGrads = namedtuple("ConvGrads", ["dx", "dw", "db"])
ConvGrads.__doc__ = """Gradients of ``sum(grad_y * conv(x, w, b))``: ``dx``, ``dw`` and ``db``.

Shapes: ``dx`` that of ``x``, ``dw`` that of ``w``, ``db`` ``(C_out,)``.

Examples
--------
>>> import numpy as np, convlab as cl
>>> g = cl.conv_backward(np.ones((2, 3, 4)), np.ones((2, 1, 6)), np.ones((3, 1, 3)), method="direct")
>>> g.dx.shape, g.dw.shape, g.db.tolist()
((2, 1, 6), (3, 1, 3), [8.0, 8.0, 8.0])
"""

#: Attributes of the spec a plan answers for it (``plan.output_shape`` is ``plan.spec.output_shape``).
SPEC_ATTRIBUTES = frozenset({
    "x_shape", "w_shape", "dtype", "stride", "padding", "dilation", "groups", "padding_mode", "workspace_limit",
    "ndim", "batch", "in_channels", "out_channels", "input_size", "kernel_size", "padded_size",
    "dilated_kernel_size", "output_size", "output_shape", "key", "flops", "limit", "zero_pad", "crop_padding",
})


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ConvPlan:
    """A validated convolution problem bound to the methods that run its passes.

    Build it with :func:`convlab.plan`; it is immutable (but for the backward
    methods ``method="auto"`` resolves on first use) and safe to share
    between threads. Everything the methods precompute (FFTW plans, sparsity
    patterns, weight transforms) is cached on its spec and reused by every call.

    Attributes
    ----------
    spec : ConvSpec
        The problem; its attributes (``x_shape``, ``w_shape``, ``dtype``,
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``,
        ``output_shape``, ``flops``, ...) are also the plan's.
    method : str
        The resolved method of the forward pass (never ``"auto"``).
    backward_input_method, backward_weight_method : str or None
        The methods of ``dx`` and ``dw`` when fixed (a named ``method=`` fixes
        all three passes); ``None`` while ``method="auto"`` has not chosen them
        yet. :meth:`method_for` and :attr:`backward_methods` resolve them.
    autotune : bool
        Whether ``method="auto"`` measures (:mod:`convlab.tuning.autotune`)
        rather than predicts the backward passes' methods.
    auto : bool
        Whether ``method="auto"`` chose the methods: only then may a first call
        run another method while the chosen one's compiled kernels load (see
        the module docstring).

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((8, 16, 32, 32), (32, 16, 3, 3), np.float32, stride=2, padding=1, method="im2col")
    >>> p.output_shape, p.padding, p.method, p.dtype
    ((8, 32, 16, 16), ((1, 1), (1, 1)), 'im2col', dtype('float32'))
    >>> p.flops  # 2 per multiply-add of the direct algorithm
    18874368

    With ``method="auto"`` each pass has its own method:

    >>> q = cl.plan((8, 16, 32, 32), (32, 16, 3, 3), np.float32, padding=1)
    >>> all(q.method_for(p) in cl.methods() for p in ("forward", "backward_input", "backward_weight"))
    True
    >>> p.backward_methods
    ('im2col', 'im2col')
    """

    spec: ConvSpec
    method: str
    backward_input_method: str | None = None
    backward_weight_method: str | None = None
    autotune: bool = False
    auto: bool = False
    _chosen: dict = dataclasses.field(default_factory=dict)
    _ready: dict = dataclasses.field(default_factory=dict)  # {pass: True} once its method can run at once

    def __getattr__(self, name: str) -> Any:
        # only called for names the plan itself lacks: the spec's attributes
        if name in SPEC_ATTRIBUTES:
            return getattr(self.spec, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def implementation(self) -> Method:
        """The registered :class:`~convlab.algorithms.Method` that runs the forward pass."""
        return get_method(self.method)

    def method_for(self, pass_: str) -> str:
        """The method that runs ``pass_`` (``"forward"``, ``"backward_input"`` or ``"backward_weight"``).

        With ``method="auto"`` a backward pass's method is chosen on the first
        call (by the cost model, or measured when the plan autotunes), as
        :func:`convlab.choose_method` with ``pass_``, and kept.
        """
        if check_pass(pass_) == "forward":
            return self.method
        fixed = self.backward_input_method if pass_ == "backward_input" else self.backward_weight_method
        if fixed is not None:
            return fixed
        chosen = self._chosen.get(pass_)
        if chosen is None:  # two threads may both choose: the choice is deterministic, the store atomic
            chosen = tuned_method(self.spec, pass_) if self.autotune else choose_method(self.spec, pass_=pass_)
            self._chosen[pass_] = chosen
        return chosen

    def _runner(self, pass_: str) -> Method:
        """The method that runs this call of ``pass_``: :meth:`method_for`, or while its compiled kernels
        load in the background, the substitute (see the module docstring)."""
        method = self.method_for(pass_)
        if not self.auto or pass_ in self._ready:
            return get_method(method)
        # cached on the spec: one substitute and one background load per plan and pass, whatever the thread
        substitute = self.spec.cached(("convlab.first_call", method, pass_),
                                      lambda: first_call_substitute(self.spec, method, pass_))
        if substitute is None:
            self._ready[pass_] = True
            return get_method(method)
        loading = self.spec.cached(("convlab.first_call.loading", method, pass_),
                                   lambda: load_in_background(lambda: _warm(self.spec, method, pass_),
                                                              _AfterTheCalls()))
        if loading.is_set():
            self._ready[pass_] = True
            return get_method(method)
        return get_method(substitute)

    def __repr__(self) -> str:
        # backward methods not fixed show what auto chose so far, or "auto" (repr must not choose: it could time)
        passes = {p: getattr(self, f"{p}_method") or self._chosen.get(p, "auto")
                  for p in ("backward_input", "backward_weight")}
        return (f"ConvPlan(spec={self.spec!r}, method={self.method!r}, backward_input_method="
                f"{passes['backward_input']!r}, backward_weight_method={passes['backward_weight']!r}, "
                f"autotune={self.autotune!r})")

    @property
    def backward_methods(self) -> tuple[str, str]:
        """``(method of dx, method of dw)``, choosing them now if ``method="auto"`` has not yet."""
        return self.method_for("backward_input"), self.method_for("backward_weight")

    @property
    def inner(self) -> ConvSpec:
        """The spec the forward's method itself runs (see :meth:`Method.inner_spec
        <convlab.algorithms.Method.inner_spec>`)."""
        return self.implementation.inner_spec(self.spec)

    def cached(self, key: Hashable, factory: Callable[[], Any]) -> Any:
        """The spec's cache (:meth:`ConvSpec.cached <convlab.problem.ConvSpec.cached>`)."""
        return self.spec.cached(key, factory)

    def with_method(self, method: str) -> ConvPlan:
        """The same problem with all three passes run by ``method`` (checked to support it)."""
        method = explicit_method(self.spec, method)
        return ConvPlan(self.spec, method, method, method)

    # ----- running it
    def forward(self, x: Any, w: Any, bias: Any = None) -> np.ndarray:
        """Compute ``y = conv(x, w) + bias``.

        Parameters
        ----------
        x : array_like, shape ``x_shape``
        w : array_like, shape ``w_shape``
        bias : array_like, shape ``(C_out,)``, optional

        Returns
        -------
        y : ndarray, shape ``output_shape``, dtype ``result_dtype``
            For integer or bool inputs (and bias), float64 holding the exact
            integer result; :class:`~convlab.ConvError` when a bound on it
            reaches 2**53, beyond which float64 cannot hold every integer.
        """
        s = self.spec
        integral = is_integral(*(as_array(n, v) for n, v in (("x", x), ("w", w), ("bias", bias)) if v is not None))
        x = check_array("x", x, s.x_shape, s.result_dtype)
        w = check_array("w", w, s.w_shape, s.result_dtype)
        b = None if bias is None else check_array("bias", bias, (s.out_channels,), s.result_dtype)
        with in_call():
            y = self._runner("forward").run_forward(s, x, w, integral=integral)
        if b is not None:
            if integral and y.size and float(np.abs(y).max()) + float(np.abs(b).max()) >= 2.0 ** 53:
                raise ConvError("integer inputs: y + bias may reach 2**53, beyond the integers float64 holds "
                                "exactly; convert the inputs to float64 to accept a rounded result")
            y += b.reshape((-1,) + (1,) * s.ndim)
        return y

    # Complex gradients follow PyTorch: for y = conv(x, w), the gradient of a real loss L with
    # respect to x is conj(dL/dx) in Wirtinger terms, i.e. the adjoint map applied with conj(w).
    def backward_input(self, grad_y: Any, w: Any) -> np.ndarray:
        """``dx``: the gradient of ``sum(grad_y * conv(x, w))`` with respect to ``x``.

        For complex problems, PyTorch's convention: the transposed convolution
        of ``grad_y`` with ``conj(w)``.
        """
        s = self.spec
        integral = is_integral(as_array("grad_y", grad_y), as_array("w", w))
        grad_y = check_array("grad_y", grad_y, s.output_shape, s.result_dtype)
        w = check_array("w", w, s.w_shape, s.result_dtype)
        with in_call():
            return self._runner("backward_input").run_backward_input(s, grad_y, np.conj(w) if s.is_complex else w,
                                                                     integral=integral)

    def backward_weight(self, grad_y: Any, x: Any) -> np.ndarray:
        """``dw``: the gradient of ``sum(grad_y * conv(x, w))`` with respect to ``w``.

        For complex problems, PyTorch's convention: the correlation of
        ``grad_y`` with ``conj(x)``.
        """
        s = self.spec
        integral = is_integral(as_array("grad_y", grad_y), as_array("x", x))
        grad_y = check_array("grad_y", grad_y, s.output_shape, s.result_dtype)
        x = check_array("x", x, s.x_shape, s.result_dtype)
        with in_call():
            return self._runner("backward_weight").run_backward_weight(s, grad_y, np.conj(x) if s.is_complex else x,
                                                                       integral=integral)

    def backward(self, grad_y: Any, x: Any, w: Any) -> ConvGrads:
        """Gradients of ``sum(grad_y * conv(x, w, b))``.

        Returns
        -------
        ConvGrads
            Named tuple ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``(C_out,)``.
        """
        s = self.spec
        grad_y = as_array("grad_y", grad_y)  # its own dtype kept: integer inputs get exact integer passes
        g = check_array("grad_y", grad_y, s.output_shape, s.result_dtype)
        # accumulated in float64: a sum over the batch and positions can cancel to far below its terms
        wide = np.complex128 if s.is_complex else np.float64
        db = g.sum(axis=(0, *range(2, g.ndim)), dtype=wide).astype(s.result_dtype)
        method = self._runner("backward_input")
        integral = is_integral(grad_y, as_array("w", w))
        if method is not self._runner("backward_weight") or integral != is_integral(grad_y, as_array("x", x)):
            return ConvGrads(self.backward_input(grad_y, w), self.backward_weight(grad_y, x), db)
        # one method runs both passes: it may share work between them (Method.backward_both)
        x = check_array("x", x, s.x_shape, s.result_dtype)
        w = check_array("w", w, s.w_shape, s.result_dtype)
        if s.is_complex:
            x, w = np.conj(x), np.conj(w)
        with in_call():
            dx, dw = method.run_backward_both(s, g, x, w, integral=integral)
        return ConvGrads(dx, dw, db)


def plan(x_shape: Any, w_shape: Any, dtype: Any = np.float64, *, stride: Any = 1, padding: Any = 0,
         dilation: Any = 1, groups: Any = 1, padding_mode: str = "zeros", method: str = "auto",
         workspace_limit: int | None = None, autotune: bool | None = None) -> ConvPlan:
    """Validate a convolution problem once and return a reusable :class:`ConvPlan`.

    Parameters
    ----------
    x_shape : tuple of int
        ``(N, C_in, *spatial)`` with 1, 2 or 3 spatial dims.
    w_shape : tuple of int
        ``(C_out, C_in // groups, *kernel)``.
    dtype : dtype, default float64
        Input dtype; the plan computes in :func:`~convlab.problem.compute_dtype` of it.
    stride, dilation : int or tuple of int
    padding : int, tuple of int, tuple of (int, int), or {"valid", "same", "full"}
    groups : int
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
    method : str
        A name from :func:`convlab.methods`, which then runs all three passes,
        or ``"auto"``: each pass (``y``, ``dx``, ``dw``) gets the method chosen
        for it (see :meth:`ConvPlan.method_for`).
    workspace_limit : int, optional
        Bytes of scratch memory the method may use; default: the global limit.
    autotune : bool, optional
        For ``method="auto"``: time the candidates of each pass once and keep
        the fastest (:mod:`convlab.tuning.autotune`) instead of asking the cost
        model (:func:`convlab.choose_method`). Default: :func:`convlab.get_autotune`.

    Returns
    -------
    ConvPlan

    Raises
    ------
    ConvError, ConvTypeError
        When any parameter is invalid; the message names it.
    UnsupportedPlanError
        When the named method cannot run the problem.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((2, 3, 32, 32), (8, 3, 5, 5), np.float32, padding="same", method="direct")
    >>> p.output_shape, p.padding
    ((2, 8, 32, 32), ((2, 2), (2, 2)))
    >>> x = np.ones((2, 3, 32, 32), np.float32); w = np.ones((8, 3, 5, 5), np.float32)
    >>> float(p.forward(x, w)[0, 0, 16, 16])
    75.0
    """
    spec = make_spec(x_shape, w_shape, dtype, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     padding_mode=padding_mode, workspace_limit=workspace_limit)
    autotune = check_autotune(autotune)
    if not isinstance(method, str):
        raise ConvTypeError(f"method must be a str, one of {('auto', *methods())}, but got {method!r}")
    if method != "auto":
        method = explicit_method(spec, method)  # unknown names fail listing the known ones
        return ConvPlan(spec, method, method, method)
    measure = get_autotune() if autotune is None else autotune
    return ConvPlan(spec, tuned_method(spec) if measure else choose_method(spec), autotune=bool(measure), auto=True)


class _AfterTheCalls:
    """Around a background load: after the other background work, and after the passes running now (the
    import of numba holds the interpreter lock for most of its few tenths of a second: a pass running
    alongside would wait for it between its BLAS and FFT calls)."""

    def __enter__(self):
        background_work().acquire()
        wait_until_quiet(QUIET_WAIT)  # past it, load anyway: a busy program needs the kernels all the more

    def __exit__(self, *exc):
        background_work().release()


def _warm(spec: ConvSpec, method: str, pass_: str) -> None:
    """Run ``pass_`` of ``method`` once on zeros of ``spec``'s shapes: numba loads (or compiles) exactly the
    kernels the pass runs, in the variant (parallel or serial) its calls get. On a copy of the spec, so
    that nothing it caches (weight transforms of zeros) displaces the plan's own."""
    twin = dataclasses.replace(spec)
    dtype = spec.result_dtype
    impl = get_method(method)
    if pass_ == "forward":
        impl.run_forward(twin, np.zeros(spec.x_shape, dtype), np.zeros(spec.w_shape, dtype))
    elif pass_ == "backward_input":
        impl.run_backward_input(twin, np.zeros(spec.output_shape, dtype), np.zeros(spec.w_shape, dtype))
    else:
        impl.run_backward_weight(twin, np.zeros(spec.output_shape, dtype), np.zeros(spec.x_shape, dtype))
