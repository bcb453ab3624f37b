"""The ARD Gaussian process against scikit-learn's at the same hyperparameters, and its fit."""

from __future__ import annotations

import numpy as np
import pytest

from nas.errors import PredictorError
from predictors.gp import SCALARS, ArdGP


def _sklearn(theta: np.ndarray, d: int):  # type: ignore[no-untyped-def]
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, DotProduct, WhiteKernel
    from sklearn.gaussian_process.kernels import ConstantKernel as C

    ell, (signal, linear, offset, noise) = np.exp(theta[:d]), np.exp(theta[d:])
    kernel = (C(signal, "fixed") * RBF(ell, "fixed") + C(linear, "fixed") * DotProduct(np.sqrt(offset), "fixed")
              + WhiteKernel(noise, "fixed"))
    return GaussianProcessRegressor(kernel, alpha=1e-6, optimizer=None, normalize_y=True)


def _data(n: int = 40, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = 2.0 * x[:, 0] + np.sin(3.0 * x[:, 1]) + 0.05 * rng.normal(size=n) + 10.0  # x[:, 2] is irrelevant
    return x, y


def test_likelihood_and_posterior_equal_sklearn_at_the_same_hyperparameters() -> None:
    x, y = _data()
    d = x.shape[1]
    theta = np.log(np.array([0.7, 1.3, 2.0, 1.5, 0.2, 0.8, 0.03]))
    assert theta.size == d + len(SCALARS)
    ours = ArdGP.from_state(theta, x, y)
    ref = _sklearn(theta, d).fit(x, y)
    # scikit-learn's likelihood is of the standardized targets, as ours
    assert ours.neg_log_likelihood(theta) == pytest.approx(-ref.log_marginal_likelihood_value_, rel=1e-9)
    q = np.random.default_rng(1).normal(size=(15, d))
    mean, std = ours.predict(q)
    ref_mean, ref_std = ref.predict(q, return_std=True)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-8)
    np.testing.assert_allclose(std, ref_std, rtol=1e-6)


def test_fit_raises_the_likelihood_and_switches_off_an_irrelevant_input() -> None:
    x, y = _data(n=80)
    gp = ArdGP().fit(x, y)
    start = np.log(np.array([3.0, 3.0, 3.0, 1.0, 0.1, 1.0, 0.01]))
    assert gp.neg_log_likelihood(gp.theta) < gp.neg_log_likelihood(start) - 10.0
    ell = np.exp(gp.theta[:3])
    # sin(3 x1) needs the RBF term at a short lengthscale; x0 enters linearly (the linear term carries
    # it) and x2 carries nothing, so the RBF term switches both off
    assert ell[1] < 2.0 and ell[0] > 100.0 and ell[2] > 100.0
    xt, yt = _data(n=200, seed=5)
    mean, std = gp.predict(xt)
    assert np.sqrt(np.mean((mean - yt) ** 2)) < 0.2 and (std > 0).all()


def test_typed_errors() -> None:
    with pytest.raises(PredictorError, match="before fit"):
        ArdGP().predict(np.zeros((1, 2)))
    with pytest.raises(PredictorError, match="n >= 2"):
        ArdGP().fit(np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(PredictorError, match="finite"):
        ArdGP().fit(np.array([[0.0], [np.nan]]), np.zeros(2))
    x, y = _data()
    gp = ArdGP().fit(x, y)
    with pytest.raises(PredictorError, match="width 3"):
        gp.predict(np.zeros((2, 4)))
    with pytest.raises(PredictorError, match="do not fit"):
        ArdGP.from_state(gp.theta[:-1], x, y)
    with pytest.raises(PredictorError, match="1 non-finite values in its theta"):
        ArdGP.from_state(np.where(np.arange(gp.theta.size) == 0, np.nan, gp.theta), x, y)


def test_a_new_theta_gets_a_new_factor() -> None:
    """``theta`` is a public field: predictions follow it, not a factor cached for an earlier value;
    and ``from_state`` gives back the fitted model (float32 state is read as float64)."""
    x, y = _data()
    gp = ArdGP().fit(x, y)
    q = _data(5, seed=1)[0]
    fitted = gp.predict(q)
    again = ArdGP.from_state(gp.theta, x.astype(np.float32), y)
    np.testing.assert_allclose(again.predict(q)[0], ArdGP.from_state(gp.theta, x.astype(np.float32).astype(
        np.float64), y).predict(q)[0], rtol=1e-12)
    np.testing.assert_allclose(ArdGP.from_state(gp.theta, x, y).predict(q)[0], fitted[0], rtol=1e-10)
    gp.theta = gp.theta + 0.5
    np.testing.assert_allclose(gp.predict(q)[0], ArdGP.from_state(gp.theta, x, y).predict(q)[0], rtol=1e-12)
    assert not np.allclose(gp.predict(q)[0], fitted[0], rtol=1e-3)
