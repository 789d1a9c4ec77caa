"""Finite-difference checks of the backward pass of every method, in float64."""

import numpy as np
import pytest

import convlab as cl
from tests.cases import Case

CASES = [
    Case((2, 4, 7), (4, 2, 3), stride=2, padding=((2, 1),), dilation=2, groups=2, padding_mode="reflect"),
    Case((1, 2, 6, 7), (3, 2, 3, 2), stride=(1, 2), padding=(1, 2), padding_mode="circular"),
    Case((1, 2, 6, 5), (2, 1, 2, 3), padding="same", groups=2, padding_mode="replicate"),
    Case((1, 1, 4, 5, 4), (2, 1, 2, 2, 3), stride=(2, 1, 1), padding=1, dilation=(1, 2, 1)),
    Case((1, 2, 6, 6), (2, 2, 3, 3), padding=1),
]


def _loss(p, x, w, b, gy):
    return float(np.vdot(gy, p.forward(x, w, b)))


@pytest.mark.parametrize("method", cl.methods())
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_backward_matches_finite_differences(method, case):
    """Directional derivatives along random directions, central differences (exact up to rounding:
    the loss is linear in each argument)."""
    try:
        p = cl.plan(case.x_shape, case.w_shape, method=method, **case.params)
    except cl.UnsupportedPlanError as exc:
        pytest.skip(str(exc))  # the refusal itself is checked by test_equivalence
    x, w, b, gy = case.arrays(seed=11)
    dx, dw, db = p.backward(gy, x, w)
    rng = np.random.default_rng(12)
    eps = 1e-3
    for name, grad in (("x", dx), ("w", dw), ("b", db)):
        args = dict(x=x, w=w, b=b)
        direction = rng.standard_normal(args[name].shape)
        plus = dict(args, **{name: args[name] + eps * direction})
        minus = dict(args, **{name: args[name] - eps * direction})
        numeric = (_loss(p, plus["x"], plus["w"], plus["b"], gy) - _loss(p, minus["x"], minus["w"], minus["b"], gy))
        numeric /= 2 * eps
        np.testing.assert_allclose(np.vdot(grad, direction), numeric, rtol=1e-7, atol=1e-9,
                                   err_msg=f"d/d{name} of method {method}")
