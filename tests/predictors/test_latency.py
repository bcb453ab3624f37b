"""The additive kernel latency model (`kernel_latency`) and the `predicted:FILE` cost model."""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nas.errors import PredictorError, PredictorFileError, SearchError
from nas.hardware import COST_MODELS, EXPORT_VERSION, PredictedLatency, cost_model_from_spec
from nas.ir.features import OP_VOCAB
from predictors.latency import (
    GPLatency,
    KernelLatency,
    RuntimeLatency,
    flops_by_op,
    kernel_keys,
    runtime_kernel_keys,
)
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


@pytest.mark.parametrize(("cls", "settings", "poison"),
                         [(KernelLatency, {"bags": 2}, "coef"), (KernelLatency, {"bags": 2}, "intercept"),
                          (GPLatency, {"gp_iters": 30}, "gp_targets"), (GPLatency, {"gp_iters": 30}, "gp_theta"),
                          (GPLatency, {"gp_iters": 30}, "gp_spread")])
def test_load_refuses_non_finite_arrays(cls: type[KernelLatency], settings: dict[str, int], poison: str, pool,
                                        tmp_path: Path) -> None:
    """A file whose numbers are not finite (or whose GP input scales are not positive) is refused by
    name at load, not read into NaN predictions or, through the clip at 0, latencies of 0 ms."""
    from predictors.base import read_archive, write_archive

    y = np.array([additive_latency(g) for g in pool])
    fitted = cls(**settings).fit(pool[:60], y[:60])
    fitted.save(tmp_path / "a.nasp")
    np.testing.assert_allclose(cls.load(tmp_path / "a.nasp").predict(pool[200:205])[0],
                               fitted.predict(pool[200:205])[0], rtol=1e-10)  # the file is the fitted model
    archive = read_archive(tmp_path / "a.nasp")
    arr = archive.arrays[poison].copy()
    arr.flat[0] = 0.0 if poison == "gp_spread" else (-np.inf if poison == "intercept" else np.nan)
    archive.arrays[poison] = arr
    write_archive(tmp_path / "b.nasp", archive)
    with pytest.raises(PredictorFileError, match=f"'{poison}'" if poison != "gp_spread" else "gp_spread"):
        cls.load(tmp_path / "b.nasp")


def test_no_half_fitted_model_and_no_non_finite_prediction(pool) -> None:
    """A refit that raises leaves a model that refuses to predict (not the old coefficients on the
    new vocabulary); coverage before fit is an error; a non-finite prediction is an error, not 0 ms."""
    y = np.array([additive_latency(g) for g in pool])
    with pytest.raises(PredictorError, match="before fit"):
        KernelLatency().coverage(pool[:2])
    model = KernelLatency(bags=1, weighting="inverse").fit(pool[:50], y[:50])
    bad = y[50:120].copy()
    bad[3] = 0.0
    with pytest.raises(PredictorError, match="latencies > 0"):
        model.fit(pool[50:120], bad)
    with pytest.raises(PredictorError, match="before fit"):
        model.predict(pool[200:202])
    model.fit(pool[:50], y[:50])
    model._intercept = np.full_like(model._intercept, -np.inf)
    with pytest.raises(PredictorError, match="non-finite prediction for 2 of 2"):
        model.predict(pool[200:202])


@pytest.mark.parametrize(("cls", "settings"), [(KernelLatency, {"bags": 2}), (GPLatency, {"gp_iters": 30})],
                         ids=["ridge", "gp"])
def test_predicted_cost_model(cls: type[KernelLatency], settings: dict[str, int], pool, tmp_path: Path) -> None:
    y = np.array([additive_latency(g) for g in pool])
    cls(label="table:toy", **settings).fit(pool[:100], y[:100]).save(tmp_path / "lat.nasp")
    model = cost_model_from_spec(f"predicted:{tmp_path / 'lat.nasp'}")
    assert isinstance(model, PredictedLatency) and "predicted" in COST_MODELS
    assert model.unit == "ms" and model.device == "table:toy"
    expected = cls.load(tmp_path / "lat.nasp").predict(pool[200:203])[0]
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


#: a cell whose output does not depend on its input (every path into node 3 is ``none``), and one with a conv
CONSTANT_CELL = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|none~2|"
CONV_CELL = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"


