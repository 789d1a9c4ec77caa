"""Winograd beyond the shared suite: the transforms, both tile sizes, and what it refuses."""

import numpy as np
import pytest

import convlab as cl
from convlab.algorithms import winograd
from convlab.tolerances import assert_close, relative_error, tolerance
from tests.oracles import traced_peak


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (3, 2), (2, 5), (5, 1), (1, 3)])
def test_matrices_compute_correlation_with_alpha_multiplications(m, r):
    AT, G, BT = winograd.winograd_matrices(m, r)
    alpha = m + r - 1
    assert AT.shape == (m, alpha) and G.shape == (alpha, r) and BT.shape == (alpha, alpha)
    rng = np.random.default_rng(0)
    for _ in range(5):
        d, g = rng.standard_normal(alpha), rng.standard_normal(r)
        np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), np.correlate(d, g, "valid"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
def test_lavin_gray_input_transforms_are_integer(m):
    """F(2,3) and F(4,3) as in the paper: Bᵀ holds small integers, all fractions live in G."""
    _, _, BT = winograd.winograd_matrices(m, 3)
    np.testing.assert_array_equal(BT, np.round(BT))
    assert np.abs(BT).max() <= (1 if m == 2 else 5)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_each_tile_size_forward_and_backward_match_direct(monkeypatch, m, dtype):
    """Force F(2x2, 3x3) and F(4x4, 3x3) (the method picks m itself) and check all three passes."""
    monkeypatch.setattr(winograd, "tile_size", lambda output, r, ndim=2: m)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 11, 9)).astype(dtype)   # 11 and 9 are not multiples of the tile
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    params = dict(padding=1, groups=2)
    p = cl.plan(x.shape, w.shape, dtype, method="winograd", **params)
    ref = cl.plan(x.shape, w.shape, np.float64, method="direct", **params)
    gy = rng.standard_normal(p.output_shape).astype(dtype)
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    assert_close(p.forward(x, w), ref.forward(x64, w64), dtype, "winograd", "y")
    for what, got, expected in zip(("dx", "dw"), p.backward(gy, x, w)[:2], ref.backward(gy64, x64, w64)[:2]):
        assert_close(got, expected, dtype, "winograd", what)


def test_chunks_of_samples_with_a_partial_last_chunk_match_direct(monkeypatch):
    """A pass runs chunk by chunk; force two samples per chunk on five samples (2 + 2 + 1), dw summed over them."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((5, 4, 10, 12)), rng.standard_normal((6, 2, 3, 3))
    params = dict(padding=1, groups=2)
    p = cl.plan(x.shape, w.shape, method="winograd", **params)
    gy = rng.standard_normal(p.output_shape)
    chunks = []
    monkeypatch.setattr(winograd, "_chunk", lambda batch, per_sample: chunks.append(batch) or min(batch, 2))
    got = [p.forward(x, w), *p.backward(gy, x, w)[:2]]
    expected = [cl.conv(x, w, method="direct", **params),
                *cl.conv_backward(gy, x, w, method="direct", **params)[:2]]
    assert chunks, "the passes no longer ask _chunk how to split the batch"
    for a, e in zip(got, expected):
        assert_close(a, e, np.float64, "winograd")


@pytest.mark.parametrize("x_shape, w_shape", [
    ((2, 3, 40), (5, 3, 3)),             # 1-D, F(4, 3)
    ((1, 2, 7, 9, 6), (3, 2, 3, 2, 3)),  # 3-D, mixed taps
    ((2, 4, 13, 10), (4, 4, 5, 2)),      # non-square kernel, F(2, 5) x F(5, 2)
])
def test_other_dimensions_and_kernel_sizes(x_shape, w_shape):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    gy_shape = cl.plan(x_shape, w_shape, method="direct", padding="same").output_shape
    gy = rng.standard_normal(gy_shape)
    got = cl.conv_backward(gy, x, w, padding="same", method="winograd")
    expected = cl.conv_backward(gy, x, w, padding="same", method="direct")
    assert_close(cl.conv(x, w, padding="same", method="winograd"),
                 cl.conv(x, w, padding="same", method="direct"), np.float64, "winograd")
    for a, e in zip(got, expected):
        assert_close(a, e, np.float64, "winograd")


def test_float32_error_of_f4x4_on_a_cnn_layer_is_within_the_shared_tolerance():
    """F(4x4, 3x3) rounds more than direct in float32 (transform entries up to 8), but stays
    well inside the float32 tolerance on a 64-channel layer (measured in docs/auto.md)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 64, 24, 24)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    expected = cl.conv(x.astype(np.float64), w.astype(np.float64), padding=1, method="direct")
    err_winograd = relative_error(cl.conv(x, w, padding=1, method="winograd"), expected)
    err_direct = relative_error(cl.conv(x, w, padding=1, method="direct"), expected)
    assert err_direct < err_winograd < tolerance(np.float32, "winograd") / 2


