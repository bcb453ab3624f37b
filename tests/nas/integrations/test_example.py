"""examples/optuna_nb201.py runs, and its study shows the sampler's and the pruner's contracts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import optuna
from optuna.trial import TrialState

from nas.integrations.optuna import params_to_genotype
from search_spaces import space_from_spec

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "optuna_nb201.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("optuna_nb201_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_study_runs(capsys: object) -> None:
    example = _load()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = example.run(trials=8, epochs=2, seed=0)
    trials = study.trials
    space = space_from_spec(example.SPACE)
    assert len(trials) == 8 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    archs = [t.user_attrs["arch"] for t in trials]
    assert archs == [space.format(params_to_genotype(example.SPACE, t.params)) for t in trials]
    assert len(set(archs)) == len(archs)  # the PredictorSampler never proposes a cell twice
    # ZeroCostPruner: every trial scored at its first report; pruned there exactly when in the bottom quarter
    for k, t in enumerate(trials):
        earlier = [s.user_attrs["zc_score"] for s in trials[:k]]
        in_bottom = len(earlier) >= 4 and t.user_attrs["zc_score"] < np.quantile(earlier, 0.25)
        assert (t.state == TrialState.PRUNED and t.last_step == 0) == in_bottom, k
    assert study.best_value > 20.0  # trained: well above the 10% of chance on 10 classes
