"""Sliding-window output statistics."""
import pytest

from actiseg_ros.ros.stats import OutputStats


def test_rate_and_latency_over_the_window():
    stats = OutputStats(window_s=5.0)
    assert stats.summary(0.0)["rate_hz"] == 0.0 and stats.summary(0.0)["latency_ms_p50"] is None
    for i in range(11):  # 10 Hz for 1 s
        stats.record(100.0 + i * 0.1, latency_ms=20.0 + i, processing_ms=10.0)
    summary = stats.summary(101.0)
    assert summary["rate_hz"] == pytest.approx(10.0)
    assert summary["latency_ms_p50"] == pytest.approx(25.0)
    assert summary["processing_ms_p50"] == 10.0 and summary["outputs"] == 11


def test_old_records_leave_the_window():
    stats = OutputStats(window_s=1.0)
    stats.record(0.0, 500.0, 1.0)
    stats.record(5.0, 10.0, 1.0)
    summary = stats.summary(5.0)
    assert summary["window_outputs"] == 1 and summary["latency_ms_p95"] == 10.0 and summary["outputs"] == 2
