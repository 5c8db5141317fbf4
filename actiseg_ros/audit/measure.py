"""What the model says about each labelled (frame, object): plain NumPy/OpenCV measurements, no I/O.

The exported graph's mask logits are gated by the positive head: logit(sigmoid(a) * sigmoid(b)) with a the
object logit ("is this pixel the prompted object") and b the activity logit. The audit wants the object map
whether or not the object is active (a negative object's mask is labelled too), so it divides the gate out:
log sigmoid(a) = log sigmoid(g) - log sigmoid(b), exact up to float32 rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    x = np.asarray(x, np.float32)
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def ungate(mask_logits: np.ndarray, positive_logits: np.ndarray) -> np.ndarray:
    """Gated mask logits (K, h, w) and positive logits (K,) -> object probabilities sigmoid(a), (K, h, w)."""
    gate = log_sigmoid(np.asarray(positive_logits, np.float32)).reshape(-1, 1, 1)
    return np.exp(np.minimum(log_sigmoid(mask_logits) - gate, 0.0)).astype(np.float32)


def band_radius(height: int, width: int) -> int:
    """Width in pixels of the boundary band a mask score looks at: 5 px at 427x240, 10 px at 854x480 (the
    ring the reference's 21 px dilation kernel adds at those sizes), never below 1."""
    return max(1, int(round(math.sqrt(height * width) / 64.0)))


@dataclass
class ObjectMeasure:
    """One labelled object in one frame under its own labelled prompt (probabilities are of the ungated
    object map, so they say where the model sees the named object whether or not it is active)."""

    object_id: int
    area: int  # labelled pixels
    positive: float  # the positive head's probability for the prompt
    inside: float  # mean probability over the labelled mask: how much of the object the model finds
    precision: float  # share of the map's probability mass inside the labelled mask
    other: float  # largest share of the mass on one other labelled object (the name fits another object)
    core: float  # mean probability over the mask eroded by the band radius (nan: nothing left after erosion)
    band: float  # mean probability over the inner band (mask minus its erosion)
    edge: float  # mean image gradient on the mask's outline (its last pixel inside and first outside)
    inner_edge: float  # mean image gradient a little inside the outline (band radius - 2 .. + 1 pixels deep)


def _crop_box(mask: np.ndarray, radius: int) -> tuple:
    """Bounding box of the mask grown by radius + 1, clipped: (y0, y1, x0, x1)."""
    x, y, w, h = cv2.boundingRect(mask)
    height, width = mask.shape
    grow = radius + 1
    return max(0, y - grow), min(height, y + h + grow), max(0, x - grow), min(width, x + w + grow)


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 Sobel gradient magnitude of the frame's grey levels."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def _square(half: int) -> np.ndarray:
    return np.ones((2 * half + 1, 2 * half + 1), np.uint8)


def measure_frame(labels: np.ndarray, object_ids, probabilities: np.ndarray, positives, radius: int,
                  gradient: np.ndarray | None = None) -> list:
    """labels (H, W) uint8; probabilities (K, H, W) float32 ungated object maps at camera size, one per id of
    object_ids (the maps of that object's own prompt); positives (K,); gradient (H, W) the frame's
    gradient_magnitude (None: edge measures are nan) -> one ObjectMeasure per object with labelled pixels, in
    object_ids order."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    one, shallow, deep = _square(1), _square(max(1, radius - 2)), _square(radius + 1)
    flat_labels = labels.ravel()
    areas = np.bincount(flat_labels, minlength=256)
    listed = np.zeros(256, bool)
    listed[[int(o) for o in object_ids]] = True
    out = []
    for index, object_id in enumerate(object_ids):
        object_id = int(object_id)
        area = int(areas[object_id])
        if area == 0:
            continue
        prob = probabilities[index]
        mass_by_label = np.bincount(flat_labels, weights=prob.ravel(), minlength=256)  # one pass for all objects
        mass = float(mass_by_label.sum()) + 1e-6
        own = float(mass_by_label[object_id])
        others = mass_by_label * listed
        others[object_id] = 0.0
        mask = cv2.compare(labels, object_id, cv2.CMP_EQ)
        y0, y1, x0, x1 = _crop_box(mask, radius)
        crop_mask, crop_prob = mask[y0:y1, x0:x1], prob[y0:y1, x0:x1]
        eroded = cv2.erode(crop_mask, kernel)  # the image edge is no object boundary: it does not erode
        band = cv2.subtract(crop_mask, eroded)
        core_pixels, band_pixels = cv2.countNonZero(eroded), cv2.countNonZero(band)
        edge = inner_edge = float("nan")
        if gradient is not None:
            crop_gradient = gradient[y0:y1, x0:x1]
            outline = cv2.subtract(cv2.dilate(crop_mask, one), cv2.erode(crop_mask, one))
            inner = cv2.subtract(cv2.erode(crop_mask, shallow), cv2.erode(crop_mask, deep))
            edge = cv2.mean(crop_gradient, outline)[0] if cv2.countNonZero(outline) else float("nan")
            inner_edge = cv2.mean(crop_gradient, inner)[0] if cv2.countNonZero(inner) else float("nan")
        out.append(ObjectMeasure(
            object_id=object_id, area=area, positive=float(positives[index]), inside=own / area,
            precision=own / mass, other=float(others.max()) / mass,
            core=cv2.mean(crop_prob, eroded)[0] if core_pixels else float("nan"),
            band=cv2.mean(crop_prob, band)[0] if band_pixels else float("nan"), edge=edge, inner_edge=inner_edge))
    return out
