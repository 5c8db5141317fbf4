"""`actiseg eval`: score palette-PNG predictions against an ActionVOS-layout split.

    actiseg eval --pred DIR --data ROOT --split val_human --json OUT [--breakdown-json OUT2] [--skip-bad]
                 [--missing-as-empty] [--include-flagged] [--band-fraction F]

Predictions are laid out like Annotations_Sparse: DIR/{seq}/frame_XXXXXXXXXX.png, a palette (or 8-bit grey)
PNG whose pixel value is the object id (0 = background), the same size as the ground truth.

Input rules (decisions, also in the --help text):
- Segments flagged redundant / missing / other (val_human, val_novel) are skipped, as ActionVOS does for
  its 294-video val_human numbers; --include-flagged scores them too (the original 330-video protocol).
- A missing prediction file is an error naming the file. With --missing-as-empty it is scored as an empty
  mask (all background), i.e. "the model predicted nothing"; such files are listed in the report.
- A prediction that is unreadable, not a palette/grey PNG or not the ground-truth size is an error
  naming the file. With --skip-bad the whole segment is left out (and listed) instead, so a segment is
  either scored completely or not at all; "videos" counts only scored segments.
- Predicted ids not listed in the segment's object_classes belong to no sample and do not change any
  metric (as in ActionVOS); they are reported as a warning, with the frames where they occur.
- Ground-truth masks are read only from Annotations_Sparse (the JPEG frames are not needed). A mask with
  ids outside object_classes is a data error (skipped with --skip-bad).

Exit status: 0 on success, 2 on a data error (the message names the file).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from actiseg_ros.data.actionvos import DatasetError, Segment, Skipped, annotation_path, read_label_png, read_split
from actiseg_ros.evaluation.breakdown import DEFAULT_BAND_FRACTION, BreakdownAccumulator
from actiseg_ros.evaluation.metrics import (MetricAccumulator, outcomes_from_counts, pair_counts, stray_ids,
                                            to_json_summary)

STRAY_EXAMPLES = 5


def prediction_path(pred_dir, seq: str, frame: str) -> Path:
    """DIR/{seq}/frame_XXXXXXXXXX.png for the sparse frame 'frame_XXXXXXXXXX.jpg'."""
    return Path(pred_dir) / seq / (Path(frame).stem + ".png")


@dataclass
class FramePair:
    frame: str
    pred: np.ndarray  # (H, W) uint8 predicted ids
    gt: np.ndarray  # (H, W) uint8 ground-truth ids
    counts: np.ndarray  # (n, n) joint histogram of (pred, gt), metrics.pair_counts
    pred_file: Path
    empty_substitute: bool  # prediction file was missing and scored as empty


def load_segment(pred_dir, root, split: str, segment: Segment, missing_as_empty: bool) -> list[FramePair]:
    """Read and check every (prediction, ground truth) pair of one segment; DatasetError names the bad file."""
    pairs = []
    for frame in segment.sparse_frames:
        gt_file = annotation_path(root, split, segment.name, frame)
        gt = read_label_png(gt_file)
        pred_file = prediction_path(pred_dir, segment.name, frame)
        empty_substitute = not pred_file.is_file()
        if empty_substitute and not missing_as_empty:
            raise DatasetError("%s: prediction not found (segment %s, frame %s); pass --missing-as-empty to "
                               "score missing predictions as empty masks" % (pred_file, segment.name, frame))
        pred = np.zeros_like(gt) if empty_substitute else read_label_png(pred_file)
        if pred.shape != gt.shape:
            raise DatasetError("%s: prediction is %dx%d (WxH) but the ground truth %s is %dx%d"
                               % (pred_file, pred.shape[1], pred.shape[0], gt_file, gt.shape[1], gt.shape[0]))
        counts = pair_counts(pred, gt)
        present = np.flatnonzero(counts.sum(axis=0))
        unknown = sorted(set(present.tolist()) - {0} - set(segment.objects))
        if unknown:
            raise DatasetError("%s: object id(s) %s are not in object_classes of segment %s"
                               % (gt_file, unknown, segment.name))
        pairs.append(FramePair(frame, pred, gt, counts, pred_file, empty_substitute))
    return pairs


@dataclass
class EvalReport:
    split: str
    metrics: MetricAccumulator
    breakdown: BreakdownAccumulator | None
    videos: int = 0
    frames: int = 0
    seconds: float = 0.0
    flagged: int = 0  # segments left out for redundant/missing/other
    skipped: list = field(default_factory=list)  # [Skipped]: bad entries and bad segments (--skip-bad)
    scored_as_empty: list = field(default_factory=list)  # prediction files missing, scored as empty
    stray: list = field(default_factory=list)  # [(prediction file, [ids])]

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.nan


def evaluate(pred_dir, root, split: str = "val_human", skip_bad: bool = False, missing_as_empty: bool = False,
             include_flagged: bool = False, with_breakdown: bool = False,
             band_fraction: float = DEFAULT_BAND_FRACTION) -> EvalReport:
    """Score a prediction folder on one split. Raises DatasetError (naming the file) unless skip_bad."""
    if not Path(pred_dir).is_dir():
        raise DatasetError("%s: prediction folder not found" % pred_dir)
    # Scoring needs only the annotations, so read_split's file checks (which also require the JPEG frames)
    # are off; load_segment checks each annotation and prediction as it reads them.
    data = read_split(root, split, skip_bad=skip_bad, check_files=False)
    segments = [s for s in data.segments if include_flagged or s.evaluable]
    report = EvalReport(split=split, metrics=MetricAccumulator(),
                        breakdown=BreakdownAccumulator(band_fraction) if with_breakdown else None,
                        flagged=len(data.segments) - len(segments), skipped=list(data.skipped))
    started = time.perf_counter()
    with tqdm(total=sum(len(s.sparse_frames) for s in segments), desc="eval %s" % split, unit="frame",
              disable=None) as progress:
        for segment in segments:
            try:
                pairs = load_segment(pred_dir, root, split, segment, missing_as_empty)
            except DatasetError as err:
                if not skip_bad:
                    raise
                report.skipped.append(Skipped(path="segment %s" % segment.name, reason=str(err)))
                progress.update(len(segment.sparse_frames))
                continue
            _score_segment(report, segment, pairs)
            progress.update(len(pairs))
    report.seconds = time.perf_counter() - started
    return report


def _score_segment(report: EvalReport, segment: Segment, pairs: list[FramePair]) -> None:
    positives = {k: bool(info.positive) for k, info in segment.objects.items()}
    for pair in pairs:
        outcomes = outcomes_from_counts(pair.counts, positives)
        report.metrics.add_all(outcomes.values())
        if report.breakdown is not None:
            report.breakdown.add_frame(pair.pred, pair.gt, segment.objects, counts=pair.counts, outcomes=outcomes)
        stray = stray_ids(pair.counts, segment.objects)
        if stray:
            report.stray.append((str(pair.pred_file), stray))
        if pair.empty_substitute:
            report.scored_as_empty.append(str(pair.pred_file))
    report.videos += 1
    report.frames += len(pairs)


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else "%.1f" % (100.0 * value)


def format_summary(result: dict, videos: int, split: str) -> str:
    """The stdout table: the six metrics in percent with one decimal, as in the ActionVOS paper."""
    names = ("p-mIoU", "n-mIoU", "p-cIoU", "n-cIoU", "gIoU", "Acc")
    keys = ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc")
    samples = sum(result[k] for k in ("TP", "TN", "FP", "FN"))
    lines = [
        "ActionVOS metrics on %s: %d videos, %d samples (object x frame)" % (split, videos, samples),
        "  " + "  ".join("%7s" % name for name in names),
        "  " + "  ".join("%7s" % _percent(result[key]) for key in keys),
        "  TP %d  TN %d  FP %d  FN %d   (n-mIoU, n-cIoU: lower is better; the others: higher)"
        % (result["TP"], result["TN"], result["FP"], result["FN"]),
    ]
    return "\n".join(lines)


def format_notes(report: EvalReport) -> list[str]:
    """Warnings about what was left out or substituted, for stderr."""
    notes = []
    if report.flagged:
        notes.append("%d segment(s) flagged redundant/missing/other were not scored (--include-flagged scores them)"
                     % report.flagged)
    for skipped in report.skipped:
        notes.append("skipped %s: %s" % (skipped.path, skipped.reason))
    if report.scored_as_empty:
        notes.append("%d missing prediction(s) scored as empty masks, e.g. %s"
                     % (len(report.scored_as_empty), report.scored_as_empty[0]))
    if report.stray:
        examples = "; ".join("%s: %s" % (path, ids) for path, ids in report.stray[:STRAY_EXAMPLES])
        notes.append("%d prediction(s) contain ids not in object_classes; those pixels are ignored, as in "
                     "ActionVOS (e.g. %s)" % (len(report.stray), examples))
    return notes


def breakdown_document(report: EvalReport) -> dict:
    document = report.breakdown.result()
    document["input"] = {
        "split": report.split, "videos": report.videos, "frames": report.frames,
        "flagged_segments_left_out": report.flagged,
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
        "missing_scored_as_empty": report.scored_as_empty,
        "stray_prediction_ids": [{"file": path, "ids": ids} for path, ids in report.stray],
    }
    return document


def _write_json(path, document) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number, got %s" % text)
    return value


def add_arguments(parser) -> None:
    parser.add_argument("--pred", required=True, metavar="DIR",
                        help="prediction folder: DIR/{seq}/frame_XXXXXXXXXX.png palette PNGs, pixel = object id")
    parser.add_argument("--data", required=True, metavar="ROOT", help="ActionVOS-layout data root")
    parser.add_argument("--split", default="val_human", help="ImageSets split to score (default: val_human)")
    parser.add_argument("--json", metavar="OUT", help="write the six metrics, TP/TN/FP/FN and videos here")
    parser.add_argument("--breakdown-json", metavar="OUT2",
                        help="write per-class metrics and failure-mode statistics (leakage, mislocalisation, "
                             "identity substitution) here")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out (and list) segments with bad entries, masks or predictions instead of stopping")
    parser.add_argument("--missing-as-empty", action="store_true",
                        help="score a missing prediction file as an empty mask instead of stopping")
    parser.add_argument("--include-flagged", action="store_true",
                        help="also score segments flagged redundant/missing/other "
                             "(skipped by default, as in ActionVOS)")
    parser.add_argument("--band-fraction", type=_positive_float, default=DEFAULT_BAND_FRACTION,
                        help="leakage band width as a fraction of the frame's short side (default %(default)s: "
                             "10 px at 854x480)")


def main(args) -> int:
    try:
        report = evaluate(args.pred, args.data, args.split, skip_bad=args.skip_bad,
                          missing_as_empty=args.missing_as_empty, include_flagged=args.include_flagged,
                          with_breakdown=bool(args.breakdown_json), band_fraction=args.band_fraction)
    except DatasetError as err:
        print("actiseg eval: error: %s" % err, file=sys.stderr)
        return 2
    for note in format_notes(report):
        print("actiseg eval: warning: %s" % note, file=sys.stderr)
    if report.videos == 0:
        print("actiseg eval: error: no segment of split %s was scored" % args.split, file=sys.stderr)
        return 2
    result = report.metrics.result()
    print(format_summary(result, report.videos, args.split))
    print("  %d frames in %.2f s (%.0f frames/s, reading included)"
          % (report.frames, report.seconds, report.frames_per_second))
    if args.json:
        _write_json(args.json, to_json_summary(result, report.videos))
    if args.breakdown_json:
        _write_json(args.breakdown_json, breakdown_document(report))
    return 0
