"""Per-phase timing of a method's passes: a hook that costs one context-variable read when off.

A method marks the phases of a pass (``with phase("product"): ...``); the
report, the benchmarks and :func:`convlab.explain` switch the hook on with
:func:`record` and read how a call's time split between them, as NNPACK's
per-algorithm profile does. When no recorder is active, :func:`phase`
returns a shared do-nothing context manager, so a marked pass pays about
0.1 µs per phase and allocates nothing.

The phase names a method uses are its own, but the built-in methods share
this vocabulary so that the report can stack them side by side and the cost
models (:meth:`convlab.algorithms.Method.cost`) can predict the same phases:

====================  ================================================================
name                  what it covers
====================  ================================================================
``pad``               the padded copy of the input (or the crop of a padded gradient)
``pack``              gathering windows into a buffer: im2col's column matrix, tiles
``transform_input``   Winograd's ``Bᵀ d B``, the FFT of the input (or output gradient)
``transform_weight``  Winograd's ``G g Gᵀ``, the FFT of the kernel, a Toeplitz matrix
``product``           the arithmetic core: GEMM, pointwise/batched product, sliding loop
``transform_output``  Winograd's ``Aᵀ m A``, the inverse FFT
``unpack``            scattering results back: col2im, overlap-add, crop, stride
====================  ================================================================

Phases do not nest: a phase opened inside another is timed in both, so a
method marks only the outermost steps of a pass. Recorders are per thread
(a :class:`contextvars.ContextVar`): a Dask worker thread or a concurrent
caller never adds to another thread's record.

Examples
--------
>>> import time
>>> with record() as times:
...     with phase("product"):
...         time.sleep(0.001)
...     with phase("product"):
...         pass
>>> sorted(times), times["product"] >= 0.001
(['product'], True)
>>> with phase("product"):  # no recorder: nothing is kept
...     pass
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

__all__ = ["PHASES", "phase", "record", "recording"]

PHASES = ("pad", "pack", "transform_input", "transform_weight", "product", "transform_output", "unpack")
"""The shared vocabulary, in the order the report stacks them."""

_recorder: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("convlab_phases", default=None)


class _Timed:
    """Adds the wall time of its ``with`` block to ``times[name]``."""

    __slots__ = ("name", "start", "times")

    def __init__(self, times: dict[str, float], name: str) -> None:
        self.times, self.name = times, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.times[self.name] = self.times.get(self.name, 0.0) + time.perf_counter() - self.start


_OFF = contextlib.nullcontext()


def phase(name: str) -> contextlib.AbstractContextManager:
    """Context manager timing one phase of a pass into the active :func:`record`, if any."""
    times = _recorder.get()
    return _OFF if times is None else _Timed(times, name)


def recording() -> bool:
    """Whether a :func:`record` is active in this thread (lets a method skip costly bookkeeping)."""
    return _recorder.get() is not None


@contextlib.contextmanager
def record() -> Iterator[dict[str, float]]:
    """Collect the phases timed inside the block: yields ``{phase name: seconds}``, summed over calls.

    Records nest: an inner record collects its own block only, and the
    outer one resumes afterwards (the inner block's phases are not added to
    it).
    """
    times: dict[str, float] = {}
    token = _recorder.set(times)
    try:
        yield times
    finally:
        _recorder.reset(token)
