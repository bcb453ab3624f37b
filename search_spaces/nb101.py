"""NAS-Bench-101, exactly as the benchmark defines and builds it.

Ying, Klein, Real, Christiansen, Murphy & Hutter, "NAS-Bench-101: Towards Reproducible Neural
Architecture Search", ICML 2019.

**The cell.** A cell is a DAG of at most 7 vertices given by an upper-triangular 0/1 adjacency
matrix (``matrix[i][j] == 1`` is an edge ``i -> j``, so ``i < j``) and one op per vertex: vertex 0
is ``input``, the last vertex is ``output``, the others are one of :data:`OPS`. A cell has at most 9
edges. Vertices that are not on a path from the input to the output compute nothing; the benchmark
*prunes* them (removes their rows and columns), which can leave fewer than 7 vertices. The edge limit
is checked on the pruned cell, as the benchmark's ``is_valid`` does.

**The genotype** is :class:`NB101Spec`, a frozen (hashable) pair ``(matrix, ops)`` of nested tuples.
It is the literal spec, dangling vertices included (so that mutation can reconnect them, as in the
benchmark's own evolution code); :meth:`NB101Spec.pruned` gives the cell that is built, and
:func:`spec_hash` the benchmark's isomorphism-invariant hash, which keys its data set. Two specs
describe the same network exactly when their hashes are equal (up to an MD5 collision).

**Text form:** ``"<n*n 0/1 string>|op_0,op_1,...,op_{n-1}"``: the matrix flattened row-major, then
all ``n`` ops (``input`` and ``output`` included), comma-separated. These are the ``adjacency`` and
``ops`` columns of NASLib's NAS-Bench-101 files, joined by ``|``.

**The network** (defaults are the benchmark's: C=128, 3 stacks of 3 cells, CIFAR-10):

* stem: 3x3 conv (3 -> C, no bias) + BN + ReLU, on a ``(B, 3, H, W)`` image (H = W = 32);
* ``num_stacks`` stacks of ``cells_per_stack`` cells; before every stack but the first a 2x2 max-pool
  of stride 2 halves H and W (``same`` padding) and the channel count doubles, so the stacks see
  ``(B, C, 32, 32)``, ``(B, 2C, 16, 16)``, ``(B, 4C, 8, 8)``;
* global average pooling to ``(B, 4C)`` and a dense layer (with bias) to ``(B, num_classes)``.

Inside a cell taking ``c_in`` channels to ``c_out`` channels (:class:`NB101Cell`):

* the channel split (:func:`vertex_channels`): the ``c_out`` output channels are divided among the
  interior vertices that feed the output, the remainder going one each to the first of them; every
  other interior vertex gets the largest count among the interior vertices it feeds;
* an interior vertex sums its inputs: each interior predecessor, truncated to the vertex's channel
  count (keeping the first channels) if it has more, and, if the input feeds it, a 1x1 conv-BN-ReLU
  projection of the cell input to that count (one projection per such edge); then applies its op
  (``conv3x3-bn-relu`` / ``conv1x1-bn-relu``: conv without bias, BN, ReLU; ``maxpool3x3``: 3x3
  max-pool, stride 1, ``same`` padding);
* the output concatenates (along channels, in vertex order) the interior vertices that feed it; if
  the input feeds the output too, a 1x1 conv-BN-ReLU projection of the input to ``c_out`` is added;
  a cell whose only edge is ``input -> output`` is that projection alone.

Every BatchNorm uses the benchmark's decay 0.997 (PyTorch ``momentum=0.003``) and ``eps=1e-5``; its
scale and shift are trainable, as in TensorFlow's ``batch_normalization``. The benchmark's
``trainable_parameters`` is therefore the number of trainable parameters of :class:`NB101Network`
(:func:`param_count` gives it without building the network).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from nas.errors import GenotypeError
from nas.ir import ArchGraph
from nas.ir.onnx_writer import OnnxWriter
from search_spaces import SPACES
from search_spaces.base import Dimension

INPUT = "input"
OUTPUT = "output"
#: The interior ops, in the benchmark's canonical order (``available_ops``); the hash labels them 0, 1, 2.
OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
#: The edges ``(i, j)`` of a full 7-vertex cell, row-major: the order of :meth:`NB101Space.dimensions`.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(MAX_VERTICES) for j in range(i + 1, MAX_VERTICES))
#: BatchNorm as the benchmark configures it: TF decay 0.997 is PyTorch momentum 1 - 0.997.
BN_MOMENTUM = 0.003
BN_EPS = 1e-5

Matrix = tuple[tuple[int, ...], ...]


# --------------------------------------------------------------------------- specs


def _prune(matrix: Matrix) -> tuple[int, ...] | None:
    """The vertices on some path from the input to the output, in order; ``None`` if there is no path."""
    n = len(matrix)
    from_input = {0}
    for j in range(1, n):  # upper-triangular: predecessors come first
        if any(matrix[i][j] for i in from_input if i < j):
            from_input.add(j)
    to_output = {n - 1}
    for i in range(n - 2, -1, -1):
        if any(matrix[i][j] for j in to_output if j > i):
            to_output.add(i)
    keep = from_input & to_output
    if n - 1 not in keep or 0 not in keep:
        return None
    return tuple(sorted(keep))


def _problem(matrix: Matrix, ops: tuple[str, ...]) -> str | None:
    """Why ``(matrix, ops)`` is not a valid NAS-Bench-101 spec, or ``None`` if it is.

    ``matrix`` must already be a tuple of tuples; its entries are checked here.
    """
    n = len(matrix)
    if not 2 <= n <= MAX_VERTICES:
        return f"an NB101 cell has 2 to {MAX_VERTICES} vertices; the matrix has {n} rows"
    for i, row in enumerate(matrix):
        if len(row) != n:
            return f"the matrix must be square ({n}x{n}); row {i} has {len(row)} entries: {row}"
        for j, v in enumerate(row):
            if v not in (0, 1):
                return f"matrix entries are 0 or 1; entry ({i}, {j}) is {v!r}"
            if v and j <= i:
                return (f"the matrix must be upper triangular (edges i -> j with i < j); "
                        f"entry ({i}, {j}) is 1 in {_rows(matrix)}")
    if len(ops) != n:
        return f"a {n}x{n} matrix needs {n} ops; got {len(ops)}: {ops}"
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        return f"the first op is {INPUT!r} and the last {OUTPUT!r}; got {ops[0]!r} and {ops[-1]!r} in {ops}"
    for v, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            return f"unknown op {op!r} at vertex {v} of {ops}; NB101 interior ops are {OPS}"
    keep = _prune(matrix)
    if keep is None:
        return f"the input is not connected to the output in {_rows(matrix)}"
    edges = sum(matrix[i][j] for i in keep for j in keep)
    if edges > MAX_EDGES:
        return f"an NB101 cell has at most {MAX_EDGES} edges (after pruning); {_rows(matrix)} has {edges}"
    return None


def _rows(matrix: Matrix) -> str:
    return "[" + ", ".join("".join(str(v) for v in row) for row in matrix) + "]"


def _as_matrix(matrix: Any) -> Matrix:
    try:
        return tuple(tuple(v.item() if isinstance(v, np.generic) else v for v in row) for row in matrix)
    except TypeError as e:
        raise GenotypeError(f"an NB101 matrix is a square nested sequence of 0/1; got {matrix!r}") from e


@dataclass(frozen=True)
class NB101Spec:
    """A NAS-Bench-101 cell: an ``n x n`` upper-triangular 0/1 ``matrix`` and ``n`` ``ops``.

    Construction normalizes the matrix to a tuple of tuples of ``int`` (lists and numpy arrays are
    accepted) and raises :class:`~nas.errors.GenotypeError` unless the spec is in the space: square,
    2 to 7 vertices, entries 0/1, upper triangular, ops ``input, <OPS>..., output``, the input
    connected to the output, at most 9 edges once pruned.
    """

    matrix: Matrix
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        matrix = _as_matrix(self.matrix)
        ops = tuple(self.ops)
        problem = _problem(matrix, ops)
        if problem is not None:
            raise GenotypeError(problem)
        # frozen: normalize the fields in place once, before the value is shared
        object.__setattr__(self, "matrix", tuple(tuple(int(v) for v in row) for row in matrix))
        object.__setattr__(self, "ops", ops)

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def pruned(self) -> NB101Spec:
        """The spec without the vertices that are not on a path from the input to the output."""
        keep = _prune(self.matrix)
        assert keep is not None  # guaranteed by __post_init__
        if len(keep) == self.num_vertices:
            return self
        return NB101Spec(
            tuple(tuple(self.matrix[i][j] for j in keep) for i in keep), tuple(self.ops[i] for i in keep)
        )


def parse_spec(text: str | NB101Spec) -> NB101Spec:
    """A spec from its text form ``"<n*n 0/1 string>|op_0,...,op_{n-1}"`` (specs pass through)."""
    if isinstance(text, NB101Spec):
        return text
    if not isinstance(text, str):
        raise GenotypeError(f"cannot read an NB101 spec from {type(text).__name__} {text!r}")
    bits, sep, ops_text = text.strip().partition("|")
    if not sep or "|" in ops_text:
        raise GenotypeError(f"an NB101 spec reads '<n*n 0/1 string>|input,op,...,output'; got {text!r}")
    n = round(len(bits) ** 0.5)
    if n * n != len(bits):
        raise GenotypeError(f"the adjacency string of {text!r} has {len(bits)} characters, not a square n*n")
    bad = sorted(set(bits) - {"0", "1"})
    if bad:
        raise GenotypeError(f"the adjacency string of {text!r} may hold only 0 and 1; it holds {bad}")
    matrix = tuple(tuple(int(c) for c in bits[i * n:(i + 1) * n]) for i in range(n))
    ops = tuple(op.strip() for op in ops_text.split(","))
    return NB101Spec(matrix, ops)


def format_spec(spec: str | NB101Spec) -> str:
    """The text form of a spec (the literal spec, dangling vertices included)."""
    s = parse_spec(spec)
    return "".join(str(v) for row in s.matrix for v in row) + "|" + ",".join(s.ops)


def spec_hash(spec: str | NB101Spec) -> str:
    """NAS-Bench-101's graph hash of the pruned spec: the MD5 key of its data set.

    Each vertex starts from the MD5 of ``(out-degree, in-degree, label)``, with labels -1 for the
    input, -2 for the output and the :data:`OPS` index otherwise; then, as many times as there are
    vertices, a vertex's hash becomes the MD5 of its sorted in-neighbour hashes, its sorted
    out-neighbour hashes and its own hash. The result is the MD5 of the sorted final hashes, so it
    does not depend on how the vertices are numbered.
    """
    s = parse_spec(spec).pruned()
    m, n = s.matrix, s.num_vertices
    labels = [-1] + [OPS.index(op) for op in s.ops[1:-1]] + [-2]
    in_deg = [sum(m[i][j] for i in range(n)) for j in range(n)]
    out_deg = [sum(row) for row in m]
    # the str() of a tuple of Python ints, as the benchmark hashed it
    hashes = [_md5(str((out_deg[v], in_deg[v], labels[v]))) for v in range(n)]
    preds = [[u for u in range(n) if m[u][v]] for v in range(n)]
    succs = [[w for w in range(n) if m[v][w]] for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5("".join(sorted(hashes[u] for u in preds[v])) + "|"
                 + "".join(sorted(hashes[w] for w in succs[v])) + "|" + hashes[v])
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def vertex_channels(c_in: int, c_out: int, matrix: Matrix) -> list[int]:
    """The output channel count of every vertex of a pruned cell taking ``c_in`` to ``c_out`` channels.

    The ``c_out`` channels are split evenly among the interior vertices feeding the output, the
    first ``c_out mod k`` of them getting one more; going backwards, each other interior vertex
    takes the largest count among the interior vertices it feeds. Counts therefore never grow along
    an interior edge, which is what lets a larger input be truncated.
    """
    n = len(matrix)
    ch = [0] * n
    ch[0], ch[n - 1] = c_in, c_out
    if n == 2:
        return ch
    feeds_out = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    base, extra = divmod(c_out, len(feeds_out))
    for k, v in enumerate(feeds_out):
        ch[v] = base + (k < extra)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            ch[v] = max([ch[d] for d in range(v + 1, n - 1) if matrix[v][d]], default=0)
    return ch


def param_count(spec: str | NB101Spec, stem_channels: int = 128, num_stacks: int = 3, cells_per_stack: int = 3,
                num_classes: int = 10) -> int:
    """The trainable parameters of :class:`NB101Network`, counted without building it.

    A conv-BN-ReLU from ``a`` to ``b`` channels with a ``k x k`` kernel has ``k*k*a*b + 2*b``
    (no conv bias; BN scale and shift); the dense layer has ``(C_last + 1) * num_classes``.

    The count belongs to the numbered spec, not to its hash: the remainder channels go to the
    lowest-numbered vertices, so two relabellings of one cell can differ by a few thousand parameters.
    """
    s = parse_spec(spec).pruned()
    m, n = s.matrix, s.num_vertices

    def cbr(k: int, a: int, b: int) -> int:
        return k * k * a * b + 2 * b

    total = cbr(3, 3, stem_channels)
    c_in = c = stem_channels
    for stack in range(num_stacks):
        if stack > 0:
            c *= 2
        for _ in range(cells_per_stack):
            ch = vertex_channels(c_in, c, m)
            total += sum(cbr(1, c_in, ch[t]) for t in range(1, n) if m[0][t])
            for t in range(1, n - 1):
                if s.ops[t] != "maxpool3x3":
                    total += cbr(3 if s.ops[t] == "conv3x3-bn-relu" else 1, ch[t], ch[t])
            c_in = c
    return total + (c + 1) * num_classes


# --------------------------------------------------------------------------- PyTorch network


class _ConvBnRelu(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )


def _vertex_op(op: str, c: int) -> nn.Module:
    if op == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    return _ConvBnRelu(c, c, 3 if op == "conv3x3-bn-relu" else 1)


class NB101Cell(nn.Module):
    """One NAS-Bench-101 cell (a pruned spec): ``(B, c_in, H, W) -> (B, c_out, H, W)``."""

    def __init__(self, spec: NB101Spec, c_in: int, c_out: int) -> None:
        super().__init__()
        m, n = spec.matrix, spec.num_vertices
        self.spec = spec
        self.channels = vertex_channels(c_in, c_out, m)
        # per vertex: (predecessor, channels to keep or None) for the interior predecessors
        self.sources = [[(u, self.channels[t] if self.channels[u] > self.channels[t] else None)
                         for u in range(1, t) if m[u][t]] for t in range(n)]
        self.to_output = [v for v in range(1, n - 1) if m[v][n - 1]]
        self.projections = nn.ModuleDict(
            {str(t): _ConvBnRelu(c_in, self.channels[t], 1) for t in range(1, n) if m[0][t]}
        )
        self.vertex_ops = nn.ModuleList(_vertex_op(spec.ops[t], self.channels[t]) for t in range(1, n - 1))

    def forward(self, x: Tensor) -> Tensor:
        n = self.spec.num_vertices
        values = [x]
        for t in range(1, n - 1):
            terms = [values[u] if keep is None else values[u][:, :keep] for u, keep in self.sources[t]]
            if str(t) in self.projections:
                terms.append(self.projections[str(t)](x))
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            values.append(self.vertex_ops[t - 1](total))
        if not self.to_output:
            return self.projections[str(n - 1)](x)
        feeding = [values[v] for v in self.to_output]
        out = feeding[0] if len(feeding) == 1 else torch.cat(feeding, dim=1)  # (B, c_out, H, W)
        if str(n - 1) in self.projections:
            out = out + self.projections[str(n - 1)](x)
        return out


class NB101Network(nn.Module):
    """The NAS-Bench-101 network of a spec: ``(B, 3, H, W) -> (B, num_classes)`` logits.

    The spec is pruned first, as the benchmark does before building.
    """

    def __init__(self, spec: NB101Spec, stem_channels: int = 128, num_stacks: int = 3, cells_per_stack: int = 3,
                 num_classes: int = 10) -> None:
        super().__init__()
        self.spec = spec.pruned()
        self.stem = _ConvBnRelu(3, stem_channels, 3)
        layers: list[nn.Module] = []
        c_in = c = stem_channels
        for stack in range(num_stacks):
            if stack > 0:
                # ceil_mode is TF's 'same' padding for a 2x2/2 pool on an odd size; no-op on even sizes
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                c *= 2
            for _ in range(cells_per_stack):
                layers.append(NB101Cell(self.spec, c_in, c))
                c_in = c
        self.cells = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cells(self.stem(x))
        return self.classifier(self.pool(x).flatten(1))  # (B, C_last, 1, 1) -> (B, C_last)


# --------------------------------------------------------------------------- direct ONNX graph


class _OnnxBuilder(OnnxWriter):
    """Writes the same network as :class:`NB101Network` with ``onnx.helper``, in milliseconds
    (structure-only, see :mod:`nas.ir.onnx_writer`). For a file with weights, export :meth:`NB101Space.to_module`.
    """

    def conv_bn_relu(self, x: str, c_in: int, c_out: int, k: int) -> str:
        x = self.conv(x, c_in, c_out, k, pad=k // 2)
        return self.node("Relu", [self.batch_norm(x, c_out, BN_EPS, 1 - BN_MOMENTUM, base="w")])

    def cell(self, spec: NB101Spec, x: str, c_in: int, c_out: int) -> str:
        m, n = spec.matrix, spec.num_vertices
        ch = vertex_channels(c_in, c_out, m)
        values = [x]
        for t in range(1, n - 1):
            terms = []
            for u in range(1, t):
                if m[u][t]:
                    v = values[u]
                    if ch[u] > ch[t]:
                        v = self.node("Slice", [v, self.const([0]), self.const([ch[t]]), self.const([1]),
                                                self.const([1])])
                    terms.append(v)
            if m[0][t]:
                terms.append(self.conv_bn_relu(x, c_in, ch[t], 1))
            total = terms[0] if len(terms) == 1 else self.node("Sum", terms)
            if spec.ops[t] == "maxpool3x3":
                values.append(self.node("MaxPool", [total], kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4))
            else:
                values.append(self.conv_bn_relu(total, ch[t], ch[t], 3 if spec.ops[t] == "conv3x3-bn-relu" else 1))
        feeding = [values[v] for v in range(1, n - 1) if m[v][n - 1]]
        if not feeding:
            return self.conv_bn_relu(x, c_in, c_out, 1)
        out = feeding[0] if len(feeding) == 1 else self.node("Concat", feeding, axis=1)
        if m[0][n - 1]:
            out = self.node("Add", [out, self.conv_bn_relu(x, c_in, c_out, 1)])
        return out

    def build(self, spec: NB101Spec, space: NB101Space, batch: int) -> onnx.ModelProto:
        x = self.conv_bn_relu("input", 3, space.stem_channels, 3)
        c_in = c = space.stem_channels
        for stack in range(space.num_stacks):
            if stack > 0:
                x = self.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2], pads=[0] * 4, ceil_mode=1)
                c *= 2
            for _ in range(space.cells_per_stack):
                x = self.cell(spec, x, c_in, c)
                c_in = c
        self.gemm_output(self.node("GlobalAveragePool", [x]), c, space.num_classes)
        size = space.input_size
        return self.model("nb101", [batch, 3, size, size], [batch, space.num_classes])


# --------------------------------------------------------------------------- the space


@dataclass(frozen=True)
class NB101Space:
    """The NAS-Bench-101 space (423,624 distinct cells; not enumerated here).

    ``stem_channels``, ``num_stacks``, ``cells_per_stack`` default to the benchmark's 128, 3, 3;
    ``num_classes`` and ``input_size`` to CIFAR-10's 10 and 32.
    """

    stem_channels: int = 128
    num_stacks: int = 3
    cells_per_stack: int = 3
    num_classes: int = 10
    input_size: int = 32
    name: str = "nb101"

    def dimensions(self) -> list[Dimension]:
        """The 21 edge bits of a 7-vertex cell (row-major, :data:`EDGES`), then the 5 interior ops."""
        return ([Dimension(f"edge_{i}_{j}", (0, 1)) for i, j in EDGES]
                + [Dimension(f"op_{v}", OPS) for v in range(1, MAX_VERTICES - 1)])

    def sample(self, rng: np.random.Generator) -> NB101Spec:
        """A pruned spec, drawn as the benchmark's random search draws: 21 fair edge bits and 5
        uniform ops for a 7-vertex cell, redrawn until the cell is valid.

        This is uniform over valid 7-vertex specs, not over the 423,624 distinct cells: about one
        draw in ten prunes to the bare ``input -> output`` cell."""
        n = MAX_VERTICES
        while True:
            bits = rng.integers(0, 2, size=len(EDGES))
            ops = (INPUT, *(OPS[int(k)] for k in rng.integers(0, len(OPS), size=n - 2)), OUTPUT)
            rows = [[0] * n for _ in range(n)]
            for (i, j), b in zip(EDGES, bits, strict=True):
                rows[i][j] = int(b)
            matrix = tuple(map(tuple, rows))
            if _problem(matrix, ops) is None:
                return NB101Spec(matrix, ops).pruned()

    def mutate(self, genotype: str | NB101Spec, rng: np.random.Generator) -> NB101Spec:
        """A pruned spec that computes a different network (another :func:`spec_hash`), one edge flip
        or op change away, walking over neutral changes if need be.

        The spec is first placed in a 7-vertex frame: a smaller one gets unconnected vertices (ops
        drawn from ``rng``) at ``rng``-drawn interior positions. Then one of the 26 :meth:`dimensions`
        is drawn uniformly and changed (an edge bit flipped, or an op replaced by one of the other
        two): a result outside the space is dropped and another change drawn; a valid result that
        computes the same network (it only touches vertices off every input-output path) is kept and
        the walk goes on from it, which is how a new vertex gets both an in- and an out-edge; the
        first valid result with a new hash is returned, pruned. From a fully connected 7-vertex cell
        that is always a single change.
        """
        spec = parse_spec(genotype)
        before = spec_hash(spec)
        matrix, ops = self._framed(spec, rng)
        n = MAX_VERTICES
        moves: list[tuple[int, int]] = [*EDGES, *((v, -1) for v in range(1, n - 1))]
        for _ in range(100_000):  # a walk ends in a few steps; the bound only guards against a bug
            i, j = moves[int(rng.integers(len(moves)))]
            rows, new_ops = [list(r) for r in matrix], list(ops)
            if j >= 0:
                rows[i][j] ^= 1
            else:
                others = [op for op in OPS if op != ops[i]]
                new_ops[i] = others[int(rng.integers(len(others)))]
            cand_m, cand_ops = tuple(map(tuple, rows)), tuple(new_ops)
            if _problem(cand_m, cand_ops) is not None:
                continue
            cand = NB101Spec(cand_m, cand_ops)
            if spec_hash(cand) != before:
                return cand.pruned()
            matrix, ops = cand_m, cand_ops
        raise GenotypeError(f"mutating NB101 spec {format_spec(spec)} found no different cell")

    @staticmethod
    def _framed(spec: NB101Spec, rng: np.random.Generator) -> tuple[Matrix, tuple[str, ...]]:
        """The spec with unconnected vertices added at random interior positions up to 7 vertices."""
        n, k = spec.num_vertices, MAX_VERTICES - spec.num_vertices
        if k == 0:
            return spec.matrix, spec.ops
        new = sorted(int(p) + 1 for p in rng.choice(MAX_VERTICES - 2, size=k, replace=False))
        kept = [p for p in range(1, MAX_VERTICES - 1) if p not in new]
        where = [0, *kept, MAX_VERTICES - 1]  # old vertex v goes to where[v]
        rows = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
        for i, j in itertools.product(range(n), repeat=2):
            rows[where[i]][where[j]] = spec.matrix[i][j]
        ops = [OPS[int(x)] for x in rng.integers(0, len(OPS), size=MAX_VERTICES)]
        ops[0], ops[-1] = INPUT, OUTPUT
        for v in range(1, n - 1):
            ops[where[v]] = spec.ops[v]
        return tuple(map(tuple, rows)), tuple(ops)

    def parse(self, text: str | NB101Spec) -> NB101Spec:
        return parse_spec(text)

    def format(self, genotype: str | NB101Spec) -> str:
        return format_spec(genotype)

    def canonical(self, genotype: str | NB101Spec) -> str:
        """The benchmark's hash: equal exactly for specs that build the same network."""
        return spec_hash(genotype)

    def param_count(self, genotype: str | NB101Spec) -> int:
        """Trainable parameters of :meth:`to_module` (NAS-Bench-101's ``trainable_parameters``)."""
        return param_count(genotype, self.stem_channels, self.num_stacks, self.cells_per_stack, self.num_classes)

    def to_onnx(self, genotype: str | NB101Spec, batch: int = 1) -> onnx.ModelProto:
        """The network as an ONNX model built directly with ``onnx.helper`` (no torch export)."""
        return _OnnxBuilder().build(parse_spec(genotype).pruned(), self, batch)

    def to_graph(self, genotype: str | NB101Spec, batch: int = 1) -> ArchGraph:
        return ArchGraph.from_onnx(self.to_onnx(genotype, batch))

    def to_module(self, genotype: str | NB101Spec) -> NB101Network:
        return NB101Network(parse_spec(genotype), self.stem_channels, self.num_stacks, self.cells_per_stack,
                            self.num_classes)

    def example_input_shape(self, batch: int = 1, genotype: NB101Spec | None = None) -> tuple[int, int, int, int]:
        return (batch, 3, self.input_size, self.input_size)


SPACES.register("nb101")(NB101Space)
