"""The cost model's machine constants: where they come from, and measuring them.

The cost models (:mod:`convlab.algorithms.costs`) price their terms with a
few constants per dtype. Each constant comes from one of three places, in
this order of preference:

``calibrated``
    ``convlab calibrate`` (:func:`calibrate`, :func:`save_calibration`):
    a few seconds of micro-benchmarks for every constant (GEMM peak and
    small-matrix efficiency, bandwidths, per-call overhead, FFT and sparse
    cost per point), then every registered method on a handful of CNN-sized
    and large-kernel problems to fit its correction factor (measured /
    modelled time); stored as ``calibration.json``.
``measured``
    The first ``method="auto"`` choice of a process that finds no
    calibration starts measuring, in a background thread, the constants that differ most between
    machines (:data:`QUICK_CONSTANTS`: GEMM peak, copy bandwidth, per-call
    overhead, FFT time per point, and the fixed costs of a BLAS call, an FFT
    execution and a sparse product) with :func:`measure_quick`, and the cost
    of a compiled-kernel launch (:func:`measure_launch`) when numba has
    already launched a kernel in the process (otherwise measuring it would
    mean importing numba and loading a kernel: up to a second), and stores
    them as ``machine.json``; later processes read them back.
``default``
    :data:`convlab.algorithms.costs.DEFAULT_CONSTANTS`, fitted by
    ``benchmarks/fit_cost_model.py`` against measured times; used for the
    constants not measured, and for all of them when automatic measurement
    is off (``CONVLAB_AUTO_MEASURE=0``, :func:`convlab.config.set_auto_measure`).

The automatic measurement takes about 0.1 s on an idle 2-core machine (GEMM
512², whose first call also starts BLAS's threads, a 16 MB copy, 200 tiny
ufunc calls, 8 FFTs of 128² with an estimate-mode plan, and 20 tiny FFTs,
matrix products and sparse products, per dtype; 20 launches of a trivial
kernel when numba runs), once per machine and code version. It runs in one
daemon thread (never two at once, never holding up the interpreter's exit;
:func:`wait_for_measurement` waits for it), so that the first call does not
pay for it: that call, and every choice made before the measurement lands,
uses the built-in defaults, and a plan keeps the method chosen for it. Its
figures must describe the machine, not the program's own work: it starts
each dtype's part only after :data:`QUIET_SETTLE` seconds in which none of
the process's convolution calls ran (:func:`in_call` marks them), never
alongside the background loading of compiled kernels
(:func:`background_work`), and gives up for this process when the calls
leave it no such moment for :data:`QUIET_WAIT` seconds (a call that starts
during a part only slows some of its samples). Each constant is the best of several samples (a
loaded machine makes samples slower, never faster), and a constant more than
:data:`PLAUSIBLE_FACTOR` from the built-in one is taken as disturbed and not
used. When the load average says other work keeps the cores busy, nothing is
measured and the process uses the defaults (measured under load on 2 cores,
the FFT and GEMM constants came out 10-100x off, worse than the defaults),
and a later, quieter process measures.

Every file carries a fingerprint of the machine and the code (:mod:`.store`);
a file whose stamp does not match is ignored, and a file that does not
validate is ignored with a :class:`~convlab.tuning.store.CacheWarning`.
Neither ever breaks a call.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import platform
import sys
import threading
import time
from typing import Any

import numpy as np
import scipy.sparse

from .. import harness
from ..algorithms import (
    CONSTANT_NAMES,
    DEFAULT_CONSTANTS,
    DEFAULT_FACTORS,
    DEFAULT_OVERHEADS,
    CostTerms,
    get_method,
    verdict,
)
from ..algorithms import methods as registered_methods
from ..config import cache_dir, get_auto_measure
from ..errors import ConvError
from ..fft_backends import fft_backend, get_fft_backend, wait_for_plans
from ..kernels._runtime import wait_for_loads
from ..problem import spec as make_spec
from ..threads import blas_libraries
from . import store

__all__ = ["Calibration", "get_calibration", "set_calibration", "calibration_path", "fingerprint",
           "measure_constants", "measure_quick", "measure_launch", "LAUNCH", "fit_method_factors", "calibrate",
           "load_calibration", "save_calibration", "load_measured", "machine_path", "CALIBRATION_FILE", "MACHINE_FILE",
           "QUICK_CONSTANTS", "FACTOR_PROBLEMS", "ORIGINS", "wait_for_measurement", "in_call", "QUIET_WAIT",
           "wait_until_quiet", "background_work", "QUIET_SETTLE"]

CALIBRATION_FILE = "calibration.json"
MACHINE_FILE = "machine.json"
QUICK_CONSTANTS = ("peak", "bandwidth", "call", "fft_point", "blas_call", "fft_call", "sparse_call")
"""The constants :func:`measure_quick` measures: those that differ most from machine to machine, and the
fixed cost of one BLAS call, FFT plan execution and sparse product."""
LAUNCH = "launch"
"""The fixed cost of one compiled-kernel launch (:func:`measure_launch`): measured with the quick constants
only when that costs no compilation, else from the defaults (or ``convlab calibrate``)."""
ORIGINS = ("default", "measured", "calibrated")

# Problems for the per-method factors, (x_shape, w_shape, params, dtype): CNN layers of the sizes
# networks use (not toy ones: small problems flatter per-call overheads and extrapolate badly) and
# large kernels in 1-D and 2-D, dense and depthwise. A method skips those it would take long on.
FACTOR_PROBLEMS = (
    ((8, 16, 32, 32), (32, 16, 3, 3), dict(padding=1), "float32"),
    ((4, 64, 28, 28), (64, 64, 3, 3), dict(padding=1), "float32"),
    ((4, 32, 28, 28), (32, 32, 5, 5), dict(padding=2), "float32"),  # multi-channel: 32x32 tiles beat one 30x30 FFT
    ((1, 64, 28, 28), (128, 64, 1, 1), dict(), "float32"),
    ((4, 32, 28, 28), (64, 32, 3, 3), dict(stride=2, padding=1), "float32"),
    ((4, 32, 28, 28), (32, 1, 3, 3), dict(padding=1, groups=32), "float32"),
    ((4, 16, 32, 32), (16, 1, 13, 13), dict(padding=6, groups=16), "float32"),
    ((1, 1, 384, 384), (1, 1, 21, 21), dict(), "float64"),
    ((4, 1, 16384), (1, 1, 257), dict(), "float32"),
)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Machine constants the cost models price their terms with.

    Attributes
    ----------
    constants : dict
        ``{"float32": {...}, "float64": {...}}``, each with the keys of
        :data:`convlab.algorithms.costs.DEFAULT_CONSTANTS` (seconds, FLOP/s, bytes/s).
    method_factors : dict
        ``{method: factor}``: measured / modelled time, 1 when absent.
    source : str
        Where the constants came from (a path, or ``"built-in defaults"``).
    origins : dict
        ``{dtype: {constant: origin}}`` with an origin of :data:`ORIGINS`;
        a constant not listed is a ``"default"`` one.

    Examples
    --------
    >>> cal = Calibration.defaults()
    >>> cal.constant("float32", "peak") > 0, cal.origin("float32", "peak")
    (True, 'default')
    """

    constants: dict
    method_factors: dict = dataclasses.field(default_factory=dict)
    source: str = "built-in defaults"
    origins: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def defaults(cls) -> Calibration:
        return cls({k: dict(v) for k, v in DEFAULT_CONSTANTS.items()}, dict(DEFAULT_FACTORS))

    def origin(self, dtype, name: str) -> str:
        """Where constant ``name`` for ``dtype`` came from: ``"default"``, ``"measured"`` or ``"calibrated"``."""
        return self.origins.get(np.dtype(dtype).name, {}).get(name, "default")

    def constant(self, dtype, name: str) -> float:
        return float(self.constants[np.dtype(dtype).name][name])

    def factor(self, method: str, pass_: str = "forward") -> float:
        """``method``'s factor for ``pass_``: ``"method/pass"`` when fitted for that backward pass,
        else the method's (forward) factor, else 1."""
        if pass_ != "forward" and f"{method}/{pass_}" in self.method_factors:
            return float(self.method_factors[f"{method}/{pass_}"])
        return float(self.method_factors.get(method, 1.0))

    def overhead(self, method: str, pass_: str = "forward") -> float:
        """Residual fixed seconds of one ``pass_`` of ``method`` beyond the launches and calls its model
        counts (the built-in fit, ``"method/pass"`` for a backward pass when fitted, else the method's;
        ``convlab calibrate`` keeps them)."""
        if pass_ != "forward" and f"{method}/{pass_}" in DEFAULT_OVERHEADS:
            return float(DEFAULT_OVERHEADS[f"{method}/{pass_}"])
        return float(DEFAULT_OVERHEADS.get(method, 0.0))

    def terms(self, dtype) -> CostTerms:
        """The cost terms priced for ``dtype``."""
        return CostTerms(self.constants[np.dtype(dtype).name], dtype)


