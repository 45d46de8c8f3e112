"""Classical cost of the shadow gradient against simulating the parameter-shift gradient.

Circuit: ``n`` qubits (default 10), ``layers`` x (RY, RZ on every qubit + CNOT ring), so
``M = 2 n layers`` parameters (default 200), observable Z(0). Budget: ``T`` shots (default
10^4) per gradient for both methods.

Timed in the same process:

* the shadow post-processing alone (``fn(results)`` of ``shadow_grad(tape, snapshots=T)``
  once the device results are in), plain and inside ``pennylane_shadowgrad.record()`` (which
  also computes jackknife standard errors: 20 extra sweeps);
* executing the snapshot tapes on ``default.qubit`` and on ``lightning.qubit``;
* the whole parameter-shift gradient on ``lightning.qubit`` with the same ``T`` shots spread
  evenly over param-shift's tapes (transform + execution + post-processing).

Each timing is the median of ``--repeats`` runs (the slow ``record()`` timing runs
``--record-repeats`` times, once by default); wall and CPU seconds are both printed, since wall
times on a shared machine are inflated by other load. The question it answers: is the
classical side of the shadow method cheap next to what a simulator spends on parameter-shift?

    python benchmarks/classical_cost.py
    python benchmarks/classical_cost.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pennylane as qml
from pennylane.tape import QuantumScript

import pennylane_shadowgrad as sg
from pennylane_shadowgrad import shadow_grad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shadow_vs_shift import ring_ops

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def median_time(fn, repeats: int) -> tuple[tuple[float, float], object]:
    """Median wall and CPU (``process_time``, all threads of this process) seconds."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return (float(np.median(walls)), float(np.median(cpus))), out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller circuit (< 2 min)")
    parser.add_argument("--qubits", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--snapshots", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument(
        "--record-repeats", type=int, default=1, help="repeats of the slow record() timing"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    n = args.qubits or (8 if args.quick else 10)
    layers = args.layers or (5 if args.quick else 10)
    total_shots = args.snapshots
    os.makedirs(RESULTS, exist_ok=True)

    params = np.random.default_rng(args.seed).uniform(0, 2 * np.pi, 2 * n * layers)
    ops = ring_ops(n, layers, params)
    tape = QuantumScript(ops, [qml.expval(qml.Z(0))], shots=total_shots)
    dq = qml.device("default.qubit", seed=args.seed)
    lq = qml.device("lightning.qubit", wires=n, seed=args.seed)

    print(f"n={n}, M={2 * n * layers}, T={total_shots}: timing the shadow gradient ...", flush=True)
    # shadow: build tapes once, execute on both simulators, then time the processing only
    stapes, sfn = shadow_grad(tape, snapshots=total_shots, seed=args.seed, strategy="pure")
    num_bases = sum(t.batch_size or 1 for t in stapes)
    t_exec_dq, results = median_time(
        lambda: qml.execute(stapes, dq, diff_method=None), args.repeats
    )
    t_exec_lq, _ = median_time(lambda: qml.execute(stapes, lq, diff_method=None), args.repeats)
    t_post, _ = median_time(lambda: sfn(results), args.repeats)

    def post_recorded():
        with sg.record() as rec:
            sfn(results)
        return rec

    print("  ... and its post-processing inside record() ...", flush=True)
    t_post_rec, rec = median_time(post_recorded, args.record_repeats)

    print("timing parameter-shift at the same shots ...", flush=True)
    # parameter-shift on lightning.qubit at the same total shots
    probe_tapes, _ = qml.gradients.param_shift(QuantumScript(ops, [qml.expval(qml.Z(0))]))
    per_tape = max(1, total_shots // len(probe_tapes))
    ps_tape = QuantumScript(ops, [qml.expval(qml.Z(0))], shots=per_tape)

    def ps_gradient():
        tapes, fn = qml.gradients.param_shift(ps_tape)
        return fn(qml.execute(tapes, lq, diff_method=None))

    t_ps, _ = median_time(ps_gradient, args.repeats)
    with qml.Tracker(lq) as tracker:
        ps_gradient()
    ps_shots, ps_circuits = tracker.totals["shots"], tracker.totals["executions"]

    def ps_gradient_dq():
        tapes, fn = qml.gradients.param_shift(ps_tape)
        return fn(qml.execute(tapes, dq, diff_method=None))

    t_ps_dq, _ = median_time(ps_gradient_dq, 1)

    m = 2 * n * layers
    print(f"\n### classical cost: n={n}, M={m}, T={total_shots}, Z(0), median of {args.repeats}\n")
    print(
        "| what | device | circuits | shots | wall s | CPU s | wall / ps(lightning) "
        "| CPU / ps(lightning) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = [
        ("shadow post-processing fn(results)", "-", "-", "-", t_post),
        ("shadow post-processing inside record() (+20 sweeps)", "-", "-", "-", t_post_rec),
        ("shadow snapshot tapes, execution", "default.qubit", num_bases, total_shots, t_exec_dq),
        ("shadow snapshot tapes, execution", "lightning.qubit", num_bases, total_shots, t_exec_lq),
        ("shadow total (execution + post-processing)", "default.qubit", num_bases, total_shots,
         (t_exec_dq[0] + t_post[0], t_exec_dq[1] + t_post[1])),
        ("shadow total (execution + post-processing)", "lightning.qubit", num_bases,
         total_shots, (t_exec_lq[0] + t_post[0], t_exec_lq[1] + t_post[1])),
        (f"param-shift gradient ({per_tape} shots/tape)", "lightning.qubit", ps_circuits,
         ps_shots, t_ps),
        (f"param-shift gradient ({per_tape} shots/tape, 1 run)", "default.qubit", ps_circuits,
         ps_shots, t_ps_dq),
    ]  # fmt: skip
    for what, device, circuits, shots, (wall, cpu) in rows:
        print(
            f"| {what} | {device} | {circuits} | {shots} | {wall:.3f} | {cpu:.3f} "
            f"| {wall / t_ps[0]:.3f} | {cpu / t_ps[1]:.3f} |"
        )
    print(
        f"\nplan: {rec[0].plan}; wall: post-processing / param-shift(lightning) = "
        f"{t_post[0] / t_ps[0]:.3f} (inside record(): {t_post_rec[0] / t_ps[0]:.3f}); CPU: "
        f"{t_post[1] / t_ps[1]:.3f} (inside record(): {t_post_rec[1] / t_ps[1]:.3f}). "
        f"record() timed {args.record_repeats}x, the rest median of {args.repeats}."
    )
    plot(rows, os.path.join(RESULTS, "classical_cost.png"), f"n={n}, M={m}, T={total_shots}")


def plot(rows, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [f"{what}\n{device}" if device != "-" else what for what, device, *_ in rows]
    ax.barh(range(len(rows)), [r[-1][0] for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set(xscale="log", xlabel="wall seconds per gradient (median)", title=title)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
