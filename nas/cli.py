"""The ``nas`` command line.

Sub-commands::

    nas export --space nb201 --arch ARCH_OR_INDEX -o FILE.onnx
    nas info FILE.onnx [--json] [--input-shape 1,3,32,32]
    nas spaces [--json]

Errors of this project (:class:`~nas.errors.NasError`) print one line to stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.errors import NasError

log = logging.getLogger(__name__)


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
    from search_spaces import SPACES

    space = SPACES.resolve(args.space)
    genotype = space.parse(args.arch)
    with torch.random.fork_rng(devices=[]):
        if args.seed is not None:
            torch.manual_seed(args.seed)
        module = space.to_module(genotype)
    model = export_onnx(module, torch.zeros(space.example_input_shape(args.batch)))
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
    from search_spaces import SPACES, FiniteSearchSpace

    rows: list[dict[str, Any]] = []
    for name in SPACES.names():
        space = SPACES.resolve(name)
        size = len(space) if isinstance(space, FiniteSearchSpace) else None
        dims = space.dimensions()
        rows.append({"name": name, "size": size, "dimensions": len(dims), "doc": _first_line(type(space).__doc__)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            count = f"{r['size']:,} architectures" if r["size"] is not None else "not enumerable"
            print(f"{r['name']:12s} {count:24s} {r['dimensions']} dims  {r['doc']}")
    return 0


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nas", description="Neural architecture search on one ONNX graph IR.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("export", help="write an architecture of a space as an ONNX file")
    e.add_argument("--space", required=True, help="a registered space (see `nas spaces`)")
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

    s = sub.add_parser("spaces", help="list the registered search spaces")
    s.add_argument("--json", action="store_true", help="print as JSON")
    s.set_defaults(func=cmd_spaces)
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