_logger = logging.getLogger("convlab.tuning")
_active_lock = threading.Lock()
_active: Calibration | None = None
_measurement: threading.Thread | None = None  # the background measurement while it runs (one at most)
_measuring_for: Calibration | None = None  # the calibration it replaces when it lands


def get_calibration() -> Calibration:
    """The calibration in use: the one set, else the stored ``convlab calibrate`` result for this machine,
    else the built-in constants with this machine's measured ones in place (when none are stored and
    :func:`convlab.config.get_auto_measure` is on, the built-in ones until a background measurement of a
    fraction of a second lands: see the module docstring and :func:`wait_for_measurement`)."""
    global _active
    with _active_lock:
        if _active is None:
            _active = _startup_calibration()
        return _active


def wait_for_measurement(timeout: float | None = None) -> bool:
    """Wait until the background measurement of the machine constants, if one runs, has finished (landed,
    or given up); ``True`` unless ``timeout`` seconds passed first.

    Examples
    --------
    >>> wait_for_measurement(timeout=60)
    True
    """
    with _active_lock:
        thread = _measurement
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def wait_for_background(timeout: float | None = None) -> bool:
    """Wait for everything convlab runs in the background of a process's first calls: the compiled kernels
    a first call's stand-in leaves loading (:func:`convlab.kernels._runtime.wait_for_loads`), the machine
    constants' measurement (:func:`wait_for_measurement`) and FFTW's measured plans
    (:func:`convlab.fft_backends.wait_for_plans`); ``True`` unless ``timeout`` seconds passed first (for each).

    A benchmark that times steady-state calls calls it after its warm-up calls: otherwise it times the
    stand-in, or a pass sharing the cores with a background thread.

    Examples
    --------
    >>> wait_for_background(timeout=60)
    True
    """
    loaded = wait_for_loads(timeout)
    measured = wait_for_measurement(timeout)
    return wait_for_plans(timeout) and loaded and measured


