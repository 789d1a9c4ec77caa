"""Choosing a method for ``method="auto"`` from the methods' own cost models.

:func:`choose_method` chooses for one pass — the forward, ``dx``
(``backward_input``) or ``dw`` (``backward_weight``), separately, as cuDNN
chooses its forward, backward-data and backward-filter algorithms. It asks
every registered method that can run the problem within its workspace
limit (:func:`convlab.algorithms.verdicts`) and is accurate enough for it
(below) for its predicted time of that pass (its
:meth:`~convlab.algorithms.Method.predict_seconds`: its cost model's phases for that pass, priced by the active
:class:`~convlab.tuning.calibration.Calibration`, the part that depends on
throughput multiplied by the method's calibrated factor, its fixed costs per
call as counted, plus a small residual fixed cost), and returns the cheapest. Nothing is timed; a
registered method joins with its own cost model, and the chooser knows
nothing about any particular method.

The accuracy rule: a method is a candidate for a pass only when its
declared :meth:`~convlab.algorithms.Method.error_bound` for that pass and
problem is within :func:`convlab.tolerances.tolerance` of the dtype. The
bound is computed from the shapes and dtype when the plan is built, before
any data is seen, for inputs whose entries are of comparable magnitude; a
method naming no bound (a plain sum of products) always qualifies. Data
whose small outputs matter next to a much larger maximum (a wide dynamic
range) is beyond what shapes can tell: name the method (``method="direct"``
or ``"im2col"``, whose error follows each output's own terms) or compute in
float64. An explicit ``method=`` is always run as named, without a warning.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..algorithms import check_pass, get_method, runnable, verdicts
from ..errors import UnsupportedPlanError, WorkspaceLimitError
from ..kernels._runtime import load_seconds
from ..problem import ConvSpec, as_spec
from .calibration import Calibration, get_calibration

__all__ = ["Prediction", "predict_seconds", "predictions", "choose_method", "first_call_substitute"]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One method's standing for a problem: predicted seconds, or why it cannot run."""

    method: str
    seconds: float | None
    reason: str | None = None


