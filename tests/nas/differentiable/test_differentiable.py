"""Differentiable search: supernets against the space's networks, the methods' gradients against
hand-computed and exact oracles, the latency table, the run folder, resume, the CLI and the bad cases."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nas.search.differentiable.errors import ArchWeightsNaNError, DataSplitError, SupernetUnsupportedError
from nas.search.differentiable.methods import (
    ArchState,
    BinaryGates,
    Method,
    argmax_plan,
    gumbel_plan,
    mixed_plan,
    proxyless_alpha_grad,
    proxyless_rescale,
)
from nas.search.differentiable.search import DiffSearchConfig, run_differentiable_search
from nas.search.differentiable.supernet import MixedOp, Plan, build_supernet

torch.set_num_threads(1)

TINY_NB201 = {"c": 4, "n": 1}


def tiny_config(**kw: object) -> DiffSearchConfig:
    base: dict[str, object] = dict(method="darts", space="nb201", epochs=2, data="synthetic", images=128, batch=32,
                                   supernet=dict(TINY_NB201), augment=False)
    base.update(kw)
    return DiffSearchConfig(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- supernets


def test_space_without_supernet_names_those_with_one() -> None:
    with pytest.raises(SupernetUnsupportedError, match="nb101") as e:
        build_supernet("nb101")
    for name in ("nb201", "darts", "mbv3"):
        assert name in str(e.value)


def test_latency_loss_on_a_space_without_table_names_the_spaces_with_one(tmp_path: Path) -> None:
    net = build_supernet("darts", c=4, layers=3)
    with pytest.raises(SupernetUnsupportedError, match="mbv3, nb201"):
        net.latency_specs()
    with pytest.raises(SupernetUnsupportedError, match="mbv3"):
        run_differentiable_search(tiny_config(space="darts", supernet={"c": 4, "layers": 3}, latency_weight=0.1),
                                  tmp_path / "run", progress=False)


def test_mixed_op_is_the_weighted_sum_of_its_active_ops() -> None:
    torch.manual_seed(0)
    ops = [torch.nn.Conv2d(2, 2, 1), torch.nn.Identity(), torch.nn.Conv2d(2, 2, 3, padding=1)]
    m = MixedOp(ops)
    x = torch.randn(3, 2, 5, 5)
    w = torch.tensor([0.2, 0.5, 0.3])
    ref = sum(float(w[i]) * ops[i](x) for i in range(3))
    torch.testing.assert_close(m(x, w, [0, 1, 2]), ref)
    torch.testing.assert_close(m(x, w, [2]), 0.3 * ops[2](x))


def _copy_path(net: torch.nn.Module, module: torch.nn.Module, pairs: list[tuple[str, str]]) -> None:
    sd = {}
    src = net.state_dict()
    for a, b in pairs:
        for k, v in src.items():
            if k.startswith(a + "."):
                sd[b + k[len(a):]] = v
    missing = set(module.state_dict()) - set(sd)
    assert not missing, sorted(missing)[:5]
    module.load_state_dict(sd)


def test_nb201_supernet_path_equals_the_space_network() -> None:
    """The argmax path of the supernet computes what the space's own network of that genotype computes."""
    from search_spaces.nb201 import EDGES, NB201Network

    torch.manual_seed(0)
    net = build_supernet("nb201", **TINY_NB201)
    arch = ArchState(net, torch.Generator().manual_seed(0))
    ops = {"cell": [3, 1, 2, 4, 0, 3]}
    genotype = net.genotype(ops)
    ref = NB201Network(genotype, c=4, n=1)
    pairs = [("stem", "stem"), ("lastact", "lastact"), ("classifier", "classifier")]
    cells: torch.nn.ModuleList = net.cells  # type: ignore[assignment]
    for k, layer in enumerate(cells):
        if hasattr(layer, "edges"):
            pairs += [(f"cells.{k}.edges.{e}.ops.{ops['cell'][e]}", f"cells.{k}.edges.{e}") for e in range(len(EDGES))]
        else:
            pairs.append((f"cells.{k}", f"cells.{k}"))
    _copy_path(net, ref, pairs)
    net.eval()
    ref.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net(x, argmax_plan(arch, ops)), ref(x), rtol=1e-4, atol=1e-5)


