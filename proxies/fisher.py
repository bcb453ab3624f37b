"""Fisher: the activation-based Fisher information of each channel at initialization.

Theis et al., "Faster gaze prediction with dense networks and Fisher pruning", 2018, and Turner et
al., "BlockSwap: Fisher-guided Block Substitution for Network Compression on a Budget", ICLR 2020;
summed into a zero-cost NAS proxy by Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021, and NAS-Bench-Suite-Zero.

Score: per output channel, half the batch mean of ``(sum_spatial act * dL/dact)^2``, weighted by
the fan-in and summed over Conv/Linear layers. Higher is better. See :class:`Fisher`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from nas.data import Batch
from proxies.base import PROXIES, finite, require_weights, working_copy
from proxies.passes import Passes

__all__ = ["Fisher"]


class Fisher:
    r"""Channel Fisher information summed over Conv and Linear layers (NASLib's ``fisher`` measure).

    For each Conv/Linear layer :math:`l`, let :math:`a` be its output activation (after the bias,
    before anything that follows, e.g. BatchNorm) and :math:`\partial\mathcal{L}/\partial a` the
    gradient of the mean cross-entropy on the batch with respect to it. Per sample :math:`n` and
    output channel :math:`k`,

    .. math::
        g_{nk} = \sum_{s} a_{nks} \frac{\partial \mathcal{L}}{\partial a_{nks}}, \qquad
        \Delta_{lk} = \frac{1}{2N} \sum_{n=1}^{N} g_{nk}^2

    where :math:`s` runs over the spatial positions (none for Linear). The reference spreads each
    channel's :math:`\Delta_{lk}` over every weight of that output channel before summing, so each
    channel counts :math:`n_l` times, :math:`n_l` being the number of weights per output channel
    (``in_channels / groups * kh * kw`` for a conv, ``in_features`` for a Linear):

    .. math::
        \text{fisher} = \sum_{l} n_l \sum_{k} |\Delta_{lk}|

    Shapes: ``batch.images`` ``(B, C, H, W)`` and ``batch.labels`` ``(B,)``; the network must return
    logits ``(B, num_classes)``. Activations are ``(B, K, *spatial)`` for a conv, ``(B, K)`` for a
    Linear.

    Choices that change rankings, as in the reference: the activation is the raw layer output
    (hooked right after the conv/linear, before BatchNorm and ReLU); the gradient is that of the
    *mean* cross-entropy, so it carries the :math:`1/N` factor; the square is taken after the
    spatial sum and averaged over the batch with the factor 1/2; the per-channel values are
    weighted by the fan-in as above; BatchNorm in train mode. A layer whose output does not reach
    the loss scores 0. Two departures that cannot arise on NAS-Bench-201: a layer called several
    times in one forward pass contributes once per call (the reference keeps only its last
    activation), and the activation is copied when it is produced, so an in-place op after the
    layer (``ReLU(inplace=True)``) does not change it (the reference would read the modified tensor).

    Sign: non-negative, and higher means better (``higher_is_better = True``), as in the paper. The
    model is not mutated (a deep copy in train mode is used); a non-finite score raises
    :class:`~nas.errors.ProxyError`.
    """

    name = "fisher"
    higher_is_better = True

    def needs(self) -> set[Any]:
        return {"fisher"}

    def from_passes(self, passes: Passes) -> float:
        return finite(self.name, passes.model, passes.fisher(self.name))

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model)
        layers = require_weights(self.name, net)
        weights = [cast(torch.Tensor, layer.weight).requires_grad_(True) for layer in layers]
        device = weights[0].device
        per_layer = [torch.zeros((), dtype=torch.float64, device=device) for _ in layers]

        def capture(i: int) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
            def on_forward(module: nn.Module, args: tuple[torch.Tensor, ...], act: torch.Tensor) -> None:
                if not act.requires_grad:
                    return
                # A copy: an in-place op after the layer (ReLU(inplace=True)) must not change it.
                saved = act.detach().clone()

                def on_grad(grad: torch.Tensor) -> None:
                    prod = saved * grad  # (N, K, *spatial) or (N, K)
                    g_nk = prod.flatten(2).sum(2) if prod.dim() > 2 else prod  # (N, K)
                    delta_k = 0.5 * g_nk.pow(2).mean(0)  # (K,)
                    per_layer[i] = per_layer[i] + delta_k.abs().sum(dtype=torch.float64)

                act.register_hook(on_grad)

            return on_forward

        for i, layer in enumerate(layers):
            layer.register_forward_hook(capture(i))
        x = batch.images.to(device=device, dtype=weights[0].dtype)  # (B, C, H, W)
        y = batch.labels.to(device)  # (B,)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        total = sum(
            (s * math.prod(w.shape[1:]) for s, w in zip(per_layer, weights, strict=True)),
            torch.zeros((), dtype=torch.float64, device=device),
        )
        return finite(self.name, model, total)


PROXIES.register("fisher")(Fisher)
