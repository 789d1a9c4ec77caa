"""Tiled FFT: the output in tiles, each from one small FFT of an overlapping input tile.

Forward is *overlap-save*: output tile ``j`` (``Bo`` outputs per axis) needs the
padded-input tile starting at ``j*Bo*s`` of length ``Bi = s(Bo-1) + e``; a valid
correlation of that tile needs no wrap-around margin, so each tile is one FFT
of size ``L >= Bi`` (``Bo`` is grown to fill a fast ``L``) and its outputs are
final: no accumulation. This is the scheme of cuDNN's FFT_TILING and NNPACK's
ft8x8/ft16x16; scipy's ``oaconvolve`` uses its dual, overlap-add, which is
exactly our ``dx``: the transposed convolution of each ``dy`` tile is an input
tile of length ``Bi``, and neighbouring ones are added where they overlap (one
compiled pass, :func:`convlab.kernels.fft.overlap_add`, cropping the padding).
``dw`` sums the per-tile products ``conj(DY) X`` over tiles and batch in the
frequency domain and needs one inverse FFT.

Tiles are processed a row of tiles (along the first spatial axis) at a time,
as many rows as fit :data:`CHUNK_BYTES`, so the spectra held at once are
bounded whatever the input size. The tile size minimises a cost model of
FFT work plus per-frequency channel products (see :func:`choose_tiles`).
"""

import itertools
import math

import numpy as np
import scipy.fft

from ..kernels import as_3d, pad_3d
from ..phases import phase
from .base import Method, register
from .fft import (
    backward_both_exact_nonfinite,
    block_product,
    block_workspace_bytes,
    channel_product,
    place,
    spectral_cost,
    tap_positions,
    transform,
    uses_compiled_product,
    weight_gradient,
    weight_gradient_buffer,
    weight_product,
    weight_spectrum,
)
from .nonfinite import backward_input_exact_nonfinite, backward_weight_exact_nonfinite, forward_exact_nonfinite

__all__ = ["FFTTiled", "choose_tiles", "CHUNK_BYTES"]

CHUNK_BYTES = 32 << 20  # spectra of one chunk of tiles; cuDNN-like bounded workspace


def _candidate_lengths(e, s, out, n_max):
    """Fast FFT lengths for one axis, from the smallest tile to one tile covering the whole output."""
    largest = scipy.fft.next_fast_len(s * (out - 1) + e, real=True)
    lengths, L = [], scipy.fft.next_fast_len(e, real=True)
    while largest > L and len(lengths) < n_max:
        if (L - e) // s + 1 >= 1:
            lengths.append(L)
        L = scipy.fft.next_fast_len(max(L + 1, int(L * 1.15)), real=True)
    return lengths + [largest]


