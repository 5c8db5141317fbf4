"""The data toolkit end to end on generated data: synth -> corrupt -> eval, through the real CLI."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actiseg_ros.data import actionvos

pytestmark = pytest.mark.training  # real torch models, exports or training steps

ACTISEG = [str(Path(sys.executable).with_name("actiseg"))]


def actiseg(*args):
    result = subprocess.run(ACTISEG + [str(a) for a in args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    # 427x240 so that the scaled dilation kernels are larger than 1 px.
    actiseg("synth", "--preset", "tiny", "--seed", "3", "--size", "427x240", "--out", root)
    return root


def as_predictions(root, split, out):
    """A split's annotations as the ideal prediction: positive objects kept, negative ones erased."""
    for segment in actionvos.read_split(root, split).segments:
        negatives = [k for k, o in segment.objects.items() if not o.positive]
        for frame in segment.sparse_frames:
            source = actionvos.annotation_path(root, split, segment.name, frame)
            labels = actionvos.read_label_png(source)
            labels[np.isin(labels, negatives)] = 0
            actionvos.write_label_png(out / segment.name / source.name, labels)


def test_ground_truth_scores_perfectly(clean, tmp_path):
    as_predictions(clean, "val_human", tmp_path / "pred")
    actiseg("eval", "--pred", tmp_path / "pred", "--data", clean, "--split", "val_human", "--json", tmp_path / "m.json")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["gIoU"] == 1.0 and metrics["acc"] == 1.0 and metrics["p_mIoU"] == 1.0
    assert metrics["FP"] == 0 and metrics["FN"] == 0 and metrics["videos"] == 4


def test_corrupted_training_masks_score_below_clean_and_val_is_untouched(clean, tmp_path):
    noisy = tmp_path / "noisy"
    actiseg("corrupt", "--data", clean, "--out", noisy, "--text-flip", "0.4", "--mask-dilate", "21", "--seed", "1")
    # Noisy training masks, scored as predictions against the clean ones: dilation costs IoU.
    as_predictions(noisy, "train", tmp_path / "pred")
    actiseg("eval", "--pred", tmp_path / "pred", "--data", clean, "--split", "train", "--json", tmp_path / "m.json")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0.3 < metrics["p_mIoU"] < 0.95
    # Positives only grow; negatives lose pixels to them, never gain any.
    assert metrics["FN"] == 0
    for split in ("val", "val_human"):
        assert (noisy / "ImageSets" / ("%s.json" % split)).read_bytes() == \
            (clean / "ImageSets" / ("%s.json" % split)).read_bytes()
    flipped = [o for s in actionvos.read_split(noisy, "train").segments for o in s.objects.values()
               if "class_id_org" in o.extra and o.class_id != o.extra["class_id_org"]]
    assert flipped, "a 40% flip rate over ~120 expressions flipped nothing"
