"""A parallel kernel that does (almost) nothing: what one launch of a compiled kernel costs.

The cost models price each call of a ``parallel=True`` kernel by one machine
constant, ``launch`` (:mod:`convlab.algorithms.costs`): on small problems that
fixed cost, not the arithmetic, decides between methods. This kernel goes
through the same :func:`~convlab.kernels._runtime.njit` wrapper and launch path
as the methods' kernels, so that it is measured with whatever that path
costs (:func:`convlab.tuning.calibration.measure_launch`).
"""

import numpy as np
from numba import prange

from ._runtime import njit

__all__ = ["launch_once", "cached"]


@njit(parallel=True)
def _touch(a):
    for i in prange(a.shape[0]):
        a[i] += 1.0


_buffer = np.zeros(2)


def launch_once():
    """One launch of the trivial parallel kernel (compiled, or loaded from numba's disk cache, on first use)."""
    _touch(_buffer)


def cached():
    """Whether the kernel is compiled in this process or stored in numba's disk cache, so that its first
    call costs no compilation (best effort: ``False`` when that cannot be told)."""
    import os

    try:
        dispatcher = _touch._dispatcher()
        if dispatcher.signatures:
            return True
        return os.path.exists(dispatcher._cache._cache_file._index_path)
    except Exception:  # numba's cache internals differ between versions: do not guess
        return False
