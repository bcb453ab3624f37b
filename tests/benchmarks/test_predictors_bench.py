"""Small pieces of benchmarks.predictors: method-name parsing and the curves plot's proxy line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.predictors import (
    DRIFT_KEY,
    Runner,
    _best_proxy_line,
    _curve,
    _drift_zoom_rows,
    _fit_latency,
    _order_drift,
    _plot,
    _plot_drift,
    _transfer,
    zs_directions,
)


def test_unknown_method_suffixes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"NAME\+geno"):
        _fit_latency("kernel_latency+magic", 0, [], [], np.zeros(0), np.zeros(0, int), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"any of \+zc, \+signed, \+adapt in that order"):
        _transfer("gennape+magic", 0, [], np.zeros(0), [])
    with pytest.raises(ValueError, match=r"NAME\+geno"):
        _curve(None, None, "encoding_mlp+magic", 0, np.zeros(0, int), np.zeros(0, int))  # type: ignore[arg-type]


def test_transfer_signed_fits_capacity_ridge_with_source_signs() -> None:
    """``+signed`` is ``capacity_ridge`` with ``signs="source"``; with ``+adapt`` it is then re-standardized
    on the test graphs."""
    from predictors import PREDICTORS
    from search_spaces import SPACES

    space = SPACES.resolve("nb201")
    graphs = [space.to_graph(space.parse(i)) for i in range(0, 15625, 1201)]  # 14 cells
    feats = np.log1p(np.array([[g.flops, len(g)] for g in graphs], dtype=float))
    y = np.log1p([g.params for g in graphs]) - 0.3 * feats[:, 1]
    train, test = slice(0, 9), slice(9, 14)
    got, _ = _transfer("capacity_ridge+zc+signed", 1, graphs[train], y[train], graphs[test], feats[train], feats[test])
    ref = PREDICTORS.resolve("capacity_ridge", seed=1, signs="source")
    ref.fit(graphs[train], y[train], features=feats[train])
    np.testing.assert_array_equal(got, ref.predict(graphs[test], features=feats[test])[0])
    free = PREDICTORS.resolve("capacity_ridge", seed=1).fit(graphs[train], y[train], features=feats[train])
    assert np.abs(got - free.predict(graphs[test], features=feats[test])[0]).max() > 1e-3  # a sign binds here
    got, _ = _transfer("capacity_ridge+zc+signed+adapt", 1, graphs[train], y[train], graphs[test], feats[train],
                       feats[test])
    ref.adapt(graphs[test], features=feats[test])
    np.testing.assert_array_equal(got, ref.predict(graphs[test], features=feats[test])[0])


def test_curve_geno_methods_read_the_literal_genotype_one_hot(tmp_path: Path) -> None:
    """``encoding_mlp+geno`` in the curves is the MLP fitted on the genotypes' one-hot features."""
    from types import SimpleNamespace

    from scipy.stats import spearmanr

    from predictors import PREDICTORS
    from predictors.data import genotype_onehot
    from search_spaces import SPACES

    space = SPACES.resolve("nb201")
    archs = [space.format(space.parse(i)) for i in range(0, 15625, 521)]  # 30 cells
    onehot = genotype_onehot("nb201", archs)
    y = onehot @ np.linspace(-1, 1, onehot.shape[1])
    lab = SimpleNamespace(archs=archs, y=y)
    runner = Runner(argparse.Namespace(data_dir=None, workdir=str(tmp_path), progress=False, seed=0))
    train, test = np.arange(10, 30), np.arange(10)
    row = _curve(runner, lab, "encoding_mlp+geno", 3, train, test)
    ref = PREDICTORS.resolve("encoding_mlp", seed=3).fit(runner.graphs("nb201", [archs[i] for i in train]), y[train],
                                                         features=onehot[train])
    mean, _ = ref.predict(runner.graphs("nb201", [archs[i] for i in test]), features=onehot[test])
    assert row["method"] == "encoding_mlp+geno" and row["n"] == 20
    assert row["spearman"] == pytest.approx(spearmanr(mean, y[test])[0])


