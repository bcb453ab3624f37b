"""A MobileNetV3 macro space for hardware-aware search on ImageNet-size inputs.

Howard et al., "Searching for MobileNetV3", ICCV 2019 (the network, h-swish, SE with h-sigmoid);
Cai et al., "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware", ICLR 2019
(per-block kernel size and expansion ratio); Cai et al., "Once-for-All: Train One Network and
Specialize it for Efficient Deployment", ICLR 2020 (elastic depth, kernel, expansion and resolution
on the MobileNetV3 backbone; this is its space, with the squeeze-excite made a per-block choice and a
width multiplier added).

The network, for an input of shape ``(N, 3, R, R)`` and width multiplier ``w`` (channel counts are
``w`` times the base, rounded to a multiple of 8, see :func:`make_divisible`):

* stem: 3x3 conv, stride 2, 3 -> 16w, BN, h-swish (``R/2``);
* a fixed first block: 3x3 depthwise conv, BN, ReLU, 1x1 conv 16w -> 16w, BN, plus the identity;
* five stages of inverted-residual MBConv blocks (:data:`STAGES`): 24, 40, 80, 112 and 160 base
  channels, strides 2, 2, 2, 1, 2 (``R/4 .. R/32``), ReLU in the first two, h-swish after. A stage
  has ``depth`` blocks; its first block has the stage's stride and changes the channel count, the
  others have stride 1 and a residual connection. A block with kernel ``k``, expansion ``e`` and
  input channels ``c`` is: 1x1 conv ``c -> e*c``, BN, act; ``k x k`` depthwise conv, BN, act;
  optionally squeeze-excite (global average pool, 1x1 conv ``e*c -> e*c/4`` with bias, ReLU, 1x1 conv
  back with bias, h-sigmoid, times the features); 1x1 conv ``e*c -> c_out``, BN (linear);
* head: 1x1 conv 160w -> 960w, BN, h-swish; global average pool (``(N, 960w, 1, 1)``); 1x1 conv
  960w -> 1280 (1280w when ``w > 1``), h-swish; flatten; dropout (if ``dropout > 0``); linear to
  ``num_classes`` (``(N, num_classes)``).

Genotype
--------
:class:`MBv3Genotype`: the resolution, the width multiplier, and per stage the tuple of its active
:class:`Block` choices ``(kernel, expand, se)``; a stage's depth is the length of its tuple. Blocks
beyond a stage's depth have no value at all, so equal networks have equal genotypes. Their decisions
still appear in :meth:`MBv3Space.dimensions` (the list has a fixed length for strategies that want a
vector); :meth:`MBv3Space.encode` writes an inactive block as the first choice of each dimension and
:meth:`MBv3Space.decode` ignores what it finds there.

Text form: ``r{resolution}_w{width}`` then one field per stage, each the ``.``-joined blocks
``k{kernel}e{expand}`` with an ``s`` suffix for squeeze-excite, e.g.
``r224_w1.0_k3e4.k5e6s_k3e3.k3e3_k7e6s.k5e4.k3e3_k3e3.k3e3_k5e6s.k5e6s.k7e3``.

The space is not enumerable (about 2.5 x 10^26 networks): strategies use :meth:`MBv3Space.sample` and
:meth:`MBv3Space.mutate`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import onnx
from torch import Tensor, nn

from nas.errors import GenotypeError
from nas.ir import ArchGraph
from nas.ir.onnx_writer import OnnxWriter
from search_spaces import SPACES
from search_spaces.base import Dimension


@dataclass(frozen=True)
class StageSpec:
    """A stage's fixed part: base output channels, stride of its first block, activation."""

    channels: int
    stride: int
    act: str  # "relu" or "hswish"


#: The five searchable stages of OFA-MobileNetV3 (Cai et al. 2020, from MobileNetV3-Large).
STAGES: tuple[StageSpec, ...] = (
    StageSpec(24, 2, "relu"),
    StageSpec(40, 2, "relu"),
    StageSpec(80, 2, "hswish"),
    StageSpec(112, 1, "hswish"),
    StageSpec(160, 2, "hswish"),
)
STEM_CHANNELS = 16
FINAL_EXPAND = 6  # the head's 1x1 conv widens the last stage by this factor (160 -> 960)
FEATURE_CHANNELS = 1280
SE_REDUCTION = 4


