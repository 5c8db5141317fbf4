"""PMHM's auxiliary mask heads (training only; absent from exported graphs, so no inference cost).

Each auxiliary head is a copy of the main mask head plus N(0, 1e-3) noise, reads the last decoder layer's
query and sees perturbed mask features (channel dropout, then Gaussian noise scaled to the features' std),
so its errors near boundaries differ from the main head's: pixels where all heads agree are "reliable".
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def perturb_mask_features(features: torch.Tensor, p_drop: float = 0.2, noise_ratio: float = 0.2) -> torch.Tensor:
    """(N, C, H, W) -> same shape: channel dropout p_drop, then noise with std noise_ratio * per-sample std."""
    keep = (torch.rand(features.shape[0], features.shape[1], 1, 1, device=features.device) >= p_drop)
    dropped = features * keep.to(features.dtype) / (1.0 - p_drop)
    std = dropped.detach().flatten(1).std(dim=1).view(-1, 1, 1, 1)
    return dropped + torch.randn_like(dropped) * std * noise_ratio


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

    def forward(self, query: torch.Tensor, mask_features: torch.Tensor) -> list:
        """query (N, D), mask_features (N, D, H, W) -> list of (N, H, W) logits, one per auxiliary head.

        A head frozen this step (probability freeze_prob) still predicts (its vote counts for the reliable
        region) but passes no gradient to its own weights.
        """
        outputs = []
        for head in self.heads:
            perturbed = perturb_mask_features(mask_features, self.p_drop, self.noise_ratio)
            frozen = bool(torch.rand(()) < self.freeze_prob)
            for parameter in head.parameters():
                parameter.requires_grad_(not frozen)
            outputs.append(head(query, perturbed))
        return outputs
