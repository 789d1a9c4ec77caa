"""Writing a report: results.json, results.csv, figures (PNG and SVG), index.html, summary tables."""

import base64
import csv
import html
import json
import math
import os
import pathlib

from .figures import FIGURES
from .theory import THEORY_FIGURES

__all__ = ["make_report", "load_results", "normalize_results", "missing_peer_note",
           "summary_rows", "summary_text", "summary_markdown", "write_csv", "write_json",
           "write_snapshot", "ALL_FIGURES"]

# ---- analysis (convlab.report.analysis, .findings): phases, roofline, crossover map, findings with intervals
from .analysis import ANALYSIS_FIGURES, efficiency_html
from .findings import compute_findings, sentences

# ordered by figure number (slugs start with it: "10_..." after "9_...")
ALL_FIGURES = dict(sorted({**FIGURES, **THEORY_FIGURES, **ANALYSIS_FIGURES}.items(),
                          key=lambda item: (int(item[0].split("_")[0]), item[0])))
CSV_FIELDS = ("case", "group", "name", "label", "x_shape", "w_shape", "stride", "padding", "dilation", "groups",
              "flops", "auto_method", "method", "kind", "dtype", "status", "reason", "forward_median_s",
              "forward_q1_s", "forward_q3_s", "forward_loops", "backward_median_s", "backward_q1_s", "backward_q3_s",
              "backward_loops", "first_call_s",
              "forward_bytes", "backward_bytes", "workspace_bytes", "error_y_float32", "error_dx_float32",
              "error_dw_float32", "error_y_float64", "error_dx_float64", "error_dw_float64")


# --------------------------------------------------------------- tables
def _fastest(results, case_id, kind="convlab"):
    best = None
    for m in results["measurements"]:
        if (m["case"] == case_id and m["kind"] == kind and m["status"] == "ok" and m["forward"]
                and (best is None or m["forward"]["median_s"] < best["forward"]["median_s"])):
            best = m
    return best


def summary_rows(results):
    """One row per case: label, ``auto`` pick, fastest convlab method, and each runner's forward time.

    Returns
    -------
    header : list of str
    rows : list of list of str
    """
    runners = list(results["suite"]["methods"]) + list(results["suite"]["peers"])
    by_key = {(m["case"], m["method"]): m for m in results["measurements"]}
    header = ["case", "auto", "fastest", *runners]
    rows = []
    for case in results["cases"]:
        best = _fastest(results, case["id"])
        cells = [case["label"], case["auto_method"].split(":")[0], best["method"] if best else "-"]
        for runner in runners:
            m = by_key.get((case["id"], runner))
            if m is None:
                cells.append("")
            elif m["status"] != "ok" or not m["forward"]:
                cells.append(m["status"])
            else:
                cells.append(f"{m['forward']['median_s'] * 1e3:.3g}")
        rows.append(cells)
    return header, rows


def summary_text(results):
    """The summary as a fixed-width text table (forward median in ms)."""
    header, rows = summary_rows(results)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) if i > 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    return "forward time, median [ms]\n" + "\n".join(lines)


