"""Winograd minimal filtering (Lavin and Gray 2015), separable over 1, 2 or 3 spatial dims.

``F(m, r)`` computes ``m`` outputs of an ``r``-tap correlation from an input
tile of ``alpha = m + r - 1`` values with ``alpha`` multiplications instead
of ``m * r``::

    y = Aᵀ [(G g) ⊙ (Bᵀ d)]

The matrices come from Toom-Cook: with ``V_n`` the ``alpha × n`` matrix
evaluating a degree ``n - 1`` polynomial at the points ``0, ±1, ±2, ±1/2, …``
and infinity, the linear convolution of ``g`` and ``u`` is
``V_alpha⁻¹ [(V_r g) ⊙ (V_m u)]``; correlation is its transpose in ``u``,
so ``Aᵀ = V_mᵀ``, ``G = D⁻¹ V_r`` and ``Bᵀ = D V_alpha⁻ᵀ`` (``D`` moves the
Lagrange denominators into ``G``, which makes ``Bᵀ`` integer as in the
paper). The matrices are built in exact rational arithmetic. In n-D the
transforms apply per axis (``F(m×m, r×r)`` is ``F(m, r)`` along each axis),
so ``F(2×2, 3×3)`` uses 16 and ``F(4×4, 3×3)`` 36 multiplications per tile
instead of 36 and 144: 2.25× and 4× fewer.

Per tile position ``ξ`` (16 or 36 of them in 2-D) the channel contraction
is one batched GEMM ``U[ξ] (C_out/g × C_in/g) @ V[ξ] (C_in/g × tiles)``,
as in NNPACK and cuDNN.

Backward, without any other method:

* ``dx`` is the full correlation of ``dy`` with the spatially flipped,
  channel-transposed kernel: the same Winograd forward on ``dy`` padded by
  ``r - 1``.
* ``dw[j] = Σ_i dy[i] x[i + j]`` is an ``r``-output correlation with
  ``dy`` as the "filter": per tile it is ``F(r, m)``, which shares
  ``alpha`` and ``Bᵀ`` with ``F(m, r)`` and the tiles of ``x``. The
  contraction over batch and tiles is again one GEMM per ``ξ``.

Only stride 1 and dilation 1 are supported; every kernel axis must have at
most ``MAX_ALPHA - 1`` taps (larger ``alpha`` makes the transforms
ill-conditioned: the error grows roughly with the largest transform entry).
"""

import functools
import math
from fractions import Fraction

import numpy as np

from ..phases import phase
from .base import Method, WeightDerived, register
from .nonfinite import backward_input_exact_nonfinite, backward_weight_exact_nonfinite, forward_exact_nonfinite

__all__ = ["Winograd", "winograd_matrices", "tile_size", "MAX_ALPHA"]

MAX_ALPHA = 6
"""Largest tile ``alpha = m + r - 1``: 6 is F(4, 3), the largest cuDNN and NNPACK use in float32."""

MAX_ALPHA_3D = 4
"""Largest tile in 3-D, where the transforms' error compounds over three axes: F(4³, 3³) measured a
float32 error of 3.3e-5 on a 4-channel 32³ volume (the tolerance is 5e-5), F(2³, 3³) 1e-6."""

_POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2),
           Fraction(-1, 2), Fraction(3), Fraction(-3))


def _vandermonde(points, n):
    """``len(points) + 1`` rows evaluating a degree ``n - 1`` polynomial at ``points`` and infinity."""
    rows = [[p ** i for i in range(n)] for p in points]
    rows.append([Fraction(int(i == n - 1)) for i in range(n)])
    return rows


