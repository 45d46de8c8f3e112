"""Guarantees of the gentle-multicopy pieces: threshold search, learner, protocol, engines."""

import numpy as np
import pytest

from pennylane_shadowgrad.multicopy import learner as mmw
from pennylane_shadowgrad.multicopy.engines import ExactEngine, ideal_fire_probability
from pennylane_shadowgrad.multicopy.sweep import protocol_constants, run_protocol
from pennylane_shadowgrad.multicopy.threshold_search import (
    THRESHOLD_HIGH,
    THRESHOLD_LOW,
    batch_size,
    draw_thresholds,
    threshold_search,
)


@pytest.mark.parametrize("eps,delta,k", [(0.1, 0.05, 100), (0.25, 0.01, 3000)])
def test_threshold_check_outside_gap_band(eps, delta, k):
    """With b = batch_size, every check errs with probability <= delta / K outside the band."""
    b = batch_size(eps, delta, k)
    for p in (0.1, 0.5, 0.85):
        for theta in (THRESHOLD_LOW * eps, THRESHOLD_HIGH * eps):
            for e in (p + 1.001 * eps, p - 1.001 * eps):  # violated: must fire
                if 0 <= e <= 1:
                    assert 1 - ideal_fire_probability(b, e, p, theta) <= delta / k
            for e in (p + eps / 4, p - eps / 4, p):  # inside eps/4: must stay silent
                assert ideal_fire_probability(b, e, p, theta) <= delta / k


def test_threshold_search_finds_violation_or_certifies():
    """Monte Carlo on the binomial law: P(wrong outcome) <= delta over 2000 searches."""
    rng = np.random.default_rng(0)
    eps, delta, m = 0.2, 0.1, 20
    b = batch_size(eps, delta, m)
    wrong = 0
    for trial in range(2000):
        p = rng.uniform(0.2, 0.8, m)
        e = p + rng.uniform(-eps / 4, eps / 4, m)
        bad = trial % 2 == 0
        if bad:
            j = int(rng.integers(m))
            e[j] = p[j] + 1.1 * eps * rng.choice([-1, 1])
        e = np.clip(e, 0, 1)

        def check(j, pj, theta, e=e):
            return abs(rng.binomial(b, e[j]) / b - pj) > theta

        res = threshold_search(range(m), p, draw_thresholds(rng, eps, m), check)
        violated = np.abs(e - p) > eps
        if res.fired is None:
            wrong += bool(violated.any())
        else:
            wrong += abs(e[res.fired] - p[res.fired]) <= eps / 4
    # Binomial(2000, 0.1) exceeds 240 with probability < 1e-3.
    assert wrong <= 240


def _random_state(rng, n):
    v = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    v /= np.linalg.norm(v)
    return np.outer(v, v.conj())


@pytest.mark.parametrize("n,seed", [(1, 0), (2, 1), (3, 2)])
def test_learner_mistake_bound_adversarial(n, seed):
    """Adversary: the effect that separates sigma from rho most, feedback pushed by eps_b."""
    rng = np.random.default_rng(seed)
    rho = _random_state(rng, n)
    tau, eps_b = 0.2, 0.05
    state = mmw.init_learner(n, tau, eps_b)
    bound = mmw.mistake_bound(n, tau - eps_b)
    for _ in range(10 * bound + 50):
        sigma = mmw.hypothesis(state)
        evals, evecs = np.linalg.eigh(sigma - rho)
        # projector on the positive (or negative) part: maximises |Tr(E (sigma - rho))|
        sign = rng.choice([-1, 1])
        keep = evals * sign > 0
        effect = evecs[:, keep] @ evecs[:, keep].conj().T
        e = float(np.real(np.trace(effect @ rho)))
        feedback = e + eps_b * rng.choice([-1, 1])
        state, _ = mmw.update(state, effect, feedback)
        assert state.updates <= bound
    sigma = mmw.hypothesis(state)
    assert abs(np.trace(sigma) - 1) < 1e-12


