"""The user-facing contract of ``diff_method="shadow"``: refusals, shapes, entry points, records."""

import warnings

import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp
from pennylane.tape import QuantumScript

import pennylane_shadowgrad as sg
from pennylane_shadowgrad.circuit import UnsupportedCircuitError

X = pnp.array([0.3, 0.7], requires_grad=True)


def _base(x):
    qml.RX(x[0], wires=0)
    qml.RY(x[1], wires=1)
    qml.CNOT(wires=[0, 1])


def _expval(x):
    _base(x)
    return qml.expval(qml.Z(1))


# ---------------------------------------------------------------------------------------------
# Refusals: a specific message, and not a single circuit run before it
# ---------------------------------------------------------------------------------------------


def _mcm(x):
    _base(x)
    m = qml.measure(0)
    qml.cond(m, qml.RX)(x[0], wires=1)
    return qml.expval(qml.Z(1))


def _noise(x):
    _base(x)
    qml.DepolarizingChannel(0.1, wires=0)
    return qml.expval(qml.Z(1))


def _returning(kind):
    def f(x):
        _base(x)
        return {
            "state": lambda: qml.state(),
            "density_matrix": lambda: qml.density_matrix(wires=[0]),
            "vn_entropy": lambda: qml.vn_entropy(wires=[0]),
            "sample": lambda: qml.sample(qml.Z(0)),
            "counts": lambda: qml.counts(qml.Z(0)),
            "probs_of_op": lambda: qml.probs(op=qml.X(0)),
        }[kind]()

    return f


def _three_qubits(x):
    _base(x)
    qml.Hadamard(wires=2)
    return qml.expval(qml.Z(1))


