"""GradSign: agreement of the per-sample gradient signs at initialization.

Zhang & Jia, "GradSign: Model Performance Inference with Theoretical Insights", ICLR 2022
(reference code: the authors' ``GradSign`` repository, ``grad_conflict`` measure).

For a batch of ``B`` samples and every entry ``k`` of every Conv/Linear weight, let ``g_ik`` be the
gradient of sample ``i``'s own cross-entropy loss. The score is

.. math::
    \\mathrm{GradSign} = \\sum_k \\Big| \\sum_{i=1}^{B} \\operatorname{sign}(g_{ik}) \\Big|

It lies in ``[0, B * P]`` for ``P`` weight entries, and it is large when the samples' gradients
point the same way, which the paper links to a dense set of sample-wise local optima near the
initialization and so to a lower training and generalization loss. **Higher is better.**

Choices that change rankings, all the reference's unless said otherwise:

* Layers: the ``weight`` of every ``nn.Conv1d/2d/3d`` and ``nn.Linear`` (the reference takes
  ``nn.Conv2d`` and ``nn.Linear``); biases and BatchNorm parameters are not counted. A weight that
  does not reach the loss contributes zeros (the reference's ``torch.zeros_like`` for a ``None``
  gradient), so it adds nothing. A weight tied between layers is counted once, with the summed
  gradient of its uses (the reference iterates modules and would count it once per module).
* Aggregation: ``aggregate="sum"`` (default) is the paper's formula and the reference measure's
  ``np.nansum``. ``"mean"`` divides by the number of weight entries, as one of the reference's
  NB201 scripts (``np.nanmean``) does; it favours small networks relative to ``"sum"``. On NB201 /
  CIFAR-10 (batch 64, 60 random architectures, seed 0) Spearman ρ against ``cifar10_test_acc`` was
  0.82 for ``"sum"`` and 0.04 for ``"mean"``.
* BatchNorm: each sample gets its own forward pass in train mode, so BatchNorm normalizes a sample
  by its own spatial statistics (the reference's loop). ``method="hooks"`` (default) computes exactly
  that in one batched pass with BatchNorm swapped for InstanceNorm; ``method="loop"`` is the
  reference loop. See :mod:`proxies.per_sample`.
* ``sign(0) = 0``: an exactly-zero gradient (a dead ReLU, a weight cut off by a ``none`` edge) casts
  no vote. A degenerate NB201 cell whose output does not depend on its input makes every gradient
  zero and scores exactly 0, the minimum.
* Non-finite gradients raise :class:`~nas.errors.ProxyError`, where the reference's ``nansum``
  would silently drop them.

Shapes: ``batch.images`` ``(B, 3, H, W)``, ``batch.labels`` ``(B,)``; the model returns logits
``(B, num_classes)``. The two methods agree to float64 round-off; in float32, deep plain
(skip-free) NB201 cells amplify round-off so much that the per-sample gradients of *either* path
are only accurate to a few per cent, and a few near-zero entries flip sign between them (on
CIFAR-10 batches of 64 the two scores differed by at most 7e-5 relative over 10 random
architectures, rank correlation 1.0). On CUDA, cuDNN's default TF32 convolutions widen that gap
(2e-3 on an H100).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES, finite, model_name, require_weights
from proxies.passes import Passes
from proxies.per_sample import METHODS, Method, per_sample_grads

__all__ = ["GradSign", "gradsign_from_grads"]

AGGREGATES = ("sum", "mean")


def gradsign_from_grads(grads: Mapping[str, Tensor], *, aggregate: Literal["sum", "mean"] | str = "sum") -> float:
    """``Σ_k |Σ_i sign(g_ik)|`` (or its mean over ``k``) from per-sample gradients.

    Args:
        grads: ``{name: (B, *weight.shape)}``, as :func:`~proxies.per_sample.per_sample_grads` returns.
        aggregate: ``"sum"`` over weight entries (the paper) or ``"mean"``.
    """
    if aggregate not in AGGREGATES:
        raise ProxyError(f"unknown GradSign aggregate {aggregate!r}; valid: {', '.join(AGGREGATES)}")
    if not grads:
        raise ProxyError("GradSign needs the gradients of at least one weight")
    total = 0.0
    entries = 0
    for name, g in grads.items():
        # torch.sign(nan) is 0: without this check a NaN would silently cast no vote. A finite sum
        # clears the whole tensor at once (NaN and inf propagate); only a non-finite sum, which may
        # also be an overflow of finite values, needs the element-wise check.
        if not bool(torch.isfinite(g.sum())) and not bool(torch.isfinite(g).all()):
            raise ProxyError(f"non-finite per-sample gradients for {name!r}")
        votes = g.sign().sum(0)  # (*weight.shape): exact integers, |votes| <= B
        total += float(votes.abs().sum(dtype=torch.float64))  # float64: the total can exceed 2**24
        entries += votes.numel()
    return total if aggregate == "sum" else total / entries


@dataclass(frozen=True)
class GradSign:
    """GradSign (Zhang & Jia, ICLR 2022); see the module docstring. Higher is better.

    Args:
        method: ``"hooks"`` (one batched pass, default) or ``"loop"`` (one pass per sample, the
            reference); they compute the same score.
        aggregate: ``"sum"`` (the paper, default) or ``"mean"`` over weight entries.
    """

    method: Method = "hooks"
    aggregate: Literal["sum", "mean"] = "sum"

    name: ClassVar[str] = "gradsign"
    higher_is_better: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ProxyError(f"GradSign: unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        if self.aggregate not in AGGREGATES:
            raise ProxyError(f"GradSign: unknown aggregate {self.aggregate!r}; valid: {', '.join(AGGREGATES)}")

    def needs(self) -> set[Any]:
        return {("per_sample", "cross_entropy", self.method)}

    def from_passes(self, passes: Passes) -> float:
        return self._score(passes.model, lambda: passes.per_sample("cross_entropy", self.method))

    def score(self, model: nn.Module, batch: Batch) -> float:
        """The GradSign of ``model`` on ``batch``; ``model`` is not modified."""
        return self._score(model, lambda: per_sample_grads(model, batch.images, batch.labels, method=self.method))

    def _score(self, model: nn.Module, grads_of: Callable[[], Mapping[str, Tensor]]) -> float:
        require_weights(self.name, model)
        try:
            grads = grads_of()
            value = gradsign_from_grads(grads, aggregate=self.aggregate)
        except ProxyError as e:
            raise ProxyError(f"proxy {self.name!r} on model {model_name(model)!r}: {e}") from e
        return finite(self.name, model, value)


PROXIES.register("gradsign")(GradSign)
