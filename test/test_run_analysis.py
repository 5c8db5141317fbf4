"""Numbers of a recorded run: matching, latency, rate, IoU, per-action summary, video schedule."""
import numpy as np
import pytest

from actiseg_ros.tools.run_analysis import (latency_ms, mask_iou, match_outputs, output_rate, per_action_summary,
                                          percentile, video_schedule)

FRAMES = [{"index": i, "source_index": 10 + i, "stamp_ns": 1_000_000_000 + i * 100_000_000} for i in range(5)]


def test_match_latency_and_rate():
    records = {FRAMES[1]["stamp_ns"]: {"received": 1.13}, FRAMES[3]["stamp_ns"]: {"received": 1.35},
               FRAMES[4]["stamp_ns"]: {"received": 1.43}, 5: {"received": 9.0}}
    matched = match_outputs(FRAMES, records)
    assert [f["index"] for f, _r in matched] == [1, 3, 4]
    np.testing.assert_allclose(latency_ms(matched), [30.0, 50.0, 30.0], atol=1e-6)
    assert output_rate(matched) == pytest.approx(2 / 0.30)
    assert output_rate(matched[:1]) == 0.0
    assert percentile([], 50) is None and percentile([1.0, 3.0], 50) == 2.0


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert mask_iou(a, b) == 1.0
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)


def test_per_action_summary_keeps_first_appearance_order():
    rows = [("b", 0.5), ("a", 1.0), ("b", 0.7), ("a", 0.0)]
    assert per_action_summary(rows) == [{"action": "b", "frames": 2, "iou": pytest.approx(0.6)},
                                        {"action": "a", "frames": 2, "iou": 0.5}]


def test_video_schedule_holds_each_output_until_the_next():
    assert video_schedule([2, 3, 6], 8) == [0, 1, 1, 1, 2, 2]
    assert video_schedule([0], 1) == [0]
