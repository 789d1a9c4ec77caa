"""The direct method's loops: the literal sliding window, zero padding fused, over ``(N, C, D, H, W)``.

``y[n, o, i] = Σ_c Σ_k w[o, c, k] · x[n, g(o)·Cg + c, s·i − p + d·k]`` with
the terms whose input index falls in the padding skipped (they are zeros),
so no padded copy is made. Work is threaded over output planes; each output
row is finished before the next (it stays in L1 while every input channel
and kernel row is added into it). A kernel row adds one input row into one
output row (:func:`_correlate_row`), which is all the arithmetic there is.

The backward passes are the same loop nest read the other way:

* ``dx[n, c, s·i − p + d·k] += w[o, c, k] · dy[n, o, i]``, one input plane per
  parallel task (no two tasks write the same plane). Along the last axis at
  stride 1 this is again a correlation of a ``dy`` row with the kernel row
  reversed, so it runs through the same row loop; at a larger stride each tap
  scatters a ``dy`` row into every ``s``-th element of the ``dx`` row.
* ``dw[o, c, k] = Σ_n Σ_i dy[n, o, i] · x[n, c, s·i − p + d·k]``, one kernel
  row ``w[o, c, a, b, :]`` per parallel task, each tap's dot product summed in
  registers (no per-sample temporary, nothing written until the end).

Depthwise and grouped layers need no separate path: the input channels of
output ``o`` are those of its group, and with one channel per group the
loop over ``c`` has one trip.

numba details the speed depends on (the lessons of
:mod:`convlab.kernels.winograd`; measured on a depthwise 3×3 layer,
8×64×56², float32, one thread: 8.5 ms forward with one slice of a row per
tap, against the figures in ``cost`` of :mod:`convlab.algorithms.direct`):

* arrays are indexed directly, as 2-D arrays of rows, with unsigned indices
  (:func:`_u`): a view made per row and tap costs tens of nanoseconds, and a
  signed index costs a wrap-around test per element that keeps LLVM from
  vectorising the loop;
* each row is split once per call into its interior, where every tap of the
  kernel row reads inside the input (no test per element: a plain loop that
  LLVM vectorises), and its edges, where the padding is skipped tap by tap;
* in the interior up to four taps are summed in registers per pass and the
  output element is loaded and stored once per pass, not once per tap;
* ``dw``'s dot products are compiled with reassociation allowed
  (``fastmath={"reassoc"}``) so that LLVM keeps several partial sums in vector
  registers; this changes only the order of the additions (no flag that
  assumes finite values, so NaN and infinity still propagate).
"""

import numba
import numpy as np
from numba import prange

from . import as_3d, pad_3d
from ._ranges import valid_range
from ._runtime import njit

__all__ = ["backward_input", "backward_weight", "forward"]


@numba.njit(cache=True, inline="always")
def _u(index):
    """``index`` (known >= 0) as unsigned: numba then drops the wrap-around test of a negative index."""
    return np.uintp(index)


@numba.njit(cache=True)
def _interior(n_dst, n_src, stride, off0, step, taps):
    """``[lo, hi)``: the ``i`` for which every tap ``e`` reads inside the source, ``0 <= s·i + off0 + step·e < n_src``.

    The positions outside it (the edges, where the padding is) are ``[0, lo)`` and ``[hi, n_dst)``; without
    an interior ``lo == hi == n_dst``, so that the edges cover the whole row.
    """
    lo, hi = 0, n_dst
    for e in range(taps):
        a, b = valid_range(n_dst, n_src, stride, off0 + step * e)
        lo, hi = max(lo, a), min(hi, b)
    if hi <= lo:
        return n_dst, n_dst
    return lo, hi


@numba.njit(cache=True, inline="always")
def _edge(dst, dr, i, src, sr, n_src, w2, wr, stride, off0, step):
    """One output element of :func:`_correlate_row` next to the padding: the taps that fall in it skipped."""
    total = dst[dr, _u(i)]
    for e in range(w2.shape[1]):
        j = stride * i + off0 + step * e
        if 0 <= j < n_src:
            total += w2[wr, _u(e)] * src[sr, _u(j)]
    dst[dr, _u(i)] = total


