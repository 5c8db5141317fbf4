"""`actiseg import coco`: a COCO instance-mask export plus narrations -> a labelled ActionVOS-layout split.

    actiseg import coco ANNOTATIONS.json --images DIR --narrations CSV --out ROOT [--split train] [--skip-bad]

Users label frames in CVAT, Label Studio or LabelMe and export COCO instance masks (polygons, uncompressed or
compressed RLE; checked and decoded by actiseg_ros.data.coco with pycocotools). `file_name` is resolved
against --images; a frame's sequence is the folder holding its image (the layout `actiseg import bag`
writes: <sequence>/<frame>.jpg), and the narrations CSV (header `sequence,narration`) gives each sequence's
action. What is written is what the synthetic generator writes (`actiseg synth`), so `actiseg train`,
`actiseg corrupt` and `actiseg eval` read it:

- objects of a sequence: its annotations' category names (lower case, `_` read as a space), keyed by name as
  in ActionVOS (two instances of one category in a frame are one object); id = 1 + rank of the name in code
  point order (ActionVOS's rule); masks painted in annotation order, later ones on top;
- labels as ActionVOS: handbox = a hand, or in contact with a hand in some annotated frame of the sequence;
  narration = the narration names the object's class (any taxonomy synonym, whole words, plurals: the
  node's action parsing); positive = handbox or narration. Contact is the annotation attribute `in_contact`
  (or `contact`, `hand_contact`, `handbox`; CVAT exports custom attributes under `attributes`) when the file
  has one on any annotation; otherwise a hand's mask touching the object's mask after dilating the hand by
  CONTACT_RADIUS (hand-traced outlines of a hand and what it holds leave a gap of a pixel or two, and RLE
  masks from a mask tool meet exactly; the radius closes that gap without reaching objects merely near);
- weight maps: the generator's classes (synth_labels.weight_lut: 1 other, 2 one cue, 3 negative, 4 both);
- class ids: the taxonomy's (EPIC-KITCHENS ids) for known names; a name the taxonomy does not know (e.g.
  "spatula") gets a new id, stable across imports (the root's classes.json first, else a hash of the name
  from NEW_CLASS_BASE up), so new objects are learnable and keep their id;
- `classes.json` ({class_id: [names]}, the vocabulary file `actiseg corrupt --vocabulary` reads) and
  `vocabulary.json` (sorted object names, what `actiseg export --vocabulary` puts in the model card) are
  updated in ROOT; `import_coco_<split>.json` reports counts, the contact source and every skip.

Sequence folders named like ActionVOS ones (`%08d_<video>_<verb>_<noun>`, as `actiseg synth` and ActionVOS
write them) keep their name; others get the next free seq_id, the folder name as video, the narration's
first word as verb and its first named non-hand object as noun.

Bad input (unknown image, missing category, empty or malformed polygon, a mask outside its image, a sequence
without narration, duplicate ids, an image file that is missing or of another size) is an error naming the
item; with --skip-bad the frame (or sequence) concerned is left out and listed in the report instead. The
split is written into a temporary folder under ROOT and moved into place only when complete, so a failed
import leaves ROOT as it was.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from actiseg_ros.data import actionvos, taxonomy
from actiseg_ros.data.coco import (CocoError, ItemError, Problem, contact_attribute, contact_attribute_present,
                                   decode_segmentation, index_coco, object_name)
from actiseg_ros.data.synth_labels import weight_lut, weight_map
from actiseg_ros.ros.action_parsing import find_names, normalize

CONTACT_RADIUS_FRACTION = 0.005  # of the image's longer side: 4 px at ActionVOS's 854x480
MIN_CONTACT_RADIUS = 2  # pixels
HAND_WORDS = frozenset(taxonomy.HAND_NAMES) | {"hand", "hands"}
NEW_CLASS_BASE = 10000  # new class ids: NEW_CLASS_BASE + hash % NEW_CLASS_SPAN, far from EPIC's 0..300
NEW_CLASS_SPAN = 90000
CLASSES_FILE = "classes.json"
VOCABULARY_FILE = "vocabulary.json"
ACTIONVOS_NAME = re.compile(r"(\d{8})_(.+)_([^_]+)_([^_]+)")
JPEG_SUFFIXES = (".jpg", ".jpeg")


def report_path(root, split: str) -> Path:
    return Path(root) / ("import_coco_%s.json" % split)


# --- names and classes ---------------------------------------------------------------------------

def is_hand(name: str) -> bool:
    return name in HAND_WORDS


def known_class(name: str):
    """The taxonomy class of a name, or None."""
    try:
        return taxonomy.class_of_name(name)
    except KeyError:
        return None


def new_class_id(name: str, taken: set) -> int:
    """A stable id for a name the taxonomy does not know: a hash of the name, the next free one on a clash."""
    offset = zlib.crc32(name.encode("utf-8")) % NEW_CLASS_SPAN
    for step in range(NEW_CLASS_SPAN):
        class_id = NEW_CLASS_BASE + (offset + step) % NEW_CLASS_SPAN
        if class_id not in taken:
            return class_id
    raise CocoError("no free class id left for %r" % name)  # unreachable below 90000 new names


def read_class_table(root) -> dict:
    """{name: class_id} recorded in ROOT/classes.json by an earlier import (empty when there is none)."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        return {}
    data = actionvos.read_json(path)
    if not isinstance(data, dict):
        raise CocoError("%s: expected an object {class_id: [names]}" % path)
    table = {}
    for key, names in data.items():
        try:
            class_id = int(key)
        except (TypeError, ValueError):
            raise CocoError("%s: class id %r is not an integer" % (path, key)) from None
        if not isinstance(names, list):
            raise CocoError("%s: class %s must map to a list of names" % (path, key))
        for name in names:
            table[object_name(name)] = class_id
    return table


