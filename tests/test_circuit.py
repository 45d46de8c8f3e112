"""Circuit form: decomposition into Pauli rotations and fixed gates, and observables as Pauli sums.

Every check compares with PennyLane's own matrices (``qml.matrix``), never with the package.
"""

import itertools
import warnings

import numpy as np
import pennylane as qml
import pytest
from _reference import pauli_matrix
from pennylane import numpy as pnp
from pennylane.tape import QuantumScript
from pennylane.wires import Wires

import pennylane_shadowgrad  # noqa: F401  (registers diff_method='shadow')
from pennylane_shadowgrad.circuit import (
    FixedGate,
    PauliRotation,
    UnsupportedCircuitError,
    decompose_to_rotations,
    is_pauli_rotation,
    pauli_coefficients_of_matrix,
    pauli_sum,
    rotation_form,
    stopping_condition,
)
from pennylane_shadowgrad.estimators.dense import gradient_functional


def embed(matrix, wires, n):
    """``matrix`` on positions ``wires`` of ``n`` qubits (position 0 most significant)."""
    return qml.matrix(qml.QubitUnitary(matrix, wires=list(wires)), wire_order=range(n))


def assert_equal_up_to_phase(u, v, atol=1e-10):
    overlap = np.trace(v.conj().T @ u)
    assert abs(overlap) > 1e-6
    phase = overlap / abs(overlap)
    np.testing.assert_allclose(u, phase * v, atol=atol)


def rotation_matrix(gate: PauliRotation, n, angle=None):
    full = [0] * n
    for w, d in zip(gate.wires, gate.digits):
        full[w] = d
    p = pauli_matrix(full)
    a = gate.angle if angle is None else angle
    return np.cos(a / 2) * np.eye(2**n) - 1j * np.sin(a / 2) * p, p


def gate_matrices(circuit):
    n = circuit.num_qubits
    mats = []
    for gate in circuit.gates:
        if isinstance(gate, PauliRotation):
            mats.append(rotation_matrix(gate, n)[0])
        else:
            mats.append(embed(gate.matrix, gate.wires, n))
    return mats


def unitary_of(circuit):
    u = np.eye(2**circuit.num_qubits, dtype=complex)
    for m in gate_matrices(circuit):
        u = m @ u
    return u


def prepare(tape):
    """What the expand transform does: decompose, then mark trainable the interface's params."""
    new = decompose_to_rotations(tape)
    new.trainable_params = qml.math.get_trainable_indices(new.get_parameters(trainable_only=False))
    return new


def tape_unitary(tape):
    return qml.matrix(QuantumScript(tape.operations), wire_order=tape.wires)


# Gates whose generator is not one Pauli word, each with neighbours that make the circuit
# non-trivial. Parameters are trainable autograd tensors, as in a QNode.
def _p(*values):
    return [pnp.array(v, requires_grad=True) for v in values]


NON_PAULI_GATES = {
    "Rot": lambda: [qml.Hadamard(0), qml.Rot(*_p(0.3, -0.8, 1.1), wires=0)],
    "CRX": lambda: [qml.Hadamard(0), qml.RY(0.4, 1), qml.CRX(*_p(0.7), wires=[0, 1])],
    "CRY": lambda: [qml.Hadamard(0), qml.RX(0.4, 1), qml.CRY(*_p(-1.3), wires=[1, 0])],
    "U3": lambda: [qml.RX(0.2, 0), qml.U3(*_p(0.5, 1.2, -0.4), wires=0)],
    "DoubleExcitation": lambda: [
        qml.BasisState(np.array([1, 1, 0, 0]), wires=[0, 1, 2, 3]),
        qml.RY(0.3, 2),
        qml.DoubleExcitation(*_p(0.9), wires=[0, 1, 2, 3]),
    ],
    "SingleExcitation": lambda: [
        qml.PauliX(0),
        qml.RY(0.3, 1),
        qml.SingleExcitation(*_p(0.6), wires=[0, 1]),
    ],
    "ControlledPhaseShift": lambda: [
        qml.Hadamard(0),
        qml.Hadamard(1),
        qml.ControlledPhaseShift(*_p(0.8), wires=[0, 1]),
    ],
    "PhaseShift": lambda: [qml.Hadamard(0), qml.PhaseShift(*_p(-0.7), wires=0)],
    "IsingXY": lambda: [qml.Hadamard(0), qml.RX(0.5, 1), qml.IsingXY(*_p(1.1), wires=[0, 1])],
}


