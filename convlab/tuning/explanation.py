"""Why ``method="auto"`` picks what it picks: :func:`explain`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..problem import as_spec
from .autotune import PRUNE_FACTOR, measured_seconds
from .calibration import get_calibration
from .choice import predictions

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
    """

    plan_method: str | None
    predicted_choice: str | None
    measured_choice: str | None
    rows: tuple
    calibration: str

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
        problem, and why it was excluded or not measured.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> e = cl.explain(cl.plan((8, 16, 32, 32), (32, 16, 3, 3), np.float32, padding=1))
    >>> e.predicted_choice in cl.methods()
    True
    >>> print(e)  # doctest: +ELLIPSIS
    plan runs ...
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
    return Explanation(getattr(plan, "method", None), fitting[0].method if fitting else None,
                       min(measured, key=measured.get) if measured else None, tuple(rows),
                       get_calibration().source)
