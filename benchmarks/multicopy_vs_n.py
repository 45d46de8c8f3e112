"""Copies per gradient against the number of qubits n at fixed M (issue 11).

A family whose gradient observables are high-weight: ``layers`` of RY on every qubit followed
by a CNOT chain (M = 48 trainable rotations, the last layer cut short), global observable
``Z x ... x Z``, epsilon = 0.25, delta = 0.1, one seed per n. For each n: gentle-multicopy's
copies (single register, package defaults otherwise; statistical engine, emulated),
parameter-shift sized rigorously (two-outcome observable: exact binomial tails, union bound
over M; from the report), and the single-copy ``"shadow"`` snapshots from
:func:`pennylane_shadowgrad.plan` (exact per-component variance, NORMAL approximation with a
union bound: not rigorous, labelled so; ``-1`` where the plan's variance is not finite, i.e.
its 729 random bases do not cover the weight-n words; plan seed 0). Each run's max error
against backprop, the largest |derivative| and the classical seconds per gradient are
printed. ``--cap`` stops after an n whose run took longer than the cap (seconds).

    python benchmarks/multicopy_vs_n.py [--ns 2 3 4 5 6] [--m 48] [--cap 120]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from functools import reduce
from pathlib import Path

import numpy as np
import pennylane as qml

import pennylane_shadowgrad as sg

EPSILON, DELTA = 0.25, 0.1
RESULTS = Path(__file__).parent / "results"


def tape_for(n: int, m: int, seed: int = 0) -> qml.tape.QuantumScript:
    rng = np.random.default_rng(seed)
    ops, k = [], 0
    while k < m:
        for w in range(n):
            if k < m:
                ops.append(qml.RY(qml.numpy.array(rng.uniform(0, 2 * np.pi)), w))
                k += 1
        ops += [qml.CNOT([w, w + 1]) for w in range(n - 1)]
    obs = reduce(lambda a, b: a @ b, [qml.Z(w) for w in range(n)])
    tape = qml.tape.QuantumScript(ops, [qml.expval(obs)])
    tape.trainable_params = list(range(m))
    return tape


def exact(tape, dev) -> np.ndarray:
    ops, obs = tape.operations, tape.measurements[0].obs

    def f(x):
        k = 0
        for op in ops:
            if op.num_params:
                qml.RY(x[k], op.wires)
                k += 1
            else:
                qml.apply(op)
        return qml.expval(obs)

    x = qml.numpy.array(np.array(tape.get_parameters(), dtype=float), requires_grad=True)
    return np.array(qml.grad(qml.QNode(f, dev, diff_method="backprop"))(x), dtype=float)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    ap.add_argument("--m", type=int, default=48)
    ap.add_argument("--cap", type=float, default=120.0)
    args = ap.parse_args()
    dev = qml.device("default.qubit")
    rows = []
    for n in args.ns:
        tape = tape_for(n, args.m)
        start = time.perf_counter()
        with sg.record() as rec, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tapes, fn = sg.gentle_multicopy_grad(
                tape, epsilon=EPSILON, delta=DELTA, register="single", seed=n
            )
            est = np.array(fn(qml.execute(tapes, dev)), dtype=float)
        seconds = time.perf_counter() - start
        rep = rec[0].report
        ex = exact(tape, dev)
        shadow = sg.plan(tape, shots=1000, epsilon=EPSILON, delta=DELTA, seed=0).budget["shadow"]
        row = {
            "n": n,
            "M": args.m,
            "copies": rep["copies"]["total"],
            "ps_copies": rep["parameter_shift"]["copies"],
            "shadow_snapshots_normal": int(shadow),
            "rounds": rep["batches"],
            "updates": rep["learner_updates"],
            "certified": rep["certified"],
            "max_error": float(np.max(np.abs(est - ex))),
            "max_abs_gradient": float(np.max(np.abs(ex))),
            "seconds": seconds,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if seconds > args.cap:
            print(f"stopping: n={n} took {seconds:.0f} s > cap {args.cap:.0f} s")
            break
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multicopy_vs_n.json").write_text(json.dumps(rows, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(ns, [r["copies"] for r in rows], "o-", label="gentle-multicopy (single reg.)")
    ax.semilogy(ns, [r["ps_copies"] for r in rows], "s--", label="parameter-shift (rigorous)")
    ax.semilogy(
        ns, [r["shadow_snapshots_normal"] for r in rows], "^:", label="shadow (normal approx.)"
    )
    ax.set(xlabel="n (qubits)", ylabel="copies per gradient", title=f"M={args.m}, eps={EPSILON}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "multicopy_vs_n.png", dpi=120)
    print(
        "\n n  copies     PS copies  shadow(normal)  copies/PS  copies/shadow  seconds  "
        "updates  max|grad|"
    )
    for r in rows:
        print(
            f"{r['n']:2d}  {r['copies']:.3e}  {r['ps_copies']:.3e}  "
            f"{r['shadow_snapshots_normal']:.3e}       {r['copies'] / r['ps_copies']:8.3g}  "
            f"{r['copies'] / r['shadow_snapshots_normal']:12.3g}  {r['seconds']:7.1f}  "
            f"{r['updates']:7d}  {r['max_abs_gradient']:.3f}"
        )


if __name__ == "__main__":
    main()
