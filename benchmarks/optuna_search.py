"""Optuna samplers against our regularized evolution on the NAS-Bench-201 tabular oracle.

    python -m benchmarks.optuna_search --data-dir ../shared/data --seeds 10 --workdir /tmp/nas-optuna \\
        --out /tmp/nas-optuna/result.json

Strategies (``--strategies``, comma-separated), each run ``--seeds`` times (seeds ``first..first+seeds-1``,
``--first-seed`` 0 by default):

* ``tpe`` -- Optuna's multivariate TPE (``create_sampler("tpe")``: 10 random start-up trials) over
  the NB201 cell through :func:`~nas.integrations.spaces.suggest_architecture` (six categorical
  parameters), driven by ask/tell;
* ``evolution`` -- our regularized evolution (:class:`~nas.search.evolution.RegularizedEvolution`,
  population 10, tournament 3, the NAS-Bench-201 paper's setting), driven by its own ask/tell;
* ``predictor`` -- :class:`~nas.integrations.samplers.PredictorSampler` with its defaults (a Gaussian
  process with a Hamming kernel on the one-hot choices, refitted after every trial from 10 trials on;
  Thompson sampling: the argmax of one joint posterior draw over every cell not yet tried (NB201's
  15,625 are few enough); every third trial multivariate TPE's proposal instead), through
  ``suggest_architecture``;
* ``random`` -- Optuna's ``RandomSampler`` through ``suggest_architecture``.

**The oracle** is the table's ``cifar10valid_valid_acc`` (``--metric``); a search reads only the
entries of the architectures it proposes. **The budget counts distinct architectures evaluated**
(the NAS convention, and what :func:`nas.search.run_search` counts): a proposal that repeats an
evaluated architecture is answered from the run's own cache (as ``make_objective``'s ``dedupe``
does) and costs a trial but no evaluation; the table reports the trials each strategy needed. A
run stops at ``max(--budgets)`` evaluations or at ``--max-trials-factor`` times that many trials.

**Reported** at each budget ``b`` of ``--budgets``: the pick is the best of the first ``b``
evaluations by the oracle's value; its **regret** is the table's best ``cifar10valid_valid_acc``
(over all 15,625 cells) minus the pick's, in points, and its ``cifar10_test_acc`` is read from the
table after the search. ``regret_at_trials`` counts Optuna trials instead: the best of what the first
``b`` trials evaluated, a repeat costing a trial (the unit of ``study.optimize(n_trials=b)``;
``predictor`` never repeats an architecture, so it reads the same in both). Mean +- std over the
seeds; the JSON holds every run's values, and the PNG
(``--out`` with ``.png``) the mean regret against the number of evaluations.

Each run is written to ``--workdir`` as ``STRATEGY-SEED.json`` (the evaluated cells in order, the
trial count and seconds) when it finishes; a rerun reads finished runs back and runs only the
missing ones. One torch thread per process; ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import add_common_args, report, settings

STRATEGIES = ("tpe", "evolution", "predictor", "random")


class Oracle:
    """The table's column as an objective: remembers what it evaluated, in order, and answers repeats."""

    def __init__(self, values: np.ndarray, space: Any) -> None:
        self.values, self.space = values, space
        self.order: list[int] = []
        self.first_trial: list[int] = []  # the trial (1-based) that first evaluated order[k]
        self._seen: set[int] = set()
        self.trials = 0

    def __call__(self, genotype: Any) -> float:
        self.trials += 1
        i = int(self.space.index(genotype))
        if i not in self._seen:
            self._seen.add(i)
            self.order.append(i)
            self.first_trial.append(self.trials)
        return float(self.values[i])

    @property
    def evaluations(self) -> int:
        return len(self.order)


