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
batch axis. Where it was measured to pay (:func:`block_product`: few channels or
a small batch) the spectra are instead transposed to one contiguous matrix per
frequency and multiplied, as real numbers, by a cached real block form of the
weight spectrum: one real GEMM per frequency, at up to twice the complex
matmul's rate on strided operands.

Backward (Mathieu, Henaff and LeCun 2013): ``dx = IFFT(DY * WD)`` read at
``0..n-1`` with ``dy`` zero-upsampled to positions ``s*i - lo`` (a transposed
convolution), and ``dw[k] = IFFT(conj(DY) * X)[d*k]``, contracted over the
batch per frequency. ``dw`` is needed at its ``K`` taps only: when ``K`` is
small next to ``log P`` the inverse is the DFT restricted to the taps, one
real GEMM for all ``C_out * C_in/G`` kernels (:func:`weight_gradient`), not
that many inverse FFTs.

Depthwise layers (one channel per group) have no contraction: their
per-frequency products are one compiled pass over the spectra
(:mod:`convlab.kernels.fft`).
"""

import dataclasses
import itertools
import math
import threading

import numpy as np
import scipy.fft

from .. import fft_backends
from ..phases import phase
from ..threads import SMALL_FLOPS
from .base import Method, WeightDerived, register
from .nonfinite import (
    all_finite,
    backward_input_exact_nonfinite,
    backward_weight_exact_nonfinite,
    forward_exact_nonfinite,
    outliers,
)

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
def _ranges(slices, size):
    """The positions a set of slices of one axis of length ``size`` covers, as sorted disjoint ``(start, stop)``
    ranges, or None when a slice skips positions (a stride: its gaps would be many small ranges)."""
    covered = []
    for s in slices:
        r = range(*s.indices(size))
        if len(r) > 1 and r.step != 1:
            return None
        if len(r):
            covered.append((r[0], r[-1] + 1))
    return sorted(covered)


def _zero_outside(buffer, per_axis):
    """Zero the part of ``buffer`` outside the block ``per_axis`` (buffer-side slices per trailing axis) covers;
    False, leaving ``buffer`` untouched, when a slice is strided.

    The block is about to be overwritten: zeroing only the padding around it writes the buffer once, not twice.
    """
    lead = buffer.ndim - len(per_axis)
    covered = [_ranges(slices, size) for slices, size in zip(per_axis, buffer.shape[lead:])]
    if any(c is None for c in covered):
        return False
    for axis, (ranges, size) in enumerate(zip(covered, buffer.shape[lead:])):
        edges = [0, *(e for r in ranges for e in r), size]  # gaps between the covered ranges: [edges[2i], edges[2i+1])
        gaps = [slice(a, b) for a, b in zip(edges[::2], edges[1::2]) if a < b]
        # the points outside the block whose first axis outside it is this one: inside on the axes before
        before = [[slice(a, b) for a, b in c] for c in covered[:axis]]
        after = (slice(None),) * (len(per_axis) - axis - 1)
        for combo in itertools.product(*before, gaps):
            buffer[(Ellipsis, *combo, *after)] = 0
    return True


def place(buffer, values, index, unique=True, segments=None, zeroed=False):
    """Put ``values`` at ``index`` of ``buffer`` and zeros elsewhere, adding where indices repeat.

    ``segments``, when given, is ``index`` as per-axis (source, destination) slice pairs (see
    :func:`_segments`): ``values`` are then copied a block at a time. ``zeroed``: ``buffer`` holds
    zeros already (a new ``np.zeros`` array, see ``zeroed_real_buffer`` in :mod:`convlab.fft_backends`);
    else only the padding around ``values`` is zeroed when it is whole blocks, the whole buffer otherwise.
    """
    if not zeroed:
        if segments is not None:
            per_axis = [[src for src, _ in pairs] for pairs in segments]
        elif index[0] is Ellipsis and all(isinstance(i, slice) for i in index[1:]):
            per_axis = [[i] for i in index[1:]]
        else:
            per_axis = None
        if not (unique and per_axis is not None and _zero_outside(buffer, per_axis)):
            buffer.fill(0)
    if segments is not None:
        for combo in itertools.product(*segments):
            buffer[(Ellipsis, *(src for src, _ in combo))] = values[(Ellipsis, *(dst for _, dst in combo))]
    elif unique:
        buffer[index] = values
    else:  # only circular padding with a window longer than the period folds several terms onto one bin
        np.add.at(buffer, index, values)
    return buffer


def padded(t, values, index, unique=True, segments=None):
    """``values`` placed (:func:`place`) in a real buffer of transform ``t``: a new array of zeros before
    FFTW's plan is made (no fill: only the pages the data touch are written), else the plan's own input."""
    buffer, zeroed = t.zeroed_real_buffer()
    return place(buffer, values, index, unique, segments, zeroed)


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
    # Small passes run FFTW in one thread, as BLAS (convlab.threads.SMALL_FLOPS): a threaded FFTW call whose
    # second thread waits for a busy core took 4 to 12 ms against 0.07 ms in one thread (256 x 16x16,
    # float32). The count is decided by the pass's size alone, not by the load of the moment as BLAS's is:
    # it is part of the cached transform's key, and a count that followed the load made a new FFTW plan
    # (planned in the background while the call ran on scipy.fft) each time the load crossed a core.
    if plan.flops < SMALL_FLOPS and backend.threads > 1:
        backend = dataclasses.replace(backend, threads=1)
    key = ("fft", "transform", role, L, batch, backend)
    return plan.cached(key, lambda: backend.real_transform((*batch, *L), len(L), plan.dtype))


# --------------------------------------------------------------- the frequency-domain contraction
def batched_matmul(a, b, out):
    """``a @ b`` over stacks of matrices into ``out``; a broadcast product when the inner size is 1."""
    if a.shape[-1] == 1:
        return np.multiply(a, b, out=out)
    return np.matmul(a, b, out=out)


def _depthwise(plan):
    """Several channels, each its own group: the products run as one compiled pass. One channel is
    left to numpy's broadcast multiply (already one pass), which keeps numba's import and kernel load
    (about 0.5 s) out of the first call on a single image, where scipy.signal.fftconvolve takes 35 ms."""
    return plan.in_channels == plan.out_channels == plan.groups > 1


def block_product(plan, n, a, b):
    """Whether a channel product of ``n`` rows, inner size ``a`` and ``b`` outputs per frequency runs as a
    real block GEMM on frequency-major spectra (:func:`channel_product`) rather than a complex matmul.

    Both paths hand the multiply to BLAS. numpy's complex ``matmul`` over the transforms' layout
    walks ``F`` small strided matrices; the block path first transposes the spectra to one contiguous
    ``(N, 2a)`` real matrix per frequency (:func:`convlab.kernels.fft.transpose`), multiplies by the
    cached ``(2a, 2b)`` real block weight ``[[Re S, Im S], [-Im S, Re S]]`` (interleaved) and
    transposes back. Measured single-threaded on a loaded 2-core machine, float32, product phase
    only (``/work/s3/fft3/prod.py``; old -> new, ms): N8 C32 F480 0.80 -> 0.55; N8 C64 F1860
    14.7 -> 12.0; N4 C16 F10512 6.3 -> 3.8; N256 C16 F500 16.1 -> 10.1; N32 C32 F144 0.69 -> 0.60;
    but N64 C64 F200 8.0 -> 9.2 and N2 C64 F1000 3.7 -> 4.0: with 64 channels the complex GEMM
    is as fast as the real one once ``N`` leaves the 4..16 range, and the transposes are then pure
    loss. Grouped layers keep the complex path (their frequency-major matrices are not one
    transpose away), as do products of inner or outer size 1 (a broadcast multiply).
    """
    if plan.groups != 1 or a < 2 or b < 2:
        return False
    return a <= 32 or 4 <= n <= 16


def uses_compiled_product(plan, n, pass_):
    """Whether the channel products of ``pass_`` for ``n`` rows run compiled kernels: depthwise products, and
    the transposes of the block path (:func:`block_product`); ``dw``'s other products are BLAS matmuls."""
    if _depthwise(plan):
        return True
    if pass_ == "forward":
        return block_product(plan, n, *plan.w_shape[1::-1])
    return pass_ == "backward_input" and block_product(plan, n, *plan.w_shape[:2])


