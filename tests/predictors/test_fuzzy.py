"""Fuzzy c-means against hand-computed memberships and its own stationarity conditions."""

from __future__ import annotations

import numpy as np
import pytest

from nas.errors import PredictorError
from predictors.fuzzy import fuzzy_cmeans, memberships


def test_memberships_by_hand() -> None:
    # centres 0 and 4, m = 2: a point at 1 has d = (1, 3), so u_1 = 1 / (1 + (1/3)^2) = 0.9
    u = memberships([[1.0], [2.0], [4.0]], [[0.0], [4.0]], m=2.0)
    np.testing.assert_allclose(u, [[0.9, 0.1], [0.5, 0.5], [0.0, 1.0]])
    # m = 3: the exponent 2/(m-1) = 1, so u_1 = 1 / (1 + 1/3) = 0.75
    np.testing.assert_allclose(memberships([[1.0]], [[0.0], [4.0]], m=3.0), [[0.75, 0.25]])
    # on two coinciding centres: equal shares
    np.testing.assert_allclose(memberships([[1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0], [5.0, 0.0]]), [[0.5, 0.5, 0.0]])


def test_memberships_near_hard_assignment_stay_finite() -> None:
    """With m near 1 the weights d2^(-1/(m-1)) underflow (far points) or overflow (near ones) in floats;
    the memberships are those of the ratio, which tends to the nearest centre."""
    far = memberships(np.full((1, 32), 40.0), np.stack([np.zeros(32), np.ones(32)]), m=1.01)
    # (d2_0 / d2_1)^(-100) with d2 = 32 * 40^2 and 32 * 39^2
    share = 1.0 / (1.0 + (40.0 / 39.0) ** 200)
    np.testing.assert_allclose(far, [[share, 1 - share]], rtol=1e-9)
    near = memberships([[1e-5], [0.9]], [[0.0], [2.0]], m=1.01)
    np.testing.assert_allclose(near, [[1.0, 0.0], [1.0, 0.0]], atol=1e-8)
    x = np.random.default_rng(3).normal(size=(40, 32))
    fcm = fuzzy_cmeans(x, 3, m=1.01, rng=np.random.default_rng(0))
    assert np.isfinite(fcm.u).all() and np.isfinite(fcm.centres).all()
    np.testing.assert_allclose(fcm.u.sum(axis=1), 1.0)


def test_fit_recovers_two_blobs_and_is_stationary() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (30, 2)), rng.normal(5, 0.1, (30, 2))])
    fcm = fuzzy_cmeans(x, 2, m=2.0, rng=np.random.default_rng(1))
    centres = fcm.centres[np.argsort(fcm.centres[:, 0])]
    np.testing.assert_allclose(centres, [[0, 0], [5, 5]], atol=0.1)
    assert fcm.u.shape == (60, 2)
    np.testing.assert_allclose(fcm.u.sum(axis=1), 1.0)
    hard = fcm.u.argmax(axis=1)
    assert len(set(hard[:30])) == 1 and len(set(hard[30:])) == 1 and hard[0] != hard[-1]
    # the returned pair satisfies both fixed-point conditions
    np.testing.assert_allclose(fcm.u, memberships(x, fcm.centres, 2.0))
    um = fcm.u**2
    np.testing.assert_allclose(fcm.centres, um.T @ x / um.sum(axis=0)[:, None], atol=1e-5)
    np.testing.assert_allclose(fcm.memberships(x[:3]), fcm.u[:3])


def test_objective_never_increases_and_seed_fixes_the_result() -> None:
    x = np.random.default_rng(2).normal(size=(50, 3))
    fcm = fuzzy_cmeans(x, 4, m=1.7, rng=np.random.default_rng(5))
    j = np.array(fcm.objective)
    assert (np.diff(j) <= 1e-9 * j[0]).all()
    again = fuzzy_cmeans(x, 4, m=1.7, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(fcm.centres, again.centres)


def test_errors() -> None:
    with pytest.raises(PredictorError, match="m must be > 1"):
        memberships([[0.0]], [[0.0]], m=1.0)
    with pytest.raises(PredictorError, match="n >= c"):
        fuzzy_cmeans(np.zeros((2, 1)), 3)
