"""Text-agnostic feature pyramid: runs once per frame, whatever the number of prompts."""
from __future__ import annotations

from torch import nn
from torch.nn import functional as F


def conv_norm_act(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


class PixelDecoder(nn.Module):
    """FPN over the backbone's four scales.

    forward([f4, f8, f16, f32]) -> (p4 (B, D, H/4, W/4), p16 (B, D, H/16, W/16)); p16 already holds the
    stride-32 context, p4 the fine detail used for mask boundaries.
    """

    def __init__(self, in_channels: list, dim: int):
        super().__init__()
        self.lateral = nn.ModuleList([nn.Conv2d(c, dim, 1) for c in in_channels])
        self.smooth = nn.ModuleList([conv_norm_act(dim, dim) for _ in in_channels[:-1]])

    def forward(self, features: list) -> tuple:
        x = self.lateral[-1](features[-1])
        outputs = [None] * len(features)
        outputs[-1] = x
        for level in range(len(features) - 2, -1, -1):
            lateral = self.lateral[level](features[level])
            x = lateral + F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            x = self.smooth[level](x)
            outputs[level] = x
        return outputs[0], outputs[2]
