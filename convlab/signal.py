"""A drop-in for scipy.signal's convolution functions, computed by convlab's methods.

Replace ``from scipy import signal`` with ``from convlab import signal`` and
``convolve``, ``correlate``, ``fftconvolve``, ``oaconvolve``, ``convolve2d``,
``correlate2d`` and ``choose_conv_method`` keep scipy's signatures, output
shapes, centring, input swap in ``"valid"`` mode, broadcasting over the axes
not convolved, result dtypes and exceptions (``ValueError`` with scipy's
messages). Only the computation changes: plain arrays are mapped to convlab's
``(N, C, *spatial)`` layout (broadcast axes become the batch, the channels or
the groups) and run by :func:`convlab.conv` with a flipped kernel, because
convlab computes cross-correlations as PyTorch does.

How each input kind is computed
-------------------------------
* float32/float64: in that dtype by a convlab method; float16 in float32 and
  returned as float16 (scipy's FFT functions return float32 for it, and so do
  these).
* complex64/complex128: by linearity, ``(ar + i ai) * (br + i bi)``, all real
  products in one batched call of a real convlab method.
* integers and bool (convolve, correlate, convolve2d, correlate2d): the result
  has scipy's integer dtype and is the exact integer. With
  ``S = min(sum|a| * max|b|, max|a| * sum|b|)``, a bound on the sum of
  ``|products|`` of every output:

  - methods that only multiply and add input values (``direct``, ``im2col``,
    ``toeplitz``) are exact in float64 while ``S <= 2**53``, since every partial
    sum is then an integer float64 holds exactly;
  - the other methods (``fft``, ``fft_tiled``, ``winograd``) carry a rounding
    error below ``tolerance(float64) * max|y| <= 1e-10 * S`` (the accuracy the
    shared test suite holds every method to), so their result is rounded to
    the exact integer while ``1e-10 * S <= 1/4``, i.e. ``S <= 2.5e9``;
  - beyond that bound a requested or chosen inexact method is replaced by
    ``im2col``, and beyond ``2**53`` by an exact integer shift-and-add in the
    result dtype. Results that overflow the integer dtype wrap around, as
    scipy's direct method does.
* 0-d inputs: the product, as scipy. More than three convolved axes, object,
  longdouble and clongdouble arrays: scipy.signal itself computes them (convlab's
  methods are 1-, 2- and 3-D in float32/float64).

Where convlab differs from scipy, and why
-----------------------------------------
* Values: float results agree with scipy's within convlab's tolerance table
  (:mod:`convlab.tolerances`), not bit for bit: another summation order or FFT
  length rounds differently. Integer results are identical.
* ``choose_conv_method`` returns the convlab method ``method="auto"`` would
  run (``"im2col"``, ``"fft"``, ...) instead of only ``"direct"``/``"fft"``;
  every name it returns is accepted by ``method=``. With ``measure=True`` it
  times every registered method that supports the problem.
* ``method=`` also accepts every name in :func:`convlab.methods`.
* NaN and infinity: convlab's FFT methods keep them local as the direct sum does,
  so ``method="fft"`` neither spreads them over the output nor warns.
* Empty inputs: ``convolve``/``correlate`` raise ``ValueError`` for an empty
  array in ``"full"`` and ``"valid"`` mode and return an empty array of
  ``in1``'s shape in ``"same"`` mode when ``in1`` is empty (scipy's ``auto``
  path; its ``fft`` path raises ``IndexError`` instead).
  ``fftconvolve``/``oaconvolve`` return ``array([])`` as scipy does.
  ``convolve2d``/``correlate2d`` return zeros of the mode's shape.
* bool and float16 in N-D ``convolve``/``correlate`` and in ``convolve2d``:
  scipy accepts them only in some paths (1-D direct, FFT); convlab accepts them
  everywhere with the dtype scipy returns where it does.
* ``correlate2d`` in ``"valid"`` mode with ``in2`` larger than ``in1`` returns,
  as scipy does, the reversed correlation of the swapped inputs without
  conjugation: for complex inputs that is the conjugate of ``correlate``'s result.

Examples
--------
>>> import numpy as np
>>> from convlab import signal
>>> signal.convolve([1, 2, 3], [0, 1, 0.5])
array([0. , 1. , 2.5, 4. , 1.5])
>>> signal.convolve(np.arange(5), np.ones(2, int), mode="same")  # integers stay integers
array([0, 1, 3, 5, 7])
>>> signal.correlate2d(np.eye(3), [[1, 2], [3, 4]], mode="same", boundary="symm")
array([[ 5.,  3.,  0.],
       [ 2.,  5.,  7.],
       [ 0.,  6., 10.]])
"""

