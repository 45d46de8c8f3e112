"""The DEFAULT path of ``diff_method="shadow"`` (no gradient_kwargs: ``strategy="auto"``).

Every value is checked against an independent truth: ``diff_method="backprop"`` on a
shot-free ``default.qubit``. Statistical checks are per-component Student-t tests with the
record's own standard error and degrees of freedom; their family-wise false-failure rate over
the whole (non-slow) file is below ``ALPHA`` (Bonferroni over at most ``MAX_CHECKS`` checks,
asserted in ``test_check_budget``).
"""

from __future__ import annotations

import importlib.util
import itertools
import pathlib
import sys
import warnings

import numpy as np
import pennylane as qml
import pytest
from pennylane.tape import QuantumScript
from scipy.stats import t as student_t

import pennylane_shadowgrad as sg
from pennylane_shadowgrad import registration, shadow_grad

#: Family-wise false-failure probability of all statistical checks of the non-slow tests.
ALPHA = 1e-4
#: Upper bound on the number of two-sided per-component checks (see ``test_check_budget``).
MAX_CHECKS = 1000
#: Two-sided per-check level.
ALPHA_CHECK = ALPHA / MAX_CHECKS
#: Estimates with a standard error of exactly 0 must be exact up to rounding.
EXACT_TOL = 1e-9
#: A standard error at or below this is a claim of exactness (a jackknife's rounding residue).
ZERO_SE = 1e-12

SHOTS = 2000


def quantile(dof) -> np.ndarray:
    """Two-sided Student-t quantile at level ``ALPHA_CHECK`` (``dof = inf``: the normal one)."""
    return student_t.ppf(1 - ALPHA_CHECK / 2, np.asarray(dof, dtype=float))


def exact_grad(circuit, x, wires=None):
    """``qml.grad`` of ``circuit`` with ``diff_method="backprop"`` (no shots)."""
    dev = qml.device("default.qubit", wires=wires)
    with warnings.catch_warnings():  # autograd's complex-to-real cast inside backprop
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        return np.asarray(qml.grad(qml.QNode(circuit, dev, diff_method="backprop"))(x), float)


def shadow_grad_with_record(circuit, x, shots, seed, wires=None):
    """``qml.grad`` with ``diff_method="shadow"`` (default options) and its one record."""
    dev = qml.device("default.qubit", wires=wires, seed=seed)
    qnode = qml.QNode(circuit, dev, diff_method="shadow", shots=shots)
    with sg.record() as rec:
        g = np.asarray(qml.grad(qnode)(x), float)
    assert len(rec) == 1
    assert rec[0].strategy == "auto"
    return g, rec[0]


def assert_within_error_bars(g, exact, rec, label=""):
    """``|g - exact| <= q(dof) * se + EXACT_TOL`` for every component (tape params = args)."""
    g, exact = np.ravel(g), np.ravel(exact)
    se = np.ravel(rec.stderr[0])
    dof = np.ravel(rec.dof[0])
    assert se.shape == g.shape == dof.shape, label
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(se)) and np.all(se >= 0), label
    q = np.where(se > 0, quantile(np.where(np.isnan(dof), 1.0, dof)), 0.0)
    bound = q * se + EXACT_TOL
    bad = np.abs(g - exact) > bound
    assert not bad.any(), (
        f"{label}: components {np.flatnonzero(bad)}: estimate {g[bad]}, exact {exact[bad]}, "
        f"stderr {se[bad]}, dof {dof[bad]}, bound {bound[bad]}"
    )


# ---------------------------------------------------------------------------------------------
# 1. Every single Pauli rotation at Clifford angles, every single-qubit Pauli observable
# ---------------------------------------------------------------------------------------------

WORDS = ["".join(w) for w in itertools.product("XYZ", repeat=2)]  # all 9 two-qubit words
GATES = [f"{name}@{w}" for name in ("RX", "RY", "RZ", "PhaseShift") for w in (0, 1)] + [
    f"PauliRot@{word}" for word in WORDS
]
OBSERVABLES = [(p, w) for p in "XYZ" for w in (0, 1)]
ANGLES = [k * np.pi / 2 for k in range(4)]


def _preparation():
    """A fixed, entangling, non-Clifford preparation (RZ/PhaseShift gradients are non-zero)."""
    qml.RY(0.7, wires=0)
    qml.RY(1.1, wires=1)
    qml.CNOT(wires=[0, 1])
    qml.RZ(0.4, wires=0)
    qml.RX(-0.5, wires=1)


