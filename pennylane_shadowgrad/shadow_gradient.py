"""The ``shadow_grad`` gradient transform: every derivative from one set of shadow snapshots."""

from __future__ import annotations

import time
import warnings
from functools import partial

import numpy as np
import pennylane as qml
from pennylane import math
from pennylane.gradients.gradient_transform import (
    _no_trainable_grad,
    choose_trainable_param_indices,
    contract_qjac_with_cjac,
)
from pennylane.measurements import ExpectationMP, ProbabilityMP, VarianceMP
from pennylane.tape import QuantumScript, QuantumScriptBatch
from pennylane.typing import PostprocessingFn

from .circuit import (
    PauliRotation,
    RotationCircuit,
    UnsupportedCircuitError,
    decompose_for_gradient,
    output_observables,
    pauli_sum,
    rotation_form,
)
from .estimators.dense import sweep_memory_bytes
from .estimators.jacobian import shadow_jacobian
from .estimators.light_cone import gradient_blocks
from .estimators.pauli_propagation import (
    DEFAULT_MAX_WORDS,
    decode_bits,
    pauli_jacobian,
    tape_model,
    truncation_bias_message,
    unpack_digits,
    weights,
)
from .gradient_transform import format_jacobian, stack_leaves
from .hybrid import AUTO_MAX_WORDS, hybrid_gradient, resolve_strategy
from .plans import (
    BIAS_FLOOR,
    DEFAULT_GROUPS,
    MAX_AUTO_BASES,
    SnapshotPlan,
    biased_plan,
    check_plan_options,
    make_plan,
    optimal_bias,
    optimal_bias_words,
)
from .resources import GradientRecord, is_recording, publish
from .snapshots import decode, snapshot_tapes

#: Default largest register for the dense engine (its arrays hold 4**n coefficients).
DEFAULT_MAX_QUBITS = 12

_OPTIONS = {
    "argnum",
    "snapshots",
    "bases",
    "groups",
    "seed",
    "max_qubits",
    "strategy",
    "biased_bases",
    "engine",
    "truncation",
    "max_words",
}

#: Classical engines of the pure strategy: ``"auto"`` is dense up to ``max_qubits`` qubits and
#: the sparse Pauli-propagation engine above.
ENGINES = ("auto", "dense", "pauli")

#: Options of earlier releases, with what replaced them.
_REMOVED_OPTIONS = {
    "pilot": "the default strategy no longer spends a pilot: it plans from an exact simulation "
    "of the ideal circuit, before the round",
    "device": "the default strategy runs everything in the gradient's own batch of tapes and "
    "needs no device",
}


def _validate_options(kwargs: dict) -> None:
    """Refuse unknown options and invalid values, before any device time.

    The checks of the options that :func:`~.plans.make_plan` takes live there
    (``check_*``) and are shared with it, so that each option is checked in one place.
    """
    unknown = set(kwargs) - _OPTIONS
    if unknown:
        raise TypeError(
            f"Unknown option(s) {sorted(unknown)} for diff_method='shadow'. "
            f"Valid gradient_kwargs are {sorted(_OPTIONS)}."
        )
    more = {
        "max_qubits": _check_max_qubits,
        "engine": _check_engine,
        "truncation": _check_truncation,
        "max_words": _check_max_words,
    }
    check_plan_options(kwargs, more)


def _check_max_qubits(max_qubits) -> None:
    if isinstance(max_qubits, bool | np.bool_) or not (
        isinstance(max_qubits, int | np.integer) and max_qubits >= 1
    ):
        raise ValueError(
            "'max_qubits' must be a positive integer (the largest register the dense engine "
            f"accepts), got {max_qubits!r}."
        )


def _check_engine(engine) -> None:
    if not (isinstance(engine, str) and engine in ENGINES):
        raise ValueError(f"'engine' must be one of {ENGINES}, got {engine!r}.")


def _check_truncation(truncation) -> None:
    if truncation is None:
        return
    if not isinstance(truncation, dict) or set(truncation) - {"max_weight", "min_coefficient"}:
        raise ValueError(
            "'truncation' must be None (exact, the default) or a dict with keys 'max_weight' "
            "(largest Pauli weight kept, an integer >= 1) and/or 'min_coefficient' (smallest "
            f"absolute coefficient kept, >= 0), got {truncation!r}."
        )
    w = truncation.get("max_weight")
    if w is not None and (isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 1):
        raise ValueError(f"truncation['max_weight'] must be an integer >= 1, got {w!r}.")
    c = truncation.get("min_coefficient", 0.0)
    if isinstance(c, bool) or not isinstance(c, int | float | np.number) or not c >= 0:
        raise ValueError(f"truncation['min_coefficient'] must be a number >= 0, got {c!r}.")


