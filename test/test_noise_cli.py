"""`actiseg corrupt` end to end on a small ActionVOS-layout data set written with LayoutWriter."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from actiseg_ros import cli
from actiseg_ros.data import actionvos, noise_cli
from actiseg_ros.data.actionvos import ObjectInfo, Segment

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

HEIGHT, WIDTH = 240, 427  # half of 854x480: a 9 px kernel becomes 5
# (name, class id) of the objects; ids are 1-based in alphabetical name order, as in ActionVOS
OBJECTS = [("carrot", 41), ("chopping board", 18), ("knife", 4), ("left hand", 300), ("right hand", 301)]
VARIANTS = {41: "carrot bit", 18: "cutting board", 4: "chef knife"}


def object_boxes(index):
    """Rectangles (top, left, bottom, right) per object id; the knife (3) touches the board (2)."""
    shift = 6 * (index % 4)
    return {1: (20 + shift, 20, 60 + shift, 80), 2: (100, 100, 180, 200), 3: (100, 200, 130, 260),
            4: (150, 300, 200, 340), 5: (30, 300, 80, 360)}


def make_segment(split, index, positive):
    """positive: {object id: (handbox, narration)} for the active objects; the others are negatives."""
    objects = {}
    for object_id, (name, class_id) in enumerate(OBJECTS, start=1):
        if index % 2 and class_id in VARIANTS:
            name = VARIANTS[class_id]
        handbox, narration = positive.get(object_id, (0, 0))
        objects[object_id] = ObjectInfo(object_id, name, class_id, handbox, narration, int(handbox or narration))
    extra = {"redundant": False, "missing": False, "other": index == 1} if split != "train" else {}
    return Segment(seq_id=index, video="P0%d_0%d" % (1 + index % 3, index), start=100 * index,
                   end=100 * index + 50, narration="cut carrot with knife", verb="cut", verb_class=7,
                   noun="carrot", noun_class=41,
                   sparse_frames=["frame_%010d.jpg" % (100 * index + k) for k in (3, 27)],
                   objects=objects, extra=extra)


def render(segment, index):
    """Frames (H, W, 3), palette labels (H, W) and weights (H, W) of one segment's sparse frames."""
    pick = np.random.default_rng(index)
    images, labels, weights = [], [], []
    for _frame in segment.sparse_frames:
        label = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        weight = np.ones((HEIGHT, WIDTH), dtype=np.uint8)
        for object_id, (top, left, bottom, right) in object_boxes(index).items():
            obj = segment.objects[object_id]
            label[top:bottom, left:right] = object_id
            weight[top:bottom, left:right] = (4 if obj.handbox and obj.narration else 2) if obj.positive else 3
        images.append(pick.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
        labels.append(label)
        weights.append(weight)
    return images, labels, weights


def write_dataset(root, train_segments=6, splits=("train", "val", "val_human", "val_novel")):
    writer = actionvos.LayoutWriter(root)
    for split in splits:
        for index in range(1, (train_segments if split == "train" else 3) + 1):
            # knife and right hand are active: the knife touches the (negative) board
            segment = make_segment(split, index, {3: (1, 1), 5: (1, 0), 1: (0, 1)})
            writer.add(split, segment, *render(segment, index))
    writer.close()
    return Path(root)


def file_digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("clean") / "data")


