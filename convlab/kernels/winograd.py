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

    rows, mw, (rd, _), (rh, _) = _prepared(mats, m_in.dtype)
    y = np.empty((batch, m_in.shape[1], *output_size), m_in.dtype) if out is None else out
    m_in = np.ascontiguousarray(m_in)
    _untiles(m_in.reshape(-1, m_in.shape[2]), as_3d(y), rows, mw, rd, rh, _three(counts, 1))
    return y
