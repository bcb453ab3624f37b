"""The DARTS cell space, as NAS-Bench-301 samples and trains it.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019;
Siems, Zimmer, Zela, Lukasik, Keuper & Hutter, "NAS-Bench-301 and the Case for Surrogate Benchmarks
for Neural Architecture Search", arXiv:2008.09777 (the space and training protocol of NAS-Bench-301).

**Genotype.** Two cells, *normal* and *reduce*, each 8 ``(op, input)`` pairs: pairs ``2k`` and ``2k+1``
feed intermediate node ``k`` (``k = 0..3``). Inputs 0 and 1 are the outputs of the cell two back and
of the previous cell; input ``k + 2`` is intermediate node ``k``, so node ``k`` may read inputs
``0 .. k+1``, and its two inputs differ (as in every discrete DARTS genotype and in NAS-Bench-301's
configuration space). The order of a node's two pairs is kept: swapping them gives a different
genotype that builds the same network. Ops are :data:`OPS` (in NASLib's index order) and, in
:meth:`DartsSpace.parse` only, ``none``: the DARTS zero op, built as ``x * 0`` (strided on a
reduction edge). :meth:`DartsSpace.sample` and :meth:`DartsSpace.mutate` never use ``none``.

**Text forms** (:meth:`DartsSpace.parse` reads all of them):

- canonical (:func:`format_genotype`): ``normal=op~i;op~i;...|reduce=op~i;...``, 8 ``op~input`` per cell;
- the ``genotype_normal`` and ``genotype_reduce`` columns of NASLib's NAS-Bench-301 zero-cost data,
  joined by ``|`` or ``,``: ``op~i;...;op~i,op~i;...;op~i`` (see also :func:`from_columns`);
- NASLib's compact form ``[[(input, op_index), ...8], [(input, op_index), ...8]]``, normal cell first,
  with op indices into :data:`OPS` (checked against the two column forms on all 725 rows of that data);
- the DARTS ``Genotype(normal=[('op', i), ...], normal_concat=..., reduce=[...], reduce_concat=...)``.

**Network** (:class:`DartsNetwork`, the DARTS CIFAR evaluation network; NAS-Bench-301 trains it with
``C=32``, 8 cells, the defaults here): a 3x3 stem conv to ``3C`` channels + BN; ``layers`` cells, of
which those at ``layers // 3`` and ``2 * layers // 3`` are reduction cells that double the channels
and halve the resolution. A cell with ``c`` channels preprocesses its two inputs to ``c`` channels
(a FactorizedReduce for input 0 when the previous cell reduced, else ReLU-Conv1x1-BN), each node sums
its two op outputs, and the cell outputs the concatenation of its 4 nodes (``4c`` channels). Then a
global average pool and a linear classifier. Shapes for CIFAR: ``(B, 3, 32, 32) -> (B, num_classes)``.

Ops (``c`` channels, stride 2 on the edges from the two cell inputs of a reduction cell):
``sep_conv_kxk`` is twice ReLU -> depthwise kxk -> pointwise 1x1 -> BN (only the first strided);
``dil_conv_kxk`` is ReLU -> depthwise kxk dilation 2 -> pointwise 1x1 -> BN; ``max_pool_3x3`` and
``avg_pool_3x3`` (padding not counted) pool with padding 1; ``skip_connect`` is the identity, or a
FactorizedReduce on a strided edge.

The optional auxiliary head (``auxiliary=True``, off by default) reads the output of the second
reduction cell (8x8 on CIFAR) as in DARTS; it is a training-time extra, so :meth:`DartsNetwork.forward`
returns the main logits only and :meth:`DartsNetwork.forward_aux` returns both. Drop-path, also
training-time only, is left out: the module computes what the DARTS network computes at drop
probability 0.

**NASLib's parameter counts.** The ``params`` column of NASLib's NAS-Bench-301 zero-cost data
(NAS-Bench-Suite-Zero, ``naslib/data/zc_nasbench301.json``; tensorwatch's count of the parameters of
the leaf modules run by one forward pass) counts NASLib's own NAS-Bench-301 graph:
this network at ``C=32``, 8 cells, no auxiliary head, but with the BatchNorms *inside the edge ops*
non-affine (NASLib builds the cell ops with ``affine=False`` and the stem, preprocessing and classifier
as here). :data:`NASLIB_ZC` is that configuration: ``DartsSpace(**NASLIB_ZC)`` reproduces the column for
all 725 genotypes of that file (``tests/search_spaces/test_darts.py``). The default network (affine
op BatchNorms, as DARTS and NAS-Bench-301 train it) has ``2 * channels`` more parameters per
parametric op BatchNorm.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from nas.errors import GenotypeError, NasError
from nas.ir import ArchGraph
from nas.ir.onnx_writer import OnnxWriter
from search_spaces import SPACES
from search_spaces.base import Dimension

#: The ops of a discrete DARTS genotype, in NASLib's op-index order (the ``op_index`` of the compact form).
OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
#: The zero op of the DARTS search; accepted by ``parse``, never sampled.
NONE = "none"
ALL_OPS: tuple[str, ...] = (*OPS, NONE)
N_NODES = 4
CELL_NAMES: tuple[str, str] = ("normal", "reduce")

#: One cell: 8 ``(op, input)`` pairs, two per intermediate node.
Cell = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class DartsGenotype:
    """A DARTS genotype: the normal and the reduction cell (validated on construction)."""

    normal: Cell
    reduce: Cell

    def __post_init__(self) -> None:
        for name in CELL_NAMES:
            _check_cell(getattr(self, name), name)

    def cell(self, name: str) -> Cell:
        return self.normal if name == "normal" else self.reduce


#: The network NASLib counted for the ``params`` column of its NAS-Bench-301 zero-cost data:
#: ``DartsSpace(**NASLIB_ZC)`` (its ``flops`` column is tensorwatch's own FLOP convention, not checked here).
NASLIB_ZC: dict[str, Any] = {"c": 32, "layers": 8, "affine_ops": False}


# --------------------------------------------------------------------------- genotypes


def _check_cell(cell: object, name: str) -> None:
    if not isinstance(cell, tuple) or len(cell) != 2 * N_NODES:
        raise GenotypeError(f"a DARTS {name} cell is 8 (op, input) pairs; got {cell!r}")
    for k in range(N_NODES):
        pair = cell[2 * k : 2 * k + 2]
        for item in pair:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise GenotypeError(f"{name} cell: {item!r} is not an (op, input) pair")
            op, src = item
            if op not in ALL_OPS:
                raise GenotypeError(f"{name} cell, node {k}: unknown op {op!r}; DARTS ops are {ALL_OPS}")
            if not isinstance(src, int) or isinstance(src, bool) or not 0 <= src < k + 2:
                raise GenotypeError(
                    f"{name} cell, node {k}: input {src!r} of {op!r} must be in 0..{k + 1} "
                    f"(0, 1: the two previous cells; 2..{k + 1}: earlier nodes)"
                )
        if pair[0][1] == pair[1][1]:
            raise GenotypeError(f"{name} cell, node {k}: both inputs are {pair[0][1]}; a node's two inputs differ")


def _cell_from_column(text: str, name: str) -> Cell:
    pairs = [p.strip() for p in text.strip().split(";")]
    if len(pairs) != 2 * N_NODES:
        raise GenotypeError(f"{name} cell {text!r}: expected 8 'op~input' items separated by ';', got {len(pairs)}")
    cell = []
    for p in pairs:
        op, sep, src = p.partition("~")
        if not sep or not src.strip().isdigit():
            raise GenotypeError(f"{name} cell {text!r}: item {p!r} must read 'op~input'")
        cell.append((op.strip(), int(src)))
    return tuple(cell)


def from_columns(normal: str, reduce: str) -> DartsGenotype:
    """A genotype from the ``genotype_normal`` / ``genotype_reduce`` strings (``op~i;...``, 8 each)."""
    return DartsGenotype(_cell_from_column(normal, "normal"), _cell_from_column(reduce, "reduce"))


def from_compact(compact: object) -> DartsGenotype:
    """A genotype from NASLib's compact form: two lists of 8 ``(input, op_index)``, normal first."""
    if not (isinstance(compact, (list, tuple)) and len(compact) == 2):
        raise GenotypeError(f"NASLib's compact form is [normal, reduce]; got {compact!r}")
    cells = []
    for name, pairs in zip(CELL_NAMES, compact, strict=True):
        if not (isinstance(pairs, (list, tuple)) and len(pairs) == 2 * N_NODES):
            raise GenotypeError(f"compact {name} cell must hold 8 (input, op_index) pairs; got {pairs!r}")
        cell = []
        for item in pairs:
            if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(type(v) is int for v in item)):
                raise GenotypeError(f"compact {name} cell: {item!r} is not an (input, op_index) pair of ints")
            src, op = item
            if not 0 <= op < len(OPS):
                raise GenotypeError(f"compact {name} cell: op index {op} is not in 0..{len(OPS) - 1} ({OPS})")
            cell.append((OPS[op], src))
        cells.append(tuple(cell))
    return DartsGenotype(cells[0], cells[1])


