"""Feature specs: parsing and the saved form, the genotype one-hot, and proxy scores against the engine."""

from __future__ import annotations

import numpy as np
import pytest

from nas.data import fit_batch, load_batch
from nas.errors import PredictorError
from predictors.data import genotype_onehot
from predictors.features import FeatureSpec, saved_spec
from proxies import engine
from tests.predictors.conftest import SPACE


def test_specs_parse_round_trip_and_refuse_bad_input() -> None:
    zc = FeatureSpec.parse("zc:synflow, params", data="digits", batch=8, seed=2)
    assert zc == FeatureSpec("zc", proxies=("synflow", "params"), data="digits", batch=8, seed=2)
    assert str(zc) == "zc:synflow,params"
    assert FeatureSpec.from_json(zc.to_json()) == zc
    geno = FeatureSpec.parse("geno", space="nb201")
    assert FeatureSpec.from_json(geno.to_json()) == geno and str(geno) == "geno"
    # names as the registry spells them, under which the engine returns the scores
    assert FeatureSpec.parse("zc:SynFlow,PARAMS").proxies == ("synflow", "params")
    assert FeatureSpec.from_json({"kind": "zc", "proxies": ["NWOT"]}).proxies == ("nwot",)
    geno.check_space("nb201", where="m.nasp")
    FeatureSpec("geno", space="nb301").check_space("darts", where="m.nasp")
    zc.check_space("nb101", where="m.nasp")  # proxy scores read any network
    with pytest.raises(PredictorError, match=r"m\.nasp: its features are the genotype one-hot of nb201; it cannot"):
        geno.check_space("nb101", where="m.nasp")
    for text, match in (("zc:", "at least one proxy"), ("zc:no_such_proxy", "no_such_proxy"),
                        ("onehot", "geno or zc:"), ("geno:x", "geno or zc:")):
        with pytest.raises(PredictorError, match=match):
            FeatureSpec.parse(text, space="nb201")
    with pytest.raises(PredictorError, match="need the space"):
        FeatureSpec.parse("geno")
    with pytest.raises(PredictorError, match="at least 2 images"):
        FeatureSpec.parse("zc:synflow", batch=1)
    with pytest.raises(PredictorError, match=r"m\.nasp: provenance 'features'"):
        saved_spec(None, {"features": ["zc"]}, where="m.nasp")


def test_saved_spec_defaults_to_the_predictors_default_features() -> None:
    from predictors import PREDICTORS

    mlp, gnn, trees = (PREDICTORS.resolve(n) for n in ("encoding_mlp", "gennape", "zc_gbdt"))
    assert saved_spec(mlp, {}, where="m", space="nb201") == FeatureSpec("geno", space="nb201")
    assert saved_spec(gnn, {}, where="m", space="nb201") is None
    assert saved_spec(trees, {}, where="m", space="nb201") is None  # features only, but no default kind
    recorded = FeatureSpec("zc", proxies=("params",))
    assert saved_spec(mlp, {"features": recorded.to_json()}, where="m") == recorded


def test_signed_log_keeps_sign_and_nan() -> None:
    from predictors.features import signed_log

    np.testing.assert_allclose(signed_log([-np.e + 1, 0.0, 1e40]), [-1.0, 0.0, np.log1p(1e40)])
    assert np.isnan(signed_log([np.nan])[0])


def test_geno_features_are_the_genotype_one_hot() -> None:
    archs = [SPACE.format(SPACE.parse(i)) for i in (0, 5, 9)]
    graphs = [SPACE.to_graph(SPACE.parse(a)) for a in archs]
    spec = FeatureSpec("geno", space="nb201")
    np.testing.assert_array_equal(spec.compute(graphs, archs), genotype_onehot("nb201", archs))
    with pytest.raises(PredictorError, match="ONNX files do not have"):
        spec.compute(graphs)


