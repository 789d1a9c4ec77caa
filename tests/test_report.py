"""convlab report: a tiny suite end to end, the results schema, and figures drawn from known data."""

import csv
import json
import pathlib

import numpy as np
import pytest
from matplotlib.figure import Figure

import convlab as cl
from convlab.cli import main
from convlab.report import GROUPS, Case, load_suite, make_report, measure_case, run_suite
from convlab.report.figures import crossover, fitted_slope, plot_kernel_sweep
from convlab.report.page import ALL_FIGURES
from convlab.report.suites import parse_suite

SCHEMA = json.loads((pathlib.Path(cl.__file__).parent / "report" / "schema.json").read_text())

TINY_SUITE = """
name = "tiny"
description = "seconds: every group, every figure"
repeats = 2
warmup = 1
min_sample_s = 0.0
time_budget_s = 5.0

[[case]]
group = "kernel"
name = "image"
size = 16
kernel = [1, 3, 5]
padding = "same"

[[case]]
group = "input"
name = "small"
channels = 2
size = [8, 16]
kernel = 3
padding = "same"

[[case]]
group = "input"
name = "large"
channels = 2
size = [8, 16]
kernel = 5
padding = "same"

[[case]]
group = "layer"
name = "strided"
batch = 2
channels = 2
out_channels = 3
size = 9
kernel = 3
stride = 2
padding = 1

[[case]]
group = "map"
name = "grid"
size = 8
kernel = [1, 3]
padding = "same"
"""


# --------------------------------------------------------------- a small JSON Schema validator
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
         "integer": int, "number": (int, float)}


def _is_type(value, name):
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[name])


def validate(value, schema, root=None, path="$"):
    """Raise AssertionError at the first place ``value`` breaks ``schema`` (the subset schema.json uses)."""
    root = root or schema
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        assert any(_is_type(value, t) for t in types), f"{path}: {value!r} is not of type {types}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "minimum" in schema and _is_type(value, "number"):
        assert value >= schema["minimum"], f"{path}: {value} < {schema['minimum']}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            assert key in value, f"{path}: missing {key!r}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], root, f"{path}.{key}")
            elif extra is False:
                raise AssertionError(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                validate(item, extra, root, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], root, f"{path}[{i}]")


def test_validator_rejects_what_the_schema_forbids():
    with pytest.raises(AssertionError, match="missing"):
        validate({}, SCHEMA)
    timing = {"$ref": "#/$defs/timing"}
    validate(None, timing, SCHEMA)
    with pytest.raises(AssertionError, match="unexpected key"):
        validate({"median_s": 1, "q1_s": 1, "q3_s": 1, "samples_s": [], "loops": 1, "mean": 1}, timing, SCHEMA)
    with pytest.raises(AssertionError, match="not of type"):
        validate({"median_s": "1", "q1_s": 1, "q3_s": 1, "samples_s": [], "loops": 1}, timing, SCHEMA)


# --------------------------------------------------------------- the tiny suite, end to end
@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    suite = root / "tiny.toml"
    suite.write_text(TINY_SUITE)
    out = root / "out"
    assert main(["report", "--suite", str(suite), "--out", str(out), "--snapshot", str(root / "snap")]) == 0
    return out, root / "snap"


def test_report_writes_every_file_and_figure(report):
    out, snapshot = report
    for name in ("index.html", "results.json", "results.csv", "results.jsonl"):
        assert (out / name).stat().st_size > 0, name
    for slug in ALL_FIGURES:
        for ext in ("png", "svg"):
            assert (out / f"{slug}.{ext}").stat().st_size > 1000, f"{slug}.{ext}"
        assert (snapshot / f"{slug}.png").exists()
    summary = (snapshot / "summary.md").read_text()
    assert "| case | auto | fastest |" in summary and "![" in summary


def test_results_json_matches_schema(report):
    results = json.loads((report[0] / "results.json").read_text())
    validate(results, SCHEMA)
    assert results["complete"] and results["suite"]["methods"] == list(cl.methods())
    ids = [c["id"] for c in results["cases"]]
    assert len(ids) == 10 and len(set(ids)) == 10
    # every runner has exactly one record per case, measured or with a reason
    runners = results["suite"]["methods"] + results["suite"]["peers"]
    assert sorted((m["case"], m["method"]) for m in results["measurements"]) == sorted(
        (i, r) for i in ids for r in runners)
    for m in results["measurements"]:
        assert (m["status"] == "ok") == (m["reason"] is None), m
        if m["status"] == "ok":
            assert m["forward"]["q1_s"] <= m["forward"]["median_s"] <= m["forward"]["q3_s"]
            assert set(m["accuracy"]) == {"float32", "float64"}
            # each pass timed has its phases (empty for a method that marks none), peers have none
            assert m["phases"] is None if m["kind"] == "peer" else set(m["phases"]) == {"forward", "backward"}
    direct = [m for m in results["measurements"] if m["method"] == "direct"]
    assert all(m["status"] == "ok" and m["accuracy"]["float64"]["y"] == 0.0 for m in direct)


def test_every_method_is_measured_or_explained(report):
    results = json.loads((report[0] / "results.json").read_text())
    for m in results["measurements"]:
        if m["kind"] == "convlab" and m["status"] == "ok":
            tol = cl.tolerances.tolerance(np.float32, m["method"])
            assert m["accuracy"]["float32"]["y"] <= tol, m
        elif m["status"] != "ok":
            assert m["reason"], m


