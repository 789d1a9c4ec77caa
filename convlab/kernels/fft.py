"""The FFT methods' passes over memory that are not transforms or GEMMs: per-channel products and overlap-add.

* :func:`depthwise_product`: with one input and one output channel per group
  the channel contraction of the frequency domain is a plain product per
  channel and frequency, ``Y[n, c, f] = X[n, c, f] · S[c, f]`` (with ``S`` the
  weight spectrum, already conjugated and scaled by the caller). One read of
  ``X`` and one write of ``Y``, both in the layout the transforms use, where a
  broadcast ``np.multiply`` through the GEMM layout's views walks them with a
  stride.
* :func:`depthwise_weight_product`: its ``dw`` twin, ``DW[c, f] = Σ_n
  conj(DY[n, c, f]) · X[n, c, f]``, summed in registers over the batch.
* :func:`overlap_add`: fft_tiled's ``dx``: every tile's inverse transform is
  added into ``dx`` at its place, cropped to ``dx``'s extent on the way, in one
  pass (it replaced a zero-filled block array, a copy and one strided add per
  overlap offset, which took 20 times the transforms on a 64-channel layer).

The spatial axes are viewed as three (``(…, D, H, W)``, see
:func:`convlab.kernels.as_3d`); each kernel runs one ``(sample, channel)``
plane per parallel task, so no two tasks write the same memory.
"""

import numpy as np
from numba import prange

from ._runtime import njit

__all__ = ["depthwise_product", "depthwise_weight_product", "overlap_add", "padded_rows", "transpose"]


@njit(parallel=True)
def _depthwise_product(x, s, y):
    n_batch, channels, bins = x.shape
    for task in prange(n_batch * channels):
        n, c = task // channels, task % channels
        for f in range(bins):
            y[n, c, f] = x[n, c, f] * s[c, f]


def depthwise_product(x, s, y):
    """``y[n, c, f] = x[n, c, f] * s[c, f]``.

    Parameters
    ----------
    x : ndarray, complex, shape (N, C, F)
        Input spectra (contiguous).
    s : ndarray, complex, shape (C, F)
        One weight spectrum per channel.
    y : ndarray, complex, shape (N, C, F)
        Written in place and returned.
    """
    _depthwise_product(x, s, y)
    return y


@njit(parallel=True)
def _depthwise_weight_product(dy, x, dw):
    n_batch, channels, bins = x.shape
    for c in prange(channels):
        for f in range(bins):
            acc = dw.dtype.type(0)
            for n in range(n_batch):
                acc += np.conj(dy[n, c, f]) * x[n, c, f]
            dw[c, f] = acc


def depthwise_weight_product(dy, x, dw):
    """``dw[c, f] = Σ_n conj(dy[n, c, f]) · x[n, c, f]`` for ``(N, C, F)`` spectra; ``dw`` is ``(C, F)``."""
    _depthwise_weight_product(dy, x, dw)
    return dw


@njit(parallel=True)
def _overlap_add(z, dx, origin, step, span):
    t0, t1, t2, n_batch, channels = z.shape[:5]
    _, _, n0, n1, n2 = dx.shape
    for task in prange(n_batch * channels):
        n, c = task // channels, task % channels
        for a in range(t0):
            for b in range(t1):
                for e in range(t2):
                    # each tile's rows and columns that land inside dx (the rest is padding)
                    first = (origin[0] + a * step[0], origin[1] + b * step[1], origin[2] + e * step[2])
                    i_lo, i_hi = max(0, -first[0]), min(span[0], n0 - first[0])
                    j_lo, j_hi = max(0, -first[1]), min(span[1], n1 - first[1])
                    k_lo, k_hi = max(0, -first[2]), min(span[2], n2 - first[2])
                    for i in range(i_lo, i_hi):
                        for j in range(j_lo, j_hi):
                            for k in range(k_lo, k_hi):
                                dx[n, c, first[0] + i, first[1] + j, first[2] + k] += z[a, b, e, n, c, i, j, k]


def overlap_add(z, dx, origin, step, span):
    """Add tiles into ``dx``: ``dx[n, c, o₀ + t₀·s₀ + i, o₁ + t₁·s₁ + j, …] += z[t₀, t₁, t₂, n, c, i, j, k]``.

    Parameters
    ----------
    z : ndarray, shape (T0, T1, T2, N, C, L0, L1, L2)
        Inverse transforms of a grid of tiles (contiguous); only their first
        ``span`` samples per axis are read.
    dx : ndarray, shape (N, C, n0, n1, n2)
        Accumulated in place; positions outside it (the padding) are dropped.
    origin : tuple of 3 int
        Where tile ``(0, 0, 0)`` starts in ``dx`` (negative: in the front padding).
    step, span : tuple of 3 int
        The tile step and the samples each tile contributes, per axis.
    """
    _overlap_add(z, dx, origin, step, span)
    return dx



#: Side of the square tiles of :func:`transpose`: a 32 x 32 tile of complex64 is 8 KB per side, so the
#: 32 cache lines read with a stride stay in L1 while the tile's rows are written contiguously.
TILE = 32


@njit(parallel=True)
def _transpose(a, out):
    rows, cols = min(out.shape[0], a.shape[1]), min(out.shape[1], a.shape[0])
    tiles_j = (cols + TILE - 1) // TILE
    for t in prange(((rows + TILE - 1) // TILE) * tiles_j):
        i0, j0 = (t // tiles_j) * TILE, (t % tiles_j) * TILE
        for i in range(i0, min(i0 + TILE, rows)):
            for j in range(j0, min(j0 + TILE, cols)):
                out[i, j] = a[j, i]


def transpose(a, out):
    """``out[i, j] = a[j, i]`` by square tiles, one tile per parallel task, over the extent both share.

    Either side may be wider than the other's transpose: the columns beyond (a row padding, see
    :func:`padded_rows`) are neither read nor written.

    The FFT methods' channel product moves spectra between the transforms' layout ``(N·C, F)``
    and one matrix per frequency ``(F, N·C)`` (and back) with it. numpy's strided copy of a
    transposed view walks one side a whole row at a time; at ``N·C = 512`` that side's
    4 KB stride maps every line it touches onto one L1 set, and the copy ran at a fifth of
    this kernel's speed (measured, 512 x 1860 complex64). The tiles read one side with a
    stride too: a frequency-major buffer's rows are padded (:func:`padded_rows`) for that.

    Parameters
    ----------
    a : ndarray, shape (R, F) or wider
        Contiguous.
    out : ndarray, shape (F, R) or wider
        Contiguous, of ``a``'s dtype; written in place and returned.
    """
    _transpose(a, out)
    return out


def padded_rows(count, itemsize):
    """A row length of at least ``count`` items whose byte stride is not a multiple of 1 KB.

    :func:`transpose` reads 32 rows of a tile at once; at a stride that is a multiple of 1 KB
    (``N·C = 512`` complex64: 4 KB) those rows share a handful of L1 sets and evict each other
    (the back transpose ran three times slower than the forward one). One extra cache line
    per row spreads them over all sets.
    """
    if (count * itemsize) % 1024 == 0:
        return count + max(1, 64 // itemsize)
    return count
