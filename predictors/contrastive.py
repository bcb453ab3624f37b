"""Contrastive pretraining of a graph encoder: computation-preserving views and the NT-Xent loss.

GENNAPE (Mills et al., "GENNAPE: Towards Generalized Neural Architecture Performance Estimators",
AAAI 2023) pretrains its graph encoder with contrastive learning on unlabelled computation graphs so
that different networks land apart in the embedding space, before fuzzy clustering and the predictor
heads. This module gives the two ingredients, written for the :class:`~nas.ir.ArchGraph` IR.

Views (:func:`augment`)
-----------------------
A positive pair is two views of one network. The views here are **rewrites that keep the network's
function exactly**, with the same parameters and the same FLOPs (:mod:`nas.ir.ops` counts 0 FLOPs
for element-wise ops), so the encoder is never asked to match two different computations:

* ``split_sum``: an n-ary ``Add`` of ``k >= 3`` same-shape data operands becomes a random binary tree
  of ``Add`` nodes (addition is associative and commutative);
* ``split_concat``: a ``Concat`` of ``k >= 3`` data operands becomes a concat of a concat of a
  contiguous run of them (concatenation along one axis is associative);
* ``double_relu``: a ``Relu`` gets a second ``Relu`` after it (``relu`` is idempotent).

The IR's importer writes every sum as one flat ``Add`` (:mod:`nas.ir.onnx_import`), and would fold a
split sum back, so a view is a different graph of the same function that a real input never is.
Honest consequences: the views are weak (a view differs from its graph in a few nodes per
cell), so the contrastive objective mostly acts as GENNAPE's *separation* objective, spreading
distinct architectures apart, rather than teaching invariances that matter at prediction time. What
common graph augmentations do (dropping nodes or edges, masking ops) changes the function, and is not
used. ``jitter`` optionally adds Gaussian noise to the non-one-hot node features of a view; that one does
**not** preserve the computation and is off by default.

Loss (:func:`nt_xent`)
----------------------
The normalized temperature-scaled cross entropy of SimCLR (Chen et al., "A Simple Framework for
Contrastive Learning of Visual Representations", ICML 2020). For ``B`` pairs, ``z`` ``(2B, d)`` holds
the first views in rows ``0..B-1`` and the second views in rows ``B..2B-1``; with
``s_ij = cos(z_i, z_j) / tau`` and ``p(i)`` the row of ``i``'s partner,

.. math::
    \\mathcal{L} = \\frac{1}{2B} \\sum_{i=1}^{2B} -\\log
        \\frac{\\exp(s_{i,p(i)})}{\\sum_{k \\ne i} \\exp(s_{ik})}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from nas.errors import PredictorError
from nas.ir import ArchGraph
from nas.ir.features import OP_VOCAB
from nas.ir.graph import Node, Operand, Ref
from nas.ir.ops import count_flops
from predictors.encoders import GraphEncoder, collate, graph_data

log = logging.getLogger(__name__)

AUGMENTATIONS: tuple[str, ...] = ("split_sum", "split_concat", "double_relu")


# --------------------------------------------------------------------------- views


def augment(graph: ArchGraph, rng: np.random.Generator, *, p: float = 0.5,
            kinds: Sequence[str] = AUGMENTATIONS) -> ArchGraph:
    """A view of ``graph`` computing the same function: each eligible node is rewritten with probability
    ``p`` by the first of ``kinds`` that applies to it (see the module docstring)."""
    unknown = sorted(set(kinds) - set(AUGMENTATIONS))
    if unknown:
        raise PredictorError(f"unknown augmentations {unknown}; valid: {', '.join(AUGMENTATIONS)}")
    taken = {n.name for n in graph.nodes}
    moved: dict[str, str] = {}  # node name -> the node that now carries its value (after double_relu)
    nodes: list[Node] = []

    def fresh(base: str) -> str:
        k = 0
        while f"{base}/aug{k}" in taken:
            k += 1
        taken.add(f"{base}/aug{k}")
        return f"{base}/aug{k}"

    for node in graph.nodes:
        inputs = tuple(Ref(moved.get(x.node, x.node), x.index) if isinstance(x, Ref) else x for x in node.inputs)
        node = _replace(node, inputs=inputs)
        out = node.out_shapes[0] if node.out_shapes else None
        refs = [i for i, x in enumerate(node.inputs) if isinstance(x, Ref)]
        if ("split_sum" in kinds and node.op == "Add" and len(refs) >= 3
                and all(node.in_shapes[i] == out for i in refs) and rng.random() < p):
            nodes.extend(_split_sum(node, refs, rng, fresh))
        elif ("split_concat" in kinds and node.op == "Concat" and len(node.inputs) >= 3
              and len(refs) == len(node.inputs) and rng.random() < p):
            nodes.extend(_split_concat(node, rng, fresh))
        elif "double_relu" in kinds and node.op == "Relu" and len(node.out_shapes) == 1 and rng.random() < p:
            twin = Node(fresh(node.name), "Relu", {}, (Ref(node.name, 0),), (node.out_shapes[0],), node.out_shapes)
            nodes.extend([node, twin])
            moved[node.name] = twin.name
        else:
            nodes.append(node)
    outputs: list[Operand] = [Ref(moved.get(o.node, o.node), o.index) if isinstance(o, Ref) else o
                              for o in graph.outputs]
    return ArchGraph(nodes, outputs, list(graph.output_shapes), name=graph.name, has_weights=graph.has_weights)


def _replace(node: Node, **changes: object) -> Node:
    fields = {k: getattr(node, k) for k in ("name", "op", "attrs", "inputs", "in_shapes", "out_shapes",
                                             "weights", "weight_names", "params", "flops")}
    fields.update(changes)
    return Node(**fields)


def _split_sum(node: Node, refs: list[int], rng: np.random.Generator, fresh: Callable[[str], str]) -> list[Node]:
    out = node.out_shapes[0]
    terms: list[Operand] = [node.inputs[i] for i in rng.permutation(refs)]
    new: list[Node] = []
    while len(terms) > 2:  # join a random adjacent pair until two terms are left for the node itself
        i = int(rng.integers(len(terms) - 1))
        inner = Node(fresh(node.name), "Add", {}, (terms[i], terms[i + 1]), (out, out), (out,),
                     flops=count_flops("Add", {}, (out, out), (out,)))
        new.append(inner)
        terms[i:i + 2] = [Ref(inner.name, 0)]
    others = [i for i in range(len(node.inputs)) if i not in refs]  # constants and removed zero edges stay
    inputs = tuple(terms) + tuple(node.inputs[i] for i in others)
    shapes = (out, out, *tuple(node.in_shapes[i] for i in others))
    new.append(_replace(node, inputs=inputs, in_shapes=shapes, flops=count_flops("Add", node.attrs, shapes, (out,))))
    return new


def _split_concat(node: Node, rng: np.random.Generator, fresh: Callable[[str], str]) -> list[Node]:
    axis = int(node.attrs["axis"])
    k = len(node.inputs)
    start = int(rng.integers(k - 1))
    stop = int(rng.integers(start + 2, k + 1))  # a run of at least 2 operands, not all of them
    if stop - start == k:
        stop -= 1
    run = node.in_shapes[start:stop]
    sizes = [s for s in run if s is not None]
    if len(sizes) != len(run):
        return [node]
    inner_shape = list(sizes[0])
    inner_shape[axis] = sum(s[axis] for s in sizes)
    shape = tuple(inner_shape)
    inner = Node(fresh(node.name), "Concat", dict(node.attrs), node.inputs[start:stop], run, (shape,),
                 flops=count_flops("Concat", node.attrs, run, (shape,)))
    inputs = (*node.inputs[:start], Ref(inner.name, 0), *node.inputs[stop:])
    shapes = (*node.in_shapes[:start], shape, *node.in_shapes[stop:])
    return [inner, _replace(node, inputs=inputs, in_shapes=shapes)]


# --------------------------------------------------------------------------- loss


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.1) -> Tensor:
    """SimCLR's NT-Xent loss of ``B`` positive pairs ``(z1[i], z2[i])``, each ``(B, d)`` (module docstring)."""
    if z1.shape != z2.shape or z1.dim() != 2 or z1.shape[0] < 2:
        raise PredictorError(f"nt_xent needs two (B, d) tensors with B >= 2; got {tuple(z1.shape)}, {tuple(z2.shape)}")
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)  # (2B, d)
    sim = z @ z.T / temperature  # (2B, 2B)
    n = z.shape[0]
    sim = sim.masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), float("-inf"))  # k != i
    b = z1.shape[0]
    partner = torch.cat([torch.arange(b, n), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, partner)


# --------------------------------------------------------------------------- pretraining


@dataclass(frozen=True)
class PretrainSettings:
    """What :func:`pretrain` needs (GENNAPE's config passes its own values)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    temperature: float = 0.1
    views: int = 2
    p: float = 0.5
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 2 or self.views < 1:
            raise PredictorError(f"pretraining needs epochs >= 0, batch_size >= 2 and views >= 1 (a graph and one "
                                 f"view make a positive pair); got {self.epochs}, {self.batch_size}, {self.views}")
        if not (self.temperature > 0 and self.lr >= 0 and 0 <= self.p <= 1 and self.jitter >= 0):
            raise PredictorError(f"pretraining needs temperature > 0, lr >= 0, 0 <= p <= 1 and jitter >= 0; got "
                                 f"{self.temperature}, {self.lr}, {self.p}, {self.jitter}")


def pretrain(
    encoder: GraphEncoder, graphs: Sequence[ArchGraph], settings: PretrainSettings, rng: np.random.Generator,
    generator: torch.Generator, *, data: Sequence[Data] | None = None,
) -> list[float]:
    """Train ``encoder`` in place with NT-Xent on views of ``graphs``; the mean loss per epoch.

    Each graph gets ``settings.views`` augmented views, built once; every step pairs two distinct
    members of {graph, its views} per graph. A projection MLP (SimCLR's ``g``) sits between the
    embedding and the loss and is discarded afterwards. ``data`` may hold the graphs' precomputed
    :func:`~predictors.encoders.graph_data`.
    """
    if len(graphs) < 2:
        raise PredictorError(f"contrastive pretraining needs at least 2 graphs; got {len(graphs)}")
    originals = list(data) if data is not None else [graph_data(g) for g in graphs]
    if len(originals) != len(graphs):
        raise PredictorError(f"data holds {len(originals)} encoded graphs for {len(graphs)} graphs")
    variants = [[d] + [graph_data(augment(g, rng, p=settings.p)) for _ in range(settings.views)]
                for g, d in zip(graphs, originals, strict=True)]
    d = encoder.embed_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))  # not the caller's global RNG
        projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
    params = list(encoder.parameters()) + list(projection.parameters())
    opt = torch.optim.Adam(params, lr=settings.lr)
    encoder.train()
    losses: list[float] = []
    n = len(graphs)
    bs = max(2, min(settings.batch_size, n))
    for epoch in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        total, steps = 0.0, 0
        for start in range(0, n, bs):
            idx = order[start:start + bs].tolist()
            if len(idx) < 2:
                continue  # NT-Xent needs a negative
            first, second = [], []
            for i in idx:
                pick = torch.randperm(len(variants[i]), generator=generator)[:2].tolist()
                first.append(_jittered(variants[i][pick[0]], settings.jitter, generator))
                second.append(_jittered(variants[i][pick[1]], settings.jitter, generator))
            z1 = projection(encoder(collate(first)))
            z2 = projection(encoder(collate(second)))
            loss = nt_xent(z1, z2, settings.temperature)
            if not torch.isfinite(loss):
                raise PredictorError(f"contrastive pretraining diverged in epoch {epoch + 1}: NT-Xent is "
                                     f"{loss.item()}; lower the learning rate ({settings.lr}) or raise the "
                                     f"temperature ({settings.temperature})")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        losses.append(total / max(steps, 1))
        log.debug("contrastive epoch %d: NT-Xent %.4f", epoch, losses[-1])
    encoder.eval()
    return losses


def _jittered(data: Data, jitter: float, generator: torch.Generator) -> Data:
    if jitter <= 0:
        return data
    out = data.clone()
    noise = torch.randn(out.x[:, len(OP_VOCAB):].shape, generator=generator) * jitter
    out.x = torch.cat([out.x[:, :len(OP_VOCAB)], out.x[:, len(OP_VOCAB):] + noise], dim=1)
    return out
