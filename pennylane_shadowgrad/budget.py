"""Per-component variances, the shadow / parameter-shift shot split, and budget planning.

The shadow estimator of a plan is linear in the snapshots: with ``gamma_jP = Tr(P G_j) / 2^n``,
``d_j = sum_P gamma_jP x_P`` and ``x_P`` the mean parity over the ``N_P`` shots whose basis
covers ``P``. One snapshot of basis ``b`` with outcome ``s`` therefore contributes
``w_jb(s) = sum_{P covered by b} gamma_jP parity_P(s) / N_P``, and

    Var(d_j) = sum_b S_b Var_{s ~ p_b}(w_jb(s))                     (given the bases)

Both ``w_jb`` and the outcome law ``p_b`` are Walsh-Hadamard transforms over the ``2^n`` words
that ``b`` covers: ``w_jb`` of the coefficients, ``p_b`` of the covered Pauli expectations. The
same formula gives the exact variance (exact expectations ``x``) and a plug-in estimate (a
pilot's ``x``, clipped to ``[-1, 1]``). A parameter-shift derivative of a rotation
``exp(-i scale theta P / 2)`` from ``m`` shots per shifted circuit has variance
``scale^2 (Var_+(O) + Var_-(O)) / (4 m)``; an observable measured as ``G`` qubit-wise-commuting
groups ``O = sum_g O_g`` (one tape of ``m`` shots each) has ``sum_g Var(O_g)`` in place of
``Var(O)`` and costs ``2 G m`` shots.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pennylane as qml
from pennylane.measurements import ExpectationMP, ProbabilityMP
from pennylane.tape import QuantumScript
from scipy.stats import norm

from .circuit import (
    FixedGate,
    PauliRotation,
    PauliSum,
    RotationCircuit,
    decompose_for_gradient,
    pauli_coefficients_of_matrix,
    pauli_sum,
    pauli_sum_square,
    rotation_form,
)
from .estimators.dense import _apply_fixed, _apply_rotation, commutator_coefficients
from .estimators.shadow import _covered_indices, _walsh_hadamard, single_coverage
from .snapshots import MAX_AUTO_BASES, SnapshotPlan, make_plan

#: Default pilot fraction of the snapshot budget. Measured (``hybrid_allocation.py
#: --pilot-sweep``, exact, 40 pilot seeds): auto / min(pure, ps) for pilot 0.02 / 0.05 / 0.1 is
#: 0.984 / 1.007 / 1.059 (ring n=3 M=24), 1.013 / 1.044 / 1.102 (ring n=4 M=96), 0.117 / 0.121 /
#: 0.130 (brick n=6 M=24), 1.029 / 1.051 / 1.107 (TFIM n=5 M=60): 0.02 is 2-4% better at
#: T >= 2400. The heavy tail once seen at n=10, depth 2 (``--wide-n``) came from stage-2
#: weights given the main plan's random bases, not from the pilot size (fixed: see
#: :func:`expected_block_shadow_variance`); 0.05 is kept until small budgets are measured.
DEFAULT_PILOT = 0.05

#: Components whose ``sum_P gamma_jP^2`` is below this are exactly zero (outside the light
#: cone, or a generator that commutes with the observable): they cost no shots.
_ZERO_TOL = 1e-20


# --------------------------------------------------------------------------- observables
def output_observables(tape: QuantumScript, wire_order) -> list[PauliSum]:
    """One :class:`PauliSum` per scalar output: an ``expval``'s observable, or one projector per
    ``probs`` outcome (``wires[0]`` most significant), in measurement order."""
    from .shadow_gradient import _probability_projectors

    out = []
    for m in tape.measurements:
        if isinstance(m, ProbabilityMP):
            out += _probability_projectors(m.wires, wire_order)
        elif isinstance(m, ExpectationMP):
            out.append(pauli_sum(m.obs, wire_order))
        else:
            raise ValueError(f"Only expval and probs have per-output variances, got {m}.")
    return out


def generator_coefficients(
    circuit: RotationCircuit, obs: PauliSum, chunk: int = 16, params=None
) -> np.ndarray:
    """``gamma[j, P] = Tr(P G_j) / 2^n`` for every trainable parameter: shape ``(M, 4**n)``.

    Each generator ``P_j`` is carried forward through the gates after it (``Q_j = A_j P_j
    A_j^dag``), batched over ``chunk`` parameters, and ``G_j = (scale_j i / 2) [Q_j, O]``;
    ``d_j = sum_P gamma[j, P] x_P`` is exactly the dense sweep applied to ``x``.

    **Example**

    >>> import pennylane as qml
    >>> from pennylane_shadowgrad.circuit import pauli_sum, rotation_form
    >>> tape = qml.tape.QuantumScript([qml.RX(0.3, 0)], [qml.expval(qml.Z(0))])
    >>> tape.trainable_params = [0]
    >>> circuit = rotation_form(tape)
    >>> gamma = generator_coefficients(circuit, pauli_sum(qml.Z(0), tape.wires))
    >>> gamma.round(3)  # d<Z>/dx = -<Y> after RX
    array([[ 0.,  0., -1.,  0.]])
    """
    n, num = circuit.num_qubits, circuit.num_params
    out = np.zeros((num, 4**n))
    inside = _light_cone(circuit, obs)
    where = [(g, gate) for g, gate in enumerate(circuit.gates) if _is_param(gate) and inside[g]]
    if params is not None:  # only these parameters' rows (the others stay zero)
        keep = set(int(j) for j in params)
        where = [(g, gate) for g, gate in where if gate.param in keep]
    if not where:
        return out
    for start in range(0, len(where), chunk):
        part = where[start : start + chunk]
        q = np.zeros((len(part),) + (4,) * n)
        first = part[0][0]
        for g in range(first, len(circuit.gates)):
            gate = circuit.gates[g]
            if g > first:
                q = _forward(q, gate)
            for row, (g_j, gate_j) in enumerate(part):
                if g_j == g:
                    idx = [row] + [0] * n
                    for w, d in zip(gate_j.wires, gate_j.digits):
                        idx[1 + w] = d
                    q[tuple(idx)] = 2.0**n  # coefficients Tr(P Q) of Q = P_j
        h = commutator_coefficients(obs, q)  # Tr(R i[O, Q_j])
        for row, (_, gate_j) in enumerate(part):
            out[gate_j.param] -= 0.5 * gate_j.scale * h[row].reshape(-1) / 2.0**n
    return out


# --------------------------------------------------------------------------- light cones
def gradient_support(circuit: RotationCircuit, observables: list[PauliSum]) -> np.ndarray:
    """Qubit positions that carry every ``G_j`` of every observable (sorted).

    ``G_j = (scale_j i / 2) [Q_j, O]`` with ``Q_j`` the generator carried forward through the
    gates after rotation ``j``, so ``supp G_j`` lies in ``supp O`` united with the forward light
    cone of rotation ``j``; only rotations in the backward light cone of ``O`` have ``G_j != 0``.
    Every ``gamma_jP`` with ``P`` outside this support is exactly zero.
    """
    obs_wires, supports = _component_supports(circuit, observables)
    return np.array(sorted(obs_wires.union(*supports.values())), dtype=np.int64)


def _component_supports(
    circuit: RotationCircuit, observables: list[PauliSum]
) -> tuple[set, dict[int, set]]:
    """The observables' wires, and per parameter inside their light cone the wires of ``G_j``."""
    n = circuit.num_qubits
    obs_wires = set()
    for o in observables:
        obs_wires |= set(np.flatnonzero(np.any(o.digits > 0, axis=0)).tolist())
    digits = np.zeros((1, n), dtype=np.uint8)
    digits[0, sorted(obs_wires)] = 3
    inside = _light_cone(circuit, PauliSum(digits, np.ones(1)))
    supports: dict[int, set] = {}
    gates = circuit.gates
    for g, gate in enumerate(gates):
        if not (_is_param(gate) and inside[g]):
            continue
        cone = set(gate.wires)
        for later in gates[g + 1 :]:
            if cone.intersection(later.wires):
                cone |= set(later.wires)
        supports.setdefault(gate.param, set(obs_wires)).update(cone)
    return obs_wires, supports


