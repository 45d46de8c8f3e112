"""Locally-biased measurement bases (biased_bases=True) and the light-cone blocks of gamma."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from _reference import exact_tape_gradient
from pennylane.tape import QuantumScript
from scipy.stats import norm
from scipy.stats import t as student_t

from pennylane_shadowgrad import plans, record, shadow_grad, variance
from pennylane_shadowgrad.circuit import output_observables, pauli_sum, rotation_form
from pennylane_shadowgrad.estimators import light_cone, shadow
from pennylane_shadowgrad.plans import make_plan

#: Family-wise false-failure probability of every statistical test in this file (< 1e-4).
ALPHA = 1e-5


def _tape(n: int, layers: int, obs, shots: int, seed: int = 4, brick: bool = False):
    rng = np.random.default_rng(seed)
    ops = []
    for layer in range(layers):
        for q in range(n):
            ops += [qml.RY(rng.uniform(0, 6), q), qml.RZ(rng.uniform(0, 6), q)]
        start = layer % 2 if brick else 0
        pairs = range(start, n - 1, 2) if brick else range(n - 1)
        ops += [qml.CNOT([q, q + 1]) for q in pairs]
    tape = QuantumScript(ops, [qml.expval(obs)], shots=shots)
    tape.trainable_params = list(range(2 * n * layers))
    return tape


def _context(tape):
    circuit = rotation_form(tape)
    obs = output_observables(tape, circuit.wire_order)
    x = variance.pauli_expectations(variance.simulate(rotation_form(tape))[0])
    return circuit, obs, x


@pytest.mark.parametrize("brick", [False, True])
def test_light_cone_blocks_are_exact(brick):
    tape = _tape(6, 2, qml.Z(3), 1000, brick=brick)
    circuit, obs, x = _context(tape)
    full = light_cone.generator_coefficients(circuit, obs[0])
    blocks = light_cone.gradient_blocks(circuit, obs)
    assert np.allclose(blocks.full()[0], full, atol=1e-12)
    if brick:  # a shallow brickwork: every block is smaller than the register
        assert max(len(s) for s, _, _ in blocks.blocks) < 6
    for plan in (make_plan(6, 1000, seed=1), make_plan(6, 300, seed=1)):
        exact = variance.shadow_variance(full, plan, x)[0]
        assert np.allclose(variance.block_shadow_variance(blocks, plan, x)[:, 0], exact, rtol=1e-9)


def test_optimal_bias_lowers_the_proxy_and_covers_every_needed_word():
    tape = _tape(3, 2, qml.X(0) @ qml.Z(1) + 0.5 * qml.Z(2), 2000)
    circuit, obs, _ = _context(tape)
    blocks = light_cone.gradient_blocks(circuit, obs)
    beta = plans.optimal_bias(blocks, floor=0.0)
    assert np.allclose(beta.sum(1), 1.0) and np.all(beta >= 0)
    uniform = np.full((3, 3), 1 / 3)
    proxy = plans.bias_proxy(blocks, beta)
    assert proxy <= plans.bias_proxy(blocks, uniform) * (1 + 1e-12)
    # coordinate descent reaches a minimum: no random perturbation does better
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = np.clip(beta + rng.normal(0, 0.02, beta.shape), 1e-6, None)
        other /= other.sum(1, keepdims=True)
        assert plans.bias_proxy(blocks, other) >= proxy * (1 - 1e-9)
    need = blocks.needed_words()
    plan = plans.biased_plan(3, 200, beta, need)
    assert not plan.random and plan.num_snapshots == 200
    idx = shadow.covered_indices(plan.bases)
    counts = np.bincount(idx.ravel(), np.repeat(plan.shots, 8), minlength=64)
    assert np.all(counts[need] >= 1)


def test_biased_complete_plan_is_unbiased_with_its_exact_variance():
    """Seeded repetitions of the pure biased estimator on its (deterministic) plan."""
    tape = _tape(3, 2, qml.X(0) @ qml.Z(1) + 0.5 * qml.Z(2), 600)
    circuit, obs, x = _context(tape)
    exact = exact_tape_gradient(tape)
    tapes, fn = shadow_grad(tape, strategy="pure", biased_bases=True, seed=0)
    blocks = light_cone.gradient_blocks(circuit, obs)
    beta = plans.optimal_bias(blocks, floor=plans.BIAS_FLOOR)  # what biased_bases=True uses
    plan = plans.biased_plan(3, 600, beta, blocks.needed_words(), seed=np.random.default_rng(0))
    assert not plan.random and plan.beta is not None
    var = variance.block_shadow_variance(blocks, plan, x)[:, 0]
    uniform = variance.shadow_variance(blocks.full()[0], make_plan(3, 600), x)[0]
    assert var.sum() < uniform.sum()  # this case gains (benchmarks/biased_bases.py)
    reps = 120
    dev = qml.device("default.qubit", seed=23)
    runs = np.array(
        [np.asarray(fn(qml.execute(tapes, dev, diff_method=None)), float) for _ in range(reps)]
    )
    live = var > 1e-12
    assert np.allclose(runs[:, ~live], exact[~live], atol=1e-10)
    z = norm.ppf(1 - ALPHA / (4 * live.sum()))
    assert np.all(np.abs(runs.mean(0) - exact)[live] <= z * np.sqrt(var[live] / reps))
    ratio = np.sum((runs - exact) ** 2) / (reps * var.sum())
    assert abs(ratio - 1) <= z * np.sqrt(3.0 / reps)


@pytest.mark.slow
def test_biased_random_plan_is_unbiased():
    """Random biased bases (fresh per repetition): the coverage correction removes the bias."""
    tape = _tape(3, 2, qml.Z(0) @ qml.Z(1) + 0.7 * qml.X(2), 600)
    exact = exact_tape_gradient(tape)
    dev = qml.device("default.qubit", seed=29)
    reps = 300
    runs = []
    for r in range(reps):
        tapes, fn = shadow_grad(tape, strategy="pure", biased_bases=True, bases=12, seed=r)
        runs.append(np.asarray(fn(qml.execute(tapes, dev, diff_method=None)), float))
    runs = np.array(runs)
    sd = runs.std(0, ddof=1)
    live = sd > 1e-12
    q = student_t.ppf(1 - ALPHA / (2 * live.sum()), df=reps - 1)
    assert np.all(np.abs(runs.mean(0) - exact)[live] <= q * sd[live] / np.sqrt(reps))


def test_biased_bases_in_auto_and_refusals():
    dev = qml.device("default.qubit", seed=5)
    tape = _tape(2, 6, qml.Z(0), 3000)
    tapes, fn = shadow_grad(tape, biased_bases=True, seed=1)
    with qml.Tracker(dev) as tracker, record() as rec:
        g = np.asarray(fn(qml.execute(tapes, dev, diff_method=None)), float)
    assert g.shape == (24,) and tracker.totals["shots"] <= 3000
    assert rec[0].strategy == "auto" and rec[0].split["shadow_snapshots"] > 0
    # 24 components: z = 5 keeps the family-wise false-failure rate below 1e-4 (t_19 tails)
    assert np.all(np.abs(g - exact_tape_gradient(tape)) <= 5 * rec[0].stderr[0] + 1e-9)
    var_tape = QuantumScript(tape.operations, [qml.var(qml.Z(0))], shots=100)
    var_tape.trainable_params = tape.trainable_params
    with pytest.raises(ValueError, match="biased_bases"):
        shadow_grad(var_tape, strategy="pure", biased_bases=True)


def test_local_register_pieces():
    tape = _tape(4, 1, qml.Z(1), 100, brick=True)
    circuit, obs, _ = _context(tape)
    support = light_cone.gradient_support(circuit, obs)
    assert set(support.tolist()) <= {0, 1, 2} and 1 in support
    outcomes = [np.array([0b1010, 0b0110])]
    assert light_cone.local_outcomes(outcomes, 4, np.array([1, 3]))[0].tolist() == [0b00, 0b10]
    ps = pauli_sum(qml.Z(1), circuit.wire_order)
    assert light_cone.restrict_pauli_sum(ps, np.array([1, 2])).digits.tolist() == [[3, 0]]
