"""Sparse Pauli propagation: the gradient observables ``G_j`` as sparse Pauli sums, no 4**n arrays.

Each derivative is ``Tr(rho G_j)`` with ``G_j = (i/2)[Q_j, O]`` and ``Q_j`` the generator
``P_j`` of rotation ``j`` carried forward through the later gates
(``Q <- V Q V^dag``). A Pauli sum is held bit-packed: the X and Z bits of every word in
``uint64`` words (qubit ``q`` is bit ``q % 64`` of word ``q // 64``; ``Y`` has both bits), one
real coefficient per word. A Clifford gate maps a word to a word; a Pauli rotation splits an
anticommuting word in two (``cos``, ``sin``); a non-Clifford fixed gate maps a word through its
local Pauli transfer matrix. All generators travel together, tagged by their trainable
parameter (tied parameters share one sum, weighted by ``d angle / d parameter``), so every
gate is one vectorised step.

Only words that can reach the observable matter: a word whose support is disjoint from the
backward light cone of ``O`` at that point of the circuit commutes with ``O`` once carried to
the end, and is dropped (exactly). Components outside the light cone are exactly zero.

The Pauli estimates ``x_w`` of the needed words are computed directly from the snapshot bits
(per basis: the words it covers, the parities of their supports), grouped as
:class:`~.shadow.ShadowSums` groups them (shots of a complete plan, bases of a random plan),
with the same ratio estimator and the same coverage correction for random bases; pooled,
leave-one-group-out and per-group estimates come from the same per-group sums.

Optional truncation (a largest Pauli weight and/or a smallest coefficient) drops words of the
carried generators; the dropped coefficient mass ``m_j`` (summed in absolute value over every
drop) bounds each component's bias by ``m_j ||O||`` (``||O||`` bounded by the sum of ``|o|``):
``|Tr(rho (i/2)[D, O])| <= ||D|| ||O||`` and carrying ``D`` forward keeps its norm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..circuit import FixedGate, PauliRotation, PauliSum, RotationCircuit
from .dense import transfer_matrix

#: Words of all carried generators together above which propagation stops with an error
#: (about 40 bytes a word on up to 64 qubits, a few copies during a merge: ~0.5 GiB).
DEFAULT_MAX_WORDS = 4_000_000

#: Coefficients at most this large (absolute) after a merge are exact cancellations.
_ZERO = 1e-14


class PauliEngineLimitError(ValueError):
    """The sparse engine would hold more words than its cap; raised before any device time."""


# ---------------------------------------------------------------------------- bit-packed words


def num_blocks(n: int) -> int:
    """``uint64`` blocks per word on ``n`` qubits."""
    return max(1, (n + 63) // 64)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """``(L, n)`` 0/1 array -> ``(L, nb)`` ``uint64`` (qubit q at bit q % 64 of block q // 64)."""
    bits = np.asarray(bits, dtype=np.uint8)
    length, n = bits.shape
    nb = num_blocks(n)
    padded = np.zeros((length, nb * 64), dtype=np.uint8)
    padded[:, :n] = bits
    packed = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64).reshape(length, nb)


def _unpack_bits(packed: np.ndarray, n: int) -> np.ndarray:
    as_bytes = np.ascontiguousarray(packed.astype("<u8")).view(np.uint8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :n]


