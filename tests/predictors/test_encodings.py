"""Graph-level features, the generic graph encoding and the text tokens, on graphs whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from predictors.encoders import EDGE_DIM, GLOBAL_FEATURES, NODE_DIM, global_features, graph_data
from predictors.encodings import encoding_dim, graph_encoding, text_lines, text_tokens
from tests.predictors.conftest import reordered
from tests.predictors.test_contrastive import branchy_graph


def test_global_features_by_hand() -> None:
    g = branchy_graph()
    f = dict(zip(GLOBAL_FEATURES, global_features(g), strict=True))
    assert f["log_params"] == math.log1p(g.params) and f["log_flops"] == math.log1p(g.flops)
    # input -> conv1 | conv2 | conv3; concat(conv1, conv2, relu(sum(conv1, conv2, conv3))): 2 + 3 paths,
    # each through one conv and the final Gemm
    assert math.exp(f["log_paths"]) == pytest.approx(5.0)
    assert f["max_weighted_depth"] == f["min_weighted_depth"] == pytest.approx(math.log1p(2))


def test_graph_data_shapes_and_commutative_slots() -> None:
    g = branchy_graph()
    d = graph_data(g)
    e = sum(len(n.refs) for n in g)
    assert d.x.shape == (len(g), NODE_DIM)
    assert d.edge_index.shape == (2, 2 * e) and d.edge_attr.shape == (2 * e, EDGE_DIM)
    assert (d.edge_attr[:e, 0] == 1).all() and (d.edge_attr[e:, 1] == 1).all()
    names = [n.name for n in g]
    add = names.index(next(n.name for n in g if n.op == "Add"))
    cat = names.index(next(n.name for n in g if n.op == "Concat"))
    into = d.edge_index[1, :e]
    assert (d.edge_attr[:e][into == add, 2] == 1).all(), "operand order of a sum carries no meaning"
    assert d.edge_attr[:e][into == cat, 2:].argmax(dim=1).tolist() == [0, 1, 2], "concat slots are kept"


def test_graph_encoding_is_stable_and_name_free(graphs) -> None:
    g = graphs[3]
    v = graph_encoding(g, buckets=64)
    assert v.shape == (encoding_dim(64),) and np.isfinite(v).all()
    shuffled = reordered(g, np.random.default_rng(1))
    assert [n.name for n in shuffled] != [n.name for n in g]
    np.testing.assert_array_equal(graph_encoding(shuffled, buckets=64), v)
    assert not np.array_equal(graph_encoding(graphs[4], buckets=64), v)


def test_text_tokens_are_relative() -> None:
    g = branchy_graph()
    lines = text_lines(g)
    assert len(lines) == len(g) and not any(line.startswith("%") for line in lines)
    assert lines[1].startswith("Conv[") and "(%-1)" in lines[1]
    tokens = text_tokens(g, ngram=2)
    assert len(tokens) > 2 * len(lines) - 1 and any(t.startswith("w:Conv") for t in tokens)