def _startup_calibration() -> Calibration:
    """Called with ``_active_lock`` held."""
    stored = load_calibration()
    if stored.source != Calibration.defaults().source or not get_auto_measure():
        return stored
    measured = load_measured()
    if measured is None:
        if _measurement is not None:  # already measuring: its result replaces this when it lands
            return _measuring_for
        if _busy():  # a busy moment would be measured, not the machine: defaults now, measure another time
            return stored
        _start_measurement(stored)
        return stored
    elif any(LAUNCH not in values for values in measured.values()):
        launch = measure_launch()  # cheap now (numba has launched a kernel): complete the stored record
        if launch is not None:
            measured = {dtype: dict(values, **{LAUNCH: launch}) for dtype, values in measured.items()}
            save_measured(measured)
    return with_measured(stored, measured, machine_path())


def _start_measurement(base: Calibration) -> None:
    """Measure in a daemon thread; ``base`` with the measured constants in place replaces ``base`` as the
    active calibration when it lands (unless another was set meanwhile). Called with ``_active_lock`` held."""
    global _measurement, _measuring_for
    _measuring_for = base
    _measurement = threading.Thread(target=_measure_in_background, args=(base, machine_path()),
                                    name="convlab-measure", daemon=True)
    _measurement.start()


#: Seconds the background measurement waits for a moment when none of the process's convolution calls
#: runs, before each dtype's constants; past it, it gives up for this process (a later one measures).
QUIET_WAIT = 2.0

