"""`actiseg infer`: run a model over an ActionVOS split (or a demo layout) and write palette-PNG predictions
that `actiseg eval` scores. The model is either an exported folder (ONNX graphs + model card, run by the
runtime's Predictor; no torch needed; the default is the shipped model) or a training checkpoint (.pt, torch).

Each frame is segmented once with all of its segment's prompts; an object's positive decision is taken
per segment (mean of its per-frame positive logits, gated at the model card's positive gate, 0.75 for
checkpoints; --positive-gate overrides it), as at training time.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from actiseg_ros.data import actionvos
from actiseg_ros.inference.postprocess import MASK_THRESHOLD, POSITIVE_GATE, active_objects, compose_labels_from_grid
from actiseg_ros.inference.preprocess import letterbox_image, normalize


def default_model_path() -> Path:
    from actiseg_ros.paths import models_dir

    return models_dir() / "default"


class OnnxRunner:
    """An exported model folder through the runtime Predictor (ONNX Runtime, TensorRT, ...)."""

    def __init__(self, model_dir, backend: str = "ort-cpu", threads: int = 0):
        from actiseg_ros.inference.predictor import Predictor

        self.predictor = Predictor(model_dir, backend=backend, threads=threads, max_k=64)
        self.gate = self.predictor.positive_gate
        self.mask_threshold = self.predictor.mask_threshold  # the model card's, as the node uses it

    def set_prompts(self, prompts: list) -> None:
        self.predictor.set_prompts(prompts)

    def frame(self, rgb, image_file=None):
        """-> (mask_logits (K, h, w), positive_logits (K,), Letterbox). image_file: unused (TorchRunner's cache)."""
        mask_logits, positive_logits, box, _ = self.predictor.infer(rgb)
        return mask_logits, positive_logits, box


class TorchRunner:
    """An ActiSegModel (in eval mode, on the CPU) run by torch: checkpoints not exported yet, and
    in-training validation."""

    def __init__(self, model, input_hw, feature_cache=None):
        import torch

        from .prompts import PromptBank

        self.torch, self.model, self.input_hw = torch, model, tuple(input_hw)
        self.bank = PromptBank(model.text_encoder)
        self.gate = POSITIVE_GATE
        self.mask_threshold = MASK_THRESHOLD
        self.cache = None
        if feature_cache:  # the frozen backbone's features per frame, shared with training (feature_cache.py)
            from .feature_cache import FeatureCache

            if model.config.backbone_trainable:
                raise SystemExit("actiseg infer: --feature-cache needs a checkpoint trained with a frozen backbone "
                                 "(model.backbone_trainable: false)")
            self.cache = FeatureCache(feature_cache, model.segmenter.image_encoder, self.input_hw,
                                      model.config.backbone)

    @classmethod
    def from_checkpoint(cls, checkpoint, threads: int = 0, feature_cache=None) -> "TorchRunner":
        try:
            import torch
        except ModuleNotFoundError:
            raise SystemExit("actiseg infer: a .pt checkpoint needs torch (pip install 'actiseg_ros[train]'); "
                             "exported model folders run without it") from None
        from .checkpoint import load_weights

        if threads:
            torch.set_num_threads(threads)
        model, config, _ = load_weights(checkpoint)
        return cls(model, config.model.input_hw, feature_cache)

    def set_prompts(self, prompts: list) -> None:
        self.tokens, self.mask = self.bank.lookup([prompts], len(prompts))

    def frame(self, rgb, image_file=None):
        """image_file: the frame's file, the key of the feature cache (if any); without it the backbone runs."""
        boxed, box = letterbox_image(rgb, self.input_hw)
        images = self.torch.from_numpy(normalize(boxed[None]))
        features = None
        if self.cache is not None and image_file is not None:
            features = self.cache.features([image_file], images)
        with self.torch.no_grad():
            out = self.model.segmenter(images, self.tokens, self.mask, features=features)
        return out["mask_logits"][0].numpy(), out["positive_logits"][0].numpy(), box


def open_model(path, backend: str = "ort-cpu", threads: int = 0, feature_cache=None):
    path = Path(path)
    if path.is_dir():
        if feature_cache:
            raise SystemExit("actiseg infer: --feature-cache applies to .pt checkpoints, not exported models")
        return OnnxRunner(path, backend, threads)
    if path.is_file():
        return TorchRunner.from_checkpoint(path, threads, feature_cache)
    raise FileNotFoundError("model not found: %s (an exported folder or a .pt checkpoint)" % path)


def shuffled_narrations(segments: list, seed: int) -> dict:
    """Ablation: give every segment the narration of another segment (a derangement in a random order)."""
    order = np.random.default_rng(seed).permutation(len(segments))
    return {segments[index].name: segments[order[(position + 1) % len(order)]].narration
            for position, index in enumerate(order)}


@dataclass
class SegmentOutputs:
    """A model's raw outputs on one segment: what the label images are composed from, at any threshold."""

    object_ids: list  # the segment's object ids, in prompt order
    frames: list  # [(frame name, mask logits (K, h, w), Letterbox)]
    active: np.ndarray  # (K,) bool: the segment-level positive decisions at the runner's gate
    positive_logits: np.ndarray | None = None  # (K,) the mean of the frames' positive logits: re-gated by labels()

    def labels(self, mask_threshold: float, gate: float | None = None) -> list:
        """-> [(frame name, (H, W) uint8 label image with object ids)] at this mask threshold and, if given,
        this positive gate instead of the runner's (calibrate scores every gate from one pass of the model)."""
        active = self.active if gate is None else active_objects(self.positive_logits, gate)
        lookup = np.array([0] + self.object_ids, np.uint8)
        return [(frame, lookup[compose_labels_from_grid(logits, active, box, mask_threshold)])
                for frame, logits, box in self.frames]


def segment_outputs(runner, root, split, segment, narration=None) -> SegmentOutputs:
    object_ids = sorted(segment.objects)
    narration = segment.narration if narration is None else narration
    runner.set_prompts([actionvos.build_prompt(segment.objects[k].name, narration) for k in object_ids])
    return run_frames(runner, object_ids, [(frame, actionvos.image_path(root, split, segment.name, frame))
                                           for frame in segment.sparse_frames])


def run_frames(runner, object_ids: list, frames: list) -> SegmentOutputs:
    """The prompts already set, the model on each (frame name, image path) -> SegmentOutputs, whose activity
    decisions gate the mean of the frames' positive logits (one decision per segment, as at training)."""
    outputs, positives = [], []
    for name, path in frames:
        logits, positive, box = runner.frame(actionvos.read_image(path), image_file=path)
        outputs.append((name, logits, box))
        positives.append(positive)
    mean = np.mean(positives, axis=0)
    return SegmentOutputs(object_ids, outputs, active_objects(mean, runner.gate), mean)


def predict_segment(runner, root, split, segment, narration=None) -> list:
    """-> list of (frame name, (H, W) uint8 label image with object ids)."""
    return segment_outputs(runner, root, split, segment, narration).labels(runner.mask_threshold)


def predict_demo_video(runner, root, video) -> list:
    """Inference-only layout: the expressions are the prompts; obj_id (or position + 1) is the label value."""
    keys = sorted(video.expressions, key=lambda key: int(key) if str(key).isdigit() else str(key))
    prompts = [video.expressions[key]["exp"] for key in keys]
    object_ids = [int(video.expressions[key].get("obj_id", position + 1)) for position, key in enumerate(keys)]
    runner.set_prompts(prompts)
    frames = [(stem + ".jpg", actionvos.image_path(root, "val", video.name, stem + ".jpg")) for stem in video.frames]
    return run_frames(runner, object_ids, frames).labels(runner.mask_threshold)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="ActionVOS-layout root")
    parser.add_argument("--split", default="val_human",
                        help="an ImageSets split, or 'demo' for the inference-only expression_file.json layout")
    parser.add_argument("--out", required=True, help="prediction folder: OUT/{seq}/frame_XXXXXXXXXX.png")
    parser.add_argument("--model", default=None,
                        help="an exported model folder or a .pt checkpoint; default: the shipped default model")
    parser.add_argument("--backend", default="ort-cpu", help="engine for exported models (see actiseg bench)")
    parser.add_argument("--shuffle-narrations", type=int, default=None, metavar="SEED",
                        help="ablation: prompt every segment with another segment's narration")
    parser.add_argument("--skip-bad", action="store_true", help="skip (and report) malformed segments")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = library default)")
    parser.add_argument("--feature-cache", default=None, metavar="DIR",
                        help="a .pt checkpoint with a frozen backbone: read and store the backbone's features per "
                             "frame in DIR (training's feature_cache; same predictions, the backbone runs once per "
                             "frame across runs)")
    parser.add_argument("--mask-threshold", type=float, default=None, metavar="P",
                        help="mask probability threshold (default: the model card's; 0.5 for checkpoints)")
    parser.add_argument("--positive-gate", type=float, default=None, metavar="G",
                        help="an object is active when its positive score reaches G (default: the model card's; "
                             "%g for checkpoints)" % POSITIVE_GATE)


