"""The FFT methods beyond the shared suite: every backend, many tiles, threads, caches, edge geometry."""

import threading

import numpy as np
import pytest

import convlab as cl
from convlab import fft_backends
from convlab.algorithms import fft as fft_module
from convlab.algorithms import fft_tiled
from convlab.tolerances import assert_close
from tests.cases import CASES, Case

FFT_METHODS = ("fft", "fft_tiled")
BACKENDS = fft_backends.available_fft_backends()


def _reference(case, x, w, gy):
    p = cl.plan(case.x_shape, case.w_shape, np.float64, method="direct", **case.params)
    x, w, gy = (a.astype(np.float64) for a in (x, w, gy))
    return (p.forward(x, w), *p.backward(gy, x, w)[:2])


def _check(method, case, seed=0, backend=None):
    x, w, _, gy = case.arrays(seed=seed)
    p = cl.plan(case.x_shape, case.w_shape, case.dtype, method=method, **case.params)
    if backend is None:
        got = (p.forward(x, w), *p.backward(gy, x, w)[:2])
    else:
        with cl.fft_backend(backend, planner_effort="FFTW_ESTIMATE"):
            got = (p.forward(x, w), *p.backward(gy, x, w)[:2])
    for what, a, e in zip(("y", "dx", "dw"), got, _reference(case, x, w, gy)):
        assert_close(a, e, case.dtype, method, what=f"{method}/{backend} {what} [{case.id}]")
    return got


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != fft_backends.get_fft_backend().name])
@pytest.mark.parametrize("method", FFT_METHODS)
def test_other_backends_pass_the_shared_cases(method, backend):
    """The shared suite runs the default backend; the others run every shared case here."""
    for case in CASES:
        _check(method, case, backend=backend)


@pytest.mark.parametrize("method", FFT_METHODS)
def test_backends_agree(method):
    case = Case((2, 4, 19, 17), (6, 2, 5, 4), stride=(2, 1), padding=(3, 1), dilation=(1, 2), groups=2)
    results = [_check(method, case, backend=b) for b in BACKENDS]
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_close(a, b, np.float64, method)


@pytest.fixture
def small_tiles(monkeypatch):
    """Force many tiles and several chunks of tile rows, so overlap-save/-add joins are exercised."""
    def choose(plan, chunk_bytes=None):
        return tuple(scipy_fast(e + 2 * s) for e, s in zip(plan.dilated_kernel_size, plan.stride))

    from scipy.fft import next_fast_len as scipy_fast
    monkeypatch.setattr(fft_tiled, "choose_tiles", choose)
    monkeypatch.setattr(fft_tiled, "CHUNK_BYTES", 1)


@pytest.mark.parametrize("case", [
    Case((2, 3, 29), (4, 3, 5), stride=2, padding=((3, 4),), dilation=2),
    Case((2, 4, 23, 21), (6, 2, 3, 4), stride=(1, 3), padding=((2, 5), (0, 3)), groups=2),
    Case((1, 2, 13, 11, 9), (3, 2, 3, 2, 3), stride=(2, 1, 1), padding=1, dilation=(1, 2, 1), dtype="float32"),
    Case((2, 2, 30, 31), (2, 2, 4, 4), padding="full", padding_mode="reflect"),
    Case((1, 2, 17, 16), (2, 1, 3, 3), padding=2, groups=2, padding_mode="circular"),
    Case((2, 3, 20, 18), (3, 1, 5, 3), stride=(1, 2), padding=2, groups=3, dtype="float32"),  # depthwise kernels
], ids=lambda c: c.id)
def test_tiled_with_many_tiles_and_chunks(small_tiles, case):
    p = cl.plan(case.x_shape, case.w_shape, case.dtype, method="fft_tiled", **case.params)
    geo = fft_tiled.tile_geometry(p.inner)
    assert max(geo.T) >= 3 and len(geo.chunks()) == geo.T[0] >= 2
    _check("fft_tiled", case)


