"""ONNX -> :class:`~nas.ir.graph.ArchGraph`.

The pipeline, in order:

1. Load (path, bytes or ``ModelProto``); unreadable input raises :class:`~nas.errors.OnnxLoadError`.
2. Fix the input shapes. A dynamic leading (batch) dimension becomes 1; any other dynamic dimension
   needs ``input_shapes`` or raises :class:`~nas.errors.DynamicShapeError`.
3. Sort the nodes topologically (a cycle raises :class:`~nas.errors.GraphCycleError`), fold
   shape-computation subgraphs with ``onnxslim`` when there are any, then ``onnx.checker`` and
   ``onnx.shape_inference`` (strict, with data propagation).
4. Convert each ONNX node by a per-op converter (:data:`CONVERTERS`) into a canonical op
   (:mod:`nas.ir.ops`), an alias (Identity, Dropout, Reshape, Flatten, Squeeze, Unsqueeze, Cast), or a
   folded constant. Unknown ops raise :class:`~nas.errors.UnsupportedOpError`.
   All-zero tensors (``Mul`` by the scalar constant 0, what only zeros feed, and a constant all-zero
   tensor read as the data input of a layer with weights) are not materialized: their edges are
   removed and the slot is recorded as ``None``. A larger all-zero constant elsewhere stays a constant:
   it may be a zero-initialized learnable tensor (a position embedding, a layer-scale gain); a
   learnable *scalar* initialized to 0 is read as a zero edge.
5. Peephole passes that make equal computations look equal: ``x * sigmoid(x)`` becomes ``Swish``,
   ``MatMul`` by a constant plus a constant bias becomes one ``Gemm``, and chains of ``Add`` whose
   intermediate sums have one consumer become one n-ary ``Add``.

Canonical attributes per op: Conv ``kernel, stride, pad (begins then ends), dilation, groups,
in_channels, out_channels, bias``; Gemm ``in_features, out_features, bias``; BatchNorm
``num_features, eps, momentum`` (PyTorch's momentum, ``1 - onnx_momentum``); LayerNorm
``normalized_shape, eps``; MaxPool ``kernel, stride, pad, dilation, ceil_mode``; AvgPool ``kernel,
stride, pad, ceil_mode, count_include_pad``; Softmax/Concat/Split/Gather ``axis`` (non-negative);
Split ``sizes``; Transpose ``perm``; Slice ``starts, ends, axes, steps``; Gather ``indices``;
ReduceMean/ReduceSum ``axes, keepdims``; Pad ``pads, mode, value``; Clip ``min, max``; LeakyRelu
``alpha``; HardSigmoid ``alpha, beta``; Gelu ``approximate``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nas.errors import (
    DynamicShapeError,
    GraphCycleError,
    IRError,
    NoInputsError,
    OnnxLoadError,
    UnsupportedOpError,
)
from nas.ir.graph import ArchGraph, Const, Node, Operand, Ref
from nas.ir.ops import OPS, ZERO_ABSORBING, Shape, count_flops, count_params

log = logging.getLogger(__name__)


class _Zero:
    """Marker for a tensor known to be all-zero (never escapes this module)."""

    def __repr__(self) -> str:
        return "ZERO"


ZERO = _Zero()
Value = Ref | Const | _Zero


# --------------------------------------------------------------------------- loading


def load_model(model: str | Path | bytes | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Return ``(ModelProto, description)``; raise :class:`OnnxLoadError` for anything unreadable."""
    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "<ModelProto>"
    if isinstance(model, (bytes, bytearray)):
        where = f"<{len(model)} bytes>"
        data = bytes(model)
    else:
        path = Path(model)
        where = str(path)
        if not path.is_file():
            raise OnnxLoadError(f"{where}: no such ONNX file")
        data = path.read_bytes()
    try:
        proto = onnx.load_from_string(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise OnnxLoadError(
            f"{where}: not a readable ONNX model (truncated or another format): {e}"
        ) from e
    if not proto.graph.node and not proto.graph.input:
        raise OnnxLoadError(f"{where}: not an ONNX model (it holds no graph)")
    return proto, where


def _input_shapes(
    graph: onnx.GraphProto,
    where: str,
    input_shapes: Mapping[str, Shape] | Shape | None,
    weight_inputs: Mapping[str, tuple[int, Shape]],
) -> dict[str, Shape]:
    """The static shape of every data input (not an initializer or a weight input); see the module docstring."""
    init = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init and i.name not in weight_inputs]
    if not inputs:
        raise NoInputsError(f"{where}: the graph has no inputs (every input is an initializer)")
    if input_shapes is not None and not isinstance(input_shapes, Mapping):
        if len(inputs) != 1:
            raise DynamicShapeError(
                f"{where}: a single shape was given but the graph has inputs {[i.name for i in inputs]}; "
                "pass a mapping name -> shape"
            )
        input_shapes = {inputs[0].name: tuple(input_shapes)}
    given = dict(input_shapes or {})
    unknown = set(given) - {i.name for i in inputs}
    if unknown:
        raise DynamicShapeError(
            f"{where}: shapes given for unknown inputs {sorted(unknown)}; inputs are {[i.name for i in inputs]}"
        )
    out: dict[str, Shape] = {}
    for inp in inputs:
        tt = inp.type.tensor_type
        if not tt.HasField("shape"):
            if inp.name not in given:
                raise DynamicShapeError(f"{where}: input {inp.name!r} has no shape; give an example shape")
            dims: list[int | None] = [None] * len(given[inp.name])
        else:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if inp.name in given:
            shape = tuple(int(s) for s in given[inp.name])
            if len(shape) != len(dims):
                raise DynamicShapeError(
                    f"{where}: input {inp.name!r} has rank {len(dims)}, the given shape {shape} has rank {len(shape)}"
                )
            for k, (d, s) in enumerate(zip(dims, shape, strict=True)):
                if d is not None and d != s:
                    raise DynamicShapeError(
                        f"{where}: input {inp.name!r} dim {k} is fixed to {d}, the given shape {shape} says {s}"
                    )
        else:
            dyn = [k for k, d in enumerate(dims) if d is None]
            if any(k != 0 for k in dyn):
                raise DynamicShapeError(
                    f"{where}: input {inp.name!r} has dynamic dimensions {dyn} "
                    f"(shape {['?' if d is None else d for d in dims]}); give an example shape, "
                    "e.g. input_shapes=(1, 3, 224, 224) or `--input-shape 1,3,224,224`"
                )
            if dyn:
                log.info("%s: input %r has a dynamic batch dimension; using 1", where, inp.name)
            shape = tuple(1 if d is None else d for d in dims)
        out[inp.name] = shape
    return out


