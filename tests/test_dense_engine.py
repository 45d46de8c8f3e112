"""Exactness of the engine: the dense sweep ``X -> (Tr(X G_j))_j`` against explicit matrices.

For a fixed operator ``X`` (a random Hermitian matrix, or the pooled estimate of real shadow
snapshots), ``gradient_functional`` must equal ``sum_j scale_j Tr(X G_j)`` with
``G_j = (i/2)[Q_j, O]``, ``Q_j = A_j P_j A_j^dag`` built from the gate matrices by brute force,
to machine precision. No statistics here: the same numbers, two ways.
"""

import itertools

import numpy as np
import pennylane as qml
import pytest
from _reference import pauli_matrix
from pennylane import numpy as pnp
from pennylane.tape import QuantumScript
from pennylane.wires import Wires
from scipy.stats import unitary_group

from pennylane_shadowgrad.circuit import (
    FixedGate,
    PauliRotation,
    PauliSum,
    RotationCircuit,
    decompose_to_rotations,
    pauli_sum,
    rotation_form,
)
from pennylane_shadowgrad.estimators.dense import expectation, gradient_functional
from pennylane_shadowgrad.estimators.shadow import ShadowSums
from pennylane_shadowgrad.plans import make_plan
from pennylane_shadowgrad.snapshots import decode, snapshot_tapes


def word_on(wires, digits, n):
    full = [0] * n
    for w, d in zip(wires, digits):
        full[w] = int(d)
    return pauli_matrix(full)


def embed(matrix, wires, n):
    return qml.matrix(qml.QubitUnitary(matrix, wires=list(wires)), wire_order=range(n))


def gate_matrix(gate, n):
    if isinstance(gate, PauliRotation):
        p = word_on(gate.wires, gate.digits, n)
        return np.cos(gate.angle / 2) * np.eye(2**n) - 1j * np.sin(gate.angle / 2) * p
    return embed(gate.matrix, gate.wires, n)


def brute_force_gradient(circuit: RotationCircuit, obs_matrix, x_matrix):
    """``sum_j scale_j Tr(X (i/2)[Q_j, O])`` per parameter, from explicit matrices."""
    n = circuit.num_qubits
    mats = [gate_matrix(g, n) for g in circuit.gates]
    out = np.zeros(circuit.num_params)
    after = np.eye(2**n, dtype=complex)  # product of the gates after gate g
    for g in reversed(range(len(circuit.gates))):
        gate = circuit.gates[g]
        if isinstance(gate, PauliRotation) and gate.param is not None:
            q = after @ word_on(gate.wires, gate.digits, n) @ after.conj().T
            gen = 0.5j * (q @ obs_matrix - obs_matrix @ q)
            value = np.trace(x_matrix @ gen)
            assert abs(value.imag) < 1e-9
            out[gate.param] += gate.scale * value.real
        after = after @ mats[g]
    return out


def pauli_sum_matrix(ps: PauliSum):
    n = ps.digits.shape[1]
    return sum(
        (c * pauli_matrix(d) for d, c in zip(ps.digits, ps.coeffs)),
        np.zeros((2**n, 2**n), dtype=complex),
    )


def coefficients(x_matrix):
    """``x_P = Tr(P X)`` for every Pauli word, brute force, shape ``(4,)*n``."""
    n = round(np.log2(x_matrix.shape[0]))
    out = np.zeros((4,) * n)
    for digits in itertools.product(range(4), repeat=n):
        value = np.trace(pauli_matrix(digits) @ x_matrix)
        assert abs(value.imag) < 1e-10
        out[digits] = value.real
    return out


def from_coefficients(x):
    n = x.ndim
    mat = np.zeros((2**n, 2**n), dtype=complex)
    for digits in itertools.product(range(4), repeat=n):
        mat += x[digits] * pauli_matrix(digits) / 2**n
    return mat


def random_hermitian(rng, n):
    a = rng.normal(size=(2**n, 2**n)) + 1j * rng.normal(size=(2**n, 2**n))
    return (a + a.conj().T) / 2


