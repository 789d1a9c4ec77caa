"""convlab.dask against dask-image and against convlab in memory; and an out-of-core Zarr run.

In-memory mode (default): a 2-D float32 image with kernels 3, 15, 31, 63 and a 3-D float32 volume with
kernels 3, 9, 17, ``mode="same"`` with zero padding; by default a quick 2048² image (512² chunks) and
128³ volume (64³ chunks), with ``--full`` the issue's sizes, an 8192² image (2048² chunks) and a 512³
volume (256³ chunks). Each kernel is timed four ways, the dask ones on the same chunks and the same
scheduler (dask's threaded scheduler, one thread per core):

- ``convlab.dask.convolve`` (convlab's chooser per block: FFT for large kernels),
- ``dask_image.ndfilters.convolve(mode="constant")`` (scipy.ndimage per block),
- ``convlab.conv`` on the numpy array in memory (``padding="same"``, method ``"auto"``),
- ``scipy.signal.oaconvolve`` in memory (``mode="same"``; ``--skip-scipy`` leaves it out),

printing the ratios (targets: ≥ 10× faster than dask-image for k ≥ 31 in 2-D and k ≥ 9 in 3-D, never
slower for small kernels; within 1.5× of in-memory) and the relative difference from dask-image's result.
Each timing is the best of ``--repeat`` runs after one untimed run (which compiles and plans).

Per-block mode (``--per-block``): how one block's convolution compares between convlab's chooser and
``scipy.ndimage.correlate`` (what dask-image runs per block), for small kernels on a 2-D and a 3-D block.
This is the measurement behind convlab.dask running convlab per block for every kernel size: on 2 cores
convlab per block (compiled direct loop or FFT) was 2 to 50 times faster than scipy.ndimage at every kernel measured
(3 to 15 in 2-D, 3 to 9 in 3-D), so no kernel size is handed to scipy.ndimage.

Out-of-core mode (``--out-of-core``): a Zarr volume of ``--ooc-size``³ float32 (default 1152³, 6.1 GB)
written to ``--tmp``, convolved with a ``--ooc-kernel``³ kernel (default 31) by a ``LocalCluster`` of
``--workers`` processes (default 2) with ``--worker-memory`` each (default 1.5 GB), ``from_zarr`` →
``convlab.dask.conv`` → ``to_zarr``; reports wall time, each worker's peak RSS (sampled every 20 ms in the
worker by psutil) and agreement with an in-memory computation on two sub-volumes (a corner and the
centre). The Zarr stores are deleted at the end. Check ``df -h`` first: it needs twice the volume free.

Run (``--full`` takes tens of minutes on 2 cores, dask-image's k=63 alone a few)::

    /work/venv/bin/python benchmarks/bench_dask.py            # quick sizes
    /work/venv/bin/python benchmarks/bench_dask.py --full     # 8192² and 512³
    /work/venv/bin/python benchmarks/bench_dask.py --per-block
    /work/venv/bin/python benchmarks/bench_dask.py --out-of-core                        # 6.1 GB on disk
    /work/venv/bin/python benchmarks/bench_dask.py --out-of-core --ooc-size 256 --worker-memory 0.5GB
"""

import argparse
import json
import os
import shutil
import tempfile
import threading
import time

import numpy as np
import scipy.signal

import convlab as cl
import convlab.dask as cld

QUICK = dict(size2d=2048, chunk2d=512, size3d=128, chunk3d=64)
FULL = dict(size2d=8192, chunk2d=2048, size3d=512, chunk3d=256)


def best_time(fn, repeat, warm_up=True):
    """Best of ``repeat`` timed calls, after one untimed call (numba compilation, FFTW planning) if ``warm_up``.

    dask-image and scipy have nothing to compile or plan, so ``--full`` times them without the untimed call:
    dask-image's k=63 and 3-D k=17 runs take minutes each.
    """
    result = fn() if warm_up else None
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
        if best > 20:
            break
    return best, result


