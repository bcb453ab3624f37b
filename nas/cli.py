"""The ``nas`` command line.

Sub-commands::

    nas export --space nb201 --arch ARCH_OR_INDEX -o FILE.onnx
    nas info FILE.onnx [--json] [--input-shape 1,3,32,32]
    nas score MODEL.onnx|FOLDER ... [--proxies a,b|all] [--data digits|cifar10|npz:PATH] [--batch 64] [--json]
    nas score --space nb201 --arch ARCH | --sample N [...]
    nas search [--space nb201] [--strategy evolution] [--objective ensemble] [--budget 50]
               [--latency measured|table:DEV] [--max-latency-ms MS] [--max-params M] [--out RUN_DIR]
    nas search --resume RUN_DIR
    nas search --study NAME [--storage URL] [--sampler tpe|predictor|...]     (nas.integrations.cli)
    nas search --strategy darts|darts2|gdas|proxyless [--epochs E] [...]      (nas.search.differentiable.cli)
    nas latency build-lut --space mbv3|nb201                                  (nas.search.differentiable.cli)
    nas predictor train --space nb201 --target cifar10_test_acc --n 100 -o model.nasp [--predictor P] [--json]
    nas predictor eval model.nasp [--n-test 1000] [--json]                    (predictors.cli)
    nas predict model.nasp FILE.onnx | --space S --arch A [--json]            (predictors.cli)
    nas proxies [--json]
    nas spaces [--json]

Errors of this project (:class:`~nas.errors.NasError`) print one line to stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.errors import NasError

log = logging.getLogger(__name__)

#: Modules that add sub-commands: each defines ``register(subparsers)``.
COMMAND_MODULES = ("predictors.cli", "nas.search.differentiable.cli")
#: Modules that run some ``nas search`` invocations instead of the evolutionary loop. Each defines
#: ``add_search_arguments(parser)``, ``handles_search(args) -> bool`` and ``cmd_search(args) -> int``.
#: Both kinds import their heavy dependencies inside the functions that run, not at import.
SEARCH_BACKENDS = ("nas.integrations.cli", "nas.search.differentiable.cli")


def _modules(names: Sequence[str]) -> list[Any]:
    import importlib

    return [importlib.import_module(name) for name in names]


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a shape is comma-separated integers, e.g. 1,3,224,224; got {text!r}"
        ) from None
    if not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"a shape needs positive dimensions; got {text!r}")
    return shape


def cmd_export(args: argparse.Namespace) -> int:
    import onnx
    import torch

    from nas.ir import ArchGraph
    from nas.ir.torch_export import export_onnx
    from search_spaces import space_from_spec

    space = space_from_spec(args.space)
    genotype = space.parse(args.arch)
    with torch.random.fork_rng(devices=[]):
        if args.seed is not None:
            torch.manual_seed(args.seed)
        module = space.to_module(genotype)
    model = export_onnx(module, torch.zeros(space.example_input_shape(args.batch, genotype)))
    model.producer_name = "nas"
    model.doc_string = f"{space.name} {space.format(genotype)}"
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    graph = ArchGraph.from_onnx(model)
    result = {
        "space": space.name,
        "arch": space.format(genotype),
        "output": str(out),
        "params": graph.params,
        "flops": graph.flops,
        "fingerprint": graph.fingerprint(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"wrote {out}: {space.name} {result['arch']}")
        print(f"  params {graph.params:,}  flops {graph.flops:,}  fingerprint {result['fingerprint']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from nas.ir import ArchGraph

    graph = ArchGraph.from_onnx(args.file, input_shapes=args.input_shape)
    info = graph.summary()
    info["file"] = str(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{args.file}")
    print(f"  nodes        {info['nodes']}")
    print(f"  params       {info['params']:,}")
    print(f"  flops        {info['flops']:,}  (per sample; multiply-accumulates, see nas.ir.ops)")
    print(f"  depth        {info['depth']}")
    print(f"  inputs       {info['inputs']}")
    print(f"  outputs      {info['outputs']}")
    print(f"  fingerprint  {info['fingerprint']}")
    print("  ops          " + ", ".join(f"{k} {v}" for k, v in info["op_counts"].items()))
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from search_spaces import SPACES, FiniteSearchSpace, required_arguments

    rows: list[dict[str, Any]] = []
    for name in SPACES.names():
        needs = required_arguments(name)
        if needs:  # e.g. onnx_folder: its size is that of the folder it is given
            doc = _first_line(SPACES.get(name).__doc__)
            rows.append({"name": name, "size": None, "dimensions": None, "needs": needs, "doc": doc})
            continue
        space = SPACES.resolve(name)
        size = len(space) if isinstance(space, FiniteSearchSpace) else None
        dims = space.dimensions()
        rows.append({"name": name, "size": size, "dimensions": len(dims), "needs": [],
                     "doc": _first_line(type(space).__doc__)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if r["needs"]:
                count, extent = f"given {', '.join(r['needs'])}", "--space " + r["name"] + ":" + r["needs"][0].upper()
            else:
                count = f"{r['size']:,} architectures" if r["size"] is not None else "not enumerable"
                extent = f"{r['dimensions']} dims"
            print(f"{r['name']:12s} {count:24s} {extent}  {r['doc']}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from nas.data import fit_batch, load_batch
    from nas.ir import ArchGraph
    from proxies import engine
    from search_spaces import space_from_spec

    proxies = engine.resolve_proxies(args.proxies)
    batch = load_batch(args.data, args.batch, seed=args.seed, data_dir=args.data_dir, balanced=args.balanced)
    jobs: list[tuple[str, Callable[[], Any], tuple[int, ...] | None]] = []
    if args.space:
        space = space_from_spec(args.space)
        if args.arch and args.sample:
            raise NasError("give either --arch or --sample, not both")
        if args.arch:
            genotypes = [space.parse(a) for a in args.arch]
        elif args.sample:
            rng = np.random.default_rng(args.seed)
            genotypes = [space.sample(rng) for _ in range(args.sample)]
        else:
            raise NasError("with --space, give --arch ARCH or --sample N")
        for g in genotypes:
            jobs.append((space.format(g), functools.partial(engine.to_model, g, space=space, seed=args.seed),
                         space.example_input_shape(1, g)))
    files: list[Path] = []
    for m in args.models:
        path = Path(m)
        files.extend(sorted(path.glob("*.onnx")) if path.is_dir() else [path])
    for f in files:
        jobs.append((str(f), functools.partial(ArchGraph.from_onnx, f, input_shapes=args.input_shape), None))
    if not jobs:
        raise NasError("nothing to score: give ONNX files or a folder, or --space with --arch/--sample")
    results = []
    for name, make, shape in tqdm(jobs, desc="scoring", unit="model", disable=len(jobs) < 2, file=sys.stderr):
        target = make()
        model_batch = batch if shape is None else fit_batch(batch, shape)
        if isinstance(target, ArchGraph):
            model_batch = fit_batch(batch, target.inputs[0].out_shapes[0])
            target = target.to_torch(seed=args.seed)
        timings: dict[str, float] = {}
        errors: dict[str, str] = {}
        scores = engine.score(target, model_batch, proxies, timings=timings, errors=errors)
        for message in errors.values():
            print(f"warning: {name}: {message}", file=sys.stderr)
        results.append({"model": name, "scores": scores, "seconds": timings, "errors": errors})
    if all(not r["scores"] for r in results):
        raise NasError("no proxy could score any model (see the warnings above)")
    if args.json:
        print(json.dumps({"data": args.data, "batch": args.batch, "seed": args.seed, "results": results}, indent=2))
        return 0
    names = [p.name for p in proxies]
    print(f"data {args.data}, batch {args.batch}, seed {args.seed}; higher is better for: "
          + ", ".join(p.name for p in proxies if p.higher_is_better))
    width = max(len(r["model"]) for r in results)
    print(f"{'model':{width}s}  " + "  ".join(f"{n:>12s}" for n in names))
    for r in results:
        cells = [f"{r['scores'][n]:12.5g}" if n in r["scores"] else f"{'error':>12s}" for n in names]
        print(f"{r['model']:{width}s}  " + "  ".join(cells))
    return 0


def cmd_proxies(args: argparse.Namespace) -> int:
    from proxies import PROXIES

    rows = []
    for name in PROXIES.names():
        p = PROXIES.resolve(name)
        rows.append({"name": name, "higher_is_better": p.higher_is_better, "doc": _first_line(type(p).__doc__)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            direction = "higher is better" if r["higher_is_better"] else "lower is better"
            print(f"{r['name']:10s} {direction:17s} {r['doc']}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    for backend in _modules(SEARCH_BACKENDS):
        if backend.handles_search(args):
            code: int = backend.cmd_search(args)
            return code
    from nas.search import SearchConfig, run_search

    if args.resume:
        result = run_search(None, args.resume, resume=True, progress=not args.json)
    else:
        kwargs: dict[str, Any] = {}
        if args.population is not None:
            kwargs["population_size"] = args.population
        config = SearchConfig(
            space=args.space, strategy=args.strategy, objective=args.objective, budget=args.budget, seed=args.seed,
            data=args.data, batch=args.batch, data_dir=args.data_dir, latency=args.latency,
            max_latency_ms=args.max_latency_ms, max_params=args.max_params, max_flops=args.max_flops,
            max_tries=args.max_tries, reference=args.reference, strategy_kwargs=kwargs,
        )
        result = run_search(config, args.out, progress=not args.json)
    summary = json.loads((result.out / "result.json").read_text()) if (result.out / "result.json").is_file() else {}
    if args.json:
        print(json.dumps({"out": str(result.out), **summary}, indent=2))
        return 0
    best = summary.get("best", {})
    print(f"{result.out}: {result.evaluated} evaluated, {result.failed} failed, {result.rejected} rejected by "
          f"constraints, {result.cached} from the fingerprint cache")
    print(f"  best     {best.get('genotype')}")
    print(f"  value    {best.get('value'):.6g}" + "".join(f"  {k} {v:.4g}" for k, v in best.get("costs", {}).items()))
    for extra in ("cifar10_test_acc",):
        if extra in best:
            print(f"  {extra} {best[extra]:.2f} (table)")
    if summary.get("front"):
        print(f"  Pareto front: {len(summary['front'])} architectures (result.json, pareto.png)")
    print(f"  wrote {result.out / 'best.onnx'}, best.txt, candidates.jsonl, result.json")
    return 0


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nas", description="Neural architecture search on one ONNX graph IR.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("export", help="write an architecture of a space as an ONNX file")
    e.add_argument("--space", required=True,
                   help="a registered space (see `nas spaces`): NAME or NAME:ARGS, e.g. nb201 or onnx_folder:models/")
    e.add_argument("--arch", required=True, help="the genotype: an arch string or, for NB201, an official index")
    e.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    e.add_argument("--batch", type=int, default=1, help="batch size of the exported input (default 1)")
    e.add_argument("--seed", type=int, default=None, help="seed the PyTorch initialization of the weights")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("info", help="summarize an ONNX model: params, FLOPs, ops, depth, fingerprint")
    i.add_argument("file", help="an .onnx file")
    i.add_argument("--input-shape", type=_shape, default=None,
                   help="example input shape for models with dynamic dimensions, e.g. 1,3,224,224")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=cmd_info)

    sc = sub.add_parser("score", help="score architectures with zero-cost proxies")
    sc.add_argument("models", nargs="*", help="ONNX files or folders of them")
    sc.add_argument("--space", help="score genotypes of this space (NAME or NAME:ARGS) with --arch or --sample")
    sc.add_argument("--arch", action="append", help="a genotype of --space (repeatable)")
    sc.add_argument("--sample", type=int, default=0, help="score N genotypes sampled from --space")
    sc.add_argument("--proxies", default="all", help="comma-separated proxy names, or all (see `nas proxies`)")
    sc.add_argument("--data", default="digits", help="cifar10, npz:PATH, digits (default, embedded) or synthetic")
    sc.add_argument("--data-dir", default=None, help="where cifar10 data lives (default: $NAS_DATA)")
    sc.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    sc.add_argument("--balanced", action="store_true", help="draw a class-balanced batch")
    sc.add_argument("--seed", type=int, default=0, help="seed for the batch and the initialization")
    sc.add_argument("--input-shape", type=_shape, default=None, help="example input shape for dynamic models")
    sc.add_argument("--json", action="store_true", help="print the scores as JSON")
    sc.set_defaults(func=cmd_score)

    se = sub.add_parser("search", help="search a space for the best architecture under constraints (resumable)")
    se.add_argument("--space", default="nb201", help="a registered space, NAME or NAME:ARGS (default nb201)")
    se.add_argument("--strategy", default="evolution",
                    help="random, evolution (default), local, bo, nsga2; "
                         "differentiable: darts, darts2, gdas, proxyless")
    se.add_argument("--objective", default="ensemble",
                    help="ensemble (default), a proxy name, tabular[:COLUMN] (NB201 benchmarking only), "
                         "or predictor:FILE.nasp (a saved predictor)")
    se.add_argument("--budget", type=int, default=50, help="evaluations (default 50)")
    se.add_argument("--latency", default=None,
                    help="latency cost model: measured, table:DEVICE (e.g. table:pixel3) or predicted:FILE.nasp "
                         "(a saved latency predictor)")
    se.add_argument("--max-latency-ms", type=float, default=None, help="reject candidates slower than this")
    se.add_argument("--max-params", type=float, default=None, help="reject candidates with more parameters (M)")
    se.add_argument("--max-flops", type=float, default=None, help="reject candidates with more FLOPs (M)")
    se.add_argument("--max-tries", type=int, default=10_000,
                    help="give up after this many consecutive rejected candidates (default 10000)")
    se.add_argument("--population", type=int, default=None, help="population size of evolution or nsga2")
    se.add_argument("--data", default="digits", help="images for the proxies: cifar10, npz:PATH, digits (default)")
    se.add_argument("--data-dir", default=None, help="reference data folder (default: $NAS_DATA)")
    se.add_argument("--batch", type=int, default=64, help="batch size for the proxies (default 64)")
    se.add_argument("--reference", type=int, default=32,
                    help="architectures that standardize the ensemble objective (default 32)")
    se.add_argument("--seed", type=int, default=0, help="seed of the strategy, the batch and the initialization")
    se.add_argument("--out", default="search-run", help="run folder (default search-run)")
    se.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the search in RUN_DIR")
    se.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")
    se.set_defaults(func=cmd_search)
    for backend in _modules(SEARCH_BACKENDS):
        backend.add_search_arguments(se)

    pr = sub.add_parser("proxies", help="list the zero-cost proxies and their direction")
    pr.add_argument("--json", action="store_true", help="print as JSON")
    pr.set_defaults(func=cmd_proxies)

    s = sub.add_parser("spaces", help="list the registered search spaces")
    s.add_argument("--json", action="store_true", help="print as JSON")
    s.set_defaults(func=cmd_spaces)
    for module in _modules(COMMAND_MODULES):
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
