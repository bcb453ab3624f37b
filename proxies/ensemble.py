"""A label-free ensemble of proxies: the mean of their normalized ranks across a population.

Zero-cost proxies live on incomparable scales (log-determinants, sums of gradients, parameter
counts), but their *rankings* of a population can be averaged. For each proxy the population is
ranked with the proxy's own direction (``higher_is_better``; ties get their average rank), the ranks
are scaled to [0, 1], and the ensemble score of an architecture is the weighted mean of its scaled
ranks. It needs no accuracy labels, only the population being compared. Shapes: ``scores`` maps a
proxy name to ``n`` values (one per architecture); the result has ``n`` values, higher is better.

:data:`DEFAULT_PROXIES` is the default member set; see the module's benchmark
(``python -m benchmarks.proxy_correlation``) for how it ranks NAS-Bench-201.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from nas.errors import ProxyError
from proxies.base import PROXIES

#: Default members: the network's size (flops), a data-free capacity measure (synflow), two
#: activation-pattern measures (nwot, jacov) and the NTK's label alignment (lga), which err in
#: different ways. Chosen on a quick NAS-Bench-201 run (200 + 150 CIFAR-10 architectures, seed 0,
#: batch 64), where adding lga to the other four raised Spearman rho from 0.87 to 0.92; the
#: 1,000-architecture run of ``benchmarks.proxy_correlation`` is the check on other architectures.
DEFAULT_PROXIES: tuple[str, ...] = ("nwot", "synflow", "jacov", "lga", "flops")


def rank_ensemble(
    scores: Mapping[str, Sequence[float] | npt.NDArray[np.floating]],
    proxies: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The ensemble score of each architecture (see the module docstring)."""
    members = list(proxies) if proxies is not None else [p for p in DEFAULT_PROXIES if p in scores]
    missing = [p for p in members if p not in scores]
    if not members or missing:
        raise ProxyError(
            f"the ensemble needs scores for {members or list(DEFAULT_PROXIES)}; missing {missing or members}"
        )
    n = len(scores[members[0]])
    total = np.zeros(n)
    weight_sum = 0.0
    for p in members:
        values = np.asarray(scores[p], dtype=float)
        if values.shape != (n,):
            raise ProxyError(f"proxy {p!r} has {values.shape} scores, expected ({n},)")
        if not np.all(np.isfinite(values)):
            raise ProxyError(f"proxy {p!r} has non-finite scores at positions {np.flatnonzero(~np.isfinite(values))}")
        if not PROXIES.resolve(p).higher_is_better:
            values = -values
        scaled = (rankdata(values) - 1) / max(n - 1, 1)
        w = 1.0 if weights is None else float(weights.get(p, 0.0))
        total += w * scaled
        weight_sum += w
    if weight_sum <= 0:
        raise ProxyError(f"ensemble weights must sum to a positive number; got {dict(weights or {})}")
    return total / weight_sum


class ReferenceEnsemble:
    r"""The ensemble as a fixed score per architecture, for search: robust z-scores against a reference set.

    :func:`rank_ensemble` ranks a whole population at once; a search needs a value per candidate
    that does not change as more candidates arrive. This form fixes a reference population (e.g. 64
    uniform samples of the space) once: for each member proxy :math:`p` (oriented so higher is
    better) with reference scores :math:`r_p`,

    .. math::
        t_p(v) = \operatorname{asinh}(v / s_p), \quad s_p = \operatorname{median}|r_p|, \qquad
        z_p(v) = \frac{t_p(v) - \operatorname{median}\, t_p(r_p)}{\operatorname{IQR}\, t_p(r_p)},

    and the score is the weighted mean of :math:`z_p`. ``asinh`` is the identity near 0 and a
    logarithm for large values, so a proxy spanning orders of magnitude (synflow) does not drown
    the others, and each :math:`z_p` is monotone in its proxy. Unlike a rank against the reference,
    it does not saturate for candidates better than every reference architecture. On NAS-Bench-201
    CIFAR-10 (645 architectures, members :data:`DEFAULT_PROXIES`, 64-architecture references over 5
    draws) its Spearman rho with test accuracy was 0.91-0.93, the same as :func:`rank_ensemble`'s
    0.92 on the same architectures.
    """

    def __init__(
        self,
        reference: Mapping[str, Sequence[float] | npt.NDArray[np.floating]],
        proxies: Sequence[str] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.members = list(proxies) if proxies is not None else list(DEFAULT_PROXIES)
        missing = [p for p in self.members if p not in reference]
        if missing:
            raise ProxyError(f"the reference set has no scores for {missing}")
        self.weights = {p: 1.0 if weights is None else float(weights.get(p, 0.0)) for p in self.members}
        if sum(self.weights.values()) <= 0:
            raise ProxyError(f"ensemble weights must sum to a positive number; got {self.weights}")
        self.stats: dict[str, tuple[float, float, float]] = {}
        for p in self.members:
            r = self._oriented(p, np.asarray(reference[p], dtype=float))
            r = r[np.isfinite(r)]
            if len(r) < 4:
                raise ProxyError(f"proxy {p!r} has {len(r)} finite reference scores; the ensemble needs at least 4")
            scale = float(np.median(np.abs(r))) or 1.0
            t = np.arcsinh(r / scale)
            q1, q2, q3 = np.percentile(t, [25, 50, 75])
            spread = float(q3 - q1) or float(np.std(t)) or 1.0  # a constant proxy contributes 0
            self.stats[p] = (scale, float(q2), spread)

    @staticmethod
    def _oriented(p: str, v: np.ndarray) -> np.ndarray:
        return v if PROXIES.resolve(p).higher_is_better else -v

    def score(self, scores: Mapping[str, float]) -> float:
        """The ensemble value of one architecture from its member scores (all must be present and finite)."""
        missing = [p for p in self.members if p not in scores]
        if missing:
            raise ProxyError(f"the ensemble needs scores for {missing}")
        total = 0.0
        for p in self.members:
            v = float(self._oriented(p, np.asarray(scores[p], dtype=float)))
            if not np.isfinite(v):
                raise ProxyError(f"proxy {p!r} has a non-finite score {v}")
            scale, centre, spread = self.stats[p]
            total += self.weights[p] * (float(np.arcsinh(v / scale)) - centre) / spread
        return total / sum(self.weights.values())

    def state_dict(self) -> dict[str, Any]:
        return {"members": self.members, "weights": self.weights, "stats": self.stats}