@pytest.mark.parametrize("params, word", [
    (dict(stride=2), "stride"), (dict(dilation=2), "dilation"),
])
def test_refuses_stride_and_dilation_by_name(params, word):
    with pytest.raises(cl.UnsupportedPlanError, match=f"winograd.*{word}"):
        cl.plan((1, 2, 16, 16), (2, 2, 3, 3), method="winograd", **params)


def test_refuses_large_kernels_by_name():
    with pytest.raises(cl.UnsupportedPlanError, match="kernel size"):
        cl.plan((1, 1, 32, 32), (1, 1, 7, 7), method="winograd")


def test_tile_size_prefers_large_tiles_and_shrinks_for_small_outputs():
    assert winograd.tile_size(56, 3) == 4       # F(4, 3): 14 tiles of 6 points
    assert winograd.tile_size(2, 3) == 2        # F(2, 3): one tile of 4, not one of 6
    assert all(m + 3 - 1 <= winograd.MAX_ALPHA for m in map(lambda o: winograd.tile_size(o, 3), range(1, 50)))


def test_cached_weight_transforms_follow_in_place_changes_of_the_weights():
    """The plan keeps U = G w Gᵀ between calls; changing w in place must not reuse a stale U."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((2, 4, 9, 9))
    p = cl.plan(x.shape, w.shape, padding=1, method="winograd")
    ref = cl.plan(x.shape, w.shape, padding=1, method="direct")
    for _ in range(2):
        assert_close(p.forward(x, w), ref.forward(x, w), np.float64, "winograd")
        assert_close(p.backward_input(gy, w), ref.backward_input(gy, w), np.float64, "winograd")
        w *= -0.5   # same array object, new contents


def test_3d_tiles_stay_small_enough_for_float32():
    """F(4³, 3³) compounds the transforms' error over three axes (3.3e-5 measured on a 4-channel
    32³ volume against a 5e-5 tolerance); 3-D plans use tiles of at most MAX_ALPHA_3D points."""
    from convlab.tolerances import relative_error

    assert winograd.tile_size(32, 3, ndim=3) + 3 - 1 <= winograd.MAX_ALPHA_3D
    assert winograd.tile_size(32, 5, ndim=3) == 1      # a 5-tap kernel still gets one output per tile
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 16, 16, 16)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3, 3)).astype(np.float32)
    y = cl.conv(x, w, padding=1, method="winograd")
    reference = cl.conv(x.astype(np.float64), w.astype(np.float64), padding=1, method="direct")
    assert relative_error(y, reference) < 5e-6


@pytest.mark.parametrize("x_shape, w_shape", [((2, 6, 29, 23), (5, 6, 3, 3)), ((3, 4, 13), (2, 4, 3))])
def test_workspace_bytes_bounds_what_is_allocated(x_shape, w_shape):
    """Peak traced allocation of each pass, less its result, stays within workspace_bytes (the tile layout
    pads every band with the tiles its last tile reads into: a count of tiles alone falls short)."""
    p = cl.plan(x_shape, w_shape, np.float64, padding=1, method="winograd")
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(p.x_shape), rng.standard_normal(p.w_shape)
    gy = rng.standard_normal(p.output_shape)
    budget = cl.get_method("winograd").workspace_bytes(p)
    for call, result_bytes in ((lambda: p.forward(x, w), gy.nbytes), (lambda: p.backward_input(gy, w), x.nbytes),
                               (lambda: p.backward_weight(gy, x), w.nbytes)):
        call()  # the first call loads the kernels and caches the transformed weights: not workspace
        peak = traced_peak(call)
        assert peak - result_bytes <= budget + 64 * 1024, (peak - result_bytes, budget)
