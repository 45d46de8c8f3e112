"""Guarantee check of diff_method="gentle-multicopy" (issue 4 acceptance).

Over seeded random 2-4 qubit circuits, both register variants, count runs with
``max_j |g_j - d_j f| > epsilon`` against exact gradients (analytic parameter-shift) and test
``P(failure) <= delta`` with a one-sided binomial test at 1%. A negative control divides the
batch sizes by 10 (``batch_scale=0.1``) and is run through the same test, for the theoretical
and for the calibrated constants; an optional sweep of larger divisors of the theoretical batch
shows where the guarantee does break.

    python benchmarks/multicopy_guarantee.py [runs] [calibrated_control_runs] [sweep_runs]
    python benchmarks/multicopy_guarantee.py 200 200 --jobs 2   # the README table (~42 min)
    python benchmarks/multicopy_guarantee.py divisor 1000 200 --jobs 2   # theory batch / 1000
    python benchmarks/multicopy_guarantee.py calibrate [runs]   # tunes constants="calibrated"
    python benchmarks/multicopy_guarantee.py calibrated [runs] [control_runs]  # + its control
    python benchmarks/multicopy_guarantee.py calibrate-shift [runs]  # parameter-shift's divisor

Add ``--jobs N`` to spread the runs over N processes (results do not depend on it: every run
has its own seed). ``--quick`` runs a smoke test (6 runs per configuration, the slow
calibrated control skipped); ``--help`` prints this text. A progress line is printed
every 10% of the runs of each configuration.

Calibration seeds (50000 + i) are disjoint from the test seeds (1000 + i).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pennylane as qml
from scipy.stats import binom

import pennylane_shadowgrad as sg

EPSILON, DELTA = 0.25, 0.05


def random_tape(seed: int, variant: str) -> qml.tape.QuantumScript:
    """A layered RY/RZ + CNOT circuit on 2-4 qubits with all angles trainable."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    ops = []
    for _ in range(2):
        for w in range(n):
            ops.append(qml.RY(qml.numpy.array(rng.uniform(0, 2 * np.pi), requires_grad=True), w))
            ops.append(qml.RZ(qml.numpy.array(rng.uniform(0, 2 * np.pi), requires_grad=True), w))
        ops.extend(qml.CNOT([w, w + 1]) for w in range(n - 1))
    if variant == "two":
        obs = qml.Projector([0] * n, wires=range(n))  # a fidelity loss: rank 1
    else:
        obs = qml.Z(0) @ qml.Z(n - 1) + 0.5 * qml.X(1)
    tape = qml.tape.QuantumScript(ops, [qml.expval(obs)])
    tape.trainable_params = list(range(sum(op.num_params for op in ops)))
    return tape


def _exact(tape, dev):
    tapes, fn = qml.gradients.param_shift(tape)
    return np.array(fn(qml.execute(tapes, dev)), dtype=float)


def gradient_error(seed: int, variant: str, batch_divisor: float = 1, dev=None, **options) -> tuple:
    """``(max error, report)`` of one seeded run of the transform on ``random_tape(seed)``."""
    dev = dev or qml.device("default.qubit")
    tape = random_tape(seed, variant)
    kwargs = {"epsilon": EPSILON, "delta": DELTA, "register": variant, "seed": seed, **options}
    kwargs["batch_scale"] = 1.0 / batch_divisor
    with sg.record() as rec:
        tapes, fn = sg.gentle_multicopy_grad(tape, **kwargs)
        est = np.array(fn(qml.execute(tapes, dev)), dtype=float)
    return float(np.max(np.abs(est - _exact(tape, dev)))), rec[0].report


def binomial_test(failures: int, runs: int, delta: float = DELTA) -> float:
    """One-sided p-value of ``failures`` under ``P(failure) = delta``."""
    return float(binom.sf(failures - 1, runs, delta))


def _one_run(args: tuple) -> tuple:
    """Worker: ``(max error, damage flag, copies, certified, rounds)`` of one seeded run."""
    seed, variant, batch_divisor, options = args
    with warnings.catch_warnings():  # uncertified runs are counted in the table instead
        warnings.filterwarnings("ignore", "diff_method='gentle-multicopy': no hypothesis")
        err, rep = gradient_error(seed, variant, batch_divisor, **options)
    return (
        err,
        bool(rep["failure_bound_exceeds_delta"]),
        rep["copies"]["total"],
        bool(rep["certified"]),
        rep["batches"],
    )


