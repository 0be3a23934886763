"""Batch-means standard errors for figures read from one long simulated run.

Outcomes of successive arrivals are correlated (a busy spell spans many of them), so the
per-arrival series is cut into ``batches`` consecutive batches of equal size and the
spread of the batch totals gives the standard error: batches many relaxation times long
are close to independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BATCHES = 25


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float


def batch_ratio(
    y: npt.ArrayLike, x: npt.ArrayLike | None = None, batches: int = BATCHES
) -> Estimate:
    """``sum y / sum x`` with its batch-means standard error (delta method for a ratio).

    The per-arrival series are cut into ``batches`` consecutive batches of equal size;
    with batch totals ``Y_b, X_b`` and ``r = sum Y / sum X``,
    ``SE = sqrt(sum (Y_b - r X_b)^2 / (B (B - 1))) / mean X_b``.
    """
    ys = np.asarray(y, dtype=np.float64)
    xs = np.ones_like(ys) if x is None else np.asarray(x, dtype=np.float64)
    n = len(ys) - len(ys) % batches
    yb = ys[:n].reshape(batches, -1).sum(axis=1)
    xb = xs[:n].reshape(batches, -1).sum(axis=1)
    r = float(ys.sum() / xs.sum())
    se = math.sqrt(float(np.sum((yb - r * xb) ** 2)) / (batches * (batches - 1)))
    return Estimate(r, se / float(xb.mean()))