def assign_classes(names, recorded: dict) -> dict:
    """{name: class_id}: the taxonomy's id for known names, else the recorded one, else a new stable id."""
    out = {}
    taken = {c.class_id for c in taxonomy.ALL_CLASSES} | set(recorded.values())
    for name in sorted(names):
        cls = known_class(name)
        if cls is not None:
            out[name] = cls.class_id
        elif name in recorded:
            out[name] = recorded[name]
        else:
            out[name] = new_class_id(name, taken)
            taken.add(out[name])
    return out


def class_key(name: str) -> str:
    """A file-name-safe key for a name (the taxonomy key when known): ActionVOS folder names carry the noun."""
    cls = known_class(name)
    if cls is not None:
        return cls.key
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "object"


def aliases(name: str) -> set:
    """Every name the narration may use for this object: its class's names when the taxonomy knows it."""
    cls = known_class(name)
    return {name} | (set(cls.names) if cls is not None else set())


def named_objects(narration: str, names) -> set:
    """The objects (by name) whose class the narration names, matched as the node's action parsing does."""
    owners: dict = {}
    for name in names:
        for alias in aliases(name):
            owners.setdefault(normalize(alias), set()).add(name)
    found = set()
    for alias in find_names(narration, sorted({a for n in names for a in aliases(n)})):
        found |= owners.get(normalize(alias), set())
    return found


# --- narrations ----------------------------------------------------------------------------------

