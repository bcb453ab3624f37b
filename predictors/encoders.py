"""Graph encoders: an :class:`~nas.ir.ArchGraph` as GNN input, and the GNN that embeds it.

:func:`graph_data` turns a graph into a ``torch_geometric.data.Data`` for message passing in both
directions (a node sees its producers and its consumers):

* ``x``, float32 ``(N, F)`` with ``F = NODE_DIM``: the node features of :mod:`nas.ir.features` (op
  one-hot, kernel, stride, log channels, log params/FLOPs, ...), then the node's position
  (:func:`node_positions`: on an input-to-output path or a dead end, weighted layers before and after);
* ``edge_index``, int64 ``(2, 2E)``: every data edge producer -> consumer, then its reverse;
* ``edge_attr``, float32 ``(2E, EDGE_DIM)``: ``[forward, backward, slot == 0, 1, 2, >= 3]``. The
  consumer's input slot is set to 0 for commutative ops (``Add``, ``Mul``), whose operand order
  carries no meaning, as the IR's fingerprint does.

:func:`global_features` gives the graph-level numbers ``(G,)``: log of params, FLOPs, node count and
depth, which message passing with mean/max pooling cannot count.

:class:`GraphEncoder` is a stack of GINE layers (Hu et al., "Strategies for Pre-training Graph
Neural Networks", ICLR 2020; GIN: Xu et al., ICLR 2019) or GATv2 layers (Brody et al., "How
Attentive are Graph Attention Networks?", ICLR 2022), each with a residual connection and layer
norm, then mean and max pooling per graph and a linear map to the embedding. For GINE, layer ``l``
computes

.. math::
    h_i^{(l+1)} = h_i^{(l)} + \\mathrm{LN}\\Bigl(\\mathrm{ReLU}\\Bigl(\\mathrm{MLP}\\bigl((1 + \\epsilon) h_i^{(l)}
        + \\sum_{j \\to i} \\mathrm{ReLU}(h_j^{(l)} + W e_{ji})\\bigr)\\Bigr)\\Bigr).

Shapes: node features ``(N, F)`` -> ``(N, hidden)`` -> pooled ``(B, 2 * hidden)`` -> embedding
``(B, embed_dim)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GATv2Conv, GINEConv, global_max_pool, global_mean_pool

from nas.errors import PredictorError
from nas.ir import ArchGraph
from nas.ir.features import NUMERIC_FEATURES, OP_VOCAB
from nas.ir.graph import Ref
from nas.ir.ops import OPS

#: Structural node features added to those of :mod:`nas.ir.features` (see :func:`node_positions`).
POSITION_FEATURES: tuple[str, ...] = ("on_path", "layers_before", "layers_after")
NODE_DIM = len(OP_VOCAB) + len(NUMERIC_FEATURES) + len(POSITION_FEATURES)
EDGE_DIM = 6
GLOBAL_FEATURES: tuple[str, ...] = (
    "log_params", "log_flops", "log_nodes", "log_depth", "log_paths", "max_weighted_depth", "min_weighted_depth",
)
#: Ops that count as one layer of "weighted depth" (they hold the learnable transforms).
WEIGHTED_OPS = frozenset({"Conv", "Gemm", "MatMul"})
CONVS: tuple[str, ...] = ("gine", "gatv2")

_COMMUTATIVE = np.array([OPS[op].commutative for op in OP_VOCAB])


def graph_data(graph: ArchGraph) -> Data:
    """The encoder's input for one graph (see the module docstring for the fields and shapes)."""
    d = graph.to_pyg()
    src, dst = d.edge_index[0], d.edge_index[1]
    slot = d.edge_attr[:, 0].long()
    slot = torch.where(torch.from_numpy(_COMMUTATIVE)[d.op[dst]], torch.zeros_like(slot), slot)
    slot_hot = torch.nn.functional.one_hot(slot.clamp(max=3), 4).float()  # (E, 4)
    e = src.numel()
    fwd = torch.cat([torch.ones(e, 1), torch.zeros(e, 1), slot_hot], dim=1)  # (E, EDGE_DIM)
    bwd = torch.cat([torch.zeros(e, 1), torch.ones(e, 1), slot_hot], dim=1)
    return Data(
        x=torch.cat([d.x, torch.from_numpy(node_positions(graph)).float()], dim=1),  # (N, NODE_DIM)
        edge_index=torch.cat([d.edge_index, d.edge_index.flip(0)], dim=1),  # (2, 2E)
        edge_attr=torch.cat([fwd, bwd], dim=0),  # (2E, EDGE_DIM)
        num_nodes=d.num_nodes,
    )


