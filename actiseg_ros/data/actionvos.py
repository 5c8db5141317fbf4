"""Read and write the ActionVOS data layout (VISOR as prepared by ActionVOS's tools), unchanged.

```
<root>/JPEGImages_Sparse/{train,val}/{seq}/frame_XXXXXXXXXX.jpg
<root>/Annotations_Sparse/{train,val}/{seq}/frame_XXXXXXXXXX.png   palette PNG, pixel = object id, 0 = background
<root>/Weights_Sparse/{train,val}/{seq}/frame_XXXXXXXXXX.png       action-guided weights 1/2/3/4
<root>/ImageSets/{train,val,val_human,val_novel}.json               a list of segments (see Segment)
```
Inference-only (demo) layout: `JPEGImages_Sparse/val/{video}/` plus `ImageSets/expression_file.json`
(`{"videos": {vid: {"expressions": {"0": {"exp": ..., "obj_id": ...}}, "frames": [...]}}}`); ActionVOS's
`*_meta_expressions_promptaction.json` files have the same shape.

Every error raised here is a DatasetError whose message names the offending file, so a user pointing the
toolkit at a large data set learns exactly what to fix. With `skip_bad=True` readers skip bad segments
and report them instead.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGES = "JPEGImages_Sparse"
ANNOTATIONS = "Annotations_Sparse"
WEIGHTS = "Weights_Sparse"
IMAGE_SETS = "ImageSets"
DEMO_EXPRESSIONS = "expression_file.json"
EVAL_FLAGS = ("redundant", "missing", "other")
OBJECT_FIELDS = ("name", "class_id", "handbox", "narration", "positive")
SEGMENT_FIELDS = ("seq_id", "video", "start", "end", "narration", "verb", "verb_class", "noun", "noun_class",
                  "sparse_frames", "object_classes")


class DatasetError(ValueError):
    """A data set file is missing, unreadable or inconsistent; the message names the file."""


def split_folder(split: str) -> str:
    """Frames of val_human / val_novel live in the val folders (they are re-labelled subsets of val)."""
    return "train" if split == "train" else "val"


def sequence_folder(seq_id: int, video: str, verb: str, noun: str) -> str:
    """A sequence's folder name, as ActionVOS names them: `{seq_id:08d}_{video}_{verb}_{noun}`."""
    return "%08d_%s_%s_%s" % (seq_id, video, verb, noun)


def build_prompt(object_name: str, narration: str) -> str:
    """The ActionVOS referring prompt for one object of one action segment."""
    return "%s used in the action of %s" % (object_name, narration)


@dataclass
class ObjectInfo:
    id: int
    name: str
    class_id: int
    handbox: int
    narration: int
    positive: int
    extra: dict = field(default_factory=dict)  # e.g. class_id_org / exp_org written by the noise injector

    def to_json(self) -> dict:
        out = {"name": self.name, "class_id": self.class_id, "handbox": self.handbox,
               "narration": self.narration, "positive": self.positive}
        out.update(self.extra)
        return out


