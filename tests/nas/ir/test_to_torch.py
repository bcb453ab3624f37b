"""``ArchGraph.to_torch()`` against the module the graph was exported from.

The oracle is the original PyTorch module: with ``keep_weights=True`` the rebuilt module must compute
the same function (eval mode, on the export batch size and on another one) and, in train mode, the
same loss and gradients. With the default re-initialization it must be trainable end to end and
initialized the way PyTorch initializes fresh layers.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import IRError
from nas.ir import ArchGraph, Ref
from search_spaces.nb201 import NB201Space, format_arch
from tests.nas.ir.models import INPUT_SHAPE, NUM_CLASSES, make_mobilenet, make_resnet, make_transformer

EXPORT_BATCH = 2
OTHER_BATCH = 3
ATOL = 1e-5
#: float64 comparisons (relative to the output's scale when that exceeds 1)
ATOL64 = 1e-8
NB201_SEEDS = (0, 1, 2)

#: NB201 index 3. Node 2 = skip(node 0) + none(node 1) and node 3 = skip(node 2): every ``none`` edge is a
#: ``Mul`` by 0 that the importer removes, and the avg-pool edge into node 1 is left without consumers.
ARCH_3 = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|"
#: Every edge into node 3 is ``none``: the cell outputs zeros, so the layers after the first cell read
#: removed (all-zero) operands, which ``to_torch`` must feed as zeros of the right batch size.
ZERO_CELL = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
#: NB201 samples (by seed) with a node read only through ``none`` edges: the conv edges into it cannot reach
#: the output. seed 0: |avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|none~2|;
#: seed 1: |nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|none~2|.
UNREACHABLE = {"nb201-seed0", "nb201-seed1"}


def _nb201_factory(seed: int) -> nn.Module:
    space = NB201Space()
    return space.to_module(space.sample(np.random.default_rng(seed)))


FACTORIES = {
    "resnet": make_resnet,
    "mobilenet": make_mobilenet,
    "transformer": make_transformer,
    **{f"nb201-seed{s}": functools.partial(_nb201_factory, s) for s in NB201_SEEDS},
}
CASES = list(FACTORIES)


def randomize_norms(model: nn.Module, seed: int) -> None:
    """Give every BatchNorm/LayerNorm non-default statistics and affine parameters.

    Fresh norms (mean 0, var 1, scale 1, shift 0) are near-identities in eval mode, so a rebuilt module
    that dropped or misplaced their values would still match; these values make such a bug visible.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


@dataclass(frozen=True)
class Exported:
    model: nn.Module  # eval mode; tests that change it work on a deep copy
    x: torch.Tensor  # the export input, batch EXPORT_BATCH
    graph: ArchGraph


@functools.cache
def exported(name: str) -> Exported:
    """Build, perturb and export one model once per session (exports dominate this file's run time).

    Built under a seed that the re-initialization tests do not use, so a re-initialized layer cannot
    coincide with the exported one by drawing the same numbers.
    """
    torch.manual_seed(100)
    model = FACTORIES[name]()
    randomize_norms(model, seed=1)
    model.eval()
    torch.manual_seed(1)
    x = torch.randn(EXPORT_BATCH, *INPUT_SHAPE)
    return Exported(model, x, ArchGraph.from_module(model, x))


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]


def _norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm))]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


# --------------------------------------------------------------------------- same function


