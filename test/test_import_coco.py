"""`actiseg import coco` and the COCO exporter: synthetic ground truth -> COCO -> ActionVOS layout round trip,
hand-written COCO files (polygons, uncompressed and compressed RLE) with real JPEG frames, and bad input."""
import csv
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from actiseg_ros.data import actionvos, taxonomy
from actiseg_ros.data.coco import CocoError, decode_segmentation
from actiseg_ros.data.import_coco import NEW_CLASS_BASE, import_coco, named_objects, report_path
from actiseg_ros.data.synth_labels import WEIGHT_BOTH_CUES, WEIGHT_NEGATIVE, WEIGHT_ONE_CUE, WEIGHT_OTHER
from actiseg_ros.tools import coco_export
from conftest import run_actiseg

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

SPLITS = ("train", "val", "val_human")
W, H = 64, 48


def export(root, split, tmp_path):
    coco_file, narrations = tmp_path / ("coco_%s.json" % split), tmp_path / ("narrations_%s.csv" % split)
    assert coco_export.main([str(root), "--split", split, "--out", str(coco_file), "--narrations",
                             str(narrations)]) == 0
    return coco_file, narrations


def flags_by_name(segment):
    return {o.name: (o.class_id, o.handbox, o.narration, o.positive) for o in segment.objects.values()}


def test_round_trip_synthetic_split_equals_the_original(tiny_data, tmp_path):
    """synth tiny -> export COCO (files written with pycocotools RLE) -> `actiseg import coco` (the installed
    command, a real process) -> masks, weights, classes and positives equal the generator's, pixel for pixel."""
    out = tmp_path / "imported"
    for split in SPLITS:
        coco_file, narrations = export(tiny_data, split, tmp_path)
        coco = json.loads(coco_file.read_text())
        assert all(isinstance(a["segmentation"]["counts"], str) for a in coco["annotations"])  # compressed RLE
        done = run_actiseg(["import", "coco", str(coco_file), "--images",
                            str(tiny_data / actionvos.IMAGES / actionvos.split_folder(split)), "--narrations",
                            str(narrations), "--out", str(out), "--split", split])
        assert done.returncode == 0, done.stderr
        assert "contact from attributes" in done.stdout
        original = actionvos.read_split(tiny_data, split).segments
        imported = {s.name: s for s in actionvos.read_split(out, split).segments}
        assert sorted(imported) == sorted(s.name for s in original)
        for segment in original:
            again = imported[segment.name]
            assert again.narration == segment.narration and again.sparse_frames == segment.sparse_frames
            assert (again.verb, again.verb_class, again.noun, again.noun_class) == (
                segment.verb, segment.verb_class, segment.noun, segment.noun_class)
            assert flags_by_name(again) == flags_by_name(segment)
            assert again.extra == segment.extra  # val_human's redundant/missing/other flags
            for frame in segment.sparse_frames:
                for path in (actionvos.annotation_path, actionvos.weight_path):
                    assert np.array_equal(actionvos.read_label_png(path(out, split, segment.name, frame)),
                                          actionvos.read_label_png(path(tiny_data, split, segment.name, frame)))
                assert actionvos.image_path(out, split, segment.name, frame).read_bytes() == \
                    actionvos.image_path(tiny_data, split, segment.name, frame).read_bytes()
        report = json.loads(report_path(out, split).read_text())
        assert report["skipped"]["count"] == 0 and report["sequences"] == len(original)
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    names = {o.name for split in SPLITS for s in actionvos.read_split(tiny_data, split).segments
             for o in s.objects.values()}
    assert vocabulary == sorted(names)
    classes = json.loads((out / "classes.json").read_text())
    assert {n for names in classes.values() for n in names} == names
    assert all(taxonomy.class_of_name(n).class_id == int(k) for k, ns in classes.items() for n in ns)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left


# --- hand-written COCO files -------------------------------------------------------------------------

def write_frames(images_dir, sequence, count):
    rng = np.random.default_rng(len(sequence))
    names = []
    for index in range(count):
        path = images_dir / sequence / ("frame_%010d.jpg" % (10 * index + 3))
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        names.append("%s/%s" % (sequence, path.name))
    return names


