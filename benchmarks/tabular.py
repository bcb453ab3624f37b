"""Loaders for the tabular NAS-benchmark files (NAS-Bench-201, NASLib zero-cost samples, ...).

The files live in one data directory with the layout of the reference data's ``README.md``
(``nb201/``, ``other_spaces/``). The directory comes from an argument, then ``NAS_DATA``, then
``~/.cache/nas/data`` (:func:`resolve_data_dir`). :data:`FILES` declares every file once: its key,
its path inside the data directory, what it holds, and the columns that must not be parsed as
floats. :func:`load_table` reads any of them into an immutable :class:`Table`; the typed loaders
(:func:`nb201_ground_truth`, :func:`nb201_latency`, ...) add checks on what the file must hold.

Parsed tables are cached per file (keyed on its absolute path, size and modification time), so
repeated calls return the same :class:`Table` object. A table is read-only, which makes sharing it
safe.

Example::

    gt = nb201_ground_truth()          # 15,625 rows, row i is architecture index i
    acc = gt["cifar10_test_acc"]       # float64, read-only
    best = gt.row(int(acc.argmax()))   # {"index": 6111, "arch_str": "|...|", ...}
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nas.errors import BenchmarkDataMissing, DataError, NasError, RegistryError

__all__ = [
    "FILES",
    "NB201_SIZE",
    "BenchmarkFile",
    "ColumnNotFound",
    "MaskError",
    "Table",
    "clear_cache",
    "load_table",
    "nb101_sample",
    "nb201_devices",
    "nb201_ground_truth",
    "nb201_latency",
    "nb201_zc_naslib",
    "nb301_sample",
    "resolve_data_dir",
]

logger = logging.getLogger(__name__)

NB201_SIZE = 15_625
"""Number of architectures in the NAS-Bench-201 topology space (5 ops on 6 edges: 5**6)."""

_ENV_VAR = "NAS_DATA"
_NB201_KEY_COLUMNS = ("index", "arch_str")


class ColumnNotFound(DataError, KeyError):
    """A :class:`Table` has no column of that name; the message lists the columns it has."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MaskError(NasError, ValueError):
    """A :meth:`Table.filter` mask is not a boolean array with one entry per row."""


# --------------------------------------------------------------------------------------- Table


