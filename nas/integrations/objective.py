"""Objectives for ``study.optimize``: :func:`make_objective`.

``make_objective(space, score=..., latency=..., constraints=...)`` returns an
:class:`ArchitectureObjective`, a callable ``objective(trial)`` that

1. suggests a genotype with :func:`~nas.integrations.spaces.suggest_architecture` (an NB101 value
   combination that names no cell prunes the trial, with the reason in the ``invalid`` user attr);
2. builds its :class:`~nas.ir.ArchGraph`, computes every cost (constraints and latency) and stores
   the genotype (``arch``), the graph's ``fingerprint`` and the ``costs`` as user attrs;
3. with ``dedupe`` (default), reuses the value of a trial of the same study that already evaluated
   the same architecture (the ``cached_from`` user attr names it; see :meth:`ArchitectureObjective.key`),
   waiting for it if it is still running, so that several workers never score one architecture twice;
4. scores it, storing the raw ``scores`` as a user attr, and returns the value -- or, with
   ``latency``, the pair ``(value, latency)`` for ``directions=objective.directions``
   (``["maximize", "minimize"]``).

The score is any of

* a proxy name or ``"ensemble"`` (:class:`~nas.search.objectives.ProxyObjective`; the ensemble's
  reference scores are stored once as the study user attr ``nas:ensemble_reference`` and read by
  every later worker, so all workers standardize the same way) or ``"tabular[:COLUMN]"`` (NB201 only);
* an :class:`~nas.search.objectives.Objective` (``evaluate(genotype, graph) -> Evaluation``);
* a fitted predictor (``predict(graphs) -> (mean, std)``; the mean is the value, the std a user attr);
* a user function ``fn(trial, genotype) -> float`` that trains the network; it may call
  ``trial.report`` and ``trial.should_prune`` as any Optuna objective does.

An evaluation that fails (a proxy raising :class:`~nas.errors.ProxyError`) returns NaN, which is how
Optuna marks a trial ``FAIL`` without stopping the study; the error is in the ``error`` user attr.

Constraints follow Optuna's convention, ``cost - limit`` per constraint, feasible when ``<= 0``:
the objective sets them with ``trial.set_constraint(label, value)`` (Optuna 5, read by TPE, NSGA-II
and GP without further setup) and stores them in the ``constraints`` user attr, from which
``objective.constraints_func(trial)`` returns them for samplers that still take a ``constraints_func``.
Samplers read those values only after a trial ran; ``objective.feasible``, the constraints as a
``genotype -> bool`` predicate, lets a :class:`~nas.integrations.samplers.PredictorSampler` propose
only architectures that meet them (``create_sampler("predictor", ..., feasible=objective.feasible)``;
the ``nas`` CLI does this).
With ``early_reject=True`` an infeasible architecture is pruned before it is scored (EEEA-Net's
early exit, as :func:`nas.search.run_search` does) instead of being scored and marked infeasible.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nas.errors import NasError, SearchError
from nas.hardware import Constraint, CostModel, cost_model_from_spec, feasibility
from nas.integrations.spaces import ArchitectureMapping, InvalidArchitectureError, architecture_mapping
from nas.search.objectives import Evaluation, Objective, PredictorObjective, ProxyObjective, TabularObjective
from search_spaces.base import Genotype, SearchSpace

if TYPE_CHECKING:
    import optuna

    from nas.ir import ArchGraph

log = logging.getLogger(__name__)

#: Study user attr holding the ensemble's reference scores.
REFERENCE_ATTR = "nas:ensemble_reference"
UserFunction = Callable[["optuna.trial.Trial", Genotype], float]


@dataclass(frozen=True)
class ObjectiveSettings:
    """How a named score is built (data for the proxies, seed, reference size)."""

    data: str = "digits"
    batch: int = 64
    seed: int = 0
    data_dir: str | Path | None = None
    reference: int = 64


def build_score(space: SearchSpace, score: Any, settings: ObjectiveSettings) -> Objective | UserFunction:
    """A named score (proxy, ``ensemble``, ``tabular[:COL]``) as an Objective; other kinds pass through."""
    from predictors.base import Predictor

    if isinstance(score, str):
        from nas.search.loop import SearchConfig
        from nas.search.loop import make_objective as make_search_objective

        config = SearchConfig(space=space.name, objective=score, data=settings.data, batch=settings.batch,
                              seed=settings.seed, data_dir=str(settings.data_dir) if settings.data_dir else None,
                              reference=settings.reference)
        return make_search_objective(config, space)
    if isinstance(score, Objective):
        return score
    if isinstance(score, Predictor):
        return PredictorObjective(score)
    if callable(score):
        return score
    raise SearchError(f"a score is a proxy name, 'ensemble', 'tabular[:COLUMN]', an Objective, a predictor or a "
                      f"function (trial, genotype) -> float; got {type(score).__name__} {score!r}")


class ArchitectureObjective:
    """The callable :func:`make_objective` returns (see the module docstring)."""

    def __init__(self, mapping: ArchitectureMapping, score: Objective | UserFunction, *,
                 latency: CostModel | None = None, constraints: Sequence[Constraint] = (),
                 dedupe: bool = True, early_reject: bool = False, wait_timeout: float = 600.0,
                 poll: float = 0.2) -> None:
        self.mapping = mapping
        self.space = mapping.space
        self.score = score
        self.latency = latency
        self.constraints = tuple(constraints)
        self.dedupe = dedupe
        self.early_reject = early_reject
        self.wait_timeout, self.poll = wait_timeout, poll
        self._feasible = feasibility(self.space, self.constraints) if self.constraints else None

    # ---------------------------------------------------------------- Optuna-facing
    @property
    def directions(self) -> list[Literal["minimize", "maximize"]]:
        """The study directions this objective's return values need."""
        return ["maximize", "minimize"] if self.latency is not None else ["maximize"]

    @property
    def name(self) -> str:
        if isinstance(self.score, Objective):
            return self.score.name
        return getattr(self.score, "__name__", type(self.score).__name__)

    @property
    def feasible(self) -> Callable[[Genotype], bool] | None:
        """The constraints as a ``genotype -> bool`` predicate (None without constraints), for a sampler
        that proposes only what meets them: ``PredictorSampler(..., feasible=objective.feasible)``."""
        return self._feasible

    def constraints_func(self, trial: optuna.trial.FrozenTrial) -> list[float]:
        """``cost - limit`` per constraint, feasible when ``<= 0`` (Optuna's ``constraints_func``).

        A trial that never got its costs (its values named no architecture) is infeasible by every
        constraint: its violation is ``inf``.
        """
        values = trial.user_attrs.get("constraints")
        if values is None:
            return [math.inf] * len(self.constraints)
        return [float(v) for v in values]

    def key(self, genotype: Genotype, graph: ArchGraph) -> str:
        """What makes two trials the same evaluation: the graph fingerprint, or for the tabular oracle
        (whose isomorphic cells have their own noisy entries) the genotype."""
        if isinstance(self.score, TabularObjective):
            return "arch:" + self.space.format(genotype)
        return "fp:" + graph.fingerprint()

    def prepare(self, study: optuna.Study | None) -> None:
        """Fit the ensemble's reference once per study, shared through the study's user attrs."""
        if not (isinstance(self.score, ProxyObjective) and self.score.ensemble and self.score.reference_scores is None):
            return
        stored = study.user_attrs.get(REFERENCE_ATTR) if study is not None else None
        if stored is None:
            stored = [self.score.raw_scores(g, self.space.to_graph(g))[0] for g in self.score.reference_genotypes()]
            if study is not None:
                study.set_user_attr(REFERENCE_ATTR, stored)
        self.score.fit_reference(stored)

    def __call__(self, trial: optuna.trial.Trial) -> float | tuple[float, float]:
        import optuna

        study = getattr(trial, "study", None)  # FixedTrial has none
        self.prepare(study)
        try:
            genotype = self.mapping.genotype(self.mapping.suggest(trial))
        except InvalidArchitectureError as e:
            trial.set_user_attr("invalid", str(e))
            raise optuna.TrialPruned(str(e)) from e
        t0 = time.perf_counter()
        graph = self.space.to_graph(genotype)
        key = self.key(genotype, graph)
        trial.set_user_attr("arch", self.space.format(genotype))
        trial.set_user_attr("fingerprint", graph.fingerprint())
        trial.set_user_attr("key", key)
        costs: dict[str, float] = {}
        violations: list[float] = []
        for c in self.constraints:
            _, value = c.check(graph, genotype)
            costs[c.model.name] = float(value)
            violations.append(float(value) - c.limit)
        if self.latency is not None and self.latency.name not in costs:
            costs[self.latency.name] = float(self.latency.cost(graph, genotype))
        trial.set_user_attr("costs", costs)
        if self.constraints:
            trial.set_user_attr("constraints", violations)
            for c, v in zip(self.constraints, violations, strict=True):
                trial.set_constraint(c.label, v)  # Optuna 5's constraint API: the samplers read these
            if self.early_reject and any(v > 0 for v in violations):
                labels = [c.label for c, v in zip(self.constraints, violations, strict=True) if v > 0]
                trial.set_user_attr("rejected", " and ".join(labels))
                raise optuna.TrialPruned(f"{self.space.format(genotype)} violates {' and '.join(labels)}")
        if self.dedupe and study is not None:
            earlier = self._earlier(study, trial, key)
            if earlier is not None:
                trial.set_user_attr("cached_from", earlier.number)
                trial.set_user_attr("scores", earlier.user_attrs.get("scores", {}))
                if self.latency is not None:
                    return float(earlier.values[0]), costs[self.latency.name]
                return float(earlier.values[0])
        value = self._evaluate(trial, genotype, graph)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 4))
        if self.latency is not None:
            return value, costs[self.latency.name]
        return value

    # ---------------------------------------------------------------- internals
    def _evaluate(self, trial: optuna.trial.Trial, genotype: Genotype, graph: ArchGraph) -> float:
        if not isinstance(self.score, Objective):
            return float(self.score(trial, genotype))
        ev: Evaluation = self.score.evaluate(genotype, graph)
        trial.set_user_attr("scores", {k: float(v) for k, v in ev.scores.items()})
        if ev.value is None:
            trial.set_user_attr("error", ev.error or "the objective gave no value")
            log.warning("trial %d: %s could not be evaluated: %s", trial.number, self.space.format(genotype), ev.error)
            return math.nan  # Optuna marks the trial FAIL and goes on
        return float(ev.value)

    def _earlier(self, study: optuna.Study, trial: optuna.trial.Trial, key: str) -> optuna.trial.FrozenTrial | None:
        """A complete trial of the same key, waiting for an earlier running one to finish."""
        from optuna.trial import TrialState

        deadline = time.monotonic() + self.wait_timeout
        while True:
            running = False
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
                if t.number == trial.number or t.user_attrs.get("key") != key or "cached_from" in t.user_attrs:
                    continue
                if t.state == TrialState.COMPLETE:
                    return t
                running = running or t.number < trial.number
            if not running or time.monotonic() > deadline:
                return None
            time.sleep(self.poll)


