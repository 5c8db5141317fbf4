"""Text -> image fusion at stride 16: every image location reads the prompt's words."""
from __future__ import annotations

import math

import torch
from torch import nn


def sine_position_encoding(height: int, width: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """DETR-style 2-D sine encoding, (H*W, dim); half the channels encode y, half x."""
    quarter = dim // 4
    frequencies = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(10000.0) / quarter))
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 * math.pi
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 * math.pi
    y_enc = ys[:, None] * frequencies[None]  # (H, quarter)
    x_enc = xs[:, None] * frequencies[None]  # (W, quarter)
    y_part = torch.cat([y_enc.sin(), y_enc.cos()], dim=-1)[:, None, :].expand(height, width, 2 * quarter)
    x_part = torch.cat([x_enc.sin(), x_enc.cos()], dim=-1)[None, :, :].expand(height, width, 2 * quarter)
    encoding = torch.cat([y_part, x_part], dim=-1).reshape(height * width, 4 * quarter)
    if encoding.shape[1] < dim:
        encoding = nn.functional.pad(encoding, (0, dim - encoding.shape[1]))
    return encoding.to(dtype or torch.float32)


class TextImageFusion(nn.Module):
    """forward(p16 (B, D, h, w), text (B*K, L, D), text_mask (B*K, L) bool, sentence (B*K, D), k) ->
    fused (B*K, h*w, D): one text-conditioned copy of the image tokens per prompt.
    """

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.film = nn.Linear(dim, 2 * dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, p16, text, text_mask, sentence, k: int):
        b, d, h, w = p16.shape
        pos = sine_position_encoding(h, w, d, p16.device, p16.dtype)  # (h*w, D)
        image = p16.flatten(2).transpose(1, 2)  # (B, h*w, D)
        image = image.unsqueeze(1).expand(b, k, h * w, d).reshape(b * k, h * w, d)
        attended, _ = self.attention(image + pos, text, text, key_padding_mask=~text_mask, need_weights=False)
        x = self.norm1(image + attended)
        gamma, beta = self.film(sentence).unsqueeze(1).chunk(2, dim=-1)  # (B*K, 1, D) each
        x = x * (1 + gamma) + beta
        return self.norm2(x + self.mlp(x))
