"""Suspicion scores from the per-frame measurements (actiseg_ros.audit.measure), and the rank statistics the
known-noise benchmark reports. Plain functions, no I/O.

Three kinds of record, each with a score in which higher means more suspicious:
- text (per expression = segment, object id): 1 - sqrt(inside x precision), means over the expression's
  frames. A model trained on clean labels, prompted with the labelled name, finds the labelled object
  (inside: mean object probability over the labelled mask) and puts its map there (precision: share of the
  map's mass on the mask). A flipped name makes the model look for another object (or for one that is not in
  the scene), so both fall. A synonym ("cup" for "mug") keeps both: the model was trained with every name of
  a class.
- flag (per expression): the positive head's disagreement with the labelled positive flag, |flag - p| with
  p the mean positive probability over the frames where the object is labelled, times the text evidence
  that the prompt names this object, sqrt(inside x precision): under a wrong name the head judges another
  object, so its verdict says nothing about this one's flag (that expression is the text record's).
- mask (per frame and object): after PMHM's split into reliable and uncertain pixels (there by quantiles of
  the model's margin and edge strength; here by place: the label's edge band against its core). A clean
  mask's inner band (the pixels within the band radius of its edge) lies on the object, where the model is
  nearly as sure as in the core; a dilated mask's band lies off the object, where the model sees background:
  (core - band) / (core + 0.02), with core the mean probability over the mask eroded by the band radius
  (the whole mask's mean where the object is too thin to erode). Where the labelled name does not fit
  (a flipped name: the prompt finds another object, or nothing) the model's map cannot judge the mask, so the
  score leans on the image instead, weighted by the expression's text score t:
  (1 - t) x model + t x image, image = (g_in + 1) / (g_edge + g_in + 1) with g_edge the mean gradient on the
  mask's outline and g_in a little inside it (band radius - 2 .. + 1 px deep): a clean mask's outline lies on
  the object's edge, a dilated one's a few pixels outside it, with the object's edge inside. (The image cue
  is measured only on the synthetic data's crisp edges; blur and texture in real frames are likely to weaken
  it. The model cue carries every mask whose name is right.)
"""
from __future__ import annotations

import math

import numpy as np

KINDS = ("text", "flag", "mask")
CORE_FLOOR = 0.02  # keeps the mask score near 0, not noisy, where the model sees nothing of the object


def _nan_to(value: float, fallback: float) -> float:
    return fallback if value is None or math.isnan(value) else value


def text_score(inside: float, precision: float) -> float:
    return 1.0 - math.sqrt(max(0.0, inside) * max(0.0, precision))


def flag_score(label_positive: int, positive: float, name_fits: float = 1.0) -> float:
    """name_fits: 1 - text score, how sure the model is that the prompt names this object."""
    return abs(float(bool(label_positive)) - positive) * name_fits


def core_and_band(inside: float, core: float, band: float) -> tuple:
    """The core and band probabilities a mask is judged by: a mask too thin to erode has no core (nan), its
    whole mean stands in; no band (nan) reads as the core."""
    core = _nan_to(core, inside)
    return core, _nan_to(band, core)


def model_mask_score(inside: float, core: float, band: float) -> float:
    core, band = core_and_band(inside, core, band)
    return (core - band) / (core + CORE_FLOOR)


def image_mask_score(edge: float, inner_edge: float) -> float | None:
    """In (0, 1]: high when the outline is weaker than the image a little inside it; None without both."""
    if edge is None or inner_edge is None or math.isnan(edge) or math.isnan(inner_edge):
        return None
    return (inner_edge + 1.0) / (edge + inner_edge + 1.0)


def mask_score(inside: float, core: float, band: float, edge: float = float("nan"),
               inner_edge: float = float("nan"), name_wrong: float = 0.0) -> float:
    """name_wrong: the expression's text score in [0, 1] (how little its name finds the object)."""
    model = model_mask_score(inside, core, band)
    image = image_mask_score(edge, inner_edge)
    if image is None:
        return model
    weight = min(1.0, max(0.0, name_wrong))
    return (1.0 - weight) * model + weight * image


