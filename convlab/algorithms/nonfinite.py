"""One non-finite policy for the methods whose arithmetic mixes many inputs into each value.

An FFT or a Winograd transform mixes every value of a block into every
other, so one NaN or infinity would spoil the whole block, and a finite sum
near the top of the dtype's range can overflow in a transform where the
direct sum does not. fft, fft_tiled and winograd all route through here, so
their results agree with the direct method wherever it gives a non-finite
value, and they never return a non-finite value it does not give:

* forward: the finite part by the fast method with the non-finite inputs
  zeroed; the outputs whose window touches a non-finite input (located by the
  same fast method on indicator arrays: counts, exact to far below 0.5) or
  that came out non-finite are recomputed as direct sums, whose NaN versus
  ±Inf IEEE arithmetic then decides exactly as it does for the direct method;
* backward: with a non-finite input, or a non-finite result from finite inputs
  (an overflow inside a transform), the pass is run by the direct method.

Huge dynamic range is the finite cousin of a non-finite input: a transform's
rounding error is relative to the largest values it mixes, so one 1e200
pixel among values near 1 would leave every output of its block wrong by
about 1e184, not only those whose window holds it. Entries far above the bulk
of an input (:func:`outliers`: more than ``tolerance / eps`` times the
median nonzero magnitude of a sample, about 1e6 in float64 and 800 in
float32) are therefore treated as non-finite ones are: zeroed for the fast
forward pass, their outputs recomputed as direct sums; a backward pass with
such an argument runs directly. This is a safety net for isolated outliers
(at most 1/64 of the entries): an input whose range is wide throughout keeps
the normwise accuracy of the method (error relative to the largest output).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..padding import pad
from ..problem import ConvSpec
from ..tolerances import tolerance
from .direct import Direct

__all__ = ["all_finite", "outliers", "forward_exact_nonfinite", "backward_input_exact_nonfinite",
           "backward_weight_exact_nonfinite"]

_SAMPLE = 4096  # entries sampled for the bulk magnitude: O(1) work beside the O(n) max
_MAX_OUTLIER_FRACTION = 1 / 64  # beyond this the range is wide throughout, not a few outliers

Pass = Callable[[ConvSpec, np.ndarray, np.ndarray], np.ndarray]
_REFERENCE = Direct()


def _overflow_is_handled():
    """A transform that overflows is detected from its result and recomputed: numpy need not warn."""
    return np.errstate(over="ignore", invalid="ignore")


def all_finite(*arrays: np.ndarray) -> bool:
    return all(np.isfinite(a).all() for a in arrays)


def outliers(a: np.ndarray) -> np.ndarray | None:
    """Mask of the finite entries of ``a`` far above its bulk, or ``None`` when there are none (or too many).

    "Far above" is more than ``tolerance / eps`` of the dtype times the median
    nonzero magnitude of an evenly spaced sample: beyond that, a transform's
    rounding error relative to such an entry exceeds the tolerance relative
    to the bulk. Costs one max and one min over ``a`` and a count over the
    sample unless the largest magnitude is suspicious (see :func:`_no_outliers`).

    Examples
    --------
    >>> x = np.ones(1000); x[3] = 1e200
    >>> np.flatnonzero(outliers(x)).tolist(), outliers(np.linspace(0, 1e5, 1000))
    ([3], None)
    """
    if a.size == 0 or a.dtype.kind != "f":
        return None
    ratio = float(tolerance(a.dtype) / np.finfo(a.dtype).eps)  # Python floats: inf, never a warning
    flat = a.reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    if _no_outliers(flat, step, ratio):
        return None
    with np.errstate(invalid="ignore"):
        largest = max(abs(float(np.nanmax(a, initial=-np.inf))), abs(float(np.nanmin(a, initial=np.inf))))
    sample = np.abs(flat[::step])
    sample = sample[np.isfinite(sample) & (sample > 0)]
    if sample.size == 0 or not np.isfinite(largest) or largest <= ratio * float(np.median(sample)):
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        mask = np.abs(a) > ratio * float(np.median(sample))
    mask &= np.isfinite(a)
    count = int(np.count_nonzero(mask))
    return mask if 0 < count <= max(1, a.size * _MAX_OUTLIER_FRACTION) else None


def _no_outliers(flat: np.ndarray, step: int, ratio: float) -> bool:
    """True only when :func:`outliers` finds none, proved without the sample's median.

    With ``a`` finite and ``largest = max|a|``: ``largest <= ratio * median``
    holds once more than half of the ``m`` nonzero sampled magnitudes ``s``
    have ``ratio * s >= largest`` (at least ``m // 2 + 1`` of them: both middle
    values of the sorted sample, hence their mean, the median, are then such
    an ``s``, and rounding is monotonic). A count instead of a partition, and
    ``largest`` from ``max``/``min`` without ``nan`` handling (a NaN or an
    infinity makes it non-finite and the caller takes the full route).
    """
    sample = np.abs(flat[::step], dtype=np.float64)  # float64: the same products the full route compares
    largest = float(sample.max()) if step == 1 else max(abs(float(flat.max())), abs(float(flat.min())))
    if not largest < math.inf:  # NaN or infinity: the full route decides
        return False
    if largest == 0.0:  # all zeros: no nonzero sample, no outlier
        return True
    nonzero = int(np.count_nonzero(sample))
    return int(np.count_nonzero(sample * ratio >= largest)) >= nonzero // 2 + 1


def _clean(a: np.ndarray) -> bool:
    """True only when ``a`` is finite and :func:`outliers` finds none in it (False may be either)."""
    if a.size == 0 or a.dtype.kind != "f":
        return False
    return _no_outliers(a.reshape(-1), max(1, a.size // _SAMPLE), float(tolerance(a.dtype) / np.finfo(a.dtype).eps))


def forward_exact_nonfinite(spec: ConvSpec, x: np.ndarray, w: np.ndarray, fast_forward: Pass) -> np.ndarray:
    """``fast_forward(spec, x, w)``, with every output the direct method makes non-finite, that the
    fast method made non-finite, or whose window holds an outlier of ``x``, recomputed as a direct sum."""
    if _clean(x) and np.isfinite(w).all():  # the common case: one max and a sample count over x
        finite, huge = True, None
    else:
        finite = all_finite(x, w)
        huge = outliers(x) if finite else None
    if finite and huge is None:
        with _overflow_is_handled():
            y = fast_forward(spec, x, w)
        if not np.isfinite(y).all():
            overflowed = ~np.isfinite(y)
            y[overflowed] = _direct_at(spec, x, w, np.nonzero(overflowed))
        return y
    bad_x, bad_w = ~np.isfinite(x), ~np.isfinite(w)
    if huge is not None:
        bad_x |= huge
    with _overflow_is_handled():
        y = fast_forward(spec, np.where(bad_x, 0, x), np.where(bad_w, 0, w))
    touched = ~np.isfinite(y)
    if bad_x.any():
        touched |= fast_forward(spec, bad_x.astype(spec.dtype), np.ones(spec.w_shape, spec.dtype)) > 0.5
    touched[:, bad_w.reshape(spec.out_channels, -1).any(axis=1)] = True
    y[touched] = _direct_at(spec, x, w, np.nonzero(touched))
    return y


def _backward_exact(fast: Pass, reference: Pass, spec: ConvSpec, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``fast(spec, a, b)`` when its arguments and its result are finite (and its arguments free of
    :func:`outliers`), else ``reference(spec, a, b)``."""
    if all_finite(a, b) and outliers(a) is None and outliers(b) is None:
        with _overflow_is_handled():
            result = fast(spec, a, b)
        if all_finite(result):
            return result
    return reference(spec, a, b)


