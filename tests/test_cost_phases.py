"""Cost models predict by phase and by pass; the machine constants measured on the first auto choice
are cached, validated and switchable off; explain shows the phases and where each constant came from."""

import json
import math
import sys
import threading
import warnings

import numpy as np
import pytest

import convlab as cl
from convlab.algorithms import CONSTANT_NAMES, DEFAULT_CONSTANTS, PASSES, CostTerms, Method, register, unregister
from convlab.algorithms.direct import Direct
from convlab.phases import PHASES
from convlab.tuning import calibration
from convlab.tuning.calibration import QUICK_CONSTANTS, Calibration
from convlab.tuning.store import CacheWarning

SPECS = [
    dict(x_shape=(2, 8, 16, 16), w_shape=(8, 8, 3, 3), padding=1),  # a CNN layer
    dict(x_shape=(2, 8, 16, 16), w_shape=(8, 1, 3, 3), padding=1, groups=8),  # depthwise
    dict(x_shape=(2, 4, 16, 16), w_shape=(8, 4, 3, 3), stride=2, padding=1),
    dict(x_shape=(1, 1, 64), w_shape=(1, 1, 9), padding=4, padding_mode="reflect"),  # padded by the plan
    dict(x_shape=(1, 2, 8, 8, 8), w_shape=(2, 2, 3, 3, 3)),
]


@pytest.mark.parametrize("case", SPECS, ids=lambda c: "x".join(map(str, c["x_shape"])))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_method_predicts_every_pass_by_known_phases(case, dtype):
    case = dict(case)
    spec = cl.spec(case.pop("x_shape"), case.pop("w_shape"), dtype, **case)
    terms = CostTerms(DEFAULT_CONSTANTS[dtype], dtype)
    for name in cl.algorithms.runnable(spec):
        impl = cl.get_method(name)
        for pass_ in PASSES:
            phases = impl.predict_phases(spec, terms, pass_)
            assert phases and set(phases) <= set(PHASES), (name, pass_, phases)
            assert all(math.isfinite(s) and s >= 0 for s in phases.values())
            assert sum(phases.values()) > 0
            assert impl.predict_seconds(spec, terms, pass_) == pytest.approx(sum(phases.values()))
        if impl.inner_spec(spec) is not spec:  # the plan's explicit padding is priced as a pad phase
            assert impl.predict_phases(spec, terms)["pad"] > 0


def test_a_cost_model_outside_the_phase_vocabulary_is_refused():
    @register
    class Vague(Direct):
        name = "vague"

        def cost(self, spec, terms, pass_="forward"):
            return {"everything": 1.0}

    try:
        spec = cl.spec((1, 1, 8), (1, 1, 3))
        with pytest.raises(TypeError, match=r"Vague\.cost must map phases"):
            cl.get_method("vague").predict_seconds(spec, CostTerms(DEFAULT_CONSTANTS["float64"], "float64"))
    finally:
        unregister("vague")
    with pytest.raises(cl.ConvError, match="pass_ must be one of"):
        cl.get_method("direct").predict_phases(spec, CostTerms(DEFAULT_CONSTANTS["float64"], "float64"), "sideways")


def test_cost_is_part_of_the_method_contract():
    assert "pass_" in Method.cost.__code__.co_varnames


# --------------------------------------------------------------- measured on the first auto choice
# each within calibration.PLAUSIBLE_FACTOR of the built-in constant (a figure further off is taken as
# disturbed and not used) and different from it
FAKE = {"peak": 3.0e10, "bandwidth": 2.0e10, "call": 1e-6, "fft_point": 3e-10, "blas_call": 2e-6, "fft_call": 3e-6,
        "sparse_call": 4e-6}


@pytest.fixture
def measuring(tmp_path, monkeypatch):
    """A fresh cache, automatic measurement on, a quiet machine, and measure_quick replaced by a counter."""
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CONVLAB_AUTO_MEASURE", "1")
    monkeypatch.setattr(calibration, "_busy", lambda: False)
    calls = []

    def fake(dtype, budget=0.2):
        calls.append(np.dtype(dtype).name)
        return dict(FAKE, peak=FAKE["peak"] * (2 if np.dtype(dtype) == np.float32 else 1))

    monkeypatch.setattr(calibration, "measure_quick", fake)
    old = calibration.set_calibration(None)
    yield calls
    assert calibration.wait_for_measurement(timeout=30)  # none left running into another test
    calibration.set_calibration(old)


