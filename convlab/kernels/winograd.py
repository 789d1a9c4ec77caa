"""Winograd's tile transforms as fused loops: padding, tile gather, ``Bᵀ d B`` (or ``G g Gᵀ``) and ``Aᵀ m A``.

The transforms are separable (``F(m×m, r×r)`` is ``F(m, r)`` along each
axis). Work is threaded over ``(sample, channel)`` planes and vectorised along
a plane's tiles: element ``(a, b, k)`` of every tile of the plane is gathered
into one contiguous row (read straight from the source rows, zero outside
them, so the padding costs no copy); the leading axes' matrices (their
Kronecker product, the row axis' matrix alone in 2-D) then combine those rows
into ``α_d·α_h·s_w`` rows, and the last axis' matrix combines those into the
``α`` transformed rows, written in place into the layout of the channel GEMM,
``(α, C, N·T)`` with ``α`` the transformed positions and ``T`` the tiles per
sample (a plane's tiles are contiguous there): no temporary tile array, no
transpose. Each pass is a few multiply-adds of whole rows, zero matrix entries
(about half of ``Bᵀ`` and ``Aᵀ``) skipped. The scratch of a plane (a few tens
of KB for ``F(4×4, 3×3)`` on 56²) stays in cache.

:func:`untiles` is the same in reverse: the last axis first, reading a plane's
rows in place in the GEMM layout, then the leading axes, then the scatter into
``y`` cropped to its size.

numba details the speed depends on (each measured at 1.5–7× on these loops):
the inner loops index the arrays directly with unsigned indices (:func:`_u`)
rather than through slices or views made per run of tiles (numba builds a view
in tens of nanoseconds, and types a general slice as non-contiguous) or signed
indices (numba tests each for wrap-around, which keeps LLVM from vectorising);
and a transformed row is summed in registers and stored once, not accumulated
in memory one matrix entry at a time.

Every kernel works on ``(N, C, D, H, W)`` (see :func:`convlab.kernels.as_3d`);
an axis the problem does not have takes the 1×1 identity as its matrix.
"""

import numba
import numpy as np
from numba import prange

from ._runtime import njit

__all__ = ["tiles", "untiles"]


@numba.njit(cache=True, inline="always")
def _u(index):
    """``index`` (known >= 0) as unsigned: numba then drops the wrap-around test of a negative index, which
    costs a branch per element and keeps LLVM from vectorising the loop (2–7× on these loops)."""
    return np.uintp(index)


@numba.njit(cache=True)
def _apply(dst, mat, src, outer, inner, rows_at, n):
    """``dst[(o·R + i)·inner + e] = Σ_b mat[i, b] src[(o·B + b)·inner + e]`` on rows of ``n`` tiles.

    ``mat`` is ``R × B``; ``rows_at = (dst stride, dst first, dst column, src stride, src first, src
    column)`` places row ``ρ`` of each side at ``stride·ρ + first`` of its 2-D array, from ``column`` on,
    so that the rows of one channel of the GEMM layout are addressed in place. Zero coefficients are
    skipped and each output row is written once (no zero fill, no read-modify-write in the common case).
    """
    ds, d0, dc, ss, s0, sc = rows_at
    n_r, n_b = mat.shape
    rows = np.empty(n_b, np.uintp)      # source rows of the nonzero coefficients of one output row
    coefs = np.empty(n_b, mat.dtype)
    for o in range(outer):
        for i in range(n_r):
            for e in range(inner):
                out = _u(((o * n_r + i) * inner + e) * ds + d0)
                count = 0
                for b in range(n_b):
                    if mat[i, b] != 0:
                        rows[count], coefs[count] = _u(((o * n_b + b) * inner + e) * ss + s0), mat[i, b]
                        count += 1
                # up to four terms summed in registers and stored once (the same left-to-right sum as a
                # loop of +=, so the same rounding); the rare further terms added one row at a time
                if count == 0:
                    for t in range(n):
                        dst[out, _u(dc + t)] = 0
                elif count == 1:
                    r0, c0 = rows[0], coefs[0]
                    for t in range(n):
                        dst[out, _u(dc + t)] = c0 * src[r0, _u(sc + t)]
                elif count == 2:
                    r0, c0, r1, c1 = rows[0], coefs[0], rows[1], coefs[1]
                    for t in range(n):
                        dst[out, _u(dc + t)] = c0 * src[r0, _u(sc + t)] + c1 * src[r1, _u(sc + t)]
                elif count == 3:
                    r0, c0, r1, c1, r2, c2 = rows[0], coefs[0], rows[1], coefs[1], rows[2], coefs[2]
                    for t in range(n):
                        dst[out, _u(dc + t)] = (c0 * src[r0, _u(sc + t)] + c1 * src[r1, _u(sc + t)]
                                                + c2 * src[r2, _u(sc + t)])
                else:
                    r0, c0, r1, c1, r2, c2 = rows[0], coefs[0], rows[1], coefs[1], rows[2], coefs[2]
                    r3, c3 = rows[3], coefs[3]
                    for t in range(n):
                        dst[out, _u(dc + t)] = (c0 * src[r0, _u(sc + t)] + c1 * src[r1, _u(sc + t)]
                                                + c2 * src[r2, _u(sc + t)] + c3 * src[r3, _u(sc + t)])
                    for j in range(4, count):
                        rj, cj = rows[j], coefs[j]
                        for t in range(n):
                            dst[out, _u(dc + t)] += cj * src[rj, _u(sc + t)]


