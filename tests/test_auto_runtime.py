"""method="auto" at run time: a method per pass, the accuracy rule, FFTW plan upgrades, the autotune budget."""

import os
import warnings

import numpy as np
import pytest

import convlab as cl
from convlab import fft_backends
from convlab.algorithms import PASSES, get_method, register, runnable, unregister
from convlab.algorithms.direct import Direct
from convlab.nn import Conv2d
from convlab.tolerances import assert_close, tolerance
from convlab.tuning import autotune, choose_method, predictions

PROBLEMS = [
    ((2, 4, 12, 12), (6, 4, 3, 3), dict(padding=1), np.float32),
    ((2, 6, 10, 10), (6, 2, 3, 3), dict(groups=3, stride=2), np.float64),
    ((1, 2, 40), (3, 2, 9), dict(padding="same", dilation=2), np.float64),
    ((1, 2, 6, 6, 6), (2, 2, 3, 3, 3), dict(padding=1, padding_mode="circular"), np.float32),
]


def _data(x_shape, w_shape, params, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y = cl.conv(x, w, method="direct", **params)
    return x, w, rng.standard_normal(y.shape).astype(dtype)


@pytest.fixture
def toy():
    """Register methods that run the direct method's passes but declare their own costs or error bounds."""
    names = []

    def make(name, costs, bound=None):
        def cost(self, spec, terms, pass_="forward"):
            return {"product": costs[pass_]}

        def error_bound(self, spec, pass_="forward"):
            return bound

        register(type(name, (Direct,), dict(name=name, cost=cost, error_bound=error_bound)))
        names.append(name)
        return name

    yield make
    for name in names:
        unregister(name)
    cl.api.clear_plan_cache()


@pytest.mark.parametrize("x_shape, w_shape, params, dtype", PROBLEMS)
def test_auto_picks_a_runnable_method_per_pass_and_matches_direct(x_shape, w_shape, params, dtype):
    x, w, g = _data(x_shape, w_shape, params, dtype)
    p = cl.plan(x_shape, w_shape, dtype, **params)
    assert p.backward_input_method is None and p.backward_weight_method is None  # chosen on first use
    for pass_ in PASSES:
        assert p.method_for(pass_) == choose_method(p, pass_=pass_)
        assert p.method_for(pass_) in runnable(p.spec)
    got, want = cl.conv_backward(g, x, w, **params), cl.conv_backward(g, x, w, method="direct", **params)
    for name in ("dx", "dw", "db"):
        assert_close(getattr(got, name), getattr(want, name), dtype, what=name)
    assert_close(p.forward(x, w), cl.conv(x, w, method="direct", **params), dtype, what="y")


@pytest.mark.parametrize("method", ["im2col", "fft", "direct"])
def test_a_named_method_runs_all_three_passes(method):
    p = cl.plan((2, 4, 12, 12), (6, 4, 3, 3), np.float64, padding=1, method=method)
    assert {p.method_for(pass_) for pass_ in PASSES} == {method}
    assert p.backward_methods == (method, method)
    assert p.with_method("direct").backward_methods == ("direct", "direct")


def test_each_pass_takes_the_method_cheapest_for_it(toy):
    toy("cheap_dw", dict(forward=1.0, backward_input=1.0, backward_weight=1e-12))
    toy("cheap_dx", dict(forward=1.0, backward_input=1e-12, backward_weight=1.0))
    x, w, g = _data((2, 3, 9, 9), (4, 3, 3, 3), {}, np.float64)
    p = cl.plan(x.shape, w.shape, np.float64)
    assert p.method not in ("cheap_dw", "cheap_dx")
    assert p.backward_methods == ("cheap_dx", "cheap_dw")
    grads = cl.conv_backward(g, x, w)
    assert_close(grads.dw, cl.conv_backward(g, x, w, method="direct").dw, np.float64, what="dw")


def test_nn_layers_choose_backward_methods_per_pass(toy):
    toy("cheap_dw", dict(forward=1.0, backward_input=1.0, backward_weight=1e-12))
    layer = Conv2d(3, 4, 3, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 9))
    y = layer(x)
    layer.backward(np.ones_like(y))
    (p,) = layer.plans
    assert p.method_for("backward_weight") == "cheap_dw" and p.method != "cheap_dw"
    layer.method = "im2col"  # a named method fixes all three passes again
    layer(x)
    assert layer.plans[-1].backward_methods == ("im2col", "im2col")


