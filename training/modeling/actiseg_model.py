"""ActiSegModel: the thin facade that wires encoder, fusion and decoder (segment-anything style)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .fusion import TextImageFusion
from .image_encoder import ImageEncoder
from .mask_decoder import MaskDecoder
from .pixel_decoder import PixelDecoder
from .pmhm_heads import AuxiliaryMaskHeads
from .text_encoder import TEXT_WIDTH, TextEncoder, sentence_embedding


@dataclass
class ModelConfig:
    backbone: str = "efficientnet-lite0"
    pretrained: bool = True
    backbone_trainable: bool = True  # False: ImageNet features as they are (no backward through the backbone)
    dim: int = 96
    heads: int = 4
    decoder_layers: int = 2
    aux_heads: int = 1  # PMHM auxiliary heads; 0 = plain model
    activity_gate: bool = True  # mask = P(object pixel) x P(object active): see mask_decoder.gate_by_activity
    text_trainable: bool = False
    input_hw: tuple = (192, 320)  # letterboxed model input (H, W), multiples of 32


class PromptProjector(nn.Module):
    """MiniLM token features (N, L, 384) -> (tokens (N, L, D), sentence (N, D))."""

    def __init__(self, dim: int):
        super().__init__()
        self.tokens = nn.Linear(TEXT_WIDTH, dim)
        self.sentence = nn.Linear(TEXT_WIDTH, dim)

    def forward(self, text_tokens: torch.Tensor, text_mask: torch.Tensor) -> tuple:
        return self.tokens(text_tokens), self.sentence(sentence_embedding(text_tokens, text_mask))


class ActiSegSegmenter(nn.Module):
    """Everything after the text encoder; this is the graph exported for the robot.

    forward(images (B, 3, H, W), text_tokens (B, K, L, 384), text_mask (B, K, L)) -> dict with
    mask_logits (B, K, H/4, W/4), positive_logits (B, K), plus training-only entries (see MaskDecoder).
    The image encoder and pyramid run once per frame; only fusion and decoder scale with K.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.image_encoder = ImageEncoder(config.backbone, config.pretrained)
        self.pixel_decoder = PixelDecoder(self.image_encoder.channels, config.dim)
        self.prompt = PromptProjector(config.dim)
        self.fusion = TextImageFusion(config.dim, config.heads)
        self.decoder = MaskDecoder(config.dim, config.decoder_layers, config.heads, config.activity_gate)
        self.aux_heads = AuxiliaryMaskHeads(self.decoder.mask_head, config.aux_heads)
        if not config.backbone_trainable:
            self.image_encoder.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.config.backbone_trainable:
            self.image_encoder.eval()  # a frozen backbone keeps its ImageNet batch-norm statistics
        return self

    def forward(self, images, text_tokens, text_mask, with_aux: bool = False, features=None) -> dict:
        """features: the frozen backbone's maps of `images` when the caller has them (training's feature
        cache, training/feature_cache.py); then the image encoder does not run."""
        b, k, length, width = text_tokens.shape
        mask = text_mask.reshape(b * k, length) > 0
        tokens, sentence = self.prompt(text_tokens.reshape(b * k, length, width), mask.to(text_tokens.dtype))
        if features is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.backbone_trainable):
                features = self.image_encoder(images)
        p4, p16 = self.pixel_decoder(features)
        fused = self.fusion(p16, tokens, mask, sentence, k)
        out = self.decoder(p4, fused, p16.shape[-2:], tokens, mask, sentence)
        if with_aux and len(self.aux_heads.heads):
            positive = out["positive_logits"].detach()  # the main head's gate; aux heads only vote on pixels
            out["aux_mask_logits"] = [self.decoder.gate(m, positive)
                                      for m in self.aux_heads(out["query"], out["mask_features"])]
        h4, w4 = out["mask_logits"].shape[-2:]
        out["mask_logits"] = out["mask_logits"].reshape(b, k, h4, w4)
        out["positive_logits"] = out["positive_logits"].reshape(b, k)
        return out


class ActiSegModel(nn.Module):
    """Text encoder + segmenter, for training and offline inference from prompt strings."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.text_encoder = TextEncoder(trainable=config.text_trainable)
        self.segmenter = ActiSegSegmenter(config)

    def encode_text(self, input_ids, attention_mask) -> torch.Tensor:
        return self.text_encoder(input_ids, attention_mask)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
