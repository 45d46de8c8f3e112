"""PennyLane features around the shadow methods: graph decomposition, composed QNodes,
``max_diff``, uninstalling, option validation, threads, replicate groups, constant
observables and ``probs()``.

Stochastic checks compare with exact gradients (``diff_method="backprop"``) at ``z = 5``
standard errors, the errors taken from the estimator's own record (delete-a-group jackknife);
the var gradient's unbiasedness is checked exactly, by enumerating every outcome (and every
basis draw) with its probability.
"""

from __future__ import annotations

import importlib
import itertools
import threading

import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp

import pennylane_shadowgrad as sg
from pennylane_shadowgrad import registration
from pennylane_shadowgrad.circuit import UnsupportedCircuitError
from pennylane_shadowgrad.plans import make_plan

Z = 5.0
PURE = {"strategy": "pure"}


def _backprop_grad(qfunc, *args):
    return qml.grad(qml.QNode(qfunc, qml.device("default.qubit"), diff_method="backprop"))(*args)


def _executions(tracker) -> int:
    return tracker.totals.get("executions", 0)


# ---------------------------------------------------------------------------------------------
# 1. graph-based decomposition
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def graph_decomposition():
    qml.decomposition.enable_graph()
    try:
        yield
    finally:
        qml.decomposition.disable_graph()


def _graph_circuit(x):
    qml.Rot(x[0], x[1], x[2], wires=0)  # decomposed (three parameters)
    qml.IsingXX(x[3], wires=[0, 1])
    qml.Toffoli(wires=[0, 1, 2])  # fixed gates
    qml.QFT(wires=[1, 2])
    qml.CRX(0.4, wires=[2, 0])
    return qml.expval(qml.Z(0) @ qml.X(2))


def test_shadow_gradient_with_graph_decomposition(graph_decomposition):
    assert qml.decomposition.enabled_graph()
    x = pnp.array([0.3, 0.5, 0.7, 0.2], requires_grad=True)
    dev = qml.device("default.qubit", seed=11)
    qnode = qml.QNode(
        _graph_circuit,
        dev,
        diff_method="shadow",
        shots=20000,
        gradient_kwargs={**PURE, "seed": 3},
    )
    with sg.record() as rec:
        grad = qml.grad(qnode)(x)
    exact = _backprop_grad(_graph_circuit, x)
    # Rot -> RZ RY RZ: the tape parameters are the QNode arguments, one to one
    se = rec[0].stderr[0]
    assert se.shape == (4,) and np.all(se > 0)
    assert np.all(np.abs(grad - exact) <= Z * se), (grad, exact, se)


# ---------------------------------------------------------------------------------------------
# 2. a QNode's output fed to a template of a shadow QNode (tuple of autograd boxes)
# ---------------------------------------------------------------------------------------------


def _first(x):
    qml.RX(x[0], 0)
    qml.RX(x[1], 1)
    return qml.expval(qml.Z(0)), qml.expval(qml.Z(1))  # (cos x0, cos x1)


def _second(a, w):
    qml.AngleEmbedding(a, wires=[0, 1])  # holds an object array of ArrayBoxes
    qml.RY(w, wires=0)
    qml.CNOT(wires=[0, 1])
    return qml.expval(qml.Z(1))


def test_composed_qnodes_gradient_matches_backprop():
    x = pnp.array([0.3, 0.5], requires_grad=True)
    w = pnp.array(0.4, requires_grad=True)
    first = qml.QNode(_first, qml.device("default.qubit"), diff_method="backprop")
    second = qml.QNode(
        _second,
        qml.device("default.qubit", seed=5),
        diff_method="shadow",
        shots=20000,
        gradient_kwargs={**PURE, "seed": 2},
    )
    exact_second = qml.QNode(_second, qml.device("default.qubit"), diff_method="backprop")
    with sg.record() as rec:
        gx, gw = qml.grad(lambda x, w: second(first(x), w))(x, w)
    ex, ew = qml.grad(lambda x, w: exact_second(first(x), w))(x, w)
    assert np.abs(ex).min() > 0.05  # the composition is really differentiated
    # tape parameters: RX(cos x0), RX(cos x1), RY(w); d cos(x_i) / dx_i = -sin(x_i)
    se = rec[0].stderr[0]
    se_x = np.abs(np.sin(np.asarray(x))) * se[:2]
    assert np.all(np.abs(gx - ex) <= Z * se_x), (gx, ex, se_x)
    assert abs(gw - ew) <= Z * se[2], (gw, ew, se[2])


