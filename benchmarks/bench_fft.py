"""Forward and backward times of the FFT methods against direct and im2col, and the crossover kernel.

Two problems, ``padding="same"``, float32, kernels 3, 7, 15 and 31:

- a 256×256 single-channel image, ``(1, 1, 256, 256)`` with ``(1, 1, k, k)``;
- a 16-channel batch, ``(4, 16, 128, 128)`` with ``(16, 16, k, k)``.

Each time is the median of ``--repeat`` runs (convlab.harness) through a prepared plan (FFTW
plans and weight spectra already built, as in a training loop); a run slower
than 5 s is not repeated. The crossover is the smallest kernel at which
``fft`` (or ``fft_tiled``) beats the faster of direct and im2col, forward plus
backward.

Run::

    /work/venv/bin/python benchmarks/bench_fft.py [--repeat 3] [--json out.json]
"""

import argparse
import json

import numpy as np

import convlab as cl
from convlab import harness

KERNELS = (3, 7, 15, 31)
PROBLEMS = {"256x256 image": ((1, 1, 256, 256), 1), "16ch 128x128 batch of 4": ((4, 16, 128, 128), 16)}
BASELINES = ("direct", "im2col")
FFT_METHODS = ("fft", "fft_tiled")


def best_time(fn, repeat):
    """Median seconds per call (:func:`convlab.harness.time_interleaved`); rounds stop after 5 s."""
    return harness.time_interleaved({"f": fn}, repeat, warmup=0, max_time_s=5.0)["f"].median


def run(method, x_shape, w_shape, repeat, rng):
    p = cl.plan(x_shape, w_shape, np.float32, padding="same", method=method)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    gy = rng.standard_normal(p.output_shape).astype(np.float32)
    p.forward(x, w)
    p.backward(gy, x, w)  # warm-up: plans, caches
    return best_time(lambda: p.forward(x, w), repeat), best_time(lambda: p.backward(gy, x, w), repeat)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    methods = [m for m in (*BASELINES, *FFT_METHODS) if m in cl.methods()]
    print(f"FFT backend: {cl.get_fft_backend()}")
    results = {}
    for label, (x_shape, c_out) in PROBLEMS.items():
        print(f"\n{label}: x {x_shape}, forward / backward ms")
        print(f"{'k':>3} " + " ".join(f"{m:>20}" for m in methods))
        rows = results[label] = {}
        for k in KERNELS:
            w_shape = (c_out, x_shape[1], k, k)
            rows[k] = {m: run(m, x_shape, w_shape, args.repeat, rng) for m in methods}
            print(f"{k:>3} " + " ".join(f"{1e3 * f:>9.1f} /{1e3 * b:>9.1f}" for f, b in rows[k].values()))
        for fft_method in FFT_METHODS:
            if fft_method not in methods:
                continue
            crossover = next((k for k in KERNELS if sum(rows[k][fft_method]) <
                              min(sum(rows[k][m]) for m in BASELINES if m in methods)), None)
            print(f"crossover ({fft_method} faster than {'/'.join(m for m in BASELINES if m in methods)},"
                  f" forward+backward): k = {crossover if crossover else f'> {KERNELS[-1]}'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({label: {str(k): v for k, v in rows.items()} for label, rows in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
