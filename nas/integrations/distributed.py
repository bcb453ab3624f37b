"""Workers of one shared Optuna study: :func:`open_storage` and :func:`run_worker`.

Optuna's RDB storage (SQLite for one machine, PostgreSQL for several) is the only coordinator: any
number of :func:`run_worker` processes join a study by name and share its trials. We add three things.

* **Dead workers.** The storage runs Optuna's heartbeat (``heartbeat_interval``, ``grace_period``):
  a running trial whose worker stopped beating -- killed with SIGKILL, a lost machine -- is failed by
  the next :func:`optuna.storages.fail_stale_trials`, which every worker calls before each trial and
  while it waits, and :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` queues a copy of it
  (same parameters, hence the same architecture) as a ``WAITING`` trial, which the next ``ask`` of any
  worker takes first.
* **An exact budget.** ``budget`` counts finished trials (complete or pruned). A worker starts a trial
  only while ``finished + running + waiting < budget``; when two workers pass that check at once, the
  trial with the larger number yields: inside the objective, before any evaluation, it counts the
  finished and waiting trials and the running trials with *smaller* numbers, and if that already
  reaches the budget it fails itself with the user attr ``budget_exhausted`` (no evaluation is made).
  Trial numbers are allocated by the storage, so every pair of racing workers agrees on who yields.
  A worker leaves when the study holds ``budget`` finished trials; while others still run the last
  ones it waits, so that the retry of a trial whose worker dies late is still run.
* **No double evaluation.** The objective deduplicates across workers
  (:class:`~nas.integrations.objective.ArchitectureObjective`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.errors import NasError

log = logging.getLogger(__name__)

BUDGET_ATTR = "budget_exhausted"


class StorageError(NasError, ValueError):
    """A storage URL that Optuna cannot open (bad scheme, unreachable server, missing driver)."""


class BudgetExhausted(NasError):
    """Raised inside a trial that lost the race for the study's last budget slots (see the module docstring)."""


def open_storage(url: str, *, heartbeat_interval: int = 10, grace_period: int | None = None,
                 max_retry: int | None = 3) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeat and retry of stale trials.

    ``url`` is an SQLAlchemy URL: ``sqlite:///study.db`` or ``postgresql://user@host:port/db``; a bare
    file path is taken as SQLite. ``grace_period`` defaults to twice the interval.
    """
    import warnings

    if "://" not in url:
        url = f"sqlite:///{url}"
    prefix = url.split("://", 1)[0]
    scheme = prefix.split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "mysql"):
        raise StorageError(f"unsupported storage URL {url!r}: use sqlite:///FILE.db or postgresql://USER@HOST/DB")
    if prefix == "postgresql":
        url = "postgresql+" + _postgres_driver() + url[len(prefix):]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    kwargs: dict[str, Any] = dict(
        heartbeat_interval=heartbeat_interval, grace_period=grace_period or 2 * heartbeat_interval,
        heartbeat_stale_trial_callback=retry,
        # SQLite: wait for a writer's lock instead of failing ("database is locked") under contention
        engine_kwargs={"pool_pre_ping": True} if scheme != "sqlite" else {"connect_args": {"timeout": 60}},
    )
    rng = random.Random()  # jitter only: which process retries first does not matter
    for attempt in range(_INIT_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as e:  # SQLAlchemy and driver errors have no common base we can name here
            if attempt + 1 < _INIT_ATTEMPTS and _is_init_race(e):
                log.info("storage %s: concurrent schema creation (%s); retrying", url, type(e).__name__)
                time.sleep(0.05 * (attempt + 1) + rng.uniform(0.0, 0.1))
                continue
            raise StorageError(f"cannot open storage {url!r}: {type(e).__name__}: {e}") from e
    raise AssertionError("unreachable")  # the loop returns or raises


#: How often :func:`open_storage` tries to open a storage whose schema another process is creating.
_INIT_ATTEMPTS = 8
_RACE_MESSAGES = ("already exists", "unique constraint", "duplicate key", "database is locked")


def _is_init_race(e: Exception) -> bool:
    """Whether opening failed because another process created the schema at the same time.

    Optuna's ``RDBStorage`` creates its tables (SQLAlchemy ``create_all``: check, then ``CREATE
    TABLE``), inserts its one ``version_info`` row and stamps Alembic's version on a fresh database,
    none of it atomically; two workers that open a fresh database at once fail with "table ...
    already exists" or a unique-key violation (4 threads opening one fresh SQLite file failed 9
    times in 10). The schema is complete once the winner is done, so a retry succeeds.
    """
    text = str(e).lower()
    return any(m in text for m in _RACE_MESSAGES)


def _postgres_driver() -> str:
    """SQLAlchemy's default PostgreSQL driver is psycopg 3; fall back to psycopg2 where only it is installed."""
    import importlib.util

    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return driver
    raise StorageError("a postgresql:// storage needs a driver: pip install psycopg2-binary (or psycopg)")


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's ``fail_stale_trials``, without its experimental-API warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@dataclass
class WorkerReport:
    """What one worker did."""

    ran: int = 0
    yielded: int = 0
    stale: int = 0  # trials this worker ran that another worker failed for a missed heartbeat