def _rotation_circuit(gate: str, obs):
    name, arg = gate.split("@")

    def circuit(x):
        _preparation()
        if name == "PauliRot":
            qml.PauliRot(x, arg, wires=[0, 1])
        else:
            getattr(qml, name)(x, wires=int(arg))
        return qml.expval(getattr(qml, obs[0])(obs[1]))

    return circuit


@pytest.mark.parametrize("gate", GATES)
def test_single_rotation_at_clifford_angles(gate):
    g_idx = GATES.index(gate)
    live = 0
    for k, angle in enumerate(ANGLES):
        for o_idx, obs in enumerate(OBSERVABLES):
            circuit = _rotation_circuit(gate, obs)
            x = qml.numpy.array(angle, requires_grad=True)
            exact = exact_grad(circuit, x)
            seed = 1000 * g_idx + 10 * k + o_idx
            g, rec = shadow_grad_with_record(circuit, x, SHOTS, seed)
            assert g.shape == ()
            assert_within_error_bars(g, exact, rec, f"{gate} at {k}*pi/2, {obs}")
            live += int(np.ravel(rec.stderr[0])[0] > 0)
    assert live > 0  # the test is not vacuous


# ---------------------------------------------------------------------------------------------
# Random circuits with all angles multiples of pi/2 (stabilizer states)
# ---------------------------------------------------------------------------------------------


def _random_clifford_ops(n: int, seed: int):
    """``[(name, wires)]`` and the angles (multiples of pi/2) of a random circuit."""
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(3 * n):
        r = rng.random()
        if r < 0.55:
            ops.append((("RX", "RY", "RZ")[int(rng.integers(3))], [int(rng.integers(n))]))
        elif r < 0.7:
            a, b = rng.choice(n, size=2, replace=False)
            word = "".join("XYZ"[int(i)] for i in rng.integers(3, size=2))
            ops.append((f"PauliRot:{word}", [int(a), int(b)]))
        else:
            a, b = rng.choice(n, size=2, replace=False)
            ops.append((("CNOT", "CZ")[int(rng.integers(2))], [int(a), int(b)]))
    num = sum(1 for name, _ in ops if name[0] in "RP")
    angles = rng.integers(0, 4, size=num) * np.pi / 2
    return ops, angles


def _random_word(rng, n: int):
    weight = int(rng.integers(1, n + 1))
    support = sorted(rng.choice(n, size=weight, replace=False).tolist())
    return qml.prod(*[getattr(qml, "XYZ"[int(rng.integers(3))])(q) for q in support])


def _random_observable(n: int, seed: int, kind: str):
    rng = np.random.default_rng(10_000 + 7 * seed + {"pauli": 0, "sum": 1, "ham": 2}[kind])
    if kind == "pauli":
        return _random_word(rng, n)
    words = [_random_word(rng, n) for _ in range(3)]
    coeffs = rng.uniform(-1, 1, 3)
    if kind == "sum":
        return qml.sum(*[qml.s_prod(float(c), w) for c, w in zip(coeffs, words)])
    return qml.Hamiltonian([*coeffs.tolist(), 0.3], [*words, qml.Identity(0)])


def _ops_circuit(ops, obs):
    def circuit(x):
        k = 0
        for name, wires in ops:
            if name.startswith("PauliRot"):
                qml.PauliRot(x[k], name.split(":")[1], wires=wires)
                k += 1
            elif name[0] == "R":
                getattr(qml, name)(x[k], wires=wires)
                k += 1
            else:
                getattr(qml, name)(wires=wires)
        return qml.expval(obs)

    return circuit


RANDOM_CASES = [(n, seed) for n in (2, 3, 4) for seed in range(3)]
RANDOM_KINDS = ("pauli", "sum", "ham")


@pytest.mark.parametrize("n, seed", RANDOM_CASES)
def test_random_clifford_circuits(n, seed):
    ops, angles = _random_clifford_ops(n, seed)
    x = qml.numpy.array(angles, requires_grad=True)
    for kind in RANDOM_KINDS:
        circuit = _ops_circuit(ops, _random_observable(n, seed, kind))
        exact = exact_grad(circuit, x, wires=n)
        g, rec = shadow_grad_with_record(circuit, x, SHOTS, 100 * n + seed, wires=n)
        assert g.shape == angles.shape
        assert_within_error_bars(g, exact, rec, f"n={n} seed={seed} {kind}")


