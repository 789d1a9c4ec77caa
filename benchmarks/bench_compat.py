"""convlab.signal against scipy.signal, and convlab.torch against torch.nn, as ratios of medians.

* ``convlab.signal.convolve`` / ``fftconvolve`` / ``oaconvolve`` against scipy's
  on 1-D, 2-D and 3-D problems (float64, and the 2-D image in float32) in
  ``mode="full"``, ``"same"`` and ``"valid"``; the ``best`` column compares
  convlab with the faster of scipy's ``fftconvolve`` and ``oaconvolve``;
* ``convlab.torch.Conv2d(16, 16, 31, padding=15, method="fft")`` forward +
  backward on ``(8, 16, 128, 128)`` against ``torch.nn.Conv2d`` (float32), and
  the 1-D ``Conv1d(1, 1, 1025, padding=512)`` on ``(8, 1, 65536)``.

* ``--small``: the fixed cost per call, on the small and mid inputs where it
  decides: ``convolve`` (``method="auto"``) and ``fftconvolve`` on 1-D
  ``(1000,) x (31,)`` and ``(10000,) x (101,)``, 2-D ``(64, 64) x (5, 5)`` and
  ``(256, 256) x (15, 15)``, in one thread (``set_num_threads(1)``: scipy's
  single core). Each side's time is the MINIMUM over ``--runs`` calls
  alternating call by call (minima are stable on a loaded machine, medians are
  not); printed as ``convlab/scipy`` (below 1 means convlab is faster), with
  the method each library's ``choose_conv_method`` picks.

The two sides are timed in alternating blocks (``--block`` calls of one, then
of the other, ``--rounds`` times), not call by call, so that caches and
thread pools settle within a block; each side's time is the median over all
its calls after one untimed warm-up (which plans FFTW transforms). Ratios are
``other / convlab``: above 1 means convlab is faster.

scipy.signal computes in one thread; convlab's FFTs use ``cl.get_num_threads()``
threads (the cores). ``--threads 1`` times convlab on scipy's single core. On a
machine loaded by other processes FFTW's threaded transforms wait on each other
and lose several fold, so compare both on a busy machine.

Run (the numbers depend on load; re-run on an idle machine)::

    python benchmarks/bench_compat.py [--rounds 3] [--block 3] [--threads 1] [--modes same] [--skip-torch]
                                      [--json out.json]
    python benchmarks/bench_compat.py --small [--runs 200] [--modes full,same]
"""

import argparse
import json
import statistics
import time

import numpy as np
import scipy.signal

import convlab as cl
from convlab import signal as cls
from convlab.fft_backends import wait_for_plans

SIGNAL_CASES = [
    ("1-D 100k x 1001", (100_000,), (1001,), np.float64),
    ("1-D 10k x 31", (10_000,), (31,), np.float64),
    ("2-D 512x512 x 31x31", (512, 512), (31, 31), np.float64),
    ("2-D 512x512 x 31x31 f32", (512, 512), (31, 31), np.float32),
    ("2-D 256x256 x 5x5", (256, 256), (5, 5), np.float64),
    ("3-D 64^3 x 9^3", (64, 64, 64), (9, 9, 9), np.float64),
]
FUNCTIONS = ("convolve", "fftconvolve", "oaconvolve")
SMALL_CASES = [
    ("1-D 1000 x 31", (1000,), (31,)),
    ("1-D 10k x 101", (10_000,), (101,)),
    ("2-D 64x64 x 5x5", (64, 64), (5, 5)),
    ("2-D 256x256 x 15x15", (256, 256), (15, 15)),
]


