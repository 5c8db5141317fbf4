"""`actiseg import visor` on VISOR-format fixtures written from ../shared/spec/visor-import.md (test/visor_fixtures).

Expected outputs are derived by hand from the spec: rectangles filled at 1920x1080 (corner pixels inclusive),
reduced to 854x480 with the spec's nearest rule (column floor((i + 0.5) * 1920 / 854) except 479 and 1439 at
columns 213 and 640, row floor((j + 0.5) * 1080 / 480)), written out here rather than taken from the import.
"""
from __future__ import annotations

import copy
import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from actiseg_ros.data import actionvos
from actiseg_ros.data.import_visor import import_visor
from actiseg_ros.data.visor_rules import VisorError, narration_key
from conftest import run_actiseg
from visor_fixtures import Frame, Hos, Row, Video, davis_palette, entity, flat_rect, frame_image, rect, write_visor

# --- the fixture ----------------------------------------------------------------------------------------
# Rectangles (x0, y0, x1, y1), corner pixels inclusive, at 1920x1080.
BOARD = (200, 200, 999, 799)
CUP = (400, 300, 599, 499)
HAND_100 = (900, 700, 1299, 999)  # overlaps the board in x 900..999, y 700..799
HAND_200 = (1500, 100, 1799, 399)
LID_200 = (1300, 800, 1439, 999)  # right edge 1439: Pillow samples it for output column 640
KNIFE = (1000, 100, 1299, 399)
KNIFE_HOLE = (1100, 200, 1199, 299)  # second polygon of the knife: even-odd leaves its interior empty
BOX_200 = (450, 350, 549, 449)  # in-contact box [450, 350, 100, 100]: inside the cup, the board hidden under it
CONTACT_200 = (700, 600, 799, 699)  # an in-contact segmentation away from the box, on the board
DRAWER_300 = (100, 100, 299, 299)
LID_300 = (800, 500, 999, 699)
LEFT_300 = (1000, 500, 1199, 699)
BOX_300 = (950, 550, 1049, 649)  # [950, 550, 100, 100]: over the lid and the left hand
CONTACT_300 = (950, 550, 999, 649)  # the lid's part inside the box
DRAWER_400A = (100, 100, 299, 299)
DRAWER_400B = (300, 100, 499, 299)
LEFT_400 = (250, 250, 449, 449)
PAN = (100, 100, 479, 499)  # right edge 479: Pillow samples it for output column 213
SPONGE = (300, 300, 699, 699)
BOWL = (100, 100, 399, 399)
LEFT_VAL = (300, 300, 599, 599)


