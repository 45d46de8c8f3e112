"""Allocation of a shot budget between shadow snapshots and parameter-shift circuits.

Given per-component single-shot variances of both unbiased estimators, choose the snapshot
count and the shots of every shifted circuit that minimise the summed variance of their
inverse-variance combination (a convex problem, solved by water-filling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Allocation:
    """A split of ``total`` shots: ``shadow`` snapshots and ``ps_shots[j]`` per shifted circuit.

    ``mse`` is the predicted summed MSE of the inverse-variance combination (``weights[j, o]``
    on the shadow estimate) under the variance model that produced the split.
    """

    shadow: int
    ps_shots: np.ndarray
    weights: np.ndarray
    mse: float
    component_mse: np.ndarray = field(repr=False)
    #: measured groups per shifted circuit (:func:`measurement_groups`; ``None``: 1): each
    #: shifted circuit runs as ``groups[j]`` tapes of ``ps_shots[j]`` shots
    groups: np.ndarray | None = None

    @property
    def ps_total(self) -> int:
        g = np.ones(len(self.ps_shots)) if self.groups is None else np.asarray(self.groups)
        return int(2 * np.sum(g * self.ps_shots))


def _optimal_ps(a: np.ndarray, u: np.ndarray, budget: float) -> np.ndarray:
    """Real ``m >= 0`` minimising ``sum_jo 1/(a_jo + m_j / u_jo)`` with ``2 sum m_j = budget``."""
    num = a.shape[0]
    live = np.any(u > 0, axis=1)
    if budget <= 0 or not live.any():
        return np.zeros(num)
    if a.shape[1] == 1:
        return _water_fill(a[:, 0], u[:, 0], budget)
    safe_u = np.where(u > 0, u, 1.0)

    w = np.where(u > 0, 1.0 / safe_u, 0.0)

    def m_of(lam):
        # Per output the stationarity condition w/(a + m w)^2 = lam has the root
        # sqrt(u/lam) - u a; the largest of these lies left of the root of the sum (every
        # term is positive), where Newton's method on the decreasing convex sum then rises
        # monotonically to it.
        with np.errstate(over="ignore", invalid="ignore"):
            single = np.where(u > 0, np.clip(np.sqrt(u / lam) - u * a, 0, None), 0.0)
            m = single.max(axis=1)
            if a.shape[1] > 1:
                for _ in range(12):
                    x = a + m[:, None] * w
                    h = np.sum(np.where(u > 0, w / x**2, 0.0), axis=1) - lam
                    dh = -2.0 * np.sum(np.where(u > 0, w**2 / x**3, 0.0), axis=1)
                    step = np.where((h > 0) & (dh < 0), -h / np.where(dh < 0, dh, -1.0), 0.0)
                    m = m + step
                    if np.all(step <= 1e-9 * (1.0 + m)):
                        break
        return np.where(live, m, 0.0)

    lo, hi = -80.0, 80.0  # log10 of the multiplier 2 lambda
    for _ in range(40):  # 160 / 2**40 < 1e-10 in log10 lambda
        mid = (lo + hi) / 2
        if 2 * m_of(10.0**mid).sum() > budget:
            lo = mid
        else:
            hi = mid
    return m_of(10.0**hi)


def _water_fill(a: np.ndarray, u: np.ndarray, budget: float) -> np.ndarray:
    """Exact solution of :func:`_optimal_ps` for one output, in ``O(M log M)``.

    Stationarity gives ``m_j = max(0, sqrt(u_j) s - u_j a_j)`` with ``s = lambda^(-1/2)``;
    component ``j`` is shifted once ``s`` exceeds ``t_j = sqrt(u_j) a_j``, and ``s`` solves
    the piecewise-linear ``sum_j m_j(s) = budget / 2``. A component whose shadow precision
    ``a_j`` is effectively infinite (the ``1e300`` sentinel) gains nothing and gets no shots.
    """
    live = (u > 0) & (a < 1e200)
    root = np.sqrt(np.where(live, u, 0.0))
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.where(live, root * a, np.inf)
    order = np.argsort(t, kind="stable")
    t_sorted = t[order]
    cum_root = np.cumsum(root[order])
    cum_ua = np.cumsum(np.where(live, u * np.minimum(a, 1e300), 0.0)[order])
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = (budget / 2.0 + cum_ua) / cum_root  # s if the first k + 1 are shifted
    nxt = np.append(t_sorted[1:], np.inf)
    ok = np.isfinite(t_sorted) & (cum_root > 0) & (cand <= nxt)
    if not ok.any():
        return np.zeros(len(a))
    s = cand[np.argmax(ok)]
    with np.errstate(over="ignore", invalid="ignore"):
        m = np.where(live, np.clip(root * s - u * np.minimum(a, 1e300), 0.0, None), 0.0)
    return m


def _combined(a: np.ndarray, m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per-(j, o) variance of the inverse-variance combination."""
    ps_prec = np.where(m[:, None] > 0, np.inf, 0.0)
    prec = a + np.where(u > 0, m[:, None] / np.where(u > 0, u, 1.0), ps_prec)
    return np.where(prec > 0, 1.0 / np.where(prec > 0, prec, 1.0), np.inf)


