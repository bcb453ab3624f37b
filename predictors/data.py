"""Labelled architecture sets for training and evaluating predictors, from the reference data.

:func:`labelled` turns ``(space, target)`` into the architectures of a table and their targets:

=========  ==================================================  =============================================
space      targets                                             rows
=========  ==================================================  =============================================
``nb201``  any accuracy column of ``nb201_ground_truth.csv``   all 15,625 architectures, in official index
           (``cifar10_test_acc``, ...), or a latency device    order
           of ``nb201_latency_help.csv`` (``pixel3``, or
           ``latency:pixel3``)
``nb101``  ``val_accuracy``                                    NASLib's 500-architecture NB101 sample
``nb301``  ``val_accuracy``                                    NASLib's 725-architecture NB301 (DARTS) sample
``darts``
=========  ==================================================  =============================================

Architectures are returned as the space's own text (``space.format``), so they go through
``space.parse`` and ``space.to_graph``. :func:`zc_features` gives NASLib's zero-cost proxy scores of
the same rows (NaN where the NB201 sample does not cover an architecture); the project never
invents a missing score.

:func:`measured_latency` measures onnxruntime latency on this machine with
:class:`~nas.hardware.MeasuredLatency`, in one or more passes over the architectures (the label is
the least of the passes; :func:`measured_passes` gives each pass), and keeps every result in a JSON
file (one per thread count, settings and pass) under a work folder, so a long measurement survives
an interruption and is never repeated.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nas.errors import PredictorError

if TYPE_CHECKING:
    from benchmarks.tabular import Table

log = logging.getLogger(__name__)

#: NASLib's proxy columns, in a fixed order (the NB101 sample has no ``nwot``).
NASLIB_PROXIES: tuple[str, ...] = ("epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot",
                                   "params", "plain", "snip", "synflow")
#: other names of the labelled spaces (the DARTS search space is NB301's)
SPACE_ALIASES = {"darts": "nb301"}


@dataclass(frozen=True)
class Labelled:
    """``archs`` (the space's text of each architecture) and ``y`` float64 ``(n,)``."""

    space: str
    target: str
    archs: tuple[str, ...]
    y: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.archs)


def is_latency_target(target: str) -> bool:
    """A target in milliseconds: ``measured`` (onnxruntime here) or ``latency:DEVICE`` (a device table)."""
    return target == "measured" or target.startswith("latency:")


def canonical_space(space: str) -> str:
    """``nb201``, ``nb101`` or ``nb301`` (``darts`` is ``nb301``)."""
    name = SPACE_ALIASES.get(space, space)
    if name not in ("nb201", "nb101", "nb301"):
        raise PredictorError(f"labelled data exists for the spaces nb201, nb101 and nb301 (darts); got {space!r}")
    return name


def labelled(space: str, target: str, data_dir: str | Path | None = None) -> Labelled:
    """The architectures of ``space`` with a known ``target`` (see the module docstring)."""
    from benchmarks import tabular

    name = canonical_space(space)
    if name == "nb201":
        device = target.split(":", 1)[1] if target.startswith("latency:") else target
        truth = tabular.nb201_ground_truth(data_dir)
        archs = tuple(str(a) for a in truth["arch_str"])
        if target in truth.columns and target not in ("index", "arch_str", "unique_str"):
            return Labelled(name, target, archs, np.asarray(truth[target], dtype=np.float64))
        devices = tabular.nb201_devices(data_dir)
        if device in devices:
            lat = tabular.nb201_latency(data_dir)
            return Labelled(name, f"latency:{device}", tuple(str(a) for a in lat["arch_str"]),
                            np.asarray(lat[device], dtype=np.float64))
        numeric = [c for c in truth.columns if c not in ("index", "arch_str", "unique_str")]
        raise PredictorError(f"unknown nb201 target {target!r}; valid: {', '.join(numeric)}, or a latency device "
                             f"(latency:DEVICE): {', '.join(devices)}")
    if target != "val_accuracy":
        raise PredictorError(f"the {name} sample has one target, val_accuracy; got {target!r}")
    y = np.asarray(_sample(name, data_dir)[target], dtype=np.float64)
    return Labelled(name, target, space_archs(name, data_dir), y)


