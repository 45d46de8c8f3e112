"""Warm start of the gentle-multicopy hypothesis (issue 11, item 6)."""

import math
import warnings

import numpy as np
import pennylane as qml
import pytest
from scipy.stats import binom
from test_multicopy_signed import _random_state, _run_adversary

import pennylane_shadowgrad as sg
from pennylane_shadowgrad.multicopy import learner as mmw
from pennylane_shadowgrad.multicopy.sweep import DEFAULT_SCHEDULE
from pennylane_shadowgrad.multicopy.threshold_search import SILENT_BAND


def _warm(sigma, mixing):
    d = sigma.shape[0]
    return (1 - mixing) * sigma + mixing * np.eye(d) / d


@pytest.mark.parametrize("n,mixing,rank", [(1, 0.1, 1), (2, 0.1, 1), (2, 0.5, None), (3, 0.01, 1)])
def test_initial_potential_bounds_every_state(n, mixing, rank):
    """S(rho || sigma_0) <= -ln lambda_min(sigma_0) <= n ln 2 + ln(1/a) for every rho, with
    equality at the eigenprojector of the smallest eigenvalue (the bound is attained)."""
    rng = np.random.default_rng(n)
    sigma0 = _warm(_random_state(rng, n, rank), mixing)
    bound = mmw.initial_potential(sigma0)
    assert bound <= n * math.log(2) + math.log(1 / mixing) + 1e-12
    state = mmw.init_learner(n, 0.1, 0.0, sigma0)
    np.testing.assert_allclose(mmw.hypothesis(state), sigma0, atol=1e-12)
    for k in range(20):
        rho = _random_state(rng, n, 1 if k % 2 else None)
        assert mmw.relative_entropy(rho, state) <= bound + 1e-9
    _, evecs = np.linalg.eigh(sigma0)
    worst = np.outer(evecs[:, 0], evecs[:, 0].conj())
    assert mmw.relative_entropy(worst, state) == pytest.approx(bound, abs=1e-9)
    assert mmw.mistake_bound(n, 0.05, bound) == math.floor(bound / (2 * 0.05**2))


def test_rank_deficient_start_is_refused():
    with pytest.raises(ValueError, match="full rank"):
        mmw.init_learner(1, 0.1, 0.0, np.diag([1.0, 0.0]))
    with pytest.raises(ValueError, match="2 x 2"):
        mmw.init_learner(1, 0.1, 0.0, np.eye(4) / 4)


@pytest.mark.parametrize("n,seed", [(1, 5), (2, 6)])
def test_warm_mistake_bound_adversarial(n, seed):
    """From the worst warm start (a pure state orthogonal to rho, mixed with a = 0.1), worst-case
    signed feedback never makes more updates than -ln lambda_min(sigma_0) / (2 (c eps)^2)."""
    rng = np.random.default_rng(seed)
    rho = _random_state(rng, n, 1)
    _, evecs = np.linalg.eigh(rho)
    away = np.outer(evecs[:, 0], evecs[:, 0].conj())  # orthogonal to the pure rho
    sigma0 = _warm(away, 0.1)
    eps = 0.3
    state = mmw.init_learner(n, SILENT_BAND * eps, 0.0, sigma0)
    potential0 = mmw.initial_potential(sigma0)
    bound = mmw.mistake_bound(n, SILENT_BAND * eps, potential0)
    assert bound > mmw.mistake_bound(n, SILENT_BAND * eps)
    assert mmw.relative_entropy(rho, state) <= potential0 + 1e-9
    _run_adversary(rng, rho, state, eps, bound)


def test_warm_start_options_are_validated():
    with pytest.raises(ValueError, match="mixing"):
        sg.WarmStart(0.0)
    with pytest.raises(ValueError, match="mixing"):
        sg.WarmStart(1.5)
    ws = sg.WarmStart()
    assert repr(ws) == "WarmStart(mixing=0.1, stored=0)" and len(ws) == 0
    dev = qml.device("default.qubit")
    x = qml.numpy.array(0.4, requires_grad=True)

    @qml.qnode(dev, diff_method="gentle-multicopy", gradient_kwargs={"warm_start": "yes"})
    def bad(x):
        qml.RX(x, 0)
        return qml.expval(qml.Z(0))

    with pytest.raises(TypeError, match=r"warm_start must be a pennylane_shadowgrad\.WarmStart"):
        qml.grad(bad)(x)


def _circuit(ws, seed, wires=(0, 1), epsilon=0.2, **kwargs):
    dev = qml.device("default.qubit")
    kw = {"epsilon": epsilon, "seed": seed, "warm_start": ws, **kwargs}

    @qml.qnode(dev, diff_method="gentle-multicopy", gradient_kwargs=kw)
    def circuit(x):
        qml.RX(x[0], wires=wires[0])
        qml.RY(x[1], wires=wires[1])
        qml.CNOT(wires=wires)
        qml.RZ(x[2], wires=wires[1])
        qml.RX(x[3], wires=wires[1])
        return qml.expval(qml.Z(wires[1]) + 0.5 * qml.X(wires[0]))

    return circuit


