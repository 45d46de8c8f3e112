"""The sparse Pauli engine (``engine="pauli"``) at 8-100 qubits: time, memory, words, bias, MSE.

Families (pure strategy, ``T`` snapshots, random bases as ``bases="auto"`` draws them):

* brickwork: depth 3, RY and RZ on every qubit per layer, CZ bricks, ``O = Z_{n/2-1} Z_{n/2}``;
* tfim: hardware-efficient ansatz, RY on every qubit then a CNOT ladder, depth 2, with the TFIM
  Hamiltonian ``sum Z_q Z_{q+1} + sum X_q`` (``2n - 1`` terms, support the whole register).

Where the exact engine refuses (above its word cap) the refusal is printed and the next row
uses ``truncation={"max_weight": 6}``, with its bias bound.

Per ``n``: the time to build the model (carry the generators, form every ``G_j``; before the
device runs), the time to estimate the needed words from the snapshot bits and evaluate the
Jacobian with jackknife errors, the peak Python/NumPy memory of both (``tracemalloc``), the
words kept (carried generator words, estimated words), the largest bias bound (0 when exact),
and the MSE against the exact gradient next to parameter-shift's at the same total shots
(``qml.Tracker``-counted; ``R`` seeds; only where a statevector fits: ``n <= 16``). Snapshot
bits come from ``lightning.qubit`` up to 20 qubits; above that from a synthetic uniform source
(processing time and memory do not depend on the outcomes; marked ``synthetic``).

Second table, the library question: carrying all ``M`` generators of the brickwork forward
through the rest of the circuit (the propagation the engine needs), with this package's
bit-packed NumPy engine (one batched call), PennyLane's ``PauliSentence`` (one sum per
generator) and ``pauli-prop`` (Rust; one ``propagate_through_circuit`` call per generator;
optional, ``pip install pennylane-shadowgrad[pauliprop]``). The third table compares the two
frames: the generators forward (``Q_j``, what the engine does) against ``O`` carried backward
(``O_j``); the ``G_j`` at the output are the same operators in both frames.

    python benchmarks/scale.py            # full run
    python benchmarks/scale.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np
import pennylane as qml
from pennylane import numpy as pnp
from pennylane.tape import QuantumScript

from pennylane_shadowgrad.circuit import (
    FixedGate,
    PauliRotation,
    decompose_for_gradient,
    pauli_sum,
    rotation_form,
)
from pennylane_shadowgrad.estimators import pauli_propagation as pp
from pennylane_shadowgrad.plans import make_plan
from pennylane_shadowgrad.snapshots import snapshot_tapes

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def brickwork(n, depth=3):
    def body(w):
        for layer in range(depth):
            for q in range(n):
                qml.RY(w[layer, q, 0], q)
                qml.RZ(w[layer, q, 1], q)
            for q in range(layer % 2, n - 1, 2):
                qml.CZ([q, q + 1])
        return qml.expval(qml.Z(n // 2 - 1) @ qml.Z(n // 2))

    return body, (depth, n, 2)


def tfim(n, depth=2):
    ham = qml.Hamiltonian(
        [1.0] * (2 * n - 1),
        [qml.Z(q) @ qml.Z(q + 1) for q in range(n - 1)] + [qml.X(q) for q in range(n)],
    )

    def body(w):
        for layer in range(depth):
            for q in range(n):
                qml.RY(w[layer, q], q)
            for q in range(n - 1):
                qml.CNOT([q, q + 1])
        return qml.expval(ham)

    return body, (depth, n)


FAMILIES = {"brickwork": brickwork, "tfim": tfim}

#: Used where the exact engine refuses (above its word cap).
TRUNCATION = {"max_weight": 6}


def weights_for(shape, seed=0):
    return pnp.array(np.random.default_rng(seed).uniform(0, 2 * np.pi, shape), requires_grad=True)


def prepared_tape(body, w):
    tape = qml.tape.make_qscript(body)(w)
    tape.trainable_params = qml.math.get_trainable_indices(
        tape.get_parameters(trainable_only=False)
    )
    return decompose_for_gradient(tape)


def snapshot_bits(tape, plan, n, real):
    if not real:
        rng = np.random.default_rng(0)
        return [pp._pack_bits(rng.integers(0, 2, size=(int(s), n))) for s in plan.shots]
    tapes = snapshot_tapes(QuantumScript(tape.operations, []), plan, tape.wires)
    results = qml.execute(tapes, qml.device("lightning.qubit", wires=n, seed=1))
    return pp.decode_bits(results, plan)


def processing_row(family, n, snapshots, truncation, real):
    body, shape = FAMILIES[family](n)
    w = weights_for(shape)
    tape = prepared_tape(body, w)
    circuit = rotation_form(tape)
    plan = make_plan(n, snapshots, groups=20, seed=3)
    trunc = truncation or {}
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        tm = pp.tape_model(
            tape,
            circuit,
            {},
            max_weight=trunc.get("max_weight"),
            min_coefficient=trunc.get("min_coefficient", 0.0),
        )
    except pp.PauliEngineLimitError as err:
        tracemalloc.stop()
        return {"family": family, "n": n, "M": circuit.num_params, "error": str(err)[:110]}
    build = time.perf_counter() - t0
    build_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    bits = snapshot_bits(tape, plan, n, real)  # device time: not counted
    tracemalloc.start()
    t0 = time.perf_counter()
    jacs, _, bounds = pp.pauli_jacobian(tape, tm, plan, bits, True)
    estimate = time.perf_counter() - t0
    est_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "family": family,
        "n": n,
        "M": circuit.num_params,
        "build_s": build,
        "estimate_s": estimate,
        "peak_MiB": max(build_peak, est_peak) / 2**20,
        "carried": tm.model.carried_words,
        "peak_words": tm.model.peak_words,
        "words": tm.model.num_words,
        "bias": float(np.max(bounds[0])),
        "truncation": trunc,
        "bits": "sampled" if real else "synthetic",
        "nonzero": int(np.count_nonzero(jacs[0])),
    }


def mse_row(family, n, snapshots, seeds):
    """MSE of the shadow (pauli engine, pure) and parameter-shift gradients, equal shots."""
    body, shape = FAMILIES[family](n)
    w = weights_for(shape)
    exact = qml.grad(
        qml.QNode(body, qml.device("lightning.qubit", wires=n), diff_method="adjoint")
    )(w)
    # parameter-shift's gradient tapes as PennyLane builds them (it skips parameters outside
    # the observable's wires, and a Hamiltonian is measured in commuting groups): count them
    dev = qml.device("lightning.qubit", wires=n, seed=0)
    probe = qml.QNode(body, dev, diff_method="parameter-shift", shots=1)
    with qml.Tracker(dev) as tracker:
        probe(w)
    forward = tracker.totals["executions"]
    with qml.Tracker(dev) as tracker:
        qml.grad(probe)(w)
    gradient_tapes = tracker.totals["executions"] - forward
    per_tape = max(1, snapshots // gradient_tapes)
    errors = {"shadow": [], "shift": []}
    walls = {"shadow": 0.0, "shift": 0.0}
    shots_used = {}
    for seed in range(seeds):
        for name in errors:
            dev = qml.device("lightning.qubit", wires=n, seed=100 + seed)
            if name == "shadow":
                opts = {"engine": "pauli", "strategy": "pure", "seed": seed}
                qnode = qml.QNode(
                    body, dev, diff_method="shadow", shots=snapshots, gradient_kwargs=opts
                )
            else:
                qnode = qml.QNode(body, dev, diff_method="parameter-shift", shots=per_tape)
            with qml.Tracker(dev) as tracker:
                qnode(w)  # the forward pass alone, to subtract it
            forward = tracker.totals["shots"]
            t0 = time.perf_counter()
            with qml.Tracker(dev) as tracker:
                grad = qml.grad(qnode)(w)
            walls[name] += time.perf_counter() - t0
            shots_used[name] = tracker.totals["shots"] - forward
            errors[name].append(float(np.sum((grad - exact) ** 2)))
    out = {k: np.mean(v) for k, v in errors.items()}
    boot = np.random.default_rng(0)
    a, b = np.array(errors["shadow"]), np.array(errors["shift"])
    ratios = []
    for _ in range(2000):
        idx = boot.integers(0, seeds, seeds)
        ratios.append(a[idx].mean() / b[idx].mean())
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return {
        "mse_shadow": out["shadow"],
        "mse_shift": out["shift"],
        "ratio_ci": (lo, hi),
        "wall_shadow": walls["shadow"] / seeds,
        "wall_shift": walls["shift"] / seeds,
        "shots": shots_used,
    }


# ---------------------------------------------------------------------------- library question


def _pauli_sentence_propagation(circuit, limit_s):
    """Every generator forward with PennyLane's PauliSentence (one sum per generator)."""
    from pennylane.pauli import PauliSentence, PauliWord

    from pennylane_shadowgrad.estimators.dense import transfer_matrix

    letters = "IXYZ"

    def word(wires, digits):
        return PauliWord({w: letters[d] for w, d in zip(wires, digits) if d})

    start = time.perf_counter()
    done, total_terms = 0, 0
    gens = [
        g
        for g, gate in enumerate(circuit.gates)
        if isinstance(gate, PauliRotation) and gate.param is not None
    ]
    for g in gens:
        gate = circuit.gates[g]
        s = PauliSentence({word(gate.wires, gate.digits): 1.0})
        for later in circuit.gates[g + 1 :]:
            new = PauliSentence()
            if isinstance(later, PauliRotation):
                r = word(later.wires, later.digits)
                for pw, c in s.items():
                    prod = PauliSentence({r: 1.0}) @ PauliSentence({pw: 1.0})
                    ((rw, phase),) = prod.items()
                    if abs(phase.imag) < 0.5:  # commutes
                        new[pw] = new.get(pw, 0.0) + c
                    else:
                        new[pw] = new.get(pw, 0.0) + c * np.cos(later.angle)
                        new[rw] = new.get(rw, 0.0) + c * np.sin(later.angle) * (-1j * phase).real
            else:
                t = transfer_matrix(later.matrix)
                for pw, c in s.items():
                    local = 0
                    for w in later.wires:
                        local = local * 4 + letters.index(pw.get(w, "I"))
                    for q in np.flatnonzero(np.abs(t[local]) > 1e-12):
                        digits = np.unravel_index(q, (4,) * len(later.wires))
                        d = dict(pw)
                        for w, dq in zip(later.wires, digits):
                            if dq:
                                d[w] = letters[dq]
                            else:
                                d.pop(w, None)
                        key = PauliWord(d)
                        new[key] = new.get(key, 0.0) + c * t[local, q]
            new.simplify(tol=1e-14)
            s = new
        total_terms += len(s)
        done += 1
        if time.perf_counter() - start > limit_s:
            break
    elapsed = time.perf_counter() - start
    return elapsed, done, len(gens), total_terms


