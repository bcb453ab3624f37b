"""Helpers that build small ONNX models with ``onnx.helper`` (milliseconds each).

:class:`OnnxBuilder` accumulates nodes and initializers; ``build()`` returns a ``ModelProto``
(opset 17 unless told, so reduction axes are attributes). The models are not checked here: the importer's own
``onnx.checker`` step is what the tests exercise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
FLOAT = TensorProto.FLOAT


class OnnxBuilder:
    """Build a small ONNX graph node by node.

    ``node()`` names its node and output tensor automatically (``n0``, ``t0``, ...) unless told
    otherwise and returns the output tensor name, so graphs read as expressions::

        b = OnnxBuilder()
        x = b.input("x", (1, 3, 8, 8))
        y = b.node("Relu", [b.conv(x, 8, 3, pads=(1, 1, 1, 1))])
        model = b.build([y])
    """

    def __init__(self, name: str = "g", seed: int = 0, opset: int = OPSET) -> None:
        self.name = name
        self.opset = opset
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self._k = 0

    # -- naming
    def fresh(self, prefix: str) -> str:
        self._k += 1
        return f"{prefix}{self._k}"

    # -- graph pieces
    def input(self, name: str, shape: Sequence[int | str | None] | None, elem_type: int = FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, None if shape is None else list(shape)))
        return name

    def init(self, value: np.ndarray | float | Sequence[float], name: str | None = None) -> str:
        name = name or self.fresh("c")
        arr = np.asarray(value)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def weight(self, *shape: int) -> str:
        return self.init(self.rng.standard_normal(shape).astype(np.float32), self.fresh("w"))

    def node(
        self,
        op: str,
        inputs: Sequence[str],
        *,
        n_out: int = 1,
        name: str | None = None,
        outputs: Sequence[str] | None = None,
        domain: str | None = None,
        **attrs: Any,
    ) -> str:
        """Add one node; return its first output tensor's name."""
        name = name or self.fresh("n")
        outs = list(outputs) if outputs is not None else [f"{name}_out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, domain=domain, **attrs))
        return outs[0]

    # -- layers with random weights
    def conv(self, x: str, c_in: int, c_out: int, k: int, *, bias: bool = True, groups: int = 1, **attrs: Any) -> str:
        ins = [x, self.weight(c_out, c_in // groups, k, k)]
        if bias:
            ins.append(self.weight(c_out))
        if groups != 1:
            attrs["group"] = groups
        return self.node("Conv", ins, **attrs)

    def bn(self, x: str, c: int, **attrs: Any) -> str:
        scale = self.init(np.ones(c, np.float32))
        bias = self.init(np.zeros(c, np.float32))
        mean = self.init(np.zeros(c, np.float32))
        var = self.init(np.ones(c, np.float32))
        return self.node("BatchNormalization", [x, scale, bias, mean, var], **attrs)

    def gemm(self, x: str, f_in: int, f_out: int, *, bias: bool = True, trans_b: int = 1) -> str:
        w = self.weight(f_out, f_in) if trans_b else self.weight(f_in, f_out)
        ins = [x, w] + ([self.weight(f_out)] if bias else [])
        return self.node("Gemm", ins, transB=trans_b)

    def output(self, tensor: str, shape: Sequence[int] | None = None) -> None:
        self.outputs.append(helper.make_tensor_value_info(tensor, FLOAT, None if shape is None else list(shape)))

    def build(self, outputs: Sequence[str] = (), *, nodes: Sequence[onnx.NodeProto] | None = None) -> onnx.ModelProto:
        """The model; ``nodes`` overrides the node list (e.g. a permutation of ``self.nodes``)."""
        outs = self.outputs + [helper.make_tensor_value_info(o, FLOAT, None) for o in outputs]
        graph = helper.make_graph(
            list(self.nodes if nodes is None else nodes), self.name, self.inputs, outs, self.inits
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8 if self.opset >= 15 else 6
        _type_outputs(model)
        return model


def _type_outputs(model: onnx.ModelProto) -> None:
    """Give shapeless graph outputs their inferred shape: ``onnx.checker`` requires one.

    Intermediate value infos are not kept, so the importer does its own inference. A model that
    cannot be inferred (a cycle, an unknown op) is left as it is.
    """
    if all(o.type.tensor_type.HasField("shape") for o in model.graph.output):
        return
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for o in probe.graph.output:
        if not o.type.tensor_type.HasField("shape"):
            o.ClearField("type")  # let inference pick the element type too (e.g. int64 indices)
    try:
        inferred = onnx.shape_inference.infer_shapes(probe)
    except Exception:
        return
    by_name = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for o in model.graph.output:
        v = by_name.get(o.name)
        if not o.type.tensor_type.HasField("shape") and v is not None and v.type.tensor_type.HasField("shape"):
            o.type.CopyFrom(v.type)


def two_layer_net(batch: int = 1) -> onnx.ModelProto:
    """Conv 3->8 k3 pad1 (bias) on Bx3x8x8, BatchNorm, Relu, GlobalAveragePool, Flatten, Gemm 8->10."""
    b = OnnxBuilder("two_layer")
    x = b.input("x", (batch, 3, 8, 8))
    h = b.conv(x, 3, 8, 3, pads=[1, 1, 1, 1])
    h = b.bn(h, 8)
    h = b.node("Relu", [h])
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    return b.build([b.gemm(h, 8, 10)])


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def rename(model: onnx.ModelProto, mapping: dict[str, str]) -> onnx.ModelProto:
    """A copy with node names and intermediate tensor names replaced by ``mapping`` (missing keys kept).

    Graph inputs, outputs and initializers keep their names.
    """
    out = copy_model(model)
    fixed = (
        {i.name for i in out.graph.input} | {o.name for o in out.graph.output} | {t.name for t in out.graph.initializer}
    )
    for n in out.graph.node:
        n.name = mapping.get(n.name, n.name)
        for seq in (n.input, n.output):
            for i, t in enumerate(seq):
                if t and t not in fixed:
                    seq[i] = mapping.get(t, t)
    return out


def with_nodes(model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto]) -> onnx.ModelProto:
    """A copy of ``model`` whose node list is ``nodes`` (e.g. a permutation of its nodes)."""
    out = copy_model(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out
