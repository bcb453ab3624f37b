"""NAS-Bench-101: specs, pruning, the graph hash, the channel split, and the network against ground truth."""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import GenotypeError
from nas.ir import ArchGraph
from search_spaces import SPACES, FiniteSearchSpace, SearchSpace
from search_spaces.nb101 import (
    EDGES,
    OPS,
    NB101Network,
    NB101Space,
    NB101Spec,
    format_spec,
    param_count,
    parse_spec,
    spec_hash,
    vertex_channels,
)

C3, C1, MP = OPS

# The first row of NASLib's nasbench101_zc_naslib.csv: vertex 6 is dangling (no out-edge).
ROW0 = ("0111101000001100000010000110000001100000000000000"
        "|input,maxpool3x3,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,output")
# A row of the official data set: its hash and its trainable_parameters.
OFFICIAL = NB101Spec(
    ((0, 1, 0, 0, 1, 1, 0), (0, 0, 1, 0, 0, 0, 0), (0, 0, 0, 1, 0, 0, 1), (0, 0, 0, 0, 0, 1, 0),
     (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 0)),
    ("input", C3, MP, C3, C3, C1, "output"),
)
OFFICIAL_HASH = "00005c142e6f48ac74fdcf73e3439874"
OFFICIAL_PARAMS = 8_555_530
# The nasbench README's Inception-like query, and the relabelled spec the data set answers it with.
README_QUERY = NB101Spec(
    ((0, 1, 1, 1, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 1, 0, 0),
     (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 0)),
    ("input", C1, C3, C3, C3, MP, "output"),
)
README_ANSWER = NB101Spec(
    ((0, 1, 1, 1, 1, 0, 0), (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 1),
     (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 0)),
    ("input", C3, C1, MP, C3, C3, "output"),
)
README_PARAMS = 2_694_282
# Three branches into the output (43/43/42 channels at C=128) and a 43 -> 42 interior edge that
# truncates, plus input -> output: every rule of the cell at once.
TRUNCATING = "0111100101000110000100000|input,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,output"
IDENTITY_CELL = "0100|input,output"


@pytest.fixture(scope="module")
def space() -> NB101Space:
    return NB101Space()


@pytest.fixture(scope="module")
def table(data_dir: Path) -> list[dict[str, str]]:
    with open(data_dir / "other_spaces" / "nasbench101_zc_naslib.csv", newline="") as f:
        return list(csv.DictReader(f))


def _text(row: dict[str, str]) -> str:
    return row["adjacency"] + "|" + row["ops"]


def _relabel(spec: NB101Spec, perm: tuple[int, ...]) -> NB101Spec:
    """The spec with vertex ``v`` renamed ``perm[v]``."""
    n = spec.num_vertices
    m = [[0] * n for _ in range(n)]
    for i, j in itertools.product(range(n), repeat=2):
        m[perm[i]][perm[j]] = spec.matrix[i][j]
    ops = [""] * n
    for v in range(n):
        ops[perm[v]] = spec.ops[v]
    return NB101Spec(tuple(map(tuple, m)), tuple(ops))


def _topological_relabellings(spec: NB101Spec) -> list[tuple[int, ...]]:
    """The interior permutations that keep the matrix upper triangular (other topological orders)."""
    n = spec.num_vertices
    out = []
    for inner in itertools.permutations(range(1, n - 1)):
        perm = (0, *inner, n - 1)
        if all(perm[i] < perm[j] for i in range(n) for j in range(n) if spec.matrix[i][j]):
            out.append(perm)
    return out


# --------------------------------------------------------------------------- the space and its genotypes


def test_registered_and_protocol(space: NB101Space) -> None:
    assert isinstance(SPACES.resolve("nb101"), NB101Space)
    assert isinstance(space, SearchSpace)
    assert not isinstance(space, FiniteSearchSpace)
    assert space.name == "nb101"
    dims = space.dimensions()
    assert len(dims) == 26
    assert [d.name for d in dims[:3]] == ["edge_0_1", "edge_0_2", "edge_0_3"]
    assert [d.choices for d in dims] == [(0, 1)] * 21 + [OPS] * 5
    assert space.example_input_shape(4) == (4, 3, 32, 32)
    assert NB101Space(input_size=16).example_input_shape() == (1, 3, 16, 16)


