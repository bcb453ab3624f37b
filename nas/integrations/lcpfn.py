"""LC-PFN: learning-curve extrapolation by a prior-data fitted transformer.

Adriaensen, Rakotoarison, Müller & Hutter, "Efficient Bayesian Learning Curve Extrapolation using
Prior-Data Fitted Networks", NeurIPS 2023, train a transformer once, on curves sampled from a prior,
to output the posterior predictive ``p(y_query | x_query, {(x_i, y_i)})`` of a partial curve in one
forward pass -- the prior-data fitted network (PFN) of Müller, Hollmann, Pineda Arango, Grabocka &
Hutter, "Transformers Can Do Bayesian Inference", ICLR 2022. Minimizing the cross-entropy on prior
samples makes the network approximate the Bayesian posterior predictive of that prior. This module
is our own small version of it:

**The prior** (:func:`sample_prior`). A curve lives on epochs ``x = 1..T`` (``T = max_epochs``, 50 by
default) in normalized units ``z`` in [0, 1]. Each curve mixes one to three of the parametric
families of :mod:`nas.integrations.curves` (the families drawn uniformly, their weights from a flat
Dirichlet), each with random shape parameters (e.g. ``pow3``'s ``alpha``, ``exp3``'s rate) and
rescaled to rise from 0 at ``x = 1`` to 1 at ``x = T``: ``g(x) = sum_f w_f (f(x) - f(1)) / (f(T) - f(1))``.
The curve is ``z(x) = y_1 + (y_T - y_1) g(x) + eps``, with ``y_T ~ U(0.02, 1)``, ``y_1 = y_T u``,
``u ~ U(0, 1)``, and Gaussian noise ``eps`` of a log-uniform scale in [1e-3, 0.1], clipped to [0, 1].

**The network** (:class:`CurveTransformer`). Each observed ``(x, z)`` is a token
``phi(x) + W_z z``; each query epoch a token ``phi(x) + q`` (``phi`` a two-layer MLP of ``x / T`` and
``log x / log T``, so any epoch ``<= T`` is encoded the same way whatever the curve's length; ``q``
learned). A pre-norm transformer encoder in which every token attends to the observed tokens only
maps them to ``d_model`` features; each query's feature gives ``n_bins`` logits of a *bar* (Riemann)
distribution: a piecewise-constant density on ``n_bins`` equal-width bins of [0, 1].

**Training** (:func:`train`). Each step draws a batch of prior curves and one cut-off ``n`` in
``1..T-1`` for the batch; epochs ``1..n`` are the context and every epoch ``n+1..T`` is a query, and
the loss is the cross-entropy of the bin holding the query's value (Müller et al.'s training
objective). Adam with a linear warm-up and a cosine decay; the generator of each step is seeded with
``[seed, step]``.

**Units.** The network sees values in [0, 1]. :meth:`LCPFN.predict` takes values in the
objective's units with their ``value_range = (lo, hi)`` (e.g. ``(0, 100)`` for an accuracy in percent),
normalizes ``z = (y - lo) / (hi - lo)`` and reports in the objective's units. A decreasing metric is
negated by the caller with its range, ``(-hi, -lo)`` (:class:`~nas.integrations.pruners.LearningCurvePruner`
does this). Steps are 0-based epochs, as Optuna's ``report`` steps: step ``s`` is epoch ``s + 1``.

**The shipped model** (``nas/integrations/data/lcpfn.npz``) is built by
``python -m nas.integrations.lcpfn build --out nas/integrations/data/lcpfn.npz`` and read by
:meth:`LCPFN.default`. It is a predictor archive (:mod:`predictors.base`: a zip of a JSON header and
``.npy`` arrays, no pickle) named ``"lcpfn"``, whose scalars carry this module's
:data:`FORMAT_VERSION`; a newer version raises :class:`~nas.errors.PredictorVersionError`, a damaged
file :class:`~nas.errors.PredictorFileError`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from nas.errors import NasError, PredictorFileError, PredictorVersionError
from nas.integrations.curves import FAMILIES, CurveFamily

log = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]

#: The version of the LC-PFN weights layout this code reads and writes.
FORMAT_VERSION = 1
#: The predictor name in the archive.
ARCHIVE_NAME = "lcpfn"
#: Where the shipped model lies.
DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "lcpfn.npz"


# --------------------------------------------------------------------------- the prior


def _logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


#: Shape parameters per family, as a full ``theta`` for the family's ``f`` (the affine parameters
#: are fixed: the curve is rescaled afterwards). Each draw covers curves that saturate within a
#: couple of epochs to curves still rising at ``T``.
_SHAPES: dict[str, Callable[[np.random.Generator], tuple[float, ...]]] = {
    "pow3": lambda r: (1.0, 1.0, _logu(r, 0.05, 3.0)),
    "log_power": lambda r: (1.0, r.uniform(-2.0, 4.5), _logu(r, 0.3, 5.0)),
    "exp3": lambda r: (_logu(r, 0.01, 2.0), 0.0, 1.0),
    "pow4": lambda r: (1.0, _logu(r, 0.1, 10.0), _logu(r, 0.1, 10.0), _logu(r, 0.05, 3.0)),
    "mmf": lambda r: (1.0, 0.0, _logu(r, 0.01, 2.0), _logu(r, 0.3, 4.0)),
    "janoschek": lambda r: (1.0, 0.0, _logu(r, 1e-3, 1.0), _logu(r, 0.3, 3.0)),
    "ilog2": lambda r: (1.0, 1.0),
}


@dataclass(frozen=True)
class PriorConfig:
    """The learning-curve prior (see the module docstring): ``max_epochs`` points per curve, up to
    ``max_families`` mixed families, noise scale log-uniform in ``noise``."""

    max_epochs: int = 50
    max_families: int = 3
    noise: tuple[float, float] = (1e-3, 0.1)
    final: tuple[float, float] = (0.02, 1.0)


def sample_prior(n: int, rng: np.random.Generator, config: PriorConfig = PriorConfig(),
                 families: Sequence[CurveFamily] = FAMILIES) -> Array:
    """``n`` normalized curves from the prior, shape ``(n, max_epochs)``, values in [0, 1], epoch 1 first."""
    fams = [f for f in families if f.name in _SHAPES]
    if not fams:
        raise NasError(f"sample_prior: no family with a shape prior among {[f.name for f in families]}; "
                       f"known: {sorted(_SHAPES)}")
    t = config.max_epochs
    x = np.arange(1, t + 1, dtype=np.float64)
    out = np.empty((n, t))
    with np.errstate(all="ignore"):
        for i in range(n):
            k = int(rng.integers(1, min(config.max_families, len(fams)) + 1))
            chosen = rng.choice(len(fams), size=k, replace=False)
            w = rng.dirichlet(np.ones(k))
            g = np.zeros(t)
            for wj, j in zip(w, chosen, strict=True):
                fam = fams[int(j)]
                for _ in range(20):  # redraw a degenerate shape (flat or non-finite over 1..T)
                    y = fam.f(x, np.asarray(_SHAPES[fam.name](rng)))
                    span = y[-1] - y[0]
                    if np.all(np.isfinite(y)) and span > 1e-6:
                        break
                else:
                    y, span = x - 1.0, t - 1.0
                g += wj * (y - y[0]) / span
            y_t = rng.uniform(*config.final)
            y_1 = y_t * rng.uniform()
            sigma = _logu(rng, *config.noise)
            out[i] = np.clip(y_1 + (y_t - y_1) * g + rng.normal(0.0, sigma, t), 0.0, 1.0)
    return out


# --------------------------------------------------------------------------- the network


@dataclass(frozen=True)
class LCPFNConfig:
    """The network's shape: ``max_epochs`` (the longest curve), transformer width, depth, heads,
    feed-forward width, and the number of bins of the output bar distribution on [0, 1]."""

    max_epochs: int = 50
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 128
    n_bins: int = 200


class CurveTransformer(nn.Module):
    """The PFN (see the module docstring).

    ``forward(x_ctx, z_ctx, x_query)``: epochs ``x_ctx`` ``(B, n)`` (1-based, float), values ``z_ctx``
    ``(B, n)`` in [0, 1], query epochs ``x_query`` ``(B, q)``; returns logits ``(B, q, n_bins)``.
    """

    def __init__(self, config: LCPFNConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.epoch = nn.Sequential(nn.Linear(2, d), nn.GELU(), nn.Linear(d, d))
        self.value = nn.Linear(1, d)
        self.query = nn.Parameter(torch.zeros(d))
        layer = nn.TransformerEncoderLayer(d, config.n_heads, config.d_ff, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.n_bins)

    def _phi(self, x: torch.Tensor) -> torch.Tensor:
        t = float(self.config.max_epochs)
        feats = torch.stack([x / t, torch.log(x) / math.log(t)], dim=-1)  # (B, L, 2)
        return self.epoch(feats)  # (B, L, d)

    def forward(self, x_ctx: torch.Tensor, z_ctx: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
        n, q = x_ctx.shape[1], x_query.shape[1]
        ctx = self._phi(x_ctx) + self.value(z_ctx.unsqueeze(-1))  # (B, n, d)
        qry = self._phi(x_query) + self.query  # (B, q, d)
        h = torch.cat([ctx, qry], dim=1)  # (B, n + q, d)
        mask = torch.zeros(n + q, n + q, dtype=torch.bool, device=h.device)
        mask[:, n:] = True  # no token attends to a query: queries are independent of each other
        h = self.encoder(h, mask=mask)
        return self.head(self.norm(h[:, n:]))  # (B, q, n_bins)


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class BarPrediction:
    """A bar (Riemann) distribution of a value: ``probs`` ``(n_bins,)`` on the equal bins of
    ``[lo, hi]`` (the objective's units), uniform within each bin."""

    probs: Array
    lo: float
    hi: float

    @property
    def borders(self) -> Array:
        return np.linspace(self.lo, self.hi, self.probs.size + 1)

    def cdf(self, value: float) -> float:
        """``P(Y <= value)``."""
        pos = (value - self.lo) / (self.hi - self.lo) * self.probs.size
        if pos <= 0:
            return 0.0
        if pos >= self.probs.size:
            return 1.0
        k = int(pos)
        return float(np.sum(self.probs[:k]) + self.probs[k] * (pos - k))

    def prob_greater(self, value: float) -> float:
        """``P(Y > value)``."""
        return 1.0 - self.cdf(value)

    def quantile(self, q: float | npt.ArrayLike) -> Array:
        """The ``q``-quantiles (linear within a bin)."""
        qs = np.atleast_1d(np.asarray(q, float))
        if np.any((qs < 0) | (qs > 1)):
            raise NasError(f"quantiles must be in [0, 1]; got {qs.tolist()}")
        cum = np.concatenate([[0.0], np.cumsum(self.probs)])
        cum /= cum[-1]
        pos = np.interp(qs, cum, np.arange(cum.size, dtype=float))  # position in bins
        return self.lo + pos / self.probs.size * (self.hi - self.lo)

    @property
    def median(self) -> float:
        return float(self.quantile(0.5)[0])

    @property
    def mean(self) -> float:
        b = self.borders
        return float(np.sum(self.probs * (b[:-1] + b[1:]) / 2.0))


class LCPFN:
    """A trained LC-PFN: the extrapolator API around :class:`CurveTransformer` (eval mode, no grad).

    :meth:`predict` gives the bar distribution of the value at ``target``; :meth:`extrapolate` is the
    same call with the signature of :meth:`~nas.integrations.curves.CurveEnsemble.extrapolate` (its
    ``rng`` is unused: the prediction is deterministic).
    """

    def __init__(self, network: CurveTransformer, prior: PriorConfig | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.network = network.eval()
        self.config = network.config
        self.prior = prior or PriorConfig(max_epochs=network.config.max_epochs)
        self.info = dict(info or {})

    @property
    def max_epochs(self) -> int:
        return self.config.max_epochs

    def _steps(self, steps: npt.ArrayLike, targets: Array) -> Array:
        x = np.asarray(steps, float) + 1.0
        if x.ndim != 1 or x.size < 1:
            raise NasError(f"LC-PFN needs the steps of at least one observation as a 1-d array; got shape {x.shape}")
        if np.any(x < 1) or np.any(x > self.max_epochs) or np.any(targets < 0) or np.any(targets >= self.max_epochs):
            raise NasError(f"LC-PFN steps and targets must be in [0, {self.max_epochs - 1}] (0-based epochs of a "
                           f"curve of up to {self.max_epochs}); got steps {x.astype(int) - 1}, targets {targets}")
        return x

    @staticmethod
    def _normalize(values: Array, value_range: tuple[float, float]) -> Array:
        lo, hi = value_range
        if not hi > lo:
            raise NasError(f"value_range must be (lo, hi) with hi > lo; got {value_range}")
        if not np.all(np.isfinite(values)):
            raise NasError(f"a learning curve must be finite; got {values.tolist()}")
        if np.any(values < lo) or np.any(values > hi):
            raise NasError(f"learning-curve values {values.tolist()} are outside value_range {value_range}")
        return (values - lo) / (hi - lo)

    @torch.no_grad()
    def predict_batch(self, steps: npt.ArrayLike, values: npt.ArrayLike, targets: npt.ArrayLike,
                      value_range: tuple[float, float] = (0.0, 1.0)) -> Array:
        """Bin probabilities ``(B, q, n_bins)`` on ``value_range`` for ``B`` curves observed at the same
        ``steps`` ``(n,)``: ``values`` ``(B, n)``, query steps ``targets`` ``(q,)``."""
        v = np.asarray(values, float)
        tg = np.atleast_1d(np.asarray(targets, float))
        x = self._steps(steps, tg)
        if v.ndim != 2 or v.shape[1] != x.size:
            raise NasError(f"predict_batch: values must be (curves, {x.size} steps); got shape {v.shape}")
        zb = torch.as_tensor(self._normalize(v, value_range), dtype=torch.float32)  # (B, n)
        xb = torch.as_tensor(x, dtype=torch.float32).expand(v.shape[0], -1)  # (B, n)
        qb = torch.as_tensor(tg + 1.0, dtype=torch.float32).expand(v.shape[0], -1)  # (B, q)
        logits = self.network(xb, zb, qb)  # (B, q, n_bins)
        return torch.softmax(logits.double(), dim=-1).numpy()

    def predict(self, steps: npt.ArrayLike, values: npt.ArrayLike, target: float,
                value_range: tuple[float, float] = (0.0, 1.0)) -> BarPrediction:
        """The predictive distribution of the value at step ``target`` (0-based) of the curve observed at
        ``steps`` (0-based epochs) with ``values`` in the units of ``value_range``."""
        probs = self.predict_batch(steps, np.asarray(values, float)[None, :], [target], value_range)[0, 0]
        return BarPrediction(probs, float(value_range[0]), float(value_range[1]))

    def extrapolate(self, steps: npt.ArrayLike, values: npt.ArrayLike, target: float,
                    rng: np.random.Generator | None = None,
                    value_range: tuple[float, float] = (0.0, 1.0)) -> BarPrediction:
        """:meth:`predict`, with :meth:`CurveEnsemble.extrapolate`'s argument order (``rng`` is unused)."""
        return self.predict(steps, values, target, value_range)

    # ----------------------------------------------------------------------- files

    def save(self, path: str | Path) -> None:
        """Write the weights and config as a predictor archive named ``"lcpfn"`` (see the module docstring)."""
        from predictors.base import Archive, module_arrays, write_archive

        scalars = {"lcpfn_format_version": FORMAT_VERSION, "prior": dataclasses.asdict(self.prior),
                   "info": self.info}
        write_archive(path, Archive(ARCHIVE_NAME, dataclasses.asdict(self.config), scalars,
                                    module_arrays("network", self.network)))

    @classmethod
    def load(cls, path: str | Path) -> LCPFN:
        """The model saved at ``path``; :class:`PredictorFileError` if it is not a sound LC-PFN file,
        :class:`PredictorVersionError` if it was written by a newer version."""
        from predictors.base import load_module_arrays, read_archive

        archive = read_archive(path, predictor=ARCHIVE_NAME)
        version = archive.scalars.get("lcpfn_format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise PredictorFileError(f"{path}: lcpfn_format_version must be a positive integer; got {version!r}")
        if version > FORMAT_VERSION:
            raise PredictorVersionError(f"{path}: written in LC-PFN format version {version}, newer than the "
                                        f"version this code reads ({FORMAT_VERSION}); upgrade the nas package")
        try:
            config = LCPFNConfig(**archive.config)
            prior_raw = dict(archive.scalars.get("prior", {}))
            kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in prior_raw.items()}
            prior = PriorConfig(**kwargs)
        except TypeError as e:
            raise PredictorFileError(f"{path}: invalid LC-PFN config in the archive: {e}") from e
        network = CurveTransformer(config)
        load_module_arrays("network", network, archive.arrays, path)
        return cls(network, prior, archive.scalars.get("info"))

    @classmethod
    def default(cls) -> LCPFN:
        """The shipped model (``nas/integrations/data/lcpfn.npz``), read once per process."""
        return _default()


@lru_cache(maxsize=1)
def _default() -> LCPFN:
    if not DEFAULT_PATH.is_file():
        raise PredictorFileError(f"{DEFAULT_PATH}: the shipped LC-PFN model is missing; build it with "
                                 f"python -m nas.integrations.lcpfn build --out {DEFAULT_PATH}")
    return LCPFN.load(DEFAULT_PATH)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainConfig:
    """Training: ``steps`` Adam steps of ``batch`` prior curves, peak ``lr`` after ``warmup`` steps, then
    a cosine decay to zero; ``seed`` seeds the network's initialization and every batch."""

    steps: int = 3000
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 200
    seed: int = 0


def train(config: TrainConfig = TrainConfig(), model: LCPFNConfig = LCPFNConfig(),
          prior: PriorConfig | None = None, progress: bool = False) -> LCPFN:
    """Train an LC-PFN on fresh prior samples (see the module docstring); returns it in eval mode."""
    prior = prior or PriorConfig(max_epochs=model.max_epochs)
    if prior.max_epochs != model.max_epochs or model.max_epochs < 2:
        raise NasError(f"train: the prior's max_epochs ({prior.max_epochs}) must equal the network's "
                       f"({model.max_epochs}) and be >= 2")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = CurveTransformer(model)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t = model.max_epochs
    x_all = torch.arange(1, t + 1, dtype=torch.float32)
    from tqdm import tqdm

    bar = tqdm(range(config.steps), desc="LC-PFN", unit="step", disable=not progress, file=sys.stderr)
    t0, ema = time.perf_counter(), float("nan")
    net.train()
    for step in bar:
        rng = np.random.default_rng([config.seed, step])
        curves = torch.as_tensor(sample_prior(config.batch, rng, prior), dtype=torch.float32)  # (B, T)
        n = int(rng.integers(1, t))  # context epochs 1..n, queries n+1..T
        xc, xq = x_all[:n].expand(config.batch, -1), x_all[n:].expand(config.batch, -1)
        logits = net(xc, curves[:, :n], xq)  # (B, T - n, n_bins)
        target = (curves[:, n:] * model.n_bins).long().clamp(0, model.n_bins - 1)  # (B, T - n)
        loss = nn.functional.cross_entropy(logits.reshape(-1, model.n_bins), target.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        val = loss.item()
        ema = val if math.isnan(ema) else 0.98 * ema + 0.02 * val
        if step % 50 == 0:
            bar.set_postfix(loss=f"{ema:.3f}")
    seconds = time.perf_counter() - t0
    log.info("LC-PFN trained: %d steps in %.0f s, final loss (EMA) %.4f", config.steps, seconds, ema)
    info = {"train": dataclasses.asdict(config), "seconds": round(seconds, 1), "final_loss": round(ema, 4),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    return LCPFN(net, prior, info)


# --------------------------------------------------------------------------- evaluation and CLI


def heldout_mae(model: LCPFN, n_curves: int = 256, seed: int = 12345,
                cutoffs: Sequence[int] = (5, 10, 20), target: int | None = None) -> dict[str, dict[str, float]]:
    """Mean absolute error (normalized units) of the predicted median final value against the last
    observed value, on ``n_curves`` prior curves from a seed stream the training never uses."""
    curves = sample_prior(n_curves, np.random.default_rng([seed, 2**31]), model.prior)
    last = model.max_epochs - 1 if target is None else target
    out: dict[str, dict[str, float]] = {}
    for n in cutoffs:
        probs = model.predict_batch(np.arange(n), curves[:, :n], [last])[:, 0]  # (N, n_bins)
        med = np.array([BarPrediction(p, 0.0, 1.0).median for p in probs])
        out[str(n)] = {"lcpfn": float(np.mean(np.abs(med - curves[:, last]))),
                       "last_value": float(np.mean(np.abs(curves[:, n - 1] - curves[:, last])))}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nas.integrations.lcpfn", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train the LC-PFN on prior curves and save it")
    b.add_argument("--out", default=str(DEFAULT_PATH))
    b.add_argument("--steps", type=int, default=TrainConfig.steps)
    b.add_argument("--batch", type=int, default=TrainConfig.batch)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    model = train(TrainConfig(steps=args.steps, batch=args.batch, seed=args.seed), progress=True)
    model.save(args.out)
    size = Path(args.out).stat().st_size
    print(f"saved {args.out} ({size / 1e6:.2f} MB) after {model.info['seconds']} s of training")
    for n, r in heldout_mae(model).items():
        print(f"held-out prior curves, {n} epochs seen, final epoch {model.max_epochs}: MAE LC-PFN median "
              f"{r['lcpfn']:.4f}, last value {r['last_value']:.4f} (normalized units)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
