"""Model card loading: a valid folder loads; every kind of broken folder is refused at load time with the
file and field named."""
import copy
import hashlib
import json

import pytest

from actiseg_ros.inference.model_card import CARD_FILE, ModelCardError, load_model_card, parse_card


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILES = {"text_encoder.onnx": b"text graph bytes", "segmenter.onnx": b"segmenter graph bytes",
         "tokenizer.json": b'{"version": "1.0"}'}


def card_dict() -> dict:
    """The card `actiseg export` writes (training/export.py), over the FILES above."""
    return {
        "format": "actiseg-onnx/1", "input_hw": [64, 96], "mask_stride": 4,
        "normalization": {"mean": 127.0, "scale": 128.0, "channel_order": "RGB", "letterbox": "top-left"},
        "max_tokens": 32, "text_width": 384, "thresholds": {"positive_gate": 0.75, "mask": 0.5},
        "prompt_template": "{object} used in the action of {narration}", "tokenizer": "tokenizer.json", "opset": 17,
        "graphs": {"text_encoder": {"file": "text_encoder.onnx", "sha256": _sha(FILES["text_encoder.onnx"])},
                   "segmenter": {"file": "segmenter.onnx", "sha256": _sha(FILES["segmenter.onnx"])}},
        "tokenizer_sha256": _sha(FILES["tokenizer.json"]),
    }


def write_folder(path, card=None, files=None):
    path.mkdir(parents=True, exist_ok=True)
    for name, data in (FILES if files is None else files).items():
        (path / name).write_bytes(data)
    (path / CARD_FILE).write_text(json.dumps(card_dict() if card is None else card))
    return path


def test_valid_folder_loads_with_every_field(tmp_path):
    card = load_model_card(write_folder(tmp_path / "m"))
    assert card.input_hw == (64, 96) and card.output_hw == (16, 24)
    assert (card.max_tokens, card.text_width, card.mask_stride) == (32, 384, 4)
    assert (card.positive_gate, card.mask_threshold) == (0.75, 0.5)
    assert card.segmenter.path == tmp_path / "m" / "segmenter.onnx"
    assert card.text_encoder.sha256 == _sha(FILES["text_encoder.onnx"])
    assert card.tokenizer.path.name == "tokenizer.json"


def test_missing_folder_and_missing_card(tmp_path):
    with pytest.raises(ModelCardError, match="does not exist"):
        load_model_card(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelCardError, match="no model_card.json"):
        load_model_card(tmp_path / "empty")


def test_corrupt_json_names_the_card(tmp_path):
    folder = write_folder(tmp_path / "m")
    (folder / CARD_FILE).write_text('{"format": "actiseg-onnx/1",')
    with pytest.raises(ModelCardError, match="model_card.json: not valid JSON"):
        load_model_card(folder)


def test_wrong_format_is_refused():
    card = card_dict()
    card["format"] = "actiseg-onnx/9"
    with pytest.raises(ModelCardError, match="'format' is 'actiseg-onnx/9'"):
        parse_card(card, "m")


@pytest.mark.parametrize("path", ["input_hw", "mask_stride", "max_tokens", "normalization.mean",
                                  "thresholds.positive_gate", "graphs", "tokenizer", "prompt_template"])
def test_missing_field_is_named(path):
    card = card_dict()
    *parents, leaf = path.split(".")
    target = card
    for part in parents:
        target = target[part]
    del target[leaf]
    with pytest.raises(ModelCardError, match="missing field '%s'" % path):
        parse_card(card, "m")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(input_hw=[64]), "'input_hw' must be"),
    (lambda c: c.update(input_hw=[64, "96"]), "'input_hw' must be"),
    (lambda c: c.update(input_hw=[62, 96]), "not divisible by 'mask_stride'"),
    (lambda c: c.update(max_tokens=0), "'max_tokens' must be a positive integer"),
    (lambda c: c.update(max_tokens=True), "'max_tokens' must be int"),
    (lambda c: c.update(text_width="384"), "'text_width' must be int"),
    (lambda c: c["thresholds"].update(mask=1.5), r"'thresholds.mask' must be in \(0, 1\)"),
    (lambda c: c["normalization"].update(channel_order="BGR"), "'normalization.channel_order' is 'BGR'"),
    (lambda c: c["normalization"].update(scale=0), "'normalization.scale' must be positive"),
    (lambda c: c.update(prompt_template="{object}"), "'prompt_template' must contain"),
    (lambda c: c["graphs"]["segmenter"].update(sha256="abc"), "'graphs.segmenter.sha256' must be 64"),
    (lambda c: c["graphs"]["segmenter"].update(file="../x.onnx"), "'graphs.segmenter.file' must be a file name"),
    (lambda c: c.pop("tokenizer_sha256"), "'tokenizer_sha256' must be 64"),
])
def test_bad_values_are_named(edit, message):
    card = copy.deepcopy(card_dict())
    edit(card)
    with pytest.raises(ModelCardError, match=message):
        parse_card(card, "m")


def test_card_that_is_not_an_object():
    with pytest.raises(ModelCardError, match="must be a JSON object"):
        parse_card([1, 2], "m")


@pytest.mark.parametrize("name", ["segmenter.onnx", "text_encoder.onnx", "tokenizer.json"])
def test_missing_file_is_named(tmp_path, name):
    files = {k: v for k, v in FILES.items() if k != name}
    folder = write_folder(tmp_path / "m", files=files)
    with pytest.raises(ModelCardError, match="%s named in model_card.json does not exist" % name.replace(".", r"\.")):
        load_model_card(folder)


@pytest.mark.parametrize("name", ["segmenter.onnx", "text_encoder.onnx", "tokenizer.json"])
def test_changed_file_fails_the_hash_check(tmp_path, name):
    files = dict(FILES)
    files[name] = FILES[name][:-1]  # truncated in transit
    folder = write_folder(tmp_path / "m", files=files)
    with pytest.raises(ModelCardError, match="%s: sha256 mismatch" % name.replace(".", r"\.")):
        load_model_card(folder)
    assert load_model_card(folder, check_hashes=False).segmenter.path.is_file()
