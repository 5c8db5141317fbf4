"""ActionVOS pseudo labels of a synthetic segment, as pure functions of label images and hand-object boxes.

Spec section 2: an object is `handbox=1` if its mask meets a hand-object box in some annotated frame (hands
themselves always count), `narration=1` if its class is named in the narration, `positive = handbox OR
narration`. A hand-object box is the box around a hand (palm and fingers, not the forearm) and the object it
holds or touches; ActionVOS gets these boxes from a hand-object detector, the generator knows them.

Weight maps: 1 = other pixels, 2 = object positive by exactly one of hand / narration, 3 = negative object,
4 = object positive by both.
"""
from __future__ import annotations

import numpy as np

WEIGHT_OTHER, WEIGHT_ONE_CUE, WEIGHT_NEGATIVE, WEIGHT_BOTH_CUES = 1, 2, 3, 4


def union_box(a, b):
    """Inclusive pixel boxes (x0, y0, x1, y1); None counts as empty."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def hand_object_boxes(contacts: dict, hand_boxes: dict, object_boxes: dict) -> list:
    """One box per hand in contact: its palm-and-fingers box joined with the full box of what it touches."""
    boxes = []
    for hand, name in sorted(contacts.items()):
        box = union_box(hand_boxes.get(hand), object_boxes.get(name))
        if box is not None:
            boxes.append(box)
    return boxes


def ids_in_boxes(labels: np.ndarray, boxes: list) -> set:
    """Object ids (non-zero label values) with at least one pixel inside any of the boxes."""
    found = set()
    for x0, y0, x1, y1 in boxes:
        region = labels[y0:y1 + 1, x0:x1 + 1]
        if region.size:
            found.update(int(v) for v in np.unique(region) if v)
    return found


def pixel_counts(labels: np.ndarray, n_ids: int) -> np.ndarray:
    """(n_ids + 1,) int64: pixels per label value 0..n_ids."""
    return np.bincount(labels.ravel(), minlength=n_ids + 1)[: n_ids + 1]


def object_flags(names: list, hand_names, named, touched_ids: set) -> dict:
    """{name: (handbox, narration, positive)} for a segment whose objects are `names` (sorted: id = index + 1)."""
    flags = {}
    for index, name in enumerate(names):
        handbox = int(name in hand_names or (index + 1) in touched_ids)
        narration = int(name in named)
        flags[name] = (handbox, narration, int(bool(handbox or narration)))
    return flags


def weight_lut(flags_by_id: dict) -> np.ndarray:
    """(256,) uint8 lookup: label id -> action-guided weight class (1/2/3/4)."""
    lut = np.full(256, WEIGHT_OTHER, np.uint8)
    for object_id, (handbox, narration, positive) in flags_by_id.items():
        if not positive:
            lut[object_id] = WEIGHT_NEGATIVE
        elif handbox and narration:
            lut[object_id] = WEIGHT_BOTH_CUES
        else:
            lut[object_id] = WEIGHT_ONE_CUE
    return lut


def weight_map(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(H, W) uint8 weights for a label image."""
    return lut[labels]
