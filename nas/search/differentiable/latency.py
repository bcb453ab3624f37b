"""The per-op latency lookup table and the expected latency ``E[lat]`` of a supernet.

ProxylessNAS (Cai, Zhu & Han, ICLR 2019, Sec. 3.3) models a network's latency as the sum of its
ops' latencies, ``E[lat] = sum_rows sum_i p_i * lat(op_i)``, with ``lat`` from a table measured on
the target device. Here the device is this machine's CPU under onnxruntime:

* each :class:`~nas.search.differentiable.supernet.OpSpec` (a module and its input shape) is built
  with a fixed seed, exported with the TorchScript ONNX exporter (``nas.ir.torch_export``), and run by
  an ``InferenceSession`` (CPU provider, batch 1, ``threads`` intra-op threads, 1 inter-op): in each of
  ``rounds`` rounds ``warmup`` untimed then ``repeats`` timed runs, whose median in ms is the round's
  figure (BENCHMARKS.md: 10 and at least 30); the entry is the least of the rounds' medians. The
  rounds of a batch of models are interleaved (every model once per round; :func:`measure_onnx_many`),
  so they are seconds apart: on a shared machine another process slows a measurement, never speeds
  it up, and the load comes and goes over seconds (the same op measured 15 s apart differed by up to
  30% here), so the least of spread-out medians is the figure of the unloaded machine that every entry,
  calibration network and check is reduced to;
* entries are stored by the fingerprint of the op's :class:`~nas.ir.ArchGraph` (the same op at the
  same shape anywhere, in any supernet, is measured once), with an index from the spec's key to the
  fingerprint so a later lookup needs no export;
* the table is a JSON file named by the machine settings (onnxruntime version, threads, processor)
  under ``~/.cache/nas/latency`` unless a path is given; it is written after every batch of new
  entries, so an interrupted build loses little.

A network's predicted latency is ``factor * summed + offset_ms``, where ``summed`` is the fixed
modules' entries plus the chosen ops' entries. Each entry has the cost of a session run itself
subtracted (measured on a one-node graph) and ``summed`` adds it back once. A sum of ops measured
alone still misses what running them together costs (each op alone runs with its weights and
activations warm in the caches; in a network they were evicted by the other ops since the last run):
on this machine the MobileNetV3 networks of the width-1.0 supernet measured 0.96 to 1.17 times their
sum (two tables built minutes apart), the ratio lowest for the fastest network (1.5 ms summed). So,
as nn-Meter corrects kernel sums at the network level, :meth:`LatencyModel.calibrate` measures ``n``
networks of the supernet that span its whole latency range -- the fastest network (every row its
fastest op, a dropped block wherever allowed), the slowest (every row its slowest op), and ``n - 2``
between them (network ``k`` takes in every row the op at quantile ``k / (n - 1)`` of the row's
latencies, moved by one at random, seeded) -- and fits ``measured = factor * summed + offset_ms`` by
least squares on the relative residuals ``(prediction - measured) / measured``, the error the table
is judged by (``n >= 3``; with fewer, or a line that falls, the median ratio and no offset). Since
``summed`` is a sum over rows, no network of the supernet sums to less than the fastest or more than
the slowest: the line is only ever used between its calibration points, never extrapolated. (The
extremes used to be moved at random too: the fastest of 5 calibration networks summed to 2.2 ms, a
network derived with a large latency weight to 2.0 ms, and the line, measured under load with an
intercept of 0.77 ms, predicted it 22% too slow.) The fit is stored in the table per supernet
configuration. The networks a search derives are not among the calibration networks, so the check of
their predicted against measured latency (:func:`measure_module` or, for several networks together,
:func:`measure_modules`: the same estimator) is out of sample. The offset does not change the
gradient of ``E[lat]``; the factor scales it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nas.hardware import measure_onnx_many
from nas.search.differentiable.supernet import OpSpec, Supernet

log = logging.getLogger(__name__)

__all__ = ["LatencyLUT", "LatencyModel", "default_lut_path", "fit_calibration", "measure_module", "measure_modules",
           "measure_onnx", "measure_onnx_many"]

# 2: entries are the least of interleaved rounds' medians (1: one median)
FORMAT = 2


def measure_onnx(model: Any, threads: int = 1, warmup: int = 10, repeats: int = 30, rounds: int = 1) -> float:
    """Onnxruntime latency (ms) of one batch run of ``model`` (an ONNX ``ModelProto``); see
    :func:`measure_onnx_many` (its rounds run back to back here)."""
    return measure_onnx_many([model], threads, warmup, repeats, rounds)[0]


def _export(module: nn.Module, shape: tuple[int, ...]) -> Any:
    from nas.ir.torch_export import export_onnx

    return export_onnx(module.eval(), torch.zeros(shape))


def measure_module(module: nn.Module, shape: tuple[int, ...], threads: int = 1, warmup: int = 10,
                   repeats: int = 30, rounds: int = 1) -> float:
    """Onnxruntime latency (ms) of ``module`` exported on an input of ``shape`` (:func:`measure_onnx`)."""
    return measure_onnx(_export(module, shape), threads, warmup, repeats, rounds)


def measure_modules(modules: Sequence[tuple[nn.Module, tuple[int, ...]]], threads: int = 1, warmup: int = 10,
                    repeats: int = 30, rounds: int = 5) -> list[float]:
    """Latencies (ms) of ``(module, input shape)`` pairs, measured together in interleaved rounds
    (:func:`measure_onnx_many`): how the calibration networks and a check of derived networks are timed."""
    return measure_onnx_many([_export(m, shape) for m, shape in modules], threads, warmup, repeats, rounds)


def default_lut_path(threads: int = 1) -> Path:
    """``~/.cache/nas/latency/lut-<hash>.json``, the hash of onnxruntime's version, the thread count
    and the processor: a table measured on other settings is another file."""
    import onnxruntime as ort

    ident = f"{ort.__version__}|{threads}|{platform.processor() or platform.machine()}|{platform.node()}"
    h = hashlib.sha1(ident.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "nas" / "latency" / f"lut-{h}.json"


class LatencyLUT:
    """Measured per-op latencies in ms, cached in a JSON file by graph fingerprint (module docstring).

    ``rounds``: interleaved rounds per measurement, the least median kept (the networks of
    :meth:`LatencyModel.calibrate` take ``max(rounds, 5)``).
    """

    def __init__(self, path: str | Path | None = None, threads: int = 1, warmup: int = 10, repeats: int = 30,
                 seed: int = 0, rounds: int = 3) -> None:
        self.path = Path(path) if path is not None else default_lut_path(threads)
        self.threads, self.warmup, self.repeats, self.seed, self.rounds = threads, warmup, repeats, seed, rounds
        self.entries: dict[str, dict[str, Any]] = {}
        self.index: dict[str, str] = {}
        self.calibrations: dict[str, dict[str, Any]] = {}
        self._overhead: float | None = None
        self.measured = 0
        if self.path.is_file():
            raw = json.loads(self.path.read_text())
            if raw.get("format") == FORMAT and raw.get("threads") == threads:
                self.entries, self.index = raw["entries"], raw["index"]
                self.calibrations = raw.get("calibrations", {})
                self._overhead = raw.get("overhead_ms")

    def _save(self) -> None:
        import onnxruntime as ort

        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "threads": self.threads, "warmup": self.warmup, "repeats": self.repeats,
                   "rounds": self.rounds, "onnxruntime": ort.__version__, "platform": platform.platform(),
                   "overhead_ms": self._overhead, "entries": self.entries, "index": self.index,
                   "calibrations": self.calibrations}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, self.path)

    def overhead_ms(self) -> float:
        """The cost of one ``InferenceSession.run`` itself: the latency of a one-node graph (a ReLU on
        one number), measured once and stored. Every entry has it subtracted, and a network's
        prediction adds it back once, since a network is one run, not one per op."""
        if self._overhead is None:
            model = _export(nn.ReLU(), (1, 1))
            self._overhead = measure_onnx(model, self.threads, self.warmup, max(self.repeats, 200), self.rounds)
            self._save()
        return self._overhead

    def latency(self, spec: OpSpec) -> float:
        """The entry of ``spec`` less :meth:`overhead_ms` (at least 0), measured now (and saved) if
        the table lacks it."""
        return max(0.0, self.raw_latency(spec) - self.overhead_ms())

    def raw_latency(self, spec: OpSpec) -> float:
        """The measured latency of ``spec`` as it ran alone, session overhead included."""
        fp = self.index.get(spec.key)
        if fp is None or fp not in self.entries:
            self.build([spec])
            fp = self.index[spec.key]
        return float(self.entries[fp]["ms"])

    def build(self, specs: Iterable[OpSpec], progress: Callable[[Iterable[OpSpec]], Iterable[OpSpec]] | None = None
              ) -> int:
        """Measure every spec the table lacks (distinct keys only; ``progress`` wraps their export),
        all together in interleaved rounds; returns how many entries were new."""
        from nas.ir import ArchGraph

        unique = list({s.key: s for s in specs}.values())
        missing = [s for s in unique if self.index.get(s.key) not in self.entries]
        new: dict[str, tuple[Any, OpSpec]] = {}
        for spec in (progress(missing) if progress else missing):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                module = spec.build()
            model = _export(module, spec.input_shape)
            fp = ArchGraph.from_onnx(model).fingerprint()
            self.index[spec.key] = fp
            if fp not in self.entries:
                new.setdefault(fp, (model, spec))
        if missing:
            ms = measure_onnx_many([m for m, _ in new.values()], self.threads, self.warmup, self.repeats, self.rounds)
            for (fp, (_, spec)), v in zip(new.items(), ms, strict=True):
                self.entries[fp] = {"ms": v, "key": spec.key, "shape": list(spec.input_shape)}
            self.measured += len(new)
            self._save()
        return len(new)


def fit_calibration(summed: Sequence[float], measured: Sequence[float]) -> tuple[float, float]:
    """``(factor, offset_ms)`` of ``measured ~ factor * summed + offset_ms``: least squares on the
    relative residuals ``(factor * s + offset - m) / m`` for 3 or more networks; the median of
    ``m / s`` and no offset for fewer, or where the line would fall with the sum (noise, not a
    correction)."""
    s, m = np.asarray(summed, dtype=float), np.asarray(measured, dtype=float)
    factor, offset = float(np.median(m / s)), 0.0
    if len(s) >= 3 and float(np.ptp(s)) > 0:
        a, b = np.polyfit(s, m, 1, w=1.0 / m)  # w scales each residual: (a s + b - m) / m
        if a > 0:
            factor, offset = float(a), float(b)
    return factor, offset


def all_specs(supernet: Supernet) -> list[OpSpec]:
    fixed, table = supernet.latency_specs()
    out = list(fixed)
    for rows in table.values():
        for row in rows:
            for specs in row:
                out.extend(specs)
    return out


@dataclass
class LatencyModel:
    """``E[lat]`` of a supernet from a :class:`LatencyLUT`:
    ``factor * (fixed_ms + sum_g sum(p_g * table_g))``.

    ``table_g``: ``(rows, ops)`` ms per group (an invalid op holds 0 and has probability 0);
    ``factor``: the network-level calibration (1 until :meth:`calibrate`).
    """

    fixed_ms: float
    tables: dict[str, Tensor]
    factor: float = 1.0
    offset_ms: float = 0.0

    @classmethod
    def from_lut(cls, supernet: Supernet, lut: LatencyLUT,
                 progress: Callable[[Iterable[OpSpec]], Iterable[OpSpec]] | None = None,
                 calibrate: int = 0, seed: int = 0) -> LatencyModel:
        """The model of ``supernet``'s entries (measuring those missing); ``calibrate > 0`` also
        fits the factor on that many networks spanning the supernet's range (cached in the table)."""
        lut.build(all_specs(supernet), progress)
        fixed, table = supernet.latency_specs()
        tables = {}
        for g, rows in table.items():
            tables[g] = torch.tensor([[sum(lut.latency(s) for s in specs) for specs in row] for row in rows],
                                     dtype=torch.float32)
        model = cls(sum(lut.latency(s) for s in fixed) + lut.overhead_ms(), tables)
        if calibrate > 0:
            model.calibrate(supernet, lut, calibrate, seed)
        return model

    def expected(self, probs: dict[str, Tensor]) -> Tensor:
        """``E[lat]`` in ms for per-group probabilities ``(rows, ops)``; differentiable in them."""
        total = torch.tensor(self.fixed_ms)
        for g, t in self.tables.items():
            total = total + (probs[g] * t).sum()
        return self.factor * total + self.offset_ms

    def predict(self, ops: dict[str, list[int]], calibrated: bool = True) -> float:
        """The table's latency (ms) of the network with op ``ops[g][row]`` in every row."""
        raw = self.fixed_ms + sum(float(t[r, i]) for g, t in self.tables.items() for r, i in enumerate(ops[g]))
        return raw * self.factor + self.offset_ms if calibrated else raw

    def calibration_ops(self, supernet: Supernet, n: int, seed: int = 0) -> list[dict[str, list[int]]]:
        """The ``n`` networks (ops per row) that :meth:`calibrate` measures, spanning the supernet's
        latency range by the table: the fastest, the slowest (``n >= 2``), and ``n - 2`` at the
        quantiles between, each row moved by one op at random (module docstring)."""
        gen = torch.Generator().manual_seed(seed)
        out = []
        for k in range(n):
            q = k / (n - 1) if n > 1 else 0.5
            extreme = n > 1 and k in (0, n - 1)
            ops: dict[str, list[int]] = {}
            for g, t in self.tables.items():
                rows = []
                for r in range(t.shape[0]):
                    valid = [int(i) for i in supernet.valid[g][r].nonzero().flatten()]
                    valid.sort(key=lambda i, r=r, t=t: float(t[r, i]))  # type: ignore[misc]
                    jitter = 0 if extreme else int(torch.randint(-1, 2, (1,), generator=gen))
                    pos = min(len(valid) - 1, max(0, round(q * (len(valid) - 1)) + jitter))
                    rows.append(valid[pos])
                ops[g] = rows
            out.append(ops)
        return out

    def calibrate(self, supernet: Supernet, lut: LatencyLUT, n: int = 9, seed: int = 0) -> float:
        """Fit ``factor`` and ``offset_ms`` (:func:`fit_calibration`) on :meth:`calibration_ops`'s ``n``
        networks, measured together in ``max(lut.rounds, 5)`` interleaved rounds (module docstring).
        Cached in ``lut`` by the supernet's entries, ``n`` and ``seed``. Returns the factor."""
        keys = sorted(s.key for s in all_specs(supernet))
        ident = hashlib.sha1(json.dumps(["v3", keys, n, seed]).encode()).hexdigest()[:16]
        cached = lut.calibrations.get(ident)
        if cached is None:
            space = supernet.space
            nets, summed_all = [], []
            for ops in self.calibration_ops(supernet, n, seed):
                genotype = supernet.genotype(ops, {g: [0.0] * len(r) for g, r in ops.items()})
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(lut.seed)
                    module = space.to_module(genotype)
                nets.append((module, tuple(space.example_input_shape(1, genotype)), space.format(genotype)))
                summed_all.append(self.predict(ops, calibrated=False))
            measured_all = measure_modules([(m, shape) for m, shape, _ in nets], lut.threads, lut.warmup,
                                           lut.repeats, max(lut.rounds, 5))
            factor, offset = fit_calibration(summed_all, measured_all)
            samples = [{"genotype": text, "summed_ms": s, "measured_ms": m}
                       for (_, _, text), s, m in zip(nets, summed_all, measured_all, strict=True)]
            cached = {"factor": factor, "offset_ms": offset, "samples": samples}
            lut.calibrations[ident] = cached
            lut._save()
        self.factor = float(cached["factor"])
        self.offset_ms = float(cached.get("offset_ms", 0.0))
        return self.factor
