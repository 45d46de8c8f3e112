"""Exact variances of both gradient estimators, from a simulation of the ideal circuit.

The shadow estimate of a plan is linear in the snapshots: with ``gamma_jP = Tr(P G_j) / 2^n``,
``d_j = sum_P gamma_jP x_P`` and ``x_P`` the mean parity over the ``N_P`` shots whose basis
covers ``P``. One snapshot of basis ``b`` with outcome ``s`` contributes
``w_jb(s) = sum_{P covered by b} gamma_jP parity_P(s) / N_P``, so

    Var(d_j) = sum_b S_b Var_{s ~ p_b}(w_jb(s))                     (given the bases)

where ``w_jb`` and the outcome law ``p_b`` are Walsh-Hadamard transforms over the ``2^n`` words
that ``b`` covers (Huang, Kueng and Preskill, arXiv:2002.08953, for the estimator). A
parameter-shift derivative from ``m`` shots per shifted tape has variance
``scale^2 sum_g (Var_+(O_g) + Var_-(O_g)) / (4 m)`` over the measured groups ``g``. Both are
computed here from the exact state vectors of the ideal circuit and of its shifted copies: a
classical computation that uses none of the measured data.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .circuit import (
    PauliRotation,
    PauliSum,
    RotationCircuit,
    pauli_coefficients_of_matrix,
)
from .estimators.light_cone import GradientBlocks, local_indices, local_plan
from .estimators.shadow import walsh_hadamard
from .parameter_shift import group_parts, measurement_groups, param_scales
from .plans import SnapshotPlan, covered_indices, single_coverage

# Basis changes taking the X / Y eigenbases to the computational basis (H, H S^dag).
_H = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)
_TO_Z = {1: _H, 2: _H @ np.diag([1, -1j])}


# --------------------------------------------------------------------------- state vectors
def _apply_word(psi: np.ndarray, wires, digits) -> np.ndarray:
    """``P psi`` for the Pauli word ``digits`` on ``wires``; ``psi``: ``(B, 2, ..., 2)``."""
    out = psi
    for w, d in zip(wires, digits):
        axis = 1 + w
        if d in (1, 2):
            out = np.flip(out, axis=axis)
        if d in (2, 3):
            phase = np.array([-1j, 1j]) if d == 2 else np.array([1.0, -1.0])
            shape = [1] * out.ndim
            shape[axis] = 2
            out = out * phase.reshape(shape)
    return out


def _apply_matrix(psi: np.ndarray, wires, matrix: np.ndarray) -> np.ndarray:
    """``U psi`` for a ``2^k x 2^k`` matrix on ``wires`` (positions)."""
    k = len(wires)
    u = matrix.reshape((2,) * (2 * k))
    axes = [1 + w for w in wires]
    out = np.tensordot(psi, u, axes=(axes, list(range(k, 2 * k))))
    # tensordot puts the gate's output axes last: move them back to ``axes``
    return np.moveaxis(out, list(range(out.ndim - k, out.ndim)), axes)


def simulate(circuit: RotationCircuit, shifts: list[tuple[int, float]] = ()) -> np.ndarray:
    """State vectors of the circuit and of its shifted copies, shape ``(1 + len(shifts), 2^n)``.

    Row 0 is the circuit as given; row ``1 + k`` has the rotation of parameter
    ``shifts[k][0]`` moved by ``shifts[k][1] * pi / 2`` in angle (the parameter-shift
    circuits). Position 0 is the most significant bit.
    """
    n = circuit.num_qubits
    rows = 1 + len(shifts)
    psi = np.zeros((rows,) + (2,) * n, dtype=complex)
    psi[(slice(None),) + (0,) * n] = 1.0
    for gate in circuit.gates:
        if isinstance(gate, PauliRotation):
            angle = np.full(rows, gate.angle)
            if gate.param is not None:
                for k, (j, sign) in enumerate(shifts):
                    if j == gate.param:
                        angle[1 + k] += sign * np.pi / 2
            shape = (rows,) + (1,) * n
            cos = np.cos(angle / 2).reshape(shape)
            sin = np.sin(angle / 2).reshape(shape)
            psi = cos * psi - 1j * sin * _apply_word(psi, gate.wires, gate.digits)
        else:
            psi = _apply_matrix(psi, gate.wires, gate.matrix)
    return psi.reshape(rows, 2**n)


def reduced_pauli_expectations(psi: np.ndarray, num_qubits: int, support) -> np.ndarray:
    """``<P>`` of every word on the ``support`` register (sorted positions), flat ``(4**k,)``."""
    support = [int(q) for q in support]
    rest = [q for q in range(num_qubits) if q not in support]
    t = psi.reshape((2,) * num_qubits).transpose(support + rest).reshape(2 ** len(support), -1)
    rho = t @ t.conj().T
    return pauli_coefficients_of_matrix(rho).real.reshape(-1)


def group_statistics(
    psi: np.ndarray, num_qubits: int, words: np.ndarray, coeffs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``sum_k coeffs[o, k] P_k`` for one qubit-wise-commuting group.

    ``psi``: ``(B, 2^n)`` states; ``words``: ``(K, n)`` digits; ``coeffs``: ``(O, K)``.
    Returns two ``(B, O)`` arrays: the laws of one joint sample of the group's words.
    """
    letters = np.max(words, axis=0)
    t = psi.reshape((psi.shape[0],) + (2,) * num_qubits)
    for q, d in enumerate(letters):
        if d in _TO_Z:
            t = _apply_matrix(t, (q,), _TO_Z[int(d)])
    prob = np.abs(t.reshape(psi.shape[0], -1)) ** 2
    outcomes = np.arange(2**num_qubits)
    place = 1 << np.arange(num_qubits - 1, -1, -1)
    masks = (words > 0).astype(np.int64) @ place
    parity = np.array([bin(int(v)).count("1") for v in range(2**num_qubits)])
    signs = 1.0 - 2.0 * (parity[outcomes[None] & masks[:, None]] % 2)  # (K, 2^n)
    y = coeffs @ signs  # (O, 2^n)
    mean = prob @ y.T
    second = prob @ (y**2).T
    return mean, np.clip(second - mean**2, 0.0, None)


