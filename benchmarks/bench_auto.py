"""Regret of ``method="auto"``: the time of the method it picks over the fastest method's, per problem.

    PYTHONPATH=. python benchmarks/bench_auto.py            # 64 random problems + the peers cases
    PYTHONPATH=. python benchmarks/bench_auto.py --quick    # 16 + 4, fewer repeats: a few minutes
    PYTHONPATH=. python benchmarks/bench_auto.py --no-measure   # built-in constants only

The problems are ``problems.random_problems(count, seed)`` (the same draw
``fit_cost_model.py`` fits on: its fit half, and a held-out half the fit never
saw) plus the CNN layers and large-kernel cases of ``bench_vs_peers.py``.
For each, every runnable method is timed through ``cl.conv(..., method=name)``
(interleaved, minimum of several samples: ``problems.time_methods``), and
auto's pick is what ``cl.plan(..., method="auto")`` resolves to in this
process, with a fresh empty cache directory and no calibration (so the first
choice measures the machine constants, unless ``--no-measure``).

Backward (unless ``--no-backward``): each pass ``plan.backward_input`` and
``plan.backward_weight`` is timed per method the same way, and the per-pass
pick is what ``method="auto"`` picks for that pass
(``cl.choose_method(spec, pass_=...)``: each method's cost model for the
pass, times its factor, plus its fixed cost).

Printed: the ratio picked / fastest, median, 90th percentile and worst, for
each half and for the peers cases, against the targets (forward <= 1.05
median, <= 1.25 p90, <= 2.0 worst; backward <= 1.10 median, <= 2.0 worst),
and the worst five with every method's predicted and measured times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import problems as problem_set

TARGETS = {"forward": (1.05, 1.25, 2.0), "backward": (1.10, None, 2.0)}


def predicted_pass(problem, pass_):
    """``{method: predicted seconds}`` of ``pass_``, exactly as ``method="auto"`` ranks them (the active
    calibration, factor and residual of that pass, accuracy rule included)."""
    from convlab.tuning import predictions

    return {r.method: r.seconds for r in predictions(problem.spec(), pass_=pass_) if r.seconds is not None}


def run(problem, pass_, repeats):
    import convlab as cl

    predicted = predicted_pass(problem, pass_)
    if pass_ == "forward":
        pick = cl.plan(problem.x_shape, problem.w_shape, problem.dtype, **problem.params).method
    else:
        pick = cl.choose_method(problem.spec(), pass_=pass_)
    seconds = problem_set.time_methods(problem, repeats=repeats, pass_=pass_)
    fastest = min(seconds, key=seconds.get)
    return dict(problem=problem, pass_=pass_, pick=pick, fastest=fastest, ratio=seconds[pick] / seconds[fastest],
                seconds=seconds, predicted=predicted)


def summary_line(label, rows, targets):
    med, p90, worst = problem_set.ratios_summary([r["ratio"] for r in rows])
    goals = []
    for name, value, target in zip(("median", "p90", "worst"), (med, p90, worst), targets):
        if target is not None:
            goals.append(f"{name} {value:.2f} (target <= {target}: {'met' if value <= target else 'MISSED'})")
        else:
            goals.append(f"{name} {value:.2f}")
    fastest = sum(r["pick"] == r["fastest"] for r in rows)
    return f"  {label:<9} n={len(rows):<3} " + ", ".join(goals) + f"; picked the fastest on {fastest}/{len(rows)}"


def worst_five(rows):
    for r in sorted(rows, key=lambda r: -r["ratio"])[:5]:
        print(f"  {r['ratio']:.2f}x  {r['problem'].name} [{r['pass_']}]: picked {r['pick']}, fastest {r['fastest']}")
        for m in sorted(r["seconds"], key=r["seconds"].get):
            p = r["predicted"].get(m)
            print(f"      {m:<10} measured {r['seconds'][m] * 1e3:10.3f} ms   predicted "
                  + (f"{p * 1e3:10.3f} ms" if p is not None else "-"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="16 random problems, 4 peers cases, 3 repeats")
    parser.add_argument("--no-backward", action="store_true")
    parser.add_argument("--no-measure", action="store_true", help="CONVLAB_AUTO_MEASURE=0: built-in constants")
    args = parser.parse_args(argv)
    # a fresh cache: no calibration, no stored machine constants, no autotune results
    os.environ["CONVLAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="convlab-bench-auto-")
    os.environ["CONVLAB_AUTO_MEASURE"] = "0" if args.no_measure else "1"
    import convlab as cl
    from convlab.tuning import get_calibration, wait_for_measurement

    randoms = problem_set.random_problems(args.count, args.seed)
    peers = problem_set.peer_cases()
    if args.quick:
        randoms, peers = randoms[:16], [peers[i] for i in (1, 3, 7, 9)]
        args.repeats = min(args.repeats, 3)
    fit, held = problem_set.split(randoms)
    groups = {"fit": fit, "held-out": held, "peers": peers}
    passes = ["forward"] + ([] if args.no_backward else ["backward_input", "backward_weight"])
    get_calibration()  # the first choice's measurement (in the background), outside every timing
    wait_for_measurement()
    rows = {(g, p): [] for g in groups for p in passes}
    total = sum(map(len, groups.values()))
    done = 0
    for group, problems in groups.items():
        for problem in problems:
            done += 1
            print(f"[{done}/{total}] {problem.name}", file=sys.stderr, flush=True)
            for pass_ in passes:
                rows[group, pass_].append(run(problem, pass_, args.repeats))
    cal = get_calibration()
    print(f"constants: {cal.source}; methods: {', '.join(cl.methods())}")
    for pass_ in passes:
        print(f"{pass_}: picked / fastest")
        for group in groups:
            print(summary_line(group, rows[group, pass_], TARGETS["forward" if pass_ == "forward" else "backward"]))
    for pass_ in passes:
        print(f"worst five, {pass_}:")
        worst_five([r for g in groups for r in rows[g, pass_]])


if __name__ == "__main__":
    main()
