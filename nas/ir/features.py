"""PyTorch Geometric view of an :class:`~nas.ir.graph.ArchGraph`.

``to_pyg(graph)`` returns a ``torch_geometric.data.Data`` with

* ``x`` -- float32 ``[num_nodes, len(OP_VOCAB) + len(NUMERIC_FEATURES)]``: a one-hot of the node's op
  over :data:`OP_VOCAB`, then the numeric features :data:`NUMERIC_FEATURES`:

  ============== ===============================================================
  ``kernel``     largest kernel side (Conv, pooling), else 0
  ``stride``     largest stride (Conv, pooling), else 0
  ``dilation``   largest dilation (Conv, MaxPool), else 0
  ``groups``     log2 of the group count (Conv), else 0
  ``in_ch``      log1p of input channels / features (Conv, Gemm, BatchNorm), else 0
  ``out_ch``     log1p of output channels / features, else 0
  ``params``     log1p of the node's parameters
  ``flops``      log1p of the node's FLOPs per sample
  ``size``       log1p of the per-sample element count of the first output
  ``zero_in``    number of input slots whose all-zero edge was removed
  ============== ===============================================================

* ``edge_index`` -- int64 ``[2, num_edges]``, producer -> consumer, in node order;
* ``edge_attr`` -- float32 ``[num_edges, 1]``: the consumer's input slot;
* ``op`` -- int64 ``[num_nodes]``: the op's index in :data:`OP_VOCAB`;
* ``num_nodes``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from nas.ir.ops import OPS

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from nas.ir.graph import ArchGraph, Node

#: Op vocabulary of the one-hot, in a fixed order.
OP_VOCAB: tuple[str, ...] = tuple(OPS)

NUMERIC_FEATURES: tuple[str, ...] = (
    "kernel", "stride", "dilation", "groups", "in_ch", "out_ch", "params", "flops", "size", "zero_in",
)


def node_features(node: Node, batch: int) -> list[float]:
    a = node.attrs
    kernel = max(a.get("kernel", (0,)))
    stride = max(a.get("stride", (0,)))
    dil = max(a.get("dilation", (0,)))
    groups = math.log2(a["groups"]) if "groups" in a else 0.0
    in_ch = a.get("in_channels", a.get("in_features", a.get("num_features", 0)))
    out_ch = a.get("out_channels", a.get("out_features", a.get("num_features", 0)))
    size = math.prod(node.out_shapes[0][1:]) if node.out_shapes and node.out_shapes[0] else 0
    return [
        float(kernel), float(stride), float(dil), groups, math.log1p(in_ch), math.log1p(out_ch),
        math.log1p(node.params), math.log1p(node.flops / max(batch, 1)), math.log1p(size),
        float(sum(1 for x in node.inputs if x is None)),
    ]


def to_pyg(graph: ArchGraph) -> Data:
    import torch
    from torch_geometric.data import Data

    index = {n.name: i for i, n in enumerate(graph.nodes)}
    n_ops = len(OP_VOCAB)
    x = np.zeros((len(graph), n_ops + len(NUMERIC_FEATURES)), dtype=np.float32)
    ops = np.zeros(len(graph), dtype=np.int64)
    src, dst, slot = [], [], []
    for i, node in enumerate(graph.nodes):
        k = OP_VOCAB.index(node.op)
        ops[i] = k
        x[i, k] = 1.0
        x[i, n_ops:] = node_features(node, graph.batch_size)
        for s, r in node.refs:
            src.append(index[r.node])
            dst.append(i)
            slot.append(s)
    return Data(
        x=torch.from_numpy(x),
        edge_index=torch.tensor([src, dst], dtype=torch.long).reshape(2, -1),
        edge_attr=torch.tensor(slot, dtype=torch.float32).reshape(-1, 1),
        op=torch.from_numpy(ops),
        num_nodes=len(graph),
    )
