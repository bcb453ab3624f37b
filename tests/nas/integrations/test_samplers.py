"""PredictorSampler: seeded, restartable from storage, no repeats, finds a known optimum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from nas.errors import NasError
from nas.integrations.optuna import PredictorSampler, create_sampler, make_objective, params_to_genotype
from nas.integrations.spaces import ArchitectureMapping
from nas.ir import ArchGraph
from nas.search.objectives import Evaluation

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Conv3Count:
    """A toy objective with a known optimum: the number of 3x3 convolutions of an NB201 cell (max 6)."""

    name = "conv3"

    def evaluate(self, genotype: tuple[str, ...], graph: ArchGraph) -> Evaluation:
        v = float(sum(op == "nor_conv_3x3" for op in genotype)) + 0.1 * sum(op == "nor_conv_1x1" for op in genotype)
        return Evaluation(v, {"conv3": v})


def _sampler(seed: int = 0) -> PredictorSampler:
    # a graph predictor here (the choice surrogates, the GP default and the forest, have their own tests below)
    return PredictorSampler("nb201", "text_ridge", seed=seed, n_startup_trials=6, refit_every=4, n_candidates=24)


def _params(study: optuna.Study) -> list[dict[str, object]]:
    return [t.params for t in sorted(study.trials, key=lambda t: t.number)]


def test_seeded_and_finds_the_known_optimum() -> None:
    objective = make_objective("nb201", _Conv3Count())
    runs = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize", sampler=_sampler(seed=3))
        study.optimize(objective, n_trials=20)
        runs.append(study)
    assert _params(runs[0]) == _params(runs[1])
    archs = [t.user_attrs["arch"] for t in runs[0].trials]
    assert len(set(archs)) == len(archs)  # candidates already in the study are never proposed again
    # at least 5 of 6 edges 3x3 convolutions: a uniform draw has that with probability 0.0016, 20 draws 3%
    assert runs[0].best_value >= 5.0
    other = optuna.create_study(direction="maximize", sampler=_sampler(seed=4))
    other.optimize(objective, n_trials=8)
    assert _params(other) != _params(runs[0])[:8]


def test_restart_from_storage_continues_as_an_uninterrupted_run(tmp_path: Path) -> None:
    objective = make_objective("nb201", _Conv3Count())
    url = f"sqlite:///{tmp_path / 'a.db'}"
    whole = optuna.create_study(storage=url, study_name="whole", direction="maximize", sampler=_sampler())
    whole.optimize(objective, n_trials=13)
    part = optuna.create_study(storage=url, study_name="part", direction="maximize", sampler=_sampler())
    part.optimize(objective, n_trials=9)
    resumed = optuna.load_study(storage=url, study_name="part", sampler=_sampler())  # a fresh process's sampler
    resumed.optimize(objective, n_trials=4)
    assert _params(resumed) == _params(whole)


def test_minimize_pretrained_and_errors() -> None:
    from predictors import PREDICTORS
    from search_spaces import space_from_spec

    space = space_from_spec("nb201")
    rng = np.random.default_rng(0)
    gs = [space.sample(rng) for _ in range(20)]
    target = np.array([-sum(op == "nor_conv_3x3" for op in g) for g in gs], float)
    zero_shot = PREDICTORS.resolve("text_ridge").fit([space.to_graph(g) for g in gs], target)
    # pretrained to predict minus the conv count: in a minimized study of minus the count it ranks from trial 0
    sampler = PredictorSampler("nb201", zero_shot, pretrained=True, refit_every=0, n_candidates=32, seed=0,
                               acquisition="ucb", kappa=0.0,  # greedy on the prediction
                               mutation_fraction=0.5, crossover_fraction=0.0)
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def negated(trial: optuna.trial.Trial, g: tuple[str, ...]) -> float:
        return -float(sum(op == "nor_conv_3x3" for op in g))

    study.optimize(make_objective("nb201", negated), n_trials=3)
    # the pretrained model already points at many 3x3 convs: >= 3 of 6 for each trial (a uniform draw: P = 0.1)
    assert max(float(t.values[0]) for t in study.trials) <= -3
    with pytest.raises(NasError, match="pretrained"):
        PredictorSampler("nb201", "graph_gbdt", pretrained=True)
    with pytest.raises(NasError, match="unknown sampler"):
        create_sampler("hyperband", "nb201")
    with pytest.raises(NasError, match="unknown acquisition"):
        PredictorSampler("nb201", acquisition="ei")
    with pytest.raises(NasError, match="sum <= 1"):
        PredictorSampler("nb201", mutation_fraction=0.6, crossover_fraction=0.6)


def test_extra_parameters_go_to_the_independent_sampler() -> None:
    study = optuna.create_study(direction="maximize", sampler=_sampler())

    def objective(trial: optuna.trial.Trial) -> float:
        from nas.integrations.optuna import suggest_architecture

        g = suggest_architecture(trial, "nb201")
        lr = trial.suggest_float("lr", 0.01, 0.1)
        return float(sum(op == "nor_conv_3x3" for op in g)) + lr

    study.optimize(objective, n_trials=8)
    assert all(0.01 <= t.params["lr"] <= 0.1 for t in study.trials)
    assert all(len(params_to_genotype("nb201", t.params)) == 6 for t in study.trials)


def _conv_count_cells(n: int, seed: int) -> tuple[ArchitectureMapping, list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """``n`` random NB201 cells (seeded), their one-hot rows and the toy additive target: the count of
    3x3 convolutions."""
    from nas.integrations.spaces import architecture_mapping

    mapping = architecture_mapping("nb201")
    rng = np.random.default_rng(seed)
    gs = [mapping.space.sample(rng) for _ in range(n)]
    return mapping, gs, mapping.onehot(gs), np.array([sum(op == "nor_conv_3x3" for op in g) for g in gs], float)


def test_choice_forest_and_copula_against_oracles() -> None:
    from scipy.stats import norm

    from nas.integrations.surrogates import ChoiceForest, gaussian_copula

    z = gaussian_copula(np.array([3.0, 1.0, 2.0, 2.0]))  # ranks 4, 1, 2.5, 2.5 of 4
    assert z == pytest.approx(norm.ppf(np.array([3.5, 0.5, 2.0, 2.0]) / 4))
    mapping, gs, x, y = _conv_count_cells(120, 0)
    assert x.shape == (120, 6 * 5) and np.array_equal(x.sum(axis=1), np.full(120, 6.0))
    for g, row in zip(gs, x, strict=True):  # one hot per edge, at the op's index
        assert [int(np.flatnonzero(row[5 * e: 5 * e + 5])[0]) for e in range(6)] == list(mapping.choice_indices(g))
    forest = ChoiceForest(seed=0).fit(x[:80], y[:80])
    mean, std = forest.predict(x[80:])
    # an additive target is hard for trees on little data (0.55 on 40 rows); a model that ignores x gives ~0
    assert np.corrcoef(mean, y[80:])[0, 1] > 0.5 and np.all(std >= 0)
    again = ChoiceForest(seed=0).fit(x[:80], y[:80]).predict(x[80:])
    assert np.array_equal(mean, again[0])  # seeded
    with pytest.raises(NasError, match="before fit"):
        ChoiceForest().predict(x)
    with pytest.raises(NasError, match="width"):
        forest.predict(x[:, :10])
    with pytest.raises(NasError, match="unknown predictor"):
        PredictorSampler("nb201", "no_such_model")


def test_thompson_draws_are_single_trees_and_crossover_recombines_parents() -> None:
    from nas.integrations.surrogates import ChoiceForest, crossover

    mapping, _, x, y = _conv_count_cells(60, 1)
    rng = np.random.default_rng(1)
    forest = ChoiceForest(seed=0, n_estimators=8).fit(x, y)
    trees = np.stack([t.predict(x) for t in forest._model.estimators_])  # (8, 60)
    draws = [forest.sample(x, np.random.default_rng(s)) for s in range(40)]
    # every draw is one whole tree's prediction for all rows (a coherent posterior sample), not a mix
    assert all(any(np.array_equal(d, t) for t in trees) for d in draws)
    assert len({d.tobytes() for d in draws}) > 1  # and the draws differ
    assert np.array_equal(draws[3], forest.sample(x, np.random.default_rng(3)))  # seeded by the caller's stream
    with pytest.raises(NasError, match="sample before fit"):
        ChoiceForest().sample(x, rng)

    sampler = PredictorSampler(mapping, seed=0)
    a = ("nor_conv_3x3",) * 6
    b = ("skip_connect",) * 6
    children = [crossover(mapping, np.random.default_rng(s), [a, b]) for s in range(200)]
    assert all(c is not None for c in children)
    # each edge comes from a parent, except at most one edge changed by the optional mutation
    foreign = [sum(op not in ("nor_conv_3x3", "skip_connect") for op in c) for c in children if c is not None]
    assert max(foreign) <= 1 and 0.3 < np.mean([f == 1 for f in foreign]) < 0.7
    mixed = [c for c in children if c is not None and "nor_conv_3x3" in c and "skip_connect" in c]
    assert len(mixed) > 150  # both parents contribute (all six edges from one parent: P = 2 / 64)
    cands = sampler._candidates(np.random.default_rng(0), [a, b], seen={mapping.space.format(a)})
    assert mapping.space.format(a) not in {mapping.space.format(g) for g in cands}


def test_choice_gp_against_a_plain_loop_gp() -> None:
    """The GP's fit, mean, std and joint draws reproduce the textbook formulas, written out entry by entry."""
    from nas.integrations.surrogates import ChoiceGP

    _, gs, x, y = _conv_count_cells(120, 2)
    gp = ChoiceGP().fit(x[:80], y[:80])
    mean, std = gp.predict(x[80:])
    # the additive toy target that trees learn slowly (forest: 0.55 in the test above) is easy for the GP
    assert np.corrcoef(mean, y[80:])[0, 1] > 0.95

    # the plain computation: Hamming distances by counting differing edges, the grid search by hand
    def k(a: tuple[str, ...], b: tuple[str, ...], ell: float) -> float:
        return float(np.exp(-sum(u != v for u, v in zip(a, b, strict=True)) / ell))

    train, test, n = gs[:80], gs[80:], 80
    r = y[:80] - y[:80].mean()
    best = None
    for ell in gp.lengthscales:
        corr = np.array([[k(a, b, ell) for b in train] for a in train])
        for eta in gp.noises:
            c = corr + eta * np.eye(n)
            s2 = float(r @ np.linalg.solve(c, r)) / n
            ll = -0.5 * n * np.log(s2) - 0.5 * np.linalg.slogdet(c)[1]
            if best is None or ll > best[0]:
                best = (ll, ell, eta, s2)
    assert best is not None
    _, ell, eta, s2 = best
    assert (gp.lengthscale, gp.noise) == (ell, eta) and gp.signal == pytest.approx(s2)
    c = np.array([[k(a, b, ell) for b in train] for a in train]) + eta * np.eye(n)
    cross = np.array([[k(a, b, ell) for b in test] for a in train])  # (n, m)
    want_mean = y[:80].mean() + cross.T @ np.linalg.solve(c, r)
    prior = np.array([[k(a, b, ell) for b in test] for a in test])
    want_cov = s2 * (prior - cross.T @ np.linalg.solve(c, cross))
    assert mean == pytest.approx(want_mean, abs=1e-8)
    assert std == pytest.approx(np.sqrt(np.maximum(np.diag(want_cov), 0.0)), abs=1e-6)
    # joint draws: seeded by the caller's stream, with the posterior's mean and covariance
    draws = np.stack([gp.sample(x[80:], np.random.default_rng(s)) for s in range(4000)])
    assert np.array_equal(draws[7], gp.sample(x[80:], np.random.default_rng(7)))
    assert draws.mean(axis=0) == pytest.approx(want_mean, abs=0.05)
    assert np.cov(draws.T) == pytest.approx(want_cov, abs=0.05)
    with pytest.raises(NasError, match="before fit"):
        ChoiceGP().sample(x, np.random.default_rng(0))
    with pytest.raises(NasError, match="width"):
        gp.predict(x[:, :10])
    with pytest.raises(NasError, match="positive"):
        ChoiceGP(noises=())


