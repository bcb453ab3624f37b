"""`nas predictor train|eval`, `nas predict`, and a saved predictor inside `nas search`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from nas.cli import main
from predictors import load_predictor
from predictors.base import provenance

TINY_GENNAPE = ["--set", "members=1", "--set", "epochs=10", "--set", "pretrain_epochs=1", "--set", "hidden=8",
                "--set", "embed_dim=4", "--set", "clusters=2", "--set", "head_hidden=8", "--set", "layers=1"]


def run(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    path = tmp_path_factory.mktemp("cli") / "acc.nasp"
    assert main(["predictor", "train", "--n", "12", "--seed", "3", "-o", str(path), "--data-dir", str(data_dir),
                 "--json", *TINY_GENNAPE]) == 0
    return path


def test_train_records_provenance_and_overrides(trained: Path) -> None:
    info = provenance(trained)
    assert info["space"] == "nb201" and info["target"] == "cifar10_test_acc" and info["n"] == 12 and info["seed"] == 3
    model = load_predictor(trained)
    assert model.name == "gennape" and model.config.members == 1 and model.config.seed == 3  # type: ignore[attr-defined]


def test_eval_tests_on_unseen_architectures(trained: Path, data_dir, capsys) -> None:
    out = run(capsys, "predictor", "eval", str(trained), "--n-test", "20", "--json", "--data-dir", str(data_dir))
    assert out["n_test"] == 20 and out["excluded_training"] == 12
    assert -1 <= out["metrics"]["spearman"] <= 1 and 0 <= out["metrics"]["precision_at_5pct"] <= 1
    again = run(capsys, "predictor", "eval", str(trained), "--n-test", "20", "--json", "--data-dir", str(data_dir))
    assert again["metrics"] == out["metrics"]  # same seed, same test sample
    # another target of the same architectures: the training architectures still stay out
    other = run(capsys, "predictor", "eval", str(trained), "--target", "cifar100_test_acc", "--n-test", "5", "--json",
                "--data-dir", str(data_dir))
    assert other["excluded_training"] == 12 and other["n_test"] == 5


def test_predict_arch_and_onnx_file(trained: Path, tmp_path: Path, capsys) -> None:
    from search_spaces import space_from_spec
    from search_spaces.nb201 import NB201Space

    space = space_from_spec("nb201")
    assert isinstance(space, NB201Space)
    onnx.save(space.to_onnx(space.parse("1")), str(tmp_path / "a.onnx"))
    out = run(capsys, "predict", str(trained), str(tmp_path / "a.onnx"), "--space", "nb201", "--arch", "1", "--json")
    rows = out["predictions"]
    assert len(rows) == 2 and rows[1]["model"].startswith("|nor_conv_3x3~0|")
    assert rows[0]["mean"] == pytest.approx(rows[1]["mean"])  # the same network, from a file and from the space
    direct = load_predictor(trained).predict([space.to_graph(space.parse("1"))])[0][0]
    assert rows[1]["mean"] == pytest.approx(float(direct))
    assert main(["predict", str(trained)]) == 2  # nothing to predict: a clear error, exit 2
    assert "nothing to predict" in capsys.readouterr().err


def test_bad_override_and_unknown_predictor(tmp_path: Path, data_dir, capsys) -> None:
    assert main(["predictor", "train", "--n", "5", "-o", str(tmp_path / "x.nasp"), "--predictor", "nope",
                 "--data-dir", str(data_dir)]) == 2
    assert "valid:" in capsys.readouterr().err
    assert main(["predictor", "train", "--n", "5", "-o", str(tmp_path / "x.nasp"), "--set", "members",
                 "--data-dir", str(data_dir)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "x.nasp").exists()


def test_latency_predictor_in_search(tmp_path: Path, data_dir, capsys) -> None:
    lat = tmp_path / "fpga.nasp"
    out = run(capsys, "predictor", "train", "--target", "fpga", "--n", "40", "-o", str(lat), "--json",
              "--data-dir", str(data_dir), "--set", "bags=2")
    assert out["predictor"] == "kernel_latency" and out["target"] == "latency:fpga"
    ev = run(capsys, "predictor", "eval", str(lat), "--n-test", "30", "--json", "--data-dir", str(data_dir))
    assert {"within_10pct", "rmse", "spearman"} <= set(ev["metrics"])
    acc = tmp_path / "acc.nasp"
    run(capsys, "predictor", "train", "--n", "20", "-o", str(acc), "--json", "--predictor", "graph_gbdt",
        "--set", "n_estimators=10", "--set", "bags=2", "--data-dir", str(data_dir))
    result = run(capsys, "search", "--strategy", "random", "--budget", "4", "--objective", f"predictor:{acc}",
                 "--latency", f"predicted:{lat}", "--max-latency-ms", "1000", "--out", str(tmp_path / "run"), "--json")
    best = result["best"]
    assert set(best["costs"]) == {"predicted"} and best["costs"]["predicted"] > 0
    from search_spaces import space_from_spec

    space = space_from_spec("nb201")
    g = space.to_graph(space.parse(best["genotype"]))
    assert best["value"] == pytest.approx(float(load_predictor(acc).predict([g])[0][0]))
    assert best["costs"]["predicted"] == pytest.approx(float(load_predictor(lat).predict([g])[0][0]))
    lines = [json.loads(x) for x in (tmp_path / "run" / "candidates.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["value"]) for x in lines if x["status"] == "evaluated")
    # the accuracy predictor as a cost model would read accuracies as milliseconds: refused by name
    assert main(["search", "--strategy", "random", "--budget", "2", "--objective", "params", "--latency",
                 f"predicted:{acc}", "--max-latency-ms", "90", "--out", str(tmp_path / "run2")]) == 2
    assert "predicts cifar10_test_acc, not a latency" in capsys.readouterr().err


def test_train_on_measured_latency_in_passes(tmp_path: Path, data_dir, capsys, monkeypatch) -> None:
    """--target measured --passes 2 measures the sample twice, each pass in its own file, and fits."""
    from nas.hardware import MeasuredLatency
    from predictors.data import measured_cache_path

    calls: list[int] = []

    def fake_costs(self, graphs):  # type: ignore[no-untyped-def]
        calls.append(len(graphs))
        return [1.0 + 0.01 * g.flops / 1e6 + len(calls) for g in graphs]  # a later pass reads slower

    monkeypatch.setattr(MeasuredLatency, "costs", fake_costs)
    path = tmp_path / "lat.nasp"
    run(capsys, "predictor", "train", "--target", "measured", "--passes", "2", "--n", "10", "-o", str(path),
        "--workdir", str(tmp_path), "--data-dir", str(data_dir), "--json")
    first, second = (json.loads(measured_cache_path("nb201", tmp_path, measurement=k).read_text()) for k in (1, 2))
    assert set(first) == set(second) and len(first) == 10 and sum(calls) == 20
    assert all(second[a] > first[a] for a in first)
    assert provenance(path)["target"] == "measured"
    model = load_predictor(path)
    assert model.name == "runtime_latency" and model.label == "measured"  # type: ignore[attr-defined]


def test_finetune_carries_a_predictor_to_another_space(trained: Path, tmp_path: Path, data_dir, capsys) -> None:
    out = tmp_path / "nb101.nasp"
    info = run(capsys, "predictor", "finetune", str(trained), "--space", "nb101", "--n", "15", "--seed", "4",
               "--adapt-n", "10", "--epochs", "5", "-o", str(out), "--data-dir", str(data_dir), "--json")
    assert info["adapted_on"] == 25 and info["finetuned_from"]["space"] == "nb201"
    saved = provenance(out)
    assert (saved["space"], saved["target"], saved["n"], saved["seed"]) == ("nb101", "val_accuracy", 15, 4)
    before, after = load_predictor(trained), load_predictor(out)
    assert after._y_scale != before._y_scale  # type: ignore[attr-defined]  # the NB101 accuracies' own scale
    result = run(capsys, "predictor", "eval", str(out), "--n-test", "40", "--data-dir", str(data_dir), "--json")
    assert result["space"] == "nb101" and result["excluded_training"] == 15 and result["n_test"] == 40
    # back on the source space, the architectures it was first trained on stay out of the test
    from predictors.cli import _labelled_on
    from predictors.data import labelled

    source = labelled("nb201", "cifar10_test_acc", data_dir)
    first = {source.archs[i] for i in np.random.default_rng(3).permutation(len(source))[:12]}
    assert _labelled_on(saved, "nb201", str(data_dir)) == first == _labelled_on(provenance(trained), "nb201",
                                                                               str(data_dir))
    back = run(capsys, "predictor", "eval", str(out), "--space", "nb201", "--target", "cifar10_test_acc",
               "--n-test", "3", "--data-dir", str(data_dir), "--json")
    assert back["excluded_training"] == 12
    assert np.isfinite(result["metrics"]["spearman"])
    latency = tmp_path / "lat.nasp"
    assert main(["predictor", "train", "--target", "latency:pixel3", "--n", "20", "-o", str(latency),
                 "--data-dir", str(data_dir), "--json"]) == 0
    capsys.readouterr()
    assert main(["predictor", "finetune", str(latency), "--space", "nb101", "-o", str(tmp_path / "no.nasp"),
                 "--data-dir", str(data_dir)]) == 2
    assert "only gennape" in capsys.readouterr().err


def test_encoding_mlp_reads_the_genotype_one_hot(tmp_path: Path, data_dir, capsys) -> None:
    """``encoding_mlp`` trains, evaluates and predicts on the genotypes' one-hot, which the CLI computes;
    an ONNX file, which has no genotype, is refused."""
    from predictors.data import genotype_onehot
    from search_spaces import space_from_spec

    path = tmp_path / "mlp.nasp"
    run(capsys, "predictor", "train", "--predictor", "encoding_mlp", "--n", "40", "--seed", "1", "-o", str(path),
        "--set", "epochs=30", "--set", "bags=2", "--data-dir", str(data_dir), "--json")
    model = load_predictor(path)
    assert model.name == "encoding_mlp" and model._n_features == 30  # type: ignore[attr-defined]
    ev = run(capsys, "predictor", "eval", str(path), "--n-test", "25", "--json", "--data-dir", str(data_dir))
    assert ev["n_test"] == 25 and np.isfinite(ev["metrics"]["spearman"])
    space = space_from_spec("nb201")
    archs = [space.format(space.parse(a)) for a in ("1", "77")]
    out = run(capsys, "predict", str(path), "--space", "nb201", "--arch", "1", "--arch", "77", "--json")
    direct = model.predict([space.to_graph(space.parse(a)) for a in archs], features=genotype_onehot("nb201", archs))
    np.testing.assert_allclose([r["mean"] for r in out["predictions"]], direct[0])
    onnx.save(space.to_onnx(space.parse("1")), str(tmp_path / "a.onnx"))
    assert main(["predict", str(path), str(tmp_path / "a.onnx")]) == 2
    assert "give --space and --arch" in capsys.readouterr().err
    result = run(capsys, "search", "--strategy", "random", "--budget", "3", "--objective", f"predictor:{path}",
                 "--out", str(tmp_path / "run"), "--json")
    best = space.format(space.parse(result["best"]["genotype"]))
    want = model.predict([space.to_graph(space.parse(best))], features=genotype_onehot("nb201", [best]))[0][0]
    assert result["best"]["value"] == pytest.approx(float(want))
    nb101 = space_from_spec("nb101")
    other = nb101.format(nb101.sample(np.random.default_rng(0)))
    assert main(["predict", str(path), "--space", "nb101", "--arch", other]) == 2
    assert "genotype one-hot of nb201; it cannot read nb101" in capsys.readouterr().err
    assert main(["search", "--space", "nb101", "--strategy", "random", "--budget", "2", "--objective",
                 f"predictor:{path}", "--out", str(tmp_path / "run101")]) == 2
    assert "genotype one-hot of nb201; it cannot read nb101" in capsys.readouterr().err


def test_zc_features_from_the_cli_follow_the_predictor(tmp_path: Path, data_dir, capsys) -> None:
    """``--features zc:...`` fits on proxy scores computed by the engine; the archive records the spec,
    and predict (from the space or from an ONNX file of the same network, scored in worker processes)
    and search compute the same."""
    from predictors.features import FeatureSpec
    from search_spaces import space_from_spec

    path = tmp_path / "zc.nasp"
    zc = ["--features", "zc:synflow,params", "--proxy-data", "digits", "--proxy-batch", "8"]
    out = run(capsys, "predictor", "train", "--n", "12", "--seed", "2", "-o", str(path), "--data-dir", str(data_dir),
              "--json", *zc, *TINY_GENNAPE)
    spec = FeatureSpec.from_json(out["features"])
    assert spec == FeatureSpec("zc", proxies=("synflow", "params"), data="digits", batch=8, seed=2)
    assert provenance(path)["features"] == out["features"]
    space = space_from_spec("nb201")
    onnx.save(space.to_onnx(space.parse("1")), str(tmp_path / "a.onnx"))
    rows = run(capsys, "predict", str(path), str(tmp_path / "a.onnx"), "--space", "nb201", "--arch", "1",
               "--workers", "2", "--json")["predictions"]  # two processes score as this one does
    g = space.to_graph(space.parse("1"))
    direct = float(load_predictor(path).predict([g], features=spec.compute([g]))[0][0])
    assert rows[0]["mean"] == pytest.approx(direct) and rows[1]["mean"] == pytest.approx(direct)
    result = run(capsys, "search", "--strategy", "random", "--budget", "3", "--objective", f"predictor:{path}",
                 "--out", str(tmp_path / "run"), "--json")
    best = space.to_graph(space.parse(result["best"]["genotype"]))
    assert result["best"]["value"] == pytest.approx(
        float(load_predictor(path).predict([best], features=spec.compute([best]))[0][0]))
    tuned = tmp_path / "tuned.nasp"  # fine-tuning computes and records the same features
    run(capsys, "predictor", "finetune", str(path), "--space", "nb201", "--target", "cifar100_test_acc", "--n", "8",
        "--adapt-n", "4", "--epochs", "2", "-o", str(tuned), "--data-dir", str(data_dir), "--json")
    assert provenance(tuned)["features"] == out["features"]
    ev = run(capsys, "predictor", "eval", str(tuned), "--n-test", "6", "--json", "--data-dir", str(data_dir))
    assert ev["target"] == "cifar100_test_acc" and np.isfinite(ev["metrics"]["spearman"])
    assert main(["predictor", "train", "--predictor", "zc_gbdt", "--n", "12", "-o", str(tmp_path / "t.nasp"),
                 "--data-dir", str(data_dir)]) == 2
    assert "zc_gbdt reads features alone: give --features" in capsys.readouterr().err
    trees = run(capsys, "predictor", "train", "--predictor", "zc_gbdt", "--n", "12", "-o", str(tmp_path / "t.nasp"),
                "--set", "n_estimators=5", "--set", "bags=2", "--data-dir", str(data_dir), "--json", *zc)
    assert trees["predictor"] == "zc_gbdt" and trees["features"]["kind"] == "zc"


def test_latency_predictor_with_genotype_features_serves_search(tmp_path: Path, data_dir, capsys) -> None:
    """A latency predictor trained with ``--features geno`` is the cost model ``predicted:FILE``: each
    candidate's literal genotype one-hot is computed for it."""
    from predictors.data import genotype_onehot
    from search_spaces import space_from_spec

    lat = tmp_path / "fpga.nasp"
    out = run(capsys, "predictor", "train", "--target", "fpga", "--predictor", "gp_latency", "--features", "geno",
              "--n", "40", "-o", str(lat), "--set", "gp_iters=10", "--data-dir", str(data_dir), "--json")
    assert out["features"] == {"kind": "geno", "space": "nb201"}
    result = run(capsys, "search", "--strategy", "random", "--budget", "4", "--objective", "tabular",
                 "--latency", f"predicted:{lat}", "--max-latency-ms", "1000", "--out", str(tmp_path / "run"),
                 "--data-dir", str(data_dir), "--json")
    space = space_from_spec("nb201")
    arch = space.format(space.parse(result["best"]["genotype"]))
    want = load_predictor(lat).predict([space.to_graph(space.parse(arch))], features=genotype_onehot("nb201", [arch]))
    assert result["best"]["costs"]["predicted"] == pytest.approx(float(want[0][0]))
    from nas.errors import SearchError
    from nas.hardware import PredictedLatency

    nb101 = space_from_spec("nb101")
    other = nb101.sample(np.random.default_rng(0))
    with pytest.raises(SearchError, match=r"reads nb201 genotypes \(features geno\); this candidate is not one"):
        PredictedLatency(lat).cost(nb101.to_graph(other), other)


