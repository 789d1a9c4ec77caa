"""Measured method choice, like ``torch.backends.cudnn.benchmark``, and :func:`explain`.

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
  the other candidates', on seeded random inputs; the fastest pass counts;
* the winner is cached per problem key (shapes, dtype, stride, padding,
  dilation, groups, padding mode, workspace limit). Lookups are lock-free;
  measuring takes one process-wide lock, so two threads never time the same
  key twice, and never time concurrently (which would distort both);
* with ``persist=True`` winners are also written to ``autotune.json`` in
  the cache dir (with the machine fingerprint and convlab version, like the
  calibration) and read back by later processes.
"""

import dataclasses
import json
import os
import threading
import time

import numpy as np

__all__ = ["set_autotune", "get_autotune", "tuned_method", "measured_seconds", "clear_autotune_cache",
           "autotune_path", "explain", "Explanation", "PRUNE_FACTOR"]

PRUNE_FACTOR = 10.0
TIMING_ROUNDS = 3
AUTOTUNE_FILE = "autotune.json"

_state_lock = threading.Lock()
_measure_lock = threading.RLock()
_enabled = False
_persist = False
_winners = {}        # key -> (method, {method: seconds})
_loaded_from = None  # path whose entries were merged into _winners


def set_autotune(enabled=True, *, persist=None):
    """Switch measured choice for ``method="auto"`` on or off globally; return the previous setting.

    Parameters
    ----------
    enabled : bool
    persist : bool, optional
        Also store winners in (and read them from) :func:`autotune_path`.
        Unchanged when omitted.

    Examples
    --------
    >>> import convlab as cl
    >>> old = cl.set_autotune(True)
    >>> cl.get_autotune()
    True
    >>> _ = cl.set_autotune(old)
    """
    global _enabled, _persist
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, but got {enabled!r}")
    if persist is not None and not isinstance(persist, bool):
        raise TypeError(f"persist must be a bool or None, but got {persist!r}")
    with _state_lock:
        old = _enabled
        _enabled = enabled
        if persist is not None:
            _persist = persist
    return old


def get_autotune():
    """True when ``method="auto"`` measures instead of predicting (the global switch).

    Examples
    --------
    >>> import convlab as cl
    >>> cl.get_autotune()
    False
    """
    return _enabled


def autotune_path():
    """The file persisted winners live in: ``autotune.json`` in the cache dir."""
    from .calibrate import cache_dir

    return os.path.join(cache_dir(), AUTOTUNE_FILE)


def _key(plan):
    return (plan.key, plan.limit)


def _key_text(key):
    return repr(key)


def clear_autotune_cache():
    """Forget every measured winner of this process (stored files are left alone)."""
    global _loaded_from
    with _measure_lock, _state_lock:
        _winners.clear()
        _loaded_from = None


# --------------------------------------------------------------- persistence
def _stamp():
    from . import __version__
    from .calibrate import fingerprint

    return dict(convlab_version=__version__, fingerprint=fingerprint())


def _read(path):
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    stamp = _stamp()
    if any(record.get(k) != v for k, v in stamp.items()):
        return {}
    entries = record.get("entries", {})
    return entries if isinstance(entries, dict) else {}


def _load_persisted():
    """Merge the stored winners for this machine into the in-process cache (once per path)."""
    global _loaded_from
    path = autotune_path()
    if _loaded_from == path:
        return
    for text, entry in _read(path).items():
        try:
            _winners.setdefault(text, (str(entry["method"]), {str(k): float(v) for k, v in entry["seconds"].items()}))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    _loaded_from = path


def _store(text, method, seconds):
    path = autotune_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    entries = _read(path)
    entries[text] = dict(method=method, seconds=seconds)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
        json.dump(dict(_stamp(), entries=entries), f, indent=1, sort_keys=True)
    os.replace(tmp, path)  # atomic: readers see the old file or the new one


# --------------------------------------------------------------- measuring
def _candidates(plan):
    """Methods worth timing: supported, fitting, and predicted within ``PRUNE_FACTOR`` of the best."""
    from .selection import predictions

    ranked = [r for r in predictions(plan) if r.seconds is not None]
    if not ranked:
        return []
    best = ranked[0].seconds
    return [r.method for r in ranked if r.seconds <= PRUNE_FACTOR * best]


def _time_once(plan, x, w):
    start = time.perf_counter()
    plan.forward(x, w)
    return time.perf_counter() - start