import math
import timeit

import numpy as np

from . import api as _api
from .algorithms import methods as _methods
from .errors import UnsupportedPlanError
from .planning import plan as _plan
from .tolerances import tolerance as _tolerance

__all__ = ["choose_conv_method", "convolve", "convolve2d", "correlate", "correlate2d", "fftconvolve",
           "oaconvolve"]

_MODES = ("full", "same", "valid")
_MODE_ERROR = "Acceptable mode flags are 'valid', 'same', or 'full'."
# Methods that only multiply and add input values: exact on integers while partial sums stay below 2**53.
_EXACT_SUM_METHODS = frozenset({"direct", "im2col", "toeplitz"})
_EXACT_FLOAT64_BOUND = 2.0 ** 53
_ROUNDED_BOUND = 0.25 / _tolerance(np.float64)
_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap", "symm": "symm",
               "symmetric": "symm"}


# --------------------------------------------------------------- validation helpers
def _check_mode(mode):
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"{_MODE_ERROR[:-1]}, not mode={mode!r}")
    return mode


def _check_method(method):
    if isinstance(method, str) and (method == "auto" or method in _methods()):
        return method
    raise ValueError(f"Acceptable method flags are 'auto', 'direct', or 'fft' (or any of convlab's methods "
                     f"{_methods()}), not method={method!r}")


def _same_ndim(a, b):
    if a.ndim != b.ndim:
        raise ValueError(f"in1 and in2 should have the same dimensionality, but got {a.ndim} and {b.ndim}")


def _swap_needed(mode, shape1, shape2, axes=None):
    """scipy's rule: in "valid" mode the first input must be at least as large in every axis, else swap."""
    if mode != "valid" or not shape1:
        return False
    axes = range(len(shape1)) if axes is None else axes
    ok1 = all(shape1[i] >= shape2[i] for i in axes)
    ok2 = all(shape2[i] >= shape1[i] for i in axes)
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least as large as the other in every dimension "
                         f"(got shapes {tuple(shape1)} and {tuple(shape2)})")
    return not ok1


def _normalise_axes(axes, ndim):
    if axes is None:
        return list(range(ndim))
    values = [axes] if np.ndim(axes) == 0 else list(axes)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        raise ValueError(f"axes must be a scalar or iterable of integers, but got {axes!r}")
    if not values:
        raise ValueError("when provided, axes cannot be empty")
    if any(v < -ndim or v >= ndim for v in values):
        raise ValueError(f"axes exceeds dimensionality of input: axes={axes!r} for {ndim}-D inputs")
    values = [int(v) % ndim for v in values]
    if len(set(values)) != len(values):
        raise ValueError(f"all axes must be unique, but got axes={axes!r}")
    return values


# --------------------------------------------------------------- dtype rules
def _float_dtype(kind_dtype):
    """The real dtype convlab computes a float/complex result type in, or None when it cannot."""
    if kind_dtype.kind == "f":
        return {2: np.dtype(np.float32), 4: np.dtype(np.float32), 8: np.dtype(np.float64)}.get(kind_dtype.itemsize)
    if kind_dtype.kind == "c":
        return {8: np.dtype(np.float32), 16: np.dtype(np.float64)}.get(kind_dtype.itemsize)
    return None


def _bound(a, b):
    """``min(sum|a| max|b|, max|a| sum|b|)``: no output sums more than this in |products|."""
    fa, fb = np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64))
    if fa.size == 0 or fb.size == 0:
        return 0.0
    # float64 sums of integers below 2**53 err by far less than the safety factor 1 + 1e-9
    return min(fa.sum() * fb.max(), fa.max() * fb.sum()) * (1 + 1e-9)


