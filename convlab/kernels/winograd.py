"""Winograd's tile transforms as fused loops: padding, tile gather, ``Bᵀ d B`` (or ``G g Gᵀ``) and ``Aᵀ m A``.

The transforms are separable (``F(m×m, r×r)`` is ``F(m, r)`` along each
axis), so each kernel applies one small matrix per axis. Work is threaded over
``(sample, channel)`` planes and vectorised along the last axis *across
tiles*: a row of the input is first split by phase modulo the tile step
(``P[φ, q] = row[q·step + φ]``), after which element ``k`` of every tile in
the row is the contiguous slice ``P[k mod step, k div step :][:tiles]``.
The zero padding and the extension to whole tiles are applied while the row
is split (no padded copy), and the transformed tiles are written straight
into the layout of the channel GEMM, ``(α, C, N·T)`` with ``α`` the
transformed positions and ``T`` the tiles per sample: no temporary tile
array and no transpose. Zero matrix entries (about half of ``Bᵀ`` and ``Aᵀ``)
are skipped.

Every kernel works on ``(N, C, D, H, W)`` (see :func:`convlab.kernels.as_3d`);
an axis the problem does not have takes the 1×1 identity as its matrix.
"""

import numba
import numpy as np
from numba import prange

from ._runtime import njit

__all__ = ["tiles", "untiles"]


@numba.njit(cache=True)
def _rows_times(dst, mat, src, outer, inner):
    """``dst[o, i, e] = Σ_b mat[i, b] src[o, b, e]`` over rows of tiles: ``outer`` leading and ``inner``
    trailing row groups, ``mat`` applied in the middle (zero entries skipped)."""
    rows, cols = mat.shape
    dst[:] = 0
    for o in range(outer):
        for i in range(rows):
            for b in range(cols):
                coef = mat[i, b]
                if coef != 0:
                    for e in range(inner):
                        acc = dst[(o * rows + i) * inner + e]
                        row = src[(o * cols + b) * inner + e]
                        for t in range(acc.shape[0]):
                            acc[t] += coef * row[t]


@numba.njit(cache=True)
def _passes(src, dst, md, mh, mw, sd, sh, sw):
    """``dst[(i,j,e)] = Σ md[i,a] mh[j,b] mw[e,k] src[(a,b,k)]``, one axis at a time, rows of tiles as vectors.

    ``src`` is ``(sd·sh·sw, T)``, ``dst`` ``(rd·rh·rw, T)``: every row a
    contiguous vector over the tiles, so each pass is a few multiply-adds of
    whole rows (vectorised by LLVM). An axis the problem does not have (a 1×1
    identity) costs no pass.
    """
    rd, rh, rw = md.shape[0], mh.shape[0], mw.shape[0]
    n = src.shape[1]
    after_w = np.empty((sd * sh * rw, n), src.dtype)
    _rows_times(after_w, mw, src, sd * sh, 1)
    if sd == 1 and rd == 1 and md[0, 0] == 1:
        _rows_times(dst, mh, after_w, 1, rw)
    else:
        after_h = np.empty((sd * rh * rw, n), src.dtype)
        _rows_times(after_h, mh, after_w, sd, rw)
        _rows_times(dst, md, after_h, 1, rh * rw)


@numba.njit(cache=True, inline="always")
def _span(count, n, step, offset):
    """Range ``[lo, hi)`` of ``q < count`` with ``0 <= q·step + offset < n``."""
    lo = 0 if offset >= 0 else (-offset + step - 1) // step
    hi = 0 if n - 1 - offset < 0 else (n - 1 - offset) // step + 1
    return lo, max(lo, min(hi, count))


