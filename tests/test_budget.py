"""Variance formulas, the shot split and plan()."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from pennylane.tape import QuantumScript
from scipy.stats import norm

from pennylane_shadowgrad import (
    allocation,
    parameter_shift,
    planning,
    plans,
    shadow_grad,
    variance,
)
from pennylane_shadowgrad.circuit import output_observables, pauli_sum, rotation_form
from pennylane_shadowgrad.estimators import light_cone, shadow
from pennylane_shadowgrad.estimators.dense import gradient_functional
from pennylane_shadowgrad.plans import make_plan
from pennylane_shadowgrad.snapshots import snapshot_tapes

#: Family-wise false-failure probability of every statistical test in this file.
ALPHA = 1e-5


def _ring(n: int, layers: int, seed: int, obs=None) -> QuantumScript:
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(layers):
        for q in range(n):
            ops += [qml.RY(rng.uniform(0, 6), q), qml.RZ(rng.uniform(0, 6), q)]
        ops += [qml.CNOT([q, (q + 1) % n]) for q in range(n if n > 2 else 1)]
    tape = QuantumScript(ops, [qml.expval(obs if obs is not None else qml.Z(0))])
    tape.trainable_params = list(range(len(ops) - (n if n > 2 else 1) * layers))
    return tape


def _exact_grad(tape: QuantumScript) -> np.ndarray:
    tapes, fn = qml.gradients.param_shift(QuantumScript(tape.operations, tape.measurements))
    res = fn(qml.execute(tapes, qml.device("default.qubit"), diff_method=None))
    return np.asarray(res, dtype=float).reshape(-1)


@pytest.mark.parametrize("obs", [qml.Z(0), qml.X(0) @ qml.Y(2) + 0.5 * qml.Z(1)])
def test_generator_coefficients_match_the_dense_sweep(obs):
    tape = _ring(3, 2, seed=1, obs=obs)
    circuit = rotation_form(tape)
    ps = pauli_sum(obs, circuit.wire_order)
    eye = np.eye(4**3).reshape((64,) + (4,) * 3)
    expected = gradient_functional(circuit, ps, eye).T
    assert np.allclose(light_cone.generator_coefficients(circuit, ps), expected, atol=1e-12)


def test_basis_probabilities_match_the_simulator():
    tape = _ring(2, 2, seed=3)
    rotation_form(tape)
    x = variance.pauli_expectations(variance.simulate(rotation_form(tape))[0])
    plan = make_plan(2, 90, bases="all")
    probs = variance.basis_probabilities(plan, x)
    dev = qml.device("default.qubit")
    for t, count in zip(snapshot_tapes(QuantumScript(tape.operations), plan, tape.wires), [10]):
        assert count == 10
        ptape = QuantumScript(t.operations, [qml.probs(wires=tape.wires)])
        exact = np.asarray(qml.execute([ptape], dev, diff_method=None)[0]).reshape(9, 4)
        assert np.allclose(probs, exact, atol=1e-12)


def test_exact_shadow_variance_matches_repeated_runs():
    """The pure estimator is unbiased on its default plan and has the predicted variance."""
    tape = _ring(2, 2, seed=5)
    tape = tape.copy(shots=400)
    circuit = rotation_form(tape)
    x = variance.pauli_expectations(variance.simulate(rotation_form(tape))[0])
    gamma = light_cone.generator_coefficients(circuit, pauli_sum(qml.Z(0), circuit.wire_order))
    var, bound = variance.shadow_variance(gamma, make_plan(2, 400), x)
    assert np.all(var <= bound + 1e-12)
    exact = _exact_grad(tape)
    reps = 400
    dev = qml.device("default.qubit", seed=11)
    tapes, fn = shadow_grad(tape, strategy="pure")
    runs = np.array(
        [np.asarray(fn(qml.execute(tapes, dev, diff_method=None))).reshape(-1) for _ in range(reps)]
    )
    live = var > 1e-12
    m = int(live.sum())
    z = norm.ppf(1 - ALPHA / (4 * m))
    # unbiased: the mean is within z exact standard errors of the exact gradient
    assert np.all(np.abs(runs.mean(0) - exact)[live] <= z * np.sqrt(var[live] / reps))
    # variance: summed squared error / predicted has mean 1 and sd <= sqrt(2 * kurtosis / reps)
    ratio = np.sum((runs - exact) ** 2) / (reps * var.sum())
    assert abs(ratio - 1) <= z * np.sqrt(3.0 / reps)


def test_allocate_chooses_the_cheaper_estimator_and_spends_the_budget():
    v, u = np.array([[9.0], [9.0]]), np.array([[0.5], [0.5]])
    alloc = allocation.allocate(v, u, 1001)
    assert alloc.shadow == 0 and alloc.ps_total in (1000, 1001)
    alloc = allocation.allocate(np.array([[0.1], [0.1]]), u, 1000)
    assert alloc.ps_total == 0 and alloc.shadow == 1000
    assert np.allclose(alloc.weights, 1.0)


def test_allocate_is_optimal_against_brute_force():
    v = np.array([[4.0], [1.0], [30.0]])
    u = np.array([[1.0], [2.0], [1.0]])
    total = 600
    alloc = allocation.allocate(v, u, total)
    assert alloc.shadow + alloc.ps_total <= total
    best = np.inf
    for t in range(0, total + 1, 10):
        for m0 in range(0, (total - t) // 2 + 1, 5):
            for m1 in range(0, (total - t) // 2 - m0 + 1, 5):
                m2 = ((total - t) - 2 * (m0 + m1)) // 2
                ms = np.array([m0, m1, m2], dtype=float)
                prec = (t / v[:, 0]) + ms / u[:, 0]
                if np.all(prec > 0):
                    best = min(best, float(np.sum(1 / prec)))
    assert alloc.mse <= best * 1.01


def test_allocate_charges_every_measured_group():
    """With G tapes per shifted circuit a component costs 2 G m shots: the split in counted
    shots is the G = 1 split of u * G, and the counted total stays within the budget."""
    v = np.array([[4.0], [1.0], [30.0]])
    u = np.array([[1.0], [2.0], [1.0]])
    one = allocation.allocate(v, 3 * u, 1200)
    three = allocation.allocate(v, u, 1200, groups=3)
    assert three.shadow + three.ps_total <= 1200
    assert three.ps_total == 6 * three.ps_shots.sum()
    assert np.isclose(three.mse, one.mse, rtol=0.02)
    assert np.all(np.abs(3 * three.ps_shots - one.ps_shots) <= 3)
    v90, u05 = np.array([[90.0], [90.0]]), np.array([[0.5], [0.5]])
    only_ps = allocation.allocate(v90, u05, 1201, groups=3)
    assert only_ps.shadow == 0 and 1201 - 6 < only_ps.ps_total <= 1201


def test_shift_variances_sum_the_measured_groups():
    obs = qml.Z(0) @ qml.Z(1) + qml.Z(1) @ qml.Z(2) + 0.7 * (qml.X(0) + qml.X(1) + qml.X(2))
    tape = _ring(3, 1, seed=4, obs=obs)
    circuit = rotation_form(tape)
    ps = output_observables(tape, circuit.wire_order)
    groups = parameter_shift.measurement_groups(ps)
    assert len(groups) == 2  # the ZZ terms and the X terms
    u = variance.shift_variances(circuit, ps, range(circuit.num_params))
    parts = [qml.Z(0) @ qml.Z(1) + qml.Z(1) @ qml.Z(2), 0.7 * (qml.X(0) + qml.X(1) + qml.X(2))]
    dev = qml.device("default.qubit")
    params = tape.get_parameters(trainable_only=True)
    for j in range(circuit.num_params):
        total = 0.0
        for sign in (1.0, -1.0):
            t = parameter_shift.shifted_tape(tape, j, sign, 1.0, params)
            for part in parts:
                var_tape = QuantumScript(t.operations, [qml.var(part)])
                total += float(qml.execute([var_tape], dev, diff_method=None)[0])
        assert np.isclose(u[j, 0], total / 4.0, atol=1e-10)


def test_plan_reports_its_source_and_exact_parameter_shift():
    tape = _ring(2, 3, seed=7).copy(shots=3000)
    p = planning.plan(tape, epsilon=0.1, delta=0.05)
    assert p.source == "simulation" and set(p.mse) == {"shadow", "parameter-shift", "auto"}
    circuit = rotation_form(tape)
    obs = output_observables(tape, circuit.wire_order)
    u = variance.shift_variances(circuit, obs, range(circuit.num_params))
    active = p.mse["parameter-shift"][:, 0] > 0
    assert np.allclose(p.mse["parameter-shift"][active], u[active] / (3000 / (2 * active.sum())))
    assert all(b > 0 for b in p.budget.values())
    assert p.total_mse()["auto"] <= 1.1 * min(
        p.total_mse()["shadow"], p.total_mse()["parameter-shift"]
    )


def test_plan_refuses_a_pilot_source():
    tape = _ring(2, 1, seed=7).copy(shots=300)
    with pytest.raises(ValueError, match="exact simulation"):
        planning.plan(tape, source="pilot")


def test_expected_shadow_variance_of_a_random_plan_includes_the_bases():
    """Two random bases on two qubits: exact E[Var | bases] + Var(E[. | bases]) by enumerating
    all 81 ordered basis pairs, against the Monte Carlo of expected_block_shadow_variance."""
    import itertools

    from pennylane_shadowgrad.plans import SnapshotPlan

    tape = _ring(2, 2, seed=5)
    circuit = rotation_form(tape)
    x = variance.pauli_expectations(variance.simulate(rotation_form(tape))[0])
    blocks = light_cone.gradient_blocks(circuit, output_observables(tape, circuit.wire_order))
    exact_mean = blocks.map(lambda s, g: g @ x)[:, 0]
    digits = list(itertools.product((1, 2, 3), repeat=2))
    second = np.zeros(blocks.num_params)
    cond_var = np.zeros(blocks.num_params)
    for b0, b1 in itertools.product(digits, repeat=2):
        plan = SnapshotPlan(np.array([b0, b1], np.uint8), np.array([3, 3]), True, 2, False)
        g = blocks.blocks[0][2][0]
        cov = np.bincount(shadow.covered_indices(plan.bases).ravel(), minlength=16) > 0
        pi = 1 - (1 - plans.single_coverage(plan)) ** 2
        mean = np.zeros(blocks.num_params)
        mean[blocks.blocks[0][1]] = g @ (x * np.where(cov, 1 / pi, 0.0))
        second += mean**2 / 81
        cond_var += variance.block_shadow_variance(blocks, plan, x)[:, 0] / 81
    exact = cond_var + second - exact_mean**2
    rng = np.random.default_rng(0)
    draws = 3000
    est = variance.expected_block_shadow_variance(
        blocks, lambda: make_plan(2, 6, bases=2, groups=2, seed=rng), x, 2 * draws, draws
    )[:, 0]
    live = exact > 1e-12
    assert np.all(est[~live] < 1e-12)
    assert np.allclose(est[live], exact[live], rtol=0.1)
    # given the bases the variance is often far smaller than over them
    assert np.all(cond_var[live] < exact[live])


def test_one_output_water_filling_is_exact():
    """The closed-form one-output split spends the budget and is never worse than the
    general Newton/bisection solver (run on the same problem with a second, empty output)."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        num = int(rng.integers(1, 30))
        a = np.where(
            rng.random(num) < 0.2, 1e300, rng.exponential(1, num) * rng.choice([0, 1, 10], num)
        )
        u = np.where(rng.random(num) < 0.1, 0.0, rng.exponential(1, num))
        budget = float(rng.integers(1, 5000))
        exact = allocation._water_fill(a, u, budget)
        general = allocation._optimal_ps(
            np.stack([a, np.zeros(num)], 1), np.stack([u, np.zeros(num)], 1), budget
        )
        safe = np.where(u > 0, u, 1.0)

        def objective(m, a=a, u=u, safe=safe):
            return np.sum(np.where(u > 0, 1.0 / (a + m / safe), 0.0))

        assert np.all(exact >= 0)
        assert objective(exact) <= objective(general) * (1 + 1e-9) + 1e-300
        if np.any((u > 0) & (a < 1e200)):
            assert np.isclose(2 * exact.sum(), budget, rtol=1e-9)