_running: list = []  # one entry per convolution pass running now: list.append and list.pop are atomic


class _Running:
    """Marks one convolution pass as running (see :func:`in_call`)."""

    __slots__ = ()

    def __enter__(self):
        _running.append(None)

    def __exit__(self, *exc):
        _running.pop()


_in_call = _Running()
_background = threading.Lock()


def in_call() -> _Running:
    """A context manager around each convolution pass (:class:`~convlab.ConvPlan` wraps them): work in the
    background (this measurement, the loading of compiled kernels) starts only when none runs
    (:func:`wait_until_quiet`), so that it neither slows the pass nor times it. Costs two list operations."""
    return _in_call


#: Seconds without a running pass that make a quiet moment: the call whose choice starts the measurement
#: enters its pass a few microseconds after the thread starts, and programs call again after short gaps.
QUIET_SETTLE = 0.02


def wait_until_quiet(timeout: float) -> bool:
    """Wait until no convolution pass of this process (:func:`in_call`) has run for :data:`QUIET_SETTLE`
    seconds; ``False`` after ``timeout`` seconds without such a moment. For background threads: it polls
    every 2 ms."""
    now = time.perf_counter()
    deadline, quiet_since = now + timeout, now
    while True:
        if _running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.perf_counter()
        now = time.perf_counter()
        if quiet_since is not None and now - quiet_since >= QUIET_SETTLE:
            return True
        if now > deadline:
            return False
        time.sleep(0.002)


def background_work() -> threading.Lock:
    """The lock that serialises the process's background work (this measurement, the loading of compiled
    kernels by :class:`~convlab.ConvPlan`): each would disturb the other on a machine with few cores."""
    return _background


def _measure_in_background(base: Calibration, path: str) -> None:
    global _active, _measurement, _measuring_for
    try:
        measured = {}
        with _background:
            for dtype in ("float32", "float64"):
                if not wait_until_quiet(QUIET_WAIT):
                    _logger.debug("convlab: no quiet moment to measure the machine constants; the defaults stay")
                    return
                measured[dtype] = _plausible(dtype, measure_quick(dtype))
        launch = measure_launch()
        if launch is not None:
            for values in measured.values():
                values[LAUNCH] = launch
        save_measured(measured, path)
        calibration = with_measured(base, measured, path)
        with _active_lock:
            if _active is base:
                _active = calibration
    except Exception:  # a failed measurement leaves the defaults in place; it must never break a call
        _logger.debug("convlab: measuring the machine constants failed", exc_info=True)
    finally:
        with _active_lock:
            _measurement = _measuring_for = None


#: A quick measurement more than this factor away from the built-in constant is taken as disturbed and
#: not used (nor stored): on 2 cores, an FFTW call whose second thread waited for a core that OpenBLAS's
#: threads still spun on after the GEMM probe measured 70x the FFT's time, in about one process of three.
PLAUSIBLE_FACTOR = 10.0


def _plausible(dtype: str, values: dict) -> dict:
    """``values`` without the constants more than :data:`PLAUSIBLE_FACTOR` from the built-in ones.

    Examples
    --------
    >>> sorted(_plausible("float32", {"peak": 2e11, "fft_point": 5e-9}))
    ['peak']
    """
    defaults = DEFAULT_CONSTANTS[np.dtype(dtype).name]
    return {name: value for name, value in values.items()
            if 1 / PLAUSIBLE_FACTOR <= value / defaults[name] <= PLAUSIBLE_FACTOR}


def _busy() -> bool:
    """Whether other work keeps the cores busy (1-minute load average over half the cores): constants
    measured then describe the moment, not the machine."""
    try:
        return os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1)
    except (AttributeError, OSError):  # no load average on this platform
        return False


