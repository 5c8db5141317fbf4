"""The rules of ActionVOS's VISOR preparation (../shared/spec/visor-import.md), as plain functions.

Everything here works on in-memory values (VISOR entity lists, EPIC-100 rows, COCO boxes); reading files and
writing the layout is actiseg_ros.data.import_visor's job. Pixel rules follow the official script exactly:
polygons are rasterised with OpenCV fillPoly at 1920x1080 (int32 truncation, 8-connected outlines, even-odd
inside one call), masks and weight maps are resized with Pillow NEAREST, images with OpenCV INTER_LINEAR.

Where the official script silently misbehaves, these functions raise VisorError naming the item instead
(a frame without annotation record, repeated narration ids, non-integer or negative HOS boxes, more than 255
entities in a frame or objects in an action).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

FULL_SIZE = (1920, 1080)  # (width, height) of VISOR frames and of every label canvas
OUT_SIZE = (854, 480)  # (width, height) written
HAND_NAMES = ("left hand", "right hand")
IN_CONTACT = 2  # VISOR-HOS category of the object a hand touches (1 = hand, unused)
MAX_LABEL = 255  # uint8 canvases and palette PNGs


class VisorError(ValueError):
    """VISOR / EPIC-100 input the import refuses; the message names the item."""


# --- actions and frames --------------------------------------------------------------------------------

def narration_key(narration_id: str) -> tuple:
    """`P01_11_10` -> (1, 11, 10): actions are ordered by the numbers in their id, not as strings."""
    return tuple(int(n) for n in re.findall(r"\d+", narration_id))


def sort_actions(rows: list, video: str) -> list:
    """A video's EPIC-100 rows in narration order; repeated narration ids are refused (the official
    comparator never says "equal", so their order would be arbitrary)."""
    ordered = sorted(rows, key=lambda row: narration_key(row["narration_id"]))
    for before, after in zip(ordered, ordered[1:]):
        if narration_key(before["narration_id"]) == narration_key(after["narration_id"]):
            raise VisorError("video %s: narration ids %s and %s repeat the same numbers; their order is undefined"
                             % (video, before["narration_id"], after["narration_id"]))
    return ordered


def frame_number(ek_name: str) -> int:
    """`frame_0000000954.jpg` -> 954."""
    match = re.fullmatch(r"frame_(\d+)\.jpg", ek_name)
    if not match:
        raise VisorError("frame name %r is not frame_NNNNNNNNNN.jpg" % ek_name)
    return int(match.group(1))


def action_frames(ek_frames: list, start: int, stop: int) -> list:
    """The sorted EK frame names with start <= number <= stop (the action's sparse frames)."""
    return [f for f in sorted(ek_frames) if start <= frame_number(f) <= stop]


def invert_mapping(mapping: dict) -> tuple:
    """{visor: ek} -> ({ek: visor}, [ek names two VISOR frames map to]); the later key wins, as officially."""
    inverse, collisions = {}, []
    for visor, ek in mapping.items():
        if ek in inverse:
            collisions.append(ek)
        inverse[ek] = visor
    return inverse, collisions


def noun_classes(row: dict) -> set:
    """The row's `all_noun_classes` (a Python list literal such as `[18, 2]`) as a set of ints."""
    try:
        value = ast.literal_eval(row["all_noun_classes"])
        return {int(v) for v in (value if isinstance(value, (list, tuple)) else [value])}
    except (ValueError, SyntaxError, TypeError):
        raise VisorError("narration %s: all_noun_classes %r is not a list of integers"
                         % (row.get("narration_id"), row.get("all_noun_classes"))) from None


# --- entities and polygons -----------------------------------------------------------------------------

@dataclass
class Entity:
    name: str
    class_id: int
    polygons: list  # int32 arrays (n, 2); an empty VISOR polygon is the single point (0, 0)
    has_segments: bool  # the `segments` list is non-empty (even if its polygons are empty)


def visor_polygons(segments, where: str) -> list:
    """VISOR `segments` ([[x, y], ...] per polygon, floats) -> int32 point arrays, truncated toward zero."""
    if not isinstance(segments, list):
        raise VisorError("%s: segments must be a list of polygons" % where)
    out = []
    for index, polygon in enumerate(segments):
        if not isinstance(polygon, list):
            raise VisorError("%s: polygon %d is not a list of points" % (where, index))
        if not polygon:
            out.append(np.zeros((1, 2), np.int32))  # the official script draws pixel (0, 0) for it
            continue
        try:
            points = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError):
            raise VisorError("%s: polygon %d has a point that is not [x, y] numbers" % (where, index)) from None
        if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
            raise VisorError("%s: polygon %d must be a list of finite [x, y] points" % (where, index))
        out.append(points.astype(np.int32))  # C cast: truncation toward zero, as the official astype
    return out


