"""Regularized evolution: tournament selection with ageing.

Real, Aggarwal, Huang & Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019 (Algorithm 1). A population of ``population_size`` genotypes is filled with uniform
samples; then each step draws ``sample_size`` members uniformly with replacement (the paper's
Algorithm 1), takes the best of them as the parent, and proposes ``space.mutate(parent)``.
The child joins the population and the **oldest** member leaves, whatever its value: ageing, which
keeps the search from clinging to one lucky early candidate.

Defaults follow NAS-Bench-201's benchmark of the method (population 10, sample 3 on NB201 in Dong &
Yang, ICLR 2020); the paper used 100 and 25 on a far larger budget. A rejected child (``None``,
over a constraint) is simply replaced by another proposal.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from nas.errors import SearchError
from nas.search.base import STRATEGIES, StrategyBase, Value, scalar
from search_spaces.base import Genotype, SearchSpace


class RegularizedEvolution(StrategyBase):
    """Tournament selection of a parent, one mutation, and removal of the oldest member."""

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 10, sample_size: int = 3) -> None:
        super().__init__(space, seed)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise SearchError(
                f"evolution needs population_size >= 1 and 1 <= sample_size <= population_size; got "
                f"{population_size} and {sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque[tuple[Genotype, float]] = deque()

    def ask(self) -> Genotype:
        if len(self.population) < self.population_size:
            return self._asked(self.space.sample(self.rng))
        picks = self.rng.integers(0, len(self.population), size=self.sample_size)
        parent = max((self.population[int(i)] for i in picks), key=lambda m: m[1])[0]
        return self._asked(self.space.mutate(parent, self.rng))

    def tell(self, genotype: Genotype, value: Value | None) -> None:
        self._check_tell(genotype)
        if value is None:
            return
        self.told += 1
        self.population.append((genotype, scalar(value)))
        if len(self.population) > self.population_size:
            self.population.popleft()  # the oldest, not the worst

    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(), "population_size": self.population_size, "sample_size": self.sample_size,
                "population": [[self._t(g), v] for g, v in self.population]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_base(state)
        self.population_size = int(state["population_size"])
        self.sample_size = int(state["sample_size"])
        self.population = deque((self._g(t), float(v)) for t, v in state["population"])


STRATEGIES.register("evolution")(RegularizedEvolution)
