"""Pareto dominance, non-dominated sorting, crowding distance and the 2-D hypervolume.

All objectives are **maximized**. ``points`` is an ``(n, m)`` array, one row per candidate.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def dominates(a: npt.ArrayLike, b: npt.ArrayLike) -> bool:
    """``a`` is at least as good as ``b`` everywhere and better somewhere."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(x >= y) and np.any(x > y))


def non_dominated_sort(points: npt.ArrayLike) -> list[list[int]]:
    """Fronts of row indices: front 0 is the Pareto front, front k is dominated only by fronts < k.

    Deb et al.'s fast non-dominated sort (NSGA-II, IEEE TEC 2002), ``O(m n^2)``.
    """
    p = np.asarray(points, float)  # (n, m)
    n = len(p)
    ge = np.all(p[:, None, :] >= p[None, :, :], axis=2)  # (n, n): row i >= row j everywhere
    gt = np.any(p[:, None, :] > p[None, :, :], axis=2)
    dom = ge & gt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)  # how many dominate each
    fronts: list[list[int]] = []
    current = [int(i) for i in np.flatnonzero(count == 0)]
    while current:
        fronts.append(current)
        nxt: list[int] = []
        for i in current:
            for j in np.flatnonzero(dom[i]):
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(int(j))
        current = sorted(nxt)
    assert sum(len(f) for f in fronts) == n
    return fronts


def crowding_distance(points: npt.ArrayLike) -> Array:
    """Deb et al.'s crowding distance of each row within its set: the boundary rows of every
    objective get ``inf``; the others the sum over objectives of the normalized gap between their
    neighbours."""
    p = np.asarray(points, float)
    n, m = p.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(p[:, k], kind="stable")
        span = p[order[-1], k] - p[order[0], k]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (p[order[2:], k] - p[order[:-2], k]) / span
    return dist


def hypervolume_2d(points: npt.ArrayLike, reference: npt.ArrayLike) -> float:
    """The area dominated by ``points`` ``(n, 2)`` and bounded below by ``reference`` (both maximized);
    points not better than the reference in both objectives add nothing."""
    p = np.asarray(points, float).reshape(-1, 2)
    r = np.asarray(reference, float)
    p = p[np.all(p > r, axis=1)]
    if len(p) == 0:
        return 0.0
    p = p[np.argsort(-p[:, 0], kind="stable")]  # by the first objective, best first
    area, best_y = 0.0, r[1]
    for x, y in p:
        if y > best_y:
            area += (x - r[0]) * (y - best_y)
            best_y = y
    return float(area)