class MockEngine:
    """Answers from a fixed table and records every question: no state involved."""

    def __init__(self, expectations, rng):
        self.e, self.rng, self.log = np.asarray(expectations), rng, []

    def new_batch(self, size):
        self.log.append(("batch", size))

    def check(self, j, prediction, threshold):
        self.log.append(("check", j))
        return abs(self.e[j] - prediction) > threshold

    def check_signed(self, j, prediction, threshold):
        self.log.append(("check", j))
        d = self.e[j] - prediction
        return int(np.sign(d)) if abs(d) > threshold else 0

    def estimate(self, j, copies):
        self.log.append(("estimate", j, copies))
        return round(self.e[j] * copies)

    def report(self):
        return {}


@pytest.mark.parametrize("checks", ["signed", "unsigned"])
def test_protocol_learns_from_outcomes_only(checks):
    """The protocol reaches a certified hypothesis using only the mock's answers."""
    rng = np.random.default_rng(3)
    n = 2
    rho = _random_state(rng, n)
    gens = []
    for _ in range(6):
        h = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
        h = h + h.conj().T
        gens.append(h / np.abs(np.linalg.eigvalsh(h)).max())
    scale = 1.0
    truth = np.array([np.trace(g @ rho).real for g in gens])
    const = protocol_constants(n, len(gens), 0.1, 0.05, checks=checks)
    engine = MockEngine(0.5 * (1 + truth / scale), rng)
    result = run_protocol(
        n,
        len(gens),
        scale,
        lambda s: np.array([np.trace(g @ s).real for g in gens]),
        lambda j: 0.5 * (np.eye(4) + gens[j] / scale),
        engine,
        const,
        rng,
    )
    assert result.certified
    # noiseless answers: certified means every |p - e| <= 3 eps / 4 on the effects
    assert np.max(np.abs(result.values - truth)) <= 2 * scale * 0.75 * 0.1 + 1e-12
    assert engine.log[0] == ("batch", result.batch_sizes[0])
    assert [e[1] for e in engine.log if e[0] == "batch"] == result.batch_sizes
    assert [e[2] for e in engine.log if e[0] == "estimate"] == result.estimate_sizes
    if checks == "signed":
        assert not result.estimate_sizes  # signed checks need no fresh estimate
        assert result.levels == sorted(result.levels)  # coarse to fine, never back
        assert result.levels[-1] == len(const.levels) - 1
    assert result.updates <= result.mistake_bound
    checks = [entry[1] for entry in engine.log if entry[0] == "check"]
    assert len(checks) == result.checks
    assert sum(1 for entry in engine.log if entry[0] == "batch") == result.rounds


def test_exact_engine_first_check_is_binomial_and_later_disturbed():
    rng = np.random.default_rng(5)
    psi = np.array([np.cos(0.4), np.sin(0.4)], dtype=complex)
    x = np.array([[0, 1], [1, 0]], dtype=complex)
    z = np.diag([1.0, -1.0]).astype(complex)
    effects = {0: 0.5 * (np.eye(2) + z), 1: 0.5 * (np.eye(2) + x)}
    engine = ExactEngine(psi, effects.__getitem__, rng)
    engine.new_batch(10)
    engine.check(0, 0.5, 0.3)
    exact0, ideal0 = engine.fire_probabilities[0][2], engine.ideal_fire_probabilities[0][2]
    assert abs(exact0 - ideal0) < 1e-12
    engine.check(1, 0.8, 0.2)
    assert engine.report()["first_check_gap"] < 1e-12