def to_compact(genotype: DartsGenotype) -> tuple[tuple[tuple[int, int], ...], ...]:
    """NASLib's compact form (``none`` has no index there and raises)."""
    out = []
    for name in CELL_NAMES:
        cell = genotype.cell(name)
        if any(op == NONE for op, _ in cell):
            raise GenotypeError(f"the {name} cell uses 'none', which NASLib's compact form cannot write: {cell!r}")
        out.append(tuple((src, OPS.index(op)) for op, src in cell))
    return tuple(out)


_DARTS_LIST = re.compile(r"\b(normal|reduce|normal_concat|reduce_concat)\s*=\s*(\[[^\]]*\])")
_CANONICAL = re.compile(r"^\s*normal\s*=(?P<normal>[^|]*)\|\s*reduce\s*=(?P<reduce>[^|]*)$")


def _literal(text: str, what: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as e:
        raise GenotypeError(f"cannot read {what} from {text!r}: {e}") from e


def parse_genotype(arch: str | DartsGenotype) -> DartsGenotype:
    """A genotype from any of the text forms of the module docstring (or a genotype, passed through)."""
    if isinstance(arch, DartsGenotype):
        return arch
    if not isinstance(arch, str):
        raise GenotypeError(f"cannot read a DARTS genotype from {type(arch).__name__} {arch!r}")
    text = arch.strip()
    if text.startswith("["):
        return from_compact(_literal(text, "NASLib's compact form"))
    if text.startswith("Genotype("):
        found = dict(_DARTS_LIST.findall(text))
        if not set(CELL_NAMES) <= set(found):
            raise GenotypeError(f"a DARTS Genotype(...) needs normal=[...] and reduce=[...]; got {arch!r}")
        for name in CELL_NAMES:
            concat = _literal(found.get(f"{name}_concat", "[2, 3, 4, 5]"), f"{name}_concat")
            if concat != [2, 3, 4, 5]:
                raise GenotypeError(f"{name}_concat must be [2, 3, 4, 5] (all 4 nodes); got {concat!r}")
        cells = []
        for name in CELL_NAMES:
            pairs = _literal(found[name], f"the {name} list")
            if not isinstance(pairs, list) or not all(isinstance(p, tuple) for p in pairs):
                raise GenotypeError(f"the {name} list of {arch!r} must hold (op, input) tuples")
            cells.append(tuple(pairs))
        return DartsGenotype(cells[0], cells[1])
    m = _CANONICAL.match(text)
    if m:
        return from_columns(m["normal"], m["reduce"])
    parts = re.split(r"[|,]", text)
    if len(parts) == 2:
        return from_columns(parts[0], parts[1])
    raise GenotypeError(
        f"cannot read a DARTS genotype from {arch!r}: expected 'normal=op~i;...|reduce=op~i;...', "
        "two 'op~i;...' columns joined by '|' or ',', NASLib's '[[(i, op), ...], [...]]' or a DARTS Genotype(...)"
    )


def format_genotype(genotype: DartsGenotype) -> str:
    """The canonical text form ``normal=op~i;...|reduce=op~i;...``."""
    cells = [";".join(f"{op}~{src}" for op, src in genotype.cell(name)) for name in CELL_NAMES]
    return f"normal={cells[0]}|reduce={cells[1]}"


def canonical_form(genotype: str | DartsGenotype) -> DartsGenotype:
    """The genotype with each node's two pairs ordered by input: genotypes that differ only in that
    order build the same network and share this form."""
    g = parse_genotype(genotype)
    cells = [
        tuple(p for k in range(N_NODES) for p in sorted(g.cell(name)[2 * k : 2 * k + 2], key=lambda p: p[1]))
        for name in CELL_NAMES
    ]
    return DartsGenotype(cells[0], cells[1])


def _neighbours(g: DartsGenotype) -> list[DartsGenotype]:
    """Every genotype one op change or one input change away, in a fixed order."""
    out = []
    for name in CELL_NAMES:
        cell = g.cell(name)
        for j, (op, src) in enumerate(cell):
            k, sibling = j // 2, cell[j ^ 1][1]
            changes = [(o, src) for o in OPS if o != op]
            changes += [(op, s) for s in range(k + 2) if s not in (src, sibling)]
            for new in changes:
                new_cell = (*cell[:j], new, *cell[j + 1 :])
                out.append(DartsGenotype(new_cell, g.reduce) if name == "normal" else DartsGenotype(g.normal, new_cell))
    return out


# --------------------------------------------------------------------------- PyTorch network


class _ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class _DilConv(nn.Sequential):
    def __init__(self, c: int, kernel: int, stride: int, dilation: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c, c, kernel, stride=stride, padding=dilation * (kernel - 1) // 2, dilation=dilation,
                      groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class _SepConv(nn.Sequential):
    """Two dilation-1 separable convs; only the first carries the stride (as in DARTS)."""

    def __init__(self, c: int, kernel: int, stride: int, affine: bool) -> None:
        super().__init__(_DilConv(c, kernel, stride, 1, affine), _DilConv(c, kernel, 1, 1, affine))


class _FactorizedReduce(nn.Module):
    """Halves the resolution with two stride-2 1x1 convs, the second offset by one pixel, concatenated."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class _Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return x * 0.0


def _make_op(op: str, c: int, stride: int, affine: bool) -> nn.Module:
    if op == "skip_connect":
        return nn.Identity() if stride == 1 else _FactorizedReduce(c, c, affine)
    if op == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if op == NONE:
        return _Zero(stride)
    kind, kernel = op.rsplit("_", 1)
    k = int(kernel[0])
    if kind == "sep_conv":
        return _SepConv(c, k, stride, affine)
    return _DilConv(c, k, stride, 2, affine)


def make_op(op: str, c: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """The module of one cell edge carrying ``op`` (one of :data:`ALL_OPS`), ``c`` channels in and out.

    ``stride=2`` on the edges from the two cell inputs of a reduction cell. The networks of this
    space and the differentiable-search supernet (:mod:`nas.search.differentiable`) share it.
    """
    if op not in ALL_OPS:
        raise GenotypeError(f"unknown DARTS op {op!r}; valid: {ALL_OPS}")
    return _make_op(op, c, stride, affine)


def make_preprocess(c_in: int, c_out: int, reduction_prev: bool) -> nn.Module:
    """A cell's input preprocessing to ``c_out`` channels: a FactorizedReduce (halving the resolution)
    when the previous cell reduced, else ReLU-Conv1x1-BN (as :class:`DartsCell` builds its ``preprocess0``)."""
    return _FactorizedReduce(c_in, c_out, True) if reduction_prev else _ReLUConvBN(c_in, c_out, 1, 1, 0, True)


def _op_params(op: str, c: int, stride: int, affine: bool) -> int:
    """Parameters of :func:`_make_op` (``op``, ``c``, ``stride``, ``affine``), without building it."""
    bn = 2 * c if affine else 0
    if op == "skip_connect":
        return 0 if stride == 1 else c * c + bn  # two c -> c/2 1x1 convs + BN
    if op.startswith("sep_conv"):
        k = int(op[-1])
        return 2 * (c * k * k + c * c + bn)
    if op.startswith("dil_conv"):
        k = int(op[-1])
        return c * k * k + c * c + bn
    return 0  # pools, none


class DartsCell(nn.Module):
    """One DARTS cell: ``(B, c_pp, H', W')`` and ``(B, c_p, H, W)`` to ``(B, 4c, H/s, W/s)``, ``s = 2``
    for a reduction cell. ``H' = 2H`` when the previous cell reduced."""

    def __init__(self, cell: Cell, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 affine_ops: bool = True) -> None:
        super().__init__()
        self.cell = cell
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = _FactorizedReduce(c_pp, c, True)
        else:
            self.preprocess0 = _ReLUConvBN(c_pp, c, 1, 1, 0, True)
        self.preprocess1 = _ReLUConvBN(c_p, c, 1, 1, 0, True)
        self.ops = nn.ModuleList(
            _make_op(op, c, 2 if reduction and src < 2 else 1, affine_ops) for op, src in cell
        )

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(N_NODES):
            a, b = 2 * k, 2 * k + 1
            states.append(self.ops[a](states[self.cell[a][1]]) + self.ops[b](states[self.cell[b][1]]))
        return torch.cat(states[2:], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier for an 8x8 input: ``(B, c, 8, 8) -> (B, num_classes)``."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),  # 2x2 -> 1x1
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))  # (B, 768, 1, 1) -> (B, 768)


class DartsNetwork(nn.Module):
    """The DARTS CIFAR network of one genotype: ``(B, 3, H, W) -> (B, num_classes)``.

    ``affine_ops=False`` makes the BatchNorms inside the edge ops non-affine (NASLib's graph, see
    :data:`NASLIB_ZC`); the stem and preprocessing BatchNorms stay affine.
    """

    def __init__(self, genotype: DartsGenotype, c: int = 32, layers: int = 8, num_classes: int = 10,
                 auxiliary: bool = False, affine_ops: bool = True) -> None:
        super().__init__()
        if layers < 3:
            raise NasError(f"a DARTS network needs at least 3 cells (two of them reductions); got layers={layers}")
        self.genotype = genotype
        self.reductions = (layers // 3, 2 * layers // 3)
        stem_c = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(3, stem_c, 3, padding=1, bias=False), nn.BatchNorm2d(stem_c))
        c_pp, c_p, c_cur = stem_c, stem_c, c
        cells: list[DartsCell] = []
        reduction_prev = False
        c_aux = 0
        for i in range(layers):
            reduction = i in self.reductions
            if reduction:
                c_cur *= 2
            cell = genotype.reduce if reduction else genotype.normal
            cells.append(DartsCell(cell, c_pp, c_p, c_cur, reduction, reduction_prev, affine_ops))
            reduction_prev = reduction
            c_pp, c_p = c_p, N_NODES * c_cur
            if i == self.reductions[1]:
                c_aux = c_p
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def _run(self, x: Tensor, with_aux: bool) -> tuple[Tensor, Tensor | None]:
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if with_aux and self.auxiliary_head is not None and i == self.reductions[1]:
                aux = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1)), aux  # (B, 4C', 1, 1) -> (B, 4C')

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, with_aux=False)[0]

    def forward_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The main logits and the auxiliary head's (``None`` without a head), both ``(B, num_classes)``."""
        return self._run(x, with_aux=True)


