"""scipy as a second outside oracle, always available."""

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import convlab as cl
from convlab.tolerances import assert_close

METHODS = cl.methods()
NDIMAGE_MODE = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest", "circular": "wrap",
                "symmetric": "reflect"}


def _skip_unless_supported(method, x, w, **params):
    try:
        cl.plan(x.shape, w.shape, x.dtype, method=method, **params)
    except cl.UnsupportedPlanError as exc:
        pytest.skip(str(exc))  # the refusal itself is checked by test_equivalence


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("kernel", [(3, 3), (5, 3), (4, 4), (1, 6)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correlate2d(method, mode, kernel, dtype):
    if mode == "same" and any(k % 2 == 0 for k in kernel):
        # scipy centres even kernels one sample to the left of PyTorch's "same" (extra pad at the end),
        # so compare against the matching slice of scipy's "full" instead.
        mode_scipy = "full"
    else:
        mode_scipy = mode
    rng = np.random.default_rng(sum(kernel))
    image, kern = rng.standard_normal((17, 14)).astype(dtype), rng.standard_normal(kernel).astype(dtype)
    x, w = image[None, None], kern[None, None]
    _skip_unless_supported(method, x, w, padding=mode)
    got = cl.conv(x, w, padding=mode, method=method)[0, 0]
    expected = scipy.signal.correlate2d(image.astype(np.float64), kern.astype(np.float64), mode=mode_scipy)
    if mode_scipy != mode:
        start = [k - 1 - (k - 1) // 2 for k in kernel]
        expected = expected[start[0]:start[0] + 17, start[1]:start[1] + 14]
    assert_close(got, expected, dtype, method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("padding_mode", sorted(NDIMAGE_MODE))
@pytest.mark.parametrize("kernel", [(3, 3), (4, 2), (3, 2, 3)])
def test_ndimage_correlate_padding_modes(method, padding_mode, kernel):
    """scipy.ndimage.correlate centres the kernel at k//2: padding (k//2, k-1-k//2) per axis."""
    rng = np.random.default_rng(len(kernel))
    image = rng.standard_normal((9, 8, 7)[:len(kernel)])
    kern = rng.standard_normal(kernel)
    padding = tuple((k // 2, k - 1 - k // 2) for k in kernel)
    x, w = image[None, None], kern[None, None]
    _skip_unless_supported(method, x, w, padding=padding, padding_mode=padding_mode)
    got = cl.conv(x, w, padding=padding, padding_mode=padding_mode, method=method)[0, 0]
    expected = scipy.ndimage.correlate(image, kern, mode=NDIMAGE_MODE[padding_mode])
    assert_close(got, expected, np.float64, method)
