"""A folder of ONNX files as a space: deduplication, skip reporting, the protocol, and the graph
against the module rebuilt from it."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from nas.errors import DataError, GenotypeError
from nas.ir import ArchGraph
from nas.ir.torch_export import export_onnx
from search_spaces import SPACES, FiniteSearchSpace, SearchSpace
from search_spaces.onnx_folder import OnnxFolderSpace

torch.set_num_threads(1)

X16 = torch.zeros(1, 3, 16, 16)


def _cnn(c: int = 8) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, c, 3, padding=1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10),
    )


def _save(path: Path, module: nn.Module, x: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(export_onnx(module, x), path)


def _two_inputs() -> onnx.ModelProto:
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("a", "b")]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", ins, [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _dynamic_width() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dyn", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


#: the readable, distinct architectures written by the ``folder`` fixture, sorted
CANDIDATES = ("avgpool.onnx", "cnn_a.onnx", "cnn_wide.onnx", "hsigmoid.onnx", "mlp.onnx")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    _save(d / "cnn_a.onnx", _cnn(), X16)
    _save(d / "cnn_b.onnx", _cnn(), torch.zeros(2, 3, 16, 16))  # other weights, other batch
    _save(d / "cnn_renamed.onnx", nn.Sequential(_cnn()), X16)  # other node and tensor names
    _save(d / "cnn_wide.onnx", _cnn(16), X16)
    _save(d / "mlp.onnx", nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.GELU(), nn.Linear(32, 5)),
          torch.zeros(1, 3, 4, 4))
    _save(d / "avgpool.onnx", nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.AvgPool2d(3, 1, 1), nn.Sigmoid()), X16)
    _save(d / "hsigmoid.onnx", nn.Sequential(nn.Conv2d(3, 8, 3), nn.Hardswish(), nn.Conv2d(8, 8, 1),
                                             nn.Hardsigmoid()), X16)
    _save(d / "upsample.onnx", nn.Sequential(nn.Conv2d(3, 4, 1), nn.Upsample(scale_factor=2)), X16)
    onnx.save(_two_inputs(), d / "two_inputs.onnx")
    onnx.save(_dynamic_width(), d / "dynamic.onnx")
    (d / "garbage.onnx").write_bytes(b"not an onnx model \x00\x01\x02")
    (d / "truncated.onnx").write_bytes((d / "cnn_wide.onnx").read_bytes()[:200])
    (d / "README.txt").write_text("not a model")
    _save(d / "sub" / "deep.onnx", _cnn(4), X16)
    _save(d / "sub" / "copy_of_mlp.onnx", nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.GELU(),
                                                        nn.Linear(32, 5)), torch.zeros(1, 3, 4, 4))
    return d


@pytest.fixture(scope="module")
def space(folder: Path) -> OnnxFolderSpace:
    return OnnxFolderSpace(folder)


def test_candidates_duplicates_and_skips(space: OnnxFolderSpace) -> None:
    assert space.candidates == CANDIDATES
    assert space.duplicates == {"cnn_b.onnx": "cnn_a.onnx", "cnn_renamed.onnx": "cnn_a.onnx"}
    assert sorted(space.skipped) == ["dynamic.onnx", "garbage.onnx", "truncated.onnx", "two_inputs.onnx",
                                     "upsample.onnx"]
    assert "OnnxLoadError" in space.skipped["garbage.onnx"]
    assert "OnnxLoadError" in space.skipped["truncated.onnx"]
    assert "UnsupportedOpError" in space.skipped["upsample.onnx"] and "'Resize'" in space.skipped["upsample.onnx"]
    assert "DynamicShapeError" in space.skipped["dynamic.onnx"]
    assert "2 data inputs" in space.skipped["two_inputs.onnx"]


def test_each_skipped_file_is_logged(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="search_spaces.onnx_folder"):
        s = OnnxFolderSpace(folder)
    warned = Counter(f for r in caplog.records for f in s.skipped if f in r.getMessage())
    assert warned == Counter(dict.fromkeys(s.skipped, 1))
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_recursive(folder: Path, space: OnnxFolderSpace) -> None:
    deep = OnnxFolderSpace(folder, recursive=True)
    assert deep.candidates == tuple(sorted((*CANDIDATES, "sub/deep.onnx")))
    assert deep.duplicates == {**space.duplicates, "sub/copy_of_mlp.onnx": "mlp.onnx"}
    assert deep.skipped.keys() == space.skipped.keys()
    assert deep.parse("sub/deep.onnx") == "sub/deep.onnx"
    assert deep.example_input_shape(2, "sub/deep.onnx") == (2, 3, 16, 16)


def test_registry_and_protocols(folder: Path, space: OnnxFolderSpace) -> None:
    resolved = SPACES.resolve("onnx_folder", folder=folder)
    assert isinstance(resolved, OnnxFolderSpace) and resolved.candidates == CANDIDATES
    assert isinstance(space, SearchSpace) and isinstance(space, FiniteSearchSpace)
    assert space.name == "onnx_folder"
    assert list(space.enumerate()) == list(CANDIDATES) and len(space) == 5
    (dim,) = space.dimensions()
    assert dim.choices == CANDIDATES


def test_unreadable_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no readable ONNX model.*no \*\.onnx file"):
        OnnxFolderSpace(tmp_path)
    (tmp_path / "bad.onnx").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"bad\.onnx: OnnxLoadError"):
        OnnxFolderSpace(tmp_path)
    with pytest.raises(DataError, match="is not a folder"):
        OnnxFolderSpace(tmp_path / "missing")
    with pytest.raises(DataError, match="is not a folder"):
        OnnxFolderSpace(tmp_path / "bad.onnx")


def test_parse_and_format(space: OnnxFolderSpace) -> None:
    for g in space.enumerate():
        assert space.parse(space.format(g)) == g
    assert space.parse("./mlp.onnx") == "mlp.onnx"
    assert space.parse("cnn_renamed.onnx") == "cnn_a.onnx"  # a copy names the kept file
    with pytest.raises(GenotypeError, match=r"'resnet\.onnx'.*'avgpool\.onnx', 'cnn_a\.onnx'"):
        space.parse("resnet.onnx")
    with pytest.raises(GenotypeError, match=r"skipped.*OnnxLoadError"):
        space.parse("garbage.onnx")
    with pytest.raises(GenotypeError):
        space.format("cnn_b.onnx")  # not a genotype: format takes candidates only
    with pytest.raises(GenotypeError):
        space.to_graph("README.txt")


def test_sample_and_mutate(space: OnnxFolderSpace) -> None:
    assert space.sample(np.random.default_rng(4)) == space.sample(np.random.default_rng(4))
    rng = np.random.default_rng(0)
    assert Counter(space.sample(rng) for _ in range(500)).keys() == set(CANDIDATES)
    g = "cnn_a.onnx"
    seen: Counter[str] = Counter()
    for _ in range(400):
        m = space.mutate(g, rng)
        assert m in CANDIDATES and m != g
        seen[m] += 1
    assert seen.keys() == set(CANDIDATES) - {g} and min(seen.values()) > 60  # uniform over the other 4
    assert space.mutate(g, np.random.default_rng(9)) == space.mutate(g, np.random.default_rng(9))


def test_mutate_needs_two_candidates(tmp_path: Path) -> None:
    _save(tmp_path / "only.onnx", nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), X16)
    one = OnnxFolderSpace(tmp_path)
    assert len(one) == 1
    with pytest.raises(GenotypeError, match="nothing to mutate"):
        one.mutate("only.onnx", np.random.default_rng(0))


def test_example_input_shape(space: OnnxFolderSpace) -> None:
    assert space.example_input_shape(4, "mlp.onnx") == (4, 3, 4, 4)
    assert space.example_input_shape(2, "cnn_a.onnx") == (2, 3, 16, 16)
    assert space.example_input_shape() == (1, 3, 16, 16)  # the first candidate's


@pytest.mark.parametrize("genotype", CANDIDATES)
def test_graph_and_module_agree(space: OnnxFolderSpace, genotype: str) -> None:
    graph = space.to_graph(genotype)
    module = space.to_module(genotype)
    assert graph.params == sum(p.numel() for p in module.parameters())
    out = module(torch.randn(space.example_input_shape(3, genotype)))
    assert out.shape == (3, *graph.output_shapes[0][1:])
    rebuilt = ArchGraph.from_module(module, torch.zeros(space.example_input_shape(1, genotype)))
    assert rebuilt.fingerprint() == graph.fingerprint()


def test_to_module_is_freshly_initialized(space: OnnxFolderSpace, folder: Path) -> None:
    a, b = space.to_module("cnn_wide.onnx"), space.to_module("cnn_wide.onnx")
    kept = space.to_graph("cnn_wide.onnx").to_torch(keep_weights=True)
    wa, wb, wk = (next(iter(m.parameters())) for m in (a, b, kept))
    assert not torch.equal(wa, wb) and not torch.equal(wa, wk)


@pytest.fixture(scope="module")
def nb201_folder(tmp_path_factory: pytest.TempPathFactory) -> OnnxFolderSpace:
    """NB201 networks whose ``none`` edges the IR removes as all-zero, and one without."""
    from search_spaces.nb201 import NB201Space

    nb201 = NB201Space(c=8, n=1)
    d = tmp_path_factory.mktemp("nb201")
    archs = {
        "no_zero.onnx": "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                        "skip_connect~2|",
        # node 2 feeds only a 'none' edge: its nodes reach no output
        "dead_end.onnx": "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|",
        # node 2 has only 'none' inputs: a layer reads an all-zero operand
        "zero_operand.onnx": "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
    }
    for name, arch in archs.items():
        _save(d / name, nb201.to_module(arch), torch.zeros(nb201.example_input_shape(1)))
    return OnnxFolderSpace(d)


@pytest.mark.parametrize(
    "genotype",
    [
        "no_zero.onnx",
        "dead_end.onnx",  # to_torch keeps the dead ends through ``dead end * 0``, as the original had them
        "zero_operand.onnx",  # a layer reading a removed zero edge: exported as constant zeros, read back as one
    ],
)
def test_graph_and_module_agree_with_removed_zero_edges(nb201_folder: OnnxFolderSpace, genotype: str) -> None:
    graph = nb201_folder.to_graph(genotype)
    module = nb201_folder.to_module(genotype)
    assert module(torch.randn(nb201_folder.example_input_shape(2, genotype))).shape == (2, 10)
    rebuilt = ArchGraph.from_module(module, torch.zeros(nb201_folder.example_input_shape(1, genotype)))
    assert rebuilt.fingerprint() == graph.fingerprint()
