"""Search strategies, Pareto utilities, cost models, objectives and the resumable loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nas.errors import ConstraintError, SearchError
from nas.hardware import Constraint, cost_model_from_spec
from nas.search import STRATEGIES, SearchConfig, run_search
from nas.search.pareto import crowding_distance, dominates, hypervolume_2d, non_dominated_sort
from search_spaces import space_from_spec
from search_spaces.nb201 import NB201Space, parse_arch

SMALL = "nb201:c=8,n=1"


def conv_count(genotype) -> float:
    """A cheap, deterministic stand-in objective: 3x3 convs count 2, 1x1 convs 1."""
    return float(sum({"nor_conv_3x3": 2, "nor_conv_1x1": 1}.get(op, 0) for op in parse_arch(genotype)))


def drive(strategy, n: int, objective=conv_count) -> list:
    seen = []
    for _ in range(n):
        g = strategy.ask()
        strategy.tell(g, objective(g))
        seen.append(g)
    return seen


@pytest.mark.parametrize("name", ["random", "evolution", "local", "bo"])
def test_single_objective_strategies_are_seeded_and_resumable(name) -> None:
    space = NB201Space()
    a = STRATEGIES.resolve(name, space=space, seed=4)
    first = drive(a, 25)
    state = json.loads(json.dumps(a.state_dict()))  # through JSON, as the run folder stores it
    rest = drive(a, 25)
    b = STRATEGIES.resolve(name, space=space, seed=4)
    assert drive(b, 25) == first
    c = STRATEGIES.resolve(name, space=space, seed=99)
    c.load_state_dict(state)
    assert drive(c, 25) == rest


@pytest.mark.parametrize("name", ["evolution", "local", "bo"])
def test_guided_strategies_beat_random_on_a_simple_objective(name) -> None:
    space = NB201Space()
    best = {k: [] for k in ("random", name)}
    for seed in range(5):
        for k in best:
            seen = drive(STRATEGIES.resolve(k, space=space, seed=seed), 150)
            best[k].append(max(conv_count(g) for g in seen))
    assert np.mean(best[name]) > np.mean(best["random"])
    assert max(best[name]) == 12.0  # all six edges 3x3: the optimum


def test_bo_never_proposes_a_rejected_or_evaluated_genotype_again_and_learns_only_values() -> None:
    space = NB201Space()
    bo = STRATEGIES.resolve("bo", space=space, seed=1, n_startup_trials=5, n_candidates=32)
    asked: list[str] = []
    for i in range(40):
        g = bo.ask()
        asked.append(space.format(g))
        bo.tell(g, None if i % 3 == 0 else conv_count(g))  # every third one "over the bound"
    assert len(set(asked)) == len(asked)
    assert bo.told == sum(1 for i in range(40) if i % 3)
    # the model fitted inside is fitted on the told values only: rejected trials are pruned ones
    states = [t.state.name for t in bo._study.trials]
    assert states.count("PRUNED") == 14 and states.count("COMPLETE") == 26
    with pytest.raises(SearchError, match="unknown surrogate"):
        STRATEGIES.resolve("bo", space=space, surrogate="nope")
    with pytest.raises(SearchError, match="one objective"):
        g = bo.ask()
        bo.tell(g, (1.0, 2.0))


def test_evolution_ages_out_the_oldest_and_tells_must_match() -> None:
    space = NB201Space()
    evo = STRATEGIES.resolve("evolution", space=space, seed=0, population_size=3, sample_size=2)
    drive(evo, 3)
    oldest = evo.population[0][0]
    g = evo.ask()
    evo.tell(g, -1.0)  # worse than all: still joins, and the oldest leaves
    assert len(evo.population) == 3 and evo.population[-1][0] == g and all(m[0] != oldest for m in evo.population)
    with pytest.raises(SearchError, match="last ask"):
        evo.tell(g, 1.0)
    with pytest.raises(SearchError, match="sample_size"):
        STRATEGIES.resolve("evolution", space=space, population_size=2, sample_size=3)


def test_nsga2_keeps_the_front_and_is_resumable() -> None:
    space = NB201Space()

    def two(g):  # maximize convs, and minimize them: a pure trade-off
        c = conv_count(g)
        return (c, -c + 0.1 * parse_arch(g).count("skip_connect"))

    nsga = STRATEGIES.resolve("nsga2", space=space, seed=1, population_size=8)
    drive(nsga, 40, two)
    pts = np.array([v for _, v in nsga.population])
    assert len(nsga.population) == 8
    front = non_dominated_sort(pts)[0]
    assert len(nsga.pareto_front()) == len(front)
    state = json.loads(json.dumps(nsga.state_dict()))
    again = STRATEGIES.resolve("nsga2", space=space, seed=7, population_size=8)
    again.load_state_dict(state)
    assert drive(again, 10, two) == drive(nsga, 10, two)
    with pytest.raises(SearchError, match="tuple"):
        g = nsga.ask()
        nsga.tell(g, 1.0)


def test_pareto_utilities_by_hand() -> None:
    pts = np.array([[1, 5], [2, 4], [3, 1], [1, 1], [2, 2], [0, 6]], float)
    assert non_dominated_sort(pts) == [[0, 1, 2, 5], [4], [3]]
    assert dominates([2, 2], [1, 1]) and not dominates([2, 1], [1, 2]) and not dominates([1, 1], [1, 1])
    d = crowding_distance(pts[[0, 1, 2, 5]])
    assert np.isinf(d[2]) and np.isinf(d[3])  # the extremes of each objective
    # between (0,6),(1,5),(2,4),(3,1): (1,5) has neighbours (0,6),(2,4): 2/3 + 2/5
    assert d[0] == pytest.approx(2 / 3 + 2 / 5)
    # area over reference (0, 0): 3*1 + 2*(4-1) + 1*(5-4) = 3 + 6 + 1, and (0,6) adds nothing at x=0
    assert hypervolume_2d(pts, [0, 0]) == pytest.approx(10.0)
    assert hypervolume_2d(pts, [5, 5]) == 0.0


def test_cost_models() -> None:
    space = NB201Space(c=8, n=1)
    g = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    graph = space.to_graph(g)
    assert cost_model_from_spec("params").cost(graph) == pytest.approx(graph.params / 1e6)
    assert cost_model_from_spec("flops").cost(graph) == pytest.approx(graph.flops / 1e6)
    measured = cost_model_from_spec("measured")
    ms = measured.cost(graph)
    assert 0 < ms < 1000 and measured.cost(graph) == ms  # cached by fingerprint
    ok, value = Constraint(cost_model_from_spec("params"), 0.001).check(graph)
    assert not ok and value == pytest.approx(graph.params / 1e6)
    with pytest.raises(Exception, match="valid names"):
        cost_model_from_spec("speed")
    with pytest.raises(SearchError, match="device"):
        cost_model_from_spec("table")


def test_table_latency(data_dir) -> None:
    from benchmarks.tabular import nb201_latency

    table = nb201_latency(data_dir)
    model = cost_model_from_spec("table:pixel3", data_dir)
    space = NB201Space()
    for i in (0, 1, 15624):
        g = space.parse(str(table["arch_str"][i]))
        assert model.cost(space.to_graph(g), g) == pytest.approx(float(table["pixel3"][i]))
    with pytest.raises(SearchError, match="pixel3"):
        cost_model_from_spec("table:pixel99", data_dir)


def test_feasibility_predicate_against_the_constraints(data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's predicate answers as checking every constraint on the graph does, builds a graph only
    for a model that reads it (not for the table), stops at the first failed constraint, and caches."""
    from nas.hardware import feasibility

    space = NB201Space()
    table, params = cost_model_from_spec("table:pixel3", data_dir), cost_model_from_spec("params")
    constraints = [Constraint(table, 10.6756), Constraint(params, 0.8)]
    rng = np.random.default_rng(0)
    genotypes = [space.sample(rng) for _ in range(60)]
    expected = [all(c.check(space.to_graph(g), g)[0] for c in constraints) for g in genotypes]
    assert 0 < sum(expected) < len(expected)
    builds: list[object] = []
    real = NB201Space.to_graph
    monkeypatch.setattr(NB201Space, "to_graph", lambda self, g: builds.append(g) or real(self, g))
    only_table = feasibility(space, constraints[:1])
    assert [only_table(g) for g in genotypes] == [table.cost(None, g) <= 10.6756 for g in genotypes]
    assert builds == []
    both = feasibility(space, constraints)
    assert [both(g) for g in genotypes] == expected
    assert len(builds) == sum(table.cost(None, g) <= 10.6756 for g in set(genotypes))
    n = len(builds)
    assert [both(g) for g in genotypes] == expected and len(builds) == n  # answered from the cache