def predict_seconds(problem: Any, method: str, calibration: Calibration | None = None,
                    pass_: str = "forward") -> float:
    """Predicted time of one pass of ``method`` on ``problem`` (a spec or a plan), in seconds; nothing is run.

    Parameters
    ----------
    problem : ConvSpec or ConvPlan
    method : str
        A registered method name; it need not support the problem (the model
        prices the arithmetic regardless).
    calibration : Calibration, optional
        Default: :func:`~convlab.tuning.calibration.get_calibration`.
    pass_ : {"forward", "backward_input", "backward_weight"}, default "forward"

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
    impl = get_method(method)
    terms = calibration.terms(spec.dtype)
    seconds = impl.predict_seconds(spec, terms, check_pass(pass_))
    if spec.empty:
        return seconds  # nothing runs
    fixed = impl.predict_seconds(spec, terms.fixed_only(), pass_)
    return scaled(seconds, fixed, calibration.factor(method, pass_)) + calibration.overhead(method, pass_)


def scaled(seconds: float, fixed: float, factor: float) -> float:
    """A method's modelled ``seconds`` with its calibrated ``factor`` applied to the part that depends on
    throughput, not to its ``fixed`` cost per call (:meth:`CostTerms.fixed_only
    <convlab.algorithms.CostTerms.fixed_only>`): the factor corrects how fast a method computes and
    moves data; a kernel launch or a BLAS call costs the same whatever that speed."""
    return factor * max(0.0, seconds - fixed) + fixed


def predictions(problem: Any, calibration: Calibration | None = None, pass_: str = "forward") -> list[Prediction]:
    """Every registered method's :class:`Prediction` of ``pass_`` for ``problem``, cheapest first.

    Methods that do not support the problem, exceed its workspace limit or
    whose error bound for the pass exceeds the dtype's tolerance come last,
    with ``seconds=None`` and the reason.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> from convlab.tuning import predictions
    >>> ranked = predictions(cl.spec((1, 1, 16, 16), (1, 1, 3, 3), stride=2), pass_="backward_weight")
    >>> [r.reason for r in ranked if r.method == "winograd"]
    ['stride=(2, 2): Winograd tiles need stride 1 in every dim']
    """
    spec = as_spec("problem", problem)
    check_pass(pass_)
    calibration = calibration or get_calibration()
    result = []
    for v in verdicts(spec):
        reason = v.reason if not v.ok else get_method(v.method).accuracy_reason(spec, pass_)
        seconds = None if reason is not None else predict_seconds(spec, v.method, calibration, pass_)
        result.append(Prediction(v.method, seconds, reason))
    return sorted(result, key=lambda r: (r.seconds is None, r.seconds or 0.0))


def choose_method(problem: Any, calibration: Calibration | None = None, pass_: str = "forward") -> str:
    """Name of the method ``method="auto"`` runs for one pass of ``problem``: the cheapest predicted.

    Only registered methods that support the problem, whose workspace fits
    its limit and whose error bound is within the dtype's tolerance (see the
    module docstring for the rule) are considered; the choice is a pure
    function of the problem, the pass and the calibration (nothing is timed).

    Parameters
    ----------
    problem : ConvSpec or ConvPlan
    calibration : Calibration, optional
        Default: the stored calibration for this machine, or the built-in one.
    pass_ : {"forward", "backward_input", "backward_weight"}, default "forward"
        The pass to choose for: ``y``, ``dx`` or ``dw``.

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
    ranked = predictions(spec, calibration, pass_)
    if ranked and ranked[0].seconds is not None:
        return ranked[0].method
    if runnable(spec):  # every method that fits is refused on accuracy: the least inaccurate runs
        return min(runnable(spec), key=lambda name: get_method(name).error_bound(
            get_method(name).inner_spec(spec), pass_) or 0.0)
    raise _nothing_fits(spec)


def first_call_substitute(problem: Any, method: str, pass_: str = "forward",
                          calibration: Calibration | None = None) -> str | None:
    """The method to run ``pass_`` of ``problem`` while ``method``'s compiled kernels load, or ``None``.

    When ``method`` (the one chosen for the pass) runs compiled kernels
    (:meth:`Method.needs_compiled_kernels <convlab.algorithms.Method.needs_compiled_kernels>`) and the
    process has not loaded numba yet, a call would first wait for them: at least
    :func:`convlab.kernels._runtime.load_seconds` (importing numba, loading each kernel from its disk
    cache; compiling on a cold cache takes seconds more). The substitute is the candidate of
    :func:`predictions` predicted fastest among those that need no compiled kernels for this pass, and only
    when it is predicted faster than ``method`` plus that wait; ``None`` otherwise (``method`` needs no
    kernels, or nothing else is predicted to finish sooner).

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> from convlab.tuning import first_call_substitute
    >>> s = cl.spec((8, 64, 28, 28), (64, 64, 3, 3), np.float32, padding=1)
    >>> first_call_substitute(s, "winograd") in {None, "direct", "fft", "fft_tiled", "toeplitz"}  # None: numba runs
    True
    >>> first_call_substitute(s, "toeplitz") is None  # sparse products: nothing compiled to wait for
    True
    """
    spec = as_spec("problem", problem)
    impl = get_method(method)
    wait = load_seconds()
    if wait <= 0 or spec.empty or not impl.needs_compiled_kernels(impl.inner_spec(spec), check_pass(pass_)):
        return None
    calibration = calibration or get_calibration()
    deadline = predict_seconds(spec, method, calibration, pass_) + wait
    for candidate in predictions(spec, calibration, pass_):  # cheapest first
        if candidate.seconds is None or candidate.seconds >= deadline:
            return None
        other = get_method(candidate.method)
        if not other.needs_compiled_kernels(other.inner_spec(spec), pass_):
            return candidate.method
    return None


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
