"""Text features of prompts. With the frozen encoder each distinct prompt is encoded once and cached."""
from __future__ import annotations

import torch

from .modeling.text_encoder import MAX_TOKENS, TEXT_WIDTH, load_tokenizer, tokenize


class PromptBank:
    """prompt string -> (token features (L, 384) float16, attention mask (L,) bool)."""

    def __init__(self, text_encoder, tokenizer=None, batch_size: int = 64):
        self.encoder, self.tokenizer = text_encoder, tokenizer or load_tokenizer()
        self.batch_size = batch_size
        self._features: dict = {}

    def __len__(self) -> int:
        return len(self._features)

    @torch.no_grad()
    def add(self, prompts) -> None:
        missing = sorted({p for p in prompts if p not in self._features})
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start:start + self.batch_size]
            ids, mask = tokenize(self.tokenizer, chunk)
            tokens = self.encoder(ids, mask)
            for i, prompt in enumerate(chunk):
                self._features[prompt] = (tokens[i].to(torch.float16), mask[i].bool())

    def features(self, prompt: str) -> tuple:
        """(token features (L, 384) float16, attention mask (L,) bool) of a prompt already in the bank."""
        return self._features[prompt]

    def set_features(self, features: dict) -> None:
        """Put {prompt: (tokens, mask)} computed earlier by this encoder (feature_cache.add_prompts_cached)."""
        self._features.update(features)

    def lookup(self, prompts_per_clip: list, k_max: int) -> tuple:
        """B lists of prompts -> tokens (B, k_max, L, 384) float32, mask (B, k_max, L) float32 (0 = padding).

        Padded prompt slots get one visible zero token so attention never sees an all-masked row.
        """
        self.add(p for clip in prompts_per_clip for p in clip)
        b = len(prompts_per_clip)
        tokens = torch.zeros(b, k_max, MAX_TOKENS, TEXT_WIDTH)
        mask = torch.zeros(b, k_max, MAX_TOKENS)
        mask[:, :, 0] = 1.0
        for i, clip in enumerate(prompts_per_clip):
            for j, prompt in enumerate(clip):
                features, attention = self._features[prompt]
                tokens[i, j] = features.float()
                mask[i, j] = attention.float()
        return tokens, mask


def encode_prompts(text_encoder, tokenizer, prompts_per_clip: list, k_max: int) -> tuple:
    """Like PromptBank.lookup but through the encoder with gradients, for text-encoder fine-tuning."""
    b = len(prompts_per_clip)
    flat = [clip[j] if j < len(clip) else "" for clip in prompts_per_clip for j in range(k_max)]
    ids, attention = tokenize(tokenizer, flat)
    tokens = text_encoder(ids, attention).reshape(b, k_max, MAX_TOKENS, TEXT_WIDTH)
    return tokens, attention.reshape(b, k_max, MAX_TOKENS).float()
