"""The default strategy on the sparse engine (above ``max_qubits``): proxy planning and shedding.

Truth: ``diff_method="backprop"`` on a shot-free ``default.qubit``. Statistical checks are
per-component Student-t tests with the record's own standard error and degrees of freedom;
their family-wise false-failure rate over this file is below ``ALPHA`` (Bonferroni over at
most ``MAX_CHECKS`` checks, asserted by the counter in ``test_check_budget``).
"""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp
from scipy.stats import t as student_t

import pennylane_shadowgrad as sg
from pennylane_shadowgrad import hybrid
from pennylane_shadowgrad.circuit import decompose_for_gradient, rotation_form
from pennylane_shadowgrad.estimators import pauli_propagation as pp
from pennylane_shadowgrad.variance import simulate

ALPHA = 1e-4
MAX_CHECKS = 200
_CHECKS = []


def _ladder_tape(n: int, depth: int, seed: int, observable):
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(depth):
        ops += [
            qml.RY(pnp.array(a, requires_grad=True), q)
            for q, a in enumerate(rng.uniform(0, 6.3, n))
        ]
        ops += [qml.CNOT([q, q + 1]) for q in range(n - 1)]
    tape = qml.tape.QuantumScript(ops, [qml.expval(observable)])
    tape.trainable_params = list(range(n * depth))
    return decompose_for_gradient(tape)


def _tfim(n: int):
    terms = [qml.Z(q) @ qml.Z(q + 1) for q in range(n - 1)] + [qml.X(q) for q in range(n)]
    return qml.dot([1.0] * (n - 1) + [0.7] * n, terms)


def _exact_rows(model, circuit) -> np.ndarray:
    """``Tr(rho G_j)`` for every parameter, from the exact state (small ``n``)."""
    n = circuit.num_qubits
    psi = simulate(circuit)[0].reshape(-1)
    digits = pp.unpack_digits(model.words_x, model.words_z, n)
    mats = [np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1, -1])]
    values = []
    for d in digits:
        out = psi.reshape([2] * n)
        for q, k in enumerate(d):
            out = np.moveaxis(np.tensordot(mats[int(k)], out, axes=([1], [q])), 0, q)
        values.append(np.vdot(psi, out.reshape(-1)).real)
    return model.gradient_values(0, np.array(values)[None])[0]


def test_shedding_removes_whole_parameters_and_keeps_the_rest_exact():
    n, depth = 7, 3
    tape = _ladder_tape(n, depth, 0, _tfim(n))
    circuit = rotation_form(tape)
    exact = pp.tape_model(tape, circuit, {}).model
    cap = exact.peak_words // 4
    with pytest.raises(pp.PauliEngineLimitError):
        pp.tape_model(tape, circuit, {}, max_words=cap)
    shed = pp.tape_model(tape, circuit, {}, max_words=cap, shed=True).model
    assert shed.shed.any() and not shed.shed.all()
    assert shed.peak_words <= 2 * cap  # a rotation can double the rows before they are shed
    full, part = _exact_rows(exact, circuit), _exact_rows(shed, circuit)
    np.testing.assert_allclose(part[~shed.shed], full[~shed.shed], atol=1e-10)
    assert np.all(part[shed.shed] == 0.0)
    # the earliest parameters carry the longest generators: they go first, the last stay
    assert shed.shed[0] and not shed.shed[-1]


def _assert_within(grad, exact, record):
    se = np.ravel(record.stderr[0])
    dof = np.ravel(record.dof[0])
    grad, exact = np.ravel(grad), np.ravel(exact)
    _CHECKS.append(grad.size)
    q = student_t.ppf(1 - ALPHA / MAX_CHECKS / 2, np.where(np.isnan(dof), 1.0, dof))
    q = np.where(se > 0, q, 0.0)
    bad = np.abs(grad - exact) > q * se + 1e-9
    assert not bad.any(), (grad[bad], exact[bad], se[bad], dof[bad])


