"""``shadow_hessian``: every second derivative of a QNode from one set of shadow snapshots."""

from __future__ import annotations

from collections.abc import Callable

import pennylane as qml

from .second_order import run_round, validate_options


def shadow_hessian(qnode: qml.QNode, **options) -> Callable:
    r"""The Hessian of a QNode with respect to its trainable arguments, from classical shadows.

    The circuit is decomposed into fixed gates and Pauli rotations
    :math:`e^{-i\phi_j P_j/2}`; with :math:`Q_j` the generator carried forward to the output
    and :math:`G_k = \tfrac{i}{2}[Q_k, O]` the gradient observable, every second derivative
    with respect to the angles is an expectation value on the output state,

    .. math::

        \partial_j\partial_k f = \tfrac{i}{2}\,\mathrm{Tr}\bigl(\rho\,[Q_j, G_k]\bigr)
        = -\tfrac14\,\mathrm{Tr}\bigl(\rho\,[[O, Q_k], Q_j]\bigr)
        \qquad (j \text{ at or before } k),

    so all :math:`M(M+1)/2` entries come from one set of snapshots (where
    :func:`~pennylane.gradients.param_shift_hessian` runs :math:`O(M^2)` circuits). The
    estimate is linear in the averaged shadow, hence unbiased for noiseless circuits. QNode
    arguments enter by the chain rule with its second-order term,
    :math:`\partial^2 f/\partial x^2 = J^T H J
    + \sum_a \partial_a f\,\partial^2\theta_a/\partial x^2`,
    both terms from the same snapshots (``param_shift_hessian`` omits the second term).

    Args:
        qnode (QNode): a QNode whose measurements are ``expval`` of Pauli words, sums or
            Hamiltonians, with finite shots (the snapshot budget, spent in one round of
            snapshot tapes on the QNode's device). Arguments are NumPy/autograd arrays;
            those with ``requires_grad=True`` are differentiated.
        snapshots (int or None): snapshot budget :math:`T`; default: the QNode's shots.
        bases (str or int): measurement plan, as for :func:`shadow_grad` (``"auto"``,
            ``"all"``, ``"per-shot"`` or a number of random bases).
        groups (int): independent replicate groups for the jackknife errors (default 20).
        seed (int or numpy.random.Generator or None): fixes the random bases.
        max_qubits (int): largest register (default 8): the estimator holds :math:`M`
            matrices of :math:`4^n` entries.

    Returns:
        callable: ``(*args, **kwargs) -> hessian``, shaped as
        :func:`~pennylane.gradients.param_shift_hessian` shapes it (per trainable argument
        its own block, arguments outer and measurements inner, singletons dropped), with the
        values of ``qml.jacobian(qml.jacobian(qnode))``. A NumPy array: the estimate is not
        differentiable.

    Raises:
        UnsupportedCircuitError: measurements other than ``expval``, trainable observable
            coefficients or gates without a Pauli-rotation decomposition, before any device
            time; ``ValueError`` for ``shots=None`` without ``snapshots`` or shot vectors.

    Inside :func:`pennylane_shadowgrad.record`, a ``SecondOrderRecord`` gives the
    delete-a-group jackknife standard error of every entry (``hessian_stderr``).

    **Example**

    >>> import numpy as np
    >>> import pennylane as qml
    >>> from pennylane import numpy as pnp
    >>> from pennylane_shadowgrad import record, shadow_hessian
    >>> dev = qml.device("default.qubit", seed=7)
    >>> @qml.qnode(dev, shots=40000)
    ... def circuit(x):
    ...     qml.RX(x[0], 0)
    ...     qml.RY(x[1], 1)
    ...     qml.CNOT([0, 1])
    ...     return qml.expval(qml.Z(1))
    >>> x = pnp.array([0.3, 0.7])
    >>> with record() as rec:
    ...     hess = shadow_hessian(circuit, seed=2)(x)
    >>> exact = -np.cos(0.3) * np.cos(0.7)  # both diagonal entries
    >>> bool(np.all(np.abs(np.diag(hess) - exact) < 5 * np.diag(rec[0].hessian_stderr)))
    True
    """
    validate_options(options)

    def hessian(*args, **kwargs):
        return run_round(qnode, args, kwargs, options, {"hessian"})["hessian"]

    return hessian
