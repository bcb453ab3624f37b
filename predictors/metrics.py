"""How predictions are scored (BENCHMARKS.md): rank quality for accuracy, relative error for latency.

* :func:`rank_metrics`: Spearman's ρ, Kendall's τ (``tau-b``, scipy) and precision@top-``frac``, the
  share of the truly best ``k = ceil(frac * n)`` architectures that are also among the predicted best
  ``k``. Where ties straddle the ``k``-th place (in the truth or in the predictions), the tied rows
  share the remaining places equally: precision is the expected share when ties are broken at
  random, so it does not depend on row order (a constant prediction scores ``k / n``, chance).
  Constant predictions or truth have no rank correlation: a :class:`~nas.errors.PredictorError`.
* :func:`latency_metrics`: the share of predictions within ±10% of the truth (nn-Meter's metric,
  ``|p / y - 1| <= 0.1``), RMSE in the unit of ``y``, and Spearman's ρ.
* :func:`order_drift`: whether a model's misses on a latency table follow the order the table was
  measured in (a diagnostic of the labels, not a metric of a predictor).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats

from nas.errors import PredictorError


def _pair(pred: npt.ArrayLike, truth: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred, dtype=np.float64).reshape(-1), np.asarray(truth, dtype=np.float64).reshape(-1)
    if p.shape != t.shape or p.size < 2:
        raise PredictorError(f"need two equal-length arrays of at least 2 values; got {p.shape} and {t.shape}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise PredictorError("predictions and truth must be finite")
    return p, t


def _in_top(v: np.ndarray, k: int) -> np.ndarray:
    """Per row, the chance that it is among the ``k`` largest of ``v`` when ties are broken at random."""
    kth = np.sort(v)[::-1][k - 1]
    above, tied = v > kth, v == kth
    out = above.astype(np.float64)
    out[tied] = (k - int(above.sum())) / int(tied.sum())
    return out


def precision_at_top(pred: npt.ArrayLike, truth: npt.ArrayLike, frac: float = 0.05) -> float:
    """Share of the true top ``ceil(frac * n)`` found in the predicted top ``ceil(frac * n)``; ties
    at the cut are shared (see the module docstring)."""
    p, t = _pair(pred, truth)
    if not 0 < frac <= 1:
        raise PredictorError(f"precision at the top needs 0 < frac <= 1; got {frac}")
    k = max(1, math.ceil(round(frac * p.size, 9)))  # 0.07 * 100 is 7.000000000000001 in floats
    return float(_in_top(t, k) @ _in_top(p, k)) / k


def _correlations(p: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    for name, v in (("predictions", p), ("true values", t)):
        if (v == v[0]).all():
            raise PredictorError(f"the {v.size} {name} are all equal ({v[0]}): a rank correlation is undefined")
    return float(stats.spearmanr(p, t)[0]), float(stats.kendalltau(p, t)[0])


def rank_metrics(pred: npt.ArrayLike, truth: npt.ArrayLike, frac: float = 0.05) -> dict[str, float]:
    """``{"spearman", "kendall", "precision_at_5pct"}`` (the key names ``frac`` in percent)."""
    p, t = _pair(pred, truth)
    rho, tau = _correlations(p, t)
    return {"spearman": rho, "kendall": tau, f"precision_at_{round(frac * 100):d}pct": precision_at_top(p, t, frac)}


def latency_metrics(pred: npt.ArrayLike, truth: npt.ArrayLike, tolerance: float = 0.10) -> dict[str, float]:
    """``{"within_10pct", "rmse", "spearman"}`` (the first names ``tolerance`` in percent)."""
    p, t = _pair(pred, truth)
    if (t <= 0).any():
        raise PredictorError("relative latency error needs positive true latencies")
    return {f"within_{round(tolerance * 100):d}pct": float(np.mean(np.abs(p - t) <= tolerance * t)),
            "rmse": float(np.sqrt(np.mean((p - t) ** 2))), "spearman": _correlations(p, t)[0]}


def neighbour_median(values: npt.ArrayLike, neighbours: int) -> np.ndarray:
    """Per row, the median of the ``neighbours`` rows on each side of it (fewer at the ends), never the
    row itself; the median, so that a few rows with huge values do not move their neighbours."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if neighbours < 1 or v.size < 2:
        raise PredictorError(f"a neighbour median needs neighbours >= 1 and at least 2 rows; "
                             f"got {neighbours}, {v.size}")
    if not np.isfinite(v).all():
        raise PredictorError(f"a neighbour median needs finite values; row {int(np.argmin(np.isfinite(v)))} is not")
    pad = np.full(v.size + 2 * neighbours, np.nan)  # NaN marks "no row here"
    pad[neighbours:neighbours + v.size] = v
    windows = np.lib.stride_tricks.sliding_window_view(pad, 2 * neighbours + 1).copy()
    windows[:, neighbours] = np.nan
    return np.asarray(np.nanmedian(windows, axis=1))


