"""Fuzzy c-means clustering (Bezdek, "Pattern Recognition with Fuzzy Objective Function Algorithms", 1981).

GENNAPE (Mills et al., AAAI 2023) clusters the graph embeddings with fuzzy c-means and weights its
predictor heads by the memberships. For points ``x_i`` (``(n, d)``), ``c`` centres ``v_k`` and a
fuzzifier ``m > 1``, fuzzy c-means minimizes

.. math::
    J(U, V) = \\sum_i \\sum_k u_{ik}^m \\lVert x_i - v_k \\rVert^2, \\qquad \\sum_k u_{ik} = 1,\\ u_{ik} \\ge 0,

by alternating the two stationarity conditions

.. math::
    v_k = \\frac{\\sum_i u_{ik}^m x_i}{\\sum_i u_{ik}^m}, \\qquad
    u_{ik} = \\Bigl(\\sum_j (d_{ik} / d_{ij})^{2/(m-1)}\\Bigr)^{-1}, \\quad d_{ik} = \\lVert x_i - v_k \\rVert.

A point that sits on one or more centres (``d = 0``) belongs to them in equal shares. ``m -> 1``
approaches hard k-means; large ``m`` makes every membership approach ``1/c``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nas.errors import PredictorError

FloatArray = npt.NDArray[np.float64]


def memberships(x: npt.ArrayLike, centres: npt.ArrayLike, m: float = 2.0) -> FloatArray:
    """``u``, ``(n, c)``: the fuzzy membership of each row of ``x`` ``(n, d)`` in each centre ``(c, d)``."""
    if m <= 1.0:
        raise PredictorError(f"the fuzzifier m must be > 1; got {m}")
    x = np.asarray(x, dtype=np.float64)
    v = np.asarray(centres, dtype=np.float64)
    d2 = ((x[:, None, :] - v[None, :, :]) ** 2).sum(-1)  # (n, c) squared distances
    on_centre = d2 <= 1e-24
    hit = on_centre.any(axis=1)
    # (d_ik/d_ij)^(2/(m-1)) = (d2_ik/d2_ij)^(1/(m-1)): normalizing d2^(-1/(m-1)) across centres is the same
    # sum. In logs, shifted by each row's largest, so that m near 1 neither underflows nor overflows.
    log_w = -np.log(np.where(hit[:, None], 1.0, d2)) / (m - 1.0)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w[hit] = on_centre[hit].astype(np.float64)
    return w / w.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class FuzzyCMeans:
    """Fitted centres ``(c, d)``, training memberships ``(n, c)``, the objective per iteration."""

    centres: FloatArray
    u: FloatArray
    m: float
    objective: tuple[float, ...]

    def memberships(self, x: npt.ArrayLike) -> FloatArray:
        return memberships(x, self.centres, self.m)


def fuzzy_cmeans(
    x: npt.ArrayLike, c: int, *, m: float = 2.0, max_iter: int = 300, tol: float = 1e-6,
    rng: np.random.Generator | None = None,
) -> FuzzyCMeans:
    """Fuzzy c-means of ``x`` ``(n, d)`` into ``c`` clusters, from random memberships drawn with ``rng``.

    Stops when no membership moves by more than ``tol`` or after ``max_iter`` rounds.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < c or c < 1:
        raise PredictorError(f"fuzzy c-means needs (n, d) points with n >= c >= 1; got shape {x.shape}, c={c}")
    rng = rng if rng is not None else np.random.default_rng(0)
    u = rng.dirichlet(np.ones(c), size=x.shape[0])  # (n, c), rows sum to 1
    history: list[float] = []
    centres = np.zeros((c, x.shape[1]))
    for _ in range(max(max_iter, 1)):
        um = u**m
        centres = um.T @ x / um.sum(axis=0)[:, None]  # (c, d)
        new = memberships(x, centres, m)
        d2 = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        history.append(float((new**m * d2).sum()))
        done = np.abs(new - u).max() < tol
        u = new
        if done:
            break
    return FuzzyCMeans(centres, u, m, tuple(history))  # u is exactly the memberships of these centres