def test_mbv3_supernet_path_equals_the_space_network() -> None:
    from search_spaces.mbv3 import MBv3Network

    torch.manual_seed(0)
    net = build_supernet("mbv3", width=0.5)
    arch = ArchState(net, torch.Generator().manual_seed(0))
    n_ops = len(net.choices["blocks"])
    skip = n_ops - 1
    rows = len(net.row_names["blocks"])
    ops = {"blocks": [(3 * r) % (n_ops - 1) for r in range(rows)]}
    ops["blocks"][3] = skip  # stage 0 drops its last block
    ops["blocks"][18] = skip  # stage 4 drops its third block (its fourth stays)
    genotype = net.genotype(ops)
    assert genotype.depths == (3, 4, 4, 4, 3)
    ref = MBv3Network(genotype, num_classes=10)
    pairs = [("stem", "stem"), ("first", "blocks.0"), ("final_expand", "final_expand"),
             ("feature_mix", "feature_mix"), ("classifier", "classifier")]
    b = 1
    for r, i in enumerate(ops["blocks"]):
        if i != skip:
            pairs.append((f"slots.{r}.ops.{i}", f"blocks.{b}"))
            b += 1
    _copy_path(net, ref, pairs)
    net.eval()
    ref.eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(net(x, argmax_plan(arch, ops)), ref(x), rtol=1e-4, atol=1e-5)
    # the skip choice exists only where dropping a block keeps the network valid
    assert not bool(net.valid["blocks"][0, skip]) and bool(net.valid["blocks"][2, skip])


def test_darts_supernet_derives_the_two_strongest_edges_per_node() -> None:
    from search_spaces.darts import ALL_OPS

    net = build_supernet("darts", c=4, layers=3)
    rows = len(net.row_names["normal"])
    ops = {g: [ALL_OPS.index("sep_conv_3x3")] * rows for g in ("normal", "reduce")}
    strength = {g: [0.0] * rows for g in ("normal", "reduce")}
    # node 2 (rows 5..8 read inputs 0, 1, 2, 3): make inputs 3 and 0 the strongest
    strength["normal"][5 + 3] = 0.9
    strength["normal"][5 + 0] = 0.8
    ops["normal"][5 + 3] = ALL_OPS.index("skip_connect")
    g = net.genotype(ops, strength)
    assert g.normal[4:6] == (("sep_conv_3x3", 0), ("skip_connect", 3))
    x = torch.randn(2, 3, 32, 32)
    arch = ArchState(net, torch.Generator().manual_seed(0))
    assert net(x, mixed_plan(arch)).shape == (2, 10)


# --------------------------------------------------------------------------- methods


def test_proxyless_estimator_matches_the_hand_computed_formula() -> None:
    net = build_supernet("nb201", **TINY_NB201)
    arch = ArchState(net, torch.Generator().manual_seed(0))
    with torch.no_grad():
        arch.alphas["cell"].copy_(torch.tensor([[0.3, -0.2, 1.0, 0.0, 0.5]] * 6))
    pair = torch.tensor([[0, 2]] * 6)
    gates = torch.zeros(6, 5)
    gates.grad = torch.zeros(6, 5)
    gates.grad[:, 0], gates.grad[:, 2], gates.grad[:, 1] = 0.7, -1.3, 5.0  # op 1 was not sampled: ignored
    bg = BinaryGates(Plan({}, {}), {"cell": gates}, {"cell": pair})
    grad = proxyless_alpha_grad(arch, bg)["cell"][0]
    p0, p2 = torch.softmax(torch.tensor([0.3, 1.0]), 0).tolist()
    a, c = 0.7, -1.3
    expected = [a * p0 * (1 - p0) + c * p2 * (0 - p0), 0.0, a * p0 * (0 - p2) + c * p2 * (1 - p2), 0.0, 0.0]
    torch.testing.assert_close(grad, torch.tensor(expected))


def test_proxyless_rescale_keeps_the_unsampled_probabilities() -> None:
    net = build_supernet("nb201", **TINY_NB201)
    arch = ArchState(net, torch.Generator().manual_seed(0))
    before = {"cell": arch.alphas["cell"].detach().clone()}
    p_before = arch.probs("cell").detach().clone()
    pair = torch.tensor([[1, 3]] * 6)
    with torch.no_grad():
        arch.alphas["cell"][:, 1] += 0.8
        arch.alphas["cell"][:, 3] -= 0.3
    proxyless_rescale(arch, {"cell": pair}, before)
    p_after = arch.probs("cell").detach()
    for i in (0, 2, 4):
        torch.testing.assert_close(p_after[:, i], p_before[:, i])
    assert bool((p_after[:, 1] > p_before[:, 1]).all())


