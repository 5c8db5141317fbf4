"""Export a trained checkpoint to the robot's artefacts (kept apart from the model code, as in SAM's
utils/onnx.py): two ONNX graphs, the tokenizer and a model card, checked for parity against torch.

Graph contracts (dynamic N, B and K; fixed L = 32 tokens and a fixed input size per model):
  text_encoder.onnx  input_ids (N, L) int64, attention_mask (N, L) int64 -> text_tokens (N, L, 384) float32
  segmenter.onnx     images (B, 3, H, W) float32, text_tokens (B, K, L, 384) float32, text_mask (B, K, L) float32
                     -> mask_logits (B, K, H/4, W/4) float32, positive_logits (B, K) float32
Opset 17, the legacy TorchScript exporter: TensorRT 8.6 (JetPack 6) parses opset <= 17, and the dynamo
exporter emits opset >= 18 only. PMHM's auxiliary heads are not in the graph (training only).

The text encoder is written with int8 weights by default (training/quantize.py: 23 MB instead of 90 MB, so
the shipped one lives in git); its float32 graph is checked against torch first, then the int8 graph's prompt
features against torch's by cosine. `--text-fp32` writes the float32 graph instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from actiseg_ros.inference.model_card import sha256_file
from actiseg_ros.inference.postprocess import POSITIVE_GATE as DEFAULT_POSITIVE_GATE

from .checkpoint import load_weights
from .modeling.text_encoder import MAX_TOKENS, TEXT_WIDTH, load_tokenizer, minilm_path, tokenize

OPSET = 17
CARD_FORMAT = "actiseg-onnx/1"
TEXT_GRAPH = "text_encoder.onnx"
SEGMENTER_GRAPH = "segmenter.onnx"
CARD = "model_card.json"
PARITY_ATOL = 1e-4
# Relative part of the logit tolerance: float32 keeps ~7 digits, and reordered sums in ONNX Runtime's kernels
# differ from torch's by a few ulps per op; after a few hundred ops large logits (|x| ~ 20-60 after long
# training) differ by up to ~1e-5 of their size. Decisions are checked separately (mask IoU, positives).
PARITY_RTOL = 1e-5
PARITY_IOU = 0.999
TEXT_PRECISIONS = ("int8", "fp32")
# The int8 text encoder's prompt features against float32 (cosine over each prompt's token features): the
# shipped one measured >= 0.9989 on all 8806 prompts of the default vocabulary and data (models/MODEL_CARD.md).
TEXT_MIN_COSINE = 0.99


class SegmenterGraph(nn.Module):
    """The inference path of ActiSegSegmenter with plain tensor outputs."""

    def __init__(self, segmenter):
        super().__init__()
        self.segmenter = segmenter

    def forward(self, images, text_tokens, text_mask):
        out = self.segmenter(images, text_tokens, text_mask)
        return out["mask_logits"], out["positive_logits"]


def _export(module, args, path, input_names, output_names, dynamic_axes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)


def export_text_encoder(text_encoder, path) -> None:
    """The float32 graph (90 MB for MiniLM)."""
    ids = torch.ones(2, MAX_TOKENS, dtype=torch.int64)
    mask = torch.ones(2, MAX_TOKENS, dtype=torch.int64)
    _export(text_encoder.eval(), (ids, mask), path, ["input_ids", "attention_mask"], ["text_tokens"],
            {"input_ids": {0: "n"}, "attention_mask": {0: "n"}, "text_tokens": {0: "n"}})


def quantize_text_graph(fp32_path, path) -> dict:
    """fp32_path's graph with int8 weights (training/quantize.py) -> path; returns what was quantized. The
    bytes depend only on the float32 graph (numpy rounding, protobuf serialisation): same input, same file."""
    import onnx

    from .quantize import quantize_weights_int8

    model, report = quantize_weights_int8(onnx.load(str(fp32_path)))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return report


def prompt_cosines(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """(N, L, C) token features twice -> (N,) cosine of each prompt's flattened features (padding is zero in
    both, so only the prompt's own tokens count)."""
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = candidate.reshape(len(candidate), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.where(norms > 0, norms, 1.0)


def text_graph_entry(out_dir, precision: str, fp32_sha256: str, quantization: dict | None) -> dict:
    """The card's graphs.text_encoder: the file, its hash and precision, and both precisions' hashes so
    `actiseg export --text-only` can regenerate either and prove it byte-identical."""
    digest = sha256_file(Path(out_dir) / TEXT_GRAPH)
    entry = {"file": TEXT_GRAPH, "sha256": digest, "precision": precision,
             "sha256_by_precision": {"fp32": fp32_sha256}}
    if precision == "int8":
        entry["sha256_by_precision"]["int8"] = digest
        entry["quantization"] = dict(quantization or {}, method="int8 weights (symmetric; per output channel "
                                     "for MatMul, per row for Gather), float32 activations")
    return entry


def build_text_graph(text_encoder, scratch, precision: str = "int8") -> tuple:
    """Export text_encoder into the folder `scratch` at `precision`, through its float32 graph.
    -> (scratch/text_encoder.onnx, scratch/text_encoder_fp32.onnx, fp32 sha256, quantization report or None)."""
    if precision not in TEXT_PRECISIONS:
        raise ValueError("text encoder precision must be one of %s, got %r" % (", ".join(TEXT_PRECISIONS), precision))
    scratch = Path(scratch)
    fp32_path = scratch / "text_encoder_fp32.onnx"
    export_text_encoder(text_encoder, fp32_path)
    report = None
    if precision == "int8":
        report = quantize_text_graph(fp32_path, scratch / TEXT_GRAPH)
    else:
        shutil.copy(fp32_path, scratch / TEXT_GRAPH)
    return scratch / TEXT_GRAPH, fp32_path, sha256_file(fp32_path), report


def export_segmenter(segmenter, input_hw, path) -> None:
    h, w = input_hw
    # Batch 2 and K 3 in the example so no dynamic dimension is specialised to 1.
    args = (torch.zeros(2, 3, h, w), torch.zeros(2, 3, MAX_TOKENS, TEXT_WIDTH), torch.ones(2, 3, MAX_TOKENS))
    _export(SegmenterGraph(segmenter).eval(), args, path, ["images", "text_tokens", "text_mask"],
            ["mask_logits", "positive_logits"],
            {"images": {0: "b"}, "text_tokens": {0: "b", 1: "k"}, "text_mask": {0: "b", 1: "k"},
             "mask_logits": {0: "b", 1: "k"}, "positive_logits": {0: "b", 1: "k"}})


def parity_inputs(input_hw, seed: int = 0) -> tuple:
    """Real inputs: scikit-image's coffee photo (cup, saucer, spoon) and kitchen prompts."""
    from skimage import data

    from actiseg_ros.inference.preprocess import letterbox_image, normalize

    rgb, _ = letterbox_image(data.coffee(), input_hw)
    other, _ = letterbox_image(data.chelsea(), input_hw)
    images = torch.from_numpy(normalize(np.stack([rgb, other])))
    prompts = ["cup used in the action of drink coffee", "spoon used in the action of stir coffee with spoon",
               "saucer used in the action of pick up cup", "knife used in the action of cut onion"]
    return images, prompts


def tolerance_used(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / (PARITY_ATOL + PARITY_RTOL * |expected|): <= 1 where numpy.allclose passes."""
    return float((np.abs(actual - expected) / (PARITY_ATOL + PARITY_RTOL * np.abs(expected))).max())


def check_parity(model, out_dir, input_hw, text_fp32_graph=None) -> dict:
    """Compare ONNX Runtime (CPU) with torch on real inputs; raises if the graphs disagree. The float32 text
    graph (text_fp32_graph, default the folder's) must match torch to PARITY_ATOL, and the folder's text graph
    (int8 or float32) keep every prompt's features at cosine >= TEXT_MIN_COSINE to torch's."""
    import onnxruntime as ort

    images, prompts = parity_inputs(input_hw)
    tokenizer = load_tokenizer()
    ids, mask = tokenize(tokenizer, prompts)
    with torch.no_grad():
        tokens = model.text_encoder(ids, mask)
        k = len(prompts)
        batch_tokens = tokens.unsqueeze(0).expand(images.shape[0], k, MAX_TOKENS, TEXT_WIDTH).contiguous()
        batch_mask = mask.unsqueeze(0).expand(images.shape[0], k, MAX_TOKENS).float().contiguous()
        ref = model.segmenter(images, batch_tokens, batch_mask)
    options = ort.SessionOptions()
    cpu = ["CPUExecutionProvider"]
    text_session = ort.InferenceSession(str(text_fp32_graph or Path(out_dir) / TEXT_GRAPH), options, providers=cpu)
    shipped_text = ort.InferenceSession(str(Path(out_dir) / TEXT_GRAPH), options, providers=cpu)
    seg_session = ort.InferenceSession(str(Path(out_dir) / SEGMENTER_GRAPH), options, providers=cpu)
    onnx_tokens = text_session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    shipped_tokens = shipped_text.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    onnx_masks, onnx_positive = seg_session.run(None, {"images": images.numpy(), "text_tokens": batch_tokens.numpy(),
                                                       "text_mask": batch_mask.numpy()})
    ref_masks, ref_positive = ref["mask_logits"].numpy(), ref["positive_logits"].numpy()
    a, b = ref_masks > 0, onnx_masks > 0
    union = np.logical_or(a, b).sum()
    report = {
        "text_max_abs_diff": float(np.abs(onnx_tokens - tokens.numpy()).max()),
        "text_min_cosine": float(prompt_cosines(tokens.numpy(), shipped_tokens).min()),
        "mask_logit_max_abs_diff": float(np.abs(onnx_masks - ref_masks).max()),
        "positive_logit_max_abs_diff": float(np.abs(onnx_positive - ref_positive).max()),
        "mask_iou": float(np.logical_and(a, b).sum() / union) if union else 1.0,
        "same_positive_decisions": bool(((onnx_positive > 0) == (ref_positive > 0)).all()),
    }
    report["mask_logit_max_tolerance_used"] = float(tolerance_used(onnx_masks, ref_masks))
    failures = [name for name, limit in (("text_max_abs_diff", PARITY_ATOL),
                                          ("positive_logit_max_abs_diff", PARITY_ATOL),
                                          ("mask_logit_max_tolerance_used", 1.0)) if report[name] > limit]
    if report["mask_iou"] < PARITY_IOU:
        failures.append("mask_iou")
    if not report["same_positive_decisions"]:
        failures.append("same_positive_decisions")
    if report["text_min_cosine"] < TEXT_MIN_COSINE:
        failures.append("text_min_cosine")
    if failures:
        raise RuntimeError("ONNX parity check failed (%s): %s" % (", ".join(failures), report))
    return report


def export(checkpoint, out_dir, metrics: dict | None = None, vocabulary: list | None = None,
           calibration: dict | None = None, text_precision: str = "int8") -> dict:
    """Write graphs, tokenizer and model card to out_dir; returns the card. calibration: calibrate.read_calibration's
    dict; its threshold becomes the card's mask threshold, its gate (if calibrated) the positive gate, and its
    sweep is recorded. text_precision: 'int8'
    (the shipped form) or 'fp32' (exact parity with torch, 4x the size)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, config, info = load_weights(checkpoint)
    scratch = Path(tempfile.mkdtemp(prefix=".export_", dir=out_dir))
    try:
        graph, fp32_graph, fp32_sha, quantization = build_text_graph(model.text_encoder, scratch, text_precision)
        os.replace(graph, out_dir / TEXT_GRAPH)
        export_segmenter(model.segmenter, config.model.input_hw, out_dir / SEGMENTER_GRAPH)
        shutil.copy(Path(minilm_path()) / "tokenizer.json", out_dir / "tokenizer.json")
        parity = check_parity(model, out_dir, config.model.input_hw, fp32_graph)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    h, w = config.model.input_hw
    card = {
        "format": CARD_FORMAT,
        "input_hw": [h, w],
        "mask_stride": 4,
        "normalization": {"mean": 127.0, "scale": 128.0, "channel_order": "RGB", "letterbox": "top-left"},
        "max_tokens": MAX_TOKENS,
        "text_width": TEXT_WIDTH,
        "thresholds": {"positive_gate": _calibrated(calibration, "positive_gate", DEFAULT_POSITIVE_GATE),
                       "mask": calibration["mask_threshold"] if calibration else 0.5},
        "prompt_template": "{object} used in the action of {narration}",
        "tokenizer": "tokenizer.json",
        "opset": OPSET,
        "graphs": {"text_encoder": text_graph_entry(out_dir, text_precision, fp32_sha, quantization),
                   "segmenter": {"file": SEGMENTER_GRAPH, "sha256": sha256_file(out_dir / SEGMENTER_GRAPH)}},
        "tokenizer_sha256": sha256_file(out_dir / "tokenizer.json"),
        "backbone": config.model.backbone,
        "aux_heads_in_graph": 0,
        "training": {"data_root": os.path.basename(os.path.normpath(config.data_root)), "info": info},
        "vocabulary": vocabulary or [],
        "metrics": metrics or {},
        "parity": parity,
    }
    if calibration:
        card["calibration"] = calibration
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card


def _calibrated(calibration: dict | None, key: str, default: float) -> float:
    value = (calibration or {}).get(key)
    return default if value is None else value


def _write_json_atomic(path, data) -> None:
    path = Path(path)
    temp = path.with_name("." + path.name + ".tmp")
    temp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temp, path)


def expected_text_hashes(entry: dict) -> dict:
    """{precision: sha256} a card's graphs.text_encoder vouches for (cards written before int8 name one
    float32 hash)."""
    known = dict(entry.get("sha256_by_precision") or {})
    known.setdefault(entry.get("precision", "fp32"), entry.get("sha256"))
    return {precision: digest for precision, digest in known.items() if digest}


def export_text_only(out_dir, precision: str = "int8") -> str:
    """Regenerate text_encoder.onnx from the installed MiniLM weight package (it is frozen, so every model
    shares it; the shipped int8 one is in git, this rebuilds it or makes the float32 one). Returns its sha256.

    With a model card in out_dir the float32 graph must hash as the card records (else the torch or
    weight-package version differs) and so must the int8 one when the card records it (else the onnx or
    numpy version rounds differently); nothing is replaced when a hash differs. When the precision changes
    the card's entry is rewritten to name the new file, so the loader's hash check passes."""
    from .modeling.text_encoder import TextEncoder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card_path = out_dir / CARD
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    entry = card.get("graphs", {}).get("text_encoder") if card is not None else None
    if card is not None and not isinstance(entry, dict):
        raise RuntimeError("%s has no graphs.text_encoder entry" % card_path)
    scratch = Path(tempfile.mkdtemp(prefix=".text_export_", dir=out_dir))
    try:
        graph, _fp32, fp32_sha, quantization = build_text_graph(TextEncoder(), scratch, precision)
        digest = sha256_file(graph)
        if entry is not None:
            expected = expected_text_hashes(entry)
            for name, actual, why in (("fp32", fp32_sha, "the torch, transformers or weight-package version"),
                                      (precision, digest, "the onnx or numpy version")):
                if name in expected and actual != expected[name]:
                    raise RuntimeError("regenerated %s text encoder has sha256 %s but %s expects %s: %s differs "
                                       "from the one used at export; nothing was replaced"
                                       % (name, actual, card_path, expected[name], why))
        os.replace(graph, out_dir / TEXT_GRAPH)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if entry is not None and (entry.get("sha256"), entry.get("precision", "fp32")) != (digest, precision):
        new_entry = text_graph_entry(out_dir, precision, fp32_sha, quantization)
        new_entry["sha256_by_precision"] = dict(expected_text_hashes(entry), **new_entry["sha256_by_precision"])
        card["graphs"]["text_encoder"] = new_entry
        _write_json_atomic(card_path, card)
    return digest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="trained weights (model.pt)")
    parser.add_argument("--text-only", action="store_true",
                        help="only (re)generate OUT/text_encoder.onnx from the installed MiniLM package")
    parser.add_argument("--text-fp32", action="store_true",
                        help="write the float32 text encoder (90 MB, exact to torch) instead of the int8 one (23 MB)")
    parser.add_argument("--out", required=True, help="output folder, e.g. models/NAME")
    parser.add_argument("--metrics", default=None, help="an `actiseg eval --json` file to record in the card")
    parser.add_argument("--calibration", default=None,
                        help="an `actiseg calibrate --json` file: its chosen mask threshold and positive gate "
                             "become the card's")
    parser.add_argument("--vocabulary", default="data",
                        help="object names for the card (the node's action parsing matches them): 'data' (the "
                             "default: every object name of the checkpoint's training data, plus its init "
                             "model's vocabulary; training/vocabulary.py), 'synthetic' (the shipped generator's "
                             "taxonomy) or a JSON list file")


def main(args) -> int:
    if args.text_only:
        precision = "fp32" if args.text_fp32 else "int8"
        print("%s/%s (%s) sha256 %s" % (args.out, TEXT_GRAPH, precision, export_text_only(args.out, precision)))
        return 0
    if not args.checkpoint:
        raise SystemExit("actiseg export: --checkpoint is required (or --text-only)")
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
    vocabulary = None
    if args.vocabulary == "synthetic":
        from actiseg_ros.data.taxonomy import vocabulary as taxonomy_vocabulary

        vocabulary = sorted({name for names in taxonomy_vocabulary().values() for name in names})
    elif args.vocabulary == "data":
        from .checkpoint import read_weights_file
        from .config import from_dict
        from .vocabulary import training_vocabulary

        try:
            vocabulary = training_vocabulary(from_dict(read_weights_file(args.checkpoint)["config"]))
        except (OSError, ValueError) as err:
            raise SystemExit("actiseg export: --vocabulary data: %s" % err) from None
    elif args.vocabulary:
        vocabulary = json.loads(Path(args.vocabulary).read_text())
    calibration = None
    if args.calibration:
        from .calibrate import read_calibration

        try:
            calibration = read_calibration(args.calibration)
        except (OSError, ValueError) as err:
            raise SystemExit("actiseg export: --calibration: %s" % err) from None
    card = export(args.checkpoint, args.out, metrics, vocabulary, calibration, "fp32" if args.text_fp32 else "int8")
    print("exported to %s; parity: %s" % (args.out, json.dumps(card["parity"])))
    return 0
