"""Search on NAS-Bench-201 against the table's truth (see ``BENCHMARKS.md`` in the shared folder).

    python -m benchmarks.search --data-dir ../shared/data --seeds 10 --out search.json

Experiments (``--experiments``, comma-separated), each with random search beside it in the same run
and, except ``nsga2``, each of ``--strategies`` (default ``evolution,bo``: regularized evolution and
Bayesian optimization with a Gaussian process, :mod:`nas.search.bayesian`),
over ``--seeds`` seeds, reporting mean +- std of the **CIFAR-10 test accuracy** (``cifar10_test_acc``)
of the architecture each search picks, read from the table after the search:

* ``tabular`` -- the search maximizes the table's ``cifar10valid_valid_acc`` (the oracle reads only
  what it evaluates); the strategies against random search at each of ``--budgets``.
* ``zc`` -- the search maximizes the zero-cost ensemble (:class:`~nas.search.objectives.ProxyObjective`,
  ``"ensemble"``) on a batch of ``--batch`` real CIFAR-10 images; no accuracy is read during the
  search. The global optimum of the table is reported beside it.
* ``constrained`` -- as ``zc``, with latency ``table:pixel3`` at most ``--max-latency-ms`` (default:
  the table's median); the constrained optimum is computed from the table, and the gap to it reported,
  beside the floor gap: that of the feasible network with the best validation accuracy, the pick of a
  perfect search that reads only validation accuracy.
* ``constrained_tabular`` -- the same constraint with the tabular oracle as the objective: how close
  the constrained search itself gets, apart from how well the proxies rank the fast networks.
* ``nsga2`` -- NSGA-II on (ensemble, -latency table:pixel3) against random search with the same
  budget: the hypervolume of the front each returns, measured in true test accuracy against latency
  (reference point: the worst accuracy and latency of the table), and a Pareto PNG per run.

The picked architecture at budget ``b`` is the best, by the search's own objective, of its first
``b`` evaluations: one search of the largest budget gives every smaller budget. Proxy scores are
cached by fingerprint across seeds and strategies (the initialization seed is fixed, so a network
scores the same wherever it turns up); the ensemble's reference set is drawn once. The cache lives
on disk (``WORKDIR/scores/``, one JSONL file per process, read by all), so workers share it, the
experiments share it, and a rerun with more seeds or experiments scores only architectures it has
not met.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import add_common_args, report, settings

_WORKER: dict[str, Any] = {}
_EXPERIMENTS = ("tabular", "zc", "constrained", "constrained_tabular", "nsga2")
_TABULAR = ("tabular", "constrained_tabular")  # experiments whose objective is the table
_CONSTRAINED = ("constrained", "constrained_tabular")


class SharedScores(dict[str, Any]):
    """A fingerprint -> ``Evaluation`` cache backed by JSONL files that several processes share.

    Each process appends what it computes to its own file; a lookup that misses first reads the
    lines other processes added since the last look. Used as a ``ProxyObjective``'s ``cache``.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.own = folder / f"scores-{os.getpid()}.jsonl"
        self._offsets: dict[Path, int] = {}
        self._refresh()

    def _refresh(self) -> None:
        from nas.search.objectives import Evaluation

        for path in sorted(self.folder.glob("scores-*.jsonl")):
            with path.open("rb") as f:
                f.seek(self._offsets.get(path, 0))
                while (line := f.readline()).endswith(b"\n"):  # a line without one is still being written
                    r = json.loads(line)
                    super().__setitem__(r["fingerprint"], Evaluation(r["value"], r["scores"], r["error"]))
                    self._offsets[path] = f.tell()

    def __contains__(self, key: object) -> bool:
        if not super().__contains__(key):
            self._refresh()
        return super().__contains__(key)

    def __setitem__(self, key: str, ev: Any) -> None:
        super().__setitem__(key, ev)
        line = json.dumps({"fingerprint": key, "value": ev.value, "scores": ev.scores, "error": ev.error})
        with self.own.open("a") as f:
            f.write(line + "\n")


