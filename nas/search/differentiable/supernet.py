"""Weight-sharing supernets built from a space's own op definitions, and their mixed ops.

A supernet has *decision groups*: a group is a matrix of architecture logits ``alpha`` of shape
``(rows, ops)``, one row per decision (an NB201 edge, a DARTS edge of the normal or reduction cell,
a MobileNetV3 block slot) and one column per candidate op. Rows may share one decision across many
places of the network (NB201: one cell genotype for all 15 cells; DARTS: one normal and one
reduction cell), as in the papers.

Each decision is a :class:`MixedOp` over the candidate modules, built by the space's own
constructors (:func:`search_spaces.nb201.edge_op`, :func:`search_spaces.darts.make_op`,
:class:`search_spaces.mbv3.MBConv`), so a derived genotype's network has exactly the ops the
supernet trained. How a forward pass mixes them is a :class:`Plan`, computed by the search method
for each step: per row a weight vector ``w`` (differentiable or not) and the ``active`` op indices,
and the mixed op returns ``sum_{i in active} w_i * op_i(x)``. Ops outside ``active`` are not run at
all, which is what gives GDAS and ProxylessNAS their memory of one (or two) paths.

Not every op is valid in every row (``valid``): a MobileNetV3 block that changes the resolution or
the width cannot be skipped. Invalid logits are masked to ``-inf`` before any softmax.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from nas.registry import Registry
from nas.search.differentiable.errors import SupernetUnsupportedError

__all__ = ["SUPERNETS", "DartsSupernet", "MBv3Supernet", "MixedOp", "NB201Supernet", "OpSpec", "Plan", "Supernet",
           "build_supernet"]


@dataclass
class Plan:
    """How every mixed op runs in one forward pass.

    ``weights[group]``: ``(rows, ops)`` tensor; ``active[group][row]``: the op indices run in that
    row (all others are skipped, not multiplied by zero).
    """

    weights: dict[str, Tensor]
    active: dict[str, list[list[int]]]


@dataclass(frozen=True)
class OpSpec:
    """One entry of the latency lookup table: a module factory and the input shape it runs on.

    ``key`` describes the op and the shape in words (``mbconv k3 e4 c24->40 s2 relu 1x24x40x40``);
    the table identifies entries by the fingerprint of the exported graph, the key is a shortcut.
    """

    key: str
    build: Callable[[], nn.Module] = field(compare=False)
    input_shape: tuple[int, ...]


class MixedOp(nn.Module):
    """``sum_{i in active} w_i * op_i(x)`` over candidate modules ``ops`` (DARTS's mixed op, Liu et
    al. 2019, eq. 1, restricted to the active paths so GDAS and ProxylessNAS run one or two).

    ``x``: ``(N, C, H, W)``; every op maps it to the same output shape; ``w``: ``(ops,)``.
    """

    def __init__(self, ops: list[nn.Module]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)

    def forward(self, x: Tensor, w: Tensor, active: list[int]) -> Tensor:
        out: Tensor | None = None
        for i in active:
            y = w[i] * self.ops[i](x)
            out = y if out is None else out + y
        if out is None:  # every op of the row switched off (DARTS-PT's edge removal)
            return self.ops[0](x) * 0.0
        return out


class Supernet(nn.Module):
    """A space's supernet: decision groups, the mixed-op network, derivation and latency specs.

    Subclasses fill ``choices`` (op names per group), ``valid`` (bool ``(rows, ops)`` per group),
    ``row_names`` and ``derivable`` (the ops a derived genotype may use), and implement
    :meth:`forward`, :meth:`genotype` and :meth:`latency_specs`.
    """

    space_name: str = ""
    space: Any

    def __init__(self) -> None:
        super().__init__()
        self.choices: dict[str, tuple[str, ...]] = {}
        self.row_names: dict[str, list[str]] = {}
        self.valid: dict[str, Tensor] = {}
        self.derivable: dict[str, Tensor] = {}

    def shapes(self) -> dict[str, tuple[int, int]]:
        return {g: (len(self.row_names[g]), len(self.choices[g])) for g in self.choices}

    def forward(self, x: Tensor, plan: Plan) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def genotype(self, ops: dict[str, list[int]], strength: dict[str, list[float]] | None = None) -> Any:
        """The space's genotype for one op index per row (``ops``), and for spaces that select
        inputs (DARTS) each row's ``strength``, the larger the more important."""
        raise NotImplementedError  # pragma: no cover - abstract

    def latency_specs(self) -> tuple[list[OpSpec], dict[str, list[list[list[OpSpec]]]]]:
        """The fixed modules, and per group, row and op the modules whose latencies the choice
        adds (empty: zero latency, e.g. an identity). Raises :class:`SupernetUnsupportedError` for a
        supernet with no latency model."""
        raise SupernetUnsupportedError(
            f"the {self.space_name} supernet has no latency lookup table; spaces with one: "
            + ", ".join(n for n in SUPERNETS.names() if SUPERNETS.get(n).has_latency)  # type: ignore[attr-defined]
        )

    has_latency = False