# --------------------------------------------------------------------------- direct ONNX graph


class _OnnxBuilder(OnnxWriter):
    """Writes the same network as :class:`DartsNetwork` with ``onnx.helper`` (structure only, see
    :mod:`nas.ir.onnx_writer`): 20-40 ms, where the TorchScript export takes about half a second."""

    def __init__(self, space: DartsSpace) -> None:
        super().__init__()
        self.space = space

    def relu_conv_bn(self, x: str, c_in: int, c_out: int) -> str:
        return self.batch_norm(self.conv(self.node("Relu", [x]), c_in, c_out, 1), c_out)

    def factorized_reduce(self, x: str, c_in: int, c_out: int, size: int) -> str:
        x = self.node("Relu", [x])
        a = self.conv(x, c_in, c_out // 2, 1, stride=2)
        b = self.conv(self.slice_hw(x, 1, size, 1), c_in, c_out // 2, 1, stride=2)  # x[:, :, 1:, 1:]
        return self.batch_norm(self.node("Concat", [a, b], axis=1), c_out)

    def slice_hw(self, x: str, start: int, end: int, step: int) -> str:
        """``x[:, :, start:end:step, start:end:step]`` as the exporter writes it: one Slice per axis."""
        for axis in (2, 3):
            x = self.node("Slice", [x, self.const([start]), self.const([end]), self.const([axis]), self.const([step])])
        return x

    def dil_conv(self, x: str, c: int, k: int, stride: int, dilation: int) -> str:
        x = self.node("Relu", [x])
        x = self.conv(x, c, c, k, stride=stride, pad=dilation * (k - 1) // 2, dilation=dilation, groups=c)
        return self.batch_norm(self.conv(x, c, c, 1), c)

    def edge(self, op: str, x: str, c: int, stride: int, size: int) -> str:
        """One op of :func:`_make_op` on ``x`` (``c`` channels, ``size`` x ``size``)."""
        if op == "skip_connect":
            return x if stride == 1 else self.factorized_reduce(x, c, c, size)
        if op == "max_pool_3x3":
            return self.node("MaxPool", [x], kernel_shape=[3, 3], strides=[stride, stride], pads=[1] * 4)
        if op == "avg_pool_3x3":
            return self.node("AveragePool", [x], kernel_shape=[3, 3], strides=[stride, stride], pads=[1] * 4,
                             count_include_pad=0)
        if op == NONE:
            if stride > 1:
                x = self.slice_hw(x, 0, size, stride)  # x[:, :, ::stride, ::stride]
            return self.node("Mul", [x, self.const(0.0, np.float32)])
        kind, kernel = op.rsplit("_", 1)
        k = int(kernel[0])
        if kind == "sep_conv":
            return self.dil_conv(self.dil_conv(x, c, k, stride, 1), c, k, 1, 1)
        return self.dil_conv(x, c, k, stride, 2)

    def cell(self, cell: Cell, s0: str, s1: str, c_pp: int, c_p: int, c: int, size: int, reduction: bool,
             reduction_prev: bool) -> str:
        """:class:`DartsCell`; ``size`` is the resolution of ``s1`` (``s0`` has twice it after a reduction)."""
        states = [self.factorized_reduce(s0, c_pp, c, 2 * size) if reduction_prev else self.relu_conv_bn(s0, c_pp, c),
                  self.relu_conv_bn(s1, c_p, c)]
        for k in range(N_NODES):
            terms = [self.edge(op, states[src], c, 2 if reduction and src < 2 else 1, size)
                     for op, src in cell[2 * k : 2 * k + 2]]
            states.append(self.node("Add", terms))
        return self.node("Concat", states[2:], axis=1)

    def build(self, g: DartsGenotype, batch: int) -> onnx.ModelProto:
        sp = self.space
        stem_c = 3 * sp.c
        size = sp.input_size
        s0 = s1 = self.batch_norm(self.conv("input", 3, stem_c, 3, pad=1), stem_c)
        c_pp, c_p, c_cur = stem_c, stem_c, sp.c
        reductions = (sp.layers // 3, 2 * sp.layers // 3)
        reduction_prev = False
        for i in range(sp.layers):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
            out = self.cell(g.reduce if reduction else g.normal, s0, s1, c_pp, c_p, c_cur, size, reduction,
                            reduction_prev)
            if reduction:
                size = (size + 1) // 2
            s0, s1 = s1, out
            reduction_prev = reduction
            c_pp, c_p = c_p, N_NODES * c_cur
        self.gemm_output(self.node("GlobalAveragePool", [s1]), c_p, sp.num_classes)
        return self.model("darts", [batch, 3, sp.input_size, sp.input_size], [batch, sp.num_classes])


# --------------------------------------------------------------------------- the space


@dataclass(frozen=True)
class DartsSpace:
    """The DARTS / NAS-Bench-301 cell space (about 10^18 networks, NAS-Bench-301's count; not enumerated).

    ``c`` and ``layers`` are the network's initial width and number of cells (NAS-Bench-301 trains
    ``C=32``, 8 cells); ``auxiliary`` adds DARTS's auxiliary head (not part of ``forward``);
    ``affine_ops=False`` makes the BatchNorms inside the edge ops non-affine (NASLib's graph,
    :data:`NASLIB_ZC`).
    """

    c: int = 32
    layers: int = 8
    num_classes: int = 10
    auxiliary: bool = False
    affine_ops: bool = True
    input_size: int = 32
    name: str = "darts"

    def dimensions(self) -> list[Dimension]:
        """Per cell and node: the ordered pair of its two (distinct) inputs, then each input's op.

        Every combination of choices is a valid genotype (see :meth:`to_choices`, :meth:`from_choices`).
        """
        dims = []
        for name in CELL_NAMES:
            for k in range(N_NODES):
                dims.append(Dimension(f"{name}_node{k}_inputs", tuple(itertools.permutations(range(k + 2), 2))))
                dims.append(Dimension(f"{name}_node{k}_op0", OPS))
                dims.append(Dimension(f"{name}_node{k}_op1", OPS))
        return dims

    def to_choices(self, genotype: str | DartsGenotype) -> tuple[Any, ...]:
        """The genotype's value for each of :meth:`dimensions`, in order."""
        g = parse_genotype(genotype)
        out: list[Any] = []
        for name in CELL_NAMES:
            cell = g.cell(name)
            for k in range(N_NODES):
                (op0, a), (op1, b) = cell[2 * k], cell[2 * k + 1]
                out.extend([(a, b), op0, op1])
        return tuple(out)

    def from_choices(self, choices: tuple[Any, ...] | list[Any]) -> DartsGenotype:
        """The genotype of one value per dimension (the inverse of :meth:`to_choices`)."""
        if len(choices) != 2 * 3 * N_NODES:
            raise GenotypeError(f"a DARTS genotype has {2 * 3 * N_NODES} choices; got {len(choices)}: {choices!r}")
        cells = []
        for ci in range(2):
            cell: list[tuple[str, int]] = []
            for k in range(N_NODES):
                inputs, op0, op1 = choices[(ci * N_NODES + k) * 3 : (ci * N_NODES + k) * 3 + 3]
                if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
                    raise GenotypeError(f"{CELL_NAMES[ci]}_node{k}_inputs must be a pair of inputs; got {inputs!r}")
                cell.extend([(op0, int(inputs[0])), (op1, int(inputs[1]))])
            cells.append(tuple(cell))
        return DartsGenotype(cells[0], cells[1])

    def sample(self, rng: np.random.Generator) -> DartsGenotype:
        """Uniform, as NAS-Bench-301 samples: per cell and node, 2 distinct inputs among its predecessors
        (in random order) and an op for each."""
        cells = []
        for _ in CELL_NAMES:
            cell: list[tuple[str, int]] = []
            for k in range(N_NODES):
                srcs = rng.choice(k + 2, size=2, replace=False)
                ops = rng.integers(0, len(OPS), size=2)
                cell.extend((OPS[int(o)], int(s)) for o, s in zip(ops, srcs, strict=True))
            cells.append(tuple(cell))
        return DartsGenotype(cells[0], cells[1])

    def mutate(self, genotype: str | DartsGenotype, rng: np.random.Generator) -> DartsGenotype:
        """A uniform draw among the genotypes one change away: one op, or one input (to another
        predecessor that the node's other input does not use), of one node of one cell."""
        nbrs = _neighbours(parse_genotype(genotype))
        return nbrs[int(rng.integers(len(nbrs)))]

    def neighbours(self, genotype: str | DartsGenotype) -> list[DartsGenotype]:
        """All genotypes :meth:`mutate` can return (120 for a genotype without ``none``)."""
        return _neighbours(parse_genotype(genotype))

    def parse(self, text: str) -> DartsGenotype:
        return parse_genotype(text)

    def format(self, genotype: DartsGenotype) -> str:
        return format_genotype(parse_genotype(genotype))

    def to_module(self, genotype: str | DartsGenotype) -> DartsNetwork:
        return DartsNetwork(parse_genotype(genotype), self.c, self.layers, self.num_classes, self.auxiliary,
                            self.affine_ops)

    def param_count(self, genotype: str | DartsGenotype) -> int:
        """``sum(p.numel() for p in self.to_module(genotype).parameters())`` (the auxiliary head
        included when there is one), computed without building the module: microseconds instead of
        a tenth of a second."""
        g = parse_genotype(genotype)
        c, nc = self.c, self.num_classes
        stem_c = 3 * c
        total = 3 * stem_c * 9 + 2 * stem_c  # stem conv + BN
        c_pp, c_p, c_cur = stem_c, stem_c, c
        reductions = (self.layers // 3, 2 * self.layers // 3)
        for i in range(self.layers):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
            total += c_pp * c_cur + 2 * c_cur + c_p * c_cur + 2 * c_cur  # preprocessing (either kind)
            cell = g.reduce if reduction else g.normal
            total += sum(_op_params(op, c_cur, 2 if reduction and src < 2 else 1, self.affine_ops) for op, src in cell)
            if self.auxiliary and i == reductions[1]:
                c_aux = N_NODES * c_cur
                total += c_aux * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * nc + nc
            c_pp, c_p = c_p, N_NODES * c_cur
        return total + c_p * nc + nc

    def to_onnx(self, genotype: str | DartsGenotype, batch: int = 1) -> onnx.ModelProto:
        """The network as a structure-only ONNX model built directly with ``onnx.helper`` (no torch
        export; see :mod:`nas.ir.onnx_writer`). For a file with weights, export :meth:`to_module`."""
        return _OnnxBuilder(self).build(parse_genotype(genotype), batch)

    def to_graph(self, genotype: str | DartsGenotype, batch: int = 1) -> ArchGraph:
        """The network's graph, from :meth:`to_onnx`: the same graph as the exported :meth:`to_module`
        (same fingerprint, node order and parameter count; tested), in 20-40 ms instead of the export's
        half a second (``benchmarks.ir_speed``).

        The auxiliary head is not in ``forward`` and so not in the graph. ONNX's BatchNormalization
        always has a scale and a bias, so with ``affine_ops=False`` the graph's ``params`` exceed
        :meth:`param_count` by ``2 * channels`` per op BatchNorm; ``none`` edges are dropped by the IR.
        """
        return ArchGraph.from_onnx(self.to_onnx(genotype, batch))

    def example_input_shape(self, batch: int = 1, genotype: Any = None) -> tuple[int, int, int, int]:
        return (batch, 3, self.input_size, self.input_size)


SPACES.register("darts")(DartsSpace)
SPACES.register("nb301")(DartsSpace)