def node_positions(graph: ArchGraph) -> np.ndarray:
    """``(N, len(POSITION_FEATURES))`` float64, per node in graph order: whether it lies on a path from an
    input to an output (a dead end does not: the IR keeps nodes whose result was zeroed), and log1p of the
    most weighted layers (:data:`WEIGHTED_OPS`, the node included) on a path from an input to it and from
    it to an output. Message passing over a few hops cannot see how deep in the network a node sits."""
    nodes = graph.nodes
    index = {n.name: i for i, n in enumerate(nodes)}
    w = np.array([1 if n.op in WEIGHTED_OPS else 0 for n in nodes])
    before = np.full(len(nodes), -1)  # -1: not reachable from an input
    for i, n in enumerate(nodes):  # topological order
        reach = [before[index[r.node]] for _, r in n.refs if before[index[r.node]] >= 0]
        if n.op == "Input":
            before[i] = 0
        elif reach:
            before[i] = w[i] + max(reach)
    after = np.full(len(nodes), -1)  # -1: reaches no output
    for o in graph.outputs:
        if isinstance(o, Ref):
            after[index[o.node]] = w[index[o.node]]
    for i in range(len(nodes) - 1, -1, -1):
        if after[i] < 0:
            continue
        for _, r in nodes[i].refs:
            j = index[r.node]
            after[j] = max(after[j], w[j] + after[i])
    on_path = (before >= 0) & (after >= 0)
    return np.stack([on_path.astype(np.float64), np.log1p(np.maximum(before, 0)), np.log1p(np.maximum(after, 0))],
                    axis=1)


def global_features(graph: ArchGraph) -> np.ndarray:
    """``(len(GLOBAL_FEATURES),)`` float64 (see :data:`GLOBAL_FEATURES`): log1p of params, FLOPs per sample,
    node count and depth; the log of the number of input-to-output paths; and the most and the fewest
    weighted layers (:data:`WEIGHTED_OPS`) on any input-to-output path, log1p. The last three follow
    paths through the DAG: a skip connection shortens the fewest, stacked convolutions lengthen the most.
    """
    log_paths: dict[str, float] = {}
    most: dict[str, int] = {}
    fewest: dict[str, int] = {}
    for n in graph.nodes:  # topological order
        w = 1 if n.op in WEIGHTED_OPS else 0
        if n.op == "Input":
            log_paths[n.name], most[n.name], fewest[n.name] = 0.0, 0, 0
            continue
        preds = [r.node for _, r in n.refs if r.node in log_paths]  # producers reachable from an input
        if not preds:
            continue
        log_paths[n.name] = float(np.logaddexp.reduce([log_paths[p] for p in preds]))
        most[n.name] = w + max(most[p] for p in preds)
        fewest[n.name] = w + min(fewest[p] for p in preds)
    outs = [o.node for o in graph.outputs if isinstance(o, Ref) and o.node in log_paths]
    paths = float(np.logaddexp.reduce([log_paths[o] for o in outs])) if outs else 0.0
    return np.array([math.log1p(graph.params), math.log1p(graph.flops), math.log1p(len(graph)),
                     math.log1p(graph.depth), paths, math.log1p(max((most[o] for o in outs), default=0)),
                     math.log1p(min((fewest[o] for o in outs), default=0))], dtype=np.float64)


def collate(data: Sequence[Data]) -> Batch:
    """One disjoint-union batch of :func:`graph_data` outputs."""
    if not data:
        raise PredictorError("cannot encode an empty list of graphs")
    return Batch.from_data_list(list(data))


class GraphEncoder(nn.Module):
    """GINE or GATv2 message passing, mean+max pooling, linear embedding (see the module docstring)."""

    def __init__(self, hidden: int = 64, layers: int = 4, embed_dim: int = 64, conv: str = "gine",
                 heads: int = 4) -> None:
        super().__init__()
        if conv not in CONVS:
            raise PredictorError(f"unknown conv {conv!r}; valid: {', '.join(CONVS)}")
        if hidden % heads and conv == "gatv2":
            raise PredictorError(f"GATv2 needs hidden ({hidden}) divisible by heads ({heads})")
        self.inp = nn.Linear(NODE_DIM, hidden)
        self.convs = nn.ModuleList()
        for _ in range(layers):
            if conv == "gine":
                mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
                self.convs.append(GINEConv(mlp, train_eps=True, edge_dim=EDGE_DIM))
            else:
                self.convs.append(GATv2Conv(hidden, hidden // heads, heads=heads, edge_dim=EDGE_DIM))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.out = nn.Linear(2 * hidden, embed_dim)
        self.embed_dim = embed_dim

    def forward(self, batch: Batch) -> Tensor:
        """Embeddings ``(B, embed_dim)`` of the ``B`` graphs in ``batch``."""
        h = self.inp(batch.x)  # (N, hidden)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = h + norm(torch.relu(conv(h, batch.edge_index, batch.edge_attr)))
        pooled = torch.cat([global_mean_pool(h, batch.batch, batch.num_graphs),
                            global_max_pool(h, batch.batch, batch.num_graphs)], dim=1)  # (B, 2 * hidden)
        return self.out(pooled)
