"""The `Proxy` contract, the proxy registry and the helpers every proxy shares.

A zero-cost proxy scores an untrained network from one batch. The engine, the CLI and the
benchmarks call :meth:`Proxy.score`; a proxy

* never mutates the model it is given: it works on a deep copy (:func:`working_copy`), so the
  caller's weights, gradients, buffers and train/eval flags are unchanged afterwards;
* returns a finite float oriented so that **higher means better** when ``higher_is_better`` is true
  (every proxy states its sign convention in its docstring);
* raises :class:`~nas.errors.ProxyError` naming itself and the model for a non-finite score, never a
  sentinel value (:func:`finite`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Protocol, cast, runtime_checkable

import torch
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from nas.registry import Registry


@runtime_checkable
class Proxy(Protocol):
    """Scores a network at initialization from one batch."""

    @property
    def name(self) -> str:
        """The registered name."""
        ...

    @property
    def higher_is_better(self) -> bool:
        """Whether a higher score predicts a better trained network."""
        ...

    def score(self, model: nn.Module, batch: Batch) -> float:
        """The score of ``model`` on ``batch``; ``model`` is left exactly as it was."""
        ...


PROXIES: Registry[Proxy] = Registry("proxy")


def model_name(model: nn.Module) -> str:
    return getattr(model, "graph_name", None) or type(model).__name__


def working_copy(model: nn.Module, *, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy of ``model`` in train mode (BatchNorm uses batch statistics, as proxies are defined),
    with dropout switched off so that scores are deterministic, cleared gradients, and cast to ``dtype``."""
    net = copy.deepcopy(model)
    if dtype is not None:
        net = net.to(dtype)
    net.train()
    for m in net.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    net.zero_grad(set_to_none=True)
    return net


def finite(proxy: str, model: nn.Module, value: float | torch.Tensor) -> float:
    """``value`` as a float; :class:`ProxyError` naming the proxy and the model if it is not finite."""
    v = float(value)
    if not math.isfinite(v):
        raise ProxyError(f"proxy {proxy!r} gave a non-finite score ({v}) for model {model_name(model)!r}")
    return v


def weighted_layers(model: nn.Module) -> Iterator[nn.Module]:
    """The Conv and Linear layers, in module order: the layers zero-cost proxies sum over."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            yield m


def loss_weight_grads(
    proxy: str, model: nn.Module, batch: Batch
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """``(weight, dL/dweight)`` for every Conv/Linear weight of a working copy of ``model``, where
    ``L`` is the mean cross-entropy of the whole batch in one train-mode pass. The gradient is
    ``None`` for a layer that does not reach the loss."""
    net = working_copy(model)
    weights = trainable_weights(proxy, net)
    x = batch.images.to(device=weights[0].device, dtype=weights[0].dtype)  # (B, C, H, W)
    y = batch.labels.to(weights[0].device)  # (B,)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return list(zip(weights, grads, strict=True))


def trainable_weights(proxy: str, net: nn.Module) -> list[torch.Tensor]:
    """The Conv/Linear weights of ``net`` (a working copy), with gradients switched on."""
    return [cast(torch.Tensor, layer.weight).requires_grad_(True) for layer in require_weights(proxy, net)]


def require_weights(proxy: str, model: nn.Module) -> list[nn.Module]:
    """The Conv/Linear layers of ``model``; :class:`ProxyError` if it has none."""
    layers = list(weighted_layers(model))
    if not layers:
        raise ProxyError(
            f"proxy {proxy!r} needs Conv or Linear layers with weights; model {model_name(model)!r} has none"
        )
    return layers