def _config(**kw) -> SearchConfig:
    base = dict(space=SMALL, strategy="evolution", objective="params", budget=12, seed=3, data="synthetic", batch=8)
    base.update(kw)
    return SearchConfig(**base)


def test_search_writes_its_folder(tmp_path: Path) -> None:
    res = run_search(_config(), tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "candidates.jsonl").read_text().splitlines()]
    assert res.evaluated + res.failed == 12 == sum(r["status"] != "rejected" for r in lines)
    assert {"genotype", "fingerprint", "status", "value", "scores", "costs", "cached"} <= set(lines[0])
    for name in ("config.json", "best.onnx", "best.txt", "result.json", "state.json"):
        assert (tmp_path / "run" / name).is_file(), name
    best = max((r for r in lines if r["status"] == "evaluated"), key=lambda r: r["value"])
    assert (tmp_path / "run" / "best.txt").read_text().strip() == best["genotype"]
    # the params proxy is a pure function of the architecture: isomorphic repeats come from the cache
    by_fp: dict[str, float] = {}
    for r in lines:
        if r["status"] == "evaluated":
            assert by_fp.setdefault(r["fingerprint"], r["value"]) == r["value"]
    with pytest.raises(SearchError, match="resume"):
        run_search(_config(), tmp_path / "run", progress=False)