# ---------------------------------------------------------------------------------------------
# 3. max_diff=2 is refused before any execution, in every interface
# ---------------------------------------------------------------------------------------------


def _two_params(x):
    qml.RX(x[0], 0)
    qml.RY(x[1], 0)
    return qml.expval(qml.Z(0))


def _first_derivative(interface, qnode):
    if interface == "autograd":
        return qml.grad(qnode)(pnp.array([0.3, 0.5], requires_grad=True))
    if interface == "torch":
        torch = pytest.importorskip("torch")
        x = torch.tensor([0.3, 0.5], dtype=torch.float64, requires_grad=True)
        qnode(x).backward()
        return x.grad
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    fn = jax.jacrev if interface == "jax-jacrev" else jax.jacfwd
    return fn(qnode)(jax.numpy.array([0.3, 0.5]))


@pytest.mark.parametrize("method", ["shadow", "gentle-multicopy"])
@pytest.mark.parametrize("interface", ["autograd", "torch", "jax-jacfwd", "jax-jacrev"])
def test_max_diff_2_refused_before_any_execution(interface, method):
    dev = qml.device("default.qubit", seed=1)
    kwargs = PURE if method == "shadow" else {"seed": 1}
    qnode = qml.QNode(
        _two_params, dev, diff_method=method, shots=300, max_diff=2, gradient_kwargs=kwargs
    )
    with qml.Tracker(dev) as tracker:
        with pytest.raises(NotImplementedError, match="second derivatives") as err:
            _first_derivative(interface, qnode)
    assert _executions(tracker) == 0
    message = str(err.value)
    assert f"diff_method='{method}'" in message
    assert "max_diff=1" in message and "jax.jacrev" in message and "shadow_hessian" in message


def test_max_diff_2_refused_for_the_transform_itself():
    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(
        _two_params, dev, diff_method=sg.shadow_grad, shots=300, max_diff=2, gradient_kwargs=PURE
    )
    with qml.Tracker(dev) as tracker, pytest.raises(NotImplementedError, match="max_diff=1"):
        qml.grad(qnode)(pnp.array([0.3, 0.5], requires_grad=True))
    assert _executions(tracker) == 0


@pytest.mark.parametrize("interface", ["autograd", "torch", "jax-jacfwd"])
def test_first_derivatives_with_max_diff_1(interface):
    dev = qml.device("default.qubit", seed=4)
    qnode = qml.QNode(
        _two_params, dev, diff_method="shadow", shots=4000, gradient_kwargs={**PURE, "seed": 1}
    )
    with sg.record() as rec:
        grad = np.asarray(_first_derivative(interface, qnode))
    exact = _backprop_grad(_two_params, pnp.array([0.3, 0.5], requires_grad=True))
    se = rec[0].stderr[0]
    assert np.all(np.abs(grad - exact) <= Z * se), (grad, exact, se)


# ---------------------------------------------------------------------------------------------
# 4. uninstall / install
# ---------------------------------------------------------------------------------------------


def _one_param(x):
    qml.RX(x, 0)
    return qml.expval(qml.Z(0))


def _shadow_qnode():
    dev = qml.device("default.qubit", seed=3)
    return qml.QNode(_one_param, dev, diff_method="shadow", shots=300, gradient_kwargs=PURE)


def _assert_shadow_works():
    assert np.isfinite(qml.grad(_shadow_qnode())(pnp.array(0.4, requires_grad=True)))


