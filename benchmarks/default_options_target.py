"""The issue's headline case with a QNode's DEFAULT options, as a user would run it.

n=3 qubits, 34 layers of RY/RZ on every qubit and a CNOT ring (M=204), observable Z(0).
Parameter-shift runs at 100 shots per tape; ``diff_method="shadow"`` (default options, i.e.
``strategy="auto"`` with its 5% pilot) gets the same number of gradient shots, counted by
``qml.Tracker`` (the forward pass is subtracted). Prints both gradient MSEs (summed over
components, against the adjoint gradient) over R seeded repetitions and their ratio.

Usage: ``python benchmarks/default_options_target.py [--reps 20] [--layers 34]``; ``--quick``
runs a smoke test (3 repetitions, 8 layers).
"""

import argparse

import numpy as np
import pennylane as qml
from pennylane import numpy as pnp

import pennylane_shadowgrad  # noqa: F401  (registers diff_method="shadow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--layers", type=int, default=34)
    parser.add_argument("--shots-per-tape", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="3 repetitions, 8 layers")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.layers = min(args.reps, 3), min(args.layers, 8)
    n, layers = 3, args.layers
    weights = pnp.array(
        np.random.default_rng(2024).uniform(0, 2 * np.pi, (layers, n, 2)), requires_grad=True
    )

    def circuit(w):
        for layer in range(layers):
            for q in range(n):
                qml.RY(w[layer, q, 0], q)
                qml.RZ(w[layer, q, 1], q)
            for q in range(n):
                qml.CNOT([q, (q + 1) % n])
        return qml.expval(qml.Z(0))

    exact_qnode = qml.QNode(circuit, qml.device("lightning.qubit"), diff_method="adjoint")
    exact = qml.grad(exact_qnode)(weights)
    total = 2 * 2 * n * layers * args.shots_per_tape
    mse = {}
    for method, shots in (("parameter-shift", args.shots_per_tape), ("shadow", total)):
        errors, grad_shots = [], None
        for rep in range(args.reps):
            dev = qml.device("default.qubit", seed=100 + rep)
            qnode = qml.QNode(circuit, dev, diff_method=method, shots=shots)
            with qml.Tracker(dev) as tracker:
                grad = qml.grad(qnode)(weights)
            grad_shots = tracker.totals["shots"] - shots  # minus the forward pass
            errors.append(np.sum((grad - exact) ** 2))
            print(f"  {method}: repetition {rep + 1}/{args.reps}", flush=True)
        errors = np.array(errors)
        mse[method] = errors.mean()
        sem = errors.std(ddof=1) / np.sqrt(len(errors))
        print(f"{method:>16}: gradient shots {grad_shots}, MSE {errors.mean():.4g} +- {sem:.2g}")
    print(
        f"M={2 * n * layers}, ratio MSE(parameter-shift) / MSE(shadow, default options) = "
        f"{mse['parameter-shift'] / mse['shadow']:.2f}"
    )


if __name__ == "__main__":
    main()
