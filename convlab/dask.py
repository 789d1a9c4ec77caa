"""Convolutions of Dask arrays: images and volumes larger than memory.

Needs the ``dask`` extra (``pip install -e ".[dask]"``: dask, distributed,
zarr); ``import convlab`` never imports dask.

:func:`conv` takes a dask array ``x`` of shape ``(N, C_in, *spatial)``
chunked along any axes and returns a lazy dask array equal to
:func:`convlab.conv` of the computed array. How the graph is built:

1. The boundary is applied to the whole array once (slices of its far edges concatenated on), so
   ``"reflect"``, ``"replicate"`` and ``"circular"`` read across chunk
   boundaries exactly as in memory.
2. Each spatial axis is rechunked so that the output chunks follow the
   input's chunks and every chunk's window starts on a multiple of the
   stride; chunks smaller than the halo are merged with their neighbours.
3. ``dask.array.overlap.overlap`` (boundary ``"none"``) shares the halo of
   ``dilation * (kernel - 1) + 1 - stride`` elements between neighbours, split
   between the left and the right side so that, for ``padding="same"`` at
   stride 1, the output has exactly the input's chunks.
4. Each block runs :func:`convlab.conv` with ``padding=0`` and the chosen
   ``method``: with ``"auto"`` convlab's chooser runs on the block's own
   shape, so large kernels run the FFT per block. Plans are built (and
   cached) in the process running the block; none is ever pickled.
5. Input channels chunked into several pieces are reduced by summing the
   partial outputs of the pieces with a tree reduction; with ``groups`` a
   piece never straddles a group partially.

:func:`conv_backward` returns ``dx`` lazily (a transposed convolution built
from the same pieces, with the padding's exact adjoint at the array's
edges) and ``dw``, ``db`` computed with tree reductions over the blocks.
:func:`convolve`, :func:`correlate` and :func:`fftconvolve` are
``scipy.signal``'s functions for one N-D dask array.

Examples
--------
>>> import numpy as np, dask.array as da, convlab as cl
>>> import convlab.dask as cld
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((1, 2, 40, 30)).astype(np.float32)
>>> w = rng.standard_normal((3, 2, 5, 5)).astype(np.float32)
>>> y = cld.conv(da.from_array(x, chunks=(1, 1, 16, 16)), w, padding="same", padding_mode="reflect")
>>> y.chunks[2:]
((16, 16, 8), (16, 14))
>>> bool(np.allclose(y.compute(), cl.conv(x, w, padding="same", padding_mode="reflect"), atol=1e-4))
True
"""

import collections
import dataclasses
import itertools
import math
import threading

import numpy as np

import convlab as cl
from convlab.errors import ConvError, ConvTypeError

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('convlab.dask needs dask: pip install -e ".[dask]" from the convlab checkout') from exc

__all__ = ["conv", "conv_backward", "convolve", "correlate", "fftconvolve", "suggest_chunks"]

# Partial sums (channel pieces, dw/db blocks) are combined this many at a time.
_SPLIT_EVERY = 8

# A task's working set as a multiple of its input chunk with halo. Measured: one FFT block (165³ float32,
# 31³ kernel) peaks at 10.7 times its input (real and complex buffers of x, y and w, the cached kernel
# spectrum, the output); dask holds the block, its overlap pieces and the output besides.
_WORKING_SET_FACTOR = 16


# --------------------------------------------------------------- inputs
def _as_dask(name, value):
    """``value`` as a dask array of a real numeric dtype (numpy inputs are wrapped, never copied)."""
    if value is None:
        raise ConvTypeError(f"{name} must be an array, but got None")
    array = value if isinstance(value, da.Array) else da.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ConvTypeError(f"{name} must be a real numeric array (bool, int or float), but got dtype {array.dtype}")
    return array


def _as_numpy(name, value):
    """A small operand (kernel, bias) as a numpy array; a dask array is computed."""
    if value is None:
        raise ConvTypeError(f"{name} must be an array, but got None")
    if isinstance(value, da.Array):
        value = value.compute()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ConvTypeError(f"{name} must be a real numeric array (bool, int or float), but got dtype {array.dtype}")
    return array


def _validate(x_shape, w_shape, dtypes, *, stride, padding, dilation, groups, padding_mode, method):
    """Validate once through :func:`convlab.plan`; return the whole-array plan (its geometry only)."""
    dtype = np.result_type(*dtypes)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode)
    # "direct" supports every parameter, so this only validates and normalises; nothing is computed.
    whole = cl.plan(x_shape, w_shape, dtype, method="direct", **params)
    if method not in ("auto", "direct"):
        # an unknown method, or one that cannot run this problem, fails here; "auto" is resolved per block
        cl.plan(x_shape, w_shape, dtype, method=method, **params)
    return whole


