"""The overlay picture: active objects tinted in their colour, outlined, labelled with name and score, and the
action written at the top. Pure OpenCV on arrays; the node publishes it as bgr8 and the demo records it."""
from __future__ import annotations

import cv2
import numpy as np

# BGR colours for label values 1, 2, ... (cycled): saturated, and apart in hue so neighbours stay distinct.
PALETTE_BGR = np.array([(0, 159, 255), (255, 191, 0), (0, 210, 90), (230, 80, 240), (60, 60, 255),
                        (0, 240, 240), (255, 110, 40), (150, 40, 200), (140, 255, 140), (180, 130, 255),
                        (200, 160, 0), (40, 110, 190)], np.uint8)


def label_colours(count: int) -> np.ndarray:
    """(count + 1, 3) uint8 BGR lookup: row 0 (background) black, row i the colour of label i."""
    lut = np.zeros((count + 1, 3), np.uint8)
    for value in range(1, count + 1):
        lut[value] = PALETTE_BGR[(value - 1) % len(PALETTE_BGR)]
    return lut


def draw_overlay(rgb: np.ndarray, labels: np.ndarray, objects, action_text: str, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 RGB + (H, W) uint8 labels + ObjectOutput list -> (H, W, 3) uint8 BGR overlay."""
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    scale = text_scale(out)
    banner = int(round(22 * scale / 0.6)) if action_text else 0  # height of the action strip at the top
    count = max([o.id for o in objects], default=0)
    if count and labels.any():
        lut = label_colours(max(count, int(labels.max())))
        tint_labels(out, labels, lut, alpha)
        for obj in objects:
            if not obj.active or obj.bbox is None:
                continue
            colour = tuple(int(c) for c in lut[obj.id])
            contours = object_contours(labels, obj.id, obj.bbox)
            cv2.drawContours(out, contours, -1, colour, 1, cv2.LINE_AA)
            # Labelled at its largest piece: a scattered mask's bbox corner can lie far from any of it.
            x, y, _w, _h = cv2.boundingRect(max(contours, key=cv2.contourArea)) if contours else obj.bbox[:2] + (0, 0)
            y = max(y - 4, banner + int(round(16 * scale / 0.6)))
            _put_text(out, "%s %.2f" % (obj.name, obj.score), (x, y), colour, scale)
    if action_text:
        strip = out[:banner]
        strip[:] = (strip.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darkened so the text reads on any scene
        _put_text(out, action_text, (6, banner - int(round(7 * scale / 0.6))), (255, 255, 255), scale)
    return out


def tint_labels(out: np.ndarray, labels: np.ndarray, lut: np.ndarray, alpha: float) -> None:
    """Blend each labelled pixel of out (H, W, 3) with its label's colour lut[label], in place.

    Only the labelled pixels' bounding box is touched, and the colours come from OpenCV's table look-up:
    numpy's lut[labels] took 6.3 ms for a VGA frame on the dev VM, the whole overlay now 1.2-1.8 ms."""
    labelled = cv2.compare(labels, 0, cv2.CMP_GT)
    x, y, w, h = cv2.boundingRect(labelled)
    if not w:
        return
    table = np.zeros((256, 1, 3), np.uint8)
    table[: len(lut), 0] = lut
    box = (slice(y, y + h), slice(x, x + w))
    inside = labels[box]
    colours = cv2.LUT(cv2.merge((inside, inside, inside)), table)  # (h, w, 3)
    cv2.copyTo(cv2.addWeighted(out[box], 1.0 - alpha, colours, alpha, 0.0), labelled[box], out[box])


def object_contours(labels: np.ndarray, label: int, bbox) -> tuple:
    """Outer contours of the pixels labelled `label`, found inside its inclusive bbox (x0, y0, x1, y1) only.

    One pixel more on each side keeps the background ring the whole image would give, so the contours are
    the whole image's, at a cost that follows the object's size."""
    x0, y0 = max(0, bbox[0] - 1), max(0, bbox[1] - 1)
    x1, y1 = min(labels.shape[1], bbox[2] + 2), min(labels.shape[0], bbox[3] + 2)
    region = cv2.compare(labels[y0:y1, x0:x1], label, cv2.CMP_EQ)
    return cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))[0]


def text_scale(image: np.ndarray) -> float:
    """OpenCV font scale for an image: 0.6 at 360 pixels high, never below 0.35."""
    return max(0.35, min(image.shape[:2]) / 600.0)


def _put_text(image: np.ndarray, text: str, origin, colour, scale: float) -> None:
    """Text with a dark outline so it reads on any background."""
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