@dataclass
class Segment:
    """One ImageSets entry: an action segment with its sparse frames and annotated objects."""

    seq_id: int
    video: str
    start: int
    end: int
    narration: str
    verb: str
    verb_class: int
    noun: str
    noun_class: int
    sparse_frames: list
    objects: dict  # {object id (int): ObjectInfo}
    extra: dict = field(default_factory=dict)  # redundant/missing/other flags and anything else

    @property
    def name(self) -> str:
        return sequence_folder(self.seq_id, self.video, self.verb, self.noun)

    @property
    def evaluable(self) -> bool:
        """val_human/val_novel mark entries whose labels are unreliable; evaluation skips them."""
        return not any(bool(self.extra.get(flag, False)) for flag in EVAL_FLAGS)

    def prompt(self, object_id: int) -> str:
        return build_prompt(self.objects[object_id].name, self.narration)

    def to_json(self) -> dict:
        out = {"seq_id": self.seq_id, "video": self.video, "start": self.start, "end": self.end,
               "narration": self.narration, "verb": self.verb, "verb_class": self.verb_class,
               "noun": self.noun, "noun_class": self.noun_class, "sparse_frames": list(self.sparse_frames),
               "object_classes": {str(k): self.objects[k].to_json() for k in sorted(self.objects)}}
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, entry, source) -> "Segment":
        """Parse one ImageSets entry; `source` (file, index) names the place in errors."""
        if not isinstance(entry, dict):
            raise DatasetError("%s: entry is a %s, not an object" % (source, type(entry).__name__))
        missing = [key for key in SEGMENT_FIELDS if key not in entry]
        if missing:
            raise DatasetError("%s: missing field(s) %s" % (source, ", ".join(missing)))
        frames = entry["sparse_frames"]
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
            raise DatasetError("%s: sparse_frames must be a non-empty list of file names" % source)
        raw_objects = entry["object_classes"]
        if not isinstance(raw_objects, dict):
            raise DatasetError("%s: object_classes must be an object keyed by object id" % source)
        objects = {}
        for key, raw in raw_objects.items():
            try:
                object_id = int(key)
            except ValueError:
                raise DatasetError("%s: object id %r is not an integer" % (source, key)) from None
            if not 1 <= object_id <= 255:
                raise DatasetError("%s: object id %d outside 1..255 (palette PNG values)" % (source, object_id))
            if not isinstance(raw, dict) or any(k not in raw for k in OBJECT_FIELDS):
                raise DatasetError("%s: object %s must have fields %s" % (source, key, ", ".join(OBJECT_FIELDS)))
            try:
                objects[object_id] = ObjectInfo(
                    id=object_id, name=str(raw["name"]), class_id=int(raw["class_id"]),
                    handbox=int(raw["handbox"]), narration=int(raw["narration"]), positive=int(raw["positive"]),
                    extra={k: v for k, v in raw.items() if k not in OBJECT_FIELDS})
            except (TypeError, ValueError) as err:
                raise DatasetError("%s: object %s has a field of the wrong type (%s)" % (source, key, err)) from None
        try:
            return cls(seq_id=int(entry["seq_id"]), video=str(entry["video"]), start=int(entry["start"]),
                       end=int(entry["end"]), narration=str(entry["narration"]), verb=str(entry["verb"]),
                       verb_class=int(entry["verb_class"]), noun=str(entry["noun"]),
                       noun_class=int(entry["noun_class"]), sparse_frames=list(frames), objects=objects,
                       extra={k: v for k, v in entry.items() if k not in SEGMENT_FIELDS})
        except (TypeError, ValueError) as err:
            raise DatasetError("%s: a field has the wrong type (%s)" % (source, err)) from None


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class SplitData:
    segments: list
    skipped: list = field(default_factory=list)


# --- paths -------------------------------------------------------------------------------------------

def _png_name(frame: str) -> str:
    return os.path.splitext(frame)[0] + ".png"


def image_path(root, split: str, seq: str, frame: str) -> Path:
    return Path(root) / IMAGES / split_folder(split) / seq / frame


def annotation_path(root, split: str, seq: str, frame: str) -> Path:
    return Path(root) / ANNOTATIONS / split_folder(split) / seq / _png_name(frame)


def weight_path(root, split: str, seq: str, frame: str) -> Path:
    return Path(root) / WEIGHTS / split_folder(split) / seq / _png_name(frame)


def image_set_path(root, split: str) -> Path:
    return Path(root) / IMAGE_SETS / ("%s.json" % split)


# --- files -------------------------------------------------------------------------------------------

