"""Dense Pauli-basis evaluation of ``X -> (Tr(X G_j))_j`` by one backward sweep (docs/math.md).

An operator ``A`` on ``n`` qubits is held as its Pauli coefficients ``a_P = Tr(P A)`` in an
array of shape ``(batch, 4, ..., 4)`` (digits ``I, X, Y, Z = 0, 1, 2, 3``, one axis per qubit
position). For a state estimate ``X`` and observable ``O``, ``H = i[O, X]`` is formed once and
carried backwards through the circuit (``H <- U^dag H U``); the derivative with respect to the
angle of ``exp(-i phi P_j / 2)`` is ``Tr(P_j H_j) / 2``, a single coefficient. Time
``O(M 4^n)`` per batch entry, memory ``O(4^n)``. The two Heisenberg steps,
:func:`heisenberg_rotation` and :func:`heisenberg_fixed`, are also what the generator carry
(:mod:`.light_cone`) and the multi-copy hypothesis use.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..circuit import (
    FixedGate,
    PauliRotation,
    PauliSum,
    RotationCircuit,
    pauli_coefficients_of_matrix,
    pauli_product_table,
)

#: Bytes per Pauli coefficient (float64).
_BYTES = 8


def sweep_memory_bytes(num_qubits: int, batch: int) -> int:
    """Estimated peak memory of a sweep: the batch array, a gather copy and one temporary."""
    return 3 * batch * 4**num_qubits * _BYTES


@lru_cache(maxsize=4096)
def _product_action(digits: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a local word ``P``: ``perm[r] = P*r``, ``anti[r]`` and ``sign[r] = Re(i phase(P, P*r))``.

    ``P * Q = phase * R``; for anticommuting ``P, Q`` the phase is ``+-i`` and ``i P Q = sign R``.
    """
    prod, phase = pauli_product_table()
    k = len(digits)
    local = np.indices((4,) * k).reshape(k, -1).T  # all local words r
    perm_digits = prod[np.asarray(digits)[None, :], local]  # P * r, digit-wise
    ph = np.prod(phase[np.asarray(digits)[None, :], perm_digits], axis=1)  # phase(P, P*r)
    anti = np.abs(ph.imag) > 0.5
    sign = np.where(anti, np.real(1j * ph), 0.0)
    perm = np.ravel_multi_index(perm_digits.T, (4,) * k)
    return perm, anti, sign


#: Gates on more qubits than this use a gather over the flattened local index instead of
#: per-word slicing (4^k slices).
_SLICE_MAX_WIRES = 3

#: Arrays of at most this many coefficients take the vectorised (gather / tensordot) path even
#: for few wires: fewer numpy calls beat the in-place slices when the arrays are small.
_SMALL = 2**16


def _view(h: np.ndarray, wires: tuple[int, ...], local: int) -> tuple:
    """Basic index selecting local word ``local`` (flat over ``wires``) in a batched array."""
    idx = [slice(None)] * h.ndim
    for w, d in zip(wires, np.unravel_index(local, (4,) * len(wires))):
        idx[1 + w] = int(d)
    return tuple(idx)


def _gather(h: np.ndarray, axes: tuple[int, ...], perm: np.ndarray):
    """``h`` with its local index on ``axes`` permuted by ``perm`` (a copy, local axes last)."""
    k = len(axes)
    moved = np.moveaxis(h, axes, tuple(range(h.ndim - k, h.ndim)))
    flat = moved.reshape(moved.shape[: h.ndim - k] + (4**k,))
    return flat[..., perm], moved.shape


def _scratch(work: dict | None, key, like: np.ndarray) -> np.ndarray:
    """A reusable buffer shaped like ``like`` (fresh when no workspace is given)."""
    if work is None:
        return np.empty_like(like)
    buf = work.get(key)
    if buf is None or buf.shape != like.shape:
        buf = work[key] = np.empty_like(like)
    return buf