# --------------------------------------------------------------- chunk geometry
@dataclasses.dataclass(frozen=True)
class _Axis:
    """How one spatial axis is cut: padded-input chunks, output chunks and the halo (left, right)."""

    padded_chunks: tuple
    output_chunks: tuple
    depth: tuple


def _axis_layout(input_chunks, lo, hi, stride, extent):
    """Chunks of one spatial axis of the padded input and of the output, and the overlap depth.

    Output chunk ``[c_j, c_{j+1})`` reads padded positions ``[s c_j, s c_{j+1} - s + e)``. With padded
    chunk boundaries at ``B_j = s c_j + L`` and overlap depth ``(L, R)``, ``L + R = max(e - s, 0)``, each
    overlapped block is exactly that window (the first and last blocks run to the array's ends), so every
    block's valid strided convolution yields its output chunk. ``c_j`` is the output position centred
    nearest the input chunk boundary, and ``L`` the left padding when it fits, so ``padding="same"`` at
    stride 1 keeps the input's chunks.
    """
    n = sum(input_chunks)
    padded = n + lo + hi
    out = (padded - extent) // stride + 1
    halo = max(extent - stride, 0)
    left = min(lo, halo)
    right = halo - left
    smallest = max(left, right, 1)  # dask's overlap needs every chunk at least as deep as the halo
    boundaries, previous = [], 0
    for b in np.cumsum(input_chunks)[:-1]:
        c = (2 * (int(b) + lo - left) + stride) // (2 * stride)  # round half up, in integers
        if not 0 < c < out:
            continue
        start = stride * c + left
        if start - previous >= smallest and padded - start >= smallest and (not boundaries or c > boundaries[-1]):
            boundaries.append(c)
            previous = start
    starts = [0] + [stride * c + left for c in boundaries] + [padded]
    ends = [0] + boundaries + [out]
    return _Axis(tuple(np.diff(starts).tolist()), tuple(np.diff(ends).tolist()), (left, right))


@dataclasses.dataclass(frozen=True)
class _Piece:
    """A run of input channels ``[start, stop)`` convolved on its own: kernel rows and columns, groups."""

    start: int
    stop: int
    out_start: int
    out_stop: int
    in_offset: int  # first kernel column (input channel within the group) of this piece
    groups: int

    def kernel(self, w):
        return w[self.out_start:self.out_stop, self.in_offset:self.in_offset + self.in_width]

    @property
    def in_width(self):
        return (self.stop - self.start) // self.groups


