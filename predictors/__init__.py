"""Performance predictors, registered in :data:`PREDICTORS` (see :mod:`predictors.base` for the contract).

* ``gennape``: contrastive GNN encoder, fuzzy clusters, membership-weighted heads (:mod:`predictors.gennape`);
* ``zc_gbdt``, ``graph_gbdt``, ``text_ridge``, ``capacity_ridge``: baselines on proxy scores, a generic
  graph encoding, the graph's text and its capacity (parameters and FLOPs) (:mod:`predictors.baselines`);
* ``kernel_latency``: an additive per-kernel latency model, nn-Meter style (:mod:`predictors.latency`).

Saved predictors load with :func:`load_predictor`, whichever of them wrote the file.
"""

from __future__ import annotations

from predictors import baselines, gennape, latency  # noqa: F401  (each module registers its predictors)
from predictors.base import PREDICTORS, Predictor, load_predictor

__all__ = ["PREDICTORS", "Predictor", "load_predictor"]
