"""``jacov``: the Jacobian-covariance score of NASWOT v1.

Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without Training", arXiv:2006.04647
**v1** (2020), as NAS-Bench-Suite-Zero / NASLib compute it (``measures/jacov.py``).

Definition
----------
For a batch :math:`X \\in \\mathbb{R}^{B \\times 3 \\times H \\times W}` and the network output
:math:`f(X) \\in \\mathbb{R}^{B \\times C}` (the logits), one backward pass of the summed output gives

.. math::
    J_b = \\frac{\\partial}{\\partial x_b} \\sum_{b', c} f(X)_{b'c} \\in \\mathbb{R}^{3HW},

one row per sample (the :math:`(B, 3HW)` matrix :math:`J`). With :math:`\\Sigma` the Pearson correlation
matrix of the rows of :math:`J` (``numpy.corrcoef``, :math:`(B, B)`) and :math:`\\lambda_1..\\lambda_B` its
eigenvalues,

.. math::
    \\text{jacov} = -\\sum_{i=1}^{B} \\left[ \\log(\\lambda_i + k) + \\frac{1}{\\lambda_i + k} \\right],
    \\qquad k = 10^{-5}.

Each term is at least 1, with equality at :math:`\\lambda = 1 - k`, so the score is at most :math:`-B`
and is largest when the correlation matrix is close to the identity: inputs whose local linear maps
are uncorrelated.

Shapes: ``batch.images`` is ``(B, 3, H, W)``; the model returns one tensor ``(B, C)`` (any shape whose
first dimension is the batch works: every element is summed).

Sign convention: returned as NASLib returns it, **higher is better**; the value is at most :math:`-B`.
It depends on :math:`B`, so compare scores on one batch size only. NASLib's NB201 CIFAR-10 table runs
from -5148 to -32.23, which is only possible with :math:`B \\le 32`: its batch had 32 images.

Choices that change rankings (all as in NASLib):

* The model runs in **train mode** (BatchNorm uses batch statistics), on a :func:`working_copy`. So
  :math:`J_b` is the gradient of the *batch* sum and includes the cross-sample terms BatchNorm creates;
  it is not the per-sample Jacobian of an eval-mode network.
* The gradient of the sum of all logits, not of one class; the row is flattened over ``3HW``.
* :math:`k = 10^{-5}`, and the eigenvalues are those of the correlation (not covariance) matrix.
  We use a symmetric eigensolver (``eigvalsh``) in float64, where NASLib calls the general ``eig``; on a
  symmetric matrix they agree up to round-off.

Degenerate networks: when the output does not depend on the input (an NB201 cell of all ``none``
ops), every :math:`J_b` is zero, the correlation is 0/0 and the score is undefined. NASLib records
NaN there (stored as ``-1e8`` in its tables); we raise :class:`~nas.errors.ProxyError`. A sample whose
gradient row is constant (zero variance over its ``3HW`` entries) raises the same error.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES, finite, model_name, working_copy
from proxies.passes import Passes

#: NASLib's regularizer of the eigenvalues.
EIG_EPS = 1e-5


def batch_input_gradient(proxy: str, net: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """The gradient of the summed output of ``net`` with respect to each input, and the output's shape.

    Returns ``(grads, out_shape)``: ``grads`` is ``(B, 3HW)`` float32, ``out_shape`` the shape of the
    output (``(B, C)`` for a classifier). ``net`` is run as it is (the caller passes a train-mode
    working copy); ``images`` is not modified. Raises :class:`ProxyError` when the model does not
    return one tensor.
    """
    x = images.detach().clone().requires_grad_(True)  # (B, 3, H, W)
    out = net(x)
    if not isinstance(out, torch.Tensor):
        raise ProxyError(
            f"proxy {proxy!r} needs a model that returns one tensor; model {model_name(net)!r} "
            f"returned {type(out).__name__}"
        )
    grad = None
    if out.requires_grad:  # else the output is cut off from the input (and from every parameter)
        (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), allow_unused=True)
    if grad is None:  # no path from the input to the output: the gradient is zero
        grad = torch.zeros_like(x)
    return grad.reshape(grad.shape[0], -1), out.shape  # (B, 3, H, W) -> (B, 3HW)


def row_correlation(proxy: str, model: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the rows of ``rows`` ``(n, D)``, as ``numpy.corrcoef``: ``(n, n)`` float64.

    Raises :class:`ProxyError` naming the first row with zero variance, where the correlation is
    undefined (0/0).
    """
    r = rows.to(torch.float64)
    centred = r - r.mean(dim=1, keepdim=True)  # (n, D)
    norms = centred.norm(dim=1)  # (n,)
    flat = (norms == 0).nonzero()
    if flat.numel() > 0:
        i = int(flat[0, 0])
        raise ProxyError(
            f"proxy {proxy!r}: the input gradient of sample {i} is constant (zero variance over "
            f"{r.shape[1]} entries) for model {model_name(model)!r}, so its correlation is undefined; "
            "the output probably does not depend on the input"
        )
    unit = centred / norms[:, None]  # (n, D)
    return (unit @ unit.T).clamp_(-1.0, 1.0)  # (n, n)


class JacobianCovariance:
    """NASWOT v1's Jacobian-covariance score (see the module docstring)."""

    name = "jacov"
    higher_is_better = True

    def needs(self) -> set[Any]:
        return {"input_grad"}

    def from_passes(self, passes: Passes) -> float:
        grads, _ = passes.input_grad(self.name)
        return self._from_grads(passes.model, grads)

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model)
        grads, _ = batch_input_gradient(self.name, net, batch.images)  # (B, 3HW)
        return self._from_grads(model, grads)

    def _from_grads(self, model: nn.Module, grads: torch.Tensor) -> float:
        corr = row_correlation(self.name, model, grads)  # (B, B)
        eig = torch.linalg.eigvalsh(corr)  # (B,), real: corr is symmetric
        shifted = eig + EIG_EPS
        value = -(torch.log(shifted) + 1.0 / shifted).sum()
        return finite(self.name, model, value)


PROXIES.register("jacov")(JacobianCovariance)
