"""Shadow gradients on lightning.gpu: correctness against default.qubit, and timing against
parameter-shift. Run ``python benchmarks/gpu_check.py`` (``--quick``: the correctness check and
the smallest timing case only); exits cleanly without lightning.gpu."""

import argparse
import sys
import time

import numpy as np
import pennylane as qml

import pennylane_shadowgrad  # noqa: F401


def _gpu_device(wires):
    try:
        return qml.device("lightning.gpu", wires=wires, seed=1)
    except Exception as exc:  # not installed, no GPU or no CUDA runtime
        print(f"lightning.gpu is not available ({type(exc).__name__}: {exc}); nothing to check.")
        sys.exit(0)


def circuit(n, layers):
    def f(x):
        x = x.reshape(layers, n, 2)
        for layer in range(layers):
            for w in range(n):
                qml.RX(x[layer, w, 0], wires=w)
                qml.RY(x[layer, w, 1], wires=w)
            for w in range(n - 1):
                qml.CNOT(wires=[w, w + 1])
        return qml.expval(qml.Z(0) @ qml.Z(n - 1))

    return f


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="correctness + one timing case")
    args = parser.parse_args(argv)
    _gpu_device(2)
    rng = np.random.default_rng(0)
    kw = {"strategy": "pure"}
    # correctness: same seeds on the method side, exact reference from default.qubit
    n, layers, shots = 3, 3, 27000
    x = qml.numpy.array(rng.uniform(0, 2 * np.pi, n * layers * 2), requires_grad=True)
    exact = qml.grad(
        qml.QNode(circuit(n, layers), qml.device("default.qubit"), diff_method="backprop")
    )(x)
    gpu = qml.QNode(
        circuit(n, layers), _gpu_device(n), diff_method="shadow", shots=shots, gradient_kwargs=kw
    )
    est = qml.grad(gpu)(x)
    err = np.max(np.abs(est - exact))
    ok = err < 7 * 3**2 / np.sqrt(shots)
    print(
        f"correctness n={n}, M={x.size}, T={shots}: max |shadow - exact| = {err:.4f}",
        "OK" if ok else "FAIL",
    )
    print(f"{'n':>3} {'M':>4} {'shots':>7} {'shadow s':>9} {'param-shift s':>14} {'ratio':>6}")
    for n, layers in [(2, 10)] if args.quick else [(2, 10), (3, 8), (4, 6), (6, 4)]:
        x = qml.numpy.array(rng.uniform(0, 2 * np.pi, n * layers * 2), requires_grad=True)
        times = []
        for method, gk in [("shadow", kw), ("parameter-shift", {})]:
            q = qml.QNode(
                circuit(n, layers),
                _gpu_device(n),
                diff_method=method,
                shots=4000,
                gradient_kwargs=gk,
            )
            qml.grad(q)(x)  # warm-up
            start = time.perf_counter()
            qml.grad(q)(x)
            times.append(time.perf_counter() - start)
        print(
            f"{n:>3} {x.size:>4} {4000:>7} {times[0]:>9.3f} {times[1]:>14.3f}",
            f"{times[1] / times[0]:>6.1f}",
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
