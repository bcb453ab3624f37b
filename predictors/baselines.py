"""Baseline predictors on fixed-length inputs: zero-cost proxies, a generic graph encoding, text n-grams,
capacity, the space's own encoding.

Five registered predictors, each a bag of ``bags`` models fitted on bootstrap resamples of the
fitting set; ``mean`` is the bag average and ``std`` the spread across the bags (Breiman, "Bagging
Predictors", Machine Learning 1996). With ``bags=1`` the one model is fitted on the whole set, and
``std`` is 0.

* ``zc_gbdt``: gradient-boosted trees on zero-cost proxy scores given as ``features`` ``(n, f)``,
  as in NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets and Benchmarks), which fits
  XGBoost on proxy scores. Here the trees are scikit-learn's ``GradientBoostingRegressor``, kept as
  plain arrays (:mod:`predictors.trees`). ``use_globals`` adds the graph-level features.
* ``graph_gbdt``: the same trees on :func:`~predictors.encodings.graph_encoding` (graph-level
  numbers, op counts, hashed Weisfeiler-Lehman subtree counts), plus ``features`` if given.
* ``text_ridge``: ridge regression (Hoerl and Kennard, Technometrics 1970) on ``log1p`` counts of
  hashed tokens of :meth:`ArchGraph.to_text` (:func:`~predictors.encodings.text_tokens`, hashed by
  scikit-learn's ``HashingVectorizer``), plus ``features`` if given. The ridge penalty is chosen by
  leave-one-out error over ``alphas`` (scikit-learn's ``RidgeCV``). A model is its coefficient vector
  and intercept, ``ŷ = x·w + b``.
* ``capacity_ridge``: the same ridge on the network's capacity alone, ``log1p`` of its parameter count
  and of its FLOPs (plus ``features`` if given). A baseline for transfer across spaces: capacity
  means the same thing in every space, and a linear model keeps the direction it learned (on NB201,
  the parameter count alone ranks CIFAR-10 test accuracy at Spearman 0.75). With ``signs="source"``
  each coefficient is held to the sign of its input's Spearman correlation with the targets on the
  fitting set (0 where that is 0 or undefined): a sign-constrained ridge, solved exactly as non-negative
  least squares (Lawson and Hanson's active-set method, scipy's ``nnls``) on the inputs oriented by
  those signs, with the penalty leave-one-out chooses for the unconstrained ridge on the same bag.
  Non-negative combinations are Breiman's remedy for stacking correlated predictors ("Stacked
  Regressions", Machine Learning 1996). Here it keeps a transfer model from resting on a contrast
  between nearly collinear inputs (log parameters against log FLOPs: on NB101 an unconstrained fit
  weighs them about -50 and +54 in standard units) whose meaning belongs to the fitting space.
* ``encoding_mlp``: a multilayer perceptron on a fixed-length encoding given as ``features`` (required),
  meant for the search space's own encoding (:func:`predictors.data.genotype_onehot`: one one-hot
  block per choice of the genotype), the MLP baseline of White et al., "How Powerful are Performance
  Predictors in Neural Architecture Search?" (NeurIPS 2021). Inputs and targets are standardized;
  each bag is a fully connected ReLU network trained full-batch with Adam on the squared error. The
  bags train together as one batched network (their losses add, so Adam steps each bag exactly as
  alone); predictions are computed in NumPy from the saved weights.

Missing feature values (NaN: a proxy that failed on one architecture) are replaced by the fitting
set's column median for the trees and by the column mean (0 after standardizing) for ridge and the MLP.

None of them pickles anything: trees are saved as node arrays, ridge as its coefficients, the MLP as
its weight matrices.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls
from scipy.stats import spearmanr
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import RidgeCV

from nas.errors import PredictorError, PredictorFileError
from nas.ir import ArchGraph
from predictors.base import (
    PREDICTORS,
    Archive,
    FloatArray,
    Standardizer,
    check_adapt_inputs,
    check_features,
    check_graphs,
    check_targets,
    config_from_json,
    config_to_json,
    read_archive,
    require,
    require_finite,
    warnings_off,
    write_archive,
)
from predictors.encoders import global_features
from predictors.encodings import graph_encoding, text_tokens
from predictors.trees import TreeArrays


@dataclass(frozen=True)
class GBDTConfig:
    """Settings of the tree baselines (``zc_gbdt``, ``graph_gbdt``)."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    max_depth: int = 3
    min_samples_leaf: int = 3
    subsample: float = 0.8
    bags: int = 5
    use_globals: bool = False
    buckets: int = 256
    wl_rounds: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        _check_ints(self, n_estimators=1, max_depth=1, min_samples_leaf=1, bags=1, buckets=1, wl_rounds=0)
        if not (0 < self.subsample <= 1 and 0 < self.learning_rate < math.inf):
            raise PredictorError(f"invalid GBDT settings: {self} (subsample in (0, 1], learning_rate > 0)")


