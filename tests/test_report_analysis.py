"""The report's analysis on synthetic results: crossovers, findings with intervals, phases, roofline, map."""

import time

import numpy as np
import pytest

from convlab.report.figures import family_best, family_crossover, kernel_crossovers
from convlab.report.findings import (
    NOISE_MARK,
    Bootstrap,
    auto_finding,
    compute_findings,
    crossover_findings,
    map_cells,
    map_finding,
    peer_findings,
    sentences,
    slope_findings,
)

METHODS = ["direct", "im2col", "winograd", "fft"]
ROUNDS = 7


def _case(group, name, n, k, c=1, auto="direct"):
    return {"id": f"{group}/{name}/n{n}/k{k}/c{c}", "group": group, "name": name, "label": f"{name} n{n} k{k} c{c}",
            "ndim": 2, "x_shape": [1, c, n, n], "w_shape": [c, c, k, k], "flops": 2 * c * c * n * n * k * k,
            "auto_method": auto}


def _timing(median, spread, rng):
    """``ROUNDS`` samples around ``median`` with relative ``spread`` (multiplicative noise)."""
    samples = median * np.exp(spread * rng.standard_normal(ROUNDS))
    samples = samples / np.median(samples) * median
    q1, q3 = np.percentile(samples, [25, 75])
    return {"median_s": float(median), "q1_s": float(q1), "q3_s": float(q3), "samples_s": samples.tolist(), "loops": 1}


def synthetic(cases, times, spread=0.01, peers=(), seed=0):
    """A results dict: ``times[(case id, runner)]`` is the forward median (absent: unsupported)."""
    rng = np.random.default_rng(seed)
    measurements = []
    for case in cases:
        for runner in [*METHODS, *peers]:
            t = times.get((case["id"], runner))
            measurements.append({
                "case": case["id"], "method": runner, "kind": "peer" if runner in peers else "convlab",
                "status": "ok" if t is not None else "unsupported", "reason": None,
                "forward": _timing(t, spread, rng) if t is not None else None, "backward": None,
                "phases": None, "memory": {}, "accuracy": {}})
    return {"schema_version": 2, "suite": {"methods": METHODS, "peers": list(peers), "dtype": "float32"},
            "cases": cases, "measurements": measurements, "machine": {"gemm_gflops": {"float32": 100.0},
                                                                      "copy_gbps": 10.0}}


def winograd_sweep(spread=0.01):
    """Direct grows like k², FFT is flat at 0.16 ms, Winograd runs only at k = 3 and takes 0.152 ms there."""
    kernels = [1, 3, 5, 7]
    cases = [_case("kernel", "image", 64, k) for k in kernels]
    times = {}
    for case, k in zip(cases, kernels):
        times[(case["id"], "direct")] = 0.025e-3 * k ** 2 if k > 1 else 0.05e-3
        times[(case["id"], "im2col")] = 0.03e-3 * k ** 2 if k > 1 else 0.06e-3
        times[(case["id"], "fft")] = 0.16e-3
    times[(cases[1]["id"], "winograd")] = 0.152e-3
    return synthetic(cases, times, spread), kernels


# --------------------------------------------------------------- crossover
def test_winograd_at_k3_is_the_spatial_winner_and_moves_the_crossover():
    results, kernels = winograd_sweep()
    curves = {m["method"]: [] for m in results["measurements"]}
    for m in results["measurements"]:
        curves[m["method"]].append(m["forward"]["median_s"] if m["forward"] else np.nan)
    times, winners = family_best(curves, ["direct", "im2col", "winograd"])
    assert winners[1] == "winograd" and times[1] == pytest.approx(0.152e-3)
    assert winners[0] == winners[2] == "direct"
    k = family_crossover(kernels, curves, METHODS)
    # Direct alone would cross the FFT between k = 1 and 3 (at about 2.5); Winograd keeps the spatial side
    # ahead at k = 3, so the FFT overtakes only between 3 and 5.
    assert 3 < k < 5
    assert 3 < kernel_crossovers(results)["image"] < 5


def test_crossover_finding_names_the_winners_and_is_stable_without_noise():
    results, _ = winograd_sweep(spread=0.01)
    (finding,) = crossover_findings(results)
    assert finding.stable and NOISE_MARK not in finding.text
    assert 3 < finding.low <= finding.value <= finding.high < 5
    assert "(fft, over winograd)" in finding.text


