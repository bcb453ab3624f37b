"""The additive kernel latency model (`kernel_latency`) and the `predicted:FILE` cost model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nas.errors import PredictorError, PredictorFileError, SearchError
from nas.hardware import COST_MODELS, PredictedLatency, cost_model_from_spec
from nas.ir.features import OP_VOCAB
from predictors.latency import KernelLatency, flops_by_op, kernel_keys
from tests.predictors.conftest import SPACE

#: ms per node of each op in a synthetic device whose latency is exactly additive over nodes
COST = {"Conv": 0.7, "BatchNorm": 0.05, "Relu": 0.02, "AvgPool": 0.3, "Add": 0.04, "Gemm": 0.2}


def additive_latency(graph) -> float:
    return 1.0 + sum(COST.get(n.op, 0.0) for n in graph)


@pytest.fixture(scope="module")
def pool():
    return [SPACE.to_graph(i) for i in range(0, 15625, 61)][:250]  # 250 varied tiny cells


def test_kernel_keys_count_every_node_and_edge(graphs) -> None:
    g = graphs[3]
    keys = kernel_keys(g)
    nodes = sum(v for k, v in keys.items() if k.startswith("N:"))
    edges = sum(v for k, v in keys.items() if k.startswith("E:"))
    fan = sum(v for k, v in keys.items() if k.startswith("F:"))
    assert nodes == fan == len(g)
    assert edges == sum(len(n.refs) for n in g)
    assert set(kernel_keys(g, edges=False, fanout=False)) == {k for k in keys if k.startswith("N:")}
    by_op = flops_by_op(g)
    assert by_op.shape == (len(OP_VOCAB),)
    assert by_op.sum() == pytest.approx(sum(n.flops for n in g if n.op in OP_VOCAB) / 1e6)


def test_recovers_an_exactly_additive_latency(pool) -> None:
    """Reference oracle: a latency that is a sum of per-node costs is predicted almost exactly."""
    y = np.array([additive_latency(g) for g in pool])
    model = KernelLatency(bags=1).fit(pool[:200], y[:200])
    mean, std = model.predict(pool[200:])
    assert model.coverage(pool[200:]).min() > 0.99
    np.testing.assert_allclose(mean, y[200:], rtol=0.01)
    assert (std == 0).all()  # one bag: no spread
    few = KernelLatency(bags=1).fit(pool[:30], y[:30]).predict(pool[200:])[0]
    assert np.abs(few / y[200:] - 1).max() > np.abs(mean / y[200:] - 1).max()  # more data, closer


def test_bagging_spread_and_determinism(pool) -> None:
    rng = np.random.default_rng(0)
    y = np.array([additive_latency(g) for g in pool]) * rng.uniform(0.9, 1.1, len(pool))
    a = KernelLatency(bags=4, seed=1).fit(pool[:100], y[:100]).predict(pool[200:])
    b = KernelLatency(bags=4, seed=1).fit(pool[:100], y[:100]).predict(pool[200:])
    c = KernelLatency(bags=4, seed=2).fit(pool[:100], y[:100]).predict(pool[200:])
    np.testing.assert_array_equal(a[0], b[0])
    assert (a[1] > 0).all()
    assert not np.array_equal(a[0], c[0])


def test_unseen_kernels_lower_the_coverage(pool) -> None:
    from search_spaces.nb201 import NB201Space

    y = np.array([additive_latency(g) for g in pool])
    model = KernelLatency(bags=1).fit(pool[:40], y[:40])
    other = NB201Space(c=8, n=1).to_graph(5)  # wider channels: every conv key is new
    assert model.coverage([other])[0] < 0.6
    mean, _ = model.predict([other])
    assert np.isfinite(mean).all() and mean[0] >= 0


def test_load_checks_the_coefficient_width(pool, tmp_path: Path) -> None:
    from predictors.base import read_archive, write_archive

    y = np.array([additive_latency(g) for g in pool])
    KernelLatency(bags=1).fit(pool[:30], y[:30]).save(tmp_path / "a.nasp")
    archive = read_archive(tmp_path / "a.nasp")
    archive.scalars["vocab"] = archive.scalars["vocab"][:-1]
    write_archive(tmp_path / "b.nasp", archive)
    with pytest.raises(PredictorFileError, match="do not fit"):
        KernelLatency.load(tmp_path / "b.nasp")


def test_predicted_cost_model(pool, tmp_path: Path) -> None:
    y = np.array([additive_latency(g) for g in pool])
    KernelLatency(bags=2, label="table:toy").fit(pool[:100], y[:100]).save(tmp_path / "lat.nasp")
    model = cost_model_from_spec(f"predicted:{tmp_path / 'lat.nasp'}")
    assert isinstance(model, PredictedLatency) and "predicted" in COST_MODELS
    assert model.unit == "ms" and model.device == "table:toy"
    expected = KernelLatency.load(tmp_path / "lat.nasp").predict(pool[200:203])[0]
    assert [model.cost(g) for g in pool[200:203]] == pytest.approx(list(expected), rel=1e-12)
    with pytest.raises(SearchError, match="predicted:FILE"):
        cost_model_from_spec("predicted")
    with pytest.raises(PredictorFileError, match="not a file"):
        cost_model_from_spec(f"predicted:{tmp_path / 'missing.nasp'}")


def test_kernel_keys_are_a_multiset_of_strings(graphs) -> None:
    keys = kernel_keys(graphs[0])
    assert isinstance(keys, Counter) and all(isinstance(k, str) and v > 0 for k, v in keys.items())
    with pytest.raises(PredictorError):
        KernelLatency(bags=0)


def test_genotype_features_give_back_what_the_ir_merges(data_dir) -> None:
    """HW-NAS-Bench's fpga latency is linear in the literal cell's op counts; the IR merges repeated
    pools and drops ``none`` edges, and the genotype one-hot gives them back."""
    from predictors.data import genotype_onehot, labelled
    from predictors.metrics import latency_metrics
    from search_spaces import space_from_spec

    lab = labelled("nb201", "latency:fpga", data_dir)
    rows = np.random.default_rng(0).permutation(len(lab))[:300]
    archs = [lab.archs[i] for i in rows]
    space = space_from_spec("nb201")
    graphs = [space.to_graph(space.parse(a)) for a in archs]
    feats, y = genotype_onehot("nb201", archs), lab.y[rows]
    with_geno = KernelLatency(bags=1).fit(graphs[:100], y[:100], features=feats[:100])
    mean, _ = with_geno.predict(graphs[100:], features=feats[100:])
    assert latency_metrics(mean, y[100:])["within_10pct"] == 1.0
    assert np.abs(mean / y[100:] - 1).max() < 0.01
    ir_only, _ = KernelLatency(bags=1).fit(graphs[:100], y[:100]).predict(graphs[100:])
    assert np.abs(ir_only / y[100:] - 1).max() > 0.05  # what the IR alone cannot see
