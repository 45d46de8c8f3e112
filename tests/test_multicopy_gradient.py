"""The gentle_multicopy_grad transform against exact gradients, its report and its refusals."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pennylane as qml
import pytest

import pennylane_shadowgrad as sg
from pennylane_shadowgrad.circuit import UnsupportedCircuitError

EPS = 0.15


def _qnode(obs_fn, register="auto", engine="statistical", seed=7, **kw):
    dev = qml.device("default.qubit", wires=3)

    def f(x):
        qml.RY(x[0], 0)
        qml.RY(x[1], 1)
        qml.CNOT([0, 1])
        qml.RZ(x[2], 1)
        qml.IsingXX(x[3], [1, 2])
        qml.RX(x[4], 2)
        return qml.expval(obs_fn())

    kwargs = {"epsilon": EPS, "register": register, "engine": engine, "seed": seed, **kw}
    return (
        qml.QNode(f, dev, diff_method="gentle-multicopy", gradient_kwargs=kwargs),
        qml.QNode(f, dev, diff_method="backprop"),
    )


X = qml.numpy.array([0.4, 1.1, -0.7, 0.9, 0.3], requires_grad=True)


@pytest.mark.parametrize(
    "obs_fn,register,expected",
    [
        (lambda: qml.Z(0) @ qml.Z(2) + 0.5 * qml.X(1), "auto", "single-register"),
        (lambda: qml.Projector([0, 0, 0], wires=[0, 1, 2]), "two", "two-register"),
        # the two-register batch is 4x larger and spends an omega copy per copy: auto (fewest
        # copies) stays single
        (lambda: qml.Projector([0, 0, 0], wires=[0, 1, 2]), "auto", "single-register"),
        (lambda: qml.Projector([0, 0, 0], wires=[0, 1, 2]), "single", "single-register"),
    ],
)
def test_gradient_within_epsilon(obs_fn, register, expected):
    """Fixed seed; the guarantee is |error| <= epsilon with probability 1 - delta."""
    qnode, exact = _qnode(obs_fn, register)
    with sg.record() as rec:
        g = qml.grad(qnode)(X)
    assert np.max(np.abs(g - qml.grad(exact)(X))) <= EPS
    rep = rec[0].report
    assert rep["register"] == expected and rep["register_reason"]
    if register == "auto":
        assert "rank" in rep["register_reason"]
    assert rep["certified"] and rep["learner_updates"] <= rep["mistake_bound"]
    for key in (
        "executed",
        "copies",
        "gate_applications",
        "quantum_memory_qubits",
        "coherent_depth",
        "mid_circuit_measurements",
        "checks",
        "firings",
        "constants",
        "damage_bound",
        "failure_bound",
        "classical_seconds",
        "classical_memory_bytes",
        "parameter_shift",
    ):
        assert key in rep
    assert set(rep["copies"]) == {"batch", "fresh_estimate", "omega_preparation", "total"}
    assert any("do not size" in note for note in rep["notes"])


def test_shots_do_not_change_the_protocol():
    dev = qml.device("default.qubit")

    @qml.qnode(dev, diff_method="gentle-multicopy", gradient_kwargs={"seed": 1}, shots=100)
    def f(x):
        qml.RX(x, 0)
        return qml.expval(qml.Z(0))

    x = qml.numpy.array(0.5, requires_grad=True)
    with sg.record() as rec:
        g = qml.grad(f)(x)
    assert abs(g + np.sin(0.5)) <= 0.1
    assert any("(100)" in note for note in rec[0].notes)


def test_same_seed_same_gradient_whatever_ran_before():
    """Sizes depend only on their inputs (no warm start carried between calls)."""
    qnode, _ = _qnode(lambda: qml.Z(0) @ qml.Z(2) + 0.5 * qml.X(1), "single", seed=11)
    first = qml.grad(qnode)(X)
    other, _ = _qnode(lambda: qml.Projector([0, 0, 0], wires=[0, 1, 2]), "two", seed=5)
    qml.grad(other)(X * 0.5)
    assert np.array_equal(qml.grad(qnode)(X), first)


def test_uncertified_result_warns():
    qnode, _ = _qnode(lambda: qml.Z(0) @ qml.Z(2) + 0.5 * qml.X(1), "single", max_rounds=1)
    with sg.record() as rec, pytest.warns(UserWarning, match="no hypothesis was certified"):
        qml.grad(qnode)(X)
    assert not rec[0].report["certified"]


def test_wall_clock_cap_raises_a_clear_error():
    qnode, _ = _qnode(
        lambda: qml.Z(0) @ qml.Z(2) + 0.5 * qml.X(1), "single", batch_size=3, max_seconds=1e-9
    )
    with pytest.raises(RuntimeError, match=r"max_seconds=1e-09\) in round 1 of at most"):
        qml.grad(qnode)(X)
    with pytest.raises(ValueError, match="max_seconds must be a positive number"):
        qml.grad(_qnode(lambda: qml.Z(0), max_seconds=0)[0])(X)


def test_exact_engine_small_batch_runs():
    qnode, _ = _qnode(lambda: qml.Z(0), "single", "exact", batch_size=4, max_rounds=5)
    with sg.record() as rec, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # may end uncertified at 5 rounds
        qml.grad(qnode)(X)
    assert rec[0].report["engine"] == "exact"
    assert rec[0].report["engine_report"]["first_check_gap"] < 1e-9


def test_exact_engine_refuses_large_batches():
    qnode, _ = _qnode(lambda: qml.Z(0), "single", "exact")
    with pytest.raises(ValueError, match="far beyond exact simulation"):
        qml.grad(qnode)(X)


def test_refusals_before_device_time():
    dev = qml.device("default.qubit")

    @qml.qnode(dev, diff_method="gentle-multicopy")
    def probs(x):
        qml.RX(x, 0)
        return qml.probs(wires=0)

    x = qml.numpy.array(0.5, requires_grad=True)
    with qml.Tracker(dev) as tracker, pytest.raises(UnsupportedCircuitError, match="expval"):
        qml.jacobian(probs)(x)
    assert tracker.totals.get("executions", 0) <= 1  # at most the forward pass

    @qml.qnode(dev, diff_method="gentle-multicopy", gradient_kwargs={"shots": 10})
    def bad(x):
        qml.RX(x, 0)
        return qml.expval(qml.Z(0))

    with pytest.raises(TypeError, match="Unknown option"):
        qml.grad(bad)(x)


@pytest.mark.slow
def test_guarantee_binomial():
    """>= 200 seeded runs, both variants: the binomial test at 1% must not reject."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import multicopy_guarantee as g

    result = g.experiment(200)
    assert not result["rejected"], result


@pytest.mark.slow
def test_negative_control_on_the_single_check_worst_case():
    """On the boundary family (every derivative 1.02 epsilon from the prediction, orthogonal
    effects) the per-check sizes are tight: the one-level protocol with batches of 1/10 fails the
    binomial test at 1%, while the package defaults at the rigorous size pass it."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import multicopy_guarantee as g

    g.FAMILY = "boundary"
    try:
        control = g.experiment(1000, 10, schedule=(1,))
        rigorous = g.experiment(400)
    finally:
        g.FAMILY = "random"
    assert control["rejected"], control
    assert not rigorous["rejected"], rigorous