@pytest.mark.parametrize("name", sorted(NON_PAULI_GATES))
def test_non_pauli_generators_are_decomposed(name):
    ops = NON_PAULI_GATES[name]()
    tape = QuantumScript(ops, [qml.expval(qml.Z(0))])
    assert any(op.name == name for op in tape.operations)
    new = prepare(tape)
    assert all(stopping_condition(op) for op in new.operations)
    trainable_ops = {new.par_info[i]["op_idx"] for i in new.trainable_params}
    for op_idx in trainable_ops:
        assert is_pauli_rotation(new.operations[op_idx]), new.operations[op_idx]
    if name in ("Rot", "CRX", "CRY", "U3", "DoubleExcitation", "SingleExcitation", "IsingXY"):
        assert all(op.name != name for op in new.operations)
    assert_equal_up_to_phase(tape_unitary(new), tape_unitary(tape))
    circuit = rotation_form(new)
    assert circuit.num_params == len(new.trainable_params) >= 1
    assert_equal_up_to_phase(unitary_of(circuit), tape_unitary(tape))


@pytest.mark.parametrize("name", sorted(NON_PAULI_GATES))
def test_rotation_form_parameter_map(name):
    """dU/dtheta_k from the rotation form (param index and scale) equals finite differences."""
    tape = prepare(QuantumScript(NON_PAULI_GATES[name](), [qml.expval(qml.Z(0))]))
    circuit = rotation_form(tape)
    n = circuit.num_qubits
    mats = gate_matrices(circuit)
    params = [float(qml.math.unwrap(p)) for p in tape.get_parameters(trainable_only=True)]
    for k in range(circuit.num_params):
        analytic = np.zeros((2**n, 2**n), dtype=complex)
        for g, gate in enumerate(circuit.gates):
            if not isinstance(gate, PauliRotation) or gate.param != k:
                continue
            before = np.eye(2**n, dtype=complex)
            for m in mats[:g]:
                before = m @ before
            after = np.eye(2**n, dtype=complex)
            for m in mats[g + 1 :]:
                after = m @ after
            _, p = rotation_matrix(gate, n)
            analytic += after @ (-0.5j * gate.scale * p) @ mats[g] @ before

        def u_at(shift, k=k):
            new = list(params)
            new[k] += shift
            t = tape.bind_new_parameters(new, tape.trainable_params)
            return tape_unitary(t)

        eps = 1e-3
        fd = (-u_at(2 * eps) + 8 * u_at(eps) - 8 * u_at(-eps) + u_at(-2 * eps)) / (12 * eps)
        # the tape unitary may differ from the rotation form by a parameter-dependent global
        # phase (PhaseShift = e^{i phi/2} RZ): compare after removing it from both.
        u0 = unitary_of(circuit)
        phase = np.trace(u0.conj().T @ u_at(0.0)) / 2**n
        d_phase = (
            np.trace(u0.conj().T @ fd) / 2**n - phase * np.trace(u0.conj().T @ analytic) / 2**n
        )
        np.testing.assert_allclose(fd, phase * analytic + d_phase * u0, atol=1e-8)


