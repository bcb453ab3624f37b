r"""A surrogate-assisted sampler (:class:`PredictorSampler`) and the sampler factory of the CLI.

:class:`PredictorSampler` follows BANANAS (White, Neiswanger & Savani, "BANANAS: Bayesian
Optimization with Neural Architectures for Neural Architecture Search", AAAI 2021): fit a predictor
with uncertainty on the evaluated architectures, generate candidates, and evaluate the candidate that
maximizes an acquisition.

* **Candidates** (``n_candidates`` per trial): with the default choice surrogate, a quarter are
  single-edit mutations of the ``n_parents`` best architectures so far (``mutation_fraction``), half
  uniform crossovers of two of them, each child mutated once more with probability 1/2
  (``crossover_fraction``), and the rest uniform draws from the space. Crossover is there because
  mutations alone walk into local optima: on NAS-Bench-201 (``cifar10valid_valid_acc``) the cells
  within 0.5 points of the best include strict local optima -- no single edit improves them, e.g.
  the skip connection on another edge than the optimum's. With mutations and uniform draws only, 5
  of 20 searches (seeds 100-119) were stuck in one at 100 evaluations, and 3 of the benchmark's 10
  still at 300. Recombining two good cells moves two or more edges at once, as TPE's per-parameter
  sampling from the good trials does. Crossover works on the sampler's parameters, so it needs
  nothing from the space; a child the space rejects (an invalid NB101 cell) is dropped.
* **Small spaces: every architecture is a candidate** (``max_grid``, default 50,000 combinations of
  choices; NB201 has 15,625). With the GP and Thompson sampling, the candidates of a model trial are
  all the architectures not in the study, ranked by one joint posterior draw over the whole grid
  (:meth:`~nas.integrations.surrogates.ChoiceGP.sample_grid`, about 0.1 s at 300 trials), instead of
  the generated ones above. Generated candidates only reach what mutations and crossovers of the best
  trials, or a few uniform draws, happen to produce, and under a known constraint the best network
  can be out of their reach: on NB201 with ``table:pixel3`` at most its median, the feasible network
  with the best validation accuracy has only infeasible networks among its best one-edit
  neighbours. Development seeds 100-119 (never the benchmark's 0-9; ``run_search`` with the
  benchmark's configuration, 300 evaluations, validation accuracy as the objective): the search ended
  on that network in 14 of 20 searches with generated candidates (mean test-accuracy gap to the
  constrained optimum 0.351 +- 0.105), in 19 of 20 with the whole grid (0.286 +- 0.020; the floor,
  that network's own gap, is 0.282). Unconstrained, on the same seeds, both found the best cell
  by validation in 19 of 20 searches by 100 evaluations and in all 20 by 200; through
  ``benchmarks.optuna_search --first-seed 500 --seeds 60 --budgets 50,100``, the mean regret at 50 /
  100 evaluations was 0.121 / 0.009 with the whole grid (1 search of 60 more than 0.1 below the
  optimum at 100) and 0.191 / 0.041 with generated candidates (5 of 60). The generated candidates
  below remain for larger spaces (DARTS, MobileNetV3, NB101) and for models without ``sample_grid``.
* **Acquisition** (``acquisition``): ``"thompson"`` (the choice surrogate's default) evaluates the argmax of ONE draw
  from the model's posterior -- for the GP, a joint draw over the candidates; for the forest, the
  prediction of one of its trees, picked by the trial's random stream (the bootstrap ensemble's
  Thompson sampling; BANANAS's independent Thompson sampling draws each candidate from
  ``N(mean, std)``, which is what a model without posterior draws gets here); ``"ucb"`` the upper
  confidence bound ``mean + kappa * std`` (Srinivas et al., "Gaussian Process Optimization in the
  Bandit Setting", ICML 2010). Thompson sampling and the candidate shares were chosen with the forest
  on NAS-Bench-201 seeds 100-139, apart from the benchmark's seeds 0-9: UCB (``kappa=1``) kept returning
  to the model's favourite basin (0.13 points of mean regret at 100 evaluations, Thompson 0.035 on
  seeds 100-119); a third of each kind of candidate gave 0.087 +- 0.162 at 100 evaluations, a quarter
  mutations and half crossovers 0.033 +- 0.039.
* **The surrogate** (``predictor``, default ``"gp"``): on seeds 100-159 (and confirmed on 200-239), with
  the candidates and acquisition above, the mean regret (points of ``cifar10valid_valid_acc``) was

  ============  ===============  ===============  ===============  ===============
  seeds         100-159, at 50   100-159, at 100  200-239, at 50   200-239, at 100
  ============  ===============  ===============  ===============  ===============
  ``gp``        0.142 +- 0.249   0.041 +- 0.133   0.259 +- 0.385   0.023 +- 0.102
  ``forest``    0.316 +- 0.293   0.055 +- 0.111   0.486 +- 0.451   0.151 +- 0.229
  TPE           0.178 +- 0.153   0.054 +- 0.106   0.257 +- 0.234   0.072 +- 0.108
  ============  ===============  ===============  ===============  ===============

  (TPE: Optuna's multivariate TPE through ``suggest_architecture``.) The GP beat TPE on 24 of seeds
  100-159 at 100 evaluations and lost on 5 (at 300, on seeds 100-119: 0.003 +- 0.012, TPE
  0.024 +- 0.103); its misses are the strict local optima described above (4-5 edits from the optimum, e.g. the
  skip connection on another edge). Extra-trees (0.087 at 100), 512 candidates (forest 0.070, GP 0.043),
  adding the incumbent's whole 1-edit neighbourhood (forest 0.103, GP 0.056), a linear-plus-Hamming
  kernel (0.032 on 100-159, 0.058 on 200-239), UCB with the GP (0.079) and the GP on the raw values
  instead of the copula (0.100) did not help.
* **Every third trial is TPE's** (``interleave``, default 3 with a choice surrogate): after start-up,
  a trial whose number is ``2 mod 3`` takes the proposal of Optuna's multivariate TPE, seeded from
  ``(seed, trial number)``, unless it repeats an architecture of the study. In the searches that stay in
  a strict local optimum, the GP's data lies in that basin and the model ranks the optimum's cells
  below average (posterior mean -0.6 to -1.4 in copula units against +1.4 to +1.6 for the incumbent,
  four such searches of seeds 300-339 at 100 evaluations); so does a ridge model on the one-hot or on
  its pairwise products, so a kernel change alone does not fix it (a Hamming-plus-additive kernel
  did not: 0.095 on seeds 300-319, the GP alone 0.094). TPE's per-parameter densities of the good
  trials move several edges at once and do not share the GP's error. Mean regret at 100 evaluations
  (development seeds only, never the benchmark's 0-9; searches stuck above 0.1 in brackets):

  ================================  ===============  ===============  ===============
  seeds                             300-339          400-439          500-559
  ================================  ===============  ===============  ===============
  GP alone (the earlier default)    0.051 (5/40)     0.071 (6/40)     --
  GP, TPE every 3rd trial           0.001 (0/40)     0.072 (6/40)     0.041 (5/60)
  GP, TPE every 2nd trial           0.041 (4/40)     0.039 (4/40)     --
  TPE                               0.075 (10/40)    0.086 (10/40)    0.079 (16/60)
  ================================  ===============  ===============  ===============

  (300-339 and 400-439: a subclass of the sampler in a scratch script with the same logic; 500-559:
  this implementation, through ``benchmarks.optuna_search --first-seed 500 --seeds 60``.) Every 4th trial
  gave 0.026 on 300-339; every 3rd with 256 candidates 0.001 and 0.115, with 20 start-up trials 0.047
  and 0.060. A graph predictor keeps ``interleave=0`` (not measured).
* **Defaults per kind of model.** The defaults above are for a choice surrogate, the only kind
  measured on the benchmark. A graph predictor keeps the earlier defaults, UCB with half mutations
  and half uniform draws: on a toy objective (the count of 3x3 convolutions in an NB201 cell,
  ``text_ridge``, 20 trials, 8 seeds) they found 5.1 of 6 on average, against 4.2 with independent
  Thompson draws from ``N(mean, std)`` and the crossover-heavy mix -- a bagged predictor's spread
  makes independent draws noisy, where a forest's single tree or a GP's joint draw is one coherent
  function.

Two kinds of model rank the candidates:

* a **choice surrogate** (:mod:`nas.integrations.surrogates`) on the one-hot encoding of the
  architecture's choices: ``"gp"`` (the default), a Gaussian process with an exponentiated Hamming
  kernel whose length-scale and noise are picked by marginal likelihood, or ``"forest"``, SMAC's
  random forest. It needs no graph, so a trial with 128 candidates costs milliseconds instead of the
  ~1 s that building 128 graphs took, and it is cheap enough to refit after every complete trial
  (``refit_every`` defaults to 1 for it; the GP's fit grows as ``n^3``, about half a second at 1,000 trials);
* a graph :class:`~predictors.base.Predictor` (a registered name such as ``graph_gbdt`` or an
  instance): it reads :class:`~nas.ir.ArchGraph`\ s, can be pretrained or zero-shot (fitted on another
  benchmark), and transfers across spaces. Graphs are cached by genotype for the sampler's lifetime,
  and ``refit_every`` defaults to 10 for it (a bagged GBDT fit takes seconds).

Choices, and why:

* **Restart- and worker-safe state.** The sampler keeps nothing that storage does not hold. Every
  random draw of trial ``t`` comes from ``numpy.random.default_rng([seed, t.number])``, and the
  predictor is refitted on a schedule that depends only on the study: after ``K`` complete trials,
  where ``K`` is the largest multiple of ``refit_every`` reached, on the first ``K`` complete trials
  in trial-number order, seeded with ``seed``. A sampler rebuilt from storage (a restart, another
  worker) therefore fits the same predictor and proposes what the original would have.
* **No repeats.** Candidates whose genotype already appears in the study (complete, pruned, running
  or waiting) are dropped, so workers that sample at the same time do not pick the same architecture.
* **Known constraints** (``feasible``, a ``genotype -> bool`` predicate; ``nas search`` hands the
  strategy ``bo`` its latency, parameter and FLOP bounds this way): the model's proposal is the
  candidate with the best acquisition that the predicate accepts, checked lazily in acquisition order.
  Without it, the model's favourites under a bound are mostly infeasible, rejected and proposed anew:
  on NB201 with ``table:pixel3`` at most its median (validation accuracy as the objective, 300
  evaluations, development seeds 100-109 and 140-159, generated candidates) a search asked 1,251 candidates on average,
  951 of them rejected; with it, 338 (about 40 rejected: the start-up draws and TPE's proposals are
  not filtered). What the search finds is unchanged within the noise: the best feasible network by
  validation accuracy in 18 of the 30 searches without it, 17 with it (mean test-accuracy gap to the
  constrained optimum 0.37 and 0.39, std 0.13-0.14).
* **Warm start.** Before ``n_startup_trials`` complete trials the sampler draws uniformly from the
  space (valid genotypes only, unlike independent per-parameter sampling for NB101). A
  ``pretrained`` predictor (a zero-shot one, or one fitted on another benchmark) is used as it is from
  the first trial instead, and replaced by a copy refitted on the study's trials once there are
  ``n_startup_trials`` of them (never, with ``refit_every=0``).
* Parameters outside the architecture (a learning rate next to it) go to ``independent_sampler``
  (a seeded :class:`~optuna.samplers.RandomSampler` by default).

Single-objective only. The predictor is fitted on (and a pretrained one must predict) the objective
in the study's own units; for ``direction="minimize"`` the acquisitions use ``-mean`` (and minus each draw).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.errors import NasError, PredictorError
from nas.integrations.spaces import ArchitectureMapping, InvalidArchitectureError, architecture_mapping
from nas.integrations.surrogates import gaussian_copula
from search_spaces.base import Genotype, SearchSpace

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from nas.integrations.surrogates import ChoiceSurrogate
    from nas.ir import ArchGraph
    from predictors.base import Predictor

    Model = Predictor | ChoiceSurrogate

log = logging.getLogger(__name__)

class PredictorSampler(BaseSampler):
    """Rank many candidate architectures with a predictor; suggest the best by the acquisition.

    Args:
        space: the search space (name, ``NAME:ARGS``, instance or an :class:`ArchitectureMapping`).
        predictor: a choice surrogate's name (``"gp"``, the default, or ``"forest"``; see
            :data:`~nas.integrations.surrogates.SURROGATES`), a registered graph predictor's name (built
            with ``seed``), or an instance of either (deep-copied before each fit).
        acquisition: ``"thompson"`` (one posterior draw) or ``"ucb"`` (``mean + kappa * std``); default:
            Thompson for a choice surrogate, UCB for a graph predictor.
        kappa: exploration weight of the ``"ucb"`` acquisition.
        n_candidates: candidates scored per trial.
        mutation_fraction: share of candidates that are single-edit mutations of the ``n_parents`` best
            trials (default 0.25 for a choice surrogate, 0.5 for a graph predictor).
        crossover_fraction: share that are uniform crossovers of two of them, mutated once more with
            probability 1/2 (default 0.5 for a choice surrogate, 0 for a graph predictor); the rest
            are uniform draws from the space.
        n_startup_trials: complete trials before the predictor is used (unless ``pretrained``).
        refit_every: refit after every this many new complete trials (0: fit once, or never when pretrained;
            None: 1 for a choice surrogate, 10 for a graph predictor).
        pretrained: ``predictor`` is already fitted; rank with it from the first trial.
        independent_sampler: for parameters that are not part of the architecture.
        target_transform: ``"copula"`` (default) fits the model on the Gaussian-copula transform of the
            objective values (:func:`gaussian_copula`), ``"none"`` on the values themselves.
        interleave: every ``interleave``-th trial (by number) after start-up takes multivariate TPE's
            proposal instead of the model's, unless it repeats an architecture (0: never; None: 3 for a
            choice surrogate, 0 for a graph predictor). See the module docstring.
        feasible: known constraints, ``genotype -> bool``: the model's proposal is the best candidate
            by the acquisition that it accepts (see the module docstring). Start-up draws and TPE's
            proposals are not filtered. ``None``: every candidate is acceptable.
        max_grid: with a surrogate that draws over a whole grid (the GP's ``sample_grid``) and Thompson
            sampling, a space of at most this many combinations of choices has every architecture not in
            the study as a candidate, instead of the ``n_candidates`` generated ones (0: never). See the
            module docstring.
        seed: seeds every draw and the predictor's fits.
    """

    def __init__(
        self,
        space: str | SearchSpace | ArchitectureMapping,
        predictor: str | Predictor | ChoiceSurrogate = "gp",
        *,
        acquisition: str | None = None,
        kappa: float = 1.0,
        n_candidates: int = 128,
        mutation_fraction: float | None = None,
        crossover_fraction: float | None = None,
        n_parents: int = 10,
        n_startup_trials: int = 10,
        refit_every: int | None = None,
        pretrained: bool = False,
        encoding: str = "categorical",
        prefix: str = "",
        independent_sampler: BaseSampler | None = None,
        target_transform: str = "copula",
        interleave: int | None = None,
        feasible: Callable[[Genotype], bool] | None = None,
        max_grid: int = 50_000,
        seed: int = 0,
    ) -> None:
        self.on_choices = _is_choice_model(predictor)
        if interleave is None:
            interleave = 3 if self.on_choices else 0
        if interleave < 0 or interleave == 1:
            raise NasError(f"PredictorSampler: interleave must be 0 (off) or >= 2; got {interleave}")
        self.interleave = interleave
        self.feasible = feasible
        if max_grid < 0:
            raise NasError(f"PredictorSampler: max_grid must be >= 0; got {max_grid}")
        self.max_grid = max_grid
        self._grid: tuple[list[Genotype], list[str], np.ndarray] | None = None  # built on first use
        # defaults per kind of model (see the module docstring): (acquisition, mutation, crossover)
        default = ("thompson", 0.25, 0.5) if self.on_choices else ("ucb", 0.5, 0.0)
        acquisition = default[0] if acquisition is None else acquisition
        mutation_fraction = default[1] if mutation_fraction is None else mutation_fraction
        crossover_fraction = default[2] if crossover_fraction is None else crossover_fraction
        if (n_candidates < 1 or n_parents < 1 or min(mutation_fraction, crossover_fraction) < 0.0
                or mutation_fraction + crossover_fraction > 1.0):
            raise NasError(f"PredictorSampler: n_candidates={n_candidates} must be >= 1, n_parents={n_parents} >= 1, "
                           f"mutation_fraction={mutation_fraction} and crossover_fraction={crossover_fraction} >= 0 "
                           "with a sum <= 1")
        if acquisition not in ACQUISITIONS:
            raise NasError(f"PredictorSampler: unknown acquisition {acquisition!r}; valid: {', '.join(ACQUISITIONS)}")
        self.acquisition = acquisition
        if n_startup_trials < 2 and not pretrained:
            raise NasError(f"PredictorSampler: a predictor needs at least 2 trials to fit; n_startup_trials="
                           f"{n_startup_trials}")
        if refit_every is None:
            refit_every = 1 if self.on_choices else 10
        if target_transform not in TARGET_TRANSFORMS:
            raise NasError(f"PredictorSampler: unknown target_transform {target_transform!r}; valid: "
                           f"{', '.join(TARGET_TRANSFORMS)}")
        self.target_transform = target_transform
        if refit_every < 0:
            raise NasError(f"PredictorSampler: refit_every must be >= 0; got {refit_every}")
        self.mapping = space if isinstance(space, ArchitectureMapping) else architecture_mapping(space, encoding,
                                                                                                prefix)
        self.space = self.mapping.space
        self.predictor_spec = predictor
        self.kappa = float(kappa)
        self.n_candidates, self.n_parents = n_candidates, n_parents
        self.mutation_fraction, self.crossover_fraction = mutation_fraction, crossover_fraction
        self.n_startup_trials, self.refit_every, self.pretrained = n_startup_trials, refit_every, pretrained
        self.seed = int(seed)
        self._independent = independent_sampler or optuna.samplers.RandomSampler(seed=seed)
        self._model: Model | None = predictor if pretrained and not isinstance(predictor, str) else None
        if pretrained and isinstance(predictor, str):
            raise NasError("PredictorSampler: pretrained=True needs a fitted Predictor instance, not a name")
        self._fitted_on: tuple[int, ...] | None = None  # trial numbers of the current fit
        self._graphs: dict[str, ArchGraph] = {}  # by genotype text: candidates recur (mutations of the parents)

    # ------------------------------------------------------------------ BaseSampler
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.mapping.distributions()

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        self._raise_error_if_multi_objective(study)
        rng = np.random.default_rng([self.seed, trial.number])
        complete = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
        complete = [t for t in complete if self._has_arch(t)]
        model = self._current_model(study, complete)
        seen = self._seen(study, trial)
        if model is None:
            g = self._fresh(rng, seen)
            return self.mapping.params(g)
        if self.interleave and len(complete) >= self.n_startup_trials and \
                trial.number % self.interleave == self.interleave - 1:
            params = self._inner_proposal(study, trial, search_space, seen)
            if params is not None:
                return params
        whole = self._whole_grid(model, rng, seen, self._sign(study))
        if whole is not None:
            candidates, acq = whole
        else:
            candidates = self._candidates(rng, self._parents(study, complete), seen)
            acq = self._acquire(model, candidates, rng, self._sign(study)) if candidates else np.empty(0)
        if not candidates:  # everything nearby was seen: fall back to a fresh draw
            return self.mapping.params(self._fresh(rng, seen))
        acq = np.where(np.isfinite(acq), acq, -np.inf)
        return self.mapping.params(self._choose(candidates, acq, rng, seen))

    def _choose(self, candidates: list[Genotype], acq: np.ndarray, rng: np.random.Generator,
                seen: set[str]) -> Genotype:
        """The candidate with the best acquisition that ``feasible`` accepts (ties broken by the trial's own
        stream); checked lazily in that order, so a constraint costs a few checks, not one per candidate,
        and each refused candidate costs O(1) after one sort. With none accepted, a fresh draw (which the
        caller's constraint may still reject)."""
        acq = np.asarray(acq, dtype=float)
        if np.isnan(acq).any():
            raise NasError("PredictorSampler: the acquisition of a candidate is NaN (the model's draw or "
                           "prediction failed)")
        order = np.argsort(-acq, kind="stable")  # best first; ties in candidate order
        start = 0
        while start < len(order):  # one level of tied acquisitions at a time
            stop = start + 1
            while stop < len(order) and acq[order[stop]] == acq[order[start]]:
                stop += 1
            tied = [int(i) for i in order[start:stop]]
            while tied:
                i = tied.pop(int(rng.integers(len(tied))))
                if self.feasible is None or self.feasible(candidates[i]):
                    return candidates[i]
            start = stop
        return self._fresh(rng, seen)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._independent.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._independent.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()

    # ------------------------------------------------------------------ internals
    def _has_arch(self, t: FrozenTrial) -> bool:
        return all(n in t.params for n in self.mapping.names())

    def _genotype(self, t: FrozenTrial) -> Genotype | None:
        try:
            return self.mapping.genotype(t.params)
        except InvalidArchitectureError:
            return None

    def _graph(self, g: Genotype) -> ArchGraph:
        key = self.space.format(g)
        if key not in self._graphs:
            self._graphs[key] = self.space.to_graph(g)
        return self._graphs[key]

    def _seen(self, study: optuna.Study, trial: FrozenTrial) -> set[str]:
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        out = set()
        for t in study.get_trials(deepcopy=False, states=states):
            if t.number != trial.number and self._has_arch(t):
                g = self._genotype(t)
                if g is not None:
                    out.add(self.space.format(g))
        return out

    def _inner_proposal(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution],
                        seen: set[str]) -> dict[str, Any] | None:
        """Multivariate TPE's proposal for ``trial``, seeded from ``(seed, trial.number)``; ``None`` if it
        repeats an architecture of the study or names none."""
        import warnings

        tpe_seed = int(np.random.default_rng([self.seed, trial.number, 1]).integers(2**31))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            tpe = optuna.samplers.TPESampler(seed=tpe_seed, n_startup_trials=self.n_startup_trials, multivariate=True)
        params = tpe.sample_relative(study, trial, search_space)
        if set(params) != set(search_space):
            return None
        try:
            g = self.mapping.genotype(params)
        except InvalidArchitectureError:
            return None
        return None if self.space.format(g) in seen else params

    def _fresh(self, rng: np.random.Generator, seen: set[str], tries: int = 1000) -> Genotype:
        g = self.space.sample(rng)
        for _ in range(tries):
            if self.space.format(g) not in seen:
                return g
            g = self.space.sample(rng)
        return g  # a space (nearly) exhausted: a repeat is all there is

    def _sign(self, study: optuna.Study) -> float:
        return -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0

    def _parents(self, study: optuna.Study, complete: list[FrozenTrial]) -> list[Genotype]:
        sign = self._sign(study)
        ranked = sorted(complete, key=lambda t: (-sign * float(t.values[0]), t.number))
        out = []
        for t in ranked[: self.n_parents]:
            g = self._genotype(t)
            if g is not None:
                out.append(g)
        return out

    def _candidates(self, rng: np.random.Generator, parents: list[Genotype], seen: set[str]) -> list[Genotype]:
        from nas.integrations.surrogates import propose

        return propose(self.mapping, rng, parents, seen, self.n_candidates, self.mutation_fraction,
                       self.crossover_fraction)

    def _whole_grid(self, model: Model, rng: np.random.Generator, seen: set[str],
                    sign: float) -> tuple[list[Genotype], np.ndarray] | None:
        """Every architecture of the space not in ``seen``, and one joint posterior draw for each; ``None``
        unless the model draws over a grid, the acquisition is Thompson's and the grid has at most
        ``max_grid`` points."""
        draw = getattr(model, "sample_grid", None)
        if not (self.on_choices and self.acquisition == "thompson" and callable(draw)
                and 0 < self.mapping.grid_size() <= self.max_grid):
            return None
        if self._grid is None:
            points = self.mapping.grid()
            index = np.array([i for i, g in enumerate(points) if g is not None], dtype=np.int64)
            genotypes = [g for g in points if g is not None]
            self._grid = (genotypes, [self.space.format(g) for g in genotypes], index)
        genotypes, texts, index = self._grid
        widths = [len(d.choices) for d in self.mapping.dimensions]
        values = sign * np.asarray(draw(widths, rng), float)[index]
        keep = [i for i, t in enumerate(texts) if t not in seen]
        return [genotypes[i] for i in keep], values[keep]

    def _predict(self, model: Model, genotypes: list[Genotype]) -> tuple[np.ndarray, np.ndarray]:
        if self.on_choices:
            return model.predict(self.mapping.onehot(genotypes))  # type: ignore[arg-type]
        return model.predict([self._graph(g) for g in genotypes])  # type: ignore[arg-type]

    def _acquire(self, model: Model, genotypes: list[Genotype], rng: np.random.Generator, sign: float) -> np.ndarray:
        """The acquisition of each candidate, oriented so that higher is better.

        The model speaks in the study's units (a pretrained one too): ``sign`` is -1 for a minimized study.
        """
        draw = getattr(model, "sample", None)
        if self.acquisition == "thompson" and self.on_choices and callable(draw):
            return sign * np.asarray(draw(self.mapping.onehot(genotypes), rng), float)
        mean, std = (np.asarray(v, float) for v in self._predict(model, genotypes))
        if self.acquisition == "thompson":  # independent draws from N(mean, std)
            return sign * (mean + std * rng.standard_normal(len(mean)))
        return sign * mean + self.kappa * std

    def _current_model(self, study: optuna.Study, complete: list[FrozenTrial]) -> Model | None:
        n = len(complete)
        if n < self.n_startup_trials:
            return self._model if self.pretrained else None
        if self.refit_every == 0:
            k = self.n_startup_trials
            if self.pretrained:
                return self._model
        else:
            k = self.n_startup_trials + (n - self.n_startup_trials) // self.refit_every * self.refit_every
        chosen = complete[:k]
        numbers = tuple(t.number for t in chosen)
        if numbers != self._fitted_on:
            self._model = self._fit(study, chosen)
            self._fitted_on = numbers
        return self._model

    def _fit(self, study: optuna.Study, trials: list[FrozenTrial]) -> Model:
        from nas.integrations.surrogates import SURROGATES
        from predictors import PREDICTORS

        genotypes, y = [], []
        for t in trials:
            g = self._genotype(t)
            if g is not None and np.isfinite(t.values[0]):
                genotypes.append(g)
                y.append(float(t.values[0]))
        model: Any
        if isinstance(self.predictor_spec, str):
            registry: Any = SURROGATES if self.on_choices else PREDICTORS
            model = registry.resolve(self.predictor_spec, seed=self.seed)
        else:
            model = copy.deepcopy(self.predictor_spec)
        target = np.asarray(y, dtype=np.float64)
        if self.target_transform == "copula":
            target = gaussian_copula(target)
        try:
            if self.on_choices:
                model.fit(self.mapping.onehot(genotypes), target)
            else:
                model.fit([self._graph(g) for g in genotypes], target)
        except PredictorError as e:
            raise PredictorError(f"PredictorSampler: fitting {type(model).__name__} on {len(y)} trials failed: "
                                 f"{e}") from e
        log.info("PredictorSampler: refitted %s on %d trials", type(model).__name__, len(y))
        return model


TARGET_TRANSFORMS = ("copula", "none")
ACQUISITIONS = ("thompson", "ucb")


def _is_choice_model(predictor: Any) -> bool:
    """Whether ``predictor`` names or is a choice surrogate (else a graph Predictor); unknown names raise."""
    from nas.integrations.surrogates import SURROGATES, ChoiceSurrogate
    from predictors import PREDICTORS

    if isinstance(predictor, str):
        if predictor in SURROGATES:
            return True
        if predictor in PREDICTORS:
            return False
        raise NasError(f"PredictorSampler: unknown predictor {predictor!r}; choice surrogates: "
                       f"{', '.join(SURROGATES.names())}; graph predictors: {', '.join(PREDICTORS.names())}")
    from predictors.base import Predictor

    if isinstance(predictor, Predictor):
        return False
    if isinstance(predictor, ChoiceSurrogate):
        return True
    raise NasError(f"PredictorSampler: a predictor is a name, a graph Predictor or a ChoiceSurrogate; got "
                   f"{type(predictor).__name__}")


def _tpe(o: _SamplerOptions) -> BaseSampler:
    return optuna.samplers.TPESampler(seed=o.seed, n_startup_trials=o.n_startup_trials, multivariate=True,
                                      constraints_func=o.constraints_func)


def _random(o: _SamplerOptions) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=o.seed)


