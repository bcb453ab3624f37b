"""Our spaces, proxies, predictors and cost models inside Optuna studies.

Optuna (Akiba et al., "Optuna: A Next-generation Hyperparameter Optimization Framework", KDD 2019)
is where users already run their searches; this module is the public face of the integration and
re-exports its parts:

* :func:`suggest_architecture`, :func:`architecture_params`, :func:`params_to_genotype`,
  :func:`enqueue_architecture` -- any registered space as Optuna parameters, and back
  (:mod:`nas.integrations.spaces`);
* :func:`make_objective` -- a proxy, the ensemble, a predictor or a training function as an
  objective, optionally two-objective with latency and constrained (:mod:`nas.integrations.objective`);
* :class:`PredictorSampler` and :func:`create_sampler` (:mod:`nas.integrations.samplers`), with the
  cheap choice surrogates it uses by default (:class:`ChoiceGP`, :class:`ChoiceForest`,
  :mod:`nas.integrations.surrogates`);
* :class:`ZeroCostPruner` and :class:`LearningCurvePruner` (:mod:`nas.integrations.pruners`), whose
  curve model is a parametric ensemble or the shipped LC-PFN (:class:`LCPFN`, ``model="lcpfn"``);
* :func:`open_storage` and :func:`run_worker` for many workers on one study
  (:mod:`nas.integrations.distributed`; ``nas search --storage URL --study NAME`` on the command line).

Everything works with ``study.optimize`` and with ``study.ask`` / ``study.tell``::

    import optuna
    from nas.integrations.optuna import PredictorSampler, make_objective

    objective = make_objective("nb201", "synflow")
    study = optuna.create_study(direction="maximize", sampler=PredictorSampler("nb201", seed=0))
    study.optimize(objective, n_trials=50)
    print(study.best_trial.user_attrs["arch"])
"""

from __future__ import annotations

from nas.integrations.curves import CurveEnsemble, Extrapolation
from nas.integrations.distributed import BudgetExhausted, StorageError, open_storage, run_worker
from nas.integrations.lcpfn import LCPFN
from nas.integrations.objective import ArchitectureObjective, best_architecture, make_objective
from nas.integrations.pruners import LearningCurvePruner, ZeroCostPruner
from nas.integrations.samplers import (
    SAMPLER_NAMES,
    PredictorSampler,
    create_sampler,
    sampler_encoding,
)
from nas.integrations.spaces import (
    CODECS,
    ArchitectureMapping,
    InvalidArchitectureError,
    UnsupportedDistributionError,
    architecture_mapping,
    architecture_params,
    enqueue_architecture,
    params_to_genotype,
    suggest_architecture,
)
from nas.integrations.surrogates import SURROGATES, ChoiceForest, ChoiceGP, ChoiceSurrogate, gaussian_copula

__all__ = [
    "CODECS",
    "LCPFN",
    "SAMPLER_NAMES",
    "SURROGATES",
    "ArchitectureMapping",
    "ArchitectureObjective",
    "BudgetExhausted",
    "ChoiceForest",
    "ChoiceGP",
    "ChoiceSurrogate",
    "CurveEnsemble",
    "Extrapolation",
    "InvalidArchitectureError",
    "LearningCurvePruner",
    "PredictorSampler",
    "StorageError",
    "UnsupportedDistributionError",
    "ZeroCostPruner",
    "architecture_mapping",
    "architecture_params",
    "best_architecture",
    "create_sampler",
    "enqueue_architecture",
    "gaussian_copula",
    "make_objective",
    "open_storage",
    "params_to_genotype",
    "run_worker",
    "sampler_encoding",
    "suggest_architecture",
]