def is_finished(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial used up one unit of budget: complete, pruned, or failed *evaluating* (its
    ``error`` user attr set, as :func:`nas.search.run_search` counts failed evaluations). A trial
    failed by the heartbeat or by a budget race does not count: the first is retried, the second
    evaluated nothing."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and "error" in trial.user_attrs


def study_counts(study: optuna.Study, below: int | None = None) -> dict[str, int]:
    """Finished (:func:`is_finished`), waiting and running trials; with ``below``, running ones numbered below it."""
    counts = {"finished": 0, "waiting": 0, "running": 0}
    for t in study.get_trials(deepcopy=False):
        if is_finished(t):
            counts["finished"] += 1
        elif t.state == TrialState.WAITING:
            counts["waiting"] += 1
        elif t.state == TrialState.RUNNING and (below is None or t.number < below):
            counts["running"] += 1
    return counts


def run_worker(study: optuna.Study, objective: Callable[[optuna.trial.Trial], Any], budget: int, *,
               poll: float = 0.5, timeout: float | None = None,
               on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None) -> WorkerReport:
    """Run trials of the shared ``study`` until it holds ``budget`` finished trials (see the module docstring).

    ``timeout`` (seconds) bounds the whole worker. Returns how many trials this worker ran and how
    many it gave up in a budget race.
    """
    if budget < 1:
        raise NasError(f"the budget must be at least 1 trial; got {budget}")
    report = WorkerReport()
    deadline = None if timeout is None else time.monotonic() + timeout

    current: list[int] = []  # the trial id this worker runs now

    def guarded(trial: optuna.trial.Trial) -> Any:
        current[:] = [trial._trial_id]
        c = study_counts(study, below=trial.number)
        if c["finished"] + c["waiting"] + c["running"] >= budget:
            trial.set_user_attr(BUDGET_ATTR, True)
            raise BudgetExhausted(f"trial {trial.number}: the budget of {budget} is taken by earlier trials")
        return objective(trial)

    def callback(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if frozen.user_attrs.get(BUDGET_ATTR):
            report.yielded += 1
        else:
            report.ran += 1
        if on_trial is not None:
            on_trial(frozen)

    while True:
        fail_stale_trials(study)
        c = study_counts(study)
        if c["finished"] >= budget:
            return report
        if deadline is not None and time.monotonic() > deadline:
            log.warning("worker timed out with %d of %d trials finished", c["finished"], budget)
            return report
        if c["finished"] + c["running"] + c["waiting"] >= budget and c["waiting"] == 0:
            time.sleep(poll)  # the last trials are running elsewhere; stay to retry them if their worker dies
            continue
        current.clear()
        try:
            study.optimize(guarded, n_trials=1, catch=(BudgetExhausted,), callbacks=[callback])
        except ValueError:
            if not current or not _failed_as_stale(study, current[0]):
                raise
            # our heartbeat went unseen for the grace period (a starved process), so another worker failed
            # this live trial and queued its retry; Optuna then refuses our result. Drop it and go on.
            report.stale += 1
            log.warning("trial id %d was failed as stale by another worker while this one evaluated it (a missed "
                        "heartbeat: raise --heartbeat on a loaded machine); its retry is queued", current[0])


def _failed_as_stale(study: optuna.Study, trial_id: int) -> bool:
    """Whether the trial was failed by the heartbeat (FAIL, no evaluation error, a retry queued for it:
    ``RetryHeartbeatStaleTrialCallback`` lists every trial a copy descends from in its ``retry_history``)."""
    t = study._storage.get_trial(trial_id)
    if t.state != TrialState.FAIL or "error" in t.user_attrs:
        return False
    return any(t.number in o.system_attrs.get("retry_history", ()) for o in study.get_trials(deepcopy=False))