def _measure(plan):
    """``{method: seconds}``: the fastest of ``TIMING_ROUNDS`` forward passes of each candidate.

    Rounds are interleaved across candidates so that machine drift hits all of them alike, and the
    minimum is kept because noise on a shared machine only ever adds time.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal(plan.x_shape).astype(plan.dtype)
    w = rng.standard_normal(plan.w_shape).astype(plan.dtype)
    plans = {name: plan.with_method(name) for name in _candidates(plan)}
    for candidate in plans.values():
        candidate.forward(x, w)  # warm-up: per-plan caches, FFTW plans, first-touch of buffers
    seconds = {name: float("inf") for name in plans}
    for _ in range(TIMING_ROUNDS):
        for name, candidate in plans.items():
            seconds[name] = min(seconds[name], _time_once(candidate, x, w))
    return seconds


def tuned_method(plan):
    """The fastest measured method for ``plan``'s problem, timing the candidates on first use.

    Returns
    -------
    str

    Raises
    ------
    WorkspaceLimitError
        When no method fits the workspace limit.
    """
    text = _key_text(_key(plan))
    hit = _winners.get(text)
    if hit is not None:
        return hit[0]
    with _measure_lock:
        if _persist:
            _load_persisted()
        hit = _winners.get(text)
        if hit is not None:
            return hit[0]
        seconds = _measure(plan)
        if not seconds:
            from .selection import choose_method

            return choose_method(plan)  # raises WorkspaceLimitError naming what fits
        method = min(seconds, key=seconds.get)
        _winners[text] = (method, seconds)
        if _persist:
            _store(text, method, seconds)
        return method


def measured_seconds(plan):
    """``{method: seconds}`` measured for ``plan``'s problem, or ``None`` when not measured yet."""
    with _measure_lock:
        if _persist:
            _load_persisted()
    hit = _winners.get(_key_text(_key(plan)))
    return None if hit is None else dict(hit[1])


# --------------------------------------------------------------- explaining
@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why ``method="auto"`` picks what it picks for a plan.

    Attributes
    ----------
    plan_method : str
        The method the plan runs.
    predicted_choice : str
        What the cost model picks (:func:`convlab.choose_method`).
    measured_choice : str or None
        What autotuning picked, when this problem was measured.
    rows : tuple of (method, predicted seconds or None, measured seconds or None, note)
    calibration : str
        Where the cost model's constants came from.
    """

    plan_method: str
    predicted_choice: str | None
    measured_choice: str | None
    rows: tuple
    calibration: str

    def __str__(self):
        lines = [f"plan runs {self.plan_method!r}; cost model picks {self.predicted_choice!r}"
                 + (f"; autotune measured {self.measured_choice!r}" if self.measured_choice else
                    " (not measured: autotune off or not run for this problem)"),
                 f"constants: {self.calibration}",
                 f"{'method':<12}{'predicted ms':>14}{'measured ms':>14}  note"]
        for name, predicted, measured, note in self.rows:
            p = f"{predicted * 1e3:.3f}" if predicted is not None else "-"
            m = f"{measured * 1e3:.3f}" if measured is not None else "-"
            lines.append(f"{name:<12}{p:>14}{m:>14}  {note}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def explain(plan):
    """Which method ``method="auto"`` chooses for ``plan`` and why.

    Parameters
    ----------
    plan : ConvPlan

    Returns
    -------
    Explanation
        Printing it gives a table of every registered method with its
        predicted forward time, its measured time when autotuning timed this
        problem, and why it was excluded or not measured.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> e = cl.explain(cl.plan((8, 16, 32, 32), (32, 16, 3, 3), np.float32, padding=1))
    >>> e.predicted_choice in cl.methods()
    True
    >>> print(e)  # doctest: +ELLIPSIS
    plan runs ...
    """
    from .selection import get_calibration, predictions

    measured = measured_seconds(plan) or {}
    ranked = predictions(plan)
    fitting = [r for r in ranked if r.seconds is not None]
    best = fitting[0].seconds if fitting else None
    rows = []
    for r in ranked:
        if r.seconds is None:
            note = f"excluded: {r.reason}"
        elif r.method in measured:
            note = "measured"
        elif measured:
            note = f"not timed: predicted over {PRUNE_FACTOR:g}x the best"
        else:
            note = ""
        if r.seconds is not None and r.seconds == best:
            note = ("cheapest predicted; " + note).rstrip("; ")
        rows.append((r.method, r.seconds, measured.get(r.method), note))
    return Explanation(plan.method, fitting[0].method if fitting else None,
                       min(measured, key=measured.get) if measured else None, tuple(rows),
                       get_calibration().source)