def pack_digits(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pauli digits ``(L, n)`` (I, X, Y, Z = 0..3) -> packed ``(x, z)`` bits."""
    d = np.asarray(digits, dtype=np.uint8)
    return _pack_bits((d == 1) | (d == 2)), _pack_bits((d == 2) | (d == 3))


def unpack_digits(x: np.ndarray, z: np.ndarray, n: int) -> np.ndarray:
    """Packed ``(x, z)`` -> digits ``(L, n)``."""
    xb, zb = _unpack_bits(x, n), _unpack_bits(z, n)
    return np.where(xb & zb, 2, np.where(xb, 1, np.where(zb, 3, 0))).astype(np.uint8)


def _popcount(a: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a).sum(axis=-1, dtype=np.int64)


def anticommutes(x1, z1, x2, z2) -> np.ndarray:
    """Whether the words anticommute (broadcast over leading axes)."""
    return (_popcount((x1 & z2) ^ (z1 & x2)) & 1).astype(bool)


def product_phase(x1, z1, x2, z2) -> np.ndarray:
    """``e`` (mod 4) with ``P1 P2 = i**e P3`` for Hermitian words ``P = i^(x.z) X^x Z^z``."""
    a1, a2 = _popcount(x1 & z1), _popcount(x2 & z2)
    a3 = _popcount((x1 ^ x2) & (z1 ^ z2))
    return (a1 + a2 + 2 * _popcount(z1 & x2) - a3) % 4


def weights(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Pauli weight of every word."""
    return _popcount(x | z)


def _merge(tag, x, z, c):
    """Sum the coefficients of equal ``(tag, word)`` rows; drop exact cancellations."""
    if len(c) == 0:
        return tag, x, z, c
    key = np.ascontiguousarray(np.concatenate([tag[:, None].astype(np.uint64), x, z], axis=1))
    view = key.view(np.dtype((np.void, key.dtype.itemsize * key.shape[1]))).ravel()
    _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    coeff = np.bincount(inverse.ravel(), weights=c, minlength=len(first))
    keep = np.abs(coeff) > _ZERO
    first = first[keep]
    return tag[first], x[first], z[first], coeff[keep]


def _wire_mask(wires, n: int) -> np.ndarray:
    bits = np.zeros((1, n), dtype=np.uint8)
    bits[0, list(wires)] = 1
    return _pack_bits(bits)[0]


# ---------------------------------------------------------------------------- propagation


@dataclass
class CarriedGenerators:
    """The generators ``Q_theta = sum_{gates of theta} scale_g U_{>g} P_g U_{>g}^dag`` at the end.

    Attributes:
        tag, x, z, coeffs: one row per (parameter, word) kept.
        dropped: ``(M,)`` absolute coefficient mass dropped by truncation per parameter.
        peak_words: the largest number of rows held during the propagation.
        num_qubits, num_params: sizes.
        shed: ``(M,)`` parameters whose generators were removed whole to stay within the word
            cap (only with ``shed=True``; their rows are absent, they are not zero).
    """

    tag: np.ndarray
    x: np.ndarray
    z: np.ndarray
    coeffs: np.ndarray
    dropped: np.ndarray
    peak_words: int
    num_qubits: int
    num_params: int
    shed: np.ndarray | None = None


def _backward_cones(circuit: RotationCircuit, support_mask: np.ndarray) -> list[np.ndarray]:
    """``cones[g]``: qubits (packed mask) that can influence ``O`` after gate ``g`` has acted."""
    n = circuit.num_qubits
    cones = [None] * len(circuit.gates)
    cone = support_mask.copy()
    for g in range(len(circuit.gates) - 1, -1, -1):
        cones[g] = cone.copy()
        mask = _wire_mask(circuit.gates[g].wires, n)
        if np.any(mask & cone):
            cone = cone | mask
    return cones


def _fixed_gate_table(gate: FixedGate):
    """Forward images of every local word: flat ``(images, coeffs)`` and per-word offsets."""
    t = transfer_matrix(gate.matrix)  # u p u^dag = sum_q t[p, q] q
    images, coeffs, counts = [], [], []
    for p in range(t.shape[0]):
        cols = np.flatnonzero(np.abs(t[p]) > 1e-12)
        images.append(cols)
        coeffs.append(t[p, cols])
        counts.append(len(cols))
    counts = np.array(counts)
    return np.concatenate(images), np.concatenate(coeffs), counts, np.cumsum(counts) - counts


def _apply_fixed(gate: FixedGate, tag, x, z, c):
    k = len(gate.wires)
    blocks = [w // 64 for w in gate.wires]
    shifts = [np.uint64(w % 64) for w in gate.wires]
    local = np.zeros(len(c), dtype=np.int64)
    for b, s in zip(blocks, shifts):
        xb = ((x[:, b] >> s) & np.uint64(1)).astype(np.int64)
        zb = ((z[:, b] >> s) & np.uint64(1)).astype(np.int64)
        digit = np.where(xb & zb, 2, np.where(xb, 1, np.where(zb, 3, 0)))
        local = local * 4 + digit
    images, tcoef, counts, starts = _fixed_gate_table(gate)
    per_row = counts[local]
    rows = np.repeat(np.arange(len(c)), per_row)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    pick = starts[local[rows]] + within
    new_local = images[pick]
    tag, x, z, c = tag[rows], x[rows].copy(), z[rows].copy(), c[rows] * tcoef[pick]
    for i, (b, s) in enumerate(zip(blocks, shifts)):
        digit = (new_local // 4 ** (k - 1 - i)) % 4
        xbit = ((digit == 1) | (digit == 2)).astype(np.uint64)
        zbit = ((digit == 2) | (digit == 3)).astype(np.uint64)
        clear = ~(np.uint64(1) << s)
        x[:, b] = (x[:, b] & clear) | (xbit << s)
        z[:, b] = (z[:, b] & clear) | (zbit << s)
    clifford = np.all(counts == 1)
    return tag, x, z, c, not clifford


def _apply_rotation(gate: PauliRotation, n: int, tag, x, z, c):
    digits = np.zeros((1, n), dtype=np.uint8)
    digits[0, list(gate.wires)] = gate.digits
    xr, zr = pack_digits(digits)
    anti = anticommutes(x, z, xr, zr)
    if not np.any(anti):
        return tag, x, z, c, False
    xa, za = x[anti], z[anti]
    # V q V^dag = cos(a) q - i sin(a) R q, and R q = i^e s with e odd: -i i^e = +1 (e=1), -1 (e=3)
    e = product_phase(xr, zr, xa, za)
    sign = np.where(e == 1, 1.0, -1.0)
    new_c = c.copy()
    new_c[anti] *= np.cos(gate.angle)
    tag = np.concatenate([tag, tag[anti]])
    x = np.concatenate([x, xa ^ xr])
    z = np.concatenate([z, za ^ zr])
    c = np.concatenate([new_c, c[anti] * np.sin(gate.angle) * sign])
    return tag, x, z, c, True


def carry_generators(
    circuit: RotationCircuit,
    support_mask: np.ndarray,
    max_weight: int | None = None,
    min_coefficient: float = 0.0,
    max_words: int = DEFAULT_MAX_WORDS,
    shed: bool = False,
) -> CarriedGenerators:
    """Carry every trainable generator forward to the end of the circuit.

    ``support_mask`` (packed) is the support of the observables: words that cannot reach it
    are dropped exactly. ``max_weight``/``min_coefficient`` truncate (the dropped mass is
    returned per parameter). ``shed=True`` (the default strategy's planning): above
    ``max_words`` the parameters holding the most words are removed whole, largest first,
    until at most half the cap is held, and marked in ``shed``; the others stay exact.

    Raises:
        PauliEngineLimitError: more than ``max_words`` words at some point (``shed=False``).
    """
    n, m = circuit.num_qubits, circuit.num_params
    nb = num_blocks(n)
    cones = _backward_cones(circuit, support_mask)
    tag = np.zeros(0, dtype=np.int64)
    x = np.zeros((0, nb), dtype=np.uint64)
    z = np.zeros((0, nb), dtype=np.uint64)
    c = np.zeros(0)
    dropped = np.zeros(m)
    shed_mask = np.zeros(m, dtype=bool)
    peak = 0
    for g, gate in enumerate(circuit.gates):
        if len(c):
            if isinstance(gate, PauliRotation):
                tag, x, z, c, split = _apply_rotation(gate, n, tag, x, z, c)
            else:
                tag, x, z, c, split = _apply_fixed(gate, tag, x, z, c)
            if split:
                tag, x, z, c = _merge(tag, x, z, c)
        if isinstance(gate, PauliRotation) and gate.param is not None and not shed_mask[gate.param]:
            digits = np.zeros((1, n), dtype=np.uint8)
            digits[0, list(gate.wires)] = gate.digits
            px, pz = pack_digits(digits)
            tag = np.concatenate([tag, [gate.param]])
            x, z = np.concatenate([x, px]), np.concatenate([z, pz])
            c = np.concatenate([c, [gate.scale]])
            tag, x, z, c = _merge(tag, x, z, c)
        # exact light-cone pruning, then optional truncation
        live = np.any((x | z) & cones[g], axis=1)
        drop = ~live
        trunc = np.zeros_like(drop)
        if max_weight is not None:
            trunc |= weights(x, z) > max_weight
        if min_coefficient > 0:
            trunc |= np.abs(c) < min_coefficient
        trunc &= live
        if np.any(trunc):
            dropped += np.bincount(tag[trunc], np.abs(c[trunc]), minlength=m)
        if np.any(drop | trunc):
            keep = ~(drop | trunc)
            tag, x, z, c = tag[keep], x[keep], z[keep], c[keep]
        peak = max(peak, len(c))
        if len(c) > max_words and shed:
            tag, x, z, c = shed_largest(tag, x, z, c, max_words // 2, shed_mask)
        elif len(c) > max_words:
            raise PauliEngineLimitError(_limit_message(circuit, g, x, z, max_words))
    return CarriedGenerators(tag, x, z, c, dropped, peak, n, m, shed_mask if shed else None)


def shed_largest(tag, x, z, c, target: int, shed_mask: np.ndarray, *more):
    """Remove whole parameters (``tag`` values), most rows first, until at most ``target`` rows
    remain; mark them in ``shed_mask`` (in place). ``more``: further per-row arrays to filter."""
    counts = np.bincount(tag, minlength=len(shed_mask))
    order = np.argsort(-counts, kind="stable")
    remaining = np.cumsum(counts[order][::-1])[::-1]  # rows left before removing order[i]
    cut = int(np.sum(remaining > target))
    gone = order[:cut]
    shed_mask[gone] = True
    keep = ~np.isin(tag, gone)
    return (tag[keep], x[keep], z[keep], c[keep], *(a[keep] for a in more))


def _limit_message(circuit, g, x, z, max_words) -> str:
    w = weights(x, z)
    counts = np.bincount(w)
    cumulative = np.cumsum(counts)
    fit = np.flatnonzero(cumulative <= max_words // 2)
    hint = (
        f"truncation={{'max_weight': {int(fit[-1])}}} would keep {int(cumulative[fit[-1]])} of "
        f"them at this gate (words still grow after it; the record then reports the bias "
        "bound it costs)"
        if len(fit)
        else "no weight truncation fits; use truncation={'min_coefficient': ...}"
    )
    return (
        f"The sparse Pauli engine would hold {len(w)} words (carried generators of "
        f"{circuit.num_params} parameters on {circuit.num_qubits} qubits) after gate "
        f"{g + 1} of {len(circuit.gates)}, above its cap max_words={max_words} (about "
        f"{max_words * _bytes_per_word(circuit.num_qubits) / 2**30:.2f} GiB with merge copies). "
        f"Words by Pauli weight: {dict(enumerate(counts.tolist()))}. {hint}; or raise "
        "gradient_kwargs['max_words'] if the machine has the memory. Nothing was run."
    )


def _bytes_per_word(n: int) -> int:
    return 4 * (8 + 16 * num_blocks(n) + 8)


# ---------------------------------------------------------------------------- gradient observables


def packed_sum(ps: PauliSum) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A :class:`PauliSum` as packed ``(x, z, coeffs)``."""
    x, z = pack_digits(ps.digits)
    return x, z, np.asarray(ps.coeffs, dtype=float)


def square(ps: PauliSum) -> PauliSum:
    """``O**2`` of a :class:`PauliSum` without 4**n keys (any number of qubits)."""
    n = ps.digits.shape[1]
    x, z, c = packed_sum(ps)
    i, j = np.meshgrid(np.arange(len(c)), np.arange(len(c)), indexing="ij")
    i, j = i.ravel(), j.ravel()
    e = product_phase(x[i], z[i], x[j], z[j])
    # anticommuting pairs cancel in the symmetric sum; commuting ones have e in {0, 2}
    real = np.where(e == 0, 1.0, np.where(e == 2, -1.0, 0.0))
    _, xs, zs, cs = _merge(
        np.zeros(len(i), dtype=np.int64), x[i] ^ x[j], z[i] ^ z[j], c[i] * c[j] * real
    )
    return PauliSum(unpack_digits(xs, zs, n), cs)


@dataclass
class SparseGradientModel:
    """Every output's ``G_theta`` and observable on one table of needed words.

    Attributes:
        words_x, words_z: ``(U, nb)`` the needed words (all ``G`` words and observable words).
        gradient: per observable, a CSR ``(M, U)`` matrix: row ``theta`` holds ``G_theta``.
        observable: per observable, a CSR ``(1, U)`` matrix: ``O`` itself.
        bias_bound: per observable, ``(M,)`` bounds on the truncation bias.
        carried_words: words of the carried generators at the end (all parameters).
        peak_words: largest number of carried words during the propagation.
        shed: ``(M,)`` parameters removed whole to stay within the word cap (``None`` unless
            built with ``shed=True``): their ``G_theta`` rows are zero but unknown.
    """

    num_qubits: int
    words_x: np.ndarray
    words_z: np.ndarray
    gradient: list
    observable: list
    bias_bound: list
    carried_words: int
    peak_words: int
    notes: list = field(default_factory=list)
    shed: np.ndarray | None = None

    @property
    def num_words(self) -> int:
        return len(self.words_x)

    def gradient_values(self, k: int, xhat: np.ndarray) -> np.ndarray:
        """``(batch, M)`` values ``Tr(X G_theta)`` of observable ``k`` for estimates ``xhat``."""
        return np.asarray(self.gradient[k] @ xhat.T).T

    def expectation(self, k: int, xhat: np.ndarray) -> np.ndarray:
        """``(batch,)`` values ``Tr(X O_k)``."""
        return np.asarray(self.observable[k] @ xhat.T).T[:, 0]


def build_model(
    circuit: RotationCircuit,
    observables: list[PauliSum],
    max_weight: int | None = None,
    min_coefficient: float = 0.0,
    max_words: int = DEFAULT_MAX_WORDS,
    shed: bool = False,
) -> SparseGradientModel:
    """Carry the generators once and form ``G_theta = (i/2)[Q_theta, O]`` for every observable.

    ``shed=True``: parameters whose generators or ``G_theta`` would exceed ``max_words`` are
    removed whole instead of refusing (see :func:`carry_generators`); ``shed`` marks them and
    their rows are zero (unknown, not zero: the default strategy plans them as
    parameter-shift).
    """
    n, m = circuit.num_qubits, circuit.num_params
    nb = num_blocks(n)
    support = np.zeros(nb, dtype=np.uint64)
    packed = []
    for ps in observables:
        ox, oz, oc = packed_sum(ps)
        packed.append((ox, oz, oc))
        if len(oc):
            support |= np.bitwise_or.reduce(ox | oz, axis=0)
    carried = carry_generators(circuit, support, max_weight, min_coefficient, max_words, shed)
    shed_mask = carried.shed if shed else np.zeros(m, dtype=bool)
    parts = []  # per observable: G's (tag, x, z, c) and O's (x, z, c)
    entries = 0
    for ox, oz, oc in packed:
        acc = (
            np.zeros(0, np.int64),
            np.zeros((0, nb), np.uint64),
            np.zeros((0, nb), np.uint64),
            np.zeros(0),
        )
        pending, size = [], 0
        for o in range(len(oc)):
            anti = anticommutes(carried.x, carried.z, ox[o], oz[o]) & ~shed_mask[carried.tag]
            if not np.any(anti):
                continue
            qx, qz = carried.x[anti], carried.z[anti]
            # (i/2)[q, o] = i q o = i i^e r: -1 for e = 1, +1 for e = 3
            e = product_phase(qx, qz, ox[o], oz[o])
            sign = np.where(e == 1, -1.0, 1.0)
            pending.append(
                (carried.tag[anti], qx ^ ox[o], qz ^ oz[o], carried.coeffs[anti] * oc[o] * sign)
            )
            size += len(qx)
            if size > max_words or o == len(oc) - 1:  # merge as we go: memory stays bounded
                acc = _merge(
                    *(np.concatenate([a, *[p[i] for p in pending]]) for i, a in enumerate(acc))
                )
                pending, size = [], 0
                if entries + len(acc[3]) > max_words and shed:
                    target = max(max_words // 2 - entries, 0)
                    acc = shed_largest(*acc, target, shed_mask)
                elif entries + len(acc[3]) > max_words:
                    raise PauliEngineLimitError(
                        f"The gradient observables G_j of {m} parameters on {n} qubits need more "
                        f"than {max_words} (parameter, Pauli word) entries ({carried.peak_words} "
                        f"carried words at the peak), above the cap max_words={max_words}. "
                        "Truncate the carried generators (truncation={'max_weight': ...} or "
                        "{'min_coefficient': ...}; the record reports the bias bound it costs) "
                        "or raise gradient_kwargs['max_words'] if the machine has the memory. "
                        "Nothing was run."
                    )
        if pending:
            acc = _merge(
                *(np.concatenate([a, *[p[i] for p in pending]]) for i, a in enumerate(acc))
            )
        entries += len(acc[3])
        parts.append((*acc, ox, oz, oc))
    all_x = np.concatenate([p[1] for p in parts] + [p[4] for p in parts])
    all_z = np.concatenate([p[2] for p in parts] + [p[5] for p in parts])
    key = np.ascontiguousarray(np.concatenate([all_x, all_z], axis=1))
    view = key.view(np.dtype((np.void, 8 * key.shape[1]))).ravel()
    _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    u = len(first)
    if u > max_words:
        raise PauliEngineLimitError(
            f"The gradient observables G_j of {m} parameters on {n} qubits need {u} distinct "
            f"Pauli words estimated from the snapshots ({carried.peak_words} carried words at "
            f"the peak), above the cap max_words={max_words}. Truncate the carried generators "
            "(truncation={'max_weight': ...} or {'min_coefficient': ...}; the record reports "
            "the bias bound it costs) or raise gradient_kwargs['max_words'] if the machine has "
            "the memory (about 400 bytes a word with 20 groups). Nothing was run."
        )
    gradient, observable, bias = [], [], []
    offset = 0
    for t, _x, _z, c, *_ in parts:
        idx = inverse[offset : offset + len(c)]
        offset += len(c)
        c = np.where(shed_mask[t], 0.0, c)  # shed after an earlier observable formed its rows
        gradient.append(sp.csr_matrix((c, (t, idx)), shape=(m, u)))
    for *_, oc in parts:
        idx = inverse[offset : offset + len(oc)]
        offset += len(oc)
        observable.append(sp.csr_matrix((oc, (np.zeros(len(oc), int), idx)), shape=(1, u)))
        bias.append(carried.dropped * float(np.sum(np.abs(oc))))
    return SparseGradientModel(
        n,
        all_x[first],
        all_z[first],
        gradient,
        observable,
        bias,
        len(carried.coeffs),
        carried.peak_words,
        shed=shed_mask if shed else None,
    )


# ---------------------------------------------------------------------------- snapshot estimates


def decode_bits(results, plan) -> list[np.ndarray]:
    """Per-basis outcome bits, packed ``(shots_b, nb)`` ``uint64`` (qubit q at bit q % 64)."""
    from ..snapshots import refuse_traced_results

    refuse_traced_results(results)
    out = [None] * plan.num_bases
    for res, count in zip(results, np.unique(plan.shots)):
        rows = np.flatnonzero(plan.shots == count)
        samples = np.asarray(res).reshape(len(rows), int(count), plan.num_qubits)
        for i, b in enumerate(rows):
            out[b] = _pack_bits(samples[i].astype(np.uint8))
    return out


#: Parity blocks are formed for at most this many (shot, word) pairs at a time.
_PARITY_CHUNK = 2**22


class SparseShadowSums:
    """Per-group parity sums and covering-shot counts of the needed words, from snapshot bits.

    Groups as in :class:`~.shadow.ShadowSums`: a complete plan's shot ``i`` of every basis
    belongs to group ``i % K``; a random plan's basis ``b`` to group ``b % K``. Estimates are
    the ratio estimator, divided for random plans by the coverage probability
    ``1 - (1 - pi_w)^B`` over the ``B`` bases that hold shots.
    """

    def __init__(self, plan, bits: list[np.ndarray], words_x: np.ndarray, words_z: np.ndarray):
        n = plan.num_qubits
        k = plan.groups
        u = len(words_x)
        self.plan = plan
        bx, bz = pack_digits(plan.bases)
        supp = words_x | words_z
        self.sums = np.zeros((k, u))
        self.counts = np.zeros((k, u))
        self.bases = np.zeros(k)  # bases holding shots, per group (random plans)
        basis_group = plan.basis_groups()
        for b in range(plan.num_bases):
            s = bits[b]
            shots = len(s)
            if shots == 0:
                continue
            covered = ~np.any(((words_x ^ bx[b]) | (words_z ^ bz[b])) & supp, axis=1)
            cw = np.flatnonzero(covered)
            if plan.shot_groups:
                group = np.arange(shots) % k
                onehot = np.zeros((k, shots))
                onehot[group, np.arange(shots)] = 1.0
                per_group = onehot.sum(axis=1)
            else:
                g = basis_group[b]
                self.bases[g] += 1
            if len(cw) == 0:
                continue
            step = max(1, _PARITY_CHUNK // shots)
            for lo in range(0, len(cw), step):
                idx = cw[lo : lo + step]
                odd = _popcount(s[:, None, :] & supp[None, idx, :]) & 1
                signs = 1.0 - 2.0 * odd  # (shots, words)
                if plan.shot_groups:
                    self.sums[:, idx] += onehot @ signs
                    self.counts[:, idx] += per_group[:, None]
                else:
                    self.sums[g, idx] += signs.sum(axis=0)
                    self.counts[g, idx] += shots
        self._single = self._single_coverage(words_x, words_z, n) if plan.random else None

    def _single_coverage(self, wx, wz, n):
        beta = getattr(self.plan, "beta", None)
        if beta is None:
            return 3.0 ** (-weights(wx, wz).astype(float))
        digits = unpack_digits(wx, wz, n).astype(int)
        table = np.concatenate([np.ones((n, 1)), np.asarray(beta)], axis=1)  # (n, 4)
        return np.prod(table[np.arange(n)[None, :], digits], axis=1)

    def _estimate(self, sums, counts, num_bases):
        x = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        if self.plan.random:
            cover = 1.0 - (1.0 - self._single) ** num_bases
            x = np.divide(x, cover, out=np.zeros_like(x), where=cover > 0)
        return x

    def pooled(self) -> np.ndarray:
        """``(U,)`` estimates from every snapshot."""
        return self._estimate(self.sums.sum(0), self.counts.sum(0), self.bases.sum())

    def leave_one_out(self) -> np.ndarray:
        """``(K, U)`` estimates leaving out each group (NaN for a single group)."""
        k = self.plan.groups
        if k < 2:
            return np.full((k, self.sums.shape[1]), np.nan)
        s, c, b = self.sums.sum(0), self.counts.sum(0), self.bases.sum()
        return np.stack(
            [
                self._estimate(s - self.sums[g], c - self.counts[g], b - self.bases[g])
                for g in range(k)
            ]
        )

    def group_estimates(self) -> np.ndarray:
        """``(K, U)`` estimates of each group on its own."""
        return np.stack(
            [
                self._estimate(self.sums[g], self.counts[g], self.bases[g])
                for g in range(self.plan.groups)
            ]
        )


# ---------------------------------------------------------------------------- the tape's Jacobian


@dataclass
class TapeModel:
    """A :class:`SparseGradientModel` with the observables of every measurement of a tape.

    ``layout[m]`` lists the model's observable indices used by measurement ``m``: the
    projectors of a ``probs``; ``[O]`` of an ``expval`` (then ``terms`` maps a trainable
    observable coefficient to ``(measurement, index of its dO/dc)``); ``[O, O**2]`` of a ``var``.
    """

    model: SparseGradientModel
    layout: list
    terms: dict


def tape_model(
    tape,
    circuit: RotationCircuit,
    terms: dict,
    max_weight: int | None = None,
    min_coefficient: float = 0.0,
    max_words: int = DEFAULT_MAX_WORDS,
    shed: bool = False,
) -> TapeModel:
    """Build the sparse model of every measurement of ``tape`` (before any device time).

    ``shed``: see :func:`build_model` (the default strategy's planning model)."""
    from pennylane.measurements import ExpectationMP, ProbabilityMP

    from ..circuit import pauli_sum, probability_projectors

    wire_order = circuit.wire_order
    observables, layout, term_index = [], [], {}
    for m in tape.measurements:
        start = len(observables)
        if isinstance(m, ProbabilityMP):
            observables += probability_projectors(m.wires or wire_order, wire_order)
        elif isinstance(m, ExpectationMP):
            observables.append(pauli_sum(m.obs, wire_order))
        else:
            ps = pauli_sum(m.obs, wire_order)
            observables += [ps, square(ps)]
        layout.append(list(range(start, len(observables))))
    for k, (m_idx, term) in terms.items():
        term_index[k] = (m_idx, len(observables))
        observables.append(pauli_sum(term, wire_order))
    model = build_model(circuit, observables, max_weight, min_coefficient, max_words, shed)
    return TapeModel(model, layout, term_index)


#: A truncation is reported as dominating the error bar when a component's bias bound exceeds
#: this fraction of its standard error.
BIAS_FRACTION = 0.1


def truncation_bias_message(bounds, stderrs) -> str | None:
    """``None`` when every component's bias bound is at most ``BIAS_FRACTION`` of its standard
    error (or there is no bias); else a message naming how many exceed it and the largest
    ratio. ``bounds``/``stderrs``: per measurement, same shapes; unknown errors are skipped."""
    over, largest = 0, 0.0
    for bound, err in zip(bounds, stderrs):
        if err is None:
            continue
        bound, err = np.asarray(bound, dtype=float), np.asarray(err, dtype=float)
        live = bound > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(live, bound / err, 0.0)
        ratio = np.where(np.isnan(ratio), 0.0, ratio)
        over += int(np.sum(ratio > BIAS_FRACTION))
        largest = max(largest, float(np.max(ratio)) if ratio.size else 0.0)
    if over == 0:
        return None
    return (
        f"the truncation's bias bound exceeds {BIAS_FRACTION:g} of the standard error on {over} "
        f"components (largest bias bound / standard error: {largest:.3g}): the error bars do "
        "not cover the truncation bias. Tighten the truncation (a larger max_weight, a smaller "
        "min_coefficient), or raise max_words and drop it."
    )


def pauli_jacobian(tape, tm: TapeModel, plan, bits, want_errors: bool):
    """Jacobian (and jackknife errors) of every measurement, as :func:`~.jacobian.shadow_jacobian`.

    Returns ``(jacobians, stderrs, bias_bounds)``, one entry per measurement.
    """
    from pennylane.measurements import ExpectationMP, ProbabilityMP

    from .jacobian import jackknife_se
    from .shadow import pair_product

    model = tm.model
    sums = SparseShadowSums(plan, bits, model.words_x, model.words_z)
    x = sums.pooled()[None]
    if want_errors:
        x = np.concatenate([x, sums.leave_one_out()])
    jacs, errs, bounds = [], [], []
    for m_idx, m in enumerate(tape.measurements):
        idx = tm.layout[m_idx]
        if isinstance(m, ProbabilityMP):
            rows = np.stack([model.gradient_values(k, x) for k in idx], axis=-1)
            bound = np.stack([model.bias_bound[k] for k in idx], axis=-1)
        elif isinstance(m, ExpectationMP):
            rows = model.gradient_values(idx[0], x)
            bound = model.bias_bound[idx[0]].copy()
            for k, (mi, oi) in tm.terms.items():
                if mi == m_idx:
                    rows[:, k] = model.expectation(oi, x)
                    bound[k] = 0.0
        else:  # variance: d<O^2> - 2 <O> d<O>, the product unbiased over pairs of groups
            groups_x = sums.group_estimates()
            d_sq = model.gradient_values(idx[1], x)
            d_o = model.gradient_values(idx[0], x)
            mean = model.expectation(idx[0], x)[:, None]
            product = pair_product(
                model.expectation(idx[0], groups_x)[:, None],
                model.gradient_values(idx[0], groups_x),
            )
            full = d_sq[0] - 2 * product
            loo = d_sq[1:] - 2 * mean[1:] * d_o[1:]
            rows = np.concatenate([full[None], loo])
            norm = float(np.sum(np.abs(model.observable[idx[0]].data)))
            bound = model.bias_bound[idx[1]] + 2 * norm * model.bias_bound[idx[0]]
        jacs.append(rows[0])
        errs.append(jackknife_se(rows[1:]) if want_errors else None)
        bounds.append(bound)
    return jacs, errs, bounds
