"""`actiseg import visor`: EPIC-KITCHENS VISOR -> the ActionVOS layout, as ActionVOS's official preparation.

    actiseg import visor --visor VISOR_ROOT --annotations DIR --out ROOT [--split train|val|both] [--jobs N]

VISOR_ROOT is the VISOR-VOS sparse release (`frame_mapping.json`, `GroundTruth-SparseAnnotations/
annotations_corrected/{split}/{video}.json`, `GroundTruth-SparseAnnotations/rgb_frames/{split}/{video}/` with the
per-video zips unpacked). DIR holds what ActionVOS reads from its own `annotations/` folder: the EPIC-100 action
tables `EPIC_100_train.csv` and `EPIC_100_validation.csv`, the VISOR-HOS files `visor_hos_train.json` and
`visor_hos_val.json`, and the palette image `00000.png`. The output is what ActionVOS's `data_prepare_visor.py`
writes (../shared/spec/visor-import.md): same sequence folders and ids, same ImageSets entries, masks and weight
maps equal pixel for pixel, images equal up to JPEG encoding; the rules themselves are in
actiseg_ros.data.visor_rules.

Differences from the official script: input it would silently mis-handle is refused with an error naming the
item (a frame of a kept action without annotation record, repeated narration ids, non-integer or negative
HOS boxes, more than 255 entities in a frame or objects in an action, an empty or odd HOS polygon); a missing
frame image is an error naming the file (the official script stops with a traceback too).

Videos are processed in parallel (--jobs, default: every core), each worker holding one video's annotations and
a few decoded frames at a time; sequence ids are assigned in the official order as the results come back. The
import is atomic, not resumable: everything is written into a hidden folder next to ROOT and renamed into
place at the end, so an interrupted or failed run leaves no ROOT (or, when ROOT already held the other split,
ROOT as it was). A stage folder left by a killed process (SIGKILL) is removed by the next run.
"""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import signal
import sys
from collections import OrderedDict, Counter
from pathlib import Path

import cv2
from PIL import Image

from actiseg_ros.data import actionvos
from actiseg_ros.data.visor_rules import (FULL_SIZE, IN_CONTACT, Entity, VisorError, action_frames, action_mask,
                                          action_objects, action_weights, frame_data, frame_number, hos_box,
                                          hos_polygons, invert_mapping, noun_classes, object_classes, resize_image,
                                          sort_actions, visor_polygons)

SPLITS = ("train", "val")
SPARSE = "GroundTruth-SparseAnnotations"
MAPPING_FILE = "frame_mapping.json"
ACTION_TABLES = ("EPIC_100_train.csv", "EPIC_100_validation.csv")
HOS_FILE = "visor_hos_%s.json"
PALETTE_FILE = "00000.png"
CSV_FIELDS = ("narration_id", "video_id", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
              "noun_class", "all_noun_classes")
FRAME_CACHE = 48  # frames of one video kept decoded per worker (actions overlap; a few hundred MB at most)
STAGE_PREFIX = ".visor-import-"


def report_path(root, split: str) -> Path:
    return Path(root) / ("import_visor_%s.json" % split)


# --- inputs ---------------------------------------------------------------------------------------------

def annotation_file(visor_root, split: str, video: str) -> Path:
    return Path(visor_root) / SPARSE / "annotations_corrected" / split / ("%s.json" % video)


def frames_folder(visor_root, split: str, video: str) -> Path:
    return Path(visor_root) / SPARSE / "rgb_frames" / split / video


def read_action_tables(annotations_dir) -> dict:
    """{video_id: [row, ...]} from both EPIC-100 tables (the official script uses both for both splits)."""
    by_video: dict = {}
    for name in ACTION_TABLES:
        path = Path(annotations_dir) / name
        if not path.is_file():
            raise VisorError("%s: EPIC-100 action table not found (from epic-kitchens-100-annotations)" % path)
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [f for f in CSV_FIELDS if f not in (reader.fieldnames or [])]
            if missing:
                raise VisorError("%s: missing column(s) %s" % (path, ", ".join(missing)))
            for line, row in enumerate(reader, start=2):
                try:
                    for key in ("start_frame", "stop_frame", "verb_class", "noun_class"):
                        row[key] = int(row[key])
                except (TypeError, ValueError):
                    raise VisorError("%s line %d: %s is not an integer" % (path, line, key)) from None
                row["_where"] = "%s line %d" % (path.name, line)
                by_video.setdefault(row["video_id"], []).append(row)
    return by_video