def read_narrations(path) -> dict:
    """{sequence: narration} from a CSV with header `sequence,narration` (UTF-8, any further columns ignored)."""
    path = Path(path)
    if not path.is_file():
        raise CocoError("%s: narrations file not found" % path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as err:
        raise CocoError("%s: not a UTF-8 CSV file (%s)" % (path, err)) from None
    if not rows:
        raise CocoError("%s: empty; expected a header `sequence,narration` and one row per sequence" % path)
    header = [h.strip().lower() for h in rows[0]]
    if "sequence" not in header or "narration" not in header:
        raise CocoError("%s: the header must name the columns `sequence` and `narration`, got %s" % (path, rows[0]))
    seq_col, text_col = header.index("sequence"), header.index("narration")
    out = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(seq_col, text_col):
            raise CocoError("%s line %d: expected the columns %s" % (path, line, ", ".join(rows[0])))
        sequence, narration = row[seq_col].strip(), " ".join(row[text_col].split())
        if not sequence or not narration:
            raise CocoError("%s line %d: empty sequence or narration" % (path, line))
        if sequence in out and out[sequence] != narration:
            raise CocoError("%s line %d: sequence %s has two different narrations (%r and %r)"
                            % (path, line, sequence, out[sequence], narration))
        out[sequence] = narration
    return out


# --- contact -------------------------------------------------------------------------------------

def contact_radius(height: int, width: int) -> int:
    return max(MIN_CONTACT_RADIUS, int(round(CONTACT_RADIUS_FRACTION * max(height, width))))


def touching(hand: np.ndarray, masks: dict, radius: int) -> set:
    """Names whose mask meets the hand mask dilated by `radius` pixels (a disc)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = cv2.dilate(hand.astype(np.uint8), kernel) > 0
    return {name for name, mask in masks.items() if (grown & mask).any()}


# --- frames and sequences ------------------------------------------------------------------------

@dataclass
class Frame:
    image_id: int
    path: Path  # the image file
    sequence: str
    name: str  # output frame file name (.jpg)
    height: int
    width: int
    names: list  # object name of each annotation, in annotation order
    annotations: list  # the COCO annotations (decoded again when written: one frame's masks in memory at a time)
    contacts: set  # object names in contact with a hand in this frame


@dataclass
class Sequence:
    name: str  # input folder name
    frames: list
    narration: str


def frame_number(name: str, fallback: int) -> int:
    digits = re.findall(r"\d+", os.path.splitext(name)[0])
    return int(digits[-1]) if digits else fallback


def read_frame(image_id: int, entry: dict, annotations: list, categories: dict, images_dir: Path,
               use_attributes: bool) -> Frame:
    """One annotated image: file checks, masks decoded and checked, contacts. ItemError names the image or
    annotation."""
    item = "image id %d (%s)" % (image_id, entry["file_name"])
    path = images_dir / entry["file_name"]
    if not path.is_file():
        raise ItemError(item, "image file %s not found" % path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as err:  # PIL raises several unrelated types for corrupt files
        raise ItemError(item, "unreadable image %s (%s)" % (path, err)) from None
    if (entry.get("width", width), entry.get("height", height)) != (width, height):
        raise ItemError(item, "the COCO entry says %dx%d, the file %s is %dx%d"
                        % (entry.get("width", width), entry.get("height", height), path, width, height))
    masks, contacts = [], set()
    for annotation in annotations:
        where = "annotation id %d of %s" % (annotation["id"], item)
        try:
            mask = decode_segmentation(annotation.get("segmentation"), height, width)
            contact = contact_attribute(annotation)
        except CocoError as err:
            raise ItemError(where, str(err)) from None
        name = categories[annotation["category_id"]]
        masks.append((name, mask))  # for the contact test; dropped with this function's frame
        if use_attributes and contact:
            contacts.add(name)
    if not use_attributes:
        hands = [m for n, m in masks if is_hand(n)]
        others = {}
        for name, mask in masks:
            if not is_hand(name):
                others[name] = others[name] | mask if name in others else mask
        for hand in hands:
            contacts |= touching(hand, others, contact_radius(height, width))
    stem = os.path.splitext(path.name)[0]
    return Frame(image_id=image_id, path=path, sequence=path.parent.name, name=stem + ".jpg", height=height,
                 width=width, names=[n for n, _ in masks], annotations=list(annotations), contacts=contacts)


def label_image(frame: Frame, ids: dict) -> np.ndarray:
    """(H, W) uint8 object ids, annotations painted in file order (later ones on top, as ActionVOS paints)."""
    labels = np.zeros((frame.height, frame.width), np.uint8)
    for name, annotation in zip(frame.names, frame.annotations):
        labels[decode_segmentation(annotation["segmentation"], frame.height, frame.width)] = ids[name]
    return labels


def sequence_flags(sequence: Sequence) -> dict:
    """{name: (handbox, narration, positive)} of a sequence's objects (ActionVOS's rule, see the module doc)."""
    names = sorted({n for f in sequence.frames for n in f.names})
    touched = set().union(*(f.contacts for f in sequence.frames))
    named = named_objects(sequence.narration, names)
    flags = {}
    for name in names:
        handbox = int(is_hand(name) or name in touched)
        narration = int(name in named)
        flags[name] = (handbox, narration, int(bool(handbox or narration)))
    return flags


def make_segment(sequence: Sequence, seq_id: int, flags: dict, classes: dict, split: str) -> actionvos.Segment:
    """The ImageSets entry of a sequence; an ActionVOS-style folder name keeps its seq_id, video, verb, noun."""
    names = sorted(flags)
    if len(names) > 255:
        raise CocoError("sequence %s: %d objects; palette masks hold at most 255" % (sequence.name, len(names)))
    objects = {}
    for index, name in enumerate(names):
        handbox, narration, positive = flags[name]
        objects[index + 1] = actionvos.ObjectInfo(id=index + 1, name=name, class_id=classes[name], handbox=handbox,
                                                  narration=narration, positive=positive)
    frames = [f.name for f in sequence.frames]
    numbers = [frame_number(f, i) for i, f in enumerate(frames)]
    match = ACTIONVOS_NAME.fullmatch(sequence.name)
    if match:
        seq_id, video, verb, noun = int(match.group(1)), match.group(2), match.group(3), match.group(4)
    else:
        video = re.sub(r"[^A-Za-z0-9-]+", "-", sequence.name).strip("-") or "video"
        words = normalize(sequence.narration).split()
        verb = re.sub(r"[^a-z0-9-]+", "-", words[0]) if words else "act"
        found = find_names(sequence.narration, sorted({a for n in names for a in aliases(n)}))  # narration order
        nouns = [n for alias in found for n in names if not is_hand(n) and alias in aliases(n)]
        noun = class_key(nouns[0]) if nouns else "object"
    try:
        verb_class = taxonomy.verb(verb).verb_class
    except KeyError:
        verb_class = -1
    noun_class = next((classes[n] for n in names if class_key(n) == noun), -1)
    if noun_class == -1:
        try:
            noun_class = taxonomy.object_class(noun).class_id
        except KeyError:
            pass
    extra = {flag: False for flag in actionvos.EVAL_FLAGS} if split in ("val_human", "val_novel") else {}
    return actionvos.Segment(seq_id=seq_id, video=video, start=min(numbers), end=max(numbers),
                             narration=sequence.narration, verb=verb, verb_class=verb_class, noun=noun,
                             noun_class=noun_class, sparse_frames=frames, objects=objects, extra=extra)


# --- the import ----------------------------------------------------------------------------------

@dataclass
class ImportResult:
    segments: list
    skipped: list  # Problem
    contact_source: str  # 'attributes' | 'masks'
    classes: dict  # name -> class_id of this split's objects
    unannotated: list  # file names of images without annotations (left out)
    unused_narrations: list  # narration rows naming no annotated sequence


def _fail_or_skip(problem: Problem, skip_bad: bool, skipped: list) -> None:
    if not skip_bad:
        raise CocoError(problem.message())
    skipped.append(problem)


def plan_import(data, source, images_dir, narrations: dict, split: str = "train", skip_bad: bool = False,
                recorded_classes: dict | None = None, first_seq_id: int = 1) -> tuple:
    """Everything but the writing: (ImportResult, [(Segment, Sequence)]). Raises CocoError at the first
    problem, or with skip_bad leaves out what it concerns and lists it in ImportResult.skipped."""
    index = index_coco(data, source)
    images_dir = Path(images_dir)
    skipped: list = []
    bad_frames = set()
    for problem in index.problems:
        _fail_or_skip(problem, skip_bad, skipped)
        if problem.unit[0] == "frame":
            bad_frames.add(problem.unit[1])
    use_attributes = any(contact_attribute_present(a) for anns in index.annotations.values() for a in anns)
    frames = []
    unannotated = []
    for image_id, entry in sorted(index.images.items()):
        if image_id in bad_frames:
            continue
        annotations = index.annotations.get(image_id, [])
        if not annotations:
            unannotated.append(entry["file_name"])
            continue
        try:
            frames.append(read_frame(image_id, entry, annotations, index.categories, images_dir, use_attributes))
        except ItemError as err:
            _fail_or_skip(Problem(("frame", image_id), err.item, err.reason), skip_bad, skipped)
    by_sequence: dict = {}
    for frame in frames:
        by_sequence.setdefault(frame.sequence, []).append(frame)
    sequences = []
    for name in sorted(by_sequence):
        members = sorted(by_sequence[name], key=lambda f: (frame_number(f.name, 0), f.name))
        names = [f.name for f in members]
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            _fail_or_skip(Problem(("sequence", name), "sequence %s" % name,
                                  "two images become frame %s (same name, other suffix)" % duplicate),
                          skip_bad, skipped)
            continue
        if name not in narrations:
            _fail_or_skip(Problem(("sequence", name), "sequence %s" % name,
                                  "no narration in the narrations file (%d frames annotated)" % len(members)),
                          skip_bad, skipped)
            continue
        sequences.append(Sequence(name=name, frames=members, narration=narrations[name]))
    names = {n for s in sequences for f in s.frames for n in f.names}
    classes = assign_classes(names, recorded_classes or {})
    planned, used_ids = [], set()
    next_id = first_seq_id
    for sequence in sequences:
        if not ACTIONVOS_NAME.fullmatch(sequence.name):
            while next_id in used_ids:
                next_id += 1
            seq_id = next_id
            next_id += 1
        else:
            seq_id = int(sequence.name[:8])
        try:
            segment = make_segment(sequence, seq_id, sequence_flags(sequence), classes, split)
        except CocoError as err:
            _fail_or_skip(Problem(("sequence", sequence.name), "sequence %s" % sequence.name, str(err)),
                          skip_bad, skipped)
            continue
        used_ids.add(segment.seq_id)
        planned.append((segment, sequence))
    folders = [s.name for s, _ in planned]
    for folder in sorted({f for f in folders if folders.count(f) > 1}):
        raise CocoError("two sequences would both be written as %s (same seq_id)" % folder)
    used = {n for s, _ in planned for n in (o.name for o in s.objects.values())}
    result = ImportResult(segments=[s for s, _ in planned], skipped=skipped,
                          contact_source="attributes" if use_attributes else "masks",
                          classes={n: c for n, c in classes.items() if n in used}, unannotated=unannotated,
                          unused_narrations=sorted(set(narrations) - set(by_sequence)))
    return result, planned


def write_frames(stage: Path, split: str, segment: actionvos.Segment, sequence: Sequence) -> None:
    """Image (JPEG bytes copied as they are; other formats re-encoded), mask and weight map of every frame."""
    ids = {info.name: object_id for object_id, info in segment.objects.items()}
    lut = weight_lut({i: (o.handbox, o.narration, o.positive) for i, o in segment.objects.items()})
    for frame in sequence.frames:
        target = actionvos.image_path(stage, split, segment.name, frame.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if frame.path.suffix.lower() in JPEG_SUFFIXES:
            shutil.copyfile(frame.path, target)
        else:
            actionvos.write_image(target, actionvos.read_image(frame.path))
        labels = label_image(frame, ids)
        actionvos.write_label_png(actionvos.annotation_path(stage, split, segment.name, frame.name), labels)
        actionvos.write_label_png(actionvos.weight_path(stage, split, segment.name, frame.name),
                                  weight_map(labels, lut))


def existing_seq_ids(root: Path) -> set:
    ids = set()
    folder = root / actionvos.IMAGE_SETS
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = actionvos.read_json(path)
        if isinstance(data, list):
            ids.update(int(e["seq_id"]) for e in data if isinstance(e, dict) and isinstance(e.get("seq_id"), int))
    return ids


def _merge_vocabulary_files(root: Path, stage: Path, classes: dict) -> None:
    """classes.json ({class_id: [names]}) and vocabulary.json (sorted names) of ROOT plus this split's."""
    table: dict = {}
    if (root / CLASSES_FILE).is_file():
        for key, names in actionvos.read_json(root / CLASSES_FILE).items():
            table.setdefault(int(key), set()).update(names)
    for name, class_id in classes.items():
        table.setdefault(class_id, set()).add(name)
    actionvos.write_json(stage / CLASSES_FILE, {str(k): sorted(v) for k, v in sorted(table.items())})
    vocabulary = set()
    if (root / VOCABULARY_FILE).is_file():
        vocabulary.update(actionvos.read_json(root / VOCABULARY_FILE))
    vocabulary.update(classes)
    actionvos.write_json(stage / VOCABULARY_FILE, sorted(vocabulary))


