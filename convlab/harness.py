"""One measurement harness: the stopwatch and the machine probes.

Everything in convlab that times code goes through this module: the report
(:mod:`convlab.report`), ``convlab compare``, calibration, autotune and the
scripts in ``benchmarks/``. It sits low in the layers (numpy and threadpoolctl
only), so that calibration and autotune can use it; the problem record the
applications measure is :class:`convlab.case.Case`.

The statistic
-------------
:func:`time_interleaved` is the one stopwatch. For each callable:

1. ``warmup`` untimed calls (plan caches, FFTW plans, first touch of buffers);
2. one timed probe call sets the inner loop: a *sample* is ``loops``
   consecutive calls with ``loops = ceil(min_sample_s / probe seconds)``
   (between 1 and ``max_loops``), so that a sample lasts at least
   ``min_sample_s`` and the clock's resolution and per-call jitter do not
   dominate it; the sample's value is its duration divided by ``loops``;
3. ``repeats`` rounds; in every round each callable takes one sample, in an
   order rotated by one every round, so that drift of a shared machine
   (another process starting, thermal throttling) hits all callables alike.

The result per callable is a :class:`Timing`: the **median** of the samples
(seconds per call) with its quartiles. The median, not the minimum, because a
report compares methods that allocate, page-fault and synchronise threads:
those costs are part of a call, and the minimum would report the rare run
that escaped them; the interquartile range says how much to trust it.

Examples
--------
>>> import numpy as np
>>> a = np.ones((64, 64))
>>> timings = time_interleaved({"matmul": lambda: a @ a, "sum": a.sum}, repeats=3, min_sample_s=0.0)
>>> sorted(timings), timings["sum"].q1 <= timings["sum"].median <= timings["sum"].q3
(['matmul', 'sum'], True)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["Timing", "blas_threads", "copy_bandwidth", "cpu_model", "gemm_flops", "summarize",
           "threadpools", "time_call", "time_interleaved"]

MAX_LOOPS = 1000  # inner-loop cap: a call faster than min_sample_s / MAX_LOOPS gets shorter samples
Clock = Callable[[], float]


# --------------------------------------------------------------- the statistic
@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call of one callable: the median of its samples and their quartiles.

    Attributes
    ----------
    median, q1, q3 : float
        Median, 25th and 75th percentile of ``samples`` (linear interpolation).
    samples : tuple of float
        Seconds per call of every sample, in the order taken.
    loops : int
        Calls per sample.

    Examples
    --------
    >>> t = summarize([3.0, 1.0, 2.0, 4.0], loops=10)
    >>> t.median, t.q1, t.q3, t.iqr, t.loops
    (2.5, 1.75, 3.25, 1.5, 10)
    """

    median: float
    q1: float
    q3: float
    samples: tuple
    loops: int = 1

    @property
    def iqr(self) -> float:
        """Interquartile range ``q3 - q1``, in seconds."""
        return self.q3 - self.q1

    def to_dict(self) -> dict:
        """``{"median_s", "q1_s", "q3_s", "samples_s", "loops"}``: the report's JSON form."""
        return {"median_s": self.median, "q1_s": self.q1, "q3_s": self.q3, "samples_s": list(self.samples),
                "loops": self.loops}


def summarize(samples: Sequence[float], loops: int = 1) -> Timing:
    """The :class:`Timing` of a non-empty list of seconds-per-call samples.

    Examples
    --------
    >>> summarize([0.5]).median
    0.5
    >>> summarize([])
    Traceback (most recent call last):
    ...
    ValueError: samples must not be empty
    """
    if len(samples) == 0:
        raise ValueError("samples must not be empty")
    q1, median, q3 = np.percentile(np.asarray(samples, np.float64), [25, 50, 75])
    return Timing(float(median), float(q1), float(q3), tuple(float(s) for s in samples), int(loops))


def time_call(fn: Callable[[], object], loops: int = 1, *, clock: Clock = time.perf_counter) -> float:
    """Seconds per call of ``loops`` consecutive calls of ``fn`` (one sample, no warm-up).

    Examples
    --------
    >>> ticks = iter([10.0, 10.5])
    >>> time_call(lambda: None, loops=5, clock=lambda: next(ticks))
    0.1
    """
    start = clock()
    for _ in range(loops):
        fn()
    return (clock() - start) / loops


