"""`ArchGraph` -> trainable ``nn.Module``.

Each node becomes a PyTorch layer of the matching type (``nn.Conv2d``, ``nn.Linear``,
``nn.BatchNorm2d``, ``nn.LayerNorm``, ...) or a stateless function, executed in topological order.

* Weights are re-initialized by default: the layers are freshly constructed, so they get PyTorch's
  default initialization for their type -- the same as the module the graph came from, which is what
  zero-cost proxies need. ``seed`` makes that initialization reproducible without touching the global
  RNG. ``keep_weights=True`` loads the ONNX weights instead.
* Constant operands with more than one element (position embeddings, layer scales) become
  ``nn.Parameter`` (they are counted as parameters by the IR); scalar constants become buffers.
  Both keep their ONNX values.
* An operand whose edge was removed as all-zero is fed as zeros of the recorded shape, and every
  operand is reshaped to the shape its consumer recorded, which replays the dropped Reshape/Flatten
  nodes exactly. The leading dimension is left free (``-1``), so the module runs on other batch sizes
  whenever the batch is the leading dimension of the reshaped tensors, as it is in CNNs and in
  transformers that fold heads into the batch.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import IRError, UnsupportedOpError
from nas.ir.graph import ArchGraph, Const, Node, Ref, wl_colours
from nas.ir.ops import Shape


class _Fn(nn.Module):
    """A stateless op: ``fn(*inputs)``."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.name = name
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> Any:
        return self.fn(*xs)

    def extra_repr(self) -> str:
        return self.name


class _Padded(nn.Module):
    """Asymmetric padding (ONNX allows it, PyTorch layers do not) in front of a layer."""

    def __init__(self, pad: tuple[int, ...], layer: nn.Module, value: float = 0.0) -> None:
        super().__init__()
        self.pad = pad
        self.value = value
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(F.pad(x, self.pad, value=self.value))


def _torch_pad(pads: Shape) -> tuple[int, ...]:
    """ONNX pads ``[b_0..b_{k-1}, e_0..e_{k-1}]`` -> ``F.pad`` order (last dim first)."""
    k = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(k)):
        out += [pads[i], pads[k + i]]
    return tuple(out)


def _sym(pads: Shape) -> tuple[int, ...] | None:
    k = len(pads) // 2
    return tuple(pads[:k]) if tuple(pads[:k]) == tuple(pads[k:]) else None


def _unsupported(node: Node, why: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"to_torch: node {node.name!r} ({node.op}): {why}", op=node.op, node=node.name)


def _conv(node: Node) -> nn.Module:
    a = node.attrs
    rank = len(a["kernel"])
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}.get(rank)
    if cls is None:
        raise _unsupported(node, f"{rank}-D convolution")
    sym = _sym(a["pad"])
    layer = cls(
        a["in_channels"], a["out_channels"], a["kernel"], stride=a["stride"], padding=sym or 0,  # type: ignore[arg-type]
        dilation=a["dilation"], groups=a["groups"], bias=a["bias"],
    )
    return layer if sym is not None else _Padded(_torch_pad(a["pad"]), layer)


def _batchnorm(node: Node) -> nn.Module:
    rank = len(node.in_shapes[0] or ())
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(rank)
    if cls is None:
        raise _unsupported(node, f"BatchNorm on a rank-{rank} input")
    return cls(node.attrs["num_features"], eps=node.attrs["eps"], momentum=node.attrs["momentum"])


def _pool(node: Node) -> nn.Module:
    a = node.attrs
    rank = len(a["kernel"])
    sym = _sym(a["pad"])
    if node.op == "MaxPool":
        max_cls: type[nn.Module] = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[rank]
        layer = max_cls(
            a["kernel"], a["stride"], padding=sym or 0, dilation=a["dilation"], ceil_mode=bool(a["ceil_mode"])
        )
        return layer if sym is not None else _Padded(_torch_pad(a["pad"]), layer, value=-math.inf)
    if sym is None:
        raise _unsupported(node, "average pooling with asymmetric padding")
    avg_cls: type[nn.Module] = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[rank]
    return avg_cls(a["kernel"], a["stride"], padding=sym, ceil_mode=bool(a["ceil_mode"]),
               count_include_pad=bool(a["count_include_pad"]))


def _slice(node: Node) -> nn.Module:
    a = node.attrs
    rank = len(node.in_shapes[0] or ())
    index: list[slice] = [slice(None)] * rank
    for s, e, ax, st in zip(a["starts"], a["ends"], a["axes"], a["steps"], strict=True):
        if st <= 0:
            raise _unsupported(node, "Slice with a non-positive step")
        index[ax] = slice(s, e, st)
    key = tuple(index)
    return _Fn(f"slice{a['starts']}:{a['ends']}", lambda x: x[key])


