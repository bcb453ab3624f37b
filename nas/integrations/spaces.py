"""Search spaces as Optuna distributions: :func:`suggest_architecture` and its inverse.

Every registered space describes its genotypes as a fixed list of categorical decisions
(:meth:`~search_spaces.base.SearchSpace.dimensions`). A *codec* (one per space, registered in
:data:`CODECS` under the space's name) turns a genotype into one value per dimension and back; this
module turns those values into Optuna parameters, one per dimension, named after it.

Two encodings:

* ``"categorical"`` (default): one :class:`~optuna.distributions.CategoricalDistribution` per
  dimension. Choices that Optuna cannot store (DARTS's input pairs, which are tuples) are stored as
  their ``str``. TPE, GP, NSGA-II, random and :class:`~nas.integrations.samplers.PredictorSampler`
  handle it.
* ``"index"``: one :class:`~optuna.distributions.IntDistribution` over the choice indices. This is
  for samplers that model only numbers: CMA-ES ignores categorical parameters (it hands them to its
  independent sampler), so for CMA-ES every decision is an ordinal index. For ordered choices (kernel
  sizes, depths, resolutions, NB101's edge bits) that order means something; for op names it is the
  space's listing order, an arbitrary but fixed one.

Validity. NB201, DARTS, MBv3 and ``onnx_folder`` accept every combination of values. NB101 does not:
an edge pattern may disconnect the output or leave more than 9 edges after pruning. Then
:func:`suggest_architecture` raises :class:`InvalidArchitectureError` (a
:class:`~nas.errors.GenotypeError`), and :func:`~nas.integrations.objective.make_objective` turns it
into a pruned trial with the reason in the ``invalid`` user attr. A constant penalty value would mix
up the samplers' density models, and a pruned trial without intermediate values is what TPE ranks
below every completed one.

Inverse mapping. :func:`architecture_params` gives the parameters of a genotype, so that known
architectures can be queued with :func:`enqueue_architecture` (``study.enqueue_trial``); for every
space ``params_to_genotype(architecture_params(g)) == g`` (for NB101 the *pruned* spec, which is what
``sample`` and ``mutate`` return).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from nas.errors import GenotypeError, NasError, RegistryError
from nas.registry import Registry
from search_spaces import space_from_spec
from search_spaces.base import Dimension, Genotype, SearchSpace

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

Encoding = Literal["categorical", "index"]
ENCODINGS: tuple[str, ...] = ("categorical", "index")

#: The Python types Optuna's CategoricalDistribution stores as they are.
_OPTUNA_CHOICE_TYPES = (bool, int, float, str, type(None))


class InvalidArchitectureError(GenotypeError):
    """The suggested values name no architecture of the space (only NB101 has such combinations)."""


class UnsupportedDistributionError(NasError, ValueError):
    """An Optuna distribution or parameter that the architecture mapping cannot take."""


class SpaceCodec:
    """Genotype <-> one value per :meth:`SearchSpace.dimensions`, for one space.

    ``values(genotype)`` returns a tuple with one choice per dimension; ``genotype(values)`` is its
    inverse and raises :class:`~nas.errors.GenotypeError` for values that name no genotype. The
    base class fits spaces whose genotype *is* that tuple (NB201).
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def values(self, genotype: Genotype) -> tuple[Any, ...]:
        return tuple(self.space.parse(genotype) if isinstance(genotype, str) else genotype)

    def genotype(self, values: Sequence[Any]) -> Genotype:
        return tuple(values)


CODECS: Registry[SpaceCodec] = Registry("architecture codec")
CODECS.register("nb201")(SpaceCodec)


@CODECS.register("darts")
class DartsCodec(SpaceCodec):
    """DARTS: per cell and node, the ordered input pair and each input's op (``to_choices``)."""

    def values(self, genotype: Genotype) -> tuple[Any, ...]:
        return tuple(self.space.to_choices(genotype))  # type: ignore[attr-defined]

    def genotype(self, values: Sequence[Any]) -> Genotype:
        return self.space.from_choices(list(values))  # type: ignore[attr-defined]


@CODECS.register("mbv3")
class MBv3Codec(SpaceCodec):
    """MBv3: resolution, width, depths, then every block slot; inactive slots carry fillers."""

    def values(self, genotype: Genotype) -> tuple[Any, ...]:
        g = self.space.parse(genotype) if isinstance(genotype, str) else genotype
        return tuple(self.space.encode(g))  # type: ignore[attr-defined]

    def genotype(self, values: Sequence[Any]) -> Genotype:
        return self.space.decode(list(values))  # type: ignore[attr-defined]


