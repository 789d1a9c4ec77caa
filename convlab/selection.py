"""Choosing a method for ``method="auto"``: a cost model, never a stopwatch.

:func:`choose_method` predicts the forward time of every registered method
that supports the plan and fits its workspace limit, and returns the
cheapest. Predictions are sums of a few terms, each priced by a constant of
the running machine (a :class:`Calibration`, measured by
``convlab calibrate`` and stored in the user cache dir, or built-in
defaults):

=================  ================================================  ==========================
term               time                                              constants
=================  ================================================  ==========================
GEMM ``m×k×n``     ``call + max(2mkn / (peak·e), bytes / bandwidth)``  ``peak``, ``gemm_half``
                   with ``e = Π_d d / (d + gemm_half)`` over
                   ``d ∈ {m, k, n}`` (small matrices run below peak)
copy of ``b``      ``call + 2b / bandwidth`` (read and write)        ``bandwidth``, ``call``
bytes
real FFT,          ``call + count · P · log2 P · fft_point``         ``fft_point``
``count × P``
sparse product     ``call + nnz_products · sparse_op``               ``sparse_op``
Python loop        ``iterations · call``                             ``call``
=================  ================================================  ==========================

Each known method is a sum of such terms, mirroring what it runs (see
``_MODELS``): *direct* one strided window copy and one batched GEMM per
kernel offset; *im2col* one column-matrix copy and one GEMM; *toeplitz*
one sparse product with ``C_in/G · prod(k)`` entries per output; *fft* real
FFTs of ``fast_len(padded)`` plus one complex GEMM per frequency;
*fft_tiled* the same on overlap-save tiles; *winograd* its tile gather,
three transform GEMMs and ``alpha`` channel GEMMs. A method the model does
not know is priced from ``plan.flops`` at a quarter of GEMM peak plus
moving its input and output, so new methods are usable at once. Finally
each prediction is multiplied by the method's calibrated factor (measured
time / modelled time on small problems), which absorbs what the terms
leave out.

The model predicts the forward pass; plans run forward and backward with
one method, and every method's backward costs about twice its forward.
"""

import dataclasses
import math
import threading

import numpy as np

from .errors import WorkspaceLimitError

__all__ = ["Calibration", "Prediction", "DEFAULT_CONSTANTS", "choose_method", "predict_seconds",
           "predictions", "get_calibration", "set_calibration"]

#: Built-in constants (a 2-core AVX2 machine with OpenBLAS), used until ``convlab calibrate`` runs.
DEFAULT_CONSTANTS = {
    "float32": dict(peak=1.5e11, gemm_half=24.0, bandwidth=6e9, call=4e-6, fft_point=1.5e-9,
                    sparse_op=3e-9),
    "float64": dict(peak=7.5e10, gemm_half=24.0, bandwidth=6e9, call=4e-6, fft_point=2e-9,
                    sparse_op=3.5e-9),
}
CONSTANT_NAMES = frozenset(DEFAULT_CONSTANTS["float32"])
GENERIC_EFFICIENCY = 0.25  # fraction of GEMM peak assumed for a method the model does not know


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Machine constants the cost model prices its terms with.

    Attributes
    ----------
    constants : dict
        ``{"float32": {...}, "float64": {...}}``, each with the keys of
        :data:`DEFAULT_CONSTANTS` (seconds, FLOP/s, bytes/s).
    method_factors : dict
        ``{method: factor}``: measured / modelled time, 1 when absent.
    source : str
        Where the constants came from (a path, or ``"built-in defaults"``).

    Examples
    --------
    >>> cal = Calibration.defaults()
    >>> cal.constant("float32", "peak") > 0, cal.factor("direct")
    (True, 1.0)
    """

    constants: dict
    method_factors: dict = dataclasses.field(default_factory=dict)
    source: str = "built-in defaults"

    @classmethod
    def defaults(cls):
        return cls({k: dict(v) for k, v in DEFAULT_CONSTANTS.items()})

    def constant(self, dtype, name):
        return float(self.constants[np.dtype(dtype).name][name])

    def factor(self, method):
        return float(self.method_factors.get(method, 1.0))


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One method's standing for a plan: predicted seconds, or why it cannot run."""

    method: str
    seconds: float | None
    reason: str | None = None


# --------------------------------------------------------------- the active calibration
_lock = threading.Lock()
_active = None


def get_calibration():
    """The calibration in use: the one set, else the stored one for this machine, else defaults."""
    global _active
    with _lock:
        if _active is None:
            from .calibrate import load_calibration

            _active = load_calibration()
        return _active