def _pauli_prop_propagation(circuit, limit_s):
    """Every generator forward with pauli-prop (Rust), one call per generator."""
    try:
        from pauli_prop import propagate_through_circuit
        from qiskit import QuantumCircuit
        from qiskit.quantum_info import SparsePauliOp
    except ImportError as err:  # optional extra
        raise ImportError(
            "The pauli-prop comparison needs the optional extra: "
            "pip install 'pennylane-shadowgrad[pauliprop]' (pauli-prop and qiskit)."
        ) from err
    n = circuit.num_qubits
    gens = [
        g
        for g, gate in enumerate(circuit.gates)
        if isinstance(gate, PauliRotation) and gate.param is not None
    ]
    start = time.perf_counter()
    done, total_terms = 0, 0
    for g in gens:
        qc = QuantumCircuit(n)
        for later in circuit.gates[g + 1 :]:
            if isinstance(later, PauliRotation):
                (q,), (d,) = later.wires, later.digits  # brickwork: single-qubit rotations
                [qc.rx, qc.ry, qc.rz][d - 1](later.angle, q)
            else:  # CZ
                qc.cz(*later.wires)
        gate = circuit.gates[g]
        label = ["I"] * n
        for w, d in zip(gate.wires, gate.digits):
            label[n - 1 - w] = "IXYZ"[d]
        op, _ = propagate_through_circuit(
            SparsePauliOp("".join(label)), qc, max_terms=2**16, atol=0.0, frame="s"
        )
        total_terms += len(op)
        done += 1
        if time.perf_counter() - start > limit_s:
            break
    return time.perf_counter() - start, done, len(gens), total_terms


