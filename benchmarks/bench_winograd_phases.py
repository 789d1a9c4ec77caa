"""Winograd's per-phase times (forward, backward_input, backward_weight) on two layers, best of ``--repeats``.

usage:  python benchmarks/bench_winograd_phases.py [--repeats 20] [--threads 1 2] [--floor] [--spread]

Prints, per layer and pass, the best total and the best time of each phase
(:func:`convlab.phases.record`) at each thread count of ``--threads`` (default: the
library's default); with PyTorch installed, torch's forward on the same thread count for comparison.
On a shared machine compare single-thread minima (``--threads 1``): they are stable under load.

``--floor`` times, for one sample of the 56² layer, the ``tiles`` and ``untiles`` kernels against
kernels that only store the same ``(α, C, N·T)`` layout, or only copy it contiguously: the floor of
the layout itself. ``--spread`` runs the 56² forward ``--repeats`` times and prints the distribution
(min, quartiles, max), to see the variance between runs.
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
    parser.add_argument("--floor", action="store_true", help="the transform kernels against store-only kernels")
    parser.add_argument("--spread", action="store_true", help="the distribution of the 56² forward's times")
    args = parser.parse_args()
    for threads in args.threads:
        if threads is not None:
            cl.set_num_threads(threads)
        print(f"threads {cl.get_num_threads()}")
        if args.floor:
            floor(args)
        elif args.spread:
            spread(args)
        else:
            run(args)


def _best(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def floor(args):
    """One sample of the 56² layer: each transform kernel against stores of the same layout."""
    import numba

    from convlab.algorithms.winograd import Tiling
    from convlab.kernels import winograd as kernels

    @numba.njit
    def store_layout(out, channels, tiles):
        # the write pattern of the tiles kernel: per channel, alpha rows of `tiles` values, C rows apart
        for c in range(channels):
            for a in range(out.shape[0] // channels):
                row = np.uintp(a * channels + c)
                for t in range(tiles):
                    out[row, np.uintp(t)] = 1.0

    @numba.njit
    def store_contiguous(out):
        flat = out.reshape(-1)
        for i in range(flat.size):
            flat[np.uintp(i)] = 1.0

    rng = np.random.default_rng(0)
    (_, c, h, w), _ = LAYERS[-1]
    x = rng.standard_normal((1, c, h, w), dtype=np.float32)
    tiling = Tiling((h + 2, w + 2), (3, 3), np.float32)
    row = tiling.counts[-1] + kernels.reach(tiling.per_axis[-1][2], tiling.ms[-1])   # as the method lays out tiles
    tiles = kernels.columns(tiling.counts, row)
    alpha = len(tiling.BT)
    v = np.empty((alpha, c, tiles), np.float32)
    y = np.empty_like(x)
    cases = {
        "tiles (transform_input)": lambda: kernels.tiles(x, tiling.matrices(2), tiling.ms, (1, 1), tiling.counts,
                                                         out=v, row=row),
        "untiles (transform_output)": lambda: kernels.untiles(v, tiling.matrices(0), tiling.counts, 1, (h, w), out=y,
                                                              row=row),
        "store-only, same layout": lambda: store_layout(v.reshape(alpha * c, tiles), c, tiles),
        "store-only, contiguous": lambda: store_contiguous(v),
        "numpy copy of the tiles": lambda: np.copyto(v, v[::-1]),
    }
    print(f"one sample of x {(1, c, h, w)}: {v.size / 1e6:.2f} M transformed values ({v.nbytes / 2**20:.1f} MiB)")
    for name, fn in cases.items():
        fn()
        best = _best(fn, args.repeats)
        print(f"  {name:28s} {best * 1e3:7.3f} ms  {best / v.size * 1e9:6.3f} ns per transformed value")


def spread(args):
    """The 56² forward ``--repeats`` times: min, quartiles and max, to see the variance between runs."""
    rng = np.random.default_rng(0)
    xs, ws = LAYERS[-1]
    x, w = rng.standard_normal(xs, dtype=np.float32), rng.standard_normal(ws, dtype=np.float32)
    plan = cl.plan(x.shape, w.shape, np.float32, padding=1, method="winograd")
    plan.forward(x, w)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        plan.forward(x, w)
        times.append(time.perf_counter() - start)
    q = np.percentile(np.array(times) * 1e3, [0, 25, 50, 75, 100])
    print(f"  x {xs} forward, {args.repeats} runs (ms): min {q[0]:.2f}  q1 {q[1]:.2f}  median {q[2]:.2f}  "
          f"q3 {q[3]:.2f}  max {q[4]:.2f}")


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
