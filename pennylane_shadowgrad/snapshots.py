"""The tapes that take classical-shadow snapshots of a plan, and decoding their samples.

A plan (:mod:`.plans`) is data; here every circuit of it becomes a tape that rotates each
qubit into its basis and calls ``qml.sample``, so it runs on any device that samples
(``qml.classical_shadow`` is not used: ``lightning.qubit`` refuses it with finite shots).
Bases with equal shot counts share one broadcast tape; devices without native broadcasting
split it into one circuit per basis.
"""

from __future__ import annotations

import numpy as np
import pennylane as qml
from autograd.tracer import Box
from pennylane.tape import QuantumScript
from pennylane.wires import Wires

from .plans import SnapshotPlan

# Rotation angles (RY, RX) taking the X, Y, Z eigenbases to the computational basis.
_BASIS_ANGLES = {1: (-np.pi / 2, 0.0), 2: (0.0, np.pi / 2), 3: (0.0, 0.0)}


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
