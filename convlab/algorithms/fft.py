"""The FFT method: the convolution theorem over the spatial axes, channels contracted per frequency.

Per spatial axis, with ``n`` the input size, ``(lo, hi)`` the padding, ``s``
the stride, ``d`` the dilation, ``e = d(k-1)+1`` the dilated kernel extent
and ``t1 = s(out-1) - lo``::

    y[i] = c[s*i - lo],   c[t] = sum_j x[t + j] * wd[j]      (wd: w dilated with zeros)

``c`` is a correlation, so in the frequency domain ``C = X * conj(WD)``. At
an FFT size ``L`` the inverse gives ``c`` folded modulo ``L``; no output we
read is folded onto another non-zero term when ``L >= max(t1 + e, n + lo)``
(the same bound makes ``dx`` and ``dw`` exact, see docs/fft.md). With
``padding_mode="circular"`` the padded input *is* the periodic extension of
``x``, so ``L = n`` exactly and every index is taken modulo ``n``.

Layout: FFT buffers are ``(batch, channels, *L)``, transformed over the
trailing axes (the fast, contiguous case for every FFT library); the spectra
are then viewed as ``(F, G, N, C/G)`` so that the channel contraction is one
batched complex matrix product per group with the ``F`` frequencies as the
batch axis.

Backward (Mathieu, Henaff and LeCun 2013): ``dx = IFFT(DY * WD)`` read at
``0..n-1`` with ``dy`` zero-upsampled to positions ``s*i - lo`` (a transposed
convolution), and ``dw[k] = IFFT(conj(DY) * X)[d*k]``, contracted over the
batch per frequency.
"""

import itertools
import math

import numpy as np
import scipy.fft

from .. import fft_backends
from ..phases import phase
from .base import Method, WeightDerived, register
from .nonfinite import backward_input_exact_nonfinite, backward_weight_exact_nonfinite, forward_exact_nonfinite

__all__ = ["FFT"]


# --------------------------------------------------------------- geometry
def axis_fft_size(n, lo, e, s, out, circular):
    """The FFT length of one axis: ``n`` for circular padding, else the smallest fast length that
    keeps every output we read free of wrap-around (and the upsampled ``dy`` free of collisions)."""
    if circular:
        return n
    t1 = s * (out - 1) - lo
    return scipy.fft.next_fast_len(max(t1 + e, n + lo, t1 + lo + 1), real=True)


def _progression(start, step, count, size):
    """``(start + step*i) mod size`` for ``i < count``: a slice when it does not wrap, else an index array."""
    last = start + step * (count - 1)
    if start >= 0 and last < size:
        return slice(start, last + 1, step)
    return (start + step * np.arange(count)) % size


def _index(per_axis):
    """Per-axis slices/index arrays -> one index of the trailing axes (``np.ix_`` for arrays)."""
    if all(isinstance(i, slice) for i in per_axis):
        return (Ellipsis, *per_axis)
    arrays = [np.arange(i.start, i.stop, i.step) if isinstance(i, slice) else i for i in per_axis]
    return (Ellipsis, *np.ix_(*arrays))


def _unique(per_axis):
    return all(isinstance(i, slice) or len(np.unique(i)) == len(i) for i in per_axis)


