"""im2col's packing and col2im's scatter as loops: zero padding fused, the column buffer written in place.

``cols[n, (c, k), p] = x[n, c, s·p − lo + d·k]`` (zero where that index falls
in the padding), written straight into the GEMM's ``(N, C·prod(k), P)``
layout for the output positions of one chunk; col2im is its adjoint, adding
every column entry back into ``dx``. Both run one ``(sample, channel)``
plane per parallel task (each task owns its rows of ``cols`` and its plane
of ``dx``, so no two tasks write the same memory) and copy whole output rows
(contiguous in ``cols``; contiguous in ``x`` at stride 1, where LLVM
vectorises the copy). No padded copy of ``x`` and no padded ``dx`` is made.

Every kernel works on ``(N, C, D, H, W)`` (see :func:`convlab.kernels.as_3d`).
"""

from numba import prange

from . import as_3d, pad_3d
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
    for task in prange(n_batch * c_in):
        n, c = task // c_in, task % c_in
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    dst_tap = cols[n, ((c * kd + a) * kh + b) * kw + e]
                    offset = (ow0 * sw) + e * dw - pw
                    lo, hi = valid_range(w_out, w_in, sw, offset)
                    for od in range(d_out):
                        zd = (od0 + od) * sd - pd + a * dd
                        for oh in range(h_out):
                            zh = (oh0 + oh) * sh - ph + b * dh
                            dst = dst_tap[od, oh]
                            if zd < 0 or zd >= d_in or zh < 0 or zh >= h_in or hi <= lo:
                                dst[:] = 0
                                continue
                            dst[:lo] = 0
                            dst[hi:] = 0
                            src = x[n, c, zd, zh]
                            if sw == 1:
                                dst[lo:hi] = src[lo + offset:hi + offset]
                            else:
                                dst[lo:hi] = src[sw * lo + offset:sw * (hi - 1) + offset + 1:sw]


@njit(parallel=True)
def _col2im_add(cols, dx, kernel, stride, dilation, pad, first):
    n_batch, c_in, d_in, h_in, w_in = dx.shape
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    od0, oh0, ow0 = first
    d_out, h_out, w_out = cols.shape[2:]
    for task in prange(n_batch * c_in):
        n, c = task // c_in, task % c_in
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    src_tap = cols[n, ((c * kd + a) * kh + b) * kw + e]
                    offset = (ow0 * sw) + e * dw - pw
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
                            src = src_tap[od, oh, lo:hi]
                            if sw == 1:
                                dst = dx[n, c, zd, zh, lo + offset:hi + offset]
                            else:
                                dst = dx[n, c, zd, zh, sw * lo + offset:sw * (hi - 1) + offset + 1:sw]
                            for i in range(hi - lo):
                                dst[i] += src[i]


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


def col2im_add(cols, dx, kernel, stride, dilation, pad_lo, first):
    """The adjoint of :func:`im2col`: add ``cols`` into ``dx`` (C-contiguous, modified in place)."""
    _col2im_add(as_3d(cols), as_3d(dx), *_geometry(kernel, stride, dilation, pad_lo, first))
    return dx
