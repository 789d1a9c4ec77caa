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

Sharing the cores: every pass a method runs goes through :func:`call_threads`,
which lowers BLAS to one thread for that call when threading cannot pay —

* the pass is small (below :data:`SMALL_FLOPS`): starting and joining BLAS
  threads costs more than it saves;
* other processes keep the cores busy: BLAS (OpenBLAS) threads spin while
  they wait for each other, and a spinning thread on a core another process
  needs makes the call many times slower, not just twice. With two busy
  processes on two cores, an 11×11 im2col on ``(1, 8, 32, 32)`` took 86 ms
  with two BLAS threads and 0.37 ms with one, and a ``(16, 64, 56, 56)``
  Winograd layer 1.5 s against 0.19 s.

The load of other processes is read from ``/proc/stat`` (all cores' busy time
minus this process's own CPU time) at most every :data:`LOAD_SAMPLE_S` seconds,
falling back to :func:`os.getloadavg` where there is no ``/proc``; BLAS then
gets as many threads as cores are left free (at least one, at most
:func:`get_num_threads`). :func:`set_num_threads` stays the one knob: the policy
only ever lowers the count it sets, for one call at a time.
"""

import contextlib
import os
import threading
import time

from threadpoolctl import ThreadpoolController, threadpool_limits

from . import fft_backends
from .checks import check_positive_int
from .kernels import call_limit, get_threads, set_threads

__all__ = ["get_num_threads", "num_threads", "set_num_threads", "call_threads", "blas_threads_for", "free_cores",
           "SMALL_FLOPS", "TINY_FLOPS", "LOAD_SAMPLE_S"]

#: Passes below this many FLOPs (2 per multiply-add) run BLAS in one thread.
SMALL_FLOPS = 5e7
#: Passes below this many FLOPs leave BLAS's count alone: OpenBLAS itself runs a GEMM of fewer than
#: 2^18 multiply-adds in one thread, and switching its count costs tens of microseconds.
TINY_FLOPS = 2 * 2 ** 18
#: Seconds between two readings of the other processes' load.
LOAD_SAMPLE_S = 0.5


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


# --------------------------------------------------------------- the policy for one call
def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _proc_stat() -> tuple[float, float] | None:
    """``(busy, total)`` jiffies of all cores from ``/proc/stat``, or ``None`` without it."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


class _Load:
    """Cores the other processes keep busy, sampled at most every :data:`LOAD_SAMPLE_S` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sample = None  # (wall, process cpu, /proc/stat busy, total)
        self.others = None

    def busy_elsewhere(self) -> float:
        now = time.monotonic()
        sample = self._sample
        if sample is not None and now - sample[0] < LOAD_SAMPLE_S and self.others is not None:
            return self.others
        if not self._lock.acquire(blocking=False):  # another thread is sampling: use the last value
            return self.others or 0.0
        try:
            stat, cpu = _proc_stat(), time.process_time()
            if stat is None or sample is None:
                # no /proc, or the first call (no interval yet): the load average, which lags a minute,
                # less about one for our own pass; without one (Windows) assume the cores are free
                try:
                    # runnable tasks, which can outnumber the cores: at most all of them are busy
                    self.others = min(float(os.cpu_count() or 1), max(0.0, os.getloadavg()[0] - 1.0))
                except (AttributeError, OSError):
                    self.others = 0.0
            elif stat[1] > sample[3]:
                machine = (stat[0] - sample[2]) / (stat[1] - sample[3]) * (os.cpu_count() or 1)
                mine = (cpu - sample[1]) / max(now - sample[0], 1e-9)
                self.others = max(0.0, machine - mine)
            self._sample = (now, cpu, *(stat or (0.0, 0.0)))
            return self.others or 0.0
        finally:
            self._lock.release()


_load = _Load()
_blas = None


def free_cores() -> float:
    """Cores of this process's CPU set the other processes leave free, as last sampled.

    Examples
    --------
    >>> import os, convlab as cl
    >>> 0 <= cl.threads.free_cores() <= os.cpu_count()
    True
    """
    return max(0.0, _cores() - _load.busy_elsewhere())


def call_threads(flops: float) -> int:
    """BLAS threads for one pass of ``flops``: 1 below :data:`SMALL_FLOPS`, else the free cores,
    at least 1 and at most :func:`get_num_threads`.

    Examples
    --------
    >>> import convlab as cl
    >>> cl.threads.call_threads(1e3)
    1
    >>> 1 <= cl.threads.call_threads(1e12) <= cl.get_num_threads()
    True
    """
    n = get_threads()
    if n <= 1 or flops < SMALL_FLOPS:
        return 1
    return max(1, min(n, int(free_cores() + 0.5)))


def blas_threads_for(flops: float) -> "_BlasThreads":
    """Run the block with BLAS and the compiled kernels at :func:`call_threads` threads, when that is
    fewer than they have; BLAS's count is restored after the block (``with blas_threads_for(f) as n:``
    gives the count).

    BLAS's count is process-wide, like every BLAS setting: a concurrent call
    in another Python thread may run with the lower count too (never with a
    higher one than it had). threadpoolctl gives control of OpenBLAS's count
    to the first Python thread that changes it, for as long as that thread
    lives, so the policy changes BLAS only from the main thread: a pool's
    worker (dask's, say) taking control would silently disable
    :func:`set_num_threads` in the main thread. The kernels' cap is per
    Python thread (numba's count is set per launch) and applies everywhere.

    BLAS's current count is read on every call (under a microsecond per
    library), never remembered: the user may change it between two calls.
    It is changed only when it is above the count wanted.
    """
    return _BlasThreads(flops)


def blas_libraries() -> ThreadpoolController:
    """threadpoolctl's controllers of the BLAS libraries loaded in the process, found once (scanning the
    loaded libraries takes milliseconds, on a first call's path) and shared with the machine fingerprint."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


class _BlasThreads:
    """:func:`blas_threads_for`'s context manager: a class, as it wraps every pass (see ``call_limit``)."""

    __slots__ = ("flops", "limit", "lowered")

    def __init__(self, flops: float) -> None:
        self.flops = flops
        self.lowered: list = []

    def __enter__(self) -> int:
        flops = self.flops
        if flops < TINY_FLOPS:  # OpenBLAS runs products this small in one thread by itself: spare the switching
            wanted = 1
        else:
            wanted = call_threads(flops)
            if threading.current_thread() is threading.main_thread():
                for lib in blas_libraries().lib_controllers:
                    n = lib.get_num_threads()
                    if n is not None and n > wanted:
                        lib.set_num_threads(wanted)  # threadpoolctl lets one Python thread control OpenBLAS
                        self.lowered.append((lib, n))
        self.limit = call_limit(wanted)
        self.limit.__enter__()
        return wanted

    def __exit__(self, *exc: object) -> None:
        self.limit.__exit__()
        for lib, n in self.lowered:  # a few microseconds: leave the user's BLAS as it was
            lib.set_num_threads(n)
