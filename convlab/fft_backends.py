"""Real FFT backends for the FFT methods: ``numpy.fft``, ``scipy.fft`` and pyFFTW.

The FFT methods need one thing from a backend: a *real transform* of a fixed
shape ``(*batch, *L)``, transformed over its trailing ``len(L)`` axes, with

- ``real_buffer()`` / ``complex_buffer()``: arrays the caller fills,
- ``zeroed_real_buffer()``: ``(buffer, zeroed)``, a real buffer and whether
  it holds zeros already (a new ``np.zeros`` array: callers that pad then
  write only the data, not the whole buffer),
- ``forward(a)``: the unnormalised ``rfftn`` of ``a`` over the trailing axes,
- ``inverse(A)``: the *unnormalised* ``irfftn`` (``prod(L)`` times the usual
  inverse); the methods fold ``1 / prod(L)`` into a small array instead.

Arrays returned by ``forward``/``inverse`` may be the backend's own buffers:
they stay valid until the same transform is next used *from the same
thread*, so callers consume or copy them at once.

Contiguous transforms over the trailing axes are the fast case for every
backend (FFTW is 1.2x to 4x slower on lanes strided by the batch); the
methods view the spectra with the frequencies as the batch axis of their
channel products.

pyFFTW objects own their input and output arrays, so one object must never
run in two threads at once (pyFFTW's ``interfaces`` cache shares objects and
gives wrong results from two threads). Here every thread builds its own
``FFTW`` objects, kept in a :class:`threading.local`; FFTW's planner is
serialised by pyFFTW itself, and plans made once are reused through FFTW's
wisdom, so a second thread's planning is cheap.

Measured planning (``FFTW_MEASURE``, the default) is kept off the first
calls: a shape runs ``scipy.fft`` until its :data:`UPGRADE_AFTER_CALLS`-th
call, which has the measured plan made on a background thread, and switches
to it once ready; a shape FFTW has wisdom for (a wisdom file) gets its
measured plan at once. A one-off convolution thus costs what scipy's does,
and a repeated one runs FFTW's measured plan (see ``_FFTWTransform``).

Choose the backend globally with :func:`set_fft_backend` or for a block of
code (in the current thread only) with :func:`fft_backend`.
"""

import atexit
import contextlib
import dataclasses
import importlib.util
import math
import os
import queue
import sys
import threading
import warnings

import numpy as np
import scipy.fft

from .checks import check_choice, check_positive_int

# pyfftw is optional (scipy.fft is the fallback) and imported on first use, not with convlab: its import
# brings pyfftw.interfaces, which imports dask.array when dask is installed (0.3 s of a 0.8 s ``import
# convlab``), and the first FFT calls of a shape run scipy.fft anyway (see _FFTWTransform). It is imported
# when a plan is first built -- in the background planner for measured plans -- or wisdom is loaded or saved.
pyfftw = None
_pyfftw_found = importlib.util.find_spec("pyfftw") is not None
_pyfftw_lock = threading.Lock()


def _pyfftw():
    """The pyfftw module, imported now if need be; ``ValueError`` when it does not import."""
    global pyfftw, _pyfftw_found
    if pyfftw is None:
        with _pyfftw_lock:
            if pyfftw is None:
                try:
                    import pyfftw as module
                except ImportError as exc:
                    _pyfftw_found = False
                    raise ValueError(f"FFT backend 'pyfftw' is not available: pyfftw does not import ({exc})") \
                        from None
                pyfftw = module
                # atexit runs handlers last-registered first: saving the wisdom must precede pyFFTW's own
                atexit.unregister(_save_wisdom_at_exit)
                atexit.register(_save_wisdom_at_exit)
    return pyfftw

__all__ = ["BACKENDS", "PLANNER_EFFORTS", "UPGRADE_AFTER_CALLS", "PLANNING_TIMELIMIT", "FFTBackend",
           "set_fft_backend", "get_fft_backend", "fft_backend", "available_fft_backends", "save_wisdom", "load_wisdom",
           "wait_for_plans", "measured_plans_now"]

