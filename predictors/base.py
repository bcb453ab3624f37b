"""The `Predictor` contract, the predictor registry, and the saved-predictor archive format.

A performance predictor maps architectures (:class:`~nas.ir.ArchGraph`) to a score such as test
accuracy. Search strategies, the benchmarks and the CLI call it; a predictor

* :meth:`Predictor.fit` learns from ``graphs`` (``n`` of them) and targets ``y`` of shape ``(n,)``;
  optional ``features`` of shape ``(n, f)`` are extra per-architecture inputs, e.g. zero-cost proxy
  scores (:mod:`proxies`). It mutates only the predictor itself and returns it;
* :meth:`Predictor.predict` returns ``(mean, std)``, two float64 arrays of shape ``(n,)`` with
  ``std >= 0``; the ``features`` must have the width they had at fit time (none if none were given).
  It mutates nothing;
* :meth:`Predictor.save` writes a versioned archive and the class method :meth:`Predictor.load`
  reads it back; :func:`load_predictor` reads any registered predictor's archive. The same seed
  gives the same predictions, and a loaded predictor gives exactly the predictions of the one that
  was saved, in a fresh process too.

Inputs that cannot be used raise :class:`~nas.errors.PredictorError` with the offending values.

Archive format (``FORMAT_NAME``, version :data:`FORMAT_VERSION`)
------------------------------------------------------------------
A zip file holding no code and nothing pickled:

* ``meta.json``: ``format``, ``format_version``, ``predictor`` (the registered name), ``config``
  (the frozen dataclass as JSON), ``scalars`` (fitted numbers and flags as JSON), and ``arrays``, a
  manifest ``{name: {"dtype", "shape"}}``;
* ``arrays/<name>.npy``: one ``numpy.save`` array per manifest entry, read with
  ``allow_pickle=False``. Torch modules are stored as their ``state_dict`` converted to numpy
  (:func:`module_arrays`), so loading them needs neither pickle nor ``torch.load``.

Loading checks the format name and version (a newer version raises
:class:`~nas.errors.PredictorVersionError`), the zip's CRCs, and every array against the manifest; a
truncated or corrupted file raises :class:`~nas.errors.PredictorFileError` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from nas.errors import PredictorError, PredictorFileError, PredictorVersionError
from nas.ir import ArchGraph
from nas.registry import Registry

FORMAT_NAME = "nas-predictor"
#: The archive version this code writes and the newest it reads.
FORMAT_VERSION = 1

FloatArray = npt.NDArray[np.float64]


@runtime_checkable
class Predictor(Protocol):
    """Predicts a score (mean and spread) of architectures from their graphs."""

    @property
    def name(self) -> str:
        """The registered name (written into saved archives)."""
        ...

    def fit(
        self, graphs: Sequence[ArchGraph], y: npt.ArrayLike, *, features: npt.ArrayLike | None = None
    ) -> Predictor:
        """Learn from ``graphs`` and targets ``y`` ``(n,)`` (and ``features`` ``(n, f)``); returns ``self``."""
        ...

    def predict(
        self, graphs: Sequence[ArchGraph], *, features: npt.ArrayLike | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """``(mean, std)``, each float64 ``(n,)``, ``std >= 0``. Mutates nothing."""
        ...

    def save(self, path: str | Path) -> None:
        """Write a versioned archive (see the module docstring) to ``path``."""
        ...

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """The predictor saved at ``path``."""
        ...


PREDICTORS: Registry[Predictor] = Registry("predictor")


def load_predictor(path: str | Path) -> Predictor:
    """The predictor saved at ``path``, whichever registered predictor wrote it."""
    archive = read_archive(path)
    cls = cast("type[Predictor]", PREDICTORS.get(archive.predictor))  # predictors register their classes
    return cls.load(path)


# --------------------------------------------------------------------------- input checks


def check_targets(graphs: Sequence[ArchGraph], y: npt.ArrayLike, *, minimum: int = 2) -> FloatArray:
    """``y`` as float64 ``(n,)``, one finite value per graph, at least ``minimum`` of them."""
    arr = _as_floats(y, "y")
    if arr.ndim != 1 or arr.shape[0] != len(graphs):
        raise PredictorError(f"y must have shape ({len(graphs)},), one target per graph; got {arr.shape}")
    if arr.shape[0] < minimum:
        raise PredictorError(f"fitting needs at least {minimum} architectures; got {arr.shape[0]}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise PredictorError(f"y must be finite; y[{int(bad[0])}] = {arr[bad[0]]} ({bad.size} non-finite)")
    return arr


def _as_floats(values: npt.ArrayLike, name: str) -> FloatArray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise PredictorError(f"{name} must be numbers: {e}") from e


def check_features(features: npt.ArrayLike | None, n: int, *, width: int | None = None) -> FloatArray | None:
    """``features`` as float64 ``(n, f)`` (``None`` passes through).

    ``width`` is the width seen at fit time (0: fitted without features); a mismatch raises. NaN is
    allowed (a proxy that failed on one architecture); infinities are not.
    """
    if features is None:
        if width:
            raise PredictorError(f"this predictor was fitted with {width} features per architecture; "
                                 "pass the same features= to predict")
        return None
    arr = _as_floats(features, "features")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)  # one feature per architecture
    if arr.ndim != 2 or arr.shape[0] != n:
        raise PredictorError(f"features must have shape ({n}, f), one row per graph; got {arr.shape}")
    if width is not None and arr.shape[1] != width:
        raise PredictorError(f"features have {arr.shape[1]} columns; this predictor was fitted with {width}")
    if np.isinf(arr).any():
        r, c = np.argwhere(np.isinf(arr))[0]
        raise PredictorError(f"features must be finite or NaN; features[{r}, {c}] = {arr[r, c]}")
    return arr


def check_adapt_inputs(who: str, fitted: bool, graphs: Sequence[ArchGraph], features: npt.ArrayLike | None,
                       width: int) -> tuple[list[ArchGraph], FloatArray | None]:
    """The target-domain graphs and features of ``who.adapt``: a fitted predictor, at least 2 graphs,
    and features of the fitted ``width`` (required when it was fitted with some)."""
    if not fitted:
        raise PredictorError(f"{who}.adapt before fit (or load)")
    graphs = check_graphs(graphs)
    feats = check_features(features, len(graphs), width=width)
    if len(graphs) < 2:
        raise PredictorError(f"{who}.adapt needs at least 2 graphs of the target domain, got {len(graphs)}")
    return graphs, feats


def check_graphs(graphs: Sequence[ArchGraph]) -> list[ArchGraph]:
    """``graphs`` as a list; every item must be an :class:`ArchGraph`."""
    out = list(graphs)
    for i, g in enumerate(out):
        if not isinstance(g, ArchGraph):
            raise PredictorError(f"graphs[{i}] is a {type(g).__name__}, not an ArchGraph "
                                 "(build one with space.to_graph or ArchGraph.from_onnx)")
    return out


class Standardizer:
    """Column-wise ``(x - mean) / scale`` with the statistics of the fitting data.

    NaN entries are ignored by the statistics and become 0 (the mean) after scaling; constant
    columns get scale 1.
    """

    def __init__(self, mean: FloatArray, scale: FloatArray) -> None:
        self.mean = mean
        self.scale = scale

    @classmethod
    def fit(cls, x: FloatArray) -> Standardizer:
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(invalid="ignore"), warnings_off():
            # on each column divided by its largest magnitude: the squares of 1e200 would overflow
            top = np.nanmax(np.abs(x), axis=0) if x.shape[0] else np.ones(x.shape[1:])
            top = np.where(np.isfinite(top) & (top > 0), top, 1.0)
            mean = np.nanmean(x / top, axis=0) * top
            scale = np.nanstd(x / top, axis=0) * top
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
        return cls(mean, scale)

    def transform(self, x: FloatArray) -> FloatArray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return np.where(np.isnan(z), 0.0, z)


@contextlib.contextmanager
def warnings_off() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)`` (``None``: leave it), restoring the old count after."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise PredictorError(f"threads must be >= 1 or None; got {threads}")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------- configs

C = TypeVar("C")


def config_to_json(config: Any) -> dict[str, Any]:
    """A frozen dataclass config as JSON-able values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_json(cls: type[C], data: Mapping[str, Any], *, path: str | Path = "") -> C:
    """The config ``cls`` from :func:`config_to_json`'s output. Unknown keys raise (a file written by
    another version); missing keys take their defaults; lists become tuples where the default is one."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PredictorFileError(f"{path}: config keys {unknown} are unknown to {cls.__name__}; "
                                 f"known keys: {sorted(fields)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, PredictorError) as e:
        raise PredictorFileError(f"{path}: invalid {cls.__name__} in the archive: {e}") from e


# --------------------------------------------------------------------------- archives


@dataclass(frozen=True)
class Archive:
    """The content of a saved predictor (see the module docstring)."""

    predictor: str
    config: dict[str, Any]
    scalars: dict[str, Any]
    arrays: dict[str, np.ndarray]
    format_version: int = FORMAT_VERSION


def write_archive(path: str | Path, archive: Archive) -> None:
    """Write ``archive`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    manifest = {}
    for name, arr in archive.arrays.items():
        if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
            raise PredictorError(f"array {name!r} must be a numpy array of numbers, got {type(arr).__name__}")
        manifest[name] = {"dtype": arr.dtype.str, "shape": list(arr.shape)}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "predictor": archive.predictor,
        "config": archive.config,
        "scalars": _jsonable(archive.scalars),
        "arrays": manifest,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("meta.json", json.dumps(meta, indent=1, sort_keys=True, allow_nan=False))
            for name, arr in archive.arrays.items():
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
                z.writestr(f"arrays/{name}.npy", buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        raise PredictorError(f"cannot save the non-finite scalar {v}; store it in an array")
    return v


def read_archive(path: str | Path, *, predictor: str | None = None) -> Archive:
    """Read and check an archive written by :func:`write_archive`; ``predictor`` is the name it must hold."""
    path = Path(path)
    if not path.is_file():
        raise PredictorFileError(f"{path}: no saved predictor there (not a file)")
    try:
        with zipfile.ZipFile(path) as z:
            meta = _read_meta(z, path)
            arrays = _read_arrays(z, meta, path)
    except (zipfile.BadZipFile, zlib.error) as e:  # a bad CRC or a broken deflate stream in a member
        raise PredictorFileError(f"{path}: not a readable predictor archive (truncated or corrupted?): {e}") from e
    except (OSError, EOFError, ValueError) as e:
        raise PredictorFileError(f"{path}: cannot read the predictor archive: {type(e).__name__}: {e}") from e
    name = meta["predictor"]
    if predictor is not None and name != predictor:
        raise PredictorFileError(f"{path}: holds a {name!r} predictor, not {predictor!r}; use load_predictor")
    return Archive(name, dict(meta["config"]), dict(meta["scalars"]), arrays, int(meta["format_version"]))


def _read_meta(z: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        raw = z.read("meta.json")
    except KeyError as e:
        raise PredictorFileError(f"{path}: the archive has no meta.json (not a saved predictor)") from e
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PredictorFileError(f"{path}: meta.json is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise PredictorFileError(f"{path}: format {found!r} is not {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PredictorFileError(f"{path}: format_version must be a positive integer; got {version!r}")
    if version > FORMAT_VERSION:
        raise PredictorVersionError(
            f"{path}: written in predictor format version {version}, newer than the version this code reads "
            f"({FORMAT_VERSION}); upgrade the nas package to load it"
        )
    for key, kind in (("predictor", str), ("config", dict), ("scalars", dict), ("arrays", dict)):
        if not isinstance(meta.get(key), kind):
            raise PredictorFileError(f"{path}: meta.json field {key!r} must be a {kind.__name__}; "
                                     f"got {meta.get(key)!r}")
    return meta


def _read_arrays(z: zipfile.ZipFile, meta: Mapping[str, Any], path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name, spec in meta["arrays"].items():
        if not isinstance(spec, dict):
            raise PredictorFileError(f"{path}: meta.json lists array {name!r} as {spec!r}, not its dtype and shape")
        member = f"arrays/{name}.npy"
        try:
            raw = z.read(member)
        except KeyError as e:
            raise PredictorFileError(f"{path}: array {name!r} is listed in meta.json but {member} is missing") from e
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
        if arr.dtype.str != spec.get("dtype") or list(arr.shape) != spec.get("shape"):
            raise PredictorFileError(f"{path}: array {name!r} is {arr.dtype.str} {list(arr.shape)}; meta.json "
                                     f"says {spec.get('dtype')} {spec.get('shape')}")
        arrays[name] = arr
    return arrays


def set_provenance(path: str | Path, info: Mapping[str, Any]) -> None:
    """Record how the predictor at ``path`` was trained (space, target, sample size, seed, ...) in its
    ``meta.json`` as ``provenance``; the predictors ignore it, ``nas predictor eval`` reads it to
    evaluate on architectures the predictor did not see. The archive is rewritten atomically."""
    path = Path(path)
    read_archive(path)  # a damaged archive fails here, with the usual message
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    meta = json.loads(members["meta.json"])
    meta["provenance"] = _jsonable(dict(info))
    members["meta.json"] = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False).encode()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, raw in members.items():
                z.writestr(name, raw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def provenance(path: str | Path) -> dict[str, Any]:
    """The ``provenance`` that :func:`set_provenance` recorded in the archive (``{}`` if none)."""
    path = Path(path)
    read_archive(path)
    with zipfile.ZipFile(path) as z:
        info = json.loads(z.read("meta.json")).get("provenance", {})
    if not isinstance(info, dict):
        raise PredictorFileError(f"{path}: meta.json field 'provenance' must be an object; got {info!r}")
    return info


def require_finite(archive: Archive, path: str | Path, *, prefixes: tuple[str, ...] = ("",),
                   positive: Callable[[str], bool] = lambda name: name.endswith("scale")) -> None:
    """Raise :class:`PredictorFileError` if an array whose name starts with one of ``prefixes`` holds a
    non-finite value, or one that ``positive`` names holds a value <= 0 (a scale). A corrupted or
    edited file is refused by name at load, not discovered as NaN (or 0 ms) predictions."""
    for name, arr in archive.arrays.items():
        if not name.startswith(prefixes):
            continue
        if not np.isfinite(arr).all():
            raise PredictorFileError(f"{path}: {int((~np.isfinite(arr)).sum())} non-finite values in '{name}'")
        if positive(name) and not (arr > 0).all():
            raise PredictorFileError(f"{path}: the scales '{name}' must be > 0")


def require(archive: Archive, names: Sequence[str], path: str | Path) -> None:
    """Raise :class:`PredictorFileError` unless ``archive`` holds every array in ``names``."""
    missing = [n for n in names if n not in archive.arrays]
    if missing:
        raise PredictorFileError(f"{path}: the {archive.predictor!r} archive lacks the arrays {missing}")


def module_arrays(prefix: str, module: nn.Module) -> dict[str, np.ndarray]:
    """``module``'s ``state_dict`` as numpy arrays named ``prefix/<key>``."""
    return {f"{prefix}/{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_module_arrays(prefix: str, module: nn.Module, arrays: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Load :func:`module_arrays`' output into ``module`` (every key must match, with its shape)."""
    head = prefix + "/"
    state = {k[len(head):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(head)}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PredictorFileError(f"{path}: the saved {prefix!r} weights do not fit the configured network: {e}") from e
