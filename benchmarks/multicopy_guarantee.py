"""Guarantee check of diff_method="gentle-multicopy" (issue 4 acceptance).

Over seeded random 2-4 qubit circuits, both register variants, count runs with
``max_j |g_j - d_j f| > epsilon`` against exact gradients (analytic parameter-shift) and test
``P(failure) <= delta`` with a one-sided binomial test at 1%. A negative control divides the
default batch size by 10 and must fail the same test.

    python benchmarks/multicopy_guarantee.py [runs]
"""

from __future__ import annotations

import sys

import numpy as np
import pennylane as qml
from scipy.stats import binom

import pennylane_shadowgrad as sg

EPSILON, DELTA = 0.25, 0.05


def random_tape(seed: int, variant: str) -> qml.tape.QuantumScript:
    """A layered RY/RZ + CNOT circuit on 2-4 qubits with all angles trainable."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    ops = []
    for _ in range(2):
        for w in range(n):
            ops.append(qml.RY(qml.numpy.array(rng.uniform(0, 2 * np.pi), requires_grad=True), w))
            ops.append(qml.RZ(qml.numpy.array(rng.uniform(0, 2 * np.pi), requires_grad=True), w))
        ops.extend(qml.CNOT([w, w + 1]) for w in range(n - 1))
    if variant == "two":
        obs = qml.Projector([0] * n, wires=range(n))  # a fidelity loss: rank 1
    else:
        obs = qml.Z(0) @ qml.Z(n - 1) + 0.5 * qml.X(1)
    tape = qml.tape.QuantumScript(ops, [qml.expval(obs)])
    tape.trainable_params = list(range(sum(op.num_params for op in ops)))
    return tape


def _exact(tape, dev):
    tapes, fn = qml.gradients.param_shift(tape)
    return np.array(fn(qml.execute(tapes, dev)), dtype=float)


def gradient_error(seed: int, variant: str, batch_divisor: int = 1, dev=None) -> tuple:
    """``(max error, report)`` of one seeded run of the transform on ``random_tape(seed)``."""
    dev = dev or qml.device("default.qubit")
    tape = random_tape(seed, variant)
    kwargs = {"epsilon": EPSILON, "delta": DELTA, "register": variant, "seed": seed}
    if batch_divisor != 1:
        with sg.record() as rec:
            tapes, fn = sg.gentle_multicopy_grad(tape, **kwargs)
            fn(qml.execute(tapes, dev))
        kwargs["batch_size"] = max(1, rec[0].report["constants"]["batch_size"] // batch_divisor)
    with sg.record() as rec:
        tapes, fn = sg.gentle_multicopy_grad(tape, **kwargs)
        est = np.array(fn(qml.execute(tapes, dev)), dtype=float)
    return float(np.max(np.abs(est - _exact(tape, dev)))), rec[0].report


def binomial_test(failures: int, runs: int, delta: float = DELTA) -> float:
    """One-sided p-value of ``failures`` under ``P(failure) = delta``."""
    return float(binom.sf(failures - 1, runs, delta))


def experiment(runs: int, batch_divisor: int = 1) -> dict:
    dev = qml.device("default.qubit")
    errors, flagged, copies = [], 0, []
    for i in range(runs):
        variant = "two" if i % 2 else "single"
        err, rep = gradient_error(1000 + i, variant, batch_divisor, dev)
        errors.append(err)
        flagged += bool(rep["failure_bound_exceeds_delta"])
        copies.append(rep["copies"]["total"])
    failures = int(np.sum(np.array(errors) > EPSILON))
    return {
        "runs": runs,
        "failures": failures,
        "p_value": binomial_test(failures, runs),
        "rejected": binomial_test(failures, runs) < 0.01,
        "max_error": float(np.max(errors)),
        "median_error": float(np.median(errors)),
        "flagged_by_damage_bound": flagged,
        "median_copies": float(np.median(copies)),
    }


def main(runs: int = 200) -> None:
    controls = [("theory batch size", 1), ("negative control: batch / 10", 10)]
    # The theoretical batch is conservative (union bound over the worst-case round limit):
    # also show where the guarantee does break.
    controls += [("batch / 100", 100), ("batch / 1000", 1000)]
    for label, div in controls:
        r = experiment(runs, div)
        print(
            f"{label}: {r['failures']}/{r['runs']} runs with max error > eps={EPSILON} "
            f"(delta={DELTA}); one-sided binomial p = {r['p_value']:.3g} -> "
            f"{'REJECTED' if r['rejected'] else 'not rejected'} at 1%; median max error "
            f"{r['median_error']:.3f}, worst {r['max_error']:.3f}; damage bound > delta in "
            f"{r['flagged_by_damage_bound']} runs; median copies {r['median_copies']:.3g}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
