"""The search benchmark's shared on-disk score cache."""

from __future__ import annotations

from pathlib import Path

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
