"""Every convlab method on the CNN layers and large-kernel cases of issue 12, against PyTorch, with efficiency.

For each case: each method's forward and forward+backward median, torch's
(timed in alternating blocks of back-to-back calls with convlab's, same thread count:
``cl.num_threads`` sets numba's, BLAS's and FFTW's pools and
``torch.set_num_threads`` torch's), the ratios, and each method's efficiency
against its own limit on a roofline:

* the machine's limits are measured here: a large float32 GEMM's GFLOP/s and
  a large memory copy's GB/s (read + write);
* a case whose arithmetic intensity (direct-convolution FLOPs per byte of
  ``x``, ``w`` and ``y``) is below the machine balance (GEMM GFLOP/s over copy
  GB/s) is memory-bound: efficiency is the achieved GB/s (those bytes over the
  time) against the copy bandwidth; otherwise it is GEMM-bound and
  efficiency is the effective GFLOP/s (direct-convolution FLOPs over the time,
  so Winograd and FFT can exceed 100%) against the GEMM rate.

Then the targets of issue 12 for ``method="auto"``, each printed as MET or
MISSED with its figure. Ratios are of medians from this one run; on a loaded
machine they are noisy.

usage:  python benchmarks/bench_kernels.py [--threads N] [--repeats 7] [--budget 3] [--cnn-only]
"""

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_peers import CNN, LARGE, Case, scipy_runners, torch_runners

import convlab as cl
from convlab.tuning import wait_for_background

try:
    from convlab.tuning import predictions
except ImportError:  # the cost model is moving into a tuning package
    from convlab.tuning.selection import predictions