def _record(segment: str, object_id: int, frame, kind: str, score: float, reason: str, details: dict) -> dict:
    return {"segment": segment, "object_id": int(object_id), "frame": frame, "kind": kind,
            "score": round(float(score), 6), "reason": reason, "details": details}


def expression_records(segment: str, object_id: int, name: str, label_positive: int, measures: list,
                       frames: list) -> list:
    """Text and flag records of one expression from its ObjectMeasures (one per frame where it is labelled,
    `frames` the matching frame names); [] when it is labelled in no frame."""
    if not measures:
        return []
    inside = float(np.mean([m.inside for m in measures]))
    precision = float(np.mean([m.precision for m in measures]))
    other = float(np.mean([m.other for m in measures]))
    positive = float(np.mean([m.positive for m in measures]))
    worst = frames[int(np.argmin([m.inside for m in measures]))]
    details = {"name": name, "label_positive": int(label_positive), "inside": round(inside, 4),
               "precision": round(precision, 4), "other": round(other, 4), "positive": round(positive, 4),
               "frames": len(measures), "frame_shown": worst}
    text_reason = ("under the name '%s' the model finds %.0f%% of the labelled object and puts %.0f%% of its map "
                   "on it" % (name, 100 * inside, 100 * precision))
    if other > precision:
        text_reason += "; %.0f%% lands on another labelled object" % (100 * other)
    text = text_score(inside, precision)
    flag_reason = "labelled %s, the positive head gives %.2f" % ("positive" if label_positive else "negative",
                                                                 positive)
    if text > 0.5:
        flag_reason += " (but the name hardly fits the object: see the text record)"
    return [_record(segment, object_id, None, "text", text, text_reason, details),
            _record(segment, object_id, None, "flag", flag_score(label_positive, positive, 1.0 - text), flag_reason,
                    details)]


def mask_record(segment: str, frame: str, name: str, label_positive: int, measure, name_wrong: float = 0.0) -> dict:
    """name_wrong: the expression's text score (see mask_score)."""
    core, band = core_and_band(measure.inside, measure.core, measure.band)
    score = mask_score(measure.inside, measure.core, measure.band, measure.edge, measure.inner_edge, name_wrong)
    image = image_mask_score(measure.edge, measure.inner_edge)
    if name_wrong > 0.5 and image is not None:
        reason = ("the name hardly finds the object (text score %.2f), so judged by the image: gradient %.0f on "
                  "the outline against %.0f just inside" % (name_wrong, measure.edge, measure.inner_edge))
    else:
        reason = "mean model probability %.2f in the mask's edge band against %.2f in its core" % (band, core)
    if score > 0.5:
        reason += ": the mask reaches past the object"
    details = {"name": name, "label_positive": int(label_positive), "area": measure.area,
               "inside": round(measure.inside, 4), "core": round(core, 4), "band": round(band, 4),
               "edge": None if math.isnan(measure.edge) else round(measure.edge, 2),
               "inner_edge": None if math.isnan(measure.inner_edge) else round(measure.inner_edge, 2),
               "name_wrong": round(name_wrong, 4), "frame_shown": frame}
    return _record(segment, measure.object_id, frame, "mask", score, reason, details)


def sort_records(records: list) -> list:
    """Highest score first; ties in a fixed order (kind, segment, object, frame) so output is reproducible."""
    return sorted(records, key=lambda r: (-r["score"], r["kind"], r["segment"], r["object_id"], r["frame"] or ""))


# --- rank statistics for measuring an audit against known noise ------------------------------------------

def auroc(scores, labels) -> float | None:
    """Area under the ROC curve by the Mann-Whitney rank statistic (ties count one half); None when one class
    is empty. The probability that a random noisy item scores above a random clean one."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average ranks over ties (1-based)
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(scores)]))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = 0.5 * (start + 1 + end)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def precision_at(scores, labels, fraction: float) -> float | None:
    """Share of noisy items among the top `fraction` of items by score (at least one item)."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    if len(scores) == 0:
        return None
    count = max(1, int(math.floor(fraction * len(scores))))
    top = np.argsort(-scores, kind="mergesort")[:count]
    return float(labels[top].mean())