# ---------------------------------------------------------------------------------------------
# 2. Tiny budgets and shot vectors with 1-shot entries
# ---------------------------------------------------------------------------------------------


def _one_qubit(x):
    qml.RY(x[0], wires=0)
    qml.RZ(x[1], wires=0)
    return qml.expval(qml.X(0))


def _two_qubit(x):
    qml.RY(x[0], wires=0)
    qml.RX(x[1], wires=1)
    qml.CNOT(wires=[0, 1])
    qml.RZ(x[2], wires=1)
    return qml.expval(qml.Z(0) @ qml.X(1))


def _two_qubit_multi(x):
    qml.RY(x[0], wires=0)
    qml.RX(x[1], wires=1)
    qml.CNOT(wires=[0, 1])
    qml.RZ(x[2], wires=1)
    return qml.expval(qml.X(1)), qml.probs(wires=[0])


TINY = {
    "one_qubit": (_one_qubit, 1, [0.4, 0.3]),
    "two_qubit": (_two_qubit, 2, [0.4, 0.3, 0.8]),
}
TINY_CASES = [
    (name, shots)
    for name, (_, n, _) in TINY.items()
    for shots in sorted({1, 2, 3**n - 1, 3**n, 3**n + 1})
]


def _shapes(tree):
    if isinstance(tree, tuple | list):
        return tuple(_shapes(t) for t in tree)
    return np.shape(tree)


def _leaves(tree):
    if isinstance(tree, tuple | list):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [np.asarray(tree, float)]


@pytest.mark.parametrize("name, shots", TINY_CASES)
def test_tiny_budget_gradients_are_finite_and_shaped(name, shots):
    circuit, _, x0 = TINY[name]
    x = qml.numpy.array(x0, requires_grad=True)
    for seed in range(5):
        dev = qml.device("default.qubit", seed=seed)
        qnode = qml.QNode(circuit, dev, diff_method="shadow", shots=shots)
        g = np.asarray(qml.grad(qnode)(x), float)
        assert g.shape == x.shape and np.all(np.isfinite(g))
        with sg.record() as rec:
            g = np.asarray(qml.grad(qnode)(x), float)
        assert g.shape == x.shape and np.all(np.isfinite(g))
        assert len(rec) == 1 and rec[0].strategy == "auto"
        assert np.shape(rec[0].stderr[0]) == x.shape
        split = rec[0].split
        assert split["shadow_snapshots"] + split["parameter_shift_shots"] <= shots


@pytest.mark.parametrize("name, shots", TINY_CASES)
def test_tiny_budget_error_bars_never_claim_exactness(name, shots):
    """A standard error of 0 says the estimate is exact; at a tiny budget it is not.

    Either the record gives a positive (above rounding, ``ZERO_SE``) or NaN (unknown) standard
    error, or the component must equal the exact gradient.
    """
    circuit, _, x0 = TINY[name]
    x = qml.numpy.array(x0, requires_grad=True)
    exact = exact_grad(circuit, x)
    for seed in range(5):
        g, rec = shadow_grad_with_record(circuit, x, shots, seed)
        se = np.ravel(rec.stderr[0])
        wrong = (se <= ZERO_SE) & (np.abs(g - exact) > EXACT_TOL)
        assert not wrong.any(), (
            f"shots={shots} seed={seed}: stderr 0 for components {np.flatnonzero(wrong)} with "
            f"estimate {g[wrong]} != exact {exact[wrong]} (groups={rec.groups}, "
            f"split={rec.split['shadow_snapshots']}+{rec.split['parameter_shift_shots']})"
        )


UNBIASED_REPS = 200
UNBIASED_CASES = [("one_qubit", 2), ("two_qubit", 2)]