@CODECS.register("nb101")
class NB101Codec(SpaceCodec):
    """NB101: the 21 edge bits of a 7-vertex frame and its 5 interior ops.

    A pruned spec with ``n < 7`` vertices is framed by keeping its vertices ``0..n-2`` in place,
    moving its output to vertex 6, and filling vertices ``n-1..5`` with unconnected
    ``conv3x3-bn-relu`` vertices; pruning the frame gives the spec back.
    """

    def values(self, genotype: Genotype) -> tuple[Any, ...]:
        from search_spaces.nb101 import EDGES, MAX_VERTICES, OPS, parse_spec

        spec = parse_spec(genotype).pruned()
        n = spec.num_vertices
        where = [*range(n - 1), MAX_VERTICES - 1]  # old vertex -> frame vertex
        rows = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
        for i in range(n):
            for j in range(n):
                rows[where[i]][where[j]] = spec.matrix[i][j]
        ops = [OPS[0]] * MAX_VERTICES
        for v in range(1, n - 1):
            ops[v] = spec.ops[v]
        return tuple(rows[i][j] for i, j in EDGES) + tuple(ops[1:MAX_VERTICES - 1])

    def genotype(self, values: Sequence[Any]) -> Genotype:
        from search_spaces.nb101 import EDGES, INPUT, MAX_VERTICES, OUTPUT, NB101Spec

        if len(values) != len(EDGES) + MAX_VERTICES - 2:
            raise GenotypeError(f"an NB101 frame has {len(EDGES) + MAX_VERTICES - 2} values; got {len(values)}")
        rows = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
        for (i, j), bit in zip(EDGES, values[: len(EDGES)], strict=True):
            rows[i][j] = int(bit)
        ops = (INPUT, *values[len(EDGES):], OUTPUT)
        return NB101Spec(tuple(map(tuple, rows)), ops).pruned()


@CODECS.register("onnx_folder")
class OnnxFolderCodec(SpaceCodec):
    """``onnx_folder``: one categorical decision, the file."""

    def values(self, genotype: Genotype) -> tuple[Any, ...]:
        return (self.space.parse(genotype),)

    def genotype(self, values: Sequence[Any]) -> Genotype:
        return self.space.parse(values[0])


def _label(choice: Any) -> Any:
    """How a choice is stored in Optuna: as it is if Optuna can store it, else its ``str``."""
    if isinstance(choice, _OPTUNA_CHOICE_TYPES):
        return choice
    if isinstance(choice, tuple):
        return ",".join(str(c) for c in choice)
    return str(choice)


