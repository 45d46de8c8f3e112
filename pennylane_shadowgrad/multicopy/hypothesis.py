"""The classical side of the protocol: per-rotation checks, the effects ``E_j`` and predictions.

Predictions ``Tr(G_j sigma)`` of the hypothesis come from the shared evaluator
:func:`~pennylane_shadowgrad.estimators.dense.gradient_functional` at ``X = sigma`` (the map
that also evaluates shadows). The matrices ``G_j = (i/2)[Q_j, O]`` that the learner needs are
built on demand, one per firing, with the same dense Heisenberg steps (``O(M 4^n)`` each).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..circuit import (
    FixedGate,
    PauliRotation,
    PauliSum,
    RotationCircuit,
    pauli_coefficients_of_matrix,
)
from ..estimators.dense import (
    commutator_coefficients,
    gradient_functional,
    heisenberg_fixed,
    heisenberg_rotation,
)

_PAULIS = np.stack(
    [
        np.eye(2, dtype=complex),
        np.array([[0, 1], [1, 0]], dtype=complex),
        np.array([[0, -1j], [1j, 0]]),
        np.array([[1, 0], [0, -1]], dtype=complex),
    ]
)


@dataclass(frozen=True)
class Checks:
    """One check per trainable rotation.

    ``circuit`` gives trainable rotation ``r`` the parameter index ``r`` with scale 1, so the
    evaluator returns ``d/d angle_r``; ``param[r]`` and ``scale[r]`` map back to tape parameters.
    """

    circuit: RotationCircuit
    param: np.ndarray
    scale: np.ndarray
    gate_index: np.ndarray

    @property
    def num_checks(self) -> int:
        return len(self.param)

    def to_parameters(self, per_rotation: np.ndarray, num_params: int) -> np.ndarray:
        """Chain rule: ``d f / d theta_k = sum_r scale_r d f / d angle_r``."""
        out = np.zeros(num_params)
        np.add.at(out, self.param, self.scale * per_rotation)
        return out


def rotation_checks(circuit: RotationCircuit) -> Checks:
    """Re-index the trainable rotations of ``circuit`` one check each."""
    gates, param, scale, index = [], [], [], []
    for i, gate in enumerate(circuit.gates):
        if isinstance(gate, PauliRotation) and gate.param is not None:
            param.append(gate.param)
            scale.append(gate.scale)
            index.append(i)
            gate = replace(gate, param=len(param) - 1, scale=1.0)
        gates.append(gate)
    new = RotationCircuit(circuit.wire_order, tuple(gates), len(param))
    return Checks(new, np.array(param, dtype=int), np.array(scale), np.array(index, dtype=int))


def predictions(checks: Checks, obs: PauliSum, state: np.ndarray) -> np.ndarray:
    """``Tr(G_j X)`` for a density matrix ``X`` (hypothesis or true state): the evaluator."""
    x = pauli_coefficients_of_matrix(state).real[None]
    return gradient_functional(checks.circuit, obs, x)[0]


def carried_generator(checks: Checks, j: int) -> np.ndarray:
    """Pauli coefficients of ``Q_j = A_j P_j A_j^dag`` (shape ``(1,) + (4,)*n``)."""
    circuit = checks.circuit
    n = circuit.num_qubits
    rot = circuit.gates[checks.gate_index[j]]
    q = np.zeros((1,) + (4,) * n)
    idx = [0] + [0] * n
    for w, d in zip(rot.wires, rot.digits):
        idx[1 + w] = d
    q[tuple(idx)] = 2.0**n
    # Q_j = A_j P_j A_j^dag: Heisenberg steps with the inverse gates, in circuit order.
    for gate in circuit.gates[checks.gate_index[j] + 1 :]:
        if isinstance(gate, PauliRotation):
            q = heisenberg_rotation(q, replace(gate, angle=-gate.angle))
        else:
            q = heisenberg_fixed(q, FixedGate(gate.wires, gate.matrix.conj().T))
    return q


def generator_coefficients(checks: Checks, obs: PauliSum, j: int) -> np.ndarray:
    """Pauli coefficients ``Tr(P G_j)`` of ``G_j = (i/2)[Q_j, O]`` at the end of the circuit."""
    q = carried_generator(checks, j)
    # commutator_coefficients gives i[O, Q] = -i[Q, O] = -2 G_j.
    return -0.5 * commutator_coefficients(obs, q)[0]


def matrix_from_coefficients(coeffs: np.ndarray) -> np.ndarray:
    """The operator ``sum_P Tr(P A) P / 2^n`` from its ``(4,)*n`` Pauli coefficients."""
    n = coeffs.ndim
    t = np.asarray(coeffs, dtype=complex)
    for _ in range(n):
        t = np.tensordot(t, _PAULIS, axes=([0], [0]))  # appends (a_q, b_q)
    order = list(range(0, 2 * n, 2)) + list(range(1, 2 * n, 2))
    return t.transpose(order).reshape(2**n, 2**n) / 2**n


def effect_matrix(g_coeffs: np.ndarray, scale: float) -> np.ndarray:
    """``E_j = (I + G_j / s) / 2`` as a dense matrix."""
    g = matrix_from_coefficients(g_coeffs)
    return 0.5 * (np.eye(g.shape[0]) + g / scale)


#: Largest ``M 4^n`` for which :class:`DenseGenerators` holds every ``G_j`` as a matrix.
DENSE_MAX_ENTRIES = 2**24


def _embed(mat: np.ndarray, wires, n: int) -> np.ndarray:
    """A ``k``-qubit matrix on positions ``wires`` as a ``2^n x 2^n`` matrix (qubit 0 first)."""
    k, d = len(wires), 2**n
    t = np.eye(d, dtype=complex).reshape((2,) * n + (d,))
    g = np.asarray(mat, dtype=complex).reshape((2,) * (2 * k))
    t = np.tensordot(g, t, axes=(list(range(k, 2 * k)), list(wires)))
    t = np.moveaxis(t, list(range(k)), list(wires))
    return t.reshape(d, d)


def _pauli_word(wires, digits, n: int) -> np.ndarray:
    word = _PAULIS[digits[0]]
    for d in digits[1:]:
        word = np.kron(word, _PAULIS[d])
    return _embed(word, wires, n)


class DenseGenerators:
    """Every ``G_j = A_j ((i/2)[P_j, A_j^dag O A_j]) A_j^dag`` as a dense matrix.

    ``A_j`` is the product of the gates after rotation ``j``; one backward pass over the gates
    builds them all in ``O(G 8^n)``. Predictions are then ``Tr(G_j X)`` for all ``j`` at once
    (``O(M 4^n)``), the same numbers as :func:`predictions` (checked in the tests).
    """

    def __init__(self, checks: Checks, obs_matrix: np.ndarray):
        circuit = checks.circuit
        n, d = circuit.num_qubits, 2**circuit.num_qubits
        position = {int(i): j for j, i in enumerate(checks.gate_index)}
        gens = np.zeros((checks.num_checks, d, d), dtype=complex)
        a = np.eye(d, dtype=complex)
        for i in range(len(circuit.gates) - 1, -1, -1):
            gate = circuit.gates[i]
            if isinstance(gate, PauliRotation):
                p = _pauli_word(gate.wires, gate.digits, n)
                if i in position:
                    o = a.conj().T @ obs_matrix @ a
                    gens[position[i]] = a @ (0.5j * (p @ o - o @ p)) @ a.conj().T
                u = np.cos(gate.angle / 2) * np.eye(d) - 1j * np.sin(gate.angle / 2) * p
            else:
                u = _embed(gate.matrix, gate.wires, n)
            a = a @ u
        self.generators = gens

    def predictions(self, state: np.ndarray) -> np.ndarray:
        """``Tr(G_j X)`` for every ``j``."""
        return np.real(np.einsum("jab,ba->j", self.generators, state))

    def effect(self, j: int, scale: float) -> np.ndarray:
        """``E_j = (I + G_j / s) / 2``."""
        g = self.generators[j]
        return 0.5 * (np.eye(g.shape[0]) + g / scale)
