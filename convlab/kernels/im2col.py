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

import numba
from numba import prange

from . import as_3d, pad_3d
from ._ranges import unsigned as _u
from ._ranges import valid_range
from ._runtime import get_threads, njit

__all__ = ["PARALLEL_MIN", "col2im_add", "geometry", "im2col"]

PARALLEL_MIN = 1 << 18
"""Column-buffer entries below which a kernel runs serially in the calling thread: a parallel launch
costs ~30 µs (numba's workqueue layer, 1 or 2 threads, measured on an empty loop), more than a second
thread saves on a copy of under ~1 MB."""


@numba.njit(cache=True)
def _pack_plane(src, dst, task, in_size, out_size, kernel, stride, dilation, pad, first):
    """Rows ``task·taps + tap`` of ``dst`` ``(N·C·taps, P)`` from plane ``task`` of ``src`` ``(N·C, D·H·W)``."""
    d_in, h_in, w_in = in_size
    d_out, h_out, w_out = out_size
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    od0, oh0, ow0 = first
    taps = kd * kh * kw
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


@numba.njit(cache=True)
def _scatter_plane(src, dst, task, in_size, out_size, kernel, stride, dilation, pad, first, zero):
    """Add rows ``task·taps + tap`` of ``src`` ``(N·C·taps, P)`` into plane ``task`` of ``dst`` ``(N·C, D·H·W)``."""
    d_in, h_in, w_in = in_size
    d_out, h_out, w_out = out_size
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    od0, oh0, ow0 = first
    taps = kd * kh * kw
    plane = _u(task)
    if zero:  # the first chunk to reach this plane: it starts from zero (no separate pass over dx)
        for i in range(d_in * h_in * w_in):
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


# One loop over the (sample, channel) planes, parallel and serial: the same per-plane code.
@njit(parallel=True)
def _im2col_parallel(src, dst, in_size, out_size, kernel, stride, dilation, pad, first):
    for task in prange(src.shape[0]):
        _pack_plane(src, dst, task, in_size, out_size, kernel, stride, dilation, pad, first)


@njit()
def _im2col_serial(src, dst, in_size, out_size, kernel, stride, dilation, pad, first):
    for task in range(src.shape[0]):
        _pack_plane(src, dst, task, in_size, out_size, kernel, stride, dilation, pad, first)


@njit(parallel=True)
def _col2im_parallel(src, dst, in_size, out_size, kernel, stride, dilation, pad, first, zero):
    for task in prange(dst.shape[0]):
        _scatter_plane(src, dst, task, in_size, out_size, kernel, stride, dilation, pad, first, zero)


@njit()
def _col2im_serial(src, dst, in_size, out_size, kernel, stride, dilation, pad, first, zero):
    for task in range(dst.shape[0]):
        _scatter_plane(src, dst, task, in_size, out_size, kernel, stride, dilation, pad, first, zero)


def geometry(kernel, stride, dilation, pad_lo):
    """The per-axis parameters as the kernels take them (three axes each): compute once per problem."""
    return pad_3d(kernel, 1), pad_3d(stride, 1), pad_3d(dilation, 1), pad_3d(pad_lo, 0)


def _planes(a):
    """``(N, C, *spatial)`` -> its 3-D spatial size and a C-contiguous ``(N·C, D·H·W)`` view (or copy)."""
    a3 = as_3d(a)
    return a3.shape[2:], a3.reshape(a3.shape[0] * a3.shape[1], -1)


def _check_contiguous(a, name):
    if not a.flags.c_contiguous:  # a copy would take the result and drop it
        raise ValueError(f"{name} must be C-contiguous: the kernel writes into it in place")


def _first(first):
    return (0,) * (3 - len(first)) + tuple(first)


def im2col(x, cols, geometry, first):
    """Fill ``cols`` ``(N, C·prod(kernel), *out_chunk)`` from ``x`` ``(N, C, *n)``.

    ``geometry`` is :func:`geometry` of the problem; ``out_chunk`` (the
    trailing shape of ``cols``) are the output positions from ``first`` on per
    axis; positions in the padding (in front or behind) read zero.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1.0, 5.0).reshape(1, 1, 4)
    >>> cols = np.empty((1, 2, 4))  # kernel 2, padding 1 in front: outputs 0..3
    >>> im2col(x, cols, geometry((2,), (1,), (1,), (1,)), (0,))[0]
    array([[0., 1., 2., 3.],
           [1., 2., 3., 4.]])
    """
    _check_contiguous(cols, "cols")
    in_size, src = _planes(x)
    out_size, dst = _planes(cols)
    run = _im2col_parallel if cols.size >= PARALLEL_MIN and get_threads() > 1 else _im2col_serial
    run(src, dst, in_size, out_size, *geometry, _first(first))
    return cols


def col2im_add(cols, dx, geometry, first, zero=False):
    """The adjoint of :func:`im2col`: add ``cols`` into ``dx`` (C-contiguous, modified in place).

    ``zero=True`` sets ``dx`` to zero first, in the same pass (for the first chunk to reach it).

    Examples
    --------
    >>> import numpy as np
    >>> cols = np.ones((1, 2, 4))
    >>> col2im_add(cols, np.empty((1, 1, 4)), geometry((2,), (1,), (1,), (1,)), (0,), zero=True)
    array([[[2., 2., 2., 1.]]])
    """
    _check_contiguous(dx, "dx")
    in_size, dst = _planes(dx)
    out_size, src = _planes(cols)
    run = _col2im_parallel if cols.size >= PARALLEL_MIN and get_threads() > 1 else _col2im_serial
    run(src, dst, in_size, out_size, *geometry, _first(first), bool(zero))
    return dx
