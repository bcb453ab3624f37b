"""Vectorized proxies against their plain loops, and the engine's shared passes against separate ones.

    python -m benchmarks.proxy_speed --data-dir ../shared/data --n 50 --engine-n 20 --out proxy_speed.json

On the same NB201 architectures (drawn with ``--seed``) and the same batch of ``--batch`` CIFAR-10
images, each pair below is timed on the same model; it reports the median seconds per architecture
of each path after one warm-up architecture, their ratio, and the agreement of the scores
(Spearman's rho over the architectures and the largest relative difference).

* GradSign and LGA: ``method="loop"`` (one forward and backward per sample: the reference
  semantics, BatchNorm on one sample) against ``method="hooks"`` (one batched pass with BatchNorm
  as InstanceNorm and per-sample weight gradients from hooks).
* jacov: its input Jacobian ``J_b = d(sum_b' sum_c f_b'c)/dx_b`` (train-mode BatchNorm over the
  batch, as NASLib defines it) built by a loop over the output samples -- one backward pass of
  ``sum_c f_b'c`` per ``b'``, summed -- against the one batched backward pass of the whole sum that
  :mod:`proxies.jacov` uses. Both give the same ``J`` by linearity; the loop is the plain
  per-output reference.
* engine: all proxies on one model with ``proxies.engine.score`` sharing passes
  (:mod:`proxies.passes`) against each proxy's own ``score`` (``shared=False``), on the first
  ``--engine-n`` architectures.
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
from nas.data import Batch
from nas.errors import ProxyError


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="proxy_speed.json")
    p.add_argument("--n", type=int, default=50, help="NB201 architectures (default 50)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--engine-n", type=int, default=20, help="architectures for the engine comparison (default 20)")
    p.add_argument("--parts", default="gradsign,lga,jacov,engine",
                   help="comparisons to run, comma-separated (default: gradsign,lga,jacov,engine)")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = sorted(set(parts) - {"gradsign", "lga", "jacov", "engine"})
    if unknown or not parts:
        p.error(f"unknown --parts {unknown or parts}; valid: gradsign, lga, jacov, engine")

    from nas.data import load_batch
    from proxies import engine
    from proxies.base import Proxy
    from proxies.gradsign import GradSign
    from proxies.jacov import JacobianCovariance
    from proxies.lga import LGA
    from search_spaces.nb201 import NB201Space, index_to_genotype

    batch = load_batch("cifar10", args.batch, seed=args.seed, data_dir=args.data_dir)
    space = NB201Space()
    rng = np.random.default_rng(args.seed)
    indices = rng.choice(15625, size=args.n + 1, replace=False).tolist()
    pairs: dict[str, tuple[Proxy, Proxy]] = {
        name: pair
        for name, pair in (
            ("gradsign", (GradSign(method="loop"), GradSign(method="hooks"))),
            ("lga", (LGA(method="loop"), LGA(method="hooks"))),
            ("jacov", (JacovLoop(), JacobianCovariance())),
        )
        if name in parts
    }
    with_engine = "engine" in parts
    times: dict[str, dict[str, list[float]]] = {k: {"loop": [], "hooks": []} for k in [*pairs, "engine"]}
    scores: dict[str, dict[str, list[float]]] = {k: {"loop": [], "hooks": []} for k in [*pairs, "engine"]}
    engine_scores: dict[str, dict[str, list[float]]] = {"loop": {}, "hooks": {}}  # per proxy, engine paths
    for j, index in enumerate(tqdm(indices, desc="architectures", unit="arch")):
        genotype = index_to_genotype(index)
        torch.manual_seed(args.seed + index)
        model = space.to_module(genotype)
        for name, (loop, hooks) in pairs.items():
            for path, proxy in (("loop", loop), ("hooks", hooks)):
                t = time.perf_counter()
                try:
                    value = proxy.score(model, batch)
                except ProxyError:  # undefined for this network (documented per proxy): not timed
                    continue
                if j > 0:  # the first architecture is the warm-up
                    times[name][path].append(time.perf_counter() - t)
                    scores[name][path].append(value)
        if not with_engine or j > args.engine_n:
            continue
        for path, shared in (("loop", False), ("hooks", True)):
            errors: dict[str, str] = {}
            t = time.perf_counter()
            out = engine.score(model, batch, "all", errors=errors, shared=shared,
                               graph=space.to_graph(genotype) if shared else None)
            if j > 0:
                times["engine"][path].append(time.perf_counter() - t)
                for k, v in out.items():
                    engine_scores[path].setdefault(k, []).append(v)
                for k in errors:
                    engine_scores[path].setdefault(k, []).append(float("nan"))

    rows, result = [], {"n": args.n, "engine_n": args.engine_n, "proxies": {}}
    # the engine's agreement: the worst proxy over all proxies' own-vs-shared scores
    for path in ("loop", "hooks"):
        scores["engine"][path] = []
    worst_rho, worst_rel = 1.0, 0.0
    for k, own in engine_scores["loop"].items():
        a, b = np.array(own), np.array(engine_scores["hooks"][k])
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            raise AssertionError(f"engine: {k} failed on different architectures with and without sharing")
        ok = ~np.isnan(a)
        worst_rel = max(worst_rel, float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(a[ok]), 1e-12))))
        if ok.sum() > 2 and np.ptp(a[ok]) > 0:
            worst_rho = min(worst_rho, float(stats.spearmanr(a[ok], b[ok]).statistic))
    for name in [*pairs, *(["engine"] if with_engine else [])]:
        loop_s = statistics.median(times[name]["loop"])
        hooks_s = statistics.median(times[name]["hooks"])
        if name == "engine":
            rho, rel = worst_rho, worst_rel
        else:
            a, b = np.array(scores[name]["loop"]), np.array(scores[name]["hooks"])
            rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))
            rho = float(stats.spearmanr(a, b).statistic)
        result["proxies"][name] = {
            "loop_median_s": loop_s, "hooks_median_s": hooks_s, "speedup": loop_s / hooks_s,
            "spearman_loop_vs_hooks": rho, "max_rel_diff": rel, "timed": len(times[name]["hooks"]),
        }
        rows.append({"proxy": name, "loop_s": loop_s, "batched_s": hooks_s, "speedup": loop_s / hooks_s,
                     "rho": rho, "max_rel_diff": rel})
    result["settings"] = settings(seed=args.seed, n=args.n, batch=args.batch, data="cifar10", parts=parts,
                                  data_dir=str(args.data_dir) if args.data_dir else None)
    report(args.out, result, rows)
    return result


class JacovLoop:
    """jacov with its Jacobian summed from one backward pass per output sample (the plain loop)."""

    name = "jacov"
    higher_is_better = True

    def score(self, model: torch.nn.Module, batch: Batch) -> float:
        from proxies.base import finite, working_copy
        from proxies.jacov import JacobianCovariance

        net = working_copy(model)
        x = batch.images.detach().clone().requires_grad_(True)  # (B, 3, H, W)
        out = net(x)  # (B, C)
        jac = torch.zeros_like(x)
        for b in range(out.shape[0]):
            (g,) = torch.autograd.grad(out[b].sum(), x, retain_graph=b < out.shape[0] - 1, allow_unused=True)
            if g is not None:
                jac += g
        value = JacobianCovariance()._from_grads(model, jac.reshape(jac.shape[0], -1))
        return finite(self.name, model, value)


if __name__ == "__main__":
    main()
