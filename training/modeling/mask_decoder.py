"""Per-prompt query decoder, text-conditioned mask head and positive-class head."""
from __future__ import annotations

from typing import NamedTuple

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


class MaskFeatures(NamedTuple):
    """Per-prompt stride-4 mask features in factored form: row n (frame n // k, prompt n % k) has the features
    fine[n // k] + upsample(coarse[n]) (D channels at stride 4).

    fine    (B, D, H4, W4)  the text-agnostic pyramid level, shared by the K prompts of a frame
    coarse  (B*K, D, h, w)  the prompt's fused map at stride 16
    Kept apart because every mask head is linear in the features: <kernel, fine + up(coarse)> equals
    <kernel, fine> + up(<kernel, coarse>), so the (B*K, D, H4, W4) tensor is never built (it dominated the
    CPU training step: 32M floats per batch, read by every head and its backward).
    """

    fine: torch.Tensor
    coarse: torch.Tensor

    @property
    def prompts_per_frame(self) -> int:
        return self.coarse.shape[0] // self.fine.shape[0]

    def materialize(self) -> torch.Tensor:
        """(B*K, D, H4, W4): the features written out (reference for tests; too big for the training step)."""
        k = self.prompts_per_frame
        b, d, h4, w4 = self.fine.shape
        fine = self.fine.unsqueeze(1).expand(b, k, d, h4, w4).reshape(b * k, d, h4, w4)
        return fine + F.interpolate(self.coarse, size=(h4, w4), mode="bilinear", align_corners=False)


def project(kernel: torch.Tensor, features: MaskFeatures) -> torch.Tensor:
    """kernel (B*K, D) . features -> logits (B*K, H4, W4)."""
    b, d, h4, w4 = features.fine.shape
    k = features.prompts_per_frame
    fine = torch.matmul(kernel.reshape(b, k, d), features.fine.reshape(b, d, h4 * w4))  # (B, K, H4*W4)
    coarse = torch.einsum("nd,ndhw->nhw", kernel, features.coarse).unsqueeze(1)  # (B*K, 1, h, w)
    coarse = F.interpolate(coarse, size=(h4, w4), mode="bilinear", align_corners=False)[:, 0]
    return fine.reshape(b * k, h4, w4) + coarse


def gate_by_activity(object_logits: torch.Tensor, activity_logits: torch.Tensor) -> torch.Tensor:
    """logit(sigmoid(a) * sigmoid(b)) = a + b - log(1 + e^a + e^b), stable through logsumexp.

    object_logits a (N, H, W): is the pixel on the prompted object; activity_logits b (N,): is the object
    active in the action (the positive head). The product lets a mask head segment an object the same way
    whether or not it is active, while a negative prompt still gets an empty mask (ActionVOS's target) from
    b alone; trained directly on a masked-out target the head had learnt to segment nothing but hands.
    """
    b = activity_logits.view(-1, 1, 1).expand_as(object_logits)
    zero = torch.zeros_like(object_logits)
    return object_logits + b - torch.logsumexp(torch.stack([zero, object_logits, b]), dim=0)


class MaskHead(nn.Module):
    """Dynamic mask head: query (N, D) -> kernel; logits = <kernel, mask features> / sqrt(D).

    PMHM's auxiliary heads are copies of this module (training only).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.kernel = MLP(dim, dim, dim)
        self.scale = dim ** -0.5

    def kernels(self, query: torch.Tensor) -> torch.Tensor:
        """query (N, D) -> (N, D) scaled kernels."""
        return self.kernel(query) * self.scale

    def forward(self, query: torch.Tensor, mask_features: MaskFeatures) -> torch.Tensor:
        return project(self.kernels(query), mask_features)


class MaskDecoder(nn.Module):
    """forward(p4 (B, D, H4, W4), fused (B*K, h*w, D), fused_hw, text, text_mask, sentence) ->
    dict with
      mask_logits      (B*K, H4, W4)      from the last layer, gated by the positive logit (activity_gate)
      positive_logits  (B*K,)
      object_logits    (B*K, H4, W4)      the last layer's mask head before the gate: "is this pixel the
                                          prompted object", active or not (trained by the object-mask loss)
      layer_mask_logits list of (B*K, H4, W4) from the earlier layers (deep supervision / PMHM layer consistency)
      query            (B*K, D)           last layer's query (read by PMHM's auxiliary heads)
      mask_features    MaskFeatures       the per-prompt stride-4 features, factored
    """

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, activity_gate: bool = True):
        super().__init__()
        self.activity_gate = activity_gate
        self.query_init = nn.Linear(dim, dim)
        self.layers = nn.ModuleList([DecoderLayer(dim, heads) for _ in range(layers)])
        self.fused_to_pixels = nn.Conv2d(dim, dim, 1)
        self.mask_head = MaskHead(dim)
        self.positive_head = MLP(dim, dim, 1)

    def forward(self, p4, fused, fused_hw, text, text_mask, sentence) -> dict:
        d = p4.shape[1]
        h, w = fused_hw
        n = fused.shape[0]
        # Per-prompt pixel features: the shared fine map plus the prompt-specific coarse map, upsampled.
        coarse = self.fused_to_pixels(fused.transpose(1, 2).reshape(n, d, h, w))  # (B*K, D, h, w)
        mask_features = MaskFeatures(fine=p4, coarse=coarse)

        pos = sine_position_encoding(h, w, d, fused.device, fused.dtype)
        query = self.query_init(sentence).unsqueeze(1)  # (N, 1, D)
        layer_masks = []
        for layer in self.layers:
            query = layer(query, text, text_mask, fused, pos)
            layer_masks.append(self.mask_head(query[:, 0], mask_features))
        query = query[:, 0]
        positive = self.positive_head(query)[:, 0]  # (B*K,)
        return {
            "mask_logits": self.gate(layer_masks[-1], positive),
            "positive_logits": positive,
            "object_logits": layer_masks[-1],
            "layer_mask_logits": [self.gate(m, positive) for m in layer_masks[:-1]],
            "query": query,
            "mask_features": mask_features,
        }

    def gate(self, object_logits: torch.Tensor, positive_logits: torch.Tensor) -> torch.Tensor:
        """The mask logits a head's object logits become (see gate_by_activity); identity when disabled."""
        return gate_by_activity(object_logits, positive_logits) if self.activity_gate else object_logits
