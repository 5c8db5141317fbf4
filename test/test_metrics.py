"""The six ActionVOS metrics: every branch of the per-sample rules, aggregation, and empty denominators."""
import json
import math

import numpy as np
import pytest

from actiseg_ros.evaluation.metrics import (FN, FP, SUMMARY_KEYS, TN, TP, MetricAccumulator, classify_counts,
                                            pair_counts, score_frame, score_sample, stray_ids,
                                            to_json_summary)


def masks(pred_pixels, gt_pixels, shape=(3, 4)):
    """Two boolean masks with the listed (row, col) pixels set."""
    pred = np.zeros(shape, bool)
    gt = np.zeros(shape, bool)
    for r, c in pred_pixels:
        pred[r, c] = True
    for r, c in gt_pixels:
        gt[r, c] = True
    return pred, gt


# --- positive objects ---------------------------------------------------------------------------------

def test_positive_nothing_anywhere_is_tn_with_giou_1_outside_miou():
    out = score_sample(*masks([], []), positive=True)
    assert (out.decision, out.giou, out.in_iou, out.union) == (TN, 1.0, False, 0)
    assert math.isnan(out.iou)


def test_positive_absent_but_predicted_is_fp_with_giou_0_and_iou_0_in_miou():
    out = score_sample(*masks([(0, 0), (0, 1)], []), positive=True)
    assert (out.decision, out.giou, out.in_iou) == (FP, 0.0, True)
    assert (out.intersection, out.union, out.iou) == (0, 2, 0.0)


def test_positive_present_but_not_predicted_is_fn_with_giou_0():
    out = score_sample(*masks([], [(1, 1), (1, 2), (2, 2)]), positive=True)
    assert (out.decision, out.giou, out.in_iou) == (FN, 0.0, True)
    assert (out.intersection, out.union, out.iou) == (0, 3, 0.0)


def test_positive_found_is_tp_with_giou_equal_to_iou():
    # P = {(0,0),(0,1),(0,2)}, G = {(0,1),(0,2),(0,3)}: I = 2, U = 4.
    out = score_sample(*masks([(0, 0), (0, 1), (0, 2)], [(0, 1), (0, 2), (0, 3)]), positive=True)
    assert (out.decision, out.in_iou) == (TP, True)
    assert (out.intersection, out.union) == (2, 4)
    assert out.iou == out.giou == 0.5


# --- negative objects ---------------------------------------------------------------------------------

def test_negative_nothing_anywhere_is_tn_with_giou_1_outside_miou():
    out = score_sample(*masks([], []), positive=False)
    assert (out.decision, out.giou, out.in_iou) == (TN, 1.0, False)


def test_negative_absent_but_predicted_is_fp_with_giou_0():
    out = score_sample(*masks([(2, 3)], []), positive=False)
    assert (out.decision, out.giou, out.in_iou, out.iou) == (FP, 0.0, True, 0.0)


def test_negative_present_and_not_predicted_is_tn_with_giou_1_but_iou_0_enters_n_miou():
    out = score_sample(*masks([], [(0, 0), (1, 0)]), positive=False)
    assert (out.decision, out.giou, out.in_iou) == (TN, 1.0, True)
    assert (out.intersection, out.union, out.iou) == (0, 2, 0.0)


def test_negative_present_and_predicted_is_fp_with_giou_0_whatever_the_overlap():
    # A perfect mask of an inactive object is still wrong: FP, gIoU 0, its IoU (1.0) goes into n-mIoU.
    out = score_sample(*masks([(0, 0), (1, 0)], [(0, 0), (1, 0)]), positive=False)
    assert (out.decision, out.giou, out.in_iou, out.iou) == (FP, 0.0, True, 1.0)


def test_classify_counts_rejects_impossible_counts():
    with pytest.raises(ValueError, match="intersection 3"):
        classify_counts(3, 2, 5, True)
    with pytest.raises(ValueError, match="intersection -1"):
        classify_counts(-1, 2, 5, True)


def test_score_sample_rejects_different_shapes():
    with pytest.raises(ValueError, match="shape"):
        score_sample(np.zeros((2, 3), bool), np.zeros((3, 2), bool), True)


