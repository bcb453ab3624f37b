"""The search loop: strategy, objective, constraints and a run folder that survives a crash.

:func:`run_search` asks the strategy for a candidate, builds its graph, checks the constraints
(EEEA-Net's early exit: a candidate over a bound is rejected *before* it is scored, and the strategy
is told ``None``), evaluates the rest, and tells the strategy the value -- a float, or for NSGA-II
the pair ``(objective, -cost)`` of the ``latency`` cost model. It stops after ``budget``
evaluations (failed ones included, rejected ones not). Termritthikun et al., "EEEA-Net: An Early
Exit Evolutionary Neural Architecture Search", Eng. Appl. of AI 2021, reject candidates over a
parameter bound while building the initial population; here every candidate, initial or child,
goes through the same filter, and ``max_tries`` consecutive rejections end the search with
:class:`~nas.errors.ConstraintError` naming the constraints and the count. A strategy that offers
``set_feasible`` (``bo``) also gets the constraints as a predicate, so that it proposes candidates that
meet them (see :mod:`nas.search.base`); the loop checks every candidate all the same.

The run folder:

* ``config.json`` -- the :class:`SearchConfig`;
* ``candidates.jsonl`` -- one line per asked candidate: genotype, fingerprint, status
  (``evaluated``, ``failed``, ``rejected``), value, scores, costs, whether the value came from the
  fingerprint cache, seconds;
* ``state.json`` -- the strategy's ``state_dict`` and the counters, replaced atomically after each line;
* ``reference.json`` -- the ensemble's reference scores (ensemble objective only);
* at the end: ``best.onnx`` and ``best.txt`` (the genotype), ``result.json``, and for NSGA-II
  ``pareto.png`` and the front in ``result.json``.

``resume=True`` continues a folder: the strategy state is loaded, lines written after the last
state (a crash between the two writes) are replayed into the strategy without re-evaluating them
(the replayed ``ask`` must reproduce the logged genotype), and earlier results refill the fingerprint
cache. So no evaluation is lost or repeated, and the run ends as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConstraintError, SearchError
from nas.hardware import Constraint, CostModel, cost_model_from_spec, feasibility
from nas.search.base import STRATEGIES, Strategy
from nas.search.objectives import Evaluation, Objective, PredictorObjective, ProxyObjective, TabularObjective
from search_spaces import space_from_spec
from search_spaces.base import SearchSpace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search (written to ``config.json``)."""

    space: str = "nb201"
    strategy: str = "evolution"
    objective: str = "ensemble"
    budget: int = 100
    seed: int = 0
    data: str = "digits"
    batch: int = 64
    data_dir: str | None = None
    latency: str | None = None  # cost model of max_latency_ms and of NSGA-II's second objective
    max_latency_ms: float | None = None
    max_params: float | None = None  # millions
    max_flops: float | None = None  # millions
    max_tries: int = 10_000
    reference: int = 64
    strategy_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise SearchError(f"the budget must be at least 1 evaluation; got {self.budget}")
        if self.strategy not in STRATEGIES:
            raise SearchError(f"unknown strategy {self.strategy!r}; valid: {', '.join(STRATEGIES.names())}")
        if self.max_latency_ms is not None and self.latency is None:
            raise SearchError("--max-latency-ms needs --latency measured|table:DEVICE|predicted:FILE")
        if self.strategy == "nsga2" and self.latency is None:
            raise SearchError("nsga2 trades the objective against latency: give --latency measured|table:DEVICE|"
                              "predicted:FILE")
        if self.max_tries < 1:
            raise SearchError(f"max_tries must be at least 1; got {self.max_tries}")


@dataclass
class SearchResult:
    best: Any
    best_value: float
    evaluated: int
    rejected: int
    failed: int
    cached: int
    out: Path
    front: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def make_objective(config: SearchConfig, space: SearchSpace) -> Objective:
    spec = config.objective
    if spec.startswith("tabular"):
        _, _, metric = spec.partition(":")
        return TabularObjective(space, metric or "cifar10valid_valid_acc", data_dir=config.data_dir)
    if spec.startswith("predictor:"):
        return PredictorObjective.from_file(spec.partition(":")[2], space=space, data_dir=config.data_dir)
    from proxies import PROXIES

    if spec != "ensemble" and spec not in PROXIES:
        raise SearchError(f"unknown objective {spec!r}; valid: ensemble, tabular[:COLUMN], predictor:FILE.nasp, "
                          f"or a proxy: {', '.join(PROXIES.names())}")
    return ProxyObjective(space, spec, data=config.data, batch=config.batch, seed=config.seed,
                          data_dir=config.data_dir, reference=config.reference)


def _constraints(config: SearchConfig, latency: CostModel | None) -> list[Constraint]:
    out = []
    if config.max_latency_ms is not None and latency is not None:
        out.append(Constraint(latency, config.max_latency_ms))
    if config.max_params is not None:
        out.append(Constraint(cost_model_from_spec("params"), config.max_params))
    if config.max_flops is not None:
        out.append(Constraint(cost_model_from_spec("flops"), config.max_flops))
    return out