#: Worker processes of :func:`experiment` (``--jobs N`` on the command line).
JOBS = 1


def experiment(runs: int, batch_divisor: float = 1, seed0: int = 1000, **options) -> dict:
    tasks = [(seed0 + i, "two" if i % 2 else "single", batch_divisor, options) for i in range(runs)]
    start, every = time.perf_counter(), max(1, runs // 10)

    def progress(done_rows):
        for k, row in enumerate(done_rows, 1):
            if k % every == 0 or k == runs:
                elapsed = time.perf_counter() - start
                print(f"  ... {k}/{runs} runs [{elapsed:.0f} s]", flush=True)
            yield row

    if JOBS > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(JOBS) as pool:
            rows = list(progress(pool.map(_one_run, tasks, chunksize=1)))
    else:
        rows = list(progress(_one_run(t) for t in tasks))
    errors = [r[0] for r in rows]
    flagged = sum(r[1] for r in rows)
    copies = [r[2] for r in rows]
    errs = np.array(errors)
    failures = int(np.sum(errs > EPSILON))
    uncertified = np.array([not r[3] for r in rows])
    return {
        "failures_single": int(np.sum(errs[0::2] > EPSILON)),
        "failures_two": int(np.sum(errs[1::2] > EPSILON)),
        "runs": runs,
        "failures": failures,
        "p_value": binomial_test(failures, runs),
        "rejected": binomial_test(failures, runs) < 0.01,
        "max_error": float(np.max(errors)),
        "median_error": float(np.median(errors)),
        "flagged_by_damage_bound": flagged,
        "median_copies": float(np.median(copies)),
        "uncertified": int(uncertified.sum()),
        "failures_uncertified": int(np.sum((errs > EPSILON) & uncertified)),
        "median_rounds": float(np.median([r[4] for r in rows])),
    }


def _line(label: str, r: dict) -> str:
    return (
        f"{label}: {r['failures']}/{r['runs']} runs with max error > eps={EPSILON} "
        f"(single {r['failures_single']}, two {r['failures_two']}; delta={DELTA}); one-sided "
        f"binomial p = {r['p_value']:.3g} -> {'REJECTED' if r['rejected'] else 'not rejected'} "
        f"at 1%; median max error {r['median_error']:.3f}, worst {r['max_error']:.3f}; damage "
        f"bound > delta in {r['flagged_by_damage_bound']} runs; median copies "
        f"{r['median_copies']:.3g}, median rounds {r['median_rounds']:.0f}; uncertified "
        f"(max_rounds reached) {r['uncertified']} runs, "
        f"{r['failures_uncertified']} of them failures"
    )


def main(runs: int = 200, control_runs: int | None = None, sweep_runs: int = 0) -> None:
    print(f"constants='theoretical' (the rigorous default), {runs} runs, test seeds 1000..")
    print(_line("theory batch sizes", experiment(runs, 1)), flush=True)
    print(_line("negative control: theory batch / 10", experiment(runs, 10)), flush=True)
    calibrated(runs, control_runs)
    # The rigorous batch is loose on these circuits: show where the guarantee breaks.
    if sweep_runs:
        for div in (30, 100, 300, 1000):
            r = experiment(sweep_runs, div)
            print(_line(f"theory batch / {div} ({sweep_runs} runs)", r), flush=True)


def calibrated(runs: int = 200, control_runs: int | None = None) -> None:
    """``constants="calibrated"`` on the test seeds, and its negative control (batch / 10).

    The control is slow (about 25 s a run on average, 40 min for 200 runs with ``--jobs 2``:
    tiny batches fire on noise, so it runs thousands of rounds, often up to ``max_rounds``);
    ``control_runs`` (default ``runs``) sizes it separately. ``0`` skips it.
    """
    from pennylane_shadowgrad.multicopy import sweep

    print(
        f"constants='calibrated' (TUNED: batch / {sweep.CALIBRATED_BATCH_DIVISOR:g}, fresh "
        f"estimate / {sweep.CALIBRATED_ESTIMATE_DIVISOR:g}), {runs} runs, test seeds 1000.."
    )
    if runs:
        r = experiment(runs, 1, constants="calibrated")
        print(_line("calibrated sizes", r), flush=True)
    control_runs = runs if control_runs is None else control_runs
    if control_runs:
        r = experiment(control_runs, 10, constants="calibrated")
        print(_line(f"negative control: calibrated batch / 10 ({control_runs} runs)", r))


#: Divisors tried by the calibration (batch and fresh-estimate sizes divided alike).
CALIBRATION_GRID = tuple(2**k for k in range(1, 13))  # 2 .. 4096, stops at the first failure


def calibrate(runs: int = 200) -> None:
    """The tuning procedure of ``constants="calibrated"`` (see ``multicopy.sweep``)."""
    from pennylane_shadowgrad.multicopy import sweep

    best = 1
    for d in CALIBRATION_GRID:
        sweep.CALIBRATED_BATCH_DIVISOR = sweep.CALIBRATED_ESTIMATE_DIVISOR = float(d)
        r = experiment(runs, 1, seed0=50000, constants="calibrated")
        ok = r["failures"] <= DELTA / 2 * runs
        print(_line(f"calibration, sizes / {d}", r) + ("  [ok]" if ok else "  [too small]"))
        if not ok:
            break
        best = d
    print(f"largest divisor with failure rate <= delta/2: {best}; tuned divisor max(1, {best}/2)")


def shift_failures(runs: int, divisor: float, seed0: int = 50000) -> int:
    """Parameter-shift with its theoretical shots / ``divisor``, outcomes sampled exactly.

    Both test observables have two eigenvalues, so each shot is a Bernoulli draw of the upper
    eigenvalue; a run fails when ``max_j |g_j - d_j f| > eps``.
    """
    from pennylane_shadowgrad.multicopy.report import parameter_shift_sizing

    dev = qml.device("default.qubit")
    rng = np.random.default_rng(seed0)
    failures = 0
    for i in range(runs):
        tape = random_tape(seed0 + i, "two" if i % 2 else "single")
        mat = qml.matrix(tape.measurements[0].obs, wire_order=tape.wires)
        evals = np.linalg.eigvalsh(mat)
        lo, hi = evals[0], evals[-1]
        m = len(tape.trainable_params)
        shots = parameter_shift_sizing(m, 1, (hi - lo) / 2, EPSILON, DELTA, True)
        n_shots = max(1, int(np.ceil(shots["shots_per_circuit"] / divisor)))
        tapes, fn = qml.gradients.param_shift(tape)
        vals = np.array(qml.execute(tapes, dev), dtype=float)
        q = np.clip((vals - lo) / (hi - lo), 0, 1)
        sampled = lo + (hi - lo) * rng.binomial(n_shots, q) / n_shots
        est = np.array(fn(list(sampled)), dtype=float)
        failures += bool(np.max(np.abs(est - fn(list(vals)))) > EPSILON)
    return failures


def calibrate_shift(runs: int = 200) -> None:
    """The same tuning procedure for parameter-shift's shots (``CALIBRATED_SHIFT_DIVISOR``)."""
    best = 1
    for d in CALIBRATION_GRID:
        f = shift_failures(runs, d)
        ok = f <= DELTA / 2 * runs
        print(
            f"parameter-shift calibration, shots / {d}: {f}/{runs} failures  "
            + ("[ok]" if ok else "[too small]")
        )
        if not ok:
            break
        best = d
    print(f"largest divisor with failure rate <= delta/2: {best}; tuned divisor max(1, {best}/2)")


if __name__ == "__main__":
    args = sys.argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
        sys.exit(0)
    quick = "--quick" in args
    if quick:
        args.remove("--quick")
    if "--jobs" in args:
        k = args.index("--jobs")
        JOBS = int(args[k + 1])
        del args[k : k + 2]
    if quick:  # smoke test: a few runs of each configuration, the slow control skipped
        main(6, 0)
    elif args and args[0] == "calibrate-shift":
        calibrate_shift(int(args[1]) if len(args) > 1 else 200)
    elif args and args[0] == "calibrate":
        calibrate(int(args[1]) if len(args) > 1 else 200)
    elif args and args[0] == "divisor":  # theory batch / D: where the default's guarantee breaks
        d, n = float(args[1]), int(args[2]) if len(args) > 2 else 200
        print(_line(f"theory batch / {d:g} ({n} runs)", experiment(n, d)), flush=True)
    elif args and args[0] == "calibrated":
        calibrated(*(int(a) for a in args[1:]))
    else:
        main(*(int(a) for a in args))
