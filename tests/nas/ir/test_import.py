"""ONNX -> ArchGraph import: typed errors, topological sorting, bookkeeping and zero-edge removal,
canonical attributes and peephole passes, and params/FLOPs against hand counts.

Every model is built with ``onnx.helper`` (see ``onnx_builders``) and imports in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from nas.errors import (
    DynamicShapeError,
    GraphCycleError,
    IRError,
    NasError,
    NoInputsError,
    OnnxLoadError,
    UnsupportedOpError,
)
from nas.ir import ArchGraph, Const, Ref, from_onnx
from nas.ir.features import node_features
from tests.nas.ir.onnx_builders import OnnxBuilder, two_layer_net, with_nodes

BOOKKEEPING = {"Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Constant"}


def ops(g: ArchGraph) -> list[str]:
    """The ops of the compute nodes, in graph order."""
    return [n.op for n in g if n.op != "Input"]


def only(g: ArchGraph, op: str):
    found = [n for n in g if n.op == op]
    assert len(found) == 1, f"expected one {op}, graph has {ops(g)}"
    return found[0]


def run_ort(model: onnx.ModelProto, **feeds: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


# --------------------------------------------------------------------------- errors


def test_truncated_file_is_onnx_load_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    onnx.save(two_layer_net(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxLoadError) as info:
        from_onnx(path)
    assert isinstance(info.value, NasError)
    assert str(path) in str(info.value)
    assert "truncated" in str(info.value)


def test_text_file_is_onnx_load_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a protobuf\n")
    with pytest.raises(OnnxLoadError, match="not a readable ONNX model") as info:
        from_onnx(str(path))
    assert str(path) in str(info.value)


def test_empty_file_is_onnx_load_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(OnnxLoadError, match="holds no graph") as info:
        from_onnx(path)
    assert str(path) in str(info.value)


def test_missing_file_is_onnx_load_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "missing.onnx"
    with pytest.raises(OnnxLoadError, match="no such ONNX file") as info:
        ArchGraph.from_onnx(path)
    assert str(path) in str(info.value)


def test_every_truncation_of_a_model_raises_a_nas_error() -> None:
    """No prefix of a serialized model escapes as a protobuf/onnx exception (6 ms for ~1900 cuts)."""
    data = two_layer_net().SerializeToString()
    kinds = set()
    for cut in range(len(data)):
        with pytest.raises(NasError) as info:
            from_onnx(data[:cut])
        assert f"<{cut} bytes>" in str(info.value)
        kinds.add(type(info.value))
    assert OnnxLoadError in kinds
    # the full model imports
    assert len(from_onnx(data)) == 6


def _cycle_model(with_tail: bool = False) -> onnx.ModelProto:
    b = OnnxBuilder("cyclic")
    x = b.input("x", (1, 4))
    b.node("Add", [x, "b_out"], name="node_a", outputs=["a_out"])
    b.node("Relu", ["a_out"], name="node_b", outputs=["b_out"])
    out = "b_out"
    if with_tail:
        out = b.node("Tanh", ["b_out"], name="node_tail", outputs=["tail_out"])
    b.output(out, (1, 4))
    return b.build()


def test_cycle_is_graph_cycle_error_listing_the_nodes() -> None:
    with pytest.raises(GraphCycleError) as info:
        from_onnx(_cycle_model())
    err = info.value
    assert isinstance(err, NasError)
    assert set(err.nodes) == {"node_a", "node_b"}
    assert "node_a" in str(err) and "node_b" in str(err)
    assert "cyclic" in str(err)


def test_cycle_error_lists_only_the_nodes_on_the_cycle() -> None:
    with pytest.raises(GraphCycleError) as info:
        from_onnx(_cycle_model(with_tail=True))
    assert set(info.value.nodes) == {"node_a", "node_b"}


def test_graph_whose_only_inputs_are_initializers_is_no_inputs_error() -> None:
    b = OnnxBuilder("consts_only")
    w = b.init(np.ones((1, 4), np.float32), "w")
    b.inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 4]))
    y = b.node("Relu", [w])
    with pytest.raises(NoInputsError, match="no inputs") as info:
        from_onnx(b.build([y]))
    assert "consts_only" in str(info.value)


def _nms_model() -> onnx.ModelProto:
    b = OnnxBuilder()
    boxes = b.input("boxes", (1, 10, 4))
    scores = b.input("scores", (1, 1, 10))
    return b.build([b.node("NonMaxSuppression", [boxes, scores], name="the_nms")])


def _loop_model() -> onnx.ModelProto:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Relu", ["x_in"], ["x_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1, 4]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1, 4]),
        ],
    )
    b = OnnxBuilder()
    x = b.input("x", (1, 4))
    y = b.node("Loop", [b.init(np.array(3, np.int64)), "", x], name="the_loop", body=body)
    b.output(y, (1, 4))
    return b.build()


def _custom_model() -> onnx.ModelProto:
    b = OnnxBuilder()
    x = b.input("x", (1, 4))
    b.output(b.node("FancyOp", [x], name="the_custom", domain="com.example"), (1, 4))
    model = b.build()
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return model


@pytest.mark.parametrize(
    ("build", "op", "node"),
    [
        (_nms_model, "NonMaxSuppression", "the_nms"),
        (_loop_model, "Loop", "the_loop"),
        (_custom_model, "FancyOp", "the_custom"),
    ],
)
def test_unsupported_op_names_op_and_node(build, op: str, node: str) -> None:
    with pytest.raises(UnsupportedOpError) as info:
        from_onnx(build())
    err = info.value
    assert isinstance(err, IRError)
    assert err.op == op
    assert err.node == node
    assert repr(node) in str(err)
    assert op in str(err)


def _dynamic_model(dims: tuple[int | str, ...]) -> onnx.ModelProto:
    b = OnnxBuilder("dyn")
    x = b.input("x", dims)
    return b.build([b.node("Relu", [b.conv(x, 3, 4, 3, pads=[1, 1, 1, 1])])])


def test_dynamic_spatial_dim_without_shape_is_dynamic_shape_error() -> None:
    with pytest.raises(DynamicShapeError) as info:
        from_onnx(_dynamic_model((1, 3, "H", 8)))
    msg = str(info.value)
    assert "'x'" in msg and "[2]" in msg and "input_shapes" in msg


def test_dynamic_spatial_dim_with_given_shape_imports() -> None:
    g = from_onnx(_dynamic_model((1, 3, "H", 8)), input_shapes=(1, 3, 8, 8))
    assert g.inputs[0].out_shapes == ((1, 3, 8, 8),)
    assert only(g, "Conv").out_shapes == ((1, 4, 8, 8),)
    # the mapping form gives the same graph
    g2 = from_onnx(_dynamic_model((1, 3, "H", 8)), input_shapes={"x": (1, 3, 8, 8)})
    assert g2.fingerprint() == g.fingerprint()


@pytest.mark.parametrize("batch_dim", ["N", None])
def test_dynamic_batch_dim_defaults_to_one(batch_dim: str | None) -> None:
    g = from_onnx(_dynamic_model((batch_dim, 3, 8, 8)))
    assert g.batch_size == 1
    assert g.inputs[0].out_shapes == ((1, 3, 8, 8),)
    assert g.output_shapes == ((1, 4, 8, 8),)


def test_given_shape_overrides_a_dynamic_batch() -> None:
    g = from_onnx(_dynamic_model(("N", 3, 8, 8)), input_shapes=(4, 3, 8, 8))
    assert g.batch_size == 4
    assert g.flops == from_onnx(_dynamic_model(("N", 3, 8, 8))).flops  # per sample


@pytest.mark.parametrize(
    ("shape", "match"),
    [((1, 3, 8), "rank"), ((1, 4, 8, 8), "fixed to 3"), ({"y": (1, 3, 8, 8)}, "unknown inputs")],
)
def test_inconsistent_given_shape_is_dynamic_shape_error(shape, match: str) -> None:
    with pytest.raises(DynamicShapeError, match=match):
        from_onnx(_dynamic_model((1, 3, "H", 8)), input_shapes=shape)


# --------------------------------------------------------------------------- topological order


def _branchy(b: OnnxBuilder) -> str:
    x = b.input("x", (1, 4, 6, 6))
    a = b.node("Relu", [b.conv(x, 4, 4, 3, pads=[1, 1, 1, 1])])
    c = b.node("Sigmoid", [b.conv(x, 4, 4, 1)])
    s = b.node("Add", [a, c])
    return b.node("Concat", [s, b.node("Tanh", [a])], axis=1)


def test_nodes_out_of_topological_order_are_sorted() -> None:
    b = OnnxBuilder("branchy")
    model = b.build([_branchy(b)])
    ref = from_onnx(model)
    for nodes in (list(reversed(b.nodes)), b.nodes[3:] + b.nodes[:3]):
        g = from_onnx(with_nodes(model, nodes))
        assert g.fingerprint() == ref.fingerprint()
        assert sorted(n.name for n in g) == sorted(n.name for n in ref)
        assert g.summary() == ref.summary()
        position = {n.name: i for i, n in enumerate(g)}
        for n in g:
            assert all(position[r.node] < position[n.name] for _, r in n.refs)


def test_reversed_chain_gives_the_same_node_sequence() -> None:
    model = two_layer_net()
    g = from_onnx(with_nodes(model, list(reversed(model.graph.node))))
    assert g.to_text() == from_onnx(model).to_text()


# --------------------------------------------------------------------------- bookkeeping nodes


def test_bookkeeping_nodes_are_dropped_and_consumers_record_the_reshape() -> None:
    b = OnnxBuilder()
    x = b.input("x", (2, 3, 4, 4))
    h = b.node("Dropout", [b.node("Identity", [x])])
    h = b.node("Relu", [h], name="relu")
    h = b.node("Reshape", [h, b.init(np.array([2, 3, 16], np.int64))])
    h = b.node("Unsqueeze", [h, b.init(np.array([1], np.int64))])
    h = b.node("Squeeze", [h, b.init(np.array([1], np.int64))])
    h = b.node("Cast", [h], to=TensorProto.FLOAT)
    h = b.node("Flatten", [h], axis=1)
    two = b.node("Constant", [], value=helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0]))
    h = b.node("Mul", [h, two], name="scale")
    y = b.node("Sigmoid", [h], name="sig")
    g = from_onnx(b.build([y]))

    assert ops(g) == ["Relu", "Mul", "Sigmoid"]
    assert not BOOKKEEPING & {n.op for n in g}
    relu, mul, sig = g.node("relu"), g.node("scale"), g.node("sig")
    assert relu.out_shapes == ((2, 3, 4, 4),)
    assert mul.inputs[0] == Ref("relu", 0)
    assert mul.in_shapes[0] == (2, 48)  # the flattened view, not the producer's shape
    const = mul.inputs[1]
    assert isinstance(const, Const) and const.value.tolist() == [2.0]
    assert sig.in_shapes == ((2, 48),) and sig.out_shapes == ((2, 48),)
    assert g.output_shapes == ((2, 48),)


def test_flatten_before_gemm_is_recorded_on_the_gemm() -> None:
    g = from_onnx(two_layer_net())
    assert "Flatten" not in ops(g)
    assert only(g, "GlobalAvgPool").out_shapes == ((1, 8, 1, 1),)
    assert only(g, "Gemm").in_shapes == ((1, 8),)


# --------------------------------------------------------------------------- zero edges


def test_mul_by_zero_branch_is_removed_with_its_add() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 3, 4, 4))
    zero = b.node("Mul", [x, b.init(np.float32(0.0))], name="times_zero")
    conv = b.conv(x, 3, 3, 3, pads=[1, 1, 1, 1])
    y = b.node("Add", [conv, zero], name="add")
    g = from_onnx(b.build([y]))
    assert ops(g) == ["Conv"]
    assert g.outputs == (Ref(only(g, "Conv").name, 0),)
    assert g.output_shapes == ((1, 3, 4, 4),)


def test_zero_operand_of_an_nary_sum_is_dropped() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 3, 4, 4))
    zero = b.node("Mul", [b.init(np.zeros((), np.float32)), x])
    y = b.node("Sum", [b.node("Relu", [x]), zero, b.node("Tanh", [x])])
    g = from_onnx(b.build([y]))
    add = only(g, "Add")
    assert "Mul" not in ops(g)
    assert len(add.inputs) == 2 and all(isinstance(v, Ref) for v in add.inputs)


def test_zero_preserving_ops_propagate_zeros() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 3, 4, 4))
    zero = b.node("Mul", [x, b.init(np.float32(0.0))])
    pooled = b.node("MaxPool", [b.node("Relu", [zero])], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    conv = b.conv(x, 3, 3, 3, pads=[1, 1, 1, 1])
    s = b.node("Add", [conv, pooled])
    y = b.node("Concat", [s, pooled], axis=1, name="cat")
    g = from_onnx(b.build([y]))
    assert ops(g) == ["Conv", "Concat"]
    cat = g.node("cat")
    assert cat.inputs == (Ref(only(g, "Conv").name, 0), None)
    assert cat.in_shapes == ((1, 3, 4, 4), (1, 3, 4, 4))
    assert cat.out_shapes == ((1, 6, 4, 4),)


def test_all_zero_graph_output_is_none() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 3, 4, 4))
    zero = b.node("Relu", [b.node("Mul", [x, b.init(np.float32(0.0))])])
    g = from_onnx(b.build([zero, b.node("Add", [zero, x])]))
    assert ops(g) == []
    assert g.outputs == (None, Ref("x", 0))
    assert g.output_shapes == ((1, 3, 4, 4), (1, 3, 4, 4))


def test_ops_that_do_not_map_zero_to_zero_keep_a_none_operand() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 3, 4, 4))
    zero = b.node("Mul", [x, b.init(np.zeros((), np.float32))])
    bn = b.bn(zero, 3)
    sig = b.node("Sigmoid", [zero])
    y = b.node("Add", [b.node("Add", [bn, x]), sig])
    g = from_onnx(b.build([y]))
    bn_node, sig_node = only(g, "BatchNorm"), only(g, "Sigmoid")
    assert bn_node.inputs == (None,) and bn_node.in_shapes == ((1, 3, 4, 4),)
    assert bn_node.params == 6  # scale and shift stay parameters
    assert sig_node.inputs == (None,)
    assert "Mul" not in ops(g)
    assert node_features(bn_node, g.batch_size)[-1] == 1.0  # the zero_in feature counts the removed edge


def test_constant_pad_with_a_nonzero_value_is_not_zero() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 3, 4, 4))
    zero = b.node("Mul", [x, b.init(np.float32(0.0))])
    pads = b.init(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
    padded = b.node("Pad", [zero, pads, b.init(np.float32(1.0))], name="pad")
    y = b.node("Add", [padded, b.conv(x, 3, 3, 3, pads=[2, 2, 2, 2])])
    g = from_onnx(b.build([y]))
    assert "Pad" in ops(g)  # ones on the border survive the Add


# --------------------------------------------------------------------------- canonical attributes


def _conv_model(**attrs) -> onnx.ModelProto:
    b = OnnxBuilder(seed=7)
    x = b.input("x", (1, 3, 8, 8))
    return b.build([b.conv(x, 3, 4, 3, **attrs)])


def test_conv_default_and_explicit_default_attributes_are_identical() -> None:
    implicit = from_onnx(_conv_model())
    explicit = from_onnx(
        _conv_model(
            strides=[1, 1], dilations=[1, 1], pads=[0, 0, 0, 0], group=1, auto_pad="NOTSET", kernel_shape=[3, 3]
        )
    )
    a = only(implicit, "Conv").attrs
    assert a == only(explicit, "Conv").attrs
    assert a == {
        "kernel": (3, 3),
        "stride": (1, 1),
        "pad": (0, 0, 0, 0),
        "dilation": (1, 1),
        "groups": 1,
        "in_channels": 3,
        "out_channels": 4,
        "bias": True,
    }
    assert implicit.fingerprint() == explicit.fingerprint()


@pytest.mark.parametrize(
    ("auto_pad", "stride", "k", "pads"),
    [
        ("SAME_UPPER", 1, 4, (1, 1, 2, 2)),
        ("SAME_LOWER", 1, 4, (2, 2, 1, 1)),
        ("SAME_UPPER", 2, 3, (0, 0, 1, 1)),
        ("SAME_UPPER", 1, 3, (1, 1, 1, 1)),
        ("VALID", 2, 3, (0, 0, 0, 0)),
    ],
)
def test_auto_pad_resolves_to_explicit_pads(auto_pad: str, stride: int, k: int, pads: tuple[int, ...]) -> None:
    def model(**attrs) -> onnx.ModelProto:
        b = OnnxBuilder(seed=3)
        x = b.input("x", (1, 3, 8, 8))
        return b.build([b.conv(x, 3, 4, k, strides=[stride, stride], **attrs)])

    auto = model(auto_pad=auto_pad)
    g = from_onnx(auto)
    assert only(g, "Conv").attrs["pad"] == pads
    explicit = model(pads=list(pads))
    assert only(from_onnx(explicit), "Conv").attrs == only(g, "Conv").attrs
    # oracle: onnxruntime computes the same tensor with the resolved pads
    xs = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run_ort(auto, x=xs)[0], run_ort(explicit, x=xs)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_weight_is_out_by_in_for_both_trans_b(trans_b: int) -> None:
    b = OnnxBuilder(seed=1)
    x = b.input("x", (2, 8))
    y = b.gemm(x, 8, 5, trans_b=trans_b)
    g = from_onnx(b.build([y]))
    gemm = only(g, "Gemm")
    assert gemm.attrs == {"in_features": 8, "out_features": 5, "bias": True}
    w = gemm.weights["weight"]
    assert w.shape == (5, 8)
    bmat = onnx.numpy_helper.to_array(b.inits[0])
    np.testing.assert_array_equal(w, bmat if trans_b else bmat.T)
    assert gemm.params == 5 * 8 + 5


def test_gemm_alpha_and_beta_are_folded_into_the_weights() -> None:
    b = OnnxBuilder(seed=2)
    x = b.input("x", (1, 4))
    w, c = b.weight(3, 4), b.weight(3)
    y = b.node("Gemm", [x, w, c], transB=1, alpha=0.5, beta=2.0)
    model = b.build([y])
    gemm = only(from_onnx(model), "Gemm")
    xs = np.random.default_rng(1).standard_normal((1, 4)).astype(np.float32)
    ours = xs @ gemm.weights["weight"].T + gemm.weights["bias"]
    np.testing.assert_allclose(ours, run_ort(model, x=xs)[0], rtol=1e-5, atol=1e-6)


def test_matmul_by_a_2d_constant_becomes_gemm() -> None:
    b = OnnxBuilder(seed=4)
    x = b.input("x", (2, 8))
    y = b.node("MatMul", [x, b.weight(8, 5)])
    g = from_onnx(b.build([y]))
    assert ops(g) == ["Gemm"]
    gemm = only(g, "Gemm")
    assert gemm.attrs == {"in_features": 8, "out_features": 5, "bias": False}
    np.testing.assert_array_equal(gemm.weights["weight"], onnx.numpy_helper.to_array(b.inits[0]).T)
    assert gemm.flops == 2 * 5 * 8  # recorded batch of 2, no bias


def test_matmul_by_data_stays_matmul() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 8))
    y = b.node("MatMul", [b.node("Relu", [x]), b.node("Transpose", [x], perm=[0, 2, 1])])
    g = from_onnx(b.build([y]))
    mm = only(g, "MatMul")
    assert mm.out_shapes == ((1, 4, 4),)
    assert mm.flops == 16 * 8


@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_plus_constant_bias_becomes_one_gemm(bias_first: bool) -> None:
    b = OnnxBuilder(seed=5)
    x = b.input("x", (1, 4, 8))
    mm = b.node("MatMul", [x, b.weight(8, 5)])
    bias = b.weight(5)
    y = b.node("Add", [bias, mm] if bias_first else [mm, bias])
    model = b.build([y])
    g = from_onnx(model)
    assert ops(g) == ["Gemm"]
    gemm = only(g, "Gemm")
    assert gemm.attrs["bias"] is True
    np.testing.assert_array_equal(gemm.weights["bias"], onnx.numpy_helper.to_array(b.inits[1]))
    assert g.params == 8 * 5 + 5
    assert gemm.flops == 4 * 5 * (8 + 1)
    xs = np.random.default_rng(2).standard_normal((1, 4, 8)).astype(np.float32)
    ours = xs @ gemm.weights["weight"].T + gemm.weights["bias"]
    np.testing.assert_allclose(ours, run_ort(model, x=xs)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sigmoid_first", [False, True])
def test_x_times_sigmoid_x_becomes_swish(sigmoid_first: bool) -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 4, 4))
    h = b.node("Relu", [x], name="relu")
    s = b.node("Sigmoid", [h])
    y = b.node("Mul", [s, h] if sigmoid_first else [h, s])
    g = from_onnx(b.build([y]))
    assert ops(g) == ["Relu", "Swish"]
    assert only(g, "Swish").inputs == (Ref("relu", 0),)


def test_sigmoid_with_another_consumer_is_not_fused() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 4, 4))
    s = b.node("Sigmoid", [x])
    y = b.node("Mul", [x, s])
    g = from_onnx(b.build([y, s]))
    assert sorted(ops(g)) == ["Mul", "Sigmoid"]


def _three_way_sum(form: str) -> ArchGraph:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 4, 4))
    r, t, s = b.node("Relu", [x]), b.node("Tanh", [x]), b.node("Sigmoid", [x])
    if form == "left":
        y = b.node("Add", [b.node("Add", [r, t]), s])
    elif form == "right":
        y = b.node("Add", [r, b.node("Add", [s, t])])
    else:
        y = b.node("Sum", [t, s, r])
    return from_onnx(b.build([y]))


def test_chains_of_adds_become_one_nary_add() -> None:
    graphs = [_three_way_sum(f) for f in ("left", "right", "sum")]
    for g in graphs:
        add = only(g, "Add")
        assert len(add.inputs) == 3 and len(add.in_shapes) == 3
        assert {g.node(r.node).op for _, r in add.refs} == {"Relu", "Tanh", "Sigmoid"}
    assert len({g.fingerprint() for g in graphs}) == 1


def test_inner_sum_with_two_consumers_is_kept() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 4, 4))
    inner = b.node("Add", [b.node("Relu", [x]), b.node("Tanh", [x])])
    y = b.node("Add", [inner, b.node("Sigmoid", [x])])
    g = from_onnx(b.build([y, inner]))
    assert ops(g).count("Add") == 2


def test_identical_stateless_ops_on_one_tensor_are_merged() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 4, 4))
    y = b.node("Concat", [b.node("Relu", [x]), b.node("Relu", [x])], axis=1, name="cat")
    g = from_onnx(b.build([y]))
    assert ops(g) == ["Relu", "Concat"]
    relu = only(g, "Relu")
    assert g.node("cat").inputs == (Ref(relu.name, 0), Ref(relu.name, 0))
    b2 = OnnxBuilder()
    x2 = b2.input("x", (1, 4, 4, 4))
    r = b2.node("Relu", [x2])
    assert from_onnx(b2.build([b2.node("Concat", [r, r], axis=1)])).fingerprint() == g.fingerprint()


def test_ops_with_weights_or_different_attributes_are_not_merged() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 4, 4))
    c1, c2 = b.conv(x, 4, 4, 1), b.conv(x, 4, 4, 1)
    p1 = b.node("MaxPool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    p2 = b.node("MaxPool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    g = from_onnx(b.build([b.node("Concat", [c1, c2], axis=1), b.node("Add", [p1, x]), p2]))
    assert ops(g).count("Conv") == 2
    assert ops(g).count("MaxPool") == 2


def test_commuted_duplicates_are_merged() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4))
    r, t = b.node("Relu", [x]), b.node("Tanh", [x])
    g = from_onnx(b.build([b.node("Concat", [b.node("Add", [r, t]), b.node("Add", [t, r])], axis=1)]))
    assert ops(g).count("Add") == 1


@pytest.mark.parametrize(("axes", "keepdims"), [([2, 3], 0), ([-1, -2], 1), ([3, 2], 1)])
def test_reduce_mean_over_spatial_axes_becomes_global_avg_pool(axes: list[int], keepdims: int) -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 5, 5))
    m = b.node("ReduceMean", [x], axes=axes, keepdims=keepdims)
    y = b.node("Relu", [m], name="after")
    g = from_onnx(b.build([y]))
    pool = only(g, "GlobalAvgPool")
    assert pool.attrs == {}
    assert pool.out_shapes == ((1, 4, 1, 1),)
    assert pool.flops == 4 * 5 * 5
    expected = (1, 4) if keepdims == 0 else (1, 4, 1, 1)
    assert g.node("after").in_shapes == (expected,)
    ref = OnnxBuilder()
    rx = ref.input("x", (1, 4, 5, 5))
    assert from_onnx(ref.build([ref.node("GlobalAveragePool", [rx])])).nodes[1].label() == pool.label()


def test_reduce_mean_over_channels_stays_reduce_mean() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 5, 5))
    g = from_onnx(b.build([b.node("ReduceMean", [x], axes=[1], keepdims=1)]))
    assert only(g, "ReduceMean").attrs == {"axes": (1,), "keepdims": 1}


@pytest.mark.parametrize(("onnx_momentum", "torch_momentum"), [(None, 0.1), (0.9, 0.1), (0.97, 0.03), (0.0, 1.0)])
def test_batchnorm_momentum_is_in_pytorch_convention(onnx_momentum: float | None, torch_momentum: float) -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 4, 4))
    attrs = {} if onnx_momentum is None else {"momentum": onnx_momentum}
    bn = only(from_onnx(b.build([b.bn(x, 4, epsilon=1e-3, **attrs)])), "BatchNorm")
    assert bn.attrs["momentum"] == pytest.approx(torch_momentum, abs=1e-6)
    assert bn.attrs["num_features"] == 4
    assert bn.attrs["eps"] == pytest.approx(1e-3)
    assert set(bn.weights) == {"weight", "bias", "running_mean", "running_var"}
    assert bn.params == 8  # running statistics are buffers


# --------------------------------------------------------------------------- opset-dependent semantics


@pytest.mark.parametrize("attrs", [{}, {"axis": 1}])
def test_softmax_before_opset_13_keeps_its_semantics(attrs: dict[str, int]) -> None:
    b = OnnxBuilder(opset=11)
    x = b.input("x", (1, 4, 8))
    model = b.build([b.node("Softmax", [x], **attrs)])
    xs = np.random.default_rng(0).standard_normal((1, 4, 8)).astype(np.float32)
    assert run_ort(model, x=xs)[0].sum() == pytest.approx(1.0, rel=1e-5)  # one distribution over 4*8 values
    try:
        g = from_onnx(model)
    except UnsupportedOpError:
        return  # refusing is also correct
    sm = only(g, "Softmax")
    # a per-axis softmax over dim 1 or 2 would sum to 8 or 4; only a flattened one matches opset 11
    assert sm.attrs["axis"] == 1 and sm.in_shapes == ((1, 32),)


def test_pad_value_attribute_before_opset_11_is_kept() -> None:
    b = OnnxBuilder(opset=10)
    x = b.input("x", (1, 2, 3, 3))
    g = from_onnx(b.build([b.node("Pad", [x], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=2.0)]))
    assert only(g, "Pad").attrs["value"] == 2.0


def test_slice_with_attributes_before_opset_10_is_a_nas_error_or_imports() -> None:
    b = OnnxBuilder(opset=9)
    x = b.input("x", (1, 2, 3, 3))
    model = b.build([b.node("Slice", [x], starts=[0], ends=[2], axes=[3])])
    try:
        g = from_onnx(model)
    except NasError:
        return
    assert only(g, "Slice").attrs["ends"] == (2,)


# --------------------------------------------------------------------------- params and FLOPs by hand


def test_two_layer_net_params_by_hand() -> None:
    g = from_onnx(two_layer_net())
    assert ops(g) == ["Conv", "BatchNorm", "Relu", "GlobalAvgPool", "Gemm"]
    conv, bn, gemm = only(g, "Conv"), only(g, "BatchNorm"), only(g, "Gemm")
    assert conv.params == 8 * 3 * 9 + 8
    assert bn.params == 2 * 8
    assert gemm.params == 8 * 10 + 10
    assert g.params == 8 * 3 * 9 + 8 + 2 * 8 + 8 * 10 + 10 == 330


def test_two_layer_net_flops_by_hand() -> None:
    g = from_onnx(two_layer_net())
    conv = 8 * 8 * 8 * (3 * 3 * 3 + 1)  # out elements * (in_ch/groups * k * k + bias)
    gap = 8 * 8 * 8  # global pooling: one per input element
    fc = 10 * (8 + 1)  # out elements * (in + bias)
    per_op = {n.op: n.flops for n in g}
    assert per_op == {"Input": 0, "Conv": conv, "BatchNorm": 0, "Relu": 0, "GlobalAvgPool": gap, "Gemm": fc}
    assert g.flops == conv + gap + fc == 14938


def test_flops_are_per_sample() -> None:
    g1, g4 = from_onnx(two_layer_net(1)), from_onnx(two_layer_net(4))
    assert g4.batch_size == 4
    assert only(g4, "Conv").flops == 4 * only(g1, "Conv").flops  # nodes count the recorded batch
    assert g4.flops == g1.flops
    assert g4.params == g1.params
    assert g4.fingerprint() == g1.fingerprint()  # labels use per-sample shapes


def test_pool_flops_count_the_kernel_area_per_output() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 2, 6, 6))
    mp = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    ap = b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    g = from_onnx(b.build([mp, ap]))
    assert only(g, "MaxPool").flops == 2 * 3 * 3 * 9
    assert only(g, "AvgPool").flops == 2 * 3 * 3 * 4
    assert g.flops == 2 * 9 * 9 + 2 * 9 * 4


def test_grouped_conv_flops_and_params() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 5, 5))
    g = from_onnx(b.build([b.conv(x, 4, 8, 3, groups=2, bias=False, pads=[1, 1, 1, 1])]))
    conv = only(g, "Conv")
    assert conv.attrs["groups"] == 2 and conv.attrs["in_channels"] == 4 and conv.attrs["bias"] is False
    assert conv.params == 8 * 2 * 9
    assert conv.flops == 8 * 5 * 5 * (2 * 9)


def test_zero_initialized_parameters_are_kept_but_constant_zero_data_is_a_zero_edge() -> None:
    import torch
    from torch import nn

    class ZeroInit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            nn.init.zeros_(self.conv.weight)
            self.pos = nn.Parameter(torch.zeros(1, 4, 8, 8))  # zero-initialized, still learnable
            self.gain = nn.Parameter(torch.zeros(1, 4, 1, 1))  # a zero-initialized layer scale
            self.head = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x) + self.pos
            return self.head(y + self.gain * y)

    m = ZeroInit()
    g = ArchGraph.from_module(m, torch.zeros(1, 3, 8, 8))
    assert g.params == sum(p.numel() for p in m.parameters())

    class ReadsZeros(nn.Module):  # a layer fed a constant zero tensor: the export of a removed zero edge
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(torch.zeros(x.shape[0], 4, 8, 8))

    g = ArchGraph.from_module(ReadsZeros(), torch.zeros(1, 3, 8, 8))
    assert g.params == 3 * 4 + 4 + 4 * 4 + 4  # the zeros are not parameters
