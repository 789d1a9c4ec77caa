"""im2col's packing and col2im's scatter as loops: zero padding fused, the column buffer written in place.

``cols[n, (c, k), p] = x[n, c, s·p − lo + d·k]`` (zero where that index falls
in the padding), written straight into the GEMM's ``(N, C·prod(k), P)``
layout for the output positions of one chunk; col2im is its adjoint, adding
every column entry back into ``dx``. Both run one ``(sample, channel)``
plane per parallel task (each task owns its rows of ``cols`` and its plane
of ``dx``, so no two tasks write the same memory). No padded copy of ``x``
and no padded ``dx`` is made.

Per tap, the output columns ``[lo, hi)`` whose input lies inside ``x`` are
the same for every output row (:func:`~convlab.kernels._ranges.valid_range`):
a row is a zero run, a copied run and a zero run, and rows wholly in the
padding are zero. numba details the speed depends on (as in
:mod:`convlab.kernels.winograd`): the arrays are indexed directly, as 2-D
``(plane, position)`` views made once per call, with unsigned indices
(:func:`~convlab.kernels._ranges.unsigned`); slicing a row per output row
(``dst[lo:hi] = src[...]``) costs tens of nanoseconds per view, more than the
copy of a 32-wide row, and a signed index costs a wrap-around test per
element that keeps LLVM from vectorising the copy. Stride 1 has its own loop
so that the copy reads ``x`` contiguously.

Every kernel works on ``(N, C, D, H, W)`` (see :func:`convlab.kernels.as_3d`).
"""

from numba import prange

from . import as_3d, pad_3d
from ._ranges import unsigned as _u
from ._ranges import valid_range
from ._runtime import njit

__all__ = ["col2im_add", "im2col"]


@njit(parallel=True)
def _im2col(x, cols, kernel, stride, dilation, pad, first):
    n_batch, c_in, d_in, h_in, w_in = x.shape
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    od0, oh0, ow0 = first
    d_out, h_out, w_out = cols.shape[2:]
    taps = kd * kh * kw
    src = x.reshape(n_batch * c_in, d_in * h_in * w_in)      # plane n·C + c
    dst = cols.reshape(n_batch * c_in * taps, d_out * h_out * w_out)  # row (n·C + c)·taps + tap
    for task in prange(n_batch * c_in):
        plane = _u(task)
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    row = _u(task * taps + (a * kh + b) * kw + e)
                    offset = ow0 * sw + e * dw - pw
                    lo, hi = valid_range(w_out, w_in, sw, offset)
                    for od in range(d_out):
                        zd = (od0 + od) * sd - pd + a * dd
                        for oh in range(h_out):
                            zh = (oh0 + oh) * sh - ph + b * dh
                            p0 = (od * h_out + oh) * w_out
                            if zd < 0 or zd >= d_in or zh < 0 or zh >= h_in:
                                for i in range(w_out):
                                    dst[row, _u(p0 + i)] = 0
                                continue
                            for i in range(lo):
                                dst[row, _u(p0 + i)] = 0
                            s0 = (zd * h_in + zh) * w_in + offset  # x index of output column 0 (>= 0 from lo on)
                            if sw == 1:
                                for i in range(lo, hi):
                                    dst[row, _u(p0 + i)] = src[plane, _u(s0 + i)]
                            else:
                                for i in range(lo, hi):
                                    dst[row, _u(p0 + i)] = src[plane, _u(s0 + i * sw)]
                            for i in range(hi, w_out):
                                dst[row, _u(p0 + i)] = 0


@njit(parallel=True)
def _col2im_add(cols, dx, kernel, stride, dilation, pad, first, zero):
    n_batch, c_in, d_in, h_in, w_in = dx.shape
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    od0, oh0, ow0 = first
    d_out, h_out, w_out = cols.shape[2:]
    taps = kd * kh * kw
    size = d_in * h_in * w_in
    dst = dx.reshape(n_batch * c_in, size)
    src = cols.reshape(n_batch * c_in * taps, d_out * h_out * w_out)
    for task in prange(n_batch * c_in):
        plane = _u(task)
        if zero:  # the first chunk to reach this plane: it starts from zero (no separate pass over dx)
            for i in range(size):
                dst[plane, _u(i)] = 0
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    row = _u(task * taps + (a * kh + b) * kw + e)
                    offset = ow0 * sw + e * dw - pw
                    lo, hi = valid_range(w_out, w_in, sw, offset)
                    if hi <= lo:
                        continue
                    for od in range(d_out):
                        zd = (od0 + od) * sd - pd + a * dd
                        if zd < 0 or zd >= d_in:
                            continue
                        for oh in range(h_out):
                            zh = (oh0 + oh) * sh - ph + b * dh
                            if zh < 0 or zh >= h_in:
                                continue
                            p0 = (od * h_out + oh) * w_out
                            s0 = (zd * h_in + zh) * w_in + offset
                            if sw == 1:
                                for i in range(lo, hi):
                                    dst[plane, _u(s0 + i)] += src[row, _u(p0 + i)]
                            else:
                                for i in range(lo, hi):
                                    dst[plane, _u(s0 + i * sw)] += src[row, _u(p0 + i)]


def _geometry(kernel, stride, dilation, pad_lo, first):
    return pad_3d(kernel, 1), pad_3d(stride, 1), pad_3d(dilation, 1), pad_3d(pad_lo, 0), pad_3d(first, 0)


def im2col(x, cols, kernel, stride, dilation, pad_lo, first):
    """Fill ``cols`` ``(N, C·prod(kernel), *out_chunk)`` from ``x`` ``(N, C, *n)``.

    ``out_chunk`` (the trailing shape of ``cols``) are the output positions
    from ``first`` on per axis; ``pad_lo`` is the zero padding in front
    (the padding behind needs no argument: positions past ``x`` read zero).
    """
    _im2col(as_3d(x), as_3d(cols), *_geometry(kernel, stride, dilation, pad_lo, first))
    return cols


def col2im_add(cols, dx, kernel, stride, dilation, pad_lo, first, zero=False):
    """The adjoint of :func:`im2col`: add ``cols`` into ``dx`` (C-contiguous, modified in place).

    ``zero=True`` sets ``dx`` to zero first (in the same pass), for the first chunk to reach it.
    """
    _col2im_add(as_3d(cols), as_3d(dx), *_geometry(kernel, stride, dilation, pad_lo, first), bool(zero))
    return dx
