"""Execution engines: the only place that touches a quantum state (docs/math.md).

An engine answers four questions and nothing else: start a fresh batch of ``b`` copies
(``new_batch``), does the threshold check ``|count_j / b - p_j| > theta_j`` fire on the current
batch (``check``), does the signed (three-outcome) check fire high (``count_j / b > p_j +
theta_j``: ``+1``), low (``-1``) or not at all (``0``) (``check_signed``), and how many of ``m``
fresh copies gave the ``E_j`` outcome (``estimate``). The silent outcome of a signed check is
the same instrument element as that of the unsigned check, so its disturbance is the same.
The protocol in :mod:`.sweep` sees only these outcomes.

* :class:`StatisticalEngine` draws each check from the law of the batch average on *undisturbed*
  copies (``count ~ Binomial(b, e_j)``) and accounts the disturbance it ignores with the
  gentle-measurement lemma: a silent check with firing probability ``eta`` moves the batch by
  at most ``2 sqrt(eta)`` in trace distance. Along each batch it carries the bound ``D_k`` on
  the distance between the real and the undisturbed batch (``D_k = D_{k-1} +
  2 sqrt(min(1, eta_k + D_{k-1}/2))``, since the real firing probability is within ``D/2`` of
  ``eta``) and, by a hybrid argument, the a-posteriori bound ``sum_k D_{k-1}/2`` on the change
  of the outcome law along the checks that ran. Its sum over batches is the damage bound.
* :class:`ExactEngine` applies each check as the Lüders instrument ``sqrt(F)`` of the threshold
  POVM ``F = sum_{x outside window} prod_i E^{x_i} (I - E)^{1 - x_i}`` on the pure joint state of
  ``b`` copies (``b * k`` qubits, at most :data:`EXACT_MAX_QUBITS`): the dilated threshold
  measurement with a perfect uncompute. It works in the final frame: rotating every copy by the
  same gates between checks is a unitary change of frame that leaves all outcome laws unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
from scipy.stats import binom

from .threshold_search import fire_window

#: Largest joint register (copies times qubits per copy) of the exact engine.
EXACT_MAX_QUBITS = 16


class Engine(Protocol):
    """What the protocol may ask of the quantum side."""

    def new_batch(self, size: int) -> None: ...

    def check(self, j: int, prediction: float, threshold: float) -> bool: ...

    def check_signed(self, j: int, prediction: float, threshold: float) -> int: ...

    def estimate(self, j: int, copies: int) -> int: ...

    def report(self) -> dict: ...


def ideal_fire_probability(batch: int, expectation: float, prediction: float, threshold: float):
    """Firing probability of a check on ``batch`` undisturbed copies (binomial law)."""
    lo, hi = fire_window(batch, prediction, threshold)
    if lo > hi:
        return 1.0
    silent = binom.cdf(hi, batch, expectation) - binom.cdf(lo - 1, batch, expectation)
    return float(min(1.0, max(0.0, 1.0 - silent)))


def ideal_signed_probabilities(
    batch: int, expectation: float, prediction: float, threshold: float
) -> tuple[float, float]:
    """``(P(fire high), P(fire low))`` of a signed check on undisturbed copies."""
    lo, hi = fire_window(batch, prediction, threshold)
    high = float(binom.sf(hi, batch, expectation))
    low = float(binom.cdf(lo - 1, batch, expectation)) if lo > 0 else 0.0
    return high, low


class StatisticalEngine:
    """Checks drawn on undisturbed copies, disturbance bounded by the gentle-measurement lemma.

    Args:
        expectations: ``e_j = Tr(E_j rho)`` for every check (computed from the device's state).
        rng: source of the emulated measurement outcomes.
    """

    name = "statistical"

    def __init__(self, expectations: np.ndarray, rng: np.random.Generator):
        self._e = np.clip(np.asarray(expectations, dtype=float), 0.0, 1.0)
        self._rng = rng
        self._batch = 0
        self._distance = 0.0
        self.batch_bounds: list[float] = []
        self.fire_probabilities: list[tuple[int, int, float]] = []

    def new_batch(self, size: int) -> None:
        self._batch = int(size)
        self._distance = 0.0
        self.batch_bounds.append(0.0)

    def check(self, j: int, prediction: float, threshold: float) -> bool:
        return bool(self.check_signed(j, prediction, threshold))

    def check_signed(self, j: int, prediction: float, threshold: float) -> int:
        high, low = ideal_signed_probabilities(self._batch, self._e[j], prediction, threshold)
        eta = min(1.0, high + low)
        self.fire_probabilities.append((len(self.batch_bounds) - 1, j, eta))
        self.batch_bounds[-1] += self._distance / 2
        u = self._rng.random()
        if u < eta:
            return 1 if u < high else -1
        self._distance += 2 * math.sqrt(min(1.0, eta + self._distance / 2))
        return 0

    def estimate(self, j: int, copies: int) -> int:
        return int(self._rng.binomial(copies, self._e[j]))

    def report(self) -> dict:
        return {
            "engine": self.name,
            "damage_bound": float(sum(self.batch_bounds)),
            "damage_bound_per_batch": [float(b) for b in self.batch_bounds],
        }


def _count_distribution(eigenvalues: np.ndarray, batch: int) -> np.ndarray:
    """``P(count = c | eigen-index of every copy)``: shape ``(d,)*batch + (batch + 1,)``."""
    dist = np.zeros(batch + 1)
    dist[0] = 1.0
    for _ in range(batch):
        shifted = np.zeros_like(dist)
        shifted[..., 1:] = dist[..., :-1]
        dist = (
            dist[..., None, :] * (1 - eigenvalues)[:, None]
            + shifted[..., None, :] * eigenvalues[:, None]
        )
    return dist


def _apply_each(amp: np.ndarray, u: np.ndarray, batch: int) -> np.ndarray:
    """``u`` applied to every copy axis of the joint amplitude tensor."""
    for axis in range(batch):
        amp = np.moveaxis(np.tensordot(u, amp, axes=([1], [axis])), 0, axis)
    return amp


class ExactEngine:
    """Checks as Lüders threshold instruments on the joint pure state of ``b`` copies.

    Args:
        copy_state: state vector of one copy (``k`` qubits; for the two-register variant the
            product of the data register and ``omega``).
        effect: ``j -> E_j`` on one copy, in the final frame.
        rng: source of the measurement outcomes.
    """

    name = "exact"

    def __init__(
        self,
        copy_state: np.ndarray,
        effect: Callable[[int], np.ndarray],
        rng: np.random.Generator,
    ):
        self._psi = np.asarray(copy_state, dtype=complex)
        self._effect = effect
        self._rng = rng
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._amp: np.ndarray | None = None
        self._batch = 0
        self.fire_probabilities: list[tuple[int, int, float]] = []
        self.ideal_fire_probabilities: list[tuple[int, int, float]] = []
        self._batches = -1

    def _eig(self, j: int):
        if j not in self._cache:
            lam, vec = np.linalg.eigh(self._effect(j))
            self._cache[j] = (np.clip(lam, 0.0, 1.0), vec)
        return self._cache[j]

    def expectation(self, j: int) -> float:
        """``Tr(E_j rho)`` on one undisturbed copy."""
        return float(np.real(self._psi.conj() @ self._effect(j) @ self._psi))

    def new_batch(self, size: int) -> None:
        d = len(self._psi)
        qubits = size * round(math.log2(d))
        if qubits > EXACT_MAX_QUBITS:
            raise ValueError(
                f"The exact engine simulates the joint state of the batch: {size} copies of "
                f"{round(math.log2(d))} qubits is {qubits} qubits, more than "
                f"{EXACT_MAX_QUBITS}. Theory-sized batches are far beyond exact simulation; use "
                "engine='statistical' or a smaller batch_size."
            )
        amp = self._psi
        for _ in range(size - 1):
            amp = np.multiply.outer(amp, self._psi)
        self._amp = amp.reshape((d,) * size)
        self._batch = size
        self._batches += 1

    def check(self, j: int, prediction: float, threshold: float) -> bool:
        return bool(self.check_signed(j, prediction, threshold))

    def check_signed(self, j: int, prediction: float, threshold: float) -> int:
        """Three-outcome Lüders instrument: counts above, below or inside the window."""
        lam, vec = self._eig(j)
        b = self._batch
        amp = _apply_each(self._amp, vec.conj().T, b)
        lo, hi = fire_window(b, prediction, threshold)
        dist = _count_distribution(lam, b)
        silent = dist[..., lo : hi + 1].sum(-1) if lo <= hi else np.zeros(dist.shape[:-1])
        above = dist[..., max(hi + 1, 0) :].sum(-1)
        weights = np.abs(amp) ** 2
        p_fire = float(np.clip(np.sum(weights * (1 - silent)), 0.0, 1.0))
        p_high = float(np.clip(np.sum(weights * above), 0.0, p_fire))
        self.fire_probabilities.append((self._batches, j, p_fire))
        self.ideal_fire_probabilities.append(
            (
                self._batches,
                j,
                ideal_fire_probability(b, self.expectation(j), prediction, threshold),
            )
        )
        u = self._rng.random()
        sign = (1 if u < p_high else -1) if u < p_fire else 0
        if sign == 0:
            element = silent
        elif sign > 0:
            element = above
        else:
            element = 1 - silent - above
        amp = amp * np.sqrt(np.clip(element, 0.0, 1.0))
        amp /= np.linalg.norm(amp)
        self._amp = _apply_each(amp, vec, b)
        return sign

    def estimate(self, j: int, copies: int) -> int:
        return int(self._rng.binomial(copies, np.clip(self.expectation(j), 0.0, 1.0)))

    def report(self) -> dict:
        first, later, seen = [], [], set()
        for (batch, _, exact), (_, _, ideal) in zip(
            self.fire_probabilities, self.ideal_fire_probabilities
        ):
            (later if batch in seen else first).append(abs(exact - ideal))
            seen.add(batch)
        return {
            "engine": self.name,
            "max_fire_probability_gap": float(max(first + later, default=0.0)),
            "first_check_gap": float(max(first, default=0.0)),
            "later_check_gap": float(max(later, default=0.0)),
            "later_check_gap_mean": float(np.mean(later)) if later else 0.0,
            "first_checks": len(first),
            "later_checks": len(later),
        }
