"""PMHM, the Parallel Mask Head Mechanism against mask-boundary noise (spec section 6): regions and loss.

The auxiliary mask heads themselves live in the model; this module holds what the loss and the training
step need: the reliable / uncertain pixel regions, the robust mask loss that replaces the weighted focal
mask loss, the annealing of the Tversky alpha, the feature perturbation the auxiliary heads see, and the
per-step random freezing of auxiliary heads. Tensor conventions are those of `losses.py`.

Differences from the public reference (documented, deliberate):
- The Tversky alpha is annealed from 0.7 to 0.5 by `progress`, which the training loop must pass every
  step; the reference never calls its annealing, so its alpha stays 0.7.
- The focal loss on S keeps the action-guided weights (weight * S); the reference replaced them by S.
- The dice loss on S zeroes probabilities outside S; the reference zeroed logits, which turns every pixel
  outside S into probability 0.5 inside the dice sums.
- Quantiles, like every per-sample quantity here, are per (frame, prompt) row; the reference pooled a clip.
"""
from __future__ import annotations

import torch

from .losses import (
    MASK_DICE_WEIGHT,
    MASK_FOCAL_WEIGHT,
    check_mask_shapes,
    dice_loss,
    sobel_magnitude,
    symmetric_bernoulli_kl,
    tversky_loss,
    weighted_sigmoid_focal,
)

MARGIN_LOW_QUANTILE = 0.20  # tau_m: below it a pixel is uncertain
EDGE_HIGH_QUANTILE = 0.85  # tau_e: above it a pixel is uncertain
MARGIN_HIGH_QUANTILE = 0.60  # tau_h: at or above it (and heads agreeing) a pixel is reliable
TVERSKY_ALPHA_START = 0.7
TVERSKY_ALPHA_END = 0.5
TVERSKY_BETA = 0.5
TVERSKY_WEIGHT = 0.3
HEAD_CONSISTENCY_WEIGHT = 0.1
LAYER_CONSISTENCY_WEIGHT = 0.1
AUX_FEATURE_DROP = 0.2
AUX_NOISE_STD_RATIO = 0.2
AUX_FREEZE_PROBABILITY = 0.2