def fixture_spec():
    """(videos, rows, hos) of the standard fixture; see the test docstrings for what each part exercises."""
    cup_200 = [[400, 300.7], [599.9, 300.7], [599.9, 499], [400, 499]]  # truncation: still CUP
    p01 = Video("P01_101", "train", [
        Frame(100, 102, [entity("chopping board", 18, rect(*BOARD)), entity("cup", 13, rect(*CUP)),
                         entity("right hand", 301, rect(*HAND_100)), entity("tap", 0, [])]),
        Frame(200, 202, [entity("chopping board", 18, rect(*BOARD)), entity("cup", 13, cup_200),
                         entity("right hand", 301, rect(*HAND_200)), entity("lid", 6, rect(*LID_200)),
                         entity("knife", 4, rect(*KNIFE), rect(*KNIFE_HOLE))]),
        Frame(300, 302, [entity("drawer", 3, rect(*DRAWER_300)), entity("lid", 6, rect(*LID_300)),
                         entity("left hand", 300, rect(*LEFT_300)), entity("cup", 13)]),
        Frame(400, 402, [entity("drawer", 3, rect(*DRAWER_400A)), entity("drawer", 8, rect(*DRAWER_400B)),
                         entity("left hand", 300, rect(*LEFT_400))]),
        Frame(450, 452, []),
        Frame(500, 502, [entity("pan", 5, rect(*PAN))]),
        Frame(600, 602, [entity("bowl", 7)]),
        Frame(700, 702, [entity("left hand", 300)]),
    ])
    p03 = Video("P03_02", "train", [
        Frame(10, 11, [entity("pan", 5, rect(*PAN))]),
        Frame(20, 21, [entity("pan", 5, rect(*PAN)), entity("Sponge", 9, rect(*SPONGE))]),
    ])
    p02 = Video("P02_09", "val", [
        Frame(1000, 1001, [entity("bowl", 7, rect(*BOWL)), entity("left hand", 300, rect(*LEFT_VAL))]),
        Frame(1100, 1101, [entity("bowl", 7, rect(*BOWL))]),
    ])
    no_rows = Video("P09_01", "train", [Frame(5, 5, [entity("cup", 13, rect(*CUP))]),
                                        Frame(6, 6, [entity("cup", 13, rect(*CUP))])])
    no_json = Video("P04_04", "train", [Frame(5, 5), Frame(6, 6)], annotated=False, images=False)
    videos = [p03, p01, no_rows, no_json, p02]  # mapping key order: P03_02 first although it sorts later
    rows = [
        Row("P01_101_10", 100, 200, "take cup", "take", 0, "cup", 13, [13]),
        Row("P01_101_2", 490, 520, "wash pan", "wash", 2, "pan", 5, [5]),  # one frame (500): dropped
        Row("P01_101_11", 150, 300, "put lid on board", "put-on", 1, "board:chopping", 18, [6, 18]),
        Row("P01_101_3", 510, 590, "pick up bowl", "take", 0, "bowl", 7, [7]),  # no frame: dropped
        Row("P01_101_9", 300, 450, "open drawer", "open", 3, "drawer", 8, [8, 11]),
        Row("P01_101_4", 600, 700, "wash bowl", "wash", 2, "bowl", 7, [7]),  # no segments: dropped
        Row("P03_02_1", 10, 20, "wash pan", "wash", 2, "pan", 5, [5], table="validation"),
        Row("P04_04_1", 5, 6, "take cup", "take", 0, "cup", 13, [13]),  # no annotation file: skipped
        Row("P02_09_1", 1000, 1100, "wash bowl", "wash", 2, "bowl", 7, [7]),  # val video in the train table
    ]
    hos = {
        "train": [Hos("P01_101_frame_0000000202.jpg", 2, [450, 350, 100, 100],
                      [flat_rect(*BOX_200), flat_rect(*CONTACT_200)]),
                  Hos("P01_101_frame_0000000202.jpg", 1, [1500, 100, 300, 300], [flat_rect(*HAND_200)]),
                  Hos("P01_101_frame_0000000302.jpg", 2, [950, 550, 100, 100], [flat_rect(*CONTACT_300)]),
                  Hos("P01_101_frame_0000000302.jpg", 1, [1000, 500, 200, 200], [flat_rect(*LEFT_300)]),
                  Hos("P01_101_frame_0000000402.jpg", 1, [250, 250, 200, 200], [flat_rect(*LEFT_400)]),
                  # a val frame in the train file: the HOS file of a split is used for that split only
                  Hos("P02_09_frame_0000001001.jpg", 2, [100, 100, 300, 300], [flat_rect(*BOWL)])],
        "val": [Hos("P02_09_frame_0000009999.jpg", 2, [0, 0, 10, 10], [flat_rect(0, 0, 9, 9)])],
    }
    return videos, rows, hos


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The standard fixture imported once with the installed command (two worker processes)."""
    base = tmp_path_factory.mktemp("visor")
    visor, annotations = write_visor(base / "in", *fixture_spec())
    out = base / "out"
    done = run_actiseg(["import", "visor", "--visor", str(visor), "--annotations", str(annotations),
                        "--out", str(out), "--jobs", "2"], timeout=300)
    assert done.returncode == 0, done.stderr
    return out, visor, done.stdout


# --- hand-derived expectations --------------------------------------------------------------------------

def canvas(*fills, base: int = 0) -> np.ndarray:
    """A 1080x1920 uint8 canvas with the given (x0, y0, x1, y1, value) rectangles painted in order."""
    out = np.full((1080, 1920), base, np.uint8)
    for x0, y0, x1, y1, value in fills:
        out[y0:y1 + 1, x0:x1 + 1] = value
    return out


def spec_nearest(full: np.ndarray) -> np.ndarray:
    cols = (2 * np.arange(854) + 1) * 1920 // (2 * 854)
    cols[213], cols[640] = 479, 1439
    rows = (2 * np.arange(480) + 1) * 1080 // (2 * 480)
    return full[np.ix_(rows, cols)]


def read_png(out, tree, split, seq, frame):
    path = out / tree / split / seq / frame.replace(".jpg", ".png")
    with Image.open(path) as image:
        assert image.mode == "P" and image.size == (854, 480)
        assert image.getpalette()[:768] == davis_palette()
        return np.asarray(image)


def image_set(out, split):
    return json.loads((out / "ImageSets" / ("%s.json" % split)).read_text(encoding="utf-8"))


def flags(entry):
    return {o["name"]: (o["class_id"], o["handbox"], o["narration"], o["positive"])
            for o in entry["object_classes"].values()}


# --- the tests ------------------------------------------------------------------------------------------

def test_sequences_ids_order_and_fields(imported):
    """Videos in frame_mapping key order (P03_02 first), actions by narration-id numbers (_9 before _10), ids
    contiguous over kept actions only (dropped: one sparse frame, none, no segments), restart at 1 for val;
    videos without EPIC rows or without annotation file are skipped; tables serve both splits."""
    out, _, stdout = imported
    train = image_set(out, "train")
    assert [(e["seq_id"], e["video"], e["verb"], e["noun"]) for e in train] == [
        (1, "P03_02", "wash", "pan"), (2, "P01_101", "open", "drawer"), (3, "P01_101", "take", "cup"),
        (4, "P01_101", "put-on", "board:chopping")]
    assert list(train[1]) == ["seq_id", "video", "start", "narration", "verb", "verb_class", "noun", "noun_class",
                              "end", "sparse_frames", "object_classes"]
    assert train[1]["start"] == 300 and train[1]["end"] == 450 and train[1]["verb_class"] == 3
    assert train[1]["noun_class"] == 8 and train[1]["narration"] == "open drawer"
    assert [e["sparse_frames"] for e in train] == [
        ["frame_0000000010.jpg", "frame_0000000020.jpg"],
        ["frame_0000000300.jpg", "frame_0000000400.jpg", "frame_0000000450.jpg"],
        ["frame_0000000100.jpg", "frame_0000000200.jpg"],
        ["frame_0000000200.jpg", "frame_0000000300.jpg"]]
    val = image_set(out, "val")
    assert [(e["seq_id"], e["video"], e["sparse_frames"]) for e in val] == [
        (1, "P02_09", ["frame_0000001000.jpg", "frame_0000001100.jpg"])]
    folders = ["00000001_P03_02_wash_pan", "00000002_P01_101_open_drawer", "00000003_P01_101_take_cup",
               "00000004_P01_101_put-on_board:chopping"]
    for tree in ("JPEGImages_Sparse", "Annotations_Sparse", "Weights_Sparse"):
        assert sorted(p.name for p in (out / tree / "train").iterdir()) == folders
        assert [p.name for p in (out / tree / "val").iterdir()] == ["00000001_P02_09_wash_bowl"]
    ext = {"JPEGImages_Sparse": ".jpg", "Annotations_Sparse": ".png", "Weights_Sparse": ".png"}
    for entry, folder in zip(train, folders):
        for tree, suffix in ext.items():
            names = sorted(p.name for p in (out / tree / "train" / folder).iterdir())
            assert names == [f.replace(".jpg", suffix) for f in entry["sparse_frames"]]
    text = (out / "ImageSets" / "train.json").read_text(encoding="utf-8")
    assert text == json.dumps(train) and not text.endswith("\n")  # one line, default separators
    assert "finished for train set. 4 actions, 9 sparse frames" in stdout
    assert "finished for val set. 1 actions, 2 sparse frames" in stdout
    assert not list(out.parent.glob(".out.visor-import-*"))  # no stage left behind


def test_object_ids_and_action_aware_labels(imported):
    """Ids by code-point order of names (uppercase first); class id last seen wins; handbox from hand names
    (even with empty segments) and from entities visible in an in-contact box (a board hidden under the cup
    there does not join); narration by class id only (noun 'hand' 11 never matches left hand 300)."""
    out, _, _ = imported
    train = image_set(out, "train")
    assert {k: v["name"] for k, v in train[0]["object_classes"].items()} == {"1": "Sponge", "2": "pan"}
    assert flags(train[0]) == {"Sponge": (9, 0, 0, 0), "pan": (5, 0, 1, 1)}
    assert list(train[1]["object_classes"]) == ["1", "2", "3"]
    assert flags(train[1]) == {"drawer": (8, 0, 1, 1), "left hand": (300, 1, 0, 1), "lid": (6, 1, 0, 1)}
    assert [o["name"] for o in train[2]["object_classes"].values()] == [
        "chopping board", "cup", "knife", "lid", "right hand", "tap"]
    assert flags(train[2]) == {"chopping board": (18, 0, 0, 0), "cup": (13, 1, 1, 1), "knife": (4, 0, 0, 0),
                               "lid": (6, 0, 0, 0), "right hand": (301, 1, 0, 1), "tap": (0, 0, 0, 0)}
    assert flags(train[3]) == {"chopping board": (18, 0, 1, 1), "cup": (13, 1, 0, 1), "drawer": (3, 0, 0, 0),
                               "knife": (4, 0, 0, 0), "left hand": (300, 1, 0, 1), "lid": (6, 1, 1, 1),
                               "right hand": (301, 1, 0, 1)}
    assert list(train[2]["object_classes"]["2"]) == ["name", "class_id", "handbox", "narration", "positive"]
    val = image_set(out, "val")
    assert flags(val[0]) == {"bowl": (7, 0, 1, 1), "left hand": (300, 1, 0, 1)}


def knife(value):
    return [KNIFE + (value,)]


def test_masks_pixel_for_pixel(imported):
    """Entities painted in annotation order (later on top), polygons truncated, even-odd inside one entity,
    same-name entities share an id, a frame without segments is an all-zero mask, ids differ per action."""
    out, _, _ = imported
    seq = "00000003_P01_101_take_cup"  # ids: board 1, cup 2, knife 3, lid 4, right hand 5, tap 6
    full = canvas(BOARD + (1,), CUP + (2,), HAND_100 + (5,))
    full[0, 0] = 6  # the tap's empty polygon fills pixel (0, 0)
    assert np.array_equal(read_png(out, "Annotations_Sparse", "train", seq, "frame_0000000100.jpg"),
                          spec_nearest(full))
    full = canvas(BOARD + (1,), CUP + (2,), HAND_200 + (5,), LID_200 + (4,), KNIFE + (3,))
    full[201:299, 1101:1199] = 0  # the hole: the inner outline stays filled
    assert np.array_equal(read_png(out, "Annotations_Sparse", "train", seq, "frame_0000000200.jpg"),
                          spec_nearest(full))
    seq = "00000004_P01_101_put-on_board:chopping"  # board 1, cup 2, drawer 3, knife 4, left 5, lid 6, right 7
    full = canvas(BOARD + (1,), CUP + (2,), HAND_200 + (7,), LID_200 + (6,), KNIFE + (4,))
    full[201:299, 1101:1199] = 0
    assert np.array_equal(read_png(out, "Annotations_Sparse", "train", seq, "frame_0000000200.jpg"),
                          spec_nearest(full))
    full = canvas(DRAWER_300 + (3,), LID_300 + (6,), LEFT_300 + (5,))
    assert np.array_equal(read_png(out, "Annotations_Sparse", "train", seq, "frame_0000000300.jpg"),
                          spec_nearest(full))
    seq = "00000002_P01_101_open_drawer"  # drawer 1, left hand 2, lid 3
    full = canvas(DRAWER_400A + (1,), DRAWER_400B + (1,), LEFT_400 + (2,))
    assert np.array_equal(read_png(out, "Annotations_Sparse", "train", seq, "frame_0000000400.jpg"),
                          spec_nearest(full))
    assert not read_png(out, "Annotations_Sparse", "train", seq, "frame_0000000450.jpg").any()
    full = canvas(PAN + (2,), SPONGE + (1,))
    assert np.array_equal(read_png(out, "Annotations_Sparse", "train", "00000001_P03_02_wash_pan",
                                   "frame_0000000020.jpg"), spec_nearest(full))


def test_weight_maps_pixel_for_pixel(imported):
    """Spec section 7 including its surprises: narration objects 2 (4 inside an in-contact box), handbox-only
    positives never drawn (previous value stays), in HOS frames objects touching a box are not drawn while
    the others are 3 even when positive (a hand), O's segmentation gives 2 where nothing was drawn, frames
    with hand rows only are not HOS frames, a val frame ignores the train HOS file."""
    out, _, _ = imported
    seq = "00000003_P01_101_take_cup"
    # frame 100, no HOS: board negative 3, cup narration 2, the positive hand not drawn (3 stays on the board)
    full = canvas(BOARD + (3,), CUP + (2,), base=0)
    full[0, 0] = 3  # the negative tap's pixel
    full[full == 0] = 1
    assert np.array_equal(read_png(out, "Weights_Sparse", "train", seq, "frame_0000000100.jpg"), spec_nearest(full))
    # frame 200, HOS: board touches the box (not drawn), cup 2 -> 4 in the box, hand/lid/knife touch none: 3
    full = canvas(CUP + (2,), HAND_200 + (3,), LID_200 + (3,), KNIFE + (3,), BOX_200 + (4,))
    full[201:299, 1101:1199] = 0
    full[600:700, 700:800] = 2  # O on the undrawn board
    full[full == 0] = 1
    assert np.array_equal(read_png(out, "Weights_Sparse", "train", seq, "frame_0000000200.jpg"), spec_nearest(full))
    seq = "00000004_P01_101_put-on_board:chopping"
    # frame 200 again: board narration 2, cup touches the box (not drawn: the board's 2 stays), box doubles
    full = canvas(BOARD + (2,), HAND_200 + (3,), LID_200 + (2,), KNIFE + (3,), BOX_200 + (4,))
    full[201:299, 1101:1199] = 0
    full[full == 0] = 1
    assert np.array_equal(read_png(out, "Weights_Sparse", "train", seq, "frame_0000000200.jpg"), spec_nearest(full))
    # frame 300: drawer negative, no box: 3; lid narration 2 -> 4 in the box; left hand touches: not drawn
    full = canvas(DRAWER_300 + (3,), LID_300 + (2,), CONTACT_300 + (4,))
    full[full == 0] = 1
    assert np.array_equal(read_png(out, "Weights_Sparse", "train", seq, "frame_0000000300.jpg"), spec_nearest(full))
    seq = "00000002_P01_101_open_drawer"
    # frame 300: drawer narration 2; lid and hand touch the box: not drawn; O's lid part 2
    full = canvas(DRAWER_300 + (2,), CONTACT_300 + (2,))
    full[full == 0] = 1
    assert np.array_equal(read_png(out, "Weights_Sparse", "train", seq, "frame_0000000300.jpg"), spec_nearest(full))
    # frame 400: hand rows only, so not HOS; both drawers 2, the positive hand not drawn
    full = canvas(DRAWER_400A + (2,), DRAWER_400B + (2,))
    full[full == 0] = 1
    assert np.array_equal(read_png(out, "Weights_Sparse", "train", seq, "frame_0000000400.jpg"), spec_nearest(full))
    assert (read_png(out, "Weights_Sparse", "train", seq, "frame_0000000450.jpg") == 1).all()
    full = canvas(PAN + (2,), SPONGE + (3,))
    full[full == 0] = 1
    assert np.array_equal(read_png(out, "Weights_Sparse", "train", "00000001_P03_02_wash_pan",
                                   "frame_0000000020.jpg"), spec_nearest(full))
    full = canvas(BOWL + (2,))
    full[full == 0] = 1
    assert np.array_equal(read_png(out, "Weights_Sparse", "val", "00000001_P02_09_wash_bowl",
                                   "frame_0000001000.jpg"), spec_nearest(full))


def test_images_are_the_linear_resize_under_the_ek_name(imported):
    """Images read by VISOR name, written under the EK name: OpenCV INTER_LINEAR 854x480, up to JPEG coding."""
    out, visor, _ = imported
    source = cv2.imread(str(visor / "GroundTruth-SparseAnnotations" / "rgb_frames" / "train" / "P01_101"
                            / "P01_101_frame_0000000202.jpg"))
    expected = cv2.resize(source, (854, 480), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    for seq in ("00000003_P01_101_take_cup", "00000004_P01_101_put-on_board:chopping"):
        written = cv2.imread(str(out / "JPEGImages_Sparse" / "train" / seq / "frame_0000000200.jpg"))
        assert written.shape == (480, 854, 3)
        assert np.abs(written.astype(np.int16) - expected).mean() < 1.5
    other = cv2.resize(frame_image(302), (854, 480)).astype(np.int16)  # a different frame is far off
    assert np.abs(written.astype(np.int16) - other).mean() > 10


def test_the_loader_reads_the_import(imported):
    """The product's own loader accepts the imported layout (frames, masks, ids)."""
    out, _, _ = imported
    assert [s.name for s in actionvos.read_split(out, "train").segments][-1] == \
        "00000004_P01_101_put-on_board:chopping"
    assert len(actionvos.read_split(out, "val").segments) == 1


