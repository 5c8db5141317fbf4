"""`actiseg import bag`: a ROS 2 bag (sqlite3 or MCAP, read with `rosbags`) -> ActionVOS-layout sequences, one per
action segment, ready for labelling and for `actiseg infer --split demo`.

    actiseg import bag BAG --image-topic T --action-topic A --out ROOT [--every N]
    actiseg import bag BAG --image-topic T --segment-seconds S (--narration TEXT | --narrations CSV) --out ROOT

Segments come from the action topic (std_msgs/String, as the node reads it: a narration or the JSON form; a
segment runs from one action message to the next, frames before the first action and after an empty action
are left out), or are fixed windows of S seconds from the first frame, narrated by --narration (every window)
or a CSV with a header `window,narration` (window index from 0) or `start,narration` (a second, from the first
frame, inside the window). Windows without a narration are left out. Every left-out part is reported.

What ROOT holds (written into a temporary folder next to ROOT and renamed at the end, so an error leaves no
ROOT behind):
  JPEGImages_Sparse/val/<sequence>/frame_XXXXXXXXXX.jpg   every N-th frame of the segment, at its recorded size;
      XXXXXXXXXX is the frame's position on the bag's image topic (0-based), so a frame keeps its file name
      whatever --every or the segmentation: labelling exports (COCO file_name) match frames by this name
  ImageSets/expression_file.json   the inference-only layout (`actiseg infer --split demo`): per sequence its
      frames and one prompt per candidate object (the objects named in the narration, in the vocabulary of
      --model, plus the hands, as the node chooses them)
  narrations.csv                   sequence,narration (what `actiseg import coco --narrations` reads)
  Stamps/<sequence>.json           per frame: file, position on the topic, log time and header stamp (ns),
                                   frame_id; and the segment's narration, action message time and window
  bag_import.json                  the bag, topics and options, sequences written and parts left out
Sequences are named <NNNNNNNN>_<bag>_<verb>_<noun> (segment number, bag name, first word of the narration,
first object it names), as ActionVOS names its segments.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import sys
import tempfile
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from actiseg_ros.data import actionvos
from actiseg_ros.data.bags import BagError, open_bag

STAMPS = "Stamps"
NARRATIONS_CSV = "narrations.csv"
REPORT = "bag_import.json"
HANDS = ("left hand", "right hand")  # the node's always_objects default


class BagImportError(ValueError):
    """Bad options or input for the import; the message names the item."""


def frame_name(position: int) -> str:
    """The file name of the frame at `position` on the bag's image topic."""
    return "frame_%010d.jpg" % position


@dataclass
class Part:
    """One stretch of the recording: an action segment or a time window."""

    key: int  # segment number (action mode: the action message's order; window mode: the window index)
    narration: str | None  # None: left out (no action yet, an empty action, a window nobody narrated)
    objects: tuple = ()
    start_ns: int = 0  # the action message's log time, or the window's start
    reason: str = ""  # why it is left out
    frames: list = field(default_factory=list)  # positions on the image topic, all of them (before --every)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "none"


def sequence_name(number: int, video: str, narration: str, objects) -> str:
    words = narration.split()
    return actionvos.sequence_folder(number, video, slug(words[0]) if words else "none",
                                     slug(objects[0]) if objects else "none")


def parse_narration(text: str, vocabulary, always=HANDS) -> tuple:
    """An action message -> (narration, candidate objects, None), or (None, (), why) when the node would refuse
    it ('refused: ...') or it clears the action."""
    from actiseg_ros.ros.action_parsing import ActionError, parse_action

    try:
        command = parse_action(text, vocabulary, always)
    except ActionError as err:
        return None, (), "refused: %s" % err
    if command is None or not command.narration:
        return None, (), "empty action (clears the action)"
    return command.narration, command.objects, None