def _write_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def run_search(
    config: SearchConfig | None = None,
    out: str | Path = "search-run",
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    objective: Objective | None = None,
) -> SearchResult:
    """Run (or with ``resume`` continue) a search in folder ``out``; see the module docstring.

    ``stop_after`` ends the session after that many new lines without finishing (tests use it to
    stand in for a crash); ``on_record`` sees each line as it is written. ``objective`` replaces the one
    ``config.objective`` names (a benchmark shares one, and its fingerprint cache, across runs).
    """
    out = Path(out)
    if resume:
        if not (out / "config.json").is_file():
            raise SearchError(f"cannot resume {out}: it has no config.json (not a search folder)")
        raw = json.loads((out / "config.json").read_text())
        config = SearchConfig(**raw)
    elif config is None:
        raise SearchError("give a SearchConfig, or resume=True with a search folder")
    elif (out / "candidates.jsonl").exists():
        raise SearchError(f"{out} already holds a search; resume it (--resume) or choose another --out")
    assert config is not None
    space = space_from_spec(config.space)
    strategy: Strategy = STRATEGIES.resolve(config.strategy, space=space, seed=config.seed, **config.strategy_kwargs)
    objective = objective if objective is not None else make_objective(config, space)
    latency = cost_model_from_spec(config.latency, config.data_dir) if config.latency else None
    constraints = _constraints(config, latency)
    if constraints and hasattr(strategy, "set_feasible"):
        strategy.set_feasible(feasibility(space, constraints))
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        _write_atomic(out / "config.json", dataclasses.asdict(config))

    lines_path, state_path = out / "candidates.jsonl", out / "state.json"
    records: list[dict[str, Any]] = []
    if resume and lines_path.is_file():
        text = lines_path.read_text()
        if text and not text.endswith("\n"):  # a line cut by the crash: it was never acted upon
            text = text[: text.rfind("\n") + 1]
            lines_path.write_text(text)
        records = [json.loads(line) for line in text.splitlines()]
    counters = {"evaluated": 0, "rejected": 0, "failed": 0, "cached": 0, "streak": 0, "lines": 0}
    if resume and state_path.is_file():
        state = json.loads(state_path.read_text())
        strategy.load_state_dict(state["strategy"])
        counters.update(state["counters"])
    for old in records:
        if isinstance(objective, TabularObjective) and old["status"] != "rejected":
            objective.mark_evaluated(space.parse(old["genotype"]))
        elif hasattr(objective, "remember") and old["status"] in ("evaluated", "failed"):
            objective.remember(space.parse(old["genotype"]), old["fingerprint"],
                               Evaluation(old["value"], old["scores"], old.get("error")))

    if isinstance(objective, ProxyObjective) and objective.ensemble:
        if objective.reference_scores is None:  # read the folder's reference, or score a new one
            fit_ensemble_reference(objective, out / "reference.json", progress)
        elif not (out / "reference.json").is_file():  # a shared objective, fitted by an earlier run
            _write_atomic(out / "reference.json", {"scores": objective.reference_scores})

    def tell_value(rec: dict[str, Any]) -> Any:
        if rec["status"] != "evaluated":
            return None
        if config.strategy == "nsga2":
            return (rec["value"], -rec["costs"][latency.name if latency else ""])
        return rec["value"]

    # lines written after the last saved state: replay them into the strategy, evaluating nothing
    for logged in records[counters["lines"]:]:
        g = strategy.ask()
        if space.format(g) != logged["genotype"]:
            raise SearchError(f"cannot resume {out}: the strategy proposes {space.format(g)!r} where the log has "
                              f"{logged['genotype']!r} (was the code or config changed?)")
        strategy.tell(g, tell_value(logged))
        _count(counters, logged)
    _save_state(state_path, strategy, counters)

    from tqdm import tqdm

    bar = tqdm(total=config.budget, initial=counters["evaluated"] + counters["failed"], desc="search",
               unit="eval", disable=not progress)
    best = _best(records, config)
    new_lines = 0
    with lines_path.open("a") as f:
        while counters["evaluated"] + counters["failed"] < config.budget:
            if stop_after is not None and new_lines >= stop_after:
                break
            t = time.perf_counter()
            g = strategy.ask()
            graph = space.to_graph(g)
            rec: dict[str, Any] = {"n": counters["lines"], "genotype": space.format(g),
                                   "fingerprint": graph.fingerprint(), "costs": {}}
            ok = True
            for c in constraints:
                passed, value = c.check(graph, g)
                rec["costs"][c.model.name] = value
                ok = ok and passed
            if ok and latency is not None and latency.name not in rec["costs"]:
                rec["costs"][latency.name] = latency.cost(graph, g)
            if not ok:
                rec.update(status="rejected", value=None, scores={}, cached=False)
            else:
                ev = objective.evaluate(g, graph)
                rec.update(status="evaluated" if ev.value is not None else "failed", value=ev.value,
                           scores=ev.scores, cached=ev.cached)
                if ev.error:
                    rec["error"] = ev.error
            rec["seconds"] = round(time.perf_counter() - t, 4)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            strategy.tell(g, tell_value(rec))
            _count(counters, rec)
            _save_state(state_path, strategy, counters)
            records.append(rec)
            new_lines += 1
            if on_record:
                on_record(rec)
            if rec["status"] != "rejected":
                bar.update(1)
                if rec["status"] == "evaluated" and (best is None or rec["value"] > best["value"]):
                    best = rec
                    bar.set_postfix(best=f"{rec['value']:.4g}")
            if counters["streak"] >= config.max_tries:
                bar.close()
                raise ConstraintError(
                    f"no candidate met {' and '.join(c.label for c in constraints)} in {counters['streak']} "
                    f"consecutive tries ({counters['rejected']} rejected in all); relax the bound"
                )
    bar.close()
    if counters["evaluated"] + counters["failed"] < config.budget:
        return SearchResult(best and space.parse(best["genotype"]), best["value"] if best else float("nan"),
                            counters["evaluated"], counters["rejected"], counters["failed"], counters["cached"],
                            out, records=records)
    return _finish(config, space, objective, latency, records, counters, out)


