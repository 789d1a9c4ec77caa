"""``convlab report --suite papers``: published claims about convolution algorithms, re-run on this machine.

Each :class:`Claim` names a paper, quotes the figure it reports (with the
table or section it comes from), lists the layer configurations behind it,
and says how to compute the same quantity from this machine's measurements.
:func:`papers_suite` turns the layers into a suite (scaled down so that it
runs in minutes on two cores; :data:`SCALES` says how), and
:func:`evaluate` turns a finished run into the table
"claim | paper's figure | measured here | agrees?" that the page shows and
``results.json`` stores under ``papers``.

Most of the papers timed a GPU or another CPU, so what is compared is a
*ratio* between two algorithms measured on the same machine (a speed-up),
never a time; the table says so on each such row. Scaling a layer down
(fewer images and channels, smaller images) changes how much a transform's
cost is amortised, so a speed-up measured here is expected to agree in
direction, not in size.

>>> suite = papers_suite("tiny")
>>> suite.name, {c.group for c in suite.cases}
('papers-tiny', {'paper'})
"""

import dataclasses
import html
import math
import statistics

import numpy as np

from ..algorithms.winograd import tile_size
from .figures import method_family
from .suites import BUILT_IN, Case, Suite

__all__ = ["Layer", "Claim", "LAYERS", "CLAIMS", "SCALES", "papers_suite", "is_papers_run", "evaluate",
           "winograd_multiply_reduction", "papers_html", "papers_markdown"]


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution layer as a paper ran it: ``x`` ``(N, C_in, H, W)``, ``w`` ``(C_out, C_in, k, k)``."""

    name: str
    x_shape: tuple
    w_shape: tuple
    padding: int = 0
    stride: int = 1

    def scaled(self, scale):
        """The :class:`~convlab.report.suites.Case` of this layer at ``scale`` (a key of :data:`SCALES`)."""
        batch, channel_div, size_div, big, min_channels = SCALES[scale]["factors"]
        n, c, *spatial = self.x_shape
        c_out, _, *kernel = self.w_shape

        def fewer(channels):  # RGB inputs stay RGB: they are what makes a first layer special
            return channels if channels <= 3 else max(min_channels, channels // channel_div)

        # single-channel problems (scipy's) are small already: they run as published
        sizes = [max(k + 2, s // size_div) if s > big and c > 1 else s for s, k in zip(spatial, kernel)]
        return Case("paper", self.name, (min(n, batch), fewer(c), *sizes), (fewer(c_out), fewer(c), *kernel),
                    stride=self.stride, padding=self.padding)


def _layers(prefix, batch, rows):
    return {f"{prefix}:{name}": Layer(f"{prefix}:{name}", (batch, c, n, n), (c_out, c, k, k), padding=p)
            for name, c, c_out, n, k, p in rows}


# Layer shapes of convnet-benchmarks' Caffe prototxts (soumith/convnet-benchmarks, caffe/imagenet_winners),
# the networks NNPACK's README table was timed on.
LAYERS = {
    **_layers("AlexNet", 128, [("conv2", 64, 192, 27, 5, 2), ("conv3", 192, 384, 13, 3, 1),
                               ("conv4", 384, 256, 13, 3, 1), ("conv5", 256, 256, 13, 3, 1)]),
    **_layers("VGG-A", 64, [("conv1", 3, 64, 224, 3, 1), ("conv2", 64, 128, 112, 3, 1),
                            ("conv3.1", 128, 256, 56, 3, 1), ("conv3.2", 256, 256, 56, 3, 1),
                            ("conv4.1", 256, 512, 28, 3, 1), ("conv4.2", 512, 512, 28, 3, 1),
                            ("conv5", 512, 512, 14, 3, 1)]),
    **_layers("OverFeat", 128, [("conv2", 96, 256, 28, 5, 0), ("conv3", 256, 512, 12, 3, 1),
                                ("conv4", 512, 1024, 12, 3, 1), ("conv5", 1024, 1024, 12, 3, 1)]),
    # Mathieu et al.'s method as reproduced by Dieleman (2014), 'valid' convolutions (Theano shapes).
    "FFT-1": Layer("FFT-1", (64, 3, 96, 96), (128, 3, 16, 16)),
    "FFT-2": Layer("FFT-2", (64, 128, 32, 32), (64, 128, 8, 8)),
    "FFT-3": Layer("FFT-3", (128, 32, 54, 54), (64, 32, 6, 6)),
    "FFT-4": Layer("FFT-4", (128, 128, 16, 16), (128, 128, 8, 8)),
    "FFT-5": Layer("FFT-5", (128, 1024, 32, 32), (128, 1024, 4, 4)),
    # scipy's direct/FFT boundary: one image, one channel, 'valid', kernel swept.
    **{f"scipy:{n}²/k{k}": Layer(f"scipy:{n}²/k{k}", (1, 1, n, n), (1, 1, k, k))
       for n, ks in ((32, (1, 2, 3, 5, 9)), (128, (1, 2, 3, 5, 9, 17))) for k in ks},
}

SCALES = {
    "default": {"factors": (1, 4, 2, 64, 2),
                "text": "one image instead of a batch of 64-128; channels divided by 4 (RGB and single-channel "
                        "inputs kept); images larger than 64² halved (VGG-A's 224² runs at 112², 112² at 56²); "
                        "kernels, padding and stride as published"},
    "tiny": {"factors": (1, 32, 4, 16, 2),
             "text": "one image; channels divided by 32; images larger than 16² divided by 4 "
                     "(a seconds-long smoke run, not a measurement)"},
}
"""How the published layers are scaled down: ``factors`` are (largest batch, channel divisor, image-size
divisor, the size above which images are divided, fewest channels)."""

_TINY_LAYERS = ("VGG-A:conv3.1", "AlexNet:conv3", "FFT-2", "scipy:32²/k1", "scipy:32²/k9")


@dataclasses.dataclass(frozen=True)
class Claim:
    """A published claim: what it says, the figure quoted, where, and the layers it was measured on."""

    id: str
    paper: str
    reference: str
    where: str
    claim: str
    figure: str
    layers: tuple
    machine: str


CLAIMS = (
    Claim("mathieu2013", "Mathieu, Henaff & LeCun 2013",
          "M. Mathieu, M. Henaff, Y. LeCun. Fast Training of Convolutional Networks through FFTs. "
          "arXiv:1312.5851 (ICLR 2014). Layer shapes and per-layer GPU speed-ups from S. Dieleman's "
          "reproduction of the method in Theano (\"Even faster convolutions in Theano using FFTs\", 2014, "
          "table of five layers, FFT against cuda-convnet).",
          "abstract; Dieleman 2014, results table",
          "Training a convolution layer through FFTs (forward and backward, transforms reused across the "
          "batch and the filters) is faster than direct convolution.",
          "\"improvements of over an order of magnitude\" (abstract); 1.34×, 3.23×, 2.06×, 2.34×, 3.59× "
          "over cuda-convnet on the five layers (GeForce GTX 680)",
          ("FFT-1", "FFT-2", "FFT-3", "FFT-4", "FFT-5"), "GPU: ratios compared, not times"),
    Claim("lavin2015-multiplies", "Lavin & Gray 2015",
          "A. Lavin, S. Gray. Fast Algorithms for Convolutional Neural Networks. CVPR 2016, arXiv:1509.09308.",
          "section 4 (F(2×2,3×3): 16 multiplies instead of 36; F(4×4,3×3): 36 instead of 144)",
          "Winograd's minimal filtering cuts the multiplications of a 3×3 layer by 2.25× with F(2×2,3×3) "
          "and by 4× with F(4×4,3×3).",
          "2.25× and 4×",
          tuple(name for name in LAYERS if name.startswith("VGG-A")), "arithmetic: machine-independent"),
    Claim("lavin2015-speed", "Lavin & Gray 2015",
          "A. Lavin, S. Gray. Fast Algorithms for Convolutional Neural Networks. CVPR 2016, arXiv:1509.09308.",
          "abstract; section 5 (VGG network on a Maxwell GPU)",
          "On VGG's 3×3 layers the Winograd algorithm is faster than the GEMM-based (im2col) convolution, "
          "by at most its arithmetic reduction.",
          "\"can reduce the arithmetic complexity of a convnet layer by up to a factor of 4 compared to "
          "direct convolution\" (abstract)",
          tuple(name for name in LAYERS if name.startswith("VGG-A")), "GPU: ratios compared, not times"),
    Claim("nnpack", "NNPACK README",
          "M. Dukhan et al. NNPACK, README \"Features\" table: forward propagation on an Intel Core i7 6700K "
          "against BVLC Caffe (im2col + sgemm), March 2016 (github.com/Maratyszcza/NNPACK).",
          "README, Features table",
          "FFT- and Winograd-based convolution are faster than im2col + GEMM on most AlexNet, VGG-A and "
          "OverFeat layers.",
          "best NNPACK algorithm faster than Caffe's im2col on 14 of 15 layers (all but VGG-A conv1)",
          tuple(name for name in LAYERS if name.split(":")[0] in ("AlexNet", "VGG-A", "OverFeat")),
          "another CPU (i7 6700K): ratios compared, not times"),
    Claim("zlateski2019", "Zlateski, Jia, Li & Durand 2019",
          "A. Zlateski, Z. Jia, K. Li, F. Durand. The anatomy of efficient FFT and Winograd convolutions on "
          "modern CPUs. ICS 2019, doi:10.1145/3330345.3330382 (arXiv:1809.07851).",
          "abstract",
          "On modern CPUs, FFT-based convolution generally outperforms Winograd-based convolution on the "
          "layers of VGG and AlexNet.",
          "\"the FFT-based implementations generally outperform the Winograd-based approach\" (abstract)",
          tuple(name for name in LAYERS if name.split(":")[0] in ("AlexNet", "VGG-A")),
          "other CPUs (Xeon, Xeon Phi): ratios compared, not times"),
    Claim("scipy", "scipy.signal.choose_conv_method",
          "SciPy, scipy.signal.choose_conv_method (measure=False): picks 'direct' or 'fft' from the array "
          "sizes with constants fitted on the SciPy developers' machines.",
          "scipy.signal.choose_conv_method, run here on the same shapes",
          "scipy's size-based rule picks the faster of direct and FFT convolution.",
          "its choice per problem (run here)",
          tuple(name for name in LAYERS if name.startswith("scipy:")), "this machine: the choice is compared"),
)


PAPER_METHODS = ("direct", "im2col", "winograd", "fft", "fft_tiled")
"""The methods the claims compare; ``toeplitz`` is left out (no claim is about it, and building its sparse
matrix for a layer takes seconds). ``--methods`` still overrides."""


def papers_suite(scale="default"):
    """The suite of every layer of :data:`CLAIMS` at ``scale`` (a key of :data:`SCALES`).

    ``"default"`` takes under 10 minutes on two cores; ``"tiny"`` a few
    layers at a toy size, for tests.

    Examples
    --------
    >>> [c.id for c in papers_suite("tiny").cases][:2]
    ['paper/VGG-A:conv3.1/n14/k3', 'paper/AlexNet:conv3/n13/k3']
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, but got {scale!r}")
    names = _TINY_LAYERS if scale == "tiny" else tuple(LAYERS)
    return Suite("papers" if scale == "default" else f"papers-{scale}",
                 tuple(LAYERS[name].scaled(scale) for name in names),
                 description="Published claims about convolution algorithms, re-run on this machine. Layers "
                             f"scaled down: {SCALES[scale]['text']}.",
                 repeats=3, warmup=1, min_sample_s=0.002, time_budget_s=1.0, accuracy_dtypes=("float32",),
                 methods=PAPER_METHODS)