def _check_max_words(max_words) -> None:
    if isinstance(max_words, bool | np.bool_) or not (
        isinstance(max_words, int | np.integer) and max_words >= 1
    ):
        raise ValueError(
            "'max_words' must be a positive integer (the sparse engine's cap on Pauli words), "
            f"got {max_words!r}."
        )


def select_engine(engine: str, num_qubits: int, max_qubits: int) -> str:
    """The engine that runs: ``"dense"`` or ``"pauli"`` (``"auto"``: dense up to max_qubits)."""
    if engine == "auto":
        return "dense" if num_qubits <= max_qubits else "pauli"
    return engine


def _validate_tape(tape: QuantumScript, snapshots, max_qubits: int, engine: str = "auto") -> None:
    """Refuse, before any device time, what the estimator cannot do."""
    if tape.shots.total_shots is None and snapshots is None:
        raise ValueError(
            "diff_method='shadow' estimates gradients from measurement samples and needs a "
            "finite snapshot budget, but the QNode has shots=None. Set shots (e.g. "
            "qml.set_shots(qnode, 1000) or QNode(..., shots=1000)), pass "
            "gradient_kwargs={'snapshots': T}, or use diff_method='backprop'/'adjoint' for "
            "exact gradients on a simulator."
        )
    for op in tape.operations:
        if isinstance(op, qml.measurements.MidMeasureMP) or op.name == "MidMeasure":
            raise UnsupportedCircuitError(
                "diff_method='shadow' does not support mid-circuit measurements yet; use "
                "diff_method='parameter-shift'."
            )
        if isinstance(op, qml.operation.Channel):
            raise UnsupportedCircuitError(
                f"diff_method='shadow' does not support noise channels ({op.name}) yet: its "
                "classical sweep assumes ideal gates. Use diff_method='parameter-shift'."
            )
    for m in tape.measurements:
        if not isinstance(m, ExpectationMP | ProbabilityMP | VarianceMP):
            raise UnsupportedCircuitError(
                f"diff_method='shadow' differentiates expval, var and probs; got "
                f"{type(m).__name__}. States, density matrices, entropies, samples and counts "
                "have no shadow gradient."
            )
        if m.mv is not None:
            raise UnsupportedCircuitError(
                "diff_method='shadow' does not support measurements of mid-circuit results."
            )
        if isinstance(m, ProbabilityMP) and m.obs is not None:
            raise UnsupportedCircuitError(
                "diff_method='shadow' supports qml.probs(wires=...) but not qml.probs(op=...)."
            )
        if isinstance(m, ProbabilityMP) and not m.wires:
            raise UnsupportedCircuitError(
                "diff_method='shadow' needs the wires of qml.probs(): without wires the "
                "device measures all of its own wires (including any the circuit never "
                "touches), in an order it chooses, which the gradient cannot see. Pass them "
                f"explicitly, e.g. qml.probs(wires={tape.wires.tolist()}) for the circuit's "
                "wires or qml.probs(wires=dev.wires) for the device's."
            )
        if isinstance(m, ExpectationMP | VarianceMP) and m.obs is None:
            raise UnsupportedCircuitError(f"{type(m).__name__} without an observable.")
    _validate_variance_budget(tape, snapshots)
    n = len(tape.wires)
    if engine == "dense" and n > max_qubits:
        gib = sweep_memory_bytes(n, 1) / 2**30
        raise ValueError(
            f"The circuit acts on {n} qubits; the dense shadow engine holds 4**{n} Pauli "
            f"coefficients per array (about {gib:.1f} GiB at its peak for one observable, "
            f"more with error bars) and is limited to max_qubits={max_qubits}. Raise "
            "gradient_kwargs['max_qubits'] if the machine has the memory, or use the sparse "
            "engine (engine='auto' or 'pauli')."
        )
    for p in tape.get_parameters(trainable_only=False):
        value = _concrete_value(p)
        if value is None:  # traced under jax.jit: no concrete value to check
            continue
        if not np.all(np.isfinite(value)):
            raise ValueError(f"Non-finite gate or observable parameter: {value}.")


