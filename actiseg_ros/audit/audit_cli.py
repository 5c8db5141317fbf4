"""`actiseg audit`: rank every label of a split by how suspicious an exported model finds it, before a
training run pays for it.

    actiseg audit --data ROOT --split train --json audit.json [--html report.html] [--model DIR]

Each segment's objects are prompted with their labelled names ("knife used in the action of cut onion"),
one model run per frame on ONNX Runtime (no torch), and the labels are scored against what the model sees
(actiseg_ros.audit.scoring): per expression a `text` and a `flag` record, per labelled (frame, object) a
`mask` record, all in one list sorted by score. A frame or mask that is missing or unreadable, or an entry
of the image set that does not parse, is listed under `problems` (and on stderr) and the audit goes on.
The default model is the shipped one, trained on clean data of the synthetic generator: a model trained on
the labels under audit would have learnt their mistakes (README, "Auditing labels").
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from actiseg_ros.audit import measure, scoring
from actiseg_ros.data import actionvos
from actiseg_ros.inference.engines.base import EngineInputError

DEFAULT_HTML_ROWS = 40


def default_model() -> Path:
    from actiseg_ros.paths import models_dir

    return models_dir() / "default"


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="data root (ActionVOS layout)")
    parser.add_argument("--split", default="train", help="split to audit (default: train)")
    parser.add_argument("--model", type=Path, default=None,
                        help="an exported model folder (default: the shipped default model)")
    parser.add_argument("--json", required=True, type=Path, help="output: the ranked records")
    parser.add_argument("--html", type=Path, default=None,
                        help="also write an HTML report of the top suspects (its pictures go into NAME_files/ next to "
                             "it for report NAME.html)")
    parser.add_argument("--top", type=int, default=DEFAULT_HTML_ROWS,
                        help="rows of the HTML report (default %d)" % DEFAULT_HTML_ROWS)
    parser.add_argument("--segments", type=int, default=None, metavar="N",
                        help="audit only the first N segments of the split (a quick look at a large one)")
    parser.add_argument("--backend", default="ort-cpu", help="inference backend (see actiseg bench)")
    parser.add_argument("--jobs", type=int, default=0,
                        help="worker processes, each auditing whole segments with its own model (0: one per CPU "
                             "core this process may use; 1: no workers)")
    parser.add_argument("--threads", type=int, default=0,
                        help="ONNX Runtime threads per process (0: its default with --jobs 1, 1 with more jobs)")


class Problems:
    """Items that could not be audited, reported one by one as they are met (stderr, above the progress bar)."""

    def __init__(self, echo: bool = True):
        self.items: list = []
        self.echo = echo

    def add(self, item: str, error: str) -> None:
        self.items.append({"item": item, "error": error})
        if self.echo:
            tqdm.write("actiseg audit: skipped %s: %s" % (item, error), file=sys.stderr)

    def extend(self, items: list) -> None:
        """A worker's problems, reported here as its segment comes back."""
        for entry in items:
            self.add(entry["item"], entry["error"])


# --- worker processes (--jobs): each opens its own predictor once and audits whole segments ---------------
_worker: dict = {}


def _start_worker(data: Path, split: str, model: Path, backend: str, threads: int, max_k: int) -> None:
    _worker.update(data=data, split=split)
    try:
        _worker["predictor"] = open_predictor(model, backend, threads, max_k)
    except Exception as err:  # noqa: BLE001 - raised again, with its text, by the worker's first task
        _worker["error"] = "%s: %s" % (type(err).__name__, err)


def _audit_in_worker(segment) -> tuple:
    if "error" in _worker:  # an initializer's exception would only break the pool without saying why
        raise ValueError("cannot open the model in a worker process: %s" % _worker["error"])
    problems, timings = Problems(echo=False), {}
    # the parent's progress bar counts each segment as it comes back; the worker's own bar stays silent
    records, frames = audit_segment(_worker["predictor"], _worker["data"], _worker["split"], segment, problems,
                                    tqdm(disable=True), timings)
    return records, frames, timings, problems.items


