"""Measured method choice, like ``torch.backends.cudnn.benchmark``.

With autotuning on (``cl.conv(..., method="auto", autotune=True)``,
``cl.plan(..., autotune=True)`` or globally ``cl.set_autotune(True)``), the
first plan for a problem times every candidate method and keeps the
fastest for the rest of the process:

* candidates are the registered methods that support the plan and fit its
  workspace limit, minus those the cost model predicts at more than
  ``PRUNE_FACTOR`` times the best prediction (timing a sparse Toeplitz
  product predicted at minutes would defeat the purpose);
* each pass is tuned on its own (cuDNN's forward, backward-data and
  backward-filter choices): the forward when the plan is built, ``dx``
  and ``dw`` on the plan's first backward call, each timing that pass;
* each candidate runs the pass once to warm its caches (FFTW plans,
  sparsity patterns), then ``TIMING_ROUNDS`` timed passes interleaved with
  the other candidates', on seeded random inputs, by the harness's one
  stopwatch (:func:`convlab.harness.time_interleaved`); the median counts;
* the time is bounded: candidates are warmed in order of predicted time
  and no new one is started, nor a new timing round, once
  :func:`convlab.get_autotune_budget` seconds (default 5) have passed, so the
  predicted-fastest is always timed and a slow first call of an outsider
  cannot run away; a tuning that lasts more than a second says so in one
  line (to the ``convlab.tuning`` logger when it has a handler, else stderr)
  when it starts and when it ends;
* the winner is cached per problem key and pass (shapes, dtype, stride, padding,
  dilation, groups, padding mode, workspace limit). Lookups are lock-free;
  measuring takes one process-wide lock, so two threads never time the same
  key twice, and never time concurrently (which would distort both);
* with ``persist=True`` winners are also written to ``autotune.json`` in
  the cache dir (with the machine fingerprint and convlab version, like the
  calibration) and read back by later processes.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from .. import fft_backends, harness
from ..algorithms import check_pass, get_method, methods, verdict
from ..config import cache_dir, get_autotune_budget, get_autotune_persist
from ..problem import ConvSpec
from . import store
from .calibration import fingerprint
from .choice import choose_method, predictions

__all__ = ["tuned_method", "measured_seconds", "clear_autotune_cache", "autotune_path", "PRUNE_FACTOR"]

PRUNE_FACTOR = 10.0
TIMING_ROUNDS = 3
AUTOTUNE_FILE = "autotune.json"
#: Seconds after which a tuning in progress says so (one line at the start and one at the end).
PROGRESS_AFTER_S = 1.0

logger = logging.getLogger("convlab.tuning")

_state_lock = threading.Lock()
_measure_lock = threading.RLock()
_winners = {}        # key -> (method, {method: seconds})
_loaded_from = None  # path whose entries were merged into _winners


def autotune_path() -> str:
    """The file persisted winners live in: ``autotune.json`` in the cache dir."""
    return os.path.join(cache_dir(), AUTOTUNE_FILE)


def _key(spec: ConvSpec, pass_: str = "forward") -> tuple:
    # the forward keeps the key it always had, so winners persisted before per-pass tuning still count
    return (spec.key, spec.limit) if pass_ == "forward" else (spec.key, spec.limit, pass_)


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
def _candidates(spec: ConvSpec, pass_: str = "forward") -> list[str]:
    """Methods worth timing for ``pass_``: supported, fitting, accurate enough, and predicted within
    ``PRUNE_FACTOR`` of the best; the predicted-fastest first."""
    ranked = [r for r in predictions(spec, pass_=pass_) if r.seconds is not None]
    if not ranked:
        return []
    best = ranked[0].seconds
    return [r.method for r in ranked if r.seconds <= PRUNE_FACTOR * best]


def _usable(spec: ConvSpec, method: str) -> bool:
    """A stored winner counts only while it is registered and runs ``spec`` within its limit
    (a file written by another version, or edited by hand, may name anything)."""
    return method in methods() and verdict(spec, method).ok


def _say(message: str) -> None:
    """One progress line: to the ``convlab.tuning`` logger when the application configured logging, else stderr."""
    if logger.hasHandlers():
        logger.info(message)
    else:
        print(f"convlab: {message}", file=sys.stderr, flush=True)


class _Progress:
    """Says once that a tuning is under way when it outlasts :data:`PROGRESS_AFTER_S`, and then how it ended."""

    def __init__(self, what: str, count: int, budget: float) -> None:
        self.what, self.start, self.spoke = what, time.perf_counter(), False
        self._timer = threading.Timer(PROGRESS_AFTER_S, self._starting, (count, budget))
        self._timer.daemon = True
        self._timer.start()

    def _starting(self, count: int, budget: float) -> None:
        self.spoke = True
        _say(f"autotuning {self.what}: timing {count} method(s), at most about {budget:g} s")

    def done(self, winner: str, timed: int) -> None:
        self._timer.cancel()
        elapsed = time.perf_counter() - self.start
        if self.spoke or elapsed > PROGRESS_AFTER_S:
            _say(f"autotuned {self.what} in {elapsed:.1f} s: {winner!r} (of {timed} timed)")


def _time_candidates(runs: dict[str, Callable[[], object]], *,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Seconds per call of each candidate by the one stopwatch (:func:`convlab.harness.time_interleaved`).

    ``runs`` is in order of predicted time. A warm-up call of each (per-spec
    caches, FFTW plans, first touch of buffers), stopping before a candidate
    once :func:`convlab.get_autotune_budget` seconds have passed (the first
    is always warmed); then up to ``TIMING_ROUNDS`` samples interleaved across
    the warmed ones, so that drift of a shared machine hits all alike, with no
    new round once the budget is spent; the median of each.
    """
    budget, start, warmed, first = get_autotune_budget(), clock(), {}, {}
    for name, run in runs.items():
        if warmed and clock() - start > budget:
            break
        before = clock()
        run()
        warmed[name], first[name] = run, clock() - before
    left = max(budget - (clock() - start), 1e-9)  # the first round always runs
    # call_seconds: one call per sample whatever the warm-up took, so the harness needs no probe call
    timings = harness.time_interleaved(warmed, repeats=TIMING_ROUNDS, warmup=0, min_sample_s=0.0, max_time_s=left,
                                       call_seconds=first, clock=clock)
    return {name: timing.median for name, timing in timings.items()}


