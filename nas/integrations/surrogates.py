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
Thompson-sampling acquisition uses (without it, the sampler draws from ``N(mean, std)`` per row),
and ``sample_grid(widths, rng)``, one joint draw at every combination of choices, which lets the
sampler rank a whole small space. Surrogates are registered in :data:`SURROGATES`.

``forest`` (:class:`ChoiceForest`) is the random forest of SMAC (Hutter, Hoos & Leyton-Brown,
"Sequential Model-Based Optimization for General Algorithm Configuration", LION 2011): ``B``
regression trees, each on a bootstrap resample and a random ``max_features`` share of the columns
per split; the mean is the average of the trees' predictions ``f_b(x)`` and the uncertainty their
spread, ``std(x) = sqrt(mean_b (f_b(x) - mean(x))^2)``; a posterior draw is one tree's
prediction ``f_b(x)`` with ``b`` uniform (Thompson sampling with a bootstrap ensemble: the trees
disagree jointly over the rows, so a draw ranks them coherently). Its defaults (``min_samples_leaf=3``,
``max_features=5/6``) are SMAC's.

``gp`` (:class:`ChoiceGP`, the sampler's default) is a Gaussian process with the exponentiated
Hamming kernel ``k(x, x') = s2 * exp(-h(x, x') / ell)``, where ``h = ||x - x'||^2 / 2`` is the number
of dimensions on which two one-hot rows differ (the categorical kernel of COMBO, Oh et al.,
"Combinatorial Bayesian Optimization using the Graph Cartesian Product", NeurIPS 2019, with one
length-scale), a constant mean (the targets' mean) and Gaussian noise ``s2 * eta``. ``ell`` and ``eta`` are
chosen on a grid by the marginal likelihood with ``s2`` profiled out (``s2 = r' C^-1 r / n`` for the
centred targets ``r`` and the correlation matrix ``C``). A posterior draw is a *joint* sample over the
rows, ``mean + Q sqrt(W) z`` for the eigendecomposition ``Q W Q'`` of the posterior covariance;
:meth:`ChoiceGP.sample_grid` draws jointly at every combination of choices of a small space (15,625
for NB201) without that cubic cost, by conditioning a draw from the prior. A smooth kernel on the
Hamming distance generalizes from a few dozen rows where the forest's axis-aligned splits need many:
on the additive toy target of the tests (the count of 3x3 convolutions, 80 training rows) the GP's
mean correlates above 0.95 with the truth on held-out cells, the forest's 0.55. On NAS-Bench-201 it
is also the better guide of the sampler (the table in :mod:`nas.integrations.samplers`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from nas.errors import PredictorError
from nas.registry import Registry

if TYPE_CHECKING:
    from nas.integrations.spaces import ArchitectureMapping
    from search_spaces.base import Genotype

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


_F = TypeVar("_F", bound=Callable[..., Any])


def _one_blas_thread(method: _F) -> _F:
    """Run ``method`` with one BLAS thread (threadpoolctl, which scikit-learn installs).

    The GP's matrices are small (a few hundred rows); a multi-threaded BLAS gains nothing on them and
    its threads spin-wait when the cores are busy: on this project's 2-core machines, with two other
    processes running, one eigendecomposition of a 128 x 128 posterior covariance took 0.29 s with
    OpenBLAS's default threads and 2 ms with one.
    """

    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


@SURROGATES.register("gp")
@dataclass
class ChoiceGP:
    """A Gaussian process with an exponentiated Hamming kernel on the one-hot choices (see the module docstring).

    ``lengthscales`` and ``noises`` are the grid searched by the profiled marginal likelihood; ``seed`` is
    accepted for the registry's sake (the fit is deterministic). The fit costs ``O(len(grid) n^3)``: a few
    milliseconds for a hundred trials, about half a second for a thousand (one BLAS thread).
    """

    lengthscales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    noises: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 0.3)
    seed: int = 0
    lengthscale: float = field(default=float("nan"), init=False)
    noise: float = field(default=float("nan"), init=False)
    signal: float = field(default=float("nan"), init=False)
    _x: Any = field(default=None, init=False, repr=False)
    _mean: float = field(default=0.0, init=False, repr=False)
    _chol: Any = field(default=None, init=False, repr=False)
    _alpha: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.lengthscales or not self.noises or min(self.lengthscales) <= 0 or min(self.noises) <= 0:
            raise PredictorError(f"ChoiceGP: lengthscales={self.lengthscales} and noises={self.noises} must be "
                                 "non-empty and positive")

    @staticmethod
    def _hamming(a: FloatArray, b: FloatArray) -> FloatArray:
        """``||a_i - b_j||^2 / 2``: for one-hot rows, the number of dimensions on which they differ."""
        sq_a, sq_b = (a * a).sum(axis=1), (b * b).sum(axis=1)
        return np.maximum(0.5 * (sq_a[:, None] + sq_b[None, :] - 2.0 * a @ b.T), 0.0)

    @_one_blas_thread
    def fit(self, x: FloatArray, y: FloatArray) -> ChoiceGP:
        from scipy.linalg import cho_solve, cholesky, solve_triangular

        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 2:
            raise PredictorError(f"ChoiceGP.fit needs x (n, d) and y (n,) with n >= 2; got {x.shape} and {y.shape}")
        if not np.all(np.isfinite(y)):
            raise PredictorError(f"ChoiceGP.fit: non-finite targets {y[~np.isfinite(y)][:5].tolist()}")
        n = len(y)
        mean = float(y.mean())
        r = y - mean
        h = self._hamming(x, x)
        best: tuple[float, float, float, float] | None = None  # (log-likelihood, ell, eta, s2)
        for ell in self.lengthscales:
            corr = np.exp(-h / ell)
            for eta in self.noises:
                chol = cholesky(corr + eta * np.eye(n), lower=True)
                a = solve_triangular(chol, r, lower=True)
                s2 = max(float(a @ a) / n, 1e-12)
                ll = -0.5 * n * np.log(s2) - float(np.log(np.diag(chol)).sum())
                if best is None or ll > best[0]:
                    best = (ll, ell, eta, s2)
        assert best is not None
        _, self.lengthscale, self.noise, self.signal = best
        self._chol = cholesky(np.exp(-h / self.lengthscale) + self.noise * np.eye(n), lower=True)
        self._alpha = cho_solve((self._chol, True), r)
        self._x, self._mean = x, mean
        return self

    def _posterior(self, x: FloatArray, what: str) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The rows' posterior mean, ``V = L^-1 K(X, x)`` and the rows' prior correlations ``K(x, x)``."""
        from scipy.linalg import solve_triangular

        if self._x is None:
            raise PredictorError(f"ChoiceGP.{what} before fit")
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != self._x.shape[1]:
            raise PredictorError(f"ChoiceGP.{what}: rows of width {self._x.shape[1]} expected; got shape {x.shape}")
        cross = np.exp(-self._hamming(self._x, x) / self.lengthscale)  # (n, m)
        mean = self._mean + cross.T @ self._alpha
        v = solve_triangular(self._chol, cross, lower=True)
        return mean, v, np.exp(-self._hamming(x, x) / self.lengthscale) if what == "sample" else np.ones(len(x))

    @_one_blas_thread
    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        mean, v, prior = self._posterior(x, "predict")
        var = self.signal * np.maximum(prior - (v * v).sum(axis=0), 0.0)
        return np.asarray(mean, np.float64), np.sqrt(var)

    @_one_blas_thread
    def sample(self, x: FloatArray, rng: np.random.Generator) -> FloatArray:
        """One joint posterior draw for rows ``x`` ``(m, d)``, from ``rng``."""
        mean, v, prior = self._posterior(x, "sample")
        cov = self.signal * (prior - v.T @ v)
        w, q = np.linalg.eigh(0.5 * (cov + cov.T))
        return np.asarray(mean + q @ (np.sqrt(np.maximum(w, 0.0)) * rng.standard_normal(len(mean))), np.float64)

    @_one_blas_thread
    def sample_grid(self, widths: Sequence[int], rng: np.random.Generator, chunk: int = 4096) -> FloatArray:
        """One joint posterior draw at every point of the grid of categorical dimensions ``widths``.

        The points are in C order (the first dimension slowest, as :func:`itertools.product` over the
        dimensions' choices), one-hot in blocks of ``widths`` columns as the training rows. ``sample``
        over the whole grid would need the eigendecomposition of a ``(N, N)`` covariance; here the
        draw costs ``O(N n)`` by pathwise conditioning (Matheron's rule; Wilson et al., "Efficiently
        Sampling Functions from Gaussian Process Posteriors", ICML 2020): a prior draw ``f`` on the
        grid, noise ``e`` on the training rows, and ``f + k(., X) C^-1 (r - f(X) - e)`` has the
        posterior's law. The prior draw is exact and cheap because the kernel is a product over the
        dimensions, ``exp(-[a != b] / ell)`` each, so the grid's covariance is the Kronecker product of
        ``len(widths)`` small matrices and its Cholesky factor the product of theirs.
        """
        from scipy.linalg import cho_solve

        if self._x is None:
            raise PredictorError("ChoiceGP.sample_grid before fit")
        widths = [int(w) for w in widths]
        if min(widths, default=0) < 1 or sum(widths) != self._x.shape[1]:
            raise PredictorError(f"ChoiceGP.sample_grid: widths {widths} must be >= 1 and add up to the rows' "
                                 f"width {self._x.shape[1]}")
        train = _grid_index(self._x, widths, "the training rows")
        c = np.exp(-1.0 / self.lengthscale)
        f = rng.standard_normal(widths)
        for axis, w in enumerate(widths):  # apply each dimension's Cholesky factor along its axis
            factor = np.linalg.cholesky((1.0 - c) * np.eye(w) + c * np.ones((w, w)))
            f = np.moveaxis(np.tensordot(factor, f, axes=([1], [axis])), 0, axis)
        f = np.sqrt(self.signal) * f.reshape(-1)
        noise = np.sqrt(self.signal * self.noise) * rng.standard_normal(len(train))
        beta = self._alpha - cho_solve((self._chol, True), f[train] + noise)
        out = self._mean + f
        offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        strides = np.concatenate([np.cumprod(widths[::-1])[::-1][1:], [1]]).astype(np.int64)
        for start in range(0, len(out), chunk):  # k(grid, X) @ beta, a chunk of one-hot grid rows at a time
            idx = np.arange(start, min(start + chunk, len(out)))
            rows = np.zeros((len(idx), self._x.shape[1]))
            for off, stride, w in zip(offsets, strides, widths, strict=True):
                rows[np.arange(len(idx)), off + idx // stride % w] = 1.0
            out[idx] += np.exp(-self._hamming(rows, self._x) / self.lengthscale) @ beta
        return np.asarray(out, np.float64)


def _grid_index(x: FloatArray, widths: Sequence[int], what: str) -> npt.NDArray[np.int64]:
    """The C-order grid index of each one-hot row of ``x`` (blocks of ``widths`` columns)."""
    idx = np.zeros(len(x), dtype=np.int64)
    off = 0
    for w in widths:
        block = x[:, off: off + w]
        if not np.all((block == 0.0) | (block == 1.0)) or not np.all(block.sum(axis=1) == 1.0):
            raise PredictorError(f"ChoiceGP.sample_grid: {what} are not one-hot in columns {off}..{off + w - 1}")
        idx = idx * w + np.argmax(block, axis=1)
        off += w
    return idx


# --------------------------------------------------------------------------- proposing candidates
# Shared by PredictorSampler (Optuna) and the ``bo`` search strategy (nas.search.bayesian).


def gaussian_copula(y: npt.ArrayLike) -> FloatArray:
    """``Phi^-1((rank(y) - 0.5) / n)``: the values' ranks mapped to standard-normal quantiles (ties averaged).

    NB201-like objectives have a long tail of collapsed networks (10% accuracy next to 90%); fitted on
    raw values, the model spends itself on the tail and its spread is largest near it. The copula keeps
    only the order, which is all the acquisition's argmax needs, and makes the targets Gaussian --
    the output warping of Salinas, Shen & Perrone ("A Quantile-based Approach for Hyperparameter
    Transfer Learning", ICML 2020) and of HEBO (Cowen-Rivers et al., JAIR 2022).
    """
    from scipy.stats import norm, rankdata

    y = np.asarray(y, dtype=np.float64)
    return np.asarray(norm.ppf((rankdata(y) - 0.5) / len(y)), dtype=np.float64)


def crossover(mapping: ArchitectureMapping, rng: np.random.Generator, parents: Sequence[Genotype]) -> Genotype | None:
    """A uniform crossover of two distinct ``parents``' choices, mutated once more with probability 1/2.

    ``None`` when the child names no architecture of the space (an NB101 cell whose merged adjacency
    is invalid).
    """
    from nas.integrations.spaces import InvalidArchitectureError

    a, b = rng.choice(len(parents), size=2, replace=False)
    pa, pb = mapping.params(parents[int(a)]), mapping.params(parents[int(b)])
    take_a = rng.random(len(pa)) < 0.5
    child = {k: (pa[k] if t else pb[k]) for k, t in zip(pa, take_a, strict=True)}
    try:
        g = mapping.genotype(child)
    except InvalidArchitectureError:
        return None
    return mapping.space.mutate(g, rng) if rng.random() < 0.5 else g


def propose(mapping: ArchitectureMapping, rng: np.random.Generator, parents: Sequence[Genotype], seen: set[str],
            n_candidates: int, mutation_fraction: float, crossover_fraction: float) -> list[Genotype]:
    """Up to ``n_candidates`` distinct genotypes whose text (``space.format``) is not in ``seen``.

    The first ``mutation_fraction`` of the draws are single-edit mutations of the ``parents`` in turn,
    the next ``crossover_fraction`` :func:`crossover`\\ s of two of them (with two parents or more),
    the rest uniform draws from the space (see :mod:`nas.integrations.samplers` for why this mix).
    """
    space = mapping.space
    n_mut = round(n_candidates * mutation_fraction) if parents else 0
    n_cross = round(n_candidates * crossover_fraction) if len(parents) > 1 else 0
    out: dict[str, Genotype] = {}
    for i in range(n_candidates):
        if i < n_mut:
            g: Genotype | None = space.mutate(parents[i % len(parents)], rng)
        elif i < n_mut + n_cross:
            g = crossover(mapping, rng, parents)
        else:
            g = space.sample(rng)
        if g is not None and (key := space.format(g)) not in seen:
            out.setdefault(key, g)
    return list(out.values())
