"""Measuring one case: time (forward and backward apart), peak memory and accuracy.

How a case is measured (:func:`measure_case`):

1. Inputs are drawn once in float32 and upcast, so every dtype sees the same
   values and one float64 ``direct`` result is the reference for all.
2. Each runner (a convlab method or a peer) is called once per accuracy
   dtype: forward and backward, errors against the reference
   (:func:`convlab.tolerances.relative_error`). The call in the timed dtype is
   also the warm-up that fills plan caches (FFTW plans, sparsity patterns).
3. Peak extra memory of one forward and one backward call is measured with
   :mod:`tracemalloc` (numpy and pyfftw allocations are traced; torch's are
   not, so peers report ``None``). It includes the returned arrays.
4. Timing: :func:`convlab.harness.time_interleaved`, the one stopwatch:
   ``repeats`` rounds; in each round every runner takes one forward and one
   backward sample, in an order rotated every round, so that drift of a
   shared machine hits all runners alike. A sample repeats the call until it
   lasts ``min_sample_s``, after one untimed call that lets this runner's
   thread pools wake while the previous runner's (torch's OpenMP, say) stop
   spinning. The median and quartiles are kept.
5. Phases: each convlab method's forward and backward pass is called a few
   more times (:data:`PHASE_CALLS`; once when a call takes longer than
   :data:`PHASE_SLOW_S`) under :func:`convlab.phases.record`, and the median
   seconds per call of every phase the method marks are kept (``{}`` when it
   marks none: one call tells). Recording is off while timing, so the marks
   cost nothing in the timed samples.

A runner that cannot run the case is recorded with a status and a reason,
never dropped: ``unsupported`` (the method refuses the plan), ``skipped``
(workspace over the limit, or slower than the time budget) or ``failed``.
"""

import tracemalloc

import numpy as np

import convlab as cl

from .. import harness
from .. import phases as _phases
from ..tolerances import relative_error
from ..tuning import wait_for_background
from . import peers as _peers
from .peers import Runner, Unavailable

__all__ = ["measure_case", "case_inputs", "Runner", "convlab_runner", "summarize", "phase_times", "PHASE_CALLS",
           "PHASE_SLOW_S"]

PHASE_CALLS = 3
"""Calls of each pass recorded for its phases (their per-phase median is kept)."""
PHASE_SLOW_S = 0.05
"""A pass slower than this per call is recorded once, so phases add little to a long run."""


def case_inputs(case, seed=0):
    """``(x, w, grad_y)`` for ``case`` in float64, exactly representable in float32.

    The harness's seeded arrays (:meth:`convlab.case.Case.arrays`): ``w``
    is scaled by ``1/sqrt(fan_in)`` so outputs stay of order one.
    """
    return case.arrays(seed, np.float64)


def convlab_runner(name, case, dtype, x, w, grad_y):
    """A :class:`Runner` for registered method ``name``, or raise :class:`Unavailable`."""
    try:
        p = case.plan(name, dtype)
    except cl.ConvError as exc:
        raise Unavailable("unsupported", str(exc)) from None
    needed = cl.get_method(name).workspace_bytes(p.inner)
    if needed > p.limit:
        raise Unavailable("skipped", str(cl.WorkspaceLimitError(name, needed, p.limit)))
    x, w, grad_y = (a.astype(dtype) for a in (x, w, grad_y))
    return Runner(name, "convlab", lambda: p.forward(x, w), lambda: p.backward(grad_y, x, w),
                  workspace_bytes=int(needed))


def _runner(name, kind, case, dtype, arrays):
    if kind == "convlab":
        return convlab_runner(name, case, dtype, *arrays)
    return _peers.get_peer(name).runner(case, dtype, *arrays)


def _errors(outputs, reference):
    """Relative errors of ``(y, (dx, dw, ...))`` against the float64 reference ``(y, dx, dw)``."""
    y, grads = outputs
    errors = {"y": relative_error(y, reference[0])}
    if grads is not None:
        errors.update(dx=relative_error(grads[0], reference[1]), dw=relative_error(grads[1], reference[2]))
    return errors


def _run_once(runner):
    """``(y, grads)`` of one forward and (when there is one) one backward call."""
    return runner.forward(), (runner.backward() if runner.backward is not None else None)