BUILT_IN["papers"] = papers_suite


def is_papers_run(results):
    """Whether ``results`` come from a papers suite (its cases are of group ``"paper"``)."""
    return any(case.get("group") == "paper" for case in results.get("cases", ()))


# --------------------------------------------------------------- arithmetic
def winograd_multiply_reduction(x_shape, w_shape, m=None, padding=0):
    """Direct multiplications over Winograd's transformed-domain ones for a stride-1 layer.

    Winograd ``F(m×m, r×r)`` multiplies ``(m + r - 1)²`` transformed points
    per tile, channel pair and image, with ``ceil(out / m)`` tiles per axis
    (the tiling :mod:`convlab.algorithms.winograd` runs); direct
    convolution multiplies ``out² · r²``. ``m=None`` uses the tile the
    method picks (:func:`convlab.algorithms.winograd.tile_size`).

    Examples
    --------
    >>> winograd_multiply_reduction((1, 8, 56, 56), (8, 8, 3, 3), m=2, padding=1)
    2.25
    >>> winograd_multiply_reduction((1, 8, 56, 56), (8, 8, 3, 3), m=4, padding=1)
    4.0
    """
    spatial, kernel = x_shape[2:], w_shape[2:]
    out = [s + 2 * padding - k + 1 for s, k in zip(spatial, kernel)]
    tiles = [m or tile_size(o, k, len(kernel)) for o, k in zip(out, kernel)]
    direct = math.prod(o * k for o, k in zip(out, kernel))
    transformed = math.prod(math.ceil(o / t) * (t + k - 1) for o, t, k in zip(out, tiles, kernel))
    return direct / transformed


