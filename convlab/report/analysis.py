"""Why each method wins: phase breakdown, roofline with per-method efficiency, crossover map.

Three figures (drawn from a results dict, like :mod:`.figures`) and one table:

* **Phases** (figure 10): the forward time of every convlab method, split
  into the phases it marks (:mod:`convlab.phases`), per kernel sweep and for
  the layer cases. Time the method does not mark is drawn as "not marked".
* **Roofline** (figure 11): each (case, runner) placed by the case's
  arithmetic intensity against its effective throughput, under the
  machine's two roofs. Both axes are defined by the *problem*, not by what
  a method happens to do, so methods compare on one scale:

  - effective FLOPs: what the direct algorithm does, ``2·N·C_out·|y|·C_in/g·|k|``
    (the report's ``flops``); an FFT or Winograd method does fewer, so it can
    sit above the compute roof;
  - bytes moved: the least any method must move, reading ``x`` and ``w`` and
    writing ``y`` once in the timed dtype (``itemsize·(|x| + |w| + |y|)``,
    padding and every intermediate buffer left out);
  - roofs: the measured numpy GEMM rate (:func:`convlab.harness.gemm_flops`)
    and the measured copy bandwidth (:func:`convlab.harness.copy_bandwidth`);
    the attainable rate at intensity ``I`` is ``min(peak, I·bandwidth)``.

* **Efficiency** (:func:`efficiency_rows`): per method, the achieved rate as
  a fraction of that attainable rate (the method's limit on the roofline:
  compute-bound cases against the GEMM peak, memory-bound ones against the
  bandwidth), and the phase that dominates its time where it marks phases.
* **Crossover map** (figure 12): over the ``map`` cases (a grid of kernel
  size × channels, or × input size), the measured winner per cell beside
  the cost model's pick (``method="auto"``), with the agreement.
"""

import html
import math

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..phases import PHASES
from .figures import Data, forward_median, style
from .findings import map_cells

__all__ = ["ANALYSIS_FIGURES", "figure_phases", "figure_roofline", "figure_map", "intensity", "min_bytes",
           "efficiency_rows", "efficiency_html", "phase_stack"]

PHASE_COLORS = dict(zip(PHASES, ("#8dd3c7", "#bebada", "#80b1d3", "#b3de69", "#fb8072", "#fdb462", "#fccde5")))
UNMARKED = "not marked"


# --------------------------------------------------------------- phases
def phase_stack(m, which="forward"):
    """``[(phase, seconds), ...]`` of a measurement's pass, stacked to its median time.

    The phases recorded (``m["phases"][which]``), scaled so that they sum to
    at most the pass's timed median (they come from separate calls), then
    ``("not marked", rest)`` for the time no phase covers. ``[]`` when the
    pass was not timed.

    Examples
    --------
    >>> m = {"forward": {"median_s": 1.0}, "phases": {"forward": {"pad": 0.2, "product": 0.6}}}
    >>> phase_stack(m)
    [('pad', 0.2), ('product', 0.6), ('not marked', 0.2)]
    """
    timing = m.get(which)
    if not timing:
        return []
    total = timing["median_s"]
    phases = dict((m.get("phases") or {}).get(which) or {})
    marked = sum(phases.values())
    scale = min(1.0, total / marked) if marked > 0 else 1.0
    stack = [(name, seconds * scale) for name, seconds in phases.items()]
    rest = total - marked * scale
    if rest > 1e-3 * total:
        stack.append((UNMARKED, rest))
    return stack


def _phase_families(data):
    """``[(title, cases, tick labels)]``: each kernel sweep (ticks k) and the layer cases (ticks: their names)."""
    families = [(f"kernel sweep '{name}'", cases, [f"k{c['w_shape'][2]}" for c in cases])
                for name, cases in data.group("kernel").items()]
    layers = [c for cases in data.group("layer").values() for c in cases]
    if layers:
        families.append(("layers", layers, [c["name"] for c in layers]))
    return families