def test_auto_never_picks_a_method_whose_error_bound_exceeds_the_tolerance(toy):
    toy("fast_but_loose", dict(forward=1e-12, backward_input=1e-12, backward_weight=1e-12), bound=1.0)
    s = cl.spec((2, 3, 9, 9), (4, 3, 3, 3), np.float32)
    ranked = {r.method: r for r in predictions(s)}
    assert ranked["fast_but_loose"].seconds is None
    assert "error bound" in ranked["fast_but_loose"].reason
    for pass_ in PASSES:
        assert choose_method(s, pass_=pass_) != "fast_but_loose"
    # named explicitly, it runs, silently: the bound is a worst case for comparable-magnitude data
    x, w, _ = _data((2, 3, 9, 9), (4, 3, 3, 3), {}, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = cl.conv(x, w, method="fast_but_loose")
    assert_close(y, cl.conv(x, w, method="direct"), np.float32)


@pytest.mark.parametrize("x_shape, w_shape, params, dtype", PROBLEMS)
def test_every_pick_is_within_its_declared_error_bound(x_shape, w_shape, params, dtype):
    s = cl.spec(x_shape, w_shape, dtype, **params)
    for pass_ in PASSES:
        impl = get_method(choose_method(s, pass_=pass_))
        bound = impl.error_bound(impl.inner_spec(s), pass_)
        assert bound is None or bound <= tolerance(dtype)


def test_winograd_bound_refuses_huge_channel_sums_in_float32_only():
    wide = dict(x_shape=(1, 20000, 8, 8), w_shape=(1, 20000, 3, 3))
    winograd = get_method("winograd")
    assert "float32 tolerance" in winograd.accuracy_reason(cl.spec(dtype=np.float32, **wide))
    assert winograd.accuracy_reason(cl.spec(dtype=np.float64, **wide)) is None
    assert winograd.accuracy_reason(cl.spec((8, 256, 58, 58), (256, 256, 3, 3), np.float32)) is None


@pytest.mark.parametrize("method", ["winograd", "fft", "fft_tiled"])
def test_declared_bounds_hold_on_random_data(method):
    x, w, g = _data((2, 32, 18, 18), (8, 32, 3, 3), {}, np.float64, seed=3)
    ref = cl.conv_backward(g, x, w, method="direct")
    y_ref = cl.conv(x, w, method="direct")
    p = cl.plan(x.shape, w.shape, np.float32, method=method)
    impl = get_method(method)
    f32 = [a.astype(np.float32) for a in (x, w, g)]
    results = dict(forward=(p.forward(f32[0], f32[1]), y_ref),
                   backward_input=(p.backward_input(f32[2], f32[1]), ref.dx),
                   backward_weight=(p.backward_weight(f32[2], f32[0]), ref.dw))
    for pass_, (got, want) in results.items():
        err = cl.tolerances.relative_error(got, want)
        assert err <= impl.error_bound(p.inner, pass_), pass_


def test_pass_names_are_checked():
    with pytest.raises(cl.ConvError, match="pass_ must be one of"):
        cl.plan((1, 1, 8), (1, 1, 3)).method_for("backward")
    with pytest.raises(cl.ConvError, match="pass_ must be one of"):
        choose_method(cl.spec((1, 1, 8), (1, 1, 3)), pass_="dx")


# --------------------------------------------------------------- autotune per pass and within a budget
@pytest.fixture
def isolated_autotune(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path))
    old = cl.set_autotune(False, persist=False)
    autotune.clear_autotune_cache()
    yield
    cl.set_autotune(old, persist=False, budget=cl.config.DEFAULT_AUTOTUNE_BUDGET)
    autotune.clear_autotune_cache()


def test_autotune_times_each_pass_separately(isolated_autotune, monkeypatch):
    fastest = dict(forward="direct", backward_input="im2col", backward_weight="fft")
    timed = []

    def scripted(spec, pass_="forward"):
        timed.append(pass_)
        return {name: (0.5 if name == fastest[pass_] else 1.0) for name in runnable(spec)}

    monkeypatch.setattr(autotune, "_measure", scripted)
    p = cl.plan((2, 4, 12, 12), (4, 4, 3, 3), padding=1, autotune=True)
    assert timed == ["forward"]  # the backward passes are tuned on first use only
    assert p.backward_methods == ("im2col", "fft")
    assert timed == ["forward", "backward_input", "backward_weight"]
    assert autotune.measured_seconds(p, "backward_weight")["fft"] == 0.5
    assert cl.plan((2, 4, 12, 12), (4, 4, 3, 3), padding=1, autotune=True).backward_methods == ("im2col", "fft")
    assert len(timed) == 3  # cached per problem and pass


def test_autotune_stops_warming_candidates_when_the_budget_is_spent(isolated_autotune, monkeypatch):
    now, calls = [0.0], []

    def run(name):
        def call():
            calls.append(name)
            now[0] += 1.0
        return call

    cl.set_autotune(False, budget=2.5)
    seconds = autotune._time_candidates({name: run(name) for name in "abcd"}, clock=lambda: now[0])
    assert list(seconds) == ["a", "b", "c"]  # d would have started after 3 s of a 2.5 s budget
    assert calls == ["a", "b", "c", "a", "b", "c"]  # one warm-up each, then one round (the budget is spent)
    with pytest.raises(cl.ConvError, match="budget"):
        cl.set_autotune(True, budget=0)


