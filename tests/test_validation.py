"""Bad input raises ConvError (a ValueError) or ConvTypeError (a TypeError) naming the parameter."""

import numpy as np
import pytest

import convlab as cl
from convlab.tolerances import assert_close

X = np.zeros((2, 4, 8, 8))
W = np.zeros((6, 2, 3, 3))


def _conv(**overrides):
    args = dict(x=X, w=W, bias=None, groups=2)
    args.update(overrides)
    return cl.conv(args.pop("x"), args.pop("w"), args.pop("bias"), **args)


BAD_INPUTS = [
    # (overrides, exception, words the message must contain)
    (dict(x=np.zeros((8, 8))), ValueError, ["x", "(8, 8)", "3, 4 or 5"]),
    (dict(x=np.zeros((1, 1, 1, 1, 1, 4))), ValueError, ["x", "3, 4 or 5"]),
    (dict(w=np.zeros((6, 2, 3))), ValueError, ["w", "4 dimensions"]),
    (dict(w=np.zeros((6, 3, 3, 3))), ValueError, ["w.shape[1]=3", "C_in/groups"]),
    (dict(groups=3), ValueError, ["groups=3", "C_in=4"]),
    (dict(w=np.zeros((5, 2, 3, 3))), ValueError, ["groups=2", "C_out=5"]),
    (dict(groups=0), ValueError, ["groups=0", ">= 1"]),
    (dict(groups=2.0), TypeError, ["groups", "2.0"]),
    (dict(stride=0), ValueError, ["stride=0", ">= 1"]),
    (dict(stride=(1, 2, 1)), ValueError, ["stride=(1, 2, 1)", "spatial dim"]),
    (dict(stride="2"), TypeError, ["stride", "'2'"]),
    (dict(dilation=-1), ValueError, ["dilation=-1", ">= 1"]),
    (dict(dilation=(1, 0)), ValueError, ["dilation=(1, 0)"]),
    (dict(padding=-1), ValueError, ["padding=-1", "non-negative"]),
    (dict(padding=((1, -2), 0)), ValueError, ["padding", "non-negative"]),
    (dict(padding=(1, 1, 1)), ValueError, ["padding=(1, 1, 1)", "spatial dim"]),
    (dict(padding=((1, 2, 3), 0)), TypeError, ["padding", "(before, after)"]),
    (dict(padding="half"), ValueError, ["padding", "'half'", "same"]),
    (dict(padding=1.5), TypeError, ["padding", "1.5"]),
    (dict(padding="same", stride=2), ValueError, ["padding='same'", "stride"]),
    (dict(w=np.zeros((6, 2, 9, 3))), ValueError, ["kernel size 9", "padded input size 8"]),
    (dict(dilation=4), ValueError, ["dilation 4", "spans 9"]),
    (dict(method="fastest"), ValueError, ["method", "'fastest'", "'direct'", "'auto'"]),
    (dict(method=3), TypeError, ["method", "3"]),
    (dict(padding_mode="mirror"), ValueError, ["padding_mode", "'mirror'", "reflect"]),
    (dict(padding_mode="reflect", padding=8), ValueError, ["padding", "reflect", "input size 8"]),
    (dict(padding_mode="circular", padding=9), ValueError, ["padding", "circular", "input size 8"]),
    (dict(bias=np.zeros(5)), ValueError, ["bias", "(6,)", "(5,)"]),
    (dict(bias=np.zeros((6, 1))), ValueError, ["bias", "(6,)"]),
    (dict(x=np.array([["a"]])), TypeError, ["x", "numeric", "<U1"]),
    (dict(w=np.zeros((6, 2, 3, 3), np.clongdouble)), TypeError, ["dtype", "complex128"]),
    (dict(x=None), TypeError, ["x", "None"]),
    (dict(x=np.zeros((2, 4, 0, 8))), ValueError, ["x shape", "spatial size >= 1"]),
    (dict(w=np.zeros((6, 2, 3, 0))), ValueError, ["w shape", "kernel size >= 1"]),
    (dict(x=np.zeros((2, 4, 8, 8), np.longdouble)), TypeError, ["dtype", "float32, float64"]),
]


