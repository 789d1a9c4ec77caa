"""The direct method's loops: the literal sliding window, zero padding fused, over ``(N, C, D, H, W)``.

``y[n, o, i] = Σ_c Σ_k w[o, c, k] · x[n, g(o)·Cg + c, s·i − p + d·k]`` with
the terms whose input index falls in the padding skipped (they are zeros),
so no padded copy is made. The innermost loop runs along the last output
axis: contiguous in ``y`` and, at stride 1, in ``x`` as well, where LLVM
vectorises it. Each output row is finished before the next (it stays in L1
while every input channel and tap is added into it).

The backward passes are the same loop nest read the other way:

* ``dx[n, c, s·i − p + d·k] += w[o, c, k] · dy[n, o, i]``, one input plane per
  parallel task (no two tasks write the same plane);
* ``dw[o, c, k] = Σ_n Σ_i dy[n, o, i] · x[n, c, s·i − p + d·k]``, one weight
  per parallel task, accumulated into a row of partial sums (so the inner
  loop vectorises) that is reduced once at the end: no per-sample temporary.

Depthwise and grouped layers need no separate path: the input channels of
output ``o`` are those of its group, and with one channel per group the
loop over ``c`` has one trip.
"""

import numpy as np
from numba import prange

from . import as_3d, pad_3d
from ._ranges import valid_range
from ._runtime import njit

__all__ = ["backward_input", "backward_weight", "forward"]


