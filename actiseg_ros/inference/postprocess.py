"""Model outputs -> per-object decisions and label images (plain numpy, shared by offline and ROS paths)."""
from __future__ import annotations

import numpy as np

POSITIVE_GATE = 0.75  # ActionVOS: an object whose positive probability is below this gets an empty mask
MASK_THRESHOLD = 0.5


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def active_objects(positive_logits: np.ndarray, gate: float = POSITIVE_GATE) -> np.ndarray:
    """(K,) logits -> (K,) bool: which objects are involved in the action."""
    return sigmoid(np.asarray(positive_logits, np.float32)) >= gate


def compose_labels(mask_logits: np.ndarray, active: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """(K, H, W) logits + (K,) active flags -> (H, W) uint8, pixel = 1-based object index, 0 = none.

    Where masks of several active objects overlap, the most confident one wins, so every pixel belongs
    to at most one object (the palette-PNG convention of ActionVOS predictions).
    """
    k = mask_logits.shape[0]
    if k > 255:
        raise ValueError("at most 255 objects fit in a uint8 label image, got %d" % k)
    if k == 0:
        return np.zeros(mask_logits.shape[1:], np.uint8)
    logit_threshold = float(np.log(threshold / (1.0 - threshold)))
    scores = np.where(np.asarray(active, bool)[:, None, None], mask_logits, -np.inf)
    best = scores.argmax(axis=0)
    best_score = np.take_along_axis(scores, best[None], axis=0)[0]
    return np.where(best_score > logit_threshold, best + 1, 0).astype(np.uint8)