def _note(done, total):
    return f"{done}/{total} generators" + (" (time extrapolated)" if done < total else "")


def library_rows(ns, limit_s):
    rows = []
    for n in ns:
        body, shape = brickwork(n)
        circuit = rotation_form(prepared_tape(body, weights_for(shape)))
        everything = np.full(pp.num_blocks(n), np.uint64(2**64 - 1))
        t0 = time.perf_counter()
        carried = pp.carry_generators(circuit, everything)  # no light cone: the same work
        ours = time.perf_counter() - t0
        rows.append(("numpy bit-packed (this package)", n, ours, len(carried.coeffs), "measured"))
        t, done, total, terms = _pauli_sentence_propagation(circuit, limit_s)
        rows.append(
            (
                "PennyLane PauliSentence",
                n,
                t * total / done,
                terms,
                _note(done, total),
            )
        )
        try:
            t, done, total, terms = _pauli_prop_propagation(circuit, limit_s)
            rows.append(("pauli-prop 0.2.1 (Rust)", n, t * total / done, terms, _note(done, total)))
        except ImportError as err:
            rows.append(("pauli-prop", n, float("nan"), 0, str(err)[:60]))
    return rows


def frame_rows(cases):
    """Words held: generators forward (Q_j, the engine) against O backward (O_j)."""
    rows = []
    for family, n in cases:
        body, shape = FAMILIES[family](n)
        tape = prepared_tape(body, weights_for(shape))
        circuit = rotation_form(tape)
        obs = pauli_sum(tape.measurements[0].obs, circuit.wire_order)
        x, z, c = pp.packed_sum(obs)
        tag = np.zeros(len(c), dtype=np.int64)
        peak, total = len(c), 0
        try:
            for gate in reversed(circuit.gates):  # O <- V^dag O V
                if isinstance(gate, PauliRotation):
                    inverse = PauliRotation(gate.wires, gate.digits, -gate.angle)
                    tag, x, z, c, split = pp._apply_rotation(inverse, n, tag, x, z, c)
                    if gate.param is not None:
                        total += len(c)
                else:
                    inverse = FixedGate(gate.wires, gate.matrix.conj().T)
                    tag, x, z, c, split = pp._apply_fixed(inverse, tag, x, z, c)
                if split:
                    tag, x, z, c = pp._merge(tag, x, z, c)
                peak = max(peak, len(c))
                if peak > pp.DEFAULT_MAX_WORDS:
                    raise MemoryError
            backward = f"{peak} (sum over j of |O_j|: {total})"
        except MemoryError:
            backward = f"> {pp.DEFAULT_MAX_WORDS}"
        support = np.bitwise_or.reduce(pp.packed_sum(obs)[0] | pp.packed_sum(obs)[1], axis=0)
        try:
            carried = pp.carry_generators(circuit, support)
            forward = f"{carried.peak_words} (at the end: {len(carried.coeffs)})"
        except pp.PauliEngineLimitError:
            forward = f"> {pp.DEFAULT_MAX_WORDS}"
        rows.append((family, n, forward, backward))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    ns = [8, 12, 16, 20, 30, 50, 100] if not quick else [8, 16, 30, 50]
    snapshots = 7290 if quick else 29160
    real_max = 16 if quick else 20
    mse_max = 8 if quick else 16
    seeds = 3 if quick else 10
    rows = []
    for family in FAMILIES:
        for n in ns:
            row = processing_row(family, n, snapshots, None, real=n <= real_max)
            if "error" not in row and n <= mse_max:
                row.update(mse_row(family, n, snapshots, seeds))
            rows.append(row)
            print(_format(row), flush=True)
            if "error" in row:  # above the word cap: the truncation its message proposes
                row = processing_row(family, n, snapshots, TRUNCATION, real=n <= real_max)
                rows.append(row)
                print(_format(row), flush=True)
    print()
    print(f"T = {snapshots} snapshots; MSE over {seeds} seeds (sum over components)")
    print("The library question (all generators of the brickwork forward, no light cone):")
    lib = library_rows([16] if quick else [16, 50], limit_s=5 if quick else 20)
    print(f"{'library':34s} {'n':>3s} {'seconds':>9s} {'terms':>8s}  note")
    for name, n, t, terms, note in lib:
        print(f"{name:34s} {n:3d} {t:9.3f} {terms:8d}  {note}")
    print()
    print("Frames (words held at the peak): generators forward vs O backward")
    cases = [("brickwork", 16), ("brickwork", 50), ("tfim", 8), ("tfim", 16)]
    for family, n, fwd, bwd in frame_rows(cases[:3] if quick else cases):
        print(f"{family:10s} n={n:3d}  forward Q_j: {fwd:32s} backward O_j: {bwd}")
    _plot(rows, quick)


