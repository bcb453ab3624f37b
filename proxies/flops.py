"""``flops``: forward FLOPs per sample, in millions (MFLOPs).

The compute baseline of NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets and
Benchmarks), whose NASLib tables store it in MFLOPs.

Definition
----------
.. math::
    \\text{flops} = 10^{-6}\\, \\text{ArchGraph.from\\_module}(\\text{model}, x_{1}).\\text{flops},

the FLOP count of our IR for one sample :math:`x_1` (the first image of the batch, ``(1, 3, H, W)``).
The convention is the one of :mod:`nas.ir.ops`, the one NAS-Bench-201 and thop use: one FLOP per
multiply-accumulate of Conv/Linear/MatMul plus one per output element for a bias, the kernel area per
output element of a pooling, one per input element of a global pooling, and nothing for element-wise
ops, activations and normalization.

**This differs from NASLib**, which counts with ``tensorwatch`` and also charges some element-wise
work: on its 725 NB201 CIFAR-10 architectures NASLib's value is 0.1 to 4.0 MFLOPs higher than ours
(median 2.6 % of it, up to 31 % for cells without convolutions), but the two rank the architectures
the same (Spearman 0.9988). Zero edges (NB201's ``none``) cost nothing: the IR removes ``x * 0`` and
what only feeds it.

Shapes: only ``batch.images[:1]``, ``(1, 3, H, W)``, is used; the input resolution changes the count.

Sign convention: **higher is better**, as NASLib uses it.

Cost: an ONNX export of the model (about half a second for an NB201 network). The export runs on a
:func:`working_copy`; an export failure is raised as :class:`~nas.errors.ProxyError` with its cause.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nas.data import Batch
from nas.errors import IRError, ProxyError
from nas.ir import ArchGraph
from proxies.base import PROXIES, finite, model_name, working_copy
from proxies.passes import Passes


class Flops:
    """Forward MFLOPs per sample from the IR (see the module docstring)."""

    name = "flops"
    higher_is_better = True

    def needs(self) -> set[Any]:
        return {"graph"}

    def from_passes(self, passes: Passes) -> float:
        return finite(self.name, passes.model, passes.graph(self.name).flops / 1e6)

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model)
        try:
            graph = ArchGraph.from_module(net, batch.images[:1].clone())
        except IRError as e:
            raise ProxyError(f"proxy {self.name!r} could not build the IR of model {model_name(model)!r}: {e}") from e
        return finite(self.name, model, graph.flops / 1e6)


PROXIES.register("flops")(Flops)
