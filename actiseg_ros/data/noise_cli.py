"""`actiseg corrupt`: write an ActiSeg-NL noisy copy of an ActionVOS-layout data set.

Only the training split is corrupted (text noise in ImageSets/train.json, boundary noise in the train
annotations and weight maps, see actiseg_ros.data.noise). Every other file (frames, val / val_human /
val_novel, anything else under the root) is hard-linked into the output, or copied with --copy or where the
output is on another file system, so it stays byte-for-byte identical. Files that change are always written
as new files, never through a link, so the input is never modified; but an unchanged output file *is* the
input file, so edit outputs in place only in a --copy output.

Writes `noise_manifest.json` (every expression and every training frame with what changed: its positive
masks, those chosen for dilation under --mask-dilate-rate, the pixels each gained) and
`noise_summary.json` (requested and measured rates) into the output root and prints the summary.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from actiseg_ros.data import actionvos, noise

MANIFEST = "noise_manifest.json"
SUMMARY = "noise_summary.json"
TRAIN = "train"
MIN_FRAMES_FOR_WORKERS = 64  # below this, starting worker processes costs more than it saves


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="clean data root (ActionVOS layout)")
    parser.add_argument("--out", required=True, type=Path, help="output root; must not exist or be empty")
    parser.add_argument("--text-flip", type=float, default=0.0, metavar="R",
                        help="category flip rate per training expression, in [0, 1] (reference: 0.2/0.4/0.6)")
    parser.add_argument("--noun-sub", type=float, default=0.0, metavar="S",
                        help="within-category name substitution rate over non-flipped expressions whose class "
                             "has another name, in [0, 1]")
    parser.add_argument("--mask-dilate", type=int, default=None, metavar="K",
                        help="odd square dilation kernel at 854x480, scaled to the data's resolution "
                             "(reference: 9/15/21); omitted = no mask noise")
    parser.add_argument("--mask-dilate-rate", type=float, default=1.0, metavar="R",
                        help="fraction of the (frame, positive object) masks dilated, in [0, 1] (default 1: "
                             "every positive mask, the reference); the manifest lists the masks changed")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    parser.add_argument("--vocab", type=Path, default=None,
                        help="JSON {class_id: [names]} extending the class vocabulary found in train")
    parser.add_argument("--protect-hands", action="store_true",
                        help="never flip or substitute hands, and never flip to a hand class "
                             "(the reference flips hands too)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="drop bad training segments (reported) instead of stopping")
    parser.add_argument("--copy", action="store_true", help="copy unchanged files instead of hard-linking them")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes for the mask noise (default: min(8, CPUs))")


def main(args) -> int:
    try:
        summary = corrupt(data=args.data, out=args.out, flip_rate=args.text_flip, sub_rate=args.noun_sub,
                          kernel=args.mask_dilate, dilate_rate=args.mask_dilate_rate, seed=args.seed,
                          vocab_path=args.vocab,
                          protect_hands=args.protect_hands, skip_bad=args.skip_bad, copy_files=args.copy,
                          workers=args.workers)
    except (actionvos.DatasetError, ValueError, OSError) as err:
        print("actiseg corrupt: error: %s" % err, file=sys.stderr)
        if args.out.is_dir() and any(args.out.iterdir()) and not isinstance(err, RequestError):
            print("actiseg corrupt: %s holds a partial output; delete it before running again" % args.out,
                  file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


# --- checks ------------------------------------------------------------------------------------------

class RequestError(ValueError):
    """The arguments cannot work; raised before anything is written."""


def check_request(data: Path, out: Path, flip_rate: float, sub_rate: float, kernel, workers: int = 1,
                  dilate_rate: float = 1.0) -> None:
    """Fail before any work on arguments that cannot produce a valid data set."""
    for option, rate in (("--text-flip", flip_rate), ("--noun-sub", sub_rate), ("--mask-dilate-rate", dilate_rate)):
        if not 0.0 <= rate <= 1.0:
            raise RequestError("%s must be within [0, 1], got %r" % (option, rate))
    if kernel is None and dilate_rate != 1.0:
        raise RequestError("--mask-dilate-rate needs --mask-dilate K (the kernel of the masks it dilates)")
    if kernel is not None:
        try:
            noise.check_kernel(kernel)
        except ValueError as err:
            raise RequestError("--mask-dilate: %s" % err) from None
    if workers < 1:
        raise RequestError("--workers must be at least 1, got %d" % workers)
    if not data.is_dir():
        raise RequestError("--data %s: no such directory" % data)
    train_file = actionvos.image_set_path(data, TRAIN)
    if not train_file.is_file():
        raise RequestError("--data %s has no training split (%s not found); noise is only injected into train"
                           % (data, train_file))
    data_abs, out_abs = data.resolve(), out.resolve()
    if out_abs == data_abs or data_abs in out_abs.parents:
        raise RequestError("--out %s must be outside --data %s" % (out, data))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RequestError("--out %s already exists and is not an empty directory" % out)


def load_vocabulary(path) -> dict:
    data = actionvos.read_json(path)
    return noise.parse_vocabulary(data, path)


def check_not_noised(segments, train_file) -> None:
    """Stacking text noise would lose the clean originals (class_id_org, exp_org) of the first run."""
    for segment in segments:
        for obj in segment.objects.values():
            if "class_id_org" in obj.extra:
                raise ValueError("%s: segment %s already carries text noise (class_id_org); corrupt the clean data"
                                 % (train_file, segment.name))


# --- files -------------------------------------------------------------------------------------------

def _place(source: Path, target: Path, copy_files: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not copy_files:
        try:
            os.link(source, target)
            return
        except OSError:  # another file system, or links not supported: fall back to a copy
            pass
    shutil.copy2(source, target)


def mirror_tree(data: Path, out: Path, exclude: set, copy_files: bool) -> int:
    """Link (or copy) every file under `data` into `out` except the relative paths in `exclude`."""
    placed = 0
    for folder, _dirs, files in os.walk(data):
        for name in files:
            source = Path(folder) / name
            relative = source.relative_to(data)
            if relative in exclude:
                continue
            _place(source, out / relative, copy_files)
            placed += 1
    return placed


# --- mask noise per frame (runs in worker processes) ----------------------------------------------

def dilate_frame(task) -> dict:
    """Dilate the positives of one training frame and write its label and weight PNGs into the output."""
    data, out, segment_name, frame, positive_weights, chosen, kernel, copy_files = task
    label_file = actionvos.annotation_path(data, TRAIN, segment_name, frame)
    weight_file = actionvos.weight_path(data, TRAIN, segment_name, frame)
    out_label = actionvos.annotation_path(out, TRAIN, segment_name, frame)
    out_weight = actionvos.weight_path(out, TRAIN, segment_name, frame)
    labels = actionvos.read_label_png(label_file)
    height, width = labels.shape
    frame_kernel = noise.scaled_kernel(kernel, height, width)
    result = noise.dilate_positives(labels, positive_weights.keys(), frame_kernel, dilate_ids=chosen)
    present = set(np.unique(labels).tolist())
    record = {"segment": segment_name, "frame": frame, "resolution": "%dx%d" % (width, height),
              # the positive masks in the frame, and those chosen for dilation (a chosen mask whose ring finds
              # no free pixel is listed but absent from "added")
              "positive_masks": [i for i in sorted(positive_weights) if i in present],
              "dilated": [i for i in chosen if i in present],
              "kernel": frame_kernel, "pixels_changed": result.pixels_changed,
              "added": {str(k): v for k, v in result.added.items()},
              "negative_overwritten": result.negative_overwritten,
              "background_overwritten": result.background_overwritten,
              "negative_pixels": result.negative_pixels, "displacement_sum": result.displacement_sum}
    has_weights = weight_file.is_file()
    if result.pixels_changed == 0:
        _place(label_file, out_label, copy_files)
        if has_weights:
            _place(weight_file, out_weight, copy_files)
        record["weights"] = "unchanged" if has_weights else "missing"
        return record
    actionvos.write_label_png(out_label, result.labels)
    if has_weights:
        weights = actionvos.read_label_png(weight_file)
        if weights.shape != labels.shape:
            raise actionvos.DatasetError("%s: weight map is %dx%d but its mask is %dx%d" % (
                weight_file, weights.shape[1], weights.shape[0], width, height))
        actionvos.write_label_png(out_weight, noise.update_weights(weights, result.owner, positive_weights))
    record["weights"] = "updated" if has_weights else "missing"
    return record


def _frame_tasks(segments, data: Path, out: Path, kernel: int, copy_files: bool, dilate_rate: float, seed: int):
    frames = []  # (segment name, frame, {positive id: weight class})
    for segment in segments:
        positive_weights = {object_id: noise.positive_weight_class(obj)
                            for object_id, obj in segment.objects.items() if obj.positive}
        frames.extend((segment.name, frame, positive_weights) for frame in segment.sparse_frames)
    chosen = noise.select_masks([sorted(weights) for _s, _f, weights in frames], dilate_rate, seed)
    for (segment_name, frame, positive_weights), ids in zip(frames, chosen):
        yield (data, out, segment_name, frame, positive_weights, ids, kernel, copy_files)


def run_mask_noise(segments, data: Path, out: Path, kernel: int, copy_files: bool, workers: int,
                   dilate_rate: float = 1.0, seed: int = 0) -> list:
    """One manifest record per training frame, in segment / frame order whatever the number of workers."""
    total = sum(len(s.sparse_frames) for s in segments)
    tasks = _frame_tasks(segments, data, out, kernel, copy_files, dilate_rate, seed)
    progress = dict(total=total, desc="dilating train masks", unit="frame")
    if workers == 1 or total < MIN_FRAMES_FOR_WORKERS:
        return [dilate_frame(task) for task in tqdm(tasks, **progress)]
    # spawn, not fork: a forked child inherits OpenCV's thread pool in whatever state the parent left it
    # and can hang on its first parallel call (it did, under pytest)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_single_threaded_opencv)
    try:
        return list(tqdm(pool.map(dilate_frame, tasks, chunksize=16), **progress))
    finally:
        # on an error, stop at once instead of dilating the rest of the split first
        pool.shutdown(wait=True, cancel_futures=True)


def _single_threaded_opencv() -> None:
    """The workers already use every core; OpenCV's own threads would only oversubscribe them."""
    cv2.setNumThreads(1)


