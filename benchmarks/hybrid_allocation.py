"""Exact expected gradient MSE of the default strategy against pure shadow and parameter-shift.

For every circuit of the ``shadow_vs_shift.py`` families (ring circuits with ``Z(0)``, wide
shallow brickwork with ``Z(n//2)``, a TFIM Hamiltonian on the ring ansatz) and a family at
Clifford angles (every angle a multiple of pi/2, where ideal-circuit variances vanish),
PennyLane's ``param_shift`` with ``--shots-per-tape`` shots per tape fixes the budget ``T``
(the shots ``qml.Tracker`` counts for the tapes it really generates). At that equal budget,
EXACT expected MSEs (summed over components) at the ideal circuit:

- parameter-shift: ``sum_t ||d grad / d r_t||^2 sum_g Var_t(O_g) / s`` over PennyLane's own
  tapes (``O_g`` the groups ``default.qubit`` samples a Hamiltonian as);
- pure shadow (default plan at ``T``): ``sum_j Var(d_j)``, over snapshots and random bases;
- default (``strategy="auto"``): the variance of the combination the default would run at
  ``T`` (its split, plan and weights, from ``pennylane_shadowgrad.plan``), exact.

The acceptance criterion is ``default / min(pure, parameter-shift) <= 1.1`` on every row.

    python benchmarks/hybrid_allocation.py            # full table (a few minutes on 2 cores)
    python benchmarks/hybrid_allocation.py --quick    # smoke test
    python benchmarks/hybrid_allocation.py --wide-n 8 10   # brickwork at n > 6
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pennylane as qml
from pennylane.tape import QuantumScript

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shadow_vs_shift import brick_ops, hamiltonian, ring_ops

from pennylane_shadowgrad import plan, variance
from pennylane_shadowgrad.estimators import light_cone


def case_tape(family: str, n: int, size: int, seed: int, kind: str = "tfim") -> QuantumScript:
    """Benchmark circuit: a ring (a), brickwork (b), a ring with a ``kind`` Hamiltonian (c), or
    a ring at Clifford angles (d; ``Z(0)`` for odd seeds, the Hamiltonian for even ones)."""
    rng = np.random.default_rng([seed, n, size, ord(family)])
    params = rng.uniform(0, 2 * np.pi, 2 * n * size)
    if family == "a":
        ops, obs = ring_ops(n, size, params), qml.Z(0)
    elif family == "d":  # Clifford angles: every angle a multiple of pi/2
        params = rng.integers(0, 4, 2 * n * size) * np.pi / 2
        ops = ring_ops(n, size, params)
        obs = qml.Z(0) if seed % 2 else hamiltonian(kind, n)
    elif family == "b":
        ops, obs = brick_ops(n, size, params), qml.Z(n // 2)
    else:
        ops, obs = ring_ops(n, size, params), hamiltonian(kind, n)
    tape = QuantumScript(ops, [qml.expval(obs)])
    tape.trainable_params = list(range(len(params)))
    return tape


def _conditional_mse(blocks, plan, x, weights=None) -> float:
    """Exact summed MSE of the plan's shadow estimate given its bases (variance + bias^2).

    A random plan's coverage-corrected estimator is unbiased over the draw of the bases, not
    given them: given the bases its mean is ``sum_P gamma_jP x_P (covered_P / pi_P)``.
    """
    from pennylane_shadowgrad.plans import covered_indices, single_coverage

    var = variance.block_shadow_variance(blocks, plan, x)
    bias = np.zeros_like(var)
    if plan.random:
        n = blocks.num_qubits
        for support, rows, gammas in blocks.blocks:
            lp = light_cone.local_plan(plan, support)
            k = len(support)
            covered = np.bincount(covered_indices(lp.bases).ravel(), minlength=4**k) > 0
            pi = 1.0 - (1.0 - single_coverage(lp)) ** lp.num_bases
            xs = x[light_cone.local_indices(n, support)]
            factor = np.where(covered, 1.0 / np.where(pi > 0, pi, 1.0), 0.0) - 1.0
            factor[0] = 0.0
            for o, g in enumerate(gammas):
                bias[rows, o] = g @ (xs * factor)
    w = np.ones_like(var) if weights is None else weights
    return float(np.sum(w**2 * (var + bias**2)))


def exact_ps_mse(tape: QuantumScript, s_tape: int) -> tuple[float, int]:
    """Exact expected MSE of PennyLane's param_shift as ``default.qubit`` runs it, and its
    Tracker-counted shots.

    ``default.qubit`` samples a shifted tape's ``expval(H)`` as the qubit-wise-commuting
    groups of ``qml.pauli.compute_partition_indices`` (``s_tape`` shots each), so tape ``t``'s
    result has variance ``sum_g Var_t(H_g) / s``; the MSE is ``sum_t ||d grad / d r_t||^2``
    times that. The shots are what ``qml.Tracker`` counts when the tapes run (for a
    Hamiltonian the Tracker charges its own count of groups, e.g. 3 executions per tape for
    the 4-qubit open TFIM, whose terms are sampled as 2 groups).
    """
    ps_tapes, fn = qml.gradients.param_shift(tape)
    dev = qml.device("default.qubit", wires=tape.wires, seed=0)
    with qml.Tracker(dev) as tracker:
        qml.execute([t.copy(shots=s_tape) for t in ps_tapes], dev, diff_method=None)
    counted = int(tracker.totals["shots"])
    obs = tape.measurements[0].obs
    if isinstance(obs, qml.ops.LinearCombination):  # sampled term by term, grouped
        coeffs, terms = obs.terms()
    else:  # a Pauli word: one group
        coeffs, terms = [1.0], [obs]
    parts = qml.pauli.compute_partition_indices(terms)
    group_obs = [qml.dot([coeffs[i] for i in g], [terms[i] for i in g]) for g in parts]
    var_tapes = [QuantumScript(t.operations, [qml.var(o)]) for t in ps_tapes for o in group_obs]
    exact_dev = qml.device("default.qubit", wires=tape.wires)
    variances = np.asarray(qml.execute(var_tapes, exact_dev, diff_method=None), dtype=float)
    variances = variances.reshape(len(ps_tapes), len(group_obs)).sum(1)
    total = 0.0
    for t in range(len(ps_tapes)):
        unit = [0.0] * len(ps_tapes)
        unit[t] = 1.0
        total += np.sum(np.asarray(fn(unit), dtype=float) ** 2) * variances[t] / s_tape
    return float(total), counted


def case(tape: QuantumScript, s_tape: int, seed: int) -> dict:
    """Exact expected MSEs of the three strategies at PennyLane's parameter-shift budget."""
    ps, total = exact_ps_mse(tape, s_tape)
    p = plan(tape.copy(shots=total), seed=seed)
    mse = p.total_mse()
    alloc = p.allocation
    return {
        "M": len(tape.trainable_params),
        "T": total,
        "ps": ps,
        "shadow": mse["shadow"],
        "auto": mse["auto"],
        "split": (alloc.shadow, p.round.shift.total_shots),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shots-per-tape", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--wide-n", type=int, nargs="*", default=None, help="brickwork n > 6")
    args = parser.parse_args(argv)
    if args.wide_n:
        cases = [("b", n, d) for n in args.wide_n for d in (1, 2, 3)]
    elif args.quick:
        cases = [("a", 2, 6), ("b", 6, 1), ("c", 4, 3), ("d", 3, 4)]
    else:
        cases = [("a", 2, 6), ("a", 2, 25), ("a", 3, 4), ("a", 3, 16), ("a", 4, 3), ("a", 4, 12)]
        cases += [("b", 6, 1), ("b", 6, 2), ("b", 6, 3)]
        cases += [("c", 4, 6), ("c", 5, 6), ("c", 6, 2)]
        cases += [("d", 2, 6), ("d", 3, 4), ("d", 4, 3), ("d", 4, 6), ("d", 5, 2), ("d", 3, 8)]
    start = time.perf_counter()
    print(
        "| family | n | size | M | T (shots) | MSE param-shift | MSE pure shadow | MSE default "
        "| default / min | split (shadow / param-shift shots) |"
    )
    print("|" + "---|" * 10)
    worst = 0.0
    for k, (family, n, size) in enumerate(cases):
        tape = case_tape(family, n, size, args.seed + k * (family == "d"))
        row = case(tape, args.shots_per_tape, args.seed)
        best = min(row["ps"], row["shadow"])
        ratio = row["auto"] / best if best > 0 else (1.0 if row["auto"] == 0 else np.inf)
        worst = max(worst, ratio)
        sh, ps = row["split"]
        print(
            f"| {family} | {n} | {size} | {row['M']} | {row['T']} | {row['ps']:.3g} "
            f"| {row['shadow']:.3g} | {row['auto']:.3g} | {ratio:.3f} | {sh} / {ps} |",
            flush=True,
        )
    print(
        f"\nexact expected MSEs summed over components; {args.shots_per_tape} shots per "
        f"param-shift tape; seed {args.seed}; worst default / min = {worst:.3f} "
        f"({'within' if worst <= 1.1 else 'ABOVE'} the 1.1 target); "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
