"""A small writer of structure-only ONNX models, shared by the search spaces' direct graph builders.

Building a network with ``onnx.helper`` takes milliseconds, where exporting its PyTorch module takes
a tenth of a second to a second. The model is structure-only (:func:`~nas.ir.onnx_import.structure_only_model`):
weights are typed graph inputs with shapes and no values, so ``ArchGraph.from_onnx`` reads the
network without allocating them and ``to_torch()`` initializes them. Each space's builder subclasses
:class:`OnnxWriter`, and its tests check that the graph equals the exported module's (same fingerprint).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nas.ir.onnx_import import structure_only_model


@functools.lru_cache(maxsize=256)
def _weight_type(shape: tuple[int, ...]) -> onnx.TypeProto:
    return helper.make_tensor_type_proto(TensorProto.FLOAT, list(shape))


def _hashable(v: object) -> object:
    return tuple(v) if isinstance(v, list) else v


@functools.lru_cache(maxsize=512)
def _attributes(items: tuple[tuple[str, object], ...]) -> list[onnx.AttributeProto]:
    """Attribute protos for one attribute set, built once (``make_attribute`` is slow)."""
    return [helper.make_attribute(k, list(v) if isinstance(v, tuple) else v) for k, v in items]


class OnnxWriter:
    """Collects nodes, constants and shape-only weights; :meth:`model` wraps them in a model.

    Every tensor gets a fresh name ``{base}_{k}`` (one counter per writer); the graph's one data input is
    ``input`` and the node that writes ``output`` is its one output.
    """

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.weights: list[onnx.ValueInfoProto] = []
        self.k = 0

    def fresh(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def weight(self, shape: tuple[int, ...], base: str = "w") -> str:
        """A float weight with a shape and no values: a typed graph input."""
        name = self.fresh(base)
        vi = onnx.ValueInfoProto(name=name)
        vi.type.CopyFrom(_weight_type(tuple(shape)))
        self.weights.append(vi)
        return name

    def const(self, values: Sequence[int] | Sequence[float] | float, dtype: type = np.int64, base: str = "c") -> str:
        """An initializer with these values (an int64 vector by default; a scalar for a float)."""
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def batch_norm(self, x: str, c: int, eps: float = 1e-5, momentum: float = 0.9, base: str | None = None) -> str:
        """Inference BatchNormalization over ``c`` channels (ONNX's ``momentum``: PyTorch's ``1 - momentum``);
        its four weights are named ``scale``, ``bias``, ``mean``, ``var`` (or all ``base``)."""
        ins = [x] + [self.weight((c,), base or r) for r in ("scale", "bias", "mean", "var")]
        return self.node("BatchNormalization", ins, epsilon=eps, momentum=momentum)

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, pad: int = 0, dilation: int = 1,
             groups: int = 1, bias: bool = False) -> str:
        """A ``k x k`` convolution (bias-free unless ``bias``)."""
        ins = [x, self.weight((c_out, c_in // groups, k, k))] + ([self.weight((c_out,), "b")] if bias else [])
        return self.node("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                         dilations=[dilation, dilation], group=groups)

    def node(self, op: str, inputs: list[str], output: str | None = None, *, node_name: str | None = None,
             **attrs: object) -> str:
        """Append one node (named ``node_name``, by default its output); returns its (only) output's name."""
        out = output or self.fresh(op.lower())
        n = onnx.NodeProto(op_type=op, input=inputs, output=[out], name=node_name or out)
        n.attribute.extend(_attributes(tuple(sorted((k, _hashable(v)) for k, v in attrs.items()))))
        self.nodes.append(n)
        return out

    def gemm_output(self, x: str, c_in: int, c_out: int, name: str = "output") -> str:
        """The classifier (a node called ``name``): flatten, then ``output = x W^T + b``."""
        x = self.node("Flatten", [x], axis=1)
        w, b = self.weight((c_out, c_in)), self.weight((c_out,), "b")
        return self.node("Gemm", [x, w, b], "output", node_name=name, transB=1)

    def model(self, name: str, input_shape: Sequence[int], output_shape: Sequence[int]) -> onnx.ModelProto:
        return structure_only_model(name, self.nodes, input_shape, output_shape, self.inits, self.weights)