def test_gp_grid_draws_have_the_posterior_s_law() -> None:
    """``sample_grid`` (Kronecker prior draw, then Matheron's rule) against the posterior written out
    for every point of a small grid of three dimensions (3 x 2 x 4 choices)."""
    import itertools

    from nas.integrations.surrogates import ChoiceGP

    widths = (3, 2, 4)
    points = list(itertools.product(*(range(w) for w in widths)))  # C order, the first dimension slowest
    rows = np.zeros((len(points), sum(widths)))
    for i, p in enumerate(points):
        rows[i, [0 + p[0], 3 + p[1], 5 + p[2]]] = 1.0
    rng = np.random.default_rng(0)
    train = rng.choice(len(points), 9, replace=False)
    y = np.array([points[i][0] - 0.5 * points[i][2] for i in train], float) + 0.1 * rng.standard_normal(9)
    gp = ChoiceGP(lengthscales=(1.5,), noises=(0.05,)).fit(rows[train], y)

    def corr(a: int, b: int) -> float:  # the kernel by counting differing dimensions
        return float(np.exp(-sum(u != v for u, v in zip(points[a], points[b], strict=True)) / 1.5))

    k_all = np.array([[corr(a, b) for b in range(len(points))] for a in range(len(points))])
    c = k_all[np.ix_(train, train)] + 0.05 * np.eye(9)
    cross = k_all[:, train]
    want_mean = y.mean() + cross @ np.linalg.solve(c, y - y.mean())
    want_cov = gp.signal * (k_all - cross @ np.linalg.solve(c, cross.T))
    draws = np.stack([gp.sample_grid(widths, np.random.default_rng(s), chunk=5) for s in range(6000)])
    # seeded, and the chunks agree: to rounding, since BLAS may sum a product of another shape in another order
    np.testing.assert_allclose(draws[5], gp.sample_grid(widths, np.random.default_rng(5)), rtol=1e-10, atol=1e-12)
    assert draws.mean(axis=0) == pytest.approx(want_mean, abs=0.04)
    assert np.cov(draws.T) == pytest.approx(want_cov, abs=0.04)
    assert np.diag(want_cov).max() > 0.2  # the draws do vary: the check above is not of constants
    with pytest.raises(NasError, match="before fit"):
        ChoiceGP().sample_grid(widths, rng)
    with pytest.raises(NasError, match="add up"):
        gp.sample_grid((3, 2, 3), rng)
    bad = rows[train].copy()
    bad[0, 3:5] = 1.0  # two choices at once in the second dimension
    with pytest.raises(NasError, match=r"not one-hot in columns 3\.\.4"):
        ChoiceGP(lengthscales=(1.5,), noises=(0.05,)).fit(bad, y).sample_grid(widths, rng)


