"""Batched per-sample gradients against the plain per-sample loop, for GradSign and LGA.

    python -m benchmarks.proxy_speed --data-dir ../shared/data --n 50 --out proxy_speed.json

On the same NB201 architectures (drawn with ``--seed``) and the same batch of ``--batch`` CIFAR-10
images, each proxy is scored with ``method="loop"`` (one forward and backward per sample: the
reference semantics, BatchNorm on one sample) and ``method="hooks"`` (one batched pass with
BatchNorm as InstanceNorm and per-sample weight gradients from hooks). It reports the median
seconds per architecture of each path after one warm-up, their ratio, and the agreement of the
scores (Spearman's rho and the largest relative difference).

jacov is not here: its reference definition is itself one batched backward pass (the input
Jacobian with BatchNorm on the whole batch), so a per-sample loop would compute something else.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from benchmarks._common import add_common_args, report, settings


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="proxy_speed.json")
    p.add_argument("--n", type=int, default=50, help="NB201 architectures (default 50)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    args = p.parse_args(argv)

    from nas.data import load_batch
    from proxies.base import Proxy
    from proxies.gradsign import GradSign
    from proxies.lga import LGA
    from search_spaces.nb201 import NB201Space, index_to_genotype

    batch = load_batch("cifar10", args.batch, seed=args.seed, data_dir=args.data_dir)
    space = NB201Space()
    rng = np.random.default_rng(args.seed)
    indices = rng.choice(15625, size=args.n + 1, replace=False).tolist()
    pairs: dict[str, tuple[Proxy, Proxy]] = {
        "gradsign": (GradSign(method="loop"), GradSign(method="hooks")),
        "lga": (LGA(method="loop"), LGA(method="hooks")),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"loop": [], "hooks": []} for k in pairs}
    scores: dict[str, dict[str, list[float]]] = {k: {"loop": [], "hooks": []} for k in pairs}
    for j, index in enumerate(tqdm(indices, desc="architectures", unit="arch")):
        torch.manual_seed(args.seed + index)
        model = space.to_module(index_to_genotype(index))
        for name, (loop, hooks) in pairs.items():
            for path, proxy in (("loop", loop), ("hooks", hooks)):
                t = time.perf_counter()
                value = proxy.score(model, batch)
                if j > 0:  # the first architecture is the warm-up
                    times[name][path].append(time.perf_counter() - t)
                    scores[name][path].append(value)

    rows, result = [], {"n": args.n, "proxies": {}}
    for name in pairs:
        loop_s = statistics.median(times[name]["loop"])
        hooks_s = statistics.median(times[name]["hooks"])
        a, b = np.array(scores[name]["loop"]), np.array(scores[name]["hooks"])
        rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))
        rho = float(stats.spearmanr(a, b).statistic)
        result["proxies"][name] = {
            "loop_median_s": loop_s, "hooks_median_s": hooks_s, "speedup": loop_s / hooks_s,
            "spearman_loop_vs_hooks": rho, "max_rel_diff": rel,
        }
        rows.append({"proxy": name, "loop_s": loop_s, "batched_s": hooks_s, "speedup": loop_s / hooks_s,
                     "rho": rho, "max_rel_diff": rel})
    result["settings"] = settings(seed=args.seed, n=args.n, batch=args.batch, data="cifar10",
                                  data_dir=str(args.data_dir) if args.data_dir else None)
    report(args.out, result, rows)
    return result


if __name__ == "__main__":
    main()