BACKENDS = ("pyfftw", "scipy", "numpy")
# Below this many real elements (the whole batch) a transform runs in one thread. Measured on the
# 2-core development machine, float32, minimum of 150 runs, 1 vs 2 threads (/work/s3/fft2/thr.py):
# FFTW splits a batch across its threads well even when small -- 64 x 16x16 (16384 elements)
# 0.017 -> 0.010 ms, 256 x 30x30 1.12 -> 0.55 ms, 512 x 32x32 0.77 -> 0.32 ms -- while scipy.fft's
# ``workers`` cost more than they save below about a million elements (256 x 30x30 0.48 -> 0.61 ms,
# 512 x 32x32 1.03 -> 1.22 ms; 256 x 76x76 10.1 -> 5.9 ms). Under load, the methods lower the count
# per call as they do BLAS's (convlab.algorithms.fft.transform).
MIN_THREADED_SIZE = {"pyfftw": 1 << 14, "scipy": 1 << 20, "numpy": 1 << 62}
PLANNER_EFFORTS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE")


def available_fft_backends():
    """Names of the backends that can run here (pyfftw only when it imports).

    Examples
    --------
    >>> from convlab.fft_backends import available_fft_backends
    >>> {"scipy", "numpy"} <= set(available_fft_backends())
    True
    """
    return tuple(name for name in BACKENDS if name != "pyfftw" or _pyfftw_found)


@dataclasses.dataclass(frozen=True)
class FFTBackend:
    """An FFT backend and its settings (immutable: it keys the per-plan caches).

    Attributes
    ----------
    name : {"pyfftw", "scipy", "numpy"}
    threads : int
        Threads per transform (``workers`` for scipy; ignored by numpy).
    planner_effort : str
        FFTW planner flag, one of :data:`PLANNER_EFFORTS` (pyfftw only).

    Examples
    --------
    A transform of real arrays of shape ``(2, 8)`` over the last axis gives
    spectra of shape ``(2, 8 // 2 + 1)``:

    >>> import numpy as np
    >>> backend = FFTBackend("numpy")
    >>> transform = backend.real_transform((2, 8), 1, np.float64)
    >>> spectrum = transform.forward(np.ones((2, 8)))
    >>> spectrum.shape, float(spectrum[0, 0].real)
    ((2, 5), 8.0)
    >>> transform.inverse(spectrum).round(12)[0]  # unnormalised: prod(L) = 8 times the input
    array([8., 8., 8., 8., 8., 8., 8., 8.])
    """

    name: str
    threads: int = 1
    planner_effort: str = "FFTW_MEASURE"

    def real_transform(self, real_shape, naxes, dtype):
        """A :class:`_NumpyTransform`-like object for arrays of ``real_shape`` over ``naxes`` trailing axes."""
        cls = {"pyfftw": _FFTWTransform, "scipy": _ScipyTransform, "numpy": _NumpyTransform}[self.name]
        return cls(tuple(real_shape), naxes, np.dtype(dtype), self)


