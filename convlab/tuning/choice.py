"""Choosing a method for ``method="auto"`` from the methods' own cost models.

:func:`choose_method` asks every registered method that can run the problem
within its workspace limit (:func:`convlab.algorithms.verdicts`) for its
predicted forward time (its :meth:`~convlab.algorithms.Method.cost`, priced
by the active :class:`~convlab.tuning.calibration.Calibration` and multiplied
by the method's calibrated factor), and returns the cheapest. Nothing is
timed; a registered method joins with its own cost model, and the chooser
knows nothing about any particular method.

The model predicts the forward pass; plans run forward and backward with
one method, and every method's backward costs about twice its forward.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..algorithms import get_method, verdicts
from ..errors import UnsupportedPlanError, WorkspaceLimitError
from ..problem import ConvSpec, as_spec
from .calibration import Calibration, get_calibration

__all__ = ["Prediction", "predict_seconds", "predictions", "choose_method"]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One method's standing for a problem: predicted seconds, or why it cannot run."""

    method: str
    seconds: float | None
    reason: str | None = None


def predict_seconds(problem: Any, method: str, calibration: Calibration | None = None) -> float:
    """Predicted forward time of ``method`` on ``problem`` (a spec or a plan), in seconds; nothing is run.

    Parameters
    ----------
    problem : ConvSpec or ConvPlan
    method : str
        A registered method name; it need not support the problem (the model
        prices the arithmetic regardless).
    calibration : Calibration, optional
        Default: :func:`~convlab.tuning.calibration.get_calibration`.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> from convlab.tuning import Calibration, predict_seconds
    >>> s = cl.spec((8, 64, 56, 56), (64, 64, 3, 3), np.float32, padding=1)
    >>> cal = Calibration.defaults()
    >>> predict_seconds(s, "winograd", cal) < predict_seconds(s, "direct", cal)
    True
    """
    spec = as_spec("problem", problem)
    calibration = calibration or get_calibration()
    return get_method(method).predict_seconds(spec, calibration.terms(spec.dtype)) * calibration.factor(method)


def predictions(problem: Any, calibration: Calibration | None = None) -> list[Prediction]:
    """Every registered method's :class:`Prediction` for ``problem``, cheapest first.

    Methods that do not support the problem or exceed its workspace limit
    come last, with ``seconds=None`` and the reason.
    """
    spec = as_spec("problem", problem)
    calibration = calibration or get_calibration()
    result = [Prediction(v.method, predict_seconds(spec, v.method, calibration) if v.ok else None, v.reason)
              for v in verdicts(spec)]
    return sorted(result, key=lambda r: (r.seconds is None, r.seconds or 0.0))


def choose_method(problem: Any, calibration: Calibration | None = None) -> str:
    """Name of the method ``method="auto"`` runs for ``problem``: the cheapest predicted.

    Only registered methods that support the problem and whose workspace
    fits its limit are considered; the choice is a pure function of the
    problem and the calibration (nothing is timed).

    Parameters
    ----------
    problem : ConvSpec or ConvPlan
    calibration : Calibration, optional
        Default: the stored calibration for this machine, or the built-in one.

    Returns
    -------
    str

    Raises
    ------
    WorkspaceLimitError
        When no method fits the workspace limit; the message names the problem
        and every method's reason, and ``method``/``needed`` are those of the
        method that came closest.
    UnsupportedPlanError
        When no registered method supports the problem at all.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> s = cl.spec((1, 1, 512, 512), (1, 1, 15, 15), np.float64)
    >>> cl.choose_method(s) in cl.methods()
    True
    """
    spec = as_spec("problem", problem)
    ranked = predictions(spec, calibration)
    if ranked and ranked[0].seconds is not None:
        return ranked[0].method
    raise _nothing_fits(spec)


def _nothing_fits(spec: ConvSpec) -> Exception:
    """The refusal of ``method="auto"``: the problem, and why each method cannot run it."""
    found = verdicts(spec)
    problem = (f"x {spec.x_shape}, w {spec.w_shape}, {spec.result_dtype}, stride={spec.stride}, "
               f"padding={spec.padding}, dilation={spec.dilation}, groups={spec.groups}, "
               f"padding_mode={spec.padding_mode!r}")
    reasons = "; ".join(f"{v.method}: {v.reason}" for v in found) or "no method is registered"
    over = [v for v in found if v.workspace is not None]
    if not over:
        return UnsupportedPlanError(f"method='auto' found no method that supports this problem ({problem}): {reasons}")
    closest = min(over, key=lambda v: v.workspace)
    error = WorkspaceLimitError(closest.method, closest.workspace, spec.limit, ())
    error.args = (f"method='auto' found no method that runs this problem ({problem}) within the workspace limit "
                  f"of {spec.limit} bytes: {reasons} (raise the limit with convlab.set_workspace_limit or "
                  f"plan(..., workspace_limit=...))",)
    return error


def explicit_method(spec: ConvSpec, method: str) -> str:
    """``method`` when it supports ``spec``, else :class:`~convlab.UnsupportedPlanError` saying why."""
    impl = get_method(method)
    reason = impl.unsupported_reason(impl.inner_spec(spec))
    if reason is not None:
        raise UnsupportedPlanError(f"method={method!r} does not support this plan: {reason}")
    return method