REFUSALS = {
    "shots-none": (_expval, {"shots": None}, X, ValueError, "shots=None"),
    "mid-circuit-measurement": (
        _mcm,
        {},
        X,
        UnsupportedCircuitError,
        "mid-circuit measurements",
    ),
    "mcm-deferred": (
        _mcm,
        {"mcm_method": "deferred"},
        X,
        UnsupportedCircuitError,
        "mid-circuit measurements",
    ),
    "mcm-one-shot": (
        _mcm,
        {"mcm_method": "one-shot"},
        X,
        UnsupportedCircuitError,
        "mid-circuit measurements",
    ),
    "noise-channel": (_noise, {"mixed": True}, X, UnsupportedCircuitError, "DepolarizingChannel"),
    "state": (_returning("state"), {}, X, UnsupportedCircuitError, "got StateMP"),
    "density-matrix": (
        _returning("density_matrix"),
        {},
        X,
        UnsupportedCircuitError,
        "got DensityMatrixMP",
    ),
    "vn-entropy": (_returning("vn_entropy"), {}, X, UnsupportedCircuitError, "got VnEntropyMP"),
    "sample": (_returning("sample"), {}, X, UnsupportedCircuitError, "got SampleMP"),
    "counts": (_returning("counts"), {}, X, UnsupportedCircuitError, "got CountsMP"),
    "probs-of-op": (_returning("probs_of_op"), {}, X, UnsupportedCircuitError, r"probs\(op="),
    "too-many-qubits": (
        _three_qubits,
        {"gradient_kwargs": {"max_qubits": 2, "engine": "dense"}},
        X,
        ValueError,
        "acts on 3 qubits.*max_qubits=2",
    ),
    "nan-parameter": (
        _expval,
        {},
        pnp.array([np.nan, 0.7], requires_grad=True),
        ValueError,
        "Non-finite",
    ),
    "inf-parameter": (
        _expval,
        {},
        pnp.array([0.3, np.inf], requires_grad=True),
        ValueError,
        "Non-finite",
    ),
    "unknown-gradient-kwarg": (
        _expval,
        {"gradient_kwargs": {"snapshotz": 100}},
        X,
        TypeError,
        r"Unknown option\(s\) \['snapshotz'\]",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_bad_input_refused_before_any_execution(name):
    func, options, x, error, match = REFUSALS[name]
    options = dict(options)
    mixed = options.pop("mixed", False)
    dev = qml.device("default.mixed" if mixed else "default.qubit", wires=3, seed=1)
    shots = options.pop("shots", 300)
    qnode = qml.QNode(func, dev, diff_method="shadow", shots=shots, **options)
    with qml.Tracker(dev) as tracker, pytest.raises(error, match=match):
        qml.jacobian(qnode)(x)
    assert tracker.totals.get("executions", 0) == 0


def test_shots_none_with_snapshots_option_is_accepted():
    dev = qml.device("default.qubit", seed=2)
    qnode = qml.QNode(
        _expval,
        dev,
        diff_method="shadow",
        gradient_kwargs={"snapshots": 900, "strategy": "pure"},
    )
    with sg.record() as rec:
        jac = qml.jacobian(qnode)(X)
    assert jac.shape == (2,)
    assert rec[0].snapshots == 900 and rec[0].circuits == 9


@pytest.mark.parametrize("strategy", [None, "pure"])
def test_second_derivatives_refused(strategy):
    dev = qml.device("default.qubit", seed=3)
    kwargs = {} if strategy is None else {"strategy": strategy}
    qnode = qml.QNode(
        _expval, dev, diff_method="shadow", shots=900, max_diff=2, gradient_kwargs=kwargs
    )
    with pytest.raises(NotImplementedError, match="second derivatives"):
        qml.jacobian(qml.jacobian(qnode))(X)


def test_second_derivatives_refused_torch():
    torch = pytest.importorskip("torch")
    dev = qml.device("default.qubit", seed=3)
    qnode = qml.QNode(
        _expval,
        dev,
        diff_method="shadow",
        shots=900,
        max_diff=2,
        interface="torch",
        gradient_kwargs={"strategy": "pure"},
    )
    x = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    with pytest.raises(NotImplementedError, match="second derivatives"):
        torch.autograd.functional.hessian(qnode, x)


# ---------------------------------------------------------------------------------------------
# Result shapes: exactly those of parameter-shift
# ---------------------------------------------------------------------------------------------


def structure(result):
    """Nested tuple structure with array shapes at the leaves."""
    if isinstance(result, tuple | list):
        return tuple(structure(r) for r in result)
    return np.shape(result)


def _tape(ops, measurements, shots):
    tape = QuantumScript(ops, measurements, shots=shots)
    tape.trainable_params = list(range(len(tape.get_parameters(trainable_only=False))))
    return tape


SHAPE_CASES = {
    "one-param-one-expval": lambda shots: _tape(
        [qml.Hadamard(0), qml.RX(0.4, 0)], [qml.expval(qml.Z(0))], shots
    ),
    "many-params": lambda shots: _tape(
        [qml.RX(0.4, 0), qml.RY(0.2, 1), qml.CNOT([0, 1]), qml.RZ(0.3, 1), qml.RY(-0.5, 0)],
        [qml.expval(qml.Z(0) @ qml.X(1))],
        shots,
    ),
    "multiple-measurements": lambda shots: _tape(
        [qml.RX(0.4, 0), qml.RY(0.2, 1), qml.CNOT([0, 1])],
        [qml.expval(qml.Z(0)), qml.var(qml.X(1)), qml.probs(wires=[1, 0])],
        shots,
    ),
    "probs": lambda shots: _tape(
        [qml.RX(0.4, 0), qml.RY(0.2, 1), qml.CNOT([0, 1]), qml.RX(0.8, 2)],
        [qml.probs(wires=[0, 2])],
        shots,
    ),
    "one-param-probs": lambda shots: _tape([qml.RY(0.2, 0)], [qml.probs(wires=[0])], shots),
}


@pytest.mark.parametrize("shots", [900, (300, 500)], ids=["shots", "shot-vector"])
@pytest.mark.parametrize("name", sorted(SHAPE_CASES))
def test_tape_jacobian_shapes_equal_param_shift(name, shots):
    tape = SHAPE_CASES[name](shots)
    dev = qml.device("default.qubit", seed=4)
    tapes, fn = sg.shadow_grad(tape)
    ours = fn(qml.execute(tapes, dev))
    tapes_ps, fn_ps = qml.gradients.param_shift(tape)
    theirs = fn_ps(qml.execute(tapes_ps, dev))
    assert structure(ours) == structure(theirs)
    if isinstance(shots, tuple):
        assert len(ours) == len(shots)


def _qnode_many(x):
    qml.RX(x[0], 0)
    qml.RY(x[1], 1)
    qml.CNOT([0, 1])
    qml.Rot(x[2], x[0], x[1], wires=1)
    return qml.expval(qml.Z(0) @ qml.X(1))


def _qnode_one(x):
    qml.Hadamard(0)
    qml.RX(2 * x, 0)
    return qml.expval(qml.Y(0))


def _qnode_probs(x):
    qml.RX(x[0], 0)
    qml.CRY(x[1], wires=[0, 1])
    return qml.probs(wires=[1, 0])


QNODE_CASES = {
    "scalar-arg": (_qnode_one, pnp.array(0.4, requires_grad=True)),
    "many-params": (_qnode_many, pnp.array([0.3, 0.7, -0.2], requires_grad=True)),
    "probs": (_qnode_probs, pnp.array([0.3, 0.7], requires_grad=True)),
}


@pytest.mark.parametrize(
    ("name", "strategy"),
    [(name, "pure") for name in sorted(QNODE_CASES)]
    + [("scalar-arg", None), ("many-params", None)]
    # the default (hybrid) strategy takes ~6 s per probs gradient on 2 qubits
    + [pytest.param("probs", None, marks=pytest.mark.slow)],
)
def test_qnode_jacobian_shapes_equal_param_shift(name, strategy):
    func, x = QNODE_CASES[name]
    dev = qml.device("default.qubit", seed=5)
    kwargs = {} if strategy is None else {"strategy": strategy}
    ours = qml.jacobian(
        qml.QNode(func, dev, diff_method="shadow", shots=900, gradient_kwargs=kwargs)
    )(x)
    theirs = qml.jacobian(qml.QNode(func, dev, diff_method="parameter-shift", shots=900))(x)
    assert np.shape(ours) == np.shape(theirs)


def test_qnode_multiple_measurements_and_shot_vector_shapes_torch():
    torch = pytest.importorskip("torch")
    dev = qml.device("default.qubit", seed=6)

    def func(x):
        qml.RX(x[0], 0)
        qml.RY(x[1], 1)
        qml.CNOT([0, 1])
        return qml.expval(qml.Z(1)), qml.probs(wires=[0])

    x = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    shapes = []
    for method, kwargs in (("shadow", {"strategy": "pure"}), ("parameter-shift", {})):
        qnode = qml.QNode(
            func,
            dev,
            diff_method=method,
            shots=[300, 500],
            interface="torch",
            gradient_kwargs=kwargs,
        )
        jac = torch.autograd.functional.jacobian(
            lambda v, q=qnode: tuple(r for copy in q(v) for r in copy), x
        )
        shapes.append([tuple(j.shape) for j in jac])
    assert shapes[0] == shapes[1] == [(2,), (2, 2), (2,), (2, 2)]


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------

GOOD_KWARGS = {"snapshots": 900, "bases": "all", "groups": 10, "seed": 3, "max_qubits": 4}


def _assert_runs_without_warnings(make_qnode, x=X):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qnode = make_qnode()
        with sg.record() as rec:
            jac = qml.jacobian(qnode)(x)
    assert np.shape(jac) == np.shape(x)
    assert np.all(np.isfinite(jac))
    assert len(rec) == 1 and rec[0].method == "shadow"
    return qnode, rec[0]


def test_qnode_constructor_with_string_and_gradient_kwargs():
    dev = qml.device("default.qubit", seed=7)
    _, rec = _assert_runs_without_warnings(
        lambda: qml.QNode(
            _expval,
            dev,
            diff_method="shadow",
            shots=300,
            gradient_kwargs={**GOOD_KWARGS, "strategy": "pure"},
        )
    )
    assert rec.snapshots == 900 and rec.circuits == 9 and rec.groups == 10


def test_qnode_decorator_with_transform():
    dev = qml.device("default.qubit", seed=8)

    def make():
        @qml.qnode(dev, diff_method=sg.shadow_grad, shots=900, gradient_kwargs={"seed": 1})
        def circuit(x):
            return _expval(x)

        return circuit

    _assert_runs_without_warnings(make)


def test_qnode_decorator_with_string_default_options():
    dev = qml.device("default.qubit", seed=9)

    def make():
        @qml.qnode(dev, diff_method="shadow", shots=900)
        def circuit(x):
            return _expval(x)

        return circuit

    _assert_runs_without_warnings(make)


def test_qnode_update_to_shadow():
    dev = qml.device("default.qubit", seed=10)
    base = qml.QNode(_expval, dev, diff_method="parameter-shift", shots=900)
    qnode, _ = _assert_runs_without_warnings(
        lambda: base.update(diff_method="shadow", gradient_kwargs={"strategy": "pure"})
    )
    assert qnode.diff_method == "shadow"
    with qml.Tracker(dev) as tracker:
        qml.jacobian(qnode)(X)
    # one forward circuit, then the 9 local bases (none of parameter-shift's 4 shifted tapes)
    assert tracker.totals["executions"] == 1 + 9


@pytest.mark.parametrize("qnode_method", ["shadow", "parameter-shift"])
def test_construct_batch_shows_snapshot_tapes(qnode_method):
    dev = qml.device("default.qubit", seed=11)
    qnode = qml.QNode(_expval, dev, diff_method=qnode_method, shots=900)
    for level in ("user", "device"):
        transform = sg.shadow_grad(qnode, strategy="pure")
        batch, _ = qml.workflow.construct_batch(transform, level=level)(X)
        assert len(batch) == 1
        [tape] = batch
        assert tape.batch_size == 9 and tape.shots.total_shots == 100
        assert [type(m) for m in tape.measurements] == [qml.measurements.SampleMP]
        assert tape.measurements[0].wires.tolist() == [0, 1]


def test_shadow_grad_applied_to_shadow_qnode_matches_tapes():
    """``shadow_grad(qnode)(x)`` on a QNode that itself uses diff_method="shadow"."""
    dev = qml.device("default.qubit", seed=12)
    qnode = qml.QNode(_expval, dev, diff_method="shadow", shots=900)
    jac = sg.shadow_grad(qnode)(X)
    assert np.shape(jac) == (2,) and np.all(np.isfinite(jac))


# ---------------------------------------------------------------------------------------------
# record()
# ---------------------------------------------------------------------------------------------


def _record_circuit(x):
    qml.Rot(x[0], x[1], x[2], wires=0)  # decomposed into RZ RY RZ: 3 tape parameters
    qml.CRX(x[0], wires=[0, 1])
    qml.RY(2 * x[1], wires=2)
    return qml.expval(qml.Z(0) @ qml.X(2)), qml.probs(wires=[1, 2]), qml.var(qml.Y(1))


def test_record_counts_and_jacobian_shapes():
    dev = qml.device("default.qubit", seed=13)
    x = pnp.array([0.3, 0.7, -0.4], requires_grad=True)
    qnode = qml.QNode(
        _record_circuit,
        dev,
        diff_method="shadow",
        shots=27 * 40,
        gradient_kwargs={"strategy": "pure"},
    )
    [tape] = qml.workflow.construct_batch(qnode, level="gradient")(x)[0]
    m_tape = len(tape.trainable_params)
    assert m_tape > 3  # more tape parameters than QNode arguments
    with sg.record() as rec:
        qml.jacobian(lambda v: qml.math.hstack([qml.math.ravel(r) for r in qnode(v)]))(x)
    assert len(rec) == 1
    r = rec[0]
    assert (r.snapshots, r.circuits, r.num_qubits, r.num_params) == (27 * 40, 27, 3, m_tape)
    assert [j.shape for j in r.jacobian] == [(m_tape,), (m_tape, 4), (m_tape,)]
    assert [s.shape for s in r.stderr] == [(m_tape,), (m_tape, 4), (m_tape,)]
    assert all(np.all(s >= 0) for s in r.stderr)
    assert r.groups == 20 and r.postprocessing_seconds >= 0
    assert not sg.resources.is_recording()


def test_record_random_plan_and_shot_vector():
    dev = qml.device("default.qubit", seed=14)
    qnode = qml.QNode(
        _expval,
        dev,
        diff_method="shadow",
        shots=[200, 300],
        gradient_kwargs={"bases": 5, "seed": 1, "strategy": "pure"},
    )
    with sg.record() as rec:
        qml.jacobian(lambda v: qml.math.hstack(qnode(v)))(X)
    assert [(r.snapshots, r.circuits) for r in rec] == [(200, 5), (300, 5)]
    assert all(r.groups == 5 for r in rec)


def test_no_record_outside_context():
    dev = qml.device("default.qubit", seed=15)
    qnode = qml.QNode(_expval, dev, diff_method="shadow", shots=900)
    with sg.record() as rec:
        pass
    qml.jacobian(qnode)(X)
    assert rec == []
