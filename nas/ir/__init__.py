"""The graph IR: every architecture becomes an :class:`ArchGraph` of canonical atomic ops.

Depends on nothing else of this project but :mod:`nas.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.ir.graph import ArchGraph, Const, Node, Ref
from nas.ir.onnx_import import from_onnx
from nas.ir.ops import OPS

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["OPS", "ArchGraph", "Const", "Node", "Ref", "from_module", "from_onnx"]


def from_module(module: nn.Module, example_input: torch.Tensor | tuple[torch.Tensor, ...]) -> ArchGraph:
    """Build an :class:`ArchGraph` from a PyTorch module (see :meth:`ArchGraph.from_module`)."""
    return ArchGraph.from_module(module, example_input)