def per_sample_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """q-quantile of each row of (N, ...) values over all its other elements -> (N,).

    Linear interpolation between order statistics, as torch.quantile's default; written with a sort
    because torch.quantile refuses inputs of more than 2^24 elements (a large batch at full resolution).
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {q}")
    flat = values.flatten(1)
    if flat.shape[1] == 0:
        raise ValueError("cannot take a quantile of rows with no elements")
    ordered, _ = torch.sort(flat, dim=1)
    position = q * (flat.shape[1] - 1)
    low = int(position)
    high = min(low + 1, flat.shape[1] - 1)
    fraction = position - low
    return ordered[:, low] + (ordered[:, high] - ordered[:, low]) * fraction


@torch.no_grad()
def pmhm_regions(main_logits: torch.Tensor, aux_logits_list=()):
    """Reliable region S and uncertain region U of each row (spec section 6), without gradient.

    Args:
        main_logits: (N, H, W) logits of the main head.
        aux_logits_list: sequence of (N, H, W) logits of the auxiliary heads (0, 1 or 2 of them).

    Returns:
        (reliable, uncertain), both (N, H, W) bool. With p = sigmoid(main), margin M = |p - 0.5| and
        E = sobel_magnitude(p), per row: tau_m = Q0.20(M), tau_e = Q0.85(E), tau_h = Q0.60(M);
        U = (M < tau_m) | (E > tau_e); S = (main and every auxiliary head vote the same label, p > 0.5)
        & (M >= tau_h). Without auxiliary heads the vote always agrees and S = (M >= tau_h).
        S and U can overlap (an edge pixel with a high margin).
    """
    return _regions(main_logits, aux_logits_list, margin_of_logits=False, per_class=False)


def _regions(main_logits, aux_logits_list, margin_of_logits: bool, per_class: bool):
    """The spec's split (both flags False) or a named variant: the margin as |logit| instead of |p - 0.5|,
    and/or the three quantiles taken per predicted class instead of per row."""
    check_mask_shapes(main_logits, *aux_logits_list)
    prob = torch.sigmoid(main_logits.float())
    margin = main_logits.float().abs() if margin_of_logits else (prob - 0.5).abs()
    edge = sobel_magnitude(prob)
    main_vote = main_logits > 0  # sigmoid(x) > 0.5  <=>  x > 0
    if per_class:
        def threshold(values, q):
            return _class_thresholds(values, main_vote, q)
    else:
        def threshold(values, q):
            return per_sample_quantile(values, q).view(-1, 1, 1)
    tau_m = threshold(margin, MARGIN_LOW_QUANTILE)
    tau_e = threshold(edge, EDGE_HIGH_QUANTILE)
    tau_h = threshold(margin, MARGIN_HIGH_QUANTILE)
    uncertain = (margin < tau_m) | (edge > tau_e)
    agree = torch.ones_like(main_vote)
    for aux_logits in aux_logits_list:
        agree &= (aux_logits > 0) == main_vote
    reliable = agree & (margin >= tau_h)
    return reliable, uncertain


# --- named variants of the split (not the paper's method; chosen by loss.pmhm_regions, "spec" is the default) ---
# Why they exist (docs/robustness/standard/pmhm.md, benchmarks/pmhm_split_probe.py): on this data the spec's
# per-row quantiles are taken over frames whose sigmoids are >95% saturated background, so tau_h is margin 0.5,
# S is the saturated pixels and the correctly predicted object falls in U; focal and dice on S then train the
# background, plus whatever labelled foreground the model is sure is background (a dilation band).

def masked_row_quantile(values: torch.Tensor, members: torch.Tensor, q: float) -> torch.Tensor:
    """q-quantile of each row of (N, ...) `values` over the elements where `members` (same shape, bool) is
    True -> (N,), linear interpolation as `per_sample_quantile`; NaN for a row without members (every
    comparison with it is False, so such a row's pixels of that class join neither region by threshold)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {q}")
    flat = values.flatten(1).float()
    chosen = members.flatten(1)
    count = chosen.sum(1)
    ordered, _ = torch.sort(torch.where(chosen, flat, torch.full_like(flat, float("inf"))), dim=1)
    position = q * (count - 1).clamp(min=0).float()
    low = position.floor().long()
    high = torch.minimum(low + 1, (count - 1).clamp(min=0))
    fraction = position - low.float()
    low_value = ordered.gather(1, low.unsqueeze(1))[:, 0]
    high_value = ordered.gather(1, high.unsqueeze(1))[:, 0]
    result = low_value + (high_value - low_value) * fraction
    return torch.where(count > 0, result, torch.full_like(result, float("nan")))


def _class_thresholds(values: torch.Tensor, vote: torch.Tensor, q: float) -> torch.Tensor:
    """(N, H, W) map of each pixel's own class's q-quantile (per row, over the pixels of the same vote)."""
    fg = masked_row_quantile(values, vote, q).view(-1, 1, 1)
    bg = masked_row_quantile(values, ~vote, q).view(-1, 1, 1)
    return torch.where(vote, fg, bg)


@torch.no_grad()
def pmhm_regions_balanced(main_logits: torch.Tensor, aux_logits_list=()):
    """Variant "balanced": the spec's three quantile thresholds, taken per row separately over the pixels
    the main head votes foreground and over those it votes background; each pixel is judged against its
    own class's thresholds. S then holds the confident 40% of the predicted object as well as of the
    background, and U each class's least confident 20% and its sharpest-edged 15%. Same shapes as
    `pmhm_regions`."""
    return _regions(main_logits, aux_logits_list, margin_of_logits=False, per_class=True)


@torch.no_grad()
def pmhm_regions_logit(main_logits: torch.Tensor, aux_logits_list=()):
    """Variant "logit": the spec's split with the margin measured as |logit| instead of |p - 0.5|. The
    quantiles pick the same pixels except where float32 sigmoids saturate (|logit| above ~17 gives
    p == 0 or 1 exactly, so many pixels tie at margin 0.5 and `M < tau_m` can select fewer than 20%)."""
    return _regions(main_logits, aux_logits_list, margin_of_logits=True, per_class=False)


@torch.no_grad()
def pmhm_regions_balanced_logit(main_logits: torch.Tensor, aux_logits_list=()):
    """Variant "balanced_logit": both of the above, per-class quantiles of |logit|."""
    return _regions(main_logits, aux_logits_list, margin_of_logits=True, per_class=True)


REGION_VARIANTS = {"balanced": pmhm_regions_balanced, "logit": pmhm_regions_logit,
                   "balanced_logit": pmhm_regions_balanced_logit}
REGIONS = {"spec": pmhm_regions, **REGION_VARIANTS}


def tversky_alpha(progress: float, start: float = TVERSKY_ALPHA_START, end: float = TVERSKY_ALPHA_END) -> float:
    """Tversky alpha annealed linearly from `start` (progress 0) to `end` (progress 1).

    `progress` is the fraction of training done, in [0, 1], e.g. (epoch + step / steps_per_epoch) / epochs
    with a 0-based epoch; the training loop must pass it at every step.
    """
    progress = float(progress)
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"training progress must lie in [0, 1], got {progress}")
    return start + (end - start) * progress