def _inverse(matrix):
    """Exact inverse of a square matrix of Fractions (Gauss-Jordan)."""
    n = len(matrix)
    aug = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        scale = aug[col][col]
        aug[col] = [v / scale for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                factor = aug[r][col]
                aug[r] = [a - factor * b for a, b in zip(aug[r], aug[col])]
    return [row[n:] for row in aug]


@functools.cache
def winograd_matrices(m, r):
    """The transforms ``(Aᵀ, G, Bᵀ)`` of ``F(m, r)`` as float64 arrays.

    Parameters
    ----------
    m : int
        Outputs per tile (>= 1).
    r : int
        Filter taps (>= 1); ``m + r - 1 <= len(_POINTS) + 1``.

    Returns
    -------
    AT : ndarray, shape (m, alpha)
    G : ndarray, shape (alpha, r)
    BT : ndarray, shape (alpha, alpha)
        With ``alpha = m + r - 1``: ``AT @ ((G @ g) * (BT @ d))`` equals
        ``np.correlate(d, g, "valid")`` for ``d`` of length ``alpha``.

    Examples
    --------
    >>> AT, G, BT = winograd_matrices(2, 3)
    >>> d, g = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, -1.0])
    >>> AT @ ((G @ g) * (BT @ d)), np.correlate(d, g, "valid")
    (array([-2., -2.]), array([-2., -2.]))
    >>> BT.astype(int)  # integer, as in Lavin and Gray (up to row signs)
    array([[-1,  0,  1,  0],
           [ 0,  1,  1,  0],
           [ 0, -1,  1,  0],
           [ 0, -1,  0,  1]])
    """
    alpha = m + r - 1
    points = _POINTS[:alpha - 1]
    # Lagrange denominators: moving them from Bᵀ into G keeps Bᵀ integer.
    denominators = [Fraction(1)] * alpha
    for j, p in enumerate(points):
        for q in points[:j] + points[j + 1:]:
            denominators[j] *= p - q
    v_m, v_r = _vandermonde(points, m), _vandermonde(points, r)
    v_alpha_inv = _inverse(_vandermonde(points, alpha))
    AT = [[v_m[j][i] for j in range(alpha)] for i in range(m)]
    G = [[v / denominators[j] for v in v_r[j]] for j in range(alpha)]
    BT = [[v_alpha_inv[k][j] * denominators[j] for k in range(alpha)] for j in range(alpha)]
    return tuple(np.array(a, dtype=np.float64) for a in (AT, G, BT))


def tile_size(output, r, ndim=2):
    """Outputs per tile along one axis: the ``m`` that minimises transformed work.

    The work along an axis is ``ceil(output / m) * (m + r - 1)`` (tiles times
    transformed points); ties go to the larger tile. Tiles stay within
    ``MAX_ALPHA`` points, or ``MAX_ALPHA_3D`` in 3-D (at least one output per tile).

    Examples
    --------
    >>> tile_size(56, 3), tile_size(2, 3), tile_size(7, 3)
    (4, 2, 4)
    """
    best = None
    limit = MAX_ALPHA if ndim < 3 else max(MAX_ALPHA_3D, r)
    for m in range(1, limit - r + 2):
        work = -(-output // m) * (m + r - 1)
        if best is None or work <= best[0]:
            best = (work, m)
    return best[1]


# ----------------------------------------------------------------------- building blocks
@functools.lru_cache(maxsize=64)
def _kron_transforms(ms, rs, dtype):
    """``(Aᵀ, G, Bᵀ)`` of ``F(m_1, r_1) ⊗ … ⊗ F(m_nd, r_nd)`` as Kronecker products in ``dtype``.

    Used on the weight side only (``G g Gᵀ`` and the ``Aᵀ`` of the weight
    gradient), where the operands are a few ``α × C_out·C_in/G`` matrices:
    one GEMM each. The tiles go through the separable per-axis kernels of
    :mod:`convlab.kernels.winograd`.
    """
    mats = [winograd_matrices(m, r) for m, r in zip(ms, rs)]
    kron = [functools.reduce(np.kron, [mat[i] for mat in mats]).astype(dtype) for i in range(3)]
    for k in kron:
        k.setflags(write=False)
    return tuple(kron)


def _tile_counts(sizes, ms, alphas):
    """Tiles per axis so that tiles of ``alpha`` at stride ``m`` cover every valid output."""
    return tuple(max(1, -(-(n - a) // m) + 1) for n, m, a in zip(sizes, ms, alphas))


class Tiling:
    """Everything about a valid correlation of ``size`` by ``r`` taps that does not depend on data.

    Built once per plan and pass (``plan.cached``): the tile sizes, the tile
    counts, the per-axis transforms ``(Aᵀ, G, Bᵀ)`` and their Kronecker
    products in the plan's dtype. ``transposed=True`` is ``F(r, m)``, the
    weight gradient's tiling (``r`` outputs from ``m``-tap "filters").
    """

    def __init__(self, size, r, dtype, transposed=False):
        out = tuple(p - k + 1 for p, k in zip(size, r))
        self.r, self.out = tuple(r), out
        self.ms = tuple(tile_size(o, k, len(r)) for o, k in zip(out, r))
        self.alphas = tuple(m + k - 1 for m, k in zip(self.ms, r))
        self.counts = _tile_counts(size, self.ms, self.alphas)
        pairs = [(k, m) if transposed else (m, k) for m, k in zip(self.ms, r)]
        self.per_axis = [tuple(t.astype(dtype) for t in winograd_matrices(*pair)) for pair in pairs]
        self.AT, self.G, self.BT = _kron_transforms(*zip(*pairs), dtype)

    def matrices(self, which):
        """The per-axis matrices ``which`` (0: ``Aᵀ``, 1: ``G``, 2: ``Bᵀ``)."""
        return [axis[which] for axis in self.per_axis]


def _transformed_weights(w, G, groups):
    """``U = G w Gᵀ`` per tap axis: ``(C_out, C_in/G, *r)`` -> ``(alpha, G, C_out/G, C_in/G)``."""
    c_out, cg = w.shape[:2]
    u = G @ w.reshape(c_out * cg, -1).T
    return np.ascontiguousarray(u.reshape(-1, groups, c_out // groups, cg))


CHUNK_BYTES = 2 ** 22
"""Transformed tiles (and their products) a chunk of samples holds at most, unless one sample needs more:
a pass runs transform, product and inverse transform per chunk so that each stage reads what the previous
one wrote from cache, not from memory. The GEMMs of one 56² sample (64 × 64 by 196 tiles, 3.6 MB with the
products) ran at 111 GFLOP/s on one core of the machine this was tuned on, those of 8 samples at once
(1568 tiles, 29 MB) at 72. Below 4 MB a pass stays one chunk: each chunk costs two more kernel launches."""


def _chunk(batch, bytes_per_sample):
    """Samples per chunk: as many as fit in :data:`CHUNK_BYTES`, at least one."""
    return max(1, min(batch, CHUNK_BYTES // max(1, bytes_per_sample)))


def _correlate(source, offset, u, tiling, groups):
    """Valid stride-1 correlation by Winograd of ``source`` placed at ``offset`` in zeros of ``tiling``'s size.

    Inputs are finite here: :mod:`.nonfinite` handles the others for every pass. The batch runs in
    chunks of samples (:func:`_chunk`), each through all three stages.

    Parameters
    ----------
    source : ndarray, shape (N, C_in, *n)
    offset : tuple of int
        Where ``source`` starts in the zero-extended input (the front padding; negative crops).
    u : ndarray, shape (alpha, G, C_out/G, C_in/G)
        Transformed weights (:func:`_transformed_weights`).

    Returns
    -------
    ndarray, shape (N, C_out, *tiling.out)
    """
    from ..kernels import winograd as kernels  # numba: imported on first use, never at import convlab

    n, c_in = source.shape[:2]
    alpha, _, c_out_g, cg = u.shape
    c_out = groups * c_out_g
    # a band (tile row) holds the tiles a tile's last columns reach into as padding: every pass of the
    # kernels then runs over whole rows (their products are computed and dropped)
    row = tiling.counts[-1] + kernels.reach(tiling.per_axis[-1][2], tiling.ms[-1])
    tiles = kernels.columns(tiling.counts, row)
    depthwise = cg == 1 and c_out_g == 1
    step = _chunk(n, alpha * tiles * (c_in + (0 if depthwise else c_out)) * source.dtype.itemsize)
    y = np.empty((n, c_out, *tiling.out), source.dtype)
    v_buffer = np.empty(alpha * c_in * step * tiles, source.dtype)
    m_buffer = v_buffer if depthwise else np.empty(alpha * c_out * step * tiles, source.dtype)
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        cols = (n1 - n0) * tiles
        v = v_buffer[:alpha * c_in * cols].reshape(alpha, c_in, cols)
        with phase("transform_input"):  # padding, tile gather and Bᵀ d B in one pass
            kernels.tiles(source[n0:n1], tiling.matrices(2), tiling.ms, offset, tiling.counts, out=v, row=row)
        v = v.reshape(alpha, groups, cg, cols)
        m_prod = m_buffer[:alpha * c_out * cols].reshape(alpha, groups, c_out_g, cols)
        with phase("product"):
            if depthwise:  # 1 x 1 blocks, a broadcast product
                np.multiply(u, v, out=m_prod)
            else:
                np.matmul(u, v, out=m_prod)
        with phase("transform_output"):  # Aᵀ m A and the scatter into y, cropped, in one pass
            kernels.untiles(m_prod.reshape(alpha, c_out, cols), tiling.matrices(0), tiling.counts, n1 - n0,
                            tiling.out, out=y[n0:n1], row=row)
    return y


def _weight_gradient(source, offset, dy, tiling, groups):
    """``dw[o, c, j] = Σ_{n,i} dy[n, o, i] x[n, g(o)·C_in/G + c, i + j]`` by ``F(r, m)`` tiles.

    The output tile of ``F(m, r)`` becomes the filter: ``dy`` is cut into
    non-overlapping tiles of ``m``, ``source`` (``x``, placed at ``offset``
    as in :func:`_correlate`) into the usual overlapping tiles of ``alpha``;
    per transformed position the sum over batch and tiles is one GEMM
    ``(C_out/G × N·T) @ (N·T × C_in/G)`` per chunk of samples (:func:`_chunk`), summed over chunks.
    """
    from ..kernels import winograd as kernels  # numba: imported on first use, never at import convlab

    n, c_in, c_out = source.shape[0], source.shape[1], dy.shape[1]
    cg = c_in // groups
    ms, counts, r = tiling.ms, tiling.counts, tiling.r
    alpha = len(tiling.BT)
    # x's and dy's tiles share a layout: the padding tiles of a band, which the contraction sums over,
    # are zero on dy's side (they lie past dy's end), so they add nothing
    row = counts[-1] + max(kernels.reach(tiling.per_axis[-1][which], ms[-1]) for which in (1, 2))
    tiles = kernels.columns(counts, row)
    depthwise = cg == 1 and c_out == groups
    step = _chunk(n, alpha * tiles * (c_in + c_out) * source.dtype.itemsize)
    v_buffer = np.empty(alpha * c_in * step * tiles, source.dtype)
    u_buffer = np.empty(alpha * c_out * step * tiles, source.dtype)
    m_prod = part = None
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        cols = (n1 - n0) * tiles
        v = v_buffer[:alpha * c_in * cols].reshape(alpha, c_in, cols)
        u = u_buffer[:alpha * c_out * cols].reshape(alpha, c_out, cols)
        with phase("transform_input"):
            kernels.tiles(source[n0:n1], tiling.matrices(2), ms, offset, counts, out=v, row=row)
            # dy in non-overlapping tiles of m, zero beyond its end, times G per axis
            kernels.tiles(dy[n0:n1], tiling.matrices(1), ms, (0,) * len(ms), counts, out=u, row=row)
        v, u = v.reshape(alpha, groups, cg, cols), u.reshape(alpha, groups, -1, cols)
        with phase("product"):
            if depthwise:  # a dot product per (position, group)
                part = np.einsum("agi,agi->ag", u[:, :, 0], v[:, :, 0])
            else:                                             # (alpha, G, C_out/G, C_in/G)
                part = np.matmul(u, v.swapaxes(-1, -2), out=part if m_prod is not None else None)
            if m_prod is None:
                m_prod, part = part, None
            else:
                m_prod += part
    with phase("transform_output"):
        dw = _left(tiling.AT, m_prod.reshape(alpha, c_out * cg))  # (prod(r), C_out * C_in/G)
    with phase("unpack"):
        return np.ascontiguousarray(dw.T.reshape(c_out, cg, *r))


def _left(mat, a):
    """``mat @ a`` over the first axis of ``a``, keeping its trailing shape."""
    return (mat @ a.reshape(a.shape[0], -1)).reshape(mat.shape[0], *a.shape[1:])


def _flipped_transposed(w, groups):
    """``(C_out, C_in/G, *r)`` -> ``(C_in, C_out/G, *r)`` flipped in space: the kernel of ``dx``."""
    c_out, cg = w.shape[:2]
    wg = w.reshape(groups, c_out // groups, cg, *w.shape[2:]).swapaxes(1, 2)
    flipped = wg[(Ellipsis, *(slice(None, None, -1),) * (w.ndim - 2))]
    return flipped.reshape(groups * cg, c_out // groups, *w.shape[2:])


@register
class Winograd(Method):
    """Winograd ``F(m, r)`` per axis; ``m`` chosen by :func:`tile_size` (4 for 3 taps on large outputs)."""

    name = "winograd"
    domain = "spatial"

    def cost(self, spec, terms, pass_="forward"):
        return predicted_cost(spec, terms, pass_)

    def needs_compiled_kernels(self, spec, pass_="forward"):
        return True  # every pass tiles and untiles through compiled kernels

    def error_bound(self, plan, pass_="forward"):
        """Bound on the normwise relative error of one pass, for inputs of comparable magnitude.

        ``u (2 √S + 0.16 g S^¼)``: ``u`` the unit roundoff, ``S`` the terms each
        transformed product sums (``C_in/G · Π k`` forward, ``C_out/G · Π k`` for ``dx``,
        batch times tiles for ``dw``), and ``g = Π_axes max_i (|Aᵀ| (|G| 1 ⊙ |Bᵀ| 1))_i / r``
        how much the tile transforms grow rounding errors against a plain sum of
        ``r`` products (16 per axis for F(4, 3), 2.7 for F(2, 3)); ``dw`` counts ``g``
        twice (its normwise error is taken over far more entries). The first term is
        that of any sum of products. The constants cover, by a factor of 1.7 or more, the
        float32 errors measured on random data over 1-, 2- and 3-D problems with
        4 to 512 channels, every tile used and all three passes (the largest,
        1.5e-5, on ``dx`` of F(4×4, 3×3) over 512 channels): a float32 F(4×4, 3×3) is
        refused only beyond about 9000 input channels.
        """
        if pass_ == "backward_weight":  # dy tiles are the filter: F(r, m), summed over batch and tiles
            ms = [tile_size(o, k, plan.ndim) for o, k in zip(plan.output_size, plan.kernel_size)]
            pairs = list(zip(plan.kernel_size, ms))
            terms = plan.batch * math.prod(-(-o // m) for o, m in zip(plan.output_size, ms))
        else:
            out = plan.padded_size if pass_ == "backward_input" else plan.output_size
            channels = (plan.out_channels if pass_ == "backward_input" else plan.in_channels) // plan.groups
            pairs = [(tile_size(o, k, plan.ndim), k) for o, k in zip(out, plan.kernel_size)]
            terms = channels * math.prod(plan.kernel_size)
        growth = 2.0 if pass_ == "backward_weight" else 1.0
        for m, r in pairs:
            AT, G, BT = winograd_matrices(m, r)
            growth *= float(np.max(np.abs(AT) @ (np.abs(G).sum(1) * np.abs(BT).sum(1)))) / r
        return float(np.finfo(plan.dtype).eps / 2 * (2 * math.sqrt(terms) + 0.16 * growth * terms ** 0.25))

    def unsupported_reason(self, plan):
        if any(s != 1 for s in plan.stride):
            return f"stride={plan.stride}: Winograd tiles need stride 1 in every dim"
        if any(d != 1 for d in plan.dilation):
            return f"dilation={plan.dilation}: Winograd tiles need dilation 1 in every dim"
        if max(plan.kernel_size) > MAX_ALPHA - 1:
            return (f"kernel size {plan.kernel_size}: Winograd supports at most {MAX_ALPHA - 1} taps per "
                    f"dim (larger tiles are ill-conditioned)")
        return None

    def workspace_bytes(self, plan):
        def passes(out, batch_channels_in, channels_out):
            ms = [tile_size(o, k, plan.ndim) for o, k in zip(out, plan.kernel_size)]
            counts = [-(-o // m) for o, m in zip(out, ms)]
            # each band (tile row) of the layout carries the tiles its last tile reads into (kernels.winograd.reach)
            counts[-1] += (ms[-1] + plan.kernel_size[-1] - 2) // ms[-1]
            tiles = math.prod(counts)
            alpha = math.prod([m + k - 1 for m, k in zip(ms, plan.kernel_size)])
            # transformed tiles in and their products (the depthwise product reuses the input's)
            return tiles * alpha * (batch_channels_in + channels_out)

        nb = plan.batch
        forward = passes(plan.output_size, nb * plan.in_channels, nb * plan.out_channels)
        backward = passes(plan.input_size, nb * plan.out_channels, nb * plan.in_channels)
        return max(forward, backward) * plan.dtype.itemsize

    def forward(self, plan, x, w):
        return forward_exact_nonfinite(plan, x, w, self._forward_finite)

    def backward_input(self, plan, grad_y, w):
        return backward_input_exact_nonfinite(plan, grad_y, w, self._backward_input_finite)

    def backward_weight(self, plan, grad_y, x):
        return backward_weight_exact_nonfinite(plan, grad_y, x, self._backward_weight_finite)

    def _forward_finite(self, plan, x, w):
        tiling = plan.cached(("winograd", "forward"),
                             lambda: Tiling(plan.padded_size, plan.kernel_size, plan.dtype))
        with phase("transform_weight"):
            u = _weights(plan).get(w, "forward", lambda: _transformed_weights(w, tiling.G, plan.groups))
        return _correlate(x, tuple(lo for lo, _ in plan.padding), u, tiling, plan.groups)

    def _backward_input_finite(self, plan, grad_y, w):
        # dx is the valid correlation of dy, zero-extended by r - 1 - lo in front, with the
        # flipped kernel: only the input_size outputs that survive the crop are computed.
        r = plan.kernel_size
        size = tuple(n + k - 1 for n, k in zip(plan.input_size, r))
        tiling = plan.cached(("winograd", "backward_input"), lambda: Tiling(size, r, plan.dtype))

        def transform():
            return _transformed_weights(_flipped_transposed(w, plan.groups), tiling.G, plan.groups)

        with phase("transform_weight"):
            u = _weights(plan).get(w, "backward_input", transform)
        offset = tuple(k - 1 - lo for k, (lo, _) in zip(r, plan.padding))
        return _correlate(grad_y, offset, u, tiling, plan.groups)

    def _backward_weight_finite(self, plan, grad_y, x):
        tiling = plan.cached(("winograd", "backward_weight"),
                             lambda: Tiling(plan.padded_size, plan.kernel_size, plan.dtype, transposed=True))
        offset = tuple(lo for lo, _ in plan.padding)
        return _weight_gradient(x, offset, grad_y, tiling, plan.groups).reshape(plan.w_shape)


def _weights(plan):
    return plan.cached(("winograd", "weights"), WeightDerived)


def predicted_cost(spec, terms, pass_="forward"):
    """``{phase: seconds}`` of one pass with the fused tile kernels (:mod:`convlab.kernels.winograd`).

    ``transform_input`` gathers the ``alpha`` points of every tile, padding included, and applies
    ``Bᵀ`` (or ``G`` to the output gradient) one axis at a time, a pass over the tiles per axis;
    ``product`` is the ``alpha`` channel GEMMs (one matmul call); ``transform_output`` reads the
    products back, applies ``Aᵀ`` per axis and writes the result. ``dx`` is the forward on the
    output gradient with the channels exchanged; ``dw`` transforms both arguments, contracts over
    the tiles and maps the ``alpha`` points back to the taps with small GEMMs. Every pass makes two
    kernel launches (the tiles and the untiles kernels; for ``dw`` the tiles kernel twice).
    """
    cg, kg = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    if pass_ == "backward_input":
        size, c_in, c_out, cin_g, cout_g = spec.input_size, spec.out_channels, spec.in_channels, kg, cg
    else:
        size, c_in, c_out, cin_g, cout_g = spec.output_size, spec.in_channels, spec.out_channels, cg, kg
    ms = [tile_size(o, k, spec.ndim) for o, k in zip(size, spec.kernel_size)]
    alpha = math.prod(m + k - 1 for m, k in zip(ms, spec.kernel_size))
    tiles = spec.batch * math.prod(-(-o // m) for o, m in zip(size, ms))

    def transformed(channels):  # one kernel launch: gather + one pass per axis over the transformed tiles
        return (terms.launches(1, spec.flops) + terms.gather(alpha * channels * tiles)
                + terms.passes(alpha * channels * tiles, spec.ndim))

    if pass_ == "backward_weight":
        taps = math.prod(spec.kernel_size)
        if cin_g == 1 and cout_g == 1:
            contraction = terms.passes(alpha * spec.out_channels * tiles, 3)
        else:
            contraction = terms.gemm(cout_g, tiles, cin_g, batch=alpha * spec.groups)
        return {"transform_input": transformed(c_in) + transformed(c_out), "product": contraction,
                "transform_output": terms.gemm(taps, alpha, spec.out_channels * cg)}
    if cin_g == 1 and cout_g == 1:
        contraction = terms.passes(alpha * c_out * tiles, 3)
    else:
        contraction = terms.gemm(cout_g, cin_g, tiles, batch=alpha * spec.groups)
    out = spec.batch * c_out * math.prod(size)
    return {"transform_input": transformed(c_in), "transform_weight": terms.passes(math.prod(spec.w_shape), 2),
            "product": contraction,
            "transform_output": (terms.launches(1, spec.flops) + terms.passes(alpha * c_out * tiles, spec.ndim)
                                 + terms.copy(out))}
