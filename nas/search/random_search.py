"""Random search: every candidate is an independent uniform sample of the space.

The baseline every search is compared with (Li & Talwalkar, "Random Search and Reproducibility for
Neural Architecture Search", UAI 2019). Uniform means ``space.sample``'s distribution.
"""

from __future__ import annotations

from typing import Any

from nas.search.base import STRATEGIES, StrategyBase, Value
from search_spaces.base import Genotype


class RandomSearch(StrategyBase):
    """Uniform samples; :meth:`tell` only counts."""

    name = "random"

    def ask(self) -> Genotype:
        return self._asked(self.space.sample(self.rng))

    def tell(self, genotype: Genotype, value: Value | None) -> None:
        self._check_tell(genotype)
        if value is not None:
            self.told += 1

    def state_dict(self) -> dict[str, Any]:
        return self._base_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_base(state)


STRATEGIES.register("random")(RandomSearch)