def test_warm_start_stores_uses_and_saves_copies():
    """The certified hypothesis is stored, the next gradient starts from it (reported), its round
    limit uses the warm potential, and at nearby parameters it spends fewer copies."""
    ws = sg.WarmStart()
    x = qml.numpy.array([0.3, 0.7, 1.1, -0.4], requires_grad=True)
    with sg.record() as rec:
        qml.grad(_circuit(ws, 1))(x)
        qml.grad(_circuit(ws, 2))(x + 0.02)
    cold, warm = rec[0].report, rec[1].report
    assert cold["warm_start"] == {
        "used": False,
        "initial_potential": pytest.approx(2 * math.log(2)),
        "mixing": 0.1,
        "stored": True,
    }
    assert warm["warm_start"]["used"] and warm["warm_start"]["stored"] and len(ws) == 1
    assert 2 * math.log(2) < warm["warm_start"]["initial_potential"] <= math.log(40) + 1e-12
    assert warm["mistake_bound"] > cold["mistake_bound"]
    assert warm["constants"]["max_rounds"] == warm["mistake_bound"] + len(DEFAULT_SCHEDULE)
    assert warm["copies"]["total"] < cold["copies"]["total"]
    assert warm["learner_updates"] < cold["learner_updates"]
    ws.reset()
    assert len(ws) == 0


def test_warm_start_refuses_other_wires():
    ws = sg.WarmStart()
    x = qml.numpy.array([0.3, 0.7, 1.1, -0.4], requires_grad=True)
    qml.grad(_circuit(ws, 1))(x)
    with pytest.raises(ValueError, match="wires"):
        qml.grad(_circuit(ws, 1, wires=("a", "b")))(x)


#: Runs of the guarantee test below and its rejection count: P(Bin(RUNS, delta) >= LIMIT) < 1e-4.
RUNS, DELTA = 60, 0.05
LIMIT = int(binom.isf(1e-4, RUNS, DELTA)) + 1


@pytest.mark.parametrize("register", ["single", "two"])
def test_guarantee_from_the_worst_start(register):
    """Whatever the start, the certified gradient is within epsilon with probability 1 - delta:
    over RUNS seeded runs from the state farthest from rho (the maximally mixed state on the
    complement of its support, mixed with a = 0.1: the potential ln 40) the failures stay
    below the count that a failure rate of delta reaches with probability < 1e-4."""
    assert binom.sf(LIMIT - 1, RUNS, DELTA) < 1e-4
    dev = qml.device("default.qubit")
    x = np.array([0.3, 0.7, 1.1, -0.4])
    obs = qml.Projector([1, 0], wires=[0, 1]) if register == "two" else None

    def gates(x):
        qml.RX(x[0], wires=0)
        qml.RY(x[1], wires=1)
        qml.CNOT(wires=[0, 1])
        qml.RZ(x[2], wires=1)
        qml.RX(x[3], wires=1)

    def body(x):
        gates(x)
        return qml.expval(obs if obs is not None else qml.Z(1) + 0.5 * qml.X(0))

    def state(x):
        gates(x)
        return qml.state()

    exact = qml.grad(qml.QNode(body, dev, diff_method="backprop"))(qml.numpy.array(x))
    psi = np.asarray(qml.QNode(state, dev)(x))
    away = np.eye(4) - np.outer(psi, psi.conj())  # orthogonal to the pure output state
    away /= np.trace(away).real
    failures = 0
    for seed in range(RUNS):
        ws = sg.WarmStart()
        ws.store(0, (0, 1), away)
        kw = {"epsilon": 0.25, "delta": DELTA, "seed": 7000 + seed, "warm_start": ws}
        kw["register"] = register
        qn = qml.QNode(body, dev, diff_method="gentle-multicopy", gradient_kwargs=kw)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # an uncertified run would be an error
            with sg.record() as rec:
                g = qml.grad(qn)(qml.numpy.array(x, requires_grad=True))
        assert rec[0].report["warm_start"]["used"]
        failures += np.max(np.abs(g - exact)) > 0.25
    assert failures < LIMIT, (failures, LIMIT)


@pytest.mark.parametrize("interface", ["torch", "jax", "jax-jit"])
def test_warm_start_under_every_interface(interface):
    """The hypothesis is stored and reused when the gradient runs under torch, jax and jax.jit
    (the post-processing that fills the WarmStart runs on concrete values)."""
    ws = sg.WarmStart()
    dev = qml.device("default.qubit")
    kw = {"epsilon": 0.2, "seed": 1, "warm_start": ws}

    @qml.qnode(
        dev, interface=interface.split("-")[0], diff_method="gentle-multicopy", gradient_kwargs=kw
    )
    def circuit(x):
        qml.RX(x[0], 0)
        qml.RY(x[1], 1)
        qml.CNOT([0, 1])
        return qml.expval(qml.Z(1))

    with sg.record() as rec:
        for _ in range(2):
            if interface == "torch":
                torch = pytest.importorskip("torch")
                x = torch.tensor([0.3, 0.7], requires_grad=True, dtype=torch.float64)
                circuit(x).backward()
                g = x.grad.numpy()
            else:
                jax = pytest.importorskip("jax")
                jax.config.update("jax_enable_x64", True)
                f = jax.grad(circuit)
                f = jax.jit(f) if interface == "jax-jit" else f
                g = np.asarray(f(jax.numpy.array([0.3, 0.7])))
            assert g.shape == (2,) and np.all(np.isfinite(g))
    assert [r.report["warm_start"]["used"] for r in rec] == [False, True]
    assert len(ws) == 1
    assert rec[1].report["certified"]
