"""`actiseg audit`: the scores' pure functions, and the installed command on a real small corrupted set
(the `tiny` preset at 427x240, corrupted by `actiseg corrupt`) with the shipped default model."""
import json
import math
import shutil
from itertools import product

import numpy as np
import pytest

from actiseg_ros.audit import measure, scoring
from actiseg_ros.data import actionvos
from conftest import run_actiseg

RECORD_KEYS = {"segment", "object_id", "frame", "kind", "score", "reason", "details"}


# --- pure functions ------------------------------------------------------------------------------------

def brute_force_auroc(scores, labels):
    pairs = [(p, n) for p, n in product([s for s, y in zip(scores, labels) if y],
                                        [s for s, y in zip(scores, labels) if not y])]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_auroc_is_the_pairwise_probability_with_ties_counted_half():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    labels = rng.random(60) < 0.3
    assert scoring.auroc(scores, labels) == pytest.approx(brute_force_auroc(scores, labels), abs=1e-12)
    assert scoring.auroc([0.1, 0.9], [False, True]) == 1.0 and scoring.auroc([0.9, 0.1], [False, True]) == 0.0
    assert scoring.auroc([1, 2], [True, True]) is None


def test_precision_at_the_top_fraction():
    scores = np.arange(100, dtype=float)
    labels = scores >= 97  # the three best are noisy
    assert scoring.precision_at(scores, labels, 0.05) == pytest.approx(3 / 5)
    assert scoring.precision_at([1.0], [True], 0.05) == 1.0  # at least one item


def test_ungate_recovers_the_object_probability_from_the_gated_logit():
    a = np.linspace(-8, 8, 17, dtype=np.float32).reshape(1, 1, 17).repeat(3, axis=0)
    b = np.array([-4.0, 0.0, 6.0], np.float32)
    sa, sb = 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))[:, None, None]
    gated = np.log(sa * sb) - np.log1p(-sa * sb)  # logit(sigmoid(a) * sigmoid(b)), as the graph computes it
    assert np.allclose(measure.ungate(gated, b), sa, atol=1e-5)


def square_map(height=120, width=200, box=(40, 80, 60, 120), value=0.9):
    """An object map that is `value` on the box (top, bottom, left, right) and 0.001 elsewhere."""
    prob = np.full((height, width), 0.001, np.float32)
    top, bottom, left, right = box
    prob[top:bottom, left:right] = value
    return prob


def test_a_dilated_label_scores_above_the_exact_one_and_a_wrong_object_scores_high_text():
    prob = square_map()
    exact = np.zeros((120, 200), np.uint8)
    exact[40:80, 60:120] = 1
    dilated = np.zeros_like(exact)
    dilated[34:86, 54:126] = 1
    elsewhere = np.zeros_like(exact)
    elsewhere[5:30, 150:190] = 1  # the label sits on something the model does not see under this name
    radius = measure.band_radius(120, 200)
    scores = {}
    for name, labels in (("exact", exact), ("dilated", dilated), ("elsewhere", elsewhere)):
        (m,) = measure.measure_frame(labels, [1], prob[None], np.array([0.9]), radius)
        scores[name] = (scoring.mask_score(m.inside, m.core, m.band), scoring.text_score(m.inside, m.precision))
    assert scores["dilated"][0] > 0.4 > scores["exact"][0]
    assert scores["elsewhere"][1] > 0.95 > 0.2 > scores["exact"][1]
    assert abs(scores["elsewhere"][0]) < 0.05, "nothing seen, nothing to judge the mask by"


def test_where_the_name_is_wrong_the_mask_is_judged_by_the_image_edges():
    rgb = np.full((120, 200, 3), 40, np.uint8)
    rgb[40:80, 60:120] = 220  # a bright object with a crisp edge on a dark table
    exact = np.zeros((120, 200), np.uint8)
    exact[40:80, 60:120] = 1
    dilated = np.zeros_like(exact)
    dilated[35:85, 55:125] = 1
    nothing = np.full((1, 120, 200), 0.001, np.float32)  # the (wrong) name finds nothing: no model evidence
    gradient = measure.gradient_magnitude(rgb)
    scores = {}
    for name, labels in (("exact", exact), ("dilated", dilated)):
        (m,) = measure.measure_frame(labels, [1], nothing, np.array([0.1]), 5, gradient)
        assert not math.isnan(m.edge) and not math.isnan(m.inner_edge)
        scores[name] = (scoring.mask_score(m.inside, m.core, m.band, m.edge, m.inner_edge, name_wrong=1.0),
                        scoring.mask_score(m.inside, m.core, m.band, m.edge, m.inner_edge, name_wrong=0.0))
    assert scores["dilated"][0] > 0.9 > 0.1 > scores["exact"][0], scores
    assert abs(scores["dilated"][1]) < 0.05 and abs(scores["exact"][1]) < 0.05, "a right name leaves it to the model"
    (m,) = measure.measure_frame(exact, [1], nothing, np.array([0.1]), 5)  # no gradient given: model only
    assert math.isnan(m.edge) and scoring.mask_score(m.inside, m.core, m.band, m.edge, m.inner_edge, 1.0) == \
        scoring.model_mask_score(m.inside, m.core, m.band)