def test_curves_plot_draws_the_cached_best_proxy(tmp_path: Path) -> None:
    runner = Runner(argparse.Namespace(data_dir=None, workdir=str(tmp_path), progress=False, seed=0))
    assert _best_proxy_line(runner) is None  # nothing cached yet
    folder = tmp_path / "results" / "curves_zc"
    folder.mkdir(parents=True)
    for seed, rho in enumerate((0.79, 0.81)):
        (folder / f"best_proxy-n100-s{seed}.json").write_text(
            json.dumps({"method": "best_proxy", "proxy": "nwot", "n": 100, "spearman": rho}))
    (folder / "zc_gbdt-n100-s0.json").write_text(json.dumps({"method": "zc_gbdt", "n": 100, "spearman": 0.9}))
    name, rho = _best_proxy_line(runner) or ("", 0.0)
    assert name == "nwot" and rho == pytest.approx(0.80)
    summary = {"curves": [{"method": "gennape", "n": n, "spearman": 0.8 + n / 1e4, "spearman_std": 0.01}
                          for n in (50, 100)]}
    _plot(summary, tmp_path / "curves.png", (name, rho))
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_zero_shot_directions_are_parsed_in_a_fixed_order_and_checked() -> None:
    assert zs_directions("nb201_to_nb101, nb101_to_nb201") == ("nb101_to_nb201", "nb201_to_nb101")
    with pytest.raises(ValueError, match="valid: nb101_to_nb201"):
        zs_directions("nb101_to_nb301")
    with pytest.raises(ValueError, match="unknown zero-shot directions"):
        zs_directions(" , ")


