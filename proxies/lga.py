"""LGA: label-gradient alignment of the empirical neural tangent kernel.

Mok, Shin, Kim, Ham & Kwak, "Demystifying the Neural Tangent Kernel from a Practical Perspective:
Can it be trusted for Neural Architecture Search without training?", CVPR 2022.

On one batch of ``B`` samples, with ``g_i`` the gradient of the sum of sample ``i``'s logits
(``gradient="logits"``, the default: the network's tangent features, what the empirical NTK is
defined on) or of its cross-entropy loss (``gradient="loss"``) with respect to all Conv/Linear
weights (flattened and concatenated), let

* ``Θ_ij = <g_i, g_j>``, the ``(B, B)`` empirical NTK Gram matrix of those gradients, and
* ``Y_ij = +1`` if samples ``i`` and ``j`` have the same label, else ``-1``, the label kernel.

Both are centred, ``Θc = HΘH`` and ``Yc = HYH`` with ``H = I - 11ᵀ/B``, and the score is their
cosine (centred kernel alignment):

.. math::
    \\mathrm{LGA} = \\frac{\\langle Θ_c, Y_c \\rangle_F}{\\lVert Θ_c \\rVert_F \\, \\lVert Y_c \\rVert_F}
    \\in [-1, 1]

A network whose gradients are similar for samples of one class and dissimilar across classes
learns the labels along its kernel's leading directions. **Higher is better.**

The paper reports that the NTK at initialization ranks architectures poorly and that LGA gets
more reliable after a little training. ``train_steps > 0`` runs such a protocol on a copy before
scoring; exactly:

* the optimizer is ``torch.optim.SGD(lr, momentum)`` over all parameters, without weight decay;
* step ``t`` draws ``train_batch_size`` distinct samples of the *scored batch* (the only data a
  proxy is given) with ``torch.randperm`` from a private ``torch.Generator`` seeded with ``seed``,
  and minimizes their mean cross-entropy, BatchNorm in train mode on that mini-batch and dropout
  off. Same model, batch and arguments give the same score in a fresh process;
* the NTK is then computed on the whole batch, as at initialization.

Choices that change rankings:

* ``gradient``. With the loss, ``g_i = J_iᵀ (softmax(f(x_i)) - e_{y_i})``: the label residual
  makes same-class gradients alike in *every* network, which swamps the architecture's own
  kernel. ``"logits"`` (``g_i = J_iᵀ 1``, the output-gradient NTK as TE-NAS computes it) leaves the
  labels to ``Y`` alone. Measured on NB201 / CIFAR-10 (batch 64, 60 random architectures, seed 0,
  Spearman ρ against ``cifar10_test_acc``): loss -0.12 at init, -0.04 after 10 steps; logits
  0.69 at init. On 25 of them: logits 0.77 at init, 0.31 after 10 steps (lr 0.1, momentum 0.9,
  mini-batches of 32 of the scored batch); training on half the batch and scoring the other half
  gave 0.57 (logits) and 0.09 (loss). Training on the scored batch soon makes the network fit it,
  after which the loss-gradient LGA saturates near 1 for every network.
* Weights: Conv/Linear weights only (no biases, no normalization parameters), with per-sample
  BatchNorm semantics (each sample normalized by its own statistics, as in one forward pass per
  sample; see :mod:`proxies.per_sample`). Θ and the alignment are accumulated in float64.
* Both kernels are double-centred (``HΘH``), which removes the constant offset a shared gradient
  component adds to every ``Θ_ij``.
* An all-zero gradient (a degenerate NB201 cell whose output does not depend on the input, or a
  network cut off from the loss) gives ``Θc = 0``: no alignment, scored exactly ``0.0``. A batch
  with a single class has ``Yc = 0`` and raises :class:`~nas.errors.ProxyError`.

Shapes: ``batch.images`` ``(B, 3, H, W)``, ``batch.labels`` ``(B,)``; the model returns logits
``(B, num_classes)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES, finite, model_name, require_weights, working_copy
from proxies.passes import Passes
from proxies.per_sample import METHODS, Method, per_sample_grads

__all__ = ["LGA", "center", "lga_from_grads", "ntk_gram"]

#: LGA's ``gradient`` option -> the per-sample objective it differentiates.
GRADIENTS: dict[str, str] = {"loss": "cross_entropy", "logits": "logit_sum"}


def ntk_gram(grads: Mapping[str, Tensor]) -> Tensor:
    """``Θ = G Gᵀ`` in float64, ``(B, B)``, from ``{name: (B, *weight.shape)}`` per-sample gradients."""
    theta: Tensor | None = None
    for g in grads.values():
        flat = g.reshape(g.shape[0], -1).to(torch.float64)  # (B, entries of this weight)
        part = flat @ flat.T  # (B, B)
        theta = part if theta is None else theta + part
    if theta is None:
        raise ProxyError("LGA needs the gradients of at least one weight")
    return theta


def center(k: Tensor) -> Tensor:
    """``H K H`` with ``H = I - 11ᵀ/n``: ``K`` minus its row and column means plus its grand mean."""
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def lga_from_grads(grads: Mapping[str, Tensor], labels: Tensor) -> float:
    """The centred alignment of ``Θ = G Gᵀ`` with the ±1 label kernel of ``labels`` ``(B,)``."""
    theta = center(ntk_gram(grads))
    same = labels.reshape(-1, 1) == labels.reshape(1, -1)  # (B, B)
    y = center(same.to(torch.float64) * 2.0 - 1.0)
    y_norm = torch.linalg.matrix_norm(y)
    if y_norm == 0:
        raise ProxyError(
            f"LGA needs at least two classes in the batch; all {labels.numel()} labels are {int(labels[0])}"
        )
    theta_norm = torch.linalg.matrix_norm(theta)
    if theta_norm == 0:
        return 0.0  # every gradient is zero: the kernel carries no label information
    return float((theta * y).sum() / (theta_norm * y_norm))


@dataclass(frozen=True)
class LGA:
    """Label-gradient alignment (Mok et al., CVPR 2022); see the module docstring. Higher is better.

    Args:
        train_steps: SGD steps on a copy before scoring; 0 scores at initialization.
        gradient: ``"logits"`` (default): ``g_i`` is the gradient of the sum of sample ``i``'s logits,
            the network's tangent features (the empirical NTK); ``"loss"``: of its cross-entropy
            loss, which adds the label residual ``softmax - onehot`` (see the module docstring).
        lr: SGD learning rate for those steps.
        momentum: SGD momentum for those steps.
        train_batch_size: samples per step, drawn from the scored batch (at most its size).
        seed: seeds the private generator that draws the training mini-batches.
        method: ``"hooks"`` (one batched pass, default) or ``"loop"`` (one pass per sample) for the
            per-sample gradients; they give the same score.
    """

    train_steps: int = 0
    gradient: Literal["loss", "logits"] = "logits"
    lr: float = 0.1
    momentum: float = 0.9
    train_batch_size: int = 32
    seed: int = 0
    method: Method = "hooks"

    name: ClassVar[str] = "lga"
    higher_is_better: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ProxyError(f"LGA: unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        if self.gradient not in GRADIENTS:
            raise ProxyError(f"LGA: unknown gradient {self.gradient!r}; valid: {', '.join(GRADIENTS)}")
        if isinstance(self.train_steps, bool) or not isinstance(self.train_steps, int) or self.train_steps < 0:
            raise ProxyError(f"LGA: train_steps must be a non-negative int; got {self.train_steps!r}")
        if not (isinstance(self.train_batch_size, int) and self.train_batch_size >= 2):
            raise ProxyError(f"LGA: train_batch_size must be an int >= 2 (BatchNorm); got {self.train_batch_size!r}")
        if not self.lr > 0 or not 0 <= self.momentum < 1:
            raise ProxyError(f"LGA: need lr > 0 and 0 <= momentum < 1; got lr={self.lr!r}, momentum={self.momentum!r}")

    def needs(self) -> set[Any]:
        # after training the gradients are those of another network: nothing to share
        return set() if self.train_steps > 0 else {("per_sample", GRADIENTS[self.gradient], self.method)}

    def from_passes(self, passes: Passes) -> float:
        if self.train_steps > 0:
            return self.score(passes.model, passes.batch)
        require_weights(self.name, passes.model)
        try:
            grads = passes.per_sample(GRADIENTS[self.gradient], self.method)
            value = lga_from_grads(grads, passes.batch.labels)
        except ProxyError as e:
            raise ProxyError(f"proxy {self.name!r} on model {model_name(passes.model)!r}: {e}") from e
        return finite(self.name, passes.model, value)

    def score(self, model: nn.Module, batch: Batch) -> float:
        """The LGA of ``model`` on ``batch`` (after ``train_steps`` SGD steps on a copy)."""
        require_weights(self.name, model)
        try:
            net = self._trained(model, batch) if self.train_steps > 0 else model
            grads = per_sample_grads(
                net, batch.images, batch.labels, method=self.method, objective=GRADIENTS[self.gradient]
            )
            value = lga_from_grads(grads, batch.labels)
        except ProxyError as e:
            raise ProxyError(f"proxy {self.name!r} on model {model_name(model)!r}: {e}") from e
        return finite(self.name, model, value)

    def _trained(self, model: nn.Module, batch: Batch) -> nn.Module:
        """A copy of ``model`` after ``train_steps`` deterministic SGD steps on ``batch``."""
        net = working_copy(model)
        for m in net.modules():
            if isinstance(m, _DropoutNd):
                m.eval()
        gen = torch.Generator().manual_seed(self.seed)
        n = batch.size
        m_size = min(self.train_batch_size, n)
        opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum)
        for _ in range(self.train_steps):
            idx = torch.randperm(n, generator=gen)[:m_size].to(batch.images.device)  # (m,)
            loss = F.cross_entropy(net(batch.images[idx]), batch.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.zero_grad(set_to_none=True)
        return net


PROXIES.register("lga")(LGA)
