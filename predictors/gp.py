"""An exact Gaussian process with one lengthscale per input (ARD), fitted by marginal likelihood.

The kernel on standardized inputs is

.. math::
    k(a, b) = s \\exp\\big(-\\tfrac12 \\sum_j (a_j - b_j)^2 / \\ell_j^2\\big) + c\\,(a \\cdot b + b_0),

plus ``noise`` on the diagonal (and a jitter of 1e-6), on targets standardized to mean 0 and
standard deviation 1 (Rasmussen and Williams, "Gaussian Processes for Machine Learning", 2006,
ch. 2 and 5). The linear term carries what is additive (a latency summed over kernels); the ARD
term carries the interactions, and its lengthscales switch off the inputs that do not matter. The
hyperparameters (log scale, clamped to fixed bounds) maximize the log marginal likelihood with
L-BFGS (torch autograd). scikit-learn's ``GaussianProcessRegressor`` fits the same model, but its
ARD gradient builds an ``(n, n, d)`` tensor: with 500 rows and the 200 inputs of an NB201 graph's
kernel keys, one fit ran for over ten minutes here; this one takes a few seconds. The test suite
checks its likelihood and posterior against scikit-learn's at the same hyperparameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nas.errors import PredictorError

FloatArray = npt.NDArray[np.float64]

#: log-scale bounds of the hyperparameters (in standardized units of inputs and targets)
BOUNDS: dict[str, tuple[float, float]] = {
    "lengthscale": (math.log(1e-2), math.log(1e4)),
    "signal": (math.log(1e-3), math.log(1e3)),
    "linear": (math.log(1e-5), math.log(1e2)),
    "offset": (math.log(1e-3), math.log(1e2)),
    "noise": (math.log(1e-5), math.log(10.0)),
}
JITTER = 1e-6
#: hyperparameter order in :attr:`ArdGP.theta` after the ``d`` log lengthscales
SCALARS = ("signal", "linear", "offset", "noise")
_INIT = {"lengthscale": 3.0, "signal": 1.0, "linear": 0.1, "offset": 1.0, "noise": 0.01}


@dataclass
class ArdGP:
    """Fit with :meth:`fit`; :attr:`theta` (``d`` log lengthscales, then the log of :data:`SCALARS`),
    the training rows and the targets' mean and scale define the fitted model (:meth:`from_state`)."""

    iters: int = 200
    theta: FloatArray = field(default_factory=lambda: np.zeros(0))
    _x: FloatArray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    _y: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)
    _loc: float = 0.0
    _scale: float = 1.0
    _factor: Any = field(default=None, repr=False)  # (theta's bytes, Cholesky factor, weights); torch tensors

    @staticmethod
    def _params(theta: Any, d: int) -> dict[str, Any]:
        """The clamped, exponentiated hyperparameters of ``theta`` (a torch vector)."""
        lo, hi = BOUNDS["lengthscale"]
        out = {"lengthscale": theta[:d].clamp(lo, hi).exp()}
        for i, name in enumerate(SCALARS):
            out[name] = theta[d + i].clamp(*BOUNDS[name]).exp()
        return out

    @staticmethod
    def _kernel(a: Any, b: Any, p: dict[str, Any]) -> Any:
        """``k(a, b)`` without the noise, ``(len(a), len(b))``."""
        import torch

        sa, sb = a / p["lengthscale"], b / p["lengthscale"]
        sq = ((sa * sa).sum(1)[:, None] + (sb * sb).sum(1)[None, :] - 2.0 * sa @ sb.T).clamp_min(0.0)
        return p["signal"] * torch.exp(-0.5 * sq) + p["linear"] * (a @ b.T + p["offset"])

    def _cov(self, x: Any, p: dict[str, Any]) -> Any:
        import torch

        return self._kernel(x, x, p) + (p["noise"] + JITTER) * torch.eye(len(x), dtype=x.dtype)

    def neg_log_likelihood(self, theta: FloatArray) -> float:
        """``-log p(y | X, theta)`` of the standardized fitting targets, with its ``n/2 log 2 pi``."""
        import torch

        with torch.no_grad():
            return float(self._nll(torch.as_tensor(theta, dtype=torch.float64)))

    def _nll(self, theta: Any) -> Any:
        import torch

        x = torch.as_tensor(self._x)
        t = torch.as_tensor((self._y - self._loc) / self._scale)[:, None]
        chol, info = torch.linalg.cholesky_ex(self._cov(x, self._params(theta, x.shape[1])))
        if int(info) != 0:
            raise PredictorError(f"ArdGP: the covariance of {len(x)} rows is not positive definite at these "
                                 "hyperparameters (duplicate rows with too little noise?)")
        alpha = torch.cholesky_solve(t, chol)
        return (0.5 * (t * alpha).sum() + torch.log(torch.diagonal(chol)).sum()
                + 0.5 * len(x) * math.log(2.0 * math.pi))

    def fit(self, x: npt.ArrayLike, y: npt.ArrayLike) -> ArdGP:
        import torch

        xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if xa.ndim != 2 or ya.shape != (xa.shape[0],) or xa.shape[0] < 2:
            raise PredictorError(f"ArdGP.fit needs x (n, d) and y (n,) with n >= 2; got {xa.shape} and {ya.shape}")
        if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
            raise PredictorError("ArdGP.fit: inputs and targets must be finite")
        self._x, self._y = xa, ya
        self._loc, self._scale = float(ya.mean()), float(ya.std()) or 1.0
        d = xa.shape[1]
        init = [math.log(_INIT["lengthscale"])] * d + [math.log(_INIT[n]) for n in SCALARS]
        theta = torch.tensor(init, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=self.iters, line_search_fn="strong_wolfe")

        def closure() -> Any:
            opt.zero_grad()
            loss = self._nll(theta)
            loss.backward()
            return loss

        opt.step(closure)
        lows = [BOUNDS["lengthscale"][0]] * d + [BOUNDS[n][0] for n in SCALARS]
        highs = [BOUNDS["lengthscale"][1]] * d + [BOUNDS[n][1] for n in SCALARS]
        self.theta = np.clip(theta.detach().numpy(), lows, highs)
        self._factor = None
        return self

    @classmethod
    def from_state(cls, theta: FloatArray, x: FloatArray, y: FloatArray) -> ArdGP:
        """The fitted model of :meth:`fit` from what it saves: ``theta``, the rows ``x`` and targets ``y``."""
        theta, x, y = (np.asarray(a, dtype=np.float64) for a in (theta, x, y))
        if x.ndim != 2 or y.shape != (x.shape[0],) or theta.shape != (x.shape[1] + len(SCALARS),):
            raise PredictorError(f"ArdGP state: theta {theta.shape}, x {x.shape} and y {y.shape} do not fit")
        for name, a in (("theta", theta), ("rows", x), ("targets", y)):
            if not np.isfinite(a).all():
                raise PredictorError(f"ArdGP state: {int((~np.isfinite(a)).sum())} non-finite values in its {name}")
        self = cls()
        self.theta, self._x, self._y = theta, x, y
        self._loc, self._scale = float(y.mean()), float(y.std()) or 1.0
        return self

    @property
    def rows(self) -> FloatArray:
        return self._x

    @property
    def targets(self) -> FloatArray:
        return self._y

    def predict(self, x: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Posterior mean and predictive standard deviation (noise included), in the targets' units."""
        import torch

        if self.theta.size == 0:
            raise PredictorError("ArdGP.predict before fit")
        xa = np.asarray(x, dtype=np.float64)
        if xa.ndim != 2 or xa.shape[1] != self._x.shape[1]:
            raise PredictorError(f"ArdGP.predict: rows of width {self._x.shape[1]} expected; got shape {xa.shape}")
        with torch.no_grad():
            train = torch.as_tensor(self._x)
            p = self._params(torch.as_tensor(self.theta), train.shape[1])
            key = self.theta.tobytes()
            if self._factor is None or self._factor[0] != key:  # theta is public: a new one, a new factor
                t = torch.as_tensor((self._y - self._loc) / self._scale)[:, None]
                chol, info = torch.linalg.cholesky_ex(self._cov(train, p))
                if int(info) != 0:
                    raise PredictorError(f"ArdGP: the covariance of its {len(train)} rows is not positive "
                                         "definite at these hyperparameters")
                self._factor = (key, chol, torch.cholesky_solve(t, chol))
            _, chol, alpha = self._factor
            q = torch.as_tensor(xa)
            cross = self._kernel(q, train, p)  # (m, n)
            mean = (cross @ alpha)[:, 0]
            v = torch.linalg.solve_triangular(chol, cross.T, upper=False)  # (n, m)
            prior = p["signal"] + p["linear"] * ((q * q).sum(1) + p["offset"]) + p["noise"]
            var = (prior - (v * v).sum(0)).clamp_min(0.0)
        return (mean.numpy() * self._scale + self._loc).astype(np.float64), \
            (var.sqrt().numpy() * self._scale).astype(np.float64)
