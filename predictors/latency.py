"""Latency predictors: an additive kernel model on the IR, and the choice among the encoders.

``kernel_latency`` follows nn-Meter (Zhang et al., "nn-Meter: Towards Accurate Latency Prediction of
Deep-Learning Model Inference on Diverse Edge Devices", MobiSys 2021): a network's latency is close
to the sum of the latencies of its kernels, and a kernel's latency is a function of its op and its
configuration (kernel size, stride, groups, tensor shape). nn-Meter measures kernels one by one;
we have only whole-network latencies, so the per-kernel costs are learned jointly by regression:

.. math::
    \\hat t(G) = b + \\sum_{k \\in \\mathcal K} w_k\\, c_k(G) + \\sum_{o} v_o\\, \\mathrm{MFLOPs}_o(G),

where ``c_k(G)`` counts the occurrences of key ``k`` in the graph and ``MFLOPs_o`` sums the FLOPs of
the nodes of op type ``o``. The keys (:func:`kernel_keys`) are

* ``N:op|kernel|stride|groups|out shape|arity``: the node itself (nn-Meter's kernel);
* ``E:producer op>node key``: the edge into it (memory traffic between kernels; a ReLU that the IR
  shares between two convolutions shows up here once per convolution);
* ``F:node key|fan-out``: how many consumers read its result (a tensor kept alive for several).

The vocabulary ``K`` is the set of keys of the fitting graphs; at prediction, a key never seen adds
nothing through ``w`` but still counts through the per-op FLOPs term, so a graph with new kernel
configurations is extrapolated by FLOPs instead of ignored (:meth:`KernelLatency.coverage` says how
much of a graph was seen). The weights are ridge regression (Hoerl and Kennard, 1970) with the
penalty chosen by leave-one-out error (scikit-learn's ``RidgeCV``), on ``bags`` bootstrap resamples
(Breiman 1996): ``mean`` is the bag average and ``std`` the spread, in the units of ``y`` (ms).

Why a linear model and not the GNN: measured on NB201 with 500 training and 1,000 test architectures
(``python -m benchmarks.predictors --experiments latency``, one seed, a loaded 2-core machine), the
additive model put more predictions within ±10% than ``graph_gbdt`` (boosted trees on the generic
graph encoding) on all five devices (fpga 0.934 vs 0.907, gold_6226 0.947 vs 0.936, eyeriss 0.72 vs
0.684, raspi4 0.599 vs 0.572, pixel3 0.546 vs 0.515), and more than the GENNAPE-style GNN regressor
on fpga (0.934 vs 0.923) while fitting in about 30 s instead of 9 minutes. NB201 latency is additive
over the cell's ops (on ``fpga`` and ``eyeriss`` the HW-NAS-Bench latency is *exactly* linear in the
literal cell's op counts), which a sum of learned per-kernel costs represents with a handful of
weights, while a GNN must learn the sum from 500 examples. What no model on the IR can see is what
the IR merged (identical stateless ops on one tensor become one node, ``none`` edges vanish): see
the notes in :mod:`benchmarks.predictors`. Where the architecture comes from a space, its literal
genotype (:func:`predictors.data.genotype_onehot`) given as ``features`` adds those ops back as
linear terms: on ``fpga`` and ``eyeriss`` that makes the fit exact.

``runtime_latency`` is the same model with the keys of :func:`runtime_kernel_keys`: the kernels
onnxruntime runs after its graph optimizations, for latency measured with onnxruntime
(``measured``). Those optimizations change what runs: a network whose cells do not depend on their
input is folded to its stem and runs in 0.02 ms, while its IR counts every cell; a Conv with its
Relu, and a residual Add, become one kernel. Its rows are weighted ``1 / y`` (``weighting="inverse"``),
since "within ±10%" counts relative error. A network whose runtime kernels equal those of fitted
networks is predicted by the median of their measured latencies (``lookup=True``), the ridge
covering the rest. The ridge is weakest on the smallest networks (under 0.5 ms: cells of skips,
pools and ``none`` edges, or folded away), and those repeat most: of 1,000 measured NB201
networks, 55% of those under 0.5 ms run the same kernels as another, 21% of those over 1 ms.
On those 1,000 (each the least of 5 passes), 500 to fit and 500 to test, 5 seeds, it put 98.5%
of the predictions within ±10% (the ridge alone 96.7%) against 84.6% for the IR keys
(``python -m benchmarks.predictors --experiments latency --devices "" --measure --measured-passes
5``, see the README). The keys cost an export (a few tenths of a second per new graph, cached by
fingerprint), about what one measurement costs; what the predictor adds is a steady figure: in the
same run, one pass of measurement agreed with the next within ±10% for 88.9% of the networks.

``gp_latency`` replaces the ridge by a Gaussian process (:class:`~predictors.gp.ArdGP`: an RBF term
with one lengthscale per input, plus a linear term, hyperparameters by marginal likelihood) on the
same standardized columns, or on the ``features`` alone when they are given. It is for device tables
whose latency is not a sum over kernels: HW-NAS-Bench's ``pixel3`` and ``raspi4`` measurements
interact across a cell's ops. With the literal genotype as features, 500 to fit and 1,000 to test,
5 seeds (``python -m benchmarks.predictors --experiments latency --no-measured``), it put 63.5% and
63.9% of the predictions within ±10% on ``pixel3`` and ``raspi4``, against 54.1% and 55.2% for
``kernel_latency`` with the same features; ``fpga`` and ``eyeriss`` stay at 100%, and ``gold_6226``
is within a point of the ridge (92.6% against 93.9%). A model with every genotype interaction up to
order 3, fitted on 12,000 architectures, matches 72% and 70% of its own training values: the
tables' noise. On the IR alone it gains a point or two over the ridge (``pixel3`` 54.0% against
52.5%), at 5 s per fit instead of 1.5 s.

Both caches are by fingerprint (:class:`~nas.hardware.MeasuredLatency` and
:func:`runtime_kernel_keys`), which is sound because graphs with one fingerprint export to one
network: the export adds a sum's terms in a canonical order (``canonical_sums`` of
:class:`~nas.ir.torch_module.GraphModule`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import RidgeCV

from nas.errors import PredictorError, PredictorFileError
from nas.ir import ArchGraph
from nas.ir.features import OP_VOCAB
from predictors.base import (
    PREDICTORS,
    Archive,
    FloatArray,
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
from predictors.gp import ArdGP

log = logging.getLogger(__name__)


#: Row weights of the ridge fit: ``"none"``, or ``"inverse"``, ``1 / y``, which moves the fit toward
#: relative error (what "within ±10%" counts) without letting the fastest, noisiest networks rule it
#: as ``1 / y²`` (squared relative error) would.
WEIGHTINGS: tuple[str, ...] = ("none", "inverse")


@dataclass(frozen=True)
class KernelLatencyConfig:
    """Settings of :class:`KernelLatency`. ``keys``: ``"ir"`` counts :func:`kernel_keys` of the IR
    (with ``edge_keys`` and ``fanout_keys``), ``"runtime"`` counts :func:`runtime_kernel_keys` (the
    edge and fan-out settings do not apply). ``weighting``: see :data:`WEIGHTINGS`. ``lookup``: a graph
    whose key counts equal those of fitting graphs (the same kernels, so the same network for the
    runtime keys) is predicted as the median of their latencies instead of by the ridge; only for fits
    without ``features``. ``label`` names what is predicted (``table:pixel3``, ``measured``, ...); it is
    saved with the predictor and shown by the CLI and the cost model. ``model``: ``"ridge"`` (the bagged
    ridge above) or ``"gp"`` (:class:`~predictors.gp.ArdGP` on the same columns, standardized; ``alphas``
    and ``bags`` do not apply, ``std`` is the GP's); with ``gp_inputs="features"`` the GP reads the
    ``features`` alone when they are given (the key counts when they are not). ``gp_iters``: L-BFGS
    iterations of its hyperparameter fit."""

    keys: str = "ir"
    model: str = "ridge"
    gp_inputs: str = "all"
    gp_iters: int = 200
    weighting: str = "none"
    lookup: bool = False
    edge_keys: bool = True
    fanout_keys: bool = True
    flops_terms: bool = True
    alphas: tuple[float, ...] = tuple(float(a) for a in np.logspace(-4, 3, 15))
    bags: int = 5
    seed: int = 0
    label: str = ""
    unit: str = "ms"

    def __post_init__(self) -> None:
        if self.bags < 1 or not self.alphas or min(self.alphas) <= 0:
            raise PredictorError(f"kernel_latency needs bags >= 1 and positive alphas; got {self.bags}, {self.alphas}")
        if self.keys not in ("ir", "runtime"):
            raise PredictorError(f"kernel_latency keys are 'ir' or 'runtime'; got {self.keys!r}")
        if self.weighting not in WEIGHTINGS:
            raise PredictorError(f"kernel_latency weighting is one of {WEIGHTINGS}; got {self.weighting!r}")
        if self.model not in ("ridge", "gp") or self.gp_inputs not in ("all", "features") or self.gp_iters < 1:
            raise PredictorError(f"kernel_latency model is 'ridge' or 'gp', gp_inputs 'all' or 'features', and "
                                 f"gp_iters >= 1; got {self.model!r}, {self.gp_inputs!r}, {self.gp_iters}")
        if self.model == "gp" and self.weighting != "none":
            raise PredictorError("kernel_latency model='gp' takes no row weighting (weighting='none')")


def _node_key(node: Any) -> str:
    a = node.attrs
    shape = tuple(node.out_shapes[0][1:]) if node.out_shapes else ()
    kernel = tuple(a["kernel"]) if "kernel" in a else ""
    stride = tuple(a["stride"]) if "stride" in a else ""
    return f"{node.op}|k{kernel}|s{stride}|g{a.get('groups', '')}|{shape}"


def kernel_keys(graph: ArchGraph, *, edges: bool = True, fanout: bool = True) -> Counter[str]:
    """The key counts ``c_k(G)`` of ``graph`` (see the module docstring)."""
    by_name = {n.name: n for n in graph}
    consumers: Counter[str] = Counter()
    for n in graph:
        for _, r in n.refs:
            consumers[r.node] += 1
    out: Counter[str] = Counter()
    for n in graph:
        key = _node_key(n)
        out[f"N:{key}|in{len(n.inputs)}"] += 1
        if edges:
            for _, r in n.refs:
                out[f"E:{by_name[r.node].op}>{key}"] += 1
        if fanout:
            out[f"F:{key}|out{min(consumers[n.name], 4)}"] += 1
    return out


#: runtime_kernel_keys by graph fingerprint (an export costs a few tenths of a second; keys are small)
_RUNTIME_KEYS: dict[str, Counter[str]] = {}
_RUNTIME_KEYS_MAX = 200_000


def runtime_kernel_keys(graph: ArchGraph) -> Counter[str]:
    """The kernels onnxruntime runs for ``graph`` on this machine (:func:`nas.hardware.runtime_graph`),
    counted by ``R:domain:op|attributes|weight shapes``: the op with its kernel, stride, padding,
    dilation, group and fused-activation attributes, and the shapes of its weight inputs (which give
    a kernel's channels, so a convolution of each stage has its own key). What the optimizer removed
    (a branch whose output does not depend on the input, folded to a constant) costs nothing here,
    and a fused Conv+Relu is one kernel. Ops without weights (Add, pooling, layout reorders) carry no
    shape: their keys pool every stage. Cached by fingerprint for the process."""
    import onnx

    from nas.hardware import runtime_graph

    fp = graph.fingerprint()
    hit = _RUNTIME_KEYS.get(fp)
    if hit is not None:
        return Counter(hit)
    model = runtime_graph(graph)
    shapes = {t.name: tuple(int(d) for d in t.dims) for t in model.graph.initializer}
    out: Counter[str] = Counter()
    for n in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        parts = [f"{n.domain or 'ai.onnx'}:{n.op_type}"]
        for name in ("kernel_shape", "strides", "pads", "dilations", "group", "activation"):
            if name in attrs:
                v = attrs[name]
                v = v.decode() if isinstance(v, bytes) else tuple(v) if isinstance(v, list | tuple) else v
                parts.append(f"{name}={v}")
        parts.append(f"w{[shapes[i] for i in n.input if i in shapes]}")
        out["R:" + "|".join(parts)] += 1
    if len(_RUNTIME_KEYS) < _RUNTIME_KEYS_MAX:
        _RUNTIME_KEYS[fp] = out
    return Counter(out)


def flops_by_op(graph: ArchGraph) -> FloatArray:
    """MFLOPs summed per op type of :data:`~nas.ir.features.OP_VOCAB`, ``(len(OP_VOCAB),)``."""
    index = {op: i for i, op in enumerate(OP_VOCAB)}
    v = np.zeros(len(OP_VOCAB))
    for n in graph:
        i = index.get(n.op)
        if i is not None:
            v[i] += n.flops / 1e6
    return v


def _digest_counts(counts: Counter[str]) -> str:
    """A digest of a key multiset: equal for graphs with equal key counts."""
    return hashlib.sha1(json.dumps(sorted(counts.items())).encode()).hexdigest()


@PREDICTORS.register("kernel_latency")
class KernelLatency:
    """Additive per-kernel latency model (nn-Meter style); see the module docstring."""

    name = "kernel_latency"

    def __init__(self, config: KernelLatencyConfig | None = None, **overrides: Any) -> None:
        base = config or KernelLatencyConfig()
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self.vocab: tuple[str, ...] = ()
        self._coef = np.zeros((0, 0))
        self._intercept = np.zeros(0)
        self._alpha = np.zeros(0)
        self._fill = np.zeros(0)  # per feature column: the fitting mean, for NaN entries
        self._seen: dict[str, float] = {}  # lookup: key-count digest -> median fitting latency
        self._gp: ArdGP | None = None
        self._columns = np.zeros(0, dtype=np.int64)  # gp: the matrix columns it reads (non-constant when fitted)
        self._loc = np.zeros(0)  # gp: their fitting mean and standard deviation
        self._spread = np.zeros(0)
        self._fitted = False

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def unit(self) -> str:
        return self.config.unit

    def _counts(self, graphs: Sequence[ArchGraph]) -> list[Counter[str]]:
        cfg = self.config
        if cfg.keys == "runtime":
            return [runtime_kernel_keys(g) for g in graphs]
        return [kernel_keys(g, edges=cfg.edge_keys, fanout=cfg.fanout_keys) for g in graphs]

    def _matrix(self, graphs: Sequence[ArchGraph], counts: Sequence[Counter[str]],
                feats: FloatArray | None) -> FloatArray:
        col = {k: j for j, k in enumerate(self.vocab)}
        x = np.zeros((len(graphs), len(self.vocab)))
        for i, c in enumerate(counts):
            for k, v in c.items():
                j = col.get(k)
                if j is not None:
                    x[i, j] = v
        if self.config.flops_terms:
            x = np.concatenate([x, np.stack([flops_by_op(g) for g in graphs])], axis=1)  # (n, K + ops)
        if feats is not None:
            x = np.concatenate([x, np.where(np.isnan(feats), self._fill, feats)], axis=1)  # (n, K + ops + f)
        return x

    def fit(self, graphs: Sequence[ArchGraph], y: npt.ArrayLike, *,
            features: npt.ArrayLike | None = None) -> KernelLatency:
        """Fit on latencies ``y`` ``(n,)`` (ms). ``features`` ``(n, f)``, if given, enter as extra linear terms
        (e.g. a cheap measured quantity); NaN entries take the column's fitting mean."""
        graphs = check_graphs(graphs)
        target = check_targets(graphs, y)
        feats = check_features(features, len(graphs))
        self._fitted = False  # until the end: a fit that raises leaves no half-replaced model behind
        if feats is None:
            self._fill = np.zeros(0)
        else:
            with warnings_off():  # an all-NaN column has no mean: it is filled with 0
                self._fill = np.nan_to_num(np.nanmean(feats, axis=0))
        counts = self._counts(graphs)
        self.vocab = tuple(sorted(set().union(*counts)))
        x = self._matrix(graphs, counts, feats)
        self._gp = None
        if self.config.model == "gp":
            self._fit_gp(x, target, feats is not None)
        else:
            self._fit_ridge(x, target)
        self._seen = {}
        if self.config.lookup and feats is None:
            same: dict[str, list[float]] = {}
            for c, v in zip(counts, target, strict=True):
                same.setdefault(_digest_counts(c), []).append(float(v))
            self._seen = {k: float(np.median(v)) for k, v in same.items()}
        self._fitted = True
        return self

    def _fit_gp(self, x: FloatArray, target: FloatArray, has_features: bool) -> None:
        """The GP on the standardized non-constant columns of ``x`` (the feature columns alone with
        ``gp_inputs="features"`` and features given)."""
        first = x.shape[1] - self._fill.size if has_features and self.config.gp_inputs == "features" else 0
        loc, spread = x.mean(axis=0), x.std(axis=0)
        varies = spread > 1e-9 * (np.abs(loc) + 1.0)
        varies[:first] = False
        self._columns = np.flatnonzero(varies)
        self._loc, self._spread = loc[self._columns], spread[self._columns]
        self._gp = ArdGP(iters=self.config.gp_iters).fit(self._gp_rows(x), target)

    def _gp_rows(self, x: FloatArray) -> FloatArray:
        return (x[:, self._columns] - self._loc) / self._spread

    def _fit_ridge(self, x: FloatArray, target: FloatArray) -> None:
        rng = np.random.default_rng(self.config.seed)
        n = len(target)
        bags = [np.arange(n)] if self.config.bags == 1 else [rng.integers(0, n, n) for _ in range(self.config.bags)]
        if self.config.weighting == "inverse" and not (target > 0).all():
            raise PredictorError("kernel_latency weighting='inverse' needs latencies > 0; "
                                 f"got {int((target <= 0).sum())} rows <= 0")
        weight = 1.0 / target if self.config.weighting == "inverse" else None
        coef, intercept, alpha = [], [], []
        for rows in bags:
            model = RidgeCV(alphas=np.array(self.config.alphas)).fit(
                x[rows], target[rows], sample_weight=None if weight is None else weight[rows])
            coef.append(model.coef_)
            intercept.append(float(model.intercept_))
            alpha.append(float(model.alpha_))
        self._coef = np.array(coef, dtype=np.float64)  # (bags, width)
        self._intercept = np.array(intercept, dtype=np.float64)
        self._alpha = np.array(alpha, dtype=np.float64)

    def predict(self, graphs: Sequence[ArchGraph], *,
                features: npt.ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
        """``(mean, std)`` in ms, ``(n,)`` each; the mean is clipped at 0 (a latency is never negative)."""
        if not self._fitted:
            raise PredictorError("KernelLatency.predict before fit (or load)")
        graphs = check_graphs(graphs)
        feats = check_features(features, len(graphs), width=self._fill.size)
        if not graphs:
            return np.zeros(0), np.zeros(0)
        counts = self._counts(graphs)
        x = self._matrix(graphs, counts, feats)
        if self._gp is not None:
            mean, std = self._gp.predict(self._gp_rows(x))
            mean = np.maximum(mean, 0.0)
        else:
            with np.errstate(invalid="ignore", over="ignore"):  # a non-finite result raises below
                preds = x @ self._coef.T + self._intercept  # (n, bags)
                mean, std = np.maximum(preds.mean(axis=1), 0.0), preds.std(axis=1)
        bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))
        if bad.size:  # never clip -inf to 0 ms: a cost model would pass every limit
            raise PredictorError(f"{self.name}: non-finite prediction for {bad.size} of {len(graphs)} graphs "
                                 f"(first: graph {int(bad[0])})")
        if self._seen:  # the same kernels as fitting graphs: their measured latency (the std stays the model's)
            for i, c in enumerate(counts):
                hit = self._seen.get(_digest_counts(c))
                if hit is not None:
                    mean[i] = hit
        return mean, std

    def coverage(self, graphs: Sequence[ArchGraph]) -> FloatArray:
        """Per graph, the share of its key occurrences that the fitting graphs had ``(n,)``; below 1 the
        prediction extrapolates (through the FLOPs terms) to kernels it never saw."""
        if not self._fitted:
            raise PredictorError("KernelLatency.coverage before fit (or load)")
        known = set(self.vocab)
        out = []
        for c in self._counts(check_graphs(graphs)):
            total = sum(c.values())
            out.append(sum(v for k, v in c.items() if k in known) / total if total else 1.0)
        return np.array(out)

    def save(self, path: str | Path) -> None:
        if not self._fitted:
            raise PredictorError("cannot save an unfitted KernelLatency")
        scalars: dict[str, Any] = {"vocab": list(self.vocab)}
        if self.config.keys == "runtime":  # the keys are those of one export (see load)
            from nas.hardware import EXPORT_VERSION

            scalars["export_version"] = EXPORT_VERSION
        arrays = {"coef": self._coef, "intercept": self._intercept, "alpha": self._alpha, "fill": self._fill}
        if self._gp is not None:
            arrays.update(gp_theta=self._gp.theta, gp_rows=self._gp.rows, gp_targets=self._gp.targets,
                          gp_columns=self._columns.astype(np.float64), gp_loc=self._loc, gp_spread=self._spread)
        if self._seen:
            scalars["seen"] = list(self._seen)
            arrays["seen_ms"] = np.array(list(self._seen.values()), dtype=np.float64)
        write_archive(path, Archive(self.name, config_to_json(self.config), scalars, arrays))

    @classmethod
    def load(cls, path: str | Path) -> KernelLatency:
        archive = read_archive(path, predictor=cls.name)
        self = cls(config_from_json(KernelLatencyConfig, archive.config, path=path))
        vocab = archive.scalars.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(k, str) for k in vocab):
            raise PredictorFileError(f"{path}: the kernel vocabulary is missing or not a list of strings")
        require(archive, ["coef", "intercept", "alpha", "fill"], path)
        require_finite(archive, path, prefixes=("coef", "intercept", "fill", "seen_ms", "gp_"),
                       positive=lambda name: name == "gp_spread")  # finite latencies, or no model
        coef, intercept, fill = archive.arrays["coef"], archive.arrays["intercept"], archive.arrays["fill"]
        width = len(vocab) + (len(OP_VOCAB) if self.config.flops_terms else 0) + fill.size
        if self.config.model == "gp":
            self._load_gp(archive, width, path)
        elif coef.ndim != 2 or coef.shape[1] != width or intercept.shape != (coef.shape[0],):
            raise PredictorFileError(f"{path}: coefficients of shape {coef.shape} do not fit {len(vocab)} kernel keys")
        if self.config.keys == "runtime":
            from nas.hardware import EXPORT_VERSION

            fitted_on = archive.scalars.get("export_version", 1)  # files without it predate versioning
            if fitted_on != EXPORT_VERSION:
                log.warning("%s: fitted on the runtime kernels of export version %s, and this version exports "
                            "version %s: a graph's kernels may differ a little from those it was fitted on "
                            "(refit on latencies measured with this version for exact keys)",
                            path, fitted_on, EXPORT_VERSION)
        seen = archive.scalars.get("seen", [])
        seen_ms = archive.arrays.get("seen_ms", np.zeros(0))
        if (not isinstance(seen, list) or not all(isinstance(k, str) for k in seen)
                or seen_ms.shape != (len(seen),)):
            raise PredictorFileError(f"{path}: the lookup table's {len(seen) if isinstance(seen, list) else '?'} "
                                     f"keys do not match its {seen_ms.size} latencies")
        if seen and not self.config.lookup:
            raise PredictorFileError(f"{path}: holds a lookup table, but its config has lookup off")
        self.vocab = tuple(vocab)
        self._coef, self._intercept, self._alpha, self._fill = coef, intercept, archive.arrays["alpha"], fill
        self._seen = dict(zip(seen, (float(v) for v in seen_ms), strict=True))
        self._fitted = True
        return self

    def _load_gp(self, archive: Archive, width: int, path: str | Path) -> None:
        require(archive, ["gp_theta", "gp_rows", "gp_targets", "gp_columns", "gp_loc", "gp_spread"], path)
        a = archive.arrays
        columns = a["gp_columns"]
        if (columns.ndim != 1 or not np.array_equal(columns, np.round(columns))
                or (columns.size and (columns.min() < 0 or columns.max() >= width))
                or a["gp_loc"].shape != columns.shape or a["gp_spread"].shape != columns.shape
                or a["gp_rows"].ndim != 2 or a["gp_rows"].shape[1] != columns.size):
            raise PredictorFileError(f"{path}: the GP's columns, scales and rows do not fit {width} inputs")
        try:
            self._gp = ArdGP.from_state(a["gp_theta"], a["gp_rows"], a["gp_targets"])
        except PredictorError as e:
            raise PredictorFileError(f"{path}: {e}") from e
        self._columns = columns.astype(np.int64)
        self._loc, self._spread = a["gp_loc"], a["gp_spread"]


