"""SNIP: connection sensitivity of the loss at initialization.

Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019; summed
into a zero-cost NAS proxy by Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021, and NAS-Bench-Suite-Zero.

Score: ``sum |theta * dL/dtheta|`` over Conv/Linear weights, ``L`` the mean cross-entropy on a
``(B, C, H, W)`` batch. Higher is better. See :class:`Snip` for every choice.
"""

from __future__ import annotations

import torch
from torch import nn

from proxies.base import PROXIES, finite
from proxies.passes import LossGradientProxy

__all__ = ["Snip"]


class Snip(LossGradientProxy):
    r"""SNIP saliency summed over all Conv and Linear weights (NASLib's ``snip`` measure).

    With :math:`\mathcal{L}` the mean cross-entropy of the network on the batch,

    .. math::
        \text{snip} = \sum_{l} \sum_{i} \left| \theta_{l,i} \,
        \frac{\partial \mathcal{L}}{\partial \theta_{l,i}} \right|

    where :math:`l` runs over the Conv and Linear layers and :math:`\theta_l` is the layer's weight
    (not its bias). The reference computes :math:`|\partial\mathcal{L}/\partial m|` for a multiplicative
    mask :math:`m = 1` on each weight, which is the same quantity.

    Shapes: ``batch.images`` ``(B, C, H, W)`` and ``batch.labels`` ``(B,)``; the network must return
    logits ``(B, num_classes)``.

    Choices that change rankings, as in the reference: cross-entropy with mean reduction over the
    whole batch in one pass; BatchNorm in train mode (batch statistics); the absolute value is taken
    per weight before summing.

    Sign: non-negative, and higher means better (``higher_is_better = True``), as in the paper. The
    model is not mutated (a deep copy in train mode is used); a non-finite score raises
    :class:`~nas.errors.ProxyError`.
    """

    name = "snip"
    higher_is_better = True

    def from_pairs(self, model: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor | None]]) -> float:
        total = torch.zeros((), dtype=torch.float64, device=pairs[0][0].device)
        for w, g in pairs:
            if g is not None:  # None: the layer does not reach the loss, so its saliency is 0
                total = total + (w.detach() * g).abs().sum(dtype=torch.float64)
        return finite(self.name, model, total)


PROXIES.register("snip")(Snip)