def _gather(node: Node) -> nn.Module:
    axis, idx = node.attrs["axis"], node.attrs["indices"]
    if isinstance(idx, int):
        return _Fn(f"select(dim={axis}, {idx})", lambda x: x.select(axis, idx))
    index = torch.tensor(idx, dtype=torch.long)
    return _Fn(f"index_select(dim={axis})", lambda x: x.index_select(axis, index.to(x.device)))


def _pad(node: Node) -> nn.Module:
    a = node.attrs
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(a["mode"])
    if mode is None:
        raise _unsupported(node, f"Pad mode {a['mode']!r}")
    pads = _torch_pad(a["pads"])
    # F.pad's non-constant modes pad only the trailing (spatial) dims; drop leading zero pairs.
    while mode != "constant" and len(pads) > 2 and pads[-2:] == (0, 0):
        pads = pads[:-2]
    value = a["value"] if mode == "constant" else None
    return _Fn(f"pad{a['pads']}", lambda x: F.pad(x, pads, mode=mode, value=value))


def _hardsigmoid(node: Node) -> nn.Module:
    alpha, beta = node.attrs["alpha"], node.attrs["beta"]
    if abs(alpha - 1 / 6) < 1e-6 and beta == 0.5:  # PyTorch's: it exports back to one HardSigmoid
        return nn.Hardsigmoid()
    return _Fn("hardsigmoid", lambda x: torch.clamp(alpha * x + beta, 0.0, 1.0))


def _clip(node: Node) -> nn.Module:
    lo, hi = node.attrs["min"], node.attrs["max"]
    return _Fn(f"clip({lo}, {hi})", lambda x: torch.clamp(x, lo, hi))


def _reduce(node: Node) -> nn.Module:
    axes, keep = list(node.attrs["axes"]), bool(node.attrs["keepdims"])
    if node.op == "ReduceMean":
        return _Fn("mean", lambda x: x.mean(axes, keepdim=keep))
    return _Fn("sum", lambda x: x.sum(axes, keepdim=keep))


class GlobalPool(nn.Module):
    """Global average or max pooling over every dimension after the channels (keeps them as 1s).

    A public layer type, so that code looking for the feature map before global pooling (Zen-NAS)
    can find it in a rebuilt graph as it finds ``nn.AdaptiveAvgPool2d`` in a hand-written one.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = list(range(2, x.dim()))
        return x.mean(dims, keepdim=True) if self.mode == "avg" else x.amax(dims, keepdim=True)

    def extra_repr(self) -> str:
        return self.mode


def _global(node: Node) -> nn.Module:
    return GlobalPool("avg" if node.op == "GlobalAvgPool" else "max")


def _split(node: Node) -> nn.Module:
    sizes, axis = list(node.attrs["sizes"]), node.attrs["axis"]
    return _Fn(f"split({sizes}, dim={axis})", lambda x: torch.split(x, sizes, dim=axis))


def _add(*xs: torch.Tensor) -> torch.Tensor:
    """The IR's n-ary sum, with a repeated operand taken once and scaled by its count.

    The IR writes every sum flat (``onnx_import._flatten_adds``), so a partial sum read by several
    sums is spelt out in each, and along a chain of skip connections one operand can recur dozens of
    times. Adding it that many times would make the module's cost (and an export's) depend on the order
    in which the operands happen to be listed, since the exporter's common-subexpression pass merges
    equal partial chains only where they line up. ``count * x`` costs the same whatever the order (an
    integer ``count``, so an integer sum stays integer). With ``canonical_sums``, :class:`GraphModule`
    also lists a sum's operands in a canonical order, so that graphs with one fingerprint export one network.
    """
    distinct: list[torch.Tensor] = []
    counts: list[int] = []
    for x in xs:
        for k, d in enumerate(distinct):
            if d is x:
                counts[k] += 1
                break
        else:
            distinct.append(x)
            counts.append(1)
    terms = [d if c == 1 else d * c for d, c in zip(distinct, counts, strict=True)]
    return functools.reduce(torch.add, terms)


def _term_order(live: set[str], colour: dict[str, str], operand: tuple[Any, ...]) -> tuple[bool, str, str]:
    """The sort key of a sum's operand in :class:`GraphModule`'s plan: input-dependent terms first, then
    the producer's Weisfeiler-Lehman colour, then the output index and shape."""
    is_ref = operand[0] == "ref"
    return (not (is_ref and operand[1] in live), colour[operand[1]] if is_ref else "", repr(operand[2:]))


