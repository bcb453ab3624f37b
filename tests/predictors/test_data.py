"""Labelled sets from the reference data, NASLib proxy features, splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nas.errors import PredictorError
from predictors.data import NASLIB_PROXIES, canonical_space, covered, labelled, split, zc_features


def test_nb201_accuracy_and_latency_targets(data_dir) -> None:
    acc = labelled("nb201", "cifar10_test_acc", data_dir)
    assert len(acc) == 15625 and acc.y.shape == (15625,)
    assert acc.y.max() == pytest.approx(94.3733, abs=1e-3)  # the data README's figure (index 6111)
    assert acc.archs[int(np.argmax(acc.y))] in (acc.archs[6111], acc.archs[13714])
    lat = labelled("nb201", "latency:fpga", data_dir)
    assert lat.target == "latency:fpga" and lat.archs == acc.archs
    assert lat.y[0] == pytest.approx(2.57296)  # README: index 0 on fpga
    assert labelled("nb201", "pixel3", data_dir).y[0] == pytest.approx(3.60585)
    with pytest.raises(PredictorError, match=r"cifar10_test_acc.*pixel3"):
        labelled("nb201", "no_such_column", data_dir)


def test_other_samples_parse_in_their_space(data_dir) -> None:
    from search_spaces import space_from_spec

    for space, n in (("nb101", 500), ("darts", 725)):
        lab = labelled(space, "val_accuracy", data_dir)
        assert len(lab) == n and np.isfinite(lab.y).all()
        sp = space_from_spec(canonical_space(space))
        assert sp.format(sp.parse(lab.archs[0])) == lab.archs[0]
    with pytest.raises(PredictorError, match="val_accuracy"):
        labelled("nb101", "cifar10_test_acc", data_dir)
    with pytest.raises(PredictorError, match="nb201, nb101 and nb301"):
        canonical_space("mbv3")


def test_zc_features_cover_the_naslib_sample_only(data_dir) -> None:
    lab = labelled("nb201", "cifar10_test_acc", data_dir)
    feats = zc_features("nb201", lab.archs, data_dir)
    assert feats.shape == (15625, len(NASLIB_PROXIES))
    assert covered(feats).sum() == 725
    # NASLib's nwot is -inf on some rows (singular kernel): read as missing, never passed on as -inf
    assert not np.isinf(feats).any()
    assert np.isnan(feats[covered(feats), NASLIB_PROXIES.index("nwot")]).sum() >= 1
    nb101 = labelled("nb101", "val_accuracy", data_dir)
    f101 = zc_features("nb101", nb101.archs, data_dir)
    assert covered(f101).all() and np.isnan(f101[:, NASLIB_PROXIES.index("nwot")]).all()  # NB101 has no nwot


def test_split_is_disjoint_and_seeded() -> None:
    a, b = split(100, 30, 50, seed=3)
    assert len(a) == 30 and len(b) == 50 and not set(a) & set(b)
    np.testing.assert_array_equal(split(100, 30, 50, seed=3)[0], a)
    with pytest.raises(PredictorError, match="cannot split"):
        split(10, 8, 5, seed=0)


def test_genotype_onehot_is_one_block_per_edge() -> None:
    from predictors.data import genotype_onehot

    archs = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
             "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    x = genotype_onehot("nb201", archs)
    assert x.shape == (2, 30) and (x.reshape(2, 6, 5).sum(axis=2) == 1).all()
    # the all-none cell and the other differ on every edge
    assert (x[0] * x[1]).sum() == 0
    # one block per edge in the arch string's order, the ops in the space's order
    # (none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)
    np.testing.assert_array_equal(x[0].reshape(6, 5).argmax(axis=1), [3, 3, 4, 1, 3, 1])
    np.testing.assert_array_equal(x[1].reshape(6, 5).argmax(axis=1), [0, 0, 0, 0, 0, 0])


def test_measured_latency_is_cached_and_reports_progress(tmp_path) -> None:
    from predictors.data import measured_cache_path, measured_latency

    archs = ["|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
             "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"]
    seen: list[tuple[int, int]] = []
    kw = {"warmup": 0, "repeats": 2, "rounds": 1, "chunk": 1}
    y = measured_latency("nb201", archs, tmp_path, progress=lambda d, t: seen.append((d, t)), **kw)
    assert y.shape == (2,) and (y > 0).all() and seen == [(1, 2), (2, 2)]
    path = measured_cache_path("nb201", tmp_path, warmup=0, repeats=2, rounds=1)
    assert path.is_file() and set(json.loads(path.read_text())) == set(archs)
    seen.clear()
    again = measured_latency("nb201", archs[::-1], tmp_path, progress=lambda d, t: seen.append((d, t)), **kw)
    np.testing.assert_array_equal(again, y[::-1])  # read back, not measured again
    assert seen == []


def test_measured_passes_measure_the_whole_set_in_turn_and_the_label_is_their_least(tmp_path, monkeypatch) -> None:
    """Each pass measures every architecture before the next starts, into its own file; an interrupted
    pass resumes without measuring again what it has; the label is the elementwise least of passes."""
    from nas.hardware import EXPORT_VERSION, MeasuredLatency
    from predictors.data import measured_cache_path, measured_latency, measured_passes

    archs = ["|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
             "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
             "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"]
    calls: list[int] = []
    values = iter([5.0, 1.0, 4.0, 2.0, 3.0, 6.0])  # pass 1: 5, 1, 4; pass 2: 2, 3, 6 (one graph per chunk)

    def fake_costs(self, graphs):  # type: ignore[no-untyped-def]
        calls.append(len(graphs))
        return [next(values) for _ in graphs]

    monkeypatch.setattr(MeasuredLatency, "costs", fake_costs)
    kw = {"chunk": 1}
    seen: list[tuple[int, int]] = []
    per_pass = measured_passes("nb201", archs, tmp_path, passes=2, progress=lambda d, t: seen.append((d, t)), **kw)
    np.testing.assert_array_equal(per_pass, [[5.0, 1.0, 4.0], [2.0, 3.0, 6.0]])
    assert seen == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    first, second = (measured_cache_path("nb201", tmp_path, measurement=k) for k in (1, 2))
    # pass 1 keeps the single-pass file; the export's version keeps an older export's measurements apart
    assert first.name == f"measured-nb201-e{EXPORT_VERSION}-t1-w10-r30-x3.json"
    assert second.name == f"measured-nb201-e{EXPORT_VERSION}-t1-w10-r30-x3-pass2.json"
    assert json.loads(second.read_text()) == dict(zip(archs, [2.0, 3.0, 6.0], strict=True))
    # an interrupted third pass: one architecture measured; the rest is measured, nothing else
    third = measured_cache_path("nb201", tmp_path, measurement=3)
    third.write_text(json.dumps({archs[1]: 0.5}))
    values = iter([7.0, 0.25])
    calls.clear()
    y = measured_latency("nb201", archs, tmp_path, passes=3, **kw)
    assert calls == [1, 1]
    np.testing.assert_array_equal(y, [2.0, 0.5, 0.25])  # the least of (5, 2, 7), (1, 3, 0.5), (4, 6, 0.25)
    # a repeated architecture: measured once a pass, and counted once by the progress
    values = iter([8.0, 9.0, 10.0, 11.0])
    calls.clear()
    seen.clear()
    per_pass = measured_passes("nb201", [archs[0], archs[1], archs[0]], tmp_path, passes=2, tag="again",
                               progress=lambda d, t: seen.append((d, t)), **kw)
    np.testing.assert_array_equal(per_pass, [[8.0, 9.0, 8.0], [10.0, 11.0, 10.0]])
    assert calls == [1, 1, 1, 1] and seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(PredictorError, match="at least 1"):
        measured_passes("nb201", archs, tmp_path, passes=0)


def test_every_pass_measures_again(tmp_path, monkeypatch) -> None:
    """Passes in one call are separate measurements: no pass is answered from another's results."""
    import nas.hardware as hardware
    from predictors.data import measured_passes

    archs = ["|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
             "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"]
    timed = []

    def fake_measure(models, threads, warmup, repeats, rounds):  # type: ignore[no-untyped-def]
        timed.append(len(models))
        return [float(len(timed))] * len(models)

    monkeypatch.setattr(hardware, "measure_onnx_many", fake_measure)
    per_pass = measured_passes("nb201", archs, tmp_path, passes=3, chunk=2)
    assert timed == [2, 2, 2]
    np.testing.assert_array_equal(per_pass, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