def with_measured(base: Calibration, measured: dict, source: str) -> Calibration:
    """``base`` with the :data:`QUICK_CONSTANTS` (and :data:`LAUNCH`) of ``measured`` (``{dtype: {name: value}}``)
    in place.

    Examples
    --------
    >>> cal = with_measured(Calibration.defaults(), {"float32": {"peak": 1e11}}, "example")
    >>> cal.constant("float32", "peak"), cal.origin("float32", "peak"), cal.origin("float64", "peak")
    (100000000000.0, 'measured', 'default')
    """
    constants = {dtype: dict(values) for dtype, values in base.constants.items()}
    origins = {dtype: dict(values) for dtype, values in base.origins.items()}
    for dtype, values in measured.items():
        for name in (*QUICK_CONSTANTS, LAUNCH):
            if name in values:
                constants[dtype][name] = float(values[name])
                origins.setdefault(dtype, {})[name] = "measured"
    return Calibration(constants, dict(base.method_factors), f"{source} (measured) and built-in defaults", origins)


def set_calibration(calibration: Calibration | None) -> Calibration | None:
    """Use ``calibration`` (a :class:`Calibration`, or ``None`` to reload from disk); return the old one."""
    global _active
    if calibration is not None and not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration or None, but got {calibration!r}")
    with _active_lock:
        old, _active = _active, calibration
    return old



def calibration_path() -> str:
    """``calibration.json`` in the cache directory."""
    return os.path.join(cache_dir(), CALIBRATION_FILE)


_fingerprint: dict | None = None


def fingerprint():
    """What the constants depend on: CPU, core count, numpy and its BLAS (found once per process:
    threadpoolctl's scan of the loaded libraries takes milliseconds, on the first call's path).

    Examples
    --------
    >>> sorted(fingerprint())
    ['blas', 'cpu', 'cpu_count', 'machine', 'numpy']
    """
    global _fingerprint
    if _fingerprint is None:
        _fingerprint = _find_fingerprint()
    return dict(_fingerprint)


def _find_fingerprint():
    try:
        blas = sorted(f"{i.get('internal_api')} {i.get('version')}" for i in blas_libraries().info())
    except Exception:  # threadpoolctl is optional at runtime; the fingerprint only gets coarser
        blas = []
    return dict(machine=platform.machine(), cpu=harness.cpu_model(), cpu_count=os.cpu_count(),
                numpy=np.__version__, blas=", ".join(blas))


def _seconds(fn, repeats=5, budget=0.5):
    """Seconds per call of ``fn`` by the one stopwatch (:func:`convlab.harness.time_interleaved`: one
    warm-up, the median of ``repeats`` samples, no new sample started past ``budget`` seconds)."""
    return harness.time_interleaved({"call": fn}, repeats=repeats, warmup=1, min_sample_s=0.0,
                                    max_time_s=budget)["call"].median


def _gemm_half(peak, m, k, n, seconds):
    """Solve ``Π d/(d+h) = achieved/peak`` for ``h`` by bisection."""
    target = min(0.999, 2.0 * m * k * n / seconds / peak)
    lo, hi = 0.0, 4096.0
    for _ in range(60):
        h = (lo + hi) / 2
        eff = (m / (m + h)) * (k / (k + h)) * (n / (n + h))
        lo, hi = (h, hi) if eff > target else (lo, h)
    return (lo + hi) / 2


def _best(fn, repeats, budget):
    """Seconds of the fastest of ``repeats`` calls of ``fn`` after one warm-up (fewer past ``budget`` s):
    other work on the machine only ever makes a call slower."""
    return min(harness.time_interleaved({"call": fn}, repeats=repeats, warmup=1, min_sample_s=0.0,
                                        max_time_s=budget)["call"].samples)


