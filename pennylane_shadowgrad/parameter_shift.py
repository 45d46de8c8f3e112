"""Parameter-shift circuits measured as qubit-wise-commuting groups, with sampled error bars.

For a rotation ``exp(-i scale theta P / 2)`` the shift rule ``d f / d theta = scale (f(theta +
pi / (2 scale)) - f(theta - pi / (2 scale))) / 2`` is exact (Mitarai et al., arXiv:1803.00745;
Schuld et al., arXiv:1811.11184). Each shifted circuit runs as one tape per measured group of
Pauli words; the tapes return per-shot samples, so every estimate comes with its own sample
variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pennylane as qml
from pennylane.tape import QuantumScript

from .circuit import PAULI_DIGITS, PauliRotation, PauliSum, RotationCircuit

#: Fewest shots per shifted tape: two give a sample variance, hence a measured error bar.
MIN_SHIFT_SHOTS = 2


def measurement_groups(observables: list[PauliSum]) -> list[np.ndarray]:
    """Qubit-wise-commuting groups of the non-identity Pauli words of all outputs.

    Each group is a ``(k, n)`` digit array of words that one circuit execution measures
    together (one basis per qubit). Greedy first fit, heaviest words first (deterministic).
    A Pauli word or a ``probs`` output is one group; the open TFIM (``ZZ`` + ``X`` terms) two.
    The parameter-shift part of ``strategy="auto"`` runs one tape per group and shifted
    circuit, so that every tape costs exactly its shots on any device (a device left to split
    ``expval(H)`` itself charges its own number of groups per tape).
    """
    if not observables:
        return []
    n = observables[0].digits.shape[1]
    rows = [o.digits for o in observables if len(o)]
    if not rows:
        return []
    words = np.unique(np.concatenate(rows).reshape(-1, n), axis=0)
    words = words[np.any(words != 0, axis=1)]
    order = sorted(range(len(words)), key=lambda i: (-int(np.sum(words[i] != 0)), i))
    letters, members = [], []
    for i in order:
        w = words[i]
        for g, let in enumerate(letters):
            if np.all((let == 0) | (w == 0) | (let == w)):
                letters[g] = np.where(w != 0, w, let)
                members[g].append(w)
                break
        else:
            letters.append(w.copy())
            members.append([w])
    return [np.array(m, dtype=np.uint8) for m in members]


def group_norms(
    observables: list[PauliSum], groups: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """``(l1, l2)`` per observable: ``l1 = sum_g (sum_{P in g} |c_P|)^2`` (the worst-case
    single-shot variance of the grouped estimate) and ``l2 = sum_{P in g} c_P^2`` (its value
    when the words are uncorrelated with expectation zero); identity terms are in no group."""
    l1, l2 = np.zeros(len(observables)), np.zeros(len(observables))
    for words in groups:
        index = {w.tobytes() for w in words}
        for o, obs in enumerate(observables):
            part = np.array(
                [abs(c) for d, c in zip(obs.digits, obs.coeffs) if d.tobytes() in index]
            )
            l1[o] += np.sum(part) ** 2
            l2[o] += np.sum(part**2)
    return l1, l2


def group_parts(obs: PauliSum, groups: list[np.ndarray]) -> list[PauliSum]:
    """``obs`` split into its terms measured by each group (identity terms dropped)."""
    index = {g_word.tobytes(): g for g, words in enumerate(groups) for g_word in words}
    which = np.array([index.get(d.tobytes(), -1) for d in obs.digits], dtype=np.int64)
    return [PauliSum(obs.digits[which == g], obs.coeffs[which == g]) for g in range(len(groups))]


def param_scales(circuit: RotationCircuit) -> np.ndarray:
    scale = np.ones(circuit.num_params)
    for gate in circuit.gates:
        if isinstance(gate, PauliRotation) and gate.param is not None:
            scale[gate.param] = gate.scale
    return scale


def shifted_tape(tape: QuantumScript, j: int, sign: float, scale: float, params=None):
    """``tape`` with trainable parameter ``j`` shifted so that its rotation angle moves by
    ``sign * pi / 2`` (angle = ``scale * theta``)."""
    params = tape.get_parameters(trainable_only=True) if params is None else params
    new = list(params)
    new[j] = params[j] + sign * np.pi / (2.0 * scale)
    return tape.bind_new_parameters(new, tape.trainable_params)


@dataclass(frozen=True)
class ShiftPlan:
    """The shifted tapes of one gradient: which components, how many shots, which groups.

    ``components[k]`` runs ``2 * len(groups)`` tapes of ``shots[k]`` shots each (``+`` groups,
    then ``-`` groups); ``coeffs[g]`` maps the group's per-word samples to every output
    (shape ``(outputs, words in g)``; identity parts cancel in the difference).
    """

    components: np.ndarray
    shots: np.ndarray
    groups: list
    coeffs: list
    scales: np.ndarray

    @property
    def num_tapes(self) -> int:
        return 2 * len(self.components) * len(self.groups)

    @property
    def total_shots(self) -> int:
        return int(2 * len(self.groups) * np.sum(self.shots))


def shift_plan(
    circuit: RotationCircuit, observables: list[PauliSum], shots_per_component: np.ndarray
) -> ShiftPlan:
    """The :class:`ShiftPlan` for ``shots_per_component[j]`` shots per tape (0: not shifted)."""
    groups = measurement_groups(observables)
    coeffs = []
    for words in groups:
        index = {w.tobytes(): k for k, w in enumerate(words)}
        c = np.zeros((len(observables), len(words)))
        for o, obs in enumerate(observables):
            for d, coeff in zip(obs.digits, obs.coeffs):
                k = index.get(d.tobytes())
                if k is not None:
                    c[o, k] += coeff
        coeffs.append(c)
    shots = np.asarray(shots_per_component, dtype=np.int64)
    components = np.flatnonzero(shots > 0)
    return ShiftPlan(components, shots[components], groups, coeffs, param_scales(circuit))


def shift_tapes(tape: QuantumScript, plan: ShiftPlan, wire_order) -> list[QuantumScript]:
    """The plan's tapes: for each component, ``+`` then ``-``, one tape per group.

    Each tape samples every word of its group (``qml.sample`` of the word), so that one
    execution of ``m`` shots gives ``m`` joint samples; trainable parameters are none (the
    tapes are measured, not differentiated). Only the shifted gate is rebuilt.
    """
    letters = {d: p for p, d in PAULI_DIGITS.items()}
    measurements = []
    for words in plan.groups:
        meas = []
        for w in words:
            word = {wire_order[q]: letters[int(d)] for q, d in enumerate(w) if d}
            meas.append(qml.sample(qml.pauli.PauliWord(word).operation()))
        measurements.append(meas)
    ops = list(tape.operations)
    tapes = []
    for j, m in zip(plan.components, plan.shots):
        info = tape.par_info[tape.trainable_params[int(j)]]
        op = ops[info["op_idx"]]
        for sign in (1.0, -1.0):
            data = list(op.data)
            data[info["p_idx"]] = data[info["p_idx"]] + sign * np.pi / (2.0 * plan.scales[j])
            shifted = list(ops)
            shifted[info["op_idx"]] = qml.ops.functions.bind_new_parameters(op, data)
            tapes += [
                QuantumScript(shifted, meas, shots=int(m), trainable_params=[])
                for meas in measurements
            ]
    return tapes


def shift_estimates(
    results, plan: ShiftPlan, num_params: int, num_outputs: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(estimate, variance)`` of every shifted component and output, shape ``(M, O)``.

    ``variance`` is the sample variance of the estimate (per group and sign, ``ddof=1``):
    measured from the round's own samples. Components that were not shifted get ``nan``.
    """
    est = np.full((num_params, num_outputs), np.nan)
    var = np.full((num_params, num_outputs), np.nan)
    k = 0
    for j, m in zip(plan.components, plan.shots):
        diff = np.zeros(num_outputs)
        v = np.zeros(num_outputs)
        for sign in (1.0, -1.0):
            for c in plan.coeffs:
                res = results[k]
                k += 1
                if not isinstance(res, tuple | list):
                    res = (res,)
                samples = np.stack([np.asarray(r, dtype=float).reshape(-1) for r in res])
                y = c @ samples  # (outputs, shots)
                diff += sign * y.mean(axis=1)
                v += y.var(axis=1, ddof=1) / m if m > 1 else np.nan
        s = plan.scales[j]
        est[j] = s * diff / 2.0
        var[j] = s**2 * v / 4.0
    return est, var
