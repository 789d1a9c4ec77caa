"""What every compiled kernel shares: the numba settings, the thread count, first-compile notices.

numba is imported on first use, not at ``import convlab`` (it takes ~0.2 s to
import, and compiled functions compile on their first call in any case).

Threading layer
---------------
Measured on the 2-core machine this was written on (a depthwise 3×3 loop,
8×64×56², alternated with a 512² float32 BLAS product as the methods do):

==================  ==========  ================  ===========================
layer               kernel      kernel + GEMM ×2  concurrent Python threads
==================  ==========  ================  ===========================
omp (GNU, default)  0.65 ms     16.0 ms           safe
omp, passive wait   0.7 ms      4.8–5.4 ms        safe
workqueue           0.7–1.3 ms  4.8–5.8 ms        aborts the process
==================  ==========  ================  ===========================

libgomp's workers spin after each parallel region and starve OpenBLAS's and
FFTW's threads on a small machine (the 3× collapse above); passive waiting
fixes that but needs ``OMP_WAIT_POLICY`` set before libgomp loads, a
process-wide change that also reaches torch's OpenMP. workqueue never spins and
changes nothing outside numba; it is not safe for concurrent launches, so
launches are serialised by a lock here (convlab plans may be shared between
threads; two threads' kernels would only compete for the same cores anyway).
TBB does not import on that machine. A user's ``NUMBA_THREADING_LAYER`` is
respected, and the lock is dropped for a thread-safe layer.
"""

import contextlib
import functools
import logging
import os
import queue
import threading
import time
import types

__all__ = ["default_threads", "get_threads", "launch", "njit", "set_threads", "call_limit", "loaded",
           "load_in_background", "load_seconds", "wait_for_loads"]

_logger = logging.getLogger("convlab.kernels")
_lock = threading.Lock()
_threads = None          # None: default_threads()
_configured = False
_THREADSAFE_LAYERS = ("omp", "tbb")
_clock = time.perf_counter  # a module attribute, so that a test can stand in for it


def default_threads():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(n):
    """Threads of the compiled kernels (``None``: :func:`default_threads`)."""
    global _threads
    _threads = n


_call = threading.local()  # .limit: a cap for the calls of this Python thread (convlab.threads' policy)


def get_threads():
    limit = getattr(_call, "limit", None)
    if limit is not None and limit <= 1:  # the policy's usual answer for small passes: spare the affinity query
        return 1
    threads = default_threads() if _threads is None else _threads
    return threads if limit is None else max(1, min(threads, limit))


class call_limit:  # lower case: used as a function, ``with call_limit(n):``
    """At most ``n`` kernel threads for the launches of this Python thread inside the ``with`` block.

    A class rather than a generator context manager: it wraps every pass a method runs, and
    entering a class costs a fraction of a generator's microseconds.
    """

    __slots__ = ("n", "old")

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = getattr(_call, "limit", None)
        _call.limit = self.n

    def __exit__(self, *exc):
        _call.limit = self.old


def _numba():
    """Import and configure numba once (the threading layer must be chosen before the first launch)."""
    global _configured
    import numba

    if not _configured:
        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "workqueue"
        _configured = True
    return numba


def loaded():
    """Whether numba is imported and configured in this process (thread-safe: a plain read of a flag set once).

    Examples
    --------
    >>> loaded() in (True, False)
    True
    """
    return _configured


#: Seconds a first call waits for compiled kernels while numba is not imported: importing it (0.26-0.45 s
#: measured with ``python -X importtime -c "import numba"`` on the 2-core machine), then loading a kernel
#: from numba's disk cache (tens of milliseconds each). On a cold cache compiling takes seconds more:
#: this is the least a call would wait, so a first call substitutes only when that is clearly better.
IMPORT_SECONDS = 0.25
LOAD_SECONDS = 0.03


def load_seconds():
    """The seconds a call that needs compiled kernels would wait for them now, at least (see above); 0 once
    numba runs in the process: what is left, loading a kernel from the disk cache once per signature, is
    not worth running another method and a second pass in the background for."""
    return 0.0 if _configured else IMPORT_SECONDS + LOAD_SECONDS


_loads = queue.SimpleQueue()  # (warm, wait, done event) for the one background loader
_loader = None
_loader_lock = threading.Lock()
_pending = []  # the done events of the loads queued or running


def load_in_background(warm, wait=None):
    """Import numba and run ``warm()`` (a call that loads, or compiles, the kernels it runs) in the background.

    The loads run one after another on a single daemon thread (started on the first request): two loads
    would only compete for the same cores, and a daemon thread never holds up the interpreter's exit.
    Returns a :class:`threading.Event` set when ``warm`` has returned or failed; a failure is logged at
    DEBUG level through the ``convlab.kernels`` logger (the call that needs the kernels then meets it
    in the foreground). A compile over a second is announced as any first compile is (:class:`_Lazy`).
    ``wait``, when given, is a context manager entered around the whole load (the caller's lock that keeps
    its other background work, and the load, out of each other's way).
    """
    global _loader
    done = threading.Event()
    _pending.append(done)
    _loads.put((warm, wait or contextlib.nullcontext(), done))
    with _loader_lock:
        if _loader is None:
            _loader = threading.Thread(target=_load_forever, name="convlab-kernel-loader", daemon=True)
            _loader.start()
    return done