def block_workspace_bytes(plan, bins, n):
    """Bytes the block path adds for ``n`` rows at ``bins`` frequencies: the frequency-major copies of
    both spectra and the block weights of both passes (each twice its complex spectrum)."""
    c_in, c_out, cplx = plan.in_channels, plan.out_channels, 2 * plan.dtype.itemsize
    passes = block_product(plan, n, c_in, c_out) + block_product(plan, n, c_out, c_in)
    if not passes:
        return 0
    return bins * (n * (c_in + c_out) + passes * 2 * c_in * c_out) * cplx


def _buffer(plan, role, shape, dtype):
    """A per-thread work array of the channel product, kept with the plan (like the transforms' buffers)."""
    local = plan.cached(("fft", "product buffers"), threading.local)
    key = (role, shape, dtype)
    buffers = local.__dict__.setdefault("arrays", {})
    if key not in buffers:
        buffers[key] = np.empty(shape, dtype)
    return buffers[key]


def channel_product(plan, A, S, out):
    """``out = A @ S`` per frequency and group, for spectra ``A`` ``(B, C_a, *Lh)`` and ``out`` ``(B, C_b, *Lh)``
    in the transforms' layout and ``S`` from :func:`weight_spectrum`; ``out`` is returned.

    A real ``S`` (``block=True``, see :func:`block_product`) is the ``(F, 1, 2 C_a, 2 C_b)`` block form:
    the product is then one real GEMM per frequency on frequency-major copies of ``A`` and ``out``.
    Depthwise layers have ``1 x 1`` matrices: their product is one compiled pass over the
    contiguous spectra (:func:`convlab.kernels.fft.depthwise_product`) instead of a broadcast
    multiply through the strided ``(F, G, B, 1)`` views.
    """
    if _depthwise(plan):
        from ..kernels import fft as kernels  # numba: imported on first use, never at import convlab

        b, c = A.shape[:2]
        per_channel = np.ascontiguousarray(S.reshape(-1, c).T)  # (C, F): 1/B of the spectra's size
        kernels.depthwise_product(A.reshape(b, c, -1), per_channel, out.reshape(b, c, -1))
        return out
    if not np.iscomplexobj(S):
        from ..kernels import fft as kernels

        n, a, b, bins = A.shape[0], A.shape[1], out.shape[1], S.shape[0]
        rows_a, rows_b = kernels.padded_rows(n * a, A.itemsize), kernels.padded_rows(n * b, A.itemsize)
        Af = kernels.transpose(A.reshape(n * a, bins), _buffer(plan, "a", (bins, rows_a), A.dtype))
        Yf = _buffer(plan, "b", (bins, rows_b), A.dtype)
        real = S.dtype
        np.matmul(Af[:, :n * a].view(real).reshape(bins, 1, n, 2 * a), S,
                  out=Yf[:, :n * b].view(real).reshape(bins, 1, n, 2 * b))
        kernels.transpose(Yf, out.reshape(n * b, bins))
        return out
    batched_matmul(grouped(A, plan.groups), S, out=grouped(out, plan.groups))
    return out


