"""The per-op latency lookup table and the expected latency ``E[lat]`` of a supernet.

ProxylessNAS (Cai, Zhu & Han, ICLR 2019, Sec. 3.3) models a network's latency as the sum of its
ops' latencies, ``E[lat] = sum_rows sum_i p_i * lat(op_i)``, with ``lat`` from a table measured on
the target device. Here the device is this machine's CPU under onnxruntime:

* each :class:`~nas.search.differentiable.supernet.OpSpec` (a module and its input shape) is built
  with a fixed seed, exported with the TorchScript ONNX exporter (``nas.ir.torch_export``), and run by
  an ``InferenceSession`` (CPU provider, batch 1, ``threads`` intra-op threads, 1 inter-op) for
  ``warmup`` untimed then ``repeats`` timed runs; the entry is the median in ms (BENCHMARKS.md: 10 and
  at least 30);
* entries are stored by the fingerprint of the op's :class:`~nas.ir.ArchGraph` (the same op at the
  same shape anywhere, in any supernet, is measured once), with an index from the spec's key to the
  fingerprint so a later lookup needs no export;
* the table is a JSON file named by the machine settings (onnxruntime version, threads, processor)
  under ``~/.cache/nas/latency`` unless a path is given; it is written after every new entry, so an
  interrupted build loses nothing.

A network's predicted latency is ``factor * summed + offset_ms``, where ``summed`` is the fixed
modules' entries plus the chosen ops' entries. Each entry has the cost of a session run itself
subtracted (measured on a one-node graph) and ``summed`` adds it back once. A sum of ops measured
alone still misses what running them together costs (a working set larger than the caches,
per-node scheduling): on this machine it came out 10-25% under the measured MobileNetV3 networks,
more for the faster ones. So, as nn-Meter corrects kernel sums at the network level,
:meth:`LatencyModel.calibrate` measures ``n`` networks of the supernet spread from its fastest to
its slowest ops (network ``k`` takes in every row the op at quantile ``k / (n - 1)`` of the row's
latencies, moved by one at random, seeded) and fits ``measured = factor * summed + offset_ms`` by
least squares (``n >= 3``; with fewer, the median ratio and no offset); the fit is stored in the
table per supernet configuration. The networks a search derives are not among them, so the check of
their predicted against measured latency (:func:`measure_module`, measured the same way) is out of
sample. The offset does not change the gradient of ``E[lat]``; the factor scales it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nas.search.differentiable.supernet import OpSpec, Supernet

log = logging.getLogger(__name__)

__all__ = ["LatencyLUT", "LatencyModel", "default_lut_path", "measure_module", "measure_onnx"]

FORMAT = 1


def measure_onnx(model: Any, threads: int = 1, warmup: int = 10, repeats: int = 30) -> float:
    """Median onnxruntime latency (ms) of one batch run of ``model`` (an ONNX ``ModelProto``) on zeros.

    With one intra-op thread onnxruntime runs the graph on the calling thread, and the time taken is
    that thread's CPU time (``time.thread_time``): on a shared machine wall-clock time also counts the
    time the process waited for a core, which inflates long runs (a whole network) more than short
    ones (one op) and biases the comparison of the table against a measurement. With more threads it
    is wall-clock time.
    """
    import onnxruntime as ort

    clock = time.thread_time if threads == 1 else time.perf_counter

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {}
    for inp in sess.get_inputs():
        feed[inp.name] = np.zeros([int(d) for d in inp.shape], dtype=np.float32)
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t = clock()
        sess.run(None, feed)
        times.append((clock() - t) * 1e3)
    return float(statistics.median(times))


def _export(module: nn.Module, shape: tuple[int, ...]) -> Any:
    from nas.ir.torch_export import export_onnx

    return export_onnx(module.eval(), torch.zeros(shape))


def measure_module(module: nn.Module, shape: tuple[int, ...], threads: int = 1, warmup: int = 10,
                   repeats: int = 30) -> float:
    """Median onnxruntime latency (ms) of ``module`` exported on an input of ``shape``."""
    return measure_onnx(_export(module, shape), threads, warmup, repeats)


def default_lut_path(threads: int = 1) -> Path:
    """``~/.cache/nas/latency/lut-<hash>.json``, the hash of onnxruntime's version, the thread count
    and the processor: a table measured on other settings is another file."""
    import onnxruntime as ort

    ident = f"{ort.__version__}|{threads}|{platform.processor() or platform.machine()}|{platform.node()}"
    h = hashlib.sha1(ident.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "nas" / "latency" / f"lut-{h}.json"


class LatencyLUT:
    """Measured per-op latencies in ms, cached in a JSON file by graph fingerprint (module docstring)."""

    def __init__(self, path: str | Path | None = None, threads: int = 1, warmup: int = 10, repeats: int = 30,
                 seed: int = 0) -> None:
        self.path = Path(path) if path is not None else default_lut_path(threads)
        self.threads, self.warmup, self.repeats, self.seed = threads, warmup, repeats, seed
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
                   "onnxruntime": ort.__version__, "platform": platform.platform(),
                   "overhead_ms": self._overhead, "entries": self.entries, "index": self.index,
                   "calibrations": self.calibrations}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, self.path)

    def overhead_ms(self) -> float:
        """The cost of one ``InferenceSession.run`` itself: the median latency of a one-node graph
        (a ReLU on one number), measured once and stored. Every entry has it subtracted, and a
        network's prediction adds it back once, since a network is one run, not one per op."""
        if self._overhead is None:
            model = _export(nn.ReLU(), (1, 1))
            self._overhead = measure_onnx(model, self.threads, self.warmup, max(self.repeats, 200))
            self._save()
        return self._overhead

    def latency(self, spec: OpSpec) -> float:
        """The entry of ``spec`` less :meth:`overhead_ms` (at least 0), measured now (and saved) if
        the table lacks it."""
        return max(0.0, self.raw_latency(spec) - self.overhead_ms())

    def raw_latency(self, spec: OpSpec) -> float:
        """The measured latency of ``spec`` as it ran alone, session overhead included."""
        fp = self.index.get(spec.key)
        if fp is not None and fp in self.entries:
            return float(self.entries[fp]["ms"])
        from nas.ir import ArchGraph

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = spec.build()
        model = _export(module, spec.input_shape)
        fp = ArchGraph.from_onnx(model).fingerprint()
        if fp not in self.entries:
            ms = measure_onnx(model, self.threads, self.warmup, self.repeats)
            self.entries[fp] = {"ms": ms, "key": spec.key, "shape": list(spec.input_shape)}
            self.measured += 1
        self.index[spec.key] = fp
        self._save()
        return float(self.entries[fp]["ms"])

    def build(self, specs: Iterable[OpSpec], progress: Callable[[Iterable[OpSpec]], Iterable[OpSpec]] | None = None
              ) -> int:
        """Measure every spec the table lacks (distinct keys only); returns how many were new."""
        unique = list({s.key: s for s in specs}.values())
        before = self.measured
        for spec in (progress(unique) if progress else unique):
            self.latency(spec)
        return self.measured - before


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
        fits the factor on that many random networks (cached in the table)."""
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

    def calibrate(self, supernet: Supernet, lut: LatencyLUT, n: int = 5, seed: int = 0) -> float:
        """Fit ``factor`` and ``offset_ms`` on ``n`` networks spread over the supernet's latency range
        (module docstring); cached in ``lut`` by the supernet's entries, ``n`` and ``seed``. Returns
        the factor."""
        keys = sorted(s.key for s in all_specs(supernet))
        ident = hashlib.sha1(json.dumps(["v2", keys, n, seed]).encode()).hexdigest()[:16]
        cached = lut.calibrations.get(ident)
        if cached is None:
            gen = torch.Generator().manual_seed(seed)
            summed_all, measured_all, samples = [], [], []
            for k in range(n):
                q = k / (n - 1) if n > 1 else 0.5
                ops: dict[str, list[int]] = {}
                for g, t in self.tables.items():
                    rows = []
                    for r in range(t.shape[0]):
                        valid = [int(i) for i in supernet.valid[g][r].nonzero().flatten()]
                        valid.sort(key=lambda i, r=r, t=t: float(t[r, i]))  # type: ignore[misc]
                        jitter = int(torch.randint(-1, 2, (1,), generator=gen))
                        pos = min(len(valid) - 1, max(0, round(q * (len(valid) - 1)) + jitter))
                        rows.append(valid[pos])
                    ops[g] = rows
                genotype = supernet.genotype(ops, {g: [0.0] * len(r) for g, r in ops.items()})
                space = supernet.space
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(lut.seed)
                    module = space.to_module(genotype)
                measured = measure_module(module, tuple(space.example_input_shape(1, genotype)), lut.threads,
                                          lut.warmup, lut.repeats)
                summed = self.predict(ops, calibrated=False)
                summed_all.append(summed)
                measured_all.append(measured)
                samples.append({"genotype": space.format(genotype), "summed_ms": summed, "measured_ms": measured})
            factor, offset = float(statistics.median(m / s for m, s in zip(measured_all, summed_all,
                                                                            strict=True))), 0.0
            if n >= 3:
                a, b = np.polyfit(np.asarray(summed_all), np.asarray(measured_all), 1)
                if a > 0:  # a line that falls with the sum would be noise, not a correction
                    factor, offset = float(a), float(b)
            cached = {"factor": factor, "offset_ms": offset, "samples": samples}
            lut.calibrations[ident] = cached
            lut._save()
        self.factor = float(cached["factor"])
        self.offset_ms = float(cached.get("offset_ms", 0.0))
        return self.factor
