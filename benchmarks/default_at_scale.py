"""Default options above the dense limit: ``diff_method="shadow"`` against parameter-shift.

The circuit is a hardware-efficient ansatz on ``n`` qubits (default 20): ``depth`` layers of RY
on every qubit followed by a CNOT ladder, with the transverse-field Ising Hamiltonian
``H = sum_q Z_q Z_{q+1} + sum_q X_q`` (``2n - 1`` terms, two qubit-wise-commuting groups).
One circuit instance (angles from seed 0) is differentiated ``--seeds`` times by

* PennyLane's ``diff_method="parameter-shift"`` at ``--shots`` shots per tape, and
* ``diff_method="shadow"`` with default options and the same number of gradient shots, as
  ``qml.Tracker`` counts them (the forward pass's shots, which both methods spend alike,
  are subtracted),

on ``lightning.qubit``. The exact gradient comes from ``diff_method="adjoint"``. Printed per
seed: the summed squared error of both, their wall times, and the default's split; then the
MSE ratio (default / parameter-shift) with a paired bootstrap 95% interval over the seeds.
Table and PNG go to ``benchmarks/results/default_at_scale_*``. ``--family brickwork`` swaps in
a depth-``depth`` brickwork (RY and RZ per qubit per layer, CZ bricks) with ``Z_{n/2-1} Z_{n/2}``.

    python benchmarks/default_at_scale.py                 # n=20, depth 4, 10 seeds
    python benchmarks/default_at_scale.py --n 16 --seeds 3
    python benchmarks/default_at_scale.py --bases 64      # fewer snapshot circuits
    python benchmarks/default_at_scale.py --family brickwork --depth 3   # a local observable
    python benchmarks/default_at_scale.py --workers 2 --n 14 --seeds 3   # device parallelism

``--workers W`` instead times the default gradient on ``default.qubit`` without and with
``max_workers=W``: the snapshot and shifted tapes go through PennyLane's own execution, so a
device's parallelism applies to them unchanged.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pennylane as qml
from scale import FAMILIES  # the circuit families of benchmarks/scale.py

import pennylane_shadowgrad as sg

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _gradient(body, n, method, shots, seed, w, track=False, **kwargs):
    """(gradient, tracker-counted shots of the whole call or None, wall seconds, records).

    Timed runs go without ``qml.Tracker``: it builds a resource graph per tape, which would
    charge many-tape methods an overhead users do not pay."""
    dev = qml.device("lightning.qubit", wires=n, seed=seed)
    qnode = qml.QNode(body, dev, diff_method=method, shots=shots, **kwargs)
    with sg.record() as records:
        if track:
            with qml.Tracker(dev) as tracker:
                grad = qml.grad(qnode)(w)
            return np.asarray(grad), int(tracker.totals["shots"]), None, records
        start = time.perf_counter()
        grad = qml.grad(qnode)(w)
        seconds = time.perf_counter() - start
    return np.asarray(grad), None, seconds, records


def _forward_shots(body, n, shots, w) -> int:
    dev = qml.device("lightning.qubit", wires=n, seed=0)
    qnode = qml.QNode(body, dev, diff_method=None, shots=shots)
    with qml.Tracker(dev) as tracker:
        qnode(w)
    return int(tracker.totals["shots"])


def workers_table(body, n: int, w, shots: int, workers: int, repeats: int) -> None:
    """Wall time of the default gradient on default.qubit, without and with max_workers."""
    budget = 2 * w.size * 2 * shots  # parameter-shift's count: 2 tapes x 2 groups per parameter
    times = {}
    for label, kwargs in (
        ("max_workers=None", {}),
        (f"max_workers={workers}", {"max_workers": workers}),
    ):
        dev = qml.device("default.qubit", wires=n, seed=1, **kwargs)
        qnode = qml.QNode(
            body, dev, diff_method="shadow", shots=shots, gradient_kwargs={"snapshots": budget}
        )
        qml.grad(qnode)(w)  # warm-up: the sparse model is cached, pools started
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            qml.grad(qnode)(w)
            runs.append(time.perf_counter() - start)
        times[label] = float(np.median(runs))
    base = times["max_workers=None"]
    print(
        f"default.qubit, n={n}, depth {w.shape[0]}, {budget} gradient shots, median of {repeats}:"
    )
    for label, t in times.items():
        print(f"  {label:18s} {t:7.2f} s  ({t / base:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--shots", type=int, default=100, help="parameter-shift shots per tape")
    parser.add_argument("--bootstrap", type=int, default=10000)
    parser.add_argument(
        "--bases", type=int, default=None, help="gradient_kwargs['bases'] (default: not passed)"
    )
    parser.add_argument("--workers", type=int, default=None, help="time default.qubit pools")
    parser.add_argument("--family", choices=("tfim", "brickwork"), default="tfim")
    args = parser.parse_args()
    n, depth = args.n, args.depth
    body, shape = FAMILIES[args.family](n, depth)
    w = qml.numpy.array(np.random.default_rng(0).uniform(0, 2 * np.pi, shape), requires_grad=True)
    if args.workers is not None:
        workers_table(body, n, w, args.shots, args.workers, args.seeds)
        return
    start = time.perf_counter()
    exact = np.asarray(
        qml.grad(qml.QNode(body, qml.device("lightning.qubit", wires=n), diff_method="adjoint"))(w)
    )
    adjoint_seconds = time.perf_counter() - start
    forward = _forward_shots(body, n, args.shots, w)
    # shots are counted once per method (the counts do not depend on the seed); the default's
    # record must agree with the Tracker
    _, shots_ps, _, _ = _gradient(body, n, "parameter-shift", args.shots, 0, w, track=True)
    budget = shots_ps - forward
    options = {"snapshots": budget}
    if args.bases is not None:
        options["bases"] = args.bases
    _, shots_sh, _, recs = _gradient(
        body, n, "shadow", args.shots, 0, w, track=True, gradient_kwargs=options
    )
    assert shots_sh - forward == recs[-1].snapshots == budget, (shots_sh, recs[-1].snapshots)
    lines = [
        (
            f"HEA (RY + CNOT ladder) depth {depth}, n={n}, M={w.size}, TFIM H (2n-1 terms); "
            if args.family == "tfim"
            else f"brickwork (RY, RZ, CZ) depth {depth}, n={n}, M={w.size}, Z Z; "
        )
        + f"lightning.qubit; parameter-shift at {args.shots} shots per tape; adjoint "
        f"{adjoint_seconds:.2f} s; shadow options: "
        + ("defaults" if args.bases is None else f"bases={args.bases}"),
        f"{'seed':>4} {'PS shots':>9} {'default shots':>13} {'PS sq.err':>10} "
        f"{'default sq.err':>14} {'PS s':>6} {'default s':>9}  default split",
    ]
    print("\n".join(lines))
    rows = []
    for seed in range(args.seeds):
        g_ps, _, t_ps, _ = _gradient(body, n, "parameter-shift", args.shots, seed, w)
        g_sh, _, t_sh, recs = _gradient(
            body, n, "shadow", args.shots, seed + 1000, w, gradient_kwargs={**options, "seed": seed}
        )
        rec = recs[-1]
        e_ps, e_sh = float(np.sum((g_ps - exact) ** 2)), float(np.sum((g_sh - exact) ** 2))
        split = rec.split
        text = (
            f"{split['shadow_snapshots']} snapshots, {split['parameter_shift_shots']} PS shots "
            f"on {len(split['parameter_shift_components'])} components, {rec.circuits} circuits"
        )
        line = (
            f"{seed:>4} {shots_ps - forward:>9} {shots_sh - forward:>13} {e_ps:>10.3f} "
            f"{e_sh:>14.3f} {t_ps:>6.1f} {t_sh:>9.1f}  {text}"
        )
        print(line, flush=True)
        lines.append(line)
        rows.append((e_ps, e_sh, t_ps, t_sh))
    data = np.array(rows)
    rng = np.random.default_rng(12345)
    idx = rng.integers(0, len(data), size=(args.bootstrap, len(data)))
    ratios = data[idx, 1].mean(1) / data[idx, 0].mean(1)
    ratio = data[:, 1].mean() / data[:, 0].mean()
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    summary = (
        f"MSE default / parameter-shift = {ratio:.3f} (paired bootstrap 95% CI {lo:.3f}-{hi:.3f},"
        f" {len(data)} seeds); MSE parameter-shift {data[:, 0].mean():.3f}, default "
        f"{data[:, 1].mean():.3f}; wall time per gradient: parameter-shift "
        f"{np.median(data[:, 2]):.1f} s, default {np.median(data[:, 3]):.1f} s (medians)"
    )
    print(summary)
    lines.append(summary)
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, f"default_at_scale_{args.family}_n{n}")
    if args.bases is not None:
        stem += f"_bases{args.bases}"
    with open(stem + ".txt", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG")
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    seeds = np.arange(len(data))
    ax.bar(seeds - 0.2, data[:, 0], 0.4, label="parameter-shift")
    ax.bar(seeds + 0.2, data[:, 1], 0.4, label="shadow (default options)")
    ax.set_xlabel("seed")
    ax.set_ylabel("summed squared error")
    ax.set_title(f"n={n} HEA + TFIM: MSE ratio {ratio:.2f} [{lo:.2f}, {hi:.2f}]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=120)
    print(f"saved {stem}.txt and .png")


if __name__ == "__main__":
    main()
