"""convlab.harness: the stopwatch's statistic on fake clocks, the probes, and the Case record."""

import numpy as np
import pytest

import convlab as cl
from convlab import harness
from convlab.case import Case
from convlab.harness import summarize, time_call, time_interleaved


class FakeMachine:
    """A clock that only advances when a fake callable runs: each call costs a scripted time."""

    def __init__(self):
        self.now = 0.0
        self.log = []

    def clock(self):
        return self.now

    def callable(self, name, costs):
        """A callable whose n-th call takes ``costs[n]`` seconds (the last repeats)."""
        calls = []

        def fn():
            self.now += costs[min(len(calls), len(costs) - 1)]
            calls.append(1)
            self.log.append(name)

        fn.calls = calls
        return fn


def test_median_and_quartiles_of_the_samples():
    t = summarize([5.0, 1.0, 4.0, 2.0, 3.0], loops=7)
    assert (t.median, t.q1, t.q3, t.iqr, t.loops) == (3.0, 2.0, 4.0, 2.0, 7)
    assert t.samples == (5.0, 1.0, 4.0, 2.0, 3.0)  # kept in the order taken
    assert t.to_dict() == {"median_s": 3.0, "q1_s": 2.0, "q3_s": 4.0, "samples_s": [5.0, 1.0, 4.0, 2.0, 3.0],
                           "loops": 7}


def test_median_ignores_one_outlier_sample():
    m = FakeMachine()
    # warm-up 10 s, probe 1 s, then samples of 1, 1, 50 (a hiccup), 1, 1 s
    fn = m.callable("a", [10.0, 1.0, 1.0, 1.0, 50.0, 1.0, 1.0])
    t = time_interleaved({"a": fn}, repeats=5, warmup=1, min_sample_s=0.0, clock=m.clock)["a"]
    assert t.samples == (1.0, 1.0, 50.0, 1.0, 1.0) and t.median == 1.0 and t.q3 == 1.0


def test_inner_loop_reaches_the_minimum_sample_duration():
    m = FakeMachine()
    fast = m.callable("fast", [0.001])
    t = time_interleaved({"fast": fast}, repeats=3, warmup=2, min_sample_s=0.0105, clock=m.clock)["fast"]
    assert t.loops == 11  # ceil(0.0105 / 0.001)
    assert len(fast.calls) == 2 + 1 + 3 * 11  # warm-up, probe, three samples of 11 calls
    assert t.median == pytest.approx(0.001)


def test_inner_loop_is_capped():
    m = FakeMachine()
    fn = m.callable("tiny", [1e-12])
    t = time_interleaved({"tiny": fn}, repeats=1, warmup=0, min_sample_s=1.0, max_loops=50, clock=m.clock)["tiny"]
    assert t.loops == 50


def test_known_call_seconds_skip_the_probe():
    m = FakeMachine()
    fn = m.callable("a", [0.5])
    t = time_interleaved({"a": fn}, repeats=2, warmup=0, min_sample_s=2.0, call_seconds={"a": 1.0},
                         clock=m.clock)["a"]
    assert t.loops == 2 and len(fn.calls) == 2 * 2  # no probe call; loops from the given 1 s


def test_rounds_are_interleaved_and_rotated():
    m = FakeMachine()
    fns = {name: m.callable(name, [1.0]) for name in "abc"}
    time_interleaved(fns, repeats=3, warmup=0, min_sample_s=0.0, clock=m.clock)
    rounds = m.log[3:]  # after the three probe calls
    assert rounds == list("abc") + list("bca") + list("cab")


def test_settle_calls_are_untimed_and_precede_each_sample():
    """A first call that pays for another library's spinning pool (10 s here) is never a sample."""
    m = FakeMachine()
    fns = {"a": m.callable("a", [1.0, 10.0, 1.0, 10.0, 1.0]), "b": m.callable("b", [1.0])}  # probe, (settle, sample) x2
    t = time_interleaved(fns, repeats=2, warmup=0, min_sample_s=0.0, settle=1, clock=m.clock)
    assert m.log[2:] == ["a", "a", "b", "b", "b", "b", "a", "a"]  # rotated rounds, each sample after one settle
    assert t["a"].samples == (1.0, 1.0)