def _format(row):
    head = f"{row['family']:10s} n={row['n']:3d} M={row['M']:4d}"
    if "error" in row:
        return head + "  REFUSED: " + row["error"]
    text = (
        f"{head} build {row['build_s']:7.3f}s estimate {row['estimate_s']:7.3f}s "
        f"peak {row['peak_MiB']:8.1f} MiB carried {row['carried']:8d} words {row['words']:7d} "
        f"bias<= {row['bias']:.3g} ({row['bits']}"
        + (f", truncation {row['truncation']}" if row["truncation"] else "")
        + ")"
    )
    if "mse_shadow" in row:
        lo, hi = row["ratio_ci"]
        text += (
            f"\n{'':28s}MSE shadow {row['mse_shadow']:.4g} vs shift {row['mse_shift']:.4g} "
            f"(ratio 95% CI [{lo:.2f}, {hi:.2f}]); wall {row['wall_shadow']:.2f}s vs "
            f"{row['wall_shift']:.2f}s; gradient shots {row['shots']}"
        )
    return text


def _plot(rows, quick):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for family in FAMILIES:
        ok = [r for r in rows if r["family"] == family and "error" not in r]
        ns = [r["n"] for r in ok]
        label = f"{family} (truncated where marked)"
        axes[0].semilogy(ns, [r["build_s"] + r["estimate_s"] for r in ok], "o-", label=label)
        axes[1].semilogy(ns, [r["words"] for r in ok], "o-", label=label)
        for r in ok:
            if r["truncation"]:
                axes[1].annotate("w<=6", (r["n"], r["words"]), fontsize=7)
    axes[0].set(xlabel="qubits n", ylabel="processing seconds (build + estimate)")
    axes[1].set(xlabel="qubits n", ylabel="Pauli words estimated")
    for ax in axes:
        ax.legend()
    fig.suptitle("engine='pauli': shallow circuits, local / TFIM observables")
    fig.tight_layout()
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "scale_quick.png" if quick else "scale.png")
    fig.savefig(path, dpi=120)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