@pytest.mark.parametrize("name", CASES)
def test_keep_weights_reproduces_the_module(name: str) -> None:
    """Compared in float64, both with the same (float32-exported) weights: the module may add a sum's
    terms in another order than the original (see ``GraphModule``'s canonical sum order), and the NB201
    cases' logits reach ~2e3, where one float32 step is 1.2e-4. In float64 the order costs ~1e-12 relative,
    so a tolerance far below any real error stays meaningful."""
    case = exported(name)
    gm = case.graph.to_torch(keep_weights=True).eval()
    torch.manual_seed(2)
    x_other = torch.randn(OTHER_BATCH, *INPUT_SHAPE)
    with torch.no_grad():
        out, out_other = gm(case.x), gm(x_other)
        model64, gm64 = copy.deepcopy(case.model).double(), copy.deepcopy(gm).double()
        ref, ref_other = model64(case.x.double()), model64(x_other.double())
        out64, out64_other = gm64(case.x.double()), gm64(x_other.double())
    assert out.shape == (EXPORT_BATCH, NUM_CLASSES)
    assert out_other.shape == (OTHER_BATCH, NUM_CLASSES)
    # Not trivially equal: the samples differ, so a batch-mixing bug cannot hide behind equal rows.
    assert _max_diff(ref[0], ref[1]) > 1e-4
    for o, r in ((out64, ref), (out64_other, ref_other)):
        assert _max_diff(o, r) <= ATOL64 * max(1.0, r.abs().max().item())
    # and the float32 module agrees to float32 precision, relative to the logits' scale
    for o, r in ((out, ref), (out_other, ref_other)):
        assert _max_diff(o.double(), r) <= ATOL * max(1.0, r.abs().max().item())


@pytest.mark.parametrize("name", CASES)
def test_parameter_counts_agree(name: str) -> None:
    """Every parameter of the original (conv, linear, norm affine, position embedding) is one parameter of
    the graph and of the rebuilt module, with the same shape; running statistics stay buffers."""
    case = exported(name)
    original = _numel(case.model)
    assert case.graph.params == original
    shapes = sorted(tuple(p.shape) for p in case.model.parameters())
    for keep in (False, True):
        gm = case.graph.to_torch(keep_weights=keep)
        assert _numel(gm) == original
        assert sorted(tuple(p.shape) for p in gm.parameters()) == shapes
        ref_stats = sorted(tuple(b.shape) for n, b in case.model.named_buffers() if "running" in n)
        assert sorted(tuple(b.shape) for n, b in gm.named_buffers() if "running" in n) == ref_stats


# --------------------------------------------------------------------------- training


def _grads(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    module.train()
    loss = F.cross_entropy(module(x), y)
    loss.backward()
    return loss.detach()


def _unreachable_params(graph: ArchGraph) -> int:
    """Parameters of the nodes from which no output can be reached (they feed only removed ``x * 0`` edges)."""
    live: set[str] = set()
    stack = [o.node for o in graph.outputs if isinstance(o, Ref)]
    while stack:
        name = stack.pop()
        if name not in live:
            live.add(name)
            stack.extend(r.node for _, r in graph.node(name).refs)
    return sum(n.params for n in graph if n.name not in live)


def _train_step_grads(name: str, keep: bool) -> tuple[nn.Module, torch.Tensor, nn.Module, torch.Tensor]:
    """One cross-entropy backward in train mode through the rebuilt module and through a copy of the original."""
    case = exported(name)
    torch.manual_seed(3)
    x = torch.randn(EXPORT_BATCH, *INPUT_SHAPE)
    y = torch.randint(0, NUM_CLASSES, (EXPORT_BATCH,))
    ref = copy.deepcopy(case.model)
    ref_loss = _grads(ref, x, y)
    gm = case.graph.to_torch(keep_weights=keep, seed=0)
    return gm, _grads(gm, x, y), ref, ref_loss


@pytest.mark.parametrize("keep", [False, True], ids=["reinit", "keep"])
@pytest.mark.parametrize("name", CASES)
def test_gradients_reach_every_parameter(name: str, keep: bool) -> None:
    gm, loss, ref, ref_loss = _train_step_grads(name, keep)
    graph = exported(name).graph
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in ref.parameters())  # the original reaches every parameter
    # Every parameter gets a finite gradient, including those of nodes cut off from the output by a
    # removed ``x * 0`` edge (zero there, as in the original; see test_unreachable_parameters_get_zero_gradients).
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gm.parameters())
    assert (_unreachable_params(graph) > 0) == (name in UNREACHABLE)
    live_layers = [m for m in _layers(gm) if m.weight.grad.abs().max() > 0]
    assert len(live_layers) == sum(1 for m in _layers(ref) if m.weight.grad.abs().max() > 0) > 0

    if keep:  # same weights, same batch statistics: same loss and same gradients (as a multiset of norms)
        assert torch.allclose(loss, ref_loss, atol=1e-5)
        norms = sorted(0.0 if p.grad is None else p.grad.norm().item() for p in gm.parameters())
        ref_norms = sorted(p.grad.norm().item() for p in ref.parameters())
        np.testing.assert_allclose(norms, ref_norms, rtol=1e-3, atol=1e-6)
        # The train-mode step updated the running statistics with PyTorch's momentum, as in the original.
        stats = sorted(m.running_mean.sum().item() for m in gm.modules() if isinstance(m, nn.BatchNorm2d))
        ref_stats = sorted(m.running_mean.sum().item() for m in ref.modules() if isinstance(m, nn.BatchNorm2d))
        np.testing.assert_allclose(stats, ref_stats, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(UNREACHABLE))
