"""Shadow gradients on lightning.gpu: correctness against default.qubit, and timing against
parameter-shift. Run ``python benchmarks/gpu_check.py`` (``--quick``: the correctness check and
the smallest timing case only); exits cleanly without lightning.gpu.

The scale section (``--scale-n``, default 20 24 28) runs the default options above 12 qubits
(sparse engine, proxy-planned split) on a depth-3 brickwork (RY and RZ per qubit per layer,
CZ bricks, ``Z_{n/2-1} Z_{n/2}``, 30,000 shots): every component within 5 reported standard
errors of the adjoint gradient and exactly zero outside the light cone, and the wall time of
one gradient against parameter-shift at 100 shots per tape. ``--device lightning.qubit`` runs
the same checks on the CPU (for testing the script)."""

import argparse
import sys
import time

import numpy as np
import pennylane as qml
from scale import brickwork  # the family of benchmarks/scale.py

import pennylane_shadowgrad

DEVICE = "lightning.gpu"


def _gpu_device(wires):
    try:
        return qml.device(DEVICE, wires=wires, seed=1)
    except Exception as exc:  # not installed, no GPU or no CUDA runtime
        print(f"{DEVICE} is not available ({type(exc).__name__}: {exc}); nothing to check.")
        sys.exit(0)


def scale_rows(ns, shots=30000):
    """Default options above 12 qubits: correctness within 5 SE, wall time against PS."""
    ok = True
    print(
        f"{'n':>3} {'M':>4} {'max |z|':>8} {'zeros':>6} {'shadow s':>9} {'PS s':>7} "
        f"{'ratio':>6}  split"
    )
    for n in ns:
        body, _ = brickwork(n)
        w = qml.numpy.array(
            np.random.default_rng(n).uniform(0, 2 * np.pi, (3, n, 2)), requires_grad=True
        )
        exact = np.asarray(qml.grad(qml.QNode(body, _gpu_device(n), diff_method="adjoint"))(w))
        q = qml.QNode(
            body, _gpu_device(n), diff_method="shadow", shots=shots, gradient_kwargs={"seed": 1}
        )
        start = time.perf_counter()
        with pennylane_shadowgrad.record() as rec:
            grad = np.asarray(qml.grad(q)(w))
        t_shadow = time.perf_counter() - start
        se = np.asarray(rec[-1].stderr[0]).reshape(grad.shape)
        inside = np.abs(exact) > 1e-10
        z = float(np.max(np.abs(grad - exact)[inside] / se[inside]))
        zeros = bool(np.all(grad[~inside] == 0.0))
        ps = qml.QNode(body, _gpu_device(n), diff_method="parameter-shift", shots=100)
        start = time.perf_counter()
        qml.grad(ps)(w)
        t_ps = time.perf_counter() - start
        row_ok = z <= 5 and zeros
        ok &= row_ok
        print(
            f"{n:>3} {w.size:>4} {z:>8.2f} {zeros!s:>6} {t_shadow:>9.2f} {t_ps:>7.2f} "
            f"{t_shadow / t_ps:>6.2f}  {rec[-1].plan} {'OK' if row_ok else 'FAIL'}",
            flush=True,
        )
    return ok


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
    parser.add_argument("--scale-n", type=int, nargs="*", default=[20, 24, 28])
    parser.add_argument("--device", default="lightning.gpu")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
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
    if args.scale_n and not args.quick:
        ok &= scale_rows(args.scale_n)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
