"""The shadow Hessian and metric tensor: exact formulas, exact standard deviations, shapes,
refusals.

The Hessian is linear in the averaged shadow, and the metric tensor is a linear term minus a
U-statistic of two linear group estimates. Under the complete plan (all ``3**n`` bases, ``S``
shots each, split evenly into ``K`` groups) every linear functional ``c0 + sum_P h_P x_P`` of
the Pauli estimates has the exact variance ``sum_b Var_b(u_b) / S`` with
``u_b(s) = sum_{P covered by b} h_P (-1)^{P.s} / 3^{n - |P|}``; the coefficients ``h`` are read
off the estimator itself (it is evaluated on unit Pauli vectors), the outcome laws come from
the exact state. The statistical tests compare each entry with its exact reference within
``Z`` exact standard deviations, ``Z`` chosen by Bonferroni over at most ``MAX_CHECKS``
Gaussian comparisons for a family-wise false-failure rate below 1e-4.
"""

from __future__ import annotations

import itertools

import numpy as np
import pennylane as qml
import pytest
from _reference import pauli_matrix
from pennylane import numpy as pnp
from scipy.stats import norm

import pennylane_shadowgrad as sg
from pennylane_shadowgrad.circuit import UnsupportedCircuitError
from pennylane_shadowgrad.estimators.dense import gradient_functional
from pennylane_shadowgrad.estimators.second_order import SecondOrderOperators, state_matrices
from pennylane_shadowgrad.estimators.shadow import ShadowSums, pair_product
from pennylane_shadowgrad.plans import make_plan
from pennylane_shadowgrad.second_order import (
    gradient_rows,
    hessian_rows,
    metric_parts,
    prepare,
)

#: Bound on the number of Gaussian comparisons in this module (the family for Bonferroni).
MAX_CHECKS = 2000
Z = norm.isf(1e-4 / (2 * MAX_CHECKS))  # about 5.6

# --------------------------------------------------------------------------- random QNodes

_WORDS = ("X", "Y", "Z")


def _random_spec(n: int, num_args: int, depth: int, rng) -> list:
    """Gates with angles that are functions of the arguments (tied, products, sines)."""
    spec = []
    for _ in range(depth):
        kind = rng.choice(["RX", "RY", "RZ", "IsingZZ", "IsingXX", "CNOT", "H", "Rot"])
        w = int(rng.integers(n))
        wires = (w,) if kind in ("RX", "RY", "RZ", "H", "Rot") else (w, (w + 1) % n)
        if n == 1 and len(wires) == 2:
            kind, wires = "RY", (0,)
        angle = (
            str(rng.choice(["lin", "prod", "sin", "sq"])),
            int(rng.integers(num_args)),
            int(rng.integers(num_args)),
            float(rng.uniform(0.5, 1.5)),
        )
        spec.append((str(kind), wires, angle))
    return spec


def _angle(x, angle):
    form, i, j, c = angle
    if form == "lin":
        return c * x[i]
    if form == "prod":
        return x[i] * x[j]
    if form == "sin":
        return pnp.sin(c * x[i])
    return c * x[i] ** 2


def _body(spec, x):
    for kind, wires, angle in spec:
        if kind == "CNOT":
            qml.CNOT(wires)
        elif kind == "H":
            qml.Hadamard(wires)
        elif kind == "Rot":
            qml.Rot(_angle(x, angle), 0.4, x[angle[1]], wires=wires)
        else:
            getattr(qml, kind)(_angle(x, angle), wires=wires)


def _random_observable(n: int, rng, hamiltonian: bool):
    terms = []
    for _ in range(3):
        word = [str(rng.choice(("I",) + _WORDS)) for _ in range(n)]
        if all(p == "I" for p in word):
            word[int(rng.integers(n))] = "Z"
        terms.append(qml.prod(*[getattr(qml, p)(q) for q, p in enumerate(word) if p != "I"]))
    coeffs = rng.uniform(-1, 1, size=len(terms))
    if hamiltonian:
        return qml.Hamiltonian(coeffs, terms)
    return qml.sum(*[c * t for c, t in zip(coeffs, terms)])