def test_runtime_graph_computes_what_the_export_computes_and_drops_what_is_constant() -> None:
    """Reference: the optimized graph gives the exported network's output on the same input, and a
    network whose cells ignore their input keeps no cell kernel (the optimizer folds it away)."""
    import onnxruntime as ort

    from nas.hardware import _export, runtime_graph

    rng = np.random.default_rng(0)
    for arch, folds in ((CONV_CELL, False), (CONSTANT_CELL, True)):
        graph = SPACE.to_graph(SPACE.parse(arch))
        exported, optimized = _export(graph), runtime_graph(graph)
        x = rng.normal(size=tuple(graph.inputs[0].out_shapes[0])).astype(np.float32)
        plain = ort.SessionOptions()
        plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        outs = [ort.InferenceSession(m.SerializeToString(), plain, providers=["CPUExecutionProvider"])
                .run(None, {m.graph.input[0].name: x})[0] for m in (exported, optimized)]
        np.testing.assert_allclose(outs[1], outs[0], rtol=1e-4, atol=1e-5)
        convs = [n for n in optimized.graph.node if n.op_type == "Conv"]
        assert (len(convs) == 1) == folds  # folded: the stem's convolution alone is left
        assert len(optimized.graph.node) < len(exported.graph.node)


def test_runtime_kernel_keys_count_the_optimized_kernels_once_per_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.hardware as hardware

    calls = []
    real = hardware.runtime_graph

    def spy(graph, threads=1):  # type: ignore[no-untyped-def]
        calls.append(graph.fingerprint())
        return real(graph, threads)

    monkeypatch.setattr(hardware, "runtime_graph", spy)
    conv, constant = (SPACE.to_graph(SPACE.parse(a)) for a in (CONV_CELL, CONSTANT_CELL))
    keys = runtime_kernel_keys(conv)
    assert all(k.startswith("R:") for k in keys)
    for side in (1, 3):  # every convolution of a live network is run (fused with its Relu or not)
        runtime = sum(v for k, v in keys.items() if ":Conv|" in k and f"kernel_shape=({side}, {side})" in k)
        assert runtime == sum(1 for n in conv if n.op == "Conv" and tuple(n.attrs["kernel"]) == (side, side)) > 0
    assert len({k for k in keys if ":Conv|" in k}) >= 4  # the stages' weight shapes tell their kernels apart
    assert sum(v for k, v in runtime_kernel_keys(constant).items() if ":Conv|" in k) == 1
    again = runtime_kernel_keys(SPACE.to_graph(SPACE.parse(CONV_CELL)))  # a new graph, the same fingerprint
    assert again == keys and calls.count(conv.fingerprint()) <= 1
    again["R:extra"] += 1  # the caller's copy: the cache is unchanged
    assert "R:extra" not in runtime_kernel_keys(conv)


def test_runtime_latency_fits_on_the_runtime_keys_and_round_trips(pool, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """An exactly additive function of the runtime kernels is recovered; the setting survives a save."""
    from predictors.base import read_archive, write_archive

    graphs = pool[:60]
    keys = [runtime_kernel_keys(g) for g in graphs]
    cost = {k: 0.1 + zlib.crc32(k.encode()) % 7 / 10 for k in set().union(*keys)}
    y = np.array([1.0 + sum(cost[k] * v for k, v in c.items()) for c in keys])
    model = RuntimeLatency(bags=1, flops_terms=False, alphas=(1e-6,), lookup=False).fit(
        graphs[:45], y[:45])  # the ridge alone (the lookup has its own test)
    assert model.config.keys == "runtime" and set(model.vocab) <= set(cost)
    assert model.coverage(graphs[45:]).min() == 1.0
    np.testing.assert_allclose(model.predict(graphs[45:])[0], y[45:], rtol=0.02)
    model.save(tmp_path / "r.nasp")
    back = RuntimeLatency.load(tmp_path / "r.nasp")
    assert back.config.keys == "runtime"
    np.testing.assert_array_equal(back.predict(graphs[45:])[0], model.predict(graphs[45:])[0])
    with pytest.raises(PredictorError, match="'ir' or 'runtime'"):
        KernelLatency(keys="onnx")
    # the keys are those of one export: a file fitted on another export's kernels loads with a warning
    archive = read_archive(tmp_path / "r.nasp")
    assert archive.scalars["export_version"] == EXPORT_VERSION
    del archive.scalars["export_version"]  # a file saved before exports were versioned
    write_archive(tmp_path / "old.nasp", archive)
    with caplog.at_level(logging.WARNING, logger="predictors.latency"):
        old = RuntimeLatency.load(tmp_path / "old.nasp")
    assert f"export version 1, and this version exports version {EXPORT_VERSION}" in caplog.text
    np.testing.assert_array_equal(old.predict(graphs[45:])[0], model.predict(graphs[45:])[0])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="predictors.latency"):
        RuntimeLatency.load(tmp_path / "r.nasp")
    assert caplog.text == ""


