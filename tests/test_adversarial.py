"""Adversarial property tests over the public surface (issue 17).

Every call with random shapes, dtypes and parameters — valid, invalid, huge,
negative, zero, wrong-typed or overflowing — either returns a result of the
right shape that matches the direct method (and, for convlab.signal, scipy),
or raises ``ConvError`` / ``ConvTypeError`` / a ``MemoryError`` subclass whose
message names the parameter; never another exception, never a modified
input. The API properties run in a child process under an address-space cap
(``RLIMIT_AS``), so a runaway allocation fails the test rather than the
machine. Cache files are fuzzed with random JSON: a call still gives the
right answer, and a bad file warns only with ``CacheWarning``.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convlab as cl  # noqa: E402
from convlab.tolerances import relative_error, tolerance  # noqa: E402

CHILD = os.environ.get("CONVLAB_ADVERSARIAL_CHILD") == "1"
MEMORY_CAP = 3 << 30  # bytes of address space for the child: far above any valid case here
SETTINGS = settings(max_examples=int(os.environ.get("CONVLAB_ADVERSARIAL_EXAMPLES", "120")), deadline=None,
                    suppress_health_check=list(HealthCheck), derandomize=True, database=None)

# (parameter, value) pairs that no convolution accepts, each to be named by the refusal
BAD_VALUES = {
    "stride": [0, -1, 1.5, "2", None, (1, 2, 3), -(2 ** 70), [1, "a"]],
    "dilation": [0, -3, 2.0, "1", (0, 1), {}],
    "padding": [-1, "half", 1.5, ((1, 2, 3),), (-(2 ** 64),), {}, [None]],
    "groups": [0, -2, 2.0, "1", None, 2 ** 65],
    "padding_mode": ["reflekt", {}, 3, None, ""],
    "method": ["fastest", 3, None, ["fft"]],
}
# valid values of unusual size (the result must still be right, or a MemoryError subclass)
ODD_VALUES = {"stride": [2 ** 40, 2 ** 63, 3], "dilation": [2 ** 33], "padding": [2 ** 62, 37, "full", "same"]}
ERRORS = (cl.ConvError, cl.ConvTypeError, MemoryError)
DTYPES = [np.float32, np.float64, np.int16, np.bool_, np.complex128]


@st.composite
def problems(draw):
    ndim = draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 2]))
    n = draw(st.integers(0, 2))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    size = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    kernel = tuple(draw(st.integers(1, min(4, s))) for s in size)
    dtype = draw(st.sampled_from(DTYPES))
    params = dict(stride=draw(st.integers(1, 3)), padding=draw(st.integers(0, 2)), dilation=1, groups=groups,
                  padding_mode=draw(st.sampled_from(["zeros", "zeros", "circular", "replicate", "symmetric"])),
                  method=draw(st.sampled_from(("auto", *cl.methods()))))
    bad = None
    choice = draw(st.integers(0, 5))
    if choice == 0:
        bad = draw(st.sampled_from(sorted(BAD_VALUES)))
        params[bad] = draw(st.sampled_from(BAD_VALUES[bad]))
    elif choice == 1:
        odd = draw(st.sampled_from(sorted(ODD_VALUES)))
        params[odd] = draw(st.sampled_from(ODD_VALUES[odd]))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c_in, *size)) * 4).astype(dtype)
    w = (rng.standard_normal((c_out, c_in // groups, *kernel)) * 4).astype(dtype)
    if dtype == np.complex128:
        x = x + 1j * rng.standard_normal(x.shape)
    return x, w, params, bad


def _check_refusal(exc, bad, params):
    assert isinstance(exc, ERRORS), f"{type(exc).__name__}: {exc} for {params}"
    message = str(exc)
    if bad is not None and not isinstance(exc, MemoryError):
        # the refused parameter is named (a bad method may also show as the plan it cannot run)
        assert bad in message or (bad == "padding" and "pad" in message), f"{bad!r} not named in {message!r}"


def _expected(fn, params):
    """The same call by the direct method, or None when it is refused for a reason other than the method."""
    reference = dict(params, method="direct")
    try:
        return fn(reference)
    except ERRORS:
        return None


def _assert_matches(got, expected, dtype, what):
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    assert np.isfinite(got).all(), f"{what}: non-finite values"
    real = np.dtype(np.float32) if np.dtype(dtype) in (np.float32,) else np.dtype(np.float64)
    if np.dtype(dtype).kind in "bi":
        assert np.array_equal(got, expected), f"{what}: integer result not exact"
    else:
        assert relative_error(got, expected) <= tolerance(real) * 10, f"{what}: error {relative_error(got, expected)}"


def _run(fn, x, w, params, bad, what):
    saved = x.copy(), w.copy()
    try:
        got = fn(params)
    except Exception as exc:
        _check_refusal(exc, bad, params)
        return
    finally:
        assert np.array_equal(x, saved[0]) and np.array_equal(w, saved[1]), f"{what} modified its input"
    accepted_bad = bad is not None and not (bad == "method" and params["method"] in cl.methods())
    assert not accepted_bad, f"{what} accepted {bad}={params[bad]!r}"
    expected = _expected(fn, params)
    assert expected is not None, f"{what}: accepted by {params['method']} but refused by direct"
    if isinstance(got, tuple):
        for g, e, name in zip(got, expected, ("dx", "dw", "db")):
            _assert_matches(g, e, x.dtype, f"{what}.{name}")
    else:
        _assert_matches(got, expected, x.dtype, what)


@pytest.mark.skipif(not CHILD, reason="runs in the memory-capped child started by test_api_properties")
@SETTINGS
@given(problems())
def test_child_conv_and_backward(problem):
    x, w, params, bad = problem

    def forward(p):
        return cl.conv(x, w, **p)

    _run(forward, x, w, params, bad, "conv")
    if x.dtype.kind == "f" or x.dtype.kind == "c":
        def backward(p):
            y_shape = cl.conv(x, w, **dict(p, method="direct")).shape
            grad = np.ones(y_shape, x.dtype)
            return tuple(cl.conv_backward(grad, x, w, **p))

        if bad is None:
            _run(backward, x, w, params, bad, "conv_backward")


@pytest.mark.skipif(not CHILD, reason="runs in the memory-capped child started by test_api_properties")
@SETTINGS
@given(problems())
def test_child_transpose_and_plan(problem):
    x, w, params, bad = problem
    params = {k: v for k, v in params.items() if k != "padding_mode"}
    if isinstance(params["padding"], str):
        params["padding"] = 1
    wt = np.ascontiguousarray(np.swapaxes(w, 0, 1)) if params["groups"] == 1 else w[: x.shape[1]]

    def transpose(p):
        return cl.conv_transpose(x, wt, **p)

    if params["groups"] == 1 or wt.shape[0] == x.shape[1]:
        _run(transpose, x, wt, params, bad, "conv_transpose")

    def planned(p):
        method = p.pop("method")
        return cl.plan(x.shape, w.shape, x.dtype, method=method, **p).forward(x, w)

    _run(planned, x, w, params, bad, "plan.forward")


@pytest.mark.skipif(not CHILD, reason="runs in the memory-capped child started by test_api_properties")
@SETTINGS
@given(st.integers(1, 3), st.integers(0, 2 ** 16), st.sampled_from(["full", "same", "valid", "bogus"]),
       st.sampled_from(["convolve", "correlate", "fftconvolve"]), st.sampled_from([np.float64, np.int32, complex]))
def test_child_signal_matches_scipy(ndim, seed, mode, name, dtype):
    scipy_signal = pytest.importorskip("scipy.signal")
    from convlab import signal
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(tuple(rng.integers(1, 12, ndim))) * 5).astype(dtype)
    b = (rng.standard_normal(tuple(rng.integers(1, 6, ndim))) * 5).astype(dtype)
    saved = a.copy(), b.copy()
    try:
        expected = getattr(scipy_signal, name)(a, b, mode=mode)
    except ValueError:
        with pytest.raises(ValueError):
            getattr(signal, name)(a, b, mode=mode)
        return
    got = getattr(signal, name)(a, b, mode=mode)
    assert np.array_equal(a, saved[0]) and np.array_equal(b, saved[1])
    assert got.shape == expected.shape and got.dtype == expected.dtype
    if np.dtype(dtype).kind == "i" and name != "fftconvolve":
        assert np.array_equal(got, expected)
    else:
        assert relative_error(got, expected) <= 1e-9


def _cap_memory():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.skipif(CHILD or sys.platform != "linux", reason="the parent starts the capped child (Linux)")
def test_api_properties_under_a_memory_cap():
    env = dict(os.environ, CONVLAB_ADVERSARIAL_CHILD="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", __file__, "-k", "child"],
        env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True, text=True,
        timeout=240, preexec_fn=_cap_memory)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "3 passed" in result.stdout, result.stdout[-2000:]


# --------------------------------------------------------------- cache fuzzing
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                     max_size=4), max_leaves=12)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    from convlab.tuning import autotune, calibration
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path))
    old_cal = calibration.set_calibration(None)
    old_tune = cl.set_autotune(False, persist=False)
    yield tmp_path
    calibration.set_calibration(old_cal)
    cl.set_autotune(old_tune, persist=False)
    autotune.clear_autotune_cache()
    cl.api.clear_plan_cache()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(content=JSON, stamped=st.booleans(), target=st.sampled_from(["calibration.json", "autotune.json"]),
       mangle=st.sampled_from(["json", "truncated", "bytes", "directory"]))
def test_fuzzed_cache_files_never_break_or_mislead_a_call(cache_dir, content, stamped, target, mangle):
    from convlab.tuning import autotune, calibration, store
    calibration.set_calibration(None)
    autotune.clear_autotune_cache()
    cl.api.clear_plan_cache()
    path = cache_dir / target
    if path.is_dir():
        path.rmdir()
    elif path.exists():
        path.unlink()  # hypothesis runs every example in the same directory
    record = content
    if stamped and isinstance(content, dict):
        record = dict(content, **store.stamp(calibration.fingerprint()))
        if target == "autotune.json":  # a winner for this very problem that may not be able to run it
            spec = cl.spec((1, 2, 12, 12), (2, 2, 3, 3), stride=2, padding=1)
            record["entries"] = {autotune._key_text(autotune._key(spec)): content}
    text = json.dumps(record, allow_nan=True)
    if mangle == "truncated":
        path.write_text(text[: len(text) // 2])
    elif mangle == "bytes":
        path.write_bytes(b"\xff\xfe\x00" + text.encode()[:20])
    elif mangle == "directory":
        path.mkdir()
    else:
        path.write_text(text)
    x, w = np.ones((1, 2, 12, 12)), np.ones((2, 2, 3, 3))
    cl.set_autotune(True, persist=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = cl.conv(x, w, stride=2, padding=1)
    cl.set_autotune(False, persist=False)
    assert y.shape == (1, 2, 6, 6)
    np.testing.assert_allclose(y, cl.conv(x, w, stride=2, padding=1, method="direct"), rtol=1e-10)
    others = [str(c.message) for c in caught if not issubclass(c.category, store.CacheWarning)]
    assert not others, others
    if path.is_dir():
        path.rmdir()
