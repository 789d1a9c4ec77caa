"""Figures drawn from a results dict (see ``schema.json``).

Each ``figure_*`` function takes the results and returns ``(Figure, caption)``,
or ``None`` when the suite has no cases for it. They use
:class:`matplotlib.figure.Figure` directly (no pyplot state). The drawing
helpers they call (:func:`plot_kernel_sweep`, :func:`crossover`, ...) take
plain arrays, so they can be checked on known data.
"""

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter

from ..algorithms import get_method
from ..algorithms import methods as registered_methods
from ..tolerances import TOLERANCES

__all__ = ["crossover", "family_best", "family_crossover", "fitted_slope", "plot_kernel_sweep", "method_family",
           "style", "FIGURES",
           "figure_kernel", "figure_input", "figure_layers", "figure_memory", "figure_accuracy",
           "figure_gflops", "figure_peers"]

FREQUENCY_PEERS = frozenset({"scipy.fftconvolve", "scipy.oaconvolve"})
PEER_STYLE = {"torch": ("black", "D"), "scipy.correlate2d": ("0.35", "s"),
              "scipy.fftconvolve": ("0.55", "^"), "scipy.oaconvolve": ("0.7", "v")}
MARKERS = "o^sDvP*Xh<>"


# --------------------------------------------------------------- data access
class Data:
    """Lookups over a results dict: cases by group, measurements by (case, runner)."""

    def __init__(self, results):
        self.results = results
        self.cases = results["cases"]
        self.by_key = {(m["case"], m["method"]): m for m in results["measurements"]}
        self.methods = list(results["suite"]["methods"])
        self.peers = list(results["suite"]["peers"])
        self.runners = self.methods + self.peers

    def group(self, group):
        """``{sweep name: [case, ...]}`` of one group, each sorted by size then kernel."""
        sweeps = {}
        for case in self.cases:
            if case["group"] == group:
                sweeps.setdefault(case["name"], []).append(case)
        return {k: sorted(v, key=lambda c: (c["x_shape"][2], c["w_shape"][2])) for k, v in sweeps.items()}

    def get(self, case, runner):
        m = self.by_key.get((case["id"], runner))
        return m if m is not None and m["status"] == "ok" else None

    def series(self, cases, runner, value, measured_only=True):
        """``(x index list, values)`` over ``cases`` where ``value(measurement)`` is not None.

        ``measured_only=False`` also reads records that were not timed (a
        method over the time budget still has its accuracy).
        """
        get = self.get if measured_only else (lambda case, name: self.by_key.get((case["id"], name)))
        points = [(i, value(m)) for i, m in ((i, get(c, runner)) for i, c in enumerate(cases)) if m]
        points = [(i, v) for i, v in points if v is not None]
        return [i for i, _ in points], [v for _, v in points]


def forward_median(m):
    return m["forward"]["median_s"] if m.get("forward") else None


def method_family(name):
    """The domain a runner computes in: a method's declared ``domain``; for peers, from :data:`FREQUENCY_PEERS`."""
    if name in FREQUENCY_PEERS:
        return "frequency"
    if name in registered_methods():
        return get_method(name).domain
    return "spatial"


def style(name, methods):
    """Line style of a runner: convlab methods in colour, solid; peers in grey or black, dashed."""
    if name in PEER_STYLE:
        color, marker = PEER_STYLE[name]
        return dict(color=color, marker=marker, linestyle="--", markerfacecolor="white")
    index = list(methods).index(name) if name in methods else len(methods)
    return dict(color=f"C{index % 10}", marker=MARKERS[index % len(MARKERS)], linestyle="-")