@pytest.mark.parametrize("ratio", [0.0, np.inf], ids=["inverse_fft", "tap_dft"])
@pytest.mark.parametrize("method", FFT_METHODS)
@pytest.mark.parametrize("case", [
    Case((2, 4, 19, 17), (6, 2, 5, 4), stride=(2, 1), padding=(3, 1), dilation=(1, 2), groups=2),
    Case((2, 3, 33), (2, 3, 6), padding=((4, 1),), dilation=3, dtype="float32"),
    Case((1, 2, 6, 5), (2, 2, 7, 3), padding=3, padding_mode="circular"),  # the window wraps: repeated taps
    Case((2, 3, 9, 8), (3, 1, 3, 3), padding=1, groups=3),  # depthwise
], ids=lambda c: c.id)
def test_weight_gradient_by_inverse_fft_or_tap_dft(monkeypatch, method, case, ratio):
    """``dw`` read at the taps: the inverse FFT and the DFT restricted to the taps both match direct."""
    monkeypatch.setattr(fft_module, "TAP_DFT_RATIO", ratio)
    L = (fft_tiled.tile_geometry if method == "fft_tiled" else fft_module.geometry)(
        cl.plan(case.x_shape, case.w_shape, case.dtype, method=method, **case.params).inner).L
    taps = tuple(tuple(range(k)) for k in case.w_shape[2:])
    assert fft_module.uses_tap_dft(L, taps) == (ratio > 0)
    _check(method, case)


@pytest.mark.parametrize("block", [False, True], ids=["complex_matmul", "real_block_gemm"])
@pytest.mark.parametrize("method", FFT_METHODS)
@pytest.mark.parametrize("case", [
    Case((4, 32, 9, 8), (5, 32, 3, 3), padding=1, dtype="float32"),  # N*C_in*8 = 1 KB: padded frequency rows
    Case((3, 2, 40), (4, 2, 7), stride=2, padding=((5, 1),), dilation=2),
    Case((2, 3, 11, 10, 6), (2, 3, 3, 2, 3), padding=(1, 0, 2), padding_mode="circular"),
], ids=lambda c: c.id)
def test_channel_product_paths_agree_with_direct(monkeypatch, method, case, block):
    """The real block GEMM on frequency-major spectra and the complex matmul give the same y, dx and dw,
    with ``w`` changed in place between calls (the block weight is derived from the cached spectrum)."""
    chosen = []
    for module in (fft_module, fft_tiled):
        monkeypatch.setattr(module, "block_product", lambda *args: chosen.append(args) or block)
    x, w, _, gy = case.arrays(seed=3)
    p = cl.plan(case.x_shape, case.w_shape, case.dtype, method=method, **case.params)
    for _ in range(2):
        got = (p.forward(x, w), *p.backward(gy, x, w)[:2])
        for what, a, e in zip(("y", "dx", "dw"), got, _reference(case, x, w, gy)):
            assert_close(a, e, case.dtype, method, what=f"{method} block={block} {what} [{case.id}]")
        w *= -1.5
    assert chosen


def test_block_product_is_chosen_by_size():
    """The block path only where it was measured to pay (see block_product's docstring)."""
    spec = cl.plan((8, 32, 28, 28), (32, 32, 5, 5), np.float32, method="fft", padding=2).inner
    grouped = cl.plan((8, 32, 28, 28), (32, 16, 5, 5), np.float32, method="fft", padding=2, groups=2).inner
    assert fft_module.block_product(spec, 8, 32, 32) and fft_module.block_product(spec, 8, 64, 64)
    assert not fft_module.block_product(spec, 64, 64, 64) and not fft_module.block_product(spec, 2, 64, 64)
    assert not fft_module.block_product(spec, 8, 1, 32) and not fft_module.block_product(grouped, 8, 16, 16)


