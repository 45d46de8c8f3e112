"""Threshold search on one batch of copies with randomly perturbed thresholds (DESIGN.md §4).

The protocol asks, effect by effect, whether the batch average of a two-outcome measurement
``{E_j, I - E_j}`` on ``b`` copies deviates from the prediction ``p_j`` by more than a threshold
``theta_j`` drawn uniformly from ``[eps/2, 3 eps/4]`` (the random perturbation of
Bădescu–O'Donnell that makes most checks gentle). With ``b >= 8 ln(2 K / delta) / eps^2``
(:func:`batch_size`), Hoeffding's inequality and a union bound over ``K`` checks give, on
undisturbed copies:

* a check with ``|Tr(E_j rho) - p_j| > eps`` fires with probability ``>= 1 - delta / K``;
* a check with ``|Tr(E_j rho) - p_j| <= eps/4`` stays silent with probability ``>= 1 - delta / K``;

so a firing points at an effect with ``|Tr(E_j rho) - p_j| > eps/4`` and a silent sweep certifies
``|Tr(E_j rho) - p_j| <= eps`` for every ``j`` (the gap band is ``(eps/4, eps]``). What the
copies suffer from silent checks is accounted by the engine (:mod:`.engines`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Thresholds are drawn uniformly from ``[LOW, HIGH] * eps``.
THRESHOLD_LOW = 0.5
THRESHOLD_HIGH = 0.75
#: Hoeffding margin of the batch average: ``MARGIN * eps`` (= eps - HIGH, = LOW - 1/4).
MARGIN = 0.25


@dataclass(frozen=True)
class SearchResult:
    """Outcome of one sweep: the index that fired (``None``: certified) and checks made."""

    fired: int | None
    checks: int


def batch_size(eps: float, delta: float, num_checks: int) -> int:
    """Copies per batch so that ``num_checks`` checks all behave with probability ``1 - delta``.

    ``b = ceil(ln(2 K / delta) / (2 (MARGIN eps)^2)) = ceil(8 ln(2 K / delta) / eps^2)``.
    """
    if not 0 < eps <= 1 or not 0 < delta < 1 or num_checks < 1:
        raise ValueError("batch_size needs 0 < eps <= 1, 0 < delta < 1 and num_checks >= 1.")
    return math.ceil(math.log(2 * num_checks / delta) / (2 * (MARGIN * eps) ** 2))


def draw_thresholds(rng: np.random.Generator, eps: float, size: int) -> np.ndarray:
    """Independent thresholds, uniform on ``[THRESHOLD_LOW eps, THRESHOLD_HIGH eps]``."""
    return rng.uniform(THRESHOLD_LOW * eps, THRESHOLD_HIGH * eps, size=size)


def fire_window(batch: int, prediction: float, threshold: float) -> tuple[int, int]:
    """Counts ``lo..hi`` (inclusive) that keep the check silent: ``|c/b - p| <= theta``."""
    lo = max(0, math.ceil(batch * (prediction - threshold) - 1e-9))
    hi = min(batch, math.floor(batch * (prediction + threshold) + 1e-9))
    return lo, hi


def threshold_search(
    order: Sequence[int],
    predictions: np.ndarray,
    thresholds: np.ndarray,
    check: Callable[[int, float, float], bool],
) -> SearchResult:
    """Run the checks in ``order`` until one fires; ``check(j, p_j, theta_j)`` asks the engine."""
    for k, j in enumerate(order):
        if check(int(j), float(predictions[j]), float(thresholds[j])):
            return SearchResult(int(j), k + 1)
    return SearchResult(None, len(order))