def _toposort(nodes: Sequence[onnx.NodeProto], where: str) -> list[onnx.NodeProto]:
    """The nodes in topological order (stable for already sorted graphs); raise on a cycle."""
    ins = [list(n.input) for n in nodes]
    outs = [list(n.output) for n in nodes]
    producer: dict[str, int] = {o: i for i, os_ in enumerate(outs) for o in os_ if o}
    if all(producer.get(t, -1) < i for i, ts in enumerate(ins) for t in ts):
        return list(nodes)  # already sorted (the common case)
    deps: list[set[int]] = [{producer[t] for t in ts if t in producer} for ts in ins]
    indeg = [len(d) for d in deps]
    users: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    ready = deque(i for i, k in enumerate(indeg) if k == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for u in users[i]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        # What the sort could not reach is the cycles plus what lies downstream of them; peel off the
        # downstream part (stuck nodes none of whose users are stuck) until only cycles remain.
        stuck = {i for i in range(len(nodes)) if indeg[i] > 0}
        changed = True
        while changed:
            changed = False
            for i in list(stuck):
                if not any(u in stuck for u in users[i]):
                    stuck.discard(i)
                    changed = True
        names = [nodes[i].name or f"#{i}:{nodes[i].op_type}" for i in sorted(stuck)]
        raise GraphCycleError(f"{where}: the graph has a cycle through nodes {names}", names)
    return [nodes[i] for i in order]


_SHAPE_OPS = {"Shape", "Size"}
#: Float initializers above this many elements are left out of the copy that is checked and
#: shape-inferred (as typed graph inputs), so that weights are never serialized for it.
_LIGHT_LIMIT = 64
_FLOATS = frozenset(
    {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
)


@dataclass
class Prepared:
    """A checked, shape-inferred model: ``inferred`` is the weight-free copy with the value infos,
    ``initializers`` the original initializers by name, ``inputs`` the data inputs' static shapes."""

    inferred: onnx.ModelProto
    initializers: dict[str, onnx.TensorProto]
    inputs: dict[str, Shape]
    where: str
    dataless: set[str]
    weight_inputs: dict[str, tuple[int, Shape]]


def prepare(
    model: str | Path | bytes | onnx.ModelProto, input_shapes: Mapping[str, Shape] | Shape | None = None
) -> Prepared:
    """Load, fix input shapes, sort, fold shape subgraphs, check and shape-infer.

    ``onnx.checker`` and ``onnx.shape_inference`` run on a copy in which large float initializers are
    typed graph inputs of the same shape: the graph, its ops, attributes and types are checked as
    they are, but megabytes of weights are not serialized twice. Weight values are validated when
    they are read (their size must match their shape).
    """
    proto, where = load_model(model)
    weight_inputs = _weight_inputs(proto, where)
    shapes = _input_shapes(proto.graph, where, input_shapes, weight_inputs)
    nodes = _toposort(list(proto.graph.node), where)
    if any(n.op_type in _SHAPE_OPS for n in nodes):
        proto = _slim(proto, shapes, nodes, where)
        nodes = _toposort(list(proto.graph.node), where)
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    dataless = {t.name for t in g.initializer if not _has_data(t)} | set(weight_inputs)
    heavy = [
        t for t in g.initializer
        if t.data_type in _FLOATS and (t.name in dataless or math.prod(t.dims) > _LIGHT_LIMIT)
    ]
    if not heavy and all(a is b for a, b in zip(nodes, g.node, strict=True)) and all(
        tuple(d.dim_value for d in i.type.tensor_type.shape.dim) == shapes[i.name]
        for i in g.input if i.name in shapes
    ):
        light = proto  # nothing to strip, sort or fix: check and infer the model as it is
    else:
        light = _light_copy(proto, nodes, shapes, heavy)
    try:
        onnx.checker.check_model(light)
    except onnx.checker.ValidationError as e:
        raise IRError(f"{where}: onnx.checker rejected the model: {e}") from e
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        raise IRError(f"{where}: ONNX shape inference failed: {e}") from e
    return Prepared(inferred, inits, shapes, where, dataless, weight_inputs)


#: Metadata key of structure-only models: the comma-separated names of the graph inputs that are
#: data. Every other graph input is a weight that has a shape but no values (see ``weight_inputs``).
DATA_INPUTS_KEY = "nas:data_inputs"


def structure_only_model(
    name: str,
    nodes: Sequence[onnx.NodeProto],
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    initializers: Sequence[onnx.TensorProto],
    weights: Sequence[onnx.ValueInfoProto],
) -> onnx.ModelProto:
    """An opset-20 model whose one data input is ``input`` and whose weights are typed graph inputs
    without values (listed after it; see :data:`DATA_INPUTS_KEY`): what the spaces' direct ONNX
    builders write, valid ONNX that onnxruntime runs once the weights are fed."""
    graph = helper.make_graph(
        list(nodes),
        name,
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, list(output_shape))],
        list(initializers),
    )
    graph.input.extend(weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name=f"nas.{name}")
    helper.set_model_props(model, {DATA_INPUTS_KEY: "input"})
    return model


def _weight_inputs(proto: onnx.ModelProto, where: str) -> dict[str, tuple[int, Shape]]:
    """Graph inputs that stand for weights, by the :data:`DATA_INPUTS_KEY` metadata: name -> (type, shape)."""
    meta = {p.key: p.value for p in proto.metadata_props}
    if DATA_INPUTS_KEY not in meta:
        return {}
    data = set(meta[DATA_INPUTS_KEY].split(","))
    init = {t.name for t in proto.graph.initializer}
    out: dict[str, tuple[int, Shape]] = {}
    for i in proto.graph.input:
        if i.name in data or i.name in init:
            continue
        tt = i.type.tensor_type
        shape = tuple(d.dim_value for d in tt.shape.dim)
        if 0 in shape and not all(d.HasField("dim_value") for d in tt.shape.dim):
            raise DynamicShapeError(f"{where}: weight input {i.name!r} needs a static shape")
        out[i.name] = (tt.elem_type, shape)
    return out