def test_decomposed_gradient_matches_parameter_shift():
    """Sweep over the exact state of a circuit using every gate above = exact tape gradient."""
    ops = []
    for name in sorted(NON_PAULI_GATES):
        ops += [op for op in NON_PAULI_GATES[name]() if not isinstance(op, qml.BasisState)]
    ops.append(qml.Toffoli(wires=[0, 2, 3]))
    ops.append(qml.T(1))
    obs = qml.Hamiltonian([0.6, -0.4], [qml.X(0) @ qml.Z(3), qml.Y(1) @ qml.Y(2)])
    tape = prepare(QuantumScript(ops, [qml.expval(obs)]))
    circuit = rotation_form(tape)
    dev = qml.device("default.qubit")
    state = tape_unitary(tape)[:, 0]  # in the order of tape.wires, as the circuit form
    rho = np.outer(state, state.conj())
    x = pauli_coefficients_of_matrix(rho).real[None]
    got = gradient_functional(circuit, pauli_sum(obs, tape.wires), x)[0]
    exact_tape = QuantumScript(
        tape.operations, [qml.expval(obs)], trainable_params=tape.trainable_params
    )
    tapes, fn = qml.gradients.param_shift(exact_tape)
    want = np.array(fn(qml.execute(tapes, dev)))
    assert circuit.num_params == len(want) > 15
    np.testing.assert_allclose(got, want, atol=1e-10)


class ParamGateWithoutDecomposition(qml.operation.Operation):
    num_wires = 1
    num_params = 1

    @staticmethod
    def compute_matrix(t):
        c, s = qml.math.cos(t), qml.math.sin(t)
        return qml.math.stack([qml.math.stack([c, -s]), qml.math.stack([s, c])])


class FourQubitGateWithoutDecomposition(qml.operation.Operation):
    num_wires = 4
    num_params = 0

    @staticmethod
    def compute_matrix():
        return np.eye(16)[::-1]