def measure_quick(dtype, budget: float = 0.2) -> dict:
    """The :data:`QUICK_CONSTANTS` for ``dtype`` on this machine, in a fraction of a second.

    GEMM peak from a 512² matrix product, copy bandwidth from a 16 MB copy
    (beyond the last-level cache of common machines), the overhead of one
    tiny ufunc call, the FFT time per point (``P·log2 P`` per transform)
    of 8 real FFTs of 128² through the FFT backend the methods use, with an
    estimate-mode plan so that no planning time is spent measuring, and the
    fixed costs of one call of each: a 4×4 FFT, a 4×4 matrix product, a
    16×16 sparse product. Each is
    the best of up to 5 samples; ``budget`` bounds the seconds each takes.

    Returns
    -------
    dict
        ``{"peak": FLOP/s, "bandwidth": bytes/s, "call": s, "fft_point": s, "blas_call": s,
        "fft_call": s, "sparse_call": s}``.

    Examples
    --------
    >>> values = measure_quick("float32", budget=0.01)
    >>> sorted(values) == sorted(QUICK_CONSTANTS), all(v > 0 for v in values.values())
    (True, True)
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    n = 512
    a = rng.standard_normal((n, n)).astype(dtype)
    peak = 2.0 * n ** 3 / _best(lambda: a @ a, 5, budget)
    big = np.ones((16 << 20) // dtype.itemsize, dtype)
    out = np.empty_like(big)
    bandwidth = 2.0 * big.nbytes / _best(lambda: np.copyto(out, big), 5, budget)
    tiny = np.ones(8, dtype)
    loops = 200
    call = _best(lambda: [tiny + tiny for _ in range(loops)], 5, budget) / loops
    backend = get_fft_backend()
    with fft_backend(backend.name, threads=backend.threads, planner_effort="FFTW_ESTIMATE"):
        spectra = get_fft_backend().real_transform((8, 128, 128), 2, dtype)
        signal = spectra.real_buffer()
        signal[...] = rng.standard_normal(signal.shape)
        points = 128 * 128
        fft_point = _best(lambda: spectra.forward(signal), 5, budget) / (8 * points * math.log2(points))
        # the fixed costs per call: an FFT execution, a BLAS call and a sparse product on tiny operands
        tiny_spectra = get_fft_backend().real_transform((1, 4, 4), 2, dtype)
        tiny_signal = tiny_spectra.real_buffer()
        tiny_signal[...] = 1.0
        fft_call = _best(lambda: [tiny_spectra.forward(tiny_signal) for _ in range(20)], 5, budget) / 20
    small = np.ones((4, 4), dtype)
    blas_call = _best(lambda: [small @ small for _ in range(20)], 5, budget) / 20
    sparse = scipy.sparse.eye(16, format="csr", dtype=dtype)
    column = np.ones((16, 1), dtype)
    sparse_call = _best(lambda: [sparse @ column for _ in range(20)], 5, budget) / 20
    return dict(peak=peak, bandwidth=bandwidth, call=call, fft_point=fft_point, blas_call=blas_call,
                fft_call=fft_call, sparse_call=sparse_call)


def measure_launch(budget: float = 0.05, compile: bool = False) -> float | None:
    """Seconds of one launch of a trivial parallel compiled kernel (:mod:`convlab.kernels.probe`), the
    ``launch`` constant; ``None`` when measuring would cost more than ``budget``-sized work.

    Without ``compile``, it measures only when numba has already launched a parallel kernel in this
    process and the probe kernel is compiled or in numba's disk cache: importing numba and starting
    its threads take a few tenths of a second, compiling the probe about one, far more than the
    automatic measurement may spend. ``convlab calibrate`` passes ``compile=True``.
    """
    if not compile:
        numba = sys.modules.get("numba")
        if numba is None:
            return None
        try:
            numba.threading_layer()
        except ValueError:  # no parallel region has run yet: the first launch would start the threads
            return None
    from ..kernels import probe  # imports numba: only here, never at import convlab

    if not (compile or probe.cached()):
        return None
    return _best(probe.launch_once, 20, budget)


def measure_constants(dtype):
    """The cost model's constants for ``dtype`` on this machine (about a second): the
    :func:`measure_quick` ones, and the shape of the GEMM efficiency curve, the gather
    bandwidths and the sparse product's cost.

    Returns
    -------
    dict
        Keys of :data:`convlab.algorithms.costs.DEFAULT_CONSTANTS`.
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    quick = measure_quick(dtype)
    peak = quick["peak"]
    # small-matrix efficiency on a conv-shaped batched GEMM (C_out × C_in·k² @ C_in·k² × positions)
    shape, batch = (32, 144, 1024), 8
    small_a = rng.standard_normal((batch,) + shape[:2]).astype(dtype)
    small_b = rng.standard_normal((batch,) + shape[1:]).astype(dtype)
    small = _seconds(lambda: small_a @ small_b) / batch
    # per-matrix overhead of a batched matmul: thousands of matrices with almost no arithmetic
    tiny_a, tiny_b = np.ones((4096, 2, 2), dtype), np.ones((4096, 2, 8), dtype)
    gemm_call = _seconds(lambda: tiny_a @ tiny_b) / 4096
    # an im2col-shaped gather: (n, C, kh, kw, oh, ow) from a sliding-window view
    image = rng.standard_normal((8, 32, 58, 58)).astype(dtype)  # out of L2, as real layers are
    view = np.lib.stride_tricks.sliding_window_view(image, (3, 3), axis=(2, 3)).transpose(0, 1, 4, 5, 2, 3)
    columns = np.empty(view.shape, dtype)
    gather_bandwidth = 2.0 * columns.nbytes / _seconds(lambda: np.copyto(columns, view))
    rows, cols = np.arange(1, 57) % 58, np.arange(1, 57)  # a wrapped output index, as fft.take reads it
    index_point = _seconds(lambda: image[np.ix_(np.arange(8), np.arange(32), rows, cols)]) / (8 * 32 * 56 * 56)
    # A banded matrix with 16 diagonals: the sparsity of a small convolution's Toeplitz matrix.
    banded = scipy.sparse.diags([np.ones(1 << 16, dtype)] * 16, list(range(0, 64, 4)),
                                shape=(1 << 16, 1 << 16), format="csr", dtype=dtype)
    dense = rng.standard_normal(((1 << 16), 8)).astype(dtype)
    sparse_op = _seconds(lambda: banded @ dense) / (banded.nnz * 8)
    launch = measure_launch(compile=True)
    # the compiled loops' share of the GEMM peak is a ratio of two speeds of the same machine: kept as fitted
    loop_peak_fraction = DEFAULT_CONSTANTS[dtype.name]["loop_peak_fraction"]
    kernel_call = DEFAULT_CONSTANTS[dtype.name]["kernel_call"]  # fitted with the methods' residuals: kept too
    return dict(quick, gemm_half=_gemm_half(peak, *shape, small), gemm_call=gemm_call, launch=launch,
                loop_peak_fraction=loop_peak_fraction, kernel_call=kernel_call,
                gather_bandwidth=gather_bandwidth, index_point=index_point, sparse_op=sparse_op)


