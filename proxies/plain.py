"""``plain``: the summed gradient-times-weight saliency.

The "plain" baseline of Abdelfattah, Mehrotra, Dudziak & Lane, "Zero-Cost Proxies for Lightweight
NAS", ICLR 2021 (Mozer & Smolensky's first-order saliency without the absolute value), as
NAS-Bench-Suite-Zero / NASLib compute it (``measures/plain.py``).

Definition
----------
With :math:`\\mathcal{L}` the mean cross-entropy of the network's logits on the batch's labels,

.. math::
    \\text{plain} = \\sum_{l \\in \\text{Conv, Linear}}\\ \\sum_{w \\in W_l}
        \\frac{\\partial \\mathcal{L}}{\\partial w}\\, w,

the first-order change of the loss when every Conv/Linear weight is scaled up by a small factor.
Biases and normalization parameters are left out; a layer the loss does not reach contributes 0.

Shapes: ``batch.images`` ``(B, 3, H, W)``, ``batch.labels`` ``(B,)`` int64 in ``0..C-1``; the model returns
logits ``(B, C)``.

Sign convention: NASLib's raw value, with ``higher_is_better = True`` as NASLib uses every proxy. Be
aware that on NB201 it correlates *negatively* with accuracy (Spearman -0.26 against validation
accuracy in NASLib's own CIFAR-10 table); the orientation is kept so the score stays NASLib's. Its
per-architecture value is dominated by the random initialization: on 40 NB201 architectures our
scores for two initializations of the same networks agree with Spearman 0.08 only (0.32 for two
batches), so no two implementations can agree architecture by architecture.

Choices (as in NASLib): train-mode BatchNorm, one backward pass over the whole batch
(``F.cross_entropy`` with its default mean reduction), layers from :func:`~proxies.base.weighted_layers`
(``Conv1d/2d/3d``, ``Linear``; NASLib's ``Conv2d`` and ``Linear`` for 2-D CNNs). Gradients are taken on a
:func:`working_copy`. A model without Conv/Linear layers raises :class:`~nas.errors.ProxyError`, as do
labels outside ``0..C-1``. Degenerate NB201 cells (all ``none``) score their true value, exactly 0: no
gradient reaches a weight except the classifier's, whose input is zero.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES, finite, model_name, require_weights, working_copy
from proxies.passes import Passes


class Plain:
    """Sum of gradient times weight over Conv/Linear weights (see the module docstring)."""

    name = "plain"
    higher_is_better = True

    def needs(self) -> set[Any]:
        return {"loss_grads"}

    def from_passes(self, passes: Passes) -> float:
        total = 0.0  # a float64 sum over layers
        for weight, grad in passes.loss_grads(self.name):
            if grad is not None:
                total += float((grad * weight.detach()).sum())
        return finite(self.name, passes.model, total)

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model)
        layers = require_weights(self.name, net)
        out = net(batch.images)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise ProxyError(
                f"proxy {self.name!r} needs (B, C) logits; model {model_name(model)!r} returned "
                f"{type(out).__name__} {tuple(out.shape) if isinstance(out, torch.Tensor) else ''}"
            )
        labels = batch.labels
        if labels.numel() > 0 and (int(labels.min()) < 0 or int(labels.max()) >= out.shape[1]):
            raise ProxyError(
                f"proxy {self.name!r}: labels span {int(labels.min())}..{int(labels.max())} but model "
                f"{model_name(model)!r} has {out.shape[1]} outputs"
            )
        loss = F.cross_entropy(out, labels)
        if loss.requires_grad:
            loss.backward()
        total = 0.0  # a float64 sum over layers
        for layer in layers:
            weight = cast(torch.Tensor, layer.weight)  # Conv/Linear weights are always tensors
            if weight.grad is not None:
                total += float((weight.grad * weight.detach()).sum())
        return finite(self.name, model, total)


PROXIES.register("plain")(Plain)
