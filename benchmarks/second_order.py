"""Shadow Hessian and metric tensor against PennyLane's at equal shots.

Hessian (EXACT expected MSE, no sampling): ring ansatz (RY, RZ on every qubit, CNOT ring),
observable ``Z(0) Z(1)``, ``n = 2..4`` qubits, ``M`` up to 100 parameters.
``qml.gradients.param_shift_hessian`` generates ``1 + M + 2 M (M - 1)`` tapes (one unshifted,
one ``-pi`` shift per diagonal entry, four ``+-pi/2`` pairs per off-diagonal pair); with
``s`` shots per tape its estimate of each entry is ``sum_t c_t r_t`` with exact variance
``sum_t c_t^2 (1 - <O>_t^2) / s`` (``O`` a Pauli word), the coefficients ``c_t`` read off the
tapes' shifts (checked against PennyLane's own post-processing on the smallest case, and the
shot count against ``qml.Tracker``). ``shadow_hessian`` gets the same total ``T = (#tapes) s``
as snapshots; at these budgets its default plan is the complete one (all ``3**n`` bases,
shots split evenly) and its estimate is linear in the snapshots, so its exact variance is
``sum_b Var_b(u_b) / (T / 3**n)`` with ``u_b`` the per-snapshot contribution of basis ``b``
(coefficients read off the estimator on unit Pauli inputs). Both estimators are unbiased:
MSE = summed variance over all ``M**2`` entries.

Metric tensor (seeded repetitions): the same ansatz, ``qml.metric_tensor`` with
``approx=None`` (block-diagonal tapes plus Hadamard tests on an auxiliary wire) and
``approx="block-diag"``, on a shot device (``s`` shots per tape, total counted by
``qml.Tracker``); ``shadow_metric_tensor`` with the same approximation gets the same total
as snapshots. The error is the squared distance to the exact metric tensor (analytic
``qml.metric_tensor``); MSE over ``R`` repetitions, with a 95% bootstrap CI of the ratio
``MSE_pennylane / MSE_shadow`` (> 1: shadow wins).

    python benchmarks/second_order.py            # full run (about 8 min on 2 cores)
    python benchmarks/second_order.py --quick    # smoke test (< 1 min)
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np
import pennylane as qml
from pennylane import numpy as pnp
from pennylane.tape import QuantumScript

from pennylane_shadowgrad import shadow_metric_tensor
from pennylane_shadowgrad.circuit import pauli_sum, rotation_form
from pennylane_shadowgrad.estimators.second_order import SecondOrderOperators, state_matrices
from pennylane_shadowgrad.estimators.shadow import walsh_hadamard
from pennylane_shadowgrad.plans import covered_indices

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
OBS = qml.Z(0) @ qml.Z(1)


def ring(n: int, layers: int, x) -> None:
    k = 0
    for _ in range(layers):
        for q in range(n):
            qml.RY(x[k], q)
            qml.RZ(x[k + 1], q)
            k += 2
        for q in range(n if n > 2 else 1):
            qml.CNOT([q, (q + 1) % n])


def ring_tape(n: int, layers: int, x, shots=None) -> QuantumScript:
    with qml.queuing.AnnotatedQueue() as q:
        ring(n, layers, x)
    tape = QuantumScript(q.queue, [qml.expval(OBS)], shots=shots)
    tape.trainable_params = list(range(len(x)))
    return tape


# ------------------------------------------------------------------ exact Hessian MSEs


def param_shift_hessian_mse(tape: QuantumScript, s: int, check: bool) -> tuple[float, int]:
    """Exact summed variance of ``param_shift_hessian`` with ``s`` shots per tape."""
    tapes, fn = qml.gradients.param_shift_hessian(tape.copy(shots=s))
    base = np.array(tape.get_parameters())
    m = len(base)
    coeff = np.zeros((len(tapes), m, m))
    for t, shifted in enumerate(tapes):
        d = np.array(shifted.get_parameters()) - base
        nz = np.flatnonzero(np.abs(d) > 1e-9)
        if len(nz) == 0:
            coeff[t][np.diag_indices(m)] = -0.5  # the unshifted tape, in every diagonal entry
        elif len(nz) == 1:
            coeff[t, nz[0], nz[0]] = 0.5
        else:
            j, k = nz
            coeff[t, j, k] = coeff[t, k, j] = np.sign(d[j]) * np.sign(d[k]) / 4
    exact = [QuantumScript(t.operations, t.measurements) for t in tapes]
    values = np.array(qml.execute(exact, qml.device("default.qubit")), dtype=float)
    if check:  # the coefficients are PennyLane's own post-processing, exactly
        np.testing.assert_allclose(np.einsum("t,tjk->jk", values, coeff), fn(values), atol=1e-10)
        dev = qml.device("default.qubit", seed=0)
        with qml.Tracker(dev) as tracker:
            qml.execute(tapes, dev)
        assert tracker.totals["shots"] == len(tapes) * s
    variance = np.einsum("tjk,t->", coeff**2, 1 - values**2) / s
    return float(variance), len(tapes)


def _covered_indices(bases: np.ndarray) -> np.ndarray:
    """Flat Pauli index of the word basis ``b`` covers with mask ``m``: ``(B, 2**n)``.

    Bit ``n - 1 - q`` of the mask selects qubit ``q`` (outcome integers: wire 0 first).
    """
    n = bases.shape[1]
    bits = (np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1
    return (bits[None] * bases[:, None, :].astype(np.int64)) @ (4 ** np.arange(n - 1, -1, -1))


def _parities(n: int) -> np.ndarray:
    """``(-1)^{popcount(s & m)}`` for outcome ``s`` (rows) and mask ``m`` (columns)."""
    s = np.arange(2**n)
    bits = np.array([bin(v).count("1") for v in range(2**n)])
    return (-1.0) ** bits[s[:, None] & s[None, :]]


def _outcome_laws(state: np.ndarray, n: int) -> np.ndarray:
    """``p[b, s]`` for every local basis (digits 1, 2, 3 = X, Y, Z; wire 0 first)."""
    hadamard = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    to_z = {1: hadamard, 2: hadamard @ np.diag([1, -1j]), 3: np.eye(2)}
    out = []
    for b in itertools.product((1, 2, 3), repeat=n):
        v = np.ones((1, 1))
        for d in b:
            v = np.kron(v, to_z[d])
        out.append(np.abs(v @ state) ** 2)
    return np.array(out)


def shadow_hessian_mse(tape: QuantumScript, total: int) -> float:
    """Exact summed variance of ``shadow_hessian`` with the complete plan and ``total`` shots."""
    n = len(tape.wires)
    circuit = rotation_form(tape)
    units = np.zeros((4**n, 4**n))
    units[:, 0] = 1.0
    units[np.arange(1, 4**n), np.arange(1, 4**n)] = 1.0
    ops = SecondOrderOperators(circuit)
    values = ops.hessian(
        pauli_sum(OBS, tape.wires), state_matrices(units.reshape((-1,) + (4,) * n))
    )
    h = (values - values[0]).reshape(4**n, -1)  # coefficient of each Pauli word (identity: 0)
    bases = np.array(list(itertools.product((1, 2, 3), repeat=n)), dtype=np.uint8)
    idx = covered_indices(bases)  # (3^n, 2^n)
    weights = 3.0 ** -(n - np.array([bin(m).count("1") for m in range(2**n)]))
    v = h[idx] * weights[None, :, None]  # (3^n, masks, entries)
    u = walsh_hadamard(np.moveaxis(v, 1, 2))  # (3^n, entries, outcomes)
    state = qml.matrix(QuantumScript(tape.operations), wire_order=tape.wires)[:, 0]
    p = _outcome_laws(state, n)[:, None, :]
    var_b = (p * u**2).sum(-1) - ((p * u).sum(-1)) ** 2  # (3^n, entries)
    return float(var_b.sum() / (total / 3**n))


# -------------------------------------------------------------- metric by repetitions


def metric_case(n: int, layers: int, s: int, reps: int, approx, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    x = pnp.array(rng.uniform(0, 2 * np.pi, 2 * n * layers))

    def func(v):
        ring(n, layers, v)
        return qml.expval(OBS)

    exact = np.asarray(
        qml.metric_tensor(qml.QNode(func, qml.device("default.qubit", wires=n + 1)), approx=approx)(
            x
        )
    )
    err_pl, err_sh, shots = [], [], None
    t_pl = t_sh = 0.0
    for r in range(reps):
        dev = qml.device("default.qubit", wires=n + 1, seed=1000 * seed + r)
        node = qml.QNode(func, dev, shots=s)
        start = time.perf_counter()
        with qml.Tracker(dev) as tracker:
            est = np.asarray(qml.metric_tensor(node, approx=approx)(x))
        t_pl += time.perf_counter() - start
        shots = tracker.totals["shots"]
        err_pl.append(np.sum((est - exact) ** 2))
        dev_sh = qml.device("default.qubit", seed=2000 * seed + r)
        node_sh = qml.QNode(func, dev_sh, shots=shots)
        start = time.perf_counter()
        with qml.Tracker(dev_sh) as tracker_sh:
            est = shadow_metric_tensor(node_sh, approx=approx, seed=r)(x)
        t_sh += time.perf_counter() - start
        assert tracker_sh.totals["shots"] == shots
        err_sh.append(np.sum((est - exact) ** 2))
    err_pl, err_sh = np.array(err_pl), np.array(err_sh)
    boot = np.random.default_rng(seed)
    ratios = []
    for _ in range(2000):
        i = boot.integers(reps, size=reps)
        ratios.append(err_pl[i].mean() / err_sh[i].mean())
    return {
        "n": n,
        "M": 2 * n * layers,
        "approx": str(approx),
        "shots": shots,
        "mse_pl": err_pl.mean(),
        "mse_sh": err_sh.mean(),
        "ratio": err_pl.mean() / err_sh.mean(),
        "ci": tuple(np.percentile(ratios, [2.5, 97.5])),
        "sec_pl": t_pl / reps,
        "sec_sh": t_sh / reps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small M, 4 repetitions")
    parser.add_argument("--shots-per-tape", type=int, default=100)
    parser.add_argument("--reps", type=int, default=None, help="metric repetitions (default 12)")
    args = parser.parse_args()
    s = args.shots_per_tape
    if args.quick:
        hess_cases = [(2, 1), (2, 4), (3, 2), (4, 1)]
        metric_cases = [(2, 2), (3, 1)]
        reps = args.reps or 4
    else:
        hess_cases = [
            (2, 2),
            (2, 6),
            (2, 12),
            (2, 25),
            (3, 2),
            (3, 8),
            (3, 16),
            (4, 2),
            (4, 6),
            (4, 12),
        ]
        metric_cases = [(2, 2), (2, 4), (3, 2), (3, 4)]
        reps = args.reps or 12
    rng = np.random.default_rng(0)
    rows = []
    print(f"Hessian, exact MSE (summed over all M^2 entries), {s} shots per param-shift tape")
    head = ("n", "M", "ps tapes", "shots", "MSE ps", "MSE shadow", "ratio")
    print("{:>2} {:>4} {:>9} {:>10} {:>10} {:>11} {:>8}".format(*head))
    for k, (n, layers) in enumerate(hess_cases):
        x = rng.uniform(0, 2 * np.pi, 2 * n * layers)
        tape = ring_tape(n, layers, x)
        mse_ps, num_tapes = param_shift_hessian_mse(tape, s, check=k == 0)
        total = num_tapes * s
        mse_sh = shadow_hessian_mse(tape, total)
        rows.append((n, 2 * n * layers, num_tapes, total, mse_ps, mse_sh))
        print(
            f"{n:>2} {2 * n * layers:>4} {num_tapes:>9} {total:>10} {mse_ps:>10.3g} "
            f"{mse_sh:>11.3g} {mse_ps / mse_sh:>8.2f}",
            flush=True,
        )
    print(f"\nMetric tensor, {reps} seeded repetitions, {s} shots per PennyLane tape")
    head = ("n", "M", "approx", "shots", "MSE PL", "MSE shadow", "ratio", "95% CI", "s/PL")
    print("{:>2} {:>3} {:>10} {:>7} {:>9} {:>10} {:>6} {:>14} {:>6} s/shadow".format(*head))

    metric_rows = []
    for k, (n, layers) in enumerate(metric_cases):
        for approx in (None, "block-diag"):
            r = metric_case(n, layers, s, reps, approx, seed=k + 1)
            metric_rows.append(r)
            print(
                f"{r['n']:>2} {r['M']:>3} {r['approx']:>10} {r['shots']:>7} {r['mse_pl']:>9.3g} "
                f"{r['mse_sh']:>10.3g} {r['ratio']:>6.2f} [{r['ci'][0]:5.2f}, {r['ci'][1]:5.2f}] "
                f"{r['sec_pl']:>6.2f} {r['sec_sh']:>8.2f}",
                flush=True,
            )
    _plot(rows, metric_rows, args.quick)


def _plot(rows, metric_rows, quick: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    for n in sorted({r[0] for r in rows}):
        sel = [r for r in rows if r[0] == n]
        a.plot([r[1] for r in sel], [r[4] / r[5] for r in sel], "o-", label=f"n = {n}")
    a.axhline(1, color="grey", lw=0.8)
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("parameters M")
    a.set_ylabel("MSE param_shift_hessian / MSE shadow")
    a.set_title("Hessian at equal shots (exact MSE)")
    a.legend()
    labels = [f"n={r['n']} M={r['M']}\n{r['approx']}" for r in metric_rows]
    ratio = np.array([r["ratio"] for r in metric_rows])
    lo = ratio - np.array([r["ci"][0] for r in metric_rows])
    hi = np.array([r["ci"][1] for r in metric_rows]) - ratio
    b.bar(range(len(ratio)), ratio, yerr=[lo, hi], color="C1")
    b.axhline(1, color="grey", lw=0.8)
    b.set_yscale("log")
    b.set_xticks(range(len(ratio)))
    b.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    b.set_ylabel("MSE qml.metric_tensor / MSE shadow")
    b.set_title("Metric tensor at equal shots (95% bootstrap CI)")
    fig.tight_layout()
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "second_order_quick.png" if quick else "second_order.png")
    fig.savefig(path, dpi=120)
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