# --- summary -------------------------------------------------------------------------------------------

def summarise_mask(records: list, kernel: int, dilate_rate: float = 1.0) -> dict:
    added = sum(r["pixels_changed"] for r in records)
    positive_masks = sum(len(r["positive_masks"]) for r in records)
    dilated = sum(len(r["dilated"]) for r in records)
    negative_total = sum(r["negative_pixels"] for r in records)
    negative_overwritten = sum(r["negative_overwritten"] for r in records)
    kernels = {}
    for record in records:
        kernels[record["resolution"]] = record["kernel"]
    return {
        "kernel_requested_at_854x480": kernel,
        "kernel_by_resolution": kernels,
        "dilate_rate_requested": dilate_rate,
        "positive_masks": positive_masks,
        "masks_dilated": dilated,
        "dilate_rate_measured": dilated / positive_masks if positive_masks else None,
        "masks_changed": sum(len(r["added"]) for r in records),
        "frames": len(records),
        "frames_changed": sum(1 for r in records if r["pixels_changed"]),
        "pixels_changed": added,
        "negative_pixels_overwritten": negative_overwritten,
        "background_pixels_overwritten": sum(r["background_overwritten"] for r in records),
        "negative_pixel_fraction_overwritten": negative_overwritten / negative_total if negative_total else None,
        "mean_boundary_displacement_px": (sum(r["displacement_sum"] for r in records) / added) if added else None,
        "weight_maps_updated": sum(1 for r in records if r["weights"] == "updated"),
        "weight_maps_missing": sum(1 for r in records if r["weights"] == "missing"),
    }