def _sample(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def block_medians(runners, repeats, budget, block=5):
    """Median seconds of each runner, sampled in alternating blocks of ``block`` back-to-back calls.

    Calling torch and convlab one call each in turn would make each pay for
    the other's thread pools still spinning (measured: torch's first layer
    went from 0.11 ms alone to 10 ms interleaved call by call), so each
    runner gets a block of consecutive calls per round, the first of which is
    untimed (it wakes this library's pools). Each round runs the blocks in a
    new random order (seeded), so that no runner always follows the same one:
    with a fixed rotation, ``auto`` always came right after the slowest method
    (a 0.6 s im2col call on the k31 image) and read 1.3-1.5x slower than the
    row of the identical method it picked, in the same run (4x16x128² k15:
    18.5 ms against fft's 12.8); shuffled, the two rows agree (17.7 and
    17.7 ms in the next idle run). Rounds stop after ``repeats``
    or once ``budget`` seconds have been spent (at least three rounds), so
    load from other work still hits every runner alike.
    Every runner is called three times first (compiles, caches; the third call queues FFTW's
    measured plans, which are waited for, so that no planning thread runs while timing) untimed.
    """
    names = list(runners)
    for name in names:
        for _ in range(3):  # the third call queues FFTW's measured plans: wait for them
            runners[name]()
    wait_for_background()  # FFTW's plans, the kernels a first call left loading, the machine's measurement
    samples = {name: [] for name in names}
    spent = 0.0
    shuffle = np.random.default_rng(len(names)).permutation
    for r in range(repeats):
        for name in (names[i] for i in shuffle(len(names))):
            runners[name]()
            for _ in range(block - 1):
                t = _sample(runners[name])
                samples[name].append(t)
                spent += t
        if spent > budget and r >= 2:
            break
    return {name: float(np.median(v)) for name, v in samples.items()}


def gemm_gflops(repeats):
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    return 2 * 2048 ** 3 / block_medians({"gemm": lambda: a @ a}, repeats, 5.0)["gemm"] / 1e9


def copy_gbs(repeats):
    src = np.ones(64 << 20, np.float32)       # 256 MiB, far beyond any cache
    dst = np.empty_like(src)
    seconds = block_medians({"copy": lambda: np.copyto(dst, src)}, repeats, 5.0)["copy"]
    return 2 * src.nbytes / seconds / 1e9


def case_bytes(case):
    p = case.ref_plan
    return (case.x.nbytes + case.w.nbytes + math.prod(p.output_shape) * case.dtype.itemsize)


def methods_to_time(case, max_seconds):
    """Methods that support the case and are not predicted to take more than ``max_seconds`` a call."""
    auto = cl.plan(case.x.shape, case.w.shape, case.dtype, autotune=False, **case.params)
    chosen = []
    for r in predictions(auto):
        if r.seconds is None:
            continue
        # the cost model predates the compiled kernels (direct's loops are far faster than it assumes)
        if r.seconds <= max_seconds or (r.method == "direct" and r.seconds <= 50 * max_seconds):
            chosen.append(r.method)
    return auto.method, chosen


def run_case(case, args, with_backward):
    auto_method, names = methods_to_time(case, args.max_predicted)
    plans = {m: cl.plan(case.x.shape, case.w.shape, case.dtype, method=m, **case.params) for m in names}
    # auto as a user gets it: its own plan, which chooses dx's and dw's methods on its first backward
    plans["auto"] = auto = cl.plan(case.x.shape, case.w.shape, case.dtype, **case.params)
    torch_fwd, torch_fb = torch_runners(case, args.threads)
    fwd = {"torch": torch_fwd}
    fwd.update({m: (lambda p=p: p.forward(case.x, case.w)) for m, p in plans.items()})
    row = {"name": case.name, "kind": case.kind, "auto_method": auto_method, "flops": case.flops,
           "bytes": case_bytes(case), "fwd": block_medians(fwd, args.repeats, args.budget)}
    if with_backward:
        fb = {"torch": torch_fb}
        fb.update({m: (lambda p=p: (p.forward(case.x, case.w), p.backward(case.gy, case.x, case.w)))
                   for m, p in plans.items()})
        row["fb"] = block_medians(fb, args.repeats, args.budget)
        auto_method = "/".join([auto.method, *auto.backward_methods])
        row["auto_method"] = auto_method
    if case.kind == "dense2d":
        fft_s, oa_s = scipy_runners(case)
        sp = block_medians({"fftconvolve": fft_s, "oaconvolve": oa_s}, args.repeats, args.budget)
        row["scipy"] = min(sp.values())
    return row


def efficiency(row, seconds, gemm, bandwidth):
    """``(percent, unit)`` of the method's roofline limit (see the module docstring)."""
    intensity = row["flops"] / row["bytes"]
    if intensity < gemm / bandwidth:
        return 100 * row["bytes"] / seconds / 1e9 / bandwidth, "copy GB/s"
    return 100 * row["flops"] / seconds / 1e9 / gemm, "GEMM GFLOP/s"


def print_case(row, gemm, bandwidth):
    torch_f, torch_fb = row["fwd"]["torch"], row.get("fb", {}).get("torch")
    _, unit = efficiency(row, 1.0, gemm, bandwidth)
    print(f"\n{row['name']}  ({row['flops'] / 1e9:.2f} GFLOP, {row['bytes'] / 1e6:.1f} MB; efficiency vs {unit};"
          f" auto picks {row['auto_method']})")
    print(f"  {'method':<10}{'fwd ms':>9}{'/torch':>8}{'fwd+bwd ms':>12}{'/torch':>8}{'eff fwd':>9}")
    fb_torch = f"{torch_fb * 1e3:>12.2f}{'':>8}" if torch_fb else f"{'':>20}"
    print(f"  {'torch':<10}{torch_f * 1e3:>9.2f}{'':>8}{fb_torch}{efficiency(row, torch_f, gemm, bandwidth)[0]:>8.0f}%")
    for m in sorted((m for m in row["fwd"] if m != "torch"), key=row["fwd"].get):
        f = row["fwd"][m]
        line = f"  {m:<10}{f * 1e3:>9.2f}{f / torch_f:>8.2f}"
        if torch_fb:
            b = row["fb"][m]
            line += f"{b * 1e3:>12.2f}{b / torch_fb:>8.2f}"
        else:
            line += f"{'':>20}"
        print(line + f"{efficiency(row, f, gemm, bandwidth)[0]:>8.0f}%")


def targets(cnn, large, gemm):
    results = []

    def target(text, value, limit):
        ok = value <= limit
        results.append(ok)
        print(f"  {'MET' if ok else 'MISSED':<7} {text}: {value:.2f} (target <= {limit})")

    geo = lambda v: math.exp(sum(map(math.log, v)) / len(v))
    print("\ntargets (issue 12), method='auto' unless named:")
    fwd = [r["fwd"]["auto"] / r["fwd"]["torch"] for r in cnn]
    fb = [r["fb"]["auto"] / r["fb"]["torch"] for r in cnn]
    for r, a, b in zip(cnn, fwd, fb):
        print(f"          {r['name']:<26} auto ({r['auto_method']})/torch forward {a:.2f}, forward+backward {b:.2f}")
    target("CNN geometric mean auto/torch forward", geo(fwd), 1.0)
    target("CNN geometric mean auto/torch forward+backward", geo(fb), 1.2)
    target("worst CNN layer auto/torch (forward and forward+backward)", max(fwd + fb), 2.0)
    dw3 = next(r for r in cnn if "dw k3" in r["name"])
    target(f"{dw3['name']} auto/torch forward", dw3["fwd"]["auto"] / dw3["fwd"]["torch"], 0.7)
    best_dw3 = min((m for m in dw3["fwd"] if m not in ("torch", "auto")), key=dw3["fwd"].get)
    print(f"          (fastest method there: {best_dw3}, {dw3['fwd'][best_dw3] / dw3['fwd']['torch']:.2f} x torch)")
    for r in large:
        a = r["fwd"]["auto"] / r["fwd"]["torch"]
        limit = 1.0 if r["kind"] == "depthwise" else 0.4 if "k15" in r["name"] and "16x128" in r["name"] else 0.5
        target(f"{r['name']}: auto/torch", a, limit)
        if "scipy" in r:
            target(f"{r['name']}: auto / min(scipy fftconvolve, oaconvolve)",
                   r["fwd"]["auto"] / r["scipy"], 0.8)
    layer = next(r for r in cnn if r["name"].startswith("8x64x56x56 ->64"))
    best = min((m for m in layer["fwd"] if m not in ("torch", "auto")), key=layer["fwd"].get)
    achieved = layer["flops"] / layer["fwd"][best] / 1e9
    print(f"          64->64 3x3: best method {best} at {achieved:.1f} effective GFLOP/s; GEMM {gemm:.1f} GFLOP/s")
    target("64->64 3x3 best method: 0.7 / (effective GFLOP/s / GEMM GFLOP/s)  [i.e. >= 70% of GEMM]",
           0.7 / (achieved / gemm), 1.0)
    print(f"\n{sum(results)} of {len(results)} targets met")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=cl.get_num_threads(), help="threads for convlab and torch")
    parser.add_argument("--repeats", type=int, default=7, help="rounds of alternating samples (median)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds after which a case stops sampling")
    parser.add_argument("--max-predicted", type=float, default=2.0,
                        help="skip methods the cost model predicts over this many seconds a call")
    parser.add_argument("--cnn-only", action="store_true", help="the seven CNN layers only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with cl.num_threads(args.threads):
        gemm, bandwidth = gemm_gflops(args.repeats), copy_gbs(args.repeats)
        print(f"convlab {cl.__version__}; {args.threads} threads for numba, BLAS, FFTW and torch; "
              f"float32 2048^3 GEMM {gemm:.1f} GFLOP/s; 256 MiB copy {bandwidth:.1f} GB/s "
              f"(balance {gemm / bandwidth:.1f} FLOP/byte)")
        cnn, large = [], []
        for spec in CNN:
            cnn.append(run_case(Case(*spec, np.float32, "cnn"), args, with_backward=True))
            print_case(cnn[-1], gemm, bandwidth)
        if not args.cnn_only:
            for spec in LARGE:
                large.append(run_case(Case(*spec), args, with_backward=False))
                print_case(large[-1], gemm, bandwidth)
        targets(cnn, large, gemm)
    print(f"total {time.perf_counter() - started:.0f} s (loaded machines give noisy ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
