"""The project's error hierarchy.

Every error raised on purpose by this project derives from :class:`NasError`, so callers can
catch one root. Messages name the offending file, node, op or value.
"""

from __future__ import annotations

from collections.abc import Iterable


class NasError(Exception):
    """Root of all errors raised by this project."""


class RegistryError(NasError, KeyError):
    """An unknown name was resolved, or a name was registered twice."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class IRError(NasError):
    """The ONNX graph cannot be turned into an :class:`~nas.ir.ArchGraph`."""


class OnnxLoadError(IRError):
    """A file or byte string is not a readable ONNX model (truncated, wrong format, missing)."""


class GraphCycleError(IRError):
    """The graph contains a cycle; ``nodes`` lists the ONNX nodes on it."""

    def __init__(self, message: str, nodes: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.nodes = tuple(nodes)


class NoInputsError(IRError):
    """The graph has no (non-initializer) inputs."""


class UnsupportedOpError(IRError):
    """An op (ONNX node) that the IR or ``to_torch()`` does not support."""

    def __init__(self, message: str, op: str = "", node: str = "") -> None:
        super().__init__(message)
        self.op = op
        self.node = node


class DynamicShapeError(IRError):
    """An input has a dynamic (symbolic or unknown) dimension and no example shape was given."""


class GenotypeError(NasError, ValueError):
    """A genotype (architecture string, index, spec) is malformed or outside its space."""


class DataError(NasError):
    """A data source cannot be read or does not hold what it should."""


class BenchmarkDataMissing(NasError, FileNotFoundError):
    """A tabular benchmark file is missing. The message says which file, where, and what it holds."""


class ProxyError(NasError):
    """A zero-cost proxy failed or produced a non-finite score."""


class SearchError(NasError, ValueError):
    """A search cannot run as configured (a budget of 0, an unknown objective, a bad resume folder, ...)."""


class ConstraintError(SearchError):
    """No candidate met the constraints within the allowed number of tries."""


class PredictorError(NasError):
    """A performance predictor cannot fit or predict as asked (bad shapes, non-finite targets, not fitted)."""


class PredictorFileError(PredictorError):
    """A saved predictor cannot be read: not an archive, truncated, corrupted, or missing an entry.
    The message names the file and what is wrong with it."""


class PredictorVersionError(PredictorFileError):
    """A saved predictor was written in a newer format version than this code reads."""
