"""The tabular baselines: missing proxy values, bagging, ridge against scikit-learn's own fit, the MLP
against its one-bag loop and its torch forward pass."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from nas.errors import PredictorError
from predictors.baselines import (
    CapacityRidge,
    EncodingMLP,
    GraphGBDT,
    TextRidge,
    ZeroCostGBDT,
    mlp_forward,
    signed_ridge,
    source_signs,
    train_mlp,
)
from predictors.encoders import GLOBAL_FEATURES
from predictors.encodings import encoding_dim

TRAIN, TEST = slice(0, 16), slice(16, 24)


def test_missing_proxy_values_take_the_training_median(graphs, targets, features) -> None:
    train = features[TRAIN].copy()
    train[[1, 4], 1] = np.nan
    p = ZeroCostGBDT(n_estimators=10, bags=2).fit(graphs[TRAIN], targets[TRAIN], features=train)
    test = features[TEST].copy()
    test[0, 1] = np.nan
    filled = test.copy()
    filled[0, 1] = np.nanmedian(train[:, 1])
    for a, b in zip(p.predict(graphs[TEST], features=test), p.predict(graphs[TEST], features=filled), strict=True):
        np.testing.assert_array_equal(a, b)


def test_widths_and_single_bag(graphs, targets, features) -> None:
    zc = ZeroCostGBDT(n_estimators=5, bags=1, use_globals=True)
    zc.fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    assert zc._width == 3 + len(GLOBAL_FEATURES)
    np.testing.assert_array_equal(zc.predict(graphs[TEST], features=features[TEST])[1], 0.0)
    gg = GraphGBDT(n_estimators=5, buckets=16).fit(graphs[TRAIN], targets[TRAIN])
    assert gg._width == encoding_dim(16)


def test_text_ridge_is_scikit_learns_ridge(graphs, targets) -> None:
    p = TextRidge(n_features=128, bags=1)
    p.fit(graphs[TRAIN], targets[TRAIN])
    x = p._encode(graphs, None)
    z = p._scaler.transform(x)
    ref = RidgeCV(alphas=p.config.alphas).fit(z[TRAIN], targets[TRAIN])
    np.testing.assert_allclose(p.predict(graphs[TEST])[0], ref.predict(z[TEST]), rtol=1e-10)
    # the hashed counts are log1p(count) >= 0 and the same text gives the same row
    assert (x >= 0).all() and np.array_equal(p._encode(graphs[:1], None), x[:1])


def test_capacity_ridge_is_ridge_on_log_params_and_flops(graphs, targets, features) -> None:
    """The input is log1p(params), log1p(FLOPs) of the IR (then the features); the fit is scikit-learn's
    RidgeCV on the standardized inputs; and a larger network gets a larger prediction when the targets
    grow with capacity (the direction a transfer across spaces relies on)."""
    p = CapacityRidge(bags=1).fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    x = p._encode(graphs, features)
    np.testing.assert_array_equal(x[:, 0], np.log1p([g.params for g in graphs]))
    np.testing.assert_array_equal(x[:, 1], np.log1p([g.flops for g in graphs]))
    np.testing.assert_array_equal(x[:, 2:], features)
    z = p._scaler.transform(x)
    ref = RidgeCV(alphas=p.config.alphas).fit(z[TRAIN], targets[TRAIN])
    np.testing.assert_allclose(p.predict(graphs[TEST], features=features[TEST])[0], ref.predict(z[TEST]), rtol=1e-10)
    alone = CapacityRidge(bags=1).fit(graphs[TRAIN], targets[TRAIN])  # targets grow with log params
    order = np.argsort([g.params for g in graphs[TEST]])
    pred = alone.predict(graphs[TEST])[0]
    assert pred[order[-1]] > pred[order[0]]


def _signed_ridge_by_enumeration(z, y, alpha, signs):
    """The reference: the penalized least-squares objective at the best feasible point, found by trying
    every set of free coefficients (the others 0), solving the unconstrained ridge on it, and keeping
    the solutions that respect the signs. The optimum of this convex problem is one of them."""
    import itertools

    zc, yc = z - z.mean(axis=0), y - y.mean()
    width = z.shape[1]
    best, best_w = np.inf, None
    allowed = [j for j in range(width) if signs[j] != 0]
    for k in range(len(allowed) + 1):
        for free in itertools.combinations(allowed, k):
            w = np.zeros(width)
            if free:
                a = zc[:, free]
                w[list(free)] = np.linalg.solve(a.T @ a + alpha * np.eye(len(free)), a.T @ yc)
            if np.all(signs * w >= -1e-12):
                obj = np.sum((yc - zc @ w) ** 2) + alpha * np.sum(w**2)
                if obj < best:
                    best, best_w = obj, w
    return best_w, float(y.mean() - z.mean(axis=0) @ best_w)


@pytest.mark.parametrize("seed", range(6))
def test_signed_ridge_against_enumerating_the_active_sets(seed: int) -> None:
    """On random collinear problems (some constraints bind, some not) the NNLS solution equals the best
    feasible ridge over every active set, for several penalties; a zero sign fixes its coefficient at 0."""
    rng = np.random.default_rng(seed)
    n, width = 40, 5
    base = rng.normal(size=(n, 2))
    z = np.column_stack([base[:, 0], base[:, 0] + 0.05 * rng.normal(size=n), base[:, 1], rng.normal(size=(n, 2))])
    y = 2 * z[:, 1] - 1.5 * z[:, 0] + 0.5 * z[:, 2] + rng.normal(size=n) + 3.0
    signs = np.array([1.0, 1.0, -1.0, 0.0, 1.0]) if seed % 2 else source_signs(z, y)
    zc = z - z.mean(axis=0)
    binds = []
    for alpha in (0.01, 1.0, 30.0):
        free = np.linalg.solve(zc.T @ zc + alpha * np.eye(width), zc.T @ (y - y.mean()))
        binds.append(bool(np.any(signs * free < 0)))  # the plain ridge breaks a sign
        w, b = signed_ridge(z, y, alpha, signs)
        ref_w, ref_b = _signed_ridge_by_enumeration(z, y, alpha, signs)
        np.testing.assert_allclose(w, ref_w, atol=1e-9)
        assert b == pytest.approx(ref_b, abs=1e-9)
        assert np.all(signs * w >= 0) and np.all(w[signs == 0] == 0)
    assert binds[0], "the constraints must bind at the smallest penalty for this to test anything"


def test_source_signs_are_spearman_signs_with_zero_for_undefined() -> None:
    rng = np.random.default_rng(0)
    y = np.sort(rng.normal(size=30))
    outlier = np.arange(30.0)  # rises with y, except one huge negative value: Pearson says -, Spearman +
    outlier[-1] = -1e4  # at the largest y
    z = np.column_stack([y ** 3, -np.exp(y), np.ones(30), outlier])
    assert np.corrcoef(outlier, y)[0, 1] < 0
    np.testing.assert_array_equal(source_signs(z, y), [1.0, -1.0, 0.0, 1.0])
    np.testing.assert_array_equal(source_signs(z, np.ones(30)), 0.0)  # constant targets: no direction


def test_capacity_ridge_signed_fit(graphs, targets, features, monkeypatch) -> None:
    """``signs="source"``: each bag is :func:`signed_ridge` at the penalty RidgeCV picks on that bag, with
    the fitting set's Spearman signs; where the unconstrained fit already has those signs it is
    RidgeCV's fit; the setting is saved, and an unknown one refused."""
    import predictors.baselines as baselines

    calls = []

    def recording(z, y):
        calls.append((z.copy(), y.copy()))
        return source_signs(z, y)

    monkeypatch.setattr(baselines, "source_signs", recording)
    p = CapacityRidge(bags=2, signs="source").fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    z = p._scaler.transform(p._encode(graphs[TRAIN], features[TRAIN]))
    assert len(calls) == 1  # once, on the whole fitting set, not per bag
    np.testing.assert_array_equal(calls[0][0], z)
    np.testing.assert_array_equal(calls[0][1], targets[TRAIN])
    y = targets[TRAIN]
    signs = source_signs(z, y)
    rng = np.random.default_rng(p.config.seed)  # the bags, drawn as _Bagged.fit draws them
    rows = [rng.integers(0, 16, 16) for _ in range(2)]
    for k, r in enumerate(rows):
        alpha = RidgeCV(alphas=p.config.alphas).fit(z[r], y[r]).alpha_
        w, b = signed_ridge(z[r], y[r], alpha, signs)
        np.testing.assert_allclose(p._coef[k], w, rtol=1e-12, atol=1e-12)
        assert p._intercept[k] == pytest.approx(b, rel=1e-12)
        assert np.all(signs * p._coef[k] >= 0)
    # one input whose direction the ridge keeps: the two fits agree
    one = [features[TRAIN][:, :1], features[TEST][:, :1]]
    free = CapacityRidge(bags=1).fit(graphs[TRAIN], y, features=one[0])
    zz = free._scaler.transform(free._encode(graphs[TRAIN], one[0]))
    assert np.all(source_signs(zz, y) * free._coef[0] >= 0), "the fixture's ridge breaks a sign: pick another input"
    signed = CapacityRidge(bags=1, signs="source").fit(graphs[TRAIN], y, features=one[0])
    np.testing.assert_allclose(signed.predict(graphs[TEST], features=one[1])[0],
                               free.predict(graphs[TEST], features=one[1])[0], rtol=1e-9)
    with pytest.raises(PredictorError, match="signs must be one of"):
        CapacityRidge(signs="positive")


