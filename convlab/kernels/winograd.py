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
def _combine(dst, row, col, src, rows, cols, coefs, count, n):
    """``dst[row, col + t] = Σ_{j < count} coefs[j] · src[rows[j], cols[j] + t]`` for ``t < n``.

    Up to four terms are summed in registers and stored once (the same left-to-right sum as a loop of
    ``+=``, so the same rounding); the rare further terms are added one run at a time.
    """
    row, col = _u(row), _u(col)
    if count == 0:
        for t in range(n):
            dst[row, col + _u(t)] = 0
        return
    r0, s0, c0 = _u(rows[0]), _u(cols[0]), coefs[0]
    if count == 1:
        for t in range(n):
            dst[row, col + _u(t)] = c0 * src[r0, s0 + _u(t)]
        return
    r1, s1, c1 = _u(rows[1]), _u(cols[1]), coefs[1]
    if count == 2:
        for t in range(n):
            dst[row, col + _u(t)] = c0 * src[r0, s0 + _u(t)] + c1 * src[r1, s1 + _u(t)]
        return
    r2, s2, c2 = _u(rows[2]), _u(cols[2]), coefs[2]
    if count == 3:
        for t in range(n):
            dst[row, col + _u(t)] = (c0 * src[r0, s0 + _u(t)] + c1 * src[r1, s1 + _u(t)]
                                     + c2 * src[r2, s2 + _u(t)])
        return
    r3, s3, c3 = _u(rows[3]), _u(cols[3]), coefs[3]
    for t in range(n):
        dst[row, col + _u(t)] = (c0 * src[r0, s0 + _u(t)] + c1 * src[r1, s1 + _u(t)]
                                 + c2 * src[r2, s2 + _u(t)] + c3 * src[r3, s3 + _u(t)])
    for j in range(4, count):
        rj, sj, cj = _u(rows[j]), _u(cols[j]), coefs[j]
        for t in range(n):
            dst[row, col + _u(t)] += cj * src[rj, sj + _u(t)]