class Table:
    """An immutable table: ordered, equal-length, read-only numpy columns.

    Numeric columns are float64 with NaN for empty cells, integer columns (``index``) int64, text
    columns object arrays of ``str``. Built by the loaders of this module; it can also be built from
    a mapping of column name to 1-d array (the arrays are copied).
    """

    __slots__ = ("_columns", "_n_rows", "_source")

    _columns: dict[str, npt.NDArray[Any]]
    _n_rows: int
    _source: Path

    def __init__(self, columns: Mapping[str, npt.ArrayLike], source: str | Path) -> None:
        owned = {str(name): np.array(values) for name, values in columns.items()}
        self._init(owned, Path(source))

    @classmethod
    def _from_owned(cls, columns: dict[str, npt.NDArray[Any]], source: Path) -> Table:
        """Wrap arrays that nobody else holds, without copying them."""
        table = cls.__new__(cls)
        table._init(columns, source)
        return table

    def _init(self, columns: dict[str, npt.NDArray[Any]], source: Path) -> None:
        lengths = {name: arr.shape for name, arr in columns.items()}
        bad = {name: shape for name, shape in lengths.items() if len(shape) != 1}
        if bad:
            raise DataError(f"table columns must be 1-d arrays; got shapes {bad} (source {source})")
        if len({shape[0] for shape in lengths.values()}) > 1:
            sizes = {name: shape[0] for name, shape in lengths.items()}
            raise DataError(f"table columns differ in length: {sizes} (source {source})")
        for arr in columns.values():
            arr.flags.writeable = False
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_n_rows", next(iter(lengths.values()))[0] if lengths else 0)
        object.__setattr__(self, "_source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Table is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Table is immutable; cannot delete {name!r}")

    @property
    def source(self) -> Path:
        """The file this table was read from (or the label it was built with)."""
        return self._source

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, in file order."""
        return tuple(self._columns)

    def __len__(self) -> int:
        return self._n_rows

    def __contains__(self, column: object) -> bool:
        return column in self._columns

    def __iter__(self) -> Iterator[Any]:
        # Without this, Python would iterate by calling __getitem__(0, 1, ...).
        raise TypeError("a Table is not iterable; use table.columns, table[column] or table.row(i)")

    def __getitem__(self, column: str) -> npt.NDArray[Any]:
        """The read-only array of ``column``; :class:`ColumnNotFound` (a ``KeyError``) if absent."""
        try:
            return self._columns[column]
        except (KeyError, TypeError):
            raise ColumnNotFound(
                f"no column {column!r} in {self._source.name}; columns are: {', '.join(self._columns)}"
            ) from None

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` (negative counts from the end) as ``{column: python scalar}``."""
        n = self._n_rows
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for a table of {n} rows ({self._source.name})")
        return {name: _scalar(arr[i]) for name, arr in self._columns.items()}

    def filter(self, mask: npt.ArrayLike) -> Table:
        """The rows where boolean ``mask`` (one entry per row) is true, in order, as a new Table."""
        m = np.asarray(mask)
        if m.dtype != np.bool_ or m.shape != (self._n_rows,):
            raise MaskError(
                f"filter mask must be a boolean array of shape ({self._n_rows},); "
                f"got dtype {m.dtype} and shape {m.shape}"
            )
        return Table._from_owned({name: arr[m] for name, arr in self._columns.items()}, self._source)

    def to_dict(self) -> dict[str, npt.NDArray[Any]]:
        """A new ``{column: read-only array}`` dict (the arrays are shared, not copied)."""
        return dict(self._columns)

    def __repr__(self) -> str:
        return f"Table({self._source.name!r}, rows={self._n_rows}, columns={list(self._columns)})"


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# -------------------------------------------------------------------------------- file specs


@dataclass(frozen=True)
class BenchmarkFile:
    """One tabular benchmark file of the data directory.

    ``relpath`` is relative to the data directory (``/``-separated). ``description`` is one line
    saying what the file holds; error messages show it. Columns in ``int_columns`` are parsed as
    int64 (every cell must be an integer). Columns in ``text_columns`` stay strings even if they
    look numeric, because they are codes with leading zeros (``"012340"``, adjacency bit strings).
    Other columns are float64 when every non-empty cell parses as a float, else text.
    ``required_columns`` must be present, else loading raises :class:`~nas.errors.DataError`.
    """

    key: str
    relpath: str
    description: str
    source: str = ""
    int_columns: tuple[str, ...] = ()
    text_columns: tuple[str, ...] = ()
    required_columns: tuple[str, ...] = ()


def _spec_dict(*specs: BenchmarkFile) -> dict[str, BenchmarkFile]:
    return {s.key: s for s in specs}


