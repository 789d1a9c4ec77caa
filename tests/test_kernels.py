"""The compiled kernels (:mod:`convlab.kernels`) where the shared suite does not reach them.

The shared suite runs the direct method's loop nest only on its thin-group
cases; here the loops are called directly on every combination of odd
strides, dilations, asymmetric padding and groups the suite leaves out, in
1-D, 2-D and 3-D, on non-contiguous inputs, and compared with PyTorch (an
outside oracle) and with scipy for a single channel.
"""

import logging
import threading

import numpy as np
import pytest
import scipy.signal

import convlab as cl
from convlab.kernels import direct as kernels
from convlab.tolerances import assert_close

CASES = [
    # x_shape, w_shape, stride, dilation, padding (lo per axis, hi implied), groups
    ((2, 3, 17), (6, 1, 4), (3,), (2,), (2,), 3),
    ((1, 2, 9), (2, 2, 9), (1,), (1,), (0,), 1),                        # kernel as large as the input
    ((2, 4, 11, 10), (8, 2, 3, 2), (2, 3), (2, 1), (1, 2), 2),
    ((2, 6, 12, 9), (12, 1, 5, 3), (3, 1), (1, 3), (4, 0), 6),           # depthwise, channel multiplier 2
    ((1, 3, 7, 8), (3, 3, 1, 1), (2, 2), (1, 1), (0, 0), 1),            # 1x1, stride 2
    ((2, 4, 5, 6, 7), (4, 1, 3, 2, 3), (2, 1, 3), (1, 2, 1), (1, 0, 2), 4),
    ((1, 2, 6, 5, 4), (4, 2, 2, 3, 2), (1, 2, 1), (2, 1, 1), (0, 1, 1), 1),
    # stride 1 along the plane (dx by the gather form, dw by flat dot products), padding beyond the kernel's reach
    ((2, 3, 7, 9), (3, 1, 3, 3), (1, 1), (1, 2), (3, 2), 3),
    ((1, 2, 5, 70), (2, 1, 3, 5), (1, 1), (1, 1), (1, 2), 2),          # rows longer than a vector loop's body
    ((1, 2, 5, 6, 7), (2, 1, 2, 3, 3), (1, 1, 1), (1, 1, 2), (1, 1, 2), 2),
    ((2, 3, 13, 12), (4, 3, 3, 4), (2, 3), (1, 2), (1, 1), 1),         # dw's stride phases, two residues each
    ((1, 2, 9, 20), (2, 1, 2, 3), (4, 7), (1, 1), (0, 1), 2),           # strides beyond the kernel's extent
]


def _plan(x_shape, w_shape, stride, dilation, lo, groups, dtype):
    # asymmetric padding: lo in front, lo + 1 behind
    return cl.plan(x_shape, w_shape, dtype, stride=stride, dilation=dilation,
                   padding=tuple((p, p + 1) for p in lo), groups=groups, method="direct")


def _torch_all(x, w, gy, p):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[x.ndim - 2]
    pads = [v for lo, hi in reversed(p.padding) for v in (lo, hi)]
    xt = F.pad(torch.from_numpy(x.astype(np.float64)), pads).requires_grad_()
    wt = torch.from_numpy(w.astype(np.float64)).requires_grad_()
    y = conv(xt, wt, stride=p.stride, dilation=p.dilation, groups=p.groups)
    y.backward(torch.from_numpy(gy.astype(np.float64)))
    crop = (Ellipsis, *(slice(lo, lo + n) for (lo, _), n in zip(p.padding, p.input_size)))
    return y.detach().numpy(), xt.grad.numpy()[crop], wt.grad.numpy()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{len(c[0]) - 2}d-{c[0]}-{c[1]}-s{c[2]}-d{c[3]}-g{c[5]}")
def test_direct_kernels_match_torch(case, dtype):
    x_shape, w_shape, stride, dilation, lo, groups = case
    p = _plan(x_shape, w_shape, stride, dilation, lo, groups, dtype)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(p.output_shape).astype(dtype)
    y = kernels.forward(x, w, p.output_size, p.stride, p.dilation, lo)
    dx = kernels.backward_input(gy, w, p.input_size, groups, p.stride, p.dilation, lo)
    dw = kernels.backward_weight(gy, x, p.kernel_size, groups, p.stride, p.dilation, lo)
    for name, got, expected in zip(("y", "dx", "dw"), (y, dx, dw), _torch_all(x, w, gy, p)):
        assert got.dtype == np.dtype(dtype)
        assert_close(got, expected, dtype, what=f"kernel {name} vs torch")