def import_coco(annotations_path, images_dir, narrations_path, root, split: str = "train",
                skip_bad: bool = False, overwrite: bool = False) -> dict:
    """Run the import; returns the report (also written to ROOT/import_coco_<split>.json)."""
    root = Path(root)
    data = actionvos.read_json(annotations_path)
    narrations = read_narrations(narrations_path)
    if not Path(images_dir).is_dir():
        raise CocoError("%s: --images folder not found" % images_dir)
    split_file = actionvos.image_set_path(root, split)
    if split_file.exists() and not overwrite:
        raise CocoError("%s already exists: %s holds a %s split (pass --overwrite to replace it)"
                        % (split_file, root, split))
    old = actionvos.read_split(root, split, check_files=False).segments if split_file.exists() else []
    taken = existing_seq_ids(root) - {s.seq_id for s in old}
    result, planned = plan_import(data, str(annotations_path), images_dir, narrations, split, skip_bad,
                                  read_class_table(root), first_seq_id=max(taken, default=0) + 1)
    if not planned:
        raise CocoError("%s: no sequence left to import (%d skipped)" % (annotations_path, len(result.skipped)))
    folder = actionvos.split_folder(split)
    replaced = {s.name for s in old}
    clashes = [s.name for s in result.segments
               if s.name not in replaced and (root / actionvos.IMAGES / folder / s.name).exists()]
    if clashes:
        raise CocoError("%s already holds sequence folder(s) %s of another split; import into another --out"
                        % (root / actionvos.IMAGES / folder, ", ".join(clashes[:5])))
    report = {
        "annotations": str(annotations_path), "images": str(images_dir), "narrations": str(narrations_path),
        "split": split, "sequences": len(planned), "frames": sum(len(s.sparse_frames) for s in result.segments),
        "objects": sum(len(s.objects) for s in result.segments),
        "positives": sum(o.positive for s in result.segments for o in s.objects.values()),
        "contact_source": result.contact_source,
        "contact_radius_fraction": CONTACT_RADIUS_FRACTION if result.contact_source == "masks" else None,
        "classes": {n: result.classes[n] for n in sorted(result.classes)},
        "new_classes": sorted(n for n in result.classes if known_class(n) is None),
        "unannotated_images": result.unannotated, "unused_narrations": result.unused_narrations,
        "skipped": {"count": len(result.skipped),
                    "items": [{"item": p.item, "reason": p.reason, "left_out": p.unit[0]} for p in result.skipped]},
    }
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    stage = root / (".import-coco-%s-%d" % (split, os.getpid()))
    shutil.rmtree(stage, ignore_errors=True)
    try:
        for segment, sequence in planned:
            write_frames(stage, split, segment, sequence)
        writer = actionvos.LayoutWriter(stage)
        for segment in result.segments:
            writer.add_entry(split, segment)
        writer.close()
        _merge_vocabulary_files(root, stage, result.classes)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    # Complete: replace the old split's folders (--overwrite), move the new ones into place (renames on one
    # file system), then the files that make them visible.
    for name in sorted(replaced):
        for tree in (actionvos.IMAGES, actionvos.ANNOTATIONS, actionvos.WEIGHTS):
            shutil.rmtree(root / tree / folder / name, ignore_errors=True)
    for tree in (actionvos.IMAGES, actionvos.ANNOTATIONS, actionvos.WEIGHTS):
        (root / tree / folder).mkdir(parents=True, exist_ok=True)
        for segment in result.segments:
            os.replace(stage / tree / folder / segment.name, root / tree / folder / segment.name)
    for name in (CLASSES_FILE, VOCABULARY_FILE):
        os.replace(stage / name, root / name)
    split_file.parent.mkdir(parents=True, exist_ok=True)
    os.replace(actionvos.image_set_path(stage, split), split_file)
    actionvos.write_json(report_path(root, split), report)
    shutil.rmtree(stage, ignore_errors=True)
    return report


