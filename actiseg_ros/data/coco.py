"""COCO instance files as `actiseg import coco` reads them: structure checks, and masks decoded with pycocotools.

Pure functions on the parsed JSON. Problems are reported per item (an image, an annotation, a category)
with the unit an importer could leave out instead of stopping; masks are checked before and after
pycocotools decodes them, because it trusts its input (a compressed RLE string whose runs stop short
decodes to uninitialised memory).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

COCO_HINT = "pip install 'pycocotools>=2.0.8,<3' (or the package extra: pip install 'actiseg_ros[coco]')"
CONTACT_ATTRIBUTES = ("in_contact", "contact", "hand_contact", "handbox")  # hand contact, as a CVAT attribute


class CocoError(ValueError):
    """The COCO file, an image, or the narrations are unusable as asked; the message names the item."""


class ItemError(CocoError):
    """A CocoError about one named item (an image or annotation): `item` and `reason` apart, for the report."""

    def __init__(self, item: str, reason: str):
        super().__init__("%s: %s" % (item, reason))
        self.item, self.reason = item, reason


def mask_api():
    """pycocotools.mask, imported when needed so the rest of the package works without it."""
    try:
        from pycocotools import mask
    except ModuleNotFoundError:
        raise CocoError("COCO masks need the Python package 'pycocotools', which is not installed: %s"
                        % COCO_HINT) from None
    return mask


def object_name(category_name: str) -> str:
    """A category name as an object name: lower case, `_` and runs of spaces as one space."""
    return " ".join(str(category_name).replace("_", " ").lower().split())


@dataclass
class Problem:
    """Something wrong with one item; `unit` says what --skip-bad leaves out: ('frame', image id),
    ('sequence', name) or ('annotation', id)."""

    unit: tuple
    item: str
    reason: str

    def message(self) -> str:
        return "%s: %s" % (self.item, self.reason)


@dataclass
class CocoIndex:
    images: dict  # image id -> image entry
    categories: dict  # category id -> object name
    annotations: dict  # image id -> [annotation entries], in file order
    problems: list = field(default_factory=list)


def _entries(data: dict, key: str, source) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise CocoError("%s: `%s` must be a list, got %s" % (source, key, type(value).__name__))
    return value


def _integer_id(entry, what: str, index: int, source) -> int:
    if not isinstance(entry, dict):
        raise CocoError("%s: %s[%d] is a %s, not an object" % (source, what, index, type(entry).__name__))
    value = entry.get("id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise CocoError("%s: %s[%d] has no integer `id` (got %r)" % (source, what, index, value))
    return value


def index_coco(data, source) -> CocoIndex:
    """Check the COCO structure and index it. Problems of one image, annotation or category are collected
    (CocoIndex.problems) with the unit --skip-bad would leave out; a malformed file raises CocoError."""
    if not isinstance(data, dict):
        raise CocoError("%s: expected a COCO object with images, annotations and categories" % source)
    raw = {key: _entries(data, key, source) for key in ("images", "annotations", "categories")}
    ids = {key: [_integer_id(e, key, i, source) for i, e in enumerate(entries)] for key, entries in raw.items()}
    counts = {key: {i: values.count(i) for i in set(values)} for key, values in ids.items()}
    problems = []
    categories = {}  # only categories defined once, with a name
    for category_id, entry in zip(ids["categories"], raw["categories"]):
        name = object_name(entry.get("name", ""))
        if counts["categories"][category_id] == 1 and name:
            categories[category_id] = name
    images, files = {}, {}
    for image_id, entry in zip(ids["images"], raw["images"]):
        unit, item = ("frame", image_id), "image id %d" % image_id
        file_name = entry.get("file_name")
        bad_size = [k for k in ("width", "height") if k in entry and
                    (isinstance(entry[k], bool) or not isinstance(entry[k], int) or entry[k] < 1)]
        if counts["images"][image_id] > 1:
            if not any(p.unit == unit for p in problems):  # once per id
                problems.append(Problem(unit, item, "duplicate image id (%d entries)" % counts["images"][image_id]))
        elif not isinstance(file_name, str) or not file_name.strip():
            problems.append(Problem(unit, item, "no file_name"))
        elif bad_size:
            problems.append(Problem(unit, item, "%s %r is not a positive integer" % (bad_size[0], entry[bad_size[0]])))
        elif file_name in files:
            other = files[file_name]
            problems.append(Problem(unit, item, "file_name %s is also image id %d" % (file_name, other)))
            problems.append(Problem(("frame", other), "image id %d" % other,
                                    "file_name %s is also image id %d" % (file_name, image_id)))
        else:
            files[file_name] = image_id
            images[image_id] = entry
    annotations: dict = {}
    for annotation_id, entry in zip(ids["annotations"], raw["annotations"]):
        item = "annotation id %d" % annotation_id
        image_id = entry.get("image_id")
        if isinstance(image_id, bool) or not isinstance(image_id, int) or image_id not in counts["images"]:
            problems.append(Problem(("annotation", annotation_id), item,
                                    "image_id %r is not an image of the file" % (image_id,)))
            continue
        unit = ("frame", image_id)
        category_id = entry.get("category_id")
        if counts["annotations"][annotation_id] > 1:
            problems.append(Problem(unit, item, "duplicate annotation id (%d entries)"
                                    % counts["annotations"][annotation_id]))
        elif isinstance(category_id, bool) or not isinstance(category_id, int):  # a list would not even hash
            problems.append(Problem(unit, item, "category_id %r is not an integer id" % (category_id,)))
        elif counts["categories"].get(category_id, 0) > 1:
            problems.append(Problem(unit, item, "category_id %r is defined more than once" % (category_id,)))
        elif category_id not in categories:
            reason = ("category_id %r has no name" % (category_id,) if category_id in counts["categories"]
                      else "category_id %r is not a category of the file" % (category_id,))
            problems.append(Problem(unit, item, reason))
        else:
            annotations.setdefault(image_id, []).append(entry)
    return CocoIndex(images=images, categories=categories, annotations=annotations, problems=problems)


# --- masks ---------------------------------------------------------------------------------------

def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) -> (height, width) bool mask.

    CocoError (without the item's name; the caller adds it) for an empty or malformed polygon, a polygon
    outside the image, an RLE of another size or whose counts do not cover the image, and a mask with no
    pixel."""
    api = mask_api()
    if isinstance(segmentation, list):
        if not segmentation:
            raise CocoError("empty segmentation (no polygon)")
        for k, polygon in enumerate(segmentation):
            if not isinstance(polygon, list) or not polygon:
                raise CocoError("polygon %d is empty" % k)
            if not all(_finite_number(v) for v in polygon):
                raise CocoError("polygon %d has a coordinate that is not a finite number" % k)
            if len(polygon) % 2 or len(polygon) < 6:
                raise CocoError("polygon %d has %d coordinates; needs x, y pairs of at least 3 points"
                                % (k, len(polygon)))
            xs, ys = polygon[0::2], polygon[1::2]
            if min(xs) < 0 or max(xs) > width or min(ys) < 0 or max(ys) > height:
                raise CocoError("polygon %d reaches (%g..%g, %g..%g), outside the %dx%d image"
                                % (k, min(xs), max(xs), min(ys), max(ys), width, height))
        rle = api.merge(api.frPyObjects([[float(v) for v in p] for p in segmentation], height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        size = segmentation["size"]
        if not isinstance(size, list) or len(size) != 2 or [height, width] != size:
            raise CocoError("RLE size %r is not the image's [height, width] [%d, %d]" % (size, height, width))
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise CocoError("uncompressed RLE counts must be non-negative integers")
            if sum(counts) != height * width:
                raise CocoError("uncompressed RLE counts cover %d pixels, the image has %d"
                                % (sum(counts), height * width))
            rle = api.frPyObjects({"size": size, "counts": counts}, height, width)
        elif isinstance(counts, (str, bytes)):
            rle = {"size": [height, width], "counts": counts.encode("ascii", "replace") if isinstance(counts, str)
                   else counts}
        else:
            raise CocoError("RLE counts must be a list or a string, got %s" % type(counts).__name__)
    else:
        raise CocoError("segmentation must be a list of polygons or an RLE object with size and counts")
    try:
        mask = api.decode(rle)
    except (ValueError, TypeError) as err:
        raise CocoError("RLE does not decode (%s): counts run past the image or are malformed" % err) from None
    if mask.shape != (height, width):
        raise CocoError("mask decodes to %s, not the image's %dx%d" % (mask.shape, width, height))
    if isinstance(rle["counts"], bytes):
        # pycocotools does not check that a compressed string's runs cover the image: a short one decodes to
        # uninitialised memory. A valid string is what encoding its own mask gives back.
        again = api.encode(np.asfortranarray((mask == 1).astype(np.uint8)))["counts"]
        if again != rle["counts"] or mask.max() > 1:
            raise CocoError("compressed RLE counts do not cover the %dx%d image exactly (malformed or truncated)"
                            % (width, height))
    if not mask.any():
        raise CocoError("the mask has no pixel inside the image")
    return mask.astype(bool)


def contact_attribute(annotation):
    """The annotation's hand-contact attribute as a bool, None when it has none; CocoError on a value that is
    not yes/no."""
    attributes = annotation.get("attributes")
    if not isinstance(attributes, dict):
        return None
    lowered = {str(k).strip().lower(): v for k, v in attributes.items()}
    for key in CONTACT_ATTRIBUTES:
        if key in lowered:
            value = lowered[key]
            if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
                return bool(value)
            text = str(value).strip().lower()
            if text in ("true", "yes", "1"):
                return True
            if text in ("false", "no", "0", ""):
                return False
            raise CocoError("attribute %s = %r is not true/false" % (key, value))
    return None


def contact_attribute_present(annotation) -> bool:
    attributes = annotation.get("attributes")
    return isinstance(attributes, dict) and any(str(k).strip().lower() in CONTACT_ATTRIBUTES for k in attributes)
