"""Padding modes against numpy/PyTorch, and their adjoints against the definition."""

import numpy as np
import pytest

from convlab.padding import PADDING_MODES, pad, pad_adjoint, source_index
from tests.oracles import requires_torch, torch


@pytest.mark.parametrize("mode", sorted(PADDING_MODES))
@pytest.mark.parametrize("pads", [((0, 0), (2, 1)), ((3, 3), (0, 4)), ((1, 0), (4, 4))])
def test_adjoint_identity(mode, pads):
    """<pad(x), g> == <x, pad_adjoint(g)> for random x and g."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    padded = pad(x, pads, mode)
    g = rng.standard_normal(padded.shape)
    back = pad_adjoint(g, pads, mode)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(padded, g), np.vdot(x, back), rtol=1e-12)


@pytest.mark.parametrize("mode", sorted(PADDING_MODES))
def test_pad_reads_source_index(mode):
    x = np.arange(5.0)
    got = pad(x[None], ((2, 3),), mode)[0]
    src = source_index(5, 2, 3, mode)
    np.testing.assert_array_equal(got, np.where(src >= 0, x[np.maximum(src, 0)], 0.0))


@pytest.mark.parametrize("pads", [((2, 1), (3, 0)), ((5, 5), (6, 6)), ((0, 4), (1, 2))])
def test_symmetric_matches_numpy(pads):
    """torch has no edge-repeating mirror; numpy's "symmetric" is the oracle, up to pad = input size."""
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 6))
    np.testing.assert_array_equal(pad(x, pads, "symmetric"), np.pad(x, ((0, 0), (0, 0), *pads), mode="symmetric"))


@requires_torch
@pytest.mark.parametrize("mode", sorted(PADDING_MODES - {"symmetric"}))
def test_pad_matches_torch(mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 6))
    pads = ((2, 1), (3, 0))
    tmode = {"zeros": "constant"}.get(mode, mode)
    expected = torch.nn.functional.pad(torch.tensor(x), (3, 0, 2, 1), mode=tmode).numpy()
    np.testing.assert_array_equal(pad(x, pads, mode), expected)


def test_pad_never_writes_to_input():
    x = np.arange(12.0).reshape(1, 3, 4)
    copy = x.copy()
    g = pad(x, ((1, 1),), "circular")
    g += 1
    pad_adjoint(g, ((1, 1),), "circular")
    np.testing.assert_array_equal(x, copy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
def test_zero_padding_matches_numpy_and_is_a_new_array(dtype):
    """Zero padding is built by assignment into zeros (np.pad's fixed cost is tens of µs): same values,
    dtype and layout as numpy's, on 1 to 3 padded axes, and never a view of the input."""
    rng = np.random.default_rng(3)
    cases = (((2, 3, 5, 7), ((1, 2), (0, 3))), ((4, 9), ((3, 0),)), ((1, 2, 3, 4, 5), ((1, 1), (2, 2), (0, 1))))
    for shape, pads in cases:
        x = (10 * rng.standard_normal(shape)).astype(dtype)
        got = pad(x, pads, "zeros")
        expected = np.pad(x, ((0, 0),) * (x.ndim - len(pads)) + pads)
        assert got.dtype == expected.dtype and got.flags.c_contiguous and not np.shares_memory(got, x)
        np.testing.assert_array_equal(got, expected)