def _traced(call, traced):
    """``(result, peak bytes allocated above the start, or None)`` of one call of ``call``."""
    if not traced:
        return call(), None
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _first_call(runner, record):
    """Run forward and backward once, recording their peak memory and the time both took.

    The first call is the one that fills plan caches, so its peak includes
    what the method keeps for later calls.
    """
    outputs = {}

    def first():
        outputs["y"], record["memory"]["forward_bytes"] = _traced(runner.forward, runner.traced)
        outputs["grads"] = None
        if runner.backward is not None:
            outputs["grads"], record["memory"]["backward_bytes"] = _traced(runner.backward, runner.traced)

    record["first_call_s"] = harness.time_call(first)
    y, grads = outputs["y"], outputs["grads"]
    record["memory"]["workspace_bytes"] = runner.workspace_bytes
    return y, grads


def summarize(samples):
    """``{"median_s", "q1_s", "q3_s", "samples_s", "loops"}`` of seconds per call (``None`` when empty).

    The statistic of :func:`convlab.harness.summarize`, in the results file's form.

    Examples
    --------
    >>> summarize([3.0, 1.0, 2.0])["median_s"]
    2.0
    """
    return harness.summarize(samples).to_dict() if len(samples) else None


def _dominates(small, large):
    """True when ``large`` is at least as big as ``small`` in every shape entry (same group and name)."""
    return (small.group, small.name, small.ndim) == (large.group, large.name, large.ndim) and all(
        a <= b for a, b in zip(small.x_shape + small.w_shape, large.x_shape + large.w_shape))


def _record(case, name, kind, dtype, status="ok", reason=None):
    return {"case": case.id, "method": name, "kind": kind, "dtype": dtype, "status": status,
            "reason": reason, "first_call_s": None, "forward": None, "backward": None, "phases": None,
            "memory": {"forward_bytes": None, "backward_bytes": None, "workspace_bytes": None},
            "accuracy": {}}


def measure_case(case, methods=None, *, peers=(), dtype="float32", accuracy_dtypes=("float32", "float64"),
                 repeats=5, warmup=1, min_sample_s=0.002, time_budget_s=None, over_budget=None, seed=0):
    """Measure every method (and peer) on one case.

    Parameters
    ----------
    case : Case
    methods : sequence of str, optional
        Registered methods; default all of :func:`convlab.methods`.
    peers : sequence of str
        Names from :func:`convlab.report.peers.peer_names` to measure too.
    dtype : {"float32", "float64"}
        The dtype that is timed.
    accuracy_dtypes : sequence of str
        Dtypes whose error against float64 ``direct`` is recorded.
    repeats : int
        Timed rounds, methods interleaved.
    warmup : int
        Untimed calls after the first one (which fills plan caches and is
        where memory is measured); the first of them also sets how many calls
        make one sample and is checked against ``time_budget_s``.
    min_sample_s : float
        A sample repeats the call until it lasts at least this long.
    time_budget_s : float, optional
        A runner whose forward plus backward call (after the first) takes
        longer is not timed further,
        and is skipped on every larger case of the same sweep.
    over_budget : dict, optional
        ``{runner name: [Case, ...]}`` shared between calls to apply that rule;
        updated in place.

    Returns
    -------
    list of dict
        One record per runner (the schema's ``measurements`` items).

    Examples
    --------
    >>> from convlab.report import Case
    >>> rows = measure_case(Case("layer", "demo", (1, 1, 8, 8), (1, 1, 3, 3)), ["direct"], repeats=1)
    >>> rows[0]["status"], rows[0]["accuracy"]["float64"]["y"]
    ('ok', 0.0)
    """
    names = [(m, "convlab") for m in (cl.methods() if methods is None else methods)]
    names += [(p, "peer") for p in peers]
    over_budget = {} if over_budget is None else over_budget
    arrays = case_inputs(case, seed)
    reference = case.plan("direct", np.float64)
    reference = (reference.forward(arrays[0], arrays[1]), *reference.backward(arrays[2], arrays[0], arrays[1])[:2])
    records, runners = [], []
    for name, kind in names:
        record = _record(case, name, kind, dtype)
        records.append(record)
        slower = [c for c in over_budget.get(name, ()) if _dominates(c, case)]
        if slower:
            record.update(status="skipped", reason=f"over the time budget ({time_budget_s:g} s per call) "
                          f"on the smaller case {slower[0].id}")
            continue
        try:
            runner = _runner(name, kind, case, dtype, arrays)
            outputs = _first_call(runner, record)
            steady = _steady_call_s(runner)
            within_budget = time_budget_s is None or sum(steady) <= time_budget_s
            for acc_dtype in accuracy_dtypes:
                if acc_dtype == dtype:
                    record["accuracy"][dtype] = _errors(outputs, reference)
                elif within_budget:
                    outputs = _run_once(_runner(name, kind, case, acc_dtype, arrays))
                    record["accuracy"][acc_dtype] = _errors(outputs, reference)
        except Unavailable as exc:
            record.update(status=exc.status, reason=exc.reason)
            continue
        except MemoryError as exc:  # WorkspaceLimitError included
            record.update(status="skipped", reason=f"{type(exc).__name__}: {exc}")
            continue
        except Exception as exc:  # a broken method must not take the whole report down
            record.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
            continue
        if not within_budget:
            over_budget.setdefault(name, []).append(case)
            record.update(status="skipped", reason=f"one forward and backward call took {sum(steady):.2g} s, "
                          f"over the time budget of {time_budget_s:g} s")
            continue
        runners.append((runner, record, steady))
    _time_interleaved(runners, repeats, warmup, min_sample_s)
    for runner, record, steady in runners:
        if runner.kind == "convlab":
            record["phases"] = phase_times(runner, steady)
    return records