def shift_list(components) -> list[tuple[int, float]]:
    """The ``(parameter, sign)`` shifts of :func:`simulate` for parameter-shift components."""
    return [(int(j), s) for j in components for s in (1.0, -1.0)]


def shift_variances(
    circuit: RotationCircuit, observables: list[PauliSum], components, states=None
) -> np.ndarray:
    """Exact per-shot parameter-shift variance ``u[j, o] = scale^2 sum_g (Var_+ + Var_-) / 4``.

    One "shot" is one shot of each measured group (each group its own tape, so component
    ``j`` costs ``2 G m`` counted shots at ``m`` shots per tape). Rows of ``components`` only.
    ``states``: the shifted states ``simulate(circuit, shift_list(components))[1:]`` if
    already computed.
    """
    n = circuit.num_qubits
    components = [int(j) for j in components]
    u = np.zeros((circuit.num_params, len(observables)))
    if not components:
        return u
    shifts = shift_list(components)
    psi = simulate(circuit, shifts)[1:] if states is None else states
    groups = measurement_groups(observables)
    total = np.zeros((len(shifts), len(observables)))
    for words in groups:
        parts = [group_parts(o, [words])[0] for o in observables]
        c = np.zeros((len(observables), len(words)))
        index = {w.tobytes(): k for k, w in enumerate(words)}
        for o, part in enumerate(parts):
            for d, coeff in zip(part.digits, part.coeffs):
                c[o, index[d.tobytes()]] += coeff
        total += group_statistics(psi, n, words, c)[1]
    scale = param_scales(circuit)
    pair = total.reshape(len(components), 2, -1).sum(axis=1)
    u[components] = scale[components, None] ** 2 * pair / 4.0
    return u


# --------------------------------------------------------------------------- shadow variance
def _coverage(plan: SnapshotPlan) -> tuple[np.ndarray, np.ndarray]:
    """Covered flat indices ``(B, 2^n)`` and the divisor ``N_P pi_P`` of every Pauli word."""
    n = plan.num_qubits
    idx = covered_indices(plan.bases)
    counts = np.bincount(idx.ravel(), np.repeat(plan.shots, 2**n), minlength=4**n).astype(float)
    if plan.random:
        counts *= 1.0 - (1.0 - single_coverage(plan)) ** plan.num_bases
    return idx, counts


