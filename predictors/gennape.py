"""A GENNAPE-style predictor: contrastive graph encoder, fuzzy clusters, membership-weighted MLP heads.

Mills et al., "GENNAPE: Towards Generalized Neural Architecture Performance Estimators", AAAI 2023.
The public repository does not hold the method; this follows the paper's description:

1. **Encoder.** A GNN over the computation graph of atomic ops (:class:`~predictors.encoders.GraphEncoder`,
   GINE or GATv2 layers on :func:`~predictors.encoders.graph_data`, mean+max pooling) gives an
   embedding ``e`` ``(B, embed_dim)``. It is pretrained with NT-Xent on views that preserve the
   computation (:mod:`predictors.contrastive`), on the fitting graphs or on any unlabelled graphs
   given to :meth:`GennapePredictor.pretrain` first.
2. **Fuzzy clusters.** Fuzzy c-means (:mod:`predictors.fuzzy`) on the standardized embeddings of the
   fitting graphs gives ``K`` centres; a graph's membership is ``u`` ``(K,)``, ``sum_k u_k = 1``.
3. **Heads.** ``K`` MLPs map ``x = [e, g, f]`` (standardized embedding, graph-level features of
   :func:`~predictors.encoders.global_features`, and the optional per-architecture ``features``,
   e.g. zero-cost proxy scores, scaled as under "Features" below) to a score. Head ``k`` minimizes
   the membership-weighted loss

   .. math::
       \\mathcal{L}_k = \\frac{\\sum_i u_{ik}\\,(\\hat y_{ik} - y_i)^2}{\\sum_i u_{ik}}
         + \\lambda \\frac{\\sum_{y_i > y_j} u_{ik} u_{jk}\\,\\ell(\\hat y_{ik} - \\hat y_{jk})}
                            {\\sum_{y_i > y_j} u_{ik} u_{jk}}

   on standardized targets, where the ranking term is off (``rank_loss="none"``), pairwise hinge
   ``ℓ(d) = max(0, δ - d)``, pairwise logistic (RankNet, Burges et al. 2005) ``ℓ(d) = log(1 + e^{-d})``,
   or, for ``"listnet"`` (Cao et al., ICML 2007), the cross entropy between the top-one distribution
   of the truth, ``softmax(y)``, and that of head ``k`` tilted by the memberships,
   ``softmax(ŷ_k + log u_k)`` (so a graph far from cluster ``k`` hardly counts for head ``k``).
4. **Prediction.** A member predicts ``μ = sum_k u_k ŷ_k`` with spread ``σ² = sum_k u_k (ŷ_k - μ)²``.
5. **Members.** ``members`` independent copies of 1-4 (own encoder initialization, views, clusters
   and heads; an addition to the paper) are averaged: ``mean = avg_m μ_m`` and, by the law of total
   variance, ``std = sqrt(avg_m σ²_m + var_m μ_m)``, in the units of ``y``. On NB201 with 100
   training architectures, four members raised Spearman's ρ by about 0.02 over one (two splits).

**Features.** The optional ``features`` ``(n, f)`` do not enter as the other side inputs do (mean and
standard deviation). With ``feature_scaling="robust"`` (the default) each column is centred on its median
over the fitting rows and divided by ``IQR / 1.349`` (the standard deviation, for a normal sample; the
standard deviation where the IQR is 0), and then every feature column is multiplied by ``feature_scale``
(default 3) before it joins the heads' input; NaN still becomes 0, the centre. Why:

* Zero-cost proxies are extreme on the few broken networks (about 10 % accuracy on NB201: jacov
  and epe_nas lie tens of IQRs out even after ``sign(x) log(1 + |x|)``). A mean/std scaling lets
  those rows set the scale and squeezes the other networks, whose order is what ρ measures, into a
  narrow band (jacov's standard deviation is 4 times its IQR-based spread on 100 NB201 networks).
  The median and IQR come from the bulk; the outliers stay outliers, so a head can still rank the
  broken networks last. (A rank-gauss transform, which also removes the squeeze, cost ρ: it clamps
  those rows to the bulk's edge.)
* The embedding gives 32 unit-variance columns against the 12 proxies. Scaling a column by ``c`` is,
  for AdamW, a ``c`` times larger initial weight, learning rate and prior width for that column, so
  ``feature_scale`` is a prior saying a proxy column carries more than an embedding column.

Without ``features`` neither setting does anything (the heads' input is the same, bit for bit);
``feature_scaling="standard", feature_scale=1`` gives the behaviour before them, and predictors saved
before them load with those values.

Measured on the benchmark's ``curves_zc`` split (the 725 NASLib-sample NB201 architectures, 100 training
and 625 test, CIFAR-10 test accuracy, Spearman's ρ, seeds 5-14, one thread, about 36 s per fit):
``gennape+zc`` 0.915 ± 0.011 before, 0.929 ± 0.012 with the defaults (better on all 10 seeds, by
0.014 ± 0.010); ``gennape`` without features 0.894 ± 0.015, unchanged. On the same seeds, also tried and
not kept (ρ of ``gennape+zc``): a rank-gauss transform of the features 0.908; a ridge fit on the features
whose residual the heads learn 0.919; a per-head linear (wide) term on the features 0.916, and no gain
on top of the robust scaling (0.929); the features in the fuzzy c-means input 0.915; mean/std scaling
times 3 or 6, 0.921 and 0.922; robust scaling times 1, 2 or 6: 0.925, 0.929 and 0.926.

The encoder is frozen after pretraining unless ``finetune_epochs > 0``; then a copy is trained with the
heads (at ``encoder_lr``) while the memberships keep coming from the pretrained encoder, so the
clusters stay those that were fitted.

Measured (NB201 CIFAR-10 test accuracy, 100 training and 1,000 test architectures, 5 seeds, one
thread): Spearman's ρ 0.901 ± 0.006 with the defaults, and 0.907 ± 0.006 with ``pretrain_epochs=0``
(randomly initialized, frozen encoders) in 2 s instead of 30 s per fit. With these weak
computation-preserving views the contrastive pretraining did not help on NB201; it is kept because it
is the method, and for spaces and encoders where it may.

Cost: each member pretrains its own encoder, so fitting takes about ``members`` times one encoder's
pretraining (some seconds per 100 NB201 graphs and 20 epochs on one CPU thread) plus the heads.

Everything random (parameter initialization, augmentation, batching, fuzzy c-means) draws from
generators seeded from ``config.seed`` (one stream per member); with ``config.threads`` set, torch runs
with that many threads during fit and predict. The same seed and thread count give the same predictions
in a fresh process.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
    load_module_arrays,
    module_arrays,
    read_archive,
    require,
    require_finite,
    torch_threads,
    warnings_off,
    write_archive,
)
from predictors.contrastive import PretrainSettings, pretrain
from predictors.encoders import CONVS, GLOBAL_FEATURES, GraphEncoder, collate, global_features, graph_data
from predictors.fuzzy import fuzzy_cmeans, memberships

log = logging.getLogger(__name__)

RANK_LOSSES: tuple[str, ...] = ("none", "hinge", "logistic", "listnet")
FEATURE_SCALINGS: tuple[str, ...] = ("standard", "robust")
#: The values of settings added later that reproduce the predictors saved before them (see ``load``).
_LEGACY: dict[str, Any] = {"feature_scaling": "standard", "feature_scale": 1.0}


@dataclass(frozen=True)
class GennapeConfig:
    """Settings of :class:`GennapePredictor` (all plain values, saved with the predictor)."""

    # encoder
    conv: str = "gine"
    hidden: int = 64
    layers: int = 4
    embed_dim: int = 32
    # contrastive pretraining
    pretrain_epochs: int = 20
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3
    temperature: float = 0.1
    views: int = 2
    aug_p: float = 0.5
    jitter: float = 0.0
    # fuzzy clusters and heads
    clusters: int = 3
    fuzziness: float = 2.0
    head_hidden: int = 64
    epochs: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    rank_loss: str = "logistic"
    rank_weight: float = 3.0
    hinge_margin: float = 0.1
    use_globals: bool = True
    # how the optional per-architecture ``features`` enter the heads (see "Features" in the module docstring)
    feature_scaling: str = "robust"
    feature_scale: float = 3.0
    # optional end-to-end fine-tuning of a copy of the encoder with the heads
    finetune_epochs: int = 0
    encoder_lr: float = 3e-4
    # independent encoder + clusters + heads members, averaged
    members: int = 4
    # reproducibility
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.conv not in CONVS:
            raise PredictorError(f"conv must be one of {CONVS}; got {self.conv!r}")
        if self.rank_loss not in RANK_LOSSES:
            raise PredictorError(f"rank_loss must be one of {RANK_LOSSES}; got {self.rank_loss!r}")
        if self.feature_scaling not in FEATURE_SCALINGS:
            raise PredictorError(f"feature_scaling must be one of {FEATURE_SCALINGS}; got {self.feature_scaling!r}")
        if not self.feature_scale > 0:
            raise PredictorError(f"feature_scale must be > 0; got {self.feature_scale}")
        if self.clusters < 1 or self.fuzziness <= 1.0:
            raise PredictorError(f"need clusters >= 1 and fuzziness > 1; got {self.clusters}, {self.fuzziness}")
        for name in ("hidden", "layers", "embed_dim", "head_hidden", "epochs", "batch_size", "members"):
            if getattr(self, name) < 1:
                raise PredictorError(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("pretrain_epochs", "finetune_epochs", "views", "lr", "pretrain_lr", "encoder_lr", "weight_decay",
                     "rank_weight", "hinge_margin", "jitter"):
            if not getattr(self, name) >= 0:
                raise PredictorError(f"{name} must be >= 0; got {getattr(self, name)}")
        if not (self.temperature > 0 and 0 <= self.aug_p <= 1):
            raise PredictorError(f"need temperature > 0 and 0 <= aug_p <= 1; got {self.temperature}, {self.aug_p}")
        if self.pretrain_epochs > 0 and (self.views < 1 or self.pretrain_batch < 2):
            raise PredictorError(f"contrastive pretraining needs views >= 1 (a graph and one view make a positive "
                                 f"pair) and pretrain_batch >= 2; got {self.views}, {self.pretrain_batch}")


class _Heads(nn.Module):
    """``K`` independent MLP heads, evaluated together: ``(B, in_dim)`` -> ``(B, K)``."""

    def __init__(self, in_dim: int, hidden: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.w1 = nn.Parameter(torch.empty(k, in_dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(k, 1, hidden))
        self.w2 = nn.Parameter(torch.empty(k, hidden, 1))
        self.b2 = nn.Parameter(torch.zeros(k, 1, 1))

    def reset(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            for w in (self.w1, self.w2):
                bound = 1.0 / float(w.shape[1]) ** 0.5  # PyTorch's default for Linear, drawn from our generator
                w.uniform_(-bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(torch.einsum("bi,kih->kbh", x, self.w1) + self.b1)  # (K, B, hidden)
        return (torch.bmm(h, self.w2) + self.b2).squeeze(-1).T  # (B, K)


class _Member:
    """One encoder, its fuzzy clusters and its heads, with its own random streams."""

    def __init__(self, cfg: GennapeConfig, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # torch_geometric layers initialize from the global RNG
            self.encoder = GraphEncoder(cfg.hidden, cfg.layers, cfg.embed_dim, cfg.conv)
        self.encoder.eval()
        self.tuned: GraphEncoder | None = None  # the fine-tuned copy, when finetune_epochs > 0
        self.heads: _Heads | None = None
        self.centres = np.zeros((0, cfg.embed_dim))
        self.scaler = Standardizer(np.zeros(cfg.embed_dim), np.ones(cfg.embed_dim))
        # With a fine-tuned copy: ``tuned_frame`` is how the heads learned to read its embedding (the
        # fitting statistics of the frozen one, kept when ``adapt`` replaces ``scaler``);
        # ``tuned_source`` its own statistics on the fitting graphs; ``tuned_target`` those on the graphs
        # of the last ``adapt``, None before one.
        self.tuned_frame: Standardizer | None = None
        self.tuned_source: Standardizer | None = None
        self.tuned_target: Standardizer | None = None

    def tuned_inputs(self, data: Sequence[Any]) -> FloatArray:
        """The heads' reading of the fine-tuned encoder's embedding of ``data``; after ``adapt``, each
        embedding is first placed where it stands within the adapted graphs, in the fitting graphs'
        distribution, as ``adapt`` does for the frozen encoder's."""
        assert self.tuned is not None and self.tuned_frame is not None
        emb = _embed(self.tuned, data)
        if self.tuned_target is not None:
            assert self.tuned_source is not None
            emb = self.tuned_target.transform(emb) * self.tuned_source.scale + self.tuned_source.mean
        return self.tuned_frame.transform(emb)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        assert self.heads is not None
        out = {**module_arrays(f"{prefix}/encoder", self.encoder), **module_arrays(f"{prefix}/heads", self.heads),
               f"{prefix}/centres": self.centres, f"{prefix}/emb_mean": self.scaler.mean,
               f"{prefix}/emb_scale": self.scaler.scale}
        if self.tuned is not None:
            out.update(module_arrays(f"{prefix}/tuned", self.tuned))
            for name in ("frame", "source", "target"):
                st = getattr(self, f"tuned_{name}")
                if st is not None:
                    out.update({f"{prefix}/tuned_{name}_mean": st.mean, f"{prefix}/tuned_{name}_scale": st.scale})
        return out


