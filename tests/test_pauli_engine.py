"""The sparse Pauli-propagation engine: exact against the dense engine, correct at 16-20 qubits.

Exactness: on the same operator (a random coefficient array, or the same snapshot samples) the
untruncated sparse engine and the dense engine give the same numbers to 1e-10, for every gate
type the circuit form accepts, tied parameters, Hamiltonians with trainable coefficients,
probs and var. At scale: every component within 5 reported standard errors of an exact
reference, components outside the light cone exactly zero. Refusals come before any device
time.
"""

import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp
from pennylane.tape import QuantumScript
from pennylane.wires import Wires
from scipy.stats import unitary_group

import pennylane_shadowgrad as sg
from pennylane_shadowgrad.circuit import (
    FixedGate,
    PauliRotation,
    PauliSum,
    RotationCircuit,
    decompose_for_gradient,
    rotation_form,
)
from pennylane_shadowgrad.estimators import pauli_propagation as pp
from pennylane_shadowgrad.estimators.dense import gradient_functional
from pennylane_shadowgrad.estimators.jacobian import shadow_jacobian
from pennylane_shadowgrad.plans import make_plan
from pennylane_shadowgrad.shadow_gradient import _observable_terms
from pennylane_shadowgrad.snapshots import decode, snapshot_tapes

# ---------------------------------------------------------------------------------------------
# bit-packed words
# ---------------------------------------------------------------------------------------------


def test_pack_roundtrip_and_phases():
    rng = np.random.default_rng(0)
    for n in (1, 5, 64, 70, 130):
        digits = rng.integers(0, 4, size=(20, n), dtype=np.uint8)
        x, z = pp.pack_digits(digits)
        assert x.shape == (20, pp.num_blocks(n))
        assert np.array_equal(pp.unpack_digits(x, z, n), digits)
    # single-qubit products: X Y = i Z, Y X = -i Z, Z X = i Y, X X = I
    d = {"I": 0, "X": 1, "Y": 2, "Z": 3}
    for a, b, e in [("X", "Y", 1), ("Y", "X", 3), ("Z", "X", 1), ("X", "X", 0), ("Y", "Z", 1)]:
        xa, za = pp.pack_digits(np.array([[d[a]]]))
        xb, zb = pp.pack_digits(np.array([[d[b]]]))
        assert pp.product_phase(xa, za, xb, zb)[0] == e
        assert pp.anticommutes(xa, za, xb, zb)[0] == (e % 2 == 1)


# ---------------------------------------------------------------------------------------------
# exactness on a random operator: the G_j themselves
# ---------------------------------------------------------------------------------------------


def _random_circuit(n, rng, num_gates, num_params):
    gates = []
    for _ in range(num_gates):
        kind = rng.integers(4)
        if kind < 2 or n == 1:
            k = int(rng.integers(1, min(n, 3) + 1))
            wires = tuple(int(w) for w in rng.choice(n, size=k, replace=False))
            digits = tuple(int(d) for d in rng.integers(1, 4, size=k))
            param = int(rng.integers(num_params)) if rng.random() < 0.8 else None
            gates.append(
                PauliRotation(wires, digits, float(rng.uniform(-3, 3)), param, rng.choice([1, -2]))
            )
        elif kind == 2:  # a Clifford or T on one or two qubits
            mats = [qml.CNOT([0, 1]), qml.CZ([0, 1]), qml.SWAP([0, 1]), qml.H(0), qml.S(0)]
            mats.append(qml.T(0))
            op = mats[rng.integers(len(mats))]
            wires = tuple(int(w) for w in rng.choice(n, size=len(op.wires), replace=False))
            if len(wires) <= n:
                gates.append(FixedGate(wires, qml.matrix(op)))
        else:  # a generic (non-Clifford) fixed gate
            k = min(n, 2)
            wires = tuple(int(w) for w in rng.choice(n, size=k, replace=False))
            gates.append(FixedGate(wires, unitary_group.rvs(2**k, random_state=rng)))
    return RotationCircuit(Wires(range(n)), tuple(gates), num_params)


