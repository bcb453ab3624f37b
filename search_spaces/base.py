"""The `SearchSpace` contract.

A search space turns genotypes into architectures. Strategies see only genotypes and numbers: they
call :meth:`~SearchSpace.sample` and :meth:`~SearchSpace.mutate` (which never mutate their argument
and draw only from the ``numpy.random.Generator`` they are given), and the evaluator calls
:meth:`~SearchSpace.to_graph` or :meth:`~SearchSpace.to_module`. Finite spaces add ``enumerate()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from nas.ir import ArchGraph


#: A genotype: any hashable, immutable value the space defines (a tuple of ops, a string, ...).
Genotype = Any


@dataclass(frozen=True)
class Dimension:
    """One categorical decision of a space (an edge's op, a block's kernel size, ...)."""

    name: str
    choices: tuple[Any, ...]


@runtime_checkable
class SearchSpace(Protocol):
    """What every space provides. ``Genotype`` values are hashable and immutable."""

    @property
    def name(self) -> str:
        """The registered name."""
        ...

    def dimensions(self) -> list[Dimension]:
        """The decisions that make up a genotype, in a fixed order."""
        ...

    def sample(self, rng: np.random.Generator) -> Genotype:
        """A uniformly drawn valid genotype."""
        ...

    def mutate(self, genotype: Genotype, rng: np.random.Generator) -> Genotype:
        """A valid genotype one small change away from ``genotype`` (which is left as it is)."""
        ...

    def parse(self, text: str) -> Genotype:
        """A genotype from its text form (raises ``GenotypeError`` if malformed)."""
        ...

    def format(self, genotype: Genotype) -> str:
        """The text form of a genotype; ``parse(format(g)) == g``."""
        ...

    def to_graph(self, genotype: Genotype) -> ArchGraph:
        """The architecture as an :class:`~nas.ir.ArchGraph`."""
        ...

    def to_module(self, genotype: Genotype) -> nn.Module:
        """The architecture as a PyTorch module, freshly initialized."""
        ...

    def example_input_shape(self, batch: int = 1, genotype: Genotype | None = None) -> tuple[int, ...]:
        """The input shape the network of ``genotype`` takes (used to export it); spaces whose
        genotype fixes the resolution use it, and give their default resolution for ``None``."""
        ...


@runtime_checkable
class FiniteSearchSpace(SearchSpace, Protocol):
    """A space small enough to list."""

    def enumerate(self) -> Iterator[Genotype]:
        """Every genotype, once, in the space's canonical order."""
        ...

    def __len__(self) -> int: ...
