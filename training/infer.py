"""`actiseg infer`: run a trained model over an ActionVOS split and write palette-PNG predictions that
`actiseg eval` scores. Each frame is segmented once with all of its segment's prompts; an object's
positive decision is taken per segment (mean of its per-frame positive logits, gated at 0.75)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from actiseg_ros.data import actionvos
from actiseg_ros.inference.postprocess import active_objects, compose_labels
from actiseg_ros.inference.preprocess import letterbox_image, logits_to_camera, normalize

from .checkpoint import load_weights
from .prompts import PromptBank


def default_model_path() -> Path:
    from actiseg_ros.paths import models_dir

    return models_dir() / "actiseg_default.pt"


def shuffled_narrations(segments: list, seed: int) -> dict:
    """Ablation: give every segment the narration of another segment (a derangement by scene order)."""
    rng = np.random.default_rng(seed)
    narrations = [s.narration for s in segments]
    order = rng.permutation(len(segments))
    mapping = {}
    for position, index in enumerate(order):
        donor = order[(position + 1) % len(order)]
        mapping[segments[index].name] = narrations[donor]
    return mapping


@torch.no_grad()
def predict_segment(model, bank, root, split, segment, input_hw, narration=None) -> list:
    """-> list of (frame name, (H, W) uint8 label image with object ids)."""
    object_ids = sorted(segment.objects)
    narration = segment.narration if narration is None else narration
    prompts = [actionvos.build_prompt(segment.objects[k].name, narration) for k in object_ids]
    tokens, mask = bank.lookup([prompts], len(prompts))
    per_frame = []
    for frame in segment.sparse_frames:
        rgb = actionvos.read_image(actionvos.image_path(root, split, segment.name, frame))
        boxed, box = letterbox_image(rgb, input_hw)
        images = torch.from_numpy(normalize(boxed[None]))
        out = model.segmenter(images, tokens, mask)
        per_frame.append((frame, box, out["mask_logits"][0].numpy(), out["positive_logits"][0].numpy()))
    active = active_objects(np.mean([p for _, _, _, p in per_frame], axis=0))
    results = []
    for frame, box, logits, _ in per_frame:
        index_labels = compose_labels(logits_to_camera(logits, box), active)
        lookup = np.array([0] + object_ids, np.uint8)
        results.append((frame, lookup[index_labels]))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="ActionVOS-layout root")
    parser.add_argument("--split", default="val_human")
    parser.add_argument("--out", required=True, help="prediction folder: OUT/{seq}/frame_XXXXXXXXXX.png")
    parser.add_argument("--model", default=None, help="checkpoint (.pt); default: the shipped default model")
    parser.add_argument("--shuffle-narrations", type=int, default=None, metavar="SEED",
                        help="ablation: prompt every segment with another segment's narration")
    parser.add_argument("--skip-bad", action="store_true", help="skip (and report) malformed segments")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = Path(args.model) if args.model else default_model_path()
    model, config, _info = load_weights(model_path)
    data = actionvos.read_split(args.data, args.split, skip_bad=args.skip_bad, need_masks=False)
    for skipped in data.skipped:
        print("skipped %s: %s" % (skipped.path, skipped.reason))
    narrations = shuffled_narrations(data.segments, args.shuffle_narrations) if args.shuffle_narrations is not None else {}
    bank = PromptBank(model.text_encoder)
    out = Path(args.out)
    for segment in tqdm(data.segments, desc="infer %s" % args.split):
        for frame, labels in predict_segment(model, bank, args.data, args.split, segment, config.model.input_hw,
                                             narrations.get(segment.name)):
            actionvos.write_label_png(out / segment.name / (Path(frame).stem + ".png"), labels)
    print("wrote predictions for %d segments to %s" % (len(data.segments), out))
    return 0
