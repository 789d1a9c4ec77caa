"""The direct method's loops: the literal sliding window over ``(N, C, D, H, W)``, plane by plane.

``y[n, o, i] = Σ_c Σ_k w[o, c, k] · x[n, g(o)·Cg + c, s·i − p + d·k]``. Work is
split into bands of output rows of each output plane ``(n, o, depth)``
(:func:`_band`: as many rows as keep a band's input rows, halo included, in
:data:`BAND_BYTES`, and more bands than planes when there are fewer planes than
threads, so that one large image still uses every thread). For each input
channel and kernel slice along the depth axis, a task copies the band's input
rows into a scratch band with its zero padding around it (the padding is fused
per band, never a padded copy of the whole input, and the scratch is a band,
not a plane: a 8192² image's was 256 MB), and then every output of the band is
a plain sum over the kernel's taps of the scratch at fixed offsets
(:func:`_correlate_plane`): no bounds test, no edge case, a loop LLVM
vectorises along the output row, up to nine taps (a whole 3×3 kernel) summed in
registers per pass (:func:`_sum_taps`), the first pass writing the output
instead of adding to zeros. At stride 1 a band is summed either row by row
straight into the output or as one long row of the scratch's pitch into a
scratch band copied out afterwards, whichever leaves less to scalar code
(:func:`_wide`). Tasks run in a few
contiguous chunks per thread, each chunk with its own scratch (an allocation per
task cost more than the copy on a 56² plane).

The backward passes are the same loop nest read the other way:

* ``dx[n, c, s·i − p + d·k] += w[o, c, k] · dy[n, o, i]``, one band of an input
  plane per parallel task (no two tasks write the same rows). At stride 1 along the
  plane this is a correlation of the padded ``dy`` plane with the kernel
  reversed and runs through the same plane loop; at a larger stride each tap
  scatters a ``dy`` row into every ``s``-th element of a ``dx`` row
  (:func:`_backward_input_strided`, also used when a weight is not finite: the
  gather form would multiply it by padded zeros).
* ``dw[o, c, k] = Σ_n Σ_i dy[n, o, i] · x[n, c, s·i − p + d·k]``, one
  ``(o, c)`` pair and band of rows per parallel task, each tap's sum one dot
  product over the band kept in registers (:func:`_dot_flat`): no per-sample
  temporary; the bands' sums are added in band order at the end.

Depthwise and grouped layers need no separate path: the input channels of
output ``o`` are those of its group, and with one channel per group the loop
over ``c`` has one trip. One loop family serves 1-D, 2-D and 3-D (the depth
axis is the outer loop).

Measured on one thread of the 2-core machine this was written on (minimum
CPU time of 30 runs while other jobs loaded it, float32), the previous version
of these loops (row by row, a slice per row and tap) against the plane-based
one: depthwise 3×3 8×64×56² forward / dx / dw 3.7 / 4.2 / 3.7 ms → 1.7 / 1.3 /
2.1 ms; depthwise 13×13 8×32×64² 35 / 39 / 34 ms → 8.7 / 8.8 / 16 ms;
depthwise 3×3 stride 2 5.0 / 3.4 / 4.9 → 1.9 / 2.9 / 2.2 ms; three channels
per group, 5×5 dilation 2, 8×6×32² 2.4 / 2.8 / 2.3 → 0.47 / 0.45 / 0.75 ms.
Bands instead of whole planes (``benchmarks/bench_direct.py --baseline REV``,
minima of 15–20 runs, one thread, the machine heavily loaded, so ratios only):
one 2048² plane, 3×3, forward / dx / dw 64 / 58–63 / 39–71 ms → 3.7–4.2 /
3.7–7.5 / 5.6 ms; depthwise 3×3 8×64×56² forward 1.6–2.0 → 1.3–1.6 ms (the
chunked scratch and the first pass writing), dx and dw unchanged; depthwise
13×13 dx 8.7–17 → 8.7–13 ms, forward and dw unchanged (a 64² plane is one band
already: the taps, four per pass over the plane, are what remains there).
Nine taps per pass instead of four, and row by row straight into the output
where that leaves little to scalar code (``bench_direct.py --baseline 36ed60c
--threads 1``, minima of 30 runs, loaded machine): depthwise 3×3 8×64×56²
forward / dx 1.00 / 1.14 → 0.87 / 0.92 ms; depthwise 13×13 8×32×64² 8.3 / 8.5
→ 7.0 / 7.2 ms; depthwise 3×3 stride 2 forward 1.16 → 0.93 ms; one 2048² plane
3.5 / 3.4 → 2.5 / 2.4 ms (dw unchanged). A depthwise 3×3 layer is now two
passes over memory, the input's copy into scratch bands and the output's
write; an overlapping last vector per row, to avoid the scalar remainder,
measured slower (0.91 → 1.14 ms). What remains for 13×13 is one load per tap
and output vector: reusing a loaded input row for several output rows would
cut that.

numba details the speed depends on (the lessons of
:mod:`convlab.kernels.winograd`):

* arrays are indexed directly with unsigned indices (:func:`_u`), never
  through a view made per row and tap (tens of nanoseconds each: the previous
  row-by-row version of these loops spent most of a depthwise 3×3 layer
  there) and never with signed indices (a wrap-around test per element keeps
  LLVM from vectorising);
* a run of taps is summed into a temporary before it is added to the output:
  written as one ``dst[i] += …`` numba loads ``dst[i]`` first and LLVM leaves
  the loop scalar;
* the dot products of ``dw`` are compiled with reassociation allowed
  (``fastmath={"reassoc", "contract"}``) in a function of their own, so that
  LLVM keeps several partial sums in vector registers (3× against one sum);
  row by row, a 56-element row leaves most elements to the scalar remainder of
  a 32-wide vector loop, so ``dy`` is laid out in rows of the scratch plane's
  pitch (zeros after each row) and a tap's sum runs over the whole plane at
  once; at a stride the scratch plane is split into its stride phases so that
  each tap still reads contiguously. The zeros of ``dy`` then meet values of
  ``x`` that no output reads, which is exact as long as those are finite (it
  is checked while the plane is copied; otherwise the sums run row by row).
* the output contracts a multiply and an add into one FMA (``contract``),
  which rounds once instead of twice; no flag assumes finite values, so NaN
  and infinity still propagate as in the plain sums.
"""