def _qnodes(n, spec, observables, shots, seed):
    dev = qml.device("default.qubit", seed=seed)

    @qml.qnode(dev, shots=shots)
    def sampled(x):
        for w in range(n):
            qml.Identity(w)
        _body(spec, x)
        return tuple(qml.expval(o) for o in observables)

    def make_exact(o):
        @qml.qnode(qml.device("default.qubit", wires=n + 1), diff_method="backprop")
        def exact(x):
            for w in range(n):
                qml.Identity(w)
            _body(spec, x)
            return qml.expval(o)

        return exact

    return sampled, [make_exact(o) for o in observables]


# ------------------------------------------------------------------ exact moments of the plan


def _leaves(tree) -> np.ndarray:
    if isinstance(tree, tuple | list):
        return np.concatenate([_leaves(t) for t in tree]) if tree else np.zeros(0)
    return np.ravel(np.asarray(tree, dtype=float))


def _unit_estimates(n: int) -> np.ndarray:
    """Row 0: the identity only (``x_I = 1``); row ``1 + k``: also ``x_P = 1`` for word ``k``."""
    x = np.zeros((4**n, 4**n))
    x[:, 0] = 1.0
    x[np.arange(1, 4**n), np.arange(1, 4**n)] = 1.0
    return x.reshape((4**n,) + (4,) * n)