def test_autotune_says_when_it_takes_long(isolated_autotune, monkeypatch, capsys, caplog):
    monkeypatch.setattr(autotune, "PROGRESS_AFTER_S", 0.0)
    caplog.set_level("INFO", logger="convlab.tuning")
    cl.plan((1, 1, 16), (1, 1, 3), autotune=True)
    said = caplog.text + capsys.readouterr().err  # the logger when logging is set up (pytest does), else stderr
    assert "autotuned forward of x (1, 1, 16)" in said


# --------------------------------------------------------------- FFTW: estimate first, measured when repeated
def test_fftw_plans_are_measured_in_the_background_from_the_third_call():
    pytest.importorskip("pyfftw")
    shape = (3, 37, 43)  # a shape no other test plans, so FFTW has no wisdom for it yet
    backend = fft_backends.FFTBackend("pyfftw", 1, "FFTW_MEASURE")
    a = np.random.default_rng(0).standard_normal(shape)
    t = backend.real_transform(shape, 2, np.float64)
    assert t.plan_kind() == "scipy"  # no measuring on the first call
    for _ in range(fft_backends.UPGRADE_AFTER_CALLS):
        spectrum = np.array(t.forward(a.copy()))
        np.testing.assert_allclose(spectrum, np.fft.rfftn(a, axes=(1, 2)), rtol=1e-12, atol=1e-10)
    assert fft_backends.wait_for_plans(timeout=120)
    assert t.plan_kind() == "FFTW_MEASURE" and t.plan_kind("FFTW_BACKWARD") == "FFTW_MEASURE"
    np.testing.assert_allclose(t.forward(a.copy()), np.fft.rfftn(a, axes=(1, 2)), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(t.inverse(np.fft.rfftn(a, axes=(1, 2))), a * 37 * 43, rtol=1e-12, atol=1e-9)
    # the wisdom now known gives a new transform of the shape its measured plan at once
    assert backend.real_transform(shape, 2, np.float64).plan_kind() == "FFTW_MEASURE"
    estimate = fft_backends.FFTBackend("pyfftw", 1, "FFTW_ESTIMATE").real_transform((2, 29), 1, np.float64)
    assert estimate.plan_kind() == "FFTW_ESTIMATE"


# --------------------------------------------------------------- threads when other processes share the cores
def test_thread_policy_uses_one_thread_for_small_passes_and_on_busy_cores(monkeypatch):
    from threadpoolctl import threadpool_info

    from convlab import threads

    assert threads.call_threads(threads.SMALL_FLOPS / 2) == 1
    with cl.num_threads(2):
        monkeypatch.setattr(threads._load, "busy_elsewhere", lambda: 0.0)
        monkeypatch.setattr(threads, "_cores", lambda: 2)
        assert threads.call_threads(1e12) == 2  # idle: the knob's count
        monkeypatch.setattr(threads._load, "busy_elsewhere", lambda: 2.0)
        assert threads.call_threads(1e12) == 1  # both cores busy elsewhere: one thread
        before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        with threads.blas_threads_for(1e12) as n:
            assert n == 1
            assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
        assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before  # restored


def test_the_load_sampler_reads_a_plausible_count():
    from convlab import threads

    assert 0.0 <= threads._load.busy_elsewhere() <= (os.cpu_count() or 1) + 1


# --------------------------------------------------------------- per-call costs
def test_one_thread_runs_a_parallel_kernels_serial_twin_under_its_own_cache_name():
    from convlab.kernels import _runtime, call_limit

    @_runtime.njit(parallel=True)
    def doubled(a, out):
        for i in range(a.shape[0]):
            out[i] = 2 * a[i]

    a = np.arange(5.0)
    with call_limit(1):  # the policy's cap for small passes
        out = np.empty(5)
        doubled(a, out)
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    # one thread never launched (nor compiled) the parallel loop; the twin is cached apart from it
    assert doubled.dispatcher is None and doubled.serial is not None
    assert doubled.serial.py_func.__qualname__ != doubled.fn.__qualname__


def test_spec_geometry_and_workspace_verdicts_follow_the_limit():
    from convlab.algorithms import verdict

    s = cl.spec((4, 2, 10, 10), (3, 2, 3, 3), padding=1)
    assert s.output_shape == (4, 3, 10, 10) and s.output_shape is s.output_shape  # computed once
    assert verdict(s, "im2col").ok
    with cl.workspace_limit(64):  # the kept verdict is per limit: a lower limit refuses
        assert not verdict(s, "im2col").ok
    assert verdict(s, "im2col").ok