def _segments(start, step, count, size):
    """``(start + step*i) mod size`` for ``i < count`` as (source slice, destination slice) pairs, or None.

    A progression that wraps once (front padding: a negative start) is two strided slices, so
    reading or writing it copies blocks instead of gathering through an ``np.ix_`` index (5 to 10
    times slower). None when it wraps more than once or folds onto itself (circular padding).
    """
    last = start + step * (count - 1)
    if start >= 0 and last < size:
        return ((slice(start, last + 1, step), slice(0, count)),)
    if not -size <= start < 0 <= last < start + size:
        return None
    wrapped = -(start // step)  # how many i land below zero, i.e. ceil(-start / step)
    head = start + size
    pairs = [(slice(head, head + step * (wrapped - 1) + 1, step), slice(0, wrapped))]
    if wrapped < count:
        pairs.append((slice(start + step * wrapped, last + 1, step), slice(wrapped, count)))
    return tuple(pairs)


def _all_segments(per_axis):
    segments = [_segments(*p) for p in per_axis]
    return None if any(s is None for s in segments) else segments


def fft_lengths(spec):
    """The FFT length per axis (O(1): no index arrays, so workspace estimates stay free)."""
    circular = spec.padding_mode == "circular"
    return tuple(axis_fft_size(n, lo, e, s, out, circular)
                 for n, (lo, _), e, s, out in zip(spec.input_size, spec.padding, spec.dilated_kernel_size,
                                                  spec.stride, spec.output_size))


class Geometry:
    """Everything about a plan's FFT that does not depend on the data (built once per plan)."""

    def __init__(self, plan):
        self.L = fft_lengths(plan)
        self.F = math.prod(self.L[:-1]) * (self.L[-1] // 2 + 1)
        self.scale = 1.0 / float(np.prod(self.L))
        self.inputs = _index([_progression(0, 1, n, L) for n, L in zip(plan.input_size, self.L)])
        out_args = [(-lo, s, o, L) for (lo, _), s, o, L in zip(plan.padding, plan.stride, plan.output_size, self.L)]
        out = [_progression(*args) for args in out_args]
        self.output_segments = _all_segments(out_args)
        taps = [_progression(0, d, k, L) for d, k, L in zip(plan.dilation, plan.kernel_size, self.L)]
        self.outputs, self.outputs_unique = _index(out), _unique(out)
        self.taps, self.taps_unique = _index(taps), _unique(taps)


def geometry(plan):
    return plan.cached(("fft", "geometry"), lambda: Geometry(plan))


# --------------------------------------------------------------- moving data in and out of FFT buffers
def place(buffer, values, index, unique=True, segments=None):
    """Zero ``buffer`` and put ``values`` at ``index``, adding where indices repeat.

    ``segments``, when given, is ``index`` as per-axis (source, destination) slice pairs (see
    :func:`_segments`): ``values`` are then copied a block at a time.
    """
    buffer.fill(0)
    if segments is not None:
        for combo in itertools.product(*segments):
            buffer[(Ellipsis, *(src for src, _ in combo))] = values[(Ellipsis, *(dst for _, dst in combo))]
    elif unique:
        buffer[index] = values
    else:  # only circular padding with a window longer than the period folds several terms onto one bin
        np.add.at(buffer, index, values)
    return buffer


def take(array, index, segments=None):
    """``array[index]`` as a new contiguous array (never a view of a backend's buffer); by blocks when
    ``segments`` (``index`` as slice pairs, see :func:`_segments`) is given."""
    if segments is None:
        return np.array(array[index], order="C", copy=True)
    counts = tuple(pairs[-1][1].stop for pairs in segments)
    out = np.empty(array.shape[:array.ndim - len(segments)] + counts, array.dtype)
    for combo in itertools.product(*segments):
        out[(Ellipsis, *(dst for _, dst in combo))] = array[(Ellipsis, *(src for src, _ in combo))]
    return out


def transform(plan, role, L, batch):
    """The per-plan, per-backend real transform of ``(*batch, *L)``; ``role`` keeps the x, y and
    w spectra of one call in separate buffers even when their shapes agree."""
    backend = fft_backends.get_fft_backend()
    key = ("fft", "transform", role, L, batch, backend)
    return plan.cached(key, lambda: backend.real_transform((*batch, *L), len(L), plan.dtype))


# --------------------------------------------------------------- the frequency-domain contraction
def batched_matmul(a, b, out):
    """``a @ b`` over stacks of matrices into ``out``; a broadcast product when the inner size is 1."""
    if a.shape[-1] == 1:
        return np.multiply(a, b, out=out)
    return np.matmul(a, b, out=out)


def weight_spectrum(plan, w, kind, L=None, taps=None, taps_unique=True):
    """Spectrum of the dilated kernel at FFT size ``L``, scaled by ``1/prod(L)``, as ``(F, G, a, b)``.

    ``kind="forward"``: ``conj(WD)`` as ``(F, G, C_in/G, C_out/G)``, for ``y = x @ conj(WD)``.
    ``kind="backward"``: ``WD`` as ``(F, G, C_out/G, C_in/G)``, for ``dx = dy @ WD``.
    """
    geo = geometry(plan) if L is None else None
    L = geo.L if L is None else L
    taps, taps_unique = (geo.taps, geo.taps_unique) if geo is not None else (taps, taps_unique)
    slot = plan.cached(("fft", "weights", L, fft_backends.get_fft_backend()), WeightDerived)

    def compute():
        g = plan.groups
        t = transform(plan, "w", L, plan.w_shape[:2])
        spectrum = t.forward(place(t.real_buffer(), w, taps, taps_unique))
        spectrum = spectrum.reshape(g, plan.out_channels // g, plan.w_shape[1], -1)
        scale = 1.0 / float(np.prod(L))
        if kind == "forward":
            return np.ascontiguousarray(np.conj(spectrum).transpose(3, 0, 2, 1)) * scale
        return np.ascontiguousarray(spectrum.transpose(3, 0, 1, 2)) * scale

    return slot.get(w, kind, compute)


def grouped(spectrum, groups):
    """``(N, C, *Lf)`` spectrum -> ``(F, G, N, C/G)`` view for per-group products."""
    n, c = spectrum.shape[:2]
    return spectrum.reshape(n, groups, c // groups, -1).transpose(3, 1, 0, 2)


def spectral_weights(spectrum, groups):
    """``(C_out, C_in/G, *Lf)`` spectrum -> ``(F, G, C_out/G, C_in/G)`` view."""
    c_out, c_in = spectrum.shape[:2]
    return spectrum.reshape(groups, c_out // groups, c_in, -1).transpose(3, 0, 1, 2)


# --------------------------------------------------------------- the three passes
def forward_spectral(plan, x, w):
    """``y`` for finite ``x`` and ``w``."""
    geo, g = geometry(plan), plan.groups
    tx = transform(plan, "x", geo.L, plan.x_shape[:2])
    ty = transform(plan, "y", geo.L, plan.output_shape[:2])
    with phase("pad"):
        buf = place(tx.real_buffer(), x, geo.inputs)
    with phase("transform_input"):
        X = grouped(tx.forward(buf), g)
    with phase("transform_weight"):
        S = weight_spectrum(plan, w, "forward")
    with phase("product"):
        Y = ty.complex_buffer()
        batched_matmul(X, S, out=grouped(Y, g))
    with phase("transform_output"):
        y = ty.inverse(Y)
    with phase("unpack"):
        return take(y, geo.outputs, geo.output_segments)


def backward_input_spectral(plan, grad_y, w):
    geo, g = geometry(plan), plan.groups
    ty = transform(plan, "y", geo.L, plan.output_shape[:2])
    tx = transform(plan, "x", geo.L, plan.x_shape[:2])
    with phase("pad"):
        buf = place(ty.real_buffer(), grad_y, geo.outputs, geo.outputs_unique, geo.output_segments)
    with phase("transform_input"):
        DY = grouped(ty.forward(buf), g)
    with phase("transform_weight"):
        WD = weight_spectrum(plan, w, "backward")
    with phase("product"):
        DX = tx.complex_buffer()
        batched_matmul(DY, WD, out=grouped(DX, g))
    with phase("transform_output"):
        dx = tx.inverse(DX)
    with phase("unpack"):
        return take(dx, geo.inputs)


def backward_weight_spectral(plan, grad_y, x):
    geo, g = geometry(plan), plan.groups
    tx = transform(plan, "x", geo.L, plan.x_shape[:2])
    ty = transform(plan, "y", geo.L, plan.output_shape[:2])
    tw = transform(plan, "w", geo.L, plan.w_shape[:2])
    with phase("pad"):
        buf = place(tx.real_buffer(), x, geo.inputs)
    with phase("transform_input"):
        X = grouped(tx.forward(buf), g)
    with phase("pad"):
        buf = place(ty.real_buffer(), grad_y, geo.outputs, geo.outputs_unique, geo.output_segments)
    with phase("transform_input"):
        DY = grouped(ty.forward(buf), g)
    with phase("product"):
        DW = tw.complex_buffer()
        # dw[o, c] = sum_n conj(DY[n, o]) X[n, c] per frequency and group: (F, G, C_out/G, N) @ (F, G, N, C_in/G)
        batched_matmul(np.conj(DY).swapaxes(-1, -2), X, out=spectral_weights(DW, g))
    with phase("transform_output"):
        dw = tw.inverse(DW)
    with phase("unpack"):
        dw = take(dw, geo.taps)
        dw *= geo.scale
    return dw


@register
class FFT(Method):
    """Convolution by real FFTs at fast sizes, channels contracted per frequency; see the module docstring."""

    name = "fft"
    domain = "frequency"

    def cost(self, spec, terms, pass_="forward"):
        return predicted_cost(spec, terms, pass_)
    native_padding_modes = frozenset({"zeros", "circular"})

    def error_bound(self, plan, pass_="forward"):
        """Bound on the normwise relative error of any pass, for inputs of comparable magnitude.

        ``2u (log2 P + log2 S + 1)``: a length-``P`` FFT grows rounding errors by
        ``O(log2 P)`` relative to the signal's norm, and the per-frequency sum of
        ``S`` channel (or batch) products adds ``log2 S``. Measured float32 errors on
        random data stay below a tenth of it (2.5e-7 on a 16-channel 56×56 layer,
        bound 2e-6), so the bound refuses an FFT only far beyond any real size: its
        weakness is data whose small outputs matter next to a much larger maximum,
        which a bound from shapes cannot see (see docs/auto.md).
        """
        points = math.prod(fft_lengths(plan))
        summed = {"backward_weight": plan.batch, "backward_input": plan.out_channels // plan.groups}
        terms = summed.get(pass_, plan.in_channels // plan.groups)
        return float(np.finfo(plan.dtype).eps * (math.log2(points) + math.log2(terms) + 1.0))

    def workspace_bytes(self, plan):
        # The padded real buffers and the half spectra of x, y and w, and the cached weight spectra.
        L = fft_lengths(plan)
        bins = math.prod(L[:-1]) * (L[-1] // 2 + 1)
        real, cplx = plan.dtype.itemsize, 2 * plan.dtype.itemsize
        per_bin = plan.batch * (plan.in_channels + plan.out_channels) + plan.out_channels * plan.w_shape[1]
        spectra = bins * per_bin * cplx + 2 * bins * plan.out_channels * plan.w_shape[1] * cplx
        return spectra + math.prod(L) * per_bin * real

    def forward(self, plan, x, w):
        return forward_exact_nonfinite(plan, x, w, forward_spectral)

    def backward_input(self, plan, grad_y, w):
        return backward_input_exact_nonfinite(plan, grad_y, w, backward_input_spectral)

    def backward_weight(self, plan, grad_y, x):
        return backward_weight_exact_nonfinite(plan, grad_y, x, backward_weight_spectral)


def spectral_cost(spec, terms, shape, count, fancy_outputs=False, pass_="forward", chunks=1):
    """``{phase: seconds}`` of FFT convolution over ``count`` independent blocks of FFT size ``shape``
    each (shared with fft_tiled); ``fancy_outputs`` when the outputs are read back by an
    integer-array index; ``chunks`` when the blocks are processed in that many groups, each with its
    own FFT plan executions and matmul call (the fixed costs per call, paid ``chunks`` times)."""
    cg, kg = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    n, w = spec.batch, math.prod(spec.w_shape)
    x, y = n * spec.in_channels * math.prod(spec.input_size), math.prod(spec.output_shape)
    bins = math.prod(shape[:-1]) * (shape[-1] // 2 + 1)
    points = math.prod(shape)
    more = chunks - 1  # executions beyond the one each term prices

    def forward_ffts(signals):  # zero-filled real buffers, then the real FFTs
        return (terms.passes(signals * count * points, 2) + terms.fft(signals * count, shape)
                + more * (terms.fft_call + terms.call))

    def inverse_ffts(signals):
        return terms.fft(signals * count, shape) + terms.passes(signals * count * points, 1) + more * terms.fft_call

    def product(m, k, p):  # G complex GEMMs per bin, or a broadcast product per bin when depthwise
        if cg == 1 and kg == 1:
            return terms.passes(n * spec.out_channels * count * 2 * bins, 3) + more * terms.call
        return terms.gemm(m, k, p, batch=bins * spec.groups, complex_=True) + more * terms.blas_call

    taken = terms.fancy if fancy_outputs else terms.gather
    # The weight spectra are cached per spec and recomputed only when ``w`` changes (WeightDerived):
    # a steady-state call pays one comparison of ``w`` with its stored copy, not ``C_out·C_in/G`` FFTs;
    # every pass first checks its two inputs for non-finite values (one read of each).
    if pass_ == "backward_input":
        return {"transform_input": terms.passes(y + w, 1) + forward_ffts(n * spec.out_channels),
                "transform_weight": terms.passes(w, 2), "product": product(cg, kg, n * count),
                "transform_output": inverse_ffts(n * spec.in_channels), "unpack": terms.gather(x)}
    if pass_ == "backward_weight":
        return {"transform_input": terms.passes(x + y, 1) + forward_ffts(n * spec.in_channels)
                + forward_ffts(n * spec.out_channels),  # x's and dy's transforms: two plan executions
                "product": product(kg, n * count, cg),
                "transform_output": terms.fft(spec.out_channels * cg, shape) + terms.passes(w, 2),
                "unpack": terms.fancy(w)}
    return {"transform_input": terms.passes(x + w, 1) + forward_ffts(n * spec.in_channels),
            "transform_weight": terms.passes(w, 2), "product": product(kg, cg, n * count),
            "transform_output": inverse_ffts(n * spec.out_channels), "unpack": taken(y)}


def predicted_cost(spec, terms, pass_="forward"):
    """Real FFTs of ``x`` and ``y`` at the method's own sizes and ``G`` complex GEMMs per frequency."""
    sizes = fft_lengths(spec)
    # outputs at s·i - lo: a negative start (front padding) wraps; once, take() copies two blocks per axis,
    # more often (circular padding with a long window) it gathers through np.ix_
    fancy = _all_segments([(-lo, s, o, L) for (lo, _), s, o, L in
                           zip(spec.padding, spec.stride, spec.output_size, sizes)]) is None
    return spectral_cost(spec, terms, sizes, 1, fancy_outputs=fancy, pass_=pass_)
