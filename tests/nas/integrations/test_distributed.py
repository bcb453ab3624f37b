"""Several workers on one study: SQLite through the CLI, PostgreSQL with a worker killed mid-trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.integrations.distributed import StorageError, open_storage, run_worker
from nas.integrations.objective import make_objective

optuna.logging.set_verbosity(optuna.logging.WARNING)
REPO = Path(__file__).resolve().parents[3]


def test_bad_storage_urls_are_clear_errors() -> None:
    with pytest.raises(StorageError, match="unsupported storage URL"):
        open_storage("redis://localhost/0")
    with pytest.raises(StorageError, match="cannot open storage"):
        open_storage(f"sqlite:///{REPO}/no/such/folder/x.db")


def test_budget_counts_finished_trials_and_resumes(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    objective = make_objective("nb201", "params")
    first = run_worker(study, objective, 3)
    again = run_worker(study, objective, 5)  # a second session of the same study tops it up to 5
    done = run_worker(study, objective, 5)
    assert (first.ran, again.ran, done.ran) == (3, 2, 0)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 5


def test_workers_opening_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    # Optuna creates the schema non-atomically: without open_storage's retry, 4 threads opening one fresh
    # SQLite file failed with "table ... already exists" in 9 of 10 tries
    from concurrent.futures import ThreadPoolExecutor

    for k in range(3):
        url = f"sqlite:///{tmp_path / f'fresh{k}.db'}"
        with ThreadPoolExecutor(4) as pool:
            storages = list(pool.map(open_storage, [url] * 4))
        assert all(s.get_all_studies() == [] for s in storages)


def test_a_live_trial_failed_as_stale_does_not_stop_its_worker(tmp_path: Path) -> None:
    """Another worker that misses our heartbeat fails our running trial and queues a retry (what
    fail_stale_trials does); Optuna then refuses our result. The worker drops it and runs the retry."""
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=30)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    calls: list[int] = []

    def evaluate(trial: optuna.trial.Trial, genotype: object) -> float:
        calls.append(trial.number)
        if len(calls) == 1:  # mid-evaluation, as another worker's fail_stale_trials would
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            storage.get_heartbeat_stale_trial_callback()(study, storage.get_trial(trial._trial_id))  # type: ignore
        return float(len(calls))

    objective = make_objective("nb201", evaluate)
    report = run_worker(study, objective, 2)
    trials = study.get_trials()
    assert (report.ran, report.stale) == (2, 1)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params == trials[0].params  # the retry ran


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_two_cli_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = [sys.executable, "-m", "nas.cli", "search", "--space", "nb201", "--objective", "params", "--budget", "8",
           "--storage", url, "--study", "two", "--sampler", "random", "--heartbeat", "5", "--json"]
    procs = [subprocess.Popen([*cmd, "--worker", str(i)], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    reports = [json.loads(out) for out, _ in outs]
    study = optuna.load_study(study_name="two", storage=url)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8
    assert sum(r["ran"] + r["yielded"] + r["stale"] for r in reports) == len(study.trials)
    evaluated = [t.user_attrs["key"] for t in complete if "cached_from" not in t.user_attrs]
    assert len(evaluated) == len(set(evaluated))
    assert all(r["finished"] == 8 and r["best"]["value"] == study.best_value for r in reports)
    assert study.user_attrs["nas:space"] == "nb201" and study.user_attrs["nas:objective"] == "params"


def _kill_one_of_three(url: str, data_dir: Path, budget: int = 9) -> None:
    """Three workers, one SIGKILLed mid-trial; then check the study (see the issue's "must show")."""
    name = "killed"
    cmd = [sys.executable, "-m", "tests.nas.integrations._worker", url, name, str(budget), "1.0", str(data_dir)]
    first = subprocess.Popen([*cmd, "0"], cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True)
    storage = open_storage(url, heartbeat_interval=1)
    deadline = time.monotonic() + 120
    victim = None
    others: list[subprocess.Popen[str]] = []
    while victim is None:
        assert time.monotonic() < deadline, "worker 0 never started a trial"
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # not created yet
            time.sleep(0.2)
            continue
        if not others:
            others = [subprocess.Popen([*cmd, str(i)], cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True)
                      for i in (1, 2)]
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("pid") == first.pid and t.number >= 1:  # mid-trial, after it finished one
                victim = t.number
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    for p in others:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget
    killed = trials[victim]
    assert killed.state == TrialState.FAIL and "error" not in killed.user_attrs
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params  # the same architecture, retried
    # no architecture evaluated twice among the finished trials (the killed one's work was lost, not counted)
    evaluated = Counter(t.user_attrs["arch"] for t in complete if "cached_from" not in t.user_attrs)
    assert max(evaluated.values()) == 1
    assert killed.user_attrs["arch"] in evaluated
    others_failed = [t for t in trials if t.state == TrialState.FAIL and t.number != victim]
    assert all(t.user_attrs.get("budget_exhausted") for t in others_failed)  # only budget races, if any


def test_three_workers_on_postgres_one_killed(postgres_url: str, data_dir: Path) -> None:
    _kill_one_of_three(postgres_url, data_dir)


@pytest.mark.slow
def test_three_workers_on_sqlite_one_killed(tmp_path: Path, data_dir: Path) -> None:
    _kill_one_of_three(f"sqlite:///{tmp_path / 'k.db'}", data_dir)
