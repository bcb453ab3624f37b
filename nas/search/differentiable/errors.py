"""Errors of differentiable search, under the project's one root :class:`~nas.errors.NasError`."""

from __future__ import annotations

from nas.errors import DataError, SearchError


class SupernetUnsupportedError(SearchError):
    """A space (or a feature such as the latency loss) has no supernet support; the message names
    the spaces that have it."""


class ArchWeightsNaNError(SearchError):
    """The architecture weights became NaN or infinite; ``epoch`` and ``step`` say where."""

    def __init__(self, message: str, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step

    def __reduce__(self) -> tuple[type, tuple[str, int, int]]:  # picklable, fields kept
        return type(self), (str(self.args[0]) if self.args else "", self.epoch, self.step)


class DataSplitError(DataError):
    """Too few images for a train/validation split with the asked batch size."""