@dataclasses.dataclass(frozen=True)
class ArchitectureMapping:
    """A space's dimensions as Optuna distributions, and genotype <-> parameters.

    Built by :func:`architecture_mapping`; holds no Optuna object, so it is cheap to build and to copy
    across processes. ``prefix`` is put before every parameter name (for studies that tune other
    parameters next to the architecture).
    """

    space: SearchSpace
    codec: SpaceCodec
    encoding: str
    prefix: str
    dimensions: tuple[Dimension, ...]
    labels: tuple[tuple[Any, ...], ...]

    def names(self) -> list[str]:
        return [self.prefix + d.name for d in self.dimensions]

    def distributions(self) -> dict[str, BaseDistribution]:
        """Parameter name -> Optuna distribution, in dimension order."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        out: dict[str, BaseDistribution] = {}
        for name, labels in zip(self.names(), self.labels, strict=True):
            if self.encoding == "index":
                out[name] = IntDistribution(0, len(labels) - 1)
            else:
                out[name] = CategoricalDistribution(labels)
        return out

    def params(self, genotype: Genotype) -> dict[str, Any]:
        """The parameters that :meth:`genotype` maps back to ``genotype`` (the inverse mapping)."""
        out: dict[str, Any] = {}
        for name, labels, k in zip(self.names(), self.labels, self.choice_indices(genotype), strict=True):
            out[name] = k if self.encoding == "index" else labels[k]
        return out

    def choice_indices(self, genotype: Genotype) -> tuple[int, ...]:
        """The index of the genotype's choice in each dimension (raises GenotypeError for a foreign value)."""
        values = self.codec.values(genotype)
        if len(values) != len(self.dimensions):
            raise GenotypeError(f"{self.space.name}: the genotype gives {len(values)} values for "
                                f"{len(self.dimensions)} dimensions")
        out = []
        for dim, value in zip(self.dimensions, values, strict=True):
            try:
                out.append(dim.choices.index(value))
            except ValueError:
                raise GenotypeError(f"{self.space.name}: value {value!r} of dimension {dim.name!r} is not one of "
                                    f"{dim.choices}") from None
        return tuple(out)

    def grid_size(self) -> int:
        """The number of combinations of the dimensions' choices (valid or not)."""
        return math.prod(len(d.choices) for d in self.dimensions)

    def grid(self) -> list[Genotype | None]:
        """The genotype of every combination of choices, in C order (the first dimension slowest, as
        :func:`itertools.product`); ``None`` where the combination names no architecture, or names one
        whose own choices are another combination (an inactive slot's filler), so that each architecture
        appears once and its one-hot row (:meth:`onehot`) is its point of the grid. Mind :meth:`grid_size`
        before calling."""
        out: list[Genotype | None] = []
        for values in itertools.product(*(d.choices for d in self.dimensions)):
            try:
                g = self.codec.genotype(list(values))
                out.append(g if tuple(self.codec.values(g)) == values else None)
            except GenotypeError:
                out.append(None)
        return out

    def onehot(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        """One-hot rows ``(n, sum of the dimensions' choice counts)``: one block per dimension, float64."""
        widths = [len(d.choices) for d in self.dimensions]
        offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        out = np.zeros((len(genotypes), int(sum(widths))), dtype=np.float64)
        for row, g in enumerate(genotypes):
            out[row, offsets + np.asarray(self.choice_indices(g), dtype=np.int64)] = 1.0
        return out

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Suggest one value per dimension through ``trial``; returns the parameters."""
        out: dict[str, Any] = {}
        for name, labels in zip(self.names(), self.labels, strict=True):
            if self.encoding == "index":
                out[name] = trial.suggest_int(name, 0, len(labels) - 1)
            else:
                out[name] = trial.suggest_categorical(name, labels)
        return out

    def genotype(self, params: Mapping[str, Any]) -> Genotype:
        """The genotype of a complete set of parameters (a trial's ``params``)."""
        values = []
        for name, dim, labels in zip(self.names(), self.dimensions, self.labels, strict=True):
            if name not in params:
                raise UnsupportedDistributionError(
                    f"parameter {name!r} of space {self.space.name!r} is missing; the trial has "
                    f"{sorted(params)[:8]}")
            values.append(self._choice(name, dim, labels, params[name]))
        try:
            return self.codec.genotype(values)
        except GenotypeError as e:
            raise InvalidArchitectureError(f"{self.space.name}: the suggested values name no architecture: {e}") from e

    def _choice(self, name: str, dim: Dimension, labels: tuple[Any, ...], value: Any) -> Any:
        if self.encoding == "index":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(labels):
                raise UnsupportedDistributionError(f"parameter {name!r} must be an index 0..{len(labels) - 1}; "
                                                   f"got {value!r}")
            return dim.choices[value]
        try:
            return dim.choices[labels.index(value)]
        except ValueError:
            raise UnsupportedDistributionError(f"parameter {name!r} = {value!r} is not one of {labels}") from None


def architecture_mapping(space: str | SearchSpace, encoding: str = "categorical", prefix: str = "") -> \
        ArchitectureMapping:
    """The :class:`ArchitectureMapping` of a space (a name, ``NAME:ARGS`` or an instance)."""
    if encoding not in ENCODINGS:
        raise UnsupportedDistributionError(f"unknown encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")
    sp = space_from_spec(space)
    try:
        codec = CODECS.get(sp.name)(sp)
    except RegistryError as e:
        raise RegistryError(f"space {sp.name!r} has no Optuna mapping; spaces with one: "
                            f"{', '.join(CODECS.names())}") from e
    dims = tuple(sp.dimensions())
    labels = tuple(tuple(_label(c) for c in d.choices) for d in dims)
    for d, lab in zip(dims, labels, strict=True):
        if len(set(lab)) != len(lab):
            raise UnsupportedDistributionError(f"dimension {d.name!r} of {sp.name!r} has choices that Optuna "
                                               f"cannot tell apart: {lab}")
    return ArchitectureMapping(sp, codec, encoding, prefix, dims, labels)


def suggest_architecture(trial: optuna.trial.BaseTrial, space: str | SearchSpace | ArchitectureMapping, *,
                         encoding: str = "categorical", prefix: str = "") -> Genotype:
    """Suggest one genotype of ``space`` through ``trial`` (any sampler, ``study.optimize`` or ask/tell).

    Each dimension becomes one parameter named ``prefix + dimension.name``. Returns the genotype;
    raises :class:`InvalidArchitectureError` when the values name none (NB101 only, see the module
    docstring).
    """
    mapping = space if isinstance(space, ArchitectureMapping) else architecture_mapping(space, encoding, prefix)
    return mapping.genotype(mapping.suggest(trial))


def architecture_params(space: str | SearchSpace | ArchitectureMapping, genotype: Genotype | str, *,
                        encoding: str = "categorical", prefix: str = "") -> dict[str, Any]:
    """The trial parameters of ``genotype`` (the inverse of :func:`suggest_architecture`)."""
    mapping = space if isinstance(space, ArchitectureMapping) else architecture_mapping(space, encoding, prefix)
    g = mapping.space.parse(genotype) if isinstance(genotype, str) else genotype
    return mapping.params(g)


def params_to_genotype(space: str | SearchSpace | ArchitectureMapping, params: Mapping[str, Any], *,
                       encoding: str = "categorical", prefix: str = "") -> Genotype:
    """The genotype of a trial's ``params`` (e.g. ``study.best_trial.params``)."""
    mapping = space if isinstance(space, ArchitectureMapping) else architecture_mapping(space, encoding, prefix)
    return mapping.genotype(params)


def enqueue_architecture(study: optuna.Study, space: str | SearchSpace | ArchitectureMapping,
                         genotype: Genotype | str, *, encoding: str = "categorical", prefix: str = "",
                         user_attrs: dict[str, Any] | None = None, skip_if_exists: bool = True) -> None:
    """Queue a known architecture: its trial will suggest exactly ``genotype`` (``study.enqueue_trial``)."""
    params = architecture_params(space, genotype, encoding=encoding, prefix=prefix)
    study.enqueue_trial(params, user_attrs=user_attrs, skip_if_exists=skip_if_exists)
