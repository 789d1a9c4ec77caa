"""convlab.dask against convlab in memory (and scipy.signal), over random chunkings.

Every case of the shared suite (each padding mode and spelling, stride, dilation, groups) runs with its
input cut at random places along every axis, channels included; the oracle is ``cl.conv`` /
``cl.conv_backward`` with ``method="direct"`` on the whole array.
"""

import pickle
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convlab as cl  # noqa: E402
import convlab.dask as cld  # noqa: E402
from convlab.tolerances import assert_close  # noqa: E402
from tests.cases import CASES, case_strategy  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # dask's "large graph" hints on tiny arrays


@pytest.fixture(autouse=True)
def threaded_scheduler():
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


def random_chunks(shape, rng):
    """A random cut of every axis into at most 3 chunks of sizes from 1 to the whole axis."""
    chunks = []
    for n in shape:
        cuts = sorted(set(rng.choice(np.arange(1, n), size=rng.integers(0, min(n - 1, 2) + 1), replace=False)
                          .tolist())) if n > 1 else []
        chunks.append(tuple(np.diff([0, *cuts, n]).tolist()))
    return tuple(chunks)


def check_forward(case, x, w, b, chunks, method="auto"):
    xd = da.from_array(x, chunks=chunks)
    y = cld.conv(xd, w, b, method=method, **case.params)
    expected = cl.conv(x, w, b, method="direct", **case.params)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    assert_close(y.compute(), expected, case.dtype, what=f"y with chunks {chunks}")
    return y


def check_backward(case, x, w, gy, chunks, gy_chunks):
    dx, dw, db = cld.conv_backward(da.from_array(gy, chunks=gy_chunks), da.from_array(x, chunks=chunks), w,
                                   **case.params)
    ref = cl.conv_backward(gy, x, w, method="direct", **case.params)
    assert isinstance(dx, da.Array) and isinstance(dw, np.ndarray) and isinstance(db, np.ndarray)
    assert dx.chunks == chunks
    for name, actual, expected in zip(("dx", "dw", "db"), (dx.compute(), dw, db), ref):
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, name
        assert_close(actual, expected, case.dtype, what=f"{name} with chunks {chunks}")




def _grid():
    """Half the shared grid, in float64: each padding spelling under two of the four modes (and each mode
    with half the spellings), plus every special case (stride, dilation, groups, float32). The grid's
    float32 half builds the same graphs; the hypothesis test below draws more."""
    modes = sorted(cl.padding.PADDING_MODES)
    specials = len(CASES) - 11
    seen, keep = {}, []
    for i, c in enumerate(CASES):
        if i >= specials:
            keep.append(i)
            continue
        key = (len(c.x_shape), c.padding_mode, c.dtype)
        spelling = seen[key] = seen.get(key, -1) + 1
        if c.dtype == "float64" and (spelling + modes.index(c.padding_mode)) % 2 == 0:
            keep.append(i)
    return keep


GRID = _grid()


@pytest.mark.parametrize("index", GRID, ids=[CASES[i].id for i in GRID])
def test_forward_and_backward_match_in_memory_on_random_chunks(index):
    case = CASES[index]
    rng = np.random.default_rng(index)
    x, w, b, gy = case.arrays(seed=index)
    check_forward(case, x, w, b, random_chunks(x.shape, rng))
    check_backward(case, x, w, gy, random_chunks(x.shape, rng), random_chunks(gy.shape, rng))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=case_strategy(), seed=st.integers(0, 2**32 - 1))
def test_random_cases_and_chunkings(case, seed):
    rng = np.random.default_rng(seed)
    x, w, b, gy = case.arrays(seed=seed % 1000)
    check_forward(case, x, w, b, random_chunks(x.shape, rng))
    check_backward(case, x, w, gy, random_chunks(x.shape, rng), random_chunks(gy.shape, rng))


