"""The six label-noise-learning (LNL) strategies of ActiSeg-NL (spec section 5), all on the pixel-wise mask loss.

Tensor conventions and the reduction (per-sample mean over pixels, then mean over valid rows) are those
of `losses.py`. Each strategy offers its loss pieces and one `*_mask_loss` returning (total, parts) that
the training step adds to the positive-head loss; parts are unweighted, detached 0-d tensors.

| strategy    | mask loss total                                              | state kept across steps     |
|-------------|--------------------------------------------------------------|-----------------------------|
| SCE         | 2 focal + 5 dice + 2 SCE                                     | none                        |
| GCE         | 2 focal + 5 dice + 2 GCE                                     | none                        |
| APL         | 2 APL + 5 dice   (APL = (10 GCE + 1 MAE) * weights)          | none                        |
| ELR         | 2 (focal + ELR regulariser) + 5 dice                         | `ELRTargets`                |
| NPN         | warm-up: base loss; then 2 (PLL + 0.1 NL + 0.2 CR) + 5 dice  | `CandidateLabels`           |
| Co-teaching | base loss, on the samples the peer model selected            | `CoTeachingBuffer`          |

The factor 2 is the mask-loss weight of the base recipe: SCE and GCE are "added to focal+dice, weight 2"
(spec); APL, ELR and NPN fill the mask-loss slot, which carries weight 2 in the reference's weight_dict.

Per-key state (`ELRTargets`, `CandidateLabels`) is held in memory on the CPU, one (H, W) map per key: the
caller chooses keys that name the same pixels each time they recur (e.g. (clip index, frame name), plus
the flip flag if flips are used). A map whose stored size differs from the new one is resampled to the new
size (bilinear for targets, nearest for counts) rather than lost; geometric augmentations other than a
resize make stored maps approximate, so key them or keep them out of these strategies. Memory: a float16
128x228 map is 58 KB, so 10,000 keys take about 0.6 GB.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import torch
import torch.nn.functional as F

from .losses import (
    MASK_DICE_WEIGHT,
    MASK_FOCAL_WEIGHT,
    base_mask_loss,
    check_mask_shapes,
    dice_loss,
    reduce_samples,
)

SCE_ALPHA = 0.1
SCE_BETA = 1.0
SCE_LOG_FLOOR = 1e-4  # log(0) in the reverse cross entropy is clamped to log(1e-4)
GCE_Q = 0.7
APL_ACTIVE_WEIGHT = 10.0
APL_PASSIVE_WEIGHT = 1.0
APL_LOGIT_CLAMP = 10.0
LNL_TERM_WEIGHT = 2.0
ELR_PREVIOUS_WEIGHT = 0.01  # t <- 0.01 t + 0.99 p
ELR_LAMBDA = 5e-4
ELR_PROB_CLAMP = 1e-4
NPN_WARMUP_EPOCHS = 2
NPN_CONFIDENCE = 0.7
NPN_NL_WEIGHT = 0.1
NPN_CR_WEIGHT = 0.2
COTEACHING_GROUP_SIZE = 128
COTEACHING_START_RATE = 0.95
COTEACHING_TOTAL_DROP = 0.1
COTEACHING_RAMP_EPOCHS = 6


# ----------------------------------------------------------------------------------------------- SCE, GCE, APL
def sce_loss(logits, target, weight=None, valid=None, alpha: float = SCE_ALPHA, beta: float = SCE_BETA,
             log_floor: float = SCE_LOG_FLOOR, reduction: str = "mean") -> torch.Tensor:
    """Symmetric cross entropy: per pixel alpha * BCE + beta * RCE, times `weight` if given.

    RCE = -(p log(clamp(t)) + (1 - p) log(clamp(1 - t))), clamp to [log_floor, 1], p = sigmoid(logits);
    for a binary target RCE = -log(1e-4) |p - t| = 9.21 |p - t|. Shapes (N, H, W); see `reduce_samples`.
    """
    check_mask_shapes(logits, target, weight, valid=valid)
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    rce = -(prob * torch.log(target.clamp(log_floor, 1.0)) + (1 - prob) * torch.log((1 - target).clamp(log_floor, 1.0)))
    per_pixel = alpha * bce + beta * rce
    if weight is not None:
        per_pixel = per_pixel * weight
    return reduce_samples(per_pixel.flatten(1).mean(1), valid, reduction)


def _gce_per_pixel(logits: torch.Tensor, target: torch.Tensor, q: float) -> torch.Tensor:
    # p_y^q = exp(q log p_y) with log p_y from logsigmoid: finite value and gradient even where p_y
    # underflows to 0 in float32, which (1 - p_y^q) written directly would turn into NaN gradients.
    log_p_y = target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)
    return (1 - torch.exp(q * log_p_y)) / q


def gce_loss(logits, target, weight=None, valid=None, q: float = GCE_Q, reduction: str = "mean") -> torch.Tensor:
    """Generalised cross entropy: per pixel (1 - p_y^q) / q, p_y the probability of the target label.

    Target must be binary. Times `weight` if given. Shapes (N, H, W); see `reduce_samples`.
    """
    check_mask_shapes(logits, target, weight, valid=valid)
    per_pixel = _gce_per_pixel(logits, target, q)
    if weight is not None:
        per_pixel = per_pixel * weight
    return reduce_samples(per_pixel.flatten(1).mean(1), valid, reduction)


def apl_loss(logits, target, weight=None, valid=None, active_weight: float = APL_ACTIVE_WEIGHT,
             passive_weight: float = APL_PASSIVE_WEIGHT, q: float = GCE_Q, logit_clamp: float = APL_LOGIT_CLAMP,
             reduction: str = "mean") -> torch.Tensor:
    """Active-passive loss: per pixel (10 GCE(q 0.7) + 1 MAE) * weight, on logits clamped to [-10, 10].

    MAE = |sigmoid(logit) - t|. The clamp (as in the reference) also stops the gradient of pixels whose
    logit lies outside [-10, 10]. Shapes (N, H, W); see `reduce_samples`.
    """
    check_mask_shapes(logits, target, weight, valid=valid)
    clamped = logits.clamp(-logit_clamp, logit_clamp)
    per_pixel = (active_weight * _gce_per_pixel(clamped, target, q)
                 + passive_weight * (torch.sigmoid(clamped) - target).abs())
    if weight is not None:
        per_pixel = per_pixel * weight
    return reduce_samples(per_pixel.flatten(1).mean(1), valid, reduction)


def sce_mask_loss(logits, target, weight=None, valid=None):
    """SCE strategy: 2 focal + 5 dice + 2 SCE (SCE unweighted, as the reference). Returns (total, parts)."""
    base, parts = base_mask_loss(logits, target, weight, valid)
    sce = sce_loss(logits, target, None, valid)
    return base + LNL_TERM_WEIGHT * sce, {**parts, "sce": sce.detach()}


def gce_mask_loss(logits, target, weight=None, valid=None):
    """GCE strategy: 2 focal + 5 dice + 2 GCE (GCE unweighted, as the reference). Returns (total, parts)."""
    base, parts = base_mask_loss(logits, target, weight, valid)
    gce = gce_loss(logits, target, None, valid)
    return base + LNL_TERM_WEIGHT * gce, {**parts, "gce": gce.detach()}


def apl_mask_loss(logits, target, weight=None, valid=None):
    """APL strategy: 2 APL (action-guided weights inside) + 5 dice. Returns (total, parts)."""
    apl = apl_loss(logits, target, weight, valid)
    dice = dice_loss(logits, target, valid)
    return LNL_TERM_WEIGHT * apl + MASK_DICE_WEIGHT * dice, {"apl": apl.detach(), "dice": dice.detach()}


# ----------------------------------------------------------------------------------------------- keyed maps
class _KeyedMaps:
    """Per-key (H, W, ...) tensors kept on the CPU in `dtype`; unseen keys read as zeros."""

    def __init__(self, dtype: torch.dtype, resample_mode: str):
        self.dtype = dtype
        self.resample_mode = resample_mode
        self.maps: dict[Hashable, torch.Tensor] = {}

    def gather(self, keys: Sequence[Hashable], shape: tuple, device) -> torch.Tensor:
        """(len(keys), *shape) float32 on `device`."""
        rows = []
        for key in keys:
            stored = self.maps.get(key)
            if stored is None:
                rows.append(torch.zeros(shape))
            elif tuple(stored.shape) != tuple(shape):
                rows.append(self._resample(stored.float(), shape))
            else:
                rows.append(stored.float())
        return torch.stack(rows).to(device)

    def scatter(self, keys: Sequence[Hashable], values: torch.Tensor) -> None:
        for key, value in zip(keys, values.detach().cpu().to(self.dtype)):
            self.maps[key] = value.clone()

    def _resample(self, stored: torch.Tensor, shape: tuple) -> torch.Tensor:
        # (H, W, *channels) -> (1, channels, H, W) for interpolate and back.
        channels_last = stored.dim() == 3
        image = stored.permute(2, 0, 1)[None] if channels_last else stored[None, None]
        kwargs = {"align_corners": False} if self.resample_mode == "bilinear" else {}
        image = F.interpolate(image, size=tuple(shape[:2]), mode=self.resample_mode, **kwargs)
        return image[0].permute(1, 2, 0) if channels_last else image[0, 0]


def _check_keys(keys, rows: int) -> list:
    keys = list(keys)
    if len(keys) != rows:
        raise ValueError(f"got {len(keys)} keys for {rows} rows")
    return keys


# ----------------------------------------------------------------------------------------------- ELR
class ELRTargets:
    """Per-key moving-average targets of early-learning regularisation: t <- 0.01 t + 0.99 p.

    `previous_weight` is the weight of the stored target (0.01 in the spec and the reference code, i.e.
    the target follows the current prediction closely). A key seen for the first time starts from t = 0,
    as in the reference, so its first target is 0.99 p.
    """

    def __init__(self, previous_weight: float = ELR_PREVIOUS_WEIGHT, storage_dtype: torch.dtype = torch.float16):
        if not 0.0 <= previous_weight < 1.0:
            raise ValueError(f"previous_weight must lie in [0, 1), got {previous_weight}")
        self.previous_weight = previous_weight
        self._maps = _KeyedMaps(storage_dtype, "bilinear")

    def __len__(self) -> int:
        return len(self._maps.maps)

    def update(self, keys: Sequence[Hashable], probs: torch.Tensor) -> torch.Tensor:
        """Fold the (N, H, W) foreground probabilities of N keyed rows in; return the new (N, H, W) targets.

        The returned targets are detached, float32, on the device of `probs`. A key repeated within one
        call keeps the last row's update.
        """
        if probs.dim() != 3:
            raise ValueError(f"probabilities must be (N, H, W), got shape {tuple(probs.shape)}")
        keys = _check_keys(keys, probs.shape[0])
        previous = self._maps.gather(keys, tuple(probs.shape[1:]), probs.device)
        targets = self.previous_weight * previous + (1 - self.previous_weight) * probs.detach().float()
        self._maps.scatter(keys, targets)
        return targets

    def state_dict(self) -> dict:
        return {"previous_weight": self.previous_weight, "maps": dict(self._maps.maps)}

    def load_state_dict(self, state: dict) -> None:
        self.previous_weight = float(state["previous_weight"])
        self._maps.maps = dict(state["maps"])


def elr_regulariser(logits, elr_target, valid=None, lam: float = ELR_LAMBDA, prob_clamp: float = ELR_PROB_CLAMP,
                    reduction: str = "mean") -> torch.Tensor:
    """ELR regulariser lam * mean(log(1 - <p, t>)) with the moving-average targets t (not the noisy labels).

    Per pixel <p, t> = p t + (1 - p)(1 - t) for the Bernoulli pair, p = sigmoid(logits) clamped to
    [1e-4, 1 - 1e-4] so the log stays finite. Minimising it pulls p towards t. The value is <= 0.
    Shapes: logits and elr_target (N, H, W); elr_target is treated as a constant. See `reduce_samples`.
    """
    check_mask_shapes(logits, elr_target, valid=valid)
    prob = torch.sigmoid(logits).clamp(prob_clamp, 1 - prob_clamp)
    target = elr_target.detach()
    agreement = prob * target + (1 - prob) * (1 - target)
    return lam * reduce_samples(torch.log(1 - agreement).flatten(1).mean(1), valid, reduction)


def elr_mask_loss(logits, target, weight, elr_target, valid=None):
    """ELR strategy: 2 (focal + ELR regulariser) + 5 dice. elr_target from `ELRTargets.update`."""
    base, parts = base_mask_loss(logits, target, weight, valid)
    regulariser = elr_regulariser(logits, elr_target, valid)
    return base + MASK_FOCAL_WEIGHT * regulariser, {**parts, "elr": regulariser.detach()}


# ----------------------------------------------------------------------------------------------- NPN
class CandidateLabels:
    """Per-key, per-pixel candidate-label counts of NPN (partial-label + negative learning).

    At each update the current candidate set of a pixel is {noisy label} united with {predicted label if
    the prediction's confidence max(p, 1 - p) exceeds 0.7}; the counts of the classes (background,
    foreground) in the set are incremented. The same rule applies during warm-up and after it. (The
    reference instead overwrote the label's count with 1 during warm-up.)
    """

    def __init__(self, confidence: float = NPN_CONFIDENCE, storage_dtype: torch.dtype = torch.int16):
        self.confidence = confidence
        self._maps = _KeyedMaps(storage_dtype, "nearest")

    def __len__(self) -> int:
        return len(self._maps.maps)

    def current(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 2) bool candidate set of this step: [..., 0] background, [..., 1] foreground."""
        prob = torch.sigmoid(logits.detach())
        foreground = (target > 0.5) | (prob > self.confidence)
        background = (target <= 0.5) | (prob < 1 - self.confidence)
        return torch.stack([background, foreground], dim=-1)

    def update(self, keys: Sequence[Hashable], logits: torch.Tensor, target: torch.Tensor):
        """Add this step's candidate sets of N keyed rows; return (counts, current).

        counts: (N, H, W, 2) float32 accumulated counts including this step; current: (N, H, W, 2) bool.
        """
        check_mask_shapes(logits, target)
        keys = _check_keys(keys, logits.shape[0])
        current = self.current(logits, target)
        counts = self._maps.gather(keys, tuple(current.shape[1:]), logits.device) + current.float()
        self._maps.scatter(keys, counts)
        return counts, current

    def state_dict(self) -> dict:
        return {"confidence": self.confidence, "maps": dict(self._maps.maps)}

    def load_state_dict(self, state: dict) -> None:
        self.confidence = float(state["confidence"])
        self._maps.maps = dict(state["maps"])


def npn_pll_loss(logits, counts, valid=None, reduction: str = "mean") -> torch.Tensor:
    """Partial-label loss: BCE towards the most counted candidate, weighted by its share of the counts.

    Per pixel: y = argmax(counts) (a tie goes to background), w = max(counts) / sum(counts) (0 where
    nothing was counted), loss w * BCE(logit, y). logits (N, H, W), counts (N, H, W, 2).
    """
    check_mask_shapes(logits, valid=valid)
    if counts.shape != (*logits.shape, 2):
        raise ValueError(f"counts must be {(*logits.shape, 2)}, got {tuple(counts.shape)}")
    label = (counts[..., 1] > counts[..., 0]).to(logits.dtype)
    total = counts.sum(-1)
    share = torch.where(total > 0, counts.max(-1).values / total.clamp(min=1e-12), torch.zeros_like(total))
    per_pixel = share.to(logits.dtype) * F.binary_cross_entropy_with_logits(logits, label, reduction="none")
    return reduce_samples(per_pixel.flatten(1).mean(1), valid, reduction)


def npn_nl_loss(logits, current, valid=None, reduction: str = "mean") -> torch.Tensor:
    """Negative-learning loss: -log(1 - p_c) for each class c outside the current candidate set.

    -log(1 - p_fg) = softplus(logit), -log(1 - p_bg) = softplus(-logit). logits (N, H, W),
    current (N, H, W, 2) bool from `CandidateLabels`. Per sample the mean over pixels.
    """
    check_mask_shapes(logits, valid=valid)
    if current.shape != (*logits.shape, 2):
        raise ValueError(f"candidate set must be {(*logits.shape, 2)}, got {tuple(current.shape)}")
    not_background = (~current[..., 0]).to(logits.dtype)
    not_foreground = (~current[..., 1]).to(logits.dtype)
    per_pixel = not_foreground * F.softplus(logits) + not_background * F.softplus(-logits)
    return reduce_samples(per_pixel.flatten(1).mean(1), valid, reduction)


def npn_consistency_loss(logits_strong, logits_weak, valid=None, confidence: float = NPN_CONFIDENCE) -> torch.Tensor:
    """Consistency between views: BCE of the strong view towards the weak view's label, on confident pixels.

    Pixels where the weak view's confidence max(p, 1 - p) exceeds `confidence`, pooled over the valid
    rows of the batch (mean); 0 if there are none. The weak view only provides labels (no gradient).
    Both (N, H, W), from the same images under a weak and a strong photometric augmentation.
    """
    check_mask_shapes(logits_strong, logits_weak, valid=valid)
    prob_weak = torch.sigmoid(logits_weak.detach())
    confident = torch.maximum(prob_weak, 1 - prob_weak) > confidence
    label = (prob_weak > 0.5).to(logits_strong.dtype)
    bce = F.binary_cross_entropy_with_logits(logits_strong, label, reduction="none")
    if valid is not None:
        confident = confident & valid.to(confident.device).view(-1, 1, 1)
    selected = confident.to(bce.dtype)
    return (bce * selected).sum() / torch.clamp(selected.sum(), min=1.0)


def npn_mask_loss(logits_weak, logits_strong, target, counts, current, valid=None):
    """NPN strategy after warm-up: 2 (PLL + 0.1 NL + 0.2 CR) + 5 dice (weak view vs noisy target).

    During the first NPN_WARMUP_EPOCHS epochs use `base_mask_loss` and only call `CandidateLabels.update`.
    counts and current come from `CandidateLabels.update(keys, logits_weak, target)` of the same step.
    """
    pll = npn_pll_loss(logits_weak, counts, valid)
    nl = npn_nl_loss(logits_weak, current, valid)
    cr = npn_consistency_loss(logits_strong, logits_weak, valid)
    dice = dice_loss(logits_weak, target, valid)
    total = MASK_FOCAL_WEIGHT * (pll + NPN_NL_WEIGHT * nl + NPN_CR_WEIGHT * cr) + MASK_DICE_WEIGHT * dice
    return total, {"pll": pll.detach(), "nl": nl.detach(), "cr": cr.detach(), "dice": dice.detach()}


def photometric_strong(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Strong photometric view of RGB images in [0, 1]; geometry untouched so pixels stay aligned.

    images: (B, 3, H, W) or (B, T, 3, H, W) float in [0, 1], before mean/std normalisation. One set of
    parameters per leading index B, shared by the T frames of a clip. In order: brightness x b, contrast
    around the image's mean grey level x c, saturation around the pixel's grey level x s, with b, c, s
    uniform in [0.6, 1.4]; grey-scale with probability 0.2; Gaussian noise of std 0.03; clamp to [0, 1].
    `generator` must live on the images' device.
    """
    if images.dim() not in (4, 5) or images.shape[-3] != 3:
        raise ValueError(f"images must be (B, 3, H, W) or (B, T, 3, H, W), got shape {tuple(images.shape)}")
    batch = images.shape[0]
    shape = (batch,) + (1,) * (images.dim() - 1)  # broadcast one value per leading index

    def uniform(low, high):
        return low + (high - low) * torch.rand(shape, generator=generator, device=images.device, dtype=images.dtype)

    luma = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype).view(3, 1, 1)

    def grey(x):
        return (x * luma).sum(dim=-3, keepdim=True)

    out = images * uniform(0.6, 1.4)
    mean_grey = grey(out).mean(dim=(-3, -2, -1), keepdim=True)
    out = (out - mean_grey) * uniform(0.6, 1.4) + mean_grey
    out = grey(out) + (out - grey(out)) * uniform(0.6, 1.4)
    to_grey = (torch.rand(shape, generator=generator, device=images.device) < 0.2).to(images.dtype)
    out = to_grey * grey(out).expand_as(out) + (1 - to_grey) * out
    out = out + 0.03 * torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return out.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------- co-teaching
def coteaching_keep_rate(epoch: int, start: float = COTEACHING_START_RATE, total_drop: float = COTEACHING_TOTAL_DROP,
                         ramp_epochs: int = COTEACHING_RAMP_EPOCHS) -> float:
    """R(t) = 0.95 - 0.1 (epoch - 1) / 6 for 1-based `epoch`, held at 0.85 from epoch 7 on (as the reference)."""
    if epoch < 1:
        raise ValueError(f"co-teaching epochs are 1-based, got {epoch}")
    return start - total_drop * (min(epoch, ramp_epochs + 1) - 1) / ramp_epochs


def coteaching_select(losses_a: torch.Tensor, losses_b: torch.Tensor, keep_fraction: float):
    """Cross selection of co-teaching: each model keeps its smallest-loss fraction; its peer trains on it.

    Args:
        losses_a, losses_b: (M,) per-sample (per-clip) losses of models A and B on the same M samples.
        keep_fraction: R(t) in (0, 1]; k = max(1, floor(R * M)) samples are kept (floor as the reference,
            at least one so a small group still trains).

    Returns:
        (train_a, train_b): (k,) int64 indices in increasing order; train_a = the k smallest losses of B
        (what model A trains on), train_b = the k smallest losses of A. Ties break by index.
    """
    if losses_a.dim() != 1 or losses_a.shape != losses_b.shape:
        raise ValueError(f"losses must be two (M,) tensors, got {tuple(losses_a.shape)} and {tuple(losses_b.shape)}")
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must lie in (0, 1], got {keep_fraction}")
    count = losses_a.shape[0]
    if count == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty.clone()
    keep = max(1, math.floor(keep_fraction * count + 1e-9))
    train_a = torch.argsort(losses_b.detach(), stable=True)[:keep].sort().values
    train_b = torch.argsort(losses_a.detach(), stable=True)[:keep].sort().values
    return train_a, train_b


@dataclass
class CoTeachingSelection:
    """Items each model trains on after one group was ranked (the peer's small-loss items)."""

    for_a: list = field(default_factory=list)
    for_b: list = field(default_factory=list)


class CoTeachingBuffer:
    """Groups per-clip losses of both models in groups of `group_size` (128) before selecting.

    How it is applied at any batch size: each clip of every batch is one entry (its loss under each model,
    computed without gradient, e.g. `per_clip_mean` of `base_mask_loss(..., reduction="none")` plus the
    positive loss). When `group_size` entries are buffered, `add` returns the selection and empties the
    buffer; the caller then replays the selected clips with gradient, in mini-batches of its training batch
    size, model A on `for_a` and model B on `for_b`. At the end of an epoch `flush` selects among the
    remaining entries (a smaller last group, as the reference); a data set smaller than one group is one
    group per epoch. Store cheap items (dataset indices, or the batch on the CPU), not GPU tensors.
    """

    def __init__(self, group_size: int = COTEACHING_GROUP_SIZE):
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.group_size = group_size
        self._items: list = []
        self._losses_a: list[float] = []
        self._losses_b: list[float] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item, loss_a: float, loss_b: float, keep_fraction: float) -> CoTeachingSelection | None:
        """Buffer one clip; return the selection when the group is full, else None."""
        loss_a, loss_b = float(loss_a), float(loss_b)
        if not (math.isfinite(loss_a) and math.isfinite(loss_b)):
            raise ValueError(f"co-teaching losses must be finite, got {loss_a} and {loss_b}")
        self._items.append(item)
        self._losses_a.append(loss_a)
        self._losses_b.append(loss_b)
        if len(self._items) >= self.group_size:
            return self.flush(keep_fraction)
        return None

    def flush(self, keep_fraction: float) -> CoTeachingSelection | None:
        """Select among the buffered clips (None if empty) and empty the buffer."""
        if not self._items:
            return None
        train_a, train_b = coteaching_select(torch.tensor(self._losses_a, dtype=torch.float64),
                                             torch.tensor(self._losses_b, dtype=torch.float64), keep_fraction)
        selection = CoTeachingSelection([self._items[i] for i in train_a.tolist()],
                                        [self._items[i] for i in train_b.tolist()])
        self._items, self._losses_a, self._losses_b = [], [], []
        return selection


def per_clip_mean(per_sample: torch.Tensor, clip_ids: torch.Tensor, num_clips: int, valid=None) -> torch.Tensor:
    """(num_clips,) mean of (N,) per-sample losses over the valid rows of each clip (0 for a clip with none).

    clip_ids: (N,) int64 in [0, num_clips), the clip each (frame, prompt) row belongs to.
    """
    if per_sample.dim() != 1 or clip_ids.shape != per_sample.shape:
        raise ValueError(f"per_sample and clip_ids must be (N,), got {tuple(per_sample.shape)} "
                         f"and {tuple(clip_ids.shape)}")
    keep = torch.ones_like(per_sample) if valid is None else valid.to(per_sample.dtype)
    sums = per_sample.new_zeros(num_clips).index_add(0, clip_ids, per_sample * keep)
    counts = per_sample.new_zeros(num_clips).index_add(0, clip_ids, keep)
    return sums / counts.clamp(min=1.0)
