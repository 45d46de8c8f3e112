"""``diff_method="shadow"`` in every interface: Jacobians, shapes, dtypes, shot vectors, seeds."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest

import pennylane_shadowgrad

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

X0 = np.array([0.3, 0.7])
# d<Z1>/dx for RX(x0) on 0, RY(x1) on 1, CNOT: <Z1> = cos(x0) cos(x1)
EXACT = np.array([-np.sin(0.3) * np.cos(0.7), -np.cos(0.3) * np.sin(0.7)])
# Per-component standard deviation of the complete-plan estimate is below 3/sqrt(T); a 7-sigma
# Chebyshev-free margin on a bounded estimator (Hoeffding, range 2*9/T per snapshot) suffices.
SHOTS = 18000
TOL = 7 * 3 / np.sqrt(SHOTS)


def circuit(x):
    qml.RX(x[0], wires=0)
    qml.RY(x[1], wires=1)
    qml.CNOT(wires=[0, 1])
    return qml.expval(qml.Z(1))


def two_outputs(x):
    qml.RX(x[0], wires=0)
    qml.RY(x[1], wires=1)
    qml.CNOT(wires=[0, 1])
    return qml.expval(qml.Z(1)), qml.probs(wires=[0])


def _qnode(fn, interface, shots=SHOTS, seed=42, device="default.qubit", **kwargs):
    """The plain shadow estimator (``strategy="pure"``); the hybrid has its own tests."""
    kwargs.setdefault("gradient_kwargs", {})
    kwargs["gradient_kwargs"].setdefault("strategy", "pure")
    dev = qml.device(device, wires=2, seed=seed)
    return qml.QNode(fn, dev, diff_method="shadow", interface=interface, shots=shots, **kwargs)


def test_autograd_grad_and_jacobian():
    x = qml.numpy.array(X0, requires_grad=True)
    g = qml.grad(_qnode(circuit, "autograd"))(x)
    assert np.allclose(g, EXACT, atol=TOL)
    jac = qml.jacobian(lambda v: qml.math.hstack(_qnode(two_outputs, "autograd")(v)))(x)
    assert jac.shape == (3, 2)
    assert np.allclose(jac[0], EXACT, atol=TOL)
    assert np.allclose(jac[1] + jac[2], 0, atol=1e-12)  # probabilities sum to one


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_backward_and_functional_jacobian(dtype):
    dt = getattr(torch, dtype)
    x = torch.tensor(X0, dtype=dt, requires_grad=True)
    _qnode(circuit, "torch")(x).backward()
    assert x.grad.dtype == dt
    assert np.allclose(x.grad.numpy(), EXACT, atol=TOL)
    jac = torch.autograd.functional.jacobian(_qnode(two_outputs, "torch"), torch.tensor(X0))
    assert isinstance(jac, tuple) and jac[0].shape == (2,) and jac[1].shape == (2, 2)
    assert np.allclose(jac[0].numpy(), EXACT, atol=TOL)


@pytest.mark.parametrize("jit", [False, True])
def test_jax_grad_and_jacobian(jit):
    wrap = jax.jit if jit else (lambda f: f)
    g = wrap(jax.grad(_qnode(circuit, "jax")))(jnp.array(X0))
    assert g.dtype == jnp.float64
    assert np.allclose(g, EXACT, atol=TOL)
    jac = wrap(jax.jacobian(_qnode(two_outputs, "jax")))(jnp.array(X0))
    assert jac[0].shape == (2,) and jac[1].shape == (2, 2)
    assert np.allclose(jac[0], EXACT, atol=TOL)


def test_torch_layer_trains():
    """A TorchLayer after a classical layer: trainable broadcasting, trained by torch."""
    torch.manual_seed(0)
    dev = qml.device("default.qubit", wires=2, seed=3)

    @qml.qnode(
        dev,
        diff_method="shadow",
        interface="torch",
        shots=900,
        gradient_kwargs={"strategy": "pure"},
    )
    def layer(inputs, weights):
        qml.AngleEmbedding(inputs, wires=[0, 1])
        qml.RY(weights[0], wires=0)
        qml.RY(weights[1], wires=1)
        qml.CNOT(wires=[0, 1])
        return qml.probs(wires=[0, 1])

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 2), qml.qnn.TorchLayer(layer, {"weights": 2}), torch.nn.Linear(4, 1)
    )
    data = torch.randn(8, 3)
    target = (data[:, :1] > 0).double() * 2 - 1
    model = model.double()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.mean((model(data.double()) - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert model[0].weight.grad.dtype == torch.float64
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def _shot_vector_reference(fn_name):
    """One gradient per shot-vector entry, shaped as parameter-shift shapes it."""
    dev = qml.device("default.qubit", wires=2, seed=1)
    q = qml.QNode(circuit, dev, diff_method="parameter-shift", shots=[3000, 6000])
    return qml.gradients.param_shift(q)(qml.numpy.array(X0))


@pytest.mark.parametrize("interface", ["autograd", "torch", "jax", "jax-jit"])
def test_shot_vectors(interface):
    shots = [9000, 18000, 18000]
    if interface == "jax-jit":
        # PennyLane 0.45 under jax.jit mis-shapes shot vectors whose length differs from the
        # number of parameters (parameter-shift fails the same way)
        shots = [9000, 18000]
    if interface == "autograd":
        q = _qnode(circuit, "autograd", shots=shots)
        jac = qml.jacobian(lambda v: qml.math.stack(q(v)))(qml.numpy.array(X0))
    elif interface == "torch":
        q = _qnode(circuit, "torch", shots=shots)
        jac = torch.stack(torch.autograd.functional.jacobian(q, torch.tensor(X0))).numpy()
    else:
        q = _qnode(circuit, "jax", shots=shots)
        fn = jax.jacobian(q)
        fn = jax.jit(fn) if interface == "jax-jit" else fn
        jac = np.stack(fn(jnp.array(X0)))
    assert jac.shape == (len(shots), 2)
    for row, t in zip(jac, shots):
        assert np.allclose(row, EXACT, atol=7 * 3 / np.sqrt(t))
    assert not np.allclose(jac[0], jac[1])  # independent snapshot sets per entry
    # the transform applied directly returns what parameter-shift returns: one per entry
    dev = qml.device("default.qubit", wires=2, seed=2)
    direct = pennylane_shadowgrad.shadow_grad(
        qml.set_shots(qml.QNode(circuit, dev), shots), strategy="pure"
    )(qml.numpy.array(X0))
    reference = qml.gradients.param_shift(qml.set_shots(qml.QNode(circuit, dev), shots))(
        qml.numpy.array(X0)
    )
    assert isinstance(direct, tuple) and len(direct) == len(reference) == len(shots)
    assert all(np.shape(d) == np.shape(r) for d, r in zip(direct, reference))


def test_set_shots_sets_the_budget():
    q = qml.set_shots(_qnode(circuit, "autograd", shots=None), 2700)
    with pennylane_shadowgrad.record() as rec:
        qml.grad(q)(qml.numpy.array(X0))
    assert rec[0].snapshots == 2700


@pytest.mark.parametrize("interface", ["autograd", "torch", "jax", "jax-jit"])
def test_seed_makes_runs_identical(interface):
    def run():
        q = _qnode(
            circuit,
            interface.replace("-jit", ""),
            shots=900,
            seed=7,
            gradient_kwargs={"seed": 5, "bases": 20},
        )
        if interface == "autograd":
            return np.asarray(qml.grad(q)(qml.numpy.array(X0)))
        if interface == "torch":
            x = torch.tensor(X0, requires_grad=True)
            q(x).backward()
            return x.grad.numpy()
        fn = jax.grad(q)
        fn = jax.jit(fn) if interface == "jax-jit" else fn
        return np.asarray(fn(jnp.array(X0)))

    first, second = run(), run()
    assert np.array_equal(first, second)


def test_seed_fixes_bases_only():
    """Same method seed, unseeded device: same bases, different outcomes."""
    tape = qml.tape.QuantumScript(
        [qml.RX(qml.numpy.array(0.3), 0), qml.CNOT([0, 1])], [qml.expval(qml.Z(1))], shots=500
    )
    t1, _ = pennylane_shadowgrad.shadow_grad(tape, seed=3, bases=10, strategy="pure")
    t2, _ = pennylane_shadowgrad.shadow_grad(tape, seed=3, bases=10, strategy="pure")
    t3, _ = pennylane_shadowgrad.shadow_grad(tape, seed=4, bases=10, strategy="pure")
    params = [
        np.concatenate([np.ravel(p) for p in t.get_parameters(False)])
        for t in (t1[0], t2[0], t3[0])
    ]
    assert np.array_equal(params[0], params[1])
    assert not np.array_equal(params[0], params[2])