def landed():
    """The calibration once the background measurement the first choice started has landed."""
    first = calibration.get_calibration()
    assert calibration.wait_for_measurement(timeout=30)
    return first, calibration.get_calibration()


def test_the_first_choice_uses_the_defaults_and_the_measurement_lands_in_the_background(measuring, monkeypatch):
    started, release = threading.Event(), threading.Event()
    fake = calibration.measure_quick

    def slow(dtype, budget=0.2):
        started.set()
        assert release.wait(30)
        return fake(dtype, budget)

    monkeypatch.setattr(calibration, "measure_quick", slow)
    first = calibration.get_calibration()
    assert started.wait(30)  # measuring in another thread, while the first choice has its answer already
    assert first.origin("float32", "peak") == "default" and calibration.get_calibration() is first
    calibration.set_calibration(None)  # a reload while it measures starts no second measurement
    assert calibration.get_calibration() is first and not calibration.wait_for_measurement(timeout=0.01)
    release.set()
    assert calibration.wait_for_measurement(timeout=30)
    now = calibration.get_calibration()
    assert now.origin("float32", "peak") == "measured" and now.constant("float64", "peak") == FAKE["peak"]
    assert sorted(measuring) == ["float32", "float64"]  # measured once


def test_the_measurement_waits_for_the_running_passes(measuring, monkeypatch):
    monkeypatch.setattr(calibration, "QUIET_WAIT", 30.0)  # a loaded machine must not make it give up here
    with calibration.in_call():
        calibration.get_calibration()
        assert not calibration.wait_for_measurement(timeout=0.2) and not measuring  # a pass runs: it waits
    assert calibration.wait_for_measurement(timeout=30) and sorted(measuring) == ["float32", "float64"]


def test_a_process_that_never_pauses_is_not_measured(measuring, monkeypatch):
    monkeypatch.setattr(calibration, "QUIET_WAIT", 0.05)
    with calibration.in_call():
        calibration.get_calibration()
        assert calibration.wait_for_measurement(timeout=30)
    assert not measuring and calibration.get_calibration().origin("float32", "peak") == "default"
    assert calibration.load_measured() is None


def test_the_first_choice_measures_once_and_later_processes_read_the_cache(measuring, tmp_path):
    _, cal = landed()
    assert sorted(measuring) == ["float32", "float64"]
    assert cal.constant("float32", "peak") == 2 * FAKE["peak"] and cal.constant("float64", "call") == 1e-6
    assert {cal.origin("float32", n) for n in QUICK_CONSTANTS} == {"measured"}
    assert cal.origin("float32", "gemm_half") == "default"
    assert (tmp_path / calibration.MACHINE_FILE).exists()
    calibration.set_calibration(None)  # as a new process would
    again = calibration.get_calibration()
    assert len(measuring) == 2 and again.constants == cal.constants


def test_measurement_is_switchable_off(measuring, monkeypatch):
    monkeypatch.setenv("CONVLAB_AUTO_MEASURE", "0")
    assert calibration.get_calibration().source == "built-in defaults" and not measuring
    calibration.set_calibration(None)
    old = cl.config.set_auto_measure(True)  # the setting overrides the environment
    try:
        assert landed()[1].origin("float64", "peak") == "measured"
    finally:
        cl.config.set_auto_measure(old)


def test_a_busy_machine_is_not_measured(measuring, monkeypatch, tmp_path):
    monkeypatch.setattr(calibration, "_busy", lambda: True)
    cal = calibration.get_calibration()
    assert cal.origin("float32", "peak") == "default" and not measuring
    assert not (tmp_path / calibration.MACHINE_FILE).exists()


@pytest.mark.parametrize("content", ["{truncated", "[]", json.dumps({"constants": {"float32": {"peak": 0}}})])
def test_a_corrupt_measurement_record_is_ignored_with_a_warning(measuring, tmp_path, content):
    path = tmp_path / calibration.MACHINE_FILE
    if content.startswith("{\"constants"):  # stamped for this machine and code, so that it is validated
        record = dict(json.loads(content), **calibration._stamp())
        content = json.dumps(record)
    path.write_text(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = cl.conv(np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3)))  # a call is never broken by the cache
        _, cal = landed()
    assert y.shape == (1, 1, 6, 6) and cal.origin("float32", "peak") == "measured"
    assert any(issubclass(w.category, CacheWarning) and calibration.MACHINE_FILE in str(w.message) for w in caught)
    assert calibration.get_calibration().constant("float64", "peak") == FAKE["peak"]  # measured afresh


