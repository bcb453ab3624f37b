"""``zen``: the Zen-score of Zen-NAS.

Lin, Wang, Sun, Chen, Sun, Qian, Li & Jin, "Zen-NAS: A Zero-Shot NAS for High-Performance Image
Recognition", ICCV 2021, as its reference code computes it (``idstcv/ZenNAS``,
``ZeroShotProxy/compute_zen_score.py``) and NASLib copies it (``measures/zen.py``).

Definition
----------
On a working copy whose weights are redrawn from a standard Gaussian (Conv and Linear weights
:math:`\\sim \\mathcal{N}(0, 1)`, their biases 0; BatchNorm and GroupNorm scales 1 and shifts 0), with
Gaussian inputs :math:`x, \\epsilon \\sim \\mathcal{N}(0, I)` of the batch's shape and :math:`F(\\cdot)` the
feature map that enters the network's last global pooling (:math:`(B, C, H', W')`),

.. math::
    \\Delta = \\frac{1}{B} \\sum_b \\left\\lVert F(x)_b - F(x + \\gamma \\epsilon)_b \\right\\rVert_1,
    \\qquad
    \\text{zen} = \\log \\Delta + \\sum_{\\text{BN } m} \\log \\sqrt{\\operatorname{mean}_c\\, \\sigma^2_{m,c}},

with :math:`\\gamma = 10^{-2}` (``mixup_gamma``) and :math:`\\sigma^2_{m}` the BatchNorm running variances
after the two forward passes. :math:`\\Delta` measures how much the pre-pooling features move under a
small input perturbation (the expressivity of the network, a finite-difference gradient norm); the
BatchNorm term puts back the scale each BatchNorm divided out.

Shapes: only ``batch.images.shape`` ``(B, C_in, H, W)`` is used; the images themselves are not (the
inputs are Gaussian, as in the reference). The feature map may have any rank of at least 2; the
:math:`L_1` norm runs over all its non-batch dimensions.

Sign convention: the reference's value, **higher is better**.

Choices that change the value (as in the reference unless stated):

* **Seeded.** A private CPU ``torch.Generator`` seeded with ``seed`` (default ``0``) draws, in this
  order, the weights (module order of ``model.modules()``), then :math:`x`, then :math:`\\epsilon`, all
  with ``torch.randn``; the global RNG is not touched, so the same seed gives the same draws in a fresh
  process and on any device. The reference uses the global RNG.
* The model runs in **train mode**: BatchNorm normalizes with batch statistics and updates its running
  variance twice (once per pass, with the layer's own momentum), from the values the model carried.
* The BatchNorm term sums over every ``BatchNorm1d/2d/3d`` with running statistics (the reference:
  ``BatchNorm2d``, the same set for 2-D CNNs), whether or not it lies before the pooling. The
  Gaussian redraw covers ``Conv1d/2d/3d`` and ``Linear`` (the reference: ``Conv2d`` and ``Linear``).
* ``repeat`` (default 1, NASLib's value; the reference CLI uses 32) averages that many draws; the
  draws follow one another from the one generator, on one working copy, as in the reference.
* **Where the pooling is.** A forward hook records the input of the *last* global pooling that runs:
  an ``nn.AdaptiveAvgPool{1,2,3}d`` / ``nn.AdaptiveMaxPool{1,2,3}d`` / ``nn.AvgPool`` / ``nn.MaxPool``
  module whose output has all spatial sizes 1, or the ``GlobalAvgPool`` / ``GlobalMaxPool`` node of a
  :class:`nas.ir.torch_module.GraphModule`. A model that pools functionally (``x.mean((2, 3))``) has
  nothing to hook and raises :class:`~nas.errors.ProxyError`; running it through the IR first
  (``ArchGraph.from_module(model, x).to_torch(keep_weights=True)``) turns such a mean into a
  ``GlobalAvgPool`` node.

Scope: the Zen-score assumes a plain (single-branch) network whose layers scale linearly with their
input. In multi-branch cells with un-normalized sums (NB201's ``skip_connect`` and ``avg_pool_3x3``
edges) the activations' variance grows cell after cell under the N(0, 1) weights, and the BatchNorm term
then mostly measures that growth: on 40 NB201 CIFAR-10 architectures we found Spearman 0.00 against
validation accuracy. The Zen-NAS authors say the same (applying it to such spaces is "not theoretically
meaningful", idstcv/ZenNAS issue #15). The value is still the reference's.

Degenerate networks: when the features do not depend on the input (an NB201 cell of all ``none``
ops), :math:`\\Delta = 0` and the score is :math:`-\\infty`: :class:`~nas.errors.ProxyError`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from nas.ir.torch_module import GlobalPool
from proxies.base import PROXIES, finite, model_name, working_copy

#: Pooling modules that are global when their output has spatial size 1.
POOL_TYPES: tuple[type[nn.Module], ...] = (
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
)


def gaussian_init(net: nn.Module, generator: torch.Generator) -> None:
    """Redraw ``net``'s weights in place as the Zen-score defines (module order, one generator)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                # drawn on the CPU generator and copied, so the draw is the same on every device
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def _log(v: float) -> float:
    """``log(v)``, with ``log(0) = -inf`` (which :func:`finite` then reports) instead of an exception."""
    return math.log(v) if v > 0 else -math.inf