def restrict_circuit(circuit: RotationCircuit, support) -> RotationCircuit:
    """The gates acting inside ``support`` only, on the ``len(support)``-qubit register.

    Exact for :func:`generator_coefficients` when ``support`` comes from
    :func:`gradient_support`: a gate that leaves the support never touches the forward light
    cone of a rotation in the backward light cone of the observables, so it acts on every
    ``Q_j`` as the identity.
    """
    pos = {int(q): k for k, q in enumerate(support)}
    gates = []
    for gate in circuit.gates:
        if all(w in pos for w in gate.wires):
            wires = tuple(pos[w] for w in gate.wires)
            if isinstance(gate, PauliRotation):
                gates.append(replace(gate, wires=wires))
            else:
                gates.append(FixedGate(wires, gate.matrix))
    wire_order = qml.wires.Wires([circuit.wire_order[int(q)] for q in support])
    return RotationCircuit(wire_order, tuple(gates), circuit.num_params)


def restrict_pauli_sum(obs: PauliSum, support) -> PauliSum:
    """``obs`` on the support register (its words must lie inside ``support``)."""
    return PauliSum(obs.digits[:, np.asarray(support, dtype=np.int64)], obs.coeffs)


def local_generator_coefficients(
    circuit: RotationCircuit, observables: list[PauliSum]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(support, [gamma_o])``: :func:`generator_coefficients` on the light-cone register.

    ``gamma_o`` has shape ``(M, 4**k)`` with ``k = len(support)``; the full coefficients are
    these on words supported in ``support`` and zero elsewhere. Costs ``O(M 4**k)`` instead of
    ``O(M 4**n)``: for shallow circuits with local observables ``k`` does not grow with ``n``.
    """
    support = gradient_support(circuit, observables)
    local = restrict_circuit(circuit, support)
    gamma = [generator_coefficients(local, restrict_pauli_sum(o, support)) for o in observables]
    return support, gamma


@dataclass
class GradientBlocks:
    """The coefficients ``gamma`` of every output, per light-cone block of components.

    Component ``j`` only needs the words inside ``S_j = supp(O) + forward cone of rotation j``
    (:func:`gradient_support` per component). Components are grouped by support (a support
    contained in a larger one joins it); each block holds ``(support, rows, [gamma_o])`` with
    ``gamma_o`` of shape ``(len(rows), 4**len(support))``. Every estimate and variance of a
    component is computed exactly on its block's register, in ``O(sum_b |rows_b| 4^k_b)``
    instead of ``O(M 4^n)``.
    """

    num_qubits: int
    num_params: int
    blocks: list

    @property
    def num_outputs(self) -> int:
        return len(self.blocks[0][2]) if self.blocks else 0

    def full(self) -> list[np.ndarray]:
        """The ``(M, 4**n)`` coefficients of every output (small registers only)."""
        out = [np.zeros((self.num_params, 4**self.num_qubits)) for _ in range(self.num_outputs)]
        for support, rows, gammas in self.blocks:
            idx = local_indices(self.num_qubits, support)
            for o, g in enumerate(gammas):
                out[o][np.ix_(rows, idx)] = g
        return out

    def map(self, fn) -> np.ndarray:
        """``(M, O)`` array from ``fn(support, gamma_o) -> (len(rows),)`` per block, output."""
        out = np.zeros((self.num_params, self.num_outputs))
        for support, rows, gammas in self.blocks:
            for o, g in enumerate(gammas):
                out[rows, o] = fn(support, g)
        return out

    def needed_words(self) -> np.ndarray:
        """Full-register flat indices of every word some component needs."""
        idx = [local_indices(self.num_qubits, s)[c > 0] for s, c in self.word_weights()]
        return np.unique(np.concatenate(idx)) if idx else np.zeros(0, dtype=np.int64)

    @classmethod
    def from_full(cls, gamma: list[np.ndarray], num_qubits: int) -> GradientBlocks:
        """One block on the whole register from full ``(M, 4**n)`` coefficients."""
        rows = np.arange(gamma[0].shape[0])
        return cls(num_qubits, len(rows), [(np.arange(num_qubits), rows, list(gamma))])

    def word_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(support, c)`` per block with ``c_P = sum_jo gamma_jP^2`` (``(4**k,)``)."""
        return [(s, sum(np.sum(g**2, axis=0) for g in gs)) for s, _, gs in self.blocks]


def gradient_blocks(circuit: RotationCircuit, observables: list[PauliSum]) -> GradientBlocks:
    """Per-component light-cone blocks of ``gamma`` (see :class:`GradientBlocks`)."""
    n = circuit.num_qubits
    _, supports = _component_supports(circuit, observables)
    groups: list[tuple[frozenset, list]] = []
    for j, sup in sorted(supports.items(), key=lambda item: -len(item[1])):
        for big, rows in groups:
            if sup <= big:
                rows.append(j)
                break
        else:
            groups.append((frozenset(sup), [j]))
    blocks = []
    for sup, rows in groups:
        support = np.array(sorted(sup), dtype=np.int64)
        local = restrict_circuit(circuit, support)
        rows = np.array(sorted(rows), dtype=np.int64)
        gammas = [
            generator_coefficients(local, restrict_pauli_sum(o, support), params=rows)[rows]
            for o in observables
        ]
        blocks.append((support, rows, gammas))
    return GradientBlocks(n, circuit.num_params, blocks)


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
            covered = np.bincount(_covered_indices(lp.bases).ravel(), minlength=4**k) > 0
            pi = 1.0 - (1.0 - single_coverage(lp)) ** lp.num_bases
            factor = np.where(covered, 1.0 / np.where(pi > 0, pi, 1.0), 0.0) - 1.0
            factor[0] = 0.0
            means[d][rows] = np.einsum("orp,p->ro", g, xb * factor)
    return cond_var + np.var(means, axis=0, ddof=1)


def block_sums(blocks: GradientBlocks, plan: SnapshotPlan, outcomes: list) -> list:
    """A :class:`~.estimators.shadow.ShadowSums` of the snapshots on every block's register."""
    from .estimators.shadow import ShadowSums

    n = blocks.num_qubits
    return [
        ShadowSums(local_plan(plan, s), local_outcomes(outcomes, n, s)) for s, _, _ in blocks.blocks
    ]


def local_indices(num_qubits: int, support) -> np.ndarray:
    """Flat full-register index of every word of the support register: ``(4**k,)``."""
    k = len(support)
    digits = np.indices((4,) * k).reshape(k, -1)
    place = 4 ** (num_qubits - 1 - np.asarray(support, dtype=np.int64))
    return place @ digits if k else np.zeros(1, dtype=np.int64)


def local_plan(plan: SnapshotPlan, support) -> SnapshotPlan:
    """``plan`` seen on ``support``: same shots per basis, bases restricted to ``support``.

    Coefficients of words inside ``support`` are estimated exactly as in the full plan (same
    covering shots, same coverage probabilities), so variances computed on it are exact.
    """
    support = np.asarray(support, dtype=np.int64)
    beta = None if getattr(plan, "beta", None) is None else plan.beta[support]
    return replace(plan, bases=plan.bases[:, support], beta=beta)


def local_outcomes(outcomes: list, num_qubits: int, support) -> list:
    """Outcome integers (wire 0 most significant) marginalised to ``support``."""
    support = np.asarray(support, dtype=np.int64)
    shifts = num_qubits - 1 - support
    place = 1 << np.arange(len(support) - 1, -1, -1)
    return [(((s[:, None] >> shifts[None]) & 1) @ place).astype(np.int64) for s in outcomes]


def _merge_bases(plan: SnapshotPlan) -> SnapshotPlan:
    """A deterministic plan with equal bases merged (shots summed): same estimator variance."""
    if plan.random:
        return plan
    uniq, inverse = np.unique(plan.bases, axis=0, return_inverse=True)
    if len(uniq) == plan.num_bases:
        return plan
    shots = np.bincount(inverse.reshape(-1), plan.shots, minlength=len(uniq)).astype(np.int64)
    return replace(plan, bases=uniq, shots=shots)


def _light_cone(circuit: RotationCircuit, obs: PauliSum) -> list[bool]:
    """Whether each gate touches the backward light cone of ``obs`` (else its ``G_j = 0``)."""
    cone = set(np.flatnonzero(np.any(obs.digits > 0, axis=0)).tolist())
    inside = [False] * len(circuit.gates)
    for g in range(len(circuit.gates) - 1, -1, -1):
        wires = set(circuit.gates[g].wires)
        if wires & cone:
            inside[g] = True
            cone |= wires
    return inside


def _is_param(gate) -> bool:
    return isinstance(gate, PauliRotation) and gate.param is not None


def _forward(q: np.ndarray, gate) -> np.ndarray:
    """Schrodinger step ``Q <- U Q U^dag`` (the Heisenberg step of ``U^dag``)."""
    if isinstance(gate, PauliRotation):
        return _apply_rotation(q, replace(gate, angle=-gate.angle))
    return _apply_fixed(q, FixedGate(gate.wires, gate.matrix.conj().T))


# --------------------------------------------------------------------------- shadow variance
def _coverage(plan: SnapshotPlan) -> tuple[np.ndarray, np.ndarray]:
    """Covered flat indices ``(B, 2^n)`` and the divisor ``N_P pi_P`` of every Pauli word."""
    n = plan.num_qubits
    idx = _covered_indices(plan.bases)
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
    p = _walsh_hadamard(xs[_covered_indices(plan.bases)]) / 2**n
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
        support: qubit positions of ``gamma``'s register when it comes from
            :func:`local_generator_coefficients` (``plan`` and ``x`` may be full-register: they
            are restricted here; equal restricted bases of a deterministic plan are merged).
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
        w = _walsh_hadamard(c)  # per-outcome contribution of one snapshot
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


# --------------------------------------------------------------------------- biased bases
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


# --------------------------------------------------------------------------- exact states
def pauli_expectations(state: np.ndarray) -> np.ndarray:
    """All ``<P>`` of a state vector (wire 0 first), flat ``(4**n,)``."""
    rho = np.outer(state, np.conj(state))
    return pauli_coefficients_of_matrix(rho).real.reshape(-1)


def _state(ops, wire_order) -> np.ndarray:
    tape = QuantumScript(list(ops), [qml.state()])
    dev = qml.device("default.qubit", wires=wire_order)
    return np.asarray(qml.execute([tape], dev, diff_method=None)[0])


def _output_variances(state: np.ndarray, observables: list[PauliSum]) -> np.ndarray:
    """``Var(O)`` of each output in the state (``O^2`` from the Pauli expansion)."""
    x = pauli_expectations(state)
    return np.array([_variance_from_x(o, x) for o in observables])


# --------------------------------------------------------------------------- measured groups
def measurement_groups(observables: list[PauliSum]) -> list[np.ndarray]:
    """Qubit-wise-commuting groups of the non-identity Pauli words of all outputs.

    Each group is a ``(k, n)`` digit array of words that one circuit execution measures
    together (one basis per qubit). Greedy first fit, heaviest words first (deterministic).
    A Pauli word or a ``probs`` output is one group; the open TFIM (``ZZ`` + ``X`` terms) two.
    The parameter-shift part of ``strategy="auto"`` runs one tape per group and shifted
    circuit, so that every tape costs exactly its shots on any device (a device left to split
    ``expval(H)`` itself charges its own number of groups per tape).
    """
    if not observables:
        return []
    n = observables[0].digits.shape[1]
    rows = [o.digits for o in observables if len(o)]
    if not rows:
        return []
    words = np.unique(np.concatenate(rows).reshape(-1, n), axis=0)
    words = words[np.any(words != 0, axis=1)]
    order = sorted(range(len(words)), key=lambda i: (-int(np.sum(words[i] != 0)), i))
    letters, members = [], []
    for i in order:
        w = words[i]
        for g, let in enumerate(letters):
            if np.all((let == 0) | (w == 0) | (let == w)):
                letters[g] = np.where(w != 0, w, let)
                members[g].append(w)
                break
        else:
            letters.append(w.copy())
            members.append([w])
    return [np.array(m, dtype=np.uint8) for m in members]


def group_parts(obs: PauliSum, groups: list[np.ndarray]) -> list[PauliSum]:
    """``obs`` split into its terms measured by each group (identity terms dropped)."""
    index = {g_word.tobytes(): g for g, words in enumerate(groups) for g_word in words}
    which = np.array([index.get(d.tobytes(), -1) for d in obs.digits], dtype=np.int64)
    return [PauliSum(obs.digits[which == g], obs.coeffs[which == g]) for g in range(len(groups))]


def grouped_variance(parts: list[PauliSum], x: np.ndarray) -> float:
    """``sum_g Var(O_g)``: one shot of every group (each group from its own samples)."""
    return float(sum(_variance_from_x(p, x) for p in parts if len(p)))


def _variance_from_x(obs: PauliSum, x: np.ndarray) -> float:
    n = obs.digits.shape[1]
    sq = pauli_sum_square(obs)
    flat = lambda ps: np.ravel_multi_index(ps.digits.T.astype(np.int64), (4,) * n)  # noqa: E731
    mean = float(np.dot(x[flat(obs)], obs.coeffs)) if len(obs) else 0.0
    second = float(np.dot(x[flat(sq)], sq.coeffs)) if len(sq) else 0.0
    return max(second - mean**2, 0.0)


def shift_variances(
    tape: QuantumScript, circuit: RotationCircuit, observables: list[PauliSum]
) -> np.ndarray:
    """Exact per-shot parameter-shift variance ``u[j, o] = scale^2 sum_g (Var_+ + Var_-) / 4``.

    One "shot" is one shot of each of the :func:`measurement_groups` (each group its own tape
    with ``m`` shots, so a component costs ``2 G m`` counted shots); ``Var_+(O_g)`` is the
    variance of output ``o``'s group-``g`` terms in the ``+`` shifted state. ``tape`` is the
    decomposed tape (every trainable parameter the angle of one rotation). Simulated on
    ``default.qubit`` without shots: a classical computation, ``2M`` states.
    """
    scale = _param_scales(circuit)
    params = tape.get_parameters(trainable_only=True)
    groups = measurement_groups(observables)
    parts = [group_parts(o, groups) for o in observables]
    u = np.zeros((circuit.num_params, len(observables)))
    for j in range(circuit.num_params):
        total = np.zeros(len(observables))
        for sign in (1.0, -1.0):
            shifted = shifted_tape(tape, j, sign, scale[j], params)
            x = pauli_expectations(_state(shifted.operations, circuit.wire_order))
            total += np.array([grouped_variance(p, x) for p in parts])
        u[j] = scale[j] ** 2 * total / 4.0
    return u


def _param_scales(circuit: RotationCircuit) -> np.ndarray:
    scale = np.ones(circuit.num_params)
    for gate in circuit.gates:
        if _is_param(gate):
            scale[gate.param] = gate.scale
    return scale


def shifted_tape(tape: QuantumScript, j: int, sign: float, scale: float, params=None):
    """``tape`` with trainable parameter ``j`` shifted so that its rotation angle moves by
    ``sign * pi / 2`` (angle = ``scale * theta``)."""
    params = tape.get_parameters(trainable_only=True) if params is None else params
    new = list(params)
    new[j] = params[j] + sign * np.pi / (2.0 * scale)
    return tape.bind_new_parameters(new, tape.trainable_params)


# --------------------------------------------------------------------------- allocation
@dataclass(frozen=True)
class Allocation:
    """A split of ``total`` shots: ``shadow`` snapshots and ``ps_shots[j]`` per shifted circuit.

    ``mse`` is the predicted summed MSE of the inverse-variance combination (``weights[j, o]``
    on the shadow estimate) under the variance model that produced the split.
    """

    shadow: int
    ps_shots: np.ndarray
    weights: np.ndarray
    mse: float
    component_mse: np.ndarray = field(repr=False)
    #: measured groups per shifted circuit (:func:`measurement_groups`; ``None``: 1): each
    #: shifted circuit runs as ``groups[j]`` tapes of ``ps_shots[j]`` shots
    groups: np.ndarray | None = None

    @property
    def ps_total(self) -> int:
        g = np.ones(len(self.ps_shots)) if self.groups is None else np.asarray(self.groups)
        return int(2 * np.sum(g * self.ps_shots))


def _optimal_ps(a: np.ndarray, u: np.ndarray, budget: float) -> np.ndarray:
    """Real ``m >= 0`` minimising ``sum_jo 1/(a_jo + m_j / u_jo)`` with ``2 sum m_j = budget``."""
    num = a.shape[0]
    live = np.any(u > 0, axis=1)
    if budget <= 0 or not live.any():
        return np.zeros(num)
    safe_u = np.where(u > 0, u, 1.0)

    w = np.where(u > 0, 1.0 / safe_u, 0.0)

    def m_of(lam):
        # Per output the stationarity condition w/(a + m w)^2 = lam has the root
        # sqrt(u/lam) - u a; the largest of these lies left of the root of the sum (every
        # term is positive), where Newton's method on the decreasing convex sum then rises
        # monotonically to it.
        with np.errstate(over="ignore", invalid="ignore"):
            single = np.where(u > 0, np.clip(np.sqrt(u / lam) - u * a, 0, None), 0.0)
            m = single.max(axis=1)
            if a.shape[1] > 1:
                for _ in range(12):
                    x = a + m[:, None] * w
                    h = np.sum(np.where(u > 0, w / x**2, 0.0), axis=1) - lam
                    dh = -2.0 * np.sum(np.where(u > 0, w**2 / x**3, 0.0), axis=1)
                    step = np.where((h > 0) & (dh < 0), -h / np.where(dh < 0, dh, -1.0), 0.0)
                    m = m + step
                    if np.all(step <= 1e-9 * (1.0 + m)):
                        break
        return np.where(live, m, 0.0)

    lo, hi = -80.0, 80.0  # log10 of the multiplier 2 lambda
    for _ in range(40):  # 160 / 2**40 < 1e-10 in log10 lambda
        mid = (lo + hi) / 2
        if 2 * m_of(10.0**mid).sum() > budget:
            lo = mid
        else:
            hi = mid
    return m_of(10.0**hi)


def _combined(a: np.ndarray, m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per-(j, o) variance of the inverse-variance combination."""
    ps_prec = np.where(m[:, None] > 0, np.inf, 0.0)
    prec = a + np.where(u > 0, m[:, None] / np.where(u > 0, u, 1.0), ps_prec)
    return np.where(prec > 0, 1.0 / np.where(prec > 0, prec, 1.0), np.inf)


def allocate(
    v: np.ndarray,
    u: np.ndarray,
    total: int,
    active: np.ndarray | None = None,
    min_shadow: int = 1,
    grid: int = 16,
    groups=1,
) -> Allocation:
    """Split ``total`` shots between shadow snapshots and parameter-shift circuits.

    Minimises the summed variance ``sum_jo 1 / (T_sh / v_jo + m_j / u_jo)`` of the
    inverse-variance combination over ``T_sh + 2 sum_j G_j m_j = total`` (``T_sh = 0`` or
    ``T_sh >= min_shadow``): a convex problem, solved by water-filling in ``m`` for each
    ``T_sh`` on a grid refined by golden-section search.

    Args:
        v: ``(M, O)`` single-snapshot shadow variances (variance at ``T`` snapshots ``= v/T``).
        u: ``(M, O)`` single-shot parameter-shift variances (at ``m`` shots per tape:
            ``u/m``); a "shot" is one shot of each of the ``G_j`` measured groups.
        total: shots to split.
        active: components that may get parameter-shift shots (default: all with ``v > 0``).
        min_shadow: smallest non-zero shadow budget (e.g. ``3**n`` for a complete plan).
        grid: number of ``T_sh`` grid points.
        groups: ``G_j`` (int or ``(M,)``), tapes per shifted circuit: component ``j`` costs
            ``2 G_j m_j`` shots (:func:`measurement_groups`).

    **Example**

    >>> v = np.array([[9.0], [9.0]]); u = np.array([[0.5], [0.5]])
    >>> allocate(v, u, 1000).shadow  # parameter-shift is cheaper for both components
    0
    """
    v = np.atleast_2d(np.asarray(v, dtype=float))
    u = np.atleast_2d(np.asarray(u, dtype=float))
    active = np.any(v > 0, axis=1) if active is None else np.asarray(active, dtype=bool)
    u = np.where(active[:, None], u, 0.0)
    live = active | np.any(v > 0, axis=1)
    g_tapes = np.maximum(np.broadcast_to(np.asarray(groups, dtype=np.int64), (v.shape[0],)), 1)
    u_shot = u * g_tapes[:, None]  # variance per counted shot: m_j shots cost G_j m_j

    def evaluate(t: float):
        a = np.where(v > 0, t / np.where(v > 0, v, 1.0), np.inf)
        m = _optimal_ps(np.where(np.isinf(a), 1e300, a), u_shot, total - t)
        comp = _combined(a, m, u_shot)
        comp = np.where(live[:, None], comp, 0.0)
        return float(np.sum(comp)), m

    candidates = [0.0] if np.all(u[live] > 0) or not live.any() else []
    lo = float(min(max(min_shadow, 1), total))
    if lo <= total:
        candidates += list(np.geomspace(lo, total, grid))
    scores = [evaluate(t)[0] for t in candidates]
    best = int(np.argmin(scores))
    t_best = candidates[best]
    if t_best > 0:  # golden-section refinement between the grid neighbours
        a_, b_ = candidates[max(best - 1, 0)] or lo, candidates[min(best + 1, len(candidates) - 1)]
        a_ = max(a_, lo)
        g = (np.sqrt(5) - 1) / 2
        c_, d_ = b_ - g * (b_ - a_), a_ + g * (b_ - a_)
        fc, fd = evaluate(c_)[0], evaluate(d_)[0]
        for _ in range(16):  # one new evaluation per step; shrinks the bracket by 5e-4
            if fc < fd:
                b_, d_, fd = d_, c_, fc
                c_ = b_ - g * (b_ - a_)
                fc = evaluate(c_)[0]
            else:
                a_, c_, fc = c_, d_, fd
                d_ = a_ + g * (b_ - a_)
                fd = evaluate(d_)[0]
        t_ref = (a_ + b_) / 2
        if evaluate(t_ref)[0] < scores[best]:
            t_best = t_ref
    return _integer_allocation(v, u, g_tapes, total, t_best, live, min_shadow)


def _integer_allocation(v, u, g, total, t_real, live, min_shadow) -> Allocation:
    """Round the real split to integer shots per tape whose counted shots
    ``shadow + 2 sum_j G_j m_j`` add up to at most ``total``."""
    a_real = np.where(v > 0, t_real / np.where(v > 0, v, 1.0), np.inf)
    counted = _optimal_ps(np.where(np.isinf(a_real), 1e300, a_real), u * g[:, None], total - t_real)
    m_real = counted / g
    m = np.floor(m_real).astype(np.int64)
    shadow = int(total - 2 * np.sum(g * m))
    if t_real == 0 or shadow < min_shadow:
        # no shadow part: hand the rounding remainder to the largest parameter-shift parts
        order = np.argsort(-(m_real - m))
        k = 0
        while k < len(order):
            j = order[k]
            if m_real[j] > 0 and shadow >= 2 * g[j]:
                m[j] += 1
                shadow -= 2 * int(g[j])
            k += 1
        shadow = 0
    t = float(shadow)
    a = np.where(v > 0, t / np.where(v > 0, v, 1.0), np.inf)
    var_sh = np.where(a > 0, 1.0 / np.where(a > 0, a, 1.0), np.inf)
    comp = np.where(live[:, None], _combined(a, m.astype(float), u), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = np.where(np.isinf(var_sh), 0.0, np.nan_to_num(comp / var_sh, nan=1.0))
    weights = np.where(m[:, None] == 0, 1.0, weights)
    return Allocation(shadow, m, weights, float(np.sum(comp)), comp, g.copy())


# --------------------------------------------------------------------------- planning
@dataclass
class BudgetPlan:
    """Predicted per-component MSE of each strategy and the budget each needs.

    Attributes:
        shots: the gradient shot budget the prediction is for.
        mse: strategy -> ``(M, O)`` predicted MSE per component (tape parameter) and output.
        budget: strategy -> shots needed so that every component is within ``epsilon`` with
            probability ``1 - delta`` (normal approximation, union bound), when ``epsilon``
            is given.
        allocation: the ``auto`` split at ``shots``.
        source: what the prediction used (``"simulation"``: exact state and variances;
            ``"pilot"``: a pilot of snapshots on the device, plug-in variances).
        notes: caveats.
    """

    shots: int
    mse: dict
    budget: dict
    allocation: Allocation
    source: str
    notes: list[str] = field(default_factory=list)

    def total_mse(self) -> dict:
        """Summed predicted MSE per strategy."""
        return {k: float(np.sum(v)) for k, v in self.mse.items()}


@dataclass
class VarianceModel:
    """What an allocation needs: per-snapshot shadow and per-shot parameter-shift variances.

    ``v`` is for the reference plan ``plan`` (variance at ``T`` snapshots of the default plan
    ``~ v / T``), ``u`` per shot per shifted circuit; ``active`` marks non-zero components.
    """

    v: np.ndarray
    u: np.ndarray
    active: np.ndarray
    gamma: list
    x: np.ndarray
    min_shadow: int
    groups: int = 1


def variance_model(
    tape: QuantumScript,
    circuit: RotationCircuit,
    total: int,
    x: np.ndarray,
    exact_u: bool,
    bases="auto",
) -> VarianceModel:
    """Shadow and parameter-shift variances of ``tape``'s gradient at budget ``total``.

    ``x`` are Pauli expectations (exact or a pilot's); with ``exact_u`` the shift variances are
    simulated exactly, otherwise ``Var_+ + Var_- ~ 2 Var(O)`` at the unshifted state (from
    ``x``), per measured group (:func:`measurement_groups`, summed over groups).
    """
    n = circuit.num_qubits
    observables = output_observables(tape, circuit.wire_order)
    gamma = [generator_coefficients(circuit, o) for o in observables]
    plan = make_plan(n, max(int(total), 1), bases=bases, seed=0)
    v = np.stack([shadow_variance(g, plan, x)[0] for g in gamma], axis=1) * plan.num_snapshots
    active = np.any(np.stack([np.sum(g**2, 1) for g in gamma], 1) > _ZERO_TOL, axis=1)
    if exact_u:
        u = shift_variances(tape, circuit, observables)
    else:
        groups_ = measurement_groups(observables)
        xs = np.clip(x, -1, 1)
        var_o = np.array([grouped_variance(group_parts(o, groups_), xs) for o in observables])
        scale = _param_scales(circuit)
        u = scale[:, None] ** 2 * 2.0 * np.maximum(var_o, 1e-3)[None] / 4.0
    complete = 3**n
    min_shadow = complete if bases == "auto" and complete <= 729 and complete <= total else 1
    num_groups = max(len(measurement_groups(observables)), 1)
    return VarianceModel(v, u, active, gamma, np.asarray(x), min_shadow, num_groups)


def _normal_budget(per_shot: np.ndarray, epsilon: float, delta: float) -> int:
    """Shots ``T`` with ``sqrt(c_j / T) z <= epsilon`` for all ``j`` (union bound over ``j``)."""
    live = per_shot[per_shot > 0]
    if live.size == 0:
        return 0
    z = norm.ppf(1 - delta / (2 * live.size))
    return int(np.ceil(z**2 * live.max() / epsilon**2))


def plan(
    qnode,
    *args,
    shots: int | None = None,
    epsilon: float | None = None,
    delta: float = 0.05,
    source: str = "simulation",
    pilot: float = DEFAULT_PILOT,
    seed=None,
    **kwargs,
) -> BudgetPlan:
    """Predict each strategy's per-component MSE at a shot budget, before the real run.

    Strategies: ``"shadow"`` (pure shadow, default plan), ``"parameter-shift"`` (equal shots on
    the ``2 M' G`` tapes of the ``M'`` non-zero components, each shifted circuit measured as
    its ``G`` qubit-wise-commuting groups, :func:`measurement_groups`) and ``"auto"`` (pilot, then
    the optimal split, combined with inverse-variance weights).

    Args:
        qnode (QNode or QuantumScript): the circuit; ``args``/``kwargs`` are its arguments.
        shots: the gradient shot budget (default: the QNode's shots).
        epsilon, delta: when ``epsilon`` is given, also the budget each strategy needs for all
            components within ``epsilon`` with probability ``1 - delta`` (normal approximation,
            union bound over components).
        source: ``"simulation"`` (exact state and variances from a classical simulation; for
            small registers) or ``"pilot"`` (a pilot of ``pilot * shots`` snapshots on the
            QNode's device; plug-in shadow variances, parameter-shift variances from
            ``Var(O)`` at the unshifted state).
        pilot: pilot fraction of ``auto`` (and of ``source="pilot"``).
        seed: seed of the pilot's bases.

    Returns:
        BudgetPlan: per-strategy predictions; ``source`` says what they used.

    **Example**

    >>> import pennylane as qml
    >>> import pennylane_shadowgrad as sg
    >>> dev = qml.device("default.qubit")
    >>> @qml.qnode(dev, shots=4000)
    ... def f(x):
    ...     qml.RX(x[0], 0)
    ...     qml.RY(x[1], 0)
    ...     return qml.expval(qml.Z(0))
    >>> p = sg.plan(f, qml.numpy.array([0.3, 0.4]))
    >>> sorted(p.mse), p.source
    (['auto', 'parameter-shift', 'shadow'], 'simulation')
    """

    if isinstance(qnode, QuantumScript):
        tape, device = qnode, None
    else:
        tape = qml.workflow.construct_tape(qnode, level="user")(*args, **kwargs)
        device = qnode.device
    total = shots if shots is not None else tape.shots.total_shots
    if total is None:
        raise ValueError("plan() needs a shot budget: pass shots=... or give the QNode shots.")
    rot = decompose_for_gradient(tape)
    circuit = rotation_form(rot)
    notes = []
    if source == "simulation":
        x = pauli_expectations(_state(rot.operations, circuit.wire_order))
        exact = True
    elif source == "pilot":
        if device is None:
            raise ValueError("source='pilot' needs a QNode (its device runs the pilot).")
        x = _pilot_expectations(rot, circuit, device, max(int(pilot * total), 1), seed)
        exact = False
        notes.append(f"pilot of {max(int(pilot * total), 1)} snapshots on {device.name}")
    else:
        raise ValueError(f"source must be 'simulation' or 'pilot', got {source!r}.")
    t_pilot = max(round(pilot * total), 1)
    model = variance_model(rot, circuit, total - t_pilot, x, exact_u=exact)
    # equal shots on the G tapes (measured groups) of each of the 2 M' shifted circuits
    ps_m = total / (2 * model.groups * max(int(model.active.sum()), 1))
    mse = {
        "shadow": variance_model(rot, circuit, total, x, exact_u=False).v / total,
        "parameter-shift": np.where(model.active[:, None], model.u / ps_m, 0.0),
    }
    alloc = allocate(
        model.v, model.u, total - t_pilot, model.active, model.min_shadow, groups=model.groups
    )
    mse["auto"] = _auto_component_mse(rot, circuit, model, alloc)
    budget = {}
    if epsilon is not None:
        budget = {
            k: _normal_budget(np.sum(val, 1) * total, epsilon, delta) for k, val in mse.items()
        }
    notes.append(
        "auto: the split is predicted from this model; a real run re-derives it from its own "
        "pilot, so its MSE fluctuates around the prediction"
    )
    return BudgetPlan(int(total), mse, budget, alloc, source, notes)


def _auto_component_mse(rot, circuit, model: VarianceModel, alloc: Allocation) -> np.ndarray:
    """Per-component variance of the combination at the integer split (actual shadow plan)."""
    if alloc.shadow > 0:
        plan_ = make_plan(circuit.num_qubits, alloc.shadow, bases="auto", seed=0)
        var_sh = np.stack([shadow_variance(g, plan_, model.x)[0] for g in model.gamma], 1)
    else:
        var_sh = np.full(model.v.shape, np.inf)
    m = alloc.ps_shots[:, None].astype(float)
    var_ps = np.where(m > 0, model.u / np.where(m > 0, m, 1.0), np.inf)
    w = alloc.weights
    out = np.where(w > 0, w**2 * np.nan_to_num(var_sh, posinf=0.0), 0.0)
    out = out + np.where(w < 1, (1 - w) ** 2 * np.nan_to_num(var_ps, posinf=0.0), 0.0)
    return np.where(model.active[:, None], out, 0.0)


def _pilot_expectations(rot, circuit, device, snapshots: int, seed) -> np.ndarray:
    """Pooled Pauli estimates of a pilot run of ``snapshots`` snapshots on ``device``."""
    from .estimators.shadow import ShadowSums
    from .snapshots import decode, snapshot_tapes

    plan_ = make_plan(circuit.num_qubits, snapshots, bases="auto", groups=2, seed=seed)
    tapes = snapshot_tapes(QuantumScript(rot.operations, []), plan_, circuit.wire_order)
    res = qml.execute(tapes, device, diff_method=None)
    return ShadowSums(plan_, decode(res, plan_)).pooled().reshape(-1)
