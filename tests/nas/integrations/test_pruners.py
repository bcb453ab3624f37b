"""ZeroCostPruner, LearningCurvePruner and the curve ensemble, against hand-computed oracles."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas.errors import NasError
from nas.integrations.curves import CurveEnsemble
from nas.integrations.optuna import LearningCurvePruner, ZeroCostPruner, make_objective
from search_spaces import space_from_spec
from tests.nas.integrations._curves import replay_both_ways

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_curve_ensemble_extrapolates_a_known_curve() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(30)
    truth = 90.0 - 60.0 * (x + 1.0) ** -0.7
    noisy = truth + rng.normal(0.0, 0.3, x.size)
    ex = CurveEnsemble().extrapolate(x[:10], noisy[:10], 29, np.random.default_rng(1))
    assert abs(ex.mean - truth[-1]) < 3.0
    assert ex.std > 0 and abs(ex.mean - truth[-1]) < 4 * ex.std + 1.0
    assert sum(ex.weights.values()) == pytest.approx(1.0)
    again = CurveEnsemble().extrapolate(x[:10], noisy[:10], 29, np.random.default_rng(1))
    assert np.array_equal(ex.samples, again.samples)  # seeded
    with pytest.raises(NasError, match="at least 3"):
        CurveEnsemble().extrapolate([0, 1], [1.0, 2.0], 10, rng)


def test_learning_curve_pruner_stops_a_hopeless_curve_and_keeps_a_good_one() -> None:
    study, losses = replay_both_ways(lambda _: LearningCurvePruner(max_step=19, n_startup_trials=3, seed=0))
    states = [t.state for t in study.trials]
    assert states[:3] == [TrialState.COMPLETE] * 3
    assert states[3] == TrialState.PRUNED and study.trials[3].last_step == 2  # at the first decision
    assert states[4] == TrialState.COMPLETE
    assert [t.state for t in losses.trials][3:] == [TrialState.PRUNED, TrialState.COMPLETE]  # minimize
    with pytest.raises(NasError):
        LearningCurvePruner(max_step=10, n_warmup_steps=2)


def test_zero_cost_pruner_prunes_the_bottom_quantile_at_the_first_report() -> None:
    space = space_from_spec("nb201")
    pruner = ZeroCostPruner(space, "params", quantile=0.5, n_warmup_trials=4, then=optuna.pruners.NopPruner())
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner)
    seen_steps: list[int] = []

    def train(trial: optuna.trial.Trial, genotype: object) -> float:
        for step in range(3):
            trial.report(float(step), step)
            seen_steps.append(step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 1.0

    study.optimize(make_objective(space, train), n_trials=12)
    trials = study.trials
    for k, t in enumerate(trials):
        score = space.to_graph(space.parse(t.user_attrs["arch"])).params / 1e6
        assert t.user_attrs["zc_score"] == pytest.approx(score)
        earlier = [s.user_attrs["zc_score"] for s in trials[:k]]
        expected_prune = len(earlier) >= 4 and score < np.quantile(earlier, 0.5)
        assert (t.state == TrialState.PRUNED) == expected_prune, k
        if t.state == TrialState.PRUNED:
            assert t.last_step == 0
    assert any(t.state == TrialState.PRUNED for t in trials) and any(
        t.state == TrialState.COMPLETE for t in trials[4:])


def test_zero_cost_pruner_hands_later_steps_to_its_successor() -> None:
    class Always(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return True

    def train(trial: optuna.trial.Trial, genotype: object) -> float:
        for step in range(3):
            trial.report(float(step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 1.0

    pruner = ZeroCostPruner("nb201", "params", n_warmup_trials=100, then=Always())
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(make_objective("nb201", train), n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED and study.trials[0].last_step == 1
    with pytest.raises(NasError, match="quantile"):
        ZeroCostPruner("nb201", "params", quantile=1.5)
