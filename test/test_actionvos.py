"""ActionVOS layout I/O: round trip, and every kind of bad input gives an error naming the file."""
import json

import numpy as np
import pytest

from actiseg_ros.data import actionvos as av

FRAMES = ["frame_0000000010.jpg", "frame_0000000020.jpg"]


def make_segment(seq_id=1, narration="cut onion with knife"):
    objects = {1: av.ObjectInfo(1, "knife", 4, 1, 1, 1), 2: av.ObjectInfo(2, "onion", 9, 0, 1, 1),
               3: av.ObjectInfo(3, "cup", 13, 0, 0, 0)}
    return av.Segment(seq_id=seq_id, video="P01_01", start=0, end=30, narration=narration, verb="cut",
                      verb_class=7, noun="onion", noun_class=9, sparse_frames=list(FRAMES), objects=objects,
                      extra={"redundant": False, "missing": False, "other": False})


def write(root, segments=None, split="val_human"):
    rng = np.random.default_rng(0)
    writer = av.LayoutWriter(root)
    for segment in segments or [make_segment()]:
        labels = np.zeros((24, 32), np.uint8)
        labels[2:8, 2:10], labels[10:20, 12:30], labels[20:24, 0:5] = 1, 2, 3
        images = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in FRAMES]
        writer.add(split, segment, images, [labels] * len(FRAMES), [np.where(labels > 0, 2, 1).astype(np.uint8)] * 2)
    writer.close()
    return root


def test_round_trip_keeps_every_field_and_pixel(tmp_path):
    write(tmp_path)
    data = av.read_split(tmp_path, "val_human")
    assert data.skipped == [] and len(data.segments) == 1
    segment = data.segments[0]
    assert segment.to_json() == make_segment().to_json()
    assert segment.name == "00000001_P01_01_cut_onion" and segment.evaluable
    assert segment.prompt(1) == "knife used in the action of cut onion with knife"
    labels = av.read_label_png(av.annotation_path(tmp_path, "val_human", segment.name, FRAMES[0]))
    assert labels[3, 3] == 1 and labels[15, 20] == 2 and labels.dtype == np.uint8
    # val_human frames live in the val folders, as ActionVOS lays them out
    assert av.image_path(tmp_path, "val_human", segment.name, FRAMES[0]).parts[-3] == "val"


def test_flags_make_a_segment_unevaluable():
    segment = make_segment()
    segment.extra["missing"] = True
    assert not segment.evaluable


def test_malformed_json_names_file_and_position(tmp_path):
    write(tmp_path)
    path = av.image_set_path(tmp_path, "val_human")
    path.write_text('[{"seq_id": 1,')
    with pytest.raises(av.DatasetError, match=r"val_human\.json: malformed JSON at line 1"):
        av.read_split(tmp_path, "val_human")


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e.pop("narration"), "missing field"),
    (lambda e: e.update(sparse_frames=[]), "sparse_frames"),
    (lambda e: e.update(object_classes={"x": {}}), "not an integer"),
    (lambda e: e.update(object_classes={"300": {"name": "a", "class_id": 1, "handbox": 0, "narration": 0,
                                                "positive": 0}}), "outside 1..255"),
    (lambda e: e["object_classes"]["1"].pop("positive"), "must have fields"),
    (lambda e: e.update(seq_id="seven"), "wrong type"),
])
def test_bad_entries_are_named(tmp_path, mutate, message):
    write(tmp_path)
    path = av.image_set_path(tmp_path, "val_human")
    entries = json.loads(path.read_text())
    mutate(entries[0])
    path.write_text(json.dumps(entries))
    with pytest.raises(av.DatasetError, match=message) as err:
        av.read_split(tmp_path, "val_human")
    assert "val_human.json[0]" in str(err.value)


def test_missing_frame_unreadable_image_and_unknown_mask_id(tmp_path):
    write(tmp_path)
    name = make_segment().name
    image = av.image_path(tmp_path, "val_human", name, FRAMES[1])
    image.unlink()
    with pytest.raises(av.DatasetError, match="frame listed in .* is missing") as err:
        av.read_split(tmp_path, "val_human")
    assert str(image) in str(err.value)
    image.write_bytes(b"not a jpeg")
    with pytest.raises(av.DatasetError, match="unreadable image"):
        av.read_image(image)
    write(tmp_path)  # restore
    mask = av.annotation_path(tmp_path, "val_human", name, FRAMES[0])
    labels = av.read_label_png(mask)
    labels[0, 0] = 7
    av.write_label_png(mask, labels)
    with pytest.raises(av.DatasetError, match=r"object id\(s\) \[7\] are not in object_classes") as err:
        av.read_split(tmp_path, "val_human")
    assert str(mask) in str(err.value)


def test_mask_size_mismatch_and_rgb_mask_are_refused(tmp_path):
    write(tmp_path)
    mask = av.annotation_path(tmp_path, "val_human", make_segment().name, FRAMES[0])
    av.write_label_png(mask, np.zeros((10, 10), np.uint8))
    with pytest.raises(av.DatasetError, match="mask is 10x10 but its frame is 32x24"):
        av.read_split(tmp_path, "val_human")
    from PIL import Image

    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(mask)
    with pytest.raises(av.DatasetError, match="palette or 8-bit grey PNG"):
        av.read_label_png(mask)


def test_skip_bad_reports_and_keeps_the_good_segments(tmp_path):
    good, bad = make_segment(1), make_segment(2, "wash cup")
    write(tmp_path, [good, bad])
    av.image_path(tmp_path, "val_human", bad.name, FRAMES[0]).unlink()
    with pytest.raises(av.DatasetError):
        av.read_split(tmp_path, "val_human")
    data = av.read_split(tmp_path, "val_human", skip_bad=True)
    assert [s.name for s in data.segments] == [good.name]
    assert len(data.skipped) == 1 and "val_human.json[1]" in data.skipped[0].path
    assert "missing" in data.skipped[0].reason


def test_duplicate_segments_and_missing_split_file(tmp_path):
    write(tmp_path, [make_segment(1), make_segment(1)])
    with pytest.raises(av.DatasetError, match="duplicate segment"):
        av.read_split(tmp_path, "val_human")
    with pytest.raises(av.DatasetError, match=r"train\.json: file not found"):
        av.read_split(tmp_path, "train")


def test_demo_layout_round_trip_and_missing_frame(tmp_path):
    video = av.DemoVideo("00000012_P01_107_put-into_bag:cereal", ["frame_0000002521", "frame_0000002559"],
                         {"0": {"exp": "cup used in the action of put cereals bag into box", "obj_id": "5"}})
    images = [np.full((12, 16, 3), 100, np.uint8)] * 2
    av.write_demo_layout(tmp_path, [(video, images)])
    [read] = av.read_demo_layout(tmp_path)
    assert read.name == video.name and read.frames == video.frames and read.expressions == video.expressions
    av.image_path(tmp_path, "val", video.name, "frame_0000002559.jpg").unlink()
    with pytest.raises(av.DatasetError, match="frame listed in .*expression_file.json is missing"):
        av.read_demo_layout(tmp_path)
    (tmp_path / "ImageSets" / "expression_file.json").write_text('{"videos": {"v": {"frames": []}}}')
    with pytest.raises(av.DatasetError, match="needs 'expressions'"):
        av.read_demo_layout(tmp_path)


def test_palette_is_davis():
    palette = av.davis_palette()
    assert palette[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
