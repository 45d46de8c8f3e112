"""Independent reference quantities shared by several test modules."""

import numpy as np
import pennylane as qml
from pennylane.tape import QuantumScript

PAULIS = (
    np.eye(2, dtype=complex),
    np.array([[0, 1], [1, 0]], dtype=complex),
    np.array([[0, -1j], [1j, 0]]),
    np.array([[1, 0], [0, -1]], dtype=complex),
)


def pauli_matrix(digits) -> np.ndarray:
    """Dense matrix of the Pauli word with digits I, X, Y, Z = 0, 1, 2, 3 (qubit 0 first)."""
    out = np.ones((1, 1), dtype=complex)
    for d in digits:
        out = np.kron(out, PAULIS[int(d)])
    return out


def exact_tape_gradient(tape) -> np.ndarray:
    """Analytic parameter-shift gradient of ``tape`` (shots removed), flattened."""
    analytic = QuantumScript(tape.operations, tape.measurements)
    analytic.trainable_params = tape.trainable_params
    tapes, fn = qml.gradients.param_shift(analytic)
    return np.asarray(fn(qml.execute(tapes, qml.device("default.qubit"))), float).reshape(-1)