@pytest.mark.parametrize("max_words, bases", [(None, None), (60, None), (None, 16)])
@pytest.mark.parametrize("seed", [0, 1])
def test_default_on_the_sparse_engine_is_within_its_error_bars(seed, max_words, bases):
    """Five qubits forced onto the sparse engine (``max_qubits=2``), TFIM Hamiltonian behind a
    CNOT ladder; with ``max_words=60`` the earliest parameters are shed to parameter-shift;
    an integer ``bases`` caps the snapshot circuits and the default strategy still plans."""
    n, depth = 5, 2
    obs = _tfim(n)

    def body(w):
        for layer in range(depth):
            for q in range(n):
                qml.RY(w[layer, q], q)
            for q in range(n - 1):
                qml.CNOT([q, q + 1])
        return qml.expval(obs)

    w = pnp.array(np.random.default_rng(seed).uniform(0, 6.3, (depth, n)), requires_grad=True)
    exact = qml.grad(qml.QNode(body, qml.device("default.qubit"), diff_method="backprop"))(w)
    kwargs = {"max_qubits": 2, "seed": seed}
    if max_words is not None:
        kwargs["max_words"] = max_words
    if bases is not None:
        kwargs["bases"] = bases
    dev = qml.device("default.qubit", seed=100 + seed)
    qnode = qml.QNode(body, dev, diff_method="shadow", shots=6000, gradient_kwargs=kwargs)
    with sg.record() as rec:
        grad = qml.grad(qnode)(w)
    record = rec[-1]
    assert record.strategy == "auto" and record.engine.startswith("pauli")
    assert record.report["planning"] == "proxy"
    shed_notes = [note for note in record.notes if "max_words" in note]
    if max_words is None:
        assert not shed_notes
    else:
        assert shed_notes
        tape = decompose_for_gradient(qml.workflow.construct_tape(qnode)(w))
        shed = pp.tape_model(tape, rotation_form(tape), {}, max_words=60, shed=True).model.shed
        assert shed.any() and not shed.all()
        # shed components are served by the shifted tapes alone
        assert set(np.flatnonzero(shed)) <= set(record.split["parameter_shift_components"])
        weights = np.asarray(record.split["shadow_weight"])[:, 0]
        assert np.all(weights[shed] == 0.0)
    if bases is not None:  # 16 random bases cover these words rarely: the plan may skip them
        assert f", {bases} bases" in record.plan or "no snapshots" in record.plan
    assert np.all(np.ravel(record.stderr[0]) > 0)
    _assert_within(grad, exact, record)


def test_plan_above_the_dense_limit_uses_the_proxies():
    n = 13
    obs = _tfim(n)

    @qml.qnode(qml.device("default.qubit", wires=n), shots=5000)
    def f(w):
        for q in range(n):
            qml.RY(w[q], q)
        for q in range(n - 1):
            qml.CNOT([q, q + 1])
        return qml.expval(obs)

    w = pnp.array(np.linspace(0.1, 1.3, n), requires_grad=True)
    p = sg.plan(f, w)
    assert p.source == "proxy" and any("source='proxy'" in note for note in p.notes)
    total = p.total_mse()
    assert total["auto"] <= min(total["shadow"], total["parameter-shift"]) * (1 + 1e-9)
    with pytest.raises(ValueError, match="simulates at most 12"):
        sg.plan(f, w, source="simulation")
    with pytest.raises(ValueError, match="source must be None, 'simulation' or 'proxy'"):
        sg.plan(f, w, source="pilot")
    small = sg.plan(f, w, source="proxy", shots=100)
    assert small.source == "proxy"


