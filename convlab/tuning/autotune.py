"""Measured method choice, like ``torch.backends.cudnn.benchmark``.

With autotuning on (``cl.conv(..., method="auto", autotune=True)``,
``cl.plan(..., autotune=True)`` or globally ``cl.set_autotune(True)``), the
first plan for a problem times every candidate method and keeps the
fastest for the rest of the process:

* candidates are the registered methods that support the plan and fit its
  workspace limit, minus those the cost model predicts at more than
  ``PRUNE_FACTOR`` times the best prediction (timing a sparse Toeplitz
  product predicted at minutes would defeat the purpose);
* each candidate runs the forward pass once to warm its caches (FFTW plans,
  sparsity patterns), then ``TIMING_ROUNDS`` timed passes interleaved with
  the other candidates', on seeded random inputs, by the harness's one
  stopwatch (:func:`convlab.harness.time_interleaved`); the median counts;
* the winner is cached per problem key (shapes, dtype, stride, padding,
  dilation, groups, padding mode, workspace limit). Lookups are lock-free;
  measuring takes one process-wide lock, so two threads never time the same
  key twice, and never time concurrently (which would distort both);
* with ``persist=True`` winners are also written to ``autotune.json`` in
  the cache dir (with the machine fingerprint and convlab version, like the
  calibration) and read back by later processes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from .. import harness
from ..algorithms import get_method, methods, verdict
from ..config import cache_dir, get_autotune_persist
from ..problem import ConvSpec
from . import store
from .calibration import fingerprint
from .choice import choose_method, predictions

__all__ = ["tuned_method", "measured_seconds", "clear_autotune_cache", "autotune_path", "PRUNE_FACTOR"]

PRUNE_FACTOR = 10.0
TIMING_ROUNDS = 3
AUTOTUNE_FILE = "autotune.json"

_state_lock = threading.Lock()
_measure_lock = threading.RLock()
_winners = {}        # key -> (method, {method: seconds})
_loaded_from = None  # path whose entries were merged into _winners


def autotune_path() -> str:
    """The file persisted winners live in: ``autotune.json`` in the cache dir."""
    return os.path.join(cache_dir(), AUTOTUNE_FILE)


def _key(spec: ConvSpec) -> tuple:
    return (spec.key, spec.limit)


def _key_text(key):
    return repr(key)


def clear_autotune_cache():
    """Forget every measured winner of this process (stored files are left alone)."""
    global _loaded_from
    with _measure_lock, _state_lock:
        _winners.clear()
        _loaded_from = None


# --------------------------------------------------------------- persistence
def _stamp() -> dict:
    return store.stamp(fingerprint())


def _entries(record: dict) -> dict:
    """``{key text: (method, {method: seconds})}``, every entry checked (raises on the first bad one)."""
    entries = record["entries"]
    if not isinstance(entries, dict):
        raise TypeError(f"entries must be an object, but is {type(entries).__name__}")
    checked = {}
    for text, entry in entries.items():
        method, seconds = entry["method"], entry["seconds"]
        if not isinstance(method, str) or not isinstance(seconds, dict):
            raise TypeError(f"entry {text!r} must have a method name and a seconds object")
        checked[str(text)] = (method, {str(k): float(v) for k, v in seconds.items()})
    return checked


def _load_persisted() -> None:
    """Merge the stored winners for this machine into the in-process cache (once per path).

    Entries are trusted only as far as :func:`_usable` confirms them for each problem.
    """
    global _loaded_from
    path = autotune_path()
    if _loaded_from == path:
        return
    for text, entry in (store.read_record(path, _stamp(), _entries) or {}).items():
        _winners.setdefault(text, entry)
    _loaded_from = path


def _store(text: str, method: str, seconds: dict) -> None:
    def merge(current):
        entries = dict(current or {})
        entries[text] = (method, seconds)
        return dict(entries={k: dict(method=m, seconds=s) for k, (m, s) in entries.items()})

    store.update_record(autotune_path(), _stamp(), _entries, merge)  # a failed write only warns


# --------------------------------------------------------------- measuring
def _candidates(spec: ConvSpec) -> list[str]:
    """Methods worth timing: supported, fitting, and predicted within ``PRUNE_FACTOR`` of the best."""
    ranked = [r for r in predictions(spec) if r.seconds is not None]
    if not ranked:
        return []
    best = ranked[0].seconds
    return [r.method for r in ranked if r.seconds <= PRUNE_FACTOR * best]


def _usable(spec: ConvSpec, method: str) -> bool:
    """A stored winner counts only while it is registered and runs ``spec`` within its limit
    (a file written by another version, or edited by hand, may name anything)."""
    return method in methods() and verdict(spec, method).ok


def _time_candidates(runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Seconds per call of each candidate by the one stopwatch (:func:`convlab.harness.time_interleaved`):
    a warm-up call (per-spec caches, FFTW plans, first touch of buffers), then ``TIMING_ROUNDS``
    samples interleaved across the candidates, so that drift of a shared machine hits all alike;
    the median of each."""
    timings = harness.time_interleaved(runs, repeats=TIMING_ROUNDS, warmup=1, min_sample_s=0.0)
    return {name: timing.median for name, timing in timings.items()}


def _measure(spec: ConvSpec) -> dict[str, float]:
    """``{method: seconds}`` of the forward pass of every candidate, on seeded random inputs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.x_shape).astype(spec.dtype)
    w = rng.standard_normal(spec.w_shape).astype(spec.dtype)

    def runner(name):
        run = get_method(name).run_forward
        return lambda: run(spec, x, w)

    return _time_candidates({name: runner(name) for name in _candidates(spec)})


def tuned_method(spec: ConvSpec) -> str:
    """The fastest measured method for ``spec``, timing the candidates on first use.

    Returns
    -------
    str

    Raises
    ------
    WorkspaceLimitError
        When no method fits the workspace limit.
    """
    text = _key_text(_key(spec))
    hit = _winners.get(text)
    if hit is not None and _usable(spec, hit[0]):
        return hit[0]
    with _measure_lock:
        persist = get_autotune_persist()
        if persist:
            _load_persisted()
        hit = _winners.get(text)
        if hit is not None and _usable(spec, hit[0]):
            return hit[0]
        seconds = _measure(spec)
        if not seconds:
            return choose_method(spec)  # raises WorkspaceLimitError naming what fits
        method = min(seconds, key=seconds.get)
        _winners[text] = (method, seconds)
        if persist:
            _store(text, method, seconds)
        return method


def measured_seconds(spec: ConvSpec) -> dict[str, float] | None:
    """``{method: seconds}`` measured for ``spec``, or ``None`` when not measured yet."""
    with _measure_lock:
        if get_autotune_persist():
            _load_persisted()
    hit = _winners.get(_key_text(_key(spec)))
    return None if hit is None else dict(hit[1])