# --------------------------------------------------------------- evaluation
class _Times:
    """Median forward (and forward + backward) seconds per (layer name, runner) of a papers run."""

    def __init__(self, results):
        self.cases = {c["name"]: c for c in results["cases"] if c["group"] == "paper"}
        ids = {c["id"]: c["name"] for c in self.cases.values()}
        self.forward, self.training = {}, {}
        for m in results["measurements"]:
            if m["case"] in ids and m["status"] == "ok" and m.get("forward"):
                key = (ids[m["case"]], m["method"])
                self.forward[key] = m["forward"]["median_s"]
                if m.get("backward"):
                    self.training[key] = m["forward"]["median_s"] + m["backward"]["median_s"]
        self.methods = list(results["suite"]["methods"])

    def best(self, layer, names, training=False):
        """``(name, seconds)`` of the fastest of ``names`` on ``layer``, or ``None``."""
        table = self.training if training else self.forward
        found = [(table[(layer, n)], n) for n in names if (layer, n) in table]
        return min(found)[::-1] if found else None

    def family(self, domain):
        return [n for n in self.methods if method_family(n) == domain]


def _verdict(agreeing, total, yes=0.8, partly=0.5):
    if total == 0:
        return "not measured"
    share = agreeing / total
    return "yes" if share >= yes else "partly" if share >= partly else "no"


