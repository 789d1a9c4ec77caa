"""The shared equivalence checks: a method against the float64 direct reference, forward and backward.

Used by ``test_equivalence`` for every registered method, and by ``test_architecture`` to show
that a newly registered method joins them.
"""

import numpy as np

import convlab as cl
from convlab.tolerances import assert_close


def run_method(method, case, x, w, b, gy):
    """``y, dx, dw, db`` by ``method``, or ``None`` when it declares the plan unsupported."""
    try:
        p = cl.plan(case.x_shape, case.w_shape, case.dtype, method=method, **case.params)
    except cl.UnsupportedPlanError:
        return None
    y = p.forward(x, w, b)
    dx, dw, db = p.backward(gy, x, w)
    for name, value, shape in (("y", y, p.output_shape), ("dx", dx, x.shape), ("dw", dw, w.shape)):
        assert value.shape == shape, f"{method}: {name} shape {value.shape} != {shape}"
        assert value.dtype == np.dtype(case.dtype), f"{method}: {name} dtype {value.dtype} != {case.dtype}"
    return y, dx, dw, db


def reference(case, x, w, b, gy):
    """The direct method in float64 on the same (possibly float32-rounded) inputs."""
    p = cl.plan(case.x_shape, case.w_shape, np.float64, method="direct", **case.params)
    x, w, gy = (a.astype(np.float64) for a in (x, w, gy))
    b = None if b is None else b.astype(np.float64)
    return (p.forward(x, w, b), *p.backward(gy, x, w))


def assert_matches(method, case, got, expected, oracle):
    for what, a, e in zip(("y", "dx", "dw", "db"), got, expected):
        assert_close(a, e, case.dtype, method, what=f"{method} {what} vs {oracle} [{case.id}]")


def check_against_direct(method, case, seed=0):
    """Run ``method`` on ``case`` and compare y, dx, dw, db with the reference; ``False`` when the
    method declares the case unsupported (and then the refusal is checked to name it)."""
    x, w, b, gy = case.arrays(seed=seed) if seed else case.arrays()
    got = run_method(method, case, x, w, b, gy)
    if got is None:
        try:
            cl.conv(x, w, b, method=method, **case.params)
        except cl.UnsupportedPlanError as exc:
            assert method in str(exc)
            return False
        raise AssertionError(f"{method} refused to plan {case.id} but cl.conv ran it")
    assert_matches(method, case, got, reference(case, x, w, b, gy), "direct(float64)")
    return True