def test_tiled_workspace_is_bounded():
    """Beyond one padded copy of x and of y, the tiled method holds at most CHUNK_BYTES of tiles."""
    shape, kernel = (1, 1, 4096, 4096), (1, 1, 7, 7)
    p = cl.plan(shape, kernel, np.float32, method="fft_tiled")
    geo = fft_tiled.tile_geometry(p)
    assert np.prod(geo.T) > 1  # a small kernel on a large image is tiled
    copies = 2 * (4096 + 80) ** 2 * 4
    tiles = cl.get_method("fft_tiled").workspace_bytes(p) - copies
    assert 0 < tiles <= fft_tiled.CHUNK_BYTES + (1 << 20)
    assert cl.get_method("fft").workspace_bytes(p.with_method("fft").spec) > 8 * fft_tiled.CHUNK_BYTES


@pytest.mark.parametrize("method", FFT_METHODS)
def test_eight_threads_share_one_plan(method):
    """pyFFTW objects own their buffers: a shared one would mix threads' data. Each thread checks every result."""
    case = Case((2, 3, 40, 36), (4, 3, 5, 5), padding=2, stride=(1, 2))
    p = cl.plan(case.x_shape, case.w_shape, method=method, **case.params)
    ref = cl.plan(case.x_shape, case.w_shape, method="direct", **case.params)
    errors, checked = [], []

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(6):
                x, w = rng.standard_normal(case.x_shape), rng.standard_normal(case.w_shape)
                gy = rng.standard_normal(p.output_shape)
                assert_close(p.forward(x, w), ref.forward(x, w), np.float64, method)
                for a, e in zip(p.backward(gy, x, w), ref.backward(gy, x, w)):
                    assert_close(a, e, np.float64, method)
                checked.append(seed)
        except Exception as exc:  # a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(checked) == 48


@pytest.mark.parametrize("method", FFT_METHODS)
def test_weight_spectrum_cache_sees_in_place_changes(method):
    x = np.random.default_rng(0).standard_normal((1, 2, 16, 16))
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    p = cl.plan(x.shape, w.shape, method=method, padding=1)
    ref = cl.plan(x.shape, w.shape, method="direct", padding=1)
    assert_close(p.forward(x, w), ref.forward(x, w), np.float64, method)
    w *= -2  # same array object, new values
    assert_close(p.forward(x, w), ref.forward(x, w), np.float64, method)


@pytest.mark.parametrize("kernel, dilation, stride, padding", [
    (7, 1, 1, 3),     # kernel longer than the input: taps wrap around the period
    (4, 3, 2, 5),     # dilated extent 10 > n = 6: taps fold onto each other modulo n
    (3, 2, 1, 6),     # padding = n: outputs beyond one period, dy bins collide in dx
])
def test_circular_is_exact_periodic_convolution(kernel, dilation, stride, padding):
    """padding_mode="circular" runs at FFT length n even when windows wrap more than once."""
    rng = np.random.default_rng(kernel)
    x, w = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, kernel, 2))
    params = dict(stride=stride, padding=(padding, 1), dilation=(dilation, 1), padding_mode="circular")
    p = cl.plan(x.shape, w.shape, method="fft", **params)
    assert fft_module.geometry(p).L == (6, 6)
    ref = cl.plan(x.shape, w.shape, method="direct", **params)
    gy = rng.standard_normal(p.output_shape)
    assert_close(p.forward(x, w), ref.forward(x, w), np.float64, "fft")
    for a, e in zip(p.backward(gy, x, w), ref.backward(gy, x, w)):
        assert_close(a, e, np.float64, "fft")


def test_fft_size_is_no_larger_than_needed():
    """Valid correlation needs no wrap-around margin; "full" needs n + k - 1."""
    valid = cl.plan((1, 1, 64), (1, 1, 9), method="fft")
    full = cl.plan((1, 1, 64), (1, 1, 9), padding="full", method="fft")
    assert fft_module.geometry(valid).L == (64,)
    assert fft_module.geometry(full).L == (72,)