def _validate_variance_budget(tape: QuantumScript, snapshots) -> None:
    """A var gradient needs ``T >= 2`` snapshots per gradient (two independent groups)."""
    if not any(isinstance(m, VarianceMP) for m in tape.measurements):
        return
    if snapshots is not None:
        budgets = [int(snapshots)]
    else:
        budgets = [int(s) for s in tape.shots] if tape.shots.total_shots else []
    if budgets and min(budgets) < 2:
        raise ValueError(
            f"A var gradient needs at least 2 snapshots (got a budget of {min(budgets)}): its "
            "product <O> d<O> is estimated without bias from two independent groups of "
            "snapshots, and a single snapshot cannot form two."
        )


def _concrete_value(p) -> np.ndarray | None:
    """``p`` as a complex NumPy array, or ``None`` when (part of) it is abstract (jax.jit).

    Parameters may be interface tensors, or sequences and object arrays of them: a template
    fed the tuple returned by another QNode (``qml.AngleEmbedding(first(x), ...)`` under
    ``qml.grad``) holds an object array of autograd boxes, which ``math.unwrap`` leaves as is.
    """
    if isinstance(p, tuple | list) or (isinstance(p, np.ndarray) and p.dtype == object):
        parts = [_concrete_value(q) for q in (p.ravel() if isinstance(p, np.ndarray) else p)]
        if any(q is None for q in parts):
            return None
        if not parts:
            return np.zeros(0, dtype=complex)
        return np.concatenate([q.ravel() for q in parts])
    if math.is_abstract(p):
        return None
    return np.asarray(math.unwrap(p), dtype=complex)


def _expand_transform_shadow(
    tape: QuantumScript, argnum=None, **kwargs
) -> tuple[QuantumScriptBatch, PostprocessingFn]:
    """Validate, then decompose to Pauli rotations and fixed gates, before the shadow gradient."""
    for name in kwargs.keys() & _REMOVED_OPTIONS.keys():
        raise TypeError(
            f"Option {name!r} of diff_method='shadow' was removed: {_REMOVED_OPTIONS[name]}."
        )
    _validate_options({"argnum": argnum, **kwargs})
    if not tape.trainable_params:
        # Nothing to differentiate, e.g. our own snapshot tapes when shadow_grad is applied to
        # a QNode that itself uses diff_method="shadow": leave them to the device.
        return [tape], lambda results: results[0]
    _validate_tape(
        tape,
        kwargs.get("snapshots"),
        kwargs.get("max_qubits", DEFAULT_MAX_QUBITS),
        kwargs.get("engine", "auto"),
    )
    # A broadcast tape is split here, before PennyLane's ML boundary, so that every batch
    # element is an ordinary tape with its own snapshot budget and the interface (autograd,
    # torch, jax, jax.jit) differentiates the split and the re-stacking itself. PennyLane's
    # vector-Jacobian machinery cannot take a Jacobian w.r.t. broadcast trainable parameters.
    max_qubits = kwargs.get("max_qubits", DEFAULT_MAX_QUBITS)
    sparse = select_engine(kwargs.get("engine", "auto"), len(tape.wires), max_qubits) == "pauli"
    if sparse:
        _check_sparse_options(tape, kwargs)
    split = qml.transforms.broadcast_expand(tape)[0] if tape.batch_size else [tape]
    new_tapes = []
    for t in split:
        t.trainable_params = tape.trainable_params
        new_tapes.append(decompose_for_gradient(t))
    if sparse:  # build the sparse model now: its cap refuses before any device time
        for t in new_tapes:
            if not any(math.is_abstract(p) for p in t.get_parameters(trainable_only=False)):
                strategy = resolve_strategy(
                    kwargs.get("strategy"), t, _observable_terms(t), kwargs.get("bases", "auto")
                )[0]
                _sparse_model(
                    t,
                    kwargs.get("truncation"),
                    kwargs.get("max_words", DEFAULT_MAX_WORDS),
                    for_auto=strategy == "auto",
                )

    def postprocessing(results):
        return results[0] if tape.batch_size is None else stack_leaves(results)

    return new_tapes, postprocessing


def _check_sparse_options(tape: QuantumScript, kwargs: dict) -> None:
    """Options the sparse engine cannot serve, refused in the expand step (no device time)."""
    if not kwargs.get("biased_bases"):
        return
    strategy = resolve_strategy(
        kwargs.get("strategy"), tape, _observable_terms(tape), kwargs.get("bases", "auto")
    )[0]
    if strategy == "auto":
        raise ValueError(
            "biased_bases=True with the default strategy is not available on the sparse engine "
            "yet (its plan has no proxy for biased bases); pass strategy='pure' for biased "
            "bases fitted to the sparse G_j, use engine='dense' (n <= max_qubits), or "
            "biased_bases=False."
        )