def pmhm_mask_loss(main_logits, aux_logits_list, target, weight, progress: float,
                   intermediate_logits_list=None, valid=None, regions: str = "spec"):
    """PMHM mask loss (replaces the weighted focal mask loss and the dice loss of the base recipe).

    Args:
        main_logits: (N, H, W) final-layer logits of the main head.
        aux_logits_list: sequence of (N, H, W) logits of the auxiliary heads on the final decoder layer
            (empty allowed). They are trained only through the head-consistency term.
        target: (N, H, W) in {0, 1}; weight: (N, H, W) action-guided weights or None (all ones).
        progress: fraction of training done in [0, 1] (drives `tversky_alpha`).
        intermediate_logits_list: optional sequence of (N, H, W) main-head logits of earlier decoder layers.
        valid: optional (N,) bool.
        regions: how S and U are split: "spec" (`pmhm_regions`, spec section 6) or a named variant of
            REGION_VARIANTS ("balanced", "logit", "balanced_logit"), which is then not the paper's method.

    Returns:
        (total, parts). total = 2 focal_S + 5 dice_S + 0.3 tversky_U + 0.1 head + 0.1 layer, where
        - focal_S: `weighted_sigmoid_focal` with per-pixel weight `weight * S` (mean over all pixels, so
          its scale matches the base loss),
        - dice_S: `dice_loss` restricted to S,
        - tversky_U: `tversky_loss` on U with alpha = tversky_alpha(progress), beta 0.5,
        - head: mean over auxiliary heads of the symmetric Bernoulli KL between main and auxiliary
          probabilities, pooled over the U pixels (as in the reference: the heads should agree where the
          main head is unsure; elsewhere S already requires agreement),
        - layer: the same between the final and each intermediate layer's probabilities, pooled over U.
        parts holds these five unweighted values detached, plus "tversky_alpha", "reliable_fraction" and
        "uncertain_fraction" (over valid rows), and the diagnostics of `pmhm_diagnostics`, all 0-d tensors.
    """
    aux_logits_list = list(aux_logits_list)
    intermediate_logits_list = list(intermediate_logits_list or [])
    check_mask_shapes(main_logits, target, weight, *aux_logits_list, *intermediate_logits_list, valid=valid)
    if regions not in REGIONS:
        raise ValueError(f"PMHM regions must be one of {sorted(REGIONS)}, got {regions!r}")
    reliable, uncertain = REGIONS[regions](main_logits, aux_logits_list)
    alpha = tversky_alpha(progress)
    prob = torch.sigmoid(main_logits)

    reliable_weight = reliable.to(main_logits.dtype)
    if weight is not None:
        reliable_weight = reliable_weight * weight
    focal = weighted_sigmoid_focal(main_logits, target, reliable_weight, valid)
    dice = dice_loss(main_logits, target, valid, region=reliable)
    tversky = tversky_loss(prob, target, uncertain, alpha=alpha, beta=TVERSKY_BETA, valid=valid)
    head = _mean_consistency(prob, aux_logits_list, uncertain, valid)
    layer = _mean_consistency(prob, intermediate_logits_list, uncertain, valid)

    total = (MASK_FOCAL_WEIGHT * focal + MASK_DICE_WEIGHT * dice + TVERSKY_WEIGHT * tversky
             + HEAD_CONSISTENCY_WEIGHT * head + LAYER_CONSISTENCY_WEIGHT * layer)
    rows = torch.ones(main_logits.shape[0], dtype=torch.bool, device=main_logits.device) if valid is None else valid
    parts = {
        "focal": focal.detach(),
        "dice": dice.detach(),
        "tversky": tversky.detach(),
        "head_consistency": head.detach(),
        "layer_consistency": layer.detach(),
        "tversky_alpha": torch.tensor(alpha),
        "reliable_fraction": _fraction(reliable, rows),
        "uncertain_fraction": _fraction(uncertain, rows),
    }
    parts.update(pmhm_diagnostics(main_logits, aux_logits_list, target, reliable, uncertain, rows))
    return total, parts


