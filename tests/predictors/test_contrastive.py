"""NT-Xent against a plain loop, and views that keep the network's computation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from nas.errors import PredictorError
from nas.ir import ArchGraph
from predictors.contrastive import AUGMENTATIONS, PretrainSettings, augment, nt_xent, pretrain
from predictors.encoders import GraphEncoder, graph_data
from tests.nas.ir.onnx_builders import OnnxBuilder


def nt_xent_loop(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """SimCLR's loss written out pair by pair."""
    z = [v / v.norm() for v in torch.cat([z1, z2]).double()]
    n, b = len(z), len(z1)
    total = 0.0
    for i in range(n):
        p = (i + b) % n
        num = math.exp(float(z[i] @ z[p]) / tau)
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n) if k != i)
        total += -math.log(num / den)
    return total / n


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_the_plain_loop(tau: float) -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(nt_xent_loop(z1, z2, tau), rel=1e-5)


def test_nt_xent_rewards_aligned_pairs_and_checks_shapes() -> None:
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    assert float(nt_xent(z, z.clone())) < float(nt_xent(z, z.roll(1, dims=0)))
    with pytest.raises(PredictorError, match="B >= 2"):
        nt_xent(z[:1], z[:1])
    with pytest.raises(PredictorError, match="two"):
        nt_xent(z, z[:4])


def branchy_graph() -> ArchGraph:
    """Three convolutions of one input, summed (Sum of 3) and concatenated (Concat of 3), with weights."""
    b = OnnxBuilder("branchy")
    x = b.input("x", (2, 3, 8, 8))
    c1 = b.conv(x, 3, 4, 1)
    c2 = b.conv(x, 3, 4, 3, pads=[1, 1, 1, 1])
    c3 = b.conv(x, 3, 4, 1)
    s = b.node("Relu", [b.node("Sum", [c1, c2, c3])])
    k = b.node("Concat", [c1, c2, s], axis=1)
    h = b.node("Flatten", [b.node("GlobalAveragePool", [b.node("Relu", [k])])], axis=1)
    return ArchGraph.from_onnx(b.build([b.gemm(h, 12, 5)]))


def _same_function(a: ArchGraph, b: ArchGraph, shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    keep = a.has_weights
    ma, mb = a.to_torch(keep_weights=keep, seed=0), b.to_torch(keep_weights=keep, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(ma(x), mb(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", AUGMENTATIONS)
def test_each_view_keeps_the_computation(kind: str) -> None:
    g = branchy_graph()
    view = augment(g, np.random.default_rng(0), p=1.0, kinds=[kind])
    assert view.fingerprint() != g.fingerprint(), "the view must be a different graph"
    assert (view.params, view.flops) == (g.params, g.flops)
    before, after = Counter(n.op for n in g), Counter(n.op for n in view)
    changed = {"split_sum": "Add", "split_concat": "Concat", "double_relu": "Relu"}[kind]
    assert after[changed] > before[changed]
    _same_function(g, view, (2, 3, 8, 8))


def test_views_of_nb201_keep_the_computation(graphs) -> None:
    rng = np.random.default_rng(3)
    for g in graphs[:6]:
        view = augment(g, rng, p=0.7)
        assert (view.params, view.flops, view.depth >= g.depth) == (g.params, g.flops, True)
        _same_function(g, view, (1, 3, 32, 32))
        d = graph_data(view)
        assert d.x.shape[0] == len(view) and d.edge_attr.shape[0] == d.edge_index.shape[1]


def test_augment_rejects_unknown_kinds(graphs) -> None:
    with pytest.raises(PredictorError, match="unknown augmentations"):
        augment(graphs[0], np.random.default_rng(0), kinds=["drop_node"])
    assert augment(graphs[0], np.random.default_rng(0), p=0.0).fingerprint() == graphs[0].fingerprint()


def test_pretraining_is_seeded_and_lowers_the_loss(graphs) -> None:
    def run(global_seed: int) -> list[float]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            enc = GraphEncoder(hidden=16, layers=2, embed_dim=8)
        torch.manual_seed(global_seed)  # the global RNG must not matter: pretrain draws from its generator
        settings = PretrainSettings(epochs=10, batch_size=12, lr=1e-3, views=1)
        return pretrain(enc, graphs[:12], settings, np.random.default_rng(0), torch.Generator().manual_seed(0))

    a, b = run(123), run(7)
    assert a == b and len(a) == 10
    assert np.mean(a[-3:]) < np.mean(a[:3])


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"temperature": -0.1}, {"views": 0}, {"batch_size": 1},
                                 {"p": 1.5}, {"jitter": -1.0}, {"lr": -1e-3}, {"epochs": -1}])
def test_pretrain_settings_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(PredictorError, match="pretraining needs"):
        PretrainSettings(**bad)  # type: ignore[arg-type]


def test_diverging_pretraining_is_an_error_not_nan_weights(graphs) -> None:
    enc = GraphEncoder(hidden=16, layers=2, embed_dim=8)
    with torch.no_grad():
        next(enc.parameters()).fill_(float("inf"))
    with pytest.raises(PredictorError, match="diverged in epoch 1: NT-Xent is nan"):
        pretrain(enc, graphs[:4], PretrainSettings(epochs=1, views=1), np.random.default_rng(0),
                 torch.Generator().manual_seed(0))
