"""Gradient, Hessian and metric tensor of a QNode from one round of shadow snapshots.

Every entry is an expectation value on the circuit's output state (see
:mod:`pennylane_shadowgrad.estimators.second_order`), so one set of snapshots, taken with the
QNode's shots, serves all three; QNode arguments enter through the classical Jacobian and,
for the Hessian, the classical Hessian of the gate angles (the chain rule's second-order
term).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pennylane as qml
from pennylane import math
from pennylane.gradients.metric_tensor import _contract_metric_tensor_with_cjac
from pennylane.measurements import ExpectationMP
from pennylane.tape import QuantumScript

from .circuit import UnsupportedCircuitError, decompose_for_gradient, pauli_sum, rotation_form
from .estimators.dense import gradient_functional
from .estimators.jacobian import jackknife_se
from .estimators.second_order import SecondOrderOperators, metric_from_moments, state_matrices
from .estimators.shadow import ShadowSums, pair_product
from .gradient_transform import refuse_observable_coefficients
from .plans import DEFAULT_GROUPS, check_plan_options, make_plan
from .resources import GradientRecord, is_recording, publish
from .snapshots import decode, snapshot_tapes

#: Largest register of the second-order estimators (they hold ``M`` matrices of ``4**n``
#: complex entries).
DEFAULT_MAX_QUBITS = 8

_OPTIONS = {"snapshots", "bases", "groups", "seed", "max_qubits"}
_APPROX = (None, "block-diag", "diag")


@dataclass
class SecondOrderRecord(GradientRecord):
    """A :class:`~pennylane_shadowgrad.GradientRecord` of a second-order round.

    ``jacobian``/``stderr`` hold the tape-level gradient of every measurement (when it was
    estimated); the QNode-level results, shaped as returned, and their delete-a-group
    jackknife standard errors are in ``hessian``/``hessian_stderr`` and
    ``metric``/``metric_stderr`` (``None`` when not asked for).
    """

    hessian: object = None
    hessian_stderr: object = None
    metric: object = None
    metric_stderr: object = None
    gradient: object = None
    gradient_stderr: object = None
    tape_hessian: list = field(default_factory=list)


def validate_options(options: dict, approx="none") -> None:
    """Refuse unknown options and invalid values before any device time."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(
            f"Unknown option(s) {sorted(unknown)}; valid options are {sorted(_OPTIONS)}."
        )
    check_plan_options(options)
    max_qubits = options.get("max_qubits", DEFAULT_MAX_QUBITS)
    if isinstance(max_qubits, bool) or not (isinstance(max_qubits, int) and max_qubits >= 1):
        raise ValueError(f"'max_qubits' must be a positive integer, got {max_qubits!r}.")
    if approx != "none" and approx not in _APPROX:
        raise ValueError(
            f"Unknown value {approx!r} for approx: valid values are None, 'block-diag' and "
            "'diag' (as for qml.metric_tensor)."
        )


def _trainable_argnums(args) -> list[int]:
    out = []
    for i, a in enumerate(args):
        if math.get_interface(a) not in ("autograd", "numpy"):
            raise TypeError(
                "The shadow Hessian and metric tensor take NumPy/autograd arguments "
                f"(pennylane.numpy arrays); argument {i} is a {type(a).__name__}."
            )
        if math.requires_grad(a):
            out.append(i)
    return out


def _user_tape(qnode, args, kwargs) -> QuantumScript:
    return qml.workflow.construct_tape(qnode, level="user")(*args, **kwargs)


@dataclass
class _Prepared:
    tape: QuantumScript
    circuit: object
    argnums: list[int]
    shapes: list[tuple]
    cjac: list[np.ndarray]  # per trainable argument, (M,) + shape
    chess: list[np.ndarray] | None  # per trainable argument, (M,) + shape + shape
    observables: list


