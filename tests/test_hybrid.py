"""The default strategy (auto): one round, unbiased combination, measured errors, accounting."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from _reference import exact_tape_gradient
from pennylane.tape import QuantumScript
from scipy.stats import t as student_t

import pennylane_shadowgrad as sg
from pennylane_shadowgrad import allocation, parameter_shift, shadow_grad, variance
from pennylane_shadowgrad.estimators import light_cone

#: Family-wise false-failure probability of every statistical test in this file.
ALPHA = 1e-5


def _circuit(x):
    for layer in range(3):
        qml.RY(x[4 * layer], 0)
        qml.RZ(x[4 * layer + 1], 0)
        qml.RY(x[4 * layer + 2], 1)
        qml.RX(x[4 * layer + 3], 2)
        qml.CNOT([0, 1])
        qml.CNOT([1, 2])


def _tape(obs, shots):
    x = np.random.default_rng(2).uniform(0, 6, 12)
    with qml.queuing.AnnotatedQueue() as q:
        _circuit(x)
    tape = QuantumScript(q.queue, [qml.expval(obs)], shots=shots)
    tape.trainable_params = list(range(12))
    return tape


@pytest.mark.parametrize(
    "obs",
    [qml.Z(2), pytest.param(qml.Z(0) @ qml.Z(1) + 0.7 * qml.X(2), marks=pytest.mark.slow)],
)
def test_auto_is_unbiased_on_its_default_plan(obs):
    """Seeded repetitions; per-component t-test with a Bonferroni level (family-wise ALPHA)."""
    tape = _tape(obs, 1500)
    exact = exact_tape_gradient(tape)
    dev = qml.device("default.qubit", seed=17)
    reps = 80
    runs, shots = [], set()
    for r in range(reps):
        tapes, fn = shadow_grad(tape, seed=r)
        with qml.Tracker(dev) as tracker:
            g = fn(qml.execute(tapes, dev, diff_method=None))
        runs.append(np.asarray(g, float).reshape(-1))
        shots.add(int(tracker.totals["shots"]))
    runs = np.array(runs)
    assert max(shots) <= 1500 and min(shots) >= 1500 - 8
    sd = runs.std(0, ddof=1)
    live = sd > 0
    assert np.allclose(runs[:, ~live], exact[~live], atol=1e-12)
    q = student_t.ppf(1 - ALPHA / (4 * live.sum()), df=reps - 1)
    assert np.all(np.abs(runs.mean(0) - exact)[live] <= q * sd[live] / np.sqrt(reps))


def test_qnode_default_runs_auto_in_one_batch_and_records_the_split():
    dev = qml.device("default.qubit", seed=3)

    @qml.qnode(dev, diff_method="shadow", shots=3000)
    def f(x):
        _circuit(x)
        return qml.expval(qml.Z(2))

    x = qml.numpy.array(np.linspace(0.1, 1.2, 12), requires_grad=True)
    with qml.Tracker(dev) as tracker, sg.record() as rec:
        g = qml.grad(f)(x)
    assert g.shape == (12,)
    assert tracker.totals["batches"] == 2  # the forward pass and the gradient's one round
    assert 6000 - 8 <= tracker.totals["shots"] <= 6000
    r = rec[0]
    assert r.strategy == "auto" and r.notes[0] == "strategy='auto' (default)"
    split = r.split
    total = split["shadow_snapshots"] + split["parameter_shift_shots"]
    assert 3000 - 8 <= total <= 3000 and r.snapshots == total
    assert r.stderr[0].shape == (12,) and np.all(r.stderr[0] >= 0)
    assert r.dof[0].shape == (12,)


def test_processing_executes_nothing_and_is_repeatable():
    tape = _tape(qml.Z(0) @ qml.Z(1) + 0.7 * qml.X(2), 2000)
    dev = qml.device("default.qubit", seed=4)
    tapes, fn = shadow_grad(tape, seed=2)
    results = qml.execute(tapes, dev, diff_method=None)
    with qml.Tracker(dev) as tracker:
        first = np.asarray(fn(results))
        second = np.asarray(fn(results))
    assert tracker.totals.get("executions", 0) == 0
    assert np.array_equal(first, second)


def test_variance_measurement_runs_pure_with_a_note():
    dev = qml.device("default.qubit", seed=3)
    tape = QuantumScript([qml.RX(0.4, 0)], [qml.var(qml.Z(0))], shots=500)
    tapes, fn = shadow_grad(tape)
    with sg.record() as rec:
        fn(qml.execute(tapes, dev, diff_method=None))
    assert rec[0].strategy == "pure" and "var" in rec[0].notes[0]
    with pytest.raises(ValueError, match="not available"):
        shadow_grad(tape, strategy="auto")


def test_removed_options_are_refused_with_their_replacement():
    tape = _tape(qml.Z(2), 500)
    with pytest.raises(TypeError, match=r"pilot.*removed"):
        shadow_grad(tape, pilot=0.1)
    with pytest.raises(TypeError, match=r"device.*removed"):
        shadow_grad(tape, device=qml.device("default.qubit"))


def test_probs_outputs_within_their_error_bars():
    dev = qml.device("default.qubit", seed=5)
    tape = QuantumScript(
        [qml.RX(0.4, 0), qml.RY(0.9, 1), qml.CNOT([0, 1])], [qml.probs(wires=[1])], shots=4000
    )
    tape.trainable_params = [0, 1]
    tapes, fn = shadow_grad(tape, seed=1)
    with sg.record() as rec:
        g = np.asarray(fn(qml.execute(tapes, dev, diff_method=None)))
    assert g.shape == (2, 2)
    exact = exact_tape_gradient(tape)
    # 4 entries, two-sided, family-wise 1e-5: the t quantile with the record's dof
    q = student_t.ppf(1 - ALPHA / 8, df=np.min(rec[0].dof[0]))
    assert np.array_equal(np.asarray(rec[0].jacobian[0]), g)  # the record is what was returned
    assert np.all(np.abs(g - exact.reshape(2, 2)) <= q * rec[0].stderr[0] + 1e-12)


@pytest.mark.parametrize("interface", ["torch", "jax-jit"])
def test_interfaces(interface):
    dev = qml.device("default.qubit", seed=9)

    @qml.qnode(dev, diff_method="shadow", shots=2000)
    def f(x):
        qml.RX(x[0], 0)
        qml.RY(x[1], 1)
        qml.CNOT([0, 1])
        return qml.expval(qml.Z(1))

    exact = np.array([-np.sin(0.3) * np.cos(0.7), -np.cos(0.3) * np.sin(0.7)])
    with sg.record() as rec:
        if interface == "torch":
            torch = pytest.importorskip("torch")
            x = torch.tensor([0.3, 0.7], requires_grad=True, dtype=torch.float64)
            with qml.Tracker(dev) as tracker:
                f(x).backward()
            g = x.grad.numpy()
        else:
            jax = pytest.importorskip("jax")
            jax.config.update("jax_enable_x64", True)
            with qml.Tracker(dev) as tracker:
                g = np.asarray(jax.jit(jax.grad(f))(jax.numpy.array([0.3, 0.7])))
    assert g.shape == (2,)
    # 2 components, family-wise 1e-5
    q = student_t.ppf(1 - ALPHA / 4, df=np.min(rec[0].dof[0]) if rec[0].dof else 19)
    assert np.all(np.abs(g - exact) <= q * rec[0].stderr[0] + 1e-12)
    assert 3992 <= tracker.totals["shots"] <= 4000


def test_weights_do_not_depend_on_the_plans_random_bases(monkeypatch):
    """Given its random bases, the shadow estimate's mean is sum_P gamma x c_P / pi_P, not the
    gradient: weights correlated with the bases would bias the combination. Exact conditional
    means given each round's plan (the parameter-shift part is unbiased), averaged over seeds."""
    from pennylane_shadowgrad import hybrid
    from pennylane_shadowgrad.circuit import rotation_form
    from pennylane_shadowgrad.plans import covered_indices, single_coverage

    rng0 = np.random.default_rng(5)
    n, num = 4, 16
    ops = []
    for _ in range(2):
        for q in range(n):
            ops += [qml.RY(rng0.uniform(0, 6), q), qml.RZ(rng0.uniform(0, 6), q)]
        ops += [qml.CNOT([q, (q + 1) % n]) for q in range(n)]
    tape = QuantumScript(ops, [qml.expval(qml.Z(0))])
    tape.trainable_params = list(range(num))
    circuit = rotation_form(tape)
    x = variance.pauli_expectations(variance.simulate(circuit)[0])
    model = hybrid.gradient_model(tape, circuit, range(num))
    blocks = model.blocks
    exact = blocks.map(lambda s, g: g @ x[light_cone.local_indices(n, s)])[:, 0]
    fixed = allocation.Allocation(
        40, np.full(num, 4), np.ones((num, 1)), 0.0, np.zeros((num, 1)), np.ones(num, int)
    )
    monkeypatch.setattr(hybrid, "allocate", lambda *a, **k: fixed)
    reps, dev = 200, []
    for r in range(reps):
        st = hybrid.plan_round(model, 40 + 8 * num, 20, np.random.default_rng(r))
        assert st.shadow_plan.random and st.shadow_plan.num_bases == 40
        mean = np.zeros(num)
        for support, rows, gammas in blocks.blocks:
            lp = light_cone.local_plan(st.shadow_plan, support)
            cov = np.bincount(covered_indices(lp.bases).ravel(), minlength=4 ** len(support))
            pi = 1 - (1 - single_coverage(lp)) ** lp.num_bases
            xs = x[light_cone.local_indices(n, support)]
            mean[rows] = gammas[0] @ (xs * np.where(cov > 0, 1 / pi, 0.0))
        dev.append(st.weights[:, 0] * (mean - exact))
    dev = np.array(dev)
    sd = dev.std(0, ddof=1)
    live = sd > 1e-12
    assert live.sum() >= 4
    q = student_t.ppf(1 - ALPHA / (2 * live.sum()), df=reps - 1)
    assert np.all(np.abs(dev.mean(0))[live] <= q * sd[live] / np.sqrt(reps))