def test_inverse_weighting_is_ridge_with_row_weights_one_over_y(pool) -> None:
    """Reference: scikit-learn's RidgeCV on the same matrix with ``sample_weight = 1 / y``."""
    from sklearn.linear_model import RidgeCV

    graphs = pool[:80]
    y = np.array([0.2 + g.flops / 1e6 * (1 + 0.3 * np.sin(i)) for i, g in enumerate(graphs)])
    model = KernelLatency(bags=1, weighting="inverse").fit(graphs, y)
    x = model._matrix(graphs, model._counts(graphs), None)
    ref = RidgeCV(alphas=np.array(model.config.alphas)).fit(x, y, sample_weight=1 / y)
    np.testing.assert_allclose(model._coef[0], ref.coef_, rtol=1e-8, atol=1e-10)
    assert model._alpha[0] == ref.alpha_
    plain = KernelLatency(bags=1).fit(graphs, y)
    assert not np.allclose(plain._coef[0], model._coef[0])  # the weights change the fit
    assert RuntimeLatency().config.weighting == "inverse" and KernelLatency().config.weighting == "none"
    with pytest.raises(PredictorError, match="latencies > 0"):
        KernelLatency(weighting="inverse").fit(graphs[:5], np.array([1.0, 2.0, 0.0, 1.0, 1.0]))
    with pytest.raises(PredictorError, match="weighting"):
        KernelLatency(weighting="squared")


#: Pairs of NB201 cells that the IR writes as one graph (one fingerprint) with the operands of its sums
#: listed in another order: repeated operands (a chain of skip connections), a constant term (a
#: convolution of a ``none`` edge's zeros) first or last, and distinct operands whose partial sums the
#: exporter merges only where they line up.
SAME_GRAPH = (
    ("|nor_conv_1x1~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|none~1|skip_connect~2|",
     "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"),
    ("|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|",
     "|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|nor_conv_1x1~1|skip_connect~2|"),
    ("|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|avg_pool_3x3~2|",
     "|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"),
)


