"""``plan()``: the default strategy's own prediction, before any shot is spent.

For a QNode and its arguments, the ideal circuit is simulated exactly (as the default strategy
does before every gradient; above 12 qubits, state-independent variance proxies from the
sparse engine replace the simulation, again as the default does) and the per-component MSE
of three strategies is predicted at a shot budget: the pure shadow estimator, parameter-shift
with equal shots, and ``"auto"`` with the split it would run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pennylane as qml
from pennylane.tape import QuantumScript
from scipy.stats import norm

from .allocation import Allocation
from .circuit import decompose_for_gradient, rotation_form
from .estimators.pauli_propagation import tape_model
from .hybrid import (
    AUTO_MAX_WORDS,
    RoundPlan,
    gradient_model,
    plan_round,
    proxy_gradient_model,
    proxy_variance,
)
from .plans import DEFAULT_GROUPS, make_plan
from .variance import expected_block_shadow_variance


@dataclass
class BudgetPlan:
    """Predicted per-component MSE of each strategy and the budget each needs.

    Attributes:
        shots: the gradient shot budget the prediction is for.
        mse: strategy -> ``(M, O)`` exact MSE per component (tape parameter) and output at the
            ideal circuit: ``"shadow"`` (pure), ``"parameter-shift"`` (equal shots on the
            ``2 G`` tapes of each non-zero component), ``"auto"`` (the default's split).
        budget: strategy -> shots needed so that every component is within ``epsilon`` with
            probability ``1 - delta`` (normal approximation, union bound), when ``epsilon``
            is given.
        allocation: the ``auto`` split at ``shots``.
        round: the full plan of the ``auto`` round (tapes, weights, planned variances).
        source: ``"simulation"``: exact state and variances of the ideal circuit;
            ``"proxy"``: state-independent variance proxies (every word's expectation zero,
            distinct words uncorrelated), what the default plans from above 12 qubits.
        notes: caveats.
    """

    shots: int
    mse: dict
    budget: dict
    allocation: Allocation
    round: RoundPlan
    source: str = "simulation"
    notes: list[str] = field(default_factory=list)

    def total_mse(self) -> dict:
        """Summed predicted MSE per strategy."""
        return {k: float(np.sum(v)) for k, v in self.mse.items()}


#: Largest register plan() and the default strategy simulate (the dense engine's default
#: ``max_qubits``).
_MAX_SIMULATED_QUBITS = 12


def _normal_budget(per_shot: np.ndarray, epsilon: float, delta: float) -> int:
    """Shots ``T`` with ``sqrt(c_j / T) z <= epsilon`` for all ``j`` (union bound over ``j``)."""
    live = per_shot[per_shot > 0]
    if live.size == 0:
        return 0
    if not np.all(np.isfinite(live)):
        return -1
    z = norm.ppf(1 - delta / (2 * live.size))
    return int(np.ceil(z**2 * live.max() / epsilon**2))


def plan(
    qnode,
    *args,
    shots: int | None = None,
    epsilon: float | None = None,
    delta: float = 0.05,
    source: str | None = None,
    seed=None,
    **kwargs,
) -> BudgetPlan:
    """Predict each strategy's per-component MSE at a shot budget, before the real run.

    The prediction is the computation the default strategy (``"auto"``) runs before each
    gradient: an exact simulation of the ideal circuit and of its parameter-shift copies gives
    every component's single-shot variance under both estimators, and the budget is split to
    minimise their summed variance.

    Args:
        qnode (QNode or QuantumScript): the circuit; ``args``/``kwargs`` are its arguments.
        shots (int or None): the gradient shot budget (default: the QNode's shots).
        epsilon (float or None): when given, also the budget each strategy needs for all
            components within ``epsilon`` with probability ``1 - delta`` (normal
            approximation, union bound over components).
        delta (float): failure probability for ``epsilon`` (default 0.05).
        source (str or None): ``"simulation"``: exact simulation of the ideal circuit (up to
            12 qubits, the dense engine's ``max_qubits``); ``"proxy"``: the sparse engine's
            state-independent variance proxies. ``None`` (default): what the default strategy
            uses at this size, simulation up to 12 qubits and proxies above.
        seed (int or None): seed of the random bases of plans with more than 729 bases.

    Returns:
        BudgetPlan: per-strategy predictions.

    **Example**

    >>> import pennylane as qml
    >>> import pennylane_shadowgrad as sg
    >>> dev = qml.device("default.qubit")
    >>> @qml.qnode(dev, shots=4000)
    ... def f(x):
    ...     qml.RX(x[0], 0)
    ...     qml.RY(x[1], 0)
    ...     return qml.expval(qml.Z(0))
    >>> p = sg.plan(f, qml.numpy.array([0.3, 0.4]))
    >>> sorted(p.mse)
    ['auto', 'parameter-shift', 'shadow']
    >>> bool(p.total_mse()["auto"] <= min(p.total_mse().values()) * 1.1)
    True
    """
    if source not in (None, "simulation", "proxy"):
        raise ValueError(
            f"source must be None, 'simulation' or 'proxy', got {source!r}: the default "
            "strategy plans from an exact simulation up to 12 qubits and from the sparse "
            "engine's variance proxies above, and plan() predicts exactly that."
        )
    tape = qnode if isinstance(qnode, QuantumScript) else None
    if tape is None:
        tape = qml.workflow.construct_tape(qnode, level="user")(*args, **kwargs)
    total = shots if shots is not None else tape.shots.total_shots
    if total is None or int(total) < 1:
        raise ValueError("plan() needs a shot budget: pass shots=... or give the QNode shots.")
    total = int(total)
    rot = decompose_for_gradient(tape)
    circuit = rotation_form(rot)
    chosen = range(circuit.num_params)
    n = circuit.num_qubits
    if source is None:
        source = "simulation" if n <= _MAX_SIMULATED_QUBITS else "proxy"
    if source == "simulation" and n > _MAX_SIMULATED_QUBITS:
        raise ValueError(
            f"source='simulation' simulates {n} qubits; plan() simulates at most "
            f"{_MAX_SIMULATED_QUBITS} (the dense engine's max_qubits). Use source='proxy' or None."
        )
    if source == "proxy":
        tm = tape_model(rot, circuit, {}, max_words=AUTO_MAX_WORDS, shed=True)
        model = proxy_gradient_model(rot, circuit, chosen, tm)
    else:
        model = gradient_model(rot, circuit, chosen)
    rng = np.random.default_rng(seed)
    r = plan_round(model, total, DEFAULT_GROUPS, rng, trim_bases=source == "proxy")
    if model.source == "proxy":
        full = make_plan(n, total, seed=rng)
        pure = proxy_variance(model, full.num_bases if full.random else None, total)
    elif model.blocks.blocks:
        pure = expected_block_shadow_variance(
            model.blocks, lambda: make_plan(n, total, seed=rng), model.x, 128
        )
    else:
        pure = np.zeros(model.u.shape)
    pure[model.unplanned] = np.inf
    active = model.active[:, None]
    ps_m = total / (2 * model.num_groups * max(int(model.active.sum()), 1))
    mse = {
        "shadow": np.where(active, pure, 0.0),
        "parameter-shift": np.where(active, model.u_exact / ps_m, 0.0),
        "auto": r.predicted_mse,
    }
    budget = {}
    if epsilon is not None:
        budget = {k: _normal_budget(np.sum(v, 1) * total, epsilon, delta) for k, v in mse.items()}
    notes = list(r.notes)
    if model.unplanned.any():
        notes.append(
            "'shadow' MSE is inf where a component could not be planned (a light cone too large, "
            "or generators above the sparse engine's word cap)"
        )
    if source == "proxy":
        notes.append(
            "source='proxy': variances are state-independent proxies (every Pauli word's "
            "expectation zero, distinct words uncorrelated), not the circuit's exact ones"
        )
    return BudgetPlan(total, mse, budget, r.allocation, r, source, notes)
