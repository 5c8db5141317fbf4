"""Per-class and failure-mode breakdowns: band geometry, leakage, mislocalisation, identity substitution."""
import json

import numpy as np
import pytest

from actiseg_ros.data.actionvos import ObjectInfo
from actiseg_ros.evaluation.breakdown import (BreakdownAccumulator, band_width_px, dilate, localise, substitution)
from actiseg_ros.evaluation.metrics import pair_counts


def square(shape, top, left, size):
    mask = np.zeros(shape, bool)
    mask[top:top + size, left:left + size] = True
    return mask


def obj(object_id, name, class_id, positive):
    return ObjectInfo(id=object_id, name=name, class_id=class_id, handbox=int(positive), narration=0,
                      positive=int(positive))


def test_band_width_scales_with_the_short_side():
    assert band_width_px(480, 854) == 10  # reach of the 21x21 ActiSeg-NL dilation
    assert band_width_px(240, 427) == 5
    assert band_width_px(8, 8) == 1  # never zero
    assert band_width_px(480, 854, band_fraction=0.05) == 24
    with pytest.raises(ValueError, match="band_fraction"):
        band_width_px(480, 854, band_fraction=0)


def test_dilate_uses_a_square_of_side_2r_plus_1():
    grown = dilate(square((9, 9), 4, 4, 1), 2)
    assert np.array_equal(grown, square((9, 9), 2, 2, 5))


def test_exact_prediction_has_no_leakage_and_is_not_mislocalised():
    gt = square((40, 40), 10, 10, 10)
    where = localise(gt, gt, band_px=3)
    assert (where.pred_area, where.inside, where.band, where.far) == (100, 100, 0, 0)
    assert where.iou == 1.0 and where.leakage_fraction == 0.0
    assert not where.mislocalised() and not where.within_band_low_iou()


def test_dilated_prediction_within_the_band_is_pure_leakage():
    gt = square((40, 40), 10, 10, 10)
    pred = square((40, 40), 8, 8, 14)  # GT grown by 2 px, band is 3 px
    where = localise(pred, gt, band_px=3)
    assert (where.pred_area, where.inside, where.band, where.far) == (196, 100, 96, 0)
    assert where.leakage_fraction == pytest.approx(96 / 196)
    assert where.iou == pytest.approx(100 / 196)
    assert not where.mislocalised()


def test_leakage_beyond_the_band_with_low_iou_is_mislocalisation():
    gt = square((40, 40), 10, 10, 10)
    pred = square((40, 40), 5, 5, 20)  # grown by 5 px; D(G) with r=3 is the 16x16 square
    where = localise(pred, gt, band_px=3)
    assert (where.inside, where.band, where.far) == (100, 256 - 100, 400 - 256)
    assert where.iou == pytest.approx(0.25)
    assert where.mislocalised()


def test_prediction_on_the_wrong_place_is_mislocalised():
    gt = square((40, 40), 2, 2, 5)
    pred = np.zeros_like(gt)
    pred[2:4, 2:4] = True  # 4 px on the object
    pred[30:36, 30:36] = True  # 36 px far away
    where = localise(pred, gt, band_px=2)
    assert (where.pred_area, where.inside, where.band, where.far) == (40, 4, 0, 36)
    assert where.iou == pytest.approx(4 / 61)
    assert where.mislocalised()


def test_undersegmentation_inside_the_object_is_low_iou_but_not_mislocalised():
    gt = square((40, 40), 10, 10, 10)
    pred = square((40, 40), 12, 12, 2)
    where = localise(pred, gt, band_px=3)
    assert where.iou == pytest.approx(0.04)
    assert not where.mislocalised() and where.within_band_low_iou()


def test_localise_is_none_when_either_mask_is_empty():
    gt = square((10, 10), 2, 2, 3)
    assert localise(np.zeros_like(gt), gt, 2) is None
    assert localise(gt, np.zeros_like(gt), 2) is None
    with pytest.raises(ValueError, match="shape"):
        localise(gt, gt[:5], 2)


def test_cropped_band_equals_full_frame_band_also_at_image_borders():
    rng = np.random.default_rng(7)
    for _ in range(30):
        gt = square((30, 40), int(rng.integers(0, 28)), int(rng.integers(0, 38)), int(rng.integers(1, 9)))
        pred = rng.random((30, 40)) < 0.3
        band_px = int(rng.integers(1, 6))
        where = localise(pred, gt, band_px)
        near = dilate(gt, band_px)
        assert where.band == np.count_nonzero(pred & near & ~gt)
        assert where.far == np.count_nonzero(pred & ~near)
        assert where.inside == np.count_nonzero(pred & gt)


def test_substitution_onto_another_object():
    gt = np.array([[1, 1, 2, 2, 2, 0]], np.uint8)
    pred = np.array([[0, 0, 1, 1, 1, 0]], np.uint8)  # the prediction for 1 sits on object 2
    found = substitution(pair_counts(pred, gt), 1, [1, 2])
    assert (found.target, found.other_pixels) == (2, 3)


def test_no_substitution_when_own_object_overlaps_as_much():
    gt = np.array([[1, 1, 2, 2, 0, 0]], np.uint8)
    pred = np.array([[1, 1, 1, 1, 0, 0]], np.uint8)
    found = substitution(pair_counts(pred, gt), 1, [1, 2])
    assert (found.target, found.other_pixels) == (None, 2)


