"""NAS-Bench-201 exactness: our space against the benchmark's own ground truth.

    python -m benchmarks.nb201_exactness --data-dir ../shared/data --out r.json

Checks, over all 15,625 architectures of ``nb201/nb201_ground_truth.csv``:

* the official index <-> arch-string mapping;
* the parameter count of the graph built by ``NB201Space.to_graph`` against ``params_m_cifar10``
  (to within 1e-6 M). The table gives 150 cells the count of another member of their ``unique_str``
  class; for those, our count must equal the count of some cell in the same class;
* that our isomorphism-canonical form partitions the space into exactly the ``unique_str`` classes;
* FLOPs against NASLib's ``flops`` column on its 725-architecture CIFAR-10 sample (a different
  counting convention, so this is reported, not required);
* for ``--export-check`` random architectures, that the directly built graph and the graph of the
  exported PyTorch module have the same fingerprint.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from scipy import stats
from tqdm import tqdm

from benchmarks._common import add_common_args, report, settings
from benchmarks.tabular import nb201_ground_truth, nb201_zc_naslib


def _graph_counts(arch_strings: Sequence[str]) -> list[tuple[int, int]]:
    from search_spaces.nb201 import NB201Space

    space = NB201Space()
    out = []
    for a in arch_strings:
        g = space.to_graph(a)
        out.append((g.params, g.flops))
    return out


def count_all(arch_strings: Sequence[str], workers: int) -> list[tuple[int, int]]:
    """(params, flops) of ``to_graph`` for every arch string, in order, with a progress bar."""
    chunks = [list(arch_strings[i : i + 250]) for i in range(0, len(arch_strings), 250)]
    results: list[tuple[int, int]] = []
    bar = tqdm(total=len(arch_strings), desc="building graphs", unit="arch")
    if workers <= 1:
        for c in chunks:
            results += _graph_counts(c)
            bar.update(len(c))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for c, r in zip(chunks, pool.map(_graph_counts, chunks), strict=True):
                results += r
                bar.update(len(c))
    bar.close()
    return results


def export_check(n: int, seed: int) -> dict[str, Any]:
    """Fingerprint of ``to_graph`` against that of the exported ``to_module``, for ``n`` random archs."""
    import torch

    from nas.ir import ArchGraph
    from search_spaces.nb201 import NB201Space

    space = NB201Space()
    rng = np.random.default_rng(seed)
    equal, differ = 0, []
    x = torch.zeros(space.example_input_shape(1))
    for _ in tqdm(range(n), desc="direct vs exported", unit="arch"):
        g = space.sample(rng)
        direct = space.to_graph(g)
        exported = ArchGraph.from_module(space.to_module(g), x)
        if direct.fingerprint() == exported.fingerprint() and direct.params == exported.params:
            equal += 1
        else:
            differ.append(space.format(g))
    return {"n": n, "equal": equal, "differ": differ[:20]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="nb201_exactness.json")
    p.add_argument("--workers", type=int, default=2, help="processes building graphs (default 2)")
    p.add_argument("--export-check", type=int, default=200, help="random archs for the direct-vs-export check")
    args = p.parse_args(argv)

    from search_spaces.nb201 import canonical_form, format_arch, index_to_genotype

    t0 = time.perf_counter()
    gt = nb201_ground_truth(args.data_dir)
    n = len(gt)
    arch = [str(a) for a in gt["arch_str"]]
    index_ok = sum(format_arch(index_to_genotype(int(i))) == a for i, a in zip(gt["index"], arch, strict=True))

    counts = count_all(arch, args.workers)
    ours = np.array([c[0] for c in counts], dtype=np.int64)
    flops = np.array([c[1] for c in counts], dtype=np.int64)
    table = np.rint(np.asarray(gt["params_m_cifar10"], dtype=float) * 1e6).astype(np.int64)
    direct = np.abs(ours - table) <= 1  # 1e-6 M
    unique = [str(u) for u in gt["unique_str"]]
    members: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(unique):
        members[u].append(i)
    via_class = 0
    unexplained: list[str] = []
    for k in np.flatnonzero(~direct).tolist():
        if any(abs(int(ours[j]) - int(table[k])) <= 1 for j in members[unique[k]]):
            via_class += 1
        else:
            unexplained.append(arch[k])

    canon = [canonical_form(a) for a in arch]
    ours_classes: dict[str, set[int]] = defaultdict(set)
    for i, c in enumerate(canon):
        ours_classes[c].add(i)
    partition_ours = {frozenset(v) for v in ours_classes.values()}
    partition_table = {frozenset(v) for v in members.values()}

    zc = nb201_zc_naslib("cifar10", args.data_dir)
    idx = np.asarray(zc["index"], dtype=np.int64)
    ref = np.asarray(zc["flops"], dtype=float)
    mine = flops[idx] / 1e6
    rel = np.abs(mine - ref) / ref
    rho = float(stats.spearmanr(mine, ref).statistic)

    result: dict[str, Any] = {
        "n_archs": n,
        "index_mapping_match": int(index_ok),
        "params_match": int(direct.sum()),
        "params_match_via_class": via_class,
        "params_unexplained": len(unexplained),
        "params_unexplained_archs": unexplained[:20],
        "canonical_classes": len(partition_ours),
        "table_classes": len(partition_table),
        "class_membership_match": partition_ours == partition_table,
        "canonical_string_equals_unique_str": sum(c == u for c, u in zip(canon, unique, strict=True)),
        "flops_vs_naslib": {
            "n": len(idx),
            "exact_share": float(np.mean(rel < 1e-6)),
            "within_1pct_share": float(np.mean(rel < 0.01)),
            "within_5pct_share": float(np.mean(rel < 0.05)),
            "median_rel_diff": float(np.median(rel)),
            "max_rel_diff": float(rel.max()),
            "spearman": rho,
            "note": "ours counts multiply-accumulates of Conv/Gemm and pooling windows only (nas.ir.ops); "
            "NASLib also counts per-element work of BatchNorm/ReLU, and computes a pooling applied twice "
            "to one tensor twice, where the graph (like the ONNX exporter) computes it once",
        },
    }
    if args.export_check:
        result["fingerprint_direct_vs_export"] = export_check(args.export_check, args.seed)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["settings"] = settings(data_dir=str(args.data_dir), workers=args.workers, seed=args.seed)

    rows = [
        {"check": "index <-> arch string", "value": f"{index_ok}/{n}"},
        {"check": "params == table (1e-6 M)", "value": f"{int(direct.sum())}/{n}"},
        {"check": "params == a class member's", "value": f"{via_class}/{n - int(direct.sum())}"},
        {"check": "params unexplained", "value": str(len(unexplained))},
        {"check": "canonical classes (table)", "value": f"{len(partition_ours)} ({len(partition_table)})"},
        {"check": "class membership equal", "value": str(partition_ours == partition_table)},
        {"check": "FLOPs within 1% of NASLib", "value": f"{result['flops_vs_naslib']['within_1pct_share']:.3f}"},
        {"check": "FLOPs within 5% of NASLib", "value": f"{result['flops_vs_naslib']['within_5pct_share']:.3f}"},
        {"check": "FLOPs Spearman vs NASLib", "value": f"{rho:.4f}"},
    ]
    if args.export_check:
        fx = result["fingerprint_direct_vs_export"]
        rows.append({"check": "fingerprint direct == export", "value": f"{fx['equal']}/{fx['n']}"})
    report(args.out, result, rows)
    return result


if __name__ == "__main__":
    main()