@njit(parallel=True)
def _tiles(src, out, md, mh, mw, step, pad, counts):
    n_batch, c_in, d_in, h_in, w_in = src.shape
    sd, sh, sw = md.shape[1], mh.shape[1], mw.shape[1]
    kd, kh, kw = step
    pd, ph, pw = pad
    td_n, th_n, tw_n = counts
    tiles = td_n * th_n * tw_n
    # the zero-padded plane the tiles read, its rows split by phase along w: element k of the tiles
    # of a row is then the contiguous run split[.., k % kw, k // kw:][:tw_n]
    ed, eh = (td_n - 1) * kd + sd, (th_n - 1) * kh + sh
    length = tw_n + (sw - 1) // kw
    for task in prange(n_batch * c_in):
        n, c = task // c_in, task % c_in
        split = np.zeros((ed, eh, kw, length), src.dtype)
        for zd in range(max(0, pd), min(ed, d_in + pd)):
            for zh in range(max(0, ph), min(eh, h_in + ph)):
                row = src[n, c, zd - pd, zh - ph]
                for phase in range(kw):
                    lo, hi = _span(length, w_in, kw, phase - pw)
                    if hi > lo:
                        first = lo * kw + phase - pw
                        split[zd, zh, phase, lo:hi] = row[first:first + (hi - lo - 1) * kw + 1:kw]
        gathered = np.empty((sd * sh * sw, tiles), src.dtype)
        for a in range(sd):
            for b in range(sh):
                for k in range(sw):
                    dst = gathered[(a * sh + b) * sw + k]
                    t = 0
                    for td in range(td_n):
                        for th in range(th_n):
                            dst[t:t + tw_n] = split[td * kd + a, th * kh + b, k % kw, k // kw:k // kw + tw_n]
                            t += tw_n
        _passes(gathered, out[:, c, n * tiles:(n + 1) * tiles], md, mh, mw, sd, sh, sw)


@njit(parallel=True)
def _untiles(m_in, y, md, mh, mw, counts):
    n_batch, c_out, d_out, h_out, w_out = y.shape
    rd, ad = md.shape
    rh, ah = mh.shape
    rw, aw = mw.shape
    td_n, th_n, tw_n = counts
    tiles = td_n * th_n * tw_n
    for task in prange(n_batch * c_out):
        n, c = task // c_out, task % c_out
        result = np.empty((rd * rh * rw, tiles), y.dtype)
        _passes(m_in[:, c, n * tiles:(n + 1) * tiles], result, md, mh, mw, ad, ah, aw)
        for i in range(rd):
            for j in range(rh):
                for k in range(rw):
                    src = result[(i * rh + j) * rw + k]
                    count = min(tw_n, (w_out - 1 - k) // rw + 1)
                    t = 0
                    for td in range(td_n):
                        od = td * rd + i
                        for th in range(th_n):
                            oh = th * rh + j
                            if od < d_out and oh < h_out and count > 0:
                                y[n, c, od, oh, k:k + (count - 1) * rw + 1:rw] = src[t:t + count]
                            t += tw_n


def _axes(mats):
    """Per-axis matrices for 1 to 3 axes -> three C-contiguous matrices, leading axes the 1×1 identity."""
    mats = list(mats)
    eye = np.ones((1, 1), mats[0].dtype)
    return [eye] * (3 - len(mats)) + [np.ascontiguousarray(m) for m in mats]


def _three(values, fill):
    values = tuple(int(v) for v in values)
    return (fill,) * (3 - len(values)) + values


def tiles(src, mats, step, pad, counts):
    """Transformed tiles of ``src`` ``(N, C, *n)``: ``(prod(rows), C, N·prod(counts))``.

    Tile ``t`` along an axis reads ``src[t·step − pad + j]`` for ``j <
    mats[axis].shape[1]`` (zero outside ``src``) and is multiplied by
    ``mats[axis]`` from the left; row ``ξ`` of the result holds transformed
    element ``ξ`` (C order over the axes) of every tile of every sample.
    """
    from . import as_3d

    rows = int(np.prod([m.shape[0] for m in mats]))
    out = np.empty((rows, src.shape[1], src.shape[0] * int(np.prod(counts))), src.dtype)
    _tiles(as_3d(src), out, *_axes(m.astype(src.dtype) for m in mats), _three(step, 1), _three(pad, 0),
           _three(counts, 1))
    return out


def untiles(m_in, mats, counts, batch, output_size):
    """The adjoint layout of :func:`tiles` for outputs: ``(α, C, N·T)`` -> ``y`` ``(N, C, *output_size)``.

    Each tile's ``α`` values are multiplied by ``mats[axis]`` (``m × α``) per
    axis, and the ``m`` results per axis land at ``t·m``, cropped to ``output_size``; ``counts``
    tiles per axis (at least ``ceil(output_size / m)``).
    """
    from . import as_3d

    y = np.empty((batch, m_in.shape[1], *output_size), m_in.dtype)
    _untiles(np.ascontiguousarray(m_in), as_3d(y), *_axes(m.astype(m_in.dtype) for m in mats), _three(counts, 1))
    return y
