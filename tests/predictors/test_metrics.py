"""Scores of predictions, against hand-computed values."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from nas.errors import PredictorError
from predictors.metrics import latency_metrics, neighbour_median, order_drift, precision_at_top, rank_metrics


def test_precision_at_top_by_hand() -> None:
    truth = np.arange(40.0)  # top 5% of 40 = 2 architectures: rows 39 and 38
    pred = truth.copy()
    assert precision_at_top(pred, truth) == 1.0
    pred[38] = -1.0  # the second best is now ranked last: one of two found
    assert precision_at_top(pred, truth) == 0.5
    assert precision_at_top(-truth, truth) == 0.0
    assert precision_at_top([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], frac=0.5) == 1.0  # ceil(1.5) = 2
    # 0.07 * 100 is 7.000000000000001 in floats: the top 7, not 8 (the true 7th and 8th swapped)
    truth = np.arange(100.0)[::-1]
    pred = truth.copy()
    pred[6], pred[7] = pred[7], pred[6]
    assert precision_at_top(pred, truth, frac=0.07) == pytest.approx(6 / 7)


def _precision_by_every_tie_break(pred: np.ndarray, truth: np.ndarray, frac: float) -> float:
    """The plain definition averaged over every pair of row orders: sort (stable) with the rows
    permuted, take the top k of each, count the overlap."""
    import itertools
    import math

    k = max(1, math.ceil(frac * pred.size))
    perms = [np.array(q) for q in itertools.permutations(range(pred.size))]
    total = 0.0
    for a in perms:
        top_t = set(a[np.argsort(-truth[a], kind="stable")[:k]].tolist())
        for b in perms:
            total += len(top_t & set(b[np.argsort(-pred[b], kind="stable")[:k]].tolist())) / k
    return total / len(perms) ** 2


@pytest.mark.parametrize(("pred", "truth", "frac"), [
    ([1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0], 0.4),  # constant: chance, k / n
    ([5.0, 4.0, 4.0, 4.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0], 0.4),  # three tied for the second place
    ([3.0, 2.0, 2.0, 1.0, 0.0], [2.0, 2.0, 1.0, 2.0, 0.0], 0.4),  # ties in both
    ([0.5, 0.1, 0.9, 0.3, 0.7], [3.0, 1.0, 2.0, 2.0, 0.0], 0.6),
])
def test_precision_shares_ties_as_random_tie_breaks_would(pred, truth, frac) -> None:  # type: ignore[no-untyped-def]
    p, t = np.array(pred), np.array(truth)
    assert precision_at_top(p, t, frac) == pytest.approx(_precision_by_every_tie_break(p, t, frac), rel=1e-12)
    assert precision_at_top(p[::-1], t[::-1], frac) == pytest.approx(precision_at_top(p, t, frac), rel=1e-12)
    assert precision_at_top(np.ones(5), t, 0.4) == pytest.approx(2 / 5)


def test_undefined_metrics_are_errors() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(PredictorError, match="the 4 predictions are all equal"):
        rank_metrics(np.full(4, 0.3), truth)
    with pytest.raises(PredictorError, match="the 4 true values are all equal"):
        latency_metrics(truth, np.full(4, 2.0))
    for frac in (0.0, -1.0, 2.0, float("nan")):
        with pytest.raises(PredictorError, match="0 < frac <= 1"):
            precision_at_top(truth, truth, frac)


def test_rank_metrics() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    m = rank_metrics(truth * 10, truth)
    assert m["spearman"] == pytest.approx(1.0) and m["kendall"] == pytest.approx(1.0)
    assert rank_metrics(-truth, truth)["spearman"] == pytest.approx(-1.0)
    with pytest.raises(PredictorError):
        rank_metrics([1.0], [1.0])
    with pytest.raises(PredictorError):
        rank_metrics([1.0, np.nan], [1.0, 2.0])


def test_latency_metrics_by_hand() -> None:
    truth = np.array([10.0, 20.0, 40.0, 50.0])
    pred = np.array([10.5, 22.0, 32.0, 50.0])  # errors 5%, 10% (counted: the bound is inclusive), 20%, 0%
    m = latency_metrics(pred, truth)
    assert m["within_10pct"] == 0.75
    assert m["rmse"] == pytest.approx(np.sqrt((0.25 + 4 + 64 + 0) / 4))
    assert m["spearman"] == pytest.approx(1.0)
    with pytest.raises(PredictorError, match="positive"):
        latency_metrics([1.0, 2.0], [0.0, 1.0])


def _corrected_within_by_loop(pred: np.ndarray, truth: np.ndarray, k: int) -> float:
    e = [p / t - 1 for p, t in zip(pred, truth, strict=True)]
    n, hits = len(e), 0
    for i in range(n):
        m = statistics.median(e[j] for j in range(max(0, i - k), min(n, i + k + 1)) if j != i)
        fixed = pred[i] / (1 + m) if 1 + m > 0 else pred[i]
        hits += abs(fixed - truth[i]) <= 0.1 * truth[i]
    return hits / n


@pytest.mark.parametrize("k", [1, 3, 12, 50])
def test_order_drift_against_a_plain_loop(k: int) -> None:
    rng = np.random.default_rng(k)
    pred = rng.uniform(1.0, 5.0, 37)
    truth = pred * (1 + np.cumsum(rng.normal(0, 0.04, 37)))  # a random walk: errors follow the order
    pred[5] = -0.5  # a fit may go below zero; the row counts, with an error below -1
    truth[7] = 0.001  # a tiny latency: a huge relative error, which a median and ranks shrug off
    m = order_drift(pred, truth, neighbours=k, seed=k)
    e = pred / truth - 1
    a, b = np.argsort(np.argsort(e[:-1])), np.argsort(np.argsort(e[1:]))  # ranks (no ties in random floats)
    assert m["error_lag1"] == pytest.approx(np.corrcoef(a, b)[0, 1])
    within = _corrected_within_by_loop(pred, truth, k)
    assert m["drift_within_10pct"] == pytest.approx(within) and 0 < within < 1
    rng = np.random.default_rng(k)  # five orders drawn one after another from the seed
    orders = [rng.permutation(37) for _ in range(5)]
    assert m["shuffled_within_10pct"] == pytest.approx(np.mean([_corrected_within_by_loop(pred[o], truth[o], k)
                                                                 for o in orders]))


def test_order_drift_keeps_the_prediction_where_the_neighbours_say_nothing() -> None:
    """Row 2's neighbours all predict -1 for 1 (median error -2): dividing by 1 + m = -1 would flip its
    sign, so it keeps its own 1.05, within. Rows 0 and 4 divide by 0.025 (out); rows 1 and 3 keep -1."""
    m = order_drift([-1.0, -1.0, 1.05, -1.0, -1.0], [1.0] * 5, neighbours=2)
    assert m["drift_within_10pct"] == pytest.approx(0.2)


def test_neighbour_median_by_hand() -> None:
    v = [5.0, 1.0, 100.0, 2.0, 3.0]
    np.testing.assert_array_equal(neighbour_median(v, 1), [1.0, 52.5, 1.5, 51.5, 2.0])
    np.testing.assert_array_equal(neighbour_median(v, 2), [50.5, 5.0, 2.5, 3.0, 51.0])
    with pytest.raises(PredictorError, match="neighbours >= 1"):
        neighbour_median(v, 0)
    with pytest.raises(PredictorError, match="row 1 is not"):
        neighbour_median([1.0, np.nan, 3.0], 1)


def test_order_drift_tells_periods_of_measurement_from_noise() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    latency = rng.uniform(2.0, 20.0, n)
    slow = np.repeat(rng.random(n // 200) < 0.3, 200)  # measured in blocks; some blocks 25% slow
    truth = latency * (1 + 0.25 * slow) * (1 + rng.normal(0, 0.01, n))
    latency *= 1 + 0.25 * slow.mean()  # the best model of the architecture alone, fitted on these labels
    plain = latency_metrics(latency, truth)["within_10pct"]
    assert plain < 0.8  # the slow blocks are out
    in_order = order_drift(latency, truth, neighbours=12)
    assert in_order["error_lag1"] > 0.5
    assert in_order["drift_within_10pct"] > 0.98  # all but the blocks' edges come back
    shuffled = rng.permutation(n)  # the same labels in an order unrelated to when they were measured
    mixed = order_drift(latency[shuffled], truth[shuffled], neighbours=12)
    assert abs(mixed["error_lag1"]) < 0.1
    assert mixed["drift_within_10pct"] < plain + 0.01  # no period to recover: the neighbours do not help
    assert in_order["shuffled_within_10pct"] < plain + 0.01  # the baseline shuffles the rows itself


def test_order_drift_refuses_what_it_cannot_measure() -> None:
    with pytest.raises(PredictorError, match="positive"):
        order_drift([1.0, 2.0, 3.0], [1.0, 0.0, 3.0])
    with pytest.raises(PredictorError, match="at least 3"):
        order_drift([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(PredictorError, match="constant"):
        order_drift([1.0, 2.0, 3.0], [0.5, 1.0, 1.5])
    with pytest.raises(PredictorError, match="shuffles"):
        order_drift([1.0, 2.0, 3.0, 4.0], [1.0, 1.5, 2.0, 5.0], shuffles=0)
