"""Predictor benchmark: sample efficiency, zero-shot transfer, ablations, latency accuracy.

    python -m benchmarks.predictors [--experiments curves,curves_zc,zeroshot,ablations,latency]
        [--ns 50,100,200,500,1000] [--seeds 5] [--n-test 1000] [--workdir DIR] [--out predictors.json]

Every (experiment, setting, seed) result is a JSON file under ``--workdir/results``; a run computes
only what is missing, so the benchmark can be run in parts and resumed after an interruption. The
table, the JSON (``--out``) and the PNG (``--out`` with ``.png``) summarize every cached result of the
requested experiments, as mean ± std over the seeds that exist (the count is printed).

Experiments (BENCHMARKS.md, "Predictors" and "Latency"):

* ``curves``: NB201 CIFAR-10 test accuracy. Seed ``s`` permutes the 15,625 architectures with
  ``--seed + s``; the first ``--n-test`` are the test set, the next ``n`` the training set (so the
  training sets for growing ``n`` are nested and the test set is the same for every ``n`` of a seed).
  Methods: ``gennape``, ``graph_gbdt``, ``text_ridge``, ``encoding_mlp+geno`` (``NAME+geno`` gives the
  predictor the space's own encoding, the literal genotype's one-hot, as features). ``NAME+zc`` gives
  it the proxy scores of :data:`ZC_CURVES`, computed by our engine for every architecture as ``nas
  predictor train --features`` computes them (cached in ``--workdir/features``); ``proxy+zc`` is the
  best of those single proxies on the test set. Spearman ρ, Kendall τ, precision@top-5%.
* ``curves_zc``: the zero-cost-feature variants. The proxy scores are NASLib's (``nb201_zc_naslib.csv``,
  CIFAR-10, 12 proxies), which cover 725 architectures only; computing 12 proxies for 2,000+ NB201
  networks takes about 3 s each on this machine, so these runs use the NASLib sample: ``n`` training
  and all the remaining (at least 525) test architectures. Methods: ``gennape+zc``, ``zc_gbdt`` and,
  on the same splits, ``gennape`` and ``best_proxy`` (the single proxy with the best ρ on the test set,
  chosen after the fact: an upper bound for any single proxy), and ``zc_ensemble``, the mean of
  the standardized predictions of ``gennape+zc`` and ``zc_gbdt`` fitted on the same split. Features
  enter as ``sign(x) log(1 + |x|)`` (synflow spans 40 orders of magnitude).
* ``zeroshot``: trained on NB101 (500 sample, ``val_accuracy``), tested on all 15,625 NB201
  architectures (``cifar10_test_acc``); trained on ``--zs-n`` NB201 architectures
  (``cifar10valid_valid_acc``), tested on the NB101 sample and the NB301 sample (``val_accuracy``).
  ``gennape+adapt``: the same fit, then its inputs re-standardized on the unlabelled target graphs
  (:meth:`~predictors.gennape.GennapePredictor.adapt`), so each graph is read by where it stands
  within its own space. ``NAME+zc`` also gives the predictor the proxy scores of :data:`ZC_TRANSFER`
  (synflow, l2_norm and meco, chosen on the NB101 source alone; computed by the proxy engine on the IR
  graph of every source and target architecture and cached in ``--workdir``) as features, e.g.
  ``capacity_ridge+zc+adapt``. ``+signed`` fits ``capacity_ridge`` with ``signs="source"``: each
  coefficient keeps the sign of its input's Spearman correlation on the source (a sign-constrained
  ridge; see :mod:`predictors.baselines`). ``+ft50``: GENNAPE-style adaptation with 50 labelled target
  architectures: the encoders are pretrained contrastively on the source and all target graphs
  (unlabelled), the heads fit on the source plus the 50 target architectures with the targets
  standardized per space (ranks within a space are what transfer), tested on the other target
  architectures; ``+tune50``: fine-tuning proper: the source fit, adapted to the unlabelled target
  graphs, then its heads trained on from their fitted weights on the 50
  (:meth:`~predictors.gennape.GennapePredictor.finetune`); ``target50`` fits on the 50 target
  architectures alone, for reference.
* ``ablations``: NB201, ``n = 100``: the full GENNAPE-style predictor, without contrastive
  pretraining (randomly initialized, frozen encoders), without the fuzzy ensemble (one cluster,
  one head), with MSE only (no ranking loss), and a plain GNN regressor (one encoder trained end to
  end with one MLP head by MSE: no pretraining, no clusters, no members).
* ``latency``: 500 NB201 architectures per device (``pixel3``, ``raspi4``, ``fpga``, ``eyeriss``,
  ``gold_6226``), 1,000 held out; ``kernel_latency``, ``gp_latency``, ``graph_gbdt`` and a GNN
  (``gennape``, MSE);
  share within ±10%, RMSE, ρ. A method ``NAME+geno`` also takes the literal genotype's one-hot
  encoding as features (:func:`predictors.data.genotype_onehot`; see the notes below).
  ``measured``: onnxruntime latency on this machine (:func:`predictors.data.measured_passes`: batch
  1, 1 thread, 10 warm-up runs, median of 30, the least of ``--measured-rounds`` rounds interleaved
  across 25 architectures; with ``--measured-passes P`` the whole set is measured P times, one pass
  after another, and each architecture is labelled with the least of its passes; the table's device
  is then ``measured-pP``), cached in ``--workdir``; per seed, a seeded split of the measured
  architectures: 500 to train, the rest to test. ``runtime_latency`` (the kernel model on the
  kernels onnxruntime runs) belongs here. Two ceilings say what any predictor could reach:
  ``ceiling_literal``, a ridge model with all interactions up to order 3 of the literal cell's
  one-hot genotype, fitted on 12,000 architectures and scored on its own training set (a model far
  richer than any fitted on 500: what it misses is structure of higher order or measurement noise);
  and for ``measured``, how well the labels reproduce: with one pass, a second
  measurement of 100 architectures against the first (minutes later); with P passes, the least of
  the first P // 2 passes against the least of the next P // 2 (``ceiling_passes_HvH``) and, from 4
  passes, the first pass against the second (``ceiling_passes_1v1``), over every measured architecture.
  ``drift_literal`` (its own table, ``latency_drift``) asks whether the order-3 model's misses on a
  table follow the NB201 index, which is unrelated to the cell (consecutive rows share as many edges as
  two random ones, and the fit itself does not follow the index): the lag-1 rank correlation of its
  relative errors along the index, and the share within ±10% once each row is corrected by the median
  error of its 3 or 12 neighbours on each side, beside the same correction with the rows shuffled
  (:func:`predictors.metrics.order_drift`; it reads the neighbours' true labels, so it is a diagnostic
  of the table, not a predictor). An error that follows the index but not the cell presumably follows
  the order of measurement, the state of the measuring machine at the time. ``<out>-drift.png`` plots
  the errors along the index, one row of panels per device.

Notes on the latency figures. HW-NAS-Bench's ``fpga`` and ``eyeriss`` latencies are exactly linear
in the *literal* cell's op counts (``opcount_linear_within_10pct`` = 1.0: four op counts and an
intercept fit all 15,625), but the IR is the canonical computation: the NB201 builder emits one ``AvgPool`` for several
``avg_pool_3x3`` edges that read the same node (they compute the same tensor), shares one ``Relu``
between convolutions of the same input, and drops ``none`` edges. A cell with three pools on node 0
and one with a single pool there have the same IR, and different ``eyeriss`` latencies (a pool
costs as much as a 3x3 convolution there), so no predictor on the IR alone can separate them; the
``+geno`` methods give the literal network back where the architecture comes from a space. ``pixel3``
and ``raspi4`` are measurements with large noise: a model with every interaction up to order 3
of the literal genotype matches only about 70% of its own 12,000 training values within ±10%.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import add_common_args, print_settings, print_table, settings, write_json
from nas.ir import ArchGraph
from predictors.features import signed_log

log = logging.getLogger(__name__)

EXPERIMENTS = ("curves", "curves_zc", "zeroshot", "ablations", "latency")
DEVICES = ("pixel3", "raspi4", "fpga", "eyeriss", "gold_6226")
CURVE_METHODS = ("gennape", "graph_gbdt", "text_ridge", "encoding_mlp+geno")
#: curves_zc: the mean of the standardized predictions of gennape+zc and zc_gbdt on one split
ZC_ENSEMBLE = "zc_ensemble"
#: Settings of the methods (one thread everywhere: the benchmark shares the machine).
GENNAPE: dict[str, Any] = {"threads": 1}
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "no_pretrain": {"pretrain_epochs": 0},
    "no_fuzzy": {"clusters": 1},
    "plain_gnn": {"pretrain_epochs": 0, "clusters": 1, "members": 1, "rank_loss": "none", "use_globals": False,
                  "epochs": 50, "finetune_epochs": 150, "encoder_lr": 1e-3},
    "mse_only": {"rank_loss": "none"},
}
LATENCY_GNN: dict[str, Any] = {"rank_loss": "none", "members": 2, "clusters": 2}
#: Rows on each side whose median error corrects a row in ``drift_literal``: a short window, for a
#: pattern that changes within tens of rows, and a long one, for periods of hundreds.
DRIFT_NEIGHBOURS = (3, 12)
#: The cache key of a device's ``drift_literal`` row names the windows, so rows of other windows stay apart.
DRIFT_KEY = "drift-k" + "-".join(map(str, DRIFT_NEIGHBOURS))
#: Random orders whose mean is the ``drift_literal`` baseline.
DRIFT_SHUFFLES = 5
_RANK_COLUMNS = ("spearman", "spearman_std", "kendall", "precision_at_5pct", "precision_at_5pct_std", "seconds")
#: The printed columns per experiment (the JSON holds every aggregate).
COLUMNS: dict[str, tuple[str, ...]] = {
    "curves": ("method", "n", "seeds", *_RANK_COLUMNS, "spearman_distinct", "spearman_distinct_std", "n_distinct"),
    "curves_zc": ("method", "n", "seeds", *_RANK_COLUMNS),
    "ablations": ("method", "n", "seeds", *_RANK_COLUMNS),
    "zeroshot": ("key", "method", "seeds", *_RANK_COLUMNS),
    "latency": ("device", "method", "seeds", "within_10pct", "within_10pct_std", "rmse", "spearman",
                "fit_within_10pct", "opcount_linear_within_10pct", "seconds"),
    "latency_drift": ("device", "fit_within_10pct", "error_lag1",
                      *(f"{name}_k{k}" for k in DRIFT_NEIGHBOURS
                        for name in ("drift_within_10pct", "shuffled_within_10pct")),
                      "adjacent_shared_edges", "fit_lag1", "seconds"),
}


# --------------------------------------------------------------------------- graph cache
# Building a graph costs 10 to 40 ms (NB201, NB101 and NB301 write their ONNX directly): minutes
# for the 15,625 NB201 graphs, which the runs need many times. GraphStore keeps them under
# ``workdir/graphs/<space>-v<CACHE_VERSION>.pkl`` without their weight values (the predictors read
# structure, shapes, params and FLOPs; fingerprints, params and FLOPs are unchanged by the
# stripping). The file is pickled: a private cache of this benchmark, written and read by the same
# code on the same machine, never an exchanged format; delete it when the IR changes.

#: Bump when the IR changes in a way that makes cached graphs stale.
CACHE_VERSION = 1


def strip(graph: ArchGraph) -> ArchGraph:
    """``graph`` without weight values (structure, shapes, params and FLOPs are kept)."""
    nodes = [dataclasses.replace(n, weights={}) for n in graph]
    return ArchGraph(nodes, list(graph.outputs), list(graph.output_shapes), name=graph.name, has_weights=False)


class GraphStore:
    """``graphs(space, archs)``: the stripped graphs of ``archs`` (the space's text), built once."""

    def __init__(self, workdir: str | Path | None) -> None:
        self.workdir = None if workdir is None else Path(workdir) / "graphs"
        self._mem: dict[str, dict[str, ArchGraph]] = {}

    def _path(self, space: str) -> Path | None:
        return None if self.workdir is None else self.workdir / f"{space}-v{CACHE_VERSION}.pkl"

    def _load(self, space: str) -> dict[str, ArchGraph]:
        if space not in self._mem:
            path = self._path(space)
            self._mem[space] = pickle.loads(path.read_bytes()) if path is not None and path.is_file() else {}
        return self._mem[space]

    def _save(self, space: str) -> None:
        path = self._path(space)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(pickle.dumps(self._mem[space], protocol=5))
        os.replace(tmp, path)

    def graphs(self, space: str, archs: Sequence[str], *, persist: bool = True,
               progress: bool = False) -> list[ArchGraph]:
        """The graphs of ``archs``; new ones are built with ``space_from_spec(space).to_graph`` and, with
        ``persist``, written to the cache every 50 new graphs and at the end."""
        from tqdm import tqdm

        from search_spaces import space_from_spec

        cache = self._load(space)
        missing = [a for a in dict.fromkeys(archs) if a not in cache]
        if missing:
            sp = space_from_spec(space)
            for k, a in enumerate(tqdm(missing, desc=f"graphs {space}", unit="arch", disable=not progress)):
                cache[a] = strip(sp.to_graph(sp.parse(a)))
                if persist and (k + 1) % 50 == 0:
                    self._save(space)
            if persist:
                self._save(space)
        return [cache[a] for a in archs]


# --------------------------------------------------------------------------- plumbing


class Runner:
    """Data, graphs and the result cache shared by the experiments."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = args.data_dir
        self.workdir = Path(args.workdir)
        self.store = GraphStore(self.workdir)
        self._labelled: dict[tuple[str, str], Any] = {}
        self._last_graphs: dict[str, tuple[tuple[str, ...], list[Any]]] = {}

    def labelled(self, space: str, target: str) -> Any:
        from predictors.data import labelled

        key = (space, target)
        if key not in self._labelled:
            self._labelled[key] = labelled(space, target, self.data_dir)
        return self._labelled[key]

    def graphs(self, space: str, archs: Sequence[str]) -> list[Any]:
        # NB201 graphs take 10-20 ms each to build: build them, do not store them on disk; but keep the
        # last list of each space in memory (the zero-shot runs ask for all 15,625, about 3 GB, every seed)
        key = tuple(archs)
        last = self._last_graphs.get(space)
        if last is None or last[0] != key:
            last = key, self.store.graphs(space, archs, persist=space != "nb201", progress=self.args.progress)
            self._last_graphs[space] = last
        return last[1]

    def split_settings(self, experiment: str) -> dict[str, int]:
        """The options besides the key and the seed index that choose an experiment's architectures."""
        names = ["seed"] + (["n_test"] if experiment in ("curves", "ablations", "latency") else []) + (
            ["latency_n"] if experiment == "latency" else [])
        return {k: int(getattr(self.args, k, SPLIT_DEFAULTS[k])) for k in names}

    def result_path(self, experiment: str, key: str, seed: int) -> Path:
        """``workdir/results/<experiment>/<key>[-<settings>]-s<seed>.json``; the settings that differ from
        the defaults (:data:`SPLIT_DEFAULTS`) are named, so runs with other splits keep their own files."""
        tag = "".join(f"-{k}{v}" for k, v in self.split_settings(experiment).items() if v != SPLIT_DEFAULTS[k])
        return self.workdir / "results" / experiment / f"{key}{tag}-s{seed}.json"

    def cached(self, experiment: str, key: str, seed: int, compute: Callable[..., dict[str, Any]],
               *args: Any) -> dict[str, Any]:
        """``compute(*args)``, or its result of an earlier run with the same split (:meth:`result_path`)."""
        path = self.result_path(experiment, key, seed)
        if path.is_file():
            result: dict[str, Any] = json.loads(path.read_text())
            return result
        t = time.perf_counter()
        result = compute(*args)
        result["seconds"] = round(time.perf_counter() - t, 2)
        result.update(experiment=experiment, key=key, seed=seed, split=self.split_settings(experiment))
        write_json(path, result)
        log.info("%s %s seed %d: %s", experiment, key, seed, result)
        if self.args.progress:
            print(f"  done {experiment} {key} seed {seed} in {result['seconds']} s", flush=True)
        return result

    def all_cached(self, experiment: str) -> list[dict[str, Any]]:
        """The cached results of ``experiment`` with this run's split settings (a result written before
        they were recorded had the defaults)."""
        folder = self.workdir / "results" / experiment
        want = self.split_settings(experiment)
        defaults = {k: SPLIT_DEFAULTS[k] for k in want}
        found = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
        return [c for c in found if c.get("split", defaults) == want]


#: The defaults of the options that choose the architectures (``--seed``, ``--n-test``, ``--latency-n``).
SPLIT_DEFAULTS = {"seed": 0, "n_test": 1000, "latency_n": 500}


def make(name: str, seed: int, **overrides: Any) -> Any:
    from predictors import PREDICTORS

    if name == "gennape":
        overrides = {**GENNAPE, **overrides}
    return PREDICTORS.resolve(name, seed=seed, **overrides)


def fit_predict(name: str, seed: int, train: Sequence[Any], y: np.ndarray, test: Sequence[Any],
                f_train: np.ndarray | None = None, f_test: np.ndarray | None = None,
                **overrides: Any) -> tuple[np.ndarray, float]:
    """Mean predictions for ``test`` and the fit seconds."""
    t = time.perf_counter()
    model = make(name, seed, **overrides).fit(train, y, features=f_train)
    seconds = time.perf_counter() - t
    mean, _ = model.predict(test, features=f_test)
    return mean, seconds


def _rank(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from predictors.metrics import rank_metrics

    return rank_metrics(pred, truth)


# --------------------------------------------------------------------------- experiments


def curve_method(m: str) -> tuple[str, str]:
    """``(NAME, EXTRA)`` of a curve method: a registered predictor with ``EXTRA`` "", "geno" or "zc", or
    ``proxy+zc``; ValueError otherwise."""
    from predictors import PREDICTORS

    name, _, extra = m.partition("+")
    if extra not in ("", "geno", "zc") or (name != "proxy" and name not in PREDICTORS):
        raise ValueError(f"unknown curve method {m!r}: NAME, NAME+geno or NAME+zc with NAME one of "
                         f"{', '.join(PREDICTORS.names())}, or proxy+zc")
    if name == "proxy" and extra != "zc":
        raise ValueError(f"{m!r}: the proxy method reads the proxy features; it is proxy+zc")
    return name, extra


def _curve(r: Runner, lab: Any, m: str, s: int, train_rows: np.ndarray, test_rows: np.ndarray) -> dict[str, Any]:
    name, extra = curve_method(m)
    from predictors.data import genotype_onehot

    test_archs, train_archs = [lab.archs[i] for i in test_rows], [lab.archs[i] for i in train_rows]
    f_train, f_test = (None, None)
    if extra == "geno":
        f_train, f_test = genotype_onehot("nb201", train_archs), genotype_onehot("nb201", test_archs)
    elif extra == "zc":
        f_train, f_test = (spec_features(r, "nb201", train_archs, ZC_CURVES),
                           spec_features(r, "nb201", test_archs, ZC_CURVES))
    if name == "proxy":  # no fit: each single proxy of the features on the test set, the best reported
        assert f_test is not None  # curve_method: proxy+zc
        return _best_engine_proxy(f_test, lab.y[test_rows], len(train_rows))
    test, train = r.graphs("nb201", test_archs), r.graphs("nb201", train_archs)
    pred, fit_s = fit_predict(name, s, train, lab.y[train_rows], test, f_train, f_test)
    return {"method": m, "n": len(train_rows), "n_test": len(test_rows), "fit_seconds": fit_s,
            **_rank(pred, lab.y[test_rows]), **_distinct(pred, lab.y[test_rows], test_archs, train_archs)}


def _distinct(pred: np.ndarray, truth: np.ndarray, test_archs: Sequence[str],
              train_archs: Sequence[str]) -> dict[str, Any]:
    """Spearman's rho on the test cells with no isomorphic twin among the training cells, and their count.

    The 15,625 NB201 cells fall into 6,466 classes that compute the same function (NAS-Bench-201's
    ``unique_str``, our :func:`~search_spaces.nb201.canonical_form`); twins have nearly the same
    accuracy, and often the same graph. A random split puts a twin of some test cells into the training
    set (13% of the test cells at n = 100, 42% at n = 1,000, in the curves), which the plain rho counts."""
    from search_spaces.nb201 import canonical_form

    seen = {canonical_form(a) for a in train_archs}
    keep = np.array([canonical_form(a) not in seen for a in test_archs])
    return {"spearman_distinct": _rank(pred[keep], truth[keep])["spearman"], "n_distinct": int(keep.sum())}


def _best_engine_proxy(feats: np.ndarray, truth: np.ndarray, n: int) -> dict[str, Any]:
    """``proxy+zc``: the single proxy of :data:`ZC_CURVES` with the best Spearman rho on the test set,
    chosen after the fact (an upper bound for any one of them); architectures it failed on left out."""
    best, metrics = _best_column(feats, ZC_CURVES["proxies"], truth)
    return {"method": "proxy+zc", "proxy": best, "n": n, "n_test": len(truth), "fit_seconds": 0.0, **metrics}


def _best_column(feats: np.ndarray, names: Sequence[str], truth: np.ndarray,
                 min_scored: int = 1) -> tuple[str, dict[str, Any]]:
    """The column of ``feats`` (named by ``names``) whose Spearman rho with ``truth`` is best, and its rank
    metrics with ``n_scored``; each column on its finite rows, columns with fewer than ``min_scored`` left out."""
    scores = {}
    for j, p in enumerate(names):
        ok = np.isfinite(feats[:, j])
        if ok.sum() >= min_scored:
            scores[p] = {**_rank(feats[ok, j], truth[ok]), "n_scored": int(ok.sum())}
    best = max(scores, key=lambda p: scores[p]["spearman"])
    return best, scores[best]


def run_curves(r: Runner, ns: Sequence[int], seeds: Sequence[int], methods: Sequence[str]) -> None:
    lab = r.labelled("nb201", "cifar10_test_acc")
    for s in seeds:
        order = np.random.default_rng(r.args.seed + s).permutation(len(lab))
        test_rows = order[:r.args.n_test]
        for n in ns:
            train_rows = order[r.args.n_test:r.args.n_test + n]
            for m in methods:
                r.cached("curves", f"{m}-n{n}", s, _curve, r, lab, m, s, train_rows, test_rows)


def _zc_run(r: Runner, lab: Any, feats: np.ndarray, m: str, s: int, train_rows: np.ndarray,
            test_rows: np.ndarray) -> dict[str, Any]:
    train = r.graphs("nb201", [lab.archs[i] for i in train_rows])
    test = r.graphs("nb201", [lab.archs[i] for i in test_rows])
    use = m != "gennape"
    ftr, fte = (signed_log(feats[train_rows]), signed_log(feats[test_rows])) if use else (None, None)
    pred, fit_s = fit_predict(m.split("+")[0], s, train, lab.y[train_rows], test, ftr, fte)
    return {"method": m, "n": len(train_rows), "n_test": len(test_rows), "fit_seconds": fit_s,
            **_rank(pred, lab.y[test_rows])}


def _zc_ensemble(r: Runner, lab: Any, feats: np.ndarray, s: int, train_rows: np.ndarray,
                 test_rows: np.ndarray) -> dict[str, Any]:
    """The mean of the standardized predictions of ``gennape+zc`` and ``zc_gbdt`` on one split."""
    train = r.graphs("nb201", [lab.archs[i] for i in train_rows])
    test = r.graphs("nb201", [lab.archs[i] for i in test_rows])
    ftr, fte = signed_log(feats[train_rows]), signed_log(feats[test_rows])
    preds, seconds = [], 0.0
    for name in ("gennape", "zc_gbdt"):
        pred, fit_s = fit_predict(name, s, train, lab.y[train_rows], test, ftr, fte)
        preds.append(_zscore(pred))
        seconds += fit_s
    return {"method": ZC_ENSEMBLE, "n": len(train_rows), "n_test": len(test_rows), "fit_seconds": seconds,
            **_rank(np.mean(preds, axis=0), lab.y[test_rows])}


def _best_proxy(lab: Any, feats: np.ndarray, n: int, test_rows: np.ndarray) -> dict[str, Any]:
    from predictors.data import NASLIB_PROXIES

    truth = lab.y[test_rows]
    best, metrics = _best_column(feats[test_rows], NASLIB_PROXIES, truth, min_scored=11)
    return {"method": "best_proxy", "proxy": best, "n": n, "n_test": len(truth), **metrics}


def run_curves_zc(r: Runner, ns: Sequence[int], seeds: Sequence[int]) -> None:
    from predictors.data import zc_features

    lab = r.labelled("nb201", "cifar10_test_acc")
    feats = zc_features("nb201", lab.archs, r.data_dir)
    rows = np.flatnonzero(np.isfinite(feats).any(axis=1))  # the NASLib sample
    for s in seeds:
        order = np.random.default_rng(r.args.seed + s).permutation(rows)
        for n in ns:
            if n > len(rows) - 200:
                continue  # keep at least 200 test architectures
            train_rows, test_rows = order[:n], order[n:]
            for m in ("gennape+zc", "zc_gbdt", "gennape"):
                r.cached("curves_zc", f"{m}-n{n}", s, _zc_run, r, lab, feats, m, s, train_rows, test_rows)
            r.cached("curves_zc", f"{ZC_ENSEMBLE}-n{n}", s, _zc_ensemble, r, lab, feats, s, train_rows, test_rows)
            r.cached("curves_zc", f"best_proxy-n{n}", s, _best_proxy, lab, feats, n, test_rows)


def _zscore(y: np.ndarray) -> np.ndarray:
    return (y - y.mean()) / (y.std() or 1.0)


#: The proxies of the ``+zc`` transfer variants: every proxy whose Spearman rho with ``val_accuracy`` on
#: the 500-architecture NB101 sample (the source: no target labels) is at least 0.5, less params and
#: flops, which ``capacity_ridge`` reads from the graph. Of NASLib's NB101 columns: flops 0.72, params
#: 0.72, synflow 0.65, l2_norm 0.55 (the next, snip, 0.45; jacov is -0.50). Of ours that NASLib's file
#: lacks: meco 0.71 (as scored here; our synflow and l2_norm score 0.66 and 0.52), nwot 0.39. synflow
#: and l2_norm are data-free; meco reads the first image of the two-image batch.
ZC_TRANSFER: tuple[str, ...] = ("synflow", "l2_norm", "meco")

_ZC_WORKER: dict[str, Any] = {}


def _zc_init(space: str, data_dir: str | None) -> None:
    import torch

    from nas.data import load_batch
    from search_spaces import SPACES

    torch.set_num_threads(1)
    _ZC_WORKER.update(space=SPACES.resolve(space), batch=load_batch("cifar10", 2, seed=0, data_dir=data_dir))


def _zc_one(arch: str) -> list[float]:
    """The :data:`ZC_TRANSFER` scores of one architecture: its IR graph rebuilt by ``to_torch`` with
    PyTorch-default initialization drawn from seed 0 (as ``nas predictor train --features`` scores it),
    scored by the proxy engine."""
    from proxies import engine

    space = _ZC_WORKER["space"]
    model = engine.to_model(space.to_graph(space.parse(arch)), seed=0)
    scores = engine.score(model, _ZC_WORKER["batch"], list(ZC_TRANSFER))
    return [scores[n] for n in ZC_TRANSFER]


def _pooled(r: Runner, path: Path, archs: Sequence[str], init: Callable[..., None], initargs: tuple[Any, ...],
            one: Callable[[str], Any], desc: str) -> dict[str, Any]:
    """``{arch: one(arch)}`` for ``archs``, cached in ``path`` (JSON, written every 500 architectures, so
    an interrupted run resumes) and computed by ``--workers`` processes, each set up by ``init(*initargs)``."""
    import contextlib
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    have: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [a for a in dict.fromkeys(archs) if a not in have]
    if not todo:
        return have
    with contextlib.ExitStack() as stack:
        pool = None
        if r.args.workers <= 1:
            init(*initargs)
        else:  # spawned: a forked child of a process whose OpenMP pool has run (a fit) can hang in torch
            pool = stack.enter_context(ProcessPoolExecutor(r.args.workers, mp_context=get_context("spawn"),
                                                           initializer=init, initargs=initargs))

        def score(chunk: list[str]) -> list[Any]:
            return [one(a) for a in chunk] if pool is None else list(pool.map(one, chunk, chunksize=8))

        bar = stack.enter_context(tqdm(total=len(todo), desc=desc, unit="arch"))
        for start in range(0, len(todo), 500):
            chunk = todo[start:start + 500]
            have.update(zip(chunk, score(chunk), strict=True))
            write_json(path, have)
            bar.update(len(chunk))
    return have


def zc_transfer_features(r: Runner, space: str, archs: Sequence[str]) -> np.ndarray:
    """``(n, len(ZC_TRANSFER))``: ``sign(x) log(1 + |x|)`` of each architecture's proxy scores (synflow
    spans 40 orders of magnitude), cached by architecture in ``workdir/proxies/<space>-<proxies>.json``
    and computed by ``--workers`` processes with one torch thread each (:func:`_pooled`)."""
    path = r.workdir / "proxies" / f"{space}-{','.join(ZC_TRANSFER)}.json"
    data_dir = str(r.data_dir) if r.data_dir else None
    have = _pooled(r, path, archs, _zc_init, (space, data_dir), _zc_one, f"proxies {space}")
    return signed_log(np.array([have[a] for a in archs], dtype=np.float64).reshape(len(archs), len(ZC_TRANSFER)))


#: The proxies of the curves' ``NAME+zc`` methods, as ``nas predictor train --features`` computes them
#: (:class:`~predictors.features.FeatureSpec`), on 64 CIFAR-10 test images: the proxies that rank NB201
#: CIFAR-10 best in NASLib's scores (``nb201_zc_naslib.csv``, 724 architectures: nwot 0.787, jacov
#: 0.766, then params 0.738 and synflow 0.736 level; params is left out, the graph gives it already).
ZC_CURVES: dict[str, Any] = {"kind": "zc", "proxies": ["synflow", "jacov", "nwot"], "data": "cifar10", "batch": 64,
                             "seed": 0}


def _spec_init(space: str, data_dir: str | None, spec: dict[str, Any]) -> None:
    import torch

    from predictors.features import FeatureSpec
    from search_spaces import space_from_spec

    torch.set_num_threads(1)
    _ZC_WORKER.update(space=space_from_spec(space), spec=FeatureSpec.from_json(spec), data_dir=data_dir)


def _spec_one(arch: str) -> list[float | None]:
    """The features of one architecture, NaN (a missing score) as None."""
    space = _ZC_WORKER["space"]
    row = _ZC_WORKER["spec"].compute([space.to_graph(space.parse(arch))], data_dir=_ZC_WORKER["data_dir"])[0]
    return [None if np.isnan(v) else float(v) for v in row]


def spec_features(r: Runner, space: str, archs: Sequence[str], spec: dict[str, Any]) -> np.ndarray:
    """``(n, len(proxies))``: the features of ``spec`` (a :class:`~predictors.features.FeatureSpec` in
    its JSON form) for ``archs``, NaN where a proxy failed, cached in ``workdir/features/``."""
    from predictors.features import FeatureSpec

    data_dir = str(r.data_dir) if r.data_dir else None
    name = f"{space}-{FeatureSpec.from_json(spec)}-{spec['data']}-b{spec['batch']}-s{spec['seed']}"
    if ":" in spec["data"]:  # npz:PATH: the path, exactly, in a digest (its file name is made safe below)
        name += "-" + hashlib.sha256(spec["data"].encode()).hexdigest()[:12]
    path = r.workdir / "features" / (re.sub(r"[^\w.,=-]", "_", name) + ".json")  # npz:PATH has slashes
    have = _pooled(r, path, archs, _spec_init, (space, data_dir, spec), _spec_one, f"features {space}")
    rows = [[np.nan if v is None else v for v in have[a]] for a in archs]
    return np.array(rows, dtype=np.float64).reshape(len(archs), -1)


def _uses_zc(m: str) -> bool:
    """Whether zero-shot method ``m`` has the ``+zc`` extra (the :data:`ZC_TRANSFER` features)."""
    return "zc" in m.split("+")


def zs_method_key(m: str) -> str:
    """The cache name of zero-shot method ``m``: a ``+zc`` method also names the :data:`ZC_TRANSFER`
    proxies, so a workdir's results computed with another feature set are not read back as this one's."""
    return f"{m}@{','.join(ZC_TRANSFER)}" if _uses_zc(m) else m


def _zc_record(m: str) -> dict[str, Any]:
    return {"zc_proxies": list(ZC_TRANSFER)} if _uses_zc(m) else {}


def current_zeroshot(cached: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cached zero-shot results to summarize, each keyed by its direction: a ``+zc`` result counts
    only if it was computed with this :data:`ZC_TRANSFER` (older files do not record theirs)."""
    out = []
    for c in cached:
        if _uses_zc(c["method"]) and c.get("zc_proxies") != list(ZC_TRANSFER):
            continue
        out.append({**c, "key": c["key"].split("-", 1)[0]})
    return out


def _zc_pair(r: Runner, m: str, source: str, source_archs: list[str], target: str,
             target_archs: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The ``+zc`` features of the source and target architectures, or ``(None, None)`` without ``+zc``."""
    if not _uses_zc(m):
        return None, None
    return zc_transfer_features(r, source, source_archs), zc_transfer_features(r, target, target_archs)


def transfer_method(m: str) -> tuple[str, list[str]]:
    """``(NAME, EXTRAS)`` of a zero-shot method: a registered predictor with any of the extras ``zc``,
    ``signed`` (for a predictor whose config has ``signs``) and ``adapt`` (for one that has ``adapt``),
    in that order; ValueError otherwise."""
    from predictors import PREDICTORS

    name, *extras = m.split("+")
    if name not in PREDICTORS or [e for e in TRANSFER_EXTRAS if e in extras] != extras:
        raise ValueError(f"unknown zero-shot method {m!r}: NAME, then any of +{', +'.join(TRANSFER_EXTRAS)} in "
                         f"that order, with NAME one of {', '.join(PREDICTORS.names())}")
    cls = PREDICTORS.get(name)
    if "adapt" in extras and not callable(getattr(cls, "adapt", None)):
        raise ValueError(f"{m!r}: {name} has no adapt")
    config = getattr(cls, "config_class", None)
    has_signs = dataclasses.is_dataclass(config) and "signs" in {f.name for f in dataclasses.fields(config)}
    if "signed" in extras and not has_signs:
        raise ValueError(f"{m!r}: {name} has no sign-constrained fit (a 'signs' setting)")
    return name, extras


#: the extras of a zero-shot method, in the order they are written
TRANSFER_EXTRAS = ("zc", "signed", "adapt")


def latency_method(m: str) -> tuple[str, str]:
    """``(NAME, EXTRA)`` of a latency method: a registered predictor, ``EXTRA`` "" or "geno"; ValueError otherwise."""
    from predictors import PREDICTORS

    name, _, extra = m.partition("+")
    if extra not in ("", "geno") or name not in PREDICTORS:
        raise ValueError(f"unknown latency method {m!r}: NAME or NAME+geno with NAME one of "
                         f"{', '.join(PREDICTORS.names())}")
    return name, extra


def _transfer(m: str, s: int, train: Sequence[Any], y: np.ndarray, test: Sequence[Any],
              f_train: np.ndarray | None = None, f_test: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Predictions for another space's ``test`` graphs (with ``f_train``/``f_test`` as features when
    given); ``+signed`` fits with ``signs="source"``; ``+adapt`` re-standardizes the predictor's inputs on
    the (unlabelled) test graphs first (:meth:`~predictors.gennape.GennapePredictor.adapt`)."""
    name, extras = transfer_method(m)
    overrides = {"signs": "source"} if "signed" in extras else {}
    if "adapt" not in extras:
        return fit_predict(name, s, train, y, test, f_train, f_test, **overrides)
    t = time.perf_counter()
    model = make(name, s, **overrides).fit(train, y, features=f_train)
    seconds = time.perf_counter() - t
    mean, _ = model.adapt(test, features=f_test).predict(test, features=f_test)
    return mean, seconds


def _nb101_to_201(r: Runner, src: Any, nb201: Any, rows: np.ndarray, m: str, s: int) -> dict[str, Any]:
    train = r.graphs("nb101", list(src.archs))
    test = r.graphs("nb201", [nb201.archs[i] for i in rows])
    f_train, f_test = _zc_pair(r, m, "nb101", list(src.archs), "nb201", [nb201.archs[i] for i in rows])
    pred, fit_s = _transfer(m, s, train, src.y, test, f_train, f_test)
    return {"method": m, "source": "nb101", "target": "nb201", "n_train": len(src), "n_test": len(test),
            "fit_seconds": fit_s, **_zc_record(m), **_rank(pred, nb201.y[rows])}


def _nb201_to(r: Runner, src: Any, src_rows: np.ndarray, tgt: str, lab: Any, m: str, s: int) -> dict[str, Any]:
    train = r.graphs("nb201", [src.archs[i] for i in src_rows])
    test = r.graphs(tgt, list(lab.archs))
    f_train, f_test = _zc_pair(r, m, "nb201", [src.archs[i] for i in src_rows], tgt, list(lab.archs))
    pred, fit_s = _transfer(m, s, train, src.y[src_rows], test, f_train, f_test)
    return {"method": m, "source": "nb201", "target": tgt, "n_train": len(train), "n_test": len(test),
            "fit_seconds": fit_s, **_zc_record(m), **_rank(pred, lab.y)}


def _finetuned(r: Runner, src: Any, src_rows: np.ndarray, tgt: str, lab: Any, few: np.ndarray, rest: np.ndarray,
               s: int) -> dict[str, Any]:
    source = r.graphs("nb201", [src.archs[i] for i in src_rows])
    target = r.graphs(tgt, list(lab.archs))
    model = make("gennape", s)
    model.pretrain(source + target)  # unlabelled: every graph of both spaces
    y = np.concatenate([_zscore(src.y[src_rows]), _zscore(lab.y[few])])
    model.fit(source + [target[i] for i in few], y)
    pred, _ = model.predict([target[i] for i in rest])
    return {"method": "gennape+ft50", "source": "nb201", "target": tgt, "n_train": len(source) + len(few),
            "n_test": len(rest), **_rank(pred, lab.y[rest])}


def _tuned(r: Runner, src: Any, src_rows: np.ndarray, tgt: str, lab: Any, few: np.ndarray, rest: np.ndarray,
           s: int) -> dict[str, Any]:
    """Fitted on the source, adapted to every (unlabelled) target graph, then fine-tuned on the ``few``
    labelled ones (:meth:`~predictors.gennape.GennapePredictor.finetune`)."""
    source = r.graphs("nb201", [src.archs[i] for i in src_rows])
    target = r.graphs(tgt, list(lab.archs))
    model = make("gennape", s).fit(source, src.y[src_rows]).adapt(target)
    model.finetune([target[i] for i in few], lab.y[few])
    pred, _ = model.predict([target[i] for i in rest])
    return {"method": "gennape+tune50", "source": "nb201", "target": tgt, "n_train": len(source) + len(few),
            "n_test": len(rest), **_rank(pred, lab.y[rest])}


def _target_only(r: Runner, tgt: str, lab: Any, few: np.ndarray, rest: np.ndarray, s: int) -> dict[str, Any]:
    g = r.graphs(tgt, list(lab.archs))
    pred, _ = fit_predict("gennape", s, [g[i] for i in few], lab.y[few], [g[i] for i in rest])
    return {"method": "gennape-target50", "source": tgt, "target": tgt, "n_train": len(few), "n_test": len(rest),
            **_rank(pred, lab.y[rest])}


#: zeroshot directions (``--zs-directions``)
ZS_DIRECTIONS = ("nb101_to_nb201", "nb201_to_nb101", "nb201_to_nb301")


def zs_directions(spec: str) -> tuple[str, ...]:
    """The directions named in ``spec`` (comma-separated), in :data:`ZS_DIRECTIONS` order; unknown ones raise."""
    asked = [d.strip() for d in spec.split(",") if d.strip()]
    unknown = sorted(set(asked) - set(ZS_DIRECTIONS))
    if not asked or unknown:
        raise ValueError(f"unknown zero-shot directions {unknown or asked}; valid: {', '.join(ZS_DIRECTIONS)}")
    return tuple(d for d in ZS_DIRECTIONS if d in asked)


def run_zeroshot(r: Runner, seeds: Sequence[int], methods: Sequence[str],
                 directions: Sequence[str] = ZS_DIRECTIONS) -> None:
    nb201 = r.labelled("nb201", "cifar10_test_acc")
    nb201_valid = r.labelled("nb201", "cifar10valid_valid_acc")
    targets = {sp: r.labelled(sp, "val_accuracy") for sp in ("nb101", "nb301") if f"nb201_to_{sp}" in directions}
    if r.args.nb301_n and "nb301" in targets:  # the first rows only (a quicker run)
        lab301 = targets["nb301"]
        targets["nb301"] = type(lab301)(lab301.space, lab301.target, lab301.archs[:r.args.nb301_n],
                                        lab301.y[:r.args.nb301_n])
    for s in seeds:
        rows = np.arange(len(nb201))
        if r.args.nb201_test_n:  # a random subset of NB201 as the test set
            rows = np.sort(np.random.default_rng([r.args.seed + s, 201]).permutation(len(nb201))[:r.args.nb201_test_n])
        for m in methods if "nb101_to_nb201" in directions else ():  # the field's standard direction
            key = f"nb101_to_nb201{f'_t{len(rows)}' if len(rows) < len(nb201) else ''}-{zs_method_key(m)}"
            r.cached("zeroshot", key, s, _nb101_to_201, r, r.labelled("nb101", "val_accuracy"), nb201, rows, m, s)
        src_rows = np.random.default_rng(r.args.seed + s).permutation(len(nb201))[:r.args.zs_n]
        for tgt, lab in targets.items():  # NB201 -> NB101, NB301: zero-shot, and with 50 target architectures
            name = f"nb201_{len(src_rows)}_to_{tgt}{f'_first{len(lab)}' if tgt == 'nb301' and r.args.nb301_n else ''}"
            for m in methods:
                r.cached("zeroshot", f"{name}-{zs_method_key(m)}", s, _nb201_to, r, nb201_valid, src_rows, tgt, lab,
                         m, s)
            if r.args.skip_finetune:
                continue
            order = np.random.default_rng([r.args.seed + s, 50]).permutation(len(lab))
            few, rest = order[:50], order[50:]
            r.cached("zeroshot", f"{name}-gennape+ft50", s, _finetuned, r, nb201_valid, src_rows, tgt, lab,
                     few, rest, s)
            r.cached("zeroshot", f"{name}-gennape+tune50", s, _tuned, r, nb201_valid, src_rows, tgt, lab,
                     few, rest, s)
            r.cached("zeroshot", f"{name}-target50", s, _target_only, r, tgt, lab, few, rest, s)


def _ablation(r: Runner, lab: Any, name: str, s: int, train_rows: np.ndarray, test_rows: np.ndarray) -> dict[str, Any]:
    train = r.graphs("nb201", [lab.archs[i] for i in train_rows])
    test = r.graphs("nb201", [lab.archs[i] for i in test_rows])
    pred, fit_s = fit_predict("gennape", s, train, lab.y[train_rows], test, **ABLATIONS[name])
    return {"method": name, "n": len(train_rows), "n_test": len(test_rows), "fit_seconds": fit_s,
            **_rank(pred, lab.y[test_rows])}


def _reuse(path: Path, method: str) -> dict[str, Any]:
    result: dict[str, Any] = {**json.loads(path.read_text()), "method": method, "reused": str(path.name)}
    return result


def run_ablations(r: Runner, seeds: Sequence[int], n: int) -> None:
    lab = r.labelled("nb201", "cifar10_test_acc")
    for s in seeds:
        order = np.random.default_rng(r.args.seed + s).permutation(len(lab))
        test_rows, train_rows = order[:r.args.n_test], order[r.args.n_test:r.args.n_test + n]
        for name in ABLATIONS:
            same = r.result_path("curves", f"gennape-n{n}", s)
            if name == "full" and same.is_file():  # the same fit as the curve's point (same split, seed, settings)
                r.cached("ablations", f"{name}-n{n}", s, _reuse, same, name)
            else:
                r.cached("ablations", f"{name}-n{n}", s, _ablation, r, lab, name, s, train_rows, test_rows)


def _literal_features(lab: Any) -> tuple[np.ndarray, np.ndarray]:
    """The literal cells' one-hot genotypes (:func:`predictors.data.genotype_onehot`: 6 edges x 5 ops)
    and their interactions up to order 3."""
    from sklearn.preprocessing import PolynomialFeatures

    from predictors.data import genotype_onehot

    onehot = genotype_onehot("nb201", lab.archs)
    return onehot, PolynomialFeatures(3, interaction_only=True, include_bias=False).fit_transform(onehot)


def _literal_ceiling(device: str, r: Runner) -> dict[str, Any]:
    """Within-10% of a degree-3 interaction ridge on the literal one-hot genotype, on its own 12,000
    training architectures, and of a linear model on the cell's op counts on all 15,625."""
    from sklearn.linear_model import LinearRegression, Ridge

    from predictors.metrics import latency_metrics

    lab = r.labelled("nb201", f"latency:{device}")
    onehot, poly = _literal_features(lab)
    rows = np.random.default_rng(r.args.seed).permutation(len(lab.y))[:12000]
    fit = Ridge(alpha=1.0).fit(poly[rows], lab.y[rows]).predict(poly[rows])
    counts = onehot.reshape(len(lab.y), 6, -1).sum(axis=1)[:, 1:]  # each op's edges, "none" left out
    lin = LinearRegression().fit(counts, lab.y).predict(counts)
    return {"method": "ceiling_literal", "device": device,
            **{f"fit_{k}": v for k, v in latency_metrics(np.maximum(fit, 1e-9), lab.y[rows]).items()},
            "opcount_linear_within_10pct": latency_metrics(np.maximum(lin, 1e-9), lab.y)["within_10pct"]}


def _order_drift(device: str, r: Runner) -> dict[str, Any]:
    """Whether the literal ceiling model's misses follow the table's row order (the NB201 index).

    The order-3 ridge of :func:`_literal_ceiling` is fitted on all 15,625 rows (``fit_within_10pct``,
    in-sample); its relative errors in index order give :func:`predictors.metrics.order_drift` for each
    window of :data:`DRIFT_NEIGHBOURS`: ``drift_within_10pct_kK`` in index order, and
    ``shuffled_within_10pct_kK``, the mean over :data:`DRIFT_SHUFFLES` random orders. Two checks that
    the index is unrelated to the cell: ``adjacent_shared_edges``, the edges two consecutive rows share
    (1.2 of 6 for two random cells of the full grid), and ``fit_lag1``, the lag-1 rank correlation of
    the fit, a function of the cell alone. The errors are kept (4 significant digits) for the plot.
    """
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge

    from predictors.metrics import latency_metrics, order_drift

    lab = r.labelled("nb201", f"latency:{device}")
    onehot, poly = _literal_features(lab)
    fit = Ridge(alpha=1.0).fit(poly, lab.y).predict(poly)
    got = {k: order_drift(fit, lab.y, neighbours=k, seed=0, shuffles=DRIFT_SHUFFLES) for k in DRIFT_NEIGHBOURS}
    return {"method": "drift_literal", "device": device, "n_test": len(lab.y),
            "fit_within_10pct": latency_metrics(fit, lab.y)["within_10pct"],
            "error_lag1": got[DRIFT_NEIGHBOURS[0]]["error_lag1"],  # the same for every window
            **{f"{name}_k{k}": got[k][name] for k in DRIFT_NEIGHBOURS
               for name in ("drift_within_10pct", "shuffled_within_10pct")},
            "adjacent_shared_edges": float((onehot[1:] * onehot[:-1]).sum(axis=1).mean()),
            "fit_lag1": float(spearmanr(fit[:-1], fit[1:])[0]), "neighbours": list(DRIFT_NEIGHBOURS),
            "shuffles": DRIFT_SHUFFLES, "shuffle_seed": 0, "errors": [float(f"{e:.4g}") for e in fit / lab.y - 1.0]}


def _current_drift(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``drift_literal`` rows of this code's windows (:data:`DRIFT_KEY`), none of an older cache's."""
    return [d for d in rows if d.get("method") == "drift_literal" and str(d.get("key", "")).endswith(DRIFT_KEY)]


def _fit_latency(m: str, s: int, archs: Sequence[str], graphs: Sequence[Any], y: np.ndarray,
                 train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float]:
    """Predictions of method ``m`` (``NAME`` or ``NAME+geno``) for rows ``test``, fitted on rows ``train``."""
    name, extra = latency_method(m)
    from predictors.data import genotype_onehot

    feats = genotype_onehot("nb201", archs) if extra else None
    f_train, f_test = (feats[train], feats[test]) if feats is not None else (None, None)
    return fit_predict(name, s, [graphs[i] for i in train], y[train], [graphs[i] for i in test], f_train, f_test,
                       **(LATENCY_GNN if name == "gennape" else {}))


def _latency_run(r: Runner, lab: Any, device: str, m: str, s: int, train_rows: np.ndarray,
                 test_rows: np.ndarray) -> dict[str, Any]:
    from predictors.metrics import latency_metrics

    rows = np.concatenate([train_rows, test_rows])
    archs = [lab.archs[i] for i in rows]
    graphs = r.graphs("nb201", archs)
    k = len(train_rows)
    pred, fit_s = _fit_latency(m, s, archs, graphs, lab.y[rows], np.arange(k), np.arange(k, len(rows)))
    return {"method": m, "device": device, "n": k, "n_test": len(test_rows), "fit_seconds": fit_s,
            **latency_metrics(pred, lab.y[test_rows])}


def _measured_run(r: Runner, archs: list[str], y: np.ndarray, m: str, s: int, n_train: int,
                  device: str = "measured") -> dict[str, Any]:
    """Seed ``s``: a seeded split of the measured architectures, ``n_train`` to fit and the rest to test;
    ``device`` names the labels in the table (``measured``, or ``measured-pP`` for the least of P passes)."""
    from predictors.metrics import latency_metrics

    graphs = r.graphs("nb201", archs)
    order = np.random.default_rng(r.args.seed + s).permutation(len(archs))
    train, test = order[:n_train], order[n_train:]
    pred, fit_s = _fit_latency(m, s, archs, graphs, y, train, test)
    return {"method": m, "device": device, "n": n_train, "n_test": len(test), "fit_seconds": fit_s,
            **latency_metrics(pred, y[test])}


def _measure(r: Runner, archs: list[str], tag: str = "", passes: int = 1) -> np.ndarray:
    from predictors.data import measured_passes

    def show(done: int, total: int) -> None:
        if r.args.progress:
            print(f"  measured {done}/{total}", flush=True)

    return measured_passes("nb201", archs, r.workdir, passes=passes, rounds=r.args.measured_rounds, tag=tag,
                           progress=show)


def _remeasure(r: Runner, archs: list[str], y: np.ndarray) -> dict[str, Any]:
    from predictors.metrics import latency_metrics

    again = _measure(r, archs, tag="-repeat")[0]
    return {"method": "ceiling_remeasure", "device": "measured", "n_test": len(archs), **latency_metrics(again, y)}


def _half_passes(per_pass: np.ndarray, device: str) -> dict[str, Any]:
    """How well a label of half the passes reproduces: the least of the first ``P // 2`` passes against
    the least of the next ``P // 2``, on every measured architecture."""
    from predictors.metrics import latency_metrics

    h = len(per_pass) // 2
    first, second = per_pass[:h].min(axis=0), per_pass[h:2 * h].min(axis=0)
    return {"method": f"ceiling_passes_{h}v{h}", "device": device, "n_test": per_pass.shape[1],
            **latency_metrics(first, second)}


def run_latency(r: Runner, seeds: Sequence[int], methods: Sequence[str], n_train: int,
                devices: Sequence[str] = DEVICES) -> None:
    from predictors.data import measured_cache_path

    truth = r.labelled("nb201", "cifar10_test_acc")
    for s in seeds:
        order = np.random.default_rng(r.args.seed + s).permutation(len(truth))
        train_rows, test_rows = order[:n_train], order[n_train:n_train + r.args.n_test]
        for device in devices:
            lab = r.labelled("nb201", f"latency:{device}")
            for m in methods:
                r.cached("latency", f"{device}-{m}", s, _latency_run, r, lab, device, m, s, train_rows, test_rows)
    for device in devices:
        r.cached("latency", f"{device}-ceiling", 0, _literal_ceiling, device, r)
        r.cached("latency", f"{device}-{DRIFT_KEY}", 0, _order_drift, device, r)
    if r.args.no_measured:
        return
    # measured on this machine: what the cache holds (see predictors.data.measured_passes)
    order = np.random.default_rng(r.args.seed).permutation(len(truth))
    archs = [truth.archs[i] for i in order[:r.args.measured_n]]
    rounds, passes = r.args.measured_rounds, r.args.measured_passes
    if r.args.measure:
        per_pass = _measure(r, archs, passes=passes)
    else:
        have = [json.loads(path.read_text()) if path.is_file() else {}
                for path in (measured_cache_path("nb201", r.workdir, rounds=rounds, measurement=k + 1)
                             for k in range(passes))]
        archs = [a for a in archs if all(a in h for h in have)]
        per_pass = np.array([[h[a] for a in archs] for h in have]).reshape(passes, len(archs))
    y = per_pass.min(axis=0)  # the least of the passes
    n_train = r.args.measured_train
    if len(archs) < n_train + 50:
        log.warning("only %d measured architectures cached in all %d passes; run with --measure to measure %d",
                    len(archs), passes, r.args.measured_n)
        return
    device = "measured" if passes == 1 else f"measured-p{passes}"
    label = f"measured-x{rounds}" + (f"-p{passes}" if passes > 1 else "")
    for s in seeds:
        for m in methods:
            r.cached("latency", f"{label}-split-{m}-of{len(archs)}", s, _measured_run, r, archs, y, m, s, n_train,
                     device)
    if passes > 1:  # the least of half the passes against the other half, and one pass against the next
        r.cached("latency", f"{label}-ceiling-of{len(archs)}", 0, _half_passes, per_pass, device)
        if passes > 3:
            r.cached("latency", f"{label}-ceiling1-of{len(archs)}", 0, _half_passes, per_pass[:2], device)
    elif r.args.measure:
        r.cached("latency", f"{label}-ceiling", 0, _remeasure, r, archs[:100], y[:100])


# --------------------------------------------------------------------------- summary


def _aggregate(results: list[dict[str, Any]], group: Sequence[str], metrics: Sequence[str]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for res in results:
        groups.setdefault(tuple(res.get(g) for g in group), []).append(res)
    rows = []
    for key, items in groups.items():
        row: dict[str, Any] = dict(zip(group, key, strict=True))
        row["seeds"] = len(items)
        for m in metrics:
            vals = [it[m] for it in items if it.get(m) is not None]
            if vals:
                row[m] = float(np.mean(vals))
                row[f"{m}_std"] = float(np.std(vals))
        if "seconds" in items[0]:
            row["seconds"] = float(np.mean([it["seconds"] for it in items]))
        rows.append(row)

    def order(row: dict[str, Any]) -> list[tuple[int, float, str]]:  # text by name, numbers by value
        return [(0, float(v), "") if isinstance(v, int | float) else (1, 0.0, str(v)) for v in (row[g] for g in group)]

    return sorted(rows, key=order)


def _best_proxy_line(r: Runner) -> tuple[str, float] | None:
    """The cached ``best_proxy`` runs of ``curves_zc``: the proxy's name and mean ρ, for the curves plot."""
    rows = [c for c in r.all_cached("curves_zc") if c.get("method") == "best_proxy"]
    if not rows:
        return None
    names = sorted({str(c.get("proxy")) for c in rows})
    return "/".join(names), float(np.mean([c["spearman"] for c in rows]))


def _plot(summary: dict[str, list[dict[str, Any]]], path: Path, proxy: tuple[str, float] | None = None) -> None:
    """One panel per experiment; ``proxy`` (name, ρ) adds the best single proxy to the curves panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("curves", "curves_zc", "zeroshot", "ablations", "latency") if summary.get(k)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=110, squeeze=False)
    for ax, key in zip(axes[0], panels, strict=True):
        rows = summary[key]
        if key in ("curves", "curves_zc"):
            for method in dict.fromkeys(r["method"] for r in rows):
                pts = sorted((r for r in rows if r["method"] == method), key=lambda r: r["n"])
                ax.errorbar([p["n"] for p in pts], [p["spearman"] for p in pts],
                            yerr=[p.get("spearman_std", 0.0) for p in pts], marker="o", ms=3, capsize=2, label=method)
            if key == "curves" and proxy is not None:
                ax.axhline(proxy[1], color="grey", ls="--", lw=1,
                           label=f"best single proxy ({proxy[0]}; NASLib's 725, no training)")
            ax.set_xscale("log")
            ax.set_xlabel("training architectures n")
            ax.set_ylabel("Spearman ρ (held out)")
            ax.set_title("NB201 CIFAR-10" + (" (NASLib sample, with proxies)" if key == "curves_zc" else ""))
            ax.legend(fontsize=7)
        else:
            metric = "within_10pct" if key == "latency" else "spearman"
            rows = [r for r in rows if metric in r]
            labels = [f"{r.get('device') or r.get('key', '')}:{r['method']}" if key == "latency"
                      else (f"{r['key'].split('-')[0]}:{r['method']}" if key == "zeroshot" else r["method"])
                      for r in rows]
            ax.barh(range(len(rows)), [r[metric] for r in rows], xerr=[r.get(f"{metric}_std", 0.0) for r in rows])
            ax.set_yticks(range(len(rows)), labels, fontsize=6)
            ax.set_xlabel(metric)
            ax.set_title(key)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


#: The rows the drift plot's right-hand panels show one by one (ten periods of pixel3's oscillation).
DRIFT_ZOOM = range(5000, 5260)


def _drift_zoom_rows(n: int) -> range:
    """The rows of :data:`DRIFT_ZOOM` in a table of ``n`` rows; the last ``len(DRIFT_ZOOM)`` of a shorter one."""
    lo = max(0, min(DRIFT_ZOOM.start, n - len(DRIFT_ZOOM)))
    return range(lo, min(lo + len(DRIFT_ZOOM), n))


def _plot_drift(rows: list[dict[str, Any]], path: Path) -> bool:
    """One row of panels per device: left, the literal ceiling model's relative errors along the whole
    NB201 index with the median of each row's neighbours (the longest window); right, the rows of
    :data:`DRIFT_ZOOM` one by one (the last ones of a shorter table). False where no ``drift_literal`` row exists."""
    rows = [d for d in _current_drift(rows) if d.get("errors")]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predictors.metrics import neighbour_median

    fig, axes = plt.subplots(len(rows), 2, figsize=(14, 2.3 * len(rows)), dpi=90, squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]})
    for (ax, zoom), d in zip(axes, sorted(rows, key=lambda d: str(d["device"])), strict=True):
        err, k = np.asarray(d["errors"]), max(int(n) for n in d["neighbours"])
        ax.plot(err, ",", alpha=0.5, color="tab:blue")
        ax.plot(neighbour_median(err, k), color="tab:red", lw=0.8, label=f"median of the {2 * k} neighbours")
        short = min(int(n) for n in d["neighbours"])
        ax.set_title(f"{d['device']}: order-3 fit within ±10% {d['fit_within_10pct']:.3f}; lag-1 rank correlation "
                     f"{d['error_lag1']:.2f}; corrected by {2 * short} / {2 * k} neighbours "
                     f"{d[f'drift_within_10pct_k{short}']:.3f} / {d[f'drift_within_10pct_k{k}']:.3f} "
                     f"(shuffled rows {d[f'shuffled_within_10pct_k{short}']:.3f} / "
                     f"{d[f'shuffled_within_10pct_k{k}']:.3f})", fontsize=8)
        ax.set_ylabel("fit / y - 1")
        shown = _drift_zoom_rows(len(err))
        zoom.plot(shown, err[shown.start:shown.stop], ".-", ms=2, lw=0.4, color="tab:blue")
        zoom.set_title(f"{d['device']}: rows {shown.start}-{shown.stop - 1}", fontsize=8)
        for a in (ax, zoom):
            a.axhspan(-0.1, 0.1, color="grey", alpha=0.12, lw=0)
            a.set_ylim(-0.4, 0.4)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("NB201 index (the table's row)")
    axes[-1, 1].set_xlabel("NB201 index")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, default_out="predictors.json")
    p.add_argument("--experiments", default="curves,curves_zc,zeroshot,ablations,latency",
                   help=f"comma-separated, of {', '.join(EXPERIMENTS)}")
    p.add_argument("--ns", default="50,100,200,500,1000", help="training sizes of the curves")
    p.add_argument("--zc-ns", default="50,100,200", help="training sizes of curves_zc")
    p.add_argument("--seeds", type=int, default=5, help="seeds per setting (default 5)")
    p.add_argument("--n-test", type=int, default=1000, help="held-out architectures (default 1000)")
    p.add_argument("--methods", default=",".join(CURVE_METHODS),
                   help="methods of the curves (NAME, NAME+geno, NAME+zc, proxy+zc)")
    p.add_argument("--latency-methods",
                   default="kernel_latency,kernel_latency+geno,gp_latency,gp_latency+geno,graph_gbdt,gennape",
                   help="latency predictors; NAME+geno adds the literal genotype's one-hot as features")
    p.add_argument("--zs-methods", default="gennape,gennape+adapt,graph_gbdt,text_ridge",
                   help="methods of the zero-shot runs: NAME[+zc][+signed][+adapt]; +zc adds the ZC_TRANSFER "
                        "proxies as features, +signed holds capacity_ridge's coefficients to the source's "
                        "signs, +adapt standardizes inputs on the target space")
    p.add_argument("--workers", type=int, default=2,
                   help="processes for the proxy scores of the +zc methods, one torch thread each (default 2)")
    p.add_argument("--zs-directions", default=",".join(ZS_DIRECTIONS),
                   help=f"zeroshot directions, comma-separated (default all: {', '.join(ZS_DIRECTIONS)})")
    p.add_argument("--zs-n", type=int, default=1000, help="NB201 training architectures for NB201 -> other spaces")
    p.add_argument("--nb201-test-n", type=int, default=0,
                   help="NB101 -> NB201: test on N random NB201 architectures (0: all 15,625)")
    p.add_argument("--nb301-n", type=int, default=0, help="use the first N NB301 sample architectures (0: all 725)")
    p.add_argument("--measured-train", type=int, default=500, help="training architectures of the measured runs")
    p.add_argument("--ablation-n", type=int, default=100)
    p.add_argument("--latency-n", type=int, default=500, help="training architectures per latency device")
    p.add_argument("--devices", default=",".join(DEVICES), help="NB201 latency devices (default: the issue's five)")
    p.add_argument("--no-measured", action="store_true", help="skip the onnxruntime-measured latency runs")
    p.add_argument("--measured-n", type=int, default=1000, help="architectures measured with onnxruntime")
    p.add_argument("--measure", action="store_true", help="measure missing onnxruntime latencies (slow)")
    p.add_argument("--measured-rounds", type=int, default=3,
                   help="measured latency: the least of this many interleaved rounds' medians (default 3)")
    p.add_argument("--measured-passes", type=int, default=1,
                   help="measured latency: passes over the whole set, one after another; the label is the least "
                        "of them, and with 2 or more, half the passes against the other half is the noise "
                        "ceiling (default 1)")
    p.add_argument("--workdir", default=str(Path.home() / ".cache" / "nas" / "bench-predictors"),
                   help="cache of graphs, measurements and per-seed results")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--progress", action="store_true", help="print a line per finished run")
    p.add_argument("--skip-finetune", action="store_true", help="zeroshot: skip the runs with 50 target architectures")
    p.add_argument("--summary-only", action="store_true", help="compute nothing: summarize the cached results")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    unknown = sorted(set(experiments) - set(EXPERIMENTS))
    if unknown:
        p.error(f"unknown experiments {unknown}; valid: {', '.join(EXPERIMENTS)}")
    if args.measured_passes < 1 or args.measured_rounds < 1:
        p.error(f"--measured-passes and --measured-rounds must be at least 1; got {args.measured_passes}, "
                f"{args.measured_rounds}")
    ns = [int(x) for x in args.ns.split(",")]
    try:
        directions = zs_directions(args.zs_directions)
    except ValueError as err:
        p.error(str(err))
    seeds = list(range(args.seeds))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    zs_methods = [m.strip() for m in args.zs_methods.split(",") if m.strip()]
    latency_methods = [m.strip() for m in args.latency_methods.split(",") if m.strip()]
    try:  # every method named, before anything runs
        for check, names in ((curve_method, methods if "curves" in experiments else []),
                             (transfer_method, zs_methods if "zeroshot" in experiments else []),
                             (latency_method, latency_methods if "latency" in experiments else [])):
            for m in names:
                check(m)
    except ValueError as err:
        p.error(str(err))
    r = Runner(args)
    t0 = time.perf_counter()
    for e in [] if args.summary_only else experiments:
        if e == "curves":
            run_curves(r, ns, seeds, methods)
        elif e == "curves_zc":
            run_curves_zc(r, [int(x) for x in args.zc_ns.split(",")], seeds)
        elif e == "zeroshot":
            run_zeroshot(r, seeds, zs_methods, directions)
        elif e == "ablations":
            run_ablations(r, seeds, args.ablation_n)
        else:
            run_latency(r, seeds, latency_methods, args.latency_n,
                        [d.strip() for d in args.devices.split(",") if d.strip()])
    rank = ("spearman", "kendall", "precision_at_5pct", "spearman_distinct", "n_distinct")
    lat = ("within_10pct", "rmse", "spearman", "fit_within_10pct", "opcount_linear_within_10pct")
    summary = {}
    for e in experiments:
        cached = r.all_cached(e)
        if e in ("curves", "curves_zc", "ablations"):
            summary[e] = _aggregate(cached, ("method", "n"), rank)
        elif e == "zeroshot":
            summary[e] = _aggregate(current_zeroshot(cached), ("key", "method"), rank)
        else:
            drift = _current_drift(cached)
            summary[e] = _aggregate([c for c in cached if c.get("method") != "drift_literal"], ("device", "method"),
                                    lat)
            if drift:
                summary["latency_drift"] = _aggregate(drift, ("device", "method"), COLUMNS["latency_drift"][1:-1])
    info = settings(seed=args.seed, seeds=args.seeds, ns=ns, n_test=args.n_test, experiments=experiments,
                    data=str(args.data_dir or "$NAS_DATA"), workdir=str(r.workdir), batch=None,
                    zc_source="NASLib nb201_zc_naslib.csv (725-architecture sample)",
                    wall_seconds=round(time.perf_counter() - t0, 1))
    print_settings(info)
    for e, rows in summary.items():
        print(f"\n{e}")
        print_table(rows, [c for c in COLUMNS[e] if any(c in row for row in rows)])
    out = Path(args.out)
    write_json(out, {"settings": info, "results": summary})
    png = out.with_suffix(".png")
    _plot(summary, png, _best_proxy_line(r) if "curves" in summary else None)
    print(f"wrote {out} and {png}")
    drift_png = out.with_name(f"{out.stem}-drift.png")
    if "latency" in summary and _plot_drift(r.all_cached("latency"), drift_png):
        print(f"wrote {drift_png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
