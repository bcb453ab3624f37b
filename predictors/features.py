"""What a predictor reads besides the graph, named so that a saved predictor can compute it again.

A :class:`FeatureSpec` names the ``features`` a predictor was fitted with, so that ``nas predictor
eval``, ``nas predict`` and ``nas search --objective predictor:FILE`` give it the same columns for new
architectures. ``nas predictor train --features SPEC`` records it in the archive's provenance.

* ``geno``: the space's own encoding, the literal genotype's one-hot
  (:func:`predictors.data.genotype_onehot`). It needs the genotypes, so an ONNX file cannot be read
  this way.
* ``zc:P1,P2,...``: zero-cost proxy scores from our engine (:mod:`proxies.engine`), as
  ``sign(x) log(1 + |x|)`` (synflow spans tens of orders of magnitude). Each graph is rebuilt in
  PyTorch with PyTorch-default initialization drawn from ``seed`` (``ArchGraph.to_torch``) and scored
  on one batch of ``data`` (``batch`` images drawn with ``seed``; resized to the model's input if it
  differs), so a network scores the same whether it comes from a space or from an ONNX file. A proxy
  that fails on a network, or an infinite score (nwot's log-determinant of a singular kernel), is a
  missing value (NaN), which the predictors read as missing; the count is logged.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nas.errors import PredictorError, RegistryError
from nas.ir import ArchGraph

log = logging.getLogger(__name__)

KINDS = ("geno", "zc")


def signed_log(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``sign(x) log(1 + |x|)``: proxy scores on a scale a model can read (synflow spans tens of orders
    of magnitude); NaN stays NaN."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass(frozen=True)
class FeatureSpec:
    """``kind`` ``geno`` (with the ``space``) or ``zc`` (with ``proxies`` scored on ``batch`` images of
    ``data`` drawn with ``seed``, networks initialized with ``seed``). See the module docstring."""

    kind: str
    space: str = ""
    proxies: tuple[str, ...] = ()
    data: str = "cifar10"
    batch: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PredictorError(f"unknown feature kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if self.kind == "geno" and not self.space:
            raise PredictorError("geno features need the space whose genotypes they encode")
        if self.kind == "zc":
            from proxies import engine

            if not self.proxies:
                raise PredictorError("zc features need at least one proxy, e.g. zc:synflow,jacov")
            try:
                resolved = engine.resolve_proxies(list(self.proxies))
            except RegistryError as e:
                raise PredictorError(f"zc features: {e}") from e
            # the registry's own names (it reads SynFlow as synflow): the engine's scores come under them
            object.__setattr__(self, "proxies", tuple(p.name for p in resolved))
            if self.batch < 2:
                raise PredictorError(f"zc features need a batch of at least 2 images; got {self.batch}")

    @classmethod
    def parse(cls, text: str, *, space: str = "", data: str = "cifar10", batch: int = 64,
              seed: int = 0) -> FeatureSpec:
        """``geno`` or ``zc:P1,P2,...`` (the command-line form)."""
        kind, _, rest = text.strip().partition(":")
        if kind == "geno" and not rest:
            return cls("geno", space=space)
        if kind == "zc":
            return cls("zc", proxies=tuple(p.strip() for p in rest.split(",") if p.strip()), data=data, batch=batch,
                       seed=seed)
        raise PredictorError(f"--features takes geno or zc:PROXY[,PROXY...]; got {text!r}")

    def to_json(self) -> dict[str, Any]:
        if self.kind == "geno":
            return {"kind": "geno", "space": self.space}
        return {"kind": "zc", "proxies": list(self.proxies), "data": self.data, "batch": self.batch, "seed": self.seed}

    @classmethod
    def from_json(cls, obj: Any, *, where: str = "feature spec") -> FeatureSpec:
        if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
            raise PredictorError(f"{where}: a feature spec is an object with a 'kind'; got {obj!r}")
        try:
            return cls(obj["kind"], space=str(obj.get("space", "")), proxies=tuple(obj.get("proxies", ())),
                       data=str(obj.get("data", "cifar10")), batch=int(obj.get("batch", 64)),
                       seed=int(obj.get("seed", 0)))
        except (TypeError, ValueError) as e:
            raise PredictorError(f"{where}: invalid feature spec {obj!r}: {e}") from e

    def check_space(self, space: str, *, where: str) -> None:
        """Refuse genotypes of ``space`` when these are ``geno`` features of another space."""
        from predictors.data import SPACE_ALIASES

        if self.kind == "geno" and SPACE_ALIASES.get(space, space) != SPACE_ALIASES.get(self.space, self.space):
            raise PredictorError(f"{where}: its features are the genotype one-hot of {self.space}; "
                                 f"it cannot read {space} architectures")

    def __str__(self) -> str:
        return "geno" if self.kind == "geno" else f"zc:{','.join(self.proxies)}"

    def compute(self, graphs: Sequence[ArchGraph], archs: Sequence[str] | None = None, *,
                data_dir: str | Path | None = None, progress: Callable[[int, int], None] | None = None,
                workers: int = 1) -> npt.NDArray[np.float64]:
        """``(len(graphs), width)``: the features of ``graphs``; ``archs`` are their genotypes as the
        space's text (needed by ``geno``, unused by ``zc``). ``progress(done, total)`` after each graph.
        ``workers > 1`` scores ``zc`` in that many processes (:func:`proxies.engine.score_graphs`), with
        the same result."""
        if self.kind == "geno":
            if archs is None or len(archs) != len(graphs):
                raise PredictorError("geno features encode a space's genotypes, which ONNX files do not have: "
                                     "give architectures of the space (--space and --arch)")
            from predictors.data import genotype_onehot

            return genotype_onehot(self.space, list(archs)).reshape(len(graphs), -1)
        return self._proxy_scores(graphs, data_dir, progress, workers)

    def _proxy_scores(self, graphs: Sequence[ArchGraph], data_dir: str | Path | None,
                      progress: Callable[[int, int], None] | None, workers: int) -> npt.NDArray[np.float64]:
        from nas.errors import ProxyError
        from proxies import engine

        batch = _load_batch(self.data, self.batch, self.seed, None if data_dir is None else str(data_dir),
                            os.environ.get("NAS_DATA"))
        try:
            results = engine.score_graphs(graphs, batch, list(self.proxies), seed=self.seed, workers=workers,
                                          progress=progress)
        except ProxyError as e:
            raise PredictorError(f"zc features: {e}") from e
        out = np.full((len(graphs), len(self.proxies)), np.nan)
        failed: dict[str, int] = {}
        for i, (scores, errors) in enumerate(results):
            for j, p in enumerate(self.proxies):
                out[i, j] = scores.get(p, np.nan)
            for p in errors:
                failed[p] = failed.get(p, 0) + 1
        out[np.isinf(out)] = np.nan  # nwot's log-determinant of a singular kernel, say
        missing = np.isnan(out).sum(axis=0)
        if missing.any():
            log.warning("zc features: missing values (NaN) for %s", ", ".join(
                f"{p}: {k} of {len(graphs)}" + (f" ({failed[p]} raised an error)" if p in failed else "")
                for p, k in zip(self.proxies, missing.tolist(), strict=True) if k))
        return signed_log(out)


@functools.lru_cache(maxsize=4)
def _load_batch(data: str, batch: int, seed: int, data_dir: str | None, env: str | None) -> Any:
    # one batch serves every graph of a search; proxies do not modify it. ``env`` ($NAS_DATA, which
    # load_batch reads) is in the key: a process that points it elsewhere reads the other data
    from nas.data import load_batch

    return load_batch(data, batch, seed=seed, data_dir=data_dir)


def saved_spec(predictor: Any, info: Mapping[str, Any], *, where: str, space: str = "") -> FeatureSpec | None:
    """The spec recorded in a saved predictor's provenance ``info`` (``nas predictor train --features``);
    else the predictor's ``default_features`` (``geno`` on ``space``) if it has one; None if it reads the
    graph alone."""
    if "features" in info:
        return FeatureSpec.from_json(info["features"], where=f"{where}: provenance 'features'")
    if getattr(predictor, "default_features", None) == "geno" and space:
        return FeatureSpec("geno", space=space)
    return None
