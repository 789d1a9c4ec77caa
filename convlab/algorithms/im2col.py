"""The im2col method: unroll the input's patches into a column matrix, then one GEMM.

Notation (as in ``docs/im2col.md``): ``G`` groups, ``Kg = (C_in/G)·prod(k)``
rows per group of the column matrix, ``P = prod(out)`` output positions.

* im2col: ``cols[n, g, (c, k), p] = x[n, g·C_in/G + c, s·p − lo + d·k]``
  (zero in the padding), written by the loops of :mod:`convlab.kernels.im2col`
  straight into a contiguous ``(N, G, Kg, P)`` buffer: no padded copy;
* forward: ``Y = W · cols`` with ``W`` of shape ``(G, C_out/G, Kg)``: one
  batched :func:`numpy.matmul` into BLAS, whose result already has the
  output layout ``(N, C_out, *out)``;
* backward: ``dW = Σ_n dY_n · cols_nᵀ`` and ``dcols = Wᵀ · dY`` by GEMM,
  then col2im (the same loops read the other way) adds ``dcols`` into ``dx``
  itself, skipping the entries that fall in the padding.

The column buffer holds ``N·C_in·prod(k)·P`` values. When that exceeds the
workspace limit (or :data:`CHUNK_TARGET_BYTES`) the batch, and if one sample
is still too big the first output axis, is processed in chunks that fit;
each chunk runs the same code in one buffer allocated per call (a fresh
buffer per chunk would page-fault through new memory each time). When a chunk
holds whole samples, the forward GEMM writes straight into ``y``. The chunk
list is computed once per spec and workspace limit.
A 1×1 kernel with stride 1 and no padding needs no buffer: ``cols`` is the
input itself and the method is a plain GEMM.
"""

import itertools
import math

import numpy as np

from ..phases import phase
from .base import Method, register

__all__ = ["Im2col", "chunk_bytes", "chunking", "CHUNK_TARGET_BYTES"]

CHUNK_TARGET_BYTES = 16 << 20
"""Largest chunk worth using even when the limit allows more. A column buffer written by the copy
and read straight back by the GEMM is faster while it still sits in cache: on the 8×64×56² 3×3
float32 layer one 58 MiB buffer took 26.7 ms forward and 72 ms backward, 16 MiB chunks 14.6 and
38 ms (both ~equal from 8 to 32 MiB, slower again from 48 MiB)."""


def _is_pointwise(plan):
    """1×1 kernel, stride 1, no padding: the input already is the column matrix."""
    return (all(k == 1 for k in plan.kernel_size) and all(s == 1 for s in plan.stride)
            and not any(lo or hi for lo, hi in plan.padding))


def _row_bytes(plan, chunked):
    """Bytes per sample and position along the first output axis: its column-buffer rows and,
    when chunked, its share of the output (or output-gradient) chunk copied out of a strided slice."""
    positions = math.prod(plan.output_size[1:])
    cols = plan.in_channels * math.prod(plan.kernel_size) * positions
    return (cols + (plan.out_channels * positions if chunked else 0)) * plan.dtype.itemsize


def _sample_bytes(plan):
    """Bytes per sample of the per-sample ``dY_n · cols_nᵀ`` products summed into ``dW``."""
    return plan.out_channels * plan.w_shape[1] * math.prod(plan.kernel_size) * plan.dtype.itemsize


