"""Learning-curve extrapolation: an ensemble of parametric families with bootstrap uncertainty.

Domhan, Springenberg & Hutter, "Speeding up Automatic Hyperparameter Optimization of Deep Neural
Networks by Extrapolation of Learning Curves", IJCAI 2015, model a learning curve ``y(x)`` (``x``
the epoch, from 1) as a weighted combination of saturating parametric families and sample the
weights and parameters by MCMC. This module keeps their families and replaces the MCMC by two
cheaper, deterministic steps:

1. **Fit and weigh.** Each family is fitted by bounded least squares (``scipy.optimize.least_squares``,
   trust-region reflective, from a few fixed starting points). Families are weighted by their BIC,
   ``w_f ∝ exp(-BIC_f / 2)`` with ``BIC_f = n log(RSS_f / n) + k_f log n`` (an approximation of
   the posterior model probability, Schwarz 1978).
2. **Residual bootstrap.** ``n_bootstrap`` times, a family is drawn by weight, its fitted curve plus
   resampled residuals (Efron & Tibshirani 1993, ch. 9) is refitted, and the refitted curve's value
   at the target epoch plus one resampled residual is one sample of the final value. The samples
   carry both the parameter uncertainty and the observation noise.

Families (``a, b, c, alpha ...`` fitted; ``x >= 1``), increasing towards an asymptote:

=================  ======================================================
``pow3``           ``c - a * x**(-alpha)``
``log_power``      ``a / (1 + (x / exp(b))**(-c))``
``exp3``           ``c - exp(b - a * x)``
``pow4``           ``c - (a * x + b)**(-alpha)``
``mmf``            ``alpha - (alpha - beta) / (1 + (kappa * x)**delta)``
``janoschek``      ``alpha - (alpha - beta) * exp(-kappa * x**delta)``
``ilog2``          ``c - a / log(x + 1)``
=================  ======================================================

Values are standardized first (``(y - min) / range`` of the observed curve), so the bounds are the
same for accuracies in percent and in [0, 1]; a decreasing metric (a loss) is negated by the caller.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from nas.errors import NasError

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CurveFamily:
    """A parametric family: ``f(x, theta)``, starting points and bounds for ``theta``."""

    name: str
    f: Callable[[Array, Array], Array]
    starts: tuple[tuple[float, ...], ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    @property
    def k(self) -> int:
        return len(self.lower)


def _pow3(x: Array, t: Array) -> Array:
    c, a, alpha = t
    return c - a * x ** (-alpha)


def _log_power(x: Array, t: Array) -> Array:
    a, b, c = t
    return a / (1.0 + (x / np.exp(b)) ** (-c))


def _exp3(x: Array, t: Array) -> Array:
    a, b, c = t
    return c - np.exp(b - a * x)


def _pow4(x: Array, t: Array) -> Array:
    c, a, b, alpha = t
    return c - (a * x + b) ** (-alpha)


def _mmf(x: Array, t: Array) -> Array:
    alpha, beta, kappa, delta = t
    return alpha - (alpha - beta) / (1.0 + (kappa * x) ** delta)


def _janoschek(x: Array, t: Array) -> Array:
    alpha, beta, kappa, delta = t
    return alpha - (alpha - beta) * np.exp(-kappa * x ** delta)


def _ilog2(x: Array, t: Array) -> Array:
    c, a = t
    return c - a / np.log(x + 1.0)


#: The default families (standardized curves: observed values span [0, 1]).
FAMILIES: tuple[CurveFamily, ...] = (
    CurveFamily("pow3", _pow3, ((1.2, 1.0, 0.5), (1.0, 1.0, 1.5)), (-1.0, -5.0, 0.01), (5.0, 20.0, 5.0)),
    CurveFamily("log_power", _log_power, ((1.2, 0.5, 1.0), (1.0, 1.5, 2.0)), (0.0, -5.0, 0.01), (5.0, 5.0, 10.0)),
    CurveFamily("exp3", _exp3, ((0.3, 0.0, 1.1), (0.1, 0.5, 1.3)), (1e-4, -10.0, -1.0), (5.0, 5.0, 5.0)),
    CurveFamily("pow4", _pow4, ((1.2, 1.0, 1.0, 0.5), (1.0, 0.5, 0.5, 1.0)), (-1.0, 1e-3, 1e-3, 0.01),
                (5.0, 20.0, 20.0, 5.0)),
    CurveFamily("mmf", _mmf, ((1.2, -0.5, 0.3, 1.0), (1.0, 0.0, 1.0, 2.0)), (-1.0, -5.0, 1e-3, 0.05),
                (5.0, 2.0, 10.0, 10.0)),
    CurveFamily("janoschek", _janoschek, ((1.2, -0.5, 0.3, 1.0), (1.0, 0.0, 0.1, 0.5)), (-1.0, -5.0, 1e-4, 0.05),
                (5.0, 2.0, 10.0, 5.0)),
    CurveFamily("ilog2", _ilog2, ((1.5, 1.0), (1.0, 0.5)), (-1.0, -10.0), (5.0, 20.0)),
)


def _fit(fam: CurveFamily, x: Array, y: Array, starts: Sequence[Sequence[float]] | None = None,
         max_nfev: int = 200) -> tuple[Array, float] | None:
    """Best least-squares fit over the starts (the family's by default): ``(theta, rss)``, or None."""
    best: tuple[Array, float] | None = None
    lo, hi = np.asarray(fam.lower), np.asarray(fam.upper)
    for start in starts if starts is not None else fam.starts:
        x0 = np.clip(np.asarray(start, float), lo + 1e-9, hi - 1e-9)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                res = least_squares(lambda t: fam.f(x, t) - y, x0, bounds=(lo, hi), method="trf",
                                    max_nfev=max_nfev)
            except ValueError:  # non-finite residuals at the start
                continue
        if not np.all(np.isfinite(res.fun)):
            continue
        rss = float(np.sum(res.fun ** 2))
        if best is None or rss < best[1]:
            best = (res.x, rss)
    return best


@dataclass(frozen=True)
class Extrapolation:
    """Samples of the curve's value at the target step, and the family weights behind them."""

    samples: Array
    weights: dict[str, float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    @property
    def std(self) -> float:
        return float(np.std(self.samples))

    def prob_greater(self, value: float) -> float:
        """The share of samples above ``value``."""
        return float(np.mean(self.samples > value))


@dataclass(frozen=True)
class CurveEnsemble:
    """The parametric-curve ensemble (see the module docstring).

    ``families`` are the families tried; ``n_bootstrap`` the samples of the final value;
    ``clip`` bounds the samples (e.g. ``(0, 100)`` for an accuracy in percent).
    """

    families: tuple[CurveFamily, ...] = FAMILIES
    n_bootstrap: int = 24
    clip: tuple[float, float] | None = None

    def extrapolate(self, steps: npt.ArrayLike, values: npt.ArrayLike, target: float,
                    rng: np.random.Generator) -> Extrapolation:
        """Samples of the value at step ``target`` of the curve observed at ``steps`` (0-based epochs)."""
        x = np.asarray(steps, float) + 1.0  # families are written for epochs counted from 1
        y = np.asarray(values, float)
        if x.shape != y.shape or x.ndim != 1 or x.size < 3:
            raise NasError(f"extrapolating a learning curve needs at least 3 (step, value) pairs; got {x.size}")
        if not np.all(np.isfinite(y)):
            raise NasError(f"a learning curve must be finite; got {y.tolist()}")
        lo, span = float(y.min()), float(np.ptp(y))
        scale = span if span > 0 else max(abs(lo), 1.0)
        z = (y - lo) / scale
        xt = float(target) + 1.0
        fits: list[tuple[CurveFamily, Array, float]] = []
        for fam in self.families:
            got = _fit(fam, x, z)
            if got is not None and np.isfinite(fam.f(np.array([xt]), got[0])[0]):
                fits.append((fam, got[0], got[1]))
        if not fits:
            raise NasError(f"no curve family could be fitted to {y.tolist()}")
        n = x.size
        bic = np.array([n * np.log(max(rss, 1e-12) / n) + fam.k * np.log(n) for fam, _, rss in fits])
        w = np.exp(-(bic - bic.min()) / 2.0)
        w /= w.sum()
        samples = np.empty(self.n_bootstrap)
        for b in range(self.n_bootstrap):
            i = int(rng.choice(len(fits), p=w))
            fam, theta, _ = fits[i]
            fitted = fam.f(x, theta)
            resid = z - fitted
            resid = resid - resid.mean()
            z_star = fitted + rng.choice(resid, size=n, replace=True)
            refit = _fit(fam, x, z_star, starts=(tuple(theta),), max_nfev=30)  # warm start: near the fit
            th = refit[0] if refit is not None else theta
            samples[b] = fam.f(np.array([xt]), th)[0] + rng.choice(resid)
        out = samples * scale + lo
        if self.clip is not None:
            out = np.clip(out, *self.clip)
        return Extrapolation(out, {fam.name: float(wi) for (fam, _, _), wi in zip(fits, w, strict=True)})
