"""The proxy-correlation benchmark's scoring cache."""

from __future__ import annotations

from pathlib import Path

from benchmarks.proxy_correlation import score_archs


def test_no_proxies_to_score_gives_no_records(tmp_path: Path) -> None:
    # `--proxies meco`: NASLib's file has no meco column, so nothing is asked of its sample.
    key = {"data_dir": None, "batch": 2, "seed": 0}
    assert score_archs([117, 3], [], tmp_path / "s.jsonl", key, 1, "NASLib sample") == {}
