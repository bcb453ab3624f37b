"""DARTS / NAS-Bench-301: genotype forms, sampling and mutation, the network, and NASLib's parameter counts."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import GenotypeError, NasError
from nas.ir import ArchGraph
from search_spaces import SPACES, FiniteSearchSpace, SearchSpace
from search_spaces.darts import (
    NASLIB_ZC,
    OPS,
    DartsGenotype,
    DartsSpace,
    canonical_form,
    format_genotype,
    from_columns,
    from_compact,
    parse_genotype,
    to_compact,
)

# DARTS (second order), from the paper's released genotypes; 3,349,342 parameters at C=36, 20 cells
# without the auxiliary head (the "param size = 3.349342MB" of the DARTS evaluation logs).
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
V2_NORMAL = (
    "sep_conv_3x3~0;sep_conv_3x3~1;sep_conv_3x3~0;sep_conv_3x3~1;sep_conv_3x3~1;skip_connect~0;skip_connect~0;dil_conv_3x3~2"
)
V2_REDUCE = (
    "max_pool_3x3~0;max_pool_3x3~1;skip_connect~2;max_pool_3x3~1;max_pool_3x3~0;skip_connect~2;skip_connect~2;max_pool_3x3~1"
)
V2_COMPACT = "[[(0,3),(1,3),(0,3),(1,3),(1,3),(0,2),(0,2),(2,5)],[(0,0),(1,0),(2,2),(1,0),(0,0),(2,2),(2,2),(1,0)]]"


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def space() -> DartsSpace:
    return DartsSpace()


@pytest.fixture(scope="module")
def small() -> DartsSpace:
    return DartsSpace(c=4, layers=5)


@pytest.fixture(scope="module")
def nb301_rows(data_dir: Path) -> list[dict[str, str]]:
    path = data_dir / "other_spaces" / "nasbench301_zc_naslib.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 725
    return rows


def _table_params(row: dict[str, str]) -> int:
    # the column is millions with 6 decimals (trailing zeros dropped), so it is an exact count
    return round(float(row["params"]) * 1e6)


# --------------------------------------------------------------------------- registry and genotype forms


def test_registered_and_protocols(space: DartsSpace) -> None:
    assert isinstance(SPACES.resolve("darts"), DartsSpace)
    assert isinstance(SPACES.resolve("nb301"), DartsSpace)
    assert isinstance(space, SearchSpace)
    assert not isinstance(space, FiniteSearchSpace)
    assert space.name == "darts"
    dims = space.dimensions()
    assert len(dims) == 24
    assert dims[0].name == "normal_node0_inputs" and dims[0].choices == ((0, 1), (1, 0))
    assert dims[9].name == "normal_node3_inputs" and len(dims[9].choices) == 5 * 4  # ordered pairs of 0..4
    assert dims[1].choices == OPS == dims[2].choices
    assert space.example_input_shape(2) == (2, 3, 32, 32)


def test_all_text_forms_agree() -> None:
    g = parse_genotype(DARTS_V2)
    assert g == from_columns(V2_NORMAL, V2_REDUCE) == parse_genotype(V2_COMPACT)
    assert g == parse_genotype(f"{V2_NORMAL},{V2_REDUCE}") == parse_genotype(f"{V2_NORMAL}|{V2_REDUCE}")
    text = format_genotype(g)
    assert text == f"normal={V2_NORMAL}|reduce={V2_REDUCE}"
    assert parse_genotype(text) == g
    assert parse_genotype(f"  normal = {V2_NORMAL} | reduce = {V2_REDUCE} ") == g
    assert to_compact(g) == ast.literal_eval(V2_COMPACT.replace("[", "(").replace("]", ")"))
    assert g.normal[7] == ("dil_conv_3x3", 2)


def test_csv_forms_agree_on_every_row(space: DartsSpace, nb301_rows: list[dict[str, str]]) -> None:
    # both encodings describe the same genotype on every row: this fixes NASLib's op-index order and
    # that its pairs are (input, op) while the columns write op~input
    for row in nb301_rows:
        g = from_columns(row["genotype_normal"], row["genotype_reduce"])
        compact = ast.literal_eval(row["naslib_compact"])
        assert from_compact(compact) == g == space.parse(row["naslib_compact"])
        assert [list(c) for c in to_compact(g)] == [[tuple(p) for p in c] for c in compact]
        assert space.parse(f"{row['genotype_normal']},{row['genotype_reduce']}") == g
        text = space.format(g)
        assert text == f"normal={row['genotype_normal']}|reduce={row['genotype_reduce']}"
        assert space.parse(text) == g


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("sep_conv_3x3~0", "cannot read"),
        (f"normal={V2_NORMAL}|reduce={V2_REDUCE};skip_connect~1", "8 'op~input'"),
        (f"normal={V2_NORMAL.replace('dil_conv_3x3', 'conv_7x7')}|reduce={V2_REDUCE}", "conv_7x7"),
        (f"normal={V2_NORMAL.replace('~2', '~5')}|reduce={V2_REDUCE}", "input 5"),
        (f"normal=sep_conv_3x3~1;sep_conv_3x3~1;{V2_NORMAL.split(';', 2)[2]}|reduce={V2_REDUCE}", "both inputs are 1"),
        (f"normal={V2_NORMAL.replace('~0', '~x', 1)}|reduce={V2_REDUCE}", "'op~input'"),
        (V2_COMPACT.replace("(2,5)", "(2,7)"), "op index 7"),
        (V2_COMPACT.replace("(2,5)", "(2,5),(0,1)"), "8 \\(input, op_index\\)"),
        ("[[(0,3)]]", "compact form is \\[normal, reduce\\]"),
        ("[[(0, 'a')", "cannot read"),
        (DARTS_V2.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[4, 5]"), "reduce_concat"),
        (DARTS_V2.replace("reduce=", "reduction="), "needs normal"),
    ],
)
def test_parse_rejects_malformed(space: DartsSpace, bad: str, match: str) -> None:
    with pytest.raises(GenotypeError, match=match):
        space.parse(bad)


def test_genotype_is_validated_on_construction() -> None:
    g = parse_genotype(DARTS_V2)
    with pytest.raises(GenotypeError, match="node 0: input 2"):
        DartsGenotype((("sep_conv_3x3", 2), *g.normal[1:]), g.reduce)
    with pytest.raises(GenotypeError, match="8 \\(op, input\\) pairs"):
        DartsGenotype(g.normal[:6], g.reduce)
    with pytest.raises(GenotypeError, match="cannot read"):
        parse_genotype(42)  # type: ignore[arg-type]


def test_none_op_is_a_zero_op(small: DartsSpace) -> None:
    g = small.parse(f"normal=none~0;{V2_NORMAL.split(';', 1)[1]}|reduce=none~0;{V2_REDUCE.split(';', 1)[1]}")
    assert g.normal[0] == ("none", 0) and small.parse(small.format(g)) == g
    with pytest.raises(GenotypeError, match="none"):
        to_compact(g)
    module = small.to_module(g).eval()
    assert module(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert _n_params(module) == small.param_count(g)
    cell0, reduce0 = module.cells[0], module.cells[small.layers // 3]
    x = torch.randn(1, cell0.preprocess0[1].out_channels, 8, 8)
    assert not cell0.ops[0](x).any()  # the zero op keeps the shape and outputs zeros
    assert reduce0.ops[0](x).shape == (1, x.shape[1], 4, 4)


def test_canonical_form_orders_each_node() -> None:
    g = from_columns(V2_NORMAL, V2_REDUCE)
    swapped = from_columns(
        "sep_conv_3x3~1;sep_conv_3x3~0;" + V2_NORMAL.split(";", 2)[2], V2_REDUCE
    )
    assert swapped != g
    c = canonical_form(g)
    assert canonical_form(swapped) == c == canonical_form(c)
    assert c.normal[4:6] == (("skip_connect", 0), ("sep_conv_3x3", 1))  # node 2 of DARTS V2 reads (1, 0)
    assert all(cell[2 * k][1] < cell[2 * k + 1][1] for cell in (c.normal, c.reduce) for k in range(4))


# --------------------------------------------------------------------------- sample, mutate, dimensions


def test_sample_is_seeded_valid_and_covers_the_space(space: DartsSpace) -> None:
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(300)]
    assert len(set(samples)) == 300
    ops_seen = {op for g in samples for c in (g.normal, g.reduce) for op, _ in c}
    assert ops_seen == set(OPS)  # never 'none'
    for k in range(4):
        inputs_seen = {g.normal[2 * k + j][1] for g in samples for j in (0, 1)}
        assert inputs_seen == set(range(k + 2))
    for g in samples:
        assert parse_genotype(format_genotype(g)) == g


def test_mutate_changes_one_thing_and_is_seeded(space: DartsSpace) -> None:
    rng = np.random.default_rng(1)
    g = space.sample(rng)
    assert len(space.neighbours(g)) == 120 == len(set(space.neighbours(g)))
    kinds = set()
    for _ in range(100):
        before = format_genotype(g)
        m = space.mutate(g, rng)
        assert format_genotype(g) == before  # the argument is left alone
        assert DartsGenotype(m.normal, m.reduce) == m  # valid
        diffs = [(x, y) for c in ("normal", "reduce") for x, y in zip(g.cell(c), m.cell(c), strict=True) if x != y]
        assert len(diffs) == 1
        (old_op, old_in), (new_op, new_in) = diffs[0]
        assert (old_op != new_op) != (old_in != new_in)
        kinds.add("op" if old_op != new_op else "input")
        g = m
    assert kinds == {"op", "input"}
    pair = [space.mutate(g, np.random.default_rng(3)) for _ in range(2)]
    assert pair[0] == pair[1] != g


def test_dimensions_choices_round_trip(space: DartsSpace) -> None:
    rng = np.random.default_rng(5)
    dims = space.dimensions()
    for _ in range(50):
        g = space.sample(rng)
        choices = space.to_choices(g)
        assert all(v in d.choices for v, d in zip(choices, dims, strict=True))
        assert space.from_choices(choices) == g
        # any combination of choices is a valid genotype
        drawn = [d.choices[int(rng.integers(len(d.choices)))] for d in dims]
        assert space.parse(space.format(space.from_choices(drawn))) == space.from_choices(drawn)
    with pytest.raises(GenotypeError, match="24 choices"):
        space.from_choices(choices[:-1])


# --------------------------------------------------------------------------- the network


def test_forward_gives_logits_and_aux(small: DartsSpace) -> None:
    torch.set_num_threads(1)
    g = parse_genotype(DARTS_V2)
    out = small.to_module(g)(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    aux_space = DartsSpace(c=4, layers=5, num_classes=7, auxiliary=True)
    net = aux_space.to_module(g)
    logits, aux = net.forward_aux(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7)
    assert aux is not None and aux.shape == (2, 7)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)  # forward leaves the head out
    assert _n_params(net) == aux_space.param_count(g)
    with pytest.raises(NasError, match="layers=2"):
        DartsSpace(layers=2).to_module(g)


def test_reduction_cells_and_channels(space: DartsSpace) -> None:
    net = space.to_module(parse_genotype(DARTS_V2))
    assert [c.reduction for c in net.cells] == [i in (2, 5) for i in range(8)]
    assert net.stem[0].out_channels == 96
    assert net.classifier.in_features == 4 * 128


def test_darts_v2_parameter_count() -> None:
    torch.set_num_threads(1)
    paper = DartsSpace(c=36, layers=20, auxiliary=True)
    g = parse_genotype(DARTS_V2)
    net = paper.to_module(g)
    without_aux = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("auxiliary_head"))
    assert without_aux == 3_349_342 == DartsSpace(c=36, layers=20).param_count(g)
    assert _n_params(net) == paper.param_count(g)


def test_param_count_matches_the_module() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(11)
    for cfg in ({}, NASLIB_ZC, {"c": 8, "layers": 6, "num_classes": 100, "auxiliary": True}):
        sp = DartsSpace(**cfg)
        for _ in range(3):
            g = sp.sample(rng)
            assert sp.param_count(g) == _n_params(sp.to_module(g)), cfg


# every op on every kind of edge: strided zero and FactorizedReduce skips on the reduction cell's inputs
ALL_EDGES = (
    "normal=sep_conv_3x3~0;skip_connect~1;dil_conv_5x5~2;avg_pool_3x3~0;max_pool_3x3~1;none~3;skip_connect~2;"
    "sep_conv_5x5~4|reduce=skip_connect~0;avg_pool_3x3~1;max_pool_3x3~0;none~2;dil_conv_3x3~1;sep_conv_3x3~2;"
    "none~0;skip_connect~4"
)


def _assert_same_graph(direct: ArchGraph, exported: ArchGraph, what: str) -> None:
    assert direct.fingerprint() == exported.fingerprint(), what
    # the same nodes in the same order: encodings that read the node list (text, PyG) agree too
    assert [n.label() for n in direct.nodes] == [n.label() for n in exported.nodes], what
    assert direct.to_text() == exported.to_text(), what
    assert direct.params == exported.params and direct.flops == exported.flops, what


@pytest.mark.parametrize("cfg", [{"c": 4, "layers": 5}, NASLIB_ZC,
                                 {"c": 4, "layers": 6, "num_classes": 100, "input_size": 16}])
def test_to_graph_equals_the_exported_module(cfg: dict[str, object]) -> None:
    """The direct ONNX builder against the reference: the TorchScript export of the module."""
    torch.set_num_threads(1)
    sp = DartsSpace(**cfg)  # type: ignore[arg-type]
    rng = np.random.default_rng(123)
    for batch, g in ((1, parse_genotype(DARTS_V2)), (1, parse_genotype(ALL_EDGES)), (2, sp.sample(rng))):
        graph = sp.to_graph(g, batch=batch)
        exported = ArchGraph.from_module(sp.to_module(g), torch.zeros(sp.example_input_shape(batch)))
        _assert_same_graph(graph, exported, f"{cfg} {format_genotype(g)}")
        assert graph.summary()["op_counts"]["Gemm"] == 1
        assert graph.params == sp.param_count(g) + (0 if sp.affine_ops else 2 * _op_bn_channels(sp, g))


def _op_bn_channels(sp: DartsSpace, g: DartsGenotype) -> int:
    """The channels of the BatchNorms inside the edge ops (ONNX gives them a scale and a bias even when
    the module's are non-affine)."""
    return sum(p.numel() for name, p in DartsSpace(sp.c, sp.layers, sp.num_classes).to_module(g).named_parameters()
               if ".ops." in name and p.dim() == 1) // 2


@pytest.mark.slow
def test_to_graph_equals_the_exported_module_50(space: DartsSpace) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(2024)
    x = torch.zeros(space.example_input_shape(1))
    for _ in range(50):
        g = space.sample(rng)
        _assert_same_graph(space.to_graph(g), ArchGraph.from_module(space.to_module(g), x), format_genotype(g))


def test_structure_only_onnx_runs_when_weights_are_fed(small: DartsSpace) -> None:
    import onnxruntime as ort

    g = parse_genotype(ALL_EDGES)
    sess = ort.InferenceSession(small.to_onnx(g, batch=2).SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones(i.shape, np.float32) for i in sess.get_inputs()}
    (out,) = sess.run(None, feeds)
    assert out.shape == (2, 10) and np.isfinite(out).all()
    assert sess.get_inputs()[0].name == "input"
    assert len(feeds) - 1 == sum(len(n.weights) for n in small.to_graph(g).nodes)


# --------------------------------------------------------------------------- NASLib's `params` column


def test_naslib_params_column_reproduced_on_all_725(nb301_rows: list[dict[str, str]]) -> None:
    """NASLib counted C=32, 8 cells, with non-affine op BatchNorms (NASLIB_ZC): all 725 match."""
    sp = DartsSpace(**NASLIB_ZC)
    matches = sum(sp.param_count(r["naslib_compact"]) == _table_params(r) for r in nb301_rows)
    assert matches == 725
    # the default network (affine op BatchNorms, as NAS-Bench-301 trains it) counts more
    default = DartsSpace()
    assert all(default.param_count(r["naslib_compact"]) > _table_params(r) for r in nb301_rows[:20])


def test_naslib_params_column_from_modules_sample(nb301_rows: list[dict[str, str]]) -> None:
    torch.set_num_threads(1)
    sp = DartsSpace(**NASLIB_ZC)
    idx = np.random.default_rng(0).choice(len(nb301_rows), 12, replace=False)
    for i in idx:
        row = nb301_rows[int(i)]
        assert _n_params(sp.to_module(sp.parse(row["naslib_compact"]))) == _table_params(row), i


@pytest.mark.slow
def test_naslib_params_column_from_modules_all_725(nb301_rows: list[dict[str, str]]) -> None:
    torch.set_num_threads(1)
    sp = DartsSpace(**NASLIB_ZC)
    matches = sum(_n_params(sp.to_module(sp.parse(r["naslib_compact"]))) == _table_params(r) for r in nb301_rows)
    assert matches == 725