def test_crossover_finding_is_marked_noisy_when_the_curves_are_too_close_to_call():
    # Direct and the FFT differ by 2% at every k, well inside 30% noise: whether and where they cross is noise.
    kernels = [1, 3, 5, 7, 9]
    cases = [_case("kernel", "flat", 64, k) for k in kernels]
    times = {}
    for i, case in enumerate(cases):
        times[(case["id"], "direct")] = 1e-3 * (1.02 if i % 2 else 0.98)
        times[(case["id"], "fft")] = 1e-3
    (finding,) = crossover_findings(synthetic(cases, times, spread=0.3))
    assert not finding.stable and NOISE_MARK in finding.text


# --------------------------------------------------------------- bootstrap
def test_bootstrap_keeps_rounds_whole_and_has_no_spread_without_samples():
    results, _ = winograd_sweep(spread=0.2)
    case = results["cases"][0]["id"]
    record = {m["method"]: m for m in results["measurements"] if m["case"] == case}
    # fft took exactly twice direct's time in every round: paired replicates keep that ratio exactly
    record["fft"]["forward"] = dict(record["direct"]["forward"],
                                    samples_s=[2 * t for t in record["direct"]["forward"]["samples_s"]])
    boot = Bootstrap(results, replicates=30)
    direct, fft = boot.median(case, "direct", True), boot.median(case, "fft", True)
    assert direct.shape == (30,) and np.ptp(direct) > 0 and np.allclose(fft, 2 * direct)
    assert np.isnan(boot.median(case, "winograd"))
    record["direct"]["forward"]["samples_s"] = []  # an old file without samples: no spread is invented
    boot = Bootstrap(results, replicates=30)
    assert np.all(boot.median(case, "direct", True) == record["direct"]["forward"]["median_s"])


def test_the_same_results_give_the_same_intervals():
    results, _ = winograd_sweep(spread=0.1)
    assert compute_findings(results) == compute_findings(results)


# --------------------------------------------------------------- slopes, auto, peers
def _input_sweep(spread, slope_direct=1.0):
    sizes = [16, 32, 64, 128]
    cases = [_case("input", "small", n, 3, auto="direct") for n in sizes]
    times = {}
    for case, n in zip(cases, sizes):
        times[(case["id"], "direct")] = 1e-6 * (n * n) ** slope_direct
        times[(case["id"], "fft")] = 3e-6 * (n * n) * np.log2(n * n)
        times[(case["id"], "torch")] = 0.5e-6 * (n * n)
    return synthetic(cases, times, spread=spread, peers=("torch",))


def test_slopes_carry_intervals_and_only_tight_ones_are_stated():
    found = {f.key: f for f in slope_findings(_input_sweep(spread=0.005))}
    direct = found["slope/small/direct"]
    assert direct.stable and direct.low <= 1.0 <= direct.high and direct.value == pytest.approx(1.0)
    assert found["slope/small/fft"].value > 1.05
    noisy = {f.key: f for f in slope_findings(_input_sweep(spread=0.8))}
    assert not noisy["slope/small/direct"].stable and NOISE_MARK in noisy["slope/small/direct"].text


def test_auto_finding_counts_agreement_with_an_interval():
    finding = auto_finding(_input_sweep(spread=0.005))
    # direct is fastest on the small cases only: 1e-6·n² < 3e-6·n²·log2(n²) always, so on all four
    assert finding.value == 4 and finding.low == finding.high == 4 and finding.stable
    assert "4 of 4 cases" in finding.text


def test_peer_ratio_is_stated_only_when_its_interval_excludes_one():
    (clear,) = peer_findings(_input_sweep(spread=0.005))
    assert clear.stable and clear.value == pytest.approx(0.5) and clear.high < 1 and "torch is faster" in clear.text
    results = _input_sweep(spread=0.5)
    for m in results["measurements"]:  # torch now as fast as direct, within large noise
        if m["method"] == "torch":
            direct = next(d for d in results["measurements"] if d["case"] == m["case"] and d["method"] == "direct")
            m["forward"] = dict(direct["forward"], samples_s=list(np.array(direct["forward"]["samples_s"])[::-1]))
    (unclear,) = peer_findings(results)
    assert not unclear.stable and NOISE_MARK in unclear.text


