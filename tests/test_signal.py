"""convlab.signal against scipy.signal: the same assertions run on both modules, then direct
comparisons of values and dtypes over random shapes, modes, dtypes and the edge cases scipy's own
tests exercise (swap in "valid", even kernels in "same", broadcasting, boundaries, huge integers)."""

import itertools

import numpy as np
import pytest
import scipy.signal

import convlab as cl
from convlab import signal as cls
from convlab.tolerances import assert_close

BOTH = pytest.mark.parametrize("sig", [scipy.signal, cls], ids=["scipy", "convlab"])
MODES = ("full", "same", "valid")


@pytest.fixture(autouse=True)
def _quick_fftw_plans():
    """FFTW_MEASURE plans each new FFT size for seconds on a busy machine; these tests see many sizes."""
    with cl.fft_backend(cl.get_fft_backend().name, planner_effort="FFTW_ESTIMATE"):
        yield


def _close(actual, expected, what="result"):
    """Values within convlab's tolerance for the result dtype; dtypes and shapes identical."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != scipy's {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != scipy's {expected.shape}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    real = np.float32 if expected.dtype in (np.float16, np.float32, np.complex64) else np.float64
    if expected.dtype == np.float16:
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=2e-3, atol=2e-3)
        return
    if expected.size:
        assert_close(np.stack([actual.real, actual.imag]), np.stack([expected.real, expected.imag]), real, what=what)


def _definition(a, b, mode):
    """N-D convolution by its definition (a sum of shifted copies), then scipy's mode slicing rule."""
    full = np.zeros([n + k - 1 for n, k in zip(a.shape, b.shape)], np.result_type(a, b, np.float64))
    for index in np.ndindex(*b.shape):
        full[tuple(slice(j, j + n) for j, n in zip(index, a.shape))] += b[index] * a
    if mode == "full":
        return full
    size = a.shape if mode == "same" else [abs(n - k) + 1 for n, k in zip(a.shape, b.shape)]
    return full[tuple(slice((f - s) // 2, (f - s) // 2 + s) for f, s in zip(full.shape, size))]


# --------------------------------------------------------------- the same assertions on both modules
@BOTH
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", [((7,), (4,)), ((4,), (7,)), ((6, 5), (2, 3)), ((3, 4, 5), (2, 2, 3))])
def test_convolve_is_the_definition(sig, mode, shapes):
    rng = np.random.default_rng(len(shapes[0]))
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    for method in ("auto", "direct", "fft"):
        expected = _definition(a, b, mode) if mode != "valid" or a.shape >= b.shape else _definition(b, a, mode)
        _close(sig.convolve(a, b, mode, method), expected, f"convolve {method}")
        corr = _definition(a, b[::-1, ...][(slice(None),) + (slice(None, None, -1),) * (b.ndim - 1)], mode) \
            if mode != "valid" or a.shape >= b.shape else None
        if corr is not None:
            _close(sig.correlate(a, b, mode, method), corr, f"correlate {method}")


@BOTH
def test_swap_in_valid_mode_and_its_error(sig):
    a, b = np.arange(3.0), np.arange(1.0, 6.0)
    np.testing.assert_allclose(sig.convolve(a, b, "valid"), sig.convolve(b, a, "valid"))
    np.testing.assert_allclose(sig.correlate(a, b, "valid"), [14.0, 11.0, 8.0])  # sum a[l+k] b[l], in2 larger
    with pytest.raises(ValueError, match="at least as large"):
        sig.convolve(np.ones((3, 2)), np.ones((2, 3)), "valid")
    with pytest.raises(ValueError, match="at least as large"):
        sig.convolve2d(np.ones((3, 2)), np.ones((2, 3)), "valid")


@BOTH
def test_even_kernel_same_mode_centring(sig):
    a, b = np.arange(7.0), np.array([1.0, 2.0, 3.0, 4.0])
    full = np.convolve(a, b)
    np.testing.assert_allclose(sig.convolve(a, b, "same"), full[1:8])  # start (k - 1) // 2
    np.testing.assert_allclose(sig.correlate(a, b, "same"), np.correlate(a, b, "full")[1:8])
    a2, b2 = np.arange(12.0).reshape(3, 4), np.arange(1.0, 5.0).reshape(2, 2)
    # correlate2d centres even kernels one sample differently from correlate (documented by scipy)
    assert not np.allclose(sig.correlate2d(a2, b2, "same"), sig.correlate(a2, b2, "same"))
    np.testing.assert_allclose(sig.correlate2d(a2, b2, "same"), sig.correlate(a2, b2, "full")[1:4, 1:5])


@BOTH
def test_integer_dtypes_are_kept_and_exact(sig):
    for dtype in (np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64):
        a, b = np.arange(1, 8).astype(dtype), np.array([1, 2, 1], dtype)
        for method in ("auto", "direct", "fft"):
            y = sig.convolve(a, b, "full", method)
            assert y.dtype == dtype
            np.testing.assert_array_equal(y, np.convolve(a.astype(np.int64), b.astype(np.int64)))
    assert sig.convolve(np.ones(3, np.int32), np.ones(2, np.float32)).dtype == np.float64
    assert sig.convolve(np.ones(3, np.int8), np.ones(2, np.float32)).dtype == np.float32
    assert sig.fftconvolve(np.ones(3, np.int64), np.ones(2, np.int64)).dtype == np.float64
    assert sig.fftconvolve(np.ones(3, np.float16), np.ones(2, np.float16)).dtype == np.float32


@BOTH
def test_complex_inputs(sig):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 6)) + 1j * rng.standard_normal((5, 6))
    b = rng.standard_normal((3, 2)) - 2j * rng.standard_normal((3, 2))
    np.testing.assert_allclose(sig.convolve(a, b), _definition(a, b, "full"), atol=1e-12)
    np.testing.assert_allclose(sig.correlate(a, b.real), _definition(a, b.real[::-1, ::-1], "full"), atol=1e-12)
    assert sig.convolve(a.astype(np.complex64), b.real.astype(np.float32)).dtype == np.complex64
    assert sig.correlate(np.array(2j), np.array(3j)) == 6  # 0-d: in1 * conj(in2)


@BOTH
def test_scalars_and_empty(sig):
    assert sig.convolve(np.array(2), np.array(3)) == 6
    assert sig.fftconvolve(np.array(2.0), np.array(3.0)) == 6.0
    for f in (sig.fftconvolve, sig.oaconvolve):
        out = f(np.array([]), np.ones(3))
        assert out.shape == (0,) and out.dtype == np.float64
    assert sig.convolve(np.ones((0, 3)), np.ones((2, 2)), "same").shape == (0, 3)
    with pytest.raises(ValueError):
        sig.convolve(np.ones(3), np.array([]))


@BOTH
@pytest.mark.parametrize("call, match", [
    (lambda s: s.convolve(np.ones(3), np.ones((2, 2))), "same dimensionality"),
    (lambda s: s.convolve(np.ones(3), np.ones(2), "foo"), "mode"),
    (lambda s: s.correlate(np.ones(3), np.ones(2), "foo"), "mode"),
    (lambda s: s.fftconvolve(np.ones(3), np.ones(2), "foo"), "mode"),
    (lambda s: s.convolve(np.ones(3), np.ones(2), "full", "foo"), "method"),
    (lambda s: s.correlate(np.ones(3), np.ones(2), "full", "foo"), "method"),
    (lambda s: s.fftconvolve(np.ones((3, 4)), np.ones((2, 2)), axes=1), "incompatible shapes"),
    (lambda s: s.fftconvolve(np.ones((3, 4)), np.ones((3, 2)), axes=[]), "cannot be empty"),
    (lambda s: s.fftconvolve(np.ones((3, 4)), np.ones((3, 2)), axes=5), "exceeds dimensionality"),
    (lambda s: s.fftconvolve(np.ones((3, 4)), np.ones((3, 2)), axes=[1, -1]), "unique"),
    (lambda s: s.oaconvolve(np.ones((3, 4)), np.ones((3, 2)), axes=1.5), "scalar or iterable of integers"),
    (lambda s: s.convolve2d(np.ones(3), np.ones(3)), "2-D"),
    (lambda s: s.correlate2d(np.ones(3), np.ones(3)), "2-D"),
    (lambda s: s.convolve2d(np.ones((2, 2)), np.ones((2, 2)), boundary="foo"), "boundary"),
    (lambda s: s.convolve2d(np.ones((2, 2)), np.ones((2, 2)), fillvalue=[1, 2]), "fillvalue"),
    (lambda s: s.convolve2d(np.ones((2, 2)), np.ones((2, 2)), fillvalue=1j), "fillvalue"),
    (lambda s: s.convolve2d(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8), fillvalue=300), "fillvalue"),
    (lambda s: s.convolve2d(np.ones((2, 2), bool), np.ones((2, 2), bool)), "not available"),
])
@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")  # scipy warns before it raises
def test_invalid_input_raises_value_error(sig, call, match):
    with pytest.raises(ValueError, match=match):
        call(sig)


