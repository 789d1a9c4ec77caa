"""First calls with method="auto": a pass whose chosen method needs compiled kernels not loaded yet runs by
a kernel-free method while they load in the background; a named method never substitutes."""

import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

import convlab as cl
from convlab import planning
from convlab.algorithms import PASSES
from convlab.kernels import _runtime
from convlab.tolerances import assert_close
from convlab.tuning import Calibration, choice, first_call_substitute, predictions, set_calibration

# a CNN layer that auto runs by a method with compiled kernels (winograd's tiles, im2col's packing), with
# kernel-free methods (direct's BLAS products, fft) not far behind
ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYER = ((2, 16, 20, 20), (16, 16, 3, 3), np.float32, dict(padding=1))


@pytest.fixture(autouse=True)
def built_in_constants():
    """The built-in constants, so that the choices do not depend on this machine's measurement."""
    old = set_calibration(Calibration.defaults())
    yield
    set_calibration(old)


def compiled(method, spec, pass_="forward"):
    impl = cl.get_method(method)
    return impl.needs_compiled_kernels(impl.inner_spec(spec), pass_)


@pytest.fixture
def unloaded(monkeypatch):
    """A process whose compiled kernels are not loaded yet: the loads are recorded and finish on demand."""
    loads = []

    def load_in_background(warm, wait=None):
        done = threading.Event()
        loads.append((warm, done))
        return done

    monkeypatch.setattr(planning, "load_in_background", load_in_background)
    monkeypatch.setattr(choice, "load_seconds", lambda: _runtime.IMPORT_SECONDS + _runtime.LOAD_SECONDS)
    return loads


def arrays(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)


def test_a_first_call_runs_a_kernel_free_method_until_the_kernels_load(unloaded):
    x_shape, w_shape, dtype, params = LAYER
    p = cl.plan(x_shape, w_shape, dtype, **params)
    assert p.auto and compiled(p.method, p.spec), p.method
    x, w = arrays(x_shape, w_shape, dtype)
    expected = cl.conv(x, w, method="direct", **params)
    first = p._runner("forward")
    assert first.name != p.method and not compiled(first.name, p.spec)
    assert_close(p.forward(x, w), expected, dtype, what="first call (substitute)")
    assert_close(p.forward(x, w), expected, dtype, what="second call, still loading")
    assert len(unloaded) == 1  # one background load per plan and pass, however many calls wait for it
    warm, done = unloaded[0]
    warm()  # the load itself: runs the chosen pass on zeros
    done.set()
    assert p._runner("forward").name == p.method
    assert_close(p.forward(x, w), expected, dtype, what="after the load")


def test_each_pass_substitutes_on_its_own(unloaded):
    x_shape, w_shape, dtype, params = LAYER
    p = cl.plan(x_shape, w_shape, dtype, **params)
    x, w = arrays(x_shape, w_shape, dtype)
    gy = np.random.default_rng(1).standard_normal(p.output_shape).astype(dtype)
    expected = cl.conv_backward(gy, x, w, method="direct", **params)
    got = p.backward(gy, x, w)
    assert_close(got.dx, expected.dx, dtype, what="dx")
    assert_close(got.dw, expected.dw, dtype, what="dw")
    needing = [pass_ for pass_ in PASSES[1:] if compiled(p.method_for(pass_), p.spec, pass_)]
    assert needing and len(unloaded) == len(needing)


def test_a_named_method_never_substitutes(unloaded):
    x_shape, w_shape, dtype, params = LAYER
    p = cl.plan(x_shape, w_shape, dtype, method="winograd", **params)
    x, w = arrays(x_shape, w_shape, dtype)
    assert not p.auto and p._runner("forward").name == "winograd"
    p.forward(x, w)
    cl.conv(x, w, method="winograd", **params)
    assert not unloaded


def test_the_substitute_is_the_fastest_kernel_free_candidate_and_only_when_waiting_costs_more(monkeypatch):
    x_shape, w_shape, dtype, params = LAYER
    s = cl.spec(x_shape, w_shape, dtype, **params)
    monkeypatch.setattr(choice, "load_seconds", lambda: 1.0)
    ranked = [r.method for r in predictions(s) if r.seconds is not None]
    free = [m for m in ranked if not compiled(m, s)]
    assert compiled(ranked[0], s) and free, ranked
    assert first_call_substitute(s, ranked[0]) == free[0]
    assert first_call_substitute(s, free[0]) is None  # needs no kernels: nothing to wait for
    monkeypatch.setattr(choice, "load_seconds", lambda: 0.0)  # no wait: the chosen method is the fastest
    assert first_call_substitute(s, ranked[0]) is None


def test_the_background_load_runs_once_at_a_time_and_reports_done_even_on_failure():
    order, inside = [], threading.Lock()

    def warm(tag):
        def run():
            assert inside.acquire(blocking=False)  # never two loads at once
            try:
                order.append(tag)
                if tag == "fails":
                    raise RuntimeError("a load that fails")
            finally:
                inside.release()
        return run

    events = [_runtime.load_in_background(warm(tag)) for tag in ("a", "fails", "b")]
    assert _runtime.wait_for_loads(timeout=60) and all(e.is_set() for e in events)
    assert order == ["a", "fails", "b"] and _runtime.loaded()
    # numba runs now: nothing left worth standing in for (a kernel loads from the disk cache in milliseconds)
    x_shape, w_shape, dtype, params = LAYER
    s = cl.spec(x_shape, w_shape, dtype, **params)
    assert _runtime.load_seconds() == 0 and first_call_substitute(s, predictions(s)[0].method) is None


def test_a_real_first_call_loads_the_kernels_and_then_runs_the_chosen_method(monkeypatch):
    monkeypatch.setattr(choice, "load_seconds", lambda: _runtime.IMPORT_SECONDS + _runtime.LOAD_SECONDS)
    x_shape, w_shape, dtype, params = LAYER
    p = cl.plan(x_shape, w_shape, dtype, **params)
    x, w = arrays(x_shape, w_shape, dtype)
    expected = cl.conv(x, w, method="direct", **params)
    assert p._runner("forward").name != p.method
    assert_close(p.forward(x, w), expected, dtype)
    loading = p.spec.cached(("convlab.first_call.loading", p.method, "forward"), lambda: None)
    assert loading.wait(120)
    assert p._runner("forward").name == p.method
    assert_close(p.forward(x, w), expected, dtype)


def test_background_work_never_holds_up_the_interpreters_exit(tmp_path):
    code = """
import time, numpy as np, convlab as cl
from convlab.kernels import _runtime
from convlab.tuning import calibration
calibration._busy = lambda: False
calibration.measure_quick = lambda dtype, budget=0.2: time.sleep(600)
_runtime.load_in_background(lambda: time.sleep(600))
cl.conv(np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3)))
assert calibration._measurement is not None  # still measuring as the program ends
print("done")
"""
    env = dict(os.environ, CONVLAB_CACHE_DIR=str(tmp_path), CONVLAB_AUTO_MEASURE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr
