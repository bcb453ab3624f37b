"""A study that replays given learning curves under a pruner, and the curve set the pruner tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import optuna


def replay(curves: list[list[float]], pruner: optuna.pruners.BasePruner,
           direction: Literal["minimize", "maximize"] = "maximize") -> optuna.Study:
    """One trial per curve, in order, reporting it step by step until the pruner stops it."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    for i in range(len(curves)):
        study.enqueue_trial({"i": i})

    def objective(trial: optuna.trial.Trial) -> float:
        curve = curves[trial.suggest_int("i", 0, len(curves) - 1)]
        for step, v in enumerate(curve):
            trial.report(v, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return curve[-1]

    study.optimize(objective, n_trials=len(curves))
    return study


def hopeless_and_good_curves() -> list[list[float]]:
    """Five 20-epoch accuracy curves: three alike, a fourth that saturates 40 points below them, and a
    fifth that ends above every earlier one. A pruner should stop the fourth and keep the fifth."""
    x = np.arange(20) + 1.0
    good = list(85.0 - 50.0 * x ** -0.8)
    bad = list(45.0 - 30.0 * x ** -0.8)
    better = list(90.0 - 55.0 * x ** -0.8)
    return [good, good, good, bad, better]


def replay_both_ways(make_pruner: Callable[[tuple[float, float]], optuna.pruners.BasePruner],
                     value_range: tuple[float, float] = (0.0, 100.0)) -> tuple[optuna.Study, optuna.Study]:
    """:func:`hopeless_and_good_curves` replayed as accuracies (maximize) and as losses (minimize, the
    values negated); ``make_pruner(value_range)`` builds a fresh pruner for each, given its value range."""
    curves = hopeless_and_good_curves()
    lo, hi = value_range
    up = replay(curves, make_pruner((lo, hi)))
    down = replay([[-v for v in c] for c in curves], make_pruner((-hi, -lo)), "minimize")
    return up, down
