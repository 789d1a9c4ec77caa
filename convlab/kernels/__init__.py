"""Compiled inner loops of the convolution methods (numba), one module per method family.

The methods in :mod:`convlab.algorithms` import these modules inside the
functions that use them, so ``import convlab`` neither imports numba nor
compiles anything; each kernel compiles on its first call (or loads from
numba's on-disk cache, ``cache=True``). The kernels take plain arrays and
integers and import nothing else from convlab: they know loops, not plans.

Every kernel works on three spatial dimensions; 1-D and 2-D problems are
viewed with leading axes of size one (:func:`as_3d`), which costs nothing
and keeps one compiled loop nest per kernel and dtype.
"""

from ._runtime import call_limit, default_threads, get_threads, launch, set_threads

__all__ = ["as_3d", "call_limit", "default_threads", "get_threads", "launch", "pad_3d", "set_threads"]


def as_3d(a):
    """``(N, C, *spatial)`` with 1 to 3 spatial axes -> a C-contiguous ``(N, C, D, H, W)`` view (or copy)."""
    import numpy as np

    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[:2] + (1,) * (5 - a.ndim) + a.shape[2:])


def pad_3d(values, fill):
    """A per-axis tuple of 1 to 3 ints, extended in front with ``fill`` to three."""
    values = tuple(int(v) for v in values)
    return (fill,) * (3 - len(values)) + values
