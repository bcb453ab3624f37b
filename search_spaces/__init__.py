"""Search spaces, one per module, registered in :data:`SPACES`."""

from __future__ import annotations

from nas.registry import Registry
from search_spaces.base import Dimension, FiniteSearchSpace, SearchSpace

SPACES: Registry[SearchSpace] = Registry("search space")

from search_spaces.nb201 import NB201Space  # noqa: E402  (registers itself in SPACES)

__all__ = ["SPACES", "Dimension", "FiniteSearchSpace", "NB201Space", "SearchSpace"]
