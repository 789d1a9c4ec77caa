"""Benchmark report: time, memory and accuracy of every registered method, with figures.

``convlab report`` runs a suite and writes a self-contained page; the same
steps are importable::

    from convlab.report import Case, measure_case, run_suite, make_report
    rows = measure_case(Case("layer", "mine", (8, 16, 64, 64), (32, 16, 5, 5), padding="same"))
    results = run_suite("quick")           # every case of a suite, as a JSON-ready dict
    make_report(results, "report-out")     # index.html, results.json/.csv, figures

>>> from convlab.report import load_suite
>>> load_suite("quick").cases[0].group
'kernel'
"""

from . import papers  # noqa: F401  (registers the papers suite)
from .measure import measure_case
from .peers import available_peers, peer_names
from .run import environment, run_suite
from .suites import GROUPS, Case, Suite, load_suite, suite_names

__all__ = ["GROUPS", "Case", "Suite", "load_suite", "suite_names", "measure_case", "available_peers",
           "peer_names", "environment", "run_suite", "make_report"]


def make_report(results, out_dir, snapshot=None, figures=None):
    """Write the page, ``results.json``, ``results.csv`` and every figure into ``out_dir``.

    See :func:`convlab.report.page.make_report` for the parameters.

    Returns
    -------
    pathlib.Path
        ``out_dir / "index.html"``.

    Examples
    --------
    The results of a one-case run, written without figures (drawing them takes
    seconds); the hidden manifest lists the files the report wrote, so that a
    re-run into the same folder removes only its own stale ones:

    >>> import os, tempfile
    >>> suite = Suite("demo", (Case("layer", "demo", (1, 1, 8, 8), (1, 1, 3, 3)),),
    ...               repeats=1, warmup=0, min_sample_s=0.0, accuracy_dtypes=("float64",))
    >>> results = run_suite(suite, ["direct"], peers=False)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     page = make_report(results, d, figures=())
    ...     page.name, sorted(os.listdir(d))
    ('index.html', ['.convlab-report-files.json', 'index.html', 'results.csv', 'results.json'])
    """
    from .page import make_report as _make_report

    return _make_report(results, out_dir, snapshot=snapshot, figures=figures)
