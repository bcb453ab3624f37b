"""Scoring several proxies on one model.

:func:`to_model` turns what the user has (a PyTorch module, an :class:`~nas.ir.ArchGraph`, an
ONNX file, bytes or ``ModelProto``, or a genotype of a space) into a freshly initialized module;
:func:`score` runs the requested proxies on it with one batch and returns ``{name: score}``.

Each proxy works on its own copy of the model (the contract in :mod:`proxies.base`), so proxies do
not see each other's gradients or casts. Passes are not yet shared between proxies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from nas.ir import ArchGraph
from proxies.base import PROXIES, Proxy

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
) -> dict[str, float]:
    """``{proxy name: score}`` for ``model`` on ``batch``; fills ``timings`` (seconds) if given.

    A proxy that cannot score this model raises :class:`~nas.errors.ProxyError`, unless ``errors``
    is given: then its message is stored there under the proxy's name and it has no score.
    """
    out: dict[str, float] = {}
    for p in resolve_proxies(proxies):
        t = time.perf_counter()
        try:
            out[p.name] = p.score(model, batch)
        except ProxyError as e:
            if errors is None:
                raise
            errors[p.name] = str(e)
        if timings is not None:
            timings[p.name] = time.perf_counter() - t
    return out