def test_narration_ids_sort_by_their_numbers():
    assert narration_key("P01_11_10") == (1, 11, 10)
    assert sorted(["P01_11_10", "P01_11_9", "P01_2_100"], key=narration_key) == ["P01_2_100", "P01_11_9",
                                                                                 "P01_11_10"]


# --- refused input --------------------------------------------------------------------------------------

def mutate(case, videos, rows, hos):
    p01 = videos[1]
    if case == "frame without record":
        p01.frames[1].entities = None  # frame 200: in two kept actions
    elif case == "repeated narration id":
        rows.append(Row("P01_101_09", 300, 400, "open drawer", "open", 3, "drawer", 8, [8]))
    elif case == "float box":
        hos["train"][0].bbox = [450.0, 350, 100, 100]
    elif case == "negative box":
        hos["train"][2].bbox = [-5, 550, 100, 100]
    elif case == "too many entities":
        p01.frames[0].entities = [entity("cup %03d" % i, 13, rect(i, 0, i, 0)) for i in range(256)]
    elif case == "missing image":
        p01.frames[2].visor = 9302  # mapped and annotated under this name, but no such image file
    elif case == "odd HOS polygon":
        hos["train"][2].segmentation = [[950, 550, 999]]
    return p01


REFUSALS = {
    "frame without record": "video P01_101 narration P01_101_10: frame P01_101_frame_0000000202.jpg is mapped",
    "repeated narration id": "narration ids P01_101_9 and P01_101_09 repeat the same numbers",
    "float box": "bbox [450.0, 350, 100, 100] must be four integers",
    "negative box": "bbox [-5, 550, 100, 100] has a negative value",
    "too many entities": "P01_101_frame_0000000102.jpg: 256 entities",
    "missing image": "P01_101_frame_0000009302.jpg: frame image not found for frame_0000000300.jpg",
    "odd HOS polygon": "(frame P01_101_frame_0000000302.jpg): polygon 0 must be a non-empty flat list",
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_quirks_are_refused_naming_the_item_and_nothing_is_written(case, tmp_path):
    videos, rows, hos = copy.deepcopy(fixture_spec())
    mutate(case, videos, rows, hos)
    if case == "missing image":  # write the images under the original names
        videos[1].frames[2].visor = 302
        visor, annotations = write_visor(tmp_path / "in", videos, rows, hos)
        mapping = json.loads((visor / "frame_mapping.json").read_text())
        mapping["P01_101"] = {k.replace("0000000302", "0000009302"): v for k, v in mapping["P01_101"].items()}
        (visor / "frame_mapping.json").write_text(json.dumps(mapping))
        path = visor / "GroundTruth-SparseAnnotations" / "annotations_corrected" / "train" / "P01_101.json"
        path.write_text(path.read_text().replace("0000000302", "0000009302"))
    else:
        visor, annotations = write_visor(tmp_path / "in", videos, rows, hos)
    with pytest.raises(VisorError) as err:
        import_visor(visor, annotations, tmp_path / "out", ("train",), jobs=1, progress=False)
    assert REFUSALS[case] in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no ROOT, no stage


def test_command_line_error_and_existing_split(imported, tmp_path):
    """A refused input is one line on stderr (exit 1); a ROOT that already holds a split is refused; the
    other split can be added to it."""
    videos, rows, hos = copy.deepcopy(fixture_spec())
    mutate("float box", videos, rows, hos)
    visor, annotations = write_visor(tmp_path / "bad", videos, rows, hos)
    done = run_actiseg(["import", "visor", "--visor", str(visor), "--annotations", str(annotations),
                        "--out", str(tmp_path / "out"), "--split", "train", "--jobs", "1"], timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("actiseg import visor: ")
    assert not (tmp_path / "out").exists()
    visor, annotations = write_visor(tmp_path / "good", *fixture_spec())
    import_visor(visor, annotations, tmp_path / "out", ("val",), jobs=1, progress=False)
    with pytest.raises(VisorError, match="already holds a val split"):
        import_visor(visor, annotations, tmp_path / "out", ("val",), jobs=1, progress=False)
    import_visor(visor, annotations, tmp_path / "out", ("train",), jobs=1, progress=False)
    out, _, _ = imported
    assert image_set(tmp_path / "out", "train") == image_set(out, "train")  # one process = two processes
    for seq in ("00000003_P01_101_take_cup",):
        for frame in ("frame_0000000100.jpg", "frame_0000000200.jpg"):
            for tree in ("Annotations_Sparse", "Weights_Sparse"):
                assert np.array_equal(read_png(tmp_path / "out", tree, "train", seq, frame),
                                      read_png(out, tree, "train", seq, frame))


# --- val_human / val_novel --------------------------------------------------------------------------------

def place_subset(out, tmp_path, split, entries):
    root = tmp_path / "root"
    shutil.copytree(out, root)
    (root / "ImageSets" / ("%s.json" % split)).write_text(json.dumps(entries), encoding="utf-8")
    return root


def test_val_human_placed_next_to_an_imported_val_is_read(imported, tmp_path):
    """The official files are val.json entries plus redundant/missing/other: placed in ROOT/ImageSets they
    read as segments of the val folders."""
    out, _, _ = imported
    entry = dict(image_set(out, "val")[0], redundant=False, missing=False, other=True)
    root = place_subset(out, tmp_path, "val_human", [entry])
    segments = actionvos.read_split(root, "val_human").segments
    assert [s.name for s in segments] == ["00000001_P02_09_wash_bowl"] and not segments[0].evaluable


@pytest.mark.parametrize("split", ["val_human", "val_novel"])
def test_subset_ids_that_val_lacks_are_one_error_naming_them(imported, tmp_path, split):
    out, _, _ = imported
    good = dict(image_set(out, "val")[0], redundant=False, missing=False, other=False)
    missing = [dict(good, seq_id=7), dict(good, seq_id=12, video="P01_107", verb="put-into", noun="bag:cereal")]
    renamed = dict(good, verb="rinse")  # seq_id 1 exists in val.json as another sequence: numbered differently
    root = place_subset(out, tmp_path, split, [good] + missing + [renamed])
    with pytest.raises(actionvos.DatasetError) as err:
        actionvos.read_split(root, split, check_files=False)
    message = str(err.value)
    assert "%s.json names 3 sequence(s) this data set does not hold as numbered" % split in message
    assert "seq_id 7 (00000007_P02_09_wash_bowl) is not in" in message
    assert "seq_id 12 (00000012_P01_107_put-into_bag:cereal) is not in" in message
    assert "seq_id 1 is 00000001_P02_09_rinse_bowl in %s.json but 00000001_P02_09_wash_bowl in val.json" % split \
        in message
    read = actionvos.read_split(root, split, skip_bad=True)
    assert [s.seq_id for s in read.segments] == [1] and len(read.skipped) == 3
    assert "seq_id 7 (00000007_P02_09_wash_bowl) is not in" in read.skipped[0].reason