def test_tightened_sizes_are_verified_and_below_hoeffding():
    """The exact-binomial batch and estimate sizes satisfy their own bounds and beat Hoeffding."""
    from pennylane_shadowgrad.multicopy.threshold_search import (
        anytime_delta,
        binomial_batch_size,
        check_failure_bounds,
        estimate_size,
    )

    rng = np.random.default_rng(0)
    eps, delta = 0.1, anytime_delta(0.025, 3)
    p = rng.uniform(0.05, 0.95, 40)
    b = binomial_batch_size(p, eps, delta)
    assert (
        check_failure_bounds(b, p, eps).sum() <= delta < check_failure_bounds(b // 2, p, eps).sum()
    )
    assert b < batch_size(eps, delta, len(p))
    m = estimate_size(0.02, delta)
    assert m < np.log(2 / delta) / (2 * 0.02**2)
    # Monte Carlo at the worst expectation e = 1/2: the tail stays below delta
    err = np.abs(rng.binomial(m, 0.5, 200000) / m - 0.5) > 0.02
    assert err.mean() <= delta + 4 * np.sqrt(delta / 200000)
    assert abs(sum(anytime_delta(1.0, k) for k in range(1, 100000)) - 1) < 1e-4


def test_dense_generators_match_the_shared_evaluator():
    import pennylane as qml

    from pennylane_shadowgrad.circuit import decompose_to_rotations, rotation_form
    from pennylane_shadowgrad.multicopy import hypothesis as hyp
    from pennylane_shadowgrad.multicopy.gradient import _dense_coefficients, _observable

    ops = [qml.RY(0.3, 0), qml.CNOT([0, 1]), qml.RZ(0.9, 1), qml.IsingXX(0.4, [1, 2])]
    ops += [qml.RX(-0.6, 2), qml.Hadamard(0), qml.RY(1.1, 0)]
    tape = qml.tape.QuantumScript(ops, [qml.expval(qml.Z(0) @ qml.X(2) + 0.3 * qml.Y(1))])
    tape.trainable_params = [0, 1, 2, 3, 4]
    circuit = rotation_form(decompose_to_rotations(tape))
    checks = hyp.rotation_checks(circuit)
    ob = _observable(tape.measurements[0].obs, circuit.wire_order)
    dense = hyp.DenseGenerators(
        checks, hyp.matrix_from_coefficients(_dense_coefficients(ob.paulis, 3))
    )
    sigma = _random_state(np.random.default_rng(1), 3)
    assert np.allclose(dense.predictions(sigma), hyp.predictions(checks, ob.paulis, sigma))
    for j in range(checks.num_checks):
        ref = hyp.effect_matrix(hyp.generator_coefficients(checks, ob.paulis, j), 1.3)
        assert np.allclose(dense.effect(j, 1.3), ref)


def test_sizes_depend_only_on_their_arguments():
    """No warm start carried between calls: a seeded run is reproducible whatever ran before."""
    from pennylane_shadowgrad.multicopy.threshold_search import (
        anytime_delta,
        binomial_batch_size,
        estimate_size,
    )

    rng = np.random.default_rng(3)
    p = rng.uniform(0.1, 0.9, 12)
    cases = [(p, 0.08, anytime_delta(0.025, k)) for k in (1, 7, 40)]
    first = [binomial_batch_size(*c) for c in cases]
    firsts = [estimate_size(0.005 * (1 + k), anytime_delta(0.025, k)) for k in (1, 7)]
    for eps in (0.02, 0.3, 0.05):  # other sizes in between, far from the first ones
        binomial_batch_size(rng.uniform(0.1, 0.9, 12), eps, 1e-3)
    estimate_size.cache_clear()
    estimate_size(0.3, 1e-6)
    assert [binomial_batch_size(*c) for c in cases] == first
    assert [estimate_size(0.005 * (1 + k), anytime_delta(0.025, k)) for k in (1, 7)] == firsts


@pytest.mark.parametrize("t", [0.3, 0.25, 0.15, 0.1])
@pytest.mark.parametrize("delta", [0.05, 0.005, 1e-4])
def test_small_estimate_sizes_are_the_smallest(t, delta):
    """Brute force over m = 1, 2, ...: small fresh-estimate (and parameter-shift) sizes are
    the smallest m whose rigorous tail bound holds, despite the saw-tooth of discrete tails."""
    import math

    from pennylane_shadowgrad.multicopy.threshold_search import (
        _estimate_tail_bound,
        estimate_size,
    )

    grid = np.linspace(0.0, 1.0, math.ceil(40 / t) + 1)
    grid = grid[: np.searchsorted(grid, 0.5 + t) + 1]
    smallest = next(m for m in range(1, 2000) if _estimate_tail_bound(m, t, grid, delta) <= delta)
    assert estimate_size(t, delta) == smallest
