"""Locally-biased snapshot plans: per-qubit X/Y/Z probabilities fitted to the gradient.

The bias minimises the standard variance proxy of locally-biased classical shadows
(Hadfield et al., arXiv:2006.15788) for the gradient observables ``G_j``; the plans keep the
estimator unbiased (every needed word covered, or divided by its coverage probability).
"""

from __future__ import annotations

import numpy as np
from pennylane.measurements import ExpectationMP, ProbabilityMP
from pennylane.tape import QuantumScript

from .circuit import RotationCircuit, output_observables
from .estimators.light_cone import GradientBlocks, gradient_blocks
from .estimators.shadow import _covered_indices, single_coverage
from .snapshots import MAX_AUTO_BASES, SnapshotPlan


def optimal_bias(blocks: GradientBlocks, floor: float = 0.0, sweeps: int = 50) -> np.ndarray:
    """Per-qubit X/Y/Z probabilities ``beta`` (``(n, 3)``) of a locally-biased plan.

    Minimises the standard proxy ``sum_j sum_P gamma_jP^2 / prod_{q in supp P} beta_q(P_q)``
    (the variance of the textbook biased-shadow estimator without cross terms, and of the
    ratio estimator of a deterministic plan with ``N_P = T prod beta``) by exact coordinate
    descent: with the other qubits fixed, the objective is ``sum_p A_p / beta_q(p)``, minimised
    by ``beta_q(p) ~ sqrt(A_p)``. Convex in ``log beta``, so the sweeps converge to the optimum.
    ``floor`` mixes in the uniform law (``beta <- (1 - 3 floor) beta + floor``). Qubits that no
    component needs stay uniform.
    """
    n = blocks.num_qubits
    weights = [(s, c.reshape((4,) * len(s))) for s, c in blocks.word_weights()]
    beta = np.full((n, 3), 1.0 / 3.0)
    for _ in range(sweeps):
        old = beta.copy()
        for q in range(n):
            a = np.zeros(3)
            for support, c in weights:
                hit = np.flatnonzero(support == q)
                if hit.size == 0:
                    continue
                cover = _word_coverage(beta[support])  # prod_q' beta_q'(P_q') of every word
                with np.errstate(divide="ignore", invalid="ignore"):
                    terms = np.where(c > 0, c / cover, 0.0)
                axes = tuple(r for r in range(len(support)) if r != hit[0])
                a += terms.sum(axis=axes)[1:] * beta[q]  # sum_{P_q = p} c / prod_{q' != q}
            if a.sum() > 0:
                beta[q] = np.sqrt(a) / np.sqrt(a).sum()
        if np.max(np.abs(beta - old)) < 1e-10:
            break
    return (1.0 - 3.0 * floor) * beta + floor


def _word_coverage(beta: np.ndarray) -> np.ndarray:
    """``prod_{q in supp P} beta_q(P_q)`` for every word, shape ``(4,)*k``."""
    out = np.ones(())
    for row in beta:
        out = np.multiply.outer(out, np.concatenate([[1.0], row]))
    return out


def bias_proxy(blocks: GradientBlocks, beta: np.ndarray) -> float:
    """The proxy ``sum_jP gamma_jP^2 / prod beta`` of :func:`optimal_bias`; ``beta = 1/3``
    gives the uniform plan's ``sum gamma^2 3^w``."""
    total = 0.0
    for support, c in blocks.word_weights():
        q = _word_coverage(beta[support]).reshape(-1)
        live = c > 0
        total += float(np.sum(c[live] / q[live]))
    return total


def biased_plan(
    num_qubits: int,
    snapshots: int,
    beta: np.ndarray,
    need=None,
    bases="auto",
    groups: int = 20,
    seed=None,
) -> SnapshotPlan:
    """A locally-biased plan with per-qubit X/Y/Z probabilities ``beta`` (``(n, 3)``).

    ``bases="auto"``: deterministic when ``3**n <= min(T, 729)`` (as the uniform default),
    else ``min(T, 729)`` random bases. Deterministic: shots per basis
    ``S_b ~ T prod_q beta_q(b_q)`` (largest remainders; bases with no shot are left out);
    the pooled ratio estimator stays exactly unbiased as long as every needed word is covered
    (``N_P >= 1``), which is enforced for the flat word indices ``need`` (default: all words
    with ``prod beta > 0``) by moving single shots. Random: ``B`` bases drawn i.i.d. from
    ``beta``; the estimator divides by ``1 - (1 - prod beta)^B`` (``plan.beta`` set).
    """
    n, total = num_qubits, int(snapshots)
    beta = np.asarray(beta, dtype=float)
    complete = 3**n
    if bases == "auto":
        bases = "all" if complete <= min(total, MAX_AUTO_BASES) else min(total, MAX_AUTO_BASES)
    rng = np.random.default_rng(seed)
    if bases != "all":
        b = int(bases)
        digits = np.stack([rng.choice(3, size=b, p=beta[q] / beta[q].sum()) for q in range(n)], 1)
        digits = (digits + 1).astype(np.uint8)
        shots = np.full(b, total // b, dtype=np.int64)
        shots[: total % b] += 1
        return SnapshotPlan(digits, shots, True, int(min(groups, b)), False, beta)
    digits = np.array(np.meshgrid(*[[1, 2, 3]] * n, indexing="ij")).reshape(n, -1).T
    digits = digits.astype(np.uint8)
    prob = np.prod(beta[np.arange(n)[None], digits.astype(int) - 1], axis=1)
    real = total * prob / prob.sum()
    shots = np.floor(real).astype(np.int64)
    order = np.argsort(-(real - shots))
    shots[order[: total - int(shots.sum())]] += 1
    idx = _covered_indices(digits)
    if need is None:
        need = np.flatnonzero(single_coverage(SnapshotPlan(digits, shots, True, 2, False, beta)))
    need = np.asarray(need, dtype=np.int64)
    for _ in range(complete):
        counts = np.bincount(idx.ravel(), np.repeat(shots, 2**n), minlength=4**n)
        missing = need[counts[need] == 0]
        if missing.size == 0:
            break
        covers = np.flatnonzero(np.any(idx == missing[0], axis=1))
        shots[covers[np.argmax(prob[covers])]] += 1
        shots[np.argmax(shots)] -= 1
    else:  # pragma: no cover - every word has a covering basis
        raise RuntimeError("could not cover every needed word")
    keep = shots > 0
    shots, digits = shots[keep], digits[keep]
    return SnapshotPlan(digits, shots, False, int(max(2, min(groups, shots.min()))), True, beta)


#: Uniform mixture in the biased bases (``beta >= BIAS_FLOOR``): keeps every needed word's
#: coverage probability away from zero for random plans.
BIAS_FLOOR = 0.01


def biased_plans(
    tape: QuantumScript, circuit: RotationCircuit, budgets, bases, groups: int, rng, terms=None
) -> list[SnapshotPlan]:
    """One locally-biased plan per budget for ``tape`` (``biased_bases=True``)."""
    if terms or not all(isinstance(m, ExpectationMP | ProbabilityMP) for m in tape.measurements):
        raise ValueError(
            "biased_bases=True needs the gradient observables in advance: expval and probs "
            "measurements only, without trainable observable coefficients."
        )
    blocks = gradient_blocks(circuit, output_observables(tape, circuit.wire_order))
    beta = optimal_bias(blocks, floor=BIAS_FLOOR)
    need = blocks.needed_words()
    n = circuit.num_qubits
    out = []
    for t in budgets:
        b = t if bases == "per-shot" else bases
        out.append(biased_plan(n, int(t), beta, need, bases=b, groups=groups, seed=rng))
    return out
