"""Resource report of one gentle-multicopy gradient, and parameter-shift sized the same way.

Gate applications follow a stated cost model (per copy): the sweep applies each circuit gate
once (twice with the ``omega`` register); a single-register check at gate ``i`` applies the
``G - i - 1`` later gates and undoes them (``2 (G - i - 1)``) plus a Hadamard-test block of
``2 (L n + w_j + 1)`` gates for an ``L``-term observable and a ``w_j``-qubit generator; a
two-register check costs ``2 (n + w_j + 1)`` (controlled SWAP and controlled ``P_j``, with their
uncompute); every check adds its copy's ancilla into a ``ceil(log2(b+1))``-bit counter and
removes it again (``2 ceil(log2(b+1))``). Preparing ``omega`` costs ``2^n r`` gates (generic
state preparation of a rank-``r`` state) plus ``G`` (the inverse circuit).
"""

from __future__ import annotations

import math

import numpy as np


def counter_qubits(batch: int) -> int:
    """Qubits of the coherent counter of ``batch`` ancillas."""
    return max(1, math.ceil(math.log2(batch + 1)))


def check_gates(
    variant: str,
    gate_index: np.ndarray,
    weights: np.ndarray,
    num_gates: int,
    n: int,
    terms: int,
    batch: int,
) -> np.ndarray:
    """Gate applications per copy of each check (the cost model of this module)."""
    counter = 2 * counter_qubits(batch)
    if variant == "two-register":
        return 2 * (n + weights + 1) + counter
    return 2 * (num_gates - gate_index - 1) + 2 * (terms * n + weights + 1) + counter


def batch_gates(
    variant: str,
    checks_done: int,
    gate_index: np.ndarray,
    per_check: np.ndarray,
    num_gates: int,
    prep: int,
) -> int:
    """Gate applications per copy of one batch that made ``checks_done`` checks."""
    if checks_done == 0:
        return 0
    sweep = int(gate_index[checks_done - 1]) + 1
    if variant == "two-register":
        return 2 * sweep + prep + int(per_check[:checks_done].sum())
    return sweep + int(per_check[:checks_done].sum())


def parameter_shift_sizing(
    num_rotations: int,
    num_gates: int,
    half_width: float,
    eps: float,
    delta: float,
    two_outcome: bool = False,
) -> dict:
    """Parameter-shift sized for the same ``(eps, delta)`` and by the same rules as the protocol.

    Each derivative is ``(f_+ - f_-)/2`` from ``N`` shots per shifted circuit, outcomes in a
    range ``2 g``; a union bound over the ``M`` rotations (no rounds: nothing is adaptive).

    * Two-outcome observables (projectors, single Pauli words): ``g (2 S / 2N - 1)`` with ``S``
      a sum of ``2N`` independent Bernoulli shots, so by Hoeffding's (1956) comparison of
      Poisson-binomial with binomial tails the exact binomial size of the protocol's fresh
      estimates applies: ``2N = estimate_size(eps / (2 g), delta / M)`` (rigorous).
    * Otherwise Hoeffding: ``P(|err| > eps) <= 2 exp(-N eps^2 / g^2)``, i.e.
      ``N = ceil(g^2 ln(2 M / delta) / eps^2)``.

    Shots are counted as if ``O`` were measured in its eigenbasis in one setting (favourable to
    parameter-shift for non-commuting Pauli sums).
    """
    from .threshold_search import estimate_size

    hoeffding = math.ceil(half_width**2 * math.log(2 * num_rotations / delta) / eps**2)
    shots, sizing = hoeffding, "worst-case Hoeffding, union bound over rotations"
    if two_outcome and eps < 2 * half_width:
        shots = min(
            hoeffding, math.ceil(estimate_size(eps / (2 * half_width), delta / num_rotations) / 2)
        )
        sizing = "exact binomial tails (two-outcome observable), union bound over rotations"
    copies = 2 * num_rotations * shots
    return {
        "shots_per_circuit": shots,
        "circuits": 2 * num_rotations,
        "copies": copies,
        "gate_applications": copies * num_gates,
        "quantum_memory_qubits": None,
        "sizing": sizing,
    }