def summary_markdown(results):
    """The summary as a Markdown table (forward median in ms), with the environment above it."""
    header, rows = summary_rows(results)
    env = results["environment"]
    gemm = results["machine"].get("gemm_gflops", {})
    lines = [f"Suite `{results['suite']['name']}`, timed in {results['suite']['dtype']}, "
             f"{'complete' if results['complete'] else 'INTERRUPTED'} run of {results['elapsed_s']:.0f} s "
             f"started {results['started']}.",
             f"CPU: {env['cpu']} ({env['cpu_count']} logical cores); numpy {env['versions']['numpy']}, "
             f"scipy {env['versions']['scipy']}, torch {env['versions']['torch']}; FFT: {env['fft_backend']}; "
             f"float32 matmul {gemm.get('float32', float('nan')):.0f} GFLOP/s.", "",
             "Forward time, median of the timed samples, in milliseconds "
             "(`auto` is what `method=\"auto\"` picks; a status replaces the time when a method did not run):", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def findings(results):
    """What the measurements show, as short sentences with bootstrap intervals (:mod:`.findings`).

    Crossovers, slopes, the crossover map's agreement, peers and ``auto``;
    a finding its interval does not support says it depends on noise.
    """
    return sentences(compute_findings(results))


# --------------------------------------------------------------- reading results
def _need(ok, where, what, value):
    if not ok:
        raise ValueError(f"{where}: {what}, but got {value!r}"[:300])


def _number_or_none(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _check_timing(where, t):
    _need(t is None or isinstance(t, dict), where, "must be null or an object", t)
    if t:
        for key in ("median_s", "q1_s", "q3_s"):
            _need(isinstance(t.get(key), (int, float)) and not isinstance(t.get(key), bool), f"{where}.{key}",
                  "must be a number", t.get(key))


def normalize_results(results, where="results"):
    """Check a results dict before drawing it, and fill what a partial one lacks; return it.

    ``suite``, ``cases`` and ``measurements`` are required, with the fields
    the page reads; ``environment``, ``machine``, ``complete``,
    ``elapsed_s``, ``started`` and ``finished`` get neutral defaults, so an
    interrupted or hand-trimmed run still draws.

    Raises
    ------
    ValueError
        Naming ``where`` and the first field that is missing or of the wrong type.

    Examples
    --------
    >>> normalize_results({})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: results: not a convlab results file (...): missing 'suite', 'cases', 'measurements'
    """
    _need(isinstance(results, dict), where, "not a convlab results file: must be a JSON object", type(results))
    missing = [key for key in ("suite", "cases", "measurements") if key not in results]
    if missing:
        raise ValueError(f"{where}: not a convlab results file (write one with convlab report): missing "
                         f"{', '.join(map(repr, missing))}")
    suite = results["suite"]
    _need(isinstance(suite, dict), f"{where}: suite", "must be an object", suite)
    suite.setdefault("name", "?")
    suite.setdefault("description", "")
    for key, default in (("dtype", "float32"), ("repeats", "?"), ("warmup", "?"), ("time_budget_s", "?"),
                         ("accuracy_dtypes", [])):
        suite.setdefault(key, default)
    for key in ("methods", "peers"):
        value = suite.setdefault(key, [])
        _need(isinstance(value, list) and all(isinstance(v, str) for v in value), f"{where}: suite.{key}",
              "must be a list of strings", value)
    _need(isinstance(suite["accuracy_dtypes"], list), f"{where}: suite.accuracy_dtypes", "must be a list",
          suite["accuracy_dtypes"])
    _need(isinstance(results["cases"], list), f"{where}: cases", "must be a list", results["cases"])
    for i, case in enumerate(results["cases"]):
        at = f"{where}: cases[{i}]"
        _need(isinstance(case, dict), at, "must be an object", case)
        for key in ("id", "group", "name", "label"):
            _need(isinstance(case.get(key), str), f"{at}.{key}", "must be a string", case.get(key))
        for key in ("x_shape", "w_shape"):
            shape = case.get(key)
            _need(isinstance(shape, list) and len(shape) >= 3 and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape), f"{at}.{key}",
                "must be a list of at least 3 positive ints", shape)
        case.setdefault("ndim", len(case["x_shape"]) - 2)
        case.setdefault("auto_method", "?")
        _need(isinstance(case["auto_method"], str), f"{at}.auto_method", "must be a string", case["auto_method"])
        _need(_number_or_none(case.setdefault("flops", None)), f"{at}.flops", "must be a number", case["flops"])
    case_ids = {case["id"] for case in results["cases"]}
    _need(isinstance(results["measurements"], list), f"{where}: measurements", "must be a list",
          results["measurements"])
    for i, m in enumerate(results["measurements"]):
        at = f"{where}: measurements[{i}]"
        _need(isinstance(m, dict), at, "must be an object", m)
        for key in ("case", "method", "status"):
            _need(isinstance(m.get(key), str), f"{at}.{key}", "must be a string", m.get(key))
        _need(m["case"] in case_ids, f"{at}.case", "must be the id of one of the cases", m["case"])
        for key, default in (("kind", "convlab"), ("dtype", suite["dtype"]), ("reason", None),
                             ("first_call_s", None), ("forward", None), ("backward", None)):
            m.setdefault(key, default)
        for phase in ("forward", "backward"):
            _check_timing(f"{at}.{phase}", m[phase])
        phases = m.setdefault("phases", None)  # schema_version 1 files have none
        _need(phases is None or (isinstance(phases, dict) and all(
            isinstance(p, dict) and all(_number_or_none(v) for v in p.values()) for p in phases.values())),
            f"{at}.phases", "must map passes to {phase: seconds}", phases)
        memory = m.setdefault("memory", {})
        accuracy = m.setdefault("accuracy", {})
        _need(isinstance(memory, dict) and all(_number_or_none(v) for v in memory.values()), f"{at}.memory",
              "must map names to numbers", memory)
        _need(isinstance(accuracy, dict) and all(isinstance(v, dict) and all(_number_or_none(e) for e in v.values())
                                                 for v in accuracy.values()),
              f"{at}.accuracy", "must map dtypes to {name: number}", accuracy)
    for key in ("environment", "machine"):
        value = results.setdefault(key, {})
        if value is None:
            value = results[key] = {}
        _need(isinstance(value, dict), f"{where}: {key}", "must be an object", value)
    env, machine = results["environment"], results["machine"]
    for key in ("load_average", "affinity", "cpu_count"):
        _need(_number_or_none(env.get(key)), f"{where}: environment.{key}", "must be a number", env.get(key))
    _need(_number_or_none(machine.get("load_average_end")), f"{where}: machine.load_average_end",
          "must be a number", machine.get("load_average_end"))
    gemm = machine.get("gemm_gflops") or {}
    _need(isinstance(gemm, dict) and all(_number_or_none(v) for v in gemm.values()),
          f"{where}: machine.gemm_gflops", "must map dtypes to numbers", gemm)
    results.setdefault("complete", False)
    results.setdefault("started", "")
    results.setdefault("finished", None)
    elapsed = results.setdefault("elapsed_s", 0.0)
    _need(_number_or_none(elapsed), f"{where}: elapsed_s", "must be a number", elapsed)
    if elapsed is None:
        results["elapsed_s"] = 0.0
    return results


def load_results(path):
    """Read and check a ``results.json`` for ``--replot`` (:func:`normalize_results`).

    Raises
    ------
    ValueError
        Naming the file: not JSON, or not a convlab results file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON file ({exc})") from None
    return normalize_results(results, where=str(path))


# --------------------------------------------------------------- files
def _finite(value):
    """``value`` with every non-finite float replaced by ``None`` (strict JSON has no NaN or inf)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(results, path):
    """``results`` as strict JSON (non-finite numbers become ``null``)."""
    with open(path, "w") as f:
        json.dump(_finite(results), f, indent=1, allow_nan=False)


def _csv_row(case, m):
    row = {key: case.get(key) for key in ("group", "name", "label", "stride", "padding", "dilation", "groups",
                                          "flops", "auto_method")}
    row.update(case=case["id"], x_shape="x".join(map(str, case["x_shape"])),
               w_shape="x".join(map(str, case["w_shape"])))
    row.update({key: m[key] for key in ("method", "kind", "dtype", "status", "reason", "first_call_s")})
    for phase in ("forward", "backward"):
        for stat in ("median_s", "q1_s", "q3_s", "loops"):
            row[f"{phase}_{stat}"] = m[phase].get(stat) if m[phase] else None
    row.update(m["memory"])
    for dtype, errors in m["accuracy"].items():
        for what, value in errors.items():
            row[f"error_{what}_{dtype}"] = value
    return row


def write_csv(results, path):
    """One row per (case, runner), every raw statistic (samples are in results.json)."""
    cases = {c["id"]: c for c in results["cases"]}
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for m in results["measurements"]:
            writer.writerow(_csv_row(cases[m["case"]], m))


def _literal_text(fig):
    """Draw every text of ``fig`` that holds a ``$`` as written, not as matplotlib mathtext.

    The figures write no TeX of their own; a ``$`` comes from a case or
    runner name. Tick labels of numeric axes are still empty here (their
    formatter fills them when drawing, with mathtext for the powers of ten),
    so they keep it.
    """
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        if "$" in text.get_text():
            text.set_parse_math(False)
            text.set_usetex(False)


def draw_figures(results, out_dir, figures=None):
    """Save the figures (default all) as PNG and SVG; return ``{slug: (title, caption, problem)}`` in order.

    ``caption`` is ``None`` when the figure was not drawn, and ``problem``
    then says why (no cases for it, or the error drawing it raised: one
    figure must not cost the page). Text is drawn literally: names from a
    suite or a results file (``$`` included) never go through matplotlib's
    mathtext.
    """
    drawn = {}
    for slug, (title, function) in ALL_FIGURES.items():
        if figures is not None and slug not in figures:
            continue
        try:
            made = function(results)
            if made is not None:
                _literal_text(made[0])
                for ext in ("png", "svg"):
                    made[0].savefig(os.path.join(out_dir, f"{slug}.{ext}"), dpi=110)
        except Exception as exc:  # one figure must not cost the page: the run's data are worth more
            drawn[slug] = (title, None, f"could not be drawn from these results ({type(exc).__name__}: {exc})")
            continue
        drawn[slug] = (title, made[1], None) if made is not None else (title, None, "no cases in this suite for it")
    return drawn


# --------------------------------------------------------------- page
PAGE_STYLE = """body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}figure{margin:2em 0}img{max-width:100%}
figcaption{font-style:italic}details{margin:1em 0}code{background:#f4f4f4}.skip{color:#a33}"""


def _table_html(header, rows):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _not_run_html(results):
    rows = [[m["case"], m["method"], m["status"], m["reason"] or ""]
            for m in results["measurements"] if m["status"] != "ok"]
    return _table_html(["case", "method", "status", "reason"], rows) if rows else "<p>Every method ran every case.</p>"


def _png_data_uri(path):
    return "data:image/png;base64," + base64.b64encode(pathlib.Path(path).read_bytes()).decode()


def busy_warning(results):
    """A sentence when the machine was busier than its cores while measuring, else ``""``."""
    env = results["environment"]
    loads = [v for v in (env.get("load_average"), results["machine"].get("load_average_end")) if v is not None]
    cores = env.get("affinity") or env.get("cpu_count") or 1
    if loads and max(loads) > cores:
        return (f"Warning: the 1-minute load average reached {max(loads):.1f} on {cores} cores while measuring; "
                f"other work competed for the CPU and multi-threaded runners (BLAS, FFTW, torch) suffer most, "
                f"so these timings are not representative.")
    return ""


def _escaped(value, spec=""):
    """``value`` as page text: numbers formatted with ``spec``, everything else ``str`` and HTML-escaped.

    Results files are untrusted (``--replot`` reads any file), so no string
    from one reaches the page unescaped.

    Examples
    --------
    >>> _escaped(0.25, "g"), _escaped("<script>"), _escaped("<b>", "g")
    ('0.25', '&lt;script&gt;', '&lt;b&gt;')
    """
    if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return html.escape(str(value))


TORCH_HINT = 'pip install -e ".[torch]"'


def missing_peer_note(results):
    """One line when the PyTorch peer was left out because torch is not installed, else ``""``.

    Examples
    --------
    >>> results = {"suite": {"peers": ["scipy.fftconvolve"]}, "environment": {"versions": {"torch": None}}}
    >>> print(missing_peer_note(results))  # doctest: +ELLIPSIS
    PyTorch peer not measured: torch is not installed (add it from the checkout with pip install -e ".[torch]").
    """
    peers = results.get("suite", {}).get("peers") or []
    torch_version = ((results.get("environment") or {}).get("versions") or {}).get("torch", "unknown")
    if peers and "torch" not in peers and torch_version is None:
        return f"PyTorch peer not measured: torch is not installed (add it from the checkout with {TORCH_HINT})."
    return ""


def render_page(results, drawn, out_dir):
    """The HTML page: summary, figures embedded as base64 PNG (no network), environment, raw data links."""
    suite = results["suite"]
    header, rows = summary_rows(results)
    e = _escaped
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>convlab report: {e(suite['name'])}"
             f"</title><style>{PAGE_STYLE}</style></head><body>",
             f"<h1>convlab benchmark report: suite <code>{e(suite['name'])}</code></h1>",
             f"<p>{e(suite.get('description', ''))}</p>",
             f"<p>Methods: {', '.join(f'<code>{e(m)}</code>' for m in suite['methods'])}. "
             f"Peers: {', '.join(f'<code>{e(p)}</code>' for p in suite['peers']) or 'none'}. "
             f"Timed in {e(suite['dtype'])}; {e(suite['repeats'])} interleaved samples per method after "
             f"{e(suite['warmup'])} warm-up call(s); time budget {e(suite['time_budget_s'], 'g')} s per call. "
             f"{'Complete' if results['complete'] else '<b>Interrupted</b>'} run of "
             f"{e(results['elapsed_s'], '.0f')} s.</p>",
             f"<p class='skip'>{e(missing_peer_note(results))}</p>" if missing_peer_note(results) else "",
             f"<p class='skip'>{html.escape(busy_warning(results))}</p>" if busy_warning(results) else "",
             "<h2>Summary: forward time, median [ms]</h2>", _table_html(header, rows),
             "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in findings(results))
             + "</ul>", efficiency_html(results)]
    parts.append("<h2>Figures</h2>")
    for slug, (title, caption, problem) in drawn.items():
        if caption is None:
            parts.append(f"<p class='skip'>Figure {slug}: {html.escape(title)}: {html.escape(problem)}.</p>")
            continue
        uri = _png_data_uri(os.path.join(out_dir, f"{slug}.png"))
        parts.append(f"<figure id='{slug}'><img alt='{html.escape(title)}' src='{uri}'>"
                     f"<figcaption>{html.escape(slug.split('_')[0])}. <b>{html.escape(title)}.</b> "
                     f"{html.escape(caption)} (<a href='{slug}.png'>{slug}.png</a>, "
                     f"<a href='{slug}.svg'>{slug}.svg</a>)</figcaption></figure>")
    parts += ["<h2>Cases a method did not run</h2>", _not_run_html(results),
              "<h2>Environment</h2><pre>" + html.escape(json.dumps(
                  {"environment": results["environment"], "machine": results["machine"]}, indent=1)) + "</pre>",
              "<p>Raw data: <a href='results.json'>results.json</a> (every sample; schema in "
              "<code>convlab/report/schema.json</code>), <a href='results.csv'>results.csv</a>.</p></body></html>"]
    return "\n".join(parts)


