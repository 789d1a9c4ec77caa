"""One knob for every thread pool convlab uses: numba's kernels, BLAS and FFTW.

The methods run compiled loops (numba), matrix products (numpy's BLAS) and
FFTs (pyFFTW or scipy.fft). Each library has its own pool; on a small
machine two pools sized independently oversubscribe the cores and every
call slows down. :func:`set_num_threads` sizes all three together.

The default is the number of cores this process may run on
(``len(os.sched_getaffinity(0))``), which respects ``taskset`` and container
CPU sets where ``os.cpu_count()`` does not.

Nothing is changed until :func:`set_num_threads` is called (importing convlab
leaves BLAS and FFTW as they were); the compiled kernels use the default from
the start.
"""

import contextlib

from threadpoolctl import threadpool_limits

from . import fft_backends
from .checks import check_positive_int
from .kernels import get_threads, set_threads

__all__ = ["get_num_threads", "num_threads", "set_num_threads"]


def _check(n):
    return check_positive_int("num_threads", n)


def get_num_threads() -> int:
    """Threads convlab's kernels use, and BLAS and FFTW once :func:`set_num_threads` was called.

    Examples
    --------
    >>> import os, convlab as cl
    >>> cl.get_num_threads() >= 1
    True
    """
    return get_threads()


def set_num_threads(n: int) -> int:
    """Use ``n`` threads in numba's kernels, BLAS (threadpoolctl) and FFTW (the FFT backend's ``threads``).

    Parameters
    ----------
    n : int
        Threads per call, >= 1. numba cannot start more threads than it was
        launched with (``NUMBA_NUM_THREADS``, by default the machine's
        cores); a larger ``n`` still applies to BLAS and FFTW.

    Returns
    -------
    int
        The previous value of :func:`get_num_threads`.

    Raises
    ------
    TypeError, ValueError
        If ``n`` is not a positive int.

    Examples
    --------
    >>> import convlab as cl
    >>> old = cl.set_num_threads(1)
    >>> cl.get_num_threads(), cl.get_fft_backend().threads
    (1, 1)
    >>> _ = cl.set_num_threads(old)
    """
    n = _check(n)

    old = get_threads()
    set_threads(n)
    threadpool_limits(limits=n, user_api="blas")  # process-wide, like the other two
    backend = fft_backends.get_fft_backend()
    fft_backends.set_fft_backend(backend.name, threads=n, planner_effort=backend.planner_effort)
    return old


@contextlib.contextmanager
def num_threads(n: int):
    """Use ``n`` threads (see :func:`set_num_threads`) inside a ``with`` block, then restore the previous count.

    The setting is process-wide while the block runs (BLAS's pool is), so do
    not nest blocks from several Python threads at once.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> with cl.num_threads(1):
    ...     y = cl.conv(np.ones((1, 2, 8, 8)), np.ones((2, 1, 3, 3)), groups=2, method="direct")
    ...     cl.get_num_threads()
    1
    >>> float(y[0, 0, 0, 0])
    9.0
    """
    n = _check(n)

    old_kernels = get_threads()
    backend = fft_backends.get_fft_backend()
    with threadpool_limits(limits=n, user_api="blas"):
        set_threads(n)
        fft_backends.set_fft_backend(backend.name, threads=n, planner_effort=backend.planner_effort)
        try:
            yield n
        finally:
            set_threads(old_kernels)
            fft_backends.set_fft_backend(backend.name, threads=backend.threads,
                                         planner_effort=backend.planner_effort)
