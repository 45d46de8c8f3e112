"""Turn a tape into fixed gates and Pauli rotations ``exp(-i phi P / 2)`` (docs/math.md)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np
import pennylane as qml
from pennylane import math
from pennylane.tape import QuantumScript
from pennylane.wires import Wires

#: Digits of the single-qubit Paulis in every Pauli-basis array of this package.
PAULI_DIGITS = {"I": 0, "X": 1, "Y": 2, "Z": 3}

_PAULI_MATRICES = (
    np.eye(2, dtype=complex),
    np.array([[0, 1], [1, 0]], dtype=complex),
    np.array([[0, -1j], [1j, 0]]),
    np.array([[1, 0], [0, -1]], dtype=complex),
)

#: Fixed gates on more wires than this are decomposed before the sweep (their Pauli transfer
#: matrix has 16**k entries).
MAX_FIXED_GATE_WIRES = 3


class UnsupportedCircuitError(ValueError):
    """Raised when a circuit cannot be differentiated with the shadow methods.

    It is raised before any device time, with a message that names the cause: noise channels,
    mid-circuit measurements, state-like returns, unsupported gates or too many qubits.

    **Example**

    >>> import pennylane as qml
    >>> import pennylane_shadowgrad
    >>> from pennylane_shadowgrad.circuit import UnsupportedCircuitError
    >>> dev = qml.device("default.qubit", seed=1)
    >>> @qml.qnode(dev, diff_method="shadow", shots=1000)
    ... def noisy(x):
    ...     qml.RX(x, 0)
    ...     qml.DepolarizingChannel(0.01, wires=0)
    ...     return qml.expval(qml.Z(0))
    >>> try:
    ...     qml.grad(noisy)(qml.numpy.array(0.3, requires_grad=True))
    ... except UnsupportedCircuitError as err:
    ...     print(err)
    diff_method='shadow' does not support noise channels (DepolarizingChannel) yet: ...
    """


@dataclass(frozen=True)
class PauliRotation:
    """The gate ``exp(-i angle P / 2)`` with ``P`` the Pauli word ``digits`` on ``wires``.

    ``param`` is the index of the trainable tape parameter the angle depends on (or ``None``),
    and ``scale`` is ``d angle / d parameter``.
    """

    wires: tuple[int, ...]
    digits: tuple[int, ...]
    angle: float
    param: int | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class FixedGate:
    """A parameter-independent gate, given by its matrix on ``wires`` (positions)."""

    wires: tuple[int, ...]
    matrix: np.ndarray


@dataclass(frozen=True)
class RotationCircuit:
    """A circuit as a sequence of :class:`PauliRotation` and :class:`FixedGate` on ``n`` qubits.

    ``wire_order`` maps positions ``0..n-1`` to the tape's wire labels; ``num_params`` is the
    number of trainable tape parameters (``M``).
    """

    wire_order: Wires
    gates: tuple[PauliRotation | FixedGate, ...]
    num_params: int

    @property
    def num_qubits(self) -> int:
        return len(self.wire_order)


@dataclass(frozen=True)
class PauliSum:
    """A real linear combination of Pauli words: ``digits`` has shape ``(L, n)``."""

    digits: np.ndarray
    coeffs: np.ndarray

    def __len__(self) -> int:
        return len(self.coeffs)


def _pauli_word_of_generator(op) -> tuple[tuple, tuple[int, ...], float] | None:
    """Return ``(wires, digits, c)`` if ``op = phase * exp(i theta c P)`` for one Pauli word."""
    if op.num_params != 1 or not op.has_generator:
        return None
    try:
        gen = op.generator()
    except qml.operation.GeneratorUndefinedError:  # pragma: no cover - has_generator guards it
        return None
    wires = tuple(op.wires)
    try:
        sentence = qml.pauli.pauli_sentence(gen)
        terms = []
        for word, coeff in sentence.items():
            if len(word) == 0:
                continue
            terms.append((dict(word), coeff))
    except ValueError:
        if len(wires) > MAX_FIXED_GATE_WIRES:
            return None
        mat = qml.matrix(gen, wire_order=wires)
        terms = []
        for digits in itertools.product(range(4), repeat=len(wires)):
            if not any(digits):
                continue
            coeff = np.trace(_pauli_matrix(digits) @ mat).real / 2 ** len(wires)
            if abs(coeff) > 1e-12:
                terms.append(({w: "IXYZ"[d] for w, d in zip(wires, digits) if d}, coeff))
    if len(terms) != 1:
        return None
    word, coeff = terms[0]
    coeff = float(math.real(coeff))
    word_wires = tuple(w for w in wires if w in word)
    return word_wires, tuple(PAULI_DIGITS[word[w]] for w in word_wires), coeff


def _pauli_matrix(digits) -> np.ndarray:
    out = np.ones((1, 1), dtype=complex)
    for d in digits:
        out = np.kron(out, _PAULI_MATRICES[d])
    return out


def is_pauli_rotation(op) -> bool:
    """Whether ``op`` is, up to a global phase, ``exp(-i phi P/2)`` for one Pauli word ``P``."""
    return _pauli_word_of_generator(op) is not None


def _is_trainable(op) -> bool:
    return any(math.requires_grad(d) for d in op.data)


def stopping_condition(op) -> bool:
    """Decomposition stops at Pauli rotations and at small parameter-free gates."""
    if isinstance(op, qml.ops.Identity | qml.GlobalPhase):
        return True
    if is_pauli_rotation(op):
        return True
    if _is_trainable(op) or (op.num_params > 0 and not op.has_matrix):
        return False
    return op.has_matrix and len(op.wires) <= MAX_FIXED_GATE_WIRES


def _graph_gate_set():
    """Target gates for PennyLane's graph-based decomposition, or ``None`` when it is off.

    With ``qml.decomposition.enable_graph()`` PennyLane requires a gate set and decomposes
    toward it (the stopping condition still accepts every Pauli rotation and small fixed
    gate on its way). The set is single-qubit rotations, Pauli-word rotations, the Ising
    gates and the Clifford+T gates: every gate in it passes :func:`stopping_condition`.
    """
    if not qml.decomposition.enabled_graph():
        return None
    return qml.decomposition.gate_sets.CLIFFORD_T | qml.decomposition.gate_sets.GateSet(
        {
            qml.RX,
            qml.RY,
            qml.RZ,
            qml.PhaseShift,
            qml.PauliRot,
            qml.MultiRZ,
            qml.IsingXX,
            qml.IsingYY,
            qml.IsingZZ,
        }
    )


def decompose_to_rotations(tape: QuantumScript) -> QuantumScript:
    """Decompose ``tape`` until every gate is a Pauli rotation or a small fixed gate.

    Raises:
        UnsupportedCircuitError: a gate has no decomposition into such gates.
    """
    try:
        [new_tape], _ = qml.transforms.decompose(
            tape, stopping_condition=stopping_condition, gate_set=_graph_gate_set(), strict=False
        )
    except Exception as exc:  # PennyLane raises several types here
        raise UnsupportedCircuitError(
            f"Could not decompose the circuit into Pauli rotations and fixed gates: {exc}"
        ) from exc
    for op in new_tape.operations:
        if not stopping_condition(op):
            raise UnsupportedCircuitError(
                f"Gate {op.name} on wires {op.wires.tolist()} has no decomposition into Pauli "
                "rotations (exp(-i phi P/2)) and fixed gates; the shadow methods cannot "
                "differentiate it."
            )
    return new_tape


def decompose_for_gradient(tape: QuantumScript) -> QuantumScript:
    """:func:`decompose_to_rotations`, then mark as trainable the parameters that require grad.

    The expand step of every gradient transform here: decomposition creates new gate
    parameters (``Rot`` -> three rotations), so trainability is read off the new ones.
    """
    new_tape = decompose_to_rotations(tape)
    if new_tape is not tape:
        params = new_tape.get_parameters(trainable_only=False)
        new_tape.trainable_params = math.get_trainable_indices(params)
    return new_tape


def rotation_form(tape: QuantumScript) -> RotationCircuit:
    """Read a decomposed tape as a :class:`RotationCircuit`.

    Each trainable tape parameter must belong to a Pauli rotation (call
    :func:`decompose_to_rotations` first); parameters of measured observables are not part
    of the circuit and are handled by the estimator.
    """
    wire_order = tape.wires
    position = {w: i for i, w in enumerate(wire_order)}
    trainable = {}
    for k, t_idx in enumerate(tape.trainable_params):
        info = tape.par_info[t_idx]
        trainable[(info["op_idx"], info["p_idx"])] = k
    gates = []
    for op_idx, op in enumerate(tape.operations):
        if isinstance(op, qml.ops.Identity | qml.GlobalPhase):
            continue
        if isinstance(op, qml.measurements.MidMeasureMP) or (
            not op.has_matrix and not is_pauli_rotation(op)
        ):
            raise UnsupportedCircuitError(f"Operation {op.name} is not a unitary gate.")
        if op.batch_size is not None:
            raise UnsupportedCircuitError(
                "Broadcast tapes must be split before the shadow sweep (qml.transforms."
                "broadcast_expand)."
            )
        rot = _pauli_word_of_generator(op)
        param = trainable.get((op_idx, 0))
        if rot is not None:
            word_wires, digits, coeff = rot
            # op = phase * exp(i theta coeff P) = phase * exp(-i (-2 coeff theta) P / 2)
            scale = -2.0 * coeff
            angle = scale * float(math.real(math.unwrap(op.data[0])))
            gates.append(
                PauliRotation(tuple(position[w] for w in word_wires), digits, angle, param, scale)
            )
        else:
            if param is not None:
                raise UnsupportedCircuitError(
                    f"Trainable gate {op.name} is not a Pauli rotation; decompose it first."
                )
            mat = np.asarray(qml.matrix(op, wire_order=op.wires), dtype=complex)
            gates.append(FixedGate(tuple(position[w] for w in op.wires), mat))
    return RotationCircuit(wire_order, tuple(gates), len(tape.trainable_params))


def pauli_sum(obs, wire_order: Wires) -> PauliSum:
    """Express a Hermitian observable as a real :class:`PauliSum` over ``wire_order``.

    Pauli words, sums, products and linear combinations are read symbolically; ``Hermitian``,
    ``Projector`` and other observables with a matrix are decomposed from their matrix on their
    own wires (at most ``MAX_OBSERVABLE_WIRES`` wires).
    """
    n = len(wire_order)
    position = {w: i for i, w in enumerate(wire_order)}
    try:
        sentence = qml.pauli.pauli_sentence(obs)
        items = [(dict(word), coeff) for word, coeff in sentence.items()]
    except (ValueError, TypeError):
        items = _matrix_pauli_items(obs)
    digits = np.zeros((len(items), n), dtype=np.uint8)
    coeffs = np.zeros(len(items))
    for row, (word, coeff) in enumerate(items):
        c = complex(math.unwrap(coeff))
        if abs(c.imag) > 1e-10:
            raise UnsupportedCircuitError(f"Observable {obs} is not Hermitian.")
        coeffs[row] = c.real
        for w, p in word.items():
            digits[row, position[w]] = PAULI_DIGITS[p]
    keep = coeffs != 0
    return PauliSum(digits[keep], coeffs[keep])


#: Observables given by a matrix are decomposed on at most this many wires.
MAX_OBSERVABLE_WIRES = 8


def _matrix_pauli_items(obs):
    wires = tuple(obs.wires)
    if len(wires) > MAX_OBSERVABLE_WIRES:
        raise UnsupportedCircuitError(
            f"Observable {obs.name} acts on {len(wires)} wires; matrix observables are "
            f"supported on at most {MAX_OBSERVABLE_WIRES} wires."
        )
    if not obs.has_matrix:
        raise UnsupportedCircuitError(f"Observable {obs} has no matrix representation.")
    mat = np.asarray(qml.matrix(obs, wire_order=wires), dtype=complex)
    coeffs = pauli_coefficients_of_matrix(mat) / 2 ** len(wires)
    items = []
    for flat in np.flatnonzero(np.abs(coeffs) > 1e-12):
        digits = np.unravel_index(flat, (4,) * len(wires))
        items.append(({w: "IXYZ"[d] for w, d in zip(wires, digits) if d}, coeffs.flat[flat]))
    return items


def pauli_coefficients_of_matrix(mat: np.ndarray) -> np.ndarray:
    """All ``Tr(P mat)`` for Pauli words ``P`` on ``k`` qubits, as a ``(4,)*k`` array.

    A per-qubit transform: O(k 4^k) after one transposition.
    """
    k = round(np.log2(mat.shape[0]))
    order = [ax for q in range(k) for ax in (q, k + q)]
    t = np.asarray(mat, dtype=complex).reshape((2,) * (2 * k)).transpose(order)
    t = t.reshape((4,) * k)
    # W[p, 2a + b] = P_p[b, a], so that sum_{ab} W[p, ab] M[a, b] = Tr(P_p M) per qubit.
    w = np.stack([p.T.reshape(4) for p in _PAULI_MATRICES])
    for q in range(k):
        t = np.moveaxis(np.tensordot(w, t, axes=([1], [q])), 0, q)
    return t


@cache
def pauli_product_table() -> tuple[np.ndarray, np.ndarray]:
    """``prod[p, q]`` and ``phase[p, q]`` with ``sigma_p sigma_q = phase * sigma_prod``."""
    prod = np.zeros((4, 4), dtype=np.int64)
    phase = np.zeros((4, 4), dtype=complex)
    for p in range(4):
        for q in range(4):
            m = _PAULI_MATRICES[p] @ _PAULI_MATRICES[q]
            for r in range(4):
                c = np.trace(_PAULI_MATRICES[r].conj().T @ m) / 2
                if abs(c) > 0.5:
                    prod[p, q], phase[p, q] = r, c
    return prod, phase


def pauli_sum_square(obs: PauliSum) -> PauliSum:
    """Pauli expansion of ``O**2`` for a :class:`PauliSum` ``O``."""
    prod, phase = pauli_product_table()
    n = obs.digits.shape[1]
    acc: dict[int, complex] = {}
    place = 4 ** np.arange(n - 1, -1, -1)
    for da, ca in zip(obs.digits, obs.coeffs):
        for db, cb in zip(obs.digits, obs.coeffs):
            key = int(prod[da, db] @ place)
            acc[key] = acc.get(key, 0.0) + ca * cb * np.prod(phase[da, db])
    keys = [k for k, v in acc.items() if abs(v) > 1e-14]
    digits = np.array([np.unravel_index(k, (4,) * n) for k in keys], dtype=np.uint8)
    return PauliSum(digits.reshape(len(keys), n), np.array([acc[k].real for k in keys]))


def probability_projectors(wires, wire_order: Wires) -> list[PauliSum]:
    """``|s><s|`` on ``wires`` for every outcome ``s`` (``wires[0]`` most significant)."""
    k = len(wires)
    out = []
    for s in range(2**k):
        obs = qml.prod(
            *[qml.Projector([int(b)], wires=w) for w, b in zip(wires, np.binary_repr(s, width=k))]
        )
        out.append(pauli_sum(obs, wire_order))
    return out


def output_observables(tape: QuantumScript, wire_order: Wires) -> list[PauliSum]:
    """One :class:`PauliSum` per scalar output: an ``expval``'s observable, or one projector per
    ``probs`` outcome (``wires[0]`` most significant), in measurement order."""
    out = []
    for m in tape.measurements:
        if isinstance(m, qml.measurements.ProbabilityMP):
            wires = m.wires if len(m.wires) else wire_order
            out += probability_projectors(wires, wire_order)
        elif isinstance(m, qml.measurements.ExpectationMP):
            out.append(pauli_sum(m.obs, wire_order))
        else:
            raise ValueError(f"Only expval and probs have per-output observables, got {m}.")
    return out
