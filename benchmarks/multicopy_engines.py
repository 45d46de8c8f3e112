"""Exact against statistical engine on small circuits and small batches (issue 4 validation).

For each circuit, the same protocol runs with ``engine="exact"`` (Lüders threshold instruments
on the joint state of ``b`` copies) and ``engine="statistical"`` (binomial law on undisturbed
copies plus a damage bound). Printed: the largest gap between the exact firing probability and
the undisturbed (binomial) one, for the first check of a batch (must be ~0) and for later checks
(the disturbance the statistical engine idealises away), the final error distributions, and how
often the statistical report flags its idealisation.

    python benchmarks/multicopy_engines.py [runs]      # 40 runs by default
    python benchmarks/multicopy_engines.py --quick     # 5 runs (smoke test)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pennylane as qml

import pennylane_shadowgrad as sg


def _tape(ops, obs):
    tape = qml.tape.QuantumScript(ops, [qml.expval(obs)])
    tape.trainable_params = list(range(sum(op.num_params for op in ops)))
    return tape


def circuits():
    a = qml.numpy.array
    return {
        "1q RY-RZ-RY, <Z>, single, b=16": (
            _tape([qml.RY(a(0.9), 0), qml.RZ(a(0.4), 0), qml.RY(a(-0.7), 0)], qml.Z(0)),
            "single",
            16,
        ),
        "2q layered, <Z0 Z1>, single, b=8": (
            _tape(
                [
                    qml.RY(a(0.8), 0),
                    qml.RY(a(1.9), 1),
                    qml.CNOT([0, 1]),
                    qml.RZ(a(0.3), 1),
                    qml.RY(a(-0.5), 0),
                ],
                qml.Z(0) @ qml.Z(1),
            ),
            "single",
            8,
        ),
        "1q fidelity |0><0|, two-register, b=8": (
            _tape(
                [qml.RY(a(1.2), 0), qml.RZ(a(0.5), 0), qml.RX(a(0.4), 0)],
                qml.Projector([0], wires=0),
            ),
            "two",
            8,
        ),
    }


def compare(runs: int = 40, epsilon: float = 0.5) -> None:
    dev = qml.device("default.qubit")
    print(f"{runs} seeded runs per circuit and engine (seeds 0..{runs - 1}), epsilon={epsilon}")
    for name, (tape, register, b) in circuits().items():
        start = time.perf_counter()
        ps_t, ps_fn = qml.gradients.param_shift(tape)
        exact = np.array(ps_fn(qml.execute(ps_t, dev)), dtype=float)
        out, later_sum, counts = {}, 0.0, [0, 0]
        for engine in ("exact", "statistical"):
            errors, first, later, flagged = [], 0.0, 0.0, 0
            for seed in range(runs):
                with sg.record() as rec:
                    tapes, fn = sg.gentle_multicopy_grad(
                        tape,
                        epsilon=epsilon,
                        register=register,
                        engine=engine,
                        batch_size=b,
                        seed=seed,
                        max_rounds=30,
                    )
                    est = np.array(fn(qml.execute(tapes, dev)), dtype=float)
                rep = rec[0].report
                errors.append(np.max(np.abs(est - exact)))
                if engine == "exact":
                    eng = rep["engine_report"]
                    first = max(first, eng["first_check_gap"])
                    later = max(later, eng["later_check_gap"])
                    later_sum += eng["later_check_gap_mean"] * eng["later_checks"]
                    counts[0] += eng["first_checks"]
                    counts[1] += eng["later_checks"]
                else:
                    flagged += bool(rep["failure_bound_exceeds_delta"])
            out[engine] = (np.array(errors), first, later, flagged)
            elapsed = time.perf_counter() - start
            print(f"  {name}: {engine} engine done [{elapsed:.0f} s]", flush=True)
        e_ex, first, later, _ = out["exact"]
        e_st, *_, flagged = out["statistical"]
        q = [0.5, 0.9, 1.0]
        print(f"{name}:")
        print(
            f"  firing probability |exact - binomial|: first check of a batch max {first:.2e} "
            f"({counts[0]} checks); later checks max {later:.3f}, mean "
            f"{later_sum / max(counts[1], 1):.3f} ({counts[1]} checks)"
        )
        print(
            f"  max error quantiles (50/90/100%): exact {np.quantile(e_ex, q).round(3)}, "
            f"statistical {np.quantile(e_st, q).round(3)}; P(err > eps={epsilon}): exact "
            f"{np.mean(e_ex > epsilon):.2f}, statistical {np.mean(e_st > epsilon):.2f}"
        )
        print(
            f"  statistical report flags its idealisation (failure bound > delta) in "
            f"{flagged}/{runs} runs  [{time.perf_counter() - start:.0f} s]",
            flush=True,
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=int, nargs="?", default=None, help="runs (default 40)")
    parser.add_argument("--quick", action="store_true", help="5 runs per circuit and engine")
    args = parser.parse_args(argv)
    compare(args.runs or (5 if args.quick else 40))


if __name__ == "__main__":
    main()
