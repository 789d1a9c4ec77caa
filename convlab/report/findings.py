"""Findings with uncertainty: what the measurements show, each with a bootstrap interval.

A report's headline numbers (where the FFT overtakes the spatial methods,
how time grows with the input, how often ``method="auto"`` picks the
fastest, how a peer compares) are statistics of a handful of timed samples
on a machine that may be busy. Each :class:`Finding` therefore carries an
interval, and is stated as a result only when the interval supports it;
otherwise it is marked as depending on noise.

The intervals come from a bootstrap over the interleaved rounds
(:func:`convlab.harness.time_interleaved`): in a case, every runner took one
sample per round, so a replicate draws rounds with replacement and keeps
each drawn round's samples of *every* runner together (drift that hit all
runners in a round cancels there as it did in the measurement). Cases were
measured one after another, so they are resampled independently. Each
replicate's statistic is computed from the replicate's medians exactly as
the point value is from the recorded medians; the interval is the central
90% of the replicates (:data:`LEVEL`).

Examples
--------
>>> f = Finding("demo", "x is 2.0 (1.9–2.1)", 2.0, 1.9, 2.1, True)
>>> f.stable, f.low <= f.value <= f.high
(True, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from .figures import Data, family_best, family_crossover, fitted_slope, method_family

__all__ = ["Finding", "Bootstrap", "LEVEL", "REPLICATES", "compute_findings", "sentences",
           "crossover_findings", "slope_findings", "auto_finding", "peer_findings", "map_cells",
           "map_finding", "NOISE_MARK", "compare_runs"]

LEVEL = 0.90
"""Central probability of the stated intervals."""
REPLICATES = 200
"""Bootstrap replicates (seeded: the same results give the same intervals)."""
NOISE_MARK = "depends on noise"
"""Words every finding that the interval does not support contains."""
SLOPE_WIDTH = 0.2
"""A fitted slope is stated when its interval is at most this wide."""
TIE_SHARE = 0.10
"""A method is within the noise of the fastest when it is fastest in at least this share of replicates."""
MIN_ROUNDS = 3
"""With fewer timed rounds per runner the bootstrap cannot show the spread: no finding is stated as stable."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """One statement about the measurements, with its bootstrap interval.

    Attributes
    ----------
    key : str
        What it is about, e.g. ``"crossover/image"``, ``"slope/small kernel/direct"``,
        ``"auto"``, ``"peer/torch"``, ``"map"``.
    text : str
        The sentence (or, with ``topic``, the clause) as the page prints it:
        the value, the interval and, when not ``stable``, :data:`NOISE_MARK`.
    value, low, high : float or None
        The point value (from the recorded medians) and the :data:`LEVEL`
        bootstrap interval; ``None`` where there is none (no crossover).
    stable : bool
        Whether the interval supports the statement.
    topic : str
        Findings that share a topic are printed as one sentence
        (:func:`sentences`): the topic, then their texts.
    """

    key: str
    text: str
    value: float | None
    low: float | None
    high: float | None
    stable: bool
    topic: str = ""


class Bootstrap:
    """Forward medians per (case, runner), recorded and in :data:`REPLICATES` resamples of the rounds.

    Parameters
    ----------
    results : dict
        A results dict (``schema.json``); records without ``samples_s`` keep
        their recorded median in every replicate (no spread is invented).
    replicates : int
    seed : int

    Examples
    --------
    Two runners sampled in the same three rounds: a replicate keeps rounds whole.

    >>> results = {"cases": [{"id": "c"}], "measurements": [
    ...     {"case": "c", "method": "a", "status": "ok", "forward": {"median_s": 2.0, "samples_s": [1.0, 2.0, 3.0]}},
    ...     {"case": "c", "method": "b", "status": "ok", "forward": {"median_s": 3.0, "samples_s": [2.0, 3.0, 4.0]}}]}
    >>> boot = Bootstrap(results, replicates=50)
    >>> boot.median("c", "a"), bool(np.all(boot.median("c", "b", replicates=True) - boot.median("c", "a", True) == 1))
    (2.0, True)
    """

    def __init__(self, results: dict, replicates: int = REPLICATES, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.replicates = replicates
        self.point: dict[tuple[str, str], float] = {}
        self.reps: dict[tuple[str, str], np.ndarray] = {}
        by_case: dict[str, list[dict]] = {}
        for m in results["measurements"]:
            if m.get("status") == "ok" and m.get("forward"):
                by_case.setdefault(m["case"], []).append(m)
        for case in results["cases"]:  # a fixed order, so the same results give the same replicates
            records = by_case.get(case["id"], [])
            lengths = {len(m["forward"].get("samples_s") or ()) for m in records}
            rounds = max(lengths, default=0)
            # rounds drawn once for the whole case when every runner has one sample per round
            shared = rng.integers(0, rounds, (replicates, rounds)) if lengths == {rounds} and rounds else None
            for m in records:
                key = (m["case"], m["method"])
                self.point[key] = float(m["forward"]["median_s"])
                samples = np.asarray(m["forward"].get("samples_s") or (), np.float64)
                if samples.size == 0:
                    self.reps[key] = np.full(replicates, self.point[key])
                    continue
                rounds = shared if shared is not None else rng.integers(0, samples.size, (replicates, samples.size))
                self.reps[key] = np.median(samples[rounds], axis=1)
        counts = [len(m["forward"].get("samples_s") or ()) for records in by_case.values() for m in records]
        self.rounds = min(counts, default=0)
        """The fewest timed rounds of any record."""
        self.enough = self.rounds >= MIN_ROUNDS
        """Whether every record has :data:`MIN_ROUNDS` rounds (else no finding is stable)."""

    def median(self, case_id: str, runner: str, replicates: bool = False):
        """Recorded median (``nan`` when not timed), or with ``replicates`` the array of replicate medians."""
        if replicates:
            return self.reps.get((case_id, runner), np.full(self.replicates, np.nan))
        return self.point.get((case_id, runner), float("nan"))

    def curves(self, cases: Sequence[dict], runners: Sequence[str]) -> tuple[dict, dict]:
        """``({runner: medians over cases}, {runner: (replicates, cases) array})``, ``nan`` where not timed."""
        point = {r: np.array([self.median(c["id"], r) for c in cases]) for r in runners}
        reps = {r: np.stack([self.median(c["id"], r, True) for c in cases], axis=1) for r in runners}
        keep = [r for r in runners if np.isfinite(point[r]).any()]
        return {r: point[r] for r in keep}, {r: reps[r] for r in keep}

    def distribution(self, statistic: Callable[[Callable[[str, str], float]], float | None]):
        """``(point, replicate values)`` of ``statistic(median)``, where ``median(case_id, runner)`` reads medians.

        Replicates where the statistic is ``None`` are ``nan``.
        """
        point = statistic(self.median)
        values = np.full(self.replicates, np.nan)
        for b in range(self.replicates):
            value = statistic(lambda case_id, runner, b=b: float(self.median(case_id, runner, True)[b]))
            values[b] = np.nan if value is None else value
        return point, values


def interval(values: np.ndarray) -> tuple[float | None, float | None]:
    """The central :data:`LEVEL` interval of the finite ``values`` (``(None, None)`` when there are none).

    Examples
    --------
    >>> interval(np.arange(101.0))
    (5.0, 95.0)
    """
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None, None
    low, high = np.percentile(finite, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return float(low), float(high)


def _pct(level: float = LEVEL) -> str:
    return f"{100 * level:.0f}%"


# --------------------------------------------------------------- kernel crossovers
def crossover_findings(results: dict, boot: Bootstrap | None = None) -> list[Finding]:
    """Where the fastest frequency-domain method overtakes the fastest spatial one, per kernel sweep.

    Stated when at least :data:`LEVEL` of the replicates agree on whether
    there is a crossover and, if there is, its interval holds at most one
    measured kernel size (the crossover is known to within one step of the
    sweep); otherwise marked as depending on noise.
    """
    data, boot = Data(results), boot or Bootstrap(results)
    found = []
    for name, cases in data.group("kernel").items():
        kernels = np.array([c["w_shape"][2] for c in cases], np.float64)
        point_curves, rep_curves = boot.curves(cases, data.runners)
        k = family_crossover(kernels, point_curves, data.methods)
        ks = np.array([family_crossover(kernels, {r: v[b] for r, v in rep_curves.items()}, data.methods) or np.nan
                       for b in range(boot.replicates)])
        share = float(np.mean(np.isfinite(ks)))
        low, high = interval(ks)
        winners = _winners_at(kernels, point_curves, data.methods, k)
        topic = f"Kernel sweep '{name}'"
        if k is None:
            stable = share <= 1 - LEVEL and boot.enough
            text = (f"{topic}: no crossover in the measured range (k = {kernels[0]:g}–{kernels[-1]:g}); "
                    f"{100 * share:.0f}% of resamples find one")
        else:
            inside = int(np.sum((kernels > low) & (kernels < high)))
            stable = share >= LEVEL and inside <= 1 and boot.enough
            text = (f"{topic}: the fastest frequency-domain method{winners} overtakes the fastest spatial one at "
                    f"k ≈ {k:.1f} ({_pct()} interval {low:.1f}–{high:.1f}, found in {100 * share:.0f}% of "
                    f"resamples)")
        found.append(Finding(f"crossover/{name}", text + ("" if stable else f" — {NOISE_MARK}") + ".",
                             k, low, high, stable))
    return found


def _winners_at(kernels, curves, methods, k):
    """`` (fft over winograd)``: the two families' winners on either side of crossover ``k``."""
    if k is None:
        return ""
    spatial, s_names = family_best(curves, [n for n in methods if method_family(n) == "spatial"])
    frequency, f_names = family_best(curves, [n for n in methods if method_family(n) == "frequency"])
    if spatial is None or frequency is None:
        return ""
    below = [i for i in range(len(kernels)) if kernels[i] <= k and s_names[i]]
    above = [i for i in range(len(kernels)) if kernels[i] >= k and f_names[i]]
    if not below or not above:
        return ""
    return f" ({f_names[above[0]]}, over {s_names[below[-1]]})"