def test_parse_format_roundtrip(space: NB101Space) -> None:
    g = space.parse(ROW0)
    assert space.format(g) == ROW0
    assert g.num_vertices == 7 and g.matrix[0] == (0, 1, 1, 1, 1, 0, 1)
    assert g.ops == ("input", MP, MP, C3, C3, C3, "output")
    assert space.parse(g) is g
    for text in (TRUNCATING, IDENTITY_CELL, "001001000|input,conv1x1-bn-relu,output"):
        assert format_spec(parse_spec(text)) == text
    # lists and numpy arrays normalize to the same hashable value
    arr = NB101Spec(np.array(OFFICIAL.matrix), list(OFFICIAL.ops))  # type: ignore[arg-type]
    assert arr == OFFICIAL and hash(arr) == hash(OFFICIAL)
    assert all(type(v) is int for row in arr.matrix for v in row)
    assert len({OFFICIAL, arr, README_QUERY}) == 2


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0100", r"'<n\*n 0/1 string>\|"),
        ("010|input,output", "3 characters, not a square"),
        ("0120|input,output", r"only 0 and 1; it holds \['2'\]"),
        ("0110|input,output", r"upper triangular.*entry \(1, 0\)"),
        ("1100|input,output", r"upper triangular.*entry \(0, 0\)"),
        ("0" * 64 + "|input,output", "2 to 7 vertices; the matrix has 8 rows"),
        ("0100|input,conv3x3-bn-relu,output", "needs 2 ops; got 3"),
        ("001001000|input,conv5x5-bn-relu,output", "unknown op 'conv5x5-bn-relu' at vertex 1"),
        ("001001000|output,conv3x3-bn-relu,input", "got 'output' and 'input'"),
        ("010000000|input,conv3x3-bn-relu,output", r"not connected to the output in \[010, 000, 000\]"),
        # 10 edges, all on input-output paths
        ("0111110" "0000001" "0000001" "0000001" "0000001" "0000001" "0000000"
         "|input,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output",
         "at most 9 edges.*has 10"),
    ],
)
def test_invalid_specs_raise(text: str, match: str) -> None:
    with pytest.raises(GenotypeError, match=match):
        parse_spec(text)


def test_invalid_matrix_values_raise() -> None:
    with pytest.raises(GenotypeError, match=r"entry \(0, 1\) is 2"):
        NB101Spec(((0, 2), (0, 0)), ("input", "output"))
    with pytest.raises(GenotypeError, match="square"):
        NB101Spec(((0, 1, 0), (0, 0)), ("input", "output"))  # type: ignore[arg-type]
    with pytest.raises(GenotypeError, match="NB101 spec"):
        parse_spec(42)  # type: ignore[arg-type]


def test_edge_limit_is_checked_after_pruning() -> None:
    # 11 literal edges; vertex 4 feeds nothing, so it goes, and so do 2 and 3, which only feed 4.
    text = ("0111111" "0000101" "0000100" "0000100" "0000000" "0000001" "0000000"
            "|input,conv3x3-bn-relu,conv1x1-bn-relu,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,output")
    g = parse_spec(text)
    assert g.num_edges == 11
    assert g.pruned() == parse_spec("0111" "0001" "0001" "0000" "|input,conv3x3-bn-relu,conv3x3-bn-relu,output")


