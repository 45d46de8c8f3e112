"""The interface x device x return x wires matrix for ``diff_method="shadow"``.

Every cell differentiates a scalar loss ``sum_m <c_m, f_m(x)>`` of the QNode's outputs through
the interface's own machinery and compares it with the exact gradient (backprop). The bound is
rigorous: the estimator's exact variance and range (tests/_exact.py) in Bernstein's inequality,
at a per-component failure probability that keeps the whole matrix's family-wise false-failure
rate below 1e-4. Variance gradients are not linear in the outcomes; their spread comes from
simulated snapshot sets instead (see ``_spread``).
"""

from __future__ import annotations

import importlib.util
from functools import cache

import numpy as np
import pennylane as qml
import pytest
from _exact import ExactShadowMoments, simulated_std

import pennylane_shadowgrad  # noqa: F401  (registers diff_method="shadow")

INTERFACES = ["autograd", "torch", "jax", "jax-jit"]
DEVICES = ["default.qubit", "lightning.qubit", "qiskit.aer"]
RETURNS = ["expval", "hermitian", "projector", "probs", "var", "two"]
WIRES = [2, 3]
SHOTS_PER_BASIS = 600
#: Family-wise false-failure target of the whole matrix, split over every checked component.
FAMILY_DELTA = 1e-4
_MAX_COMPONENTS = len(INTERFACES) * len(DEVICES) * len(RETURNS) * (4 * 3 + 1)
DELTA = FAMILY_DELTA / _MAX_COMPONENTS
#: Simulated replicates and safety factor for the variance-gradient spread.
VAR_REPS, VAR_Z = 300, 8.0

_HERM = np.array(
    [[1.0, 0.3, 0.0, -0.2j], [0.3, -0.5, 0.4, 0.0], [0.0, 0.4, 0.2, 0.1], [0.2j, 0.0, 0.1, 0.7]]
)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _num_params(n: int) -> int:
    return 2 * n + 1


def _circuit(n: int, ret: str):
    def circuit(x):
        k = 0
        for w in range(n):
            qml.RX(x[k], wires=w)
            qml.RY(x[k + 1], wires=w)
            k += 2
        for w in range(n - 1):
            qml.CNOT(wires=[w, w + 1])
        qml.IsingZZ(x[k], wires=[0, n - 1])
        if ret == "expval":
            return qml.expval(qml.Z(0) @ qml.X(n - 1))
        if ret == "hermitian":
            return qml.expval(qml.Hermitian(_HERM, wires=[0, 1]))
        if ret == "projector":
            return qml.expval(qml.Projector([0, 1], wires=[0, n - 1]))
        if ret == "probs":
            return qml.probs(wires=[0, 1])
        if ret == "var":
            return qml.var(qml.Z(0) @ qml.X(n - 1))
        return qml.expval(qml.X(0)), qml.probs(wires=[n - 1])

    return circuit


def _coeffs(ret: str) -> list:
    rng = np.random.default_rng(len(ret))
    if ret == "probs":
        return [rng.normal(size=4)]
    if ret == "two":
        return [rng.normal(), rng.normal(size=2)]
    return [rng.normal()]


def _x(n: int) -> np.ndarray:
    return np.linspace(0.2, 1.4, _num_params(n)) * np.array([1, -1] * n + [1])


@cache
def _reference(n: int, ret: str):
    """Exact gradient of the loss, the deviation bound, and the tape-level exact mean."""
    qnode = qml.QNode(_circuit(n, ret), qml.device("default.qubit"), diff_method="backprop")
    coeffs = _coeffs(ret)

    def loss(x):
        out = qnode(x)
        out = out if isinstance(out, tuple) else (out,)
        return sum(qml.math.sum(c * o) for c, o in zip(coeffs, out))

    exact = qml.grad(loss)(qml.numpy.array(_x(n), requires_grad=True))
    tape = qml.workflow.construct_tape(qnode)(qml.numpy.array(_x(n), requires_grad=True))
    if ret == "var":
        spread = simulated_std(tape, coeffs, SHOTS_PER_BASIS, VAR_REPS)
        return np.asarray(exact), VAR_Z * spread, None
    moments = ExactShadowMoments(tape, coeffs, SHOTS_PER_BASIS)
    return np.asarray(exact), moments.bound(DELTA), moments.mean


def _device(name: str, n: int):
    if name == "qiskit.aer" and not _has("pennylane_qiskit"):
        pytest.skip("pennylane-qiskit is not installed")
    return qml.device(name, wires=n, seed=1234)


def _gradient(interface: str, qnode, coeffs, x):
    def reduce(out, lib):
        out = out if isinstance(out, tuple) else (out,)
        return sum(lib.sum(lib.asarray(c) * o) for c, o in zip(coeffs, out))

    if interface == "autograd":
        return np.asarray(qml.grad(lambda v: reduce(qnode(v), qml.math))(qml.numpy.array(x)))
    if interface == "torch":
        torch = pytest.importorskip("torch")
        xt = torch.tensor(x, requires_grad=True)
        out = qnode(xt)
        out = out if isinstance(out, tuple) else (out,)
        loss = sum((torch.as_tensor(c, dtype=o.dtype) * o).sum() for c, o in zip(coeffs, out))
        loss.backward()
        assert xt.grad.dtype == torch.float64
        return xt.grad.numpy()
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    fn = jax.grad(lambda v: reduce(qnode(v), jnp))
    if interface == "jax-jit":
        fn = jax.jit(fn)
    g = fn(jnp.array(x))
    assert g.dtype == jnp.float64
    return np.asarray(g)


def _cells(full: bool):
    for iface in INTERFACES:
        for dev in DEVICES:
            for ret in RETURNS:
                for n in WIRES:
                    default = (dev == "default.qubit" and (n == 2 or iface == "autograd")) or (
                        n == 2 and ret in ("expval", "two") and iface in ("torch", "jax-jit")
                    )
                    marks = [] if default else [pytest.mark.slow]
                    if full or default:
                        yield pytest.param(
                            iface, dev, ret, n, marks=marks, id=f"{iface}-{dev}-{ret}-{n}"
                        )


@pytest.mark.parametrize("interface, device, ret, n", list(_cells(full=True)))
def test_matrix_cell(interface, device, ret, n):
    if interface.startswith("jax"):
        jax = pytest.importorskip("jax")
        jax.config.update("jax_enable_x64", True)
    exact, bound, exact_mean = _reference(n, ret)
    if exact_mean is not None:
        # The estimator is unbiased: its exact mean is the exact gradient.
        np.testing.assert_allclose(exact_mean, exact, atol=1e-9)
    dev = _device(device, n)
    qnode = qml.QNode(
        _circuit(n, ret),
        dev,
        diff_method="shadow",
        interface=interface.replace("-jit", ""),
        shots=3**n * SHOTS_PER_BASIS,
        gradient_kwargs={"bases": "all", "strategy": "pure"},
    )
    grad = _gradient(interface, qnode, _coeffs(ret), _x(n))
    assert grad.shape == exact.shape
    assert np.all(np.abs(grad - exact) <= bound + 1e-9), (grad, exact, bound)