def read_hos(annotations_dir, split: str) -> dict:
    """{visor frame name: [in-contact HOS annotation, ...]} of one split's VISOR-HOS file."""
    path = Path(annotations_dir) / (HOS_FILE % split)
    data = actionvos.read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise VisorError("%s: expected a COCO file with 'images' and 'annotations'" % path)
    names = {}
    for image in data["images"]:
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise VisorError("%s: an image entry lacks id or file_name: %r" % (path, image))
        names[image["id"]] = os.path.basename(image["file_name"])
    contact: dict = {}
    for annotation in data["annotations"]:
        if not isinstance(annotation, dict) or annotation.get("category_id") != IN_CONTACT:
            continue
        if annotation.get("image_id") not in names:
            raise VisorError("%s: annotation id %s names image_id %r, which is not in images"
                             % (path, annotation.get("id"), annotation.get("image_id")))
        contact.setdefault(names[annotation["image_id"]], []).append(
            {"id": annotation.get("id"), "bbox": annotation.get("bbox"),
             "segmentation": annotation.get("segmentation")})
    return contact


def read_palette(annotations_dir) -> list:
    path = Path(annotations_dir) / PALETTE_FILE
    if not path.is_file():
        raise VisorError("%s: palette image not found (ActionVOS's annotations/00000.png)" % path)
    with Image.open(path) as image:
        palette = image.getpalette()
    if image.mode != "P" or not palette:
        raise VisorError("%s: not a palette PNG (mode %s)" % (path, image.mode))
    return palette


def read_mapping(visor_root) -> dict:
    path = Path(visor_root) / MAPPING_FILE
    data = actionvos.read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise VisorError("%s: expected {video_id: {visor_frame_name: ek_frame_name}}" % path)
    return data


def parse_entities(record: dict, where: str) -> list:
    entities = []
    for index, annotation in enumerate(record.get("annotations") or []):
        item = "%s entity %d" % (where, index)
        if not isinstance(annotation, dict) or not isinstance(annotation.get("name"), str):
            raise VisorError("%s: no name" % item)
        segments = annotation.get("segments")
        try:
            class_id = int(annotation.get("class_id"))
        except (TypeError, ValueError):
            raise VisorError("%s (%s): class_id %r is not an integer"
                             % (item, annotation["name"], annotation.get("class_id"))) from None
        polygons = visor_polygons(segments if segments is not None else [], "%s (%s)" % (item, annotation["name"]))
        entities.append(Entity(name=annotation["name"], class_id=class_id, polygons=polygons,
                               has_segments=bool(segments)))
    return entities


# --- one video (runs in a worker) -------------------------------------------------------------------------

def process_video(job: dict) -> dict:
    """Decide and write one video's kept actions into pending folders of the stage; return their entries."""
    video, split, stage = job["video"], job["split"], Path(job["stage"])
    json_path = annotation_file(job["visor"], split, video)
    data = actionvos.read_json(json_path)
    records = {}
    for record in data.get("video_annotations", []) if isinstance(data, dict) else []:
        name = (record.get("image") or {}).get("name") if isinstance(record, dict) else None
        if isinstance(name, str):
            records.setdefault(name, record)  # the first record of a frame is the one used
    del data
    inverse, collisions = invert_mapping(job["mapping"])
    ek_frames = sorted(inverse)
    for name in ek_frames:
        frame_number(name)
    rows = sort_actions(job["rows"], video)
    rgb = frames_folder(job["visor"], split, video)
    frame_cache: OrderedDict = OrderedDict()
    image_cache: OrderedDict = OrderedDict()

    def frame(ek: str):
        if ek in frame_cache:
            frame_cache.move_to_end(ek)
            return frame_cache[ek]
        visor_name = inverse[ek]
        record = records.get(visor_name)
        if record is None:
            value = None
        else:
            where = "%s frame %s" % (json_path, visor_name)
            hos_rows = []
            for row in job["hos"].get(visor_name, []):
                item = "%s annotation id %s (frame %s)" % (job["hos_file"], row["id"], visor_name)
                rows_, cols = hos_box(row["bbox"], item)
                hos_rows.append((rows_, cols, hos_polygons(row["segmentation"], item)))
            value = frame_data(parse_entities(record, where), hos_rows, where)
        frame_cache[ek] = value
        if len(frame_cache) > FRAME_CACHE:
            frame_cache.popitem(last=False)
        return value

    def image_bytes(ek: str) -> bytes:
        if ek in image_cache:
            image_cache.move_to_end(ek)
            return image_cache[ek]
        path = rgb / inverse[ek]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if bgr is None:
            hint = ""
            if not rgb.is_dir():
                hint = " (the folder %s is missing: unzip rgb_frames/%s/<participant>/%s.zip into it)" % (
                    rgb, split, video)
            raise VisorError("%s: frame image %s for %s" % (
                path, "unreadable" if path.is_file() else "not found", ek) + hint)
        if (bgr.shape[1], bgr.shape[0]) != FULL_SIZE:
            raise VisorError("%s: frame is %dx%d, VISOR frames are %dx%d" % (
                path, bgr.shape[1], bgr.shape[0], FULL_SIZE[0], FULL_SIZE[1]))
        ok, encoded = cv2.imencode(".jpg", resize_image(bgr))  # OpenCV's default quality, 95
        if not ok:
            raise VisorError("%s: could not encode the resized frame" % path)
        image_cache[ek] = encoded.tobytes()
        if len(image_cache) > FRAME_CACHE:
            image_cache.popitem(last=False)
        return image_cache[ek]

    entries, dropped = [], Counter()
    for row in rows:
        where = "video %s narration %s" % (video, row["narration_id"])
        frames = action_frames(ek_frames, row["start_frame"], row["stop_frame"])
        if len(frames) < 2:
            dropped["fewer than 2 sparse frames"] += 1
            continue
        datas = [frame(f) for f in frames]
        objects = action_objects([d for d in datas if d is not None], noun_classes(row), where)
        if objects is None:
            dropped["no object"] += 1
            continue
        missing = [inverse[f] for f, d in zip(frames, datas) if d is None]
        if missing:
            raise VisorError("%s: frame %s is mapped (%s) but has no record in %s; the official script would "
                             "shift this action's masks onto the wrong frames" % (
                                 where, ", ".join(missing[:5]), job["mapping_file"], json_path))
        pending = ".pending-%s-%05d" % (video, len(entries))
        folders = [stage / tree / split / pending
                   for tree in (actionvos.IMAGES, actionvos.ANNOTATIONS, actionvos.WEIGHTS)]
        for folder in folders:
            folder.mkdir(parents=True)
        for ek, data_ in zip(frames, datas):
            png = os.path.splitext(ek)[0] + ".png"
            (folders[0] / ek).write_bytes(image_bytes(ek))
            actionvos.write_label_png(folders[1] / png, action_mask(data_, objects), job["palette"])
            actionvos.write_label_png(folders[2] / png, action_weights(data_, objects), job["palette"])
        entries.append({"pending": pending, "entry": {
            "video": video, "start": row["start_frame"], "narration": row["narration"], "verb": row["verb"],
            "verb_class": row["verb_class"], "noun": row["noun"], "noun_class": row["noun_class"],
            "end": row["stop_frame"], "sparse_frames": frames, "object_classes": object_classes(objects)}})
    return {"video": video, "entries": entries, "dropped": dict(dropped), "actions": len(rows),
            "mapping_collisions": collisions}


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group; only the parent reacts (it terminates the pool and cleans up).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --- the import -----------------------------------------------------------------------------------------

