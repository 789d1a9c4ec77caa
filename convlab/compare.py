"""``convlab compare``: run every registered method on one problem and tabulate time and error."""

import time

import numpy as np

DESCRIPTION = """Run every registered method on one convolution problem and print a table.

For each method: median forward and backward time over a few repeats, and the
normwise relative error of y, dx and dw against a float64 direct result.

example:
  convlab compare --shape 8,16,64,64 --out-channels 32 --kernel 5 --padding same
"""


def _ints(text):
    return tuple(int(v) for v in text.split(","))


def add_arguments(parser):
    parser.add_argument("--shape", type=_ints, default=(8, 16, 64, 64),
                        help="input shape N,C_in,*spatial (default 8,16,64,64)")
    parser.add_argument("--out-channels", type=int, default=16, help="C_out (default 16)")
    parser.add_argument("--kernel", type=int, default=5, help="kernel size in every spatial dim (default 5)")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--padding", default="same", help="int or valid|same|full (default same)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (default 5)")
    parser.add_argument("--methods", type=lambda s: s.split(","), default=None,
                        help="comma-separated methods (default: every registered one)")


def _median_seconds(fn, repeats):
    fn()  # warm-up: plans, caches, FFTW planning
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def compare(x, w, *, methods=None, repeats=5, **params):
    """Time and check every method on one problem.

    Returns a list of dicts with keys ``method``, ``forward_s``, ``backward_s``,
    ``error_y``, ``error_dx``, ``error_dw`` (or ``error`` when the method cannot
    run the problem).
    """
    import convlab as cl
    from convlab.tolerances import relative_error

    names = methods or cl.methods()
    rng = np.random.default_rng(0)
    ref_plan = cl.plan(x.shape, w.shape, np.float64, method="direct", **params)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    grad_y = rng.standard_normal(ref_plan.output_shape).astype(x.dtype)
    y_ref = ref_plan.forward(x64, w64)
    g_ref = ref_plan.backward(grad_y.astype(np.float64), x64, w64)
    rows = []
    for name in names:
        try:
            p = cl.plan(x.shape, w.shape, x.dtype, method=name, **params)
            y = p.forward(x, w)
            g = p.backward(grad_y, x, w)
        except (cl.ConvError, MemoryError) as exc:
            rows.append(dict(method=name, error=str(exc)))
            continue
        rows.append(dict(
            method=name,
            forward_s=_median_seconds(lambda: p.forward(x, w), repeats),
            backward_s=_median_seconds(lambda: p.backward(grad_y, x, w), repeats),
            error_y=relative_error(y, y_ref), error_dx=relative_error(g.dx, g_ref.dx),
            error_dw=relative_error(g.dw, g_ref.dw),
        ))
    return rows


def run(args):
    padding = int(args.padding) if args.padding.lstrip("-").isdigit() else args.padding
    rng = np.random.default_rng(0)
    x = rng.standard_normal(args.shape).astype(args.dtype)
    k = (args.kernel,) * (len(args.shape) - 2)
    w = rng.standard_normal((args.out_channels, args.shape[1], *k)).astype(args.dtype)
    print(f"x {x.shape} {args.dtype}, w {w.shape}, stride {args.stride}, padding {padding!r}")
    rows = compare(x, w, methods=args.methods, repeats=args.repeats, stride=args.stride, padding=padding)
    header = f"{'method':<12}{'forward ms':>12}{'backward ms':>13}{'err y':>11}{'err dx':>11}{'err dw':>11}"
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<12}  cannot run: {r['error']}")
            continue
        print(f"{r['method']:<12}{r['forward_s'] * 1e3:>12.2f}{r['backward_s'] * 1e3:>13.2f}"
              f"{r['error_y']:>11.1e}{r['error_dx']:>11.1e}{r['error_dw']:>11.1e}")
    return 0