def write_snapshot(results, drawn, out_dir, snapshot_dir):
    """Copy the PNGs and write ``summary.md`` (figure list + summary table) into ``snapshot_dir``."""
    snapshot_dir = pathlib.Path(snapshot_dir)
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    warning = busy_warning(results)
    lines = ["# convlab benchmark snapshot", "", *([f"> {warning}", ""] if warning else []),
             summary_markdown(results), "## Findings (computed from the measurements)", "",
             *[f"- {line}" for line in findings(results)], "", "## Figures", ""]
    for slug, (title, caption, _) in drawn.items():
        if caption is None:
            continue
        (snapshot_dir / f"{slug}.png").write_bytes((pathlib.Path(out_dir) / f"{slug}.png").read_bytes())
        lines += [f"### {title}", "", f"![{title}]({slug}.png)", "", caption, ""]
    (snapshot_dir / "summary.md").write_text("\n".join(lines))
    return snapshot_dir / "summary.md"


def make_report(results, out_dir, snapshot=None, figures=None):
    """Write ``index.html``, ``results.json``, ``results.csv`` and every figure (PNG, SVG) into ``out_dir``.

    Parameters
    ----------
    results : dict
        From :func:`convlab.report.run_suite` (complete or interrupted).
    out_dir : path
    snapshot : path, optional
        Also copy the PNGs and a Markdown summary there (the committed ``docs/report``).
    figures : collection of str, optional
        Slugs of :data:`ALL_FIGURES` to draw; default all of them.

    Returns
    -------
    pathlib.Path
        The page.
    """
    normalize_results(results)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(results, out_dir / "results.json")
    write_csv(results, out_dir / "results.csv")
    drawn = draw_figures(results, out_dir, figures)
    page = out_dir / "index.html"
    page.write_text(render_page(results, drawn, out_dir), encoding="utf-8")
    if snapshot is not None:
        write_snapshot(results, drawn, out_dir, snapshot)
    return page