def backward_input_exact_nonfinite(spec: ConvSpec, grad_y: np.ndarray, w: np.ndarray, fast: Pass) -> np.ndarray:
    """``dx`` by ``fast``, or by the direct method when an argument or the result is not finite."""
    return _backward_exact(fast, _REFERENCE.backward_input, spec, grad_y, w)


def backward_weight_exact_nonfinite(spec: ConvSpec, grad_y: np.ndarray, x: np.ndarray, fast: Pass) -> np.ndarray:
    """``dw`` by ``fast``, or by the direct method when an argument or the result is not finite."""
    return _backward_exact(fast, _REFERENCE.backward_weight, spec, grad_y, x)


def _direct_at(spec: ConvSpec, x: np.ndarray, w: np.ndarray, positions: tuple) -> np.ndarray:
    """``y`` at the output positions ``(n, o, *i)`` only, summed directly (loop over kernel taps)."""
    n, o, *i = positions
    xp = pad(x, spec.padding, spec.padding_mode)
    cg = spec.w_shape[1]
    channels = (o // (spec.out_channels // spec.groups))[:, None] * cg + np.arange(cg)  # (T, C_in/G)
    taps = w.reshape(spec.out_channels, cg, -1)
    total = np.zeros((len(n), cg), spec.dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf and 0 * inf are the point here
        for k, offset in enumerate(np.ndindex(*spec.kernel_size)):
            where = tuple(ii[:, None] * s + j * d for ii, s, j, d in zip(i, spec.stride, offset, spec.dilation))
            total += xp[(n[:, None], channels, *where)] * taps[o[:, None], np.arange(cg), k]
        return total.sum(axis=1)