def main(args) -> int:
    runner = open_model(args.model or default_model_path(), args.backend, args.threads,
                        getattr(args, "feature_cache", None))
    if args.mask_threshold is not None:
        if not 0.0 < args.mask_threshold < 1.0:
            raise SystemExit("actiseg infer: --mask-threshold must be between 0 and 1, got %s" % args.mask_threshold)
        runner.mask_threshold = args.mask_threshold
    if args.positive_gate is not None:
        if not 0.0 < args.positive_gate < 1.0:  # as calibrate's gates and the card's
            raise SystemExit("actiseg infer: --positive-gate must lie strictly between 0 and 1, got %s"
                             % args.positive_gate)
        runner.gate = args.positive_gate
    out = Path(args.out)
    if args.split == "demo":
        videos = actionvos.read_demo_layout(args.data)
        for video in tqdm(videos, desc="infer demo"):
            for frame, labels in predict_demo_video(runner, args.data, video):
                actionvos.write_label_png(out / video.name / (Path(frame).stem + ".png"), labels)
        print("wrote predictions for %d videos to %s" % (len(videos), out))
        return 0
    data = actionvos.read_split(args.data, args.split, skip_bad=args.skip_bad, need_masks=False)
    for skipped in data.skipped:
        print("skipped %s: %s" % (skipped.path, skipped.reason))
    narrations = {}
    if args.shuffle_narrations is not None:
        narrations = shuffled_narrations(data.segments, args.shuffle_narrations)
    for segment in tqdm(data.segments, desc="infer %s" % args.split):
        for frame, labels in predict_segment(runner, args.data, args.split, segment, narrations.get(segment.name)):
            actionvos.write_label_png(out / segment.name / (Path(frame).stem + ".png"), labels)
    print("wrote predictions for %d segments to %s" % (len(data.segments), out))
    return 0
