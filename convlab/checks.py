"""Checks of single argument values, shared by every layer that takes user input.

The problem spec (:mod:`convlab.problem`) validates a whole convolution; these
helpers check one value each (an int that is not a bool, a positive count, a
bool switch, a choice from a set) so that every caller words its errors the
same way: the parameter, the value received, and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import ConvError, ConvTypeError

__all__ = ["is_int", "check_int", "check_positive_int", "check_ints", "check_bool", "check_choice",
           "check_finite_number"]


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, False for bools (which are ints to Python).

    Examples
    --------
    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int, or an error naming ``name``.

    Examples
    --------
    >>> check_int("repeats", 3, minimum=1)
    3
    >>> check_int("repeats", 0, minimum=1)
    Traceback (most recent call last):
    ...
    convlab.errors.ConvError: repeats=0 must be >= 1
    """
    if not is_int(value):
        raise ConvTypeError(f"{name} must be an int, but got {value!r}")
    if minimum is not None and value < minimum:
        raise ConvError(f"{name}={value!r} must be >= {minimum}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1 (a count: channels, threads, sizes), or an error naming ``name``.

    Examples
    --------
    >>> check_positive_int("in_channels", 0)
    Traceback (most recent call last):
    ...
    convlab.errors.ConvError: in_channels must be a positive int, but got 0
    """
    if not is_int(value):
        raise ConvTypeError(f"{name} must be a positive int, but got {value!r}")
    if value < 1:
        raise ConvError(f"{name} must be a positive int, but got {value!r}")
    return int(value)


def check_ints(name: str, value: Any, count: int, minimum: int) -> tuple[int, ...]:
    """An int or a tuple of ``count`` ints, each >= ``minimum``, as a tuple of ``count`` ints.

    Examples
    --------
    >>> check_ints("kernel_size", 3, 2, 1), check_ints("kernel_size", (3, 5), 2, 1)
    ((3, 3), (3, 5))
    """
    values = (value,) * count if is_int(value) else value
    if not isinstance(values, (tuple, list)) or len(values) != count or not all(
            is_int(v) and v >= minimum for v in values):
        raise ConvError(f"{name} must be an int >= {minimum} or a tuple of {count} of them, but got {value!r}")
    return tuple(int(v) for v in values)


def check_bool(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    """``value`` when it is a bool (or ``None`` when allowed), else an error naming ``name``."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        allowed = "a bool or None" if allow_none else "a bool"
        raise ConvTypeError(f"{name} must be {allowed}, but got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """``value`` when it is one of ``allowed``, else an error listing them.

    Unhashable values (a dict, a list) get the same message rather than
    Python's ``unhashable type``.

    Examples
    --------
    >>> check_choice("padding_mode", "reflekt", {"zeros", "reflect"})
    Traceback (most recent call last):
    ...
    convlab.errors.ConvError: padding_mode must be one of {'reflect', 'zeros'}, but got 'reflekt'
    """
    allowed = sorted(allowed)
    if not isinstance(value, str) or value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise ConvError(f"{name} must be one of {{{listed}}}, but got {value!r}")
    return value


def check_finite_number(name: str, value: Any, *, minimum: float | None = None,
                        positive: bool = False) -> float:
    """``value`` as a finite float (not a bool), at least ``minimum`` or > 0 when ``positive``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConvTypeError(f"{name} must be a number, but got {value!r}")
    number = float(value)
    if not np.isfinite(number):
        raise ConvError(f"{name}={value!r} must be finite")
    if positive and number <= 0:
        raise ConvError(f"{name}={value!r} must be > 0")
    if minimum is not None and number < minimum:
        raise ConvError(f"{name}={value!r} must be >= {minimum}")
    return number
