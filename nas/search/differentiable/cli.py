"""The command line of differentiable search (loaded by :mod:`nas.cli`).

As a search backend it runs::

    nas search --strategy darts|darts2|gdas|proxyless --space nb201|darts|mbv3 --epochs E
               [--data cifar10 --data-dir DIR] [--latency-weight LAMBDA] [--max-latency-ms MS] --out RUN_DIR
    nas search --resume RUN_DIR          (a folder this backend wrote)

and as a command module it adds::

    nas latency build-lut --space mbv3 [--supernet resolution=160,width=1.0] [--lut FILE] [--threads 1]

Torch and the search modules are imported inside the functions, never at import.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

STRATEGIES = ("darts", "darts2", "gdas", "proxyless")


def _supernet_args(text: str | None) -> dict[str, Any]:
    from nas.errors import SearchError
    from search_spaces import _value

    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise SearchError(f"--supernet takes key=value pairs, e.g. c=8,n=1; got {part!r}")
        out[key.strip()] = _value(value.strip())
    return out


def register(sub: Any) -> None:
    """Add ``nas latency build-lut``."""
    lat = sub.add_parser("latency", help="per-op latency lookup tables for the latency loss")
    lat_sub = lat.add_subparsers(dest="latency_command", required=True)
    b = lat_sub.add_parser("build-lut", help="measure every op of a space's supernet with onnxruntime")
    b.add_argument("--space", default="mbv3", help="a space with a supernet latency model: mbv3 or nb201")
    b.add_argument("--supernet", default=None, help="supernet arguments, e.g. resolution=160,width=1.0")
    b.add_argument("--lut", default=None, help="table file (default: ~/.cache/nas/latency/lut-<machine>.json)")
    b.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    b.add_argument("--repeats", type=int, default=30, help="timed runs per op, median taken (default 30)")
    b.add_argument("--warmup", type=int, default=10, help="untimed runs per op (default 10)")
    b.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds of warm-up and timed runs, the least median kept (default 3)")
    b.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")
    b.set_defaults(func=cmd_build_lut)


def cmd_build_lut(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from nas.search.differentiable.latency import LatencyLUT, all_specs
    from nas.search.differentiable.supernet import build_supernet

    torch.set_num_threads(1)
    net = build_supernet(args.space, **_supernet_args(args.supernet))
    specs = all_specs(net)  # raises for a supernet without a latency model
    lut = LatencyLUT(args.lut, threads=args.threads, warmup=args.warmup, repeats=args.repeats, rounds=args.rounds)
    unique = list({s.key: s for s in specs}.values())
    new = lut.build(unique, progress=lambda it: tqdm(it, desc="build-lut", unit="op", file=sys.stderr,
                                                     disable=args.json))
    ms = [lut.latency(s) for s in unique]
    result = {"space": args.space, "lut": str(lut.path), "ops": len(unique), "measured_now": new,
              "entries": len(lut.entries), "threads": args.threads, "min_ms": min(ms), "max_ms": max(ms)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{lut.path}: {len(unique)} ops of the {args.space} supernet, {new} measured now, "
              f"{len(lut.entries)} entries in the table")
        print(f"  per-op latency {min(ms):.4f} .. {max(ms):.4f} ms (onnxruntime, {args.threads} thread(s), batch 1)")
    return 0


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nas search`` for --strategy darts|darts2|gdas|proxyless."""
    g = parser.add_argument_group("differentiable search (--strategy darts|darts2|gdas|proxyless)")
    g.add_argument("--epochs", type=int, default=10, help="supernet training epochs (default 10)")
    g.add_argument("--latency-weight", type=float, default=0.0,
                   help="lambda of the latency loss lambda*E[lat], per ms (default 0: none)")
    g.add_argument("--lr", type=float, default=0.025, help="supernet weight learning rate, cosine-annealed "
                                                           "(default 0.025)")
    g.add_argument("--arch-lr", type=float, default=None,
                   help="architecture learning rate (default 3e-4; 6e-3 for proxyless)")
    g.add_argument("--warmup-epochs", type=float, default=None,
                   help="weights-only warm-up before the architecture steps: N epochs, or a fraction in (0, 1) of "
                        "--epochs (default: 0.25 for proxyless, as ProxylessNAS; 0 otherwise)")
    g.add_argument("--images", type=int, default=0, help="use this many images of --data (default 0: all)")
    g.add_argument("--supernet", default=None, help="supernet arguments, e.g. c=8,n=1 (nb201) or width=0.5 (mbv3)")
    g.add_argument("--selection", default="argmax", choices=("argmax", "darts-pt"),
                   help="how the genotype is derived: argmax, or darts-pt (perturbation-based, Wang et al. 2021)")
    g.add_argument("--pt-tune-steps", type=int, default=0, help="darts-pt: weight steps after each decision")
    g.add_argument("--lut", default=None, help="latency table file (default: the machine's, under ~/.cache/nas)")


def handles_search(args: argparse.Namespace) -> bool:
    """True for --strategy darts|darts2|gdas|proxyless, or --resume of a folder this backend wrote."""
    if getattr(args, "resume", None):
        cfg = Path(args.resume) / "config.json"
        if cfg.is_file():
            try:
                return bool(json.loads(cfg.read_text()).get("backend") == "differentiable")
            except (OSError, ValueError):
                return False
        return False
    return getattr(args, "strategy", None) in STRATEGIES


def cmd_search(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nas.search.differentiable.search import DiffSearchConfig, run_differentiable_search

    progress = not args.json

    def show(rec: dict[str, Any]) -> None:
        if progress:
            extra = f"  lut {rec['costs']['lut_ms']:.2f} ms" if "lut_ms" in rec["costs"] else ""
            tqdm.write(f"epoch {rec['epoch']}: val acc {rec['value']:.2f}  {rec['genotype']}{extra}", file=sys.stderr)

    if args.resume:
        res = run_differentiable_search(None, args.resume, resume=True, progress=progress, on_epoch=show)
    else:
        config = DiffSearchConfig(
            method=args.strategy, space=args.space, epochs=args.epochs, seed=args.seed, data=args.data,
            data_dir=args.data_dir, images=args.images, batch=args.batch, lr=args.lr, arch_lr=args.arch_lr,
            warmup_epochs=args.warmup_epochs, latency_weight=args.latency_weight,
            max_latency_ms=args.max_latency_ms, lut=args.lut, selection=args.selection,
            pt_tune_steps=args.pt_tune_steps, supernet=_supernet_args(args.supernet),
        )
        res = run_differentiable_search(config, args.out, progress=progress, on_epoch=show)
    assert res is not None
    summary = res.result
    if args.json:
        print(json.dumps({"out": str(res.out), **summary}, indent=2))
        return 0
    best = summary["best"]
    print(f"{res.out}: {summary['method']} for {summary['counters']['epochs']} epochs, "
          f"selection {summary['selection']}")
    print(f"  derived  {best['genotype']}")
    print(f"  supernet val acc of the derived path {best['value']:.2f}")
    if "cifar10_test_acc" in best:
        print(f"  cifar10_test_acc {best['cifar10_test_acc']:.2f} (table)")
    if "latency" in summary:
        lat = summary["latency"]
        print(f"  latency  predicted {lat['predicted_ms']:.3f} ms (table), measured {lat['measured_ms']:.3f} ms "
              f"({100 * lat['relative_error']:+.1f}%)")
    print(f"  wrote {res.out / 'best.onnx'}, best.txt, candidates.jsonl, result.json, arch_history.json/.png")
    return 0