#: Sparse models built in the expand step, reused by the gradient (a few recent ones).
_MODEL_CACHE: dict = {}
_MODEL_CACHE_SIZE = 4


def _model_key(tape: QuantumScript, circuit: RotationCircuit, truncation, max_words, shed):
    gates = tuple(
        (g.wires, g.digits, g.angle, g.param, g.scale)
        if isinstance(g, PauliRotation)
        else (g.wires, g.matrix.tobytes())
        for g in circuit.gates
    )
    meas = []
    for m in tape.measurements:
        if m.obs is None:
            meas.append((type(m).__name__, tuple(m.wires)))
        else:
            ps = pauli_sum(m.obs, circuit.wire_order)
            meas.append((type(m).__name__, ps.digits.tobytes(), ps.coeffs.tobytes()))
    trunc = tuple(sorted((truncation or {}).items()))
    return (
        tuple(circuit.wire_order),
        gates,
        tuple(meas),
        tuple(tape.trainable_params),
        trunc,
        max_words,
        shed,
    )


def _sparse_model(tape: QuantumScript, truncation, max_words, for_auto: bool = False):
    """The sparse model of ``tape`` (cached), with the time it took to build.

    ``for_auto``: the default strategy's planning model, capped at
    ``min(max_words, AUTO_MAX_WORDS)`` words, which sheds the parameters over the cap (they
    are planned as parameter-shift) instead of refusing."""
    shed = for_auto
    if for_auto:
        max_words = min(max_words, AUTO_MAX_WORDS)
    terms = _observable_terms(tape)
    circuit = rotation_form(tape)
    key = _model_key(tape, circuit, truncation, max_words, shed)
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    truncation = truncation or {}
    start = time.perf_counter()
    tm = tape_model(
        tape,
        circuit,
        terms,
        max_weight=truncation.get("max_weight"),
        min_coefficient=float(truncation.get("min_coefficient", 0.0)),
        max_words=int(max_words),
        shed=shed,
    )
    out = (tm, time.perf_counter() - start)
    if len(_MODEL_CACHE) >= _MODEL_CACHE_SIZE:
        _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
    _MODEL_CACHE[key] = out
    return out


def _observable_terms(tape: QuantumScript) -> dict[int, tuple[int, object]]:
    """Trainable parameters that are observable coefficients: ``param -> (measurement, term)``."""
    num_ops = len(tape.operations)
    out = {}
    for k, t_idx in enumerate(tape.trainable_params):
        info = tape.par_info[t_idx]
        if info["op_idx"] < num_ops:
            continue
        m_idx = info["op_idx"] - num_ops
        m = tape.measurements[m_idx]
        obs = m.obs
        if not isinstance(m, ExpectationMP) or not isinstance(
            obs, qml.ops.LinearCombination | qml.ops.Sum | qml.ops.SProd
        ):
            raise UnsupportedCircuitError(
                "diff_method='shadow' differentiates observable coefficients only of "
                f"expectation values of linear combinations; got a trainable {obs}."
            )
        _, ops = obs.terms()
        if any(op.num_params for op in ops):
            raise UnsupportedCircuitError(
                f"Trainable parameters inside the terms of {obs} cannot be differentiated."
            )
        out[k] = (m_idx, _coefficient_derivative(obs, info["p_idx"]))
    return out


def _coefficient_derivative(obs, p_idx: int):
    """``dO/dc`` for the coefficient ``c = obs.data[p_idx]``: ``O(c=1) - O(c=0)``.

    Exact because ``O`` is affine in each coefficient. (The parameter index is not an index
    into ``obs.terms()``: in ``Z(0) + c * X(1)`` the only parameter belongs to the second term.)
    """
    data = [math.unwrap(d) for d in obs.data]
    one, zero = list(data), list(data)
    one[p_idx], zero[p_idx] = 1.0, 0.0
    bind = qml.ops.functions.bind_new_parameters
    return qml.ops.Sum(bind(obs, one), qml.ops.SProd(-1.0, bind(obs, zero)))