def test_sentences_join_the_slopes_of_a_sweep():
    lines = sentences(compute_findings(_input_sweep(spread=0.005)))
    slope_lines = [line for line in lines if line.startswith("Input sweep 'small'")]
    assert len(slope_lines) == 1 and "direct 1.00" in slope_lines[0] and slope_lines[0].endswith(".")


# --------------------------------------------------------------- crossover map
def _map(spread=0.01):
    """A kernel × channels map: direct wins k ≤ 3, fft beyond; the model predicts fft from k = 3 on."""
    cases, times = [], {}
    for c in (1, 4):
        for k in (1, 3, 5, 9):
            case = _case("map", "channels", 32, k, c, auto="direct" if k < 3 else "fft")
            cases.append(case)
            times[(case["id"], "direct")] = 1e-6 * k * k * c
            times[(case["id"], "fft")] = 12e-6 * c
    return synthetic(cases, times, spread)


def test_map_cells_and_agreement():
    cells = map_cells(_map())["channels"]
    assert [cell["measured"] for cell in cells if cell["channels"] == 1] == ["direct", "direct", "fft", "fft"]
    finding = map_finding(_map())
    assert finding.value == pytest.approx(6 / 8) and "6 of 8 cells" in finding.text


def test_too_few_rounds_state_nothing_as_stable():
    results, _ = winograd_sweep(spread=0.001)
    for m in results["measurements"]:
        if m["forward"]:
            m["forward"]["samples_s"] = m["forward"]["samples_s"][:2]
    (finding,) = crossover_findings(results)
    assert not finding.stable and NOISE_MARK in finding.text


# --------------------------------------------------------------- phases
def test_phase_times_records_the_marked_phases_of_each_pass():
    from convlab.phases import phase
    from convlab.report.measure import Runner, phase_times

    def forward():
        with phase("product"):
            time.sleep(0.002)
        with phase("pad"):
            pass

    calls = []
    times = phase_times(Runner("demo", "convlab", forward, lambda: calls.append(1)), steady=(0.002, 0.001))
    assert list(times["forward"]) == ["pad", "product"]  # the shared vocabulary's order
    assert times["forward"]["product"] >= 0.002 and times["backward"] == {}
    assert len(calls) == 1  # a pass that marks nothing is called once
    slow = phase_times(Runner("demo", "convlab", forward, None), steady=(1.0, 0.0))
    assert list(slow) == ["forward"]


def test_phase_stack_fills_to_the_timed_median():
    from convlab.report.analysis import UNMARKED, phase_stack

    m = {"forward": {"median_s": 1.0}, "phases": {"forward": {"transform_input": 0.3, "product": 0.5}}}
    assert phase_stack(m) == [("transform_input", 0.3), ("product", 0.5), (UNMARKED, pytest.approx(0.2))]
    over = {"forward": {"median_s": 1.0}, "phases": {"forward": {"product": 2.0}}}  # separate calls ran slower
    assert phase_stack(over) == [("product", 1.0)]
    assert phase_stack({"forward": {"median_s": 1.0}, "phases": None}) == [(UNMARKED, 1.0)]
    assert phase_stack({"forward": None}) == []


# --------------------------------------------------------------- roofline, efficiency, figures
def test_intensity_counts_x_w_y_once():
    from convlab.report.analysis import intensity, min_bytes

    case = _case("layer", "l", 8, 3, c=2)
    case["y_shape"] = [1, 2, 8, 8]
    assert min_bytes(case, 4) == 4 * (128 + 36 + 128)
    del case["y_shape"]  # schema 1: y from the direct FLOP count
    assert min_bytes(case, 4) == 4 * (128 + 36 + 128)
    assert intensity(case, 4) == pytest.approx(case["flops"] / (4 * 292))


def test_efficiency_is_against_the_roof_at_the_case_intensity():
    from convlab.report.analysis import efficiency_rows, intensity

    results = _map()
    case = results["cases"][-1]
    for m in results["measurements"]:
        if m["case"] == case["id"] and m["method"] == "fft":
            m["phases"] = {"forward": {"transform_input": 1e-6, "product": 3e-6}}
    header, rows = efficiency_rows(results)
    by_method = {row[0]: dict(zip(header, row)) for row in rows}
    effs = []
    for c in results["cases"]:
        roof = min(100e9, intensity(c, 4) * 10e9)  # the synthetic machine: 100 GFLOP/s, 10 GB/s
        effs.append(c["flops"] / (12e-6 * c["x_shape"][1]) / roof)
    assert by_method["fft"]["best"] == f"{100 * max(effs):.1f}%"
    assert by_method["fft"]["median efficiency"] == f"{100 * np.median(effs):.1f}%"
    assert by_method["fft"]["dominant phase (share)"].startswith("product")
    assert by_method["direct"]["dominant phase (share)"] == "no phases marked"