@pytest.mark.parametrize("mode", sorted(cl.padding.PADDING_MODES))
def test_kernel_larger_than_chunks_and_asymmetric_padding(mode):
    """Chunks of 3 against a 15-wide halo: merged automatically, never handed to dask's overlap too small."""
    case = cl_case((1, 2, 40, 23), (2, 2, 15, 4), padding=((9, 4), (0, 3)), dilation=(1, 2), padding_mode=mode)
    x, w, b, gy = case.arrays(seed=1)
    y = check_forward(case, x, w, b, ((1,), (1, 1), (3,) * 13 + (1,), (3,) * 7 + (2,)))
    assert min(y.chunks[2]) >= 1 and len(y.chunks[2]) < 14  # merged, still several chunks
    check_backward(case, x, w, gy, ((1,), (1, 1), (3,) * 13 + (1,), (5, 18)), ((1,), (2,), (4,) * 9 + (3,), (4,) * 5))


def test_circular_wraps_across_chunks():
    """Circular padding as wide as the axis reads the far end of the array, several chunks away."""
    case = cl_case((1, 1, 12), (1, 1, 13), padding=[(12, 12)], padding_mode="circular", dilation=2)
    x, w, b, gy = case.arrays(seed=2)
    check_forward(case, x, w, b, ((1,), (1,), (2, 2, 3, 5)))
    check_backward(case, x, w, gy, ((1,), (1,), (2, 2, 3, 5)), ((1,), (1,), (4, 4, 4)))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_output_chunks_follow_input_chunks_and_stride(stride):
    x = np.random.default_rng(0).standard_normal((1, 1, 60, 61))
    w = np.ones((1, 1, 5, 5))
    padding = "same" if stride == 1 else 2
    y = cld.conv(da.from_array(x, chunks=(1, 1, 20, 16)), w, stride=stride, padding=padding)
    if stride == 1:
        assert y.chunks == ((1,), (1,), (20, 20, 20), (16, 16, 16, 13))  # "same": the input's chunks
    else:
        # each output chunk covers the inputs of one input chunk: boundaries at round(boundary / stride)
        assert y.chunks[2] == tuple(np.diff([0, *(round(b / stride) for b in (20, 40)), y.shape[2]]))
    assert_close(y.compute(), cl.conv(x, w, stride=stride, padding=padding, method="direct"), np.float64)


def test_channel_chunks_straddling_groups_are_reduced():
    """C_in = 6 in 3 groups cut at 1, 4, 5: pieces of a group are summed, whole groups concatenated."""
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 6, 9, 9)), rng.standard_normal((9, 2, 3, 3)), rng.standard_normal(9)
    y = cld.conv(da.from_array(x, chunks=((1, 1), (1, 3, 1, 1), (4, 5), (9,))), w, b, groups=3, padding=1)
    assert_close(y.compute(), cl.conv(x, w, b, groups=3, padding=1, method="direct"), np.float64)


@pytest.mark.parametrize("method", ["fft", "fft_tiled", "im2col", "auto"])
def test_explicit_methods_and_large_kernels_per_block(method):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 1, 70, 70)).astype(np.float32), rng.standard_normal((1, 1, 21, 21))
    w = w.astype(np.float32)
    y = cld.conv(da.from_array(x, chunks=25), w, padding="same", method=method)
    # with "auto" each (25 + 20)^2 block runs whatever the chooser picks for that block's shape
    assert_close(y.compute(), cl.conv(x, w, padding="same", method="direct"), np.float32, method)


def test_graph_pickles_and_inputs_are_not_modified():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((1, 2, 30, 30)), rng.standard_normal((3, 2, 3, 3))
    x0, w0 = x.copy(), w.copy()
    y = cld.conv(da.from_array(x, chunks=10), w, padding=1, padding_mode="reflect")
    pickle.dumps(dict(y.__dask_graph__()))  # no plans, locks or closures in any task
    y.compute()
    cld.conv_backward(da.ones(y.shape, chunks=10), da.from_array(x, chunks=10), w, padding=1)
    assert np.array_equal(x, x0) and np.array_equal(w, w0)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("shapes", [((41,), (4,)), ((23, 30), (5, 4)), ((12, 10, 11), (3, 4, 2))],
                         ids=["1d", "2d", "3d"])
