"""Exact MSE gain of locally-biased measurement bases (``biased_bases=True``) at equal shots.

For each circuit (the families of ``shadow_vs_shift.py``: (a) ring circuits with ``Z(0)``,
(b) brickwork with ``Z(n//2)``, (c) TFIM / Heisenberg Hamiltonians on the ring ansatz), the
budget ``T`` is what PennyLane's ``param_shift`` spends with ``--shots-per-tape`` shots per
tape. The pure shadow gradient on its default plan (``bases="auto"``) is compared with the
biased plan ``shadow_grad`` builds (``plans.optimal_bias`` and ``plans.biased_plan``:
per-qubit X/Y/Z probabilities minimising ``sum_jP gamma_jP^2 / prod beta``,
``S_b ~ prod beta`` on a complete plan). Both MSEs are EXACT from the known state: a
complete (deterministic) plan's estimator is unbiased and ``variance.shadow_variance`` is
its exact variance; for a random plan the MSE given the
bases (variance + squared bias given the bases) is averaged over ``--plans`` draws.

    gain = MSE(uniform) / MSE(biased)     (> 1: biased bases help)

    python benchmarks/biased_bases.py            # full table (a few minutes on 2 cores)
    python benchmarks/biased_bases.py --quick
    python benchmarks/biased_bases.py --sparse   # sampled, on the sparse engine (~2 min)

``--sparse`` compares sampled MSEs instead, on the sparse engine (``max_qubits`` exceeded,
random plans of 729 bases, the bias fitted to the sparse ``G_j`` words): the brickwork
(n=16, depth 3) and TFIM-ladder (n=14, depth 2) families of ``scale.py``, pure strategy,
T = 29,160 on ``lightning.qubit``, ``--seeds`` seeds each, paired bootstrap 95% CI of the
MSE ratio biased / uniform (< 1: biased bases help).
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
from hybrid_allocation import _conditional_mse, case_tape

from pennylane_shadowgrad.circuit import output_observables, rotation_form
from pennylane_shadowgrad.estimators.light_cone import gradient_blocks
from pennylane_shadowgrad.plans import BIAS_FLOOR, bias_proxy, biased_plan, make_plan, optimal_bias
from pennylane_shadowgrad.variance import block_shadow_variance, pauli_expectations


def _state(ops, wire_order) -> np.ndarray:
    tape = QuantumScript(list(ops), [qml.state()])
    dev = qml.device("default.qubit", wires=wire_order)
    return np.asarray(qml.execute([tape], dev, diff_method=None)[0])


def exact_mse(blocks, x, make, plans: int) -> float:
    first = make(0)
    if not first.random:
        return float(block_shadow_variance(blocks, first, x).sum())
    return float(np.mean([_conditional_mse(blocks, make(s), x) for s in range(plans)]))


def row(family, kind, n, size, s_tape, plans, seed):
    tape = case_tape(family, n, size, seed, kind)
    total = s_tape * len(qml.gradients.param_shift(tape)[0])
    circuit = rotation_form(tape)
    x = pauli_expectations(_state(tape.operations, circuit.wire_order))
    blocks = gradient_blocks(circuit, output_observables(tape, circuit.wire_order))
    beta = optimal_bias(blocks, floor=BIAS_FLOOR)
    need = blocks.needed_words()
    uni = exact_mse(blocks, x, lambda s: make_plan(n, total, seed=s), plans)
    bia = exact_mse(blocks, x, lambda s: biased_plan(n, total, beta, need, seed=s), plans)
    uniform = np.full((n, 3), 1.0 / 3.0)
    proxy = bias_proxy(blocks, uniform) / bias_proxy(blocks, beta)
    plan_kind = "random" if make_plan(n, total).random else "complete"
    return {
        "family": family if family != "c" else f"c {kind}",
        "n": n,
        "size": size,
        "M": len(tape.trainable_params),
        "T": total,
        "plan": plan_kind,
        "uniform": uni,
        "biased": bia,
        "gain": uni / bia,
        "proxy": proxy,
        "beta": beta,
    }


def sparse_rows(seeds: int) -> None:
    """Sampled MSE of biased against uniform random bases on the sparse engine."""
    from scale import FAMILIES

    import pennylane_shadowgrad  # noqa: F401  (registers diff_method="shadow")

    for family, n, depth in (("brickwork", 16, 3), ("tfim", 14, 2)):
        body, shape = FAMILIES[family](n, depth)
        w = qml.numpy.array(
            np.random.default_rng(n).uniform(0, 2 * np.pi, shape), requires_grad=True
        )
        dev = qml.device("lightning.qubit", wires=n)
        exact = np.asarray(qml.grad(qml.QNode(body, dev, diff_method="adjoint"))(w))
        errors = {}
        for biased in (False, True):
            errors[biased] = []
            for s in range(seeds):
                options = {"strategy": "pure", "biased_bases": biased, "seed": s}
                qnode = qml.QNode(
                    body,
                    qml.device("lightning.qubit", wires=n, seed=900 + s),
                    diff_method="shadow",
                    shots=29160,
                    gradient_kwargs=options,
                )
                errors[biased].append(np.sum((np.asarray(qml.grad(qnode)(w)) - exact) ** 2))
        uniform, biased = np.array(errors[False]), np.array(errors[True])
        idx = np.random.default_rng(0).integers(0, seeds, (5000, seeds))
        lo, hi = np.percentile(biased[idx].mean(1) / uniform[idx].mean(1), [2.5, 97.5])
        print(
            f"{family:9s} n={n} M={w.size}: MSE uniform {uniform.mean():.4g}, biased "
            f"{biased.mean():.4g}, ratio {biased.mean() / uniform.mean():.3f} "
            f"[{lo:.3f}, {hi:.3f}] ({seeds} seeds)",
            flush=True,
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shots-per-tape", type=int, default=100)
    parser.add_argument("--plans", type=int, default=20, help="random-plan draws averaged")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--sparse", action="store_true", help="sampled, sparse engine")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of --sparse")
    args = parser.parse_args(argv)
    if args.sparse:
        sparse_rows(args.seeds)
        return
    ham = [("c", k, n, s) for k in ("tfim", "heisenberg") for n, s in ((4, 6), (5, 6), (6, 2))]
    if args.quick:
        cases = [("c", "tfim", 4, 3), ("a", "", 3, 4), ("b", "", 6, 1)]
    else:
        cases = ham + [("c", "tfim", 4, 12), ("c", "tfim", 6, 4)]
        cases += [("a", "", 2, 12), ("a", "", 3, 8), ("a", "", 4, 6)]
        cases += [("b", "", 6, 1), ("b", "", 6, 2), ("b", "", 6, 3)]
    start = time.perf_counter()
    print(
        "| family | n | size | M | T | plan | MSE uniform | MSE biased | gain (exact) "
        "| proxy gain |"
    )
    print("|" + "---|" * 10)
    gains = {}
    for family, kind, n, size in cases:
        r = row(family, kind, n, size, args.shots_per_tape, args.plans, args.seed)
        gains.setdefault(r["family"][0], []).append(r["gain"])
        print(
            f"| {r['family']} | {n} | {size} | {r['M']} | {r['T']} | {r['plan']} "
            f"| {r['uniform']:.4g} | {r['biased']:.4g} | {r['gain']:.3f} | {r['proxy']:.3f} |",
            flush=True,
        )
    print(
        f"\nexact expected MSEs (summed over components) of the pure shadow gradient at equal "
        f"shots; {args.shots_per_tape} shots per param-shift tape; bias floor "
        f"{BIAS_FLOOR}; seed {args.seed}"
    )
    for fam, g in sorted(gains.items()):
        print(f"family {fam}: gain min {min(g):.3f}, median {np.median(g):.3f}, max {max(g):.3f}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
