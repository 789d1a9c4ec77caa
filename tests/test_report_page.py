"""The report page from synthetic results: peers in the summary, the grouped did-not-run section, stale
files removed (only the report's own), and the papers table with its "agrees?" logic."""

import json

import pytest

from convlab.report import page, papers
from convlab.report.papers import evaluate, papers_html, papers_suite, winograd_multiply_reduction

NO_FIGURES = ()


def _timing(seconds):
    return {"median_s": seconds, "q1_s": seconds, "q3_s": seconds, "samples_s": [seconds], "loops": 1}


def _case(cid, name, group="layer", x=(1, 1, 8, 8), w=(1, 1, 3, 3), padding=0):
    return {"id": cid, "group": group, "name": name, "label": cid, "x_shape": list(x), "w_shape": list(w),
            "padding": padding, "auto_method": "direct"}


def _m(case, method, seconds=None, kind="convlab", status="ok", reason=None, backward=None):
    return {"case": case, "method": method, "kind": kind, "status": status, "reason": reason,
            "forward": _timing(seconds) if seconds is not None else None,
            "backward": _timing(backward) if backward is not None else None}


def _results(cases, measurements, methods=("direct", "fft"), peers=(), torch="2.0"):
    return {"suite": {"name": "synthetic", "methods": list(methods), "peers": list(peers)}, "cases": cases,
            "measurements": measurements, "environment": {"cpu": "test cpu", "cpu_count": 2,
                                                          "versions": {"numpy": "2.0", "torch": torch}},
            "machine": {"gemm_gflops": {"float32": 100.0}}, "complete": True, "elapsed_s": 1.0}


# --------------------------------------------------------------- summary and peers
def test_fastest_column_names_a_peer_that_beat_every_method(tmp_path):
    results = _results([_case("c1", "one")], [_m("c1", "direct", 0.084e-3), _m("c1", "fft", 0.2e-3),
                                              _m("c1", "scipy.fftconvolve", 0.030e-3, kind="peer")],
                       peers=["scipy.fftconvolve"])
    header, rows = page.summary_rows(results)
    assert rows[0][header.index("fastest")] == "scipy.fftconvolve (peer); convlab: direct"
    text = page.make_report(results, tmp_path, figures=NO_FIGURES).read_text()
    assert "scipy.fftconvolve (peer); convlab: direct" in text
    assert "<td class='best'>0.03</td>" in text  # the fastest time of the row is the peer's, in bold


def test_page_with_and_without_the_torch_peer(tmp_path):
    cases = [_case("c1", "one")]
    ran = [_m("c1", "direct", 1e-3), _m("c1", "torch", 2e-3, kind="peer")]
    with_torch = page.make_report(_results(cases, ran, peers=["torch"]), tmp_path / "a", figures=NO_FIGURES)
    assert "not installed" not in with_torch.read_text()
    without = _results(cases, [_m("c1", "direct", 1e-3), _m("c1", "scipy.fftconvolve", 1e-3, kind="peer")],
                       peers=["scipy.fftconvolve"], torch=None)
    text = page.make_report(without, tmp_path / "b", figures=NO_FIGURES).read_text()
    assert "torch is not installed" in text and 'pip install -e &quot;.[torch]&quot;' in text
    assert "pip install convlab" not in text
    # no peers at all (--no-peers): nothing to say about missing ones
    quiet = page.make_report(_results(cases, ran[:1], torch=None), tmp_path / "c", figures=NO_FIGURES)
    assert "torch is not installed" not in quiet.read_text()


def test_a_run_without_torch_says_how_to_add_it(tmp_path, monkeypatch):
    from convlab.report import Case, Suite, peers, run, run_suite

    monkeypatch.setattr(peers.Torch, "available", lambda self: False)
    real_version = run._version
    monkeypatch.setattr(run, "_version", lambda dist: None if dist == "torch" else real_version(dist))
    suite = Suite("demo", (Case("layer", "demo", (1, 1, 8, 8), (1, 1, 3, 3)),), repeats=1, warmup=0,
                  min_sample_s=0.0, accuracy_dtypes=("float64",))
    results = run_suite(suite, ["direct"])
    assert "torch" not in results["suite"]["peers"] and results["suite"]["peers"]
    text = page.make_report(results, tmp_path, figures=NO_FIGURES).read_text()
    assert "PyTorch peer not measured: torch is not installed" in text


