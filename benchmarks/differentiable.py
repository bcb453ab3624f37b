"""Differentiable search (DARTS, GDAS, ProxylessNAS) judged by NAS-Bench-201's truth, the latency loss
on the MobileNetV3 space, and the memory of a supernet step (see ``BENCHMARKS.md`` in the shared folder).

    python -m benchmarks.differentiable --data-dir ../shared/data --seeds 3 --out differentiable.json

Experiments (``--experiments``, comma-separated):

* ``nb201`` -- each of ``--methods`` searches the NB201 supernet (``--nb201-supernet``, default the
  benchmark's C=16, N=5) on the shared CIFAR-10 images (``--images``, default all 2,000: half for the
  weights, half for the architecture) for ``--epochs`` epochs (one number, or ``method=E,...``), per
  seed, the first ``--warmup`` of them training the weights alone (one value or ``method=W,...``; a
  whole number of epochs or a fraction in (0, 1); default: each method's own, a quarter of the epochs
  for ProxylessNAS as in its paper, none for DARTS and GDAS; see :mod:`nas.search.differentiable.search`).
  Reported: the **true CIFAR-10 test accuracy** of the derived cell (``cifar10_test_acc`` of the
  table, read after the search), mean +- std over seeds, the cell's count of parameter-free ops
  (``skip_connect``, ``none``, ``avg_pool_3x3``) and of ``skip_connect`` (DARTS's collapse), and the
  run's wall and CPU seconds. ``darts-pt`` is not another training run: it re-derives each DARTS
  supernet (same weights and logits) with DARTS-PT's perturbation-based selection.
* ``mbv3`` -- ProxylessNAS on the MobileNetV3 supernet (``--mbv3-supernet``) with each of
  ``--lambdas`` (lambda per ms of expected latency); reported: the derived network's latency predicted
  by the lookup table and measured with onnxruntime (batch 1, ``--lut-threads`` threads, 10 warm-up,
  median of 30, the least of 5 such medians in rounds interleaved over the networks), their relative
  error, and whether it is within 10%. The table's entries and its calibration on ``--lut-calibration``
  networks spanning the supernet's latency range are measured the same way (see
  :mod:`nas.search.differentiable.latency`): on a shared machine the load comes and goes over seconds
  and only slows a run, so each figure is reduced to the unloaded machine's. The check is done at the
  end, for all derived networks together; the check each run made when it finished is kept in the
  JSON (``run_check``).
* ``memory`` -- the supernet training steps (weights and architecture) of DARTS against ProxylessNAS
  and against a single path drawn at random, on the same NB201 supernet and batch, side by side: the
  bytes of the activations autograd saves for backward (the memory that grows with the number of
  paths; mean over ``--memory-steps`` steps, since the sampled methods run different ops each step),
  the process's peak memory -- the peak resident set size of ``--memory-steps`` architecture + weight
  steps above the resident size before them, in a fresh process per method that holds only that
  supernet, batch and optimizers (Linux: ``/proc/self`` high-water mark, reset after the setup) --
  and the median seconds of a weight plus an architecture step over ``--memory-steps`` after one warm-up.

Each run has its own folder under ``--workdir``; a finished run (``result.json``) is read back, an
interrupted one resumes from its last epoch, so the benchmark is resumable per run. Writes the JSON
to ``--out`` and a PNG beside it.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import add_common_args, report, settings

PARAM_FREE = ("skip_connect", "none", "avg_pool_3x3")


def _per_method(text: str, methods: list[str], cast: Callable[[str], Any]) -> dict[str, Any]:
    """One value for every method, or ``method=V,...`` (only the methods named)."""
    if "=" not in text:
        return {m: cast(text) for m in methods}
    out = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        out[k.strip()] = cast(v)
    return out


def _epochs(text: str, methods: list[str]) -> dict[str, int]:
    out = _per_method(text, methods, int)
    missing = [m for m in methods if m not in out and m != "darts-pt"]
    if missing:
        raise SystemExit(f"--epochs gives no epochs for {missing}")
    return out


def _warmups(text: str, methods: list[str]) -> dict[str, float | None]:
    """``--warmup``: empty (each method's default), one value for all, or ``method=W,...``."""
    out: dict[str, float | None] = dict.fromkeys(methods)
    if text.strip():
        out.update(_per_method(text, methods, float))
    return out


def _kv(text: str) -> dict[str, Any]:
    from search_spaces import _value

    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, _, v = part.partition("=")
        out[k.strip()] = _value(v.strip())
    return out


def _run(config: Any, path: Path) -> tuple[dict[str, Any], float, float]:
    """(result.json, wall seconds, CPU seconds) of a run; resumes or reads back a finished one."""
    from nas.search.differentiable.search import run_differentiable_search

    if (path / "result.json").is_file():
        res = json.loads((path / "result.json").read_text())
        times = res.get("benchmark_seconds", {})
        return res, times.get("wall", float("nan")), times.get("cpu", float("nan"))
    t, c = time.perf_counter(), time.process_time()
    resume = (path / "config.json").is_file()
    out = run_differentiable_search(None if resume else config, path, resume=resume, progress=True)
    assert out is not None
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    result = out.result
    result["benchmark_seconds"] = {"wall": round(wall, 1), "cpu": round(cpu, 1)}
    (path / "result.json").write_text(json.dumps(result, indent=1))
    return result, wall, cpu


def _pt_from(darts_dir: Path, path: Path, pt_tune_steps: int) -> tuple[dict[str, Any], float, float]:
    """DARTS-PT selection on a finished DARTS run's supernet: copy its folder, change the selection,
    resume (no epoch is left, so only the derivation runs)."""
    if not (path / "result.json").is_file():
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        for f in ("checkpoint.pt", "candidates.jsonl"):
            shutil.copy(darts_dir / f, path / f)
        cfg = json.loads((darts_dir / "config.json").read_text())
        cfg.update(selection="darts-pt", pt_tune_steps=pt_tune_steps)
        (path / "config.json").write_text(json.dumps(cfg, indent=1))
    return _run(None, path)


def _saved_bytes_step(fn: Any) -> int:
    """Bytes of the distinct tensors autograd saves for backward during ``fn()``."""
    import torch

    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            key = t.untyped_storage().data_ptr()
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except RuntimeError:  # a tensor without storage
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def _single_path_step(net: Any, arch: Any, gen: Any, opt: Any, x: Any, y: Any) -> None:
    """A step of one path drawn from ``softmax(alpha)`` (a fresh draw per call): what training the
    derived network costs, on the same mix of ops the methods run."""
    import torch.nn.functional as F

    from nas.search.differentiable.methods import sample_plan

    opt.zero_grad()
    F.cross_entropy(net(x, sample_plan(arch, gen)), y).backward()
    opt.step()


def _steps(name: str, supernet: dict[str, Any], batch: int, seed: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The weight step and the architecture step of ``name`` (or of a single path) on a fixed batch."""
    import torch

    from nas.search.differentiable.methods import ArchState, Method
    from nas.search.differentiable.supernet import build_supernet

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    torch.manual_seed(seed)
    net = build_supernet("nb201", **supernet)
    arch = ArchState(net, torch.Generator().manual_seed(seed))
    w_opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    a_opt = torch.optim.Adam(arch.parameters(), lr=3e-4)
    if name == "single path":  # the floor both methods are held to
        step = functools.partial(_single_path_step, net, arch, torch.Generator().manual_seed(seed), w_opt, x, y)
        return step, step
    m = Method(name, net, arch, torch.Generator().manual_seed(seed), lambda a: torch.zeros(()))
    return functools.partial(m.weight_step, w_opt, x, y), functools.partial(m.arch_step, a_opt, x, y, x, y, 0.01, 3e-4)


def _proc_kib(field: str) -> int:
    import re

    text = Path("/proc/self/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if m is None:
        raise RuntimeError(f"no {field} in /proc/self/status")
    return int(m.group(1))


def _peak_rss_mb(job: tuple[str, dict[str, Any], int, int, int]) -> float:
    """In a fresh process: the peak resident memory of ``steps`` architecture + weight steps above the
    resident memory before them (MB).

    Linux: after the setup (supernet, batch, optimizers), freed heap is returned to the system
    (``malloc_trim``) and the process's high-water mark is reset to its current resident size
    (``/proc/self/clear_refs``, value 5); ``VmHWM`` after the steps minus ``VmRSS`` before them is
    then the steps' own peak, whatever the imports and the setup peaked at.
    """
    import ctypes
    import gc

    import torch

    torch.set_num_threads(1)
    name, supernet, batch, steps, seed = job
    w_step, a_step = _steps(name, supernet, batch, seed)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _proc_kib("VmRSS")
    for _ in range(steps):
        a_step()
        w_step()
    return (_proc_kib("VmHWM") - before) / 1024


def memory_experiment(supernet: dict[str, Any], batch: int, steps: int, seed: int) -> list[dict[str, Any]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    rows: list[dict[str, float | str]] = []
    names = ("darts", "proxyless", "single path")
    for name in names:
        w_step, a_step = _steps(name, supernet, batch, seed)
        # mean over steps: the sampled methods run different ops at each step
        w_bytes = statistics.mean(_saved_bytes_step(w_step) for _ in range(steps))
        a_bytes = statistics.mean(_saved_bytes_step(a_step) for _ in range(steps))
        times = []
        for _ in range(steps + 1):
            t = time.perf_counter()
            a_step()
            w_step()
            times.append(time.perf_counter() - t)
        rows.append({"step": name, "weight_step_saved_mb": w_bytes / 2**20, "arch_step_saved_mb": a_bytes / 2**20,
                     "seconds_per_step": statistics.median(times[1:])})
    # the process's peak memory, each method in a process of its own (a peak never comes down)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        peaks = [pool.submit(_peak_rss_mb, (n, supernet, batch, steps, seed)).result() for n in names]
    for r, peak in zip(rows, peaks, strict=True):
        r["peak_rss_increase_mb"] = peak
    base_mb, base_s = float(rows[-1]["weight_step_saved_mb"]), float(rows[-1]["seconds_per_step"])
    base_peak = float(rows[-1]["peak_rss_increase_mb"])
    for r in rows:
        r["weight_step_vs_single_path"] = float(r["weight_step_saved_mb"]) / max(base_mb, 1e-9)
        r["arch_step_vs_single_path"] = float(r["arch_step_saved_mb"]) / max(base_mb, 1e-9)
        r["peak_vs_single_path"] = float(r["peak_rss_increase_mb"]) / max(base_peak, 1e-9)
        r["time_vs_single_path"] = float(r["seconds_per_step"]) / base_s
    return rows


def _latency_check(runs: list[dict[str, Any]], sup: dict[str, Any], args: argparse.Namespace) -> None:
    """Predicted (calibrated table) against measured latency of every derived network, in one go."""
    import torch

    from nas.search.differentiable.latency import LatencyLUT, LatencyModel, measure_modules
    from nas.search.differentiable.supernet import build_supernet

    net = build_supernet("mbv3", **sup)
    lut = LatencyLUT(args.lut, threads=args.lut_threads)
    model = LatencyModel.from_lut(net, lut, calibrate=args.lut_calibration)
    modules = []
    for r in runs:
        genotype = net.genotype(r["ops"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            modules.append((net.space.to_module(genotype), tuple(net.space.example_input_shape(1, genotype))))
    all_measured = measure_modules(modules, threads=args.lut_threads, rounds=5)
    for r, measured in zip(runs, all_measured, strict=True):
        predicted = model.predict(r["ops"])
        r.update(predicted_ms=predicted, summed_ms=model.predict(r["ops"], calibrated=False), factor=model.factor,
                 offset_ms=model.offset_ms,
                 measured_ms=measured, relative_error=(predicted - measured) / measured,
                 within_10pct=abs(predicted - measured) <= 0.10 * measured)


def _png(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("nb201", "mbv3") if k in result["experiments"]]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=120, squeeze=False)
    for ax, key in zip(axes[0], panels, strict=True):
        exp = result["experiments"][key]
        if key == "nb201":
            names = list(exp["methods"])
            for i, mname in enumerate(names):
                accs = exp["methods"][mname]["test_acc"]
                ax.scatter([i] * len(accs), accs, color="C0", s=14)
                ax.bar(i, float(np.mean(accs)), color="C0", alpha=0.3)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=20)
            ax.axhline(result.get("optimum_test_acc", 94.37), color="C3", ls="--", lw=1, label="NB201 optimum")
            ax.set_ylabel("true CIFAR-10 test accuracy of the derived cell (%)")
            ax.legend(fontsize=7)
        else:
            lam = [r["lambda"] for r in exp["runs"]]
            ax.plot(lam, [r["measured_ms"] for r in exp["runs"]], "o", label="measured (onnxruntime)")
            ax.plot(lam, [r["predicted_ms"] for r in exp["runs"]], "x", label="lookup table")
            ax.set_xscale("symlog", linthresh=min([v for v in lam if v > 0] or [1e-3]))
            ax.set_xlabel("lambda (per ms)")
            ax.set_ylabel("latency of the derived network (ms)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="differentiable.json")
    p.add_argument("--experiments", default="nb201,mbv3,memory", help="nb201, mbv3, memory (comma-separated)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (default 3)")
    p.add_argument("--methods", default="darts,darts2,gdas,proxyless,darts-pt",
                   help="nb201 methods; darts-pt re-derives the darts runs (default all)")
    p.add_argument("--epochs", default="darts=12,darts2=5,gdas=50,proxyless=40",
                   help="epochs: a number or method=E,... (default: about 30 CPU-minutes per run at C=16, N=5)")
    p.add_argument("--warmup", default="",
                   help="weights-only warm-up epochs (or fraction in (0, 1)): one value or method=W,... "
                        "(default: each method's own, 0.25 for proxyless, 0 otherwise)")
    p.add_argument("--images", type=int, default=0, help="CIFAR-10 images used (default 0: all 2,000)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--nb201-supernet", default="c=16,n=5", help="NB201 supernet arguments (default c=16,n=5)")
    p.add_argument("--pt-tune-steps", type=int, default=5, help="darts-pt weight steps per decision (default 5)")
    p.add_argument("--lambdas", default="0,0.01,0.1", help="mbv3 latency weights per ms (default 0,0.01,0.1)")
    p.add_argument("--mbv3-epochs", type=int, default=10, help="mbv3 epochs (default 10)")
    p.add_argument("--mbv3-supernet", default="width=1.0", help="MobileNetV3 supernet arguments (default width=1.0)")
    p.add_argument("--lut", type=Path, default=None, help="latency table (default: the machine's cache file)")
    p.add_argument("--lut-threads", type=int, default=1, help="onnxruntime threads for the table and the check")
    p.add_argument("--lut-calibration", type=int, default=9, help="networks that calibrate the table (default 9)")
    p.add_argument("--memory-supernet", default="c=16,n=5", help="supernet of the memory experiment")
    p.add_argument("--memory-steps", type=int, default=3, help="timed steps per method (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--workdir", type=Path, default=None, help="run folders (default: OUT.runs)")
    args = p.parse_args(argv)

    import torch

    from benchmarks.tabular import nb201_ground_truth
    from nas.search.differentiable.search import DiffSearchConfig
    from search_spaces.nb201 import parse_arch

    torch.set_num_threads(args.threads)
    experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    epochs = _epochs(args.epochs, methods)
    warmups = _warmups(args.warmup, [*methods, "proxyless"])
    data_dir = str(args.data_dir) if args.data_dir else None
    work = args.workdir or Path(str(args.out) + ".runs")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"experiments": {}}
    rows: list[dict[str, Any]] = []

    if "nb201" in experiments:
        gt = nb201_ground_truth(args.data_dir)
        result["optimum_test_acc"] = float(np.max(np.asarray(gt["cifar10_test_acc"], dtype=float)))
        sup = _kv(args.nb201_supernet)
        exp: dict[str, Any] = {"supernet": sup, "epochs": epochs, "warmup_epochs": {}, "methods": {}}
        order = [m for m in methods if m != "darts-pt"] + (["darts-pt"] if "darts-pt" in methods else [])
        for mname in order:
            entry: dict[str, Any] = {"test_acc": [], "genotypes": [], "param_free_ops": [], "skip_connect": [],
                                     "wall_s": [], "cpu_s": []}
            for seed in range(args.seeds):
                if mname == "darts-pt":
                    darts_dir = work / f"nb201-darts-{seed}"
                    if not (darts_dir / "checkpoint.pt").is_file():
                        raise SystemExit("darts-pt re-derives the darts runs: include darts in --methods")
                    res, wall, cpu = _pt_from(darts_dir, work / f"nb201-darts-pt-{seed}", args.pt_tune_steps)
                else:
                    cfg = DiffSearchConfig(method=mname, space="nb201", epochs=epochs[mname], seed=seed,
                                           data="cifar10", data_dir=data_dir, images=args.images, batch=args.batch,
                                           warmup_epochs=warmups[mname], supernet=sup, threads=args.threads)
                    exp["warmup_epochs"][mname] = cfg.warmup
                    res, wall, cpu = _run(cfg, work / f"nb201-{mname}-{seed}")
                g = parse_arch(res["best"]["genotype"])
                acc = res["best"].get("cifar10_test_acc")
                if acc is None:
                    acc = float(gt["cifar10_test_acc"][NB201_index(g)])
                entry["test_acc"].append(float(acc))
                entry["genotypes"].append(res["best"]["genotype"])
                entry["param_free_ops"].append(sum(op in PARAM_FREE for op in g))
                entry["skip_connect"].append(sum(op == "skip_connect" for op in g))
                entry["wall_s"].append(wall)
                entry["cpu_s"].append(cpu)
            exp["methods"][mname] = entry
            rows.append({"experiment": "nb201", "method": mname, "seeds": args.seeds,
                         "epochs": epochs.get(mname, epochs.get("darts")),
                         "warmup": exp["warmup_epochs"].get(mname, exp["warmup_epochs"].get("darts")),
                         "test_acc": f"{np.mean(entry['test_acc']):.2f} +- {np.std(entry['test_acc']):.2f}",
                         "skip/6": float(np.mean(entry["skip_connect"])),
                         "param_free/6": float(np.mean(entry["param_free_ops"])),
                         "cpu_min": float(np.mean(entry["cpu_s"])) / 60})
        result["experiments"]["nb201"] = exp

    if "mbv3" in experiments:
        sup = _kv(args.mbv3_supernet)
        lambdas = [float(v) for v in args.lambdas.split(",")]
        runs = []
        for lam in lambdas:
            for seed in range(args.seeds):
                cfg = DiffSearchConfig(method="proxyless", space="mbv3", epochs=args.mbv3_epochs, seed=seed,
                                       data="cifar10", data_dir=data_dir, images=args.images, batch=args.batch,
                                       latency_weight=lam, warmup_epochs=warmups["proxyless"], supernet=sup,
                                       threads=args.threads,
                                       lut=str(args.lut) if args.lut else None, lut_threads=args.lut_threads,
                                       lut_calibration=args.lut_calibration)
                res, wall, cpu = _run(cfg, work / f"mbv3-lambda{lam:g}-{seed}")
                runs.append({"lambda": lam, "seed": seed, "genotype": res["best"]["genotype"],
                             "ops": res["derived"]["ops"], "run_check": res["latency"], "cpu_s": cpu})
        _latency_check(runs, sup, args)
        for lam in lambdas:
            sel = [r for r in runs if r["lambda"] == lam]
            rows.append({"experiment": "mbv3", "method": f"proxyless lambda={lam:g}", "seeds": len(sel),
                         "measured_ms": float(np.mean([r["measured_ms"] for r in sel])),
                         "predicted_ms": float(np.mean([r["predicted_ms"] for r in sel])),
                         "rel_err_%": 100 * float(np.mean([r["relative_error"] for r in sel])),
                         "within_10%": all(r["within_10pct"] for r in sel),
                         "cpu_min": float(np.mean([r["cpu_s"] for r in sel])) / 60})
        means = [float(np.mean([r["measured_ms"] for r in runs if r["lambda"] == lam])) for lam in lambdas]
        result["experiments"]["mbv3"] = {"supernet": sup, "epochs": args.mbv3_epochs,
                                         "lut_calibration": args.lut_calibration,
                                         "warmup_epochs": DiffSearchConfig(
                                             method="proxyless", epochs=args.mbv3_epochs,
                                             warmup_epochs=warmups["proxyless"]).warmup,
                                         "runs": runs,
                                         "measured_falls_with_lambda": all(
                                             b < a for a, b in itertools.pairwise(means)),
                                         "all_within_10pct": all(r["within_10pct"] for r in runs)}

    if "memory" in experiments:
        mem = memory_experiment(_kv(args.memory_supernet), args.batch, args.memory_steps, args.seed)
        result["experiments"]["memory"] = {"supernet": _kv(args.memory_supernet), "batch": args.batch, "rows": mem}
        for r in mem:
            rows.append({"experiment": "memory", "method": r["step"], "w_step_mb": r["weight_step_saved_mb"],
                         "a_step_mb": r["arch_step_saved_mb"], "w_x_single": r["weight_step_vs_single_path"],
                         "a_x_single": r["arch_step_vs_single_path"], "peak_mb": r["peak_rss_increase_mb"],
                         "peak_x_single": r["peak_vs_single_path"], "s_per_step": r["seconds_per_step"]})

    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["settings"] = settings(seeds=args.seeds, methods=methods, epochs=args.epochs,
                                  warmup=args.warmup or "default", images=args.images or "all",
                                  batch=args.batch, data="cifar10", data_dir=data_dir, threads=args.threads,
                                  nb201_supernet=args.nb201_supernet, lambdas=args.lambdas,
                                  mbv3_supernet=args.mbv3_supernet, mbv3_epochs=args.mbv3_epochs,
                                  lut_threads=args.lut_threads, memory_supernet=args.memory_supernet)
    report(args.out, result, rows)
    png = Path(args.out).with_suffix(".png")
    _png(result, png)
    print(f"wrote {png}")
    return result


def NB201_index(genotype: Any) -> int:
    from search_spaces.nb201 import genotype_to_index

    return genotype_to_index(genotype)


if __name__ == "__main__":
    main()