def rectangle(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def uncompressed(mask):
    """COCO uncompressed RLE: column-major run lengths starting with a run of zeros."""
    flat = mask.astype(np.uint8).flatten(order="F")
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def compressed(mask):
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def box_mask(x0, y0, x1, y1):
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


@pytest.fixture
def labelled(tmp_path):
    """Two sequences of real JPEG frames and a CVAT-like COCO file with polygons and both RLE forms."""
    images = tmp_path / "frames"
    cut = write_frames(images, "kitchen_cut", 2)
    stir = write_frames(images, "00000007_robot_mix_pot", 1)
    categories = [{"id": 1, "name": "left_hand"}, {"id": 2, "name": "Onion"}, {"id": 3, "name": "knife"},
                  {"id": 4, "name": "garlic press"}, {"id": 5, "name": "right hand"}, {"id": 6, "name": "pot"},
                  {"id": 7, "name": "board"}]
    images_list = [{"id": i + 1, "file_name": f, "width": W, "height": H} for i, f in enumerate(cut + stir)]
    hand = box_mask(0, 30, 12, 48)
    annotations = [
        # frame 1 of kitchen_cut: the hand (uncompressed RLE) touches the garlic press (polygon, 1 px gap);
        # the onion (polygon) is named in the narration; the knife (compressed RLE) is far from the hand.
        {"id": 11, "image_id": 1, "category_id": 1, "segmentation": uncompressed(hand)},
        {"id": 12, "image_id": 1, "category_id": 4, "segmentation": rectangle(13, 30, 20, 40)},
        {"id": 13, "image_id": 1, "category_id": 2, "segmentation": rectangle(30, 5, 40, 15)},
        {"id": 14, "image_id": 1, "category_id": 3, "segmentation": compressed(box_mask(50, 2, 60, 8))},
        # frame 2: the onion again, drawn over the board (later annotation on top); a second onion polygon.
        {"id": 21, "image_id": 2, "category_id": 7, "segmentation": rectangle(20, 20, 44, 40)},
        {"id": 22, "image_id": 2, "category_id": 2, "segmentation": rectangle(30, 25, 36, 31) + rectangle(2, 2, 6, 6)},
        {"id": 31, "image_id": 3, "category_id": 5, "segmentation": uncompressed(box_mask(40, 30, 64, 48))},
        {"id": 32, "image_id": 3, "category_id": 6, "segmentation": rectangle(10, 10, 30, 30)},
    ]
    coco = {"images": images_list, "annotations": annotations, "categories": categories}
    narrations = {"kitchen_cut": "cut the onions with knife", "00000007_robot_mix_pot": "stir the pot"}
    return tmp_path, images, coco, narrations


def write_inputs(folder, coco, narrations):
    coco_file, csv_file = folder / "labels.json", folder / "narrations.csv"
    coco_file.write_text(json.dumps(coco))
    with open(csv_file, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "narration"])
        writer.writerows(sorted(narrations.items()))
    return coco_file, csv_file


