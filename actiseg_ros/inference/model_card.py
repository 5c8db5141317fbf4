"""The exported model folder's card (model_card.json, written by `actiseg export`): load, validate, verify.

Everything the runtime needs to drive the graphs (input size, normalisation, token length, thresholds,
file names) comes from the card, so a robot never guesses. A folder that does not match its card (a file
missing, edited or truncated in transit) is refused at load time with the offending file and field named,
instead of failing later inside an inference engine.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

CARD_FILE = "model_card.json"
SUPPORTED_FORMATS = ("actiseg-onnx/1",)
GRAPH_NAMES = ("text_encoder", "segmenter")
# Only what the graph contracts fix; the export writes these and the runtime relies on them.
SUPPORTED_NORMALIZATION = {"channel_order": "RGB", "letterbox": "top-left"}


class ModelCardError(ValueError):
    """A model folder or its card is unusable; the message names the file and the field."""


@dataclass(frozen=True)
class GraphFile:
    path: Path
    sha256: str


@dataclass(frozen=True)
class ModelCard:
    model_dir: Path
    format: str
    input_hw: tuple  # (H, W) of the segmenter's image input
    mask_stride: int  # mask_logits are (H / stride, W / stride)
    pixel_mean: float
    pixel_scale: float
    max_tokens: int  # L of every text tensor
    text_width: int  # C of text_tokens
    positive_gate: float
    mask_threshold: float
    prompt_template: str
    tokenizer: GraphFile
    text_encoder: GraphFile
    segmenter: GraphFile
    raw: dict = field(repr=False, compare=False)

    @property
    def output_hw(self) -> tuple:
        return (self.input_hw[0] // self.mask_stride, self.input_hw[1] // self.mask_stride)


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _get(data: dict, key: str, kind, source: str):
    """data[key] checked against `kind` (a type or tuple of types); `key` may be dotted for nesting."""
    value = data
    walked = []
    for part in key.split("."):
        walked.append(part)
        if not isinstance(value, dict) or part not in value:
            raise ModelCardError("%s: missing field '%s'" % (source, ".".join(walked)))
        value = value[part]
    # bool is an int subclass; a boolean where a number belongs is a broken card, not a 0/1.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ModelCardError("%s: field '%s' must be %s, got %r" % (source, key, _kind_name(kind), value))
    if not isinstance(value, kind):
        raise ModelCardError("%s: field '%s' must be %s, got %r" % (source, key, _kind_name(kind), value))
    return value


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _positive_int(data, key, source) -> int:
    value = _get(data, key, int, source)
    if value <= 0:
        raise ModelCardError("%s: field '%s' must be a positive integer, got %r" % (source, key, value))
    return value


def _probability(data, key, source) -> float:
    value = float(_get(data, key, (int, float), source))
    if not 0.0 < value < 1.0:
        raise ModelCardError("%s: field '%s' must be in (0, 1), got %r" % (source, key, value))
    return value


def _file_entry(model_dir: Path, name, sha, key: str, sha_key: str, source: str) -> GraphFile:
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ModelCardError("%s: field '%s' must be a file name inside the model folder, got %r" % (source, key, name))
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelCardError("%s: field '%s' must be 64 lowercase hex digits, got %r" % (source, sha_key, sha))
    return GraphFile(path=model_dir / name, sha256=sha)


def parse_card(data, model_dir, source: str = CARD_FILE) -> ModelCard:
    """Validate the card's structure and values (no file access). `source` names the card in errors."""
    model_dir = Path(model_dir)
    if not isinstance(data, dict):
        raise ModelCardError("%s: the card must be a JSON object, got %s" % (source, type(data).__name__))
    card_format = _get(data, "format", str, source)
    if card_format not in SUPPORTED_FORMATS:
        raise ModelCardError("%s: field 'format' is %r; this runtime reads %s (re-export the model with this "
                             "version of actiseg_ros)" % (source, card_format, ", ".join(SUPPORTED_FORMATS)))
    input_hw = _get(data, "input_hw", list, source)
    if len(input_hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_hw):
        raise ModelCardError("%s: field 'input_hw' must be [height, width] positive integers, got %r"
                             % (source, input_hw))
    stride = _positive_int(data, "mask_stride", source)
    if input_hw[0] % stride or input_hw[1] % stride:
        raise ModelCardError("%s: field 'input_hw' %r is not divisible by 'mask_stride' %d"
                             % (source, input_hw, stride))
    for key, expected in SUPPORTED_NORMALIZATION.items():
        value = _get(data, "normalization." + key, str, source)
        if value != expected:
            raise ModelCardError("%s: field 'normalization.%s' is %r; the runtime supports %r only"
                                 % (source, key, value, expected))
    scale = float(_get(data, "normalization.scale", (int, float), source))
    if scale <= 0:
        raise ModelCardError("%s: field 'normalization.scale' must be positive, got %r" % (source, scale))
    template = _get(data, "prompt_template", str, source)
    if "{object}" not in template or "{narration}" not in template:
        raise ModelCardError("%s: field 'prompt_template' must contain {object} and {narration}, got %r"
                             % (source, template))
    graphs = _get(data, "graphs", dict, source)
    files = {}
    for name in GRAPH_NAMES:
        entry = _get(graphs, name, dict, source + " graphs")
        files[name] = _file_entry(model_dir, entry.get("file"), entry.get("sha256"), "graphs.%s.file" % name,
                                   "graphs.%s.sha256" % name, source)
    tokenizer = _file_entry(model_dir, _get(data, "tokenizer", str, source), data.get("tokenizer_sha256"),
                            "tokenizer", "tokenizer_sha256", source)
    return ModelCard(
        model_dir=model_dir, format=card_format, input_hw=(input_hw[0], input_hw[1]), mask_stride=stride,
        pixel_mean=float(_get(data, "normalization.mean", (int, float), source)), pixel_scale=scale,
        max_tokens=_positive_int(data, "max_tokens", source), text_width=_positive_int(data, "text_width", source),
        positive_gate=_probability(data, "thresholds.positive_gate", source),
        mask_threshold=_probability(data, "thresholds.mask", source), prompt_template=template,
        tokenizer=tokenizer, text_encoder=files["text_encoder"], segmenter=files["segmenter"], raw=data)