def run_one(strategy: str, seed: int, values: np.ndarray, budget: int, max_trials: int) -> dict[str, Any]:
    """One search; returns the evaluated table indices in order, the trial count and the seconds."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from nas.integrations.samplers import PredictorSampler, create_sampler
    from nas.integrations.spaces import architecture_mapping, suggest_architecture
    from nas.search.base import STRATEGIES as SEARCH_STRATEGIES

    mapping = architecture_mapping("nb201")
    oracle = Oracle(values, mapping.space)
    t0 = time.perf_counter()
    if strategy == "evolution":
        strat = SEARCH_STRATEGIES.resolve("evolution", space=mapping.space, seed=seed)
        while oracle.evaluations < budget and oracle.trials < max_trials:
            g = strat.ask()
            strat.tell(g, oracle(g))
    else:
        if strategy == "predictor":
            sampler: optuna.samplers.BaseSampler = PredictorSampler(mapping, seed=seed)
        elif strategy in ("tpe", "random"):
            sampler = create_sampler(strategy, mapping, seed=seed)
        else:
            raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
        study = optuna.create_study(direction="maximize", sampler=sampler)
        while oracle.evaluations < budget and oracle.trials < max_trials:
            trial = study.ask()
            study.tell(trial, oracle(suggest_architecture(trial, mapping)))
    return {"strategy": strategy, "seed": seed, "order": oracle.order, "first_trial": oracle.first_trial,
            "trials": oracle.trials,
            "seconds": round(time.perf_counter() - t0, 2)}


def _job(job: tuple[str, int, str, str, str, int, int]) -> dict[str, Any]:
    strategy, seed, path, data_dir, metric, budget, max_trials = job
    from benchmarks.tabular import nb201_ground_truth

    values = np.asarray(nb201_ground_truth(data_dir or None)[metric], dtype=float)
    res = run_one(strategy, seed, values, budget, max_trials)
    Path(path).write_text(json.dumps(res))
    return res


def _regret_at_trials(run: dict[str, Any], values: np.ndarray, trials: int) -> float:
    """The regret of the best architecture evaluated within the first ``trials`` trials (repeats count)."""
    done = [i for i, t in zip(run["order"], run["first_trial"], strict=True) if t <= trials]
    return float(values.max() - values[done].max())


def _mean_std(xs: Sequence[float]) -> dict[str, Any]:
    return {"mean": float(np.mean(xs)), "std": float(np.std(xs)), "n": len(xs), "values": [float(x) for x in xs]}


def _png(curves: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in curves.items():  # c: (seeds, budget) regret after each evaluation
        x = np.arange(1, c.shape[1] + 1)
        m, s = c.mean(axis=0), c.std(axis=0)
        ax.plot(x, m, label=name)
        ax.fill_between(x, np.maximum(m - s, 1e-3), m + s, alpha=0.15)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("distinct architectures evaluated")
    ax.set_ylabel("regret, cifar10valid_valid_acc (points)")
    ax.set_title(f"NB201 tabular oracle, mean +- std over {next(iter(curves.values())).shape[0]} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="optuna_search.json")
    p.add_argument("--seeds", type=int, default=10, help="seeds per strategy (default 10)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds run from this one (default 0; other ranges keep tuning away from the reported seeds)")
    p.add_argument("--budgets", default="50,100,300", help="evaluation budgets to report (default 50,100,300)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help=f"which of {', '.join(STRATEGIES)}")
    p.add_argument("--metric", default="cifar10valid_valid_acc", help="the oracle's column")
    p.add_argument("--max-trials-factor", type=int, default=10,
                   help="stop a run after this many times the largest budget in trials (default 10)")
    p.add_argument("--workdir", type=Path, default=None, help="where the runs go (default: next to --out)")
    p.add_argument("--workers", type=int, default=1, help="processes, one torch thread each (default 1)")
    args = p.parse_args(argv)

    import torch

    from benchmarks.tabular import nb201_ground_truth

    torch.set_num_threads(1)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        p.error(f"unknown strategies {unknown}; valid: {', '.join(STRATEGIES)}")
    data_dir = str(args.data_dir) if args.data_dir else ""
    gt = nb201_ground_truth(args.data_dir)
    values = np.asarray(gt[args.metric], dtype=float)
    test_acc = np.asarray(gt["cifar10_test_acc"], dtype=float)
    best = float(values.max())
    work = args.workdir or Path(str(args.out) + ".runs")
    work.mkdir(parents=True, exist_ok=True)
    budget, max_trials = budgets[-1], budgets[-1] * args.max_trials_factor
    seeds = range(args.first_seed, args.first_seed + args.seeds)

    t0 = time.perf_counter()
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    jobs = []
    for strat in strategies:
        for seed in seeds:
            path = work / f"{strat}-{seed}.json"
            if path.is_file():
                r = json.loads(path.read_text())
                if "first_trial" in r and (len(r["order"]) >= budget or r["trials"] >= max_trials):
                    runs[(strat, seed)] = r
                    continue
            jobs.append((strat, seed, str(path), data_dir, args.metric, budget, max_trials))
    from tqdm import tqdm

    with tqdm(total=len(jobs), desc="searches", unit="run") as bar:
        if args.workers <= 1:
            for job in jobs:
                runs[(job[0], job[1])] = _job(job)
                bar.update(1)
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(args.workers) as pool:
                for job, res in zip(jobs, pool.map(_job, jobs), strict=True):
                    runs[(job[0], job[1])] = res
                    bar.update(1)

    result: dict[str, Any] = {"best_" + args.metric: best,
                              "best_test_acc_of_table": float(test_acc.max()),
                              "test_acc_of_best_valid": float(test_acc[int(values.argmax())]),
                              "strategies": {}}
    rows: list[dict[str, Any]] = []
    curves: dict[str, np.ndarray] = {}
    for strat in strategies:
        entry: dict[str, Any] = {}
        curve = np.full((args.seeds, budget), np.nan)
        for row, seed in enumerate(seeds):
            order = np.asarray(runs[(strat, seed)]["order"], dtype=np.int64)
            running = np.maximum.accumulate(values[order])
            curve[row, : len(order)] = best - running
            curve[row, len(order):] = best - running[-1] if len(order) else np.nan
        curves[strat] = curve
        secs = [runs[(strat, s)]["seconds"] for s in seeds]
        trials = [runs[(strat, s)]["trials"] for s in seeds]
        entry["seconds"] = _mean_std(secs)
        entry["trials_for_budget"] = _mean_std(trials)
        for b in budgets:
            regrets, accs, trials_b = [], [], []
            for seed in seeds:
                order = runs[(strat, seed)]["order"][:b]
                pick = max(order, key=lambda i: (values[i], -order.index(i)))
                regrets.append(best - float(values[pick]))
                accs.append(float(test_acc[pick]))
                trials_b.append(len(order))
            entry[f"regret_at_{b}"] = _mean_std(regrets)
            entry[f"test_acc_at_{b}"] = _mean_std(accs)
            entry[f"evaluations_at_{b}"] = _mean_std(trials_b)
            by_trials = [_regret_at_trials(runs[(strat, seed)], values, b) for seed in seeds]
            entry[f"regret_at_{b}_trials"] = _mean_std(by_trials)
            rows.append({"strategy": strat, "budget": b,
                         "regret": f"{np.mean(regrets):.3f} +- {np.std(regrets):.3f}",
                         "regret_at_trials": f"{np.mean(by_trials):.3f} +- {np.std(by_trials):.3f}",
                         "test_acc": f"{np.mean(accs):.2f} +- {np.std(accs):.2f}",
                         "trials": f"{np.mean(trials):.0f}" if b == budget else "",
                         "s/run": f"{np.mean(secs):.1f}" if b == budget else ""})
        result["strategies"][strat] = entry
    png = Path(args.out).with_suffix(".png")
    _png(curves, png)
    result["png"] = str(png)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["settings"] = settings(seeds=args.seeds, first_seed=args.first_seed, budgets=budgets, metric=args.metric,
                                  strategies=strategies,
                                  data=str(Path(data_dir or ".") / "nb201" / "nb201_ground_truth.csv"),
                                  max_trials=max_trials, workers=args.workers, table_best=best,
                                  optuna=__import__("optuna").__version__)
    report(args.out, result, rows)
    print(f"wrote {png}")
    return result


if __name__ == "__main__":
    main()
