"""Unit tests of the six label-noise-learning strategies (training/lnl.py) on hand-made tensors."""
import math

import pytest
import torch

from actiseg_ros.training import lnl, losses

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)
MINUS_LOG_FLOOR = -math.log(1e-4)  # 9.2103...

# Two pixels: p = 0.5 with label 1, p = 0.75 with label 0.
LOGITS = torch.tensor([[[0.0, LN3]]])
TARGET = torch.tensor([[[1.0, 0.0]]])


def _gce(p_y, q=0.7):
    return (1 - p_y ** q) / q


# ------------------------------------------------------------------------------------------ SCE, GCE, APL
def test_sce_by_hand():
    first = 0.1 * LN2 + 1.0 * 0.5 * MINUS_LOG_FLOOR  # BCE ln2; RCE = -(0.5 log 1 + 0.5 log 1e-4)
    second = 0.1 * LN4 + 1.0 * 0.75 * MINUS_LOG_FLOOR  # BCE -log 0.25; RCE = -(0.75 log 1e-4 + 0.25 log 1)
    assert lnl.sce_loss(LOGITS, TARGET).item() == pytest.approx((first + second) / 2, rel=1e-6)
    weighted = lnl.sce_loss(LOGITS, TARGET, torch.tensor([[[2.0, 5.0]]]))
    assert weighted.item() == pytest.approx((2 * first + 5 * second) / 2, rel=1e-6)


def test_gce_by_hand_and_stable_at_saturation():
    expected = (_gce(0.5) + _gce(0.25)) / 2
    assert lnl.gce_loss(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)
    logits = torch.tensor([[[-200.0, 200.0]]], requires_grad=True)  # p_y underflows to 0 in float32
    value = lnl.gce_loss(logits, TARGET)
    assert value.item() == pytest.approx(1 / 0.7, rel=1e-6)
    value.backward()
    assert torch.isfinite(logits.grad).all()


def test_apl_by_hand_with_clamped_logits_and_weights():
    logits = torch.tensor([[[0.0, 20.0]]], requires_grad=True)
    weight = torch.tensor([[[2.0, 5.0]]])
    p_clamped = 1 / (1 + math.exp(-10.0))  # the logit 20 is clamped to 10
    first = (10 * _gce(0.5) + 1 * 0.5) * 2
    second = (10 * _gce(1 - p_clamped) + 1 * p_clamped) * 5
    value = lnl.apl_loss(logits, TARGET, weight)
    assert value.item() == pytest.approx((first + second) / 2, rel=1e-6)
    value.backward()
    assert logits.grad[0, 0, 0] != 0 and logits.grad[0, 0, 1] == 0  # the clamp stops the gradient


def test_strategy_totals_add_their_terms_to_the_base_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 6)
    target = (torch.rand(2, 5, 6) > 0.5).float()
    weight = torch.tensor([1.0, 2.0, 5.0])[torch.randint(0, 3, (2, 5, 6))]
    base, _ = losses.base_mask_loss(logits, target, weight)
    total, parts = lnl.sce_mask_loss(logits, target, weight)
    assert total.item() == pytest.approx((base + 2 * lnl.sce_loss(logits, target)).item(), rel=1e-6)
    assert set(parts) == {"focal", "dice", "sce"}
    total, parts = lnl.gce_mask_loss(logits, target, weight)
    assert total.item() == pytest.approx((base + 2 * lnl.gce_loss(logits, target)).item(), rel=1e-6)
    total, parts = lnl.apl_mask_loss(logits, target, weight)
    expected = 2 * lnl.apl_loss(logits, target, weight) + 5 * losses.dice_loss(logits, target)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("strategy", ["sce", "gce", "apl"])
def test_robust_losses_give_finite_non_zero_gradients(strategy):
    torch.manual_seed(2)
    logits = (torch.randn(2, 4, 4) * 5).requires_grad_()
    target = (torch.rand(2, 4, 4) > 0.5).float()
    total, _ = getattr(lnl, f"{strategy}_mask_loss")(logits, target, torch.ones_like(target))
    total.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------ ELR
def test_elr_targets_moving_average_by_hand():
    targets = lnl.ELRTargets(storage_dtype=torch.float32)
    first = targets.update(["clip0/f0"], torch.full((1, 2, 2), 0.5))
    assert torch.allclose(first, torch.full((1, 2, 2), 0.495))  # 0.01 * 0 + 0.99 * 0.5
    second = targets.update(["clip0/f0"], torch.full((1, 2, 2), 0.8))
    assert torch.allclose(second, torch.full((1, 2, 2), 0.01 * 0.495 + 0.99 * 0.8))
    # Another key starts afresh; a repeated key keeps its own history.
    both = targets.update(["clip1/f0", "clip0/f0"], torch.full((2, 2, 2), 0.2))
    assert torch.allclose(both[0], torch.full((2, 2), 0.99 * 0.2))
    assert torch.allclose(both[1], torch.full((2, 2), 0.01 * (0.01 * 0.495 + 0.99 * 0.8) + 0.99 * 0.2))
    assert len(targets) == 2


