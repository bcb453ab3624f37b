"""``epe_nas``: per-class Jacobian correlations (EPE-NAS).

Lopes, Alirezazadeh & Alexandre, "EPE-NAS: Efficient Performance Estimation Without Training for
Neural Architecture Search", ICANN 2021 (arXiv:2102.08099), as NAS-Bench-Suite-Zero / NASLib compute it
(``measures/epe_nas.py``, itself taken from the authors' ``search.py``).

Definition
----------
The input gradients :math:`J \\in \\mathbb{R}^{B \\times 3HW}` are those of ``jacov``: one backward pass of
the sum of all outputs, in train mode (:func:`proxies.jacov.batch_input_gradient`). The rows are
grouped by the batch's labels. For each class :math:`c` present, with :math:`\\Sigma_c` the Pearson
correlation matrix of its :math:`n_c` rows (:math:`(n_c, n_c)`, ``numpy.corrcoef``),

.. math::
    s_c = \\sum_{i,j} \\log\\left(|\\Sigma_c[i,j]| + k\\right), \\qquad k = 10^{-5},

and with :math:`C` the number of network outputs (the last dimension of the output, *not* the
batch's ``num_classes``):

* :math:`C \\le 100`: :math:`\\text{epe\\_nas} = \\sum_c |s_c|`;
* :math:`C > 100`: :math:`s_c` is first divided by :math:`n_c`, classes with one sample are skipped (in
  NASLib the division fails on their scalar correlation and the class is dropped), and
  :math:`\\text{epe\\_nas} = \\frac{1}{|\\mathcal{C}|}\\sum_{c, c' \\in \\mathcal{C}} |s_c - s_{c'}|` over the
  set :math:`\\mathcal{C}` of classes kept (ordered pairs, :math:`c = c'` included).

A class with one sample has :math:`\\Sigma_c = [1]`, so :math:`s_c = \\log(1 + k)` when :math:`C \\le 100`.

Shapes: ``batch.images`` ``(B, 3, H, W)``, ``batch.labels`` ``(B,)``; the model returns ``(B, C)``.

Sign convention: NASLib's value, **higher is better**. Since :math:`|\\Sigma_c[i,j]| \\le 1`, every
:math:`s_c \\le n_c^2 \\log(1+k)` is essentially non-positive and :math:`|s_c|` grows as the gradients within
a class *decorrelate*: a larger score means samples of one class are told apart more.

Choices that change rankings (as in NASLib): train-mode BatchNorm; the gradient of the summed logits;
absolute correlations; :math:`k = 10^{-5}`; the :math:`C > 100` branch keyed on the output width;
the true labels of the batch (a batch with more classes changes the grouping, and so the score).

Degenerate networks: when the output does not depend on the input every gradient row is zero, the
correlations are 0/0 and the score is undefined: :class:`~nas.errors.ProxyError` (NASLib records NaN,
stored as ``-1e8`` in its tables).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES, finite, model_name, working_copy
from proxies.jacov import batch_input_gradient, row_correlation
from proxies.passes import Passes

#: Added to the absolute correlations before the log, as in NASLib.
CORR_EPS = 1e-5
#: Above this many network outputs, NASLib switches to the pairwise-difference aggregation.
MANY_CLASSES = 100


class EPENAS:
    """EPE-NAS per-class Jacobian-correlation score (see the module docstring)."""

    name = "epe_nas"
    higher_is_better = True

    def needs(self) -> set[Any]:
        return {"input_grad"}

    def from_passes(self, passes: Passes) -> float:
        grads, out_shape = passes.input_grad(self.name)
        return self._from_grads(passes.model, grads, out_shape, passes.batch)

    def score(self, model: nn.Module, batch: Batch) -> float:
        net = working_copy(model)
        grads, out_shape = batch_input_gradient(self.name, net, batch.images)  # (B, 3HW)
        return self._from_grads(model, grads, out_shape, batch)

    def _from_grads(self, model: nn.Module, grads: torch.Tensor, out_shape: torch.Size, batch: Batch) -> float:
        n_out = int(out_shape[-1]) if len(out_shape) > 0 else 1
        many = n_out > MANY_CLASSES
        per_class: list[torch.Tensor] = []
        for c in torch.unique(batch.labels).tolist():  # sorted; the order does not change the sums
            rows = grads[batch.labels == c]  # (n_c, 3HW)
            n_c = rows.shape[0]
            if many and n_c == 1:
                continue
            corr = row_correlation(self.name, model, rows)  # (n_c, n_c); [[1]] for one sample
            s = torch.log(corr.abs() + CORR_EPS).sum()
            per_class.append(s / n_c if many else s)
        if not per_class:
            raise ProxyError(
                f"proxy {self.name!r}: no class of the batch has two samples (labels "
                f"{batch.labels.tolist()}) for model {model_name(model)!r} with {n_out} outputs"
            )
        s_all = torch.stack(per_class)  # (n_classes_kept,)
        if many:
            value = (s_all[:, None] - s_all[None, :]).abs().sum() / s_all.numel()
        else:
            value = s_all.abs().sum()
        return finite(self.name, model, value)


PROXIES.register("epe_nas")(EPENAS)
