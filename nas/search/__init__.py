"""Search strategies (ask/tell), objectives and the resumable search loop.

Strategies register in :data:`STRATEGIES`: ``random``, ``evolution`` (regularized evolution),
``local`` (hill climbing with restarts), ``bo`` (a Gaussian process on the choices with Thompson
sampling) and ``nsga2``. :func:`run_search` drives one with an
objective and constraints into a run folder (:mod:`nas.search.loop`).
"""

from __future__ import annotations

from nas.search import bayesian, evolution, local, nsga2, random_search  # noqa: F401  (each registers its strategy)
from nas.search.base import STRATEGIES, Strategy
from nas.search.loop import SearchConfig, SearchResult, run_search

__all__ = ["STRATEGIES", "SearchConfig", "SearchResult", "Strategy", "run_search"]
