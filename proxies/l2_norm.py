"""``l2_norm``: the summed L2 norms of the Conv and Linear weights.

A data-free baseline of NAS-Bench-Suite-Zero (Krishnakumar et al., "NAS-Bench-Suite-Zero:
Accelerating Research on Zero Cost Proxies", NeurIPS 2022 Datasets and Benchmarks), as NASLib
computes it (``measures/l2_norm.py``).

Definition
----------
.. math::
    \\text{l2\\_norm} = \\sum_{l \\in \\text{Conv, Linear}} \\lVert W_l \\rVert_F,

the sum over layers of the Frobenius norm of each weight tensor (not the norm of all weights
together). Biases, normalization layers and other parameters are left out.

Shapes: the batch is not used (the score depends only on the weights).

Sign convention: NASLib's value, **higher is better**. At PyTorch's default initialization
(:math:`\\mathcal{U}(\\pm 1/\\sqrt{\\text{fan\\_in}})` up to a constant) each norm is about
:math:`\\sqrt{\\text{fan\\_out}/3}` whatever the kernel size, so the score mostly counts the (wide) Conv
layers: a size proxy whose ties are broken by the initialization (two initializations of 40 NB201
networks rank them with Spearman 0.94).

Choices: the layers are :func:`~proxies.base.weighted_layers` (``Conv1d/2d/3d`` and ``Linear``; NASLib
takes ``Conv2d`` and ``Linear``, the same set for 2-D CNNs), each counted once however often it runs.
The weights are read, never modified, so no working copy is made. A model without Conv or Linear
layers raises :class:`~nas.errors.ProxyError`. Degenerate NB201 cells (all ``none``) get their true,
finite value.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from nas.data import Batch
from proxies.base import PROXIES, finite, require_weights


class L2Norm:
    """Sum of the Frobenius norms of the Conv/Linear weights (see the module docstring)."""

    name = "l2_norm"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch) -> float:
        layers = require_weights(self.name, model)
        with torch.no_grad():  # a float64 sum over layers; Conv/Linear weights are always tensors
            total = sum(float(cast(torch.Tensor, layer.weight).detach().to(torch.float64).norm()) for layer in layers)
        return finite(self.name, model, total)


PROXIES.register("l2_norm")(L2Norm)
