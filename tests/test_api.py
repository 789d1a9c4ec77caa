"""The functional API and plans: semantics beyond the equivalence suite."""

import threading

import numpy as np
import pytest
import scipy.signal

import convlab as cl
from convlab.tolerances import assert_close
from tests.cases import Case
from tests.oracles import requires_torch, torch


def test_plan_attributes():
    p = cl.plan((2, 4, 10, 9), (6, 2, 3, 2), np.float32, stride=(2, 1), padding="full", dilation=(1, 3),
                groups=2, padding_mode="zeros", method="direct")
    assert p.padding == ((2, 2), (3, 3))
    assert p.output_shape == (2, 6, 6, 12)
    assert p.method == "direct" and p.dtype == np.float32 and p.ndim == 2
    assert p.flops == 2 * 2 * 6 * int(np.prod(p.output_shape))


@pytest.mark.parametrize("k, d", [(2, 1), (3, 1), (4, 2), (3, 3)])
def test_same_puts_the_odd_pad_at_the_end(k, d):
    p = cl.plan((1, 1, 10), (1, 1, k), padding="same", dilation=d)
    total = d * (k - 1)
    assert p.padding == ((total // 2, total - total // 2),) and p.output_shape == (1, 1, 10)


@pytest.mark.parametrize("dtypes, expected", [
    (("float32", "float32"), np.float32), (("float32", "float64"), np.float64),
    (("int64", "int64"), np.float64), (("bool", "int32"), np.float64), (("float16", "float16"), np.float32),
    (("int8", "float32"), np.float32),
])
def test_result_dtype(dtypes, expected):
    x = np.ones((1, 2, 5, 5), dtypes[0])
    w = np.ones((3, 2, 3, 3), dtypes[1])
    y = cl.conv(x, w)
    assert y.dtype == expected
    np.testing.assert_array_equal(y, np.full((1, 3, 3, 3), 18.0))


def test_integers_compute_exactly_in_float64():
    x = np.full((1, 1, 4), 2**40, np.int64)
    w = np.array([[[3, 5]]])
    assert cl.conv(x, w)[0, 0, 0] == 8 * 2**40


def test_backward_is_named_tuple_with_db():
    g = cl.conv_backward(np.ones((1, 2, 3)), np.ones((1, 1, 5)), np.ones((2, 1, 3)))
    assert g._fields == ("dx", "dw", "db")
    np.testing.assert_array_equal(g.db, [3.0, 3.0])


def test_convolve_flips_the_kernel_like_scipy():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((13, 11)), rng.standard_normal((4, 3))
    for mode in ("valid", "full"):
        got = cl.convolve(x[None, None], w[None, None], padding=mode)[0, 0]
        assert_close(got, scipy.signal.convolve(x, w, mode=mode, method="direct"), np.float64)


@requires_torch
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 2), (3, 2, 2, 2, 1), (1, 1, 1, 2, 2), (2, 0, 1, 3, 1),
])
def test_conv_transpose_matches_torch(ndim, stride, padding, output_padding, dilation, groups):
    tf = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
          3: torch.nn.functional.conv_transpose3d}[ndim]
    rng = np.random.default_rng(ndim)
    x = rng.standard_normal((2, 4) + (5,) * ndim)
    w = rng.standard_normal((4, 3) + (3,) * ndim)
    b = rng.standard_normal(3 * groups)
    got = cl.conv_transpose(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
                            dilation=dilation, groups=groups)
    expected = tf(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride, padding=padding,
                  output_padding=output_padding, dilation=dilation, groups=groups).numpy()
    assert_close(got, expected, np.float64)


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(x), y> == <x, conv_transpose(y)> for the same w, stride, padding, dilation."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 4, 11, 10)), rng.standard_normal((6, 2, 3, 2))
    params = dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2)
    y = cl.conv(x, w, **params)
    gy = rng.standard_normal(y.shape)
    extra = tuple(n - o for n, o in zip(x.shape[2:], cl.conv_transpose(gy, w, **params).shape[2:]))
    xt = cl.conv_transpose(gy, w, output_padding=extra, **params)
    np.testing.assert_allclose(np.vdot(y, gy), np.vdot(x, xt), rtol=1e-12)


def test_methods_registry():
    names = cl.methods()
    assert names[0] == "direct" and len(set(names)) == len(names)
    assert all(cl.get_method(n).name == n for n in names)


def test_functional_api_reuses_plans():
    x, w = np.ones((1, 1, 9)), np.ones((1, 1, 3))
    from convlab.api import cached_plan
    assert cached_plan(x.shape, w.shape, np.float64, padding=[1]) is cached_plan(x.shape, w.shape, np.float64,
                                                                                  padding=(1,))


def test_plan_is_safe_to_share_between_threads():
    case = Case((2, 3, 12, 12), (4, 3, 3, 3), padding=1)
    x, w, b, gy = case.arrays()
    results, errors = [], []
    for name in cl.methods():
        p = cl.plan(case.x_shape, case.w_shape, method=name, padding=1)
        expected = cl.conv(x, w, b, padding=1, method="direct")

        def work():
            try:
                for _ in range(5):
                    results.append(cl.tolerances.relative_error(p.forward(x, w, b), expected))
            except Exception as exc:  # reported below; a thread's exception is otherwise lost
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(results) == 40 * len(cl.methods()) and max(results) < 1e-10


@pytest.mark.parametrize("name, good, bad", [("stride", 1, True), ("stride", 1, 1.0), ("padding", (1, 1), (1.0, 1)),
                                             ("dilation", 2, 2.0), ("groups", 1, True)])
def test_a_cached_plan_never_answers_a_value_the_validation_refuses(name, good, bad):
    # True == 1 == 1.0 and they hash alike: a plan cache keyed by value alone would hand the plan of
    # `good` to `bad` and skip the error
    x, w = np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3))
    cl.conv(x, w, **{name: good})
    with pytest.raises(cl.ConvTypeError, match=name):
        cl.conv(x, w, **{name: bad})
