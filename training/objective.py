"""The training objective: mask loss (base or PMHM) + positive-head loss, from model outputs and a batch."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from . import losses


def upsample(logits: torch.Tensor, size) -> torch.Tensor:
    """(N, h, w) stride-4 logits -> (N, H, W) at the target resolution."""
    return F.interpolate(logits.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]


def flatten_batch(outputs: dict, batch: dict) -> dict:
    """Model outputs over (B*T frames, K prompts) and batch targets -> rows of valid (frame, prompt) pairs.

    Returns logits (N, H, W), target (N, H, W), weight (N, H, W), plus the per-layer / auxiliary logits
    in the same rows, N = number of valid (frame, prompt) pairs.
    """
    b, t, k, h, w = batch["targets"].shape
    valid = batch["valid"].unsqueeze(1).expand(b, t, k).reshape(-1)

    def rows(logits):  # (B*T, K, h4, w4) or (B*T*K, h4, w4) -> (N, H, W)
        return upsample(logits.reshape(b * t * k, *logits.shape[-2:])[valid], (h, w))

    return {
        "logits": rows(outputs["mask_logits"]),
        "layers": [rows(x) for x in outputs.get("layer_mask_logits", [])],
        "aux": [rows(x) for x in outputs.get("aux_mask_logits", [])],
        "target": batch["targets"].reshape(b * t * k, h, w)[valid],
        "weight": batch["weights"].reshape(b * t * k, h, w)[valid],
    }


def clip_positive_logits(outputs: dict, batch: dict) -> torch.Tensor:
    """Per-frame positive logits (B*T, K) -> one logit per (clip, prompt) (B, K): the mean over frames,
    so every frame learns the segment-level label ("any frame positive")."""
    b, t, k = batch["targets"].shape[:3]
    return outputs["positive_logits"].reshape(b, t, k).mean(1)


def compute_loss(outputs: dict, batch: dict, config, progress: float) -> tuple:
    """-> (total loss, {name: detached value}). progress in [0, 1] drives PMHM's Tversky annealing."""
    rows = flatten_batch(outputs, batch)
    parts = {}
    if config.loss.pmhm:
        from .pmhm_loss import pmhm_mask_loss

        mask_total, pmhm_parts = pmhm_mask_loss(rows["logits"], rows["aux"], rows["target"], rows["weight"],
                                                progress, intermediate_logits_list=rows["layers"])
        parts.update({"pmhm_" + name: value for name, value in pmhm_parts.items()})
    else:
        mask_total, base_parts = losses.base_mask_loss(rows["logits"], rows["target"], rows["weight"])
        parts.update(base_parts)
        if config.loss.deep_supervision:
            for layer_logits in rows["layers"]:
                mask_total = mask_total + losses.base_mask_loss(layer_logits, rows["target"], rows["weight"])[0]
    positive = losses.positive_focal(clip_positive_logits(outputs, batch), batch["positive"], valid=batch["valid"])
    total = mask_total + config.loss.positive * positive
    parts.update({"mask": mask_total.detach(), "positive": positive.detach(), "total": total.detach()})
    return total, parts
