"""Hessian entries and generator covariances of a state estimate (docs/math.md).

With ``Q_a`` the generator of rotation ``a`` (``exp(-i phi_a P_a / 2)``) carried forward to
the output and ``G_b = (i/2)[Q_b, O]`` its gradient observable, every second derivative of
``f = Tr(rho O)`` with respect to the angles, for ``a`` at or before ``b`` in circuit order, is

    ``d_a d_b f = (i/2) Tr(rho [Q_a, G_b]) = -1/4 Tr(rho [[O, Q_b], Q_a])``

(``G_b`` does not depend on the angles up to rotation ``b``, so ``d_a`` acts on the state
only), and the Fubini-Study metric (PennyLane's convention, generators ``P/2``) is

    ``g_ab = 1/4 (Tr(rho {Q_a, Q_b}) / 2 - Tr(rho Q_a) Tr(rho Q_b))``.

Both are linear (the Hessian, the anticommutator term) or bilinear (the product of means) in
``rho``, so they are evaluated on the averaged shadow and its replicate groups. The operators
are held as ``2**n x 2**n`` matrices: ``O(M 8^n + M^2 4^n)`` time per estimate.
"""

from __future__ import annotations

import numpy as np

from ..circuit import PauliSum, RotationCircuit
from .light_cone import carried_generators

_PAULI_TENSOR = np.stack(
    [
        np.eye(2, dtype=complex),
        np.array([[0, 1], [1, 0]], dtype=complex),
        np.array([[0, -1j], [1j, 0]]),
        np.array([[1, 0], [0, -1]], dtype=complex),
    ]
)  # W[p, a, b] = (sigma_p)[a, b]


def operator_matrices(coeffs: np.ndarray, num_qubits: int) -> np.ndarray:
    """``sum_P c_P P`` for every batch entry of Pauli coefficients ``(batch, 4**n)``.

    Returns complex matrices of shape ``(batch, 2**n, 2**n)`` (qubit 0 most significant);
    the inverse of :func:`~pennylane_shadowgrad.circuit.pauli_coefficients_of_matrix` up to
    the factor ``2**n``. ``O(n 4^n)`` per entry.

    **Example**

    >>> c = np.zeros((1, 4))
    >>> c[0, 1] = 1.0  # the word X
    >>> operator_matrices(c, 1)[0].real
    array([[0., 1.],
           [1., 0.]])
    """
    n = num_qubits
    t = np.asarray(coeffs, dtype=complex).reshape((-1,) + (4,) * n)
    batch = t.shape[0]
    for _ in range(n):  # consume the leading Pauli axis, append its (row, column) pair
        t = np.tensordot(t, _PAULI_TENSOR, axes=([1], [0]))
    order = [0] + [1 + 2 * q for q in range(n)] + [2 + 2 * q for q in range(n)]
    return t.transpose(order).reshape(batch, 2**n, 2**n)


def state_matrices(x: np.ndarray) -> np.ndarray:
    """Density-matrix estimates ``sum_P x_P P / 2**n`` from Pauli estimates ``(batch, 4,..,4)``."""
    n = x.ndim - 1
    return operator_matrices(x.reshape(x.shape[0], -1), n) / 2**n


class SecondOrderOperators:
    """The carried generators ``Q_a`` of a circuit as matrices, and per observable ``G_b``.

    ``rotations`` lists the trainable rotations in circuit order as ``(param, scale)``: the
    tape parameter each angle depends on and ``d angle / d parameter``. All functionals below
    are with respect to the trainable tape parameters (angles contracted with the scales).
    """

    def __init__(self, circuit: RotationCircuit):
        self.circuit = circuit
        n = circuit.num_qubits
        gates, q = carried_generators(circuit)
        self.rotations = [(circuit.gates[g].param, circuit.gates[g].scale) for g in gates]
        self.q = operator_matrices(q, n) / 2**n  # Q_a (Pauli words), (R, 2^n, 2^n)
        self.q_coeffs = q  # Tr(P Q_a), (R, 4**n)
        scale = np.zeros((len(gates), circuit.num_params))
        for a, (param, s) in enumerate(self.rotations):
            scale[a, param] = s
        self.scale = scale  # (R, M): d angle_a / d theta_p

    def gradient_observables(self, obs: PauliSum) -> np.ndarray:
        """``G_b = (i/2)[Q_b, O]`` for every rotation: ``(R, 2^n, 2^n)``."""
        o = observable_matrix(obs, self.circuit.num_qubits)
        return 0.5j * (self.q @ o - o @ self.q)

    def hessian(self, obs: PauliSum, rho: np.ndarray) -> np.ndarray:
        """``d^2 Tr(rho O) / d theta_p d theta_q`` for each estimate: ``(batch, M, M)``.

        ``rho`` holds density-matrix estimates ``(batch, 2^n, 2^n)``; the result is linear in
        them. Angle entries are ``X[a, b] = (i/2) Tr(rho [Q_a, G_b])`` for ``a <= b`` in
        circuit order (mirrored below the diagonal), contracted with the scales.
        """
        g = self.gradient_observables(obs)
        out = np.zeros((rho.shape[0], self.circuit.num_params, self.circuit.num_params))
        upper = np.triu(np.ones((len(self.q),) * 2, dtype=bool))
        for k, r in enumerate(rho):
            e = 0.5j * (r @ self.q - self.q @ r)  # (i/2)[rho, Q_a]
            # Tr(G_b E_a) = sum_ij G_b[i, j] E_a[j, i]
            x = np.einsum("aji,bij->ab", e, g).real
            x = np.where(upper, x, x.T)
            out[k] = self.scale.T @ x @ self.scale
        return out

    def second_moments(self, rho: np.ndarray) -> np.ndarray:
        """``Tr(rho {Q_a, Q_b}) / 2`` contracted to tape parameters: ``(batch, M, M)``."""
        out = np.zeros((rho.shape[0], self.circuit.num_params, self.circuit.num_params))
        for k, r in enumerate(rho):
            rq = r @ self.q
            x = np.einsum("aij,bji->ab", rq, self.q).real  # Re Tr(rho Q_a Q_b)
            out[k] = self.scale.T @ x @ self.scale
        return out

    def means(self, x: np.ndarray) -> np.ndarray:
        """``Tr(rho Q_a)`` contracted to tape parameters, from Pauli estimates: ``(batch, M)``.

        Linear in the Pauli estimates ``x`` (``(batch, 4,..,4)``): no matrices needed.
        """
        flat = x.reshape(x.shape[0], -1)
        return (flat @ self.q_coeffs.T / 2**self.circuit.num_qubits) @ self.scale


def observable_matrix(obs: PauliSum, num_qubits: int) -> np.ndarray:
    """The matrix of a :class:`~pennylane_shadowgrad.circuit.PauliSum` on ``num_qubits``."""
    place = 4 ** np.arange(num_qubits - 1, -1, -1, dtype=np.int64)
    coeffs = np.zeros(4**num_qubits)
    np.add.at(coeffs, obs.digits.astype(np.int64) @ place, obs.coeffs)
    return operator_matrices(coeffs[None], num_qubits)[0]


def metric_from_moments(second: np.ndarray, mean_product: np.ndarray) -> np.ndarray:
    """PennyLane's metric tensor ``(second - mean_product) / 4`` (generators ``P/2``)."""
    return 0.25 * (second - mean_product)