@pytest.mark.parametrize("device_name", ["default.qubit", "lightning.qubit"])
def test_auto_gradient_shots_never_exceed_the_budget_for_a_hamiltonian(device_name):
    """The device splits expval(H) into several measured groups, each charged by the Tracker:
    auto measures its own qubit-wise-commuting groups (2) as separate tapes and charges
    2 G m shots per component, so the Tracker-counted gradient shots stay within T."""
    from pennylane_shadowgrad.circuit import pauli_sum

    obs = qml.Z(0) @ qml.Z(1) + qml.Z(1) @ qml.Z(2) + qml.Z(2) @ qml.Z(3)
    obs = obs + 0.7 * (qml.X(0) + qml.X(1) + qml.X(2) + qml.X(3))
    groups = parameter_shift.measurement_groups([pauli_sum(obs, qml.wires.Wires(range(4)))])
    assert len(groups) == 2
    dev = qml.device(device_name, wires=4, seed=11)
    total = 1200

    def body(x):
        qml.RY(x[0], 0)
        qml.RY(x[1], 1)
        qml.CNOT([0, 1])
        qml.CNOT([1, 2])
        qml.CNOT([2, 3])
        qml.RX(x[2], 3)
        return qml.expval(obs)

    x = qml.numpy.array([0.4, 1.1, 0.7], requires_grad=True)
    with qml.Tracker(dev) as tracker:
        qml.QNode(body, dev, shots=total)(x)
    forward = int(tracker.totals["shots"])  # the device's own split of expval(H)
    assert forward >= 2 * total
    ps_shots = 0
    for r in range(4):
        f = qml.QNode(body, dev, diff_method="shadow", shots=total, gradient_kwargs={"seed": r})
        with qml.Tracker(dev) as tracker, sg.record() as rec:
            qml.grad(f)(x)
        gradient = int(tracker.totals["shots"]) - forward
        split = rec[0].split
        assert rec[0].strategy == "auto" and split["tapes_per_shifted_circuit"] == 2
        counted = split["shadow_snapshots"] + split["parameter_shift_shots"]
        assert gradient == counted and total - 8 <= gradient <= total
        ps_shots += split["parameter_shift_shots"]
    assert ps_shots > 0  # the parameter-shift part ran (charged per group)