@pytest.mark.parametrize("overrides, exc, words", BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_names_parameter(overrides, exc, words):
    with pytest.raises(exc) as info:
        _conv(**overrides)
    for word in words:
        assert word in str(info.value), f"{word!r} not in message {str(info.value)!r}"


def test_error_classes():
    assert issubclass(cl.ConvError, ValueError) and issubclass(cl.ConvTypeError, TypeError)
    assert issubclass(cl.UnsupportedPlanError, cl.ConvError)
    assert issubclass(cl.WorkspaceLimitError, MemoryError)


def test_dimensionality_wrappers_check_ndim():
    with pytest.raises(ValueError, match=r"conv1d expects x .* 1 spatial dim"):
        cl.conv1d(X, W)
    with pytest.raises(ValueError, match=r"conv3d expects x .* 3 spatial dim"):
        cl.conv3d(X, W)
    assert cl.conv2d(X, W, groups=2).shape == (2, 6, 6, 6)


def test_plan_checks_arrays_against_its_shapes():
    p = cl.plan(X.shape, W.shape, groups=2, method="direct")
    with pytest.raises(ValueError, match=r"x must have shape \(2, 4, 8, 8\).*\(2, 4, 8, 9\)"):
        p.forward(np.zeros((2, 4, 8, 9)), W)
    with pytest.raises(ValueError, match="grad_y must have shape"):
        p.backward(np.zeros((2, 6, 5, 5)), X, W)
    with pytest.raises(TypeError, match="x_shape must be a tuple of ints"):
        cl.plan("2,4,8,8", W.shape)


def test_workspace_limit_validation():
    with pytest.raises(ValueError, match="workspace_limit=0"):
        cl.plan(X.shape, W.shape, groups=2, workspace_limit=0)
    with pytest.raises(TypeError, match="workspace_limit"):
        cl.set_workspace_limit("1GB")


def test_direct_refuses_over_the_limit_and_names_what_fits():
    p = cl.plan(X.shape, W.shape, groups=2, method="direct", workspace_limit=64)
    with pytest.raises(cl.WorkspaceLimitError, match=r"method='direct' needs .* limit is"):
        p.forward(X, W)


def test_conv_transpose_validation():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match="output_padding=2 must be smaller than stride or dilation"):
        cl.conv_transpose(x, np.zeros((2, 3, 3, 3)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"x.shape\[1\]=2 must equal w.shape\[0\]=3"):
        cl.conv_transpose(x, np.zeros((3, 3, 3, 3)))
    with pytest.raises(ValueError, match="bias must have shape"):
        cl.conv_transpose(x, np.zeros((2, 3, 3, 3)), bias=np.zeros(2))


# --------------------------------------------------------------- arguments named in every error
@pytest.mark.parametrize("call, exception, words", [
    (lambda: cl.conv([[[1.0, 2.0], [3.0]]], np.ones((1, 1, 1))), ValueError, ["x", "ragged"]),
    (lambda: _conv(padding_mode={}), ValueError, ["padding_mode", "{}", "zeros"]),
    (lambda: _conv(padding_mode="reflekt"), ValueError, ["padding_mode", "'reflekt'", "reflect"]),
    (lambda: cl.choose_method("x"), TypeError, ["problem", "'x'", "ConvSpec"]),
    (lambda: cl.explain(None), TypeError, ["plan", "None", "ConvPlan"]),
    (lambda: cl.padding.pad(np.ones((2, 3)), [(1, 1)], "reflekt"), ValueError, ["padding_mode", "'reflekt'"]),
    (lambda: cl.plan((1, 1, 8), (1, 1, 3), autotune="yes"), TypeError, ["autotune", "'yes'"]),
    (lambda: cl.set_workspace_limit(True), TypeError, ["workspace_limit", "True"]),
])
def test_every_refusal_names_the_argument(call, exception, words):
    with pytest.raises(exception) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_a_tensor_that_requires_grad_is_refused_by_name():
    torch = pytest.importorskip("torch")
    x = torch.ones((1, 1, 8), dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match="x is a tensor that requires grad"):
        cl.conv(x, np.ones((1, 1, 3)))


# --------------------------------------------------------------- numerics near the top of the range
@pytest.mark.parametrize("method", ["fft", "fft_tiled", "winograd"])
@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e36), (np.float64, 1e305)])
def test_transforms_never_overflow_where_the_direct_sum_does_not(method, dtype, scale):
    """Values whose direct sums are finite, but whose transforms (sums of many of them) overflow."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(0.5, 1.0, (1, 1, 24, 24)) * scale).astype(dtype)
    w = rng.uniform(-1.0, 1.0, (1, 1, 5, 5)).astype(dtype) / 4
    expected = cl.conv(x.astype(np.float64), w.astype(np.float64), method="direct")
    assert np.isfinite(cl.conv(x, w, method="direct")).all()  # the premise: direct stays finite
    got = cl.conv(x, w, method=method)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected.astype(dtype), rtol=1e-3 if dtype == np.float32 else 1e-9,
                               atol=float(scale) * 1e-3)
    g = cl.conv_backward(np.ones_like(got), x, w, method=method)
    assert np.isfinite(g.dw).all() == np.isfinite(cl.conv_backward(np.ones_like(got), x, w, method="direct").dw).all()


@pytest.mark.parametrize("method", ["fft", "fft_tiled", "winograd"])
def test_infinity_stays_infinity_as_in_direct(method):
    x = np.ones((1, 1, 12, 12))
    x[0, 0, 5, 5] = np.inf
    w = np.full((1, 1, 3, 3), 0.5)
    expected = cl.conv(x, w, method="direct")
    got = cl.conv(x, w, method=method)
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12)


def test_auto_refusal_names_the_problem_and_every_methods_reason():
    with pytest.raises(cl.WorkspaceLimitError) as info:
        cl.plan((2, 8, 64, 64), (8, 8, 5, 5), stride=2, workspace_limit=16)
    message = str(info.value)
    assert "method='auto'" in message and "x (2, 8, 64, 64), w (8, 8, 5, 5)" in message and "stride=(2, 2)" in message
    for name in cl.methods():
        assert f"{name}: " in message  # winograd's reason is its stride, the others' their workspace
    assert "Winograd tiles need stride 1" in message
    assert info.value.needed > info.value.limit == 16 and info.value.method in cl.methods()


@pytest.mark.parametrize("method", ["fft", "fft_tiled", "winograd"])
@pytest.mark.parametrize("dtype, huge", [(np.float32, 1e30), (np.float64, 1e200)])
def test_one_huge_value_does_not_spoil_outputs_far_from_it(method, dtype, huge):
    """A transform's error is relative to the largest value it mixes; an outlier's outputs are summed directly."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((1, 2, 40, 40)).astype(dtype)
    x[0, 1, 6, 7] = huge
    w = rng.standard_normal((3, 2, 5, 5)).astype(dtype)
    expected = cl.conv(x.astype(np.float64), w.astype(np.float64), method="direct")
    got = cl.conv(x, w, padding=0, method=method)
    far = (slice(None), slice(None), slice(12, None), slice(12, None))  # windows that miss (6, 7)
    assert_close(got[far], expected[far], dtype, method, what="outputs far from the outlier")
    assert_close(got, expected, dtype, method)
    # backward: an outlier in grad_y (dx) or in x (dw) runs the pass directly
    g = rng.standard_normal(got.shape).astype(dtype)
    g[0, 0, 30, 30] = huge
    dx = cl.conv_backward(g, x, w, method=method).dx
    dx_ref = cl.conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), method="direct").dx
    assert_close(dx[:, :, :20, :20], dx_ref[:, :, :20, :20], dtype, method, what="dx far from the outlier")