# --------------------------------------------------------------- input-size slopes
def slope_findings(results: dict, boot: Bootstrap | None = None) -> list[Finding]:
    """The log-log slope of forward time against ``n^d`` for each convlab method of each input sweep.

    A slope is stated when its interval is at most :data:`SLOPE_WIDTH` wide.
    """
    data, boot = Data(results), boot or Bootstrap(results)
    found = []
    for name, cases in data.group("input").items():
        pixels = np.array([float(np.prod(c["x_shape"][2:])) for c in cases])
        point_curves, rep_curves = boot.curves(cases, data.methods)
        topic = (f"Input sweep '{name}' (kernel {cases[0]['w_shape'][2]}), log-log slope of forward time "
                 f"against n^d ({_pct()} interval)")
        for runner, times in point_curves.items():
            ok = np.isfinite(times)
            if ok.sum() < 2:
                continue
            slope = fitted_slope(pixels[ok], times[ok])
            reps = np.array([fitted_slope(pixels[ok], row[ok]) for row in rep_curves[runner]])
            low, high = interval(reps)
            stable = high - low <= SLOPE_WIDTH and boot.enough
            text = f"{runner} {slope:.2f} ({low:.2f}–{high:.2f}" + ("" if stable else f", {NOISE_MARK}") + ")"
            found.append(Finding(f"slope/{name}/{runner}", text, slope, low, high, stable, topic))
    return found


