"""NSGA-II: multi-objective evolution by non-dominated sorting and crowding distance.

Deb, Pratap, Agarwal & Meyarivan, "A Fast and Elitist Multiobjective Genetic Algorithm: NSGA-II",
IEEE TEC 2002. Values are tuples, every objective maximized (the search loop passes, e.g.,
``(proxy score, -latency)``).

* The first ``population_size`` candidates are uniform samples.
* Each later candidate is ``space.mutate`` of a parent chosen by a binary tournament on (front,
  crowding distance) within the current population. Genotypes of different spaces do not share a
  representation for crossover, so variation is mutation only.
* After ``population_size`` children, parents and children are merged and the best
  ``population_size`` survive: whole fronts first, the last front cut by crowding distance (elitism).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.errors import SearchError
from nas.search.base import STRATEGIES, StrategyBase, Value
from nas.search.pareto import crowding_distance, non_dominated_sort
from search_spaces.base import Genotype, SearchSpace


class NSGA2(StrategyBase):
    """Elitist multi-objective evolution (see the module docstring)."""

    name = "nsga2"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20) -> None:
        super().__init__(space, seed)
        if population_size < 2:
            raise SearchError(f"nsga2 needs population_size >= 2; got {population_size}")
        self.population_size = population_size
        self.population: list[tuple[Genotype, tuple[float, ...]]] = []
        self.children: list[tuple[Genotype, tuple[float, ...]]] = []

    def _rank_and_crowding(self) -> tuple[np.ndarray, np.ndarray]:
        pts = np.array([v for _, v in self.population], float)  # (n, m)
        rank = np.zeros(len(pts), int)
        crowd = np.zeros(len(pts))
        for r, front in enumerate(non_dominated_sort(pts)):
            rank[front] = r
            crowd[front] = crowding_distance(pts[front])
        return rank, crowd

    def ask(self) -> Genotype:
        if len(self.population) < self.population_size:
            return self._asked(self.space.sample(self.rng))
        rank, crowd = self._rank_and_crowding()
        a, b = (int(i) for i in self.rng.integers(0, len(self.population), size=2))
        better = a if (rank[a], -crowd[a]) <= (rank[b], -crowd[b]) else b
        return self._asked(self.space.mutate(self.population[better][0], self.rng))

    def tell(self, genotype: Genotype, value: Value | None) -> None:
        self._check_tell(genotype)
        if value is None:
            return
        if not isinstance(value, Sequence):
            raise SearchError(f"nsga2 needs a tuple of objectives; got {value!r}")
        v = tuple(float(x) for x in value)
        self.told += 1
        if len(self.population) < self.population_size:
            self.population.append((genotype, v))
            return
        self.children.append((genotype, v))
        if len(self.children) == self.population_size:
            self._select()

    def _select(self) -> None:
        merged = self.population + self.children
        pts = np.array([v for _, v in merged], float)
        keep: list[int] = []
        for front in non_dominated_sort(pts):
            if len(keep) + len(front) <= self.population_size:
                keep += front
                continue
            crowd = crowding_distance(pts[front])
            order = sorted(range(len(front)), key=lambda i: (-crowd[i], front[i]))
            keep += [front[i] for i in order[: self.population_size - len(keep)]]
            break
        self.population = [merged[i] for i in sorted(keep)]
        self.children = []

    def pareto_front(self) -> list[tuple[Genotype, tuple[float, ...]]]:
        """The non-dominated members of the current population."""
        if not self.population:
            return []
        front = non_dominated_sort([v for _, v in self.population])[0]
        return [self.population[i] for i in front]

    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(), "population_size": self.population_size,
                "population": [[self._t(g), list(v)] for g, v in self.population],
                "children": [[self._t(g), list(v)] for g, v in self.children]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_base(state)
        self.population_size = int(state["population_size"])
        self.population = [(self._g(t), tuple(v)) for t, v in state["population"]]
        self.children = [(self._g(t), tuple(v)) for t, v in state["children"]]


STRATEGIES.register("nsga2")(NSGA2)