@njit(parallel=True)
def _tiles(src, out, mrows, mw, sd, sh, step, pad, counts):
    n_batch, c_in, d_in, h_in, w_in = src.shape
    n_rows, sw = mrows.shape[0], mw.shape[1]
    kd, kh, kw = step
    pd, ph, pw = pad
    td_n, th_n, tw_n = counts
    tiles = td_n * th_n * tw_n
    for task in prange(n_batch * c_in):
        n, c = task // c_in, task % c_in
        # element (a, b, k) of every tile of the plane, a contiguous row over the tiles, read straight from
        # the source rows (zero outside them: the padding costs no copy)
        gathered = np.empty((sd * sh * sw, tiles), src.dtype)
        for td in range(td_n):
            for th in range(th_n):
                t0 = (td * th_n + th) * tw_n
                for a in range(sd):
                    zd = td * kd + a - pd
                    for b in range(sh):
                        zh = th * kh + b - ph
                        inside = 0 <= zd < d_in and 0 <= zh < h_in
                        for k in range(sw):
                            r = (a * sh + b) * sw + k
                            offset = k - pw   # tile q reads column q·kw + offset: in [0, w_in) for q in [lo, hi)
                            lo = min(tw_n, 0 if offset >= 0 else (-offset + kw - 1) // kw)
                            hi = max(lo, min(tw_n, 0 if w_in - 1 - offset < 0 else (w_in - 1 - offset) // kw + 1))
                            if not inside:
                                lo = hi = tw_n
                            for q in range(lo):
                                gathered[r, t0 + q] = 0
                            # unsigned indices, no views: both would cost more than the copy itself
                            for q in range(hi - lo):
                                gathered[_u(r), _u(t0 + lo + q)] = src[_u(n), _u(c), _u(zd), _u(zh),
                                                                       _u((lo + q) * kw + offset)]
                            for q in range(hi, tw_n):
                                gathered[r, t0 + q] = 0
        # the leading axes (one Kronecker matrix), then the last axis straight into the GEMM layout
        lead = np.empty((n_rows * sw, tiles), src.dtype)
        _apply(lead, mrows, gathered, 1, sw, (1, 0, 0, 1, 0, 0), tiles)
        _apply(out, mw, lead, n_rows, 1, (c_in, c, n * tiles, 1, 0, 0), tiles)


@njit(parallel=True)
def _untiles(m_in, y, mrows, mw, rd, rh, counts):
    n_batch, c_out, d_out, h_out, w_out = y.shape
    n_out_rows, n_rows = mrows.shape
    rw = mw.shape[0]
    td_n, th_n, tw_n = counts
    tiles = td_n * th_n * tw_n
    for task in prange(n_batch * c_out):
        n, c = task // c_out, task % c_out
        # the last axis, reading this plane's tiles in place in the GEMM layout, then the leading axes
        last = np.empty((n_rows * rw, tiles), y.dtype)
        _apply(last, mw, m_in, n_rows, 1, (1, 0, 0, c_out, c, n * tiles), tiles)
        result = np.empty((n_out_rows * rw, tiles), y.dtype)
        _apply(result, mrows, last, 1, rw, (1, 0, 0, 1, 0, 0), tiles)
        for o in range(n_out_rows):
            for td in range(td_n):
                od = td * rd + o // rh
                for th in range(th_n):
                    oh = th * rh + o % rh
                    if od >= d_out or oh >= h_out:
                        continue
                    t = (td * th_n + th) * tw_n
                    row = y[n, c, od, oh]
                    for e in range(min(rw, w_out)):
                        count = min(tw_n, (w_out - 1 - e) // rw + 1)
                        dst, run = row[e:], result[o * rw + e][t:]
                        for q in range(count):
                            dst[_u(q * rw)] = run[_u(q)]


# ------------------------------------------------------------- F(4×4, 3×3): the transforms in registers
# The common case (3×3 filters on outputs of 4 or more) gets its own pair of kernels: each tile's 36 inputs
# are loaded from a zero-framed copy of its plane (no bounds test per element), Bᵀ d B is a fixed set of
# adds and multiplies by 2 and 4 held in registers, and the 36 results are stored once, into the rows of the
# GEMM layout. The generic kernels above spend their time entering and leaving loops of one tile-row's 14
# tiles (about 1 ns an element, 4× a copy); these loops have a body of a whole tile.
_BT43 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
"""``Bᵀ`` of ``F(4, 3)`` (and of ``F(3, 4)``, the weight gradient's) that :func:`_bt43` hard-codes."""
_AT43 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                 np.float64)
"""``Aᵀ`` of ``F(4, 3)`` that :func:`_at43` hard-codes."""


@numba.njit(cache=True, inline="always")
def _bt43(d0, d1, d2, d3, d4, d5, k):
    """:data:`_BT43` times ``d``; ``k = (2, 4, 8)`` in the data's dtype (a literal would promote
    float32 to float64). The multiplications by 2 and 4 are exact, so each row is a sum of the same
    exactly-scaled terms as the matrix product, grouped in pairs."""
    two, four = k[0], k[1]
    t, u = d4 - d2, two * (d3 - d1)
    return (four * (d0 - d2) + t, (d3 + d4) - four * (d1 + d2), (d4 - d3) + four * (d1 - d2), t + u, t - u,
            four * (d1 - d3) + (d5 - d3))


@numba.njit(cache=True, inline="always")
def _at43(m0, m1, m2, m3, m4, m5, k):
    """:data:`_AT43` times ``m`` (``k`` as in :func:`_bt43`)."""
    two, four, eight = k[0], k[1], k[2]
    s, d, s2, d2 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + s + s2, d + two * d2, s + four * s2, d + eight * d2 + m5


@numba.njit(cache=True, inline="always")
def _bt43_row(p, i, j, k):
    """:func:`_bt43` along a row of the framed plane ``p``: the 6 values from ``p[i, j]`` on."""
    return _bt43(p[i, j], p[i, j + 1], p[i, j + 2], p[i, j + 3], p[i, j + 4], p[i, j + 5], k)


@numba.njit(cache=True, inline="always")
def _store6(out, row, stride, col, v):
    """``out[row + a·stride, col] = v[a]``: one transformed column of a tile into the GEMM layout."""
    out[row, col] = v[0]
    out[row + stride, col] = v[1]
    out[row + 2 * stride, col] = v[2]
    out[row + 3 * stride, col] = v[3]
    out[row + 4 * stride, col] = v[4]
    out[row + 5 * stride, col] = v[5]


@njit(parallel=True)
def _tiles43(src, out, ph, pw, th_n, tw_n, k):
    """:func:`tiles` for ``F(4×4, 3×3)`` in 2-D: ``src`` ``(N, C, H, W)`` -> ``out`` ``(36·C, N·T)``.

    Vectorised across tiles: the plane, framed in zeros, is split by column phase (``q[p, i·Q + t]``
    is column ``4t + p`` of row ``i``), so that the 6 columns of tile ``t`` are ``q[0..3, t]`` and
    ``q[0..1, t + 1]``, each contiguous over ``t``; one loop over every row of the plane applies ``Bᵀ``
    along ``w`` (each row once, though tile rows share two), then a loop per tile row applies it along ``h``
    and stores into the GEMM layout.
    """
    n_batch, c_in, h_in, w_in = src.shape
    hp, tq, tiles = 4 * th_n + 2, tw_n + 1, th_n * tw_n
    z0, z1 = max(0, -pw), min(w_in, 4 * tq - pw)  # the source columns inside the frame
    stride, rows = _u(6 * c_in), _u(hp * tq)
    for task in prange(n_batch * c_in):
        n, c = task // c_in, task % c_in
        q = np.zeros((4, hp * tq + 1), src.dtype)
        for i in range(hp):
            zh = i - ph
            if 0 <= zh < h_in:
                for zw in range(z0, z1):
                    j = _u(zw + pw)
                    q[j & np.uintp(3), _u(i * tq) + (j >> np.uintp(2))] = src[_u(n), _u(c), _u(zh), _u(zw)]
        wt = np.empty((6, hp * tq), src.dtype)   # Bᵀ along w: row b holds transformed column b of every tile
        for x in range(rows):
            v = _bt43(q[0, x], q[1, x], q[2, x], q[3, x], q[0, x + 1], q[1, x + 1], k)
            wt[0, x], wt[1, x], wt[2, x], wt[3, x], wt[4, x], wt[5, x] = v
        for th in range(th_n):
            col0, base = _u(n * tiles + th * tw_n), _u(4 * th * tq)
            for b in range(6):
                row = _u(b * c_in + c)
                for tw in range(tw_n):
                    x = base + _u(tw)
                    _store6(out, row, stride, col0 + _u(tw),
                            _bt43(wt[b, x], wt[b, x + tq], wt[b, x + 2 * tq], wt[b, x + 3 * tq], wt[b, x + 4 * tq],
                                  wt[b, x + 5 * tq], k))


@numba.njit(cache=True, inline="always")
def _at43_row(m, row, stride, col, k):
    """:func:`_at43` along w of transformed row ``a`` of a tile: ``m[row + b·stride, col]`` for ``b < 6``."""
    return _at43(m[row, col], m[row + stride, col], m[row + 2 * stride, col], m[row + 3 * stride, col],
                 m[row + 4 * stride, col], m[row + 5 * stride, col], k)


@njit(parallel=True)
def _untiles43(m_in, y, th_n, tw_n, k):
    """:func:`untiles` for ``F(4×4, 3×3)`` in 2-D: ``m_in`` ``(36·C, N·T)`` -> ``y`` ``(N, C, H, W)``."""
    n_batch, c_out, h_out, w_out = y.shape
    tiles = th_n * tw_n
    stride = _u(c_out)      # from transformed column b to b + 1
    for task in prange(n_batch * c_out):
        n, c = task // c_out, task % c_out
        edge = np.empty((4, 4), y.dtype)  # a tile that overhangs y, cropped below
        for th in range(th_n):
            for tw in range(tw_n):
                col = _u(n * tiles + th * tw_n + tw)
                r0, r1 = _at43_row(m_in, _u(c), stride, col, k), _at43_row(m_in, _u(6 * c_out + c), stride, col, k)
                r2 = _at43_row(m_in, _u(12 * c_out + c), stride, col, k)
                r3 = _at43_row(m_in, _u(18 * c_out + c), stride, col, k)
                r4 = _at43_row(m_in, _u(24 * c_out + c), stride, col, k)
                r5 = _at43_row(m_in, _u(30 * c_out + c), stride, col, k)
                s0 = _at43(r0[0], r1[0], r2[0], r3[0], r4[0], r5[0], k)
                s1 = _at43(r0[1], r1[1], r2[1], r3[1], r4[1], r5[1], k)
                s2 = _at43(r0[2], r1[2], r2[2], r3[2], r4[2], r5[2], k)
                s3 = _at43(r0[3], r1[3], r2[3], r3[3], r4[3], r5[3], k)
                i, j = 4 * th, 4 * tw
                if i + 4 <= h_out and j + 4 <= w_out:
                    out = y[n, c]
                    _store4(out, _u(i), _u(j), s0[0], s1[0], s2[0], s3[0])
                    _store4(out, _u(i + 1), _u(j), s0[1], s1[1], s2[1], s3[1])
                    _store4(out, _u(i + 2), _u(j), s0[2], s1[2], s2[2], s3[2])
                    _store4(out, _u(i + 3), _u(j), s0[3], s1[3], s2[3], s3[3])
                else:
                    _store4(edge, 0, 0, s0[0], s1[0], s2[0], s3[0])
                    _store4(edge, 1, 0, s0[1], s1[1], s2[1], s3[1])
                    _store4(edge, 2, 0, s0[2], s1[2], s2[2], s3[2])
                    _store4(edge, 3, 0, s0[3], s1[3], s2[3], s3[3])
                    for e in range(min(4, h_out - i)):
                        for f in range(min(4, w_out - j)):
                            y[n, c, i + e, j + f] = edge[e, f]


@numba.njit(cache=True, inline="always")
def _store4(out, i, j, v0, v1, v2, v3):
    out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = v0, v1, v2, v3


def _is43(mats, rows):
    """Whether ``mats`` are two (2-D) copies of ``F(4, 3)``'s matrix ``rows`` (:data:`_BT43` or :data:`_AT43`)."""
    return len(mats) == 2 and all(np.shape(m) == rows.shape and np.array_equal(m, rows) for m in mats)


def _prepared(mats, dtype):
    """Per-axis matrices for 1 to 3 axes -> ``(rows, mw, (lead sizes))``: the leading axes' Kronecker
    product (computed in float64, then rounded once), the last axis' matrix, and the leading axes' shapes."""
    mats = [np.asarray(m, np.float64) for m in mats]
    eye = np.ones((1, 1))
    md, mh, mw = [eye] * (3 - len(mats)) + mats
    rows = np.ascontiguousarray(np.kron(md, mh).astype(dtype))
    return rows, np.ascontiguousarray(mw.astype(dtype)), md.shape, mh.shape


def _three(values, fill):
    values = tuple(int(v) for v in values)
    return (fill,) * (3 - len(values)) + values


def tiles(src, mats, step, pad, counts, out=None):
    """Transformed tiles of ``src`` ``(N, C, *n)``: ``(prod(rows), C, N·prod(counts))``.

    Tile ``t`` along an axis reads ``src[t·step − pad + j]`` for ``j <
    mats[axis].shape[1]`` (zero outside ``src``) and is multiplied by
    ``mats[axis]`` from the left; row ``ξ`` of the result holds transformed
    element ``ξ`` (C order over the axes) of every tile of every sample.
    ``out``, if given, is a C-contiguous array of that shape to write into.

    Examples
    --------
    One axis, ``F(2, 3)``'s ``Bᵀ`` on tiles of 4 at step 2 with one zero in front:

    >>> BT = np.array([[1., 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    >>> x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    >>> v = tiles(x, [BT], (2,), (1,), (2,))
    >>> v.shape
    (4, 1, 2)
    >>> np.allclose(v[:, 0, 1], BT @ x[0, 0, 1:5])
    True
    """
    from . import as_3d

    if _is43(mats, _BT43) and tuple(step) == (4, 4):
        shape = (36, src.shape[1], src.shape[0] * counts[0] * counts[1])
        out = np.empty(shape, src.dtype) if out is None else out
        _tiles43(np.ascontiguousarray(src), out.reshape(-1, shape[2]), int(pad[0]), int(pad[1]), int(counts[0]),
                 int(counts[1]), np.array([2, 4, 8], src.dtype))
        return out
    rows, mw, (_, sd), (_, sh) = _prepared(mats, src.dtype)
    shape = (rows.shape[0] * mw.shape[0], src.shape[1], src.shape[0] * int(np.prod(counts)))
    out = np.empty(shape, src.dtype) if out is None else out
    # (α·C, N·T): row ξ·C + c is channel c of transformed position ξ, a row the kernel writes in place
    _tiles(as_3d(src), out.reshape(-1, out.shape[2]), rows, mw, sd, sh, _three(step, 1), _three(pad, 0),
           _three(counts, 1))
    return out


def untiles(m_in, mats, counts, batch, output_size, out=None):
    """The adjoint layout of :func:`tiles` for outputs: ``(α, C, N·T)`` -> ``y`` ``(N, C, *output_size)``.

    Each tile's ``α`` values are multiplied by ``mats[axis]`` (``m × α``) per
    axis, and the ``m`` results per axis land at ``t·m``, cropped to ``output_size``; ``counts``
    tiles per axis (at least ``ceil(output_size / m)``). ``out``, if given, is a C-contiguous
    ``y`` to write into.

    Examples
    --------
    >>> AT = np.array([[1., 1, 1, 0], [0, 1, -1, -1]])
    >>> m = np.arange(8.0).reshape(4, 1, 2)   # two tiles of 4 transformed values
    >>> untiles(m, [AT], (2,), 1, (3,))      # cropped to 3 of the 4 outputs
    array([[[ 6., -8.,  9.]]])
    """
    from . import as_3d

    y = np.empty((batch, m_in.shape[1], *output_size), m_in.dtype) if out is None else out
    m_in = np.ascontiguousarray(m_in)
    if _is43(mats, _AT43):
        _untiles43(m_in.reshape(-1, m_in.shape[2]), y, int(counts[0]), int(counts[1]),
                   np.array([2, 4, 8], m_in.dtype))
        return y
    rows, mw, (rd, _), (rh, _) = _prepared(mats, m_in.dtype)
    _untiles(m_in.reshape(-1, m_in.shape[2]), as_3d(y), rows, mw, rd, rh, _three(counts, 1))
    return y
