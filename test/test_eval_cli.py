"""`actiseg eval` on a small ActionVOS-layout data set written with LayoutWriter in tmp_path."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from actiseg_ros import cli
from actiseg_ros.data.actionvos import LayoutWriter, ObjectInfo, Segment, annotation_path, write_label_png
from actiseg_ros.evaluation.eval_cli import prediction_path
from actiseg_ros.evaluation.metrics import SUMMARY_KEYS

H, W = 24, 32
SPLIT = "val_human"


def rect(labels, value, top, bottom, left, right):
    labels[top:bottom, left:right] = value


def segment(seq_id, verb, noun, frames, objects, **flags):
    infos = {k: ObjectInfo(id=k, name=name, class_id=class_id, handbox=int(pos), narration=0, positive=int(pos))
             for k, (name, class_id, pos) in objects.items()}
    extra = {"redundant": False, "missing": False, "other": False}
    extra.update(flags)
    return Segment(seq_id=seq_id, video="P01_01", start=0, end=100, narration="%s %s" % (verb, noun), verb=verb,
                   verb_class=0, noun=noun, noun_class=0, sparse_frames=frames, objects=infos, extra=extra)


@pytest.fixture
def data(tmp_path):
    """Segments A (2 frames) and C (1 frame) are evaluable; B is flagged redundant and must be skipped.

    Returns (root, {seq name: (Segment, [gt labels per frame])}).
    """
    seg_a = segment(1, "cut", "onion", ["frame_0000000010.jpg", "frame_0000000020.jpg"],
                    {1: ("knife", 4, True), 2: ("board", 18, False), 3: ("onion", 9, True)})
    a1 = np.zeros((H, W), np.uint8)
    rect(a1, 1, 2, 6, 2, 10)  # knife 32 px
    rect(a1, 2, 10, 20, 0, 16)  # board 160 px; onion absent
    a2 = np.zeros((H, W), np.uint8)
    rect(a2, 1, 2, 6, 2, 10)
    rect(a2, 3, 12, 16, 20, 28)  # onion 32 px; board absent
    seg_c = segment(2, "take", "cup", ["frame_0000000030.jpg"], {1: ("cup", 13, True), 2: ("right hand", 301, True)})
    c1 = np.zeros((H, W), np.uint8)
    rect(c1, 1, 0, 8, 0, 8)
    rect(c1, 2, 16, 24, 24, 32)
    seg_b = segment(3, "wash", "plate", ["frame_0000000040.jpg"], {1: ("plate", 7, True)}, redundant=True)
    b1 = np.zeros((H, W), np.uint8)
    rect(b1, 1, 5, 10, 5, 10)  # 25 px
    root = tmp_path / "data"
    writer = LayoutWriter(root)
    content = {}
    for seg, labels in ((seg_a, [a1, a2]), (seg_b, [b1]), (seg_c, [c1])):
        images = [np.full((H, W, 3), 90, np.uint8) for _ in labels]
        writer.add(SPLIT, seg, images, labels)
        content[seg.name] = (seg, labels)
    writer.close()
    return root, content


def write_predictions(pred_dir, content, make):
    """make(segment, gt labels) -> predicted labels, for every frame of every segment."""
    for seg, labels in content.values():
        for frame, gt in zip(seg.sparse_frames, labels):
            write_label_png(prediction_path(pred_dir, seg.name, frame), make(seg, gt))


def perfect(seg, gt):
    pred = gt.copy()
    for k, info in seg.objects.items():
        if not info.positive:
            pred[pred == k] = 0
    return pred


def empty(seg, gt):
    return np.zeros_like(gt)


def run_eval(capsys, root, pred_dir, out_json, *extra):
    rc = cli.main(["eval", "--pred", str(pred_dir), "--data", str(root), "--split", SPLIT,
                   "--json", str(out_json), *extra])
    captured = capsys.readouterr()
    result = json.loads(out_json.read_text()) if rc == 0 else None
    return rc, result, captured


def test_perfect_predictions_score_one(data, tmp_path, capsys):
    root, content = data
    write_predictions(tmp_path / "pred", content, perfect)
    rc, result, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 0, captured.err
    assert tuple(result) == SUMMARY_KEYS
    assert result["p_mIoU"] == result["p_cIoU"] == result["gIoU"] == result["acc"] == 1.0
    assert result["n_mIoU"] == result["n_cIoU"] == 0.0  # the board is present and (rightly) not segmented
    assert (result["TP"], result["TN"], result["FP"], result["FN"]) == (5, 3, 0, 0)
    assert result["videos"] == 2  # the flagged segment is not scored
    assert "100.0" in captured.out and "p-mIoU" in captured.out and "frames/s" in captured.out
    assert "flagged" in captured.err


def test_empty_predictions_by_hand(data, tmp_path, capsys):
    root, content = data
    write_predictions(tmp_path / "pred", content, empty)
    rc, result, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 0, captured.err
    # A f1: knife FN, board TN (IoU 0 into n-mIoU), onion absent TN; A f2: knife FN, board absent TN,
    # onion FN; C: cup FN, hand FN.
    assert (result["TP"], result["TN"], result["FP"], result["FN"]) == (0, 3, 0, 5)
    assert result["acc"] == result["gIoU"] == pytest.approx(3 / 8)
    assert result["p_mIoU"] == result["p_cIoU"] == result["n_mIoU"] == result["n_cIoU"] == 0.0
    assert "37.5" in captured.out


def test_flagged_segment_is_dropped_unless_asked(data, tmp_path, capsys):
    root, content = data

    def garbage_for_flagged(seg, gt):
        return np.ones_like(gt) if seg.extra["redundant"] else perfect(seg, gt)

    write_predictions(tmp_path / "pred", content, garbage_for_flagged)
    rc, result, _ = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 0 and result["p_mIoU"] == 1.0 and result["videos"] == 2
    rc, result, _ = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json", "--include-flagged")
    assert rc == 0 and result["videos"] == 3
    plate_iou = 25 / (H * W)  # the plate's whole-frame prediction: TP with IoU 25/768
    assert result["TP"] == 6
    assert result["p_mIoU"] == pytest.approx((5 + plate_iou) / 6)
    assert result["gIoU"] == pytest.approx((8 + plate_iou) / 9)


def test_missing_prediction_is_an_error_naming_the_file(data, tmp_path, capsys):
    root, content = data
    write_predictions(tmp_path / "pred", content, perfect)
    seg_a = content["00000001_P01_01_cut_onion"][0]
    missing = prediction_path(tmp_path / "pred", seg_a.name, seg_a.sparse_frames[1])
    missing.unlink()
    rc, _, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 2
    assert str(missing) in captured.err and "--missing-as-empty" in captured.err
    assert not (tmp_path / "m.json").exists()


def test_missing_as_empty_scores_the_frame_as_an_empty_mask(data, tmp_path, capsys):
    root, content = data
    write_predictions(tmp_path / "pred", content, perfect)
    seg_a = content["00000001_P01_01_cut_onion"][0]
    prediction_path(tmp_path / "pred", seg_a.name, seg_a.sparse_frames[1]).unlink()
    rc, result, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json", "--missing-as-empty")
    assert rc == 0, captured.err
    # A f2 empty: knife FN, board absent TN, onion FN; the rest perfect.
    assert (result["TP"], result["TN"], result["FP"], result["FN"]) == (3, 3, 0, 2)
    assert result["p_mIoU"] == pytest.approx(3 / 5)
    assert result["acc"] == pytest.approx(6 / 8)
    assert "scored as empty" in captured.err


def test_skip_bad_leaves_out_the_whole_segment(data, tmp_path, capsys):
    root, content = data
    write_predictions(tmp_path / "pred", content, empty)
    seg_a = content["00000001_P01_01_cut_onion"][0]
    prediction_path(tmp_path / "pred", seg_a.name, seg_a.sparse_frames[1]).unlink()
    rc, result, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json", "--skip-bad")
    assert rc == 0, captured.err
    assert result["videos"] == 1 and (result["TP"], result["TN"], result["FP"], result["FN"]) == (0, 0, 0, 2)
    assert "skipped" in captured.err and seg_a.name in captured.err


def test_wrong_size_prediction_is_an_error_naming_the_file(data, tmp_path, capsys):
    root, content = data
    write_predictions(tmp_path / "pred", content, perfect)
    seg_c = content["00000002_P01_01_take_cup"][0]
    bad = prediction_path(tmp_path / "pred", seg_c.name, seg_c.sparse_frames[0])
    write_label_png(bad, np.zeros((H - 1, W), np.uint8))
    rc, _, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 2
    assert str(bad) in captured.err and "%dx%d" % (W, H - 1) in captured.err


def test_rgb_prediction_is_an_error_naming_the_file(data, tmp_path, capsys):
    root, content = data
    write_predictions(tmp_path / "pred", content, perfect)
    seg_c = content["00000002_P01_01_take_cup"][0]
    bad = prediction_path(tmp_path / "pred", seg_c.name, seg_c.sparse_frames[0])
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(bad)
    rc, _, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 2 and str(bad) in captured.err and "RGB" in captured.err


def test_unknown_predicted_ids_are_ignored_with_a_warning(data, tmp_path, capsys):
    root, content = data

    def with_stray(seg, gt):
        pred = perfect(seg, gt)
        pred[pred == 0] = 9  # id 9 is no object of any segment
        return pred

    write_predictions(tmp_path / "pred", content, with_stray)
    rc, result, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 0, captured.err
    assert result["acc"] == result["p_mIoU"] == 1.0 and result["FP"] == 0
    assert "not in object_classes" in captured.err and "[9]" in captured.err


def test_ground_truth_with_unlisted_id_is_a_data_error(data, tmp_path, capsys):
    root, content = data
    write_predictions(tmp_path / "pred", content, perfect)
    seg_c, labels = content["00000002_P01_01_take_cup"]
    gt_file = annotation_path(root, SPLIT, seg_c.name, seg_c.sparse_frames[0])
    broken = labels[0].copy()
    broken[0, 31] = 7
    write_label_png(gt_file, broken)
    rc, _, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 2 and str(gt_file) in captured.err and "[7]" in captured.err


def test_missing_prediction_folder_and_nothing_scored(data, tmp_path, capsys):
    root, content = data
    rc, _, captured = run_eval(capsys, root, tmp_path / "nowhere", tmp_path / "m.json")
    assert rc == 2 and "nowhere" in captured.err
    (tmp_path / "pred").mkdir()
    rc, _, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json", "--skip-bad")
    assert rc == 2 and "no segment" in captured.err


def test_breakdown_json(data, tmp_path, capsys):
    root, content = data

    def onion_on_board(seg, gt):
        pred = perfect(seg, gt)
        if seg.noun == "onion":
            pred[gt == 2] = 3  # the onion's prompt segments the (negative) board in frame 1
        return pred

    write_predictions(tmp_path / "pred", content, onion_on_board)
    out2 = tmp_path / "breakdown.json"
    rc, result, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json", "--breakdown-json", str(out2))
    assert rc == 0, captured.err
    document = json.loads(out2.read_text())
    classes = {r["class_id"]: r for r in document["per_class"]}
    assert sorted(classes) == [4, 9, 13, 18, 301]
    assert classes[9]["names"] == ["onion"] and classes[9]["FP"] == 1 and classes[9]["TP"] == 1
    subs = document["failure_modes"]["identity_substitution"]
    assert (subs["substituted"], subs["positive_as_negative"]) == (1, 1)
    leak = document["failure_modes"]["boundary_leakage"]
    assert leak["band_pixels"] == 0 and leak["pixel_fraction"] == 0.0
    assert document["input"]["videos"] == result["videos"] == 2
    assert document["input"]["flagged_segments_left_out"] == 1


def test_real_layout_with_extra_fields_is_accepted(data, tmp_path, capsys):
    """ActionVOS's own files carry keys we do not use; they must not disturb evaluation."""
    root, content = data
    image_set = root / "ImageSets" / (SPLIT + ".json")
    entries = json.loads(image_set.read_text())
    for entry in entries:
        entry["unused_field"] = [1, 2]
        for info in entry["object_classes"].values():
            info["class_id_org"] = info["class_id"]
    image_set.write_text(json.dumps(entries))
    shutil.rmtree(root / "JPEGImages_Sparse")  # scoring needs the annotations only
    write_predictions(tmp_path / "pred", content, perfect)
    rc, result, captured = run_eval(capsys, root, tmp_path / "pred", tmp_path / "m.json")
    assert rc == 0, captured.err
    assert result["acc"] == 1.0 and result["videos"] == 2


def test_band_fraction_must_be_positive(data, tmp_path, capsys):
    root, _ = data
    with pytest.raises(SystemExit):
        cli.main(["eval", "--pred", str(tmp_path), "--data", str(root), "--band-fraction", "0"])
    assert "positive" in capsys.readouterr().err