# --- frames: the vectorised path ----------------------------------------------------------------------

def test_pair_counts_is_the_joint_histogram():
    pred = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
    gt = np.array([[0, 1, 2], [2, 0, 0]], np.uint8)
    counts = pair_counts(pred, gt)
    assert counts.shape == (3, 3)
    # rows: predicted 0,1,2; columns: ground truth 0,1,2
    assert counts.tolist() == [[2, 0, 0], [0, 1, 1], [1, 0, 1]]
    assert pair_counts(pred, gt, min_labels=6).shape == (6, 6)


def test_pair_counts_handles_wide_label_values():
    pred = np.array([[300, 300, 0]], np.uint16)
    gt = np.array([[300, 0, 0]], np.uint16)
    out = score_frame(pred, gt, {300: True})
    assert (out[300].intersection, out[300].union, out[300].decision) == (1, 2, TP)
    with pytest.raises(ValueError, match="too large"):
        pair_counts(np.array([[70000]], np.int64), np.zeros((1, 1), np.int64))


def test_vectorised_frame_scores_match_per_mask_scores_on_random_frames():
    rng = np.random.default_rng(3)
    for _ in range(20):
        gt = rng.integers(0, 6, (17, 23)).astype(np.uint8)
        pred = rng.integers(0, 8, (17, 23)).astype(np.uint8)
        pred[rng.random((17, 23)) < 0.5] = 0
        objects = {k: bool(rng.integers(0, 2)) for k in range(1, 10)}  # ids 6..9 are absent from gt
        fast = score_frame(pred, gt, objects)
        for k, positive in objects.items():
            assert fast[k] == score_sample(pred == k, gt == k, positive)


def test_score_frame_ids_above_every_label_are_absent_samples():
    pred = np.zeros((2, 2), np.uint8)
    gt = np.ones((2, 2), np.uint8)
    out = score_frame(pred, gt, {1: True, 200: True})
    assert out[1].decision == FN
    assert (out[200].decision, out[200].in_iou) == (TN, False)


def test_score_frame_rejects_bad_inputs():
    with pytest.raises(ValueError, match="differs"):
        score_frame(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), {1: True})
    with pytest.raises(ValueError, match="integer label map"):
        score_frame(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8), {1: True})
    with pytest.raises(ValueError, match="integer label map"):
        score_frame(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8), {1: True})
    with pytest.raises(ValueError, match="negative"):
        score_frame(np.full((2, 2), -1, np.int16), np.zeros((2, 2), np.int16), {1: True})
    with pytest.raises(ValueError, match="background"):
        score_frame(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), {0: True})


def test_stray_ids_lists_predicted_ids_that_are_not_objects():
    pred = np.array([[0, 1, 9], [4, 9, 0]], np.uint8)
    gt = np.zeros_like(pred)
    assert stray_ids(pair_counts(pred, gt), [1, 2]) == [4, 9]
    assert stray_ids(pair_counts(pred, gt), [1, 4, 9]) == []


def test_stray_ids_do_not_change_any_sample():
    gt = np.array([[1, 1, 0, 0]], np.uint8)
    clean = np.array([[1, 0, 0, 0]], np.uint8)
    stray = np.array([[1, 7, 7, 0]], np.uint8)  # id 7 is not an object: its pixels belong to no sample
    assert score_frame(clean, gt, {1: True, 2: False}) == score_frame(stray, gt, {1: True, 2: False})


# --- aggregation --------------------------------------------------------------------------------------

def two_frame_accumulator():
    """Hand-built frames; the expected numbers are worked out in test_aggregate_metrics_by_hand."""
    objects = {1: True, 2: True, 3: False, 4: True, 5: False}
    gt1 = np.zeros((3, 8), np.uint8)
    gt1[0, 0:4] = 1  # 4 px
    gt1[1, :] = 2  # 8 px
    gt1[2, 0:2] = 3  # 2 px
    pred1 = np.zeros_like(gt1)
    pred1[0, 0] = 1  # I 1, U 4 -> TP, IoU 0.25
    pred1[1, 0:6] = 2  # I 6, U 8 -> TP, IoU 0.75
    pred1[2, 0:4] = 3  # negative, I 2, U 4 -> FP, IoU 0.5; ids 4 and 5: nothing anywhere -> TN, TN
    gt2 = np.zeros((3, 8), np.uint8)
    gt2[2, 7] = 5  # negative, present, not predicted -> TN, IoU 0 into n-mIoU
    pred2 = np.zeros_like(gt2)
    pred2[0, 0] = 2  # positive absent but predicted -> FP, IoU 0 (I 0, U 1); ids 1, 3, 4 -> TN
    acc = MetricAccumulator()
    acc.add_frame(pred1, gt1, objects)
    acc.add_frame(pred2, gt2, objects)
    return acc


