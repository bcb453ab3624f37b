"""Views of an ArchGraph: ``to_networkx()``, ``to_pyg()``, ``summary()``, ``depth``, ``to_text()``."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

from nas.ir import ArchGraph, Ref, from_onnx
from nas.ir.features import NUMERIC_FEATURES, OP_VOCAB
from tests.nas.ir.onnx_builders import OnnxBuilder, two_layer_net

# torch_geometric's import scripts a function with TorchScript, which torch 2.13 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def branchy() -> ArchGraph:
    """x -> conv3 -> relu -> split(2) -> sub(part1, part0); x -> conv1 ; concat(sub, relu, relu, zero-branch)."""
    b = OnnxBuilder("branchy")
    x = b.input("x", (2, 4, 6, 6))
    r = b.node("Relu", [b.conv(x, 4, 8, 3, pads=[1, 1, 1, 1], strides=[1, 1])], name="relu")
    b.node("Split", [r], axis=1, name="split", outputs=["s0", "s1"])
    d = b.node("Sub", ["s1", "s0"], name="sub")
    c1 = b.conv(x, 4, 4, 1, bias=False)
    zero = b.node("Sigmoid", [b.node("Mul", [x, b.init(np.float32(0.0))])], name="sig_of_zero")
    y = b.node("Concat", [d, c1, r, r, zero], axis=1, name="cat")
    return from_onnx(b.build([y]))


@pytest.fixture(scope="module")
def chain() -> ArchGraph:
    b = OnnxBuilder("chain")
    x = b.input("x", (1, 3, 4, 4))
    h = x
    for op in ("Relu", "Tanh", "Sigmoid", "Relu"):
        h = b.node(op, [h])
    return from_onnx(b.build([h]))


def ref_edges(g: ArchGraph) -> Counter[tuple[str, str, int, int]]:
    """(producer, consumer, slot, output index) for every data edge, from the graph's Refs."""
    return Counter((r.node, n.name, slot, r.index) for n in g for slot, r in n.refs)


def test_branchy_fixture_has_the_intended_structure(branchy: ArchGraph) -> None:
    ops = [n.op for n in branchy]
    assert ops.count("Conv") == 2 and "Split" in ops and "Sub" in ops and "Mul" not in ops
    assert branchy.node("sub").inputs == (Ref("split", 1), Ref("split", 0))
    assert branchy.node("sig_of_zero").inputs == (None,)


# --------------------------------------------------------------------------- networkx


def test_to_networkx_nodes_and_attributes(branchy: ArchGraph) -> None:
    nxg = branchy.to_networkx()
    assert isinstance(nxg, nx.MultiDiGraph)
    assert nxg.number_of_nodes() == len(branchy)
    assert list(nxg.nodes) == [n.name for n in branchy]
    for n in branchy:
        data = nxg.nodes[n.name]
        assert data["op"] == n.op
        assert data["attrs"] == dict(n.attrs)
        assert data["out_shapes"] == n.out_shapes
        assert (data["params"], data["flops"]) == (n.params, n.flops)
    assert nx.is_directed_acyclic_graph(nxg)


def test_to_networkx_edges_carry_slot_and_index(branchy: ArchGraph) -> None:
    nxg = branchy.to_networkx()
    edges = Counter((u, v, d["slot"], d["index"]) for u, v, d in nxg.edges(data=True))
    assert edges == ref_edges(branchy)
    assert nxg.number_of_edges() == sum(len(n.refs) for n in branchy)
    # relu feeds the concat twice: parallel edges, told apart by their slot
    assert sorted(d["slot"] for d in nxg.get_edge_data("relu", "cat").values()) == [2, 3]
    # the split's two outputs reach the sub swapped
    assert sorted((d["index"], d["slot"]) for d in nxg.get_edge_data("split", "sub").values()) == [(0, 1), (1, 0)]
    # the removed zero edge is not an edge
    assert nxg.in_degree("sig_of_zero") == 0


def test_to_networkx_topological_order_matches_the_graph(branchy: ArchGraph) -> None:
    nxg = branchy.to_networkx()
    position = {n.name: i for i, n in enumerate(branchy)}
    assert all(position[u] < position[v] for u, v in nxg.edges())


# --------------------------------------------------------------------------- PyG


def test_to_pyg_shapes_and_one_hot(branchy: ArchGraph) -> None:
    data = branchy.to_pyg()
    n_ops = len(OP_VOCAB)
    assert data.num_nodes == len(branchy)
    assert data.x.shape == (len(branchy), n_ops + len(NUMERIC_FEATURES))
    assert data.x.dtype == torch.float32
    one_hot = data.x[:, :n_ops]
    assert torch.equal(one_hot.sum(dim=1), torch.ones(len(branchy)))
    expected = torch.tensor([OP_VOCAB.index(n.op) for n in branchy])
    assert torch.equal(one_hot.argmax(dim=1), expected)
    assert torch.equal(data.op, expected)


def test_to_pyg_edges_match_the_refs(branchy: ArchGraph) -> None:
    data = branchy.to_pyg()
    names = [n.name for n in branchy]
    assert data.edge_index.dtype == torch.long
    assert data.edge_index.shape[0] == 2
    assert data.edge_attr.shape == (data.edge_index.shape[1], 1)
    got = Counter(
        (names[s], names[d], int(a))
        for s, d, a in zip(
            data.edge_index[0].tolist(), data.edge_index[1].tolist(), data.edge_attr[:, 0].tolist(), strict=True
        )
    )
    assert got == Counter((u, v, slot) for u, v, slot, _ in ref_edges(branchy).elements())
    assert (data.edge_index[0] < data.edge_index[1]).all()  # producer before consumer


