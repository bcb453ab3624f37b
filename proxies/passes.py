"""Forward and backward passes shared by several proxies on one model and batch.

Most zero-cost proxies are a small formula on top of one of a few expensive passes:

=====================  ==============================================================  =====================
part                   what it is                                                      read by
=====================  ==============================================================  =====================
``loss_grads``         ``dL/dW`` of the mean cross-entropy of the batch, per            snip, grad_norm, plain
                       Conv/Linear weight (train-mode BatchNorm)
``fisher``             the channel Fisher information of the same backward pass         fisher
``input_grad``         ``d(sum of outputs)/dx`` per sample, ``(B, 3HW)``                 jacov, epe_nas
``relu_kernel``        NASWOT's ReLU-code kernel ``(B, B)`` of the same forward pass    nwot
per-sample gradients   per objective (cross-entropy, summed logits) and method          gradsign, lga
``graph``              the IR of the model (FLOPs)                                      flops
=====================  ==============================================================  =====================

:class:`Passes` computes each part once, on demand. Told what will be needed (``needs``), it runs
the first four in **one** train-mode forward pass of a :func:`~proxies.base.working_copy`, with one
backward pass for the loss and one for the input gradient; per-sample gradients for GradSign and
LGA come from one batched forward with a backward per objective
(:func:`~proxies.per_sample.per_sample_grads_many`). A proxy that can read these parts implements
:class:`SharedProxy` (``needs`` and ``from_passes``); :func:`proxies.engine.score` builds one
:class:`Passes` per model and batch and hands it to every such proxy.

Each proxy's own :meth:`score` keeps its separate, single-purpose pass: that is the reference the
shared path is tested against (``tests/proxies/test_engine.py``: equal scores on NB201, ResNet- and
MobileNet-style networks). The values are the same computation; only floating-point summation
order may differ.

Errors belong to a part: a model whose output is not ``(B, C)`` logits fails ``loss_grads`` and
``fisher`` (:class:`~nas.errors.ProxyError`) but still gives ``input_grad`` and ``relu_kernel``, so one
proxy's failure does not take the others down.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.data import Batch
from nas.errors import IRError, ProxyError
from nas.ir import ArchGraph
from proxies.base import model_name, weighted_layers, working_copy

__all__ = ["FORWARD_PARTS", "LossGradientProxy", "Passes", "SharedProxy", "relu_types"]

#: The parts one shared forward pass produces.
FORWARD_PARTS: frozenset[str] = frozenset({"loss_grads", "fisher", "input_grad", "relu_kernel"})


def relu_types() -> tuple[type[nn.Module], ...]:
    """The ``torch.nn`` modules whose class name contains "ReLU" (NASWOT's hooks)."""
    return (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)


@runtime_checkable
class SharedProxy(Protocol):
    """A proxy that can score from a :class:`Passes` (the engine's shared path)."""

    name: str
    higher_is_better: bool

    def needs(self) -> set[Any]:
        """The parts of :class:`Passes` this proxy reads: names of :data:`FORWARD_PARTS`,
        ``"graph"``, or ``("per_sample", objective, method)``."""
        ...

    def from_passes(self, passes: Passes) -> float:
        """The score, from the shared passes; equal to ``score(passes.model, passes.batch)``."""
        ...


class LossGradientProxy:
    """Base of the proxies that are a formula over ``(weight, dL/dweight)`` pairs of the batch's mean
    cross-entropy (snip, grad_norm): subclasses give ``name`` and :meth:`from_pairs`; the pairs come
    from the shared pass in the engine and from :func:`~proxies.base.loss_weight_grads` alone."""

    name: str
    higher_is_better: bool = True

    def needs(self) -> set[Any]:
        return {"loss_grads"}

    def from_passes(self, passes: Passes) -> float:
        return self.from_pairs(passes.model, passes.loss_grads(self.name))

    def score(self, model: nn.Module, batch: Batch) -> float:
        from proxies.base import loss_weight_grads

        return self.from_pairs(model, loss_weight_grads(self.name, model, batch))

    def from_pairs(self, model: nn.Module, pairs: list[tuple[Tensor, Tensor | None]]) -> float:
        raise NotImplementedError


@dataclass
class ForwardResult:
    weights: list[Tensor]
    loss_grads: list[Tensor | None] | None = None
    fisher_per_layer: list[Tensor] | None = None
    input_grad: Tensor | None = None
    out_shape: torch.Size | None = None
    relu_kernel: Tensor | None = None
    relu_calls: int = 0


class Passes:
    """The shared passes of one model on one batch (see the module docstring).

    Args:
        model: the network; it is never modified (each pass runs on a working copy).
        batch: the images ``(B, C, H, W)`` and labels ``(B,)``.
        needs: the parts that will be read; the forward parts among them are computed together.
        graph: the model's IR, if the caller has it (it is used when its input shape is that of one
            image of ``batch``; otherwise the model is exported).
    """

    def __init__(self, model: nn.Module, batch: Batch, needs: Iterable[Any] = (), graph: ArchGraph | None = None):
        self.model = model
        self.batch = batch
        self.needs: set[Any] = set(needs)
        self._graph = graph
        self._parts: dict[Any, Any] = {}
        self._errors: dict[Any, ProxyError] = {}

    # ------------------------------------------------------------------ access

    def loss_grads(self, proxy: str) -> list[tuple[Tensor, Tensor | None]]:
        """``(weight, dL/dweight)`` per Conv/Linear weight (``None``: it does not reach the loss)."""
        res = self._forward_part("loss_grads", proxy)
        assert res.loss_grads is not None
        return list(zip(res.weights, res.loss_grads, strict=True))

    def fisher(self, proxy: str) -> Tensor:
        """The fisher score (float64 scalar): ``sum_l n_l sum_k |Delta_lk|`` (see :mod:`proxies.fisher`)."""
        res = self._forward_part("fisher", proxy)
        assert res.fisher_per_layer is not None
        total = torch.zeros((), dtype=torch.float64, device=res.weights[0].device)
        for s, w in zip(res.fisher_per_layer, res.weights, strict=True):
            total = total + s * math.prod(w.shape[1:])
        return total

    def input_grad(self, proxy: str) -> tuple[Tensor, torch.Size]:
        """``(B, 3HW)`` gradient of the summed output with respect to each input, and the output shape."""
        res = self._forward_part("input_grad", proxy)
        assert res.input_grad is not None and res.out_shape is not None
        return res.input_grad, res.out_shape

    def relu_kernel(self, proxy: str) -> tuple[Tensor, int]:
        """NASWOT's ``(B, B)`` float64 kernel and the number of ReLU calls (see :mod:`proxies.nwot`)."""
        res = self._forward_part("relu_kernel", proxy)
        assert res.relu_kernel is not None
        return res.relu_kernel, res.relu_calls

    def per_sample(self, objective: str, method: str) -> dict[str, Tensor]:
        """Per-sample gradients ``{name: (B, *weight.shape)}``; the objectives this instance was
        told about for ``method`` are computed in the same pass."""
        from proxies.per_sample import per_sample_grads_many

        key = ("per_sample", objective, method)
        if key not in self._parts:
            wanted = [n[1] for n in self.needs if isinstance(n, tuple) and n[0] == "per_sample" and n[2] == method]
            objectives = list(dict.fromkeys([objective, *sorted(wanted)]))
            out = per_sample_grads_many(
                self.model, self.batch.images, self.batch.labels, method=method, objectives=objectives
            )
            for o, grads in out.items():
                self._parts[("per_sample", o, method)] = grads
        return cast(dict[str, Tensor], self._parts[key])

    def graph(self, proxy: str) -> ArchGraph:
        """The model's IR for one image of the batch: the given graph if its input shape fits, else an export."""
        if "graph" not in self._parts:
            shape = (1, *self.batch.images.shape[1:])
            g = self._graph
            if g is None or len(g.inputs) != 1 or tuple(g.inputs[0].out_shapes[0]) != shape:
                try:
                    g = ArchGraph.from_module(working_copy(self.model), self.batch.images[:1].clone())
                except IRError as e:
                    raise ProxyError(
                        f"proxy {proxy!r} could not build the IR of model {model_name(self.model)!r}: {e}"
                    ) from e
            self._parts["graph"] = g
        return cast(ArchGraph, self._parts["graph"])

    # ------------------------------------------------------------------ the shared forward

    def _forward_part(self, part: str, proxy: str) -> ForwardResult:
        if part not in self._parts and part not in self._errors:
            want = (self.needs & FORWARD_PARTS) | {part}
            want -= set(self._parts) | set(self._errors)
            result, errors = _forward(self.model, self.batch, want)
            for p in want:
                if p in errors:
                    self._errors[p] = errors[p]
                else:
                    self._parts[p] = result
        if part in self._errors:
            e = self._errors[part]
            raise ProxyError(f"proxy {proxy!r}: {e}") from e
        return cast(ForwardResult, self._parts[part])


def _forward(model: nn.Module, batch: Batch, want: set[str]) -> tuple[ForwardResult, dict[str, ProxyError]]:
    """One train-mode forward pass computing the parts in ``want``; failures per part."""
    net = working_copy(model)
    errors: dict[str, ProxyError] = {}
    layers = list(weighted_layers(net))
    loss_parts = want & {"loss_grads", "fisher"}
    if loss_parts and not layers:
        err = ProxyError(f"needs Conv or Linear layers with weights; model {model_name(model)!r} has none")
        errors.update(dict.fromkeys(loss_parts, err))
        loss_parts = set()
    weights = [cast(Tensor, m.weight).requires_grad_(True) for m in layers] if loss_parts else []
    result = ForwardResult(weights=weights)
    handles: list[Any] = []
    b = batch.images.shape[0]

    # fisher: the raw output of every Conv/Linear layer and its gradient in the loss backward only
    in_loss_backward = [False]
    per_layer = [torch.zeros((), dtype=torch.float64, device=batch.images.device) for _ in layers]
    if "fisher" in loss_parts:
        def capture(i: int) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
            def on_forward(module: nn.Module, args: tuple[Tensor, ...], act: Tensor) -> None:
                if not act.requires_grad:
                    return
                saved = act.detach().clone()  # an in-place op after the layer must not change it

                def on_grad(grad: Tensor) -> None:
                    if not in_loss_backward[0]:
                        return
                    prod = saved * grad  # (N, K, *spatial) or (N, K)
                    g_nk = prod.flatten(2).sum(2) if prod.dim() > 2 else prod  # (N, K)
                    per_layer[i] = per_layer[i] + (0.5 * g_nk.pow(2).mean(0)).abs().sum(dtype=torch.float64)

                act.register_hook(on_grad)

            return on_forward

        handles += [layer.register_forward_hook(capture(i)) for i, layer in enumerate(layers)]

    kernel = torch.zeros(b, b, dtype=torch.float64, device=batch.images.device)
    calls = [0]
    if "relu_kernel" in want:
        def relu_hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            codes = (inputs[0].detach().reshape(b, -1) > 0).to(torch.float32)  # (B, N_l)
            ones = codes.sum(dim=1)  # (B,)
            agree = codes.shape[1] - ones[:, None] - ones[None, :] + 2.0 * (codes @ codes.T)  # (B, B)
            kernel.add_(agree.to(torch.float64))
            calls[0] += 1

        handles += [m.register_forward_hook(relu_hook) for m in net.modules() if isinstance(m, relu_types())]

    try:
        x = batch.images.detach().clone()  # (B, C, H, W)
        if weights:
            x = x.to(dtype=weights[0].dtype)
        x.requires_grad_("input_grad" in want)
        grad_ctx = torch.enable_grad() if (loss_parts or "input_grad" in want) else torch.no_grad()
        with grad_ctx:
            out = net(x)
        if "relu_kernel" in want:
            result.relu_kernel, result.relu_calls = kernel, calls[0]
        if loss_parts:
            try:
                loss = _ce_loss(model, out, batch.labels)
            except ProxyError as e:
                errors.update(dict.fromkeys(loss_parts, e))
            else:
                grads: tuple[Tensor | None, ...] = (None,) * len(weights)
                if loss.requires_grad:
                    in_loss_backward[0] = True
                    grads = torch.autograd.grad(
                        loss, weights, allow_unused=True, retain_graph="input_grad" in want
                    )
                    in_loss_backward[0] = False
                result.loss_grads = list(grads)
                result.fisher_per_layer = per_layer
        if "input_grad" in want:
            if not isinstance(out, Tensor):
                errors["input_grad"] = ProxyError(
                    f"needs a model that returns one tensor; model {model_name(model)!r} returned {type(out).__name__}"
                )
            else:
                g = None
                if out.requires_grad:  # else the output is cut off from the input
                    (g,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), allow_unused=True)
                if g is None:
                    g = torch.zeros_like(x)
                result.input_grad, result.out_shape = g.reshape(g.shape[0], -1), out.shape  # (B, 3HW)
    finally:
        for h in handles:
            h.remove()
    return result, errors


def _ce_loss(model: nn.Module, out: Any, labels: Tensor) -> Tensor:
    """The mean cross-entropy of ``out`` ``(B, C)``; ProxyError for other outputs or labels out of range."""
    if not isinstance(out, Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else ""
        raise ProxyError(f"needs (B, C) logits; model {model_name(model)!r} returned {type(out).__name__} {shape}")
    labels = labels.to(out.device)
    if labels.numel() > 0 and (int(labels.min()) < 0 or int(labels.max()) >= out.shape[1]):
        raise ProxyError(
            f"labels span {int(labels.min())}..{int(labels.max())} but model {model_name(model)!r} "
            f"has {out.shape[1]} outputs"
        )
    return F.cross_entropy(out, labels)