@numba.njit(cache=True, inline="always")
def _interior_passes(dst, dr, src, sr, w2, wr, stride, off0, step, lo, hi):
    """The interior of :func:`_correlate_row`: up to four taps summed in registers per pass over the row.

    The taps' sum goes into a temporary before it is added to ``dst``: written as one ``dst[i] += …``
    numba reads ``dst[i]`` before the source, and LLVM then leaves the loop scalar (measured).
    """
    taps = w2.shape[1]
    for e in range(0, taps, 4):
        k = min(4, taps - e)
        o0 = off0 + step * e
        w0 = w2[wr, _u(e)]
        if k == 1:
            for i in range(lo, hi):
                t = w0 * src[sr, _u(stride * i + o0)]
                dst[dr, _u(i)] += t
            continue
        o1 = o0 + step
        w1 = w2[wr, _u(e + 1)]
        if k == 2:
            for i in range(lo, hi):
                p = stride * i
                t = w0 * src[sr, _u(p + o0)] + w1 * src[sr, _u(p + o1)]
                dst[dr, _u(i)] += t
            continue
        o2 = o1 + step
        w2_ = w2[wr, _u(e + 2)]
        if k == 3:
            for i in range(lo, hi):
                p = stride * i
                t = w0 * src[sr, _u(p + o0)] + w1 * src[sr, _u(p + o1)] + w2_ * src[sr, _u(p + o2)]
                dst[dr, _u(i)] += t
            continue
        o3 = o2 + step
        w3 = w2[wr, _u(e + 3)]
        for i in range(lo, hi):
            p = stride * i
            t = (w0 * src[sr, _u(p + o0)] + w1 * src[sr, _u(p + o1)]) + (w2_ * src[sr, _u(p + o2)]
                                                                       + w3 * src[sr, _u(p + o3)])
            dst[dr, _u(i)] += t


@numba.njit(cache=True, fastmath={"contract"})
def _correlate_row(dst, dr, src, sr, n_src, w2, wr, stride, off0, step, lo, hi):
    """``dst[dr, i] += Σ_e w2[wr, e] · src[sr, s·i + off0 + step·e]``, skipping the source indices outside
    ``[0, n_src)``, for every ``i`` of the row; ``[lo, hi)`` is its interior (:func:`_interior`)."""
    for i in range(lo):
        _edge(dst, dr, i, src, sr, n_src, w2, wr, stride, off0, step)
    for i in range(hi, dst.shape[1]):
        _edge(dst, dr, i, src, sr, n_src, w2, wr, stride, off0, step)
    if hi <= lo:
        return
    if stride == 1:  # a literal 1 inlined: LLVM sees unit-stride loads and vectorises them
        _interior_passes(dst, dr, src, sr, w2, wr, 1, off0, step, lo, hi)
    else:
        _interior_passes(dst, dr, src, sr, w2, wr, stride, off0, step, lo, hi)