def weight_product(plan, DY, X, out, accumulate=False):
    """``out[o, c] (+)= sum_b conj(DY[b, o]) X[b, c]`` per frequency and group; ``DY`` ``(B, C_out, *Lh)``,
    ``X`` ``(B, C_in, *Lh)``, ``out`` ``(C_out, C_in/G, *Lh)``; depthwise in one compiled pass."""
    g = plan.groups
    if _depthwise(plan):
        from ..kernels import fft as kernels  # numba: imported on first use, never at import convlab

        b, c = X.shape[:2]
        flat = out.reshape(c, -1)
        if accumulate:
            flat += kernels.depthwise_weight_product(DY.reshape(b, c, -1), X.reshape(b, c, -1), np.empty_like(flat))
        else:
            kernels.depthwise_weight_product(DY.reshape(b, c, -1), X.reshape(b, c, -1), flat)
        return out
    # (F, G, C_out/G, B) @ (F, G, B, C_in/G)
    product = batched_matmul(np.conj(grouped(DY, g)).swapaxes(-1, -2), grouped(X, g),
                             out=np.empty_like(spectral_weights(out, g)) if accumulate else spectral_weights(out, g))
    if accumulate:
        spectral_weights(out, g)[...] += product
    return out


def kernel_spectrum(w, dilation, L, sign, numpy_fft=False):
    """``rfftn`` over the trailing axes of the kernel ``w`` with its tap ``j`` at ``sign * d*j mod L``
    (``sign=-1``: the flipped kernel, whose spectrum is the conjugate), zero elsewhere in a buffer of size ``L``.

    The kernel fills ``k`` of the ``L`` positions of each axis: the last axis is transformed for the
    kernel's rows only, and each earlier axis after its ``k`` transformed rows are scattered to their
    positions, so no pass runs over rows known to be zero (about half a full ``rfftn``'s time for a
    31x31 kernel at 1080x1080, where the first call pays it). ``scipy.fft`` (``numpy.fft`` for the
    numpy backend) runs it, whatever the backend: it is computed once per distinct ``w``.
    """
    module = np.fft if numpy_fft else scipy.fft
    m, lead = len(L), w.ndim - len(L)
    positions = [(sign * d * np.arange(k)) % n for d, k, n in zip(dilation, w.shape[lead:], L)]

    def scatter(values, axis, size, index):
        out = np.zeros(values.shape[:axis] + (size,) + values.shape[axis + 1:], values.dtype)
        where = (slice(None),) * axis + (index,)
        if len(np.unique(index)) == len(index):
            out[where] = values
        else:  # circular padding with a window longer than the period: taps fold onto one position
            np.add.at(out, where, values)
        return out

    in_place = {} if numpy_fft else {"overwrite_x": True}  # the scattered arrays are ours: no second array
    spectrum = module.rfft(scatter(w, w.ndim - 1, L[-1], positions[-1]), axis=-1)
    for a in range(m - 2, -1, -1):
        spectrum = module.fft(scatter(spectrum, lead + a, L[a], positions[a]), axis=lead + a, **in_place)
    return spectrum