def _assert_shadow_refused_by_pennylane(built_before):
    with pytest.raises(qml.exceptions.QuantumFunctionError, match="shadow not recognized"):
        _shadow_qnode()
    with pytest.raises(qml.exceptions.QuantumFunctionError, match="shadow not recognized"):
        qml.grad(built_before)(pnp.array(0.4, requires_grad=True))


def test_uninstall_refuses_and_install_restores():
    built_before = _shadow_qnode()
    held = importlib.import_module("pennylane.workflow.qnode")._validate_diff_method
    registration.uninstall()
    try:
        _assert_shadow_refused_by_pennylane(built_before)
        # a wrapper still held elsewhere (another plugin wrapping ours) passes to PennyLane
        with pytest.raises(qml.exceptions.QuantumFunctionError, match="not recognized"):
            held(qml.device("default.qubit"), "shadow")
    finally:
        registration.install()
    _assert_shadow_works()
    registration.uninstall()
    try:
        _assert_shadow_refused_by_pennylane(built_before)
    finally:
        registration.register("shadow", sg.shadow_grad)  # re-registering installs again
    _assert_shadow_works()


def test_uninstall_after_reloading_the_registration_module():
    """A reloaded module must not take the old module's wrappers for PennyLane's functions."""
    built_before = _shadow_qnode()
    importlib.reload(registration)
    registration.register("shadow", sg.shadow_grad)
    registration.register("gentle-multicopy", sg.gentle_multicopy_grad)
    _assert_shadow_works()
    registration.uninstall()
    try:
        _assert_shadow_refused_by_pennylane(built_before)
        validate = importlib.import_module("pennylane.workflow.qnode")._validate_diff_method
        resolve = importlib.import_module("pennylane.workflow.resolution")._resolve_diff_method
        assert validate.__module__ == "pennylane.workflow.qnode"  # PennyLane's own again
        assert resolve.__module__ == "pennylane.workflow.resolution"
        assert qml.workflow._resolve_diff_method is resolve
    finally:
        registration.install()
    _assert_shadow_works()
    assert set(registration.registered_methods()) >= {"shadow", "gentle-multicopy"}


# ---------------------------------------------------------------------------------------------
# 5. option validation, before any execution
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("seed", "abc", "'seed' must be None.*integer.*numpy.random.Generator"),
        ("seed", 1.5, "'seed' must be"),
        ("seed", -3, "'seed' must be"),
        ("seed", True, "'seed' must be"),
        ("snapshots", 0, "'snapshots' must be a positive integer"),
        ("snapshots", 100.0, "'snapshots' must be a positive integer"),
        ("bases", "some", "'bases' must be 'auto', 'all', 'per-shot' or a positive integer"),
        ("bases", 0, "'bases' must be"),
        ("groups", 0, "'groups' must be an integer of at least 1"),
        ("groups", 2.5, "'groups' must be"),
        ("max_qubits", 0, "'max_qubits' must be a positive integer"),
        ("max_qubits", "12", "'max_qubits' must be"),
    ],
)
def test_invalid_option_refused_before_any_execution(option, value, match):
    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(
        _one_param, dev, diff_method="shadow", shots=90, gradient_kwargs={**PURE, option: value}
    )
    with qml.Tracker(dev) as tracker, pytest.raises(ValueError, match=match):
        qml.grad(qnode)(pnp.array(0.4, requires_grad=True))
    assert _executions(tracker) == 0


@pytest.mark.parametrize(
    "options",
    [
        {"seed": np.random.default_rng(1)},
        {"seed": np.int64(3)},
        {"seed": None},
        {"snapshots": np.int64(90)},
        {"bases": "per-shot"},
        {"bases": 5},
        {"groups": 1},
        {"max_qubits": 3},
    ],
)
def test_valid_options_accepted(options):
    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(
        _one_param, dev, diff_method="shadow", shots=90, gradient_kwargs={**PURE, **options}
    )
    assert np.isfinite(qml.grad(qnode)(pnp.array(0.4, requires_grad=True)))


