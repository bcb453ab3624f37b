"""A differentiable search run: data split, supernet training, derivation, and the run folder.

:func:`run_differentiable_search` trains a space's supernet (:mod:`.supernet`) with one of
:data:`~nas.search.differentiable.methods.METHODS` on images split into a training half (weights)
and a validation half (architecture), epoch by epoch, then derives a genotype and writes it in the
run-folder format of the evolutionary search (:mod:`nas.search.loop`):

* ``config.json`` -- the :class:`DiffSearchConfig` (with ``"backend": "differentiable"``);
* ``candidates.jsonl`` -- one line per epoch: that epoch's argmax genotype, its fingerprint,
  ``status`` ``evaluated``, ``value`` (the supernet's validation accuracy with that single path,
  in percent), ``scores`` (losses, expected latency), ``costs`` (the table's latency), seconds;
* ``best.onnx``, ``best.txt`` (the derived genotype) and ``result.json`` (``best`` as the
  evolutionary search writes it, plus ``derived``, ``latency`` and, on NB201 with the table present,
  ``cifar10_test_acc``);
* ``arch_history.json`` and ``arch_history.png`` -- the softmax of the logits after every epoch;
* ``checkpoint.pt`` -- everything needed to continue after the last finished epoch (``resume``).

Selection (``selection``): ``argmax`` reads each row's largest logit (and DARTS's edge strength);
``darts-pt`` is the perturbation-based selection of Wang et al., "Rethinking Architecture Selection
in Differentiable NAS", ICLR 2021 (DARTS-PT), the documented fix for DARTS's collapse onto
parameter-free ops: rows are visited in a seeded random order; for each, every candidate op is
removed in turn (its weight set to 0, not renormalized) and the supernet's validation accuracy
measured; the op whose removal hurts most is kept, the row is projected onto it (one-hot), and the
supernet is tuned for ``pt_tune_steps`` weight steps before the next row. For the DARTS space the
two inputs of each node are then chosen the same way, by the accuracy drop when a whole edge is removed.

Warm-up (``warmup_epochs``): the first epochs train the supernet weights alone, the architecture
logits frozen at their near-zero initialization, so every op is about equally likely: ProxylessNAS
samples one path per row uniformly, DARTS runs the uniform mixture, GDAS draws from the uniform
Gumbel softmax. This is ProxylessNAS's warm-up (Cai, Zhu & Han, ICLR 2019; their search trains the
weights for 40 epochs before 120 of joint search, ``--warmup_epochs 40`` in
``search/imagenet_arch_search.py``): without it, the first architecture steps compare untrained ops,
which favours the parameter-free ones (an identity already passes the signal; a convolution has not
yet learned to); their logits grow, so they are sampled and trained more, and the convolutions may
never catch up. On NB201 (2,000 CIFAR-10 images, a C=8, N=2 supernet) ProxylessNAS derived
parameter-free ops on 5 or 6 of the 6 edges both without a warm-up (one seed, 12 epochs) and with
12 warm-up epochs of 50 (three seeds): the warm-up alone does not prevent that collapse there, and
the softmax stayed near uniform (largest probability 0.29-0.30). The default (``None``) is
:data:`WARMUP_FRACTION` of the epochs: 0.25 for ``proxyless`` (the paper's 40 of 160), 0 for the
others, whose papers have none. Warm-up epochs count in ``epochs`` and share its cosine learning-rate
schedule and GDAS's temperature schedule (the paper restarts the schedule after the warm-up).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nas.errors import SearchError
from nas.search.differentiable.errors import ArchWeightsNaNError, DataSplitError
from nas.search.differentiable.methods import (
    METHODS,
    ArchState,
    Method,
    argmax_plan,
    mixed_plan,
)
from nas.search.differentiable.supernet import Plan, Supernet, build_supernet

log = logging.getLogger(__name__)

__all__ = ["WARMUP_FRACTION", "DiffSearchConfig", "DiffSearchResult", "SplitData", "run_differentiable_search",
           "split_data"]

SELECTIONS = ("argmax", "darts-pt")

#: Default share of the epochs spent on warm-up (weights only), per method; absent: 0.
#: ProxylessNAS warms up for 40 epochs before 120 of search (Cai et al., ICLR 2019), a quarter.
WARMUP_FRACTION: dict[str, float] = {"proxyless": 0.25}


@dataclass(frozen=True)
class DiffSearchConfig:
    """Everything that defines a differentiable search (written to ``config.json``).

    Defaults follow the papers where a CPU allows: weights by SGD (momentum 0.9, ``lr`` cosine to
    ``lr_min``, weight decay 3e-4, gradient clip 5), logits by Adam (``arch_lr`` 3e-4, betas
    (0.5, 0.999), weight decay 1e-3) for DARTS and GDAS, and Adam (``arch_lr`` 6e-3 unless given,
    betas (0, 0.999), no decay) for ProxylessNAS. ``images`` caps how many images are used (0: all),
    split ``train_fraction`` / rest; ``supernet`` holds the supernet's arguments (``{"c": 8, "n": 1}``).
    ``latency_weight`` is lambda in ms^-1; ``max_latency_ms`` turns the term into a hinge over it;
    ``lut_calibration`` networks spanning the supernet's latency range fit the table's network-level factor
    (0: none; see :mod:`.latency`).
    ``warmup_epochs`` is the weights-only warm-up (module docstring): a whole number of epochs, a
    fraction in (0, 1) of ``epochs``, or None for the method's default (:data:`WARMUP_FRACTION`);
    :attr:`warmup` is the resolved count, which leaves at least one epoch of search.
    """

    method: str = "darts"
    space: str = "nb201"
    epochs: int = 10
    seed: int = 0
    data: str = "digits"
    data_dir: str | None = None
    images: int = 0
    batch: int = 64
    train_fraction: float = 0.5
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float | None = None
    arch_weight_decay: float | None = None
    grad_clip: float = 5.0
    warmup_epochs: float | None = None
    tau_max: float = 10.0
    tau_min: float = 0.1
    latency_weight: float = 0.0
    max_latency_ms: float | None = None
    lut: str | None = None
    lut_threads: int = 1
    lut_calibration: int = 9
    augment: bool = True
    selection: str = "argmax"
    pt_tune_steps: int = 0
    pt_eval_images: int = 512
    threads: int = 0
    supernet: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SearchError(f"unknown differentiable method {self.method!r}; valid: {', '.join(METHODS)}")
        if self.selection not in SELECTIONS:
            raise SearchError(f"unknown selection {self.selection!r}; valid: {', '.join(SELECTIONS)}")
        if self.epochs < 1:
            raise SearchError(f"epochs must be at least 1; got {self.epochs}")
        if not 0.0 < self.train_fraction < 1.0:
            raise SearchError(f"train_fraction must be in (0, 1); got {self.train_fraction}")
        if self.latency_weight < 0 or (self.max_latency_ms is not None and self.max_latency_ms <= 0):
            raise SearchError(f"latency_weight must be >= 0 and max_latency_ms > 0; got {self.latency_weight}, "
                              f"{self.max_latency_ms}")
        if self.batch < 1:
            raise SearchError(f"batch must be at least 1; got {self.batch}")
        w = self.warmup_epochs
        if w is not None and not (0.0 < w < 1.0 or (w >= 0 and float(w).is_integer())):
            raise SearchError(f"warmup_epochs must be a whole number of epochs >= 0 or a fraction in (0, 1) of "
                              f"the epochs; got {w}")
        if w is not None and w >= 1 and w >= self.epochs:
            raise SearchError(f"warmup_epochs ({w:g}) must leave at least one epoch of search; epochs is "
                              f"{self.epochs}")

    @property
    def warmup(self) -> int:
        """Epochs of weights-only warm-up: ``warmup_epochs`` resolved (a fraction or the method's default
        rounded to whole epochs, capped to leave one epoch of architecture search)."""
        w = self.warmup_epochs
        if w is None:
            w = WARMUP_FRACTION.get(self.method, 0.0)
        n = int(w) if w >= 1 or w == 0 else round(w * self.epochs)
        return min(n, self.epochs - 1)

    @property
    def uses_latency(self) -> bool:
        return self.latency_weight > 0 or self.max_latency_ms is not None

    def arch_optimizer_args(self) -> dict[str, Any]:
        if self.method == "proxyless":
            return {"lr": self.arch_lr if self.arch_lr is not None else 6e-3, "betas": (0.0, 0.999), "eps": 1e-8,
                    "weight_decay": self.arch_weight_decay or 0.0}
        return {"lr": self.arch_lr if self.arch_lr is not None else 3e-4, "betas": (0.5, 0.999),
                "weight_decay": self.arch_weight_decay if self.arch_weight_decay is not None else 1e-3}


@dataclass
class DiffSearchResult:
    genotype: Any
    text: str
    out: Path
    result: dict[str, Any]
    history: list[dict[str, Any]]


# --------------------------------------------------------------------------- data


@dataclass
class SplitData:
    """Normalized float images ``(N, 3, H, W)`` and labels ``(N,)`` of the two halves."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    num_classes: int
    source: str