# --------------------------------------------------------------- analysis helpers
def crossover(x, y_a, y_b):
    """The ``x`` beyond which the order of curves ``a`` and ``b`` no longer changes, or ``None``.

    That is the last sign change of ``log(y_a / y_b)``, interpolated linearly
    in log-log coordinates between the two samples around it; taking the last
    one keeps a noisy early wiggle from hiding the real crossover. ``None``
    when one curve stays below the other over the whole range.

    Examples
    --------
    >>> crossover([1, 10], [1, 100], [10, 10])  # a ∝ x², b flat: equal at x = √10
    3.1622776601683795
    >>> round(crossover([1, 2, 4, 8], [1, 3, 1, 9], [2, 2, 2, 2]), 3)  # the last crossing, between 4 and 8
    4.978
    >>> crossover([1, 2], [1, 1], [2, 2]) is None
    True
    """
    x, y_a, y_b = (np.asarray(v, np.float64) for v in (x, y_a, y_b))
    d = np.log(y_a) - np.log(y_b)
    for i in range(len(d) - 2, -1, -1):
        if d[i] * d[i + 1] < 0 or (d[i + 1] == 0 and d[i] != 0):
            t = d[i] / (d[i] - d[i + 1])
            return float(np.exp(np.log(x[i]) + t * (np.log(x[i + 1]) - np.log(x[i]))))
    return None


def fitted_slope(x, y):
    """Least-squares slope of ``log y`` against ``log x`` (``nan`` with fewer than 2 points).

    Examples
    --------
    >>> round(fitted_slope([1, 2, 4], [3, 12, 48]), 6)
    2.0
    """
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def family_best(curves, names):
    """Pointwise fastest of the curves in ``names``: ``(seconds, winner names)``, ``nan``/``None`` where none ran.

    Every curve counts at every point where it has a finite time: a method
    that ran only some kernel sizes (Winograd runs only k = 3) still wins
    the points where it ran.

    Examples
    --------
    >>> nan = float("nan")
    >>> times, names = family_best({"direct": [1.0, 4.0, 9.0], "winograd": [nan, 2.0, nan]}, ["direct", "winograd"])
    >>> times.tolist(), names
    ([1.0, 2.0, 9.0], ['direct', 'winograd', 'direct'])
    """
    names = [n for n in names if n in curves]
    if not names:
        return None, []
    table = np.array([np.asarray(curves[n], np.float64) for n in names])
    table = np.where(np.isfinite(table), table, np.inf)
    best = table.min(axis=0)
    winners = [names[int(i)] if np.isfinite(b) else None for i, b in zip(table.argmin(axis=0), best)]
    return np.where(np.isfinite(best), best, np.nan), winners


def family_crossover(kernels, curves, methods):
    """Crossover kernel size of the best spatial against the best frequency-domain curve.

    The family is each runner's declared domain (:func:`method_family`), and
    at each kernel size the fastest of every runner of the family that ran
    there counts. Uses the convlab ``methods`` when both families are among
    them, else every curve; kernel sizes where one family has no time are
    left out.

    Examples
    --------
    Winograd (spatial, run only at k = 3) beats the FFT there, so the FFT
    overtakes only between k = 3 and k = 5:

    >>> nan = float("nan")
    >>> curves = {"direct": [0.05, 0.2, 0.5], "winograd": [nan, 0.15, nan], "fft": [0.16, 0.16, 0.16]}
    >>> 3 < family_crossover([1, 3, 5], curves, ["direct", "winograd", "fft"]) < 5
    True
    """
    kernels = np.asarray(kernels, np.float64)
    for pool in (list(methods), list(curves)):
        spatial, _ = family_best(curves, [n for n in pool if method_family(n) == "spatial"])
        frequency, _ = family_best(curves, [n for n in pool if method_family(n) == "frequency"])
        if spatial is None or frequency is None:
            continue
        both = np.isfinite(spatial) & np.isfinite(frequency)
        if both.any():
            return crossover(kernels[both], spatial[both], frequency[both])
    return None


def kernel_curves(data, cases):
    """``{runner: forward seconds per case}`` over a kernel sweep, ``nan`` where it did not run."""
    curves = {}
    for runner in data.runners:
        idx, times = data.series(cases, runner, forward_median)
        if times:
            curve = np.full(len(cases), np.nan)
            curve[idx] = times
            curves[runner] = curve
    return curves


