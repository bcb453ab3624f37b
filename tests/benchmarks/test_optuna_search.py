"""benchmarks.optuna_search: a seed range away from the reported seeds, and runs read back by seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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


def test_regret_at_trials_counts_repeats_against_a_plain_replay(data_dir: Path, tmp_path: Path) -> None:
    from benchmarks.optuna_search import Oracle, _regret_at_trials
    from benchmarks.tabular import nb201_ground_truth
    from search_spaces.nb201 import NB201Space, index_to_genotype

    values = np.asarray(nb201_ground_truth(data_dir)["cifar10valid_valid_acc"], dtype=float)
    oracle = Oracle(values, NB201Space())
    asked = [5, 9, 5, 5, 300, 9, 7000, 12]  # table indices, with repeats
    for i in asked:
        oracle(index_to_genotype(i))
    run = {"order": oracle.order, "first_trial": oracle.first_trial}
    for t in range(1, len(asked) + 1):  # the best of the first t trials, repeats included
        assert _regret_at_trials(run, values, t) == values.max() - max(values[i] for i in asked[:t])
    assert oracle.first_trial == [1, 2, 5, 7, 8] and oracle.evaluations == 5
