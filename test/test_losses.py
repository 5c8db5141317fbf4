"""Unit tests of the base losses (training/losses.py) on hand-made tensors with hand-computed values."""
import math

import numpy as np
import pytest
import torch

from actiseg_ros.training import losses

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)


def _focal_pixel(p, t, w=1.0, alpha=0.25, gamma=2.0):
    bce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    return w * alpha_t * (1 - p_t) ** gamma * bce


# ------------------------------------------------------------------------------------------ weight remapping
def test_remap_action_weights_follows_actionvos_order():
    raw = np.array([[1, 2, 3], [4, 3, 1]], dtype=np.uint8)
    mask = np.array([[False, True, False], [True, True, True]])
    target, weight = losses.remap_action_weights(raw, mask)
    # weight 1 off the object (even on another object's raw 3), raw inside; 3 and 4 -> 5.
    np.testing.assert_array_equal(weight, [[1, 2, 1], [5, 5, 1]])
    # target = object mask, zeroed where raw == 3 (negative-object pixels keep weight 5).
    np.testing.assert_array_equal(target, [[0, 1, 0], [1, 0, 1]])
    assert target.dtype == np.float32 and weight.dtype == np.float32
    assert set(np.unique(weight)) <= {1.0, 2.0, 5.0}


def test_remap_action_weights_negative_object_and_torch_input():
    raw = torch.tensor([[3, 3], [1, 1]], dtype=torch.uint8)
    mask = torch.tensor([[True, True], [False, False]])
    target, weight = losses.remap_action_weights(raw, mask, positive=False)
    assert isinstance(target, torch.Tensor) and isinstance(weight, torch.Tensor)
    assert torch.equal(target, torch.zeros(2, 2))
    assert torch.equal(weight, torch.tensor([[5.0, 5.0], [1.0, 1.0]]))
    positive_target, _ = losses.remap_action_weights(np.array([[2, 4]], np.uint8), np.array([[True, True]]))
    np.testing.assert_array_equal(positive_target, [[1, 1]])


def test_remap_action_weights_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 7\]"):
        losses.remap_action_weights(np.array([[0, 7, 1]], np.uint8), np.zeros((1, 3), bool))
    with pytest.raises(ValueError, match="shape"):
        losses.remap_action_weights(np.ones((2, 2), np.uint8), np.zeros((2, 3), bool))


# ------------------------------------------------------------------------------------------ focal and dice
def test_weighted_focal_by_hand():
    logits = torch.tensor([[[0.0, LN3]]])  # p = 0.5, 0.75
    target = torch.tensor([[[1.0, 0.0]]])
    weight = torch.tensor([[[2.0, 5.0]]])
    expected = (_focal_pixel(0.5, 1, 2.0) + _focal_pixel(0.75, 0, 5.0)) / 2
    # written out: (2 * 0.25 * 0.5^2 * ln2 + 5 * 0.75 * 0.75^2 * ln4) / 2
    assert expected == pytest.approx((2 * 0.25 * 0.25 * LN2 + 5 * 0.75 * 0.5625 * LN4) / 2)
    value = losses.weighted_sigmoid_focal(logits, target, weight)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    unweighted = losses.weighted_sigmoid_focal(logits, target)
    assert unweighted.item() == pytest.approx((_focal_pixel(0.5, 1) + _focal_pixel(0.75, 0)) / 2, rel=1e-6)


def test_focal_averages_over_valid_samples_only():
    logits = torch.tensor([[[0.0, LN3]], [[-9.0, 9.0]]])
    target = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])
    valid = torch.tensor([True, False])
    first = losses.weighted_sigmoid_focal(logits[:1], target[:1])
    assert losses.weighted_sigmoid_focal(logits, target, valid=valid).item() == pytest.approx(first.item())
    per_sample = losses.weighted_sigmoid_focal(logits, target, valid=valid, reduction="none")
    assert per_sample.shape == (2,) and per_sample[1].item() == 0.0
    both = losses.weighted_sigmoid_focal(logits, target, reduction="none")
    assert losses.weighted_sigmoid_focal(logits, target).item() == pytest.approx(both.mean().item())


def test_no_valid_sample_gives_zero_with_working_backward():
    logits = torch.zeros(2, 3, 3, requires_grad=True)
    value = losses.weighted_sigmoid_focal(logits, torch.ones(2, 3, 3), valid=torch.tensor([False, False]))
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(logits.grad, torch.zeros(2, 3, 3))


def test_dice_by_hand_with_and_without_region():
    logits = torch.tensor([[[0.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0]]])
    # 1 - (2 * 0.5 + 1) / (1.0 + 1 + 1) = 1/3
    assert losses.dice_loss(logits, target).item() == pytest.approx(1 / 3)
    # Region keeps the first pixel only: 1 - (2 * 0.5 + 1) / (0.5 + 1 + 1) = 0.2
    region = torch.tensor([[[True, False]]])
    assert losses.dice_loss(logits, target, region=region).item() == pytest.approx(0.2)
    assert losses.dice_loss(logits, target, region=torch.zeros(1, 1, 2, dtype=torch.bool)).item() == 0.0


