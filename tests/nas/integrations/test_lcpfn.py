"""The LC-PFN: its prior, its bar distribution, its file, its held-out accuracy, and the pruner that uses it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.errors import NasError, PredictorFileError, PredictorVersionError
from nas.integrations import lcpfn
from nas.integrations.lcpfn import (
    LCPFN,
    BarPrediction,
    LCPFNConfig,
    PriorConfig,
    TrainConfig,
    heldout_mae,
    sample_prior,
    train,
)
from nas.integrations.optuna import LearningCurvePruner
from tests.nas.integrations._curves import replay_both_ways

optuna.logging.set_verbosity(optuna.logging.WARNING)
torch.set_num_threads(1)

TINY = LCPFNConfig(max_epochs=12, d_model=16, n_layers=1, n_heads=2, d_ff=16, n_bins=20)


def _tiny() -> LCPFN:
    return train(TrainConfig(steps=3, batch=8, warmup=1, seed=3), TINY)


def test_prior_curves_are_valid_and_seeded() -> None:
    curves = sample_prior(200, np.random.default_rng(0))
    assert curves.shape == (200, 50) and np.all(np.isfinite(curves))
    assert curves.min() >= 0.0 and curves.max() <= 1.0
    assert np.array_equal(curves, sample_prior(200, np.random.default_rng(0)))
    clean = sample_prior(200, np.random.default_rng(1), PriorConfig(noise=(1e-12, 2e-12)))
    assert np.all(np.diff(clean, axis=1) >= -1e-9)  # every family rises: noise-free curves never fall
    assert np.ptp(clean[:, -1]) > 0.5 and np.mean(clean[:, -1] > clean[:, 0]) > 0.9  # varied and rising


def test_bar_prediction_matches_a_uniform_density() -> None:
    bar = BarPrediction(np.full(10, 0.1), 0.0, 100.0)
    assert bar.cdf(25.0) == pytest.approx(0.25) and bar.prob_greater(-1.0) == 1.0 and bar.prob_greater(100.0) == 0.0
    assert bar.quantile([0.1, 0.5, 0.95]) == pytest.approx([10.0, 50.0, 95.0])
    assert bar.median == pytest.approx(50.0) and bar.mean == pytest.approx(50.0)
    with pytest.raises(NasError, match="quantiles"):
        bar.quantile(1.5)


def test_saved_model_predicts_exactly_what_it_did(tmp_path: Path) -> None:
    model = _tiny()
    path = tmp_path / "m.npz"
    model.save(path)
    again = LCPFN.load(path)
    assert again.config == TINY and again.prior == model.prior
    values = np.array([[10.0, 20.0, 26.0, 30.0], [50.0, 52.0, 51.0, 55.0]])
    a = model.predict_batch(range(4), values, [5, 11], value_range=(0.0, 100.0))
    assert a.shape == (2, 2, 20) and np.allclose(a.sum(-1), 1.0)
    assert np.array_equal(a, again.predict_batch(range(4), values, [5, 11], value_range=(0.0, 100.0)))
    with pytest.raises(NasError, match="outside value_range"):
        model.predict([0, 1], [10.0, 120.0], 5, (0.0, 100.0))
    with pytest.raises(NasError, match="must be in"):
        model.predict([0, 1], [10.0, 12.0], 12, (0.0, 100.0))


def test_bad_files_raise_typed_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(PredictorFileError, match=r"junk\.npz"):
        LCPFN.load(junk)
    with pytest.raises(PredictorFileError, match="not a file"):
        LCPFN.load(tmp_path / "missing.npz")
    good = tmp_path / "good.npz"
    _tiny().save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(PredictorFileError):
        LCPFN.load(truncated)
    with zipfile.ZipFile(good) as z:  # drop one weight array
        members = {n: z.read(n) for n in z.namelist()}
    dropped = tmp_path / "dropped.npz"
    with zipfile.ZipFile(dropped, "w") as z:
        for i, (n, raw) in enumerate(members.items()):
            if i != len(members) - 1:
                z.writestr(n, raw)
    with pytest.raises(PredictorFileError):
        LCPFN.load(dropped)
    monkeypatch.setattr(lcpfn, "FORMAT_VERSION", lcpfn.FORMAT_VERSION + 1)
    newer = tmp_path / "newer.npz"
    _tiny().save(newer)
    monkeypatch.undo()
    with pytest.raises(PredictorVersionError, match="newer"):
        LCPFN.load(newer)
    assert issubclass(PredictorVersionError, PredictorFileError) and issubclass(PredictorFileError, NasError)


def test_shipped_model_beats_the_last_value_on_held_out_prior_curves() -> None:
    model = LCPFN.default()
    assert model.max_epochs == 50 and lcpfn.DEFAULT_PATH.stat().st_size < 2_000_000
    for n, r in heldout_mae(model, n_curves=256, cutoffs=(5, 10, 20)).items():
        assert r["lcpfn"] < 0.8 * r["last_value"], (n, r)
    # the predictive distribution is calibrated enough that its 10-90% band holds most final values
    curves = sample_prior(256, np.random.default_rng([7, 2**31]))
    probs = model.predict_batch(range(10), curves[:, :10], [49])[:, 0]
    band = np.array([BarPrediction(p, 0.0, 1.0).quantile([0.1, 0.9]) for p in probs])
    inside = np.mean((curves[:, 49] >= band[:, 0]) & (curves[:, 49] <= band[:, 1]))
    assert 0.65 < inside < 0.95, inside


def test_lcpfn_pruner_stops_a_hopeless_curve_and_keeps_a_good_one() -> None:
    study, losses = replay_both_ways(lambda vr: LearningCurvePruner(max_step=19, model="lcpfn", value_range=vr))
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[3].last_step == 2  # at the first decision
    assert [t.state for t in losses.trials][3:] == [TrialState.PRUNED, TrialState.COMPLETE]  # minimize
    with pytest.raises(NasError, match="value_range"):
        LearningCurvePruner(max_step=19, model="lcpfn")
    with pytest.raises(NasError, match="at most"):
        LearningCurvePruner(max_step=60, model="lcpfn", value_range=(0.0, 1.0))
    with pytest.raises(NasError, match="valid"):
        LearningCurvePruner(max_step=19, model="mcmc")