def heisenberg_rotation(h: np.ndarray, gate: PauliRotation, work: dict | None = None) -> np.ndarray:
    """Heisenberg step ``H <- R^dag H R`` for ``R = exp(-i phi P / 2)`` (in place when small).

    Anticommuting local words come in pairs ``(r, P r)`` that rotate into each other; each pair
    is updated in place with two reusable buffers.
    """
    perm, anti, sign = _product_action(gate.digits)
    cos, sin = np.cos(gate.angle), np.sin(gate.angle)
    k = len(gate.wires)
    if k <= _SLICE_MAX_WIRES and h.size > _SMALL:
        for r in np.flatnonzero(anti):
            partner = int(perm[r])
            if partner < r:
                continue  # handled with its pair
            a, b = h[_view(h, gate.wires, int(r))], h[_view(h, gate.wires, partner)]
            old_a = _scratch(work, "a", a)
            np.copyto(old_a, a)
            prod = _scratch(work, "b", a)
            a *= cos
            a += np.multiply(b, sin * sign[r], out=prod)
            b *= cos
            b += np.multiply(old_a, sin * sign[partner], out=prod)
        return h
    axes = tuple(1 + w for w in gate.wires)
    partner, shape = _gather(h, axes, perm)
    moved = np.moveaxis(h, axes, tuple(range(h.ndim - k, h.ndim))).reshape(partner.shape)
    out = moved * np.where(anti, cos, 1.0) + partner * (sin * sign)
    return np.moveaxis(out.reshape(shape), tuple(range(h.ndim - k, h.ndim)), axes)


@lru_cache(maxsize=1024)
def _transfer_matrix_cached(key: bytes, k: int) -> np.ndarray:
    u = np.frombuffer(key, dtype=complex).reshape(2**k, 2**k)
    rows = []
    for p in np.indices((4,) * k).reshape(k, -1).T:
        pm = np.ones((1, 1), dtype=complex)
        for d in p:
            pm = np.kron(pm, _PAULIS[d])
        rows.append(pauli_coefficients_of_matrix(u @ pm @ u.conj().T).real.reshape(-1) / 2**k)
    return np.array(rows)


_PAULIS = (
    np.eye(2, dtype=complex),
    np.array([[0, 1], [1, 0]], dtype=complex),
    np.array([[0, -1j], [1j, 0]]),
    np.array([[1, 0], [0, -1]], dtype=complex),
)


def transfer_matrix(matrix: np.ndarray) -> np.ndarray:
    """Heisenberg Pauli transfer matrix ``T[p, q] = Tr(u p u^dag q) / 2^k`` of a k-qubit gate."""
    k = round(np.log2(matrix.shape[0]))
    return _transfer_matrix_cached(np.ascontiguousarray(matrix, dtype=complex).tobytes(), k)


def heisenberg_fixed(h: np.ndarray, gate: FixedGate, out: np.ndarray | None = None) -> np.ndarray:
    """Heisenberg step ``H <- U^dag H U`` for a fixed gate, via its transfer matrix.

    The result is written to ``out`` (a buffer distinct from ``h``) when given.
    """
    k = len(gate.wires)
    t = transfer_matrix(gate.matrix)
    if k <= _SLICE_MAX_WIRES and h.size > _SMALL:
        out = np.empty_like(h) if out is None else out
        for r in range(4**k):
            cols = np.flatnonzero(np.abs(t[r]) > 1e-12)
            target = out[_view(h, gate.wires, r)]
            if len(cols) == 0:
                target[...] = 0.0
                continue
            np.multiply(h[_view(h, gate.wires, int(cols[0]))], t[r, cols[0]], out=target)
            for q in cols[1:]:
                target += t[r, q] * h[_view(h, gate.wires, int(q))]
        return out
    axes = [1 + w for w in gate.wires]
    out = np.tensordot(t.reshape((4,) * (2 * k)), h, axes=(list(range(k, 2 * k)), axes))
    # tensordot puts the gate's output axes first
    return np.moveaxis(out, tuple(range(k)), tuple(axes))


