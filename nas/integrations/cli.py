"""The Optuna backend of ``nas search``: one worker of a shared study.

::

    nas search --space nb201 --objective synflow --budget 100 --storage sqlite:///nas.db --study s1 \\
               [--sampler tpe|random|nsga2|gp|cmaes|predictor] [--worker 0] [--heartbeat 10]

Start the same command on as many processes or machines as you like (PostgreSQL,
``postgresql://USER@HOST:PORT/DB``, for several machines; give each worker its own ``--worker``
index so that seeded samplers do not propose the same sequence): they share the study, its budget of
``--budget`` finished trials, and its results; a killed worker's trial is retried by the others (see
:mod:`nas.integrations.distributed`). This module imports Optuna only when it runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

#: The SQLite file used when ``--study`` is given without ``--storage``.
DEFAULT_STORAGE = "sqlite:///nas-optuna.db"


def register(sub: Any) -> None:
    """No sub-commands of its own: this module extends ``nas search``."""


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the shared-study options to ``nas search``."""
    g = parser.add_argument_group("shared Optuna study (any number of workers)")
    g.add_argument("--storage", default=None, metavar="URL",
                   help=f"Optuna RDB storage: sqlite:///FILE.db or postgresql://USER@HOST:PORT/DB "
                        f"(default with --study: {DEFAULT_STORAGE})")
    g.add_argument("--study", default=None, metavar="NAME", help="study name (default: nas-SPACE)")
    g.add_argument("--sampler", default="tpe", choices=("tpe", "random", "nsga2", "gp", "cmaes", "predictor"),
                   help="Optuna sampler (default tpe; with --latency: tpe, random or nsga2)")
    g.add_argument("--predictor", default="gp",
                   help="model of --sampler predictor: gp (a Gaussian process on the choices, default), forest "
                        "(a random forest on them) or a registered graph predictor such as graph_gbdt")
    g.add_argument("--startup-trials", type=int, default=10,
                   help="random trials before a model-based sampler takes over (default 10)")
    g.add_argument("--worker", type=int, default=0, metavar="INDEX",
                   help="this worker's index: seeds its sampler apart from the others' (default 0)")
    g.add_argument("--heartbeat", type=int, default=10, metavar="SECONDS",
                   help="heartbeat interval; a trial silent for twice this is failed and retried (default 10)")
    g.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="stop this worker after this long")


def handles_search(args: argparse.Namespace) -> bool:
    """Whether this backend runs the given ``nas search`` (``--storage`` or ``--study`` given)."""
    return getattr(args, "storage", None) is not None or getattr(args, "study", None) is not None


def cmd_search(args: argparse.Namespace) -> int:
    """Run one worker of the shared study; print the study's state when it is done."""
    import numpy as np
    import optuna

    from nas.errors import SearchError
    from nas.integrations.distributed import open_storage, run_worker, study_counts
    from nas.integrations.objective import make_objective
    from nas.integrations.samplers import create_sampler, sampler_encoding

    if args.resume:
        raise SearchError("--resume continues a run folder; a shared study resumes by joining it again "
                          "(same --storage and --study)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(args.storage or DEFAULT_STORAGE, heartbeat_interval=args.heartbeat)
    name = args.study or f"nas-{args.space.split(':', 1)[0]}"
    sampler_name = args.sampler
    objective = make_objective(args.space, args.objective, latency=args.latency, max_params=args.max_params,
                               max_flops=args.max_flops, max_latency_ms=args.max_latency_ms, data=args.data,
                               batch=args.batch, seed=args.seed, data_dir=args.data_dir, reference=args.reference,
                               encoding=sampler_encoding(sampler_name))
    if len(objective.directions) > 1 and sampler_name not in ("nsga2", "random", "tpe"):
        raise SearchError(f"--sampler {sampler_name} takes one objective; with --latency use nsga2, tpe or random")
    worker_seed = int(np.random.SeedSequence([args.seed, args.worker]).generate_state(1)[0])
    # PredictorSampler seeds per trial number, so all its workers share the seed
    seed = args.seed if sampler_name == "predictor" else worker_seed
    # constraints reach TPE, NSGA-II and GP through trial.set_constraint (see nas.integrations.objective),
    # and the predictor sampler as a predicate, so that it proposes only architectures that meet them
    sampler = create_sampler(sampler_name, objective.mapping, seed=seed, n_startup_trials=args.startup_trials,
                             predictor=args.predictor, feasible=objective.feasible)
    study = optuna.create_study(storage=storage, study_name=name, directions=objective.directions, sampler=sampler,
                                load_if_exists=True)
    if [d.name.lower() for d in study.directions] != objective.directions:
        raise SearchError(f"study {name!r} has directions {[d.name.lower() for d in study.directions]}; this "
                          f"objective needs {objective.directions} (--latency adds latency as a second objective)")
    described = {"nas:space": args.space, "nas:objective": args.objective, "nas:latency": args.latency}
    if "nas:space" not in study.user_attrs:
        for k, v in described.items():
            study.set_user_attr(k, v)
    elif study.user_attrs.get("nas:space") != args.space or study.user_attrs.get("nas:objective") != args.objective:
        raise SearchError(f"study {name!r} searches {study.user_attrs.get('nas:space')} with "
                          f"{study.user_attrs.get('nas:objective')}; this worker was given {args.space} with "
                          f"{args.objective}")
    report = run_worker(study, objective, args.budget, timeout=args.timeout)
    counts = study_counts(study)
    from sqlalchemy.engine import make_url

    shown = make_url(storage.url).render_as_string(hide_password=True)
    summary: dict[str, Any] = {"storage": shown, "study": name, "worker": args.worker, "ran": report.ran,
                               "yielded": report.yielded, "stale": report.stale, **counts}
    if len(objective.directions) == 1:
        try:
            best = study.best_trial
            summary["best"] = {"number": best.number, "value": best.value, "arch": best.user_attrs.get("arch"),
                               "costs": best.user_attrs.get("costs", {})}
        except ValueError:
            summary["best"] = None
    else:
        summary["front"] = [{"number": t.number, "values": t.values, "arch": t.user_attrs.get("arch")}
                            for t in study.best_trials]
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"study {name}: {counts['finished']} of {args.budget} trials finished; this worker ran {report.ran}"
          + (f" (gave up {report.yielded} in a budget race)" if report.yielded else ""))
    if summary.get("best"):
        b = summary["best"]
        print(f"  best     trial {b['number']}  {b['arch']}")
        print(f"  value    {b['value']:.6g}" + "".join(f"  {k} {v:.4g}" for k, v in b["costs"].items()))
    if "front" in summary:
        print(f"  Pareto front: {len(summary['front'])} trials (study.best_trials)")
    return 0