@pytest.mark.parametrize("name, shots", UNBIASED_CASES)
def test_tiny_budget_is_unbiased(name, shots):
    """At ``shots=2`` (fewer than ``3**n`` bases) the default round is snapshots only, on
    random i.i.d. bases with the coverage-corrected estimator, which is unbiased by
    construction: the mean over 200 seeds passes a per-component t-test."""
    circuit, _, x0 = TINY[name]
    x = qml.numpy.array(x0, requires_grad=True)
    exact = exact_grad(circuit, x)
    runs = []
    for seed in range(UNBIASED_REPS):
        dev = qml.device("default.qubit", seed=seed)
        qnode = qml.QNode(circuit, dev, diff_method="shadow", shots=shots)
        runs.append(np.asarray(qml.grad(qnode)(x), float))
    runs = np.array(runs)
    assert np.all(np.isfinite(runs))
    mean, sd = runs.mean(0), runs.std(0, ddof=1)
    q = student_t.ppf(1 - ALPHA_CHECK / 2, UNBIASED_REPS - 1)
    tol = q * sd / np.sqrt(UNBIASED_REPS) + EXACT_TOL
    assert np.all(np.abs(mean - exact) <= tol), (mean, exact, tol)
    assert np.all(sd[np.abs(exact) > 0.1] > 0)  # the test is not vacuous


SHOT_VECTORS = [[1, 2, 100], [(1, 3)], [1, 3**2 - 1, 3**2]]


@pytest.mark.parametrize("shots", SHOT_VECTORS, ids=str)
@pytest.mark.parametrize("circuit", [_two_qubit, _two_qubit_multi], ids=["expval", "multi"])
def test_shot_vectors_with_one_shot_entries(circuit, shots):
    x = qml.numpy.array([0.4, 0.3, 0.8], requires_grad=True)
    entries = qml.measurements.Shots(shots).num_copies
    dev = qml.device("default.qubit", seed=4)
    ps = qml.gradients.param_shift(qml.QNode(circuit, dev, shots=shots))(x)
    qnode = qml.QNode(circuit, dev, diff_method="shadow", shots=shots)
    with sg.record() as rec:
        jac = shadow_grad(qnode)(x)
    assert len(rec) == entries
    assert _shapes(jac) == _shapes(ps)
    assert len(jac) == entries
    assert all(np.all(np.isfinite(leaf)) for leaf in _leaves(jac))
    # through the interface (autograd): a stacked output, one row per shot-vector entry
    ps_qnode = qml.QNode(circuit, dev, diff_method="parameter-shift", shots=shots)

    def stacked(qn):
        def f(x):
            out = qn(x)
            flat = [qml.math.hstack(o) if isinstance(o, tuple) else o for o in out]
            return qml.math.stack(flat)

        return f

    with sg.record() as rec:
        jac_i = qml.jacobian(stacked(qnode))(x)
    assert len(rec) == entries
    assert np.shape(jac_i) == np.shape(qml.jacobian(stacked(ps_qnode))(x))
    assert np.all(np.isfinite(jac_i))


# ---------------------------------------------------------------------------------------------
# 3. One device batch per gradient, and the shot accounting
# ---------------------------------------------------------------------------------------------


def _tracker_circuit(obs):
    def circuit(x):
        qml.RY(x[0], wires=0)
        qml.RX(x[1], wires=1)
        qml.CNOT(wires=[0, 1])
        qml.RY(x[2], wires=2)
        qml.CZ(wires=[1, 2])
        qml.RZ(x[3], wires=2)
        return qml.expval(obs)

    return circuit


def _grad_batches_and_shots(circuit, diff_method, shots, seed=0):
    """(batches, gradient shots, records) of one ``qml.grad`` (``qml.jacobian`` of the stacked
    output for a shot vector); the forward pass's shots are measured by a separate Tracker on
    the same QNode."""
    x = qml.numpy.array([0.4, 0.3, 0.8, 1.3], requires_grad=True)
    dev = qml.device("default.qubit", wires=3, seed=seed)
    qnode = qml.QNode(circuit, dev, diff_method=diff_method, shots=shots)
    with qml.Tracker(dev) as forward:
        qnode(x)
    with qml.Tracker(dev) as tracker, sg.record() as rec:
        if qnode.shots.has_partitioned_shots:  # one output per entry: a stacked Jacobian
            qml.jacobian(lambda x: qml.math.stack(qnode(x)))(x)
        else:
            qml.grad(qnode)(x)
    assert forward.totals["batches"] == 1
    return tracker.totals["batches"], tracker.totals["shots"] - forward.totals["shots"], rec