def default_jobs() -> int:
    """One worker per CPU core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def read_frame(data: Path, split: str, segment, frame: str) -> tuple:
    """(rgb, labels) of one frame; DatasetError naming the file when either is missing or unreadable."""
    rgb = actionvos.read_image(actionvos.image_path(data, split, segment.name, frame))
    label_file = actionvos.annotation_path(data, split, segment.name, frame)
    labels = actionvos.read_label_png(label_file)
    if labels.shape != rgb.shape[:2]:
        raise actionvos.DatasetError("%s: mask is %dx%d but its frame is %dx%d" % (
            label_file, labels.shape[1], labels.shape[0], rgb.shape[1], rgb.shape[0]))
    return rgb, labels


def object_maps(predictor, rgb: np.ndarray) -> tuple:
    """-> (ungated object probabilities (K, H, W) at camera size, positive probabilities (K,))."""
    from actiseg_ros.inference.postprocess import sigmoid
    from actiseg_ros.inference.preprocess import logits_to_camera

    mask_logits, positive_logits, box, _timings = predictor.infer(rgb)
    maps = logits_to_camera(measure.ungate(mask_logits, positive_logits), box)
    return maps, sigmoid(np.asarray(positive_logits, np.float32))


def segment_prompts(segment) -> list:
    """The segment's prompts, one per object id in ascending order (the order of the model's K outputs)."""
    return [segment.prompt(i) for i in sorted(segment.objects)]


def open_predictor(model, backend: str, threads: int, max_k: int):
    from actiseg_ros.inference.predictor import Predictor

    # fold_int8_weights: the int8 text encoder runs once per expression, and every expression is a new prompt
    return Predictor(model, backend=backend, threads=threads, max_k=max(1, max_k), fold_int8_weights=True)


def audit_segment(predictor, data: Path, split: str, segment, problems: Problems, progress,
                  timings: dict | None = None) -> tuple:
    """-> (records, frames measured) of one segment; adds seconds spent per stage to `timings`."""
    timings = {} if timings is None else timings
    ids = sorted(segment.objects)
    if not ids:
        problems.add(segment.name, "object_classes is empty: nothing to audit")
        progress.update(len(segment.sparse_frames))
        return [], 0
    began = time.perf_counter()
    try:
        predictor.set_prompts(segment_prompts(segment))  # the text encoder: once per expression
    except ValueError as err:  # e.g. more objects than the engine takes prompts
        problems.add(segment.name, "cannot prompt its objects: %s" % err)
        progress.update(len(segment.sparse_frames))
        return [], 0
    timings["text"] = timings.get("text", 0.0) + time.perf_counter() - began
    per_object = {i: ([], []) for i in ids}  # id -> (measures, frames)
    records, frames_done = [], 0
    for frame in segment.sparse_frames:
        began = time.perf_counter()
        try:
            rgb, labels = read_frame(data, split, segment, frame)
        except actionvos.DatasetError as err:
            problems.add("%s/%s" % (segment.name, frame), str(err))
            progress.update(1)
            continue
        unknown = sorted(set(np.unique(labels).tolist()) - {0} - set(ids))
        if unknown:  # audited all the same: those pixels count as background
            problems.add("%s/%s" % (segment.name, frame), "mask holds object id(s) %s not in object_classes"
                         % unknown)
        read = time.perf_counter()
        try:
            maps, positives = object_maps(predictor, rgb)
        except EngineInputError as err:
            problems.add("%s/%s" % (segment.name, frame), "the model cannot take this frame: %s" % err)
            progress.update(1)
            continue
        inferred = time.perf_counter()
        radius = measure.band_radius(*labels.shape)
        gradient = measure.gradient_magnitude(rgb)
        for object_measure in measure.measure_frame(labels, ids, maps, positives, radius, gradient):
            per_object[object_measure.object_id][0].append(object_measure)
            per_object[object_measure.object_id][1].append(frame)
        frames_done += 1
        timings["read"] = timings.get("read", 0.0) + read - began
        timings["model"] = timings.get("model", 0.0) + inferred - read
        timings["measure"] = timings.get("measure", 0.0) + time.perf_counter() - inferred
        progress.update(1)
    for object_id in ids:
        obj = segment.objects[object_id]
        measures, frames = per_object[object_id]
        expression = scoring.expression_records(segment.name, object_id, obj.name, obj.positive, measures, frames)
        records.extend(expression)
        # the mask records wait for the expression's text score: it says whether the name can judge them
        name_wrong = expression[0]["score"] if expression else 0.0
        records.extend(scoring.mask_record(segment.name, frame, obj.name, obj.positive, object_measure, name_wrong)
                       for object_measure, frame in zip(measures, frames))
    return records, frames_done


def audit(data, split: str = "train", model=None, backend: str = "ort-cpu", threads: int = 0,
          max_segments: int | None = None, echo_problems: bool = True, progress_bar: bool = True,
          jobs: int = 1) -> dict:
    """Audit one split; returns the JSON document (records sorted by score, problems, speed).

    jobs > 1: that many worker processes, each with its own predictor (ONNX Runtime threads: `threads`, or 1
    when 0), audit whole segments; the records are the same as with one process (they are sorted at the end).
    Why processes: at batch sizes of one frame, two single-threaded sessions keep two cores busier than one
    session with two threads (docs/audit/speed.md)."""
    data = Path(data)
    model = Path(model) if model is not None else default_model()
    problems = Problems(echo_problems)
    # files are checked frame by frame below, so one bad file costs one frame, not its segment
    split_data = actionvos.read_split(data, split, skip_bad=True, check_files=False)
    for skipped in split_data.skipped:
        problems.add(skipped.path, skipped.reason)
    segments = split_data.segments[:max_segments] if max_segments is not None else split_data.segments
    if jobs < 1:
        raise ValueError("jobs must be at least 1, got %d" % jobs)
    max_k = max((len(s.objects) for s in segments), default=1)
    records, frames, timings = [], 0, {}
    started = time.perf_counter()
    with tqdm(total=sum(len(s.sparse_frames) for s in segments), desc="audit %s" % split, unit="frame",
              disable=not progress_bar) as progress:
        if jobs == 1 or len(segments) < 2:
            predictor = open_predictor(model, backend, threads, max_k)
            try:
                for segment in segments:
                    segment_records, segment_frames = audit_segment(predictor, data, split, segment, problems,
                                                                    progress, timings)
                    records.extend(segment_records)
                    frames += segment_frames
            finally:
                predictor.close()
        else:
            # fork: the workers start at once and inherit the parsed split; nothing here holds threads yet
            context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ProcessPoolExecutor(min(jobs, len(segments)), mp_context=context, initializer=_start_worker,
                                     initargs=(data, split, model, backend, threads or 1, max_k)) as pool:
                for segment, (segment_records, segment_frames, segment_timings, segment_problems) in zip(
                        segments, pool.map(_audit_in_worker, segments)):
                    problems.extend(segment_problems)
                    records.extend(segment_records)
                    frames += segment_frames
                    for stage, value in segment_timings.items():  # summed over the workers: CPU-side seconds
                        timings[stage] = timings.get(stage, 0.0) + value
                    progress.update(len(segment.sparse_frames))
    seconds = time.perf_counter() - started
    records = scoring.sort_records(records)
    return {"data": str(data), "split": split, "model": str(model), "backend": backend, "jobs": jobs,
            "segments": len(segments), "frames": frames, "seconds": round(seconds, 3),
            "frames_per_second": round(frames / seconds, 2) if seconds > 0 else None,
            # where the time went: text = the text encoder, once per expression (segment, object); model = the
            # segmenter and the maps' resize, once per frame; read = JPEG + PNG; measure = the scores (with
            # several jobs: summed over the workers, so they add up to more than `seconds`)
            "stage_seconds": {stage: round(value, 3) for stage, value in sorted(timings.items())},
            "counts": {kind: sum(1 for r in records if r["kind"] == kind) for kind in scoring.KINDS},
            "problems": problems.items, "records": records}


def main(args) -> int:
    if args.top < 1:
        print("actiseg audit: error: --top must be at least 1, got %d" % args.top, file=sys.stderr)
        return 2
    if args.segments is not None and args.segments < 1:
        print("actiseg audit: error: --segments must be at least 1, got %d" % args.segments, file=sys.stderr)
        return 2
    if args.jobs < 0:
        print("actiseg audit: error: --jobs must be 0 (one per core) or more, got %d" % args.jobs, file=sys.stderr)
        return 2
    try:
        document = audit(args.data, args.split, args.model, args.backend, args.threads, args.segments,
                         jobs=args.jobs or default_jobs())
    except (actionvos.DatasetError, OSError, ValueError) as err:
        print("actiseg audit: error: %s" % err, file=sys.stderr)
        return 2
    actionvos.write_json(args.json, document)
    print("audited %d frames of %d segments at %.1f frames/s: %s; %d problem(s); wrote %s"
          % (document["frames"], document["segments"], document["frames_per_second"] or 0.0,
             ", ".join("%d %s" % (n, k) for k, n in document["counts"].items()), len(document["problems"]),
             args.json))
    print("seconds by stage: %s" % ", ".join("%s %.1f" % item for item in document["stage_seconds"].items()))
    if args.html is not None:
        from actiseg_ros.audit import report

        report.write_report(document, args.html, args.top, args.model or default_model(), args.backend,
                            args.threads)
        print("wrote %s" % args.html)
    return 0