def figure_phases(results):
    """Figure 10: forward time split into phases, one panel per (family, method), bars per case."""
    data = Data(results)
    panels = [(title, cases, ticks, method) for title, cases, ticks in _phase_families(data)
              for method in data.methods if any(data.get(c, method) for c in cases)]
    if not panels:
        return None
    ncols = 3
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(10, 2.5 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    used = set()
    for ax, (title, cases, ticks, method) in zip(axes, panels):
        for i, case in enumerate(cases):
            m = data.get(case, method)
            bottom = 0.0
            for name, seconds in (phase_stack(m) if m else []):
                ax.bar(i, seconds * 1e3, bottom=bottom * 1e3, width=0.7, color=PHASE_COLORS.get(name, "0.85"),
                       hatch="//" if name == UNMARKED else None, edgecolor="white", linewidth=0.5)
                bottom += seconds
                used.add(name)
            if m is None:
                ax.text(i, 0.02, "–", ha="center", va="bottom", color="0.5", transform=ax.get_xaxis_transform())
        ax.set_xticks(range(len(cases)), ticks, fontsize=8, rotation=30 if title == "layers" else 0)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(f"{method} — {title}", fontsize=9)
        ax.set_ylabel("forward [ms]", fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    order = [p for p in (*PHASES, UNMARKED) if p in used] + sorted(used - set(PHASES) - {UNMARKED})
    fig.legend(handles=[Patch(facecolor=PHASE_COLORS.get(p, "0.85"), hatch="//" if p == UNMARKED else None,
                              edgecolor="white", label=p) for p in order],
               loc="outside lower center", ncol=min(len(order), 8), fontsize=8)
    fig.suptitle("Where the forward time goes: phases per method (linear scale, each panel its own)", fontsize=11)
    caption = ("Each bar is one case's forward median, split into the phases the method marks "
               "(convlab.phases; recorded on extra calls and scaled to the timed median); hatched grey is time "
               "no phase covers. An FFT method's bars stay level across kernel sizes because its transforms do "
               "not grow with k; im2col's product (the GEMM) grows like k².")
    return fig, caption


# --------------------------------------------------------------- roofline
def _itemsize(results):
    return np.dtype(results["suite"].get("dtype", "float32")).itemsize


def min_bytes(case, itemsize):
    """Least bytes a forward call must move: read ``x`` and ``w``, write ``y``, once each.

    ``y_shape`` is read from the case when present (schema 2), else derived
    from the direct FLOP count, ``2·|y|·C_in/g·|k|``.

    Examples
    --------
    >>> min_bytes({"x_shape": [1, 1, 8, 8], "w_shape": [1, 1, 3, 3], "y_shape": [1, 1, 6, 6]}, 4)
    436
    """
    x, w = math.prod(case["x_shape"]), math.prod(case["w_shape"])
    if case.get("y_shape"):
        y = math.prod(case["y_shape"])
    else:
        y = round(case["flops"] / (2 * math.prod(case["w_shape"][1:])))
    return (x + w + y) * itemsize


def intensity(case, itemsize):
    """Effective arithmetic intensity of a case: direct FLOPs / :func:`min_bytes` (FLOP per byte).

    Examples
    --------
    >>> case = {"x_shape": [1, 1, 8, 8], "w_shape": [1, 1, 3, 3], "y_shape": [1, 1, 6, 6], "flops": 648}
    >>> round(intensity(case, 4), 3)
    1.486
    """
    return case["flops"] / min_bytes(case, itemsize)


def _roofs(results):
    """``(peak FLOP/s, bandwidth B/s)`` of the timed dtype, ``None`` for a roof not measured."""
    dtype = results["suite"].get("dtype", "float32")
    peak = (results["machine"].get("gemm_gflops") or {}).get(dtype)
    bandwidth = results["machine"].get("copy_gbps")
    return (peak * 1e9 if peak else None), (bandwidth * 1e9 if bandwidth else None)


def _points(results):
    """``[(case, runner, intensity, achieved FLOP/s)]`` over every timed forward pass with a FLOP count."""
    data, itemsize = Data(results), _itemsize(results)
    points = []
    for case in data.cases:
        if not case.get("flops"):
            continue
        ai = intensity(case, itemsize)
        for runner in data.runners:
            m = data.get(case, runner)
            if m and forward_median(m):
                points.append((case, runner, ai, case["flops"] / forward_median(m)))
    return points


def figure_roofline(results):
    """Figure 11: every (case, runner) by effective arithmetic intensity against effective GFLOP/s."""
    data = Data(results)
    points = _points(results)
    if not points:
        return None
    peak, bandwidth = _roofs(results)
    fig = Figure(figsize=(9, 6.2), layout="constrained")
    ax = fig.subplots()
    for runner in data.runners:
        xs = [p[2] for p in points if p[1] == runner]
        ys = [p[3] / 1e9 for p in points if p[1] == runner]
        if xs:
            ax.plot(xs, ys, label=runner, alpha=0.8, **dict(style(runner, data.methods), linestyle="none"))
    lo, hi = min(p[2] for p in points) / 2, max(p[2] for p in points) * 2
    grid = np.geomspace(lo, hi, 200)
    if peak and bandwidth:
        ax.plot(grid, np.minimum(peak, grid * bandwidth) / 1e9, color="red", linewidth=2,
                label=f"roof: min(GEMM {peak / 1e9:.0f} GFLOP/s, I × copy {bandwidth / 1e9:.1f} GB/s)")
        ax.axvline(peak / bandwidth, color="red", linestyle=":", linewidth=1)
        ax.annotate(" ridge: peak / bandwidth", (peak / bandwidth, 0.02), xycoords=("data", "axes fraction"),
                    color="red", fontsize=8)
    elif peak:
        ax.axhline(peak / 1e9, color="red", linewidth=2, label=f"GEMM {peak / 1e9:.0f} GFLOP/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("effective arithmetic intensity I [direct FLOPs / bytes of x + w + y]")
    ax.set_ylabel("effective GFLOP/s [direct FLOPs / forward time]")
    ax.set_title("Roofline: every case and runner against the machine's GEMM peak and copy bandwidth", fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=5, fontsize=8)
    caption = ("Effective FLOPs are the direct algorithm's, and bytes are the least any method moves (x and w "
               "read once, y written once, in the timed dtype), so all runners of a case share one intensity. "
               "Points under the sloped roof are memory-bound cases, under the flat one compute-bound; FFT and "
               "Winograd do fewer real FLOPs than counted, so they can rise above the roof.")
    return fig, caption


def efficiency_rows(results):
    """Per convlab method: its achieved rate against its limit on the roofline, and its dominant phase.

    Returns
    -------
    header : list of str
    rows : list of list of str
        ``method, cases, compute-/memory-bound cases, median and best
        efficiency (effective FLOP/s over min(peak, I·bandwidth)), the phase
        taking the largest share of its forward time (median share)``.
    """
    data = Data(results)
    peak, bandwidth = _roofs(results)
    header = ["method", "cases", "compute / memory bound", "median efficiency", "best", "dominant phase (share)"]
    rows = []
    if not peak or not bandwidth:
        return header, rows
    for method in data.methods:
        points = [p for p in _points(results) if p[1] == method]
        if not points:
            continue
        limits = [min(peak, ai * bandwidth) for _, _, ai, _ in points]
        eff = [achieved / limit for (_, _, _, achieved), limit in zip(points, limits)]
        compute = sum(limit == peak for limit in limits)
        shares = {}
        for case, _, _, _ in points:
            stack = [(n, s) for n, s in phase_stack(data.get(case, method)) if n != UNMARKED]
            total = forward_median(data.get(case, method))
            if stack:
                name, seconds = max(stack, key=lambda item: item[1])
                shares.setdefault(name, []).append(seconds / total)
        if shares:
            name = max(shares, key=lambda n: len(shares[n]))
            dominant = f"{name} ({100 * np.median(shares[name]):.0f}%, on {len(shares[name])} cases)"
        else:
            dominant = "no phases marked"
        rows.append([method, str(len(points)), f"{compute} / {len(points) - compute}", f"{100 * np.median(eff):.1f}%",
                     f"{100 * max(eff):.1f}%", dominant])
    return header, rows


def efficiency_html(results):
    """The efficiency table as an HTML section (empty string when the roofs were not measured)."""
    header, rows = efficiency_rows(results)
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return ("<h2>Efficiency against each method's limit</h2><p>Achieved effective FLOP/s over the roofline's "
            "attainable rate at the case's intensity, min(GEMM peak, I × copy bandwidth) (figure 11); "
            "above 100% means the method does fewer FLOPs than the direct algorithm. The dominant phase is the "
            "one the method spends most forward time in, where it marks phases.</p>"
            f"<table><tr>{head}</tr>{body}</table>")


# --------------------------------------------------------------- crossover map
def _map_axes(cells):
    """``(row key, row label)``: the grid's second axis, channels or input size, whichever varies."""
    if len({c["channels"] for c in cells}) > 1:
        return "channels", "channels C_in = C_out"
    return "size", "input size n (per spatial dim)"


def _short(name):
    return {"winograd": "wino", "fft_tiled": "fft_t", "toeplitz": "toep", "im2col": "im2c"}.get(name, name[:5])


def figure_map(results):
    """Figure 12: per crossover map, the measured winner per cell beside the cost model's pick."""
    data = Data(results)
    maps = map_cells(results)
    if not maps:
        return None
    fig = Figure(figsize=(10, 3.6 * len(maps) + 0.6), layout="constrained")
    axes = fig.subplots(len(maps), 2, squeeze=False)
    colors = {name: style(name, data.methods)["color"] for name in data.methods}
    order = list(data.methods)
    cmap = ListedColormap([colors[m] for m in order])
    for (name, cells), row in zip(maps.items(), axes):
        key, label = _map_axes(cells)
        kernels = sorted({c["kernel"] for c in cells})
        ys = sorted({c[key] for c in cells})
        agree = sum(c["agree"] for c in cells)
        for ax, which in zip(row, ("measured", "predicted")):
            grid = np.full((len(ys), len(kernels)), np.nan)
            for c in cells:
                if c[which] in order:
                    grid[ys.index(c[key]), kernels.index(c["kernel"])] = order.index(c[which])
            ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-0.5, vmax=len(order) - 0.5, origin="lower",
                      aspect="auto", alpha=0.85)
            for c in cells:
                i, j = ys.index(c[key]), kernels.index(c["kernel"])
                text = _short(c[which])
                if which == "measured" and len(c["tied"]) > 1:
                    text += "≈"  # another method wins in enough resamples: the winner is within the noise
                if which == "predicted" and not c["agree"]:
                    text = f"[{text}]"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black")
            ax.set_xticks(range(len(kernels)), [str(k) for k in kernels], fontsize=8)
            ax.set_yticks(range(len(ys)), [str(v) for v in ys], fontsize=8)
            ax.set_xlabel("kernel size k", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            title = ("measured fastest (≈: within the noise)" if which == "measured"
                     else f"cost model's pick ([ ]: wrong) — {agree}/{len(cells)} agree")
            ax.set_title(f"{name}: {title}", fontsize=9)
    used = sorted({c[w] for cells in maps.values() for c in cells for w in ("measured", "predicted")}
                  & set(order), key=order.index)
    fig.legend(handles=[Patch(facecolor=colors[m], alpha=0.85, label=f"{m} ({_short(m)})") for m in used],
               loc="outside lower center", ncol=min(len(used), 6), fontsize=8)
    fig.suptitle("Crossover map: which method wins where, measured and predicted", fontsize=11)
    caption = ("Each cell is one problem of the map (batch 1, 'same' padding): left, the fastest convlab method "
               "measured (≈ when another wins in at least 10% of bootstrap resamples of the rounds); right, what "
               "method='auto' picks from the cost models, in brackets where it differs from the measured winner.")
    return fig, caption


# slug -> (title, function), merged into the page's figures.
ANALYSIS_FIGURES = {
    "10_phases": ("Where the time goes: phases per method", figure_phases),
    "11_roofline": ("Roofline: intensity against throughput", figure_roofline),
    "12_crossover_map": ("Crossover map: measured and predicted winner", figure_map),
}
