"""The direct method's compiled loops (:mod:`convlab.kernels.direct`) on depthwise layers and one huge plane.

Times ``forward``, ``backward_input`` (dx) and ``backward_weight`` (dw) of the
kernels themselves (no planning, no checks), as the minimum of ``--runs`` runs,
on one thread by default (single-thread minima are stable on a loaded machine).
With ``--baseline REV`` the kernel module of that git revision is loaded next
to the working tree's and both are timed back to back in the same process,
alternating, so that both see the same load::

    python benchmarks/bench_direct.py --baseline HEAD~3
    python benchmarks/bench_direct.py --threads 2 --runs 10
    python benchmarks/bench_direct.py --huge        # adds the 8192² single plane (seconds per run)
"""

import argparse
import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import convlab as cl  # noqa: E402
from convlab.kernels import direct as current  # noqa: E402

# name, x shape, w shape, padding (per axis), groups
CASES = [
    ("depthwise k3 8x64x56²", (8, 64, 56, 56), (64, 1, 3, 3), 1, 64),
    ("depthwise k13 8x32x64²", (8, 32, 64, 64), (32, 1, 13, 13), 6, 32),
    ("depthwise k3 s2 8x64x56²", (8, 64, 56, 56), (64, 1, 3, 3), 1, 64, 2),
    ("one plane k3 2048²", (1, 1, 2048, 2048), (1, 1, 3, 3), 1, 1),
]
HUGE = [
    ("one plane k3 8192²", (1, 1, 8192, 8192), (1, 1, 3, 3), 1, 1),
    ("one plane k15 8192²", (1, 1, 8192, 8192), (1, 1, 15, 15), 7, 1),
]


def _baseline(rev):
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:convlab/kernels/direct.py"],
                            check=True, capture_output=True, text=True).stdout
    path = pathlib.Path(tempfile.mkdtemp()) / "_direct_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("convlab.kernels._direct_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _passes(module, x, w, gy, pad, groups, stride):
    n = x.ndim - 2
    s, d, lo = (stride,) * n, (1,) * n, (pad,) * n
    return {
        "forward": lambda: module.forward(x, w, gy.shape[2:], s, d, lo),
        "dx": lambda: module.backward_input(gy, w, x.shape[2:], groups, s, d, lo),
        "dw": lambda: module.backward_weight(gy, x, w.shape[2:], groups, s, d, lo),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="git revision whose kernels to time alongside the working tree's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--huge", action="store_true", help="add the 8192² single plane (k3 and k15)")
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    cl.set_num_threads(args.threads)
    modules = {"new": current}
    if args.baseline:
        modules = {"old": _baseline(args.baseline), "new": current}
    rng = np.random.default_rng(0)
    print(f"minimum of {args.runs} runs, {args.threads} thread(s), float32, ms")
    for case in CASES + (HUGE if args.huge else []):
        name, xs, ws, pad, groups = case[:5]
        if args.only and args.only not in name:
            continue
        stride = case[5] if len(case) > 5 else 1
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        out = tuple((n + 2 * pad - k) // stride + 1 for n, k in zip(xs[2:], ws[2:]))
        gy = rng.standard_normal((xs[0], ws[0], *out), dtype=np.float32)
        runs = max(3, args.runs // 10) if xs[-1] >= 8192 else args.runs
        passes = {label: _passes(m, x, w, gy, pad, groups, stride) for label, m in modules.items()}
        for p in ("forward", "dx", "dw"):
            best = {label: np.inf for label in modules}
            for label in modules:
                passes[label][p]()  # compile or load
            for _ in range(runs):
                for label in modules:
                    start = time.perf_counter()
                    passes[label][p]()
                    best[label] = min(best[label], time.perf_counter() - start)
            figures = "  ".join(f"{label} {best[label] * 1e3:8.2f}" for label in modules)
            print(f"{name:26s} {p:8s} {figures}")


if __name__ == "__main__":
    main()
