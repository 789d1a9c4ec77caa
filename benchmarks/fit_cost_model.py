"""Fit the cost model's built-in constants, per-method factors and residual fixed costs to measured times.

    python benchmarks/fit_cost_model.py --backward        # measure (about 10 min idle), fit, print
    python benchmarks/fit_cost_model.py                   # forward only (about 4 min)
    python benchmarks/fit_cost_model.py --quick           # 24 + 12 problems, 2 repeats: a check that it runs
    python benchmarks/fit_cost_model.py --backward --measurements m.json   # reuse (or write) the measurements

Every registered method is timed through ``cl.conv(..., method=name)`` (and
``plan.backward_input`` / ``plan.backward_weight`` with ``--backward``) on
two sets of problems: ``problems.random_problems(count, seed)`` (CNN layers,
depthwise, strided, dilated, grouped, large kernels, 1-D, 3-D) and
:func:`small_problems`, the small single- and few-channel images of the
report's crossover maps, where the fixed cost of each call decides the
winner. Timings are interleaved, the minimum of ``repeats`` samples
(:func:`problems.time_methods`). Each set is split into a fit half and a
held-out half; the fit sees only the fit halves, and the error and the
regret of the fitted model are printed for both.

What is measured, and what is fitted:

* held fixed, measured here exactly as the first ``method="auto"`` choice
  measures them on every machine (``measure_quick``, ``QUICK_CONSTANTS``):
  GEMM peak, copy bandwidth, ufunc call, FFT time per point, and the fixed
  cost of one BLAS call, FFT execution and sparse product; and the cost of
  one compiled-kernel launch (``measure_launch``). The methods' cost models
  count their own launches and calls, so these carry the fixed costs;
* fitted on the forward times: the constants that describe the shape of the
  terms (GEMM small-matrix efficiency and per-matrix overhead,
  strided-gather bandwidth, integer-index and sparse cost per point, the
  compiled loop nests' arithmetic per byte of bandwidth, the fixed cost of a
  serial compiled-kernel call) and,
  per method, a factor and a residual fixed cost (predicted = factor ·
  model + residual: the Python-level dispatch no term counts), minimising
  the squared log error, weighted towards the methods within 3x of each
  problem's fastest (those decide the choice);
* with ``--backward``, per method and backward pass, a factor and a
  residual with the constants held.

The output is three Python literals to paste into
``convlab/algorithms/costs.py``: ``DEFAULT_CONSTANTS``, ``DEFAULT_FACTORS``
and ``DEFAULT_OVERHEADS``. Re-run it (on an idle machine) after changing a
method's implementation or cost model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pprint
import sys
import time

import numpy as np
import scipy.optimize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import problems as problem_set

import convlab as cl
from convlab.algorithms import DEFAULT_CONSTANTS, DEFAULT_FACTORS, DEFAULT_OVERHEADS, CostTerms
from convlab.tuning.calibration import LAUNCH, QUICK_CONSTANTS, measure_launch, measure_quick
from convlab.tuning.choice import scaled

FITTED = ("gemm_half", "gemm_call", "gather_bandwidth", "index_point", "sparse_op", "loop_peak_fraction",
          "kernel_call")
NEAR_FASTEST = 3.0
BACKWARD = ("backward_input", "backward_weight")
OVERHEAD_UNIT = 1e-5  # residuals are fitted as OVERHEAD_UNIT · exp(v)


def small_problems():
    """The crossover maps' kind of problem (batch 1, ``padding="same"``, float32): single-channel images
    of 32² to 256² and 32² images with 1 to 32 channels (C_out = C_in), kernels 1 to 21."""
    cells = [(c, 32, k) for c in (1, 4, 16) for k in (1, 3, 5, 9, 15)]
    cells += [(1, n, k) for n in (64, 128, 256) for k in (1, 3, 5, 9, 15, 21)]
    cells += [(c, 32, k) for c in (2, 8, 32) for k in (3, 7, 11)]
    return [problem_set.Problem(f"small: 1x{c}x{n}x{n} ->{c} k{k}", "small", (1, c, n, n), (c, c, k, k),
                                dict(padding="same"), "float32") for c, n, k in cells]


def split_small(problems):
    """Alternate problems into (fit, held-out): both halves cover every row of the grid."""
    return problems[0::2], problems[1::2]


def key(problem, pass_):
    return problem.name if pass_ == "forward" else f"{problem.name} [{pass_}]"


def measure(problems, repeats, path=None, pass_="forward"):
    """``{problem name: {method: seconds}}`` of ``pass_``, read from ``path`` when it has them, else
    measured (and written to ``path``; backward passes under ``"name [pass]"``)."""
    stored = {}
    if path and os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
    for i, p in enumerate(problems):
        if key(p, pass_) in stored:
            continue
        print(f"[{i + 1}/{len(problems)}] {key(p, pass_)}", file=sys.stderr, flush=True)
        # a method 10x slower than the fastest carries little weight in the fit: one probe call is enough
        stored[key(p, pass_)] = problem_set.time_methods(p, repeats=repeats, pass_=pass_, slow_s=0.3,
                                                         slow_factor=10.0, min_budget_s=0.3)
        if path:
            with open(path, "w") as f:
                json.dump(stored, f, indent=1)
    return {p.name: stored[key(p, pass_)] for p in problems}


def constants_from(quick, scales):
    """DEFAULT_CONSTANTS with the measured ones replaced and the fitted ones scaled by ``exp(scales)``."""
    out = {}
    for dtype, values in DEFAULT_CONSTANTS.items():
        c = dict(values, **quick[dtype])
        for name, s in zip(FITTED, scales):
            c[name] = values[name] * math.exp(s)
        out[dtype] = c
    return out


_specs = {}


def model(problem, constants, pass_="forward"):
    """``{method: (modelled seconds, their fixed part)}`` (before factor and residual) of every method
    that runs ``problem``; the factor scales only the part that is not fixed (``choice.scaled``)."""
    if problem.name not in _specs:  # one spec per problem: methods cache their geometry on it
        _specs[problem.name] = problem.spec()
    spec = _specs[problem.name]
    terms = CostTerms(constants[problem.dtype], problem.dtype)
    fixed = terms.fixed_only()
    return {m: (impl.predict_seconds(spec, terms, pass_), impl.predict_seconds(spec, fixed, pass_))
            for m in cl.methods() if cl.algorithms.verdict(spec, m).ok for impl in (cl.get_method(m),)}


def suffix(method, pass_):
    return method if pass_ == "forward" else f"{method}/{pass_}"


def predict(modelled, factors, overheads, pass_="forward"):
    def pick(table, m, default):
        return table.get(suffix(m, pass_), table.get(m, default))

    return {m: scaled(t, fixed, pick(factors, m, 1.0)) + pick(overheads, m, 0.0) for m, (t, fixed) in modelled.items()}


def errors(problems, measured, modelled, factors, overheads, pass_="forward"):
    """(log errors of every measured (problem, method), their weights, regrets of the predicted pick)."""
    logs, weights, regrets = [], [], []
    for p in problems:
        seconds = measured[p.name]
        predicted = predict(modelled[p.name], factors, overheads, pass_)
        fastest = min(seconds.values())
        for m, t in seconds.items():
            if m in predicted:
                logs.append(math.log(predicted[m] / t))
                weights.append(1.0 if t <= NEAR_FASTEST * fastest else 0.25)
        pick = min((m for m in predicted if m in seconds), key=predicted.get)
        regrets.append(seconds[pick] / fastest)
    return np.array(logs), np.array(weights), regrets


def fit_forward(problems, measured, quick, methods):
    """The FITTED constants' scales, and a factor and a residual per method, on the forward times."""
    k = len(FITTED) + len(methods)

    def unpack(v):
        return (v[:len(FITTED)], dict(zip(methods, np.exp(v[len(FITTED):k]))),
                dict(zip(methods, OVERHEAD_UNIT * np.exp(v[k:]))))

    cache = {}

    def loss(v):
        scales, factors, overheads = unpack(v)
        rounded_scales = tuple(np.round(scales, 4))
        if rounded_scales not in cache:  # the models depend on the constants only: reuse them meanwhile
            cache.clear()
            constants = constants_from(quick, scales)
            cache[rounded_scales] = {p.name: model(p, constants) for p in problems}
        logs, weights, _ = errors(problems, measured, cache[rounded_scales], factors, overheads)
        return float(np.sum(weights * logs ** 2) / np.sum(weights)) + 1e-3 * float(np.sum(v[:k] ** 2))

    start = np.zeros(k + len(methods))
    bounds = [(-4.0, 4.0)] * k + [(-8.0, 6.0)] * len(methods)
    result = scipy.optimize.minimize(loss, start, method="Powell", bounds=bounds,
                                     options=dict(maxfev=8000, xtol=1e-3, ftol=1e-5))
    scales, factors, overheads = unpack(result.x)
    return (constants_from(quick, scales), {m: round(float(f), 3) for m, f in factors.items()},
            {m: float(f"{o:.3g}") for m, o in overheads.items()})


