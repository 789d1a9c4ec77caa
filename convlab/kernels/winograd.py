"""Winograd's tile transforms as fused loops: padding, tile gather, ``Bᵀ d B`` (or ``G g Gᵀ``) and ``Aᵀ m A``.

The transforms are separable (``F(m×m, r×r)`` is ``F(m, r)`` along each
axis). Work is threaded over ``(sample, channel)`` planes and the results land
in the layout of the channel GEMM, ``(α, C, N·T)`` with ``α`` the transformed
positions and ``T`` the tiles per sample (a plane's tiles contiguous): no
temporary tile array, no transpose.

:func:`tiles` runs every pass over whole rows: the plane is copied into a zero
frame (so the padding costs no test per element) with its rows ordered by row
phase, so that the leading axes' matrices (their Kronecker product, the row
axis' matrix alone in 2-D) combine the framed rows of all the bands (tile rows)
of a depth in one pass, the result is split by column phase
(column ``j`` of tile ``q`` is element ``q + j // k_w`` of phase ``j % k_w``,
a copy with a literal stride that LLVM vectorises), and the last axis' matrix
then combines phase rows over all the plane's tiles at once, straight into the
layout. For that last pass to be one long row, each band holds
``counts[-1] + reach`` tiles: the tiles a tile's last columns reach into (one
for ``F(4, 3)`` and ``F(2, 3)``) are padding, transformed, multiplied and
dropped (7% more GEMM columns on a 56² output, 12% on 32²).

:func:`untiles` goes the other way a plane at a time: the last axis first,
reading a plane's rows in place in the GEMM layout, then the leading axes, then
the scatter into ``y`` cropped to its size (which drops the padding tiles).

Measured (``python benchmarks/bench_winograd_phases.py --floor --threads 1``
and a same-process comparison, one 64-channel 56² sample, single-thread minima
on a loaded 2-core machine): the previous :func:`tiles`, which gathered each
tile element into a row of its tile row's 14 tiles, took 0.50 ms (1.1 ns per
transformed value); a kernel that only stores the same layout takes 0.026 ms,
no more than a contiguous store, so the scattered layout was never the cost.
The gather was (0.41 of 0.46 ms): strided reads and loops over one tile row's
14 tiles run scalar at about 1 ns an element, where a loop over a long
contiguous row runs at 0.05–0.3. This :func:`tiles` takes 0.30 ms (0.39 with a
pass per band); on four 16-channel 32² samples 0.20 ms against 0.23. A version that
kept the unpadded layout and wrote the last pass in runs of a tile row was
slower than the gather (0.9 ms), and an :func:`untiles` over long rows was no
faster than this one (0.30 against 0.29–0.31 ms on 56², 0.18 against 0.15 on
32²). What remains is per-element work in short loops, chiefly ``untiles``' scatter
(strided stores of a tile row's 14 tiles) and the 7% of padding columns.

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

import math

import numba
import numpy as np
from numba import prange

from ._runtime import njit

__all__ = ["columns", "reach", "tiles", "untiles"]


@numba.njit(cache=True, inline="always")
def _u(index):
    """``index`` (known >= 0) as unsigned: numba then drops the wrap-around test of a negative index, which
    costs a branch per element and keeps LLVM from vectorising the loop (2–7× on these loops)."""
    return np.uintp(index)


@numba.njit(cache=True)
def _terms(mat, i, at, coefs):
    """The nonzero entries of row ``i`` of ``mat``: their column numbers into ``at``, the values into
    ``coefs``; returns how many."""
    count = 0
    for b in range(mat.shape[1]):
        if mat[i, b] != 0:
            at[count], coefs[count] = b, mat[i, b]
            count += 1
    return count


@numba.njit(cache=True)
def _combine(dst, d0, src, at, coefs, count, n):
    """``dst[d0 + t] = Σ_e coefs[e] src[at[e] + t]`` for ``t < n`` (flat arrays).

    Up to four terms are summed in registers and stored once (the same left-to-right sum as a loop
    of ``+=``, so the same rounding); the rare further terms are added a row at a time.
    """
    d0 = _u(d0)
    if count == 0:
        for t in range(n):
            dst[d0 + _u(t)] = 0
        return
    a0, c0 = _u(at[0]), coefs[0]
    if count == 1:
        for t in range(n):
            dst[d0 + _u(t)] = c0 * src[a0 + _u(t)]
    elif count == 2:
        a1, c1 = _u(at[1]), coefs[1]
        for t in range(n):
            dst[d0 + _u(t)] = c0 * src[a0 + _u(t)] + c1 * src[a1 + _u(t)]
    elif count == 3:
        a1, c1, a2, c2 = _u(at[1]), coefs[1], _u(at[2]), coefs[2]
        for t in range(n):
            dst[d0 + _u(t)] = c0 * src[a0 + _u(t)] + c1 * src[a1 + _u(t)] + c2 * src[a2 + _u(t)]
    else:
        a1, c1, a2, c2, a3, c3 = _u(at[1]), coefs[1], _u(at[2]), coefs[2], _u(at[3]), coefs[3]
        for t in range(n):
            dst[d0 + _u(t)] = (c0 * src[a0 + _u(t)] + c1 * src[a1 + _u(t)] + c2 * src[a2 + _u(t)]
                               + c3 * src[a3 + _u(t)])
        for e in range(4, count):
            ae, ce = _u(at[e]), coefs[e]
            for t in range(n):
                dst[d0 + _u(t)] += ce * src[ae + _u(t)]


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


@numba.njit(cache=True)
def _split(row, split, kw, nf):
    """``split[p, f] = row[kw·f + p]``: the column phases of a row, each one contiguous.

    The stride is a literal for the common steps (4: ``F(4, 3)``; 2: ``F(2, 3)``), so that LLVM loads
    whole vectors and shuffles them (0.1 ns an element against ~1 with a run-time stride).
    """
    if kw == 4:
        for f in range(nf):
            b = _u(4 * f)
            split[0, _u(f)], split[1, _u(f)] = row[b], row[b + 1]
            split[2, _u(f)], split[3, _u(f)] = row[b + 2], row[b + 3]
    elif kw == 2:
        for f in range(nf):
            b = _u(2 * f)
            split[0, _u(f)], split[1, _u(f)] = row[b], row[b + 1]
    else:
        for p in range(kw):
            for f in range(nf):
                split[_u(p), _u(f)] = row[_u(kw * f + p)]


@njit(parallel=True)
def _tiles(src, out, mrows, mw, sd, sh, step, pad, counts, qp):
    n_batch, c_in, d_in, h_in, w_in = src.shape
    n_rows, (aw, sw) = mrows.shape[0], mw.shape
    kd, kh, kw = step
    pd, ph, pw = pad
    td_n, th_n = counts[0], counts[1]
    bands = td_n * th_n                                   # tile rows of a plane
    cols, pitch = bands * qp, kw * qp                     # layout columns per sample; a band's row length
    reach = (sw - 1) // kw                                # tiles a tile's last columns fall into
    dp, hp = (td_n - 1) * kd + sd, (th_n - 1) * kh + sh   # rows of the zero-framed plane the tiles read
    hb = (hp - 1) // kh + 1                               # framed rows per row phase (see 1.)
    w0, w1 = max(0, -pw), max(0, min(w_in, pitch - pw))   # the source columns inside the frame
    flat_out = out.reshape(-1)
    total = out.shape[1]
    for task in prange(n_batch * c_in):
        n, c = task // c_in, task % c_in
        # 1. the plane in a zero frame, rows ``pitch`` long (contiguous copies), ordered by row phase: row
        # z at (z % kh)·hb + z // kh, so that row th·kh + b of every band th is one row-stride apart
        framed = np.zeros(dp * kh * hb * pitch, src.dtype)
        for zdf in range(dp):
            zd = zdf - pd
            for zhf in range(hp):
                zh = zhf - ph
                if 0 <= zd < d_in and 0 <= zh < h_in:
                    base = _u((zdf * kh * hb + (zhf % kh) * hb + zhf // kh) * pitch + pw)
                    for zw in range(w0, w1):
                        framed[base + _u(zw)] = src[_u(n), _u(c), _u(zd), _u(zh), _u(zw)]
        at, coefs = np.empty(max(sd * sh, sw), np.intp), np.empty(max(sd * sh, sw), src.dtype)
        band = np.empty(cols * kw, src.dtype)
        split = np.zeros((kw, cols + reach), src.dtype)   # the ``reach`` columns past the end stay zero
        flat_split = split.reshape(-1)
        for i in range(n_rows):
            # 2. the leading axes' row i over all bands (tile rows) of a depth at once: term (a, b) of band
            # (td, th) reads framed row (td·kd + a, th·kh + b), at th rows past that of band (td, 0)
            count = _terms(mrows, i, at, coefs)
            for e in range(count):
                a, b = at[e] // sh, at[e] % sh
                at[e] = (a * kh * hb + (b % kh) * hb + b // kh) * pitch
            for td in range(td_n):
                first = td * kd * kh * hb * pitch
                for e in range(count):
                    at[e] += first
                _combine(band, td * th_n * pitch, framed, at, coefs, count, th_n * pitch)
                for e in range(count):
                    at[e] -= first
            # 3. split by column phase: element j of tile f (over every band) is split[j % kw, f + j // kw]
            _split(band, split, kw, cols)
            # 4. the last axis over all the plane's tiles at once, straight into row (i, k, c) of the layout
            for k in range(aw):
                count = _terms(mw, k, at, coefs)
                for e in range(count):
                    at[e] = (at[e] % kw) * (cols + reach) + at[e] // kw
                _combine(flat_out, ((i * aw + k) * c_in + c) * total + n * cols, flat_split, at, coefs, count,
                         cols)


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


def reach(mat, step):
    """Tiles past its own that a tile of ``mat.shape[1]`` values at ``step`` reads into: the padding
    columns a band needs in the layout of :func:`tiles`."""
    return (np.shape(mat)[1] - 1) // int(step)


def columns(counts, row):
    """Columns of one sample in the layout of :func:`tiles`: ``row`` per band (tile row) of ``counts``."""
    return math.prod(int(c) for c in counts[:-1]) * int(row)


def tiles(src, mats, step, pad, counts, out=None, row=None):
    """Transformed tiles of ``src`` ``(N, C, *n)``: ``(prod(rows), C, N·columns(counts, row))``.

    Tile ``t`` along an axis reads ``src[t·step − pad + j]`` for ``j <
    mats[axis].shape[1]`` (zero outside ``src``) and is multiplied by
    ``mats[axis]`` from the left; row ``ξ`` of the result holds transformed
    element ``ξ`` (C order over the axes) of every tile of every sample. Along the last axis each band
    (tile row) holds ``row`` tiles (default ``counts[-1] + reach(mats[-1], step[-1])``, the least
    allowed): the ``counts[-1]`` tiles, then padding tiles whose values are not to be used (a tile
    read wholly past the end of ``src`` is zero). ``out``, if given, is a C-contiguous array of that
    shape to write into.

    Examples
    --------
    One axis, ``F(2, 3)``'s ``Bᵀ`` on tiles of 4 at step 2 with one zero in front:

    >>> BT = np.array([[1., 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    >>> x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    >>> v = tiles(x, [BT], (2,), (1,), (2,))
    >>> v.shape                              # two tiles and one of padding
    (4, 1, 3)
    >>> np.allclose(v[:, 0, 1], BT @ x[0, 0, 1:5])
    True
    """
    from . import as_3d

    least = int(counts[-1]) + reach(mats[-1], step[-1])
    row = least if row is None else int(row)
    if row < least:
        raise ValueError(f"row={row}: the layout needs at least {least} tiles per band")
    rows, mw, (_, sd), (_, sh) = _prepared(mats, src.dtype)
    shape = (rows.shape[0] * mw.shape[0], src.shape[1], src.shape[0] * columns(counts, row))
    if out is None:
        out = np.empty(shape, src.dtype)
    elif out.shape != shape or not out.flags.c_contiguous:  # the kernel writes by index, unchecked
        raise ValueError(f"out: shape {out.shape} (C-contiguous: {out.flags.c_contiguous}); expected a "
                         f"C-contiguous {shape}")
    # (α·C, N·T): row ξ·C + c is channel c of transformed position ξ, a row the kernel writes in place
    _tiles(as_3d(src), out.reshape(-1, out.shape[2]), rows, mw, sd, sh, _three(step, 1), _three(pad, 0),
           _three(counts, 1), row)
    return out


def untiles(m_in, mats, counts, batch, output_size, out=None, row=None):
    """The adjoint layout of :func:`tiles` for outputs: ``(α, C, N·T)`` -> ``y`` ``(N, C, *output_size)``.

    Each tile's ``α`` values are multiplied by ``mats[axis]`` (``m × α``) per
    axis, and the ``m`` results per axis land at ``t·m``, cropped to ``output_size``; ``counts``
    tiles per axis (at least ``ceil(output_size / m)``), ``row`` (default ``counts[-1]``) per band
    in the layout as in :func:`tiles`. ``out``, if given, is a C-contiguous ``y`` to write into.

    Examples
    --------
    >>> AT = np.array([[1., 1, 1, 0], [0, 1, -1, -1]])
    >>> m = np.arange(8.0).reshape(4, 1, 2)   # two tiles of 4 transformed values
    >>> untiles(m, [AT], (2,), 1, (3,))      # cropped to 3 of the 4 outputs
    array([[[ 6., -8.,  9.]]])
    """
    from . import as_3d

    row = int(counts[-1]) if row is None else int(row)
    rows, mw, (rd, _), (rh, _) = _prepared(mats, m_in.dtype)
    y = np.empty((batch, m_in.shape[1], *output_size), m_in.dtype) if out is None else out
    if m_in.shape[2] != batch * columns(counts, row):  # the kernel reads by index, unchecked
        raise ValueError(f"m_in: {m_in.shape[2]} columns; expected {batch * columns(counts, row)} "
                         f"({batch} samples of counts {tuple(counts)}, {row} tiles per band)")
    m_in = np.ascontiguousarray(m_in)
    # a band's padding tiles are transformed like the others and cropped with the tiles past the end
    _untiles(m_in.reshape(-1, m_in.shape[2]), as_3d(y), rows, mw, rd, rh, _three((*counts[:-1], row), 1))
    return y
