"""Online learning of the hypothesis state by matrix multiplicative weights (docs/math.md).

The learner holds ``sigma = exp(L) / Tr exp(L)`` on ``n`` qubits and updates only on a
*mistake*: an effect ``0 <= E <= I`` with prediction ``p = Tr(E sigma)`` and feedback ``b``
such that ``|p - b| > tau``. The feedback is trusted to ``|b - Tr(E rho)| <= eps_b`` for one
state ``rho``; the update is the multiplicative step

    L <- L - (logit(p) - logit(e')) E,      e' = b + sign(p - b) eps_b,

whose step size is the information projection onto the conservative target ``e'`` (between
``Tr(E rho)`` and ``p``). By Golden–Thompson and ``e^{-xE} <= I - (1 - e^{-x}) E`` the relative
entropy ``S(rho || sigma)`` drops by at least ``KL(e' || p) >= 2 gamma^2`` per update, with
``gamma = tau - eps_b``, and it starts at ``S(rho || I/2^n) <= n ln 2``. Hence the mistake bound
``T <= n ln 2 / (2 gamma^2)`` (:func:`mistake_bound`) for any, even adversarial, sequence of
effects and feedback that respects ``eps_b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


def mistake_bound(num_qubits: int, gamma: float) -> int:
    """Largest number of updates: ``floor(n ln 2 / (2 gamma^2))``."""
    return math.floor(num_qubits * math.log(2) / (2 * gamma**2))


@dataclass(frozen=True)
class LearnerState:
    """Explicit learner state: log-weights ``L`` (Hermitian), constants and the update count."""

    log_weights: np.ndarray
    tau: float
    feedback_accuracy: float
    num_qubits: int
    updates: int = 0

    @property
    def gamma(self) -> float:
        return self.tau - self.feedback_accuracy


def init_learner(num_qubits: int, tau: float, feedback_accuracy: float) -> LearnerState:
    """The learner at ``sigma = I / 2^n``; needs ``tau > feedback_accuracy >= 0``."""
    if not 0 <= feedback_accuracy < tau:
        raise ValueError("The learner needs 0 <= feedback_accuracy < tau.")
    dim = 2**num_qubits
    return LearnerState(np.zeros((dim, dim), dtype=complex), tau, feedback_accuracy, num_qubits)


def hypothesis(state: LearnerState) -> np.ndarray:
    """The hypothesis density matrix ``sigma`` (Hermitian, trace one, full rank)."""
    evals, evecs = np.linalg.eigh(state.log_weights)
    w = np.exp(evals - evals.max())
    return (evecs * (w / w.sum())) @ evecs.conj().T


def _logit(x: float) -> float:
    return math.log(x / (1 - x))


def update(state: LearnerState, effect: np.ndarray, feedback: float) -> tuple[LearnerState, bool]:
    """Update on a mistake (``|Tr(E sigma) - feedback| > tau``); returns ``(state, updated)``."""
    p = float(np.real(np.trace(effect @ hypothesis(state))))
    if abs(p - feedback) <= state.tau:
        return state, False
    sign = 1.0 if p > feedback else -1.0
    target = feedback + sign * state.feedback_accuracy
    tiny = 1e-12
    p, target = min(max(p, tiny), 1 - tiny), min(max(target, tiny), 1 - tiny)
    new = state.log_weights - (_logit(p) - _logit(target)) * effect
    return replace(state, log_weights=0.5 * (new + new.conj().T), updates=state.updates + 1), True