# --------------------------------------------------------------- auto against the fastest
def _fastest(median, case_id, methods):
    times = [(median(case_id, m), m) for m in methods]
    times = [(t, m) for t, m in times if np.isfinite(t)]
    return min(times)[1] if times else None


def auto_finding(results: dict, boot: Bootstrap | None = None) -> Finding | None:
    """On how many cases ``method="auto"``'s pick was the fastest measured convlab method.

    Also counts the cases where the pick is not the measured fastest but is
    within the noise of it (fastest in at least :data:`TIE_SHARE` of the
    replicates). Stated when the interval of the count is at most one case
    wide or one tenth of the cases.
    """
    data, boot = Data(results), boot or Bootstrap(results)
    cases = [c for c in data.cases if _fastest(boot.median, c["id"], data.methods)]
    if not cases:
        return None

    def agree(median):
        return sum(c["auto_method"] == _fastest(median, c["id"], data.methods) for c in cases)

    n, reps = boot.distribution(agree)
    low, high = interval(reps)
    tied = 0
    for c in cases:
        if c["auto_method"] == _fastest(boot.median, c["id"], data.methods) or c["auto_method"] not in data.methods:
            continue
        wins = np.mean([_fastest(lambda cid, r, b=b: float(boot.median(cid, r, True)[b]), c["id"], data.methods)
                        == c["auto_method"] for b in range(boot.replicates)])
        tied += wins >= TIE_SHARE
    stable = high - low <= max(1.0, 0.1 * len(cases)) and boot.enough
    text = (f"method='auto' picked the fastest measured method on {n} of {len(cases)} cases ({_pct()} interval "
            f"{low:.0f}–{high:.0f}); on {tied} more its pick is within the noise of the fastest"
            + ("" if stable else f" — {NOISE_MARK}") + ".")
    return Finding("auto", text, float(n), low, high, stable)