def verify_files(card: ModelCard, check_hashes: bool = True) -> None:
    """Every file the card names exists and (unless check_hashes is False) has the recorded sha256."""
    for label, entry in (("tokenizer", card.tokenizer), ("text_encoder graph", card.text_encoder),
                         ("segmenter graph", card.segmenter)):
        if not entry.path.is_file():
            raise ModelCardError("%s: the %s %s named in %s does not exist"
                                 % (card.model_dir, label, entry.path.name, CARD_FILE))
        if check_hashes:
            actual = sha256_file(entry.path)
            if actual != entry.sha256:
                raise ModelCardError("%s: sha256 mismatch (file %s, card %s): the file was changed or damaged "
                                     "after export; re-copy or re-export the model folder"
                                     % (entry.path, actual[:16] + "...", entry.sha256[:16] + "..."))


def load_model_card(model_dir, check_hashes: bool = True) -> ModelCard:
    """Read, validate and verify model_dir/model_card.json; raises ModelCardError naming file and field."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelCardError("model folder %s does not exist (make one with `actiseg export`)" % model_dir)
    path = model_dir / CARD_FILE
    if not path.is_file():
        raise ModelCardError("%s: no %s; is this an `actiseg export` folder?" % (model_dir, CARD_FILE))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelCardError("%s: not valid JSON (%s)" % (path, err)) from None
    card = parse_card(data, model_dir, source=str(path))
    verify_files(card, check_hashes=check_hashes)
    return card
