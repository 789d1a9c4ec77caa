"""Writing a report: results.json, results.csv, figures (PNG and SVG), index.html, summary tables."""

import base64
import csv
import html
import json
import math
import os
import pathlib
import re

from .figures import FIGURES
from .papers import evaluate, is_papers_run, papers_html, papers_markdown
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
    """The fastest ``ok`` measurement of ``case_id`` by forward median, among ``kind`` (``None``: every runner)."""
    best = None
    for m in results["measurements"]:
        if (m["case"] == case_id and (kind is None or m["kind"] == kind) and m["status"] == "ok" and m["forward"]
                and (best is None or m["forward"]["median_s"] < best["forward"]["median_s"])):
            best = m
    return best


PEER_MARK = " (peer)"


def _fastest_label(results, case_id):
    """The fastest runner of a case, peers included and marked; ``"-"`` when nothing ran.

    When a peer is fastest, the fastest convlab method follows it, so the
    reader sees both: ``"scipy.fftconvolve (peer); convlab: fft"``.
    """
    best, mine = _fastest(results, case_id, kind=None), _fastest(results, case_id)
    if best is None:
        return "-"
    if best["kind"] == "convlab":
        return best["method"]
    return best["method"] + PEER_MARK + (f"; convlab: {mine['method']}" if mine else "")


def summary_rows(results):
    """One row per case: label, ``auto`` pick, fastest runner (peers included, marked), each runner's forward time.

    Returns
    -------
    header : list of str
    rows : list of list of str
        A time in milliseconds, or the status of a runner that did not run.
    """
    runners = list(results["suite"]["methods"]) + list(results["suite"]["peers"])
    by_key = {(m["case"], m["method"]): m for m in results["measurements"]}
    header = ["case", "auto", "fastest", *runners]
    rows = []
    for case in results["cases"]:
        cells = [case["label"], case["auto_method"].split(":")[0], _fastest_label(results, case["id"])]
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
                    # tight: legends placed outside the axes stay inside the file
                    made[0].savefig(os.path.join(out_dir, f"{slug}.{ext}"), dpi=110, bbox_inches="tight",
                                    pad_inches=0.1)
        except Exception as exc:  # one figure must not cost the page: the run's data are worth more
            drawn[slug] = (title, None, f"could not be drawn from these results ({type(exc).__name__}: {exc})")
            continue
        drawn[slug] = (title, made[1], None) if made is not None else (title, None, "no cases in this suite for it")
    return drawn


# --------------------------------------------------------------- files the report owns
MANIFEST = ".convlab-report-files.json"
"""Names of the files the last report wrote into its folder, so a re-run can remove the stale ones."""

_OWNED = re.compile(r"^[A-Za-z0-9][\w.-]*\.(png|svg|html|json|csv|md)$")


def _figure_files():
    return {f"{slug}.{ext}" for slug in ALL_FIGURES for ext in ("png", "svg")}


def remove_stale(folder, written):
    """Delete the files an earlier report wrote into ``folder`` that this one did not; return their names.

    Only names this module writes are candidates: those listed in the
    folder's manifest (:data:`MANIFEST`, written by the previous report) and
    the figure names of :data:`ALL_FIGURES`. Anything else in the folder,
    and any name that is not a plain file name, is left alone. The new
    manifest lists ``written``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     d = pathlib.Path(d)
    ...     for name in ("9_peers.png", "notes.png", "index.html"):
    ...         _ = (d / name).write_text("x")
    ...     removed = remove_stale(d, {"index.html"})
    ...     removed, sorted(p.name for p in d.iterdir() if p.name != MANIFEST)
    (['9_peers.png'], ['index.html', 'notes.png'])
    """
    folder = pathlib.Path(folder)
    previous = set()
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(listed, list):
            previous = {name for name in listed if isinstance(name, str)}
    except (OSError, ValueError):
        pass  # no manifest (first run, or a folder from an older convlab): only the known figure names
    removed = []
    for name in sorted((previous | _figure_files()) - set(written)):
        path = folder / name
        if _OWNED.match(name) and path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(name)
    (folder / MANIFEST).write_text(json.dumps(sorted(written)), encoding="utf-8")
    return removed


