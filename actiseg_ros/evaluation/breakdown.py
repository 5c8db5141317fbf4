"""Per-class and per-failure-mode breakdowns of ActionVOS-style predictions (pure functions on label maps).

Notation, for one listed object k in one frame: P = (pred == k), G = (gt == k), |.| = pixel count,
D(G) = G dilated with a (2r+1)x(2r+1) square (the structuring element of the ActiSeg-NL boundary noise),
B = D(G) minus G, the *outer band* of width r pixels. r = max(1, round(band_fraction * min(H, W))); the
default band_fraction 0.021 gives r = 10 px at 854x480, the reach of the strongest (21x21) dilation noise.

Per class
    Samples grouped by the object's `class_id` (VISOR names vary within a class, e.g. "trash bin" and
    "bin/garbage can/recycling bin" are both 36; every name seen is listed). Each class gets the full
    ActionVOS metric set (same rules as metrics.py, NaN/null where a denominator is empty) and its counts.

Boundary leakage (positive objects, samples with P and G both non-empty)
    leak(k) = |P & B|, the predicted pixels in the band just outside the ground truth.
    pixel_fraction        = sum leak / sum |P|     over those samples (pooled)
    mean_sample_fraction  = mean of leak / |P|     over those samples
    leaking_samples       = samples with leak > 0

Mislocalisation (positive objects, P and G both non-empty)
    far(k) = |P minus D(G)|, predicted pixels beyond the band.
    A sample is *mislocalised* when IoU < iou_threshold (0.5) and far > 0: part of the prediction lies away
    from the object, not just along its border. Low-IoU samples with far == 0 (every predicted pixel inside
    the GT or its band: leakage and/or under-segmentation only) are counted as `within_band_low_iou`, not
    as mislocalised. Positive objects absent from the frame (G empty) but predicted are counted separately
    as `absent_positive_predicted` (they are the positive FPs of the metrics).

Identity substitution (any listed object k with P non-empty)
    For the other listed objects j != k, o_j = |P & (gt == j)|. j* = argmax o_j (smallest id on ties).
    The sample is *substituted* when o_j* > |P & G| and o_j* >= substitution_share * |P| (default 0.5):
    most of what was predicted as k is another annotated object. Counted by polarity of k and j*:
    positive_as_negative (a negative object segmented in place of a positive one, the text-flip failure),
    positive_as_positive, negative_as_positive, negative_as_negative. Also pooled:
    pixel_fraction = sum over samples of sum_{j != k} o_j / sum |P|. Background (id 0) and ids not listed in
    object_classes never count as "another object".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

from actiseg_ros.evaluation.metrics import (MetricAccumulator, SampleOutcome, nan_to_none, outcomes_from_counts,
                                            pair_counts)

DEFAULT_BAND_FRACTION = 0.021
DEFAULT_IOU_THRESHOLD = 0.5
DEFAULT_SUBSTITUTION_SHARE = 0.5


def band_width_px(height: int, width: int, band_fraction: float = DEFAULT_BAND_FRACTION) -> int:
    """Outer band width r in pixels for an HxW frame, proportional to the short side, at least 1."""
    if band_fraction <= 0:
        raise ValueError("band_fraction must be positive, got %r" % band_fraction)
    return max(1, int(round(band_fraction * min(height, width))))


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of an HxW mask with a (2r+1)x(2r+1) square; returns an HxW bool array."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel, iterations=1).astype(bool)


@dataclass(frozen=True)
class Localisation:
    """Where the predicted pixels of one positive object lie relative to its ground truth (pixel counts)."""

    pred_area: int  # |P|
    gt_area: int  # |G|
    inside: int  # |P & G|
    band: int  # |P & B|, the leakage
    far: int  # |P minus D(G)|

    @property
    def iou(self) -> float:
        return self.inside / (self.pred_area + self.gt_area - self.inside)

    @property
    def leakage_fraction(self) -> float:
        return self.band / self.pred_area

    def mislocalised(self, iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> bool:
        return self.iou < iou_threshold and self.far > 0

    def within_band_low_iou(self, iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> bool:
        return self.iou < iou_threshold and self.far == 0


def localise(pred_mask: np.ndarray, gt_mask: np.ndarray, band_px: int) -> Localisation | None:
    """Split the HxW prediction mask into inside / band / far parts; None when P or G is empty."""
    pred_mask = np.asarray(pred_mask, dtype=bool)
    gt_mask = np.asarray(gt_mask, dtype=bool)
    if pred_mask.shape != gt_mask.shape:
        raise ValueError("prediction mask shape %s differs from ground-truth mask shape %s"
                         % (pred_mask.shape, gt_mask.shape))
    pred_area = int(np.count_nonzero(pred_mask))
    rows = np.flatnonzero(gt_mask.any(axis=1))
    if pred_area == 0 or rows.size == 0:
        return None
    cols = np.flatnonzero(gt_mask.any(axis=0))
    # D(G) lies inside G's bounding box grown by r, so dilating that crop is exact and much cheaper.
    top, bottom = max(rows[0] - band_px, 0), min(rows[-1] + band_px + 1, gt_mask.shape[0])
    left, right = max(cols[0] - band_px, 0), min(cols[-1] + band_px + 1, gt_mask.shape[1])
    gt_crop = gt_mask[top:bottom, left:right]
    pred_crop = pred_mask[top:bottom, left:right]
    near = pred_crop & dilate(gt_crop, band_px)
    inside = int(np.count_nonzero(pred_crop & gt_crop))
    near_area = int(np.count_nonzero(near))
    return Localisation(pred_area=pred_area, gt_area=int(np.count_nonzero(gt_crop)), inside=inside,
                        band=near_area - inside, far=pred_area - near_area)


@dataclass(frozen=True)
class Substitution:
    """Overlap of the prediction for object k with the ground truth of the other listed objects."""

    object_id: int
    other_pixels: int  # sum over listed j != k of |P & (gt == j)|
    target: int | None  # j* when the sample counts as substituted, else None


def substitution(counts: np.ndarray, object_id: int, object_ids,
                 share: float = DEFAULT_SUBSTITUTION_SHARE) -> Substitution:
    """Identity substitution test for object k from a `pair_counts` joint histogram (see module docstring)."""
    k = int(object_id)
    n = counts.shape[0]
    if k >= n:
        return Substitution(k, 0, None)
    row = counts[k]
    pred_area = int(row.sum())
    others = sorted(int(j) for j in object_ids if int(j) != k and 0 < int(j) < n)
    overlaps = [int(row[j]) for j in others]
    other_pixels = sum(overlaps)
    target = None
    if overlaps and pred_area > 0:
        best = int(np.argmax(overlaps))  # first maximum -> smallest id on ties
        if overlaps[best] > int(row[k]) and overlaps[best] >= share * pred_area:
            target = others[best]
    return Substitution(k, other_pixels, target)


def _substitution_kind(source_positive: bool, target_positive: bool) -> str:
    return "%s_as_%s" % ("positive" if source_positive else "negative", "positive" if target_positive else "negative")


class BreakdownAccumulator:
    """Per-class metrics and failure-mode statistics over many frames.

    `objects` given to add_frame maps object id -> an object record with `positive`, `class_id` and
    `name` attributes (actionvos.ObjectInfo).
    """

    def __init__(self, band_fraction: float = DEFAULT_BAND_FRACTION, iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                 substitution_share: float = DEFAULT_SUBSTITUTION_SHARE) -> None:
        band_width_px(1, 1, band_fraction)  # validates the fraction early
        self.band_fraction = band_fraction
        self.iou_threshold = iou_threshold
        self.substitution_share = substitution_share
        self.classes: dict[int, MetricAccumulator] = {}
        self.class_names: dict[int, set] = {}
        self.band_widths: set[int] = set()
        self.leak = {"samples": 0, "leaking_samples": 0, "predicted_pixels": 0, "band_pixels": 0,
                     "sum_sample_fraction": 0.0}
        self.localisation = {"low_iou": 0, "mislocalised": 0, "within_band_low_iou": 0,
                             "absent_positive_predicted": 0}
        self.substitutions = {"samples_with_prediction": 0, "substituted": 0, "predicted_pixels": 0,
                              "pixels_on_other_objects": 0, "positive_as_negative": 0, "positive_as_positive": 0,
                              "negative_as_positive": 0, "negative_as_negative": 0}

    def add_frame(self, pred_labels: np.ndarray, gt_labels: np.ndarray, objects: Mapping,
                  counts: np.ndarray | None = None, outcomes: Mapping[int, SampleOutcome] | None = None) -> None:
        """Add one frame (HxW integer label maps). `counts` / `outcomes` may be passed when already computed."""
        if counts is None:
            counts = pair_counts(pred_labels, gt_labels)
        if outcomes is None:
            outcomes = outcomes_from_counts(counts, {k: bool(info.positive) for k, info in objects.items()})
        band_px = band_width_px(gt_labels.shape[0], gt_labels.shape[1], self.band_fraction)
        self.band_widths.add(band_px)
        for object_id, info in objects.items():
            k = int(object_id)
            outcome = outcomes[k]
            class_id = int(info.class_id)
            self.classes.setdefault(class_id, MetricAccumulator()).add(outcome)
            self.class_names.setdefault(class_id, set()).add(str(info.name))
            if outcome.pred_area == 0:
                continue
            if outcome.positive:
                if outcome.gt_area == 0:
                    self.localisation["absent_positive_predicted"] += 1
                else:
                    self._add_localisation(localise(pred_labels == k, gt_labels == k, band_px))
            self._add_substitution(substitution(counts, k, objects.keys(), self.substitution_share),
                                   outcome.pred_area, bool(info.positive), objects)

    def _add_localisation(self, where: Localisation) -> None:
        leak = self.leak
        leak["samples"] += 1
        leak["leaking_samples"] += where.band > 0
        leak["predicted_pixels"] += where.pred_area
        leak["band_pixels"] += where.band
        leak["sum_sample_fraction"] += where.leakage_fraction
        if where.iou < self.iou_threshold:
            self.localisation["low_iou"] += 1
        if where.mislocalised(self.iou_threshold):
            self.localisation["mislocalised"] += 1
        elif where.within_band_low_iou(self.iou_threshold):
            self.localisation["within_band_low_iou"] += 1

    def _add_substitution(self, found: Substitution, pred_area: int, positive: bool, objects: Mapping) -> None:
        subs = self.substitutions
        subs["samples_with_prediction"] += 1
        subs["predicted_pixels"] += pred_area
        subs["pixels_on_other_objects"] += found.other_pixels
        if found.target is not None:
            subs["substituted"] += 1
            subs[_substitution_kind(positive, bool(objects[found.target].positive))] += 1

    def per_class(self) -> list[dict]:
        """One record per class_id (sorted): names, sample counts and the ActionVOS metrics (null if undefined)."""
        records = []
        for class_id in sorted(self.classes):
            accumulator = self.classes[class_id]
            record = {"class_id": class_id, "names": sorted(self.class_names[class_id]),
                      "samples": accumulator.samples}
            record.update({key: nan_to_none(value) for key, value in accumulator.result().items()})
            records.append(record)
        return records

    def failure_modes(self) -> dict:
        leak, where, subs = self.leak, self.localisation, self.substitutions
        samples = leak["samples"]
        return {
            "definitions": {"band_fraction": self.band_fraction, "band_px": sorted(self.band_widths),
                            "iou_threshold": self.iou_threshold, "substitution_share": self.substitution_share},
            "boundary_leakage": {
                "samples": samples,
                "leaking_samples": leak["leaking_samples"],
                "predicted_pixels": leak["predicted_pixels"],
                "band_pixels": leak["band_pixels"],
                "pixel_fraction": nan_to_none(_ratio(leak["band_pixels"], leak["predicted_pixels"])),
                "mean_sample_fraction": nan_to_none(_ratio(leak["sum_sample_fraction"], samples)),
            },
            "mislocalisation": {
                "samples": samples,
                "low_iou": where["low_iou"],
                "mislocalised": where["mislocalised"],
                "within_band_low_iou": where["within_band_low_iou"],
                "rate": nan_to_none(_ratio(where["mislocalised"], samples)),
                "absent_positive_predicted": where["absent_positive_predicted"],
            },
            "identity_substitution": dict(
                subs, pixel_fraction=nan_to_none(_ratio(subs["pixels_on_other_objects"], subs["predicted_pixels"]))),
        }

    def result(self) -> dict:
        """The --breakdown-json document (JSON-ready: NaN already turned into null)."""
        return {"per_class": self.per_class(), "failure_modes": self.failure_modes()}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan
