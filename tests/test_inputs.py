"""PyTorch's input range in cl.conv and friends: complex, empty, unbatched and exact integer inputs.

Oracles: PyTorch (complex forward, complex gradients by autograd, empty and
unbatched shapes, int64 convolution) and exact integer arithmetic by numpy.
"""

import numpy as np
import pytest

import convlab as cl
from convlab.algorithms.base import EXACT_INTEGER_LIMIT, ROUNDED_BOUND
from convlab.tolerances import assert_close

METHODS = cl.methods()
RNG = np.random.default_rng(15)


def _complex(shape, dtype=np.complex128):
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(dtype)


def _torch_conv(torch, x, w, b=None, **params):
    fn = {3: torch.nn.functional.conv1d, 4: torch.nn.functional.conv2d, 5: torch.nn.functional.conv3d}[w.ndim]
    return fn(torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b), **params)


# --------------------------------------------------------------- complex
@pytest.mark.parametrize("method", METHODS)
def test_complex_forward_and_gradients_match_torch(method):
    torch = pytest.importorskip("torch")
    params = dict(padding=1, groups=2)
    x, w, b = _complex((2, 4, 7, 6)), _complex((6, 2, 3, 3)), _complex(6)
    y = cl.conv(x, w, b, method=method, **params)
    assert y.dtype == np.complex128
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **params)
    assert_close(y, ty.detach().numpy(), np.float64, method)
    g = _complex(y.shape)
    ty.backward(torch.from_numpy(g))
    dx, dw, db = cl.conv_backward(g, x, w, method=method, **params)
    for mine, theirs, what in ((dx, tx.grad, "dx"), (dw, tw.grad, "dw"), (db, tb.grad, "db")):
        assert mine.dtype == np.complex128
        assert_close(mine, theirs.numpy(), np.float64, method, what=what)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_complex_with_real_mixes_and_complex64(method):
    torch = pytest.importorskip("torch")
    x, w = _complex((1, 2, 9), np.complex64), RNG.standard_normal((3, 2, 4)).astype(np.float32)
    y = cl.conv(x, w, stride=2, padding="full", method=method)
    assert y.dtype == np.complex64
    expected = _torch_conv(torch, x, w.astype(np.complex64), stride=2, padding=3).numpy()
    assert_close(y, expected, np.float32, method)
    # a real x with complex w, in float64: complex128
    xr = RNG.standard_normal((1, 2, 9))
    wc = _complex((3, 2, 4))
    assert_close(cl.conv(xr, wc, method=method), _torch_conv(torch, xr.astype(complex), wc).numpy(),
                 np.float64, method)


def test_complex_conv_transpose_matches_torch():
    torch = pytest.importorskip("torch")
    x, w = _complex((2, 4, 5, 5)), _complex((4, 3, 3, 3))
    for method in ("direct", "fft", "im2col"):
        y = cl.conv_transpose(x, w, stride=2, padding=1, output_padding=1, method=method)
        ty = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1,
                                                  output_padding=1)
        assert_close(y, ty.numpy(), np.float64, method)


def test_complex_plans_and_inputs_are_not_modified():
    x, w = _complex((1, 1, 8)), _complex((1, 1, 3))
    saved = x.copy(), w.copy()
    p = cl.plan(x.shape, w.shape, np.complex64, method="winograd")
    assert p.spec.is_complex and p.dtype == np.float32 and p.spec.result_dtype == np.complex64
    assert p.forward(x, w).dtype == np.complex64
    assert np.array_equal(x, saved[0]) and np.array_equal(w, saved[1])
    with pytest.raises(TypeError, match=r"x is complex .* this plan is real"):
        cl.plan(x.shape, w.shape, method="direct").forward(x, w)


# --------------------------------------------------------------- empty
@pytest.mark.parametrize("x_shape, w_shape, groups", [
    ((0, 2, 5, 5), (3, 2, 3, 3), 1),
    ((0, 4, 6), (4, 2, 3), 2),
])
def test_empty_batch_matches_torch(x_shape, w_shape, groups):
    torch = pytest.importorskip("torch")
    x, w, b = np.zeros(x_shape), np.ones(w_shape), np.ones(w_shape[0])
    expected = _torch_conv(torch, x, w, b, groups=groups).numpy()
    for method in ("auto", *METHODS):
        if method == "winograd" and len(x_shape) == 3:
            continue  # not an empty-input question: winograd's own 1-D support is tested elsewhere
        y = cl.conv(x, w, b, groups=groups, method=method)
        assert y.shape == expected.shape and y.dtype == np.float64
        dx, dw, db = cl.conv_backward(np.zeros(y.shape), x, w, groups=groups, method=method)
        assert dx.shape == x.shape and dw.shape == w.shape and not dw.any() and not db.any()


