"""benchmarks.ir_speed's side-by-side of the spaces' direct graphs and their exported modules."""

from __future__ import annotations

from benchmarks.ir_speed import _direct_vs_export


def test_every_space_is_timed_both_ways_on_the_same_networks() -> None:
    rows = _direct_vs_export(2, seed=3)
    assert [r["space"] for r in rows] == ["nb201", "nb101", "darts", "mbv3"]
    for r in rows:
        assert r["n"] == 2 and r["same_fingerprint"] == 2, r  # the two routes give one graph
        assert r["direct_ms"] > 0 and r["export_ms"] > 0
        assert r["ratio"] == r["export_ms"] / r["direct_ms"]