def hos_polygons(segmentation, where: str) -> list:
    """A COCO polygon segmentation ([x1, y1, x2, y2, ...] lists) -> int32 point arrays, truncated."""
    if not isinstance(segmentation, list):
        raise VisorError("%s: segmentation must be a list of flat polygons (RLE is not used by VISOR-HOS)" % where)
    out = []
    for index, flat in enumerate(segmentation):
        if not isinstance(flat, list) or not flat or len(flat) % 2:
            raise VisorError("%s: polygon %d must be a non-empty flat list [x1, y1, x2, y2, ...]" % (where, index))
        try:
            points = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise VisorError("%s: polygon %d holds a value that is not a number" % (where, index)) from None
        if not np.isfinite(points).all():
            raise VisorError("%s: polygon %d holds a value that is not finite" % (where, index))
        out.append(points.astype(np.int32))
    return out


def hos_box(bbox, where: str) -> tuple:
    """COCO [x, y, w, h] -> (row slice, column slice). Must be non-negative integers: the official slicing
    breaks on floats and wraps on negative values."""
    if not isinstance(bbox, list) or len(bbox) != 4 \
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in bbox):
        raise VisorError("%s: bbox %r must be four integers [x, y, w, h]" % (where, bbox))
    if any(v < 0 for v in bbox):
        raise VisorError("%s: bbox %r has a negative value" % (where, bbox))
    x, y, w, h = bbox
    return slice(y, y + h), slice(x, x + w)


def fill(canvas: np.ndarray, polygons: list, value: int) -> None:
    """OpenCV fillPoly, one call per entity (even-odd between its polygons), no sub-pixel shift."""
    if polygons:
        cv2.fillPoly(canvas, polygons, int(value), lineType=cv2.LINE_8)


def polygon_bounds(polygons: list) -> tuple | None:
    """(row slice, column slice) holding every pixel fillPoly may set (its points, clipped), or None."""
    if not polygons:
        return None
    points = np.concatenate(polygons)
    x0, y0 = np.maximum(points.min(axis=0), 0)
    x1 = min(int(points[:, 0].max()), FULL_SIZE[0] - 1)
    y1 = min(int(points[:, 1].max()), FULL_SIZE[1] - 1)
    if x0 > x1 or y0 > y1:
        return None
    return slice(int(y0), y1 + 1), slice(int(x0), x1 + 1)


def full_canvas() -> np.ndarray:
    return np.zeros((FULL_SIZE[1], FULL_SIZE[0]), np.uint8)


def resize_nearest(canvas: np.ndarray) -> np.ndarray:
    """1920x1080 -> 854x480 with Pillow NEAREST (the official resampler for masks and weights)."""
    return np.array(Image.fromarray(canvas).resize(OUT_SIZE, Image.NEAREST))


def resize_image(bgr: np.ndarray) -> np.ndarray:
    """A frame -> 854x480 with OpenCV INTER_LINEAR (the official resampler for images)."""
    return cv2.resize(bgr, OUT_SIZE, interpolation=cv2.INTER_LINEAR)


# --- one frame ------------------------------------------------------------------------------------------

@dataclass
class FrameData:
    """What every action containing this frame needs, computed once per frame."""

    entities: list  # Entity, annotation order
    hos: bool  # the frame has an in-contact (category 2) row in the split's HOS file
    boxed_names: set  # names of entities visible inside an in-contact box (the hand-set rule)
    touches_box: list  # per entity: its own filled pixels meet a box (the HOS weight rule)
    small_labels: np.ndarray  # 480x854: 1 + index of the top entity, 0 none
    small_box: np.ndarray | None  # 480x854 bool: inside some box (HOS frames)
    small_contact: np.ndarray | None  # 480x854 uint8: 2 on in-contact segmentations (HOS frames)
    notes: list = field(default_factory=list)


