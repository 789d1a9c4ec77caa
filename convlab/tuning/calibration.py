"""The cost model's machine constants: where they come from, and measuring them.

A few seconds of micro-benchmarks price the terms every method's cost model
is written in (:mod:`convlab.algorithms.costs`: GEMM peak and small-matrix
efficiency, memory bandwidth, per-call overhead, FFT and sparse-product cost
per point), then every registered method runs a handful of CNN-sized and
large-kernel problems to fit its correction factor (measured / modelled
time). :func:`save_calibration` writes the result as JSON, with a
fingerprint of the machine and the convlab version, to ``calibration.json``
in :func:`convlab.config.cache_dir`; a file whose fingerprint or version does
not match is ignored in favour of the built-in defaults.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import threading
import time
from typing import Any

import numpy as np
import scipy.sparse
from threadpoolctl import threadpool_info

from .. import harness
from ..algorithms import CONSTANT_NAMES, DEFAULT_CONSTANTS, CostTerms, get_method, verdict
from ..algorithms import methods as registered_methods
from ..config import cache_dir
from ..errors import ConvError
from ..fft_backends import get_fft_backend
from ..problem import spec as make_spec
from . import store

__all__ = ["Calibration", "get_calibration", "set_calibration", "calibration_path", "fingerprint",
           "measure_constants", "fit_method_factors", "calibrate", "load_calibration", "save_calibration",
           "CALIBRATION_FILE", "FACTOR_PROBLEMS"]

CALIBRATION_FILE = "calibration.json"

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

    Examples
    --------
    >>> cal = Calibration.defaults()
    >>> cal.constant("float32", "peak") > 0, cal.factor("direct")
    (True, 1.0)
    """

    constants: dict
    method_factors: dict = dataclasses.field(default_factory=dict)
    source: str = "built-in defaults"

    @classmethod
    def defaults(cls) -> Calibration:
        return cls({k: dict(v) for k, v in DEFAULT_CONSTANTS.items()})

    def constant(self, dtype, name: str) -> float:
        return float(self.constants[np.dtype(dtype).name][name])

    def factor(self, method: str) -> float:
        return float(self.method_factors.get(method, 1.0))

    def terms(self, dtype) -> CostTerms:
        """The cost terms priced for ``dtype``."""
        return CostTerms(self.constants[np.dtype(dtype).name], dtype)


_active_lock = threading.Lock()
_active: Calibration | None = None


def get_calibration() -> Calibration:
    """The calibration in use: the one set, else the stored one for this machine, else defaults."""
    global _active
    with _active_lock:
        if _active is None:
            _active = load_calibration()
        return _active


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


def fingerprint():
    """What the constants depend on: CPU, core count, numpy and its BLAS.

    Examples
    --------
    >>> sorted(fingerprint())
    ['blas', 'cpu', 'cpu_count', 'machine', 'numpy']
    """
    try:
        blas = sorted(f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()
                      if i.get("user_api") == "blas")
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


def measure_constants(dtype):
    """The cost model's constants for ``dtype`` on this machine (about a second).

    Returns
    -------
    dict
        Keys of :data:`convlab.algorithms.costs.DEFAULT_CONSTANTS`.
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((768, 768)).astype(dtype)
    peak = 2.0 * 768 ** 3 / _seconds(lambda: a @ a)
    # small-matrix efficiency on a conv-shaped batched GEMM (C_out × C_in·k² @ C_in·k² × positions)
    shape, batch = (32, 144, 1024), 8
    small_a = rng.standard_normal((batch,) + shape[:2]).astype(dtype)
    small_b = rng.standard_normal((batch,) + shape[1:]).astype(dtype)
    small = _seconds(lambda: small_a @ small_b) / batch
    # per-matrix overhead of a batched matmul: thousands of matrices with almost no arithmetic
    tiny_a, tiny_b = np.ones((4096, 2, 2), dtype), np.ones((4096, 2, 8), dtype)
    gemm_call = _seconds(lambda: tiny_a @ tiny_b) / 4096
    big = np.ones(4 << 20, dtype)
    out = np.empty_like(big)
    bandwidth = 2.0 * big.nbytes / _seconds(lambda: np.copyto(out, big))
    # an im2col-shaped gather: (n, C, kh, kw, oh, ow) from a sliding-window view
    image = rng.standard_normal((8, 32, 58, 58)).astype(dtype)  # out of L2, as real layers are
    view = np.lib.stride_tricks.sliding_window_view(image, (3, 3), axis=(2, 3)).transpose(0, 1, 4, 5, 2, 3)
    columns = np.empty(view.shape, dtype)
    gather_bandwidth = 2.0 * columns.nbytes / _seconds(lambda: np.copyto(columns, view))
    rows, cols = np.arange(1, 57) % 58, np.arange(1, 57)  # a wrapped output index, as fft.take reads it
    index_point = _seconds(lambda: image[np.ix_(np.arange(8), np.arange(32), rows, cols)]) / (8 * 32 * 56 * 56)
    tiny = np.ones(8, dtype)
    loops = 2000
    call = _seconds(lambda: [tiny + tiny for _ in range(loops)]) / loops
    # through the FFT backend the methods use (pyFFTW by default, several times faster than scipy.fft)
    spectra = get_fft_backend().real_transform((16, 256, 256), 2, dtype)
    signal = spectra.real_buffer()
    signal[...] = rng.standard_normal(signal.shape)
    fft_point = _seconds(lambda: spectra.forward(signal)) / (signal.size * 16)
    # A banded matrix with 16 diagonals: the sparsity of a small convolution's Toeplitz matrix.
    banded = scipy.sparse.diags([np.ones(1 << 16, dtype)] * 16, list(range(0, 64, 4)),
                                shape=(1 << 16, 1 << 16), format="csr", dtype=dtype)
    dense = rng.standard_normal(((1 << 16), 8)).astype(dtype)
    sparse_op = _seconds(lambda: banded @ dense) / (banded.nnz * 8)
    return dict(peak=peak, gemm_half=_gemm_half(peak, *shape, small), gemm_call=gemm_call, bandwidth=bandwidth,
                gather_bandwidth=gather_bandwidth, index_point=index_point, call=call, fft_point=fft_point,
                sparse_op=sparse_op)


def fit_method_factors(calibration, methods=None, budget=0.05):
    """Per-method factors: geometric mean of measured / modelled forward time on ``FACTOR_PROBLEMS``.

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
            modelled = impl.predict_seconds(s, calibration.terms(dtype))  # without the factor being fitted
            if modelled > budget:
                continue
            x = rng.standard_normal(x_shape).astype(dtype)
            w = rng.standard_normal(w_shape).astype(dtype)
            def run(impl=impl, s=s, x=x, w=w):
                return impl.run_forward(s, x, w)

            logs.append(np.log(_seconds(run, repeats=2, budget=5 * budget) / modelled))
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
    return Calibration(record["constants"], record["method_factors"], path)