# --------------------------------------------------------------- the computation
def _pairs(mode, n, k, kind):
    """Padding ``(lo, hi)`` of one convolved axis, for a correlation with the flipped kernel.

    ``kind`` "convolve" centres "same" as scipy's convolve/correlate (``lo = k // 2``);
    "correlate2d" as scipy's correlate2d (``lo = (k - 1) // 2``, the correlation's own kernel).
    """
    if mode == "full":
        return (k - 1, k - 1)
    if mode == "valid":
        return (0, 0)
    return ((k - 1) // 2, k // 2) if kind == "correlate2d" else (k // 2, (k - 1) // 2)


def _run(x, w, method, groups, pairs, padding_mode):
    """One real convlab call; ``x`` (N, C, *s), ``w`` (C_out, C/groups, *k) already correlation kernels,
    both float32 or both float64.

    ``cl.conv`` with these arguments, minus its checks of the arrays (done here already): the plan comes
    from the same cache, so a repeated call costs a dictionary lookup and the plan's own run.
    """
    pairs = tuple((int(lo), int(hi)) for lo, hi in pairs)
    plan = _api.cached_plan(x.shape, w.shape, x.dtype, padding=pairs, groups=groups, padding_mode=padding_mode,
                            method=method)
    return plan.forward(x, w)


# The common call -- two real arrays of one float dtype, every axis convolved, zero padding -- skips the general
# route: its shape analysis is kept per (shapes, dtype, mode) and the plan runs without re-checking arrays this
# module built itself (about 30 us of a 60 us small FFT convolution; see benchmarks/bench_compat.py --small).
_FAST_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
_FLIPS = {d: (slice(None, None, -1),) * d for d in (1, 2, 3)}
_ROUTES_SIZE = 256
_routes = {}  # (shape1, shape2, dtype, mode) -> (swap, (1, 1, *s1), (1, 1, *s2), padding) or None


def _fast_route(s1, s2, mode):
    """``(swap, x_shape, w_shape, padding)`` of the fast path for these shapes, or ``None`` (general path)."""
    if len(s1) != len(s2) or not 1 <= len(s1) <= 3 or min(s1) < 2 or min(s2) < 2:
        return None  # size-1 axes are broadcast products, empty ones errors: the general path decides
    try:
        swap = _swap_needed(mode, s1, s2)
    except ValueError:
        return None  # the general path raises it
    if swap:
        s1, s2 = s2, s1
    padding = tuple(_pairs(mode, n, k, "convolve") for n, k in zip(s1, s2))
    if any(max(p) > n for p, n in zip(padding, s1)):
        return None
    return swap, (1, 1, *s1), (1, 1, *s2), padding


def _fast_convolve(in1, in2, mode, method):
    """``convolve(in1, in2, mode, method)`` for two float32 or two float64 arrays with every axis convolved
    (1 to 3 axes, no axis of size 1) and a valid mode and method; ``None`` for any other call.

    The same plan as the general route (:func:`_run`), run by its method directly: ``x`` and ``w`` are
    views of the inputs of the plan's exact shape and dtype, which the plan's array checks would only confirm.
    """
    if type(in1) is not np.ndarray or type(in2) is not np.ndarray:
        return None
    dtype = in1.dtype
    if dtype != in2.dtype or dtype not in _FAST_DTYPES or not isinstance(mode, str) or mode not in _MODES:
        return None
    if not isinstance(method, str) or not (method == "auto" or method in _methods()):
        return None
    key = (in1.shape, in2.shape, dtype, mode)
    try:
        route = _routes[key]
    except KeyError:
        route = _fast_route(in1.shape, in2.shape, mode)
        if len(_routes) >= _ROUTES_SIZE:
            _routes.clear()
        _routes[key] = route
    if route is None:
        return None
    swap, x_shape, w_shape, padding = route
    a, b = (in2, in1) if swap else (in1, in2)
    plan = _api.cached_plan(x_shape, w_shape, dtype, padding=padding, method=method)
    y = plan.implementation.run_forward(plan.spec, a[None, None], b[_FLIPS[b.ndim]][None, None])[0, 0]
    return y if y.flags.c_contiguous and y.flags.writeable else y.copy()


def _correlate_axes(a, b, axes, pairs, method, real_dtype, padding_mode="zeros", fillvalue=0):
    """Cross-correlate ``a`` with ``b`` along ``axes`` (1 to 3), broadcasting every other axis.

    ``pairs`` are the ``(lo, hi)`` paddings of ``a`` along ``axes``, applied in
    ``padding_mode`` ("zeros", "fill" with ``fillvalue``, "circular" or
    "symmetric"). Complex inputs go through their real and imaginary parts.
    Returns the broadcast shape with the correlation's output size on ``axes``.
    """
    d, ndim = len(axes), a.ndim
    pairs = tuple(pairs)
    if d == ndim and a.dtype.kind == b.dtype.kind == "f" and padding_mode in ("zeros", "circular", "symmetric") \
            and all(max(p) <= n for p, n in zip(pairs, a.shape)):
        # one real signal and one real kernel (the common case): a (1, 1, *spatial) view, no batch machinery
        return _run(a.astype(real_dtype, copy=False)[None, None], b.astype(real_dtype, copy=False)[None, None],
                    method, 1, pairs, padding_mode)[0, 0]
    tail = list(range(ndim - d, ndim))
    a, b = np.moveaxis(a, axes, tail), np.moveaxis(b, axes, tail)
    sa, sb = a.shape[ndim - d:], b.shape[ndim - d:]
    if padding_mode == "fill" or any(max(p) > n for p, n in zip(pairs, sa)):
        # constant fill, or circular/symmetric pads beyond one period: numpy pads it (its maps repeat)
        np_mode = {"fill": "constant", "zeros": "constant", "circular": "wrap", "symmetric": "symmetric"}[padding_mode]
        kwargs = {"constant_values": fillvalue} if np_mode == "constant" else {}
        a = np.pad(a, [(0, 0)] * (ndim - d) + list(pairs), mode=np_mode, **kwargs)
        sa, pairs, padding_mode = a.shape[ndim - d:], ((0, 0),) * d, "zeros"
    batch_a, batch_b = a.shape[:ndim - d], b.shape[:ndim - d]
    batch = np.broadcast_shapes(batch_a, batch_b)
    parts_a = [a.real, a.imag] if a.dtype.kind == "c" else [a]
    parts_b = [b.real, b.imag] if b.dtype.kind == "c" else [b]
    pa, pb = len(parts_a), len(parts_b)
    na, nb, nbatch = math.prod(batch_a), math.prod(batch_b), math.prod(batch)

    def stack(parts, shape):
        flat = [np.broadcast_to(p, shape).reshape(-1, *shape[len(shape) - d:]) for p in parts]
        # one real part: a view (the methods copy their input into their own buffers anyway)
        return (flat[0][None] if len(flat) == 1 else np.stack(flat)).astype(real_dtype, copy=False)

    if nb == 1:                     # one kernel for every batch entry: the batch is N
        x = stack(parts_a, batch_a + sa).reshape(pa * na, 1, *sa)
        w = stack(parts_b, batch_b + sb).reshape(pb, 1, *sb)
        y = _run(x, w, method, 1, pairs, padding_mode)
        y = y.reshape(pa, na, pb, *y.shape[2:]).transpose(0, 2, 1, *range(3, 3 + d))
        out_batch = batch_a
    elif na == 1:                   # one signal, many kernels: the kernels are output channels
        x = stack(parts_a, batch_a + sa).reshape(pa, 1, *sa)
        w = stack(parts_b, batch_b + sb).reshape(pb * nb, 1, *sb)
        y = _run(x, w, method, 1, pairs, padding_mode)
        y = y.reshape(pa, pb, nb, *y.shape[2:])
        out_batch = batch_b
    else:                           # a signal and a kernel per batch entry: one group each
        x = stack(parts_a, batch + sa)                                   # (pa, B, *sa): B channels
        w = stack(parts_b, batch + sb).swapaxes(0, 1).reshape(nbatch * pb, 1, *sb)
        y = _run(x, w, method, nbatch, pairs, padding_mode)
        y = y.reshape(pa, nbatch, pb, *y.shape[2:]).transpose(0, 2, 1, *range(3, 3 + d))
        out_batch = batch
    # y[p, q] is the correlation of part p of a with part q of b
    if pa == pb == 1:
        out = y[0, 0]
    elif pb == 1:
        out = y[0, 0] + 1j * y[1, 0]
    elif pa == 1:
        out = y[0, 0] + 1j * y[0, 1]
    else:
        out = (y[0, 0] - y[1, 1]) + 1j * (y[0, 1] + y[1, 0])
    out = out.reshape(*out_batch, *out.shape[1:])
    out = np.broadcast_to(out, (*batch, *out.shape[len(out_batch):]))
    return np.moveaxis(out, tail, axes)


def _integer_full(a, b, axes):
    """Exact integer full convolution along ``axes`` (others broadcast), by shift-and-add in the
    result dtype: modular arithmetic, so any order gives the wrapped value scipy's direct method gives."""
    dtype = np.result_type(a, b)
    work = np.int64 if dtype == np.bool_ else dtype
    a, b = a.astype(work), b.astype(work)
    small, big = (a, b) if math.prod(a.shape[i] for i in axes) <= math.prod(b.shape[i] for i in axes) else (b, a)
    shape = [max(a.shape[i], b.shape[i]) if i not in axes else a.shape[i] + b.shape[i] - 1 for i in range(a.ndim)]
    out = np.zeros(shape, work)
    with np.errstate(over="ignore"):
        for index in np.ndindex(*(small.shape[i] for i in axes)):
            take = [slice(None)] * a.ndim
            place = [slice(None)] * a.ndim
            for axis, j in zip(axes, index):
                take[axis] = slice(j, j + 1)
                place[axis] = slice(j, j + big.shape[axis])
            out[tuple(place)] += small[tuple(take)] * big
    return out


def _convolve_axes(a, b, mode, axes, method, kind="convolve", boundary="fill", fillvalue=0, flip=True):
    """``a`` convolved (``flip``) or correlated with ``b`` along the non-trivial ``axes``, in ``mode``,
    with scipy's result shape. ``method`` may be "auto" or a convlab method name."""
    s1, s2 = a.shape, b.shape
    zero_padded = boundary == "fill" and fillvalue == 0
    # With zero padding an axis of size 1 in either input is a broadcast product; any other boundary reads
    # padded values along it, so it is convolved.
    conv_axes = [i for i in axes if not zero_padded or (s1[i] != 1 and s2[i] != 1)]
    if flip:  # along the broadcast axes (size 1 in one input) the convolution is a product: no flip
        b = b[tuple(slice(None, None, -1) if i in conv_axes else slice(None) for i in range(b.ndim))]
    out_dtype = np.result_type(a, b)
    if not conv_axes:                       # a product: along axes of size 1 the convolution is broadcasting
        full = a * b
    elif len(conv_axes) > 3 or (_float_dtype(out_dtype) is None and out_dtype.kind not in "biu"):
        return None                         # the caller lets scipy compute it
    else:
        pairs = [_pairs(mode, s1[i], s2[i], kind) for i in conv_axes]
        padding_mode = {"fill": "fill" if fillvalue != 0 else "zeros", "wrap": "circular",
                        "symm": "symmetric"}[boundary]
        if out_dtype.kind in "biu":
            full = _integer_correlate(a, b, conv_axes, pairs, method, padding_mode, fillvalue, out_dtype)
        else:
            full = _correlate_axes(a, b, conv_axes, pairs, method, _float_dtype(out_dtype), padding_mode,
                                   fillvalue).astype(out_dtype, copy=False)
    # The broadcast (non-convolved) axes are full-size here; "same" centres them on in1 as scipy does.
    if mode == "same":
        full = full[tuple(slice((full.shape[i] - s1[i]) // 2, (full.shape[i] - s1[i]) // 2 + s1[i])
                          if i not in conv_axes else slice(None) for i in range(full.ndim))]
    out = np.ascontiguousarray(full)
    return out if out.flags.writeable else out.copy()  # never a read-only broadcast view


def _integer_correlate(a, b, axes, pairs, method, padding_mode, fillvalue, out_dtype):
    """Integer (and bool) inputs: the exact integer result in ``out_dtype`` (see the module docstring)."""
    if padding_mode != "zeros":  # padding values are input values too
        np_mode = {"fill": "constant", "circular": "wrap", "symmetric": "symmetric"}[padding_mode]
        kwargs = {"constant_values": fillvalue} if np_mode == "constant" else {}
        a = np.pad(a, [pairs[axes.index(i)] if i in axes else (0, 0) for i in range(a.ndim)], mode=np_mode,
                   **kwargs)
        pairs, padding_mode = [(0, 0)] * len(axes), "zeros"
    bound = _bound(a, b)
    if bound > _ROUNDED_BOUND and method not in _EXACT_SUM_METHODS:
        method = "im2col"  # rounding an inexact method's result is no longer guaranteed exact
    if bound > _EXACT_FLOAT64_BOUND:
        full = _integer_full(a, b[tuple(slice(None, None, -1) if i in axes else slice(None)
                                        for i in range(b.ndim))], axes)
        # the correlation with padding (lo, hi) is the full convolution shifted by k - 1 - lo
        index = []
        for i in range(a.ndim):
            if i in axes:
                (lo, hi), n, k = pairs[axes.index(i)], a.shape[i], b.shape[i]
                index.append(slice(k - 1 - lo, k - 1 - lo + n + lo + hi - k + 1))
            else:
                index.append(slice(None))
        return full[tuple(index)].astype(out_dtype)
    y = _correlate_axes(a, b, axes, pairs, method, np.dtype(np.float64), padding_mode)
    y = np.rint(y)
    if out_dtype == np.bool_:
        return y != 0
    return y.astype(np.int64).astype(out_dtype)  # through int64: out-of-range values wrap, as scipy's direct


def _scipy():
    import scipy.signal

    return scipy.signal


# --------------------------------------------------------------- public functions
def convolve(in1, in2, mode="full", method="auto"):
    """Convolve two N-dimensional arrays, as ``scipy.signal.convolve``.

    Parameters
    ----------
    in1, in2 : array_like
        Same number of dimensions.
    mode : {"full", "valid", "same"}, default "full"
        ``"same"``: the size of ``in1``, centred on the full output as scipy does;
        ``"valid"``: one input must be at least as large as the other in every axis.
    method : str, default "auto"
        ``"auto"`` (convlab's chooser), ``"direct"``, ``"fft"`` or any of
        :func:`convlab.methods`.

    Returns
    -------
    ndarray
        dtype ``np.result_type(in1, in2)``; integer inputs give the exact integer result.

    Examples
    --------
    >>> from convlab import signal
    >>> signal.convolve([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], mode="same")
    array([1. , 2.5, 4. ])
    >>> signal.convolve([[1, 2], [3, 4]], [[1, -1]], method="fft")
    array([[ 1,  1, -2],
           [ 3,  1, -4]])
    """
    out = _fast_convolve(in1, in2, mode, method)
    if out is not None:
        return out
    a, b = np.asarray(in1), np.asarray(in2)
    if a.ndim == b.ndim == 0:
        return a * b
    _same_ndim(a, b)
    _check_mode(mode)
    method = _check_method(method)
    if _swap_needed(mode, a.shape, b.shape):
        a, b = b, a
    if a.size == 0 or b.size == 0:
        if mode == "same" and a.size == 0 and b.size:
            return np.zeros(a.shape, np.result_type(a, b))
        raise ValueError(f"in1 and in2 must not be empty in mode {mode!r}, but got shapes {a.shape} and {b.shape}")
    out = _convolve_axes(a, b, mode, range(a.ndim), method)
    if out is None:  # > 3 convolved axes, object or extended precision: scipy's own exact route
        return _scipy().convolve(a, b, mode, "auto" if _float_dtype(np.result_type(a, b)) else "direct")
    return out


def correlate(in1, in2, mode="full", method="auto"):
    """Cross-correlate two N-dimensional arrays, as ``scipy.signal.correlate``.

    ``z[k] = sum_l in1[l + k] * conj(in2[l])`` over the full range; it is
    ``convolve(in1, in2[::-1, ...].conj(), mode, method)``.

    Parameters
    ----------
    in1, in2 : array_like
    mode : {"full", "valid", "same"}, default "full"
    method : str, default "auto"
        As in :func:`convolve`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from convlab import signal
    >>> signal.correlate([1, 2, 3], [0, 1, 2])
    array([2, 5, 8, 3, 0])
    """
    a, b = np.asarray(in1), np.asarray(in2)
    if a.ndim == b.ndim == 0:
        return a * (np.conj(b) if b.dtype.kind == "c" else b)
    _same_ndim(a, b)
    _check_mode(mode)
    reverse = b[(slice(None, None, -1),) * b.ndim]
    return convolve(a, np.conj(reverse) if b.dtype.kind == "c" else reverse, mode, method)


def _fft_like(in1, in2, mode, axes, method):
    a, b = np.asarray(in1), np.asarray(in2)
    if a.ndim == b.ndim == 0:
        return a * b
    _same_ndim(a, b)
    if a.size == 0 or b.size == 0:
        return np.array([])
    axes_all = _normalise_axes(axes, a.ndim)
    conv_axes = [i for i in axes_all if a.shape[i] != 1 and b.shape[i] != 1]
    if not all(a.shape[i] == b.shape[i] or a.shape[i] == 1 or b.shape[i] == 1
               for i in range(a.ndim) if i not in conv_axes):
        raise ValueError(f"incompatible shapes for in1 and in2: {a.shape} and {b.shape}")
    if _swap_needed(mode, a.shape, b.shape, conv_axes):
        a, b = b, a
    _check_mode(mode)
    result = np.result_type(a, b)
    dtype = np.dtype(np.float64) if result.kind in "biu" else result
    if dtype == np.float16:
        dtype = np.dtype(np.float32)
    if _float_dtype(dtype) is None:
        return None
    if len(conv_axes) == 0:
        out = (a * b).astype(dtype, copy=False)
        if mode == "same":
            out = out[tuple(slice((m - n) // 2, (m - n) // 2 + n) for m, n in zip(out.shape, a.shape))]
        return np.array(out)
    if len(conv_axes) > 3:
        return None
    if method == "fft_tiled":
        try:
            _plan((1, 1, *(a.shape[i] for i in conv_axes)), (1, 1, *(b.shape[i] for i in conv_axes)),
                  _float_dtype(dtype), padding=[_pairs(mode, a.shape[i], b.shape[i], "convolve")
                                                for i in conv_axes], method="fft_tiled")
        except UnsupportedPlanError:
            method = "fft"
    real = _float_dtype(dtype)
    a, b = (v.astype(dtype if v.dtype.kind == "c" else real, copy=False) for v in (a, b))
    return _convolve_axes(a, b, mode, conv_axes, method)


def fftconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-dimensional arrays with convlab's FFT method, as ``scipy.signal.fftconvolve``.

    Parameters
    ----------
    in1, in2 : array_like
        Same number of dimensions; along axes not in ``axes`` their sizes must
        be equal or 1 (broadcast).
    mode : {"full", "valid", "same"}, default "full"
    axes : int or sequence of int, optional
        The axes to convolve over (default: all).

    Returns
    -------
    ndarray
        Floating point (float64 for integer inputs, not rounded); ``array([])``
        when either input is empty.

    Examples
    --------
    >>> import numpy as np
    >>> from convlab import signal
    >>> x = np.ones((2, 5)); h = np.array([[1.0, 2.0, 1.0]])
    >>> signal.fftconvolve(x, h, mode="same", axes=1)
    array([[3., 4., 4., 4., 3.],
           [3., 4., 4., 4., 3.]])
    """
    out = _fast_convolve(in1, in2, mode, "fft") if axes is None else None
    if out is None:
        out = _fft_like(in1, in2, mode, axes, "fft")
    return _scipy().fftconvolve(in1, in2, mode, axes) if out is None else out


def oaconvolve(in1, in2, mode="full", axes=None):
    """Convolve by overlap-add (convlab's ``fft_tiled``), as ``scipy.signal.oaconvolve``.

    Same parameters, results and dtypes as :func:`fftconvolve`; the tiled FFT
    is used where it supports the problem, the whole FFT elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> from convlab import signal
    >>> signal.oaconvolve(np.ones(6), np.ones(3), mode="valid")
    array([3., 3., 3., 3.])
    """
    out = _fft_like(in1, in2, mode, axes, "fft_tiled")
    return _scipy().oaconvolve(in1, in2, mode, axes) if out is None else out


def _check_2d(name, a, b, mode, boundary, fillvalue):
    if not a.ndim == b.ndim == 2:
        raise ValueError(f"{name} inputs must both be 2-D arrays, but got shapes {a.shape} and {b.shape}")
    _check_mode(mode)
    if boundary not in _BOUNDARIES:
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' (or 'wrap'), and 'symmetric' "
                         f"(or 'symm'), not boundary={boundary!r}")
    result = np.result_type(a, b)
    if result.kind not in "iufc":
        raise ValueError(f"{name} not available for this type: {result}")
    value = np.asarray(fillvalue)
    if value.size != 1:
        raise ValueError("`fillvalue` must be scalar or an array with one element.")
    try:
        value = complex(value.reshape(()).item())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fillvalue={fillvalue!r} is not a number: {exc}") from None
    if result.kind != "c":
        if value.imag != 0:
            raise ValueError(f"could not cast `fillvalue`={fillvalue!r} to the output type {result}")
        value = value.real
        if result.kind in "iu":
            info = np.iinfo(result)
            if not info.min <= int(value) <= info.max:
                raise ValueError(f"could not cast `fillvalue`={fillvalue!r} to the output type {result}")
            value = int(value)  # truncated towards zero, as scipy casts it
    return _BOUNDARIES[boundary], value, result


def _conv2d(name, in1, in2, mode, boundary, fillvalue, correlate_):
    a, b = np.asarray(in1), np.asarray(in2)
    boundary, fillvalue, result = _check_2d(name, a, b, mode, boundary, fillvalue)
    swapped = _swap_needed(mode, a.shape, b.shape)
    if swapped:
        a, b = b, a
    if correlate_:
        b = b.conj()
    if a.size == 0 or b.size == 0:
        shape = {"full": [n + k - 1 for n, k in zip(a.shape, b.shape)], "same": a.shape,
                 "valid": [n - k + 1 for n, k in zip(a.shape, b.shape)]}[mode]
        return np.zeros([max(0, s) for s in shape], result)
    if _float_dtype(result) is None and result.kind not in "iu":  # longdouble, clongdouble
        f = _scipy().correlate2d if correlate_ else _scipy().convolve2d
        return f(in1, in2, mode, boundary, fillvalue)
    out = _convolve_axes(a, b, mode, [0, 1], "auto", kind="correlate2d" if correlate_ else "convolve",
                         boundary=boundary, fillvalue=fillvalue, flip=not correlate_)
    return out[::-1, ::-1].copy() if swapped and correlate_ else out


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Convolve two 2-D arrays with a boundary condition, as ``scipy.signal.convolve2d``.

    Parameters
    ----------
    in1, in2 : array_like, 2-D
    mode : {"full", "valid", "same"}, default "full"
    boundary : {"fill", "wrap", "symm"}, default "fill"
        ``"fill"`` pads with ``fillvalue``; ``"wrap"`` (``"circular"``) is
        periodic; ``"symm"`` (``"symmetric"``) mirrors with the edge repeated.
    fillvalue : scalar, default 0

    Returns
    -------
    ndarray, dtype ``np.result_type(in1, in2)``

    Examples
    --------
    >>> import numpy as np
    >>> from convlab import signal
    >>> signal.convolve2d(np.arange(9).reshape(3, 3), np.ones((2, 2), int), mode="same", boundary="wrap")
    array([[16, 14, 18],
           [10,  8, 12],
           [22, 20, 24]])
    """
    return _conv2d("convolve2d", in1, in2, mode, boundary, fillvalue, False)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Cross-correlate two 2-D arrays, as ``scipy.signal.correlate2d``.

    Parameters are those of :func:`convolve2d`. As in scipy, ``"same"``
    centres even kernels one sample differently from :func:`correlate`.

    Examples
    --------
    >>> import numpy as np
    >>> from convlab import signal
    >>> signal.correlate2d(np.arange(9.0).reshape(3, 3), [[1.0, 0.0], [0.0, -1.0]], mode="valid")
    array([[-4., -4.],
           [-4., -4.]])
    """
    return _conv2d("correlate2d", in1, in2, mode, boundary, fillvalue, True)


def choose_conv_method(in1, in2, mode="full", measure=False):
    """The convlab method :func:`convolve` with ``method="auto"`` runs for these inputs.

    Parameters
    ----------
    in1, in2 : array_like
    mode : {"full", "valid", "same"}, default "full"
    measure : bool, default False
        Time :func:`convolve` with every registered method that supports the
        problem and return the fastest.

    Returns
    -------
    method : str
        A name accepted by ``method=`` (scipy returns only "direct" or "fft").
    times : dict of str to float
        Only with ``measure=True``: the best time per method, in seconds.

    Examples
    --------
    >>> import numpy as np
    >>> from convlab import signal
    >>> signal.choose_conv_method(np.ones(100_000), np.ones(2_001)) in ("fft", "fft_tiled")
    True
    >>> signal.choose_conv_method(np.ones(10, np.int64), np.full(3, 2**62))  # too large to round exactly
    'direct'
    """
    a, b = np.asarray(in1), np.asarray(in2)
    _check_mode(mode)
    if measure:
        times = {}
        for name in _methods():
            try:
                convolve(a, b, mode, name)
            except UnsupportedPlanError:
                continue
            times[name] = min(timeit.repeat(lambda m=name: convolve(a, b, mode, m), number=1, repeat=3))
        return min(times, key=times.get), times
    if a.ndim == 0 or a.ndim != b.ndim or a.size == 0 or b.size == 0:
        return "direct"
    result = np.result_type(a, b)
    if result.kind in "biu":
        bound = _bound(a, b)
        if bound > _EXACT_FLOAT64_BOUND:
            return "direct"  # the exact integer route
        if bound > _ROUNDED_BOUND:
            return "im2col"  # exact float64 summation; no inexact method can be rounded safely
        dtype = np.dtype(np.float64)
    elif _float_dtype(result) is None:
        return "direct"
    else:
        dtype = _float_dtype(result)
    if _swap_needed(mode, a.shape, b.shape):
        a, b = b, a
    axes = [i for i in range(a.ndim) if a.shape[i] != 1 and b.shape[i] != 1]
    if not axes or len(axes) > 3:
        return "direct"
    sizes = [(a.shape[i], b.shape[i]) for i in axes]
    return _plan((1, 1, *(n for n, _ in sizes)), (1, 1, *(k for _, k in sizes)),
                 dtype, padding=[_pairs(mode, n, k, "convolve") for n, k in sizes]).method
