"""The protocol: signed threshold-search sweeps, coarse-to-fine accuracies, learner updates.

Effects ``E_j = (I + G_j / s) / 2`` live on the data register; the hypothesis predicts
``p_j = Tr(E_j sigma) = (1 + Tr(G_j sigma) / s) / 2``. Each round takes a fresh batch and
sweeps the checks in circuit order at the current accuracy ``eps_l`` of a schedule
``eps_1 > ... > eps_L = eps`` (default ``(3, 2, 1.4, 1) eps``, levels of accuracy ``>= 1``
dropped).

* **Signed checks** (default, ``checks="signed"``): a check fires *high* or *low*; on the good
  event a firing proves ``Tr(E_j rho) - p_j > eps_l / 4`` (resp. ``< -eps_l / 4``), so the
  learner steps to the conservative target ``p_j +- eps_l / 4`` with no fresh estimate
  (:func:`~.learner.signed_update`; at most ``n ln 2 / (2 (eps/4)^2)`` updates over all
  levels). A silent sweep at level ``l < L`` moves to level ``l + 1``; a silent sweep at the
  last level certifies ``sigma`` and the output is ``Tr(G_j sigma) = s (2 p_j - 1)``.
* **Unsigned checks** (``checks="unsigned"``, the previous protocol, one level): a firing
  proves only ``|Tr(E_j rho) - p_j| > eps/4``, so an estimate of ``Tr(E_j rho)`` to ``eps/16`` on
  fresh copies precedes the update.

**Union bound.** With signed checks every failure is a batch misbehaving: round ``r``
(counted over all levels) gets ``delta_r = delta 6 / (pi^2 r^2)``, ``sum_r delta_r = delta``,
and its batch is the exact-binomial size at the hypothesis' predictions and at that round's
accuracy ``eps_l``. On the event that every batch behaves, every firing is legitimate, so the
learner makes at most the mistake bound of updates, the run ends within
``mistake bound + L`` rounds, and the certified ``sigma`` satisfies ``|Tr(E_j (rho - sigma))| <=
eps`` for every ``j``. Unsigned checks split ``delta`` in halves between batches and fresh
estimates, each spread over its own rounds the same way.

**Thresholds.** ``"random"`` (default) draws each threshold uniformly from
``[eps_l/2, 3 eps_l/4]``, the random perturbation of Bădescu–O'Donnell ("Improved quantum data
analysis", arXiv:2011.10908) on which the gentleness (damage) argument rests. ``"fixed"``
uses ``5 eps_l/8`` (wider margins, smaller batches): valid only in the undisturbed-copies model
of the statistical engine, and reported that way. The protocol never sees a state, only what
:class:`~.engines.Engine` answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .engines import Engine
from .learner import hypothesis as learner_hypothesis
from .learner import init_learner, signed_update
from .learner import mistake_bound as learner_mistake_bound
from .learner import update as learner_update
from .threshold_search import (
    FIXED_THRESHOLD,
    MARGIN,
    SILENT_BAND,
    THRESHOLD_HIGH,
    THRESHOLD_LOW,
    anytime_delta,
    batch_size,
    binomial_batch_size,
    draw_thresholds,
    estimate_size,
    threshold_search,
)

#: Accuracy of the fresh estimate (unsigned checks), as a fraction of the effect accuracy.
ESTIMATE_ACCURACY = 1 / 16
#: Unsigned checks: the learner updates when ``|p - b| > TAU eps``: a firing implies
#: ``|Tr(E rho) - p| > eps/4`` and the estimate is within ``eps/16``, so every legitimate firing
#: is a mistake.
TAU = THRESHOLD_LOW - MARGIN - ESTIMATE_ACCURACY
#: Unsigned checks: learner margin ``gamma = tau - eps_b``.
GAMMA = TAU - ESTIMATE_ACCURACY
#: Default coarse-to-fine schedule, in units of the final effect accuracy.
DEFAULT_SCHEDULE = (3.0, 2.0, 1.4, 1.0)

_REMOVED_CALIBRATED = (
    "constants='calibrated' was removed: its divisors were tuned at small M and did not carry "
    "over (at M=300 every run reached max_rounds uncertified). Its replacement is the default "
    "rigorous sizing, which now uses signed checks and a coarse-to-fine accuracy schedule "
    "(checks='signed', schedule=(3, 2, 1.4, 1)); thresholds='fixed' shrinks batches further in "
    "the undisturbed-copies model."
)


def levels_for(eps: float, schedule) -> tuple[float, ...]:
    """The accuracies ``eps_l`` of a schedule of multipliers (ending at ``eps``).

    Multipliers must be positive; they are sorted decreasing, ``1`` is appended when missing,
    multipliers below 1 are refused, and levels whose accuracy is ``>= 1`` (vacuous for effects)
    are dropped.
    """
    mult = sorted({float(m) for m in schedule} | {1.0}, reverse=True)
    if mult[-1] < 1.0:
        raise ValueError("schedule multipliers must be >= 1 (the last level is epsilon).")
    return tuple(m * eps for m in mult if m * eps < 1.0 or m == 1.0)


@dataclass(frozen=True)
class ProtocolConstants:
    """Every number that sizes the protocol, with where it comes from.

    ``eps`` is the final accuracy on the effects, ``levels`` the coarse-to-fine accuracies,
    ``delta`` the failure probability (module docstring for its split). Round ``r``'s batch is
    the exact-binomial size :func:`~.threshold_search.binomial_batch_size` at the hypothesis'
    predictions and the round's accuracy; (unsigned) firing ``f``'s fresh estimate is
    :func:`~.threshold_search.estimate_size`. ``fixed_batch`` (user ``batch_size``) replaces
    every batch; ``batch_scale`` multiplies them (a negative control when < 1). ``batch`` and
    ``estimate`` are the sizes at ``eps`` and ``p = 1/2`` (``sigma = I/2^n``) of round 1.
    """

    eps: float
    delta: float
    num_checks: int
    mistake_bound: int
    max_rounds: int
    fixed_batch: int | None = None
    batch_scale: float = 1.0
    signed: bool = True
    levels: tuple[float, ...] = ()
    thresholds: str = "random"

    def __post_init__(self):
        if not self.levels:
            object.__setattr__(self, "levels", (self.eps,))

    @property
    def tau(self) -> float:
        return (SILENT_BAND if self.signed else TAU) * self.eps

    @property
    def gamma(self) -> float:
        return (SILENT_BAND if self.signed else GAMMA) * self.eps

    @property
    def threshold_range(self) -> tuple[float, float]:
        """Thresholds as fractions of the level's accuracy."""
        if self.thresholds == "fixed":
            return FIXED_THRESHOLD, FIXED_THRESHOLD
        return THRESHOLD_LOW, THRESHOLD_HIGH

    @property
    def batch_delta(self) -> float:
        return self.delta if self.signed else self.delta / 2

    def draw(self, rng: np.random.Generator, eps_level: float) -> np.ndarray:
        """Thresholds of one sweep at accuracy ``eps_level``."""
        if self.thresholds == "fixed":
            return np.full(self.num_checks, FIXED_THRESHOLD * eps_level)
        return draw_thresholds(rng, eps_level, self.num_checks)

    def batch_for(self, round_index: int, predictions: np.ndarray, eps_level=None) -> int:
        """Copies of round ``round_index`` (1-based, over all levels) at ``p_j``."""
        if self.fixed_batch is not None:
            b = float(self.fixed_batch)
        else:
            low, high = self.threshold_range
            b = binomial_batch_size(
                predictions,
                self.eps if eps_level is None else eps_level,
                anytime_delta(self.batch_delta, round_index),
                low,
                high,
            )
        return max(1, math.ceil(b * self.batch_scale))

    def estimate_for(self, firing_index: int) -> int:
        """Fresh copies of (unsigned) firing ``firing_index`` (1-based)."""
        m = estimate_size(ESTIMATE_ACCURACY * self.eps, anytime_delta(self.delta / 2, firing_index))
        return max(1, math.ceil(m))

    @property
    def batch(self) -> int:
        return self.batch_for(1, np.full(self.num_checks, 0.5))

    @property
    def estimate(self) -> int:
        return self.estimate_for(1) if not self.signed else 0

    @property
    def hoeffding_worst_case_batch(self) -> int:
        """The previous, loose size: Hoeffding + union over all checks of max_rounds rounds."""
        return batch_size(self.eps, self.batch_delta, self.num_checks * self.max_rounds)

    @property
    def source(self) -> str:
        if self.fixed_batch is not None:
            text = f"batch_size={self.fixed_batch} set by the user (no guarantee)"
        elif self.signed:
            text = (
                "theoretical: signed checks (no fresh estimates), exact binomial tails at the "
                "hypothesis' predictions and the level's accuracy, anytime union bound "
                "delta_r = delta 6/(pi^2 r^2) over rounds of all levels"
            )
        else:
            text = (
                "theoretical: unsigned checks, exact binomial tails at the hypothesis' "
                "predictions, anytime union bound delta_k = (delta/2) 6/(pi^2 k^2) over rounds "
                "and over firings (fresh estimates)"
            )
        if self.thresholds == "fixed":
            text += (
                "; FIXED thresholds: valid only in the undisturbed-copies model of the "
                "statistical engine (the gentleness/damage argument needs random thresholds)"
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
    checks: str = "signed",
    schedule=DEFAULT_SCHEDULE,
    thresholds: str = "random",
    potential: float | None = None,
) -> ProtocolConstants:
    """Constants of one run; the round limit defaults to the learner's mistake bound plus the
    number of levels (on the good event every firing is an update, every silent sweep a level).
    ``potential`` bounds the starting relative entropy (default ``n ln 2``, the uniform start;
    :func:`~.learner.initial_potential` of a warm start).

    ``mode`` must be ``"theoretical"`` (``"calibrated"`` was removed: a clear error says why).
    Unsigned checks use one level (the schedule is ignored)."""
    if mode == "calibrated":
        raise ValueError(_REMOVED_CALIBRATED)
    if mode != "theoretical":
        raise ValueError("constants must be 'theoretical'.")
    if checks not in ("signed", "unsigned"):
        raise ValueError("checks must be 'signed' or 'unsigned'.")
    if thresholds not in ("random", "fixed"):
        raise ValueError("thresholds must be 'random' or 'fixed'.")
    signed = checks == "signed"
    levels = levels_for(eps, schedule) if signed else (eps,)
    bound = learner_mistake_bound(num_qubits, (SILENT_BAND if signed else GAMMA) * eps, potential)
    rounds = bound + len(levels) if max_rounds is None else int(max_rounds)
    return ProtocolConstants(
        eps,
        delta,
        num_checks,
        bound,
        rounds,
        None if batch is None else int(batch),
        float(batch_scale),
        signed,
        levels,
        thresholds,
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
    levels: list[int] = field(default_factory=list)
    signs: list[int] = field(default_factory=list)
    hypothesis: np.ndarray | None = None

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
    max_seconds: float | None = None,
    initial: np.ndarray | None = None,
) -> ProtocolResult:
    """Learn a hypothesis that passes a whole sweep and return its values ``Tr(G_j sigma)``.

    Args:
        predict: ``sigma -> (Tr(G_j sigma))_j`` (the shared evaluator).
        effect: ``j -> E_j`` as a matrix on the data register (for the learner).
        engine: answers the checks and estimates.
        max_seconds: wall-clock cap of the classical emulation; past it a ``RuntimeError``
            says where the run stood (``None``: no cap).
        initial: full-rank starting hypothesis (a warm start; ``None``: ``I / 2^n``). The
            caller sizes ``constants`` with its :func:`~.learner.initial_potential`.

    The result's ``hypothesis`` is the last ``sigma`` (the certified one when ``certified``).

    Raises:
        RuntimeError: the run exceeded ``max_seconds``.
    """
    start = time.perf_counter()
    accuracy = 0.0 if constants.signed else ESTIMATE_ACCURACY * constants.eps
    state = init_learner(num_qubits, constants.tau, accuracy, initial)
    result = ProtocolResult(np.zeros(num_checks), False, mistake_bound=constants.mistake_bound)
    order = np.arange(num_checks)
    sigma = learner_hypothesis(state)
    values = predict(sigma)
    check = engine.check_signed if constants.signed else engine.check
    level, last = 0, len(constants.levels) - 1
    for _ in range(constants.max_rounds):
        elapsed = time.perf_counter() - start
        if max_seconds is not None and elapsed > max_seconds:
            raise RuntimeError(
                f"gentle-multicopy stopped after {elapsed:.0f} s (max_seconds={max_seconds}) "
                f"in round {result.rounds + 1} of at most {constants.max_rounds}, after "
                f"{result.updates} learner updates (mistake bound {constants.mistake_bound}). "
                "The batches are probably too small for the hypothesis to certify: use the "
                "default sizes (no batch_size/batch_scale), a larger epsilon, or raise "
                "gradient_kwargs['max_seconds']."
            )
        result.rounds += 1
        eps_l = constants.levels[level]
        p = np.clip(0.5 * (1 + values / scale), 0.0, 1.0)
        thresholds = constants.draw(rng, eps_l)
        b = constants.batch_for(result.rounds, p, eps_l)
        result.batch_sizes.append(b)
        result.levels.append(level)
        engine.new_batch(b)
        found = threshold_search(order, p, thresholds, check)
        result.checks_per_batch.append(found.checks)
        if found.fired is None:
            if level == last:
                result.values, result.certified = values, True
                result.hypothesis = sigma
                return result
            level += 1
            continue
        j = found.fired
        result.firings.append(j)
        result.signs.append(found.sign)
        if constants.signed:
            target = p[j] + found.sign * SILENT_BAND * eps_l
            state = signed_update(state, effect(j), target)
            result.updates += 1
            sigma = learner_hypothesis(state)
            values = predict(sigma)
            continue
        m = constants.estimate_for(len(result.firings))
        result.estimate_sizes.append(m)
        feedback = engine.estimate(j, m) / m
        state, updated = learner_update(state, effect(j), feedback)
        if updated:
            result.updates += 1
            sigma = learner_hypothesis(state)
            values = predict(sigma)
    result.values = values
    result.hypothesis = sigma
    return result
