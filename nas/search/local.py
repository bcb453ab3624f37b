"""Local search: first-improvement hill climbing with random restarts.

White, Nolen, Ravi, Zela & Hutter, "Exploring the Loss Landscape in Neural Architecture Search",
UAI 2021, show that this simple method is a strong baseline on NAS-Bench-201. From the best
genotype so far, it proposes mutations (``space.mutate``) it has not evaluated yet; the first one
that is better becomes the new centre. After ``patience`` proposals without improvement, or when
no new neighbour turns up in ``patience`` draws, the centre is taken as a local optimum and the
search restarts from a uniform sample.
"""

from __future__ import annotations

from typing import Any

from nas.search.base import STRATEGIES, StrategyBase, Value, scalar
from search_spaces.base import Genotype, SearchSpace


class LocalSearch(StrategyBase):
    """Hill climbing over ``space.mutate`` neighbours, restarting after ``patience`` failures."""

    name = "local"

    def __init__(self, space: SearchSpace, seed: int = 0, patience: int = 20) -> None:
        super().__init__(space, seed)
        self.patience = patience
        self.centre: tuple[Genotype, float] | None = None
        self.failures = 0
        self.seen: set[str] = set()  # text forms of the genotypes evaluated or rejected

    def ask(self) -> Genotype:
        if self.centre is None:
            return self._asked(self.space.sample(self.rng))
        for _ in range(self.patience):
            g = self.space.mutate(self.centre[0], self.rng)
            if self._t(g) not in self.seen:
                return self._asked(g)
        self.centre, self.failures = None, 0  # every neighbour drawn was known: restart
        return self._asked(self.space.sample(self.rng))

    def tell(self, genotype: Genotype, value: Value | None) -> None:
        self._check_tell(genotype)
        self.seen.add(self._t(genotype))
        if value is None:
            return
        self.told += 1
        v = scalar(value)
        if self.centre is None or v > self.centre[1]:
            self.centre, self.failures = (genotype, v), 0
            return
        self.failures += 1
        if self.failures >= self.patience:
            self.centre, self.failures = None, 0

    def state_dict(self) -> dict[str, Any]:
        centre = None if self.centre is None else [self._t(self.centre[0]), self.centre[1]]
        return {**self._base_state(), "patience": self.patience, "centre": centre, "failures": self.failures,
                "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_base(state)
        self.patience = int(state["patience"])
        c = state["centre"]
        self.centre = None if c is None else (self._g(c[0]), float(c[1]))
        self.failures = int(state["failures"])
        self.seen = set(state["seen"])


STRATEGIES.register("local")(LocalSearch)
