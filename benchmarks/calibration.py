"""Calibration of the DEFAULT strategy's error bars: do the 95% intervals cover the truth?

Random circuits (1-5 qubits; RX/RY/RZ with random angles, CNOT/CZ), each with one ``expval``
of a random observable from one of four families (a Pauli word, a ``qml.sum`` of weighted
words, a ``qml.Hamiltonian`` with an identity offset, a ``qml.dot``) and a budget of
1000-20000 shots drawn log-uniformly. Every circuit is differentiated by ``shadow_grad`` with
DEFAULT options (no keyword arguments: ``strategy="auto"``) inside
``pennylane_shadowgrad.record()``; the record's Student-t intervals
``rec.confidence_interval(0.95)`` are compared with the exact gradient (PennyLane's analytic
``param_shift`` on a shot-free ``default.qubit``).

A component is *live* when its reported standard error is non-zero or its exact value is
non-zero (``|exact| > 1e-12``); dead components (outside the light cone, or a generator that
commutes with the observable) are exactly zero with zero error and are not counted. Counting
stops once ``--components`` live components have been seen.

The acceptance band ``95 +- 2 %`` is on COMPONENTS. Components of one circuit share their
snapshots and are correlated, so the binomial standard error ``sqrt(0.95 * 0.05 / N)`` is only
approximate; the table therefore also gives the mean over circuits of each circuit's coverage,
with a standard error from the spread across circuits (independent replicates). With
``N = 2500`` live components the band is 4.6 binomial standard errors wide.

Components reported with standard error exactly 0 whose estimate differs from the exact value
(a zero-width interval: the error bar claims an exactness the estimate does not have) are
counted separately (``se0wrong``; they count as not covered), and among them those whose
snapshot part came from a plan with a single jackknife group (``1group``: a complete plan with
one shot per basis, where the delete-a-group jackknife is identically 0). A standard error
at or below 1e-12 counts as zero. Components with a NaN standard error (the record says the
error is unknown) have no interval: they count as not covered and are listed (``nan_se``).

Columns: ``coverage%`` over components with its binomial SE (``binomSE%``, as if components
were independent) and its by-circuit cluster-robust SE (``clusterSE%``); ``circuitmean%`` the
mean over circuits of each circuit's coverage, with its SE over circuits.

Usage::

    python benchmarks/calibration.py                    # 2500 live components
    python benchmarks/calibration.py --quick            # 300 live components
    python benchmarks/calibration.py --seed 3 --components 5000
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pennylane as qml
from pennylane.tape import QuantumScript

import pennylane_shadowgrad as sg

FAMILIES = ("pauli", "pauli-sum", "hamiltonian", "dot")
LEVEL = 0.95
#: Dead components: exact gradient below this and reported standard error exactly 0.
EXACT_ZERO = 1e-12
#: A reported standard error at or below this is a zero-width interval (rounding residue of a
#: jackknife whose groups agree).
ZERO_SE = 1e-12


@dataclass
class CircuitResult:
    """Outcome of one random circuit: its live components and which of them were covered."""

    index: int
    num_qubits: int
    family: str
    shots: int
    num_params: int
    covered: np.ndarray  # (live,) bool
    zero_se_wrong: int  # live components with se == 0 whose estimate is not exact
    zero_se_one_group: int  # ... of which snapshots (weight > 0) with a single jackknife group
    unknown: int  # live components with a NaN standard error (no interval; not covered)
    strategy: str
    split: str
    seconds: float


@dataclass
class Calibration:
    """All circuits of one run, with the summary numbers."""

    circuits: list[CircuitResult] = field(default_factory=list)

    @property
    def components(self) -> int:
        return int(sum(len(c.covered) for c in self.circuits))

    @property
    def covered(self) -> int:
        return int(sum(c.covered.sum() for c in self.circuits))

    @property
    def coverage(self) -> float:
        return self.covered / max(self.components, 1)

    def circuit_coverage(self) -> tuple[float, float, int]:
        """Mean over circuits (with live components) of their coverage, its SE, and count."""
        per = np.array([c.covered.mean() for c in self.circuits if len(c.covered)])
        if len(per) == 0:
            return float("nan"), float("nan"), 0
        se = per.std(ddof=1) / np.sqrt(len(per)) if len(per) > 1 else float("nan")
        return float(per.mean()), float(se), len(per)

    def cluster_se(self) -> float:
        """By-circuit (cluster-robust) standard error of the component coverage."""
        return _cluster_se(self.circuits)

    @property
    def zero_se_wrong(self) -> int:
        return int(sum(c.zero_se_wrong for c in self.circuits))


def _word(rng: np.random.Generator, n: int):
    """A random non-identity Pauli word on ``n`` qubits (weight 1 to ``min(n, 3)``)."""
    weight = int(rng.integers(1, min(n, 3) + 1))
    support = sorted(rng.choice(n, size=weight, replace=False).tolist())
    ops = [getattr(qml, "XYZ"[int(rng.integers(3))])(int(q)) for q in support]
    return ops[0] if len(ops) == 1 else qml.prod(*ops)


def random_observable(rng: np.random.Generator, n: int, family: str):
    """A random observable of ``family`` on ``n`` qubits."""
    if family == "pauli":
        return _word(rng, n)
    k = int(rng.integers(2, 5))
    words = [_word(rng, n) for _ in range(k)]
    coeffs = rng.uniform(-1.0, 1.0, k)
    if family == "pauli-sum":
        return qml.sum(*[qml.s_prod(float(c), w) for c, w in zip(coeffs, words)])
    if family == "hamiltonian":
        offset = float(rng.uniform(-1, 1))
        return qml.Hamiltonian([*coeffs.tolist(), offset], [*words, qml.Identity(0)])
    if family == "dot":
        return qml.dot(coeffs.tolist(), words)
    raise ValueError(family)


def random_circuit(rng: np.random.Generator, n: int) -> list:
    """Layers of random RX/RY/RZ on every qubit (random angles) and random CNOT/CZ."""
    ops = []
    layers = int(rng.integers(1, 4))
    for _ in range(layers):
        for q in range(n):
            for _ in range(int(rng.integers(1, 3))):
                gate = (qml.RX, qml.RY, qml.RZ)[int(rng.integers(3))]
                ops.append(gate(float(rng.uniform(0, 2 * np.pi)), wires=q))
        if n > 1:
            for _ in range(int(rng.integers(1, n + 1))):
                a, b = rng.choice(n, size=2, replace=False)
                gate = (qml.CNOT, qml.CZ)[int(rng.integers(2))]
                ops.append(gate(wires=[int(a), int(b)]))
    return ops


def exact_gradient(tape: QuantumScript) -> np.ndarray:
    """Analytic parameter-shift gradient (no shots) on ``default.qubit``, flat ``(M,)``."""
    analytic = QuantumScript(tape.operations, tape.measurements)
    analytic.trainable_params = tape.trainable_params
    tapes, fn = qml.gradients.param_shift(analytic)
    res = fn(qml.execute(tapes, qml.device("default.qubit"), diff_method=None))
    return np.asarray(res, dtype=float).reshape(-1)


def run_circuit(index: int, rng: np.random.Generator) -> CircuitResult:
    """Draw one random circuit, differentiate it with default options, compare with exact."""
    n = int(rng.integers(1, 6))
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    shots = round(math.exp(rng.uniform(math.log(1000), math.log(20000))))
    ops = random_circuit(rng, n)
    obs = random_observable(rng, n, family)
    tape = QuantumScript(ops, [qml.expval(obs)], shots=shots)
    tape.trainable_params = list(range(sum(op.num_params for op in ops)))  # gates only
    exact = exact_gradient(tape)
    dev = qml.device("default.qubit", seed=int(rng.integers(2**31)))
    start = time.perf_counter()
    tapes, fn = sg.shadow_grad(tape)
    results = qml.execute(tapes, dev, diff_method=None)
    with sg.record() as rec:
        fn(results)
    seconds = time.perf_counter() - start
    if len(rec) != 1:
        raise RuntimeError(f"expected one record, got {len(rec)}")
    r = rec[0]
    est = np.asarray(r.jacobian[0], dtype=float).reshape(-1)
    se = np.asarray(r.stderr[0], dtype=float).reshape(-1)
    low, high = (np.asarray(a, dtype=float).reshape(-1) for a in r.confidence_interval(LEVEL)[0])
    live = (se != 0) | (np.abs(exact) > EXACT_ZERO)
    covered = (low[live] <= exact[live]) & (exact[live] <= high[live])
    wrong_mask = live & (se <= ZERO_SE) & (np.abs(est - exact) > 1e-9)
    split = r.split or {}
    weight = np.asarray(split.get("shadow_weight", np.ones((len(se), 1))), dtype=float)
    uses_shadow = np.any(weight > 0, axis=1)
    one_group = int(np.sum(wrong_mask & uses_shadow)) if r.groups <= 1 else 0
    return CircuitResult(
        index,
        n,
        family,
        shots,
        len(exact),
        covered,
        int(wrong_mask.sum()),
        one_group,
        int(np.sum(live & np.isnan(se))),
        r.strategy,
        f"{split.get('shadow_snapshots', '?')} snapshots + "
        f"{split.get('parameter_shift_shots', '?')} shift shots",
        seconds,
    )


def run_calibration(components: int = 2500, seed: int = 0, verbose: bool = True) -> Calibration:
    """Random circuits until ``components`` live components have been checked."""
    rng = np.random.default_rng(seed)
    cal = Calibration()
    index = 0
    while cal.components < components:
        c = run_circuit(index, rng)
        cal.circuits.append(c)
        index += 1
        if verbose:
            print(
                f"circuit {c.index:4d}: n={c.num_qubits} {c.family:<11} shots={c.shots:5d} "
                f"M={c.num_params:2d} live={len(c.covered):2d} covered={int(c.covered.sum()):2d} "
                f"[{c.strategy}: {c.split}] {c.seconds:.2f}s "
                f"(total {cal.components}/{components})",
                flush=True,
            )
    return cal


def _cluster_se(circuits: list[CircuitResult]) -> float:
    """Cluster-robust SE of ``sum k_i / sum n_i`` with circuits as independent clusters."""
    n = np.array([len(c.covered) for c in circuits], dtype=float)
    k = np.array([c.covered.sum() for c in circuits], dtype=float)
    c = np.count_nonzero(n)
    if c < 2:
        return float("nan")
    p = k.sum() / n.sum()
    return float(np.sqrt(np.sum((k - p * n) ** 2) * c / (c - 1)) / n.sum())


def _row(label: str, circuits: list[CircuitResult]) -> str:
    n = sum(len(c.covered) for c in circuits)
    k = sum(int(c.covered.sum()) for c in circuits)
    per = [c.covered.mean() for c in circuits if len(c.covered)]
    cov = k / n if n else float("nan")
    binom = math.sqrt(LEVEL * (1 - LEVEL) / n) if n else float("nan")
    mean_c = float(np.mean(per)) if per else float("nan")
    se_c = float(np.std(per, ddof=1) / np.sqrt(len(per))) if len(per) > 1 else float("nan")
    wrong = sum(c.zero_se_wrong for c in circuits)
    one = sum(c.zero_se_one_group for c in circuits)
    unknown = sum(c.unknown for c in circuits)
    return (
        f"{label:<14} {len(circuits):>8} {n:>10} {100 * cov:>9.2f} {100 * binom:>8.2f} "
        f"{100 * _cluster_se(circuits):>9.2f} {100 * mean_c:>12.2f} {100 * se_c:>8.2f} "
        f"{wrong:>8} {one:>8} {unknown:>8}"
    )


def table(cal: Calibration) -> str:
    """Coverage by observable family, by qubit count, and overall."""
    head = (
        f"{'group':<14} {'circuits':>8} {'components':>10} {'coverage%':>9} {'binomSE%':>8} "
        f"{'clusterSE%':>9} "
        f"{'circuitmean%':>12} {'SE%':>8} {'se0wrong':>8} {'1group':>8} {'nan_se':>8}"
    )
    lines = [head, "-" * len(head)]
    by_family, by_n = defaultdict(list), defaultdict(list)
    for c in cal.circuits:
        by_family[c.family].append(c)
        by_n[c.num_qubits].append(c)
    lines += [_row(fam, by_family[fam]) for fam in FAMILIES if by_family[fam]]
    lines += [_row(f"n={n}", by_n[n]) for n in sorted(by_n)]
    lines.append(_row("overall", cal.circuits))
    return "\n".join(lines)


def verdict(cal: Calibration, band: float = 0.02) -> str:
    n = cal.components
    binom = math.sqrt(LEVEL * (1 - LEVEL) / n)
    cluster = cal.cluster_se()
    dev = cal.coverage - LEVEL
    inside = abs(dev) <= band
    return (
        f"components: coverage {100 * cal.coverage:.2f}% of {n} (target {100 * LEVEL:.0f} +- "
        f"{100 * band:.0f}%; the band is {band / binom:.1f} binomial SEs, {band / cluster:.1f} "
        f"by-circuit SEs; deviation {dev / binom:+.1f} binomial, {dev / cluster:+.1f} by-circuit "
        f"SEs): {'INSIDE' if inside else 'OUTSIDE'} the band"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 live components")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--components", type=int, default=None, help="live components (2500)")
    args = parser.parse_args()
    n = args.components or (300 if args.quick else 2500)
    start = time.perf_counter()
    cal = run_calibration(n, args.seed)
    print()
    print(table(cal))
    print()
    print(verdict(cal))
    mean_c, se_c, k = cal.circuit_coverage()
    print(f"circuits: mean coverage {100 * mean_c:.2f}% +- {100 * se_c:.2f}% over {k} circuits")
    wrong = cal.zero_se_wrong
    rest = cal.components - wrong
    print(
        f"zero-width intervals on inexact estimates: {wrong} components "
        f"({100 * wrong / max(cal.components, 1):.2f}%); coverage of the other {rest}: "
        f"{100 * cal.covered / max(rest, 1):.2f}%"
    )
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
