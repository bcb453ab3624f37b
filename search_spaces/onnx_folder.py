"""A folder of ONNX files as a finite search space.

Each ``*.onnx`` file of the folder (of its subfolders too with ``recursive=True``; symlinked
folders are not followed) is a candidate architecture, read with :meth:`ArchGraph.from_onnx
<nas.ir.ArchGraph.from_onnx>`. The genotype is the file's path relative to the folder, with ``/``
separators (``"resnet18.onnx"``, ``"zoo/mobilenet.onnx"``).

The folder is read once, when the space is built:

* Files that do not import (not ONNX, truncated, rejected by ``onnx.checker`` or shape inference,
  an op the IR does not support, a dynamic non-batch dimension) are skipped, each with a warning and
  its reason in :attr:`OnnxFolderSpace.skipped`. So are models with more than one data input: a
  genotype's :meth:`~OnnxFolderSpace.example_input_shape` is one shape.
* Files with the same architecture (equal :meth:`ArchGraph.fingerprint
  <nas.ir.ArchGraph.fingerprint>`, which ignores weights, names and the batch size) count once: the
  first in sorted order is the candidate and the others are recorded in
  :attr:`OnnxFolderSpace.duplicates` (file -> kept file).

:meth:`~OnnxFolderSpace.to_graph` reads the file again, so a file changed after the space was built
gives its new contents.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from torch import nn

from nas.errors import DataError, GenotypeError, NasError
from nas.ir import ArchGraph
from nas.ir.ops import Shape
from search_spaces import SPACES
from search_spaces.base import Dimension

log = logging.getLogger(__name__)

#: What reading one file may raise, besides our own errors: the file is skipped with the message.
_READ_ERRORS: tuple[type[Exception], ...] = (
    NasError,
    DecodeError,
    onnx.checker.ValidationError,
    onnx.shape_inference.InferenceError,
)


class OnnxFolderSpace:
    """The ``*.onnx`` files of ``folder``, deduplicated by fingerprint, in sorted order.

    Args:
        folder: the folder to read.
        recursive: also read the files of its subfolders.

    Attributes:
        candidates: the genotypes (relative paths), sorted.
        duplicates: file -> the candidate with the same architecture, for every file left out as a copy.
        skipped: file -> why it could not be read, for every file left out as unreadable.

    Raises:
        DataError: ``folder`` is not a folder, or no file in it could be read (the message lists
            what was skipped and why).
    """

    name = "onnx_folder"

    def __init__(self, folder: str | Path, *, recursive: bool = False) -> None:
        self.folder = Path(folder)
        self.recursive = recursive
        if not self.folder.is_dir():
            raise DataError(f"onnx_folder: {str(self.folder)!r} is not a folder")
        pattern = "**/*" if recursive else "*"
        files = sorted(
            p.relative_to(self.folder).as_posix()
            for p in self.folder.glob(pattern)
            if p.suffix.lower() == ".onnx" and p.is_file()
        )
        self.duplicates: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self._shapes: dict[str, Shape] = {}
        kept: dict[str, str] = {}  # fingerprint -> file
        for rel in files:
            try:
                graph = ArchGraph.from_onnx(self.folder / rel)
            except _READ_ERRORS as e:
                self._skip(rel, f"{type(e).__name__}: {e}")
                continue
            if len(graph.inputs) != 1:
                self._skip(rel, f"it has {len(graph.inputs)} data inputs; this space takes single-input models")
                continue
            fp = graph.fingerprint()
            if fp in kept:
                self.duplicates[rel] = kept[fp]
                log.info("onnx_folder: %s has the architecture of %s; keeping the latter", rel, kept[fp])
                continue
            kept[fp] = rel
            self._shapes[rel] = graph.inputs[0].out_shapes[0]
        self.candidates: tuple[str, ...] = tuple(self._shapes)  # sorted, as ``files`` is
        if not self.candidates:
            why = "; ".join(f"{f}: {r}" for f, r in self.skipped.items()) or "it holds no *.onnx file"
            where = "or its subfolders " if recursive else ""
            raise DataError(f"onnx_folder: no readable ONNX model in {str(self.folder)!r} {where}({why})")

    def _skip(self, rel: str, reason: str) -> None:
        self.skipped[rel] = reason
        log.warning("onnx_folder: skipping %s: %s", rel, reason)

    def __repr__(self) -> str:
        return (
            f"OnnxFolderSpace({str(self.folder)!r}, candidates={len(self.candidates)}, "
            f"duplicates={len(self.duplicates)}, skipped={len(self.skipped)})"
        )

    # ------------------------------------------------------------------ genotypes
    def _check(self, genotype: str) -> str:
        if not isinstance(genotype, str) or genotype not in self._shapes:
            raise GenotypeError(self._unknown(genotype))
        return genotype

    def _unknown(self, genotype: object) -> str:
        if isinstance(genotype, str) and genotype in self.skipped:
            return f"{genotype!r} was skipped when {str(self.folder)!r} was read: {self.skipped[genotype]}"
        shown = ", ".join(repr(c) for c in self.candidates[:5])
        more = f" and {len(self.candidates) - 5} more" if len(self.candidates) > 5 else ""
        return f"{genotype!r} is not a model of {str(self.folder)!r}; the models are {shown}{more}"

    def parse(self, text: str) -> str:
        """The candidate named by ``text``, a path relative to the folder (``/`` or the OS separator,
        an optional leading ``./``). The name of a duplicate gives the file kept for it."""
        if not isinstance(text, str):
            raise GenotypeError(f"an onnx_folder genotype is a relative path; got {type(text).__name__} {text!r}")
        rel = PurePosixPath(Path(text.strip()).as_posix()).as_posix()  # drops a leading './'
        rel = self.duplicates.get(rel, rel)
        if rel not in self._shapes:
            raise GenotypeError(self._unknown(rel))
        return rel

    def format(self, genotype: str) -> str:
        return self._check(genotype)

    # ------------------------------------------------------------------ protocol
    def dimensions(self) -> list[Dimension]:
        return [Dimension("file", self.candidates)]

    def enumerate(self) -> Iterator[str]:
        return iter(self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    def sample(self, rng: np.random.Generator) -> str:
        return self.candidates[int(rng.integers(len(self.candidates)))]

    def mutate(self, genotype: str, rng: np.random.Generator) -> str:
        """Another candidate, drawn uniformly: the files of a folder have no neighbourhood structure.

        Raises :class:`GenotypeError` when the folder holds a single candidate.
        """
        g = self._check(genotype)
        if len(self.candidates) < 2:
            raise GenotypeError(f"{str(self.folder)!r} holds one architecture ({g!r}); there is nothing to mutate to")
        k = int(rng.integers(len(self.candidates) - 1))
        i = self.candidates.index(g)
        return self.candidates[k + (k >= i)]

    def path(self, genotype: str) -> Path:
        """The file of a candidate."""
        return self.folder / self._check(genotype)

    def to_graph(self, genotype: str) -> ArchGraph:
        return ArchGraph.from_onnx(self.path(genotype))

    def to_module(self, genotype: str) -> nn.Module:
        """The graph as a trainable module with freshly initialized weights (not the file's).

        Its own ONNX export is the same graph except where ``to_torch`` writes an op differently:
        HardSigmoid (as a clamp), and graphs with removed all-zero edges (see the tests).
        """
        return self.to_graph(genotype).to_torch()

    def example_input_shape(self, batch: int = 1, genotype: str | None = None) -> tuple[int, ...]:
        """The model's input shape with the leading (batch) dimension set to ``batch``; for ``None``,
        that of the first candidate."""
        shape = self._shapes[self._check(genotype) if genotype is not None else self.candidates[0]]
        return (batch, *shape[1:])


SPACES.register("onnx_folder")(OnnxFolderSpace)