def action_parts(actions, vocabulary) -> list:
    """[Part] per action message, in recorded order; a refused message is ignored (the previous action stays in
    force, as in the node), so it starts no part."""
    parts = []
    for number, action in enumerate(actions):
        narration, objects, why = parse_narration(action.text, vocabulary)
        if why and why.startswith("refused"):
            print("actiseg import bag: action %d (%r) ignored: %s" % (number, action.text[:80], why),
                  file=sys.stderr)
            continue
        parts.append(Part(key=number, narration=narration, objects=objects, start_ns=action.log_ns,
                          reason=why or ""))
    return parts


def read_window_narrations(path) -> dict:
    """CSV `window,narration` or `start,narration` -> ({window index: narration} or {start second: ...}, column)."""
    path = Path(path)
    if not path.is_file():
        raise BagImportError("narrations file %s not found" % path)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or [c.strip().lower() for c in rows[0][:2]] not in (["window", "narration"], ["start", "narration"]):
        raise BagImportError("%s: the first line must be the header 'window,narration' or 'start,narration'" % path)
    column = rows[0][0].strip().lower()
    found = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2 or not row[1].strip():
            raise BagImportError("%s line %d: expected %s,narration, got %r" % (path, line, column, ",".join(row)))
        try:
            key = int(row[0]) if column == "window" else float(row[0])
        except ValueError:
            raise BagImportError("%s line %d: %s %r is not a %s" % (path, line, column, row[0], "whole number"
                                                                     if column == "window" else "number")) from None
        if key < 0:
            raise BagImportError("%s line %d: %s must not be negative" % (path, line, column))
        found[key] = ",".join(row[1:]).strip()
    if not found:
        raise BagImportError("%s holds no narrations" % path)
    return found, column