@pytest.mark.parametrize("strategy", ["evolution", "nsga2", "bo"])
def test_resume_after_a_crash_repeats_and_loses_nothing(tmp_path: Path, strategy: str) -> None:
    kw = dict(strategy=strategy, budget=14, max_params=0.03)
    if strategy == "nsga2":
        kw.update(latency="flops", strategy_kwargs={"population_size": 4})
    if strategy == "bo":
        kw.update(strategy_kwargs={"n_startup_trials": 4, "n_candidates": 16})
    whole = run_search(_config(**kw), tmp_path / "whole", progress=False)
    run_search(_config(**kw), tmp_path / "cut", progress=False, stop_after=7)
    # a crash between writing a line and saving the state: drop the last state update
    lines = (tmp_path / "cut" / "candidates.jsonl").read_text().splitlines()
    state = json.loads((tmp_path / "cut" / "state.json").read_text())
    assert state["counters"]["lines"] == len(lines) == 7
    resumed = run_search(None, tmp_path / "cut", resume=True, progress=False)
    a = (tmp_path / "whole" / "candidates.jsonl").read_text().splitlines()
    b = (tmp_path / "cut" / "candidates.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "cached")} for x in a]
    strip_b = [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "cached")} for x in b]
    assert strip == strip_b
    assert resumed.best == whole.best and resumed.evaluated == whole.evaluated
    assert any(json.loads(x)["status"] == "rejected" for x in a)  # the constraint was exercised


