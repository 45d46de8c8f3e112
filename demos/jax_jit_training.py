r"""Jit-compiled training with shadow gradients in JAX
====================================================

``jax.jit`` compiles a whole training step (cost, its shadow gradient, and the parameter update)
into one function. The device runs outside the compiled graph through a callback, so the
snapshot circuits, their finite shots and the classical shadow sweep all work under ``jit``.
We minimise the energy of a two-qubit Hamiltonian with a small variational circuit.
"""

import argparse

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import pennylane as qml

import pennylane_shadowgrad  # noqa: F401  (registers diff_method="shadow")

# sphinx_gallery_start_ignore
parser = argparse.ArgumentParser(description="Jit-compiled training with shadow gradients.")
parser.add_argument("--quick", action="store_true", help="10 steps instead of 25")
args = parser.parse_args()
# sphinx_gallery_end_ignore

jax.config.update("jax_enable_x64", True)

######################################################################
# The cost: <H> for H = Z0 Z1 + 0.5 X0 + 0.5 X1, from 2000 shots; its gradient from 2000
# classical-shadow snapshots (one set shared by all derivatives: ``strategy="pure"``; the
# default ``"auto"`` would also mix in parameter-shift circuits where they are cheaper).

H = qml.Z(0) @ qml.Z(1) + 0.5 * qml.X(0) + 0.5 * qml.X(1)
dev = qml.device("default.qubit", wires=2, seed=0)


@qml.qnode(
    dev, interface="jax", diff_method="shadow", shots=2000, gradient_kwargs={"strategy": "pure"}
)
def energy(params):
    qml.RY(params[0], wires=0)
    qml.RY(params[1], wires=1)
    qml.CNOT(wires=[0, 1])
    qml.RX(params[2], wires=0)
    qml.RX(params[3], wires=1)
    return qml.expval(H)


######################################################################
# One compiled step of gradient descent.


@jax.jit
def step(params):
    value, grad = jax.value_and_grad(energy)(params)
    return params - 0.2 * grad, value


params = jnp.array([0.1, -0.2, 0.3, 0.4])
energies = []
for it in range(10 if args.quick else 25):
    params, value = step(params)
    energies.append(float(value))
    if it % 5 == 0:
        print(f"step {it:2d}: energy {value:.3f}")

######################################################################
# The energy falls towards the ground-state energy.

exact = min(jnp.linalg.eigvalsh(qml.matrix(H)))
print(f"final energy {energy(params):.3f} (2000 shots), exact ground state {exact:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(energies, marker="o", markersize=3, label="energy (2000 shots)")
ax.axhline(float(exact), color="k", ls="--", lw=0.8, label="exact ground-state energy")
ax.set_xlabel("jit-compiled step")
ax.set_ylabel("energy")
ax.legend()
fig.tight_layout()
plt.show()