def _ratio_text(values):
    if not values:
        return "-"
    return (f"{statistics.median(values):.2f}× median ({min(values):.2f}–{max(values):.2f}×)" if len(values) > 1
            else f"{values[0]:.2f}×")


def _row(layer, paper, measured, agrees):
    return {"layer": layer, "paper": paper, "measured": measured, "agrees": agrees}


def _mathieu(claim, t):
    rows, ratios = [], []
    published = dict(zip(claim.layers, (1.34, 3.23, 2.06, 2.34, 3.59)))
    for layer in claim.layers:
        direct = t.best(layer, ["direct"], training=True)
        fft = t.best(layer, t.family("frequency"), training=True)
        if direct and fft:
            ratio = direct[1] / fft[1]
            ratios.append(ratio)
            rows.append(_row(layer, f"{published[layer]:.2f}×", f"{ratio:.2f}× ({fft[0]})",
                             "yes" if ratio > 1 else "no"))
        elif layer in t.cases:
            rows.append(_row(layer, f"{published[layer]:.2f}×", "not timed (over the time budget or unsupported)",
                             "not measured"))
    faster = sum(r > 1 for r in ratios)
    measured = (f"FFT faster than direct (forward + backward) on {faster} of {len(ratios)} layers; speed-up "
                f"{_ratio_text(ratios)}")
    return measured, _verdict(faster, len(ratios)), rows


def _lavin_multiplies(claim, t):
    rows, twos, fours, chosen = [], [], [], []
    for layer in claim.layers:
        case = t.cases.get(layer)
        if case is None:
            continue
        pad = case["padding"] if isinstance(case["padding"], int) else 0
        x, w = case["x_shape"], case["w_shape"]
        two, four, own = (winograd_multiply_reduction(x, w, m, pad) for m in (2, 4, None))
        twos.append(two)
        fours.append(four)
        chosen.append(own)
        rows.append(_row(layer, "2.25× / 4×", f"{two:.2f}× / {four:.2f}× (convlab's tile: {own:.2f}×)",
                         "yes" if abs(two / 2.25 - 1) < 0.15 and abs(four / 4 - 1) < 0.15 else "no"))
    agreeing = sum(r["agrees"] == "yes" for r in rows)
    measured = (f"F(2×2,3×3) {_ratio_text(twos)}, F(4×4,3×3) {_ratio_text(fours)} fewer multiplies than direct, "
                f"counted from the tiles on the layers run (tiles cropped at the image edge cost the small "
                f"images); convlab's own tile choice {_ratio_text(chosen)}")
    return measured, _verdict(agreeing, len(rows)), rows