@pytest.mark.parametrize("method", FFT_METHODS)
def test_nonfinite_values_match_direct_exactly(method):
    """Beyond the shared mask check: NaN versus ±inf in each spoiled output is direct's, also for bad weights."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 15, 14))
    x[0, 0, 3, 4], x[1, 1, 9, 9], x[1, 0, 2, 12] = np.inf, -np.inf, np.nan
    x[0, 1, 10, 2] = 0.0
    w = rng.standard_normal((4, 2, 3, 3))
    w[2, 1, 0, 2] = np.inf  # spoils all of output channel 2 (inf * padded zero is NaN)
    params = dict(stride=(1, 2), padding=1, dilation=(2, 1))
    with np.errstate(invalid="ignore"):
        expected = cl.conv(x, w, method="direct", **params)
    got = cl.conv(x, w, method=method, **params)
    bad = ~np.isfinite(expected)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.array_equal(got[bad & ~np.isnan(expected)], expected[bad & ~np.isnan(expected)])
    assert_close(np.where(bad, 0, got), np.where(bad, 0, expected), np.float64, method)


@pytest.mark.parametrize("method", FFT_METHODS)
def test_backward_transforms_grad_y_once_for_dx_and_dw(monkeypatch, method):
    """ConvPlan.backward runs the joint pass (one forward transform per block of ``grad_y``, one of ``x``),
    and matches the separate passes; a non-finite or outlying argument falls back to them."""
    case = Case((2, 4, 19, 17), (6, 2, 5, 4), stride=(2, 1), padding=(3, 1), dilation=(1, 2), groups=2)
    x, w, _, gy = case.arrays(seed=1)
    p = cl.plan(case.x_shape, case.w_shape, case.dtype, method=method, **case.params)
    calls = []
    forward = fft_backends._ScipyTransform.forward
    monkeypatch.setattr(fft_backends._ScipyTransform, "forward",
                        lambda self, a: calls.append(a.shape) or forward(self, a))
    with cl.fft_backend("scipy"):
        p.backward(gy, x, w)  # the weight spectrum is cached from here on
        calls.clear()
        got = p.backward(gy, x, w)
    assert len(calls) == 2  # x and grad_y, one block each: not grad_y twice
    separate = (p.backward_input(gy, w), p.backward_weight(gy, x))
    for what, a, e in zip(("dx", "dw"), got[:2], _reference(case, x, w, gy)[1:]):
        assert_close(a, e, case.dtype, method, what=f"{method} joint {what}")
    for a, e in zip(got[:2], separate):
        assert_close(a, e, case.dtype, method)
    for bad in ("x", "gy"):
        xb, gyb = x.copy(), gy.copy()
        (xb if bad == "x" else gyb)[1, 2, 5, 3] = np.nan
        with np.errstate(invalid="ignore"):
            expected = cl.plan(case.x_shape, case.w_shape, case.dtype, method="direct", **case.params).backward(
                gyb, xb, w)
        got = p.backward(gyb, xb, w)
        for a, e in zip(got[:2], expected[:2]):
            assert np.array_equal(np.isnan(a), np.isnan(e))
            assert_close(np.nan_to_num(a), np.nan_to_num(e), case.dtype, method)


def test_backend_setting_is_validated_and_scoped():
    with pytest.raises(ValueError, match="FFT backend must be one of"):
        cl.set_fft_backend("cufft")
    with pytest.raises(ValueError, match="planner_effort"):
        cl.set_fft_backend("scipy", planner_effort="FFTW_FAST")
    before = cl.get_fft_backend()
    with cl.fft_backend("numpy", threads=1) as inner:
        assert cl.get_fft_backend() is inner
        seen = []
        t = threading.Thread(target=lambda: seen.append(cl.get_fft_backend()))
        t.start()
        t.join()
        assert seen == [before]  # the block is thread-local
    assert cl.get_fft_backend() is before


@pytest.mark.skipif("pyfftw" not in BACKENDS, reason="pyfftw does not import")
def test_wisdom_round_trip(tmp_path):
    x, w = np.ones((1, 1, 40)), np.ones((1, 1, 5))
    with cl.fft_backend("pyfftw", planner_effort="FFTW_ESTIMATE"):
        cl.conv(x, w, method="fft")
    path = tmp_path / "wisdom.bin"
    fft_backends.save_wisdom(path)
    assert fft_backends.load_wisdom(path)[0]  # double-precision wisdom was imported
    (tmp_path / "bad").write_bytes(b"not wisdom")
    with pytest.raises(ValueError, match="wisdom"):
        fft_backends.load_wisdom(tmp_path / "bad")


def test_place_zeroes_exactly_the_padding():
    """``place`` into a stale buffer (zeroing only the padding when it is whole blocks) or a zeroed one gives
    the same as a fresh ``np.zeros`` with ``values`` assigned at the index; wrapped and strided progressions."""
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(200):
        args = []
        for L in rng.integers(1, 9, size=rng.integers(1, 4)):
            count = int(rng.integers(1, L + 1))
            step = int(rng.choice([1, 1, 2]))
            start = int(rng.integers(-(L - 1), L - step * (count - 1))) if step * (count - 1) < L else 0
            args.append((start, step, count, int(L)))
        positions = [fft_module._progression(*a) for a in args]
        if not fft_module._unique(positions):
            continue
        index, segments = fft_module._index(positions), fft_module._all_segments(args)
        values = rng.standard_normal((2, *(a[2] for a in args)))
        expected = np.zeros((2, *(a[3] for a in args)))
        expected[index] = values
        for segs in (None,) if segments is None else (None, segments):
            stale = np.full(expected.shape, 7.0)
            assert np.array_equal(fft_module.place(stale, values, index, True, segs), expected), args
            zeroed = fft_module.place(np.zeros(expected.shape), values, index, True, segs, zeroed=True)
            assert np.array_equal(zeroed, expected), args
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_weight_spectrum_matches_numpy_fft(backend, kind):
    """The cached weight spectra against ``np.fft.rfftn`` of the dilated kernel, scaled by ``1/prod(L)``
    (conjugated for ``"forward"``, which transforms the flipped kernel instead), for one kernel and for groups,
    through every backend; a spectrum kept from an earlier ``w`` stays intact after the next ``w``'s."""
    rng = np.random.default_rng(2)
    for w_shape, groups, dilation in [((1, 1, 5, 4), 1, (2, 1)), ((4, 3, 3, 2), 2, (1, 3))]:
        x_shape = (1, w_shape[1] * groups, 13, 12)
        with cl.fft_backend(backend, planner_effort="FFTW_ESTIMATE"):
            p = cl.plan(x_shape, w_shape, np.float64, method="fft", padding=2, dilation=dilation, groups=groups).inner
            L = fft_module.geometry(p).L
            spectra = []
            for _ in range(2):
                w = rng.standard_normal(w_shape)
                spectra.append((w, fft_module.weight_spectrum(p, w, kind)))
        for w, S in spectra:
            wd = np.zeros((*w_shape[:2], *L))
            wd[(..., *(slice(0, d * (k - 1) + 1, d) for d, k in zip(dilation, w_shape[2:])))] = w
            W = np.fft.rfftn(wd, axes=(2, 3)).reshape(groups, w_shape[0] // groups, w_shape[1], -1) / np.prod(L)
            expected = np.conj(W).transpose(3, 0, 2, 1) if kind == "forward" else W.transpose(3, 0, 1, 2)
            assert_close(S, expected, np.float64, "fft", what=f"{kind} spectrum {w_shape} by {backend}")