@BOTH
def test_broadcasting_over_axes_not_convolved(sig):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 1, 9)), rng.standard_normal((1, 4, 5))
    got = sig.fftconvolve(a, b, axes=-1)
    assert got.shape == (3, 4, 13)
    np.testing.assert_allclose(got[2, 1], np.convolve(a[2, 0], b[0, 1]), atol=1e-12)
    same = sig.oaconvolve(a, b, "same", axes=2)
    assert same.shape == (3, 1, 9)  # "same" is in1's shape on every axis, broadcast ones included
    np.testing.assert_allclose(same[1, 0], np.convolve(a[1, 0], b[0, 1])[2:11], atol=1e-12)


# --------------------------------------------------------------- convlab.signal == scipy.signal
def _random(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        low = 0 if dtype.kind == "u" else -9
        return rng.integers(low, 10, shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _random_pair(rng, ndim, mode):
    s1 = tuple(int(v) for v in rng.integers(1, 9, ndim))
    s2 = tuple(int(v) for v in rng.integers(1, 6, ndim))
    if mode == "valid" and not (all(p >= q for p, q in zip(s1, s2)) or all(q >= p for p, q in zip(s1, s2))):
        s2 = tuple(min(p, q) for p, q in zip(s1, s2)) if rng.integers(2) else tuple(max(p, q) for p, q in zip(s1, s2))
    return s1, s2


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128", "complex64", "int64", "int16", "uint8"])
def test_convolve_and_correlate_match_scipy(ndim, dtype):
    rng = np.random.default_rng(ndim * 100 + len(dtype))
    for trial, mode in itertools.product(range(4), MODES):
        s1, s2 = _random_pair(rng, ndim, mode)
        a, b = _random(rng, s1, dtype), _random(rng, s2, dtype)
        for f in ("convolve", "correlate"):
            expected = getattr(scipy.signal, f)(a, b, mode, "direct")
            for method in ("auto", "fft", *cl.methods()):
                try:
                    got = getattr(cls, f)(a, b, mode, method)
                except cl.UnsupportedPlanError:
                    continue
                _close(got, expected, f"{f}{s1}x{s2} {mode} {dtype} {method}")


def test_bool_and_float16_match_scipy_1d():
    rng = np.random.default_rng(5)
    for mode, dtype in itertools.product(MODES, (bool, np.float16)):
        a, b = _random(rng, 9, dtype), _random(rng, 4, dtype)
        _close(cls.convolve(a, b, mode), scipy.signal.convolve(a, b, mode, "direct"), f"{dtype} {mode}")
        _close(cls.correlate(a, b, mode), scipy.signal.correlate(a, b, mode, "direct"), f"{dtype} {mode}")


def test_mixed_dtypes_match_scipy():
    rng = np.random.default_rng(6)
    for d1, d2 in [("int8", "float32"), ("int32", "float32"), ("int8", "uint8"), ("float32", "complex128"),
                   ("int64", "complex64"), ("bool", "int16")]:
        a, b = _random(rng, (5, 6), d1), _random(rng, (3, 2), d2)
        for mode in MODES:
            _close(cls.convolve(a, b, mode), scipy.signal.convolve(a, b, mode), f"{d1}*{d2} {mode}")


@pytest.mark.parametrize("f", ["fftconvolve", "oaconvolve"])
def test_fft_functions_match_scipy_with_axes(f):
    rng = np.random.default_rng(7)
    cases = [((40,), (7,), None), ((6, 33), (1, 5), 1), ((6, 33), (6, 5), -1), ((4, 1, 20), (1, 3, 6), [2]),
             ((3, 12, 10), (3, 4, 3), [1, 2]), ((9, 8, 7), (2, 3, 4), None), ((1, 30), (5, 4), None),
             ((5, 6, 7, 8), (1, 2, 3, 1), None), ((4, 5, 6, 7), (2, 2, 2, 2), None), ((3, 50), (3, 50), 1)]
    for (s1, s2, axes), mode, dtype in itertools.product(cases, MODES, ("float64", "float32", "complex128", "int32")):
        if mode == "valid":
            try:
                expected = getattr(scipy.signal, f)(_random(rng, s1, dtype), _random(rng, s2, dtype), mode, axes)
            except ValueError:
                continue
        a, b = _random(rng, s1, dtype), _random(rng, s2, dtype)
        expected = getattr(scipy.signal, f)(a, b, mode, axes)
        _close(getattr(cls, f)(a, b, mode, axes), expected, f"{f} {s1}x{s2} axes={axes} {mode} {dtype}")
        _close(getattr(cls, f)(b, a, mode, axes), getattr(scipy.signal, f)(b, a, mode, axes), "swapped")


@pytest.mark.parametrize("f", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm", "circular", "symmetric"])
def test_2d_functions_match_scipy(f, boundary):
    rng = np.random.default_rng(8)
    for trial, mode, dtype in itertools.product(range(3), MODES, ("float64", "float32", "complex128", "int32")):
        s1, s2 = _random_pair(rng, 2, mode)
        if trial == 2:
            s2 = (s1[0] + 3, s1[1] + 4)  # kernel larger than the input: pads wrap/mirror more than once
        if trial == 1 and mode != "valid":
            s1 = (1, s1[1])  # an input axis of size 1 still reads the boundary
        a, b = _random(rng, s1, dtype), _random(rng, s2, dtype)
        fill = int(rng.integers(-3, 4)) if boundary == "fill" else 0
        expected = getattr(scipy.signal, f)(a, b, mode, boundary, fill)
        _close(getattr(cls, f)(a, b, mode, boundary, fill), expected, f"{f} {s1}x{s2} {mode} {boundary} {dtype}")


def test_huge_integers_are_exact():
    """Beyond float64's 2**53 (where FFTs cannot round to the exact answer) the result is still exact."""
    rng = np.random.default_rng(9)
    a = rng.integers(-2**40, 2**40, 300)
    b = rng.integers(-2**20, 2**20, 17)
    exact = np.array([sum(int(a[i - j]) * int(b[j]) for j in range(len(b)) if 0 <= i - j < len(a))
                      for i in range(len(a) + len(b) - 1)], dtype=object)
    assert np.abs(exact).max() < 2**63 and np.abs(exact).max() > 2**53
    for method in ("auto", "fft", "direct", "winograd"):
        np.testing.assert_array_equal(cls.convolve(a, b, "full", method), exact.astype(np.int64))
    np.testing.assert_array_equal(cls.convolve(a, b, "same"), scipy.signal.convolve(a, b, "same", "direct"))
    np.testing.assert_array_equal(cls.convolve2d(a.reshape(20, 15), b[:16].reshape(4, 4), "same", "wrap"),
                                  scipy.signal.convolve2d(a.reshape(20, 15), b[:16].reshape(4, 4), "same", "wrap"))
    # between the rounding bound and 2**53: exact float64 summation
    mid_a, mid_b = rng.integers(0, 2**20, (30, 30)), rng.integers(0, 2**20, (5, 5))
    np.testing.assert_array_equal(cls.convolve(mid_a, mid_b, "valid", "fft"),
                                  scipy.signal.convolve(mid_a, mid_b, "valid", "direct"))
    assert cls.choose_conv_method(mid_a, mid_b) == "im2col"
    assert cls.choose_conv_method(a, b) == scipy.signal.choose_conv_method(a, b) == "direct"


def test_overflow_wraps_as_scipy_direct():
    a = np.full(10, 100, np.int8)
    np.testing.assert_array_equal(cls.convolve(a, a[:3]), scipy.signal.convolve(a, a[:3], method="direct"))


def test_fallbacks_match_scipy():
    """More than three convolved axes and extended precision: scipy itself computes them."""
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((3, 4, 3, 4)), rng.standard_normal((2, 2, 2, 3))
    for mode in MODES:
        _close(cls.convolve(a, b, mode), scipy.signal.convolve(a, b, mode), f"4-D {mode}")
    ld = np.arange(6, dtype=np.longdouble)
    assert cls.convolve(ld, ld[:3]).dtype == np.longdouble
    obj = np.array([1, 2, 3], dtype=object)
    np.testing.assert_array_equal(cls.convolve(obj, obj), scipy.signal.convolve(obj, obj))


def test_nonfinite_stay_local_with_fft():
    """scipy's FFT spreads a NaN over the whole output; convlab's keeps it where the direct sum has it."""
    a = np.arange(20.0)
    a[5] = np.nan
    b = np.ones(3)
    np.testing.assert_array_equal(np.isnan(cls.convolve(a, b, method="fft")),
                                  np.isnan(scipy.signal.convolve(a, b, method="direct")))


def test_inputs_are_not_modified_and_results_are_writable():
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((6, 7)), rng.standard_normal((3, 3)) + 1j
    a0, b0 = a.copy(), b.copy()
    for out in (cls.convolve(a, b), cls.correlate(a, b, "same"), cls.fftconvolve(a[:1], b, axes=1),
                cls.convolve2d(a, b, "same", "symm"), cls.correlate2d(a, b, "valid")):
        assert out.flags.writeable
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_choose_conv_method_names_a_method_convolve_accepts():
    rng = np.random.default_rng(12)
    for s1, s2 in [((1000,), (3,)), ((20_000,), (1_001,)), ((64, 64), (9, 9))]:
        a, b = rng.standard_normal(s1), rng.standard_normal(s2)
        name = cls.choose_conv_method(a, b)
        assert name in cl.methods()
        _close(cls.convolve(a, b, method=name), scipy.signal.convolve(a, b))
    best, times = cls.choose_conv_method(np.ones(50), np.ones(5), measure=True)
    assert best in times and set(times) <= set(cl.methods()) and min(times.values()) == times[best]
    with pytest.raises(ValueError, match="mode"):
        cls.choose_conv_method(np.ones(5), np.ones(2), mode="foo")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_common_call_route_matches_scipy_on_views_and_read_only_inputs(dtype):
    """Two real arrays of one float dtype take convlab.signal's shortcut past the general route: strided,
    reversed and read-only inputs, 'valid' swaps and repeated calls (cached routes and plans) match scipy."""
    rng = np.random.default_rng(13)
    cases = [((40,), (7,)), ((7,), (40,)), ((9, 12), (4, 3)), ((3, 4), (5, 6)), ((6, 5, 7), (2, 3, 2))]
    for (s1, s2), mode in itertools.product(cases, MODES):
        if mode == "valid" and not (all(n >= k for n, k in zip(s1, s2)) or all(k >= n for n, k in zip(s1, s2))):
            continue
        big = rng.standard_normal(tuple(2 * n for n in s1)).astype(dtype)
        a = big[(slice(None, None, -2),) * len(s1)]  # a reversed, strided view
        b = rng.standard_normal(s2).astype(dtype)
        b.flags.writeable = False
        a0, b0 = a.copy(), b.copy()
        for _ in range(2):
            for ours, theirs in ((cls.fftconvolve(a, b, mode), scipy.signal.fftconvolve(a, b, mode)),
                                 (cls.convolve(a, b, mode, "direct"), scipy.signal.convolve(a, b, mode, "direct")),
                                 (cls.convolve(a, b, mode), scipy.signal.convolve(a, b, mode))):
                _close(ours, theirs, f"{s1} x {s2} {mode}")
                assert ours.flags.writeable and ours.flags.c_contiguous
        np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(b, b0)
    with pytest.raises(ValueError, match="mode"):
        cls.fftconvolve(np.ones(5), np.ones(3), mode="circular")
    with pytest.raises(ValueError, match="method"):
        cls.convolve(np.ones(5), np.ones(3), method="nope")


def test_import_leaves_pyfftw_to_the_first_plan():
    """``from convlab import signal`` imports neither pyfftw nor (through pyfftw.interfaces) dask; a first
    fftconvolve runs without them, and an FFTW plan built on request imports pyfftw then."""
    pytest.importorskip("pyfftw")
    import os
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from convlab import signal\n"
            "from convlab.fft_backends import FFTBackend\n"
            "before = 'pyfftw' in sys.modules or 'dask' in sys.modules\n"
            "y = signal.fftconvolve(np.ones(50), np.ones(5))\n"
            "assert np.allclose(y, np.convolve(np.ones(50), np.ones(5))), y\n"
            "after_call = 'pyfftw' in sys.modules\n"
            "t = FFTBackend('pyfftw', 1, 'FFTW_ESTIMATE').real_transform((24,), 1, np.float64)\n"
            "print(before, after_call, t.plan_kind(), 'pyfftw' in sys.modules)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's convlab, not another
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.split() == ["False", "False", "FFTW_ESTIMATE", "True"], out.stdout + out.stderr
