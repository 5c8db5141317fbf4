"""PMHM's auxiliary mask heads (training only; absent from exported graphs, so no inference cost).

Each auxiliary head is a copy of the main mask head plus N(0, 1e-3) noise, reads the last decoder layer's
query and sees perturbed mask features (channel dropout, then Gaussian noise scaled to the features' std),
so its errors near boundaries differ from the main head's: pixels where all heads agree are "reliable".
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from .mask_decoder import MaskFeatures, project


@torch.no_grad()
def channel_moments(features: MaskFeatures) -> tuple:
    """Per-row, per-channel sums of the (factored) mask features and of their squares, each (N, D), and the
    number of pixels per channel: enough for the std of any channel-dropped row. Built one frame at a time so
    that only (K, D, H4, W4) is ever written out."""
    k = features.prompts_per_frame
    h4, w4 = features.fine.shape[-2:]
    sums, squares = [], []
    for frame in range(features.fine.shape[0]):
        coarse = F.interpolate(features.coarse[frame * k:(frame + 1) * k], size=(h4, w4), mode="bilinear",
                               align_corners=False)
        rows = features.fine[frame].unsqueeze(0) + coarse  # (K, D, H4, W4)
        sums.append(rows.sum(dim=(2, 3)))
        squares.append(rows.square().sum(dim=(2, 3)))
    return torch.cat(sums), torch.cat(squares), h4 * w4


def perturbed_head_logits(head: nn.Module, query: torch.Tensor, features: MaskFeatures, p_drop: float,
                          noise_ratio: float, moments: tuple, generator: torch.Generator | None = None):
    """An auxiliary head's logits on perturbed mask features, (N, H4, W4), without writing the features out.

    Same distribution as head(query, perturb_mask_features(features)) (pmhm_loss.perturb_mask_features,
    the spec's perturbation): the head is linear in the features, so channel dropout (keep mask m, rescaled
    by 1/(1-p)) becomes <kernel * m, features>, and Gaussian noise of std s added to every feature becomes
    Gaussian noise of std s * |kernel| on the logits, with s = noise_ratio * std of the dropped-out row.
    """
    n, d = query.shape
    sums, squares, pixels = moments
    keep = (torch.rand((n, d), generator=generator, device=query.device) >= p_drop).to(query.dtype) / (1.0 - p_drop)
    count = d * pixels
    mean = (keep * sums).sum(1) / count
    row_std = ((keep.square() * squares).sum(1) / count - mean.square()).clamp_min(0).sqrt()  # (N,)
    kernel = head.kernels(query)  # (N, D)
    logits = project(kernel * keep, features)
    noise = torch.randn(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    return logits + noise * (noise_ratio * row_std * kernel.norm(dim=1)).view(n, 1, 1)


class AuxiliaryMaskHeads(nn.Module):
    def __init__(self, main_head: nn.Module, count: int = 1, init_noise: float = 1e-3, p_drop: float = 0.2,
                 noise_ratio: float = 0.2, freeze_prob: float = 0.2):
        super().__init__()
        if not 0 <= count <= 2:
            raise ValueError("PMHM supports 0 to 2 auxiliary heads, got %d" % count)
        self.heads = nn.ModuleList([copy.deepcopy(main_head) for _ in range(count)])
        self.init_noise, self.p_drop, self.noise_ratio, self.freeze_prob = init_noise, p_drop, noise_ratio, freeze_prob
        self.reset_from(main_head)

    @torch.no_grad()
    def reset_from(self, main_head: nn.Module) -> None:
        """Every auxiliary head := the main head + N(0, init_noise); called at construction and again when
        PMHM's robust loss starts after a warm-up, so the copies start from the trained main head."""
        for head in self.heads:
            for target, source in zip(head.parameters(), main_head.parameters()):
                target.copy_(source + torch.randn_like(source) * self.init_noise)

    def forward(self, query: torch.Tensor, mask_features: MaskFeatures) -> list:
        """query (N, D), mask_features (factored, N rows) -> list of (N, H4, W4) logits, one per auxiliary head.

        A head frozen this step (probability freeze_prob) still predicts (its vote counts for the reliable
        region) but passes no gradient to its own weights.
        """
        outputs = []
        moments = channel_moments(mask_features) if self.heads else None
        for head in self.heads:
            frozen = bool(torch.rand(()) < self.freeze_prob)
            for parameter in head.parameters():
                parameter.requires_grad_(not frozen)
            outputs.append(perturbed_head_logits(head, query, mask_features, self.p_drop, self.noise_ratio, moments))
        return outputs