def plan_jobs(visor_root, split: str, mapping: dict, tables: dict, hos: dict, hos_file: str, palette: list,
              stage: Path) -> tuple:
    """(jobs in frame_mapping key order, {reason: [videos]} of videos left out)."""
    jobs, skipped = [], {"no EPIC-100 action": [], "no annotation file": []}
    for video, frames in mapping.items():
        if video not in tables:
            skipped["no EPIC-100 action"].append(video)
            continue
        if not annotation_file(visor_root, split, video).is_file():
            skipped["no annotation file"].append(video)
            continue
        jobs.append({"video": video, "split": split, "visor": str(visor_root), "stage": str(stage),
                     "mapping": frames, "rows": tables[video], "palette": palette,
                     "hos": {n: hos[n] for n in frames if n in hos}, "hos_file": hos_file,
                     "mapping_file": MAPPING_FILE})
    return jobs, skipped


def _remove_stale_stages(root: Path) -> None:
    """Stage folders of killed runs (their process is gone) next to ROOT."""
    for path in root.parent.glob(".%s%s*" % (root.name, STAGE_PREFIX)):
        try:
            pid = int(path.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            continue


def run_split(visor_root, annotations_dir, split: str, mapping: dict, tables: dict, palette: list, stage: Path,
              jobs: int, progress: bool = True) -> dict:
    """Import one split into the stage; returns its report."""
    from tqdm import tqdm

    hos = read_hos(annotations_dir, split)
    work, skipped = plan_jobs(visor_root, split, mapping, tables, hos, str(Path(annotations_dir) / (HOS_FILE % split)),
                              palette, stage)
    del hos
    for tree in (actionvos.IMAGES, actionvos.ANNOTATIONS, actionvos.WEIGHTS):
        (stage / tree / split).mkdir(parents=True, exist_ok=True)
    entries, dropped, collisions = [], Counter(), {}
    frames_total = 0
    bar = tqdm(total=len(work), desc="visor %s" % split, unit="video", disable=None if progress else True)
    pool = None
    try:
        if jobs > 1 and len(work) > 1:
            pool = multiprocessing.get_context("spawn").Pool(min(jobs, len(work)), initializer=_worker_init)
            results = pool.imap(process_video, work)
        else:
            results = map(process_video, work)
        for result in results:
            for item in result["entries"]:
                seq_id = len(entries) + 1
                entry = dict({"seq_id": seq_id}, **item["entry"])
                name = actionvos.sequence_folder(seq_id, entry["video"], entry["verb"], entry["noun"])
                for tree in (actionvos.IMAGES, actionvos.ANNOTATIONS, actionvos.WEIGHTS):
                    os.rename(stage / tree / split / item["pending"], stage / tree / split / name)
                entries.append(entry)
                frames_total += len(entry["sparse_frames"])
            dropped.update(result["dropped"])
            if result["mapping_collisions"]:
                collisions[result["video"]] = result["mapping_collisions"]
            bar.update(1)
            bar.set_postfix(actions=len(entries), frames=frames_total)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    path = actionvos.image_set_path(stage, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries), encoding="utf-8")  # official format: one line, no trailing newline
    return {"split": split, "videos": len(work), "actions": len(entries), "sparse_frames": frames_total,
            "dropped_actions": dict(dropped), "skipped_videos": {k: len(v) for k, v in skipped.items()},
            "mapping_collisions": collisions}