@PREDICTORS.register("runtime_latency")
class RuntimeLatency(KernelLatency):
    """:class:`KernelLatency` on the kernels onnxruntime runs (``keys="runtime"``,
    :func:`runtime_kernel_keys`): for latency measured with onnxruntime on this machine (``measured``).
    Rows weighted ``1 / y``, and ``lookup`` on: a network that runs the same kernels as fitted ones
    (common in cell spaces, where many cells reduce to one network) gets their measured latency."""

    name = "runtime_latency"

    def __init__(self, config: KernelLatencyConfig | None = None, **overrides: Any) -> None:
        super().__init__(config or KernelLatencyConfig(keys="runtime", weighting="inverse", lookup=True), **overrides)


@PREDICTORS.register("gp_latency")
class GPLatency(KernelLatency):
    """:class:`KernelLatency` with ``model="gp"``: an ARD Gaussian process (:class:`~predictors.gp.ArdGP`,
    an RBF term with one lengthscale per input plus a linear term) on the standardized key counts and
    per-op FLOPs, or on the ``features`` alone when they are given (``gp_inputs="features"``: the
    literal genotype's one-hot, in a cell space, carries what the keys do and what the IR merged).
    For device tables whose latency is not additive over kernels; see the module docstring."""

    name = "gp_latency"

    def __init__(self, config: KernelLatencyConfig | None = None, **overrides: Any) -> None:
        super().__init__(config or KernelLatencyConfig(model="gp", gp_inputs="features"), **overrides)
