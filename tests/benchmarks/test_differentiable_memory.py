"""The memory experiment of benchmarks.differentiable: saved activations and peak memory, side by side."""

from __future__ import annotations

from benchmarks.differentiable import memory_experiment


def test_darts_saves_and_peaks_above_a_single_path_and_proxyless_does_not() -> None:
    rows = {r["step"]: r for r in memory_experiment({"c": 8, "n": 1}, batch=16, steps=2, seed=0)}
    assert set(rows) == {"darts", "proxyless", "single path"}
    darts, proxyless, single = rows["darts"], rows["proxyless"], rows["single path"]
    # DARTS runs all five ops on every edge, ProxylessNAS one per weight step (and two per arch step)
    assert darts["weight_step_saved_mb"] > 2.5 * single["weight_step_saved_mb"]
    assert proxyless["weight_step_saved_mb"] < 1.5 * single["weight_step_saved_mb"]
    # the peak is measured in a fresh process per method: positive, and larger for DARTS
    assert all(r["peak_rss_increase_mb"] > 0 for r in rows.values())
    assert darts["peak_rss_increase_mb"] > proxyless["peak_rss_increase_mb"]
    assert single["peak_vs_single_path"] == 1.0
