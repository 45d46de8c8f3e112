"""Copies and gate applications per gradient against M for gentle-multicopy and parameter-shift.

n = 2 and 3 qubits, M in {10, ..., 3000} trainable rotations, epsilon = 0.25, delta = 0.05.
Two-register: rank-1 fidelity loss on all wires; single-register: a Pauli-sum observable;
parameter-shift sized the same way (worst-case Hoeffding, union bound over rotations; see
``pennylane_shadowgrad.multicopy.report``). Gentle-multicopy uses its theoretical constants and
the statistical engine (emulated, not executed). Writes a table and log-log plots with fitted
slopes under ``benchmarks/results/``.

Both sides are sized rigorously: the protocol's exact-binomial/anytime sizes (signed checks,
coarse-to-fine schedule, random thresholds: the package defaults), parameter-shift's
union-bound sizes with exact binomial tails for two-outcome observables. ``--quick``: M in
{10, 30, 100} only (smoke test); ``--ms`` picks the M values. The classical time per gradient
is printed. (``--constants calibrated`` was removed with that option.)

    python benchmarks/multicopy_scaling.py [--quick] [--ms 10 100 1000]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pennylane as qml

import pennylane_shadowgrad as sg

MS = (10, 30, 100, 300, 1000, 3000)
EPSILON, DELTA = 0.25, 0.05
RESULTS = Path(__file__).parent / "results"


def layered_tape(n: int, m: int, obs, seed: int = 0) -> qml.tape.QuantumScript:
    """RY/RZ layers with CNOT chains until ``m`` trainable rotations."""
    rng = np.random.default_rng(seed)
    ops, k = [], 0
    while k < m:
        for w in range(n):
            for gate in (qml.RY, qml.RZ):
                if k < m:
                    ops.append(gate(qml.numpy.array(rng.uniform(0, 2 * np.pi)), w))
                    k += 1
        ops += [qml.CNOT([w, w + 1]) for w in range(n - 1)]
    tape = qml.tape.QuantumScript(ops, [qml.expval(obs)])
    tape.trainable_params = list(range(m))
    return tape


def run(n: int, m: int, variant: str, dev) -> dict:
    if variant == "two":
        obs = qml.Projector([0] * n, wires=range(n))
    else:
        obs = qml.Z(0) @ qml.Z(n - 1) + 0.5 * qml.X(1)
    tape = layered_tape(n, m, obs)
    with sg.record() as rec:
        tapes, fn = sg.gentle_multicopy_grad(
            tape, epsilon=EPSILON, delta=DELTA, register=variant, seed=m + n
        )
        fn(qml.execute(tapes, dev))
    rep = rec[0].report
    return {
        "n": n,
        "M": m,
        "variant": rep["register"],
        "copies": rep["copies"]["total"],
        "gates": rep["gate_applications"],
        "batch": rep["constants"]["batch_size"],
        "rounds": rep["batches"],
        "updates": rep["learner_updates"],
        "ps_copies": rep["parameter_shift"]["copies"],
        "ps_gates": rep["parameter_shift"]["gate_applications"],
        "failure_bound": rep["failure_bound"],
        "seconds": rep["classical_seconds"],
    }


def slope(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def crossover(xs, ys, ys_ps) -> float:
    """M where the two fitted log-log lines meet (an extrapolation; inf if they diverge)."""
    a, b = np.polyfit(np.log(xs), np.log(ys), 1)
    a_ps, b_ps = np.polyfit(np.log(xs), np.log(ys_ps), 1)
    return float(np.exp((b - b_ps) / (a_ps - a))) if a_ps > a else float("inf")


def main(ms=MS, constants: str = "theoretical") -> None:
    """``constants`` only names the output files (the sizes are always rigorous)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    dev = qml.device("default.qubit")
    rows = []
    for n in (2, 3):
        for variant in ("two", "single"):
            for m in ms:
                row = run(n, m, variant, dev)
                rows.append(row)
                print(json.dumps(row), flush=True)
    (RESULTS / f"multicopy_scaling_{constants}.json").write_text(json.dumps(rows, indent=1))
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    print("\nfitted log-log slopes (all M):")
    for i, n in enumerate((2, 3)):
        for k, (key, ps_key, label) in enumerate(
            (("copies", "ps_copies", "copies"), ("gates", "ps_gates", "gate applications"))
        ):
            ax = axes[i, k]
            for variant in ("two-register", "single-register"):
                sel = [r for r in rows if r["n"] == n and r["variant"] == variant]
                ms = [r["M"] for r in sel]
                s = slope(ms, [r[key] for r in sel])
                ax.loglog(ms, [r[key] for r in sel], "o-", label=f"{variant} (slope {s:.2f})")
                s_ps = slope(ms, [r[ps_key] for r in sel])
                ax.loglog(
                    ms,
                    [r[ps_key] for r in sel],
                    "s--",
                    label=f"param-shift, {variant[:3]} obs (slope {s_ps:.2f})",
                )
                x = crossover(ms, [r[key] for r in sel], [r[ps_key] for r in sel])
                print(
                    f"n={n} {label:17s} {variant:15s} {s:5.2f}   parameter-shift {s_ps:5.2f}"
                    f"   fitted lines cross at M ~ {x:.2g}"
                )
            ax.set(
                xlabel="M (trainable rotations)",
                ylabel=f"{label} per gradient",
                title=f"n = {n}, eps = {EPSILON}, {constants}",
            )
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"multicopy_scaling_{constants}.png", dpi=120)
    print(f"plot: {RESULTS / f'multicopy_scaling_{constants}.png'} (constants={constants})")
    print(
        "\n n     M  variant          copies     PS copies  gates      PS gates   rounds "
        "updates  copies/PS  gates/PS  seconds"
    )
    for r in rows:
        print(
            f"{r['n']:2d} {r['M']:5d}  {r['variant']:15s} {r['copies']:.3e}  "
            f"{r['ps_copies']:.3e}  {r['gates']:.3e}  {r['ps_gates']:.3e}  {r['rounds']:6d} "
            f"{r['updates']:7d}  {r['copies'] / r['ps_copies']:9.3g}  "
            f"{r['gates'] / r['ps_gates']:8.3g}  {r['seconds']:.2f}"
        )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ms", type=int, nargs="+", default=None)
    args = parser.parse_args()
    main(tuple(args.ms) if args.ms else (10, 30, 100) if args.quick else MS)
