"""``convlab compare``: run every registered method on one problem and tabulate time and error.

A thin command line over :mod:`convlab.harness`: the problem is a
:class:`~convlab.case.Case`, the times come from
:func:`~convlab.harness.time_interleaved` (median seconds per call over
interleaved rounds), the errors from :func:`convlab.tolerances.relative_error`
against a float64 ``direct`` result on the same values.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable, Sequence

import numpy as np

import convlab as cl

from . import harness
from .case import Case
from .tolerances import relative_error

__all__ = ["compare", "format_table", "parse_ints"]

DESCRIPTION = """Run every registered method on one convolution problem and print a table.

For each method: median forward and backward time over interleaved rounds
(convlab.harness), and the normwise relative error of y, dx and dw against a
float64 direct result on the same values.

examples:
  convlab compare --shape 8,16,64,64 --out-channels 32 --kernel 5 --padding same
  convlab compare --shape 1,1,256,256 --kernel 3x15 --methods direct,fft --dtype float64
"""

TABLE_WIDTH = 100  # columns: a normal terminal, without wrapping


def parse_ints(option: str, text: str, sep: str = ",") -> tuple[int, ...]:
    """``"8,16,64"`` -> ``(8, 16, 64)``; a :class:`ValueError` naming ``option`` otherwise.

    ``sep`` may list several separators (``",x"`` accepts ``3x5`` and ``3,5``).

    Examples
    --------
    >>> parse_ints("--kernel", "3x5", ",x")
    (3, 5)
    >>> parse_ints("--shape", "a,b")
    Traceback (most recent call last):
    ...
    ValueError: --shape must be comma-separated ints such as 8,16,64,64, but got 'a,b'
    """
    parts = [text]
    for s in sep:
        parts = [piece for part in parts for piece in part.split(s)]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        example = {"--kernel": "3 or 3x5", "--stride": "1 or 2,1"}.get(option, "8,16,64,64")
        raise ValueError(f"{option} must be {'comma-separated ints' if sep == ',' else 'ints'} such as {example}, "
                         f"but got {text!r}") from None


def add_arguments(parser):
    parser.add_argument("--shape", default="8,16,64,64",
                        help="input shape N,C_in,*spatial with 1-3 spatial dims (default 8,16,64,64)")
    parser.add_argument("--out-channels", type=int, default=16, help="C_out (default 16)")
    parser.add_argument("--kernel", default="5",
                        help="kernel size: one int for every spatial dim, or one per dim as 3x5 or 3,5 (default 5)")
    parser.add_argument("--stride", default="1", help="int, or one per spatial dim as 2,1 (default 1)")
    parser.add_argument("--padding", default="same", help="int, ints per dim as 1,2, or valid|same|full (default same)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per method (default 5)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods (default: every registered one)")


def _methods(text: str | None) -> list[str]:
    if text is None:
        return list(cl.methods())
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in cl.methods()]
    if unknown or not names:
        raise ValueError(f"--methods must be a comma-separated list of {', '.join(cl.methods())}, but got "
                         f"{text!r}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return names


def case_from_args(args) -> Case:
    """The :class:`~convlab.case.Case` the command-line options describe, validated by :func:`convlab.plan`."""
    shape = parse_ints("--shape", args.shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"--shape must be N,C_in,*spatial with 1, 2 or 3 spatial dims, i.e. 3, 4 or 5 ints, "
                         f"but got {shape}")
    ndim = len(shape) - 2
    kernel = parse_ints("--kernel", args.kernel, ",x")
    if len(kernel) not in (1, ndim):
        raise ValueError(f"--kernel must give one size or {ndim} (one per spatial dim), but got {args.kernel!r}")
    stride = parse_ints("--stride", args.stride)
    padding = args.padding if args.padding in ("valid", "same", "full") else parse_ints("--padding", args.padding)
    case = Case(shape, (args.out_channels, shape[1], *(kernel * ndim if len(kernel) == 1 else kernel)),
                        args.dtype, stride=stride[0] if len(stride) == 1 else stride,
                        padding=padding[0] if isinstance(padding, tuple) and len(padding) == 1 else padding)
    case.plan("direct")  # every other problem in the options: convlab's own message
    return case


def compare(case: Case, methods: Sequence[str] | None = None, repeats: int = 5, warmup: int = 1,
            min_sample_s: float = 0.002, progress: Callable[[str], object] | None = None) -> list[dict]:
    """Time and check every method on one problem.

    Parameters
    ----------
    case : convlab.case.Case
        The problem; timed in ``case.dtype``.
    methods : sequence of str, optional
        Registered methods; default every one.
    repeats, warmup, min_sample_s
        As in :func:`convlab.harness.time_interleaved`.
    progress : callable, optional
        Called with a short description of each step.

    Returns
    -------
    list of dict
        One per method, in order: ``method``, ``forward`` and ``backward``
        (:class:`~convlab.harness.Timing`), ``error_y``, ``error_dx``,
        ``error_dw``; or ``method`` and ``error`` (the reason) when the method
        cannot run the problem.

    Examples
    --------
    >>> rows = compare(Case((1, 1, 16, 16), (1, 1, 3, 3)), ["direct", "fft"], repeats=1)
    >>> [r["method"] for r in rows], rows[0]["error_y"] < 1e-6, rows[1]["forward"].median > 0
    (['direct', 'fft'], True, True)
    """
    names = list(cl.methods() if methods is None else methods)
    for name in names:
        cl.get_method(name)  # an unknown name fails before anything is measured
    say = progress or (lambda text: None)
    x64, w64, g64 = case.arrays(dtype=np.float64)
    reference = case.plan("direct", np.float64)
    y_ref, (dx_ref, dw_ref, _) = reference.forward(x64, w64), reference.backward(g64, x64, w64)
    x, w, grad_y = (a.astype(case.dtype) for a in (x64, w64, g64))
    rows, calls = [], {}
    for index, name in enumerate(names, 1):
        say(f"checking {name} ({index}/{len(names)})")
        try:
            p = case.plan(name)
            y = p.forward(x, w)  # also the first call: plan caches, FFTW plans
            g = p.backward(grad_y, x, w)
        except (cl.ConvError, MemoryError) as exc:
            rows.append({"method": name, "error": str(exc)})
            continue
        rows.append({"method": name, "error_y": relative_error(y, y_ref), "error_dx": relative_error(g.dx, dx_ref),
                     "error_dw": relative_error(g.dw, dw_ref)})
        calls[f"{name}/forward"] = lambda p=p: p.forward(x, w)
        calls[f"{name}/backward"] = lambda p=p: p.backward(grad_y, x, w)
    if calls:
        say(f"timing {len(calls) // 2} methods, {repeats} interleaved rounds")
        timings = harness.time_interleaved(calls, repeats, warmup, min_sample_s,
                                           progress=lambda done, total: say(f"timing: round {done}/{total}"))
        for row in rows:
            if "error" not in row:
                row.update(forward=timings[f"{row['method']}/forward"], backward=timings[f"{row['method']}/backward"])
    return rows


def _ms(timing: harness.Timing) -> str:
    def num(ms):
        return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"

    return f"{num(timing.median * 1e3)} ±{num(timing.iqr / 2 * 1e3)}"


def format_table(rows: Sequence[dict], width: int = TABLE_WIDTH) -> str:
    """The rows of :func:`compare` as a text table no wider than ``width`` columns.

    Times are medians in ms with half the interquartile range; a method that
    cannot run has its reason wrapped below its name.

    Examples
    --------
    >>> t = harness.summarize([0.001, 0.002, 0.003])
    >>> rows = [dict(method="direct", forward=t, backward=t, error_y=0.0, error_dx=1e-7, error_dw=2e-7),
    ...         dict(method="winograd", error="winograd supports stride 1 only, " * 4)]
    >>> print(format_table(rows, width=60))  # doctest: +NORMALIZE_WHITESPACE
    method      forward ms     backward ms        err y   err dx   err dw
    ---------------------------------------------------------------------
    direct      2 ±0.5         2 ±0.5           0.0e+00  1.0e-07  2.0e-07
    winograd    cannot run: winograd supports stride 1 only,
                winograd supports stride 1 only, winograd
                supports stride 1 only, winograd supports stride
                1 only,
    """
    header = f"{'method':<12}{'forward ms':<15}{'backward ms':<15}{'err y':>9}{'err dx':>9}{'err dw':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        if "error" in r:
            lines += textwrap.wrap(f"cannot run: {r['error']}", width=width, initial_indent=f"{r['method']:<12}",
                                   subsequent_indent=" " * 12)
            continue
        lines.append(f"{r['method']:<12}{_ms(r['forward']):<15}{_ms(r['backward']):<15}"
                     f"{r['error_y']:>9.1e}{r['error_dx']:>9.1e}{r['error_dw']:>9.1e}")
    return "\n".join(lines)


class _Progress:
    """Status on stderr, shown only once the run has taken more than ``after`` seconds."""

    def __init__(self, stream=None, after=1.0, clock=time.perf_counter):
        self.stream = stream if stream is not None else sys.stderr
        self.after, self.clock, self.start = after, clock, clock()
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.shown = False

    def __call__(self, text):
        elapsed = self.clock() - self.start
        if elapsed < self.after:
            return
        line = f"convlab compare: {text} ({elapsed:.0f} s)"
        self.stream.write(f"\r{line[:TABLE_WIDTH - 1]:<{TABLE_WIDTH - 1}}" if self.tty else line + "\n")
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.shown and self.tty:
            self.stream.write("\r" + " " * (TABLE_WIDTH - 1) + "\r")
            self.stream.flush()


def run(args):
    if isinstance(args.repeats, bool) or args.repeats < 1:
        raise ValueError(f"--repeats must be an int >= 1, but got {args.repeats}")
    methods = _methods(args.methods)
    case = case_from_args(args)
    print(f"x {case.x_shape} {case.dtype}, w {case.w_shape}, stride {case.stride}, padding {case.padding!r}; "
          f"BLAS threads {harness.blas_threads()}")
    progress = _Progress()
    try:
        rows = compare(case, methods, repeats=args.repeats, progress=progress)
    finally:
        progress.close()
    print(format_table(rows))
    timed = [r for r in rows if "forward" in r]
    if timed:
        best = min(timed, key=lambda r: r["forward"].median)
        print(f"\nmedian of {args.repeats} interleaved rounds (± half the interquartile range); fastest forward: "
              f"{best['method']}")
    return 0