def _light_copy(
    proto: onnx.ModelProto, nodes: list[onnx.NodeProto], shapes: Mapping[str, Shape], heavy: list[onnx.TensorProto]
) -> onnx.ModelProto:
    """The model with sorted nodes, fixed input shapes, and heavy initializers as typed inputs."""
    g = proto.graph
    heavy_names = {t.name for t in heavy}
    light = onnx.ModelProto()
    light.ir_version = proto.ir_version
    light.opset_import.extend(proto.opset_import)
    light.functions.extend(proto.functions)
    lg = light.graph
    lg.name = g.name or "graph"
    lg.node.extend(nodes)
    lg.output.extend(g.output)
    lg.initializer.extend(t for t in g.initializer if t.name not in heavy_names)
    for inp in g.input:
        if inp.name in shapes:
            _add_input(lg, inp.name, inp.type.tensor_type.elem_type, shapes[inp.name])
        elif inp.name not in heavy_names:
            lg.input.append(inp)  # a weight input, or a light initializer also listed as an input
    for t in heavy:
        if t.name not in shapes:
            _add_input(lg, t.name, t.data_type, tuple(t.dims))
    return light


@functools.lru_cache(maxsize=1024)
def _input_type(elem_type: int, shape: Shape) -> onnx.TypeProto:
    t = onnx.TypeProto()
    t.tensor_type.elem_type = elem_type
    dims = t.tensor_type.shape.dim
    for d in shape:
        dims.add().dim_value = d
    return t


def _add_input(graph: onnx.GraphProto, name: str, elem_type: int, shape: Shape) -> None:
    vi = graph.input.add()
    vi.name = name
    vi.type.CopyFrom(_input_type(elem_type, shape))


def _slim(
    proto: onnx.ModelProto, shapes: Mapping[str, Shape], nodes: list[onnx.NodeProto], where: str
) -> onnx.ModelProto:
    """Fold shape-computation subgraphs (Shape -> Gather -> Concat -> Reshape chains) with onnxslim."""
    import onnxslim

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    for inp in m.graph.input:
        if inp.name in shapes:
            tt = inp.type.tensor_type
            tt.shape.Clear()
            for s in shapes[inp.name]:
                tt.shape.dim.add().dim_value = s
    del m.graph.value_info[:]
    try:
        # No weight tying: it merges initializers that merely hold equal values (every LayerNorm's
        # weight at initialization) into one tensor, which would read as tied parameters. No pattern
        # fusion either: canonical ops are this module's job. Constants and shapes are folded.
        out = onnxslim.slim(m, skip_optimizations=["weight_tying", "graph_fusion"])
    except Exception as e:
        raise IRError(f"{where}: folding shape computations with onnxslim failed: {e}") from e
    if not isinstance(out, onnx.ModelProto):
        raise IRError(f"{where}: onnxslim returned no model")
    return out


# --------------------------------------------------------------------------- conversion context


@dataclass(slots=True)
class _Rec:
    name: str
    op: str
    attrs: dict[str, Any]
    inputs: list[Operand]
    in_shapes: list[Shape | None]
    out_shapes: list[Shape]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    weight_names: dict[str, str] = field(default_factory=dict)


