"""One table of accuracy tolerances per dtype, and the error measure they apply to.

Errors are measured normwise: ``max|actual - expected| / max|expected|``.
A convolution output is a sum of many products, so an individual output may
cancel to near zero while its rounding error is set by the size of the
terms; scaling by the largest output keeps the test meaningful everywhere.
Positions where the expected value is NaN or infinite must match exactly.

=========  ===========  ==========================================================
dtype      tolerance    why
=========  ===========  ==========================================================
float64    ``1e-10``    unit roundoff 1.1e-16 times sums of at most ~10^4 terms,
                        with margin for FFT methods' ``O(log n)`` growth
float32    ``5e-5``     unit roundoff 6e-8 times the same; BLAS and direct
                        summation orders differ
=========  ===========  ==========================================================

Method families may loosen float32 only, each by a factor justified by a
measurement recorded in the docs (``METHOD_FLOAT32_FACTOR``).
"""

import numpy as np

__all__ = ["TOLERANCES", "METHOD_FLOAT32_FACTOR", "tolerance", "relative_error", "assert_close"]

TOLERANCES = {np.dtype(np.float32): 5e-5, np.dtype(np.float64): 1e-10}

METHOD_FLOAT32_FACTOR = {}


def tolerance(dtype, method=None):
    """Allowed normwise relative error for results in ``dtype`` computed by ``method``.

    Examples
    --------
    >>> tolerance(np.float32), tolerance("float64", "fft")
    (5e-05, 1e-10)
    """
    dtype = np.dtype(dtype)
    tol = TOLERANCES[dtype]
    if dtype == np.float32 and method is not None:
        tol *= METHOD_FLOAT32_FACTOR.get(method, 1.0)
    return tol


def relative_error(actual, expected):
    """Normwise relative error ``max|actual - expected| / max|expected|`` over finite entries.

    Returns ``inf`` when the non-finite entries (NaN, +inf, -inf) differ in place or sign.

    Examples
    --------
    >>> round(relative_error([1.0, 2.0, -4.0], [1.0, 2.0, -4.004]), 6)
    0.000999
    >>> relative_error([np.nan, 1.0], [np.nan, 1.0]), relative_error([np.inf, 1.0], [np.nan, 1.0])
    (0.0, inf)
    >>> relative_error([1j, 2.0], [1.0, 2.0])  # complex values compare as complex
    0.7071067811865476
    """
    # complex results are compared as complex numbers (|difference| over max |expected|), never cast to real
    wide = np.complex128 if np.iscomplexobj(actual) or np.iscomplexobj(expected) else np.float64
    actual, expected = np.asarray(actual, wide), np.asarray(expected, wide)
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {expected.shape}")
    finite = np.isfinite(expected)
    same_nonfinite = np.array_equal(np.isnan(actual), np.isnan(expected)) and np.array_equal(
        np.where(np.isinf(expected), expected, 0), np.where(np.isinf(actual), actual, 0))
    if not same_nonfinite or not np.isfinite(actual[finite]).all():
        return float("inf")
    if not finite.any():
        return 0.0
    scale = np.max(np.abs(expected[finite]))
    diff = np.max(np.abs(actual[finite] - expected[finite]))
    return float(diff / scale) if scale > 0 else float(diff)


def assert_close(actual, expected, dtype, method=None, what="result"):
    """Raise ``AssertionError`` when ``relative_error`` exceeds :func:`tolerance`.

    Examples
    --------
    >>> assert_close([1.0, 2.0], [1.0, 2.00001], np.float32)
    >>> assert_close([1.0, 2.0], [1.0, 2.1], np.float32, "fft", what="y")
    Traceback (most recent call last):
    ...
    AssertionError: y: relative error 0.0476 exceeds tolerance 5e-05 for float32 (method='fft')
    """
    err = relative_error(actual, expected)
    tol = tolerance(dtype, method)
    if not err <= tol:
        raise AssertionError(f"{what}: relative error {err:.3g} exceeds tolerance {tol:.3g} "
                             f"for {np.dtype(dtype)} (method={method!r})")
