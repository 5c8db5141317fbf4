"""The training objective's object-mask term: it teaches the mask head every prompted object's own pixels,
active or not, on hand-made tensors, through the real data loader and in a real training step."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.data import actionvos  # noqa: E402
from actiseg_ros.inference.preprocess import letterbox_labels  # noqa: E402
from actiseg_ros.training import losses  # noqa: E402
from actiseg_ros.training.config import configs_dir, load_config  # noqa: E402
from actiseg_ros.training.data import SegmentClips, collate_clips  # noqa: E402
from actiseg_ros.training.modeling.mask_decoder import gate_by_activity  # noqa: E402
from actiseg_ros.training.objective import compute_loss, object_mask_loss  # noqa: E402
from conftest import run_actiseg as run  # noqa: E402

pytestmark = pytest.mark.training  # real torch models, exports or training steps

TINY = configs_dir() / "tiny.yaml"


def hand_made(object_logit=0.0, positive_logit=-3.0):
    """One clip, one frame, two prompt slots (the second is padding), 4x4 pixels, at the logits' own size.

    The valid prompt is a NEGATIVE object covering the left half: its action target is empty, its object
    mask is not."""
    objects = torch.zeros(1, 1, 2, 4, 4, dtype=torch.bool)
    objects[0, 0, 0, :, :2] = True
    objects[0, 0, 1] = True  # the padded slot's pixels must not count
    object_logits = torch.full((2, 4, 4), object_logit, requires_grad=True)
    positive_logits = torch.full((2,), positive_logit, requires_grad=True)
    outputs = {"object_logits": object_logits, "positive_logits": positive_logits,
               "mask_logits": gate_by_activity(object_logits, positive_logits).view(1, 2, 4, 4),
               "layer_mask_logits": []}
    batch = {"targets": torch.zeros(1, 1, 2, 4, 4), "weights": torch.where(objects, 5.0, 1.0).float(),
             "objects": objects, "positive": torch.zeros(1, 2), "valid": torch.tensor([[True, False]])}
    return outputs, batch


def test_object_mask_loss_is_focal_plus_dice_on_the_objects_own_mask():
    outputs, batch = hand_made(object_logit=0.0)
    target = torch.zeros(1, 4, 4)
    target[0, :, :2] = 1
    # By hand: p = 0.5 everywhere. Focal per pixel: alpha_t * 0.25 * ln 2, alpha_t 0.25 on the object (8 px)
    # and 0.75 off it (8 px); dice: 1 - (2 * 4 + 1) / (8 + 8 + 1) (sum of p = 8, object area 8).
    focal = (8 * 0.25 + 8 * 0.75) * 0.25 * np.log(2) / 16
    dice = 1 - 9 / 17
    expected = losses.MASK_FOCAL_WEIGHT * focal + losses.MASK_DICE_WEIGHT * dice
    assert float(object_mask_loss(outputs, batch).detach()) == pytest.approx(expected, rel=1e-5)
    base = losses.base_mask_loss(outputs["object_logits"][:1], target)[0]
    assert float(base.detach()) == pytest.approx(expected, rel=1e-5)


def test_object_mask_loss_raises_a_negative_objects_logits_and_leaves_the_positive_head_alone():
    outputs, batch = hand_made(object_logit=-4.0)
    object_mask_loss(outputs, batch).backward()
    grad = outputs["object_logits"].grad
    assert (grad[0, :, :2] < 0).all()  # descent raises the logits on the object ...
    assert (grad[0, :, 2:] > 0).all()  # ... lowers them off it
    assert (grad[1] == 0).all()  # the padded slot takes no part
    assert outputs["positive_logits"].grad is None


@pytest.mark.parametrize("weight", [0.0, 1.0, 2.5])
def test_compute_loss_adds_the_weighted_object_term_only_when_configured(weight):
    config = load_config(TINY, {"loss.pmhm": False, "model.aux_heads": 0, "loss.deep_supervision": False,
                                "loss.object_mask": weight})
    outputs, batch = hand_made(object_logit=1.0, positive_logit=-1.0)
    total, parts = compute_loss(outputs, batch, config, progress=0.0, epoch=0)
    expected = parts["mask"] + config.loss.positive * parts["positive"]
    if weight:
        assert float(parts["object"]) == pytest.approx(float(object_mask_loss(outputs, batch).detach()))
        expected = expected + weight * parts["object"]
    else:
        assert "object" not in parts
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-6)


def test_object_mask_weight_is_validated():
    with pytest.raises(ValueError, match="object_mask must be >= 0"):
        load_config(TINY, {"loss.object_mask": -1.0})
    with pytest.raises(ValueError, match="activity_gate"):
        load_config(TINY, {"loss.object_mask": 1.0, "model.activity_gate": False})
    assert load_config(configs_dir() / "default.yaml").loss.object_mask > 0  # the shipped recipe uses it


def test_clips_carry_every_objects_own_pixels_even_when_its_target_is_empty(tiny_data):
    clips = SegmentClips(tiny_data, "train", (64, 96), frames_per_clip=2)
    checked_negatives = 0
    for index, segment in enumerate(clips.segments):
        sample = clips[index]
        for j, object_id in enumerate(sample.object_ids):
            objects, targets = sample.objects[:, j], sample.targets[:, j]
            assert objects.dtype == torch.bool and objects.shape == targets.shape
            if segment.objects[object_id].positive:
                assert torch.equal(objects, targets > 0)  # clean labels: the action target is the object
            elif objects.any():
                assert not targets.any()
                checked_negatives += 1
        frame = segment.sparse_frames[int(sample.frames[0])]
        labels = letterbox_labels(actionvos.read_label_png(
            actionvos.annotation_path(tiny_data, "train", segment.name, frame)), (64, 96))
        for j, object_id in enumerate(sample.object_ids):
            assert np.array_equal(sample.objects[0, j].numpy(), labels == object_id)
    assert checked_negatives > 0, "the tiny preset should have visible negative objects"
    batch = collate_clips([clips[0], clips[1]])
    k = batch["valid"].shape[1]
    assert batch["objects"].shape == batch["targets"].shape and batch["objects"].dtype == torch.bool
    assert not batch["objects"][~batch["valid"].view(2, 1, k, 1, 1).expand_as(batch["objects"])].any()


def test_one_training_step_with_the_object_mask_term_logs_it(tiny_data, tmp_path):
    sets = ["--set", "loss.object_mask=1.0", "--set", "max_steps=2", "--set", "log_every=1",
            "--set", "data_root=%s" % tiny_data]
    result = run(["train", "--config", str(TINY), "--out", str(tmp_path)] + sets)
    assert result.returncode == 0, result.stderr[-3000:]
    header, *rows = (tmp_path / "train_log.csv").read_text().strip().splitlines()
    column = header.split(",").index("object")
    assert len(rows) == 2 and all(float(row.split(",")[column]) > 0 for row in rows)
