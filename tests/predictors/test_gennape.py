"""The GENNAPE-style predictor: its loss against plain loops, the membership-weighted heads, the variants."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import PredictorError
from predictors.encoders import GraphEncoder, collate, graph_data
from predictors.gennape import _LEGACY, RANK_LOSSES, GennapeConfig, GennapePredictor, _embed
from tests.predictors.conftest import FAST, reordered

TRAIN, TEST = slice(0, 16), slice(16, 24)


def fast(**kw: object) -> GennapePredictor:
    return GennapePredictor(**{**FAST["gennape"], **kw})


@pytest.mark.parametrize("bad", [{"conv": "gcn"}, {"rank_loss": "lambda"}, {"clusters": 0}, {"fuzziness": 1.0},
                                 {"hidden": 0}, {"finetune_epochs": -1}, {"members": 0}, {"temperature": 0.0},
                                 {"temperature": -0.1}, {"aug_p": 1.5}, {"jitter": -1.0}, {"lr": -1.0},
                                 {"pretrain_lr": float("nan")}, {"views": 0}, {"pretrain_batch": 1}])
def test_config_is_validated(bad: dict[str, object]) -> None:
    with pytest.raises(PredictorError):
        GennapeConfig(**bad)  # type: ignore[arg-type]
    GennapeConfig(views=0, pretrain_epochs=0)  # no pretraining, no views needed


def test_a_broken_encoder_is_an_error_not_zero_embeddings(graphs, targets) -> None:
    """Non-finite embeddings are not missing values to standardize away: predicting raises."""
    model = fast().fit(graphs[:16], targets[:16])
    with torch.no_grad():
        next(model._members[0].encoder.parameters()).fill_(float("nan"))
    with pytest.raises(PredictorError, match="non-finite embeddings for 8 of 8 graphs"):
        model.predict(graphs[16:])


def test_a_failed_refit_or_adapt_changes_nothing_half_way(graphs, targets) -> None:
    """A refit or fine-tuning that raises leaves a predictor that refuses to predict; an adapt that
    raises (the last member's encoder broken) leaves every member's statistics as they were."""
    model = fast(members=2).fit(graphs[:16], targets[:16])
    before = model.predict(graphs[16:])
    with torch.no_grad():
        next(model._members[1].encoder.parameters()).fill_(float("nan"))
    saved = [m.scaler for m in model._members], model._in_scaler
    with pytest.raises(PredictorError, match="non-finite embeddings"):
        model.adapt(graphs[8:])
    assert [m.scaler for m in model._members] == saved[0] and model._in_scaler is saved[1]
    with pytest.raises(PredictorError, match="non-finite embeddings"):
        model.finetune(graphs[:8], targets[:8], epochs=1)
    with pytest.raises(PredictorError, match="before fit"):
        model.predict(graphs[16:])
    model._fitted = True  # as it was, to try the refit
    with pytest.raises(PredictorError, match="non-finite embeddings"):
        model.fit(graphs[:16], targets[:16])
    with pytest.raises(PredictorError, match="before fit"):
        model.predict(graphs[16:])
    assert np.isfinite(before[0]).all()


def loss_loop(pred: np.ndarray, y: np.ndarray, u: np.ndarray, cfg: GennapeConfig) -> float:
    """The docstring's per-head loss, summed over heads, written with loops."""
    n, k = pred.shape
    total = 0.0
    for h in range(k):
        mse = sum(u[i, h] * (pred[i, h] - y[i]) ** 2 for i in range(n)) / sum(u[:, h])
        rank = 0.0
        if cfg.rank_loss == "listnet":
            p_true = np.exp(y) / np.exp(y).sum()
            logits = pred[:, h] + np.log(u[:, h])
            logp = logits - math.log(np.exp(logits).sum())
            rank = -float((p_true * logp).sum())
        elif cfg.rank_loss != "none":
            num = den = 0.0
            for i in range(n):
                for j in range(n):
                    if y[i] > y[j]:
                        d = pred[i, h] - pred[j, h]
                        ell = max(0.0, cfg.hinge_margin - d) if cfg.rank_loss == "hinge" else math.log1p(math.exp(-d))
                        num += u[i, h] * u[j, h] * ell
                        den += u[i, h] * u[j, h]
            rank = num / den
        total += mse + cfg.rank_weight * rank
    return total


@pytest.mark.parametrize("rank_loss", RANK_LOSSES)
def test_loss_matches_the_loop(rank_loss: str) -> None:
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=(7, 3)), rng.normal(size=7)
    u = rng.dirichlet(np.ones(3), size=7)
    p = GennapePredictor(rank_loss=rank_loss, rank_weight=0.7, clusters=3)
    got = p._loss(torch.tensor(pred), torch.tensor(y), torch.tensor(u))
    assert float(got) == pytest.approx(loss_loop(pred, y, u, p.config), rel=1e-9)