def allocate(
    v: np.ndarray,
    u: np.ndarray,
    total: int,
    active: np.ndarray | None = None,
    min_shadow: int = 1,
    grid: int = 10,
    groups=1,
    allow_no_shadow: bool = True,
) -> Allocation:
    """Split ``total`` shots between shadow snapshots and parameter-shift circuits.

    Minimises the summed variance ``sum_jo 1 / (T_sh / v_jo + m_j / u_jo)`` of the
    inverse-variance combination over ``T_sh + 2 sum_j G_j m_j = total`` (``T_sh = 0`` or
    ``T_sh >= min_shadow``): a convex problem, solved by water-filling in ``m`` for each
    ``T_sh`` on a grid refined by golden-section search.

    Args:
        v: ``(M, O)`` single-snapshot shadow variances (variance at ``T`` snapshots ``= v/T``).
        u: ``(M, O)`` single-shot parameter-shift variances (at ``m`` shots per tape:
            ``u/m``); a "shot" is one shot of each of the ``G_j`` measured groups.
        total: shots to split.
        active: components that may get parameter-shift shots (default: all with ``v > 0``).
        min_shadow: smallest non-zero shadow budget (e.g. ``3**n`` for a complete plan).
        grid: number of ``T_sh`` grid points.
        groups: ``G_j`` (int or ``(M,)``), tapes per shifted circuit: component ``j`` costs
            ``2 G_j m_j`` shots (:func:`~.parameter_shift.measurement_groups`).
        allow_no_shadow: whether ``T_sh = 0`` (parameter-shift only) may be chosen.

    **Example**

    >>> v = np.array([[9.0], [9.0]]); u = np.array([[0.5], [0.5]])
    >>> allocate(v, u, 1000).shadow  # parameter-shift is cheaper for both components
    0
    """
    v = np.atleast_2d(np.asarray(v, dtype=float))
    u = np.atleast_2d(np.asarray(u, dtype=float))
    active = np.any(v > 0, axis=1) if active is None else np.asarray(active, dtype=bool)
    u = np.where(active[:, None], u, 0.0)
    live = active | np.any(v > 0, axis=1)
    g_tapes = np.maximum(np.broadcast_to(np.asarray(groups, dtype=np.int64), (v.shape[0],)), 1)
    u_shot = u * g_tapes[:, None]  # variance per counted shot: m_j shots cost G_j m_j

    def evaluate(t: float):
        a = np.where(v > 0, t / np.where(v > 0, v, 1.0), np.inf)
        m = _optimal_ps(np.where(np.isinf(a), 1e300, a), u_shot, total - t)
        comp = _combined(a, m, u_shot)
        comp = np.where(live[:, None], comp, 0.0)
        return float(np.sum(comp)), m

    candidates = []
    if allow_no_shadow and (np.all(u[live] > 0) or not live.any()):
        candidates = [0.0]
    lo = float(min(max(min_shadow, 1), total))
    if lo <= total:
        candidates += list(np.geomspace(lo, total, grid))
    scores = [evaluate(t)[0] for t in candidates]
    best = int(np.argmin(scores))
    t_best = candidates[best]
    if t_best > 0:  # golden-section refinement between the grid neighbours
        a_, b_ = candidates[max(best - 1, 0)] or lo, candidates[min(best + 1, len(candidates) - 1)]
        a_ = max(a_, lo)
        g = (np.sqrt(5) - 1) / 2
        c_, d_ = b_ - g * (b_ - a_), a_ + g * (b_ - a_)
        fc, fd = evaluate(c_)[0], evaluate(d_)[0]
        for _ in range(16):  # one new evaluation per step; shrinks the bracket by 5e-4
            if b_ - a_ < 1e-3 * b_:  # the objective is flat at the optimum: 0.1% is enough
                break
            if fc < fd:
                b_, d_, fd = d_, c_, fc
                c_ = b_ - g * (b_ - a_)
                fc = evaluate(c_)[0]
            else:
                a_, c_, fc = c_, d_, fd
                d_ = a_ + g * (b_ - a_)
                fd = evaluate(d_)[0]
        t_ref = (a_ + b_) / 2
        if evaluate(t_ref)[0] < scores[best]:
            t_best = t_ref
    return _integer_allocation(v, u, g_tapes, total, t_best, live, min_shadow)


def _integer_allocation(v, u, g, total, t_real, live, min_shadow) -> Allocation:
    """Round the real split to integer shots per tape whose counted shots
    ``shadow + 2 sum_j G_j m_j`` add up to at most ``total``."""
    a_real = np.where(v > 0, t_real / np.where(v > 0, v, 1.0), np.inf)
    counted = _optimal_ps(np.where(np.isinf(a_real), 1e300, a_real), u * g[:, None], total - t_real)
    m_real = counted / g
    m = np.floor(m_real).astype(np.int64)
    shadow = int(total - 2 * np.sum(g * m))
    if t_real == 0 or shadow < min_shadow:
        # no shadow part: hand the rounding remainder to the largest parameter-shift parts
        order = np.argsort(-(m_real - m))
        k = 0
        while k < len(order):
            j = order[k]
            if m_real[j] > 0 and shadow >= 2 * g[j]:
                m[j] += 1
                shadow -= 2 * int(g[j])
            k += 1
        shadow = 0
    t = float(shadow)
    a = np.where(v > 0, t / np.where(v > 0, v, 1.0), np.inf)
    var_sh = np.where(a > 0, 1.0 / np.where(a > 0, a, 1.0), np.inf)
    comp = np.where(live[:, None], _combined(a, m.astype(float), u), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = np.where(np.isinf(var_sh), 0.0, np.nan_to_num(comp / var_sh, nan=1.0))
    weights = np.where(m[:, None] == 0, 1.0, weights)
    return Allocation(shadow, m, weights, float(np.sum(comp)), comp, g.copy())