def test_signal_functions_match_scipy(mode, shapes):
    import scipy.signal

    rng = np.random.default_rng(6)
    a, k = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    ad = da.from_array(a, chunks=random_chunks(a.shape, rng))
    for ours, theirs in ((cld.convolve, scipy.signal.convolve), (cld.correlate, scipy.signal.correlate),
                         (cld.fftconvolve, scipy.signal.fftconvolve)):
        assert_close(ours(ad, k, mode=mode).compute(), theirs(a, k, mode=mode), np.float64,
                     what=f"{ours.__name__} mode={mode}")


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("a_shape", "k_shape", "axes"),
                         [((5, 30), (1, 4), 1), ((4, 3, 20, 17), (1, 1, 5, 4), (-2, -1)),
                          ((12, 3, 14), (3, 1, 5), [2, 0]), ((3, 13, 2, 11), (1, 4, 1, 3), (1, 3))],
                         ids=["rows", "stack-of-images", "middle-axis-broadcast", "two-broadcast-axes"])
def test_fftconvolve_axes_matches_scipy(mode, a_shape, k_shape, axes):
    import scipy.signal

    rng = np.random.default_rng(10)
    a, k = rng.standard_normal(a_shape), rng.standard_normal(k_shape)
    y = cld.fftconvolve(da.from_array(a, chunks=random_chunks(a.shape, rng)), k, mode=mode, axes=axes)
    assert_close(y.compute(), scipy.signal.fftconvolve(a, k, mode=mode, axes=axes), np.float64,
                 what=f"fftconvolve axes={axes} mode={mode}")


def test_fftconvolve_axes_errors():
    a = da.ones((4, 8, 8), chunks=4)
    with pytest.raises(cl.ConvError, match="in2 must have size 1 along the axes not convolved"):
        cld.fftconvolve(a, np.ones((2, 3, 3)), axes=(1, 2))
    with pytest.raises(cl.ConvError, match="out of range"):
        cld.fftconvolve(a, np.ones((1, 3, 3)), axes=(1, 3))
    with pytest.raises(cl.ConvError, match="axes must be unique"):
        cld.fftconvolve(a, np.ones((1, 3, 3)), axes=(1, -2))


def test_zarr_round_trip(tmp_path):
    pytest.importorskip("zarr")
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((1, 1, 48, 40)).astype(np.float32), rng.standard_normal((2, 1, 7, 7))
    da.from_array(x, chunks=(1, 1, 16, 16)).to_zarr(str(tmp_path / "in.zarr"))
    xz = da.from_zarr(str(tmp_path / "in.zarr"))
    y = cld.conv(xz, w.astype(np.float32), padding="same", padding_mode="replicate")
    assert y.chunks[2:] == xz.chunks[2:]  # "same" keeps the chunks: written without a rechunk
    y.to_zarr(str(tmp_path / "out.zarr"))
    out = da.from_zarr(str(tmp_path / "out.zarr")).compute()
    expected = cl.conv(x, w.astype(np.float32), padding="same", padding_mode="replicate", method="direct")
    assert_close(out, expected, np.float32)


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield client


