"""The training objective: mask loss (base or PMHM) + positive-head loss, from model outputs and a batch.

The label-noise-learning strategies (strategies.py) build on these pieces: they add to or replace the mask
loss of `supervised_layers` and keep the positive-head loss."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from . import losses


def downsample(values: torch.Tensor, size) -> torch.Tensor:
    """(N, H, W) targets or weights at input resolution -> (N, h, w) at the logits' stride-4 grid.

    Area averaging keeps thin objects as soft targets instead of dropping them; computing the loss on
    the logits' own grid is 16x cheaper than upsampling every prompt's logits to the input size, which
    dominated the CPU step time.
    """
    if tuple(values.shape[-2:]) == tuple(size):
        return values
    return F.adaptive_avg_pool2d(values.unsqueeze(1), size)[:, 0]


def valid_rows(values: torch.Tensor, batch: dict) -> torch.Tensor:
    """Per-(frame, prompt) maps -> the rows of valid (frame, prompt) pairs, (N, h, w), in one fixed order.

    values: (B*T, K, h, w), (B*T*K, h, w) or (B, T, K, h, w), frames of clip-major order, prompts padded to K.
    """
    b, t, k = batch["targets"].shape[:3]
    valid = batch["valid"].unsqueeze(1).expand(b, t, k).reshape(-1)
    return values.reshape(b * t * k, *values.shape[-2:])[valid]


def flatten_batch(outputs: dict, batch: dict) -> dict:
    """Model outputs over (B*T frames, K prompts) and batch targets -> rows of valid (frame, prompt) pairs.

    Returns logits (N, h, w), target (N, h, w), weight (N, h, w) on the stride-4 grid, plus the
    per-layer / auxiliary logits in the same rows, N = number of valid (frame, prompt) pairs.
    """
    grid = tuple(outputs["mask_logits"].shape[-2:])
    return {
        "logits": valid_rows(outputs["mask_logits"], batch),
        "layers": [valid_rows(x, batch) for x in outputs.get("layer_mask_logits", [])],
        "aux": [valid_rows(x, batch) for x in outputs.get("aux_mask_logits", [])],
        "target": downsample(valid_rows(batch["targets"], batch), grid),
        "weight": downsample(valid_rows(batch["weights"], batch), grid),
    }


def clip_positive_logits(outputs: dict, batch: dict) -> torch.Tensor:
    """Per-frame positive logits (B*T, K) -> one logit per (clip, prompt) (B, K): the mean over frames,
    so every frame learns the segment-level label ("any frame positive")."""
    b, t, k = batch["targets"].shape[:3]
    return outputs["positive_logits"].reshape(b, t, k).mean(1)


def pmhm_active(config, epoch: int) -> bool:
    return bool(config.loss.pmhm) and epoch >= config.loss.pmhm_warmup_epochs


def mask_loss(rows: dict, config, progress: float, epoch: int) -> tuple:
    """The configured base mask loss of flattened rows: PMHM (after its warm-up epochs), or focal+dice on
    the final layer plus, with deep supervision, on every earlier decoder layer. -> (total, parts)."""
    if pmhm_active(config, epoch):
        from .pmhm_loss import pmhm_mask_loss

        total, pmhm_parts = pmhm_mask_loss(rows["logits"], rows["aux"], rows["target"], rows["weight"],
                                           progress, intermediate_logits_list=rows["layers"],
                                           regions=config.loss.pmhm_regions)
        return total, {"pmhm_" + name: value for name, value in pmhm_parts.items()}
    total, parts = losses.base_mask_loss(rows["logits"], rows["target"], rows["weight"])
    if config.loss.deep_supervision:
        for layer_logits in rows["layers"]:
            total = total + losses.base_mask_loss(layer_logits, rows["target"], rows["weight"])[0]
    return total, dict(parts)


def supervised_layers(rows: dict, config) -> list:
    """Logits that carry a label-supervised mask loss: the final layer, plus the earlier decoder layers under
    deep supervision without PMHM (PMHM ties those to the final layer by consistency instead)."""
    if config.loss.deep_supervision and not config.loss.pmhm:
        return [rows["logits"]] + list(rows["layers"])
    return [rows["logits"]]


def object_mask_loss(outputs: dict, batch: dict) -> torch.Tensor:
    """Focal + dice of the ungated object logits against each prompted object's own mask, for every prompt,
    active or not (the first factor of the activity gate, see mask_decoder.gate_by_activity).

    Why: through the gate, a negative prompt's target (empty, its object pixels weighted 5) also pushes the
    object logits down until the positive head has learnt the prompt is inactive. Objects that are negative
    about as often as positive (cups, sponges, vegetables in the synthetic data) were never segmented:
    object probability ~0.0 inside their masks after 1800 steps, while hands and sinks reached 0.9.
    """
    logits = valid_rows(outputs["object_logits"], batch)
    target = downsample(valid_rows(batch["objects"], batch).float(), tuple(logits.shape[-2:]))
    return losses.base_mask_loss(logits, target)[0]


def add_head_losses(mask_total: torch.Tensor, parts: dict, outputs: dict, batch: dict, config) -> tuple:
    """mask loss + weighted positive-head loss + weighted object-mask loss (when configured) ->
    (total, parts with "mask", "positive", "object" (if on), "total")."""
    positive = losses.positive_focal(clip_positive_logits(outputs, batch), batch["positive"], valid=batch["valid"])
    total = mask_total + config.loss.positive * positive
    parts.update({"mask": mask_total.detach(), "positive": positive.detach()})
    if config.loss.object_mask > 0:
        objects = object_mask_loss(outputs, batch)
        total = total + config.loss.object_mask * objects
        parts["object"] = objects.detach()
    parts["total"] = total.detach()
    return total, parts


def compute_loss(outputs: dict, batch: dict, config, progress: float, epoch: int) -> tuple:
    """-> (total loss, {name: detached value}). progress in [0, 1] drives PMHM's Tversky annealing; epoch
    (0-based) decides whether PMHM's warm-up is over."""
    mask_total, parts = mask_loss(flatten_batch(outputs, batch), config, progress, epoch)
    return add_head_losses(mask_total, parts, outputs, batch, config)