def fit_method_factors(calibration, methods=None, budget=0.05):
    """Per-method factors: geometric mean of measured / modelled forward time on ``FACTOR_PROBLEMS``, both
    without the fixed costs (the counted ones and the residual), which the factor does not scale.

    A method whose modelled time for a problem exceeds ``budget`` seconds
    skips that problem (calibration must stay a matter of seconds); factors are clipped to ``[0.1, 10]`` so a wild
    measurement cannot exclude a method for good.
    """
    rng = np.random.default_rng(0)
    factors = {}
    for name in methods or registered_methods():
        impl = get_method(name)
        logs = []
        for x_shape, w_shape, params, dtype in FACTOR_PROBLEMS:
            s = make_spec(x_shape, w_shape, dtype, **params)
            if not verdict(s, name).ok:
                continue
            terms = calibration.terms(dtype)
            modelled = impl.predict_seconds(s, terms)  # without the factor being fitted
            if modelled > budget:
                continue
            # the factor scales what depends on throughput, not the fixed costs per call (choice.scaled)
            fixed = impl.predict_seconds(s, terms.fixed_only())
            x = rng.standard_normal(x_shape).astype(dtype)
            w = rng.standard_normal(w_shape).astype(dtype)
            def run(impl=impl, s=s, x=x, w=w):
                return impl.run_forward(s, x, w)

            measured = _seconds(run, repeats=2, budget=5 * budget) - fixed - calibration.overhead(name)
            logs.append(np.log(max(measured, 1e-9) / max(modelled - fixed, 1e-9)))
        if logs:
            factors[name] = float(np.clip(np.exp(np.mean(logs)), 0.1, 10.0))
    return factors