def _valid_all(rows: int, ops: int) -> Tensor:
    return torch.ones(rows, ops, dtype=torch.bool)


# --------------------------------------------------------------------------- NB201


class _NB201SearchCell(nn.Module):
    def __init__(self, c: int) -> None:
        from search_spaces.nb201 import EDGES, OPS, edge_op

        super().__init__()
        self.edges_spec = EDGES
        self.edges = nn.ModuleList(MixedOp([edge_op(op, c) for op in OPS]) for _ in EDGES)

    def forward(self, x: Tensor, w: Tensor, active: list[list[int]]) -> Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            out: Tensor | None = None
            for k, (to, src) in enumerate(self.edges_spec):
                if to == j:
                    y = self.edges[k](nodes[src], w[k], active[k])
                    out = y if out is None else out + y
            assert out is not None
            nodes.append(out)
        return nodes[3]


class NB201Supernet(Supernet):
    """The NAS-Bench-201 network (Dong & Yang, ICLR 2020) with every cell edge a mixed op over the 5
    ops; all cells share one ``(6, 5)`` logit matrix (group ``cell``), as in the NAS-Bench-201 paper's
    DARTS, GDAS and SETN runs. The stem, the ResNet reduction blocks and the head are the space's
    own (:class:`search_spaces.nb201.ResNetBlock`). ``c`` and ``n`` default to the benchmark's 16 and 5;
    a derived genotype is read by argmax over all 5 ops, ``none`` included, as the paper does.
    """

    space_name = "nb201"
    has_latency = True

    def __init__(self, c: int = 16, n: int = 5, num_classes: int = 10, input_size: int = 32) -> None:
        from search_spaces.nb201 import EDGES, OPS, NB201Space, macro_skeleton

        super().__init__()
        self.space = NB201Space(num_classes=num_classes, input_size=input_size)
        self.c, self.n, self.num_classes, self.input_size = c, n, num_classes, input_size
        self.choices = {"cell": OPS}
        self.row_names = {"cell": [f"{i}->{j}" for j, i in EDGES]}
        self.valid = {"cell": _valid_all(len(EDGES), len(OPS))}
        self.derivable = {"cell": _valid_all(len(EDGES), len(OPS))}
        self.stem, layers, self.lastact, self.pool, self.classifier = macro_skeleton(
            c, n, num_classes, _NB201SearchCell)
        self.cells = nn.ModuleList(layers)

    def forward(self, x: Tensor, plan: Plan) -> Tensor:
        w, active = plan.weights["cell"], plan.active["cell"]
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, w, active) if isinstance(layer, _NB201SearchCell) else layer(x)
        x = self.lastact(x)
        return self.classifier(self.pool(x).flatten(1))  # (N, 4c, 1, 1) -> (N, 4c)

    def genotype(self, ops: dict[str, list[int]], strength: dict[str, list[float]] | None = None) -> Any:
        return tuple(self.choices["cell"][i] for i in ops["cell"])

    def latency_specs(self) -> tuple[list[OpSpec], dict[str, list[list[list[OpSpec]]]]]:
        """Entries for the space's network (C=16, N=5 by default) whatever the supernet's size: the
        derived genotype is deployed, measured and judged in that network."""
        from search_spaces.nb201 import EDGES, OPS, ResNetBlock, edge_op

        # the deployed network's size (the space's C and N), not the supernet's, which may be smaller
        c, s, n = self.space.c, self.input_size, self.space.n
        fixed = [OpSpec(f"nb201 stem c{c} {s}", lambda: nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)), (1, 3, s, s))]
        stage_shapes = []
        for stage, mult in enumerate((1, 2, 4)):
            cc, hw = c * mult, s // (2**stage)
            if stage > 0:
                c_in = c * mult // 2
                fixed.append(OpSpec(f"nb201 resblock {c_in}->{cc} {2 * hw}",
                                    functools.partial(ResNetBlock, c_in, cc), (1, c_in, 2 * hw, 2 * hw)))
            stage_shapes.append((cc, hw))
        cl, hl = stage_shapes[-1]
        fixed.append(OpSpec(f"nb201 head c{cl} {hl} k{self.num_classes}", lambda: nn.Sequential(
            nn.BatchNorm2d(cl), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
            nn.Linear(cl, self.num_classes)), (1, cl, hl, hl)))
        table: list[list[list[OpSpec]]] = []
        for _ in EDGES:
            row = []
            for op in OPS:
                specs = []
                if op != "skip_connect":  # the identity costs nothing once exported
                    for cc, hw in stage_shapes:
                        spec = OpSpec(f"nb201 {op} c{cc} {hw}", functools.partial(edge_op, op, cc), (1, cc, hw, hw))
                        specs.extend([spec] * n)
                row.append(specs)
            table.append(row)
        return fixed, {"cell": table}