def test_tracker_convention_parameter_shift():
    batches, grad_shots, _ = _grad_batches_and_shots(
        _tracker_circuit(qml.Z(2)), "parameter-shift", 100
    )
    assert batches == 2  # forward pass + one batch of shifted tapes
    assert grad_shots == 2 * 4 * 100


TRACKER_OBS = {
    "pauli": qml.Z(2),
    "word": qml.X(0) @ qml.Y(2),
    "hamiltonian": qml.Hamiltonian([0.5, -0.8, 0.3], [qml.Z(0) @ qml.Z(1), qml.X(2), qml.Y(1)]),
}


@pytest.mark.parametrize("obs", TRACKER_OBS)
@pytest.mark.parametrize("shots", [1, 2, 7, 100, 333, 2000])
def test_one_batch_per_gradient_and_budget(obs, shots):
    batches, grad_shots, rec = _grad_batches_and_shots(
        _tracker_circuit(TRACKER_OBS[obs]), "shadow", shots, seed=shots
    )
    assert batches == 2
    split = rec[0].split
    assert grad_shots == split["shadow_snapshots"] + split["parameter_shift_shots"]
    assert grad_shots <= shots
    # snapshots take whatever the shifted tapes leave; without snapshots, the shifted tapes'
    # rounding leaves less than one shot of every group (2 G shots per shot per tape)
    groups = split["tapes_per_shifted_circuit"]
    slack = 0 if split["shadow_snapshots"] > 0 else 2 * groups - 1
    assert grad_shots >= shots - slack
    if groups == 1:
        assert grad_shots >= shots - 1


def test_one_batch_with_a_shot_vector():
    batches, grad_shots, rec = _grad_batches_and_shots(
        _tracker_circuit(qml.Z(2)), "shadow", [(100, 2), 1, 57]
    )
    assert batches == 2
    assert len(rec) == 4
    assert grad_shots == sum(
        r.split["shadow_snapshots"] + r.split["parameter_shift_shots"] for r in rec
    )
    assert 258 - 4 <= grad_shots <= 258


# ---------------------------------------------------------------------------------------------
# 4. The processing function executes nothing and is deterministic
# ---------------------------------------------------------------------------------------------


def _purity_tape(obs, shots):
    ops = [
        qml.RY(0.4, 0),
        qml.RX(0.3, 1),
        qml.CNOT([0, 1]),
        qml.RZ(0.8, 1),
        qml.RY(1.2, 2),
        qml.CZ([1, 2]),
    ]
    tape = QuantumScript(ops, [qml.expval(obs), qml.probs(wires=[0])], shots=shots)
    tape.trainable_params = [0, 1, 2, 3]
    return tape


@pytest.mark.parametrize(
    "obs, shots",
    [
        (qml.X(1) @ qml.Z(0) + 0.5 * qml.Y(2), 3000),
        (qml.Z(2), 50),
        (qml.Z(1), 1),
        (qml.X(1) + qml.Z(2), [10, 300, (1, 2)]),
    ],
)
def test_processing_is_pure(obs, shots):
    tape = _purity_tape(obs, shots)
    tapes, fn = shadow_grad(tape)
    dev = qml.device("default.qubit", seed=5)
    with qml.Tracker(dev) as control:
        res = qml.execute(tapes, dev, diff_method=None)
    assert control.totals.get("executions", 0) > 0  # the Tracker sees this device
    with qml.Tracker(dev) as tracker:
        first, second = fn(res), fn(res)
        with sg.record() as rec:
            third, fourth = fn(res), fn(res)
    assert tracker.totals.get("executions", 0) == 0
    assert tracker.totals.get("batches", 0) == 0
    for other in (second, third, fourth):
        assert _shapes(other) == _shapes(first)
        for a, b in zip(_leaves(first), _leaves(other), strict=True):
            np.testing.assert_array_equal(a, b)
    half = len(rec) // 2
    assert half == qml.measurements.Shots(shots).num_copies
    for a, b in zip(rec[:half], rec[half:], strict=True):
        for ja, jb in zip(a.jacobian + a.stderr, b.jacobian + b.stderr, strict=True):
            np.testing.assert_array_equal(ja, jb)


# ---------------------------------------------------------------------------------------------
# 5. diff_method=shadow_grad is "shadow", with or without the string registration
# ---------------------------------------------------------------------------------------------