def test_settle_must_be_a_count():
    with pytest.raises(ValueError, match="settle must be an int >= 0, but got -1"):
        time_interleaved({"a": lambda: None}, settle=-1)


def test_drift_hits_every_callable_alike():
    """A machine that slows down over time: interleaving keeps two equal callables equal."""
    m = FakeMachine()
    slowdown = iter(np.linspace(1.0, 3.0, 1000))

    def drifting(name):
        def fn():
            m.now += next(slowdown)
        return fn

    t = time_interleaved({"a": drifting("a"), "b": drifting("b")}, repeats=8, warmup=0, min_sample_s=0.0,
                         clock=m.clock)
    assert abs(t["a"].median - t["b"].median) < 0.01 * t["a"].median


def test_time_limit_stops_starting_rounds():
    m = FakeMachine()
    fn = m.callable("a", [1.0])
    t = time_interleaved({"a": fn}, repeats=100, warmup=0, min_sample_s=0.0, max_time_s=2.5, clock=m.clock)["a"]
    assert len(t.samples) == 3  # rounds start after 0, 1 and 2 s spent; at 3 s > 2.5 s none starts
    # the first round always runs, even past the limit
    m2 = FakeMachine()
    t2 = time_interleaved({"a": m2.callable("a", [5.0])}, repeats=10, warmup=0, min_sample_s=0.0, max_time_s=1.0,
                          clock=m2.clock)["a"]
    assert len(t2.samples) == 1


def test_progress_after_every_round():
    m = FakeMachine()
    seen = []
    time_interleaved({"a": m.callable("a", [1.0])}, repeats=3, warmup=0, min_sample_s=0.0, clock=m.clock,
                     progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_time_call_divides_by_the_loops():
    m = FakeMachine()
    assert time_call(m.callable("a", [0.25]), loops=4, clock=m.clock) == 0.25


@pytest.mark.parametrize("kwargs, match", [
    ({"repeats": 0}, "repeats must be an int >= 1"),
    ({"repeats": 2.0}, "repeats must be an int"),
    ({"repeats": True}, "repeats must be an int"),
    ({"warmup": -1}, "warmup must be an int >= 0"),
    ({"min_sample_s": float("nan")}, "min_sample_s must be a finite number"),
    ({"min_sample_s": -1.0}, "min_sample_s"),
    ({"max_time_s": 0}, "max_time_s"),
])
def test_bad_settings_are_refused_before_anything_runs(kwargs, match):
    calls = []
    with pytest.raises(ValueError, match=match):
        time_interleaved({"a": lambda: calls.append(1)}, **kwargs)
    assert not calls


def test_summarize_refuses_no_samples():
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_probes_are_cached_per_process():
    harness.gemm_flops.cache_clear()
    first = harness.gemm_flops("float64", 32)
    assert first > 0 and harness.gemm_flops("float64", 32) is first
    assert harness.copy_bandwidth(1 << 14) > 0


def test_thread_probe_agrees_with_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert harness.blas_threads() == (max(blas) if blas else None)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert harness.blas_threads() in (1, None)


# --------------------------------------------------------------- the Case record
def test_case_plans_and_draws_seeded_arrays():
    case = Case([1, 2, 9, 9], [3, 2, 3, 5], dtype="float64", stride=[2, 1], padding=1, name="demo")
    assert case.x_shape == (1, 2, 9, 9) and case.stride == (2, 1) and hash(case)  # lists normalised
    p = case.plan("direct")
    assert p.output_shape == (1, 3, 5, 7) and p.method == "direct"
    x, w, grad_y = case.arrays(seed=3)
    assert x.dtype == np.float64 and grad_y.shape == p.output_shape
    x32, w32, _ = case.arrays(seed=3, dtype="float32")
    assert np.array_equal(x32.astype(np.float64), x)  # same values in every dtype
    assert not np.array_equal(case.arrays(seed=4)[0], x)
    assert abs(np.std(w) * np.sqrt(2 * 3 * 5) - 1) < 0.5  # scaled by 1/sqrt(fan_in)


def test_case_validation_is_convlabs():
    with pytest.raises(cl.ConvError, match="padding_mode"):
        Case((1, 1, 8, 8), (1, 1, 3, 3), padding_mode="reflekt").plan("direct")