def test_hand_written_polygons_and_rle_become_the_layout(labelled):
    tmp_path, images, coco, narrations = labelled
    coco_file, csv_file = write_inputs(tmp_path, coco, narrations)
    out = tmp_path / "data"
    report = import_coco(coco_file, images, csv_file, out, "train")
    assert report["contact_source"] == "masks" and report["skipped"]["count"] == 0
    segments = {s.name: s for s in actionvos.read_split(out, "train").segments}
    # A plain folder gets the next seq_id, its name as video, the narration's verb and first named object.
    assert sorted(segments) == ["00000001_kitchen-cut_cut_onion", "00000007_robot_mix_pot"]
    cut, stir = segments["00000001_kitchen-cut_cut_onion"], segments["00000007_robot_mix_pot"]
    assert cut.sparse_frames == ["frame_0000000003.jpg", "frame_0000000013.jpg"] and (cut.start, cut.end) == (3, 13)
    assert (cut.verb_class, cut.noun_class) == (taxonomy.verb("cut").verb_class,
                                                taxonomy.object_class("onion").class_id)
    press_id = report["classes"]["garlic press"]
    assert report["new_classes"] == ["garlic press"] and press_id >= NEW_CLASS_BASE
    assert flags_by_name(cut) == {
        "board": (18, 0, 0, 0),  # a synonym of chopping board: that class, the category's name kept
        "garlic press": (press_id, 1, 0, 1),  # touches the hand (1 px gap, closed by the contact radius)
        "knife": (4, 0, 1, 1), "left hand": (300, 1, 0, 1), "onion": (16, 0, 1, 1)}
    ids = {o.name: i for i, o in cut.objects.items()}
    assert list(ids) == sorted(ids)
    first = actionvos.read_label_png(actionvos.annotation_path(out, "train", cut.name, cut.sparse_frames[0]))
    assert np.array_equal(first == ids["left hand"], box_mask(0, 30, 12, 48))  # uncompressed RLE: exact
    assert np.array_equal(first == ids["knife"], box_mask(50, 2, 60, 8))  # compressed RLE: exact
    assert (first[31:40, 14:20] == ids["garlic press"]).all() and (first[:, 22:] != ids["garlic press"]).all()
    second = actionvos.read_label_png(actionvos.annotation_path(out, "train", cut.name, cut.sparse_frames[1]))
    assert (second[26:31, 31:36] == ids["onion"]).all()  # painted after the board: on top
    assert (second[3:6, 3:6] == ids["onion"]).all()  # its second polygon
    assert (second[35:40, 22:29] == ids["board"]).all()
    weights = actionvos.read_label_png(actionvos.weight_path(out, "train", cut.name, cut.sparse_frames[1]))
    assert weights[0, 63] == WEIGHT_OTHER and weights[36, 23] == WEIGHT_NEGATIVE and weights[27, 32] == WEIGHT_ONE_CUE
    assert flags_by_name(stir) == {"pot": (29, 0, 1, 1), "right hand": (301, 1, 0, 1)}
    hand_weights = actionvos.read_label_png(actionvos.weight_path(out, "train", stir.name, stir.sparse_frames[0]))
    assert hand_weights[45, 60] == WEIGHT_ONE_CUE and hand_weights[15, 15] == WEIGHT_ONE_CUE
    assert actionvos.image_path(out, "train", cut.name, cut.sparse_frames[0]).read_bytes() == \
        (images / "kitchen_cut" / "frame_0000000003.jpg").read_bytes()
    # The new class and the vocabulary are recorded; a second import (another split) reuses the id.
    assert json.loads((out / "classes.json").read_text())[str(press_id)] == ["garlic press"]
    assert "garlic press" in json.loads((out / "vocabulary.json").read_text())
    import_coco(coco_file, images, csv_file, out, "val")
    assert {o.name: o.class_id for s in actionvos.read_split(out, "val").segments
            for o in s.objects.values()}["garlic press"] == press_id
    assert {s.seq_id for s in actionvos.read_split(out, "val").segments} == {7, 8}  # next free id after train's


def test_contact_attribute_decides_contact_when_the_file_has_one(labelled):
    tmp_path, images, coco, narrations = labelled
    for annotation in coco["annotations"]:
        annotation["attributes"] = {"occluded": False, "in_contact": "true" if annotation["id"] == 14 else False}
    coco_file, csv_file = write_inputs(tmp_path, coco, narrations)
    report = import_coco(coco_file, images, csv_file, tmp_path / "data")
    assert report["contact_source"] == "attributes"
    (cut,) = [s for s in actionvos.read_split(tmp_path / "data", "train").segments if s.video == "kitchen-cut"]
    flags = flags_by_name(cut)
    assert flags["knife"][1] == 1 and flags["garlic press"][1:] == (0, 0, 0)  # attribute, not touching masks
    weights = actionvos.read_label_png(actionvos.weight_path(tmp_path / "data", "train", cut.name,
                                                             cut.sparse_frames[0]))
    assert weights[5, 55] == WEIGHT_BOTH_CUES and weights[35, 16] == WEIGHT_NEGATIVE  # knife 4, press 3


def test_named_objects_use_class_synonyms_whole_words_and_plurals():
    names = ["chopping board", "cup", "left hand", "lid", "pan", "garlic press"]
    assert named_objects("put the lid on the board", names) == {"lid", "chopping board"}
    assert named_objects("wash mugs and pans", names) == {"cup", "pan"}
    assert named_objects("pick up pan lid", names) == {"lid"}  # longest match: not also the pan
    assert named_objects("crush garlic with garlic press", names) == {"garlic press"}
    assert named_objects("cupboard", names) == set()


# --- bad input ---------------------------------------------------------------------------------------

