"""The ask/tell `Strategy` contract and what every strategy shares.

A strategy proposes genotypes (:meth:`Strategy.ask`) and learns their values (:meth:`Strategy.tell`);
it never sees networks, data or costs (constraints are filters the search loop applies before a
candidate is evaluated, :mod:`nas.search.loop`). Values are oriented so that **higher is better**:
one float for single-objective strategies, a tuple of floats for multi-objective ones (NSGA-II).
A strategy that is told ``None`` for a candidate learns that it was rejected (over a constraint);
it is not counted as an evaluation.

Every strategy owns its ``numpy.random.Generator`` (seeded at construction), and
:meth:`Strategy.state_dict` / :meth:`Strategy.load_state_dict` round-trip everything it knows through
JSON-able values -- genotypes in their text form (``space.format``) -- so a search can stop and resume
anywhere: the same seed and the same answers give the same proposals, in a fresh process.

Asks and tells alternate (one candidate in flight), which is how the search loop drives them.

A strategy may also offer ``set_feasible(predicate)``: when the search has constraints, the loop
calls it (before the first ask, and again on resume) with ``genotype -> bool``, true when the
genotype meets every constraint, so that a model-based strategy can pick the best candidate that
will not be rejected (the constraints are known and cheap to check: a table, a count, a cached
measurement). The loop still checks every candidate; the others learn of rejections only by ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nas.errors import SearchError
from nas.registry import Registry
from search_spaces.base import Genotype, SearchSpace

Value = float | tuple[float, ...]


@runtime_checkable
class Strategy(Protocol):
    """Ask/tell search over the genotypes of one space."""

    name: str

    def ask(self) -> Genotype:
        """The next genotype to evaluate."""
        ...

    def tell(self, genotype: Genotype, value: Value | None) -> None:
        """The value of the genotype last asked (``None``: rejected by a constraint, not evaluated)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue, as JSON-able values."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        ...


STRATEGIES: Registry[Strategy] = Registry("strategy")


class StrategyBase:
    """Seeded RNG, the space, the asked-but-not-told candidate, and their (de)serialization."""

    name = "base"

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._pending: Genotype | None = None
        self.told = 0  # evaluations told (rejections are not counted)

    def _asked(self, genotype: Genotype) -> Genotype:
        self._pending = genotype
        return genotype

    def _check_tell(self, genotype: Genotype) -> None:
        if self._pending is None or genotype != self._pending:
            raise SearchError(
                f"{self.name}: tell() must answer the last ask(); got {self.space.format(genotype)!r}, asked "
                f"{self.space.format(self._pending) if self._pending is not None else 'nothing'}"
            )
        self._pending = None

    def _g(self, text: str) -> Genotype:
        return self.space.parse(text)

    def _t(self, genotype: Genotype) -> str:
        return self.space.format(genotype)

    def _base_state(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "pending": None if self._pending is None else self._t(self._pending),
            "told": self.told,
        }

    def _load_base(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != self.name:
            raise SearchError(f"cannot load a {state.get('strategy')!r} state into strategy {self.name!r}")
        self.seed = int(state["seed"])
        self.rng.bit_generator.state = state["rng"]
        self._pending = None if state["pending"] is None else self._g(state["pending"])
        self.told = int(state["told"])


def scalar(value: Value) -> float:
    """A single-objective value; multi-objective values are refused."""
    if isinstance(value, Sequence):
        raise SearchError(f"this strategy optimizes one objective; got the tuple {tuple(value)!r}")
    return float(value)
