"""make_objective: proxies, predictors, user functions, two objectives, constraints, dedupe, ask/tell."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas.errors import SearchError
from nas.integrations.optuna import architecture_params, enqueue_architecture, make_objective
from nas.ir import ArchGraph
from nas.search.objectives import Evaluation
from search_spaces import space_from_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_proxy_objective_stores_a_self_describing_trial() -> None:
    objective = make_objective("nb201", "params", max_params=1.0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=4)
    space = space_from_spec("nb201")
    for t in study.trials:
        g = space.parse(t.user_attrs["arch"])
        graph = space.to_graph(g)
        assert t.value == pytest.approx(t.user_attrs["scores"]["params"])
        assert t.user_attrs["fingerprint"] == graph.fingerprint()
        assert t.user_attrs["costs"]["params"] == pytest.approx(graph.params / 1e6)
        assert t.user_attrs["constraints"] == [pytest.approx(graph.params / 1e6 - 1.0)]
        assert objective.constraints_func(t) == t.user_attrs["constraints"]


def test_two_objectives_with_latency_and_constraints(data_dir: Path) -> None:
    objective = make_objective("nb201", "params", latency="table:pixel3", max_latency_ms=20.0, data_dir=data_dir)
    assert objective.directions == ["maximize", "minimize"]
    sampler = optuna.samplers.NSGAIISampler(seed=0, population_size=4)
    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    study.optimize(objective, n_trials=6)
    from nas.hardware import TableLatency

    table = TableLatency("pixel3", data_dir)
    space = space_from_spec("nb201")
    for t in study.trials:
        lat = table.cost(space.to_graph(space.parse(t.user_attrs["arch"])), space.parse(t.user_attrs["arch"]))
        assert t.values[1] == pytest.approx(lat)
        assert objective.constraints_func(t) == [pytest.approx(lat - 20.0)]
        assert list(t.constraints.values()) == [pytest.approx(lat - 20.0)]  # what the samplers read
    with pytest.raises(SearchError, match="latency"):
        make_objective("nb201", "params", max_latency_ms=5.0)


def test_ask_tell_and_dedupe_across_trials() -> None:
    objective = make_objective("nb201", "params")
    study = optuna.create_study(direction="maximize")
    g = space_from_spec("nb201").parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"
                                       "nor_conv_3x3~1|skip_connect~2|")
    enqueue_architecture(study, "nb201", g, skip_if_exists=False)
    enqueue_architecture(study, "nb201", g, skip_if_exists=False)
    first = study.ask()
    study.tell(first, objective(first))
    second = study.ask()
    study.tell(second, objective(second))
    a, b = study.trials
    assert a.user_attrs["arch"] == b.user_attrs["arch"]
    assert "cached_from" not in a.user_attrs and b.user_attrs["cached_from"] == a.number
    assert a.value == b.value
    # without dedupe the second copy is evaluated again
    plain = make_objective("nb201", "params", dedupe=False)
    study.enqueue_trial(architecture_params("nb201", g), skip_if_exists=False)
    third = study.ask()
    study.tell(third, plain(third))
    assert "cached_from" not in study.trials[2].user_attrs


def test_user_training_function_and_predictor() -> None:
    seen = []

    def train(trial: optuna.trial.Trial, genotype: object) -> float:
        seen.append(genotype)
        for step in range(3):
            trial.report(float(step), step)
        return 1.0 + len(seen)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(make_objective("nb201", train), n_trials=3)
    assert [t.value for t in study.trials] == [2.0, 3.0, 4.0]
    assert [t.user_attrs["arch"] for t in study.trials] == [space_from_spec("nb201").format(g) for g in seen]
    assert all(len(t.intermediate_values) == 3 for t in study.trials)

    from predictors import PREDICTORS

    space = space_from_spec("nb201")
    rng = np.random.default_rng(0)
    gs = [space.sample(rng) for _ in range(12)]
    graphs = [space.to_graph(g) for g in gs]
    predictor = PREDICTORS.resolve("text_ridge").fit(graphs, np.array([g.count("nor_conv_3x3") for g in gs], float))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=2))
    study.optimize(make_objective("nb201", predictor), n_trials=3)
    for t in study.trials:
        mean, std = predictor.predict([space.to_graph(space.parse(t.user_attrs["arch"]))])
        assert t.value == pytest.approx(float(mean[0]))
        assert t.user_attrs["scores"]["std"] == pytest.approx(float(std[0]))


class _Failing:
    name = "failing"

    def evaluate(self, genotype: object, graph: ArchGraph) -> Evaluation:
        return Evaluation(None, {}, "the proxy blew up")


def test_a_failed_evaluation_fails_the_trial_not_the_study() -> None:
    study = optuna.create_study(direction="maximize")
    study.optimize(make_objective("nb201", _Failing()), n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert study.trials[0].user_attrs["error"] == "the proxy blew up"


def test_invalid_nb101_values_prune_the_trial() -> None:
    study = optuna.create_study(direction="maximize")
    mapping_params = architecture_params("nb101", space_from_spec("nb101").sample(np.random.default_rng(0)))
    study.enqueue_trial({k: (0 if k.startswith("edge_") else v) for k, v in mapping_params.items()})
    study.optimize(make_objective("nb101", "params"), n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.PRUNED and "no architecture" in t.user_attrs["invalid"]


def test_early_reject_prunes_before_scoring() -> None:
    calls = []

    def score(trial: optuna.trial.Trial, genotype: object) -> float:
        calls.append(genotype)
        return 0.0

    objective = make_objective("nb201", score, max_params=0.3, early_reject=True)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=8)
    for t in study.trials:
        over = t.user_attrs["costs"]["params"] > 0.3
        assert (t.state == TrialState.PRUNED) == over
        assert ("rejected" in t.user_attrs) == over
    assert len(calls) == sum(t.state == TrialState.COMPLETE for t in study.trials)


def test_ensemble_reference_is_shared_through_the_study() -> None:
    objective = make_objective("nb201:c=4,n=1", "ensemble", batch=8, reference=4)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=2)
    stored = study.user_attrs["nas:ensemble_reference"]
    assert len(stored) == 4 and all(isinstance(s, dict) for s in stored)
    other = make_objective("nb201:c=4,n=1", "ensemble", batch=8, reference=4)
    other.prepare(study)
    assert other.score.reference_scores == stored  # type: ignore[union-attr]
    assert all(math.isfinite(float(t.values[0])) for t in study.trials if t.state == TrialState.COMPLETE)


def test_unknown_score_is_a_clear_error() -> None:
    with pytest.raises(SearchError, match="unknown objective"):
        make_objective("nb201", "no_such_proxy")
    with pytest.raises(SearchError, match="a score is"):
        make_objective("nb201", 42)