def test_make_plan_shares_the_checks():
    with pytest.raises(ValueError, match="'groups' must be an integer of at least 1"):
        make_plan(1, 10, groups=0)
    with pytest.raises(ValueError, match="'seed' must be"):
        make_plan(1, 10, seed="abc")
    assert make_plan(1, 10, groups=1).groups == 1


# ---------------------------------------------------------------------------------------------
# 6. record() is per thread
# ---------------------------------------------------------------------------------------------


def test_record_is_per_thread():
    """Two threads inside their own record() blocks at the same time see only their own."""
    budgets = {"a": 300, "b": 500}
    both_recording, both_done = threading.Barrier(2), threading.Barrier(2)
    compute = threading.Lock()  # PennyLane's queuing is not thread-safe: one gradient at a time
    seen, errors = {}, []

    def worker(name):
        try:
            dev = qml.device("default.qubit", seed=7)
            qnode = qml.QNode(
                _one_param, dev, diff_method="shadow", shots=budgets[name], gradient_kwargs=PURE
            )
            with sg.record() as rec:
                both_recording.wait(timeout=60)
                for _ in range(2):
                    with compute:
                        qml.grad(qnode)(pnp.array(0.4, requires_grad=True))
                both_done.wait(timeout=60)
            seen[name] = [r.snapshots for r in rec]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
            both_recording.abort()
            both_done.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in budgets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert seen == {"a": [300, 300], "b": [500, 500]}
    assert not sg.resources.is_recording()


def test_nested_records_both_collect():
    with sg.record() as outer:
        with sg.record() as inner:
            qml.grad(_shadow_qnode())(pnp.array(0.4, requires_grad=True))
        assert sg.resources.is_recording()
    assert len(outer) == len(inner) == 1 and not sg.resources.is_recording()


# ---------------------------------------------------------------------------------------------
# 7. one replicate group: NaN errors; the var gradient: exactly unbiased, or refused
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"groups": 1}, {"bases": 1}, {"bases": "all"}])
def test_single_group_reports_nan_errors(options):
    # shots=4 on one qubit: bases='all' gives 2, 1, 1 shots per basis, hence one group
    dev = qml.device("default.qubit", seed=2)
    qnode = qml.QNode(
        _one_param, dev, diff_method="shadow", shots=4, gradient_kwargs={**PURE, **options}
    )
    with sg.record() as rec:
        grad = qml.grad(qnode)(pnp.array(0.4, requires_grad=True))
    r = rec[0]
    assert np.isfinite(grad)
    assert r.groups == 1
    assert np.all(np.isnan(r.stderr[0])) and np.all(np.isnan(r.variance[0]))
    assert np.all(np.isnan(r.shot_variance[0]))
    assert any("single replicate group" in note for note in r.notes)
    with pytest.raises(ValueError, match="at least 2 independent replicate groups"):
        r.confidence_interval()


def test_auto_plan_keeps_two_groups():
    """'auto' takes the complete plan only when every basis gets 2 shots (two groups)."""
    assert make_plan(2, 9, seed=0).random and make_plan(2, 9, seed=0).groups == 9
    assert make_plan(2, 17, seed=0).random
    full = make_plan(2, 18)
    assert not full.random and full.groups == 2
    assert make_plan(2, 9, groups=1).groups == 1 and not make_plan(2, 9, groups=1).random
    for t in range(2, 40):
        assert make_plan(1, t, seed=0).groups >= 2


_VX = [0.4, 0.9]
_VOBS = qml.Z(0) + 0.5 * qml.X(0)


def _var_circuit(x):
    qml.RX(x[0], 0)
    qml.RY(x[1], 0)
    return qml.var(_VOBS)


def _var_tape(shots):
    ops = [qml.RX(pnp.array(_VX[0]), 0), qml.RY(pnp.array(_VX[1]), 0)]
    return qml.tape.QuantumScript(ops, [qml.var(_VOBS)], shots=shots, trainable_params=[0, 1])


