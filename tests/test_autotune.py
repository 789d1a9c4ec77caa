"""Autotuning: measured choice cached per problem, thread-safe, persistable; and explain."""

import json
import threading

import numpy as np
import pytest

import convlab as cl
from convlab.algorithms import runnable
from convlab.tuning import autotune

SHAPES = ((2, 4, 12, 12), (4, 4, 3, 3))


@pytest.fixture
def tuner(tmp_path, monkeypatch):
    """Autotune state isolated in a temporary cache dir, with a scripted stopwatch.

    ``calls`` lists the methods timed; each method's "time" is its position
    in ``order`` (the fastest first), so the winner is known in advance.
    """
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path))
    old = cl.set_autotune(False, persist=False)
    autotune.clear_autotune_cache()
    calls, lock = [], threading.Lock()
    state = dict(order=list(reversed(cl.methods())))

    def fake_stopwatch(runs):
        """Each candidate timed TIMING_ROUNDS times, at its position in ``order`` seconds per call."""
        with lock:
            calls.extend(name for name in runs for _ in range(autotune.TIMING_ROUNDS))
        return {name: 1.0 + state["order"].index(name) for name in runs}

    monkeypatch.setattr(autotune, "_time_candidates", fake_stopwatch)
    monkeypatch.setattr(autotune, "PRUNE_FACTOR", float("inf"))  # time every fitting method
    yield calls, state, tmp_path
    cl.set_autotune(old, persist=False)
    autotune.clear_autotune_cache()


def fitting(p):
    return set(runnable(p.spec))


def test_times_each_candidate_for_every_round_and_keeps_the_fastest(tuner):
    calls, state, _ = tuner
    p = cl.plan(*SHAPES, padding=1, autotune=True)
    expected = min(fitting(p), key=state["order"].index)
    assert p.method == expected
    assert sorted(calls) == sorted(list(fitting(p)) * autotune.TIMING_ROUNDS)
    again = cl.plan(*SHAPES, padding=1, autotune=True)
    assert again.method == expected  # cached: nothing re-timed
    assert len(calls) == len(fitting(p)) * autotune.TIMING_ROUNDS
    assert autotune.measured_seconds(p)[expected] == min(autotune.measured_seconds(p).values())


def test_different_problems_are_measured_separately(tuner):
    calls, _, _ = tuner
    cl.plan(*SHAPES, padding=1, autotune=True)
    n = len(calls)
    cl.plan(*SHAPES, padding=0, autotune=True)
    cl.plan(*SHAPES, np.float32, padding=1, autotune=True)
    assert len(calls) > 2 * n - 1


def test_global_switch_and_functional_api(tuner):
    calls, state, _ = tuner
    state["order"] = ["direct"] + [m for m in cl.methods() if m != "direct"]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(SHAPES[0]), rng.standard_normal(SHAPES[1])
    assert cl.plan(*SHAPES, padding=2, autotune=False).method == cl.choose_method(
        cl.plan(*SHAPES, padding=2, method="direct"))
    assert not calls
    old = cl.set_autotune(True)
    try:
        assert cl.get_autotune() and cl.plan(*SHAPES, padding=2).method == "direct"
        y = cl.conv(x, w, padding=2)
    finally:
        cl.set_autotune(old)
    np.testing.assert_allclose(y, cl.conv(x, w, padding=2, method="direct"))
    assert calls


def test_concurrent_first_calls_measure_each_candidate_once(tuner):
    calls, state, _ = tuner
    results, barrier = [], threading.Barrier(8)

    def worker():
        barrier.wait()
        results.append(cl.plan(*SHAPES, np.float32, padding=1, autotune=True).method)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p = cl.plan(*SHAPES, np.float32, padding=1, method="direct")
    assert len(results) == 8 and len(set(results)) == 1
    assert sorted(calls) == sorted(list(fitting(p)) * autotune.TIMING_ROUNDS)  # measured once, not per thread


def test_persisted_winners_are_reused_by_a_fresh_process_state(tuner, monkeypatch):
    calls, state, cache = tuner
    cl.set_autotune(False, persist=True)
    first = cl.plan(*SHAPES, padding=1, autotune=True).method
    path = cache / autotune.AUTOTUNE_FILE
    record = json.loads(path.read_text())
    assert any(entry["method"] == first for entry in record["entries"].values())
    assert record["fingerprint"] and record["convlab_version"] == cl.__version__
    autotune.clear_autotune_cache()  # as a new process would start
    monkeypatch.setattr(autotune, "_time_candidates", lambda *a: pytest.fail("re-timed a persisted problem"))
    assert cl.plan(*SHAPES, padding=1, autotune=True).method == first


def test_persisted_file_from_another_machine_is_ignored(tuner):
    calls, state, cache = tuner
    cl.set_autotune(False, persist=True)
    cl.plan(*SHAPES, padding=1, autotune=True)
    path = cache / autotune.AUTOTUNE_FILE
    record = json.loads(path.read_text())
    record["fingerprint"] = {"cpu": "elsewhere"}
    path.write_text(json.dumps(record))
    autotune.clear_autotune_cache()
    n = len(calls)
    cl.plan(*SHAPES, padding=1, autotune=True)
    assert len(calls) > n


def test_concurrent_persisting_keeps_a_valid_file(tuner):
    _, _, cache = tuner
    cl.set_autotune(False, persist=True)
    paddings = [0, 1, 2, 3]
    threads = [threading.Thread(target=cl.plan, args=SHAPES, kwargs=dict(padding=pd, autotune=True))
               for pd in paddings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = json.loads((cache / autotune.AUTOTUNE_FILE).read_text())["entries"]
    assert len(entries) == len(paddings)


def test_explain_reports_prediction_and_measurement(tuner):
    p = cl.plan(*SHAPES, padding=1, method="direct")
    before = cl.explain(p)
    assert before.measured_choice is None and before.predicted_choice == cl.choose_method(p)
    assert "not measured" in str(before)
    tuned = cl.plan(*SHAPES, padding=1, autotune=True)
    after = cl.explain(tuned)
    assert after.plan_method == tuned.method == after.measured_choice
    rows = {row[0]: row for row in after.rows}
    assert rows[tuned.method][2] is not None and rows[tuned.method][1] is not None
    text = str(after)
    assert "measured" in text and tuned.method in text


def test_real_timing_picks_a_method_that_runs(monkeypatch, tmp_path):
    """Without the scripted stopwatch: every candidate really runs, and the winner works."""
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path))
    autotune.clear_autotune_cache()
    try:
        p = cl.plan((1, 2, 10, 10), (2, 2, 3, 3), padding=1, autotune=True)
        seconds = autotune.measured_seconds(p)
        assert p.method == min(seconds, key=seconds.get) and all(s > 0 for s in seconds.values())
    finally:
        autotune.clear_autotune_cache()


def test_rejects_non_bool_switches():
    with pytest.raises(TypeError, match="enabled"):
        cl.set_autotune("yes")
    with pytest.raises(cl.ConvTypeError, match="autotune"):
        cl.plan(*SHAPES, autotune="yes")
