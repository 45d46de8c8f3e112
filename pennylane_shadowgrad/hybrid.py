"""The two-stage hybrid gradient: a shadow pilot, then snapshots and parameter-shift circuits.

Stage 1 (the transform's own tapes) is a pilot of ``pilot * T`` snapshots. Its Pauli estimates
give plug-in variances of every component for both estimators; :func:`~.budget.allocate` splits
the remaining shots between a main shadow plan and parameter-shift circuits for the components
where the shadow is too noisy; stage 2 runs them on the device and each component is the
inverse-variance combination of its two unbiased estimates. The pilot is never part of the
estimate and the weights come from the pilot only, so the combination is unbiased.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pennylane as qml
from pennylane.measurements import ProbabilityMP
from pennylane.tape import QuantumScript

from .budget import (
    _ZERO_TOL,
    Allocation,
    GradientBlocks,
    _param_scales,
    allocate,
    biased_plan,
    block_sums,
    expected_block_shadow_variance,
    gradient_blocks,
    group_parts,
    grouped_variance,
    local_indices,
    measurement_groups,
    optimal_bias,
    output_observables,
    restrict_pauli_sum,
    shifted_tape,
)
from .circuit import PAULI_DIGITS, RotationCircuit
from .snapshots import SnapshotPlan, decode, make_plan, snapshot_tapes

#: Random plans are evaluated on at most this many of their (i.i.d.) bases when predicting
#: variances (an unbiased estimate of the average; the full plan is used for the estimate).
_VARIANCE_BASES = 128


@dataclass
class HybridResult:
    """Stage-2 outcome: per-measurement Jacobians, their predicted variances and the split."""

    jacobian: list
    variance: list
    allocation: Allocation
    plan: SnapshotPlan | None
    circuits: int
    shots: int
    notes: list[str] = field(default_factory=list)


def pilot_size(total: int, pilot: float) -> int:
    """Pilot snapshots for a budget of ``total`` shots: ``round(pilot * total)``, at least 1."""
    return int(min(max(round(pilot * total), 1), max(total - 1, 1)))


def pilot_plan(num_qubits: int, snapshots: int, rng) -> SnapshotPlan:
    """The pilot: ``min(snapshots, 729)`` random bases, so that it has 20 replicate groups
    for the jackknife errors of its variance estimates."""
    return make_plan(num_qubits, snapshots, bases=min(snapshots, 729), seed=rng)


def _outputs(tape: QuantumScript) -> list[tuple[int, int | None]]:
    """``(measurement, entry)`` of every scalar output (entry ``None`` for an expval)."""
    out = []
    for m_idx, m in enumerate(tape.measurements):
        if isinstance(m, ProbabilityMP):
            out += [(m_idx, e) for e in range(2 ** len(m.wires))]
        else:
            out.append((m_idx, None))
    return out


def plug_in_shift_variance(
    circuit: RotationCircuit, observables, x: np.ndarray, x_loo: np.ndarray | None = None
) -> np.ndarray:
    """Per-shot parameter-shift variance from Pauli estimates ``x`` at the unshifted state.

    ``scale^2 (Var_+ + Var_-) / 4`` with ``Var_+ + Var_- ~ 2 V`` (floored at ``1e-3``), where
    ``V = sum_g Var(O_g)`` over the measured groups (:func:`~.budget.measurement_groups`: each
    group is its own tape, a "shot" is one shot of every group): the shifted states are not
    measured by the pilot. With the pilot's leave-one-group-out estimates ``x_loo``, ``V`` is
    raised by two jackknife standard errors: underrating parameter-shift noise costs more than
    overrating it (measured on the TFIM family).
    """
    groups = measurement_groups(observables)
    parts = [group_parts(o, groups) for o in observables]
    xs = np.clip(x, -1.0, 1.0)
    var_o = np.array([grouped_variance(p, xs) for p in parts])
    if x_loo is not None and len(x_loo) > 1:
        loo = np.array(
            [[grouped_variance(p, np.clip(xk, -1.0, 1.0)) for p in parts] for xk in x_loo]
        )
        k = len(loo)
        var_o = var_o + 2.0 * np.sqrt((k - 1) / k * np.sum((loo - loo.mean(0)) ** 2, axis=0))
    scale = _param_scales(circuit)
    return scale[:, None] ** 2 * np.maximum(var_o, 1e-3)[None] / 2.0


def group_tapes(tape: QuantumScript, wire_order, observables=None):
    """The measured groups of ``tape``'s outputs as tapes: ``(tapes, coeffs)``.

    One tape per qubit-wise-commuting group (:func:`~.budget.measurement_groups`), with one
    ``expval`` per Pauli word of the group (commuting words are sampled together: one
    execution, ``tape.shots`` counted shots on ``default.qubit`` and ``lightning.qubit``).
    ``coeffs[g]`` has shape ``(outputs, words in g)``: output ``o`` is its identity part plus
    ``sum_g coeffs[g][o] @ results[g]``.
    """
    observables = output_observables(tape, wire_order) if observables is None else observables
    groups = measurement_groups(observables)
    letters = {d: p for p, d in PAULI_DIGITS.items()}
    tapes, coeffs = [], []
    for words in groups:
        meas = []
        for w in words:
            word = {wire_order[q]: letters[int(d)] for q, d in enumerate(w) if d}
            meas.append(qml.expval(qml.pauli.PauliWord(word).operation()))
        tapes.append(QuantumScript(tape.operations, meas, shots=tape.shots))
        index = {w.tobytes(): k for k, w in enumerate(words)}
        c = np.zeros((len(observables), len(words)))
        for o, obs in enumerate(observables):
            for d, coeff in zip(obs.digits, obs.coeffs):
                k = index.get(d.tobytes())
                if k is not None:
                    c[o, k] += coeff
        coeffs.append(c)
    return tapes, coeffs


@dataclass
class Stage2:
    """The second stage decided from the pilot alone: split, main plan and weights.

    ``weights[j, o]`` multiplies the shadow estimate of component ``j``, output ``o``;
    ``var_shadow`` and ``var_shift`` are the pilot's predictions for the two estimates.
    """

    allocation: Allocation
    plan: SnapshotPlan | None
    weights: np.ndarray
    var_shadow: np.ndarray
    var_shift: np.ndarray
    active: np.ndarray
    chosen: np.ndarray


def prepare_stage2(
    tape: QuantumScript,
    circuit: RotationCircuit,
    x,
    remaining: int,
    chosen,
    rng: np.random.Generator,
    groups: int,
    gamma,
    x_loo=None,
    beta: np.ndarray | None = None,
) -> Stage2:
    """Allocate ``remaining`` shots from the pilot's Pauli estimates ``x``.

    ``gamma`` is a :class:`~.budget.GradientBlocks` (or a list of full ``(M, 4**n)`` arrays);
    ``x`` and ``x_loo`` are full flat arrays or lists with one local array per block. With
    ``beta`` the main shadow plan is locally biased (:func:`~.budget.biased_plan`).
    """
    n = circuit.num_qubits
    blocks = gamma if isinstance(gamma, GradientBlocks) else GradientBlocks.from_full(gamma, n)
    chosen_mask = np.zeros(circuit.num_params, dtype=bool)
    chosen_mask[list(chosen)] = True
    nonzero = np.any(blocks.map(lambda s, g: np.sum(g**2, 1)) > _ZERO_TOL, axis=1)
    active = nonzero & chosen_mask
    need = blocks.needed_words() if beta is not None else None

    def make(snapshots, groups_):
        if beta is None:
            return make_plan(n, snapshots, bases="auto", groups=groups_, seed=rng)
        return biased_plan(n, snapshots, beta, need, groups=groups_, seed=rng)

    size = max(remaining, 1)
    v = expected_block_shadow_variance(blocks, lambda: make(size, 20), x, _VARIANCE_BASES) * size
    v[~chosen_mask] = 0.0
    u = plug_in_shift_variance(circuit, *_observable_context(tape, circuit, blocks, x, x_loo))
    complete = 3**n
    min_shadow = complete if complete <= min(remaining, 729) else 1
    num_groups = max(len(measurement_groups(output_observables(tape, circuit.wire_order))), 1)
    alloc = allocate(v, u, remaining, active, min_shadow, groups=num_groups)
    main_plan = None
    var_sh = np.full(v.shape, np.inf)
    if alloc.shadow > 0:
        # variance over the snapshots and the random bases, from independent draws of the
        # plan: the weights must not depend on the main plan's own bases (given them, a random
        # plan's estimate is biased; DESIGN.md §3), or the combination is biased
        var_sh = expected_block_shadow_variance(
            blocks, lambda: make(alloc.shadow, groups), x, _VARIANCE_BASES
        )
        main_plan = make(alloc.shadow, groups)
    m = alloc.ps_shots[:, None].astype(float)
    var_ps = np.where(m > 0, u / np.where(m > 0, m, 1.0), np.inf)
    # inverse-variance weights from the pilot only; a missing estimator has weight 0
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(np.isinf(var_ps), 1.0, 0.0)
        both = ~np.isinf(var_ps) & ~np.isinf(var_sh)
        w = np.where(both, var_ps / (var_sh + var_ps), w)
        w = np.nan_to_num(w, nan=0.5)
    return Stage2(alloc, main_plan, w, var_sh, var_ps, active, chosen_mask)


def _observable_context(tape, circuit, blocks: GradientBlocks, x, x_loo):
    """Observables and Pauli estimates on the largest block (it holds every observable)."""
    n = circuit.num_qubits
    observables = output_observables(tape, circuit.wire_order)
    if not blocks.blocks:
        support, b = np.arange(n), None
    else:
        b = int(np.argmax([len(s) for s, _, _ in blocks.blocks]))
        support = blocks.blocks[b][0]
    if isinstance(x, list):
        xb = x[b]
        loo = None if x_loo is None else x_loo[b]
    else:
        idx = local_indices(n, support)
        xb = np.asarray(x).reshape(-1)[idx]
        loo = None if x_loo is None else np.asarray(x_loo).reshape(len(x_loo), -1)[:, idx]
    observables = [restrict_pauli_sum(o, support) for o in observables]
    return observables, xb, loo


def light_cone_context(tape: QuantumScript, circuit: RotationCircuit) -> GradientBlocks:
    """The per-component light-cone blocks of ``gamma`` of every output (classical, once)."""
    return gradient_blocks(circuit, output_observables(tape, circuit.wire_order))


def run_hybrid(
    tape: QuantumScript,
    circuit: RotationCircuit,
    pilot_plan: SnapshotPlan,
    pilot_outcomes: list,
    remaining: int,
    device,
    chosen,
    rng: np.random.Generator,
    estimate_shadow=None,
    groups: int = 20,
    gamma=None,
    beta: np.ndarray | None = None,
) -> HybridResult:
    """Stage 2: allocate ``remaining`` shots from the pilot, execute, combine.

    Everything classical runs on the light-cone register ``support`` of the gradient
    observables (:func:`~.budget.gradient_support`): the pilot's Pauli estimates, the variance
    predictions and the main shadow estimate ``d_j = sum_P gamma_jP x_P`` (the pure
    estimator's value, exactly). Its cost is ``O(M 4^k)`` for a ``k``-qubit support.

    Args:
        tape: the decomposed tape (expval / probs measurements only).
        circuit: its rotation form.
        pilot_plan, pilot_outcomes: the stage-1 plan and decoded samples.
        remaining: shots for stage 2.
        device: where stage 2 runs (``qml.execute``).
        chosen: trainable parameter indices to differentiate.
        rng: source of the main plan's random bases.
        estimate_shadow: unused (kept for compatibility); the shadow estimate is ``gamma @ x``.
        groups: replicate groups of the main plan.
        gamma: precomputed :func:`light_cone_context` (optional).
        beta: per-qubit X/Y/Z probabilities of a biased main plan (``None``: uniform).
    """
    n = circuit.num_qubits
    blocks = light_cone_context(tape, circuit) if gamma is None else gamma
    if not isinstance(blocks, GradientBlocks):
        blocks = GradientBlocks.from_full(blocks, n)
    sums = block_sums(blocks, pilot_plan, pilot_outcomes)
    x = [sb.pooled().reshape(-1) for sb in sums]
    x_loo = [sb.leave_one_out().reshape(pilot_plan.groups, -1) for sb in sums]
    st = prepare_stage2(tape, circuit, x, remaining, chosen, rng, groups, blocks, x_loo, beta)
    alloc, main_plan, w = st.allocation, st.plan, st.weights
    active, chosen_mask = st.active, st.chosen
    var_sh, var_ps = st.var_shadow, st.var_shift

    tapes = []
    if main_plan is not None:
        tapes += snapshot_tapes(QuantumScript(tape.operations, []), main_plan, circuit.wire_order)
    num_snapshot_tapes = len(tapes)
    scale = _param_scales(circuit)
    params = tape.get_parameters(trainable_only=True)
    shifted = np.flatnonzero(alloc.ps_shots > 0)
    # each shifted circuit runs as one tape per measured group, so that every tape costs
    # exactly its shots on any device (the allocation charges 2 G m per component)
    observables = output_observables(tape, circuit.wire_order)
    num_groups = 0
    coeffs = []
    for j in shifted:
        for sign in (1.0, -1.0):
            t = shifted_tape(tape, int(j), sign, scale[j], params)
            g_tapes, coeffs = group_tapes(
                t.copy(shots=int(alloc.ps_shots[j])), circuit.wire_order, observables
            )
            num_groups = len(g_tapes)
            tapes += g_tapes
    # numeric parameters and no ML interface: stage 2 runs inside PennyLane's backward pass
    # (autograd, torch) or a host callback (jax.jit), never on traced values
    tapes = [qml.transforms.convert_to_numpy_parameters(t)[0][0] for t in tapes]
    results = qml.execute(tapes, device, diff_method=None, interface="numpy") if tapes else []

    outputs = _outputs(tape)
    num_out = len(outputs)
    shadow_est = np.zeros((circuit.num_params, num_out))
    if main_plan is not None:
        outcomes = decode(results[:num_snapshot_tapes], main_plan)
        x_main = [sb.pooled().reshape(-1) for sb in block_sums(blocks, main_plan, outcomes)]
        for (_, rows, gammas), xb in zip(blocks.blocks, x_main):
            for o, g in enumerate(gammas):
                shadow_est[rows, o] = g @ xb
    ps_est = np.zeros((circuit.num_params, num_out))

    def _value(res) -> np.ndarray:  # outputs less their identity parts, from the group tapes
        total = np.zeros(num_out)
        for c, r in zip(coeffs, res):
            total += c @ np.atleast_1d(np.asarray(r, dtype=float)).reshape(-1)
        return total

    for k, j in enumerate(shifted):
        start = num_snapshot_tapes + 2 * k * num_groups
        plus = _value(results[start : start + num_groups])
        minus = _value(results[start + num_groups : start + 2 * num_groups])
        ps_est[j] = scale[j] * (plus - minus) / 2.0
    est = w * shadow_est + (1 - w) * ps_est
    var = w**2 * np.nan_to_num(var_sh, posinf=0.0) + (1 - w) ** 2 * np.nan_to_num(
        var_ps, posinf=0.0
    )
    est[~active] = np.where(chosen_mask[~active, None], shadow_est[~active], 0.0)
    est[~chosen_mask] = 0.0
    var[~active] = 0.0
    jac_out, var_out = [], []
    for m_idx in range(len(tape.measurements)):
        cols = [o for o, (m, _) in enumerate(outputs) if m == m_idx]
        is_probs = outputs[cols[0]][1] is not None
        jac_out.append(est[:, cols] if is_probs else est[:, cols[0]])
        var_out.append(var[:, cols] if is_probs else var[:, cols[0]])
    notes = []
    if alloc.shadow > 0 and len(shifted):
        notes.append(
            "combined estimator: on a noisy device the shadow part estimates "
            "Tr(rho_noisy G_j^ideal) and the parameter-shift part the noisy cost's gradient; "
            "they agree only for noiseless circuits (DESIGN.md §3)"
        )
    shots = alloc.shadow + alloc.ps_total
    return HybridResult(jac_out, var_out, alloc, main_plan, len(tapes), shots, notes)


def resolve_strategy(strategy, device, tape: QuantumScript, terms: dict) -> tuple[str, str]:
    """``(strategy that runs, why)``: ``None`` means ``"auto"`` with a device, else ``"pure"``."""
    from pennylane.measurements import ExpectationMP

    if strategy not in (None, "auto", "pure"):
        raise ValueError(f"strategy must be None, 'auto' or 'pure', got {strategy!r}.")
    if strategy == "pure":
        return "pure", "requested"
    if device is None:
        if strategy == "auto":
            raise ValueError(
                "strategy='auto' runs a second stage on the device, but no device was given: "
                "pass gradient_kwargs={'device': dev} (a QNode with diff_method='shadow' "
                "passes its own device)."
            )
        return "pure", "default without a device (direct shadow_grad(tape) call)"
    if not all(isinstance(m, ExpectationMP | ProbabilityMP) for m in tape.measurements):
        return "pure", "the hybrid supports expval and probs only (a var measurement is present)"
    if terms:
        return "pure", "trainable observable coefficients are estimated from snapshots only"
    if tape.batch_size is not None:
        return "pure", "broadcast tape given directly (QNodes split it first)"
    reason = "requested" if strategy == "auto" else "default with a device"
    return "auto", reason


def hybrid_gradient(
    tape: QuantumScript,
    circuit: RotationCircuit,
    budgets: list[int],
    chosen,
    device,
    pilot: float,
    groups: int,
    rng: np.random.Generator,
    reason: str,
    biased: bool = False,
    bias_floor: float = 0.0,
):
    """Stage-1 tapes (pilots, one per budget) and the processing function running stage 2.

    The pilot is always uniform (it estimates the Pauli expectations the variances need); with
    ``biased`` the main shadow plan is locally biased (:func:`~.budget.optimal_bias`).
    """
    import time

    from .resources import _publish, is_recording
    from .shadow_gradient import _format

    if not 0 < pilot < 1:
        raise ValueError(f"'pilot' must be a fraction in (0, 1), got {pilot!r}.")
    pilots = [pilot_plan(circuit.num_qubits, pilot_size(t, pilot), rng) for t in budgets]
    ops_only = QuantumScript(tape.operations, [])
    batches = [snapshot_tapes(ops_only, p, circuit.wire_order) for p in pilots]
    all_tapes = [t for batch in batches for t in batch]

    context = {}

    def processing_fn(results):
        out, offset = [], 0
        for total, p_plan, batch in zip(budgets, pilots, batches):
            start = time.perf_counter()
            if not context:  # classical, once per gradient: light cone, gamma, bias
                blocks = light_cone_context(tape, circuit)
                beta = optimal_bias(blocks, floor=bias_floor) if biased else None
                context.update(blocks=blocks, beta=beta)
            outcomes = decode(results[offset : offset + len(batch)], p_plan)
            offset += len(batch)
            res = run_hybrid(
                tape,
                circuit,
                p_plan,
                outcomes,
                total - p_plan.num_snapshots,
                device,
                chosen,
                rng,
                None,
                groups,
                context["blocks"],
                context["beta"],
            )
            if is_recording():
                _publish(_hybrid_record(res, p_plan, circuit, reason, time.perf_counter() - start))
            out.append(_format(res.jacobian, len(tape.trainable_params)))
        return tuple(out) if tape.shots.has_partitioned_shots else out[0]

    return all_tapes, processing_fn


def _hybrid_record(res: HybridResult, p_plan: SnapshotPlan, circuit, reason: str, seconds):
    from .resources import GradientRecord

    alloc = res.allocation
    split = {
        "pilot_snapshots": p_plan.num_snapshots,
        "shadow_snapshots": alloc.shadow,
        "parameter_shift_shots": alloc.ps_total,
        "parameter_shift_components": [int(j) for j in np.flatnonzero(alloc.ps_shots > 0)],
        "shots_per_shifted_circuit": alloc.ps_shots.tolist(),
        "tapes_per_shifted_circuit": (
            1 if alloc.groups is None else int(np.max(alloc.groups, initial=1))
        ),
        "shadow_weight": alloc.weights.tolist(),
        "predicted_mse": alloc.mse,
    }
    total = p_plan.num_snapshots + res.shots
    plan_text = (
        "none"
        if res.plan is None
        else (
            ("all 3**n bases" if not res.plan.random else "random bases")
            + f", {res.plan.num_bases} bases"
        )
    )
    rec = GradientRecord(
        method="shadow",
        jacobian=res.jacobian,
        stderr=[np.sqrt(v) for v in res.variance],
        snapshots=total,
        circuits=p_plan.num_bases + res.circuits,
        plan=f"auto: pilot {p_plan.num_snapshots} snapshots, shadow plan {plan_text}, "
        f"{alloc.ps_total} parameter-shift shots on {int(np.sum(alloc.ps_shots > 0))} components",
        engine="dense",
        num_qubits=circuit.num_qubits,
        num_params=circuit.num_params,
        postprocessing_seconds=seconds,
        groups=res.plan.groups if res.plan is not None else 0,
        notes=[f"strategy='auto' ({reason})", *res.notes],
        variance=res.variance,
        shot_variance=[v * max(total, 1) for v in res.variance],
        strategy="auto",
        split=split,
    )
    return rec