def test_direct_kernels_accept_non_contiguous_inputs_and_leave_them_alone():
    rng = np.random.default_rng(4)
    base_x = rng.standard_normal((3, 8, 14, 20))
    x = base_x[::2, ::2, :, ::2]                       # (2, 4, 14, 10), strided in three axes
    w = np.asfortranarray(rng.standard_normal((4, 1, 3, 3)))
    x_copy, w_copy = x.copy(), w.copy()
    p = _plan(x.shape, w.shape, (2, 2), (1, 1), (1, 1), 4, "float64")
    gy = np.asfortranarray(rng.standard_normal(p.output_shape))
    assert not x.flags.c_contiguous and not w.flags.c_contiguous and not gy.flags.c_contiguous
    got = (kernels.forward(x, w, p.output_size, p.stride, p.dilation, (1, 1)),
           kernels.backward_input(gy, w, p.input_size, 4, p.stride, p.dilation, (1, 1)),
           kernels.backward_weight(gy, x, p.kernel_size, 4, p.stride, p.dilation, (1, 1)))
    expected = (kernels.forward(np.ascontiguousarray(x), np.ascontiguousarray(w), p.output_size, p.stride,
                                p.dilation, (1, 1)),
                *_torch_all(x, w, gy, p)[1:])
    for a, e in zip(got, expected):
        assert_close(a, e, np.float64)
    assert np.array_equal(x, x_copy) and np.array_equal(w, w_copy)


def test_direct_kernel_single_channel_matches_scipy():
    rng = np.random.default_rng(5)
    image, kernel = rng.standard_normal((23, 31)), rng.standard_normal((4, 5))
    y = kernels.forward(image[None, None], kernel[None, None], (20, 27), (1, 1), (1, 1), (0, 0))
    assert_close(y[0, 0], scipy.signal.correlate2d(image, kernel, mode="valid"), np.float64)


def test_direct_kernels_propagate_nan_only_to_touching_outputs():
    x = np.ones((1, 1, 9))
    x[0, 0, 4] = np.nan
    y = kernels.forward(x, np.ones((1, 1, 3)), (9,), (1,), (1,), (1,))
    assert np.isnan(y[0, 0]).tolist() == [False, False, False, True, True, True, False, False, False]


def _literal_1d(x, w, dy, stride, dilation, pad):
    """dx and dw of a 1-D correlation, summed term by term over the (output, tap) pairs that read inside x."""
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for n, o, i, e in np.ndindex(dy.shape[0], w.shape[0], dy.shape[2], w.shape[2]):
        j = stride * i - pad + dilation * e
        if 0 <= j < x.shape[2]:
            c = o // (w.shape[0] // x.shape[1])
            dx[n, c, j] += w[o, 0, e] * dy[n, o, i]
            dw[o, 0, e] += dy[n, o, i] * x[n, c, j]
    return dx, dw


@pytest.mark.parametrize("stride", [1, 2])
def test_direct_backward_kernels_keep_non_finite_values_to_the_terms_that_read_them(stride):
    # the fast paths add padded zeros times weights (dx) or zeros of dy times x (dw); they must not turn an
    # infinity that no term reads into a NaN
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 2, 11)), rng.standard_normal((4, 1, 3))
    x[0, 1, 10] = np.inf          # read by the last tap only, and only where dy is in range
    w[1, 0, 2] = -np.inf
    n_out = (11 + 2 * 1 - 2 * 2 - 1) // stride + 1
    dy = rng.standard_normal((2, 4, n_out))
    dx = kernels.backward_input(dy, w, (11,), 2, (stride,), (2,), (1,))
    dw = kernels.backward_weight(dy, x, (3,), 2, (stride,), (2,), (1,))
    expected_dx, expected_dw = _literal_1d(x, w, dy, stride, 2, 1)
    for got, expected in ((dx, expected_dx), (dw, expected_dw)):
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        assert np.array_equal(np.isinf(got), np.isinf(expected))
        finite = np.isfinite(expected)
        assert_close(got[finite], expected[finite], np.float64)


def test_kernels_run_concurrently_from_python_threads():
    # numba's workqueue layer aborts the process on concurrent launches unless they are serialised.
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 4, 30, 30)), rng.standard_normal((4, 1, 3, 3))
    expected = kernels.forward(x, w, (30, 30), (1, 1), (1, 1), (1, 1))
    errors = []

    def work():
        try:
            for _ in range(10):
                assert_close(kernels.forward(x, w, (30, 30), (1, 1), (1, 1), (1, 1)), expected, np.float64)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises((ValueError, TypeError), match="num_threads must be a positive int"):
        cl.set_num_threads(bad)