BUILDERS: dict[str, Callable[[Node], nn.Module]] = {
    "Conv": _conv,
    "Gemm": lambda n: nn.Linear(n.attrs["in_features"], n.attrs["out_features"], bias=n.attrs["bias"]),
    "MatMul": lambda n: _Fn("matmul", torch.matmul),
    "BatchNorm": _batchnorm,
    "LayerNorm": lambda n: nn.LayerNorm(
        list(n.attrs["normalized_shape"]), eps=n.attrs["eps"], bias="bias" in n.weights
    ),
    "Relu": lambda n: nn.ReLU(),
    "LeakyRelu": lambda n: nn.LeakyReLU(n.attrs["alpha"]),
    "Sigmoid": lambda n: nn.Sigmoid(),
    "Tanh": lambda n: nn.Tanh(),
    "Gelu": lambda n: nn.GELU(approximate=n.attrs["approximate"]),
    "HardSwish": lambda n: nn.Hardswish(),
    "HardSigmoid": _hardsigmoid,
    "Swish": lambda n: nn.SiLU(),
    "Softmax": lambda n: nn.Softmax(dim=n.attrs["axis"]),
    "Clip": _clip,
    "Erf": lambda n: _Fn("erf", torch.erf),
    "Sqrt": lambda n: _Fn("sqrt", torch.sqrt),
    "Exp": lambda n: _Fn("exp", torch.exp),
    "MaxPool": _pool,
    "AvgPool": _pool,
    "GlobalAvgPool": _global,
    "GlobalMaxPool": _global,
    "ReduceMean": _reduce,
    "ReduceSum": _reduce,
    "Add": lambda n: _Fn("add", _add),
    "Sub": lambda n: _Fn("sub", torch.sub),
    "Mul": lambda n: _Fn("mul", torch.mul),
    "Div": lambda n: _Fn("div", torch.div),
    "Pow": lambda n: _Fn("pow", torch.pow),
    "Concat": lambda n: _Fn(f"cat(dim={n.attrs['axis']})", lambda *xs: torch.cat(xs, dim=n.attrs["axis"])),
    "Split": _split,
    "Slice": _slice,
    "Gather": _gather,
    "Transpose": lambda n: _Fn(f"permute{n.attrs['perm']}", lambda x: x.permute(*n.attrs["perm"])),
    "Pad": _pad,
}


def _load_weights(layer: nn.Module, node: Node) -> None:
    target = layer.layer if isinstance(layer, _Padded) else layer
    with torch.no_grad():
        for role, arr in node.weights.items():
            t = getattr(target, role, None)
            if not isinstance(t, torch.Tensor):
                raise _unsupported(node, f"the layer has no tensor {role!r} to load")
            t.copy_(torch.from_numpy(np.array(arr, dtype=np.float32)).reshape(t.shape))


def _tie(layer: nn.Module, node: Node, shared: dict[str, nn.Parameter]) -> None:
    """Make nodes that read one ONNX initializer share one ``nn.Parameter`` (tied weights)."""
    target = layer.layer if isinstance(layer, _Padded) else layer
    for role in ("weight", "bias"):
        name = node.weight_names.get(role)
        param = getattr(target, role, None)
        if name is None or not isinstance(param, nn.Parameter):
            continue
        first = shared.get(name)
        if first is None:
            shared[name] = param
        elif first.shape == param.shape:
            setattr(target, role, first)


def _key(i: int, name: str) -> str:
    return f"n{i}_" + re.sub(r"[^0-9A-Za-z_]", "_", name)[:40]


