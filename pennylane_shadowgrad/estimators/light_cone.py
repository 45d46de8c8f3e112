"""Light cones of the gradient observables ``G_j`` and their Pauli coefficients per block.

Component ``j`` of the gradient is ``Tr(rho G_j)`` with ``G_j = (i/2)[Q_j, O]`` and ``Q_j`` the
generator of rotation ``j`` carried forward to the output (Abbas et al., arXiv:2305.13362).
``G_j`` lives on the observable's support united with the forward light cone of rotation
``j``; this module finds those supports, groups components into blocks that share one, and
computes the coefficients ``gamma_jP = Tr(P G_j) / 2^n`` on each block's small register.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pennylane as qml

from ..circuit import FixedGate, PauliRotation, PauliSum, RotationCircuit
from ..plans import SnapshotPlan
from .dense import commutator_coefficients, heisenberg_fixed, heisenberg_rotation


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
        return heisenberg_rotation(q, replace(gate, angle=-gate.angle))
    return heisenberg_fixed(q, FixedGate(gate.wires, gate.matrix.conj().T))


def generator_coefficients(
    circuit: RotationCircuit, obs: PauliSum, chunk: int | None = None, params=None
) -> np.ndarray:
    """``gamma[j, P] = Tr(P G_j) / 2^n`` for every trainable parameter: shape ``(M, 4**n)``.

    Each generator ``P_j`` is carried forward through the gates after it (``Q_j = A_j P_j
    A_j^dag``), batched over ``chunk`` parameters (default: as many as fit in ``2**20``
    coefficients, at least 16), and ``G_j = (scale_j i / 2) [Q_j, O]``;
    ``d_j = sum_P gamma[j, P] x_P`` is exactly the dense sweep applied to ``x``.

    **Example**

    >>> import pennylane as qml
    >>> from pennylane_shadowgrad.circuit import pauli_sum, rotation_form
    >>> tape = qml.tape.QuantumScript([qml.RX(0.3, 0)], [qml.expval(qml.Z(0))])
    >>> tape.trainable_params = [0]
    >>> circuit = rotation_form(tape)
    >>> gamma = generator_coefficients(circuit, pauli_sum(qml.Z(0), tape.wires))
    >>> gamma.round(3)  # d<Z>/dx = -sin(x) = <Y> after RX(x)
    array([[0., 0., 1., 0.]])
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
    if chunk is None:
        chunk = max(16, 2**20 // 4**n)
    for start in range(0, len(where), chunk):
        part = where[start : start + chunk]
        q = np.zeros((len(part),) + (4,) * n)
        first = part[0][0]
        starts = {g_j: row for row, (g_j, _) in enumerate(part)}
        for g in range(first, len(circuit.gates)):
            gate = circuit.gates[g]
            if g > first:
                q = _forward(q, gate)
            row = starts.get(g)
            if row is not None:
                idx = [row] + [0] * n
                for w, d in zip(gate.wires, gate.digits):
                    idx[1 + w] = d
                q[tuple(idx)] = 2.0**n  # coefficients Tr(P Q) of Q = P_j
        h = commutator_coefficients(obs, q)  # Tr(R i[O, Q_j])
        for row, (_, gate_j) in enumerate(part):
            out[gate_j.param] -= 0.5 * gate_j.scale * h[row].reshape(-1) / 2.0**n
    return out


def carried_generators(circuit: RotationCircuit) -> tuple[list[int], np.ndarray]:
    """Every trainable rotation's generator carried forward to the output, ``Q_a``.

    Returns ``(gates, q)``: the gate index of each trainable rotation in circuit order, and the
    Pauli coefficients ``q[a, P] = Tr(P Q_a)`` with ``Q_a = A_a P_a A_a^dag`` (``A_a`` the
    gates after rotation ``a``), shape ``(len(gates), 4**n)``. All rows are carried together:
    ``O(R 4^n)`` per gate.

    **Example**

    >>> import pennylane as qml
    >>> from pennylane_shadowgrad.circuit import rotation_form
    >>> tape = qml.tape.QuantumScript([qml.RX(0.3, 0), qml.Hadamard(0)])
    >>> tape.trainable_params = [0]
    >>> gates, q = carried_generators(rotation_form(tape))
    >>> gates, np.abs(q).round(3)  # H X H = Z: the coefficient Tr(Z Q) = 2
    ([0], array([[0., 0., 0., 2.]]))
    """
    n = circuit.num_qubits
    where = [g for g, gate in enumerate(circuit.gates) if _is_param(gate)]
    q = np.zeros((len(where),) + (4,) * n)
    if not where:
        return where, q.reshape(0, 4**n)
    row = {g: a for a, g in enumerate(where)}
    for g in range(where[0], len(circuit.gates)):
        gate = circuit.gates[g]
        if g > where[0]:
            q = _forward(q, gate)
        if g in row:
            idx = [row[g]] + [0] * n
            for w, d in zip(gate.wires, gate.digits):
                idx[1 + w] = d
            q[tuple(idx)] = 2.0**n
    return where, q.reshape(len(where), -1)


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
    #: components in the light cone whose block was too large to compute (``max_words``)
    skipped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

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


def gradient_blocks(
    circuit: RotationCircuit, observables: list[PauliSum], max_words: int | None = None
) -> GradientBlocks:
    """Per-component light-cone blocks of ``gamma`` (see :class:`GradientBlocks`).

    With ``max_words``, a block whose coefficients would hold more than ``max_words`` numbers
    (``rows * outputs * 4**k``) is left out and its components are listed in
    ``GradientBlocks.skipped``: its classical cost would exceed the estimate's own.
    """
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
    blocks, skipped = [], []
    for sup, rows in groups:
        support = np.array(sorted(sup), dtype=np.int64)
        rows = np.array(sorted(rows), dtype=np.int64)
        if max_words is not None and len(rows) * len(observables) * 4 ** len(sup) > max_words:
            skipped += rows.tolist()
            continue
        local = restrict_circuit(circuit, support)
        gammas = [
            generator_coefficients(local, restrict_pauli_sum(o, support), params=rows)[rows]
            for o in observables
        ]
        blocks.append((support, rows, gammas))
    return GradientBlocks(n, circuit.num_params, blocks, np.array(sorted(skipped), dtype=np.int64))


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
