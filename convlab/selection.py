"""Choosing a method for ``method="auto"``: a cost model, never a stopwatch.

:func:`choose_method` predicts the forward time of every registered method
that supports the plan and fits its workspace limit, and returns the
cheapest. Predictions are sums of a few terms, each priced by a constant of
the running machine (a :class:`Calibration`, measured by
``convlab calibrate`` and stored in the user cache dir, or built-in
defaults):

======================  ===========================================================
term                    time (constants in brackets)
======================  ===========================================================
``b`` GEMMs ``m×k×n``   ``call + b·gemm_call + max(2mknb / (peak·e), bytes/bandwidth)``,
                        ``e = Π_d d/(d + gemm_half)`` over ``d ∈ {m, k, n}``
``c`` passes of ``E``   ``call + c·E·itemsize / bandwidth`` (``y += a`` is 3 passes)
strided gather          ``call + 2E·itemsize / gather_bandwidth``
``np.ix_`` gather       ``call + E·index_point``
real FFTs               ``call + count · P · log2 P · fft_point``
sparse product          ``call + nnz_products · sparse_op``
======================  ===========================================================

Each known method is a sum of such terms, mirroring what it runs (see
``_MODELS`` and docs/auto.md): *direct* per kernel offset a window gather,
``N·G`` GEMMs and an accumulate (depthwise: a broadcast multiply-add, no
GEMM); *im2col* one column gather and ``N·G`` GEMMs; *toeplitz* one sparse
product; *fft* real FFTs of ``x`` and ``y`` at the method's own sizes plus ``G``
complex GEMMs per frequency (the weight spectra are cached per plan, so a call
with unchanged weights pays one comparison of ``w``, not its FFTs);
*fft_tiled* the same on the tiles the method itself chooses, plus its padded
input, tile gather, output scatter and final crop copies;
*winograd* its tile gather, transform GEMMs and ``alpha`` channel GEMMs. A
method the model does not know is priced from ``plan.flops`` at a quarter
of GEMM peak plus moving its input and output, so new methods are usable at
once. Finally each prediction is multiplied by the method's calibrated
factor (measured / modelled time on a few CNN-sized and large-kernel
problems), which absorbs what the terms leave out.

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
    "float32": dict(peak=1.5e11, gemm_half=48.0, gemm_call=2e-7, bandwidth=6e9, gather_bandwidth=5e9,
                    index_point=2e-9, call=4e-6, fft_point=1.5e-9, sparse_op=3e-9),
    "float64": dict(peak=7.5e10, gemm_half=48.0, gemm_call=2e-7, bandwidth=6e9, gather_bandwidth=5e9,
                    index_point=2e-9, call=4e-6, fft_point=2e-9, sparse_op=3.5e-9),
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
        """``batch`` GEMMs ``m×k @ k×n``: numpy's batched matmul calls BLAS once per matrix."""
        h = self.gemm_half
        efficiency = (m / (m + h)) * (k / (k + h)) * (n / (n + h))
        scale = 4 if complex_ else 1  # one complex multiply-add is four real ones
        flops = 2.0 * m * k * n * batch * scale
        moved = (m * k + k * n + m * n) * batch * self.itemsize * (2 if complex_ else 1)
        return self.call + batch * self.gemm_call + max(flops / (self.peak * efficiency), moved / self.bandwidth)

    def passes(self, elements, count):
        """``count`` streaming passes (reads or writes) over ``elements`` values, e.g. ``y += a`` is 3."""
        return self.call + count * elements * self.itemsize / self.bandwidth

    def fancy(self, elements):
        """An integer-array (``np.ix_``) gather of ``elements`` values."""
        return self.call + elements * self.index_point

    def gather(self, elements):
        """A strided copy into a contiguous buffer (window or column matrix), at its measured bandwidth."""
        return self.call + 2.0 * elements * self.itemsize / self.gather_bandwidth

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
    if cg == 1:
        # depthwise: broadcast product from the strided window into a temporary (read, write),
        # then ``y += term`` (read, read, write)
        per_tap = t.passes(y, 5)
    else:
        window = p.batch * p.in_channels * out
        # window gather, N·G GEMMs, and ``y += product`` (write the product, read it and y, write y)
        per_tap = t.gather(window) + t.gemm(kg, cg, out, batch=p.batch * p.groups) + t.passes(y, 4)
    return _pad(t, p) + taps * per_tap


