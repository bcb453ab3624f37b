"""`ArchGraph.fingerprint()`: invariant to node order and names, sensitive to ops, attributes and
operand order of non-commutative ops, deterministic across calls and processes.

The property tests draw random small DAGs (Relu/Sigmoid/Tanh, Conv k1/k3, Add, Concat) as a list of
op specs, build them with ``onnx.helper``, then permute the ONNX node list and rename every node and
intermediate tensor.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, replace

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.ir import ArchGraph, from_onnx
from tests.nas.ir.onnx_builders import OnnxBuilder, rename, two_layer_net, with_nodes

SETTINGS = settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
ACTIVATIONS = ("Relu", "Sigmoid", "Tanh")
C = 4  # input channels
MAX_CH = 16


@dataclass(frozen=True)
class Op:
    """One op of a random DAG: ``args`` index earlier tensors (0 is the graph input)."""

    kind: str
    args: tuple[int, ...]
    kernel: int = 1
    out_ch: int = C


@st.composite
def dags(draw: st.DrawFn) -> list[Op]:
    channels = [C]
    spec: list[Op] = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(("act", "act", "Conv", "Add", "Concat")))
        i = draw(st.integers(0, len(channels) - 1))
        if kind == "Add":
            same = [j for j, c in enumerate(channels) if c == channels[i]]
            spec.append(Op("Add", (i, draw(st.sampled_from(same)))))
            channels.append(channels[i])
            continue
        if kind == "Concat":
            j = draw(st.integers(0, len(channels) - 1))
            if channels[i] + channels[j] <= MAX_CH:
                spec.append(Op("Concat", (i, j)))
                channels.append(channels[i] + channels[j])
                continue
            kind = "act"
        if kind == "Conv":
            op = Op("Conv", (i,), kernel=draw(st.sampled_from((1, 3))), out_ch=draw(st.sampled_from((C, 2 * C))))
            spec.append(op)
            channels.append(op.out_ch)
        else:
            spec.append(Op(draw(st.sampled_from(ACTIVATIONS)), (i,)))
            channels.append(channels[i])
    return spec


def build(spec: list[Op], *, seed: int = 0, stride_of: int | None = None) -> tuple[onnx.ModelProto, OnnxBuilder]:
    """The ONNX model of ``spec``; every tensor nobody consumes is a graph output, in creation order."""
    b = OnnxBuilder("dag", seed=seed)
    tensors = [b.input("x", (1, C, 6, 6))]
    channels = [C]
    used: set[int] = set()
    for k, op in enumerate(spec):
        ins = [tensors[a] for a in op.args]
        used.update(op.args)
        if op.kind == "Conv":
            extra = {"strides": [2, 2]} if k == stride_of else {}
            t = b.conv(ins[0], channels[op.args[0]], op.out_ch, op.kernel, pads=[op.kernel // 2] * 4, **extra)
            ch = op.out_ch
        elif op.kind == "Concat":
            t = b.node("Concat", ins, axis=1)
            ch = channels[op.args[0]] + channels[op.args[1]]
        else:
            t = b.node(op.kind, ins)
            ch = channels[op.args[0]]
        tensors.append(t)
        channels.append(ch)
    outs = [t for k, t in enumerate(tensors) if k > 0 and k not in used]
    return b.build(outs), b


def fp(model: onnx.ModelProto) -> str:
    return from_onnx(model).fingerprint()


def _renaming(model: onnx.ModelProto, names: list[str]) -> dict[str, str]:
    fixed = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    fixed |= {t.name for t in model.graph.initializer}
    old = [n.name for n in model.graph.node]
    old += [t for n in model.graph.node for t in n.output if t not in fixed]
    return {o: f"r/{new}" for o, new in zip(old, names, strict=False)}


NAMES = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_.:-", min_size=1, max_size=10),
    min_size=40,
    max_size=40,
    unique=True,
)


# --------------------------------------------------------------------------- invariance


@SETTINGS
@given(spec=dags(), data=st.data(), names=NAMES)
def test_fingerprint_ignores_node_order_and_names(spec: list[Op], data: st.DataObject, names: list[str]) -> None:
    model, b = build(spec)
    ref = from_onnx(model)
    order = data.draw(st.permutations(range(len(b.nodes))), label="node order")
    shuffled = with_nodes(model, [b.nodes[i] for i in order])
    mapping = _renaming(model, names)
    renamed = rename(shuffled, mapping)
    assert {n.name for n in renamed.graph.node}.isdisjoint({n.name for n in model.graph.node})
    g = from_onnx(renamed)
    assert g.fingerprint() == ref.fingerprint()
    assert len(g) == len(ref)
    assert g.summary()["op_counts"] == ref.summary()["op_counts"]
    assert (g.params, g.flops, g.depth) == (ref.params, ref.flops, ref.depth)


@SETTINGS
@given(spec=dags(), seed=st.integers(0, 2**16))
def test_fingerprint_ignores_weight_values(spec: list[Op], seed: int) -> None:
    assert fp(build(spec, seed=seed)[0]) == fp(build(spec, seed=seed + 1)[0])


# --------------------------------------------------------------------------- sensitivity

_NEXT_ACT = {"Relu": "Tanh", "Tanh": "Sigmoid", "Sigmoid": "Relu"}


@SETTINGS
@given(spec=dags(), data=st.data())
def test_changing_one_op_changes_the_fingerprint(spec: list[Op], data: st.DataObject) -> None:
    mutable = [k for k, op in enumerate(spec) if op.kind in _NEXT_ACT or op.kind == "Conv"]
    if not mutable:
        spec = [*spec, Op("Relu", (len(spec),))]
        mutable = [len(spec) - 1]
    k = data.draw(st.sampled_from(mutable), label="mutated op")
    op = spec[k]
    if op.kind == "Conv":
        changed = replace(op, kernel=4 - op.kernel)  # 3 <-> 1; the padding keeps the shapes
    else:
        changed = replace(op, kind=_NEXT_ACT[op.kind])
    mutated = [*spec[:k], changed, *spec[k + 1 :]]
    assert fp(build(spec)[0]) != fp(build(mutated)[0])


@SETTINGS
@given(spec=dags())
def test_conv_stride_changes_the_fingerprint(spec: list[Op]) -> None:
    # a stride-2 conv as the last op keeps every other shape valid
    spec = [*spec, Op("Conv", (len(spec),), kernel=3)]
    assert fp(build(spec)[0]) != fp(build(spec, stride_of=len(spec) - 1)[0])


def test_fingerprint_changes_with_each_single_edit() -> None:
    base = [Op("Conv", (0,), kernel=3), Op("Relu", (1,)), Op("Conv", (0,), kernel=1), Op("Add", (2, 3))]
    edits = [
        [Op("Conv", (0,), kernel=1), *base[1:]],
        [base[0], Op("Tanh", (1,)), *base[2:]],
        [*base[:2], Op("Conv", (0,), kernel=1, out_ch=C), Op("Concat", (2, 3))],
        [*base[:2], Op("Conv", (1,), kernel=1), Op("Add", (2, 3))],  # rewired edge
        [*base[:3], Op("Add", (2, 3)), Op("Sigmoid", (4,))],  # one more op
    ]
    prints = [fp(build(s)[0]) for s in [base, *edits]]
    assert len(set(prints)) == len(prints)
    tail = [*base, Op("Conv", (4,), kernel=3)]
    assert fp(build(tail)[0]) != fp(build(tail, stride_of=4)[0])


# --------------------------------------------------------------------------- operand order


def _binary(op: str, swap: bool, **attrs) -> ArchGraph:
    b = OnnxBuilder()
    x = b.input("x", (1, C, 4, 4))
    r, t = b.node("Relu", [x]), b.node("Tanh", [x])
    return from_onnx(b.build([b.node(op, [t, r] if swap else [r, t], **attrs)]))


@pytest.mark.parametrize(("op", "attrs"), [("Sub", {}), ("Concat", {"axis": 1}), ("Div", {})])
def test_swapping_inputs_of_a_non_commutative_op_changes_it(op: str, attrs: dict[str, int]) -> None:
    assert _binary(op, False, **attrs).fingerprint() != _binary(op, True, **attrs).fingerprint()


@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_swapping_inputs_of_a_commutative_op_keeps_it(op: str) -> None:
    a, b = _binary(op, False), _binary(op, True)
    assert a.fingerprint() == b.fingerprint()
    assert a.to_text() != b.to_text()  # the stored operand order did change


# --------------------------------------------------------------------------- determinism

_FRESH = (
    "from nas.ir import from_onnx\n"
    "from tests.nas.ir.onnx_builders import two_layer_net\n"
    "print(from_onnx(two_layer_net()).fingerprint())\n"
)


def test_fingerprint_is_a_deterministic_hex_string() -> None:
    g = from_onnx(two_layer_net())
    first = g.fingerprint()
    assert isinstance(first, str) and len(first) == 32
    int(first, 16)  # hexadecimal
    assert g.fingerprint() == first
    assert from_onnx(two_layer_net()).fingerprint() == first
    assert from_onnx(two_layer_net().SerializeToString()).fingerprint() == first


def test_fingerprint_is_the_same_in_a_fresh_process() -> None:
    """A cache key must not depend on hash randomization or on what ran before."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": root}
    out = subprocess.run([sys.executable, "-c", _FRESH], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == from_onnx(two_layer_net()).fingerprint()


# --------------------------------------------------------------------------- known collisions


def _broadcast_sub(swap: bool) -> onnx.ModelProto:
    b = OnnxBuilder()
    x = b.input("x", (1, 32))
    col, row = b.init(np.array([1, 32, 1], np.int64)), b.init(np.array([1, 1, 32], np.int64))
    a = b.node("Reshape", [b.node("Relu", [x]), row if swap else col])
    t = b.node("Reshape", [b.node("Tanh", [x]), col if swap else row])
    return b.build([b.node("Sub", [a, t])])


def test_operand_reshapes_that_change_broadcasting_change_it() -> None:
    g1, g2 = from_onnx(_broadcast_sub(False)), from_onnx(_broadcast_sub(True))
    assert g1.nodes[-1].in_shapes != g2.nodes[-1].in_shapes  # two different computations
    assert g1.fingerprint() != g2.fingerprint()


def _pow(exponent: float) -> ArchGraph:
    b = OnnxBuilder()
    x = b.input("x", (1, 4))
    return from_onnx(b.build([b.node("Pow", [x, b.init(np.float32(exponent))])]))


def test_scalar_constant_operands_enter_it() -> None:
    assert _pow(2.0).fingerprint() != _pow(3.0).fingerprint()