def relative_difference(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def in_memory_suite(args):
    import dask
    import dask.array as da
    from dask_image.ndfilters import convolve as di_convolve

    rng = np.random.default_rng(0)
    rows = []
    problems = [(2, args.size2d, args.chunk2d, args.kernels2d), (3, args.size3d, args.chunk3d, args.kernels3d)]
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        for ndim, size, chunk, kernels in problems:
            if not size:
                continue
            x = rng.standard_normal((size,) * ndim, dtype=np.float32)
            xd = da.from_array(x, chunks=chunk)
            for k in kernels:
                w = rng.standard_normal((k,) * ndim).astype(np.float32)
                lazy = cld.convolve(xd, w, mode="same")
                t_ours, ours = best_time(lambda: lazy.compute(), args.repeat)
                row = dict(ndim=ndim, size=size, chunk=chunk, kernel=k, convlab_dask_s=t_ours)
                if not args.skip_dask_image:
                    theirs_lazy = di_convolve(xd, w, mode="constant", cval=0.0)
                    t_theirs, theirs = best_time(lambda: theirs_lazy.compute(), args.repeat,
                                                   warm_up=not args.no_peer_warm_up)
                    row.update(dask_image_s=t_theirs, speedup_vs_dask_image=t_theirs / t_ours,
                               rel_diff_vs_dask_image=relative_difference(ours, theirs))
                    del theirs
                if not args.skip_in_memory:
                    xm, wm = x[None, None], w[(None, None) + (slice(None, None, -1),) * ndim]
                    t_mem, _ = best_time(lambda: cl.conv(xm, wm, padding="same"), args.repeat)
                    row.update(in_memory_s=t_mem, dask_over_in_memory=t_ours / t_mem)
                if not args.skip_scipy:
                    t_scipy, _ = best_time(lambda: scipy.signal.oaconvolve(x, w, mode="same"), args.repeat,
                                            warm_up=not args.no_peer_warm_up)
                    row.update(scipy_s=t_scipy, speedup_vs_scipy=t_scipy / t_ours)
                del ours
                rows.append(row)
                print(_format(row), flush=True)
    return rows


def _format(row):
    parts = [f"{row['ndim']}-D {row['size']}^{row['ndim']} chunks {row['chunk']} k={row['kernel']:>2}:",
             f"convlab.dask {row['convlab_dask_s']:7.2f} s"]
    if "dask_image_s" in row:
        parts.append(f"dask-image {row['dask_image_s']:7.2f} s ({row['speedup_vs_dask_image']:5.1f}x faster, "
                     f"rel. diff {row['rel_diff_vs_dask_image']:.1e})")
    if "in_memory_s" in row:
        parts.append(f"in memory {row['in_memory_s']:6.2f} s (dask/in-memory {row['dask_over_in_memory']:.2f})")
    if "scipy_s" in row:
        parts.append(f"scipy.signal.oaconvolve {row['scipy_s']:6.2f} s ({row['speedup_vs_scipy']:5.1f}x faster)")
    return "  ".join(parts)


def per_block_suite(args):
    """One block, convlab's chooser against scipy.ndimage.correlate (dask-image's per-block call)."""
    import scipy.ndimage

    rng = np.random.default_rng(0)
    rows = []
    for ndim, size, kernels in ((2, 2048, (3, 5, 7, 9, 11, 15)), (3, 128, (3, 5, 7, 9))):
        x = rng.standard_normal((size,) * ndim, dtype=np.float32)
        for k in kernels:
            w = rng.standard_normal((k,) * ndim).astype(np.float32)
            plan = cl.plan((1, 1) + x.shape, (1, 1) + w.shape, np.float32)
            t_ours, _ = best_time(lambda: plan.forward(x[None, None], w[None, None]), args.repeat)
            # the valid part, as a block of convlab.dask: origin -(k // 2) puts output i at window [i, i + k)
            t_nd, _ = best_time(lambda: scipy.ndimage.correlate(x, w, mode="constant", origin=-(k // 2)),
                                args.repeat)
            row = dict(ndim=ndim, block=size, kernel=k, method=plan.method, convlab_s=t_ours, ndimage_s=t_nd,
                       ndimage_over_convlab=t_nd / t_ours)
            rows.append(row)
            print(f"{ndim}-D block {size}^{ndim} k={k:>2}: convlab ({plan.method}) {t_ours * 1e3:8.1f} ms  "
                  f"scipy.ndimage.correlate {t_nd * 1e3:8.1f} ms  ndimage/convlab {t_nd / t_ours:6.1f}", flush=True)
    return rows


# ----------------------------------------------------------------- out of core
def _start_peak_sampler(dask_worker):
    """Runs in each worker: sample this process's RSS every 20 ms, keep the maximum."""
    import psutil

    process = psutil.Process()
    state = {"peak": process.memory_info().rss, "stop": False}

    def sample():
        while not state["stop"]:
            state["peak"] = max(state["peak"], process.memory_info().rss)
            time.sleep(0.02)

    dask_worker._convlab_peak = state
    threading.Thread(target=sample, daemon=True).start()
    return state["peak"]


def _stop_peak_sampler(dask_worker):
    state = dask_worker._convlab_peak
    state["stop"] = True
    return state["peak"]


def out_of_core(args):
    import dask.array as da
    import zarr
    from dask.utils import format_bytes, parse_bytes
    from distributed import Client, LocalCluster

    size, k = args.ooc_size, args.ooc_kernel
    volume = size**3 * 4
    memory = parse_bytes(args.worker_memory)
    free = shutil.disk_usage(args.tmp).free
    if free < 2.2 * volume:
        raise SystemExit(f"{args.tmp} has {format_bytes(free)} free; the run needs {format_bytes(2.2 * volume)}")
    workdir = tempfile.mkdtemp(prefix="convlab-ooc-", dir=args.tmp)
    print(f"volume {size}^3 float32 = {format_bytes(volume)}, {args.workers} workers x {format_bytes(memory)} "
          f"({volume / (args.workers * memory):.1f}x their total), kernel {k}^3, stores in {workdir}", flush=True)
    try:
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, memory_limit=memory,
                          dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
            chunks = cld.suggest_chunks((1, 1, size, size, size), (k, k, k), np.float32)
            print(f"chunks {chunks[2:]} (suggest_chunks for these workers)", flush=True)
            source = da.random.RandomState(0).standard_normal((1, 1, size, size, size), chunks=chunks)
            source.astype(np.float32).to_zarr(os.path.join(workdir, "in.zarr"))
            w = np.random.default_rng(1).standard_normal((1, 1, k, k, k)).astype(np.float32) / k**1.5

            baseline = client.run(_start_peak_sampler)
            x = da.from_zarr(os.path.join(workdir, "in.zarr"))
            start = time.perf_counter()
            cld.conv(x, w, padding="same").to_zarr(os.path.join(workdir, "out.zarr"))
            wall = time.perf_counter() - start
            peaks = client.run(_stop_peak_sampler)

            x_store = zarr.open_array(os.path.join(workdir, "in.zarr"), mode="r")
            y_store = zarr.open_array(os.path.join(workdir, "out.zarr"), mode="r")
            side, r = min(96, size), k // 2
            errors = {}
            for name, lo in (("corner", 0), ("centre", (size - side) // 2)):
                region = [slice(max(lo - r, 0), min(lo + side + r, size))] * 3
                block = np.asarray(x_store[(0, 0, *region)])
                pads = [(r - (lo - s.start), r - (s.stop - lo - side)) for s in region]
                expected = cl.conv(np.pad(block, pads)[None, None], w)[0, 0]
                actual = np.asarray(y_store[(0, 0, *[slice(lo, lo + side)] * 3)])
                errors[name] = relative_difference(actual, expected)
        result = dict(size=size, kernel=k, workers=args.workers, worker_memory=memory, volume_bytes=volume,
                      chunks=chunks, wall_s=wall, baseline_rss=baseline, peak_rss=peaks, rel_error=errors)
        print(f"wall {wall:.1f} s; peak RSS per worker: "
              + ", ".join(f"{format_bytes(v)} (idle {format_bytes(baseline[a])})" for a, v in peaks.items())
              + f" of {format_bytes(memory)}; relative error vs in memory: "
              + ", ".join(f"{n} {e:.1e}" for n, e in errors.items()), flush=True)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes: 8192² (2048² chunks), 512³ (256³)")
    parser.add_argument("--size2d", type=int, default=None, help="image side (0 skips 2-D; default 2048)")
    parser.add_argument("--chunk2d", type=int, default=None, help="default 512")
    parser.add_argument("--kernels2d", type=lambda s: [int(v) for v in s.split(",")], default=[3, 15, 31, 63])
    parser.add_argument("--size3d", type=int, default=None, help="volume side (0 skips 3-D; default 128)")
    parser.add_argument("--chunk3d", type=int, default=None, help="default 64")
    parser.add_argument("--kernels3d", type=lambda s: [int(v) for v in s.split(",")], default=[3, 9, 17])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="dask threads (default: cores)")
    parser.add_argument("--repeat", type=int, default=2, help="best of, after one untimed run (default 2)")
    parser.add_argument("--skip-dask-image", action="store_true")
    parser.add_argument("--no-peer-warm-up", action="store_true",
                        help="time dask-image and scipy from their first call (they have nothing to plan)")
    parser.add_argument("--skip-in-memory", action="store_true")
    parser.add_argument("--skip-scipy", action="store_true")
    parser.add_argument("--per-block", action="store_true", help="one block: convlab against scipy.ndimage")
    parser.add_argument("--out-of-core", action="store_true", help="run the Zarr out-of-core case instead")
    parser.add_argument("--ooc-size", type=int, default=1152, help="volume side (1152: 6.1 GB float32)")
    parser.add_argument("--ooc-kernel", type=int, default=31)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="1.5GB")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the Zarr stores go (deleted after)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    for key, value in (FULL if args.full else QUICK).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out_of_core:
        results = out_of_core(args)
    elif args.per_block:
        results = per_block_suite(args)
    else:
        results = in_memory_suite(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