def _lavin_speed(claim, t):
    rows, ratios = [], []
    for layer in claim.layers:
        wino, im2col = t.best(layer, ["winograd"]), t.best(layer, ["im2col"])
        direct = t.best(layer, ["direct"])
        if wino and im2col:
            ratio = im2col[1] / wino[1]
            ratios.append(ratio)
            extra = f"; over direct {direct[1] / wino[1]:.2f}×" if direct else ""
            rows.append(_row(layer, "≤ 4×", f"{ratio:.2f}× over im2col{extra}", "yes" if 1 < ratio <= 4.5 else "no"))
    agreeing = sum(r["agrees"] == "yes" for r in rows)
    measured = f"winograd faster than im2col on {sum(r > 1 for r in ratios)} of {len(ratios)} VGG-A layers; " \
               f"speed-up {_ratio_text(ratios)}"
    return measured, _verdict(agreeing, len(rows)), rows


NNPACK_MS = {  # layer: (Caffe im2col+sgemm, FFT 8x8, FFT 16x16, Winograd F(6x6,3x3)) in ms; None: N/A
    "AlexNet:conv2": (315, 129, 86, None), "AlexNet:conv3": (182, 87, 44, 70), "AlexNet:conv4": (264, 109, 56, 89),
    "AlexNet:conv5": (177, 77, 40, 64), "VGG-A:conv1": (255, 303, 260, 404), "VGG-A:conv2": (902, 369, 267, 372),
    "VGG-A:conv3.1": (566, 308, 185, 279), "VGG-A:conv3.2": (1091, 517, 309, 463),
    "VGG-A:conv4.1": (432, 228, 149, 188), "VGG-A:conv4.2": (842, 402, 264, 329), "VGG-A:conv5": (292, 141, 83, 114),
    "OverFeat:conv2": (424, 158, 73, None), "OverFeat:conv3": (250, 69, 74, 54), "OverFeat:conv4": (927, 256, 272, 173),
    "OverFeat:conv5": (1832, 466, 524, 315),
}
"""NNPACK's README table, forward propagation per layer (Intel Core i7 6700K)."""

_NNPACK_NAMES = ("FFT-8x8", "FFT-16x16", "Winograd F(6x6,3x3)")


def _nnpack(claim, t):
    rows, ratios = [], []
    for layer in claim.layers:
        caffe, *fast = NNPACK_MS[layer]
        best_ms, best_name = min((ms, name) for ms, name in zip(fast, _NNPACK_NAMES) if ms is not None)
        paper = caffe / best_ms
        im2col = t.best(layer, ["im2col"])
        mine = t.best(layer, t.family("frequency") + ["winograd"])
        if im2col and mine:
            ratio = im2col[1] / mine[1]
            ratios.append(ratio)
            rows.append(_row(layer, f"{paper:.2f}× ({best_name})", f"{ratio:.2f}× ({mine[0]})",
                             "yes" if (ratio > 1) == (paper > 1) else "no"))
    agreeing = sum(r["agrees"] == "yes" for r in rows)
    faster = sum(r > 1 for r in ratios)
    measured = (f"convlab's fastest FFT or Winograd method faster than im2col on {faster} of {len(rows)} layers; "
                f"same side of 1× as NNPACK on {agreeing} of {len(rows)}")
    return measured, _verdict(agreeing, len(rows)), rows


def _zlateski(claim, t):
    rows = []
    for layer in claim.layers:
        fft, wino = t.best(layer, t.family("frequency")), t.best(layer, ["winograd"])
        if fft and wino:
            ratio = wino[1] / fft[1]
            rows.append(_row(layer, "FFT faster", f"{ratio:.2f}× ({fft[0]} over winograd)",
                             "yes" if ratio > 1 else "no"))
    agreeing = sum(r["agrees"] == "yes" for r in rows)
    measured = f"the fastest FFT method beat winograd on {agreeing} of {len(rows)} layers where both ran"
    return measured, _verdict(agreeing, len(rows), yes=0.5, partly=0.3), rows


