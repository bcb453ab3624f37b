"""Zero-cost proxy quality on NAS-Bench-201 (see ``BENCHMARKS.md`` in the shared folder).

    python -m benchmarks.proxy_correlation --data-dir ../shared/data --sample 1000 --out proxies.json

Settings: NB201 networks as the benchmark defines them (C=16, N=5, 10 classes), PyTorch default
initialization drawn from ``--seed``, BatchNorm in train mode, one batch of ``--batch`` real
CIFAR-10 images (the shared 2,000-image set unless a CIFAR-10 folder is found first), normalized
with the CIFAR-10 mean and std. Architectures are drawn uniformly from all 15,625 with ``--seed``.

Per proxy it reports Spearman's rho and Kendall's tau against ``cifar10_test_acc`` (primary),
``cifar10valid_valid_acc``, ``cifar100_test_acc`` and ``imagenet16_test_acc``; the rank agreement
with NASLib's own per-architecture scores on its 725-architecture CIFAR-10 sample; and the median
seconds per architecture. The label-free rank ensemble is reported like a proxy. Scores are oriented
so that higher is better (a proxy with ``higher_is_better = False`` is negated before correlating);
correlations are never made absolute. It writes a PNG scatter of the best proxy against accuracy.

All proxies of one architecture are computed in one engine call, so they share passes
(:mod:`proxies.passes`); the flops proxy reads the genotype's IR. Per-proxy seconds are each
proxy's share of that call (a shared pass is charged to the first proxy that needs it); the
``all proxies`` row gives the median time of the whole call, network build included.

Scores are appended to ``<out>.scores.jsonl`` as they are computed, so an interrupted run resumes;
a later run with more proxies computes only the missing ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from tqdm import tqdm

from benchmarks._common import add_common_args, report, settings
from benchmarks.tabular import nb201_ground_truth, nb201_zc_naslib

TARGETS = ("cifar10_test_acc", "cifar10valid_valid_acc", "cifar100_test_acc", "imagenet16_test_acc")

_WORKER: dict[str, Any] = {}


def _init_worker(data_dir: str | None, batch_size: int, seed: int) -> None:
    import torch

    from nas.data import load_batch
    from search_spaces.nb201 import NB201Space

    torch.set_num_threads(1)
    _WORKER.update(
        batch=load_batch("cifar10", batch_size, seed=seed, data_dir=data_dir),
        space=NB201Space(),
        seed=seed,
    )


def _score_one(job: tuple[int, list[str]]) -> dict[str, Any]:
    """Scores of the proxies ``names`` for architecture ``index``, with one engine call (shared passes)."""
    from proxies import engine
    from search_spaces.nb201 import index_to_genotype

    index, names = job
    genotype = index_to_genotype(index)
    space = _WORKER["space"]
    t = time.perf_counter()
    model = engine.to_model(genotype, space=space, seed=_WORKER["seed"] + index)
    graph = space.to_graph(genotype) if "flops" in names else None
    build = time.perf_counter() - t
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    plain = [n for n in names if "@" not in n]
    scores = engine.score(model, _WORKER["batch"], plain, timings=timings, errors=errors, graph=graph) if plain else {}
    for n in names:
        if "@" in n:  # "lga@10steps": LGA after that many training steps
            from nas.errors import ProxyError
            from proxies.lga import LGA

            t_one = time.perf_counter()
            try:
                scores[n] = LGA(train_steps=int(n.split("@")[1].removesuffix("steps"))).score(model, _WORKER["batch"])
            except ProxyError as e:
                errors[n] = str(e)
            timings[n] = time.perf_counter() - t_one
    total = time.perf_counter() - t
    return {"index": index, "scores": scores, "seconds": timings, "errors": errors, "build_seconds": build,
            "total_seconds": total}


def _same_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("data_dir", "batch", "seed"))


def _merge(done: dict[int, dict[str, Any]], rec: dict[str, Any]) -> None:
    """Add one cache line to the architecture's record. ``total_seconds`` sums the calls that made
    the record; it is None (untimed) if any line lacks it (lines written before timing was kept)."""
    old = done.setdefault(rec["index"], {"index": rec["index"], "scores": {}, "seconds": {}, "errors": {},
                                         "total_seconds": 0.0})
    for part in ("scores", "seconds", "errors"):
        old[part].update(rec.get(part, {}))
    if old["total_seconds"] is not None and rec.get("total_seconds") is not None:
        old["total_seconds"] += rec["total_seconds"]
    else:
        old["total_seconds"] = None


def score_archs(
    indices: Sequence[int], names: list[str], cache: Path, key: dict[str, Any], workers: int, desc: str
) -> dict[int, dict[str, Any]]:
    """Scores of ``names`` for every index. Lines of ``cache`` written with the same data, batch and
    seed are reused proxy by proxy; only the missing proxies of an architecture are computed (and
    appended as a new line). No names: no records (``--proxies`` none of which NASLib's file has, on
    its sample)."""
    if not names:
        return {}
    done: dict[int, dict[str, Any]] = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            rec = json.loads(line)
            if not _same_settings(rec.get("key", {}), key):
                continue
            _merge(done, rec)

    def missing(i: int) -> list[str]:
        rec = done.get(i, {})
        return [n for n in names if n not in rec.get("scores", {}) and n not in rec.get("errors", {})]

    todo = [(i, missing(i)) for i in dict.fromkeys(indices) if missing(i)]
    init = (key["data_dir"], key["batch"], key["seed"])
    with cache.open("a") as f, tqdm(total=len(todo), desc=desc, unit="arch") as bar:
        def keep(rec: dict[str, Any]) -> None:
            rec["key"] = key
            f.write(json.dumps(rec) + "\n")
            f.flush()
            _merge(done, rec)
            bar.update(1)

        if workers <= 1:
            _init_worker(*init)
            for job in todo:
                keep(_score_one(job))
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=init) as pool:
                for rec in pool.map(_score_one, todo):
                    keep(rec)
    return {i: done[i] for i in indices}


def oriented(name: str, values: np.ndarray) -> np.ndarray:
    from proxies import PROXIES

    return values if PROXIES.resolve(name.split("@")[0]).higher_is_better else -values


def correlations(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Spearman and Kendall over the pairs where both are finite; None where undefined (fewer than
    three pairs, or a constant side), with the reason."""
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return {"spearman": None, "kendall": None, "n": n, "undefined": "fewer than 3 pairs or a constant side"}
    return {
        "spearman": float(stats.spearmanr(x[ok], y[ok]).statistic),
        "kendall": float(stats.kendalltau(x[ok], y[ok]).statistic),
        "n": n,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="proxy_correlation.json")
    p.add_argument("--sample", type=int, default=1000, help="architectures drawn from NB201 (default 1000)")
    p.add_argument("--naslib-sample", type=int, default=725,
                   help="how many of NASLib's 725 CIFAR-10 architectures to compare with (default all)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--proxies", default="all", help="comma-separated proxies or all")
    p.add_argument("--workers", type=int, default=2, help="processes, one torch thread each (default 2)")
    p.add_argument("--plot", type=Path, default=None, help="PNG scatter path (default: next to --out)")
    p.add_argument("--lga-train-steps", type=int, default=10,
                   help="also score LGA after this many SGD steps on the batch, row lga@Nsteps (0: skip; default 10)")
    p.add_argument("--lga-train-sample", type=int, default=200,
                   help="architectures (the first of the sample) that get the trained LGA (default 200)")
    args = p.parse_args(argv)

    from proxies import PROXIES
    from proxies.engine import resolve_proxies
    from proxies.ensemble import DEFAULT_PROXIES, rank_ensemble

    names = [q.name for q in resolve_proxies(args.proxies)]
    trained = f"lga@{args.lga_train_steps}steps" if args.lga_train_steps > 0 and "lga" in names else None
    gt = nb201_ground_truth(args.data_dir)
    rng = np.random.default_rng(args.seed)
    sample = sorted(rng.choice(len(gt), size=args.sample, replace=False).tolist())
    zc = nb201_zc_naslib("cifar10", args.data_dir)
    naslib_idx = [int(i) for i in zc["index"][: args.naslib_sample]]

    data_dir = str(args.data_dir) if args.data_dir else None
    key = {"data_dir": data_dir, "batch": args.batch, "seed": args.seed}
    cache = Path(str(args.out) + ".scores.jsonl")
    t0 = time.perf_counter()
    recs = score_archs(sample, names, cache, key, args.workers, "NB201 sample")
    if trained:
        # LGA after its training protocol, as a row of its own (see proxies.lga), on a subset: it trains
        subset = sorted(np.random.default_rng(args.seed).permutation(sample)[: args.lga_train_sample].tolist())
        recs.update(score_archs(subset, [trained], cache, key, args.workers, trained))
        names.insert(names.index("lga") + 1, trained)
    # on NASLib's sample only the proxies NASLib has are compared, so only those are computed
    naslib_names = [n for n in names if n in zc.columns]
    naslib_recs = score_archs(naslib_idx, naslib_names, cache, key, args.workers, "NASLib sample")

    table: list[dict[str, Any]] = []
    result: dict[str, Any] = {"proxies": {}, "sample": len(sample)}
    # A proxy that cannot score an architecture (ProxyError: e.g. jacov of a cell whose output does
    # not depend on the input) has no value there; correlations use the architectures it scored
    # and report how many that is (n).
    def column(table: dict[int, dict[str, Any]], idx: list[int], n: str) -> np.ndarray:
        return np.array([table[i]["scores"].get(n, np.nan) for i in idx], dtype=float)

    per_proxy = {n: column(recs, sample, n) for n in names}
    failures = {n: sum(n in recs[i].get("errors", {}) for i in sample) for n in names}
    truth = {t: np.asarray(gt[t], dtype=float)[sample] for t in TARGETS}
    ens_members = [m for m in DEFAULT_PROXIES if m in per_proxy]
    if ens_members:
        # the ensemble ranks the architectures every member scored; the others get NaN (no score)
        scored = np.all([np.isfinite(per_proxy[m]) for m in ens_members], axis=0)
        ens = np.full(len(sample), np.nan)
        ens[scored] = rank_ensemble({m: per_proxy[m][scored] for m in ens_members}, ens_members)
        per_proxy["ensemble"] = ens
    for n, values in per_proxy.items():
        x = values if n == "ensemble" else oriented(n, values)
        entry: dict[str, Any] = {t: correlations(x, truth[t]) for t in TARGETS}
        if n != "ensemble":
            timed = [recs[i]["seconds"][n] for i in sample
                     if recs[i]["total_seconds"] is not None and n in recs[i]["seconds"]]
            entry["median_seconds"] = statistics.median(timed) if timed else None
            entry["failed"] = failures[n]
            if n in zc.columns:
                ours = column(naslib_recs, naslib_idx, n)
                ref = np.asarray(zc[n], dtype=float)[: len(naslib_idx)]
                entry["naslib_agreement"] = correlations(ours, ref)
                naslib_acc = np.asarray(gt["cifar10_test_acc"])[naslib_idx]
                naslib_rho = correlations(oriented(n, ref), naslib_acc)
                entry["naslib_own_rho_on_its_sample"] = naslib_rho["spearman"]
                # ours on the same architectures: the comparison that the sample does not blur
                entry["our_rho_on_naslib_sample"] = correlations(oriented(n, ours), naslib_acc)["spearman"]
        else:
            entry["members"] = ens_members
        result["proxies"][n] = entry
        table.append({
            "proxy": n,
            "dir": "" if n == "ensemble" else ("+" if PROXIES.resolve(n.split("@")[0]).higher_is_better else "-"),
            "rho_c10": entry["cifar10_test_acc"]["spearman"],
            "tau_c10": entry["cifar10_test_acc"]["kendall"],
            "rho_c10v": entry["cifar10valid_valid_acc"]["spearman"],
            "rho_c100": entry["cifar100_test_acc"]["spearman"],
            "rho_im16": entry["imagenet16_test_acc"]["spearman"],
            "naslib_rho": entry.get("naslib_own_rho_on_its_sample", ""),
            "ours_there": entry.get("our_rho_on_naslib_sample", ""),
            "agree": entry.get("naslib_agreement", {}).get("spearman", ""),
            "sec": entry.get("median_seconds", ""),
            "failed": entry.get("failed", ""),
        })
    totals = [recs[i]["total_seconds"] for i in sample if recs[i]["total_seconds"] is not None]
    result["median_seconds_all_proxies"] = statistics.median(totals) if totals else None
    result["timed_architectures"] = len(totals)
    table.append({"proxy": "all proxies", "dir": "", "rho_c10": "", "tau_c10": "", "rho_c10v": "", "rho_c100": "",
                  "rho_im16": "", "naslib_rho": "", "ours_there": "", "agree": "",
                  "sec": result["median_seconds_all_proxies"] or "", "failed": ""})
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["settings"] = settings(
        seed=args.seed, sample=args.sample, batch=args.batch, data="cifar10", data_dir=data_dir,
        workers=args.workers, torch_threads_per_worker=1, naslib_sample=len(naslib_idx),
    )
    best = max((n for n in per_proxy), key=lambda n: result["proxies"][n]["cifar10_test_acc"]["spearman"] or -2.0)
    plot = args.plot or Path(args.out).with_suffix(".png")
    x_best = per_proxy[best] if best == "ensemble" else oriented(best, per_proxy[best])
    ok = np.isfinite(x_best)
    _scatter(x_best[ok], truth["cifar10_test_acc"][ok], best, plot)
    result["plot"] = str(plot)

    report(args.out, result, table)
    print(f"wrote {plot}")
    return result


def _scatter(x: np.ndarray, y: np.ndarray, name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rho = stats.spearmanr(x, y).statistic
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.scatter(x, y, s=6, alpha=0.5)
    ax.set_xlabel(f"{name} score (higher is better)")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_title(f"NAS-Bench-201, n={len(x)}, Spearman {rho:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
