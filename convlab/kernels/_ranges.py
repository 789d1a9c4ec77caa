"""Index ranges shared by the compiled loop nests (imported by the kernel modules only: it imports numba)."""

import numba
import numpy as np

__all__ = ["unsigned", "valid_range"]


@numba.njit(cache=True, inline="always")
def valid_range(n_out, n_in, stride, offset):
    """Range ``[lo, hi)`` of output positions ``i`` with ``0 <= stride*i + offset < n_in`` (empty: ``lo == hi``)."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    hi = 0
    if n_in - 1 - offset >= 0:
        hi = (n_in - 1 - offset) // stride + 1
    return lo, max(lo, min(hi, n_out))


@numba.njit(cache=True, inline="always")
def unsigned(index):
    """``index`` (known >= 0) as unsigned: numba then drops the wrap-around test of a negative index, a branch
    per element that keeps LLVM from vectorising the loop (see :mod:`convlab.kernels.winograd`)."""
    return np.uintp(index)