def _biased_plans(
    tape: QuantumScript,
    circuit: RotationCircuit,
    budgets,
    bases,
    groups: int,
    rng,
    terms=None,
    tm=None,
) -> list[SnapshotPlan]:
    """One locally-biased plan per budget for ``tape`` (``biased_bases=True``); ``tm``: the
    sparse engine's model, whose ``G_j`` words the bias is fitted to (else the dense blocks)."""
    if terms or not all(isinstance(m, ExpectationMP | ProbabilityMP) for m in tape.measurements):
        raise ValueError(
            "biased_bases=True needs the gradient observables in advance: expval and probs "
            "measurements only, without trainable observable coefficients."
        )
    n = circuit.num_qubits
    if tm is not None:
        model = tm.model
        mass = sum(np.asarray(g.multiply(g).sum(axis=0)).reshape(-1) for g in model.gradient)
        digits = unpack_digits(model.words_x, model.words_z, n)
        beta = optimal_bias_words(digits, mass, floor=BIAS_FLOOR)
        need = None
    else:
        blocks = gradient_blocks(circuit, output_observables(tape, circuit.wire_order))
        beta = optimal_bias(blocks, floor=BIAS_FLOOR)
        need = blocks.needed_words()
    out = []
    for t in budgets:
        b = t if bases == "per-shot" else bases
        out.append(biased_plan(n, int(t), beta, need, bases=b, groups=groups, seed=rng))
    return out