class GraphModule(nn.Module):
    """Executes an :class:`ArchGraph` (see the module docstring). Inputs in graph-input order.

    ``canonical_sums`` adds each sum's terms in an order fixed by the computation alone (input-dependent
    terms first, then by the producer's Weisfeiler-Lehman colour), so that graphs with one fingerprint
    export to one network; the exports that are timed and cached by fingerprint use it
    (:mod:`nas.hardware`). Otherwise the terms are added in the IR's order, which spares the colour
    refinement (about a quarter of building an NB201 module)."""

    def __init__(self, graph: ArchGraph, *, keep_weights: bool = False, canonical_sums: bool = False) -> None:
        super().__init__()
        self.graph_name = graph.name
        self.batch = graph.batch_size
        self.layers = nn.ModuleDict()
        self.input_names = [n.name for n in graph.inputs]
        # plan: (layer key, node name, operands as ("ref", node, index, shape) / ("const", key, shape)
        #        / ("zero", shape))
        self._plan: list[tuple[str, str, list[tuple[Any, ...]]]] = []
        n_const = 0
        shared: dict[str, nn.Parameter] = {}  # initializer name -> the one Parameter for it
        const_keys: dict[str, str] = {}
        live = {n.name for n in graph.inputs}  # nodes whose value depends on a graph input
        colour: dict[str, str] | None = None  # WL colours, computed at the first sum (canonical_sums)
        for i, node in enumerate(graph.nodes):
            if node.op == "Input":
                continue
            builder = BUILDERS.get(node.op)
            if builder is None:
                raise _unsupported(node, f"no PyTorch layer for op {node.op!r}")
            key = _key(i, node.name)
            layer = builder(node)
            if keep_weights and node.weights:
                _load_weights(layer, node)
            _tie(layer, node, shared)
            self.layers[key] = layer
            operands: list[tuple[Any, ...]] = []
            for x, shape in zip(node.inputs, node.in_shapes, strict=True):
                if isinstance(x, Ref):
                    operands.append(("ref", x.node, x.index, shape))
                elif isinstance(x, Const):
                    if x.name not in const_keys:
                        ckey = const_keys[x.name] = f"c{n_const}"
                        n_const += 1
                        t = torch.from_numpy(np.array(x.value))  # a writable copy
                        if t.numel() > 1 and t.is_floating_point():
                            self.register_parameter(ckey, nn.Parameter(t))
                        else:
                            self.register_buffer(ckey, t)
                    operands.append(("const", const_keys[x.name], shape))
                else:
                    operands.append(("zero", shape))
            if any(isinstance(x, Ref) and x.node in live for x in node.inputs):
                live.add(node.name)
            if canonical_sums and node.op == "Add" and len(operands) > 1:
                # a canonical order of the terms: those that depend on an input first, those that are constant
                # last (onnxruntime folds them), each group by its producer's WL colour, so graphs with one
                # fingerprint export one network whatever order the IR lists the operands in
                if colour is None:
                    colour = wl_colours(graph)
                operands.sort(key=functools.partial(_term_order, live, colour))
            self._plan.append((key, node.name, operands))
        self._outputs = [
            (o.node, o.index, s) if isinstance(o, Ref) else (None, 0, s)
            for o, s in zip(graph.outputs, graph.output_shapes, strict=True)
        ]
        # Nodes whose result reaches no output: the graph removed the all-zero edge they fed
        # (``x * 0``). The original module still back-propagates zeros into their parameters, so the
        # outputs get ``0 * sum(dead ends)`` to give those parameters zero gradients, not None.
        used = {o.node for o in graph.outputs if isinstance(o, Ref)}
        used.update(r.node for n in graph.nodes for _, r in n.refs)
        self._dead_ends = [n.name for n in graph.nodes if n.op != "Input" and n.name not in used]

    def _fetch(self, spec: tuple[Any, ...], env: dict[str, Any], scale: float, like: torch.Tensor) -> torch.Tensor:
        kind = spec[0]
        if kind == "ref":
            t = env[spec[1]][spec[2]]
            shape = spec[3]
            if shape is not None and tuple(t.shape) != tuple(shape):
                t = t.reshape((-1, *shape[1:]) if len(shape) > 0 else shape)
            return t
        if kind == "const":
            return getattr(self, spec[1])
        shape = list(spec[1])
        if shape and self.batch:
            # integer arithmetic on the batch size, which the ONNX exporter can trace
            shape[0] = like.shape[0] * shape[0] // self.batch if like.dim() > 0 else shape[0]
        return torch.zeros(shape, dtype=like.dtype, device=like.device)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} inputs ({self.input_names}), got {len(inputs)}")
        env: dict[str, Any] = {n: (x,) for n, x in zip(self.input_names, inputs, strict=True)}
        like = inputs[0]
        scale = (like.shape[0] / self.batch) if like.dim() > 0 and self.batch else 1.0
        for key, name, operands in self._plan:
            xs = [self._fetch(s, env, scale, like) for s in operands]
            out = self.layers[key](*xs)
            env[name] = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        outs = []
        for node, index, shape in self._outputs:
            if node is None:
                outs.append(self._fetch(("zero", shape), env, scale, like))
            else:
                outs.append(self._fetch(("ref", node, index, shape), env, scale, like))
        if self._dead_ends:
            # ``dead end * 0`` first, as the original graph had it: an export then reads back as the same
            # graph (the importer drops the zero edge again and keeps the dead ends)
            anchor = sum((t * 0.0).sum() for name in self._dead_ends for t in env[name])
            outs = [o + anchor for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def to_torch(graph: ArchGraph, *, keep_weights: bool = False, seed: int | None = None,
             canonical_sums: bool = False) -> GraphModule:
    """A trainable module for ``graph``; re-initialized (PyTorch defaults) unless ``keep_weights``.

    With ``seed`` the initialization is drawn from a private RNG state (the global one is left
    unchanged), so the same seed gives the same weights in a fresh process. ``canonical_sums``: see
    :class:`GraphModule` (for exports that must be one network per fingerprint).
    """
    if keep_weights and not graph.has_weights:
        raise IRError(
            f"graph {graph.name!r} is structure-only (its weights have shapes but no values); "
            "use keep_weights=False to initialize them"
        )
    with _seeded(seed):
        return GraphModule(graph, keep_weights=keep_weights, canonical_sums=canonical_sums)
