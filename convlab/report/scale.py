"""``convlab report --suite scale``: convlab.dask against dask-image and against convlab in memory.

The report's scale section times one large single-channel image and one volume
(``mode="same"``, zero padding) three ways on the same chunks and dask's
threaded scheduler:

- ``convlab.dask.convolve`` (convlab's chooser per block: compiled direct loop for small
  kernels, FFT for large ones),
- ``dask_image.ndfilters.convolve(mode="constant")`` (``scipy.ndimage`` per block), when
  dask-image is installed and peers are not turned off,
- ``convlab.conv`` on the whole array in memory.

It needs the ``dask`` extra (``pip install -e ".[dask]"`` from the checkout; dask-image for the peer
column). Sizes are report-sized (a 4096² image, a 192³ volume, a few minutes on 2 cores);
``benchmarks/bench_dask.py --full`` runs the issue's 8192² and 512³ and the out-of-core Zarr case.

Writes ``OUT/scale.json``, ``OUT/scale.md`` and ``OUT/index.html`` (a self-contained page
holding the section), and prints the table.
"""

import dataclasses
import datetime
import functools
import html
import json
import os
import time

import numpy as np

import convlab as cl

from .cli import Progress
from .run import environment

__all__ = ["ScaleCase", "SCALE_CASES", "run_scale", "markdown_table", "html_section", "run_cli"]


@dataclasses.dataclass(frozen=True)
class ScaleCase:
    """One image or volume of side ``size`` in ``ndim`` dimensions, chunks of side ``chunk``, one kernel side.

    Examples
    --------
    >>> ScaleCase(2, 4096, 1024, 31).label
    '2-D 4096^2, chunks 1024, k=31'
    """

    ndim: int
    size: int
    chunk: int
    kernel: int

    @property
    def label(self):
        return f"{self.ndim}-D {self.size}^{self.ndim}, chunks {self.chunk}, k={self.kernel}"


SCALE_CASES = tuple([ScaleCase(2, 4096, 1024, k) for k in (3, 15, 31)]
                    + [ScaleCase(3, 192, 96, k) for k in (3, 9)])