def test_unreachable_parameters_get_zero_gradients(name: str) -> None:
    gm, _, ref, _ = _train_step_grads(name, keep=True)
    # In the original, the cut-off edges are computed and multiplied by 0: their gradients exist and are zero.
    zero_in_ref = sum(p.numel() for p in ref.parameters() if p.grad is not None and not p.grad.any())
    assert zero_in_ref >= _unreachable_params(exported(name).graph) > 0
    missing = [tuple(p.shape) for p in gm.parameters() if p.grad is None]
    assert missing == []
    zero_in_gm = sum(p.numel() for p in gm.parameters() if not p.grad.any())
    assert zero_in_gm >= _unreachable_params(exported(name).graph)


# --------------------------------------------------------------------------- re-initialization


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", ["resnet", "transformer"])
def test_seeded_reinit_is_reproducible_and_private(name: str) -> None:
    graph = exported(name).graph
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    a = _state(graph.to_torch(seed=0))
    assert torch.equal(torch.get_rng_state(), rng_before), "a seeded to_torch() must not touch the global RNG"
    b = _state(graph.to_torch(seed=0))
    c = _state(graph.to_torch(seed=1))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = [k for k, v in a.items() if k.endswith("weight") and v.dim() >= 2]
    assert weights and all(not torch.equal(a[k], c[k]) for k in weights)
    # Without a seed the global RNG drives the initialization (so it is consumed, and reproducible from it).
    torch.manual_seed(7)
    d = _state(graph.to_torch())
    assert not torch.equal(torch.get_rng_state(), rng_before)
    torch.manual_seed(7)
    e = _state(graph.to_torch())
    assert all(torch.equal(d[k], e[k]) for k in d)


@pytest.mark.parametrize("name", ["resnet", "mobilenet", "transformer"])
def test_reinit_follows_pytorch_defaults(name: str) -> None:
    case = exported(name)
    gm = case.graph.to_torch(seed=0)
    kept = case.graph.to_torch(keep_weights=True)
    layers, kept_layers = _layers(gm), _layers(kept)
    assert len(layers) == len(kept_layers) == len(_layers(case.model))
    for m, k in zip(layers, kept_layers, strict=True):
        # kaiming_uniform_(a=sqrt(5)) gives U(-b, b) with b = sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(fan_in);
        # the bias is U(-b, b) with the same b.
        fan_in = math.prod(m.weight.shape[1:])
        bound = 1 / math.sqrt(fan_in)
        w = m.weight.detach()
        assert w.abs().max() <= bound + 1e-7, m
        assert not torch.equal(w, k.weight.detach()), "re-initialized weights must not be the exported ones"
        if w.numel() >= 64:  # the draws fill the interval: not a narrower or all-zero initialization
            assert w.abs().max() >= 0.5 * bound, m
        if w.numel() >= 1000:  # U(-b, b) has std b / sqrt(3)
            assert w.std().item() * math.sqrt(3) / bound == pytest.approx(1.0, abs=0.1), m
        if m.bias is not None:
            assert m.bias.detach().abs().max() <= bound + 1e-7, m
    norms = _norms(gm)
    assert len(norms) == len(_norms(case.model)) > 0
    for m in norms:
        assert torch.equal(m.weight, torch.ones_like(m.weight)), m
        assert torch.equal(m.bias, torch.zeros_like(m.bias)), m
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
            assert torch.equal(m.running_var, torch.ones_like(m.running_var))
            assert m.momentum == pytest.approx(0.1) and m.eps == pytest.approx(1e-5)


