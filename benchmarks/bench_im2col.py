"""Forward and backward times of direct, im2col and toeplitz on CNN-like layers (float32).

Prints, per layer and method, the median (convlab.harness) of ``--repeat`` samples of the wall time of the
forward pass and of the backward pass (``dx`` and ``dW``), and the achieved
GFLOP/s (``plan.flops`` per pass, the backward counted as two such products),
next to the GFLOP/s of one large float32 ``np.matmul`` measured in the same
run: the ceiling a GEMM-based method can reach on this machine. PyTorch's
forward time is shown when torch is installed.

Run::

    /work/venv/bin/python benchmarks/bench_im2col.py [--repeat 5] [--quick]
"""

import argparse

import numpy as np

import convlab as cl
from convlab import harness
from convlab.case import Case
from convlab.report.peers import Unavailable, get_peer

LAYERS = [  # (name, x_shape, w_shape, params)
    ("resnet 3x3 64->64 56x56", (8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
    ("3x3 128->128 28x28 s1", (8, 128, 28, 28), (128, 128, 3, 3), dict(padding=1)),
    ("3x3 64->128 56x56 s2", (8, 64, 56, 56), (128, 64, 3, 3), dict(padding=1, stride=2)),
    ("1x1 256->64 14x14", (8, 256, 14, 14), (64, 256, 1, 1), dict()),
    ("5x5 16->16 32x32", (4, 16, 32, 32), (16, 16, 5, 5), dict(padding=2)),
    ("1-D k9 32->32 n=2048", (4, 32, 2048), (32, 32, 9), dict(padding="same")),
]
METHODS = ("direct", "im2col", "toeplitz")


def seconds(fn, repeat):
    """Median seconds per call (:func:`convlab.harness.time_interleaved`, one warm-up call)."""
    return harness.time_interleaved({"f": fn}, repeat)["f"].median


def torch_forward(name, x_shape, w_shape, params, repeat):
    """Forward seconds of the report's torch peer on the same layer, or ``None`` without torch."""
    torch_peer = get_peer("torch")
    if not torch_peer.available():
        return None
    case = Case(x_shape, w_shape, "float32", name=name, **params)
    try:
        runner = torch_peer.runner(case, "float32", *case.arrays())
    except Unavailable:
        return None
    return seconds(runner.forward, repeat)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="only the first layer and the smallest")
    args = parser.parse_args(argv)
    layers = [LAYERS[0], LAYERS[4]] if args.quick else LAYERS
    peak = harness.gemm_flops("float32", 2048) / 1e9
    print(f"float32 np.matmul 2048x2048: {peak:.1f} GFLOP/s (measured now; the machine may be shared)")
    print(f"{'layer':26s} {'method':9s} {'forward ms':>11s} {'GFLOP/s':>8s} {'backward ms':>12s} {'GFLOP/s':>8s}")
    rng = np.random.default_rng(1)
    for name, x_shape, w_shape, params in layers:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32)
        for method in METHODS:
            p = cl.plan(x_shape, w_shape, np.float32, method=method, **params)
            gy = np.ones(p.output_shape, np.float32)
            try:
                fwd = seconds(lambda: p.forward(x, w), args.repeat)
                bwd = seconds(lambda: (p.backward_input(gy, w), p.backward_weight(gy, x)), args.repeat)
            except cl.WorkspaceLimitError as exc:
                print(f"{name:26s} {method:9s} refused: needs {exc.needed / 2**20:.0f} MiB "
                      f"> limit {exc.limit / 2**20:.0f} MiB")
                continue
            print(f"{name:26s} {method:9s} {fwd * 1e3:11.2f} {p.flops / fwd / 1e9:8.1f} "
                  f"{bwd * 1e3:12.2f} {2 * p.flops / bwd / 1e9:8.1f}")
        t = torch_forward(name, x_shape, w_shape, params, args.repeat)
        if t is not None:
            print(f"{name:26s} {'torch':9s} {t * 1e3:11.2f} {p.flops / t / 1e9:8.1f}")


if __name__ == "__main__":
    main()
