"""Cost models: what an architecture costs on hardware, from its graph.

Every cost model implements :class:`CostModel` -- ``cost(graph, genotype=None) -> float`` in its
``unit`` -- and is registered in :data:`COST_MODELS`; :func:`cost_model_from_spec` builds one from
command-line text:

==================  ====  =====================================================================
spec                unit  what it is
==================  ====  =====================================================================
``params``          M     learnable parameters of the IR (millions)
``flops``           M     FLOPs per sample of the IR (millions; convention of :mod:`nas.ir.ops`)
``measured``        ms    onnxruntime latency on this machine, batch 1 (see :class:`MeasuredLatency`)
``table:DEVICE``    ms    NAS-Bench-201's measured latency on DEVICE (``table:pixel3``, ...), for
                          NB201 genotypes only, from ``nb201/nb201_latency_help.csv``
``predicted:FILE``  ms    a saved latency predictor (``nas predictor train --target latency:DEVICE``
                          or ``--target measured``), for any graph: where no table exists
==================  ====  =====================================================================

A :class:`Constraint` is a cost model with a bound; the search loop applies constraints to a
candidate before it is evaluated, so any strategy can take them. :func:`feasibility` turns a list of
them into a ``genotype -> bool`` predicate for a model that proposes only what meets them (``bo``,
:class:`~nas.integrations.samplers.PredictorSampler`).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np

from nas.errors import DataError, NasError, SearchError
from nas.ir import ArchGraph
from nas.registry import Registry

if TYPE_CHECKING:
    import onnx

    from search_spaces.base import Genotype, SearchSpace

log = logging.getLogger(__name__)

__all__ = [
    "COST_MODELS",
    "Constraint",
    "CostModel",
    "MeasuredLatency",
    "PredictedLatency",
    "TableLatency",
    "cost_model_from_spec",
    "feasibility",
    "measure_onnx_many",
]


@runtime_checkable
class CostModel(Protocol):
    """The cost of an architecture (lower is cheaper)."""

    name: str
    unit: str

    def cost(self, graph: ArchGraph, genotype: Any = None) -> float:
        """The cost of the architecture of ``graph`` (its genotype, for models that look it up)."""
        ...


def reads_graph(model: CostModel) -> bool:
    """Whether ``model.cost`` reads the graph: false for a model whose class sets ``reads_graph = False``
    (a table looked up by genotype), so a caller that has only a genotype need not build its graph."""
    return bool(getattr(model, "reads_graph", True))


COST_MODELS: Registry[CostModel] = Registry("cost model")


class Params:
    """Learnable parameters of the IR, in millions."""

    name = "params"
    unit = "M"

    def cost(self, graph: ArchGraph, genotype: Any = None) -> float:
        return graph.params / 1e6


class Flops:
    """FLOPs per sample of the IR, in millions (the convention of :mod:`nas.ir.ops`)."""

    name = "flops"
    unit = "M"

    def cost(self, graph: ArchGraph, genotype: Any = None) -> float:
        return graph.flops / 1e6


def _options(threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return opts


def _session(model: Any, threads: int) -> tuple[Any, dict[str, np.ndarray]]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), _options(threads), providers=["CPUExecutionProvider"])
    feed = {inp.name: np.zeros([int(d) for d in inp.shape], dtype=np.float32) for inp in sess.get_inputs()}
    return sess, feed


def measure_onnx_many(models: Sequence[Any], threads: int = 1, warmup: int = 10, repeats: int = 30,
                      rounds: int = 1) -> list[float]:
    """Per ONNX ``ModelProto`` of ``models``, its onnxruntime latency in ms (CPU provider, inputs of
    zeros at the model's fixed shapes, ``threads`` intra-op threads, 1 inter-op): in each of ``rounds``
    rounds, ``warmup`` untimed then ``repeats`` timed runs, whose median is the round's figure; the
    result is the least of the rounds' figures. The rounds are interleaved across the models (every
    model once per round), so one model's rounds are seconds apart: on a shared machine another process
    slows a measurement and never speeds it up, and load comes and goes over seconds (the same network
    measured 15 s apart differed by up to 30% on a 2-core machine), so the least of spread-out medians
    is the unloaded machine's figure.

    With one intra-op thread onnxruntime runs the graph on the calling thread, and the time taken is
    that thread's CPU time (``time.thread_time``): wall-clock time would also count the time the process
    waited for a core, which inflates long runs more than short ones. With more threads it is
    wall-clock time. CPU time still grows under load (caches and memory bandwidth are shared), which
    the rounds are for.
    """
    clock = time.thread_time if threads == 1 else time.perf_counter
    sessions = [_session(m, threads) for m in models]
    best = [math.inf] * len(sessions)
    for _ in range(max(1, rounds)):
        for k, (sess, feed) in enumerate(sessions):
            for _ in range(warmup):
                sess.run(None, feed)
            times = []
            for _ in range(repeats):
                t = clock()
                sess.run(None, feed)
                times.append((clock() - t) * 1e3)
            best[k] = min(best[k], float(statistics.median(times)))
    return best


class MeasuredLatency:
    """Onnxruntime latency in ms of one batch-1 forward pass on this machine's CPU.

    The graph is rebuilt as a PyTorch module (:meth:`ArchGraph.to_torch`, seeded), exported to ONNX
    and timed by :func:`measure_onnx_many`: ``threads`` intra-op threads (1 by default: the edge-device
    setting, and stable on a shared machine), ``warmup`` untimed runs, the median of ``repeats`` timed
    runs, the least over ``rounds`` rounds. :meth:`costs` measures several graphs with their rounds
    interleaved (``chunk`` graphs at a time), which spreads each graph's rounds over seconds; a single
    :meth:`cost` runs its rounds back to back. Results are cached by graph fingerprint, so an
    isomorphic architecture is measured once: graphs with one fingerprint export to one network (the
    sums' terms in a canonical order, ``canonical_sums`` of :class:`~nas.ir.torch_module.GraphModule`). Latency is a
    property of this machine: compare architectures measured on one machine.
    """

    name = "measured"
    unit = "ms"

    def __init__(self, threads: int = 1, warmup: int = 10, repeats: int = 30, rounds: int = 3,
                 chunk: int = 32) -> None:
        if threads < 1 or warmup < 0 or repeats < 1 or rounds < 1 or chunk < 1:
            raise SearchError(f"measured latency needs threads >= 1, warmup >= 0, repeats >= 1, rounds >= 1 and "
                              f"chunk >= 1; got {threads}, {warmup}, {repeats}, {rounds}, {chunk}")
        self.threads, self.warmup, self.repeats, self.rounds, self.chunk = threads, warmup, repeats, rounds, chunk
        self._cache: dict[str, float] = {}

    def cost(self, graph: ArchGraph, genotype: Any = None) -> float:
        return self.costs([graph])[0]

    def costs(self, graphs: Sequence[ArchGraph]) -> list[float]:
        """The latency of each of ``graphs`` (ms); the uncached ones are measured together."""
        keys = [g.fingerprint() for g in graphs]
        todo: dict[str, ArchGraph] = {}
        for k, g in zip(keys, graphs, strict=True):
            if k not in self._cache:
                todo.setdefault(k, g)
        items = list(todo.items())
        for i in range(0, len(items), self.chunk):
            part = items[i:i + self.chunk]
            ms = measure_onnx_many([_export(g) for _, g in part], self.threads, self.warmup, self.repeats,
                                   self.rounds)
            self._cache.update((k, v) for (k, _), v in zip(part, ms, strict=True))
        return [self._cache[k] for k in keys]


#: The version of the network :func:`_export` writes for a graph (what :class:`MeasuredLatency` times and
#: :func:`runtime_graph` optimizes). Measurements kept on disk carry it in their name, so that a change
#: to the export (2: a sum's terms in a canonical order, a repeated term once times its count) is not
#: read as the same network.
EXPORT_VERSION = 2


def _export(graph: ArchGraph) -> Any:
    import torch

    from nas.ir.torch_export import export_onnx

    shape = tuple(graph.inputs[0].out_shapes[0])
    return export_onnx(graph.to_torch(seed=0, canonical_sums=True), torch.zeros((1, *shape[1:])))


def runtime_graph(graph: ArchGraph, threads: int = 1) -> onnx.ModelProto:
    """The graph onnxruntime runs when :class:`MeasuredLatency` times ``graph``: the same export, after
    the session's graph optimizations (the CPU provider's defaults: constant folding, which removes
    whatever does not depend on the input; fusions such as Conv+Relu; the NCHWc layout with its
    reorders). ``graph`` needs shapes only (weights are drawn, seeded), so a graph without weight
    values works. Exporting takes a few tenths of a second."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "optimized.onnx"
        opts = _options(threads)
        opts.optimized_model_filepath = str(path)
        opts.log_severity_level = 3  # the NCHWc warning: the file is read here, on this machine, only
        ort.InferenceSession(_export(graph).SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return onnx.load(str(path))


class TableLatency:
    """NAS-Bench-201's latency of an NB201 genotype on ``device``, in ms (HW-NAS-Bench measurements,
    ``nb201/nb201_latency_help.csv``; see :func:`benchmarks.tabular.nb201_devices` for the devices)."""

    name = "table"
    unit = "ms"
    reads_graph = False  # looked up by genotype

    def __init__(self, device: str, data_dir: str | Path | None = None) -> None:
        from benchmarks.tabular import nb201_devices, nb201_latency

        devices = nb201_devices(data_dir)
        if device not in devices:
            raise SearchError(f"unknown latency device {device!r}; valid: {', '.join(devices)}")
        table = nb201_latency(data_dir)
        self.device = device
        self._by_arch = dict(zip((str(a) for a in table["arch_str"]), (float(v) for v in table[device]), strict=True))

    def cost(self, graph: ArchGraph, genotype: Any = None) -> float:
        from search_spaces.nb201 import format_arch

        if genotype is None:
            raise SearchError(f"table:{self.device} latency is looked up by NB201 genotype; none was given")
        try:
            arch = format_arch(genotype)
        except Exception as e:  # not an NB201 genotype
            raise SearchError(f"table:{self.device} latency exists for NB201 genotypes only; got {genotype!r}") from e
        if arch not in self._by_arch:
            raise DataError(f"{arch} has no {self.device} latency in the table")
        return self._by_arch[arch]


class PredictedLatency:
    """The mean prediction of a saved latency predictor (:mod:`predictors.latency`), in its unit (ms).

    ``path`` is an archive written by ``nas predictor train`` (any registered predictor loads). One
    trained with ``--features`` gets them computed for each candidate (:mod:`predictors.features`):
    ``geno``, the literal genotype's one-hot, gives device tables the network they measured back,
    since the IR drops what computes nothing and a device may still run it. The predictor's ``label``
    (``table:pixel3``, ``measured``, ...) becomes :attr:`device`, so constraints print what the
    latency stands for. Predictions are cached by graph fingerprint (and by genotype with ``geno``).
    """

    name = "predicted"

    def __init__(self, path: str | Path, data_dir: str | Path | None = None) -> None:
        from predictors import load_predictor
        from predictors.base import provenance
        from predictors.data import is_latency_target
        from predictors.features import saved_spec

        self.path = Path(path)
        self.predictor = load_predictor(self.path)
        target = provenance(self.path).get("target")
        if isinstance(target, str) and not is_latency_target(target):  # files fitted in Python record none
            raise SearchError(f"{self.path} predicts {target}, not a latency: as a search objective it is "
                              f"--objective predictor:{self.path}")
        config = getattr(self.predictor, "config", None)
        self.unit = str(getattr(config, "unit", "ms"))
        self.device = str(getattr(config, "label", "") or self.path.name)
        self.features = saved_spec(self.predictor, provenance(self.path), where=str(self.path))
        self.data_dir = data_dir  # of zc features on cifar10 (default: $NAS_DATA)
        self._space: Any = None
        if self.features is not None and self.features.kind == "geno":
            from search_spaces import space_from_spec

            self._space = space_from_spec(self.features.space)
        self._cache: dict[str, float] = {}

    def cost(self, graph: ArchGraph, genotype: Any = None) -> float:
        key = graph.fingerprint()
        arch = None
        if self._space is not None:
            if genotype is None:
                raise SearchError(f"the latency predictor {self.path} reads the genotype (features geno); "
                                  f"this candidate has none")
            try:
                arch = self._space.format(genotype)
            except NasError as e:
                raise SearchError(f"the latency predictor {self.path} reads {self._space.name} genotypes "
                                  f"(features geno); this candidate is not one: {e}") from e
            key = f"{key}|{arch}"
        if key not in self._cache:
            if self.features is None:
                mean, _ = self.predictor.predict([graph])
            else:
                mean, _ = self.predictor.predict([graph], features=self.features.compute(
                    [graph], None if arch is None else [arch], data_dir=self.data_dir))
            value = float(np.asarray(mean).reshape(-1)[0])
            if not np.isfinite(value):
                raise SearchError(f"the latency predictor {self.path} gave {value} for {graph.name}")
            self._cache[key] = value
        return self._cache[key]


COST_MODELS.register("params")(Params)
COST_MODELS.register("flops")(Flops)
COST_MODELS.register("measured")(MeasuredLatency)
COST_MODELS.register("table")(TableLatency)
COST_MODELS.register("predicted")(PredictedLatency)


def cost_model_from_spec(spec: str | CostModel, data_dir: str | Path | None = None) -> CostModel:
    """``params``, ``flops``, ``measured``, ``table:DEVICE`` or ``predicted:FILE`` (see the module docstring)."""
    if not isinstance(spec, str):
        return spec
    name, _, arg = spec.partition(":")
    if name == "predicted":
        if not arg:
            raise SearchError("predicted latency needs a saved predictor: predicted:FILE.nasp")
        return PredictedLatency(arg, data_dir)
    if name == "table":
        if not arg:
            raise SearchError("table latency needs a device: table:DEVICE, e.g. table:pixel3")
        return TableLatency(arg, data_dir)
    if arg:
        raise SearchError(f"cost model {name!r} takes no argument; got {spec!r}")
    return COST_MODELS.resolve(name)


@dataclass(frozen=True)
class Constraint:
    """``model.cost(...) <= limit``."""

    model: CostModel
    limit: float

    @property
    def label(self) -> str:
        device = getattr(self.model, "device", None)
        return f"{self.model.name}{':' + device if device else ''} <= {self.limit:g} {self.model.unit}"

    def check(self, graph: ArchGraph, genotype: Any = None) -> tuple[bool, float]:
        value = self.model.cost(graph, genotype)
        return value <= self.limit, value


def feasibility(space: SearchSpace, constraints: Sequence[Constraint]) -> Callable[[Genotype], bool]:
    """``genotype -> bool``: whether the genotype meets every constraint (answers cached by its text; the
    graph is built only for a cost model that reads it, and not at all once a constraint fails)."""
    constraints = tuple(constraints)
    answers: dict[str, bool] = {}

    def meets(genotype: Genotype) -> bool:
        graph: ArchGraph | None = None
        for c in constraints:
            if graph is None and reads_graph(c.model):
                graph = space.to_graph(genotype)
            if not c.check(cast(ArchGraph, graph), genotype)[0]:  # graph is None only for models that ignore it
                return False
        return True

    def feasible(genotype: Genotype) -> bool:
        key = space.format(genotype)
        if key not in answers:
            answers[key] = meets(genotype)
        return answers[key]

    return feasible