# --------------------------------------------------------------------------- DARTS


class _PoolBN(nn.Sequential):
    """A pooling op followed by a non-affine BatchNorm, as DARTS's search-time MixedOp wraps pools
    (so that their output scale matches the parametric ops')."""


class _DartsSearchCell(nn.Module):
    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, steps: int) -> None:
        from search_spaces.darts import ALL_OPS, make_op, make_preprocess

        super().__init__()
        self.reduction, self.steps = reduction, steps
        self.preprocess0 = make_preprocess(c_pp, c, reduction_prev)
        self.preprocess1 = make_preprocess(c_p, c, False)
        edges = []
        for k in range(steps):
            for src in range(k + 2):
                stride = 2 if reduction and src < 2 else 1
                ops = []
                for op in ALL_OPS:
                    m = make_op(op, c, stride, affine=False)
                    ops.append(_PoolBN(m, nn.BatchNorm2d(c, affine=False)) if "pool" in op else m)
                edges.append(MixedOp(ops))
        self.edges = nn.ModuleList(edges)

    def forward(self, s0: Tensor, s1: Tensor, w: Tensor, active: list[list[int]]) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for _ in range(self.steps):
            out: Tensor | None = None
            for h in states:
                y = self.edges[e](h, w[e], active[e])
                out = y if out is None else out + y
                e += 1
            assert out is not None
            states.append(out)
        return torch.cat(states[2:], dim=1)  # (N, steps * c, H, W)


class DartsSupernet(Supernet):
    """The DARTS search network (Liu, Simonyan & Yang, ICLR 2019): ``layers`` cells, reductions at
    ``layers // 3`` and ``2 * layers // 3``, every cell a DAG of 4 nodes whose 14 edges are mixed ops
    over the 8 ops (``none`` included) of :data:`search_spaces.darts.ALL_OPS`, built with
    :func:`search_spaces.darts.make_op` with non-affine BatchNorms (DARTS's search setting) and the
    pools followed by a non-affine BatchNorm (DARTS's MixedOp). Groups ``normal`` and ``reduce``,
    ``(14, 8)`` each. DARTS's search uses ``C=16``, 8 cells; the defaults here are smaller for CPUs.

    Derivation is DARTS's: per node keep the 2 incoming edges of largest strength (by default the
    largest non-``none`` weight of the edge), each with its best non-``none`` op.
    """

    space_name = "darts"

    def __init__(self, c: int = 8, layers: int = 5, num_classes: int = 10, input_size: int = 32) -> None:
        from search_spaces.darts import ALL_OPS, N_NODES, NONE, DartsSpace

        super().__init__()
        if layers < 3:
            raise SupernetUnsupportedError(f"a DARTS supernet needs at least 3 cells; got layers={layers}")
        self.space = DartsSpace(num_classes=num_classes, input_size=input_size)
        self.steps = N_NODES
        self.edge_src = [src for k in range(N_NODES) for src in range(k + 2)]
        self.edge_node = [k for k in range(N_NODES) for _ in range(k + 2)]
        rows = len(self.edge_src)
        names = [f"{src}->n{k}" for k, src in zip(self.edge_node, self.edge_src, strict=True)]
        derivable = _valid_all(rows, len(ALL_OPS))
        derivable[:, ALL_OPS.index(NONE)] = False
        for g in ("normal", "reduce"):
            self.choices[g] = ALL_OPS
            self.row_names[g] = names
            self.valid[g] = _valid_all(rows, len(ALL_OPS))
            self.derivable[g] = derivable.clone()
        stem_c = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(3, stem_c, 3, padding=1, bias=False), nn.BatchNorm2d(stem_c))
        c_pp, c_p, c_cur = stem_c, stem_c, c
        cells = []
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_cur *= 2
            cells.append(_DartsSearchCell(c_pp, c_p, c_cur, reduction, reduction_prev, self.steps))
            reduction_prev = reduction
            c_pp, c_p = c_p, self.steps * c_cur
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: Tensor, plan: Plan) -> Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            g = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, plan.weights[g], plan.active[g])
        return self.classifier(self.pool(s1).flatten(1))  # (N, 4c, 1, 1) -> (N, 4c)

    def genotype(self, ops: dict[str, list[int]], strength: dict[str, list[float]] | None = None) -> Any:
        from search_spaces.darts import DartsGenotype

        if strength is None:
            raise SupernetUnsupportedError("the DARTS supernet derives a genotype from op choices and edge strengths")
        cells = []
        for g in ("normal", "reduce"):
            cell: list[tuple[str, int]] = []
            for k in range(self.steps):
                rows = [r for r, node in enumerate(self.edge_node) if node == k]
                best = sorted(rows, key=lambda r, g=g: -strength[g][r])[:2]  # type: ignore[misc]
                best.sort(key=lambda r: self.edge_src[r])
                cell.extend((self.choices[g][ops[g][r]], self.edge_src[r]) for r in best)
            cells.append(tuple(cell))
        return DartsGenotype(cells[0], cells[1])