@partial(
    qml.transform,
    expand_transform=_expand_transform_shadow,
    classical_cotransform=contract_qjac_with_cjac,
    final_transform=True,
)
def shadow_grad(
    tape: QuantumScript,
    argnum: int | list[int] | None = None,
    snapshots: int | None = None,
    bases: str | int = "auto",
    groups: int = DEFAULT_GROUPS,
    seed: int | np.random.Generator | None = None,
    max_qubits: int = DEFAULT_MAX_QUBITS,
    strategy: str | None = None,
    biased_bases: bool = False,
    engine: str = "auto",
    truncation: dict | None = None,
    max_words: int = DEFAULT_MAX_WORDS,
) -> tuple[QuantumScriptBatch, PostprocessingFn]:
    r"""Estimate every derivative of a circuit from one set of classical-shadow snapshots.

    The circuit is decomposed into fixed gates and Pauli rotations :math:`e^{-i\phi_j P_j/2}`.
    With :math:`Q_j` the generator :math:`P_j` carried to the end of the circuit, each
    derivative is an expectation value on the *same* output state,
    :math:`\partial_j f = \mathrm{Tr}(\rho\, G_j)`, :math:`G_j = \tfrac{i}{2}[Q_j, O]`.
    The transform measures snapshots of :math:`\rho` in local Pauli bases and evaluates all
    :math:`M` derivatives on the averaged shadow with one backward sweep
    (:math:`O(M\,4^n)` classical time). The estimate is unbiased for noiseless circuits.

    Args:
        tape (QNode or QuantumTape): circuit to differentiate. Its measurements must be
            ``expval``, ``var`` or ``probs``.
        argnum (int or list[int] or None): trainable tape parameters to differentiate with
            respect to; all by default. The snapshots are shared, so fewer parameters only
            save classical time.
        snapshots (int or None): snapshot budget :math:`T` of one gradient. Default: the
            tape's shots (with a shot vector, one gradient per entry).
        bases (str or int): measurement plan. ``"auto"`` (default) measures all
            :math:`3^n` local bases with the shots split evenly when
            :math:`3^n \le \min(T, 729)`, and otherwise :math:`\min(T, 729)` random bases
            with the coverage-corrected ratio estimator; ``"all"`` or ``"per-shot"`` force a
            plan (and the pure strategy). An integer ``B`` caps the distinct bases at ``B``
            (random unless all :math:`3^n` fit): fewer circuits, where each costs a full
            simulation (``lightning.qubit``) or a job; the default strategy keeps planning
            with it, the pure one draws exactly ``B`` random bases.
        groups (int): independent replicate groups for the jackknife error bars and the
            unbiased variance gradient (default 20).
        seed (int or numpy.random.Generator or None): fixes the random bases. An integer
            draws the same bases at every call; pass a ``Generator`` for fresh bases per call.
        max_qubits (int): the dense engine refuses larger registers (default 12); above it
            ``engine="auto"`` uses the sparse engine.
        engine (str): classical engine. ``"dense"`` holds ``4**n``
            Pauli coefficients (``O(M 4^n)`` time); ``"pauli"`` carries every generator
            forward as a sparse, bit-packed Pauli sum restricted to the observable's light
            cone and estimates only the Pauli words the ``G_j`` need, straight from the
            snapshot bits (time and memory grow with the words kept, not with ``4**n``);
            exact (untruncated) it gives the same numbers as the dense engine on the same
            snapshots. ``"auto"`` (default): dense up to ``max_qubits``, sparse above.
        truncation (dict or None): sparse engine only. ``None`` (default): exact.
            ``{"max_weight": w, "min_coefficient": c}`` (either key) drops carried words of
            higher weight or smaller coefficient; the record's notes and ``report`` give
            every component's bias bound (dropped coefficient mass times the sum of ``|o|``
            of the observable), and inside :func:`~pennylane_shadowgrad.record` a
            ``UserWarning`` says when a bound exceeds 10% of its component's standard error
            (the error bars would not cover the bias). The default never truncates.
        max_words (int): sparse engine only: the largest number of carried Pauli words
            (default 4,000,000, about 0.5 GiB at its peak); above it the pure strategy is
            refused before any device time, with the sizes and a truncation that would fit.
            The default strategy instead plans the parameters holding the most words as
            parameter-shift, largest first, until its model fits
            ``min(max_words, 2**20)`` words; the record's notes count them.
        strategy (str or None): ``"pure"`` is the textbook estimator above (all ``T`` shots
            are snapshots). ``"auto"`` also runs parameter-shift circuits where they are
            cheaper: the ideal circuit and its shifted copies are simulated classically
            (before the round, using no measured data) to get every component's exact
            single-shot variance under both estimators (floored, so that a zero is never
            trusted); the budget is split between snapshots and per-component shifted tapes to
            minimise the summed variance; snapshots and shifted tapes run as one batch; each
            component is the combination of its two unbiased estimates with weights fixed
            before the round, and its standard error is measured from the round's data.
            Components outside the light cone cost nothing and are exactly zero. Above
            ``max_qubits`` (the sparse engine) nothing is simulated: the split uses
            state-independent variance proxies from the sparse ``G_j`` (shadow
            ``sum_P gamma_jP^2 3^|P|`` per snapshot, parameter-shift
            ``scale_j^2 sum_P c_P^2 / 2`` per shot: every word's expectation zero, distinct
            words uncorrelated); the combination is still unbiased and its error bars measured,
            but the split is no longer the exact optimum. ``None``
            (default): ``"auto"``, except for ``var`` measurements, trainable observable
            coefficients and ``bases="all"``/``"per-shot"``, which run ``"pure"``. The
            record says which strategy ran and why.
        biased_bases (bool): locally-biased shadows: per-qubit X/Y/Z probabilities fitted to
            the gradient observables ``G_j`` (known classically) by minimising the summed
            variance proxy ``sum_jP gamma_jP^2 / prod_q beta_q(P_q)``; a complete plan then
            gets ``S_b ~ prod_q beta_q(b_q)`` shots per basis, a random plan draws its bases
            from ``beta`` and divides by the exact coverage probability, so the estimate stays
            unbiased. ``expval``/``probs`` only. On the sparse engine the fit runs over the
            sparse ``G_j`` words, with ``strategy="pure"`` only (the default strategy refuses
            it there: its plan has no proxy for biased bases). Off by default: see
            ``benchmarks/biased_bases.py`` for the measured gain.

    Returns:
        qnode (QNode) or tuple[List[QuantumTape], function]: the snapshot tapes and a
        function that turns their samples into the Jacobian, shaped as
        :func:`~pennylane.gradients.param_shift` shapes it.
        Broadcast tapes are supported, trainable broadcast parameters included: each batch
        element gets its own plan and budget. The expand transform splits them before
        differentiation, so every interface sees the usual Jacobian; applied to a broadcast
        tape directly, every entry has the batch dimension first and the entry of a
        broadcast parameter holds :math:`\partial f_b / \partial \theta_{k,b}`.

    Inside :func:`pennylane_shadowgrad.record`, every gradient also reports its standard
    errors, snapshots, circuits and classical time.

    **Example**

    >>> import pennylane as qml
    >>> from pennylane_shadowgrad import shadow_grad
    >>> dev = qml.device("default.qubit", seed=42)
    >>> @qml.qnode(dev, diff_method=shadow_grad, shots=20000)
    ... def circuit(x):
    ...     qml.RX(x[0], wires=0)
    ...     qml.RY(x[1], wires=1)
    ...     qml.CNOT(wires=[0, 1])
    ...     return qml.expval(qml.Z(1))
    >>> x = qml.numpy.array([0.3, 0.7], requires_grad=True)
    >>> qml.grad(circuit)(x).round(2)  # exact: [-0.226, -0.615], standard errors about 0.01
    array([-0.23, -0.59])
    """
    if argnum is None and not tape.trainable_params:
        return _no_trainable_grad(tape)
    chosen = choose_trainable_param_indices(tape, argnum)
    terms = _observable_terms(tape)
    circuit = rotation_form(tape)
    if tape.shots.total_shots is None:
        budgets = [int(snapshots)]
    elif snapshots is not None:
        budgets = [int(snapshots)] * tape.shots.num_copies
    else:
        budgets = [int(s) for s in tape.shots]
    rng = np.random.default_rng(seed)
    chosen_engine = select_engine(engine, circuit.num_qubits, max_qubits)
    strategy, reason = resolve_strategy(strategy, tape, terms, bases)
    if strategy == "auto":
        tm = None
        if chosen_engine == "pauli":
            _check_sparse_options(
                tape, {"biased_bases": biased_bases, "strategy": "auto", "bases": bases}
            )
            tm = _sparse_model(tape, truncation, max_words, for_auto=True)[0]
        max_bases = bases if not isinstance(bases, str) else MAX_AUTO_BASES
        return hybrid_gradient(
            tape,
            circuit,
            budgets,
            chosen,
            groups,
            rng,
            reason,
            bool(biased_bases),
            tm,
            max_bases,
            trim_bases=isinstance(bases, str),
        )
    if biased_bases:
        tm = None
        if chosen_engine == "pauli":
            tm = _sparse_model(tape, truncation, max_words)[0]
        plans = _biased_plans(tape, circuit, budgets, bases, groups, rng, terms, tm)
        reason += "; locally-biased bases"
    else:
        plans = [
            make_plan(circuit.num_qubits, t, bases=bases, groups=groups, seed=rng) for t in budgets
        ]
    if chosen_engine == "pauli":
        estimate = _pauli_estimate(tape, circuit, chosen, reason, truncation, max_words, budgets)
        return _pure_round(tape, circuit, plans, chosen, estimate)

    def estimate(plan, results, want_errors):
        outcomes = decode(results, plan)
        jacs, errs = shadow_jacobian(tape, circuit, plan, outcomes, terms, want_errors)
        return jacs, errs, {"engine": "dense", "notes": [f"strategy='pure' ({reason})"]}

    return _pure_round(tape, circuit, plans, chosen, estimate)