def kernel_crossovers(results):
    """``{sweep name: crossover kernel size or None}`` for every kernel sweep of the results."""
    data = Data(results)
    return {name: family_crossover([c["w_shape"][2] for c in cases], kernel_curves(data, cases), data.methods)
            for name, cases in data.group("kernel").items()}


def plot_kernel_sweep(ax, kernels, curves, methods, ndim=2):
    """Draw time against kernel size and mark where spatial and frequency methods cross.

    Parameters
    ----------
    ax : matplotlib Axes
    kernels : sequence of int, shape ``(K,)``
    curves : dict of str -> sequence of float, shape ``(K,)``
        Seconds per runner (``nan`` where it did not run).
    methods : sequence of str
        The convlab methods among ``curves`` (the rest are peers).
    ndim : int
        Spatial dims, for the ``∝ k^d`` guide.

    Returns
    -------
    float or None
        The crossover kernel size of the best spatial against the best
        frequency method (convlab methods, else every runner), marked with a
        vertical line whose label starts with ``"crossover"``.
    """
    kernels = np.asarray(kernels, np.float64)
    for name, times in curves.items():
        times = np.asarray(times, np.float64)
        ok = np.isfinite(times)
        if ok.any():
            ax.plot(kernels[ok], times[ok], label=name, **style(name, methods))
    k_cross = family_crossover(kernels, curves, methods)
    if k_cross is not None:
        ax.axvline(k_cross, color="red", linestyle=":", linewidth=1.5, label=f"crossover k ≈ {k_cross:.1f}")
        ax.annotate(f" crossover\n k ≈ {k_cross:.1f}", (k_cross, 0.97), xycoords=("data", "axes fraction"),
                    va="top", color="red", fontsize=9)
    spatial_names = [n for n in methods if method_family(n) == "spatial" and n in curves
                     and np.isfinite(curves[n][0])]
    if spatial_names:
        t0 = curves[spatial_names[0]][0]
        ax.plot(kernels, t0 * (kernels / kernels[0]) ** ndim, color="0.6", linewidth=0.8, linestyle="-.",
                label=f"∝ k{'¹²³'[ndim - 1] if 1 <= ndim <= 3 else f'^{ndim}'} guide")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(kernels, [f"{k:g}" for k in kernels])
    ax.minorticks_off()
    ax.set_xlabel("kernel size k (per spatial dim)")
    ax.set_ylabel("forward time [s]")
    return k_cross