def frame_data(entities: list, hos_rows: list, where: str) -> FrameData:
    """entities: Entity list; hos_rows: [(box slices, polygons)] of the frame's category-2 HOS rows."""
    if len(entities) > MAX_LABEL:
        raise VisorError("%s: %d entities; the official uint8 label canvas wraps above %d"
                         % (where, len(entities), MAX_LABEL))
    labels = full_canvas()
    for index, entity in enumerate(entities):
        fill(labels, entity.polygons, index + 1)
    boxed, touches = set(), [False] * len(entities)
    small_box = small_contact = None
    if hos_rows:
        for rows, cols, _ in hos_rows:
            boxed |= {entities[v - 1].name for v in np.unique(labels[rows, cols]).tolist() if v}
        inside = full_canvas()
        contact = full_canvas()
        for rows, cols, polygons in hos_rows:
            inside[rows, cols] = 1
            fill(contact, polygons, 2)
        scratch = full_canvas()
        for index, entity in enumerate(entities):
            bounds = polygon_bounds(entity.polygons)
            if bounds is None:
                continue
            fill(scratch, entity.polygons, 1)
            touches[index] = bool((scratch[bounds] & inside[bounds]).any())
            scratch[bounds] = 0
        small_box = resize_nearest(inside).astype(bool)
        small_contact = resize_nearest(contact)
    return FrameData(entities=entities, hos=bool(hos_rows), boxed_names=boxed, touches_box=touches,
                     small_labels=resize_nearest(labels), small_box=small_box, small_contact=small_contact)


# --- one action -----------------------------------------------------------------------------------------

@dataclass
class ActionObjects:
    ids: dict  # name -> object id
    classes: dict  # name -> class_id (last seen wins)
    flags: dict  # name -> (handbox, narration, positive)


def action_objects(frames: list, row_classes: set, where: str) -> ActionObjects | None:
    """The objects of an action from its frames' FrameData (None: no object, the action is dropped)."""
    classes = {}
    hand_set = set()
    for data in frames:
        for entity in data.entities:
            if entity.has_segments:
                classes[entity.name] = entity.class_id
            if entity.name in HAND_NAMES:
                hand_set.add(entity.name)
        hand_set |= data.boxed_names
    if not classes:
        return None
    names = sorted(classes)  # code-point order
    if len(names) > MAX_LABEL:
        raise VisorError("%s: %d objects; palette masks hold at most %d" % (where, len(names), MAX_LABEL))
    flags = {}
    for name in names:
        handbox = int(name in hand_set)
        narration = int(classes[name] in row_classes)
        flags[name] = (handbox, narration, int(bool(handbox or narration)))
    return ActionObjects(ids={n: i + 1 for i, n in enumerate(names)}, classes=classes, flags=flags)


def object_classes(objects: ActionObjects) -> dict:
    """The ImageSets `object_classes` field, ids ascending."""
    out = {}
    for name, object_id in sorted(objects.ids.items(), key=lambda kv: kv[1]):
        handbox, narration, positive = objects.flags[name]
        out[str(object_id)] = {"name": name, "class_id": objects.classes[name], "handbox": handbox,
                               "narration": narration, "positive": positive}
    return out


def action_mask(data: FrameData, objects: ActionObjects) -> np.ndarray:
    """480x854 object ids: every entity with polygons painted in order (each is an object of the action)."""
    lut = np.zeros(256, np.uint8)
    for index, entity in enumerate(data.entities):
        if entity.name in objects.ids:
            lut[index + 1] = objects.ids[entity.name]
    return lut[data.small_labels]


def action_weights(data: FrameData, objects: ActionObjects) -> np.ndarray:
    """480x854 action-guided weights in {1, 2, 3, 4} (spec section 7, including its surprises)."""
    weights = full_canvas()
    for index, entity in enumerate(data.entities):
        if entity.name not in objects.ids:
            continue  # no polygons in this frame and no object of the action: draws nothing
        handbox, narration, positive = objects.flags[entity.name]
        if narration:
            fill(weights, entity.polygons, 2)
        elif data.hos:
            if not data.touches_box[index]:
                fill(weights, entity.polygons, 3)
        elif not positive:
            fill(weights, entity.polygons, 3)
    # Nearest resizing picks one source pixel per output pixel, so the per-pixel steps below give the same
    # result at 854x480 as at full size followed by the resize.
    small = resize_nearest(weights)
    if data.hos:
        small = np.where(data.small_box, small * 2, small).astype(np.uint8)
        small = np.where(small == 0, data.small_contact, small).astype(np.uint8)
    small[small == 0] = 1
    return small
