"""Prompt features: tokenizer + text engine + an LRU cache keyed by prompt string.

A robot cycles through a handful of actions; a prompt seen before costs a dictionary look-up, a new one
one text-encoder run (batched with the other new prompts of the same call).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np


class PromptEncoder:
    """encode(prompts) -> (text_tokens (K, L, C) float32, text_mask (K, L) float32)."""

    def __init__(self, tokenizer, engine, cache_size: int = 64):
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0, got %d" % cache_size)
        self.tokenizer = tokenizer
        self.engine = engine
        self.cache_size = cache_size
        self._cache: OrderedDict = OrderedDict()  # prompt -> ((L, C) float32, (L,) float32), oldest first
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def encode(self, prompts) -> tuple:
        prompts = list(prompts)
        if not prompts:
            raise ValueError("at least one prompt is needed")
        found = {}
        for prompt in prompts:
            if prompt in self._cache:
                self._cache.move_to_end(prompt)
                found[prompt] = self._cache[prompt]
        new = list(dict.fromkeys(p for p in prompts if p not in found))  # unique, in order
        self.hits += len(prompts) - sum(1 for p in prompts if p in new)
        self.misses += len(new)
        step = getattr(self.engine, "max_prompts", None) or max(len(new), 1)  # TensorRT profiles cap N
        for start in range(0, len(new), step):
            chunk = new[start:start + step]
            ids, mask = self.tokenizer.encode(chunk)
            tokens = self.engine.run(ids, mask)
            for row, prompt in enumerate(chunk):
                # Copies, so a cached entry never pins the engine's whole output batch.
                found[prompt] = (tokens[row].astype(np.float32, copy=True), mask[row].astype(np.float32))
                if self.cache_size:
                    self._cache[prompt] = found[prompt]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        text_tokens = np.stack([found[p][0] for p in prompts])
        text_mask = np.stack([found[p][1] for p in prompts])
        return text_tokens, text_mask