def test_local_cluster_with_worker_processes(cluster_client):
    case = cl_case((2, 4, 20, 18), (4, 2, 5, 3), stride=(2, 1), padding=2, groups=2, padding_mode="circular")
    x, w, b, gy = case.arrays(seed=8)
    y = cld.conv(da.from_array(x, chunks=(1, 3, 7, 8)), w, b, **case.params)
    assert_close(cluster_client.compute(y).result(), cl.conv(x, w, b, method="direct", **case.params), np.float64)
    # conv_backward's dask.compute uses the active client too
    dx, dw, db = cld.conv_backward(da.from_array(gy, chunks=4), da.from_array(x, chunks=(1, 3, 7, 8)), w,
                                   **case.params)
    ref = cl.conv_backward(gy, x, w, method="direct", **case.params)
    for actual, expected in zip((cluster_client.compute(dx).result(), dw, db), ref):
        assert_close(actual, expected, np.float64)
    # and suggest_chunks reads the workers' memory limit
    assert cld.suggest_chunks((2048, 2048), (31, 31)) == cld.suggest_chunks(
        (2048, 2048), (31, 31), memory_limit=min(
            w["memory_limit"] for w in cluster_client.scheduler_info()["workers"].values()) // 4)


@pytest.mark.parametrize(("shape", "kernel", "limit"), [((8192, 8192), (31, 31), "256MiB"),
                                                         ((512, 512, 512), (17, 17, 17), "64MiB"),
                                                         ((2, 16, 300, 300), (3, 3), "1MiB")])
def test_suggest_chunks_fit_budget_fast_lengths_and_halo(shape, kernel, limit):
    from dask.utils import parse_bytes
    from scipy.fft import next_fast_len

    chunks = cld.suggest_chunks(shape, kernel, np.float32, memory_limit=limit)
    spatial = chunks[len(shape) - len(kernel):]
    lead = chunks[:len(shape) - len(kernel)]
    halo = [k - 1 for k in kernel]
    block = np.prod(lead) * np.prod([c + h for c, h in zip(spatial, halo)]) * 4
    assert 16 * block <= parse_bytes(limit)  # the working-set factor of convlab.dask
    for c, h, n in zip(spatial, halo, shape[len(lead):]):
        assert c == n or (c >= h and next_fast_len(c + h, real=True) == c + h)


def test_errors_name_the_parameter():
    x = da.ones((1, 4, 8, 8), chunks=4)
    with pytest.raises(cl.ConvError, match="groups=3 must divide C_in=4"):
        cld.conv(x, np.ones((6, 2, 3, 3)), groups=3)
    with pytest.raises(cl.ConvError, match="padding_mode"):
        cld.conv(x, np.ones((2, 4, 3, 3)), padding_mode="wrap")
    with pytest.raises(cl.ConvError, match=r"bias must have shape \(2,\)"):
        cld.conv(x, np.ones((2, 4, 3, 3)), np.ones(3))
    with pytest.raises(cl.UnsupportedPlanError, match="winograd"):
        cld.conv(x, np.ones((2, 4, 3, 3)), stride=2, method="winograd")
    with pytest.raises(cl.ConvTypeError, match="x must be a real numeric array"):
        cld.conv(x.astype(complex), np.ones((2, 4, 3, 3)))
    with pytest.raises(cl.ConvError, match=r"grad_y must have shape \(1, 2, 6, 6\)"):
        cld.conv_backward(da.ones((1, 2, 8, 8)), x, np.ones((2, 4, 3, 3)))
    with pytest.raises(cl.ConvError, match="mode must be one of"):
        cld.convolve(da.ones(10), np.ones(3), mode="circular")
    with pytest.raises(cl.ConvError, match="mode='valid' needs in2 no larger"):
        cld.correlate(da.ones(3), np.ones(5), mode="valid")


def test_importing_convlab_does_not_import_dask():
    """convlab never imports dask itself (pyFFTW does, when both are installed: its interfaces import
    dask.array.fft; blocking pyFFTW shows convlab's own imports)."""
    code = ("import sys; sys.modules['pyfftw'] = None; import convlab; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'dask' or m == 'convlab.dask'], 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def cl_case(x_shape, w_shape, **params):
    from tests.cases import Case

    return Case(x_shape, w_shape, **params)


def test_block_plan_cache_is_bounded_by_workspace_bytes():
    from convlab.dask import _PlanCache

    cache = _PlanCache()
    keys = [((1, 1, n, n), (1, 1, 5, 5), np.dtype(np.float32), (1, 1), (1, 1), 1, "fft", None) for n in (20, 24, 28)]
    first = cache.get(keys[0], budget=10**12)
    assert cache.get(keys[0], budget=10**12) is first  # a hit returns the same plan
    for key in keys[1:]:
        cache.get(key, budget=1)  # nothing fits: only the newest plan stays
    assert list(cache.plans) == [keys[-1]]
    for key in keys:
        cache.get(key, budget=10**12)
    assert len(cache.plans) == 3


def test_report_scale_suite_writes_its_section(tmp_path, monkeypatch):
    from convlab.cli import main
    from convlab.report import scale

    monkeypatch.setattr(scale, "SCALE_CASES", (scale.ScaleCase(2, 48, 20, 5), scale.ScaleCase(3, 16, 8, 3)))
    assert main(["report", "--suite", "scale", "--out", str(tmp_path), "--no-peers"]) == 0
    import json

    results = json.loads((tmp_path / "scale.json").read_text())
    assert [(r["ndim"], r["kernel"]) for r in results["rows"]] == [(2, 5), (3, 3)]
    assert all(r["max_rel_diff"] < 1e-5 and r["dask_image_s"] is None for r in results["rows"])
    assert '<section id="scale">' in (tmp_path / "index.html").read_text()
    assert "| 3-D 16^3 | 8 | 3 |" in (tmp_path / "scale.md").read_text()