def test_positive_focal_by_hand_and_valid():
    logits = torch.tensor([0.0, LN3])
    target = torch.tensor([1.0, 0.0])
    expected = (_focal_pixel(0.5, 1) + _focal_pixel(0.75, 0)) / 2
    assert losses.positive_focal(logits, target).item() == pytest.approx(expected, rel=1e-6)
    masked = losses.positive_focal(logits.view(1, 2), target.view(1, 2), valid=torch.tensor([[True, False]]))
    assert masked.item() == pytest.approx(_focal_pixel(0.5, 1), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        losses.positive_focal(logits, target[:1])


# ------------------------------------------------------------------------------------------ tversky and KL
def test_tversky_by_hand():
    probs = torch.tensor([[[0.8, 0.6, 0.1]]])
    target = torch.tensor([[[1.0, 0.0, 1.0]]])
    # TP 0.9, FP 0.6, FN 0.2 + 0.9 = 1.1
    expected = 1 - 0.9 / (0.9 + 0.7 * 0.6 + 0.5 * 1.1)
    assert losses.tversky_loss(probs, target, smooth=0.0).item() == pytest.approx(expected)
    assert losses.tversky_loss(probs, target).item() == pytest.approx(1 - 1.9 / (1.9 + 0.7 * 0.6 + 0.5 * 1.1))
    region = torch.tensor([[[True, True, False]]])  # TP 0.8, FP 0.6, FN 0.2
    value = losses.tversky_loss(probs, target, region, alpha=0.6, beta=0.4)
    assert value.item() == pytest.approx(1 - 1.8 / (1.8 + 0.6 * 0.6 + 0.4 * 0.2))
    assert losses.tversky_loss(probs, target, torch.zeros_like(region)).item() == 0.0


def test_symmetric_bernoulli_kl_by_hand():
    p = torch.tensor([[[0.8, 0.3]]])
    q = torch.tensor([[[0.5, 0.3]]])
    kl_pq = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)
    kl_qp = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    expected_map = [[[kl_pq + kl_qp, 0.0]]]
    assert torch.allclose(losses.symmetric_bernoulli_kl_map(p, q), torch.tensor(expected_map), atol=1e-6)
    assert losses.symmetric_bernoulli_kl(p, q).item() == pytest.approx((kl_pq + kl_qp) / 2, rel=1e-5)
    region = torch.tensor([[[True, False]]])
    assert losses.symmetric_bernoulli_kl(p, q, region).item() == pytest.approx(kl_pq + kl_qp, rel=1e-5)
    assert losses.symmetric_bernoulli_kl(p, q, torch.zeros_like(region)).item() == 0.0


# ------------------------------------------------------------------------------------------ sobel
def test_sobel_magnitude_of_a_vertical_step():
    step = torch.tensor([[[0.0, 0.0, 1.0]] * 3])  # (1, 3, 3)
    expected = torch.tensor([[[0.0, 0.5, 0.5]] * 3])
    assert torch.allclose(losses.sobel_magnitude(step), expected)


def test_sobel_replicate_padding_invents_no_border_edge():
    assert torch.equal(losses.sobel_magnitude(torch.ones(2, 4, 5)), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="N, H, W"):
        losses.sobel_magnitude(torch.ones(4, 5))


# ------------------------------------------------------------------------------------------ combination, grads
def test_base_mask_loss_combines_focal_and_dice():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 7, requires_grad=True)
    target = (torch.rand(3, 6, 7) > 0.5).float()
    weight = torch.tensor([1.0, 2.0, 5.0])[torch.randint(0, 3, (3, 6, 7))]
    total, parts = losses.base_mask_loss(logits, target, weight)
    assert total.item() == pytest.approx(2 * parts["focal"].item() + 5 * parts["dice"].item(), rel=1e-6)
    total.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    per_sample, _ = losses.base_mask_loss(logits, target, weight, reduction="none")
    assert per_sample.shape == (3,)


@pytest.mark.parametrize("name", ["focal", "dice", "tversky", "kl"])
def test_gradients_are_finite_and_non_zero(name):
    torch.manual_seed(1)
    logits = (torch.randn(2, 5, 5) * 30).requires_grad_()  # saturated logits too
    target = (torch.rand(2, 5, 5) > 0.5).float()
    if name == "focal":
        value = losses.weighted_sigmoid_focal(logits, target, torch.full_like(target, 2.0))
    elif name == "dice":
        value = losses.dice_loss(logits, target)
    elif name == "tversky":
        value = losses.tversky_loss(torch.sigmoid(logits / 30), target)
    else:
        value = losses.symmetric_bernoulli_kl(torch.sigmoid(logits / 30), torch.full_like(target, 0.3))
    value.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="does not match"):
        losses.dice_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="valid"):
        losses.dice_loss(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), valid=torch.ones(3, dtype=torch.bool))
