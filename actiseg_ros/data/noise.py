"""ActiSeg-NL label noise as pure functions: text noise on expressions, boundary noise on masks.

Text noise (spec section 4), per expression = per object of each training segment, in file order of the
segments and ascending object id:
- Category flip with probability `flip_rate`: the class becomes a uniformly random *different* class of the
  vocabulary and the name a uniformly random name of that class.
- Within-category substitution with probability `sub_rate`, drawn only for expressions that were *not*
  flipped: the name becomes a uniformly random *other* name of the same class. `sub_rate` is a rate over
  the non-flipped expressions that *can* be substituted; a non-flipped expression whose class has a single
  name is `not_substitutable` and stays clean. So substituted / (non-flipped - not_substitutable) estimates
  `sub_rate`, and the effective rate substituted / non-flipped is reported beside it.
- Masks, positive/handbox/narration flags and the narration never change. Every object of a text-noised
  split carries `class_id_org`, `name_org`, `exp_org` (the clean prompt), `exp` (the prompt rebuilt from the
  new name) and `text_noise` ('flip', 'substitute', 'none', 'not_substitutable' or 'protected').
- Each expression consumes exactly four uniforms (flip, substitute, class pick, name pick), drawn up front,
  so one seed gives nested noise sets: the expressions flipped at r=0.2 are a subset of those at r=0.4.
- Hands: like the reference, hands are flippable and are valid flip targets by default, so published numbers
  stay comparable ("right hand" -> "nut" occurs in its released files). `protect_hands=True` leaves hand
  expressions clean and removes hand classes from the flip targets, for users who want hand prompts reliable.

Mask noise: `cv2.dilate(mask, ones(k, k), iterations=1)` on every positive object, with k given at 854x480
and scaled by sqrt(H*W / (854*480)) (the geometric mean of the two axis scales, so a frame with another
aspect ratio is treated fairly) to the nearest odd integer (at least 1). Pixels of any *original* positive
object never change owner; the ring a dilation adds takes over negatives and background. A pixel inside the
rings of two positives goes to the one whose original mask is nearer (Euclidean), ties to the lower object
id. Weights follow the labels: a pixel that now belongs to a positive object gets that object's weight class,
4 if its handbox and narration flags are both 1, else 2 (spec section 2: 2 = hand-or-narration object,
4 = hand-and-narration object); every other weight pixel is left as it was.
With a mask rate below 1 (`select_masks`) only a random share of the (frame, positive object) masks is
dilated; the others keep their pixels and are never taken over by a dilated neighbour.
Boundary displacement is measured as the mean Euclidean distance of the added pixels to the original mask
of the object that received them.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from actiseg_ros.data.actionvos import ObjectInfo, build_prompt

HAND_NAMES = frozenset({"left hand", "right hand"})
HAND_CLASS_IDS = frozenset({300, 301})  # VISOR's class ids of the left and right hand
REFERENCE_WIDTH, REFERENCE_HEIGHT = 854, 480  # the resolution the reference kernels 9/15/21 refer to
WEIGHT_HAND_OR_NARRATION = 2
WEIGHT_HAND_AND_NARRATION = 4
TEXT_NOISE_FIELDS = ("class_id_org", "name_org", "exp_org", "exp", "text_noise")


# --- text noise --------------------------------------------------------------------------------------

def is_hand(name: str, class_id: int) -> bool:
    return name.strip().lower() in HAND_NAMES or class_id in HAND_CLASS_IDS


def parse_vocabulary(data, source) -> dict:
    """A vocabulary file's content -> {class_id: [names]}; `source` names the file in errors."""
    if not isinstance(data, dict):
        raise ValueError("%s: expected an object mapping class id -> list of names, got %s"
                         % (source, type(data).__name__))
    vocabulary = {}
    for key, names in data.items():
        try:
            class_id = int(key)
        except (TypeError, ValueError):
            raise ValueError("%s: class id %r is not an integer" % (source, key)) from None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError("%s: class %s must map to a non-empty list of non-empty names" % (source, key))
        vocabulary[class_id] = list(names)
    return vocabulary


