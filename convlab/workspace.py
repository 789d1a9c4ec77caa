"""The workspace limit: how much scratch memory one method call may use.

Methods report their workspace with ``workspace_bytes(plan)``; a method that
can work in pieces (im2col, tiled FFT) chunks to fit, one that cannot raises
:class:`convlab.WorkspaceLimitError`. The limit is global (thread-safe) and
can be overridden per plan.
"""

import contextlib
import threading

import numpy as np

from .errors import ConvError, ConvTypeError

__all__ = ["DEFAULT_WORKSPACE_LIMIT", "get_workspace_limit", "set_workspace_limit", "workspace_limit"]

DEFAULT_WORKSPACE_LIMIT = 1 << 30  # 1 GiB

_lock = threading.Lock()
_limit = DEFAULT_WORKSPACE_LIMIT


def check_limit(value, name="workspace_limit"):
    """Return ``value`` as a positive int or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConvTypeError(f"{name} must be an int number of bytes, but got {value!r}")
    if value < 1:
        raise ConvError(f"{name}={value} must be a positive number of bytes")
    return int(value)


def get_workspace_limit():
    """Return the global workspace limit in bytes (default 1 GiB).

    Examples
    --------
    >>> import convlab as cl
    >>> cl.get_workspace_limit() == cl.workspace.DEFAULT_WORKSPACE_LIMIT
    True
    """
    return _limit


def set_workspace_limit(nbytes):
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
def workspace_limit(nbytes):
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