def commutator_coefficients(obs: PauliSum, x: np.ndarray) -> np.ndarray:
    """Pauli coefficients of ``H = i [O, X]`` from those of ``X`` (``x``, batched)."""
    h = np.zeros_like(x)
    n = x.ndim - 1
    for digits, coeff in zip(obs.digits, obs.coeffs):
        support = tuple(int(q) for q in np.flatnonzero(digits))
        if not support:
            continue
        perm, anti, sign = _product_action(tuple(int(digits[q]) for q in support))
        # i[A, X] has coefficient on R: i Tr([R, A] X) = Re(2 i omega) x_{R A}, R A = omega S.
        # With sign[r] = Re(i phase(A, A r)) this coefficient is 2 sign[r] (phases are +-i).
        if len(support) <= _SLICE_MAX_WIRES:
            for r in np.flatnonzero(anti):
                h[_view(h, support, int(r))] += (2.0 * coeff * sign[r]) * x[
                    _view(x, support, int(perm[r]))
                ]
            continue
        axes = tuple(1 + q for q in support)
        partner, shape = _gather(x, axes, perm)
        term = (partner * (2.0 * coeff * sign)).reshape(shape)
        h += np.moveaxis(term, tuple(range(n + 1 - len(axes), n + 1)), axes)
    return h


def expectation(obs: PauliSum, x: np.ndarray) -> np.ndarray:
    """``Tr(O X)`` for every batch entry of ``x`` (``X`` normalised so that ``x_I = 1``)."""
    flat = x.reshape(x.shape[0], -1)
    idx = np.ravel_multi_index(obs.digits.T.astype(np.int64), (4,) * (x.ndim - 1))
    return flat[:, idx] @ obs.coeffs


#: The sweep processes batch entries in chunks of about this many bytes, so that a large
#: batch (error-bar groups at 10+ qubits) does not thrash memory.
_CHUNK_BYTES = 8 * 2**20


def sweep(circuit: RotationCircuit, h: np.ndarray) -> np.ndarray:
    """``(Tr(P_j H_j)/2 * scale_j)`` summed per trainable parameter: shape ``(batch, M)``.

    ``h`` holds the Pauli coefficients of ``H = i[O, X]`` at the end of the circuit. The
    returned row ``b`` is ``d Tr(O X_b) / d theta`` along the circuit for the estimate ``X_b``.
    """
    per_entry = 4**circuit.num_qubits * _BYTES
    chunk = max(1, _CHUNK_BYTES // per_entry)
    return np.concatenate(
        [_sweep_chunk(circuit, h[i : i + chunk]) for i in range(0, h.shape[0], chunk)]
    )


def _sweep_chunk(circuit: RotationCircuit, h: np.ndarray) -> np.ndarray:
    n = circuit.num_qubits
    out = np.zeros((h.shape[0], circuit.num_params))
    h = np.array(h, dtype=float, copy=True)  # the sweep works in place
    spare = np.empty_like(h)  # ping-pong buffer for fixed gates
    work: dict = {}
    for gate in reversed(circuit.gates):
        if isinstance(gate, PauliRotation):
            if gate.param is not None:
                idx = [slice(None)] + [0] * n
                for w, d in zip(gate.wires, gate.digits):
                    idx[1 + w] = d
                out[:, gate.param] += 0.5 * gate.scale * h[tuple(idx)]
            h = heisenberg_rotation(h, gate, work)
        elif len(gate.wires) <= _SLICE_MAX_WIRES:
            h, spare = heisenberg_fixed(h, gate, out=spare), h
        else:
            h = heisenberg_fixed(h, gate)
    return out


def gradient_functional(circuit: RotationCircuit, obs: PauliSum, x: np.ndarray) -> np.ndarray:
    """The evaluator ``X -> (Tr(X G_j))_j`` (docs/math.md): shape ``(batch, M)``."""
    return sweep(circuit, commutator_coefficients(obs, x))
