"""Prompt tokenisation with the `tokenizers` package (Rust, no torch/transformers), bit-identical to the
transformers BertTokenizerFast call used in training: padding='max_length', truncation=True, max_length=L.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

PAD_TOKEN = "[PAD]"  # BERT's pad token; used when tokenizer.json carries no padding section


class TokenizerError(ValueError):
    """The tokenizer file is missing or unusable, or a prompt is not a string."""


class PromptTokenizer:
    """encode(prompts) -> input_ids (N, L) int64, attention_mask (N, L) int64, L = max_tokens."""

    def __init__(self, path, max_tokens: int):
        try:
            from tokenizers import Tokenizer
        except ModuleNotFoundError:
            raise ModuleNotFoundError("prompt tokenisation needs the Python package 'tokenizers' "
                                      "(pip install tokenizers)", name="tokenizers") from None
        path = Path(path)
        if not path.is_file():
            raise TokenizerError("tokenizer file %s does not exist" % path)
        if max_tokens < 2:
            raise TokenizerError("max_tokens must leave room for [CLS] and [SEP], got %d" % max_tokens)
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # the Rust side raises plain Exception for malformed JSON
            raise TokenizerError("%s is not a valid tokenizers JSON file (%s)" % (path, err)) from None
        pad_token = tokenizer.padding["pad_token"] if tokenizer.padding else PAD_TOKEN
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise TokenizerError("%s has no pad token %r in its vocabulary" % (path, pad_token))
        # Truncation keeps room for the special tokens the post-processor adds, as transformers does.
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(length=max_tokens, pad_id=pad_id, pad_token=pad_token)
        self._tokenizer = tokenizer
        self.path = path
        self.max_tokens = max_tokens
        self.pad_id = pad_id

    def encode(self, prompts) -> tuple:
        """list of N str -> (input_ids (N, L) int64, attention_mask (N, L) int64)."""
        prompts = list(prompts)
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TokenizerError("prompt %d is a %s, not a str: %r" % (index, type(prompt).__name__, prompt))
        ids = np.zeros((len(prompts), self.max_tokens), np.int64)
        mask = np.zeros((len(prompts), self.max_tokens), np.int64)
        for row, encoding in enumerate(self._tokenizer.encode_batch(prompts)):
            ids[row] = encoding.ids
            mask[row] = encoding.attention_mask
        return ids, mask
