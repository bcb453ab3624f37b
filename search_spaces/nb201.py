"""NAS-Bench-201, exactly as the benchmark defines it.

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search",
ICLR 2020.

The cell is a DAG of 4 nodes; each of its 6 edges ``i -> j`` (i < j) carries one of
:data:`OPS`. Node 0 is the cell input, node ``j`` is the sum over ``i < j`` of ``op_ij(node_i)``,
and node 3 is the cell output. A genotype is the tuple of the 6 edge ops in the order of the
arch string ``|o_10~0|+|o_20~0|o_21~1|+|o_30~0|o_31~1|o_32~2|`` (:data:`EDGES`).

The network (C=16, N=5 by default): a 3x3 stem conv + BN; three stages of N cells with C, 2C and 4C
channels, joined by ResNet basic blocks that halve the resolution; BN + ReLU; global average pooling;
a linear classifier. Ops: ``nor_conv_kxk`` is ReLU -> Conv(kxk, no bias) -> BN; ``avg_pool_3x3``
is a 3x3 average pool (stride 1, padding 1, padding not counted); ``skip_connect`` is the identity;
``none`` is the zero op (multiplication by 0).

The official index order is the one NAS-Bench-201 shipped: all 5^6 cells in the order of
``itertools.product`` over the edges, then ``random.seed(88); random.shuffle``. It is reproduced here,
and checked against the ground-truth table for all 15,625 indices in the tests.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper
from torch import Tensor, nn

from nas.errors import GenotypeError
from nas.ir import ArchGraph
from nas.ir.onnx_writer import OnnxWriter
from search_spaces import SPACES
from search_spaces.base import Dimension

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Edges ``(to, from)`` in arch-string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
N_ARCHS = len(OPS) ** len(EDGES)

Genotype = tuple[str, ...]


# --------------------------------------------------------------------------- genotypes


def parse_arch(arch: str | int | Genotype) -> Genotype:
    """A genotype from an arch string, an official index (int or digit string) or a tuple of 6 ops."""
    if isinstance(arch, tuple):
        g = arch
    elif isinstance(arch, (int, np.integer)) or (isinstance(arch, str) and arch.strip().isdigit()):
        return index_to_genotype(int(arch))
    elif isinstance(arch, str):
        g = _parse_string(arch)
    else:
        raise GenotypeError(f"cannot read an NB201 architecture from {type(arch).__name__} {arch!r}")
    if len(g) != len(EDGES) or any(op not in OPS for op in g):
        raise GenotypeError(f"an NB201 genotype is 6 ops from {OPS}; got {g!r}")
    return tuple(g)


def _parse_string(s: str) -> Genotype:
    text = s.strip()
    if not (text.startswith("|") and text.endswith("|")):
        raise GenotypeError(f"an NB201 arch string looks like '|op~0|+|op~0|op~1|+|...|'; got {s!r}")
    nodes = text[1:-1].split("|+|")
    if len(nodes) != 3:
        raise GenotypeError(f"an NB201 arch string has 3 nodes separated by '+'; {s!r} has {len(nodes)}")
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        edges = node.split("|")
        if len(edges) != j:
            raise GenotypeError(f"node {j} of {s!r} must have {j} input edges, has {len(edges)}: {node!r}")
        for i, e in enumerate(edges):
            op, sep, src = e.partition("~")
            if not sep or src != str(i):
                raise GenotypeError(f"edge {e!r} of node {j} in {s!r} must read 'op~{i}'")
            if op not in OPS:
                raise GenotypeError(f"unknown op {op!r} in {s!r}; NB201 ops are {OPS}")
            ops.append(op)
    return tuple(ops)


def format_arch(genotype: Genotype) -> str:
    """The official arch string of a genotype."""
    g = parse_arch(genotype)
    nodes = []
    for j in (1, 2, 3):
        edges = [f"{op}~{src}" for op, (to, src) in zip(g, EDGES, strict=True) if to == j]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


@functools.cache
def _official_order() -> tuple[Genotype, ...]:
    archs = list(itertools.product(OPS, repeat=len(EDGES)))
    rng = random.Random(88)  # NAS-Bench-201's own seed for its index order
    rng.shuffle(archs)
    return tuple(archs)


@functools.cache
def _index_of() -> dict[Genotype, int]:
    return {g: i for i, g in enumerate(_official_order())}


def index_to_genotype(index: int) -> Genotype:
    """The genotype at an official NAS-Bench-201 index (0..15624)."""
    if not 0 <= index < N_ARCHS:
        raise GenotypeError(f"NB201 indices run from 0 to {N_ARCHS - 1}; got {index}")
    return _official_order()[index]


def genotype_to_index(genotype: str | Genotype) -> int:
    """The official NAS-Bench-201 index of a genotype."""
    return _index_of()[parse_arch(genotype)]


def canonical_form(genotype: str | int | Genotype) -> str:
    """The isomorphism-canonical string of the cell's computation (NAS-Bench-201's ``unique_str``).

    Each node is written as the sorted ``+``-sum of its incoming terms: ``(src)@op`` for a
    parametric or pooling op, ``src`` itself for ``skip_connect``, and ``#`` for ``none`` or for an
    input that is itself exactly ``#``. Cells with the same string compute the same function of the
    cell input (up to the order of summation), so it deduplicates equivalent cells; it splits the
    15,625 cells into 6,466 classes.
    """
    g = parse_arch(genotype)
    nodes = {0: "0"}
    for j in (1, 2, 3):
        terms = []
        for op, (to, src) in zip(g, EDGES, strict=True):
            if to != j:
                continue
            if op == "none" or nodes[src] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[src])
            else:
                terms.append(f"({nodes[src]})@{op}")
        nodes[j] = "+".join(sorted(terms))
    return nodes[3]


# --------------------------------------------------------------------------- PyTorch network


class _ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class _Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 0.0


def _edge_op(op: str, c: int) -> nn.Module:
    if op == "none":
        return _Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return _ReLUConvBN(c, c, 1 if op == "nor_conv_1x1" else 3, 1)


def edge_op(op: str, c: int) -> nn.Module:
    """The module of one cell edge carrying ``op`` (one of :data:`OPS`) with ``c`` channels.

    The networks of this space and the differentiable-search supernet
    (:mod:`nas.search.differentiable`) both build their edges with it, so they share one definition.
    ``(N, c, H, W) -> (N, c, H, W)``.
    """
    if op not in OPS:
        raise GenotypeError(f"unknown NB201 op {op!r}; valid: {OPS}")
    return _edge_op(op, c)


class NB201Cell(nn.Module):
    """One NAS-Bench-201 cell with ``c`` channels."""

    def __init__(self, genotype: Genotype, c: int) -> None:
        super().__init__()
        self.genotype = genotype
        self.edges = nn.ModuleList(_edge_op(op, c) for op in genotype)

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            terms = [self.edges[k](nodes[src]) for k, (to, src) in enumerate(EDGES) if to == j]
            out = terms[0]
            for t in terms[1:]:
                out = out + t
            nodes.append(out)
        return nodes[3]


class ResNetBlock(nn.Module):
    """NAS-Bench-201's reduction block: two ReLU-Conv-BN (the first with stride 2) plus an
    average-pool + 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = _ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = _ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


