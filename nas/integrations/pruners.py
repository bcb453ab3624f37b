"""Pruners for objectives that train: :class:`ZeroCostPruner` and :class:`LearningCurvePruner`.

Both subclass :class:`optuna.pruners.BasePruner`: Optuna calls ``prune(study, trial)`` from
``trial.should_prune()`` after the objective's ``trial.report(value, step)``; it returns whether the
trial should stop. Neither mutates the study except :class:`ZeroCostPruner`, which stores a trial's
zero-cost score in that trial's ``zc_score`` user attr (so the score is computed once per trial and
every worker sees the scores of the others).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.errors import NasError
from nas.integrations.curves import CurveEnsemble
from nas.integrations.lcpfn import LCPFN
from nas.integrations.spaces import ArchitectureMapping, InvalidArchitectureError, architecture_mapping
from search_spaces.base import SearchSpace

log = logging.getLogger(__name__)

#: The user attr that holds a trial's zero-cost score.
ZC_ATTR = "zc_score"

#: The curve models :class:`LearningCurvePruner` accepts by name.
CURVE_MODELS: dict[str, Any] = {"parametric": CurveEnsemble, "lcpfn": LCPFN.default}


class ZeroCostPruner(BasePruner):
    """Prune, at a trial's first report, an architecture whose zero-cost score is in the study's bottom quantile.

    Zero-cost proxies rank untrained networks (Abdelfattah et al., "Zero-Cost Proxies for
    Lightweight NAS", ICLR 2021) well enough to skip the worst ones before training them; this is
    their use as a pre-training filter. At the first ``should_prune()`` of a trial (after its first
    ``report``, normally step 0) the pruner scores the trial's architecture (its parameters, through
    the space's Optuna mapping) with ``score`` -- a proxy name, ``"ensemble"`` or an
    :class:`~nas.search.objectives.Objective` -- and prunes when the score is below the
    ``quantile`` of the scores of the study's other trials, once ``n_warmup_trials`` of them have one.
    At later steps it asks ``then`` (e.g. a :class:`LearningCurvePruner` or Optuna's ``MedianPruner``),
    or never prunes.

    A trial whose architecture cannot be scored (a proxy error) is not pruned.
    """

    def __init__(self, space: str | SearchSpace | ArchitectureMapping, score: Any = "synflow", *,
                 quantile: float = 0.25, n_warmup_trials: int = 10, then: BasePruner | None = None,
                 data: str = "digits", batch: int = 64, seed: int = 0, data_dir: str | None = None,
                 reference: int = 32, encoding: str = "categorical", prefix: str = "") -> None:
        if not 0.0 < quantile < 1.0:
            raise NasError(f"ZeroCostPruner: quantile must be in (0, 1); got {quantile}")
        if n_warmup_trials < 1:
            raise NasError(f"ZeroCostPruner: n_warmup_trials must be >= 1; got {n_warmup_trials}")
        from nas.integrations.objective import ArchitectureObjective, ObjectiveSettings, build_score

        self.mapping = space if isinstance(space, ArchitectureMapping) else architecture_mapping(space, encoding,
                                                                                                prefix)
        scorer = build_score(self.mapping.space, score, ObjectiveSettings(data, batch, seed, data_dir, reference))
        self._objective = ArchitectureObjective(self.mapping, scorer, dedupe=False)
        self.quantile, self.n_warmup_trials, self.then = quantile, n_warmup_trials, then

    def score(self, study: optuna.Study | None, params: dict[str, Any]) -> float | None:
        """The zero-cost score of the architecture of ``params`` (None if it cannot be scored)."""
        from nas.search.objectives import Objective

        scorer = self._objective.score
        if not isinstance(scorer, Objective):
            raise NasError("ZeroCostPruner scores with a proxy, 'ensemble' or an Objective, not a training function")
        self._objective.prepare(study)
        try:
            g = self.mapping.genotype(params)
        except InvalidArchitectureError:
            return None
        ev = scorer.evaluate(g, self.mapping.space.to_graph(g))
        return ev.value

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.last_step is None:
            return False
        if len(trial.intermediate_values) > 1:
            return self.then.prune(study, trial) if self.then is not None else False
        value = trial.user_attrs.get(ZC_ATTR)
        if value is None:
            value = self.score(study, trial.params)
            if value is None:
                return False
            study._storage.set_trial_user_attr(trial._trial_id, ZC_ATTR, float(value))  # shared with the workers
        others = [float(t.user_attrs[ZC_ATTR]) for t in study.get_trials(deepcopy=False)
                  if t.number != trial.number and ZC_ATTR in t.user_attrs]
        if len(others) < self.n_warmup_trials:
            return False
        return bool(value < np.quantile(others, self.quantile))


class LearningCurvePruner(BasePruner):
    """Prune when the extrapolated final value is unlikely to beat the best final value so far.

    After each ``report`` at or after ``n_warmup_steps`` reports, the trial's curve is extrapolated to
    ``max_step`` by the :class:`~nas.integrations.curves.CurveEnsemble` (parametric families with
    bootstrap uncertainty), giving samples of its final value; the trial is pruned when the share of
    samples better than the best final value among the study's complete trials is below
    ``threshold`` -- Domhan et al.'s (IJCAI 2015) rule, ``P(y_final > y_best) < delta``, with their
    ``delta = 0.05`` as default. The final value of a complete trial is its last intermediate value
    (its objective value if it reported none). Nothing is pruned before ``n_startup_trials`` trials
    are complete. The study's direction is respected: for ``minimize`` the curve is negated.

    ``model`` is the extrapolator: ``"parametric"`` (the default) or a
    :class:`~nas.integrations.curves.CurveEnsemble`, or ``"lcpfn"`` (the shipped prior-fitted
    transformer, :meth:`~nas.integrations.lcpfn.LCPFN.default`) or an
    :class:`~nas.integrations.lcpfn.LCPFN` (Adriaensen et al., NeurIPS 2023), which reads
    ``P(y_final > y_best)`` off its predictive distribution. The LC-PFN works in normalized units, so
    it needs the objective's ``value_range = (lo, hi)``, e.g. ``(0, 100)`` for an accuracy in percent
    (for ``minimize`` it is applied to the negated curve as ``(-hi, -lo)``); a reported value outside
    the range gives no decision. It extrapolates up to its ``max_epochs`` (50 for the shipped one), so
    ``max_step`` must be below that, and it decides from ``n_warmup_steps >= 1`` reports on (the
    parametric ensemble needs 3).

    Draws are seeded per trial and step (``[seed, trial.number, step]``), so a decision does not
    depend on which worker makes it; the LC-PFN's decisions are deterministic.
    """

    def __init__(self, max_step: int, *, n_warmup_steps: int = 3, n_startup_trials: int = 3,
                 threshold: float = 0.05, interval_steps: int = 1,
                 model: CurveEnsemble | LCPFN | str | None = None, value_range: tuple[float, float] | None = None,
                 seed: int = 0) -> None:
        if isinstance(model, str) or model is None:
            name = model or "parametric"
            if name not in CURVE_MODELS:
                raise NasError(f"LearningCurvePruner: unknown curve model {name!r}; valid: {sorted(CURVE_MODELS)}")
            resolved: CurveEnsemble | LCPFN = CURVE_MODELS[name]()
        else:
            resolved = model
        min_warmup = 1 if isinstance(resolved, LCPFN) else 3
        if max_step < 1 or n_warmup_steps < min_warmup or not 0.0 < threshold < 1.0 or interval_steps < 1:
            raise NasError(f"LearningCurvePruner: max_step={max_step} must be >= 1, n_warmup_steps={n_warmup_steps} "
                           f">= {min_warmup}, threshold={threshold} in (0, 1), interval_steps={interval_steps} >= 1")
        if isinstance(resolved, LCPFN):
            if value_range is None or len(value_range) != 2 or not value_range[1] > value_range[0]:
                raise NasError(f"LearningCurvePruner: the LC-PFN needs value_range=(lo, hi), the objective's range "
                               f"(e.g. (0, 100) for an accuracy in percent); got {value_range}")
            if max_step >= resolved.max_epochs:
                raise NasError(f"LearningCurvePruner: the LC-PFN extrapolates to step {resolved.max_epochs - 1} at "
                               f"most (curves of {resolved.max_epochs} epochs); got max_step={max_step}")
        self.max_step, self.n_warmup_steps, self.n_startup_trials = max_step, n_warmup_steps, n_startup_trials
        self.threshold, self.interval_steps = threshold, interval_steps
        self.model = resolved
        self.value_range = value_range
        self.seed = seed

    def best_final(self, study: optuna.Study) -> float | None:
        """The best final value among complete trials (in the study's orientation), or None before startup."""
        finals = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.intermediate_values:
                finals.append(t.intermediate_values[max(t.intermediate_values)])
            elif t.values is not None:
                finals.append(t.values[0])
        if len(finals) < self.n_startup_trials:
            return None
        return max(finals) if study.direction == StudyDirection.MAXIMIZE else min(finals)

    def probability_of_improvement(self, study: optuna.Study, trial: FrozenTrial) -> float | None:
        """``P(final value beats the best so far)`` for ``trial``, or None when no decision is due."""
        step = trial.last_step
        if step is None or step >= self.max_step:
            return None
        steps = sorted(s for s, v in trial.intermediate_values.items() if np.isfinite(v))
        if len(steps) < self.n_warmup_steps or (len(steps) - self.n_warmup_steps) % self.interval_steps:
            return None
        best = self.best_final(study)
        if best is None:
            return None
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        values = [sign * trial.intermediate_values[s] for s in steps]
        rng = np.random.default_rng([self.seed, trial.number, step])
        try:
            if isinstance(self.model, LCPFN):
                assert self.value_range is not None  # checked in __init__
                lo, hi = self.value_range
                ex: Any = self.model.extrapolate(steps, values, self.max_step, rng,
                                                 value_range=(lo, hi) if sign > 0 else (-hi, -lo))
            else:
                ex = self.model.extrapolate(steps, values, self.max_step, rng)
        except NasError as e:
            log.info("trial %d: no extrapolation at step %d: %s", trial.number, step, e)
            return None
        return ex.prob_greater(sign * best)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        p = self.probability_of_improvement(study, trial)
        return p is not None and p < self.threshold
