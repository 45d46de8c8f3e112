"""Warm-starting the gentle-multicopy hypothesis along a training run (issue 11, item 6).

A training run is emulated by plain gradient descent with *exact* gradients (backprop), so the
cold and the warm protocol see the same sequence of states. At every step both compute the
gentle-multicopy gradient with package defaults (epsilon = 0.1, delta = 0.05): ``cold`` starts
from ``I / 2^n`` each time, ``warm`` from the previous step's certified hypothesis mixed with
``I / 2^n`` (:class:`pennylane_shadowgrad.WarmStart`, ``mixing = 0.1`` unless ``--mixing``).
Circuits: layered RY/RZ + CNOT on ``n`` qubits (2 layers, all angles trainable,
``O = Z_0 Z_{n-1} + 0.5 X_1``), one seed per n. Printed per n: median copies per gradient over
steps 2.. (step 1 is cold for both), the ratio warm/cold with its range over steps, learner
updates, rounds, every step's max error against the exact gradient, and classical seconds per
gradient. The figure shows copies per step.

    python benchmarks/multicopy_warm_start.py [--ns 2 3 4] [--steps 20] [--lr 0.1] [--mixing 0.1]
    python benchmarks/multicopy_warm_start.py --worst-start

``--worst-start`` prices the worst possible start instead: a 2-qubit circuit, the stored
hypothesis the maximally mixed state on the complement of the output state's support; median
and largest copies over 20 seeds for the cold start and for mixing 1, 0.1 and 0.01.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pennylane as qml

import pennylane_shadowgrad as sg

EPSILON, DELTA = 0.1, 0.05
RESULTS = Path(__file__).parent / "results"


def make_circuit(n: int, seed: int):
    """``(qnode factory, initial parameters)`` of the layered RY/RZ + CNOT circuit."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0, 2 * np.pi, size=(2, n, 2))

    def body(x):
        for layer in range(2):
            for w in range(n):
                qml.RY(x[layer, w, 0], w)
                qml.RZ(x[layer, w, 1], w)
            for w in range(n - 1):
                qml.CNOT([w, w + 1])
        return qml.expval(qml.Z(0) @ qml.Z(n - 1) + 0.5 * qml.X(1 % n))

    def qnode(diff_method, **kwargs):
        dev = qml.device("default.qubit", wires=n)
        return qml.QNode(body, dev, diff_method=diff_method, gradient_kwargs=kwargs)

    return qnode, qml.numpy.array(x0, requires_grad=True)


def one_gradient(qnode, x, seed, warm=None):
    """``(gradient, report, seconds)`` of one gentle-multicopy gradient."""
    kwargs = {"epsilon": EPSILON, "delta": DELTA, "seed": seed}
    if warm is not None:
        kwargs["warm_start"] = warm
    circuit = qnode("gentle-multicopy", **kwargs)
    start = time.perf_counter()
    with sg.record() as rec:
        g = np.asarray(qml.grad(circuit)(x))
    return g, rec[0].report, time.perf_counter() - start


def run(n: int, steps: int, lr: float, mixing: float) -> dict:
    qnode, x = make_circuit(n, seed=100 + n)
    exact_circuit = qnode("backprop")
    warm = sg.WarmStart(mixing)
    rows = []
    for step in range(steps):
        exact = np.asarray(qml.grad(exact_circuit)(x))
        g_cold, r_cold, t_cold = one_gradient(qnode, x, seed=10_000 + step)
        g_warm, r_warm, t_warm = one_gradient(qnode, x, seed=10_000 + step, warm=warm)
        rows.append(
            {
                "cold": r_cold["copies"]["total"],
                "warm": r_warm["copies"]["total"],
                "warm_used": r_warm["warm_start"]["used"],
                "updates": (r_cold["learner_updates"], r_warm["learner_updates"]),
                "rounds": (r_cold["batches"], r_warm["batches"]),
                "err": (np.max(np.abs(g_cold - exact)), np.max(np.abs(g_warm - exact))),
                "seconds": (t_cold, t_warm),
            }
        )
        x = x - lr * exact
    return {"n": n, "m": 4 * n, "rows": rows}