def choose_tiles(plan, chunk_bytes=CHUNK_BYTES):
    """The FFT length per axis minimising the modelled cost, among tiles whose spectra fit ``chunk_bytes``.

    Cost per tile: ``N(C_in + C_out) * P log2 P`` for the transforms plus
    ``4 N C_in C_out / G * P/2`` for the complex channel products, ``P = prod(L)``.

    Returns
    -------
    tuple of int
        ``L`` per spatial axis.
    """
    per_axis = [_candidate_lengths(e, s, out, 24) for e, s, out in
                zip(plan.dilated_kernel_size, plan.stride, plan.output_size)]
    n, cin, cout = plan.batch, plan.in_channels, plan.out_channels
    best, best_cost = None, math.inf
    for L in itertools.product(*per_axis):
        P = math.prod(L)
        bins = P // L[-1] * (L[-1] // 2 + 1)
        if bins * n * (cin + cout) * 2 * plan.dtype.itemsize > chunk_bytes and best is not None:
            continue
        tiles = math.prod(-(-out // ((Li - e) // s + 1)) for Li, e, s, out in
                          zip(L, plan.dilated_kernel_size, plan.stride, plan.output_size))
        cost = tiles * (n * (cin + cout) * P * math.log2(max(P, 2)) + 4 * n * cin * cout / plan.groups * bins)
        if cost < best_cost:
            best, best_cost = L, cost
    return best


class TileGeometry:
    """Tile sizes, tile counts and chunking of one plan (built once per plan)."""

    def __init__(self, plan):
        self.L = choose_tiles(plan)
        e, s = plan.dilated_kernel_size, plan.stride
        self.Bo = tuple((L - ei) // si + 1 for L, ei, si in zip(self.L, e, s))        # outputs per tile
        self.Bi = tuple(si * (b - 1) + ei for b, ei, si in zip(self.Bo, e, s))       # inputs per tile
        self.Bs = tuple(b * si for b, si in zip(self.Bo, s))                          # tile step in input
        self.T = tuple(-(-out // b) for out, b in zip(plan.output_size, self.Bo))     # tiles per axis
        self.q = tuple(-(-bi // bs) for bi, bs in zip(self.Bi, self.Bs))              # steps one tile spans
        self.padded = tuple((t - 1) * bs + bi for t, bs, bi in zip(self.T, self.Bs, self.Bi))
        bins = math.prod(self.L[:-1]) * (self.L[-1] // 2 + 1)
        row = math.prod(self.T[1:]) * plan.batch * (plan.in_channels + plan.out_channels)
        self.row_bytes = row * (bins * 2 + math.prod(self.L)) * plan.dtype.itemsize
        self.rows = max(1, min(self.T[0], CHUNK_BYTES // max(self.row_bytes, 1)))
        self.taps = (Ellipsis, *(slice(0, ei, d) for ei, d in zip(e, plan.dilation)))
        self.scale = 1.0 / math.prod(self.L)

    def chunks(self):
        """``(first_row, last_row)`` of tile rows processed together."""
        return [(r, min(r + self.rows, self.T[0])) for r in range(0, self.T[0], self.rows)]


def tile_geometry(plan):
    return plan.cached(("fft_tiled", "geometry"), lambda: TileGeometry(plan))


# --------------------------------------------------------------- tiles in and out
def _padded_input(plan, geo, x):
    """``x`` zero-padded by ``lo`` in front and to the length the tiles cover (cropped if they cover less)."""
    xp = np.zeros(x.shape[:2] + geo.padded, x.dtype)
    src, dst = [], []
    for n, (lo, _), p in zip(plan.input_size, plan.padding, geo.padded):
        count = max(0, min(n, p - lo))
        src.append(slice(0, count))
        dst.append(slice(lo, lo + count))
    xp[(..., *dst)] = x[(..., *src)]
    return xp


def _input_tiles(geo, xp):
    """``(N, C, *T, *Bi)`` strided view of the overlapping input tiles."""
    d = len(geo.T)
    windows = np.lib.stride_tricks.sliding_window_view(xp, geo.Bi, axis=tuple(range(2, 2 + d)))
    return windows[(slice(None), slice(None), *(slice(0, t * bs, bs) for t, bs in zip(geo.T, geo.Bs)))]


def _tiled_view(a, T, B):
    """``(N, C, *(T*B))`` -> ``(N, C, T1, B1, T2, B2, ...)`` view."""
    return a.reshape(a.shape[:2] + tuple(v for tb in zip(T, B) for v in tb))


def _interleave(d):
    """Permutation ``(*T, N, C, *B)`` -> ``(N, C, T1, B1, T2, B2, ...)``."""
    return (d, d + 1, *(v for a in range(d) for v in (a, d + 2 + a)))


def _tiles_to_buffer(d):
    """Permutation ``(N, C, *T, *B)`` -> ``(*T, N, C, *B)``."""
    return (*range(2, 2 + d), 0, 1, *range(2 + d, 2 + 2 * d))


def _chunk_batch(geo, rows, plan, channels):
    return (rows * math.prod(geo.T[1:]) * plan.batch, channels)


# --------------------------------------------------------------- the three passes
def forward_tiled(plan, x, w):
    geo, d = tile_geometry(plan), plan.ndim
    with phase("pad"):
        tiles = _input_tiles(geo, _padded_input(plan, geo, x))
    with phase("transform_weight"):
        S = weight_spectrum(plan, w, "forward", L=geo.L,
                            block=block_product(plan, _chunk_batch(geo, geo.rows, plan, 0)[0], *plan.w_shape[1::-1]))
    y_full = np.empty(plan.output_shape[:2] + tuple(t * b for t, b in zip(geo.T, geo.Bo)), plan.dtype)
    y_view = _tiled_view(y_full, geo.T, geo.Bo)
    for r0, r1 in geo.chunks():
        rows = r1 - r0
        X = _x_spectrum(plan, geo, tiles, r0, r1)
        ty = transform(plan, "y", geo.L, _chunk_batch(geo, rows, plan, plan.out_channels))
        with phase("product"):
            Y = channel_product(plan, X, S, ty.complex_buffer())
        with phase("transform_output"):
            out = ty.inverse(Y).reshape(rows, *geo.T[1:], *plan.output_shape[:2], *geo.L)
        with phase("unpack"):
            out = out[(..., *(slice(0, bs, s) for bs, s in zip(geo.Bs, plan.stride)))]
            y_view[:, :, r0:r1] = out.transpose(_interleave(d))
    with phase("unpack"):
        return np.ascontiguousarray(y_full[(..., *(slice(0, o) for o in plan.output_size))])


def _dy_tiles(plan, geo, grad_y):
    """``dy`` zero-extended to whole tiles, as an ``(N, C_out, T1, Bo1, ...)`` view."""
    dy = np.zeros(plan.output_shape[:2] + tuple(t * b for t, b in zip(geo.T, geo.Bo)), plan.dtype)
    dy[(..., *(slice(0, o) for o in plan.output_size))] = grad_y
    return _tiled_view(dy, geo.T, geo.Bo)


def _from_interleaved(d):
    """Permutation ``(N, C, T1, B1, ...)`` -> ``(*T, N, C, *B)``."""
    return (*(2 + 2 * a for a in range(d)), 0, 1, *(3 + 2 * a for a in range(d)))


def _x_spectrum(plan, geo, tiles, r0, r1):
    """The spectra of one chunk of input tiles (marks its own ``pack`` and ``transform_input`` phases)."""
    rows, d = r1 - r0, plan.ndim
    tx = transform(plan, "x", geo.L, _chunk_batch(geo, rows, plan, plan.in_channels))
    with phase("pack"):
        buf = tx.real_buffer()
        region = buf.reshape(rows, *geo.T[1:], *plan.x_shape[:2], *geo.L)
        place(region, tiles[:, :, r0:r1].transpose(_tiles_to_buffer(d)), (..., *(slice(0, b) for b in geo.Bi)))
    with phase("transform_input"):
        return tx.forward(buf)


def _dy_spectrum(plan, geo, dy_view, r0, r1):
    """The spectra of one chunk of ``dy`` tiles (marks its own ``pack`` and ``transform_input`` phases)."""
    rows, d = r1 - r0, plan.ndim
    ty = transform(plan, "y", geo.L, _chunk_batch(geo, rows, plan, plan.out_channels))
    with phase("pack"):
        buf = ty.real_buffer()
        region = buf.reshape(rows, *geo.T[1:], *plan.output_shape[:2], *geo.L)
        upsampled = (..., *(slice(0, bs, s) for bs, s in zip(geo.Bs, plan.stride)))
        place(region, dy_view[:, :, r0:r1].transpose(_from_interleaved(d)), upsampled)
    with phase("transform_input"):
        return ty.forward(buf)


def _dx_setup(plan, geo, w):
    """The weights' spectrum for ``dx`` and a zeroed ``dx`` that :func:`_dx_chunk` adds every chunk into."""
    with phase("transform_weight"):
        WD = weight_spectrum(plan, w, "backward", L=geo.L,
                             block=block_product(plan, _chunk_batch(geo, geo.rows, plan, 0)[0], *plan.w_shape[:2]))
    with phase("unpack"):
        dx = np.zeros(plan.x_shape, plan.dtype)
    return WD, dx


def _dx_chunk(plan, geo, DY, WD, dx, r0, r1):
    """Add the ``dx`` of tile rows ``r0:r1`` (their ``dy`` spectrum ``DY``) into ``dx``, in place."""
    from ..kernels import fft as kernels  # numba: imported on first use, never at import convlab

    rows = r1 - r0
    tx = transform(plan, "x", geo.L, _chunk_batch(geo, rows, plan, plan.in_channels))
    with phase("product"):
        DX = channel_product(plan, DY, WD, tx.complex_buffer())
    with phase("transform_output"):
        z = tx.inverse(DX)
    with phase("unpack"):
        # each tile's dx lives in its first Bi samples (zero beyond, no wrap as L >= Bi): added in place
        lo = [p[0] for p in plan.padding]
        grid = pad_3d((rows, *geo.T[1:]), 1)
        origin = pad_3d([r0 * geo.Bs[0] - lo[0], *(-v for v in lo[1:])], 0)
        kernels.overlap_add(z.reshape(*grid, *plan.x_shape[:2], *pad_3d(geo.L, 1)), as_3d(dx), origin,
                            pad_3d(geo.Bs, 0), pad_3d(geo.Bi, 1))


def backward_input_tiled(plan, grad_y, w):
    geo = tile_geometry(plan)
    with phase("pad"):
        dy_view = _dy_tiles(plan, geo, grad_y)
    WD, dx = _dx_setup(plan, geo, w)
    for r0, r1 in geo.chunks():
        _dx_chunk(plan, geo, _dy_spectrum(plan, geo, dy_view, r0, r1), WD, dx, r0, r1)
    return dx


def backward_weight_tiled(plan, grad_y, x):
    geo = tile_geometry(plan)
    with phase("pad"):
        tiles = _input_tiles(geo, _padded_input(plan, geo, x))
        dy_view = _dy_tiles(plan, geo, grad_y)
    DW, tw = weight_gradient_buffer(plan, geo.L)
    for i, (r0, r1) in enumerate(geo.chunks()):
        DY = _dy_spectrum(plan, geo, dy_view, r0, r1)
        X = _x_spectrum(plan, geo, tiles, r0, r1)
        with phase("product"):
            # sum over tiles and batch of conj(DY[t, n, o]) X[t, n, c], per frequency and group
            weight_product(plan, DY, X, DW, accumulate=i > 0)
    with phase("transform_output"):
        return weight_gradient(plan, DW, geo.L, tap_positions(plan, geo.L), tw, geo.taps)


def backward_both_tiled(plan, grad_y, x, w):
    """``(dx, dw)``, each chunk of ``dy`` tiles transformed once for both products."""
    geo = tile_geometry(plan)
    with phase("pad"):
        dy_view = _dy_tiles(plan, geo, grad_y)
        tiles = _input_tiles(geo, _padded_input(plan, geo, x))
    WD, dx = _dx_setup(plan, geo, w)
    DW, tw = weight_gradient_buffer(plan, geo.L)
    for i, (r0, r1) in enumerate(geo.chunks()):
        DY = _dy_spectrum(plan, geo, dy_view, r0, r1)  # ty's output buffer, not touched again in this chunk
        _dx_chunk(plan, geo, DY, WD, dx, r0, r1)
        X = _x_spectrum(plan, geo, tiles, r0, r1)
        with phase("product"):
            weight_product(plan, DY, X, DW, accumulate=i > 0)
    with phase("transform_output"):
        dw = weight_gradient(plan, DW, geo.L, tap_positions(plan, geo.L), tw, geo.taps)
    return dx, dw


@register
class FFTTiled(Method):
    """Overlap-save tiled FFT convolution with bounded workspace; see the module docstring."""

    name = "fft_tiled"
    domain = "frequency"

    def cost(self, spec, terms, pass_="forward"):
        return predicted_cost(spec, terms, pass_)

    def needs_compiled_kernels(self, spec, pass_="forward"):
        if pass_ == "backward_input":
            return True  # the tiles' dx overlap-add is a compiled pass
        geo = tile_geometry(spec)
        return uses_compiled_product(spec, _chunk_batch(geo, geo.rows, spec, 0)[0], pass_)

    def error_bound(self, plan, pass_="forward"):
        """The FFT method's bound (:meth:`FFT.error_bound <convlab.algorithms.fft.FFT.error_bound>`) at the
        tile's FFT size; ``dw`` also sums over the tiles."""
        geo = tile_geometry(plan)  # cached on the spec: the workspace estimate has built it already
        points, tiles = math.prod(geo.L), math.prod(geo.T)
        summed = {"backward_weight": plan.batch * tiles, "backward_input": plan.out_channels // plan.groups}
        terms = summed.get(pass_, plan.in_channels // plan.groups)
        return float(np.finfo(plan.dtype).eps * (math.log2(points) + math.log2(terms) + 1.0))

    def workspace_bytes(self, plan):
        geo = tile_geometry(plan)
        item = plan.dtype.itemsize
        bins = math.prod(geo.L[:-1]) * (geo.L[-1] // 2 + 1)
        padded_x = plan.batch * plan.in_channels * math.prod(geo.padded) * item
        whole_tiles = plan.batch * plan.out_channels * math.prod(t * b for t, b in zip(geo.T, geo.Bo)) * item
        weights = 3 * bins * plan.out_channels * plan.w_shape[1] * 2 * item
        block = block_workspace_bytes(plan, bins, _chunk_batch(geo, geo.rows, plan, 0)[0])
        return padded_x + whole_tiles + geo.rows * geo.row_bytes + weights + block

    def forward(self, plan, x, w):
        return forward_exact_nonfinite(plan, x, w, forward_tiled)

    def backward_input(self, plan, grad_y, w):
        return backward_input_exact_nonfinite(plan, grad_y, w, backward_input_tiled)

    def backward_weight(self, plan, grad_y, x):
        return backward_weight_exact_nonfinite(plan, grad_y, x, backward_weight_tiled)

    def backward_both(self, plan, grad_y, x, w):
        """``dx`` and ``dw`` from one transform of each ``grad_y`` tile (see :meth:`Method.backward_both`)."""
        return backward_both_exact_nonfinite(self, plan, grad_y, x, w, backward_both_tiled)


def predicted_cost(spec, terms, pass_="forward"):
    """The spectral work on the tiles the method itself chooses, plus its padded input, the tile
    gather, the output scatter and the final crop copy (the same data movement in every pass);
    the tiles are transformed a chunk of tile rows at a time, each chunk with its own FFT plan
    executions, matmul call and tile copies."""
    geo = tile_geometry(spec)  # cached on the spec (the workspace estimate builds it too)
    shape, outputs, inputs, tiles = geo.L, geo.Bo, geo.Bi, geo.T
    chunks = len(geo.chunks())
    count = math.prod(tiles)
    padded = spec.batch * spec.in_channels * math.prod(geo.padded)
    whole = spec.batch * spec.out_channels * count * math.prod(outputs)
    phases = dict(spectral_cost(spec, terms, tuple(shape), count, pass_=pass_, chunks=chunks,
                                rows=_chunk_batch(geo, geo.rows, spec, 0)[0]))
    phases["pad"] = terms.passes(padded, 1) + terms.copy(spec.batch * spec.in_channels * math.prod(spec.input_size))
    phases["pack"] = (terms.gather(spec.batch * spec.in_channels * count * math.prod(inputs))
                      + (chunks - 1) * terms.call)
    phases["unpack"] = (phases.get("unpack", 0.0) + terms.gather(whole) + terms.copy(whole)
                        + (chunks - 1) * 2 * terms.call)
    return phases