# --------------------------------------------------------------------------- MobileNetV3


class _SkipOp(nn.Identity):
    """The zero-cost ``skip`` choice of a block that may be dropped (ProxylessNAS's zero op on a
    residual block: with the residual outside, dropping the block is the identity)."""


class MBv3Supernet(Supernet):
    """The MobileNetV3 space's network (OFA backbone) with every block slot a mixed op, as in
    ProxylessNAS (Cai, Zhu & Han, ICLR 2019).

    Resolution and width are fixed per supernet (``resolution``, ``width``): they scale the whole
    network and are not per-block decisions. Each of the 5 stages has ``max(depths)`` block slots;
    a slot's choices are :class:`search_spaces.mbv3.MBConv` for every kernel x expansion (x SE, if
    ``se`` lists both) of the space, plus ``skip`` for slots at position ``>= min(depths)`` of their
    stage (those are stride-1 residual blocks, so dropping one is the identity); a derived stage's
    depth is its number of non-skip slots. Group ``blocks``, ``(20, choices)``.

    ``train_resolution`` is the input size the supernet trains on (default 32: the CIFAR images as
    they are); the derived genotype keeps ``resolution``, at which the latency table is measured.
    The stem, first block and head are taken from the space's own :class:`MBv3Network`.
    """

    space_name = "mbv3"
    has_latency = True

    def __init__(self, resolution: int | None = None, width: float = 1.0, num_classes: int = 10,
                 se: tuple[bool, ...] = (False,), train_resolution: int = 32) -> None:
        from search_spaces.mbv3 import STAGES, Block, MBConv, MBv3Genotype, MBv3Network, MBv3Space, make_divisible

        super().__init__()
        self.space = MBv3Space(num_classes=num_classes)
        sp = self.space
        self.resolution = min(sp.resolutions) if resolution is None else resolution
        if self.resolution not in sp.resolutions or width not in sp.widths:
            raise SupernetUnsupportedError(f"mbv3 supernet: resolution {self.resolution} and width {width} must be "
                                           f"among {sp.resolutions} and {sp.widths}")
        self.width, self.num_classes, self.train_resolution = width, num_classes, train_resolution
        self.min_depth, self.max_depth = min(sp.depths), max(sp.depths)
        blocks = [Block(k, e, s) for k, e, s in itertools.product(sp.kernels, sp.expands, se)]
        self.blocks_choices = blocks
        names = (*[str(b) for b in blocks], "skip")
        self.choices = {"blocks": names}
        ref = MBv3Network(MBv3Genotype(self.resolution, width, tuple((blocks[0],) * self.max_depth for _ in STAGES)),
                          num_classes)
        # the fixed parts, exactly as the space builds them
        self.stem, self.first = ref.stem, ref.blocks[0]
        self.final_expand, self.pool, self.feature_mix = ref.final_expand, ref.pool, ref.feature_mix
        self.dropout, self.classifier = ref.dropout, ref.classifier
        c = make_divisible(16 * width)
        slots, row_names, valid = [], [], []
        self.slot_shapes: list[tuple[int, int, int, str, int]] = []  # c_in, c_out, stride, act, input size
        hw = self.resolution // 2
        for s, spec in enumerate(STAGES):
            c_out = make_divisible(spec.channels * width)
            for i in range(self.max_depth):
                stride = spec.stride if i == 0 else 1
                ops: list[nn.Module] = [MBConv(c, c_out, b.kernel, stride, b.expand, b.se, spec.act) for b in blocks]
                ops.append(_SkipOp())
                slots.append(MixedOp(ops))
                row_names.append(f"s{s}b{i}")
                v = torch.ones(len(names), dtype=torch.bool)
                v[-1] = i >= self.min_depth
                valid.append(v)
                self.slot_shapes.append((c, c_out, stride, spec.act, hw))
                hw = (hw + stride - 1) // stride
                c = c_out
        self.slots = nn.ModuleList(slots)
        self.row_names = {"blocks": row_names}
        self.valid = {"blocks": torch.stack(valid)}
        self.derivable = {"blocks": self.valid["blocks"].clone()}
        self.c_last = c

    def forward(self, x: Tensor, plan: Plan) -> Tensor:
        w, active = plan.weights["blocks"], plan.active["blocks"]
        x = self.first(self.stem(x))
        for r, slot in enumerate(self.slots):
            x = slot(x, w[r], active[r])
        x = self.feature_mix(self.pool(self.final_expand(x)))  # (N, c_feat, 1, 1)
        return self.classifier(self.dropout(x.flatten(1)))

    def genotype(self, ops: dict[str, list[int]], strength: dict[str, list[float]] | None = None) -> Any:
        from search_spaces.mbv3 import STAGES, MBv3Genotype

        chosen = ops["blocks"]
        stages = []
        for s in range(len(STAGES)):
            row = chosen[s * self.max_depth : (s + 1) * self.max_depth]
            stages.append(tuple(self.blocks_choices[i] for i in row if i < len(self.blocks_choices)))
        return self.space.check(MBv3Genotype(self.resolution, self.width, tuple(stages)))

    def latency_specs(self) -> tuple[list[OpSpec], dict[str, list[list[list[OpSpec]]]]]:
        from search_spaces.mbv3 import MBConv

        r, w = self.resolution, self.width
        fixed = [
            OpSpec(f"mbv3 stem+first w{w} r{r}", lambda: nn.Sequential(self._copy(self.stem), self._copy(self.first)),
                   (1, 3, r, r)),
        ]
        hw_last = self.slot_shapes[-1][4] // self.slot_shapes[-1][2]
        fixed.append(OpSpec(f"mbv3 head c{self.c_last} {hw_last} k{self.num_classes} w{w}", lambda: _Head(
            self._copy(self.final_expand), self._copy(self.feature_mix), self._copy(self.classifier)),
            (1, self.c_last, hw_last, hw_last)))
        table = []
        for c_in, c_out, stride, act, hw in self.slot_shapes:
            row: list[list[OpSpec]] = []
            for b in self.blocks_choices:
                key = f"mbconv k{b.kernel} e{b.expand}{' se' if b.se else ''} c{c_in}->{c_out} s{stride} {act} {hw}"
                build = functools.partial(MBConv, c_in, c_out, b.kernel, stride, b.expand, b.se, act)
                row.append([OpSpec(key, build, (1, c_in, hw, hw))])
            row.append([])  # skip: the identity, removed by the exporter
            table.append(row)
        return fixed, {"blocks": table}

    @staticmethod
    def _copy(m: nn.Module) -> nn.Module:
        import copy

        return copy.deepcopy(m)