def test_small_spaces_rank_every_architecture_not_yet_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the GP and Thompson sampling, a space of at most ``max_grid`` combinations has every
    architecture not in the study as a candidate; otherwise (or with ``max_grid=0``, or with a
    surrogate that cannot draw over a grid) the generated ones."""
    from nas.integrations.spaces import architecture_mapping

    mapping = architecture_mapping("nb201")
    grid = mapping.grid()
    assert len(grid) == mapping.grid_size() == 5**6 and all(g is not None for g in grid)
    assert [list(mapping.choice_indices(g)) for g in (grid[0], grid[1], grid[5], grid[-1])] == [  # type: ignore[arg-type]
        [0] * 6, [0] * 5 + [1], [0] * 4 + [1, 0], [4] * 6]
    assert architecture_mapping("nb101").grid_size() > 50_000  # far too many: generated candidates there

    sizes: list[tuple[int, int]] = []
    real = PredictorSampler._choose

    def spy(self, candidates, acq, rng, seen):  # type: ignore[no-untyped-def]
        sizes.append((len(candidates), len(seen)))
        return real(self, candidates, acq, rng, seen)

    monkeypatch.setattr(PredictorSampler, "_choose", spy)
    objective = make_objective("nb201", _Conv3Count())
    for kwargs, whole in (({}, True), ({"max_grid": 0}, False), ({"predictor": "forest"}, False)):
        sizes.clear()
        study = optuna.create_study(direction="maximize", sampler=PredictorSampler(
            "nb201", seed=1, n_startup_trials=5, interleave=0, **kwargs))  # type: ignore[arg-type]
        study.optimize(objective, n_trials=9)
        assert [s for _, s in sizes] == [5, 6, 7, 8]  # the model's trials
        if whole:
            assert all(n == 5**6 - s for n, s in sizes)
        else:
            assert all(n <= 128 for n, _ in sizes)
    with pytest.raises(NasError, match="max_grid"):
        PredictorSampler("nb201", max_grid=-1)


def test_default_sampler_uses_the_gp() -> None:
    from nas.integrations.surrogates import ChoiceGP

    objective = make_objective("nb201", _Conv3Count())
    sampler = PredictorSampler("nb201", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=25)
    assert isinstance(sampler._model, ChoiceGP)
    assert study.best_value >= 5.0  # a uniform draw: P(>= 5 of 6 convs 3x3) = 0.0016
    # a fresh sampler on the same storage (a restart, another worker) continues as the original would have
    storage = optuna.storages.InMemoryStorage()
    part = optuna.create_study(storage=storage, study_name="part", direction="maximize",
                               sampler=PredictorSampler("nb201", seed=0))
    part.optimize(objective, n_trials=15)
    resumed = optuna.load_study(storage=storage, study_name="part", sampler=PredictorSampler("nb201", seed=0))
    resumed.optimize(objective, n_trials=10)
    assert _params(resumed) == _params(study)


def test_every_third_trial_after_start_up_takes_tpe_s_proposal(monkeypatch: pytest.MonkeyPatch) -> None:
    objective = make_objective("nb201", _Conv3Count())
    calls: list[tuple[int, dict[str, object] | None]] = []
    real = PredictorSampler._inner_proposal

    def spy(self, study, trial, search_space, seen):  # type: ignore[no-untyped-def]
        out = real(self, study, trial, search_space, seen)
        calls.append((trial.number, out))
        return out

    monkeypatch.setattr(PredictorSampler, "_inner_proposal", spy)
    study = optuna.create_study(direction="maximize", sampler=PredictorSampler("nb201", seed=0, n_startup_trials=5))
    study.optimize(objective, n_trials=20)
    assert [n for n, _ in calls] == [n for n in range(5, 20) if n % 3 == 2]
    taken = [(n, p) for n, p in calls if p is not None]
    assert taken  # TPE proposed new architectures, and those trials ran exactly them
    for n, params in taken:
        assert study.trials[n].params == params
    calls.clear()
    off = optuna.create_study(direction="maximize",
                              sampler=PredictorSampler("nb201", seed=0, n_startup_trials=5, interleave=0))
    off.optimize(objective, n_trials=12)
    assert calls == []
    with pytest.raises(NasError, match="interleave"):
        PredictorSampler("nb201", interleave=1)


def test_known_constraints_pick_the_best_accepted_candidate() -> None:
    """``feasible``: by hand, the choice is the best acquisition among the accepted candidates; in a study,
    every proposal of the model meets the constraint, and an always-true predicate changes nothing."""
    sampler = PredictorSampler("nb201", seed=0, feasible=lambda g: g[0] != "nor_conv_3x3")
    cands = [tuple([op] * 6) for op in ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect")]
    acq = np.array([9.0, 2.0, 5.0, 5.0])  # the best (index 0) is refused; 2 and 3 tie
    picks = {sampler._choose(cands, acq, np.random.default_rng(s), set()) for s in range(20)}
    assert picks == {cands[2], cands[3]}  # ties broken by the stream, never the refused one or the worse one
    sampler.feasible = lambda g: False  # nothing accepted: a fresh draw outside the study's architectures
    seen = {"|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"}
    fresh = sampler._choose(cands, acq, np.random.default_rng(0), seen)
    assert fresh not in cands and sampler.space.format(fresh) not in seen

    objective = make_objective("nb201", _Conv3Count())
    at_most_three = lambda g: sum(op == "nor_conv_3x3" for op in g) <= 3  # noqa: E731
    runs = {}
    for name, feasible in (("none", None), ("true", lambda g: True), ("three", at_most_three)):
        study = optuna.create_study(direction="maximize", sampler=PredictorSampler(
            "nb201", seed=2, n_startup_trials=5, interleave=0, feasible=feasible))
        study.optimize(objective, n_trials=25)
        runs[name] = study
    assert _params(runs["none"]) == _params(runs["true"])
    for name, study in runs.items():
        genotypes = [study.sampler.mapping.genotype(t.params) for t in study.trials]
        assert len(set(genotypes)) == len(genotypes), name
        model_picks = genotypes[5:]  # after the 5 start-up draws, every trial is the model's (interleave=0)
        if name == "three":
            assert all(at_most_three(g) for g in model_picks)
        else:  # the bound binds: unconstrained, the model goes past it
            assert not all(at_most_three(g) for g in model_picks)


def test_objective_constraints_reach_the_predictor_sampler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``objective.feasible`` answers as the constraints do; ``create_sampler("predictor", feasible=...)``
    hands it on; and ``nas search --sampler predictor --max-params`` proposes only architectures under the
    bound once the model takes over (maximizing params, the model would otherwise go past it). TPE's
    interleaved proposals are not filtered (see the sampler's ``feasible``)."""
    from nas.cli import main
    from nas.hardware import cost_model_from_spec

    objective = make_objective("nb201", "params", max_params=0.5)
    assert make_objective("nb201", "params").feasible is None
    params = cost_model_from_spec("params")
    rng = np.random.default_rng(0)
    genotypes = [objective.space.sample(rng) for _ in range(40)]
    answers = [objective.feasible(g) for g in genotypes]
    assert answers == [params.cost(objective.space.to_graph(g), g) <= 0.5 for g in genotypes]
    assert 0 < sum(answers) < len(answers)
    sampler = create_sampler("predictor", "nb201", feasible=objective.feasible)
    assert isinstance(sampler, PredictorSampler) and sampler.feasible is objective.feasible

    url = f"sqlite:///{tmp_path / 'study.db'}"
    values = {}
    for bound in (None, "0.5"):
        study = f"bound-{bound}"
        argv = ["search", "--space", "nb201", "--objective", "params", "--budget", "12", "--storage", url,
                "--study", study, "--sampler", "predictor", "--startup-trials", "4", "--json"]
        assert main([*argv, *(["--max-params", bound] if bound else [])]) == 0
        capsys.readouterr()
        trials = sorted(optuna.load_study(study_name=study, storage=url).trials, key=lambda t: t.number)
        # the model's trials: after the 4 start-up draws, except every third (TPE's, unfiltered: interleave=3)
        model_picks = [objective.mapping.genotype(t.params) for t in trials[4:] if t.number % 3 != 2]
        values[bound] = [params.cost(objective.space.to_graph(g), g) for g in model_picks]
    assert all(v <= 0.5 for v in values["0.5"])
    assert not all(v <= 0.5 for v in values[None])  # the bound binds


