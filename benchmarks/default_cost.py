"""Classical time and peak memory of the default strategy against the pure shadow estimator.

For each case, in the same process: the gradient transform (``shadow_grad(tape)``: for the
default this includes the exact simulation of the ideal circuit and the split) and the
processing function (``fn(results)``, once the device results are in), for the default
(``strategy="auto"``) and for ``strategy="pure"``; device execution is excluded. Peak memory
is the largest ``tracemalloc`` peak (numpy reports its buffers to it) over the same calls.
Ratios are default / pure; the target is <= 2 for time and memory.

Cases: ring circuits (RY, RZ on every qubit, CNOT ring) with a Pauli-sum observable,
n = 4, M = 48 and n = 12 (``--large-layers`` layers), T = 20000 shots.

    python benchmarks/default_cost.py
    python benchmarks/default_cost.py --quick      # n = 4 only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np
import pennylane as qml
from pennylane.tape import QuantumScript

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shadow_vs_shift import ring_ops

from pennylane_shadowgrad import shadow_grad


def case_tape(n: int, layers: int, shots: int, seed: int) -> QuantumScript:
    rng = np.random.default_rng([seed, n, layers])
    params = rng.uniform(0, 2 * np.pi, 2 * n * layers)
    obs = qml.Z(0) @ qml.Z(1) + 0.5 * qml.X(n - 1) + 0.3 * qml.Y(n // 2)
    tape = QuantumScript(ring_ops(n, layers, params), [qml.expval(obs)], shots=shots)
    tape.trainable_params = list(range(len(params)))
    return tape


def measure(tape: QuantumScript, strategy: str | None, repeats: int) -> dict:
    """Median transform and processing CPU times (s), then the tracemalloc peak (MiB) of one
    more run (tracing slows Python down, so it is not on during the timed runs)."""
    dev = qml.device("default.qubit", seed=1)
    kwargs = {} if strategy is None else {"strategy": strategy}
    t_tr, t_pp = [], []
    for r in range(repeats):
        start = time.process_time()
        tapes, fn = shadow_grad(tape, seed=r, **kwargs)
        t_tr.append(time.process_time() - start)
        results = qml.execute(tapes, dev, diff_method=None)
        start = time.process_time()
        fn(results)
        t_pp.append(time.process_time() - start)
    tracemalloc.start()
    tapes, fn = shadow_grad(tape, seed=repeats, **kwargs)
    _, p1 = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    results = qml.execute(tapes, dev, diff_method=None)
    tracemalloc.start()
    fn(results)
    _, p2 = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "transform": float(np.median(t_tr)),
        "processing": float(np.median(t_pp)),
        "peak": max(p1, p2) / 2**20,
        "tapes": len(tapes),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shots", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    cases = [(4, 6)] if args.quick else [(4, 6), (12, args.large_layers)]
    print(
        "| n | M | strategy | tapes | transform s | processing s | total s | peak MiB "
        "| time ratio | memory ratio |"
    )
    print("|" + "---|" * 10)
    for n, layers in cases:
        tape = case_tape(n, layers, args.shots, args.seed)
        repeats = args.repeats if n < 10 else 1
        pure = measure(tape, "pure", repeats)
        auto = measure(tape, None, repeats)
        for name, row in (("pure", pure), ("default", auto)):
            total = row["transform"] + row["processing"]
            ref = pure["transform"] + pure["processing"]
            print(
                f"| {n} | {2 * n * layers} | {name} | {row['tapes']} | {row['transform']:.3f} "
                f"| {row['processing']:.3f} | {total:.3f} | {row['peak']:.0f} "
                f"| {total / ref:.2f} | {row['peak'] / pure['peak']:.2f} |",
                flush=True,
            )
    print(
        f"\nCPU seconds (median of {args.repeats}; n >= 10: one run), T = {args.shots}; "
        "peak memory from a separate traced run"
    )


if __name__ == "__main__":
    main()
