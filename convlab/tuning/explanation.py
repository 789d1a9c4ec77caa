"""Why ``method="auto"`` picks what it picks: :func:`explain`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..algorithms import CONSTANT_NAMES, get_method
from ..phases import PHASES
from ..problem import as_spec
from .autotune import PRUNE_FACTOR, measured_seconds
from .calibration import get_calibration
from .choice import predictions, scaled

# how each constant is printed: unit scale and unit
_UNITS = dict(peak=(1e-9, "GFLOP/s"), bandwidth=(1e-9, "GB/s"), gather_bandwidth=(1e-9, "GB/s"), call=(1e6, "us"),
              gemm_call=(1e6, "us"), fft_point=(1e9, "ns"), index_point=(1e9, "ns"), sparse_op=(1e9, "ns"),
              blas_call=(1e6, "us"), fft_call=(1e6, "us"), sparse_call=(1e6, "us"), launch=(1e6, "us"),
              gemm_half=(1.0, ""))

__all__ = ["Explanation", "explain"]


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why ``method="auto"`` picks what it picks for a plan.

    Attributes
    ----------
    plan_method : str or None
        The method the plan runs (``None`` when explaining a spec).
    predicted_choice : str
        What the cost model picks (:func:`convlab.choose_method`).
    measured_choice : str or None
        What autotuning picked, when this problem was measured.
    rows : tuple of (method, predicted seconds or None, measured seconds or None, note)
    calibration : str
        Where the cost model's constants came from.
    phases : dict
        ``{method: {phase: predicted seconds}}`` of the forward pass (factor applied to all but the fixed
        costs per call), for the
        methods that can run the problem; phases from :data:`convlab.phases.PHASES`.
    constants : dict
        ``{name: (value, origin)}``: the constants the prediction used (for the problem's dtype)
        and where each came from, ``"default"``, ``"measured"`` or ``"calibrated"``.
    factors : dict
        ``{method: factor}`` each prediction was multiplied by (1 when absent).
    overheads : dict
        ``{method: seconds}`` added to each prediction (the fixed cost of a pass).
    """

    plan_method: str | None
    predicted_choice: str | None
    measured_choice: str | None
    rows: tuple
    calibration: str
    phases: dict = dataclasses.field(default_factory=dict)
    constants: dict = dataclasses.field(default_factory=dict)
    factors: dict = dataclasses.field(default_factory=dict)
    overheads: dict = dataclasses.field(default_factory=dict)

    def __str__(self):
        lines = [f"plan runs {self.plan_method!r}; cost model picks {self.predicted_choice!r}"
                 + (f"; autotune measured {self.measured_choice!r}" if self.measured_choice else
                    " (not measured: autotune off or not run for this problem)"),
                 f"constants: {self.calibration}",
                 f"{'method':<12}{'predicted ms':>14}{'measured ms':>14}  note"]
        for name, predicted, measured, note in self.rows:
            p = f"{predicted * 1e3:.3f}" if predicted is not None else "-"
            m = f"{measured * 1e3:.3f}" if measured is not None else "-"
            lines.append(f"{name:<12}{p:>14}{m:>14}  {note}")
        used = [name for name in PHASES if any(name in split for split in self.phases.values())]
        if used:
            lines.append("predicted forward ms by phase (factor applied to all but the fixed costs per call):")
            lines.append(f"{'method':<12}" + "".join(f"{name:>17}" for name in used) + f"{'factor':>8}"
                         + f"{'+ fixed ms':>12}")
            for method, split in self.phases.items():
                cells = "".join(f"{split[name] * 1e3:>17.3f}" if name in split else f"{'-':>17}" for name in used)
                lines.append(f"{method:<12}{cells}{self.factors.get(method, 1.0):>8.2f}"
                             f"{self.overheads.get(method, 0.0) * 1e3:>12.3f}")
        if self.constants:
            lines.append("constants (value, origin):")
            for name, (value, origin) in self.constants.items():
                scale, unit = _UNITS.get(name, (1.0, ""))
                lines.append(f"  {name:<17}{value * scale:>12.4g} {unit:<8} {origin}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def explain(plan: Any) -> Explanation:
    """Which method ``method="auto"`` chooses for ``plan`` and why.

    Parameters
    ----------
    plan : ConvPlan or ConvSpec

    Returns
    -------
    Explanation
        Printing it gives a table of every registered method with its
        predicted forward time, its measured time when autotuning timed this
        problem, and why it was excluded or not measured; then each runnable
        method's prediction split by phase (``pad``, ``pack``, ``product``,
        ... of :data:`convlab.phases.PHASES`), and the machine constants the
        prediction used, each with where it came from (``default``: the
        built-in value; ``measured``: measured on this machine by the first
        ``method="auto"`` choice; ``calibrated``: by ``convlab calibrate``).

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> e = cl.explain(cl.plan((8, 16, 32, 32), (32, 16, 3, 3), np.float32, padding=1))
    >>> e.predicted_choice in cl.methods()
    True
    >>> print(e)  # doctest: +ELLIPSIS
    plan runs ...
    >>> sorted(e.phases["im2col"])
    ['pack', 'product']
    >>> e.constants["peak"][1] in ("default", "measured", "calibrated")
    True
    """
    spec = as_spec("plan", plan)
    measured = measured_seconds(spec) or {}
    ranked = predictions(spec)
    fitting = [r for r in ranked if r.seconds is not None]
    best = fitting[0].seconds if fitting else None
    rows = []
    for r in ranked:
        if r.seconds is None:
            note = f"excluded: {r.reason}"
        elif r.method in measured:
            note = "measured"
        elif measured:
            note = f"not timed: predicted over {PRUNE_FACTOR:g}x the best"
        else:
            note = ""
        if r.seconds is not None and r.seconds == best:
            note = ("cheapest predicted; " + note).rstrip("; ")
        rows.append((r.method, r.seconds, measured.get(r.method), note))
    calibration = get_calibration()
    terms = calibration.terms(spec.dtype)
    factors = {r.method: calibration.factor(r.method) for r in fitting}
    fixed_terms = terms.fixed_only()
    phases = {}
    for r in fitting:
        impl = get_method(r.method)
        fixed = impl.predict_phases(spec, fixed_terms)
        phases[r.method] = {name: scaled(seconds, fixed.get(name, 0.0), factors[r.method])
                            for name, seconds in impl.predict_phases(spec, terms).items()}
    constants = {name: (calibration.constant(spec.dtype, name), calibration.origin(spec.dtype, name))
                 for name in sorted(CONSTANT_NAMES)}
    return Explanation(getattr(plan, "method", None), fitting[0].method if fitting else None,
                       min(measured, key=measured.get) if measured else None, tuple(rows),
                       calibration.source, phases, constants, factors,
                       {r.method: calibration.overhead(r.method) for r in fitting})
