"""Export a trained checkpoint to the robot's artefacts (kept apart from the model code, as in SAM's
utils/onnx.py): two ONNX graphs, the tokenizer and a model card, checked for parity against torch.

Graph contracts (dynamic N, B and K; fixed L = 32 tokens and a fixed input size per model):
  text_encoder.onnx  input_ids (N, L) int64, attention_mask (N, L) int64 -> text_tokens (N, L, 384) float32
  segmenter.onnx     images (B, 3, H, W) float32, text_tokens (B, K, L, 384) float32, text_mask (B, K, L) float32
                     -> mask_logits (B, K, H/4, W/4) float32, positive_logits (B, K) float32
Opset 17, the legacy TorchScript exporter: TensorRT 8.6 (JetPack 6) parses opset <= 17, and the dynamo
exporter emits opset >= 18 only. PMHM's auxiliary heads are not in the graph (training only).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from actiseg_ros.inference.model_card import sha256_file

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
    ids = torch.ones(2, MAX_TOKENS, dtype=torch.int64)
    mask = torch.ones(2, MAX_TOKENS, dtype=torch.int64)
    _export(text_encoder.eval(), (ids, mask), path, ["input_ids", "attention_mask"], ["text_tokens"],
            {"input_ids": {0: "n"}, "attention_mask": {0: "n"}, "text_tokens": {0: "n"}})


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


def check_parity(model, out_dir, input_hw) -> dict:
    """Compare ONNX Runtime (CPU) with torch on real inputs; raises if the graphs disagree."""
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
    text_session = ort.InferenceSession(str(Path(out_dir) / TEXT_GRAPH), options, providers=["CPUExecutionProvider"])
    seg_session = ort.InferenceSession(str(Path(out_dir) / SEGMENTER_GRAPH), options, providers=["CPUExecutionProvider"])
    onnx_tokens = text_session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    onnx_masks, onnx_positive = seg_session.run(None, {"images": images.numpy(), "text_tokens": batch_tokens.numpy(),
                                                       "text_mask": batch_mask.numpy()})
    ref_masks, ref_positive = ref["mask_logits"].numpy(), ref["positive_logits"].numpy()
    a, b = ref_masks > 0, onnx_masks > 0
    union = np.logical_or(a, b).sum()
    report = {
        "text_max_abs_diff": float(np.abs(onnx_tokens - tokens.numpy()).max()),
        "mask_logit_max_abs_diff": float(np.abs(onnx_masks - ref_masks).max()),
        "positive_logit_max_abs_diff": float(np.abs(onnx_positive - ref_positive).max()),
        "mask_iou": float(np.logical_and(a, b).sum() / union) if union else 1.0,
        "same_positive_decisions": bool(((onnx_positive > 0) == (ref_positive > 0)).all()),
    }
    report["mask_logit_max_tolerance_used"] = float(tolerance_used(onnx_masks, ref_masks))
    failures = [name for name, limit in (("text_max_abs_diff", PARITY_ATOL), ("positive_logit_max_abs_diff", PARITY_ATOL),
                                          ("mask_logit_max_tolerance_used", 1.0)) if report[name] > limit]
    if report["mask_iou"] < PARITY_IOU:
        failures.append("mask_iou")
    if not report["same_positive_decisions"]:
        failures.append("same_positive_decisions")
    if failures:
        raise RuntimeError("ONNX parity check failed (%s): %s" % (", ".join(failures), report))
    return report


def export(checkpoint, out_dir, metrics: dict | None = None, vocabulary: list | None = None,
           calibration: dict | None = None) -> dict:
    """Write graphs, tokenizer and model card to out_dir; returns the card. calibration: calibrate.read_calibration's
    dict; its threshold becomes the card's mask threshold and its sweep is recorded."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, config, info = load_weights(checkpoint)
    export_text_encoder(model.text_encoder, out_dir / TEXT_GRAPH)
    export_segmenter(model.segmenter, config.model.input_hw, out_dir / SEGMENTER_GRAPH)
    shutil.copy(Path(minilm_path()) / "tokenizer.json", out_dir / "tokenizer.json")
    parity = check_parity(model, out_dir, config.model.input_hw)
    h, w = config.model.input_hw
    card = {
        "format": CARD_FORMAT,
        "input_hw": [h, w],
        "mask_stride": 4,
        "normalization": {"mean": 127.0, "scale": 128.0, "channel_order": "RGB", "letterbox": "top-left"},
        "max_tokens": MAX_TOKENS,
        "text_width": TEXT_WIDTH,
        "thresholds": {"positive_gate": 0.75, "mask": calibration["mask_threshold"] if calibration else 0.5},
        "prompt_template": "{object} used in the action of {narration}",
        "tokenizer": "tokenizer.json",
        "opset": OPSET,
        "graphs": {name: {"file": file, "sha256": sha256_file(out_dir / file)}
                   for name, file in (("text_encoder", TEXT_GRAPH), ("segmenter", SEGMENTER_GRAPH))},
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


def export_text_only(out_dir) -> str:
    """Regenerate text_encoder.onnx from the installed MiniLM weight package (it is frozen, so every model
    shares it). Too large for git (90 MB), it is produced at set-up; the model card's hash proves the
    regenerated graph is byte-identical to the one the model was exported and checked with."""
    from .modeling.text_encoder import TextEncoder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / TEXT_GRAPH
    export_text_encoder(TextEncoder(), target)
    card_path = out_dir / CARD
    digest = sha256_file(target)
    if card_path.is_file():
        expected = json.loads(card_path.read_text())["graphs"]["text_encoder"]["sha256"]
        if digest != expected:
            target.unlink()
            raise RuntimeError("regenerated %s has sha256 %s but %s expects %s: the torch or weight-package "
                               "version differs from the one used at export" % (target, digest, card_path, expected))
    return digest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="trained weights (model.pt)")
    parser.add_argument("--text-only", action="store_true",
                        help="only (re)generate OUT/text_encoder.onnx from the installed MiniLM package")
    parser.add_argument("--out", required=True, help="output folder, e.g. models/NAME")
    parser.add_argument("--metrics", default=None, help="an `actiseg eval --json` file to record in the card")
    parser.add_argument("--calibration", default=None,
                        help="an `actiseg calibrate --json` file: its threshold becomes the card's mask threshold")
    parser.add_argument("--vocabulary", default=None,
                        help="JSON list of object names the model was trained on, or 'synthetic' for the "
                             "synthetic generator's taxonomy")


def main(args) -> int:
    if args.text_only:
        print("%s/%s sha256 %s" % (args.out, TEXT_GRAPH, export_text_only(args.out)))
        return 0
    if not args.checkpoint:
        raise SystemExit("actiseg export: --checkpoint is required (or --text-only)")
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
    vocabulary = None
    if args.vocabulary == "synthetic":
        from actiseg_ros.data.taxonomy import vocabulary as taxonomy_vocabulary

        vocabulary = sorted({name for names in taxonomy_vocabulary().values() for name in names})
    elif args.vocabulary:
        vocabulary = json.loads(Path(args.vocabulary).read_text())
    calibration = None
    if args.calibration:
        from .calibrate import read_calibration

        try:
            calibration = read_calibration(args.calibration)
        except (OSError, ValueError) as err:
            raise SystemExit("actiseg export: --calibration: %s" % err) from None
    card = export(args.checkpoint, args.out, metrics, vocabulary, calibration)
    print("exported to %s; parity: %s" % (args.out, json.dumps(card["parity"])))
    return 0