def _pure_round(tape, circuit, plans, chosen, estimate):
    """The pure strategy's tapes and processing, whatever the engine.

    ``estimate(plan, results, want_errors) -> (jacobians, errors, record fields)`` turns one
    budget's snapshot results into per-measurement Jacobians; components not in ``chosen``
    are zeroed, and inside :func:`~.resources.record` every budget publishes its record.
    """
    ops_only = QuantumScript(tape.operations, [])
    batches = [snapshot_tapes(ops_only, plan, circuit.wire_order) for plan in plans]
    all_tapes = [t for batch in batches for t in batch]
    unchosen = [k for k in range(len(tape.trainable_params)) if k not in chosen]

    def processing_fn(results):
        out, offset = [], 0
        for plan, batch in zip(plans, batches):
            start = time.perf_counter()
            want_errors = is_recording()
            part = results[offset : offset + len(batch)]
            offset += len(batch)
            jacs, errs, fields = estimate(plan, part, want_errors)
            for jac in jacs:
                jac[unchosen] = 0.0
            if want_errors:
                publish(
                    GradientRecord(
                        method="shadow",
                        jacobian=jacs,
                        stderr=errs,
                        snapshots=plan.num_snapshots,
                        circuits=plan.num_bases,
                        plan=("all 3**n bases" if not plan.random else "random bases")
                        + f", {plan.num_bases} bases, {plan.groups} groups",
                        num_qubits=circuit.num_qubits,
                        num_params=circuit.num_params,
                        postprocessing_seconds=time.perf_counter() - start,
                        groups=plan.groups,
                        variance=[None if e is None else e**2 for e in errs],
                        shot_variance=[
                            None if e is None else e**2 * plan.num_snapshots for e in errs
                        ],
                        **fields,
                    )
                )
            out.append(format_jacobian(jacs, len(tape.trainable_params)))
        return tuple(out) if tape.shots.has_partitioned_shots else out[0]

    return all_tapes, processing_fn