def test_empty_channels_are_empty_sums():
    # PyTorch returns shape (N, 0, ...) for C_in = 0; the sum over no channels is 0, so convlab returns
    # (N, C_out, ...) of bias, the shape the output-size formula gives (documented in docs/methods.md)
    y = cl.conv(np.zeros((2, 0, 5, 5)), np.ones((3, 0, 3, 3)), np.arange(3.0), method="fft")
    assert y.shape == (2, 3, 3, 3) and np.array_equal(y[1, :, 2, 2], [0.0, 1.0, 2.0])
    assert cl.conv(np.ones((2, 4, 5)), np.ones((0, 2, 3)), groups=2).shape == (2, 0, 3)
    assert cl.conv_transpose(np.zeros((0, 2, 5)), np.ones((2, 3, 3))).shape == (0, 3, 7)


# --------------------------------------------------------------- unbatched
def test_unbatched_inputs_match_torch():
    torch = pytest.importorskip("torch")
    x, w, b = RNG.standard_normal((4, 9, 8)), RNG.standard_normal((6, 2, 3, 3)), RNG.standard_normal(6)
    y = cl.conv2d(x, w, b, groups=2, stride=2, method="im2col")
    expected = _torch_conv(torch, x, w, b, groups=2, stride=2).numpy()
    assert y.shape == expected.shape == (6, 4, 3)
    assert_close(y, expected, np.float64)
    dx, dw, db = cl.conv_backward(np.ones(y.shape), x, w, groups=2, stride=2, method="fft")
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (6,)
    assert_close(dx, cl.conv_backward(np.ones((1, *y.shape)), x[None], w, groups=2, stride=2).dx[0], np.float64)
    yt = cl.conv_transpose(x[:, :5, 0], RNG.standard_normal((4, 3, 2)), stride=2, output_size=(11,))
    assert yt.shape == (3, 11)
    with pytest.raises(ValueError, match="looks unbatched"):
        cl.plan((4, 9, 8), (6, 2, 3, 3), groups=2)


# --------------------------------------------------------------- exact integers
@pytest.mark.parametrize("method", METHODS)
def test_integer_inputs_give_exact_integers_from_every_method(method):
    x = RNG.integers(-1000, 1000, (2, 3, 12, 11))
    w = RNG.integers(-50, 50, (4, 3, 3, 3)).astype(np.int32)
    b = np.arange(4, dtype=np.int16)
    y = cl.conv(x, w, b, padding=1, method=method)
    # exact oracle: integer arithmetic in int64 (|y| < 1000 * 50 * 27 fits easily)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)]), (3, 3),
                                                       axis=(2, 3))
    exact = np.einsum("nchwij,ocij->nohw", windows, w.astype(np.int64)) + b[:, None, None]
    assert y.dtype == np.float64 and np.array_equal(y, exact)
    g = RNG.integers(-3, 4, y.shape)
    dx, dw, _ = cl.conv_backward(g, x, w, padding=1, method=method)
    assert np.array_equal(dw, np.einsum("nohw,nchwij->ocij", g, windows))
    assert np.array_equal(dx, np.rint(dx)) and np.array_equal(dx, cl.conv_backward(g, x, w, padding=1,
                                                                                     method="direct").dx)


def test_bool_and_int_match_torch_int64():
    torch = pytest.importorskip("torch")
    x, w = RNG.integers(0, 2, (1, 2, 9, 9)).astype(bool), RNG.integers(-9, 9, (3, 2, 4, 4))
    expected = _torch_conv(torch, x.astype(np.int64), w).numpy()
    for method in ("fft", "winograd", "fft_tiled"):
        assert np.array_equal(cl.conv(x, w, method=method), expected)


@pytest.mark.parametrize("method", ["fft", "winograd", "fft_tiled"])
def test_large_integers_beyond_the_rounding_bound_are_computed_exactly(method):
    # the bound max|x| * sum|w| is above ROUNDED_BOUND: an inexact method could miss by one, so direct runs
    big = 2 ** 40
    assert big * 3 > ROUNDED_BOUND and big * 9 < EXACT_INTEGER_LIMIT
    x3 = np.array([[[big, 1, big - 1, 3, 2 ** 35 + 7, 5, 1, 1]]], np.int64)
    w = np.array([[[1, -1, 1]]], np.int64)
    exact = x3[..., :-2] - x3[..., 1:-1] + x3[..., 2:]
    y = cl.conv(x3, w, method=method)
    assert np.array_equal(y, exact) and y.dtype == np.float64


def test_integer_results_beyond_float64_integers_raise():
    x = np.full((1, 1, 4), 2 ** 52, np.int64)
    with pytest.raises(ValueError, match=r"integer inputs: forward results may reach .* 2\*\*53"):
        cl.conv(x, np.ones((1, 1, 2), np.int64), method="im2col")
    # float inputs of the same values round as floats do: no error
    assert cl.conv(x.astype(float), np.ones((1, 1, 2)), method="im2col").dtype == np.float64