def test_to_pyg_numeric_features_of_a_conv() -> None:
    g = from_onnx(two_layer_net())
    data = g.to_pyg()
    n_ops = len(OP_VOCAB)
    i = [n.op for n in g].index("Conv")
    feats = dict(zip(NUMERIC_FEATURES, data.x[i, n_ops:].tolist(), strict=True))
    conv = g.nodes[i]
    assert feats["kernel"] == 3 and feats["stride"] == 1 and feats["dilation"] == 1 and feats["groups"] == 0
    assert feats["in_ch"] == pytest.approx(math.log1p(3))
    assert feats["out_ch"] == pytest.approx(math.log1p(8))
    assert feats["params"] == pytest.approx(math.log1p(224))
    assert feats["flops"] == pytest.approx(math.log1p(conv.flops))
    assert feats["size"] == pytest.approx(math.log1p(8 * 8 * 8))
    assert feats["zero_in"] == 0


def test_to_pyg_features_are_per_sample() -> None:
    one, four = from_onnx(two_layer_net(1)).to_pyg(), from_onnx(two_layer_net(4)).to_pyg()
    assert torch.allclose(one.x, four.x)
    assert torch.equal(one.edge_index, four.edge_index)


def test_to_pyg_counts_zero_inputs(branchy: ArchGraph) -> None:
    data = branchy.to_pyg()
    i = [n.name for n in branchy].index("sig_of_zero")
    assert data.x[i, len(OP_VOCAB) + NUMERIC_FEATURES.index("zero_in")].item() == 1.0


# --------------------------------------------------------------------------- summary, depth, text


def test_summary_keys_and_values(branchy: ArchGraph) -> None:
    s = branchy.summary()
    assert {"nodes", "params", "flops", "depth", "op_counts", "fingerprint"} <= set(s)
    assert s["nodes"] == len(branchy) - 1  # the Input is not counted
    assert sum(s["op_counts"].values()) == s["nodes"]
    assert s["op_counts"] == dict(Counter(n.op for n in branchy if n.op != "Input"))
    assert list(s["op_counts"]) == sorted(s["op_counts"])
    assert s["params"] == branchy.params == sum(n.params for n in branchy)
    assert s["flops"] == branchy.flops == sum(n.flops for n in branchy) // 2  # recorded with batch 2
    assert s["fingerprint"] == branchy.fingerprint()
    assert s["inputs"] == {"x": [2, 4, 6, 6]}
    assert s["outputs"] == [[2, 4 + 4 + 8 + 8 + 4, 6, 6]]  # sub, conv1, relu, relu, zero branch
    json.dumps(s)  # plain data


def test_summary_of_the_two_layer_net() -> None:
    s = from_onnx(two_layer_net()).summary()
    assert s["nodes"] == 5 and s["depth"] == 5
    assert s["params"] == 330 and s["flops"] == 14938
    assert s["op_counts"] == {"BatchNorm": 1, "Conv": 1, "Gemm": 1, "GlobalAvgPool": 1, "Relu": 1}


def test_save_json_writes_the_summary(tmp_path: Path, chain: ArchGraph) -> None:
    path = tmp_path / "chain.json"
    chain.save_json(path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(chain.summary()))


def test_depth_of_a_chain(chain: ArchGraph) -> None:
    assert [n.op for n in chain] == ["Input", "Relu", "Tanh", "Sigmoid", "Relu"]
    assert chain.depth == 4
    assert chain.summary()["depth"] == 4


def test_depth_is_the_longest_path() -> None:
    b = OnnxBuilder()
    x = b.input("x", (1, 4, 4, 4))
    long = b.node("Relu", [b.node("Tanh", [b.node("Sigmoid", [x])])])
    y = b.node("Add", [long, b.node("Relu", [x])])  # the short branch does not count
    g = from_onnx(b.build([y]))
    assert g.depth == 4
    assert nx.dag_longest_path_length(g.to_networkx()) == g.depth


def test_depth_counts_nodes_without_data_inputs(branchy: ArchGraph) -> None:
    # conv3 -> relu -> split -> sub -> cat is the longest path
    assert branchy.depth == 5


def test_to_text_has_one_line_per_node(branchy: ArchGraph) -> None:
    text = branchy.to_text()
    lines = text.split("\n")
    assert len(lines) == len(branchy)
    for i, (line, n) in enumerate(zip(lines, branchy, strict=True)):
        m = re.fullmatch(r"%(\d+) = (\w+)\[(.*)\]\((.*)\) -> (.+)", line)
        assert m is not None, line
        assert int(m.group(1)) == i
        assert m.group(2) == n.op
        refs = [int(k) for k in re.findall(r"%(\d+)", m.group(4))]
        assert all(k < i for k in refs)
        assert len(refs) == len(n.refs)
        assert m.group(5) == ";".join("x".join(map(str, s[1:])) for s in n.out_shapes)
    names = [n.name for n in branchy]
    sub = lines[names.index("sub")]
    split = names.index("split")
    assert f"(%{split}.1, %{split})" in sub  # output index shown when not 0
    assert "(zero)" in lines[names.index("sig_of_zero")]


def test_to_text_is_the_same_for_the_same_model() -> None:
    assert from_onnx(two_layer_net()).to_text() == from_onnx(two_layer_net()).to_text()
    assert from_onnx(two_layer_net()).to_text().count("\n") == 5


def test_consumers_invert_the_refs(branchy: ArchGraph) -> None:
    cons = branchy.consumers
    assert set(cons) == {n.name for n in branchy}
    assert sorted(cons["relu"]) == [("cat", 2), ("cat", 3), ("split", 0)]
    assert sum(len(v) for v in cons.values()) == sum(len(n.refs) for n in branchy)
