"""A user's own Optuna study over NAS-Bench-201 cells, with our sampler and pruner.

    python examples/optuna_nb201.py [--trials 12] [--epochs 3] [--seed 0]

The objective is the user's: it trains the suggested network and reports its validation accuracy
after every epoch, as any Optuna objective would. Three pieces of ``nas.integrations.optuna`` plug in:

* :func:`suggest_architecture` turns the NB201 cell into six categorical Optuna parameters
  (``edge_1_0`` ... ``edge_3_2``) and gives back the genotype;
* :class:`PredictorSampler` proposes the next cell: after ``n_startup_trials`` random cells it ranks
  candidates (mutations and crossovers of the best cells, and fresh draws) with a Gaussian process
  fitted on the finished trials, and takes the best by one joint posterior draw (Thompson sampling);
* :class:`ZeroCostPruner` stops, at the first report, a cell whose ``synflow`` score (no training)
  is in the bottom quarter of the scores so far, and hands later epochs to Optuna's ``MedianPruner``.

The data is scikit-learn's handwritten digits, upsampled to 32x32 (``nas.data``, no download); the
network is a small NB201 stack (``nb201:c=4,n=1``: 4 channels, one cell per stage) trained with Adam
on 512 images and validated on 256. It runs in well under a minute on one CPU thread.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import optuna
import torch
import torch.nn.functional as F

from nas.data import load_images
from nas.integrations.optuna import PredictorSampler, ZeroCostPruner, suggest_architecture
from search_spaces import space_from_spec

SPACE = "nb201:c=4,n=1"


def make_objective(epochs: int, seed: int) -> Any:
    """The user's training objective: ``objective(trial) -> validation accuracy`` (%)."""
    space = space_from_spec(SPACE)
    data = load_images("digits")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.labels))
    x = torch.tensor(data.images, dtype=torch.float32).permute(0, 3, 1, 2) / 255.0  # (N, 3, 32, 32)
    x = (x - torch.tensor(data.mean).view(1, 3, 1, 1)) / torch.tensor(data.std).view(1, 3, 1, 1)
    y = torch.tensor(data.labels)
    train, val = order[:512], order[512:768]

    def objective(trial: optuna.trial.Trial) -> float:
        genotype = suggest_architecture(trial, space)
        trial.set_user_attr("arch", space.format(genotype))
        torch.manual_seed(seed + trial.number)  # the network's initialization
        model = space.to_module(genotype)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        gen = torch.Generator().manual_seed(seed + trial.number)  # the batch order
        acc = 0.0
        for epoch in range(epochs):
            model.train()
            perm = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
            for b in range(0, len(perm), 64):
                idx = perm[b: b + 64]
                opt.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                acc = float((model(x[val]).argmax(1) == y[val]).float().mean()) * 100.0
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: {acc:.1f}%")
        return acc

    return objective


def run(trials: int = 12, epochs: int = 3, seed: int = 0) -> optuna.Study:
    """Run the study; returns it (``study.best_trial.user_attrs["arch"]`` is the best cell)."""
    torch.set_num_threads(1)
    sampler = PredictorSampler(SPACE, n_startup_trials=5, n_candidates=64, seed=seed)
    pruner = ZeroCostPruner(SPACE, "synflow", quantile=0.25, n_warmup_trials=4, data="digits", batch=16, seed=seed,
                            then=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(make_objective(epochs, seed), n_trials=trials)
    return study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = run(args.trials, args.epochs, args.seed)
    for t in study.trials:
        zc = t.user_attrs.get("zc_score")
        last = t.intermediate_values.get(t.last_step) if t.last_step is not None else None
        print(f"trial {t.number:2d}  {t.state.name:8s}  epochs {len(t.intermediate_values)}  "
              f"val {last if last is None else f'{last:5.1f}%'}  synflow {zc if zc is None else f'{zc:.3g}'}  "
              f"{t.user_attrs.get('arch')}")
    best = study.best_trial
    print(f"best: trial {best.number}, {best.value:.1f}% validation accuracy, {best.user_attrs['arch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
