"""A convolution as an explicit linear operator: sparse matrices and circulant spectra.

A convolution plan is a linear map of its input, so it has a matrix. This
module builds it, for one sample, as the product of two sparse matrices::

    y[n].ravel() == T @ P @ x[n].ravel()

``P`` (``C_in·prod(padded) × C_in·prod(n)``) pads: row ``(c, i)`` of the
padded input reads the input position :func:`convlab.padding.source_index`
gives for the plan's ``padding_mode`` (an empty row for a zero). It is the
Kronecker product ``I_C ⊗ P_1 ⊗ … ⊗ P_d`` of one gather matrix per axis.

``T`` (``C_out·prod(out) × C_in·prod(padded)``) is the valid strided,
dilated, grouped cross-correlation of the padded input. Row ``(o, p)`` holds
``w[o, c, k]`` in column ``(g·C_in/G + c, s·p + d·k)`` for every input channel
``c`` of the group ``g`` of ``o`` and every kernel offset ``k``: a Toeplitz
matrix in 1-D, block Toeplitz with Toeplitz blocks in 2-D, triply block
Toeplitz in 3-D, block sparse over channels (zero blocks between groups).
Its sparsity pattern depends only on the plan; the map from its stored
entries to the kernel entries they hold is kept so that new weights only
refill ``T.data``.

With ``padding_mode="circular"`` and "same" padding ``T @ P`` is the (doubly,
triply) block-circulant matrix of circular cross-correlation, which the
N-D DFT diagonalises; :func:`circulant_eigenvalues` gives its eigenvalues.
"""

import math

import numpy as np
import scipy.fft
import scipy.sparse

from .errors import ConvError, WorkspaceLimitError
from .padding import source_index

__all__ = ["conv_matrix", "padding_matrix", "circulant_eigenvalues", "toeplitz_nbytes"]

_INT32_MAX = np.iinfo(np.int32).max


