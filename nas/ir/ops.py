"""The canonical atomic op set of the IR, with parameter and FLOP counting.

Every :class:`~nas.ir.graph.Node` carries one of the op names in :data:`OPS`. An op spec says how
its parameters and FLOPs are counted, whether its inputs commute (for the fingerprint), and whether
it maps all-zero inputs to an all-zero output (for the removal of zero edges).

FLOPs convention
----------------
FLOPs are counted the way the NAS literature counts them (NAS-Bench-201's ``get_model_infos``,
thop, fvcore), per sample:

* Conv, Gemm (a linear layer) and MatMul count one FLOP per multiply-accumulate, plus one per output
  element for a bias.
* MaxPool and AvgPool count the kernel area per output element; global pooling counts one per input
  element.
* Element-wise ops, activations, normalization, softmax, concatenation and data movement count 0.

Parameters are the learnable tensors: Conv and Gemm weights and biases, BatchNorm and LayerNorm scale
and bias (running statistics are buffers, as in PyTorch), and constant operands of element-wise ops
with more than one element (position embeddings, layer scales). Scalar constants are not parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Shape = tuple[int, ...]


def _numel(shape: Shape | None) -> int:
    return int(math.prod(shape)) if shape is not None else 0


def _zero(attrs: Mapping[str, Any], ins: Sequence[Shape | None], outs: Sequence[Shape]) -> int:
    return 0


def _conv_flops(attrs: Mapping[str, Any], ins: Sequence[Shape | None], outs: Sequence[Shape]) -> int:
    per_out = (attrs["in_channels"] // attrs["groups"]) * math.prod(attrs["kernel"])
    return _numel(outs[0]) * (per_out + (1 if attrs["bias"] else 0))


def _gemm_flops(attrs: Mapping[str, Any], ins: Sequence[Shape | None], outs: Sequence[Shape]) -> int:
    return _numel(outs[0]) * (attrs["in_features"] + (1 if attrs["bias"] else 0))


def _matmul_flops(attrs: Mapping[str, Any], ins: Sequence[Shape | None], outs: Sequence[Shape]) -> int:
    a = ins[0]
    k = a[-1] if a else 1
    return _numel(outs[0]) * k


def _pool_flops(attrs: Mapping[str, Any], ins: Sequence[Shape | None], outs: Sequence[Shape]) -> int:
    return _numel(outs[0]) * math.prod(attrs["kernel"])


def _global_pool_flops(attrs: Mapping[str, Any], ins: Sequence[Shape | None], outs: Sequence[Shape]) -> int:
    return _numel(ins[0])


@dataclass(frozen=True)
class OpSpec:
    """How one canonical op is counted and treated by graph passes.

    ``weight_roles`` name the learnable tensors the op owns (they are counted as parameters).
    ``commutative`` ops ignore the order of their inputs in the fingerprint. ``zero_preserving`` ops
    give an all-zero output when every data input is all-zero (for ``Mul`` and ``MatMul``, one zero
    input is enough, see :data:`ZERO_ABSORBING`).
    """

    name: str
    flops: Callable[[Mapping[str, Any], Sequence[Shape | None], Sequence[Shape]], int] = _zero
    weight_roles: tuple[str, ...] = ()
    commutative: bool = False
    zero_preserving: bool = False


_SPECS = [
    OpSpec("Input"),
    OpSpec("Conv", _conv_flops, ("weight", "bias")),
    OpSpec("Gemm", _gemm_flops, ("weight", "bias")),
    OpSpec("MatMul", _matmul_flops, zero_preserving=True),
    OpSpec("BatchNorm", weight_roles=("weight", "bias")),
    OpSpec("LayerNorm", weight_roles=("weight", "bias")),
    OpSpec("Relu", zero_preserving=True),
    OpSpec("LeakyRelu", zero_preserving=True),
    OpSpec("Sigmoid"),
    OpSpec("Tanh", zero_preserving=True),
    OpSpec("Gelu", zero_preserving=True),
    OpSpec("HardSwish", zero_preserving=True),
    OpSpec("HardSigmoid"),
    OpSpec("Swish", zero_preserving=True),
    OpSpec("Softmax"),
    OpSpec("Clip"),
    OpSpec("Erf", zero_preserving=True),
    OpSpec("Sqrt", zero_preserving=True),
    OpSpec("Exp"),
    OpSpec("MaxPool", _pool_flops, zero_preserving=True),
    OpSpec("AvgPool", _pool_flops, zero_preserving=True),
    OpSpec("GlobalAvgPool", _global_pool_flops, zero_preserving=True),
    OpSpec("GlobalMaxPool", _global_pool_flops, zero_preserving=True),
    OpSpec("ReduceMean", zero_preserving=True),
    OpSpec("ReduceSum", zero_preserving=True),
    OpSpec("Add", commutative=True, zero_preserving=True),
    OpSpec("Sub", zero_preserving=True),
    OpSpec("Mul", commutative=True, zero_preserving=True),
    OpSpec("Div"),
    OpSpec("Pow"),
    OpSpec("Concat", zero_preserving=True),
    OpSpec("Split", zero_preserving=True),
    OpSpec("Slice", zero_preserving=True),
    OpSpec("Gather", zero_preserving=True),
    OpSpec("Transpose", zero_preserving=True),
    OpSpec("Pad", zero_preserving=True),
]

#: Canonical op name -> spec.
OPS: dict[str, OpSpec] = {s.name: s for s in _SPECS}

#: Ops whose output is all-zero as soon as one input is all-zero.
ZERO_ABSORBING = frozenset({"Mul", "MatMul"})


def count_params(op: str, weights: Mapping[str, np.ndarray], consts: Sequence[np.ndarray]) -> int:
    """Learnable parameter count of one node (see the module docstring for the convention)."""
    n = sum(int(weights[r].size) for r in OPS[op].weight_roles if r in weights)
    n += sum(int(c.size) for c in consts if c.size > 1)
    return n


def count_flops(
    op: str, attrs: Mapping[str, Any], in_shapes: Sequence[Shape | None], out_shapes: Sequence[Shape]
) -> int:
    """FLOPs of one node for the recorded shapes (including the batch dimension)."""
    return int(OPS[op].flops(attrs, in_shapes, out_shapes))
