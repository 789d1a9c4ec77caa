"""im2col specifics: chunking to the workspace limit, the pointwise GEMM path, honest workspace."""


import numpy as np
import pytest

import convlab as cl
from convlab.algorithms.im2col import chunk_bytes, chunking
from convlab.tolerances import assert_close
from tests.oracles import traced_peak

# (x_shape, w_shape, params): 1-D, 2-D with stride/dilation/groups, 3-D
PROBLEMS = [
    ((3, 4, 40), (6, 2, 5), dict(padding=3, stride=2, dilation=2, groups=2)),
    ((3, 4, 17, 15), (6, 2, 3, 2), dict(padding=((2, 1), (0, 3)), stride=(2, 1), dilation=(1, 2), groups=2)),
    ((2, 2, 7, 6, 5), (3, 2, 2, 3, 2), dict(padding=1, stride=(1, 2, 1))),
]


def _run(p, x, w, gy):
    return (p.forward(x, w), p.backward_input(gy, w), p.backward_weight(gy, x))


@pytest.mark.parametrize("x_shape, w_shape, params", PROBLEMS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunked_matches_unchunked(x_shape, w_shape, params, dtype):
    whole = cl.plan(x_shape, w_shape, dtype, method="im2col", **params)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(whole.output_shape).astype(dtype)
    expected = _run(whole, x, w, gy)
    assert chunking(whole) == (x_shape[0], whole.output_size[0])
    full = cl.get_method("im2col").workspace_bytes(whole)
    seen = set()
    # from "a few samples per chunk" down to "one output row of one sample per chunk"
    for limit in (full - 1, full // 2, full // 5, full // 12, 1):
        p = cl.plan(x_shape, w_shape, dtype, method="im2col", workspace_limit=limit, **params)
        try:
            got = _run(p, x, w, gy)
        except cl.WorkspaceLimitError:
            assert cl.get_method("im2col").workspace_bytes(p) > limit  # even one row does not fit
            continue
        assert cl.get_method("im2col").workspace_bytes(p) <= limit
        seen.add(chunking(p))
        # the same products and sums; BLAS kernels for narrower matrices and the order in which
        # chunks add into dx and dW may round differently, so compare to the dtype's tolerance
        for what, a, e in zip(("y", "dx", "dw"), got, expected):
            assert_close(a, e, dtype, "im2col", what=f"{what} chunked {chunking(p)} vs whole")
    assert any(samples < x_shape[0] for samples, _ in seen), seen
    assert any(rows < whole.output_size[0] for _, rows in seen), seen


def test_refuses_when_one_row_does_not_fit():
    p = cl.plan((2, 64, 30, 30), (8, 64, 3, 3), np.float32, method="im2col", workspace_limit=4096)
    x, w = np.zeros(p.x_shape, np.float32), np.zeros(p.w_shape, np.float32)
    with pytest.raises(cl.WorkspaceLimitError, match="'im2col'") as info:
        p.forward(x, w)
    assert info.value.needed > 4096


@pytest.mark.parametrize("groups", [1, 3])
def test_pointwise_is_a_plain_gemm(groups):
    p = cl.plan((2, 6, 5, 7), (9, 6 // groups, 1, 1), np.float64, groups=groups, method="im2col")
    assert chunk_bytes(p) == 2 * 9 * (6 // groups) * 8  # only the per-sample dW products; no column buffer
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(p.x_shape), rng.standard_normal(p.w_shape)
    gy = rng.standard_normal(p.output_shape)
    ref = p.with_method("direct")
    for got, expected in zip(_run(p, x, w, gy), _run(ref, x, w, gy)):
        assert_close(got, expected, np.float64, "im2col")


@pytest.mark.parametrize("limit", [None, 700_000])
def test_workspace_bytes_bounds_what_is_allocated(limit):
    """Peak traced allocation of each call, less its result, stays within workspace_bytes."""
    p = cl.plan((4, 8, 40, 36), (8, 4, 3, 3), np.float64, padding=1, groups=2, stride=(1, 2), method="im2col",
                workspace_limit=limit)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(p.x_shape), rng.standard_normal(p.w_shape)
    gy = rng.standard_normal(p.output_shape)
    budget = cl.get_method("im2col").workspace_bytes(p)
    assert budget > 300_000 and (limit is None or budget <= limit)
    for call, result_bytes in ((lambda: p.forward(x, w), gy.nbytes), (lambda: p.backward_input(gy, w), x.nbytes),
                               (lambda: p.backward_weight(gy, x), w.nbytes)):
        call()  # the first call imports modules (scipy.linalg, the kernels) and may compile: not workspace
        peak = traced_peak(call)
        # slack: numpy's small-array ufunc temporaries and Python objects, independent of the problem size
        assert peak - result_bytes <= budget + 64 * 1024, (peak - result_bytes, budget)


@pytest.mark.parametrize("x_shape, w_shape, params", PROBLEMS)
def test_parallel_kernels_match_serial(monkeypatch, x_shape, w_shape, params):
    """The parallel loops (taken from PARALLEL_MIN entries on, with 2+ threads) give the serial loops'
    results bit for bit: the same per-plane code, each plane written by one task."""
    from convlab.kernels import im2col as kernels

    p = cl.plan(x_shape, w_shape, np.float64, method="im2col", **params)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape)
    cols = rng.standard_normal((x_shape[0], x_shape[1] * int(np.prod(w_shape[2:])), *p.output_size))
    geometry = kernels.geometry(p.kernel_size, p.stride, p.dilation, [lo for lo, _ in p.padding])
    first = (1,) + (0,) * (p.ndim - 1)  # a chunk that starts at the second output row
    chunk = cols[:, :, 1:].copy()

    def both():
        return (kernels.im2col(x, np.empty_like(chunk), geometry, first),
                kernels.col2im_add(chunk, np.full(x_shape, 2.0), geometry, first),
                kernels.col2im_add(chunk, np.full(x_shape, 2.0), geometry, first, zero=True))

    serial = both()
    launches = []
    for name in ("_im2col_parallel", "_col2im_parallel"):
        kernel = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _k=kernel: launches.append(_k) or _k(*a))
    monkeypatch.setattr(kernels, "PARALLEL_MIN", 0)
    with cl.num_threads(2):
        parallel = both()
    assert len(launches) == 3
    for a, e in zip(parallel, serial):
        np.testing.assert_array_equal(a, e)
    # and the serial result is the one the whole-problem method computes
    np.testing.assert_array_equal(serial[0], kernels.im2col(x, np.empty_like(cols), geometry, (0,) * p.ndim)[:, :, 1:])