def test_split_depends_on_the_circuit_only_and_seeds_reproduce():
    """The split and weights come from the circuit (planning draws use a fixed stream); with
    a seeded device and a method seed the whole gradient is reproducible."""
    rng0 = np.random.default_rng(3)
    x = qml.numpy.array(rng0.uniform(0, 6, 9), requires_grad=True)

    def body(v):
        for q in range(3):
            qml.RY(v[3 * q], q)
            qml.RZ(v[3 * q + 1], q)
        qml.CNOT([0, 1])
        qml.CNOT([1, 2])
        for q in range(3):
            qml.RX(v[3 * q + 2], q)
        return qml.expval(qml.Z(0) @ qml.Z(1) + 0.5 * qml.X(2))

    splits, grads = [], []
    for kwargs in ({}, {}, {"seed": 5}, {"seed": 5}):
        dev = qml.device("default.qubit", seed=123)
        f = qml.QNode(body, dev, diff_method="shadow", shots=50, gradient_kwargs=kwargs)
        with sg.record() as rec:
            grads.append(np.asarray(qml.grad(f)(x)))
        splits.append((rec[0].split["shadow_snapshots"], rec[0].split["parameter_shift_shots"]))
    assert len(set(splits)) == 1
    assert np.array_equal(grads[2], grads[3])
