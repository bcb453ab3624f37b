"""Small fixtures for the predictor tests: 24 tiny NB201 graphs (C=4, one cell per stage, ~50 nodes each),
synthetic targets and proxy-like features, and fast settings for every registered predictor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from nas.ir import ArchGraph
from search_spaces.nb201 import NB201Space

torch.set_num_threads(1)  # another benchmark shares this machine; the predictors are tested single-threaded

#: Settings that keep each predictor's fit under a second or two on the tiny graphs.
FAST: dict[str, dict[str, Any]] = {
    "gennape": {"hidden": 16, "layers": 2, "embed_dim": 8, "pretrain_epochs": 2, "pretrain_batch": 8, "views": 1,
                "epochs": 20, "head_hidden": 16, "clusters": 2, "members": 1, "threads": 1},
    "zc_gbdt": {"n_estimators": 15, "bags": 3},
    "graph_gbdt": {"n_estimators": 15, "bags": 3, "buckets": 32},
    "text_ridge": {"n_features": 256, "bags": 3},
    "capacity_ridge": {"bags": 3},
    "encoding_mlp": {"hidden": (16, 16), "epochs": 60, "bags": 3},
    "kernel_latency": {"bags": 3},
    "runtime_latency": {"bags": 3},
    "gp_latency": {"gp_iters": 30},
}

SPACE = NB201Space(c=4, n=1)
N_GRAPHS = 24


def tiny_graphs(n: int = N_GRAPHS) -> list[ArchGraph]:
    return [SPACE.to_graph(i) for i in range(n)]


def synthetic_targets(graphs: list[ArchGraph]) -> np.ndarray:
    """A smooth function of the graph (log params, depth) with a little deterministic noise."""
    noise = np.random.default_rng(7).normal(0, 0.05, len(graphs))
    return np.array([np.log1p(g.params) + 0.1 * g.depth for g in graphs]) + noise


def synthetic_features(graphs: list[ArchGraph]) -> np.ndarray:
    """Three proxy-like columns ``(n, 3)``."""
    rng = np.random.default_rng(3)
    return np.stack([np.log1p([g.flops for g in graphs]), rng.normal(size=len(graphs)),
                     np.array([len(g) for g in graphs], dtype=float)], axis=1)


@pytest.fixture(scope="session")
def graphs() -> list[ArchGraph]:
    return tiny_graphs()


@pytest.fixture(scope="session")
def targets(graphs: list[ArchGraph]) -> np.ndarray:
    return synthetic_targets(graphs)


@pytest.fixture(scope="session")
def features(graphs: list[ArchGraph]) -> np.ndarray:
    return synthetic_features(graphs)


def reordered(graph: ArchGraph, rng: np.random.Generator) -> ArchGraph:
    """The same graph with its nodes in another (random) topological order."""
    preds = {n.name: {r.node for _, r in n.refs} for n in graph}
    done: set[str] = set()
    order: list[Any] = []
    while len(order) < len(graph):
        ready = [n for n in graph if n.name not in done and preds[n.name] <= done]
        pick = ready[int(rng.integers(len(ready)))]
        order.append(pick)
        done.add(pick.name)
    return ArchGraph(order, list(graph.outputs), list(graph.output_shapes), name=graph.name,
                     has_weights=graph.has_weights)