def test_default_trims_snapshot_bases_where_words_are_light():
    """Above max_qubits the default takes the fewest random bases within 10% of the proxy
    variance at 729: light words (a depth-1 brickwork, a sum of two-body terms) need fewer
    circuits; the proxy variance at the chosen count is within the stated slack."""
    n = 14
    obs = qml.dot([1.0] * (n - 1), [qml.Z(q) @ qml.Z(q + 1) for q in range(n - 1)])

    @qml.qnode(qml.device("default.qubit", wires=n), shots=20000)
    def f(w):
        for q in range(n):
            qml.RY(w[q, 0], q)
            qml.RZ(w[q, 1], q)
        for q in range(0, n - 1, 2):
            qml.CZ([q, q + 1])
        return qml.expval(obs)

    w = pnp.array(np.random.default_rng(1).uniform(0, 6, (n, 2)), requires_grad=True)
    p = sg.plan(f, w)
    plan = p.round.shadow_plan
    assert plan is not None and plan.random and plan.num_bases < 729
    assert any("random bases: the fewest" in note for note in p.round.notes)
    size = p.allocation.shadow
    tape = qml.workflow.construct_tape(f)(w)
    tape = decompose_for_gradient(tape)
    circuit = rotation_form(tape)
    gm = hybrid.proxy_gradient_model(
        tape, circuit, range(circuit.num_params), pp.tape_model(tape, circuit, {}, shed=True)
    )
    chosen = np.sum(hybrid.proxy_variance(gm, plan.num_bases, size))
    full = np.sum(hybrid.proxy_variance(gm, min(size, 729), size))
    assert chosen <= (1 + hybrid.BASES_SLACK) * full
    if plan.num_bases >= 40:  # the next smaller candidate would not have been within
        half = np.sum(hybrid.proxy_variance(gm, plan.num_bases // 2, size))
        assert half > (1 + hybrid.BASES_SLACK) * full


@pytest.mark.parametrize("strategy", ["pure", None])
def test_truncation_that_dominates_the_error_bar_warns(strategy):
    """A weight-1 truncation of a CNOT-ladder circuit drops every generator's mass. The pure
    strategy's bias bound then exceeds 10% of the standard error, and the record and a warning
    say so; the default strategy plans truncated components as parameter-shift (exact, no
    warning, a note), and nothing is said without truncation."""
    import warnings

    n = 4

    def body(w):
        for q in range(n):
            qml.RY(w[q], q)
        for q in range(n - 1):
            qml.CNOT([q, q + 1])
        return qml.expval(qml.Z(n - 1))

    w = pnp.array(np.linspace(0.3, 1.1, n), requires_grad=True)
    for truncation, warns in (({"max_weight": 1}, True), (None, False)):
        kwargs = {"max_qubits": 2, "seed": 1, "truncation": truncation}
        if strategy is not None:
            kwargs["strategy"] = strategy
        qnode = qml.QNode(
            body,
            qml.device("default.qubit", seed=1),
            diff_method="shadow",
            shots=4000,
            gradient_kwargs=kwargs,
        )
        with warnings.catch_warnings(record=True) as caught, sg.record() as rec:
            warnings.simplefilter("always")
            qml.grad(qnode)(w)
        warns = warns and strategy == "pure"
        hits = [c for c in caught if "bias bound exceeds" in str(c.message)]
        assert bool(hits) == warns
        assert any("bias bound exceeds" in note for note in rec[-1].notes) == warns
        if strategy is None and truncation:
            record = rec[-1]
            assert any("or truncated: parameter-shift" in note for note in record.notes)
            assert record.split["parameter_shift_components"] == list(range(n))
            assert np.all(np.ravel(record.stderr[0]) > 0)


def _brick5(w):
    for layer in range(2):
        for q in range(5):
            qml.RY(w[layer, q, 0], q)
            qml.RZ(w[layer, q, 1], q)
        for q in range(layer % 2, 4, 2):
            qml.CZ([q, q + 1])
    return qml.expval(qml.Z(2) @ qml.Z(3) + 0.4 * qml.X(0))


W5 = pnp.array(np.random.default_rng(2).uniform(0, 6, (2, 5, 2)), requires_grad=True)


def test_bias_fitted_to_sparse_words_equals_the_dense_fit():
    from pennylane_shadowgrad.circuit import output_observables
    from pennylane_shadowgrad.estimators.light_cone import gradient_blocks
    from pennylane_shadowgrad.plans import optimal_bias, optimal_bias_words

    tape = decompose_for_gradient(
        qml.workflow.construct_tape(qml.QNode(_brick5, qml.device("default.qubit")))(W5)
    )
    circuit = rotation_form(tape)
    dense = optimal_bias(gradient_blocks(circuit, output_observables(tape, circuit.wire_order)))
    model = pp.tape_model(tape, circuit, {}).model
    mass = sum(np.asarray(g.multiply(g).sum(axis=0)).reshape(-1) for g in model.gradient)
    words = optimal_bias_words(pp.unpack_digits(model.words_x, model.words_z, 5), mass)
    np.testing.assert_allclose(words, dense, atol=1e-12)
    assert not np.allclose(words, 1.0 / 3.0)  # the fit is not the uniform law


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_biased_bases_are_within_their_error_bars(seed):
    """The pure strategy on the sparse engine with biased random bases (fitted to the sparse
    G_j, divided by their exact coverage probabilities)."""
    exact = qml.grad(qml.QNode(_brick5, qml.device("default.qubit"), diff_method="backprop"))(W5)
    options = {"engine": "pauli", "strategy": "pure", "biased_bases": True, "seed": seed}
    qnode = qml.QNode(
        _brick5,
        qml.device("default.qubit", seed=40 + seed),
        diff_method="shadow",
        shots=4000,
        gradient_kwargs={**options, "bases": 200},
    )
    with sg.record() as rec:
        grad = qml.grad(qnode)(W5)
    record = rec[-1]
    assert record.engine.startswith("pauli") and "locally-biased" in record.notes[0]
    record.dof = [np.full(np.shape(record.stderr[0]), record.groups - 1.0)]
    _assert_within(grad, exact, record)


def test_check_budget():  # last: after every statistical check of this file
    assert sum(_CHECKS) <= MAX_CHECKS