import numba
import numpy as np
from numba import prange
from numba.np.unsafe.ndarray import to_fixed_tuple

from . import as_3d, pad_3d
from ._ranges import valid_range
from ._runtime import get_threads, njit

__all__ = ["backward_input", "backward_weight", "forward"]


@numba.njit(cache=True, inline="always")
def _u(index):
    """``index`` (known >= 0) as unsigned: numba then drops the wrap-around test of a negative index."""
    return np.uintp(index)


@numba.njit(cache=True, inline="always")
def _fill_padded(buf, src, top, left):
    """``buf[r, c] = src[r − top, c − left]`` where that is inside ``src``, else 0 (``top``/``left`` may be
    negative: then ``src`` is cropped, which is how a band of rows is cut out of a plane)."""
    n_r, n_c = buf.shape
    rows, cols = src.shape
    c_lo = min(max(left, 0), n_c)               # buf columns [c_lo, c_hi) come from src
    c_hi = max(min(left + cols, n_c), c_lo)
    for r in range(n_r):
        sr = r - top
        if sr < 0 or sr >= rows:
            for c in range(n_c):
                buf[r, _u(c)] = 0
            continue
        for c in range(c_lo):
            buf[r, _u(c)] = 0
        for c in range(c_lo, c_hi):
            buf[r, _u(c)] = src[_u(sr), _u(c - left)]
        for c in range(c_hi, n_c):
            buf[r, _u(c)] = 0


@numba.njit(cache=True, fastmath={"reassoc"})
def _finite(buf, n):
    """Whether ``buf[:n]`` is all finite (``0·v`` is 0 unless ``v`` is infinite or NaN; reassociation lets
    LLVM keep several partial sums, and NaN survives any order of the additions)."""
    check = buf[0] * 0
    for q in range(n):
        check += buf[_u(q)] * 0
    return check == 0


GROUP = 9
"""Most taps summed in registers per pass over a band (a whole 3×3 kernel: with 32 vector registers there is
room for the nine broadcast weights and the sums)."""