def set_calibration(calibration):
    """Use ``calibration`` (a :class:`Calibration`, or ``None`` to reload from disk); return the old one."""
    global _active
    if calibration is not None and not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration or None, but got {calibration!r}")
    with _lock:
        old, _active = _active, calibration
    return old


# --------------------------------------------------------------- priced terms
class _Terms:
    """Prices of the cost terms for one dtype."""

    def __init__(self, calibration, dtype):
        dtype = np.dtype(dtype)
        self.itemsize = dtype.itemsize
        for name in CONSTANT_NAMES:
            setattr(self, name, calibration.constant(dtype, name))

    def gemm(self, m, k, n, batch=1, complex_=False):
        h = self.gemm_half
        efficiency = (m / (m + h)) * (k / (k + h)) * (n / (n + h))
        scale = 4 if complex_ else 1  # one complex multiply-add is four real ones
        flops = 2.0 * m * k * n * batch * scale
        moved = (m * k + k * n + m * n) * batch * self.itemsize * (2 if complex_ else 1)
        return self.call + max(flops / (self.peak * efficiency), moved / self.bandwidth)

    def copy(self, elements):
        return self.call + 2.0 * elements * self.itemsize / self.bandwidth

    def fft(self, count, shape):
        points = float(np.prod(shape))
        return self.call + count * points * max(1.0, math.log2(points)) * self.fft_point

    def sparse(self, products):
        return self.call + products * self.sparse_op

    def loop(self, iterations):
        return iterations * self.call


def _sizes(p):
    """Common element counts of a plan: input, padded input, output, and per-group channels."""
    x = p.batch * p.in_channels * int(np.prod(p.input_size))
    xp = p.batch * p.in_channels * int(np.prod(p.padded_size))
    y = int(np.prod(p.output_shape))
    return x, xp, y, p.in_channels // p.groups, p.out_channels // p.groups


def _pad(t, p):
    """Zero-padding copy, when there is padding."""
    x, xp, *_ = _sizes(p)
    return t.copy(xp) if xp != x else 0.0


def _direct(t, p):
    _, _, y, cg, kg = _sizes(p)
    taps = int(np.prod(p.kernel_size))
    out = int(np.prod(p.output_size))
    window = p.batch * p.in_channels * out
    per_tap = t.copy(window) + t.gemm(kg, cg, out, batch=p.batch * p.groups) + t.copy(y)
    return _pad(t, p) + taps * per_tap


def _im2col(t, p):
    _, _, y, cg, kg = _sizes(p)
    taps = int(np.prod(p.kernel_size))
    out = int(np.prod(p.output_size))
    pointwise = taps == 1 and all(s == 1 for s in p.stride) and not any(lo or hi for lo, hi in p.padding)
    columns = 0.0 if pointwise else t.copy(p.batch * p.in_channels * taps * out)
    return _pad(t, p) + columns + t.gemm(kg, cg * taps, out, batch=p.batch * p.groups)


def _toeplitz(t, p):
    x, xp, y, cg, _ = _sizes(p)
    entries = y * cg * int(np.prod(p.kernel_size))  # stored entries times the batch columns
    return t.copy(x + xp + 2 * y) + t.sparse(entries)


def _fft_sizes(p):
    from scipy.fft import next_fast_len

    return tuple(next_fast_len(n, real=True) for n in p.padded_size)