def test_capacity_ridge_signed_save_load(tmp_path, graphs, targets, features) -> None:
    p = CapacityRidge(bags=2, signs="source").fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    p.save(tmp_path / "m.nasp")
    q = CapacityRidge.load(tmp_path / "m.nasp")
    assert q.config.signs == "source"
    for a, b in zip(p.predict(graphs[TEST], features=features[TEST]), q.predict(graphs[TEST], features=features[TEST]),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_ridge_adapt_standardizes_on_the_target_graphs(graphs, targets, features) -> None:
    """After ``adapt`` the same coefficients read inputs standardized with the target graphs' statistics:
    on the fitting graphs themselves nothing changes; on others the prediction is the plain formula."""
    p = CapacityRidge(bags=2).fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    before = p.predict(graphs[TEST], features=features[TEST])
    p.adapt(graphs[TRAIN], features=features[TRAIN])
    np.testing.assert_allclose(p.predict(graphs[TEST], features=features[TEST])[0], before[0], rtol=1e-12)

    target = graphs[TEST]
    x = p._encode(target, features[TEST])
    p.adapt(target, features=features[TEST])
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    np.testing.assert_allclose(p.predict(target, features=features[TEST])[0],
                               (z @ p._coef.T + p._intercept).mean(axis=1), rtol=1e-10)
    # the direction of each input is kept: a per-input shift and positive rescaling of the target space
    # leave its ranking unchanged
    mean, _ = p.predict(target, features=features[TEST])
    scaled = features[TEST] * 3.0 + 5.0
    np.testing.assert_allclose(p.adapt(target, features=scaled).predict(target, features=scaled)[0], mean,
                               rtol=1e-10)
    with pytest.raises(PredictorError, match="at least 2"):
        p.adapt(target[:1], features=features[TEST][:1])
    with pytest.raises(PredictorError, match="features"):
        p.adapt(target)
    with pytest.raises(PredictorError, match="before fit"):
        TextRidge().adapt(target)


def _onehot_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Six 5-way choices, one-hot ``(n, 30)``; the target adds a value per choice and one interaction."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, 5, (n, 6))
    x = np.zeros((n, 30))
    x[np.arange(n)[:, None], np.arange(6) * 5 + picks] = 1.0
    value = np.random.default_rng(99).normal(size=(6, 5))
    y = value[np.arange(6), picks].sum(axis=1) + 1.5 * (picks[:, 0] == picks[:, 1])
    return x, y


def test_encoding_mlp_learns_a_one_hot_encoding(graphs) -> None:
    """On the six-choice one-hot problem, 300 to fit: held-out Spearman > 0.9, and ``std`` is the bags'
    spread (0 with one bag)."""
    from scipy.stats import spearmanr

    x, y = _onehot_problem(400, 0)
    g = graphs[:1]
    p = EncodingMLP(seed=1).fit(g * 300, y[:300], features=x[:300])
    mean, std = p.predict(g * 100, features=x[300:])
    assert spearmanr(mean, y[300:])[0] > 0.9
    assert (std > 0).all()
    one = EncodingMLP(hidden=(8,), epochs=20, bags=1).fit(g * 300, y[:300], features=x[:300])
    np.testing.assert_array_equal(one.predict(g * 5, features=x[:5])[1], 0.0)


def test_encoding_mlp_bags_train_as_they_would_alone() -> None:
    """The batched training (all bags in one network) against a loop training each bag by itself from
    the same initial weights: the same weights after 40 Adam steps."""
    import torch

    gen = torch.Generator().manual_seed(0)
    bags, n, width = 3, 20, 6
    x = torch.randn(bags, n, width, generator=gen)
    y = torch.randn(bags, n, generator=gen)
    init = [torch.randn(bags, 6, 5, generator=gen), torch.randn(bags, 1, 5, generator=gen),
            torch.randn(bags, 5, 1, generator=gen), torch.randn(bags, 1, 1, generator=gen)]
    together = [p.clone().requires_grad_() for p in init]
    train_mlp(x, y, together, epochs=40, lr=1e-2, weight_decay=1e-3)
    for b in range(bags):
        alone = [p[b:b + 1].clone().requires_grad_() for p in init]
        train_mlp(x[b:b + 1], y[b:b + 1], alone, epochs=40, lr=1e-2, weight_decay=1e-3)
        for t, a, start in zip(together, alone, init, strict=True):
            np.testing.assert_allclose(t[b:b + 1].detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)
            assert not torch.equal(a, start[b:b + 1])  # the weights moved


def test_encoding_mlp_predicts_its_torch_forward_pass(graphs) -> None:
    """The NumPy prediction from the saved arrays equals the torch network on standardized inputs, in
    the targets' units; missing feature values read as the fitting set's mean."""
    import torch

    x, y = _onehot_problem(60, 1)
    x[3, 2] = np.nan
    g = graphs[:1]
    p = EncodingMLP(hidden=(12, 7), epochs=30, bags=2).fit(g * 40, y[:40], features=x[:40])
    z = torch.as_tensor(p._x_scaler.transform(x[40:]), dtype=torch.float64).expand(2, -1, -1)
    params = [torch.as_tensor(a) for w, b in p._layers for a in (w, b[:, None, :])]
    ref = mlp_forward(z, params).numpy().T * p._y_scale + p._y_mean  # (n, bags)
    mean, std = p.predict(g * 20, features=x[40:])
    np.testing.assert_allclose(mean, ref.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std(axis=1), rtol=1e-9)
    filled = x[:40].copy()
    filled[3, 2] = np.nanmean(x[:40, 2])
    np.testing.assert_array_equal(p.predict(g * 4, features=x[:4])[0], p.predict(g * 4, features=filled[:4])[0])


def test_encoding_mlp_settings_are_checked() -> None:
    for bad in ({"hidden": ()}, {"hidden": (0,)}, {"hidden": (64.5,)}, {"hidden": (True,)}, {"epochs": 0},
                {"lr": 0.0}, {"weight_decay": -1.0}, {"bags": 0}):
        with pytest.raises(PredictorError, match=r"invalid MLP settings|MLPConfig\.(epochs|bags) must be"):
            EncodingMLP(**bad)


@pytest.mark.parametrize(("cls", "bad", "message"), [
    (GraphGBDT, {"buckets": 0}, "buckets must be an integer >= 1"),
    (GraphGBDT, {"wl_rounds": -1}, "wl_rounds must be an integer >= 0"),
    (GraphGBDT, {"min_samples_leaf": 0}, "min_samples_leaf must be"),
    (GraphGBDT, {"bags": 2.5}, "bags must be an integer"),
    (ZeroCostGBDT, {"learning_rate": -0.1}, "learning_rate > 0"),
    (ZeroCostGBDT, {"learning_rate": float("nan")}, "learning_rate > 0"),
    (TextRidge, {"alphas": (float("nan"),)}, "alphas must be finite penalties > 0"),
    (CapacityRidge, {"alphas": (1.0, float("inf"))}, "alphas must be finite penalties > 0"),
    (CapacityRidge, {"bags": True}, "bags must be an integer"),
])
def test_settings_are_checked(cls, bad, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PredictorError, match=message):
        cls(**bad)


def test_a_config_of_another_baseline_is_refused() -> None:
    from predictors.baselines import GBDTConfig, RidgeConfig

    with pytest.raises(PredictorError, match="CapacityRidge takes a CapacityConfig; got RidgeConfig"):
        CapacityRidge(RidgeConfig())
    with pytest.raises(PredictorError, match="EncodingMLP takes a MLPConfig; got GBDTConfig"):
        EncodingMLP(GBDTConfig())


def test_a_failed_refit_leaves_no_fitted_model(graphs, targets, features) -> None:
    """A refit that raises leaves a model that refuses to predict or save, not the old model read with
    the new widths; a fit whose model comes out non-finite raises instead of predicting NaN."""
    zc = ZeroCostGBDT(n_estimators=5, bags=2).fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    with pytest.raises(PredictorError, match="zero-cost proxy scores"):
        zc.fit(graphs[TRAIN], targets[TRAIN])
    with pytest.raises(PredictorError, match="before fit"):
        zc.predict(graphs[TEST], features=features[TEST])
    with pytest.raises(PredictorError, match="unfitted"):
        zc.save("never-written.nasp")
    mlp = EncodingMLP(epochs=3).fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])
    with pytest.raises(PredictorError, match=r"EncodingMLP\.fit: the fitted 'w0' has non-finite values"):
        EncodingMLP(mlp.config, lr=1e30).fit(graphs[TRAIN], targets[TRAIN], features=features[TRAIN])  # diverges
    huge = features[TRAIN, :1] * 1e300  # finite; its squares are not
    ridge = CapacityRidge(bags=1).fit(graphs[TRAIN], targets[TRAIN], features=huge)
    assert np.isfinite(ridge._coef).all() and ridge._scaler.scale[2] > 1e299