def test_gdas_runs_one_path_and_passes_gradient_to_the_logits() -> None:
    net = build_supernet("nb201", **TINY_NB201)
    arch = ArchState(net, torch.Generator().manual_seed(0))
    plan = gumbel_plan(arch, tau=1.0, generator=torch.Generator().manual_seed(1))
    assert all(len(a) == 1 for a in plan.active["cell"])
    w = plan.weights["cell"]
    torch.testing.assert_close(w.detach().sum(-1), torch.ones(6))
    loss = F.cross_entropy(net(torch.randn(4, 3, 32, 32), plan), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    g = arch.alphas["cell"].grad
    assert g is not None and float(g.abs().sum()) > 0


def test_darts_second_order_matches_the_exact_unrolled_gradient() -> None:
    """The finite-difference Hessian-vector product against exact double backprop (torch.func)."""
    from torch.func import functional_call

    torch.manual_seed(0)
    net = build_supernet("nb201", c=4, n=1).double()
    net.eval()  # BN from running statistics: a smooth function of the weights
    # ReLU's kinks make a finite difference of a random small net meaningless (it does not converge
    # as eps shrinks); tanh keeps everything else of the supernet and makes the oracle exact
    for mod in list(net.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(mod, name, torch.nn.Tanh())
    arch = ArchState(net, torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        arch.alphas["cell"].normal_(0, 0.5, generator=torch.Generator().manual_seed(2))
    xt, yt = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (8,))
    xv, yv = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (8,))
    xi, decay = 0.1, 3e-4
    m = Method("darts2", net, arch, torch.Generator().manual_seed(0), lambda a: torch.zeros((), dtype=torch.float64))
    m._unrolled(xt, yt, xv, yv, xi, decay)
    approx = arch.alphas["cell"].grad.clone()

    names = [n for n, p in net.named_parameters()]
    params = dict(net.named_parameters())
    alpha = arch.alphas["cell"].detach().clone().requires_grad_(True)

    def loss_at(p: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        plan = Plan({"cell": torch.softmax(alpha, -1)}, {"cell": [list(range(5))] * 6})
        return F.cross_entropy(functional_call(net, dict(p), (x, plan)), y)

    lt = loss_at(params, xt, yt)
    gw = torch.autograd.grad(lt, [params[n] for n in names], create_graph=True)
    unrolled = {n: params[n] - xi * (g + decay * params[n]) for n, g in zip(names, gw, strict=True)}
    exact = torch.autograd.grad(loss_at(unrolled, xv, yv), alpha)[0]
    rel = float((approx - exact).norm() / exact.norm())
    assert rel < 1e-3, rel


# --------------------------------------------------------------------------- latency


def test_latency_table_is_measured_once_and_cached_by_fingerprint(tmp_path: Path) -> None:
    from nas.search.differentiable.latency import LatencyLUT, LatencyModel

    net = build_supernet("nb201", c=4, n=1, input_size=8)
    lut = LatencyLUT(tmp_path / "lut.json", warmup=1, repeats=3)
    model = LatencyModel.from_lut(net, lut)
    assert lut.measured > 0
    assert len(lut.entries) <= len(lut.index)  # some keys share a fingerprint or none
    again = LatencyLUT(tmp_path / "lut.json", warmup=1, repeats=3)
    model2 = LatencyModel.from_lut(net, again)
    assert again.measured == 0
    torch.testing.assert_close(model.tables["cell"], model2.tables["cell"])
    # a one-hot distribution's expectation is that network's prediction; skip_connect costs 0
    ops = {"cell": [3, 1, 2, 4, 0, 3]}
    onehot = {"cell": F.one_hot(torch.tensor(ops["cell"]), 5).float()}
    assert math.isclose(float(model.expected(onehot)), model.predict(ops), rel_tol=1e-5)
    assert float(model.tables["cell"][:, 1].abs().sum()) == 0.0
    assert float(model.tables["cell"][0, 3]) > 0.0
    # the network-level factor: fitted once on random networks, then read back from the file
    factor = model.calibrate(net, lut, n=2, seed=0)
    assert 0.2 < factor < 5.0, factor
    assert len(json.loads((tmp_path / "lut.json").read_text())["calibrations"]) == 1
    third = LatencyLUT(tmp_path / "lut.json", warmup=1, repeats=3)
    assert LatencyModel.from_lut(net, third, calibrate=2).factor == factor and third.measured == 0
    assert math.isclose(model.predict(ops), factor * model.predict(ops, calibrated=False) + model.offset_ms)
    line = model.calibrate(net, lut, n=3, seed=0)  # a least-squares line through 3 networks
    assert line > 0 and len(json.loads((tmp_path / "lut.json").read_text())["calibrations"]) == 2


def test_calibration_networks_span_the_supernets_latency_range() -> None:
    from nas.search.differentiable.latency import LatencyModel

    net = build_supernet("mbv3", width=0.5)
    valid = net.valid["blocks"]
    table = torch.rand(valid.shape, generator=torch.Generator().manual_seed(0)) + 0.1
    table[:, -1] = 0.0  # skip
    model = LatencyModel(1.0, {"blocks": table})
    nets = model.calibration_ops(net, 5, seed=3)
    sums = [model.predict(ops, calibrated=False) for ops in nets]
    inf = torch.tensor(float("inf"))
    fastest = 1.0 + float(torch.where(valid, table, inf).min(-1).values.sum())
    slowest = 1.0 + float(torch.where(valid, table, -inf).max(-1).values.sum())
    assert math.isclose(sums[0], fastest, rel_tol=1e-6) and math.isclose(sums[-1], slowest, rel_tol=1e-6)
    assert all(fastest < x < slowest for x in sums[1:-1])
    assert all(bool(valid[r, i]) for ops in nets for r, i in enumerate(ops["blocks"]))
    # every network of the supernet sums to within them, so the calibration line is never extrapolated
    arch = ArchState(net, torch.Generator().manual_seed(1))
    for _ in range(20):
        ops = {"blocks": torch.multinomial(arch.probs("blocks"), 1).squeeze(1).tolist()}
        assert fastest <= model.predict(ops, calibrated=False) <= slowest


def test_calibration_fit_is_a_relative_least_squares_line() -> None:
    from nas.search.differentiable.latency import fit_calibration

    summed = [1.5, 2.0, 3.0, 4.5, 6.0]
    factor, offset = fit_calibration(summed, [1.2 * s - 0.2 for s in summed])
    assert math.isclose(factor, 1.2, rel_tol=1e-6) and math.isclose(offset, -0.2, abs_tol=1e-6)
    # relative residuals: one network 10% slow pulls the small end less than ordinary least squares would
    measured = [1.2 * s - 0.2 for s in summed]
    measured[-1] *= 1.1
    factor, offset = fit_calibration(summed, measured)
    assert abs(factor * 1.5 + offset - measured[0]) / measured[0] < 0.02
    # two networks, or a line that falls with the sum: the median ratio, no offset
    assert fit_calibration([2.0, 4.0], [2.2, 4.6]) == (pytest.approx(1.125), 0.0)
    assert fit_calibration([2.0, 3.0, 4.0], [3.0, 2.9, 2.8]) == (pytest.approx(0.9667, abs=1e-4), 0.0)


def test_measurement_is_the_least_of_interleaved_round_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    import time as time_module

    from nas.search.differentiable import latency
    from nas.search.differentiable.latency import _export

    # each timed run reads the clock twice; run k of round r takes per_round[r] ms (model 0) or +1 ms (model 1)
    per_round = [2.0, 1.0, 3.0]
    calls, now = [0], [0.0]
    repeats, n_models = 3, 2

    def fake_clock() -> float:
        k = calls[0]
        calls[0] += 1
        if k % 2 == 1:  # the end of a run
            run = k // 2
            rnd, model = run // (repeats * n_models), (run // repeats) % n_models
            now[0] += (per_round[rnd] + model) / 1e3
        return now[0]

    monkeypatch.setattr(time_module, "thread_time", fake_clock)
    relu = _export(torch.nn.ReLU(), (1, 1))
    out = latency.measure_onnx_many([relu, relu], threads=1, warmup=0, repeats=repeats, rounds=3)
    assert out == [pytest.approx(1.0), pytest.approx(2.0)]
    assert calls[0] == 2 * repeats * n_models * 3


def test_latency_loss_drives_the_expected_latency_down() -> None:
    from nas.search.differentiable.latency import LatencyModel

    net = build_supernet("mbv3", width=0.5)
    arch = ArchState(net, torch.Generator().manual_seed(0))
    rows, n_ops = arch.alphas["blocks"].shape
    table = torch.arange(n_ops, dtype=torch.float32).repeat(rows, 1) + 1.0  # op i costs i + 1 ms
    table[:, -1] = 0.0
    model = LatencyModel(5.0, {"blocks": table})
    opt = torch.optim.Adam(arch.parameters(), lr=0.05)
    first = float(model.expected({"blocks": arch.probs("blocks").detach()}))
    for _ in range(50):
        opt.zero_grad()
        model.expected({"blocks": arch.probs("blocks")}).backward()
        opt.step()
    last = float(model.expected({"blocks": arch.probs("blocks").detach()}))
    assert last < first
    best = arch.probs("blocks").argmax(-1)
    skippable = net.valid["blocks"][:, -1]
    assert bool((best[skippable] == n_ops - 1).all()) and bool((best[~skippable] == 0).all())


# --------------------------------------------------------------------------- runs and bad cases


def test_too_little_data_for_a_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataSplitError, match=r"too little data.*10 for training and 10 for validation"):
        run_differentiable_search(tiny_config(images=20, batch=16), tmp_path / "run", progress=False)


def test_nan_in_the_arch_weights_names_epoch_and_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A diverging architecture step (simulated: the third one leaves a NaN) stops the run there."""
    original = Method.arch_step
    calls = []

    def diverging(self: Method, *args: object, **kwargs: object) -> tuple[float, float]:
        out = original(self, *args, **kwargs)  # type: ignore[arg-type]
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                self.arch.alphas["cell"][2, 1] = float("nan")
        return out

    monkeypatch.setattr(Method, "arch_step", diverging)
    # 128 images: 64 for training, batches of 32, so 2 steps per epoch; the third step is epoch 1, step 0
    with pytest.raises(ArchWeightsNaNError, match=r"epoch 1, step 0 \(first at row 2, op 1") as e:
        run_differentiable_search(tiny_config(), tmp_path / "run", progress=False)
    assert (e.value.epoch, e.value.step) == (1, 0)


@pytest.mark.parametrize("method", ["darts", "darts2", "gdas", "proxyless"])
def test_each_method_writes_the_run_folder(tmp_path: Path, method: str) -> None:
    res = run_differentiable_search(tiny_config(method=method), tmp_path / "run", progress=False)
    assert res is not None
    out = tmp_path / "run"
    for f in ("config.json", "candidates.jsonl", "best.onnx", "best.txt", "result.json", "arch_history.json",
              "arch_history.png"):
        assert (out / f).is_file(), f
    lines = [json.loads(x) for x in (out / "candidates.jsonl").read_text().splitlines()]
    assert [r["n"] for r in lines] == [0, 1]
    assert all(r["status"] == "evaluated" and r["fingerprint"] for r in lines)
    result = json.loads((out / "result.json").read_text())
    assert (out / "best.txt").read_text().strip() == result["best"]["genotype"] == res.text
    hist = json.loads((out / "arch_history.json").read_text())
    probs = hist["groups"]["cell"]["probs"]
    assert len(probs) == 2 and all(math.isclose(sum(row), 1.0, rel_tol=1e-5) for row in probs[-1])


def test_resume_continues_as_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = tiny_config(method="proxyless", epochs=3, augment=True)
    full = run_differentiable_search(cfg, tmp_path / "full", progress=False)
    assert run_differentiable_search(cfg, tmp_path / "cut", progress=False, stop_after_epochs=1) is None
    resumed = run_differentiable_search(None, tmp_path / "cut", resume=True, progress=False)
    assert full is not None and resumed is not None
    assert resumed.text == full.text
    a = json.loads((tmp_path / "full" / "arch_history.json").read_text())
    b = json.loads((tmp_path / "cut" / "arch_history.json").read_text())
    assert a == b
    with pytest.raises(Exception, match="already holds a search"):
        run_differentiable_search(cfg, tmp_path / "full", progress=False)


def test_warmup_freezes_the_architecture_then_releases_it_and_resumes(tmp_path: Path) -> None:
    cfg = tiny_config(method="proxyless", epochs=4, warmup_epochs=2)
    full = run_differentiable_search(cfg, tmp_path / "full", progress=False)
    assert full is not None
    net = build_supernet("nb201", **TINY_NB201)
    init = ArchState(net, torch.Generator().manual_seed(cfg.seed)).probs("cell").detach()
    probs = [torch.tensor(h["probs"]["cell"]) for h in full.history]
    assert torch.allclose(probs[0], init, atol=1e-7) and torch.allclose(probs[1], init, atol=1e-7)
    assert not torch.allclose(probs[2], init, atol=1e-4)  # the first search epoch moves the logits
    lines = [json.loads(x) for x in (tmp_path / "full" / "candidates.jsonl").read_text().splitlines()]
    assert [r["scores"]["arch_val_loss"] is None for r in lines] == [True, True, False, False]
    # a run cut inside the warm-up resumes into the same search
    assert run_differentiable_search(cfg, tmp_path / "cut", progress=False, stop_after_epochs=1) is None
    resumed = run_differentiable_search(None, tmp_path / "cut", resume=True, progress=False)
    assert resumed is not None and resumed.history == full.history


def test_warmup_default_is_proxylessnas_quarter_and_bad_values_are_named() -> None:
    assert DiffSearchConfig(method="proxyless", epochs=40).warmup == 10
    assert DiffSearchConfig(method="darts", epochs=40).warmup == 0
    assert DiffSearchConfig(method="gdas", epochs=40, warmup_epochs=0.5).warmup == 20
    assert DiffSearchConfig(method="proxyless", epochs=40, warmup_epochs=0).warmup == 0
    assert DiffSearchConfig(method="darts", epochs=40, warmup_epochs=3).warmup == 3
    assert DiffSearchConfig(method="proxyless", epochs=2, warmup_epochs=0.9).warmup == 1  # one epoch of search left
    with pytest.raises(Exception, match=r"warmup_epochs must be a whole number.*2\.5"):
        DiffSearchConfig(epochs=10, warmup_epochs=2.5)
    with pytest.raises(Exception, match=r"warmup_epochs \(10\) must leave at least one epoch"):
        DiffSearchConfig(epochs=10, warmup_epochs=10)


def test_darts_pt_selection_returns_a_valid_genotype(tmp_path: Path) -> None:
    res = run_differentiable_search(tiny_config(selection="darts-pt", pt_tune_steps=1, epochs=1, pt_eval_images=32),
                                    tmp_path / "run", progress=False)
    assert res is not None
    from search_spaces.nb201 import parse_arch

    assert parse_arch(res.text) == res.genotype
    assert res.result["selection"] == "darts-pt"


def test_darts_space_search_runs(tmp_path: Path) -> None:
    res = run_differentiable_search(tiny_config(space="darts", supernet={"c": 4, "layers": 3}, epochs=1, images=64),
                                    tmp_path / "run", progress=False)
    assert res is not None
    from search_spaces.darts import parse_genotype

    assert parse_genotype(res.text) == res.genotype
    assert all(op != "none" for op, _ in res.genotype.normal + res.genotype.reduce)


# --------------------------------------------------------------------------- CLI


def test_cli_search_and_build_lut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    out = tmp_path / "run"
    rc = main(["search", "--strategy", "gdas", "--space", "nb201", "--supernet", "c=4,n=1", "--epochs", "1",
               "--data", "synthetic", "--images", "128", "--batch", "32", "--out", str(out), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "gdas" and (out / "best.onnx").is_file()
    rc = main(["search", "--resume", str(out), "--json"])  # a finished run: derives again, trains nothing
    assert rc == 0
    capsys.readouterr()
    lut = tmp_path / "lut.json"
    rc = main(["latency", "build-lut", "--space", "nb201", "--supernet", "c=4,n=1,input_size=8", "--lut", str(lut),
               "--repeats", "2", "--warmup", "1", "--json"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert info["measured_now"] > 0 and lut.is_file()
    assert main(["search", "--strategy", "darts", "--space", "nb101", "--out", str(tmp_path / "x")]) == 2
    assert "spaces with one: darts, mbv3, nb201" in capsys.readouterr().err


def test_cli_module_imports_nothing_heavy_at_import() -> None:
    """``nas.cli`` loads this module for every command: its top-level imports are the standard library's."""
    import ast

    import nas.search.differentiable.cli as cli

    tree = ast.parse(Path(cli.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert set(names) <= {"__future__", "argparse", "json", "sys", "pathlib", "typing"}, names


@pytest.mark.slow
def test_mbv3_proxyless_end_to_end_with_latency(tmp_path: Path, data_dir: Path) -> None:
    res = run_differentiable_search(
        DiffSearchConfig(method="proxyless", space="mbv3", epochs=1, data="cifar10", data_dir=str(data_dir),
                         images=256, batch=32, latency_weight=0.05, lut=str(tmp_path / "lut.json"),
                         supernet={"width": 0.5}),
        tmp_path / "run", progress=False)
    assert res is not None
    lat = res.result["latency"]
    assert lat["measured_ms"] > 0 and abs(lat["relative_error"]) < 0.5