def _spectral(t, p, shape, count):
    """FFT convolution over ``count`` independent blocks of FFT size ``shape`` each."""
    _, _, y, cg, kg = _sizes(p)
    bins = int(np.prod(shape[:-1])) * (shape[-1] // 2 + 1)
    transforms = t.fft(p.batch * p.in_channels * count, shape) + t.fft(p.out_channels * cg, shape)
    inverse = t.fft(p.batch * p.out_channels * count, shape)
    contraction = t.gemm(kg, cg, p.batch * count, batch=bins * p.groups, complex_=True)
    moved = t.copy(p.batch * (p.in_channels + p.out_channels) * count * 2 * bins) + t.copy(y)
    return transforms + inverse + contraction + moved


def _fft(t, p):
    return _spectral(t, p, _fft_sizes(p), 1)


def _overlap_save_blocks(p):
    """Block FFT size and block count per axis for overlap-save: blocks of about 4 kernel extents."""
    from scipy.fft import next_fast_len

    shape, count = [], 1
    for n, e in zip(p.padded_size, p.dilated_kernel_size):
        size = min(next_fast_len(n, real=True), next_fast_len(max(4 * e, 16), real=True))
        step = max(1, size - e + 1)
        shape.append(size)
        count *= -(-(n - e + 1) // step)
    return tuple(shape), count


def _fft_tiled(t, p):
    shape, count = _overlap_save_blocks(p)
    return _spectral(t, p, shape, count)


def _winograd(t, p):
    from .methods.winograd import tile_size

    _, _, y, cg, kg = _sizes(p)
    ms = [tile_size(o, k) for o, k in zip(p.output_size, p.kernel_size)]
    alpha = int(np.prod([m + k - 1 for m, k in zip(ms, p.kernel_size)]))
    tiles = p.batch * int(np.prod([-(-o // m) for o, m in zip(p.output_size, ms)]))
    m_prod = int(np.prod(ms))
    gathered = alpha * p.in_channels * tiles
    if cg == 1 and kg == 1:
        contraction = t.copy(alpha * p.out_channels * tiles)
    else:
        contraction = t.gemm(kg, cg, tiles, batch=alpha * p.groups)
    return (_pad(t, p) + t.copy(gathered) + t.gemm(alpha, alpha, p.in_channels * tiles) + contraction
            + t.gemm(m_prod, alpha, p.out_channels * tiles) + t.copy(y))


def _generic(t, p):
    x, _, y, _, _ = _sizes(p)
    return p.flops / (t.peak * GENERIC_EFFICIENCY) + t.copy(x + y)


_MODELS = {"direct": _direct, "im2col": _im2col, "toeplitz": _toeplitz, "fft": _fft,
           "fft_tiled": _fft_tiled, "winograd": _winograd}


# --------------------------------------------------------------- public functions
def _method_plan(p, name):
    return dataclasses.replace(p, method=name, _cache={}, _lock=threading.RLock())


def predict_seconds(plan, method, calibration=None):
    """Predicted forward time of ``method`` on ``plan``, in seconds (nothing is run).

    Parameters
    ----------
    plan : ConvPlan
    method : str
        A registered method name; it need not support the plan (the model
        prices the arithmetic regardless).
    calibration : Calibration, optional
        Default: :func:`get_calibration`.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((8, 64, 56, 56), (64, 64, 3, 3), np.float32, padding=1, method="direct")
    >>> cal = Calibration.defaults()
    >>> predict_seconds(p, "winograd", cal) < predict_seconds(p, "direct", cal)
    True
    """
    calibration = calibration or get_calibration()
    inner = _method_plan(plan, method).inner
    terms = _Terms(calibration, plan.dtype)
    seconds = _MODELS.get(method, _generic)(terms, inner)
    if inner.x_shape != plan.x_shape:
        seconds += terms.copy(int(np.prod(inner.x_shape)))  # the plan pads explicitly
    return seconds * calibration.factor(method)


def predictions(plan, calibration=None):
    """Every registered method's :class:`Prediction` for ``plan``, cheapest first.

    Methods that do not support the plan or exceed its workspace limit come
    last, with ``seconds=None`` and the reason.
    """
    from .methods.base import get_method, methods

    calibration = calibration or get_calibration()
    result = []
    for name in methods():
        impl, inner = get_method(name), _method_plan(plan, name).inner
        reason = impl.unsupported_reason(inner)
        if reason is None:
            needed = impl.workspace_bytes(inner)
            if needed > plan.limit:
                reason = f"needs {needed} bytes of workspace, over the limit of {plan.limit}"
        seconds = predict_seconds(plan, name, calibration) if reason is None else None
        result.append(Prediction(name, seconds, reason))
    return sorted(result, key=lambda r: (r.seconds is None, r.seconds or 0.0))


def choose_method(plan, calibration=None):
    """Name of the method ``method="auto"`` runs for ``plan``: the cheapest predicted.

    Only registered methods that support the plan and whose workspace fits
    its limit are considered; the choice is a pure function of the plan and
    the calibration (nothing is timed).

    Parameters
    ----------
    plan : ConvPlan
    calibration : Calibration, optional
        Default: :func:`get_calibration` (stored for this machine, or built-in).

    Returns
    -------
    str

    Raises
    ------
    WorkspaceLimitError
        When no method fits the workspace limit.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((1, 1, 512, 512), (1, 1, 15, 15), np.float64, method="direct")
    >>> cl.choose_method(p, Calibration.defaults()) in cl.methods()
    True
    """
    ranked = predictions(plan, calibration)
    if ranked and ranked[0].seconds is not None:
        return ranked[0].method
    from .methods.base import get_method, methods
    from .plan import fitting_methods

    name = methods()[0]
    raise WorkspaceLimitError(name, get_method(name).workspace_bytes(plan), plan.limit, fitting_methods(plan))