def test_grid_lists_each_valid_architecture_once() -> None:
    """``grid()`` on a toy codec with an invalid combination and a non-canonical one (a filler value that
    the genotype forgets): both are ``None``, each architecture is listed once at its own one-hot point,
    and the sampler's whole-grid candidates are exactly the listed architectures not yet seen, each with
    the grid draw at its own point."""
    from nas.errors import GenotypeError
    from nas.integrations.spaces import ArchitectureMapping, SpaceCodec
    from nas.integrations.surrogates import ChoiceGP
    from search_spaces.base import Dimension
    from search_spaces.nb201 import NB201Space

    class Toy(SpaceCodec):  # (a, b) -> an NB201 cell; with a = conv3x3, b is an inactive slot's filler
        def values(self, genotype):  # type: ignore[no-untyped-def]
            return genotype[0], genotype[1]

        def genotype(self, values):  # type: ignore[no-untyped-def]
            a, b = values
            if (a, b) == ("avg_pool_3x3", "nor_conv_1x1"):
                raise GenotypeError("no such cell")
            return (a, "skip_connect" if a == "nor_conv_3x3" else b, *["none"] * 4)

    space = NB201Space()
    dims = (Dimension("a", ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")), Dimension("b", ("skip_connect",
                                                                                          "nor_conv_1x1")))
    mapping = ArchitectureMapping(space, Toy(space), "categorical", "", dims, tuple(d.choices for d in dims))
    grid = mapping.grid()
    assert mapping.grid_size() == 6
    cell = lambda a, b: (a, b, *["none"] * 4)  # noqa: E731
    assert grid == [cell("nor_conv_3x3", "skip_connect"), None, cell("nor_conv_1x1", "skip_connect"),
                    cell("nor_conv_1x1", "nor_conv_1x1"), cell("avg_pool_3x3", "skip_connect"), None]
    valid = [g for g in grid if g is not None]
    onehot = mapping.onehot(valid)
    widths = (3, 2)
    points = [i for i, g in enumerate(grid) if g is not None]  # C order: row i is (i // 2, i % 2)
    assert [list(np.flatnonzero(r)) for r in onehot] == [[i // 2, 3 + i % 2] for i in points]

    sampler = PredictorSampler(mapping, seed=0)
    gp = ChoiceGP().fit(onehot[:2], np.array([1.0, 2.0]))
    seen = {space.format(valid[0])}
    candidates, values = sampler._whole_grid(gp, np.random.default_rng(3), seen, 1.0)  # type: ignore[misc]
    assert candidates == valid[1:]
    assert np.array_equal(values, gp.sample_grid(widths, np.random.default_rng(3))[points[1:]])


def test_choose_matches_the_plain_rescan_loop() -> None:
    """``_choose`` (one sort, then tied levels in turn) picks what rescanning for the best remaining
    candidate after each refusal picks, from the same random stream and leaving it in the same state;
    NaN acquisitions raise."""

    def plain(candidates, acq, rng, feasible):  # type: ignore[no-untyped-def]
        left = np.ones(len(candidates), dtype=bool)
        while left.any():
            best = np.flatnonzero(left & (acq == acq[left].max()))
            i = int(best[rng.integers(len(best))])
            if feasible is None or feasible(candidates[i]):
                return candidates[i]
            left[i] = False
        return None

    sampler = PredictorSampler("nb201", seed=0)
    space = sampler.space
    gen = np.random.default_rng(7)
    candidates = [space.sample(gen) for _ in range(300)]
    for trial in range(40):
        acq = gen.integers(0, 6 if trial % 2 else 300, size=len(candidates)).astype(float)  # many ties or few
        cut = gen.integers(0, 7)
        sampler.feasible = None if trial % 5 == 0 else (lambda g, c=cut: sum(op == "nor_conv_3x3" for op in g) >= c)
        ours, ref = np.random.default_rng(trial), np.random.default_rng(trial)
        expected = plain(candidates, acq, ref, sampler.feasible)
        if expected is None:
            continue  # nothing accepted: the fresh draw is tested above
        assert sampler._choose(candidates, acq, ours, set()) == expected
        assert ours.integers(1 << 30) == ref.integers(1 << 30)  # the stream is left where the loop leaves it
    acq = np.zeros(len(candidates))
    acq[3] = np.nan
    with pytest.raises(NasError, match="NaN"):
        sampler._choose(candidates, acq, np.random.default_rng(0), set())