# --- command line --------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("annotations", type=Path, help="COCO instance file (CVAT, Label Studio, LabelMe export)")
    parser.add_argument("--images", required=True, type=Path,
                        help="folder the COCO file_name entries are relative to (e.g. ROOT/JPEGImages_Sparse/val "
                             "of `actiseg import bag`)")
    parser.add_argument("--narrations", required=True, type=Path,
                        help="CSV with header sequence,narration: the action of each sequence (image folder)")
    parser.add_argument("--out", required=True, type=Path, help="ActionVOS-layout root to write the split into")
    parser.add_argument("--split", default="train", choices=("train", "val", "val_human", "val_novel"),
                        help="split to write (default train); frames of val_human / val_novel go to the val folders")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out bad frames / sequences and list them in the report instead of stopping")
    parser.add_argument("--overwrite", action="store_true", help="replace the split if ROOT already holds it")


def main(args) -> int:
    try:
        report = import_coco(args.annotations, args.images, args.narrations, args.out, args.split, args.skip_bad,
                             args.overwrite)
    except (CocoError, actionvos.DatasetError) as err:
        raise SystemExit("actiseg import coco: %s" % err) from None
    print("imported %d sequences, %d frames, %d objects (%d positive) into %s split %s; contact from %s"
          % (report["sequences"], report["frames"], report["objects"], report["positives"], args.out, args.split,
             report["contact_source"]))
    if report["new_classes"]:
        print("new object classes: %s" % ", ".join("%s (%d)" % (n, report["classes"][n])
                                                   for n in report["new_classes"]))
    if report["skipped"]["count"]:
        print("skipped %d item(s), listed in %s:" % (report["skipped"]["count"], report_path(args.out, args.split)))
        for entry in report["skipped"]["items"][:20]:
            print("  %s: %s" % (entry["item"], entry["reason"]))
    if report["unannotated_images"]:
        print("left out %d image(s) without annotations" % len(report["unannotated_images"]))
    return 0
