"""Tests for the tabular benchmark loaders and the shared benchmark helpers.

The first half checks the loaders against figures stated in the reference data's README (skipped
without the data); the second half needs no data: tiny CSVs written to ``tmp_path``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmarks import _common, tabular
from benchmarks.tabular import FILES, ColumnNotFound, MaskError, Table
from nas.errors import BenchmarkDataMissing, DataError, NasError, RegistryError

# ------------------------------------------------------------------------- real data


def test_nb201_ground_truth_known_values(data_dir: Path) -> None:
    gt = tabular.nb201_ground_truth(data_dir)
    assert len(gt) == 15_625
    assert gt["index"].dtype == np.int64
    np.testing.assert_array_equal(gt["index"], np.arange(15_625))
    row = gt.row(1)
    assert row["arch_str"] == (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    assert row["cifar10_test_acc"] == pytest.approx(93.66)
    assert row["params_m_cifar10"] == pytest.approx(0.802426)
    acc = gt["cifar10_test_acc"]
    assert acc.max() == pytest.approx(94.3733, abs=1e-4)
    assert np.flatnonzero(np.isclose(acc, acc.max())).tolist() == [6111, 13714]
    assert len(set(gt["unique_str"].tolist())) == 6_466
    assert int((acc == 10.0).sum()) == 341  # degenerate cells, per the README
    assert set(gt["n_seeds"].tolist()) == {2, 3}


def test_nb201_ground_truth_is_fast_and_cached(data_dir: Path) -> None:
    tabular.clear_cache()
    start = time.perf_counter()
    gt = tabular.nb201_ground_truth(data_dir)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"parsing 15,625 rows took {elapsed:.2f} s"  # about 0.15 s when measured
    assert tabular.nb201_ground_truth(str(data_dir)) is gt  # str or Path: same resolved file
    with pytest.raises(ValueError, match="read-only"):
        gt["cifar10_test_acc"][0] = 0.0


def test_nb201_latency_devices(data_dir: Path) -> None:
    devices = tabular.nb201_devices(data_dir)
    assert len(devices) == 27
    assert devices[0] == "titan_rtx_1" and devices[-1] == "samsung_s7"
    lat = tabular.nb201_latency(data_dir)
    assert lat.columns == ("index", "arch_str", *devices)
    first = lat.row(0)
    assert first["pixel3"] == pytest.approx(3.60585)
    assert first["fpga"] == pytest.approx(2.57296)
    assert lat["pixel2"].dtype == np.float64  # whole-ms integers in the file, still float like the others
    gt = tabular.nb201_ground_truth(data_dir)
    assert np.array_equal(lat["arch_str"], gt["arch_str"])


def test_nb201_zc_naslib_per_dataset(data_dir: Path) -> None:
    c10 = tabular.nb201_zc_naslib("cifar10", data_dir)
    assert len(c10) == 725
    assert set(c10["dataset"].tolist()) == {"cifar10"}
    assert int(np.isnan(c10["synflow"]).sum()) == 1
    assert int(np.isnan(c10["nwot"]).sum()) == 0  # "-inf" in the file is -inf, not NaN
    assert np.isneginf(c10["nwot"]).sum() == 1
    sizes = {ds: len(tabular.nb201_zc_naslib(ds, data_dir)) for ds in ("cifar100", "ImageNet16-120")}
    assert sizes == {"cifar100": 725, "ImageNet16-120": 724}
    # The op encoding is a code with leading zeros, so it must stay text.
    codes = c10["naslib_op_indices"].tolist()
    assert all(isinstance(c, str) and len(c) == 6 for c in codes)
    assert any(c.startswith("0") for c in codes)
    assert tabular.nb201_zc_naslib("cifar10", data_dir) is c10
    # Its arch strings agree with the ground truth at the same index.
    gt = tabular.nb201_ground_truth(data_dir)
    assert np.array_equal(gt["arch_str"][c10["index"]], c10["arch_str"])


def test_nb201_zc_naslib_unknown_dataset_lists_valid(data_dir: Path) -> None:
    with pytest.raises(RegistryError) as info:
        tabular.nb201_zc_naslib("imagenet", data_dir)
    msg = str(info.value)
    assert "'imagenet'" in msg
    for ds in ("cifar10", "cifar100", "ImageNet16-120"):
        assert ds in msg


def test_other_space_samples(data_dir: Path) -> None:
    nb101 = tabular.nb101_sample(data_dir)
    assert len(nb101) == 500
    assert all(len(a) == 49 and set(a) <= {"0", "1"} for a in nb101["adjacency"].tolist())
    assert 73.3 < np.min(nb101["val_accuracy"]) and np.max(nb101["val_accuracy"]) < 94.8
    nb301 = tabular.nb301_sample(data_dir)
    assert len(nb301) == 725
    assert nb301["val_accuracy"].dtype == np.float64


@pytest.mark.parametrize("key", list(FILES))
def test_every_declared_file_loads(data_dir: Path, key: str) -> None:
    table = tabular.load_table(key, data_dir)
    spec = FILES[key]
    assert len(table) > 0
    assert table.source == (data_dir / spec.relpath).resolve()
    assert set(spec.required_columns) <= set(table.columns)
    for col in spec.int_columns:
        assert table[col].dtype == np.int64
    for col in spec.text_columns:
        assert table[col].dtype == object


def test_resolve_data_dir_uses_env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_DATA", str(data_dir))
    assert tabular.resolve_data_dir() == data_dir.resolve()
    assert len(tabular.nb101_sample()) == 500


# ---------------------------------------------------------------------- no data needed


@pytest.fixture
def no_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No NAS_DATA and an empty home, so no data directory can be found by accident."""
    monkeypatch.delenv("NAS_DATA", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_names_path_and_contents(tmp_path: Path) -> None:
    spec = FILES["nb201_ground_truth"]
    with pytest.raises(BenchmarkDataMissing) as info:
        tabular.nb201_ground_truth(tmp_path)
    msg = str(info.value)
    assert spec.relpath in msg
    assert str(tmp_path.resolve() / spec.relpath) in msg
    assert spec.description in msg
    assert "--data-dir" in msg and "NAS_DATA" in msg
    assert isinstance(info.value, FileNotFoundError)  # callers may catch the builtin too


def test_resolve_data_dir_nothing_available(no_data_env: Path, tmp_path: Path) -> None:
    given = tmp_path / "nope"
    with pytest.raises(BenchmarkDataMissing) as info:
        tabular.resolve_data_dir(given)
    msg = str(info.value)
    assert f"{given} (does not exist)" in msg
    assert "$NAS_DATA: not given" in msg
    assert str(no_data_env / ".cache" / "nas" / "data") in msg
    assert "--data-dir" in msg and "NAS_DATA=DIR" in msg
    for spec in FILES.values():  # the message says what the directory should hold
        assert spec.relpath in msg


def test_load_table_without_any_directory_names_the_file(no_data_env: Path) -> None:
    with pytest.raises(BenchmarkDataMissing) as info:
        tabular.nb301_sample()
    assert str(info.value).startswith("Benchmark file 'other_spaces/nasbench301_zc_naslib.csv'")


def test_resolve_data_dir_order(
    no_data_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    arg, env = tmp_path / "arg", tmp_path / "env"
    arg.mkdir()
    env.mkdir()
    monkeypatch.setenv("NAS_DATA", str(env))
    assert tabular.resolve_data_dir(arg) == arg.resolve()
    assert tabular.resolve_data_dir(None) == env.resolve()
    with caplog.at_level("WARNING", logger="benchmarks.tabular"):
        assert tabular.resolve_data_dir(tmp_path / "missing") == env.resolve()  # falls through
    assert "missing (does not exist); using $NAS_DATA" in caplog.text
    monkeypatch.delenv("NAS_DATA")
    cache = no_data_env / ".cache" / "nas" / "data"
    cache.mkdir(parents=True)
    assert tabular.resolve_data_dir() == cache.resolve()


def test_unknown_table_key_lists_keys(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as info:
        tabular.load_table("nb201", tmp_path)
    assert "nb201_ground_truth" in str(info.value) and "nb301_zc_naslib" in str(info.value)


def test_parse_types_and_empty_cells(tmp_path: Path) -> None:
    _write(
        tmp_path / "nb201" / "nb201_zc_naslib.csv",
        "dataset,index,arch_str,naslib_op_indices,val_accuracy,synflow,note\n"
        "cifar10,5,|a|,012340,91.5,,x\n"
        "cifar100,7,|b|,100000,70.25,-inf,2\n"
        "cifar10,9,|c|,222222,10,3e2,\n",
    )
    table = tabular.load_table("nb201_zc_naslib", tmp_path)
    assert table["index"].dtype == np.int64
    assert table["val_accuracy"].tolist() == [91.5, 70.25, 10.0]
    syn = table["synflow"]
    assert math.isnan(syn[0]) and syn[1] == -math.inf and syn[2] == 300.0
    assert table["naslib_op_indices"].tolist() == ["012340", "100000", "222222"]
    assert table["note"].tolist() == ["x", "2", ""]  # one non-number makes the column text
    c10 = tabular.nb201_zc_naslib("cifar10", tmp_path)
    assert c10["index"].tolist() == [5, 9]


def test_malformed_files_raise_data_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "other_spaces" / "nasbench101_zc_naslib.csv", "adjacency,n_nodes,ops,val_accuracy\n"
    )
    cases = {
        "011,7,a,90\n011,x,b,91\n": "column 'n_nodes' must hold integers; data row 1 has 'x'",
        "011,7,a,90\n011,7,b\n": "line 3 has 3 fields; the header has 4",
    }
    for body, expected in cases.items():
        path.write_text("adjacency,n_nodes,ops,val_accuracy\n" + body, encoding="utf-8")
        with pytest.raises(DataError, match=expected):
            tabular.nb101_sample(tmp_path)
    path.write_text("adjacency,n_nodes,val_accuracy\n011,7,90\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"lacks required columns \['ops'\]"):
        tabular.nb101_sample(tmp_path)


def test_nb201_ground_truth_checks_rows_and_index(tmp_path: Path) -> None:
    path = tmp_path / "nb201" / "nb201_ground_truth.csv"
    header = "index,arch_str,cifar10_test_acc\n"
    _write(path, header + "0,|a|,90\n1,|b|,91\n")
    with pytest.raises(DataError, match="has 2 rows; NAS-Bench-201 has 15,625"):
        tabular.nb201_ground_truth(tmp_path)
    order = list(range(15_625))
    order[100], order[101] = 101, 100
    path.write_text(header + "".join(f"{i},|x|,50\n" for i in order), encoding="utf-8")
    with pytest.raises(DataError, match="row 100 holds 101"):
        tabular.nb201_ground_truth(tmp_path)


def test_cache_rereads_an_edited_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "other_spaces" / "nasbench301_zc_naslib.csv", "")
    header = "genotype_normal,genotype_reduce,val_accuracy\n"
    path.write_text(header + "a,b,90\n", encoding="utf-8")
    first = tabular.nb301_sample(tmp_path)
    assert tabular.nb301_sample(tmp_path) is first
    path.write_text(header + "a,b,90\nc,d,91.5\n", encoding="utf-8")
    os.utime(path, ns=(0, first.source.stat().st_mtime_ns + 10**9))
    second = tabular.nb301_sample(tmp_path)
    assert second is not first and second["val_accuracy"].tolist() == [90.0, 91.5]


def test_table_api() -> None:
    source = np.array([1.0, 2.0, 3.0])
    t = Table(
        {"index": np.arange(3), "acc": source, "name": np.array(["a", "b", "c"], dtype=object)}, "mem.csv"
    )
    assert len(t) == 3 and t.columns == ("index", "acc", "name") and "acc" in t
    assert t.source == Path("mem.csv")
    assert t.row(-1) == {"index": 2, "acc": 3.0, "name": "c"}
    assert type(t.row(0)["index"]) is int  # python scalars, JSON-ready
    sub = t.filter(t["acc"] > 1.5)
    assert sub["name"].tolist() == ["b", "c"] and len(t) == 3
    source[0] = 99.0  # the table copied its input
    assert t["acc"][0] == 1.0
    with pytest.raises(IndexError, match="row 3 out of range"):
        t.row(3)
    with pytest.raises(MaskError, match=r"shape \(3,\)"):
        t.filter([True, False])
    with pytest.raises(MaskError, match="dtype int64"):
        t.filter(np.array([1, 0, 1]))
    with pytest.raises(AttributeError, match="immutable"):
        t._columns = {}  # type: ignore[misc]
    with pytest.raises(DataError, match="differ in length"):
        Table({"a": [1, 2], "b": [1]}, "bad")


def test_table_unknown_column_lists_columns() -> None:
    t = Table({"index": [0, 1], "cifar10_test_acc": [90.0, 91.0]}, "x.csv")
    with pytest.raises(KeyError) as info:
        t["cifar10_acc"]
    err = info.value
    assert isinstance(err, ColumnNotFound) and isinstance(err, NasError)
    assert str(err) == "no column 'cifar10_acc' in x.csv; columns are: index, cifar10_test_acc"


# ---------------------------------------------------------------------------- _common


def test_write_json_refuses_nan(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with pytest.raises(ValueError, match=r"nan at \$\['proxies'\]\[1\]\['rho'\]"):
        _common.write_json(out, {"proxies": [{"rho": 0.5}, {"rho": float("nan")}]})
    with pytest.raises(ValueError, match=r"at \$\['x'\]\[2\]"):
        _common.write_json(out, {"x": np.array([1.0, 2.0, np.inf])})
    assert not out.exists()  # nothing half-written
    assert list(tmp_path.iterdir()) == []


@dataclass(frozen=True)
class _Cfg:
    n: int
    path: Path


def test_write_json_converts_numpy_path_dataclass(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "dir" / "r.json"
    obj = {
        "rho": np.float32(0.5),
        "n": np.int64(3),
        "ok": np.bool_(True),
        "scores": np.arange(3, dtype=np.float64),
        "data": Path("/d"),
        "cfg": _Cfg(2, Path("p")),
    }
    assert _common.write_json(out, obj) == out
    text = out.read_text()
    assert text.startswith('{\n  "rho": 0.5,')  # indent=2
    assert json.loads(text) == {
        "rho": 0.5,
        "n": 3,
        "ok": True,
        "scores": [0.0, 1.0, 2.0],
        "data": "/d",
        "cfg": {"n": 2, "path": "p"},
    }
    with pytest.raises(TypeError, match="cannot encode set"):
        _common.write_json(out, {"s": {1}})


def test_print_table_aligns(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"proxy": "synflow", "rho": 0.7361, "n": 725}, {"proxy": "nwot", "rho": 0.78712, "extra": None}]
    _common.print_table(rows)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "proxy       rho    n  extra",
        "-------  ------  ---  -----",
        "synflow  0.7361  725",
        "nwot     0.7871",
    ]
    _common.print_table(rows, ["rho", "proxy"], float_fmt=".2f")
    assert capsys.readouterr().out.splitlines() == [
        " rho  proxy",
        "----  -------",
        "0.74  synflow",
        "0.79  nwot",
    ]


def test_settings_with_torch() -> None:
    torch = pytest.importorskip("torch")
    s = _common.settings()
    assert (s["torch"], s["torch_threads"]) == (torch.__version__, torch.get_num_threads())


def test_settings_and_common_args(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    s = _common.settings(seed=3, sample=200)
    assert s["torch"].startswith("unavailable") and s["torch_threads"] is None
    assert s["numpy"] == np.__version__
    assert s["python"].count(".") == 2
    assert list(s)[-2:] == ["seed", "sample"]
    json.dumps(s, allow_nan=False)  # settings go straight into the result JSON
    with pytest.raises(TypeError, match="numpy"):
        _common.settings(numpy="1.0")
    _common.print_settings({"seed": 3, "torch_threads": 4})
    assert capsys.readouterr().out == "settings\n  seed           3\n  torch_threads  4\n"

    parser = _common.add_common_args(argparse.ArgumentParser(), default_out="zc_quality.json")
    args = parser.parse_args([])
    assert (args.data_dir, args.out, args.seed) == (None, Path("zc_quality.json"), 0)
    args = parser.parse_args(["--data-dir", "/d", "--out", "o/r.json", "--seed", "7"])
    assert (args.data_dir, args.out, args.seed) == (Path("/d"), Path("o/r.json"), 7)
