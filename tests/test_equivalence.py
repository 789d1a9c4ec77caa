"""Every registered method against the direct reference and PyTorch, forward and backward.

A method joins these tests by being registered; nothing here names one
except the reference.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import convlab as cl
from convlab.tolerances import assert_close
from tests.cases import CASES, case_strategy
from tests.equivalence import assert_matches, check_against_direct, reference, run_method
from tests.oracles import requires_torch, torch_conv

METHODS = cl.methods()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_direct(method, case):
    check_against_direct(method, case)  # a refusal is checked to name the method


@requires_torch
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_torch(method, case):
    x, w, b, gy = case.arrays(seed=1)
    got = run_method(method, case, x, w, b, gy)
    if got is None:
        pytest.skip(f"{method} does not support {case.id} (test_matches_direct checks the refusal)")
    assert_matches(method, case, got, torch_conv(case, x, w, b, gy), "torch")


@pytest.mark.parametrize("method", METHODS)
def test_each_method_supports_most_cases(method):
    """A method that declared every case unsupported would pass the tests above vacuously."""
    supported = 0
    for case in CASES:
        try:
            cl.plan(case.x_shape, case.w_shape, case.dtype, method=method, **case.params)
            supported += 1
        except cl.UnsupportedPlanError:
            pass
    assert supported >= 5, f"{method} supports only {supported} of {len(CASES)} shared cases"


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=case_strategy())
def test_random_cases(method, case):
    x, w, b, gy = case.arrays(seed=2)
    got = run_method(method, case, x, w, b, gy)
    if got is not None:
        assert_matches(method, case, got, reference(case, x, w, b, gy), "direct(float64)")


@requires_torch
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=case_strategy())
def test_direct_random_cases_match_torch(case):
    x, w, b, gy = case.arrays(seed=3)
    assert_matches("direct", case, run_method("direct", case, x, w, b, gy), torch_conv(case, x, w, b, gy), "torch")


@pytest.mark.parametrize("method", METHODS)
def test_inputs_unchanged_and_views_accepted(method):
    """Non-contiguous, negatively strided inputs work and are never written to."""
    rng = np.random.default_rng(4)
    base_x = rng.standard_normal((9, 11, 3, 2))
    x = np.moveaxis(base_x, (2, 3), (1, 0))[:, :, ::-1, 1:]  # (2, 3, 9, 10), non-contiguous, reversed
    w = rng.standard_normal((3, 4, 3, 6))[:, :3, :, ::2].transpose(1, 0, 2, 3)[:4]  # (3, 3, 3, 3) view
    b = rng.standard_normal(6)[::2]
    copies = [a.copy() for a in (x, w, b)]
    params = dict(stride=(1, 2), padding=((1, 0), (2, 1)), padding_mode="reflect")
    try:
        y = cl.conv(x, w, b, method=method, **params)
    except cl.UnsupportedPlanError:
        params = dict(padding=1)
        y = cl.conv(x, w, b, method=method, **params)
    gy = rng.standard_normal(y.shape)[..., ::-1]
    gy_copy = gy.copy()
    g = cl.conv_backward(gy, x, w, method=method, **params)
    for original, copy in zip((x, w, b, gy), (*copies, gy_copy)):
        np.testing.assert_array_equal(original, copy)
    ref_params = dict(params, method="direct")
    assert_close(y, cl.conv(np.ascontiguousarray(x), w.copy(), b.copy(), **ref_params), np.float64, method)
    ref = cl.conv_backward(gy.copy(), np.ascontiguousarray(x), w.copy(), **ref_params)
    for a, e in zip(g, ref):
        assert_close(a, e, np.float64, method)


# Parameter sets for the non-finite test, most general first; a method runs the first it supports.
_NONFINITE_PARAMS = [
    dict(kernel=(4, 3), stride=(2, 1), padding=2, dilation=(1, 2)),
    dict(kernel=(3, 3), stride=1, padding=1, dilation=1),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_spoils_only_touching_windows(method, bad):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 24, 20))
    x[1, 0, 7, 3] = bad
    x[0, 1, 20, 15] = np.nan
    for params in _NONFINITE_PARAMS:
        params = dict(params)
        w = rng.standard_normal((3, 2, *params.pop("kernel")))
        try:
            y = cl.conv(x, w, method=method, **params)
            break
        except cl.UnsupportedPlanError:
            continue
    else:
        raise AssertionError(f"{method} supports none of the non-finite test's parameter sets")
    # Which outputs touch a non-finite input, worked out from indicator arrays alone.
    touched = cl.conv((~np.isfinite(x)).astype(np.float64), np.ones_like(w), method="direct", **params) > 0
    assert touched.any() and not touched.all()
    assert np.array_equal(~np.isfinite(y), touched)
    finite = np.where(np.isfinite(x), x, 0.0)
    expected = cl.conv(finite, w, method="direct", **params)
    assert_close(np.where(touched, 0, y), np.where(touched, 0, expected), np.float64, method)