def make_objective(
    space: str | SearchSpace,
    score: Any = "ensemble",
    *,
    latency: str | CostModel | None = None,
    constraints: Sequence[Constraint] = (),
    max_params: float | None = None,
    max_flops: float | None = None,
    max_latency_ms: float | None = None,
    data: str = "digits",
    batch: int = 64,
    seed: int = 0,
    data_dir: str | Path | None = None,
    reference: int = 64,
    encoding: str = "categorical",
    prefix: str = "",
    dedupe: bool = True,
    early_reject: bool = False,
) -> ArchitectureObjective:
    """An objective for ``study.optimize`` over ``space`` (see the module docstring).

    ``latency`` (``measured``, ``table:DEVICE`` or a cost model) makes it two-objective: accuracy up,
    latency down. ``max_params`` / ``max_flops`` (millions) and ``max_latency_ms`` (needs ``latency``)
    add to ``constraints``.
    """
    mapping = architecture_mapping(space, encoding, prefix)
    settings = ObjectiveSettings(data, batch, seed, data_dir, reference)
    built = build_score(mapping.space, score, settings)
    lat = cost_model_from_spec(latency, data_dir) if latency is not None else None
    cons = list(constraints)
    if max_params is not None:
        cons.append(Constraint(cost_model_from_spec("params"), max_params))
    if max_flops is not None:
        cons.append(Constraint(cost_model_from_spec("flops"), max_flops))
    if max_latency_ms is not None:
        if lat is None:
            raise SearchError("max_latency_ms needs a latency cost model: latency='measured' or 'table:DEVICE'")
        cons.append(Constraint(lat, max_latency_ms))
    return ArchitectureObjective(mapping, built, latency=lat, constraints=cons, dedupe=dedupe,
                                 early_reject=early_reject)


def best_architecture(study: optuna.Study, space: str | SearchSpace | ArchitectureMapping) -> Genotype:
    """The genotype of the study's best trial (single-objective)."""
    from nas.integrations.spaces import params_to_genotype

    try:
        best = study.best_trial
    except ValueError as e:
        raise NasError(f"study {study.study_name!r} has no complete trial yet") from e
    return params_to_genotype(space, best.params)
