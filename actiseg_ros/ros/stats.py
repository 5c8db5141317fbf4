"""Rate and latency of the node's outputs over a sliding window, for /diagnostics."""
from __future__ import annotations

from collections import deque

import numpy as np


class OutputStats:
    """record(now, latency_ms, processing_ms) per published frame; summary(now) over the last window_s seconds."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = float(window_s)
        self._records: deque = deque()  # (time s, end-to-end latency ms, processing ms)
        self.outputs = 0

    def record(self, now: float, latency_ms: float, processing_ms: float) -> None:
        self._records.append((now, latency_ms, processing_ms))
        self.outputs += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._records and self._records[0][0] < now - self.window_s:
            self._records.popleft()

    def summary(self, now: float) -> dict:
        """rate_hz (0 with fewer than 2 outputs in the window), latency and processing p50/p95 in ms."""
        self._trim(now)
        records = list(self._records)
        out = {"outputs": self.outputs, "window_outputs": len(records), "rate_hz": 0.0, "latency_ms_p50": None,
               "latency_ms_p95": None, "processing_ms_p50": None}
        if not records:
            return out
        times = np.array([r[0] for r in records])
        latency = np.array([r[1] for r in records])
        if len(records) >= 2 and times[-1] > times[0]:
            out["rate_hz"] = float((len(records) - 1) / (times[-1] - times[0]))
        out["latency_ms_p50"] = float(np.percentile(latency, 50))
        out["latency_ms_p95"] = float(np.percentile(latency, 95))
        out["processing_ms_p50"] = float(np.median([r[2] for r in records]))
        return out