def build_vocabulary(segments, extra: dict | None = None) -> dict:
    """{class_id: sorted tuple of unique names}: every (class_id, name) seen in `segments`, plus `extra`."""
    names: dict = {}
    for segment in segments:
        for obj in segment.objects.values():
            names.setdefault(obj.class_id, set()).add(obj.name)
    for class_id, extra_names in (extra or {}).items():
        names.setdefault(int(class_id), set()).update(extra_names)
    return {class_id: tuple(sorted(found)) for class_id, found in sorted(names.items())}


@dataclass
class ExpressionChange:
    """What text noise did to one expression (one object of one segment)."""

    segment: str
    object_id: int
    kind: str  # 'flip' | 'substitute' | 'none' | 'not_substitutable' | 'protected'
    class_id_org: int
    name_org: str
    class_id: int
    name: str
    exp_org: str
    exp: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TextNoiseResult:
    segments: list  # new Segment objects; the inputs are not modified
    changes: list  # ExpressionChange, one per expression, in processing order
    counts: dict = field(default_factory=dict)


def _pick(options, uniform: float):
    return options[min(int(uniform * len(options)), len(options) - 1)]


def _flip_targets(vocabulary: dict, protect_hands: bool) -> list:
    return [class_id for class_id, names in vocabulary.items()
            if not (protect_hands and any(is_hand(n, class_id) for n in names))]