def _scipy(claim, t):
    import scipy.signal

    rows = []
    for layer in claim.layers:
        case = t.cases.get(layer)
        spatial, frequency = t.best(layer, t.family("spatial")), t.best(layer, t.family("frequency"))
        if case is None or not (spatial and frequency):
            continue
        x, w = np.ones(case["x_shape"][2:], np.float32), np.ones(case["w_shape"][2:], np.float32)
        choice = scipy.signal.choose_conv_method(x, w, mode="valid")
        faster = "fft" if frequency[1] < spatial[1] else "direct"
        own = [t.best(layer, [name]) for name in ("scipy.correlate2d", "scipy.fftconvolve")]
        scipy_own = (f"; scipy's own: {'fft' if own[1][1] < own[0][1] else 'direct'} faster" if all(own) else "")
        rows.append(_row(layer, choice, f"{faster} faster ({spatial[0]} {spatial[1] * 1e3:.3g} ms, "
                                        f"{frequency[0]} {frequency[1] * 1e3:.3g} ms){scipy_own}",
                         "yes" if choice == faster else "no"))
    agreeing = sum(r["agrees"] == "yes" for r in rows)
    measured = f"scipy's choice matched the faster domain measured here on {agreeing} of {len(rows)} problems"
    return measured, _verdict(agreeing, len(rows)), rows


_EVALUATORS = {"mathieu2013": _mathieu, "lavin2015-multiplies": _lavin_multiplies, "lavin2015-speed": _lavin_speed,
               "nnpack": _nnpack, "zlateski2019": _zlateski, "scipy": _scipy}


def evaluate(results):
    """The papers table of a papers run: one entry per claim with its per-layer rows.

    Returns
    -------
    dict
        ``{"scaling", "claims": [{"id", "paper", "reference", "where", "claim", "paper_figure", "machine",
        "measured", "agrees", "rows": [{"layer", "paper", "measured", "agrees"}]}]}``; ``agrees`` is
        ``"yes"``, ``"partly"``, ``"no"`` or ``"not measured"``.
    """
    t = _Times(results)
    claims = []
    for claim in CLAIMS:
        if not any(layer in t.cases for layer in claim.layers):
            continue
        measured, agrees, rows = _EVALUATORS[claim.id](claim, t)
        claims.append({"id": claim.id, "paper": claim.paper, "reference": claim.reference, "where": claim.where,
                       "claim": claim.claim, "paper_figure": claim.figure, "machine": claim.machine,
                       "measured": measured, "agrees": agrees, "rows": rows})
    return {"scaling": results["suite"].get("description", ""), "claims": claims}


# --------------------------------------------------------------- rendering
def papers_html(papers):
    """The claims table, each claim's per-layer rows collapsed under it (escaped: results files are untrusted)."""
    e = lambda value: html.escape(str(value))
    rows = []
    for c in papers.get("claims", ()):
        detail = "".join(f"<tr><td>{e(r['layer'])}</td><td>{e(r['paper'])}</td><td>{e(r['measured'])}</td>"
                         f"<td class='{e(r['agrees']).replace(' ', '-')}'>{e(r['agrees'])}</td></tr>"
                         for r in c.get("rows", ()))
        layers = (f"<details><summary>{len(c.get('rows', ()))} layers</summary><table class='left'><tr><th>layer"
                  f"</th><th>paper</th><th>measured here</th><th>agrees?</th></tr>{detail}</table></details>"
                  if detail else "")
        rows.append(f"<tr><td><b>{e(c['paper'])}</b>: {e(c['claim'])}<br><span class='note'>{e(c['reference'])}"
                    f"</span></td><td>{e(c['paper_figure'])}<br><span class='note'>{e(c['where'])}; "
                    f"{e(c['machine'])}</span></td><td>{e(c['measured'])}{layers}</td>"
                    f"<td class='{e(c['agrees']).replace(' ', '-')}'><b>{e(c['agrees'])}</b></td></tr>")
    return ("<h2>Published claims, re-run on this machine</h2>"
            f"<p class='note'>{e(papers.get('scaling', ''))} Where a paper timed another machine, the speed-up "
            "between two algorithms is compared, not the time.</p><div class='wide'><table class='left'><tr>"
            "<th>claim</th><th>paper's figure</th><th>measured here</th><th>agrees?</th></tr>"
            + "".join(rows) + "</table></div>")


def papers_markdown(papers):
    """The claims table as Markdown, for the snapshot's summary.md."""
    cell = lambda value: str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["## Published claims, re-run on this machine", "", cell(papers.get("scaling", "")), "",
             "| claim | paper's figure | measured here | agrees? |", "|---|---|---|---|"]
    lines += [f"| **{cell(c['paper'])}**: {cell(c['claim'])} | {cell(c['paper_figure'])} ({cell(c['where'])}; "
              f"{cell(c['machine'])}) | {cell(c['measured'])} | {cell(c['agrees'])} |" for c in papers["claims"]]
    lines += ["", "References:", ""] + [f"- {cell(c['reference'])}" for c in papers["claims"]]
    return "\n".join(lines)
