"""``shadow_metric_tensor``: the Fubini-Study metric tensor of a QNode from shadow snapshots."""

from __future__ import annotations

from collections.abc import Callable

import pennylane as qml

from .second_order import run_round, validate_options


def shadow_metric_tensor(qnode: qml.QNode, approx: str | None = None, **options) -> Callable:
    r"""The metric tensor of a QNode, as :func:`~pennylane.metric_tensor` gives it, from shadows.

    With :math:`Q_j` the generator of rotation :math:`e^{-i\phi_j P_j/2}` carried forward to
    the output (a unitary conjugation, so covariances on the output state equal those on the
    state before each rotation), PennyLane's metric tensor is

    .. math::

        g_{jk} = \tfrac14\Bigl(\tfrac12\langle\{Q_j, Q_k\}\rangle
            - \langle Q_j\rangle\langle Q_k\rangle\Bigr)

    (generators :math:`P/2`, hence the factor :math:`1/4`; Stokes et al., Quantum 4, 269
    (2020), arXiv:1909.02108). All entries come from one set of snapshots: the
    anticommutator term on the averaged shadow, and the product of means without bias as
    the U-statistic over pairs of independent replicate groups,
    :math:`\sum_{k\ne l} \hat a_k \hat b_l / (K(K-1))`. No auxiliary wire is needed.

    Args:
        qnode (QNode): a QNode with finite shots (the snapshot budget; any measurements).
            Arguments are NumPy/autograd arrays; those with ``requires_grad=True`` are
            differentiated, through the classical Jacobian as ``qml.metric_tensor`` does.
        approx (str or None): ``None`` (full tensor), ``"block-diag"`` (entries between
            PennyLane's parametrized layers set to zero) or ``"diag"``; all from the same
            snapshots, so the approximations save no shots here.
        **options: ``snapshots``, ``bases``, ``groups`` (at least 2), ``seed`` and
            ``max_qubits``, as for :func:`shadow_hessian`.

    Returns:
        callable: ``(*args, **kwargs) -> metric``, with the shapes of
        ``qml.metric_tensor(qnode, approx=approx)``. It is a ``metric_tensor_fn`` for
        :class:`~pennylane.QNGOptimizer`:
        ``opt.step(qnode, x, metric_tensor_fn=shadow_metric_tensor(qnode))``.

    Inside :func:`pennylane_shadowgrad.record`, a ``SecondOrderRecord`` gives the jackknife
    standard error of every entry (``metric_stderr``).

    **Example**

    >>> import pennylane as qml
    >>> from pennylane import numpy as pnp
    >>> from pennylane_shadowgrad import shadow_metric_tensor
    >>> dev = qml.device("default.qubit", seed=3)
    >>> @qml.qnode(dev, shots=20000)
    ... def circuit(x):
    ...     qml.RX(x[0], 0)
    ...     qml.RY(x[1], 0)
    ...     return qml.expval(qml.Z(0))
    >>> x = pnp.array([0.4, 0.9])
    >>> shadow_metric_tensor(circuit, seed=1)(x).round(2)  # exact: [[0.25, 0], [0, 0.21]]
    array([[0.25, 0.  ],
           [0.  , 0.21]])
    """
    validate_options(options, approx)

    def metric(*args, **kwargs):
        return run_round(qnode, args, kwargs, options, {"metric"}, approx)["metric"]

    return metric
