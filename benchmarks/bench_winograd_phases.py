"""Winograd's per-phase times (forward, backward_input, backward_weight) on two layers, best of ``--repeats``.

usage:  python benchmarks/bench_winograd_phases.py [--repeats 20] [--threads 1 2]

Prints, per layer and pass, the best total and the best time of each phase
(:func:`convlab.phases.record`) at each thread count of ``--threads`` (default: the
library's default); with PyTorch installed, torch's forward on the same thread count for comparison.
On a shared machine compare single-thread minima (``--threads 1``): they are stable under load.
"""

import argparse
import time

import numpy as np

import convlab as cl
from convlab.phases import record

LAYERS = [((4, 16, 32, 32), (16, 16, 3, 3)), ((8, 64, 56, 56), (64, 64, 3, 3))]


def best_phases(fn, repeats):
    best_total, best = float("inf"), {}
    for _ in range(repeats):
        with record() as times:
            start = time.perf_counter()
            fn()
            total = time.perf_counter() - start
        best_total = min(best_total, total)
        for k, v in times.items():
            best[k] = min(best.get(k, float("inf")), v)
    return best_total, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="*", default=[None], help="thread counts to run (default: all)")
    args = parser.parse_args()
    for threads in args.threads:
        if threads is not None:
            cl.set_num_threads(threads)
        print(f"threads {cl.get_num_threads()}")
        run(args)


def run(args):
    rng = np.random.default_rng(0)
    for xs, ws in LAYERS:
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        plan = cl.plan(x.shape, w.shape, np.float32, padding=1, method="winograd")
        y = plan.forward(x, w)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        passes = {"forward": lambda: plan.forward(x, w), "backward_input": lambda: plan.backward_input(dy, w),
                  "backward_weight": lambda: plan.backward_weight(dy, x)}
        print(f"x {xs} w {ws}")
        for name, fn in passes.items():
            total, phases = best_phases(fn, args.repeats)
            detail = "  ".join(f"{k} {v * 1e3:.3f}" for k, v in phases.items())
            print(f"  {name:16s} {total * 1e3:8.3f} ms   {detail}")
        try:
            import torch
        except ImportError:
            continue
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        torch.set_num_threads(cl.get_num_threads())
        with torch.no_grad():
            total, _ = best_phases(lambda: torch.nn.functional.conv2d(tx, tw, padding=1), args.repeats)
        print(f"  {'torch forward':16s} {total * 1e3:8.3f} ms  (torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
