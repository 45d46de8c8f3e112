"""Exact moments of ``shadow_grad`` on small circuits, for rigorous statistical test bounds.

With the complete plan (all ``3**n`` bases, ``S`` shots each) the gradient estimate of an
``expval``/``probs`` measurement is linear in the per-basis outcome frequencies:
``g = sum_b mean_shots w_b(s)``. The weights ``w_b(s)`` are read off the transform's own
post-processing by feeding it constant outcomes, and the outcome laws ``p_b(s)`` come from an
exact simulation, so mean and variance of the estimator are exact, and Bernstein's inequality
gives a rigorous deviation bound.
"""

from __future__ import annotations

import numpy as np
import pennylane as qml

from pennylane_shadowgrad import shadow_grad


def contract(jac, coeffs, num_params: int, num_meas: int) -> np.ndarray:
    """``sum_m <coeffs[m], J[m][k]>`` for each parameter ``k`` of a PennyLane-shaped Jacobian."""
    if num_meas == 1:
        jac = (jac,)
    out = np.zeros(num_params)
    for m in range(num_meas):
        per = (jac[m],) if num_params == 1 else jac[m]
        for k in range(num_params):
            out[k] += np.sum(np.asarray(coeffs[m]) * np.asarray(per[k]))
    return out


def _bits(s: int, n: int) -> np.ndarray:
    return np.array([int(b) for b in np.binary_repr(s, width=n)], dtype=np.int64)


class ExactShadowMoments:
    """Exact law of the contracted shadow gradient of ``tape`` under the complete plan.

    Attributes:
        mean: exact expectation of the estimate (one entry per trainable parameter).
        var: exact variance.
        span: largest deviation ``|w_b(s) - E_b w_b| / S`` of a single snapshot's term.
    """

    def __init__(self, tape, coeffs, shots_per_basis: int):
        n = len(tape.wires)
        self.num_params = len(tape.trainable_params)
        self.num_meas = len(tape.measurements)
        total = 3**n * shots_per_basis
        tape = tape.copy(shots=total)
        tapes, fn = shadow_grad(tape, bases="all", strategy="pure")
        if len(tapes) != 1 or tapes[0].batch_size != 3**n:
            raise ValueError("expected one broadcast snapshot tape over all bases")
        snap = tapes[0]
        probs_tape = qml.tape.QuantumScript(
            snap.operations, [qml.probs(wires=snap.measurements[0].wires)]
        )
        probs = np.asarray(qml.execute([probs_tape], qml.device("default.qubit"))[0])
        num_bases, dim = probs.shape
        base = np.zeros((num_bases, shots_per_basis, n), dtype=np.int64)

        def estimate(samples):
            return contract(fn([samples]), coeffs, self.num_params, self.num_meas)

        g0 = estimate(base)
        weights = np.zeros((num_bases, dim, self.num_params))  # w_b(s) - w_b(0)
        for b in range(num_bases):
            for s in range(1, dim):
                samples = base.copy()
                samples[b] = _bits(s, n)
                weights[b, s] = estimate(samples) - g0
        means = np.einsum("bs,bsk->bk", probs, weights)
        self.mean = g0 + means.sum(0)
        dev = weights - means[:, None, :]
        self.var = np.einsum("bs,bsk->k", probs, dev**2) / shots_per_basis
        self.span = np.abs(dev).max(axis=(0, 1)) / shots_per_basis

    def bound(self, delta: float) -> np.ndarray:
        """Bernstein: ``P(|g - mean| >= bound) <= delta`` for each component."""
        log = np.log(2 / delta)
        a = self.span * log / 3
        return a + np.sqrt(a**2 + 2 * self.var * log)


def simulated_std(tape, coeffs, shots_per_basis: int, reps: int, seed: int = 0) -> np.ndarray:
    """Standard deviation of the contracted estimate over ``reps`` simulated snapshot sets.

    For estimators that are not linear in the outcomes (variance gradients). Outcomes are drawn
    from the exact laws, so only the Monte Carlo error of the spread itself remains.
    """
    n = len(tape.wires)
    tape = tape.copy(shots=3**n * shots_per_basis)
    tapes, fn = shadow_grad(tape, bases="all", strategy="pure")
    snap = tapes[0]
    probs_tape = qml.tape.QuantumScript(
        snap.operations, [qml.probs(wires=snap.measurements[0].wires)]
    )
    probs = np.asarray(qml.execute([probs_tape], qml.device("default.qubit"))[0])
    rng = np.random.default_rng(seed)
    table = np.array([_bits(s, n) for s in range(2**n)])
    values = []
    for _ in range(reps):
        outcomes = np.stack([rng.choice(2**n, size=shots_per_basis, p=p / p.sum()) for p in probs])
        values.append(
            contract(
                fn([table[outcomes]]), coeffs, len(tape.trainable_params), len(tape.measurements)
            )
        )
    return np.std(values, axis=0, ddof=1)
