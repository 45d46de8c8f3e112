"""The default strategy ``"auto"``: shadow snapshots and parameter-shift circuits in one round.

Before the round, the ideal circuit is simulated classically (the dense engine needs its
classical model anyway) and gives the exact single-shot variance of every component under
both estimators; a zero is never trusted (each variance is floored at a fixed fraction of a
state-independent scale). The budget is split to minimise the summed variance
(:func:`~.allocation.allocate`), and snapshot tapes and shifted tapes go to the device as one
batch. The processing function executes nothing: it forms both unbiased estimates and
combines them with the weights fixed before the round, so the combination is unbiased, and
its standard errors come from the round's own data (jackknife over the snapshot groups,
sample variances of the shifted tapes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pennylane import math
from pennylane.measurements import ExpectationMP, ProbabilityMP
from pennylane.tape import QuantumScript

from .allocation import Allocation, allocate
from .circuit import PauliSum, RotationCircuit, output_observables
from .estimators.light_cone import GradientBlocks, generator_coefficients, gradient_blocks
from .parameter_shift import (
    MIN_SHIFT_SHOTS,
    ShiftPlan,
    group_norms,
    measurement_groups,
    param_scales,
    shift_plan,
)
from .plans import MAX_AUTO_BASES, SnapshotPlan, biased_plan, make_plan, optimal_bias
from .variance import (
    expected_block_shadow_variance,
    reduced_pauli_expectations,
    shift_list,
    shift_variances,
    simulate,
)

#: Each planned variance is at least this fraction of its state-independent scale
#: (parameter-shift: ``scale^2 sum_g ||O_g||_1^2 / 2``; shadow: ``sum_P gamma_jP^2 3^|P|``):
#: an ideal-circuit variance of zero (Clifford angles, eigenstates) is never trusted, since
#: the device's state is not the ideal one.
VARIANCE_FLOOR = 0.01

#: Largest light-cone block (``rows * outputs * 4**k`` coefficients) whose shadow variance is
#: planned; larger blocks (deep circuits on many qubits) are planned as parameter-shift only.
MAX_PLAN_WORDS = 2**22

#: Below this many coefficients (``4**n * M * outputs``) the whole register is one block.
_ONE_BLOCK_WORDS = 2**18

#: ``gamma`` coefficients below this make a component exactly zero (outside the light cone or
#: a generator commuting with the observable): it costs no shots.
_ZERO_TOL = 1e-20

#: Word cap of the default strategy's sparse planning model: parameters whose carried
#: generators would exceed it are planned as parameter-shift (their shadow variance proxy is
#: already enormous there), which keeps the model's build within seconds at 20 qubits.
AUTO_MAX_WORDS = 2**20

#: Above max_qubits the default takes the fewest random bases whose proxy variance is within
#: this fraction of that of the full count (fewer snapshot circuits).
BASES_SLACK = 0.1

#: Seed of the plan draws that average a random plan's variance (never the round's own bases).
_PLANNING_SEED = 20231130

#: Bases evaluated per variance prediction of a random plan (an unbiased estimate of the
#: average over its i.i.d. bases).
_VARIANCE_BASES = 128


@dataclass
class GradientModel:
    """What the ideal circuit says about one gradient, independent of any shot budget.

    ``u[j, o]``: exact single-shot parameter-shift variance (floored); ``u_exact`` unfloored.
    ``shadow_scale[j, o]``: ``sum_P gamma_jP^2 3^|P|``, the floor scale of the shadow variance;
    ``u_scale[j, o]``: ``scale_j^2 sum_g ||O_g||_1^2 / 2``, that of the parameter-shift one.
    ``x``: exact Pauli expectations on every block's register. ``active``: components that
    need shots (in the light cone, non-zero, chosen). ``unplanned``: active components whose
    block was too large to plan (their shadow variance is unknown).

    Above ``max_qubits`` (:func:`proxy_gradient_model`) there is no simulation: ``blocks``
    and ``x`` are ``None``, ``proxy_terms`` holds the ``gamma^2`` per output and the word
    weights (:func:`proxy_variance` of any plan), ``shadow_scale`` is the per-snapshot shadow
    proxy with every basis drawn afresh and ``u = u_exact`` the parameter-shift one.
    """

    circuit: RotationCircuit
    observables: list[PauliSum]
    blocks: GradientBlocks
    x: list
    u: np.ndarray
    u_exact: np.ndarray
    shadow_scale: np.ndarray
    u_scale: np.ndarray
    active: np.ndarray
    unplanned: np.ndarray
    num_groups: int
    proxy_terms: tuple | None = None

    @property
    def source(self) -> str:
        """``"simulation"`` or ``"proxy"`` (:func:`proxy_gradient_model`)."""
        return "simulation" if self.proxy_terms is None else "proxy"


@dataclass
class RoundPlan:
    """One gradient's round: the split, the snapshot plan, the shifted tapes and the weights.

    ``weights[j, o]`` multiplies the shadow estimate (``1 - weights`` the parameter-shift one);
    ``var_shadow`` / ``var_shift`` are the planned (floored) variances at this split and
    ``predicted_mse`` the exact variance of the combination at the ideal circuit.
    """

    budget: int
    allocation: Allocation
    shadow_plan: SnapshotPlan | None
    shift: ShiftPlan
    weights: np.ndarray
    var_shadow: np.ndarray
    var_shift: np.ndarray
    predicted_mse: np.ndarray
    notes: list[str] = field(default_factory=list)


def resolve_strategy(strategy, tape: QuantumScript, terms: dict, bases="auto") -> tuple[str, str]:
    """``(strategy that runs, why)``. ``None`` is ``"auto"`` wherever auto applies."""
    if strategy not in (None, "auto", "pure"):
        raise ValueError(f"strategy must be None, 'auto' or 'pure', got {strategy!r}.")
    if strategy == "pure":
        return "pure", "requested"
    why_not = None
    if isinstance(bases, str) and bases != "auto":
        why_not = f"an explicit snapshot plan was requested (bases={bases!r})"
    elif not all(isinstance(m, ExpectationMP | ProbabilityMP) for m in tape.measurements):
        why_not = "auto supports expval and probs; a var measurement is present"
    elif terms:
        why_not = "trainable observable coefficients are estimated from snapshots only"
    elif tape.batch_size is not None:
        why_not = "broadcast tape given directly (QNodes split it first)"
    elif any(math.is_abstract(p) for p in tape.get_parameters(trainable_only=False)):
        why_not = "parameters are traced (jax.jit): auto's plan needs their values"
    if why_not is None:
        return "auto", "requested" if strategy == "auto" else "default"
    if strategy == "auto":
        raise ValueError(f"strategy='auto' is not available here: {why_not}.")
    return "pure", f"default: {why_not}"


def gradient_model(tape: QuantumScript, circuit: RotationCircuit, chosen) -> GradientModel:
    """Simulate the ideal circuit and its shifted copies; exact variances of both estimators."""
    n = circuit.num_qubits
    observables = output_observables(tape, circuit.wire_order)
    if 4**n * circuit.num_params * len(observables) <= _ONE_BLOCK_WORDS:
        # small registers: one pass of the generator carry beats per-block passes
        gammas = [generator_coefficients(circuit, o) for o in observables]
        blocks = GradientBlocks.from_full(gammas, n)
    else:
        blocks = gradient_blocks(circuit, observables, max_words=MAX_PLAN_WORDS)
    chosen_mask = np.zeros(circuit.num_params, dtype=bool)
    chosen_mask[list(chosen)] = True
    active = np.zeros(circuit.num_params, dtype=bool)
    shadow_scale = np.zeros((circuit.num_params, len(observables)))
    for support, rows, gammas in blocks.blocks:
        weight3 = 3.0 ** _word_weights(len(support))
        for o, g in enumerate(gammas):
            shadow_scale[rows, o] = (g**2) @ weight3
        active[rows] |= np.sum([np.sum(g**2, axis=1) for g in gammas], axis=0) > _ZERO_TOL
    active[blocks.skipped] = True
    active &= chosen_mask
    unplanned = np.zeros(circuit.num_params, dtype=bool)
    unplanned[blocks.skipped] = True
    unplanned &= active
    components = np.flatnonzero(active)
    states = simulate(circuit, shift_list(components))  # the circuit, then its shifted copies
    x = [reduced_pauli_expectations(states[0], n, support) for support, _, _ in blocks.blocks]
    u_exact = shift_variances(circuit, observables, components, states[1:])
    groups = measurement_groups(observables)
    l1, _ = group_norms(observables, groups)
    scale = param_scales(circuit)
    u_scale = scale[:, None] ** 2 * l1[None] / 2.0
    u = np.where(active[:, None], np.maximum(u_exact, VARIANCE_FLOOR * u_scale), 0.0)
    return GradientModel(
        circuit,
        observables,
        blocks,
        x,
        u,
        u_exact,
        shadow_scale,
        u_scale,
        active,
        unplanned,
        max(len(groups), 1),
    )


def proxy_gradient_model(
    tape: QuantumScript, circuit: RotationCircuit, chosen, tm
) -> GradientModel:
    """The sparse engine's planning model: no simulation, state-independent variance proxies.

    Above ``max_qubits`` the ideal state is not simulated. Each component's single-shot
    variances are replaced by what they are when every Pauli word has expectation zero and
    distinct words are uncorrelated, computed from the sparse ``G_j`` of ``tm`` (a
    :class:`~.estimators.pauli_propagation.TapeModel`):

    * shadow, per snapshot: ``sum_P gamma_jP^2 3^|P|``; for ``T`` snapshots on ``B`` random
      bases, ``sum_P gamma_jP^2 (3^|P| / T + (1 - q_P) / q_P)``, where
      ``q_P = 1 - (1 - 3^-|P|)^B`` is the chance that some basis covers ``P`` (the
      coverage-corrected estimator's extra variance, at its worst, ``<P>^2 = 1``);
    * parameter-shift, per shot of each shifted tape: ``scale_j^2 sum_P c_P^2 / 2`` (``c`` the
      observable's non-identity coefficients), floored at ``VARIANCE_FLOOR`` times the
      worst case ``scale_j^2 sum_g ||O_g||_1^2 / 2``.

    The split is then no longer the exact optimum, but the weights are still fixed before the
    round (the combination stays unbiased) and the error bars are still measured. Components
    whose generators were shed (over the word cap) or truncated are ``unplanned``: they get
    parameter-shift only, so neither ever biases the estimate.
    """
    from .estimators.pauli_propagation import weights

    model = tm.model
    observables = output_observables(tape, circuit.wire_order)
    num, num_out = circuit.num_params, len(observables)
    word_weights = weights(model.words_x, model.words_z).astype(float)
    w3 = 3.0**word_weights
    proxy = np.zeros((num, num_out))
    mass = np.zeros(num)
    squares = []
    for o in range(num_out):
        sq = model.gradient[o].multiply(model.gradient[o]).tocsr()
        squares.append(sq)
        proxy[:, o] = np.asarray(sq @ w3).reshape(-1)
        mass += np.asarray(sq.sum(axis=1)).reshape(-1)
    chosen_mask = np.zeros(num, dtype=bool)
    chosen_mask[list(chosen)] = True
    shed = np.zeros(num, dtype=bool) if model.shed is None else model.shed
    # a truncated generator is not known: those components are planned as parameter-shift
    # (exact), so a truncation never biases the default's estimate
    truncated = np.zeros(num, dtype=bool)
    for bound in model.bias_bound:
        truncated |= np.asarray(bound) > 0
    shed = shed | truncated
    active = ((mass > _ZERO_TOL) | shed) & chosen_mask
    groups = measurement_groups(observables)
    l1, l2 = group_norms(observables, groups)
    scale = param_scales(circuit)
    u_scale = scale[:, None] ** 2 * l1[None] / 2.0
    u = scale[:, None] ** 2 * l2[None] / 2.0
    u = np.where(active[:, None], np.maximum(u, VARIANCE_FLOOR * u_scale), 0.0)
    proxy = np.where(active[:, None], proxy, 0.0)
    return GradientModel(
        circuit,
        observables,
        None,
        None,
        u,
        u,
        proxy,
        u_scale,
        active,
        shed & active,
        max(len(groups), 1),
        proxy_terms=(squares, word_weights),
    )


def _word_weights(k: int) -> np.ndarray:
    """Pauli weight of every word on ``k`` qubits, flat ``(4**k,)``."""
    w = np.zeros(1, dtype=np.int64)
    for _ in range(k):
        w = (w[:, None] + np.array([0, 1, 1, 1])[None]).reshape(-1)
    return w


def _shadow_variance(model: GradientModel, make, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(planned, exact)`` variances ``(M, O)`` of a plan of ``size`` snapshots from ``make``.

    Planned = exact, floored at ``VARIANCE_FLOOR * shadow_scale / size``; unplanned components
    get ``inf`` in both (their shadow estimate gets no weight unless it is the only one).
    """
    shape = model.u.shape
    exact = np.zeros(shape)
    if model.source == "proxy":
        plan = make(size)
        exact = proxy_variance(model, plan.num_bases if plan.random else None, size)
    elif model.blocks.blocks:
        exact = expected_block_shadow_variance(
            model.blocks, lambda: make(size), model.x, _VARIANCE_BASES
        )
    planned = np.maximum(exact, VARIANCE_FLOOR * model.shadow_scale / size)
    planned[model.unplanned] = np.inf
    exact[model.unplanned] = np.inf
    return planned, exact


def proxy_variance(model: GradientModel, bases: int | None, size: int) -> np.ndarray:
    """Proxy variance ``(M, O)`` of ``size`` snapshots on ``bases`` random bases (``None``: all
    ``3**n``), see :func:`proxy_gradient_model`."""
    squares, w = model.proxy_terms
    per_word = 3.0**w / size
    if bases is not None:
        cover = -np.expm1(bases * np.log1p(-(3.0**-w)))
        per_word = per_word + (1.0 - cover) / cover
    out = np.stack([np.asarray(sq @ per_word).reshape(-1) for sq in squares], axis=1)
    return np.where(model.active[:, None], out, 0.0)


def plan_round(
    model: GradientModel,
    budget: int,
    groups: int,
    rng: np.random.Generator,
    beta: np.ndarray | None = None,
    exact: bool = True,
    max_bases: int = MAX_AUTO_BASES,
    trim_bases: bool = False,
) -> RoundPlan:
    """Split ``budget`` shots for one gradient; everything the round will run, and the weights.

    With ``exact=False`` (the gradient's own path), a complete snapshot plan's variance at the
    chosen size is scaled from the one at the full budget (``v / T``, exact up to the uneven
    split of ``T`` over the ``3**n`` bases) instead of being recomputed; the weights stay fixed
    before the round, so the combination stays unbiased. :func:`~.planning.plan` uses
    ``exact=True``. ``max_bases``: the most distinct bases the snapshots may use (the
    complete plan when all ``3**n`` fit, else that many random bases). ``trim_bases`` (proxy
    models only): use the fewest random bases, from ``20 * 2**k``, whose proxy variance is
    within ``1 + BASES_SLACK`` of that at ``max_bases`` (each basis is a circuit: a full
    simulation on ``lightning.qubit``, a job on hardware).

    Rules: the split minimises the planned summed variance; a shifted tape gets at least
    ``MIN_SHIFT_SHOTS`` shots (so its error bar is measured) or none; every active component
    gets shots, from the shifted tapes or from the snapshots (which serve every component at
    once); below ``2 G MIN_SHIFT_SHOTS`` shots only snapshots can serve every component.
    """
    n = model.circuit.num_qubits
    active, g = model.active, model.num_groups
    num = model.circuit.num_params

    # Variances of random plans are averaged over independent draws of the plan: from a fixed
    # stream, so that the split and the weights depend on the circuit only (reproducible, and
    # independent of the bases the round draws from ``rng``).
    planning = np.random.default_rng(_PLANNING_SEED)

    def make(size: int, groups_: int = 20, source=None) -> SnapshotPlan:
        source = planning if source is None else source
        if beta is None:
            # a complete plan needs two shots per basis for two replicate groups (an error
            # bar); below that, random bases
            full = complete <= max_bases and 2 * complete <= size
            bases = "all" if full else min(size, max_bases)
            return make_plan(n, size, bases=bases, groups=groups_, seed=source)
        need = model.blocks.needed_words()
        return biased_plan(n, size, beta, need, groups=groups_, seed=source)

    complete = 3**n

    def _complete(size: int) -> bool:  # the uniform plan of ``size`` measures all bases
        return beta is None and complete <= max_bases and 2 * complete <= size

    min_shadow = 2 * complete if complete <= max_bases and 2 * complete <= budget else 1
    notes = []
    if not active.any():
        alloc = Allocation(
            0,
            np.zeros(num, dtype=np.int64),
            np.ones(model.u.shape),
            0.0,
            np.zeros(model.u.shape),
            np.full(num, g),
        )
        notes.append("every component is exactly zero (no generator reaches the observable)")
        empty = shift_plan(model.circuit, model.observables, alloc.ps_shots)
        zeros = np.zeros(model.u.shape)
        return RoundPlan(budget, alloc, None, empty, zeros + 1.0, zeros, zeros, zeros, notes)
    v_full = exact_full = None
    if budget < 2 * g * MIN_SHIFT_SHOTS:
        alloc = _shadow_only(budget, num, model.u.shape, g)
        notes.append(f"{budget} shots cannot pay for shifted tapes: snapshots only")
    else:
        v_full, exact_full = _shadow_variance(model, make, budget)
        v_per_shot = np.where(active[:, None], v_full * budget, 0.0)
        alloc = allocate(v_per_shot, model.u, budget, active, min_shadow, groups=g)
        alloc = _enforce_rules(alloc, v_per_shot, model, budget, min_shadow)
    if trim_bases and model.source == "proxy" and alloc.shadow > 0:
        max_bases = _fewest_bases(model, alloc.shadow, min(alloc.shadow, max_bases))
        if max_bases < min(alloc.shadow, MAX_AUTO_BASES):
            notes.append(
                f"{max_bases} random bases: the fewest whose proxy variance is within "
                f"{1 + BASES_SLACK:g}x of {min(alloc.shadow, MAX_AUTO_BASES)} bases"
            )
    shadow_plan = make(alloc.shadow, groups, rng) if alloc.shadow > 0 else None
    scaled = v_full is not None and not exact and _complete(alloc.shadow) and _complete(budget)
    if alloc.shadow > 0 and scaled:
        var_sh = v_full * budget / alloc.shadow
        exact_sh = exact_full * budget / alloc.shadow
    elif alloc.shadow > 0:
        var_sh, exact_sh = _shadow_variance(model, lambda s: make(s), alloc.shadow)
    else:
        var_sh = exact_sh = np.full(model.u.shape, np.inf)
    m = alloc.ps_shots[:, None].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_ps = np.where(m > 0, model.u / m, np.inf)
        exact_ps = np.where(m > 0, model.u_exact / m, np.inf)
        w = np.where(np.isinf(var_ps), 1.0, 0.0)
        both = ~np.isinf(var_ps) & ~np.isinf(var_sh)
        w = np.where(both, var_ps / (var_sh + var_ps), w)
    w = np.where(active[:, None], w, 1.0)
    with np.errstate(invalid="ignore"):
        mse = np.where(w > 0, w**2 * exact_sh, 0.0)
        mse = mse + np.where(w < 1, (1 - w) ** 2 * exact_ps, 0.0)
    mse = np.where(active[:, None], mse, 0.0)
    if model.unplanned.any():
        what = (
            "carried generators above the sparse engine's max_words, or truncated"
            if model.source == "proxy"
            else "light cones too large to plan their shadow variance"
        )
        notes.append(
            f"{int(model.unplanned.sum())} components have {what}: parameter-shift where the "
            "budget allows"
        )
    shift = shift_plan(model.circuit, model.observables, alloc.ps_shots)
    return RoundPlan(budget, alloc, shadow_plan, shift, w, var_sh, var_ps, mse, notes)


def _fewest_bases(model: GradientModel, size: int, cap: int) -> int:
    """Fewest random bases (``cap`` or ``20 * 2**k`` below it) within ``1 + BASES_SLACK`` of the
    proxy variance at ``cap``."""
    target = (1.0 + BASES_SLACK) * np.sum(proxy_variance(model, cap, size))
    b = 20
    while b < cap:
        if np.sum(proxy_variance(model, b, size)) <= target:
            return b
        b *= 2
    return cap


def _shadow_only(budget: int, num: int, shape, g: int) -> Allocation:
    zeros = np.zeros(shape)
    return Allocation(
        budget, np.zeros(num, dtype=np.int64), zeros + 1.0, 0.0, zeros, np.full(num, g)
    )


def _enforce_rules(alloc, v, model: GradientModel, budget: int, min_shadow: int) -> Allocation:
    """Shifted tapes of one shot have no error bar: they are dropped, their shots going to
    the snapshots if there are any. Without snapshots every active component must be
    shifted, else the best split with snapshots is taken."""
    ps = np.where(alloc.ps_shots >= MIN_SHIFT_SHOTS, alloc.ps_shots, 0)
    if alloc.shadow == 0 and (model.active & (ps == 0)).any():
        alloc = allocate(
            v,
            model.u,
            budget,
            model.active,
            min(min_shadow, budget),
            groups=model.num_groups,
            allow_no_shadow=False,
        )
        ps = np.where(alloc.ps_shots >= MIN_SHIFT_SHOTS, alloc.ps_shots, 0)
    if np.array_equal(ps, alloc.ps_shots):
        return alloc
    # with snapshots, the freed shots join them; without, they stay unspent (a handful of
    # snapshots would be a tiny random plan whose error bar cannot be measured)
    shadow = budget - int(2 * model.num_groups * ps.sum()) if alloc.shadow > 0 else 0
    return Allocation(shadow, ps, alloc.weights, alloc.mse, alloc.component_mse, alloc.groups)


def _outputs(tape: QuantumScript, num_qubits: int) -> list[tuple[int, int | None]]:
    """``(measurement, entry)`` of every scalar output (entry ``None`` for an expval)."""
    out = []
    for m_idx, m in enumerate(tape.measurements):
        if isinstance(m, ProbabilityMP):
            out += [(m_idx, e) for e in range(2 ** (len(m.wires) or num_qubits))]
        else:
            out.append((m_idx, None))
    return out


def _welch_dof(a_sh, dof_sh, a_ps, dof_ps) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of ``a_sh + a_ps`` (variances of the two parts)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        num = (a_sh + a_ps) ** 2
        den = np.where(a_sh > 0, a_sh**2 / dof_sh, 0.0) + np.where(a_ps > 0, a_ps**2 / dof_ps, 0.0)
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)


def hybrid_gradient(
    tape: QuantumScript,
    circuit: RotationCircuit,
    budgets: list[int],
    chosen,
    groups: int,
    rng: np.random.Generator,
    reason: str,
    biased: bool = False,
    tm=None,
    max_bases: int = MAX_AUTO_BASES,
    trim_bases: bool = False,
):
    """The round's tapes (snapshots and shifted circuits, every budget) and their processing.

    ``tm``: the sparse engine's :class:`~.estimators.pauli_propagation.TapeModel` above
    ``max_qubits`` (then the split comes from :func:`proxy_gradient_model` and the snapshot
    part is evaluated by the sparse engine); ``None``: the dense engine and the exact
    simulation. ``max_bases``, ``trim_bases`` (sparse only): see :func:`plan_round`. The
    processing function is pure: it executes nothing and returns the same Jacobian whenever
    it is called with the same results.
    """
    import time

    from .estimators.jacobian import shadow_jacobian
    from .estimators.pauli_propagation import decode_bits, pauli_jacobian
    from .gradient_transform import format_jacobian
    from .parameter_shift import shift_estimates, shift_tapes
    from .resources import is_recording, publish
    from .snapshots import decode, refuse_traced_results, snapshot_tapes

    if tm is None:
        model = gradient_model(tape, circuit, chosen)
    else:
        model = proxy_gradient_model(tape, circuit, chosen, tm)
    beta = optimal_bias(model.blocks, floor=0.01) if biased and model.blocks.blocks else None
    rounds = [
        plan_round(model, int(t), groups, rng, beta, False, max_bases, trim_bases) for t in budgets
    ]
    ops_only = QuantumScript(tape.operations, [])
    wire_order = circuit.wire_order
    batches = []
    for r in rounds:
        snaps = [] if r.shadow_plan is None else snapshot_tapes(ops_only, r.shadow_plan, wire_order)
        batches.append((snaps, shift_tapes(tape, r.shift, wire_order)))
    all_tapes = [t for snaps, shifts in batches for t in snaps + shifts]
    outputs = _outputs(tape, circuit.num_qubits)
    num_params, num_out = circuit.num_params, len(outputs)
    active = model.active

    def processing_fn(results):
        refuse_traced_results(results)
        want_errors = is_recording()
        out, offset = [], 0
        for r, (snaps, shifts) in zip(rounds, batches):
            start = time.perf_counter()
            sh_res = results[offset : offset + len(snaps)]
            ps_res = results[offset + len(snaps) : offset + len(snaps) + len(shifts)]
            offset += len(snaps) + len(shifts)
            sh = np.zeros((num_params, num_out))
            sh_var = np.full((num_params, num_out), np.nan)
            bias = np.zeros((num_params, num_out))
            if r.shadow_plan is not None and tm is not None:
                bits = decode_bits(sh_res, r.shadow_plan)
                jacs, errs, bounds = pauli_jacobian(tape, tm, r.shadow_plan, bits, want_errors)
                bias = np.concatenate([b.reshape(num_params, -1) for b in bounds], axis=1)
            elif r.shadow_plan is not None:
                outcomes = decode(sh_res, r.shadow_plan)
                jacs, errs = shadow_jacobian(
                    tape, circuit, r.shadow_plan, outcomes, {}, want_errors
                )
            if r.shadow_plan is not None:
                sh = np.concatenate([j.reshape(num_params, -1) for j in jacs], axis=1)
                if want_errors and r.shadow_plan.groups > 1:  # one group: no error bar
                    sh_var = np.concatenate([e.reshape(num_params, -1) for e in errs], axis=1) ** 2
                    if r.shadow_plan.random:
                        # identical groups of random bases (e.g. no basis covers the needed
                        # words) do not show the spread over the bases: unknown, not zero
                        sh_var[sh_var <= (1e-12 * np.maximum(1.0, np.abs(sh))) ** 2] = np.nan
            ps, ps_var = shift_estimates(ps_res, r.shift, num_params, num_out)
            w = r.weights
            est = np.where(w > 0, w * sh, 0.0) + np.where(w < 1, (1 - w) * np.nan_to_num(ps), 0.0)
            est[~active] = 0.0
            jac = _per_measurement(est, outputs, len(tape.measurements))
            if want_errors:
                seconds = time.perf_counter() - start
                bias = np.where(active[:, None], r.weights * bias, 0.0)
                record = _record(r, model, est, sh_var, ps_var, outputs, reason, seconds)
                if tm is not None:
                    _sparse_fields(record, tm, bias, outputs)
                publish(record)
            out.append(format_jacobian(jac, len(tape.trainable_params)))
        return tuple(out) if tape.shots.has_partitioned_shots else out[0]

    return all_tapes, processing_fn


def _per_measurement(arr: np.ndarray, outputs, num_measurements: int) -> list[np.ndarray]:
    """Split ``(M, outputs)`` columns into one array per measurement (``(M,)`` for an expval)."""
    out = []
    for m in range(num_measurements):
        cols = [o for o, (mi, _) in enumerate(outputs) if mi == m]
        out.append(arr[:, cols] if outputs[cols[0]][1] is not None else arr[:, cols[0]])
    return out


def _record(r: RoundPlan, model: GradientModel, est, sh_var, ps_var, outputs, reason, seconds):
    """The round's :class:`~.resources.GradientRecord`: measured standard errors."""
    from .resources import GradientRecord

    w, active = r.weights, model.active
    # a measured variance of zero (every sample of the needed words agreed) is floored like
    # the planned ones: at VARIANCE_FLOOR times the state-independent scale per shot
    if r.allocation.shadow > 0:
        sh_var = np.maximum(sh_var, VARIANCE_FLOOR * model.shadow_scale / r.allocation.shadow)
    m = r.allocation.ps_shots[:, None].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ps_floor = np.where(m > 0, VARIANCE_FLOOR * model.u_scale / m, 0.0)
    ps_var = np.maximum(ps_var, ps_floor)  # nan (not measured) stays nan
    a_sh = np.where(w > 0, w**2 * sh_var, 0.0)
    a_ps = np.where(w < 1, (1 - w) ** 2 * ps_var, 0.0)
    var = np.where(active[:, None], a_sh + a_ps, 0.0)
    plan = r.shadow_plan
    dof_sh = plan.groups - 1 if plan is not None and plan.groups > 1 else np.nan
    shots = np.maximum(r.allocation.ps_shots[:, None] - 1, 1)
    dof = np.where(active[:, None], _welch_dof(a_sh, dof_sh, a_ps, shots), np.inf)
    alloc = r.allocation
    split = {
        "shadow_snapshots": alloc.shadow,
        "parameter_shift_shots": r.shift.total_shots,
        "parameter_shift_components": [int(j) for j in r.shift.components],
        "shots_per_shifted_tape": alloc.ps_shots.tolist(),
        "tapes_per_shifted_circuit": len(r.shift.groups),
        "shadow_weight": w.tolist(),
        "predicted_mse": float(np.sum(r.predicted_mse)),
    }
    plan_text = (
        "no snapshots"
        if plan is None
        else (
            ("all 3**n bases" if not plan.random else "random bases") + f", {plan.num_bases} bases"
        )
    )
    n_ps = len(r.shift.components)
    split_text = f"{alloc.shadow} snapshots ({plan_text}), {r.shift.total_shots} "
    split_text += f"parameter-shift shots on {n_ps} components"
    num_meas = max(mi for mi, _ in outputs) + 1
    notes = [f"strategy='auto' ({reason})", *r.notes]
    if plan is not None and n_ps:
        notes.append(
            "combined estimator: on a noisy device the shadow part estimates "
            "Tr(rho_noisy G_j^ideal) and the parameter-shift part the noisy cost's gradient; "
            "they agree only for noiseless circuits"
        )
    total = alloc.shadow + r.shift.total_shots
    return GradientRecord(
        method="shadow",
        jacobian=_per_measurement(est, outputs, num_meas),
        stderr=_per_measurement(np.sqrt(var), outputs, num_meas),
        snapshots=total,
        circuits=(0 if plan is None else plan.num_bases) + r.shift.num_tapes,
        plan="auto: " + split_text,
        engine="dense",
        num_qubits=model.circuit.num_qubits,
        num_params=model.circuit.num_params,
        postprocessing_seconds=seconds,
        groups=plan.groups if plan is not None else 0,
        notes=notes,
        variance=_per_measurement(var, outputs, num_meas),
        shot_variance=_per_measurement(var * max(total, 1), outputs, num_meas),
        strategy="auto",
        split=split,
        dof=_per_measurement(dof, outputs, num_meas),
    )


def _sparse_fields(record, tm, bias: np.ndarray, outputs) -> None:
    """The sparse engine's part of a round's record: words kept and truncation bias bounds
    (the shadow part's bound times its weight; the shifted tapes are exact), with a warning
    where a bound exceeds ``BIAS_FRACTION`` of the component's standard error."""
    import warnings

    from .estimators.pauli_propagation import truncation_bias_message

    model = tm.model
    num_meas = max(mi for mi, _ in outputs) + 1
    record.engine = (
        f"pauli (sparse propagation: {model.carried_words} carried words, peak "
        f"{model.peak_words}, {model.num_words} estimated words)"
    )
    record.notes.append(
        "above max_qubits the split comes from state-independent variance proxies (no exact "
        "simulation): shadow sum_P gamma_jP^2 (3^|P| / T + (1 - q_P) / q_P) with q_P the "
        "chance that a random basis covers P, parameter-shift scale_j^2 sum_P c_P^2 / 2 per shot"
    )
    largest = float(np.max(bias)) if bias.size else 0.0
    if largest > 0:
        record.notes.append(f"largest truncation bias bound {largest:.3g} (report['bias_bound'])")
        message = truncation_bias_message(_per_measurement(bias, outputs, num_meas), record.stderr)
        if message is not None:
            record.notes.append(message)
            warnings.warn(f"diff_method='shadow': {message}", UserWarning, stacklevel=2)
    record.report = {
        "engine": "pauli",
        "carried_words": model.carried_words,
        "peak_words": model.peak_words,
        "estimated_words": model.num_words,
        "bias_bound": _per_measurement(bias, outputs, num_meas),
        "planning": "proxy",
    }