def test_no_substitution_when_the_other_object_is_a_small_share():
    gt = np.array([[0, 0, 0, 0, 0, 2]], np.uint8)
    pred = np.array([[1, 1, 1, 1, 1, 1]], np.uint8)  # 1 of 6 px on object 2, the rest background
    assert substitution(pair_counts(pred, gt), 1, [1, 2]).target is None
    assert substitution(pair_counts(pred, gt), 1, [1, 2], share=0.1).target == 2


def test_substitution_ignores_background_and_unlisted_ids_and_breaks_ties_by_smallest_id():
    gt = np.array([[3, 3, 2, 2, 9, 9, 9, 9]], np.uint8)
    pred = np.ones_like(gt)
    found = substitution(pair_counts(pred, gt), 1, [1, 2, 3], share=0.25)
    assert (found.target, found.other_pixels) == (2, 4)
    assert substitution(pair_counts(pred, gt), 7, [1, 7]).target is None  # id 7 never predicted


def frame_with_failures():
    """60x60 frame: positive knife (1) leaks, positive hand (2) is found exactly, negative board (3) is
    segmented under the positive onion's id (4), hand glove (5, negative) absent and not predicted."""
    shape = (60, 60)
    gt = np.zeros(shape, np.uint8)
    gt[square(shape, 5, 5, 10)] = 1
    gt[square(shape, 5, 40, 10)] = 2
    gt[square(shape, 40, 5, 10)] = 3
    gt[square(shape, 40, 40, 4)] = 4
    pred = np.zeros(shape, np.uint8)
    pred[square(shape, 4, 4, 12)] = 1  # knife grown by 1 px: 44 leaked px with a 1 px band
    pred[gt == 2] = 2
    pred[gt == 3] = 4  # onion's prompt segments the cutting board instead
    objects = {1: obj(1, "knife", 4, True), 2: obj(2, "right hand", 301, True), 3: obj(3, "board", 18, False),
               4: obj(4, "onion", 9, True), 5: obj(5, "left glove", 303, False)}
    return pred, gt, objects


def test_accumulator_failure_modes_by_hand():
    pred, gt, objects = frame_with_failures()
    acc = BreakdownAccumulator(band_fraction=1 / 60)  # 1 px band on a 60x60 frame
    acc.add_frame(pred, gt, objects)
    modes = acc.failure_modes()
    assert modes["definitions"]["band_px"] == [1]
    leak = modes["boundary_leakage"]
    # positive samples with P and G non-empty: knife (144 px, 44 in band), hand (100 px, 0 in band);
    # the onion's prediction does not touch the onion (P and G both non-empty, IoU 0).
    assert (leak["samples"], leak["leaking_samples"]) == (3, 1)
    assert (leak["predicted_pixels"], leak["band_pixels"]) == (144 + 100 + 100, 44)
    assert leak["pixel_fraction"] == pytest.approx(44 / 344)
    assert leak["mean_sample_fraction"] == pytest.approx((44 / 144) / 3)
    mis = modes["mislocalisation"]
    assert (mis["low_iou"], mis["mislocalised"], mis["within_band_low_iou"]) == (1, 1, 0)  # the onion
    subs = modes["identity_substitution"]
    assert (subs["samples_with_prediction"], subs["substituted"], subs["positive_as_negative"]) == (3, 1, 1)
    assert subs["positive_as_positive"] == subs["negative_as_positive"] == subs["negative_as_negative"] == 0
    assert subs["pixels_on_other_objects"] == 100
    assert subs["pixel_fraction"] == pytest.approx(100 / 344)
    json.dumps(acc.result(), allow_nan=False)


def test_accumulator_per_class_groups_by_class_id_and_keeps_every_name():
    pred, gt, objects = frame_with_failures()
    objects[6] = obj(6, "chef knife", 4, True)  # same class as the knife, absent from the frame -> TN
    acc = BreakdownAccumulator()
    acc.add_frame(pred, gt, objects)
    acc.add_frame(pred, gt, objects)
    records = {r["class_id"]: r for r in acc.per_class()}
    assert sorted(records) == [4, 9, 18, 301, 303]
    knife = records[4]
    assert knife["names"] == ["chef knife", "knife"]
    assert knife["samples"] == 4 and (knife["TP"], knife["TN"]) == (2, 2)
    assert knife["p_mIoU"] == pytest.approx(100 / 144) and knife["n_mIoU"] is None
    assert records[18]["n_mIoU"] == 0.0 and records[18]["TN"] == 2  # board present, not predicted as board
    assert records[9]["p_mIoU"] == 0.0 and records[9]["gIoU"] == 0.0  # onion's mask is on the board
    assert records[303]["samples"] == 2 and records[303]["n_mIoU"] is None


def test_absent_positive_that_is_predicted_is_counted_separately():
    gt = np.zeros((10, 10), np.uint8)
    pred = np.zeros_like(gt)
    pred[0:2, 0:2] = 1
    acc = BreakdownAccumulator()
    acc.add_frame(pred, gt, {1: obj(1, "cup", 13, True)})
    modes = acc.failure_modes()
    assert modes["mislocalisation"]["absent_positive_predicted"] == 1
    assert modes["boundary_leakage"]["samples"] == 0
    assert modes["boundary_leakage"]["pixel_fraction"] is None  # empty denominator -> null


def test_invalid_band_fraction_is_rejected_up_front():
    with pytest.raises(ValueError, match="band_fraction"):
        BreakdownAccumulator(band_fraction=-0.1)