def test_environment_is_a_table_not_a_json_dump(tmp_path):
    text = page.make_report(_results([_case("c1", "one")], [_m("c1", "direct", 1e-3)]), tmp_path,
                            figures=NO_FIGURES).read_text()
    env = text[text.index("<h2>Environment</h2>"):]
    assert "<td>CPU</td><td>test cpu (2 logical cores)</td>" in env and "<pre>" not in env
    assert "<td>torch</td><td>2.0</td>" in env


# --------------------------------------------------------------- did not run
def test_did_not_run_is_collapsed_and_grouped_by_reason(tmp_path):
    cases = [_case(f"c{k}", "sweep", w=(1, 1, k, k)) for k in (5, 7, 9)]
    ms = [_m(c["id"], "direct", 1e-3) for c in cases]
    ms += [_m(c["id"], "winograd", status="unsupported", reason=f"kernel size {c['w_shape'][2]} is over 5")
           for c in cases]
    ms += [_m("c9", "fft", status="failed", reason="MemoryError")]
    results = _results(cases, ms, methods=("direct", "winograd", "fft"))
    groups = page.not_run_groups(results)
    assert [(g["runner"], g["status"], len(g["cases"])) for g in groups] == [
        ("winograd", "unsupported", 3), ("fft", "failed", 1)]
    text = page.make_report(results, tmp_path, figures=NO_FIGURES).read_text()
    section = text[text.index("did not run</h2>"):text.index("<h2>Environment")]
    assert section.count("<details>") == 1 and "4 (case, runner) pairs did not run, in 2 groups" in section
    assert section.count("<tr>") == 3  # header + two groups, not one row per case


# --------------------------------------------------------------- stale files
def test_rerun_removes_only_the_files_the_report_wrote(tmp_path):
    results = _results([_case("c1", "one")], [_m("c1", "direct", 1e-3)])
    page.make_report(results, tmp_path, figures={"7_circulant_matrix"})
    assert (tmp_path / "7_circulant_matrix.png").exists()
    (tmp_path / "old_figure.png").write_text("from an older convlab")  # unknown to the report: kept
    (tmp_path / "notes.md").write_text("mine")
    manifest = json.loads((tmp_path / page.MANIFEST).read_text())
    (tmp_path / page.MANIFEST).write_text(json.dumps(manifest + ["gone.svg", "../outside.png"]))
    (tmp_path / "gone.svg").write_text("listed by the last report")
    (tmp_path.parent / "outside.png").write_text("never touched: not a plain name")
    page.make_report(results, tmp_path, figures=NO_FIGURES)
    left = {p.name for p in tmp_path.iterdir()}
    assert "7_circulant_matrix.png" not in left and "7_circulant_matrix.svg" not in left and "gone.svg" not in left
    assert {"old_figure.png", "notes.md", "index.html", "results.json"} <= left
    assert (tmp_path.parent / "outside.png").exists()


# --------------------------------------------------------------- papers
def test_winograd_multiply_counts_match_lavin_and_gray():
    assert winograd_multiply_reduction((1, 1, 56, 56), (1, 1, 3, 3), m=2, padding=1) == 2.25
    assert winograd_multiply_reduction((1, 1, 56, 56), (1, 1, 3, 3), m=4, padding=1) == 4.0
    # 14 outputs in tiles of 4 waste two rows and columns: 14² · 9 / (4² · 6²)
    assert winograd_multiply_reduction((1, 1, 14, 14), (1, 1, 3, 3), m=4, padding=1) == pytest.approx(196 * 9 / 576)


