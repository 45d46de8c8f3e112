"""Signed checks, the conservative-target learner, the coarse-to-fine schedule (issue 11)."""

import math

import numpy as np
import pennylane as qml
import pytest

import pennylane_shadowgrad as sg
from pennylane_shadowgrad.multicopy import learner as mmw
from pennylane_shadowgrad.multicopy.engines import (
    ExactEngine,
    StatisticalEngine,
    ideal_signed_probabilities,
)
from pennylane_shadowgrad.multicopy.sweep import (
    DEFAULT_SCHEDULE,
    levels_for,
    protocol_constants,
)
from pennylane_shadowgrad.multicopy.threshold_search import (
    FIXED_THRESHOLD,
    SILENT_BAND,
    THRESHOLD_HIGH,
    THRESHOLD_LOW,
    anytime_delta,
    binomial_batch_size,
    check_failure_bounds,
)


def _random_state(rng, n, rank=None):
    d = 2**n
    k = rank or d
    a = rng.normal(size=(d, k)) + 1j * rng.normal(size=(d, k))
    rho = a @ a.conj().T
    return rho / np.trace(rho).real


def _adversarial_effect(rng, rho, sigma, deviation, tries=20):
    """``(E, sign)`` with ``Tr(E (rho - sigma)) = sign * deviation`` exactly (the smallest legal
    deviation) and ``Tr(E sigma)`` near 1/2 (where the step's gain ``KL(e' || p)`` is closest to
    its floor ``2 (e' - p)^2``): ``E = (I + a H) / 2`` along a random direction ``H`` with
    ``||H|| = 1``, else along the sign of ``rho - sigma`` (the best separating direction).
    ``None`` when no effect deviates by more than ``deviation``."""
    d = rho.shape[0]
    diff = rho - sigma
    for attempt in range(tries + 1):
        if attempt < tries:
            h = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
            h = h + h.conj().T
            h /= np.abs(np.linalg.eigvalsh(h)).max()
        else:
            evals, evecs = np.linalg.eigh(diff)
            h = (evecs * np.sign(evals)) @ evecs.conj().T
        t = float(np.real(np.trace(h @ diff))) / 2  # Tr(E diff) = a t
        if abs(t) > deviation:
            a = deviation / abs(t)
            return 0.5 * (np.eye(d) + a * h), int(np.sign(t))
    return None


def _run_adversary(rng, rho, state, eps, bound):
    """Feed the learner worst-case signed updates until no effect deviates by more than
    c eps_l; every update must gain at least 2 (c eps_l)^2 of relative entropy and the count
    must stay within ``bound``. Returns the final state."""
    levels = levels_for(eps, DEFAULT_SCHEDULE)
    potential = mmw.relative_entropy(rho, state)
    stuck = 0
    while stuck < 20:
        # mostly the finest level: its steps gain least, so they make the most updates
        eps_l = levels[-1] if rng.random() < 0.75 else levels[int(rng.integers(len(levels)))]
        step = SILENT_BAND * eps_l
        sigma = mmw.hypothesis(state)
        found = _adversarial_effect(rng, rho, sigma, step * (1 + 1e-6))
        if found is None:
            stuck += 1
            continue
        effect, sign = found
        p = float(np.real(np.trace(effect @ sigma)))
        state = mmw.signed_update(state, effect, p + sign * step)
        new_potential = mmw.relative_entropy(rho, state)
        assert potential - new_potential >= 2 * step**2 - 1e-9
        potential = new_potential
        assert state.updates <= bound
    return state


@pytest.mark.parametrize("n,seed,rank", [(1, 0, None), (2, 1, 1), (2, 2, None), (3, 3, 1)])
def test_signed_mistake_bound_adversarial(n, seed, rank):
    """Worst-case signed feedback: every update is the smallest legal step (deviation just above
    c eps_l at a level drawn from the schedule, prediction near 1/2, random directions, the sign
    the truth dictates). The relative entropy drops by at least 2 (c eps_l)^2 per update and the
    count never exceeds n ln 2 / (2 (c eps)^2), until no effect deviates by more than c eps_l."""
    rng = np.random.default_rng(seed)
    rho = _random_state(rng, n, rank)
    eps = 0.3
    state = mmw.init_learner(n, SILENT_BAND * eps, 0.0)
    bound = mmw.mistake_bound(n, SILENT_BAND * eps)
    assert mmw.relative_entropy(rho, state) <= n * math.log(2) + 1e-9
    state = _run_adversary(rng, rho, state, eps, bound)
    assert state.updates >= bound / 20  # the adversary does make the learner work


def test_signed_failure_bound_covers_wrong_sign():
    """check_failure_bounds bounds every misbehaviour of a signed check, for every e: silent
    with |e - p| > eps, firing high with e <= p + eps/4, firing low with e >= p - eps/4."""
    eps = 0.2
    for b in (40, 150, 400):
        for p in (0.05, 0.3, 0.5, 0.9):
            bound = check_failure_bounds(b, np.array([p]), eps)[0]
            for theta in np.linspace(THRESHOLD_LOW * eps, THRESHOLD_HIGH * eps, 5):
                for e in np.linspace(0, 1, 201):
                    high, low = ideal_signed_probabilities(b, e, p, theta)
                    fail = 0.0
                    if abs(e - p) > eps:
                        fail = 1 - high if e > p else 1 - low  # silent or wrong side
                    else:
                        if e <= p + SILENT_BAND * eps:
                            fail += high
                        if e >= p - SILENT_BAND * eps:
                            fail += low
                    assert fail <= bound + 1e-12, (b, p, theta, e, fail, bound)