def _flat_indices(model):
    digits = pp.unpack_digits(model.words_x, model.words_z, model.num_qubits)
    return np.ravel_multi_index(digits.T.astype(np.int64), (4,) * model.num_qubits)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
def test_generators_equal_dense_on_random_operator(n):
    """``sum_w g_w x_w`` equals the dense sweep for a random coefficient array ``x``."""
    rng = np.random.default_rng(n)
    circuit = _random_circuit(n, rng, num_gates=6 * n + 4, num_params=max(2, n))  # tied
    terms = rng.integers(0, 4, size=(3, n), dtype=np.uint8)
    terms[terms.sum(1) == 0, 0] = 3
    obs = PauliSum(terms, rng.normal(size=3))
    x = rng.normal(size=(2,) + (4,) * n)
    dense = gradient_functional(circuit, obs, x)
    model = pp.build_model(circuit, [obs])
    xw = x.reshape(2, -1)[:, _flat_indices(model)]
    np.testing.assert_allclose(model.gradient_values(0, xw), dense, atol=1e-10, rtol=0)


# ---------------------------------------------------------------------------------------------
# exactness on the same snapshot samples: every gate type, probs, var, trainable Hamiltonians
# ---------------------------------------------------------------------------------------------


def _ops(n, rng, layers):
    """Random gates of every type; angles drawn by ``rng`` are trainable, 0.4 is fixed."""

    def angle():
        return pnp.array(rng.uniform(-3, 3), requires_grad=True)

    ops = []
    for _ in range(layers):
        for q in range(n):
            gate = [qml.RX, qml.RY, qml.RZ, qml.PhaseShift][rng.integers(4)]
            ops.append(gate(angle(), wires=q))
        if n >= 2:
            a, b = (int(w) for w in rng.choice(n, size=2, replace=False))
            ops += [
                qml.CNOT([a, b]),
                qml.CZ([b, a]),
                qml.H(a),
                qml.S(b),
                qml.T(a),
                qml.SWAP([a, b]),
            ]
            ops.append([qml.IsingXX, qml.IsingYY, qml.IsingZZ][rng.integers(3)](0.4, [a, b]))
            ops.append(qml.CRX(angle(), [b, a]))  # tied: two rotations, one parameter
            ops.append(qml.PauliRot(angle(), "XY", wires=[a, b]))
        if n >= 3:
            wires = [int(w) for w in rng.choice(n, size=3, replace=False)]
            ops += [qml.Toffoli(wires), qml.MultiRZ(angle(), wires=wires)]
    return ops


def _same_snapshots(ops, measurements, snapshots, bases, groups):
    tape = QuantumScript(ops, measurements)
    tape.trainable_params = qml.math.get_trainable_indices(
        tape.get_parameters(trainable_only=False)
    )
    tape = decompose_for_gradient(tape)
    terms = _observable_terms(tape)
    circuit = rotation_form(tape)
    plan = make_plan(circuit.num_qubits, snapshots, bases=bases, groups=groups, seed=7)
    tapes = snapshot_tapes(QuantumScript(tape.operations, []), plan, circuit.wire_order)
    results = qml.execute(tapes, qml.device("default.qubit", seed=11))
    dense_jacs, dense_errs = shadow_jacobian(
        tape, circuit, plan, decode(results, plan), terms, True
    )
    tm = pp.tape_model(tape, circuit, terms)
    jacs, errs, bounds = pp.pauli_jacobian(tape, tm, plan, pp.decode_bits(results, plan), True)
    for a, b, ea, eb, bound in zip(dense_jacs, jacs, dense_errs, errs, bounds):
        np.testing.assert_allclose(b, a, atol=1e-10, rtol=0)
        np.testing.assert_allclose(eb, ea, atol=1e-10, rtol=0)
        assert np.all(bound == 0.0)
    return tm


