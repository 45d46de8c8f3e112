"""Measurement plans for classical-shadow snapshots, the tapes that take them, and decoding.

A plan is data: the local Pauli basis of every circuit, its shots, and the group each shot
belongs to (groups are independent replicates used for error bars and the unbiased
variance-gradient product). The snapshot tapes rotate every qubit into its basis and call
``qml.sample``, so they run on any device that samples (``qml.classical_shadow`` is not used:
``lightning.qubit`` refuses it with finite shots). Bases with equal shot counts share one
broadcast tape; devices without native broadcasting split it into one circuit per basis.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pennylane as qml
from autograd.tracer import Box
from pennylane.tape import QuantumScript
from pennylane.wires import Wires

#: ``"auto"`` measures every one of the ``3**n`` local bases when ``3**n`` is at most this
#: number and at most the snapshot budget; otherwise it draws this many random bases.
MAX_AUTO_BASES = 729

#: Default number of independent replicate groups (error bars, variance gradients).
DEFAULT_GROUPS = 20

# Rotation angles (RY, RX) taking the X, Y, Z eigenbases to the computational basis.
_BASIS_ANGLES = {1: (-np.pi / 2, 0.0), 2: (0.0, np.pi / 2), 3: (0.0, 0.0)}


@dataclass(frozen=True)
class SnapshotPlan:
    """Which local Pauli bases to measure and how often.

    Attributes:
        bases: ``(B, n)`` digits in ``{1, 2, 3}`` (X, Y, Z) for each circuit.
        shots: ``(B,)`` shots per basis.
        random: whether the bases were drawn uniformly at random (then the estimator divides
            each coefficient by its coverage probability) or cover all ``3**n`` bases.
        groups: number of independent replicate groups ``K``.
        shot_groups: whether groups split each basis' shots (complete plan) or the bases
            themselves (random plan).
        beta: ``(n, 3)`` per-qubit X/Y/Z probabilities of a locally-biased plan, or ``None``
            (uniform). A random biased plan draws its bases from ``beta`` and the estimator
            divides by the coverage probability ``1 - (1 - prod_q beta_q(P_q))^B``; a
            deterministic biased plan has ``shots[b] ~ prod_q beta_q(b_q)`` (budget.biased_plan).
    """

    bases: np.ndarray
    shots: np.ndarray
    random: bool
    groups: int
    shot_groups: bool
    beta: np.ndarray | None = None

    @property
    def num_bases(self) -> int:
        return len(self.shots)

    @property
    def num_snapshots(self) -> int:
        return int(self.shots.sum())

    @property
    def num_qubits(self) -> int:
        return self.bases.shape[1]

    def basis_groups(self) -> np.ndarray:
        """Group of each basis for a random plan (round robin)."""
        return np.arange(self.num_bases) % self.groups


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def check_snapshots(snapshots) -> None:
    """Refuse a snapshot budget that is neither ``None`` nor a positive integer."""
    if snapshots is not None and not (_is_int(snapshots) and snapshots >= 1):
        raise ValueError(
            f"'snapshots' must be a positive integer (the snapshot budget T) or None (the "
            f"QNode's shots), got {snapshots!r}."
        )


def check_bases(bases) -> None:
    """Refuse a ``bases`` option that is not ``"auto"``, ``"all"``, ``"per-shot"`` or ``B >= 1``."""
    if isinstance(bases, str) and bases in ("auto", "all", "per-shot"):
        return
    if not (_is_int(bases) and bases >= 1):
        raise ValueError(
            "'bases' must be 'auto', 'all', 'per-shot' or a positive integer (a number of "
            f"random bases), got {bases!r}."
        )


def check_groups(groups) -> None:
    """Refuse a ``groups`` option that is not an integer of at least 1."""
    if not (_is_int(groups) and groups >= 1):
        raise ValueError(
            f"'groups' must be an integer of at least 1 (independent replicate groups; error "
            f"bars and var gradients need at least 2), got {groups!r}."
        )


def check_seed(seed) -> None:
    """Refuse a seed that is not ``None``, an integer ``>= 0`` or a ``numpy.random.Generator``."""
    if seed is None or isinstance(seed, np.random.Generator) or (_is_int(seed) and seed >= 0):
        return
    raise ValueError(
        "'seed' must be None (fresh random bases), a non-negative integer (the same bases at "
        "every call) or a numpy.random.Generator (fresh bases per call from a reproducible "
        f"stream), got {seed!r} of type {type(seed).__name__}."
    )


def make_plan(
    num_qubits: int,
    snapshots: int,
    bases: str | int = "auto",
    groups: int = DEFAULT_GROUPS,
    seed=None,
) -> SnapshotPlan:
    """Build a :class:`SnapshotPlan` for ``snapshots`` shots on ``num_qubits`` qubits.

    Args:
        num_qubits: number of qubits ``n``.
        snapshots: total number of snapshots (shots) ``T``.
        bases: ``"all"`` (every one of the ``3**n`` bases, shots split evenly: no basis
            randomness), an integer ``B`` (``B`` bases drawn uniformly at random, shots split
            evenly), ``"per-shot"`` (a fresh random basis for every snapshot), or ``"auto"``
            (``"all"`` when every basis gets ``min(groups, 2)`` shots, i.e.
            ``min(groups, 2) * 3**n <= T``, and ``3**n <= MAX_AUTO_BASES``; else
            ``min(T, MAX_AUTO_BASES)`` random bases). ``"auto"`` thus keeps at least two
            replicate groups whenever ``T >= 2`` and ``groups >= 2``: a complete plan's groups
            split the shots of every basis, so one shot per basis leaves a single group (no
            error bars, no unbiased var gradient).
        groups: number of independent replicate groups requested (at least 1). The plan
            holds ``min(groups, smallest shots per basis)`` groups for a complete plan and
            ``min(groups, B)`` for a random one, so that no group is empty.
        seed: seed or ``numpy.random.Generator`` for the random bases.
    """
    if snapshots is None:
        raise ValueError("The snapshot budget must be a positive integer, got None.")
    check_snapshots(snapshots)
    check_bases(bases)
    check_groups(groups)
    check_seed(seed)
    n, total = num_qubits, int(snapshots)
    complete = 3**n
    if bases == "auto":
        full = complete <= MAX_AUTO_BASES and min(int(groups), 2) * complete <= total
        bases = "all" if full else min(total, MAX_AUTO_BASES)
    if bases == "per-shot":
        bases = total
    if bases == "all":
        if total < complete:
            raise ValueError(
                f"bases='all' measures all 3**{n} = {complete} local bases, but the snapshot "
                f"budget is only {total}. Use more shots or bases='auto'/an integer."
            )
        digits = np.array(list(itertools.product((1, 2, 3), repeat=n)), dtype=np.uint8)
        digits = digits.reshape(complete, n)
        shots = _split_evenly(total, complete)
        return SnapshotPlan(digits, shots, False, int(min(groups, shots.min())), True)
    if bases > total:
        raise ValueError(f"Cannot measure {bases} bases with only {total} snapshots.")
    rng = np.random.default_rng(seed)
    digits = rng.integers(1, 4, size=(int(bases), n), dtype=np.uint8)
    shots = _split_evenly(total, int(bases))
    return SnapshotPlan(digits, shots, True, int(min(groups, bases)), False)


def _split_evenly(total: int, parts: int) -> np.ndarray:
    shots = np.full(parts, total // parts, dtype=np.int64)
    shots[: total % parts] += 1
    return shots


def snapshot_tapes(tape: QuantumScript, plan: SnapshotPlan, wire_order: Wires) -> list:
    """One broadcast tape per distinct shot count, measuring ``qml.sample`` on all wires."""
    tapes = []
    for count in np.unique(plan.shots):
        rows = np.flatnonzero(plan.shots == count)
        rotations = []
        for q, wire in enumerate(wire_order):
            ry = np.array([_BASIS_ANGLES[int(d)][0] for d in plan.bases[rows, q]])
            rx = np.array([_BASIS_ANGLES[int(d)][1] for d in plan.bases[rows, q]])
            if len(rows) == 1:
                ry, rx = ry[0], rx[0]
            rotations += [qml.RY(ry, wires=wire), qml.RX(rx, wires=wire)]
        new = QuantumScript(
            tape.operations + rotations,
            [qml.sample(wires=wire_order)],
            shots=int(count),
            trainable_params=[],
        )
        tapes.append(new)
    return tapes


def refuse_traced_results(results) -> None:
    """Raise when PennyLane differentiates the gradient's own samples (``max_diff=2``).

    Raises:
        NotImplementedError: the samples are being traced by autograd (Hessians).
    """
    if any(isinstance(res, Box) for res in results):
        raise NotImplementedError(
            "The shadow gradients do not support second derivatives (max_diff=2, Hessians): "
            "their snapshot samples have no derivative. Use diff_method='parameter-shift' "
            "for Hessians."
        )


def decode(results, plan: SnapshotPlan) -> list[np.ndarray]:
    """Per-basis outcome samples as integers ``s`` (wire 0 is the most significant bit).

    Returns a list with one integer array of length ``shots[b]`` per basis ``b``.

    Raises:
        NotImplementedError: the samples are being traced by autograd, i.e. PennyLane
            differentiates the gradient itself (``max_diff=2``, Hessians).
    """
    refuse_traced_results(results)
    out = [None] * plan.num_bases
    for res, count in zip(results, np.unique(plan.shots)):
        rows = np.flatnonzero(plan.shots == count)
        samples = np.asarray(res).reshape(len(rows), int(count), plan.num_qubits)
        weights = 1 << np.arange(plan.num_qubits - 1, -1, -1)
        ints = samples.astype(np.int64) @ weights
        for i, b in enumerate(rows):
            out[b] = ints[i]
    return out