def _complex_shape(real_shape, naxes):
    return (*real_shape[:-1], real_shape[-1] // 2 + 1)


def _threads(real_shape, backend, library):
    """Threads of one transform by ``library`` (``"pyfftw"`` or ``"scipy"``; a pyFFTW transform's
    scipy fallback follows scipy's threshold)."""
    return backend.threads if math.prod(real_shape) >= MIN_THREADED_SIZE[library] else 1


def _complex_dtype(dtype):
    return np.result_type(dtype, np.complex64)


class _NumpyTransform:
    """``numpy.fft`` (pocketfft): stateless, so thread-safe without help."""

    def __init__(self, real_shape, naxes, dtype, backend):
        self.real_shape, self.naxes, self.dtype = real_shape, naxes, dtype
        self.complex_shape = _complex_shape(real_shape, naxes)
        self.axes = tuple(range(-naxes, 0))
        self.threads = _threads(real_shape, backend, backend.name if backend.name == "numpy" else "scipy")

    def real_buffer(self):
        return np.empty(self.real_shape, self.dtype)

    def zeroed_real_buffer(self):
        """``(buffer, zeroed)``: a real buffer to fill, and whether it already holds zeros.

        Here a new array from ``np.zeros`` (calloc: the OS hands out zero pages as they are
        first touched, so a caller that writes only part of it pays no fill of the rest).
        """
        return np.zeros(self.real_shape, self.dtype), True

    def complex_buffer(self):
        return np.empty(self.complex_shape, _complex_dtype(self.dtype))

    def shares_buffers(self):
        """Whether the buffers handed out and the arrays returned are the transform's own, reused by its
        next call (FFTW's, once its plans are made in this thread); here every one is a new array."""
        return False

    def forward(self, a):
        return np.fft.rfftn(a, axes=self.axes)

    def inverse(self, spectrum):
        # norm="forward" puts the 1/prod(L) on the forward transform: the inverse is unnormalised.
        return np.fft.irfftn(spectrum, s=self.real_shape[-self.naxes:], axes=self.axes, norm="forward")


class _ScipyTransform(_NumpyTransform):
    """``scipy.fft`` with ``workers`` threads; may overwrite the buffers it is given."""

    def forward(self, a):
        return scipy.fft.rfftn(a, axes=self.axes, workers=self.threads, overwrite_x=True)

    def inverse(self, spectrum):
        return scipy.fft.irfftn(spectrum, s=self.real_shape[-self.naxes:], axes=self.axes, norm="forward",
                                workers=self.threads, overwrite_x=True)


#: Held around every FFTW plan build and every wisdom export or import. pyFFTW serialises plan builds
#: with its own lock but not wisdom export/import, and FFTW's planner is not thread-safe: exporting
#: wisdom while the background planner measured a plan aborted the process (found by the test suite).
_fftw_lock = threading.Lock()


class _FFTWTransform:
    """A pair of pyFFTW plans (r2c and c2r), one pair per thread, measured only for shapes in repeated use.

    With ``FFTW_ESTIMATE`` the plans are built on first use (milliseconds).
    With a measuring effort (``FFTW_MEASURE`` and up) FFTW times candidate
    algorithms when it plans, which takes from a tenth of a second to many
    seconds; a first call must not pay that. So:

    1. when FFTW already has wisdom for the shape (loaded from a wisdom
       file, or measured earlier in the process), the measured plan is
       built from it at once (``FFTW_WISDOM_ONLY``: no timing);
    2. otherwise the first calls run ``scipy.fft`` (pocketfft: no planning),
       and the :data:`UPGRADE_AFTER_CALLS`-th call queues the measured
       planning on a background thread; later calls switch to the measured
       plan as soon as it is ready (the thread that asks first takes the
       plan the background built, others build theirs from the wisdom).

    :func:`wait_for_plans` waits for queued planning (for tests and benchmarks);
    inside :func:`measured_plans_now` plans are measured on first use instead.
    """

    def __init__(self, real_shape, naxes, dtype, backend):
        self.real_shape, self.naxes, self.dtype = real_shape, naxes, dtype
        self.complex_shape = _complex_shape(real_shape, naxes)
        self.backend, self.threads = backend, _threads(real_shape, backend, "pyfftw")
        self.measuring = backend.planner_effort != "FFTW_ESTIMATE"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._calls = 0
        self._state = "new"  # new -> fallback -> queued -> ready (or failed); "ready" at once with wisdom
        self._spare = {}     # direction -> a plan the background built, for the first thread that asks
        self._fallback = _ScipyTransform(real_shape, naxes, dtype, backend)

    def _build(self, direction, flags, timelimit=None):
        pyfftw = _pyfftw()
        real = pyfftw.empty_aligned(self.real_shape, self.dtype)
        spectrum = pyfftw.empty_aligned(self.complex_shape, _complex_dtype(self.dtype))
        source, target = (real, spectrum) if direction == "FFTW_FORWARD" else (spectrum, real)
        # DESTROY_INPUT: callers refill the input before every call, and it lets FFTW pick faster plans.
        with _fftw_lock:
            return pyfftw.FFTW(source, target, axes=tuple(range(-self.naxes, 0)), direction=direction,
                               flags=(*flags, "FFTW_DESTROY_INPUT"), threads=self.threads,
                               planning_timelimit=timelimit)

    def _from_wisdom(self, direction):
        """The measured plan from FFTW's wisdom, or ``None`` when there is none for this shape."""
        if pyfftw is None:  # FFTW's wisdom comes through pyfftw (plans, load_wisdom): none before its import
            return None
        try:
            return self._build(direction, (self.backend.planner_effort, "FFTW_WISDOM_ONLY"))
        except RuntimeError:  # pyFFTW: "No FFTW wisdom is known for this plan."
            return None

    def _plan(self, direction):
        """This thread's FFTW plan for ``direction``, or ``None`` while calls should run the fallback."""
        plans = self._local.__dict__
        plan = plans.get(direction)
        if plan is not None:
            return plan
        if not self.measuring:
            plan = self._build(direction, ("FFTW_ESTIMATE",))
        elif getattr(_local, "plan_now", False) and self._state != "ready":
            plan = self._from_wisdom(direction) or self._build(direction, (self.backend.planner_effort,))
            _wisdom_changed()
            with self._lock:
                self._state = "ready"  # the wisdom is there now: other threads build theirs from it
        elif self._state == "ready":
            with self._lock:
                plan = self._spare.pop(direction, None)
            plan = plan or self._from_wisdom(direction) or self._build(direction, ("FFTW_ESTIMATE",))
        elif self._state == "new" and not _planner.busy():
            # wisdom from a file (or an earlier plan of this shape) gives the measured plan without timing;
            # not while the background plans: pyFFTW serialises planning, and this call would wait for it
            plan = self._from_wisdom(direction)
            with self._lock:
                if plan is None:
                    self._state = "fallback"
                elif self._state == "new":
                    self._state = "ready"
        if plan is not None:
            plans[direction] = plan
        return plan

    def _count(self):
        """Count a call; queue the measured planning on the :data:`UPGRADE_AFTER_CALLS`-th."""
        if not self.measuring or self._state in ("queued", "ready", "failed"):
            return
        with self._lock:
            self._calls += 1
            if self._calls < UPGRADE_AFTER_CALLS or self._state in ("queued", "ready", "failed"):
                return
            self._state = "queued"
        _planner.submit(self._measure)

    def _measure(self):
        """Background: measure both plans (FFTW keeps the result as wisdom) and offer them to the callers."""
        try:
            built = {}
            for direction in ("FFTW_FORWARD", "FFTW_BACKWARD"):
                if _planner.closing:  # the interpreter is exiting: the fallback serves the last calls
                    return
                built[direction] = self._build(direction, (self.backend.planner_effort,), PLANNING_TIMELIMIT)
        except Exception:  # a failed upgrade leaves the working fallback in place
            with self._lock:
                self._state = "failed"
            raise
        _wisdom_changed()
        with self._lock:
            self._spare.update(built)
            self._state = "ready"

    def plan_kind(self, direction="FFTW_FORWARD"):
        """What this thread's next call in ``direction`` runs: ``"scipy"`` (before the upgrade), or the
        FFTW planner flag of its plan (``"FFTW_ESTIMATE"``, ``"FFTW_MEASURE"``, ...)."""
        plan = self._plan(direction)
        if plan is None:
            return "scipy"
        return next(f for f in plan.flags if f in PLANNER_EFFORTS or f == "FFTW_ESTIMATE")

    def real_buffer(self):
        plan = self._plan("FFTW_FORWARD")
        return self._fallback.real_buffer() if plan is None else plan.input_array

    def shares_buffers(self):
        return self._plan("FFTW_FORWARD") is not None

    def zeroed_real_buffer(self):
        """``(buffer, zeroed)``: the plan's own input array (stale, ``zeroed=False``), or before the plan
        the fallback's new array of zeros."""
        plan = self._plan("FFTW_FORWARD")
        return self._fallback.zeroed_real_buffer() if plan is None else (plan.input_array, False)

    def complex_buffer(self):
        plan = self._plan("FFTW_BACKWARD")
        return self._fallback.complex_buffer() if plan is None else plan.input_array

    @staticmethod
    def _run(fftw, a):
        if a is not fftw.input_array:
            fftw.input_array[...] = a
        fftw.execute()  # execute() never normalises: the unnormalised transform is the contract
        return fftw.output_array

    def forward(self, a):
        self._count()
        plan = self._plan("FFTW_FORWARD")
        return self._fallback.forward(a) if plan is None else self._run(plan, a)

    def inverse(self, spectrum):
        self._count()
        plan = self._plan("FFTW_BACKWARD")
        return self._fallback.inverse(spectrum) if plan is None else self._run(plan, spectrum)


#: Calls of one transform (either direction) after which its measured FFTW plan is made in the background.
UPGRADE_AFTER_CALLS = 3
#: Seconds FFTW may spend measuring one plan in the background (then it keeps the best found so far):
#: on a busy machine an unbounded FFTW_MEASURE of a large batched transform took 40 s of a shared core.
PLANNING_TIMELIMIT = 1.0


class _BackgroundPlanner:
    """One daemon thread that runs queued FFTW measurements, one at a time (FFTW's planner is serial)."""

    def __init__(self):
        self.closing = False
        self._queue = queue.Queue()
        self._thread = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def busy(self):
        return self._pending > 0

    def submit(self, job):
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="convlab-fftw-planner", daemon=True)
                self._thread.start()
        self._queue.put(job)

    def _work(self):
        while True:
            job = self._queue.get()
            try:
                job()
            except Exception as exc:  # the caller keeps its working fallback
                # not at exit: a planning job that started as the interpreter began to exit fails there
                # (importing pyfftw registers atexit handlers, refused after shutdown) and nothing is lost
                if not (self.closing or sys.is_finalizing()):
                    warnings.warn(f"convlab: background FFTW planning failed ({exc!r}); scipy.fft stays in use",
                                  RuntimeWarning, stacklevel=1)
            finally:
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()

    def wait(self, timeout=None):
        with self._lock:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def close(self):
        """At exit: drop the queued jobs and wait for the running one. FFTW must not be planning while
        pyFFTW's own exit handlers free the planner (that crashes the interpreter)."""
        self.closing = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._pending -= 1
        self.wait()


