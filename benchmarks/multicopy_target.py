"""Copies per gradient on random Pauli-rotation circuits: the issue-11 target measurement.

n qubits, M ``PauliRot`` gates on uniformly random non-identity Pauli words with random angles,
``O = 0.6 Z0 Z1 + 0.4 X0`` (n = 2; on n > 2 the same words on wires 0, 1), epsilon = 0.25,
delta = 0.1, statistical engine (emulated, not executed). For each (M, seed): gentle-multicopy's
copies (single register, signed checks, coarse-to-fine schedule, random thresholds: the
defaults but the register; other variants with ``--variants``), parameter-shift sized
rigorously (Hoeffding with the spectral half-width, union bound over M; from the report), and
the single-copy ``"shadow"`` budget from :func:`pennylane_shadowgrad.plan` (exact per-component
variance, NORMAL approximation with a union bound over components: not rigorous, labelled so).
Every run's max error against the exact gradient is printed; the median over seeds is the
headline.

    python benchmarks/multicopy_target.py [--ms 300 3000] [--seeds 0 1 2] [--n 2]
        [--variants signed unsigned fixed] [--no-shadow]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pennylane as qml

import pennylane_shadowgrad as sg

EPSILON, DELTA = 0.25, 0.1
#: Copies are the metric here, so the single register (the two-register variant spends an
#: omega copy per batch copy and measures W with ||W|| = 1); "auto" is the package default,
#: which picks the register by estimated gate applications.
VARIANTS = {
    "signed": {"register": "single"},
    "fixed": {"register": "single", "thresholds": "fixed"},
    "one-level": {"register": "single", "schedule": (1,)},
    "unsigned": {"register": "single", "checks": "unsigned"},
    "auto": {},
}


def pauli_tape(n: int, m: int, seed: int) -> qml.tape.QuantumScript:
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(m):
        word = "".join(rng.choice(list("IXYZ"), size=n))
        while set(word) == {"I"}:
            word = "".join(rng.choice(list("IXYZ"), size=n))
        ops.append(qml.PauliRot(qml.numpy.array(rng.uniform(0, 2 * np.pi)), word, range(n)))
    obs = 0.6 * qml.Z(0) @ qml.Z(1) + 0.4 * qml.X(0)
    tape = qml.tape.QuantumScript(ops, [qml.expval(obs)])
    tape.trainable_params = list(range(m))
    return tape


def exact_gradient(tape, dev) -> np.ndarray:
    """Backprop on default.qubit (agrees with analytic parameter-shift to 1e-15 at M=300, which
    itself takes 20 s there and grows faster than M)."""
    words = [op.hyperparameters["pauli_word"] for op in tape.operations]
    wires = [op.wires for op in tape.operations]
    obs = tape.measurements[0].obs

    def f(x):
        for a, w, ws in zip(x, words, wires):
            qml.PauliRot(a, w, wires=ws)
        return qml.expval(obs)

    x = qml.numpy.array(np.array(tape.get_parameters(), dtype=float), requires_grad=True)
    return np.array(qml.grad(qml.QNode(f, dev, diff_method="backprop"))(x), dtype=float)


def shadow_budget(tape, eps: float, delta: float) -> int | None:
    """Single-copy shadow snapshots for every component within eps w.p. 1-delta (normal
    approximation, union bound; from ``sg.plan``)."""
    p = sg.plan(tape, shots=1000, epsilon=eps, delta=delta)
    return int(p.budget["shadow"])


def run(n, m, seed, variant, dev, exact):
    tape = pauli_tape(n, m, seed)
    kwargs = {"epsilon": EPSILON, "delta": DELTA, "seed": seed, **VARIANTS[variant]}
    start = time.perf_counter()
    with sg.record() as rec, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tapes, fn = sg.gentle_multicopy_grad(tape, **kwargs)
        est = np.array(fn(qml.execute(tapes, dev)), dtype=float)
    rep = rec[0].report
    return {
        "n": n,
        "M": m,
        "seed": seed,
        "variant": variant,
        "copies": rep["copies"]["total"],
        "fresh": rep["copies"]["fresh_estimate"],
        "ps_copies": rep["parameter_shift"]["copies"],
        "ps_sizing": rep["parameter_shift"]["sizing"],
        "rounds": rep["batches"],
        "updates": rep["learner_updates"],
        "per_level": rep["constants"]["batch_copies_per_level"],
        "register": rep["register"],
        "certified": rep["certified"],
        "max_error": float(np.max(np.abs(est - exact))),
        "seconds": time.perf_counter() - start,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", type=int, nargs="+", default=[300, 3000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=["signed"])
    ap.add_argument("--no-shadow", action="store_true")
    args = ap.parse_args()
    dev = qml.device("default.qubit")
    rows = []
    for m in args.ms:
        for seed in args.seeds:
            tape = pauli_tape(args.n, m, seed)
            exact = exact_gradient(tape, dev)
            shadow = None if args.no_shadow else shadow_budget(tape, EPSILON, DELTA)
            for variant in args.variants:
                row = run(args.n, m, seed, variant, dev, exact)
                row["shadow_snapshots_normal"] = shadow
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nmedians over seeds (n={args.n}, eps={EPSILON}, delta={DELTA}):")
    for m in args.ms:
        for variant in args.variants:
            sel = [r for r in rows if r["M"] == m and r["variant"] == variant]
            c = float(np.median([r["copies"] for r in sel]))
            ps = float(np.median([r["ps_copies"] for r in sel]))
            sh = [r["shadow_snapshots_normal"] for r in sel if r["shadow_snapshots_normal"]]
            worst = max(r["max_error"] for r in sel)
            print(
                f"M={m:5d} {variant:10s} copies {c:.3g}  param-shift (rigorous) {ps:.3g}  "
                f"ratio {c / ps:.3g}  shadow (normal approx.) "
                f"{np.median(sh) if sh else float('nan'):.3g}  worst error {worst:.3f}  "
                f"all within eps: {worst <= EPSILON}  time/gradient "
                f"{np.median([r['seconds'] for r in sel]):.2f} s"
            )


if __name__ == "__main__":
    main()