def macro_skeleton(
    c: int, n: int, num_classes: int, make_cell: Callable[[int], nn.Module]
) -> tuple[nn.Sequential, list[nn.Module], nn.Sequential, nn.AdaptiveAvgPool2d, nn.Linear]:
    """NAS-Bench-201's macro network around its cells: stem, three stages of ``n`` cells of ``c``,
    ``2c`` and ``4c`` channels joined by residual reduction blocks, BatchNorm-ReLU, pooling, classifier.

    ``make_cell(channels)`` builds one cell; the space's networks and the differentiable search's
    supernet both use this, so they are the same network around different cells.

    Returns:
        ``(stem, layers, lastact, pool, classifier)``; ``layers`` are the cells and reduction blocks
        in order.
    """
    stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    layers: list[nn.Module] = []
    c_prev = c
    for stage, mult in enumerate((1, 2, 4)):
        c_cur = c * mult
        if stage > 0:
            layers.append(ResNetBlock(c_prev, c_cur))
        layers.extend(make_cell(c_cur) for _ in range(n))
        c_prev = c_cur
    lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
    return stem, layers, lastact, nn.AdaptiveAvgPool2d(1), nn.Linear(c_prev, num_classes)


class NB201Network(nn.Module):
    """The NAS-Bench-201 network for one genotype."""

    def __init__(self, genotype: Genotype, c: int = 16, n: int = 5, num_classes: int = 10) -> None:
        super().__init__()
        self.genotype = genotype
        self.stem, layers, self.lastact, self.pool, self.classifier = macro_skeleton(
            c, n, num_classes, lambda channels: NB201Cell(genotype, channels))
        self.cells = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


# --------------------------------------------------------------------------- direct ONNX graph