_planner = _BackgroundPlanner()


@contextlib.contextmanager
def measured_plans_now():
    """Inside the block, in this thread, FFTW plans are measured on first use, as before the background upgrade.

    For code that times steady-state calls (autotuning, benchmarks): their
    first calls warm up, and no planning may run beside the timed ones.

    Examples
    --------
    >>> import numpy as np
    >>> with measured_plans_now():
    ...     kind = FFTBackend("pyfftw", 1, "FFTW_MEASURE").real_transform((2, 24), 1, np.float64).plan_kind()
    >>> kind if "pyfftw" in available_fft_backends() else "FFTW_MEASURE"
    'FFTW_MEASURE'
    """
    old = getattr(_local, "plan_now", False)
    _local.plan_now = True
    try:
        yield
    finally:
        _local.plan_now = old


def wait_for_plans(timeout=None):
    """Wait until the measured FFTW plans queued in the background are made; True unless it timed out.

    Parameters
    ----------
    timeout : float, optional
        Seconds to wait at most; default: as long as it takes.

    Examples
    --------
    >>> wait_for_plans(timeout=60)
    True
    """
    return _planner.wait(timeout)


# --------------------------------------------------------------- choosing the backend
_lock = threading.Lock()
_local = threading.local()
_default = None
_wisdom_file = None