@numba.njit(cache=True, fastmath={"contract"})
def _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, offs, wts, add):
    """``dst[d0 + i·dpitch + j] (+)= Σ_u wts[u] · src[i·row_step + j·sw + offs[u]]`` for one group of taps.

    ``offs`` and ``wts`` are tuples: their length is known when this is compiled (one copy per group size),
    so LLVM unrolls the loop over the taps, keeps the weights in registers and vectorises along ``j``, the
    group's sum staying in registers until it is written.
    """
    for i in range(n_r):
        drow = d0 + i * dpitch
        base = i * row_step
        if add:
            for j in range(n_c):
                v = wts[0] * src[_u(base + offs[0] + sw * j)]
                for u in range(1, len(offs)):
                    v += wts[u] * src[_u(base + offs[u] + sw * j)]
                dst[_u(drow + j)] += v
        else:
            for j in range(n_c):
                v = wts[0] * src[_u(base + offs[0] + sw * j)]
                for u in range(1, len(offs)):
                    v += wts[u] * src[_u(base + offs[u] + sw * j)]
                dst[_u(drow + j)] = v


@numba.njit(cache=True)
def _correlate_plane(dst, d0, dpitch, n_r, n_c, src, row_step, sw, wts, toff, accumulate):
    """``dst[d0 + i·dpitch + j] (+)= Σ_t wts[t] · src[i·row_step + j·sw + toff[t]]``, ``i < n_r``, ``j < n_c``.

    ``src`` is a padded plane, flat, large enough that every index is inside it: no bounds, no edges, every
    loop a plain vectorisable one. The taps go in as few passes over ``dst`` as groups of at most
    :data:`GROUP` allow (sizes differing by at most one: 13×13 = 169 taps is 19 passes of 8 or 9), each
    group summed in registers (:func:`_sum_taps`), the first pass writing ``dst`` (unless ``accumulate``)
    instead of adding to it. At stride 1 the callers pass the whole band as one row (``n_r = 1``) of the
    source's pitch, into a scratch of that pitch: one long loop per pass instead of a short one per row,
    whose remainder would run scalar.
    """
    taps = toff.shape[0]
    passes = (taps + GROUP - 1) // GROUP
    t = 0
    for p in range(passes):
        k = (taps - t + passes - p - 1) // (passes - p)
        add = accumulate or p > 0
        # one branch per group size, each a copy of _sum_taps compiled for tuples of that length
        if k == 9:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 9], 9),
                      to_fixed_tuple(wts[t:t + 9], 9), add)
        elif k == 8:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 8], 8),
                      to_fixed_tuple(wts[t:t + 8], 8), add)
        elif k == 7:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 7], 7),
                      to_fixed_tuple(wts[t:t + 7], 7), add)
        elif k == 6:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 6], 6),
                      to_fixed_tuple(wts[t:t + 6], 6), add)
        elif k == 5:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 5], 5),
                      to_fixed_tuple(wts[t:t + 5], 5), add)
        elif k == 4:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 4], 4),
                      to_fixed_tuple(wts[t:t + 4], 4), add)
        elif k == 3:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 3], 3),
                      to_fixed_tuple(wts[t:t + 3], 3), add)
        elif k == 2:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 2], 2),
                      to_fixed_tuple(wts[t:t + 2], 2), add)
        else:
            _sum_taps(dst, d0, dpitch, n_r, n_c, src, row_step, sw, to_fixed_tuple(toff[t:t + 1], 1),
                      to_fixed_tuple(wts[t:t + 1], 1), add)
        t += k


@numba.njit(cache=True, inline="always")
def _copy_rows(dst, d0, src, pitch, n_r, n_c):
    """``dst[d0 + i·n_c + j] = src[i·pitch + j]``: the valid columns of a wide scratch plane."""
    for i in range(n_r):
        for j in range(n_c):
            dst[_u(d0 + i * n_c + j)] = src[_u(i * pitch + j)]


@numba.njit(cache=True)
def _plane_taps(kh, kw, dh, dw, pitch):
    """Offsets of the taps of a ``kh × kw`` kernel in a padded plane of rows of ``pitch``, row-major."""
    toff = np.empty(kh * kw, np.intp)
    for b in range(kh):
        for e in range(kw):
            toff[b * kw + e] = b * dh * pitch + e * dw
    return toff


@numba.njit(cache=True)
def _scratch(rows, pitch, slack, dtype_of):
    """A padded plane of ``rows × pitch`` (flat) and ``slack`` zeros behind it, for reads that run past it."""
    buf = np.empty(rows * pitch + slack, dtype_of.dtype)
    for q in range(rows * pitch, rows * pitch + slack):
        buf[q] = 0
    return buf