def _registration_circuit(x):
    qml.RY(x[0], wires=0)
    qml.RX(x[1], wires=1)
    qml.CNOT(wires=[0, 1])
    qml.RZ(x[2], wires=1)
    return qml.expval(qml.X(1) @ qml.Z(0) + 0.4 * qml.Y(1))


def _grad_and_record(diff_method, gradient_kwargs=None):
    x = qml.numpy.array([0.4, 0.3, 0.8], requires_grad=True)
    dev = qml.device("default.qubit", seed=21)
    kwargs = {} if gradient_kwargs is None else {"gradient_kwargs": gradient_kwargs}
    qnode = qml.QNode(_registration_circuit, dev, diff_method=diff_method, shots=3000, **kwargs)
    with sg.record() as rec:
        g = np.asarray(qml.grad(qnode)(x), float)
    assert len(rec) == 1
    return g, rec[0]


def test_transform_object_behaves_like_the_string():
    g_str, r_str = _grad_and_record("shadow", {"seed": 1})
    g_obj, r_obj = _grad_and_record(shadow_grad, {"seed": 1})
    assert r_str.strategy == r_obj.strategy == "auto"
    np.testing.assert_array_equal(g_str, g_obj)
    np.testing.assert_array_equal(r_str.stderr[0], r_obj.stderr[0])
    # default options (no gradient_kwargs) too
    g_def, r_def = _grad_and_record(shadow_grad)
    assert r_def.strategy == "auto" and g_def.shape == g_obj.shape
    g_def_str, _ = _grad_and_record("shadow")
    assert g_def_str.shape == g_def.shape


def test_transform_object_after_uninstall():
    g_ref, _ = _grad_and_record("shadow", {"seed": 1})
    registration.uninstall()
    try:
        g_obj, r_obj = _grad_and_record(shadow_grad, {"seed": 1})
        assert r_obj.strategy == "auto"
        np.testing.assert_array_equal(g_ref, g_obj)
        g_def, r_def = _grad_and_record(shadow_grad)
        assert r_def.strategy == "auto" and np.all(np.isfinite(g_def))
        with pytest.raises(qml.exceptions.QuantumFunctionError, match="shadow"):
            _grad_and_record("shadow")
    finally:
        registration.install()
    g_again, r_again = _grad_and_record("shadow", {"seed": 1})
    assert r_again.strategy == "auto"
    np.testing.assert_array_equal(g_ref, g_again)


# ---------------------------------------------------------------------------------------------
# Bonferroni bookkeeping
# ---------------------------------------------------------------------------------------------


def test_check_budget():
    """The per-component checks of this file number at most ``MAX_CHECKS``."""
    rotations = len(GATES) * len(ANGLES) * len(OBSERVABLES)
    random = sum(len(_random_clifford_ops(n, s)[1]) * len(RANDOM_KINDS) for n, s in RANDOM_CASES)
    unbiased = sum(len(TINY[name][2]) for name, _ in UNBIASED_CASES)
    assert rotations + random + unbiased <= MAX_CHECKS


# ---------------------------------------------------------------------------------------------
# 6. Calibration of the 95% intervals (benchmarks/calibration.py), slow
# ---------------------------------------------------------------------------------------------


def _calibration_module():
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"
    spec = importlib.util.spec_from_file_location("_sg_calibration", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


CALIBRATION_COMPONENTS = 5000
CALIBRATION_BAND = 0.02


@pytest.mark.slow
def test_confidence_intervals_are_calibrated():
    """95% intervals cover the exact gradient in 95 +- 2% of >= 5000 live components.

    With N = 5000 the band is 6.5 binomial standard errors; components of one circuit are
    correlated (measured by-circuit standard error about 1.3x the binomial one), so the band
    is also required to be at least 3.5 cluster-robust standard errors wide (two-sided normal
    false-failure rate below 5e-4 even then). About a minute on 2 cores.
    """
    cal = _calibration_module()
    result = cal.run_calibration(CALIBRATION_COMPONENTS, seed=2024, verbose=False)
    print(cal.table(result))
    n = result.components
    assert n >= CALIBRATION_COMPONENTS
    binom = np.sqrt(0.95 * 0.05 / n)
    assert CALIBRATION_BAND / binom >= 4.5
    cluster = result.cluster_se()
    assert CALIBRATION_BAND / cluster >= 3.5, cluster
    assert abs(result.coverage - 0.95) <= CALIBRATION_BAND, cal.verdict(result)
