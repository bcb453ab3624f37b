"""suggest_architecture and its inverse for every registered space, with Optuna's samplers."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import optuna
import pytest

from nas.errors import GenotypeError, RegistryError
from nas.integrations.optuna import (
    InvalidArchitectureError,
    UnsupportedDistributionError,
    architecture_mapping,
    architecture_params,
    enqueue_architecture,
    params_to_genotype,
    suggest_architecture,
)
from search_spaces import space_from_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACES = ["nb201", "nb101", "darts", "mbv3"]


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("models")
    nb201 = space_from_spec("nb201:c=4,n=1")
    rng = np.random.default_rng(0)
    for i in range(3):
        onnx.save(nb201.to_onnx(nb201.sample(rng)), str(folder / f"m{i}.onnx"))  # type: ignore[attr-defined]
    return f"onnx_folder:{folder}"


def _all_specs(onnx_folder: str) -> list[str]:
    return [*SPACES, onnx_folder]


@pytest.mark.parametrize("encoding", ["categorical", "index"])
def test_round_trip_every_space(onnx_folder: str, encoding: str) -> None:
    for spec in _all_specs(onnx_folder):
        mapping = architecture_mapping(spec, encoding)
        rng = np.random.default_rng(1)
        for _ in range(10):
            g = mapping.space.sample(rng) if mapping.space.name != "onnx_folder" else \
                mapping.space.candidates[int(rng.integers(3))]  # type: ignore[attr-defined]
            params = architecture_params(mapping, g)
            assert set(params) == set(mapping.distributions())
            for name, value in params.items():  # every value lies in its distribution
                assert mapping.distributions()[name]._contains(mapping.distributions()[name].to_internal_repr(value))
            assert params_to_genotype(mapping, params) == g, spec


def test_enqueue_gives_back_the_genotype(onnx_folder: str) -> None:
    for spec in _all_specs(onnx_folder):
        mapping = architecture_mapping(spec)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        g = mapping.space.parse(mapping.space.format(mapping.space.sample(np.random.default_rng(3)))) \
            if mapping.space.name != "onnx_folder" else "m2.onnx"
        enqueue_architecture(study, mapping, g)
        trial = study.ask()
        assert suggest_architecture(trial, mapping) == g


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2", "cmaes", "gp"])
def test_any_sampler_suggests_valid_genotypes(sampler: str) -> None:
    from nas.integrations.samplers import create_sampler, sampler_encoding

    if sampler == "cmaes":
        pytest.importorskip("cmaes", reason="CmaEsSampler needs the optional cmaes package")
    mapping = architecture_mapping("nb201", sampler_encoding(sampler))
    study = optuna.create_study(direction="maximize",
                                sampler=create_sampler(sampler, mapping, seed=0, n_startup_trials=3))
    ops = mapping.space.dimensions()[0].choices

    def objective(trial: optuna.trial.Trial) -> float:
        g = suggest_architecture(trial, mapping)
        return float(sum(ops.index(op) for op in g))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=6 if sampler == "gp" else 12)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert params_to_genotype(mapping, t.params) in set(mapping.space.enumerate())  # type: ignore[attr-defined]


def test_nb101_invalid_values_raise_a_genotype_error() -> None:
    mapping = architecture_mapping("nb101")
    params = architecture_params(mapping, mapping.space.sample(np.random.default_rng(0)))
    for name in params:
        if name.startswith("edge_"):
            params[name] = 0  # no edge: the output is disconnected
    with pytest.raises(InvalidArchitectureError) as info:
        params_to_genotype(mapping, params)
    assert isinstance(info.value, GenotypeError)


def test_nb101_small_spec_frames_and_prunes_back() -> None:
    mapping = architecture_mapping("nb101")
    g = mapping.space.parse("0110000010000100000100000|input,conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu,output")
    assert params_to_genotype(mapping, architecture_params(mapping, g)) == g


def test_clear_errors() -> None:
    with pytest.raises(UnsupportedDistributionError, match="unknown encoding"):
        architecture_mapping("nb201", "onehot")
    with pytest.raises(RegistryError, match="nb201"):
        architecture_mapping("no_such_space")
    mapping = architecture_mapping("nb201")
    params = architecture_params(mapping, mapping.space.sample(np.random.default_rng(0)))
    params["edge_1_0"] = "conv_9x9"
    with pytest.raises(UnsupportedDistributionError, match="conv_9x9"):
        params_to_genotype(mapping, params)
    del params["edge_1_0"]
    with pytest.raises(UnsupportedDistributionError, match="missing"):
        params_to_genotype(mapping, params)


def test_prefix_keeps_other_parameters_apart() -> None:
    mapping = architecture_mapping("nb201", prefix="arch/")
    study = optuna.create_study()
    trial = study.ask()
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    g = suggest_architecture(trial, mapping)
    assert 1e-3 <= lr <= 1.0 and len(g) == 6
    assert all(k.startswith("arch/") for k in trial.params if k != "lr")
