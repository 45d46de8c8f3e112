"""Snapshot plans as data: which local Pauli bases to measure, how many shots, which groups.

A plan is uniform (all ``3**n`` bases, or bases drawn uniformly at random) or locally biased
(per-qubit X/Y/Z probabilities fitted to the gradient observables; Hadfield et al.,
arXiv:2006.15788). A basis covers the ``2**n`` Pauli words that are ``I`` or its letter on
every qubit; a random plan's estimator divides each word by its coverage probability.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: ``"auto"`` measures every one of the ``3**n`` local bases when ``3**n`` is at most this
#: number and at most the snapshot budget; otherwise it draws this many random bases.
MAX_AUTO_BASES = 729

#: Default number of independent replicate groups (error bars, variance gradients).
DEFAULT_GROUPS = 20


@dataclass(frozen=True)
class SnapshotPlan:
    """Which local Pauli bases to measure and how often.

    Attributes:
        bases: ``(B, n)`` digits in ``{1, 2, 3}`` (X, Y, Z) for each circuit.
        shots: ``(B,)`` shots per basis.
        random: whether the bases were drawn uniformly at random (then the estimator divides
            each coefficient by its coverage probability) or cover all ``3**n`` bases.
        groups: number of independent replicate groups ``K``.
        shot_groups: whether groups split each basis' shots (complete plan) or the bases
            themselves (random plan).
        beta: ``(n, 3)`` per-qubit X/Y/Z probabilities of a locally-biased plan, or ``None``
            (uniform). A random biased plan draws its bases from ``beta`` and the estimator
            divides by the coverage probability ``1 - (1 - prod_q beta_q(P_q))^B``; a
            deterministic biased plan has ``shots[b] ~ prod_q beta_q(b_q)`` (budget.biased_plan).
    """

    bases: np.ndarray
    shots: np.ndarray
    random: bool
    groups: int
    shot_groups: bool
    beta: np.ndarray | None = None

    @property
    def num_bases(self) -> int:
        return len(self.shots)

    @property
    def num_snapshots(self) -> int:
        return int(self.shots.sum())

    @property
    def num_qubits(self) -> int:
        return self.bases.shape[1]

    def basis_groups(self) -> np.ndarray:
        """Group of each basis for a random plan (round robin)."""
        return np.arange(self.num_bases) % self.groups


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def check_snapshots(snapshots) -> None:
    """Refuse a snapshot budget that is neither ``None`` nor a positive integer."""
    if snapshots is not None and not (_is_int(snapshots) and snapshots >= 1):
        raise ValueError(
            f"'snapshots' must be a positive integer (the snapshot budget T) or None (the "
            f"QNode's shots), got {snapshots!r}."
        )


def check_bases(bases) -> None:
    """Refuse a ``bases`` option that is not ``"auto"``, ``"all"``, ``"per-shot"`` or ``B >= 1``."""
    if isinstance(bases, str) and bases in ("auto", "all", "per-shot"):
        return
    if not (_is_int(bases) and bases >= 1):
        raise ValueError(
            "'bases' must be 'auto', 'all', 'per-shot' or a positive integer (a number of "
            f"random bases), got {bases!r}."
        )


def check_groups(groups) -> None:
    """Refuse a ``groups`` option that is not an integer of at least 1."""
    if not (_is_int(groups) and groups >= 1):
        raise ValueError(
            f"'groups' must be an integer of at least 1 (independent replicate groups; error "
            f"bars and var gradients need at least 2), got {groups!r}."
        )


def check_seed(seed) -> None:
    """Refuse a seed that is not ``None``, an integer ``>= 0`` or a ``numpy.random.Generator``."""
    if seed is None or isinstance(seed, np.random.Generator) or (_is_int(seed) and seed >= 0):
        return
    raise ValueError(
        "'seed' must be None (fresh random bases), a non-negative integer (the same bases at "
        "every call) or a numpy.random.Generator (fresh bases per call from a reproducible "
        f"stream), got {seed!r} of type {type(seed).__name__}."
    )


def check_plan_options(options: dict, more: dict | None = None) -> None:
    """Check every snapshot-plan option present in ``options`` (before any device time), and
    the options of ``more`` (``name -> check``) a caller adds."""
    checks = {
        "snapshots": check_snapshots,
        "bases": check_bases,
        "groups": check_groups,
        "seed": check_seed,
        **(more or {}),
    }
    for name, check in checks.items():
        if name in options:
            check(options[name])


def make_plan(
    num_qubits: int,
    snapshots: int,
    bases: str | int = "auto",
    groups: int = DEFAULT_GROUPS,
    seed=None,
) -> SnapshotPlan:
    """Build a :class:`SnapshotPlan` for ``snapshots`` shots on ``num_qubits`` qubits.

    Args:
        num_qubits: number of qubits ``n``.
        snapshots: total number of snapshots (shots) ``T``.
        bases: ``"all"`` (every one of the ``3**n`` bases, shots split evenly: no basis
            randomness), an integer ``B`` (``B`` bases drawn uniformly at random, shots split
            evenly), ``"per-shot"`` (a fresh random basis for every snapshot), or ``"auto"``
            (``"all"`` when every basis gets ``min(groups, 2)`` shots, i.e.
            ``min(groups, 2) * 3**n <= T``, and ``3**n <= MAX_AUTO_BASES``; else
            ``min(T, MAX_AUTO_BASES)`` random bases). ``"auto"`` thus keeps at least two
            replicate groups whenever ``T >= 2`` and ``groups >= 2``: a complete plan's groups
            split the shots of every basis, so one shot per basis leaves a single group (no
            error bars, no unbiased var gradient).
        groups: number of independent replicate groups requested (at least 1). The plan
            holds ``min(groups, smallest shots per basis)`` groups for a complete plan and
            ``min(groups, B)`` for a random one, so that no group is empty.
        seed: seed or ``numpy.random.Generator`` for the random bases.
    """
    if snapshots is None:
        raise ValueError("The snapshot budget must be a positive integer, got None.")
    check_snapshots(snapshots)
    check_bases(bases)
    check_groups(groups)
    check_seed(seed)
    n, total = num_qubits, int(snapshots)
    complete = 3**n
    if bases == "auto":
        full = complete <= MAX_AUTO_BASES and min(int(groups), 2) * complete <= total
        bases = "all" if full else min(total, MAX_AUTO_BASES)
    if bases == "per-shot":
        bases = total
    if bases == "all":
        if total < complete:
            raise ValueError(
                f"bases='all' measures all 3**{n} = {complete} local bases, but the snapshot "
                f"budget is only {total}. Use more shots or bases='auto'/an integer."
            )
        digits = np.array(list(itertools.product((1, 2, 3), repeat=n)), dtype=np.uint8)
        digits = digits.reshape(complete, n)
        shots = _split_evenly(total, complete)
        return SnapshotPlan(digits, shots, False, int(min(groups, shots.min())), True)
    if bases > total:
        raise ValueError(f"Cannot measure {bases} bases with only {total} snapshots.")
    rng = np.random.default_rng(seed)
    digits = rng.integers(1, 4, size=(int(bases), n), dtype=np.uint8)
    shots = _split_evenly(total, int(bases))
    return SnapshotPlan(digits, shots, True, int(min(groups, bases)), False)


def _split_evenly(total: int, parts: int) -> np.ndarray:
    shots = np.full(parts, total // parts, dtype=np.int64)
    shots[: total % parts] += 1
    return shots


def covered_indices(bases: np.ndarray) -> np.ndarray:
    """Flat Pauli index of the word covered by mask ``m`` for every basis: ``(B, 2**n)``."""
    n = bases.shape[1]
    masks = np.arange(2**n)
    # bit (n - 1 - q) of the mask selects qubit q, matching outcome integers (wire 0 = MSB)
    bits = (masks[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1  # (2^n, n)
    place = 4 ** np.arange(n - 1, -1, -1, dtype=np.int64)
    return (bits[None, :, :] * bases[:, None, :].astype(np.int64)) @ place


def pauli_weights(num_qubits: int) -> np.ndarray:
    """Weight (number of non-identity factors) of every Pauli word, as a ``(4,)*n`` array."""
    w = np.zeros((4,) * num_qubits, dtype=np.int64)
    for q in range(num_qubits):
        shape = [1] * num_qubits
        shape[q] = 4
        w = w + (np.arange(4) > 0).reshape(shape)
    return w


def single_coverage(plan: SnapshotPlan) -> np.ndarray:
    """Probability that one random basis of ``plan`` covers each word, flat ``(4**n,)``.

    ``3^-w`` for uniform bases; ``prod_{q in supp P} beta_q(P_q)`` for a biased plan.
    """
    n = plan.num_qubits
    beta = getattr(plan, "beta", None)
    if beta is None:
        return 3.0 ** (-pauli_weights(n).ravel())
    out = np.ones(1)
    for q in range(n):
        out = np.multiply.outer(out, np.concatenate([[1.0], beta[q]])).reshape(-1)
    return out


def optimal_bias(blocks, floor: float = 0.0, sweeps: int = 50) -> np.ndarray:
    """Per-qubit X/Y/Z probabilities ``beta`` (``(n, 3)``) of a locally-biased plan.

    Minimises the standard proxy ``sum_j sum_P gamma_jP^2 / prod_{q in supp P} beta_q(P_q)``
    (the variance of the textbook biased-shadow estimator without cross terms, and of the
    ratio estimator of a deterministic plan with ``N_P = T prod beta``) over the words of the
    light-cone ``blocks``: :func:`optimal_bias_words` on their non-zero words.
    """
    n = blocks.num_qubits
    digits, weights = [np.zeros((0, n), dtype=np.uint8)], [np.zeros(0)]
    for support, c in blocks.word_weights():
        live = np.flatnonzero(c > 0)
        d = np.zeros((len(live), n), dtype=np.uint8)
        d[:, support] = np.stack(np.unravel_index(live, (4,) * len(support)), axis=1)
        digits.append(d)
        weights.append(c[live])
    return optimal_bias_words(np.concatenate(digits), np.concatenate(weights), floor, sweeps)


def optimal_bias_words(
    digits: np.ndarray, weights: np.ndarray, floor: float = 0.0, sweeps: int = 50
) -> np.ndarray:
    """Per-qubit X/Y/Z probabilities ``beta`` (``(n, 3)``) fitted to an explicit list of words.

    ``digits``: ``(U, n)`` Pauli digits (0 = I, 1-3 = X, Y, Z); ``weights``: ``(U,)``
    ``sum_j gamma_jP^2`` per word. Minimises ``sum_P weights_P / prod_{q in supp P}
    beta_q(P_q)`` by exact coordinate descent: with the other qubits fixed, the objective is
    ``sum_p A_p / beta_q(p)``, minimised by ``beta_q(p) ~ sqrt(A_p)``. Convex in ``log beta``,
    so the sweeps converge to the optimum; ``O(sweeps n U)`` time. ``floor`` mixes in the
    uniform law (``beta <- (1 - 3 floor) beta + floor``). Qubits that no word needs stay
    uniform.
    """
    digits = np.asarray(digits)
    weights = np.asarray(weights, dtype=float)
    keep = weights > 0
    digits, weights = digits[keep], weights[keep]
    n = digits.shape[1]
    beta = np.full((n, 3), 1.0 / 3.0)
    rows = np.arange(n)[None, :]
    for _ in range(sweeps if len(weights) else 0):
        old = beta.copy()
        table = np.concatenate([np.ones((n, 1)), beta], axis=1)
        cover = np.prod(table[rows, digits], axis=1)  # prod_q beta_q(P_q) of every word
        for q in range(n):
            own = digits[:, q].astype(np.int64)
            hit = np.flatnonzero(own > 0)
            if not hit.size:
                continue
            before = beta[q, own[hit] - 1]
            # sum_{P_q = p} w_P / prod_{q' != q} beta_q'(P_q') = w / cover * beta_q(p)
            a = np.bincount(own[hit] - 1, weights[hit] / cover[hit] * before, minlength=3)
            beta[q] = np.sqrt(a) / np.sqrt(a).sum()
            cover[hit] *= beta[q, own[hit] - 1] / before
        if np.max(np.abs(beta - old)) < 1e-10:
            break
    return (1.0 - 3.0 * floor) * beta + floor


def _word_coverage(beta: np.ndarray) -> np.ndarray:
    """``prod_{q in supp P} beta_q(P_q)`` for every word, shape ``(4,)*k``."""
    out = np.ones(())
    for row in beta:
        out = np.multiply.outer(out, np.concatenate([[1.0], row]))
    return out


def bias_proxy(blocks, beta: np.ndarray) -> float:
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
    idx = covered_indices(digits)
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