def test_pruning_removes_dangling_vertices() -> None:
    g = parse_spec(ROW0)
    p = g.pruned()
    assert p.num_vertices == 6  # vertex 6 has no way to the output
    assert p.ops == (*g.ops[:5], "output")
    assert p.pruned() is p
    assert spec_hash(g) == spec_hash(p)
    assert param_count(g) == param_count(p)
    # nothing feeds vertex 1 and vertex 3 feeds nothing: input -> 2 -> output is left
    dangling = parse_spec("0010000010000010000000000|input,conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu,output")
    assert dangling.pruned() == parse_spec("010001000|input,maxpool3x3,output")
    # only the input -> output edge survives
    only_skip = parse_spec("0111000000000000|input,conv3x3-bn-relu,conv1x1-bn-relu,output")
    assert only_skip.pruned() == parse_spec(IDENTITY_CELL)


# --------------------------------------------------------------------------- the graph hash


def test_hash_matches_the_benchmark() -> None:
    assert spec_hash(OFFICIAL) == OFFICIAL_HASH
    # the data set answers the README's query with an isomorphic relabelling of it
    assert README_QUERY != README_ANSWER
    assert spec_hash(README_QUERY) == spec_hash(README_ANSWER)
    assert spec_hash(README_QUERY) != OFFICIAL_HASH


def test_hash_is_invariant_to_relabelling_and_separates_specs() -> None:
    rng = np.random.default_rng(5)
    space = NB101Space()
    checked = 0
    for _ in range(30):
        g = space.sample(rng)
        h = spec_hash(g)
        for perm in _topological_relabellings(g)[:6]:
            r = _relabel(g, perm)
            assert spec_hash(r) == h
            checked += r != g
        if g.num_vertices > 2:  # one op changed: a different network
            ops = list(g.ops)
            ops[1] = OPS[(OPS.index(ops[1]) + 1) % 3]
            assert spec_hash(NB101Spec(g.matrix, tuple(ops))) != h
    assert checked >= 20
    # same ops and edge count, different wiring
    chain = parse_spec("0100" "0010" "0001" "0000" "|input,conv3x3-bn-relu,conv1x1-bn-relu,output")
    fork = parse_spec("0110" "0001" "0001" "0000" "|input,conv3x3-bn-relu,conv1x1-bn-relu,output")
    assert spec_hash(chain) != spec_hash(fork)


# --------------------------------------------------------------------------- the network


def _m(rows: str) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(c) for c in r) for r in rows.split())


@pytest.mark.parametrize(
    ("matrix", "c_in", "c_out", "expected"),
    [  # test vectors of the benchmark's own model_builder tests
        ("0100 0010 0001 0000", 8, 16, [8, 16, 16, 16]),
        ("0100 0010 0001 0000", 16, 8, [16, 8, 8, 8]),
        ("01 00", 1, 5, [1, 5]),
        ("01100 00010 00010 00001 00000", 8, 16, [8, 16, 16, 16, 16]),
        ("0110 0001 0001 0000", 8, 15, [8, 8, 7, 15]),
        ("01110 00001 00001 00001 00000", 8, 8, [8, 3, 3, 2, 8]),
        ("01110 00001 00001 00001 00000", 8, 15, [8, 5, 5, 5, 15]),
        ("01000 00110 00001 00001 00000", 8, 9, [8, 5, 5, 4, 9]),
        ("01010 00101 00010 00001 00000", 8, 15, [8, 8, 7, 7, 15]),
    ],
)
def test_vertex_channels(matrix: str, c_in: int, c_out: int, expected: list[int]) -> None:
    assert vertex_channels(c_in, c_out, _m(matrix)) == expected


def test_known_parameter_counts(space: NB101Space) -> None:
    torch.set_num_threads(1)
    for spec, params in ((OFFICIAL, OFFICIAL_PARAMS), (README_QUERY, README_PARAMS), (README_ANSWER, README_PARAMS)):
        module = space.to_module(spec)
        assert sum(p.numel() for p in module.parameters() if p.requires_grad) == params == space.param_count(spec)


def test_isomorphic_specs_can_differ_in_parameters() -> None:
    # The remainder channel goes to the lowest-numbered vertex, so swapping which branch comes first
    # moves a channel between a 3x3 and a 1x1 conv: same hash, different network size.
    a = parse_spec("0111000001000010000100000|input,conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu,output")
    b = parse_spec("0111000001000010000100000|input,conv1x1-bn-relu,maxpool3x3,conv3x3-bn-relu,output")
    assert spec_hash(a) == spec_hash(b)
    assert param_count(a) - param_count(b) == 14328