def worst_start(seeds: int = 20) -> None:
    """Copies from the worst start against a cold start (module docstring)."""
    dev = qml.device("default.qubit")
    x = np.array([0.3, 0.7, 1.1, -0.4])

    def gates(x):
        qml.RX(x[0], wires=0)
        qml.RY(x[1], wires=1)
        qml.CNOT(wires=[0, 1])
        qml.RZ(x[2], wires=1)
        qml.RX(x[3], wires=1)

    def body(x):
        gates(x)
        return qml.expval(qml.Z(1) + 0.5 * qml.X(0))

    def state(x):
        gates(x)
        return qml.state()

    psi = np.asarray(qml.QNode(state, dev)(x))
    away = np.eye(4) - np.outer(psi, psi.conj())
    away /= np.trace(away).real
    print(f"worst start, 2 qubits, epsilon {EPSILON}, {seeds} seeds: copies per gradient")
    print("| start | median | largest |\n|---|---|---|")
    for mixing in (None, 1.0, 0.1, 0.01):
        copies = []
        for seed in range(seeds):
            kwargs = {"epsilon": EPSILON, "delta": DELTA, "seed": 100 + seed}
            if mixing is not None:
                kwargs["warm_start"] = sg.WarmStart(mixing)
                kwargs["warm_start"].store(0, (0, 1), away)
            circuit = qml.QNode(body, dev, diff_method="gentle-multicopy", gradient_kwargs=kwargs)
            with sg.record() as rec:
                qml.grad(circuit)(qml.numpy.array(x, requires_grad=True))
            copies.append(rec[0].report["copies"]["total"])
        label = "cold" if mixing is None else f"worst, mixing {mixing}"
        print(f"| {label} | {np.median(copies):.3g} | {np.max(copies):.3g} |", flush=True)


def summary(res: dict) -> str:
    rows = res["rows"][1:]
    cold = np.array([r["cold"] for r in rows], dtype=float)
    warm = np.array([r["warm"] for r in rows], dtype=float)
    ratio = warm / cold
    errs = np.array([r["err"] for r in res["rows"]])
    upd = np.array([r["updates"] for r in rows])
    rounds = np.array([r["rounds"] for r in rows])
    secs = np.array([r["seconds"] for r in res["rows"]])
    return (
        f"| {res['n']} | {res['m']} | {np.median(cold):.3g} | {np.median(warm):.3g} | "
        f"{np.median(ratio):.2f} [{ratio.min():.2f}, {ratio.max():.2f}] | "
        f"{np.median(upd[:, 0]):.0f} / {np.median(upd[:, 1]):.0f} | "
        f"{np.median(rounds[:, 0]):.0f} / {np.median(rounds[:, 1]):.0f} | "
        f"{errs[:, 0].max():.3f} / {errs[:, 1].max():.3f} | "
        f"{int((errs > EPSILON).sum())} | "
        f"{np.median(secs[:, 0]):.2f} / {np.median(secs[:, 1]):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--mixing", type=float, default=0.1)
    parser.add_argument("--worst-start", action="store_true")
    args = parser.parse_args()
    if args.worst_start:
        worst_start()
        return
    print(
        f"gentle-multicopy along {args.steps} gradient-descent steps (lr {args.lr}), epsilon "
        f"{EPSILON}, delta {DELTA}, WarmStart(mixing={args.mixing}); steps 2.. summarised",
        flush=True,
    )
    header = (
        "| n | M | copies cold | copies warm | warm/cold median [min, max] | updates cold / "
        "warm | rounds cold / warm | worst error cold / warm | runs over eps | seconds cold / "
        "warm |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    results = []
    for n in args.ns:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            results.append(run(n, args.steps, args.lr, args.mixing))
        if len(results) == 1:
            print(header)
        print(summary(results[-1]), flush=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no figure; pip install -e '.[benchmarks]')")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for res in results:
        steps = np.arange(1, len(res["rows"]) + 1)
        (line,) = ax.plot(steps, [r["cold"] for r in res["rows"]], "--", label=f"n={res['n']} cold")
        ax.plot(steps, [r["warm"] for r in res["rows"]], "-", color=line.get_color(), label="warm")
    ax.set_yscale("log")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("copies per gradient")
    ax.set_title(f"gentle-multicopy warm start (epsilon {EPSILON}, lr {args.lr})")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "multicopy_warm_start.png", dpi=120)
    print(f"figure: {RESULTS / 'multicopy_warm_start.png'}")


if __name__ == "__main__":
    main()
