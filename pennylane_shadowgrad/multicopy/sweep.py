"""The protocol: threshold-search sweeps, fresh estimates and learner updates (docs/math.md).

Effects ``E_j = (I + G_j / s) / 2`` live on the data register; the hypothesis predicts
``p_j = Tr(E_j sigma) = (1 + Tr(G_j sigma) / s) / 2``. Each round takes a fresh batch and
sweeps the checks in circuit order. A firing is followed by an estimate of ``Tr(E_j rho)`` on
fresh copies and a learner update; a silent sweep certifies ``sigma`` and the output is
``Tr(G_j sigma) = s (2 p_j - 1)`` for every check. The protocol never sees a state, only
what :class:`~.engines.Engine` answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import learner as mmw
from .engines import Engine
from .threshold_search import (
    MARGIN,
    THRESHOLD_LOW,
    anytime_delta,
    batch_size,
    binomial_batch_size,
    draw_thresholds,
    estimate_size,
    threshold_search,
)

#: Accuracy of the fresh estimate, as a fraction of the effect accuracy ``eps``.
ESTIMATE_ACCURACY = 1 / 16
#: The learner updates when ``|p - b| > TAU eps``: a firing implies ``|Tr(E rho) - p| > eps/4``
#: and the estimate is within ``eps/16``, so every legitimate firing is a mistake.
TAU = THRESHOLD_LOW - MARGIN - ESTIMATE_ACCURACY
#: Learner margin ``gamma = tau - eps_b``.
GAMMA = TAU - ESTIMATE_ACCURACY


#: Tuned divisors of ``constants="calibrated"`` (NOT a guarantee). Procedure
#: (``python benchmarks/multicopy_guarantee.py calibrate``): on calibration seeds 50000.. disjoint
#: from the test seeds 1000.. (random 2-4 qubit circuits, single and two register alternating,
#: eps = 0.25, delta = 0.05), divide the theoretical batch AND fresh-estimate sizes by
#: d = 2, 4, 8, ...; keep the largest d whose failure rate (max error > eps) is <= delta / 2 over
#: 200 runs; the divisor is d / 2 (safety factor 2). Measured (failures / 200, median copies):
#:   /2 0 (2.9e5)  /4 0 (1.4e5)  /8 0 (7.8e4)  /16 1 (4.4e4)  /32 2 (3.0e4)  /64 3 (4.0e4)
#:   /128 5 (8.5e4, = delta/2: last passing)  /256 13 (3.1e5, too small)
#: -> d = 128, divisor 64. Beyond /32 the median copies RISE again: noisier fresh estimates
#: cause more learner rounds. The rigorous sizes are thus >= 64x conservative here.
CALIBRATED_BATCH_DIVISOR = 64.0
CALIBRATED_ESTIMATE_DIVISOR = 64.0


@dataclass(frozen=True)
class ProtocolConstants:
    """Every number that sizes the protocol, with where it comes from.

    ``eps`` is the accuracy on the effects, ``delta`` the failure probability: ``delta/2`` for
    all batch checks and ``delta/2`` for all fresh estimates, each spread over rounds (firings)
    ``k = 1, 2, ...`` as ``delta/2 * 6/(pi^2 k^2)``. Round ``r``'s batch is the exact-binomial
    size :func:`~.threshold_search.binomial_batch_size` at the hypothesis' predictions, firing
    ``f``'s fresh estimate :func:`~.threshold_search.estimate_size`. ``mode`` is
    ``"theoretical"`` (rigorous on undisturbed copies) or ``"calibrated"`` (both sizes divided
    by the tuned divisors above: no guarantee). ``fixed_batch`` (user ``batch_size``) replaces
    every batch; ``batch_scale`` multiplies them (a negative control when < 1).
    ``batch``/``estimate`` are the first round's sizes at ``p = 1/2`` (``sigma = I/2^n``).
    """

    eps: float
    delta: float
    num_checks: int
    mistake_bound: int
    max_rounds: int
    mode: str = "theoretical"
    fixed_batch: int | None = None
    batch_scale: float = 1.0

    @property
    def tau(self) -> float:
        return TAU * self.eps

    @property
    def gamma(self) -> float:
        return GAMMA * self.eps

    def _theory_batch(self, round_index: int, predictions: np.ndarray) -> int:
        return binomial_batch_size(
            predictions, self.eps, anytime_delta(self.delta / 2, round_index)
        )

    def batch_for(self, round_index: int, predictions: np.ndarray) -> int:
        """Copies of round ``round_index`` (1-based) given the predictions ``p_j``."""
        if self.fixed_batch is not None:
            b = float(self.fixed_batch)
        else:
            b = self._theory_batch(round_index, predictions)
            if self.mode == "calibrated":
                b /= CALIBRATED_BATCH_DIVISOR
        return max(1, math.ceil(b * self.batch_scale))

    def estimate_for(self, firing_index: int) -> int:
        """Fresh copies of firing ``firing_index`` (1-based)."""
        m = estimate_size(ESTIMATE_ACCURACY * self.eps, anytime_delta(self.delta / 2, firing_index))
        if self.mode == "calibrated":
            m = m / CALIBRATED_ESTIMATE_DIVISOR
        return max(1, math.ceil(m))

    @property
    def batch(self) -> int:
        return self.batch_for(1, np.full(self.num_checks, 0.5))

    @property
    def estimate(self) -> int:
        return self.estimate_for(1)

    @property
    def hoeffding_worst_case_batch(self) -> int:
        """The previous, loose size: Hoeffding + union over all checks of max_rounds rounds."""
        return batch_size(self.eps, self.delta / 2, self.num_checks * self.max_rounds)

    @property
    def source(self) -> str:
        if self.fixed_batch is not None:
            text = f"batch_size={self.fixed_batch} set by the user (no guarantee)"
        elif self.mode == "calibrated":
            text = (
                f"calibrated (TUNED, no guarantee): theoretical sizes divided by "
                f"{CALIBRATED_BATCH_DIVISOR:g} (batch) and {CALIBRATED_ESTIMATE_DIVISOR:g} "
                "(fresh estimate), tuned on calibration circuits"
            )
        else:
            text = (
                "theoretical: exact binomial tails at the hypothesis' predictions, anytime "
                "union bound delta_k = (delta/2) 6/(pi^2 k^2) over rounds and over firings"
            )
        if self.batch_scale != 1.0:
            text += f"; batches scaled by {self.batch_scale:g} (no guarantee)"
        return text


def protocol_constants(
    num_qubits: int,
    num_checks: int,
    eps: float,
    delta: float,
    batch: int | None = None,
    max_rounds: int | None = None,
    mode: str = "theoretical",
    batch_scale: float = 1.0,
) -> ProtocolConstants:
    """Constants for ``mode`` in ``{"theoretical", "calibrated"}``; the round limit defaults to
    the learner's mistake bound + 1 (on the good event every firing is a mistake)."""
    if mode not in ("theoretical", "calibrated"):
        raise ValueError("constants must be 'theoretical' or 'calibrated'.")
    bound = mmw.mistake_bound(num_qubits, GAMMA * eps)
    rounds = bound + 1 if max_rounds is None else int(max_rounds)
    return ProtocolConstants(
        eps,
        delta,
        num_checks,
        bound,
        rounds,
        mode,
        None if batch is None else int(batch),
        float(batch_scale),
    )


