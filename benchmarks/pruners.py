"""LearningCurvePruner (parametric and LC-PFN) against Optuna's MedianPruner on real training curves.

    python -m benchmarks.pruners --workdir /tmp/nas-curves [--archs 20] [--epochs 10] [--seeds 10] [--out r.json]

**The curves.** NAS-Bench-201's per-epoch curves are not in the shared data, so they are made here:
``--archs`` NB201 cells (drawn uniformly with ``--seed``; the network is ``nb201:c=8,n=1``, a third
of the benchmark's depth and half its width, so that it trains on a CPU) are trained for ``--epochs``
epochs on ``--train`` of the 2,000 real CIFAR-10 test images of ``cifar10_test_jpeg2000.npz``,
average-pooled to 16x16 and normalized with the CIFAR-10 mean and std, with SGD (lr 0.05,
momentum 0.9, Nesterov, weight decay 5e-4, cosine schedule, batch 64, random horizontal flips),
and validated after each epoch on the other ``--val`` images (a seeded split). A curve is the
validation accuracy (%) per epoch. Each network's initialization and batch order come from its own
seed. The curves are cached as JSON in ``--workdir`` (keyed by the settings), so a rerun costs only
the replay. One torch thread.

**The replay.** For each of ``--seeds`` orders of the curves, an Optuna study runs one trial per
curve, in that order, reporting the validation accuracy epoch by epoch and stopping when the pruner
says so. Reported per pruner (none, ``MedianPruner(n_startup_trials=3, n_warmup_steps=2)``,
``LearningCurvePruner(max_step=epochs-1, n_startup_trials=3, n_warmup_steps=3)`` with the parametric
ensemble (``learning_curve``) and with the shipped LC-PFN, ``model="lcpfn", value_range=(0, 100)``
(``lcpfn``)):

* **epochs saved**: the share of the ``archs x epochs`` training epochs not run;
* **regret**: the best final validation accuracy among all curves minus the final accuracy of the
  study's pick (its best complete trial), in points; mean +- std over the orders;
* **ms / decision**: the mean wall time of one ``pruner.prune`` call (one thread).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"space": args.space, "archs": args.archs, "epochs": args.epochs, "train": args.train, "val": args.val,
            "seed": args.seed, "lr": 0.05, "batch": 64, "resolution": 16}


def generate_curves(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Train the networks (or read them from the cache); returns ``{"settings", "archs", "curves"}``."""
    import torch
    import torch.nn.functional as F

    from search_spaces import space_from_spec

    settings = _settings(args)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"curves-{key}.json"
    done: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"settings": settings, "archs": [],
                                                                                   "curves": [], "seconds": []}
    torch.set_num_threads(args.threads)
    npz = np.load(data_dir / "cifar10" / "cifar10_test_jpeg2000.npz")
    images = torch.tensor(npz["images"], dtype=torch.float32).permute(0, 3, 1, 2) / 255.0  # (2000, 3, 32, 32)
    images = F.avg_pool2d(images, 2)  # (2000, 3, 16, 16)
    images = (images - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    labels = torch.tensor(npz["labels"], dtype=torch.long)
    split = np.random.default_rng([args.seed, 1]).permutation(len(labels))
    tr, va = split[: args.train], split[args.train: args.train + args.val]
    x_tr, y_tr, x_va, y_va = images[tr], labels[tr], images[va], labels[va]
    space = space_from_spec(args.space + ",input_size=16")
    rng = np.random.default_rng(args.seed)
    genotypes = [space.sample(rng) for _ in range(args.archs)]
    for i, g in enumerate(genotypes):
        if i < len(done["curves"]):
            continue
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(1000 + i)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1000 + i)
            model = space.to_module(g)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        steps = args.epochs * ((len(tr) + 63) // 64)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        curve = []
        for _ in range(args.epochs):
            model.train()
            order = torch.randperm(len(tr), generator=gen)
            for b in range(0, len(tr), 64):
                idx = order[b: b + 64]
                xb = x_tr[idx]
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
                opt.zero_grad()
                F.cross_entropy(model(xb), y_tr[idx]).backward()
                opt.step()
                sched.step()
            model.eval()
            with torch.no_grad():
                acc = float((model(x_va).argmax(1) == y_va).float().mean()) * 100.0
            curve.append(round(acc, 4))
        done["archs"].append(space.format(g))
        done["curves"].append(curve)
        done["seconds"].append(round(time.perf_counter() - t0, 2))
        path.write_text(json.dumps(done))
        print(f"  curve {i + 1}/{args.archs}: final {curve[-1]:.1f}%  ({done['seconds'][-1]:.0f} s)", file=sys.stderr)
    return done


def replay(curves: list[list[float]], make_pruner: Callable[[], Any], order: np.ndarray) -> dict[str, float]:
    """One study over the curves in ``order``: epochs run, the final accuracy of the pick, time per decision."""
    import optuna

    class Timed(optuna.pruners.BasePruner):
        def __init__(self, inner: optuna.pruners.BasePruner) -> None:
            self.inner, self.calls, self.seconds = inner, 0, 0.0

        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            t = time.perf_counter()
            out = self.inner.prune(study, trial)
            self.seconds += time.perf_counter() - t
            self.calls += 1
            return out

    epochs_run = 0
    pruner = Timed(make_pruner())
    study = optuna.create_study(direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    n = len(curves)
    for i in order:
        study.enqueue_trial({"curve": int(i)})

    def objective(trial: optuna.trial.Trial) -> float:
        nonlocal epochs_run
        curve = curves[trial.suggest_int("curve", 0, n - 1)]
        for step, v in enumerate(curve):
            epochs_run += 1
            trial.report(v, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return curve[-1]

    study.optimize(objective, n_trials=n)
    pick = study.best_trial.params["curve"]
    best = max(c[-1] for c in curves)
    return {"epochs": epochs_run, "saved": 1.0 - epochs_run / sum(len(c) for c in curves),
            "regret": best - curves[pick][-1],
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
            "ms_per_decision": 1000.0 * pruner.seconds / max(1, pruner.calls)}


def main(argv: list[str] | None = None) -> int:
    import optuna
    import torch

    from nas.errors import BenchmarkDataMissing
    from nas.integrations.pruners import LearningCurvePruner

    p = argparse.ArgumentParser(prog="python -m benchmarks.pruners", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="where the generated curves are cached (not the repository)")
    p.add_argument("--data-dir", default=os.environ.get("NAS_DATA"), help="reference data (default: $NAS_DATA)")
    p.add_argument("--space", default="nb201:c=8,n=1")
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train", type=int, default=1500)
    p.add_argument("--val", type=int, default=500)
    p.add_argument("--seeds", type=int, default=10, help="orders of the curves replayed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data_dir = Path(args.data_dir or "")
    if not (data_dir / "cifar10" / "cifar10_test_jpeg2000.npz").is_file():
        raise BenchmarkDataMissing(f"cifar10/cifar10_test_jpeg2000.npz not found under {str(data_dir)!r}: pass "
                                   "--data-dir or set NAS_DATA to the reference data folder")
    t0 = time.perf_counter()
    data = generate_curves(args, data_dir)
    curves = data["curves"]
    last = args.epochs - 1
    pruners: dict[str, Callable[[], Any]] = {
        "none": optuna.pruners.NopPruner,
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
        "learning_curve": lambda: LearningCurvePruner(max_step=last, n_startup_trials=3, n_warmup_steps=3,
                                                      seed=args.seed),
        "lcpfn": lambda: LearningCurvePruner(max_step=last, n_startup_trials=3, n_warmup_steps=3, model="lcpfn",
                                             value_range=(0.0, 100.0), seed=args.seed),
    }
    results: dict[str, Any] = {}
    for name, make in pruners.items():
        t = time.perf_counter()
        runs = [replay(curves, make, np.random.default_rng([args.seed, s]).permutation(len(curves)))
                for s in range(args.seeds)]
        results[name] = {k: [r[k] for r in runs] for k in runs[0]}
        results[name]["seconds"] = round(time.perf_counter() - t, 2)
    print(f"settings: {json.dumps(data['settings'])}, orders {args.seeds}, torch {torch.__version__}, "
          f"threads {args.threads}, data {data_dir / 'cifar10' / 'cifar10_test_jpeg2000.npz'}")
    finals = np.array([c[-1] for c in curves])
    print(f"curves: {len(curves)}, final val acc {finals.min():.1f}..{finals.max():.1f}% (median "
          f"{np.median(finals):.1f}), training {sum(data['seconds']):.0f} s in all")
    print(f"{'pruner':16s} {'epochs saved':>14s} {'regret (points)':>18s} {'pruned trials':>14s} "
          f"{'ms / decision':>14s} {'replay s':>9s}")
    for name, r in results.items():
        saved, regret = np.array(r["saved"]) * 100, np.array(r["regret"])
        print(f"{name:16s} {saved.mean():7.1f} ± {saved.std():4.1f}% {regret.mean():9.2f} ± {regret.std():5.2f} "
              f"{np.mean(r['pruned']):14.1f} {np.mean(r['ms_per_decision']):14.2f} {r['seconds']:9.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": data["settings"], "orders": args.seeds,
                                              "torch": torch.__version__, "results": results,
                                              "archs": data["archs"], "curves": curves}, indent=1))
    log.info("done in %.0f s", time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
