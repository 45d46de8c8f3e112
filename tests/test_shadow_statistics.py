"""Statistical correctness of ``diff_method="shadow"`` against EXACT means and variances.

How the exact variances are obtained (no noisy sigma is ever used as a tolerance):

* Complete plan (all ``3**n`` bases, ``S`` shots each; the default when ``3**n <= min(T, 729)``).
  The pooled Pauli estimate is ``x_P = (sum of parities of the shots whose basis covers P)/N_P``
  with ``N_P = S 3**(n - |P|)``, so every derivative estimate is linear in the shots:
  ``d = sum_b sum_{shots in b} w_b(s)``, ``w_b(s) = sum_{P covered by b} gamma_P parity_P(s)/N_P``
  with ``gamma_P = Tr(P G)/2**n``. Hence ``E d = sum_P gamma_P <P>`` and
  ``Var d = sum_b S Var_{s ~ p_b}(w_b(s))`` with ``p_b`` the exact outcome law in basis ``b``.
  ``G`` is obtained here without the package and without knowing its decomposition:
  ``G_a = d/de [V_e^dag O(w + e e_a) V_e]`` at ``e = 0``, ``V_e = U(w + e e_a) U(w)^dag``
  (fourth-order finite differences of PennyLane's circuit matrices), so tied parameters, the
  classical Jacobian and trainable Hamiltonian coefficients are all included. The model is
  checked sample by sample in ``test_estimator_is_the_linear_functional_of_the_samples``.
* ``var``: with ``S`` divisible by the ``K = 20`` groups, the estimate is
  ``mean_k d_k - 2 U``, ``U = sum_{k != l} a_k b_l / (K (K-1))`` (a_k, b_k, d_k: group estimates
  of ``<O>``, ``d<O>``, ``d<O^2>``; groups are i.i.d.). Writing ``L = d - 2 mu_a b - 2 mu_b a``,
  ``Var = Var(L)/K + 4 (var_a var_b + cov_ab^2)/(K (K-1))``, every term exact from the group
  moments (derivation in the docstring of :func:`variance_gradient_moments`).
* Random plans: an exact enumeration over basis multisets (n=2, T=8, default plan: 8 random
  bases, one shot each), and for n=7, T=5103 (default plan: 729 random bases, 7 shots each) a
  decomposition into the shot noise given the bases actually drawn (exact conditional
  variances and ranges, Bernstein bound) and the basis noise (exact variance by the
  pair-coverage formula and a range, Bernstein bound).

Family-wise error: every statistical check in this file uses the per-check level
``ALPHA / N_CHECKS`` (Bonferroni), with ``N_CHECKS`` counted from the test definitions at
import time, so the probability that the file fails by chance is below ``ALPHA = 1e-4``.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp
from pennylane.tape import QuantumScript
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

import pennylane_shadowgrad as sg

ALPHA = 1e-4
GROUPS = 20

PAULIS = np.stack(
    [
        np.eye(2, dtype=complex),
        np.array([[0, 1], [1, 0]], dtype=complex),
        np.array([[0, -1j], [1j, 0]]),
        np.array([[1, 0], [0, -1]], dtype=complex),
    ]
)

# ---------------------------------------------------------------------------------------------
# Exact machinery (independent of the package)
# ---------------------------------------------------------------------------------------------


def pauli_expand(mat) -> np.ndarray:
    """``Tr(P mat)`` for every Pauli word, flat, digit of qubit 0 most significant (base 4)."""
    n = round(np.log2(mat.shape[0]))
    t = np.asarray(mat, dtype=complex).reshape((2,) * (2 * n))
    for q in range(n):
        # t axes: [word_0..word_{q-1}, row_q..row_{n-1}, col_q..col_{n-1}]
        t = np.tensordot(t, PAULIS, axes=([q, n], [2, 1]))
        t = np.moveaxis(t, -1, q)
    return t.reshape(-1)


class Bases:
    """Index tables for local Pauli bases on ``n`` qubits."""

    def __init__(self, n: int):
        self.n = n
        masks = np.arange(2**n)
        self.bits = (masks[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1  # (2^n, n)
        self.place = 4 ** np.arange(n - 1, -1, -1)
        popcount = np.array([bin(v).count("1") for v in range(2**n)])
        self.mask_weight = popcount
        self.parity = (-1.0) ** popcount[masks[:, None] & masks[None, :]]  # (mask, outcome)
        self.all = np.array(list(itertools.product((1, 2, 3), repeat=n)), dtype=np.int64)
        self.all = self.all.reshape(-1, n)
        word_digits = np.array(list(itertools.product(range(4), repeat=n))).reshape(-1, n)
        self.word_weight = np.count_nonzero(word_digits, axis=1)
        self.word_digits = word_digits

    def covered(self, bases) -> np.ndarray:
        """Flat index of the word covered by each mask, for each basis: ``(B, 2^n)``."""
        return (self.bits[None] * np.asarray(bases)[:, None, :]) @ self.place

    def probabilities(self, exp_p, bases) -> np.ndarray:
        """Exact outcome law per basis from the Pauli expectations ``<P>``.

        Outcome bit 0 is the +1 eigenvalue (projector definition, not the package's rotation).
        """
        p = exp_p[self.covered(bases)] @ self.parity / 2**self.n
        assert p.min() > -1e-10
        return np.clip(p, 0.0, None)


def shot_weights(bases_obj: Bases, gammas, bases, n_cover) -> np.ndarray:
    """``w[c, b, s] = sum_masks gamma_c[P(b, m)] parity_m(s) / n_cover[P(b, m)]``."""
    idx = bases_obj.covered(bases)
    c = gammas[:, idx] / n_cover[idx][None]
    return c @ bases_obj.parity


def basis_moments(p, w):
    """Per-basis means ``(C, B)`` of the weights ``w`` under the outcome laws ``p``."""
    return np.einsum("bs,cbs->cb", p, w)


def linear_moments(bases_obj, exp_p, gammas, shots_per_basis):
    """Exact mean and variance of complete-plan linear estimators (one per row of gammas)."""
    n = bases_obj.n
    n_cover = shots_per_basis * 3.0 ** (n - bases_obj.word_weight)
    w = shot_weights(bases_obj, gammas, bases_obj.all, n_cover)
    p = bases_obj.probabilities(exp_p, bases_obj.all)
    mb = basis_moments(p, w)
    second = np.einsum("bs,cbs->cb", p, w * w)
    return shots_per_basis * mb.sum(1), shots_per_basis * (second - mb**2).sum(1)


def variance_gradient_moments(
    bases_obj, exp_p, g_a, g_b, g_d, shots_per_group, groups=GROUPS, return_group_cov=False
):
    r"""Exact mean and variance of the jackknife-corrected ``var`` gradient.

    Group estimates ``a_k`` (of ``<O>``), ``b_k`` (of ``d<O>``), ``d_k`` (of ``d<O^2>``) are
    i.i.d. over the ``K`` groups. With ``alpha, beta, delta`` their centred parts,
    ``V - E V = (1/K) sum_k L_k - 2/(K(K-1)) sum_{k != l} alpha_k beta_l``, where
    ``L = delta - 2 mu_a beta - 2 mu_b alpha``; the two sums are uncorrelated and
    ``E[(sum_{k != l} alpha_k beta_l)^2] = K (K-1) (var_a var_b + cov_ab^2)``.
    """
    n = bases_obj.n
    K = groups
    n_cover = shots_per_group * 3.0 ** (n - bases_obj.word_weight)
    gammas = np.concatenate([g_a[None], g_b, g_d])
    w = shot_weights(bases_obj, gammas, bases_obj.all, n_cover)
    p = bases_obj.probabilities(exp_p, bases_obj.all)
    mb = basis_moments(p, w)  # (C, B)
    mean = shots_per_group * mb.sum(1)

    def cov(i, j):
        second = np.einsum("bs,bs,bs->b", p, w[i], w[j])
        return shots_per_group * (second - mb[i] * mb[j]).sum()

    m = len(g_b)
    mu_a, mu_b, mu_d = mean[0], mean[1 : 1 + m], mean[1 + m :]
    out_var, cov_ab = np.zeros(m), np.zeros(m)
    for j in range(m):
        ib, id_ = 1 + j, 1 + m + j
        va, vb, vd = cov(0, 0), cov(ib, ib), cov(id_, id_)
        cab, cad, cbd = cov(0, ib), cov(0, id_), cov(ib, id_)
        var_l = (
            vd
            + 4 * mu_a**2 * vb
            + 4 * mu_b[j] ** 2 * va
            - 4 * mu_a * cbd
            - 4 * mu_b[j] * cad
            + 8 * mu_a * mu_b[j] * cab
        )
        out_var[j] = var_l / K + 4 * (va * vb + cab**2) / (K * (K - 1))
        cov_ab[j] = cab
    if return_group_cov:
        return mu_d - 2 * mu_a * mu_b, out_var, cov_ab
    return mu_d - 2 * mu_a * mu_b, out_var


def component_matrices(tape, n):
    """Per measurement: ``("lin", [O_c])`` for expval/probs outputs, ``("var", O)`` for var."""
    out = []
    wires = range(n)
    for m in tape.measurements:
        if isinstance(m, qml.measurements.ProbabilityMP):
            k = len(m.wires)
            mats = []
            for s in range(2**k):
                bits = [int(b) for b in np.binary_repr(s, width=k)]
                mats.append(qml.matrix(qml.Projector(bits, wires=m.wires), wire_order=wires))
            out.append(("lin", mats))
        elif isinstance(m, qml.measurements.VarianceMP):
            out.append(("var", qml.matrix(m.obs, wire_order=wires)))
        else:
            out.append(("lin", [qml.matrix(m.obs, wire_order=wires)]))
    return out


FD_STEPS = (2.0, 1.0, -1.0, -2.0)
FD_COEFFS = (-1.0, 8.0, -8.0, 1.0)


def heisenberg_derivatives(tape_at, w0, n, eps=1e-3):
    """``d/de V_e^dag O_i(w0 + e e_a) V_e`` for every argument ``a`` and matrix ``O_i``.

    ``O_i`` runs over: each linear component, and for a var measurement ``O`` then ``O^2``.
    Returns a list (per argument) of lists of matrices.
    """
    u0 = qml.matrix(QuantumScript(tape_at(w0).operations), wire_order=range(n))
    out = []
    for a in range(len(w0)):
        acc = None
        for step, coeff in zip(FD_STEPS, FD_COEFFS):
            w = np.array(w0, dtype=float)
            w[a] += step * eps
            tape = tape_at(w)
            v = qml.matrix(QuantumScript(tape.operations), wire_order=range(n)) @ u0.conj().T
            mats = [
                v.conj().T @ o @ v
                for kind, obs in component_matrices(tape, n)
                for o in (obs if kind == "lin" else (obs, obs @ obs))
            ]
            if acc is None:
                acc = [coeff * m for m in mats]
            else:
                acc = [x + coeff * m for x, m in zip(acc, mats)]
        out.append([x / (12 * eps) for x in acc])
    return u0, out


@dataclass
class Exact:
    truth: np.ndarray  # (outputs, args)
    sigma: np.ndarray  # (outputs, args)
    exp_p: np.ndarray
    gammas: np.ndarray | None  # (outputs, args, 4^n) for linear outputs (None if var present)


def exact_statistics(tape_at, w0, n, snapshots) -> Exact:
    """Exact mean and standard deviation of every Jacobian entry for the complete plan."""
    bases_obj = Bases(n)
    num_bases = 3**n
    assert snapshots % num_bases == 0
    shots = snapshots // num_bases
    u0, derivs = heisenberg_derivatives(tape_at, w0, n)
    psi = u0[:, 0]
    exp_p = pauli_expand(np.outer(psi, psi.conj())).real
    comps = component_matrices(tape_at(w0), n)
    args = len(w0)
    truth_rows, sigma_rows, lin_gammas = [], [], []
    has_var = False
    pos = 0
    for kind, obs in comps:
        if kind == "lin":
            for _ in obs:
                g = np.array([pauli_expand(derivs[a][pos]).real / 2**n for a in range(args)])
                mean, var = linear_moments(bases_obj, exp_p, g, shots)
                truth_rows.append(mean)
                sigma_rows.append(np.sqrt(np.maximum(var, 0.0)))
                lin_gammas.append(g)
                pos += 1
        else:
            assert shots % GROUPS == 0, "the exact var formula needs S divisible by K"
            g_a = pauli_expand(obs).real / 2**n
            g_b = np.array([pauli_expand(derivs[a][pos]).real / 2**n for a in range(args)])
            g_d = np.array([pauli_expand(derivs[a][pos + 1]).real / 2**n for a in range(args)])
            mean, var = variance_gradient_moments(bases_obj, exp_p, g_a, g_b, g_d, shots // GROUPS)
            truth_rows.append(mean)
            sigma_rows.append(np.sqrt(np.maximum(var, 0.0)))
            has_var = True
            pos += 2
    gammas = None if has_var else np.array(lin_gammas)
    return Exact(np.array(truth_rows), np.array(sigma_rows), exp_p, gammas)


# ---------------------------------------------------------------------------------------------
# Random circuits with tied parameters (QNode level)
# ---------------------------------------------------------------------------------------------

PARAM_GATES_1 = ["RX", "RY", "RZ", "PhaseShift"]
PARAM_GATES_3 = ["Rot", "U3"]
PARAM_GATES_2 = [
    "CRX",
    "CRY",
    "CRZ",
    "IsingXX",
    "IsingYY",
    "IsingZZ",
    "IsingXY",
    "SingleExcitation",
    "ControlledPhaseShift",
]
FIXED_1 = ["Hadamard", "S", "T", "SX"]
FIXED_2 = ["CNOT", "CZ", "SWAP"]


def random_gates(n, num_params, depth, seed):
    """Gate specs ``(name, wires, exprs)``; an expr ``(kind, i, j)`` ties QNode parameters."""
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(num_params))  # every parameter is used at least once
    specs = [("Hadamard", [q], []) for q in range(n)]

    def expr():
        i = int(order.pop()) if order else int(rng.integers(num_params))
        kind = ["x", "2x", "sin", "sum"][rng.integers(4)]
        return (kind, i, int(rng.integers(num_params)))

    while len(specs) < depth + n or order:
        pool = PARAM_GATES_1 * 3 + PARAM_GATES_3 + FIXED_1
        if n >= 2:
            pool += PARAM_GATES_2 + FIXED_2 * 2 + ["PauliRot", "MultiRZ"]
        if n >= 3:
            pool += ["Toffoli", "PauliRot"]
        if n >= 4:
            pool += ["DoubleExcitation"]
        name = pool[rng.integers(len(pool))]
        if name in PARAM_GATES_1:
            specs.append((name, [int(rng.integers(n))], [expr()]))
        elif name in PARAM_GATES_3:
            specs.append((name, [int(rng.integers(n))], [expr(), expr(), expr()]))
        elif name in PARAM_GATES_2:
            specs.append((name, [int(w) for w in rng.choice(n, 2, replace=False)], [expr()]))
        elif name in ("PauliRot", "MultiRZ"):
            k = int(rng.integers(2, min(n, 4) + 1))
            wires = [int(w) for w in rng.choice(n, k, replace=False)]
            word = "".join(rng.choice(list("XYZ"), size=k))
            specs.append((name, wires, [expr(), word]))
        elif name == "DoubleExcitation":
            specs.append((name, [int(w) for w in rng.choice(n, 4, replace=False)], [expr()]))
        elif name in FIXED_1:
            specs.append((name, [int(rng.integers(n))], []))
        else:
            k = 3 if name == "Toffoli" else 2
            specs.append((name, [int(w) for w in rng.choice(n, k, replace=False)], []))
    return specs


def evaluate(e, w):
    kind, i, j = e
    if kind == "x":
        return w[i]
    if kind == "2x":
        return 2 * w[i]
    if kind == "sin":
        return qml.math.sin(w[i])
    return w[i] + w[j]


def apply_gates(specs, w):
    for name, wires, exprs in specs:
        if name == "PauliRot":
            qml.PauliRot(evaluate(exprs[0], w), exprs[1], wires=wires)
        elif name == "MultiRZ":
            qml.MultiRZ(evaluate(exprs[0], w), wires=wires)
        else:
            getattr(qml, name)(*[evaluate(e, w) for e in exprs], wires=wires)


_herm = np.random.default_rng(5).normal(size=(4, 4)) + 1j * np.random.default_rng(6).normal(
    size=(4, 4)
)
HERMITIAN = (_herm + _herm.conj().T) / 2
SUM_MATRIX = qml.matrix(qml.X(0) + 0.5 * qml.Z(1) @ qml.Z(2), wire_order=[0, 1, 2])


@dataclass
class Case:
    name: str
    n: int
    num_params: int  # gate parameters; Hamiltonian coefficients come after them in w
    measurements: object  # callable (w, num_params) -> list of measurement processes
    snapshots: int
    seed: int
    depth: int = 10
    coeffs: tuple = ()

    @functools.cached_property
    def specs(self):
        return random_gates(self.n, self.num_params, self.depth, self.seed)

    @property
    def w0(self):
        rng = np.random.default_rng(self.seed + 1000)
        x = rng.uniform(-np.pi, np.pi, size=self.num_params)
        return np.concatenate([x, np.array(self.coeffs, dtype=float)])

    def qfunc(self, w):
        apply_gates(self.specs, w)
        return tuple(self.measurements(w, self.num_params))

    def tape_at(self, w):
        return qml.tape.make_qscript(self.qfunc)(w)

    @property
    def num_outputs(self):
        return sum(
            2 ** len(m.wires) if isinstance(m, qml.measurements.ProbabilityMP) else 1
            for m in self.tape_at(self.w0).measurements
        )


CASES = [
    Case("n1-expval-X", 1, 3, lambda w, m: [qml.expval(qml.X(0))], 3 * 900, 1),
    Case("n2-probs", 2, 4, lambda w, m: [qml.probs(wires=[1, 0])], 9 * 300, 2),
    Case("n2-var-word", 2, 3, lambda w, m: [qml.var(qml.Z(0) @ qml.Y(1))], 9 * 20 * 15, 3),
    Case(
        "n3-hamiltonian-trainable-coeffs",
        3,
        5,
        lambda w, m: [
            qml.expval(
                qml.Hamiltonian(w[m : m + 3], [qml.Z(0) @ qml.Z(1), qml.X(1), qml.Y(0) @ qml.X(2)])
            )
        ],
        27 * 100,
        4,
        coeffs=(0.4, -0.7, 0.3),
    ),
    Case(
        # operator arithmetic: the trainable coefficients are not the first terms' parameters
        "n3-sum-trainable-coeffs",
        3,
        4,
        lambda w, m: [
            qml.expval(
                qml.Z(0) @ qml.Z(1)
                + qml.s_prod(w[m], qml.X(1))
                + qml.s_prod(w[m + 1], qml.Y(0) @ qml.X(2))
            )
        ],
        27 * 100,
        11,
        coeffs=(0.8, -0.5),
    ),
    Case(
        "n3-hermitian",
        3,
        4,
        lambda w, m: [qml.expval(qml.Hermitian(HERMITIAN, wires=[2, 0]))],
        27 * 100,
        5,
    ),
    Case(
        "n4-projector-and-probs",
        4,
        6,
        lambda w, m: [qml.expval(qml.Projector([1, 0], wires=[1, 3])), qml.probs(wires=[2])],
        81 * 40,
        6,
    ),
    Case(
        "n4-var-sum",
        4,
        5,
        # a matrix observable: lightning.qubit cannot sample var(Sum) in the forward pass
        lambda w, m: [qml.var(qml.Hermitian(SUM_MATRIX, wires=[0, 1, 2]))],
        81 * 20 * 18,  # enough that the check sees a flipped sign (see below)
        7,
    ),
    Case(
        "n5-expval-and-var",
        5,
        6,
        lambda w, m: [qml.expval(qml.Y(0) @ qml.X(2) @ qml.Z(4)), qml.var(qml.Z(1))],
        243 * 20,
        28,
        depth=16,
    ),
    Case(
        "n6-hamiltonian-and-probs",
        6,
        6,
        lambda w, m: [
            qml.expval(
                qml.Hamiltonian(
                    [0.5, -0.3, 0.2],
                    [qml.Z(0) @ qml.Z(5), qml.X(2), qml.Y(1) @ qml.Y(3) @ qml.Y(4)],
                )
            ),
            qml.probs(wires=[0, 5]),
        ],
        729 * 6,
        9,
    ),
    Case("n6-var", 6, 5, lambda w, m: [qml.var(qml.X(3))], 729 * 20, 9, depth=12),
]
CASES_BY_NAME = {c.name: c for c in CASES}
DEVICES = ["default.qubit", "lightning.qubit"]

# -------------------------------------------------------------------------------------------
# Tape-level problems for the repeated-run tests
# -------------------------------------------------------------------------------------------


def rotation_tape(n, seed, measurements, shots, layers=2):
    """A tape of Pauli rotations and fixed gates only (no decomposition needed)."""
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(layers):
        for q in range(n):
            ops.append(qml.RY(rng.uniform(-np.pi, np.pi), q))
            ops.append(qml.RZ(rng.uniform(-np.pi, np.pi), q))
        ops += [qml.CNOT([q, q + 1]) for q in range(n - 1)]
        if n >= 2:
            ops.append(qml.IsingXX(rng.uniform(-np.pi, np.pi), wires=[0, n - 1]))
        ops.append(qml.T(0))
    tape = QuantumScript(ops, measurements, shots=shots)
    tape.trainable_params = list(range(len(tape.get_parameters(trainable_only=False))))
    return tape


def tape_problem(tape):
    w0 = np.array([float(p) for p in tape.get_parameters()])

    def tape_at(w):
        return tape.bind_new_parameters(list(w), tape.trainable_params)

    return tape_at, w0


def run_repeated(tape, repetitions, device_seed, fresh_plans=True, **kwargs):
    """``repetitions`` independent shadow gradients of ``tape`` on one seeded device.

    With ``fresh_plans`` every repetition has its own plan (seed ``r`` for the random bases);
    otherwise one deterministic plan is executed ``repetitions`` times (fresh samples each).
    """
    batches, fns = [], []
    kwargs.setdefault("strategy", "pure")
    for r in range(repetitions):
        if fresh_plans or r == 0:
            tapes, fn = sg.shadow_grad(tape, seed=r, **kwargs)
        batches.append(tapes)
        fns.append(fn)
    flat = [t for b in batches for t in b]
    results = qml.execute(flat, qml.device("default.qubit", seed=device_seed))
    out, start = [], 0
    for b, fn in zip(batches, fns):
        out.append(flatten_jacobian(fn(results[start : start + len(b)])))
        start += len(b)
    return np.array(out), batches


def flatten_jacobian(jac):
    """Tape Jacobian (measurements outer, parameters inner) as ``(outputs, params)``."""
    if not isinstance(jac, tuple) or not isinstance(jac[0], tuple):
        jac = (jac,)
    rows = []
    for per_param in jac:
        arr = np.stack([np.atleast_1d(np.asarray(p, dtype=float)) for p in per_param], axis=-1)
        rows.append(arr)
    return np.concatenate(rows, axis=0)


UNBIASED_COMPLETE = dict(n=3, seed=31, reps=300, snapshots=27 * 10)
UNBIASED_ENUM = dict(n=2, seed=33, reps=800, snapshots=8)
UNBIASED_N7 = dict(n=7, reps=40, snapshots=729 * 7)
CALIBRATION = dict(n=2, seed=34, reps=2000, snapshots=9 * 20 * 20)


def _unbiased_complete_tape():
    return rotation_tape(
        UNBIASED_COMPLETE["n"],
        UNBIASED_COMPLETE["seed"],
        [
            qml.expval(qml.Hamiltonian([0.6, -0.8], [qml.Z(0) @ qml.X(2), qml.Y(1)])),
            qml.probs(wires=[2, 0]),
        ],
        UNBIASED_COMPLETE["snapshots"],
    )


def _enum_tape():
    return rotation_tape(
        UNBIASED_ENUM["n"],
        UNBIASED_ENUM["seed"],
        [qml.expval(qml.Z(0) @ qml.Z(1) + 0.5 * qml.X(0) @ qml.Y(1))],
        UNBIASED_ENUM["snapshots"],
        layers=1,
    )


def _n7_tape():
    """Near-product state on 7 qubits: Z^7 makes the derivatives weight-7 Pauli words.

    Qubit 0 is rotated close to X, so ``<X_0 Z_1 ... Z_6>`` is close to 1: the derivative of
    ``RY`` on qubit 0 is large and has little shot noise, while a weight-7 word is covered by
    only ``pi_7 = 0.28`` of the plans (729 random bases): the coverage correction matters.
    """
    n = 7
    rng = np.random.default_rng(37)
    ops = [qml.RY(np.pi / 2 - 0.15, 0)] + [qml.RY(rng.uniform(0.05, 0.2), q) for q in range(1, n)]
    ops += [qml.RX(rng.uniform(0.02, 0.1), q) for q in range(n)]
    obs = qml.Hamiltonian(
        [1.0, 0.5], [qml.prod(*[qml.Z(q) for q in range(n)]), qml.X(0) @ qml.Z(3)]
    )
    tape = QuantumScript(ops, [qml.expval(obs)], shots=UNBIASED_N7["snapshots"])
    tape.trainable_params = list(range(2 * n))
    return tape


def _variance_tape():
    # a sum: for one Pauli word <O>^ and d<O>^ never share a basis and are uncorrelated
    obs = qml.Z(0) @ qml.X(1) + qml.X(0) + qml.Y(1)
    return rotation_tape(2, 55, [qml.var(obs)], 3**2 * 2, layers=1)


def _calibration_tape():
    return rotation_tape(
        CALIBRATION["n"],
        CALIBRATION["seed"],
        [qml.expval(qml.X(0) @ qml.Z(1) + 0.7 * qml.Y(1))],
        CALIBRATION["snapshots"],
        layers=1,
    )


# ---------------------------------------------------------------------------------------------
# The error budget
# ---------------------------------------------------------------------------------------------


def _count_outputs_params(tape):
    outs = sum(
        2 ** len(m.wires) if isinstance(m, qml.measurements.ProbabilityMP) else 1
        for m in tape.measurements
    )
    return outs * len(tape.trainable_params)


N_CHECKS = (
    sum(c.num_outputs * len(c.w0) for c in CASES) * len(DEVICES)  # correctness z-tests
    + _count_outputs_params(_unbiased_complete_tape())  # unbiasedness, complete plan
    + _count_outputs_params(_variance_tape())  # unbiasedness of the var gradient
    + _count_outputs_params(_enum_tape())  # unbiasedness, random plan by enumeration
    + 2 * _count_outputs_params(_n7_tape())  # n=7 random plan: shot part and basis part
    + 2 * _count_outputs_params(_calibration_tape())  # coverage at 1.96 and at t_{0.975,19}
)
ALPHA_CHECK = ALPHA / N_CHECKS
Z = norm.isf(ALPHA_CHECK / 2)


def assert_within(estimate, truth, sigma, z=Z, label=""):
    """``|estimate - truth| <= z sigma`` entrywise (plus float slack for sigma = 0 entries)."""
    err = np.abs(np.asarray(estimate) - truth)
    bound = z * sigma + 1e-9
    worst = np.unravel_index(np.argmax(err / bound), err.shape)
    assert np.all(err <= bound), (
        f"{label}: entry {worst}: |{estimate[worst]:.6g} - {truth[worst]:.6g}| = "
        f"{err[worst]:.3g} > {z:.2f} sigma = {bound[worst]:.3g}"
    )


# ---------------------------------------------------------------------------------------------
# Correctness of single gradients on random circuits, both simulators
# ---------------------------------------------------------------------------------------------


@functools.cache
def exact_for_case(name):
    case = CASES_BY_NAME[name]
    exact = exact_statistics(case.tape_at, case.w0, case.n, case.snapshots)
    # the exact machinery reproduces PennyLane's own exact gradient
    dev = qml.device("default.qubit")
    qnode = qml.QNode(case.qfunc, dev, diff_method="backprop")
    w = pnp.array(case.w0, requires_grad=True)
    jac = qml.jacobian(lambda v: qml.math.hstack([qml.math.ravel(r) for r in qnode(v)]))(w)
    np.testing.assert_allclose(exact.truth, jac, atol=1e-7)
    return exact


def test_error_budget_is_consistent():
    assert 200 < N_CHECKS < 2000
    assert 4.5 < Z < 6.0


@pytest.mark.parametrize("device_name", DEVICES)
@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_gradient_within_exact_error(name, device_name):
    case = CASES_BY_NAME[name]
    exact = exact_for_case(name)
    dev = qml.device(device_name, wires=case.n, seed=1234 + case.seed)
    # strategy="pure": the textbook estimator whose exact variance is computed here (the
    # QNode default, the hybrid "auto", mixes in parameter-shift circuits)
    qnode = qml.QNode(
        case.qfunc,
        dev,
        diff_method="shadow",
        shots=case.snapshots,
        gradient_kwargs={"strategy": "pure"},
    )
    w = pnp.array(case.w0, requires_grad=True)
    with sg.record() as rec:
        jac = qml.jacobian(lambda v: qml.math.hstack([qml.math.ravel(r) for r in qnode(v)]))(w)
    assert jac.shape == exact.truth.shape
    assert rec[0].snapshots == case.snapshots and rec[0].circuits == 3**case.n
    assert np.any(exact.sigma > 1e-6) and np.abs(exact.truth).max() > 0.05  # non-trivial
    # power: some entry's sign flip would move it by more than the tolerance
    assert np.max(2 * np.abs(exact.truth) - (Z * exact.sigma + 1e-9)) > 0
    assert_within(jac, exact.truth, exact.sigma, label=f"{name} on {device_name}")


def test_estimator_is_the_linear_functional_of_the_samples():
    """The model behind the exact variances, checked sample by sample (no statistics).

    From the device samples themselves: expval/probs derivatives are
    ``sum_b sum_shots w_b(s)``, and the var derivative is ``mean_k d_k - 2 U(a, b)`` over the
    groups (shot ``i`` of a basis belongs to group ``i mod K``).
    """
    n, snapshots = 2, 9 * 20 * 3
    tape = rotation_tape(
        n,
        41,
        [qml.expval(qml.X(0) @ qml.Y(1)), qml.probs(wires=[1]), qml.var(qml.Z(0) + qml.X(1))],
        snapshots,
        layers=1,
    )
    tape_at, w0 = tape_problem(tape)
    tapes, fn = sg.shadow_grad(tape, strategy="pure")
    results = qml.execute(tapes, qml.device("default.qubit", seed=5))
    got = flatten_jacobian(fn(results))

    bases_obj = Bases(n)
    rows, samples = parse_snapshot_tapes(tapes, results, tape.wires, n)
    shots = snapshots // 3**n
    assert sorted(map(tuple, rows)) == sorted(map(tuple, bases_obj.all))
    _, derivs = heisenberg_derivatives(tape_at, w0, n)
    args = len(w0)

    def gam(pos):
        return np.array([pauli_expand(derivs[a][pos]).real / 2**n for a in range(args)])

    def estimate(gammas, per_basis_shots, select):
        n_cover = per_basis_shots * 3.0 ** (n - bases_obj.word_weight)
        w = shot_weights(bases_obj, gammas, rows, n_cover)  # (C, B, 2^n)
        total = np.zeros(len(gammas))
        for b, s in enumerate(samples):
            keep = select(np.arange(len(s)))
            total += w[:, b, s[keep]].sum(axis=1)
        return total

    everything = lambda i: np.ones_like(i, dtype=bool)  # noqa: E731
    want = [estimate(gam(0), shots, everything)]
    want += [estimate(gam(1 + s), shots, everything) for s in range(2)]
    comps = component_matrices(tape, n)
    g_a = pauli_expand(comps[2][1]).real[None] / 2**n
    per_group = []
    for k in range(GROUPS):
        sel = lambda i, k=k: i % GROUPS == k  # noqa: E731
        a_k = estimate(g_a, shots // GROUPS, sel)[0]
        b_k = estimate(gam(3), shots // GROUPS, sel)
        d_k = estimate(gam(4), shots // GROUPS, sel)
        per_group.append((a_k, b_k, d_k))
    a = np.array([g[0] for g in per_group])
    b = np.array([g[1] for g in per_group])
    d = np.array([g[2] for g in per_group])
    u_stat = (a.sum() * b.sum(0) - (a[:, None] * b).sum(0)) / (GROUPS * (GROUPS - 1))
    want.append(d.mean(0) - 2 * u_stat)
    np.testing.assert_allclose(got, np.array(want), atol=1e-9)


def parse_snapshot_tapes(tapes, results, wire_order, n):
    """Bases (digits 1, 2, 3 per wire of ``wire_order``) and outcome integers per basis.

    Reads the basis rotations the tapes append (X: RY(-pi/2), Y: RX(pi/2), Z: none) and the
    ``qml.sample`` results (wire 0 of ``wire_order`` most significant).
    """
    rows, samples = [], []
    for tape, res in zip(tapes, results):
        rot = tape.operations[-2 * n :]
        ry = [np.atleast_1d(np.asarray(rot[2 * q].parameters[0])) for q in range(n)]
        rx = [np.atleast_1d(np.asarray(rot[2 * q + 1].parameters[0])) for q in range(n)]
        assert [op.wires[0] for op in rot[::2]] == list(wire_order)
        batch = len(ry[0])
        digits = np.zeros((batch, n), dtype=np.int64)
        for q in range(n):
            digits[:, q] = np.where(
                np.isclose(ry[q], -np.pi / 2), 1, np.where(np.isclose(rx[q], np.pi / 2), 2, 3)
            )
        arr = np.asarray(res).reshape(batch, -1, n)
        ints = arr @ (1 << np.arange(n - 1, -1, -1))
        rows += list(digits)
        samples += list(ints)
    return np.array(rows), samples


# ---------------------------------------------------------------------------------------------
# Unbiasedness over repetitions, default plans
# ---------------------------------------------------------------------------------------------


def test_unbiased_complete_plan_default():
    tape = _unbiased_complete_tape()
    tape_at, w0 = tape_problem(tape)
    exact = exact_statistics(tape_at, w0, UNBIASED_COMPLETE["n"], UNBIASED_COMPLETE["snapshots"])
    reps = UNBIASED_COMPLETE["reps"]
    est, batches = run_repeated(tape, reps, device_seed=77, fresh_plans=False)
    assert len(batches[0]) == 1 and batches[0][0].batch_size == 27  # the complete plan
    mean = est.mean(axis=0)
    assert_within(mean, exact.truth, exact.sigma / np.sqrt(reps), label="complete plan mean")


def test_unbiased_variance_gradient():
    """The jackknife-corrected var gradient is unbiased (the plug-in product is not).

    Few shots and K = 2 groups make the plug-in bias -2 Cov(<O>^, d<O>^) large against the
    noise; the exact mean and variance of the corrected estimate come from the group moments.
    """
    n, groups, reps = 2, 2, 2000
    tape = _variance_tape()  # one shot per group and basis
    tape_at, w0 = tape_problem(tape)
    bases_obj = Bases(n)
    u0, derivs = heisenberg_derivatives(tape_at, w0, n)
    exp_p = pauli_expand(np.outer(u0[:, 0], u0[:, 0].conj())).real
    obs = component_matrices(tape_at(w0), n)[0][1]
    g_a = pauli_expand(obs).real / 2**n
    g_b = np.array([pauli_expand(derivs[a][0]).real / 2**n for a in range(len(w0))])
    g_d = np.array([pauli_expand(derivs[a][1]).real / 2**n for a in range(len(w0))])
    mean, var, cov_ab = variance_gradient_moments(
        bases_obj, exp_p, g_a, g_b, g_d, 1, groups=groups, return_group_cov=True
    )
    # the exact mean is the gradient of the exact variance (finite differences of matrices;
    # PennyLane 0.45.1's param_shift gets var of a Sum observable wrong, so it is not used)

    def variance(w):
        t = tape_at(w)
        psi = qml.matrix(QuantumScript(t.operations), wire_order=range(n))[:, 0]
        o = qml.matrix(t.measurements[0].obs, wire_order=range(n))
        return (np.vdot(psi, o @ o @ psi) - np.vdot(psi, o @ psi) ** 2).real

    eps, eye = 1e-3, np.eye(len(w0))
    fd = [
        sum(c * variance(w0 + k * eps * eye[a]) for k, c in zip(FD_STEPS, FD_COEFFS)) / (12 * eps)
        for a in range(len(w0))
    ]
    np.testing.assert_allclose(mean, fd, atol=1e-8)
    sigma = np.sqrt(var / reps)
    # power: the plug-in -2 mean(a) mean(b) is off by -2 Cov(A, B) = -2 cov_ab / K
    live = sigma > 1e-9
    assert np.max(np.abs(2 * cov_ab / groups)[live] / (Z * sigma[live])) > 1.5

    est, batches = run_repeated(tape, reps, device_seed=81, fresh_plans=False, groups=groups)
    assert batches[0][0].batch_size == 3**n
    assert_within(est.mean(axis=0)[0], mean, sigma, label="var gradient mean")


def enumerate_random_plan(bases_obj, exp_p, gammas, num_bases):
    """Exact mean and variance of the coverage-corrected ratio estimator, 1 shot per basis.

    Enumerates the multisets of ``num_bases`` bases drawn uniformly with replacement.
    """
    n = bases_obj.n
    types = bases_obj.all
    num_types = len(types)
    idx = bases_obj.covered(types)  # (types, 2^n)
    pi = 1.0 - (1.0 - 3.0 ** (-bases_obj.word_weight)) ** num_bases
    p = bases_obj.probabilities(exp_p, types)  # (types, 2^n)
    cover = np.zeros((num_types, 4**n))
    for t in range(num_types):
        cover[t, idx[t]] = 1.0
    e_mu = np.zeros(len(gammas))
    e_mu2 = np.zeros(len(gammas))
    e_v = np.zeros(len(gammas))
    log_fact = [math.lgamma(k + 1) for k in range(num_bases + 1)]
    for combo in itertools.combinations_with_replacement(range(num_types), num_bases):
        counts = np.bincount(combo, minlength=num_types)
        logp = log_fact[num_bases] - sum(log_fact[c] for c in counts)
        prob = math.exp(logp - num_bases * math.log(num_types))
        m = counts @ cover  # covering shots per word
        used = np.flatnonzero(counts)
        c = gammas[:, idx[used]] / (m[idx[used]] * pi[idx[used]])[None]
        w = c @ bases_obj.parity  # (C, used, 2^n)
        mb = np.einsum("us,cus->cu", p[used], w)
        vb = np.einsum("us,cus->cu", p[used], w * w) - mb**2
        mu = mb @ counts[used]
        e_mu += prob * mu
        e_mu2 += prob * mu**2
        e_v += prob * (vb @ counts[used])
    return e_mu, e_v + e_mu2 - e_mu**2


def test_unbiased_random_plan_default_exact_enumeration():
    """Default plan with 3**n > T: random bases, one shot each, coverage-corrected.

    The exact mean and variance come from enumerating every multiset of bases.
    """
    n, snapshots, reps = UNBIASED_ENUM["n"], UNBIASED_ENUM["snapshots"], UNBIASED_ENUM["reps"]
    tape = _enum_tape()
    tape_at, w0 = tape_problem(tape)
    exact_complete = exact_statistics(tape_at, w0, n, 9)  # only for the truth and gammas
    truth, gammas = exact_complete.truth[0], exact_complete.gammas[0]
    bases_obj = Bases(n)
    mean, var = enumerate_random_plan(bases_obj, exact_complete.exp_p, gammas, snapshots)
    np.testing.assert_allclose(mean, truth, atol=1e-12)  # the coverage correction, exactly

    # power: without the coverage correction the mean would be off by more than 1.5 times the
    # tolerance, so that estimator would fail with probability > Phi(0.5 Z) > 0.99
    pi = 1.0 - (1.0 - 3.0 ** (-bases_obj.word_weight)) ** snapshots
    uncorrected = (gammas * exact_complete.exp_p * pi).sum(axis=1)
    tolerance = Z * np.sqrt(var / reps)
    assert np.max(np.abs(uncorrected - truth) / tolerance) > 1.5

    est, batches = run_repeated(tape, reps, device_seed=78)
    assert batches[0][0].batch_size == snapshots  # random plan: one basis per snapshot
    assert_within(est.mean(axis=0)[0], truth, np.sqrt(var / reps), label="random plan mean")


def conditional_moments(bases_obj, exp_p, gammas, drawn, shots, corrected=True):
    """Exact moments of the estimator GIVEN the drawn bases (``shots`` per basis).

    Returns the conditional mean and variance ``(C,)`` and the largest deviation
    ``|w_b(s) - E w_b|`` of one shot's contribution over outcomes of nonzero probability.
    """
    n = bases_obj.n
    idx = bases_obj.covered(drawn)
    m = shots * np.bincount(idx.ravel(), minlength=4**n).astype(float)  # covering shots
    pi = 1.0 - (1.0 - 3.0 ** (-bases_obj.word_weight)) ** len(drawn)
    if not corrected:  # the plain ratio estimator, for the power check
        pi = np.ones_like(pi)
    c = gammas[:, idx] / (m[idx] * pi[idx])[None]
    w = c @ bases_obj.parity
    p = bases_obj.probabilities(exp_p, drawn)
    mb = np.einsum("bs,cbs->cb", p, w)
    vb = np.einsum("bs,cbs->cb", p, w * w) - mb**2
    dev = np.where(p[None] > 1e-15, np.abs(w - mb[..., None]), 0.0).max(axis=(1, 2))
    return shots * mb.sum(1), shots * vb.sum(1), dev


def coverage_variance(bases_obj, coeffs, num_bases):
    """Exact ``Var(sum_P c_P 1[P covered] / pi_P)`` over ``num_bases`` uniform random bases."""
    support = np.flatnonzero(np.abs(coeffs) > 1e-14)
    digits = bases_obj.word_digits[support]
    w = bases_obj.word_weight[support]
    q = 3.0 ** (-w)
    pi = 1.0 - (1.0 - q) ** num_bases
    agree = np.all(
        (digits[:, None, :] == digits[None, :, :])
        | (digits[:, None, :] == 0)
        | (digits[None, :, :] == 0),
        axis=2,
    )
    union = np.count_nonzero((digits[:, None, :] > 0) | (digits[None, :, :] > 0), axis=2)
    q_both = np.where(agree, 3.0 ** (-union), 0.0)
    both = 1.0 - (1.0 - q)[:, None] ** num_bases - (1.0 - q)[None, :] ** num_bases
    both = both + (1.0 - q[:, None] - q[None, :] + q_both) ** num_bases
    cov = (both - pi[:, None] * pi[None, :]) / (pi[:, None] * pi[None, :])
    c = coeffs[support]
    bound = np.sum(np.abs(c) * np.maximum(1.0 / pi - 1.0, 1.0))
    return float(c @ cov @ c), float(bound)


def bernstein_radius(variance, bound, reps, alpha):
    """``t`` with ``P(|mean of reps i.i.d. zero-mean X| >= t) <= alpha`` for ``|X| <= bound``."""
    log_term = math.log(2.0 / alpha)
    a = 2.0 * bound * log_term / 3.0
    return (a + math.sqrt(a * a + 8.0 * reps * log_term * variance)) / (2.0 * reps)


def test_unbiased_random_plan_default_n7():
    """n=7, T=5103, default plan: 729 random bases, 7 shots each, coverage-corrected.

    Error = shot part + basis part, each bounded rigorously (Bernstein, no normal
    approximation: the rare covering shots make the shot part skewed):

    (a) given the bases the package drew (read from its tapes), the shots are independent with
        exactly known means, variances and ranges;
    (b) the conditional mean minus the truth is i.i.d. over repetitions with an exact variance
        (pair-coverage formula) and a bound.
    """
    n, snapshots, reps = 7, UNBIASED_N7["snapshots"], UNBIASED_N7["reps"]
    tape = _n7_tape()
    tape_at, w0 = tape_problem(tape)
    bases_obj = Bases(n)
    u0, derivs = heisenberg_derivatives(tape_at, w0, n)
    exp_p = pauli_expand(np.outer(u0[:, 0], u0[:, 0].conj())).real
    gammas = np.array([pauli_expand(derivs[a][0]).real / 2**n for a in range(len(w0))])
    truth = gammas @ exp_p
    analytic = QuantumScript(
        tape.operations, tape.measurements, trainable_params=tape.trainable_params
    )
    tapes, fn = qml.gradients.param_shift(analytic)
    np.testing.assert_allclose(
        truth, fn(qml.execute(tapes, qml.device("default.qubit"))), atol=1e-8
    )

    est, batches = run_repeated(tape, reps, device_seed=79)
    est = est[:, 0, :]
    num_bases, shots = 729, snapshots // 729
    mus, vs, devs, plain = [], [], [], []
    for tapes_r in batches:
        assert len(tapes_r) == 1 and tapes_r[0].batch_size == num_bases
        rows, _ = parse_snapshot_tapes(tapes_r, [np.zeros((num_bases, shots, n))], tape.wires, n)
        mu, v, dev = conditional_moments(bases_obj, exp_p, gammas, rows, shots)
        mus.append(mu)
        vs.append(v)
        devs.append(dev)
        plain.append(conditional_moments(bases_obj, exp_p, gammas, rows, shots, False)[0])
    mus, vs, devs = np.array(mus), np.array(vs), np.array(devs).max(axis=0)

    # (a) shot part: sum of reps * 5103 independent, zero-mean, bounded shot contributions
    radius_a = np.array(
        [bernstein_radius(vs[:, j].sum(), devs[j], 1, ALPHA_CHECK) for j in range(len(truth))]
    )
    total = (est - mus).sum(axis=0)
    assert np.all(np.abs(total) <= radius_a + 1e-9), (total, radius_a)
    # power: dropping the coverage correction would shift the sum by more than 1.5 radii
    shift = np.abs((np.array(plain) - mus).sum(axis=0))
    assert np.max(shift / radius_a) > 1.5

    # (b) basis part: i.i.d. over repetitions, exact variance and bound -> Bernstein radius
    for j in range(len(truth)):
        var_j, bound_j = coverage_variance(bases_obj, gammas[j] * exp_p, num_bases)
        radius = bernstein_radius(var_j, bound_j, reps, ALPHA_CHECK)
        assert abs((mus[:, j] - truth[j]).mean()) <= radius + 1e-12, j


# ---------------------------------------------------------------------------------------------
# Calibration of the reported jackknife standard errors
# ---------------------------------------------------------------------------------------------


def test_jackknife_stderr_calibration():
    """Coverage of +-1.96 se and +-t_{0.975,19} se over many independent gradients.

    Group estimates of the complete plan are means of 9 * 20 shots each, close to normal, so
    ``(estimate - truth)/se`` follows Student's t with K - 1 = 19 degrees of freedom: the
    expected coverage of +-1.96 se is about 93.5 %, that of +-t_{0.975,19} se is 95 %.
    """
    n, snapshots, reps = CALIBRATION["n"], CALIBRATION["snapshots"], CALIBRATION["reps"]
    tape = _calibration_tape()
    tape_at, w0 = tape_problem(tape)
    exact = exact_statistics(tape_at, w0, n, snapshots)
    tapes, fn = sg.shadow_grad(
        tape, strategy="pure"
    )  # the complete plan: one broadcast tape, run reps times
    assert len(tapes) == 1 and tapes[0].batch_size == 9
    results = qml.execute(tapes * reps, qml.device("default.qubit", seed=80))
    with sg.record() as rec:
        for r in range(reps):
            fn(results[r : r + 1])
    assert len(rec) == reps and all(rec_i.groups == GROUPS for rec_i in rec)
    est = np.array([r.jacobian[0] for r in rec])  # (reps, params)
    se = np.array([r.stderr[0] for r in rec])
    assert est.shape == (reps, len(w0))
    # components with an exactly vanishing derivative functional (sigma = 0) are exact
    live = exact.sigma[0] > 1e-6
    assert np.count_nonzero(live) >= 3
    assert np.all(np.abs(est[:, ~live]) < 1e-9) and np.all(se[:, ~live] < 1e-9)
    t_stat = (est - exact.truth[0]) / np.where(live, se, 1.0)
    q19 = student_t.ppf(0.975, GROUPS - 1)
    expected_196 = 2 * student_t.cdf(1.96, GROUPS - 1) - 1
    assert 0.93 < expected_196 < 0.94
    for j in np.flatnonzero(live):
        for width, p0 in ((1.96, expected_196), (q19, 0.95)):
            covered = int(np.count_nonzero(np.abs(t_stat[:, j]) <= width))
            pvalue = binomtest(covered, reps, p0).pvalue
            assert pvalue >= ALPHA_CHECK, (
                f"param {j}: coverage of +-{width:.3f} se is {covered / reps:.4f}, "
                f"expected {p0:.4f} (p = {pvalue:.2g})"
            )
    # the record's own Student-t interval is the +-t_{0.975,19} one
    low, high = rec[0].confidence_interval(0.95)[0]
    np.testing.assert_allclose(high - low, 2 * q19 * se[0], rtol=1e-12)
