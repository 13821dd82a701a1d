"""Percentiles of one frame, computed as ``np.percentile`` computes them, without its overhead.

Section 3.2 takes a few percentiles of every frame: the white point of the illumination and
the thermal temperature window. ``np.percentile`` spends most of its time in its general
machinery (axes, NaN handling, methods, weights): about 0.2 ms a call on a 640×360 frame's
sample against 0.1 ms for the partition itself. ``percentiles`` is its default method
("linear", Hyndman and Fan's definition 7) on a finite 1-D sample, written out with the
same operations in the same order and the same dtypes, so the result is the same to the
last bit (tested against ``np.percentile``):

- virtual index (n − 1)·q in float64, q = p/100;
- the neighbouring order statistics a = x₍⌊i⌋₎ and b = x₍⌊i⌋+1₎ (b = a at the top);
- interpolation a + (b − a)·γ, or b − (b − a)·(1 − γ) where γ ≥ 0.5 (numpy's ``_lerp``).

A sequence of percentiles interpolates with a float64 γ (float64 results, as numpy does for
an array of q); a single number interpolates with a Python float γ, so a float32 sample
gives a float32 result, as numpy's weak promotion does for a scalar q.

A sample with NaN or infinity is handed to ``np.percentile`` itself (its NaN rules apply).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _flat_copy(sample: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(sample).flatten()  # a copy: the partition reorders it
    if values.size == 0:
        raise ValueError(f"{what} of an empty sample")
    return values


def _interpolate(values: np.ndarray, lower: np.ndarray, upper: np.ndarray, gamma) -> np.ndarray:
    """numpy's ``_lerp`` between the order statistics ``lower`` and ``upper`` (partitions ``values``)."""
    values.partition(np.unique(np.concatenate((lower, upper))))
    a, b = values[lower], values[upper]
    diff = b - a
    result = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe")
    return result


def percentiles(sample: np.ndarray, percents: Sequence[float]) -> list[float]:
    """``np.percentile(sample, percents).tolist()`` for a finite, non-empty sample."""
    values = _flat_copy(sample, "percentiles")
    if not np.isfinite(values).all():
        return np.percentile(values, percents).tolist()
    q = np.true_divide(np.asarray(percents, np.float64), 100)
    if q.ndim != 1 or (q < 0).any() or (q > 1).any():
        raise ValueError(f"percentiles must be a sequence of values in [0, 100], got {percents!r}")
    n = values.size
    virtual = (n - 1) * q
    below = np.floor(virtual)
    above = below + 1
    top = virtual >= n - 1
    below[top] = n - 1
    above[top] = n - 1
    gamma = virtual - below  # float64: an array of q interpolates in float64, as numpy does
    return _interpolate(values, below.astype(np.intp), above.astype(np.intp), gamma).tolist()


def percentile(sample: np.ndarray, percent: float) -> float:
    """``float(np.percentile(sample, percent))`` for a finite, non-empty sample and one number."""
    values = _flat_copy(sample, "percentile")
    if not np.isfinite(values).all():
        return float(np.percentile(values, percent))
    q = float(np.true_divide(percent, 100))
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"percentile must be in [0, 100], got {percent!r}")
    n = values.size
    virtual = (n - 1) * q
    lower = n - 1 if virtual >= n - 1 else math.floor(virtual)
    upper = min(lower + 1, n - 1)
    gamma = virtual - lower if virtual < n - 1 else 0.0  # a Python float: weak promotion, as numpy
    return float(_interpolate(values, np.array([lower]), np.array([upper]), gamma)[0])