def test_elr_targets_default_storage_resize_and_state():
    targets = lnl.ELRTargets()
    targets.update([("clip", 3)], torch.full((1, 2, 2), 1.0))
    resized = targets.update([("clip", 3)], torch.zeros(1, 4, 4))  # a new resolution resamples the old map
    assert resized.shape == (1, 4, 4)
    assert torch.allclose(resized, torch.full((1, 4, 4), 0.01 * 0.99), atol=1e-4)
    restored = lnl.ELRTargets()
    restored.load_state_dict(targets.state_dict())
    again = restored.update([("clip", 3)], torch.zeros(1, 4, 4))
    assert torch.allclose(again, 0.01 * resized, atol=1e-6)
    with pytest.raises(ValueError, match="keys"):
        targets.update(["a"], torch.zeros(2, 4, 4))


def test_elr_regulariser_uses_the_moving_target_by_hand():
    logits = torch.tensor([[[0.0, LN3]]], requires_grad=True)  # p = 0.5, 0.75
    elr_target = torch.tensor([[[0.8, 0.2]]])
    # <p, t> = 0.5*0.8 + 0.5*0.2 = 0.5 and 0.75*0.2 + 0.25*0.8 = 0.35
    expected = 5e-4 * (math.log(1 - 0.5) + math.log(1 - 0.35)) / 2
    value = lnl.elr_regulariser(logits, elr_target)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    # Gradient descent moves p towards t: up for the first pixel (t 0.8), down for the second (t 0.2).
    assert logits.grad[0, 0, 0] < 0 and logits.grad[0, 0, 1] > 0


def test_elr_mask_loss_total():
    logits = torch.tensor([[[0.0, LN3]]])
    weight = torch.tensor([[[2.0, 5.0]]])
    elr_target = torch.tensor([[[0.8, 0.2]]])
    total, parts = lnl.elr_mask_loss(logits, TARGET, weight, elr_target)
    base, _ = losses.base_mask_loss(logits, TARGET, weight)
    assert total.item() == pytest.approx((base + 2 * lnl.elr_regulariser(logits, elr_target)).item(), rel=1e-6)
    assert parts["elr"].item() < 0


# ------------------------------------------------------------------------------------------ NPN
def test_candidate_labels_by_hand():
    candidates = lnl.CandidateLabels()
    logits = torch.tensor([[[3.0, -3.0, 0.0, 0.5]]])  # p = 0.95, 0.05, 0.5, 0.62
    target = torch.tensor([[[0.0, 0.0, 1.0, 0.0]]])
    counts, current = candidates.update(["k"], logits, target)
    expected_current = torch.tensor([[[[True, True], [True, False], [False, True], [True, False]]]])
    assert torch.equal(current, expected_current)
    assert torch.equal(counts, expected_current.float())
    counts, _ = candidates.update(["k"], logits, target)
    assert torch.equal(counts, 2 * expected_current.float())
    fresh, _ = candidates.update(["other"], logits, target)
    assert torch.equal(fresh, expected_current.float())


def test_npn_pll_by_hand():
    logits = torch.tensor([[[0.0, LN3, 0.0, 5.0]]])
    counts = torch.tensor([[[[2.0, 1.0], [0.0, 3.0], [1.0, 1.0], [0.0, 0.0]]]])
    # label bg with share 2/3; fg with share 1; tie -> bg with share 1/2; nothing counted -> 0
    expected = (2 / 3 * LN2 + 1.0 * -math.log(0.75) + 0.5 * LN2 + 0.0) / 4
    assert lnl.npn_pll_loss(logits, counts).item() == pytest.approx(expected, rel=1e-6)


def test_npn_nl_by_hand():
    logits = torch.tensor([[[1.0, LN3, LN3]]])  # p = 0.73, 0.75, 0.75
    current = torch.tensor([[[[True, True], [True, False], [False, True]]]])
    # both candidates -> 0; fg excluded -> -log(1 - 0.75); bg excluded -> -log(1 - 0.25)
    expected = (0.0 + LN4 - math.log(0.75)) / 3
    assert lnl.npn_nl_loss(logits, current).item() == pytest.approx(expected, rel=1e-6)


def test_npn_consistency_by_hand():
    weak = torch.tensor([[[3.0, 0.5, -2.0]]], requires_grad=True)  # confident fg, unsure, confident bg
    strong = torch.tensor([[[0.0, 1.0, LN3]]], requires_grad=True)
    value = lnl.npn_consistency_loss(strong, weak)
    assert value.item() == pytest.approx((LN2 + LN4) / 2, rel=1e-6)  # BCE(0, 1) and BCE(ln3, 0)
    value.backward()
    assert weak.grad is None
    assert strong.grad[0, 0, 1] == 0 and strong.grad[0, 0, 0] != 0
    unsure = lnl.npn_consistency_loss(strong, torch.zeros(1, 1, 3))
    assert unsure.item() == 0.0