def _sample(name: str, data_dir: str | Path | None) -> Table:
    from benchmarks import tabular

    return tabular.nb101_sample(data_dir) if name == "nb101" else tabular.nb301_sample(data_dir)


def space_archs(name: str, data_dir: str | Path | None = None) -> tuple[str, ...]:
    """The NB101 or NB301 sample's architectures as their space's text, in file order."""
    from search_spaces import space_from_spec

    table = _sample(name, data_dir)
    space = space_from_spec(name)
    if name == "nb101":
        return tuple(space.format(space.parse(f"{a}|{o}"))
                     for a, o in zip(table["adjacency"], table["ops"], strict=True))
    from search_spaces.darts import from_columns

    return tuple(space.format(from_columns(str(n), str(r)))
                 for n, r in zip(table["genotype_normal"], table["genotype_reduce"], strict=True))


def zc_features(space: str, archs: Sequence[str], data_dir: str | Path | None = None,
                proxies: Sequence[str] = NASLIB_PROXIES) -> npt.NDArray[np.float64]:
    """NASLib's CIFAR-10 proxy scores ``(len(archs), len(proxies))`` for ``archs`` (the space's text).

    NB201 rows outside NASLib's 725-architecture sample, and a proxy the file lacks, are NaN; callers
    that need full coverage check for it (:func:`covered`). Infinite scores are NaN too: NASLib's nwot
    is ``-inf`` where the network's binary-code kernel is singular (the log of a zero determinant,
    3 rows of its NB201 file), which is "undefined", not a number a predictor can use; the count is
    logged.
    """
    from benchmarks import tabular

    name = canonical_space(space)
    if name == "nb201":
        table = tabular.nb201_zc_naslib("cifar10", data_dir)
        keys: Sequence[str] = [str(a) for a in table["arch_str"]]
    else:
        table = _sample(name, data_dir)
        keys = space_archs(name, data_dir)
    row = {k: i for i, k in enumerate(keys)}
    out = np.full((len(archs), len(proxies)), np.nan)
    for j, p in enumerate(proxies):
        if p not in table.columns:
            continue
        col = np.asarray(table[p], dtype=np.float64)
        for i, a in enumerate(archs):
            r = row.get(a)
            if r is not None:
                out[i, j] = col[r]
    infinite = np.isinf(out)
    if infinite.any():
        log.info("zc_features: %d infinite NASLib scores (%s) read as missing", int(infinite.sum()),
                 ", ".join(p for j, p in enumerate(proxies) if infinite[:, j].any()))
        out[infinite] = np.nan
    return out