@njit(parallel=True)
def _tiles(src, out, mrows, mw, sd, sh, step, pad, counts):
    n_batch, c_in, d_in, h_in, w_in = src.shape
    n_rows, (aw, sw) = mrows.shape[0], mw.shape
    kd, kh, kw = step
    pd, ph, pw = pad
    td_n, th_n, tw_n = counts
    tiles, run = td_n * th_n * tw_n, th_n * tw_n
    # rows of the zero-extended input the tiles read, in phases of the leading steps: padded row
    # (v·kd + p_d, u·kh + p_h) is row ((p_d·kh + p_h)·vd + v)·uh + u, so that row b of every tile of a
    # tile row is one contiguous run
    vd, uh = td_n + (sd - 1) // kd, th_n + (sh - 1) // kh
    rows = kd * kh * vd * uh
    for task in prange(n_batch * c_in):
        n, c = task // c_in, task % c_in
        # gathered[k, R·tw_n + q] = element k of tile q along the last axis, in row R (zero outside the
        # source: the padding costs no copy)
        gathered = np.empty((sw, rows * tw_n), src.dtype)
        for k in range(sw):
            offset = k - pw   # tile q reads column q·kw + offset: inside the source for q in [lo, hi)
            lo = min(tw_n, 0 if offset >= 0 else (-offset + kw - 1) // kw)
            hi = max(lo, min(tw_n, 0 if w_in - 1 - offset < 0 else (w_in - 1 - offset) // kw + 1))
            # nested loops over the row phases: a division per row costs as much as its copy
            rr = 0
            for p_d in range(kd):
                for p_h in range(kh):
                    for v in range(vd):
                        zd = v * kd + p_d - pd
                        for u in range(uh):
                            zh = u * kh + p_h - ph
                            base = rr * tw_n
                            rr += 1
                            if not (0 <= zd < d_in and 0 <= zh < h_in):
                                for q in range(tw_n):
                                    gathered[k, base + q] = 0
                                continue
                            for q in range(lo):
                                gathered[k, base + q] = 0
                            # unsigned indices, no views: both would cost more than the copy itself
                            for q in range(hi - lo):
                                gathered[_u(k), _u(base + lo + q)] = src[_u(n), _u(c), _u(zd), _u(zh),
                                                                         _u((lo + q) * kw + offset)]
                            for q in range(hi, tw_n):
                                gathered[k, base + q] = 0
        # the last axis' matrix over all rows at once
        last = np.empty((aw, rows * tw_n), src.dtype)
        terms = max(sw, sd * sh)
        t_rows, t_cols, coefs = np.empty(terms, np.intp), np.empty(terms, np.intp), np.empty(terms, src.dtype)
        for j in range(aw):
            count = 0
            for k in range(sw):
                if mw[j, k] != 0:
                    t_rows[count], t_cols[count], coefs[count] = k, 0, mw[j, k]
                    count += 1
            _combine(last, j, 0, gathered, t_rows, t_cols, coefs, count, rows * tw_n)
        # the leading axes (one Kronecker matrix), a tile row of tiles at a time, into the GEMM layout
        for td in range(td_n):
            for rho in range(n_rows):
                count = 0
                for a in range(sd):
                    for b in range(sh):
                        coef = mrows[rho, a * sh + b]
                        if coef != 0:
                            phase = (a % kd) * kh + b % kh
                            t_cols[count] = ((phase * vd + td + a // kd) * uh + b // kh) * tw_n
                            coefs[count] = coef
                            count += 1
                for j in range(aw):
                    for i in range(count):
                        t_rows[i] = j
                    _combine(out, (rho * aw + j) * c_in + c, n * tiles + td * run, last, t_rows, t_cols, coefs,
                             count, run)


@njit(parallel=True)
def _untiles(m_in, y, mrows, mw, rd, rh, counts):
    n_batch, c_out, d_out, h_out, w_out = y.shape
    n_out_rows, n_rows = mrows.shape
    rw, aw = mw.shape
    td_n, th_n, tw_n = counts
    tiles, run = td_n * th_n * tw_n, th_n * tw_n
    for task in prange(n_batch * c_out):
        n, c = task // c_out, task % c_out
        terms = max(n_rows, aw)
        t_rows, t_cols, coefs = np.empty(terms, np.intp), np.empty(terms, np.intp), np.empty(terms, y.dtype)
        # the leading axes, reading this plane's tiles in place in the GEMM layout, a tile row at a time:
        # lead[j, ((o·td_n + td)·th_n + th)·tw_n + q] is element j along the last axis of output row o of
        # tile (td, th, q)
        lead = np.empty((aw, n_out_rows * tiles), y.dtype)
        for td in range(td_n):
            for o in range(n_out_rows):
                count = 0
                for rho in range(n_rows):
                    if mrows[o, rho] != 0:
                        t_rows[count], t_cols[count] = rho * aw * c_out + c, n * tiles + td * run
                        coefs[count] = mrows[o, rho]
                        count += 1
                for j in range(aw):
                    _combine(lead, j, (o * td_n + td) * run, m_in, t_rows, t_cols, coefs, count, run)
                    for i in range(count):
                        t_rows[i] += c_out                    # row (rho·aw + j + 1)·C + c
        # the last axis' matrix over all rows at once
        result = np.empty((rw, n_out_rows * tiles), y.dtype)
        for e in range(rw):
            count = 0
            for j in range(aw):
                if mw[e, j] != 0:
                    t_rows[count], t_cols[count], coefs[count] = j, 0, mw[e, j]
                    count += 1
            _combine(result, e, 0, lead, t_rows, t_cols, coefs, count, n_out_rows * tiles)
        # each output row interleaved from its rw phases, cropped
        full = min(tw_n, w_out // rw)             # tiles whose rw outputs all land inside the row
        for td in range(td_n):
            for o_d in range(rd):
                od = td * rd + o_d
                if od >= d_out:
                    break
                for th in range(th_n):
                    for o_h in range(rh):
                        oh = th * rh + o_h
                        if oh >= h_out:
                            break
                        base = (((o_d * rh + o_h) * td_n + td) * th_n + th) * tw_n
                        for q in range(full):
                            for e in range(rw):
                                y[_u(n), _u(c), _u(od), _u(oh), _u(q * rw + e)] = result[_u(e), _u(base + q)]
                        for e in range(w_out - full * rw):
                            y[_u(n), _u(c), _u(od), _u(oh), _u(full * rw + e)] = result[_u(e), _u(base + full)]


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
