"""Zero-cost proxies, one per module, registered in :data:`PROXIES` (see :mod:`proxies.base`)."""

from __future__ import annotations

from proxies import (  # noqa: F401  (each module registers its proxy)
    epe_nas,
    fisher,
    flops,
    grad_norm,
    gradsign,
    grasp,
    jacov,
    l2_norm,
    lga,
    meco,
    nwot,
    params,
    plain,
    snip,
    synflow,
    zen,
)
from proxies.base import PROXIES, Proxy

__all__ = ["PROXIES", "Proxy"]
