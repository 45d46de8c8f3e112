"""Warm start of the multi-copy hypothesis from one gradient call to the next."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


class WarmStart:
    r"""Carries the certified hypothesis of a ``gentle-multicopy`` gradient to the next call.

    In a training loop the circuit's output state moves little between steps, so the hypothesis
    :math:`\sigma` certified at one step is a good start for the next: fewer checks fire and
    fewer batches are spent. Pass one instance as ``gradient_kwargs={"warm_start": ws}``; every
    certified gradient stores its :math:`\sigma` here (one per measured observable), and the
    next gradient starts from

    .. math:: \sigma_0 = (1 - a)\,\sigma_{\text{prev}} + a\,I/2^n ,

    with ``a = mixing``. The guarantee does not depend on the start: the final silent sweep
    certifies :math:`\sigma` against fresh copies whatever :math:`\sigma_0` was, and the learner's
    mistake bound becomes :math:`-\ln\lambda_{\min}(\sigma_0)/(2\gamma^2) \le
    (n\ln 2 + \ln(1/a))/(2\gamma^2)` instead of :math:`n\ln 2/(2\gamma^2)` (the round limit
    grows accordingly). A smaller ``mixing`` starts closer to the previous state but raises the
    mistake bound; the default 0.1 adds :math:`\ln 10 \approx 2.3` to :math:`n\ln 2`.

    The instance holds state that the user owns: reuse it across the steps of one training run,
    and call :meth:`reset` (or make a new one) for an unrelated circuit. A stored hypothesis
    whose wires differ from the circuit's raises a ``ValueError`` rather than being dropped.

    Args:
        mixing (float): weight ``a`` of the maximally mixed state in the start, in ``(0, 1]``
            (``1`` is the cold start ``I / 2^n``). Default 0.1.

    **Example**

    >>> import pennylane as qml
    >>> import pennylane_shadowgrad as sg
    >>> ws = sg.WarmStart()
    >>> dev = qml.device("default.qubit")
    >>> @qml.qnode(dev, diff_method="gentle-multicopy",
    ...          gradient_kwargs={"epsilon": 0.2, "seed": 3, "warm_start": ws})
    ... def circuit(x):
    ...     qml.RX(x[0], wires=0)
    ...     qml.RY(x[1], wires=1)
    ...     qml.CNOT(wires=[0, 1])
    ...     return qml.expval(qml.Z(1))
    >>> x = qml.numpy.array([0.3, 0.7], requires_grad=True)
    >>> with sg.record() as rec:
    ...     g1 = qml.grad(circuit)(x)  # cold start; stores the certified hypothesis
    ...     g2 = qml.grad(circuit)(x - 0.05 * g1)  # starts from it
    >>> [r.report["warm_start"]["used"] for r in rec]
    [False, True]
    >>> rec[1].report["copies"]["total"] < rec[0].report["copies"]["total"]
    True
    """

    def __init__(self, mixing: float = 0.1):
        mixing = float(mixing)
        if not 0 < mixing <= 1:
            raise ValueError(f"WarmStart mixing must lie in (0, 1], got {mixing}.")
        self.mixing = mixing
        self._store: dict[Hashable, tuple[tuple, np.ndarray]] = {}

    def __repr__(self) -> str:
        return f"WarmStart(mixing={self.mixing}, stored={len(self._store)})"

    def __len__(self) -> int:
        return len(self._store)

    def reset(self) -> None:
        """Forget every stored hypothesis (the next gradient starts from ``I / 2^n``)."""
        self._store.clear()

    def initial(self, key: Hashable, wires: Sequence) -> np.ndarray | None:
        """The starting hypothesis for observable ``key`` on ``wires`` (``None``: cold start).

        Raises:
            ValueError: the stored hypothesis was learned on other wires.
        """
        if key not in self._store:
            return None
        stored_wires, sigma = self._store[key]
        if stored_wires != tuple(wires):
            raise ValueError(
                f"WarmStart holds a hypothesis on wires {list(stored_wires)} for measurement "
                f"{key}, but this circuit's wires are {list(wires)}. Use one WarmStart per "
                "circuit, or call reset()."
            )
        dim = sigma.shape[0]
        return (1 - self.mixing) * sigma + self.mixing * np.eye(dim) / dim

    def store(self, key: Hashable, wires: Sequence, sigma: np.ndarray) -> None:
        """Keep the certified hypothesis ``sigma`` of observable ``key`` on ``wires``."""
        self._store[key] = (tuple(wires), np.array(sigma, dtype=complex))