@dataclass(frozen=True)
class RidgeConfig:
    """Settings of the text baseline (``text_ridge``)."""

    n_features: int = 4096
    ngram: int = 2
    alphas: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 4, 13))
    bags: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        _check_ints(self, n_features=1, ngram=1, bags=1)
        _check_alphas(self)


#: ``CapacityConfig.signs``: "free" (a plain ridge) or "source" (see the module docstring)
SIGNS = ("free", "source")


@dataclass(frozen=True)
class CapacityConfig:
    """Settings of the capacity baseline (``capacity_ridge``). ``signs="source"`` keeps each coefficient
    to the sign of its input's Spearman correlation with the targets (see the module docstring)."""

    alphas: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 4, 13))
    bags: int = 5
    seed: int = 0
    signs: str = "free"

    def __post_init__(self) -> None:
        _check_ints(self, bags=1)
        _check_alphas(self)
        if self.signs not in SIGNS:
            raise PredictorError(f"CapacityConfig.signs must be one of {SIGNS}; got {self.signs!r}")


@dataclass(frozen=True)
class MLPConfig:
    """Settings of the MLP baseline (``encoding_mlp``): hidden layer widths, full-batch Adam steps,
    learning rate, L2 weight decay."""

    hidden: tuple[int, ...] = (128, 128, 128)
    epochs: int = 500
    lr: float = 1e-2
    weight_decay: float = 1e-4
    bags: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        widths_ok = bool(self.hidden) and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                                               for w in self.hidden)
        _check_ints(self, bags=1, epochs=1)
        if not widths_ok or not 0 < self.lr < math.inf or not 0 <= self.weight_decay < math.inf:
            raise PredictorError(f"invalid MLP settings: {self}")


def _check_ints(config: Any, **least: int) -> None:
    """Each named field an integer (not a bool) of at least its given value."""
    for name, low in least.items():
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise PredictorError(f"{type(config).__name__}.{name} must be an integer >= {low}; got {v!r}")


def _check_alphas(config: Any) -> None:
    alphas = config.alphas
    if not alphas or not all(isinstance(a, (int, float)) and 0 < a < math.inf for a in alphas):
        raise PredictorError(f"{type(config).__name__}.alphas must be finite penalties > 0; got {alphas!r}")