def test_reinit_keeps_constant_operand_values() -> None:
    """Documented behaviour: constant operands (the position embedding) are parameters that keep their
    ONNX values even when the layers are re-initialized."""
    case = exported("transformer")
    pos = case.model.pos_embed.detach()
    gm = case.graph.to_torch(seed=0)
    matches = [p for p in gm.parameters() if p.shape == pos.shape and torch.equal(p.detach(), pos)]
    assert len(matches) == 1


# --------------------------------------------------------------------------- export does not mutate


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_from_module_does_not_mutate_the_module(train: bool) -> None:
    torch.manual_seed(0)
    model = make_mobilenet()
    randomize_norms(model, seed=1)
    model.train(train)
    if train:
        model.blocks[1].eval()  # mixed flags must come back as they were, not as one model-wide flag
    flags = {name: m.training for name, m in model.named_modules()}
    requires = {name: p.requires_grad for name, p in model.named_parameters()}
    before = _state(model)
    x = torch.randn(EXPORT_BATCH, *INPUT_SHAPE)

    graph = ArchGraph.from_module(model, x)

    assert {name: m.training for name, m in model.named_modules()} == flags
    assert {name: p.requires_grad for name, p in model.named_parameters()} == requires
    after = model.state_dict()
    assert after.keys() == before.keys()
    # includes running_mean/var and num_batches_tracked: no train-mode forward ran during the export
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    # The graph is the eval-mode function whatever mode the module was in.
    assert graph.fingerprint() == exported("mobilenet").graph.fingerprint()
    with torch.no_grad():
        ref = copy.deepcopy(model).eval()(x)
        assert _max_diff(graph.to_torch(keep_weights=True).eval()(x), ref) <= ATOL


# --------------------------------------------------------------------------- structure-only graphs


@pytest.mark.parametrize("seed", NB201_SEEDS)
def test_structure_only_graph(seed: int) -> None:
    space = NB201Space()
    genotype = space.sample(np.random.default_rng(seed))
    graph = space.to_graph(genotype)
    case = exported(f"nb201-seed{seed}")
    assert not graph.has_weights and case.graph.has_weights
    with pytest.raises(IRError, match="structure-only"):
        graph.to_torch(keep_weights=True)
    gm = graph.to_torch(seed=0).eval()
    assert _numel(gm) == graph.params == _numel(case.model)
    with torch.no_grad():
        out = gm(case.x)  # built with batch 1, run with the export batch
    assert out.shape == (EXPORT_BATCH, NUM_CLASSES) and torch.isfinite(out).all()
    # Same computation whichever way the graph was built (and whatever batch it was recorded with).
    assert graph.fingerprint() == case.graph.fingerprint()


# --------------------------------------------------------------------------- removed all-zero edges