def fit_ensemble_reference(objective: ProxyObjective, path: Path, progress: bool) -> None:
    if path.is_file():
        scores = json.loads(path.read_text())["scores"]
    else:
        from tqdm import tqdm

        scores = []
        for g in tqdm(objective.reference_genotypes(), desc="ensemble reference", unit="arch", disable=not progress):
            s, _ = objective.raw_scores(g, objective.space.to_graph(g))
            scores.append(s)
        _write_atomic(path, {"scores": scores})
    objective.fit_reference(scores)


def _count(counters: dict[str, int], rec: dict[str, Any]) -> None:
    counters["lines"] += 1
    counters[rec["status"]] += 1
    if rec.get("cached"):
        counters["cached"] += 1
    counters["streak"] = counters["streak"] + 1 if rec["status"] == "rejected" else 0


def _save_state(path: Path, strategy: Strategy, counters: dict[str, int]) -> None:
    _write_atomic(path, {"strategy": strategy.state_dict(), "counters": counters})


def _best(records: list[dict[str, Any]], config: SearchConfig) -> dict[str, Any] | None:
    done = [r for r in records if r["status"] == "evaluated"]
    return max(done, key=lambda r: r["value"]) if done else None


def _finish(config: SearchConfig, space: SearchSpace, objective: Objective, latency: CostModel | None,
            records: list[dict[str, Any]], counters: dict[str, int], out: Path) -> SearchResult:
    import torch

    from nas.ir.torch_export import export_onnx
    from nas.search.pareto import non_dominated_sort

    best = _best(records, config)
    if best is None:
        raise SearchError(f"no candidate of {counters['lines']} could be evaluated; see {out / 'candidates.jsonl'}")
    g = space.parse(best["genotype"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        module = space.to_module(g)
    import onnx

    onnx.save(export_onnx(module, torch.zeros(space.example_input_shape(1, g))), str(out / "best.onnx"))
    (out / "best.txt").write_text(best["genotype"] + "\n")
    front: list[dict[str, Any]] = []
    if latency is not None:
        done = [r for r in records if r["status"] == "evaluated" and latency.name in r["costs"]]
        if done:
            pts = np.array([[r["value"], -r["costs"][latency.name]] for r in done])
            front = sorted((done[i] for i in non_dominated_sort(pts)[0]), key=lambda r: r["costs"][latency.name])
            if config.strategy == "nsga2":
                _pareto_png(done, front, latency, objective.name, out / "pareto.png")
    result: dict[str, Any] = {
        "best": {"genotype": best["genotype"], "value": best["value"], "fingerprint": best["fingerprint"],
                 "costs": best["costs"], "scores": best["scores"]},
        "counters": counters,
        "front": [{"genotype": r["genotype"], "value": r["value"], "costs": r["costs"]} for r in front],
    }
    if isinstance(objective, TabularObjective):
        result["best"][objective.report_column] = objective.truth(g)
    _write_atomic(out / "result.json", result)
    return SearchResult(g, best["value"], counters["evaluated"], counters["rejected"], counters["failed"],
                        counters["cached"], out, front=result["front"], records=records)


def _pareto_png(done: list[dict[str, Any]], front: list[dict[str, Any]], latency: CostModel, objective: str,
                path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.scatter([r["costs"][latency.name] for r in done], [r["value"] for r in done], s=6, alpha=0.4,
               label="evaluated")
    ax.plot([r["costs"][latency.name] for r in front], [r["value"] for r in front], "o-", color="C3", ms=4,
            label="Pareto front")
    device = getattr(latency, "device", None)
    ax.set_xlabel(f"latency ({latency.name}{':' + device if device else ''}, {latency.unit})")
    ax.set_ylabel(f"{objective} (higher is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
