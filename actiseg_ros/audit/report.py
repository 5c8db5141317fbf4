"""The audit's pictures: an HTML page of the top suspects, each with the frame, the labelled mask and the
model's map side by side, and the same rows composed into one PNG (a picture of the report for docs).

The model is run again on the frames shown (a few dozen), so the audit itself keeps no maps in memory.
A frame that cannot be read gets a row saying why instead of a picture.
"""
from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from actiseg_ros.audit import audit_cli
from actiseg_ros.data import actionvos

LABEL_COLOUR = np.array([40, 220, 60], np.float32)  # green: the label under audit
MODEL_COLOUR = np.array([255, 40, 40], np.float32)  # red: what the model sees under the labelled prompt
ZOOM_MARGIN = 0.25  # the zoom panel shows the labelled object's box grown by this share of its size


def tint(rgb: np.ndarray, weight: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Blend colour into rgb with a per-pixel weight in [0, 1] (at most 65% opaque)."""
    alpha = (0.65 * np.clip(weight, 0.0, 1.0))[..., None]
    return (rgb.astype(np.float32) * (1.0 - alpha) + colour * alpha).astype(np.uint8)


def outline(rgb: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = rgb.copy()
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), 1)
    return out


def zoom(rgb: np.ndarray, mask: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The labelled object's surroundings enlarged to the frame's height, with the label's outline (green) and
    the model's (red, half its peak): a boundary a few pixels off is visible here, not in the whole frame."""
    height, width = mask.shape
    if not mask.any():
        return np.full((height, height, 3), 255, np.uint8)
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    side = int(max(w, h) * (1 + 2 * ZOOM_MARGIN)) + 8
    x0 = int(np.clip(x + w // 2 - side // 2, 0, max(0, width - side)))
    y0 = int(np.clip(y + h // 2 - side // 2, 0, max(0, height - side)))
    window = (slice(y0, y0 + side), slice(x0, x0 + side))
    crop = rgb[window]
    scale = height / float(crop.shape[0])
    size = (max(1, int(round(crop.shape[1] * scale))), height)
    big = cv2.resize(crop, size, interpolation=cv2.INTER_NEAREST)
    big_mask = cv2.resize(mask[window].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    big_seen = cv2.resize(seen[window].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return outline(outline(big, big_seen, MODEL_COLOUR), big_mask, LABEL_COLOUR)


def panels(rgb: np.ndarray, labels: np.ndarray, object_map: np.ndarray, object_id: int) -> np.ndarray:
    """Frame | labelled mask (green, outlined) | model map (red, scaled to its own peak; outline at half of it)
    | zoom on the labelled object (both outlines)."""
    mask = labels == object_id
    labelled = outline(tint(rgb, mask.astype(np.float32), LABEL_COLOUR), mask, LABEL_COLOUR)
    peak = float(object_map.max())
    scaled = object_map / peak if peak > 0 else object_map
    seen = outline(tint(rgb, scaled, MODEL_COLOUR), scaled > 0.5, MODEL_COLOUR)
    seen = outline(seen, mask, (255, 255, 255))  # the label's edge on the model's map, to compare
    gap = np.full((rgb.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([rgb, gap, labelled, gap, seen, gap, zoom(rgb, mask, scaled > 0.5)], axis=1)


def record_picture(predictor, data: Path, split: str, segment, record: dict) -> np.ndarray:
    """The side-by-side picture of one record (its frame, or the expression's worst frame)."""
    frame = record["frame"] or record["details"]["frame_shown"]
    rgb, labels = audit_cli.read_frame(data, split, segment, frame)
    ids = sorted(segment.objects)
    maps, _positives = audit_cli.object_maps(predictor, rgb)
    return panels(rgb, labels, maps[ids.index(record["object_id"])], record["object_id"])


def save_png(path, rgb: np.ndarray, colours: int | None = None) -> None:
    """colours: quantise to a palette of this many colours (a picture for docs: a third of the bytes)."""
    image = Image.fromarray(rgb)
    if colours:
        image = image.quantize(colours, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=False)


def pictures(document: dict, records: list, model, backend: str, threads: int) -> list:
    """[(record, picture or None, error or None)] for the given records of the document (the model runs once
    per record, in segment order so that each segment's prompts are encoded once)."""
    data, split = Path(document["data"]), document["split"]
    segments = {s.name: s for s in actionvos.read_split(data, split, skip_bad=True, check_files=False).segments}
    needed = [segments[r["segment"]] for r in records if r["segment"] in segments]
    predictor = audit_cli.open_predictor(model, backend, threads, max((len(s.objects) for s in needed), default=1))
    results = [None] * len(records)
    try:
        order = sorted(range(len(records)), key=lambda i: records[i]["segment"])
        current = None
        for index in order:
            record = records[index]
            segment = segments.get(record["segment"])
            if segment is None:
                results[index] = (record, None, "segment %s is no longer in the split" % record["segment"])
                continue
            if current != segment.name:
                predictor.set_prompts(audit_cli.segment_prompts(segment))
                current = segment.name
            try:
                results[index] = (record, record_picture(predictor, data, split, segment, record), None)
            except actionvos.DatasetError as err:
                results[index] = (record, None, str(err))
    finally:
        predictor.close()
    return results


def _row_html(rank: int, record: dict, image_name, error) -> str:
    details = record["details"]
    picture = ('<img src="%s" alt="frame, labelled mask, model map">' % html.escape(image_name)
               if image_name else "<em>%s</em>" % html.escape(error or "no picture"))
    return ("<tr><td>%d</td><td>%s</td><td>%.3f</td><td>%s</td><td>%d (%s)</td><td>%s</td><td>%s</td>"
            "<td>%s</td></tr>" % (rank, record["kind"], record["score"], html.escape(record["segment"]),
                                  record["object_id"], html.escape(details.get("name", "")),
                                  html.escape(record["frame"] or "(all; shown: %s)" % details.get("frame_shown")),
                                  html.escape(record["reason"]), picture))


def write_report(document: dict, path, top: int, model, backend: str = "ort-cpu", threads: int = 0) -> None:
    """HTML at `path`, its PNGs in `<stem>_files/` next to it; both replaced only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files = path.with_name(path.stem + "_files")
    staging = path.with_name("." + path.stem + "_files.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    rows = []
    results = pictures(document, document["records"][:top], model, backend, threads)
    for rank, (record, picture, error) in enumerate(results, start=1):
        image_name = None
        if picture is not None:
            image_name = "%s/%03d_%s.png" % (files.name, rank, record["kind"])
            save_png(staging / Path(image_name).name, picture)
        rows.append(_row_html(rank, record, image_name, error))
    problems = "".join("<li>%s: %s</li>" % (html.escape(p["item"]), html.escape(p["error"]))
                       for p in document["problems"])
    page = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>actiseg audit: %(split)s of %(data)s</title>
<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px;border-bottom:1px solid #ccc}
img{max-width:100%%}</style></head><body>
<h1>actiseg audit: %(split)s of %(data)s</h1>
<p>Model %(model)s; %(frames)d frames of %(segments)d segments at %(fps)s frames/s. Top %(top)d of %(total)d
records (higher score = more suspicious). Pictures: the frame, the labelled mask (green) and the model's map
for the labelled prompt (red, scaled to its peak; white = the label's outline), and the object enlarged with
both outlines (green: label, red: model at half its peak).</p>
<table><tr><th>#</th><th>kind</th><th>score</th><th>segment</th><th>object</th><th>frame</th><th>why</th>
<th>frame | label | model</th></tr>
%(rows)s
</table>
<h2>Problems (%(problem_count)d)</h2><ul>%(problems)s</ul>
</body></html>
""" % {"split": html.escape(document["split"]), "data": html.escape(document["data"]),
       "model": html.escape(document["model"]), "frames": document["frames"], "segments": document["segments"],
       "fps": document["frames_per_second"], "top": len(rows), "total": len(document["records"]),
       "rows": "\n".join(rows), "problem_count": len(document["problems"]), "problems": problems}
    tmp_html = path.with_name(path.name + ".tmp")
    tmp_html.write_text(page, encoding="utf-8")
    if files.exists():
        shutil.rmtree(files)
    os.replace(staging, files)
    os.replace(tmp_html, path)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed size
        return ImageFont.load_default()


def report_sheet(results: list, ranks=None, width: int = 1560) -> np.ndarray:
    """Rows of a report as one RGB picture: caption lines over each side-by-side picture. ranks: each row's
    rank in the whole report (default 1, 2, ...)."""
    font = _font(15)
    blocks = []
    ranks = list(ranks) if ranks is not None else list(range(1, len(results) + 1))
    for rank, (record, picture, error) in zip(ranks, results):
        caption = "#%d  %s  score %.3f  %s  object %d (%s)  frame %s" % (
            rank, record["kind"], record["score"], record["segment"], record["object_id"],
            record["details"].get("name", ""), record["frame"] or "all (shown: %s)" % record["details"]["frame_shown"])
        lines = [caption, record["reason"] if len(record["reason"]) <= 200 else record["reason"][:197] + "..."]
        if picture is None:
            lines.append("no picture: %s" % error)
            picture = np.zeros((1, width, 3), np.uint8) + 255
        scale = min(1.0, width / picture.shape[1])
        picture = cv2.resize(picture, (int(picture.shape[1] * scale), int(picture.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        text = Image.new("RGB", (width, 22 * len(lines) + 6), "white")
        draw = ImageDraw.Draw(text)
        for i, line in enumerate(lines):
            draw.text((4, 3 + 22 * i), line, fill=(0, 0, 0), font=font)
        block = np.full((picture.shape[0], width, 3), 255, np.uint8)
        block[:, :picture.shape[1]] = picture
        blocks.extend([np.asarray(text), block, np.full((10, width, 3), 255, np.uint8)])
    return np.concatenate(blocks, axis=0)