def test_measured_latency_seeds_split_the_measured_architectures(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Each seed fits on its own seeded ``n_train`` of the measured architectures and tests on the rest."""
    import benchmarks.predictors as bp

    runner = Runner(argparse.Namespace(data_dir=None, workdir=str(tmp_path), progress=False, seed=0))
    monkeypatch.setattr(runner, "graphs", lambda space, archs: list(archs))
    splits = {}

    def fake_fit(m, s, archs, graphs, y, train, test):  # type: ignore[no-untyped-def]
        splits[s] = (train, test)
        return y[test] * 1.05, 0.0  # 5% off: every prediction within +-10%

    monkeypatch.setattr(bp, "_fit_latency", fake_fit)
    archs = [f"a{i}" for i in range(30)]
    y = np.arange(1.0, 31.0)
    results = [bp._measured_run(runner, archs, y, "kernel_latency", s, 20) for s in range(3)]
    for s, res in enumerate(results):
        train, test = splits[s]
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(30)) and len(train) == 20
        assert res["n"] == 20 and res["n_test"] == 10 and res["within_10pct"] == 1.0
    assert not np.array_equal(splits[0][0], splits[1][0])  # the seeds split differently
    assert np.array_equal(splits[2][0], np.random.default_rng(2).permutation(30)[:20])  # seeded


def test_measured_passes_label_with_their_least_and_half_against_half_is_the_ceiling(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From cached passes: only architectures measured in every pass are used, each labelled with the
    least of its passes, and the first half of the passes is scored against the second half."""
    import benchmarks.predictors as bp
    from predictors.data import Labelled, measured_cache_path

    archs = tuple(f"a{i}" for i in range(70))
    args = argparse.Namespace(data_dir=None, workdir=str(tmp_path), progress=False, seed=0, n_test=10,
                              no_measured=False, measured_n=70, measured_rounds=3, measured_passes=3,
                              measure=False, measured_train=10)
    runner = Runner(args)
    monkeypatch.setattr(runner, "labelled", lambda space, target: Labelled(space, target, archs, np.zeros(70)))
    monkeypatch.setattr(runner, "graphs", lambda space, a: list(a))
    rng = np.random.default_rng(0)
    passes = 1.0 + rng.random((3, 70))
    passes[1, :35] = passes[0, :35] * 1.05  # pass 2 reads half the architectures 5% slower than pass 1
    passes[1, 35:] = passes[0, 35:] * 1.5  # and the other half 50% slower
    for k in range(3):
        table = dict(zip(archs, passes[k].tolist(), strict=True))
        if k == 2:
            del table["a3"]  # not measured in pass 3: left out
        measured_cache_path("nb201", tmp_path, measurement=k + 1).write_text(json.dumps(table))
    labels = {}

    def fake_fit(m, s, archs, graphs, y, train, test):  # type: ignore[no-untyped-def]
        labels[s] = dict(zip(archs, y, strict=True))
        return y[test], 0.0

    monkeypatch.setattr(bp, "_fit_latency", fake_fit)
    bp.run_latency(runner, [0], ["kernel_latency"], 10, devices=())
    expected = {a: passes[:, i].min() for i, a in enumerate(archs) if a != "a3"}
    assert labels[0] == pytest.approx(expected)
    rows = {c["method"]: c for c in runner.all_cached("latency")}
    assert rows["kernel_latency"]["device"] == "measured-p3" and rows["kernel_latency"]["n_test"] == 59
    ceiling = rows["ceiling_passes_1v1"]
    assert ceiling["device"] == "measured-p3" and ceiling["n_test"] == 69
    assert ceiling["within_10pct"] == pytest.approx(34 / 69)  # a3 (5% off) is out; a0-a2, a4-a34 are within
    assert "ceiling_passes_2v2" not in rows  # 3 passes: one against one only


def test_zc_transfer_features_are_the_proxy_scores_cached_by_architecture(
        tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.predictors as bp
    from nas.data import load_batch
    from proxies.engine import score
    from search_spaces.nb201 import NB201Space

    runner = Runner(argparse.Namespace(data_dir=str(data_dir), workdir=str(tmp_path), progress=False, seed=0,
                                       workers=1))
    space = NB201Space()
    archs = [space.format(space.sample(np.random.default_rng(k))) for k in range(3)]
    asked = [archs[0], archs[1], archs[0], archs[2]]  # a repeat gets its row again
    got = bp.zc_transfer_features(runner, "nb201", asked)
    assert got.shape == (4, len(bp.ZC_TRANSFER)) and np.array_equal(got[0], got[2])

    batch = load_batch("cifar10", 2, seed=0, data_dir=data_dir)
    for row, arch in zip(got, asked, strict=True):  # reference: each proxy on its own passes, on the IR
        ref = score(space.to_graph(space.parse(arch)).to_torch(seed=0), batch, list(bp.ZC_TRANSFER), shared=False)
        raw = np.array([ref[n] for n in bp.ZC_TRANSFER])
        np.testing.assert_allclose(row, np.sign(raw) * np.log1p(np.abs(raw)), rtol=1e-9)

    # the second time every score comes from the cache file: nothing is computed
    def fail(arch: str) -> list[float]:
        raise AssertionError(f"recomputed {arch}")

    monkeypatch.setattr(bp, "_zc_one", fail)
    np.testing.assert_array_equal(bp.zc_transfer_features(runner, "nb201", asked[::-1]), got[::-1])
    cached = json.loads((tmp_path / "proxies" / f"nb201-{','.join(bp.ZC_TRANSFER)}.json").read_text())
    assert sorted(cached) == sorted(archs)


def test_zc_transfer_features_from_worker_processes_equal_those_of_one_process(tmp_path: Path,
                                                                              data_dir: Path) -> None:
    """``--workers 2`` scores in a process pool (each worker loads its own batch): the rows must equal
    the single-process ones, in the order asked."""
    import benchmarks.predictors as bp
    from search_spaces.nb201 import NB201Space

    space = NB201Space()
    archs = [space.format(space.sample(np.random.default_rng(10 + k))) for k in range(3)]
    rows = {}
    for workers in (1, 2):
        runner = Runner(argparse.Namespace(data_dir=str(data_dir), workdir=str(tmp_path / f"w{workers}"),
                                           progress=False, seed=0, workers=workers))
        rows[workers] = bp.zc_transfer_features(runner, "nb201", archs)
    assert rows[1].shape == (3, len(bp.ZC_TRANSFER)) and np.isfinite(rows[1]).all()
    np.testing.assert_allclose(rows[2], rows[1], rtol=1e-9)
    # the transfer runs ask for both sides at once, and only for +zc methods
    assert bp._zc_pair(runner, "capacity_ridge+adapt", "nb201", archs, "nb201", archs[:1]) == (None, None)
    source, target = bp._zc_pair(runner, "capacity_ridge+zc+adapt", "nb201", archs, "nb201", archs[:1])
    np.testing.assert_array_equal(source, rows[2])
    np.testing.assert_array_equal(target, rows[2][:1])


def test_curve_zc_features_are_the_cli_feature_spec_and_proxy_zc_picks_the_best(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The curves' ``+zc`` features are what ``FeatureSpec.compute`` gives for each architecture's graph,
    cached with failures as None; ``proxy+zc`` reports the single proxy with the best rho on the test set."""

    from scipy.stats import spearmanr

    import benchmarks.predictors as bp
    from predictors.features import FeatureSpec
    from search_spaces import space_from_spec

    spec = {"kind": "zc", "proxies": ["synflow", "jacov", "params"], "data": "digits", "batch": 8, "seed": 0}
    monkeypatch.setattr(bp, "ZC_CURVES", spec)
    space = space_from_spec("nb201:c=4,n=1")
    dead = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    archs = [space.format(space.parse(i)) for i in (3, 400, 9000, 15000)] + [dead]
    runner = Runner(argparse.Namespace(data_dir=None, workdir=str(tmp_path), progress=False, seed=0, workers=1))
    got = bp.spec_features(runner, "nb201:c=4,n=1", archs, spec)
    want = FeatureSpec.from_json(spec).compute([space.to_graph(space.parse(a)) for a in archs])
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[4, 1])  # jacov fails on the cell whose output ignores its input
    cached = json.loads(next((tmp_path / "features").glob("*.json")).read_text())
    assert cached[dead][1] is None and sorted(cached) == sorted(archs)

    y = np.array([1.0, 3.0, 2.0, 5.0, 0.5])
    row = bp._best_engine_proxy(got, y, 7)
    rhos = {p: spearmanr(got[np.isfinite(got[:, j]), j], y[np.isfinite(got[:, j])])[0]
            for j, p in enumerate(spec["proxies"])}
    best = max(rhos, key=lambda p: rhos[p])
    assert row["method"] == "proxy+zc" and row["proxy"] == best and row["n"] == 7
    assert row["spearman"] == pytest.approx(rhos[best])
    assert row["n_scored"] == (4 if best == "jacov" else 5)


def test_best_proxy_of_the_naslib_sample_reads_each_column_on_its_scored_rows() -> None:
    """``best_proxy`` (curves_zc): the NASLib column with the best rho on the test rows, each column on the
    rows it scored, columns with 10 or fewer scores left out."""
    from types import SimpleNamespace

    from scipy.stats import spearmanr

    from benchmarks.predictors import _best_proxy
    from predictors.data import NASLIB_PROXIES

    rng = np.random.default_rng(0)
    y = rng.normal(size=40)
    feats = rng.normal(size=(40, len(NASLIB_PROXIES)))
    feats[:, 1] = y + 0.1 * rng.normal(size=40)  # the best column, with two rows missing
    feats[[3, 7], 1] = np.nan
    feats[:, 2] = y  # perfect, but scored on 10 test rows only: left out
    feats[10:, 2] = np.nan
    test = np.arange(20)
    row = _best_proxy(SimpleNamespace(y=y), feats, 5, test)
    ok = np.isfinite(feats[test, 1])
    assert row["proxy"] == NASLIB_PROXIES[1] and row["n_scored"] == 18 and row["n"] == 5 and row["n_test"] == 20
    assert row["spearman"] == pytest.approx(spearmanr(feats[test, 1][ok], y[test][ok])[0])


def test_curve_methods_are_checked_before_any_run() -> None:
    import benchmarks.predictors as bp

    assert bp.curve_method("gennape+zc") == ("gennape", "zc") and bp.curve_method("proxy+zc") == ("proxy", "zc")
    for bad, match in (("proxy+geno", "it is proxy\\+zc"), ("proxy", "it is proxy\\+zc"),
                       ("gennape+onehot", "unknown curve method"), ("no_such+zc", "unknown curve method")):
        with pytest.raises(ValueError, match=match):
            bp.curve_method(bad)
    with pytest.raises(SystemExit):
        bp.main(["--experiments", "curves", "--methods", "gennape,proxy+geno"])


def test_zero_shot_and_latency_methods_are_checked_before_any_run(capsys: pytest.CaptureFixture[str]) -> None:
    import benchmarks.predictors as bp

    assert bp.transfer_method("capacity_ridge+zc+adapt") == ("capacity_ridge", ["zc", "adapt"])
    assert bp.transfer_method("capacity_ridge+zc+signed+adapt") == ("capacity_ridge", ["zc", "signed", "adapt"])
    assert bp.transfer_method("capacity_ridge+signed") == ("capacity_ridge", ["signed"])
    assert bp.latency_method("gp_latency+geno") == ("gp_latency", "geno")
    for bad, match in (("gennape+adapt+zc", "unknown zero-shot method"), ("gennap", "unknown zero-shot method"),
                       ("capacity_ridge+zc+zc", "unknown zero-shot method"),
                       ("capacity_ridge+adapt+signed", "unknown zero-shot method"),
                       ("text_ridge+signed", "text_ridge has no sign-constrained fit"),
                       ("graph_gbdt+adapt", "graph_gbdt has no adapt")):
        with pytest.raises(ValueError, match=match):
            bp.transfer_method(bad)
    for bad in ("gp_latncy", "gp_latency+zc"):
        with pytest.raises(ValueError, match="unknown latency method"):
            bp.latency_method(bad)
    for argv, message in ((["--experiments", "zeroshot", "--zs-methods", "capacity_ridge,gennap"], "'gennap'"),
                          (["--experiments", "latency", "--latency-methods", "gp_latncy"], "'gp_latncy'")):
        with pytest.raises(SystemExit):
            bp.main(argv)
        assert message in capsys.readouterr().err


def test_feature_caches_of_two_npz_files_do_not_share_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``npz:PATH`` is made safe for a file name, which can map two paths to one name; a digest of the
    exact path keeps their caches apart."""
    import benchmarks.predictors as bp

    seen: list[Path] = []
    monkeypatch.setattr(bp, "_pooled", lambda r, path, archs, *rest: seen.append(path) or {a: [0.0] for a in archs})
    runner = Runner(argparse.Namespace(data_dir=None, workdir=str(tmp_path), progress=False, seed=0, workers=1))
    for data in ("npz:/d/a/b.npz", "npz:/d/a_b.npz", "npz:/d/a/b.npz"):
        bp.spec_features(runner, "nb201", ["x"], {"kind": "zc", "proxies": ["params"], "data": data, "batch": 8,
                                                  "seed": 0})
    assert seen[0] != seen[1] and seen[0] == seen[2] and all(p.parent == tmp_path / "features" for p in seen)


def test_results_of_another_split_are_neither_reused_nor_summarized(tmp_path: Path) -> None:
    """``--seed``, ``--n-test`` (and ``--latency-n``) choose the architectures but are not in the result
    keys: a run with other values writes its own files and reads only its own."""
    def runner(**kw: int) -> Runner:
        settings = {"seed": 0, "n_test": 1000, "latency_n": 500, **kw}
        return Runner(argparse.Namespace(data_dir=None, workdir=str(tmp_path), progress=False, workers=1, **settings))

    calls: list[str] = []

    def compute(tag: str) -> dict[str, str]:
        calls.append(tag)
        return {"method": tag}

    default, other = runner(), runner(n_test=300)
    assert default.result_path("curves", "m-n5", 0).name == "m-n5-s0.json"  # the defaults keep the old names
    assert other.result_path("curves", "m-n5", 0).name == "m-n5-n_test300-s0.json"
    assert other.result_path("curves_zc", "m-n5", 0).name == "m-n5-s0.json"  # curves_zc has no test size
    default.cached("curves", "m-n5", 0, compute, "default")
    other.cached("curves", "m-n5", 0, compute, "other")
    default.cached("curves", "m-n5", 0, compute, "again")
    assert calls == ["default", "other"]
    assert [c["method"] for c in default.all_cached("curves")] == ["default"]
    assert [c["method"] for c in other.all_cached("curves")] == ["other"]
    assert [c["method"] for c in runner(seed=4).all_cached("curves")] == []
    assert runner(latency_n=100).result_path("latency", "pixel3-m", 1).name == "pixel3-m-latency_n100-s1.json"


def test_distinct_rho_leaves_out_test_cells_with_a_training_twin() -> None:
    from scipy.stats import spearmanr

    import benchmarks.predictors as bp
    from search_spaces import space_from_spec
    from search_spaces.nb201 import canonical_form

    space = space_from_spec("nb201")
    classes: dict[str, list[str]] = {}
    for i in range(300):
        a = space.format(space.parse(i))
        classes.setdefault(canonical_form(a), []).append(a)
    twin = next(c for c in classes.values() if len(c) >= 2)  # two cells that compute the same function
    others = [c[0] for c in classes.values() if c is not twin]
    test = [twin[1], *others[:5]]
    pred, truth = np.array([5.0, 1.0, 2.0, 4.0, 3.0, 6.0]), np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    got = bp._distinct(pred, truth, test, [twin[0], others[10]])
    assert got["n_distinct"] == 5
    assert got["spearman_distinct"] == pytest.approx(spearmanr(pred[1:], truth[1:])[0])
    assert bp._distinct(pred, truth, test, others[10:12])["n_distinct"] == 6


def test_zeroshot_zc_results_are_kept_apart_by_their_proxy_set() -> None:
    import benchmarks.predictors as bp

    assert bp.zs_method_key("capacity_ridge+zc+adapt") == f"capacity_ridge+zc+adapt@{','.join(bp.ZC_TRANSFER)}"
    assert bp.zs_method_key("capacity_ridge+adapt") == "capacity_ridge+adapt"
    now = {"key": f"nb101_to_nb201-{bp.zs_method_key('capacity_ridge+zc')}", "method": "capacity_ridge+zc",
           "zc_proxies": list(bp.ZC_TRANSFER)}
    older = {"key": "nb101_to_nb201-capacity_ridge+zc", "method": "capacity_ridge+zc"}  # no record of its set
    other = {**now, "zc_proxies": ["synflow"]}
    plain = {"key": "nb201_500_to_nb101-gennape+ft50", "method": "gennape+ft50"}
    kept = bp.current_zeroshot([now, older, other, plain])
    assert [(c["key"], c["method"]) for c in kept] == [("nb101_to_nb201", "capacity_ridge+zc"),
                                                       ("nb201_500_to_nb101", "gennape+ft50")]


def test_order_drift_finds_periods_of_measurement_in_a_table(tmp_path: Path) -> None:
    """A table whose labels carry slow periods along its row order: the literal model's errors follow
    the order, and its neighbours' median brings the slow rows back. The same rows in another order (the
    same fit) show neither; rows sorted by cell show in the two checks of the order. The drift plot draws
    the cached rows."""
    from types import SimpleNamespace

    from predictors.data import Labelled, genotype_onehot
    from search_spaces import SPACES

    space = SPACES.resolve("nb201")
    rng = np.random.default_rng(0)
    archs = [space.format(space.parse(int(i))) for i in rng.permutation(15625)[:4000]]
    onehot = genotype_onehot("nb201", archs)
    latency = 2.0 + onehot @ rng.uniform(0.0, 3.0, onehot.shape[1])  # additive in the ops of the edges
    slow = np.repeat(rng.random(16) < 0.3, 250)  # measured in periods of 250 rows, some of them 20% slow
    y = latency * (1 + 0.2 * slow) * (1 + rng.normal(0.0, 0.01, 4000))

    def runner(order: np.ndarray) -> SimpleNamespace:
        lab = Labelled("nb201", "latency:dev", tuple(archs[i] for i in order), y[order])
        return SimpleNamespace(labelled=lambda space, target: lab)

    in_order = _order_drift("dev", runner(np.arange(4000)))  # type: ignore[arg-type]
    assert in_order["fit_within_10pct"] < 0.9  # the model of the cell cannot know the period
    assert in_order["error_lag1"] > 0.5
    for k in (3, 12):
        assert in_order[f"drift_within_10pct_k{k}"] > 0.95  # the neighbours bring the slow rows back
        shuffled = in_order[f"shuffled_within_10pct_k{k}"]  # unrelated rows do not (and add a little noise)
        assert in_order["fit_within_10pct"] - 0.1 < shuffled < in_order["fit_within_10pct"] + 0.01
    assert abs(in_order["adjacent_shared_edges"] - 1.2) < 0.1 and abs(in_order["fit_lag1"]) < 0.1  # random order
    assert len(in_order["errors"]) == 4000 and in_order["neighbours"] == [3, 12]
    mixed = _order_drift("dev", runner(rng.permutation(4000)))  # type: ignore[arg-type]
    assert mixed["fit_within_10pct"] == pytest.approx(in_order["fit_within_10pct"])  # the same fit
    assert abs(mixed["error_lag1"]) < 0.1 and mixed["drift_within_10pct_k12"] < mixed["fit_within_10pct"] + 0.01
    by_cell = _order_drift("dev", runner(np.argsort(archs)))  # type: ignore[arg-type]
    assert by_cell["adjacent_shared_edges"] > 3 and by_cell["fit_lag1"] > 0.5  # the checks see an order by cell
    png = tmp_path / "drift.png"
    assert not _plot_drift([{"method": "ceiling_literal"}], png) and not png.exists()
    cached = [{**in_order, "key": f"dev-{DRIFT_KEY}"}, {**mixed, "device": "mixed", "key": f"mixed-{DRIFT_KEY}"}]
    assert not _plot_drift([in_order], png) and not png.exists()  # a row without this code's cache key
    assert _plot_drift(cached, png) and png.stat().st_size > 0


def test_drift_zoom_rows_stay_in_the_table() -> None:
    assert _drift_zoom_rows(15625) == range(5000, 5260)
    assert _drift_zoom_rows(5260) == range(5000, 5260)
    assert _drift_zoom_rows(5259) == range(4999, 5259)  # a shorter table: its last 260 rows
    assert _drift_zoom_rows(4000) == range(3740, 4000)
    assert _drift_zoom_rows(100) == range(0, 100)


def test_summary_keeps_drift_rows_apart_and_only_those_of_the_current_windows(tmp_path: Path) -> None:
    """``--summary-only`` on a workdir with a predictor row, a drift row of this code and one of an older
    cache (other windows): the latency table holds the predictor only, ``latency_drift`` the current row."""
    from benchmarks.predictors import main

    folder = tmp_path / "results" / "latency"
    folder.mkdir(parents=True)
    split = {"seed": 0, "n_test": 1000, "latency_n": 500}
    errors = list(np.random.default_rng(0).normal(0.0, 0.05, 300))
    drift = {"method": "drift_literal", "device": "dev", "fit_within_10pct": 0.9, "error_lag1": 0.4,
             "drift_within_10pct_k3": 0.99, "shuffled_within_10pct_k3": 0.88, "drift_within_10pct_k12": 0.97,
             "shuffled_within_10pct_k12": 0.89, "adjacent_shared_edges": 1.2, "fit_lag1": 0.0, "neighbours": [3, 12],
             "errors": errors, "key": f"dev-{DRIFT_KEY}", "seed": 0, "split": split, "seconds": 1.0}
    old = {"method": "drift_literal", "device": "dev", "fit_within_10pct": 0.5, "residual_lag1": 0.1,
           "neighbours": 12, "residuals": errors, "key": "dev-drift", "seed": 0, "split": split, "seconds": 1.0}
    fitted = {"method": "kernel_latency", "device": "dev", "within_10pct": 0.8, "rmse": 1.0, "spearman": 0.9,
              "key": "dev-kernel_latency", "seed": 0, "split": split, "seconds": 1.0}
    for row in (drift, old, fitted):
        (folder / f"{row['key']}-s0.json").write_text(json.dumps(row))
    out = tmp_path / "bench.json"
    assert main(["--experiments", "latency", "--summary-only", "--workdir", str(tmp_path), "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["method"] for r in results["latency"]] == ["kernel_latency"]
    assert len(results["latency_drift"]) == 1
    assert results["latency_drift"][0]["seeds"] == 1 and results["latency_drift"][0]["fit_within_10pct"] == 0.9
    assert (tmp_path / "bench-drift.png").stat().st_size > 0
