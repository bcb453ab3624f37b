"""GraSP: gradient signal preservation, through a Hessian-gradient product at initialization.

Wang et al., "Picking Winning Tickets Before Training by Preserving Gradient Flow", ICLR 2020;
summed into a zero-cost NAS proxy by Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021, and NAS-Bench-Suite-Zero.

Score: ``sum -theta * (H g)`` over Conv/Linear weights (a signed sum), ``g`` and ``H`` the gradient
and Hessian of the mean cross-entropy on a ``(B, C, H, W)`` batch. Higher is better, as NASLib
orients it. See :class:`Grasp` for every choice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES, finite, model_name, trainable_weights, working_copy

__all__ = ["Grasp"]


class Grasp:
    r"""GraSP saliency summed over all Conv and Linear weights (NASLib's ``grasp`` measure).

    With :math:`\mathcal{L}` the mean cross-entropy on the batch, :math:`\theta` the concatenated
    Conv/Linear weights (not biases), :math:`g = \partial\mathcal{L}/\partial\theta` and
    :math:`H = \partial^2\mathcal{L}/\partial\theta^2` (restricted to those weights),

    .. math::
        \text{grasp} = \sum_{l} \sum_{i} -\theta_{l,i} \, (H g)_{l,i}, \qquad
        H g = \frac{\partial}{\partial\theta}\left( \operatorname{sg}(g)^\top
        \frac{\partial \mathcal{L}}{\partial\theta} \right)

    where :math:`\operatorname{sg}` stops the gradient, so :math:`Hg` is one double-backward
    Hessian-vector product, not a materialized Hessian.

    Shapes: ``batch.images`` ``(B, C, H, W)`` and ``batch.labels`` ``(B,)``; the network must return
    logits ``(B, num_classes)``.

    Choices that change rankings, as in the reference:

    * **Sign**: the per-weight score is :math:`-\theta \odot Hg`, the GraSP paper's score, and it is
      summed *with* its sign (no absolute value), so the total can be negative. NASLib keeps this
      sign because accuracy correlates positively with it, so ``higher_is_better = True``.
    * Temperature 1 (the logits are not scaled), one iteration, mean cross-entropy over the whole
      batch, BatchNorm in train mode.
    * :math:`g` and :math:`Hg` come from the same batch. The reference runs two identical forward
      passes for them; here one pass serves both (identical values for a network without
      stochastic layers, and half the forward cost).

    The score is a signed sum with much cancellation, so it depends far more on the weight
    initialization and the batch than the other gradient proxies do: two draws of both rank the
    same architectures only moderately alike, and so do NASLib's own scores across datasets.

    The model is not mutated (a deep copy in train mode is used); a non-finite score raises
    :class:`~nas.errors.ProxyError`.
    """

    name = "grasp"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model)
        weights = trainable_weights(self.name, net)
        device = weights[0].device
        x = batch.images.to(device=device, dtype=weights[0].dtype)  # (B, C, H, W)
        y = batch.labels.to(device)  # (B,)
        loss = F.cross_entropy(net(x), y)
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        # g^T dL/dtheta with g held constant: its gradient is H g.
        z = torch.zeros((), dtype=weights[0].dtype, device=device)
        for g in grads:
            if g is not None:
                z = z + (g.detach() * g).sum()
        total = torch.zeros((), dtype=torch.float64, device=device)
        if z.requires_grad:  # otherwise the loss is linear in every weight and H g = 0
            try:
                hg = torch.autograd.grad(z, weights, allow_unused=True)
            except RuntimeError as e:  # e.g. "derivative for aten::hardsigmoid_backward is not implemented"
                if "derivative for" not in str(e):
                    raise
                raise ProxyError(
                    f"proxy {self.name!r} needs second derivatives (a Hessian-vector product), which PyTorch "
                    f"does not have for an op of model {model_name(model)!r}: {e}"
                ) from e
            for w, h in zip(weights, hg, strict=True):
                if h is not None:
                    total = total + (-w.detach() * h).sum(dtype=torch.float64)
        return finite(self.name, model, total)


PROXIES.register("grasp")(Grasp)