# --------------------------------------------------------------- figures
def _grid(count, width=4.5, height=3.5, ncols=2):
    """Panels of ``width × height`` inches; two columns make 9 inches, about 990 px at the saved 110 dpi, so
    a 900 px page shows the text at nearly its own size."""
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def _shared_legend(fig, axes, ncol=6, skip=()):
    """One legend below the panels, each label once (cheaper and easier to read than one per panel)."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith(tuple(skip)):
                seen.setdefault(label, handle)
    if not seen:  # nothing was drawn (every runner skipped): no legend rather than an empty one
        return
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=min(ncol, len(seen)), fontsize=8)


def _describe(case):
    x, w = case["x_shape"], case["w_shape"]
    return f"x {'×'.join(map(str, x))}, C_out {w[0]}"


def figure_kernel(results):
    """Figure 1: time against kernel size, log-log, crossover marked."""
    data = Data(results)
    sweeps = data.group("kernel")
    if not sweeps:
        return None
    fig, axes = _grid(len(sweeps))
    found = []
    for ax, (name, cases) in zip(axes, sweeps.items()):
        kernels = [c["w_shape"][2] for c in cases]
        curves = kernel_curves(data, cases)
        k_cross = plot_kernel_sweep(ax, kernels, curves, data.methods, ndim=cases[0]["ndim"])
        found.append(f"{name}: " + (f"k ≈ {k_cross:.1f}" if k_cross else "no crossover in range"))
        ax.set_title(f"{name}: {_describe(cases[0])}", fontsize=10)
    _shared_legend(fig, axes, skip=("crossover",))
    fig.suptitle("Forward time against kernel size (fixed input)")
    caption = ("Spatial methods grow like k^d, FFT methods stay nearly flat; the red line marks where the "
               "fastest frequency-domain method overtakes the fastest spatial one (" + "; ".join(found) + ").")
    return fig, caption


def figure_input(results):
    """Figure 2: time against input size for each kernel, with fitted log-log slopes."""
    data = Data(results)
    sweeps = data.group("input")
    if not sweeps:
        return None
    fig, axes = _grid(len(sweeps))
    for ax, (name, cases) in zip(axes, sweeps.items()):
        pixels = np.array([int(np.prod(c["x_shape"][2:])) for c in cases], np.float64)
        for runner in data.runners:
            idx, times = data.series(cases, runner, forward_median)
            if times:
                slope = fitted_slope(pixels[idx], times)
                ax.plot(pixels[idx], times, label=f"{runner}  slope {slope:.2f}", **style(runner, data.methods))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("input size n^d [elements per channel]")
        ax.set_ylabel("forward time [s]")
        # two lines: side by side on a 9-inch figure, one line per panel ran into its neighbour
        ax.set_title(f"{name}: kernel {cases[0]['w_shape'][2]}\n{_describe(cases[0])} at the smallest n",
                     fontsize=10)
        # below the panel: inside, it covered the small-n points
        ax.legend(fontsize=7, ncol=2, title="fitted log-log slope", title_fontsize=7, loc="upper center",
                  bbox_to_anchor=(0.5, -0.3))
    fig.suptitle("Forward time against input size")
    caption = ("Slopes are fitted in log-log: O(n·k^d) spatial methods have slope 1 in the number of input "
               "elements n^d, O(n log n) FFT methods slightly above 1; the kernel size sets the offset.")
    return fig, caption


def figure_layers(results):
    """Figure 3: forward and backward time per method, one panel per layer case."""
    data = Data(results)
    cases = [c for cases in data.group("layer").values() for c in cases]
    if not cases:
        return None
    fig, axes = _grid(len(cases), width=4.5, height=3.6)
    names = [_short(runner) for runner in data.runners]
    for ax, case in zip(axes, cases):
        positions = np.arange(len(data.runners))
        for offset, phase, hatch in ((-0.2, "forward", None), (0.2, "backward", "//")):
            for pos, runner in zip(positions, data.runners):
                m = data.get(case, runner)
                if m and m.get(phase):
                    s = m[phase]
                    ax.bar(pos + offset, s["median_s"], width=0.4, color=style(runner, data.methods)["color"],
                           hatch=hatch, edgecolor="white" if hatch else None,
                           yerr=[[s["median_s"] - s["q1_s"]], [s["q3_s"] - s["median_s"]]], capsize=2)
        for pos, runner in zip(positions, data.runners):
            m = data.by_key.get((case["id"], runner))
            if m is None or m["status"] != "ok":
                ax.text(pos, 0.02, (m or {}).get("status", "absent"), rotation=90, ha="center", va="bottom",
                        fontsize=7, color="0.4", transform=ax.get_xaxis_transform(), clip_on=True)
            elif m.get("backward") is None:
                ax.text(pos + 0.2, 0.02, "no backward", rotation=90, ha="center", va="bottom", fontsize=6,
                        color="0.4", transform=ax.get_xaxis_transform(), clip_on=True)
        ax.set_yscale("log")
        # minor ticks unlabelled: their "6×10⁻²"-style labels crowded the axis and were clipped at the edge
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(positions, names, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_ylabel("time per call [s]")
        ax.set_title(case["label"], fontsize=9)
    fig.legend(handles=[Patch(facecolor="0.45", label="forward"),
                        Patch(facecolor="0.45", hatch="//", edgecolor="white", label="backward (dx and dw)")],
               loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle("Forward and backward time per method\n(median; error bars: interquartile range)", fontsize=11)
    caption = ("Backward computes both dx and dw, so it costs about twice the forward pass for spatial "
               "methods; bars absent are labelled with the reason recorded in results.json.")
    return fig, caption


def figure_memory(results):
    """Figure 4: peak extra memory per method against input size (forward and backward)."""
    data = Data(results)
    sweeps = data.group("input")
    if not sweeps:
        return None
    fig, axes = _grid(2 * len(sweeps))
    for row, (name, cases) in enumerate(sweeps.items()):
        pixels = np.array([int(np.prod(c["x_shape"][2:])) for c in cases], np.float64)
        itemsize = 4 if results["suite"]["dtype"] == "float32" else 8
        x_bytes = np.array([int(np.prod(c["x_shape"])) * itemsize for c in cases], np.float64)
        for col, phase in enumerate(("forward", "backward")):
            ax = axes[2 * row + col]
            for runner in data.runners:
                idx, mem = data.series(cases, runner, lambda m, phase=phase: m["memory"][f"{phase}_bytes"])
                if mem:
                    ax.plot(pixels[idx], np.maximum(mem, 1) / 2**20, label=runner, **style(runner, data.methods))
            ax.plot(pixels, x_bytes / 2**20, color="0.5", linestyle=":", label="size of x")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("input size n^d [elements per channel]")
            ax.set_ylabel("peak extra memory [MiB]")
            ax.set_title(f"{phase}, {name}: kernel {cases[0]['w_shape'][2]}", fontsize=10)
    _shared_legend(fig, axes)
    fig.suptitle("Peak memory allocated during one call (tracemalloc, outputs and plan caches included)")
    caption = ("Memory traced while one call runs, above what was allocated before it: returned arrays, "
               "scratch space and anything cached in the plan on first use; torch is not traced.")
    return fig, caption


def figure_accuracy(results):
    """Figure 5: relative error of y per method against input size, one row per dtype."""
    data = Data(results)
    sweeps = data.group("input")
    dtypes = list(results["suite"]["accuracy_dtypes"])
    if not sweeps or not dtypes:
        return None
    fig, axes = _grid(len(dtypes) * len(sweeps), ncols=len(sweeps))
    for row, dtype in enumerate(dtypes):
        for col, (name, cases) in enumerate(sweeps.items()):
            ax = axes[row * len(sweeps) + col]
            pixels = np.array([int(np.prod(c["x_shape"][2:])) for c in cases], np.float64)
            floor = np.finfo(dtype).eps / 100  # exact results are drawn here
            for runner in data.runners:
                idx, err = data.series(cases, runner, lambda m, dtype=dtype: m["accuracy"].get(dtype, {}).get("y"),
                                       measured_only=False)
                if err:
                    ax.plot(pixels[idx], np.maximum(err, floor), label=runner, **style(runner, data.methods))
            tol = TOLERANCES[np.dtype(dtype)]
            ax.axhline(tol, color="red", linestyle="--", linewidth=1, label="test tolerance")
            ax.axhline(floor, color="0.6", linestyle=":", linewidth=1, label="exact (0) drawn at eps/100")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(floor / 3, tol * 5)
            ax.set_xlabel("input size n^d [elements per channel]")
            ax.set_ylabel("max |y - y_ref| / max |y_ref|")
            ax.set_title(f"{dtype}, {name}: kernel {cases[0]['w_shape'][2]}", fontsize=10)
    _shared_legend(fig, axes)
    fig.suptitle("Forward error against a float64 direct result on the same inputs")
    caption = ("Normwise relative error of y against a float64 direct result on the same inputs; "
               "the red line is the tolerance the test suite enforces.")
    return fig, caption


def figure_gflops(results):
    """Figure 8: achieved GFLOP/s (direct-convolution FLOPs / time) against the machine's GEMM rate."""
    data = Data(results)
    dtype = results["suite"]["dtype"]
    fig = Figure(figsize=(9, 5.2), layout="constrained")
    ax = fig.subplots()
    flops = np.array([c["flops"] for c in data.cases], np.float64)
    for runner in data.runners:
        idx, times = data.series(data.cases, runner, forward_median)
        if times:
            s = dict(style(runner, data.methods), linestyle="none")
            ax.plot(flops[idx], flops[idx] / np.asarray(times) / 1e9, label=runner, alpha=0.8, **s)
    peak = results["machine"].get("gemm_gflops", {}).get(dtype)
    if peak:
        ax.axhline(peak, color="red", linewidth=1.5, label=f"numpy {dtype} matmul 1024³: {peak:.0f} GFLOP/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("forward FLOPs of the direct algorithm (2 per multiply-add)")
    ax.set_ylabel("effective GFLOP/s (direct FLOPs / time)")
    ax.set_title(f"Achieved throughput per method, every case ({dtype})")
    fig.legend(loc="outside lower center", fontsize=8, ncol=4)  # outside: inside it covered the points
    caption = ("Effective rate counts the FLOPs a direct convolution would do; the red line is the measured "
               "matrix-multiply rate, so spatial methods sit below it and only FFT methods can cross it.")
    return fig, caption


def _fastest_convlab(data, case):
    """``(method, seconds)`` of the fastest convlab method on ``case``, or ``None``."""
    times = [(forward_median(m), name) for name in data.methods if (m := data.get(case, name))]
    return min(times)[::-1] if times else None


def _short(runner):
    """A runner's name for a crowded axis: ``scipy.fftconvolve`` -> ``fftconvolve``."""
    return runner.removeprefix("scipy.")


def figure_peers(results):
    """Figure 9: each peer's forward time relative to the fastest convlab method, per case.

    Cases run down the y axis with their labels written horizontally, so the
    figure stays 9 inches wide (legible on a 900 px page) however many
    cases there are.
    """
    data = Data(results)
    cases = [c for c in data.cases if _fastest_convlab(data, c) and any(data.get(c, p) for p in data.peers)]
    if not cases:
        return None
    fig = Figure(figsize=(9, 1.6 + 0.26 * len(cases)), layout="constrained")
    ax = fig.subplots()
    best = [_fastest_convlab(data, c) for c in cases]
    for j, peer in enumerate(data.peers):
        idx, times = data.series(cases, peer, forward_median)
        if times:
            ratio = np.asarray(times) / np.array([best[i][1] for i in idx])
            ax.plot(ratio, np.asarray(idx) + 0.15 * (j - (len(data.peers) - 1) / 2), label=peer,
                    **dict(style(peer, data.methods), linestyle="none", markersize=6))
    ax.axvline(1.0, color="C0", linewidth=1.5, label="fastest convlab method (in brackets)")
    ax.set_yticks(np.arange(len(cases)), [f"{c['label']}  [{b[0]}]" for c, b in zip(cases, best)], fontsize=8)
    ax.set_ylim(len(cases) - 0.5, -0.5)
    ax.set_xscale("log")
    ax.set_xlabel("peer forward time / fastest convlab forward time (right of 1: convlab faster)")
    ax.grid(axis="x", which="major", color="0.9")
    ax.set_title("Peers against convlab", fontsize=11)
    fig.legend(loc="outside lower center", fontsize=8, ncol=3)
    caption = ("Each peer's forward time divided by the fastest convlab method's on the same case; scipy peers "
               "are single-channel only and receive the already padded input; torch uses numpy's BLAS thread count.")
    return fig, caption


# slug -> (title, function); theory figures (6, 7) come from :mod:`.theory`.
FIGURES = {
    "1_time_vs_kernel": ("Time against kernel size", figure_kernel),
    "2_time_vs_input": ("Time against input size", figure_input),
    "3_forward_backward": ("Forward and backward per method", figure_layers),
    "4_memory": ("Peak memory against input size", figure_memory),
    "5_accuracy": ("Accuracy against size", figure_accuracy),
    "8_gflops": ("Achieved GFLOP/s against GEMM", figure_gflops),
    "9_peers": ("Peers against convlab", figure_peers),
}