@dataclass
class ProtocolResult:
    """What one run of the protocol did (outcomes and counts only)."""

    values: np.ndarray
    certified: bool
    rounds: int = 0
    checks_per_batch: list[int] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    firings: list[int] = field(default_factory=list)
    estimate_sizes: list[int] = field(default_factory=list)
    updates: int = 0
    mistake_bound: int = 0

    @property
    def checks(self) -> int:
        return int(sum(self.checks_per_batch))


def run_protocol(
    num_qubits: int,
    num_checks: int,
    scale: float,
    predict: Callable[[np.ndarray], np.ndarray],
    effect: Callable[[int], np.ndarray],
    engine: Engine,
    constants: ProtocolConstants,
    rng: np.random.Generator,
) -> ProtocolResult:
    """Learn a hypothesis that passes a whole sweep and return its values ``Tr(G_j sigma)``.

    Args:
        predict: ``sigma -> (Tr(G_j sigma))_j`` (the shared evaluator).
        effect: ``j -> E_j`` as a matrix on the data register (for the learner).
        engine: answers the checks and estimates.
    """
    state = mmw.init_learner(num_qubits, constants.tau, ESTIMATE_ACCURACY * constants.eps)
    result = ProtocolResult(np.zeros(num_checks), False, mistake_bound=constants.mistake_bound)
    order = np.arange(num_checks)
    values = predict(mmw.hypothesis(state))
    for _ in range(constants.max_rounds):
        result.rounds += 1
        p = np.clip(0.5 * (1 + values / scale), 0.0, 1.0)
        thresholds = draw_thresholds(rng, constants.eps, num_checks)
        b = constants.batch_for(result.rounds, p)
        result.batch_sizes.append(b)
        engine.new_batch(b)
        found = threshold_search(order, p, thresholds, engine.check)
        result.checks_per_batch.append(found.checks)
        if found.fired is None:
            result.values, result.certified = values, True
            return result
        j = found.fired
        result.firings.append(j)
        m = constants.estimate_for(len(result.firings))
        result.estimate_sizes.append(m)
        feedback = engine.estimate(j, m) / m
        state, updated = mmw.update(state, effect(j), feedback)
        if updated:
            result.updates += 1
            values = predict(mmw.hypothesis(state))
    result.values = values
    return result