def summarise_text(counts: dict, flip_rate: float, sub_rate: float) -> dict:
    rates = noise.text_noise_rates(counts)
    return {"expressions": counts["expressions"], "flipped": counts["flip"], "substituted": counts["substitute"],
            "not_substitutable": counts["not_substitutable"], "protected_hands": counts["protected"],
            "flip_rate_requested": flip_rate, "flip_rate_measured": rates["flip"],
            "substitution_rate_requested": sub_rate, "substitution_rate_measured": rates["substitution"],
            "substitution_rate_effective": rates["substitution_effective"]}


# --- the whole run -------------------------------------------------------------------------------------

def corrupt(data, out, flip_rate: float = 0.0, sub_rate: float = 0.0, kernel=None, dilate_rate: float = 1.0,
            seed: int = 0,
            vocab_path=None, protect_hands: bool = False, skip_bad: bool = False, copy_files: bool = False,
            workers: int = 1) -> dict:
    """Write the noisy copy of `data` into `out`; returns the summary (also written to noise_summary.json)."""
    started = time.perf_counter()
    data, out = Path(data), Path(out)
    check_request(data, out, flip_rate, sub_rate, kernel, workers, dilate_rate)
    extra_vocabulary = load_vocabulary(vocab_path) if vocab_path is not None else None
    train_file = actionvos.image_set_path(data, TRAIN)
    split = actionvos.read_split(data, TRAIN, skip_bad=skip_bad)
    if not split.segments:
        raise ValueError("%s: the training split has no usable segment" % train_file)
    segments = split.segments
    text_noise = flip_rate > 0 or sub_rate > 0
    vocabulary = noise.build_vocabulary(segments, extra_vocabulary)
    rng = np.random.default_rng(seed)
    text_result = None
    if text_noise:
        check_not_noised(segments, train_file)
        text_result = noise.apply_text_noise(segments, vocabulary, flip_rate, sub_rate, rng, protect_hands)
        segments = text_result.segments

    exclude = {train_file.relative_to(data), Path(MANIFEST), Path(SUMMARY)}
    if kernel is not None:
        for segment in segments:
            for frame in segment.sparse_frames:
                exclude.add(actionvos.annotation_path(data, TRAIN, segment.name, frame).relative_to(data))
                exclude.add(actionvos.weight_path(data, TRAIN, segment.name, frame).relative_to(data))
    out.mkdir(parents=True, exist_ok=True)
    placed = mirror_tree(data, out, exclude, copy_files)

    frame_records = []
    if kernel is not None:
        frame_records = run_mask_noise(segments, data, out, kernel, copy_files, workers, dilate_rate, seed)

    writer = actionvos.LayoutWriter(out)
    for segment in segments:
        writer.add_entry(TRAIN, segment)
    writer.close()

    summary = {
        "data": str(data), "out": str(out), "seed": seed,
        "requested": {"text_flip": flip_rate, "noun_sub": sub_rate, "mask_dilate": kernel,
                      "mask_dilate_rate": dilate_rate,
                      "protect_hands": protect_hands},
        "segments": len(segments),
        "skipped_segments": [{"path": s.path, "reason": s.reason} for s in split.skipped],
        "vocabulary": {"classes": len(vocabulary), "names": sum(len(n) for n in vocabulary.values()),
                       "single_name_classes": sum(1 for n in vocabulary.values() if len(n) == 1),
                       "extended_from": str(vocab_path) if vocab_path is not None else None},
        "text": summarise_text(text_result.counts, flip_rate, sub_rate) if text_result else None,
        "mask": summarise_mask(frame_records, kernel, dilate_rate) if kernel is not None else None,
        "files_linked_or_copied": placed,
        "seconds": round(time.perf_counter() - started, 3),
    }
    manifest = {
        "summary": summary,
        "vocabulary": {str(k): list(v) for k, v in vocabulary.items()},
        "expressions": [c.to_json() for c in text_result.changes] if text_result else [],
        "frames": frame_records,
    }
    actionvos.write_json(out / MANIFEST, manifest)
    actionvos.write_json(out / SUMMARY, summary)
    return summary