def phase_times(runner, steady=(0.0, 0.0), calls=PHASE_CALLS, slow_s=PHASE_SLOW_S):
    """``{"forward": {phase: seconds}, "backward": {...}}``: median seconds per call of each marked phase.

    Each pass of ``runner`` is called ``calls`` times (once when its steady
    call, from ``steady``, took longer than ``slow_s``) under
    :func:`convlab.phases.record`. A pass that marks no phase gives ``{}``
    after one call. Phases are listed in :data:`convlab.phases.PHASES`
    order, then any others by name; a phase missing from one call counts 0
    there.

    Examples
    --------
    >>> from convlab.phases import phase
    >>> def forward():
    ...     with phase("product"):
    ...         pass
    >>> times = phase_times(Runner("demo", "convlab", forward, None))
    >>> list(times), list(times["forward"])
    (['forward'], ['product'])
    """
    out = {}
    for name, call_s in zip(("forward", "backward"), steady):
        call = getattr(runner, name)
        if call is None:
            continue
        recorded = []
        for _ in range(calls if call_s < slow_s else 1):
            with _phases.record() as times:
                call()
            if not times:
                break
            recorded.append(times)
        names = {key for times in recorded for key in times}
        ordered = [p for p in _phases.PHASES if p in names] + sorted(names - set(_phases.PHASES))
        out[name] = {p: float(np.median([times.get(p, 0.0) for times in recorded])) for p in ordered}
    return out


def _steady_call_s(runner):
    """``(forward, backward)`` seconds of one call after the first (backward 0 when there is none)."""
    return (harness.time_call(runner.forward),
            harness.time_call(runner.backward) if runner.backward is not None else 0.0)


def _time_interleaved(runners, repeats, warmup, min_sample_s):
    """Fill ``forward``/``backward`` of each record with :func:`convlab.harness.time_interleaved`.

    ``runners`` holds ``(runner, record, (forward_s, backward_s))`` with the
    seconds of one steady call, which set how many calls make one sample.
    The first and the steady call already warmed each up once.
    """
    calls, seconds, where = {}, {}, {}
    for runner, record, steady in runners:
        for phase, call_s in zip(("forward", "backward"), steady):
            call = getattr(runner, phase)
            if call is not None:
                key = f"{record['method']}/{phase}"
                calls[key], seconds[key], where[key] = call, call_s, (record, phase)
    if not calls:
        return
    # A third call queues FFTW's measured plans (convlab.fft_backends): wait for them, so that the
    # FFT methods are timed as they run from then on, and no planning thread shares the cores meanwhile.
    for call in calls.values():
        call()
    wait_for_background()  # and the kernels a first call's stand-in left loading, and the machine's measurement
    # settle: torch's, numba's and BLAS's pools must not be timed waking while another library's still spin
    timings = harness.time_interleaved(calls, repeats, max(warmup - 1, 0), min_sample_s, call_seconds=seconds,
                                       settle=1)
    for key, timing in timings.items():
        record, phase = where[key]
        record[phase] = timing.to_dict()


def auto_method(case, dtype):
    """What ``method="auto"`` picks for ``case`` (or the reason it cannot pick)."""
    try:
        return cl.choose_method(case.plan("direct", dtype))
    except (cl.ConvError, MemoryError) as exc:
        return f"none: {exc}"
