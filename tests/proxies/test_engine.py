"""The engine (model resolution, scoring several proxies), the rank ensemble and the proxy contract."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from nas.data import Batch, fit_batch, load_batch
from nas.errors import ProxyError, RegistryError
from nas.ir import ArchGraph
from proxies import PROXIES, Proxy
from proxies.engine import resolve_proxies, score, score_graphs, to_model
from proxies.ensemble import DEFAULT_PROXIES, rank_ensemble
from search_spaces.nb201 import NB201Space


@pytest.fixture(scope="module")
def batch():
    return load_batch("synthetic", 8, seed=0)


def test_registry_lists_the_full_set() -> None:
    expected = {"synflow", "snip", "grasp", "fisher", "grad_norm", "jacov", "nwot", "epe_nas", "l2_norm",
                "plain", "params", "flops", "zen", "gradsign", "lga", "meco"}
    assert expected <= set(PROXIES.names())
    for name in PROXIES.names():
        p = PROXIES.resolve(name)
        assert isinstance(p, Proxy)
        assert p.name == name
        assert isinstance(p.higher_is_better, bool)
        assert type(p).__module__ == f"proxies.{name}"  # one proxy per module
        doc = sys.modules[type(p).__module__].__doc__ or ""
        assert len(doc) > 300, name  # the paper, the formula and the sign convention


def test_resolve_proxies() -> None:
    assert [p.name for p in resolve_proxies("params, flops")] == ["params", "flops"]
    assert len(resolve_proxies("all")) == len(PROXIES.names())
    with pytest.raises(RegistryError, match="synflow"):
        resolve_proxies("synfow")
    with pytest.raises(ProxyError):
        resolve_proxies("")


def test_to_model_accepts_module_graph_onnx_and_genotype(tmp_path, batch) -> None:
    space = NB201Space()
    module = space.to_module(1)
    assert to_model(module) is module
    graph = space.to_graph(1)
    from_graph = to_model(graph, seed=0)
    assert sum(p.numel() for p in from_graph.parameters()) == 802426
    path = tmp_path / "m.onnx"
    import onnx

    from nas.ir.torch_export import export_onnx

    onnx.save(export_onnx(module, torch.zeros(1, 3, 32, 32)), str(path))
    from_file = to_model(path, seed=0)
    assert sum(p.numel() for p in from_file.parameters()) == 802426
    a = to_model("1", space=space, seed=5)
    b = to_model(1, space=space, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(ProxyError, match="space"):
        to_model((1, 2, 3))


def test_score_returns_each_requested_proxy(batch) -> None:
    model = NB201Space().to_module(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    timings: dict[str, float] = {}
    out = score(model, batch, "params,flops,synflow,nwot", timings=timings)
    assert list(out) == ["params", "flops", "synflow", "nwot"]
    assert out["params"] == pytest.approx(0.802426)
    assert out["flops"] == pytest.approx(ArchGraph.from_module(model, batch.images[:1]).flops / 1e6)
    assert set(timings) == set(out) and all(t >= 0 for t in timings.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_every_proxy_is_finite_deterministic_and_leaves_the_model_alone(batch) -> None:
    torch.manual_seed(0)
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    model = NB201Space(c=8, n=1).to_module(arch)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = score(model, batch, "all")
    second = score(model, batch, "all")
    for name, value in first.items():
        assert np.isfinite(value), name
        assert value == pytest.approx(second[name], rel=1e-6, abs=1e-9), name
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_model_without_weights_is_a_proxy_error(batch) -> None:
    model = nn.Sequential(nn.AvgPool2d(2), nn.Flatten())
    for name in ("synflow", "snip", "grad_norm", "gradsign"):
        with pytest.raises(ProxyError, match=name):
            PROXIES.resolve(name).score(model, batch)


def test_rank_ensemble_by_hand() -> None:
    scores = {"nwot": [3.0, 1.0, 2.0, 4.0], "synflow": [10.0, 40.0, 20.0, 30.0]}
    out = rank_ensemble(scores, ["nwot", "synflow"])
    # scaled ranks: nwot (2,0,1,3)/3, synflow (0,3,1,2)/3 -> mean
    np.testing.assert_allclose(out, [1 / 3, 1 / 2, 1 / 3, 5 / 6])
    weighted = rank_ensemble(scores, ["nwot", "synflow"], weights={"nwot": 3.0, "synflow": 1.0})
    np.testing.assert_allclose(weighted, [(3 * 2 + 0) / 12, (0 + 3) / 12, (3 + 1) / 12, (9 + 2) / 12])


def test_rank_ensemble_errors_and_defaults() -> None:
    scores = {p: [1.0, 2.0, 3.0] for p in DEFAULT_PROXIES}
    np.testing.assert_allclose(rank_ensemble(scores), [0.0, 0.5, 1.0])
    with pytest.raises(ProxyError, match="missing"):
        rank_ensemble({"nwot": [1.0, 2.0]}, ["nwot", "synflow"])
    with pytest.raises(ProxyError, match="non-finite"):
        rank_ensemble({"nwot": [1.0, float("nan")]}, ["nwot"])


# --------------------------------------------------------------------------- shared passes


def _shared_and_own(model: nn.Module, batch, graph=None) -> tuple[dict, dict, dict, dict]:
    own_err: dict[str, str] = {}
    shared_err: dict[str, str] = {}
    own = score(model, batch, "all", errors=own_err, shared=False)
    shared = score(model, batch, "all", errors=shared_err, graph=graph)
    return own, shared, own_err, shared_err


@pytest.mark.parametrize("arch", [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # degenerate: the output ignores the input
])
def test_shared_passes_give_each_proxys_own_score_on_nb201(batch, arch) -> None:
    space = NB201Space(c=8, n=1)
    model = to_model(arch, space=space, seed=3)
    own, shared, own_err, shared_err = _shared_and_own(model, batch, graph=space.to_graph(arch))
    assert set(own) == set(shared) and set(own_err) == set(shared_err)
    for name, value in own.items():
        assert shared[name] == pytest.approx(value, rel=1e-5, abs=1e-9), name
    if "none~0|+|none~0" in arch:
        assert {"jacov", "epe_nas", "nwot"} <= set(shared_err)  # undefined there, as documented


@pytest.mark.parametrize("make", ["make_resnet", "make_mobilenet", "make_transformer"])
def test_shared_passes_give_each_proxys_own_score_on_other_models(make) -> None:
    from tests.nas.ir import models

    torch.manual_seed(0)
    model = getattr(models, make)()
    b = load_batch("synthetic", 8, seed=1)
    assert tuple(b.images.shape[1:]) == models.INPUT_SHAPE and b.num_classes == models.NUM_CLASSES
    own, shared, own_err, shared_err = _shared_and_own(model, b)
    assert set(own) == set(shared) and own_err == shared_err
    for name, value in own.items():
        assert shared[name] == pytest.approx(value, rel=1e-4, abs=1e-9), name
    if make == "make_mobilenet":  # Hardsigmoid has no second derivative in PyTorch
        assert set(own_err) == {"grasp"} and "second derivatives" in own_err["grasp"]


def test_a_failing_shared_part_does_not_take_the_others_down(batch) -> None:
    class Features(nn.Module):  # returns a feature map, not (B, C) logits
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.conv(x))

    errors: dict[str, str] = {}
    out = score(Features(), batch, "snip,fisher,jacov,nwot", errors=errors)
    assert set(out) == {"jacov", "nwot"}
    assert set(errors) == {"snip", "fisher"}
    assert "logits" in errors["snip"] and "'snip'" in errors["snip"]


def test_flops_reads_the_given_graph_only_when_its_shape_fits(batch) -> None:
    space = NB201Space(c=8, n=1)
    model = space.to_module(1)
    fits = space.to_graph(1)
    assert score(model, batch, "flops", graph=fits)["flops"] == pytest.approx(fits.flops / 1e6)
    big = Batch(torch.randn(4, 3, 40, 40), torch.arange(4), num_classes=10, source="synthetic", seed=0)
    exported = ArchGraph.from_module(model, big.images[:1]).flops / 1e6
    assert exported != pytest.approx(fits.flops / 1e6)
    assert score(model, big, "flops", graph=fits)["flops"] == pytest.approx(exported)


def test_score_graphs_in_worker_processes_equals_scoring_each_graph() -> None:
    """Each graph rebuilt with ``to_torch(seed)`` and scored on the batch resized to its input; a dead
    cell's jacov is an error, not a score; spawned workers give the same scores, errors and progress."""
    space = NB201Space(c=8, n=1)
    dead = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    graphs = [space.to_graph(space.parse(a)) for a in (3, dead, 11, 40, 7)]
    big = load_batch("synthetic", 6, seed=2)
    big = Batch(torch.nn.functional.interpolate(big.images, size=(40, 40)), big.labels, num_classes=10,
                source="synthetic", seed=2)
    names = ["synflow", "jacov", "params"]
    done: list[int] = []
    one = score_graphs(graphs, big, names, seed=3, progress=lambda k, total: done.append(k))
    assert done == [1, 2, 3, 4, 5]
    for g, (scores, errors) in zip(graphs, one, strict=True):
        want_errors: dict[str, str] = {}
        want = score(g.to_torch(seed=3), fit_batch(big, g.inputs[0].out_shapes[0]), names, errors=want_errors)
        assert scores == want and errors == want_errors
    assert set(one[1][1]) == {"jacov"} and not any(errors for _, errors in one[:1] + one[2:])
    done.clear()
    assert score_graphs(graphs, big, names, seed=3, workers=2, progress=lambda k, total: done.append(k)) == one
    assert done == [1, 2, 3, 4, 5]
    with pytest.raises(ProxyError, match="workers must be at least 1"):
        score_graphs(graphs, big, names, workers=0)


class _KillsItsProcess:
    """Unpickling it ends the process that unpickles it: a worker dying mid-run, as when killed for memory."""

    def __reduce__(self):
        import os

        return os._exit, (3,)


def test_score_graphs_reports_a_dead_worker_as_a_proxy_error() -> None:
    with pytest.raises(ProxyError, match=r"a scoring process died after 0 of 2 graphs"):
        score_graphs([_KillsItsProcess(), _KillsItsProcess()], load_batch("synthetic", 2, seed=0), ["params"],
                     workers=2)