def read_json(path):
    path = Path(path)
    if not path.is_file():
        raise DatasetError("%s: file not found" % path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise DatasetError("%s: malformed JSON at line %d column %d: %s"
                           % (path, err.lineno, err.colno, err.msg)) from None
    except UnicodeDecodeError as err:
        raise DatasetError("%s: not UTF-8 text (%s)" % (path, err)) from None


def write_json(path, data) -> None:
    """Write atomically so an interrupted run never leaves a truncated ImageSets file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def read_image(path) -> np.ndarray:
    """An RGB frame, shape (H, W, 3) uint8."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("%s: frame not found" % path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError("%s: unreadable image" % path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path, rgb: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise DatasetError("%s: could not write image" % path)


def read_label_png(path) -> np.ndarray:
    """Palette (or 8-bit grey) PNG -> label image, shape (H, W) uint8, pixel = object id."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("%s: mask not found" % path)
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DatasetError("%s: expected a palette or 8-bit grey PNG, got mode %s" % (path, image.mode))
            return np.array(image, dtype=np.uint8)
    except DatasetError:
        raise
    except Exception as err:  # PIL raises several unrelated types for corrupt files
        raise DatasetError("%s: unreadable mask (%s)" % (path, err)) from None


def davis_palette() -> list:
    """The DAVIS/VISOR colour palette (bit-interleaved), so written masks look like the originals."""
    palette = []
    for index in range(256):
        r = g = b = 0
        value = index
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette.extend((r, g, b))
    return palette


_PALETTE = davis_palette()


def write_label_png(path, labels: np.ndarray, palette: list | None = None) -> None:
    """Label image (H, W) uint8 -> palette PNG (palette: 768 RGB values; default the DAVIS palette)."""
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError("labels must be a 2-D uint8 array, got %s %s" % (labels.dtype, labels.shape))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels, mode="P")
    image.putpalette(_PALETTE if palette is None else palette)
    image.save(path, optimize=False)


# --- splits ------------------------------------------------------------------------------------------

def parse_image_set(data, path) -> list:
    if not isinstance(data, list):
        raise DatasetError("%s: expected a list of segments, got %s" % (path, type(data).__name__))
    return data


def check_segment_files(root, split: str, segment: Segment, need_masks: bool = True) -> None:
    """Frames exist and are readable; masks exist, match the frame size and use only listed object ids."""
    for frame in segment.sparse_frames:
        image_file = image_path(root, split, segment.name, frame)
        if not image_file.is_file():
            raise DatasetError("%s: frame listed in %s is missing" % (image_file, image_set_path(root, split)))
        if not need_masks:
            continue
        labels = read_label_png(annotation_path(root, split, segment.name, frame))
        with Image.open(image_file) as image:
            width, height = image.size
        if labels.shape != (height, width):
            raise DatasetError("%s: mask is %dx%d but its frame is %dx%d" % (
                annotation_path(root, split, segment.name, frame), labels.shape[1], labels.shape[0], width, height))
        unknown = sorted(set(np.unique(labels).tolist()) - {0} - set(segment.objects))
        if unknown:
            raise DatasetError("%s: object id(s) %s are not in object_classes of segment %s" % (
                annotation_path(root, split, segment.name, frame), unknown, segment.name))


def _folder_name(entry) -> str | None:
    try:
        return sequence_folder(int(entry["seq_id"]), entry["video"], entry["verb"], entry["noun"])
    except (TypeError, ValueError, KeyError):
        return None  # a malformed entry: Segment.from_json names what is wrong with it


def check_subset_ids(root, split: str, entries: list) -> dict:
    """val_human / val_novel address sequences of the val split by seq_id (their folders are val's): every
    sequence they name must be in ROOT's val folders (frames or masks: scoring needs the masks only) and, where
    val.json lists the same seq_id, be the same sequence there. Returns {entry index: reason} of the entries
    that fail (an empty dict when all are fine)."""
    path = image_set_path(root, split)
    val_path = image_set_path(root, "val")
    val_names = {}
    if val_path.is_file():
        for entry in parse_image_set(read_json(val_path), val_path):
            name = _folder_name(entry) if isinstance(entry, dict) else None
            if name is not None:
                val_names[int(entry["seq_id"])] = name
    bad = {}
    for index, entry in enumerate(entries):
        name = _folder_name(entry) if isinstance(entry, dict) else None
        if name is None:
            continue
        seq_id = int(entry["seq_id"])
        if seq_id in val_names and val_names[seq_id] != name:
            bad[index] = "seq_id %d is %s in %s but %s in %s" % (seq_id, name, path.name, val_names[seq_id],
                                                                 val_path.name)
        elif not any((Path(root) / tree / split_folder(split) / name).is_dir() for tree in (IMAGES, ANNOTATIONS)):
            bad[index] = "seq_id %d (%s) is not in %s nor %s" % (
                seq_id, name, Path(root) / IMAGES / split_folder(split), Path(root) / ANNOTATIONS / split_folder(split))
    return bad


SUBSET_SPLITS = ("val_human", "val_novel")  # ActionVOS's relabelled subsets of val, addressed by val's seq_ids


def read_split(root, split: str, skip_bad: bool = False, check_files: bool = True,
               need_masks: bool = True) -> SplitData:
    """All segments of one split, validated; bad ones raise DatasetError, or are skipped and reported."""
    path = image_set_path(root, split)
    entries = parse_image_set(read_json(path), path)
    result = SplitData(segments=[])
    subset_problems = check_subset_ids(root, split, entries) if split in SUBSET_SPLITS else {}
    if subset_problems and not skip_bad:
        reasons = [subset_problems[i] for i in sorted(subset_problems)]
        raise DatasetError("%s names %d sequence(s) this data set does not hold as numbered: %s%s. These files "
                           "refer to the official val numbering: import val with `actiseg import visor` (the whole "
                           "VISOR val split) into this root before placing them in %s"
                           % (path, len(reasons), "; ".join(reasons[:10]),
                              " (and %d more)" % (len(reasons) - 10) if len(reasons) > 10 else "",
                              Path(root) / IMAGE_SETS))
    seen = set()
    for index, entry in enumerate(entries):
        source = "%s[%d]" % (path, index)
        try:
            if index in subset_problems:
                raise DatasetError("%s: %s" % (source, subset_problems[index]))
            segment = Segment.from_json(entry, source)
            if segment.name in seen:
                raise DatasetError("%s: duplicate segment %s" % (source, segment.name))
            if check_files:
                check_segment_files(root, split, segment, need_masks=need_masks)
        except DatasetError as err:
            if not skip_bad:
                raise
            result.skipped.append(Skipped(path=source, reason=str(err)))
            continue
        seen.add(segment.name)
        result.segments.append(segment)
    return result


class LayoutWriter:
    """Writes segments into the ActionVOS layout; close() writes one ImageSets file per split added."""

    def __init__(self, root):
        self.root = Path(root)
        self._entries: dict = {}

    def add(self, split: str, segment: Segment, images, labels, weights=None) -> None:
        """images: list of (H, W, 3) uint8 RGB; labels / weights: lists of (H, W) uint8, one per sparse frame."""
        if len(images) != len(segment.sparse_frames) or len(labels) != len(segment.sparse_frames):
            raise ValueError("segment %s: %d frames listed, %d images and %d masks given" % (
                segment.name, len(segment.sparse_frames), len(images), len(labels)))
        for index, frame in enumerate(segment.sparse_frames):
            write_image(image_path(self.root, split, segment.name, frame), images[index])
            write_label_png(annotation_path(self.root, split, segment.name, frame), labels[index])
            if weights is not None:
                write_label_png(weight_path(self.root, split, segment.name, frame), weights[index])
        self._entries.setdefault(split, []).append(segment.to_json())

    def add_entry(self, split: str, segment: Segment) -> None:
        """Record a segment whose files are already in place (e.g. copied by the noise injector)."""
        self._entries.setdefault(split, []).append(segment.to_json())

    def close(self) -> None:
        for split, entries in self._entries.items():
            write_json(image_set_path(self.root, split), entries)


# --- demo / inference-only layout ---------------------------------------------------------------------

@dataclass
class DemoVideo:
    name: str
    frames: list  # frame stems, e.g. 'frame_0000002521'
    expressions: dict  # {expression key: {"exp": prompt, "obj_id": ..., ...}}


def read_demo_layout(root, expression_file: str = DEMO_EXPRESSIONS, check_files: bool = True) -> list:
    """Videos of an inference-only layout (or a `*_meta_expressions_promptaction.json`)."""
    path = Path(root) / IMAGE_SETS / expression_file
    data = read_json(path)
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise DatasetError('%s: expected {"videos": {...}}' % path)
    result = []
    for name, video in videos.items():
        if not isinstance(video, dict) or not isinstance(video.get("expressions"), dict) \
                or not isinstance(video.get("frames"), list):
            raise DatasetError("%s: video %s needs 'expressions' (object) and 'frames' (list)" % (path, name))
        for key, expression in video["expressions"].items():
            if not isinstance(expression, dict) or not isinstance(expression.get("exp"), str):
                raise DatasetError("%s: video %s expression %s has no text 'exp'" % (path, name, key))
        frames = [os.path.splitext(str(f))[0] for f in video["frames"]]
        if check_files:
            for frame in frames:
                frame_file = image_path(root, "val", name, frame + ".jpg")
                if not frame_file.is_file():
                    raise DatasetError("%s: frame listed in %s is missing" % (frame_file, path))
        result.append(DemoVideo(name=name, frames=frames, expressions=video["expressions"]))
    return result


def write_demo_layout(root, videos) -> None:
    """videos: iterable of (DemoVideo, images); images are (H, W, 3) uint8 RGB, one per frame."""
    out = {}
    for video, images in videos:
        for stem, rgb in zip(video.frames, images):
            write_image(image_path(root, "val", video.name, stem + ".jpg"), rgb)
        out[video.name] = {"expressions": video.expressions, "frames": list(video.frames)}
    write_json(Path(root) / IMAGE_SETS / DEMO_EXPRESSIONS, {"videos": out})