def test_prediction_is_the_membership_weighted_head_average(graphs, targets) -> None:
    p = fast(clusters=3, members=2).fit(graphs[TRAIN], targets[TRAIN])
    u = p.memberships(graphs[TEST])
    assert u.shape == (2, 8, 3)
    np.testing.assert_allclose(u.sum(axis=2), 1.0)
    mean, std = p.predict(graphs[TEST])
    # every member's heads by hand from the same inputs, then the law of total variance across members
    data = [graph_data(g) for g in graphs[TEST]]
    side = p._in_scaler.transform(p._side_inputs(graphs[TEST], None))
    mus, variances = [], []
    for k, member in enumerate(p._members):
        z = member.scaler.transform(_embed(member.encoder, data))
        assert member.heads is not None
        with torch.no_grad():
            heads = member.heads(torch.from_numpy(np.concatenate([z, side], axis=1)).float()).double().numpy()
        heads = heads * p._y_scale + p._y_mean
        mu = (u[k] * heads).sum(axis=1)
        mus.append(mu)
        variances.append((u[k] * (heads - mu[:, None]) ** 2).sum(axis=1))
    np.testing.assert_allclose(mean, np.mean(mus, axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, np.sqrt(np.mean(variances, axis=0) + np.var(mus, axis=0)), rtol=1e-5, atol=1e-9)
    assert (std > 0).all()
    assert not np.allclose(mus[0], mus[1]), "members are independent"
    one = fast(clusters=1).fit(graphs[TRAIN], targets[TRAIN])
    np.testing.assert_array_equal(one.predict(graphs[TEST])[1], 0.0)  # one member with one head has no spread


@pytest.mark.parametrize("rank_loss", RANK_LOSSES)
def test_every_rank_loss_fits(rank_loss: str, graphs, targets) -> None:
    mean, std = fast(rank_loss=rank_loss).fit(graphs[TRAIN], targets[TRAIN]).predict(graphs[TEST])
    assert np.isfinite(mean).all() and (std >= 0).all()


def test_pretrain_on_unlabelled_graphs_then_fit(graphs, targets) -> None:
    p = fast(pretrain_epochs=3).pretrain(graphs)
    assert [len(m) for m in p.pretrain_losses] == [3]
    before = [t.clone() for t in p._members[0].encoder.state_dict().values()]
    p.fit(graphs[TRAIN], targets[TRAIN])
    assert [len(m) for m in p.pretrain_losses] == [3]  # fit did not pretrain again
    for a, b in zip(before, p._members[0].encoder.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # and the frozen encoder is unchanged


def test_finetuned_gatv2_saves_and_loads(graphs, targets, tmp_path: Path) -> None:
    p = fast(conv="gatv2", finetune_epochs=2, members=2).fit(graphs[TRAIN], targets[TRAIN])
    assert all(m.tuned is not None for m in p._members)
    p.save(tmp_path / "g.zip")
    q = GennapePredictor.load(tmp_path / "g.zip")
    assert q.config == p.config
    for a, b in zip(p.predict(graphs[TEST]), q.predict(graphs[TEST]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_threads_are_restored(graphs, targets) -> None:
    old = torch.get_num_threads()
    fast(threads=1).fit(graphs[:6], targets[:6])
    assert torch.get_num_threads() == old


def test_encoder_ignores_node_order(graphs) -> None:
    g = graphs[5]
    shuffled = reordered(g, np.random.default_rng(0))
    assert [n.name for n in shuffled] != [n.name for n in g]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        enc = GraphEncoder(hidden=16, layers=3, embed_dim=8).eval()
    with torch.no_grad():
        a, b = enc(collate([graph_data(g)])), enc(collate([graph_data(shuffled)]))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_adapt_restandardizes_on_the_target_domain(graphs, targets, features) -> None:
    from predictors.encoders import global_features

    with pytest.raises(PredictorError, match="before fit"):
        fast().adapt(graphs)
    model = fast(finetune_epochs=2).fit(graphs[:16], targets[:16])
    before, _ = model.predict(graphs[16:])
    # adapting to the fitting graphs themselves gives the fitted statistics back: same predictions
    after, _ = model.adapt(graphs[:16]).predict(graphs[16:])
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-9)
    # adapting to other graphs standardizes their graph-level features with their own statistics
    model.adapt(graphs[8:])
    g = np.stack([global_features(x) for x in graphs[8:]])
    np.testing.assert_allclose(model._in_scaler.mean, g.mean(axis=0))
    assert not np.allclose(model.predict(graphs[16:])[0], before)
    with pytest.raises(PredictorError, match="at least 2"):
        model.adapt(graphs[:1])
    with_feats = fast().fit(graphs[:16], targets[:16], features=features[:16])
    with pytest.raises(PredictorError, match="features"):
        with_feats.adapt(graphs[16:])
    with_feats.adapt(graphs[16:], features=features[16:])


def test_adapt_aligns_a_fine_tuned_encoder_in_its_fitting_frame(graphs, targets, tmp_path: Path) -> None:
    """The heads read a fine-tuned encoder's embedding in the frozen encoder's fitting frame. After
    ``adapt``, the adapted graphs' fine-tuned embeddings reach the heads with the mean and spread that
    the fitting graphs' had; the alignment survives save and load, and a file without the fine-tuned
    statistics (written before they were kept) predicts as before but refuses to adapt."""
    from predictors.base import read_archive, write_archive

    model = fast(finetune_epochs=2, members=2).fit(graphs[:16], targets[:16])
    fitting = [graph_data(g) for g in graphs[:16]]
    other = [graph_data(g) for g in graphs[8:]]
    seen = [m.tuned_inputs(fitting) for m in model._members]  # what the heads were fitted on
    model.adapt(graphs[8:])
    for m, before in zip(model._members, seen, strict=True):
        assert m.tuned_frame is not m.scaler  # adapt replaced the frozen encoder's statistics only
        now = m.tuned_inputs(other)
        np.testing.assert_allclose(now.mean(axis=0), before.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(now.std(axis=0), before.std(axis=0), rtol=1e-5, atol=1e-7)
    path = tmp_path / "tuned.nasp"
    model.save(path)
    np.testing.assert_array_equal(GennapePredictor.load(path).predict(graphs[16:])[0], model.predict(graphs[16:])[0])
    fresh = fast(finetune_epochs=2, members=2).fit(graphs[:16], targets[:16])
    fresh.save(path)
    archive = read_archive(path)
    for name in list(archive.arrays):
        if "/tuned_" in name:
            del archive.arrays[name]
    write_archive(path, archive)
    old = GennapePredictor.load(path)
    np.testing.assert_array_equal(old.predict(graphs[16:])[0], fresh.predict(graphs[16:])[0])
    with pytest.raises(PredictorError, match="an older file"):
        old.adapt(graphs[8:])


def test_finetune_starts_from_the_fitted_heads_and_restandardizes_the_targets(graphs, targets) -> None:
    import dataclasses

    model = fast(finetune_epochs=2, members=2).fit(graphs[:16], targets[:16])
    before, _ = model.predict(graphs[16:])
    old_mean, old_scale = model._y_mean, model._y_scale
    # with a learning rate of 0 the heads keep their fitted weights exactly: only the targets' scale changes
    frozen = dataclasses.replace(model.config, lr=0.0)
    model.config = frozen
    new_y = 100.0 * targets[8:20] + 5.0
    after, _ = model.finetune(graphs[8:20], new_y).predict(graphs[16:])
    expect = (before - old_mean) / old_scale * new_y.std() + new_y.mean()
    np.testing.assert_allclose(after, expect, rtol=1e-6, atol=1e-6)


def test_finetune_moves_only_the_heads(graphs, targets, tmp_path: Path) -> None:
    from scipy.stats import spearmanr

    with pytest.raises(PredictorError, match="before fit"):
        fast().finetune(graphs[:8], targets[:8])
    model = fast(finetune_epochs=2, members=2, epochs=60).fit(graphs[:16], targets[:16])
    def encoders() -> list[torch.Tensor]:
        return [v.clone() for m in model._members for e in (m.encoder, m.tuned) if e is not None
                for v in e.state_dict().values()]

    frozen = encoders()
    centres = [m.centres.copy() for m in model._members]
    heads = [m.heads.w1.detach().clone() for m in model._members]
    in_mean = model._in_scaler.mean.copy()
    flipped = -targets[8:24]  # the new domain ranks the other way round
    model.finetune(graphs[8:24], flipped)
    mean, _ = model.predict(graphs[8:24])
    assert spearmanr(mean, flipped)[0] > 0.5
    for a, b in zip(encoders(), frozen, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for m, c, w in zip(model._members, centres, heads, strict=True):
        np.testing.assert_array_equal(m.centres, c)
        assert not torch.equal(m.heads.w1, w)
    np.testing.assert_array_equal(model._in_scaler.mean, in_mean)
    model.save(tmp_path / "t.zip")
    again = GennapePredictor.load(tmp_path / "t.zip")
    for a, b in zip(model.predict(graphs[:8]), again.predict(graphs[:8]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_finetune_checks_its_input(graphs, targets, features) -> None:
    model = fast().fit(graphs[:16], targets[:16], features=features[:16])
    with pytest.raises(PredictorError, match="features"):
        model.finetune(graphs[16:], targets[16:])
    with pytest.raises(PredictorError, match="epochs"):
        model.finetune(graphs[16:], targets[16:], features=features[16:], epochs=0)
    model.finetune(graphs[16:], targets[16:], features=features[16:], epochs=3)


# ---------------------------------------------------------------------- how the per-architecture features enter


def test_robust_feature_scaling_is_median_and_iqr(graphs, targets, features) -> None:
    from predictors.encoders import global_features

    f = features.copy()
    f[0, 0] = np.nan  # a proxy that failed on one architecture
    p = fast(feature_scaling="robust").fit(graphs[TRAIN], targets[TRAIN], features=f[TRAIN])
    g = np.stack([global_features(x) for x in graphs[TRAIN]])
    np.testing.assert_allclose(p._in_scaler.mean[:g.shape[1]], g.mean(axis=0))  # the graph-level ones: as before
    np.testing.assert_allclose(p._in_scaler.scale[:g.shape[1]], np.where(g.std(axis=0) > 1e-12, g.std(axis=0), 1.0))
    for j in range(f.shape[1]):
        col = f[TRAIN, j][~np.isnan(f[TRAIN, j])]
        q1, med, q3 = np.percentile(col, [25, 50, 75])
        want = (q3 - q1) / 1.349 if q3 > q1 else col.std()  # a column with IQR 0 keeps its standard deviation
        assert p._in_scaler.mean[g.shape[1] + j] == pytest.approx(med)
        assert p._in_scaler.scale[g.shape[1] + j] == pytest.approx(want)


@pytest.mark.parametrize("scaling", ["standard", "robust"])
def test_heads_read_the_features_scaled(scaling: str, graphs, targets, features) -> None:
    """The heads' input is ``[z, standardized globals, feature_scale * scaled features]``."""
    from predictors.encoders import global_features

    p = fast(members=2, feature_scaling=scaling, feature_scale=2.5)
    p.fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    g = np.stack([global_features(x) for x in graphs[TEST]])
    side = (np.concatenate([g, features[TEST]], axis=1) - p._in_scaler.mean) / p._in_scaler.scale
    side[:, g.shape[1]:] *= 2.5
    u = p.memberships(graphs[TEST])
    data = [graph_data(x) for x in graphs[TEST]]
    mus = []
    for k, member in enumerate(p._members):
        assert member.heads is not None
        z = member.scaler.transform(_embed(member.encoder, data))
        with torch.no_grad():
            h = member.heads(torch.from_numpy(np.concatenate([z, side], axis=1)).float()).double().numpy()
        mus.append((u[k] * h).sum(axis=1) * p._y_scale + p._y_mean)
    np.testing.assert_allclose(p.predict(graphs[TEST], features=features[TEST])[0], np.mean(mus, axis=0),
                               rtol=1e-5, atol=1e-9)


def test_feature_settings_leave_the_featureless_fit_alone(graphs, targets) -> None:
    ref = fast(**_LEGACY).fit(graphs[TRAIN], targets[TRAIN]).predict(graphs[TEST])
    got = fast(feature_scaling="robust", feature_scale=3.0).fit(graphs[TRAIN], targets[TRAIN]).predict(graphs[TEST])
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_robust_features_save_and_load(graphs, targets, features, tmp_path: Path) -> None:
    p = fast(members=2, feature_scaling="robust", feature_scale=3.0)
    p.fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN]).save(tmp_path / "g.zip")
    q = GennapePredictor.load(tmp_path / "g.zip")
    assert q.config == p.config
    for a, b in zip(p.predict(graphs[TEST], features=features[TEST]), q.predict(graphs[TEST], features=features[TEST]),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_load_refuses_inputs_that_no_longer_line_up(graphs, targets, features, tmp_path: Path) -> None:
    """A file whose graph-level feature list differs from this version's, or whose input statistics do
    not match its feature width, would feed the heads the wrong columns: loading refuses it, as it
    refuses non-finite weights, scales <= 0 and invalid target statistics."""
    from nas.errors import PredictorFileError
    from predictors.base import Archive, read_archive, write_archive

    fast(members=1).fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN]).save(tmp_path / "g.zip")
    a = read_archive(tmp_path / "g.zip")
    renamed = {**a.scalars, "global_features": list(reversed(a.scalars["global_features"]))}
    write_archive(tmp_path / "renamed.zip", Archive(a.predictor, a.config, renamed, a.arrays))
    with pytest.raises(PredictorFileError, match="fitted on the graph-level features"):
        GennapePredictor.load(tmp_path / "renamed.zip")
    narrower = {**a.scalars, "n_features": a.scalars["n_features"] - 1}
    write_archive(tmp_path / "narrower.zip", Archive(a.predictor, a.config, narrower, a.arrays))
    with pytest.raises(PredictorFileError, match="input statistics of width"):
        GennapePredictor.load(tmp_path / "narrower.zip")
    weight = next(k for k in a.arrays if k.startswith("m0/heads/"))
    for name, value in ((weight, np.nan), ("m0/emb_scale", 0.0), ("in_scale", -1.0)):
        arr = a.arrays[name].copy()
        arr.flat[0] = value
        write_archive(tmp_path / "bad.zip", Archive(a.predictor, a.config, a.scalars, {**a.arrays, name: arr}))
        with pytest.raises(PredictorFileError, match=f"'{name}'"):
            GennapePredictor.load(tmp_path / "bad.zip")
    write_archive(tmp_path / "bad.zip", Archive(a.predictor, a.config, {**a.scalars, "y_scale": 0.0}, a.arrays))
    with pytest.raises(PredictorFileError, match="invalid target statistics"):
        GennapePredictor.load(tmp_path / "bad.zip")


def test_a_file_from_before_the_feature_settings_loads_as_it_was_fitted(graphs, targets, features,
                                                                        tmp_path: Path) -> None:
    from predictors.base import Archive, read_archive, write_archive

    p = fast(**_LEGACY).fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    p.save(tmp_path / "new.zip")
    a = read_archive(tmp_path / "new.zip")
    old = {k: v for k, v in a.config.items() if k not in _LEGACY}  # as written before the settings existed
    write_archive(tmp_path / "old.zip", Archive(a.predictor, old, a.scalars, a.arrays))
    q = GennapePredictor.load(tmp_path / "old.zip")
    assert q.config == p.config
    assert (q.config.feature_scaling, q.config.feature_scale) != (GennapeConfig().feature_scaling,
                                                                  GennapeConfig().feature_scale)
    for a_, b in zip(p.predict(graphs[TEST], features=features[TEST]),
                     q.predict(graphs[TEST], features=features[TEST]), strict=True):
        np.testing.assert_array_equal(a_, b)


@pytest.mark.parametrize("bad", [{"feature_scaling": "quantile"}, {"feature_scale": 0.0},
                                 {"feature_scale": float("nan")}])
def test_feature_settings_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(PredictorError):
        GennapeConfig(**bad)  # type: ignore[arg-type]
