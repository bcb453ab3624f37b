r"""Cheap surrogates on a genotype's choices, for :class:`~nas.integrations.samplers.PredictorSampler`.

Our :class:`~predictors.base.Predictor`\\ s read :class:`~nas.ir.ArchGraph`\\ s, and building a graph
(tens of milliseconds for an NB201 cell) dominated the sampler's cost: every trial scores ~100 new
candidates. A surrogate here reads instead the **one-hot encoding of the architecture's choices**,
one block of ``len(dimension.choices)`` columns per dimension of the space
(:meth:`~nas.integrations.spaces.ArchitectureMapping.onehot`), which costs microseconds and exists
for every space with an Optuna mapping. For cell spaces such as NB201 this is the "adjacency
one-hot" encoding, which White, Neiswanger, Nolen & Savani ("A Study on Encodings for Neural
Architecture Search", NeurIPS 2020) found as good as the path encoding for BO-style NAS on NB201.

The contract is the :class:`ChoiceSurrogate` protocol: ``fit(x, y)`` with ``x`` ``(n, d)`` one-hot
rows and ``y`` ``(n,)``, returning itself; ``predict(x) -> (mean, std)``, two float64 ``(m,)``
arrays with ``std >= 0``. Neither mutates its inputs. A surrogate may also offer
``sample(x, rng) -> (m,)``, one draw from its posterior over the rows' values, which the sampler's
Thompson-sampling acquisition uses (without it, the sampler draws from ``N(mean, std)`` per row).
Surrogates are registered in :data:`SURROGATES`.

``forest`` (:class:`ChoiceForest`) is the random forest of SMAC (Hutter, Hoos & Leyton-Brown,
"Sequential Model-Based Optimization for General Algorithm Configuration", LION 2011): ``B``
regression trees, each on a bootstrap resample and a random ``max_features`` share of the columns
per split; the mean is the average of the trees' predictions ``f_b(x)`` and the uncertainty their
spread, ``std(x) = sqrt(mean_b (f_b(x) - mean(x))^2)``; a posterior draw is one tree's
prediction ``f_b(x)`` with ``b`` uniform (Thompson sampling with a bootstrap ensemble: the trees
disagree jointly over the rows, so a draw ranks them coherently). Its defaults (``min_samples_leaf=3``,
``max_features=5/6``) are SMAC's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from nas.errors import PredictorError
from nas.registry import Registry

FloatArray = npt.NDArray[np.float64]


@runtime_checkable
class ChoiceSurrogate(Protocol):
    """A regressor on one-hot choice rows with an uncertainty (see the module docstring)."""

    def fit(self, x: FloatArray, y: FloatArray) -> ChoiceSurrogate:
        """Learn from rows ``x`` ``(n, d)`` and targets ``y`` ``(n,)``; returns ``self``."""
        ...

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(mean, std)`` of rows ``x`` ``(m, d)``, each ``(m,)``."""
        ...


SURROGATES: Registry[ChoiceSurrogate] = Registry("choice surrogate")


@SURROGATES.register("forest")
@dataclass
class ChoiceForest:
    """SMAC's random forest on the one-hot choice encoding (see the module docstring)."""

    n_estimators: int = 48
    min_samples_leaf: int = 3
    max_features: float = 5.0 / 6.0
    seed: int = 0
    _model: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_estimators < 2 or self.min_samples_leaf < 1 or not 0.0 < self.max_features <= 1.0:
            raise PredictorError(f"ChoiceForest: n_estimators={self.n_estimators} must be >= 2, min_samples_leaf="
                                 f"{self.min_samples_leaf} >= 1, max_features={self.max_features} in (0, 1]")

    def fit(self, x: FloatArray, y: FloatArray) -> ChoiceForest:
        from sklearn.ensemble import RandomForestRegressor

        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 2:
            raise PredictorError(f"ChoiceForest.fit needs x (n, d) and y (n,) with n >= 2; got {x.shape} and "
                                 f"{y.shape}")
        if not np.all(np.isfinite(y)):
            raise PredictorError(f"ChoiceForest.fit: non-finite targets {y[~np.isfinite(y)][:5].tolist()}")
        self._model = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                            max_features=self.max_features, bootstrap=True, random_state=self.seed,
                                            n_jobs=1).fit(x, y)
        return self

    def _rows(self, x: FloatArray, what: str) -> FloatArray:
        if self._model is None:
            raise PredictorError(f"ChoiceForest.{what} before fit")
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != self._model.n_features_in_:
            raise PredictorError(f"ChoiceForest.{what}: rows of width {self._model.n_features_in_} expected; "
                                 f"got shape {x.shape}")
        return x

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        x = self._rows(x, "predict")
        per_tree = np.stack([t.predict(x) for t in self._model.estimators_], axis=1)  # (m, n_estimators)
        return per_tree.mean(axis=1), per_tree.std(axis=1)

    def sample(self, x: FloatArray, rng: np.random.Generator) -> FloatArray:
        """One posterior draw for rows ``x`` ``(m, d)``: the prediction of one tree, chosen by ``rng``."""
        x = self._rows(x, "sample")
        tree = self._model.estimators_[int(rng.integers(len(self._model.estimators_)))]
        return np.asarray(tree.predict(x), dtype=np.float64)
