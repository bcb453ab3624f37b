"""Bayesian optimization over a space's choices (``bo``): the :class:`PredictorSampler` as an ask/tell strategy.

``nas search --strategy bo`` runs :class:`~nas.integrations.samplers.PredictorSampler` -- a Gaussian
process on the one-hot choices, Thompson sampling over every architecture not yet tried where the space
is small enough to enumerate (NB201) and over mutated, recombined and uniform candidates elsewhere,
and every third trial multivariate TPE's proposal (the sampler's module docstring says why and what
it was measured against) -- inside the search loop (:func:`~nas.search.loop.run_search`), which adds
constraints, the fingerprint cache and resumption. One algorithm, one implementation: the strategy
keeps an in-memory Optuna study and asks the sampler through it.

A candidate told ``None`` (rejected by a constraint, or a failed evaluation) is recorded as a pruned
trial: the sampler never proposes it again and does not learn from it. The search loop also hands the
strategy its constraints as a predicate (:meth:`BayesianSearch.set_feasible`), so the model's proposal is
the best candidate that meets them rather than one the loop will reject (the sampler's ``feasible``).
The sampler's draws depend only on the seed, the trial numbers and the study's trials, so the state
is the list of answers: loading it replays them into a fresh study (``study.add_trial``) and the
search goes on as the uninterrupted one would. Single-objective.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from nas.errors import SearchError
from nas.search.base import STRATEGIES, StrategyBase, Value, scalar
from search_spaces.base import Genotype, SearchSpace


class BayesianSearch(StrategyBase):
    """:class:`~nas.integrations.samplers.PredictorSampler` driven by ask/tell (see the module docstring).

    ``sampler_kwargs`` go to the sampler (e.g. ``n_candidates``, ``interleave``, ``n_startup_trials``);
    ``surrogate`` is its model (a choice surrogate's name: ``gp`` or ``forest``).
    """

    name = "bo"

    def __init__(self, space: SearchSpace, seed: int = 0, surrogate: str = "gp", **sampler_kwargs: Any) -> None:
        from nas.integrations.spaces import architecture_mapping
        from nas.integrations.surrogates import SURROGATES

        super().__init__(space, seed)
        if surrogate not in SURROGATES:
            raise SearchError(f"bo: unknown surrogate {surrogate!r}; valid: {', '.join(SURROGATES.names())}")
        self.mapping = architecture_mapping(space)
        self.surrogate = surrogate
        self.sampler_kwargs = dict(sampler_kwargs)
        self.answers: list[tuple[str, float | None]] = []  # (genotype text, value or None), in the order told
        self._study: Any = None
        self._trial: Any = None
        self._feasible: Callable[[Genotype], bool] | None = None

    def set_feasible(self, feasible: Callable[[Genotype], bool] | None) -> None:
        """Known constraints (``genotype -> bool``), set by the search loop before the first ask (and again
        on resume: a predicate is not state). See the sampler's ``feasible``."""
        self._feasible = feasible
        if self._study is not None:
            self._study.sampler.feasible = feasible

    def ask(self) -> Genotype:
        from nas.integrations.spaces import suggest_architecture

        study = self._ensure_study()
        with _quiet():
            self._trial = study.ask()
            return self._asked(suggest_architecture(self._trial, self.mapping))

    def tell(self, genotype: Genotype, value: Value | None) -> None:
        from optuna.trial import TrialState

        self._check_tell(genotype)
        v = None if value is None else scalar(value)
        with _quiet():
            if v is None:
                self._study.tell(self._trial, state=TrialState.PRUNED)
            else:
                self._study.tell(self._trial, v)
                self.told += 1
        self._trial = None
        self.answers.append((self._t(genotype), v))

    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(), "surrogate": self.surrogate, "sampler_kwargs": self.sampler_kwargs,
                "answers": [[t, v] for t, v in self.answers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_base(state)
        self.surrogate = str(state["surrogate"])
        self.sampler_kwargs = dict(state["sampler_kwargs"])
        self.answers = [(str(t), None if v is None else float(v)) for t, v in state["answers"]]
        self._study, self._trial = None, None  # a trial in flight is asked again: the same number, the same proposal

    # ------------------------------------------------------------------ internals
    def _ensure_study(self) -> Any:
        if self._study is not None:
            return self._study
        import optuna
        from optuna.trial import TrialState, create_trial

        from nas.integrations.samplers import PredictorSampler

        sampler = PredictorSampler(self.mapping, self.surrogate, seed=self.seed, feasible=self._feasible,
                                   **self.sampler_kwargs)
        with _quiet():
            study = optuna.create_study(direction="maximize", sampler=sampler)
            dists = self.mapping.distributions()
            for text, v in self.answers:  # replay: the same trials, numbers and states
                params = self.mapping.params(self._g(text))
                if v is None:
                    study.add_trial(create_trial(params=params, distributions=dists, state=TrialState.PRUNED))
                else:
                    study.add_trial(create_trial(params=params, distributions=dists, value=v))
        self._study = study
        return study


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's per-trial INFO lines off (the search loop reports progress), the caller's level restored."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


STRATEGIES.register("bo")(BayesianSearch)
