"""``params``: the parameter count, in millions.

The size baseline of NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets and
Benchmarks), whose NASLib tables store it in millions.

Definition
----------
.. math::
    \\text{params} = 10^{-6} \\sum_{p \\in \\text{model.parameters()}} \\text{numel}(p).

Every learnable tensor counts: Conv/Linear weights and biases, normalization scales and shifts, and
any other ``nn.Parameter``; buffers (BatchNorm running statistics) do not. A tensor shared by several
layers counts once (``parameters()`` deduplicates). Frozen parameters (``requires_grad=False``) still
count: they are part of the architecture. For the layers the IR knows this is also
:attr:`nas.ir.ArchGraph.params` of the exported module. On NB201 it reproduces NASLib's values
exactly for all 725 architectures of its CIFAR-10 table (0.073306 M for cells without convolutions).

Shapes: the batch is not used.

Sign convention: **higher is better**, as NASLib uses it (bigger NB201 networks train to higher
accuracy). A model without parameters scores 0.0, its true value.
"""

from __future__ import annotations

from torch import nn

from nas.data import Batch
from proxies.base import PROXIES, finite


class Params:
    """Number of parameters in millions (see the module docstring)."""

    name = "params"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch) -> float:
        count = sum(p.numel() for p in model.parameters())
        return finite(self.name, model, count / 1e6)


PROXIES.register("params")(Params)