@torch.no_grad()
def pmhm_diagnostics(main_logits, aux_logits_list, target, reliable, uncertain, rows) -> dict:
    """What PMHM sees on the valid rows, pooled over their pixels (for the training log):

    - fg_in_reliable / fg_in_uncertain: share of labelled-foreground pixels (target >= 0.5; the labels as
      given, noisy ones included) that lie in S / in U; NaN when the rows have no foreground pixel;
    - head_iou: IoU of the main and auxiliary heads' binarised masks (logit > 0), mean over auxiliary heads
      (1 when both are empty); head_prob_diff: mean |p_main - p_aux| over pixels and auxiliary heads;
      both NaN without auxiliary heads.
    """
    rows = rows.to(main_logits.device)
    foreground = (target >= 0.5)[rows]
    count = foreground.sum()
    nan = torch.tensor(float("nan"))

    def share(region):
        return (region[rows] & foreground).sum().float() / count if count > 0 else nan

    ious, diffs = [], []
    main_vote = (main_logits > 0)[rows]
    prob = torch.sigmoid(main_logits.float())[rows]
    for aux_logits in aux_logits_list:
        aux_vote = (aux_logits > 0)[rows]
        union = (main_vote | aux_vote).sum()
        ious.append((main_vote & aux_vote).sum().float() / union if union > 0 else torch.tensor(1.0))
        diffs.append((prob - torch.sigmoid(aux_logits.float())[rows]).abs().mean())
    return {"fg_in_reliable": share(reliable).detach().cpu(), "fg_in_uncertain": share(uncertain).detach().cpu(),
            "head_iou": torch.stack(ious).mean().cpu() if ious else nan,
            "head_prob_diff": torch.stack(diffs).mean().cpu() if diffs else nan}


def _mean_consistency(prob, other_logits_list, region, valid) -> torch.Tensor:
    if not other_logits_list:
        return prob.sum() * 0.0  # keeps the graph so that total.backward() works with no other head
    terms = [symmetric_bernoulli_kl(prob, torch.sigmoid(other), region, valid) for other in other_logits_list]
    return torch.stack(terms).mean()


def _fraction(region: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    selected = region[rows.to(region.device)]
    return selected.float().mean() if selected.numel() else torch.tensor(0.0)


def perturb_mask_features(features: torch.Tensor, p_drop: float = AUX_FEATURE_DROP,
                          noise_std_ratio: float = AUX_NOISE_STD_RATIO, generator: torch.Generator | None = None):
    """Perturbed copy of mask features for the auxiliary heads: channel dropout, then Gaussian noise.

    Args:
        features: (N, C, H, W) mask features (one row per frame; any leading layout flattened to N rows).
        p_drop: probability of zeroing each (row, channel) map; survivors are scaled by 1 / (1 - p_drop)
            (inverted dropout, as nn.Dropout2d).
        noise_std_ratio: the noise std of a row is this ratio times the std of that row's dropped-out
            features over (C, H, W), detached (the noise scale carries no gradient).
        generator: torch.Generator for reproducibility (on the features' device), or None.

    Returns (N, C, H, W); gradients flow to `features` through the kept channels.
    """
    if features.dim() != 4:
        raise ValueError(f"mask features must be (N, C, H, W), got shape {tuple(features.shape)}")
    if not 0.0 <= p_drop < 1.0:
        raise ValueError(f"p_drop must lie in [0, 1), got {p_drop}")
    if noise_std_ratio < 0:
        raise ValueError(f"noise_std_ratio must be >= 0, got {noise_std_ratio}")
    n, c = features.shape[:2]
    keep = torch.rand((n, c, 1, 1), generator=generator, device=features.device) >= p_drop
    dropped = features * keep.to(features.dtype) / (1.0 - p_drop)
    row_std = dropped.detach().flatten(1).std(dim=1, correction=0).view(n, 1, 1, 1)
    noise = torch.randn(features.shape, generator=generator, device=features.device, dtype=features.dtype)
    return dropped + noise * (noise_std_ratio * row_std)


def aux_head_frozen_mask(num_heads: int, p: float = AUX_FREEZE_PROBABILITY,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """(num_heads,) bool: which auxiliary heads are frozen (no parameter update) this step.

    Each head is frozen independently with probability p. The training step applies it, e.g. by
    setting requires_grad False on a frozen head's parameters for that step.
    """
    if num_heads < 0:
        raise ValueError(f"num_heads must be >= 0, got {num_heads}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"freeze probability must lie in [0, 1], got {p}")
    return torch.rand(num_heads, generator=generator) < p