def _nsga2(o: _SamplerOptions) -> BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=o.seed, constraints_func=o.constraints_func)


def _gp(o: _SamplerOptions) -> BaseSampler:
    return optuna.samplers.GPSampler(seed=o.seed, n_startup_trials=o.n_startup_trials,
                                     constraints_func=o.constraints_func)


def _cmaes(o: _SamplerOptions) -> BaseSampler:
    import importlib.util

    if importlib.util.find_spec("cmaes") is None:
        raise NasError("--sampler cmaes needs the cmaes package: pip install cmaes")
    return optuna.samplers.CmaEsSampler(seed=o.seed, n_startup_trials=o.n_startup_trials,
                                        independent_sampler=optuna.samplers.RandomSampler(seed=o.seed))


def _predictor(o: _SamplerOptions) -> BaseSampler:
    return PredictorSampler(o.space, o.predictor, seed=o.seed, n_startup_trials=max(2, o.n_startup_trials),
                            acquisition=o.acquisition, kappa=o.kappa, feasible=o.feasible)


@dataclass(frozen=True)
class _SamplerOptions:
    space: Any
    seed: int
    constraints_func: Any
    n_startup_trials: int
    predictor: str
    kappa: float
    acquisition: str | None
    feasible: Callable[[Genotype], bool] | None