def test_num_threads_sets_and_restores_every_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = (cl.get_num_threads(), cl.get_fft_backend().threads, blas())
    with cl.num_threads(1):
        assert cl.get_num_threads() == 1 and cl.get_fft_backend().threads == 1
        assert all(n == 1 for n in blas())
        y = cl.conv(np.ones((1, 2, 6)), np.ones((2, 1, 3)), groups=2, method="direct")
    assert (cl.get_num_threads(), cl.get_fft_backend().threads, blas()) == before
    assert y.tolist() == [[[3.0] * 4] * 2]


def test_slow_first_compile_is_announced_once(caplog, monkeypatch):
    from convlab.kernels import _runtime

    clock = iter([0.0, 2.5, 10.0, 10.1])
    monkeypatch.setattr(_runtime, "_clock", lambda: next(clock))

    @_runtime.njit()
    def twice(a):
        return 2 * a

    with caplog.at_level(logging.WARNING, logger="convlab.kernels"):
        assert twice(np.int64(3)) == 6        # compiles (or loads from the cache): "2.5 s", announced
        assert twice(np.int64(4)) == 8        # same signature: no compile, no message
    messages = [r.getMessage() for r in caplog.records if r.name == "convlab.kernels"]
    assert len(messages) == 1 and "twice" in messages[0] and "2.5 s" in messages[0]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
def test_direct_kernels_split_a_wide_plane_into_bands(threads, stride):
    # rows of 3000 float64 make a band a few rows (convlab.kernels.direct.BAND_BYTES), so the one plane runs
    # as several bands with their halos, split across threads; an infinity sits in the halo two bands share
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((1, 1, 29, 3000)), rng.standard_normal((1, 1, 3, 4))
    p = _plan(x.shape, w.shape, stride, (2, 1), (2, 1), 1, "float64")
    assert p.input_size[1] * 8 * 8 > kernels.BAND_BYTES  # more than eight rows would not fit one band
    x[0, 0, 12, 7] = np.inf
    gy = rng.standard_normal(p.output_shape)
    with cl.num_threads(threads):
        got = (kernels.forward(x, w, p.output_size, p.stride, p.dilation, (2, 1)),
               kernels.backward_input(gy, w, p.input_size, 1, p.stride, p.dilation, (2, 1)),
               kernels.backward_weight(gy, x, p.kernel_size, 1, p.stride, p.dilation, (2, 1)))
    for name, a, e in zip(("y", "dx", "dw"), got, _torch_all(x, w, gy, p)):
        assert np.array_equal(np.isnan(a), np.isnan(e)) and np.array_equal(np.isinf(a), np.isinf(e)), name
        finite = np.isfinite(e)
        assert finite.sum() > 0.9 * e.size or name == "dw", name
        assert_close(a[finite], e[finite], np.float64, what=f"banded kernel {name} vs torch")


@pytest.mark.parametrize("groups", [2, 1])
@pytest.mark.parametrize("width", [55, 27])
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (2, 5), (1, 19), (13, 13)])
def test_direct_kernels_sum_taps_in_groups(kernel, width, groups):
    # 1, 9, 10, 19 and 169 taps: one group, one full group, two of five, three uneven ones, nineteen passes;
    # 56-wide output rows are written row by row when one pass is all there is, 28-wide ones through a scratch
    # band (convlab.kernels.direct._wide), and two channels per group always through the scratch band
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((1, 2, 6, width)), rng.standard_normal((2, 2 // groups, *kernel))
    x[0, 0, 2, 5], x[0, 1, 3, 20] = np.nan, np.inf
    lo = (kernel[0] // 2, kernel[1] // 2)
    p = _plan(x.shape, w.shape, (1, 1), (1, 1), lo, groups, "float64")
    gy = rng.standard_normal(p.output_shape)
    got = (kernels.forward(x, w, p.output_size, p.stride, p.dilation, lo),
           kernels.backward_input(gy, w, p.input_size, groups, p.stride, p.dilation, lo),
           kernels.backward_weight(gy, x, p.kernel_size, groups, p.stride, p.dilation, lo))
    for name, a, e in zip(("y", "dx", "dw"), got, _torch_all(x, w, gy, p)):
        assert np.array_equal(np.isnan(a), np.isnan(e)) and np.array_equal(np.isinf(a), np.isinf(e)), name
        finite = np.isfinite(e)
        assert_close(a[finite], e[finite], np.float64, what=f"kernel {name} vs torch")


def test_direct_kernels_choose_both_ways_of_writing_a_band():
    # the cases above reach both branches: one pass over 56-wide rows row by row, 28-wide ones or several
    # passes through a scratch band
    assert not kernels._wide(56, 1) and kernels._wide(28, 1) and kernels._wide(56, 2) and not kernels._wide(64, 3)