class _Bagged(abc.ABC):
    """What the baselines share: input checks, bagging, the archive. Subclasses say how a graph
    becomes a row (:meth:`_encode`) and how one model is fitted, applied and stored."""

    name: str
    config_class: type[Any]
    #: True when the model reads ``features`` alone (fit and predict refuse to go without them)
    features_only: bool = False
    #: the :mod:`predictors.features` spec kind the CLI gives it when none is asked for (``geno``)
    default_features: str | None = None

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        base = config or self.config_class()
        if not isinstance(base, self.config_class):
            raise PredictorError(f"{type(self).__name__} takes a {self.config_class.__name__}; "
                                 f"got {type(base).__name__}")
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self._fitted = False
        self._n_features = 0
        self._width = 0

    # -------------------------------------------------------------- hooks
    @abc.abstractmethod
    def _encode(self, graphs: Sequence[ArchGraph], feats: FloatArray | None) -> FloatArray:
        """The model input ``(n, width)``."""

    @abc.abstractmethod
    def _fit_models(self, x: FloatArray, y: FloatArray, bags: list[npt.NDArray[np.int64]]) -> None:
        """Fit one model per bag (rows of ``x`` ``(n, width)`` and ``y`` ``(n,)``)."""

    @abc.abstractmethod
    def _predict_models(self, x: FloatArray) -> FloatArray:
        """``(n, bags)`` predictions."""

    @abc.abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """The fitted model arrays."""

    @abc.abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray], path: str | Path) -> None:
        """Set the fitted model from :meth:`_state`'s arrays."""

    # -------------------------------------------------------------- contract
    def fit(self, graphs: Sequence[ArchGraph], y: npt.ArrayLike, *,
            features: npt.ArrayLike | None = None) -> _Bagged:
        graphs = check_graphs(graphs)
        target = check_targets(graphs, y)
        feats = check_features(features, len(graphs))
        self._fitted = False  # until the end: a fit that raises leaves no half-replaced model behind
        self._n_features = 0 if feats is None else feats.shape[1]
        x = self._encode(graphs, feats)
        self._width = x.shape[1]
        rng = np.random.default_rng(self.config.seed)
        n = len(graphs)
        bags = [np.arange(n)] if self.config.bags == 1 else [rng.integers(0, n, n) for _ in range(self.config.bags)]
        self._fit_models(x, target, bags)
        for name, arr in self._state().items():
            if not np.isfinite(arr).all():
                raise PredictorError(f"{type(self).__name__}.fit: the fitted '{name}' has non-finite values "
                                     "(inputs of too large a magnitude? a diverging fit?)")
        self._fitted = True
        return self

    def predict(self, graphs: Sequence[ArchGraph], *,
                features: npt.ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
        if not self._fitted:
            raise PredictorError(f"{type(self).__name__}.predict before fit (or load)")
        graphs = check_graphs(graphs)
        feats = check_features(features, len(graphs), width=self._n_features)
        if not graphs:
            return np.zeros(0), np.zeros(0)
        x = self._encode(graphs, feats)
        if x.shape[1] != self._width:
            raise PredictorError(f"{type(self).__name__}: the encoding has {x.shape[1]} columns; the model was "
                                 f"fitted on {self._width} (a changed config?)")
        preds = self._predict_models(x)  # (n, bags)
        return preds.mean(axis=1), preds.std(axis=1)

    def save(self, path: str | Path) -> None:
        if not self._fitted:
            raise PredictorError(f"cannot save an unfitted {type(self).__name__}")
        scalars = {"n_features": self._n_features, "width": self._width}
        write_archive(path, Archive(self.name, config_to_json(self.config), scalars, self._state()))

    @classmethod
    def load(cls, path: str | Path) -> Any:
        archive = read_archive(path, predictor=cls.name)
        self = cls(config_from_json(cls.config_class, archive.config, path=path))
        try:
            self._n_features = int(archive.scalars["n_features"])
            self._width = int(archive.scalars["width"])
        except (KeyError, TypeError, ValueError) as e:
            raise PredictorFileError(f"{path}: missing or invalid fitted scalar: {e!r}") from e
        require_finite(archive, path)
        self._restore(archive.arrays, path)
        self._fitted = True
        return self


class _TreeBaseline(_Bagged):
    config_class = GBDTConfig

    def __init__(self, config: GBDTConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._trees: TreeArrays | None = None
        self._fill = np.zeros(0)

    def _fit_models(self, x: FloatArray, y: FloatArray, bags: list[npt.NDArray[np.int64]]) -> None:
        cfg = self.config
        with warnings_off():
            fill = np.nanmedian(x, axis=0)
        self._fill = np.where(np.isfinite(fill), fill, 0.0)
        x = self._filled(x)
        models = []
        for b, rows in enumerate(bags):
            model = GradientBoostingRegressor(
                n_estimators=cfg.n_estimators, learning_rate=cfg.learning_rate, max_depth=cfg.max_depth,
                min_samples_leaf=cfg.min_samples_leaf, subsample=cfg.subsample, random_state=cfg.seed + b,
            )
            models.append(model.fit(x[rows], y[rows]))
        self._trees = TreeArrays.from_sklearn(models)

    def _filled(self, x: FloatArray) -> FloatArray:
        return np.where(np.isnan(x), self._fill, x)

    def _predict_models(self, x: FloatArray) -> FloatArray:
        assert self._trees is not None
        if x.shape[1] != self._width:
            raise PredictorError(f"the encoding has {x.shape[1]} columns; the trees were fitted on {self._width}")
        return self._trees.predict(self._filled(x))

    def _state(self) -> dict[str, np.ndarray]:
        assert self._trees is not None
        return {**self._trees.arrays("trees"), "fill": self._fill}

    def _restore(self, arrays: dict[str, np.ndarray], path: str | Path) -> None:
        require(Archive(self.name, {}, {}, arrays), ["fill"], path)
        self._trees = TreeArrays.from_arrays("trees", arrays, path)
        self._fill = arrays["fill"]
        if self._fill.shape != (self._width,) or int(self._trees.feature.max(initial=0)) >= max(self._width, 1):
            raise PredictorFileError(f"{path}: the trees do not fit the saved input width {self._width}")


@PREDICTORS.register("zc_gbdt")
class ZeroCostGBDT(_TreeBaseline):
    """Boosted trees on zero-cost proxy scores (``features`` is required). See the module docstring."""

    name = "zc_gbdt"
    features_only = True

    def _encode(self, graphs: Sequence[ArchGraph], feats: FloatArray | None) -> FloatArray:
        if feats is None:
            raise PredictorError("zc_gbdt predicts from zero-cost proxy scores: pass features= of shape (n, f), "
                                 "e.g. from proxies.engine.score")
        if self.config.use_globals:
            return np.concatenate([feats, np.stack([global_features(g) for g in graphs])], axis=1)
        return feats


@PREDICTORS.register("graph_gbdt")
class GraphGBDT(_TreeBaseline):
    """Boosted trees on the generic graph encoding (and ``features`` if given). See the module docstring."""

    name = "graph_gbdt"

    def _encode(self, graphs: Sequence[ArchGraph], feats: FloatArray | None) -> FloatArray:
        cfg = self.config
        x = np.stack([graph_encoding(g, buckets=cfg.buckets, rounds=cfg.wl_rounds) for g in graphs])
        return x if feats is None else np.concatenate([x, feats], axis=1)


class _RidgeBaseline(_Bagged):
    """Standardized inputs, one ``RidgeCV`` per bag (penalty by leave-one-out error over ``alphas``)."""

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._coef = np.zeros((0, 0))
        self._intercept = np.zeros(0)
        self._scaler = Standardizer(np.zeros(0), np.ones(0))

    def _fit_models(self, x: FloatArray, y: FloatArray, bags: list[npt.NDArray[np.int64]]) -> None:
        self._scaler = Standardizer.fit(x)
        z = self._scaler.transform(x)
        signs = self._signs(z, y)
        coef, intercept = [], []
        for rows in bags:
            model = RidgeCV(alphas=self.config.alphas).fit(z[rows], y[rows])
            if signs is None:
                w, b = model.coef_, float(model.intercept_)
            else:
                w, b = signed_ridge(z[rows], y[rows], float(model.alpha_), signs)
            coef.append(w)
            intercept.append(b)
        self._coef = np.array(coef, dtype=np.float64)  # (bags, width)
        self._intercept = np.array(intercept, dtype=np.float64)

    def _signs(self, z: FloatArray, y: FloatArray) -> FloatArray | None:
        """The sign each coefficient is held to, or None for a plain ridge."""
        return None

    def _predict_models(self, x: FloatArray) -> FloatArray:
        return self._scaler.transform(x) @ self._coef.T + self._intercept

    def adapt(self, graphs: Sequence[ArchGraph], *, features: npt.ArrayLike | None = None) -> _RidgeBaseline:
        """Standardize the inputs with the statistics of unlabelled ``graphs`` (at least 2) of the
        domain to be predicted, instead of the fitting set's: a graph is then read by where it
        stands within its own space, as :meth:`GennapePredictor.adapt <predictors.gennape.GennapePredictor.adapt>`
        does. For a linear model this keeps each input's direction and re-weights the inputs by
        their spread in the target space (an NB101 network's log parameter count spreads otherwise
        than an NB201 one's). Ranks transfer this way, not values. Returns ``self``."""
        graphs, feats = check_adapt_inputs(type(self).__name__, self._fitted, graphs, features, self._n_features)
        self._scaler = Standardizer.fit(self._encode(graphs, feats))
        return self

    def _state(self) -> dict[str, np.ndarray]:
        return {"coef": self._coef, "intercept": self._intercept, "mean": self._scaler.mean,
                "scale": self._scaler.scale}

    def _restore(self, arrays: dict[str, np.ndarray], path: str | Path) -> None:
        require(Archive(self.name, {}, {}, arrays), ["coef", "intercept", "mean", "scale"], path)
        coef, intercept = arrays["coef"], arrays["intercept"]
        if (coef.ndim != 2 or coef.shape[1] != self._width or intercept.shape != (coef.shape[0],)
                or arrays["mean"].shape != (self._width,) or arrays["scale"].shape != (self._width,)):
            raise PredictorFileError(f"{path}: ridge arrays do not fit the saved input width {self._width}")
        self._coef, self._intercept = coef, intercept
        self._scaler = Standardizer(arrays["mean"], arrays["scale"])


@PREDICTORS.register("text_ridge")
class TextRidge(_RidgeBaseline):
    """Ridge regression on hashed n-grams of the graph's text (and ``features``). See the module docstring."""

    name = "text_ridge"
    config_class = RidgeConfig

    def _vectorizer(self) -> HashingVectorizer:
        # stateless: rebuilt from the config on load, nothing of it is saved
        return HashingVectorizer(analyzer=_identity, n_features=self.config.n_features, alternate_sign=False,
                                 norm=None)

    def _encode(self, graphs: Sequence[ArchGraph], feats: FloatArray | None) -> FloatArray:
        counts = self._vectorizer().transform([text_tokens(g, ngram=self.config.ngram) for g in graphs])
        x = np.log1p(counts.toarray())  # (n, n_features)
        return x if feats is None else np.concatenate([x, feats], axis=1)


@PREDICTORS.register("capacity_ridge")
class CapacityRidge(_RidgeBaseline):
    """Ridge regression on ``log1p`` parameters and FLOPs (and ``features``). See the module docstring."""

    name = "capacity_ridge"
    config_class = CapacityConfig

    def _encode(self, graphs: Sequence[ArchGraph], feats: FloatArray | None) -> FloatArray:
        x = np.array([[np.log1p(g.params), np.log1p(g.flops)] for g in graphs], dtype=np.float64).reshape(-1, 2)
        return x if feats is None else np.concatenate([x, feats], axis=1)

    def _signs(self, z: FloatArray, y: FloatArray) -> FloatArray | None:
        if self.config.signs == "free":
            return None
        return source_signs(z, y)


def source_signs(z: FloatArray, y: FloatArray) -> FloatArray:
    """``(width,)``: the sign of each column's Spearman correlation with ``y``; 0 where it is 0 or
    undefined (a constant column or constant targets)."""
    with warnings_off():
        rho = np.array([spearmanr(z[:, j], y)[0] for j in range(z.shape[1])], dtype=np.float64)
    return np.sign(np.where(np.isfinite(rho), rho, 0.0))


def signed_ridge(z: FloatArray, y: FloatArray, alpha: float, signs: FloatArray) -> tuple[FloatArray, float]:
    """``(coef, intercept)`` minimizing ``|y - b - z w|^2 + alpha |w|^2`` subject to ``signs[j] w[j] >= 0``
    (``w[j] = 0`` where ``signs[j]`` is 0), the intercept unpenalized: non-negative least squares on the
    centred inputs times their signs, stacked over ``sqrt(alpha) I``."""
    zc = (z - z.mean(axis=0)) * signs
    width = z.shape[1]
    a = np.vstack([zc, math.sqrt(alpha) * np.eye(width)])
    # scipy's default of 3 * width active-set iterations can run out on collinear inputs; allow more
    v, _ = nnls(a, np.concatenate([y - y.mean(), np.zeros(width)]), maxiter=max(100, 10 * width))
    w = v * signs
    return w, float(y.mean() - z.mean(axis=0) @ w)


@PREDICTORS.register("encoding_mlp")
class EncodingMLP(_Bagged):
    """A bag of ReLU MLPs on a fixed-length encoding given as ``features`` (the space's own encoding).
    See the module docstring."""

    name = "encoding_mlp"
    config_class = MLPConfig
    features_only = True
    default_features = "geno"

    def __init__(self, config: MLPConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._x_scaler = Standardizer(np.zeros(0), np.ones(0))
        self._y_mean = 0.0
        self._y_scale = 1.0
        self._layers: list[tuple[FloatArray, FloatArray]] = []  # per layer: (bags, in, out), (bags, out)

    def _encode(self, graphs: Sequence[ArchGraph], feats: FloatArray | None) -> FloatArray:
        if feats is None:
            raise PredictorError("encoding_mlp predicts from an architecture encoding: pass features= of shape "
                                 "(n, f), e.g. predictors.data.genotype_onehot(space, archs)")
        return feats

    def _fit_models(self, x: FloatArray, y: FloatArray, bags: list[npt.NDArray[np.int64]]) -> None:
        import torch

        cfg = self.config
        self._x_scaler = Standardizer.fit(x)
        self._y_mean = float(y.mean())
        self._y_scale = float(y.std()) or 1.0
        rows = np.stack(bags)  # (bags, n)
        xb = torch.as_tensor(self._x_scaler.transform(x)[rows], dtype=torch.float32)  # (bags, n, width)
        yb = torch.as_tensor((y[rows] - self._y_mean) / self._y_scale, dtype=torch.float32)  # (bags, n)
        gen = torch.Generator().manual_seed(cfg.seed)
        params: list[torch.Tensor] = []
        widths = [x.shape[1], *cfg.hidden, 1]
        for fan_in, fan_out in itertools.pairwise(widths):
            bound = 1.0 / max(fan_in, 1) ** 0.5  # PyTorch's default nn.Linear initialization range
            for shape in ((len(bags), fan_in, fan_out), (len(bags), 1, fan_out)):
                params.append((torch.rand(shape, generator=gen) * 2 - 1).mul_(bound).requires_grad_())
        train_mlp(xb, yb, params, epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self._layers = [(params[i].detach().double().numpy(), params[i + 1].detach().double().numpy()[:, 0])
                        for i in range(0, len(params), 2)]

    def _predict_models(self, x: FloatArray) -> FloatArray:
        h = np.broadcast_to(self._x_scaler.transform(x), (len(self._layers[0][0]), *x.shape))
        for k, (w, b) in enumerate(self._layers):
            h = h @ w + b[:, None, :]
            if k < len(self._layers) - 1:
                h = np.maximum(h, 0.0)
        return (h[..., 0] * self._y_scale + self._y_mean).T  # (n, bags)

    def _state(self) -> dict[str, np.ndarray]:
        out = {"x_mean": self._x_scaler.mean, "x_scale": self._x_scaler.scale,
               "y": np.array([self._y_mean, self._y_scale])}
        for k, (w, b) in enumerate(self._layers):
            out[f"w{k}"], out[f"b{k}"] = w, b
        return out

    def _restore(self, arrays: dict[str, np.ndarray], path: str | Path) -> None:
        depth = len(self.config.hidden) + 1
        keys = ["x_mean", "x_scale", "y", *(f"{c}{k}" for k in range(depth) for c in "wb")]
        require(Archive(self.name, {}, {}, arrays), keys, path)
        widths = [self._width, *self.config.hidden, 1]
        layers = [(arrays[f"w{k}"], arrays[f"b{k}"]) for k in range(depth)]
        bags = layers[0][0].shape[0] if layers[0][0].ndim == 3 else -1
        if (arrays["x_mean"].shape != (self._width,) or arrays["x_scale"].shape != (self._width,)
                or arrays["y"].shape != (2,) or bags < 1
                or any(w.shape != (bags, widths[k], widths[k + 1]) or b.shape != (bags, widths[k + 1])
                       for k, (w, b) in enumerate(layers))):
            raise PredictorFileError(f"{path}: MLP arrays do not fit the saved input width {self._width} "
                                     f"and hidden widths {self.config.hidden}")
        self._x_scaler = Standardizer(arrays["x_mean"], arrays["x_scale"])
        self._y_mean, self._y_scale = float(arrays["y"][0]), float(arrays["y"][1])
        self._layers = layers


def train_mlp(x: Any, y: Any, params: Sequence[Any], *, epochs: int, lr: float, weight_decay: float) -> None:
    """Train the batched MLP's ``params`` in place: full-batch Adam on the sum over the bags of each bag's
    mean squared error, so every bag gets exactly the gradient (and Adam step) it would get alone.
    ``x`` ``(bags, n, width)``, ``y`` ``(bags, n)``."""
    import torch

    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        loss = ((mlp_forward(x, params) - y) ** 2).mean(dim=1).sum()
        loss.backward()
        opt.step()


def mlp_forward(x: Any, params: Sequence[Any]) -> Any:
    """The batched MLP: ``x`` ``(bags, n, width)``, ``params`` alternating weights ``(bags, in, out)`` and
    biases ``(bags, 1, out)``, ReLU between layers; returns ``(bags, n)``."""
    import torch

    h = x
    for k in range(0, len(params), 2):
        h = torch.baddbmm(params[k + 1], h, params[k])
        if k + 2 < len(params):
            h = torch.relu(h)
    return h[..., 0]


def _identity(tokens: list[str]) -> list[str]:
    return tokens
