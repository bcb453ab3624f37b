"""`ArchGraph`: the canonical computation graph every architecture is normalized into.

An :class:`ArchGraph` is an immutable DAG of atomic ops (:mod:`nas.ir.ops`) in topological order.
It is built from ONNX by :func:`nas.ir.onnx_import.from_onnx` (``ArchGraph.from_onnx``) and offers
the views ``to_networkx()``, ``to_pyg()``, ``to_torch()``, ``to_text()``, ``summary()`` and
``fingerprint()``.

Operands
--------
A node's ``inputs`` are, slot by slot, one of

* :class:`Ref` -- output ``index`` of the node named ``node`` (a data edge);
* :class:`Const` -- a constant tensor (a non-weight initializer, e.g. a scale or a position embedding);
* ``None`` -- an all-zero tensor whose edge was removed (``Mul`` by the constant 0 and what it feeds).
  Executing the node feeds zeros of the recorded input shape there, which is exact.

Shapes are the static shapes seen by ONNX shape inference, including the batch dimension of the
example the graph was built with. Pure reshapes are not nodes: a consumer reshapes its operand to its
recorded ``in_shapes`` entry, which reproduces the dropped Reshape/Flatten exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.ir.ops import OPS, Shape

if TYPE_CHECKING:
    import networkx as nx
    import onnx
    import torch
    from torch import nn
    from torch_geometric.data import Data


@dataclass(frozen=True)
class Ref:
    """A data operand: output ``index`` of node ``node``."""

    node: str
    index: int = 0


@dataclass(frozen=True, eq=False)
class Const:
    """A constant operand (not a layer weight). ``name`` is its ONNX initializer name."""

    name: str
    value: np.ndarray


Operand = Ref | Const | None


@dataclass(frozen=True, eq=False)
class Node:
    """One atomic op.

    ``attrs`` hold the canonical attributes (see :mod:`nas.ir.onnx_import` for each op),
    ``weights`` the learnable tensors by role (``weight``, ``bias``, and for BatchNorm also
    ``running_mean``/``running_var``), ``weight_names`` the ONNX initializer each came from (nodes
    sharing an initializer share the parameter), ``params`` and ``flops`` the counts of
    :mod:`nas.ir.ops` for this node alone.
    """

    name: str
    op: str
    attrs: Mapping[str, Any]
    inputs: tuple[Operand, ...]
    in_shapes: tuple[Shape | None, ...]
    out_shapes: tuple[Shape, ...]
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)
    weight_names: Mapping[str, str] = field(default_factory=dict)
    params: int = 0
    flops: int = 0

    @property
    def refs(self) -> list[tuple[int, Ref]]:
        """``(slot, Ref)`` for every data edge into this node."""
        return [(i, x) for i, x in enumerate(self.inputs) if isinstance(x, Ref)]

    def label(self) -> str:
        """A name-free description of the op: type, attributes and per-sample output shapes.

        Used by the fingerprint; two nodes with equal labels compute the same kind of function.
        """
        # constant operands: their shape, and their value when scalar (x**2 is not x**3)
        consts = [
            [list(c.value.shape), c.value.item() if c.value.size == 1 else None]
            for c in self.inputs
            if isinstance(c, Const)
        ]
        zeros = [i for i, x in enumerate(self.inputs) if x is None]
        payload = [
            self.op,
            sorted((k, _jsonable(v)) for k, v in self.attrs.items()),
            [list(s[1:]) for s in self.out_shapes],
            consts,
            zeros,
        ]
        return json.dumps(payload, separators=(",", ":"))


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return v


class ArchGraph:
    """An immutable computation graph of canonical atomic ops, in topological order."""

    def __init__(
        self,
        nodes: list[Node],
        outputs: list[Operand],
        output_shapes: list[Shape],
        *,
        name: str = "graph",
        has_weights: bool = True,
    ) -> None:
        self._nodes: tuple[Node, ...] = tuple(nodes)
        self._by_name = {n.name: n for n in self._nodes}
        self.outputs: tuple[Operand, ...] = tuple(outputs)
        self.output_shapes: tuple[Shape, ...] = tuple(output_shapes)
        self.name = name
        #: False for structure-only graphs (weights declared with shapes but no values)
        self.has_weights = has_weights

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_onnx(
        cls,
        model: str | Path | bytes | onnx.ModelProto,
        input_shapes: Mapping[str, Shape] | Shape | None = None,
    ) -> ArchGraph:
        """Build from an ONNX model (path, bytes or ``ModelProto``). See :func:`nas.ir.onnx_import.from_onnx`."""
        from nas.ir.onnx_import import from_onnx

        return from_onnx(model, input_shapes=input_shapes)

    @classmethod
    def from_module(cls, module: nn.Module, example_input: torch.Tensor | tuple[torch.Tensor, ...]) -> ArchGraph:
        """Build from a PyTorch module via the TorchScript ONNX exporter (:func:`nas.ir.torch_export.export_onnx`)."""
        from nas.ir.torch_export import export_onnx

        return cls.from_onnx(export_onnx(module, example_input))

    # ------------------------------------------------------------------ access
    @property
    def nodes(self) -> tuple[Node, ...]:
        return self._nodes

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    def __repr__(self) -> str:
        return (
            f"ArchGraph({self.name!r}, nodes={len(self)}, params={self.params}, "
            f"flops={self.flops}, fingerprint={self.fingerprint()[:12]})"
        )

    @property
    def inputs(self) -> tuple[Node, ...]:
        """The graph's input nodes (op ``Input``)."""
        return tuple(n for n in self._nodes if n.op == "Input")

    @property
    def batch_size(self) -> int:
        """Leading dimension of the first input: the batch the shapes were recorded with."""
        shape = self.inputs[0].out_shapes[0]
        return shape[0] if shape else 1

    @cached_property
    def params(self) -> int:
        """Learnable parameters (see :mod:`nas.ir.ops`); a tensor shared by several nodes counts once."""
        seen: set[str] = set()
        total = 0
        for n in self._nodes:
            total += n.params
            for role in OPS[n.op].weight_roles:
                name = n.weight_names.get(role)
                if name is not None and role in n.weights:
                    if name in seen:
                        total -= int(n.weights[role].size)
                    seen.add(name)
            for c in n.inputs:
                if isinstance(c, Const) and c.value.size > 1:
                    if c.name in seen:
                        total -= int(c.value.size)
                    seen.add(c.name)
        return total

    @cached_property
    def flops(self) -> int:
        """FLOPs per sample (the recorded shapes' count divided by the batch size)."""
        return sum(n.flops for n in self._nodes) // max(self.batch_size, 1)

    @cached_property
    def consumers(self) -> dict[str, list[tuple[str, int]]]:
        """Node name -> list of ``(consumer name, slot)``."""
        out: dict[str, list[tuple[str, int]]] = {n.name: [] for n in self._nodes}
        for n in self._nodes:
            for slot, r in n.refs:
                out[r.node].append((n.name, slot))
        return out

    # ------------------------------------------------------------------ views
    def to_networkx(self) -> nx.MultiDiGraph:
        """A ``networkx.MultiDiGraph``: node attrs ``op``, ``attrs``, ``out_shapes``, ``params``, ``flops``;
        edge attrs ``slot`` (consumer input position) and ``index`` (producer output position)."""
        import networkx as nx

        g = nx.MultiDiGraph(name=self.name)
        for n in self._nodes:
            g.add_node(
                n.name, op=n.op, attrs=dict(n.attrs), out_shapes=n.out_shapes, params=n.params, flops=n.flops
            )
        for n in self._nodes:
            for slot, r in n.refs:
                g.add_edge(r.node, n.name, slot=slot, index=r.index)
        return g

    def to_pyg(self) -> Data:
        """A ``torch_geometric.data.Data``; node features are documented in :mod:`nas.ir.features`."""
        from nas.ir.features import to_pyg

        return to_pyg(self)

    def to_torch(self, *, keep_weights: bool = False, seed: int | None = None,
                 canonical_sums: bool = False) -> nn.Module:
        """A trainable ``nn.Module`` computing this graph. See :func:`nas.ir.torch_module.to_torch`."""
        from nas.ir.torch_module import to_torch

        return to_torch(self, keep_weights=keep_weights, seed=seed, canonical_sums=canonical_sums)

    def to_text(self) -> str:
        """One line per node, ``name = Op[attrs](inputs) -> shapes``, for text encoders."""
        index = {n.name: i for i, n in enumerate(self._nodes)}
        lines = []
        for i, n in enumerate(self._nodes):
            args = []
            for x, read in zip(n.inputs, n.in_shapes, strict=True):
                if isinstance(x, Ref):
                    arg = f"%{index[x.node]}" + (f".{x.index}" if x.index else "")
                    if read is not None and read != self._by_name[x.node].out_shapes[x.index]:
                        arg += "@" + "x".join(map(str, read[1:]))  # read through a reshape
                    args.append(arg)
                elif isinstance(x, Const):
                    args.append("const" + "x".join(map(str, x.value.shape)))
                else:
                    args.append("zero")
            attrs = ",".join(f"{k}={_jsonable(v)}" for k, v in sorted(n.attrs.items()))
            shapes = ";".join("x".join(map(str, s[1:])) for s in n.out_shapes)
            lines.append(f"%{i} = {n.op}[{attrs}]({', '.join(args)}) -> {shapes}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """Op histogram, params, FLOPs (per sample), node count, depth and input/output shapes."""
        return {
            "name": self.name,
            "nodes": sum(1 for n in self._nodes if n.op != "Input"),
            "params": self.params,
            "flops": self.flops,
            "depth": self.depth,
            "op_counts": dict(sorted(Counter(n.op for n in self._nodes if n.op != "Input").items())),
            "inputs": {n.name: list(n.out_shapes[0]) for n in self.inputs},
            "outputs": [list(s) for s in self.output_shapes],
            "fingerprint": self.fingerprint(),
        }

    @cached_property
    def depth(self) -> int:
        """Longest path, in compute nodes, from any node without data inputs to an output."""
        longest: dict[str, int] = {}
        for n in self._nodes:
            own = 0 if n.op == "Input" else 1
            longest[n.name] = own + max((longest[r.node] for _, r in n.refs), default=0)
        return max((longest[o.node] for o in self.outputs if isinstance(o, Ref)), default=0)

    def fingerprint(self) -> str:
        """Stable hash of the computation, independent of node names and node order.

        Weisfeiler-Lehman colour refinement on the directed graph: a node's colour starts as its
        :meth:`Node.label` and is refined with the multisets of (slot, colour) of its producers and
        (slot, colour) of its consumers, where the slot is dropped for commutative ops. Refinement
        stops when the colour partition stops growing; the hash covers the sorted colours of every
        round and the output operands. Weights do not enter it.
        """
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        return wl_hash(self)

    # ------------------------------------------------------------------ export
    def save_json(self, path: str | Path) -> None:
        """Write :meth:`summary` as JSON (convenience for scripts)."""
        Path(path).write_text(json.dumps(self.summary(), indent=2))


def _digest(s: str) -> str:
    return hashlib.blake2b(s.encode(), digest_size=16).hexdigest()


def wl_hash(g: ArchGraph) -> str:
    """The fingerprint computation itself (uncached); see :meth:`ArchGraph.fingerprint`."""
    history, colours = _wl(g)
    idx = {n.name: i for i, n in enumerate(g.nodes)}
    outs = [
        f"{colours[idx[o.node]]}:{o.index}" if isinstance(o, Ref) else "zero" for o in g.outputs
    ]
    return _digest(json.dumps([history, outs]))


def wl_colours(g: ArchGraph) -> dict[str, str]:
    """Each node's final Weisfeiler-Lehman colour (by node name): equal for nodes that the refinement
    cannot tell apart, the same in every graph with the same fingerprint, whatever the names and order."""
    _, colours = _wl(g)
    return {n.name: c for n, c in zip(g.nodes, colours, strict=True)}


def _wl(g: ArchGraph) -> tuple[list[list[str]], list[str]]:
    nodes = g.nodes
    idx = {n.name: i for i, n in enumerate(nodes)}
    # edges: (label, other node, producer output index); the label is the consumer's slot (dropped for
    # commutative ops) and the per-sample shape it reads the operand as (a reshape can change broadcasting)
    preds: list[list[tuple[str, int, int]]] = [[] for _ in nodes]
    succs: list[list[tuple[str, int, int]]] = [[] for _ in nodes]
    for j, n in enumerate(nodes):
        commutative = OPS[n.op].commutative
        for slot, r in n.refs:
            read = n.in_shapes[slot]
            s = f"{-1 if commutative else slot}/{list(read[1:]) if read else None}"
            i = idx[r.node]
            preds[j].append((s, i, r.index))
            succs[i].append((s, j, r.index))
    colours = [_digest(n.label()) for n in nodes]
    history = [sorted(colours)]
    n_classes = len(set(colours))
    for _ in range(len(nodes)):
        new = []
        for j in range(len(nodes)):
            p = sorted(f"{s}:{k}:{colours[i]}" for s, i, k in preds[j])
            c = sorted(f"{s}:{k}:{colours[i]}" for s, i, k in succs[j])
            new.append(_digest(colours[j] + "|" + ",".join(p) + "|" + ",".join(c)))
        colours = new
        history.append(sorted(colours))
        k = len(set(colours))
        if k == n_classes:
            break
        n_classes = k
    return history, colours
