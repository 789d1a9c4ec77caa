"""Caches on disk that cannot lie: validated on read, stamped, written atomically, merged under a lock.

Calibration and autotune results persist as JSON files in
:func:`convlab.config.cache_dir`. Both go through here, so both

* carry a stamp (:func:`stamp`): the convlab version, a hash of the code
  that produced the numbers (the methods, the FFT backends, the tuning
  layer), and the machine fingerprint; a file with another stamp is ignored;
* are validated on read by the caller's check; a file that does not
  validate (truncated, ``[]``, a string, a zero where a rate belongs) is
  ignored with one warning naming it, and never breaks a convolution;
* are written atomically (a temporary file, then ``os.replace``) while an
  advisory lock is held, re-reading the file first, so that several
  processes persisting at once merge their entries instead of losing them;
* fail to write with a warning, not an exception, when the cache directory
  cannot be written (a read-only disk, a regular file in its place).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .._version import __version__

try:
    import fcntl
except ImportError:  # not POSIX: writes stay atomic, concurrent writers may lose entries
    fcntl = None

__all__ = ["CacheWarning", "stamp", "code_hash", "read_record", "update_record"]

_PACKAGE = pathlib.Path(__file__).resolve().parent.parent
# the code whose output a cache records: a change here makes old caches stale
_STAMPED_CODE = ("algorithms", "tuning", "fft_backends.py", "problem.py", "_version.py")
_code_hash: str | None = None
_warned: set[str] = set()


class CacheWarning(UserWarning):
    """A cache file was ignored (it did not validate) or could not be written."""


def code_hash() -> str:
    """A short hash of the source of the methods and the tuning layer (computed once per process)."""
    global _code_hash
    if _code_hash is None:
        digest = hashlib.sha256()
        for name in _STAMPED_CODE:
            root = _PACKAGE / name
            for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
                digest.update(str(path.relative_to(_PACKAGE)).encode())
                digest.update(path.read_bytes())
        _code_hash = digest.hexdigest()[:16]
    return _code_hash


def stamp(fingerprint: dict) -> dict:
    """What a cache entry is valid for: this convlab, this code, this machine."""
    return dict(convlab_version=__version__, code=code_hash(), fingerprint=fingerprint)


def _warn_once(path: str, message: str) -> None:
    if path + message not in _warned:
        _warned.add(path + message)
        warnings.warn(f"convlab cache {path}: {message}", CacheWarning, stacklevel=3)


def read_record(path: str, expected_stamp: dict, validate: Callable[[dict], Any]) -> Any | None:
    """``validate(record)`` of the JSON object in ``path``, or ``None`` when there is none to use.

    A missing file, or one stamped for another version, code or machine, is
    ``None`` quietly (it is simply not for us); a file that cannot be read or
    parsed, or that ``validate`` rejects (by raising ``ValueError``,
    ``TypeError`` or ``KeyError``), is ``None`` with one :class:`CacheWarning`.
    """
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _warn_once(path, f"ignored: cannot be read as JSON ({exc})")
        return None
    if not isinstance(record, dict):
        _warn_once(path, f"ignored: expected a JSON object, found {type(record).__name__}")
        return None
    if any(record.get(k) != v for k, v in expected_stamp.items()):
        return None
    try:
        return validate(record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        _warn_once(path, f"ignored: {exc}")
        return None


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_record(path: str, expected_stamp: dict, validate: Callable[[dict], dict],
                  merge: Callable[[dict | None], dict], *, strict: bool = False) -> bool:
    """Write ``merge(current)`` (``current`` the validated record in ``path`` or ``None``) with the stamp.

    Returns ``False``, with a :class:`CacheWarning`, when the file cannot be written; with
    ``strict`` (an explicit request such as ``convlab calibrate``) the ``OSError`` is raised instead.
    """
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with _locked(path):
            current = read_record(path, expected_stamp, validate)
            record = dict(merge(current), **expected_stamp)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=1, sort_keys=True)
            os.replace(tmp, path)  # atomic: readers see the old file or the new one
        return True
    except OSError as exc:
        if strict:
            raise OSError(f"cannot write the convlab cache {path}: {exc}") from exc
        _warn_once(path, f"not written: {exc}")
        return False
