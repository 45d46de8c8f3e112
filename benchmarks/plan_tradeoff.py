"""Variance / time trade-off of the shadow measurement plan (number of bases B) at fixed T.

For ``n`` qubits (default 4 and 7) and a fixed snapshot budget ``T`` (default 2000), the
circuit is ``layers`` x (RY, RZ on every qubit + CNOT ring) with observable Z(0). For every
plan in {"all" (when 3**n <= T), 27, 81, 243, 729, "per-shot", and "auto"}, it measures

* the gradient MSE (squared error summed over components, against the exact
  ``lightning.qubit`` adjoint gradient) over ``R`` seeded repetitions on ``default.qubit``
  (fresh random bases and shot noise each time), with its standard error;
* the per-gradient wall time (transform + execution + post-processing; median of
  ``--repeats``) on ``default.qubit`` and on ``lightning.qubit``; the circuits count is the
  number of distinct bases (what a hardware run compiles).

It justifies (or not) the ``"auto"`` default: the complete plan when ``3**n <= min(T, 729)``,
otherwise ``min(T, 729)`` random bases with the coverage-corrected ratio estimator.

    python benchmarks/plan_tradeoff.py
    python benchmarks/plan_tradeoff.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pennylane as qml
from pennylane.devices import ExecutionConfig
from pennylane.tape import QuantumScript

from pennylane_shadowgrad import shadow_grad
from pennylane_shadowgrad.plans import make_plan

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shadow_vs_shift import ring_ops

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def one_gradient(tape, plan, seed, dev) -> np.ndarray:
    tapes, fn = shadow_grad(tape, bases=plan, seed=seed)
    return np.asarray(fn(qml.execute(tapes, dev, diff_method=None)), dtype=float).reshape(-1)


def run_n(n, layers, budget, plans, reps, repeats, seed):
    ss = np.random.SeedSequence([seed, n])
    seeds = ss.generate_state(2 * reps + 2)
    params = np.random.default_rng(seeds[0]).uniform(0, 2 * np.pi, 2 * n * layers)
    ops = ring_ops(n, layers, params)
    tape = QuantumScript(ops, [qml.expval(qml.Z(0))], shots=budget)
    lq = qml.device("lightning.qubit", wires=n, seed=int(seeds[1]))
    exact = np.asarray(
        lq.compute_derivatives(
            QuantumScript(ops, [qml.expval(qml.Z(0))]),
            ExecutionConfig(gradient_method="adjoint"),
        )
    ).reshape(-1)
    rows = []
    for plan in plans:
        made = make_plan(n, budget, bases=plan)
        chosen = made.num_bases if made.random else "all"
        label = plan if plan != "auto" else f"auto (= {chosen})"
        print(f"  n={n}, plan {label}: {reps} repetitions, {repeats} timings ...", flush=True)
        errs = []
        for r in range(reps):
            dq = qml.device("default.qubit", seed=int(seeds[2 + reps + r]))
            g = one_gradient(tape, plan, int(seeds[2 + r]), dq)
            errs.append(np.sum((g - exact) ** 2))
        errs = np.asarray(errs)
        times = {}
        for name in ("default.qubit", "lightning.qubit"):
            dev = (
                qml.device("default.qubit", seed=seed)
                if name == "default.qubit"
                else qml.device("lightning.qubit", wires=n, seed=seed)
            )
            ts = []
            for k in range(repeats):
                start = time.perf_counter()
                one_gradient(tape, plan, k, dev)
                ts.append(time.perf_counter() - start)
            times[name] = float(np.median(ts))
        rows.append(
            {
                "n": n,
                "M": 2 * n * layers,
                "plan": str(label),
                "bases": made.num_bases,
                "shots_per_basis": f"{made.shots.min()}-{made.shots.max()}"
                if made.shots.min() != made.shots.max()
                else str(made.shots.min()),
                "mse": errs.mean(),
                "se": errs.std(ddof=1) / np.sqrt(reps),
                "t_dq": times["default.qubit"],
                "t_lq": times["lightning.qubit"],
            }
        )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test (< 2 min)")
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 7])
    parser.add_argument("--layers", type=int, default=6, help="ring layers (M = 2 n layers)")
    parser.add_argument("--snapshots", type=int, default=2000, help="budget T")
    parser.add_argument("--reps", type=int, default=None, help="MSE repetitions R")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    reps = args.reps or (5 if args.quick else 30)
    repeats = 1 if args.quick else args.repeats
    budget = args.snapshots
    os.makedirs(RESULTS, exist_ok=True)

    all_rows = []
    for n in args.qubits:
        plans = (["all"] if 3**n <= budget else []) + [27, 81, 243, 729, "per-shot", "auto"]
        plans = [p for p in plans if not isinstance(p, int) or p <= budget]
        if args.quick:
            plans = [p for p in plans if p in ("all", 27, 729, "per-shot", "auto")]
        all_rows += run_n(n, args.layers, budget, plans, reps, repeats, args.seed)

    print(f"\n### plan trade-off: T={budget}, Z(0), ring ansatz, R={reps} (MSE on default.qubit)\n")
    print(
        "| n | M | plan | bases (circuits) | shots/basis | MSE (sum over comps) | SE | "
        "MSE / MSE(auto) | s/grad default.qubit | s/grad lightning.qubit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in all_rows:
        auto = next(r for r in all_rows if r["n"] == row["n"] and r["plan"].startswith("auto"))
        print(
            f"| {row['n']} | {row['M']} | {row['plan']} | {row['bases']} | "
            f"{row['shots_per_basis']} | {row['mse']:.4g} | {row['se']:.2g} | "
            f"{row['mse'] / auto['mse']:.2f} | {row['t_dq']:.3f} | {row['t_lq']:.3f} |"
        )
    plot(all_rows, os.path.join(RESULTS, "plan_tradeoff.png"), budget)


def plot(rows, path: str, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for n in sorted({r["n"] for r in rows}):
        rs = [r for r in rows if r["n"] == n and not r["plan"].startswith("auto")]
        b = [r["bases"] for r in rs]
        axes[0].errorbar(b, [r["mse"] for r in rs], yerr=[r["se"] for r in rs], marker="o",
                         capsize=3, label=f"n={n}")  # fmt: skip
        axes[1].plot(b, [r["t_dq"] for r in rs], "o-", label=f"n={n} default.qubit")
        axes[1].plot(b, [r["t_lq"] for r in rs], "s--", label=f"n={n} lightning.qubit")
    axes[0].set(xscale="log", yscale="log", xlabel="bases B", ylabel="gradient MSE")
    axes[0].set_title(f"MSE at T={budget}")
    axes[1].set(xscale="log", yscale="log", xlabel="bases B", ylabel="seconds per gradient")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
