"""Base losses of the actiseg model (spec sections 2 and 3), as pure torch functions.

Tensor conventions shared by every loss in this package:
- `logits`: (N, H, W) float mask logits, one row per (frame, prompt) pair.
- `target`: (N, H, W) float in {0, 1}.
- `weight`: (N, H, W) float action-guided per-pixel weights in {1, 2, 5} (see `remap_action_weights`).
- `valid`: optional (N,) bool; False rows (padded prompts) take no part in any loss.

Reduction, used everywhere unless a docstring says otherwise: a per-sample value is computed for each row
(usually the mean over its H*W pixels), then `reduction="mean"` averages it over the valid rows and
`reduction="none"` returns the (N,) per-sample values (invalid rows hold 0). Averaging over valid rows is
what ReferFormer's `loss.mean(1).sum() / num_boxes` does, num_boxes being the number of valid rows. With no
valid row the mean is an exact 0 that still belongs to the autograd graph, so `backward()` never fails.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Loss weights of the base recipe (spec section 3).
MASK_FOCAL_WEIGHT = 2.0
MASK_DICE_WEIGHT = 5.0
POSITIVE_WEIGHT = 2.0
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0

# Raw weight-map categories (spec section 2) and the loss weights they map to.
RAW_OTHER, RAW_HAND_OR_NARRATION, RAW_NEGATIVE, RAW_HAND_AND_NARRATION = 1, 2, 3, 4
REMAPPED_HIGH_WEIGHT = 5


def remap_action_weights(raw_weight, object_mask, positive: bool = True):
    """Target mask and per-pixel loss weights of one object in one frame (spec section 2).

    Args:
        raw_weight: (H, W) uint8 weight map of the whole frame, numpy array or torch tensor, values in
            {1, 2, 3, 4}: 1 other pixels, 2 hand-or-narration object, 3 negative object,
            4 hand-and-narration object.
        object_mask: (H, W) bool, the pixels of this object (annotation == object id).
        positive: the object's positive flag; a negative (inactive) object gets an all-zero target, as in
            ActionVOS, while its pixels keep their weight.

    Returns:
        (target, weight), both (H, W) float32 and of the same kind (numpy or torch) as `raw_weight`:
        target in {0, 1}, weight in {1, 2, 5}.

    The steps follow the ActionVOS loader in this order: weight := 1 wherever the object mask is 0;
    target := 0 wherever the raw weight is 3; weights >= 3 become 5. Because the weight is reset from the
    object mask *before* the target is zeroed, the pixels of a negative object keep weight 5 with target 0:
    predicting them as foreground is penalised five times harder, which is the point of the action-guided
    loss. (Reading the spec's sentence in the other order would silently give those pixels weight 1.)
    """
    as_torch = isinstance(raw_weight, torch.Tensor)
    raw = raw_weight.detach().cpu().numpy() if as_torch else np.asarray(raw_weight)
    mask = object_mask.detach().cpu().numpy() if isinstance(object_mask, torch.Tensor) else np.asarray(object_mask)
    if raw.ndim != 2:
        raise ValueError(f"raw_weight must be (H, W), got shape {raw.shape}")
    if mask.shape != raw.shape:
        raise ValueError(f"object_mask shape {mask.shape} differs from raw_weight shape {raw.shape}")
    bad = ~np.isin(raw, (RAW_OTHER, RAW_HAND_OR_NARRATION, RAW_NEGATIVE, RAW_HAND_AND_NARRATION))
    if bad.any():
        values = sorted(int(v) for v in np.unique(raw[bad]))
        raise ValueError(f"raw_weight holds values {values} outside the weight-map categories 1/2/3/4")
    mask = mask.astype(bool)
    weight = np.where(mask, raw, RAW_OTHER).astype(np.float32)
    target = np.where(raw == RAW_NEGATIVE, 0.0, mask.astype(np.float32)).astype(np.float32)
    if not positive:
        target = np.zeros_like(target)
    weight = np.where(weight >= RAW_NEGATIVE, float(REMAPPED_HIGH_WEIGHT), weight).astype(np.float32)
    if as_torch:
        return torch.from_numpy(target), torch.from_numpy(weight)
    return target, weight


def check_mask_shapes(logits: torch.Tensor, *others: torch.Tensor | None, valid: torch.Tensor | None = None) -> None:
    """Raise ValueError unless `logits` is (N, H, W), every other tensor matches it and `valid` is (N,)."""
    if logits.dim() != 3:
        raise ValueError(f"mask logits must be (N, H, W), got shape {tuple(logits.shape)}")
    for other in others:
        if other is not None and other.shape != logits.shape:
            raise ValueError(f"tensor of shape {tuple(other.shape)} does not match logits {tuple(logits.shape)}")
    if valid is not None and valid.shape != logits.shape[:1]:
        raise ValueError(f"valid must be ({logits.shape[0]},), got shape {tuple(valid.shape)}")


def reduce_samples(per_sample: torch.Tensor, valid: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Reduce (N,) per-sample losses: 'mean' over the valid rows (0 if none), or 'none' (invalid rows -> 0)."""
    if valid is not None:
        per_sample = torch.where(valid.to(per_sample.device), per_sample, per_sample.new_zeros(()))
    if reduction == "none":
        return per_sample
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    count = per_sample.numel() if valid is None else valid.sum()
    return per_sample.sum() / torch.clamp(torch.as_tensor(count, dtype=per_sample.dtype, device=per_sample.device),
                                          min=1)


def region_mean(values: torch.Tensor, region: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of (N, H, W) `values` over the pixels of `region` (all if None) in the valid rows; 0 if none.

    One pooled mean over the whole batch (not per sample), so rows with a larger region weigh more.
    """
    selected = torch.ones_like(values, dtype=torch.bool) if region is None else region.to(torch.bool)
    if valid is not None:
        selected = selected & valid.to(values.device).view(-1, *([1] * (values.dim() - 1)))
    selected = selected.to(values.dtype)
    return (values * selected).sum() / torch.clamp(selected.sum(), min=1.0)


def weighted_sigmoid_focal(logits, target, weight=None, valid=None, alpha: float = FOCAL_ALPHA,
                           gamma: float = FOCAL_GAMMA, reduction: str = "mean") -> torch.Tensor:
    """Action-guided sigmoid focal loss (spec section 3).

    Per pixel: w * alpha_t * (1 - p_t)^gamma * BCE(logit, t), with p = sigmoid(logit),
    p_t = p t + (1-p)(1-t), alpha_t = alpha t + (1-alpha)(1-t). Per sample: the mean over its H*W pixels
    (a zero weight removes a pixel from the numerator only, as in ActionVOS). Then `reduce_samples`.

    Shapes: logits, target, weight (N, H, W); weight None means all ones; valid (N,) or None.
    """
    check_mask_shapes(logits, target, weight, valid=valid)
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    per_pixel = alpha_t * (1 - p_t) ** gamma * bce
    if weight is not None:
        per_pixel = per_pixel * weight
    return reduce_samples(per_pixel.flatten(1).mean(1), valid, reduction)


def dice_loss(logits, target, valid=None, region=None, smooth: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Soft dice loss per sample: 1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth), p = sigmoid(logits).

    `region` (N, H, W) bool, optional: only its pixels enter the sums (p and t are zeroed elsewhere). An
    empty region or an empty target with an all-zero prediction gives 0. Then `reduce_samples`.
    """
    check_mask_shapes(logits, target, region, valid=valid)
    prob = torch.sigmoid(logits)
    if region is not None:
        inside = region.to(prob.dtype)
        prob, target = prob * inside, target * inside
    numerator = 2 * (prob * target).flatten(1).sum(1) + smooth
    denominator = prob.flatten(1).sum(1) + target.flatten(1).sum(1) + smooth
    return reduce_samples(1 - numerator / denominator, valid, reduction)


def positive_focal(logits, target, valid=None, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Sigmoid focal loss of the positive-class head, averaged over all (valid) elements.

    Shapes: logits and target (N,) or (B, K), same shape; target in {0, 1} ("any frame positive");
    valid, optional, same shape, bool. ReferFormer's positive loss is this mean (num_boxes = batch size).
    """
    if logits.shape != target.shape:
        raise ValueError(f"positive target shape {tuple(target.shape)} differs from logits {tuple(logits.shape)}")
    if valid is not None and valid.shape != logits.shape:
        raise ValueError(f"positive valid shape {tuple(valid.shape)} differs from logits {tuple(logits.shape)}")
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    per_element = alpha_t * (1 - p_t) ** gamma * bce
    if valid is None:
        return per_element.mean()
    keep = valid.to(per_element.dtype)
    return (per_element * keep).sum() / torch.clamp(keep.sum(), min=1.0)


def tversky_loss(probs, target, region=None, alpha: float = 0.7, beta: float = 0.5, smooth: float = 1.0,
                 valid=None, reduction: str = "mean") -> torch.Tensor:
    """Tversky loss per sample on a region: 1 - (TP + smooth) / (TP + alpha FP + beta FN + smooth).

    probs: (N, H, W) foreground probabilities (not logits); target (N, H, W) in {0, 1}; region (N, H, W)
    bool or None (all pixels). TP = sum(p t), FP = sum(p (1-t)), FN = sum((1-p) t) over the region.
    `smooth` = 1 (as in the dice loss) makes an empty region cost 0 and keeps a useful gradient on rows
    whose region holds no foreground (there TP = 0 and the loss is alpha FP / (alpha FP + 1)). Then
    `reduce_samples`. alpha > beta penalises false positives (boundary leakage) more.
    """
    check_mask_shapes(probs, target, region, valid=valid)
    if region is not None:
        inside = region.to(probs.dtype)
        probs, target = probs * inside, target * inside
    tp = (probs * target).flatten(1).sum(1)
    fp = (probs * (1 - target)).flatten(1).sum(1)
    fn = ((1 - probs) * target).flatten(1).sum(1)
    return reduce_samples(1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth), valid, reduction)


def symmetric_bernoulli_kl_map(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-element KL(p || q) + KL(q || p) of Bernoulli distributions with means p and q (same shape).

    Both are clamped to [eps, 1 - eps] so that saturated probabilities give finite values and gradients.
    """
    if p.shape != q.shape:
        raise ValueError(f"probability maps differ in shape: {tuple(p.shape)} vs {tuple(q.shape)}")
    p = p.clamp(eps, 1 - eps)
    q = q.clamp(eps, 1 - eps)
    # KL(p||q) + KL(q||p) for Bernoulli collapses to (p - q) * (logit p - logit q).
    return (p - q) * (torch.log(p) - torch.log1p(-p) - torch.log(q) + torch.log1p(-q))


def symmetric_bernoulli_kl(p, q, region=None, valid=None, eps: float = 1e-6) -> torch.Tensor:
    """Symmetric Bernoulli KL of two (N, H, W) probability maps, pooled mean over `region` pixels.

    The mean runs over the pixels of `region` (all if None) of the valid rows of the whole batch; an
    empty selection gives 0. Gradients reach both p and q.
    """
    check_mask_shapes(p, q, region, valid=valid)
    return region_mean(symmetric_bernoulli_kl_map(p, q, eps), region, valid)


_SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
_SOBEL_Y = _SOBEL_X.t().contiguous()


def sobel_magnitude(prob: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude sqrt(gx^2 + gy^2) of (N, H, W) maps with the 3x3 Sobel kernels divided by 8.

    Returns (N, H, W). Replicate padding: an object touching the image border has no edge there (zero
    padding would invent one). With the /8 normalisation a 0 -> 1 step gives 0.5 next to the step.
    Used without gradient (PMHM regions); the magnitude is not differentiable where both gradients are 0.
    """
    if prob.dim() != 3:
        raise ValueError(f"sobel_magnitude expects (N, H, W), got shape {tuple(prob.shape)}")
    kernels = torch.stack([_SOBEL_X, _SOBEL_Y]).unsqueeze(1).to(device=prob.device, dtype=prob.dtype)  # (2, 1, 3, 3)
    padded = F.pad(prob.unsqueeze(1), (1, 1, 1, 1), mode="replicate")  # (N, 1, H+2, W+2)
    grads = F.conv2d(padded, kernels)  # (N, 2, H, W)
    return torch.hypot(grads[:, 0], grads[:, 1])


def base_mask_loss(logits, target, weight=None, valid=None, reduction: str = "mean"):
    """Mask loss of the base recipe: 2 * action-guided focal + 5 * dice (spec section 3).

    Returns (total, parts) with parts = {"focal": ..., "dice": ...} unweighted and detached. With
    reduction="none" every value is (N,) per sample (for co-teaching's per-clip ranking).
    The positive head's loss is separate: POSITIVE_WEIGHT * positive_focal(...).
    """
    focal = weighted_sigmoid_focal(logits, target, weight, valid, reduction=reduction)
    dice = dice_loss(logits, target, valid, reduction=reduction)
    total = MASK_FOCAL_WEIGHT * focal + MASK_DICE_WEIGHT * dice
    return total, {"focal": focal.detach(), "dice": dice.detach()}