class _Ctx:
    def __init__(self, prep: Prepared) -> None:
        self.where = prep.where
        self.opset = next(
            (o.version for o in prep.inferred.opset_import if o.domain in ("", "ai.onnx")), 1
        )
        g = prep.inferred.graph
        self.shapes: dict[str, Shape] = dict(prep.inputs)
        for vi in list(g.value_info) + list(g.output):
            shape = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
            # dim_value 0 is either an unknown dim or a real empty dim; only the latter has the field
            if all(shape) or all(d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim):
                self.shapes[vi.name] = shape
        self.consts: dict[str, np.ndarray] = {}
        #: initializers declared with a shape but no values (structure-only models); usable as weights only
        self.dataless: set[str] = set(prep.dataless)
        for name, (elem_type, shape) in prep.weight_inputs.items():
            self.consts[name] = _placeholder(elem_type, shape)
            self.shapes[name] = shape
        for name, t in prep.initializers.items():
            if name in self.dataless:
                self.consts[name] = _placeholder(t.data_type, tuple(t.dims))
            else:
                try:
                    self.consts[name] = numpy_helper.to_array(t)
                except Exception as e:
                    raise IRError(f"{self.where}: initializer {name!r} cannot be read: {e}") from e
            self.shapes[name] = tuple(self.consts[name].shape)
        self.env: dict[str, Value] = {}
        self.recs: list[_Rec] = []
        self._names: set[str] = set()
        self.onode: onnx.NodeProto | None = None

    # -- helpers for converters
    def fail(self, msg: str) -> IRError:
        n = self.onode
        label = f"node {n.name!r} ({n.op_type})" if n is not None else "graph"
        return IRError(f"{self.where}: {label}: {msg}")

    def unsupported(self, msg: str) -> UnsupportedOpError:
        n = self.onode
        assert n is not None
        return UnsupportedOpError(
            f"{self.where}: node {n.name!r}: {msg}", op=n.op_type, node=n.name
        )

    def shape(self, tensor: str) -> Shape:
        if tensor in self.shapes:
            return self.shapes[tensor]
        raise self.fail(f"shape inference gave no static shape for tensor {tensor!r}")

    def const(self, tensor: str) -> np.ndarray | None:
        """The value of a constant input, or None if it is data. Empty name = omitted optional input."""
        if tensor == "":
            return None
        return self.consts.get(tensor)

    def need_const(self, tensor: str, what: str) -> np.ndarray:
        v = self.const(tensor)
        if v is None:
            raise self.unsupported(f"{what} ({tensor!r}) must be a constant")
        return v

    def value(self, tensor: str) -> Value:
        v = self.env.get(tensor)
        if v is not None:
            return v
        if tensor in self.dataless:
            raise self.fail(f"initializer {tensor!r} has no values; only layer weights may be left without them")
        if tensor in self.consts:
            return Const(tensor, self.consts[tensor])
        if tensor not in self.env:
            raise self.fail(f"input tensor {tensor!r} is produced by no node and is not a graph input")
        return self.env[tensor]

    def alias(self, out: str, tensor: str) -> None:
        if tensor in self.consts:
            arr = self.consts[tensor]
            self.consts[out] = arr.reshape(self.shape(out)) if out in self.shapes else arr
        else:
            self.env[out] = self.value(tensor)

    def unique(self, base: str) -> str:
        if base and base not in self._names:
            self._names.add(base)
            return base
        name = base or "node"
        k = 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def emit(
        self,
        op: str,
        attrs: dict[str, Any],
        inputs: Sequence[str],
        *,
        weights: dict[str, np.ndarray] | None = None,
        weight_names: dict[str, str] | None = None,
        outputs: Sequence[str] | None = None,
        out_shapes: Sequence[Shape] | None = None,
        in_shapes: Sequence[Shape] | None = None,
    ) -> None:
        """Add a canonical node reading ``inputs`` (tensor names) and writing ``outputs``."""
        n = self.onode
        assert n is not None
        outs = list(outputs if outputs is not None else n.output[:1])
        values = [self.value(t) for t in inputs]
        weights = weights or {}
        oshapes = list(out_shapes) if out_shapes is not None else [self.shape(o) for o in outs]
        refs = [v for v in values if isinstance(v, Ref)]
        if len(refs) == len(values):  # the common case: no zero or constant operand
            self._add(n, op, attrs, refs, in_shapes or [self.shape(t) for t in inputs], outs, oshapes, weights,
                      weight_names)
            return

        def zero(v: Value) -> bool:
            # only a *scalar* constant 0 is a zero edge here: a larger all-zero tensor may be a
            # zero-initialized learnable one (a position embedding, a ReZero/layer-scale gain)
            return v is ZERO or (isinstance(v, Const) and v.value.size == 1 and not np.any(v.value))

        if OPS[op].weight_roles and isinstance(values[0], Const) and not np.any(values[0].value):
            # A constant all-zero *data* input of a layer with weights (its learnable tensors are in
            # ``weights``, never here) is a zero edge written out as a tensor, e.g. by an exporter
            # that folded ``x * 0``: read it as one, or its zeros would count as parameters.
            values[0] = ZERO

        if op in ZERO_ABSORBING and any(zero(v) for v in values):
            for o in outs:
                self.env[o] = ZERO
            return
        keep = list(zip(values, inputs, strict=True))
        if op == "Add":
            keep = [(v, t) for v, t in keep if not zero(v)]
            if not keep:
                for o in outs:
                    self.env[o] = ZERO
                return
            if len(keep) == 1 and isinstance(keep[0][0], Ref) and self.shape(keep[0][1]) == oshapes[0]:
                self.env[outs[0]] = keep[0][0]
                return
        spec = OPS[op]
        preserving = spec.zero_preserving and "bias" not in weights
        if op == "Pad" and attrs["mode"] == "constant" and attrs["value"] != 0.0:
            preserving = False  # the border is filled with a non-zero value
        if preserving and keep and all(v is ZERO for v, _ in keep):
            for o in outs:
                self.env[o] = ZERO
            return
        operands: list[Operand] = [None if v is ZERO else v for v, _ in keep]  # type: ignore[misc]
        read_shapes: list[Shape | None] = (
            list(in_shapes) if in_shapes is not None else [self.shape(t) for _, t in keep]
        )
        self._add(n, op, attrs, operands, read_shapes, outs, oshapes, weights, weight_names)

    def _add(
        self,
        n: onnx.NodeProto,
        op: str,
        attrs: dict[str, Any],
        operands: Sequence[Operand],
        read_shapes: Sequence[Shape | None],
        outs: list[str],
        oshapes: list[Shape],
        weights: dict[str, np.ndarray],
        weight_names: dict[str, str] | None,
    ) -> None:
        rec = _Rec(
            self.unique(n.name or f"{op}_{len(self.recs)}"), op, attrs, list(operands), list(read_shapes), oshapes,
            weights, dict(weight_names or {}),
        )
        self.recs.append(rec)
        for k, o in enumerate(outs):
            if o:
                self.env[o] = Ref(rec.name, k)

    def fold(self) -> bool:
        """Evaluate the current node if all of its inputs are constants. Returns True if folded."""
        n = self.onode
        assert n is not None
        ins = [t for t in n.input if t]
        if not all(t in self.consts for t in ins):
            return False
        from onnx.reference import ReferenceEvaluator

        try:
            results = ReferenceEvaluator(n).run(None, {t: self.consts[t] for t in ins})
        except Exception as e:
            raise self.fail(f"cannot fold this all-constant node: {e}") from e
        for o, r in zip(n.output, results, strict=False):
            if o:
                self.consts[o] = np.asarray(r)
                self.shapes[o] = tuple(np.asarray(r).shape)
        return True


@functools.lru_cache(maxsize=4096)
def _placeholder(data_type: int, shape: Shape) -> np.ndarray:
    """A read-only, zero-stride array standing for a weight that has a shape but no values."""
    return np.broadcast_to(np.zeros((), helper.tensor_dtype_to_np_dtype(data_type)), shape)


_DATA_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


def _has_data(t: onnx.TensorProto) -> bool:
    """False for an initializer declared with a non-empty shape but no values."""
    return (
        t.HasField("raw_data")
        or t.data_location == onnx.TensorProto.EXTERNAL
        or any(len(getattr(t, f)) for f in _DATA_FIELDS)
        or math.prod(t.dims) == 0
    )


_A = onnx.AttributeProto


