"""Devices: lightning.qubit, lightning.gpu (when installed), qiskit.aer as a sampling backend;
PennyLane tooling (Tracker, construct_batch, specs, QNode.update, max_workers)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pennylane as qml
import pytest

import pennylane_shadowgrad
from pennylane_shadowgrad import shadow_grad

X0 = qml.numpy.array([0.3, 0.7], requires_grad=True)
EXACT = np.array([-np.sin(0.3) * np.cos(0.7), -np.cos(0.3) * np.sin(0.7)])
KW = {"strategy": "pure"}


def circuit(x):
    qml.RX(x[0], wires=0)
    qml.RY(x[1], wires=1)
    qml.CNOT(wires=[0, 1])
    return qml.expval(qml.Z(1))


def _lightning_gpu_available() -> bool:
    if importlib.util.find_spec("pennylane_lightning.lightning_gpu_ops") is None:
        return False
    try:
        qml.device("lightning.gpu", wires=1)
    except Exception:  # no GPU or no CUDA runtime
        return False
    return True


@pytest.mark.parametrize(
    "name",
    [
        "lightning.qubit",
        pytest.param(
            "lightning.gpu",
            marks=pytest.mark.skipif(
                not _lightning_gpu_available(), reason="lightning.gpu is not available"
            ),
        ),
    ],
)
def test_lightning(name):
    dev = qml.device(name, wires=2, seed=3)
    q = qml.QNode(circuit, dev, diff_method="shadow", shots=18000, gradient_kwargs=KW)
    assert np.allclose(qml.grad(q)(X0), EXACT, atol=7 * 3 / np.sqrt(18000))


def test_qiskit_aer_gradient_comes_from_returned_samples():
    pytest.importorskip("pennylane_qiskit")
    dev = qml.device("qiskit.aer", wires=2, seed=5)
    tape = qml.workflow.construct_tape(qml.QNode(circuit, dev))(X0).copy(shots=9000)
    tapes, fn = shadow_grad(tape, **KW)
    results = qml.execute(tapes, dev)  # the device's own preprocessing, as in a QNode
    for t, r in zip(tapes, results):
        r = np.asarray(r)
        assert set(np.unique(r)) <= {0, 1}  # raw computational-basis samples
        assert r.size == (t.batch_size or 1) * t.shots.total_shots * 2
    grad = fn(results)
    assert np.allclose(grad, EXACT, atol=7 * 3 / np.sqrt(9000))
    # the estimate is a function of those samples alone: all-zero samples give a known answer
    zeros = [np.zeros_like(np.asarray(r)) for r in results]
    assert not np.allclose(fn(zeros), grad)
    assert np.array_equal(fn(results), grad)


def test_qiskit_aer_qnode():
    pytest.importorskip("pennylane_qiskit")
    dev = qml.device("qiskit.aer", wires=2, seed=5)
    q = qml.QNode(circuit, dev, diff_method="shadow", shots=9000, gradient_kwargs=KW)
    with qml.Tracker(dev) as tracker:
        grad = qml.grad(q)(X0)
    assert np.allclose(grad, EXACT, atol=7 * 3 / np.sqrt(9000))
    assert tracker.totals["shots"] == 2 * 9000  # forward pass + snapshots


def test_tracker_sees_snapshot_circuits_and_shots():
    dev = qml.device("default.qubit", wires=2, seed=1)
    q = qml.QNode(circuit, dev, diff_method="shadow", shots=900, gradient_kwargs=KW)
    with qml.Tracker(dev) as tracker:
        qml.grad(q)(X0)
    # forward (1 circuit, 900 shots) + all 9 local bases (one broadcast tape, 900 shots)
    assert tracker.totals["executions"] == 1 + 9
    assert tracker.totals["shots"] == 2 * 900
    assert tracker.history["shots"] == [900, 900]


def test_construct_batch_and_specs_show_snapshot_tapes():
    dev = qml.device("lightning.qubit", wires=2)
    q = qml.set_shots(qml.QNode(circuit, dev, diff_method=None), 900)
    grad_qnode = shadow_grad(q, **KW)
    tapes = qml.workflow.construct_batch(grad_qnode, level="device")(X0)[0]
    assert len(tapes) == 9  # lightning.qubit splits the broadcast tape per basis
    assert all(isinstance(t.measurements[0], qml.measurements.SampleMP) for t in tapes)
    assert sum(t.shots.total_shots for t in tapes) == 900
    specs = qml.specs(grad_qnode, level="gradient")(X0)
    assert "sample" in str(specs)


def test_update_switches_diff_method():
    """Switching back and forth. QNode.update merges gradient_kwargs, so a QNode built with
    shadow-only options must drop them (QNode.update cannot) before switching to a built-in."""
    dev = qml.device("default.qubit", wires=2, seed=1)
    q = qml.QNode(circuit, dev, diff_method="shadow", shots=900)
    for method in ["parameter-shift", "shadow", "spsa", "finite-diff", "shadow"]:
        new = q.update(diff_method=method)
        assert new.diff_method == method
        assert np.shape(qml.grad(new)(X0)) == (2,)
    with qml.Tracker(dev) as tracker:
        qml.grad(q.update(diff_method="parameter-shift"))(X0)
    assert tracker.totals["executions"] == 1 + 4  # two shifts per parameter


def test_max_workers_matches_serial():
    kwargs = {"diff_method": "shadow", "shots": 9000, "gradient_kwargs": {**KW, "seed": 2}}
    parallel = qml.device("default.qubit", wires=2, max_workers=2, seed=4)
    serial = qml.device("default.qubit", wires=2, seed=4)
    gp = qml.grad(qml.QNode(circuit, parallel, **kwargs))(X0)
    gs = qml.grad(qml.QNode(circuit, serial, **kwargs))(X0)
    tol = 7 * 3 / np.sqrt(9000)
    assert np.allclose(gp, EXACT, atol=tol) and np.allclose(gs, EXACT, atol=tol)
    gp2 = qml.grad(
        qml.QNode(circuit, qml.device("default.qubit", wires=2, max_workers=2, seed=4), **kwargs)
    )(X0)
    assert np.array_equal(gp, gp2)  # seeded device, same executor: identical


def test_record_reports_plan():
    dev = qml.device("default.qubit", wires=2, seed=1)
    q = qml.QNode(circuit, dev, diff_method="shadow", shots=900, gradient_kwargs=KW)
    with pennylane_shadowgrad.record() as rec:
        qml.grad(q)(X0)
    assert rec[0].circuits == 9 and rec[0].snapshots == 900