def _is_global_pool(module: nn.Module) -> bool:
    return isinstance(module, (*POOL_TYPES, GlobalPool))


def pre_pool_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """The input of the last global pooling that runs in ``net(x)`` (``None`` if there is none)."""
    found: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if (
            isinstance(output, torch.Tensor)
            and output.dim() >= 3
            and all(s == 1 for s in output.shape[2:])
            and inputs
            and isinstance(inputs[0], torch.Tensor)
        ):
            found.append(inputs[0])

    handles = [m.register_forward_hook(hook) for m in net.modules() if _is_global_pool(m)]
    try:
        net(x)
    finally:
        for h in handles:
            h.remove()
    return found[-1] if found else None


class ZenScore:
    """The Zen-NAS expressivity score (see the module docstring).

    Args:
        seed: seed of the private generator for the weights and the Gaussian inputs.
        mixup_gamma: the size :math:`\\gamma` of the input perturbation.
        repeat: how many draws to average.
    """

    name = "zen"
    higher_is_better = True

    def __init__(self, seed: int = 0, mixup_gamma: float = 1e-2, repeat: int = 1) -> None:
        if repeat < 1:
            raise ProxyError(f"proxy 'zen': repeat must be at least 1; got {repeat}")
        if not mixup_gamma > 0:
            raise ProxyError(f"proxy 'zen': mixup_gamma must be positive; got {mixup_gamma}")
        self.seed = seed
        self.mixup_gamma = mixup_gamma
        self.repeat = repeat

    def score(self, model: nn.Module, batch: Batch) -> float:
        gen = torch.Generator().manual_seed(self.seed)
        net = working_copy(model)
        shape = tuple(batch.images.shape)
        device = batch.images.device
        values: list[float] = []
        with torch.no_grad():
            for _ in range(self.repeat):
                gaussian_init(net, gen)
                x = torch.randn(shape, generator=gen).to(device)  # (B, C_in, H, W)
                eps = torch.randn(shape, generator=gen).to(device)  # (B, C_in, H, W)
                f_clean = pre_pool_features(net, x)
                f_mixed = pre_pool_features(net, x + self.mixup_gamma * eps)
                if f_clean is None or f_mixed is None:
                    raise ProxyError(
                        f"proxy {self.name!r} needs the feature map before global pooling, but no global "
                        f"pooling module ran in model {model_name(model)!r} (hooked: AdaptiveAvg/MaxPool, "
                        "Avg/MaxPool with a 1x1 output, the IR's GlobalAvgPool); pool with a module, or "
                        "convert the model with ArchGraph.from_module(...).to_torch(keep_weights=True)"
                    )
                diff = (f_clean - f_mixed).abs().flatten(1).sum(dim=1).mean()  # (B, ...) -> (B,) -> ()
                log_bn = 0.0
                for m in net.modules():
                    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) and m.running_var is not None:
                        log_bn += 0.5 * _log(float(m.running_var.to(torch.float64).mean()))
                values.append(_log(float(diff)) + log_bn)
        return finite(self.name, model, sum(values) / len(values))


PROXIES.register("zen")(ZenScore)