def _init_worker(batch: int, data_dir: str | None, reference: list[dict[str, float]] | None, ref_size: int,
                 scores: str | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER.update(batch=batch, data_dir=data_dir, reference=reference, ref_size=ref_size, scores=scores)


def _objective(kind: str) -> Any:
    """The zero-cost objective of this process (shared by its runs, so is its fingerprint cache)."""
    if kind == "tabular":
        return None  # one oracle per run: each reads only what it evaluated
    if "zc" not in _WORKER:
        from nas.search.objectives import ProxyObjective
        from search_spaces.nb201 import NB201Space

        obj = ProxyObjective(NB201Space(), "ensemble", data="cifar10", batch=_WORKER["batch"], seed=0,
                             data_dir=_WORKER["data_dir"], reference=_WORKER["ref_size"])
        if _WORKER["reference"] is not None:
            obj.fit_reference(_WORKER["reference"])
        if _WORKER.get("scores"):
            obj.cache = SharedScores(Path(_WORKER["scores"]))
        _WORKER["zc"] = obj
    return _WORKER["zc"]


def _import_runs(work: Path, batch: int, reference: int) -> None:
    """Put the zero-cost evaluations of run folders from before the shared cache into it.

    Only runs of the proxy ensemble with this run's batch and reference size: a tabular run's values
    (``constrained_tabular`` shares the workdir) are validation accuracies, not ensemble scores, and
    would be read back as if they were."""
    scores = SharedScores(work / "scores")
    for path in sorted(work.glob("*/candidates.jsonl")):
        config_path = path.parent / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        if (config.get("objective"), config.get("batch"), config.get("reference")) != ("ensemble", batch, reference):
            continue
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["status"] in ("evaluated", "failed") and r["fingerprint"] not in scores:
                from nas.search.objectives import Evaluation

                scores[r["fingerprint"]] = Evaluation(r["value"], r.get("scores", {}), r.get("error"))


def _run(job: tuple[str, str, int, dict[str, Any], str]) -> list[dict[str, Any]]:
    from nas.search import SearchConfig, run_search

    _exp, kind, _seed, config, out = job
    path = Path(out)
    if (path / "candidates.jsonl").is_file():  # an earlier, maybe interrupted, run of this benchmark
        res = run_search(None, path, resume=True, progress=False, objective=_objective(kind))
    else:
        res = run_search(SearchConfig(**config), path, progress=False, objective=_objective(kind))
    return res.records


def _best_at(records: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    done = [r for r in records if r["status"] in ("evaluated", "failed")][:budget]
    scored = [r for r in done if r["status"] == "evaluated"]
    return max(scored, key=lambda r: r["value"])


def _mean_std(xs: list[float]) -> dict[str, Any]:
    """Mean, std and count of per-seed figures, and the figures themselves (seed 0 first), for paired
    comparisons across strategies."""
    return {"mean": float(np.mean(xs)), "std": float(np.std(xs)), "n": len(xs), "per_seed": [float(x) for x in xs]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="search.json")
    p.add_argument("--seeds", type=int, default=10, help="seeds per strategy (default 10)")
    p.add_argument("--budgets", default="100,300", help="evaluation budgets to report (default 100,300)")
    p.add_argument("--experiments", default=",".join(_EXPERIMENTS),
                   help="which experiments to run, comma-separated (default: all five)")
    p.add_argument("--batch", type=int, default=64, help="CIFAR-10 batch for the proxies (default 64)")
    p.add_argument("--reference", type=int, default=64, help="reference architectures of the ensemble (default 64)")
    p.add_argument("--max-latency-ms", type=float, default=None, help="pixel3 bound (default: the table's median)")
    p.add_argument("--workdir", type=Path, default=None, help="where the run folders go (default: next to --out)")
    p.add_argument("--workers", type=int, default=2, help="processes, one torch thread each (default 2)")
    p.add_argument("--strategies", default="evolution,bo",
                   help="single-objective strategies beside random search, comma-separated (default evolution,bo)")
    args = p.parse_args(argv)

    from benchmarks.tabular import nb201_ground_truth, nb201_latency
    from nas.search.pareto import hypervolume_2d, non_dominated_sort
    from search_spaces.nb201 import NB201Space

    budgets = sorted(int(b) for b in args.budgets.split(","))
    experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    if not experiments or set(experiments) - set(_EXPERIMENTS):
        bad = sorted(set(experiments) - set(_EXPERIMENTS))
        p.error(f"unknown --experiments {bad}; valid: {', '.join(_EXPERIMENTS)}")
    from nas.search.base import STRATEGIES

    singles = [x.strip() for x in args.strategies.split(",") if x.strip()]
    if not singles or set(singles) - (set(STRATEGIES.names()) - {"nsga2", "random"}):
        p.error(f"--strategies takes single-objective strategies other than random; got {singles}, valid: "
                f"{', '.join(n for n in STRATEGIES.names() if n not in ('nsga2', 'random'))}")

    def strategies(exp: str) -> tuple[str, ...]:
        """The strategies an experiment runs, random search last."""
        return ("nsga2", "random") if exp == "nsga2" else (*singles, "random")

    data_dir = str(args.data_dir) if args.data_dir else None
    gt = nb201_ground_truth(args.data_dir)
    test_acc = np.asarray(gt["cifar10_test_acc"], dtype=float)
    valid_acc = np.asarray(gt["cifar10valid_valid_acc"], dtype=float)
    lat = np.asarray(nb201_latency(args.data_dir)["pixel3"], dtype=float)
    bound = float(np.median(lat)) if args.max_latency_ms is None else args.max_latency_ms
    space = NB201Space()
    work = args.workdir or Path(str(args.out) + ".runs")
    work.mkdir(parents=True, exist_ok=True)

    def acc(genotype_text: str) -> float:
        return float(test_acc[space.index(space.parse(genotype_text))])

    def latency(genotype_text: str) -> float:
        return float(lat[space.index(space.parse(genotype_text))])

    t0 = time.perf_counter()
    reference = None
    if any(e not in _TABULAR for e in experiments):  # the ensemble's reference, scored once for all runs
        _import_runs(work, args.batch, args.reference)
        _init_worker(args.batch, data_dir, None, args.reference, str(work / "scores"))
        from nas.search.loop import fit_ensemble_reference

        fit_ensemble_reference(_objective("zc"), work / "reference.json", progress=True)
        reference = _objective("zc").reference_scores

    jobs: list[tuple[str, str, int, dict[str, Any], str]] = []
    # seed-major order: a run stopped early holds the first seeds of every experiment
    for seed in range(args.seeds):
        for exp in experiments:
            kind = "tabular" if exp in _TABULAR else "zc"
            for strat in strategies(exp):
                config = dict(
                    space="nb201", strategy=strat, budget=budgets[-1], seed=seed,
                    objective="tabular" if kind == "tabular" else "ensemble",
                    data="cifar10", batch=args.batch, data_dir=data_dir, reference=args.reference,
                    latency="table:pixel3" if exp in (*_CONSTRAINED, "nsga2") else None,
                    max_latency_ms=bound if exp in _CONSTRAINED else None,
                    strategy_kwargs={"population_size": 20} if strat == "nsga2" else {},
                )
                jobs.append((exp, kind, seed, config, str(work / f"{exp}-{strat}-{seed}")))
    from tqdm import tqdm

    records: dict[str, list[dict[str, Any]]] = {}
    with tqdm(total=len(jobs), desc="searches", unit="run") as bar:
        if args.workers <= 1:
            _WORKER["scores"] = str(work / "scores")
            for job in jobs:
                records[job[4]] = _run(job)
                bar.update(1)
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(args.workers, initializer=_init_worker,
                                     initargs=(args.batch, data_dir, reference, args.reference,
                                               str(work / "scores"))) as pool:
                for job, recs in zip(jobs, pool.map(_run, jobs), strict=True):
                    records[job[4]] = recs
                    bar.update(1)

    result: dict[str, Any] = {"experiments": {}, "optimum_test_acc": float(test_acc.max())}
    rows: list[dict[str, Any]] = []
    for exp in experiments:
        entry: dict[str, Any] = {"strategies": {}}
        if exp in _CONSTRAINED:
            entry["bound_ms"] = bound
            entry["constrained_optimum_test_acc"] = float(test_acc[lat <= bound].max())
            # what a perfect search by validation accuracy (all a search may read) would pick under the bound
            feasible = np.flatnonzero(lat <= bound)
            pick = feasible[int(np.argmax(valid_acc[feasible]))]
            entry["validation_optimal_feasible_test_acc"] = float(test_acc[pick])
            entry["floor_gap"] = entry["constrained_optimum_test_acc"] - float(test_acc[pick])
        for strat in strategies(exp):
            per_budget: dict[int, list[float]] = {b: [] for b in budgets}
            hv: list[float] = []
            for seed in range(args.seeds):
                recs = records[str(work / f"{exp}-{strat}-{seed}")]
                for b in budgets:
                    per_budget[b].append(acc(_best_at(recs, b)["genotype"]))
                if exp == "nsga2":
                    done = [r for r in recs if r["status"] == "evaluated"]
                    pts = np.array([[r["value"], -r["costs"]["table"]] for r in done])
                    front = [done[i]["genotype"] for i in non_dominated_sort(pts)[0]]
                    true = np.array([[acc(g), -latency(g)] for g in front])
                    hv.append(hypervolume_2d(true, [float(test_acc.min()), -float(lat.max())]))
            s_entry: dict[str, Any] = {f"test_acc_at_{b}": _mean_std(per_budget[b]) for b in budgets}
            if hv:
                s_entry["hypervolume"] = _mean_std(hv)
            entry["strategies"][strat] = s_entry
            for b in budgets:
                m = s_entry[f"test_acc_at_{b}"]
                row = {"experiment": exp, "strategy": strat, "budget": b,
                       "test_acc": f"{m['mean']:.2f} +- {m['std']:.2f}", "gap": "", "hypervolume": ""}
                if exp in _CONSTRAINED:
                    gap = [entry["constrained_optimum_test_acc"] - a for a in per_budget[b]]
                    s_entry[f"gap_at_{b}"] = _mean_std(gap)
                    row["gap"] = f"{statistics.mean(gap):.2f} +- {float(np.std(gap)):.2f}"
                if hv and b == budgets[-1]:
                    row["hypervolume"] = f"{np.mean(hv):.1f} +- {np.std(hv):.1f}"
                rows.append(row)
        result["experiments"][exp] = entry
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["settings"] = settings(seeds=args.seeds, budgets=budgets, batch=args.batch, reference=args.reference,
                                  data="cifar10", data_dir=data_dir, latency_bound_ms=bound)
    report(args.out, result, rows)
    for exp in experiments:
        if exp in _CONSTRAINED:
            e = result["experiments"][exp]
            print(f"{exp}: constrained optimum {e['constrained_optimum_test_acc']:.3f}; the best-validation "
                  f"feasible network tests at {e['validation_optimal_feasible_test_acc']:.3f} "
                  f"(floor gap {e['floor_gap']:.3f})")
    return result


if __name__ == "__main__":
    main()
