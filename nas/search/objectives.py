"""What a search maximizes: zero-cost proxies, their ensemble, a tabular oracle, or a predictor.

Every objective implements ``evaluate(genotype, graph) -> Evaluation``: ``value`` (higher is better)
and the raw ``scores`` behind it. Evaluations are cached by graph fingerprint, so isomorphic
architectures (NB201 cells that differ only in how they wire a zero op, say) are scored once; the
search loop records which candidates were served from the cache. Two objectives read more than the
graph and key otherwise: the tabular oracle (one entry per genotype, no cache) and a predictor fitted
on the genotype one-hot (fingerprint and genotype).

* :class:`ProxyObjective` -- one proxy, or ``"ensemble"``: the :class:`~proxies.ensemble.ReferenceEnsemble`
  of :data:`~proxies.ensemble.DEFAULT_PROXIES`, standardized on a reference sample of the space
  (``reference`` uniform genotypes drawn with the objective's seed, scored once and stored by the
  search so that a resumed run uses the same reference). Every network is initialized from the same
  ``seed``, on one batch of ``data``.
* :class:`TabularObjective` -- for benchmarks only: a column of NAS-Bench-201's table
  (``cifar10valid_valid_acc`` by default). It reads the table only for genotypes it evaluates, and
  :meth:`TabularObjective.truth` (the test accuracy a benchmark reports) only for those.
* :class:`PredictorObjective` -- the mean prediction of any trained model with the ``Predictor``
  contract (``predict(graphs) -> (mean, std)``); ``predictor:FILE.nasp`` loads a saved one, and
  computes for each candidate the features it was trained with (``nas predictor train --features``:
  the genotype one-hot, or proxy scores; :mod:`predictors.features`).

A candidate that cannot be scored (a proxy raising :class:`~nas.errors.ProxyError`, e.g. jacov of a
cell whose output ignores its input) gets ``value=None`` and the error: the search records it as an
evaluation that failed and the strategy does not learn a value for it -- no sentinel is invented.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nas.errors import NasError, ProxyError, SearchError
from nas.ir import ArchGraph
from search_spaces.base import Genotype, SearchSpace

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    value: float | None
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    cached: bool = False


@runtime_checkable
class Objective(Protocol):
    name: str

    def evaluate(self, genotype: Genotype, graph: ArchGraph) -> Evaluation:
        """The objective of one architecture (higher is better)."""
        ...


class _Cached:
    def __init__(self) -> None:
        self.cache: dict[str, Evaluation] = {}

    def evaluate(self, genotype: Genotype, graph: ArchGraph) -> Evaluation:
        key = self.key(genotype, graph.fingerprint())
        if key in self.cache:
            hit = self.cache[key]
            return Evaluation(hit.value, dict(hit.scores), hit.error, cached=True)
        ev = self._evaluate(genotype, graph)
        self.cache[key] = ev
        return ev

    def key(self, genotype: Genotype, fingerprint: str) -> str:
        """What the cache tells apart: the graph, unless the objective reads the genotype too."""
        return fingerprint

    def remember(self, genotype: Genotype, fingerprint: str, ev: Evaluation) -> None:
        """Put a result of an earlier session in the cache (resume)."""
        self.cache.setdefault(self.key(genotype, fingerprint), ev)

    def _evaluate(self, genotype: Genotype, graph: ArchGraph) -> Evaluation:
        raise NotImplementedError


class ProxyObjective(_Cached):
    """A zero-cost proxy, or the reference-standardized ensemble (see the module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        proxy: str = "ensemble",
        *,
        data: str = "digits",
        batch: int = 64,
        seed: int = 0,
        data_dir: str | Path | None = None,
        reference: int = 64,
        members: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        from nas.data import load_batch
        from proxies import PROXIES
        from proxies.ensemble import DEFAULT_PROXIES

        self.space, self.seed = space, seed
        self.name = proxy
        self.ensemble = proxy == "ensemble"
        names = list(members or DEFAULT_PROXIES) if self.ensemble else [proxy]
        self.proxies = [PROXIES.resolve(n) for n in names]
        self.batch = load_batch(data, batch, seed=seed, data_dir=data_dir)
        self.reference_size = reference
        self.reference_scores: list[dict[str, float]] | None = None
        self._combiner: Any = None

    def raw_scores(self, genotype: Genotype, graph: ArchGraph | None = None) -> tuple[dict[str, float], dict[str, str]]:
        from proxies import engine

        model = engine.to_model(genotype, space=self.space, seed=self.seed)
        errors: dict[str, str] = {}
        scores = engine.score(model, self.batch, self.proxies, errors=errors, graph=graph)
        return scores, errors

    def reference_genotypes(self) -> list[Genotype]:
        rng = np.random.default_rng([self.seed, 1])  # its own stream: independent of any strategy's
        return [self.space.sample(rng) for _ in range(self.reference_size)]

    def fit_reference(self, reference_scores: list[dict[str, float]]) -> None:
        """Standardize the ensemble on these member scores (one dict per reference genotype)."""
        from proxies.ensemble import ReferenceEnsemble

        names = [p.name for p in self.proxies]
        table = {n: [s.get(n, np.nan) for s in reference_scores] for n in names}
        self._combiner = ReferenceEnsemble(table, names)
        self.reference_scores = list(reference_scores)

    def _evaluate(self, genotype: Genotype, graph: ArchGraph) -> Evaluation:
        scores, errors = self.raw_scores(genotype, graph)
        if errors:
            return Evaluation(None, scores, "; ".join(f"{k}: {v}" for k, v in errors.items()))
        if not self.ensemble:
            p = self.proxies[0]
            v = scores[p.name]
            return Evaluation(v if p.higher_is_better else -v, scores)
        if self._combiner is None:
            raise SearchError("the ensemble objective has no reference yet: call fit_reference first")
        try:
            return Evaluation(float(self._combiner.score(scores)), scores)
        except ProxyError as e:
            return Evaluation(None, scores, str(e))


class TabularObjective(_Cached):
    """NAS-Bench-201's table as an oracle (benchmarks only; see the module docstring)."""

    def __init__(self, space: SearchSpace, metric: str = "cifar10valid_valid_acc",
                 report: str = "cifar10_test_acc", data_dir: str | Path | None = None) -> None:
        super().__init__()
        from benchmarks.tabular import nb201_ground_truth

        if space.name != "nb201":
            raise SearchError(f"the tabular objective exists for nb201 only; the space is {space.name!r}")
        table = nb201_ground_truth(data_dir)
        for col in (metric, report):
            if col not in table.columns:
                raise SearchError(f"unknown NB201 column {col!r}; valid: {', '.join(table.columns)}")
        self.space = space
        self.name = f"tabular:{metric}"
        self.metric, self.report_column = metric, report
        self._values = np.asarray(table[metric], dtype=float)
        self._report = np.asarray(table[report], dtype=float)
        self._evaluated: set[int] = set()

    def _index(self, genotype: Genotype) -> int:
        return int(self.space.index(genotype))  # type: ignore[attr-defined]

    def evaluate(self, genotype: Genotype, graph: ArchGraph) -> Evaluation:
        # the table is per genotype: isomorphic cells have their own (noisy) entries, so no fingerprint cache
        i = self._index(genotype)
        self._evaluated.add(i)
        return Evaluation(float(self._values[i]), {self.metric: float(self._values[i])})

    def remember(self, genotype: Genotype, fingerprint: str, ev: Evaluation) -> None:
        return None

    def mark_evaluated(self, genotype: Genotype) -> None:
        self._evaluated.add(self._index(genotype))

    def truth(self, genotype: Genotype) -> float:
        """The report column of a genotype this oracle evaluated."""
        i = self._index(genotype)
        if i not in self._evaluated:
            raise SearchError(f"the oracle did not evaluate {self.space.format(genotype)}; its truth stays unread")
        return float(self._report[i])


class PredictorObjective(_Cached):
    """The mean prediction of a trained predictor (anything with ``predict(graphs) -> (mean, std)``)."""

    def __init__(self, predictor: Any, name: str = "predictor", *, features: Any = None,
                 space: SearchSpace | None = None, data_dir: str | Path | None = None) -> None:
        super().__init__()
        if not callable(getattr(predictor, "predict", None)):
            raise SearchError(f"a predictor objective needs an object with predict(graphs); got {type(predictor)}")
        self.predictor = predictor
        self.name = name
        self.features = features  # a predictors.features.FeatureSpec, or None: the graph alone
        self.space = space
        self.data_dir = data_dir

    @classmethod
    def from_file(cls, path: str | Path, *, space: SearchSpace | None = None,
                  data_dir: str | Path | None = None) -> PredictorObjective:
        """The objective of a predictor saved by ``nas predictor train`` (``--objective predictor:FILE``),
        with the features it was trained with (``--features``), computed for each architecture."""
        from predictors import load_predictor
        from predictors.base import provenance
        from predictors.features import saved_spec

        predictor = load_predictor(path)
        spec = saved_spec(predictor, provenance(path), where=str(path), space=space.name if space else "")
        if spec is not None and space is not None:
            spec.check_space(space.name, where=str(path))
        return cls(predictor, name=f"predictor:{path}", features=spec, space=space, data_dir=data_dir)

    def key(self, genotype: Genotype, fingerprint: str) -> str:
        # the one-hot encodes the literal genotype: isomorphic cells are different inputs to it
        if self.features is not None and self.features.kind == "geno" and self.space is not None:
            return f"{fingerprint}|{self.space.format(genotype)}"
        return fingerprint

    def _evaluate(self, genotype: Genotype, graph: ArchGraph) -> Evaluation:
        try:
            if self.features is None:  # any object with predict(graphs) will do
                mean, std = self.predictor.predict([graph])
            else:
                archs = [self.space.format(genotype)] if self.space is not None else None
                mean, std = self.predictor.predict([graph], features=self.features.compute([graph], archs,
                                                                                           data_dir=self.data_dir))
        except NasError as e:  # e.g. genotype features for an architecture of another space
            return Evaluation(None, {}, f"the predictor cannot score this architecture: {e}")
        m, s = float(np.asarray(mean).reshape(-1)[0]), float(np.asarray(std).reshape(-1)[0])
        if not np.isfinite(m):
            return Evaluation(None, {"mean": m, "std": s}, f"the predictor gave a non-finite mean {m}")
        return Evaluation(m, {"mean": m, "std": s})
