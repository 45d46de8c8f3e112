"""The ``gentle_multicopy_grad`` transform: gradients by online shadow tomography."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np
import pennylane as qml
from pennylane import math
from pennylane.gradients.gradient_transform import (
    _no_trainable_grad,
    choose_trainable_param_indices,
    contract_qjac_with_cjac,
)
from pennylane.measurements import ExpectationMP
from pennylane.tape import QuantumScript, QuantumScriptBatch
from pennylane.typing import PostprocessingFn

from ..circuit import (
    PauliSum,
    UnsupportedCircuitError,
    decompose_for_gradient,
    pauli_sum,
    rotation_form,
)
from ..gradient_transform import format_jacobian, refuse_observable_coefficients
from ..resources import GradientRecord, is_recording, publish
from .engines import ExactEngine, StatisticalEngine
from .hypothesis import (
    DENSE_MAX_ENTRIES,
    DenseGenerators,
    carried_generator,
    effect_matrix,
    matrix_from_coefficients,
    rotation_checks,
)
from .hypothesis import (
    generator_coefficients as hyp_generator_coefficients,
)
from .hypothesis import (
    predictions as hyp_predictions,
)
from .learner import initial_potential
from .report import (
    batch_gates,
    check_gates,
    counter_qubits,
    parameter_shift_sizing,
)
from .sweep import _REMOVED_CALIBRATED, DEFAULT_SCHEDULE, protocol_constants, run_protocol
from .warm_start import WarmStart

#: Default wall-clock cap of one gradient's classical emulation (seconds).
DEFAULT_MAX_SECONDS = 600.0

_OPTIONS = {
    "argnum",
    "epsilon",
    "delta",
    "batch_size",
    "register",
    "engine",
    "seed",
    "max_rounds",
    "max_seconds",
    "constants",
    "batch_scale",
    "checks",
    "schedule",
    "thresholds",
    "shadow_baseline",
    "warm_start",
}
#: The dense hypothesis holds 4**n entries and its update diagonalises a 2**n matrix.
MAX_QUBITS = 10
_PURITY_TOL = 1e-8


def _validate_options(kwargs: dict) -> None:
    unknown = set(kwargs) - _OPTIONS
    if unknown:
        raise TypeError(
            f"Unknown option(s) {sorted(unknown)} for diff_method='gentle-multicopy'. "
            f"Valid gradient_kwargs are {sorted(_OPTIONS)}."
        )
    eps, delta = kwargs.get("epsilon", 0.1), kwargs.get("delta", 0.05)
    if eps is not None and not eps > 0:
        raise ValueError(f"epsilon must be positive, got {eps}.")
    if delta is not None and not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}.")
    cap = kwargs.get("max_seconds", DEFAULT_MAX_SECONDS)
    if cap is not None and not (isinstance(cap, int | float) and cap > 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {cap!r}.")
    if kwargs.get("register", "auto") not in ("auto", "single", "two"):
        raise ValueError("register must be 'auto', 'single' or 'two'.")
    if kwargs.get("engine", "statistical") not in ("statistical", "exact"):
        raise ValueError("engine must be 'statistical' or 'exact'.")
    if kwargs.get("constants", "theoretical") == "calibrated":
        raise ValueError(_REMOVED_CALIBRATED)
    if kwargs.get("constants", "theoretical") != "theoretical":
        raise ValueError("constants must be 'theoretical'.")
    if kwargs.get("checks", "signed") not in ("signed", "unsigned"):
        raise ValueError("checks must be 'signed' or 'unsigned'.")
    if kwargs.get("thresholds", "random") not in ("random", "fixed"):
        raise ValueError("thresholds must be 'random' or 'fixed'.")
    schedule = kwargs.get("schedule", DEFAULT_SCHEDULE)
    if schedule is not None:
        try:
            mult = [float(m) for m in schedule]
        except TypeError as err:
            raise ValueError("schedule must be a sequence of multipliers >= 1.") from err
        if not mult or min(mult) < 1 or not all(np.isfinite(mult)):
            raise ValueError(f"schedule must be a sequence of multipliers >= 1, got {schedule}.")
    scale = kwargs.get("batch_scale", 1.0)
    if scale is not None and not float(scale) > 0:
        raise ValueError(f"batch_scale must be positive, got {scale}.")
    b = kwargs.get("batch_size")
    if b is not None and int(b) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {b}.")
    ws = kwargs.get("warm_start")
    if ws is not None and not isinstance(ws, WarmStart):
        raise TypeError(
            "warm_start must be a pennylane_shadowgrad.WarmStart (or None), got "
            f"{type(ws).__name__}."
        )


def _validate_tape(tape: QuantumScript) -> None:
    """Refuse, before any device time, what the protocol cannot do."""
    for m in tape.measurements:
        if not isinstance(m, ExpectationMP) or m.obs is None or m.mv is not None:
            raise UnsupportedCircuitError(
                "diff_method='gentle-multicopy' differentiates expectation values of "
                f"observables (qml.expval(O)); got {type(m).__name__}. Use "
                "diff_method='shadow' or 'parameter-shift' for var, probs and samples."
            )
    for op in tape.operations:
        if isinstance(op, qml.measurements.MidMeasureMP) or op.name == "MidMeasure":
            raise UnsupportedCircuitError(
                "diff_method='gentle-multicopy' does not support mid-circuit measurements."
            )
        if isinstance(op, qml.operation.Channel):
            raise UnsupportedCircuitError(
                f"diff_method='gentle-multicopy' does not support noise channels ({op.name}): "
                "its checks assume the ideal gates."
            )
    if tape.batch_size is not None:
        raise UnsupportedCircuitError(
            "diff_method='gentle-multicopy' does not support parameter broadcasting."
        )
    if len(tape.wires) > MAX_QUBITS:
        raise ValueError(
            f"The dense hypothesis of diff_method='gentle-multicopy' holds 4**n entries; "
            f"{len(tape.wires)} qubits exceed its limit of {MAX_QUBITS}."
        )
    refuse_observable_coefficients(
        tape,
        "diff_method='gentle-multicopy' cannot differentiate trainable observable coefficients.",
    )


def _expand_transform_multicopy(
    tape: QuantumScript, argnum=None, **kwargs
) -> tuple[QuantumScriptBatch, PostprocessingFn]:
    """Validate, then decompose to Pauli rotations and fixed gates."""
    _validate_options({"argnum": argnum, **kwargs})
    _validate_tape(tape)
    new_tape = decompose_for_gradient(tape)

    def null_postprocessing(results):
        return results[0]

    return [new_tape], null_postprocessing


@dataclass(frozen=True)
class _Observable:
    """What the protocol needs of ``O``: Pauli sum, half-width ``g``, and the low-rank form.

    ``O = c I + sign * s2 * omega`` with ``omega`` a state of rank ``rank`` (``omega`` pure:
    ``vector``); the two-register variant measures ``G_j / s2``.
    """

    paulis: PauliSum
    half_width: float
    s2: float
    sign: float
    rank: int
    vector: np.ndarray | None
    two_outcome: bool = False


def _observable(obs, wire_order) -> _Observable:
    ps = pauli_sum(obs, wire_order)
    mat = matrix_from_coefficients(_dense_coefficients(ps, len(wire_order)))
    evals, evecs = np.linalg.eigh(mat)
    tol = 1e-9 * max(1.0, np.abs(evals).max())
    low, high = evals - evals[0], evals[-1] - evals
    options = [(low.sum(), 1.0, low, slice(None)), (high.sum(), -1.0, high, slice(None))]
    s2, sign, shifted, _ = min(options, key=lambda o: o[0])
    rank = int(np.sum(shifted > tol))
    vector = None
    if rank == 1:
        vector = evecs[:, int(np.argmax(shifted))]
    distinct = np.unique(np.round(evals / tol)).size if evals[-1] - evals[0] > tol else 1
    half = 0.5 * (evals[-1] - evals[0])
    return _Observable(ps, half, float(s2), sign, rank, vector, distinct == 2)


def _dense_coefficients(ps: PauliSum, n: int) -> np.ndarray:
    x = np.zeros((4,) * n)
    for digits, coeff in zip(ps.digits, ps.coeffs):
        x[tuple(int(d) for d in digits)] += coeff * 2**n
    return x


def _choose_register(register, ob: _Observable, checks, circuit, eps_rot, delta, opts):
    """Pick the variant that needs fewer copies per batch (the protocol's resource).

    The two-register variant checks ``G_j / s2`` (``s2`` the trace of ``O - lambda I``) and
    spends an ``omega`` copy per batch copy; the single-register one checks ``G_j / g`` (``g``
    the spectral half-width). Estimated gate applications per batch are reported for both.
    """
    n, num_gates = circuit.num_qubits, len(circuit.gates)
    weights = _weights(checks, circuit)
    estimates, copies = {}, {}
    for variant, s in (("single-register", ob.half_width), ("two-register", ob.s2)):
        if s <= 0:
            continue
        const = _constants(n, checks.num_checks, min(1.0, eps_rot / (2 * s)), opts, False)
        per = check_gates(
            variant, checks.gate_index, weights, num_gates, n, len(ob.paulis), const.batch
        )
        prep = 2**n * ob.rank + num_gates
        estimates[variant] = const.batch * batch_gates(
            variant, checks.num_checks, checks.gate_index, per, num_gates, prep
        )
        copies[variant] = const.batch * (2 if variant == "two-register" else 1)
    if register == "single":
        return "single-register", "requested (register='single')", estimates
    if register == "two":
        return "two-register", "requested (register='two')", estimates
    if not estimates:
        return "single-register", "constant observable", estimates
    best = min(copies, key=lambda k: (copies[k], k != "single-register"))
    reason = (
        f"register='auto': O - lambda_{'min' if ob.sign > 0 else 'max'} I has rank {ob.rank} "
        f"(trace {ob.s2:.3g}) against half-width g = {ob.half_width:.3g}; copies per batch: "
        + ", ".join(f"{k} {v:.3g}" for k, v in copies.items())
        + "; estimated gate applications per full-sweep batch: "
        + ", ".join(f"{k} {v:.3g}" for k, v in estimates.items())
        + f"; chose {best} (fewer copies)"
    )
    return best, reason, estimates


def _constants(n, num_checks, eps_e, opts, user_batch=True, potential=None):
    return protocol_constants(
        n,
        num_checks,
        eps_e,
        opts["delta"],
        opts["batch_size"] if user_batch else None,
        opts["max_rounds"],
        "theoretical",
        opts["batch_scale"] if user_batch else 1.0,
        opts["checks"],
        opts["schedule"],
        opts["thresholds"],
        potential,
    )


def _weights(checks, circuit) -> np.ndarray:
    return np.array([len(circuit.gates[i].wires) for i in checks.gate_index], dtype=int)


def _swap(n: int) -> np.ndarray:
    d = 2**n
    s = np.zeros((d * d, d * d))
    for a in range(d):
        for b in range(d):
            s[b * d + a, a * d + b] = 1.0
    return s


def _make_engine(name, ob, checks, variant, scale, rho, rng):
    n = checks.circuit.num_qubits
    if name == "statistical":
        e = np.clip(0.5 * (1 + hyp_predictions(checks, ob.paulis, rho) / scale), 0, 1)
        return StatisticalEngine(e, rng)
    evals, evecs = np.linalg.eigh(rho)
    if evals[-1] < 1 - _PURITY_TOL:
        raise ValueError(
            "engine='exact' simulates pure copies; the device returned a mixed state "
            f"(largest eigenvalue {evals[-1]:.6f}). Use engine='statistical'."
        )
    psi = evecs[:, -1]
    if variant == "single-register":
        return ExactEngine(
            psi,
            lambda j: effect_matrix(hyp_generator_coefficients(checks, ob.paulis, j), scale),
            rng,
        )
    if ob.vector is None:
        raise ValueError(
            "engine='exact' with the two-register variant needs a rank-1 observable (a pure "
            f"omega); this one has rank {ob.rank}."
        )
    swap, eye = _swap(n), np.eye(2**n)

    def effect(j):
        q = matrix_from_coefficients(carried_generator(checks, j)[0])
        qi = np.kron(q, eye)
        w = 0.5j * (qi @ swap - swap @ qi)
        return 0.5 * (np.eye(4**n) + ob.sign * w)

    return ExactEngine(np.kron(psi, ob.vector), effect, rng)


def _exact_zero_report(variant, reason, opts, ob, scale, start, no_checks) -> dict:
    """The report of a gradient that is exactly zero without any protocol run.

    A constant observable ``O = c I`` (``qml.Identity``, ``2.0 * qml.Identity(0)``) has
    ``G_j = i/2 [Q_j, O] = 0``, and a circuit without trainable rotations has no ``G_j``: every
    derivative is exactly 0, so no copy is used and the (trivial) answer is certified.
    """
    why = (
        "no trainable Pauli rotation: the gradient is empty"
        if no_checks
        else "constant observable (O = c I): every derivative is exactly 0"
    )
    return {
        "method": "gentle-multicopy",
        "executed": "not needed: " + why,
        "register": variant,
        "register_reason": reason,
        "register_estimates": {},
        "engine": opts["engine"],
        "delta": opts["delta"],
        "scale": scale,
        "half_width": ob.half_width,
        "observable_rank": ob.rank,
        "copies": {"batch": 0, "fresh_estimate": 0, "omega_preparation": 0, "total": 0},
        "gate_applications": 0,
        "mid_circuit_measurements": 0,
        "checks": 0,
        "batches": 0,
        "firings": 0,
        "learner_updates": 0,
        "warm_start": {"used": False, "initial_potential": None},
        "certified": True,
        "damage_bound": 0.0,
        "failure_bound": 0.0,
        "failure_bound_exceeds_delta": False,
        "classical_seconds": time.perf_counter() - start,
        "notes": [f"exact: {why}; no copies were used."],
    }


def _one_gradient(circuit, checks, ob, rho, opts, eps_rot, rng, qnode_shots, initial=None):
    start = time.perf_counter()
    n, num_gates = circuit.num_qubits, len(circuit.gates)
    variant, reason, estimates = _choose_register(
        opts["register"],
        ob,
        checks,
        circuit,
        eps_rot,
        opts["delta"],
        opts,
    )
    scale = ob.half_width if variant == "single-register" else ob.s2
    if scale <= 0 or checks.num_checks == 0:
        report = _exact_zero_report(variant, reason, opts, ob, scale, start, checks.num_checks == 0)
        return np.zeros(checks.num_checks), report, None
    eps_e = min(1.0, eps_rot / (2 * scale))
    potential = None if initial is None else initial_potential(initial)
    const = _constants(n, checks.num_checks, eps_e, opts, potential=potential)
    engine = _make_engine(opts["engine"], ob, checks, variant, scale, rho, rng)
    effects: dict[int, np.ndarray] = {}
    if checks.num_checks * 4**n <= DENSE_MAX_ENTRIES:
        dense = DenseGenerators(checks, matrix_from_coefficients(_dense_coefficients(ob.paulis, n)))
        predict = dense.predictions

        def effect(j):
            return dense.effect(j, scale)
    else:

        def predict(sigma):
            return hyp_predictions(checks, ob.paulis, sigma)

        def effect(j):
            if j not in effects:
                effects[j] = effect_matrix(hyp_generator_coefficients(checks, ob.paulis, j), scale)
            return effects[j]

    result = run_protocol(
        n,
        checks.num_checks,
        scale,
        predict,
        effect,
        engine,
        const,
        rng,
        opts["max_seconds"],
        initial,
    )
    weights = _weights(checks, circuit)
    sizes = result.batch_sizes
    b_max = max(sizes, default=const.batch)
    prep = 2**n * ob.rank + num_gates if variant == "two-register" else 0
    batch_gate_total = 0
    per_batch = []
    for b_r, k in zip(sizes, result.checks_per_batch):
        per_r = check_gates(variant, checks.gate_index, weights, num_gates, n, len(ob.paulis), b_r)
        g_r = batch_gates(variant, k, checks.gate_index, per_r, num_gates, prep)
        per_batch.append(g_r)
        batch_gate_total += b_r * g_r
    # a fresh estimate runs the circuit up to the check and one Hadamard-test check per copy
    per1 = check_gates(variant, checks.gate_index, weights, num_gates, n, len(ob.paulis), 1)
    est_gate_total = sum(
        m_f
        * (
            int(checks.gate_index[j])
            + 1
            + (num_gates if variant == "two-register" else 0)
            + int(per1[j] - 2 * counter_qubits(1))
        )
        for j, m_f in zip(result.firings, result.estimate_sizes)
    )
    batches = len(sizes)
    copies = {
        "batch": int(sum(sizes)),
        "fresh_estimate": int(sum(result.estimate_sizes)),
        "omega_preparation": int(sum(sizes)) if variant == "two-register" else 0,
    }
    copies["total"] = sum(copies.values())
    counter = counter_qubits(b_max)
    data = (2 if variant == "two-register" else 1) * b_max * n
    eng = engine.report()
    notes = [
        "emulated, not executed: the device ran one analytic-state tape (shots=None); "
        f"the {engine.name} engine emulated every check and estimate.",
        f"The QNode's shots ({qnode_shots}) do not size this protocol; epsilon and delta do.",
    ]
    if engine.name == "statistical":
        damage = eng["damage_bound"]
        failure = opts["delta"] + damage
        if failure > opts["delta"]:
            notes.append(
                f"Idealisation: checks were drawn on undisturbed copies; the gentle-measurement "
                f"damage bound {damage:.3g} makes the failure bound {min(failure, 1):.3g} "
                f"exceed delta={opts['delta']} (the undisturbed-copy law is not guaranteed "
                "here)."
            )
    else:
        damage, failure = None, None
        notes.append(
            "exact engine: disturbance simulated, not bounded; see max_fire_probability_gap."
        )
    if not result.certified:
        notes.append(f"No certified hypothesis within max_rounds={const.max_rounds}.")
    ps_sizing = parameter_shift_sizing(
        checks.num_checks,
        num_gates,
        ob.half_width,
        eps_rot,
        opts["delta"],
        ob.two_outcome,
    )
    ps_sizing["quantum_memory_qubits"] = n
    report = {
        "method": "gentle-multicopy",
        "executed": "emulated, not executed",
        "register": variant,
        "register_reason": reason,
        "register_estimates": estimates,
        "engine": engine.name,
        "epsilon_per_rotation": eps_rot,
        "effect_accuracy": eps_e,
        "delta": opts["delta"],
        "scale": scale,
        "half_width": ob.half_width,
        "observable_rank": ob.rank,
        "constants": {
            "mode": "theoretical",
            "checks": "signed" if const.signed else "unsigned",
            "levels": list(const.levels),
            "rounds_per_level": [result.levels.count(k) for k in range(len(const.levels))],
            "batch_copies_per_level": [
                int(sum(b for b, lv in zip(sizes, result.levels) if lv == k))
                for k in range(len(const.levels))
            ],
            "thresholds": const.thresholds,
            "thresholds_validity": (
                "fixed thresholds: valid only in the undisturbed-copies model of the "
                "statistical engine; the gentleness (damage) argument needs random thresholds"
                if const.thresholds == "fixed"
                else "random thresholds (Badescu-O'Donnell), as the gentleness argument needs"
            ),
            "batch_size": b_max,
            "batch_sizes": list(sizes),
            "first_batch_at_uniform_hypothesis": const.batch,
            "previous_hoeffding_worst_case_batch": const.hoeffding_worst_case_batch,
            "fresh_estimate_copies": list(result.estimate_sizes),
            "first_fresh_estimate": const.estimate,
            "batch_scale": const.batch_scale,
            "max_rounds": const.max_rounds,
            "threshold_range": tuple(t * eps_e for t in const.threshold_range),
            "tau": const.tau,
            "gamma": const.gamma,
            "source": const.source,
        },
        "copies": copies,
        "gate_applications": int(batch_gate_total + est_gate_total),
        "quantum_memory_qubits": {
            "data": data,
            "ancillas": b_max,
            "counter": counter,
            "total": data + b_max + counter,
        },
        "coherent_depth": int(
            max(per_batch, default=0)
            + b_max * counter * 2 * max(result.checks_per_batch, default=0)
        ),
        "mid_circuit_measurements": result.checks,
        "checks": result.checks,
        "batches": batches,
        "firings": len(result.firings),
        "learner_updates": result.updates,
        "mistake_bound": result.mistake_bound,
        "warm_start": {
            "used": initial is not None,
            "initial_potential": n * np.log(2) if potential is None else potential,
        },
        "certified": result.certified,
        "damage_bound": damage,
        "failure_bound": None if failure is None else min(1.0, failure),
        "failure_bound_exceeds_delta": None if failure is None else failure > opts["delta"],
        "engine_report": eng,
        "classical_seconds": time.perf_counter() - start,
        "classical_memory_bytes": 3 * 16 * 4**n,
        "learner_update_flops": 8**n,
        "parameter_shift": ps_sizing,
        "notes": notes,
    }
    return result.values, report, result.hypothesis


def _shadow_baseline(tape: QuantumScript, epsilon: float, delta: float) -> dict:
    """Single-copy shadow snapshots for every derivative within ``epsilon`` w.p. ``1 - delta``."""
    from ..planning import plan

    sizing = (
        "pennylane_shadowgrad.plan: exact per-component variance of the default shadow plan, "
        "NORMAL approximation with a union bound over components (not rigorous)"
    )
    try:
        budget = plan(tape, shots=1000, epsilon=epsilon, delta=delta, seed=0).budget["shadow"]
    except Exception as err:  # the baseline must never break the gradient
        return {"snapshots": None, "sizing": sizing, "error": f"{type(err).__name__}: {err}"}
    if budget < 0:
        return {"snapshots": None, "sizing": sizing, "error": "non-finite variance"}
    return {"snapshots": int(budget), "copies": int(budget), "sizing": sizing}


@partial(
    qml.transform,
    expand_transform=_expand_transform_multicopy,
    classical_cotransform=contract_qjac_with_cjac,
    final_transform=True,
)
def gentle_multicopy_grad(
    tape: QuantumScript,
    argnum: int | list[int] | None = None,
    epsilon: float = 0.1,
    delta: float = 0.05,
    batch_size: int | None = None,
    register: str = "auto",
    engine: str = "statistical",
    seed: int | np.random.Generator | None = None,
    max_rounds: int | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    constants: str = "theoretical",
    batch_scale: float = 1.0,
    checks: str = "signed",
    schedule=DEFAULT_SCHEDULE,
    thresholds: str = "random",
    shadow_baseline: bool = False,
    warm_start: WarmStart | None = None,
) -> tuple[QuantumScriptBatch, PostprocessingFn]:
    r"""Every derivative from one certified hypothesis state (gentle multi-copy protocol).

    Each trainable Pauli rotation :math:`j` defines an effect
    :math:`E_j = (I + G_j/s)/2` with :math:`\partial_j f = \mathrm{Tr}(\rho G_j)`. A classical
    hypothesis :math:`\sigma` (starting at :math:`I/2^n`) predicts every
    :math:`\mathrm{Tr}(E_j\rho)`; signed threshold searches with randomly perturbed
    thresholds sweep a batch of copies through the circuit's layers, and every firing (high or
    low) moves :math:`\sigma` to the conservative target :math:`p_j \pm \epsilon_l/4` by
    matrix multiplicative weights, at accuracies :math:`\epsilon_l` from coarse to fine. A
    silent sweep at the finest level certifies :math:`\sigma`, and the gradient is read from it
    with the same evaluator as ``diff_method="shadow"``.

    Args:
        tape (QNode or QuantumTape): circuit whose measurements are ``qml.expval`` of
            observables.
        argnum (int or list[int] or None): trainable tape parameters to differentiate.
        epsilon (float): accuracy: with probability ``1 - delta`` every derivative is within
            ``epsilon`` (default 0.1).
        delta (float): failure probability (default 0.05).
        batch_size (int or None): copies of every batch (no guarantee); default: per round
            ``r`` the smallest batch whose exact binomial failure bounds at the hypothesis'
            predictions sum to ``delta 6/(pi^2 r^2)`` (``delta/2`` with unsigned checks).
        register (str): ``"auto"`` (the variant with fewer copies per batch, by the
            observable's half-width against its rank-weighted trace),
            ``"single"`` (any observable, ``O(M - j)`` gates per check) or ``"two"`` (an
            ``omega`` register, ``O(n)`` gates per check, low-rank observables).
        engine (str): ``"statistical"`` (default; binomial law on undisturbed copies plus a
            damage bound) or ``"exact"`` (joint state of the batch, at most 16 qubits).
        seed (int or numpy.random.Generator or None): thresholds and emulated outcomes.
        max_rounds (int or None): round limit (default: the learner's mistake bound plus the
            number of accuracy levels).
        max_seconds (float or None): wall-clock cap of one gradient's classical emulation
            (default 600 s); past it a ``RuntimeError`` says where the run stood and what to
            change. ``None``: no cap.
        constants (str): ``"theoretical"`` (the only value: rigorous on undisturbed copies;
            ``"calibrated"`` was removed and raises an error naming this replacement).
        batch_scale (float): multiplies every batch size (``< 1`` voids the guarantee; the
            negative control of the guarantee benchmark).
        checks (str): ``"signed"`` (default: three-outcome checks, no fresh estimates) or
            ``"unsigned"`` (the previous protocol: a fresh estimate after each firing).
        schedule (sequence of float): accuracy multipliers, coarse to fine (default
            ``(3, 2, 1.4, 1)``: the next level after a silent sweep; ``(1,)`` for one level).
        thresholds (str): ``"random"`` (default; uniform in ``[eps/2, 3eps/4]``, which the
            gentleness argument needs) or ``"fixed"`` (``5eps/8``: valid only in the
            undisturbed-copies model of the statistical engine, labelled so in the report).
        shadow_baseline (bool): also size this package's single-copy ``"shadow"`` for the same
            ``(epsilon, delta)`` (report key ``"shadow"``; :func:`~pennylane_shadowgrad.plan`:
            exact per-component variance, normal approximation with a union bound over
            components, NOT rigorous; it simulates the circuit's shifted copies). Default off.
        warm_start (WarmStart or None): start the hypothesis from the one certified by the
            previous gradient (a training loop), mixed with ``I / 2^n``; the guarantee holds
            for any start and the mistake bound grows by ``ln(1 / mixing)``
            (:class:`~pennylane_shadowgrad.WarmStart`). Default ``None``: every gradient starts
            at ``I / 2^n``.

    Returns:
        qnode (QNode) or tuple[List[QuantumTape], function]: one analytic-state tape
        (``qml.density_matrix``, ``shots=None``) and a function that returns the Jacobian in
        :func:`~pennylane.gradients.param_shift`'s shapes. The QNode's shots do not size the
        protocol. Inside :func:`pennylane_shadowgrad.record` every gradient publishes its
        resource report (``record.report``).

    **Example**

    >>> import numpy as np
    >>> import pennylane as qml
    >>> import pennylane_shadowgrad as sg
    >>> from pennylane_shadowgrad import gentle_multicopy_grad
    >>> dev = qml.device("default.qubit")
    >>> @qml.qnode(dev, diff_method=gentle_multicopy_grad,
    ...          gradient_kwargs={"epsilon": 0.1, "seed": 1})
    ... def circuit(x):
    ...     qml.RX(x[0], wires=0)
    ...     qml.RY(x[1], wires=1)
    ...     qml.CNOT(wires=[0, 1])
    ...     return qml.expval(qml.Z(1))
    >>> x = qml.numpy.array([0.3, 0.7], requires_grad=True)
    >>> with sg.record() as rec:
    ...     g = qml.grad(circuit)(x)
    >>> print(np.round(g, 2))
    [-0.18 -0.57]
    >>> exact = [-np.sin(0.3) * np.cos(0.7), -np.cos(0.3) * np.sin(0.7)]  # [-0.226, -0.615]
    >>> bool(np.max(np.abs(g - exact)) <= 0.1)  # within epsilon, with probability 1 - delta
    True
    >>> report = rec[0].report
    >>> report["executed"], report["certified"]
    ('emulated, not executed', True)
    """
    check_kind = checks
    if argnum is None and not tape.trainable_params:
        return _no_trainable_grad(tape)
    chosen = choose_trainable_param_indices(tape, argnum)
    circuit = rotation_form(tape)
    checks = rotation_checks(circuit)
    num_params = len(tape.trainable_params)
    totals = np.zeros(num_params)
    np.add.at(totals, checks.param, np.abs(checks.scale))
    eps_rot = float(epsilon) / max(1.0, float(totals.max(initial=0.0)))
    observables = [_observable(m.obs, circuit.wire_order) for m in tape.measurements]
    opts = {
        "register": register,
        "engine": engine,
        "delta": float(delta),
        "batch_size": batch_size,
        "max_rounds": max_rounds,
        "max_seconds": None if max_seconds is None else float(max_seconds),
        "constants": constants,
        "batch_scale": float(batch_scale),
        "checks": check_kind,
        "schedule": DEFAULT_SCHEDULE if schedule is None else tuple(schedule),
        "thresholds": thresholds,
    }
    rng = np.random.default_rng(seed)
    state_tape = QuantumScript(
        tape.operations, [qml.density_matrix(wires=circuit.wire_order)], shots=None
    )
    unchosen = [k for k in range(num_params) if k not in chosen]
    copies = tape.shots.num_copies if tape.shots.has_partitioned_shots else 1

    def processing_fn(results):
        rho = np.asarray(math.unwrap(results[0]), dtype=complex)
        if rho.shape != (2**circuit.num_qubits,) * 2 or abs(np.trace(rho) - 1) > 1e-6:
            raise ValueError(
                "diff_method='gentle-multicopy' needs the analytic state from the device "
                "(qml.density_matrix with shots=None); this device did not return one."
            )
        out = []
        for _ in range(copies):
            jacs = []
            for key, ob in enumerate(observables):
                start = time.perf_counter()
                initial = None
                if warm_start is not None:
                    initial = warm_start.initial(key, circuit.wire_order)
                values, rep, sigma = _one_gradient(
                    circuit, checks, ob, rho, opts, eps_rot, rng, tape.shots.total_shots, initial
                )
                if warm_start is not None:
                    rep["warm_start"]["mixing"] = warm_start.mixing
                    rep["warm_start"]["stored"] = bool(rep["certified"] and sigma is not None)
                    if rep["warm_start"]["stored"]:
                        warm_start.store(key, circuit.wire_order, sigma)
                if not rep["certified"]:
                    warnings.warn(
                        "diff_method='gentle-multicopy': no hypothesis was certified within "
                        f"max_rounds={rep['constants']['max_rounds']}; the returned gradient is "
                        "the last hypothesis' prediction and carries no (epsilon, delta) "
                        "guarantee. Raise max_rounds, or use the rigorous sizes (no "
                        "batch_size, batch_scale=1): batches that are too small fire on noise "
                        "and never certify.",
                        UserWarning,
                        stacklevel=2,
                    )
                if shadow_baseline:
                    rep["shadow"] = _shadow_baseline(tape, epsilon, delta)
                jac = checks.to_parameters(values, num_params)
                jac[unchosen] = 0.0
                jacs.append(jac)
                if is_recording():
                    publish(
                        GradientRecord(
                            method="gentle-multicopy",
                            jacobian=[jac],
                            stderr=None,
                            snapshots=int(rep.get("copies", {}).get("total", 0)),
                            circuits=1,
                            plan=f"{rep.get('register')}, {rep.get('engine')} engine "
                            "(emulated, not executed)",
                            engine=str(rep.get("engine")),
                            num_qubits=circuit.num_qubits,
                            num_params=num_params,
                            postprocessing_seconds=time.perf_counter() - start,
                            notes=list(rep.get("notes", [])),
                            report=rep,
                        )
                    )
            out.append(format_jacobian(jacs, num_params))
        return tuple(out) if tape.shots.has_partitioned_shots else out[0]

    return [state_tape], processing_fn