def prepare(qnode, args, kwargs, options: dict, hessian: bool) -> _Prepared:
    """The decomposed tape, its rotation form and the classical derivatives of its angles.

    Raises, before any device time, for what the estimators cannot do.
    """
    if not isinstance(qnode, qml.QNode):
        raise TypeError(f"Expected a QNode, got {type(qnode).__name__}.")
    argnums = _trainable_argnums(args)
    tape = decompose_for_gradient(_user_tape(qnode, args, kwargs))
    snapshots = options.get("snapshots")
    if tape.shots.has_partitioned_shots:
        raise ValueError("Shot vectors are not supported by the second-order estimators.")
    if tape.shots.total_shots is None and snapshots is None:
        raise ValueError(
            "The shadow Hessian and metric tensor are estimated from measurement samples and "
            "need a snapshot budget, but the QNode has shots=None. Set shots (e.g. "
            "qml.set_shots(qnode, 10000)) or pass snapshots=T."
        )
    for m in tape.measurements if hessian else ():
        if not isinstance(m, ExpectationMP) or m.obs is None or m.mv is not None:
            raise UnsupportedCircuitError(
                "The shadow Hessian supports expval(observable) measurements only (Pauli "
                f"words, sums, Hamiltonians); got {m}."
            )
    refuse_observable_coefficients(
        tape,
        "Trainable observable coefficients are not supported by the second-order "
        "estimators; pass the coefficients as constants (requires_grad=False).",
    )
    max_qubits = options.get("max_qubits", DEFAULT_MAX_QUBITS)
    if len(tape.wires) > max_qubits:
        raise ValueError(
            f"The circuit acts on {len(tape.wires)} qubits; the second-order estimators hold "
            f"M matrices of 4**n entries and are limited to max_qubits={max_qubits}."
        )
    circuit = rotation_form(tape)
    observables = [pauli_sum(m.obs, tape.wires) for m in tape.measurements] if hessian else []
    cjac, chess, shapes = [], [] if hessian else None, []
    for i in argnums:
        angles = _angle_function(qnode, args, kwargs, i, tape.trainable_params)
        shapes.append(np.shape(args[i]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # autograd: "output seems independent of input"
            cjac.append(np.asarray(qml.jacobian(angles)(args[i]), dtype=float))
            if hessian:
                chess.append(np.asarray(qml.jacobian(qml.jacobian(angles))(args[i]), dtype=float))
    for i, c in zip(argnums, cjac):
        c.shape = (circuit.num_params,) + np.shape(args[i])
    if hessian:
        for i, c in zip(argnums, chess):
            c.shape = (circuit.num_params,) + np.shape(args[i]) * 2
    return _Prepared(tape, circuit, argnums, shapes, cjac, chess, observables)


def _angle_function(qnode, args, kwargs, i: int, trainable: list[int]):
    """The trainable tape parameters as a function of argument ``i`` (others fixed)."""

    def angles(a):
        new = list(args)
        new[i] = a
        tape = decompose_for_gradient(_user_tape(qnode, new, kwargs))
        params = tape.get_parameters(trainable_only=False)
        return qml.math.stack([params[t] for t in trainable]).reshape(-1)

    return angles


def parametrized_layer_mask(tape: QuantumScript) -> np.ndarray:
    """``mask[p, q]``: trainable parameters ``p, q`` lie in the same parametrized layer.

    The layers are PennyLane's (``tape.graph.parametrized_layers``), as
    ``qml.metric_tensor(approx="block-diag")`` uses them.
    """
    position = {t: k for k, t in enumerate(tape.trainable_params)}
    m = len(position)
    mask = np.zeros((m, m), dtype=bool)
    for layer in tape.graph.parametrized_layers:
        idx = [position[p] for p in layer.param_inds if p in position]
        mask[np.ix_(idx, idx)] = True
    return mask


def _nest(per_arg_meas: list[list], num_meas: int):
    """PennyLane's nesting: trainable arguments outer, measurements inner, singletons dropped."""
    per_arg = [items[0] if num_meas == 1 else tuple(items) for items in per_arg_meas]
    return per_arg[0] if len(per_arg) == 1 else tuple(per_arg)


def hessian_rows(prep: _Prepared, x: np.ndarray, grads=None) -> list:
    """QNode-level Hessian (nested as returned) for every Pauli estimate in ``x``.

    Linear in each ``x[r]`` (shape ``(rows, 4,..,4)``): ``J^T H J + sum_a g_a d^2 theta_a``.
    """
    ops = SecondOrderOperators(prep.circuit)
    rho = state_matrices(x)
    if grads is None:
        grads = [gradient_functional(prep.circuit, o, x) for o in prep.observables]
    tape_hess = [ops.hessian(o, rho) for o in prep.observables]  # (rows, M, M)
    rows = []
    for r in range(len(x)):
        per_arg = []
        for c, h2 in zip(prep.cjac, prep.chess):
            per_meas = []
            for h, g in zip(tape_hess, grads):
                value = np.tensordot(np.tensordot(h[r], c, axes=(1, 0)), c, axes=(0, 0))
                per_meas.append(value + np.tensordot(g[r], h2, axes=(0, 0)))
            per_arg.append(per_meas)
        rows.append(_nest(per_arg, len(prep.observables)))
    return rows, tape_hess


def gradient_rows(prep: _Prepared, grads: list) -> list:
    """QNode-level gradients (nested as returned) from tape-level rows ``(rows, M)``."""
    return [
        _nest([[np.tensordot(g[r], c, axes=(0, 0)) for g in grads] for c in prep.cjac], len(grads))
        for r in range(len(grads[0]))
    ]


def metric_parts(prep: _Prepared, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tape-level ``Tr(rho {Q_p, Q_q}) / 2`` ``(rows, M, M)`` and ``Tr(rho Q_p)`` ``(rows, M)``.

    Both linear in each Pauli estimate ``x[r]``.
    """
    ops = SecondOrderOperators(prep.circuit)
    return ops.second_moments(state_matrices(x)), ops.means(x)


def contract_metric(prep: _Prepared, tape_metric: np.ndarray, approx=None):
    """A tape-level metric masked for ``approx`` and contracted with the classical Jacobian.

    The contraction is PennyLane's own (``qml.metric_tensor``'s classical cotransform).
    """
    if approx == "block-diag":
        tape_metric = np.where(parametrized_layer_mask(prep.tape), tape_metric, 0.0)
    elif approx == "diag":
        tape_metric = np.diag(np.diag(tape_metric))
    cjac = prep.cjac[0] if len(prep.cjac) == 1 else tuple(prep.cjac)
    return _contract_metric_tensor_with_cjac(tape_metric, cjac, prep.tape)


def run_round(qnode, args, kwargs, options: dict, want: set, approx=None):
    """One snapshot round: ``{"gradient", "hessian", "metric"}`` entries as asked in ``want``.

    Returns a dict of QNode-level results shaped as PennyLane shapes them.
    """
    hessian = bool(want & {"gradient", "hessian"})
    prep = prepare(qnode, args, kwargs, options, hessian)
    if not prep.argnums:
        raise ValueError(
            "The QNode has no trainable arguments (arrays with requires_grad=True): nothing "
            "to differentiate."
        )
    tape, circuit = prep.tape, prep.circuit
    total = options.get("snapshots") or tape.shots.total_shots
    rng = np.random.default_rng(options.get("seed"))
    plan = make_plan(
        circuit.num_qubits,
        int(total),
        bases=options.get("bases", "auto"),
        groups=options.get("groups", DEFAULT_GROUPS),
        seed=rng,
    )
    if "metric" in want and plan.groups < 2:
        raise ValueError(
            "The metric tensor's product <Q_j><Q_k> is estimated without bias from two "
            f"independent groups of snapshots; this plan has {plan.groups} group. Use "
            "groups >= 2 and at least 2 snapshots per basis (or per random basis)."
        )
    tapes = snapshot_tapes(QuantumScript(tape.operations, []), plan, circuit.wire_order)
    results = qml.execute(tapes, qnode.device, diff_method=None)
    start = time.perf_counter()
    sums = ShadowSums(plan, decode(results, plan))
    errors = is_recording()
    x = sums.pooled()[None]
    if errors:
        x = np.concatenate([x, sums.leave_one_out()])
    out, err = {}, {}
    grads, tape_hess = [], []
    if hessian:
        grads = [gradient_functional(circuit, o, x) for o in prep.observables]  # (rows, M)
    if "gradient" in want:
        out["gradient"], err["gradient"] = _finish(gradient_rows(prep, grads), errors)
    if "hessian" in want:
        rows, tape_hess = hessian_rows(prep, x, grads)
        out["hessian"], err["hessian"] = _finish(rows, errors)
    if "metric" in want:
        second, means = metric_parts(prep, x)
        group_means = SecondOrderOperators(circuit).means(sums.group_estimates())  # (K, M)
        product = pair_product(group_means[:, :, None], group_means[:, None, :])
        rows = [metric_from_moments(second[0], product)]
        rows += list(metric_from_moments(second[1:], means[1:, :, None] * means[1:, None, :]))
        out["metric"], err["metric"] = _finish(
            [contract_metric(prep, r, approx) for r in rows], errors
        )
    if errors:
        publish(
            SecondOrderRecord(
                method="shadow-" + "+".join(sorted(want)),
                jacobian=[g[0] for g in grads],
                stderr=[jackknife_se(g[1:]) for g in grads] if hessian else None,
                snapshots=plan.num_snapshots,
                circuits=plan.num_bases,
                plan=("all 3**n bases" if not plan.random else "random bases")
                + f", {plan.num_bases} bases, {plan.groups} groups",
                engine="dense (matrices)",
                num_qubits=circuit.num_qubits,
                num_params=circuit.num_params,
                postprocessing_seconds=time.perf_counter() - start,
                groups=plan.groups,
                notes=["one snapshot round for " + ", ".join(sorted(want))],
                hessian=out.get("hessian"),
                hessian_stderr=err.get("hessian"),
                metric=out.get("metric"),
                metric_stderr=err.get("metric"),
                gradient=out.get("gradient"),
                gradient_stderr=err.get("gradient"),
                tape_hessian=[h[0] for h in tape_hess],
            )
        )
    return out


def _finish(nested: list, errors: bool):
    """The pooled result (first row) and jackknife errors from the leave-one-out rows."""
    if not errors:
        return nested[0], None
    return nested[0], _tree_map(lambda *leaves: jackknife_se(np.stack(leaves)), *nested[1:])


def _tree_map(fn, *trees):
    if isinstance(trees[0], tuple):
        return tuple(_tree_map(fn, *parts) for parts in zip(*trees))
    return fn(*trees)


def shadow_second_order(qnode: qml.QNode, approx: str | None = None, **options):
    r"""Gradient, Hessian and metric tensor of a QNode from one set of shadow snapshots.

    One round of snapshot tapes (the QNode's shots, counted once) gives all three: every
    entry is an expectation value on the circuit's output state, evaluated on the same
    averaged shadow (the metric's products :math:`\langle Q_j\rangle\langle Q_k\rangle` on
    independent replicate groups). Use it where an optimizer needs several of them per step.

    Args:
        qnode (QNode): a QNode with ``expval`` measurements and finite shots.
        approx (str or None): the metric tensor's approximation, as for
            :func:`shadow_metric_tensor`.
        **options: ``snapshots``, ``bases``, ``groups``, ``seed`` and ``max_qubits``, as for
            :func:`shadow_hessian`.

    Returns:
        callable: ``(*args, **kwargs) -> (gradient, hessian, metric)``, shaped as
        :func:`~pennylane.gradients.param_shift`, :func:`~pennylane.gradients.param_shift_hessian`
        and :func:`~pennylane.metric_tensor` shape them for the QNode.

    **Example**

    >>> import pennylane as qml
    >>> from pennylane import numpy as pnp
    >>> from pennylane_shadowgrad import shadow_second_order
    >>> dev = qml.device("default.qubit", seed=5)
    >>> @qml.qnode(dev, shots=30000)
    ... def circuit(x):
    ...     qml.RX(x[0], 0)
    ...     qml.RY(x[1], 0)
    ...     return qml.expval(qml.Z(0))
    >>> x = pnp.array([0.4, 0.9])
    >>> grad, hess, metric = shadow_second_order(circuit, seed=1)(x)
    >>> grad.shape, hess.shape, metric.shape
    ((2,), (2, 2), (2, 2))
    >>> bool(abs(metric[1, 1] - 0.212) < 0.02)  # exact: (1 - sin(0.4)**2) / 4
    True
    """
    validate_options(options, approx)

    def compute(*args, **kwargs):
        out = run_round(qnode, args, kwargs, options, {"gradient", "hessian", "metric"}, approx)
        return out["gradient"], out["hessian"], out["metric"]

    return compute