@pytest.mark.parametrize("pair", SAME_GRAPH, ids=["repeated", "constant", "distinct"])
def test_one_fingerprint_exports_and_runs_as_one_network(pair: tuple[str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured latency and the runtime keys are cached by fingerprint, so graphs with one fingerprint
    must export to one network: the same ops, and the same kernels after onnxruntime's passes."""
    import predictors.latency as latency
    from nas.hardware import _export, runtime_graph
    from search_spaces.nb201 import NB201Space

    monkeypatch.setattr(latency, "_RUNTIME_KEYS", {})
    space = NB201Space(c=8, n=3)  # chains of cells, where a skip connection's operand recurs
    a, b = (space.to_graph(space.parse(x)) for x in pair)
    assert a.fingerprint() == b.fingerprint()
    assert Counter(n.op_type for n in _export(a).graph.node) == Counter(n.op_type for n in _export(b).graph.node)
    assert Counter(n.op_type for n in runtime_graph(a).graph.node) == Counter(
        n.op_type for n in runtime_graph(b).graph.node)
    keys_a = runtime_kernel_keys(a)
    latency._RUNTIME_KEYS.clear()
    assert runtime_kernel_keys(b) == keys_a


def test_lookup_predicts_a_seen_network_by_the_median_of_its_latencies(pool, tmp_path: Path) -> None:
    """Reference: graphs with the key counts of fitting graphs get the median of those graphs' labels; every
    other graph gets the ridge's prediction, the same as without the lookup; the table survives a save."""
    y = np.array([additive_latency(g) for g in pool])
    graphs = [*pool[:100], pool[0], pool[0]]  # pool[0] three times, with three latencies
    labels = np.array([*y[:100], 1.2 * y[0], 1.5 * y[0]])
    test = [pool[0], *pool[150:160]]
    assert all(kernel_keys(g) != kernel_keys(pool[0]) for g in pool[150:160])
    plain = KernelLatency(bags=2).fit(graphs, labels)
    model = KernelLatency(bags=2, lookup=True).fit(graphs, labels)
    mean, std = model.predict(test)
    ref_mean, ref_std = plain.predict(test)
    assert mean[0] == pytest.approx(1.2 * y[0], rel=1e-12)  # the median of y0, 1.2 y0, 1.5 y0
    assert ref_mean[0] != pytest.approx(1.2 * y[0], rel=1e-3)
    # every fitting graph is looked up: its own label, or the median of its duplicates'
    np.testing.assert_allclose(model.predict(pool[1:100])[0], y[1:100], rtol=1e-12)
    np.testing.assert_array_equal(mean[1:], ref_mean[1:])  # unseen: the ridge
    np.testing.assert_array_equal(std, ref_std)
    model.save(tmp_path / "k.nasp")
    back = KernelLatency.load(tmp_path / "k.nasp")
    np.testing.assert_array_equal(back.predict(test)[0], mean)
    from predictors.base import read_archive, write_archive

    archive = read_archive(tmp_path / "k.nasp")
    archive.arrays["seen_ms"] = archive.arrays["seen_ms"][:-1]
    write_archive(tmp_path / "bad.nasp", archive)
    with pytest.raises(PredictorFileError, match="lookup table"):
        KernelLatency.load(tmp_path / "bad.nasp")
    archive = read_archive(tmp_path / "k.nasp")
    archive.config["lookup"] = False
    write_archive(tmp_path / "off.nasp", archive)
    with pytest.raises(PredictorFileError, match="lookup off"):
        KernelLatency.load(tmp_path / "off.nasp")
    # with features a graph's keys do not fix its latency: no lookup
    feats = np.arange(len(graphs), dtype=float)[:, None]
    with_feats = KernelLatency(bags=2, lookup=True).fit(graphs, labels, features=feats)
    np.testing.assert_array_equal(
        with_feats.predict(test, features=np.zeros((len(test), 1)))[0],
        KernelLatency(bags=2).fit(graphs, labels, features=feats).predict(test, features=np.zeros((len(test), 1)))[0])
    assert RuntimeLatency().config.lookup and not KernelLatency().config.lookup


def test_gp_latency_fits_what_is_not_additive_over_kernels(pool) -> None:
    """A device where pools cost more when the cell also has convolutions (an interaction the additive
    model cannot express): the GP is closer than the ridge on held-out cells, and close in absolute terms."""
    def latency(g) -> float:  # type: ignore[no-untyped-def]
        convs = sum(n.op == "Conv" for n in g)
        pools = sum(n.op == "AvgPool" for n in g)
        return additive_latency(g) + 0.15 * convs * pools

    y = np.array([latency(g) for g in pool])
    ridge, _ = KernelLatency(bags=1).fit(pool[:200], y[:200]).predict(pool[200:])
    gp_model = GPLatency(gp_iters=100).fit(pool[:200], y[:200])
    gp, std = gp_model.predict(pool[200:])
    err_ridge, err_gp = np.abs(ridge / y[200:] - 1), np.abs(gp / y[200:] - 1)
    assert err_gp.mean() < 0.5 * err_ridge.mean() and np.median(err_gp) < 0.01 < np.median(err_ridge)
    assert (std > 0).all()


def test_gp_latency_reads_the_features_alone_when_given(pool) -> None:
    """With ``gp_inputs="features"`` (gp_latency's default) and features given, the graphs do not enter
    the GP: the same features with the graphs shuffled predict the same; with ``"all"`` they do enter."""
    y = np.array([additive_latency(g) for g in pool])
    feats = np.stack([[sum(n.op == op for n in g) for op in COST] for g in pool]).astype(float)
    shuffled = pool[200:][::-1]
    only = GPLatency(gp_iters=30).fit(pool[:200], y[:200], features=feats[:200])
    a, _ = only.predict(pool[200:], features=feats[200:])
    b, _ = only.predict(shuffled, features=feats[200:])
    np.testing.assert_array_equal(a, b)
    both = GPLatency(gp_iters=30, gp_inputs="all").fit(pool[:200], y[:200], features=feats[:200])
    assert not np.array_equal(both.predict(pool[200:], features=feats[200:])[0],
                              both.predict(shuffled, features=feats[200:])[0])


def test_gp_latency_config_errors() -> None:
    with pytest.raises(PredictorError, match="'ridge' or 'gp'"):
        KernelLatency(model="forest")
    with pytest.raises(PredictorError, match="no row weighting"):
        GPLatency(weighting="inverse")
