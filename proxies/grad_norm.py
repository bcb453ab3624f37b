"""Gradient norm: the sum of the per-layer L2 norms of the loss gradient at initialization.

Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021; also in
NAS-Bench-Suite-Zero.

Score: ``sum_l ||dL/dtheta_l||_2`` over Conv/Linear weights, ``L`` the mean cross-entropy on a
``(B, C, H, W)`` batch; one Frobenius norm per layer, then a plain sum. Higher is better. See
:class:`GradNorm` for every choice.
"""

from __future__ import annotations

import torch
from torch import nn

from proxies.base import PROXIES, finite
from proxies.passes import LossGradientProxy

__all__ = ["GradNorm"]


class GradNorm(LossGradientProxy):
    r"""Sum over Conv and Linear layers of the Euclidean norm of each weight gradient
    (NASLib's ``grad_norm`` measure).

    With :math:`\mathcal{L}` the mean cross-entropy of the network on the batch,

    .. math::
        \text{grad\_norm} = \sum_{l} \left\| \frac{\partial \mathcal{L}}{\partial \theta_l} \right\|_2

    where :math:`\theta_l` is the weight of Conv/Linear layer :math:`l` (not its bias) and the norm
    is the Frobenius norm of the whole weight tensor -- one norm per layer, then a plain sum (not
    the norm of the concatenated gradient).

    Shapes: ``batch.images`` ``(B, C, H, W)`` and ``batch.labels`` ``(B,)``; the network must return
    logits ``(B, num_classes)``.

    Choices that change rankings, as in the reference: cross-entropy with mean reduction over the
    whole batch in one pass; BatchNorm in train mode (batch statistics); per-layer norms summed.

    Sign: non-negative, and higher means better (``higher_is_better = True``), as in the paper. The
    model is not mutated (a deep copy in train mode is used); a non-finite score raises
    :class:`~nas.errors.ProxyError`.
    """

    name = "grad_norm"
    higher_is_better = True

    def from_pairs(self, model: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor | None]]) -> float:
        total = torch.zeros((), dtype=torch.float64, device=pairs[0][0].device)
        for _, g in pairs:
            if g is not None:  # None: the layer does not reach the loss, its gradient is 0
                total = total + g.norm().to(torch.float64)
        return finite(self.name, model, total)


PROXIES.register("grad_norm")(GradNorm)
