"""Contact sheet of an ActionVOS-layout data set: a PNG grid of annotated frames with mask overlays.

Each row is one video (scene) and its columns are different action segments of it, so the sheet shows the
point of the data: the same scene, different narrations, different active objects. Positive objects are
filled in colour with a solid outline; negative objects are dimmed and outlined in grey; the narration is
written on each tile, the positive names under it. Works on any data set in the layout (real or synthetic).
"""
from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from actiseg_ros.data.actionvos import annotation_path, image_path, read_image, read_label_png, read_split

def _bright_palette() -> np.ndarray:
    """(256, 3) uint8: saturated colours with well-spread hues (no greys, unlike the DAVIS palette, whose
    greys would look like the negatives' outlines)."""
    hues = (np.arange(256) * 0.381966 % 1.0 * 180).astype(np.uint8)  # golden-ratio steps around the wheel
    hsv = np.stack([hues, np.full(256, 220, np.uint8), np.full(256, 255, np.uint8)], 1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


_PALETTE = _bright_palette()


def overlay(rgb: np.ndarray, labels: np.ndarray, positives: set, negatives: set) -> np.ndarray:
    """(H, W, 3) uint8: positives tinted with a bright colour per id and outlined, negatives dimmed and
    outlined in grey."""
    out = rgb.astype(np.float32)
    for object_id in sorted(negatives):
        mask = labels == object_id
        out[mask] *= 0.55
    for object_id in sorted(positives):
        mask = labels == object_id
        out[mask] = out[mask] * 0.45 + _PALETTE[object_id].astype(np.float32) * 0.55
    out = np.clip(out, 0, 255).astype(np.uint8)
    for object_id, colour, width in ([(i, (150, 150, 150), 1) for i in sorted(negatives)]
                                     + [(i, tuple(int(c) for c in _PALETTE[i]), 2) for i in sorted(positives)]):
        mask = (labels == object_id).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, width, cv2.LINE_AA)
    return out


def _caption(tile: np.ndarray, lines: list) -> None:
    scale = max(tile.shape[1] / 700.0, 0.33)
    thickness = 1
    line_h = int(22 * scale) + 4
    cv2.rectangle(tile, (0, 0), (tile.shape[1], line_h * len(lines) + 4), (0, 0, 0), -1)
    for i, (text, colour) in enumerate(lines):
        cv2.putText(tile, text, (4, line_h * (i + 1) - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness,
                    cv2.LINE_AA)


def contact_sheet(root, split: str = "train", rows: int = 3, columns: int = 4, tile_width: int = 320,
                  frame_position: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 RGB grid: `rows` videos with `columns` segments each (frame at `frame_position`)."""
    data = read_split(root, split)
    by_video: "OrderedDict[str, list]" = OrderedDict()
    for segment in data.segments:
        by_video.setdefault(segment.video, []).append(segment)
    videos = [v for v in by_video.values() if len(v) >= 2][:rows] or list(by_video.values())[:rows]
    if not videos:
        raise ValueError("%s: split %s has no segments to show" % (root, split))
    tiles_rows = []
    tile_height = None
    for segments in videos:
        row = []
        for segment in segments[:columns]:
            frame = segment.sparse_frames[min(int(frame_position * len(segment.sparse_frames)),
                                              len(segment.sparse_frames) - 1)]
            rgb = read_image(image_path(root, split, segment.name, frame))
            labels = read_label_png(annotation_path(root, split, segment.name, frame))
            positives = {i for i, o in segment.objects.items() if o.positive}
            negatives = set(segment.objects) - positives
            tile = overlay(rgb, labels, positives, negatives)
            height = int(round(tile.shape[0] * tile_width / tile.shape[1]))
            tile = cv2.resize(tile, (tile_width, height), interpolation=cv2.INTER_AREA)
            tile_height = tile_height or height
            names = ", ".join(segment.objects[i].name for i in sorted(positives))
            _caption(tile, [('"%s"' % segment.narration, (255, 255, 0)), ("+ " + names, (200, 255, 200))])
            row.append(tile)
        while len(row) < columns:
            row.append(np.zeros_like(row[0]))
        tiles_rows.append(np.hstack([np.pad(t, ((1, 1), (1, 1), (0, 0))) for t in row]))
    return np.vstack(tiles_rows)


def save_png(path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError("%s: could not write the contact sheet" % path)