def test_fixed_thresholds_size_smaller_batches():
    p = np.full(50, 0.5)
    rand = binomial_batch_size(p, 0.2, 0.01)
    fixed = binomial_batch_size(p, 0.2, 0.01, FIXED_THRESHOLD, FIXED_THRESHOLD)
    assert fixed < rand
    bounds = check_failure_bounds(fixed, p, 0.2, False, FIXED_THRESHOLD, FIXED_THRESHOLD)
    assert bounds.sum() <= 0.01


def test_schedule_levels_and_union_bound():
    assert levels_for(0.1, DEFAULT_SCHEDULE) == pytest.approx((0.3, 0.2, 0.14, 0.1))
    assert levels_for(0.4, DEFAULT_SCHEDULE) == pytest.approx((0.8, 0.56, 0.4))  # 1.2 dropped
    with pytest.raises(ValueError, match=">= 1"):
        levels_for(0.1, (0.5,))
    const = protocol_constants(2, 10, 0.1, 0.05)
    assert const.signed and const.levels == pytest.approx((0.3, 0.2, 0.14, 0.1))
    assert const.max_rounds == const.mistake_bound + 4
    assert const.mistake_bound == mmw.mistake_bound(2, 0.025)
    # rounds are counted over all levels: round r's batch spends delta 6/(pi^2 r^2)
    p = np.full(10, 0.5)
    assert const.batch_for(5, p, 0.2) == binomial_batch_size(p, 0.2, anytime_delta(0.05, 5))
    assert sum(anytime_delta(0.05, r) for r in range(1, 200000)) < 0.05


def test_calibrated_is_removed_with_a_clear_error():
    with pytest.raises(ValueError, match=r"removed.*signed checks"):
        protocol_constants(2, 10, 0.1, 0.05, mode="calibrated")
    dev = qml.device("default.qubit")

    @qml.qnode(dev, diff_method="gentle-multicopy", gradient_kwargs={"constants": "calibrated"})
    def f(x):
        qml.RX(x, 0)
        return qml.expval(qml.Z(0))

    with pytest.raises(ValueError, match="constants='calibrated' was removed"):
        qml.grad(f)(qml.numpy.array(0.3, requires_grad=True))


def test_engines_sign_matches_counts():
    """Statistical and exact engines: a firing's sign is the side of the batch average."""
    rng = np.random.default_rng(0)
    eng = StatisticalEngine(np.array([0.9, 0.1]), rng)
    eng.new_batch(200)
    assert eng.check_signed(0, 0.5, 0.1) == 1 and eng.check_signed(1, 0.5, 0.1) == -1
    eng.new_batch(200)
    assert eng.check_signed(0, 0.9, 0.1) == 0
    psi = np.array([1.0, 0.0], dtype=complex)
    z = np.diag([1.0, 0.0]).astype(complex)
    ex = ExactEngine(psi, lambda j: z if j == 0 else np.eye(2) - z, rng)
    ex.new_batch(6)
    assert ex.check_signed(0, 0.5, 0.2) == 1
    ex.new_batch(6)
    assert ex.check_signed(1, 0.5, 0.2) == -1


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"thresholds": "fixed"},
        {"checks": "unsigned"},
        {"schedule": (1,)},
        {"shadow_baseline": True},
    ],
)
def test_gradient_options_within_epsilon(options):
    dev = qml.device("default.qubit")
    eps = 0.2

    def f(x):
        qml.RY(x[0], 0)
        qml.CNOT([0, 1])
        qml.PauliRot(x[1], "XY", [0, 1])
        qml.RZ(x[2], 1)
        return qml.expval(0.6 * qml.Z(0) @ qml.Z(1) + 0.4 * qml.X(0))

    qn = qml.QNode(
        f,
        dev,
        diff_method="gentle-multicopy",
        gradient_kwargs={"epsilon": eps, "seed": 3, **options},
    )
    x = qml.numpy.array([0.4, 1.1, -0.7], requires_grad=True)
    with sg.record() as rec:
        g = qml.grad(qn)(x)
    exact = qml.grad(qml.QNode(f, dev, diff_method="backprop"))(x)
    assert np.max(np.abs(g - exact)) <= eps
    rep = rec[0].report
    assert rep["certified"]
    c = rep["constants"]
    assert c["checks"] == options.get("checks", "signed")
    if c["checks"] == "signed":
        assert rep["copies"]["fresh_estimate"] == 0
        assert sum(c["batch_copies_per_level"]) == rep["copies"]["batch"]
    if options.get("thresholds") == "fixed":
        assert "undisturbed-copies model" in c["source"]
        assert "undisturbed-copies model" in c["thresholds_validity"]
    else:
        assert "gentleness" in c["thresholds_validity"]
    assert "union bound over rotations" in rep["parameter_shift"]["sizing"]
    if options.get("shadow_baseline"):
        assert rep["shadow"]["snapshots"] > 0 and "NORMAL" in rep["shadow"]["sizing"]
    else:
        assert "shadow" not in rep