#: The sparse default warns when the snapshots' variance proxy exceeds parameter-shift's
#: worst-case variance by this factor.
_WORSE_FACTOR = 10.0


def _warn_if_shadow_is_likely_worse(tape, circuit, tm, budget: int, reason: str) -> None:
    """When the default runs the pure sparse estimator (a ``var`` measurement, trainable
    observable coefficients, an explicit plan: the hybrid does not apply), warn, before any
    device time, when the snapshots' variance proxy ``sum_P gamma_jP^2 3^|P|`` (summed over
    components, per snapshot) exceeds ``_WORSE_FACTOR`` times parameter-shift's worst-case
    variance (``scale_j^2 sum_g ||O_g||_1^2 / 2`` per shot, at equal shots)."""
    from .parameter_shift import group_norms, measurement_groups, param_scales

    if not all(isinstance(m, ExpectationMP) for m in tape.measurements):
        return
    model = tm.model
    w3 = 3.0 ** weights(model.words_x, model.words_z).astype(float)
    scale = param_scales(circuit)
    shadow, shift = 0.0, 0.0
    for m_idx, m in enumerate(tape.measurements):
        k = tm.layout[m_idx][0]
        g = model.gradient[k]
        proxy = np.asarray(g.multiply(g) @ w3).reshape(-1)
        live = proxy > 0
        if not live.any():
            continue
        obs = pauli_sum(m.obs, circuit.wire_order)
        groups = measurement_groups([obs])
        l1 = float(group_norms([obs], groups)[0][0])
        shadow += float(np.sum(proxy[live])) / budget
        per_shot = scale[live] ** 2 * l1 / 2.0
        shift += float(np.sum(per_shot)) * 2 * max(len(groups), 1) * int(live.sum()) / budget
    if shift > 0 and shadow > _WORSE_FACTOR * shift:
        warnings.warn(
            f"diff_method='shadow' on {circuit.num_qubits} qubits runs the pure shadow estimator "
            f"({reason}), and its variance proxy is "
            f"{shadow / shift:.0f}x parameter-shift's worst-case variance at equal shots: "
            "diff_method='parameter-shift' is likely much cheaper for this circuit. Pass "
            "gradient_kwargs={'strategy': 'pure'} to silence this warning.",
            UserWarning,
            stacklevel=2,
        )


def _pauli_estimate(tape, circuit, chosen, reason, truncation, max_words, budgets):
    """The sparse engine's estimate step for :func:`_pure_round` (``G_j`` built now, before
    any device time)."""
    tm, build_seconds = _sparse_model(tape, truncation, max_words)
    if reason.startswith("default"):
        _warn_if_shadow_is_likely_worse(tape, circuit, tm, min(budgets), reason)
    truncation = truncation or {}
    model = tm.model
    unchosen = [k for k in range(len(tape.trainable_params)) if k not in chosen]
    kept = (
        f"pauli (sparse propagation: {model.carried_words} carried words, peak "
        f"{model.peak_words}, {model.num_words} estimated words)"
    )

    def estimate(plan, results, want_errors):
        bits = decode_bits(results, plan)
        jacs, errs, bounds = pauli_jacobian(tape, tm, plan, bits, want_errors)
        for bound in bounds:
            bound[unchosen] = 0.0
        largest = max((float(np.max(b)) if np.size(b) else 0.0) for b in bounds)
        notes = [
            f"strategy='pure' ({reason})",
            f"engine='pauli': {model.carried_words} carried words (peak "
            f"{model.peak_words}), {model.num_words} Pauli words estimated from the "
            f"snapshots, model built in {build_seconds:.3f} s before the device ran",
            "truncation: none (exact)"
            if not truncation
            else f"truncation {truncation}: largest bias bound {largest:.3g} "
            "(per component in report['bias_bound'])",
        ]
        if truncation and want_errors:
            message = truncation_bias_message(bounds, errs)
            if message is not None:
                notes.append(message)
                warnings.warn(f"diff_method='shadow': {message}", UserWarning, stacklevel=2)
        report = {
            "engine": "pauli",
            "carried_words": model.carried_words,
            "peak_words": model.peak_words,
            "estimated_words": model.num_words,
            "truncation": dict(truncation),
            "bias_bound": bounds,
            "build_seconds": build_seconds,
        }
        return jacs, errs, {"engine": kept, "notes": notes, "report": report}

    return estimate