def window_parts(first_ns: int, last_ns: int, seconds: float, narrations: dict, column: str, vocabulary) -> list:
    """[Part] per window of `seconds` from first_ns to last_ns; `narrations`: {None: text} for every window,
    else keyed by window index or start second (column)."""
    window_ns = int(seconds * 1e9)
    count = int((last_ns - first_ns) // window_ns) + 1
    by_window = {}
    for key, text in narrations.items():
        # A start second picks its window in whole nanoseconds, as assign_frames places the frames: a float
        # division puts a start on a boundary in the window before (0.6 / 0.2 = 2.9999999999999996).
        window = key if column == "window" else (None if key is None else int(round(key * 1e9)) // window_ns)
        by_window[window] = text
    parts = []
    for window in range(count):
        text = by_window.get(window, by_window.get(None))
        part = Part(key=window, narration=None, start_ns=first_ns + int(window * seconds * 1e9))
        if text is None:
            part.reason = "no narration for window %d" % window
        else:
            narration, objects, why = parse_narration(text, vocabulary)
            if narration is None:
                raise BagImportError("the narration of window %d (%r) is unusable: %s" % (window, text, why))
            part.narration, part.objects = narration, objects
        parts.append(part)
    late = sorted(k for k in by_window if k is not None and k >= count)
    if late:
        raise BagImportError("narrations given for window(s) %s, but the recording has only %d window(s) of %g s"
                           % (", ".join(map(str, late)), count, seconds))
    return parts


def assign_frames(parts: list, log_times: list, window_ns: int | None) -> list:
    """Frames (positions) not in any part: action mode, before the first action; each frame goes to the last
    part that started at or before it (window mode: its window)."""
    unassigned = []
    starts = [p.start_ns for p in parts]
    for position, log_ns in enumerate(log_times):
        if window_ns:
            index = int((log_ns - log_times[0]) // window_ns)
        else:
            index = bisect_right(starts, log_ns) - 1
        if index < 0:
            unassigned.append(position)
        else:
            parts[index].frames.append(position)
    return unassigned


def load_vocabulary(model):
    """(vocabulary, prompt template) of a model card; the taxonomy and ActionVOS's template without one."""
    from actiseg_ros.ros.action_parsing import default_vocabulary

    if model is None:
        from actiseg_ros.paths import models_dir

        try:
            candidate = models_dir() / "default"
        except FileNotFoundError:
            candidate = None
        if candidate is None or not (candidate / "model_card.json").is_file():
            return default_vocabulary(), "{object} used in the action of {narration}"
        model = candidate
    from actiseg_ros.inference.model_card import ModelCardError, load_model_card

    try:
        card = load_model_card(model, check_hashes=False)
    except ModelCardError as err:
        raise BagImportError(str(err)) from None
    return tuple(card.raw.get("vocabulary") or default_vocabulary()), card.prompt_template


def add_arguments(parser) -> None:
    parser.add_argument("bag", type=Path, help="a rosbag2 folder (sqlite3 or MCAP) or its .db3 / .mcap file")
    parser.add_argument("--image-topic", default="",
                        help="sensor_msgs/Image or CompressedImage topic in the bag (default: its only one)")
    parser.add_argument("--action-topic", default="",
                        help="std_msgs/String action topic in the bag: one sequence per action segment")
    parser.add_argument("--out", required=True, type=Path, help="output root; must not exist (or be empty)")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="keep every N-th frame of a segment")
    parser.add_argument("--segment-seconds", type=float, default=None, metavar="S",
                        help="without an action topic: one sequence per window of S seconds")
    parser.add_argument("--narration", default=None, metavar="TEXT", help="with --segment-seconds: every window's "
                        "narration")
    parser.add_argument("--narrations", type=Path, default=None, metavar="CSV",
                        help="with --segment-seconds: a CSV 'window,narration' or 'start,narration' (seconds)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder whose vocabulary and prompt template make the prompts (default: the "
                             "shipped default model)")


def check_options(args) -> None:
    if args.every < 1:
        raise BagImportError("--every must be at least 1, got %d" % args.every)
    windows = args.segment_seconds is not None
    if args.action_topic and windows:
        raise BagImportError("give --action-topic or --segment-seconds, not both")
    if not args.action_topic and not windows:
        raise BagImportError("give --action-topic (one sequence per action), or --segment-seconds with --narration "
                           "or --narrations")
    if windows:
        if not args.segment_seconds > 0:
            raise BagImportError("--segment-seconds must be positive, got %s" % args.segment_seconds)
        if (args.narration is None) == (args.narrations is None):
            raise BagImportError("--segment-seconds needs exactly one of --narration TEXT or --narrations CSV")
    elif args.narration is not None or args.narrations is not None:
        raise BagImportError("--narration / --narrations go with --segment-seconds; with --action-topic the "
                           "narrations are the recorded actions")


def prepare_out(out: Path) -> Path:
    """A temporary folder next to `out`, to be renamed to it."""
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise BagImportError("%s exists and is not empty; choose a new --out" % out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".%s.partial-" % out.name, dir=out.parent))


def write_import(args, tmp: Path) -> dict:
    """Everything into `tmp`; returns the report."""
    vocabulary, template = load_vocabulary(args.model)
    video = slug(args.bag.stem if args.bag.is_file() else args.bag.name)[:32]
    with open_bag(args.bag) as bag:
        topic = bag.image_topic(args.image_topic)
        infos = bag.frame_infos(topic)
        if not infos:
            raise BagImportError("topic %s of bag %s holds no frames" % (topic, args.bag))
        log_times = [info.log_ns for info in infos]
        window_ns = None
        if args.action_topic:
            action_topic = bag.action_topic(args.action_topic)
            parts = action_parts(bag.actions(action_topic), vocabulary)
            if not parts:
                raise BagImportError("topic %s of bag %s holds no usable action: nothing to segment by (use "
                                   "--segment-seconds with --narration instead)" % (action_topic, args.bag))
        else:
            action_topic = ""
            if args.narration is not None:
                narrations, column = {None: args.narration}, "window"
            else:
                narrations, column = read_window_narrations(args.narrations)
            window_ns = int(args.segment_seconds * 1e9)
            parts = window_parts(log_times[0], log_times[-1], args.segment_seconds, narrations, column, vocabulary)
        before = assign_frames(parts, log_times, window_ns)
        skipped = [{"part": "before the first action", "frames": len(before), "reason": "no action yet"}] \
            if before else []
        keep = {}  # position -> sequence name
        sequences = []
        for part in parts:
            if part.narration is None or not part.frames:
                skipped.append({"part": "%s %d" % ("window" if window_ns else "action", part.key),
                                "frames": len(part.frames), "reason": part.reason or "no frames"})
                continue
            name = sequence_name(len(sequences), video, part.narration, part.objects)
            sampled = part.frames[:: args.every]
            keep.update((position, name) for position in sampled)
            sequences.append({"name": name, "narration": part.narration, "objects": list(part.objects),
                              "start_ns": part.start_ns, "positions": sampled, "part": part.key})
        if not sequences:
            raise BagImportError("no sequence to write: every part of bag %s was left out (%s)"
                                 % (args.bag, "; ".join("%s: %s" % (s["part"], s["reason"]) for s in skipped)))
        from tqdm import tqdm

        written = 0
        progress = tqdm(total=len(keep), desc="import bag", unit="frame", file=sys.stderr)
        last = max(keep)
        for position, frame in enumerate(bag.frames(topic)):  # one pass, in recorded order
            if position in keep:
                actionvos.write_image(actionvos.image_path(tmp, "val", keep[position], frame_name(position)),
                                      frame.rgb)
                written += 1
                progress.update(1)
            if position >= last:
                break
        progress.close()
    expressions = {}
    for seq in sequences:
        name = seq["name"]
        expressions[name] = {"expressions": {str(k): {"exp": template.format(object=obj, narration=seq["narration"]),
                                                      "obj_id": k + 1, "object": obj}
                                             for k, obj in enumerate(seq["objects"])},
                             "frames": [frame_name(p)[:-4] for p in seq["positions"]]}
        actionvos.write_json(tmp / STAMPS / ("%s.json" % name), {
            "bag": str(args.bag), "image_topic": topic, "action_topic": action_topic, "narration": seq["narration"],
            ("action_log_ns" if action_topic else "window_start_ns"): seq["start_ns"],
            "frames": [{"file": frame_name(p), "position": p, "log_ns": infos[p].log_ns,
                        "stamp_ns": infos[p].stamp_ns, "frame_id": infos[p].frame_id} for p in seq["positions"]]})
    actionvos.write_json(tmp / actionvos.IMAGE_SETS / actionvos.DEMO_EXPRESSIONS, {"videos": expressions})
    with open(tmp / NARRATIONS_CSV, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "narration"])
        writer.writerows([seq["name"], seq["narration"]] for seq in sequences)
    report = {"bag": str(args.bag), "image_topic": topic, "action_topic": action_topic, "every": args.every,
              "segment_seconds": args.segment_seconds, "frames_in_bag": len(infos), "frames_written": written,
              "sequences": [{k: v for k, v in s.items() if k != "positions"} | {"frames": len(s["positions"])}
                            for s in sequences],
              "left_out": skipped}
    actionvos.write_json(tmp / REPORT, report)
    return report


def main(args) -> int:
    try:
        check_options(args)
        tmp = prepare_out(args.out)
    except BagImportError as err:
        print("actiseg import bag: %s" % err, file=sys.stderr)
        return 2
    try:
        report = write_import(args, tmp)
        if args.out.is_dir():
            args.out.rmdir()  # checked empty above
        os.rename(tmp, args.out)
    except (BagImportError, BagError, actionvos.DatasetError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        print("actiseg import bag: %s" % err, file=sys.stderr)
        return 2
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    left = sum(s["frames"] for s in report["left_out"])
    print("wrote %d sequences (%d of the bag's %d frames) to %s%s" % (
        len(report["sequences"]), report["frames_written"], report["frames_in_bag"], args.out,
        "; left out: %s (%d frames; see %s)" % (", ".join(s["part"] for s in report["left_out"]), left, REPORT)
        if report["left_out"] else ""))
    return 0
