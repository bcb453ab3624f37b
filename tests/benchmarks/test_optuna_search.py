"""benchmarks.optuna_search: a seed range away from the reported seeds, and runs read back by seed."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.optuna_search import main


def test_first_seed_runs_that_range_and_reruns_read_it_back(data_dir: Path, tmp_path: Path) -> None:
    args = ["--data-dir", str(data_dir), "--seeds", "2", "--first-seed", "7", "--budgets", "5,10",
            "--strategies", "random,evolution", "--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.json")]
    result = main(args)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "evolution-7.json", "evolution-8.json", "random-7.json", "random-8.json"]
    assert result["settings"]["first_seed"] == 7
    for strat in ("random", "evolution"):
        regrets = result["strategies"][strat]["regret_at_10"]["values"]
        assert len(regrets) == 2 and all(r >= 0 for r in regrets)
        order = json.loads((tmp_path / "runs" / f"{strat}-7.json").read_text())["order"]
        assert len(order) == 10 and len(set(order)) == 10  # distinct architectures
    assert main(args)["strategies"] == result["strategies"]  # the second call reads the runs back