@pytest.mark.parametrize(
    "op",
    [
        ParamGateWithoutDecomposition(pnp.array(0.3, requires_grad=True), wires=0),
        FourQubitGateWithoutDecomposition(wires=[0, 1, 2, 3]),
    ],
    ids=["trainable-no-generator", "fixed-4-wire-no-decomposition"],
)
def test_unsupported_gates_raise_helpful_error(op):
    tape = QuantumScript([qml.Hadamard(0), op], [qml.expval(qml.Z(0))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PennyLane warns that it cannot decompose the gate
        with pytest.raises(UnsupportedCircuitError, match=op.name) as info:
            decompose_to_rotations(tape)
    message = str(info.value)
    assert "Pauli rotations" in message and "cannot differentiate" in message
    assert str(op.wires.tolist()) in message


def test_unsupported_gate_refused_in_qnode_before_execution():
    dev = qml.device("default.qubit", seed=1)

    @qml.qnode(dev, diff_method="shadow", shots=100)
    def circuit(t):
        qml.Hadamard(0)
        ParamGateWithoutDecomposition(t, wires=0)
        return qml.expval(qml.Z(0))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with qml.Tracker(dev) as tracker, pytest.raises(UnsupportedCircuitError, match="Param"):
            qml.grad(circuit)(pnp.array(0.3, requires_grad=True))
    assert tracker.totals.get("executions", 0) == 0


def test_trainable_non_rotation_gate_refused_by_rotation_form():
    tape = QuantumScript(
        [qml.Hadamard(0), qml.CRX(pnp.array(0.3, requires_grad=True), wires=[0, 1])],
        [qml.expval(qml.Z(1))],
    )
    with pytest.raises(UnsupportedCircuitError, match="CRX"):
        rotation_form(tape)


WIRES = Wires(["a", 3, "b"])
_rng = np.random.default_rng(7)
_herm1 = _rng.normal(size=(2, 2)) + 1j * _rng.normal(size=(2, 2))
_herm2 = _rng.normal(size=(4, 4)) + 1j * _rng.normal(size=(4, 4))
_herm3 = _rng.normal(size=(8, 8)) + 1j * _rng.normal(size=(8, 8))
_state = _rng.normal(size=2) + 1j * _rng.normal(size=2)

OBSERVABLES = {
    "X": qml.X("a"),
    "word": qml.X("a") @ qml.Z("b"),
    "word-Y": qml.Y(3) @ qml.Y("b") @ qml.Z("a"),
    "scaled": 0.7 * qml.Y(3),
    "sum": qml.X("a") + 0.5 * qml.Z(3) @ qml.Z("b") - 0.25 * qml.Y("a"),
    "hamiltonian": qml.Hamiltonian(
        [0.4, -1.2, 0.3, 0.1], [qml.Z("a") @ qml.Z(3), qml.X("b"), qml.Identity("a"), qml.X("b")]
    ),
    "hermitian-1": qml.Hermitian(_herm1 + _herm1.conj().T, wires="b"),
    "hermitian-2-reversed": qml.Hermitian(_herm2 + _herm2.conj().T, wires=["b", "a"]),
    "hermitian-3": qml.Hermitian(_herm3 + _herm3.conj().T, wires=[3, "b", "a"]),
    "projector-basis": qml.Projector([1, 0], wires=["a", "b"]),
    "projector-state": qml.Projector(_state / np.linalg.norm(_state), wires=3),
    "projector-product": qml.prod(qml.Projector([1], "b"), qml.Projector([0], "a")),
    "identity": qml.Identity(3),
}


@pytest.mark.parametrize("name", sorted(OBSERVABLES))
def test_pauli_sum_equals_observable_matrix(name):
    obs = OBSERVABLES[name]
    ps = pauli_sum(obs, WIRES)
    assert ps.digits.shape == (len(ps), 3)
    assert np.all(np.isreal(ps.coeffs))
    mat = sum(
        (c * pauli_matrix(d) for d, c in zip(ps.digits, ps.coeffs)),
        np.zeros((8, 8), dtype=complex),
    )
    np.testing.assert_allclose(mat, qml.matrix(obs, wire_order=WIRES), atol=1e-12)
    assert np.all(ps.coeffs != 0)


def test_pauli_sum_refuses_non_hermitian():
    with pytest.raises(UnsupportedCircuitError, match="not Hermitian"):
        pauli_sum(qml.s_prod(1j, qml.Z(0)), Wires([0]))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pauli_coefficients_of_matrix_brute_force(k):
    rng = np.random.default_rng(k)
    mat = rng.normal(size=(2**k, 2**k)) + 1j * rng.normal(size=(2**k, 2**k))
    got = pauli_coefficients_of_matrix(mat)
    assert got.shape == (4,) * k
    for digits in itertools.product(range(4), repeat=k):
        want = np.trace(pauli_matrix(digits) @ mat)
        assert abs(got[digits] - want) < 1e-12


def test_rotation_form_reads_pauli_rotations_and_fixed_gates():
    t = pnp.array([0.3, -0.2, 0.9, 0.4], requires_grad=True)
    ops = [
        qml.RX(t[0], "q"),
        qml.CNOT(["q", 0]),
        qml.PauliRot(t[1], "XYZ", wires=[0, "q", 5]),
        qml.MultiRZ(t[2], wires=["q", 5]),
        qml.IsingYY(t[3], wires=[0, 5]),
        qml.T(5),
    ]
    tape = QuantumScript(ops, [qml.expval(qml.Z(0))])
    tape.trainable_params = [0, 1, 2, 3]
    circuit = rotation_form(tape)
    assert circuit.wire_order == Wires(["q", 0, 5])
    assert [type(g) for g in circuit.gates] == [
        PauliRotation,
        FixedGate,
        PauliRotation,
        PauliRotation,
        PauliRotation,
        FixedGate,
    ]
    assert [g.param for g in circuit.gates if isinstance(g, PauliRotation)] == [0, 1, 2, 3]
    assert_equal_up_to_phase(unitary_of(circuit), tape_unitary(tape))
