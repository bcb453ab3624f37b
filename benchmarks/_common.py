"""Helpers shared by every ``python -m benchmarks.<name>`` run.

A benchmark parses its arguments with :func:`add_common_args`, prints the settings it used
(:func:`settings`, :func:`print_settings`) and its result table (:func:`print_table`), and writes
its JSON with :func:`write_json`. A benchmark's own output goes to stdout; that is the one place
in the project where ``print`` is right.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["add_common_args", "print_settings", "print_table", "settings", "write_json"]


def settings(**extra: Any) -> dict[str, Any]:
    """The software and machine a benchmark ran on, plus ``extra`` (seed, sample size, batch, data, ...).

    Keys: ``python``, ``numpy``, ``torch`` (its version, or a note saying it is unavailable),
    ``torch_threads`` (``torch.get_num_threads()``, None without torch), ``platform``, ``cpu_count``,
    then ``extra`` in the order given. An ``extra`` key that repeats a built-in one raises
    ``TypeError``, so a setting is never silently replaced.
    """
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import torch  # imported here: torch is slow to import and not every benchmark needs it
    except ImportError as exc:
        out["torch"] = f"unavailable ({exc})"
        out["torch_threads"] = None
    else:
        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
    out["platform"] = platform.platform()
    out["cpu_count"] = os.cpu_count()
    clash = sorted(set(out) & set(extra))
    if clash:
        raise TypeError(f"settings(): extra keys {clash} would replace built-in settings")
    out.update(extra)
    return out


def _json_default(obj: Any) -> Any:
    """Convert what ``json`` cannot encode itself; NaN stays NaN so that ``allow_nan=False`` catches it."""
    if isinstance(obj, np.generic):  # np.float32, np.int64, np.bool_, ...
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"write_json cannot encode {type(obj).__name__}: {obj!r}")


def _first_nonfinite(obj: Any, where: str = "$") -> tuple[str, Any] | None:
    """Where the first NaN or infinity in ``obj`` is (a ``$[key][i]`` path), for the error message."""
    if isinstance(obj, float | np.floating):
        return None if math.isfinite(obj) else (where, obj)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc":
            bad = np.argwhere(~np.isfinite(obj))
            if len(bad):
                pos = tuple(int(i) for i in bad[0])
                return where + "".join(f"[{i}]" for i in pos), obj[pos]
            return None
        return _first_nonfinite(obj.tolist(), where) if obj.dtype == object else None
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            found = _first_nonfinite(value, f"{where}[{key!r}]")
            if found:
                return found
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = _first_nonfinite(value, f"{where}[{i}]")
            if found:
                return found
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _first_nonfinite(dataclasses.asdict(obj), where)
    return None


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON (``indent=2``) to ``path``, creating parent directories; returns the path.

    numpy scalars and arrays, ``Path`` and dataclasses are converted. NaN and infinities are refused
    (``ValueError`` naming where the value is), because JSON cannot hold them: a benchmark must
    report a failed value explicitly (``None`` plus a reason), not as NaN. The file is written
    whole or not at all.
    """
    path = Path(path)
    try:
        text = json.dumps(obj, indent=2, allow_nan=False, default=_json_default)
    except ValueError as exc:
        found = _first_nonfinite(obj)
        if found is None:
            raise
        where, value = found
        raise ValueError(
            f"write_json({str(path)!r}): {value!r} at {where} cannot be written as JSON; "
            "report a missing value as None with a reason instead"
        ) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file beside the target, then rename: an interrupted run leaves no half file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _cell(value: Any, float_fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not isinstance(value, bool):
        return format(value, float_fmt)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    float_fmt: str = ".4g",
    file: TextIO | None = None,
) -> None:
    """Print ``rows`` as an aligned plain-text table (numbers right-aligned, text left-aligned).

    ``columns`` defaults to every key, in order of first appearance. A missing key or None prints
    as an empty cell; floats use ``float_fmt``.
    """
    out = sys.stdout if file is None else file
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    if not columns:
        print("(no columns)", file=out)
        return
    cells = [[_cell(row.get(c), float_fmt) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[j]) for r in cells)]) for j, c in enumerate(columns)]
    numeric = [
        any(_is_number(row.get(c)) for row in rows)
        and all(row.get(c) is None or _is_number(row.get(c)) for row in rows)
        for c in columns
    ]

    def fmt(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    print(fmt(list(columns)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in cells:
        print(fmt(r), file=out)


def print_settings(values: Mapping[str, Any], *, file: TextIO | None = None) -> None:
    """Print ``settings()`` (or any mapping) as ``key: value`` lines under a ``settings`` heading."""
    out = sys.stdout if file is None else file
    width = max((len(k) for k in values), default=0)
    print("settings", file=out)
    for key, value in values.items():
        print(f"  {key:<{width}}  {value}", file=out)


def add_common_args(parser: argparse.ArgumentParser, *, default_out: str | Path) -> argparse.ArgumentParser:
    """Add ``--data-dir`` (default None: ``NAS_DATA``, then ``~/.cache/nas/data``), ``--out`` (JSON
    path, default ``default_out``, e.g. ``"zc_quality.json"``) and ``--seed`` (int, default 0)."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="benchmark data directory (default: $NAS_DATA, then ~/.cache/nas/data)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(default_out),
        help=f"where to write the JSON results (default: {default_out})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return parser


def report(out: str | Path, result: Mapping[str, Any], rows: list[dict[str, Any]]) -> None:
    """The end of every benchmark: print ``result["settings"]`` and the table, write the JSON."""
    print_settings(result["settings"])
    print_table(rows)
    write_json(out, result)
    print(f"wrote {out}")
