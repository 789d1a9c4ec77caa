"""The outlier test of convlab.algorithms.nonfinite: its cheap pre-test never hides an outlier.

The oracle is the rule docs/fft.md states, computed here from scratch: an
entry is an outlier when its magnitude exceeds ``tolerance / eps`` times the
median nonzero finite magnitude of the evenly spaced sample; none are
reported when there are more than 1/64 of the entries.
"""

import numpy as np
import pytest

from convlab.algorithms import nonfinite
from convlab.algorithms.nonfinite import _SAMPLE, outliers
from convlab.tolerances import tolerance


def _documented_outliers(a):
    """The documented rule, by sorting the whole sample (no shortcuts)."""
    if a.size == 0:
        return None
    ratio = float(tolerance(a.dtype)) / float(np.finfo(a.dtype).eps)
    flat = a.reshape(-1).astype(np.float64)
    sample = np.sort(np.abs(flat[:: max(1, flat.size // _SAMPLE)]))
    sample = sample[np.isfinite(sample) & (sample > 0)]
    if sample.size == 0:
        return None
    mid = sample.size // 2
    median = sample[mid] if sample.size % 2 else (sample[mid - 1] + sample[mid]) / 2
    finite = np.isfinite(flat)
    mask = finite & (np.abs(np.where(finite, flat, 0)) > ratio * median)
    count = int(mask.sum())
    return mask.reshape(a.shape) if 0 < count <= max(1, a.size / 64) else None


def _adversarial_arrays(rng, dtype, factors):
    """Arrays whose largest magnitude is ``factor`` times ``ratio`` times the median nonzero magnitude."""
    ratio = float(tolerance(dtype)) / float(np.finfo(dtype).eps)
    for n in (1, 2, 7, 64, 1001, 4096, 9000):
        for zeros in (0.0, 0.5, 0.99):
            for tiny_share in (0.0, 0.3, 0.49, 0.5, 0.51, 0.7):
                for factor in factors:
                    base = rng.uniform(0.5, 2.0, n)
                    tiny = rng.random(n) < tiny_share
                    base[tiny] *= 1.0 / (ratio * 10)      # a bulk of small values pulls the median down
                    base[rng.random(n) < zeros] = 0.0
                    big = min(float(np.median(base[base > 0])) if (base > 0).any() else 1.0, 1e30) * ratio * factor
                    base[rng.integers(n)] = big * rng.choice([-1, 1])
                    yield (base * rng.choice([-1, 1], n)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outliers_follow_the_documented_rule(dtype):
    rng = np.random.default_rng(5)
    checked = 0
    for a in _adversarial_arrays(rng, dtype, factors=(0.5, 0.9, 1.1, 2.0, 1e3)):
        got, expected = outliers(a), _documented_outliers(a)
        assert (got is None) == (expected is None), (a.size, a.max(), np.median(np.abs(a)))
        if got is not None:
            np.testing.assert_array_equal(got, expected)
        checked += got is not None
    assert checked > 100  # the adversarial arrays do hold outliers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cheap_pretest_never_changes_the_answer(dtype, monkeypatch):
    """At the boundary (largest within an ulp of ratio * median) too: the pre-test only skips the median."""
    rng = np.random.default_rng(6)
    arrays = list(_adversarial_arrays(rng, dtype, factors=(0.999999, 1.0, 1.000001, 4.0)))
    fast = [outliers(a) for a in arrays]
    monkeypatch.setattr(nonfinite, "_no_outliers", lambda flat, step, ratio: False)
    for a, got in zip(arrays, fast):
        expected = outliers(a)
        assert (got is None) == (expected is None)
        if got is not None:
            np.testing.assert_array_equal(got, expected)


def test_outliers_skip_nan_and_find_the_finite_outlier():
    a = np.ones(5000)
    a[17], a[4000] = np.nan, 1e300
    mask = outliers(a)
    assert mask is not None and np.flatnonzero(mask).tolist() == [4000]
    a[4000] = 1.0
    assert outliers(a) is None


def test_outliers_of_zeros_and_of_sparse_impulses():
    assert outliers(np.zeros(3000)) is None
    impulse = np.zeros(3000)
    impulse[5] = 1e250
    assert outliers(impulse) is None  # the only nonzero value is the bulk
    impulse[6] = 1.0
    impulse[7] = 1.0
    assert np.flatnonzero(outliers(impulse)).tolist() == [5]