def _load_forever():
    while True:
        warm, wait, done = _loads.get()
        try:
            with wait:
                _numba()
                warm()
        except Exception:  # the foreground call will meet (and report) the same failure
            _logger.debug("convlab: loading compiled kernels in the background failed", exc_info=True)
        finally:
            done.set()
            _pending.remove(done)


def wait_for_loads(timeout=None):
    """Wait until the loads queued by :func:`load_in_background` so far are done; ``True`` unless
    ``timeout`` seconds passed first (as :func:`convlab.fft_backends.wait_for_plans` for FFTW's plans).

    Examples
    --------
    >>> wait_for_loads(timeout=60)
    True
    """
    deadline = None if timeout is None else time.perf_counter() + timeout
    for done in list(_pending):
        if not done.wait(None if deadline is None else max(0.0, deadline - time.perf_counter())):
            return False
    return True


def _threadsafe_layer(numba):
    global _threadsafe
    if _threadsafe is None:
        try:
            _threadsafe = numba.threading_layer() in _THREADSAFE_LAYERS
        except ValueError:  # no parallel region has run yet: assume the worst, and ask again next time
            return False
    return _threadsafe


_threadsafe = None  # the layer's answer, once a parallel region has run (it cannot change afterwards)


@contextlib.contextmanager
def launch(threads=None):
    """Around a call of a ``parallel=True`` kernel: the lock (see above) and the thread count
    (``threads``, default :func:`get_threads`).

    numba's thread count is per calling thread, so it is set on each launch
    (~2 µs) to make :func:`convlab.set_num_threads` hold in every thread.
    """
    numba = _numba()
    with _nolock if _threadsafe_layer(numba) else _lock:
        numba.set_num_threads(max(1, min(get_threads() if threads is None else threads,
                                         numba.config.NUMBA_NUM_THREADS)))
        yield


_nolock = contextlib.nullcontext()


def _renamed(fn, suffix):
    """``fn`` as a new function object whose qualified name ends in ``__suffix``.

    numba's disk cache keys a function by its qualified name, source and signature, not by
    ``parallel=``: a twin under the same name would load (or overwrite) the other's machine code,
    and a parallel loop run as the "serial" twin escapes the launch lock (the workqueue layer then
    aborts the process on concurrent launches).
    """
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = f"{fn.__qualname__}__{suffix}"
    twin.__module__, twin.__doc__ = fn.__module__, fn.__doc__
    return twin


class _Lazy:
    """A kernel compiled (or loaded from numba's disk cache) on its first call, never at import.

    A ``parallel=True`` kernel has a serial twin (the same function compiled
    with ``parallel=False``, where ``prange`` is ``range``), run whenever the
    call gets one thread (:func:`get_threads`; ``convlab.threads`` caps small
    passes at one): a parallel launch on one thread still hands the loop to a
    worker and waits for it, 25–40 µs with the workqueue layer against
    ~0.5 µs for a plain call (measured on the 2-core machine). Each variant
    compiles on its first use, so a process that never runs one thread never
    compiles the twin.

    The first call of each compiled signature that takes over a second is
    announced in one line through the ``convlab.kernels`` logger at WARNING
    level: with logging unconfigured Python prints it to stderr, and an
    application that configures logging can silence or redirect it. A warning
    category would be shown once per call site and turned into an error by
    ``-W error``; a bare print could not be silenced.
    """

    def __init__(self, fn, options):
        self.fn, self.options = fn, options
        self.parallel = bool(options.get("parallel"))
        self.dispatcher = None  # compiled as the options say
        self.serial = None      # the parallel=False twin of a parallel kernel
        self.lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def _dispatcher(self):
        if self.dispatcher is None:
            with self.lock:
                if self.dispatcher is None:
                    self.dispatcher = _numba().njit(**self.options)(self.fn)
        return self.dispatcher

    def _serial(self):
        if self.serial is None:
            with self.lock:
                if self.serial is None:
                    self.serial = _numba().njit(**{**self.options, "parallel": False})(_renamed(self.fn, "serial"))
        return self.serial

    def __call__(self, *args):
        threads = get_threads()
        if self.parallel and threads > 1 and _numba().config.NUMBA_NUM_THREADS > 1:
            d = self.dispatcher or self._dispatcher()
            compiled = len(d.overloads)  # grows by one when this call compiles (signatures would hash them all)
            with launch(threads):
                start = _clock()
                result = d(*args)
        else:
            d = (self.serial or self._serial()) if self.parallel else (self.dispatcher or self._dispatcher())
            compiled = len(d.overloads)
            start = _clock()
            result = d(*args)
        elapsed = _clock() - start
        if elapsed > 1.0 and len(d.overloads) != compiled:
            dtypes = ",".join(sorted({str(a.dtype) for a in d.signatures[-1] if hasattr(a, "ndim")}))
            _logger.warning("convlab: compiled kernel %s.%s[%s] in %.1f s (cached on disk for later runs)",
                            self.fn.__module__.rsplit(".", 1)[-1], self.fn.__name__.lstrip("_"), dtypes, elapsed)
        return result


def njit(**options):
    """``numba.njit(cache=True, **options)``, compiled lazily (see :class:`_Lazy`)."""
    options = {"cache": True, "nogil": True, **options}
    return lambda fn: _Lazy(fn, options)