def run_cli(argv, capsys):
    code = cli.main(["corrupt"] + [str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_mixed_noise_end_to_end(dataset, tmp_path, capsys):
    before = file_digests(dataset)
    out = tmp_path / "noisy"
    code, stdout, err = run_cli(["--data", dataset, "--out", out, "--text-flip", 0.5, "--noun-sub", 1.0,
                                 "--mask-dilate", 9, "--seed", 3, "--workers", 1], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary == json.loads((out / "noise_summary.json").read_text())
    assert file_digests(dataset) == before, "the clean data set must not change"

    after = file_digests(out)
    for name, digest in before.items():
        if "/train/" not in name and name != "ImageSets/train.json":
            assert after[name] == digest, "%s differs from the clean copy" % name
        if name.startswith("JPEGImages_Sparse/train/"):
            assert after[name] == digest

    clean = actionvos.read_split(dataset, "train").segments
    noisy = actionvos.read_split(out, "train").segments
    assert [s.name for s in noisy] == [s.name for s in clean]
    text = summary["text"]
    assert text["expressions"] == 30 and text["flipped"] + text["substituted"] + text["not_substitutable"] == 30
    assert text["flip_rate_measured"] == text["flipped"] / 30
    assert text["substitution_rate_measured"] == 1.0  # every non-flipped substitutable name was replaced
    for clean_segment, noisy_segment in zip(clean, noisy):
        for object_id, obj in noisy_segment.objects.items():
            org = clean_segment.objects[object_id]
            assert (obj.positive, obj.handbox, obj.narration) == (org.positive, org.handbox, org.narration)
            assert obj.extra["exp"] == actionvos.build_prompt(obj.name, clean_segment.narration)
            assert obj.extra["exp_org"] == clean_segment.prompt(object_id)
            assert obj.extra["class_id_org"] == org.class_id and obj.extra["name_org"] == org.name

    mask = summary["mask"]
    assert mask["kernel_by_resolution"] == {"%dx%d" % (WIDTH, HEIGHT): 5}
    assert mask["frames"] == 12 and mask["frames_changed"] == 12 and mask["weight_maps_updated"] == 12
    assert 0 < mask["negative_pixel_fraction_overwritten"] < 1
    assert 1.0 < mask["mean_boundary_displacement_px"] < 2 * 2 ** 0.5
    for segment in clean:
        for frame in segment.sparse_frames:
            check_frame(dataset, out, segment, frame)

    manifest = json.loads((out / "noise_manifest.json").read_text())
    assert len(manifest["expressions"]) == 30 and len(manifest["frames"]) == 12
    assert sum(f["pixels_changed"] for f in manifest["frames"]) == mask["pixels_changed"]
    assert {e["kind"] for e in manifest["expressions"]} <= {"flip", "substitute", "not_substitutable"}


def check_frame(clean_root, noisy_root, segment, frame):
    """Labels only grew positives by 2 px; weights changed exactly where labels changed, to 2 or 4."""
    old = actionvos.read_label_png(actionvos.annotation_path(clean_root, "train", segment.name, frame))
    new = actionvos.read_label_png(actionvos.annotation_path(noisy_root, "train", segment.name, frame))
    old_w = actionvos.read_label_png(actionvos.weight_path(clean_root, "train", segment.name, frame))
    new_w = actionvos.read_label_png(actionvos.weight_path(noisy_root, "train", segment.name, frame))
    changed = old != new
    assert changed.any()
    assert set(np.unique(new[changed]).tolist()) <= {1, 3, 5}
    positives = np.isin(old, [1, 3, 5])
    assert np.array_equal(new[positives], old[positives])
    expected_weight = {1: 2, 3: 4, 5: 2}
    for object_id, value in expected_weight.items():
        assert np.all(new_w[changed & (new == object_id)] == value)
    assert np.array_equal(new_w[~changed], old_w[~changed])
    knife_rows = slice(100, 130)
    assert np.all(new[knife_rows, 198:200] == 3), "the knife takes 2 columns of the negative board"
    assert np.all(new[knife_rows, 196:198] == 2)


def test_same_seed_same_output_other_seed_other_text_noise(dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(noise_cli, "MIN_FRAMES_FOR_WORKERS", 1)  # let 2 workers really run on 12 frames
    args = ["--data", dataset, "--text-flip", 0.4, "--noun-sub", 0.5, "--mask-dilate", 15]
    outputs = []
    for name, seed, workers in (("a", 5, 1), ("b", 5, 2), ("c", 6, 1)):
        code, _out, err = run_cli(args + ["--out", tmp_path / name, "--seed", seed, "--workers", workers], capsys)
        assert code == 0, err
        digests = file_digests(tmp_path / name)
        digests.pop("noise_summary.json")  # holds the output path and the run time
        manifest = json.loads((tmp_path / name / "noise_manifest.json").read_text())
        digests.pop("noise_manifest.json")
        outputs.append((digests, manifest["expressions"], manifest["frames"]))
    assert outputs[0] == outputs[1], "same seed (and any number of workers) must give identical output"
    assert outputs[0][0]["ImageSets/train.json"] != outputs[2][0]["ImageSets/train.json"]
    assert outputs[0][2] == outputs[2][2], "mask noise does not depend on the seed"


def test_unchanged_files_are_hard_links_or_copies_with_copy(dataset, tmp_path, capsys):
    val_image = next((dataset / "JPEGImages_Sparse" / "val").rglob("*.jpg")).relative_to(dataset)
    train_mask = next((dataset / "Annotations_Sparse" / "train").rglob("*.png")).relative_to(dataset)
    assert run_cli(["--data", dataset, "--out", tmp_path / "linked", "--text-flip", 0.2], capsys)[0] == 0
    assert os.path.samefile(dataset / val_image, tmp_path / "linked" / val_image)
    assert os.path.samefile(dataset / train_mask, tmp_path / "linked" / train_mask), "no mask noise: linked"
    assert run_cli(["--data", dataset, "--out", tmp_path / "copied", "--text-flip", 0.2, "--copy"], capsys)[0] == 0
    assert not os.path.samefile(dataset / val_image, tmp_path / "copied" / val_image)
    assert (dataset / val_image).read_bytes() == (tmp_path / "copied" / val_image).read_bytes()


def test_mask_only_run_leaves_the_text_alone(dataset, tmp_path, capsys):
    code, stdout, err = run_cli(["--data", dataset, "--out", tmp_path / "m", "--mask-dilate", 21], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["text"] is None and summary["mask"]["kernel_by_resolution"] == {"427x240": 11}
    assert json.loads((tmp_path / "m" / "ImageSets" / "train.json").read_text()) == \
           json.loads((dataset / "ImageSets" / "train.json").read_text())


def test_mask_rate_one_is_the_default_byte_for_byte_and_dilates_every_positive(dataset, tmp_path, capsys):
    assert run_cli(["--data", dataset, "--out", tmp_path / "default", "--mask-dilate", 9, "--seed", 2], capsys)[0] == 0
    assert run_cli(["--data", dataset, "--out", tmp_path / "one", "--mask-dilate", 9, "--seed", 2,
                    "--mask-dilate-rate", 1.0], capsys)[0] == 0
    digests = [file_digests(tmp_path / name) for name in ("default", "one")]
    for digest in digests:  # the summary names the output folder and the seconds taken
        del digest[noise_cli.MANIFEST], digest[noise_cli.SUMMARY]
    assert digests[0] == digests[1]
    manifest = json.loads((tmp_path / "one" / noise_cli.MANIFEST).read_text())
    default = json.loads((tmp_path / "default" / noise_cli.MANIFEST).read_text())
    assert manifest["frames"] == default["frames"]
    for record in manifest["frames"]:
        assert record["positive_masks"] == record["dilated"] == [1, 3, 5]
    assert manifest["summary"]["mask"]["dilate_rate_measured"] == 1.0


def test_mask_rate_dilates_the_chosen_masks_only_and_the_manifest_names_them(dataset, tmp_path, capsys):
    out = tmp_path / "half"
    code, stdout, err = run_cli(["--data", dataset, "--out", out, "--mask-dilate", 9, "--mask-dilate-rate", 0.5,
                                 "--seed", 1], capsys)
    assert code == 0, err
    manifest = json.loads((out / noise_cli.MANIFEST).read_text())
    chosen = [(r["segment"], r["frame"], i) for r in manifest["frames"] for i in r["dilated"]]
    total = sum(len(r["positive_masks"]) for r in manifest["frames"])
    assert 0 < len(chosen) < total == 36  # 6 segments x 2 frames x 3 positives
    assert json.loads(stdout)["mask"]["dilate_rate_measured"] == len(chosen) / total
    for record in manifest["frames"]:
        clean = actionvos.read_label_png(actionvos.annotation_path(dataset, "train", record["segment"],
                                                                   record["frame"]))
        noisy = actionvos.read_label_png(actionvos.annotation_path(out, "train", record["segment"], record["frame"]))
        for object_id in record["positive_masks"]:
            grown = np.count_nonzero(noisy == object_id) - np.count_nonzero(clean == object_id)
            assert np.all(noisy[clean == object_id] == object_id)
            if object_id in record["dilated"]:
                assert grown > 0 and record["added"][str(object_id)] == grown
            else:
                assert grown == 0 and str(object_id) not in record["added"], (record, object_id)
        assert set(np.unique(noisy[noisy != clean]).tolist()) <= set(record["dilated"])


def test_vocabulary_file_extends_the_flip_targets(dataset, tmp_path, capsys):
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"999": ["blender"]}))
    code, stdout, err = run_cli(["--data", dataset, "--out", tmp_path / "v", "--text-flip", 1.0, "--vocab", vocab,
                                 "--seed", 1], capsys)
    assert code == 0, err
    assert json.loads(stdout)["vocabulary"]["classes"] == 6
    names = {o.name for s in actionvos.read_split(tmp_path / "v", "train").segments for o in s.objects.values()}
    assert "blender" in names
    vocab.write_text(json.dumps({"x": ["blender"]}))
    code, _out, err = run_cli(["--data", dataset, "--out", tmp_path / "v2", "--text-flip", 1.0, "--vocab", vocab],
                              capsys)
    assert code == 2 and str(vocab) in err and "not an integer" in err


def test_stacking_text_noise_on_a_noisy_copy_is_refused(dataset, tmp_path, capsys):
    assert run_cli(["--data", dataset, "--out", tmp_path / "once", "--text-flip", 0.2], capsys)[0] == 0
    code, _out, err = run_cli(["--data", tmp_path / "once", "--out", tmp_path / "twice", "--text-flip", 0.2], capsys)
    assert code == 2 and "already carries text noise" in err


@pytest.mark.parametrize("extra, fragment", [
    (["--text-flip", 1.5], "--text-flip must be within [0, 1]"),
    (["--noun-sub", -0.1], "--noun-sub must be within [0, 1]"),
    (["--mask-dilate", 4], "--mask-dilate: dilation kernel must be a positive odd integer"),
    (["--mask-dilate", 0], "--mask-dilate: dilation kernel must be a positive odd integer"),
    (["--mask-dilate", -9], "--mask-dilate: dilation kernel must be a positive odd integer"),
    (["--mask-dilate", 9, "--mask-dilate-rate", 1.5], "--mask-dilate-rate must be within [0, 1]"),
    (["--mask-dilate-rate", 0.5], "--mask-dilate-rate needs --mask-dilate K"),
])
def test_bad_arguments_give_clear_errors(dataset, tmp_path, capsys, extra, fragment):
    code, _out, err = run_cli(["--data", dataset, "--out", tmp_path / "o"] + extra, capsys)
    assert code == 2 and fragment in err
    assert not (tmp_path / "o").exists()


def test_bad_paths_give_clear_errors(dataset, tmp_path, capsys):
    code, _out, err = run_cli(["--data", tmp_path / "nowhere", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "nowhere: no such directory" in err
    val_only = write_dataset(tmp_path / "valonly", splits=("val",))
    code, _out, err = run_cli(["--data", val_only, "--out", tmp_path / "o", "--text-flip", 0.2], capsys)
    assert code == 2 and "has no training split" in err and "train.json" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    code, _out, err = run_cli(["--data", dataset, "--out", tmp_path / "full"], capsys)
    assert code == 2 and "not an empty directory" in err
    code, _out, err = run_cli(["--data", dataset, "--out", dataset / "inside"], capsys)
    assert code == 2 and "must be outside --data" in err


def test_bad_training_segment_stops_the_run_unless_skip_bad(tmp_path, capsys):
    root = write_dataset(tmp_path / "data", train_segments=3, splits=("train",))
    victim = make_segment("train", 2, {3: (1, 1), 5: (1, 0), 1: (0, 1)})
    missing = actionvos.image_path(root, "train", victim.name, victim.sparse_frames[1])
    missing.unlink()
    code, _out, err = run_cli(["--data", root, "--out", tmp_path / "o1", "--mask-dilate", 9], capsys)
    assert code == 2 and str(missing) in err
    code, stdout, err = run_cli(["--data", root, "--out", tmp_path / "o2", "--mask-dilate", 9, "--skip-bad"],
                                capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["segments"] == 2 and len(summary["skipped_segments"]) == 1
    assert str(missing) in summary["skipped_segments"][0]["reason"]
    assert [s.name for s in actionvos.read_split(tmp_path / "o2", "train").segments] == \
           [make_segment("train", i, {}).name for i in (1, 3)]


def test_a_weight_map_of_the_wrong_size_stops_the_workers_with_the_file_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(noise_cli, "MIN_FRAMES_FOR_WORKERS", 1)
    root = write_dataset(tmp_path / "data", train_segments=2, splits=("train",))
    segment = actionvos.read_split(root, "train").segments[1]
    weight_file = actionvos.weight_path(root, "train", segment.name, segment.sparse_frames[0])
    actionvos.write_label_png(weight_file, np.ones((10, 10), dtype=np.uint8))
    code, _out, err = run_cli(["--data", root, "--out", tmp_path / "o", "--mask-dilate", 9, "--workers", 2], capsys)
    assert code == 2
    assert "%s: weight map is 10x10 but its mask is %dx%d" % (weight_file, WIDTH, HEIGHT) in err
    assert "partial output" in err