def make_divisible(v: float, divisor: int = 8) -> int:
    """``v`` rounded to the nearest multiple of ``divisor``, but never more than 10 % below ``v``
    (the channel rounding of the MobileNet family, so that width multipliers give hardware-friendly
    channel counts)."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


# --------------------------------------------------------------------------- genotypes


@dataclass(frozen=True)
class Block:
    """One MBConv block's choices: depthwise kernel size, expansion ratio, squeeze-excite."""

    kernel: int
    expand: int
    se: bool

    def __str__(self) -> str:
        return f"k{self.kernel}e{self.expand}{'s' if self.se else ''}"


@dataclass(frozen=True)
class MBv3Genotype:
    """A network of the space: input resolution, width multiplier, the active blocks of each stage."""

    resolution: int
    width: float
    stages: tuple[tuple[Block, ...], ...]

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)


_BLOCK_RE = re.compile(r"k(\d+)e(\d+)(s?)")


def _parse_block(text: str, where: str) -> Block:
    m = _BLOCK_RE.fullmatch(text)
    if m is None:
        raise GenotypeError(f"block {text!r} in {where!r} must read 'k<kernel>e<expand>' with an optional 's'")
    return Block(int(m.group(1)), int(m.group(2)), m.group(3) == "s")


T = TypeVar("T")


def _other(values: Sequence[T], current: T, rng: np.random.Generator) -> T:
    """A uniformly drawn value of ``values`` other than ``current``."""
    rest = [v for v in values if v != current]
    return rest[int(rng.integers(len(rest)))]


def _number(text: str, prefix: str, what: str, where: str) -> str:
    if not text.startswith(prefix) or len(text) == len(prefix):
        raise GenotypeError(f"the {what} field of {where!r} must read '{prefix}<value>'; got {text!r}")
    return text[len(prefix):]


# --------------------------------------------------------------------------- PyTorch network


