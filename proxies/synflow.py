"""SynFlow: the synaptic flow through the network with all weights made positive.

Tanaka et al., "Pruning neural networks without any data by iteratively conserving synaptic
flow", NeurIPS 2020; used as a zero-cost NAS proxy by Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021, and NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 D&B).

Score: ``sum |theta * dR/dtheta|`` over Conv/Linear weights, with all weights made positive,
BatchNorm bypassed, float64, and ``R`` the summed output for a ``(1, C, H, W)`` input of ones.
Higher is better. See :class:`SynFlow` for every choice.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from nas.data import Batch
from proxies.base import PROXIES, finite, require_weights, working_copy

__all__ = ["SynFlow"]

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _pass_through(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    # A forward hook that returns a value replaces the module's output: BatchNorm becomes identity.
    return args[0]


class SynFlow:
    r"""SynFlow, as NASLib and zero-cost-nas compute it (the ``synflow`` measure, ``bn=False``).

    Every floating-point parameter and buffer is replaced by its absolute value, BatchNorm layers
    are bypassed, an all-ones input :math:`\mathbb{1}` is pushed through, and with
    :math:`R = \sum f(\mathbb{1})` (the sum of all outputs)

    .. math::
        \text{synflow} = \sum_{l} \sum_{i} \left| \theta_{l,i} \,
        \frac{\partial R}{\partial \theta_{l,i}} \right|

    where :math:`l` runs over the Conv and Linear layers and :math:`\theta_l` is the layer's weight
    (biases are made positive too but not scored).

    Shapes: ``batch.images`` is ``(B, C, H, W)``; only ``C, H, W`` are used, the input is
    ``ones(1, C, H, W)``. The labels are not used, so the proxy is data-free.

    Choices that change rankings, all as in the reference implementations:

    * **BatchNorm is bypassed** (identity), which NASLib's and zero-cost-nas's default ``synflow``
      does on every network, NAS-Bench-201 included (their ``synflow_bn`` variant keeps it).
    * **Double precision**: the model copy and the input are float64; the score reaches about 1e50 on
      NAS-Bench-201, beyond the range of float32.
    * **Batch size 1**, input of ones, and ``R`` is the plain sum of the logits (no loss).
    * The per-weight scores are summed over all Conv/Linear weights into one float.

    NASLib's ``ZeroCost`` predictor reports ``log(synflow)`` (its stored NAS-Bench-Suite-Zero
    values are logs); this proxy returns the sum itself, which ranks identically.

    Sign: the score is non-negative, and higher means better (``higher_is_better = True``), as in the
    paper. The model is not mutated: the work is done on a deep copy. A non-finite score (for
    example a flow that overflows float64) raises :class:`~nas.errors.ProxyError`.
    """

    name = "synflow"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model, dtype=torch.float64)
        layers = require_weights(self.name, net)
        weights = [cast(torch.Tensor, layer.weight).requires_grad_(True) for layer in layers]
        for m in net.modules():
            if isinstance(m, _BATCHNORMS):
                # eval() so a BatchNorm1d on a (1, C) input does not reject the single sample;
                # its output is discarded by the hook either way.
                m.eval()
                m.register_forward_hook(_pass_through)
        with torch.no_grad():
            for t in (*net.parameters(), *net.buffers()):
                if t.is_floating_point():
                    t.abs_()
        device = weights[0].device
        x = torch.ones((1, *batch.images.shape[1:]), dtype=torch.float64, device=device)  # (1, C, H, W)
        out = net(x)
        grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for w, g in zip(weights, grads, strict=True):
            if g is not None:  # None: the layer does not reach the output, so it has no flow
                total = total + (w.detach() * g).abs().sum()
        return finite(self.name, model, total)


PROXIES.register("synflow")(SynFlow)