# --------------------------------------------------------------- page
PAGE_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 4px;text-align:right}
td:first-child,th:first-child{text-align:left}th{vertical-align:bottom;font-weight:600}
.wide{overflow-x:auto;max-width:100%}.summary td:first-child{min-width:9em}
.summary td.best{font-weight:700;background:#eef6ee}.summary th{max-width:5.5em;overflow-wrap:anywhere}
.left td,.left th{text-align:left;vertical-align:top}figure{margin:2em 0}img{max-width:100%;height:auto}
figcaption{font-style:italic}details{margin:1em 0}summary{cursor:pointer}code{background:#f4f4f4}
.skip{color:#a33}.note{color:#555;font-size:13px}.yes{color:#1a7f37}.no{color:#b3261e}.partly{color:#9a6700}"""

STATUS_SHORT = {"unsupported": "n/a", "skipped": "skip", "failed": "fail"}
"""How the summary table shows a runner that did not run (the full reasons are in the "did not run" section)."""

FIGURE_DOCS = {
    "1_time_vs_kernel": ("methods.md",),
    "2_time_vs_input": ("methods.md",),
    "3_forward_backward": ("backward.md",),
    "4_memory": ("methods.md",),
    "5_accuracy": ("methods.md",),
    "6_convolution_theorem": ("fft.md", "theory.md"),
    "7_circulant_matrix": ("theory.md", "toeplitz.md"),
    "8_gflops": ("im2col.md", "methods.md"),
    "9_peers": ("torch.md", "scipy.md"),
}
"""The pages of ``docs/`` that explain each figure; its caption links to them."""

DOCS_DIR = pathlib.Path(__file__).resolve().parents[2] / "docs"


def _docs_links(slug, relative_to=None):
    """``[(page name, href), ...]`` for a figure: a ``file:`` link into the checkout's ``docs/``, or a
    path relative to ``relative_to``; pages not in the checkout (an installed wheel) are named only."""
    links = []
    for page in FIGURE_DOCS.get(slug, ()):
        path = DOCS_DIR / page
        if relative_to is not None:
            links.append((page, os.path.relpath(path, relative_to)))
        else:
            links.append((page, path.as_uri() if path.is_file() else None))
    return links


def _table_html(header, rows, cls=""):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class='wide'><table class='{cls}'><tr>{head}</tr>{body}</table></div>"


def _summary_html(results):
    """The summary table, sized for a 900 px page: short status words, breakable runner names, the
    fastest time of each row in bold."""
    header, rows = summary_rows(results)
    n_fixed = 3
    head = "".join(f"<th>{html.escape(h).replace('.', '.<wbr>').replace('_', '_<wbr>')}</th>" for h in header)
    body = []
    for row in rows:
        times = [float(c) for c in row[n_fixed:] if _is_number(c)]
        best = min(times) if times else None
        cells = [f"<td>{html.escape(str(c))}</td>" for c in row[:n_fixed]]
        for c in row[n_fixed:]:
            if _is_number(c):
                cls = " class='best'" if float(c) == best else ""
                cells.append(f"<td{cls}>{html.escape(c)}</td>")
            else:
                cells.append(f"<td title='{html.escape(c)}'>{html.escape(STATUS_SHORT.get(c, c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    legend = ("<p class='note'>Fastest time of each case in bold; <i>fastest</i> includes the peers, marked "
              "<code>(peer)</code>. " + "; ".join(f"<code>{short}</code> = {status}" for status, short in
                                                  STATUS_SHORT.items()) + " (reasons below).</p>")
    return f"<div class='wide'><table class='summary'><tr>{head}</tr>{''.join(body)}</table></div>{legend}"


def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _reason_pattern(reason):
    """A reason with its numbers and shapes blanked, so the same refusal on different cases groups together.

    Examples
    --------
    >>> _reason_pattern("cannot run batch×channels 1×8→8 (needs 1×1→1)")
    'cannot run batch×channels #×#→# (needs #×#→#)'
    """
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", reason or "")


def not_run_groups(results):
    """Runners that did not run a case, grouped by (runner, status, reason pattern).

    Returns
    -------
    list of dict
        ``{"runner", "status", "reason" (the first case's), "cases" (ids)}``,
        largest group first.

    Examples
    --------
    >>> ms = [{"case": f"c{i}", "method": "winograd", "status": "unsupported",
    ...        "reason": f"kernel {k} too large"} for i, k in enumerate((5, 7))]
    >>> [(g["runner"], len(g["cases"])) for g in not_run_groups({"measurements": ms})]
    [('winograd', 2)]
    """
    groups = {}
    for m in results["measurements"]:
        if m["status"] == "ok":
            continue
        key = (m["method"], m["status"], _reason_pattern(m["reason"]))
        group = groups.setdefault(key, {"runner": m["method"], "status": m["status"], "reason": m["reason"] or "",
                                        "cases": []})
        group["cases"].append(m["case"])
    return sorted(groups.values(), key=lambda g: (-len(g["cases"]), g["runner"]))


def _not_run_html(results):
    groups = not_run_groups(results)
    if not groups:
        return "<p>Every runner ran every case.</p>"
    total = sum(len(g["cases"]) for g in groups)
    rows = []
    for g in groups:
        cases = g["cases"]
        shown = ", ".join(html.escape(c) for c in cases[:3]) + (f" and {len(cases) - 3} more" if len(cases) > 3 else "")
        rows.append(f"<tr><td><code>{html.escape(g['runner'])}</code></td><td>{html.escape(g['status'])}</td>"
                    f"<td>{len(cases)}</td><td>{html.escape(g['reason'])}</td><td>{shown}</td></tr>")
    return (f"<details><summary>{total} (case, runner) pairs did not run, in {len(groups)} groups by reason "
            f"(click to open)</summary><div class='wide'><table class='left'><tr><th>runner</th><th>status</th>"
            f"<th>cases</th><th>reason (first case; the others differ only in numbers)</th><th>which</th></tr>"
            + "".join(rows) + "</table></div></details>")


def environment_rows(results):
    """The environment as ``[(what, value), ...]`` for a small table (the full record is in results.json).

    Examples
    --------
    >>> rows = dict(environment_rows({"environment": {"cpu": "x86", "cpu_count": 2, "versions": {"numpy": "2.0"}},
    ...                                "machine": {"gemm_gflops": {"float32": 50.0}}}))
    >>> rows["CPU"], rows["numpy"], rows["matmul GFLOP/s"]
    ('x86 (2 logical cores)', '2.0', 'float32 50')
    """
    env, machine = results.get("environment") or {}, results.get("machine") or {}
    cores = f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} logical cores"
    if env.get("affinity") not in (None, env.get("cpu_count")):
        cores += f", {env['affinity']} usable"
    rows = [("CPU", cores + ")"), ("platform", env.get("platform", "?")), ("Python", env.get("python", "?"))]
    rows += [(name, version or "not installed") for name, version in (env.get("versions") or {}).items()]
    pools = [f"{p.get('internal_api', '?')} ({p.get('user_api', '?')}): {p.get('num_threads', '?')} threads"
             for p in env.get("threadpools") or () if isinstance(p, dict)]
    if pools:
        rows.append(("thread pools", "; ".join(pools)))
    if env.get("fft_backend"):
        rows.append(("FFT backend", env["fft_backend"]))
    if isinstance(env.get("workspace_limit_bytes"), (int, float)):
        rows.append(("workspace limit", f"{env['workspace_limit_bytes'] / 2**20:.0f} MiB"))
    gemm = machine.get("gemm_gflops") or {}
    if gemm:
        rows.append(("matmul GFLOP/s", ", ".join(f"{dt} {v:.0f}" for dt, v in gemm.items() if v is not None)))
    loads = [v for v in (env.get("load_average"), machine.get("load_average_end")) if v is not None]
    if loads:
        rows.append(("load average (start, end)", ", ".join(f"{v:.1f}" for v in loads)))
    return [(str(k), str(v)) for k, v in rows]


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
PEER_HINTS = {"torch": ("torch", TORCH_HINT)}
"""Peer -> (library, how to install it from the checkout); scipy's peers need nothing (scipy is required)."""


def missing_peer_note(results):
    """One line naming the peers left out because their library is not installed, and how to add them; else ``""``.

    Nothing is said when no peer was measured at all (``--no-peers``).

    Examples
    --------
    >>> results = {"suite": {"peers": ["scipy.fftconvolve"]}, "environment": {"versions": {"torch": None}}}
    >>> print(missing_peer_note(results))  # doctest: +ELLIPSIS
    PyTorch peer not measured: torch is not installed (add it from the checkout with pip install -e ".[torch]").
    """
    peers = results.get("suite", {}).get("peers") or []
    versions = (results.get("environment") or {}).get("versions") or {}
    if not peers:
        return ""
    missing = [(name, library, hint) for name, (library, hint) in PEER_HINTS.items()
               if name not in peers and library in versions and versions[library] is None]
    if not missing:
        return ""
    if [name for name, _, _ in missing] == ["torch"]:
        return f"PyTorch peer not measured: torch is not installed (add it from the checkout with {TORCH_HINT})."
    return "; ".join(f"peer {name} not measured: {library} is not installed (add it from the checkout with {hint})"
                     for name, library, hint in missing) + "."


def _figure_html(slug, title, caption, out_dir):
    uri = _png_data_uri(os.path.join(out_dir, f"{slug}.png"))
    docs = [f"<a href='{html.escape(href)}'>docs/{html.escape(page)}</a>" if href else f"docs/{html.escape(page)}"
            for page, href in _docs_links(slug)]
    explained = f" Explained in {', '.join(docs)}." if docs else ""
    return (f"<figure id='{slug}'><img alt='{html.escape(title)}' src='{uri}'>"
            f"<figcaption>{html.escape(slug.split('_')[0])}. <b>{html.escape(title)}.</b> "
            f"{html.escape(caption)}{explained} (<a href='{slug}.png'>{slug}.png</a>, "
            f"<a href='{slug}.svg'>{slug}.svg</a>)</figcaption></figure>")


def render_page(results, drawn, out_dir):
    """The HTML page: summary, figures embedded as base64 PNG (no network), environment, raw data links."""
    suite = results["suite"]
    e = _escaped
    missing, busy = missing_peer_note(results), busy_warning(results)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>convlab report: "
             f"{e(suite['name'])}</title><style>{PAGE_STYLE}</style></head><body>",
             f"<h1>convlab benchmark report: suite <code>{e(suite['name'])}</code></h1>",
             f"<p>{e(suite.get('description', ''))}</p>",
             f"<p>Methods: {', '.join(f'<code>{e(m)}</code>' for m in suite['methods'])}. "
             f"Peers: {', '.join(f'<code>{e(p)}</code>' for p in suite['peers']) or 'none'}. "
             f"Timed in {e(suite['dtype'])}; {e(suite['repeats'])} interleaved samples per method after "
             f"{e(suite['warmup'])} warm-up call(s); time budget {e(suite['time_budget_s'], 'g')} s per call. "
             f"{'Complete' if results['complete'] else '<b>Interrupted</b>'} run of "
             f"{e(results['elapsed_s'], '.0f')} s.</p>",
             f"<p class='skip'>{e(missing)}</p>" if missing else "",
             f"<p class='skip'>{e(busy)}</p>" if busy else ""]
    if results.get("papers"):
        parts.append(papers_html(results["papers"]))
    parts += ["<h2>Summary: forward time, median [ms]</h2>", _summary_html(results),
              "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in findings(results))
              + "</ul>", efficiency_html(results), "<h2>Figures</h2>"]
    for slug, (title, caption, problem) in drawn.items():
        if caption is None:
            parts.append(f"<p class='skip'>Figure {slug}: {html.escape(title)}: {html.escape(problem)}.</p>")
        else:
            parts.append(_figure_html(slug, title, caption, out_dir))
    parts += ["<h2>Cases a runner did not run</h2>", _not_run_html(results),
              "<h2>Environment</h2>", _table_html(["", ""], environment_rows(results), cls="left"),
              "<p>Raw data: <a href='results.json'>results.json</a> (every sample and the full environment; schema "
              "in <code>convlab/report/schema.json</code>), <a href='results.csv'>results.csv</a>.</p></body></html>"]
    return "\n".join(parts)


def write_snapshot(results, drawn, out_dir, snapshot_dir):
    """Copy the PNGs and write ``summary.md`` (figure list + summary table) into ``snapshot_dir``.

    PNGs an earlier snapshot wrote there and this one did not are removed
    (:func:`remove_stale`); other files are left alone.
    """
    snapshot_dir = pathlib.Path(snapshot_dir)
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    warning = busy_warning(results)
    lines = ["# convlab benchmark snapshot", "", *([f"> {warning}", ""] if warning else []),
             summary_markdown(results)]
    if results.get("papers"):
        lines += [papers_markdown(results["papers"]), ""]
    lines += ["## Findings (computed from the measurements)", "",
              *[f"- {line}" for line in findings(results)], "", "## Figures", ""]
    written = {"summary.md"}
    for slug, (title, caption, _) in drawn.items():
        if caption is None:
            continue
        (snapshot_dir / f"{slug}.png").write_bytes((pathlib.Path(out_dir) / f"{slug}.png").read_bytes())
        written.add(f"{slug}.png")
        docs = ", ".join(f"[docs/{page}]({href})" for page, href in _docs_links(slug, relative_to=snapshot_dir))
        lines += [f"### {title}", "", f"![{title}]({slug}.png)", "", caption + (f" Explained in {docs}." if docs
                                                                             else ""), ""]
    (snapshot_dir / "summary.md").write_text("\n".join(lines))
    remove_stale(snapshot_dir, written)
    return snapshot_dir / "summary.md"


def make_report(results, out_dir, snapshot=None, figures=None):
    """Write ``index.html``, ``results.json``, ``results.csv`` and every figure (PNG, SVG) into ``out_dir``.

    Figures an earlier report wrote into ``out_dir`` and this one did not
    are removed (:func:`remove_stale`); nothing else there is touched.

    Parameters
    ----------
    results : dict
        From :func:`convlab.report.run_suite` (complete or interrupted). A
        run of the ``papers`` suite gets its ``papers`` table
        (:func:`convlab.report.papers.evaluate`) here.
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
    if is_papers_run(results):
        results["papers"] = evaluate(results)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(results, out_dir / "results.json")
    write_csv(results, out_dir / "results.csv")
    drawn = draw_figures(results, out_dir, figures)
    page = out_dir / "index.html"
    page.write_text(render_page(results, drawn, out_dir), encoding="utf-8")
    written = {"index.html", "results.json", "results.csv"}
    written |= {f"{slug}.{ext}" for slug, (_, caption, _) in drawn.items() if caption is not None
                for ext in ("png", "svg")}
    remove_stale(out_dir, written)
    if snapshot is not None:
        write_snapshot(results, drawn, out_dir, snapshot)
    return page
