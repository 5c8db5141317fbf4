"""Numbers of a recorded node run (demo, benchmark): outputs matched to the replay's manifest, latency, rate,
IoU against ground truth, and the frame schedule of a real-time video. Pure functions on plain data."""
from __future__ import annotations

import numpy as np


def match_outputs(frames: list, records: dict) -> list:
    """Manifest frames [{index, source_index, stamp_ns}] + collector records {stamp_ns: record} -> [(frame, record)]
    for every published frame that came back, in publishing order."""
    return [(frame, records[frame["stamp_ns"]]) for frame in frames if frame["stamp_ns"] in records]


def latency_ms(matched: list) -> np.ndarray:
    """(N,) end-to-end latency in ms: arrival at the collector minus the camera stamp."""
    return np.array([1000.0 * (record["received"] - frame["stamp_ns"] / 1e9) for frame, record in matched
                     if "received" in record], np.float64)


def percentile(values, q: float) -> float | None:
    values = np.asarray(values, np.float64)
    return float(np.percentile(values, q)) if values.size else None


def output_rate(matched: list) -> float:
    """Outputs per second over the span between the first and the last arrival."""
    times = sorted(record["received"] for _frame, record in matched if "received" in record)
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty (nothing to find, nothing found)."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0


def per_action_summary(rows: list) -> list:
    """rows [(action text, iou)] in frame order -> [{"action", "frames", "iou"}] in order of first appearance."""
    order, scores = [], {}
    for action, value in rows:
        if action not in scores:
            order.append(action)
            scores[action] = []
        scores[action].append(value)
    return [{"action": action, "frames": len(scores[action]), "iou": float(np.mean(scores[action]))}
            for action in order]


def video_schedule(indices: list, total: int) -> list:
    """Output frame positions for a real-time video at the replay rate: position k (an index into `indices`, the
    published-frame indices that have an output, ascending) is shown from its frame until the next one's.
    Returns one position per published frame from the first output on."""
    schedule = []
    for k, index in enumerate(indices):
        until = indices[k + 1] if k + 1 < len(indices) else total
        schedule += [k] * max(1, until - index)
    return schedule
