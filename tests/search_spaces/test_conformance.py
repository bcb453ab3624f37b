"""One conformance suite over every registered search space (and the ONNX-folder space on a folder).

Each space must: sample valid genotypes (their text form parses back to them), mutate to a valid,
different genotype without touching its argument, give the same genotypes for the same seed, and
build a graph and a module that agree -- the module's ONNX export has the graph's fingerprint,
parameter count and output shape.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.ir import ArchGraph
from nas.ir.torch_export import export_onnx
from search_spaces import SPACES, FiniteSearchSpace, SearchSpace, required_arguments, space_from_spec
from search_spaces.base import Dimension

#: Small but complete configurations, so that the suite stays fast; the defaults are checked
#: against their benchmarks' tables in each space's own tests.
SMALL: dict[str, str] = {
    "nb201": "nb201:c=8,n=1",
    "nb101": "nb101:stem_channels=16,cells_per_stack=1",
    "darts": "darts:c=8,layers=5",
    "nb301": "nb301:c=8,layers=5",
    "mbv3": "mbv3:num_classes=10",
}


def _folder_of_onnx(root: Path) -> Path:
    """Three NB201 networks (one of them twice) as ONNX files."""
    space = space_from_spec("nb201:c=8,n=1")
    folder = root / "models"
    folder.mkdir()
    for i, arch in enumerate((5, 77, 1234, 77)):
        module = space.to_module(arch)
        model = export_onnx(module, torch.zeros(space.example_input_shape(1)))
        import onnx

        onnx.save(model, str(folder / f"m{i}.onnx"))
    return folder


@pytest.fixture(scope="module", params=SPACES.names())
def space(request, tmp_path_factory) -> SearchSpace:
    name = request.param
    if required_arguments(name) == ["folder"]:
        return space_from_spec(f"{name}:{_folder_of_onnx(tmp_path_factory.mktemp(name))}")
    return space_from_spec(SMALL.get(name, name))


def test_protocol_and_dimensions(space) -> None:
    assert isinstance(space, SearchSpace)
    assert space.name in SPACES
    dims = space.dimensions()
    assert dims and all(isinstance(d, Dimension) and len(d.choices) >= 1 for d in dims)
    if isinstance(space, FiniteSearchSpace):
        listed = list(space.enumerate())
        assert len(listed) == len(space) == len(set(listed))


def test_samples_are_valid_and_seeded(space) -> None:
    a = _draws(space, seed=7, n=6)
    assert a == _draws(space, seed=7, n=6)  # the same seed gives the same genotypes
    for g in a:
        hash(g)
        assert space.parse(space.format(g)) == g


def _draws(space: SearchSpace, seed: int, n: int) -> list:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_mutation_stays_valid_and_leaves_its_argument(space) -> None:
    rng = np.random.default_rng(3)
    g = space.sample(rng)
    before = copy.deepcopy(g)
    seen = []
    for _ in range(5):
        m = space.mutate(g, rng)
        assert g == before
        assert m != g
        assert space.parse(space.format(m)) == m
        seen.append(m)
    again = np.random.default_rng(3)
    g2 = space.sample(again)
    assert [space.mutate(g2, again) for _ in range(5)] == seen  # seeded


def test_graph_and_module_agree(space) -> None:
    g = space.sample(np.random.default_rng(11))
    graph = space.to_graph(g)
    torch.manual_seed(0)
    module = space.to_module(g)
    x = torch.zeros(space.example_input_shape(1, g))
    exported = ArchGraph.from_onnx(export_onnx(module, x))
    assert exported.fingerprint() == graph.fingerprint()
    assert exported.params == graph.params == sum(p.numel() for p in module.parameters())
    module.eval()
    with torch.no_grad():
        out = module(x)
    assert [tuple(out.shape)] == [tuple(s) for s in graph.output_shapes]