def test_other_is_the_share_of_the_map_on_another_labelled_object():
    prob = square_map()
    labels = np.zeros((120, 200), np.uint8)
    labels[40:80, 60:120] = 2  # the map lies on object 2 ...
    labels[0:20, 0:20] = 1  # ... while the prompt is object 1's
    m1, m2 = measure.measure_frame(labels, [1, 2], np.stack([prob, prob]), np.array([0.5, 0.5]), 3)
    assert m1.other > 0.9 and m1.precision < 0.05 and m2.precision > 0.9
    assert [m1.object_id, m2.object_id] == [1, 2]


def test_flag_score_is_the_disagreement_discounted_when_the_name_does_not_fit():
    assert scoring.flag_score(1, 0.1) == pytest.approx(0.9) and scoring.flag_score(0, 0.1) == pytest.approx(0.1)
    assert scoring.flag_score(1, 0.1, name_fits=0.2) == pytest.approx(0.18)


def test_records_sort_by_score_with_a_fixed_tie_order():
    records = [scoring._record("b", 1, None, "text", 0.5, "", {}), scoring._record("a", 2, "f1", "mask", 0.5, "", {}),
               scoring._record("a", 1, None, "flag", 0.9, "", {})]
    assert [r["kind"] for r in scoring.sort_records(records)] == ["flag", "mask", "text"]


# --- the command on real data ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """tiny preset at the shipped model's 427x240, train corrupted: flips 30%, 30% of positive masks dilated."""
    root = tmp_path_factory.mktemp("audit")
    out = run_actiseg(["synth", "--preset", "tiny", "--seed", "0", "--size", "427x240", "--out", str(root / "clean")])
    assert out.returncode == 0, out.stderr
    out = run_actiseg(["corrupt", "--data", str(root / "clean"), "--out", str(root / "noisy"), "--text-flip", "0.3",
                       "--mask-dilate", "21", "--mask-dilate-rate", "0.3", "--seed", "0", "--workers", "1"])
    assert out.returncode == 0, out.stderr
    return root / "noisy"


