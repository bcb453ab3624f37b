"""Boosted trees kept as arrays predict exactly what scikit-learn predicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from nas.errors import PredictorFileError
from predictors.trees import TreeArrays


def test_arrays_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5))
    y = x[:, 0] ** 2 + np.sin(3 * x[:, 1]) + 0.1 * rng.normal(size=80)
    models = [GradientBoostingRegressor(n_estimators=30, max_depth=d, subsample=0.8, random_state=d).fit(x, y)
              for d in (1, 3, 4)]
    trees = TreeArrays.from_sklearn(models)
    x_new = rng.normal(size=(40, 5)) * 2
    x_new[0] = x[3]  # a training row: lands exactly on learned thresholds' sides
    got = trees.predict(x_new)
    assert got.shape == (40, 3)
    for m, model in enumerate(models):
        np.testing.assert_allclose(got[:, m], model.predict(x_new), rtol=0, atol=1e-12)


def test_round_trip_through_arrays_and_validation() -> None:
    x = np.arange(40, dtype=float).reshape(20, 2)
    trees = TreeArrays.from_sklearn([GradientBoostingRegressor(n_estimators=5).fit(x, x[:, 0])])
    back = TreeArrays.from_arrays("t", trees.arrays("t"), "mem")
    np.testing.assert_array_equal(back.predict(x), trees.predict(x))
    arrays = trees.arrays("t")
    with pytest.raises(PredictorFileError, match="missing"):
        TreeArrays.from_arrays("t", {k: v for k, v in arrays.items() if not k.endswith("value")}, "mem")
    inner = int(np.flatnonzero(arrays["t/left"] >= 0)[1])
    for field, value in (("left", arrays["t/left"] + 1000),  # past the end
                         ("left", np.where(np.arange(arrays["t/left"].size) == inner, inner, arrays["t/left"])),
                         ("right", np.where(np.arange(arrays["t/left"].size) == inner, -1, arrays["t/right"])),
                         ("feature", arrays["t/feature"] - 5), ("roots", arrays["t/roots"] - 1000)):
        # the second is a loop (a node its own child), which would walk forever
        with pytest.raises(PredictorFileError, match="inconsistent"):
            TreeArrays.from_arrays("t", {**arrays, f"t/{field}": value}, "mem")
    for field, value in (("init", arrays["t/init"][:, None]), ("roots", arrays["t/roots"][:, None])):
        with pytest.raises(PredictorFileError, match="inconsistent"):
            TreeArrays.from_arrays("t", {**arrays, f"t/{field}": value}, "mem")
    with pytest.raises(PredictorFileError, match=r"index arrays \['left'\] under 't' are not integers"):
        TreeArrays.from_arrays("t", {**arrays, "t/left": arrays["t/left"].astype(np.float64)}, "mem")
