r"""Training a fidelity loss with gentle multi-copy gradients
=============================================================

Parameter-shift pays two circuits per parameter for every gradient. The gentle multi-copy
protocol of Abbas et al. (NeurIPS 2023) instead keeps a classical *hypothesis* state
:math:`\sigma`, checks its predictions of every derivative against batches of copies of the
circuit's output with gentle threshold measurements swept through the layers, and learns from
the few checks that fire. When a whole sweep stays silent, every derivative is read off
:math:`\sigma` at once.

Here we prepare a target state, train a small ansatz to maximise its fidelity with
``diff_method="gentle-multicopy"``, and print the protocol's resource report beside
parameter-shift sized for the same accuracy. Everything quantum in the protocol is
*emulated* by the statistical engine from the device's analytic state: the report says so.
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np
import pennylane as qml

import pennylane_shadowgrad as sg

# sphinx_gallery_start_ignore
parser = argparse.ArgumentParser(description="A fidelity loss with gentle multi-copy gradients.")
parser.add_argument("--quick", action="store_true", help="3 training steps instead of 8")
args = parser.parse_args()
# sphinx_gallery_end_ignore

######################################################################
# A two-qubit ansatz and a fidelity loss
# --------------------------------------
# The loss is :math:`1 - \langle 0 0| U(\theta)^\dagger \rho_{\rm target} \dots`: we measure the
# projector onto :math:`|00\rangle` after un-preparing the target, a rank-1 observable, so the
# two-register variant (an :math:`\omega` register holding the observable as a state) applies.

dev = qml.device("default.qubit", wires=2)
target = np.array([0.3, -1.2, 0.8, 0.5])
layers = 3


def ansatz(theta):
    for layer in range(layers):
        qml.RY(theta[layer, 0], 0)
        qml.RY(theta[layer, 1], 1)
        qml.CNOT([0, 1])
        qml.RZ(theta[layer, 2], 1)


def unprepare():
    qml.adjoint(qml.RY)(target[3], 1)
    qml.adjoint(qml.CNOT)([0, 1])
    qml.adjoint(qml.RY)(target[1], 1)
    qml.adjoint(qml.RY)(target[0], 0)


def fidelity(theta):
    ansatz(theta)
    unprepare()
    return qml.expval(qml.Projector([0, 0], wires=[0, 1]))


gentle = qml.QNode(
    fidelity,
    dev,
    diff_method="gentle-multicopy",
    gradient_kwargs={"epsilon": 0.1, "register": "two", "seed": 0},
)
exact = qml.QNode(fidelity, dev, diff_method="backprop")

######################################################################
# Training
# --------
# Gradient ascent on the fidelity. Each step records the protocol's report.

theta0 = np.random.default_rng(1).uniform(0, np.pi, (layers, 3))
theta0 = qml.numpy.array(theta0, requires_grad=True)
theta = theta0
reports, fidelities = [], [float(exact(theta))]
for step in range(3 if args.quick else 8):
    with sg.record() as rec:
        grad = qml.grad(gentle)(theta)
    reports.append(rec[0].report)
    err = np.max(np.abs(grad - qml.grad(exact)(theta)))
    theta = theta + 0.4 * grad
    fidelities.append(float(exact(theta)))
    print(
        f"step {step}: fidelity {float(exact(theta)):.3f}, max gradient error {err:.3f}, "
        f"firings {reports[-1]['firings']}, copies {reports[-1]['copies']['total']:.3g}"
    )

######################################################################
# The resource report beside parameter-shift
# ------------------------------------------
# Both sized for every derivative within epsilon with probability 1 - delta (worst-case
# Hoeffding). At this size parameter-shift is far cheaper: the protocol pays off only for many
# parameters on few qubits, and the benchmark ``benchmarks/multicopy_scaling.py`` shows where.

rep = reports[-1]
ps = rep["parameter_shift"]
rows = [
    ("executed", rep["executed"], "executed on the device"),
    ("register", rep["register"], "-"),
    (
        "copies (batch / fresh / omega)",
        f"{rep['copies']['batch']} / {rep['copies']['fresh_estimate']} / "
        f"{rep['copies']['omega_preparation']}",
        f"{ps['copies']}",
    ),
    ("gate applications", f"{rep['gate_applications']:.3g}", f"{ps['gate_applications']:.3g}"),
    ("quantum memory (qubits)", rep["quantum_memory_qubits"]["total"], ps["quantum_memory_qubits"]),
    ("coherent depth", rep["coherent_depth"], "one circuit"),
    ("mid-circuit measurements", rep["mid_circuit_measurements"], 0),
    (
        "checks / firings / updates (bound)",
        f"{rep['checks']} / {rep['firings']} / {rep['learner_updates']} ({rep['mistake_bound']})",
        "-",
    ),
    (
        "batch size (source)",
        f"{rep['constants']['batch_size']} ({rep['constants']['source']})",
        f"{ps['shots_per_circuit']} shots x {ps['circuits']} circuits",
    ),
    (
        "damage / failure bound",
        f"{rep['damage_bound']:.3g} / {rep['failure_bound']:.3g}",
        f"{rep['delta']}",
    ),
    ("classical seconds", f"{rep['classical_seconds']:.3f}", "-"),
]
print(f"\n{'':38s} {'gentle-multicopy':>40s}   parameter-shift")
for name, a, b in rows:
    print(f"{name:38s} {a!s:>40s}   {b}")
for note in rep["notes"]:
    print("note:", note)

######################################################################
# Reusing the hypothesis between steps
# ------------------------------------
# Between two optimizer steps the state moves little, so the hypothesis certified at one step
# is a good start for the next. A :class:`~pennylane_shadowgrad.WarmStart` carries it: every
# certified gradient stores its :math:`\sigma`, and the next one starts from it, mixed with a
# little of :math:`I/2^n`. The guarantee does not depend on the start (the last silent sweep
# certifies :math:`\sigma` on fresh copies); only the copies do. We repeat the training with
# one and compare the copies per step.

warm = sg.WarmStart()
gentle_warm = qml.QNode(
    fidelity,
    dev,
    diff_method="gentle-multicopy",
    gradient_kwargs={"epsilon": 0.1, "register": "two", "seed": 0, "warm_start": warm},
)
theta = theta0
for step, cold in enumerate(reports):
    with sg.record() as rec:
        grad = qml.grad(gentle_warm)(theta)
    err = np.max(np.abs(grad - qml.grad(exact)(theta)))
    theta = theta + 0.4 * grad
    print(
        f"step {step}: copies cold {cold['copies']['total']:.3g}, warm "
        f"{rec[0].report['copies']['total']:.3g} (warm start used: "
        f"{rec[0].report['warm_start']['used']}), max gradient error {err:.3f}"
    )

######################################################################
# The fidelity while training, and what every step's gradient would cost on a quantum computer
# (copies of the state and gate applications, from the reports) against parameter-shift sized
# for the same accuracy:

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
ax1.plot(fidelities, marker="o")
ax1.set_xlabel("step")
ax1.set_ylabel("fidelity with the target")
steps = np.arange(len(reports))
for k, (key, label) in enumerate([("copies", "copies"), ("gates", "gate applications")]):
    gentle = [r["copies"]["total"] if key == "copies" else r["gate_applications"] for r in reports]
    shift = [
        r["parameter_shift"]["copies" if key == "copies" else "gate_applications"] for r in reports
    ]
    ax2.bar(
        steps + 0.4 * k - 0.3,
        gentle,
        width=0.2,
        color=f"C{k}",
        label=f"gentle-multicopy {label}",
    )
    ax2.bar(
        steps + 0.4 * k - 0.1,
        shift,
        width=0.2,
        color=f"C{k}",
        alpha=0.4,
        label=f"parameter-shift {label}",
    )
ax2.set_yscale("log")
ax2.set_ylim(top=1e13)  # room for the legend
ax2.set_xlabel("step")
ax2.set_ylabel("per gradient")
ax2.legend(fontsize=7, ncols=2)
fig.tight_layout()
plt.show()