def _measure(spec: ConvSpec, pass_: str = "forward") -> dict[str, float]:
    """``{method: seconds}`` of ``pass_`` for the candidates timed within the budget, on seeded random inputs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.x_shape).astype(spec.dtype)
    w = rng.standard_normal(spec.w_shape).astype(spec.dtype)
    grad_y = rng.standard_normal(spec.output_shape).astype(spec.dtype)

    def runner(name):
        impl = get_method(name)
        if pass_ == "backward_input":
            return lambda: impl.run_backward_input(spec, grad_y, w)
        if pass_ == "backward_weight":
            return lambda: impl.run_backward_weight(spec, grad_y, x)
        return lambda: impl.run_forward(spec, x, w)

    candidates = _candidates(spec, pass_)
    what = f"{pass_} of x {spec.x_shape}, w {spec.w_shape} {spec.dtype}"
    progress = _Progress(what, len(candidates), get_autotune_budget())
    with fft_backends.measured_plans_now():  # FFT candidates are timed with the plans they will run
        seconds = _time_candidates({name: runner(name) for name in candidates})
    if seconds:
        progress.done(min(seconds, key=seconds.get), len(seconds))
    return seconds


def tuned_method(spec: ConvSpec, pass_: str = "forward") -> str:
    """The fastest measured method for ``pass_`` of ``spec``, timing the candidates on first use.

    Parameters
    ----------
    spec : ConvSpec
    pass_ : {"forward", "backward_input", "backward_weight"}, default "forward"

    Returns
    -------
    str

    Raises
    ------
    WorkspaceLimitError
        When no method fits the workspace limit.
    """
    text = _key_text(_key(spec, check_pass(pass_)))
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
        seconds = _measure(spec, pass_)
        if not seconds:
            return choose_method(spec, pass_=pass_)  # raises WorkspaceLimitError naming what fits
        method = min(seconds, key=seconds.get)
        _winners[text] = (method, seconds)
        if persist:
            _store(text, method, seconds)
        return method


def measured_seconds(spec: ConvSpec, pass_: str = "forward") -> dict[str, float] | None:
    """``{method: seconds}`` measured for ``pass_`` of ``spec``, or ``None`` when not measured yet."""
    with _measure_lock:
        if get_autotune_persist():
            _load_persisted()
    hit = _winners.get(_key_text(_key(spec, check_pass(pass_))))
    return None if hit is None else dict(hit[1])