def _im2col(t, p):
    _, _, y, cg, kg = _sizes(p)
    taps = int(np.prod(p.kernel_size))
    out = int(np.prod(p.output_size))
    pointwise = taps == 1 and all(s == 1 for s in p.stride) and not any(lo or hi for lo, hi in p.padding)
    columns = 0.0 if pointwise else t.gather(p.batch * p.in_channels * taps * out)
    return _pad(t, p) + columns + t.gemm(kg, cg * taps, out, batch=p.batch * p.groups)


def _toeplitz(t, p):
    x, xp, y, cg, _ = _sizes(p)
    entries = y * cg * int(np.prod(p.kernel_size))  # stored entries times the batch columns
    return t.copy(x + xp + 2 * y) + t.sparse(entries)


def _fft_sizes(p):
    from .methods.fft import axis_fft_size

    return tuple(axis_fft_size(n, lo, e, s, o, p.padding_mode == "circular") for n, (lo, _), e, s, o in
                 zip(p.input_size, p.padding, p.dilated_kernel_size, p.stride, p.output_size))


def _spectral(t, p, shape, count, fancy_outputs=False):
    """FFT convolution over ``count`` independent blocks of FFT size ``shape`` each; ``fancy_outputs``
    when the outputs are read back by an integer-array index (they wrap around the FFT buffer)."""
    _, _, y, cg, kg = _sizes(p)
    bins = int(np.prod(shape[:-1])) * (shape[-1] // 2 + 1)
    points = int(np.prod(shape))
    # The weight spectra are cached per plan and recomputed only when ``w`` changes (WeightDerived):
    # a steady-state call pays one comparison of ``w`` with its stored copy, not ``C_out·C_in/G`` FFTs.
    transforms = t.fft(p.batch * p.in_channels * count, shape) + t.passes(int(np.prod(p.w_shape)), 2)
    inverse = t.fft(p.batch * p.out_channels * count, shape)
    if cg == 1 and kg == 1:  # a broadcast product per bin (fft.batched_matmul)
        contraction = t.passes(p.batch * p.out_channels * count * 2 * bins, 3)
    else:
        contraction = t.gemm(kg, cg, p.batch * count, batch=bins * p.groups, complex_=True)
    # zero-filled real buffers in and out, the outputs taken back
    moved = t.passes(p.batch * (p.in_channels + p.out_channels) * count * points, 2)
    moved += t.fancy(y) if fancy_outputs else t.gather(y)
    return transforms + inverse + contraction + moved


def _finite_check(t, p):
    """The spectral methods first check that ``x`` and ``w`` are finite (one read of each)."""
    return t.passes(p.batch * p.in_channels * int(np.prod(p.input_size)) + int(np.prod(p.w_shape)), 1)


def _fft(t, p):
    # outputs at s·i - lo: a negative start (front padding) wraps and fft.take uses np.ix_
    wraps = p.padding_mode != "circular" and any(lo > 0 for lo, _ in p.padding)
    return _finite_check(t, p) + _spectral(t, p, _fft_sizes(p), 1, fancy_outputs=wraps)


def _fft_tiled(t, p):
    from .methods.fft_tiled import choose_tiles

    shape = choose_tiles(p)  # the tile FFT size the method itself picks
    outputs = [(L - e) // s + 1 for L, e, s in zip(shape, p.dilated_kernel_size, p.stride)]  # per tile
    inputs = [s * (b - 1) + e for b, e, s in zip(outputs, p.dilated_kernel_size, p.stride)]
    tiles = [-(-o // b) for o, b in zip(p.output_size, outputs)]
    count = int(np.prod(tiles))
    padded = p.batch * p.in_channels * int(np.prod([(T - 1) * b * s + i for T, b, s, i in
                                                    zip(tiles, outputs, p.stride, inputs)]))
    whole = p.batch * p.out_channels * count * int(np.prod(outputs))
    # beyond the spectral work: the padded input (zero-fill, copy), the overlapping tiles gathered
    # from its strided view, the outputs of each tile scattered back, and the final crop copy
    moved = (t.passes(padded, 1) + t.copy(p.batch * p.in_channels * int(np.prod(p.input_size)))
             + t.gather(p.batch * p.in_channels * count * int(np.prod(inputs))) + t.gather(whole) + t.copy(whole))
    return _finite_check(t, p) + _spectral(t, p, tuple(shape), count) + moved


def _winograd(t, p):
    from .methods.winograd import tile_size

    _, _, y, cg, kg = _sizes(p)
    ms = [tile_size(o, k, p.ndim) for o, k in zip(p.output_size, p.kernel_size)]
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
    return dataclasses.replace(p, method=name)


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
