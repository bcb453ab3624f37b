"""``meco``: the minimum eigenvalue of the channel correlation of each feature map, summed over layers.

Jiang, Wang & Bie, "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue
of Correlation", NeurIPS 2023 (arXiv:2310.18293).

Definition
----------
The network runs once on one image. For the :math:`l`-th op output that is a feature map, read as
:math:`F_l \\in \\mathbb{R}^{C_l \\times H_l W_l}` (one row per channel, one column per position), let
:math:`P_l` be the :math:`C_l \\times C_l` Pearson correlation matrix of its channels over the positions.
Then

.. math::
    \\text{meco} = \\sum_l \\lambda_{\\min}(P_l).

:math:`P_l` is positive semi-definite with unit diagonal, so each term lies in :math:`[0, 1]`: it is near
1 when the channels are decorrelated and 0 when they are linearly dependent, which they always are when
there are more channels than positions (:math:`C_l > H_l W_l`). The score therefore grows with the
number of feature maps whose channels carry distinct information.

Conventions, as the authors' code computes them:

* The correlation of a channel that is constant over the positions (zero variance, for example the
  output of a ``none`` op, or a map of one position after global pooling) is undefined; its row and
  column of :math:`P_l`, diagonal included, are 0 (the code sets NaN entries of ``torch.corrcoef`` to 0).
* The network is in train mode (BatchNorm normalizes with the statistics of the one image), as a
  freshly built module is. The image is the batch's first.

Choice of layers: every **leaf** module (one with no submodules) whose output is a 4-D tensor
``(1, C, H, W)``, every time it runs. The authors hook every module, containers included, so their sum
also counts each block's output and depends on how the model's code nests modules. Over leaves it
still depends on which ops a model runs as modules: a space's own NB201 module has ``Identity`` and
zero-op leaves and a ReLU per op, its IR graph rebuilt by ``to_torch`` has ``Add`` leaves and shared
ReLUs, so the two score the same network differently (both rank NB201 alike, see the README).
Outputs of other ranks, and outputs that are not one tensor (a tuple, as from an ONNX ``Split``),
are skipped; the authors' code would read a tuple's first element.

Conventions of this implementation: the correlations are computed in float64 from the centred
channels, and a channel counts as constant only when its variance is exactly 0 (a channel constant up
to float32 rounding counts as live, as it does for ``torch.corrcoef``). A feature map with an
infinite or NaN value is a :class:`~nas.errors.ProxyError` naming the module, not a dead channel.

Sign convention: **higher is better** (the paper's). Cost: one forward pass of one image and one
symmetric eigenvalue problem of size :math:`C_l` per feature map, in float64.

Degenerate networks: a model with no leaf module that outputs a feature map raises
:class:`~nas.errors.ProxyError`; so does a model that cannot run on one image in train mode (a
``BatchNorm1d``, or a BatchNorm over a 1 x 1 map, needs more than one value per channel).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES, finite, model_name, working_copy


def min_correlation_eigenvalue(fmap: torch.Tensor) -> float:
    """:math:`\\lambda_{\\min}` of the channel correlation of ``fmap`` ``(C, H, W)``, with the rows and
    columns of zero-variance channels set to 0 (see the module docstring)."""
    f = fmap.detach().reshape(fmap.shape[0], -1).to(torch.float64)  # (C, HW)
    centred = f - f.mean(dim=1, keepdim=True)
    norm = centred.norm(dim=1)  # (C,)
    live = norm > 0
    unit = torch.where(live[:, None], centred / torch.where(live, norm, 1.0)[:, None], 0.0)
    corr = unit @ unit.T  # (C, C): Pearson correlations, 0 rows/columns for dead channels
    return float(torch.linalg.eigvalsh(corr)[0])


class MeCo:
    """Sum over feature maps of the minimum eigenvalue of their channel correlation (module docstring)."""

    name = "meco"
    higher_is_better = True

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model)
        terms: list[float] = []
        broken: list[str] = []

        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                if not bool(torch.isfinite(output[0]).all()):
                    broken.append(type(module).__name__)
                    return
                terms.append(min_correlation_eigenvalue(output[0]))

        handles = [m.register_forward_hook(hook) for m in net.modules() if next(m.children(), None) is None]
        param = next(net.parameters(), None)
        image = batch.images[:1]  # (1, C, H, W)
        if param is not None:
            image = image.to(device=param.device, dtype=param.dtype)
        try:
            with torch.no_grad():
                net(image)
        except ValueError as e:
            if "more than 1 value per channel" not in str(e):  # not a normalization layer's: the model's own
                raise
            raise ProxyError(f"proxy 'meco' runs one image in train mode; model {model_name(model)!r} cannot: "
                             f"{e}") from e
        finally:
            for h in handles:
                h.remove()
        if broken:
            raise ProxyError(f"proxy 'meco': the feature map of {broken[0]} in model {model_name(model)!r} has a "
                             "non-finite value")
        if not terms:
            raise ProxyError(f"proxy 'meco' found no module output of shape (N, C, H, W) in model "
                             f"{model_name(model)!r}")
        return finite(self.name, model, sum(terms))


PROXIES.register("meco")(MeCo)
