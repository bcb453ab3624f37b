"""The `nas` command line, end to end, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from nas.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_then_info_reports_table_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.onnx"
    code, out, _ = run(capsys, "export", "--space", "nb201", "--arch", "1", "-o", str(f))
    assert code == 0 and f.is_file()
    onnx.checker.check_model(onnx.load(str(f)))  # a real, runnable file with weights
    assert "802,426" in out
    code, out, _ = run(capsys, "info", str(f), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["params"] == 802426
    assert {"params", "flops", "nodes", "op_counts", "fingerprint", "depth"} <= set(info)
    assert info["op_counts"]["Conv"] == 52
    code, text, _ = run(capsys, "info", str(f))
    assert code == 0 and info["fingerprint"] in text


def test_export_by_arch_string_and_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    assert run(capsys, "export", "--space", "nb201", "--arch", arch, "-o", str(a), "--seed", "3")[0] == 0
    assert run(capsys, "export", "--space", "nb201", "--arch", arch, "-o", str(b), "--seed", "3", "--json")[0] == 0
    wa = [t.raw_data for t in onnx.load(str(a)).graph.initializer]
    wb = [t.raw_data for t in onnx.load(str(b)).graph.initializer]
    assert wa == wb


def test_spaces_lists_every_space(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spaces", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"nb201", "nb101", "darts", "nb301", "mbv3", "onnx_folder"}
    assert rows["nb201"]["size"] == 15625 and rows["mbv3"]["size"] is None  # not enumerable
    assert rows["onnx_folder"]["needs"] == ["folder"]
    code, text, _ = run(capsys, "spaces")
    assert code == 0 and "--space onnx_folder:FOLDER" in text


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("export", "--space", "nope", "--arch", "1", "-o", "x.onnx"), "valid names: darts, mbv3, nb101"),
        (("export", "--space", "nb201", "--arch", "|bad~0|", "-o", "x.onnx"), "arch string"),
        (("export", "--space", "nb201", "--arch", "99999", "-o", "x.onnx"), "15624"),
    ],
)
def test_bad_arguments_exit_2(argv: tuple[str, ...], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err


def test_info_on_malformed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    code, _, err = run(capsys, "info", str(text))
    assert code == 2 and "notes.onnx" in err
    good = tmp_path / "g.onnx"
    assert run(capsys, "export", "--space", "nb201", "--arch", "5", "-o", str(good))[0] == 0
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[:5000])
    code, _, err = run(capsys, "info", str(cut))
    assert code == 2 and "cut.onnx" in err
    code, _, err = run(capsys, "info", str(tmp_path / "missing.onnx"))
    assert code == 2 and "missing.onnx" in err


def test_proxies_lists_each_with_direction(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "proxies", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"synflow", "nwot", "gradsign", "lga", "zen", "flops"} <= set(rows)
    assert all(isinstance(r["higher_is_better"], bool) for r in rows.values())


def test_score_onnx_files_and_space_archs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from nas.ir.torch_export import export_onnx
    from tests.nas.ir.models import make_transformer

    model = make_transformer().eval()
    onnx.save(export_onnx(model, torch.zeros(1, 3, 32, 32)), str(tmp_path / "vit.onnx"))
    assert run(capsys, "export", "--space", "nb201", "--arch", "1", "-o", str(tmp_path / "nb.onnx"))[0] == 0
    code, out, _ = run(capsys, "score", str(tmp_path), "--proxies", "params,synflow,nwot", "--data", "synthetic",
                       "--batch", "8", "--json")
    assert code == 0
    results = json.loads(out)["results"]
    res = {Path(r["model"]).name: r["scores"] for r in results}
    errors = {Path(r["model"]).name: r["errors"] for r in results}
    assert set(res) == {"vit.onnx", "nb.onnx"}
    assert set(errors["vit.onnx"]) == {"nwot"}  # a GELU transformer has no ReLU codes
    assert "ReLU" in errors["vit.onnx"]["nwot"] and not errors["nb.onnx"]
    assert res["nb.onnx"]["params"] == pytest.approx(0.802426)
    assert res["vit.onnx"]["params"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    code, out, _ = run(capsys, "score", "--space", "nb201", "--arch", "1", "--proxies", "params", "--data",
                       "synthetic", "--batch", "8")
    assert code == 0 and "0.80243" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("score", "--proxies", "params"), "nothing to score"),
        (("score", "--space", "nb201", "--proxies", "synfow", "--arch", "1"), "valid names"),
        (("score", "--space", "nb201", "--proxies", "params"), "--arch"),
    ],
)
def test_score_bad_arguments(argv: tuple[str, ...], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err


def test_every_space_exports_an_architecture_that_info_and_score_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from search_spaces import SPACES, required_arguments, space_from_spec
    from tests.search_spaces.test_conformance import SMALL

    folder = tmp_path / "folder"
    folder.mkdir()
    run(capsys, "export", "--space", SMALL["nb201"], "--arch", "7", "-o", str(folder / "a.onnx"))
    for name in SPACES.names():
        spec = f"{name}:{folder}" if required_arguments(name) else SMALL.get(name, name)
        space = space_from_spec(spec)
        arch = space.format(space.sample(np.random.default_rng(0)))
        f = tmp_path / f"{name}.onnx"
        code, out, _ = run(capsys, "export", "--space", spec, "--arch", arch, "-o", str(f), "--json")
        assert code == 0, name
        exported = json.loads(out)
        code, out, _ = run(capsys, "info", str(f), "--json")
        assert code == 0 and json.loads(out)["fingerprint"] == exported["fingerprint"], name
        code, out, err = run(capsys, "score", str(f), "--proxies", "params,nwot,synflow", "--data", "synthetic",
                             "--batch", "4", "--json")
        assert code == 0, (name, err)
        scores = json.loads(out)["results"][0]["scores"]
        assert scores["params"] == pytest.approx(exported["params"] / 1e6), name
        assert np.isfinite(scores["synflow"]), name


def test_space_specs(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.errors import GenotypeError
    from search_spaces import space_from_spec

    small = space_from_spec("nb201:c=8,n=1")
    assert (small.c, small.n) == (8, 1)
    with pytest.raises(GenotypeError, match="takes"):
        space_from_spec("nb201:width=3")
    code, _, err = run(capsys, "export", "--space", "nb201:width=3", "--arch", "1", "-o", "x.onnx")
    assert code == 2 and "width" in err


def test_search_runs_resumes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ("search", "--space", "nb201:c=8,n=1", "--objective", "params", "--budget", "6", "--out", str(out),
            "--data", "synthetic", "--batch", "8", "--max-params", "0.05")
    code, text, _ = run(capsys, *argv)
    assert code == 0 and "best" in text and (out / "best.onnx").is_file()
    code, text, _ = run(capsys, "search", "--resume", str(out), "--json")
    assert code == 0
    result = json.loads(text)
    assert result["counters"]["evaluated"] + result["counters"]["failed"] == 6
    assert result["best"]["costs"]["params"] <= 0.05
    code, _, err = run(capsys, *argv)  # the folder holds a search already
    assert code == 2 and "--resume" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("search", "--strategy", "anneal"), "valid: bo, evolution, local, nsga2, random"),
        (("search", "--budget", "0"), "at least 1"),
        (("search", "--objective", "accuracy"), "valid: ensemble"),
        (("search", "--space", "nb999"), "valid names"),
        (("search", "--max-latency-ms", "5"), "--latency"),
    ],
)
def test_search_bad_arguments(argv: tuple[str, ...], needle: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "x"), "--data", "synthetic")
    assert code == 2 and needle in err


def test_search_unknown_latency_device(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", "--latency", "table:pixel99", "--max-latency-ms", "5", "--data-dir",
                       str(data_dir), "--out", str(tmp_path / "x"), "--data", "synthetic")
    assert code == 2 and "pixel3" in err and "pixel99" in err
