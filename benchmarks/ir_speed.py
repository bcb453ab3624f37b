"""How fast architectures become `ArchGraph`s.

    python -m benchmarks.ir_speed --out ir_speed.json

Two medians, each after one warm-up:

* NB201 genotype -> ``ArchGraph`` (``NB201Space.to_graph``: build the ONNX graph with ``onnx.helper``,
  check, infer shapes, convert), over ``--n-nb201`` random architectures. Goal: <= 5 ms.
* ONNX file -> ``ArchGraph`` for a ResNet-50 (25.6 M parameters, written here without torchvision and
  exported once with the TorchScript exporter), over ``--repeats`` loads. Goal: <= 1 s.

For context it also times the export of the ResNet-50 itself and ``fingerprint()``, and, for each
built-in space (``nb201``, ``nb101``, ``darts``, ``mbv3``), ``to_graph`` (the space writes its ONNX
directly) side by side with the graph of its exported module (``ArchGraph.from_module(to_module(g))``,
the TorchScript exporter), over the same ``--n-spaces`` random genotypes: both medians, their ratio,
and how many of the pairs have one fingerprint.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks._common import add_common_args, print_table, report, settings


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * 4
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.down: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.down(x))


class ResNet50(nn.Module):
    """ResNet-50 (He et al., 2016): bottleneck stages of 3, 4, 6, 3 blocks; 25,557,032 parameters."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        c = 64
        for i, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512))):
            for b in range(blocks):
                layers.append(Bottleneck(c, width, 2 if (b == 0 and i > 0) else 1))
                c = width * 4
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def _median_ms(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """Median wall time of ``fn(item)`` over ``items``, in milliseconds."""
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _direct_vs_export(n: int, seed: int) -> list[dict[str, Any]]:
    """Per space: median ``to_graph`` and median graph of the exported module, on the same ``n`` genotypes."""
    from nas.ir import ArchGraph
    from search_spaces import SPACES

    torch.set_num_threads(1)
    rows = []
    for name in ("nb201", "nb101", "darts", "mbv3"):
        space = SPACES.resolve(name)
        rng = np.random.default_rng(seed)
        genotypes = [space.sample(rng) for _ in range(n)]

        def exported(g: Any, space: Any = space) -> ArchGraph:
            return ArchGraph.from_module(space.to_module(g), torch.zeros(space.example_input_shape(1, g)))

        space.to_graph(genotypes[0])  # warm-up
        exported(genotypes[0])
        direct_ms, export_ms = _median_ms(space.to_graph, genotypes), _median_ms(exported, genotypes)
        same = sum(space.to_graph(g).fingerprint() == exported(g).fingerprint() for g in genotypes)
        rows.append({"space": name, "n": n, "direct_ms": direct_ms, "export_ms": export_ms,
                     "ratio": export_ms / direct_ms, "same_fingerprint": same})
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="ir_speed.json")
    p.add_argument("--n-nb201", type=int, default=200, help="NB201 architectures to time (default 200)")
    p.add_argument("--repeats", type=int, default=5, help="ResNet-50 loads to time (default 5)")
    p.add_argument("--n-spaces", type=int, default=10,
                   help="genotypes per space for direct-vs-export (default 10; 0 skips it)")
    args = p.parse_args(argv)

    import onnx

    from nas.ir import ArchGraph
    from nas.ir.graph import wl_hash
    from nas.ir.torch_export import export_onnx
    from search_spaces.nb201 import NB201Space

    space = NB201Space()
    rng = np.random.default_rng(args.seed)
    genotypes = [space.sample(rng) for _ in range(args.n_nb201)]
    space.to_graph(genotypes[0])  # warm-up
    nb201_ms = _median_ms(space.to_graph, genotypes)
    graphs = [space.to_graph(g) for g in genotypes[:20]]
    fp_ms = _median_ms(wl_hash, graphs)

    torch.manual_seed(args.seed)
    model = ResNet50().eval()
    t = time.perf_counter()
    proto = export_onnx(model, torch.zeros(1, 3, 224, 224))
    export_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.onnx"
        onnx.save(proto, str(path))
        size_mb = path.stat().st_size / 1e6
        g = ArchGraph.from_onnx(path)  # warm-up
        resnet_ms = _median_ms(lambda _: ArchGraph.from_onnx(path), range(args.repeats))

    spaces = _direct_vs_export(args.n_spaces, args.seed) if args.n_spaces else []

    result: dict[str, Any] = {
        "nb201_genotype_to_graph_ms": {"median": nb201_ms, "n": len(genotypes), "goal": 5.0},
        "resnet50_file_to_graph_ms": {
            "median": resnet_ms, "repeats": args.repeats, "goal": 1000.0, "file_mb": round(size_mb, 1),
            "nodes": len(g), "params": g.params, "flops": g.flops,
        },
        "nb201_fingerprint_ms": {"median": fp_ms, "n": len(graphs)},
        "resnet50_torch_export_s": export_s,
        "spaces_direct_vs_export": spaces,
        "settings": settings(seed=args.seed, onnx_version=onnx.__version__),
    }
    report(args.out, result, [
        {"what": "NB201 genotype -> ArchGraph", "median_ms": nb201_ms, "goal_ms": 5.0, "n": len(genotypes)},
        {"what": "ResNet-50 .onnx -> ArchGraph", "median_ms": resnet_ms, "goal_ms": 1000.0, "n": args.repeats},
        {"what": "NB201 fingerprint()", "median_ms": fp_ms, "goal_ms": "", "n": len(graphs)},
        {"what": "ResNet-50 torch export", "median_ms": export_s * 1000, "goal_ms": "", "n": 1},
    ])
    if spaces:
        print("\nto_graph (direct ONNX) against the graph of the exported module, medians in ms:")
        print_table(spaces, float_fmt=".3g")
    return result


if __name__ == "__main__":
    main()