def test_latency_predictor_with_proxy_features_serves_search(tmp_path: Path, data_dir, capsys) -> None:
    """With ``--features zc:...`` the cost model ``predicted:FILE`` scores each candidate's network with
    the recorded proxies, batch and seed, as the predictor was fitted."""
    from predictors.features import FeatureSpec
    from search_spaces import space_from_spec

    lat = tmp_path / "fpga.nasp"
    out = run(capsys, "predictor", "train", "--target", "fpga", "--predictor", "gp_latency", "--features",
              "zc:params,synflow", "--proxy-data", "digits", "--proxy-batch", "8", "--n", "16", "-o", str(lat),
              "--set", "gp_iters=10", "--data-dir", str(data_dir), "--json")
    spec = FeatureSpec.from_json(out["features"])
    assert spec == FeatureSpec("zc", proxies=("params", "synflow"), data="digits", batch=8, seed=0)
    result = run(capsys, "search", "--strategy", "random", "--budget", "3", "--objective", "tabular",
                 "--latency", f"predicted:{lat}", "--max-latency-ms", "1000", "--out", str(tmp_path / "run"),
                 "--data-dir", str(data_dir), "--json")
    space = space_from_spec("nb201")
    g = space.to_graph(space.parse(result["best"]["genotype"]))
    want = load_predictor(lat).predict([g], features=spec.compute([g]))
    assert result["best"]["costs"]["predicted"] == pytest.approx(float(want[0][0]))


def test_options_are_checked(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "model.nasp", "--space", "nb201", "--arch", "1", "--workers", "0"])
    assert "--workers: must be at least 1; got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # fine-tuning takes accuracy targets: nothing is measured
        main(["predictor", "finetune", "model.nasp", "--space", "nb101", "-o", "x.nasp", "--passes", "3"])
    assert "unrecognized arguments: --passes 3" in capsys.readouterr().err