def fit_pass(problems, measured, modelled, method, pass_):
    """``(factor, residual)`` of ``method`` for ``pass_``: the weighted squared log error, constants held."""
    pairs = []
    for p in problems:
        seconds = measured[p.name]
        if method in seconds and method in modelled[p.name]:
            fastest = min(seconds.values())
            weight = 1.0 if seconds[method] <= NEAR_FASTEST * fastest else 0.25
            total, fixed = modelled[p.name][method]
            pairs.append((max(total - fixed, 0.0), fixed, seconds[method], weight))
    if len(pairs) < 3:
        return None
    variable, fixed, meas, w = (np.array(v) for v in zip(*pairs))

    def loss(v):
        predicted = variable * math.exp(v[0]) + fixed + OVERHEAD_UNIT * math.exp(v[1])
        return float(np.sum(w * np.log(predicted / meas) ** 2) / np.sum(w)) + 1e-3 * v[0] ** 2

    result = scipy.optimize.minimize(loss, np.zeros(2), method="Powell", bounds=[(-4.0, 4.0), (-8.0, 6.0)],
                                     options=dict(xtol=1e-3, ftol=1e-6))
    return round(math.exp(result.x[0]), 3), float(f"{OVERHEAD_UNIT * math.exp(result.x[1]):.3g}")


