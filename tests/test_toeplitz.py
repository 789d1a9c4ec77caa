"""Toeplitz specifics: the cached sparsity pattern, the structure of T, the memory guard."""


import numpy as np
import pytest
import scipy.sparse

import convlab as cl
from convlab.operators import toeplitz_operator, toeplitz_pattern
from convlab.tolerances import assert_close
from tests.oracles import traced_peak


def test_pattern_is_built_once_and_refilled_per_call():
    p = cl.plan((2, 4, 9, 8), (6, 2, 3, 2), np.float64, padding=1, groups=2, stride=(2, 1), method="toeplitz")
    ref = p.with_method("direct")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(p.x_shape)
    pattern = toeplitz_pattern(p)
    for seed in range(3):
        w = rng.standard_normal(p.w_shape)
        assert_close(p.forward(x, w), ref.forward(x, w), np.float64, "toeplitz")
        assert toeplitz_pattern(p) is pattern
    indptr, indices, kernel_index, _ = pattern
    assert not indices.flags.writeable and not kernel_index.flags.writeable
    t = toeplitz_operator(p, w)
    assert t.data.tolist() == w.ravel()[kernel_index].tolist()
    assert np.shares_memory(t.indices, indices)  # refilled values, same index arrays


def test_one_dimensional_operator_is_toeplitz():
    """Stride 1: T[i, j] depends only on j - i (constant along diagonals)."""
    p = cl.plan((1, 1, 12), (1, 1, 4), np.float64, dilation=2, method="toeplitz")
    t = toeplitz_operator(p, np.array([[[1.0, 2.0, 3.0, 4.0]]])).toarray()
    for i in range(t.shape[0]):
        assert t[i].tolist() == [0.0] * i + t[0, :t.shape[1] - i].tolist()
    assert t[0].tolist() == [1, 0, 2, 0, 3, 0, 4, 0, 0, 0, 0, 0]


def test_channel_and_group_blocks():
    """Groups are zero blocks: an output channel's rows only touch its group's input channels."""
    p = cl.plan((1, 4, 5, 5), (6, 2, 3, 3), np.float32, groups=2, method="toeplitz")
    t = toeplitz_operator(p, np.ones(p.w_shape, np.float32))
    assert isinstance(t, scipy.sparse.csr_matrix) and t.has_canonical_format
    assert t.nnz == 6 * 9 * 2 * 9
    blocks = t.toarray().reshape(6, 9, 4, 25)
    assert not blocks[:3, :, 2:].any() and not blocks[3:, :, :2].any()
    assert blocks[:3, :, :2].any() and blocks[3:, :, 2:].any()


def test_memory_guard_names_the_methods_that_fit():
    p = cl.plan((2, 16, 48, 48), (16, 16, 5, 5), np.float32, padding=2, method="toeplitz", workspace_limit=2**21)
    x, w = np.zeros(p.x_shape, np.float32), np.zeros(p.w_shape, np.float32)
    with pytest.raises(cl.WorkspaceLimitError, match="'toeplitz' needs") as info:
        p.forward(x, w)
    assert info.value.needed > 2**21 and "im2col" in info.value.fitting and "toeplitz" not in info.value.fitting
    # the builder guards itself too: nothing is allocated for a pattern that cannot fit
    with pytest.raises(MemoryError):
        toeplitz_pattern(p)


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_workspace_bytes_bounds_what_is_allocated(mode):
    """Cold plan (pattern built inside the call): peak traced allocation less the result fits the estimate."""
    args = ((3, 4, 30, 28), (6, 2, 3, 3))
    params = dict(padding=2, groups=2, stride=(1, 2), padding_mode=mode, method="toeplitz")
    rng = np.random.default_rng(1)
    probe = cl.plan(*args, np.float64, **params)
    x, w = rng.standard_normal(probe.x_shape), rng.standard_normal(probe.w_shape)
    gy = rng.standard_normal(probe.output_shape)
    for call, result_bytes in (("forward", gy.nbytes), ("backward_input", x.nbytes), ("backward_weight", w.nbytes)):
        p = cl.plan(*args, np.float64, **params)
        budget = cl.get_method("toeplitz").workspace_bytes(p)
        arrays = {"forward": (x, w), "backward_input": (gy, w), "backward_weight": (gy, x)}[call]
        peak = traced_peak(lambda: getattr(p, call)(*arrays))
        assert peak - result_bytes <= budget + 64 * 1024, (call, peak - result_bytes, budget)


def test_kept_operator_follows_in_place_changes_of_the_weights():
    """The plan keeps T between calls with equal weights; changing w in place must not reuse a stale T."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 2, 7, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    gy = rng.standard_normal((2, 3, 7, 6))
    p = cl.plan(x.shape, w.shape, padding=1, padding_mode="reflect", method="toeplitz")
    ref = p.with_method("direct")
    for _ in range(2):
        assert_close(p.forward(x, w), ref.forward(x, w), np.float64, "toeplitz")
        assert_close(p.backward_input(gy, w), ref.backward_input(gy, w), np.float64, "toeplitz")
        w *= -0.5   # same array object, new contents
