"""A study that replays given learning curves under a pruner: the pruner tests' shared driver."""

from __future__ import annotations

from typing import Literal

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