def _make(name, threads, planner_effort):
    check_choice("FFT backend", name, BACKENDS)
    if name == "pyfftw" and not _pyfftw_found:
        raise ValueError("FFT backend 'pyfftw' is not available: pyfftw does not import (pip install pyfftw)")
    if threads is None:
        threads = os.cpu_count() or 1
    threads = check_positive_int("threads", threads)
    check_choice("planner_effort", planner_effort, PLANNER_EFFORTS)
    return FFTBackend(name, int(threads), planner_effort)


def get_fft_backend():
    """The :class:`FFTBackend` in force in this thread (a :func:`fft_backend` block, else the global one).

    Examples
    --------
    >>> import convlab as cl
    >>> cl.get_fft_backend().name in ("pyfftw", "scipy", "numpy")
    True
    """
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else _default


def set_fft_backend(name, *, threads=None, planner_effort="FFTW_MEASURE", wisdom_file=None):
    """Set the global FFT backend of the ``"fft"`` and ``"fft_tiled"`` methods.

    Parameters
    ----------
    name : {"pyfftw", "scipy", "numpy"}
    threads : int, optional
        Threads per transform; default ``os.cpu_count()``.
    planner_effort : {"FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE"}
        How hard FFTW searches for a fast plan (pyfftw only; planned once per convolution plan).
    wisdom_file : str or path, optional
        pyfftw only: FFTW wisdom is loaded from this file now (when it exists)
        and saved to it at interpreter exit, so plans are not re-measured.

    Returns
    -------
    FFTBackend
        The previous global backend.

    Examples
    --------
    >>> import convlab as cl
    >>> old = cl.set_fft_backend("scipy", threads=1)
    >>> cl.get_fft_backend()
    FFTBackend(name='scipy', threads=1, planner_effort='FFTW_MEASURE')
    >>> _ = cl.set_fft_backend(old.name, threads=old.threads, planner_effort=old.planner_effort)
    """
    global _default, _wisdom_file
    backend = _make(name, threads, planner_effort)
    with _lock:
        old, _default = _default, backend
        if wisdom_file is not None and name == "pyfftw":
            _wisdom_file = os.fspath(wisdom_file)
            if os.path.exists(_wisdom_file):
                load_wisdom(_wisdom_file)
    return old


