"""The protocol: threshold-search sweeps, fresh estimates and learner updates (DESIGN.md §4).

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
from .threshold_search import MARGIN, THRESHOLD_LOW, batch_size, draw_thresholds, threshold_search

#: Accuracy of the fresh estimate, as a fraction of the effect accuracy ``eps``.
ESTIMATE_ACCURACY = 1 / 16
#: The learner updates when ``|p - b| > TAU eps``: a firing implies ``|Tr(E rho) - p| > eps/4``
#: and the estimate is within ``eps/16``, so every legitimate firing is a mistake.
TAU = THRESHOLD_LOW - MARGIN - ESTIMATE_ACCURACY
#: Learner margin ``gamma = tau - eps_b``.
GAMMA = TAU - ESTIMATE_ACCURACY


@dataclass(frozen=True)
class ProtocolConstants:
    """Every number that sizes the protocol, with where it comes from.

    ``eps`` is the accuracy on the effects, ``delta`` the failure probability (half for all
    batch checks, half for all fresh estimates), ``batch`` copies per batch, ``estimate`` fresh
    copies per firing, ``max_rounds`` the round limit (learner mistake bound + 1).
    """

    eps: float
    delta: float
    batch: int
    estimate: int
    mistake_bound: int
    max_rounds: int
    source: str

    @property
    def tau(self) -> float:
        return TAU * self.eps

    @property
    def gamma(self) -> float:
        return GAMMA * self.eps


def protocol_constants(
    num_qubits: int,
    num_checks: int,
    eps: float,
    delta: float,
    batch: int | None = None,
    max_rounds: int | None = None,
) -> ProtocolConstants:
    """Theoretical constants: ``b`` from :func:`~.threshold_search.batch_size` over all checks
    of all rounds, ``m = ceil(ln(4 R / delta) / (2 (eps/16)^2))`` fresh copies per firing."""
    bound = mmw.mistake_bound(num_qubits, GAMMA * eps)
    rounds = bound + 1 if max_rounds is None else int(max_rounds)
    b_theory = batch_size(eps, delta / 2, num_checks * rounds)
    m = math.ceil(math.log(4 * rounds / delta) / (2 * (ESTIMATE_ACCURACY * eps) ** 2))
    source = "theoretical (Hoeffding + union bound)"
    if batch is not None and int(batch) != b_theory:
        source = f"batch_size={int(batch)} set by the user (theory: {b_theory})"
    return ProtocolConstants(
        eps, delta, b_theory if batch is None else int(batch), m, bound, rounds, source
    )


@dataclass
class ProtocolResult:
    """What one run of the protocol did (outcomes and counts only)."""

    values: np.ndarray
    certified: bool
    rounds: int = 0
    checks_per_batch: list[int] = field(default_factory=list)
    firings: list[int] = field(default_factory=list)
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
        engine.new_batch(constants.batch)
        found = threshold_search(order, p, thresholds, engine.check)
        result.checks_per_batch.append(found.checks)
        if found.fired is None:
            result.values, result.certified = values, True
            return result
        j = found.fired
        result.firings.append(j)
        feedback = engine.estimate(j, constants.estimate) / constants.estimate
        state, updated = mmw.update(state, effect(j), feedback)
        if updated:
            result.updates += 1
            values = predict(mmw.hypothesis(state))
    result.values = values
    return result
