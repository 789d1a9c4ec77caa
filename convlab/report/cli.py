"""``convlab report``: run a benchmark suite and write the report page."""

import importlib
import math
import os
import sys
import time

from .run import run_suite
from .suites import PROGRAM_SUITES

DESCRIPTION = """Benchmark every registered method (and scipy/torch peers) and write a report.

Writes OUT/index.html (self-contained), OUT/results.json, OUT/results.csv and
every figure as PNG and SVG; prints a summary table and the page's path.
Measurements are appended to OUT/results.jsonl as they are taken, so Ctrl-C
still leaves a report of the cases finished so far.

suites (convlab/report/suites/*.toml, or your own TOML file):
  quick     the default, under 2 minutes on 2 cores
  standard  the published snapshot, under 15 minutes on 2 cores
  full      larger problems and 3-D, tens of minutes
  papers    published claims (Mathieu et al., Lavin & Gray, NNPACK, Zlateski et al.,
            scipy's choose_conv_method) re-run here, under 10 minutes on 2 cores
  scale     convlab.dask against dask-image and in memory (the dask extra), a few minutes

examples:
  convlab report
  convlab report --suite standard --out report-standard --snapshot docs/report
  convlab report --suite papers --out report-papers
  convlab report --suite my_suite.toml --methods direct,fft --dtype float64 --no-peers
  convlab report --replot report/results.json --out report
"""


def add_arguments(parser):
    parser.add_argument("--suite", default="quick", help="quick | standard | full | papers | scale | PATH to a "
                        "TOML suite (default quick)")
    parser.add_argument("--out", default="convlab-report", help="output directory (default ./convlab-report)")
    parser.add_argument("--methods", type=lambda s: [m for m in s.split(",") if m], default=None,
                        help="comma-separated methods (default: every registered one)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None,
                        help="dtype timed (default: the suite's, float32 for the shipped suites)")
    parser.add_argument("--no-peers", action="store_true", help="do not measure scipy and torch")
    parser.add_argument("--snapshot", default=None, metavar="DIR",
                        help="also write the PNGs and summary.md there (e.g. docs/report)")
    parser.add_argument("--replot", default=None, metavar="JSON",
                        help="redraw the report from an earlier results.json instead of measuring")


class Progress:
    """A one-line progress bar on stderr: cases done, the case being measured, time left."""

    def __init__(self, stream=None, width=24):
        # sys.stderr looked up per instance, not at import: it may have been replaced since
        self.stream, self.width = stream if stream is not None else sys.stderr, width
        self.tty = self.stream.isatty()

    def __call__(self, done, total, case, elapsed):
        left = elapsed / done * (total - done) if done else math.nan
        bar = "#" * round(self.width * done / total) + "." * (self.width - round(self.width * done / total))
        what = case.label if case is not None else "done"
        eta = f"{left // 60:.0f}:{left % 60:02.0f} left" if math.isfinite(left) else "estimating"
        line = f"[{bar}] {done}/{total}  {elapsed:5.0f} s, {eta}  {what}"
        if self.tty:
            self.stream.write("\r" + line[:os.get_terminal_size(self.stream.fileno()).columns - 1].ljust(79))
            if case is None:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run(args):
    from .page import load_results

    if args.replot:
        results = load_results(args.replot)  # a bad file fails here, before anything is written
        os.makedirs(args.out, exist_ok=True)
        _write(results, args)
        return 0
    if args.suite in PROGRAM_SUITES:
        return importlib.import_module(PROGRAM_SUITES[args.suite]).run_cli(args)
    os.makedirs(args.out, exist_ok=True)
    results = {}
    start = time.perf_counter()
    try:
        run_suite(args.suite, args.methods, dtype=args.dtype, peers=not args.no_peers, progress=Progress(),
                  journal=os.path.join(args.out, "results.jsonl"), results=results)
    except KeyboardInterrupt:
        print(f"\ninterrupted after {time.perf_counter() - start:.0f} s: writing the report of the "
              f"{len(results.get('cases', []))} cases measured so far", file=sys.stderr)
        if not results.get("cases"):
            return 130
        _write(results, args)
        return 130
    except Exception:
        # A case that fails after others were measured: keep their page, then report the error.
        if results.get("cases"):
            print(f"\nstopped by an error after {len(results['cases'])} cases: writing their report first",
                  file=sys.stderr)
            _write(results, args)
        raise
    _write(results, args)
    return 0


def _write(results, args):
    """Write the page (and snapshot) and print the summary, the findings and where the page is."""
    from .page import busy_warning, findings, make_report, missing_peer_note, summary_text

    page = make_report(results, args.out, snapshot=args.snapshot)
    print(summary_text(results))
    print("\n" + "\n".join(findings(results)))
    for note in (missing_peer_note(results), busy_warning(results)):
        if note:
            print("\n" + note)
    print(f"\nreport: {page.resolve()}")
    if args.snapshot:
        print(f"snapshot: {os.path.abspath(args.snapshot)}")
