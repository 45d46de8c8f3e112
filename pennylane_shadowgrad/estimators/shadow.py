"""The averaged classical shadow in the Pauli basis: ``x_P``, an unbiased estimate of ``<P>``.

Each basis ``b`` covers the ``2**n`` Pauli words that are, on every qubit, either ``I`` or
``b_q``; a Walsh-Hadamard transform of its outcome histogram gives all their parity sums at
once (``O(n 2^n)`` per basis, accumulated per basis, never per snapshot). A coefficient is the
mean parity over the shots whose basis covers it (the ratio estimator). For a random plan the
mean is ``<P> pi_w`` with ``pi_w = 1 - (1 - 3^-w)^B`` the probability that one of ``B`` bases
covers a weight-``w`` word, so dividing by ``pi_w`` makes it unbiased (docs/math.md).
"""

from __future__ import annotations

import numpy as np

from ..plans import SnapshotPlan, covered_indices, pauli_weights, single_coverage


def walsh_hadamard(hist: np.ndarray) -> np.ndarray:
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


class ShadowSums:
    """Per-basis parity sums of a snapshot plan, reduced on demand to Pauli estimates.

    The parity sums of every covered word are kept per basis (and per replicate group for a
    complete plan), ``O(B 2^n)`` memory; :meth:`pooled` and :meth:`leave_one_out` scatter them
    into ``4**n`` Pauli coefficients.
    """

    def __init__(self, plan: SnapshotPlan, outcomes: list[np.ndarray]):
        n, groups = plan.num_qubits, plan.groups
        self.plan = plan
        self._idx = covered_indices(plan.bases)  # (B, 2^n)
        if plan.shot_groups:  # complete plan: every group holds every basis
            hist = np.zeros((groups, plan.num_bases, 2**n))
            for b, samples in enumerate(outcomes):
                np.add.at(hist, (np.arange(len(samples)) % groups, b, samples), 1.0)
        else:  # random plan: each basis belongs to one group
            hist = np.stack([np.bincount(s, minlength=2**n) for s in outcomes])[None]
        self._parity = walsh_hadamard(hist)  # (layers, B, 2^n) parity sums of covered words
        self._shots = hist.sum(axis=2)  # (layers, B)
        self._weights = pauli_weights(n).ravel()
        self._single = single_coverage(plan) if plan.random else None

    def _scatter(self, layer_rows) -> tuple[np.ndarray, np.ndarray, int]:
        """Sums, covering-shot counts and number of bases over ``(layer, rows)`` selections."""
        size = 4**self.plan.num_qubits
        sums, counts, bases = np.zeros(size), np.zeros(size), 0
        for layer, rows in layer_rows:
            idx = self._idx[rows].ravel()
            sums += np.bincount(idx, self._parity[layer, rows].ravel(), minlength=size)
            shots = self._shots[layer, rows]
            counts += np.bincount(idx, np.repeat(shots, self._idx.shape[1]), minlength=size)
            bases += np.count_nonzero(shots)
        return sums, counts, bases

    def _estimate(self, sums, counts, num_bases) -> np.ndarray:
        x = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        if self.plan.random:
            cover = 1.0 - (1.0 - self._single) ** num_bases
            x = np.divide(x, cover, out=np.zeros_like(x), where=cover > 0)
        return x.reshape((4,) * self.plan.num_qubits)

    def _group_selection(self, k: int) -> list:
        if self.plan.shot_groups:
            return [(k, slice(None))]
        return [(0, np.flatnonzero(self.plan.basis_groups() == k))]

    def pooled(self) -> np.ndarray:
        """The estimate from all snapshots, shape ``(4,)*n``."""
        layers = range(self._parity.shape[0])
        return self._estimate(*self._scatter([(layer, slice(None)) for layer in layers]))

    def leave_one_out(self) -> np.ndarray:
        """The ``K`` estimates that each leave one group out: shape ``(K,) + (4,)*n``.

        With a single group (``K = 1``) leaving it out leaves no snapshot: the estimate is
        undefined and returned as NaN, so that jackknife errors computed from it are NaN
        rather than a spurious 0.
        """
        layers = range(self._parity.shape[0])
        s, c, b = self._scatter([(layer, slice(None)) for layer in layers])
        if self.plan.groups < 2:
            return np.full((self.plan.groups,) + (4,) * self.plan.num_qubits, np.nan)
        out = []
        for k in range(self.plan.groups):
            gs, gc, gb = self._scatter(self._group_selection(k))
            out.append(self._estimate(s - gs, c - gc, b - gb))
        return np.stack(out)

    def group_estimates(self) -> np.ndarray:
        """The ``K`` estimates of each group on its own: shape ``(K,) + (4,)*n``.

        Every one is unbiased by itself (a complete plan's group holds at least one shot of
        every basis; a random plan's group is a random plan of its own bases, divided by its
        own coverage), and the groups are independent: what :func:`pair_product` needs.
        """
        return np.stack(
            [
                self._estimate(*self._scatter(self._group_selection(k)))
                for k in range(self.plan.groups)
            ]
        )


def pair_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unbiased ``E[A] E[B]`` from ``K`` independent unbiased group estimates (axis 0).

    The U-statistic over ordered pairs of distinct groups,
    ``sum_{k != l} a_k b_l / (K (K - 1))``: each term has expectation ``E[A] E[B]`` because
    the groups are independent, whatever the estimator's form (the delete-a-group jackknife
    product is exactly this only for estimators linear in the groups, which a ratio or
    coverage-corrected estimate over unequal groups is not).

    Raises:
        ValueError: fewer than two groups: no unbiased product exists.
    """
    k = a.shape[0]
    if k < 2:
        raise ValueError(
            "The unbiased product <O> d<O> of a var gradient needs at least 2 independent "
            f"replicate groups; this snapshot plan has {k}. Use groups >= 2 and at least 2 "
            "snapshots (bases='auto' then keeps 2 groups), or, with bases='all', at least 2 "
            "snapshots per basis (T >= 2 * 3**n); with an integer number of random bases, at "
            "least 2 bases."
        )
    return (a.sum(0) * b.sum(0) - (a * b).sum(0)) / (k * (k - 1))