class _Head(nn.Module):
    def __init__(self, final_expand: nn.Module, feature_mix: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.final_expand, self.feature_mix, self.classifier = final_expand, feature_mix, classifier
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.feature_mix(self.pool(self.final_expand(x))).flatten(1))


# --------------------------------------------------------------------------- registry

SUPERNETS: Registry[Supernet] = Registry("supernet")
SUPERNETS.register("nb201")(NB201Supernet)
SUPERNETS.register("darts")(DartsSupernet)
SUPERNETS.register("mbv3")(MBv3Supernet)


def build_supernet(space: str, **kwargs: Any) -> Supernet:
    """The supernet of ``space`` (a space name, or ``NAME:key=value,...`` whose args go to the
    supernet), with ``kwargs`` added. Raises :class:`SupernetUnsupportedError` naming the spaces
    that have one."""
    from search_spaces import _value

    name, _, rest = space.partition(":")
    name = name.strip().lower()
    if name not in SUPERNETS:
        raise SupernetUnsupportedError(
            f"space {name!r} has no supernet for differentiable search; spaces with one: {', '.join(SUPERNETS.names())}"
        )
    args: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise SupernetUnsupportedError(f"supernet arguments are key=value; got {part!r} in {space!r}")
        args[key.strip()] = _value(value.strip())
    args.update(kwargs)
    try:
        return SUPERNETS.get(name)(**args)
    except TypeError as e:
        import inspect

        params = ", ".join(inspect.signature(SUPERNETS.get(name)).parameters)
        raise SupernetUnsupportedError(f"supernet {name!r}: {e}; it takes: {params}") from e
