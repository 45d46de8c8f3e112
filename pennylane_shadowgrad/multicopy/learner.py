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

**Signed feedback** (:func:`signed_update`, the default protocol). A three-outcome check that
fires *high* proves ``Tr(E rho) > p + c eps`` and one that fires *low* proves
``Tr(E rho) < p - c eps``; no estimate of ``Tr(E rho)`` is needed, because the conservative
target ``e' = p +- c eps`` already lies between ``p`` and ``Tr(E rho)``. The same projection
step ``eta = logit(e') - logit(p)`` then gives, with ``e = Tr(E rho)``,

    S(rho || sigma') - S(rho || sigma)
        = -eta e + ln Tr exp(L + eta E) / Tr exp(L)
        <= -eta e + ln Tr(sigma exp(eta E))                 (Golden-Thompson)
        <= -eta e + ln(1 - p + e^eta p)                      (exp(eta E) <= I + (e^eta - 1) E)
        =  -eta e + ln((1 - p) / (1 - e'))                   (choice of eta)
        <= -eta e' + ln((1 - p) / (1 - e')) = -KL(e' || p)   (eta (e - e') >= 0)
        <= -2 (e' - p)^2 = -2 c^2 eps^2                      (Pinsker)

and ``0 <= S(rho || sigma) <= n ln 2`` at the start (``sigma = I/2^n``; a warm start ``sigma_0``
starts at most at ``-ln lambda_min(sigma_0)``, :func:`initial_potential`), so at most
``n ln 2 / (2 c^2 eps^2)`` signed updates happen (:func:`mistake_bound` with
``gamma = c eps``), for any, even adversarial, sequence of effects and signs that respects the
guarantee of the checks. Updates at a coarser accuracy ``eps_l >= eps`` gain at least as much,
so one bound covers a whole coarse-to-fine schedule. Reference: Aaronson, Chen, Hazan, Kale,
Nayak, "Online learning of quantum states" (arXiv:1802.09025) for the matrix multiplicative
weights potential; the conservative-target step is the information projection above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

_RANK_DEFICIENT = "A warm-start hypothesis must be full rank (mix it with I / 2^n)."


def mistake_bound(num_qubits: int, gamma: float, potential: float | None = None) -> int:
    """Largest number of updates: ``floor(S_0 / (2 gamma^2))``.

    ``S_0`` bounds the starting relative entropy ``S(rho || sigma_0)`` over all states ``rho``:
    ``n ln 2`` for ``sigma_0 = I / 2^n`` (the default), :func:`initial_potential` for a warm start.
    """
    s0 = num_qubits * math.log(2) if potential is None else float(potential)
    return math.floor(s0 / (2 * gamma**2))


def initial_potential(sigma: np.ndarray) -> float:
    """``-ln lambda_min(sigma)``: the largest ``S(rho || sigma)`` over all states ``rho``.

    ``S(rho || sigma) = -S(rho) - Tr(rho ln sigma) <= -ln lambda_min(sigma)`` with equality for
    ``rho`` the eigenprojector of the smallest eigenvalue. For ``sigma = (1 - a) tau + a I / 2^n``
    it is at most ``n ln 2 + ln(1 / a)``, whatever ``tau``.
    """
    lam = float(np.linalg.eigvalsh(sigma)[0])
    if not lam > 0:
        raise ValueError(_RANK_DEFICIENT)
    return -math.log(lam)


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


def init_learner(
    num_qubits: int, tau: float, feedback_accuracy: float, initial: np.ndarray | None = None
) -> LearnerState:
    """The learner at ``sigma = I / 2^n``, or at the full-rank density matrix ``initial`` (a warm
    start; its mistake bound uses :func:`initial_potential`); needs
    ``tau > feedback_accuracy >= 0``."""
    if not 0 <= feedback_accuracy < tau:
        raise ValueError("The learner needs 0 <= feedback_accuracy < tau.")
    dim = 2**num_qubits
    if initial is None:
        log_weights = np.zeros((dim, dim), dtype=complex)
    else:
        initial = np.asarray(initial, dtype=complex)
        if initial.shape != (dim, dim):
            raise ValueError(f"initial must be a {dim} x {dim} density matrix.")
        evals, evecs = np.linalg.eigh(0.5 * (initial + initial.conj().T))
        if not evals[0] > 0:
            raise ValueError(_RANK_DEFICIENT)
        log_weights = (evecs * np.log(evals)) @ evecs.conj().T
    return LearnerState(log_weights, tau, feedback_accuracy, num_qubits)


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


def signed_update(state: LearnerState, effect: np.ndarray, target: float) -> LearnerState:
    """Signed (conservative-target) update: move ``Tr(E sigma)`` to ``target`` by one step.

    ``target`` is ``p +- c eps`` after a check that fired high (``+``) or low (``-``), so it lies
    between ``p = Tr(E sigma)`` and ``Tr(E rho)`` on the checks' good event; the relative
    entropy then drops by at least ``2 (target - p)^2`` (module docstring).
    """
    p = float(np.real(np.trace(effect @ hypothesis(state))))
    tiny = 1e-12
    p, target = min(max(p, tiny), 1 - tiny), min(max(float(target), tiny), 1 - tiny)
    new = state.log_weights - (_logit(p) - _logit(target)) * effect
    return replace(state, log_weights=0.5 * (new + new.conj().T), updates=state.updates + 1)


def relative_entropy(rho: np.ndarray, state: LearnerState) -> float:
    """The potential ``S(rho || sigma)`` of the mistake bound (natural log)."""
    evals, evecs = np.linalg.eigh(rho)
    evals = np.clip(evals, 0.0, None)
    log_rho = (evecs * np.log(np.where(evals > 0, evals, 1.0))) @ evecs.conj().T
    l_evals, l_evecs = np.linalg.eigh(state.log_weights)
    shift = l_evals.max()
    log_z = shift + math.log(np.exp(l_evals - shift).sum())
    log_sigma = (l_evecs * (l_evals - log_z)) @ l_evecs.conj().T
    return float(np.real(np.trace(rho @ (log_rho - log_sigma))))