def test_csv_has_one_row_per_measurement(report):
    results = json.loads((report[0] / "results.json").read_text())
    with open(report[0] / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(results["measurements"])
    assert {r["method"] for r in rows} >= set(cl.methods())


def test_page_references_every_figure_and_method(report):
    page = (report[0] / "index.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    for slug in ALL_FIGURES:
        assert f"id='{slug}'" in page and f"{slug}.svg" in page
    assert page.count("data:image/png;base64,") == len(ALL_FIGURES)
    for method in cl.methods():
        assert f"<code>{method}</code>" in page
    assert "Interrupted" not in page


def test_interrupted_run_keeps_the_cases_measured(tmp_path):
    suite = parse_suite(__import__("tomllib").loads(TINY_SUITE))

    def stop_at_third_case(done, total, case, elapsed):
        if done == 2:
            raise KeyboardInterrupt

    results = {}
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, ["direct"], peers=False, progress=stop_at_third_case, journal=tmp_path / "j.jsonl",
                  results=results)
    assert not results["complete"] and len(results["cases"]) == 2
    lines = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["header", "machine", "case", "case"]
    page = make_report(results, tmp_path / "out", figures={"8_gflops"})
    validate(json.loads((tmp_path / "out" / "results.json").read_text()), SCHEMA)
    assert "Interrupted" in page.read_text()


# --------------------------------------------------------------- measuring from Python
def test_measure_case_records_reasons_instead_of_dropping():
    case = Case("layer", "strided", (1, 1, 9, 9), (1, 1, 3, 3), stride=2)
    rows = measure_case(case, ["direct"], peers=["scipy.correlate2d", "torch"], repeats=1)
    by = {r["method"]: r for r in rows}
    assert by["direct"]["status"] == "ok" and by["torch"]["status"] == "ok"
    assert by["scipy.correlate2d"]["status"] == "unsupported" and "stride" in by["scipy.correlate2d"]["reason"]
    assert by["torch"]["accuracy"]["float64"]["y"] < 1e-12 and by["torch"]["accuracy"]["float64"]["dw"] < 1e-12


def test_time_budget_skips_the_larger_cases_of_a_sweep():
    small = Case("kernel", "k", (1, 1, 16, 16), (1, 1, 3, 3))
    large = Case("kernel", "k", (1, 1, 16, 16), (1, 1, 5, 5))
    over = {}
    first = measure_case(small, ["direct"], repeats=1, time_budget_s=0.0, over_budget=over)[0]
    assert first["status"] == "skipped" and "time budget" in first["reason"] and first["accuracy"]
    second = measure_case(large, ["direct"], repeats=1, time_budget_s=10.0, over_budget=over)[0]
    assert second["status"] == "skipped" and small.id in second["reason"]


# --------------------------------------------------------------- suites
def test_shipped_suites_load():
    for name in ("quick", "standard", "full"):
        suite = load_suite(name)
        assert {c.group for c in suite.cases} == set(GROUPS) - {"paper"}  # paper cases: the papers suite only
    assert {c.group for c in load_suite("papers").cases} == {"paper"}


@pytest.mark.parametrize("text, match", [
    ('[[case]]\ngroup = "nope"\nsize = 8\nkernel = 3', "group must be one of"),
    ('[[case]]\ngroup = "layer"\nsize = 8\nkernel = 3\ncolour = 1', "unknown keys"),
    ('[[case]]\ngroup = "layer"\nsize = [8, 0]\nkernel = 3', "size must be a positive int"),
    ('dtype = "float16"\n[[case]]\ngroup = "layer"\nsize = 8\nkernel = 3', "dtypes must be among"),
])
def test_bad_suites_name_the_problem(text, match):
    with pytest.raises(ValueError, match=match):
        parse_suite(__import__("tomllib").loads(text))


def test_unknown_suite_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="quick"):
        load_suite("no-such-suite")


# --------------------------------------------------------------- figures on known data
def test_crossover_marker_sits_where_the_curves_cross():
    kernels = np.array([1.0, 3, 5, 9, 15])
    spatial = 1e-4 * kernels ** 2  # direct: grows like k²
    flat = np.full(5, 25e-4)  # fft: flat, equal to direct at k = 5
    fig = Figure()
    ax = fig.subplots()
    k = plot_kernel_sweep(ax, kernels, {"direct": spatial, "fft": flat}, ["direct", "fft"])
    assert k == pytest.approx(5.0)
    markers = [line for line in ax.get_lines() if line.get_label().startswith("crossover")]
    assert len(markers) == 1 and np.allclose(markers[0].get_xdata(), 5.0)
    drawn = {line.get_label(): line for line in ax.get_lines()}
    assert np.allclose(drawn["direct"].get_ydata(), spatial) and np.allclose(drawn["fft"].get_xdata(), kernels)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_no_crossover_no_marker():
    fig = Figure()
    ax = fig.subplots()
    k = plot_kernel_sweep(ax, [1, 3], {"direct": [1.0, 2.0], "fft": [3.0, 4.0]}, ["direct", "fft"])
    assert k is None and not [line for line in ax.get_lines() if line.get_label().startswith("crossover")]


def test_crossover_interpolates_in_log_log():
    assert crossover([2, 8], [1, 16], [4, 4]) == pytest.approx(4.0)
    assert fitted_slope([10, 100, 1000], [1, 10, 100]) == pytest.approx(1.0)