@pytest.mark.parametrize("arch", [ARCH_3, ZERO_CELL], ids=["index3", "zero-cell"])
def test_removed_zero_edges_keep_outputs(arch: str) -> None:
    space = NB201Space()
    genotype = space.parse(arch)
    if arch == ARCH_3:
        assert format_arch(space.parse("3")) == ARCH_3
    torch.manual_seed(0)
    model = space.to_module(genotype)
    randomize_norms(model, seed=1)
    model.eval()
    torch.manual_seed(1)
    x = torch.randn(EXPORT_BATCH, *INPUT_SHAPE)
    graph = ArchGraph.from_module(model, x)
    # every ``x * 0`` edge was removed rather than computed
    assert not any(n.op == "Mul" for n in graph)
    has_zero_operands = any(op is None for n in graph for op in n.inputs)
    assert has_zero_operands == (arch == ZERO_CELL)
    gm = graph.to_torch(keep_weights=True).eval()
    torch.manual_seed(2)
    x_other = torch.randn(OTHER_BATCH, *INPUT_SHAPE)
    with torch.no_grad():
        assert _max_diff(gm(x), model(x)) <= ATOL
        assert _max_diff(gm(x_other), model(x_other)) <= ATOL
    assert graph.params == _numel(gm) == _numel(model)


# --------------------------------------------------------------------------- known limitation


class _TiedShift(nn.Module):
    """One conv and one shift parameter, each used twice (weight tying)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.shift = nn.Parameter(torch.randn(1, 4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x) + self.shift)
        x = self.conv(x) + self.shift
        return x.mean((2, 3))  # (B, 4, H, W) -> (B, 4)


def test_tied_parameters_stay_tied() -> None:
    torch.manual_seed(0)
    model = _TiedShift().eval()
    x = torch.randn(EXPORT_BATCH, 4, 8, 8)
    graph = ArchGraph.from_module(model, x)
    gm = graph.to_torch(keep_weights=True).eval()
    with torch.no_grad():
        assert _max_diff(gm(x), model(x)) <= ATOL  # the function itself is right
    assert graph.params == _numel(model) == _numel(gm)  # each shared tensor counts once


def test_equal_valued_parameters_are_not_merged_into_one() -> None:
    # At initialization every LayerNorm has weight 1 and bias 0; the exporter and the simplifier must
    # not turn these equal values into one shared (tied) parameter.
    model = make_transformer().eval()
    graph = ArchGraph.from_module(model, torch.zeros(1, *INPUT_SHAPE))
    assert graph.params == _numel(model) == _numel(graph.to_torch())


def test_sum_takes_a_repeated_operand_once_times_its_count() -> None:
    """Reference: the plain left-to-right sum, broadcasting included; the module computes ``3a + 2b``."""
    from nas.ir.torch_module import _add

    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g), torch.randn(3, generator=g)
    torch.testing.assert_close(_add(a, b, a, a, b), a + b + a + a + b, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(_add(a, c, c), a + c + c, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(_add(a), a)
    equal_values = a.clone()  # equal values in another tensor are another operand
    torch.testing.assert_close(_add(a, equal_values), 2 * a)


@pytest.mark.parametrize("name", ["transformer", "nb201-seed0", "nb201-seed2"])
def test_canonical_sums_compute_the_same_function(name: str) -> None:
    """The canonical sum order changes only the order of additions: in float64 the two modules agree (same
    weights, drawn in node order either way), and the default keeps the IR's order."""
    case = exported(name)
    plain = case.graph.to_torch(keep_weights=True).eval().double()
    canonical = case.graph.to_torch(keep_weights=True, canonical_sums=True).eval().double()
    with torch.no_grad():
        a, b = plain(case.x.double()), canonical(case.x.double())
    assert _max_diff(a, b) <= ATOL64 * max(1.0, a.abs().max().item())
    ir_order = {n.name: [r.node for _, r in n.refs] for n in case.graph.nodes if n.op == "Add"}
    plans = {m: {name: [o[1] for o in ops if o[0] == "ref"] for _, name, ops in m._plan if name in ir_order}
             for m in (plain, canonical)}
    assert plans[plain] == ir_order
    assert sorted(map(sorted, plans[canonical].values())) == sorted(map(sorted, ir_order.values()))