def _channel_pieces(channel_chunks, c_in, c_out, groups):
    """Split input-channel chunks where they straddle a group partially.

    Each piece is either whole groups (one convolution with that many groups) or part of one group
    (a convolution with ``groups=1`` whose output is a partial sum of that group's output channels).
    """
    per_in, per_out = c_in // groups, c_out // groups
    bounds = np.concatenate([[0], np.cumsum(channel_chunks)]).tolist()
    pieces = []
    for lo, hi in itertools.pairwise(bounds):
        cuts = sorted({lo, hi, *(g * per_in for g in range(lo // per_in + 1, -(-hi // per_in)))})
        for a, b in itertools.pairwise(cuts):
            if a % per_in == 0 and b % per_in == 0:
                pieces.append(_Piece(a, b, a // per_in * per_out, b // per_in * per_out, 0, (b - a) // per_in))
            else:
                g = a // per_in
                pieces.append(_Piece(a, b, g * per_out, (g + 1) * per_out, a - g * per_in, 1))
    return pieces


def _pad_whole(x, pads, mode):
    """Pad the spatial axes of ``x`` at the whole array's edges, lazily, as :func:`convlab.padding.pad`.

    Each edge is a slice of ``x`` (reversed for ``"reflect"`` and ``"symmetric"``, broadcast for
    ``"replicate"``) or zeros,
    concatenated on; building this graph costs milliseconds where ``dask.array.pad``'s reflect and wrap
    modes take a third of a second. ``dask.array.overlap``'s own boundaries do not fit: its ``"reflect"``
    repeats the edge and it pads both sides by the same depth.
    """
    for offset, (lo, hi) in enumerate(pads):
        if not (lo or hi):
            continue
        axis = 2 + offset
        n = x.shape[axis]

        def take(start, stop, _x=x, _axis=axis):
            return _x[(slice(None),) * _axis + (slice(start, stop),)]

        def filled(source, size, _x=x, _axis=axis):
            shape = _x.shape[:_axis] + (size,) + _x.shape[_axis + 1:]
            chunks = _x.chunks[:_axis] + ((size,),) + _x.chunks[_axis + 1:]
            if source is None:
                return da.zeros(shape, dtype=_x.dtype, chunks=chunks)
            return da.broadcast_to(source, shape, chunks=chunks)

        if mode == "zeros":
            left, right = filled(None, lo), filled(None, hi)
        elif mode == "replicate":
            left, right = filled(take(0, 1), lo), filled(take(n - 1, n), hi)
        elif mode == "circular":
            left, right = take(n - lo, n), take(0, hi)
        elif mode == "symmetric":  # reflect, repeating the edge (pad <= n, checked by the spec)
            left, right = _reverse(take(0, lo), axis), _reverse(take(n - hi, n), axis)
        else:  # reflect, without repeating the edge
            left, right = _reverse(take(1, lo + 1), axis), _reverse(take(n - 1 - hi, n - 1), axis)
        x = da.concatenate([part for part in (left, x, right) if part.shape[axis]], axis=axis)
    return x


def _reverse(x, axis):
    return x[(slice(None),) * axis + (slice(None, None, -1),)]


def _prepare(x, whole):
    """Pad, rechunk and overlap ``x``; return the overlapped array, the channel pieces and output chunks."""
    layouts = [
        _axis_layout(x.chunks[2 + i], lo, hi, s, e)
        for i, ((lo, hi), s, e) in enumerate(zip(whole.padding, whole.stride, whole.dilated_kernel_size))
    ]
    pieces = _channel_pieces(x.chunks[1], whole.in_channels, whole.out_channels, whole.groups)
    xp = x
    if any(lo or hi for lo, hi in whole.padding):
        xp = _pad_whole(x, whole.padding, whole.padding_mode)
    xp = xp.rechunk((x.chunks[0], tuple(p.stop - p.start for p in pieces), *(a.padded_chunks for a in layouts)))
    depth = {2 + i: a.depth for i, a in enumerate(layouts) if any(a.depth)}
    if depth:
        # the layout made every chunk at least as deep as the halo: a rechunk here would break the alignment
        xp = da.overlap.overlap(xp, depth=depth, boundary="none", allow_rechunk=False)
    return xp, pieces, tuple(a.output_chunks for a in layouts)


# --------------------------------------------------------------- block functions (module level: picklable)
class _PlanCache:
    """Plans by block shape, least recently used first, bounded by their workspace in bytes.

    A plan keeps its FFT buffers and weight spectra (for a 225³ float32 block about 0.3 GB), and a
    3-D array has up to 27 distinct block shapes (first, inner and last chunk per axis): a cache
    bounded by count held several GB and got distributed workers killed. Evicting costs little:
    rebuilding a plan reuses FFTW's wisdom, so only the kernel's spectrum is computed again.
    """

    def __init__(self):
        self.plans = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, budget):
        with self.lock:
            if key in self.plans:
                self.plans.move_to_end(key)
                return self.plans[key][0]
        x_shape, w_shape, dtype, stride, dilation, groups, method, _ = key
        plan = cl.plan(x_shape, w_shape, dtype, stride=stride, dilation=dilation, groups=groups, method=method)
        size = plan.implementation.workspace_bytes(plan.spec)
        with self.lock:
            self.plans[key] = (plan, size)
            self.plans.move_to_end(key)
            # the newest plan always stays; older ones go while the total is over the budget
            while len(self.plans) > 1 and sum(v[1] for v in self.plans.values()) > budget:
                self.plans.popitem(last=False)
        return plan


_plans = _PlanCache()


def _plan_cache_budget():
    """A sixteenth of this distributed worker's memory limit (one task's share, see
    :data:`_WORKING_SET_FACTOR`), else 512 MiB."""
    try:
        from distributed import get_worker

        worker = get_worker()
        # distributed keeps the limit on the worker's memory manager (on the worker itself before 2022)
        limit = getattr(getattr(worker, "memory_manager", worker), "memory_limit", None)
        if limit:
            return limit // _WORKING_SET_FACTOR
    except (ImportError, ValueError):
        pass
    return 512 * 2**20


def _block_plan(x_shape, w_shape, dtype, stride, dilation, groups, method, limit):
    """Plans are built where the block runs, cached per process, never shipped between processes."""
    return _plans.get((x_shape, w_shape, dtype, stride, dilation, groups, method, limit), _plan_cache_budget())


def _plan_for(xb, w, dtypes, stride, dilation, groups, method):
    dtype = np.result_type(*dtypes)
    return _block_plan(xb.shape, w.shape, np.dtype(dtype), stride, dilation, groups, method,
                       cl.get_workspace_limit())


def _forward_block(xb, w, bias, *, stride, dilation, groups, method):
    dtypes = (xb.dtype, w.dtype) + ((bias.dtype,) if bias is not None else ())
    return _plan_for(xb, w, dtypes, stride, dilation, groups, method).forward(xb, w, bias)


def _weight_grad_block(xb, gb, w_shape, w_dtype, *, stride, dilation, groups, method):
    """One block's ``dw``, with a leading axis of length 1 per block axis for the reduction that follows."""
    p = _plan_for(xb, np.empty(w_shape, w_dtype), (xb.dtype, w_dtype, gb.dtype), stride, dilation, groups, method)
    return p.backward_weight(gb, xb)[(None,) * xb.ndim]


def _upsample_block(block, stride):
    """Insert ``stride - 1`` zeros after every element along the spatial axes."""
    out = np.zeros(block.shape[:2] + tuple(n * s for n, s in zip(block.shape[2:], stride)), block.dtype)
    out[(Ellipsis, *(slice(None, None, s) for s in stride))] = block
    return out


def _fold_block(block, axis, lo, hi, mode):
    """:func:`convlab.padding.pad_adjoint` along one axis of a block holding that axis's two edges."""
    return cl.padding.pad_adjoint(block, [(lo, hi)] + [(0, 0)] * (block.ndim - axis - 1), mode)


# --------------------------------------------------------------- graph builders
def _forward(x, w, bias, whole, method):
    """The lazy convolution of ``x`` (already validated as ``whole``) with numpy ``w`` and ``bias``."""
    xo, pieces, out_chunks = _prepare(x, whole)
    meta = np.empty((0,) * x.ndim, whole.dtype)
    params = dict(stride=whole.stride, dilation=whole.dilation, method=method)
    by_range, seen = {}, set()
    for piece in pieces:
        key = (piece.out_start, piece.out_stop)
        b = None
        if bias is not None and key not in seen:  # the bias is added once per output channel
            b = dask.delayed(bias[piece.out_start:piece.out_stop], pure=True)
        seen.add(key)
        part = da.map_blocks(
            _forward_block, xo[:, piece.start:piece.stop], dask.delayed(piece.kernel(w), pure=True), b,
            groups=piece.groups, chunks=(x.chunks[0], (key[1] - key[0],), *out_chunks), dtype=whole.dtype,
            meta=meta, **params)
        by_range.setdefault(key, []).append(part)
    outputs = []
    for key in sorted(by_range):
        parts = by_range[key]
        outputs.append(parts[0] if len(parts) == 1 else da.stack(parts).sum(axis=0, split_every=_SPLIT_EVERY))
    return outputs[0] if len(outputs) == 1 else da.concatenate(outputs, axis=1)


def _fold_padding(g, pads, mode, input_size):
    """Adjoint of the padding, lazily: crop the centre, and fold the borders back for the other modes.

    Every mode folds a border onto at most ``max(lo, hi) + 1`` positions at either end of the axis, so the
    fold runs on a thin slab holding both ends (the centre compressed to ``2 a`` positions), with convlab's
    own exact adjoint.
    """
    for offset, ((lo, hi), n) in enumerate(zip(pads, input_size)):
        if not (lo or hi):
            continue
        axis = 2 + offset
        length = g.shape[axis]

        def take(start, stop, _g=g, _axis=axis):
            return _g[(slice(None),) * _axis + (slice(start, stop),)]

        if mode == "zeros":
            g = take(lo, lo + n)
            continue
        a = max(lo, hi) + 1
        if n <= 2 * a:  # small axis: fold it whole
            slab = g.rechunk({axis: length})
            g = slab.map_blocks(_fold_block, axis=axis, lo=lo, hi=hi, mode=mode, dtype=g.dtype, meta=g._meta,
                                chunks=slab.chunks[:axis] + ((n,),) + slab.chunks[axis + 1:])
            continue
        ends = da.concatenate([take(0, lo + a), take(length - hi - a, length)], axis=axis).rechunk({axis: -1})
        folded = ends.map_blocks(_fold_block, axis=axis, lo=lo, hi=hi, mode=mode, dtype=g.dtype, meta=g._meta,
                                 chunks=ends.chunks[:axis] + ((2 * a,),) + ends.chunks[axis + 1:])
        index = (slice(None),) * axis
        head, tail = folded[index + (slice(0, a),)], folded[index + (slice(a, None),)]
        g = da.concatenate([head, take(lo + a, lo + n - a), tail], axis=axis)
    return g


# --------------------------------------------------------------- public functions
def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", method="auto"):
    """:func:`convlab.conv` of a dask array, lazily, block by block.

    Parameters
    ----------
    x : dask.array.Array, shape (N, C_in, *spatial)
        Chunked along any axes, channels included (a numpy array is wrapped
        with ``dask.array.asarray``). 1, 2 or 3 spatial dims.
    w : array_like, shape (C_out, C_in // groups, *kernel)
        A numpy array (a dask array is computed: kernels are small).
    bias : array_like, shape (C_out,), optional
    stride, padding, dilation, groups, padding_mode
        As in :func:`convlab.conv`; validated once, by :func:`convlab.plan`.
    method : str, default "auto"
        Run by every block; ``"auto"`` lets convlab choose per block, from the
        block's own shape (halo included).

    Returns
    -------
    y : dask.array.Array, shape (N, C_out, *output_size)
        Equal to ``convlab.conv`` of the computed ``x``. Batch chunks are
        ``x``'s; spatial chunks follow ``x``'s (the same chunks for
        ``padding="same"`` at stride 1); output channels form one chunk per
        group of pieces. Chunks smaller than the halo are merged first.

    Raises
    ------
    ConvError, ConvTypeError
        For invalid parameters, with :func:`convlab.conv`'s messages.

    Examples
    --------
    >>> import numpy as np, dask.array as da, convlab as cl, convlab.dask as cld
    >>> x = np.arange(2 * 4 * 12.0).reshape(2, 4, 12)
    >>> w = np.ones((2, 2, 3))
    >>> y = cld.conv(da.from_array(x, chunks=(1, 1, 5)), w, stride=2, groups=2, padding_mode="circular",
    ...              padding=1)
    >>> y.shape, y.chunks
    ((2, 2, 6), ((1, 1), (1, 1), (3, 2, 1)))
    >>> bool(np.allclose(y.compute(), cl.conv(x, w, stride=2, groups=2, padding=1, padding_mode="circular")))
    True
    """
    x = _as_dask("x", x)
    w = _as_numpy("w", w)
    dtypes = [x.dtype, w.dtype]
    if bias is not None:
        bias = _as_numpy("bias", bias)
        dtypes.append(bias.dtype)
    whole = _validate(x.shape, w.shape, dtypes, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, padding_mode=padding_mode, method=method)
    if bias is not None and bias.shape != (whole.out_channels,):
        raise ConvError(f"bias must have shape ({whole.out_channels},), but got {bias.shape}")
    return _forward(x, w, bias, whole, method)


def conv_backward(grad_y, x, w, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                  method="auto"):
    """:func:`convlab.conv_backward` of dask arrays: ``dx`` lazily, ``dw`` and ``db`` computed.

    Parameters
    ----------
    grad_y : dask.array.Array or array_like, shape (N, C_out, *output_size)
    x : dask.array.Array, shape (N, C_in, *spatial)
    w : array_like, shape (C_out, C_in // groups, *kernel)
    stride, padding, dilation, groups, padding_mode, method
        As in :func:`conv`.

    Returns
    -------
    ConvGrads
        ``(dx, dw, db)``: ``dx`` a lazy dask array with ``x``'s shape and
        chunks (a transposed convolution, with the padding's exact adjoint
        at the array's edges); ``dw`` (shape of ``w``) and ``db``
        (``(C_out,)``) numpy arrays, summed over the blocks with a tree
        reduction (``split_every=8``) in one ``dask.compute``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, convlab as cl, convlab.dask as cld
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((2, 3, 20)), rng.standard_normal((4, 3, 5))
    >>> gy = rng.standard_normal((2, 4, 10))
    >>> dx, dw, db = cld.conv_backward(da.from_array(gy, chunks=3), da.from_array(x, chunks=(1, 2, 6)), w,
    ...                                stride=2, padding=[(2, 1)], padding_mode="reflect")
    >>> ref = cl.conv_backward(gy, x, w, stride=2, padding=[(2, 1)], padding_mode="reflect")
    >>> dx.chunks == ((1, 1), (2, 1), (6, 6, 6, 2))
    True
    >>> all(np.allclose(a, b) for a, b in zip((dx.compute(), dw, db), ref))
    True
    """
    x = _as_dask("x", x)
    grad_y = _as_dask("grad_y", grad_y)
    w = _as_numpy("w", w)
    whole = _validate(x.shape, w.shape, (x.dtype, w.dtype, grad_y.dtype), stride=stride, padding=padding,
                      dilation=dilation, groups=groups, padding_mode=padding_mode, method=method)
    if grad_y.shape != whole.output_shape:
        raise ConvError(f"grad_y must have shape {whole.output_shape} (the output of this convolution), "
                        f"but got {grad_y.shape}")
    dtype = whole.dtype
    grad_y = grad_y.astype(dtype)
    w = w.astype(dtype, copy=False)
    spatial = tuple(range(2, x.ndim))

    # dw: each block's weight gradient against the matching block of grad_y, tree-summed over the blocks
    xo, pieces, out_chunks = _prepare(x, whole)
    ranges = sorted({(p.out_start, p.out_stop) for p in pieces})
    gy = grad_y.rechunk((x.chunks[0], tuple(b - a for a, b in ranges), *out_chunks))
    dw_parts = []
    for piece in pieces:
        k_shape = piece.kernel(w).shape
        per_block = da.map_blocks(
            _weight_grad_block, xo[:, piece.start:piece.stop], gy[:, piece.out_start:piece.out_stop],
            k_shape, w.dtype, stride=whole.stride, dilation=whole.dilation, groups=piece.groups, method=method,
            new_axis=list(range(x.ndim, x.ndim + w.ndim)),
            chunks=tuple((1,) * n for n in xo[:, piece.start:piece.stop].numblocks) + tuple((k,) for k in k_shape),
            dtype=dtype, meta=np.empty((0,) * (x.ndim + w.ndim), dtype))
        dw_parts.append(per_block.sum(axis=tuple(range(x.ndim)), split_every=_SPLIT_EVERY))
    # accumulated in float64, as ConvPlan.backward does: a sum over everything can cancel far below its terms
    db_lazy = grad_y.sum(axis=(0, *spatial), dtype=np.float64, split_every=_SPLIT_EVERY)
    *dw_values, db = dask.compute(*dw_parts, db_lazy)
    dw = np.zeros(w.shape, dtype)
    for piece, value in zip(pieces, dw_values):
        dw[piece.out_start:piece.out_stop, piece.in_offset:piece.in_offset + piece.in_width] = value

    # dx: the transposed convolution, as a forward one of grad_y (zeros inserted for the stride) with the
    # kernel flipped and its channel axes swapped per group, "full" padding, then the padding's adjoint.
    up = grad_y
    if any(s > 1 for s in whole.stride):
        up = grad_y.map_blocks(
            _upsample_block, stride=whole.stride, dtype=dtype, meta=grad_y._meta,
            chunks=grad_y.chunks[:2] + tuple(tuple(c * s for c in chunks) for chunks, s in
                                             zip(grad_y.chunks[2:], whole.stride)))
    g, per_out, per_in = whole.groups, whole.out_channels // whole.groups, whole.in_channels // whole.groups
    flipped = w[(Ellipsis, *(slice(None, None, -1),) * whole.ndim)]
    w_t = np.ascontiguousarray(
        flipped.reshape(g, per_out, per_in, *whole.kernel_size).swapaxes(1, 2).reshape(
            whole.in_channels, per_out, *whole.kernel_size))
    full = tuple((e - 1, e - 1) for e in whole.dilated_kernel_size)
    transposed = _validate(up.shape, w_t.shape, (dtype,), stride=1, padding=full, dilation=whole.dilation,
                           groups=g, padding_mode="zeros", method=method)
    dxp = _forward(up, w_t, None, transposed, method)
    # positions past the last window (when the stride does not divide the padded size) get no gradient
    dxp = dxp[(slice(None), slice(None), *(slice(0, n) for n in whole.padded_size))]
    dx = _fold_padding(dxp, whole.padding, whole.padding_mode, whole.input_size).rechunk(x.chunks)
    return cl.ConvGrads(dx, dw, db.astype(dtype))


def _normalise_axes(axes, ndim, name):
    if axes is None:
        return list(range(ndim))
    values = [axes] if np.ndim(axes) == 0 else list(axes)
    if not values or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                             for v in values):
        raise ConvError(f"{name}: axes must be an int or a non-empty sequence of ints, but got axes={axes!r}")
    if any(not -ndim <= v < ndim for v in values):
        raise ConvError(f"{name}: axes={axes!r} is out of range for {ndim}-D inputs")
    values = [int(v) % ndim for v in values]
    if len(set(values)) != len(values):
        raise ConvError(f"{name}: axes must be unique, but got axes={axes!r}")
    return sorted(values)


def _signal(in1, in2, mode, method, flip, name, axes=None):
    in1 = _as_dask("in1", in1)
    in2 = _as_numpy("in2", in2)
    if in1.ndim != in2.ndim:
        raise ConvError(f"{name}: in1 and in2 must have the same number of dimensions, "
                        f"but got shapes {in1.shape} and {in2.shape}")
    if mode not in ("full", "same", "valid"):
        raise ConvError(f"mode must be one of ['full', 'same', 'valid'], but got {mode!r}")
    axes = _normalise_axes(axes, in1.ndim, name)
    others = [i for i in range(in1.ndim) if i not in axes]
    if not 1 <= len(axes) <= 3 or len(others) > 2:
        raise ConvError(f"{name}: convolves 1 to 3 axes with at most 2 others broadcast, but got {in1.ndim}-D "
                        f"inputs of shapes {in1.shape} and {in2.shape} with axes={axes}")
    if any(in2.shape[i] != 1 for i in others):
        raise ConvError(f"{name}: in2 must have size 1 along the axes not convolved (one kernel for every "
                        f"slice), but got shape {in2.shape} with axes={axes}")
    if mode == "valid" and any(in2.shape[i] > in1.shape[i] for i in axes):
        raise ConvError(f"mode='valid' needs in2 no larger than in1 along the convolved axes, but got shapes "
                        f"{in1.shape} and {in2.shape} (scipy would swap them; swap them yourself)")
    if min(in2.shape, default=1) < 1:
        raise ConvError(f"in2 must not be empty, but got shape {in2.shape}")
    kernel = in2[tuple(0 if i in others else slice(None) for i in range(in2.ndim))]
    # scipy's "same" is the centre of "full": (k - 1) // 2 dropped at the start, i.e. padding k - 1 - (k - 1) // 2
    # before and (k - 1) // 2 after; for even kernels this is one more before than PyTorch's "same".
    padding = {"full": [(k - 1, k - 1) for k in kernel.shape],
               "same": [(k - 1 - (k - 1) // 2, (k - 1) // 2) for k in kernel.shape],
               "valid": [(0, 0)] * kernel.ndim}[mode]
    if flip:
        kernel = kernel[(slice(None, None, -1),) * kernel.ndim]
    # the broadcast axes become the batch and (one group each, the same kernel) the channels
    if len(others) == 0:  # no axis moves: an identity transpose would still add a task per block
        return conv(in1[None, None], kernel[None, None], padding=padding, method=method)[0, 0]
    x = in1 if others == list(range(len(others))) else da.moveaxis(in1, others, list(range(len(others))))
    if len(others) == 1:
        y = conv(x[:, None], kernel[None, None], padding=padding, method=method)[:, 0]
    else:
        channels = x.shape[1]
        w = np.broadcast_to(kernel, (channels, 1, *kernel.shape))
        y = conv(x, w, padding=padding, groups=channels, method=method)
    return y if x is in1 else da.moveaxis(y, list(range(len(others))), others)


def correlate(in1, in2, mode="full", method="auto"):
    """``scipy.signal.correlate`` of an N-D dask array with a small kernel, lazily.

    Parameters
    ----------
    in1 : dask.array.Array
        1, 2 or 3 dimensions, chunked along any of them.
    in2 : array_like
        The kernel, a numpy array with ``in1``'s number of dimensions.
    mode : {"full", "valid", "same"}, default "full"
        As in scipy; ``"same"`` is centred as scipy centres it. For
        ``"valid"`` ``in2`` must be no larger than ``in1`` in every dimension
        (scipy would swap the two).
    method : str, default "auto"
        A method of :func:`convlab.methods` or ``"auto"``, per block.

    Returns
    -------
    dask.array.Array
        float32 for float32 inputs, float64 otherwise (as scipy, for real inputs).

    Examples
    --------
    >>> import numpy as np, dask.array as da, scipy.signal, convlab.dask as cld
    >>> a = np.random.default_rng(0).standard_normal((30, 20)); k = np.arange(6.0).reshape(3, 2)
    >>> y = cld.correlate(da.from_array(a, chunks=7), k, mode="same")
    >>> bool(np.allclose(y.compute(), scipy.signal.correlate(a, k, mode="same")))
    True
    """
    return _signal(in1, in2, mode, method, flip=False, name="correlate")


def convolve(in1, in2, mode="full", method="auto"):
    """``scipy.signal.convolve`` of an N-D dask array with a small kernel, lazily.

    Parameters and returns are those of :func:`correlate`; the kernel is flipped.

    Examples
    --------
    >>> import numpy as np, dask.array as da, scipy.signal, convlab.dask as cld
    >>> a = np.random.default_rng(0).standard_normal(50); k = np.array([1.0, 2.0, 0.5, -1.0])
    >>> all(np.allclose(cld.convolve(da.from_array(a, chunks=8), k, mode=m).compute(),
    ...                 scipy.signal.convolve(a, k, mode=m)) for m in ("full", "same", "valid"))
    True
    """
    return _signal(in1, in2, mode, method, flip=True, name="convolve")


def fftconvolve(in1, in2, mode="full", axes=None):
    """``scipy.signal.fftconvolve`` of an N-D dask array: :func:`convolve` with ``method="fft"`` per block.

    Parameters
    ----------
    in1 : dask.array.Array
        Chunked along any axes.
    in2 : array_like
        The kernel, with ``in1``'s number of dimensions.
    mode : {"full", "valid", "same"}, default "full"
    axes : int or sequence of int, optional
        The 1 to 3 axes to convolve (default all). Along the others (at most
        two) ``in2`` must have size 1: every slice of ``in1`` is convolved
        with the same kernel, as scipy broadcasts it.

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import numpy as np, dask.array as da, scipy.signal, convlab.dask as cld
    >>> a = np.random.default_rng(0).standard_normal((24, 24, 24)); k = np.ones((5, 5, 5))
    >>> y = cld.fftconvolve(da.from_array(a, chunks=10), k, mode="valid")
    >>> y.shape, bool(np.allclose(y.compute(), scipy.signal.fftconvolve(a, k, mode="valid")))
    ((20, 20, 20), True)
    >>> frames = np.random.default_rng(1).standard_normal((6, 40, 30)); psf = np.ones((1, 3, 3))
    >>> y = cld.fftconvolve(da.from_array(frames, chunks=(2, 16, 16)), psf, mode="same", axes=(1, 2))
    >>> bool(np.allclose(y.compute(), scipy.signal.fftconvolve(frames, psf, mode="same", axes=(1, 2))))
    True
    """
    return _signal(in1, in2, mode, "fft", flip=True, name="fftconvolve", axes=axes)


# --------------------------------------------------------------- chunk advice
def _default_memory_limit():
    """A quarter of the smallest per-thread share of a distributed worker's memory, else 256 MiB."""
    try:
        from distributed import get_client

        workers = get_client().scheduler_info()["workers"].values()
        shares = [w["memory_limit"] / max(w["nthreads"], 1) for w in workers if w.get("memory_limit")]
        if shares:
            return int(min(shares) / 4)
    except (ImportError, ValueError):
        pass
    return 256 * 2**20


def suggest_chunks(shape, kernel_size, dtype=np.float32, *, memory_limit=None):
    """Chunk sizes for convolving an array of ``shape`` over its trailing ``len(kernel_size)`` axes.

    Each spatial chunk plus its halo (``kernel - 1``) is an FFT fast length
    (:func:`scipy.fft.next_fast_len`), chunks are as large as the memory
    budget allows (the leading axes, batch and channels, kept whole when
    they fit, so no channel reduction crosses chunks) and never smaller
    than the halo, so the halo costs little.

    Parameters
    ----------
    shape : tuple of int
        The array's shape: ``(N, C_in, *spatial)`` for :func:`conv`, the
        image's shape for :func:`convolve`.
    kernel_size : tuple of int
        The kernel's spatial size (dilated size for a dilated kernel).
    dtype : dtype, default float32
    memory_limit : int or str, optional
        Bytes one task may use (``"512MiB"`` accepted). Default: a quarter
        of a distributed worker's memory per thread when a client is active,
        else 256 MiB. A task's working set is taken as 16 times its input
        block with halo (FFT spectra, output, neighbouring tasks).

    Returns
    -------
    tuple of int
        One chunk size per axis of ``shape``, for ``chunks=``.

    Examples
    --------
    >>> import numpy as np, convlab.dask as cld
    >>> cld.suggest_chunks((8192, 8192), (31, 31), np.float32, memory_limit="256MiB")
    (2018, 2018)
    >>> cld.suggest_chunks((4, 3, 100, 100), (5, 5), memory_limit=2**20)
    (4, 3, 32, 32)
    """
    from dask.utils import parse_bytes
    from scipy.fft import next_fast_len

    shape = tuple(int(v) for v in shape)
    kernel_size = tuple(int(v) for v in kernel_size)
    spatial = len(kernel_size)
    if not 1 <= spatial <= len(shape) or any(v < 1 for v in shape + kernel_size):
        raise ConvError(f"suggest_chunks needs positive sizes and at most len(shape)={len(shape)} kernel dims, "
                        f"but got shape={shape}, kernel_size={kernel_size}")
    budget = _default_memory_limit() if memory_limit is None else memory_limit
    budget = parse_bytes(budget) if isinstance(budget, str) else int(budget)
    if budget < 1:
        raise ConvError(f"memory_limit must be positive, but got {memory_limit!r}")
    itemsize = np.dtype(cl.plan((1, 1, 1), (1, 1, 1), dtype, method="direct").dtype).itemsize
    elements = budget // (_WORKING_SET_FACTOR * itemsize)  # of one input block with halo
    lead, sizes = list(shape[:-spatial]), shape[-spatial:]
    halos = [k - 1 for k in kernel_size]

    def chunk_sizes(fast):
        return [min(n, max(fast - h, h, 1)) for n, h in zip(sizes, halos)]

    def block_elements(lead_sizes, spatial_sizes):
        return math.prod(lead_sizes) * math.prod(t + h for t, h in zip(spatial_sizes, halos))

    fast = next_fast_len(max(2 * max(halos) + 1, 16), real=True)
    best = chunk_sizes(fast)
    # the leading axes (batch first) shrink only when even the smallest spatial chunks do not fit
    for axis in range(len(lead)):
        while lead[axis] > 1 and block_elements(lead, best) > elements:
            lead[axis] = -(-lead[axis] // 2)
    while block_elements(lead, best) <= elements and best != list(sizes):
        fast = next_fast_len(fast + 1, real=True)
        candidate = chunk_sizes(fast)
        if block_elements(lead, candidate) > elements:
            break
        best = candidate
    return tuple(lead) + tuple(best)