@pytest.fixture(scope="module")
def audited(noisy, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("audit_out")
    result = run_actiseg(["audit", "--data", str(noisy), "--split", "train", "--json", str(out_dir / "audit.json"),
                          "--html", str(out_dir / "report.html"), "--top", "6"])
    assert result.returncode == 0, result.stderr
    return json.loads((out_dir / "audit.json").read_text()), out_dir, result


def truth(noisy):
    manifest = json.loads((noisy / "noise_manifest.json").read_text())
    kinds = {(e["segment"], e["object_id"]): e["kind"] for e in manifest["expressions"]}
    dilated = {(f["segment"], f["frame"], i) for f in manifest["frames"] for i in f["dilated"] if str(i) in f["added"]}
    return kinds, dilated


@pytest.mark.slow
def test_records_follow_the_schema_and_cover_every_label(noisy, audited):
    document, _out_dir, _result = audited
    records = document["records"]
    assert document["problems"] == [] and document["frames"] == 60 and document["frames_per_second"] > 0
    for record in records:
        assert RECORD_KEYS <= set(record), record
        assert record["kind"] in ("text", "flag", "mask") and isinstance(record["score"], float)
        assert (record["frame"] is None) == (record["kind"] != "mask") and record["reason"]
    assert [r["score"] for r in records] == sorted((r["score"] for r in records), reverse=True)
    # one mask record per labelled (frame, object), one text and one flag record per expression labelled anywhere
    split = actionvos.read_split(noisy, "train")
    masks, expressions = set(), set()
    for segment in split.segments:
        for frame in segment.sparse_frames:
            labels = actionvos.read_label_png(actionvos.annotation_path(noisy, "train", segment.name, frame))
            for object_id in set(np.unique(labels).tolist()) - {0}:
                masks.add((segment.name, frame, object_id))
                expressions.add((segment.name, object_id))
    assert {(r["segment"], r["frame"], r["object_id"]) for r in records if r["kind"] == "mask"} == masks
    for kind in ("text", "flag"):
        assert sorted((r["segment"], r["object_id"]) for r in records if r["kind"] == kind) == sorted(expressions)
    assert document["counts"] == {"text": len(expressions), "flag": len(expressions), "mask": len(masks)}


@pytest.mark.slow
def test_flipped_expressions_and_dilated_masks_rank_above_clean_ones(noisy, audited):
    document, _out_dir, _result = audited
    kinds, dilated = truth(noisy)
    text = [r for r in document["records"] if r["kind"] == "text"]
    flipped = [kinds[(r["segment"], r["object_id"])] == "flip" for r in text]
    assert 5 <= sum(flipped) < len(text)
    assert flipped[0], "the most suspicious name is a category flip"
    assert scoring.auroc([r["score"] for r in text], flipped) >= 0.9
    masks = [r for r in document["records"] if r["kind"] == "mask"]
    grown = [(r["segment"], r["frame"], r["object_id"]) in dilated for r in masks]
    assert 10 <= sum(grown) < len(masks)
    assert grown[0], "the most suspicious mask is a dilated one"
    assert scoring.auroc([r["score"] for r in masks], grown) >= 0.9
    mean_dilated = np.mean([r["score"] for r, g in zip(masks, grown) if g])
    assert mean_dilated > np.percentile([r["score"] for r, g in zip(masks, grown) if not g], 90)
    # also the masks of flipped expressions, judged by the image where the name cannot judge them
    of_flips = [(r["score"], g) for r, g in zip(masks, grown) if kinds[(r["segment"], r["object_id"])] == "flip"]
    assert sum(g for _s, g in of_flips) >= 3
    assert scoring.auroc(*zip(*of_flips)) >= 0.8


@pytest.mark.slow
def test_one_process_and_two_workers_give_the_same_records(noisy, audited, tmp_path):
    """The fixture's audit ran with --jobs 0 (one worker per core; at least two are forced here too)."""
    document, _out_dir, _result = audited
    for jobs in ("1", "3"):
        result = run_actiseg(["audit", "--data", str(noisy), "--json", str(tmp_path / "a.json"), "--jobs", jobs])
        assert result.returncode == 0, result.stderr
        other = json.loads((tmp_path / "a.json").read_text())
        assert other["jobs"] == int(jobs) and other["frames"] == document["frames"]
        assert other["records"] == document["records"] and other["counts"] == document["counts"]


@pytest.mark.slow
def test_html_report_shows_the_top_suspects_side_by_side(audited):
    document, out_dir, result = audited
    page = (out_dir / "report.html").read_text()
    images = sorted((out_dir / "report_files").glob("*.png"))
    assert len(images) == 6 and page.count("<img ") == 6
    top = document["records"][0]
    assert top["segment"] in page and top["reason"].split(";")[0].replace("'", "&#x27;") in page
    from PIL import Image

    with Image.open(images[0]) as picture:
        width, height = picture.size  # frame | labelled mask | model map | zoom on the object (square or wider)
        assert height == 240 and width >= 3 * 427 + 3 * 4 + 240
    assert "frames/s" in result.stdout


@pytest.mark.slow
def test_missing_and_unreadable_files_are_reported_item_by_item_and_the_rest_is_audited(noisy, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(noisy, broken)
    split = actionvos.read_split(broken, "train")
    first, second = split.segments[0], split.segments[1]
    missing = actionvos.image_path(broken, "train", first.name, first.sparse_frames[1])
    missing.unlink()
    garbled = actionvos.annotation_path(broken, "train", second.name, second.sparse_frames[2])
    garbled.write_bytes(b"not a png at all")
    entries = json.loads(actionvos.image_set_path(broken, "train").read_text())
    del entries[3]["narration"]
    entries[5]["object_classes"] = {}
    actionvos.image_set_path(broken, "train").write_text(json.dumps(entries))
    result = run_actiseg(["audit", "--data", str(broken), "--json", str(tmp_path / "a.json")])
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "a.json").read_text())
    problems = document["problems"]
    assert len(problems) == 4, problems
    errors = " ".join(p["error"] for p in problems)
    assert str(missing) in errors and "frame not found" in errors
    assert str(garbled) in errors and "unreadable mask" in errors
    assert "narration" in errors and "train.json[3]" in " ".join(p["item"] for p in problems)
    assert "object_classes is empty" in errors
    for path in (missing, garbled):
        assert str(path) in result.stderr
    assert document["frames"] == 60 - 2 - 5 - 5  # two bad frames, an unparsable and an empty segment of five
    frames = {(r["segment"], r["frame"]) for r in document["records"] if r["kind"] == "mask"}
    assert (first.name, first.sparse_frames[1]) not in frames and (first.name, first.sparse_frames[0]) in frames


@pytest.mark.slow
@pytest.mark.parametrize("args, fragment", [
    (["--top", "0"], "--top must be at least 1"),
    (["--segments", "0"], "--segments must be at least 1"),
    (["--jobs", "-1"], "--jobs must be 0 (one per core) or more"),
    (["--jobs", "2", "--model", "/nonexistent/model"], "cannot open the model in a worker process"),
])
def test_bad_arguments_give_clear_errors(noisy, tmp_path, args, fragment):
    result = run_actiseg(["audit", "--data", str(noisy), "--json", str(tmp_path / "a.json")] + args)
    assert result.returncode == 2 and fragment in result.stderr


@pytest.mark.slow
def test_a_folder_without_the_split_is_a_one_line_error(tmp_path):
    result = run_actiseg(["audit", "--data", str(tmp_path), "--json", str(tmp_path / "a.json")])
    assert result.returncode == 2 and "train.json: file not found" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "a.json").exists()


def test_band_radius_follows_the_frame_size():
    assert measure.band_radius(240, 427) == 5 and measure.band_radius(480, 854) == 10
    assert measure.band_radius(4, 4) == 1 and math.isclose(measure.band_radius(96, 128), 2)
