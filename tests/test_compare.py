"""forgekit.measure.compare.max_abs_diff: a difference that cannot be measured is never 0.0."""

from __future__ import annotations

import math

import numpy as np

from forgekit.measure.compare import max_abs_diff


def test_nan_weights_are_not_bit_identical():
    w = [np.ones((2, 2), "float32"), np.zeros(3, "float32")]
    poisoned = [w[0].copy(), w[1].copy()]
    poisoned[1][1] = np.nan
    for a, b in ((w, poisoned), (poisoned, w), (poisoned, poisoned)):
        diff = max_abs_diff(a, b)
        assert math.isnan(diff) and (diff == 0.0) is False and (diff <= 1e-6) is False
    # a NaN in an early array is not hidden by a larger difference in a later one
    later = [poisoned[1], np.full(2, 5.0)]
    assert math.isnan(max_abs_diff(later, [w[1], np.zeros(2)]))
    assert math.isnan(max_abs_diff([np.array([np.inf])], [np.array([np.inf])]))  # inf - inf


def test_finite_and_misaligned_differences_are_unchanged():
    assert max_abs_diff([np.array([1.0, 2.0])], [np.array([1.0, 2.5])]) == 0.5
    assert max_abs_diff([np.array([np.inf])], [np.array([0.0])]) == math.inf
    assert max_abs_diff([np.zeros(2)], [np.zeros(3)]) == math.inf
    assert max_abs_diff([np.zeros(2)], []) == math.inf
    assert max_abs_diff([np.zeros(0)], [np.zeros(0)]) == 0.0