def _act(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.Hardswish()


class SqueezeExcite(nn.Module):
    """Channel attention of MobileNetV3: ``x * h_sigmoid(W2 relu(W1 avgpool(x) + b1) + b2)``.

    ``x``: ``(N, C, H, W)``; the gate is ``(N, C, 1, 1)``, broadcast over ``H, W``.
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        mid = make_divisible(channels / reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]


class MBConv(nn.Module):
    """Inverted-residual block (MobileNetV2/V3): expand 1x1, depthwise kxk, optional SE, project 1x1.

    ``(N, c_in, H, W) -> (N, c_out, H/stride, W/stride)``; the identity is added when ``stride == 1``
    and ``c_in == c_out``. ``expand == 1`` drops the expanding conv (the network's first block).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, se: bool, act: str) -> None:
        super().__init__()
        mid = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(c_in, mid, 1), _act(act)]
        layers += [*_conv_bn(mid, mid, kernel, stride, groups=mid), _act(act)]
        if se:
            layers.append(SqueezeExcite(mid))
        layers += _conv_bn(mid, c_out, 1)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MBv3Network(nn.Module):
    """The network of one genotype (see the module docstring): ``(N, 3, R, R) -> (N, num_classes)``."""

    def __init__(self, genotype: MBv3Genotype, num_classes: int = 1000, dropout: float = 0.0) -> None:
        super().__init__()
        self.genotype = genotype
        w = genotype.width
        c = make_divisible(STEM_CHANNELS * w)
        self.stem = nn.Sequential(*_conv_bn(3, c, 3, 2), nn.Hardswish())
        blocks: list[nn.Module] = [MBConv(c, c, 3, 1, 1, False, "relu")]
        for spec, stage in zip(STAGES, genotype.stages, strict=True):
            c_out = make_divisible(spec.channels * w)
            for i, b in enumerate(stage):
                blocks.append(MBConv(c, c_out, b.kernel, spec.stride if i == 0 else 1, b.expand, b.se, spec.act))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        c_final = make_divisible(c * FINAL_EXPAND)
        # OFA keeps the feature width at 1280 for multipliers up to 1 and only widens it above
        c_feat = make_divisible(FEATURE_CHANNELS * w) if w > 1.0 else FEATURE_CHANNELS
        self.final_expand = nn.Sequential(*_conv_bn(c, c_final, 1), nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix = nn.Sequential(nn.Conv2d(c_final, c_feat, 1, bias=False), nn.Hardswish())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(c_feat, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.final_expand(self.blocks(self.stem(x)))
        x = self.feature_mix(self.pool(x))  # (N, c_feat, 1, 1)
        return self.classifier(self.dropout(x.flatten(1)))  # (N, c_feat) -> (N, num_classes)


# --------------------------------------------------------------------------- direct ONNX graph


class _OnnxBuilder(OnnxWriter):
    """Writes the same network as :class:`MBv3Network` (in eval mode: no dropout) with ``onnx.helper``,
    structure-only (see :mod:`nas.ir.onnx_writer`): 15-30 ms, where the export takes 0.3-0.5 s."""

    def act(self, x: str, name: str) -> str:
        return self.node("Relu" if name == "relu" else "HardSwish", [x])

    def conv_bn(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> str:
        return self.batch_norm(self.conv(x, c_in, c_out, k, stride=stride, pad=k // 2, groups=groups), c_out)

    def mbconv(self, x: str, c_in: int, c_out: int, kernel: int, stride: int, expand: int, se: bool,
               act: str) -> str:
        mid = c_in * expand
        y = self.act(self.conv_bn(x, c_in, mid, 1), act) if expand != 1 else x
        y = self.act(self.conv_bn(y, mid, mid, kernel, stride, groups=mid), act)
        if se:
            m = make_divisible(mid / SE_REDUCTION)
            gate = self.node("Relu", [self.conv(self.node("GlobalAveragePool", [y]), mid, m, 1, bias=True)])
            gate = self.node("HardSigmoid", [self.conv(gate, m, mid, 1, bias=True)], alpha=1 / 6, beta=0.5)
            y = self.node("Mul", [y, gate])
        y = self.conv_bn(y, mid, c_out, 1)
        return self.node("Add", [x, y]) if stride == 1 and c_in == c_out else y

    def build(self, g: MBv3Genotype, num_classes: int, batch: int) -> onnx.ModelProto:
        w = g.width
        c = make_divisible(STEM_CHANNELS * w)
        x = self.act(self.conv_bn("input", 3, c, 3, 2), "hswish")
        x = self.mbconv(x, c, c, 3, 1, 1, False, "relu")
        for spec, stage in zip(STAGES, g.stages, strict=True):
            c_out = make_divisible(spec.channels * w)
            for i, b in enumerate(stage):
                x = self.mbconv(x, c, c_out, b.kernel, spec.stride if i == 0 else 1, b.expand, b.se, spec.act)
                c = c_out
        c_final = make_divisible(c * FINAL_EXPAND)
        c_feat = make_divisible(FEATURE_CHANNELS * w) if w > 1.0 else FEATURE_CHANNELS
        x = self.act(self.conv_bn(x, c, c_final, 1), "hswish")
        x = self.act(self.conv(self.node("GlobalAveragePool", [x]), c_final, c_feat, 1), "hswish")
        self.gemm_output(x, c_feat, num_classes)
        r = g.resolution
        return self.model("mbv3", [batch, 3, r, r], [batch, num_classes])


# --------------------------------------------------------------------------- the space


@dataclass(frozen=True)
class MBv3Space:
    """OFA-style MobileNetV3 space: per block kernel/expansion/SE, per stage depth, resolution, width.

    With the defaults (1000 classes) the networks have 2.06 M (depth 2, k3, e3, no SE, width 0.5)
    to 8.08 M parameters (depth 4, k7, e6, SE, width 1.0), at resolutions 160 to 224. The widths
    are three of MobileNetV3's multipliers; OFA's 1.2 would raise the top to 11.3 M. ``dropout``
    (0 by default; OFA trains with 0.1) precedes the classifier.
    """

    num_classes: int = 1000
    dropout: float = 0.0
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = (160, 176, 192, 208, 224)
    widths: tuple[float, ...] = (0.5, 0.75, 1.0)
    name: str = field(default="mbv3")

    # ------------------------------------------------------------------ validation
    def check(self, genotype: MBv3Genotype) -> MBv3Genotype:
        """``genotype`` itself if it belongs to this space; raise :class:`GenotypeError` otherwise."""
        if not isinstance(genotype, MBv3Genotype):
            raise GenotypeError(f"an mbv3 genotype is an MBv3Genotype; got {type(genotype).__name__} {genotype!r}")
        g = genotype
        if g.resolution not in self.resolutions:
            raise GenotypeError(f"resolution {g.resolution!r} is not one of {self.resolutions}")
        if g.width not in self.widths:
            raise GenotypeError(f"width multiplier {g.width!r} is not one of {self.widths}")
        # tuples, not lists: a genotype is a hashable key of caches and populations
        if not isinstance(g.stages, tuple) or not all(isinstance(st, tuple) for st in g.stages):
            raise GenotypeError(f"the stages of an mbv3 genotype are a tuple of tuples of Blocks; got {g.stages!r}")
        if len(g.stages) != len(STAGES):
            raise GenotypeError(f"an mbv3 genotype has {len(STAGES)} stages; got {len(g.stages)}")
        for s, stage in enumerate(g.stages):
            if len(stage) not in self.depths:
                raise GenotypeError(f"stage {s} has depth {len(stage)}; depths are {self.depths}")
            for i, b in enumerate(stage):
                if not isinstance(b, Block):
                    raise GenotypeError(f"stage {s} block {i} is {b!r}, not a Block")
                if b.kernel not in self.kernels or b.expand not in self.expands or not isinstance(b.se, bool):
                    raise GenotypeError(
                        f"stage {s} block {i} is {b!r}; kernels are {self.kernels}, expansions {self.expands}, "
                        "se a bool"
                    )
        return g

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    # ------------------------------------------------------------------ protocol
    def dimensions(self) -> list[Dimension]:
        """Resolution, width, the 5 stage depths, then kernel/expand/se of every block slot.

        Slots beyond a stage's depth are listed too (see the module docstring); their values do not
        change the network.
        """
        dims = [Dimension("resolution", self.resolutions), Dimension("width", self.widths)]
        dims += [Dimension(f"stage{s}_depth", self.depths) for s in range(len(STAGES))]
        for s in range(len(STAGES)):
            for i in range(self.max_depth):
                dims += [
                    Dimension(f"stage{s}_block{i}_kernel", self.kernels),
                    Dimension(f"stage{s}_block{i}_expand", self.expands),
                    Dimension(f"stage{s}_block{i}_se", (False, True)),
                ]
        return dims

    def encode(self, genotype: MBv3Genotype) -> tuple[object, ...]:
        """The value of every dimension, in :meth:`dimensions` order; inactive blocks get each
        dimension's first choice."""
        g = self.check(genotype)
        out: list[object] = [g.resolution, g.width, *g.depths]
        filler = Block(self.kernels[0], self.expands[0], False)
        for stage in g.stages:
            for i in range(self.max_depth):
                b = stage[i] if i < len(stage) else filler
                out += [b.kernel, b.expand, b.se]
        return tuple(out)

    def decode(self, values: Sequence[Any]) -> MBv3Genotype:
        """The genotype whose :meth:`encode` agrees with ``values`` on every active dimension."""
        n = len(self.dimensions())
        if len(values) != n:
            raise GenotypeError(f"an mbv3 vector has {n} values; got {len(values)}")
        depths = values[2 : 2 + len(STAGES)]
        blocks = values[2 + len(STAGES) :]
        stages = []
        for s, d in enumerate(depths):
            if d not in self.depths:
                raise GenotypeError(f"stage {s} depth {d!r} is not one of {self.depths}")
            base = 3 * self.max_depth * s
            stages.append(tuple(Block(*blocks[base + 3 * i : base + 3 * i + 3]) for i in range(d)))
        return self.check(MBv3Genotype(values[0], values[1], tuple(stages)))

    def _block(self, rng: np.random.Generator) -> Block:
        return Block(
            self.kernels[int(rng.integers(len(self.kernels)))],
            self.expands[int(rng.integers(len(self.expands)))],
            bool(rng.integers(2)),
        )

    def sample(self, rng: np.random.Generator) -> MBv3Genotype:
        """Every active decision drawn uniformly and independently, as OFA samples its subnets.

        It is uniform per decision, not over distinct networks (which would favour the deepest
        stages, which hold most of them).
        """
        resolution = self.resolutions[int(rng.integers(len(self.resolutions)))]
        width = self.widths[int(rng.integers(len(self.widths)))]
        stages = []
        for _ in STAGES:
            depth = self.depths[int(rng.integers(len(self.depths)))]
            stages.append(tuple(self._block(rng) for _ in range(depth)))
        return MBv3Genotype(resolution, width, tuple(stages))

    def mutate(self, genotype: MBv3Genotype, rng: np.random.Generator) -> MBv3Genotype:
        """Change one uniformly drawn active decision to another of its values.

        The decisions are the resolution, the width, the five depths and kernel, expansion and SE
        of each active block. A deeper stage gets new blocks drawn uniformly; a shallower one loses
        its last blocks.
        """
        g = self.check(genotype)
        sizes = {"resolution": len(self.resolutions), "width": len(self.widths), "depth": len(self.depths),
                 "k": len(self.kernels), "e": len(self.expands), "s": 2}
        choices: list[tuple[str, int, int]] = [("resolution", -1, -1), ("width", -1, -1)]
        choices += [("depth", s, -1) for s in range(len(STAGES))]
        choices += [(k, s, i) for s, st in enumerate(g.stages) for i in range(len(st)) for k in ("k", "e", "s")]
        choices = [c for c in choices if sizes[c[0]] > 1]  # a decision with one value cannot change
        what, s, i = choices[int(rng.integers(len(choices)))]
        if what == "resolution":
            return MBv3Genotype(_other(self.resolutions, g.resolution, rng), g.width, g.stages)
        if what == "width":
            return MBv3Genotype(g.resolution, _other(self.widths, g.width, rng), g.stages)
        stages = list(g.stages)
        stage = list(stages[s])
        if what == "depth":
            depth = _other(self.depths, len(stage), rng)
            stage = stage[:depth] + [self._block(rng) for _ in range(depth - len(stage))]
        else:
            b = stage[i]
            if what == "k":
                stage[i] = Block(_other(self.kernels, b.kernel, rng), b.expand, b.se)
            elif what == "e":
                stage[i] = Block(b.kernel, _other(self.expands, b.expand, rng), b.se)
            else:
                stage[i] = Block(b.kernel, b.expand, not b.se)
        stages[s] = tuple(stage)
        return MBv3Genotype(g.resolution, g.width, tuple(stages))

    def parse(self, text: str) -> MBv3Genotype:
        """A genotype from its text form (see the module docstring)."""
        if not isinstance(text, str):
            raise GenotypeError(f"an mbv3 architecture string is a str; got {type(text).__name__} {text!r}")
        fields = text.strip().split("_")
        if len(fields) != 2 + len(STAGES):
            raise GenotypeError(
                f"an mbv3 string has {2 + len(STAGES)} '_'-separated fields "
                f"(r<res>_w<width>_<stage>_..._<stage>); {text!r} has {len(fields)}"
            )
        res_text = _number(fields[0], "r", "resolution", text)
        width_text = _number(fields[1], "w", "width", text)
        try:
            resolution = int(res_text)
        except ValueError:
            raise GenotypeError(f"the resolution field {fields[0]!r} of {text!r} must read 'r<integer>'") from None
        try:
            width = float(width_text)
        except ValueError:
            raise GenotypeError(f"the width field {fields[1]!r} of {text!r} must read 'w<number>'") from None
        stages = tuple(
            tuple(_parse_block(b, text) for b in f.split(".")) if f else () for f in fields[2:]
        )
        return self.check(MBv3Genotype(resolution, width, stages))

    def format(self, genotype: MBv3Genotype) -> str:
        g = self.check(genotype)
        return "_".join([f"r{g.resolution}", f"w{g.width}", *(".".join(map(str, st)) for st in g.stages)])

    def to_module(self, genotype: MBv3Genotype) -> MBv3Network:
        return MBv3Network(self.check(genotype), self.num_classes, self.dropout)

    def to_onnx(self, genotype: MBv3Genotype, batch: int = 1) -> onnx.ModelProto:
        """The network as a structure-only ONNX model built directly with ``onnx.helper`` (no torch
        export; see :mod:`nas.ir.onnx_writer`). For a file with weights, export :meth:`to_module`."""
        return _OnnxBuilder().build(self.check(genotype), self.num_classes, batch)

    def to_graph(self, genotype: MBv3Genotype, batch: int = 1) -> ArchGraph:
        """The network's graph, from :meth:`to_onnx`: the same graph as the exported :meth:`to_module`
        in eval mode (same fingerprint, node order and parameter count; tested), in 15-30 ms instead of
        the export's 0.3-0.5 s (``benchmarks.ir_speed``)."""
        return ArchGraph.from_onnx(self.to_onnx(genotype, batch))

    def example_input_shape(
        self, batch: int = 1, genotype: MBv3Genotype | None = None
    ) -> tuple[int, int, int, int]:
        r = self.check(genotype).resolution if genotype is not None else max(self.resolutions)
        return (batch, 3, r, r)


SPACES.register("mbv3")(MBv3Space)
