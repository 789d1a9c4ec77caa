"""Running a whole suite: environment, machine throughput, every case, written as it goes."""

import contextlib
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import time

import convlab as cl

from .. import harness
from ..fft_backends import fft_backend, get_fft_backend, measured_plans_now
from . import measure
from . import peers as _peers
from .suites import check_suite, load_suite

__all__ = ["run_suite", "environment", "SCHEMA_VERSION"]

SCHEMA_VERSION = 2
"""2 added ``phases`` per measurement, ``machine.copy_gbps`` and ``cases[].y_shape`` (1 is still read)."""
VERSIONED = ("numpy", "scipy", "pyfftw", "matplotlib", "threadpoolctl", "torch", "convlab")


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _fft_backend():
    """The FFT backend convlab's FFT methods use (``convlab.fft_backends``), as text."""
    return repr(get_fft_backend())


def environment():
    """Machine, library versions, thread pools and FFT backend, as a JSON-ready dict.

    Returns
    -------
    dict
        ``{"python", "platform", "cpu", "cpu_count", "affinity", "load_average",
        "versions", "threadpools", "fft_backend", "workspace_limit_bytes", "methods"}``;
        ``versions`` maps each library to its version, or ``None`` when not installed.

    Examples
    --------
    >>> import json, os
    >>> env = environment()
    >>> env["cpu_count"] == os.cpu_count(), "direct" in env["methods"], env["versions"]["numpy"] is not None
    (True, True, True)
    >>> _ = json.dumps(env)  # JSON-ready as it is
    """
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": harness.cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": _load_average(),
        "versions": {name: _version(name) for name in VERSIONED},
        "threadpools": harness.threadpools(),
        "fft_backend": _fft_backend(),
        "workspace_limit_bytes": cl.get_workspace_limit(),
        "methods": {name: type(cl.get_method(name)).__module__ for name in cl.methods()},
    }


def _load_average():
    """1-minute load average, or ``None`` where the OS does not report it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class _Sink:
    """Appends each record to ``path`` as one JSON line, so an interrupted run keeps what it measured."""

    def __init__(self, path):
        self.path = path
        if path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            open(path, "w").close()

    def write(self, kind, payload):
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps({"kind": kind, "data": payload}) + "\n")


def run_suite(suite="quick", methods=None, *, dtype=None, peers=True, progress=None, journal=None,
              results=None):
    """Measure every case of a suite and return the results dict (see ``schema.json``).

    Parameters
    ----------
    suite : str, path or Suite
        ``"quick"``, ``"standard"``, ``"full"``, or a TOML file (see :mod:`.suites`).
    methods : sequence of str, optional
        Registered methods to measure; default the suite's ``methods``, else
        every one in :func:`convlab.methods`.
    dtype : {"float32", "float64"}, optional
        The dtype timed; default the suite's.
    peers : bool or sequence of str
        ``True`` measures every importable peer, ``False`` none.
    progress : callable, optional
        Called as ``progress(done, total, case, elapsed_s)`` before each case and at the end.
    journal : path, optional
        A JSON-lines file every record is appended to as soon as it is measured.
    results : dict, optional
        Filled in place (pass one to keep partial results after ``KeyboardInterrupt``).

    Returns
    -------
    dict
        ``{"schema_version", "suite", "environment", "machine", "cases", "measurements",
        "complete", "started", "finished", "elapsed_s"}``.

    Examples
    --------
    One tiny case, one method, no peers and a single timed round (the run
    also measures the machine's GEMM throughput, about 0.3 s):

    >>> from convlab.report import Case, Suite
    >>> suite = Suite("demo", (Case("layer", "demo", (1, 1, 8, 8), (1, 1, 3, 3)),),
    ...               repeats=1, warmup=0, min_sample_s=0.0, accuracy_dtypes=("float64",))
    >>> results = run_suite(suite, ["direct"], peers=False)
    >>> results["complete"], [(m["method"], m["status"]) for m in results["measurements"]]
    (True, [('direct', 'ok')])
    >>> results["measurements"][0]["accuracy"]["float64"]  # direct against itself
    {'y': 0.0, 'dx': 0.0, 'dw': 0.0}
    """
    suite = load_suite(suite)
    dtype = dtype or suite.dtype
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', but got {dtype!r}")
    methods = list(methods if methods is not None else (suite.methods or cl.methods()))
    for name in methods:
        cl.get_method(name)  # unknown names fail here, listing the registered ones
    peer_list = list(_peers.available_peers() if peers is True else (peers or ()))
    for name in peer_list:
        _peers.get_peer(name)
    check_suite(suite, dtype)  # every case and setting, before anything is measured
    settings = dict(suite.settings(), dtype=dtype, methods=methods, peers=peer_list)
    results = {} if results is None else results
    results.update(schema_version=SCHEMA_VERSION, suite=settings, environment=None, machine={},
                   cases=[], measurements=[], complete=False, started=_now(), finished=None, elapsed_s=0.0)
    with _planner_effort(suite.fft_planner_effort):
        results["environment"] = environment()  # records the FFT backend in force while measuring
    sink = _Sink(journal)
    sink.write("header", {key: results[key] for key in ("schema_version", "suite", "environment", "started")})
    start = time.perf_counter()
    results["machine"] = {"gemm_gflops": {dt: harness.gemm_flops(dt) / 1e9 for dt in ("float32", "float64")},
                          "copy_gbps": harness.copy_bandwidth() / 1e9}  # the roofline's two roofs
    sink.write("machine", results["machine"])
    over_budget = {}
    with _planner_effort(suite.fft_planner_effort):
        _measure_cases(suite, methods, peer_list, dtype, progress, sink, results, over_budget, start)
    if progress is not None:
        progress(len(suite.cases), len(suite.cases), None, time.perf_counter() - start)
    results["machine"]["load_average_end"] = _load_average()
    results.update(complete=True, finished=_now(), elapsed_s=time.perf_counter() - start)
    return results


@contextlib.contextmanager
def _planner_effort(effort):
    """Run the FFT methods with FFTW planner ``effort`` (the current backend otherwise unchanged), planning
    on first use: timed calls must not share the cores with FFTW planning in the background."""
    if not effort:
        with measured_plans_now():
            yield
        return

    current = get_fft_backend()
    with fft_backend(current.name, threads=current.threads, planner_effort=effort), measured_plans_now():
        yield


def _measure_cases(suite, methods, peer_list, dtype, progress, sink, results, over_budget, start):
    for index, case in enumerate(suite.cases):
        if progress is not None:
            progress(index, len(suite.cases), case, time.perf_counter() - start)
        direct = case.plan("direct", "float64")
        row = dict(case.to_dict(), flops=direct.flops, y_shape=list(direct.output_shape),
                   auto_method=measure.auto_method(case, dtype))
        records = measure.measure_case(
            case, methods, peers=peer_list, dtype=dtype, accuracy_dtypes=suite.accuracy_dtypes,
            repeats=suite.repeats, warmup=suite.warmup, min_sample_s=suite.min_sample_s,
            time_budget_s=suite.time_budget_s, over_budget=over_budget)
        results["cases"].append(row)
        results["measurements"].extend(records)
        results["elapsed_s"] = time.perf_counter() - start
        sink.write("case", {"case": row, "measurements": records})