def basis_probabilities(plan: SnapshotPlan, x: np.ndarray) -> np.ndarray:
    """Outcome law of every basis from the Pauli expectations ``x`` (flat, ``x_I = 1``).

    ``p_b(s) = 2^-n sum_{m} x_{P_bm} (-1)^{m.s}``; a noisy ``x`` is clipped to ``[-1, 1]`` and
    the law clipped to ``p >= 0`` and renormalised. Shape ``(B, 2^n)``.
    """
    n = plan.num_qubits
    xs = np.clip(np.asarray(x, dtype=float).reshape(-1), -1.0, 1.0)
    xs[0] = 1.0
    p = walsh_hadamard(xs[covered_indices(plan.bases)]) / 2**n
    p = np.clip(p, 0.0, None)
    return p / p.sum(axis=1, keepdims=True)


def shadow_variance(
    gamma: np.ndarray,
    plan: SnapshotPlan,
    x: np.ndarray,
    chunk: int = 64,
    max_bases: int | None = None,
    support=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Variance of every component of the plan's shadow estimate, and a state-free bound.

    Args:
        gamma: ``(M, 4**n)`` coefficients from :func:`generator_coefficients`.
        plan: the snapshot plan (for a random plan: the variance given its bases).
        x: Pauli expectations of the output state, flat ``(4**n,)``: exact ones give the exact
            variance, a pilot's give a plug-in estimate.
        chunk: bases processed at once (memory ``chunk * M * 2^n``).
        max_bases: for a random plan, evaluate only its first ``max_bases`` (i.i.d.) bases and
            rescale: an unbiased estimate of the average over the bases, much cheaper.
        support: qubit positions of ``gamma``'s register when it comes from a block of
            :func:`~.estimators.light_cone.gradient_blocks` (``plan`` and ``x`` may be
            full-register: they are restricted here; equal restricted bases of a
            deterministic plan are merged).
            Exact: the variance only depends on the plan and the state on ``support``.

    Returns:
        ``(variance, bound)``, each of shape ``(M,)``; ``bound = sum_b S_b max_s w_jb(s)^2``
        does not depend on the state.
    """
    if support is not None:
        x = np.asarray(x).reshape(-1)
        if x.size == 4**plan.num_qubits and len(support) < plan.num_qubits:
            x = x[local_indices(plan.num_qubits, support)]
        plan = _merge_bases(local_plan(plan, support))
    idx, div = _coverage(plan)
    used = plan.num_bases
    if plan.random and max_bases is not None and max_bases < plan.num_bases:
        used = max_bases
        plan = replace(plan, bases=plan.bases[:used], shots=plan.shots[:used], groups=1)
    probs = basis_probabilities(plan, x)
    num = gamma.shape[0]
    live = np.flatnonzero(np.any(gamma != 0, axis=1))
    gamma = gamma[live]
    var = np.zeros(gamma.shape[0])
    bound = np.zeros(gamma.shape[0])
    for start in range(0, used, chunk):
        rows = slice(start, start + chunk)
        cov = idx[rows]  # (b, 2^n)
        c = gamma[:, cov] / div[cov][None]  # (M, b, 2^n)
        w = walsh_hadamard(c)  # per-outcome contribution of one snapshot
        p = probs[rows][None]
        mean = np.sum(p * w, axis=2)
        second = np.sum(p * w**2, axis=2)
        shots = plan.shots[rows][None]
        var += np.sum(shots * np.clip(second - mean**2, 0.0, None), axis=1)
        bound += np.sum(shots * np.max(w**2, axis=2), axis=1)
    factor = idx.shape[0] / used
    full_var, full_bound = np.zeros(num), np.zeros(num)
    full_var[live], full_bound[live] = var * factor, bound * factor
    return full_var, full_bound


def block_shadow_variance(
    blocks: GradientBlocks, plan: SnapshotPlan, x, max_bases: int | None = None
) -> np.ndarray:
    """``(M, O)`` exact variances of the plan's shadow estimate (:func:`shadow_variance` per
    block). ``x``: full flat Pauli expectations, or a list of per-block local ones."""
    out = np.zeros((blocks.num_params, blocks.num_outputs))
    for b, (support, rows, gammas) in enumerate(blocks.blocks):
        xb = x[b] if isinstance(x, list) else x
        for o, g in enumerate(gammas):
            out[rows, o] = shadow_variance(g, plan, xb, max_bases=max_bases, support=support)[0]
    return out


def expected_block_shadow_variance(
    blocks: GradientBlocks, draw, x, max_bases: int = 128, draws: int = 64
) -> np.ndarray:
    """``(M, O)`` variance of the shadow estimate of a plan from ``draw()``, over its snapshots
    AND its random bases: ``E_bases[Var(d | bases)] + Var_bases(E[d | bases])``.

    Given its bases, a random plan's coverage-corrected estimate is not unbiased: its mean is
    ``sum_P gamma_jP x_P c_P / pi_P`` (``c_P``: some basis covers ``P``; ``pi_P``: the chance
    of that), so the variance given the bases misses the spread of that mean, which dominates
    when ``B pi_P`` is small (``B`` bases, high-weight words: a plan of 8 random bases covers
    none of most weight-4 words, and its variance given the bases is then 0). Both terms are
    averaged over independent draws of the plan, never the plan that is run, so weights built
    from this variance do not depend on the estimate's own bases. A deterministic plan: the
    plain variance. ``x``: as :func:`block_shadow_variance` (clipped to ``[-1, 1]``).

    Args:
        blocks: the gradient's light-cone blocks.
        draw: returns an independent draw of the plan (same size, same law of bases).
        x: Pauli expectations (exact, or a pilot's).
        max_bases: bases evaluated for the first term, over as many draws as that takes
            (an unbiased estimate of its average; at most ``draws`` draws).
        draws: independent draws for the second term (coverage only: cheap).
    """
    first = draw()
    if not first.random:
        return block_shadow_variance(blocks, first, x, max_bases)
    plans = [first] + [draw() for _ in range(draws - 1)]
    k_var = int(min(draws, max(1, -(-max_bases // first.num_bases))))
    cond_var = np.mean(
        [block_shadow_variance(blocks, p, x, max_bases) for p in plans[:k_var]], axis=0
    )
    n = blocks.num_qubits
    means = np.zeros((draws, blocks.num_params, blocks.num_outputs))
    for b, (support, rows, gammas) in enumerate(blocks.blocks):
        k = len(support)
        xb = np.asarray(x[b] if isinstance(x, list) else x, dtype=float).reshape(-1)
        if xb.size != 4**k:
            xb = xb[local_indices(n, support)]
        xb = np.clip(xb, -1.0, 1.0)
        g = np.stack(gammas)  # (O, rows, 4**k)
        for d, p in enumerate(plans):
            lp = local_plan(p, support)
            covered = np.bincount(covered_indices(lp.bases).ravel(), minlength=4**k) > 0
            pi = 1.0 - (1.0 - single_coverage(lp)) ** lp.num_bases
            factor = np.where(covered, 1.0 / np.where(pi > 0, pi, 1.0), 0.0) - 1.0
            factor[0] = 0.0
            means[d][rows] = np.einsum("orp,p->ro", g, xb * factor)
    return cond_var + np.var(means, axis=0, ddof=1)


def _merge_bases(plan: SnapshotPlan) -> SnapshotPlan:
    """A deterministic plan with equal bases merged (shots summed): same estimator variance."""
    if plan.random:
        return plan
    uniq, inverse = np.unique(plan.bases, axis=0, return_inverse=True)
    if len(uniq) == plan.num_bases:
        return plan
    shots = np.bincount(inverse.reshape(-1), plan.shots, minlength=len(uniq)).astype(np.int64)
    return replace(plan, bases=uniq, shots=shots)


def pauli_expectations(state: np.ndarray) -> np.ndarray:
    """All ``<P>`` of a state vector (wire 0 first), flat ``(4**n,)``."""
    rho = np.outer(state, np.conj(state))
    return pauli_coefficients_of_matrix(rho).real.reshape(-1)