@PREDICTORS.register("gennape")
class GennapePredictor:
    """GENNAPE-style predictor (see the module docstring). ``config`` or keyword overrides of it."""

    name = "gennape"

    def __init__(self, config: GennapeConfig | None = None, **overrides: Any) -> None:
        base = config or GennapeConfig()
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        cfg = self.config
        seeds = np.random.SeedSequence(cfg.seed).generate_state(cfg.members)  # independent member streams
        self._members = [_Member(cfg, int(s)) for s in seeds]
        self.pretrain_losses: list[list[float]] = []
        self._pretrained = False
        self._fitted = False
        self._in_scaler = Standardizer(np.zeros(0), np.ones(0))
        self._y_mean, self._y_scale = 0.0, 1.0
        self._n_features = 0
        #: Called as ``progress(stage, done, total)`` after each member's pretraining (``"pretrain"``) and
        #: head fitting (``"fit"``); the CLI draws its progress bar from it. Not saved.
        self.progress: Callable[[str, int, int], None] | None = None

    # ------------------------------------------------------------------ pretraining
    def pretrain(self, graphs: Sequence[ArchGraph]) -> GennapePredictor:
        """Contrastive pretraining of every member's encoder on unlabelled ``graphs`` (at least 2); ``fit``
        skips its own pretraining afterwards. Returns ``self``; ``pretrain_losses[m]`` holds member ``m``'s
        NT-Xent per epoch."""
        cfg = self.config
        graphs = check_graphs(graphs)
        settings = PretrainSettings(cfg.pretrain_epochs, cfg.pretrain_batch, cfg.pretrain_lr, cfg.temperature,
                                    cfg.views, cfg.aug_p, cfg.jitter)
        with torch_threads(cfg.threads):
            data = [graph_data(g) for g in graphs]
            self.pretrain_losses = []
            for k, m in enumerate(self._members):
                self.pretrain_losses.append(pretrain(m.encoder, graphs, settings, m.rng, m.gen, data=data))
                if self.progress is not None:
                    self.progress("pretrain", k + 1, cfg.members)
        self._pretrained = True
        return self

    # ------------------------------------------------------------------ fit / predict
    def fit(self, graphs: Sequence[ArchGraph], y: npt.ArrayLike, *,
            features: npt.ArrayLike | None = None) -> GennapePredictor:
        cfg = self.config
        graphs = check_graphs(graphs)
        target = check_targets(graphs, y, minimum=max(2, cfg.clusters))
        feats = check_features(features, len(graphs))
        self._fitted = False  # until the end: a fit that raises leaves no half-replaced model behind
        if not self._pretrained and cfg.pretrain_epochs > 0:
            self.pretrain(graphs)
        self._n_features = 0 if feats is None else feats.shape[1]
        side = self._side_inputs(graphs, feats)  # (n, G + f)
        self._in_scaler = self._fit_in_scaler(side)
        self._y_mean, self._y_scale = float(target.mean()), float(target.std()) or 1.0
        yz = torch.from_numpy((target - self._y_mean) / self._y_scale).float()
        side_t = torch.from_numpy(self._scaled(side)).float()
        with torch_threads(cfg.threads):
            data = [graph_data(g) for g in graphs]
            for k, member in enumerate(self._members):
                self._fit_member(member, data, side_t, yz)
                log.debug("gennape member %d/%d fitted on %d graphs", k + 1, cfg.members, len(graphs))
                if self.progress is not None:
                    self.progress("fit", k + 1, cfg.members)
        self._fitted = True
        return self

    def _fit_member(self, member: _Member, data: Sequence[Any], side: Tensor, yz: Tensor) -> None:
        cfg = self.config
        emb = _embed(member.encoder, data)  # (n, embed_dim)
        member.scaler = Standardizer.fit(emb)
        z = member.scaler.transform(emb)
        fcm = fuzzy_cmeans(z, cfg.clusters, m=cfg.fuzziness, rng=member.rng)
        member.centres = fcm.centres
        u = torch.from_numpy(fcm.u).float()
        member.heads = _Heads(cfg.embed_dim + side.shape[1], cfg.head_hidden, cfg.clusters)
        member.heads.reset(member.gen)
        self._train_heads(member, torch.from_numpy(z).float(), side, yz, u)
        member.tuned = member.tuned_frame = member.tuned_source = member.tuned_target = None
        if cfg.finetune_epochs > 0:
            member.tuned = self._finetune(member, data, side, yz, u)
            member.tuned_frame, member.tuned_source = member.scaler, Standardizer.fit(_embed(member.tuned, data))

    def predict(self, graphs: Sequence[ArchGraph], *,
                features: npt.ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
        """``mean`` averages the members' membership-weighted head averages; ``std`` combines the spread of
        the heads within a member and of the members (law of total variance), in the units of ``y``."""
        if not self._fitted:
            raise PredictorError("GennapePredictor.predict before fit (or load)")
        graphs = check_graphs(graphs)
        feats = check_features(features, len(graphs), width=self._n_features)
        if not graphs:
            return np.zeros(0), np.zeros(0)
        side = torch.from_numpy(self._scaled(self._side_inputs(graphs, feats))).float()
        means, variances = [], []
        with torch_threads(self.config.threads), torch.no_grad():
            data = [graph_data(g) for g in graphs]
            for member in self._members:
                assert member.heads is not None
                z = member.scaler.transform(_embed(member.encoder, data))
                u = memberships(z, member.centres, self.config.fuzziness)  # (n, K)
                if member.tuned is not None:
                    z = member.tuned_inputs(data)
                heads = member.heads(torch.cat([torch.from_numpy(z).float(), side], dim=1)).double().numpy()  # (n, K)
                mean = (u * heads).sum(axis=1)
                means.append(mean)
                variances.append((u * (heads - mean[:, None]) ** 2).sum(axis=1))
        m = np.mean(means, axis=0)
        var = np.mean(variances, axis=0) + np.var(means, axis=0)
        return m * self._y_scale + self._y_mean, np.sqrt(np.maximum(var, 0.0)) * self._y_scale

    def adapt(self, graphs: Sequence[ArchGraph], *, features: npt.ArrayLike | None = None) -> GennapePredictor:
        """Re-standardize the heads' inputs on unlabelled ``graphs`` of the domain to be predicted.

        A fitted predictor standardizes its inputs (each member's embedding, the graph-level features
        and ``features``) with the statistics of the fitting graphs. Across search spaces those inputs
        shift wholesale (an NB101 network has 10-100 times the parameters of an NB201 one), so a head
        fitted on one space reads every graph of the other as far outside what it saw. ``adapt``
        replaces the statistics by those of ``graphs`` (at least 2; labels are not used), so a graph
        is read by where it stands *within its own space* -- the per-domain feature alignment of
        unsupervised domain adaptation (e.g. AdaBN, Li et al. 2018, for batch-norm statistics).
        Ranks transfer this way, not absolute values: use it for zero-shot ranking of another space,
        and fit again (or load the saved predictor) to predict the original space. A fine-tuned encoder
        (``finetune_epochs > 0``), which the heads read in the frame of the frozen one, is aligned the
        same way: its embedding standardized on ``graphs``, then placed in its distribution on the
        fitting graphs. Returns ``self``.
        """
        graphs, feats = check_adapt_inputs("GennapePredictor", self._fitted, graphs, features, self._n_features)
        if any(m.tuned is not None and m.tuned_source is None for m in self._members):
            raise PredictorError("GennapePredictor.adapt: this predictor's fine-tuned encoders were saved without "
                                 "their statistics on the fitting graphs (an older file); fit it again to adapt it")
        in_scaler = self._fit_in_scaler(self._side_inputs(graphs, feats))
        with torch_threads(self.config.threads), torch.no_grad():  # all computed, then all set (or nothing)
            data = [graph_data(g) for g in graphs]
            scalers = [(Standardizer.fit(_embed(m.encoder, data)),
                        None if m.tuned is None else Standardizer.fit(_embed(m.tuned, data))) for m in self._members]
        self._in_scaler = in_scaler
        for member, (scaler, tuned_target) in zip(self._members, scalers, strict=True):
            member.scaler = scaler
            if tuned_target is not None:
                member.tuned_target = tuned_target
        return self

    def finetune(self, graphs: Sequence[ArchGraph], y: npt.ArrayLike, *, features: npt.ArrayLike | None = None,
                 epochs: int | None = None) -> GennapePredictor:
        """Fine-tune a fitted predictor on a few labelled ``graphs`` of a new domain (another space, another
        target).

        The encoders, the cluster centres and the input standardization stay as they are (call
        :meth:`adapt` on the new domain's unlabelled graphs first when it is another space); the targets
        are standardized anew on ``y``, since a source's accuracies say nothing of the scale of the new
        ones; and every member's heads go on training from their fitted weights on ``graphs`` for
        ``epochs`` (default ``config.epochs``) with the fitting loss and schedule. So the heads start
        from what the source taught them instead of from a random draw, which is the difference from
        fitting on ``graphs`` alone. Returns ``self``.

        Measured (``python -m benchmarks.predictors --experiments zeroshot``, key ``gennape+tune50``; 500
        NB201 architectures, then 50 of the target space, the rest of it tested, Spearman's ρ over 5
        seeds): NB301 0.719 ± 0.026 against 0.690 ± 0.050 for the 50 alone and 0.588 ± 0.054 for one
        fit on the source and the 50 together; NB101 0.890 ± 0.030 against 0.892 and 0.908.
        """
        if not self._fitted:
            raise PredictorError("GennapePredictor.finetune before fit (or load)")
        cfg = self.config
        graphs = check_graphs(graphs)
        target = check_targets(graphs, y, minimum=2)
        feats = check_features(features, len(graphs), width=self._n_features)
        if self._n_features and feats is None:
            raise PredictorError(f"GennapePredictor.finetune: the predictor was fitted with {self._n_features} "
                                 "feature columns; pass the graphs' features too")
        if epochs is not None and epochs < 1:
            raise PredictorError(f"finetune epochs must be >= 1; got {epochs}")
        self._fitted = False  # until the end: a fine-tuning that raises leaves no half-tuned heads in use
        self._y_mean, self._y_scale = float(target.mean()), float(target.std()) or 1.0
        yz = torch.from_numpy((target - self._y_mean) / self._y_scale).float()
        side = torch.from_numpy(self._scaled(self._side_inputs(graphs, feats))).float()
        with torch_threads(cfg.threads):
            data = [graph_data(g) for g in graphs]
            for member in self._members:
                z = member.scaler.transform(_embed(member.encoder, data))
                u = torch.from_numpy(memberships(z, member.centres, cfg.fuzziness)).float()
                if member.tuned is not None:  # the heads read the fine-tuned encoder's embedding
                    z = member.tuned_inputs(data)
                self._train_heads(member, torch.from_numpy(z).float(), side, yz, u, epochs=epochs)
        self._fitted = True
        return self

    def memberships(self, graphs: Sequence[ArchGraph]) -> FloatArray:
        """Fuzzy memberships ``(members, n, K)`` of ``graphs`` in each member's clusters."""
        if not self._fitted:
            raise PredictorError("GennapePredictor.memberships before fit (or load)")
        data = [graph_data(g) for g in check_graphs(graphs)]
        with torch_threads(self.config.threads):
            return np.stack([memberships(m.scaler.transform(_embed(m.encoder, data)), m.centres, self.config.fuzziness)
                             for m in self._members])

    # ------------------------------------------------------------------ internals
    def _side_inputs(self, graphs: Sequence[ArchGraph], feats: FloatArray | None) -> FloatArray:
        cols = []
        if self.config.use_globals:
            cols.append(np.stack([global_features(g) for g in graphs]))  # (n, G)
        if feats is not None:
            cols.append(feats)
        return np.concatenate(cols, axis=1) if cols else np.zeros((len(graphs), 0))

    def _fit_in_scaler(self, side: FloatArray) -> Standardizer:
        """Column statistics of the side inputs ``(n, G + f)``: mean and standard deviation, except that with
        ``feature_scaling="robust"`` the ``f`` feature columns take the median and ``IQR / 1.349`` (which is the
        standard deviation for a normal sample), falling back to the standard deviation where the IQR is 0."""
        scaler = Standardizer.fit(side)
        f = self._n_features
        if self.config.feature_scaling == "robust" and f:
            with warnings_off():  # an all-NaN column
                q1, med, q3 = np.nanpercentile(side[:, side.shape[1] - f:], [25, 50, 75], axis=0)  # (f,) each
            iqr = (q3 - q1) / 1.349
            scaler.mean[-f:] = np.where(np.isfinite(med), med, 0.0)
            scaler.scale[-f:] = np.where(np.isfinite(iqr) & (iqr > 1e-12), iqr, scaler.scale[-f:])
        return scaler

    def _scaled(self, side: FloatArray) -> FloatArray:
        """The heads' side inputs: ``side`` ``(n, G + f)`` standardized, the feature columns times ``feature_scale``."""
        out = self._in_scaler.transform(side)
        f = self._n_features
        if f:
            out[:, out.shape[1] - f:] *= self.config.feature_scale
        return out

    def _loss(self, pred: Tensor, yz: Tensor, u: Tensor) -> Tensor:
        """The per-head losses of the module docstring, summed over heads.

        ``pred`` ``(B, K)`` head outputs, ``yz`` ``(B,)`` standardized targets, ``u`` ``(B, K)`` memberships.
        """
        cfg = self.config
        w = u / u.sum(dim=0, keepdim=True).clamp_min(1e-12)
        loss = (w * (pred - yz[:, None]) ** 2).sum(dim=0)  # (K,)
        if cfg.rank_loss == "none" or cfg.rank_weight == 0:
            return loss.sum()
        if cfg.rank_loss == "listnet":
            target = torch.softmax(yz, dim=0)[:, None]  # (B, 1) top-one probabilities of the truth
            logp = torch.log_softmax(pred + torch.log(u.clamp_min(1e-12)), dim=0)  # (B, K)
            rank = -(target * logp).sum(dim=0)
        else:
            better = (yz[:, None] > yz[None, :]).float()  # (B, B): i ranks above j
            diff = pred[:, None, :] - pred[None, :, :]  # (B, B, K)
            if cfg.rank_loss == "hinge":
                per = torch.relu(cfg.hinge_margin - diff)
            else:
                per = F.softplus(-diff)
            pw = better[:, :, None] * u[:, None, :] * u[None, :, :]  # (B, B, K)
            rank = (pw * per).sum(dim=(0, 1)) / pw.sum(dim=(0, 1)).clamp_min(1e-12)
        return (loss + cfg.rank_weight * rank).sum()

    def _batches(self, n: int, gen: torch.Generator) -> list[Tensor]:
        order = torch.randperm(n, generator=gen)
        bs = self.config.batch_size
        if n % bs == 1 and n > bs:
            bs += 1  # no batch of one: a ranking loss has no pair there
        return [order[i:i + bs] for i in range(0, n, bs)]

    def _train_heads(self, member: _Member, z: Tensor, side: Tensor, yz: Tensor, u: Tensor, *,
                     epochs: int | None = None) -> None:
        heads = member.heads
        assert heads is not None
        cfg = self.config
        epochs = epochs or cfg.epochs
        x = torch.cat([z, side], dim=1)  # (n, embed_dim + G + f)
        opt = torch.optim.AdamW(heads.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        heads.train()
        for _ in range(epochs):
            for idx in self._batches(len(yz), member.gen):
                loss = self._loss(heads(x[idx]), yz[idx], u[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        heads.eval()

    def _finetune(self, member: _Member, data: Sequence[Any], side: Tensor, yz: Tensor, u: Tensor) -> GraphEncoder:
        heads = member.heads
        assert heads is not None
        cfg = self.config
        tuned = copy.deepcopy(member.encoder)
        mean = torch.from_numpy(member.scaler.mean).float()
        scale = torch.from_numpy(member.scaler.scale).float()
        # the heads already fit the frozen embedding: they follow the encoder at a tenth of their rate
        opt = torch.optim.AdamW([{"params": tuned.parameters(), "lr": cfg.encoder_lr},
                                 {"params": heads.parameters(), "lr": cfg.lr * 0.1}], weight_decay=cfg.weight_decay)
        tuned.train()
        heads.train()
        for _ in range(cfg.finetune_epochs):
            for idx in self._batches(len(yz), member.gen):
                z = (tuned(collate([data[i] for i in idx.tolist()])) - mean) / scale
                loss = self._loss(heads(torch.cat([z, side[idx]], dim=1)), yz[idx], u[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        tuned.eval()
        heads.eval()
        return tuned

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        if not self._fitted:
            raise PredictorError("cannot save an unfitted GennapePredictor")
        arrays: dict[str, np.ndarray] = {"in_mean": self._in_scaler.mean, "in_scale": self._in_scaler.scale}
        for k, member in enumerate(self._members):
            arrays.update(member.arrays(f"m{k}"))
        scalars = {"y_mean": self._y_mean, "y_scale": self._y_scale, "n_features": self._n_features,
                   "tuned": [m.tuned is not None for m in self._members], "global_features": list(GLOBAL_FEATURES)}
        write_archive(path, Archive(self.name, config_to_json(self.config), scalars, arrays))

    @classmethod
    def load(cls, path: str | Path) -> GennapePredictor:
        archive = read_archive(path, predictor="gennape")
        # a file written before a setting existed was fitted without it: read it with the value that did that
        config = config_from_json(GennapeConfig, {**_LEGACY, **archive.config}, path=path)
        s = archive.scalars
        try:
            y_mean, y_scale, n_features = float(s["y_mean"]), float(s["y_scale"]), int(s["n_features"])
            tuned = [bool(t) for t in s["tuned"]]
        except (KeyError, TypeError, ValueError) as e:
            raise PredictorFileError(f"{path}: missing or invalid fitted scalar: {e!r}") from e
        if len(tuned) != config.members:
            raise PredictorFileError(f"{path}: {len(tuned)} members saved; the config says {config.members}")
        if config.use_globals and s.get("global_features", list(GLOBAL_FEATURES)) != list(GLOBAL_FEATURES):
            raise PredictorFileError(f"{path}: fitted on the graph-level features {s['global_features']}; this "
                                     f"version computes {list(GLOBAL_FEATURES)}")
        per_member = ["centres", "emb_mean", "emb_scale"]
        require(archive, ["in_mean", "in_scale"] + [f"m{k}/{n}" for k in range(config.members) for n in per_member],
                path)
        if not (math.isfinite(y_mean) and math.isfinite(y_scale) and y_scale > 0):
            raise PredictorFileError(f"{path}: invalid target statistics y_mean={y_mean}, y_scale={y_scale}")
        require_finite(archive, path)  # weights and statistics: finite, scales positive
        self = cls(config)
        a = archive.arrays
        side = (len(GLOBAL_FEATURES) if config.use_globals else 0) + n_features
        if a["in_mean"].shape != (side,) or a["in_scale"].shape != (side,):
            raise PredictorFileError(f"{path}: input statistics of width {a['in_mean'].shape}; graph-level "
                                     f"features and {n_features} feature columns make {side}")
        in_dim = a["in_mean"].shape[0] + config.embed_dim
        for k, member in enumerate(self._members):
            load_module_arrays(f"m{k}/encoder", member.encoder, a, path)
            member.heads = _Heads(in_dim, config.head_hidden, config.clusters)
            load_module_arrays(f"m{k}/heads", member.heads, a, path)
            member.heads.eval()
            member.centres = a[f"m{k}/centres"]
            member.scaler = Standardizer(a[f"m{k}/emb_mean"], a[f"m{k}/emb_scale"])
            if tuned[k]:
                member.tuned = copy.deepcopy(member.encoder)
                load_module_arrays(f"m{k}/tuned", member.tuned, a, path)
                member.tuned.eval()
                for name in ("frame", "source", "target"):
                    mean, scale = a.get(f"m{k}/tuned_{name}_mean"), a.get(f"m{k}/tuned_{name}_scale")
                    if mean is None and scale is None:
                        continue
                    if mean is None or scale is None or mean.shape != scale.shape or mean.shape != (config.embed_dim,):
                        raise PredictorFileError(f"{path}: member {k} has an incomplete tuned_{name} standardizer")
                    setattr(member, f"tuned_{name}", Standardizer(mean, scale))
                if member.tuned_frame is None:  # written before the frame was kept: it read by the saved scaler
                    member.tuned_frame = member.scaler
            if member.centres.shape != (config.clusters, config.embed_dim):
                raise PredictorFileError(f"{path}: member {k} has centres of shape {member.centres.shape}")
        self._in_scaler = Standardizer(a["in_mean"], a["in_scale"])
        self._y_mean, self._y_scale, self._n_features = y_mean, y_scale, n_features
        self._pretrained = self._fitted = True
        return self


def _embed(encoder: GraphEncoder, data: Sequence[Any], chunk: int = 256) -> FloatArray:
    """Embeddings ``(n, embed_dim)`` of encoded graphs, in eval mode and without gradients."""
    encoder.eval()
    with torch.no_grad():
        out = [encoder(collate(data[i:i + chunk])) for i in range(0, len(data), chunk)]
    emb = torch.cat(out).double().numpy()
    broken = int((~np.isfinite(emb)).any(axis=1).sum())
    if broken:  # never read as missing values: the encoder itself is broken
        raise PredictorError(f"the graph encoder gives non-finite embeddings for {broken} of {len(emb)} graphs "
                             "(diverged training, or a damaged file)")
    return emb
