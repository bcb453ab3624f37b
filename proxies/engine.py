"""Scoring several proxies on one model.

:func:`to_model` turns what the user has (a PyTorch module, an :class:`~nas.ir.ArchGraph`, an
ONNX file, bytes or ``ModelProto``, or a genotype of a space) into a freshly initialized module;
:func:`score` runs the requested proxies on it with one batch and returns ``{name: score}``.

Passes are shared: the proxies that implement :class:`~proxies.passes.SharedProxy` read one
:class:`~proxies.passes.Passes` built for the model and batch, so snip, grad_norm, plain, fisher,
jacov, epe_nas and nwot cost one forward and two backward passes together, GradSign and LGA share
one batched per-sample forward, and flops reads the IR the caller already has (``graph=``). The
other proxies (synflow, grasp, zen, ...) run their own passes on their own copies. Every pass runs
on a working copy, so the caller's model is never modified. ``shared=False`` runs each proxy's own
:meth:`score` instead: the reference the shared path is tested against.

``timings`` then hold the time spent in each proxy's call, which includes any shared pass it was
the first to need; the sum over proxies is the model's total.

:func:`score_graphs` scores many graphs the same way, in one process or in several.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from nas.ir import ArchGraph
from proxies.base import PROXIES, Proxy
from proxies.passes import Passes, SharedProxy

log = logging.getLogger(__name__)


def resolve_proxies(names: str | Sequence[str | Proxy]) -> list[Proxy]:
    """Proxies from ``"all"``, a comma-separated string, or a list of names and instances."""
    if isinstance(names, str):
        text = names.strip().lower()
        names = PROXIES.names() if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    out = [PROXIES.resolve(n) for n in names]
    if not out:
        raise ProxyError(f"no proxies requested; valid names: {', '.join(PROXIES.names())}")
    return out


def to_model(
    target: nn.Module | ArchGraph | str | Path | bytes | onnx.ModelProto | Hashable,
    *,
    space: Any = None,
    seed: int = 0,
) -> nn.Module:
    """A module to score. Graphs and ONNX models are rebuilt with ``to_torch`` (PyTorch-default
    initialization drawn from ``seed``); genotypes need ``space`` and are built with
    ``space.to_module`` under the same seed; modules are returned as they are."""
    if isinstance(target, nn.Module):
        return target
    if space is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return space.to_module(space.parse(target) if isinstance(target, str) else target)
    if isinstance(target, ArchGraph):
        graph = target
    elif isinstance(target, (str, Path, bytes, bytearray, onnx.ModelProto)):
        graph = ArchGraph.from_onnx(target)
    else:
        raise ProxyError(f"cannot score a {type(target).__name__}: give a module, a graph, an ONNX model, "
                         "or a genotype together with its space")
    return graph.to_torch(seed=seed)


def score(
    model: nn.Module,
    batch: Batch,
    proxies: str | Sequence[str | Proxy] = "all",
    *,
    timings: dict[str, float] | None = None,
    errors: dict[str, str] | None = None,
    graph: ArchGraph | None = None,
    shared: bool = True,
) -> dict[str, float]:
    """``{proxy name: score}`` for ``model`` on ``batch``; fills ``timings`` (seconds) if given.

    A proxy that cannot score this model raises :class:`~nas.errors.ProxyError`, unless ``errors``
    is given: then its message is stored there under the proxy's name and it has no score.
    ``graph`` is the model's IR if the caller has it (flops reads it instead of exporting the model);
    ``shared=False`` scores every proxy with its own passes.
    """
    chosen = resolve_proxies(proxies)
    sharing = [p for p in chosen if shared and isinstance(p, SharedProxy)]
    needs: set[Any] = set().union(*(p.needs() for p in sharing))
    passes = Passes(model, batch, needs=needs, graph=graph)
    out: dict[str, float] = {}
    for p in chosen:
        t = time.perf_counter()
        try:
            out[p.name] = p.from_passes(passes) if p in sharing else p.score(model, batch)
        except ProxyError as e:
            if errors is None:
                raise
            errors[p.name] = str(e)
        if timings is not None:
            timings[p.name] = time.perf_counter() - t
    return out


def score_graphs(
    graphs: Sequence[ArchGraph],
    batch: Batch,
    proxies: str | Sequence[str | Proxy],
    *,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[dict[str, float], dict[str, str]]]:
    """``(scores, errors)`` of each graph, in order: the graph rebuilt by ``to_torch(seed)``, scored
    on ``batch`` resized to its input (:func:`~nas.data.fit_batch`), a proxy that cannot score it in
    ``errors``. ``workers > 1`` scores in that many spawned processes with one torch thread each; the
    graphs travel pickled and every score is the one this process would compute, since weights and
    batch do not depend on the process. ``progress(done, total)`` after each graph, in order.

    Spawned workers import the caller's main module again, so a script that calls this with
    ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard (the ``nas`` command has it).
    A worker that dies (killed for memory, say) is a :class:`~nas.errors.ProxyError`."""
    if workers < 1:
        raise ProxyError(f"workers must be at least 1; got {workers}")
    names = [p.name for p in resolve_proxies(proxies)]
    out: list[tuple[dict[str, float], dict[str, str]]] = []
    if workers > 1 and len(graphs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        # spawn, not fork: a forked child of a process whose OpenMP pool has run can hang in torch
        try:
            with ProcessPoolExecutor(min(workers, len(graphs)), mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_pool_init, initargs=(batch, names, seed)) as pool:
                for result in pool.map(_pool_score, graphs, chunksize=4):
                    out.append(result)
                    if progress is not None:
                        progress(len(out), len(graphs))
        except BrokenProcessPool as e:
            raise ProxyError(f"a scoring process died after {len(out)} of {len(graphs)} graphs ({e}); "
                             "with workers > 1 a script needs an if __name__ == '__main__' guard, and each "
                             "process needs memory for one network") from e
        return out
    for g in graphs:
        out.append(_score_graph(g, batch, names, seed))
        if progress is not None:
            progress(len(out), len(graphs))
    return out


def _score_graph(g: ArchGraph, batch: Batch, names: list[str], seed: int) -> tuple[dict[str, float], dict[str, str]]:
    from nas.data import fit_batch

    errors: dict[str, str] = {}
    scores = score(g.to_torch(seed=seed), fit_batch(batch, g.inputs[0].out_shapes[0]), names, errors=errors, graph=g)
    return scores, errors


_POOL: dict[str, Any] = {}


def _pool_init(batch: Batch, names: list[str], seed: int) -> None:
    torch.set_num_threads(1)
    _POOL.update(batch=batch, names=names, seed=seed)


def _pool_score(g: ArchGraph) -> tuple[dict[str, float], dict[str, str]]:
    return _score_graph(g, _POOL["batch"], _POOL["names"], _POOL["seed"])