def test_analysis_figures_draw_from_synthetic_results():
    from convlab.report.analysis import ANALYSIS_FIGURES

    results = _map()
    results["cases"] += winograd_sweep()[0]["cases"]
    results["measurements"] += winograd_sweep()[0]["measurements"]
    for m in results["measurements"]:
        if m["method"] == "fft" and m["forward"]:
            m["phases"] = {"forward": {"transform_input": 0.4 * m["forward"]["median_s"],
                                       "product": 0.3 * m["forward"]["median_s"]}}
    for slug, (_, function) in ANALYSIS_FIGURES.items():
        fig, caption = function(results)
        assert caption and fig.axes, slug
    fig, _ = ANALYSIS_FIGURES["12_crossover_map"][1](results)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "[fft]" in texts  # the model's wrong picks (k = 3) are bracketed
    titles = [ax.get_title() for ax in fig.axes]
    assert any("6/8 agree" in t for t in titles)


def test_a_map_suite_sweeps_channels_with_distinct_ids():
    from convlab.report.suites import parse_suite

    suite = parse_suite({"case": [{"group": "map", "name": "m", "channels": [1, 4], "size": 8, "kernel": [1, 3],
                                   "padding": "same"}]})
    assert [c.id for c in suite.cases] == ["map/m/n8/k1/c1", "map/m/n8/k3/c1", "map/m/n8/k1/c4", "map/m/n8/k3/c4"]
    assert all(c.w_shape[0] == c.x_shape[1] for c in suite.cases)
    with pytest.raises(ValueError, match="channels"):
        parse_suite({"case": [{"group": "layer", "channels": [1, 4], "size": 8, "kernel": 3}]})


def test_compare_runs_puts_two_runs_side_by_side():
    from convlab.report.findings import compare_runs

    first, _ = winograd_sweep()
    second, _ = winograd_sweep()
    for m in second["measurements"]:  # the second run: the FFT five times slower, so direct wins k = 5 too
        if m["method"] == "fft":
            m["forward"] = dict(m["forward"], median_s=5 * m["forward"]["median_s"],
                                samples_s=[5 * t for t in m["forward"]["samples_s"]])
    diff = compare_runs(first, second)
    assert diff["same_fastest"] == (3, 4)  # only k = 5 changed hands (fft, then direct)
    k1, k2, apart = diff["crossovers"]["image"]
    assert 3 < k1 < 5 < k2 < 7 and apart == 1
    assert [key for key, _, _ in diff["findings"]] == ["crossover/image", "auto"]


def test_measure_case_stores_the_phases_a_method_marks(monkeypatch):
    import convlab as cl
    from convlab.phases import phase
    from convlab.report import Case, measure_case

    method = type(cl.get_method("direct"))
    forward = method.forward

    def marked(self, spec, x, w):
        with phase("test_product"):  # a name no built-in method uses: nested marks would add to theirs
            return forward(self, spec, x, w)

    monkeypatch.setattr(method, "forward", marked)
    (record,) = measure_case(Case("layer", "demo", (1, 1, 8, 8), (1, 1, 3, 3)), ["direct"], repeats=1,
                             accuracy_dtypes=("float32",), min_sample_s=0.0)
    assert record["status"] == "ok" and record["phases"]["forward"]["test_product"] > 0
    assert "test_product" not in record["phases"]["backward"]


def test_a_schema_1_file_still_draws(tmp_path):
    from convlab.report import make_report
    from convlab.report.analysis import ANALYSIS_FIGURES, efficiency_rows

    results, _ = winograd_sweep()
    results.update(schema_version=1, machine={"gemm_gflops": {"float32": 100.0}})  # no copy bandwidth
    for m in results["measurements"]:
        del m["phases"]
    results["suite"].update(accuracy_dtypes=[], name="old")
    page = make_report(results, tmp_path, figures=set(ANALYSIS_FIGURES))
    assert (tmp_path / "11_roofline.png").exists() and (tmp_path / "10_phases.png").exists()
    assert efficiency_rows(results)[1] == [] and "overtakes the fastest spatial one" in page.read_text()