@contextlib.contextmanager
def fft_backend(name, *, threads=None, planner_effort="FFTW_MEASURE"):
    """Use another FFT backend inside a ``with`` block, in the current thread only.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> x, w = np.ones((1, 1, 8)), np.ones((1, 1, 3))
    >>> with cl.fft_backend("numpy"):
    ...     y = cl.conv(x, w, method="fft")
    >>> y.round(12).tolist()
    [[[3.0, 3.0, 3.0, 3.0, 3.0, 3.0]]]
    """
    backend = _make(name, threads, planner_effort)
    if not hasattr(_local, "stack"):
        _local.stack = []
    _local.stack.append(backend)
    try:
        yield backend
    finally:
        _local.stack.pop()


# --------------------------------------------------------------- FFTW wisdom
def save_wisdom(path):
    """Write FFTW's accumulated wisdom (all precisions) to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        File to write (overwritten); read it back with :func:`load_wisdom`.

    Raises
    ------
    ValueError
        If pyfftw does not import.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "wisdom.fftw")
    ...     save_wisdom(path)
    ...     os.path.getsize(path) > 0
    True
    """
    if not _pyfftw_found:
        raise ValueError("save_wisdom needs pyfftw, which does not import")
    with _fftw_lock:
        wisdom = _pyfftw().export_wisdom()
    with open(path, "wb") as f:
        f.write(b"\0".join(wisdom))


def load_wisdom(path):
    """Load FFTW wisdom written by :func:`save_wisdom`; returns which precisions loaded.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_wisdom`.

    Returns
    -------
    tuple of bool
        Whether the double, single and long-double wisdom imported, as
        ``pyfftw.import_wisdom`` reports.

    Raises
    ------
    ValueError
        If pyfftw does not import, or ``path`` is not such a file.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "wisdom.fftw")
    ...     save_wisdom(path)
    ...     load_wisdom(path)
    (True, True, True)
    """
    if not _pyfftw_found:
        raise ValueError("load_wisdom needs pyfftw, which does not import")
    with open(path, "rb") as f:
        parts = f.read().split(b"\0")
    if len(parts) != 3:
        raise ValueError(f"{path!r} is not a convlab FFTW wisdom file (expected 3 parts, found {len(parts)})")
    module = _pyfftw()  # before the lock: importing pyfftw does not need it
    with _fftw_lock:
        return module.import_wisdom(tuple(parts))


_dirty = False


def _wisdom_changed():
    global _dirty
    _dirty = True


@atexit.register  # registered again when pyfftw is imported (_pyfftw), to run before pyFFTW's own exit handlers
def _save_wisdom_at_exit():
    _planner.close()  # at most one background planning to finish, bounded by PLANNING_TIMELIMIT
    if _wisdom_file is not None and _dirty:
        with contextlib.suppress(OSError):  # an unwritable cache file must not break interpreter exit
            save_wisdom(_wisdom_file)


_default = _make("pyfftw" if _pyfftw_found else "scipy", None, "FFTW_MEASURE")