def _best(fn, repeat):
    """Best of ``repeat`` timed calls after one untimed call (numba compilation, FFTW planning)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_scale(cases=None, *, dtype="float32", peers=True, repeat=2, progress=None):
    """Time every case; return ``{"suite": "scale", "environment", "dtype", "rows", "started", "elapsed_s"}``.

    Parameters
    ----------
    cases : sequence of ScaleCase, optional
        Default :data:`SCALE_CASES`.
    dtype : {"float32", "float64"}
    peers : bool
        Also time dask-image (skipped, with ``dask_image_s`` None, when it does not import).
    repeat : int
        Timed runs per measurement (best kept), after one untimed run.
    progress : callable, optional
        ``progress(done, total, case)`` before each case.

    Examples
    --------
    >>> r = run_scale([ScaleCase(2, 64, 32, 3)], peers=False, repeat=1)
    >>> row = r["rows"][0]
    >>> row["kernel"], row["dask_image_s"] is None, row["convlab_dask_s"] > 0, row["max_rel_diff"] < 1e-5
    (3, True, True, True)
    """
    import dask
    import dask.array as da

    import convlab.dask as cld  # needs the dask extra: imported only when the scale suite runs

    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', but got {dtype!r}")
    cases = SCALE_CASES if cases is None else tuple(cases)
    di_convolve = None
    if peers:
        try:
            from dask_image.ndfilters import convolve as di_convolve
        except ImportError:
            di_convolve = None
    rng = np.random.default_rng(0)
    rows, start = [], time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    images = {}
    with dask.config.set(scheduler="threads", num_workers=len(os.sched_getaffinity(0))):
        for done, case in enumerate(cases):
            if progress is not None:
                progress(done, len(cases), case)
            key = (case.ndim, case.size)
            if key not in images:
                images.clear()  # one image at a time in memory
                images[key] = rng.standard_normal((case.size,) * case.ndim).astype(dtype)
            x = images[key]
            w = rng.standard_normal((case.kernel,) * case.ndim).astype(dtype)
            xd = da.from_array(x, chunks=case.chunk)
            ours = cld.convolve(xd, w, mode="same")
            t_ours = _best(ours.compute, repeat)
            flipped = w[(None, None) + (slice(None, None, -1),) * case.ndim]
            t_memory = _best(functools.partial(cl.conv, x[None, None], flipped, padding="same"), repeat)
            row = dict(ndim=case.ndim, size=case.size, chunk=case.chunk, kernel=case.kernel,
                       convlab_dask_s=t_ours, in_memory_s=t_memory, dask_over_in_memory=t_ours / t_memory,
                       dask_image_s=None, speedup_vs_dask_image=None, max_rel_diff=None)
            reference = cl.conv(x[None, None], flipped, padding="same", method="direct")[0, 0]
            result = ours.compute()
            row["max_rel_diff"] = float(np.max(np.abs(result - reference)) / max(np.max(np.abs(reference)), 1e-30))
            if di_convolve is not None:
                theirs = di_convolve(xd, w, mode="constant", cval=0.0)
                # dask-image is slow for large kernels: one timed run after the untimed one
                t_theirs = _best(theirs.compute, 1)
                row.update(dask_image_s=t_theirs, speedup_vs_dask_image=t_theirs / t_ours)
            rows.append(row)
    if progress is not None:
        progress(len(cases), len(cases), None)
    return {"suite": "scale", "environment": environment(), "dtype": dtype, "rows": rows, "started": started,
            "elapsed_s": time.perf_counter() - start}


def _cells(row):
    def seconds(v):
        return "–" if v is None else f"{v:.3f}"

    def ratio(v):
        return "–" if v is None else f"{v:.1f}×"

    return [f"{row['ndim']}-D {row['size']}^{row['ndim']}", str(row["chunk"]), str(row["kernel"]),
            seconds(row["convlab_dask_s"]), seconds(row["dask_image_s"]), ratio(row["speedup_vs_dask_image"]),
            seconds(row["in_memory_s"]), f"{row['dask_over_in_memory']:.2f}", f"{row['max_rel_diff']:.1e}"]


_HEADER = ["array", "chunks", "kernel", "convlab.dask (s)", "dask-image (s)", "dask-image / convlab",
           "in memory (s)", "dask / in memory", "max rel. diff vs direct"]


def markdown_table(results):
    """The scale rows as a Markdown table.

    Examples
    --------
    >>> row = dict(ndim=2, size=64, chunk=32, kernel=3, convlab_dask_s=0.01, dask_image_s=0.05,
    ...            speedup_vs_dask_image=5.0, in_memory_s=0.005, dask_over_in_memory=2.0, max_rel_diff=1e-7)
    >>> print(markdown_table({"rows": [row]}).splitlines()[2])
    | 2-D 64^2 | 32 | 3 | 0.010 | 0.050 | 5.0× | 0.005 | 2.00 | 1.0e-07 |
    """
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in results["rows"]]
    return "\n".join(lines)


def html_section(results):
    """The scale section as an HTML fragment (a ``<section id="scale">`` with its table)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row)) + "</tr>"
                   for row in results["rows"])
    env = results.get("environment") or {}
    load = env.get("load_average")
    note = (f"{results['dtype']}, mode=\"same\", zero padding, dask's threaded scheduler on "
            f"{env.get('affinity') or env.get('cpu_count')} cores; best of the timed runs after one untimed run"
            + (f"; load average at start {load}" if load else "") + ".")
    return (f'<section id="scale"><h2>Scale: convlab.dask against dask-image and in memory</h2>'
            f"<p>{html.escape(note)}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"</section>")


def run_cli(args):
    """``convlab report --suite scale``: measure, write ``scale.json``, ``scale.md`` and ``index.html``."""
    bar, start = Progress(), time.perf_counter()
    results = run_scale(dtype=args.dtype or "float32", peers=not args.no_peers,
                        progress=lambda done, total, case: bar(done, total, case, time.perf_counter() - start))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "scale.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    table = markdown_table(results)
    with open(os.path.join(args.out, "scale.md"), "w", encoding="utf-8") as f:
        f.write("# Scale: convlab.dask against dask-image and in memory\n\n" + table + "\n")
    page = os.path.join(args.out, "index.html")
    with open(page, "w", encoding="utf-8") as f:
        f.write('<!doctype html><html><head><meta charset="utf-8"><title>convlab report: scale</title>'
                "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
                "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}</style></head><body>"
                + html_section(results) + "</body></html>\n")
    print(table)
    print(f"\nreport: {os.path.abspath(page)}")
    return 0

