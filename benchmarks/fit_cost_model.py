"""Fit the cost model's built-in constants and per-method factors to measured times.

    python benchmarks/fit_cost_model.py                   # measure (minutes), fit, print
    python benchmarks/fit_cost_model.py --quick           # fewer problems and repeats
    python benchmarks/fit_cost_model.py --measurements m.json   # reuse (or write) the measurements

Every registered method is timed through ``cl.conv(..., method=name)`` on the
problems of ``problems.random_problems(count, seed)`` (interleaved, minimum of
several samples, :func:`problems.time_methods`). Both halves are measured; the
fit sees only the fit half (``problems.split``), and the error and the regret
of the fitted model are printed for both.

What is fitted, and what is not: the four constants the first ``method="auto"``
choice measures on every machine (``QUICK_CONSTANTS``: GEMM peak, copy
bandwidth, call overhead, FFT time per point) are measured here with the same
function (``measure_quick``) and held fixed, so that the fitted model is the
one users get once their machine's values replace them. The constants that
describe the shape of the terms (GEMM small-matrix efficiency and per-matrix
overhead, strided-gather bandwidth, integer-index and sparse cost per point)
and, per method, a factor and a fixed overhead per pass (predicted = factor ·
model + overhead: what a method pays whatever the size) are fitted by minimising the squared log error of
the predicted forward times, weighted towards the methods within 3x of each
problem's fastest (those decide the choice).

The output is two Python literals to paste into
``convlab/algorithms/costs.py``: ``DEFAULT_CONSTANTS``, ``DEFAULT_FACTORS`` and ``DEFAULT_OVERHEADS``.
Re-run it after changing a method's implementation or cost model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pprint
import sys

import numpy as np
import scipy.optimize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import problems as problem_set

import convlab as cl
from convlab.algorithms import DEFAULT_CONSTANTS, DEFAULT_FACTORS, DEFAULT_OVERHEADS, CostTerms
from convlab.tuning.calibration import QUICK_CONSTANTS, measure_quick

FITTED = ("gemm_half", "gemm_call", "gather_bandwidth", "index_point", "sparse_op")
NEAR_FASTEST = 3.0


def measure(problems, repeats, path=None, pass_="forward"):
    """``{problem name: {method: seconds}}`` of ``pass_``, read from ``path`` when it has them, else
    measured (and written to ``path``; backward passes under ``"name [pass]"``)."""
    stored = {}
    if path and os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)

    def key(p):
        return p.name if pass_ == "forward" else f"{p.name} [{pass_}]"

    for i, p in enumerate(problems):
        if key(p) in stored:
            continue
        print(f"[{i + 1}/{len(problems)}] {key(p)}", file=sys.stderr, flush=True)
        stored[key(p)] = problem_set.time_methods(p, repeats=repeats, pass_=pass_)
        if path:
            with open(path, "w") as f:
                json.dump(stored, f, indent=1)
    return {p.name: stored[key(p)] for p in problems}


def backward_factors(problems, measured, constants, overheads, pass_):
    """``{"method/pass": factor}``: the median over ``problems`` of (measured - overhead) / modelled
    time of ``pass_``, with the constants and fixed costs of the forward fit held (clipped to [0.1, 10])."""
    ratios = {}
    for p in problems:
        spec = p.spec()
        terms = CostTerms(constants[p.dtype], p.dtype)
        for m, t in measured[p.name].items():
            modelled = cl.get_method(m).predict_seconds(spec, terms, pass_)
            if modelled > 0 and t > overheads.get(m, 0.0):
                ratios.setdefault(m, []).append((t - overheads.get(m, 0.0)) / modelled)
    return {f"{m}/{pass_}": round(float(np.clip(np.median(r), 0.1, 10.0)), 3) for m, r in sorted(ratios.items())}


def constants_from(quick, scales):
    """DEFAULT_CONSTANTS with the quick ones replaced and the fitted ones scaled by ``exp(scales)``."""
    out = {}
    for dtype, values in DEFAULT_CONSTANTS.items():
        c = dict(values, **quick[dtype])
        for name, s in zip(FITTED, scales):
            c[name] = values[name] * math.exp(s)
        out[dtype] = c
    return out


def model(problem, constants):
    """``{method: modelled seconds}`` (before factor and overhead) of every method that runs ``problem``."""
    spec = problem.spec()
    terms = CostTerms(constants[problem.dtype], problem.dtype)
    return {m: cl.get_method(m).predict_seconds(spec, terms) for m in cl.methods() if cl.algorithms.verdict(spec, m).ok}


def predict(problem, constants, factors, overheads=None, modelled=None):
    modelled = modelled or model(problem, constants)
    return {m: t * factors.get(m, 1.0) + (overheads or {}).get(m, 0.0) for m, t in modelled.items()}


def errors(problems, measured, constants, factors, overheads=None, modelled=None):
    """(log errors of every measured (problem, method), their weights, regrets of the predicted pick)."""
    logs, weights, regrets = [], [], []
    for p in problems:
        seconds = measured[p.name]
        predicted = predict(p, constants, factors, overheads, (modelled or {}).get(p.name))
        fastest = min(seconds.values())
        for m, t in seconds.items():
            if m in predicted:
                logs.append(math.log(predicted[m] / t))
                weights.append(1.0 if t <= NEAR_FASTEST * fastest else 0.25)
        pick = min((m for m in predicted if m in seconds), key=predicted.get)
        regrets.append(seconds[pick] / fastest)
    return np.array(logs), np.array(weights), regrets


OVERHEAD_UNIT = 1e-5  # overheads are fitted as OVERHEAD_UNIT · exp(v)


def fit(problems, measured, quick, methods):
    k = len(FITTED) + len(methods)

    def unpack(v):
        return (v[:len(FITTED)], dict(zip(methods, np.exp(v[len(FITTED):k]))),
                dict(zip(methods, OVERHEAD_UNIT * np.exp(v[k:]))))

    cache = {}

    def loss(v):
        scales, factors, overheads = unpack(v)
        key = tuple(np.round(scales, 4))
        if key not in cache:  # the models depend on the constants only: reuse them while Powell moves the rest
            cache.clear()
            constants = constants_from(quick, scales)
            cache[key] = {p.name: model(p, constants) for p in problems}
        logs, weights, _ = errors(problems, measured, None, factors, overheads, cache[key])
        return float(np.sum(weights * logs ** 2) / np.sum(weights)) + 1e-3 * float(np.sum(v[:k] ** 2))

    start = np.zeros(k + len(methods))
    bounds = [(-4.0, 4.0)] * k + [(-6.0, 4.0)] * len(methods)
    result = scipy.optimize.minimize(loss, start, method="Powell", bounds=bounds,
                                     options=dict(maxfev=6000, xtol=1e-3, ftol=1e-5))
    scales, factors, overheads = unpack(result.x)
    return (constants_from(quick, scales), {m: round(float(f), 3) for m, f in factors.items()},
            {m: float(f"{o:.3g}") for m, o in overheads.items()})


def report(label, problems, measured, constants, factors, overheads=None):
    logs, _, regrets = errors(problems, measured, constants, factors, overheads)
    a = np.abs(logs)
    med, p90, worst = problem_set.ratios_summary(regrets)
    print(f"{label:<10} prediction error x{math.exp(np.median(a)):.2f} median, x{math.exp(np.percentile(a, 90)):.2f} "
          f"p90 ({len(logs)} method timings); regret of the predicted pick: median {med:.2f}, p90 {p90:.2f}, "
          f"worst {worst:.2f} ({len(problems)} problems)")


def rounded(constants):
    return {dt: {k: float(f"{v:.3g}") for k, v in sorted(c.items())} for dt, c in constants.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--count", type=int, default=64, help="random problems (both halves)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="24 problems, 3 repeats")
    parser.add_argument("--measurements", help="JSON file of measured times to reuse, written when missing")
    parser.add_argument("--backward", action="store_true",
                        help="also measure the backward passes of the fit half and fit a factor per method and pass")
    parser.add_argument("--backward-only", action="store_true",
                        help="keep the built-in forward fit (DEFAULT_*) and fit only the backward factors")
    parser.add_argument("--defaults", action="store_true",
                        help="hold the quick constants at the current DEFAULT_CONSTANTS instead of measuring them")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.repeats = min(args.count, 24), min(args.repeats, 3)
    cl.config.set_auto_measure(False)  # the fit prices with its own constants, never the cached ones
    fit_half, held_half = problem_set.split(problem_set.random_problems(args.count, args.seed))
    if args.defaults:
        quick = {dt: {k: DEFAULT_CONSTANTS[dt][k] for k in QUICK_CONSTANTS} for dt in DEFAULT_CONSTANTS}
    else:
        quick = {dt: measure_quick(dt, budget=1.0) for dt in DEFAULT_CONSTANTS}
    print("quick constants:", rounded(quick))
    measured = measure(fit_half + held_half, args.repeats, args.measurements)
    methods = list(cl.methods())
    before = {dt: dict(DEFAULT_CONSTANTS[dt], **quick[dt]) for dt in DEFAULT_CONSTANTS}
    report("fit, before", fit_half, measured, before, {})
    report("held, before", held_half, measured, before, {})
    if args.backward_only:  # keep the built-in forward fit, add the backward factors
        constants = {dt: dict(c) for dt, c in DEFAULT_CONSTANTS.items()}
        factors = {m: f for m, f in DEFAULT_FACTORS.items() if "/" not in m}
        overheads = dict(DEFAULT_OVERHEADS)
    else:
        constants, factors, overheads = fit(fit_half, measured, quick, methods)
    report("fit", fit_half, measured, constants, factors, overheads)
    report("held-out", held_half, measured, constants, factors, overheads)
    if args.backward or args.backward_only:
        for pass_ in ("backward_input", "backward_weight"):
            timed = measure(fit_half, args.repeats, args.measurements, pass_)
            factors.update(backward_factors(fit_half, timed, constants, overheads, pass_))
    print("\n# paste into convlab/algorithms/costs.py")
    print("DEFAULT_CONSTANTS: dict[str, dict[str, float]] = " + pprint.pformat(rounded(constants), width=110))
    print("DEFAULT_FACTORS: dict[str, float] = " + pprint.pformat(factors, width=110))
    print("DEFAULT_OVERHEADS: dict[str, float] = " + pprint.pformat(overheads, width=110))


if __name__ == "__main__":
    main()
