"""Process-wide settings, in one place (like ``torch.backends`` or pyFFTW's ``config``).

=====================  ==================================================  =========================
setting                meaning                                             functions
=====================  ==================================================  =========================
workspace limit        scratch memory one method call may use (bytes)      :func:`set_workspace_limit`,
                                                                           :func:`workspace_limit`
autotune               ``method="auto"`` measures instead of predicting    :func:`set_autotune`
autotune budget        seconds one problem's tuning of one pass may take   :func:`set_autotune`,
                                                                           :func:`get_autotune_budget`
cache directory        where calibration and autotune results are kept     :func:`cache_dir`
auto-measure           measure the cost model's machine constants once,    :func:`set_auto_measure`,
                       on the first ``method="auto"`` choice               :func:`get_auto_measure`
=====================  ==================================================  =========================

The FFT backend is chosen in :mod:`convlab.fft_backends` (its settings are
the backend objects themselves). Every setter is thread-safe and returns the
previous value, so a caller can restore it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from .checks import check_bool, check_finite_number, check_int

__all__ = ["DEFAULT_WORKSPACE_LIMIT", "get_workspace_limit", "set_workspace_limit", "workspace_limit",
           "check_limit", "get_autotune", "set_autotune", "get_autotune_persist", "get_autotune_budget",
           "DEFAULT_AUTOTUNE_BUDGET", "cache_dir", "get_auto_measure", "set_auto_measure", "AUTO_MEASURE_ENV"]

DEFAULT_WORKSPACE_LIMIT = 1 << 30  # 1 GiB
DEFAULT_AUTOTUNE_BUDGET = 5.0  # seconds per problem and pass

_lock = threading.Lock()
_limit = DEFAULT_WORKSPACE_LIMIT
_autotune = False
_autotune_persist = False
_auto_measure: bool | None = None  # None: follow $CONVLAB_AUTO_MEASURE
AUTO_MEASURE_ENV = "CONVLAB_AUTO_MEASURE"
_autotune_budget = DEFAULT_AUTOTUNE_BUDGET


# --------------------------------------------------------------- workspace limit
def check_limit(value: object, name: str = "workspace_limit") -> int:
    """Return ``value`` as a positive int number of bytes or raise naming ``name``."""
    return check_int(name, value, minimum=1)


def get_workspace_limit() -> int:
    """Return the global workspace limit in bytes (default 1 GiB).

    Methods report their workspace with ``workspace_bytes(spec)``; a method
    that can work in pieces (im2col, tiled FFT) chunks to fit, one that
    cannot raises :class:`convlab.WorkspaceLimitError`. A plan may override
    the limit (``plan(..., workspace_limit=...)``).

    Examples
    --------
    >>> import convlab as cl
    >>> cl.get_workspace_limit() == cl.config.DEFAULT_WORKSPACE_LIMIT
    True
    """
    return _limit


def set_workspace_limit(nbytes: int) -> int:
    """Set the global workspace limit in bytes and return the previous one.

    Examples
    --------
    >>> import convlab as cl
    >>> old = cl.set_workspace_limit(256 * 2**20)
    >>> cl.get_workspace_limit()
    268435456
    >>> _ = cl.set_workspace_limit(old)
    """
    global _limit
    nbytes = check_limit(nbytes)
    with _lock:
        old, _limit = _limit, nbytes
    return old


@contextlib.contextmanager
def workspace_limit(nbytes: int) -> Iterator[int]:
    """Context manager that sets the global workspace limit temporarily.

    Examples
    --------
    >>> import convlab as cl
    >>> with cl.workspace_limit(2**20):
    ...     cl.get_workspace_limit()
    1048576
    """
    old = set_workspace_limit(nbytes)
    try:
        yield nbytes
    finally:
        set_workspace_limit(old)


# --------------------------------------------------------------- autotune switch
def set_autotune(enabled: bool = True, *, persist: bool | None = None, budget: float | None = None) -> bool:
    """Switch measured choice for ``method="auto"`` on or off globally; return the previous setting.

    Parameters
    ----------
    enabled : bool
    persist : bool, optional
        Also store winners in (and read them from) ``autotune.json`` in
        :func:`cache_dir`. Unchanged when omitted.
    budget : float, optional
        Seconds the tuning of one pass of one problem may take (see
        :mod:`convlab.tuning.autotune`; default 5). Unchanged when omitted.

    Examples
    --------
    >>> import convlab as cl
    >>> old = cl.set_autotune(True)
    >>> cl.get_autotune()
    True
    >>> _ = cl.set_autotune(old)
    """
    global _autotune, _autotune_persist, _autotune_budget
    enabled = check_bool("enabled", enabled)
    persist = check_bool("persist", persist, allow_none=True)
    if budget is not None:
        budget = check_finite_number("budget", budget, positive=True)
    with _lock:
        old, _autotune = _autotune, enabled
        if persist is not None:
            _autotune_persist = persist
        if budget is not None:
            _autotune_budget = float(budget)
    return old


def get_autotune_budget() -> float:
    """Seconds the tuning of one pass of one problem may take (:func:`set_autotune`'s ``budget``).

    Examples
    --------
    >>> import convlab as cl
    >>> cl.config.get_autotune_budget() > 0
    True
    """
    return _autotune_budget


def get_autotune() -> bool:
    """True when ``method="auto"`` measures instead of predicting (the global switch).

    Examples
    --------
    >>> import convlab as cl
    >>> cl.get_autotune()
    False
    """
    return _autotune


def get_autotune_persist() -> bool:
    """True when autotune winners are stored in (and read from) the cache directory."""
    return _autotune_persist


# --------------------------------------------------------------- cache directory
def cache_dir() -> str:
    """Directory of convlab's per-user cache (created on demand by writers).

    ``$CONVLAB_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/convlab``, else
    ``~/.cache/convlab``.
    """
    override = os.environ.get("CONVLAB_CACHE_DIR")
    if override:
        return override
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "convlab")


# --------------------------------------------------------------- auto-measure switch
def get_auto_measure() -> bool:
    """True when the first ``method="auto"`` choice without a stored calibration measures this machine's
    constants (a fraction of a second, once per machine and convlab version; see
    :mod:`convlab.tuning.calibration`).

    On by default; ``$CONVLAB_AUTO_MEASURE`` set to ``0``, ``false``, ``no`` or ``off`` switches it
    off, and :func:`set_auto_measure` overrides the environment. Off, the choice uses the built-in
    constants (or a stored ``convlab calibrate`` result).

    Examples
    --------
    >>> import convlab as cl
    >>> old = cl.config.set_auto_measure(False)
    >>> cl.config.get_auto_measure()
    False
    >>> _ = cl.config.set_auto_measure(old)
    """
    if _auto_measure is not None:
        return _auto_measure
    return os.environ.get(AUTO_MEASURE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def set_auto_measure(enabled: bool | None) -> bool | None:
    """Switch the automatic measurement of machine constants on or off (``None``: follow
    ``$CONVLAB_AUTO_MEASURE`` again); return the previous setting (``None`` when it followed the
    environment)."""
    global _auto_measure
    enabled = check_bool("enabled", enabled, allow_none=True)
    with _lock:
        old, _auto_measure = _auto_measure, enabled
    return old