@njit(parallel=True)
def _forward(x, w, y, stride, dilation, pad):
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_out, cg, kd, kh, kw = w.shape
    _, _, d_out, h_out, w_out = y.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    x2 = x.reshape(-1, w_in)      # rows
    w2 = w.reshape(-1, kw)
    y2 = y.reshape(-1, w_out)
    lo, hi = _interior(w_out, w_in, sw, -pw, dw, kw)
    for task in prange(n_batch * c_out * d_out):
        n = task // (c_out * d_out)
        o = (task // d_out) % c_out
        od = task % d_out
        c0 = (o // cog) * cg
        for oh in range(h_out):
            yr = _u(((n * c_out + o) * d_out + od) * h_out + oh)
            for i in range(w_out):
                y2[yr, _u(i)] = 0
            for c in range(cg):
                for a in range(kd):
                    zd = od * sd - pd + a * dd
                    if zd < 0 or zd >= d_in:
                        continue
                    for b in range(kh):
                        zh = oh * sh - ph + b * dh
                        if zh < 0 or zh >= h_in:
                            continue
                        xr = _u(((n * c_in + c0 + c) * d_in + zd) * h_in + zh)
                        wr = _u(((o * cg + c) * kd + a) * kh + b)
                        _correlate_row(y2, yr, x2, xr, w_in, w2, wr, sw, -pw, dw, lo, hi)


@njit(parallel=True)
def _backward_input(dy, w, dx, stride, dilation, pad):
    n_batch, c_out, d_out, h_out, w_out = dy.shape
    _, c_in, d_in, h_in, w_in = dx.shape
    _, cg, kd, kh, kw = w.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    dy2 = dy.reshape(-1, w_out)
    w2 = w.reshape(-1, kw)
    dx2 = dx.reshape(-1, w_in)
    # at stride 1 along the row, dx[j] += Σ_e w[e] dy[j + p − d·e]: a correlation with the taps reversed
    lo, hi = _interior(w_in, w_out, 1, pw, -dw, kw)
    for task in prange(n_batch * c_in):
        n = task // c_in
        ci = task % c_in
        g, c = ci // cg, ci % cg
        plane = _u((n * c_in + ci) * d_in * h_in)
        for r in range(d_in * h_in):
            for j in range(w_in):
                dx2[plane + _u(r), _u(j)] = 0
        for o in range(g * cog, (g + 1) * cog):
            for od in range(d_out):
                for a in range(kd):
                    zd = od * sd - pd + a * dd
                    if zd < 0 or zd >= d_in:
                        continue
                    for oh in range(h_out):
                        dyr = _u(((n * c_out + o) * d_out + od) * h_out + oh)
                        for b in range(kh):
                            zh = oh * sh - ph + b * dh
                            if zh < 0 or zh >= h_in:
                                continue
                            dxr = _u(((n * c_in + ci) * d_in + zd) * h_in + zh)
                            wr = _u(((o * cg + c) * kd + a) * kh + b)
                            if sw == 1:
                                _correlate_row(dx2, dxr, dy2, dyr, w_out, w2, wr, 1, pw, -dw, lo, hi)
                                continue
                            for e in range(kw):
                                weight = w2[wr, _u(e)]
                                offset = e * dw - pw
                                i_lo, i_hi = valid_range(w_out, w_in, sw, offset)
                                for i in range(i_lo, i_hi):
                                    dx2[dxr, _u(sw * i + offset)] += weight * dy2[dyr, _u(i)]


@numba.njit(cache=True, inline="always")
def _dot(total, dy2, dyr, x2, xr, stride, offset, lo, hi):
    """``total + Σ_{lo <= i < hi} dy2[dyr, i] · x2[xr, s·i + offset]`` (inlined: a literal ``stride`` of 1
    lets LLVM vectorise the loads)."""
    for i in range(lo, hi):
        total += dy2[dyr, _u(i)] * x2[xr, _u(stride * i + offset)]
    return total


@njit(parallel=True, fastmath={"reassoc"})
def _backward_weight(dy, x, dw_out, stride, dilation, pad):
    n_batch, c_out, d_out, h_out, w_out = dy.shape
    _, c_in, d_in, h_in, w_in = x.shape
    _, cg, kd, kh, kw = dw_out.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    dy2 = dy.reshape(-1, w_out)
    x2 = x.reshape(-1, w_in)
    dw2 = dw_out.reshape(-1, kw)
    zero = np.zeros(1, dw_out.dtype)[0]
    for task in prange(c_out * cg * kd * kh):
        o = task // (cg * kd * kh)
        c = (task // (kd * kh)) % cg
        a = (task // kh) % kd
        b = task % kh
        ci = (o // cog) * cg + c
        for e in range(kw):
            offset = e * dw - pw
            lo, hi = valid_range(w_out, w_in, sw, offset)
            total = zero
            for n in range(n_batch):
                for od in range(d_out):
                    zd = od * sd - pd + a * dd
                    if zd < 0 or zd >= d_in:
                        continue
                    for oh in range(h_out):
                        zh = oh * sh - ph + b * dh
                        if zh < 0 or zh >= h_in:
                            continue
                        dyr = _u(((n * c_out + o) * d_out + od) * h_out + oh)
                        xr = _u(((n * c_in + ci) * d_in + zd) * h_in + zh)
                        if sw == 1:
                            total = _dot(total, dy2, dyr, x2, xr, 1, offset, lo, hi)
                        else:
                            total = _dot(total, dy2, dyr, x2, xr, sw, offset, lo, hi)
            dw2[_u(task), _u(e)] = total


@numba.njit(cache=True, inline="always")
def _fill_padded(buf, src, top, left):
    """``buf[r, c] = src[r − top, c − left]`` where that is inside ``src``, else 0 (``top``/``left`` may be
    negative: then ``src`` is cropped). Returns whether every copied value is finite."""
    n_r, n_c = buf.shape
    rows, cols = src.shape
    c_lo = min(max(left, 0), n_c)               # buf columns [c_lo, c_hi) come from src
    c_hi = max(min(left + cols, n_c), c_lo)
    buf[0, 0] = 0
    check = buf[0, 0]  # a zero of buf's dtype; stays 0 unless a copied value is infinite or NaN
    for r in range(n_r):
        sr = r - top
        if sr < 0 or sr >= rows:
            for c in range(n_c):
                buf[r, _u(c)] = 0
            continue
        for c in range(c_lo):
            buf[r, _u(c)] = 0
        for c in range(c_lo, c_hi):
            v = src[_u(sr), _u(c - left)]
            buf[r, _u(c)] = v
            check += v * 0
        for c in range(c_hi, n_c):
            buf[r, _u(c)] = 0
    return check == 0


@numba.njit(cache=True, fastmath={"contract"})
def _correlate_plane(dst, src, pitch, wts, toff, sh, sw, accumulate):
    """``dst[i, j] (+)= Σ_t wts[t] · src[i·sh·pitch + j·sw + toff[t]]`` for the whole ``dst`` plane.

    ``src`` is a padded plane, flat, rows of ``pitch`` elements, large enough that every index is inside it:
    no bounds, no edges, every loop a plain vectorisable one; up to four taps summed in registers per pass.
    """
    n_r, n_c = dst.shape
    taps = toff.shape[0]
    for i in range(n_r):
        if not accumulate:
            for j in range(n_c):
                dst[_u(i), _u(j)] = 0
        base = i * sh * pitch
        for t in range(0, taps, 4):
            k = min(4, taps - t)
            o0 = base + toff[t]
            w0 = wts[t]
            if k == 1:
                for j in range(n_c):
                    v = w0 * src[_u(o0 + sw * j)]
                    dst[_u(i), _u(j)] += v
                continue
            o1, w1 = base + toff[t + 1], wts[t + 1]
            if k == 2:
                for j in range(n_c):
                    v = w0 * src[_u(o0 + sw * j)] + w1 * src[_u(o1 + sw * j)]
                    dst[_u(i), _u(j)] += v
                continue
            o2, w2 = base + toff[t + 2], wts[t + 2]
            if k == 3:
                for j in range(n_c):
                    v = w0 * src[_u(o0 + sw * j)] + w1 * src[_u(o1 + sw * j)] + w2 * src[_u(o2 + sw * j)]
                    dst[_u(i), _u(j)] += v
                continue
            o3, w3 = base + toff[t + 3], wts[t + 3]
            for j in range(n_c):
                v = ((w0 * src[_u(o0 + sw * j)] + w1 * src[_u(o1 + sw * j)])
                     + (w2 * src[_u(o2 + sw * j)] + w3 * src[_u(o3 + sw * j)]))
                dst[_u(i), _u(j)] += v


@numba.njit(cache=True)
def _plane_taps(kh, kw, dh, dw, pitch):
    """Offsets of the taps of a ``kh × kw`` kernel in a padded plane of rows of ``pitch``."""
    toff = np.empty(kh * kw, np.intp)
    for b in range(kh):
        for e in range(kw):
            toff[b * kw + e] = b * dh * pitch + e * dw
    return toff


@njit(parallel=True)
def _forward_depthwise(x, w, y, stride, dilation, pad):
    """:func:`_forward` with one input channel per group in 1-D and 2-D: each task pads its input plane into a
    scratch plane, then every output is a branch-free sum over the taps."""
    n_batch, c_in, _, h_in, w_in = x.shape
    c_out, _, _, kh, kw = w.shape
    _, _, _, h_out, w_out = y.shape
    _, sh, sw = stride
    _, dh, dw = dilation
    _, ph, pw = pad
    cog = c_out // c_in
    rows = (h_out - 1) * sh + (kh - 1) * dh + 1
    pitch = (w_out - 1) * sw + (kw - 1) * dw + 1
    toff = _plane_taps(kh, kw, dh, dw, pitch)
    for task in prange(n_batch * c_out):
        n, o = task // c_out, task % c_out
        buf = np.empty(rows * pitch, x.dtype)
        _fill_padded(buf.reshape(rows, pitch), x[n, o // cog, 0], ph, pw)
        _correlate_plane(y[n, o, 0], buf, pitch, w[o, 0, 0].ravel(), toff, sh, sw, False)


@njit(parallel=True)
def _backward_input_depthwise(dy, w, dx, dilation, pad):
    """:func:`_backward_input` with one input channel per group in 1-D and 2-D at stride 1: each ``dy`` plane
    is padded into a scratch plane and correlated with its kernel reversed,
    ``dx[j] = Σ_o Σ_k w[o, k] · dy[o, j + p − d·k]``, branch-free as in :func:`_forward_depthwise`."""
    n_batch, c_out, _, h_out, w_out = dy.shape
    _, c_in, _, h_in, w_in = dx.shape
    _, _, _, kh, kw = w.shape
    _, dh, dw = dilation
    _, ph, pw = pad
    cog = c_out // c_in
    rows = h_in + (kh - 1) * dh
    pitch = w_in + (kw - 1) * dw
    toff = _plane_taps(kh, kw, dh, dw, pitch)
    for task in prange(n_batch * c_in):
        n, ci = task // c_in, task % c_in
        buf = np.empty(rows * pitch, dy.dtype)
        for o in range(ci * cog, (ci + 1) * cog):
            _fill_padded(buf.reshape(rows, pitch), dy[n, o, 0], (kh - 1) * dh - ph, (kw - 1) * dw - pw)
            _correlate_plane(dx[n, ci, 0], buf, pitch, w[o, 0, 0].ravel()[::-1], toff, 1, 1, o > ci * cog)


@njit(parallel=True, fastmath={"reassoc", "contract"})
def _backward_weight_depthwise(dy, x, dw_out, stride, dilation, pad):
    """:func:`_backward_weight` with one input channel per group in 1-D and 2-D: one output channel per task,
    its input planes padded into a scratch plane, each tap's sum kept in registers over a whole plane."""
    n_batch, c_out, _, h_out, w_out = dy.shape
    _, c_in, _, h_in, w_in = x.shape
    _, _, _, kh, kw = dw_out.shape
    _, sh, sw = stride
    _, dh, dw = dilation
    _, ph, pw = pad
    cog = c_out // c_in
    rows = (h_out - 1) * sh + (kh - 1) * dh + 1
    pitch = (w_out - 1) * sw + (kw - 1) * dw + 1
    toff = _plane_taps(kh, kw, dh, dw, pitch)
    taps = kh * kw
    dw2 = dw_out.reshape(c_out, taps)
    flat = sh == 1 and sw == 1
    for o in prange(c_out):
        buf = np.empty(rows * pitch, x.dtype)
        # stride 1: dy copied into rows of the same pitch, zeros after each row, so that each tap's sum is one
        # flat dot product over the plane; exact when the padded x plane is finite (0 · x = 0)
        dyp = np.zeros(h_out * pitch if flat else 0, dy.dtype)
        for t in range(taps):
            dw2[o, t] = 0
        for n in range(n_batch):
            finite = _fill_padded(buf.reshape(rows, pitch), x[n, o // cog, 0], ph, pw)
            plane = dy[n, o, 0]
            if flat and finite:
                for i in range(h_out):
                    for j in range(w_out):
                        dyp[_u(i * pitch + j)] = plane[_u(i), _u(j)]
                for t in range(taps):
                    dw2[o, _u(t)] = _dot_flat(dw2[o, _u(t)], dyp, buf, toff[t], h_out * pitch)
                continue
            for t in range(taps):
                total = dw2[o, _u(t)]
                for i in range(h_out):
                    base = i * sh * pitch + toff[t]
                    for j in range(w_out):
                        total += plane[_u(i), _u(j)] * buf[_u(base + sw * j)]
                dw2[o, _u(t)] = total


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot_flat(total, a, b, offset, n):
    """``total + Σ_{q < n} a[q] · b[offset + q]``, in several partial sums (a function of its own: inlined into
    the loop nest, LLVM kept one partial sum and the loop ran at the latency of an addition, measured 3×)."""
    for q in range(n):
        total += a[_u(q)] * b[_u(offset + q)]
    return total


def _depthwise_plane(x, w):
    """One input channel per group, in 1-D or 2-D: the depthwise kernels apply."""
    return w.shape[1] == 1 and x.ndim <= 4


def _geometry(stride, dilation, pad_lo):
    return pad_3d(stride, 1), pad_3d(dilation, 1), pad_3d(pad_lo, 0)


def forward(x, w, output_size, stride, dilation, pad_lo):
    """Correlation of ``x`` ``(N, C_in, *n)`` with ``w`` ``(C_out, C_in/G, *k)``, zero padding ``pad_lo`` in front.

    The padding behind is implied by ``output_size``; groups by the shapes.
    Returns ``y`` of shape ``(N, C_out, *output_size)`` in ``x``'s dtype.
    """
    y = np.empty((x.shape[0], w.shape[0], *output_size), x.dtype)
    kernel = _forward_depthwise if _depthwise_plane(x, w) else _forward
    kernel(as_3d(x), as_3d(w), as_3d(y), *_geometry(stride, dilation, pad_lo))
    return y


def backward_input(grad_y, w, input_size, groups, stride, dilation, pad_lo):
    """``dx`` ``(N, C_in, *input_size)``: the adjoint of :func:`forward` in ``x``."""
    dx = np.empty((grad_y.shape[0], groups * w.shape[1], *input_size), grad_y.dtype)
    geometry = _geometry(stride, dilation, pad_lo)
    # the depthwise kernel adds padded zeros times weights: exact only if every weight is finite
    if _depthwise_plane(grad_y, w) and all(s == 1 for s in stride) and np.isfinite(w).all():
        _backward_input_depthwise(as_3d(grad_y), as_3d(w), as_3d(dx), *geometry[1:])
    else:
        _backward_input(as_3d(grad_y), as_3d(w), as_3d(dx), *geometry)
    return dx


def backward_weight(grad_y, x, kernel_size, groups, stride, dilation, pad_lo):
    """``dw`` ``(C_out, C_in/G, *kernel_size)``: the adjoint of :func:`forward` in ``w``."""
    dw = np.empty((grad_y.shape[1], x.shape[1] // groups, *kernel_size), x.dtype)
    kernel = _backward_weight_depthwise if _depthwise_plane(x, dw) else _backward_weight
    kernel(as_3d(grad_y), as_3d(x), as_3d(dw), *_geometry(stride, dilation, pad_lo))
    return dw
