"""The search benchmark's shared on-disk score cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.search import SharedScores
from nas.search.objectives import Evaluation


def test_processes_see_each_others_scores(tmp_path: Path, monkeypatch) -> None:
    a = SharedScores(tmp_path)
    monkeypatch.setattr("os.getpid", lambda: 999_999)  # a second process writes its own file
    b = SharedScores(tmp_path)
    assert a.own != b.own
    a["fp1"] = Evaluation(1.5, {"nwot": 2.0})
    b["fp2"] = Evaluation(None, {}, "jacov: NaN")
    assert "fp2" in a and a["fp2"].error == "jacov: NaN" and a["fp2"].value is None
    assert "fp1" in b and b["fp1"].value == 1.5 and b["fp1"].scores == {"nwot": 2.0}
    assert "fp3" not in a
    fresh = SharedScores(tmp_path)  # a rerun reads both files
    assert set(fresh) == {"fp1", "fp2"}


def test_a_partly_written_line_is_read_later(tmp_path: Path) -> None:
    a = SharedScores(tmp_path)
    other = tmp_path / "scores-1.jsonl"
    other.write_text('{"fingerprint": "fp9", "value": 3.0, "scores": {}, "err')
    assert "fp9" not in a
    other.write_text('{"fingerprint": "fp9", "value": 3.0, "scores": {}, "error": null}\n')
    assert "fp9" in a and a["fp9"].value == 3.0


def test_only_ensemble_runs_with_the_same_settings_are_imported(tmp_path: Path) -> None:
    """A tabular run's values (validation accuracies) must never enter the proxy-score cache."""
    import json

    from benchmarks.search import _import_runs

    def run(name: str, objective: str, fingerprint: str, value: float, batch: int = 64) -> None:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"objective": objective, "batch": batch, "reference": 64}))
        (folder / "candidates.jsonl").write_text(json.dumps(
            {"fingerprint": fingerprint, "status": "evaluated", "value": value, "scores": {"x": value}}) + "\n")

    run("constrained_tabular-bo-0", "tabular", "fp_tab", 91.2)
    run("tabular-evolution-0", "tabular", "fp_tab2", 93.0)
    run("zc-evolution-0", "ensemble", "fp_zc", 1.7)
    run("zc-random-0", "ensemble", "fp_other_batch", 0.4, batch=16)
    _import_runs(tmp_path, 64, 64)
    cache = SharedScores(tmp_path / "scores")
    assert set(cache) == {"fp_zc"} and cache["fp_zc"].value == 1.7


def test_summaries_keep_the_per_seed_figures() -> None:
    """Each mean +- std of the JSON carries the per-seed figures it summarizes, in seed order."""
    from benchmarks.search import _mean_std

    s = _mean_std([93.5, 94.0, 92.0])
    assert s["per_seed"] == [93.5, 94.0, 92.0] and s["n"] == 3
    assert s["mean"] == pytest.approx(93.1666667) and s["std"] == pytest.approx(0.8498366)
