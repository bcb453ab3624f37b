"""The MobileNetV3 space: genotypes and text form, sample/mutate, the network's size range, and the
graph's FLOPs against an independent count on the PyTorch module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import GenotypeError
from nas.ir import ArchGraph
from search_spaces import SPACES, FiniteSearchSpace, SearchSpace
from search_spaces.mbv3 import STAGES, Block, MBConv, MBv3Genotype, MBv3Space, make_divisible

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def space() -> MBv3Space:
    return MBv3Space()


def _uniform(space: MBv3Space, resolution: int, width: float, depth: int, block: Block) -> MBv3Genotype:
    return MBv3Genotype(resolution, width, tuple((block,) * depth for _ in STAGES))


def _smallest(space: MBv3Space) -> MBv3Genotype:
    return _uniform(space, min(space.resolutions), min(space.widths), min(space.depths),
                    Block(min(space.kernels), min(space.expands), False))


def _largest(space: MBv3Space) -> MBv3Genotype:
    return _uniform(space, max(space.resolutions), max(space.widths), max(space.depths),
                    Block(max(space.kernels), max(space.expands), True))


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def module_flops(module: nn.Module, x: torch.Tensor) -> int:
    """FLOPs per sample counted with forward hooks, independently of the IR, by the convention of
    ``nas/ir/ops.py``: multiply-accumulates of convolutions and linear layers plus one per output for
    a bias, the kernel area per output of a local pooling, one per input of a global pooling."""
    total = 0

    def conv(m: nn.Conv2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_out = m.in_channels // m.groups * math.prod(m.kernel_size) + (m.bias is not None)
        total += out.numel() * per_out

    def linear(m: nn.Linear, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * (m.in_features + (m.bias is not None))

    def pool(m: nn.AvgPool2d | nn.MaxPool2d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size
        total += out.numel() * (k * k if isinstance(k, int) else k[0] * k[1])

    def global_pool(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert tuple(out.shape[2:]) == (1, 1), "only global adaptive pooling is counted"
        total += inp[0].numel()

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
        elif isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
            hooks.append(m.register_forward_hook(pool))
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            hooks.append(m.register_forward_hook(global_pool))
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return total // x.shape[0]


def test_flop_counter_on_a_hand_counted_net() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    x = torch.zeros(2, 3, 8, 8)
    # conv: 8*8*4 outputs * (3*3*3 MACs + bias); max pool: 4*4*4 outputs * 2*2; global pool: 4*4*4 inputs;
    # linear: 2 outputs * (4 MACs + bias)
    expected = 256 * 28 + 64 * 4 + 64 + 2 * 5
    assert module_flops(net, x) == expected == ArchGraph.from_module(net, x).flops


# --------------------------------------------------------------------------- protocol and genotypes


def test_registered_and_protocols(space: MBv3Space) -> None:
    assert isinstance(SPACES.resolve("mbv3"), MBv3Space)
    assert isinstance(space, SearchSpace)
    assert not isinstance(space, FiniteSearchSpace)  # too large to list: no enumerate()
    dims = space.dimensions()
    assert len(dims) == 2 + 5 + 5 * 4 * 3
    assert len({d.name for d in dims}) == len(dims)
    assert dims[0].choices == (160, 176, 192, 208, 224)
    assert {d.choices for d in dims if d.name.endswith("_kernel")} == {(3, 5, 7)}
    assert {d.choices for d in dims if d.name.endswith("_expand")} == {(3, 4, 6)}
    assert {d.choices for d in dims if d.name.endswith("_depth")} == {(2, 3, 4)}


def test_make_divisible() -> None:
    values = (16, 12, 18, 24 * 0.75, 40 * 0.5, 1280 * 1.2, 3)
    # 18 rounds down to 16, more than 10 % below it, so up to 24
    assert [make_divisible(v) for v in values] == [16, 16, 24, 24, 24, 1536, 8]


def test_parse_format_roundtrip(space: MBv3Space) -> None:
    text = "r224_w1.0_k3e4.k5e6s_k3e3.k3e3_k7e6s.k5e4.k3e3_k3e3.k3e3_k5e6s.k5e6s.k7e3.k3e4"
    g = space.parse(text)
    assert g.resolution == 224 and g.width == 1.0 and g.depths == (2, 2, 3, 2, 4)
    assert g.stages[0] == (Block(3, 4, False), Block(5, 6, True))
    assert space.format(g) == text
    assert space.parse(" r224_w1_" + text[10:] + " ") == g  # a width of "1" is 1.0
    rng = np.random.default_rng(0)
    for _ in range(100):
        g = space.sample(rng)
        assert space.parse(space.format(g)) == g
        assert hash(g) == hash(space.parse(space.format(g)))


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        ("r224_w1.0_k3e4.k5e6s_k3e3.k3e3_k7e6s.k5e4.k3e3_k3e3.k3e3", "has 6"),
        ("r225_w1.0_k3e4.k5e6_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "225"),
        ("rx_w1.0_k3e4.k5e6_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "'rx'"),
        ("224_w1.0_k3e4.k5e6_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "'224'"),
        ("r224_w1.3_k3e4.k5e6_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "1.3"),
        ("r224_wide_k3e4.k5e6_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "'wide'"),
        ("r224_w1.0_k4e4.k5e6_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "kernel=4"),
        ("r224_w1.0_k3e5.k5e6_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "expand=5"),
        ("r224_w1.0_k3e4.k5e6x_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "k5e6x"),
        ("r224_w1.0_k3e4_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "depth 1"),
        ("r224_w1.0_k3e4.k3e4.k3e4.k3e4.k3e4_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "depth 5"),
        ("r224_w1.0__k3e3.k3e3_k3e3.k3e3_k3e3.k3e3_k3e3.k3e3", "depth 0"),
    ],
)
def test_parse_rejects_malformed(space: MBv3Space, bad: str, shown: str) -> None:
    with pytest.raises(GenotypeError, match=shown.replace(".", r"\.")):
        space.parse(bad)


def test_check_rejects_foreign_values(space: MBv3Space) -> None:
    with pytest.raises(GenotypeError):
        space.check("r224")  # type: ignore[arg-type]
    with pytest.raises(GenotypeError, match="stage 1 block 0"):
        two = (Block(3, 3, False),) * 2
        space.check(MBv3Genotype(224, 1.0, (two, ("k3e3",) * 2, two, two, two)))  # type: ignore[arg-type]
    with pytest.raises(GenotypeError, match="5 stages"):
        space.to_module(MBv3Genotype(224, 1.0, (two,) * 4))
    with pytest.raises(GenotypeError, match="tuple of tuples"):
        space.check(MBv3Genotype(224, 1.0, (two, two, two, two, list(two))))  # type: ignore[arg-type]


def test_encode_decode(space: MBv3Space) -> None:
    rng = np.random.default_rng(5)
    dims = space.dimensions()
    for _ in range(50):
        g = space.sample(rng)
        v = space.encode(g)
        assert len(v) == len(dims) and all(x in d.choices for x, d in zip(v, dims, strict=True))
        assert space.decode(v) == g
        # what sits in an inactive slot does not matter
        noisy = list(v)
        for k, d in enumerate(dims):
            stage, _, rest = d.name.partition("_block")
            if rest and int(rest.split("_")[0]) >= g.depths[int(stage[5:])]:
                noisy[k] = d.choices[int(rng.integers(len(d.choices)))]
        assert space.decode(noisy) == g
    with pytest.raises(GenotypeError, match="67 values"):
        space.decode(v[:-1])


def test_sample_is_seeded_and_covers_the_choices(space: MBv3Space) -> None:
    assert space.sample(np.random.default_rng(7)) == space.sample(np.random.default_rng(7))
    rng = np.random.default_rng(0)
    gs = [space.sample(rng) for _ in range(200)]
    assert {g.resolution for g in gs} == set(space.resolutions)
    assert {g.width for g in gs} == set(space.widths)
    assert {d for g in gs for d in g.depths} == set(space.depths)
    blocks = {b for g in gs for st in g.stages for b in st}
    assert blocks == {Block(k, e, s) for k in (3, 5, 7) for e in (3, 4, 6) for s in (False, True)}
    assert len(set(gs)) == 200


def test_mutate_changes_one_decision(space: MBv3Space) -> None:
    rng = np.random.default_rng(1)
    g = space.sample(rng)
    kinds = set()
    for _ in range(300):
        before = space.format(g)
        m = space.mutate(g, rng)
        assert space.format(g) == before  # the argument is left as it is
        assert space.check(m) == m and m != g
        a, b = space.encode(g), space.encode(m)
        depth_changed = [s for s in range(5) if g.depths[s] != m.depths[s]]
        if depth_changed:
            (s,) = depth_changed
            kinds.add("depth")
            assert (g.resolution, g.width) == (m.resolution, m.width)
            assert all(g.stages[t] == m.stages[t] for t in range(5) if t != s)
            keep = min(g.depths[s], m.depths[s])
            assert g.stages[s][:keep] == m.stages[s][:keep]
        else:
            diff = [k for k in range(len(a)) if a[k] != b[k]]
            assert len(diff) == 1
            kinds.add(space.dimensions()[diff[0]].name.rsplit("_", 1)[-1])
        g = m
    assert kinds == {"resolution", "width", "depth", "kernel", "expand", "se"}
    assert space.mutate(g, np.random.default_rng(3)) == space.mutate(g, np.random.default_rng(3))


def test_mutate_skips_decisions_with_one_value() -> None:
    small = MBv3Space(resolutions=(128,), widths=(1.0,), depths=(2,), kernels=(3,), expands=(3,))
    g = small.sample(np.random.default_rng(0))
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = small.mutate(g, rng)
        assert sum(x != y for x, y in zip(small.encode(g), small.encode(m), strict=True)) == 1
        g = m


# --------------------------------------------------------------------------- the network


def test_network_structure_and_forward(space: MBv3Space) -> None:
    g = space.parse("r160_w0.75_k3e4.k5e6s_k3e3.k3e3.k7e4_k7e6s.k5e4_k3e3.k3e3.k3e6s.k3e3_k5e6s.k5e6s")
    net = space.to_module(g)
    blocks = [m for m in net.modules() if isinstance(m, MBConv)]
    assert len(blocks) == 1 + sum(g.depths)
    # the first block of each stage changes the channels; the others are residual
    assert sum(b.residual for b in blocks) == 1 + sum(d - 1 for d in g.depths)
    assert sum(isinstance(m, nn.Hardsigmoid) for m in net.modules()) == 5
    assert space.example_input_shape(2, g) == (2, 3, 160, 160)
    assert space.example_input_shape() == (1, 3, 224, 224)
    out = net.eval()(torch.randn(2, 3, 160, 160))
    assert out.shape == (2, 1000)
    assert MBv3Space(num_classes=10, dropout=0.2).to_module(g)(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_param_range_of_the_extremes(space: MBv3Space) -> None:
    # params grow with every decision, so these two bound the space
    lo, hi = _n_params(space.to_module(_smallest(space))), _n_params(space.to_module(_largest(space)))
    assert (lo, hi) == (2_063_344, 8_083_024)


@pytest.mark.slow
def test_param_range_of_200_samples(space: MBv3Space) -> None:
    rng = np.random.default_rng(0)
    counts = [_n_params(space.to_module(space.sample(rng))) for _ in range(200)]
    # uniform sampling rarely reaches the extremes: the draws fill about 2.2 M to 5.7 M
    assert 2_063_344 <= min(counts) < 2_500_000
    assert 5_000_000 < max(counts) <= 8_083_024


def _assert_same_graph(direct: ArchGraph, exported: ArchGraph, what: str) -> None:
    assert direct.fingerprint() == exported.fingerprint(), what
    # the same nodes in the same order: encodings that read the node list (text, PyG) agree too
    assert [n.label() for n in direct.nodes] == [n.label() for n in exported.nodes], what
    assert direct.to_text() == exported.to_text(), what
    assert direct.params == exported.params and direct.flops == exported.flops, what


def test_to_graph_equals_the_exported_module(space: MBv3Space) -> None:
    """The direct ONNX builder against the reference: the TorchScript export of the module."""
    rng = np.random.default_rng(7)
    other = MBv3Space(num_classes=10, dropout=0.2)  # the dropout is not in the (eval-mode) graph
    cases = [(space, _smallest(space), 1), (space, _largest(space), 1), (space, space.sample(rng), 2),
             (other, other.sample(rng), 1)]
    for sp, g, batch in cases:
        exported = ArchGraph.from_module(sp.to_module(g), torch.zeros(sp.example_input_shape(batch, g)))
        _assert_same_graph(sp.to_graph(g, batch=batch), exported, sp.format(g))


@pytest.mark.slow
def test_to_graph_equals_the_exported_module_30(space: MBv3Space) -> None:
    rng = np.random.default_rng(2025)
    for _ in range(30):
        g = space.sample(rng)
        exported = ArchGraph.from_module(space.to_module(g), torch.zeros(space.example_input_shape(1, g)))
        _assert_same_graph(space.to_graph(g), exported, space.format(g))


def _check_graph_against_module(space: MBv3Space, genotypes: list[MBv3Genotype]) -> float:
    """The largest relative FLOP difference; also checks params, ops, and that fingerprints differ."""
    worst = 0.0
    fingerprints = set()
    for g in genotypes:
        module = space.to_module(g)
        graph = space.to_graph(g)
        fingerprints.add(graph.fingerprint())
        assert graph.params == _n_params(module)
        ops = graph.summary()["op_counts"]
        assert ops["HardSwish"] > 0 and ops["GlobalAvgPool"] >= 1 and ops["Gemm"] == 1
        assert ops.get("HardSigmoid", 0) == sum(b.se for st in g.stages for b in st)
        ours = module_flops(module, torch.zeros(space.example_input_shape(1, g)))
        rel = abs(graph.flops - ours) / ours
        assert rel < 0.01, (space.format(g), graph.flops, ours)
        worst = max(worst, rel)
    assert len(fingerprints) == len(set(genotypes))
    return worst


def test_graph_flops_match_the_module(space: MBv3Space) -> None:
    """20 random genotypes and the two extremes: the graph's FLOPs within 1 % of the hook count."""
    rng = np.random.default_rng(2024)
    genotypes = [_smallest(space), _largest(space)] + [space.sample(rng) for _ in range(20)]
    assert _check_graph_against_module(space, genotypes) < 0.01