def test_a_stored_calibration_wins_and_is_reported_as_calibrated(measuring):
    calibration.save_calibration(Calibration.defaults())
    calibration.set_calibration(None)
    cal = calibration.get_calibration()
    assert cal.origin("float32", "peak") == "calibrated" and not measuring


def test_the_real_quick_measurement_is_positive_and_short():
    values = calibration.measure_quick("float64", budget=0.01)
    assert set(values) == set(QUICK_CONSTANTS) and all(np.isfinite(v) and v > 0 for v in values.values())


# --------------------------------------------------------------- explain
def test_explain_shows_phases_and_where_each_constant_came_from(measuring):
    landed()
    e = cl.explain(cl.plan((2, 8, 16, 16), (8, 8, 3, 3), np.float32, padding=1))
    assert e.predicted_choice in e.phases
    for method, phases in e.phases.items():
        assert set(phases) <= set(PHASES)
        row = next(r for r in e.rows if r[0] == method)
        # the split plus the method's fixed cost per pass adds up to the prediction
        assert sum(phases.values()) + e.overheads[method] == pytest.approx(row[1])
    assert e.constants["peak"] == (2 * FAKE["peak"], "measured") and e.constants["sparse_op"][1] == "default"
    text = str(e)
    assert "predicted forward ms by phase" in text and "product" in text
    assert "measured" in text and "default" in text


# --------------------------------------------------------------- fixed costs counted from each method's structure
def counting(name):
    """Terms under which a model's fixed-cost part counts the calls priced by ``name``."""
    values = {n: 0.0 for n in CONSTANT_NAMES}
    values.update(peak=1.0, bandwidth=1.0, gather_bandwidth=1.0, loop_peak_fraction=1.0, **{name: 1.0})
    return CostTerms(values, np.float32).fixed_only()


def count(method, shape, w_shape, name, pass_="forward", **params):
    return cl.get_method(method).predict_seconds(cl.spec(shape, w_shape, np.float32, **params), counting(name), pass_)


@pytest.fixture
def parallel_passes(monkeypatch):
    """Every pass launches its kernels in parallel (these specs are small enough to run serially)."""
    from convlab.algorithms import costs

    monkeypatch.setattr(costs, "SMALL_FLOPS", 0.0)
    monkeypatch.setattr(costs, "get_num_threads", lambda: 2)


@pytest.mark.parametrize("pass_", ["forward", "backward_input", "backward_weight"])
def test_kernel_launches_are_counted_from_the_code_path(parallel_passes, pass_):
    assert count("direct", (1, 1, 32, 32), (1, 1, 3, 3), "launch", pass_, padding=1) == 1  # the loop nest
    assert count("direct", (1, 16, 32, 32), (16, 16, 3, 3), "launch", pass_, padding=1) == 0  # per-offset GEMMs
    assert count("im2col", (1, 4, 32, 32), (4, 4, 1, 1), "launch", pass_) == 0  # pointwise: a plain GEMM
    assert count("im2col", (1, 4, 32, 32), (4, 4, 3, 3), "launch", pass_, padding=1) == 1
    assert count("winograd", (1, 4, 32, 32), (4, 4, 3, 3), "launch", pass_, padding=1) == 2
    # fft: the block product's two transposes for y and dx (dw's product is a complex matmul), one
    # compiled pass for a depthwise layer's products, none for a single channel (numpy's multiply)
    assert count("fft", (1, 4, 32, 32), (4, 4, 3, 3), "launch", pass_, padding=1) == (
        0 if pass_ == "backward_weight" else 2)
    assert count("fft", (1, 4, 32, 32), (4, 1, 3, 3), "launch", pass_, padding=1, groups=4) == 1
    assert count("fft", (1, 1, 32, 32), (1, 1, 3, 3), "launch", pass_, padding=1) == 0


def test_a_small_pass_prices_its_kernels_as_serial_calls_not_launches():
    """Below SMALL_FLOPS the kernels run their serial twins (convlab.threads.call_threads gives one thread)."""
    shape, w_shape = (1, 1, 32, 32), (1, 1, 3, 3)
    assert count("direct", shape, w_shape, "launch", padding=1) == 0
    assert count("direct", shape, w_shape, "kernel_call", padding=1) == 1
    assert count("im2col", shape, w_shape, "kernel_call", padding=1) == 1
    assert count("im2col", shape, (1, 1, 1, 1), "kernel_call") == 0  # pointwise: a plain GEMM, no kernel