FILES: Mapping[str, BenchmarkFile] = _spec_dict(
    BenchmarkFile(
        "nb201_ground_truth",
        "nb201/nb201_ground_truth.csv",
        "NAS-Bench-201 ground truth: 15,625 architectures with test/valid accuracies, params, train times",
        source="NATS-Bench (D-X-Y/NATS-Bench) via v-tao/nats-bench-landscape, nabenabe0928/constrained-tpe",
        int_columns=("index", "n_seeds"),
        required_columns=("index", "arch_str", "cifar10_test_acc"),
    ),
    BenchmarkFile(
        "nb201_latency",
        "nb201/nb201_latency_help.csv",
        "NAS-Bench-201 latencies: 15,625 architectures on 27 device settings, in ms",
        source="HayeonLee/HELP data/nasbench201/latency/*.pt",
        int_columns=("index",),
        required_columns=_NB201_KEY_COLUMNS,
    ),
    BenchmarkFile(
        "nb201_zc_naslib",
        "nb201/nb201_zc_naslib.csv",
        "NASLib zero-cost proxy scores for a 725-architecture NAS-Bench-201 sample "
        "on cifar10, cifar100 and ImageNet16-120",
        source="automl/NASLib naslib/data/zc_nasbench201.json",
        int_columns=("index",),
        text_columns=("naslib_op_indices",),
        required_columns=("dataset", "index", "arch_str", "val_accuracy"),
    ),
    BenchmarkFile(
        "nb101_zc_naslib",
        "other_spaces/nasbench101_zc_naslib.csv",
        "NASLib NAS-Bench-101 CIFAR-10 sample: 500 architectures with val accuracy and 11 proxy scores",
        source="automl/NASLib naslib/data/zc_nasbench101.json",
        int_columns=("n_nodes",),
        text_columns=("adjacency",),
        required_columns=("adjacency", "ops", "val_accuracy"),
    ),
    BenchmarkFile(
        "nb301_zc_naslib",
        "other_spaces/nasbench301_zc_naslib.csv",
        "NASLib NAS-Bench-301 (DARTS space) CIFAR-10 sample: 725 architectures "
        "with val accuracy and 12 proxy scores",
        source="automl/NASLib naslib/data/zc_nasbench301.json",
        required_columns=("genotype_normal", "genotype_reduce", "val_accuracy"),
    ),
    BenchmarkFile(
        "tnb101_micro_zc_naslib",
        "other_spaces/transnasbench101_micro_zc_naslib.csv",
        "NASLib TransNAS-Bench-101 micro: 711 architectures x 7 tasks with val metric and proxy scores",
        source="automl/NASLib naslib/data/zc_transbench101_micro.json",
        text_columns=("naslib_op_indices",),
        required_columns=("task", "tnb_arch_str", "val_metric", "val_value"),
    ),
    BenchmarkFile(
        "tnb101_macro_zc_naslib",
        "other_spaces/transnasbench101_macro_zc_naslib.csv",
        "NASLib TransNAS-Bench-101 macro: 662-725 architectures per task x 7 tasks "
        "with val metric and proxy scores",
        source="automl/NASLib naslib/data/zc_transbench101_macro.json",
        text_columns=("naslib_op_indices",),
        required_columns=("task", "tnb_arch_str", "val_metric", "val_value"),
    ),
)
"""Every tabular benchmark file, by key."""


def _spec(key: str) -> BenchmarkFile:
    try:
        return FILES[key]
    except KeyError:
        raise RegistryError(f"unknown benchmark table {key!r}; valid keys: {', '.join(FILES)}") from None


# ------------------------------------------------------------------------- data directory


def _layout_lines() -> list[str]:
    width = max(len(s.relpath) for s in FILES.values())
    return [f"  {s.relpath:<{width}}  {s.description}" for s in FILES.values()]


def _how_to_provide() -> str:
    return (
        f"Provide the data directory with --data-dir DIR or by setting {_ENV_VAR}=DIR "
        "(or place it at ~/.cache/nas/data). "
        "The data directory's README.md lists each file's upstream source."
    )


