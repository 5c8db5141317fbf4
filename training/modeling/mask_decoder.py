"""Per-prompt query decoder, text-conditioned mask head and positive-class head."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .fusion import sine_position_encoding


class MLP(nn.Sequential):
    def __init__(self, dim_in: int, dim_hidden: int, dim_out: int):
        super().__init__(nn.Linear(dim_in, dim_hidden), nn.ReLU(inplace=True), nn.Linear(dim_hidden, dim_out))


class DecoderLayer(nn.Module):
    """One query per prompt reads the prompt's words, then the fused image tokens."""

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.text_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.image_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = MLP(dim, 2 * dim, dim)
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(3)])

    def forward(self, query, text, text_mask, image, image_pos):
        attended, _ = self.text_attention(query, text, text, key_padding_mask=~text_mask, need_weights=False)
        query = self.norms[0](query + attended)
        attended, _ = self.image_attention(query, image + image_pos, image, need_weights=False)
        query = self.norms[1](query + attended)
        return self.norms[2](query + self.ffn(query))


class MaskHead(nn.Module):
    """Dynamic mask head: query (N, D) -> kernel; logits = <kernel, mask features (N, D, H, W)>.

    PMHM's auxiliary heads are copies of this module (training only).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.kernel = MLP(dim, dim, dim)
        self.scale = dim ** -0.5

    def forward(self, query: torch.Tensor, mask_features: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel(query)  # (N, D)
        return torch.einsum("nd,ndhw->nhw", kernel, mask_features) * self.scale


class MaskDecoder(nn.Module):
    """forward(p4 (B, D, H4, W4), fused (B*K, h*w, D), fused_hw, text, text_mask, sentence, k) ->
    dict with
      mask_logits      (B*K, H4, W4)      from the last layer
      positive_logits  (B*K,)
      layer_mask_logits list of (B*K, H4, W4) from the earlier layers (deep supervision / PMHM layer consistency)
      query            (B*K, D)           last layer's query (read by PMHM's auxiliary heads)
      mask_features    (B*K, D, H4, W4)
    """

    def __init__(self, dim: int, layers: int = 2, heads: int = 4):
        super().__init__()
        self.query_init = nn.Linear(dim, dim)
        self.layers = nn.ModuleList([DecoderLayer(dim, heads) for _ in range(layers)])
        self.fused_to_pixels = nn.Conv2d(dim, dim, 1)
        self.mask_head = MaskHead(dim)
        self.positive_head = MLP(dim, dim, 1)

    def forward(self, p4, fused, fused_hw, text, text_mask, sentence, k: int) -> dict:
        b, d, h4, w4 = p4.shape
        h, w = fused_hw
        n = fused.shape[0]
        # Per-prompt pixel features: the shared fine map plus the prompt-specific coarse map, upsampled.
        coarse = self.fused_to_pixels(fused.transpose(1, 2).reshape(n, d, h, w))
        coarse = F.interpolate(coarse, size=(h4, w4), mode="bilinear", align_corners=False)
        fine = p4.unsqueeze(1).expand(b, k, d, h4, w4).reshape(n, d, h4, w4)
        mask_features = fine + coarse

        pos = sine_position_encoding(h, w, d, fused.device, fused.dtype)
        query = self.query_init(sentence).unsqueeze(1)  # (N, 1, D)
        layer_masks = []
        for layer in self.layers:
            query = layer(query, text, text_mask, fused, pos)
            layer_masks.append(self.mask_head(query[:, 0], mask_features))
        query = query[:, 0]
        return {
            "mask_logits": layer_masks[-1],
            "positive_logits": self.positive_head(query)[:, 0],
            "layer_mask_logits": layer_masks[:-1],
            "query": query,
            "mask_features": mask_features,
        }