# --------------------------------------------------------------- sizes
def _counts(plan):
    """``(rows, cols, nnz)`` of the per-sample ``T`` of ``plan``."""
    g = plan.groups
    rows = plan.out_channels * math.prod(plan.output_size)
    cols = plan.in_channels * math.prod(plan.padded_size)
    nnz = rows * (plan.in_channels // g) * math.prod(plan.kernel_size)
    return rows, cols, nnz


def _index_dtype(*extents):
    """int32 when every index and count fits in it (what scipy.sparse prefers), else int64."""
    return np.dtype(np.int32) if max(extents) <= _INT32_MAX else np.dtype(np.int64)


def toeplitz_nbytes(plan):
    """Bytes of the per-sample operator ``T`` and ``P`` of ``plan``, without building them.

    Counts ``T``'s values, column indices and row pointers, the map from its
    stored entries to kernel entries (same integer type as the indices), and
    ``P``'s values and indices.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((1, 1, 8), (1, 1, 3), np.float64, method="direct")
    >>> toeplitz_nbytes(p)  # T: 18 x (8+4+4) + 7 x 4 bytes; P: 8 x (8+4) + 9 x 4 bytes
    448
    """
    rows, cols, nnz = _counts(plan)
    index = _index_dtype(nnz, cols).itemsize
    t_bytes = nnz * (plan.dtype.itemsize + 2 * index) + (rows + 1) * index
    p_nnz = plan.in_channels * math.prod(plan.padded_size)  # an upper bound (zeros mode has fewer)
    p_index = _index_dtype(p_nnz).itemsize
    p_bytes = p_nnz * (plan.dtype.itemsize + p_index) + (p_nnz + 1) * p_index
    return t_bytes + p_bytes


def _guard(spec, needed, what):
    """Raise :class:`WorkspaceLimitError` when building ``what`` would need more than the workspace limit."""
    if needed > spec.limit:
        raise WorkspaceLimitError(what, needed, spec.limit)


# --------------------------------------------------------------- the sparsity pattern of T
def _spatial_offsets(plan):
    """``(prod(out), prod(k))`` flat padded-input offsets read by each output position and kernel offset."""
    strides = np.cumprod((1,) + plan.padded_size[:0:-1])[::-1]  # C-order strides of the padded grid
    base = np.zeros(1, np.int64)
    reach = np.zeros(1, np.int64)
    for size, k, s, d, step in zip(plan.output_size, plan.kernel_size, plan.stride, plan.dilation, strides):
        base = (base[:, None] + np.arange(size) * s * step).ravel()
        reach = (reach[:, None] + np.arange(k) * d * step).ravel()
    return base[:, None] + reach[None, :]


def toeplitz_pattern(plan):
    """The sparsity pattern of ``T`` for ``plan`` (built once per plan, then cached).

    Returns
    -------
    indptr, indices : ndarray of int
        CSR row pointers and column indices of ``T``, sorted, no duplicates.
    kernel_index : ndarray of int, shape (nnz,)
        Flat index into ``w.ravel()`` of the weight each stored entry holds:
        ``T.data == w.ravel()[kernel_index]``.
    shape : (int, int)

    Raises
    ------
    WorkspaceLimitError
        When :func:`toeplitz_nbytes` exceeds ``plan.limit``; nothing is built.
    """
    return plan.cached(("operators", "toeplitz_pattern"), lambda: _build_pattern(plan))


def _build_pattern(plan):
    _guard(plan, toeplitz_nbytes(plan), "toeplitz")
    rows, cols, nnz = _counts(plan)
    index = _index_dtype(nnz, cols)
    g = plan.groups
    c_out, c_in = plan.out_channels // g, plan.in_channels // g
    k = math.prod(plan.kernel_size)
    spatial = _spatial_offsets(plan).astype(index)                        # (P, K)
    channel = (np.arange(plan.in_channels, dtype=index) * math.prod(plan.padded_size)).reshape(g, c_in)
    # Entry order (group, out channel, out position, in channel, kernel offset): rows in order and,
    # within a row, columns increasing (channel blocks, then offsets in C order), so CSR is canonical.
    indices = np.empty((g, c_out, spatial.shape[0], c_in, k), index)
    indices[...] = channel[:, None, None, :, None] + spatial[None, None, :, None, :]
    kernel_index = np.empty_like(indices)
    kernel_index[...] = np.arange(plan.out_channels * c_in * k, dtype=index).reshape(g, c_out, 1, c_in, k)
    indptr = np.arange(0, nnz + 1, c_in * k, dtype=index)
    for array in (indptr, indices, kernel_index):
        array.flags.writeable = False  # shared by every call (and thread) using this plan
    return indptr, indices.ravel(), kernel_index.ravel(), (rows, cols)


def toeplitz_operator(plan, w):
    """``T`` of ``plan`` with the values of ``w`` (the pattern comes from the plan's cache).

    Parameters
    ----------
    plan : ConvPlan
    w : ndarray, shape ``plan.w_shape``, dtype ``plan.dtype``

    Returns
    -------
    scipy.sparse.csr_matrix, shape ``(C_out·prod(out), C_in·prod(padded))``
    """
    indptr, indices, kernel_index, shape = toeplitz_pattern(plan)
    data = np.ravel(w).take(kernel_index)
    t = scipy.sparse.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    t.has_sorted_indices = True  # true by construction; stops scipy from re-sorting shared arrays
    t.has_canonical_format = True
    return t


# --------------------------------------------------------------- padding
def _axis_padding(n, lo, hi, mode, dtype):
    """The ``(lo + n + hi) × n`` gather matrix of one axis."""
    source = source_index(n, lo, hi, mode)
    rows = np.flatnonzero(source >= 0)
    return scipy.sparse.csr_matrix((np.ones(rows.size, dtype), (rows, source[rows])), shape=(source.size, n))


def padding_matrix(plan):
    """The sparse padding operator ``P`` of ``plan``, for one sample.

    ``P @ x[n].ravel() == pad(x[n]).ravel()`` for the plan's padding and
    ``padding_mode``; ``P.T`` is the exact adjoint used by the backward pass.

    Parameters
    ----------
    plan : ConvPlan

    Returns
    -------
    scipy.sparse.csr_matrix, shape ``(C_in·prod(padded), C_in·prod(input_size))``
        ``I_C ⊗ P_1 ⊗ … ⊗ P_d``, one 0/1 gather matrix per spatial axis.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((1, 1, 3), (1, 1, 3), np.float64, padding=1, padding_mode="circular", method="direct")
    >>> padding_matrix(p).toarray()
    array([[0., 0., 1.],
           [1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.],
           [1., 0., 0.]])
    """
    def build():
        factors = [scipy.sparse.identity(plan.in_channels, plan.dtype, format="csr")]
        factors += [_axis_padding(n, lo, hi, plan.padding_mode, plan.dtype)
                    for n, (lo, hi) in zip(plan.input_size, plan.padding)]
        p = factors[0]
        for factor in factors[1:]:
            p = scipy.sparse.kron(p, factor, format="csr")
        p.sort_indices()
        return p

    return plan.cached(("operators", "padding_matrix"), build)


# --------------------------------------------------------------- public operator
def conv_matrix(plan, w, *, dense=False):
    """The matrix ``M`` of the convolution ``plan`` runs: ``conv(x).ravel() == M @ x.ravel()``.

    ``M = I_N ⊗ (T @ P)``: the per-sample operator ``T @ P`` (padding
    included, whatever the ``padding_mode``) repeated along the diagonal for
    each of the ``N`` samples (``M`` is ``T @ P`` itself when ``N == 1``).
    Bias is not included.

    Parameters
    ----------
    plan : ConvPlan
        Any plan; its method plays no part.
    w : array_like, shape ``plan.w_shape``
    dense : bool, default False
        Return a dense ndarray instead (only sensible for small problems).

    Returns
    -------
    scipy.sparse.csr_matrix or ndarray, shape ``(prod(output_shape), prod(x_shape))``, dtype ``plan.dtype``

    Raises
    ------
    WorkspaceLimitError
        When the sparse (or, with ``dense=True``, the dense) matrix would
        exceed the plan's workspace limit.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((1, 1, 4), (1, 1, 2), np.float64, method="direct")
    >>> conv_matrix(p, np.array([[[1.0, 2.0]]]), dense=True)
    array([[1., 2., 0., 0.],
           [0., 1., 2., 0.],
           [0., 0., 1., 2.]])
    >>> x = np.arange(4.0).reshape(1, 1, 4)
    >>> np.allclose(conv_matrix(p, np.array([[[1.0, 2.0]]])) @ x.ravel(), p.forward(x, [[[1.0, 2.0]]]).ravel())
    True
    """
    w = np.asarray(w)
    if w.shape != tuple(plan.w_shape):
        raise ConvError(f"w must have shape {plan.w_shape} for this plan, but got {w.shape}")
    w = w.astype(plan.dtype, copy=False)
    if dense:
        dense_bytes = math.prod(plan.output_shape) * math.prod(plan.x_shape) * plan.dtype.itemsize
        _guard(plan, dense_bytes, "conv_matrix(dense=True)")
    m = (toeplitz_operator(plan, w) @ padding_matrix(plan)).tocsr()
    if plan.batch > 1:
        m = scipy.sparse.kron(scipy.sparse.identity(plan.batch, plan.dtype), m, format="csr")
    return m.toarray() if dense else m


def circulant_eigenvalues(w, input_size):
    """Eigenvalues of the block-circulant matrix of circular cross-correlation with ``w``.

    ``C`` is :func:`conv_matrix` of a single-channel plan on a periodic
    signal of shape ``input_size`` with ``padding="same"`` (``lo = (k-1)//2``,
    ``hi = k - 1 - lo`` per axis, as :func:`convlab.plan`) and
    ``padding_mode="circular"``::

        y[i] = sum_j w[j] x[(i - lo + j) mod n]         (C-order ravel in N-D)

    ``C`` is circulant (doubly block circulant in 2-D): ``C[i, m] = c[(m - i) mod n]``.
    With ``F`` the DFT matrix ``F[a, b] = exp(-2πi a·b / n)`` (numpy's and
    scipy's forward FFT, unnormalised; in N-D the Kronecker product of the
    per-axis matrices, matching the C-order ravel), the columns of ``F⁻¹``
    are eigenvectors of ``C`` and ``F @ C @ inv(F) == diag(λ)`` with

        λ = fftn(r),   r[m] = w[lo - m mod n]:

    the DFT of the kernel index-reversed (correlation is convolution with the
    flipped kernel), zero-padded to ``input_size`` and rolled by ``-hi`` so
    the tap that multiplies ``x[i]`` sits at index 0.

    Parameters
    ----------
    w : array_like, shape ``(*k)``
        A single-channel kernel with 1, 2 or 3 axes, ``k <= input_size`` per axis.
    input_size : int or tuple of int
        ``n``, the shape of the periodic signal (one entry per axis of ``w``).

    Returns
    -------
    ndarray of complex, shape ``input_size``
        ``λ`` such that ``(F C F⁻¹).diagonal() == λ.ravel()``.

    Examples
    --------
    >>> lam = circulant_eigenvalues([1.0, 2.0, 3.0], 4)
    >>> np.allclose(lam, [6, 2 + 2j, -2, 2 - 2j])
    True
    >>> import convlab as cl
    >>> p = cl.plan((1, 1, 4), (1, 1, 3), np.float64, padding="same", padding_mode="circular", method="direct")
    >>> c = conv_matrix(p, np.array([[[1.0, 2.0, 3.0]]]), dense=True)
    >>> f = scipy.fft.fft(np.eye(4), axis=0)
    >>> np.allclose(f @ c @ np.linalg.inv(f), np.diag(lam))
    True
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim not in (1, 2, 3):
        raise ConvError(f"w must have 1, 2 or 3 axes (a single-channel kernel), but got shape {w.shape}")
    size = (int(input_size),) * w.ndim if np.ndim(input_size) == 0 else tuple(int(n) for n in input_size)
    if len(size) != w.ndim or any(k > n for k, n in zip(w.shape, size)):
        raise ConvError(f"input_size={input_size!r} must have one entry per axis of w (shape {w.shape}) "
                        f"and be at least the kernel size in every axis")
    reversed_kernel = np.zeros(size)
    reversed_kernel[tuple(slice(0, k) for k in w.shape)] = w[(slice(None, None, -1),) * w.ndim]
    hi = tuple(k - 1 - (k - 1) // 2 for k in w.shape)
    return scipy.fft.fftn(np.roll(reversed_kernel, tuple(-h for h in hi), axis=tuple(range(w.ndim))))