def _papers_results(times):
    """A papers-suite results dict with forward (and backward) times ``{(layer, method): seconds}``."""
    suite = papers_suite("tiny")
    cases = [dict(c.to_dict(), auto_method="direct") for c in suite.cases]
    ids = {c["name"]: c["id"] for c in cases}
    ms = [_m(ids[layer], method, s, backward=s, kind="peer" if method.startswith("scipy") else "convlab")
          for (layer, method), s in times.items()]
    return _results(cases, ms, methods=papers.PAPER_METHODS, peers=("scipy.correlate2d", "scipy.fftconvolve"))


def test_papers_agrees_logic_on_synthetic_measurements():
    claims = {c["id"]: c for c in evaluate(_papers_results({
        ("VGG-A:conv3.1", "im2col"): 2.0, ("VGG-A:conv3.1", "winograd"): 1.0, ("VGG-A:conv3.1", "fft"): 3.0,
        ("VGG-A:conv3.1", "direct"): 4.0,
        ("AlexNet:conv3", "im2col"): 1.0, ("AlexNet:conv3", "winograd"): 2.0, ("AlexNet:conv3", "fft"): 0.5,
        ("FFT-2", "direct"): 1.0, ("FFT-2", "fft"): 4.0,  # FFT slower here: disagrees with Mathieu et al.
        ("scipy:32²/k1", "direct"): 1.0, ("scipy:32²/k1", "fft"): 2.0,  # scipy picks direct: agrees
        ("scipy:32²/k9", "direct"): 1.0, ("scipy:32²/k9", "fft"): 2.0,  # scipy picks fft: disagrees
    }))["claims"]}
    assert set(claims) == {"mathieu2013", "lavin2015-multiplies", "lavin2015-speed", "nnpack", "zlateski2019",
                           "scipy"}
    assert claims["mathieu2013"]["agrees"] == "no" and "0.25×" in claims["mathieu2013"]["rows"][0]["measured"]
    assert claims["lavin2015-speed"]["agrees"] == "yes"  # winograd 2× faster than im2col, within 4×
    # NNPACK: faster than im2col on both layers; here VGG yes (im2col/winograd 2), AlexNet yes (fft 2× im2col)
    assert claims["nnpack"]["agrees"] == "yes" and len(claims["nnpack"]["rows"]) == 2
    # Zlateski: FFT beat winograd on AlexNet conv3 only: 1 of 2
    assert claims["zlateski2019"]["agrees"] == "yes" and "1 of 2" in claims["zlateski2019"]["measured"]
    assert claims["scipy"]["agrees"] == "partly" and "1 of 2" in claims["scipy"]["measured"]
    for claim in claims.values():
        assert claim["reference"] and claim["paper_figure"] and claim["where"]


def test_papers_table_on_the_page_is_escaped_and_complete(tmp_path):
    results = _papers_results({("VGG-A:conv3.1", "im2col"): 2.0, ("VGG-A:conv3.1", "winograd"): 1.0})
    text = page.make_report(results, tmp_path, figures=NO_FIGURES).read_text()
    assert "Published claims, re-run on this machine" in text and "Lavin &amp; Gray 2015" in text
    for column in ("claim", "paper's figure", "measured here", "agrees?"):
        assert f"<th>{column}</th>" in text
    stored = json.loads((tmp_path / "results.json").read_text())["papers"]
    assert {c["id"] for c in stored["claims"]} >= {"lavin2015-speed", "nnpack"}
    hostile = {"scaling": "<script>", "claims": [dict(stored["claims"][0], claim="<b>x</b>")]}
    assert "<script>" not in papers_html(hostile) and "<b>x</b>" not in papers_html(hostile)


def test_tiny_papers_run_end_to_end(tmp_path):
    from convlab.report import run_suite

    suite = papers_suite("tiny")
    results = run_suite(suite, ["direct", "winograd", "fft"], peers=["scipy.fftconvolve"])
    assert results["suite"]["methods"] == ["direct", "winograd", "fft"]
    page.make_report(results, tmp_path, figures=NO_FIGURES)
    stored = json.loads((tmp_path / "results.json").read_text())
    assert all(c["agrees"] in ("yes", "partly", "no", "not measured") for c in stored["papers"]["claims"])
    assert {c["id"] for c in stored["papers"]["claims"]} >= {"lavin2015-multiplies", "scipy"}