class _OnnxBuilder(OnnxWriter):
    """Writes the same network as :class:`NB201Network` with ``onnx.helper``, structure-only (see
    :mod:`nas.ir.onnx_writer`): it is still a valid ONNX model that runs when the weights are fed.
    For a file with weights, export :meth:`NB201Space.to_module` instead (what ``nas export`` does).
    """

    def __init__(self, batch: int, size: int) -> None:
        super().__init__()
        self.batch = batch
        self.size = size

    def relu_conv_bn(self, x: str, c_in: int, c_out: int, k: int, stride: int) -> str:
        x = self.conv(self.node("Relu", [x]), c_in, c_out, k, stride=stride, pad=(k - 1) // 2)
        return self.batch_norm(x, c_out)

    def edge(self, op: str, x: str, c: int) -> str:
        if op == "skip_connect":
            return x
        if op == "none":
            return self.node("Mul", [x, self.zero])
        if op == "avg_pool_3x3":
            return self.node("AveragePool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                             count_include_pad=0)
        return self.relu_conv_bn(x, c, c, 1 if op == "nor_conv_1x1" else 3, 1)

    def cell(self, g: Genotype, x: str, c: int) -> str:
        nodes = [x]
        for j in (1, 2, 3):
            terms = [self.edge(op, nodes[src], c) for op, (to, src) in zip(g, EDGES, strict=True) if to == j]
            nodes.append(terms[0] if len(terms) == 1 else self.node("Sum", terms))
        return nodes[3]

    def build(self, g: Genotype, c: int, n: int, num_classes: int) -> onnx.ModelProto:
        self.zero = "zero"
        self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
        x = self.batch_norm(self.conv("input", 3, c, 3, pad=1), c)
        c_prev = c
        for stage, mult in enumerate((1, 2, 4)):
            c_cur = c * mult
            if stage > 0:
                a = self.relu_conv_bn(x, c_prev, c_cur, 3, 2)
                b = self.relu_conv_bn(a, c_cur, c_cur, 3, 1)
                s = self.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0])
                x = self.node("Add", [b, self.conv(s, c_prev, c_cur, 1)])
            for _ in range(n):
                x = self.cell(g, x, c_cur)
            c_prev = c_cur
        x = self.node("Relu", [self.batch_norm(x, c_prev)])
        self.gemm_output(self.node("GlobalAveragePool", [x]), c_prev, num_classes, name="classifier")
        return self.model("nb201", [self.batch, 3, self.size, self.size], [self.batch, num_classes])


# --------------------------------------------------------------------------- the space


@dataclass(frozen=True)
class NB201Space:
    """The NAS-Bench-201 space (finite: 15,625 genotypes, in official index order).

    ``num_classes`` is 10 for CIFAR-10, 100 for CIFAR-100 and 120 for ImageNet16-120;
    ``input_size`` 32 for CIFAR, 16 for ImageNet16.
    """

    c: int = 16
    n: int = 5
    num_classes: int = 10
    input_size: int = 32
    name: str = "nb201"

    def dimensions(self) -> list[Dimension]:
        return [Dimension(f"edge_{j}_{i}", OPS) for j, i in EDGES]

    def sample(self, rng: np.random.Generator) -> Genotype:
        return tuple(OPS[int(k)] for k in rng.integers(0, len(OPS), size=len(EDGES)))

    def mutate(self, genotype: Genotype, rng: np.random.Generator) -> Genotype:
        """Change the op of one uniformly drawn edge to a different op."""
        g = list(parse_arch(genotype))
        e = int(rng.integers(len(EDGES)))
        others = [op for op in OPS if op != g[e]]
        g[e] = others[int(rng.integers(len(others)))]
        return tuple(g)

    def parse(self, text: str) -> Genotype:
        return parse_arch(text)

    def format(self, genotype: Genotype) -> str:
        return format_arch(genotype)

    def enumerate(self) -> Iterator[Genotype]:
        return iter(_official_order())

    def __len__(self) -> int:
        return N_ARCHS

    def index(self, genotype: str | Genotype) -> int:
        return genotype_to_index(genotype)

    def canonical(self, genotype: str | int | Genotype) -> str:
        return canonical_form(genotype)

    def to_onnx(self, genotype: str | int | Genotype, batch: int = 1) -> onnx.ModelProto:
        """The network as an ONNX model built directly with ``onnx.helper`` (no torch export)."""
        return _OnnxBuilder(batch, self.input_size).build(parse_arch(genotype), self.c, self.n, self.num_classes)

    def to_graph(self, genotype: str | int | Genotype, batch: int = 1) -> ArchGraph:
        return ArchGraph.from_onnx(self.to_onnx(genotype, batch))

    def to_module(self, genotype: str | int | Genotype) -> NB201Network:
        return NB201Network(parse_arch(genotype), self.c, self.n, self.num_classes)

    def example_input_shape(self, batch: int = 1, genotype: Genotype | None = None) -> tuple[int, int, int, int]:
        return (batch, 3, self.input_size, self.input_size)


SPACES.register("nb201")(NB201Space)