def covered(features: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Rows with at least one finite proxy score."""
    out: npt.NDArray[np.bool_] = np.asarray(np.isfinite(features).any(axis=1))
    return out


def split(n_total: int, n_train: int, n_test: int, seed: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Disjoint random ``(train, test)`` row indices of sizes ``n_train`` and ``n_test`` (seeded)."""
    if n_train < 1 or n_test < 0 or n_train + n_test > n_total:
        raise PredictorError(f"cannot split {n_total} rows into {n_train} training and {n_test} test rows")
    order = np.random.default_rng(seed).permutation(n_total)
    return order[:n_train], order[n_train:n_train + n_test]


def genotype_onehot(space: str, archs: Sequence[str]) -> npt.NDArray[np.float64]:
    """The literal genotypes' one-hot encoding ``(n, sum of the dimensions' choice counts)``, one block
    per dimension of the space (:meth:`~nas.integrations.spaces.ArchitectureMapping.onehot`).

    The IR is the computation a genotype performs, so it drops what computes nothing (``none`` edges,
    ops whose result is never used) and merges repeats (two pools of one tensor are one node); a table
    measured on the literal network counts all of them. These features give a predictor the literal
    network back where the architecture comes from a space."""
    from nas.integrations.spaces import architecture_mapping

    mapping = architecture_mapping(space)
    return mapping.onehot([mapping.space.parse(a) for a in archs])


def measured_cache_path(space: str, workdir: str | Path, *, threads: int = 1, warmup: int = 10, repeats: int = 30,
                        rounds: int = 3, tag: str = "", measurement: int = 1) -> Path:
    """Where :func:`measured_latency` keeps its measurements with these settings; ``measurement``
    ``k > 1`` is the ``k``-th pass over the set (``...-passK.json``). The name carries the export's
    version (:data:`nas.hardware.EXPORT_VERSION`, ``-eV``), so measurements of an older export are
    not read."""
    from nas.hardware import EXPORT_VERSION

    if measurement < 1:
        raise PredictorError(f"measurement passes count from 1; got {measurement}")
    suffix = f"-pass{measurement}" if measurement > 1 else ""
    return (Path(workdir)
            / f"measured-{space}-e{EXPORT_VERSION}-t{threads}-w{warmup}-r{repeats}-x{rounds}{tag}{suffix}.json")


def measured_passes(
    space: str,
    archs: Sequence[str],
    workdir: str | Path,
    *,
    passes: int = 1,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 30,
    rounds: int = 3,
    chunk: int = 25,
    tag: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> npt.NDArray[np.float64]:
    """onnxruntime latency in ms, ``(passes, len(archs))``: row ``k`` is the ``k+1``-th pass over
    ``archs``, each measured by :class:`~nas.hardware.MeasuredLatency` (BENCHMARKS.md: batch 1,
    ``threads`` intra-op threads, ``warmup`` untimed runs, the median of ``repeats``; the least over
    ``rounds`` rounds interleaved across ``chunk`` architectures at a time).

    A pass measures every architecture before the next pass starts, so passes lie minutes apart: a
    slow period of a shared machine (another job, a lower clock) slows whole chunks of one pass, and
    a later pass meets it elsewhere. Each pass is cached in its own file
    (:func:`measured_cache_path`), rewritten after every chunk, so an interrupted measurement resumes
    where it stopped and nothing is measured twice. A ``tag`` keeps a separate measurement.
    ``progress(done, total)`` is called after each chunk measured; both count distinct architectures,
    ``total`` once per pass."""
    from nas.hardware import MeasuredLatency
    from search_spaces import space_from_spec

    if passes < 1:
        raise PredictorError(f"passes must be at least 1; got {passes}")
    sp = space_from_spec(space)
    distinct = list(dict.fromkeys(archs))  # an architecture listed twice is measured once per pass
    total = passes * len(distinct)
    out = np.empty((passes, len(archs)), dtype=np.float64)
    for k in range(passes):
        # a fresh model per pass: its cache answers an isomorphic architecture within the pass only
        model = MeasuredLatency(threads=threads, warmup=warmup, repeats=repeats, rounds=rounds, chunk=chunk)
        path = measured_cache_path(space, workdir, threads=threads, warmup=warmup, repeats=repeats, rounds=rounds,
                                   tag=tag, measurement=k + 1)
        cache: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}
        todo = [a for a in distinct if a not in cache]
        before = (k + 1) * len(distinct) - len(todo)
        for i in range(0, len(todo), chunk):
            part = todo[i:i + chunk]
            cache.update(zip(part, model.costs([sp.to_graph(sp.parse(a)) for a in part]), strict=True))
            _write_json(path, cache)
            if progress is not None:
                progress(before + min(i + chunk, len(todo)), total)
        out[k] = [cache[a] for a in archs]
    return out


def measured_latency(space: str, archs: Sequence[str], workdir: str | Path, **settings: Any) -> npt.NDArray[np.float64]:
    """onnxruntime latency in ms of each of ``archs`` on this machine: the least over the passes of
    :func:`measured_passes` (same keywords: ``passes``, ``threads``, ``warmup``, ``repeats``,
    ``rounds``, ``chunk``, ``tag``, ``progress``; same cache). Noise on a shared machine only ever
    adds time, so the least of passes taken minutes apart is the steadiest label."""
    per_pass = measured_passes(space, archs, workdir, **settings)
    out: npt.NDArray[np.float64] = per_pass.min(axis=0)
    return out


def _write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)