def test_im2col_pays_a_launch_and_a_blas_call_per_chunk(parallel_passes):
    shape, w_shape = (4, 2, 10, 10), (3, 2, 3, 3)
    chunks = cl.spec(shape, w_shape, np.float32, workspace_limit=3500)
    assert count("im2col", shape, w_shape, "launch") == 1 and count("im2col", shape, w_shape, "blas_call") == 1
    from convlab.algorithms.im2col import chunking

    samples, rows = chunking(chunks)
    expected = -(-4 // samples) * -(-8 // rows)
    assert expected > 1
    assert count("im2col", shape, w_shape, "launch", workspace_limit=3500) == expected
    assert count("im2col", shape, w_shape, "blas_call", workspace_limit=3500) == expected


def test_fft_counts_its_plan_executions():
    # forward: x's transform and y's inverse (the weight spectrum is cached); dw: x, dy and dw's inverse
    assert count("fft", (2, 4, 32, 32), (8, 4, 5, 5), "fft_call") == 2
    assert count("fft", (2, 4, 32, 32), (8, 4, 5, 5), "fft_call", "backward_weight") == 3
    assert count("toeplitz", (2, 4, 32, 32), (8, 4, 5, 5), "sparse_call") == 2


def test_fixed_costs_depend_on_the_structure_not_the_size():
    for method in ("direct", "im2col", "winograd", "fft", "toeplitz"):
        terms = CostTerms(DEFAULT_CONSTANTS["float32"], np.float32).fixed_only()
        small, large = (cl.get_method(method).predict_seconds(cl.spec((1, 1, n, n), (1, 1, 3, 3), np.float32,
                                                                          padding=1), terms) for n in (16, 48))
        assert small == pytest.approx(large), method


def test_the_launch_cost_is_not_measured_when_it_would_import_numba(monkeypatch):
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    assert calibration.measure_launch() is None
    assert "numba" not in sys.modules


def test_a_measured_launch_cost_is_stored_and_used(measuring, monkeypatch, tmp_path):
    monkeypatch.setattr(calibration, "measure_launch", lambda: 4e-5)
    _, cal = landed()
    assert cal.constant("float32", "launch") == 4e-5 and cal.origin("float64", "launch") == "measured"
    assert calibration.load_measured()["float32"]["launch"] == 4e-5


def test_without_a_launch_measurement_the_default_is_used_and_completed_later(measuring, monkeypatch):
    monkeypatch.setattr(calibration, "measure_launch", lambda: None)
    _, cal = landed()
    assert cal.origin("float32", "launch") == "default" and "launch" not in calibration.load_measured()["float32"]
    monkeypatch.setattr(calibration, "measure_launch", lambda: 5e-5)  # a later process, with numba running
    calibration.set_calibration(None)
    assert calibration.get_calibration().constant("float64", "launch") == 5e-5 and len(measuring) == 2


# --------------------------------------------------------------- the threads a loop nest keeps busy
def test_direct_prices_the_threads_its_tasks_keep_busy(monkeypatch):
    """dx's loop nest is threaded over input planes: at 2 threads two planes take as long as one (each its
    own thread), which a model pricing the work at the peak of all threads would put at 2x. The forward
    cuts a lone plane into bands of rows, one per thread: there two images cost twice one."""
    from convlab.algorithms import costs, direct

    monkeypatch.setattr(costs, "get_num_threads", lambda: 2)
    monkeypatch.setattr(direct, "get_num_threads", lambda: 2)
    terms = CostTerms(DEFAULT_CONSTANTS["float32"], np.float32)

    def product(n, pass_):
        spec = cl.spec((n, 1, 512, 512), (1, 1, 15, 15), np.float32, padding=7)
        return cl.get_method("direct").predict_phases(spec, terms, pass_)["product"]

    assert product(2, "backward_input") < 1.2 * product(1, "backward_input")  # traffic doubles, arithmetic not
    assert product(2, "forward") > 1.8 * product(1, "forward")
    for n, expected in ((1, 2.0), (2, 1.0), (3, 4 / 3), (64, 1.0)):
        assert terms.thread_share(n, flops=1e9) == pytest.approx(expected)
    assert terms.thread_share(64, flops=1e3) == 2.0  # a small pass runs serially