def import_visor(visor_root, annotations_dir, root, splits=SPLITS, jobs: int | None = None,
                 progress: bool = True, on_split_done=None) -> list:
    """Run the import (see the module doc); returns one report per split."""
    visor_root, annotations_dir, root = Path(visor_root), Path(annotations_dir), Path(root)
    jobs = max(1, jobs or os.cpu_count() or 1)
    for split in splits:
        if root.exists() and (actionvos.image_set_path(root, split).exists()
                              or any((root / tree / split).exists() for tree in
                                     (actionvos.IMAGES, actionvos.ANNOTATIONS, actionvos.WEIGHTS))):
            raise VisorError("%s already holds a %s split; import into another --out or remove it first"
                             % (root, split))
    mapping = read_mapping(visor_root)
    tables = read_action_tables(annotations_dir)
    palette = read_palette(annotations_dir)
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_stages(root)
    stage = root.parent / (".%s%s%d" % (root.name, STAGE_PREFIX, os.getpid()))
    shutil.rmtree(stage, ignore_errors=True)
    reports = []
    try:
        for split in splits:
            report = run_split(visor_root, annotations_dir, split, mapping, tables, palette, stage, jobs, progress)
            report_file = report_path(stage, split)
            report_file.write_text(json.dumps(report), encoding="utf-8")
            reports.append(report)
            if on_split_done is not None:
                on_split_done(report)
        if not root.exists():
            os.rename(stage, root)
        else:  # ROOT holds the other split: move this run's folders in, the ImageSets files last
            for split in splits:
                for tree in (actionvos.IMAGES, actionvos.ANNOTATIONS, actionvos.WEIGHTS):
                    (root / tree).mkdir(exist_ok=True)
                    os.rename(stage / tree / split, root / tree / split)
                os.replace(report_path(stage, split), report_path(root, split))
            (root / actionvos.IMAGE_SETS).mkdir(exist_ok=True)
            for split in splits:
                os.rename(actionvos.image_set_path(stage, split), actionvos.image_set_path(root, split))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return reports


# --- command line ---------------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--visor", required=True, type=Path,
                        help="VISOR root: frame_mapping.json and GroundTruth-SparseAnnotations/ (rgb_frames unzipped "
                             "to rgb_frames/{train,val}/<video>/)")
    parser.add_argument("--annotations", required=True, type=Path,
                        help="folder with EPIC_100_train.csv, EPIC_100_validation.csv, visor_hos_train.json, "
                             "visor_hos_val.json and the palette image 00000.png")
    parser.add_argument("--out", required=True, type=Path, help="ActionVOS-layout root to create")
    parser.add_argument("--split", default="both", choices=("train", "val", "both"),
                        help="split(s) to import (default both); ids restart at 1 in each, as officially")
    parser.add_argument("--jobs", type=int, default=None,
                        help="videos processed in parallel (default: every core)")


def main(args) -> int:
    splits = SPLITS if args.split == "both" else (args.split,)
    if args.jobs is not None and args.jobs < 1:
        raise SystemExit("actiseg import visor: --jobs must be at least 1")

    def terminate(signum, frame):
        raise KeyboardInterrupt

    # SIGINT explicitly too: a shell starts background jobs with SIGINT ignored, and Python then leaves it so
    previous = {signum: signal.signal(signum, terminate) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        import_visor(args.visor, args.annotations, args.out, splits, args.jobs,
                     on_split_done=lambda r: print("finished for %s set. %d actions, %d sparse frames"
                                                   % (r["split"], r["actions"], r["sparse_frames"]), flush=True))
    except (VisorError, actionvos.DatasetError) as err:
        raise SystemExit("actiseg import visor: %s" % err) from None
    except KeyboardInterrupt:
        print("actiseg import visor: interrupted; nothing was written to %s" % args.out, file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