def test_npn_mask_loss_total_and_gradients():
    torch.manual_seed(4)
    weak = (torch.randn(2, 4, 4) * 3).requires_grad_()
    strong = (weak.detach() + torch.randn(2, 4, 4)).requires_grad_()
    target = (torch.rand(2, 4, 4) > 0.5).float()
    candidates = lnl.CandidateLabels()
    candidates.update(["a", "b"], weak, target)
    counts, current = candidates.update(["a", "b"], weak, target)
    total, parts = lnl.npn_mask_loss(weak, strong, target, counts, current)
    expected = 2 * (parts["pll"] + 0.1 * parts["nl"] + 0.2 * parts["cr"]) + 5 * parts["dice"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    total.backward()
    for tensor in (weak, strong):
        assert torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_photometric_strong_keeps_shape_range_and_clip_parameters():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 16, 16)
    strong = lnl.photometric_strong(images, generator)
    assert strong.shape == images.shape and strong.min() >= 0 and strong.max() <= 1
    assert (strong - images).abs().mean() > 0.01
    again = lnl.photometric_strong(images, torch.Generator().manual_seed(0))
    assert torch.equal(strong, again)
    # One parameter set per clip: identical frames of a clip differ only by the pixel noise.
    frames = torch.full((1, 2, 3, 32, 32), 0.5)
    clip = lnl.photometric_strong(frames, generator)
    difference = clip[0, 0] - clip[0, 1]
    assert abs(difference.mean().item()) < 0.01
    assert difference.std().item() == pytest.approx(0.03 * math.sqrt(2), rel=0.15)
    with pytest.raises(ValueError, match="images"):
        lnl.photometric_strong(torch.rand(2, 1, 8, 8))


# ------------------------------------------------------------------------------------------ co-teaching
def test_coteaching_keep_rate_schedule():
    assert lnl.coteaching_keep_rate(1) == pytest.approx(0.95)
    assert lnl.coteaching_keep_rate(4) == pytest.approx(0.95 - 0.1 * 3 / 6)
    assert lnl.coteaching_keep_rate(6) == pytest.approx(0.95 - 0.1 * 5 / 6)
    assert lnl.coteaching_keep_rate(7) == pytest.approx(0.85)
    assert lnl.coteaching_keep_rate(12) == pytest.approx(0.85)
    with pytest.raises(ValueError, match="1-based"):
        lnl.coteaching_keep_rate(0)


def test_coteaching_select_crosses_the_small_loss_samples():
    losses_a = torch.tensor([0.1, 0.9, 0.5, 0.3])
    losses_b = torch.tensor([0.8, 0.2, 0.4, 0.6])
    train_a, train_b = lnl.coteaching_select(losses_a, losses_b, 0.5)
    assert train_a.tolist() == [1, 2]  # B's two smallest losses are what A trains on
    assert train_b.tolist() == [0, 3]  # and A's two smallest are what B trains on
    one_a, one_b = lnl.coteaching_select(losses_a, losses_b, 0.1)  # floor(0.4) -> at least one
    assert one_a.tolist() == [1] and one_b.tolist() == [0]
    assert lnl.coteaching_select(torch.rand(128), torch.rand(128), 0.95)[0].numel() == 121
    with pytest.raises(ValueError, match="keep_fraction"):
        lnl.coteaching_select(losses_a, losses_b, 0.0)


def test_coteaching_buffer_groups_and_flushes():
    buffer = lnl.CoTeachingBuffer(group_size=4)
    clips = [("clip0", 0.1, 0.8), ("clip1", 0.9, 0.2), ("clip2", 0.5, 0.4), ("clip3", 0.3, 0.6)]
    for item, loss_a, loss_b in clips[:3]:
        assert buffer.add(item, loss_a, loss_b, keep_fraction=0.5) is None
    selection = buffer.add(*clips[3], keep_fraction=0.5)
    assert selection.for_a == ["clip1", "clip2"] and selection.for_b == ["clip0", "clip3"]
    assert len(buffer) == 0
    buffer.add("late", 1.0, 2.0, keep_fraction=0.5)
    last = buffer.flush(keep_fraction=0.5)
    assert last.for_a == ["late"] and last.for_b == ["late"]
    assert buffer.flush(keep_fraction=0.5) is None
    assert lnl.CoTeachingBuffer().group_size == 128
    with pytest.raises(ValueError, match="finite"):
        buffer.add("bad", float("nan"), 0.0, keep_fraction=0.5)


def test_per_clip_mean_by_hand():
    per_sample = torch.tensor([1.0, 3.0, 10.0, 4.0])
    clip_ids = torch.tensor([0, 0, 1, 1])
    assert lnl.per_clip_mean(per_sample, clip_ids, 3).tolist() == [2.0, 7.0, 0.0]
    valid = torch.tensor([True, True, False, True])
    assert lnl.per_clip_mean(per_sample, clip_ids, 2, valid).tolist() == [2.0, 4.0]
