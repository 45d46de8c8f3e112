"""Per-gradient records: estimates, error bars, shots, circuits, engine and classical cost.

``record()`` keeps the active recorders in a :class:`contextvars.ContextVar`: each thread
(and each ``asyncio`` task) sees only the ``record()`` blocks it entered itself, so gradients
computed concurrently in another thread never land in this thread's records.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

#: The sinks of the ``record()`` blocks active in the current context, innermost last.
_ACTIVE: contextvars.ContextVar[tuple[list, ...]] = contextvars.ContextVar(
    "pennylane_shadowgrad_records", default=()
)


@dataclass
class GradientRecord:
    """What one gradient evaluation did and how precise it is.

    Attributes:
        method: ``"shadow"`` or ``"gentle-multicopy"``.
        jacobian: list with one array per measurement, shape ``(M, *measurement_shape)``:
            the estimate with respect to the trainable *tape* parameters (before the
            classical Jacobian maps them to QNode arguments).
        stderr: standard errors of ``jacobian`` (same shapes; delete-a-group jackknife over
            the plan's independent groups), or ``None`` where not available.
        snapshots: measurement shots spent on this gradient.
        circuits: distinct circuits (local bases) run for this gradient.
        plan: a short description of the measurement plan.
        engine: the classical engine that evaluated the estimator.
        num_qubits: circuit size ``n`` (qubits).
        num_params: number ``M`` of trainable tape parameters differentiated.
        postprocessing_seconds: classical time spent after the device returned.
        groups: independent replicate groups behind ``stderr`` (0 where there are none).
        notes: anything a reader of the numbers must know.
        report: for ``"gentle-multicopy"``, the resource report (copies, gate applications,
            quantum memory, checks, firings, bounds, notes); for ``"shadow"`` on the sparse
            engine (``engine="pauli"``) the words carried and estimated, the truncation and
            the per-component ``bias_bound``; ``None`` otherwise.
        variance: estimated variance of every entry of ``jacobian`` (same shapes): for the
            pure strategy the squared jackknife error, for ``auto`` the measured variance of
            the combination (jackknife of the snapshot part, sample variances of the shifted
            tapes, weighted as combined; each part floored at 1% of its state-independent
            scale, so a measured zero is not reported as exactness).
        shot_variance: ``variance * snapshots``: the single-shot variance, so that a budget
            of ``T`` shots gives about ``shot_variance / T`` (what an optimizer needs to set
            its next budget).
        strategy: ``"pure"`` (textbook shadow estimator) or ``"auto"`` (hybrid).
        split: for ``auto``, how the shots were spent (shadow snapshots, parameter-shift
            shots per component, combination weights, the predicted MSE).
        dof: degrees of freedom of every standard error (same shapes), for the Student-t
            intervals: ``groups - 1`` for the pure strategy; for ``auto`` the
            Welch-Satterthwaite value of the combined snapshot and shifted-tape errors.
            ``None``: ``groups - 1`` everywhere.

    **Example**

    Records are collected by :func:`record`; every shadow gradient inside the block also
    computes its standard errors.

    >>> import numpy as np
    >>> import pennylane as qml
    >>> import pennylane_shadowgrad as sg
    >>> @qml.qnode(qml.device("default.qubit", seed=3), diff_method="shadow", shots=3000)
    ... def circuit(w):
    ...     qml.RY(w[0], 0)
    ...     qml.RY(w[1], 1)
    ...     qml.CNOT([0, 1])
    ...     return qml.expval(qml.Z(1))
    >>> with sg.record() as records:
    ...     qml.grad(circuit)(qml.numpy.array([0.2, 0.9]))
    array(...)
    >>> rec = records[0]
    >>> rec.strategy, rec.num_qubits, rec.num_params
    ('auto', 2, 2)
    >>> rec.split["shadow_snapshots"] + rec.split["parameter_shift_shots"] <= 3000
    True
    >>> low, high = rec.confidence_interval(0.95)[0]  # Student-t with rec.dof
    >>> exact = [-np.sin(0.2) * np.cos(0.9), -np.cos(0.2) * np.sin(0.9)]
    >>> bool(np.all((low <= exact) & (exact <= high)))
    True
    """

    method: str
    jacobian: list
    stderr: list | None
    snapshots: int
    circuits: int
    plan: str
    engine: str
    num_qubits: int
    num_params: int
    postprocessing_seconds: float
    groups: int = 0
    notes: list[str] = field(default_factory=list)
    report: dict | None = None
    variance: list | None = None
    shot_variance: list | None = None
    strategy: str = "pure"
    split: dict | None = None
    dof: list | None = None

    def __post_init__(self):
        if self.groups == 1 and self.strategy == "pure" and self.stderr is not None:
            # one replicate group: nothing to compare it with, so no error can be estimated
            self.stderr = [None if s is None else np.full(np.shape(s), np.nan) for s in self.stderr]
            for name in ("variance", "shot_variance"):
                values = getattr(self, name)
                if values is not None:
                    setattr(
                        self,
                        name,
                        [None if v is None else np.full(np.shape(v), np.nan) for v in values],
                    )
            self.notes = [*self.notes, _ONE_GROUP_NOTE]

    def confidence_interval(self, level: float = 0.95) -> list[tuple[np.ndarray, np.ndarray]]:
        """Student-t intervals ``(low, high)`` per measurement from the jackknife errors.

        Raises:
            ValueError: the record has no standard errors, or a single replicate group
                (``groups=1``), from which no error can be estimated.
        """
        from scipy.stats import t as student_t

        if self.stderr is None:
            raise ValueError("This record has no standard errors.")
        if self.groups == 1 and self.strategy == "pure":
            raise ValueError(
                "Error bars need at least 2 independent replicate groups; this gradient had "
                "1 (groups=1, or a plan with a single shot per basis or a single basis). "
                "Use groups >= 2 with enough snapshots (bases='auto' keeps 2 groups from "
                "T >= 2)."
            )
        dof = self.dof or [np.full(np.shape(j), max(self.groups - 1, 1)) for j in self.jacobian]
        out = []
        for j, s, d in zip(self.jacobian, self.stderr, dof):
            q = student_t.ppf(0.5 + level / 2, df=np.where(np.isfinite(d), d, 1e9))
            out.append((j - q * s, j + q * s))
        return out


_ONE_GROUP_NOTE = (
    "A single replicate group (groups=1, or a plan with one shot per basis or one basis): no "
    "standard error can be estimated, so stderr, variance and shot_variance are NaN and "
    "confidence_interval raises. Use groups >= 2 with at least 2 snapshots."
)


def is_recording() -> bool:
    """Whether a :func:`record` block is active in this thread/context (then error bars are
    computed)."""
    return bool(_ACTIVE.get())


def publish(entry: GradientRecord) -> None:
    for sink in _ACTIVE.get():
        sink.append(entry)


@contextlib.contextmanager
def record() -> Iterator[list[GradientRecord]]:
    """Collect a :class:`GradientRecord` for every gradient computed inside the block.

    Inside the block, the shadow methods also compute per-component standard errors (one
    batched sweep per replicate group), which they skip otherwise.

    **Example**

    >>> import pennylane as qml
    >>> import pennylane_shadowgrad as sg
    >>> dev = qml.device("default.qubit", seed=7)
    >>> @qml.qnode(dev, diff_method="shadow", shots=2000, gradient_kwargs={"strategy": "pure"})
    ... def f(x):
    ...     qml.RX(x, 0)
    ...     return qml.expval(qml.Z(0))
    >>> x = qml.numpy.array(0.4, requires_grad=True)
    >>> with sg.record() as rec:
    ...     g = qml.grad(f)(x)
    >>> r = rec[0]
    >>> r.method, r.strategy, r.snapshots, r.circuits
    ('shadow', 'pure', 2000, 3)
    >>> print(f"{float(g):.2f} +- {float(r.stderr[0][0]):.2f}")  # exact: -sin(0.4) = -0.39
    -0.37 +- 0.04
    """
    sink: list[GradientRecord] = []
    token = _ACTIVE.set((*_ACTIVE.get(), sink))
    try:
        yield sink
    finally:
        _ACTIVE.reset(token)
