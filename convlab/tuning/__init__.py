"""Choosing a method: machine constants (calibration), measured choice (autotune), and the cost-model choice.

Built only on the methods' own cost models and the registry's verdicts; the
plan (:mod:`convlab.planning`) calls :func:`choose_method` or
:func:`tuned_method` to resolve ``method="auto"``.
"""

from .autotune import PRUNE_FACTOR, autotune_path, clear_autotune_cache, measured_seconds, tuned_method
from .calibration import (
    Calibration,
    get_calibration,
    load_calibration,
    save_calibration,
    set_calibration,
    wait_for_background,
    wait_for_measurement,
)
from .choice import Prediction, choose_method, explicit_method, first_call_substitute, predict_seconds, predictions
from .explanation import Explanation, explain

__all__ = ["PRUNE_FACTOR", "autotune_path", "clear_autotune_cache", "measured_seconds", "tuned_method",
           "Calibration", "get_calibration", "load_calibration", "save_calibration", "set_calibration",
           "wait_for_measurement", "wait_for_background", "Prediction", "choose_method", "explicit_method",
           "first_call_substitute",
           "predict_seconds", "predictions",
           "Explanation", "explain"]
