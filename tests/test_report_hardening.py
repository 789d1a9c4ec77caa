"""convlab report under hostile input: bad suites refused before measuring, untrusted results files,
names drawn literally, and a page for every run that measured something."""

import json

import pytest

from convlab.cli import main
from convlab.report import measure, page
from convlab.report.page import missing_peer_note

GOOD_CASE = """
[[case]]
group = "kernel"
name = "image"
size = 8
kernel = [1, 3]
padding = "same"
"""
SETTINGS = 'repeats = 1\nwarmup = 0\nmin_sample_s = 0.0\n'
FAST = ["--methods", "direct,fft", "--no-peers"]


# Figure 1 carries the case names in its titles and breaks when nothing was timed; drawing only it
# keeps these tests to seconds (the full set is drawn by test_report.py).
FEW_FIGURES = {slug: page.ALL_FIGURES[slug] for slug in ("1_time_vs_kernel",)}


@pytest.fixture(autouse=True)
def few_figures(monkeypatch):
    monkeypatch.setattr(page, "ALL_FIGURES", FEW_FIGURES)


def _suite(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------- the whole suite is checked first
@pytest.mark.parametrize("second, words", [
    ('[[case]]\ngroup = "layer"\nname = "big kernel"\nsize = 4\nkernel = 9', ["'layer/big kernel/n4/k9'",
                                                                             "kernel size 9"]),
    ('[[case]]\ngroup = "layer"\nname = "typo"\nsize = 8\nkernel = 3\npadding = 1\npadding_mode = "reflekt"',
     ["'layer/typo/n8/k3'", "padding_mode", "'reflekt'"]),
    ('[[case]]\ngroup = "layer"\nname = "huge"\nsize = 1000000\nkernel = 3', ["'layer/huge/n1000000/k3'",
                                                                             "workspace limit"]),
    ('[[case]]\ngroup = "layer"\nname = 7\nsize = 8\nkernel = 3', ["case 1", "name must be a non-empty string"]),
])
def test_an_invalid_later_case_stops_the_run_before_anything_is_measured(tmp_path, capsys, second, words):
    path = _suite(tmp_path, SETTINGS + GOOD_CASE + second)
    out = tmp_path / "out"
    assert main(["report", "--suite", path, "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"convlab report: error: suite '{path}'") and "Traceback" not in err
    assert all(word in err for word in words), err
    assert not (out / "results.jsonl").exists()  # nothing measured, nothing journaled


@pytest.mark.parametrize("setting, words", [
    ("repeats = 0", ["repeats must be an int >= 1", "0"]),
    ("repeats = 2.5", ["repeats must be an int >= 1"]),
    ("warmup = -1", ["warmup must be an int >= 0"]),
    ("min_sample_s = -0.1", ["min_sample_s must be a finite number >= 0"]),
    ("time_budget_s = nan", ["time_budget_s must be a finite number > 0", "nan"]),
    ("time_budget_s = inf", ["time_budget_s must be a finite number > 0", "inf"]),
    ('time_budget_s = "1"', ["time_budget_s must be a finite number > 0", "'1'"]),
    ("name = 3", ["name must be a string"]),
    ('accuracy_dtypes = "float32"', ["accuracy_dtypes must be a non-empty list"]),
])
def test_every_setting_is_checked(tmp_path, capsys, setting, words):
    path = _suite(tmp_path, f"{setting}\n" + GOOD_CASE)
    assert main(["report", "--suite", path, "--out", str(tmp_path / "out"), *FAST]) == 2
    err = capsys.readouterr().err
    assert path in err and all(word in err for word in words), err


# --------------------------------------------------------------- a page for every run
def test_tiny_time_budget_gives_a_page_with_everything_skipped(tmp_path, capsys):
    path = _suite(tmp_path, SETTINGS + "time_budget_s = 1e-9\n" + GOOD_CASE.replace('"image"', '"cost $5 or $\\\\x$"'))
    out = tmp_path / "out"
    assert main(["report", "--suite", path, "--out", str(out), *FAST]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {m["status"] for m in results["measurements"]} == {"skipped"}
    page = (out / "index.html").read_text()
    assert "cost $5 or $\\x$" in page and "could not be drawn" not in page


def test_a_failing_later_case_still_writes_the_page_of_the_earlier_ones(tmp_path, monkeypatch):
    real = measure.measure_case
    calls = []

    def fail_on_second(case, *args, **kwargs):
        calls.append(case)
        if len(calls) == 2:
            raise RuntimeError("broken machine")
        return real(case, *args, **kwargs)

    monkeypatch.setattr(measure, "measure_case", fail_on_second)
    path = _suite(tmp_path, SETTINGS + GOOD_CASE)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="broken machine"):
        main(["report", "--suite", path, "--out", str(out), *FAST])
    results = json.loads((out / "results.json").read_text())
    assert len(results["cases"]) == 1 and not results["complete"]
    assert "Interrupted" in (out / "index.html").read_text()


# --------------------------------------------------------------- --replot of untrusted files
@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("measured")
    path = _suite(root, SETTINGS + "time_budget_s = 5.0\n" + GOOD_CASE.replace('"image"', '"a $\\\\frac{x$"'))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(page, "ALL_FIGURES", FEW_FIGURES)
        assert main(["report", "--suite", path, "--out", str(root / "out"), *FAST]) == 0
    return root / "out"


def test_names_with_dollars_are_drawn_literally(measured):
    assert "could not be drawn" not in (measured / "index.html").read_text()
    assert (measured / "1_time_vs_kernel.png").stat().st_size > 1000
    assert "a $\\frac{x$" in (measured / "1_time_vs_kernel.svg").read_text()  # as written, not parsed as TeX


def _replot(tmp_path, results):
    src = tmp_path / "in.json"
    src.write_text(results if isinstance(results, str) else json.dumps(results))
    return main(["report", "--replot", str(src), "--out", str(tmp_path / "out")]), src


def test_replot_escapes_every_string_from_the_file(tmp_path, measured):
    evil = "<script>alert(1)</script>"
    results = json.loads((measured / "results.json").read_text())
    results["suite"].update(dtype=evil, repeats=evil, warmup=evil, time_budget_s=evil, name=evil,
                            description=evil, methods=results["suite"]["methods"] + [evil])
    results["cases"][0].update(label=evil, name=evil, auto_method=evil)
    results["measurements"][0].update(reason=evil, status=evil)
    results["environment"]["cpu"] = evil
    code, _ = _replot(tmp_path, results)
    assert code == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert "<script" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("content, words", [
    ("{}", ["not a convlab results file", "'suite'", "'measurements'"]),
    ('{"suite": {}, "cases": []}', ["missing 'measurements'"]),
    ("[1, 2]", ["must be a JSON object"]),
    ("not json", ["not a JSON file"]),
    ('{"suite": {}, "cases": [], "measurements": [{"case": "x", "method": "m", "status": "ok"}]}',
     ["measurements[0].case", "one of the cases"]),
])
def test_replot_of_a_bad_file_is_a_one_line_error(tmp_path, capsys, content, words):
    code, src = _replot(tmp_path, content)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(src) in err, err
    assert all(word in err for word in words), err
    assert not (tmp_path / "out" / "index.html").exists()


def test_replot_of_partial_results_succeeds(tmp_path, measured, capsys):
    full = json.loads((measured / "results.json").read_text())
    results = {key: full[key] for key in ("suite", "cases", "measurements")}  # no environment, machine, ...
    results["suite"]["peers"] = ["scipy.fftconvolve"]
    results["environment"] = {"versions": {"torch": None}}
    code, _ = _replot(tmp_path, results)
    assert code == 0
    out = capsys.readouterr().out
    hint = 'pip install -e ".[torch]"'
    assert hint in out and hint in (tmp_path / "out" / "index.html").read_text().replace("&quot;", '"')


def test_missing_torch_note_only_when_peers_were_wanted():
    no_torch = {"environment": {"versions": {"torch": None}}}
    assert missing_peer_note({"suite": {"peers": ["scipy.fftconvolve"]}, **no_torch})
    assert not missing_peer_note({"suite": {"peers": []}, **no_torch})  # --no-peers: nothing to say
    assert not missing_peer_note({"suite": {"peers": ["scipy.fftconvolve"]},
                                  "environment": {"versions": {"torch": "2.0"}}})