def _outcome_laws(tapes):
    """Exact outcome probabilities of every snapshot circuit: one ``(rows, 2)`` array a tape."""
    dev = qml.device("default.qubit")
    laws = []
    for t in tapes:
        exact = qml.tape.QuantumScript(t.operations, [qml.probs(wires=t.measurements[0].wires)])
        laws.append(np.atleast_2d(qml.execute([exact], dev)[0]))
    return laws


def _exact_mean(tapes, fn):
    """``E[fn(results)]`` by enumerating every single-qubit outcome of every shot."""
    laws = _outcome_laws(tapes)
    counts = [t.shots.total_shots for t in tapes]
    slots = [
        (i, r) for i, law in enumerate(laws) for r in range(len(law)) for _ in range(counts[i])
    ]
    total = 0.0
    for outcome in itertools.product((0, 1), repeat=len(slots)):
        weight = np.prod([laws[i][r][o] for (i, r), o in zip(slots, outcome)])
        values = iter(outcome)
        results = []
        for law, count in zip(laws, counts):
            bits = np.array([[next(values) for _ in range(count)] for _ in law])
            bits = bits.reshape(len(law), count, 1)
            results.append(bits if len(law) > 1 else bits[0])
        total = total + weight * np.asarray(fn(results))
    return total


@pytest.mark.parametrize("shots", [7, 9])
def test_var_gradient_exactly_unbiased_complete_plan(shots):
    """bases='all' with 3/2/2 (unequal groups) and 3/3/3 shots: E[estimate] = exact."""
    tapes, fn = sg.shadow_grad(_var_tape(shots), bases="all", **PURE)
    exact = _backprop_grad(_var_circuit, pnp.array(_VX, requires_grad=True))
    assert np.allclose(_exact_mean(tapes, fn), exact, atol=1e-10, rtol=0)


@pytest.mark.parametrize("shots", [2, 3])
def test_var_gradient_exactly_unbiased_random_plan(shots):
    """Random bases (one per shot): average over all 3**T basis draws and all outcomes."""
    exact = _backprop_grad(_var_circuit, pnp.array(_VX, requires_grad=True))
    by_draw, seed = {}, 0
    while len(by_draw) < 3**shots:  # seeds until every basis sequence has been drawn
        tapes, fn = sg.shadow_grad(_var_tape(shots), bases="per-shot", seed=seed, **PURE)
        assert len(tapes) == 1  # one shot per basis: one broadcast tape, a row per basis
        key = tuple(np.round(_outcome_laws(tapes)[0][:, 0], 9))  # identifies the bases
        if key not in by_draw:
            by_draw[key] = _exact_mean(tapes, fn)
        seed += 1
    mean = sum(by_draw.values()) / 3**shots
    assert np.allclose(mean, exact, atol=1e-10, rtol=0)


def test_var_gradient_refused_for_a_single_snapshot():
    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(_var_circuit, dev, diff_method="shadow", shots=1, gradient_kwargs=PURE)
    with qml.Tracker(dev) as tracker, pytest.raises(ValueError, match="at least 2 snapshots"):
        qml.grad(qnode)(pnp.array(_VX, requires_grad=True))
    assert _executions(tracker) == 0


def test_var_gradient_refused_for_a_single_group():
    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(
        _var_circuit,
        dev,
        diff_method="shadow",
        shots=4,
        gradient_kwargs={**PURE, "bases": "all"},  # 2, 1, 1 shots per basis: one group
    )
    with pytest.raises(ValueError, match="at least 2 independent replicate groups"):
        qml.grad(qnode)(pnp.array(_VX, requires_grad=True))


# ---------------------------------------------------------------------------------------------
# 8. gentle-multicopy with a constant observable
# ---------------------------------------------------------------------------------------------


def _observable_circuit(obs):
    def circuit(x):
        qml.RX(x[0], 0)
        qml.CNOT(wires=[0, 1])
        qml.RY(x[1], 1)
        return qml.expval(obs)

    return circuit