def test_the_loop_hands_its_constraints_to_bo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the predicate, the model's proposals meet the bound (only start-up draws are rejected);
    without it (set_feasible disabled), the model keeps proposing what the loop rejects."""
    from nas.search.bayesian import BayesianSearch

    kw = dict(strategy="bo", objective="params", budget=16, max_params=0.03,
              strategy_kwargs={"n_startup_trials": 4, "n_candidates": 16, "interleave": 0})

    def rejected_after_start_up(folder: Path) -> int:
        lines = [json.loads(x) for x in (folder / "candidates.jsonl").read_text().splitlines()]
        start = [i for i, r in enumerate(lines) if r["status"] == "evaluated"][3]  # the 4th evaluation
        return sum(r["status"] == "rejected" for r in lines[start + 1:])

    run_search(_config(**kw), tmp_path / "with", progress=False)
    assert rejected_after_start_up(tmp_path / "with") == 0
    monkeypatch.setattr(BayesianSearch, "set_feasible", lambda self, feasible: None)
    run_search(_config(**kw), tmp_path / "without", progress=False)
    assert rejected_after_start_up(tmp_path / "without") > 0


def test_resume_replays_lines_written_after_the_last_state(tmp_path: Path) -> None:
    whole = run_search(_config(budget=10), tmp_path / "whole", progress=False)
    saved: list[str] = []

    def keep_state(rec) -> None:
        if rec["n"] == 4:
            saved.append((tmp_path / "cut" / "state.json").read_text())

    run_search(_config(budget=10), tmp_path / "cut", progress=False, stop_after=7, on_record=keep_state)
    (tmp_path / "cut" / "state.json").write_text(saved[0])  # the state of line 4; lines 5 and 6 follow it
    with (tmp_path / "cut" / "candidates.jsonl").open("a") as f:
        f.write('{"n": 7, "genot')  # and half a line
    resumed = run_search(None, tmp_path / "cut", resume=True, progress=False)
    a = [json.loads(x)["genotype"] for x in (tmp_path / "whole" / "candidates.jsonl").read_text().splitlines()]
    b = [json.loads(x)["genotype"] for x in (tmp_path / "cut" / "candidates.jsonl").read_text().splitlines()]
    assert a == b and resumed.best == whole.best


def test_search_errors(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="budget"):
        _config(budget=0)
    with pytest.raises(SearchError, match=r"valid: .*evolution"):
        _config(strategy="anneal")
    with pytest.raises(SearchError, match="latency"):
        _config(max_latency_ms=3.0)
    with pytest.raises(SearchError, match="valid: ensemble"):
        run_search(_config(objective="accuracy"), tmp_path / "a", progress=False)
    with pytest.raises(ConstraintError, match=r"params <= 1e-06 M.* 30 consecutive tries"):
        run_search(_config(max_params=1e-6, max_tries=30), tmp_path / "b", progress=False)
    with pytest.raises(SearchError, match=r"config\.json"):
        run_search(None, tmp_path / "nothing", resume=True, progress=False)


def test_ensemble_objective_uses_a_stored_reference(tmp_path: Path) -> None:
    cfg = _config(objective="ensemble", budget=3, reference=4)
    res = run_search(cfg, tmp_path / "run", progress=False)
    ref = json.loads((tmp_path / "run" / "reference.json").read_text())["scores"]
    assert len(ref) == 4 and {"nwot", "synflow", "jacov", "lga", "flops"} <= set(ref[0])
    assert res.evaluated + res.failed == 3


def test_tabular_oracle_reads_only_what_it_evaluated(data_dir, tmp_path: Path) -> None:
    from nas.search.objectives import TabularObjective

    space = NB201Space()
    oracle = TabularObjective(space, data_dir=data_dir)
    g = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    with pytest.raises(SearchError, match="did not evaluate"):
        oracle.truth(g)
    ev = oracle.evaluate(g, space.to_graph(g))
    assert 90 < ev.value < 95 and 90 < oracle.truth(g) < 95
    res = run_search(_config(space="nb201", objective="tabular", data_dir=str(data_dir), budget=20),
                     tmp_path / "run", progress=False)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["best"]["cifar10_test_acc"] > 0 and res.best_value == result["best"]["value"]


def test_predictor_objective() -> None:
    from nas.search.objectives import PredictorObjective

    class ByParams:
        def predict(self, graphs):
            return np.array([g.params / 1e6 for g in graphs]), np.zeros(len(graphs))

    space = space_from_spec(SMALL)
    g = space.sample(np.random.default_rng(0))
    ev = PredictorObjective(ByParams()).evaluate(g, space.to_graph(g))
    assert ev.value == pytest.approx(space.to_graph(g).params / 1e6)
    with pytest.raises(SearchError, match="predict"):
        PredictorObjective(object())


def test_predictor_objective_on_the_genotype_one_hot_tells_isomorphic_genotypes_apart() -> None:
    """The IR drops what computes nothing, so two literal genotypes can share a fingerprint and still
    differ as one-hot inputs: the cache keys by both, fresh and after a resume."""
    from nas.search.objectives import Evaluation, PredictorObjective
    from predictors.features import FeatureSpec

    class ByOneHot:
        def predict(self, graphs, features):
            return features @ np.random.default_rng(0).normal(size=features.shape[1]), np.zeros(len(graphs))

    space = space_from_spec("nb201")
    a = space.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|")
    b = space.parse("|skip_connect~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|skip_connect~2|")
    ga, gb = space.to_graph(a), space.to_graph(b)
    assert ga.fingerprint() == gb.fingerprint()
    spec = FeatureSpec("geno", space="nb201")
    objective = PredictorObjective(ByOneHot(), features=spec, space=space)
    ea, eb = objective.evaluate(a, ga), objective.evaluate(b, gb)
    want = ByOneHot().predict([ga, gb], spec.compute([ga, gb], [space.format(a), space.format(b)]))[0]
    assert [ea.value, eb.value] == pytest.approx(want.tolist()) and ea.value != eb.value
    assert not eb.cached and objective.evaluate(b, gb).cached
    resumed = PredictorObjective(ByOneHot(), features=spec, space=space)
    resumed.remember(a, ga.fingerprint(), Evaluation(ea.value, ea.scores))
    assert resumed.evaluate(a, ga).cached and not resumed.evaluate(b, gb).cached


def test_measured_latency_times_a_batch_together_and_once_per_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.hardware as hardware

    space = NB201Space(c=4, n=1)
    small = space.to_graph(space.parse("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"))
    big = space.to_graph(space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|"
                                     "nor_conv_3x3~1|nor_conv_3x3~2|"))
    calls: list[int] = []
    real = hardware.measure_onnx_many

    def spy(models, *args):
        calls.append(len(models))
        return real(models, *args)

    monkeypatch.setattr(hardware, "measure_onnx_many", spy)
    model = hardware.MeasuredLatency(warmup=1, repeats=5, rounds=2, chunk=2)
    lo, hi, lo_again = model.costs([small, big, small])
    assert calls == [2]  # two distinct graphs, measured in one interleaved batch
    assert lo_again == lo and 0 < lo < hi  # six 3x3 convolutions cost more than three identities
    assert model.cost(big) == hi and calls == [2]  # cached by fingerprint
    with pytest.raises(SearchError, match="rounds >= 1"):
        hardware.MeasuredLatency(rounds=0)