FAMILIES = [
    # n, layers, snapshots, bases, groups
    (1, 3, 300, "auto", 5),
    (2, 2, 900, "auto", 5),
    (3, 2, 2000, "auto", 4),
    (4, 1, 3000, 40, 6),
    (5, 1, 3000, "auto", 4),
    (8, 1, 2000, "auto", 3),
]


@pytest.mark.parametrize("n, layers, snapshots, bases, groups", FAMILIES)
def test_same_snapshots_equal_dense(n, layers, snapshots, bases, groups):
    rng = np.random.default_rng(10 + n)
    ops = _ops(n, rng, layers)
    w = list(range(n))
    pair = qml.X(w[0]) @ qml.Y(w[-1]) if n > 1 else qml.X(0)
    hamiltonian = qml.Hamiltonian([0.7, -1.3, 0.4], [qml.Z(w[-1]), pair, qml.Y(w[n // 2])])
    measurements = [qml.expval(hamiltonian), qml.probs(wires=w[: min(n, 2)])]
    measurements.append(qml.var(qml.Z(w[0]) + 0.5 * qml.X(w[-1])))
    _same_snapshots(ops, measurements, snapshots, bases, groups)


def test_same_snapshots_trainable_hamiltonian_coefficients():
    rng = np.random.default_rng(3)
    ops = _ops(3, rng, 1)
    coeffs = pnp.array([0.7, -1.3, 0.4], requires_grad=True)
    hamiltonian = qml.Hamiltonian(coeffs, [qml.Z(2), qml.X(0) @ qml.Y(2), qml.Y(1) @ qml.Z(0)])
    tm = _same_snapshots(ops, [qml.expval(hamiltonian)], 1500, "auto", 4)
    assert len(tm.terms) == 3


def test_same_snapshots_ten_qubits():
    rng = np.random.default_rng(99)
    ops = _ops(10, rng, 1)
    _same_snapshots(ops, [qml.expval(qml.Z(3) @ qml.X(7) + 0.5 * qml.Y(0))], 3000, "auto", 2)


def test_qnode_engines_agree_on_same_seed():
    """Through the transform: engine='pauli' and 'dense' give the same gradient and errors."""

    def make(engine):
        dev = qml.device("default.qubit", seed=5)
        opts = {"engine": engine, "seed": 3, "strategy": "pure", "groups": 5}

        @qml.qnode(dev, diff_method="shadow", shots=2000, gradient_kwargs=opts)
        def f(w):
            for q in range(3):
                qml.RY(w[q], q)
            qml.CNOT([0, 1])
            qml.CRZ(w[3], [1, 2])
            return qml.expval(qml.Z(1) @ qml.X(2)), qml.probs(wires=[0])

        return f

    w = pnp.array([0.3, -0.8, 1.2, 0.5], requires_grad=True)
    out = []
    for engine in ("dense", "pauli"):
        with sg.record() as rec:
            out.append(qml.jacobian(lambda v, e=engine: qml.math.hstack(make(e)(v)))(w))
        out.append(rec[0])
    np.testing.assert_allclose(out[2], out[0], atol=1e-10, rtol=0)
    assert out[1].engine == "dense" and out[3].engine.startswith("pauli")
    for e_dense, e_pauli in zip(out[1].stderr, out[3].stderr):
        np.testing.assert_allclose(e_pauli, e_dense, atol=1e-10, rtol=0)
    assert out[3].report["bias_bound"][0].shape == out[3].jacobian[0].shape


# ---------------------------------------------------------------------------------------------
# truncation: the reported bias bound holds
# ---------------------------------------------------------------------------------------------


def test_truncation_bias_bound_holds_on_exact_expectations():
    n = 6
    rng = np.random.default_rng(4)
    circuit = _random_circuit(n, rng, num_gates=40, num_params=8)
    obs = PauliSum(np.array([[0, 0, 3, 3, 0, 0], [1, 0, 0, 0, 0, 2]], dtype=np.uint8), [1.0, 0.5])
    state = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    rho = np.outer(state, state.conj()) / np.vdot(state, state)
    exact = pp.build_model(circuit, [obs])
    for truncation in ({"max_weight": 2}, {"min_coefficient": 0.05}):
        approx = pp.build_model(
            circuit,
            [obs],
            max_weight=truncation.get("max_weight"),
            min_coefficient=truncation.get("min_coefficient", 0.0),
        )
        assert np.max(approx.bias_bound[0]) > 0
        values = []
        for model in (exact, approx):
            digits = pp.unpack_digits(model.words_x, model.words_z, n)
            xw = np.array([np.trace(rho @ _word_matrix(d)).real for d in digits])
            values.append(model.gradient_values(0, xw[None])[0])
        assert np.all(np.abs(values[1] - values[0]) <= approx.bias_bound[0] + 1e-12)


def _word_matrix(digits):
    mats = [np.eye(2), qml.matrix(qml.X(0)), qml.matrix(qml.Y(0)), qml.matrix(qml.Z(0))]
    out = np.ones((1, 1))
    for d in digits:
        out = np.kron(out, mats[int(d)])
    return out


# ---------------------------------------------------------------------------------------------
# at scale: a brickwork above the dense limit, against an exact reference
# ---------------------------------------------------------------------------------------------


def _brickwork(n, depth):
    def body(w):
        for layer in range(depth):
            for q in range(n):
                qml.RY(w[layer, q, 0], q)
                qml.RZ(w[layer, q, 1], q)
            for q in range(layer % 2, n - 1, 2):
                qml.CZ([q, q + 1])
        return qml.expval(qml.Z(n // 2 - 1) @ qml.Z(n // 2))

    return body


def _check_at_scale(n, depth, snapshots):
    body = _brickwork(n, depth)
    w = pnp.array(np.random.default_rng(n).uniform(0, 2 * np.pi, (depth, n, 2)), requires_grad=True)
    dev = qml.device("lightning.qubit", wires=n, seed=17)
    qnode = qml.QNode(body, dev, diff_method="shadow", shots=snapshots, gradient_kwargs={"seed": 2})
    with sg.record() as rec:
        grad = qml.grad(qnode)(w)
    exact = qml.grad(qml.QNode(body, qml.device("default.qubit", wires=n), diff_method="adjoint"))(
        w
    )
    record = rec[0]
    assert record.strategy == "auto" and record.engine.startswith("pauli")
    assert any("variance proxies" in note for note in record.notes)
    se = record.stderr[0].reshape(grad.shape)
    inside = np.abs(exact) > 1e-10
    assert np.all(grad[~inside] == 0.0) and np.all(se[~inside] == 0.0)
    assert inside.sum() < grad.size  # the light cone leaves components out
    assert np.all(np.abs(grad - exact)[inside] <= 5 * se[inside])
    return record


def test_sixteen_qubit_brickwork_within_five_standard_errors():
    record = _check_at_scale(16, 3, 20000)
    assert record.num_qubits == 16


@pytest.mark.slow
def test_twenty_qubit_brickwork_within_five_standard_errors():
    _check_at_scale(20, 3, 30000)


# ---------------------------------------------------------------------------------------------
# selection and refusals, all before any device time
# ---------------------------------------------------------------------------------------------


def _three(w, measure=qml.expval):
    qml.RY(w[0], 0)
    qml.CNOT([0, 1])
    qml.RX(w[1], 2)
    qml.CNOT([1, 2])
    return measure(qml.Z(2))


W = pnp.array([0.4, -0.3], requires_grad=True)


def test_auto_engine_above_max_qubits_runs_the_default_strategy_on_the_sparse_engine():
    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(
        _three, dev, diff_method="shadow", shots=600, gradient_kwargs={"max_qubits": 2}
    )
    with sg.record() as rec:
        qml.grad(qnode)(W)
    assert rec[0].strategy == "auto"
    assert rec[0].engine.startswith("pauli")
    assert rec[0].report["planning"] == "proxy"
    assert rec[0].notes[0] == "strategy='auto' (default)"


def test_sparse_default_runs_pure_for_var_and_says_why():
    def body(w):
        return _three(w, qml.var)

    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(body, dev, diff_method="shadow", shots=600, gradient_kwargs={"max_qubits": 2})
    with sg.record() as rec:
        qml.grad(qnode)(W)
    assert rec[0].strategy == "pure" and rec[0].engine.startswith("pauli")
    assert "var measurement is present" in rec[0].notes[0]


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"engine": "sparse"}, ValueError, "'engine' must be one of"),
        ({"truncation": {"weight": 2}}, ValueError, "'truncation' must be None"),
        ({"truncation": {"max_weight": 0}}, ValueError, "max_weight'] must be an integer"),
        ({"truncation": {"min_coefficient": -1.0}}, ValueError, "min_coefficient'] must be"),
        ({"max_words": 0}, ValueError, "'max_words' must be a positive integer"),
        (
            {"engine": "pauli", "biased_bases": True},
            ValueError,
            "with the default strategy is not available on the sparse engine",
        ),
        ({"engine": "dense", "max_qubits": 2}, ValueError, "acts on 3 qubits"),
        (
            {"engine": "pauli", "max_words": 1, "strategy": "pure"},
            pp.PauliEngineLimitError,
            "above its cap",
        ),
    ],
)
def test_refused_before_any_execution(options, error, match):
    dev = qml.device("default.qubit", seed=1)
    qnode = qml.QNode(_three, dev, diff_method="shadow", shots=600, gradient_kwargs=options)
    with qml.Tracker(dev) as tracker, pytest.raises(error, match=match):
        qml.grad(qnode)(W)
    assert tracker.totals.get("executions", 0) == 0


def test_limit_error_names_sizes_and_a_truncation_that_fits():
    n = 12
    rng = np.random.default_rng(0)
    circuit = _random_circuit(n, rng, num_gates=120, num_params=30)
    obs = PauliSum(np.full((1, n), 3, dtype=np.uint8), np.array([1.0]))
    with pytest.raises(pp.PauliEngineLimitError, match="max_weight") as info:
        pp.build_model(circuit, [obs], max_words=200)
    assert "words by pauli weight" in str(info.value).lower()


def test_estimated_words_cap_refuses():
    """A Hamiltonian can need more estimated words than carried ones: that cap holds too."""
    n = 6
    ops = [qml.RY(pnp.array(0.3 + 0.1 * q, requires_grad=True), q) for q in range(n)]
    ops += [qml.CNOT([q, q + 1]) for q in range(n - 1)]
    ham = qml.Hamiltonian(
        [1.0] * (2 * n - 1),
        [qml.Z(q) @ qml.Z(q + 1) for q in range(n - 1)] + [qml.X(q) for q in range(n)],
    )
    tape = QuantumScript(ops, [qml.expval(ham)])
    tape.trainable_params = list(range(n))
    circuit = rotation_form(decompose_for_gradient(tape))
    exact = pp.tape_model(tape, circuit, {})
    cap = exact.model.peak_words + 1
    assert exact.model.num_words > cap
    with pytest.raises(pp.PauliEngineLimitError, match=r"G_j of 6 parameters.*above the cap"):
        pp.tape_model(tape, circuit, {}, max_words=cap)


def _light_cone_reference(body, w, observable_wires):
    """Exact gradient from the gates in the observable's backward light cone (default.qubit)."""
    tape = qml.tape.make_qscript(body)(w)
    ops, obs = tape.operations, tape.measurements[0].obs
    cone, keep = set(observable_wires), []
    for i in range(len(ops) - 1, -1, -1):
        if set(ops[i].wires.tolist()) & cone:
            cone |= set(ops[i].wires.tolist())
            keep.append(i)
    keep.sort()
    # op index -> position in w.ravel() (the body uses w in ravel order)
    param_of = dict(zip([i for i, op in enumerate(ops) if op.num_params], range(w.size)))
    trainable = [i for i in keep if ops[i].num_params]

    def reduced(v):
        it = iter(v)
        for i in keep:
            op = ops[i]
            if op.num_params:
                type(op)(next(it), wires=op.wires)
            else:
                type(op)(wires=op.wires)
        return qml.expval(obs)

    dev = qml.device("default.qubit", wires=sorted(cone))
    values = pnp.array([float(w.ravel()[param_of[i]]) for i in trainable], requires_grad=True)
    grad = qml.grad(qml.QNode(reduced, dev, diff_method="backprop"))(values)
    exact = np.zeros(w.size)
    exact[[param_of[i] for i in trainable]] = grad
    return exact.reshape(w.shape)


@pytest.mark.slow
def test_fifty_qubit_brickwork_on_aer_mps_default_options():
    """50 qubits, depth 3, M = 300, qiskit.aer MPS at default options: within 5 SE (~2 min)."""
    pytest.importorskip("pennylane_qiskit")
    n, depth = 50, 3
    body = _brickwork(n, depth)
    w = pnp.array(
        np.random.default_rng(50).uniform(0, 2 * np.pi, (depth, n, 2)), requires_grad=True
    )
    dev = qml.device("qiskit.aer", wires=n, method="matrix_product_state", seed=3)
    qnode = qml.QNode(body, dev, diff_method="shadow", shots=30000, gradient_kwargs={"seed": 2})
    with sg.record() as rec:
        grad = qml.grad(qnode)(w)
    record = rec[0]
    assert record.engine.startswith("pauli") and record.postprocessing_seconds < 60
    exact = _light_cone_reference(body, w, [n // 2 - 1, n // 2])
    se = record.stderr[0].reshape(grad.shape)
    inside = np.abs(exact) > 1e-10
    assert np.all(grad[~inside] == 0.0)
    assert np.all(np.abs(grad - exact)[inside] <= 5 * se[inside])


@pytest.mark.parametrize("kind, warns", [("tfim", True), ("local", False)])
def test_sparse_default_warns_when_parameter_shift_is_likely_cheaper(kind, warns):
    """Where the default runs pure shadow above max_qubits (here: an explicit plan), a global
    Hamiltonian behind a CNOT ladder (shadow measured 12-465x worse than parameter-shift) warns
    before any device time; a two-body observable on a shallow brickwork does not."""
    import warnings

    n = 13
    dev = qml.device("default.qubit", wires=n, seed=1)
    if kind == "tfim":
        terms = [qml.Z(i) @ qml.Z(i + 1) for i in range(n - 1)] + [qml.X(i) for i in range(n)]
        obs = qml.dot([1.0] * (n - 1) + [0.7] * n, terms)
    else:
        obs = qml.Z(6) @ qml.Z(7)

    @qml.qnode(dev, diff_method="shadow", shots=300)
    def f(v):
        for layer in range(2):
            for q in range(n):
                qml.RY(v[layer * n + q], q)
            for q in range(n - 1):
                if kind == "tfim":
                    qml.CNOT([q, q + 1])  # a ladder: generators spread over every qubit
                elif (q + layer) % 2 == 0:
                    qml.CZ([q, q + 1])  # a brickwork: light cones stay small
        return qml.expval(obs)

    x = qml.numpy.array(np.linspace(0.1, 2.0, 2 * n), requires_grad=True)
    with qml.Tracker(dev) as tracker, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sg.shadow_grad(qml.workflow.construct_tape(f)(x), bases="per-shot")
        # the default strategy plans instead: it warns about nothing
        sg.shadow_grad(qml.workflow.construct_tape(f)(x))
    assert tracker.totals.get("executions", 0) == 0
    hits = [w for w in caught if "likely much cheaper" in str(w.message)]
    assert len(hits) == int(warns)
    if warns:
        assert "explicit snapshot plan" in str(hits[0].message)