_FACTORIES = {"tpe": _tpe, "random": _random, "nsga2": _nsga2, "gp": _gp, "cmaes": _cmaes, "predictor": _predictor}
#: Sampler names :func:`create_sampler` takes; ``cmaes`` needs the ``index`` encoding (see :func:`sampler_encoding`).
SAMPLER_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def sampler_encoding(name: str) -> str:
    """The architecture encoding a named sampler needs: ``index`` for CMA-ES, else ``categorical``."""
    return "index" if name == "cmaes" else "categorical"


def create_sampler(name: str, space: str | SearchSpace | ArchitectureMapping, *, seed: int = 0,
                   constraints_func: Any = None, n_startup_trials: int = 10, predictor: str = "gp",
                   acquisition: str | None = None, kappa: float = 1.0,
                   feasible: Callable[[Genotype], bool] | None = None) -> BaseSampler:
    """An Optuna sampler by name (the CLI's ``--sampler``): ``tpe`` (multivariate), ``random``, ``nsga2``,
    ``gp``, ``cmaes`` or ``predictor`` (:class:`PredictorSampler`). ``constraints_func`` goes to the
    samplers that take one (TPE, NSGA-II, GP), ``feasible`` (known constraints as a ``genotype -> bool``
    predicate, e.g. :attr:`~nas.integrations.objective.ArchitectureObjective.feasible`) to ``predictor``."""
    if name not in _FACTORIES:
        raise NasError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLER_NAMES)}")
    return _FACTORIES[name](_SamplerOptions(space, seed, constraints_func, n_startup_trials, predictor, kappa,
                                            acquisition, feasible))