@njit(parallel=True)
def _forward(x, w, y, stride, dilation, pad):
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_out, cg, kd, kh, kw = w.shape
    _, _, d_out, h_out, w_out = y.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    for task in prange(n_batch * c_out * d_out):
        n = task // (c_out * d_out)
        o = (task // d_out) % c_out
        od = task % d_out
        c0 = (o // cog) * cg
        for oh in range(h_out):
            row = y[n, o, od, oh]
            row[:] = 0
            for c in range(cg):
                for a in range(kd):
                    zd = od * sd - pd + a * dd
                    if zd < 0 or zd >= d_in:
                        continue
                    for b in range(kh):
                        zh = oh * sh - ph + b * dh
                        if zh < 0 or zh >= h_in:
                            continue
                        xrow = x[n, c0 + c, zd, zh]
                        for e in range(kw):
                            weight = w[o, c, a, b, e]
                            offset = e * dw - pw
                            lo, hi = valid_range(w_out, w_in, sw, offset)
                            if hi <= lo:
                                continue
                            # Slices, not offset indices: numba then drops its negative-index check
                            # and LLVM vectorises the loop (measured 4-5x).
                            dst = row[lo:hi]
                            if sw == 1:
                                src = xrow[lo + offset:hi + offset]
                                for i in range(hi - lo):
                                    dst[i] += weight * src[i]
                            else:
                                strided = xrow[sw * lo + offset:sw * (hi - 1) + offset + 1:sw]
                                for i in range(hi - lo):
                                    dst[i] += weight * strided[i]


@njit(parallel=True)
def _backward_input(dy, w, dx, stride, dilation, pad):
    n_batch, c_out, d_out, h_out, w_out = dy.shape
    _, c_in, d_in, h_in, w_in = dx.shape
    _, cg, kd, kh, kw = w.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    for task in prange(n_batch * c_in):
        n = task // c_in
        ci = task % c_in
        g, c = ci // cg, ci % cg
        dx[n, ci] = 0
        for o in range(g * cog, (g + 1) * cog):
            for od in range(d_out):
                for a in range(kd):
                    zd = od * sd - pd + a * dd
                    if zd < 0 or zd >= d_in:
                        continue
                    for oh in range(h_out):
                        dyrow = dy[n, o, od, oh]
                        for b in range(kh):
                            zh = oh * sh - ph + b * dh
                            if zh < 0 or zh >= h_in:
                                continue
                            dxrow = dx[n, ci, zd, zh]
                            for e in range(kw):
                                weight = w[o, c, a, b, e]
                                offset = e * dw - pw
                                lo, hi = valid_range(w_out, w_in, sw, offset)
                                if hi <= lo:
                                    continue
                                src = dyrow[lo:hi]
                                if sw == 1:
                                    dst = dxrow[lo + offset:hi + offset]
                                    for i in range(hi - lo):
                                        dst[i] += weight * src[i]
                                else:
                                    strided = dxrow[sw * lo + offset:sw * (hi - 1) + offset + 1:sw]
                                    for i in range(hi - lo):
                                        strided[i] += weight * src[i]


@njit(parallel=True)
def _backward_weight(dy, x, dw_out, stride, dilation, pad):
    n_batch, c_out, d_out, h_out, w_out = dy.shape
    _, c_in, d_in, h_in, w_in = x.shape
    _, cg, kd, kh, kw = dw_out.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    taps = kd * kh * kw
    for task in prange(c_out * cg * taps):
        o = task // (cg * taps)
        c = (task // taps) % cg
        tap = task % taps
        a, b, e = tap // (kh * kw), (tap // kw) % kh, tap % kw
        ci = (o // cog) * cg + c
        offset = e * dw - pw
        lo, hi = valid_range(w_out, w_in, sw, offset)
        partial = np.zeros(max(hi - lo, 0), dy.dtype)
        if hi <= lo:
            dw_out[o, c, a, b, e] = 0
            continue
        for n in range(n_batch):
            for od in range(d_out):
                zd = od * sd - pd + a * dd
                if zd < 0 or zd >= d_in:
                    continue
                for oh in range(h_out):
                    zh = oh * sh - ph + b * dh
                    if zh < 0 or zh >= h_in:
                        continue
                    src = dy[n, o, od, oh, lo:hi]
                    if sw == 1:
                        xs = x[n, ci, zd, zh, lo + offset:hi + offset]
                        for i in range(hi - lo):
                            partial[i] += src[i] * xs[i]
                    else:
                        strided = x[n, ci, zd, zh, sw * lo + offset:sw * (hi - 1) + offset + 1:sw]
                        for i in range(hi - lo):
                            partial[i] += src[i] * strided[i]
        dw_out[o, c, a, b, e] = partial.sum()


def _geometry(stride, dilation, pad_lo):
    return pad_3d(stride, 1), pad_3d(dilation, 1), pad_3d(pad_lo, 0)


def forward(x, w, output_size, stride, dilation, pad_lo):
    """Correlation of ``x`` ``(N, C_in, *n)`` with ``w`` ``(C_out, C_in/G, *k)``, zero padding ``pad_lo`` in front.

    The padding behind is implied by ``output_size``; groups by the shapes.
    Returns ``y`` of shape ``(N, C_out, *output_size)`` in ``x``'s dtype.
    """
    y = np.empty((x.shape[0], w.shape[0], *output_size), x.dtype)
    _forward(as_3d(x), as_3d(w), as_3d(y), *_geometry(stride, dilation, pad_lo))
    return y


def backward_input(grad_y, w, input_size, groups, stride, dilation, pad_lo):
    """``dx`` ``(N, C_in, *input_size)``: the adjoint of :func:`forward` in ``x``."""
    dx = np.empty((grad_y.shape[0], groups * w.shape[1], *input_size), grad_y.dtype)
    _backward_input(as_3d(grad_y), as_3d(w), as_3d(dx), *_geometry(stride, dilation, pad_lo))
    return dx


def backward_weight(grad_y, x, kernel_size, groups, stride, dilation, pad_lo):
    """``dw`` ``(C_out, C_in/G, *kernel_size)``: the adjoint of :func:`forward` in ``w``."""
    dw = np.empty((grad_y.shape[1], x.shape[1] // groups, *kernel_size), x.dtype)
    _backward_weight(as_3d(grad_y), as_3d(x), as_3d(dw), *_geometry(stride, dilation, pad_lo))
    return dw