def random_tape(n, seed, depth=14):
    """Random circuit of trainable Pauli rotations (1 to n wires) and fixed gates."""
    rng = np.random.default_rng(seed)
    wires = list(range(n))
    ops = []

    def pick(k):
        return [int(w) for w in rng.choice(wires, size=k, replace=False)]

    def param():
        return pnp.array(rng.uniform(-np.pi, np.pi), requires_grad=True)

    for _ in range(depth):
        kinds = ["RX", "RY", "RZ", "PauliRot", "MultiRZ", "H", "S", "T", "SX", "Rot"]
        if n >= 2:
            kinds += ["CNOT", "CZ", "SWAP", "IsingXX", "IsingYY", "IsingZZ", "CRX", "U2q"]
        if n >= 3:
            kinds += ["Toffoli", "U3q"]
        kind = kinds[rng.integers(len(kinds))]
        if kind in ("RX", "RY", "RZ"):
            ops.append(getattr(qml, kind)(param(), wires=pick(1)))
        elif kind == "PauliRot":
            k = int(rng.integers(1, n + 1))
            word = "".join(rng.choice(list("XYZ"), size=k))
            ops.append(qml.PauliRot(param(), word, wires=pick(k)))
        elif kind == "MultiRZ":
            ops.append(qml.MultiRZ(param(), wires=pick(int(rng.integers(1, n + 1)))))
        elif kind in ("IsingXX", "IsingYY", "IsingZZ", "CRX"):
            ops.append(getattr(qml, kind)(param(), wires=pick(2)))
        elif kind == "Rot":
            ops.append(qml.Rot(param(), param(), param(), wires=pick(1)))
        elif kind in ("H", "S", "T", "SX"):
            ops.append({"H": qml.Hadamard, "S": qml.S, "T": qml.T, "SX": qml.SX}[kind](pick(1)))
        elif kind in ("CNOT", "CZ", "SWAP", "Toffoli"):
            ops.append(getattr(qml, kind)(wires=pick(2 if kind != "Toffoli" else 3)))
        else:  # a fixed non-Clifford unitary on 2 or 3 wires
            k = 2 if kind == "U2q" else 3
            u = unitary_group.rvs(2**k, random_state=int(rng.integers(2**31)))
            ops.append(qml.QubitUnitary(u, wires=pick(k)))
    ops.append(qml.RY(param(), wires=pick(1)))  # at least one trainable parameter
    tape = QuantumScript(ops, [qml.expval(qml.Z(0))])
    new = decompose_to_rotations(tape)
    new.trainable_params = qml.math.get_trainable_indices(new.get_parameters(trainable_only=False))
    return new


def random_pauli_sum(n, seed, terms=5):
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 4, size=(terms, n)).astype(np.uint8)
    digits[0] = rng.integers(1, 4, size=n)  # one term of full weight (gather path for n > 3)
    return PauliSum(digits, rng.normal(size=terms))


def handmade_circuit(n, seed):
    """Shared parameters with scales, 4- and 5-wire rotations and a 4-wire fixed gate.

    These reach the gather and tensordot paths of the engine that decomposed tapes (fixed
    gates on at most 3 wires) do not.
    """
    rng = np.random.default_rng(seed)
    gates = []
    for _ in range(10):
        k = int(rng.integers(1, n + 1))
        wires = tuple(int(w) for w in rng.choice(n, size=k, replace=False))
        digits = tuple(int(d) for d in rng.integers(1, 4, size=k))
        gates.append(
            PauliRotation(
                wires, digits, float(rng.uniform(-3, 3)), int(rng.integers(3)), rng.normal()
            )
        )
        if rng.random() < 0.5:
            kf = int(rng.integers(1, min(n, 4) + 1))
            fw = tuple(int(w) for w in rng.choice(n, size=kf, replace=False))
            u = unitary_group.rvs(2**kf, random_state=int(rng.integers(2**31)))
            gates.append(FixedGate(fw, u))
    if n >= 4:
        u = unitary_group.rvs(16, random_state=seed)
        gates.insert(3, FixedGate((3, 0, 2, 1), u))
    gates.append(PauliRotation(tuple(range(n)), (2,) * n, 0.37, None))  # not trainable
    return RotationCircuit(Wires(range(n)), tuple(gates), 3)


def shadow_estimate(tape, n, snapshots, seed):
    """Pooled Pauli estimate from real snapshots of ``tape`` on a seeded device."""
    plan = make_plan(n, snapshots, bases="auto", seed=seed)
    tapes = snapshot_tapes(QuantumScript(tape.operations, []), plan, tape.wires)
    results = qml.execute(tapes, qml.device("default.qubit", seed=seed))
    return ShadowSums(plan, decode(results, plan)).pooled()


CASES = [(n, seed) for n in range(1, 6) for seed in (11, 12)]


