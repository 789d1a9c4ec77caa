"""The convolution as a matrix: T·P against the plan, P's adjoint, and the circulant spectrum."""

import numpy as np
import pytest
import scipy.fft
import scipy.sparse

import convlab as cl
from convlab.operators import circulant_eigenvalues, conv_matrix, padding_matrix
from convlab.padding import pad, pad_adjoint
from convlab.tolerances import assert_close

MODES = sorted(cl.padding.PADDING_MODES)


def _plan(x_shape, w_shape, **params):
    return cl.plan(x_shape, w_shape, np.float64, method="direct", **params)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 4, 11), (6, 2, 3), dict(padding=((1, 3),), stride=2, dilation=2, groups=2)),
    ((2, 4, 7, 6), (6, 2, 3, 2), dict(padding=((2, 1), (0, 1)), stride=(2, 1), dilation=(1, 2), groups=2)),
    ((1, 2, 4, 5, 3), (2, 1, 2, 3, 2), dict(padding=1, stride=(1, 2, 1), groups=2)),
])
def test_conv_matrix_reproduces_the_plan(mode, x_shape, w_shape, params):
    p = _plan(x_shape, w_shape, padding_mode=mode, **params)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    m = conv_matrix(p, w)
    assert scipy.sparse.issparse(m) and m.shape == (np.prod(p.output_shape), np.prod(x_shape))
    assert_close(m @ x.ravel(), p.forward(x, w).ravel(), np.float64)
    # the transpose is the input gradient, as the toeplitz method's backward assumes
    gy = rng.standard_normal(p.output_shape)
    assert_close(m.T @ gy.ravel(), p.backward_input(gy, w).ravel(), np.float64)
    assert np.array_equal(conv_matrix(p, w, dense=True), m.toarray())


@pytest.mark.parametrize("mode", MODES)
def test_padding_matrix_is_pad_and_its_transpose_the_adjoint(mode):
    p = _plan((1, 3, 5, 4), (1, 3, 3, 3), padding=((2, 1), (3, 0)), padding_mode=mode)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(p.x_shape[1:])
    g = rng.standard_normal((3, *p.padded_size))
    pm = padding_matrix(p)
    assert np.array_equal(pm @ x.ravel(), pad(x, p.padding, mode).ravel())
    assert_close(pm.T @ g.ravel(), pad_adjoint(g, p.padding, mode).ravel(), np.float64)


def test_circular_same_plan_is_block_circulant():
    """Each (row block, column block) of T·P depends only on their difference mod n."""
    n = (5, 4)
    p = _plan((1, 1, *n), (1, 1, 3, 2), padding="same", padding_mode="circular")
    c = conv_matrix(p, np.random.default_rng(2).standard_normal((1, 1, 3, 2)), dense=True)
    blocks = c.reshape(n[0], n[1], n[0], n[1])
    for i in range(n[0]):
        for j in range(n[0]):
            block = blocks[i, :, j, :]
            assert np.array_equal(block, blocks[0, :, (j - i) % n[0], :])
            for r in range(n[1]):
                assert np.array_equal(block[r], np.roll(block[0], r))


def _dft_matrix(size):
    """The N-D DFT matrix acting on C-order ravels: ``F[a, b] = exp(-2πi a·b/n)``, Kronecker over axes."""
    f = np.ones((1, 1))
    for n in size:
        f = np.kron(f, scipy.fft.fft(np.eye(n), axis=0))
    return f


@pytest.mark.parametrize("kernel, size", [
    ((3,), (8,)), ((4,), (7,)), ((1,), (5,)), ((7,), (7,)),
    ((3, 3), (6, 5)), ((2, 4), (5, 6)), ((3, 2), (3, 4)),
])
def test_dft_diagonalises_the_circulant_matrix(kernel, size):
    """Space versus frequency: F·C·F⁻¹ is diagonal, its diagonal the DFT of the reversed kernel."""
    w = np.random.default_rng(3).standard_normal(kernel)
    p = _plan((1, 1, *size), (1, 1, *kernel), padding="same", padding_mode="circular")
    c = conv_matrix(p, w.reshape(1, 1, *kernel), dense=True)
    assert p.output_size == size
    f = _dft_matrix(size)
    d = f @ c @ np.linalg.inv(f)
    lam = circulant_eigenvalues(w, size)
    assert lam.shape == size
    scale = np.abs(lam).max()
    np.testing.assert_allclose(np.diag(d), lam.ravel(), atol=1e-12 * scale * c.shape[0])
    np.testing.assert_allclose(d - np.diag(np.diag(d)), 0, atol=1e-12 * scale * c.shape[0])


def test_eigenvalues_give_circular_correlation_through_the_fft():
    """The same fact used as an algorithm: y = ifft(λ · fft(x))."""
    rng = np.random.default_rng(4)
    w, x = rng.standard_normal((3, 4)), rng.standard_normal((9, 8))
    p = _plan((1, 1, 9, 8), (1, 1, 3, 4), padding="same", padding_mode="circular")
    y = scipy.fft.ifftn(circulant_eigenvalues(w, (9, 8)) * scipy.fft.fftn(x)).real
    assert_close(y, p.forward(x[None, None], w[None, None])[0, 0], np.float64)


def test_memory_guard_refuses_before_building():
    p = cl.plan((1, 8, 64, 64), (8, 8, 5, 5), np.float32, padding=2, method="direct", workspace_limit=2**20)
    with pytest.raises(cl.WorkspaceLimitError, match="workspace limit") as info:
        conv_matrix(p, np.zeros(p.w_shape, np.float32))
    assert info.value.needed > info.value.limit == 2**20
    # the refusal names what refused (building T), not the plan's method, and lists no methods:
    # conv_matrix is not a method, so "methods that fit" would not be an alternative to it
    assert info.value.method == "toeplitz" and info.value.fitting is None


def test_bad_arguments_are_named():
    p = _plan((1, 1, 6), (1, 1, 3))
    with pytest.raises(cl.ConvError, match="w must have shape"):
        conv_matrix(p, np.zeros((1, 1, 4)))
    with pytest.raises(cl.ConvError, match="input_size"):
        circulant_eigenvalues(np.ones(5), 4)
    with pytest.raises(cl.ConvError, match="axes"):
        circulant_eigenvalues(np.ones((1, 1, 1, 1)), 4)