# --------------------------------------------------------------- peers
def peer_findings(results: dict, boot: Bootstrap | None = None) -> list[Finding]:
    """For each peer, the median over cases of (peer time / fastest convlab time).

    Stated when the interval excludes 1 (one side is faster, beyond the noise).
    """
    data, boot = Data(results), boot or Bootstrap(results)
    found = []
    for peer in data.peers:
        cases = [c for c in data.cases if np.isfinite(boot.median(c["id"], peer))
                 and _fastest(boot.median, c["id"], data.methods)]
        if not cases:
            continue

        def ratio(median, peer=peer, cases=cases):
            best = [min(t for m in data.methods if np.isfinite(t := median(c["id"], m))) for c in cases]
            return float(np.median([median(c["id"], peer) / b for c, b in zip(cases, best)]))

        r, reps = boot.distribution(ratio)
        low, high = interval(reps)
        faster = sum(boot.median(c["id"], peer) > min(
            t for m in data.methods if np.isfinite(t := boot.median(c["id"], m))) for c in cases)
        stable = not (low <= 1.0 <= high) and boot.enough
        verdict = ("convlab's fastest method is faster" if r > 1 else f"{peer} is faster") if stable else \
            f"no difference beyond the noise — {NOISE_MARK}"
        text = (f"{peer}: ran {len(cases)} cases; the fastest convlab method was faster on {faster}; median time "
                f"ratio {peer}/convlab {r:.2g} ({_pct()} interval {low:.2g}–{high:.2g}): {verdict}.")
        found.append(Finding(f"peer/{peer}", text, r, low, high, stable))
    return found


# --------------------------------------------------------------- crossover map
def map_cells(results: dict, boot: Bootstrap | None = None) -> dict[str, list[dict]]:
    """The cells of every crossover map (cases of group ``"map"``), by map name.

    Each cell is ``{"case", "kernel", "channels", "size", "measured", "predicted", "tied", "agree",
    "agree_within_noise"}``: the fastest measured convlab method, the cost
    model's pick (``auto_method``), the methods fastest in at least
    :data:`TIE_SHARE` of the replicates, and whether the pick is the
    measured winner (or one of the tied).
    """
    data, boot = Data(results), boot or Bootstrap(results)
    maps: dict[str, list[dict]] = {}
    for name, cases in data.group("map").items():
        for c in cases:
            measured = _fastest(boot.median, c["id"], data.methods)
            if measured is None:
                continue
            wins: dict[str, int] = {}
            for b in range(boot.replicates):
                winner = _fastest(lambda cid, r, b=b: float(boot.median(cid, r, True)[b]), c["id"], data.methods)
                wins[winner] = wins.get(winner, 0) + 1
            tied = sorted(m for m, count in wins.items() if m and count >= TIE_SHARE * boot.replicates)
            predicted = c["auto_method"].split(":")[0]
            maps.setdefault(name, []).append(dict(
                case=c["id"], kernel=c["w_shape"][2], channels=c["x_shape"][1], size=c["x_shape"][2],
                measured=measured, predicted=predicted, tied=tied, agree=predicted == measured,
                agree_within_noise=predicted == measured or predicted in tied))
    return maps


def map_finding(results: dict, boot: Bootstrap | None = None) -> Finding | None:
    """How often the cost model's pick is the measured winner over every crossover-map cell.

    The value is the fraction of cells where it is; the interval runs from
    that fraction to the fraction where the pick is the winner or within
    the noise of it. Stable when the two differ by at most one cell in ten.
    """
    boot = boot or Bootstrap(results)
    cells = [cell for cells in map_cells(results, boot).values() for cell in cells]
    if not cells:
        return None
    strict = sum(cell["agree"] for cell in cells) / len(cells)
    loose = sum(cell["agree_within_noise"] for cell in cells) / len(cells)
    stable = loose - strict <= 0.1 and boot.enough
    text = (f"Crossover map: the cost model's pick (method='auto') is the measured winner on "
            f"{sum(cell['agree'] for cell in cells)} of {len(cells)} cells ({100 * strict:.0f}%), "
            f"{100 * loose:.0f}% counting cells where it is within the noise of the winner"
            + ("" if stable else f" — {NOISE_MARK}") + ".")
    return Finding("map", text, strict, strict, loose, stable)