def _check_settings(repeats, warmup, min_sample_s, max_loops, max_time_s, settle=0):
    def positive_int(name, value, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, but got {value!r}")

    positive_int("repeats", repeats, 1)
    positive_int("warmup", warmup, 0)
    positive_int("max_loops", max_loops, 1)
    positive_int("settle", settle, 0)
    if isinstance(min_sample_s, bool) or not isinstance(min_sample_s, (int, float)) or not (
            math.isfinite(min_sample_s) and min_sample_s >= 0):
        raise ValueError(f"min_sample_s must be a finite number >= 0, but got {min_sample_s!r}")
    if max_time_s is not None and (isinstance(max_time_s, bool) or not isinstance(max_time_s, (int, float))
                                   or not max_time_s > 0):
        raise ValueError(f"max_time_s must be a number > 0 or None, but got {max_time_s!r}")


def time_interleaved(callables: Mapping[str, Callable[[], object]], repeats: int = 5, warmup: int = 1,
                     min_sample_s: float = 0.002, *, call_seconds: Mapping[str, float] | None = None,
                     max_loops: int = MAX_LOOPS, max_time_s: float | None = None,
                     progress: Callable[[int, int], object] | None = None, settle: int = 0,
                     clock: Clock = time.perf_counter) -> dict[str, Timing]:
    """Time callables against each other in interleaved rounds; the median per call of each.

    Parameters
    ----------
    callables : mapping of str to callable
        What to time, by name; each is called with no arguments.
    repeats : int, default 5
        Rounds, i.e. samples per callable (at least 1).
    warmup : int, default 1
        Untimed calls of each callable before its probe call.
    min_sample_s : float, default 0.002
        A sample repeats the call until it lasts at least this long (``0``:
        one call per sample).
    call_seconds : mapping of str to float, optional
        Seconds of one call already measured by the caller, for some names;
        those skip the probe call (the report reuses the call it checked
        against its time budget).
    max_loops : int, default 1000
        Cap on the calls per sample.
    max_time_s : float, optional
        Stop starting new rounds once this many seconds have been spent in
        them (after the first round, which always runs); fewer samples then.
    progress : callable, optional
        Called as ``progress(rounds_done, repeats)`` after each round.
    settle : int, default 0
        Untimed calls before each sample. Use 1 when the callables come from
        libraries with their own thread pools (torch's OpenMP, numba's,
        BLAS's): the first call after another library's sample waits for its
        pool while the other's threads still spin (measured on 2 cores: a
        0.1 ms torch call took 10 ms right after a convlab call), so without
        settling each library is timed paying for the other.
    clock : callable, default time.perf_counter
        Returns seconds; replaced in tests by a fake clock.

    Returns
    -------
    dict of str to Timing
        In the order of ``callables``.

    Examples
    --------
    With a fake clock that advances one second per call, every sample is one
    second per call:

    >>> now = [0.0]
    >>> def tick():
    ...     now[0] += 1.0
    >>> t = time_interleaved({"a": tick}, repeats=3, warmup=0, min_sample_s=0.0, clock=lambda: now[0])
    >>> t["a"].samples, t["a"].loops
    ((1.0, 1.0, 1.0), 1)
    """
    _check_settings(repeats, warmup, min_sample_s, max_loops, max_time_s, settle)
    call_seconds = dict(call_seconds or {})
    entries = []
    for name, fn in callables.items():
        for _ in range(warmup):
            fn()
        seconds = call_seconds[name] if name in call_seconds else time_call(fn, 1, clock=clock)
        loops = max(1, min(max_loops, math.ceil(min_sample_s / max(seconds, 1e-9))))
        entries.append((name, fn, loops, []))
    start = clock()
    for round_index in range(repeats):
        if round_index and max_time_s is not None and clock() - start > max_time_s:
            break
        shift = round_index % max(len(entries), 1)
        for _, fn, loops, samples in entries[shift:] + entries[:shift]:
            for _ in range(settle):
                fn()
            samples.append(time_call(fn, loops, clock=clock))
        if progress is not None:
            progress(round_index + 1, repeats)
    return {name: summarize(samples, loops) for name, _, loops, samples in entries}


# --------------------------------------------------------------- machine probes
@functools.cache
def gemm_flops(dtype: str = "float32", n: int = 1024) -> float:
    """This machine's matrix-multiply throughput, FLOP/s of an ``n×n @ n×n`` numpy product.

    Measured once per process and ``(dtype, n)`` (about 0.3 s for the
    default on two cores) with :func:`time_interleaved` (median of 5
    samples); later calls return the cached value.

    Examples
    --------
    >>> gemm_flops("float64", n=64) > 0
    True
    """
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    seconds = time_interleaved({"gemm": lambda: a @ b}, repeats=5, warmup=1, min_sample_s=0.0)["gemm"].median
    return 2.0 * n ** 3 / seconds


@functools.cache
def copy_bandwidth(nbytes: int = 32 << 20) -> float:
    """Memory bandwidth in bytes/s of ``np.copyto`` between two ``nbytes`` buffers (read + write).

    Measured once per process and size (the default is larger than common
    last-level caches), median of 5 samples.

    Examples
    --------
    >>> copy_bandwidth(1 << 16) > 0
    True
    """
    src = np.ones(nbytes // 8, np.float64)
    dst = np.empty_like(src)
    seconds = time_interleaved({"copy": lambda: np.copyto(dst, src)}, repeats=5, warmup=1,
                               min_sample_s=0.0)["copy"].median
    return 2.0 * src.nbytes / seconds


def threadpools() -> list[dict]:
    """The native thread pools loaded in this process (BLAS, OpenMP), as JSON-ready dicts.

    Each has ``user_api``, ``internal_api``, ``num_threads``, ``version`` and
    ``prefix`` (threadpoolctl's description); empty when threadpoolctl is
    not installed.

    Examples
    --------
    >>> all({"user_api", "num_threads"} <= set(pool) for pool in threadpools())
    True
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{key: pool.get(key) for key in ("user_api", "internal_api", "num_threads", "version", "prefix")}
            for pool in threadpool_info()]


def blas_threads() -> int | None:
    """Threads numpy's BLAS uses (the largest BLAS pool), or ``None`` when unknown.

    Examples
    --------
    >>> n = blas_threads()
    >>> n is None or n >= 1
    True
    """
    counts = [pool["num_threads"] for pool in threadpools() if pool.get("user_api") == "blas"]
    return max(counts) if counts else None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one, else :func:`platform.processor`).

    Examples
    --------
    >>> isinstance(cpu_model(), str) and cpu_model() != ""
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