def report(label, problems, measured, modelled, factors, overheads, pass_="forward"):
    if not problems:
        return
    logs, _, regrets = errors(problems, measured, modelled, factors, overheads, pass_)
    a = np.abs(logs)
    med, p90, worst = problem_set.ratios_summary(regrets)
    fastest = sum(r == 1.0 for r in regrets)
    print(f"  {label:<22} prediction error x{math.exp(np.median(a)):.2f} median, x{math.exp(np.percentile(a, 90)):.2f}"
          f" p90 ({len(logs)} timings); regret of the pick: median {med:.2f}, p90 {p90:.2f}, worst {worst:.2f}; "
          f"fastest picked {fastest}/{len(problems)}")


def rounded(constants):
    return {dt: {k: float(f"{v:.3g}") for k, v in sorted(c.items())} for dt, c in constants.items()}


def measured_constants(use_defaults):
    """The constants every machine measures: ``measure_quick`` and the launch cost (compiling the probe)."""
    if use_defaults:
        return {dt: {k: DEFAULT_CONSTANTS[dt][k] for k in (*QUICK_CONSTANTS, LAUNCH)} for dt in DEFAULT_CONSTANTS}
    launch = measure_launch(budget=0.5, compile=True)
    return {dt: dict(measure_quick(dt, budget=1.0), **{LAUNCH: launch}) for dt in DEFAULT_CONSTANTS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--count", type=int, default=64, help="random problems (both halves)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="24 random problems, 12 small ones, 2 repeats")
    parser.add_argument("--measurements", help="JSON file of measured times to reuse, written when missing")
    parser.add_argument("--backward", action="store_true",
                        help="also measure the backward passes and fit a factor and a residual per method and pass")
    parser.add_argument("--backward-only", action="store_true",
                        help="keep the built-in forward fit (DEFAULT_*) and fit only the backward passes")
    parser.add_argument("--defaults", action="store_true",
                        help="hold the measured constants at the current DEFAULT_CONSTANTS instead of measuring them")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cl.config.set_auto_measure(False)  # the fit prices with its own constants, never the cached ones
    randoms = problem_set.random_problems(args.count, args.seed)
    small = small_problems()
    if args.quick:
        randoms, small = randoms[:24], small[::3]
        args.repeats = min(args.repeats, 2)
    fit_random, held_random = problem_set.split(randoms)
    fit_small, held_small = split_small(small)
    fit_half, held_half = fit_random + fit_small, held_random + held_small
    quick = measured_constants(args.defaults)
    print("measured constants:", rounded(quick))
    passes = ["forward"] + (list(BACKWARD) if args.backward or args.backward_only else [])
    measured = {pass_: measure(fit_half + held_half, args.repeats, args.measurements, pass_) for pass_ in passes}
    print(f"measured in {time.perf_counter() - started:.0f} s")
    methods = list(cl.methods())
    before = {dt: dict(DEFAULT_CONSTANTS[dt], **quick[dt]) for dt in DEFAULT_CONSTANTS}
    if args.backward_only:  # keep the built-in forward fit, add the backward passes
        constants = {dt: dict(c, **quick[dt]) for dt, c in DEFAULT_CONSTANTS.items()}
        factors = {m: f for m, f in DEFAULT_FACTORS.items() if "/" not in m}
        overheads = {m: o for m, o in DEFAULT_OVERHEADS.items() if "/" not in m}
    else:
        constants, factors, overheads = fit_forward(fit_half, measured["forward"], quick, methods)
    for pass_ in passes:
        modelled_before = {p.name: model(p, before, pass_) for p in fit_half + held_half}
        modelled = {p.name: model(p, constants, pass_) for p in fit_half + held_half}
        if pass_ != "forward":
            for m in methods:
                fitted = fit_pass(fit_half, measured[pass_], modelled, m, pass_)
                if fitted is not None:
                    factors[f"{m}/{pass_}"], overheads[f"{m}/{pass_}"] = fitted
        print(f"{pass_}:")
        for label, group in (("random, fit", fit_random), ("random, held-out", held_random),
                             ("small, fit", fit_small), ("small, held-out", held_small),
                             ("all, fit", fit_half), ("all, held-out", held_half)):
            report(label + " (before)", group, measured[pass_], modelled_before, DEFAULT_FACTORS,
                   DEFAULT_OVERHEADS, pass_)
            report(label, group, measured[pass_], modelled, factors, overheads, pass_)
    print(f"\n# {time.perf_counter() - started:.0f} s in all; paste into convlab/algorithms/costs.py")
    print("DEFAULT_CONSTANTS: dict[str, dict[str, float]] = " + pprint.pformat(rounded(constants), width=110))
    print("DEFAULT_FACTORS: dict[str, float] = " + pprint.pformat(dict(sorted(factors.items())), width=110))
    print("DEFAULT_OVERHEADS: dict[str, float] = " + pprint.pformat(dict(sorted(overheads.items())), width=110))


if __name__ == "__main__":
    main()
