"""The six ActionVOS metrics (p-mIoU, n-mIoU, p-cIoU, n-cIoU, gIoU, Acc) as pure functions.

A *sample* is one object id k of a segment's `object_classes` in one sparse frame:
P = (pred == k), G = (gt == k), I = |P & G|, U = |P | G|. The object's `positive` flag picks the rules
(spec section 7, identical to ActionVOS's `actionvos_metrics.py`):

positive object
    U == 0               -> TN, gIoU 1, not in p-mIoU / p-cIoU
    G empty, P non-empty -> FP, gIoU 0, IoU (= 0) into p-mIoU, I and U into p-cIoU
    G non-empty, P empty -> FN, gIoU = IoU = 0, into p-mIoU / p-cIoU
    both non-empty       -> TP, gIoU = IoU, into p-mIoU / p-cIoU
negative object
    U == 0               -> TN, gIoU 1, not in n-mIoU / n-cIoU
    G empty, P non-empty -> FP, gIoU 0, IoU (= 0) into n-mIoU, I and U into n-cIoU
    G non-empty, P empty -> TN, gIoU 1, IoU (= 0) into n-mIoU, I and U into n-cIoU
    both non-empty       -> FP, gIoU 0, IoU into n-mIoU, I and U into n-cIoU

p-mIoU / n-mIoU = mean IoU over the samples that enter them; p-cIoU / n-cIoU = sum I / sum U over those
samples; gIoU = mean of the per-sample gIoU over every sample; Acc = (TP+TN)/(TP+TN+FP+FN). Every sample
contributes exactly one of TP/TN/FP/FN, so Acc and gIoU share the denominator "number of samples".

Empty denominators are reported as NaN, never as an error: p-mIoU and p-cIoU are NaN when no positive
sample has U > 0 (e.g. a split without positive objects, or positives that are absent and never predicted),
likewise n-mIoU / n-cIoU for negatives; gIoU and Acc are NaN when there are no samples at all.
`to_json_summary` turns NaN into JSON null.

Prediction pixels whose value is not an id listed in `object_classes` belong to no sample and are ignored,
as in the reference implementation (`stray_ids` lets a caller warn about them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

TP, TN, FP, FN = "TP", "TN", "FP", "FN"

# Keys of the --json summary, in the order they are written.
SUMMARY_KEYS = ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc", "TP", "TN", "FP", "FN", "videos")


@dataclass(frozen=True)
class SampleOutcome:
    """How one (object, frame) sample scores. Areas are pixel counts."""

    positive: bool
    intersection: int
    pred_area: int
    gt_area: int
    decision: str  # one of TP, TN, FP, FN
    giou: float  # this sample's contribution to gIoU, in [0, 1]
    in_iou: bool  # whether it enters p/n-mIoU and p/n-cIoU (union > 0)

    @property
    def union(self) -> int:
        return self.pred_area + self.gt_area - self.intersection

    @property
    def iou(self) -> float:
        """I / U; NaN when U == 0 (such samples do not enter mIoU)."""
        return self.intersection / self.union if self.union > 0 else math.nan


def classify_counts(intersection: int, pred_area: int, gt_area: int, positive: bool) -> SampleOutcome:
    """Score one sample from its pixel counts (the ActionVOS rules in the module docstring)."""
    intersection, pred_area, gt_area = int(intersection), int(pred_area), int(gt_area)
    if not 0 <= intersection <= min(pred_area, gt_area):
        raise ValueError("inconsistent sample counts: intersection %d, prediction area %d, ground-truth area %d"
                         % (intersection, pred_area, gt_area))
    union = pred_area + gt_area - intersection
    positive = bool(positive)

    def outcome(decision: str, giou: float) -> SampleOutcome:
        return SampleOutcome(positive, intersection, pred_area, gt_area, decision, giou, union > 0)

    if union == 0:
        return outcome(TN, 1.0)
    if gt_area == 0:
        return outcome(FP, 0.0)
    if positive:
        return outcome(TP if pred_area > 0 else FN, intersection / union)
    if pred_area == 0:
        return outcome(TN, 1.0)
    return outcome(FP, 0.0)


def score_sample(pred_mask: np.ndarray, gt_mask: np.ndarray, positive: bool) -> SampleOutcome:
    """Score one sample from its two HxW boolean masks (P = pred == k, G = gt == k)."""
    pred_mask = np.asarray(pred_mask, dtype=bool)
    gt_mask = np.asarray(gt_mask, dtype=bool)
    if pred_mask.shape != gt_mask.shape:
        raise ValueError("prediction mask shape %s differs from ground-truth mask shape %s"
                         % (pred_mask.shape, gt_mask.shape))
    intersection = int(np.count_nonzero(pred_mask & gt_mask))
    return classify_counts(intersection, int(np.count_nonzero(pred_mask)), int(np.count_nonzero(gt_mask)), positive)


def check_label_maps(pred_labels: np.ndarray, gt_labels: np.ndarray) -> None:
    """Raise ValueError unless both are 2-D non-negative integer label maps of the same shape."""
    for what, labels in (("prediction", pred_labels), ("ground truth", gt_labels)):
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError("%s must be a 2-D integer label map, got shape %s dtype %s"
                             % (what, labels.shape, labels.dtype))
        if labels.size and labels.min() < 0:
            raise ValueError("%s label map has negative values" % what)
    if pred_labels.shape != gt_labels.shape:
        raise ValueError("prediction size %dx%d (WxH) differs from ground-truth size %dx%d"
                         % (pred_labels.shape[1], pred_labels.shape[0], gt_labels.shape[1], gt_labels.shape[0]))


def pair_counts(pred_labels: np.ndarray, gt_labels: np.ndarray, min_labels: int = 0) -> np.ndarray:
    """Joint histogram of two HxW label maps: counts[p, g] = pixels with prediction p and ground truth g.

    Returns an (n, n) int64 array with n = max(max label + 1, min_labels). One bincount over all pixels
    gives I, |P| and |G| for every id at once: I_k = counts[k, k], |P_k| = row sum k, |G_k| = column sum k.
    """
    check_label_maps(pred_labels, gt_labels)
    top = max(int(pred_labels.max(initial=0)), int(gt_labels.max(initial=0)))
    n = max(top + 1, int(min_labels), 1)
    if n > 65536:
        raise ValueError("label value %d is too large for a joint histogram (at most 65535)" % (n - 1))
    # Narrow codes make the bincount faster: palette maps (n <= 256) fit pred * n + gt in uint16.
    code_type = np.uint16 if n <= 256 else np.int64
    pred_codes = pred_labels.astype(code_type, copy=False).ravel() * code_type(n)
    codes = pred_codes + gt_labels.astype(code_type, copy=False).ravel()
    return np.bincount(codes, minlength=n * n).reshape(n, n)


def outcomes_from_counts(counts: np.ndarray, objects: Mapping[int, bool]) -> dict[int, SampleOutcome]:
    """Score every listed object of one frame from `pair_counts` output; objects maps id -> positive."""
    n = counts.shape[0]
    pred_area = counts.sum(axis=1)
    gt_area = counts.sum(axis=0)
    outcomes = {}
    for object_id, positive in objects.items():
        k = int(object_id)
        if k <= 0:
            raise ValueError("object id %d is not a valid label (ids start at 1; 0 is background)" % k)
        if k < n:
            outcomes[k] = classify_counts(counts[k, k], pred_area[k], gt_area[k], positive)
        else:  # id absent from both maps
            outcomes[k] = classify_counts(0, 0, 0, positive)
    return outcomes


def score_frame(pred_labels: np.ndarray, gt_labels: np.ndarray,
                objects: Mapping[int, bool]) -> dict[int, SampleOutcome]:
    """Score all listed objects of one frame (HxW integer label maps); objects maps id -> positive."""
    return outcomes_from_counts(pair_counts(pred_labels, gt_labels), objects)


def stray_ids(counts: np.ndarray, objects: Iterable[int]) -> list[int]:
    """Predicted non-zero ids (from `pair_counts` output) that are not listed objects: ignored by the metrics."""
    listed = {int(k) for k in objects}
    predicted = np.flatnonzero(counts.sum(axis=1))
    return [int(k) for k in predicted if k != 0 and int(k) not in listed]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


class MetricAccumulator:
    """Running sums for the six metrics over any number of frames and segments."""

    def __init__(self) -> None:
        self.decisions = {TP: 0, TN: 0, FP: 0, FN: 0}
        # Per polarity (True = positive objects): [sum IoU, samples in mIoU, sum I, sum U]
        self._iou_sums = {True: [0.0, 0, 0, 0], False: [0.0, 0, 0, 0]}
        self._giou_sum = 0.0
        self.samples = 0

    def add(self, outcome: SampleOutcome) -> None:
        self.decisions[outcome.decision] += 1
        self._giou_sum += outcome.giou
        self.samples += 1
        if outcome.in_iou:
            sums = self._iou_sums[outcome.positive]
            sums[0] += outcome.iou
            sums[1] += 1
            sums[2] += outcome.intersection
            sums[3] += outcome.union

    def add_all(self, outcomes: Iterable[SampleOutcome]) -> None:
        for outcome in outcomes:
            self.add(outcome)

    def add_frame(self, pred_labels: np.ndarray, gt_labels: np.ndarray,
                  objects: Mapping[int, bool]) -> dict[int, SampleOutcome]:
        """Score and add one frame; objects maps id -> positive. Returns the per-object outcomes."""
        outcomes = score_frame(pred_labels, gt_labels, objects)
        self.add_all(outcomes.values())
        return outcomes

    def merge(self, other: "MetricAccumulator") -> None:
        for key, value in other.decisions.items():
            self.decisions[key] += value
        for polarity in (True, False):
            self._iou_sums[polarity] = [a + b for a, b in zip(self._iou_sums[polarity], other._iou_sums[polarity])]
        self._giou_sum += other._giou_sum
        self.samples += other.samples

    def result(self) -> dict:
        """Metrics as fractions in [0, 1] (NaN for an empty denominator) plus the four integer counts."""
        pos_iou, pos_n, pos_i, pos_u = self._iou_sums[True]
        neg_iou, neg_n, neg_i, neg_u = self._iou_sums[False]
        counts = self.decisions
        return {
            "p_mIoU": _ratio(pos_iou, pos_n),
            "n_mIoU": _ratio(neg_iou, neg_n),
            "p_cIoU": _ratio(pos_i, pos_u),
            "n_cIoU": _ratio(neg_i, neg_u),
            "gIoU": _ratio(self._giou_sum, self.samples),
            "acc": _ratio(counts[TP] + counts[TN], sum(counts.values())),
            "TP": counts[TP],
            "TN": counts[TN],
            "FP": counts[FP],
            "FN": counts[FN],
        }


def nan_to_none(value):
    """JSON has no NaN: an undefined metric becomes null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def to_json_summary(result: Mapping, videos: int) -> dict:
    """The --json document: exactly SUMMARY_KEYS; metrics as floats (or null), counts and videos as ints."""
    summary = {key: nan_to_none(float(result[key])) for key in SUMMARY_KEYS[:6]}
    summary.update({key: int(result[key]) for key in (TP, TN, FP, FN)})
    summary["videos"] = int(videos)
    return summary
