"""Accuracy of the FFT methods: relative error against an extended-precision direct sum.

For square single-channel images of side 32 to 2048 and square kernels of
side 3 to 63 (``padding="same"``, standard normal data), each FFT method runs
in float32 and float64; the reference is the direct correlation in
``np.longdouble`` at up to ``--samples`` random output positions (a full
direct 2048² × 63² reference would take minutes). The error is the suite's
normwise measure ``max|y - ref| / max|ref|`` over those positions, and the
float32 inputs are the rounded float64 ones, so only the method's error is
measured.

Run::

    /work/venv/bin/python benchmarks/fft_accuracy.py            # ~1 minute
    /work/venv/bin/python benchmarks/fft_accuracy.py --json out.json
"""

import argparse
import json
import time

import numpy as np

import convlab as cl

SIZES = (32, 128, 512, 2048)
KERNELS = (3, 7, 15, 31, 63)
METHODS = ("fft", "fft_tiled")
DTYPES = ("float32", "float64")


def reference_at(x, w, positions, pad):
    """Direct correlation at ``positions`` (rows, cols) of the "same" output, in long double."""
    k0, k1 = w.shape
    xp = np.pad(x.astype(np.longdouble), ((pad[0], k0 - 1 - pad[0]), (pad[1], k1 - 1 - pad[1])))
    rows, cols = positions
    windows = xp[rows[:, None, None] + np.arange(k0)[:, None], cols[:, None, None] + np.arange(k1)]
    return np.einsum("pij,ij->p", windows, w.astype(np.longdouble))


def measure(n, k, method, dtype, samples, rng):
    x = rng.standard_normal((n, n))
    w = rng.standard_normal((k, k))
    p = cl.plan((1, 1, n, n), (1, 1, k, k), dtype, padding="same", method=method)
    y = p.forward(x[None, None].astype(dtype), w[None, None].astype(dtype))[0, 0]
    count = min(samples, n * n)
    flat = rng.choice(n * n, size=count, replace=False)
    positions = np.unravel_index(flat, (n, n))
    xr, wr = x.astype(dtype).astype(np.float64), w.astype(dtype).astype(np.float64)
    ref = reference_at(xr, wr, positions, (p.padding[0][0], p.padding[1][0]))
    got = y[positions].astype(np.longdouble)
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="reference positions per case")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    results, start = [], time.perf_counter()
    print(f"{'n':>5} {'k':>3} " + " ".join(f"{m + '/' + d:>18}" for m in METHODS for d in DTYPES))
    for n in SIZES:
        for k in KERNELS:
            if k > n:
                continue
            row = {}
            for method in METHODS:
                for dtype in DTYPES:
                    row[f"{method}/{dtype}"] = measure(n, k, method, dtype, args.samples, rng)
            results.append(dict(n=n, k=k, **row))
            print(f"{n:>5} {k:>3} " + " ".join(f"{v:>18.2e}" for v in row.values()))
    for key in results[0]:
        if "/" in key:
            print(f"max {key}: {max(r[key] for r in results):.2e}")
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
