"""Plumbing the gradient transforms share: Jacobian shapes and re-stacking split batches."""

from __future__ import annotations

import numpy as np
from pennylane import math


def format_jacobian(jacs: list[np.ndarray], num_params: int):
    """PennyLane's shapes: measurements outer, parameters inner, scalars squeezed."""
    per_meas = []
    for jac in jacs:
        if num_params == 1:
            per_meas.append(jac[0])
        else:
            per_meas.append(tuple(jac[i] for i in range(num_params)))
    return per_meas[0] if len(per_meas) == 1 else tuple(per_meas)


def stack_leaves(trees: list):
    """Stack equally shaped nested tuples of arrays leaf by leaf along a new leading axis.

    Re-assembles the batch elements of a split broadcast tape: results get the batch
    dimension where a broadcast tape puts it, and Jacobians the shape
    :func:`~pennylane.gradients.param_shift` gives broadcast tapes (batch first in every
    ``(measurement, parameter)`` entry).
    """
    first = getattr(trees[0], "_value", trees[0])  # autograd boxes a tuple of results
    if isinstance(first, tuple | list):
        return tuple(stack_leaves([t[i] for t in trees]) for i in range(len(first)))
    return math.stack(trees)


def refuse_observable_coefficients(tape, message: str) -> None:
    """Raise ``UnsupportedCircuitError(message)`` if a trainable parameter belongs to a
    measured observable (a method that differentiates gate angles only)."""
    from .circuit import UnsupportedCircuitError

    num_ops = len(tape.operations)
    if any(tape.par_info[t]["op_idx"] >= num_ops for t in tape.trainable_params):
        raise UnsupportedCircuitError(message)
