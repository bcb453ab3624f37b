"""``nwot``: NASWOT, the log-determinant of the ReLU activation-code kernel.

Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without Training", ICML 2021
(arXiv:2006.04647 v2), as NAS-Bench-Suite-Zero / NASLib compute it (``measures/nwot.py``).

Definition
----------
Each ReLU unit splits the batch by the sign of its input. For the :math:`l`-th ReLU call, with its input
flattened per sample to :math:`(B, N_l)`, the binary codes are :math:`c^{(l)}_b = [z^{(l)}_b > 0] \\in
\\{0,1\\}^{N_l}`, and the Hamming-similarity kernel sums, over all calls, the number of units on which two
samples agree:

.. math::
    K_{ij} = \\sum_l \\left[ c^{(l)}_i \\cdot c^{(l)}_j + (1 - c^{(l)}_i) \\cdot (1 - c^{(l)}_j) \\right]
           = \\sum_l \\left( N_l - d_H(c^{(l)}_i, c^{(l)}_j) \\right),
    \\qquad \\text{nwot} = \\log \\lvert \\det K \\rvert \\quad (\\text{``slogdet``}).

:math:`K` is :math:`(B, B)`, symmetric positive semi-definite, with :math:`\\sum_l N_l` on its diagonal. The
more the codes of different inputs differ, the closer :math:`K` is to diagonal and the larger its
determinant.

Shapes: ``batch.images`` is ``(B, 3, H, W)``; only the forward pass is used, the output may be anything.

Sign convention: NASLib's value, **higher is better**. It grows with the batch size and with the number
of ReLU units (about :math:`B \\log(\\sum_l N_l / 2)`), so compare scores on one batch size only:
NASLib's NB201 CIFAR-10 table (327 to 419) was computed with :math:`B = 32`, where NB201 networks
score about 300 to 405 here; with :math:`B = 64` they score about 640 to 850.

Hook placement (it changes rankings), as NASLib on NB201:

* A forward hook on every ``torch.nn`` ReLU-family module (``nn.ReLU``, ``ReLU6``, ``LeakyReLU``,
  ``PReLU``, ``RReLU``): NASLib hooks each module whose class name contains ``ReLU`` and, in its later
  version, skips its own composite modules (``ReLUConvBN``), which would count the same units twice.
  Functional ReLUs (``F.relu``, ``torch.relu``) have no module and are not seen.
* Every call counts: a module run twice contributes twice.
* The code is read from the module's **input**, flattened over all non-batch dimensions, so a ReLU
  before the global pooling contributes :math:`C \\cdot H \\cdot W` units. :math:`[z > 0]` is the same
  before and after the ReLU, so an in-place ReLU gives the same codes.
* For NB201 (:class:`search_spaces.nb201.NB201Network`) these are the ReLUs at the head of every
  ``nor_conv`` op and of the two ReLU-Conv-BN of each reduction block, and the ReLU after the last
  BatchNorm; the stem has none.
* The model runs once, in train mode (BatchNorm uses batch statistics), on a :func:`working_copy`.

Degenerate networks: when no input reaches a ReLU (an NB201 cell of all ``none`` ops), all codes are
equal, :math:`K` is a multiple of the all-ones matrix, :math:`\\det K = 0` and the score is
:math:`-\\infty`: :class:`~nas.errors.ProxyError` (NASLib stores ``-inf``). A model in which no ReLU module
runs raises :class:`~nas.errors.ProxyError` too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES, finite, model_name, working_copy
from proxies.passes import Passes, relu_types

#: The ``torch.nn`` modules whose class name contains "ReLU": the ones NASLib's test hooks.
RELU_TYPES: tuple[type[nn.Module], ...] = relu_types()


def relu_code_kernel(net: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The kernel :math:`K` ``(B, B)`` float64 of ``net`` on ``images``, and the number of ReLU calls.

    Runs ``net`` once, as it is (the caller passes a working copy), without gradients.
    """
    b = images.shape[0]
    kernel = torch.zeros(b, b, dtype=torch.float64, device=images.device)
    calls = 0

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal calls
        codes = (inputs[0].detach().reshape(b, -1) > 0).to(torch.float32)  # (B, ...) -> (B, N_l)
        n_units = codes.shape[1]
        ones = codes.sum(dim=1)  # (B,)
        # c_i.c_j + (1-c_i).(1-c_j) = N - |c_i| - |c_j| + 2 c_i.c_j; exact in float32 below 2**24 units
        agree = n_units - ones[:, None] - ones[None, :] + 2.0 * (codes @ codes.T)  # (B, B)
        kernel.add_(agree.to(torch.float64))
        calls += 1

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, RELU_TYPES)]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for h in handles:
            h.remove()
    return kernel, calls


class NASWOT:
    """NASWOT's activation-code log-determinant (see the module docstring)."""

    name = "nwot"
    higher_is_better = True

    def needs(self) -> set[Any]:
        return {"relu_kernel"}

    def from_passes(self, passes: Passes) -> float:
        kernel, calls = passes.relu_kernel(self.name)
        return self._from_kernel(passes.model, kernel, calls)

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model)
        kernel, calls = relu_code_kernel(net, batch.images)
        return self._from_kernel(model, kernel, calls)

    def _from_kernel(self, model: nn.Module, kernel: torch.Tensor, calls: int) -> float:
        if calls == 0:
            raise ProxyError(
                f"proxy {self.name!r} needs ReLU modules ({', '.join(t.__name__ for t in RELU_TYPES)}); "
                f"none ran in model {model_name(model)!r}"
            )
        _, logabsdet = torch.linalg.slogdet(kernel)
        return finite(self.name, model, logabsdet)


PROXIES.register("nwot")(NASWOT)
