"""The Toeplitz method: the convolution as one sparse matrix product, ``y = T · P · x``.

``P`` pads (any padding mode) and ``T`` is the Toeplitz / doubly (triply)
block Toeplitz matrix of the valid strided, dilated, grouped correlation,
both built by :mod:`convlab.operators`. ``T``'s sparsity pattern and the map
``kernel_index`` from its stored entries to the kernel entries they hold are
built once per plan; ``T`` itself (``T.data = w.ravel()[kernel_index]``) is
built once per distinct ``w`` and kept (:class:`~convlab.algorithms.base.WeightDerived`):
a call with the weights of the previous call, as in filtering signal after
signal with one kernel or repeated inference, pays one comparison of ``w``
instead of the gather and the sparse matrix's construction.

The batch is the second dimension of the dense operand: with
``X = x.reshape(N, -1)ᵀ`` (one column per sample), ``Y = T (P X)``.

Backward, in the same notation (``dY`` one column per sample):

* ``dX = Pᵀ (Tᵀ dY)``: the transposed sparse matrices (``Tᵀ`` of a CSR
  matrix is a free CSC view);
* ``dT.data[e] = Σ_n dY[row(e), n] · (P X)[col(e), n]`` for every stored
  entry ``e``, reduced onto the kernel with
  ``dW.ravel() = bincount(kernel_index, dT.data)``.
"""

import math

import numpy as np

from ..operators import padding_matrix, toeplitz_nbytes, toeplitz_operator, toeplitz_pattern
from ..padding import PADDING_MODES
from ..phases import phase
from .base import Method, WeightDerived, register

__all__ = ["Toeplitz"]


def _columns(a):
    """``(N, *rest)`` -> ``(prod(rest), N)``: one column per sample, as scipy.sparse wants it."""
    return np.ascontiguousarray(a.reshape(a.shape[0], -1).T)


def _entries_per_row(plan):
    """Stored entries in each row of ``T``: one per input channel of the group and kernel offset."""
    return (plan.in_channels // plan.groups) * math.prod(plan.kernel_size)


def _operator(plan, w):
    """``T`` with the values of ``w``, built once per distinct ``w`` (scipy's products never write to it)."""
    slot = plan.cached(("toeplitz", "operator"), WeightDerived)
    return slot.get(w, "T", lambda: toeplitz_operator(plan, w))


def _rows_per_step(plan):
    """Rows of ``T`` per step of the weight gradient, so that one step gathers about ``nnz`` values."""
    return max(1, math.prod(plan.output_shape[1:]) // plan.batch)


@register
class Toeplitz(Method):
    """Sparse Toeplitz (doubly / triply block Toeplitz) matrix times the padded input."""

    name = "toeplitz"
    domain = "spatial"
    exact_sums = True  # sums of products of input values only: exact on integers below 2**53

    def cost(self, spec, terms, pass_="forward"):
        return predicted_cost(spec, terms, pass_)
    native_padding_modes = PADDING_MODES

    def workspace_bytes(self, plan):
        itemsize = plan.dtype.itemsize
        inputs = plan.batch * plan.in_channels * math.prod(plan.input_size) * itemsize  # x as columns
        padded = plan.batch * plan.in_channels * math.prod(plan.padded_size) * itemsize  # P·X
        outputs = math.prod(plan.output_shape) * itemsize  # T·P·X before its transpose
        # dW step: gathered inputs, their products with dY, and those as float64 bincount weights
        entries = _rows_per_step(plan) * _entries_per_row(plan)
        gradient_step = entries * (plan.batch * itemsize + itemsize + 8)
        return toeplitz_nbytes(plan) + inputs + padded + max(outputs, gradient_step)

    def forward(self, plan, x, w):
        with phase("pad"):  # the padding matrix also lays the samples out as columns
            padded = padding_matrix(plan) @ _columns(x)
        with phase("transform_weight"):
            t = _operator(plan, w)
        with phase("product"):
            y = t @ padded
        with phase("unpack"):
            return np.ascontiguousarray(y.T).reshape(plan.output_shape)

    def backward_input(self, plan, grad_y, w):
        with phase("transform_weight"):
            t = _operator(plan, w)
        with phase("product"):
            dpadded = t.T @ _columns(grad_y)
        with phase("unpack"):  # Pᵀ crops (and folds back) the padding
            dx = padding_matrix(plan).T @ dpadded
            return np.ascontiguousarray(dx.T).reshape(plan.x_shape)

    def backward_weight(self, plan, grad_y, x):
        with phase("transform_weight"):  # the sparsity pattern (built once per plan)
            _, indices, kernel_index, (rows, _) = toeplitz_pattern(plan)
        with phase("pad"):
            padded = (padding_matrix(plan) @ _columns(x)).T    # P·X, one row per sample: (N, C_in·prod(padded))
        dy = grad_y.reshape(plan.batch, rows)
        step, per_row = _rows_per_step(plan), _entries_per_row(plan)
        with phase("product"):
            dw = np.zeros(math.prod(plan.w_shape), np.float64)
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                entries = slice(r0 * per_row, r1 * per_row)
                gathered = padded[:, indices[entries]].reshape(plan.batch, r1 - r0, per_row)
                gathered *= dy[:, r0:r1, None]
                dt = gathered.sum(axis=0)                        # dT.data of this block of rows
                dw += np.bincount(kernel_index[entries], weights=dt.ravel(), minlength=dw.size)
        return dw.astype(plan.dtype).reshape(plan.w_shape)


def predicted_cost(spec, terms, pass_="forward"):
    """``{phase: seconds}`` of one pass: a sparse product over every stored entry, plus the column
    copies in and out (``dw`` instead gathers the input under every entry and bins the products).

    The fixed costs are scipy.sparse calls: the padding matrix applied to the input columns (or
    its transpose to ``dx``'s), ``T`` (or ``Tᵀ``) applied. The padding matrix is a sparse product
    too, with one stored entry per input value (priced as such: on a 1×1 kernel it is half the
    work). For ``y`` and ``dx``, ``T`` is kept per distinct ``w`` (:class:`WeightDerived`), so a
    call with the weights of the previous one pays a comparison of ``w``, as the FFT and
    Winograd methods' cached weight transforms do, not the refill of ``T``'s values (an
    integer-index gather over its stored entries, paid when ``w`` changes). ``dw`` runs one
    block of rows per sample, each a gather, a product, a sum and a ``bincount``.
    """
    x = spec.batch * spec.in_channels * math.prod(spec.input_size)
    xp = spec.batch * spec.in_channels * math.prod(spec.padded_size)
    y = math.prod(spec.output_shape)
    entries = y * (spec.in_channels // spec.groups) * math.prod(spec.kernel_size)
    stored = entries // max(spec.batch, 1)  # T's entries: one sample's products
    padding = terms.sparse(x)  # the padding matrix's product: one stored entry per input value
    if pass_ == "backward_weight":
        steps = -(-math.prod(spec.output_shape[1:]) // _rows_per_step(spec))
        return {"pad": padding + terms.copy(x + xp), "pack": terms.fancy(entries) + (steps - 1) * terms.call,
                "product": terms.passes(entries, 3) + terms.sparse(stored) + 3 * steps * terms.call}
    refill = terms.passes(math.prod(spec.w_shape), 2)  # w compared with the one T was built from
    if pass_ == "backward_input":
        return {"pack": terms.copy(y), "transform_weight": refill, "product": terms.sparse(entries),
                "unpack": padding + terms.copy(x + xp + x)}
    return {"pad": padding + terms.copy(x + xp), "transform_weight": refill, "product": terms.sparse(entries),
            "unpack": terms.copy(2 * y)}