def test_zc_features_are_the_engines_scores_signed_log(caplog) -> None:
    """Each graph rebuilt with ``to_torch(seed)`` and scored on the resized batch, as sign(x) log(1+|x|);
    a proxy that fails on a network (jacov where the output ignores the input) is NaN, and counted."""
    dead = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    graphs = [SPACE.to_graph(SPACE.parse(a)) for a in (3, 11, dead)]
    spec = FeatureSpec("zc", proxies=("synflow", "jacov", "params"), data="digits", batch=8, seed=1)
    done: list[int] = []
    got = spec.compute(graphs, progress=lambda k, total: done.append(k))
    assert done == [1, 2, 3] and got.shape == (3, 3)
    batch = load_batch("digits", 8, seed=1)
    for i, g in enumerate(graphs[:2]):
        model, resized = g.to_torch(seed=1), fit_batch(batch, g.inputs[0].out_shapes[0])
        raw = engine.score(model, resized, ["synflow", "jacov", "params"])
        want = [np.sign(v) * np.log1p(abs(v)) for v in raw.values()]
        np.testing.assert_allclose(got[i], want, rtol=1e-12)
    assert np.isnan(got[2, 1]) and np.isfinite(got[2, [0, 2]]).all()
    assert "missing values (NaN) for jacov: 1 of 3 (1 raised an error)" in caplog.text



def test_zc_features_hand_workers_to_the_engine(monkeypatch) -> None:
    """``workers`` reaches :func:`proxies.engine.score_graphs` (whose pooled scores are tested against
    one process in tests/proxies), and its typed error comes back as a feature error."""
    graphs = [SPACE.to_graph(SPACE.parse(a)) for a in (3, 11)]
    spec = FeatureSpec("zc", proxies=("synflow",), data="digits", batch=8, seed=1)
    seen: list[int] = []
    real = engine.score_graphs

    def spy(*args, workers, **kwargs):
        seen.append(workers)
        return real(*args, workers=1, **kwargs)

    monkeypatch.setattr(engine, "score_graphs", spy)
    np.testing.assert_array_equal(spec.compute(graphs, workers=3), spec.compute(graphs))
    assert seen == [3, 1]
    monkeypatch.setattr(engine, "score_graphs", real)
    with pytest.raises(PredictorError, match="zc features: workers must be at least 1"):
        spec.compute(graphs, workers=0)


def test_zc_features_read_the_cifar10_test_images(data_dir, monkeypatch) -> None:
    """The default data, CIFAR-10, from ``data_dir`` or from ``NAS_DATA``: the engine's scores on the
    batch ``load_batch`` gives (real 32 x 32 colour images); no data is a DataError naming where it looked."""
    from nas.errors import DataError

    graphs = [SPACE.to_graph(SPACE.parse(a)) for a in (3, 11)]
    spec = FeatureSpec("zc", proxies=("synflow", "nwot"), batch=8, seed=2)
    assert spec.data == "cifar10"
    got = spec.compute(graphs, data_dir=data_dir)
    batch = load_batch("cifar10", 8, seed=2, data_dir=data_dir)
    assert batch.images.shape == (8, 3, 32, 32) and batch.images.std() > 0.1  # not a blank placeholder
    for i, g in enumerate(graphs):
        raw = engine.score(g.to_torch(seed=2), fit_batch(batch, g.inputs[0].out_shapes[0]), ["synflow", "nwot"])
        np.testing.assert_allclose(got[i], [np.sign(v) * np.log1p(abs(v)) for v in raw.values()], rtol=1e-12)
    monkeypatch.setenv("NAS_DATA", str(data_dir))
    np.testing.assert_array_equal(FeatureSpec("zc", proxies=("synflow", "nwot"), batch=8, seed=2).compute(graphs),
                                  got)
    monkeypatch.setenv("NAS_DATA", str(data_dir / "no-such-folder"))
    monkeypatch.setenv("HOME", str(data_dir / "no-such-home"))
    with pytest.raises(DataError, match="CIFAR-10 not found"):  # the same batch asked again: not a cached one
        FeatureSpec("zc", proxies=("synflow", "nwot"), batch=8, seed=2).compute(graphs)
