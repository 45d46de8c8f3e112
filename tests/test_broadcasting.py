"""Trainable broadcasting: every batch element gets its own snapshot budget, in every interface."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest

import pennylane_shadowgrad
from pennylane_shadowgrad import shadow_grad

X = np.array([[0.3, 0.7], [1.1, -0.4], [0.5, 0.2]])
W = 0.4
C1, C2 = np.array([1.0, 2.0, 3.0]), np.array([2.0, -1.0, 0.5])
SHOTS = 45000
KW = {"strategy": "pure", "bases": "all"}
# each component is a sum of three bounded per-element estimates; 7 standard deviations
TOL = 7 * np.sqrt(3) * 4 * 3 / np.sqrt(SHOTS)


def circuit(x, w):
    qml.RX(x[..., 0], wires=0)
    qml.RY(x[..., 1], wires=1)
    qml.CNOT(wires=[0, 1])
    qml.RY(w, wires=0)
    return qml.expval(qml.Z(1)), qml.probs(wires=[0])


def _exact():
    q = qml.QNode(circuit, qml.device("default.qubit"), diff_method="backprop")

    def loss(x, w):
        e, p = q(x, w)
        return qml.math.sum(e * C1) + qml.math.sum(p[:, 0] * C2)

    return qml.grad(loss)(qml.numpy.array(X), qml.numpy.array(W))


def _qnode(interface):
    dev = qml.device("default.qubit", wires=2, seed=9)
    return qml.QNode(
        circuit, dev, diff_method="shadow", interface=interface, shots=SHOTS, gradient_kwargs=KW
    )


@pytest.mark.parametrize("interface", ["autograd", "torch", "jax", "jax-jit"])
def test_trainable_broadcast_matches_backprop(interface):
    gx_exact, gw_exact = _exact()
    if interface == "autograd":
        q = _qnode("autograd")

        def loss(x, w):
            e, p = q(x, w)
            return qml.math.sum(e * C1) + qml.math.sum(p[:, 0] * C2)

        gx, gw = qml.grad(loss)(qml.numpy.array(X), qml.numpy.array(W))
    elif interface == "torch":
        torch = pytest.importorskip("torch")
        x, w = torch.tensor(X, requires_grad=True), torch.tensor(W, requires_grad=True)
        e, p = _qnode("torch")(x, w)
        ((e * torch.tensor(C1)).sum() + (p[:, 0] * torch.tensor(C2)).sum()).backward()
        gx, gw = x.grad.numpy(), w.grad.numpy()
    else:
        jax = pytest.importorskip("jax")
        jax.config.update("jax_enable_x64", True)
        q = _qnode("jax")

        def loss(x, w):
            e, p = q(x, w)
            return (e * C1).sum() + (p[:, 0] * C2).sum()

        fn = jax.grad(loss, argnums=(0, 1))
        fn = jax.jit(fn) if interface == "jax-jit" else fn
        gx, gw = fn(jax.numpy.array(X), jax.numpy.array(W))
    assert np.shape(gx) == X.shape
    assert np.allclose(gx, gx_exact, atol=TOL)
    assert np.allclose(gw, gw_exact, atol=TOL)


def test_each_element_gets_its_own_budget():
    q = _qnode("autograd")
    with pennylane_shadowgrad.record() as rec:
        qml.jacobian(lambda x: q(x, W)[0])(qml.numpy.array(X))
    assert len(rec) == len(X)
    assert all(r.snapshots == SHOTS for r in rec)


def test_jacobian_matches_backprop_layout():
    """The full Jacobian of a broadcast QNode is block-diagonal, as backprop gives it."""
    q = _qnode("autograd")
    jac = qml.jacobian(lambda x: q(x, W)[0])(qml.numpy.array(X))
    ref = qml.jacobian(lambda x: qml.QNode(circuit, qml.device("default.qubit"))(x, W)[0])(
        qml.numpy.array(X)
    )
    assert jac.shape == ref.shape == (3, 3, 2)
    off = ~np.eye(3, dtype=bool)
    assert np.all(jac[off] == 0)
    assert np.allclose(jac, ref, atol=TOL)


def test_transform_on_broadcast_tape_has_batch_first():
    """Applied to a tape, entries have the batch dimension first, as param_shift gives them."""
    tape = qml.tape.QuantumScript(
        [qml.RX(np.array([0.1, 0.2, 0.3]), 0), qml.RY(0.4, 0), qml.CNOT([0, 1])],
        [qml.expval(qml.Z(1)), qml.probs(wires=[0, 1])],
        shots=9000,
    )
    tape.trainable_params = [0, 1]
    tapes, fn = shadow_grad(tape, **KW)
    jac = fn(qml.execute(tapes, qml.device("default.qubit", seed=1)))
    assert [[np.shape(j) for j in m] for m in jac] == [[(3,), (3,)], [(3, 4), (3, 4)]]