def weight_spectrum(plan, w, kind, L=None, block=False):
    """Spectrum of the dilated kernel at FFT size ``L``, scaled by ``1/prod(L)``, as ``(F, G, a, b)``.

    ``kind="forward"``: ``conj(WD)`` as ``(F, G, C_in/G, C_out/G)``, for ``y = x @ conj(WD)``.
    ``kind="backward"``: ``WD`` as ``(F, G, C_out/G, C_in/G)``, for ``dx = dy @ WD``.
    ``block=True``: that spectrum ``S`` as the real ``(F, G, 2a, 2b)`` matrix with rows ``2i, 2i+1``
    and columns ``2j, 2j+1`` holding ``[[Re S, Im S], [-Im S, Re S]]``: a row of interleaved
    ``(re, im)`` pairs times it is the complex row times ``S`` (:func:`channel_product`).
    Each is computed once per distinct ``w`` (:class:`~convlab.algorithms.base.WeightDerived`)
    by :func:`kernel_spectrum`.
    """
    L = geometry(plan).L if L is None else L
    backend = fft_backends.get_fft_backend()
    slot = plan.cached(("fft", "weights", L, backend), WeightDerived)

    def compute():
        g = plan.groups
        # 1/prod(L) scales the K taps before the transform rather than the F bins after it; conj(WD) is the
        # spectrum of the kernel reversed about 0, so no pass over the spectrum conjugates it either
        spectrum = kernel_spectrum(w * (1.0 / math.prod(L)), plan.dilation, L, -1 if kind == "forward" else 1,
                                   numpy_fft=backend.name == "numpy")
        dims = (g, plan.out_channels // g, plan.w_shape[1], math.prod(L[:-1]) * (L[-1] // 2 + 1))
        order = (3, 0, 2, 1) if kind == "forward" else (3, 0, 1, 2)
        # one kernel (or one bin): the reordering is a view of the new array, already contiguous
        return np.ascontiguousarray(spectrum.reshape(dims).transpose(order))

    if not block:
        return slot.get(w, kind, compute)

    def compute_block():
        S = slot.get(w, kind, compute)
        f, g, a, b = S.shape
        M = np.empty((f, g, a, 2, b, 2), S.real.dtype)
        M[:, :, :, 0, :, 0] = M[:, :, :, 1, :, 1] = S.real
        M[:, :, :, 0, :, 1] = S.imag
        M[:, :, :, 1, :, 0] = -S.imag
        return M.reshape(f, g, 2 * a, 2 * b)

    return slot.get(w, (kind, "block"), compute_block)


def grouped(spectrum, groups):
    """``(N, C, *Lf)`` spectrum -> ``(F, G, N, C/G)`` view for per-group products."""
    n, c = spectrum.shape[:2]
    return spectrum.reshape(n, groups, c // groups, -1).transpose(3, 1, 0, 2)


def spectral_weights(spectrum, groups):
    """``(C_out, C_in/G, *Lf)`` spectrum -> ``(F, G, C_out/G, C_in/G)`` view."""
    c_out, c_in = spectrum.shape[:2]
    return spectrum.reshape(groups, c_out // groups, c_in, -1).transpose(3, 0, 1, 2)


# --------------------------------------------------------------- dw at its taps
#: The inverse transform of ``dw`` is read at its ``K`` taps only. A DFT restricted to the taps is one
#: real GEMM of ``4 F K`` flops per weight against a real FFT's ``2.5 P log2 P``; it runs while that ratio
#: is at most this. Measured single-threaded (float32, C_out*C_in/G inverse transforms against the GEMM):
#: ratio 0.6 (60x60, 3x3) 137 vs 33 ms; 2.1 (32x32, 5x5) 1.34 vs 0.79 ms; 12.7 (144x144, 15x15) 32 vs 75 ms:
#: the GEMM runs at four to five times the FLOP rate of the small batched FFTs.
TAP_DFT_RATIO = 4.0


def tap_positions(plan, L):
    """Per axis, the FFT-buffer index of each (dilated) tap, ``d*j mod L``."""
    return tuple(tuple((d * j) % n for j in range(k)) for d, k, n in zip(plan.dilation, plan.kernel_size, L))


def uses_tap_dft(L, taps):
    points, bins, count = math.prod(L), math.prod(L[:-1]) * (L[-1] // 2 + 1), math.prod(len(t) for t in taps)
    return 4 * bins * count <= TAP_DFT_RATIO * 2.5 * points * math.log2(max(points, 2))


def _tap_dft(L, taps, dtype):
    """``(2F, K)`` real matrix ``M`` with ``dw = DW.view(real) @ M`` for a half spectrum ``DW`` of ``F`` bins.

    ``M[2f] = Re E[f]``, ``M[2f+1] = -Im E[f]``, ``E[f, k] = c(f) e^{2 pi i sum_a f_a t_a(k) / L_a} / prod(L)``
    with ``c = 1`` on the last axis' bins 0 and ``L/2`` (their own mirror images) and 2 elsewhere: the
    inverse real FFT, evaluated at the taps only. Phases are reduced modulo ``L`` in integers first.
    """
    last = L[-1] // 2 + 1
    freqs = [np.arange(n) for n in L[:-1]] + [np.arange(last)]
    angle = np.zeros((1,) * len(L) + (1,) * len(L))
    for a, (f, t, n) in enumerate(zip(freqs, taps, L)):
        shape_f = [1] * len(L)
        shape_f[a] = len(f)
        shape_t = [1] * len(L)
        shape_t[a] = len(t)
        turns = np.outer(f, np.asarray(t)) % n / n  # (F_a, K_a), exact integers before the division
        angle = angle + turns.reshape(shape_f + shape_t)
    weight = np.full(last, 2.0)
    weight[0] = 1.0
    if L[-1] % 2 == 0:
        weight[-1] = 1.0
    weight = weight.reshape((1,) * (len(L) - 1) + (last,) + (1,) * len(L))
    E = weight * np.exp(2j * np.pi * angle) / math.prod(L)
    E = E.reshape(-1, math.prod(len(t) for t in taps))
    M = np.empty((2 * E.shape[0], E.shape[1]), dtype)
    M[0::2], M[1::2] = E.real, -E.imag
    return M


def weight_gradient_buffer(plan, L):
    """The ``(C_out, C_in/G, *Lh)`` complex array the ``dw`` spectrum is summed into, and the inverse
    transform that reads it (``None`` when :func:`uses_tap_dft`: no FFTW plan is made for it then)."""
    if uses_tap_dft(L, tap_positions(plan, L)):
        return np.empty((*plan.w_shape[:2], *L[:-1], L[-1] // 2 + 1), np.result_type(plan.dtype, np.complex64)), None
    tw = transform(plan, "w", L, plan.w_shape[:2])
    return tw.complex_buffer(), tw


def weight_gradient(plan, DW, L, taps, tw=None, index=None):
    """``dw`` at the taps from its half spectrum ``DW`` ``(C_out, C_in/G, *Lh)`` (unnormalised).

    By one real GEMM with the DFT restricted to the taps (:func:`_tap_dft`) when :func:`uses_tap_dft`,
    else by the inverse transform ``tw`` read at ``index``.
    """
    if uses_tap_dft(L, taps):
        M = plan.cached(("fft", "tap_dft", L, taps), lambda: _tap_dft(L, taps, plan.dtype))
        rows = DW.shape[0] * DW.shape[1]
        real = np.ascontiguousarray(DW).reshape(rows, -1).view(plan.dtype)
        return (real @ M).reshape(plan.w_shape)
    dw = take(tw.inverse(DW), index)
    dw *= 1.0 / math.prod(L)
    return dw


# --------------------------------------------------------------- the three passes
def forward_spectral(plan, x, w):
    """``y`` for finite ``x`` and ``w``."""
    geo = geometry(plan)
    tx = transform(plan, "x", geo.L, plan.x_shape[:2])
    ty = transform(plan, "y", geo.L, plan.output_shape[:2])
    with phase("pad"):
        buf = padded(tx, x, geo.inputs)
    with phase("transform_input"):
        X = tx.forward(buf)
        del buf  # freed before the next arrays of its size are allocated: they may reuse its pages
    with phase("transform_weight"):
        S = weight_spectrum(plan, w, "forward", block=block_product(plan, plan.batch, *plan.w_shape[1::-1]))
    with phase("product"):
        # one channel in and out: an elementwise product, which may overwrite X when X is a new array
        # (scipy.fft, or FFTW before its plans) rather than fault in the pages of another spectrum
        in_place = plan.in_channels == plan.out_channels == 1 and not tx.shares_buffers()
        Y = channel_product(plan, X, S, X if in_place else ty.complex_buffer())
    with phase("transform_output"):
        y = ty.inverse(Y)
    with phase("unpack"):
        return take(y, geo.outputs, geo.output_segments)


def _dx_spectral(plan, geo, grad_y, w, tx):
    """``(dx, DY)``: ``dx`` through ``tx``'s inverse, and ``grad_y``'s spectrum, which stays valid
    until the ``"y"`` transform's next forward (a joint backward reuses it for ``dw``)."""
    ty = transform(plan, "y", geo.L, plan.output_shape[:2])
    with phase("pad"):
        buf = padded(ty, grad_y, geo.outputs, geo.outputs_unique, geo.output_segments)
    with phase("transform_input"):
        DY = ty.forward(buf)
    with phase("transform_weight"):
        WD = weight_spectrum(plan, w, "backward", block=block_product(plan, plan.batch, *plan.w_shape[:2]))
    with phase("product"):
        DX = channel_product(plan, DY, WD, tx.complex_buffer())
    with phase("transform_output"):
        dx = tx.inverse(DX)
    with phase("unpack"):
        return take(dx, geo.inputs), DY


def backward_input_spectral(plan, grad_y, w):
    geo = geometry(plan)
    return _dx_spectral(plan, geo, grad_y, w, transform(plan, "x", geo.L, plan.x_shape[:2]))[0]


def backward_weight_spectral(plan, grad_y, x):
    geo = geometry(plan)
    tx = transform(plan, "x", geo.L, plan.x_shape[:2])
    ty = transform(plan, "y", geo.L, plan.output_shape[:2])
    with phase("pad"):
        buf = padded(tx, x, geo.inputs)
    with phase("transform_input"):
        X = tx.forward(buf)
    with phase("pad"):
        buf = padded(ty, grad_y, geo.outputs, geo.outputs_unique, geo.output_segments)
    with phase("transform_input"):
        DY = ty.forward(buf)
    return _dw_from_spectra(plan, geo, DY, X)


def _dw_from_spectra(plan, geo, DY, X):
    """``dw`` from the spectra of ``grad_y`` and ``x``: their product per frequency, read at the taps."""
    with phase("product"):
        DW, tw = weight_gradient_buffer(plan, geo.L)
        weight_product(plan, DY, X, DW)
    with phase("transform_output"):
        return weight_gradient(plan, DW, geo.L, tap_positions(plan, geo.L), tw, geo.taps)


def backward_both_spectral(plan, grad_y, x, w):
    """``(dx, dw)`` for finite arguments, transforming ``grad_y`` once for both products."""
    geo = geometry(plan)
    tx = transform(plan, "x", geo.L, plan.x_shape[:2])
    dx, DY = _dx_spectral(plan, geo, grad_y, w, tx)
    with phase("pad"):
        buf = padded(tx, x, geo.inputs)
    with phase("transform_input"):
        X = tx.forward(buf)
    return dx, _dw_from_spectra(plan, geo, DY, X)


def backward_both_exact_nonfinite(method, plan, grad_y, x, w, fast):
    """``fast(plan, grad_y, x, w)`` when the arguments and results are finite and free of outliers; else the
    two passes of ``method`` one by one, each with its own non-finite policy (:mod:`.nonfinite`)."""
    if all_finite(grad_y, x, w) and all(outliers(a) is None for a in (grad_y, x, w)):
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is detected from the results
            dx, dw = fast(plan, grad_y, x, w)
        if all_finite(dx, dw):
            return dx, dw
    return method.backward_input(plan, grad_y, w), method.backward_weight(plan, grad_y, x)


@register
class FFT(Method):
    """Convolution by real FFTs at fast sizes, channels contracted per frequency; see the module docstring."""

    name = "fft"
    domain = "frequency"

    def cost(self, spec, terms, pass_="forward"):
        return predicted_cost(spec, terms, pass_)

    def needs_compiled_kernels(self, spec, pass_="forward"):
        return uses_compiled_product(spec, spec.batch, pass_)
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
        return spectra + math.prod(L) * per_bin * real + block_workspace_bytes(plan, bins, plan.batch)

    def forward(self, plan, x, w):
        return forward_exact_nonfinite(plan, x, w, forward_spectral)

    def backward_input(self, plan, grad_y, w):
        return backward_input_exact_nonfinite(plan, grad_y, w, backward_input_spectral)

    def backward_weight(self, plan, grad_y, x):
        return backward_weight_exact_nonfinite(plan, grad_y, x, backward_weight_spectral)

    def backward_both(self, plan, grad_y, x, w):
        """``dx`` and ``dw`` from one transform of ``grad_y`` (see :meth:`Method.backward_both`)."""
        return backward_both_exact_nonfinite(self, plan, grad_y, x, w, backward_both_spectral)


def spectral_cost(spec, terms, shape, count, fancy_outputs=False, pass_="forward", chunks=1, rows=None):
    """``{phase: seconds}`` of FFT convolution over ``count`` independent blocks of FFT size ``shape``
    each (shared with fft_tiled); ``fancy_outputs`` when the outputs are read back by an
    integer-array index; ``chunks`` when the blocks are processed in that many groups, each with its
    own FFT plan executions and matmul call (the fixed costs per call, paid ``chunks`` times);
    ``rows`` the rows of one group's channel product (``N·count / chunks`` when not given), which
    decide its path as they do in :func:`channel_product`: the real block GEMM (:func:`block_product`)
    pays two compiled transposes of the spectra per group besides its GEMMs, a depthwise layer one
    compiled pass (:mod:`convlab.kernels.fft`)."""
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

    group_rows = rows if rows is not None else max(1, n * count // chunks)

    def product(m, k, p, channels=True):  # G complex GEMMs per bin, or a broadcast product per bin when depthwise
        if cg == 1 and kg == 1:
            passes = terms.passes(n * spec.out_channels * count * 2 * bins, 3)
            if _depthwise(spec):  # one compiled pass per group of blocks
                return passes + terms.launches(chunks, spec.flops)
            return passes + more * terms.call
        if channels and block_product(spec, group_rows, k, m):
            # per group: A's spectra transposed to frequency-major rows, one real (rows, 2k) @ (2k, 2m) GEMM
            # per bin, the result transposed back (two compiled passes over complex spectra)
            spectra = 2 * bins * p * (k + m)  # real values of A's and the output's spectra
            return (terms.gemm(group_rows, 2 * k, 2 * m, batch=bins) + more * terms.blas_call
                    + terms.passes(spectra, 2) + 2 * terms.launches(chunks, spec.flops))
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
                "product": product(kg, n * count, cg, channels=False),
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