def apply_text_noise(segments, vocabulary: dict, flip_rate: float, sub_rate: float,
                     rng: np.random.Generator, protect_hands: bool = False) -> TextNoiseResult:
    """Flip categories and substitute names of the objects of `segments` (see the module docstring)."""
    for label, rate in (("flip rate", flip_rate), ("substitution rate", sub_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError("%s must be within [0, 1], got %r" % (label, rate))
    targets = _flip_targets(vocabulary, protect_hands)
    n_expressions = sum(len(s.objects) for s in segments)
    # (n_expressions, 4): flip draw, substitution draw, class pick, name pick
    draws = rng.random((n_expressions, 4))
    out_segments, changes = [], []
    counts = dict.fromkeys(("expressions", "flip", "substitute", "none", "not_substitutable", "protected"), 0)
    row = 0
    for segment in segments:
        new_objects = {}
        for object_id in sorted(segment.objects):
            obj = segment.objects[object_id]
            u_flip, u_sub, u_class, u_name = draws[row]
            row += 1
            class_id, name, kind = obj.class_id, obj.name, "none"
            if protect_hands and is_hand(obj.name, obj.class_id):
                kind = "protected"
            elif u_flip < flip_rate:
                others = [c for c in targets if c != obj.class_id]
                if not others:
                    raise ValueError("cannot flip class %d of %s object %d: the vocabulary has no other class"
                                     % (obj.class_id, segment.name, object_id))
                class_id = _pick(others, u_class)
                name = _pick(vocabulary[class_id], u_name)
                kind = "flip"
            else:
                alternatives = [n for n in vocabulary.get(obj.class_id, ()) if n != obj.name]
                if not alternatives:
                    kind = "not_substitutable"
                elif u_sub < sub_rate:
                    name = _pick(alternatives, u_name)
                    kind = "substitute"
            counts["expressions"] += 1
            counts[kind] += 1
            exp_org = build_prompt(obj.name, segment.narration)
            exp = build_prompt(name, segment.narration)
            extra = dict(obj.extra)
            extra.update(class_id_org=obj.class_id, name_org=obj.name, exp_org=exp_org, exp=exp, text_noise=kind)
            new_objects[object_id] = ObjectInfo(id=object_id, name=name, class_id=class_id, handbox=obj.handbox,
                                                narration=obj.narration, positive=obj.positive, extra=extra)
            changes.append(ExpressionChange(segment=segment.name, object_id=object_id, kind=kind,
                                            class_id_org=obj.class_id, name_org=obj.name, class_id=class_id,
                                            name=name, exp_org=exp_org, exp=exp))
        new_segment = copy.copy(segment)
        new_segment.sparse_frames = list(segment.sparse_frames)
        new_segment.extra = dict(segment.extra)
        new_segment.objects = new_objects
        out_segments.append(new_segment)
    return TextNoiseResult(segments=out_segments, changes=changes, counts=counts)


def text_noise_rates(counts: dict) -> dict:
    """Measured rates under the definitions of the module docstring (None where the denominator is 0).

    flip: flipped / eligible expressions (all but protected hands); substitution: substituted / non-flipped
    expressions whose class has another name (this is what `sub_rate` asks for); substitution_effective:
    substituted / all non-flipped eligible expressions.
    """
    eligible = counts["expressions"] - counts["protected"]
    non_flipped = eligible - counts["flip"]
    substitutable = non_flipped - counts["not_substitutable"]

    def ratio(num, den):
        return None if den == 0 else num / den

    return {"flip": ratio(counts["flip"], eligible),
            "substitution": ratio(counts["substitute"], substitutable),
            "substitution_effective": ratio(counts["substitute"], non_flipped)}


# --- mask noise --------------------------------------------------------------------------------------

def check_kernel(kernel: int) -> int:
    if isinstance(kernel, bool) or not isinstance(kernel, (int, np.integer)) or kernel < 1 or kernel % 2 == 0:
        raise ValueError("dilation kernel must be a positive odd integer (a centred square), got %r" % (kernel,))
    return int(kernel)


def scaled_kernel(kernel: int, height: int, width: int) -> int:
    """Kernel size given at 854x480 -> the nearest odd size at height x width (scale sqrt of the area ratio)."""
    check_kernel(kernel)
    size = kernel * math.sqrt(height * width / float(REFERENCE_HEIGHT * REFERENCE_WIDTH))
    # nearest odd integer to `size`: 2*m+1 with m the integer nearest to (size-1)/2 (halves round up)
    return max(1, 2 * int(math.floor((size - 1.0) / 2.0 + 0.5)) + 1)


def positive_weight_class(obj: ObjectInfo) -> int:
    """Weight class of a positive object's pixels (spec section 2)."""
    if obj.handbox and obj.narration:
        return WEIGHT_HAND_AND_NARRATION
    return WEIGHT_HAND_OR_NARRATION


@dataclass
class FrameDilation:
    """The result of dilating the positives of one label image."""

    labels: np.ndarray  # (H, W) uint8, the noisy label image
    owner: np.ndarray  # (H, W) uint8, object id that took the pixel over, 0 where nothing changed
    kernel: int
    added: dict  # {object id: pixels added}
    negative_overwritten: int  # pixels that belonged to a negative object
    background_overwritten: int
    negative_pixels: int  # pixels of negative objects before dilation
    displacement_sum: float  # sum over added pixels of their distance to the receiving object's original mask

    @property
    def pixels_changed(self) -> int:
        return self.negative_overwritten + self.background_overwritten


def dilate_positives(labels: np.ndarray, positive_ids, kernel: int, dilate_ids=None) -> FrameDilation:
    """Dilate the positive objects of a label image (H, W) uint8 with a kernel x kernel square.

    dilate_ids: the positives to dilate (None: all of them, the reference behaviour). Every positive keeps
    its own pixels either way, so a positive left undilated is never eaten by a dilated neighbour."""
    check_kernel(kernel)
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError("labels must be a 2-D uint8 array, got %s %s" % (labels.dtype, labels.shape))
    positives = sorted(int(i) for i in set(positive_ids) if 0 < int(i) < 256)
    is_positive = np.zeros(256, dtype=bool)
    is_positive[positives] = True
    chosen = set(positives) if dilate_ids is None else {int(i) for i in dilate_ids}
    positive_pixels = 0
    height, width = labels.shape
    radius = kernel // 2
    # (H, W) float32: distance of each contested pixel to the nearest original positive mask seen so far
    best = np.full(labels.shape, np.inf, dtype=np.float32)
    owner = np.zeros(labels.shape, dtype=np.uint8)
    square = np.ones((kernel, kernel), dtype=np.uint8)
    for object_id in positives:
        mask = (labels == object_id).view(np.uint8)
        area = cv2.countNonZero(mask)
        if area == 0:
            continue
        positive_pixels += area
        if object_id not in chosen:
            continue
        x, y, w, h = cv2.boundingRect(mask)
        # the dilation and the nearest mask pixel of every ring pixel lie within the box grown by the radius
        y0, y1 = max(0, y - radius), min(height, y + h + radius)
        x0, x1 = max(0, x - radius), min(width, x + w + radius)
        crop = mask[y0:y1, x0:x1]
        ring = cv2.dilate(crop, square, iterations=1).view(bool) & ~is_positive[labels[y0:y1, x0:x1]]
        if not ring.any():
            continue
        distance = cv2.distanceTransform(1 - crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        best_crop = best[y0:y1, x0:x1]
        closer = ring & (distance < best_crop)  # strict: on a tie the lower id, processed first, keeps it
        best_crop[closer] = distance[closer]
        owner[y0:y1, x0:x1][closer] = object_id
    changed = owner > 0
    previous = labels[changed]
    new_labels = labels.copy()
    new_labels[changed] = owner[changed]
    added = np.bincount(owner[changed], minlength=256)
    background = int(np.count_nonzero(previous == 0))
    negative_pixels = int(np.count_nonzero(labels)) - positive_pixels
    return FrameDilation(labels=new_labels, owner=owner, kernel=kernel,
                         added={int(i): int(added[i]) for i in np.flatnonzero(added)},
                         negative_overwritten=int(previous.size) - background, background_overwritten=background,
                         negative_pixels=negative_pixels, displacement_sum=float(best[changed].sum(dtype=np.float64)))


MASK_SELECTION_STREAM = 1  # the mask selection's random stream: SeedSequence([seed, this]), apart from text noise


def select_masks(frames, rate: float, seed: int) -> list:
    """Which positive masks of each frame to dilate: frames is a list of sorted positive object ids, one list
    per frame in processing order; -> one sorted list per frame of the ids chosen, each with probability `rate`.

    Rate 1 chooses every positive without drawing (the reference behaviour, unchanged byte for byte). Below
    1, one uniform is drawn per (frame, positive) in order from a stream of its own, so the choice does not
    depend on the text noise settings, and one seed gives nested sets: the masks chosen at 0.2 are a subset
    of those chosen at 0.4."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError("mask dilation rate must be within [0, 1], got %r" % (rate,))
    if rate == 1.0:
        return [list(ids) for ids in frames]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), MASK_SELECTION_STREAM]))
    draws = rng.random(sum(len(ids) for ids in frames))
    chosen, row = [], 0
    for ids in frames:
        chosen.append([object_id for object_id, u in zip(ids, draws[row:row + len(ids)]) if u < rate])
        row += len(ids)
    return chosen


def update_weights(weights: np.ndarray, owner: np.ndarray, weight_class: dict) -> np.ndarray:
    """Weights (H, W) uint8 after dilation: pixels taken over (owner > 0) get their new object's weight class."""
    if weights.shape != owner.shape:
        raise ValueError("weight map is %s but the label image is %s" % (weights.shape, owner.shape))
    lookup = np.zeros(256, dtype=np.uint8)
    for object_id, value in weight_class.items():
        lookup[object_id] = value
    changed = owner > 0
    new_weights = weights.copy()
    new_weights[changed] = lookup[owner[changed]]
    return new_weights

