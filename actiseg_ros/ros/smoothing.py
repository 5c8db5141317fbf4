"""Temporal smoothing of the per-object positive scores, so masks do not flicker on and off.

Two mechanisms, both per object of the current action:
  - an exponential moving average of the score (alpha = weight of the newest frame; 1 = no averaging);
  - hysteresis on the decision: an object switches on when its smoothed score reaches the gate, and off only
    when it falls below gate - hysteresis.
A new action (new prompts) resets the state, so the first frame of an action is decided on its own score and
an action change takes effect at once.
"""
from __future__ import annotations

import numpy as np


def hysteresis_decision(smoothed: np.ndarray, previous_active: np.ndarray | None, gate: float,
                        hysteresis: float) -> np.ndarray:
    """(K,) smoothed scores + (K,) previous decisions (None: no history) -> (K,) bool active."""
    smoothed = np.asarray(smoothed, np.float64)
    switch_on = smoothed >= gate
    if previous_active is None:
        return switch_on
    stay_on = smoothed >= gate - hysteresis
    return np.where(np.asarray(previous_active, bool), stay_on, switch_on)


class ScoreSmoother:
    """update(scores (K,), gate) -> (smoothed (K,) float32, active (K,) bool)."""

    def __init__(self, alpha: float = 0.5, hysteresis: float = 0.1):
        self.configure(alpha, hysteresis)
        self.reset()

    def configure(self, alpha: float, hysteresis: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("smoothing alpha must be in (0, 1], got %r" % alpha)
        if not 0.0 <= hysteresis < 1.0:
            raise ValueError("hysteresis must be in [0, 1), got %r" % hysteresis)
        self.alpha = float(alpha)
        self.hysteresis = float(hysteresis)

    def reset(self) -> None:
        self._smoothed = None  # (K,) float64
        self._active = None  # (K,) bool

    def update(self, scores, gate: float) -> tuple:
        scores = np.asarray(scores, np.float64).reshape(-1)
        if self._smoothed is None or self._smoothed.shape != scores.shape:
            self.reset()
            smoothed = scores
        else:
            smoothed = self.alpha * scores + (1.0 - self.alpha) * self._smoothed
        active = hysteresis_decision(smoothed, self._active, gate, self.hysteresis)
        self._smoothed, self._active = smoothed, active
        return smoothed.astype(np.float32), active.copy()