BAD_CASES = {
    "unknown image": (lambda c, n: c["annotations"].append(
        {"id": 99, "image_id": 42, "category_id": 2, "segmentation": rectangle(1, 1, 5, 5)}),
        "annotation id 99: image_id 42 is not an image of the file"),
    "category missing": (lambda c, n: c["annotations"][2].update(category_id=77),
                         "annotation id 13: category_id 77 is not a category of the file"),
    "category id not an integer": (lambda c, n: c["annotations"][2].update(category_id=[2]),
                                   "annotation id 13: category_id [2] is not an integer id"),
    "empty polygon": (lambda c, n: c["annotations"][2].update(segmentation=[[]]),
                      "annotation id 13 of image id 1 (kitchen_cut/frame_0000000003.jpg): polygon 0 is empty"),
    "no polygon": (lambda c, n: c["annotations"][2].update(segmentation=[]), "annotation id 13 of image id 1"),
    "polygon outside the image": (lambda c, n: c["annotations"][2].update(segmentation=rectangle(30, 5, 70, 15)),
                                  "polygon 0 reaches (30..70, 5..15), outside the 64x48 image"),
    "RLE of another size": (lambda c, n: c["annotations"][3].update(segmentation=compressed(np.ones((8, 8), bool))),
                            "annotation id 14 of image id 1 (kitchen_cut/frame_0000000003.jpg): RLE size [8, 8]"),
    "RLE running past the image": (
        lambda c, n: c["annotations"][0]["segmentation"].update(counts=[5, W * H]),
        "annotation id 11 of image id 1 (kitchen_cut/frame_0000000003.jpg): uncompressed RLE counts cover"),
    "malformed RLE string": (lambda c, n: c["annotations"][3]["segmentation"].update(counts="zzzzzzzz"),
                             "annotation id 14 of image id 1 (kitchen_cut/frame_0000000003.jpg): compressed RLE "
                             "counts do not cover the 64x48 image exactly"),
    "narration missing": (lambda c, n: n.pop("00000007_robot_mix_pot"),
                          "sequence 00000007_robot_mix_pot: no narration in the narrations file"),
    "duplicate annotation id": (lambda c, n: c["annotations"][1].update(id=11),
                                "annotation id 11: duplicate annotation id (2 entries)"),
    "duplicate image id": (lambda c, n: c["images"][2].update(id=2), "image id 2: duplicate image id (2 entries)"),
    "image file missing": (lambda c, n: c["images"][2].update(file_name="00000007_robot_mix_pot/gone.jpg"),
                           "image id 3 (00000007_robot_mix_pot/gone.jpg): image file"),
    "image of another size": (lambda c, n: c["images"][0].update(width=65),
                              "the COCO entry says 65x48, the file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_an_error_naming_the_item_and_nothing_is_written(labelled, case):
    tmp_path, images, coco, narrations = labelled
    change, message = BAD_CASES[case]
    change(coco, narrations)
    coco_file, csv_file = write_inputs(tmp_path, coco, narrations)
    with pytest.raises(CocoError) as raised:
        import_coco(coco_file, images, csv_file, tmp_path / "data")
    assert message in str(raised.value)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("case", ["empty polygon", "narration missing", "unknown image", "duplicate image id"])
def test_skip_bad_leaves_out_the_frame_or_sequence_and_reports_it(labelled, case):
    tmp_path, images, coco, narrations = labelled
    counts = {"empty polygon": 1, "narration missing": 1, "unknown image": 1,
              "duplicate image id": 3}  # the duplicate, and the two annotations of the image id that went
    change, message = BAD_CASES[case]
    change(coco, narrations)
    coco_file, csv_file = write_inputs(tmp_path, coco, narrations)
    out = tmp_path / "data"
    done = run_actiseg(["import", "coco", str(coco_file), "--images", str(images), "--narrations", str(csv_file),
                        "--out", str(out), "--skip-bad"])
    assert done.returncode == 0, done.stderr
    assert "skipped %d item(s)" % counts[case] in done.stdout and message.split(": ")[-1][:30] in done.stdout
    report = json.loads(report_path(out, "train").read_text())
    assert report["skipped"]["count"] == counts[case] == len(report["skipped"]["items"])
    assert any(message.split(": ")[-1][:30] in item["reason"] for item in report["skipped"]["items"])
    segments = actionvos.read_split(out, "train").segments  # what is left reads back cleanly
    frames = sum(len(s.sparse_frames) for s in segments)
    expected = {"empty polygon": 2, "narration missing": 2, "unknown image": 3, "duplicate image id": 1}[case]
    assert frames == expected


def test_command_line_errors_are_clear_and_leave_no_output(labelled):
    tmp_path, images, coco, narrations = labelled
    coco["annotations"][2]["segmentation"] = [[]]
    coco_file, csv_file = write_inputs(tmp_path, coco, narrations)
    done = run_actiseg(["import", "coco", str(coco_file), "--images", str(images), "--narrations", str(csv_file),
                        "--out", str(tmp_path / "data")])
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("actiseg import coco: annotation id 13 of image id 1 "
                                   "(kitchen_cut/frame_0000000003.jpg): polygon 0 is empty")
    assert not (tmp_path / "data").exists()
    missing = run_actiseg(["import", "coco", str(tmp_path / "nope.json"), "--images", str(images), "--narrations",
                           str(csv_file), "--out", str(tmp_path / "data")])
    assert missing.returncode != 0 and "nope.json: file not found" in missing.stderr


def test_an_existing_split_is_kept_unless_overwrite(labelled):
    tmp_path, images, coco, narrations = labelled
    coco_file, csv_file = write_inputs(tmp_path, coco, narrations)
    out = tmp_path / "data"
    import_coco(coco_file, images, csv_file, out)
    before = actionvos.image_set_path(out, "train").read_bytes()
    with pytest.raises(CocoError, match="already exists"):
        import_coco(coco_file, images, csv_file, out)
    coco["annotations"] = coco["annotations"][:4]  # relabelled: only the first frame
    write_inputs(tmp_path, coco, narrations)
    report = import_coco(coco_file, images, csv_file, out, overwrite=True)
    assert report["sequences"] == 1 and actionvos.image_set_path(out, "train").read_bytes() != before
    assert [p.name for p in (out / actionvos.IMAGES / "train").iterdir()] == ["00000001_kitchen-cut_cut_onion"]


def test_decode_rejects_what_pycocotools_would_misread():
    with pytest.raises(CocoError, match="coordinates"):
        decode_segmentation([[1, 2, 3, 4]], H, W)
    with pytest.raises(CocoError, match="not a finite number"):
        decode_segmentation([[1, 2, 3, float("nan"), 5, 6]], H, W)
    with pytest.raises(CocoError, match="no pixel"):
        decode_segmentation({"size": [H, W], "counts": [H * W]}, H, W)
    for short in ("", "0", "52"):  # compressed strings whose runs stop short decode to garbage in pycocotools
        with pytest.raises(CocoError, match="do not cover"):
            decode_segmentation({"size": [H, W], "counts": short}, H, W)
    full = decode_segmentation({"size": [H, W], "counts": [0, H * W]}, H, W)
    assert full.all() and full.shape == (H, W)


def test_labels_for_a_recorded_bag_import(tmp_path):
    """The loop's real files: a bag written with rosbags -> `actiseg import bag` -> a labelling tool's COCO
    export of its frames (file_name relative to the import's JPEGImages_Sparse/val, masks encoded by
    pycocotools) -> `actiseg import coco` with the narrations.csv the bag import wrote."""
    from bag_helpers import ACTION_TOPIC, sample_frames, write_bag

    frames = sample_frames(6, size=(W, H))
    bag = write_bag(tmp_path / "robot_run", "mcap", frames, [(frames[0][0] - 1, "crush garlic with garlic press")])
    recorded = tmp_path / "recorded"
    done = run_actiseg(["import", "bag", str(bag), "--image-topic", "camera/image_raw", "--action-topic",
                        ACTION_TOPIC, "--out", str(recorded), "--every", "2"])
    assert done.returncode == 0, done.stderr
    images = recorded / actionvos.IMAGES / "val"
    (sequence,) = [p.name for p in images.iterdir()]
    files = sorted(images.glob("%s/*.jpg" % sequence))
    categories = [{"id": 1, "name": "right hand"}, {"id": 2, "name": "garlic press"}, {"id": 3, "name": "bowl"}]
    coco = {"images": [], "annotations": [], "categories": categories}
    for index, path in enumerate(files):
        coco["images"].append({"id": index + 1, "file_name": "%s/%s" % (sequence, path.name), "width": W,
                               "height": H})
        for category, box in ((1, (40, 30, 64, 48)), (2, (30, 20, 40, 32)), (3, (2, 2, 14, 12))):
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": index + 1,
                                        "category_id": category, "segmentation": compressed(box_mask(*box)),
                                        "iscrowd": 0})
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(coco))
    data = tmp_path / "data"
    done = run_actiseg(["import", "coco", str(labels), "--images", str(images), "--narrations",
                        str(recorded / "narrations.csv"), "--out", str(data)])
    assert done.returncode == 0, done.stderr
    (segment,) = actionvos.read_split(data, "train").segments
    assert segment.name == sequence and segment.narration == "crush garlic with garlic press"
    assert segment.sparse_frames == [p.name for p in files]
    report = json.loads(report_path(data, "train").read_text())
    press = report["classes"]["garlic press"]
    assert report["new_classes"] == ["garlic press"] and report["contact_source"] == "masks"
    assert flags_by_name(segment) == {"bowl": (7, 0, 0, 0), "garlic press": (press, 1, 1, 1),
                                      "right hand": (301, 1, 0, 1)}
    assert "garlic press" in json.loads((data / "vocabulary.json").read_text())