def _resolve(data_dir: str | Path | None, wanted: BenchmarkFile | None = None) -> tuple[Path, str]:
    """The data directory and where it came from; see :func:`resolve_data_dir`."""
    env = os.environ.get(_ENV_VAR) or None
    candidates: list[tuple[str, Path | None]] = [
        ("data_dir argument (--data-dir)", Path(data_dir).expanduser() if data_dir is not None else None),
        (f"${_ENV_VAR}", Path(env).expanduser() if env is not None else None),
        ("default cache", Path.home() / ".cache" / "nas" / "data"),
    ]
    tried: list[str] = []
    for how, path in candidates:
        if path is None:
            tried.append(f"{how}: not given")
        elif path.is_dir():
            if tried and data_dir is not None:
                # An explicit directory that does not exist is probably a typo: say we skipped it.
                logger.warning("benchmark data: %s; using %s %s instead", tried[0], how, path)
            return path.resolve(), how
        elif path.exists():
            tried.append(f"{how}: {path} (exists but is not a directory)")
        else:
            tried.append(f"{how}: {path} (does not exist)")
    need = (
        f"Benchmark file {wanted.relpath!r} ({wanted.description}) is needed, "
        "but no data directory was found."
        if wanted is not None
        else "No benchmark data directory was found."
    )
    raise BenchmarkDataMissing(
        "\n".join(
            [
                need,
                "Tried, in order:",
                *(f"  {i}. {t}" for i, t in enumerate(tried, 1)),
                _how_to_provide(),
                "The data directory holds:",
                *_layout_lines(),
            ]
        )
    )


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The benchmark data directory, as an absolute path.

    Candidates, in order: ``data_dir``, then the ``NAS_DATA`` environment variable, then
    ``~/.cache/nas/data``; the first that is an existing directory wins (a warning is logged when an
    explicit ``data_dir`` is skipped). Raises :class:`~nas.errors.BenchmarkDataMissing` listing what
    was tried and how to provide the data when none exists.
    """
    return _resolve(data_dir)[0]


# -------------------------------------------------------------------------------- parsing


def _column_array(name: str, cells: tuple[str, ...], spec: BenchmarkFile, path: Path) -> npt.NDArray[Any]:
    if name in spec.text_columns:
        return np.array(cells, dtype=object)
    if name in spec.int_columns:
        try:
            return np.array([int(c) for c in cells], dtype=np.int64)
        except ValueError:
            row, cell = next((i, c) for i, c in enumerate(cells) if not _is_int(c))
            raise DataError(
                f"{path}: column {name!r} must hold integers; data row {row} has {cell!r}"
            ) from None
    nan = math.nan
    try:
        return np.array([float(c) if c else nan for c in cells], dtype=np.float64)
    except ValueError:
        return np.array(cells, dtype=object)


def _is_int(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


def _parse_csv(path: Path, spec: BenchmarkFile) -> Table:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path} is empty; expected a CSV header ({spec.description})")
        rows: list[list[str]] = []
        for fields in reader:
            if not fields:  # a blank line
                continue
            if len(fields) != len(header):
                raise DataError(
                    f"{path}: line {reader.line_num} has {len(fields)} fields; the header has {len(header)}"
                )
            rows.append(fields)
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(f"{path}: duplicate column names {dupes}")
    missing = [c for c in spec.required_columns if c not in header]
    if missing:
        raise DataError(
            f"{path} lacks required columns {missing} for {spec.key!r} ({spec.description}); "
            f"it has: {', '.join(header)}"
        )
    # Every row has len(header) fields (checked above), so the transposition loses nothing.
    cells_by_column = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    columns = {
        name: _column_array(name, cells, spec, path)
        for name, cells in zip(header, cells_by_column, strict=True)
    }
    return Table._from_owned(columns, path)


@functools.lru_cache(maxsize=32)
def _load_cached(spec: BenchmarkFile, path: Path, mtime_ns: int, size: int) -> Table:
    # (mtime_ns, size) are part of the key only so that an edited file is read again.
    logger.debug("parsing %s (%d bytes)", path, size)
    return _parse_csv(path, spec)


@functools.lru_cache(maxsize=32)
def _select(table: Table, column: str, value: str) -> Table:
    # Tables hash by identity and are cached themselves, so this caches per loaded file.
    return table.filter(table[column] == value)


def clear_cache() -> None:
    """Forget every parsed table (the next load reads the files again)."""
    _load_cached.cache_clear()
    _select.cache_clear()


# -------------------------------------------------------------------------------- loaders


def load_table(key: str, data_dir: str | Path | None = None) -> Table:
    """The benchmark file ``key`` (one of :data:`FILES`) as a :class:`Table`.

    Raises :class:`~nas.errors.BenchmarkDataMissing` naming the expected file, the full path where
    it was looked for and what it holds; :class:`~nas.errors.RegistryError` for an unknown key;
    :class:`~nas.errors.DataError` for a malformed file.
    """
    spec = _spec(key)
    root, how = _resolve(data_dir, wanted=spec)
    path = root / spec.relpath
    if not path.is_file():
        raise BenchmarkDataMissing(
            f"Benchmark file {spec.relpath!r} (table {spec.key!r}) not found.\n"
            f"  looked for: {path}\n"
            f"  data directory: {root} (from {how})\n"
            f"  it holds: {spec.description}\n"
            + (f"  upstream: {spec.source}\n" if spec.source else "")
            + _how_to_provide()
        )
    path = path.resolve()
    st = path.stat()
    return _load_cached(spec, path, st.st_mtime_ns, st.st_size)


def _check_nb201_indexed(table: Table) -> Table:
    """Row ``i`` must be architecture index ``i`` for all 15,625 architectures."""
    if len(table) != NB201_SIZE:
        raise DataError(
            f"{table.source} has {len(table)} rows; NAS-Bench-201 has {NB201_SIZE:,} architectures "
            "(a truncated or different file?)"
        )
    index = table["index"]
    expected = np.arange(NB201_SIZE, dtype=np.int64)
    if not np.array_equal(index, expected):
        row = int(np.flatnonzero(index != expected)[0])
        raise DataError(
            f"{table.source}: column 'index' must be 0..{NB201_SIZE - 1} in order; "
            f"row {row} holds {index[row]}"
        )
    return table


def nb201_ground_truth(data_dir: str | Path | None = None) -> Table:
    """NAS-Bench-201 ground truth: 15,625 rows, row ``i`` is architecture index ``i``.

    Columns: ``index``, ``arch_str``, ``unique_str``, test accuracies (``cifar10_test_acc``, ...,
    percent), valid/valtest accuracies with stds, ``n_seeds``, ``params_m_*`` and
    ``train_time_s_*``; see the data README.
    """
    return _check_nb201_indexed(load_table("nb201_ground_truth", data_dir))


def nb201_latency(data_dir: str | Path | None = None) -> Table:
    """NB201 latencies in ms: ``index``, ``arch_str`` and one column per device (row ``i`` is index ``i``)."""
    return _check_nb201_indexed(load_table("nb201_latency", data_dir))


def nb201_devices(data_dir: str | Path | None = None) -> list[str]:
    """The device columns of :func:`nb201_latency`, in file order (``titan_rtx_1``, ..., ``samsung_s7``)."""
    return [c for c in nb201_latency(data_dir).columns if c not in _NB201_KEY_COLUMNS]


def nb201_zc_naslib(dataset: str = "cifar10", data_dir: str | Path | None = None) -> Table:
    """NASLib's zero-cost proxy scores on the NB201 sample, rows of ``dataset`` only.

    ``dataset`` is one of ``cifar10``, ``cifar100``, ``ImageNet16-120`` (as in the file); an unknown
    one raises :class:`~nas.errors.RegistryError` listing the valid ones. Columns: ``index``,
    ``arch_str``, ``naslib_op_indices`` (text), ``val_accuracy`` and one column per proxy; an empty
    score is NaN.
    """
    table = load_table("nb201_zc_naslib", data_dir)
    valid = list(dict.fromkeys(table["dataset"].tolist()))
    if dataset not in valid:
        raise RegistryError(f"unknown dataset {dataset!r} in {table.source.name}; valid: {', '.join(valid)}")
    return _select(table, "dataset", dataset)


def nb101_sample(data_dir: str | Path | None = None) -> Table:
    """NASLib's NAS-Bench-101 CIFAR-10 sample: ``adjacency`` (7x7 row-major 0/1 text), ``n_nodes``,
    ``ops`` (comma-separated), ``val_accuracy`` (%) and proxy scores."""
    return load_table("nb101_zc_naslib", data_dir)


def nb301_sample(data_dir: str | Path | None = None) -> Table:
    """NASLib's NAS-Bench-301 (DARTS) CIFAR-10 sample: ``genotype_normal`` / ``genotype_reduce``
    (``op~input`` lists), ``naslib_compact``, ``val_accuracy`` (%) and proxy scores."""
    return load_table("nb301_zc_naslib", data_dir)