def chunking(plan):
    """``(samples, rows)`` per chunk: how much of the batch and of the first output axis one
    column buffer holds, the most that fits ``plan.limit`` and :data:`CHUNK_TARGET_BYTES`
    (at least one row of one sample).

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((4, 2, 10, 10), (3, 2, 3, 3), np.float64, method="direct")
    >>> chunking(p)
    (4, 8)
    >>> chunking(cl.plan((4, 2, 10, 10), (3, 2, 3, 3), np.float64, method="direct", workspace_limit=3500))
    (1, 2)
    """
    rows = plan.output_size[0]
    budget = min(plan.limit, CHUNK_TARGET_BYTES)
    if plan.batch * (rows * _row_bytes(plan, False) + _sample_bytes(plan)) <= budget:
        return plan.batch, rows
    per_sample = rows * _row_bytes(plan, True) + _sample_bytes(plan)
    if per_sample <= budget:
        return budget // per_sample, rows
    return 1, int(min(rows, max(1, (budget - _sample_bytes(plan)) // _row_bytes(plan, True))))


def chunk_bytes(plan):
    """Bytes one chunk uses: column buffer, output-chunk copy (when chunked) and per-sample ``dW``."""
    if _is_pointwise(plan):
        return plan.batch * _sample_bytes(plan)
    samples, rows = chunking(plan)
    chunked = (samples, rows) != (plan.batch, plan.output_size[0])
    return samples * (rows * _row_bytes(plan, chunked) + _sample_bytes(plan))


def _layout(plan):
    """``(chunk_bytes, ((batch_slice, row_slice), ...))``, computed once per spec and workspace limit
    (the workspace check and the pass both need it on every call)."""
    def compute():
        samples, rows = chunking(plan)
        n_rows = plan.output_size[0]
        chunks = tuple((slice(n0, min(n0 + samples, plan.batch)), slice(r0, min(r0 + rows, n_rows)))
                       for n0, r0 in itertools.product(range(0, plan.batch, samples), range(0, n_rows, rows)))
        return chunk_bytes(plan), chunks
    return plan.cached(("im2col", "layout", plan.limit), compute)


def _grouped_weight(plan, w):
    """``(C_out, C_in/G, *k)`` -> ``(G, C_out/G, Kg)`` (a view)."""
    g = plan.groups
    return w.reshape(g, plan.out_channels // g, -1)


def _geometry(plan, kernels):
    """The kernels' per-axis parameters, computed once per problem."""
    return plan.cached(("im2col", "geometry"), lambda: kernels.geometry(
        plan.kernel_size, plan.stride, plan.dilation, tuple(lo for lo, _ in plan.padding)))


def _buffer(plan, chunks):
    """Scratch for the largest chunk's column matrix, allocated once per call and reused by every chunk
    (a fresh buffer per chunk would page-fault its way through new memory each time)."""
    batch, rows = chunks[0]
    size = ((batch.stop - batch.start) * plan.in_channels * math.prod(plan.kernel_size)
            * (rows.stop - rows.start) * math.prod(plan.output_size[1:]))
    return np.empty(size, plan.dtype)


def _cols_view(plan, buffer, n, rows, shape_tail):
    """The first entries of ``buffer`` as a C-contiguous ``(n, *shape_tail)`` array for a chunk of ``rows``."""
    out = (rows.stop - rows.start, *plan.output_size[1:])
    shape = (n, *shape_tail, *out)
    return buffer[:math.prod(shape)].reshape(shape)


def _im2col(plan, x, rows, buffer):
    """The contiguous column matrix ``(n, G, Kg, P_chunk)`` of a chunk in ``buffer``, padding fused."""
    from ..kernels import im2col as kernels  # numba: imported on first use, never at import convlab

    out = (rows.stop - rows.start, *plan.output_size[1:])
    cols = _cols_view(plan, buffer, x.shape[0], rows, (plan.in_channels * math.prod(plan.kernel_size),))
    kernels.im2col(x, cols, _geometry(plan, kernels), (rows.start,) + (0,) * (plan.ndim - 1))
    return cols.reshape(x.shape[0], plan.groups, -1, math.prod(out))


def _col2im_add(plan, dx, dcols, rows):
    """Adjoint of :func:`_im2col`: add ``dcols`` ``(n, G, Kg, P_chunk)`` into ``dx`` (``(n, C_in, *in)``)."""
    from ..kernels import im2col as kernels  # numba: imported on first use, never at import convlab

    out = (rows.stop - rows.start, *plan.output_size[1:])
    dcols = dcols.reshape(dcols.shape[0], -1, *out)
    first = (rows.start,) + (0,) * (plan.ndim - 1)
    kernels.col2im_add(dcols, dx, _geometry(plan, kernels), first, zero=rows.start == 0)


def _output_chunk(plan, a, rows):
    """``a[..., rows, ...]`` of an ``(n, C, *out)`` array, as ``(n, G, C/G, P_chunk)``."""
    chunk = a[:, :, rows]
    return chunk.reshape(chunk.shape[0], plan.groups, chunk.shape[1] // plan.groups, -1)


@register
class Im2col(Method):
    """Unrolled patches times the weight matrix: one batched GEMM per chunk."""

    name = "im2col"
    domain = "spatial"
    exact_sums = True  # sums of products of input values only: exact on integers below 2**53

    def cost(self, spec, terms, pass_="forward"):
        return predicted_cost(spec, terms, pass_)

    def needs_compiled_kernels(self, spec, pass_="forward"):
        return not _is_pointwise(spec)  # the column matrix is packed (and folded back) by compiled loops

    def workspace_bytes(self, plan):
        return _layout(plan)[0]  # padding is fused into the packing: no padded copy

    # ----- forward
    def forward(self, plan, x, w):
        wg = _grouped_weight(plan, w)
        if _is_pointwise(plan):
            cols = x.reshape(plan.batch, plan.groups, -1, math.prod(plan.output_size))
            with phase("product"):
                return (wg @ cols).reshape(plan.output_shape)
        chunks = _layout(plan)[1]
        buffer = _buffer(plan, chunks)
        y = np.empty(plan.output_shape, plan.dtype)
        for batch, rows in chunks:
            with phase("pack"):
                cols = _im2col(plan, x[batch], rows, buffer)
            if rows.stop - rows.start == plan.output_size[0]:  # whole samples: the GEMM writes into y itself
                with phase("product"):
                    np.matmul(wg, cols, out=y[batch].reshape(cols.shape[0], plan.groups, -1, cols.shape[-1]))
                continue
            with phase("product"):
                product = wg @ cols
            with phase("unpack"):
                chunk = y[batch, :, rows]
                chunk[...] = product.reshape(chunk.shape)
            del product
        return y

    # ----- backward
    def backward_input(self, plan, grad_y, w):
        wt = np.swapaxes(_grouped_weight(plan, w), -1, -2)  # (G, Kg, C_out/G): BLAS reads it transposed
        if _is_pointwise(plan):
            dyg = grad_y.reshape(plan.batch, plan.groups, -1, math.prod(plan.output_size))
            with phase("product"):
                return (wt @ dyg).reshape(plan.x_shape)
        chunks = _layout(plan)[1]
        buffer = _buffer(plan, chunks)
        dx = np.empty(plan.x_shape, plan.dtype)  # each plane zeroed by the first chunk that reaches it
        for batch, rows in chunks:
            dy_chunk = _output_chunk(plan, grad_y[batch], rows)  # a view: BLAS reads the strided rows
            with phase("product"):
                dcols = _cols_view(plan, buffer, dy_chunk.shape[0], rows, (plan.groups, wt.shape[1]))
                dcols = np.matmul(wt, dy_chunk, out=dcols.reshape(*dcols.shape[:3], -1))
            with phase("unpack"):
                _col2im_add(plan, dx[batch], dcols, rows)
        return dx

    def backward_weight(self, plan, grad_y, x):
        # dWᵀ = Σ_n cols_n · dY_nᵀ, computed transposed: numpy hands a batched product whose
        # transposed operand is the small dY to BLAS far faster than one whose transposed
        # operand is the large column buffer (measured 2-5x on this layout).
        if _is_pointwise(plan):
            cols = x.reshape(plan.batch, plan.groups, -1, math.prod(plan.output_size))
            dyg = grad_y.reshape(plan.batch, plan.groups, -1, math.prod(plan.output_size))
            with phase("product"):
                dwt = (cols @ np.swapaxes(dyg, -1, -2)).sum(axis=0)
        else:
            chunks = _layout(plan)[1]
            buffer = _buffer(plan, chunks)
            dwt = None
            for batch, rows in chunks:
                with phase("pack"):
                    cols = _im2col(plan, x[batch], rows, buffer)
                dy_chunk = _output_chunk(plan, grad_y[batch], rows)
                with phase("product"):
                    part = (cols @ np.swapaxes(dy_chunk, -1, -2)).sum(axis=0)
                    dwt = part if dwt is None else np.add(dwt, part, out=dwt)
        return np.ascontiguousarray(np.swapaxes(dwt, -1, -2)).reshape(plan.w_shape)


def predicted_cost(spec, terms, pass_="forward"):
    """``{phase: seconds}`` of one pass: the column matrix, padding fused (gathered for ``y`` and
    ``dw``, scatter-added into ``dx`` by col2im; neither for a pointwise layer) and ``N·G`` GEMMs.
    The column buffer (up to :data:`CHUNK_TARGET_BYTES`, beyond the per-core cache) is priced as two
    streaming passes at the copy bandwidth, one by the packing kernel and one by the GEMM (or col2im)
    on the other side, not at the strided-gather bandwidth fitted for numpy's window copies: priced
    there, the fitted factor had to absorb the buffer's traffic (3.1) and overpredicted the
    compute-bound layers 2.5x (a strided 2×128×56² 3×3 layer).

    The fixed costs follow the chunks (:func:`chunking`): each chunk makes one launch of the packing
    (or col2im) kernel and one batched matmul call, and when there is more than one chunk, copies
    its output (``y`` or ``dy``) rows out of or into a strided slice. A pointwise layer makes one
    matmul call and launches nothing.
    """
    cg, kg = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    taps = math.prod(spec.kernel_size)
    out = math.prod(spec.output_size)
    nb = spec.batch * spec.groups
    columns = spec.batch * spec.in_channels * taps * out
    y = math.prod(spec.output_shape)
    pointwise = _is_pointwise(spec)
    samples, rows = (spec.batch, spec.output_size[0]) if pointwise else chunking(spec)
    chunks = -(-spec.batch // samples) * -(-spec.output_size[0] // rows)
    # every chunk after the first: another matmul call, and the strided copy of its output rows
    extra_calls = (chunks - 1) * (terms.blas_call + terms.call) if chunks > 1 else 0.0
    chunk_copy = terms.gather(y) if chunks > 1 else 0.0
    if pass_ == "backward_input":
        if pointwise:
            return {"product": terms.gemm(cg, kg, out, batch=nb)}
        x = spec.batch * spec.in_channels * math.prod(spec.input_size)
        return {"pack": chunk_copy, "product": terms.gemm(cg * taps, kg, out, batch=nb) + extra_calls,
                # col2im zeroes dx, then scatter-adds the columns
                "unpack": terms.passes(x, 1) + terms.passes(columns, 2) + terms.launches(chunks, spec.flops)}
    if pass_ == "backward_weight":
        batch_sum = chunks * terms.passes(nb * kg * cg * taps, 2 if chunks > 1 else 1)
        if pointwise:
            return {"product": terms.gemm(cg, out, kg, batch=nb) + batch_sum}
        return {"pack": terms.passes(columns, 2) + terms.launches(chunks, spec.flops) + chunk_copy,
                "product": terms.gemm(cg * taps, out, kg, batch=nb) + extra_calls + batch_sum}
    if pointwise:
        return {"product": terms.gemm(kg, cg, out, batch=nb)}
    phases = {"pack": terms.passes(columns, 2) + terms.launches(chunks, spec.flops),
              "product": terms.gemm(kg, cg * taps, out, batch=nb) + extra_calls}
    if chunks > 1:
        phases["unpack"] = chunk_copy
    return phases