@pytest.mark.parametrize(("n", "seed"), CASES)
def test_sweep_equals_brute_force_on_random_circuits(n, seed):
    tape = random_tape(n, seed)
    circuit = rotation_form(tape)
    assert circuit.num_qubits == n and circuit.num_params >= 1
    rng = np.random.default_rng(seed + 100)
    x_mats = [random_hermitian(rng, n), random_hermitian(rng, n)]
    x_shadow = shadow_estimate(tape, n, 3**n * 7 + 5, seed)
    x_mats.append(from_coefficients(x_shadow))
    x = np.stack([coefficients(m) for m in x_mats])
    np.testing.assert_allclose(x[2], x_shadow, atol=1e-12)  # the round trip is exact

    herm = random_hermitian(rng, min(n, 2))
    observables = [
        random_pauli_sum(n, seed),
        pauli_sum(qml.Hermitian(herm, wires=list(range(min(n, 2)))[::-1]), tape.wires),
    ]
    for obs in observables:
        got = gradient_functional(circuit, obs, x)
        assert got.shape == (3, circuit.num_params)
        o_mat = pauli_sum_matrix(obs)
        for b, x_mat in enumerate(x_mats):
            want = brute_force_gradient(circuit, o_mat, x_mat)
            scale = max(1.0, np.abs(want).max())
            np.testing.assert_allclose(got[b], want, atol=1e-10 * scale, rtol=0)
            np.testing.assert_allclose(
                expectation(obs, x)[b], np.trace(o_mat @ x_mat).real, atol=1e-10 * scale
            )


@pytest.mark.parametrize(("n", "seed"), [(n, s) for n in (1, 3, 4, 5) for s in (21, 22)])
def test_sweep_equals_brute_force_on_handmade_circuits(n, seed):
    circuit = handmade_circuit(n, seed)
    rng = np.random.default_rng(seed)
    x_mats = [random_hermitian(rng, n) for _ in range(2)]
    x = np.stack([coefficients(m) for m in x_mats])
    obs = random_pauli_sum(n, seed + 1, terms=7)
    got = gradient_functional(circuit, obs, x)
    for b, x_mat in enumerate(x_mats):
        want = brute_force_gradient(circuit, pauli_sum_matrix(obs), x_mat)
        assert np.abs(want).max() > 1e-3  # a non-trivial check
        np.testing.assert_allclose(got[b], want, atol=1e-10 * max(1.0, np.abs(want).max()))


def test_exact_state_gives_exact_gradient():
    """With X = rho (exact), the functional is the exact gradient of Tr(O rho)."""
    tape = random_tape(4, 5)
    circuit = rotation_form(tape)
    obs = qml.Hamiltonian([0.5, -0.3], [qml.X(0) @ qml.Y(2), qml.Z(1) @ qml.Z(3)])
    dev = qml.device("default.qubit")
    # the state in the order of tape.wires (qml.state() would sort the wire labels)
    state = qml.matrix(QuantumScript(tape.operations), wire_order=tape.wires)[:, 0]
    x = coefficients(np.outer(state, state.conj()))[None]
    got = gradient_functional(circuit, pauli_sum(obs, tape.wires), x)[0]
    exact = QuantumScript(
        tape.operations, [qml.expval(obs)], trainable_params=tape.trainable_params
    )
    tapes, fn = qml.gradients.param_shift(exact)
    np.testing.assert_allclose(got, np.array(fn(qml.execute(tapes, dev))), atol=1e-10)


def test_sweep_is_linear_and_batched():
    circuit = handmade_circuit(3, 3)
    rng = np.random.default_rng(0)
    x = np.stack([coefficients(random_hermitian(rng, 3)) for _ in range(2)])
    obs = random_pauli_sum(3, 4)
    a, b = gradient_functional(circuit, obs, x)
    combo = gradient_functional(circuit, obs, (0.3 * x[0] - 1.7 * x[1])[None])[0]
    np.testing.assert_allclose(combo, 0.3 * a - 1.7 * b, atol=1e-12)
    x_before = x.copy()
    gradient_functional(circuit, obs, x)
    np.testing.assert_array_equal(x, x_before)  # the input is not modified


@pytest.mark.parametrize("wires", [(1,), (0, 2), (3, 1, 2), (0, 1, 2, 3)])
def test_small_and_large_array_paths_agree(wires, monkeypatch):
    """The in-place slice path (large arrays) and the vectorised path (small arrays) of the
    Heisenberg steps give the same coefficients for rotations and fixed gates."""
    from pennylane_shadowgrad.circuit import FixedGate, PauliRotation
    from pennylane_shadowgrad.estimators import dense

    rng = np.random.default_rng(len(wires))
    h = rng.normal(size=(3,) + (4,) * 5)
    digits = tuple(int(d) for d in rng.integers(1, 4, len(wires)))
    rotation = PauliRotation(wires, digits, 0.73)
    fixed = FixedGate(wires, unitary_group.rvs(2 ** len(wires), random_state=len(wires)))
    out = {}
    for name, small in (("vectorised", 10**9), ("slices", 0)):
        monkeypatch.setattr(dense, "_SMALL", small)
        out[name] = (
            dense.heisenberg_rotation(h.copy(), rotation),
            dense.heisenberg_fixed(h.copy(), fixed),
        )
    for a, b in zip(out["vectorised"], out["slices"]):
        assert np.allclose(a, b, atol=1e-12)
