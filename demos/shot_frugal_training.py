"""
Shot-frugal training with shadow gradients
==========================================

A gradient descent step does not need an exact gradient, only one whose error is small next
to the gradient itself (the "norm test" of adaptive-sampling SGD). ``diff_method="shadow"``
reports the single-shot variance of every component it estimates
(:attr:`GradientRecord.shot_variance`), so an optimizer can choose each step's shot budget
from data: few shots while the gradient is large, more near the minimum.

We train the same circuit twice, starting from the same point: once with a fixed budget of
parameter-shift shots per step, once with ``diff_method="shadow"`` (the hybrid
``strategy="auto"``) and a budget set from the reported variances. We print the exact loss and
the gradient shots spent (counted by ``qml.Tracker``).
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np
import pennylane as qml

import pennylane_shadowgrad as sg

# sphinx_gallery_start_ignore
parser = argparse.ArgumentParser(description="Shot-frugal training with shadow gradients.")
parser.add_argument("--quick", action="store_true", help="10 steps per loop instead of 30")
args = parser.parse_args()
# sphinx_gallery_end_ignore

n, layers = 3, 6
rng = np.random.default_rng(0)
init = rng.uniform(0, 2 * np.pi, 2 * n * layers)
observable = qml.Z(0) @ qml.Z(1) + qml.Z(1) @ qml.Z(2) + 0.5 * qml.X(0)


def ansatz(x):
    k = 0
    for _ in range(layers):
        for q in range(n):
            qml.RY(x[k], q)
            qml.RZ(x[k + 1], q)
            k += 2
        for q in range(n):
            qml.CNOT([q, (q + 1) % n])
    return qml.expval(observable)


exact_loss = qml.QNode(ansatz, qml.device("default.qubit"))

######################################################################
# Baseline: parameter-shift with a fixed 50 shots per shifted circuit
# --------------------------------------------------------------------
# Each step costs ``2 M * 50`` shots, whatever the gradient looks like.

steps, lr = (10 if args.quick else 30), 0.1
curves = {}
dev_ps = qml.device("default.qubit", seed=1)
grad_ps = qml.QNode(ansatz, dev_ps, diff_method="parameter-shift", shots=50)
x = qml.numpy.array(init, requires_grad=True)
shots_ps = 0
curves["parameter-shift, 50 shots per circuit"] = curve = [(0, float(exact_loss(x)))]
for step in range(steps):
    with qml.Tracker(dev_ps) as tracker:
        g = qml.jacobian(grad_ps)(x)
    shots_ps += tracker.totals["shots"] - 50  # minus the forward pass
    x = x - lr * g
    curve.append((shots_ps, float(exact_loss(x))))
    if step % 5 == 4:
        print(f"param-shift step {step + 1:2d}: loss {exact_loss(x):+.4f}  shots {shots_ps}")

######################################################################
# Shadow gradients with a variance-driven budget
# ----------------------------------------------
# Step ``t`` uses ``T_t`` shots; the record of the gradient gives the single-shot variances
# ``s_j``, and the next budget is the smallest ``T`` with ``sum_j s_j / T <= (theta |g|)^2``
# (norm test, ``theta = 0.8``), kept between 500 and 8000 shots.

dev_sh = qml.device("default.qubit", seed=2)
x = qml.numpy.array(init, requires_grad=True)
budget, shots_sh, theta = 2000, 0, 0.8
curves["shadow, variance-driven budget"] = curve = [(0, float(exact_loss(x)))]
for step in range(steps):
    grad_sh = qml.QNode(ansatz, dev_sh, diff_method="shadow", shots=budget)
    with qml.Tracker(dev_sh) as tracker, sg.record() as rec:
        g = qml.jacobian(grad_sh)(x)
    shots_sh += tracker.totals["shots"] - budget  # minus the forward pass
    x = x - lr * g
    noise = float(np.sum(rec[0].shot_variance[0]))
    budget = int(np.clip(noise / (theta**2 * max(float(np.sum(g**2)), 1e-12)), 500, 8000))
    curve.append((shots_sh, float(exact_loss(x))))
    if step % 5 == 4:
        print(
            f"shadow      step {step + 1:2d}: loss {exact_loss(x):+.4f}  shots {shots_sh}"
            f"  (next budget {budget})"
        )


######################################################################
# The exact loss after every step against the gradient shots spent so far:

fig, ax = plt.subplots(figsize=(6, 3.5))
for (name, points), marker in zip(curves.items(), ("s", "o")):
    spent, loss = zip(*points[1:])
    ax.plot(spent, loss, marker=marker, markersize=3, label=name)
ax.set_xscale("log")
ax.set_xlabel("gradient shots spent")
ax.set_ylabel("exact loss")
ax.legend()
fig.tight_layout()
plt.show()

######################################################################
# Both loops take the same steps; the shadow loop reaches a similar loss with the shots its
# variance estimates ask for, and spends more of them only where the gradient gets small.