def _attrs(n: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in n.attribute:
        t = a.type
        if t == _A.INT:
            out[a.name] = a.i
        elif t == _A.INTS:
            out[a.name] = tuple(a.ints)
        elif t == _A.FLOAT:
            out[a.name] = a.f
        elif t == _A.STRING:
            out[a.name] = a.s.decode()
        else:
            v = helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def _ints(v: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in np.asarray(v).reshape(-1))


# --------------------------------------------------------------------------- converters

Converter = Callable[[_Ctx, onnx.NodeProto], None]
CONVERTERS: dict[str, Converter] = {}


def _converter(*op_types: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for t in op_types:
            CONVERTERS[t] = fn
        return fn

    return deco


@_converter("Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast")
def _bookkeeping(ctx: _Ctx, n: onnx.NodeProto) -> None:
    if n.op_type == "Cast" and n.input[0] in ctx.consts:
        to = helper.tensor_dtype_to_np_dtype(_attrs(n)["to"])
        ctx.consts[n.output[0]] = ctx.consts[n.input[0]].astype(to)
        return
    ctx.alias(n.output[0], n.input[0])


@_converter("Constant")
def _constant(ctx: _Ctx, n: onnx.NodeProto) -> None:
    ctx.fold()


@_converter("Shape", "Size")
def _shape(ctx: _Ctx, n: onnx.NodeProto) -> None:
    shape = ctx.shape(n.input[0])
    if n.op_type == "Size":
        val = np.array(math.prod(shape), dtype=np.int64)
    else:
        a = _attrs(n)
        rank = len(shape)
        start = _axis(a.get("start", 0), rank)
        end = _axis(a.get("end", rank), rank)
        val = np.array(shape[start:end], dtype=np.int64)
    ctx.consts[n.output[0]] = val
    ctx.shapes[n.output[0]] = tuple(val.shape)


def _pads(ctx: _Ctx, a: Mapping[str, Any], spatial_in: Shape, kernel: Shape, stride: Shape, dil: Shape) -> Shape:
    auto = a.get("auto_pad", "NOTSET")
    k = len(kernel)
    if auto in ("NOTSET", ""):
        pads = tuple(a.get("pads", (0,) * (2 * k)))
        return tuple(int(p) for p in pads)
    if auto == "VALID":
        return (0,) * (2 * k)
    begins, ends = [], []
    for i in range(k):
        out = math.ceil(spatial_in[i] / stride[i])
        total = max((out - 1) * stride[i] + (kernel[i] - 1) * dil[i] + 1 - spatial_in[i], 0)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return tuple(begins + ends)


@_converter("Conv")
def _conv(ctx: _Ctx, n: onnx.NodeProto) -> None:
    a = _attrs(n)
    w = ctx.need_const(n.input[1], "the Conv weight")
    b = ctx.const(n.input[2]) if len(n.input) > 2 else None
    if len(n.input) > 2 and n.input[2] and b is None:
        raise ctx.unsupported("the Conv bias must be a constant")
    x_shape = ctx.shape(n.input[0])
    kernel = tuple(int(k) for k in w.shape[2:])
    rank = len(kernel)
    stride = tuple(a.get("strides", (1,) * rank))
    dil = tuple(a.get("dilations", (1,) * rank))
    groups = int(a.get("group", 1))
    weights = {"weight": w}
    if b is not None:
        weights["bias"] = b
    attrs = {
        "kernel": kernel,
        "stride": stride,
        "pad": _pads(ctx, a, x_shape[2:], kernel, stride, dil),
        "dilation": dil,
        "groups": groups,
        "in_channels": int(w.shape[1]) * groups,
        "out_channels": int(w.shape[0]),
        "bias": b is not None,
    }
    names = {"weight": n.input[1]} | ({"bias": n.input[2]} if b is not None else {})
    ctx.emit("Conv", attrs, [n.input[0]], weights=weights, weight_names=names)


@_converter("Gemm")
def _gemm(ctx: _Ctx, n: onnx.NodeProto) -> None:
    a = _attrs(n)
    if a.get("transA", 0):
        raise ctx.unsupported("Gemm with transA=1 is not supported")
    bmat = ctx.need_const(n.input[1], "the Gemm B matrix")
    w = (bmat if a.get("transB", 0) else bmat.T) * np.float32(a.get("alpha", 1.0))
    weights = {"weight": np.ascontiguousarray(w, dtype=np.float32)}
    if len(n.input) > 2 and n.input[2]:
        c = ctx.need_const(n.input[2], "the Gemm C (bias)")
        bias = np.broadcast_to(c * np.float32(a.get("beta", 1.0)), ctx.shape(n.output[0]))
        if not np.all(bias == bias[:1]):
            raise ctx.unsupported("Gemm with a C input that varies along the batch is not supported")
        weights["bias"] = np.ascontiguousarray(bias[0], dtype=np.float32)
    attrs = {"in_features": int(w.shape[1]), "out_features": int(w.shape[0]), "bias": "bias" in weights}
    names = {"weight": n.input[1]} | ({"bias": n.input[2]} if "bias" in weights else {})
    ctx.emit("Gemm", attrs, [n.input[0]], weights=weights, weight_names=names)


@_converter("MatMul")
def _matmul(ctx: _Ctx, n: onnx.NodeProto) -> None:
    b = ctx.const(n.input[1])
    if b is not None and b.ndim == 2 and ctx.const(n.input[0]) is None:
        w = np.ascontiguousarray(b.T)
        attrs = {"in_features": int(w.shape[1]), "out_features": int(w.shape[0]), "bias": False}
        ctx.emit("Gemm", attrs, [n.input[0]], weights={"weight": w}, weight_names={"weight": n.input[1]})
        return
    ctx.emit("MatMul", {}, [n.input[0], n.input[1]])


@_converter("BatchNormalization")
def _batchnorm(ctx: _Ctx, n: onnx.NodeProto) -> None:
    a = _attrs(n)
    scale, bias, mean, var = (ctx.need_const(t, what) for t, what in zip(
        n.input[1:5], ("scale", "bias", "mean", "var"), strict=True))
    attrs = {
        "num_features": int(scale.shape[0]),
        "eps": float(np.float32(a.get("epsilon", 1e-5))),
        "momentum": round(1.0 - float(np.float32(a.get("momentum", 0.9))), 6),
    }
    weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
    names = dict(zip(("weight", "bias", "running_mean", "running_var"), n.input[1:5], strict=True))
    ctx.emit("BatchNorm", attrs, [n.input[0]], weights=weights, weight_names=names, outputs=[n.output[0]])


@_converter("LayerNormalization")
def _layernorm(ctx: _Ctx, n: onnx.NodeProto) -> None:
    a = _attrs(n)
    shape = ctx.shape(n.input[0])
    axis = _axis(a.get("axis", -1), len(shape))
    weights = {"weight": ctx.need_const(n.input[1], "the LayerNorm scale")}
    names = {"weight": n.input[1]}
    if len(n.input) > 2 and n.input[2]:
        weights["bias"] = ctx.need_const(n.input[2], "the LayerNorm bias")
        names["bias"] = n.input[2]
    attrs = {"normalized_shape": tuple(shape[axis:]), "eps": float(np.float32(a.get("epsilon", 1e-5)))}
    ctx.emit("LayerNorm", attrs, [n.input[0]], weights=weights, weight_names=names, outputs=[n.output[0]])


def _simple(op: str, defaults: Mapping[str, Any] | None = None) -> Converter:
    def conv(ctx: _Ctx, n: onnx.NodeProto) -> None:
        if ctx.fold():
            return
        a = _attrs(n)
        attrs = {k: a.get(k, v) for k, v in (defaults or {}).items()}
        attrs = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in attrs.items()}
        ctx.emit(op, attrs, [n.input[0]])

    return conv


for _onnx_op, _op, _defaults in [
    ("Relu", "Relu", None),
    ("LeakyRelu", "LeakyRelu", {"alpha": 0.01}),
    ("Sigmoid", "Sigmoid", None),
    ("Tanh", "Tanh", None),
    ("Gelu", "Gelu", {"approximate": "none"}),
    ("HardSwish", "HardSwish", None),
    ("HardSigmoid", "HardSigmoid", {"alpha": 0.2, "beta": 0.5}),
    ("Erf", "Erf", None),
    ("Sqrt", "Sqrt", None),
    ("Exp", "Exp", None),
    ("GlobalAveragePool", "GlobalAvgPool", None),
    ("GlobalMaxPool", "GlobalMaxPool", None),
]:
    CONVERTERS[_onnx_op] = _simple(_op, _defaults)


@_converter("Softmax")
def _softmax(ctx: _Ctx, n: onnx.NodeProto) -> None:
    shape = ctx.shape(n.input[0])
    rank = len(shape)
    if ctx.opset >= 13:
        ctx.emit("Softmax", {"axis": _axis(_attrs(n).get("axis", -1), rank)}, [n.input[0]])
        return
    # Before opset 13, Softmax normalizes over all dims from `axis` on (default 1), flattened.
    axis = _axis(_attrs(n).get("axis", 1), rank)
    flat = (*shape[:axis], math.prod(shape[axis:]))
    ctx.emit("Softmax", {"axis": axis}, [n.input[0]], in_shapes=[flat], out_shapes=[flat])


@_converter("Clip")
def _clip(ctx: _Ctx, n: onnx.NodeProto) -> None:
    a = _attrs(n)
    lo: float | None = a.get("min")
    hi: float | None = a.get("max")
    if len(n.input) > 1 and n.input[1]:
        lo = float(ctx.need_const(n.input[1], "the Clip min"))
    if len(n.input) > 2 and n.input[2]:
        hi = float(ctx.need_const(n.input[2], "the Clip max"))
    ctx.emit("Clip", {"min": lo, "max": hi}, [n.input[0]])


def _pool(ctx: _Ctx, n: onnx.NodeProto, op: str) -> None:
    a = _attrs(n)
    kernel = tuple(int(k) for k in a["kernel_shape"])
    rank = len(kernel)
    stride = tuple(a.get("strides", (1,) * rank))
    dil = tuple(a.get("dilations", (1,) * rank))
    pad = _pads(ctx, a, ctx.shape(n.input[0])[2:], kernel, stride, dil)
    attrs: dict[str, Any] = {"kernel": kernel, "stride": stride, "pad": pad, "ceil_mode": int(a.get("ceil_mode", 0))}
    if op == "MaxPool":
        attrs["dilation"] = dil
    else:
        if any(d != 1 for d in dil):
            raise ctx.unsupported("AveragePool with dilations is not supported")
        # Without padding the two counting modes agree; canonicalize so equal pools look equal.
        attrs["count_include_pad"] = int(a.get("count_include_pad", 0)) if any(pad) else 0
    ctx.emit(op, attrs, [n.input[0]], outputs=[n.output[0]])


CONVERTERS["MaxPool"] = lambda ctx, n: _pool(ctx, n, "MaxPool")
CONVERTERS["AveragePool"] = lambda ctx, n: _pool(ctx, n, "AvgPool")


def _binary(op: str) -> Converter:
    def conv(ctx: _Ctx, n: onnx.NodeProto) -> None:
        if ctx.fold():
            return
        ctx.emit(op, {}, list(n.input))

    return conv


for _onnx_op, _op in [("Add", "Add"), ("Sum", "Add"), ("Sub", "Sub"), ("Mul", "Mul"), ("Div", "Div"), ("Pow", "Pow")]:
    CONVERTERS[_onnx_op] = _binary(_op)


def _reduce(op: str) -> Converter:
    def conv(ctx: _Ctx, n: onnx.NodeProto) -> None:
        if ctx.fold():
            return
        a = _attrs(n)
        shape = ctx.shape(n.input[0])
        rank = len(shape)
        if len(n.input) > 1 and n.input[1]:
            axes = _ints(ctx.need_const(n.input[1], "the reduction axes"))
        else:
            axes = tuple(a.get("axes", ()))
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                ctx.alias(n.output[0], n.input[0])
                return
            axes = tuple(range(rank))
        axes = tuple(sorted(_axis(x, rank) for x in axes))
        keep = int(a.get("keepdims", 1))
        if op == "ReduceMean" and rank >= 3 and axes == tuple(range(2, rank)):
            # x.mean(spatial dims) is global average pooling; consumers reshape as recorded.
            ctx.emit("GlobalAvgPool", {}, [n.input[0]], out_shapes=[shape[:2] + (1,) * (rank - 2)])
            return
        ctx.emit(op, {"axes": axes, "keepdims": keep}, [n.input[0]])

    return conv


CONVERTERS["ReduceMean"] = _reduce("ReduceMean")
CONVERTERS["ReduceSum"] = _reduce("ReduceSum")


@_converter("Concat")
def _concat(ctx: _Ctx, n: onnx.NodeProto) -> None:
    if ctx.fold():
        return
    rank = len(ctx.shape(n.output[0]))
    ctx.emit("Concat", {"axis": _axis(_attrs(n)["axis"], rank)}, list(n.input))


@_converter("Split")
def _split(ctx: _Ctx, n: onnx.NodeProto) -> None:
    if ctx.fold():
        return
    a = _attrs(n)
    shape = ctx.shape(n.input[0])
    axis = _axis(a.get("axis", 0), len(shape))
    outs = list(n.output)
    sizes = tuple(ctx.shape(o)[axis] for o in outs)
    ctx.emit("Split", {"axis": axis, "sizes": sizes}, [n.input[0]], outputs=outs)


@_converter("Transpose")
def _transpose(ctx: _Ctx, n: onnx.NodeProto) -> None:
    if ctx.fold():
        return
    rank = len(ctx.shape(n.input[0]))
    perm = tuple(int(p) for p in _attrs(n).get("perm", tuple(reversed(range(rank)))))
    ctx.emit("Transpose", {"perm": perm}, [n.input[0]])


@_converter("Slice")
def _slice(ctx: _Ctx, n: onnx.NodeProto) -> None:
    if ctx.fold():
        return
    shape = ctx.shape(n.input[0])
    rank = len(shape)
    a = _attrs(n)

    def arg(k: int, name: str) -> tuple[int, ...] | None:
        # attributes before opset 10, constant inputs since
        if len(n.input) > k and n.input[k]:
            return _ints(ctx.need_const(n.input[k], f"Slice {name}"))
        return tuple(a[name]) if name in a else None

    starts, ends = arg(1, "starts"), arg(2, "ends")
    if starts is None or ends is None:
        raise ctx.unsupported("Slice without starts/ends")
    axes = arg(3, "axes") or tuple(range(len(starts)))
    steps = arg(4, "steps") or (1,) * len(starts)
    axes = tuple(_axis(x, rank) for x in axes)
    norm_s, norm_e = [], []
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        dim = shape[ax]
        s2, e2, _ = slice(s, e, st).indices(dim)
        if st > 0:
            e2 = max(e2, s2)
        norm_s.append(s2)
        norm_e.append(e2)
    attrs = {"starts": tuple(norm_s), "ends": tuple(norm_e), "axes": axes, "steps": tuple(steps)}
    ctx.emit("Slice", attrs, [n.input[0]])


@_converter("Gather")
def _gather(ctx: _Ctx, n: onnx.NodeProto) -> None:
    if ctx.fold():
        return
    shape = ctx.shape(n.input[0])
    if ctx.const(n.input[0]) is not None:
        raise ctx.unsupported("Gather from a constant table (an embedding lookup) is not supported")
    idx = ctx.need_const(n.input[1], "the Gather indices")
    axis = _axis(_attrs(n).get("axis", 0), len(shape))
    dim = shape[axis]
    norm = np.where(idx < 0, idx + dim, idx)
    indices: int | tuple[int, ...] = int(norm) if norm.ndim == 0 else _ints(norm)
    if norm.ndim > 1:
        raise ctx.unsupported("Gather with multi-dimensional indices is not supported")
    ctx.emit("Gather", {"axis": axis, "indices": indices}, [n.input[0]])


@_converter("Pad")
def _pad(ctx: _Ctx, n: onnx.NodeProto) -> None:
    if ctx.fold():
        return
    a = _attrs(n)
    rank = len(ctx.shape(n.input[0]))
    if len(n.input) > 1 and n.input[1]:
        pads = _ints(ctx.need_const(n.input[1], "the Pad pads"))
    else:
        pads = tuple(a.get("pads", ()))
    value = float(a.get("value", 0.0))  # an attribute before opset 11, an input since
    if len(n.input) > 2 and n.input[2]:
        value = float(ctx.need_const(n.input[2], "the Pad value"))
    if len(n.input) > 3 and n.input[3]:
        axes = [_axis(x, rank) for x in _ints(ctx.need_const(n.input[3], "the Pad axes"))]
        full = [0] * (2 * rank)
        for i, ax in enumerate(axes):
            full[ax] = pads[i]
            full[rank + ax] = pads[len(axes) + i]
        pads = tuple(full)
    mode = a.get("mode", "constant")
    ctx.emit("Pad", {"pads": pads, "mode": mode, "value": value}, [n.input[0]])


# --------------------------------------------------------------------------- peephole passes


def _consumers(recs: list[_Rec], outputs: list[Operand]) -> dict[str, int]:
    count: dict[str, int] = defaultdict(int)
    for r in recs:
        for x in r.inputs:
            if isinstance(x, Ref):
                count[x.node] += 1
    for o in outputs:
        if isinstance(o, Ref):
            count[o.node] += 1
    return count


def _redirect(recs: list[_Rec], outputs: list[Operand], mapping: Mapping[Ref, Ref]) -> None:
    """Replace every operand ``old`` by ``mapping[old]`` (one pass over the graph)."""
    if not mapping:
        return
    for r in recs:
        if any(x in mapping for x in r.inputs if isinstance(x, Ref)):
            r.inputs = [mapping.get(x, x) if isinstance(x, Ref) else x for x in r.inputs]
    outputs[:] = [mapping.get(x, x) if isinstance(x, Ref) else x for x in outputs]


def _fuse_swish(recs: list[_Rec], outputs: list[Operand]) -> None:
    by_name = {r.name: r for r in recs}
    uses = _consumers(recs, outputs)
    dead: set[str] = set()
    for r in recs:
        if r.op != "Mul" or len(r.inputs) != 2 or not all(isinstance(x, Ref) for x in r.inputs):
            continue
        for s_slot in (0, 1):
            s_ref, x_ref = r.inputs[s_slot], r.inputs[1 - s_slot]
            assert isinstance(s_ref, Ref)
            sig = by_name[s_ref.node]
            if (
                sig.op == "Sigmoid"
                and sig.inputs[0] == x_ref
                and uses[sig.name] == 1
                and r.in_shapes[0] == r.in_shapes[1] == r.out_shapes[0]
            ):
                r.op, r.attrs = "Swish", {}
                r.inputs, r.in_shapes = [x_ref], [r.in_shapes[1 - s_slot]]
                dead.add(sig.name)
                break
    recs[:] = [r for r in recs if r.name not in dead]


def _fold_linear_bias(recs: list[_Rec], outputs: list[Operand]) -> None:
    by_name = {r.name: r for r in recs}
    uses = _consumers(recs, outputs)
    dead: set[str] = set()
    moved: dict[Ref, Ref] = {}
    for r in recs:
        if r.op != "Add" or len(r.inputs) != 2:
            continue
        refs = [x for x in r.inputs if isinstance(x, Ref)]
        consts = [x for x in r.inputs if isinstance(x, Const)]
        if len(refs) != 1 or len(consts) != 1 or refs[0].index != 0:
            continue
        g = by_name[refs[0].node]
        if g.op != "Gemm" or g.attrs["bias"] or uses[g.name] != 1 or g.out_shapes[0] != r.out_shapes[0]:
            continue
        b = consts[0].value
        if b.size != g.attrs["out_features"] or b.shape[-1:] != (b.size,):
            continue
        g.weights["bias"] = np.ascontiguousarray(b.reshape(-1))
        g.weight_names["bias"] = consts[0].name
        g.attrs = {**g.attrs, "bias": True}
        dead.add(r.name)
        moved[Ref(r.name, 0)] = Ref(g.name, 0)
    _redirect(recs, outputs, moved)
    recs[:] = [r for r in recs if r.name not in dead]


def _flatten_adds(recs: list[_Rec], outputs: list[Operand]) -> None:
    """Write every sum as one n-ary ``Add`` of non-``Add`` terms.

    A same-shape ``Add`` operand of an ``Add`` is replaced by its own operands, whether or not it has
    other consumers (it stays for those); an inner sum left without consumers is removed. So
    ``(a + b) + c``, ``a + (b + c)`` and ``Sum(a, b, c)`` become the same node, and a partial sum
    that one writer shares and another recomputes looks the same either way.
    """
    by_name = {r.name: r for r in recs}
    absorbed: set[str] = set()
    for r in recs:  # topological order: inner sums are flat before outer ones look at them
        if r.op != "Add":
            continue
        new_in: list[Operand] = []
        new_shapes: list[Shape | None] = []
        for x, s in zip(r.inputs, r.in_shapes, strict=True):
            inner = by_name.get(x.node) if isinstance(x, Ref) else None
            if (
                inner is not None
                and inner.op == "Add"
                and s == r.out_shapes[0]
                and all(t == r.out_shapes[0] for t in inner.in_shapes)
            ):
                new_in.extend(inner.inputs)
                new_shapes.extend(inner.in_shapes)
                absorbed.add(inner.name)
            else:
                new_in.append(x)
                new_shapes.append(s)
        r.inputs, r.in_shapes = new_in, new_shapes
    uses = _consumers(recs, outputs)
    recs[:] = [r for r in recs if not (r.name in absorbed and uses[r.name] == 0)]


def _dedupe(recs: list[_Rec], outputs: list[Operand]) -> None:
    """Merge stateless nodes that apply the same op to the same operands (common subexpressions).

    Exporters differ in whether they do this (TorchScript's does); doing it here makes, for example,
    two ReLU-Conv-BN edges that read one tensor share their ReLU whichever way the graph was written.
    Nodes with weights or constant operands are never merged: they hold distinct parameters.
    """
    seen: dict[tuple[object, ...], str] = {}
    moved: dict[Ref, Ref] = {}
    for r in recs:  # topological order: operands are already redirected when a node is looked at
        if moved:
            r.inputs = [moved.get(x, x) if isinstance(x, Ref) else x for x in r.inputs]
        if r.op == "Input" or r.weights or any(isinstance(x, Const) for x in r.inputs):
            continue
        operands = list(zip(r.inputs, r.in_shapes, strict=True))
        if OPS[r.op].commutative:
            operands.sort(key=repr)
        key = (r.op, repr(sorted(r.attrs.items())), tuple(operands))
        if key in seen:
            for k in range(len(r.out_shapes)):
                moved[Ref(r.name, k)] = Ref(seen[key], k)
        else:
            seen[key] = r.name
    outputs[:] = [moved.get(x, x) if isinstance(x, Ref) else x for x in outputs]
    dead = {ref.node for ref in moved}
    recs[:] = [r for r in recs if r.name not in dead]


PASSES = (_fuse_swish, _fold_linear_bias, _flatten_adds, _dedupe)


# --------------------------------------------------------------------------- entry point


def from_onnx(
    model: str | Path | bytes | onnx.ModelProto, input_shapes: Mapping[str, Shape] | Shape | None = None
) -> ArchGraph:
    """Build an :class:`ArchGraph` from an ONNX model. See the module docstring for the steps."""
    prep = prepare(model, input_shapes)
    where = prep.where
    ctx = _Ctx(prep)
    g = prep.inferred.graph
    for inp in g.input:
        if inp.name not in prep.inputs:
            continue
        name = ctx.unique(inp.name)
        ctx.recs.append(_Rec(name, "Input", {}, [], [], [ctx.shape(inp.name)]))
        ctx.env[inp.name] = Ref(name, 0)
    for n in g.node:
        ctx.onode = n
        if n.domain not in ("", "ai.onnx"):
            raise ctx.unsupported(f"op {n.domain}::{n.op_type} is outside the standard ONNX domain")
        conv = CONVERTERS.get(n.op_type)
        if conv is None:
            if ctx.fold():
                continue
            raise UnsupportedOpError(
                f"{where}: node {n.name!r}: op {n.op_type!r} is not supported by the IR; supported ONNX ops: "
                f"{', '.join(sorted(CONVERTERS))}",
                op=n.op_type,
                node=n.name,
            )
        conv(ctx, n)
    ctx.onode = None
    outputs: list[Operand] = []
    out_shapes: list[Shape] = []
    for o in g.output:
        v = ctx.consts.get(o.name)
        if v is not None:
            raise IRError(f"{where}: graph output {o.name!r} is a constant that does not depend on any input")
        val = ctx.value(o.name)
        outputs.append(None if val is ZERO else val)  # type: ignore[arg-type]
        out_shapes.append(ctx.shape(o.name))
    for p in PASSES:
        p(ctx.recs, outputs)
    nodes = [_freeze(r) for r in ctx.recs]
    return ArchGraph(nodes, outputs, out_shapes, name=g.name or where, has_weights=not ctx.dataless)


def _freeze(r: _Rec) -> Node:
    consts = [x.value for x in r.inputs if isinstance(x, Const)]
    return Node(
        name=r.name,
        op=r.op,
        attrs=r.attrs,
        inputs=tuple(r.inputs),
        in_shapes=tuple(r.in_shapes),
        out_shapes=tuple(r.out_shapes),
        weights=r.weights,
        weight_names=r.weight_names,
        params=count_params(r.op, r.weights, consts),
        flops=count_flops(r.op, r.attrs, r.in_shapes, r.out_shapes),
    )
