"""The shadow estimate of every measurement's Jacobian, with delete-a-group jackknife errors.

The snapshots' Pauli estimates (pooled, and leaving out each independent group in turn) go
through the dense evaluator ``X -> (Tr(X G_j))_j``; the leave-one-out rows give jackknife
standard errors (Efron and Stein, Ann. Statist. 9 (1981)), and the groups' own estimates the
unbiased product in the ``var`` gradient (the U-statistic over pairs of distinct groups,
:func:`~.shadow.pair_product`).
"""

from __future__ import annotations

import numpy as np
from pennylane.measurements import ExpectationMP, ProbabilityMP, VarianceMP

from ..circuit import pauli_sum, pauli_sum_square, probability_projectors
from .dense import expectation, gradient_functional
from .shadow import ShadowSums, pair_product


def jackknife_se(loo: np.ndarray) -> np.ndarray:
    """Delete-a-group jackknife standard error from the ``K`` leave-one-out estimates."""
    k = loo.shape[0]
    return np.sqrt((k - 1) / k * np.sum((loo - loo.mean(0)) ** 2, axis=0))


def shadow_jacobian(tape, circuit, plan, outcomes, terms, want_errors):
    """Jacobian (and jackknife errors) of every measurement for one shot budget."""
    sums = ShadowSums(plan, outcomes)
    x = sums.pooled()[None]
    if want_errors:
        x = np.concatenate([x, sums.leave_one_out()])
    if any(isinstance(m, VarianceMP) for m in tape.measurements):
        groups_x = sums.group_estimates()  # each group alone: for the unbiased product
    wire_order = circuit.wire_order
    jacs, errs = [], []
    for m_idx, m in enumerate(tape.measurements):
        if isinstance(m, ProbabilityMP):
            rows = [
                gradient_functional(circuit, proj, x)
                for proj in probability_projectors(m.wires or wire_order, wire_order)
            ]
            rows = np.stack(rows, axis=-1)  # (batch, M, 2^k)
        elif isinstance(m, ExpectationMP):
            rows = gradient_functional(circuit, pauli_sum(m.obs, wire_order), x)
            for k, (mi, term) in terms.items():
                if mi == m_idx:
                    rows[:, k] = expectation(pauli_sum(term, wire_order), x)
        else:  # variance: d<O^2> - 2 <O> d<O>, the product unbiased over pairs of groups
            ps = pauli_sum(m.obs, wire_order)
            d_sq = gradient_functional(circuit, pauli_sum_square(ps), x)
            d_o = gradient_functional(circuit, ps, x)
            mean = expectation(ps, x)[:, None]
            product = pair_product(
                expectation(ps, groups_x)[:, None], gradient_functional(circuit, ps, groups_x)
            )
            full = d_sq[0] - 2 * product
            loo = d_sq[1:] - 2 * mean[1:] * d_o[1:]
            rows = np.concatenate([full[None], loo])
        jacs.append(rows[0])
        errs.append(jackknife_se(rows[1:]) if want_errors else None)
    return jacs, errs
