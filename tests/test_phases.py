"""Every built-in method marks the phases of its passes (:mod:`convlab.phases`), and marks nothing when off.

For each method, each of its code paths the suite can reach cheaply and each
pass: the phases recorded are names from the shared vocabulary, include the
arithmetic core (``product``), and add up to no more than the wall time of
the call (phases do not nest, so no time is counted twice). With no
recorder active, no timing object is made at all.
"""

import threading
import time

import numpy as np
import pytest

import convlab as cl
from convlab import phases

CASES = [
    # method, x_shape, w_shape, options
    ("direct", (2, 3, 9, 8), (3, 1, 3, 3), {"groups": 3, "padding": 1}),        # compiled loop nest
    ("direct", (2, 4, 9, 8), (5, 4, 3, 3), {"padding": 1}),                     # per-offset GEMMs
    ("im2col", (2, 4, 9, 8), (5, 4, 3, 3), {"padding": 1}),
    ("im2col", (2, 4, 9, 8), (5, 4, 3, 3), {"padding": 1, "workspace_limit": 12000}),  # chunked
    ("im2col", (2, 4, 9, 8), (5, 4, 1, 1), {}),                                 # pointwise: no buffer
    ("toeplitz", (2, 3, 7, 6), (4, 3, 3, 3), {"padding": 1}),
    ("fft", (2, 3, 12, 10), (4, 3, 5, 5), {"padding": 2}),
    ("fft_tiled", (2, 3, 40, 36), (4, 3, 5, 5), {"padding": 2}),
    ("winograd", (2, 4, 13, 11), (6, 4, 3, 3), {"padding": 1}),
    ("winograd", (2, 4, 13, 11), (4, 1, 3, 3), {"padding": 1, "groups": 4}),   # depthwise
]
PASSES = ("forward", "backward_input", "backward_weight")


def _setup(method, x_shape, w_shape, options):
    p = cl.plan(x_shape, w_shape, np.float64, method=method, **options)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    gy = rng.standard_normal(p.output_shape)
    calls = {"forward": lambda: p.forward(x, w), "backward_input": lambda: p.backward_input(gy, w),
             "backward_weight": lambda: p.backward_weight(gy, x)}
    return p, calls


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2]}-{sorted(c[3])}")
def test_each_pass_records_vocabulary_phases_within_its_wall_time(case):
    p, calls = _setup(*case)
    assert p.method == case[0]
    for name in PASSES:
        calls[name]()  # first call: compiles kernels and builds per-plan caches outside the timing
        start = time.perf_counter()
        with phases.record() as times:
            calls[name]()
        wall = time.perf_counter() - start
        assert set(times) <= set(phases.PHASES), (name, sorted(times))
        assert "product" in times, (name, sorted(times))
        assert all(t >= 0 for t in times.values())
        assert sum(times.values()) <= wall, (name, times, wall)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2]}-{sorted(c[3])}")
def test_without_a_recorder_nothing_is_timed_or_kept(case, monkeypatch):
    _, calls = _setup(*case)

    class Forbidden:
        def __init__(self, *args):
            raise AssertionError("a phase was timed with no recorder active")

    monkeypatch.setattr(phases, "_Timed", Forbidden)
    for name in PASSES:
        calls[name]()
    # and a recorder in one thread never collects another thread's phases
    monkeypatch.undo()
    with phases.record() as times:
        worker = threading.Thread(target=calls["forward"])
        worker.start()
        worker.join()
    assert times == {}