def test_aggregate_metrics_by_hand():
    result = two_frame_accumulator().result()
    assert result["p_mIoU"] == pytest.approx((0.25 + 0.75 + 0.0) / 3)
    assert result["p_cIoU"] == pytest.approx((1 + 6 + 0) / (4 + 8 + 1))  # sum I / sum U, not mean IoU
    assert result["n_mIoU"] == pytest.approx((0.5 + 0.0) / 2)
    assert result["n_cIoU"] == pytest.approx((2 + 0) / (4 + 1))
    # gIoU per sample: frame 1: .25 .75 0 1 1; frame 2: 1 0 1 1 1
    assert result["gIoU"] == pytest.approx(7.0 / 10)
    # TP: f1 ids 1, 2; FP: f1 id 3, f2 id 2; TN: f1 ids 4, 5 and f2 ids 1, 3, 4, 5
    assert (result["TP"], result["TN"], result["FP"], result["FN"]) == (2, 6, 2, 0)
    assert result["acc"] == pytest.approx((2 + 6) / 10)


def test_fn_samples_lower_acc_and_enter_p_miou():
    acc = MetricAccumulator()
    gt = np.array([[1, 1, 2, 2]], np.uint8)
    acc.add_frame(np.array([[1, 1, 0, 0]], np.uint8), gt, {1: True, 2: True})  # TP IoU 1, FN IoU 0
    result = acc.result()
    assert (result["TP"], result["FN"]) == (1, 1)
    assert result["p_mIoU"] == result["p_cIoU"] == result["gIoU"] == result["acc"] == 0.5


def test_merge_equals_one_accumulator_over_everything():
    whole = two_frame_accumulator()
    merged = MetricAccumulator()
    merged.merge(two_frame_accumulator())
    merged.merge(MetricAccumulator())
    assert merged.result() == whole.result()
    merged.merge(two_frame_accumulator())
    doubled = merged.result()
    assert doubled["TP"] == 2 * whole.result()["TP"]
    assert doubled["p_mIoU"] == pytest.approx(whole.result()["p_mIoU"])


# --- empty denominators -------------------------------------------------------------------------------

def test_no_samples_gives_nan_metrics_and_zero_counts():
    result = MetricAccumulator().result()
    for key in ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc"):
        assert math.isnan(result[key]), key
    assert (result["TP"], result["TN"], result["FP"], result["FN"]) == (0, 0, 0, 0)


def test_only_absent_positives_leave_p_miou_undefined_but_giou_defined():
    acc = MetricAccumulator()
    acc.add_frame(np.zeros((2, 2), np.uint8), np.array([[0, 2], [0, 0]], np.uint8), {1: True, 2: False})
    result = acc.result()
    assert math.isnan(result["p_mIoU"]) and math.isnan(result["p_cIoU"])
    assert result["n_mIoU"] == 0.0 and result["n_cIoU"] == 0.0
    assert result["gIoU"] == 1.0 and result["acc"] == 1.0


def test_json_summary_has_exactly_the_keys_and_null_for_undefined():
    acc = MetricAccumulator()
    acc.add_frame(np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8), {1: False})
    summary = to_json_summary(acc.result(), videos=3)
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["p_mIoU"] is None and summary["p_cIoU"] is None
    assert summary["n_mIoU"] == 0.0 and summary["gIoU"] == 1.0 and summary["acc"] == 1.0
    assert summary["TN"] == 1 and summary["videos"] == 3
    assert all(isinstance(summary[k], int) for k in ("TP", "TN", "FP", "FN", "videos"))
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN tokens
