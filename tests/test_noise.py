"""What the shadow gradient estimates on a noisy device (docs/math.md and docs/guide/noise.md).

The classical sweep carries the generators through the IDEAL gates, so on a noisy device the
shadow gradient is an unbiased estimate of ``Tr(rho_noisy G_j^ideal)``, neither the noisy
cost's gradient nor the ideal one. Here that estimand is computed exactly (the sweep applied to
the exact Pauli coefficients of the noisy output state) and compared with the exact gradient
of the noisy cost (backprop on ``default.mixed``). Run with ``-s`` to see the figures.
"""

import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp
from pennylane.tape import QuantumScript
from pennylane.wires import Wires

import pennylane_shadowgrad  # noqa: F401  (registers diff_method="shadow")
from pennylane_shadowgrad.circuit import (
    UnsupportedCircuitError,
    decompose_to_rotations,
    pauli_coefficients_of_matrix,
    pauli_sum,
    rotation_form,
)
from pennylane_shadowgrad.estimators.dense import gradient_functional

N = 3
LAYERS = 4  # 2 rotations per qubit per layer: M = 24 parameters
OBSERVABLE = qml.Z(0) @ qml.Z(1) + 0.5 * qml.X(2)
PARAMS = np.random.default_rng(2024).uniform(-np.pi, np.pi, size=2 * N * LAYERS)


def gates(x):
    """The ideal circuit: RX, RY on every qubit, then a CNOT ring, per layer (not queued)."""
    ops = []
    with qml.QueuingManager.stop_recording():
        for layer in range(LAYERS):
            for q in range(N):
                ops.append(qml.RX(x[2 * (N * layer + q)], wires=q))
                ops.append(qml.RY(x[2 * (N * layer + q) + 1], wires=q))
            ops += [qml.CNOT(wires=[q, (q + 1) % N]) for q in range(N)]
    return ops


def ideal(x):
    for op in gates(x):
        qml.apply(op)
    return qml.expval(OBSERVABLE)


def noisy(x, p):
    """Apply the circuit with a depolarising channel of strength ``p`` after every gate."""
    for op in gates(x):
        qml.apply(op)
        for w in op.wires:
            qml.DepolarizingChannel(p, wires=w)


def exact_comparison(p):
    """(estimand, noisy gradient, ideal gradient) for depolarising strength ``p``."""
    dev = qml.device("default.mixed", wires=N)

    @qml.qnode(dev, diff_method="backprop")
    def cost(x):
        noisy(x, p)
        return qml.expval(OBSERVABLE)

    @qml.qnode(dev)
    def state(x):
        noisy(x, p)
        return qml.density_matrix(wires=range(N))

    x = pnp.array(PARAMS, requires_grad=True)
    noisy_grad = qml.grad(cost)(x)
    rho = np.asarray(state(PARAMS))

    ideal_tape = QuantumScript(gates(PARAMS), [qml.expval(OBSERVABLE)])
    ideal_tape.trainable_params = list(range(len(PARAMS)))
    circuit = rotation_form(decompose_to_rotations(ideal_tape))
    assert circuit.wire_order == Wires(range(N)) and circuit.num_params == 24
    x_noisy = pauli_coefficients_of_matrix(rho).real[None]
    estimand = gradient_functional(circuit, pauli_sum(OBSERVABLE, circuit.wire_order), x_noisy)[0]

    ideal_qnode = qml.QNode(ideal, qml.device("default.qubit"), diff_method="backprop")
    ideal_grad = qml.grad(ideal_qnode)(x)
    return estimand, np.asarray(noisy_grad), np.asarray(ideal_grad)


def test_estimand_is_exact_without_noise():
    """With p = 0 the same computation reproduces the gradient: the comparison below is fair."""
    estimand, noisy_grad, ideal_grad = exact_comparison(0.0)
    np.testing.assert_allclose(noisy_grad, ideal_grad, atol=1e-10)
    np.testing.assert_allclose(estimand, noisy_grad, atol=1e-10)
    assert np.linalg.norm(noisy_grad) > 0.5


def test_noisy_estimand_differs_from_noisy_gradient():
    """1% depolarising after every gate, n=3, M=24: measure the estimand's relative error."""
    estimand, noisy_grad, ideal_grad = exact_comparison(0.01)
    rel_noisy = np.linalg.norm(estimand - noisy_grad) / np.linalg.norm(noisy_grad)
    rel_ideal = np.linalg.norm(estimand - ideal_grad) / np.linalg.norm(ideal_grad)
    worst = np.max(np.abs(estimand - noisy_grad)) / np.max(np.abs(noisy_grad))
    print(
        f"\n[noise] p=0.01 depolarising after every gate, n={N}, M={len(PARAMS)}: shadow "
        f"estimand vs noisy gradient: relative error {rel_noisy:.1%} (2-norm), worst component "
        f"{worst:.1%} of the largest; vs ideal gradient: {rel_ideal:.1%}"
    )
    # far above round-off (1e-10 above): the estimand is a different quantity
    assert rel_noisy > 1e-3
    assert rel_ideal > 1e-3
    # and it is not the noisy gradient up to a global factor either
    scale = estimand @ noisy_grad / (noisy_grad @ noisy_grad)
    assert np.linalg.norm(estimand - scale * noisy_grad) / np.linalg.norm(estimand) > 1e-3


@pytest.mark.parametrize(
    "channel",
    [
        lambda: qml.DepolarizingChannel(0.01, wires=0),
        lambda: qml.AmplitudeDamping(0.05, wires=1),
        lambda: qml.BitFlip(0.1, wires=0),
    ],
    ids=["depolarizing", "amplitude-damping", "bit-flip"],
)
def test_noise_channels_are_refused_before_execution(channel):
    dev = qml.device("default.mixed", wires=2, seed=3)

    @qml.qnode(dev, diff_method="shadow", shots=300)
    def circuit(x):
        qml.RX(x[0], wires=0)
        channel()
        qml.RY(x[1], wires=1)
        qml.CNOT(wires=[0, 1])
        return qml.expval(qml.Z(1))

    with qml.QueuingManager.stop_recording():
        name = channel().name
    x = pnp.array([0.3, 0.4], requires_grad=True)
    with qml.Tracker(dev) as tracker, pytest.raises(UnsupportedCircuitError) as info:
        qml.grad(circuit)(x)
    message = str(info.value)
    assert name in message and "noise channels" in message and "parameter-shift" in message
    assert tracker.totals.get("executions", 0) == 0
