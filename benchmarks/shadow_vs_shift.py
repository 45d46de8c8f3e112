"""Gradient error of ``shadow`` against ``parameter-shift`` and ``spsa`` at equal gradient shots.

For each circuit, PennyLane's ``param_shift`` runs first with ``--shots-per-tape`` shots on
every tape it really generates (it skips only gates that are not circuit-graph ancestors of
the measured wires, a superset of the true light cone: Z on a CNOT's control still pulls in
the target's gates);
``qml.Tracker`` counts its gradient tapes and shots ``S_ps`` (the forward pass is never run).
``shadow_grad`` (DEFAULT options: ``bases="auto"``, 20 groups; applied to a tape without a
``device`` it runs the pure shadow estimator, not the QNode's hybrid) gets ``T = S_ps`` snapshots
and ``spsa_grad`` (``num_directions=1``, ``h=--spsa-h``) gets ``S_ps`` shots over its two tapes;
both totals are tracked too. Each method is repeated ``R`` times with seeded devices (fresh
shot noise, fresh random bases); the error is the squared distance to the exact gradient
(``lightning.qubit`` adjoint), summed over components, and the MSE is its mean over the
repetitions. The ratio ``MSE_ps / MSE_shadow`` (> 1: shadow wins) gets a 95% bootstrap CI.

Where cheap, the EXACT expected MSEs are also computed: parameter-shift's is
``sum_t c_t^2 Var_t(O) / s_t`` over its tapes (single Pauli observables only), the shadow's,
for the complete plan (all ``3**n`` bases, shots split evenly), is
``sum_b s_b Var_b(f_b)`` with ``f_b`` the per-snapshot contribution of basis ``b`` to the
linear estimator (its coefficients come from the dense sweep applied to unit Pauli inputs).

Families: (a) few-qubit deep circuits (RY/RZ on every qubit + CNOT ring, observable Z(0));
(b) wide shallow brickwork circuits, observable Z on the middle qubit; (c) a Hamiltonian
observable (TFIM or Heisenberg chain) on the family-(a) ansatz. Timings are per gradient
on ``default.qubit`` (transform + execution + post-processing).

    python benchmarks/shadow_vs_shift.py            # full run (< 10 min on 2 cores)
    python benchmarks/shadow_vs_shift.py --quick    # smoke test (< 2 min)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pennylane as qml
from pennylane.devices import ExecutionConfig
from pennylane.measurements import Shots
from pennylane.tape import QuantumScript

from pennylane_shadowgrad import shadow_grad
from pennylane_shadowgrad.circuit import decompose_to_rotations, pauli_sum, rotation_form
from pennylane_shadowgrad.estimators.dense import gradient_functional
from pennylane_shadowgrad.estimators.shadow import walsh_hadamard
from pennylane_shadowgrad.plans import covered_indices, make_plan
from pennylane_shadowgrad.snapshots import snapshot_tapes

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# --------------------------------------------------------------------------- circuits
def ring_ops(n: int, layers: int, params: np.ndarray) -> list:
    """``layers`` x (RY, RZ on every qubit, then a CNOT ring); ``2 n layers`` parameters."""
    ops, k = [], 0
    for _ in range(layers):
        for q in range(n):
            ops += [qml.RY(params[k], q), qml.RZ(params[k + 1], q)]
            k += 2
        pairs = [(0, 1)] if n == 2 else [(q, (q + 1) % n) for q in range(n)]
        ops += [qml.CNOT(p) for p in pairs]
    return ops


def brick_ops(n: int, depth: int, params: np.ndarray) -> list:
    """``depth`` x (RY, RZ on every qubit, then CNOTs on even / odd neighbour pairs)."""
    ops, k = [], 0
    for layer in range(depth):
        for q in range(n):
            ops += [qml.RY(params[k], q), qml.RZ(params[k + 1], q)]
            k += 2
        ops += [qml.CNOT([q, q + 1]) for q in range(layer % 2, n - 1, 2)]
    return ops


def hamiltonian(kind: str, n: int):
    """Open-chain TFIM ``sum Z Z + 0.7 sum X`` or Heisenberg ``sum XX + YY + ZZ``."""
    coeffs, ops = [], []
    for q in range(n - 1):
        if kind == "tfim":
            coeffs.append(1.0)
            ops.append(qml.Z(q) @ qml.Z(q + 1))
        else:
            for p in (qml.X, qml.Y, qml.Z):
                coeffs.append(1.0)
                ops.append(p(q) @ p(q + 1))
    if kind == "tfim":
        coeffs += [0.7] * n
        ops += [qml.X(q) for q in range(n)]
    return qml.Hamiltonian(coeffs, ops)


# --------------------------------------------------------------------------- helpers
def as_vector(grad) -> np.ndarray:
    return np.asarray(grad, dtype=float).reshape(-1)


def exact_gradient(tape: QuantumScript, n: int) -> np.ndarray:
    dev = qml.device("lightning.qubit", wires=n)
    analytic = QuantumScript(
        tape.operations, tape.measurements, shots=None, trainable_params=tape.trainable_params
    )
    jac = dev.compute_derivatives(analytic, ExecutionConfig(gradient_method="adjoint"))
    return as_vector(jac)


def tracked_run(tapes, fn, dev):
    """Execute gradient tapes inside a Tracker: (gradient, shots, circuits, seconds)."""
    start = time.perf_counter()
    with qml.Tracker(dev) as tracker:
        res = qml.execute(tapes, dev, diff_method=None)
    grad = as_vector(fn(res))
    return grad, int(tracker.totals["shots"]), int(tracker.totals["executions"]), start


def exact_ps_mse(tapes, fn, obs, n: int, s_tape: int) -> float:
    """``sum_t ||d grad / d r_t||^2 Var_t(O) / s_t`` for a single Pauli-word observable."""
    dev = qml.device("lightning.qubit", wires=n)
    var_tapes = [QuantumScript(t.operations, [qml.var(obs)], shots=None) for t in tapes]
    variances = np.asarray(qml.execute(var_tapes, dev, diff_method=None), dtype=float)
    total = 0.0
    for t in range(len(tapes)):
        unit = [0.0] * len(tapes)
        unit[t] = 1.0
        total += np.sum(as_vector(fn(unit)) ** 2) * variances[t] / s_tape
    return float(total)


def exact_shadow_mse(tape: QuantumScript, snapshots: int) -> float | None:
    """Exact variance of the default-plan shadow gradient when that plan is complete."""
    rot = decompose_to_rotations(tape)
    circuit = rotation_form(rot)
    n = circuit.num_qubits
    plan = make_plan(n, snapshots, bases="auto")
    if plan.random:
        return None
    obs = pauli_sum(tape.measurements[0].obs, circuit.wire_order)
    eye = np.eye(4**n).reshape((4**n,) + (4,) * n)
    weights = gradient_functional(circuit, obs, eye)  # (4^n, M): d_j = sum_P W[P, j] x_P
    idx = covered_indices(plan.bases)  # (B, 2^n)
    counts = np.bincount(idx.ravel(), np.repeat(plan.shots, 2**n), minlength=4**n)
    coef = weights[idx] / counts[idx][..., None]  # (B, 2^n, M)
    f = walsh_hadamard(np.moveaxis(coef, 1, 2))  # (B, M, 2^n): contribution per outcome
    # exact outcome distribution in every basis (wire 0 most significant, as decoded)
    probs = np.zeros((plan.num_bases, 2**n))
    ops_only = QuantumScript(rot.operations, [])
    dev = qml.device("default.qubit")
    for tp, count in zip(snapshot_tapes(ops_only, plan, circuit.wire_order), np.unique(plan.shots)):
        rows = np.flatnonzero(plan.shots == count)
        ptape = QuantumScript(tp.operations, [qml.probs(wires=circuit.wire_order)], shots=None)
        probs[rows] = np.asarray(qml.execute([ptape], dev, diff_method=None)[0]).reshape(
            len(rows), 2**n
        )
    mean = np.einsum("bs,bms->bm", probs, f)
    second = np.einsum("bs,bms->bm", probs, f**2)
    return float(np.sum(plan.shots[:, None] * (second - mean**2)))


def ratio_ci(num: np.ndarray, den: np.ndarray, rng, boots: int = 2000):
    """``mean(num)/mean(den)`` with a percentile bootstrap 95% CI (independent resampling)."""
    ratio = num.mean() / den.mean()
    a = rng.choice(num, size=(boots, len(num))).mean(1)
    b = rng.choice(den, size=(boots, len(den))).mean(1)
    lo, hi = np.percentile(a / b, [2.5, 97.5])
    return ratio, lo, hi


# --------------------------------------------------------------------------- one case
def run_case(family, n, size, ops_fn, obs, reps, s_tape, spsa_h, seed, exact_max_qubits):
    """All three methods on one circuit; returns a row for the table."""
    print(f"  running family {family}, n={n}, size {size}, {reps} repetitions ...", flush=True)
    ss = np.random.SeedSequence([seed, n, size, "abc".index(family)])  # not hash(): salted
    seeds = ss.generate_state(4 * reps + 8)
    num_params = 2 * n * size
    params = np.random.default_rng(seeds[0]).uniform(0, 2 * np.pi, num_params)
    ops = ops_fn(n, size, params)
    trainable = list(range(num_params))  # gate angles only, never observable coefficients
    tape = QuantumScript(ops, [qml.expval(obs)], shots=s_tape, trainable_params=trainable)
    exact = exact_gradient(tape, n)

    # parameter-shift: one tracked, timed gradient, then R-1 more from one shot-vector run
    dev = qml.device("default.qubit", seed=int(seeds[1]))
    ps_tapes, ps_fn = qml.gradients.param_shift(tape)
    g0, s_ps, ps_circuits, start = tracked_run(ps_tapes, ps_fn, dev)
    ps_time = time.perf_counter() - start
    ps_err = [np.sum((g0 - exact) ** 2)]
    if reps > 1:
        vec_tape = QuantumScript(
            ops, [qml.expval(obs)], shots=Shots([(s_tape, reps - 1)]), trainable_params=trainable
        )
        vtapes, vfn = qml.gradients.param_shift(vec_tape)
        res = vfn(qml.execute(vtapes, dev, diff_method=None))
        copies = res if reps - 1 > 1 else (res,)
        ps_err += [np.sum((as_vector(g) - exact) ** 2) for g in copies]
    ps_err = np.asarray(ps_err)

    # pure shadow with T = S_ps (default plan); fresh bases and shot noise per repetition
    sh_err, sh_times, sh_shots, sh_circuits = [], [], set(), set()
    for r in range(reps):
        start = time.perf_counter()
        stapes, sfn = shadow_grad(tape, snapshots=s_ps, seed=int(seeds[2 + r]), strategy="pure")
        dev = qml.device("default.qubit", seed=int(seeds[2 + reps + r]))
        g, shots, circuits, _ = tracked_run(stapes, sfn, dev)
        sh_times.append(time.perf_counter() - start)
        sh_err.append(np.sum((g - exact) ** 2))
        sh_shots.add(shots)
        sh_circuits.add(circuits)
    sh_err = np.asarray(sh_err)

    # spsa: one direction, S_ps shots split over its two tapes (and over the measurement
    # groups the device splits a Hamiltonian into, as it does for param-shift's tapes)
    groups = max(1, s_ps // (len(ps_tapes) * s_tape))
    sp_tape = QuantumScript(
        ops, [qml.expval(obs)], shots=s_ps // (2 * groups), trainable_params=trainable
    )
    sp_err, sp_times, sp_shots = [], [], set()
    for r in range(reps):
        start = time.perf_counter()
        ptapes, pfn = qml.gradients.spsa_grad(
            sp_tape, h=spsa_h, num_directions=1, sampler_rng=int(seeds[2 + 2 * reps + r])
        )
        dev = qml.device("default.qubit", seed=int(seeds[2 + 3 * reps + r]))
        g, shots, _, _ = tracked_run(ptapes, pfn, dev)
        sp_times.append(time.perf_counter() - start)
        sp_err.append(np.sum((g - exact) ** 2))
        sp_shots.add(shots)
    sp_err = np.asarray(sp_err)

    rng = np.random.default_rng(seeds[-1])
    ratio, lo, hi = ratio_ci(ps_err, sh_err, rng)
    ex_ps = ex_sh = None
    if n <= exact_max_qubits and isinstance(obs, qml.ops.Prod | qml.Z | qml.X | qml.Y):
        ex_ps = exact_ps_mse(ps_tapes, ps_fn, obs, n, s_tape)
    if n <= exact_max_qubits:
        ex_sh = exact_shadow_mse(tape, s_ps)
    return {
        "family": family,
        "n": n,
        "size": size,
        "M": num_params,
        "ps_tapes": len(ps_tapes),
        "S": s_ps,
        "sh_S": "/".join(str(s) for s in sorted(sh_shots)),
        "sp_S": "/".join(str(s) for s in sorted(sp_shots)),
        "circ_ps": ps_circuits,
        "circ_sh": "/".join(str(c) for c in sorted(sh_circuits)),
        "mse_ps": ps_err.mean(),
        "mse_sh": sh_err.mean(),
        "mse_sp": sp_err.mean(),
        "ratio": ratio,
        "lo": lo,
        "hi": hi,
        "ratio_sp": sp_err.mean() / sh_err.mean(),
        "ex_ps": ex_ps,
        "ex_sh": ex_sh,
        "t_ps": ps_time,
        "t_sh": float(np.mean(sh_times)),
        "t_sp": float(np.mean(sp_times)),
        "reps": reps,
    }


# --------------------------------------------------------------------------- output
def fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def print_table(title: str, rows: list[dict], size_name: str) -> None:
    print(f"\n### {title}\n")
    head = (
        f"| n | {size_name} | M | ps tapes | shots/grad (ps=shadow=spsa) | circuits ps/shadow "
        "| MSE ps | MSE shadow | MSE spsa | ratio ps/shadow [95% CI] | exact ratio "
        "| ratio spsa/shadow | s/grad ps | s/grad shadow | s/grad spsa | R |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        exact = r["ex_ps"] / r["ex_sh"] if r["ex_ps"] is not None and r["ex_sh"] else None
        shots = f"{r['S']}={r['sh_S']}={r['sp_S']}"
        print(
            f"| {r['n']} | {r['size']} | {r['M']} | {r['ps_tapes']} | {shots} "
            f"| {r['circ_ps']}/{r['circ_sh']} | {fmt(r['mse_ps'])} | {fmt(r['mse_sh'])} "
            f"| {fmt(r['mse_sp'])} | {r['ratio']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] "
            f"| {fmt(exact, '.2f')} | {r['ratio_sp']:.2f} | {r['t_ps']:.3f} | {r['t_sh']:.3f} "
            f"| {r['t_sp']:.3f} | {r['reps']} |"
        )
    print(
        "\nexact ratio: exact expected MSE_ps / exact expected MSE_shadow "
        "(complete plan and single Pauli observable only; '-' where not computed)."
    )


def plot(rows_a, rows_b, rows_c, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    for n in sorted({r["n"] for r in rows_a}):
        rs = [r for r in rows_a if r["n"] == n]
        m = [r["M"] for r in rs]
        y = np.array([r["ratio"] for r in rs])
        err = np.array([[r["ratio"] - r["lo"] for r in rs], [r["hi"] - r["ratio"] for r in rs]])
        line = ax.errorbar(m, y, yerr=err, marker="o", capsize=3, label=f"n={n} measured")
        ex = [(r["M"], r["ex_ps"] / r["ex_sh"]) for r in rs if r["ex_ps"] and r["ex_sh"]]
        if ex:
            ax.plot(*zip(*ex), "--", color=line[0].get_color(), label=f"n={n} exact")
    ax.set(xscale="log", yscale="log", xlabel="parameters M", ylabel="MSE_ps / MSE_shadow")
    ax.set_title("(a) deep ring circuits, Z(0), equal shots")
    ax.axhline(1, color="k", lw=0.8)
    ax.legend(fontsize=7)
    ax = axes[1]
    for d in sorted({r["size"] for r in rows_b}):
        rs = [r for r in rows_b if r["size"] == d]
        y = np.array([r["ratio"] for r in rs])
        err = np.array([[r["ratio"] - r["lo"] for r in rs], [r["hi"] - r["ratio"] for r in rs]])
        ax.errorbar([r["n"] for r in rs], y, yerr=err, marker="o", capsize=3, label=f"depth {d}")
    ax.set(yscale="log", xlabel="qubits n", ylabel="MSE_ps / MSE_shadow")
    ax.set_title("(b) brickwork, Z(middle), equal shots")
    ax.axhline(1, color="k", lw=0.8)
    ax.legend(fontsize=7)
    ax = axes[2]
    labels = [f"n={r['n']}\nM={r['M']}" for r in rows_c]
    y = np.array([r["ratio"] for r in rows_c])
    err = np.array([[r["ratio"] - r["lo"] for r in rows_c], [r["hi"] - r["ratio"] for r in rows_c]])
    ax.errorbar(range(len(rows_c)), y, yerr=err, marker="o", ls="none", capsize=3)
    ax.set_xticks(range(len(rows_c)), labels, fontsize=7)
    ax.set(yscale="log", ylabel="MSE_ps / MSE_shadow")
    ax.set_title("(c) Hamiltonian observable")
    ax.axhline(1, color="k", lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run (< 2 min)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions R (family a, c)")
    parser.add_argument("--reps-wide", type=int, default=None, help="repetitions R (family b)")
    parser.add_argument("--shots-per-tape", type=int, default=100, help="param-shift s_tape")
    parser.add_argument("--spsa-h", type=float, default=0.1, help="SPSA step (central)")
    parser.add_argument("--hamiltonian", choices=["tfim", "heisenberg"], default="tfim")
    parser.add_argument("--exact-max-qubits", type=int, default=5)
    parser.add_argument("--families", default="abc", help="subset of 'abc' to run")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)

    if args.quick:
        reps, reps_wide = args.reps or 4, args.reps_wide or 3
        fam_a = {2: [4, 25], 3: [4, 34], 4: [3]}  # layers per n
        fam_b = {6: [1, 2], 8: [2]}
        fam_c = [(4, 3), (5, 2)]
    else:
        reps, reps_wide = args.reps or 20, args.reps_wide or 10
        # M = 2 n L in about {24, 48, 96, 200, 400}
        fam_a = {2: [6, 12, 24, 50, 100], 3: [4, 8, 16, 34, 67], 4: [3, 6, 12, 25, 50]}
        fam_b = {6: [1, 2, 3], 8: [1, 2, 3], 10: [1, 2, 3]}
        fam_c = [(4, 6), (4, 12), (5, 6), (6, 2), (6, 4)]
    os.makedirs(RESULTS, exist_ok=True)
    common = dict(
        s_tape=args.shots_per_tape,
        spsa_h=args.spsa_h,
        seed=args.seed,
        exact_max_qubits=args.exact_max_qubits,
    )
    total = time.perf_counter()
    rows_a, rows_b, rows_c = [], [], []
    if "a" in args.families:
        rows_a = [
            run_case("a", n, layers, ring_ops, qml.Z(0), reps, **common)
            for n, layer_list in fam_a.items()
            for layers in layer_list
        ]
        print_table("(a) deep ring circuits, observable Z(0)", rows_a, "layers")
    if "b" in args.families:
        for n, depths in fam_b.items():
            for depth in depths:
                obs = qml.Z(n // 2)
                rows_b.append(run_case("b", n, depth, brick_ops, obs, reps_wide, **common))
        print_table("(b) wide shallow brickwork, observable Z(n//2)", rows_b, "depth")
    if "c" in args.families:
        for n, layers in fam_c:
            obs = hamiltonian(args.hamiltonian, n)
            rows_c.append(run_case("c", n, layers, ring_ops, obs, reps, **common))
        print_table(f"(c) {args.hamiltonian} Hamiltonian on the ring ansatz", rows_c, "layers")
    print(
        f"\nshots per param-shift tape: {args.shots_per_tape}; SPSA: 1 direction, "
        f"h={args.spsa_h}; shadow: default options (bases='auto', groups=20); "
        f"seed {args.seed}; total {time.perf_counter() - total:.0f} s"
    )
    if rows_a and rows_b and rows_c:
        path = os.path.join(RESULTS, "shadow_vs_shift.png")
        plot(rows_a, rows_b, rows_c, path)
        print(f"saved {path}")


if __name__ == "__main__":
    main()
