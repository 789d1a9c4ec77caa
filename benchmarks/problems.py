"""The problems the cost model is fitted on and judged by, and the one way they are timed.

Shared by ``fit_cost_model.py`` (which fits on the fit half) and ``bench_auto.py``
(which reports the regret of ``method="auto"`` on both halves), so the two always
see the same problems for the same seed.

:func:`random_problems` draws a broad mix from a seed: CNN layers, depthwise,
strided, dilated and grouped layers, images with large kernels, 1-D signals
and 3-D volumes, in float32 and float64. :func:`split` assigns every other
problem to the held-out half, which the fit never sees. :func:`peer_cases`
are the CNN layers and large-kernel cases of ``bench_vs_peers.py``.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

import convlab as cl
from convlab import harness
from convlab.tuning import wait_for_background

KINDS = ("cnn", "depthwise", "strided", "dilated", "grouped", "large_kernel", "signal_1d", "volume_3d")


@dataclasses.dataclass(frozen=True)
class Problem:
    name: str
    kind: str
    x_shape: tuple
    w_shape: tuple
    params: dict
    dtype: str

    def spec(self):
        return cl.spec(self.x_shape, self.w_shape, self.dtype, **self.params)

    def arrays(self, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.x_shape).astype(self.dtype)
        w = rng.standard_normal(self.w_shape).astype(self.dtype)
        return x, w

    def to_dict(self):
        return dataclasses.asdict(self)


def _name(kind, x_shape, w_shape, params, dtype):
    extra = "".join(f" {k[0]}{v}" for k, v in params.items() if k not in ("padding",))
    return (f"{kind}: {'x'.join(map(str, x_shape))} ->{w_shape[0]} k{'x'.join(map(str, w_shape[2:]))}"
            f"{extra} {dtype.replace('float', 'f')}")


def _one(rng, kind):
    pick = lambda options: options[int(rng.integers(len(options)))]
    dtype = pick(("float32", "float32", "float64"))
    params = {}
    if kind in ("cnn", "strided", "dilated", "grouped", "depthwise"):
        n = pick((1, 2, 4, 8))
        c = pick((8, 16, 32, 64, 128))
        size = pick((7, 14, 28, 32, 56))
        k = pick((1, 3, 3, 3, 5, 7)) if kind == "cnn" else pick((3, 3, 5))
        c_out = pick((c // 2, c, 2 * c)) if kind != "depthwise" else c
        groups = {"depthwise": c, "grouped": pick((2, 4, 8))}.get(kind, 1)
        c, c_out = max(c, groups), max(c_out, groups)
        c_out -= c_out % groups
        params["padding"] = k // 2
        if kind == "strided":
            params["stride"] = 2
        if kind == "dilated":
            params["dilation"] = pick((2, 3))
            params["padding"] = params["dilation"] * (k // 2)
        if groups > 1:
            params["groups"] = groups
        # keep a problem to at most ~4 GFLOP so that the slow methods stay measurable
        while n > 1 and 2 * n * c_out * (c // groups) * k * k * size * size > 4e9:
            n //= 2
        return _name(kind, (n, c, size, size), (c_out, c // groups, k, k), params, dtype), \
            (n, c, size, size), (c_out, c // groups, k, k), params, dtype
    if kind == "large_kernel":
        n, c = pick(((1, 1), (1, 3), (2, 4), (4, 8)))
        c_out = pick((1, c))
        size = pick((64, 128, 256, 512))
        k = pick((9, 11, 15, 21, 31))
        if pick((True, False)):
            params["padding"] = "same"
        return _name(kind, (n, c, size, size), (c_out, c, k, k), params, dtype), \
            (n, c, size, size), (c_out, c, k, k), params, dtype
    if kind == "signal_1d":
        n, c = pick(((1, 1), (4, 1), (8, 2), (16, 16)))
        c_out = pick((1, c))
        length = pick((1024, 4096, 16384, 65536))
        k = pick((3, 9, 33, 129, 513))
        if pick((True, False)):
            params["padding"] = k // 2
        return _name(kind, (n, c, length), (c_out, c, k), params, dtype), (n, c, length), (c_out, c, k), params, dtype
    # volume_3d
    n, c = pick(((1, 1), (2, 4), (2, 8)))
    c_out = pick((c, 2 * c))
    size = pick((16, 24, 32))
    k = pick((3, 3, 5))
    params["padding"] = k // 2
    return _name(kind, (n, c, size, size, size), (c_out, c, k, k, k), params, dtype), \
        (n, c, size, size, size), (c_out, c, k, k, k), params, dtype


def random_problems(count=64, seed=2024):
    """``count`` problems drawn from ``seed``, cycling through :data:`KINDS` so every kind appears."""
    rng = np.random.default_rng(seed)
    problems = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        name, x_shape, w_shape, params, dtype = _one(rng, kind)
        problems.append(Problem(f"#{i} {name}", kind, x_shape, w_shape, params, dtype))
    return problems


def split(problems):
    """``(fit, held_out)``: alternate problems, so both halves hold every kind (the draw cycles kinds in 8s,
    and alternation by index puts half of each kind's positions on each side)."""
    fit = [p for i, p in enumerate(problems) if (i // len(KINDS)) % 2 == 0]
    held = [p for i, p in enumerate(problems) if (i // len(KINDS)) % 2 == 1]
    return fit, held


def peer_cases():
    """The CNN layers and large-kernel cases of ``bench_vs_peers.py`` (float32 unless it says float64)."""
    import bench_vs_peers as peers

    out = []
    for entry in peers.CNN + peers.LARGE:
        name, x_shape, c_out, k, params = entry[:5]
        dtype = np.dtype(entry[5]).name if len(entry) > 5 else "float32"
        groups = params.get("groups", 1)
        w_shape = (c_out, x_shape[1] // groups) + (k,) * (len(x_shape) - 2)
        out.append(Problem(f"peers: {name}", "peers", tuple(x_shape), w_shape, dict(params), dtype))
    return out


def time_methods(problem, repeats=5, methods=None, pass_="forward", slow_s=2.0, slow_factor=30.0, min_budget_s=1.0):
    """Seconds per call of every runnable method on ``problem`` through the public API, interleaved.

    ``pass_="forward"`` times ``cl.conv(x, w, method=name, ...)``; ``"backward_input"`` and
    ``"backward_weight"`` time ``plan.backward_input`` / ``plan.backward_weight`` of a plan with that
    method. One untimed warm-up call each (FFTW planning, per-plan caches); a method whose timed probe
    takes over ``slow_s`` seconds and ``slow_factor`` times the fastest probe is not timed further and
    keeps its probe time (it cannot be the fastest). Each result is the minimum of ``repeats`` samples
    (:func:`convlab.harness.time_interleaved`), within ``max(min_budget_s, 20 · fastest probe · repeats)``
    seconds.

    Returns ``{method: seconds}``.
    """
    spec = problem.spec()
    names = [n for n in (methods or cl.methods()) if cl.algorithms.verdict(spec, n).ok]
    x, w = problem.arrays()
    calls = {}
    for name in names:
        if pass_ == "forward":
            calls[name] = (lambda name=name: cl.conv(x, w, method=name, **problem.params))
        else:
            p = cl.plan(problem.x_shape, problem.w_shape, problem.dtype, method=name, **problem.params)
            dy = np.random.default_rng(1).standard_normal(p.output_shape).astype(problem.dtype)
            calls[name] = ((lambda p=p: p.backward_input(dy, w)) if pass_ == "backward_input"
                           else (lambda p=p: p.backward_weight(dy, x)))
    probes, slow = {}, {}
    for fn in calls.values():
        fn()  # warm-up; the next call queues FFTW's measured plans, waited for below
        fn()
    wait_for_background()  # measured FFT plans, kernels loaded, machine constants measured: nothing left running
    for name, fn in calls.items():
        probes[name] = _call_seconds(fn)
    fastest = min(probes.values())
    for name, fn in calls.items():
        # a slow probe is recorded as the method's time, so it is confirmed: the first call at a new thread
        # count (the cap follows the machine's load) can compile a kernel's parallel twin inside the probe
        if probes[name] > slow_s and probes[name] > slow_factor * fastest:
            probes[name] = min(probes[name], _call_seconds(fn))
    timed = {}
    for name, fn in calls.items():
        if probes[name] > slow_s and probes[name] > slow_factor * fastest:
            slow[name] = probes[name]
        else:
            timed[name] = fn
    budget = max(min_budget_s, 20 * fastest * repeats)
    results = harness.time_interleaved(timed, repeats=repeats, warmup=0, min_sample_s=0.002,
                                       call_seconds={n: probes[n] for n in timed}, max_time_s=budget)
    seconds = {name: min(t.samples) for name, t in results.items()}
    seconds.update(slow)
    return seconds


def _call_seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ratios_summary(ratios):
    """``(median, p90, worst)`` of a list of ratios (``nan`` when empty)."""
    if not ratios:
        return math.nan, math.nan, math.nan
    r = np.asarray(ratios)
    return float(np.median(r)), float(np.percentile(r, 90)), float(r.max())
