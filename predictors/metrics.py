"""How predictions are scored (BENCHMARKS.md): rank quality for accuracy, relative error for latency.

* :func:`rank_metrics`: Spearman's ρ, Kendall's τ (``tau-b``, scipy) and precision@top-``frac``, the
  share of the truly best ``ceil(frac * n)`` architectures that are also among the predicted best
  ``ceil(frac * n)`` (ties in the truth broken by row order, as a sort does).
* :func:`latency_metrics`: the share of predictions within ±10% of the truth (nn-Meter's metric,
  ``|p / y - 1| <= 0.1``), RMSE in the unit of ``y``, and Spearman's ρ.
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


def precision_at_top(pred: npt.ArrayLike, truth: npt.ArrayLike, frac: float = 0.05) -> float:
    """Share of the true top ``ceil(frac * n)`` found in the predicted top ``ceil(frac * n)``."""
    p, t = _pair(pred, truth)
    k = max(1, math.ceil(round(frac * p.size, 9)))  # 0.07 * 100 is 7.000000000000001 in floats
    top_true = set(np.argsort(-t, kind="stable")[:k].tolist())
    top_pred = set(np.argsort(-p, kind="stable")[:k].tolist())
    return len(top_true & top_pred) / k


def rank_metrics(pred: npt.ArrayLike, truth: npt.ArrayLike, frac: float = 0.05) -> dict[str, float]:
    """``{"spearman", "kendall", "precision_at_5pct"}`` (the key names ``frac`` in percent)."""
    p, t = _pair(pred, truth)
    return {"spearman": float(stats.spearmanr(p, t)[0]), "kendall": float(stats.kendalltau(p, t)[0]),
            f"precision_at_{round(frac * 100):d}pct": precision_at_top(p, t, frac)}


def latency_metrics(pred: npt.ArrayLike, truth: npt.ArrayLike, tolerance: float = 0.10) -> dict[str, float]:
    """``{"within_10pct", "rmse", "spearman"}`` (the first names ``tolerance`` in percent)."""
    p, t = _pair(pred, truth)
    if (t <= 0).any():
        raise PredictorError("relative latency error needs positive true latencies")
    return {f"within_{round(tolerance * 100):d}pct": float(np.mean(np.abs(p - t) <= tolerance * t)),
            "rmse": float(np.sqrt(np.mean((p - t) ** 2))), "spearman": float(stats.spearmanr(p, t)[0])}