def test_bn_settings_and_structure(space: NB101Space) -> None:
    torch.set_num_threads(1)
    module = NB101Space(stem_channels=16).to_module(TRUNCATING)
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.003 and m.eps == 1e-5 and m.affine for m in bns)
    assert not any(m.bias is not None for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    cells = [m for m in module.cells if not isinstance(m, torch.nn.MaxPool2d)]
    assert len(cells) == 9
    assert [c.channels for c in cells[:2]] == [[16, 6, 5, 5, 16], [16, 6, 5, 5, 16]]  # 6 -> 5: truncated
    assert cells[3].channels == [16, 11, 11, 10, 32]  # first cell of stack 2: 16 in, 32 out


@pytest.mark.parametrize("text", [TRUNCATING, IDENTITY_CELL, ROW0, format_spec(OFFICIAL)])
def test_forward_shapes(text: str) -> None:
    torch.set_num_threads(1)
    space = NB101Space(stem_channels=8)
    out = space.to_module(text)(torch.randn(2, *space.example_input_shape()[1:]))
    assert out.shape == (2, 10)
    # an odd size pools with TF's 'same' padding (30 -> 15 -> 8); 100 classes
    odd = NB101Space(stem_channels=8, num_classes=100, input_size=30)
    assert odd.to_module(text)(torch.randn(3, 3, 30, 30)).shape == (3, 100)


def test_cell_truncates_to_the_first_channels() -> None:
    torch.set_num_threads(1)
    cell = NB101Space(stem_channels=16).to_module(TRUNCATING).cells[0].eval()
    assert cell.channels == [16, 6, 5, 5, 16]
    seen: dict[str, torch.Tensor] = {}
    # vertex 2 sums vertex 1 (6 channels, cut to its first 5) and the projection of the cell input
    cell.vertex_ops[0].register_forward_hook(lambda _m, _a, out: seen.setdefault("v1", out))
    cell.vertex_ops[1].register_forward_pre_hook(lambda _m, args: seen.setdefault("v2_in", args[0]))
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        out = cell(x)
        expected = seen["v1"][:, :5] + cell.projections["2"](x)
    assert seen["v1"].shape[1] == 6 and out.shape == (1, 16, 8, 8)
    torch.testing.assert_close(seen["v2_in"], expected)


def test_params_match_the_table_on_all_500(space: NB101Space, table: list[dict[str, str]]) -> None:
    """The key figure: our trainable parameters equal the table's ``params`` (millions, 6 decimals)."""
    assert len(table) == 500
    matches = sum(round(space.param_count(_text(r)) / 1e6, 6) == float(r["params"]) for r in table)
    assert matches == 500
    # the table counts the literal (labelled) spec: three hash classes carry two different counts,
    # and the channel split reproduces both
    by_hash: dict[str, set[str]] = defaultdict(set)
    for r in table:
        by_hash[spec_hash(_text(r))].add(r["params"])
    assert len(by_hash) == 292
    assert sum(len(v) > 1 for v in by_hash.values()) == 3


def test_module_params_match_the_table_on_a_subset(space: NB101Space, table: list[dict[str, str]]) -> None:
    torch.set_num_threads(1)
    rows = table[::25]  # 20 rows
    sizes = {parse_spec(_text(r)).pruned().num_vertices for r in rows}
    assert sizes >= {2, 3, 4, 5, 6}
    for r in rows:
        module = space.to_module(_text(r))
        ours = sum(p.numel() for p in module.parameters() if p.requires_grad)
        assert ours == space.param_count(_text(r))
        assert round(ours / 1e6, 6) == float(r["params"]), _text(r)


@pytest.mark.slow
def test_module_params_match_the_table_on_all_500(space: NB101Space, table: list[dict[str, str]]) -> None:
    torch.set_num_threads(1)
    matches = 0
    for r in table:
        module = space.to_module(_text(r))
        matches += round(sum(p.numel() for p in module.parameters() if p.requires_grad) / 1e6, 6) == float(r["params"])
    assert matches == 500


def test_direct_graph_equals_exported_module() -> None:
    torch.set_num_threads(1)
    space = NB101Space(stem_channels=8)
    x = torch.zeros(space.example_input_shape(1))
    specs = [TRUNCATING, IDENTITY_CELL, ROW0, format_spec(OFFICIAL)]
    rng = np.random.default_rng(11)
    specs += [format_spec(space.sample(rng)) for _ in range(3)]
    for text in specs:
        direct = space.to_graph(text)
        exported = ArchGraph.from_module(space.to_module(text), x)
        assert direct.fingerprint() == exported.fingerprint(), text
        assert direct.params == exported.params == space.param_count(text)
        assert direct.flops == exported.flops
    assert space.to_graph(README_QUERY).fingerprint() != space.to_graph(OFFICIAL).fingerprint()
    assert "Slice" in space.to_graph(TRUNCATING).summary()["op_counts"]


def test_default_graph_params(space: NB101Space) -> None:
    assert space.to_graph(OFFICIAL).params == OFFICIAL_PARAMS


# --------------------------------------------------------------------------- sample and mutate


def test_sample_is_seeded_valid_and_pruned(space: NB101Space) -> None:
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    gs = [space.sample(rng) for _ in range(300)]
    for g in gs:
        assert g.pruned() == g
        assert parse_spec(format_spec(g)) == g
        assert g.num_edges <= 9
    assert {g.num_vertices for g in gs} >= {2, 3, 4, 5, 6}
    assert {op for g in gs for op in g.ops[1:-1]} == set(OPS)
    assert len({spec_hash(g) for g in gs}) > 150


def test_mutate_changes_the_network_and_is_seeded(space: NB101Space) -> None:
    rng = np.random.default_rng(1)
    g = parse_spec(ROW0)
    for _ in range(60):
        before = format_spec(g)
        m = space.mutate(g, rng)
        assert format_spec(g) == before  # the argument is a value: nothing to mutate in place
        assert spec_hash(m) != spec_hash(g)
        assert m.pruned() == m
        assert parse_spec(format_spec(m)) == m
        g = m
    same = [space.mutate(g, np.random.default_rng(3)) for _ in range(2)]
    assert same[0] == same[1]


def test_mutate_from_a_full_cell_is_one_change(space: NB101Space) -> None:
    rng = np.random.default_rng(4)
    assert OFFICIAL.pruned() == OFFICIAL
    full = 0
    for _ in range(40):
        m = space.mutate(OFFICIAL, rng)
        if m.num_vertices == 7:  # no vertex cut off, so the frames line up
            full += 1
            bits = sum(a != b for ra, rb in zip(OFFICIAL.matrix, m.matrix, strict=True)
                       for a, b in zip(ra, rb, strict=True))
            assert bits + sum(a != b for a, b in zip(OFFICIAL.ops, m.ops, strict=True)) == 1
    assert full >= 20


def test_mutate_can_add_vertices(space: NB101Space) -> None:
    rng = np.random.default_rng(2)
    chain = parse_spec("0100" "0010" "0001" "0000" "|input,conv3x3-bn-relu,maxpool3x3,output")
    sizes = [space.mutate(chain, rng).num_vertices for _ in range(100)]
    assert {4, 5} <= set(sizes)  # an edge or op changed; a vertex added
    # input -> output alone: every single change is invalid or idle, the walk adds a vertex
    grown = space.mutate(parse_spec(IDENTITY_CELL), rng)
    assert grown.num_vertices == 3
    assert len(EDGES) == 21


def test_network_class_prunes(space: NB101Space) -> None:
    torch.set_num_threads(1)
    net = NB101Network(parse_spec(ROW0), stem_channels=8)
    assert net.spec == parse_spec(ROW0).pruned()