def calibrate(methods=None):
    """Measure everything and return a new :class:`Calibration` (not stored; a few seconds).

    ``methods`` (default: every registered one) are the methods to fit factors for;
    unknown names raise :class:`~convlab.ConvError` before anything is measured.
    """
    names = registered_methods() if methods is None else tuple(methods)
    for name in names:
        get_method(name)  # unknown names fail here, listing the registered ones
    if not names:
        raise ConvError("methods must name at least one registered method, but got none")
    methods = names
    constants = {name: measure_constants(name) for name in ("float32", "float64")}
    base = Calibration(constants, {}, "measured")
    return Calibration(constants, fit_method_factors(base, methods), "measured")


def _stamp() -> dict:
    return store.stamp(fingerprint())


def _positive(name: str, value: Any) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a positive finite number, but is {value!r}")
    return number


def _validated(record: dict) -> dict:
    """The record's constants and factors, checked entry by entry (raises on the first bad one)."""
    constants = record["constants"]
    if not isinstance(constants, dict):
        raise TypeError(f"constants must be an object, but is {type(constants).__name__}")
    checked = {dt: {k: _positive(f"constants.{dt}.{k}", constants[dt][k]) for k in sorted(CONSTANT_NAMES)}
               for dt in ("float32", "float64")}
    factors = record.get("method_factors", {})
    if not isinstance(factors, dict):
        raise TypeError(f"method_factors must be an object, but is {type(factors).__name__}")
    return dict(constants=checked,
                method_factors={str(k): _positive(f"method_factors.{k}", v) for k, v in factors.items()})


def save_calibration(calibration: Calibration, path: str | None = None) -> str:
    """Write ``calibration`` with this machine's and this code's stamp; return the path.

    Raises ``OSError`` naming the file when it cannot be written.
    """
    path = path or calibration_path()
    record = dict(created=time.strftime("%Y-%m-%dT%H:%M:%S"), constants=calibration.constants,
                  method_factors=calibration.method_factors)
    store.update_record(path, _stamp(), _validated, lambda current: record, strict=True)
    return path


def check_writable(path: str | None = None) -> str:
    """Raise ``OSError`` naming the cache file when it cannot be written (before seconds of measuring)."""
    path = path or calibration_path()
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the convlab cache directory {directory}: {exc}") from exc
    if not os.access(directory, os.W_OK):
        raise OSError(f"cannot write the convlab cache directory {directory}")
    return path


def load_calibration(path: str | None = None) -> Calibration:
    """The stored calibration when it validates and matches this machine and code, else the defaults.

    A file that does not validate is ignored with one warning naming it.
    """
    path = path or calibration_path()
    record = store.read_record(path, _stamp(), _validated)
    if record is None:
        return Calibration.defaults()
    origins = {dtype: {name: "calibrated" for name in values} for dtype, values in record["constants"].items()}
    return Calibration(record["constants"], dict(DEFAULT_FACTORS, **record["method_factors"]), path, origins)


# --------------------------------------------------------------- the automatically measured constants
def machine_path() -> str:
    """``machine.json`` in the cache directory: the constants :func:`measure_quick` measured."""
    return os.path.join(cache_dir(), MACHINE_FILE)


def _validated_measured(record: dict) -> dict:
    constants = record["constants"]
    if not isinstance(constants, dict):
        raise TypeError(f"constants must be an object, but is {type(constants).__name__}")
    # a constant may be absent: the launch until a process has numba running, any other when its
    # measurement was implausible (_plausible); the built-in value then stands in
    return {dt: {k: _positive(f"constants.{dt}.{k}", constants[dt][k])
                 for k in (*QUICK_CONSTANTS, LAUNCH) if k in constants[dt]}
            for dt in ("float32", "float64")}


def load_measured(path: str | None = None) -> dict | None:
    """The stored :func:`measure_quick` constants ``{dtype: {name: value}}`` for this machine and code, or
    ``None`` (none stored, stamped for another machine or code, or not valid: then with one warning)."""
    return store.read_record(path or machine_path(), _stamp(), _validated_measured)


def save_measured(measured: dict, path: str | None = None) -> bool:
    """Store ``{dtype: {name: value}}`` from :func:`measure_quick`; ``False`` (with a warning) when the cache
    directory cannot be written, so that a read-only disk never breaks a call."""
    record = dict(created=time.strftime("%Y-%m-%dT%H:%M:%S"), constants=measured)
    return store.update_record(path or machine_path(), _stamp(), _validated_measured, lambda current: record)