def split_data(config: DiffSearchConfig, resolution: int | None = None) -> SplitData:
    """Load ``config.data``, keep ``config.images`` of them (a seeded draw), split them with a seeded
    permutation into ``train_fraction`` and the rest; resize to ``resolution`` if given.

    Raises :class:`DataSplitError` when either half has fewer images than one batch.
    """
    from nas.data import load_images

    images = load_images(config.data, data_dir=config.data_dir)
    rng = np.random.default_rng(config.seed)
    n_all = len(images)
    n = n_all if config.images <= 0 else min(config.images, n_all)
    idx = rng.permutation(n_all)[:n]
    n_train = round(n * config.train_fraction)
    n_val = n - n_train
    if min(n_train, n_val) < config.batch:
        raise DataSplitError(
            f"too little data for a train/validation split: {n} images of {images.name!r} give {n_train} for "
            f"training and {n_val} for validation, and a batch is {config.batch}; use more images "
            f"(--images, or another --data) or a smaller --batch"
        )
    x = torch.from_numpy(images.images[idx]).to(torch.float32).div_(255.0).permute(0, 3, 1, 2)  # (n, 3, H, W)
    mean = torch.tensor(images.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(images.std, dtype=torch.float32).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous()
    if resolution is not None and resolution != x.shape[-1]:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    y = torch.from_numpy(images.labels[idx].astype(np.int64))
    return SplitData(x[:n_train], y[:n_train], x[n_train:], y[n_train:], images.num_classes, images.name)


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """DARTS's CIFAR augmentation: random crop with 4-pixel zero padding, random horizontal flip."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, int(dy[i]) : int(dy[i]) + h, int(dx[i]) : int(dx[i]) + w]
        out[i] = crop.flip(-1) if bool(flip[i]) else crop
    return out


# --------------------------------------------------------------------------- helpers


def _write_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def _check_finite(arch: ArchState, epoch: int, step: int) -> None:
    for g, a in arch.alphas.items():
        if not bool(torch.isfinite(a).all()):
            bad = (~torch.isfinite(a)).nonzero()[0].tolist()
            raise ArchWeightsNaNError(
                f"architecture weights of group {g!r} became non-finite at epoch {epoch}, step {step} "
                f"(first at row {bad[0]}, op {bad[1]}: {float(a.detach()[bad[0], bad[1]])}); lower --arch-lr or --lr, "
                "or the latency weight", epoch, step)


@torch.no_grad()
def evaluate(net: Supernet, plan: Plan, x: Tensor, y: Tensor, batch: int) -> tuple[float, float]:
    """(loss, accuracy in percent) of the supernet under ``plan`` on ``x``, in train-mode BN
    (the supernet's BN statistics are the batch's, as during search)."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        logits = net(x[i : i + batch], plan)
        total_loss += float(F.cross_entropy(logits, y[i : i + batch], reduction="sum"))
        correct += int((logits.argmax(1) == y[i : i + batch]).sum())
    return total_loss / len(x), 100.0 * correct / len(x)


def argmax_ops(net: Supernet, arch: ArchState) -> tuple[dict[str, list[int]], dict[str, list[float]]]:
    """Per row the best derivable op by logit, and the row's strength (its largest derivable
    probability: DARTS's edge strength)."""
    ops, strength = {}, {}
    for g in arch.groups():
        p = arch.probs(g).detach()
        masked = p.masked_fill(~net.derivable[g], -1.0)
        ops[g] = masked.argmax(-1).tolist()
        strength[g] = masked.max(-1).values.tolist()
    return ops, strength


def _format(net: Supernet, genotype: Any) -> str:
    text: str = net.space.format(genotype)
    return text


# --------------------------------------------------------------------------- the run


def run_differentiable_search(
    config: DiffSearchConfig | None,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    stop_after_epochs: int | None = None,
) -> DiffSearchResult | None:
    """Run (or with ``resume`` continue) a differentiable search in folder ``out`` (module docstring).

    ``on_epoch`` sees each epoch's line of ``candidates.jsonl``; ``stop_after_epochs`` ends the session
    after that many new epochs without deriving (tests use it to stand in for a crash) and returns None.
    """
    out = Path(out)
    if resume:
        if not (out / "config.json").is_file():
            raise SearchError(f"cannot resume {out}: it has no config.json (not a search folder)")
        raw = json.loads((out / "config.json").read_text())
        raw.pop("backend", None)
        config = DiffSearchConfig(**raw)
    elif config is None:
        raise SearchError("give a DiffSearchConfig, or resume=True with a search folder")
    elif (out / "candidates.jsonl").exists():
        raise SearchError(f"{out} already holds a search; resume it (--resume) or choose another --out")
    assert config is not None
    if config.threads > 0:
        torch.set_num_threads(config.threads)

    net_kwargs = dict(config.supernet)
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = build_supernet(config.space, **net_kwargs)
    train_res = getattr(net, "train_resolution", None)
    data = split_data(config, resolution=train_res)
    if getattr(net, "num_classes", data.num_classes) != data.num_classes:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = build_supernet(config.space, **{**net_kwargs, "num_classes": data.num_classes})
    arch = ArchState(net, gen)

    lat_model = None
    if config.uses_latency and not net.has_latency:
        net.latency_specs()  # raises SupernetUnsupportedError naming the spaces with a table
    if net.has_latency and (config.uses_latency or config.lut is not None or net.space_name == "mbv3"):
        from nas.search.differentiable.latency import LatencyLUT, LatencyModel

        lut = LatencyLUT(config.lut, threads=config.lut_threads)
        lat_model = LatencyModel.from_lut(net, lut, progress=_bar("latency table", progress),
                                          calibrate=config.lut_calibration)

    def latency_loss(a: ArchState) -> Tensor:
        if lat_model is None or not config.uses_latency:
            return torch.zeros(())
        e = lat_model.expected({g: a.probs(g) for g in a.groups()})
        if config.max_latency_ms is not None:
            lam = config.latency_weight if config.latency_weight > 0 else 1.0
            return lam * torch.relu(e - config.max_latency_ms)
        return config.latency_weight * e

    method = Method(config.method, net, arch, gen, latency_loss, config.grad_clip)
    w_opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                            weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=config.epochs, eta_min=config.lr_min)
    a_opt = torch.optim.Adam(arch.parameters(), **config.arch_optimizer_args())
    np_rng = np.random.default_rng(config.seed + 1)

    out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        net.load_state_dict(ck["net"])
        arch.load_state_dict(ck["arch"])
        w_opt.load_state_dict(ck["w_opt"])
        a_opt.load_state_dict(ck["a_opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        np_rng.bit_generator.state = ck["np_rng"]
        history = ck["history"]
        start_epoch = ck["epoch"] + 1
    if not resume:
        _write_atomic(out / "config.json", {"backend": "differentiable", **dataclasses.asdict(config)})
    lines_path = out / "candidates.jsonl"
    if resume and lines_path.is_file():  # drop lines of epochs after the checkpoint (a crash between writes)
        kept = [ln for ln in lines_path.read_text().splitlines() if ln.strip() and json.loads(ln)["n"] < start_epoch]
        lines_path.write_text("".join(ln + "\n" for ln in kept))

    n_train, n_val = len(data.train_x), len(data.val_x)
    steps = n_train // config.batch
    from tqdm import tqdm

    bar = tqdm(total=config.epochs, initial=start_epoch, desc=f"{config.method} {config.space}", unit="epoch",
               disable=not progress)
    done_now = 0
    for epoch in range(start_epoch, config.epochs):
        if stop_after_epochs is not None and done_now >= stop_after_epochs:
            bar.close()
            return None
        t0 = time.perf_counter()
        net.train()
        frac = epoch / max(1, config.epochs - 1)
        method.tau = config.tau_max - (config.tau_max - config.tau_min) * frac
        lr = w_opt.param_groups[0]["lr"]
        perm_t = torch.from_numpy(np_rng.permutation(n_train))
        perm_v = torch.from_numpy(np_rng.permutation(n_val))
        search_arch = epoch >= config.warmup
        tl, ta, vl, lt = [], [], [], []
        for step in range(steps):
            it = perm_t[step * config.batch : (step + 1) * config.batch]
            vs = (step * config.batch) % max(1, n_val - config.batch + 1)
            iv = perm_v[vs : vs + config.batch]
            xt, yt = data.train_x[it], data.train_y[it]
            xv, yv = data.val_x[iv], data.val_y[iv]
            if config.augment:
                xt = _augment(xt, gen)
            if search_arch:
                cl, ll = method.arch_step(a_opt, xt, yt, xv, yv, lr, config.weight_decay)
                vl.append(cl)
                lt.append(ll)
                _check_finite(arch, epoch, step)
            loss, acc = method.weight_step(w_opt, xt, yt)
            if not math.isfinite(loss):
                raise ArchWeightsNaNError(f"the training loss became {loss} at epoch {epoch}, step {step}; "
                                          "lower --lr", epoch, step)
            tl.append(loss)
            ta.append(acc)
        sched.step()
        net.train()
        ops, strength = argmax_ops(net, arch)
        g = net.genotype(ops, strength)
        text = _format(net, g)
        epoch_plan = argmax_plan(arch, ops)
        val_loss, val_acc = evaluate(net, epoch_plan, data.val_x, data.val_y, config.batch)
        probs = {gname: arch.probs(gname).detach().tolist() for gname in arch.groups()}
        rec: dict[str, Any] = {
            "n": epoch, "epoch": epoch, "genotype": text, "fingerprint": _fingerprint(net, g),
            "status": "evaluated", "value": val_acc,
            "scores": {"train_loss": float(np.mean(tl)) if tl else None,
                       "train_acc": 100.0 * float(np.mean(ta)) if ta else None,
                       "arch_val_loss": float(np.mean(vl)) if vl else None,
                       "argmax_val_loss": val_loss, "latency_term": float(np.mean(lt)) if lt else None},
            "costs": {}, "cached": False,
        }
        if lat_model is not None:
            rec["costs"]["lut_ms"] = lat_model.predict(ops)
            rec["scores"]["expected_latency_ms"] = float(lat_model.expected(
                {gname: arch.probs(gname).detach() for gname in arch.groups()}))
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        history.append({"epoch": epoch, "probs": probs, "genotype": text})
        with lines_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        torch.save({"net": net.state_dict(), "arch": arch.state_dict(), "w_opt": w_opt.state_dict(),
                    "a_opt": a_opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                    "np_rng": np_rng.bit_generator.state, "history": history, "epoch": epoch},
                   str(ckpt_path) + ".tmp")
        os.replace(str(ckpt_path) + ".tmp", ckpt_path)
        bar.update(1)
        bar.set_postfix(val_acc=f"{val_acc:.1f}", loss=f"{rec['scores']['train_loss']:.3f}")
        done_now += 1
        if on_epoch:
            on_epoch(rec)
    bar.close()

    # ---- derive
    t_sel = time.perf_counter()
    if config.selection == "darts-pt":
        ops, strength = darts_pt_select(net, arch, method, w_opt, data, config, gen)
    else:
        ops, strength = argmax_ops(net, arch)
    genotype = net.genotype(ops, strength)
    text = _format(net, genotype)
    sel_seconds = time.perf_counter() - t_sel
    _, derived_acc = evaluate(net, argmax_plan(arch, ops), data.val_x, data.val_y, config.batch)
    result = _finish(net, genotype, text, config, out, history, lat_model, ops, derived_acc, sel_seconds)
    return DiffSearchResult(genotype, text, out, result, history)


def _fingerprint(net: Supernet, genotype: Any) -> str | None:
    try:
        if net.space_name == "nb201":
            fp: str = net.space.to_graph(genotype).fingerprint()
            return fp
    except Exception as e:  # a fingerprint is bookkeeping; the search does not need it
        log.debug("no fingerprint for %s: %s", genotype, e)
    return None


def _bar(desc: str, progress: bool) -> Callable[[Any], Any]:
    from tqdm import tqdm

    def wrap(items: Any) -> Any:
        return tqdm(items, desc=desc, unit="op", disable=not progress)

    return wrap


# --------------------------------------------------------------------------- DARTS-PT


def darts_pt_select(net: Supernet, arch: ArchState, method: Method, w_opt: torch.optim.Optimizer, data: SplitData,
                    config: DiffSearchConfig, gen: torch.Generator) -> tuple[dict[str, list[int]],
                                                                             dict[str, list[float]]]:
    """DARTS-PT's perturbation-based selection (Wang et al., ICLR 2021; see the module docstring).

    Accuracy is the supernet's on the first ``pt_eval_images`` validation images, with the DARTS
    mixed plan (every remaining op weighted by its softmax).
    """
    xv, yv = data.val_x[: config.pt_eval_images], data.val_y[: config.pt_eval_images]
    override: dict[tuple[str, int], Tensor] = {}
    rows = [(g, r) for g in arch.groups() for r in range(arch.alphas[g].shape[0])]
    order = torch.randperm(len(rows), generator=gen).tolist()
    ops: dict[str, list[int]] = {g: [0] * arch.alphas[g].shape[0] for g in arch.groups()}

    def acc(ov: dict[tuple[str, int], Tensor]) -> float:
        return evaluate(net, mixed_plan(arch, ov), xv, yv, config.batch)[1]

    for k in order:
        g, r = rows[k]
        with torch.no_grad():
            base = arch.probs(g)[r].detach()
        best_i, best_drop = -1, -math.inf
        for i in range(base.shape[0]):
            if not bool(net.derivable[g][r, i]):
                continue
            w = base.clone()
            w[i] = 0.0
            drop = -acc({**override, (g, r): w})
            if drop > best_drop:
                best_i, best_drop = i, drop
        ops[g][r] = best_i
        override[(g, r)] = F.one_hot(torch.tensor(best_i), base.shape[0]).float()
        log.info("darts-pt: %s row %s -> %s", g, net.row_names[g][r], net.choices[g][best_i])
        for _ in range(config.pt_tune_steps):
            it = torch.randint(0, len(data.train_x), (config.batch,), generator=gen)
            w_opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(data.train_x[it], mixed_plan(arch, override)), data.train_y[it])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            w_opt.step()
    strength: dict[str, list[float]] = {g: [0.0] * arch.alphas[g].shape[0] for g in arch.groups()}
    if net.space_name == "darts":  # topology: the accuracy drop when the whole (projected) edge is removed
        for g, r in rows:
            zero = torch.zeros(arch.alphas[g].shape[1])
            strength[g][r] = -acc({**override, (g, r): zero})
    return ops, strength


# --------------------------------------------------------------------------- the folder's end


def _finish(net: Supernet, genotype: Any, text: str, config: DiffSearchConfig, out: Path,
            history: list[dict[str, Any]], lat_model: Any, ops: dict[str, list[int]], derived_acc: float,
            sel_seconds: float) -> dict[str, Any]:
    import onnx

    from nas.ir import ArchGraph
    from nas.ir.torch_export import export_onnx

    space = net.space
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        module = space.to_module(genotype)
    model = export_onnx(module, torch.zeros(space.example_input_shape(1, genotype)))
    onnx.save(model, str(out / "best.onnx"))
    (out / "best.txt").write_text(text + "\n")
    graph = ArchGraph.from_onnx(model)
    best: dict[str, Any] = {"genotype": text, "value": derived_acc, "fingerprint": graph.fingerprint(),
                            "costs": {"params": graph.params / 1e6, "flops": graph.flops / 1e6}, "scores": {}}
    result: dict[str, Any] = {
        "best": best,
        "counters": {"epochs": len(history), "evaluated": len(history), "rejected": 0, "failed": 0, "cached": 0},
        "front": [],
        "method": config.method,
        "selection": config.selection,
        "selection_seconds": round(sel_seconds, 2),
        "derived": {"ops": ops, "supernet_val_acc": derived_acc},
    }
    if lat_model is not None:
        from nas.search.differentiable.latency import measure_module

        predicted = lat_model.predict(ops)
        measured = measure_module(module, space.example_input_shape(1, genotype), threads=config.lut_threads,
                                  rounds=5)
        best["costs"]["lut_ms"] = predicted
        best["costs"]["measured_ms"] = measured
        result["latency"] = {"predicted_ms": predicted, "measured_ms": measured,
                             "relative_error": (predicted - measured) / measured, "threads": config.lut_threads,
                             "summed_ms": lat_model.predict(ops, calibrated=False), "factor": lat_model.factor,
                             "offset_ms": lat_model.offset_ms,
                             "calibration_networks": config.lut_calibration}
    if net.space_name == "nb201":
        truth = nb201_truth(genotype, config.data_dir)
        if truth is not None:
            best["cifar10_test_acc"] = truth
    _write_atomic(out / "result.json", result)
    write_history(net, history, out)
    return result


def nb201_truth(genotype: Any, data_dir: str | Path | None) -> float | None:
    """The table's ``cifar10_test_acc`` of an NB201 genotype, read after the search (None without the table)."""
    from benchmarks.tabular import nb201_ground_truth
    from nas.errors import NasError
    from search_spaces.nb201 import genotype_to_index

    try:
        gt = nb201_ground_truth(data_dir)
    except (NasError, OSError) as e:
        log.info("no NB201 table for the derived cell's accuracy: %s", e)
        return None
    return float(gt["cifar10_test_acc"][genotype_to_index(genotype)])


def write_history(net: Supernet, history: list[dict[str, Any]], out: Path) -> None:
    """``arch_history.json`` (per group: choices, rows, and the probabilities after each epoch) and
    ``arch_history.png`` (per group a heatmap: one line per row and op, one column per epoch)."""
    groups = {}
    for g in net.choices:
        groups[g] = {"choices": list(net.choices[g]), "rows": net.row_names[g],
                     "epochs": [h["epoch"] for h in history], "probs": [h["probs"][g] for h in history]}
    _write_atomic(out / "arch_history.json", {"groups": groups, "genotypes": [h["genotype"] for h in history]})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 6), dpi=110, squeeze=False)
    for ax, (g, d) in zip(axes[0], groups.items(), strict=True):
        p = np.asarray(d["probs"], dtype=float)  # (epochs, rows, ops)
        if p.size == 0:
            continue
        mat = p.reshape(p.shape[0], -1).T  # (rows * ops, epochs)
        # the colour range is the data's: early in a search the probabilities differ in the third decimal
        finite = mat[np.isfinite(mat)]
        im = ax.imshow(mat, aspect="auto", cmap="viridis", vmin=float(finite.min()), vmax=float(finite.max()),
                       interpolation="nearest")
        labels = [f"{r} {c}" for r in d["rows"] for c in d["choices"]]
        step = max(1, len(labels) // 60)
        ax.set_yticks(range(0, len(labels), step))
        ax.set_yticklabels(labels[::step], fontsize=5)
        ax.set_xlabel("epoch")
        ax.set_title(f"{net.space_name} {g}: softmax(alpha)", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(out / "arch_history.png")
    plt.close(fig)

