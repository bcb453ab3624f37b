"""The tabular baselines: missing proxy values, bagging, and ridge against scikit-learn's own fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from nas.errors import PredictorError
from predictors.baselines import CapacityRidge, GraphGBDT, TextRidge, ZeroCostGBDT
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