@numba.njit(cache=True)
def _wide(n_c, passes):
    """Whether a band is summed as one long row of the scratch's pitch into a scratch band and copied out,
    rather than row by row straight into the output. Row by row, each pass leaves a row's last ``n_c mod 16``
    elements to the scalar remainder of the 16-wide vector loop; wide, the copy is one more pass over the
    output. So row by row when the rows are whole vectors, or when one pass is all there is and at most a
    quarter of a row is remainder (one plane 2048², 3×3, forward 3.5 → 2.5 ms on one thread)."""
    return 4 * (n_c % 16) > n_c if passes == 1 else n_c % 16 != 0


BAND_BYTES = 1 << 17
"""Target size of a band's scratch rows (half an L2 cache of the machine this was written on)."""


@numba.njit(cache=True)
def _band(out_rows, step, halo, pitch, itemsize, planes, threads):
    """Output rows per band of a plane: as many as keep the band's input rows (``(r − 1)·step + halo + 1``
    of ``pitch`` elements) within :data:`BAND_BYTES`, at least ``halo`` (so that the rows copied twice, a
    band's halo, are at most half of its rows), and few enough that every thread gets a band when there are
    fewer planes than threads."""
    rows = max(1, (BAND_BYTES // max(1, pitch * itemsize) - halo - 1) // step + 1)
    rows = max(rows, halo)
    if planes < threads:
        split = (threads + planes - 1) // planes
        rows = min(rows, (out_rows + split - 1) // split)
    return max(1, min(rows, out_rows))


@njit(parallel=True)
def _forward(x, w, y, stride, dilation, pad, threads):
    """One task per band of output rows of an output plane ``(n, o, depth)``: each input channel's band (with
    its halo) is copied into a padded scratch band, the kernel's taps summed over it into the output."""
    n_batch, c_in, d_in = x.shape[:3]
    c_out, cg, kd, kh, kw = w.shape
    _, _, d_out, h_out, w_out = y.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    pitch = (w_out - 1) * sw + (kw - 1) * dw + 1
    toff = _plane_taps(kh, kw, dh, dw, pitch)
    w3 = w.reshape(c_out, cg * kd, kh * kw)
    y2 = y.reshape(-1)
    wide = sh == 1 and sw == 1 and _wide(w_out, cg * kd * ((kh * kw + GROUP - 1) // GROUP))
    planes = n_batch * c_out * d_out
    band = _band(h_out, sh, (kh - 1) * dh, pitch, x.itemsize, planes, threads)
    bands = (h_out + band - 1) // band
    tasks = planes * bands
    # tasks in a few contiguous chunks, each with its own scratch (one allocation per chunk, not per task)
    chunks = min(tasks, 4 * threads)
    for chunk in prange(chunks):
        rows = (band - 1) * sh + (kh - 1) * dh + 1
        buf = _scratch(rows, pitch, (kw - 1) * dw if wide else 0, x)
        acc = _scratch(band if wide else 0, pitch, 0, y)
        for task in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            p, r0 = task // bands, (task % bands) * band
            n = p // (c_out * d_out)
            o = (p // d_out) % c_out
            od = p % d_out
            c0 = (o // cog) * cg
            nr = min(band, h_out - r0)
            used = (nr - 1) * sh + (kh - 1) * dh + 1
            out = p * h_out * w_out + r0 * w_out
            first = True
            for c in range(cg):
                for a in range(kd):
                    zd = od * sd - pd + a * dd
                    if zd < 0 or zd >= d_in:
                        continue
                    _fill_padded(buf[:used * pitch].reshape(used, pitch), x[n, c0 + c, zd], ph - r0 * sh, pw)
                    if wide:
                        _correlate_plane(acc, 0, 0, 1, nr * pitch, buf, 0, 1, w3[o, c * kd + a], toff, not first)
                    else:
                        _correlate_plane(y2, out, w_out, nr, w_out, buf, sh * pitch, sw, w3[o, c * kd + a], toff,
                                         not first)
                    first = False
            if first:  # every tap along the depth axis is in the padding
                for q in range(nr * w_out):
                    y2[_u(out + q)] = 0
            elif wide:
                _copy_rows(y2, out, acc, pitch, nr, w_out)


@njit(parallel=True)
def _backward_input(dy, w, dx, stride, dilation, pad, threads):
    """Stride 1 along the plane (any stride along the depth axis): one task per band of rows of a ``dx``
    plane; each ``dy`` band that reaches it is padded into a scratch band and correlated with its kernel
    reversed, ``dx[j] = Σ_o Σ_k w[o, k] · dy[o, j + p − d·k]`` (the forward's loop)."""
    n_batch, c_out, d_out = dy.shape[:3]
    _, c_in, d_in, h_in, w_in = dx.shape
    _, cg, kd, kh, kw = w.shape
    sd, _, _ = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    pitch = w_in + (kw - 1) * dw
    toff = _plane_taps(kh, kw, dh, dw, pitch)
    taps = kh * kw
    w3 = w.reshape(c_out, cg * kd, taps)
    flipped = np.empty_like(w3)
    for o in range(c_out):
        for r in range(cg * kd):
            for t in range(taps):
                flipped[o, r, t] = w3[o, r, taps - 1 - t]
    dx2 = dx.reshape(-1)
    wide = _wide(w_in, cog * kd * ((taps + GROUP - 1) // GROUP))
    planes = n_batch * c_in * d_in
    band = _band(h_in, 1, (kh - 1) * dh, pitch, dy.itemsize, planes, threads)
    bands = (h_in + band - 1) // band
    tasks = planes * bands
    chunks = min(tasks, 4 * threads)
    for chunk in prange(chunks):
        buf = _scratch(band + (kh - 1) * dh, pitch, (kw - 1) * dw, dy)
        acc = _scratch(band if wide else 0, pitch, 0, dx)
        for task in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            p, r0 = task // bands, (task % bands) * band
            n = p // (c_in * d_in)
            ci = (p // d_in) % c_in
            zd = p % d_in
            g, c = ci // cg, ci % cg
            nr = min(band, h_in - r0)
            used = nr + (kh - 1) * dh
            out = p * h_in * w_in + r0 * w_in
            first = True
            for a in range(kd):
                od = zd + pd - a * dd      # = od·sd for the output planes that read this input plane
                if od < 0 or od % sd != 0 or od // sd >= d_out:
                    continue
                od //= sd
                for o in range(g * cog, (g + 1) * cog):
                    _fill_padded(buf[:used * pitch].reshape(used, pitch), dy[n, o, od], (kh - 1) * dh - ph - r0,
                                 (kw - 1) * dw - pw)
                    if wide:
                        _correlate_plane(acc, 0, 0, 1, nr * pitch, buf, 0, 1, flipped[o, c * kd + a], toff,
                                         not first)
                    else:
                        _correlate_plane(dx2, out, w_in, nr, w_in, buf, pitch, 1, flipped[o, c * kd + a], toff,
                                         not first)
                    first = False
            if first:  # no output plane reads this input plane
                for q in range(nr * w_in):
                    dx2[_u(out + q)] = 0
            elif wide:
                _copy_rows(dx2, out, acc, pitch, nr, w_in)


@njit(parallel=True)
def _backward_input_strided(dy, w, dx, stride, dilation, pad):
    """A stride above 1 along the plane: each tap scatters a ``dy`` row into every ``s``-th element of a ``dx``
    row (the literal loop nest; the gather form would need one kernel per residue of the stride)."""
    n_batch, c_out, d_out, h_out, w_out = dy.shape
    _, c_in, d_in, h_in, w_in = dx.shape
    _, cg, kd, kh, kw = w.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    dy2 = dy.reshape(-1, w_out)
    dx2 = dx.reshape(-1, w_in)
    w2 = w.reshape(-1, kw)
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
                        dyr = _u(((n * c_out + o) * d_out + od) * h_out + oh)
                        for b in range(kh):
                            zh = oh * sh - ph + b * dh
                            if zh < 0 or zh >= h_in:
                                continue
                            dxr = _u(((n * c_in + ci) * d_in + zd) * h_in + zh)
                            wr = _u(((o * cg + c) * kd + a) * kh + b)
                            for e in range(kw):
                                weight = w2[wr, _u(e)]
                                offset = e * dw - pw
                                lo, hi = valid_range(w_out, w_in, sw, offset)
                                for i in range(lo, hi):
                                    v = weight * dy2[dyr, _u(i)]
                                    dx2[dxr, _u(sw * i + offset)] += v


@njit(parallel=True, fastmath={"reassoc", "contract"})
def _backward_weight(dy, x, dw_out, stride, dilation, pad, threads):
    """One task per ``(output, input channel)`` pair and band of output rows, its input bands padded into a
    scratch band, each tap's sum kept in registers (several partial sums, :func:`_dot_flat`) over whole
    bands; the bands' partial sums are added in band order afterwards."""
    n_batch, c_out, d_out, h_out, w_out = dy.shape
    _, c_in, d_in = x.shape[:3]
    _, cg, kd, kh, kw = dw_out.shape
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cog = c_out // (c_in // cg)
    pitch = (w_out - 1) * sw + (kw - 1) * dw + 1
    toff = _plane_taps(kh, kw, dh, dw, pitch)
    taps = kh * kw
    dw3 = dw_out.reshape(c_out * cg, kd, taps)
    # Each tap's sum is one flat dot product over a band: dy is copied into rows of pitch ``pcol`` with zeros
    # after each row, and x into ``sh·sw`` phase planes of that pitch (the padded band's rows and columns
    # split by their residue modulo the stride; at stride 1 the padded band itself), so that tap (b, e)
    # reads phase (b·dh mod sh, e·dw mod sw) from (b·dh // sh, e·dw // sw) on, contiguously. The zeros of dy
    # meet values of x that no output reads: exact when the padded x band is finite (0 · x = 0), else the
    # sums run row by row over the padded band.
    unit = sh == 1 and sw == 1
    pairs = c_out * cg
    band = _band(h_out, sh, (kh - 1) * dh, pitch, x.itemsize, pairs, threads)
    bands = (h_out + band - 1) // band
    rows = (band - 1) * sh + (kh - 1) * dh + 1
    slack = (kw - 1) * dw
    pcol = (pitch + sw - 1) // sw
    prow = band + (kh - 1) * dh // sh
    plen = prow * pcol + (kw - 1) * dw // sw
    # only the residues the taps reach (a stride beyond the kernel's extent has residues no tap reads)
    n_pr, n_pc = min(sh, (kh - 1) * dh + 1), min(sw, (kw - 1) * dw + 1)
    poff = np.empty(taps, np.intp)
    phase = np.empty(taps, np.intp)
    for b in range(kh):
        for e in range(kw):
            phase[b * kw + e] = (b * dh % sh) * n_pc + e * dw % sw
            poff[b * kw + e] = (b * dh // sh) * pcol + e * dw // sw
    tasks = pairs * bands
    partial = np.zeros((tasks, kd, taps), dw_out.dtype)
    chunks = min(tasks, 4 * threads)
    for chunk in prange(chunks):
        buf = _scratch(rows, pitch, slack, x)
        phases = buf.reshape(1, -1) if unit else _scratch(n_pr * n_pc, plen, 0, x).reshape(n_pr * n_pc, plen)
        dyp = _scratch(band, pcol, 0, dy)
        for r in range(band):
            for j in range(w_out, pcol):
                dyp[_u(r * pcol + j)] = 0
        for task in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            pair, r0 = task // bands, (task % bands) * band
            o, c = pair // cg, pair % cg
            ci = (o // cog) * cg + c
            nr = min(band, h_out - r0)
            used = (nr - 1) * sh + (kh - 1) * dh + 1
            for q in range(used * pitch, used * pitch + slack):  # read by the zero columns of dy
                buf[_u(q)] = 0
            for n in range(n_batch):
                for od in range(d_out):
                    rows_dy = dy[n, o, od, r0:r0 + nr]
                    copied = False
                    for a in range(kd):
                        zd = od * sd - pd + a * dd
                        if zd < 0 or zd >= d_in:
                            continue
                        _fill_padded(buf[:used * pitch].reshape(used, pitch), x[n, ci, zd], ph - r0 * sh, pw)
                        if not _finite(buf, used * pitch):
                            for t in range(taps):
                                partial[task, a, _u(t)] = _dot_rows(partial[task, a, _u(t)], rows_dy, buf, toff[t],
                                                                    sh * pitch, sw)
                            continue
                        if not copied:
                            for i in range(nr):
                                for j in range(w_out):
                                    dyp[_u(i * pcol + j)] = rows_dy[_u(i), _u(j)]
                            copied = True
                        if not unit:
                            _split_phases(phases, buf, used, pitch, sh, sw, n_pr, n_pc, pcol)
                        for t in range(taps):
                            partial[task, a, _u(t)] = _dot_flat(partial[task, a, _u(t)], dyp, phases[phase[t]],
                                                                poff[t], nr * pcol)
    for pair in prange(pairs):
        dw3[pair] = partial[pair * bands]
        for b in range(1, bands):
            dw3[pair] += partial[pair * bands + b]


@numba.njit(cache=True)
def _split_phases(phases, buf, rows, pitch, sh, sw, n_pr, n_pc, pcol):
    """``phases[pr·n_pc + pc, r·pcol + c] = buf[(r·sh + pr)·pitch + c·sw + pc]`` for the residues
    ``pr < n_pr``, ``pc < n_pc``; zeros outside ``rows × pitch``."""
    plen = phases.shape[1]
    for pr in range(n_pr):
        for pc in range(n_pc):
            dst = phases[pr * n_pc + pc]
            n_c = (pitch - pc + sw - 1) // sw          # columns of this phase inside the plane
            for q in range(plen):
                dst[_u(q)] = 0
            for r in range(plen // pcol):
                row = r * sh + pr
                if row >= rows:
                    break
                for cc in range(n_c):
                    dst[_u(r * pcol + cc)] = buf[_u(row * pitch + cc * sw + pc)]


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot_rows(total, plane, buf, offset, row_step, stride):
    """``total + Σ_{i, j} plane[i, j] · buf[offset + i·row_step + s·j]``, row by row (see :func:`_dot_flat`)."""
    n_r, n_c = plane.shape
    for i in range(n_r):
        base = offset + i * row_step
        if stride == 1:
            for j in range(n_c):
                total += plane[_u(i), _u(j)] * buf[_u(base + j)]
        else:
            for j in range(n_c):
                total += plane[_u(i), _u(j)] * buf[_u(base + stride * j)]
    return total


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot_flat(total, a, b, offset, n):
    """``total + Σ_{q < n} a[q] · b[offset + q]``, in several partial sums (a function of its own: inlined into
    the loop nest, LLVM kept one partial sum and the loop ran at the latency of an addition, measured 3×)."""
    for q in range(n):
        total += a[_u(q)] * b[_u(offset + q)]
    return total


def _geometry(stride, dilation, pad_lo):
    return pad_3d(stride, 1), pad_3d(dilation, 1), pad_3d(pad_lo, 0)


def forward(x, w, output_size, stride, dilation, pad_lo):
    """Correlation of ``x`` ``(N, C_in, *n)`` with ``w`` ``(C_out, C_in/G, *k)``, zero padding ``pad_lo`` in front.

    The padding behind is implied by ``output_size``; groups by the shapes.
    Returns ``y`` of shape ``(N, C_out, *output_size)`` in ``x``'s dtype.
    """
    y = np.empty((x.shape[0], w.shape[0], *output_size), x.dtype)
    _forward(as_3d(x), as_3d(w), as_3d(y), *_geometry(stride, dilation, pad_lo), get_threads())
    return y


def backward_input(grad_y, w, input_size, groups, stride, dilation, pad_lo):
    """``dx`` ``(N, C_in, *input_size)``: the adjoint of :func:`forward` in ``x``."""
    dx = np.empty((grad_y.shape[0], groups * w.shape[1], *input_size), grad_y.dtype)
    geometry = _geometry(stride, dilation, pad_lo)
    # the gather form adds padded zeros times weights: the same sums only if every weight is finite
    gather = geometry[0][1:] == (1, 1) and np.isfinite(w).all()
    if gather:
        _backward_input(as_3d(grad_y), as_3d(w), as_3d(dx), *geometry, get_threads())
    else:
        _backward_input_strided(as_3d(grad_y), as_3d(w), as_3d(dx), *geometry)
    return dx


def backward_weight(grad_y, x, kernel_size, groups, stride, dilation, pad_lo):
    """``dw`` ``(C_out, C_in/G, *kernel_size)``: the adjoint of :func:`forward` in ``w``."""
    dw = np.empty((grad_y.shape[1], x.shape[1] // groups, *kernel_size), x.dtype)
    _backward_weight(as_3d(grad_y), as_3d(x), as_3d(dw), *_geometry(stride, dilation, pad_lo), get_threads())
    return dw
