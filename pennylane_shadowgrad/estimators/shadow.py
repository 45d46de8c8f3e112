"""The averaged classical shadow in the Pauli basis: ``x_P``, an unbiased estimate of ``<P>``.

Each basis ``b`` covers the ``2**n`` Pauli words that are, on every qubit, either ``I`` or
``b_q``; a Walsh-Hadamard transform of its outcome histogram gives all their parity sums at
once (``O(n 2^n)`` per basis, accumulated per basis, never per snapshot). A coefficient is the
mean parity over the shots whose basis covers it (the ratio estimator). For a random plan the
mean is ``<P> pi_w`` with ``pi_w = 1 - (1 - 3^-w)^B`` the probability that one of ``B`` bases
covers a weight-``w`` word, so dividing by ``pi_w`` makes it unbiased (DESIGN.md §3).
"""

from __future__ import annotations

import numpy as np

from ..snapshots import SnapshotPlan


def _walsh_hadamard(hist: np.ndarray) -> np.ndarray:
    """Fast Walsh-Hadamard transform along the last axis (length ``2**n``)."""
    out = np.array(hist, dtype=float)
    size = out.shape[-1]
    step = 1
    while step < size:
        view = out.reshape(out.shape[:-1] + (size // (2 * step), 2, step))
        a, b = view[..., 0, :].copy(), view[..., 1, :].copy()
        view[..., 0, :] = a + b
        view[..., 1, :] = a - b
        step *= 2
    return out


def _covered_indices(bases: np.ndarray) -> np.ndarray:
    """Flat Pauli index of the word covered by mask ``m`` for every basis: ``(B, 2**n)``."""
    n = bases.shape[1]
    masks = np.arange(2**n)
    # bit (n - 1 - q) of the mask selects qubit q, matching outcome integers (wire 0 = MSB)
    bits = (masks[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1  # (2^n, n)
    place = 4 ** np.arange(n - 1, -1, -1, dtype=np.int64)
    return (bits[None, :, :] * bases[:, None, :].astype(np.int64)) @ place


def pauli_weights(num_qubits: int) -> np.ndarray:
    """Weight (number of non-identity factors) of every Pauli word, as a ``(4,)*n`` array."""
    w = np.zeros((4,) * num_qubits, dtype=np.int64)
    for q in range(num_qubits):
        shape = [1] * num_qubits
        shape[q] = 4
        w = w + (np.arange(4) > 0).reshape(shape)
    return w


class ShadowSums:
    """Parity sums and covering-shot counts per Pauli word and replicate group.

    ``sums[k]`` and ``counts[k]`` are flat ``4**n`` arrays for group ``k``; ``num_bases[k]`` is
    the number of bases the group holds (used for the coverage correction of random plans).
    """

    def __init__(self, plan: SnapshotPlan, outcomes: list[np.ndarray]):
        n, groups = plan.num_qubits, plan.groups
        self.plan = plan
        self.sums = np.zeros((groups, 4**n))
        self.counts = np.zeros((groups, 4**n))
        self.num_bases = np.zeros(groups, dtype=np.int64)
        idx = _covered_indices(plan.bases)  # (B, 2^n)
        if plan.shot_groups:  # complete plan: every group holds every basis
            hist = np.zeros((groups, plan.num_bases, 2**n))
            for b, samples in enumerate(outcomes):
                np.add.at(hist, (np.arange(len(samples)) % groups, b, samples), 1.0)
            rows = [np.arange(plan.num_bases)] * groups
        else:  # random plan: each basis belongs to one group
            hist = np.stack([np.bincount(s, minlength=2**n) for s in outcomes])[None]
            member = plan.basis_groups()
            rows = [np.flatnonzero(member == k) for k in range(groups)]
        parity = _walsh_hadamard(hist)  # parity sums of every covered word
        shots_per = hist.sum(axis=2)
        for k in range(groups):
            layer = k if plan.shot_groups else 0
            sel = rows[k]
            self.sums[k] = np.bincount(
                idx[sel].ravel(), parity[layer, sel].ravel(), minlength=4**n
            )
            counts = np.repeat(shots_per[layer, sel], 2**n)
            self.counts[k] = np.bincount(idx[sel].ravel(), counts, minlength=4**n)
            self.num_bases[k] = np.count_nonzero(shots_per[layer, sel])
        self._weights = pauli_weights(n).ravel()

    def _estimate(self, sums, counts, num_bases) -> np.ndarray:
        x = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        if self.plan.random:
            x /= 1.0 - (1.0 - 3.0 ** (-self._weights)) ** num_bases
        return x.reshape((4,) * self.plan.num_qubits)

    def pooled(self) -> np.ndarray:
        """The estimate from all snapshots, shape ``(4,)*n``."""
        return self._estimate(self.sums.sum(0), self.counts.sum(0), self.num_bases.sum())

    def leave_one_out(self) -> np.ndarray:
        """The ``K`` estimates that each leave one group out: shape ``(K,) + (4,)*n``."""
        s, c, b = self.sums.sum(0), self.counts.sum(0), self.num_bases.sum()
        return np.stack(
            [
                self._estimate(s - self.sums[k], c - self.counts[k], b - self.num_bases[k])
                for k in range(self.plan.groups)
            ]
        )