def alternating(fns, rounds, block):
    """Median seconds per call of each function, timed in alternating blocks after one warm-up call each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(block):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_signal(rounds, block, modes):
    rng = np.random.default_rng(0)
    rows = []
    for label, s1, s2, dtype in SIGNAL_CASES:
        a, b = rng.standard_normal(s1).astype(dtype), rng.standard_normal(s2).astype(dtype)
        for mode in modes:
            fns = {}
            for f in FUNCTIONS:
                fns[f"scipy {f}"] = lambda f=f, mode=mode: getattr(scipy.signal, f)(a, b, mode)
                fns[f"convlab {f}"] = lambda f=f, mode=mode: getattr(cls, f)(a, b, mode)
            t = alternating(fns, rounds, block)
            fastest_fft = min(t["scipy fftconvolve"], t["scipy oaconvolve"])
            for f in FUNCTIONS:
                ours, theirs = t[f"convlab {f}"], t[f"scipy {f}"]
                row = {"case": f"{f} {label} {mode}", "scipy_s": theirs, "convlab_s": ours, "ratio": theirs / ours,
                       "best_scipy_fft_s": fastest_fft, "convlab_over_best": ours / fastest_fft}
                rows.append(row)
                print(f"{f:12s} {label:24s} {mode:5s} scipy {theirs * 1e3:8.2f} ms  convlab {ours * 1e3:8.2f} ms  "
                      f"scipy/convlab {theirs / ours:6.2f}  convlab/best-scipy-fft {ours / fastest_fft:5.2f}",
                      flush=True)
    return rows


def minima(fns, runs):
    """Minimum seconds per call of each function, alternating call by call after a warm-up that lets
    FFTW's background planning finish (convlab plans measured transforms after the first calls)."""
    for _ in range(20):
        for fn in fns.values():
            fn()
    # Under load FFTW's measured planning (PLANNING_TIMELIMIT per direction) outlasts a fixed sleep, and
    # until it ends convlab runs scipy.fft's transforms: timing then measured that fallback, not the plan.
    wait_for_plans()
    for fn in fns.values():
        fn()  # the first call after the upgrade takes the measured plan
    time.sleep(0.1)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def bench_small(runs, modes):
    """convlab.signal / scipy.signal on small and mid float64 inputs, single thread, minima."""
    rng = np.random.default_rng(0)
    rows = []
    for label, s1, s2 in SMALL_CASES:
        a, b = rng.standard_normal(s1), rng.standard_normal(s2)
        for mode in modes:
            for f in ("convolve", "fftconvolve"):
                t = minima({"scipy": lambda f=f, mode=mode: getattr(scipy.signal, f)(a, b, mode),
                            "convlab": lambda f=f, mode=mode: getattr(cls, f)(a, b, mode)}, runs)
                chosen = (f" (auto: convlab {cls.choose_conv_method(a, b, mode)}, "
                          f"scipy {scipy.signal.choose_conv_method(a, b, mode)})") if f == "convolve" else ""
                rows.append({"case": f"{f} {label} {mode}", "scipy_s": t["scipy"], "convlab_s": t["convlab"],
                             "convlab_over_scipy": t["convlab"] / t["scipy"]})
                print(f"{f:12s} {label:22s} {mode:5s} scipy {t['scipy'] * 1e6:8.1f} us  convlab "
                      f"{t['convlab'] * 1e6:8.1f} us  convlab/scipy {t['convlab'] / t['scipy']:5.2f}{chosen}",
                      flush=True)
    return rows


def bench_torch(rounds, block):
    import torch

    import convlab.torch as clt

    rows = []
    cases = [("Conv2d(16,16,31,p=15) fwd+bwd (8,16,128,128)", torch.nn.Conv2d, clt.Conv2d, (16, 16, 31),
              {"padding": 15}, (8, 16, 128, 128)),
             ("Conv1d(1,1,1025,p=512) fwd+bwd (8,1,65536)", torch.nn.Conv1d, clt.Conv1d, (1, 1, 1025),
              {"padding": 512}, (8, 1, 65536))]
    for label, base, ours, args, kwargs, shape in cases:
        torch.manual_seed(0)
        reference = base(*args, **kwargs)
        layer = ours(*args, method="fft", **kwargs)
        layer.load_state_dict(reference.state_dict())
        x = torch.randn(shape, requires_grad=True)

        def step(module, x=x):
            x.grad = None
            module.zero_grad()
            module(x).square().mean().backward()

        t = alternating({"torch": lambda m=reference: step(m), "convlab": lambda m=layer: step(m)}, rounds, block)
        rows.append({"case": label, "torch_s": t["torch"], "convlab_s": t["convlab"],
                     "ratio": t["torch"] / t["convlab"]})
        print(f"{label:48s} torch {t['torch'] * 1e3:9.1f} ms  convlab fft {t['convlab'] * 1e3:8.1f} ms  "
              f"torch/convlab {t['torch'] / t['convlab']:7.1f}", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two sides (default 3)")
    parser.add_argument("--block", type=int, default=3, help="calls per block (default 3)")
    parser.add_argument("--modes", type=lambda v: v.split(","), default=["full", "same", "valid"],
                        help="comma-separated modes (default full,same,valid)")
    parser.add_argument("--threads", type=int, default=None,
                        help="convlab.set_num_threads first (1: scipy's single core; default: the cores)")
    parser.add_argument("--skip-torch", action="store_true", help="only the scipy comparison")
    parser.add_argument("--small", action="store_true",
                        help="only the small/mid inputs, one thread, minima of --runs calls (see above)")
    parser.add_argument("--runs", type=int, default=200, help="calls per side with --small (default 200)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.small:
        cl.set_num_threads(1)
        print(f"convlab threads: 1, FFT backend {cl.get_fft_backend()}; minima of {args.runs} runs", flush=True)
        results = {"threads": 1, "small": bench_small(args.runs, args.modes)}
        if args.json:
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump(results, out, indent=2)
        return
    if args.threads is not None:
        cl.set_num_threads(args.threads)
    print(f"convlab threads: {cl.get_num_threads()}, FFT backend {cl.get_fft_backend()}", flush=True)
    results = {"threads": cl.get_num_threads(), "signal": bench_signal(args.rounds, args.block, args.modes)}
    if not args.skip_torch:
        results["torch"] = bench_torch(args.rounds, args.block)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