# --------------------------------------------------------------- all of them
def compute_findings(results: dict, replicates: int = REPLICATES, seed: int = 0) -> list[Finding]:
    """Every finding of a results dict, in the page's order.

    Examples
    --------
    >>> results = {"suite": {"methods": ["direct"], "peers": []}, "cases": [], "measurements": []}
    >>> compute_findings(results)
    []
    """
    boot = Bootstrap(results, replicates, seed)
    found = [*crossover_findings(results, boot), *slope_findings(results, boot)]
    found += [f for f in (map_finding(results, boot),) if f]
    found += peer_findings(results, boot)
    found += [f for f in (auto_finding(results, boot),) if f]
    return found


def sentences(found: Sequence[Finding]) -> list[str]:
    """The findings as page lines: findings sharing a ``topic`` become one sentence.

    Examples
    --------
    >>> sentences([Finding("a", "one.", 1.0, 1.0, 1.0, True),
    ...            Finding("s/x", "x 1.00 (0.90–1.10)", 1.0, 0.9, 1.1, True, "Slopes"),
    ...            Finding("s/y", "y 2.00 (1.90–2.10)", 2.0, 1.9, 2.1, True, "Slopes")])
    ['one.', 'Slopes: x 1.00 (0.90–1.10); y 2.00 (1.90–2.10).']
    """
    lines: list[str] = []
    topics: dict[str, int] = {}
    for f in found:
        if not f.topic:
            lines.append(f.text)
        elif f.topic in topics:
            lines[topics[f.topic]] += f"; {f.text}"
        else:
            topics[f.topic] = len(lines)
            lines.append(f"{f.topic}: {f.text}")
    for i in topics.values():
        lines[i] += "."
    return lines


# --------------------------------------------------------------- two runs side by side
def compare_runs(first: dict, second: dict) -> dict:
    """Two runs of the same suite side by side: is what they found the same?

    Returns
    -------
    dict
        ``{"same_fastest": (cases with the same fastest convlab method, cases timed in both),
        "crossovers": {sweep: (k first, k second, kernel steps apart or None)},
        "findings": [(key, text first, text second), ...]}``. Kernel steps
        apart counts the measured kernel sizes between the two crossovers
        (0: same interval of the sweep), ``None`` when one run has none.

    Examples
    --------
    >>> results = {"suite": {"methods": ["direct"], "peers": []}, "cases": [], "measurements": []}
    >>> compare_runs(results, results)["same_fastest"]
    (0, 0)
    """
    data = [Data(r) for r in (first, second)]
    boots = [Bootstrap(r, replicates=1) for r in (first, second)]
    common = [c for c in data[0].cases if c["id"] in {d["id"] for d in data[1].cases}]
    pairs = [tuple(_fastest(b.median, c["id"], d.methods) for b, d in zip(boots, data)) for c in common]
    pairs = [p for p in pairs if None not in p]
    crossovers = {}
    for name, cases in data[0].group("kernel").items():
        kernels = np.array([c["w_shape"][2] for c in cases], np.float64)
        ks = [f.value for r in (first, second) for f in crossover_findings(r, Bootstrap(r, replicates=1))
              if f.key == f"crossover/{name}"]
        if len(ks) != 2:
            continue
        apart = None if None in ks else int(np.sum((kernels > min(ks)) & (kernels < max(ks))))
        crossovers[name] = (ks[0], ks[1], apart)
    found = [{f.key: f.text for f in compute_findings(r)} for r in (first, second)]
    rows = [(key, found[0].get(key, ""), found[1].get(key, "")) for key in dict.fromkeys([*found[0], *found[1]])]
    return {"same_fastest": (sum(a == b for a, b in pairs), len(pairs)), "crossovers": crossovers, "findings": rows}


def _main(argv: Sequence[str]) -> None:
    """``python -m convlab.report.findings A/results.json B/results.json``: two runs side by side."""
    import json
    import pathlib

    first, second = (json.loads(pathlib.Path(path).read_text(encoding="utf-8")) for path in argv)
    diff = compare_runs(first, second)
    same, total = diff["same_fastest"]
    print(f"same fastest convlab method on {same} of {total} cases ({100 * same / max(total, 1):.0f}%)")
    for name, (a, b, apart) in diff["crossovers"].items():
        text = [f"k ≈ {k:.1f}" if k is not None else "none" for k in (a, b)]
        print(f"crossover '{name}': {text[0]} vs {text[1]}; measured kernel sizes between them: {apart}")
    for key, a, b in diff["findings"]:
        print(f"\n[{key}]\n  1: {a}\n  2: {b}")


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