def _coefficients(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(c0, h)`` of a linear functional from its values on :func:`_unit_estimates`."""
    c0 = values[0]
    h = np.zeros((4 ** round(np.log(len(values)) / np.log(4)),) + values.shape[1:])
    h[1:] = values[1:] - c0
    return c0, h


class PlanLaw:
    """Exact outcome law of every local basis of the complete plan, for a state vector."""

    def __init__(self, state: np.ndarray, n: int):
        self.n = n
        hadamard = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
        to_z = {1: hadamard, 2: hadamard @ np.diag([1, -1j]), 3: np.eye(2)}
        self.bases = list(itertools.product((1, 2, 3), repeat=n))
        self.probs = []
        for b in self.bases:
            v = np.ones((1, 1))
            for d in b:
                v = np.kron(v, to_z[d])
            self.probs.append(np.abs(v @ state) ** 2)
        self.probs = np.array(self.probs)  # (3^n, 2^n)
        outcomes = np.arange(2**n)
        self.masks = list(itertools.product((0, 1), repeat=n))
        # parity[s, m] = (-1)^{popcount(s & m)}, wire 0 most significant
        bits = (outcomes[:, None] >> np.arange(n - 1, -1, -1)) & 1
        self.parity = (-1.0) ** (bits @ np.array(self.masks).T)

    def per_basis(self, h: np.ndarray) -> np.ndarray:
        """``u[b, s, ...]`` of a functional with Pauli coefficients ``h`` (``(4**n, ...)``)."""
        n = self.n
        out = []
        for b in self.bases:
            idx = [sum(m[q] * b[q] * 4 ** (n - 1 - q) for q in range(n)) for m in self.masks]
            weight = np.array([3.0 ** -(n - sum(m)) for m in self.masks])
            v = h[idx] * weight.reshape((-1,) + (1,) * (h.ndim - 1))
            v[0] = 0.0  # the identity is the constant c0
            out.append(np.tensordot(self.parity, v, axes=(1, 0)))
        return np.array(out)

    def cov(self, u: np.ndarray, v: np.ndarray, shots: int) -> np.ndarray:
        """Exact covariance of two functionals' estimates from ``shots`` shots per basis."""
        mu_u = np.einsum("bs,bs...->b...", self.probs, u)
        mu_v = np.einsum("bs,bs...->b...", self.probs, v)
        second = np.einsum("bs,bs...,bs...->b...", self.probs, u, v)
        return (second - mu_u * mu_v).sum(0) / shots


def _state(prep) -> np.ndarray:
    ops = qml.tape.QuantumScript(prep.tape.operations)
    unitary = qml.matrix(ops, wire_order=prep.tape.wires)
    return unitary[:, 0]


def _u_statistic_var(mu_a, mu_b, va, vb, cab, k):
    """Exact variance of ``sum_{k != l} a_k b_l / (K (K - 1))`` over i.i.d. groups."""
    zeta1 = (mu_b**2 * va + mu_a**2 * vb + 2 * mu_a * mu_b * cab) / 4
    ea2, eb2, eab = va + mu_a**2, vb + mu_b**2, cab + mu_a * mu_b
    zeta2 = (2 * ea2 * eb2 + 2 * eab**2) / 4 - (mu_a * mu_b) ** 2
    return (4 * (k - 2) * zeta1 + 2 * zeta2) / (k * (k - 1))


# --------------------------------------------------------------------- exact formulas (fast)


@pytest.mark.parametrize("seed", range(6))
def test_formulas_match_backprop_exactly(seed):
    """On the exact state the QNode-level Hessian and metric are the references to 1e-10."""
    rng = np.random.default_rng(100 + seed)
    n = 1 + seed % 5
    spec = _random_spec(n, 3, 5 + 2 * n, rng)
    obs = [_random_observable(n, rng, hamiltonian=bool(seed % 2))]
    sampled, exact = _qnodes(n, spec, obs, shots=100, seed=0)
    x = pnp.array(rng.uniform(-1, 1, 3))
    prep = prepare(sampled, (x,), {}, {}, hessian=True)
    units = _unit_estimates(n)
    rows, _ = hessian_rows(prep, units)
    c0, h = _coefficients(np.array([_leaves(r) for r in rows]))
    paulis = np.array(
        [pauli_matrix(np.unravel_index(k, (4,) * n)) for k in range(4**n)], dtype=complex
    )
    psi = _state(prep)
    expect = np.einsum("i,kij,j->k", psi.conj(), paulis, psi).real  # <P>
    hess = c0 + expect @ h
    ref = qml.jacobian(qml.jacobian(exact[0]))(x)
    np.testing.assert_allclose(hess, np.ravel(ref), atol=1e-10)
    second, means = metric_parts(prep, units)
    s0, sh = _coefficients(second)
    m0, mh = _coefficients(means)
    mean_q = m0 + expect @ mh
    tape_metric = 0.25 * (s0 + np.tensordot(expect, sh, axes=(0, 0)) - np.outer(mean_q, mean_q))
    j = prep.cjac[0]
    metric = j.T @ tape_metric @ j
    np.testing.assert_allclose(metric, qml.metric_tensor(exact[0], approx=None)(x), atol=1e-10)


def test_ordering_matters_for_noncommuting_generators():
    """The nested commutator puts the later generator inside: swapping the order is wrong."""
    tape = qml.tape.QuantumScript(
        [qml.RX(0.4, 0), qml.RY(0.9, 0)], [qml.expval(qml.Z(0) + 0.5 * qml.X(0))]
    )
    tape.trainable_params = [0, 1]
    from pennylane_shadowgrad.circuit import pauli_coefficients_of_matrix, pauli_sum, rotation_form

    circuit = rotation_form(tape)
    ops = SecondOrderOperators(circuit)
    state = qml.matrix(qml.tape.QuantumScript(tape.operations), wire_order=[0])[:, 0]
    x = pauli_coefficients_of_matrix(np.outer(state, state.conj())).real[None]
    obs = pauli_sum(tape.measurements[0].obs, tape.wires)
    hess = ops.hessian(obs, state_matrices(x))[0]

    def f(p):
        c, s = pnp.cos, pnp.sin
        # <Z> = cos a cos b, <X> = cos a sin b for RY(b) RX(a)|0>
        return c(p[0]) * c(p[1]) + 0.5 * c(p[0]) * s(p[1])

    ref = qml.jacobian(qml.jacobian(f))(pnp.array([0.4, 0.9]))
    np.testing.assert_allclose(hess, ref, atol=1e-12)
    q = ops.q
    o = np.array([[1, 0.5], [0.5, -1]])
    rho = state_matrices(x)[0]
    swapped = -0.25 * np.trace(
        rho @ (((o @ q[0] - q[0] @ o) @ q[1]) - q[1] @ (o @ q[0] - q[0] @ o))
    )
    assert abs(swapped.real - ref[0, 1]) > 0.05


# ------------------------------------------------------------------- statistics (exact sigma)

_CASES = [  # (n, depth, shots per basis, groups, hamiltonian, two measurements)
    (1, 4, 3000, 5, False, False),
    (2, 7, 400, 4, True, True),
    (3, 9, 100, 4, False, False),
    (4, 10, 24, 4, True, False),
    (5, 10, 12, 4, False, False),
]


@pytest.mark.parametrize("case", range(len(_CASES)))
def test_entries_within_exact_sigma(case):
    """Hessian, metric and gradient entries within Z exact standard deviations of exact values."""
    n, depth, per_basis, groups, ham, two = _CASES[case]
    rng = np.random.default_rng(7 + case)
    num_args = 3 if n < 5 else 2
    spec = _random_spec(n, num_args, depth, rng)
    observables = [_random_observable(n, rng, ham)]
    if two:
        observables.append(_random_observable(n, rng, not ham))
    shots = per_basis * 3**n
    sampled, exact = _qnodes(n, spec, observables, shots=shots, seed=1000 + case)
    x = pnp.array(rng.uniform(-1, 1, num_args))
    options = {"bases": "all", "groups": groups, "seed": 0}
    grad, hess, metric = sg.shadow_second_order(sampled, **options)(x)

    prep = prepare(sampled, (x,), {}, options, hessian=True)
    law = PlanLaw(_state(prep), n)
    units = _unit_estimates(n)
    rows, _ = hessian_rows(prep, units)

    # Hessian: linear
    c0, h = _coefficients(np.array([_leaves(r) for r in rows]))
    u = law.per_basis(h)
    mean = c0 + np.einsum("bs,bs...->...", law.probs, u)
    sigma = np.sqrt(law.cov(u, u, per_basis))
    refs = [qml.jacobian(qml.jacobian(e))(x) for e in exact]
    ref = np.concatenate([np.ravel(r) for r in refs])
    np.testing.assert_allclose(mean, ref, atol=1e-9)  # the estimator is exactly unbiased
    est = _leaves(hess)
    assert np.all(np.abs(est - ref) <= Z * sigma + 1e-12), (est, ref, sigma)

    # metric: (linear - U-statistic of two linear group estimates) / 4
    second, means = metric_parts(prep, units)
    j = prep.cjac[0].reshape(prep.circuit.num_params, -1)
    _, sh = _coefficients(np.einsum("rpq,pu,qv->ruv", second, j, j))
    a0, ah = _coefficients(means @ j)
    us, ua = law.per_basis(sh), law.per_basis(ah)
    mu_a = a0 + np.einsum("bs,bs...->...", law.probs, ua)
    s_g = per_basis // groups
    var_l = law.cov(us, us, per_basis)
    cov_aa = law.cov(ua[:, :, :, None], ua[:, :, None, :], s_g)  # (d, d)
    va, vb = np.diag(cov_aa)[:, None], np.diag(cov_aa)[None, :]
    var_u = _u_statistic_var(mu_a[:, None], mu_a[None, :], va, vb, cov_aa, groups)
    cov_la = law.cov(us[..., None], ua[:, :, None, None, :], s_g)  # Cov(l_uv, a_w)
    d = len(mu_a)
    cov_lu = np.zeros((d, d))
    for p in range(d):
        for q in range(d):
            cov_lu[p, q] = (cov_la[p, q, p] * mu_a[q] + cov_la[p, q, q] * mu_a[p]) / groups
    sigma_m = 0.25 * np.sqrt(var_l + var_u - 2 * cov_lu)
    ref_m = np.asarray(qml.metric_tensor(exact[0], approx=None)(x))
    est_m = np.asarray(metric).reshape(d, d)
    assert np.all(np.abs(est_m - ref_m) <= Z * sigma_m + 1e-12), (est_m, ref_m, sigma_m)

    # gradient (same round): linear
    grads = [gradient_functional(prep.circuit, o, units) for o in prep.observables]
    g0, gh = _coefficients(np.array([_leaves(r) for r in gradient_rows(prep, grads)]))
    ug = law.per_basis(gh)
    sigma_g = np.sqrt(law.cov(ug, ug, per_basis))
    g_ref = np.concatenate([np.ravel(qml.jacobian(e)(x)) for e in exact])
    np.testing.assert_allclose(g0 + np.einsum("bs,bs...->...", law.probs, ug), g_ref, atol=1e-9)
    assert np.all(np.abs(_leaves(grad) - g_ref) <= Z * sigma_g + 1e-12)


def test_metric_product_is_unbiased():
    """The group-pair product has mean <Q>^2 exactly; the plug-in square is biased by Var."""
    dev = qml.device("default.qubit", seed=0)

    @qml.qnode(dev, shots=12)
    def circuit(x):
        qml.RX(0.7, 0)
        qml.RY(x[0], 0)
        return qml.expval(qml.Z(0))

    x = pnp.array([0.3])
    prep = prepare(circuit, (x,), {}, {}, hessian=False)
    ops = SecondOrderOperators(prep.circuit)
    law = PlanLaw(_state(prep), 1)
    units = _unit_estimates(1)
    a0, ah = _coefficients(ops.means(units)[:, 0])
    ua = law.per_basis(ah)
    mu = a0 + np.einsum("bs,bs->", law.probs, ua)
    groups, per_basis, reps = 4, 4, 3000
    plan = make_plan(1, 3 * per_basis, bases="all", groups=groups)
    rng = np.random.default_rng(5)
    u_stat, plug_in = [], []
    for _ in range(reps):
        outcomes = [rng.choice(2, size=per_basis, p=p) for p in law.probs]
        sums = ShadowSums(plan, outcomes)
        g = ops.means(sums.group_estimates())[:, 0]
        u_stat.append(pair_product(g, g))
        plug_in.append(ops.means(sums.pooled()[None])[0, 0] ** 2)
    va = law.cov(ua, ua, per_basis // groups)
    sd_u = np.sqrt(_u_statistic_var(mu, mu, va, va, va, groups) / reps)
    assert abs(np.mean(u_stat) - mu**2) <= Z * sd_u
    var_pooled = law.cov(ua, ua, per_basis)  # E[plug-in] = mu^2 + Var(pooled)
    sd_p = np.std(plug_in, ddof=1) / np.sqrt(reps)
    assert abs(np.mean(plug_in) - mu**2 - var_pooled) <= Z * sd_p
    assert var_pooled > 2 * Z * sd_p  # the check has the power to see the plug-in's bias


# ----------------------------------------------------------------------------------- shapes


def _shape_tree(tree):
    if isinstance(tree, tuple):
        return tuple(_shape_tree(t) for t in tree)
    return np.shape(tree)


def _structures():
    def single(x):
        qml.RX(x[0], 0)
        qml.RY(x[1] ** 2, 1)
        qml.CNOT([0, 1])
        qml.RZ(x[0] * x[1], 1)
        return qml.expval(qml.Z(1))

    def two_args(a, b):
        qml.RX(a, 0)
        qml.RY(b[0], 1)
        qml.CNOT([0, 1])
        qml.RX(b[1] * a, 1)
        return qml.expval(qml.Z(1))

    def matrix_two_meas(w):
        qml.RX(w[0, 0], 0)
        qml.RY(w[0, 1], 1)
        qml.CNOT([0, 1])
        qml.RX(w[1, 0], 1)
        qml.RY(w[1, 1], 0)
        return qml.expval(qml.Z(1)), qml.expval(qml.X(0) @ qml.Y(1))

    def scalar(a):
        qml.RX(a, 0)
        return qml.expval(qml.Z(0))

    def tied_scalar(a, data):
        qml.RX(a, 0)
        qml.RY(data * a, 0)
        return qml.expval(qml.Z(0))

    return [
        (single, (pnp.array([0.1, 0.2]),)),
        (two_args, (pnp.array(0.5), pnp.array([0.3, 0.4]))),
        (two_args, (pnp.array(0.5), pnp.array([0.3, 0.4], requires_grad=False))),
        (matrix_two_meas, (pnp.array([[0.1, 0.2], [0.3, 0.4]]),)),
        (scalar, (pnp.array(0.5),)),
        (tied_scalar, (pnp.array(0.5), pnp.array(0.7, requires_grad=False))),
    ]


@pytest.mark.parametrize("index", range(6))
def test_shapes_match_pennylane(index):
    func, args = _structures()[index]
    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(func, dev, shots=2000)
    analytic = qml.QNode(func, qml.device("default.qubit", wires=3))
    hess = sg.shadow_hessian(qnode, seed=0)(*args)
    assert _shape_tree(hess) == _shape_tree(qml.gradients.param_shift_hessian(analytic)(*args))
    for approx in (None, "block-diag", "diag"):
        metric = sg.shadow_metric_tensor(qnode, approx=approx, seed=0)(*args)
        ref = qml.metric_tensor(analytic, approx=approx)(*args)
        assert _shape_tree(metric) == _shape_tree(ref)
    grad, hess2, _ = sg.shadow_second_order(qnode, seed=0)(*args)
    assert _shape_tree(hess2) == _shape_tree(hess)
    ref_grad = qml.gradients.param_shift(analytic)(*args)
    assert _shape_tree(grad) == _shape_tree(ref_grad)


def test_block_diag_and_diag_follow_pennylane_layers():
    """High shots: the approximations zero the same entries as qml.metric_tensor."""
    dev = qml.device("default.qubit", seed=4)

    def func(x):
        qml.RX(x[0], 0)
        qml.RY(x[1], 1)
        qml.CNOT([0, 1])
        qml.RY(x[2], 0)
        qml.RX(x[3], 1)
        qml.CNOT([1, 0])
        qml.RZ(x[4], 0)
        return qml.expval(qml.Z(0))

    x = pnp.array([0.3, 0.5, 0.7, 0.9, 1.1])
    qnode = qml.QNode(func, dev, shots=40000)
    exact = qml.QNode(func, qml.device("default.qubit", wires=3))
    layer = np.array([0, 0, 1, 1, 2])  # PennyLane's parametrized layers of this circuit
    masks = {
        None: np.ones((5, 5), bool),
        "block-diag": layer[:, None] == layer,
        "diag": np.eye(5, dtype=bool),
    }
    for approx, mask in masks.items():
        with sg.record() as rec:
            est = sg.shadow_metric_tensor(qnode, approx=approx, seed=1)(x)
        ref = qml.metric_tensor(exact, approx=approx)(x)
        assert np.all(est[~mask] == 0) and np.all(ref[~mask] == 0)
        assert np.all(np.abs(est - ref) <= 6 * rec[0].metric_stderr + 0.01)


def test_one_round_counts_shots_once():
    dev = qml.device("default.qubit", seed=2)

    @qml.qnode(dev, shots=900)
    def circuit(x):
        qml.RX(x[0], 0)
        qml.RY(x[1], 1)
        qml.CNOT([0, 1])
        return qml.expval(qml.Z(1))

    with qml.Tracker(dev) as tracker:
        sg.shadow_second_order(circuit, seed=0)(pnp.array([0.2, 0.4]))
    assert tracker.totals["shots"] == 900
    assert tracker.totals["batches"] == 1


def test_record_has_entrywise_errors():
    dev = qml.device("default.qubit", seed=2)

    @qml.qnode(dev, shots=3000)
    def circuit(x, y):
        qml.RX(x[0], 0)
        qml.RY(x[1] * y, 1)
        qml.CNOT([0, 1])
        return qml.expval(qml.Z(1)), qml.expval(qml.X(0))

    args = (pnp.array([0.2, 0.4]), pnp.array(0.6))
    with sg.record() as rec:
        grad, hess, metric = sg.shadow_second_order(circuit, seed=0)(*args)
    r = rec[0]
    assert r.snapshots == 3000 and r.groups == 20
    assert _shape_tree(r.hessian_stderr) == _shape_tree(hess)
    assert _shape_tree(r.metric_stderr) == _shape_tree(metric)
    assert _shape_tree(r.gradient_stderr) == _shape_tree(grad)
    assert np.all(np.isfinite(_leaves(r.hessian_stderr)))
    assert np.all(_leaves(r.metric_stderr) >= 0)


def test_qng_optimizer_accepts_the_shadow_metric():
    dev = qml.device("default.qubit", seed=3)

    @qml.qnode(dev, shots=4000, diff_method="shadow")
    def cost(x):
        qml.RX(x[0], 0)
        qml.RY(x[1], 1)
        qml.CNOT([0, 1])
        qml.RY(x[2], 0)
        return qml.expval(qml.Z(0) @ qml.Z(1) + 0.5 * qml.X(0))

    opt = qml.QNGOptimizer(0.1, lam=0.01)
    x = pnp.array([0.1, 0.2, 0.3])
    new = opt.step(cost, x, metric_tensor_fn=sg.shadow_metric_tensor(cost, seed=1))
    assert new.shape == x.shape and not np.allclose(new, x)


# --------------------------------------------------------------------------------- refusals


def _counting_device():
    return qml.device("default.qubit", seed=0)


@pytest.mark.parametrize(
    "measure",
    [
        lambda: qml.var(qml.Z(0)),
        lambda: qml.probs(wires=[0]),
        lambda: qml.sample(wires=[0]),
    ],
)
def test_hessian_refuses_other_measurements_before_device_time(measure):
    dev = _counting_device()

    @qml.qnode(dev, shots=100)
    def circuit(x):
        qml.RX(x, 0)
        return measure()

    with qml.Tracker(dev) as tracker:
        with pytest.raises(UnsupportedCircuitError, match="expval"):
            sg.shadow_hessian(circuit)(pnp.array(0.3))
    assert tracker.totals.get("executions", 0) == 0


def test_refusals():
    dev = _counting_device()

    @qml.qnode(dev)
    def no_shots(x):
        qml.RX(x, 0)
        return qml.expval(qml.Z(0))

    with pytest.raises(ValueError, match="shots=None"):
        sg.shadow_hessian(no_shots)(pnp.array(0.3))
    with pytest.raises(ValueError, match="shots=None"):
        sg.shadow_metric_tensor(no_shots)(pnp.array(0.3))
    with pytest.raises(TypeError, match="Unknown option"):
        sg.shadow_hessian(no_shots, strategy="auto")
    with pytest.raises(ValueError, match="approx"):
        sg.shadow_metric_tensor(no_shots, approx="full")
    with pytest.raises(ValueError, match="groups"):
        sg.shadow_metric_tensor(no_shots, groups=0)

    @qml.qnode(dev, shots=100)
    def coeff(x, c):
        qml.RX(x, 0)
        return qml.expval(qml.Hamiltonian(c, [qml.Z(0)]))

    with pytest.raises(UnsupportedCircuitError, match="coefficients"):
        sg.shadow_hessian(coeff)(pnp.array(0.3), pnp.array([0.5]))

    @qml.qnode(dev, shots=100)
    def wide(x):
        for w in range(9):
            qml.RX(x, w)
        return qml.expval(qml.Z(0))

    with qml.Tracker(dev) as tracker:
        with pytest.raises(ValueError, match="max_qubits"):
            sg.shadow_metric_tensor(wide)(pnp.array(0.3))
        with pytest.raises(ValueError, match="independent groups"):
            sg.shadow_metric_tensor(coeff, groups=1)(
                pnp.array(0.3), pnp.array([0.5], requires_grad=False)
            )
    assert tracker.totals.get("executions", 0) == 0


def test_refuses_non_autograd_arguments():
    torch = pytest.importorskip("torch")

    @qml.qnode(_counting_device(), shots=100)
    def circuit(x):
        qml.RX(x, 0)
        return qml.expval(qml.Z(0))

    with pytest.raises(TypeError, match="NumPy/autograd"):
        sg.shadow_hessian(circuit)(torch.tensor(0.3, requires_grad=True))


def test_default_random_plan_is_unbiased():
    """The default plan below 2 * 3**n snapshots (random bases, coverage-corrected, one shot per
    basis) keeps the Hessian and the metric unbiased: the mean of many rounds, with outcomes
    drawn from the exact laws, is within Z standard errors of the exact values."""
    n, reps, total = 3, 400, 40
    rng = np.random.default_rng(21)
    spec = _random_spec(n, 2, 8, rng)
    observables = [_random_observable(n, rng, hamiltonian=True)]
    sampled, exact = _qnodes(n, spec, observables, shots=total, seed=0)
    x = pnp.array(rng.uniform(-1, 1, 2))
    prep = prepare(sampled, (x,), {}, {}, hessian=True)
    law = PlanLaw(_state(prep), n)
    index = {b: k for k, b in enumerate(law.bases)}
    ops = SecondOrderOperators(prep.circuit)
    j = prep.cjac[0]
    hess, metric = [], []
    for _ in range(reps):
        plan = make_plan(n, total, bases="auto", groups=20, seed=rng)
        assert plan.random
        outcomes = []
        for b, s in zip(plan.bases, plan.shots):
            p = law.probs[index[tuple(int(d) for d in b)]]
            outcomes.append(rng.choice(2**n, size=int(s), p=p / p.sum()))
        sums = ShadowSums(plan, outcomes)
        est = sums.pooled()[None]
        hess.append(_leaves(hessian_rows(prep, est)[0][0]))
        second, _ = metric_parts(prep, est)
        g = ops.means(sums.group_estimates())
        tape_metric = 0.25 * (second[0] - pair_product(g[:, :, None], g[:, None, :]))
        metric.append(np.ravel(j.T @ tape_metric @ j))
    hess, metric = np.array(hess), np.array(metric)
    ref_h = np.ravel(qml.jacobian(qml.jacobian(exact[0]))(x))
    ref_m = np.ravel(qml.metric_tensor(exact[0], approx=None)(x))
    for values, ref in ((hess, ref_h), (metric, ref_m)):
        se = values.std(axis=0, ddof=1) / np.sqrt(reps)
        assert np.all(np.abs(values.mean(0) - ref) <= Z * se + 1e-12), (values.mean(0), ref, se)