def _neighbour_corrected_within(p: np.ndarray, t: np.ndarray, neighbours: int, tolerance: float) -> float:
    m = neighbour_median(p / t - 1.0, neighbours)
    fixed = np.where(1.0 + m > 0, p / np.maximum(1.0 + m, 1e-300), p)
    return float(np.mean(np.abs(fixed - t) <= tolerance * t))


def order_drift(pred: npt.ArrayLike, truth: npt.ArrayLike, neighbours: int = 3, tolerance: float = 0.10,
                seed: int = 0, shuffles: int = 5) -> dict[str, float]:
    """How much of a model's miss on a table follows the table's row order.

    A latency table measured one architecture after another carries the state of the machine at the
    time (load, clocks, temperature), so where the rows are in measurement order and the order is
    unrelated to the architectures, a part of the label that follows the order is measurement, not
    architecture. With the relative errors ``e_i = p_i / y_i - 1`` in row order (within ``tolerance``
    where ``|e_i| <= tolerance``):

    * ``error_lag1``: Spearman's correlation of ``e_i`` with ``e_{i+1}`` (about 0 where the error is
      independent from row to row; ranks, so that a few tiny latencies with huge relative errors do not
      decide it);
    * ``drift_within_10pct``: the share within ``tolerance`` of ``p_i / (1 + m_i)``, where ``m_i`` is the
      median error of the ``neighbours`` rows on each side of row ``i`` (:func:`neighbour_median`), never
      row ``i`` itself; a row whose ``1 + m_i`` is not positive keeps ``p_i``. It uses the other rows'
      true labels, so it is no prediction: it says how much of the model's miss the row order explains;
    * ``shuffled_within_10pct``: the same correction with the rows in a random order, the mean over
      ``shuffles`` orders drawn with ``seed``; the baseline: what neighbours that share nothing but the
      table give (a median of a few noisy rows also adds noise, so this can fall below the uncorrected
      share).
    """
    p, t = _pair(pred, truth)
    if (t <= 0).any():
        raise PredictorError("order drift needs positive true latencies")
    if p.size < 3:
        raise PredictorError(f"order drift needs at least 3 rows; got {p.size}")
    e = p / t - 1.0
    if (e[1:] == e[1]).all() or (e[:-1] == e[0]).all():
        raise PredictorError("the relative errors are constant: their correlation along the rows is undefined")
    if shuffles < 1:
        raise PredictorError(f"order drift needs shuffles >= 1; got {shuffles}")
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(p.size) for _ in range(shuffles)]
    key = f"{round(tolerance * 100):d}pct"
    return {"error_lag1": float(stats.spearmanr(e[:-1], e[1:])[0]),
            f"drift_within_{key}": _neighbour_corrected_within(p, t, neighbours, tolerance),
            f"shuffled_within_{key}": float(np.mean([_neighbour_corrected_within(p[o], t[o], neighbours, tolerance)
                                                     for o in orders]))}