@pytest.mark.parametrize(
    ("obs", "constant"),
    [(qml.Identity(0), True), (2.0 * qml.Identity(0), True), (qml.Z(2), False)],
    ids=["identity", "scaled-identity", "untouched-wire"],
)
def test_multicopy_constant_observable_gives_zero(obs, constant):
    dev = qml.device("default.qubit")
    qnode = qml.QNode(
        _observable_circuit(obs), dev, diff_method="gentle-multicopy", gradient_kwargs={"seed": 1}
    )
    with sg.record() as rec:
        grad = qml.grad(qnode)(pnp.array([0.3, 0.5], requires_grad=True))
    assert np.array_equal(grad, [0.0, 0.0])
    assert len(rec) == 1 and rec[0].report["certified"]
    if constant:
        assert rec[0].snapshots == 0 and rec[0].report["copies"]["total"] == 0
        assert any("constant observable" in note for note in rec[0].notes)


# ---------------------------------------------------------------------------------------------
# 9. strategy='pure': constants, untouched wires, probs()
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "measure",
    [
        lambda: qml.expval(qml.Identity(0)),
        lambda: qml.expval(3.0 * qml.Identity(0)),
        lambda: qml.expval(qml.Z(2)),
        lambda: qml.var(qml.Z(2)),
        lambda: qml.var(3.0 * qml.Identity(1)),
    ],
    ids=["identity", "constant", "untouched-wire", "var-untouched-wire", "var-constant"],
)
def test_pure_constant_observables_give_exact_zero(measure):
    def circuit(x):
        qml.RX(x[0], 0)
        qml.CNOT(wires=[0, 1])
        qml.RY(x[1], 1)
        return measure()

    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(circuit, dev, diff_method="shadow", shots=200, gradient_kwargs=PURE)
    x = pnp.array([0.3, 0.5], requires_grad=True)
    with sg.record() as rec:
        grad = qml.grad(qnode)(x)
    assert np.array_equal(grad, [0.0, 0.0])
    assert np.allclose(_backprop_grad(circuit, x), 0.0, atol=1e-12)
    assert np.all(np.isfinite(rec[0].stderr[0]))


def _probs_circuit(wires):
    def circuit(x):
        qml.RX(x[0], 1)
        qml.CNOT(wires=[1, 0])
        qml.RY(x[1], 0)
        return qml.probs() if wires is None else qml.probs(wires=wires)

    return circuit


@pytest.mark.parametrize("device_wires", [None, 3])
def test_probs_without_wires_refused_before_any_execution(device_wires):
    dev = qml.device("default.qubit", wires=device_wires, seed=1)
    qnode = qml.QNode(
        _probs_circuit(None), dev, diff_method="shadow", shots=900, gradient_kwargs=PURE
    )
    with (
        qml.Tracker(dev) as tracker,
        pytest.raises(UnsupportedCircuitError, match=r"qml.probs\(wires="),
    ):
        qml.jacobian(qnode)(pnp.array([0.3, 0.5], requires_grad=True))
    assert _executions(tracker) == 0


def test_probs_of_all_wires_is_the_full_jacobian():
    dev = qml.device("default.qubit", seed=9)
    qnode = qml.QNode(
        _probs_circuit([0, 1]),
        dev,
        diff_method="shadow",
        shots=18000,
        gradient_kwargs={**PURE, "seed": 4},
    )
    x = pnp.array([0.3, 0.5], requires_grad=True)
    with sg.record() as rec:
        jac = qml.jacobian(qnode)(x)
    exact = qml.jacobian(
        qml.QNode(_probs_circuit([0, 1]), qml.device("default.qubit"), diff_method="backprop")
    )(x)
    se = rec[0].stderr[0].T  # record: (parameter, outcome); QNode Jacobian: (outcome, parameter)
    assert jac.shape == exact.shape == (4, 2)
    assert np.all(np.abs(jac - exact) <= Z * se + 1e-12), (jac, exact, se)