def test_standardizing_columns_of_large_magnitude() -> None:
    """Scales of columns near 1e200 (proxy scores reach that) do not overflow to the fallback of 1."""
    from predictors.base import Standardizer

    x = np.array([[1.0e200, 1.0], [2.0e200, 3.0], [4.0e200, np.nan]])
    s = Standardizer.fit(x)
    np.testing.assert_allclose(s.mean, [7.0e200 / 3, 2.0], rtol=1e-12)
    np.testing.assert_allclose(s.scale, [np.std([1.0, 2.0, 4.0]) * 1e200, 1.0], rtol=1e-12)
    np.testing.assert_allclose(s.transform(x)[:, 0], (np.array([1.0, 2.0, 4.0]) - 7 / 3) / np.std([1.0, 2.0, 4.0]),
                               rtol=1e-12)


@pytest.mark.parametrize(("cls", "settings", "poison"), [
    (CapacityRidge, {}, "coef"), (CapacityRidge, {}, "scale"), (GraphGBDT, {"n_estimators": 5}, "trees/value"),
    (GraphGBDT, {"n_estimators": 5}, "fill"), (EncodingMLP, {"epochs": 5}, "w0"),
])
def test_load_refuses_non_finite_or_non_positive_arrays(cls, settings, poison, graphs, targets, features,
                                                        tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nas.errors import PredictorFileError
    from predictors.base import read_archive, write_archive

    kw = {"features": features[TRAIN]} if cls is EncodingMLP else {}
    cls(**settings).fit(graphs[TRAIN], targets[TRAIN], **kw).save(tmp_path / "a.nasp")
    archive = read_archive(tmp_path / "a.nasp")
    arr = archive.arrays[poison].astype(np.float64)
    arr.flat[0] = 0.0 if poison == "scale" else np.nan
    archive.arrays[poison] = arr.astype(archive.arrays[poison].dtype)
    write_archive(tmp_path / "b.nasp", archive)
    with pytest.raises(PredictorFileError, match=f"'{poison}'"):
        cls.load(tmp_path / "b.nasp")


def test_predict_checks_the_encoding_width(graphs, targets, tmp_path) -> None:
    """A file whose config was edited to another encoding width is refused by name at predict."""
    from predictors.base import read_archive, write_archive

    TextRidge(n_features=64, bags=1).fit(graphs[TRAIN], targets[TRAIN]).save(tmp_path / "a.nasp")
    archive = read_archive(tmp_path / "a.nasp")
    archive.config["n_features"] = 128
    write_archive(tmp_path / "b.nasp", archive)
    with pytest.raises(PredictorError, match="the encoding has 128 columns; the model was fitted on 64"):
        TextRidge.load(tmp_path / "b.nasp").predict(graphs[TEST])
