"""Caches on disk cannot lie: bad files are ignored with a warning naming them, never break a call,
stored winners are checked against the problem, and concurrent writers merge."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import convlab as cl
from convlab.tuning import autotune, calibration, store

X = np.random.default_rng(0).standard_normal((1, 2, 16, 16))
W = np.random.default_rng(1).standard_normal((2, 2, 3, 3))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path / "cache"))
    old_cal = calibration.set_calibration(None)
    old_tune = cl.set_autotune(False, persist=False)
    autotune.clear_autotune_cache()
    cl.api.clear_plan_cache()  # functional calls keep their plans: make each test choose afresh
    yield tmp_path / "cache"
    calibration.set_calibration(old_cal)
    cl.set_autotune(old_tune, persist=False)
    autotune.clear_autotune_cache()


def _stamped(record, fingerprint=None):
    return dict(record, **store.stamp(fingerprint or calibration.fingerprint()))


def _good_calibration():
    cal = calibration.Calibration.defaults()
    return dict(constants=cal.constants, method_factors={"direct": 1.5})


BAD_CALIBRATIONS = [
    ("[]", "expected a JSON object"),
    ("null", "expected a JSON object"),
    ('"text"', "expected a JSON object"),
    ("{truncated", "cannot be read as JSON"),
    (_stamped(dict(_good_calibration(), constants=[])), "constants must be an object"),
    (_stamped(dict(_good_calibration(), method_factors=[1, 2])), "method_factors must be an object"),
    (_stamped({**_good_calibration(), "constants": {**_good_calibration()["constants"],
                                                    "float32": {**_good_calibration()["constants"]["float32"],
                                                                "peak": 0}}}), "peak must be a positive"),
    (_stamped(dict(_good_calibration(), method_factors={"direct": float("nan")})), "positive finite"),
]


@pytest.mark.parametrize("content, words", BAD_CALIBRATIONS, ids=range(len(BAD_CALIBRATIONS)))
def test_a_bad_calibration_file_is_ignored_with_a_warning_naming_it(cache, content, words):
    cache.mkdir()
    path = cache / calibration.CALIBRATION_FILE
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.warns(store.CacheWarning, match=words) as caught:
        y = cl.conv(X, W, padding=1)  # method="auto" reads the calibration
    assert str(path) in str(caught[0].message)
    np.testing.assert_allclose(y, cl.conv(X, W, padding=1, method="direct"), rtol=1e-10, atol=1e-12)
    assert calibration.get_calibration().source == "built-in defaults"


def test_a_good_calibration_is_used_and_one_for_other_code_is_ignored_quietly(cache):
    cache.mkdir()
    path = cache / calibration.CALIBRATION_FILE
    path.write_text(json.dumps(_stamped(_good_calibration())))
    assert calibration.load_calibration().factor("direct") == 1.5
    stale = _stamped(_good_calibration())
    stale["code"] = "0" * 16  # written by other code: not ours, not an error
    path.write_text(json.dumps(stale))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert calibration.load_calibration().source == "built-in defaults"


def test_a_stored_autotune_winner_that_cannot_run_the_problem_is_not_used(cache):
    """A hand-edited (or other version's) file naming winograd for a stride-2 problem."""
    cl.set_autotune(True, persist=True)
    spec = cl.spec((1, 2, 16, 16), (2, 2, 3, 3), padding=1, stride=2)
    text = autotune._key_text(autotune._key(spec))
    cache.mkdir()
    record = _stamped(dict(entries={text: dict(method="winograd", seconds={"winograd": 1e-9})}))
    (cache / autotune.AUTOTUNE_FILE).write_text(json.dumps(record))
    y = cl.conv(X, W, padding=1, stride=2)
    assert y.shape == (1, 2, 8, 8)
    np.testing.assert_allclose(y, cl.conv(X, W, padding=1, stride=2, method="direct"), rtol=1e-10, atol=1e-12)


def test_a_cache_directory_that_is_a_file_never_breaks_a_call(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(blocker))
    old_cal, old_tune = calibration.set_calibration(None), cl.set_autotune(True, persist=True)
    autotune.clear_autotune_cache()
    cl.api.clear_plan_cache()
    try:
        with pytest.warns(store.CacheWarning, match="not written"):
            y = cl.conv(X, W, padding=1)
        np.testing.assert_allclose(y, cl.conv(X, W, padding=1, method="direct"), rtol=1e-10, atol=1e-12)
    finally:
        calibration.set_calibration(old_cal)
        cl.set_autotune(old_tune, persist=False)
        autotune.clear_autotune_cache()


WRITER = """
import sys
from convlab.tuning import autotune
for i in range(5):
    autotune._store(f"{sys.argv[1]}-{i}", "direct", {"direct": 1.0})
"""


def test_concurrent_writers_merge_their_entries(cache):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, f"writer{n}"], env=_env(cache)) for n in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    entries = autotune._entries(json.loads((cache / autotune.AUTOTUNE_FILE).read_text()))
    assert set(entries) == {f"writer{n}-{i}" for n in range(4) for i in range(5)}


def _env(cache):
    return dict(os.environ, CONVLAB_CACHE_DIR=str(cache))


def test_calibrate_refuses_bad_methods_and_an_unwritable_cache_before_measuring(tmp_path, monkeypatch):
    from convlab.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(blocker / "sub"))
    monkeypatch.setattr(calibration, "measure_constants", lambda dtype: pytest.fail("measured before checking"))
    assert main(["calibrate", "--methods", "direct"]) == 2
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path / "ok"))
    assert main(["calibrate", "--methods", "bogus"]) == 2
    assert not (tmp_path / "ok" / calibration.CALIBRATION_FILE).exists()
