"""Image pre-processing shared by training and runtime, so both see exactly the same pixels.

Frames are letterboxed (aspect kept, zero padding bottom/right) into the model's input size. Padding only
at the bottom/right keeps the mapping back to camera pixels a pure scale: model pixel (x, y) is camera
pixel (x / scale, y / scale), so masks come back with no shift.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

# EfficientNet-Lite was trained on (x - 127) / 128 (TF-Lite convention), not ImageNet mean/std.
PIXEL_MEAN = 127.0
PIXEL_SCALE = 128.0


@dataclass(frozen=True)
class Letterbox:
    scale: float  # model pixels per camera pixel
    src_hw: tuple  # (H, W) of the camera image
    dst_hw: tuple  # (H, W) of the model input
    content_hw: tuple  # (H, W) of the resized image inside the model input (the rest is padding)


def letterbox_geometry(src_hw, dst_hw) -> Letterbox:
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    dst_h, dst_w = int(dst_hw[0]), int(dst_hw[1])
    if min(src_h, src_w, dst_h, dst_w) <= 0:
        raise ValueError("image sizes must be positive, got src %s dst %s" % ((src_h, src_w), (dst_h, dst_w)))
    scale = min(dst_h / src_h, dst_w / src_w)
    content = (max(1, min(dst_h, round(src_h * scale))), max(1, min(dst_w, round(src_w * scale))))
    return Letterbox(scale=scale, src_hw=(src_h, src_w), dst_hw=(dst_h, dst_w), content_hw=content)


def letterbox_image(rgb: np.ndarray, dst_hw, interpolation=cv2.INTER_AREA):
    """(H, W, 3) uint8 RGB -> ((dst_h, dst_w, 3) uint8, Letterbox)."""
    box = letterbox_geometry(rgb.shape[:2], dst_hw)
    out = np.zeros((box.dst_hw[0], box.dst_hw[1]) + rgb.shape[2:], dtype=rgb.dtype)
    resized = cv2.resize(rgb, (box.content_hw[1], box.content_hw[0]), interpolation=interpolation)
    out[: box.content_hw[0], : box.content_hw[1]] = resized.reshape(out[: box.content_hw[0], : box.content_hw[1]].shape)
    return out, box


def area_split_row(src_h: int, dst_h: int) -> int | None:
    """An output row r at which an area (INTER_AREA) downscale of src_h rows to dst_h rows splits into two
    independent bands with bit-identical results, or None.

    Output row r averages input rows [r * q, (r + 1) * q) with q = src_h / dst_h, so when r * q is a whole
    number the rows above r read only the input rows above r * q, and each band has the same ratio q. Only
    ratios that are multiples of 1/2 are split (VGA into 320 columns is 2.5): their cell edges are exact in
    floating point, so OpenCV computes the same weights for a band as for the whole image.
    """
    if dst_h < 2 or src_h <= dst_h or (2 * src_h) % dst_h:
        return None
    step = dst_h // math.gcd(src_h, dst_h)  # the rows r where r * q is whole
    row = (dst_h // 2) // step * step
    return row if 0 < row < dst_h else None


class FramePreprocessor:
    """Camera frames -> model input (1, 3, H, W) float32: the same values as
    normalize(letterbox_image(rgb, dst_hw)[0][None]), cheaper for a stream of frames.

    OpenCV runs an area resize at a non-integer ratio on one core (1.0-1.9 ms for VGA into 256x192 on the
    2-core dev VM); split into two bands (area_split_row) it runs on two, with the same pixels (1.5 against
    2.3 ms for the whole pre-processing, interleaved). The input tensor is reused from frame to frame (its
    padding is written when the frame size changes), so the array returned is only valid until the next call,
    and one instance serves one thread at a time (the node's single inference thread; Predictor.infer
    inherits this).
    """

    def __init__(self, dst_hw, parallel: bool = True):
        self.dst_hw = (int(dst_hw[0]), int(dst_hw[1]))
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="actiseg-preprocess") if parallel else None
        self._images = None  # (1, 3, H, W) float32, for self._box
        self._box = None

    def __call__(self, rgb: np.ndarray) -> tuple:
        """(H, W, 3) uint8 RGB -> ((1, 3, dst_h, dst_w) float32, Letterbox)."""
        box = letterbox_geometry(rgb.shape[:2], self.dst_hw)
        if box != self._box:
            padding = (np.float32(0) - np.float32(PIXEL_MEAN)) / np.float32(PIXEL_SCALE)  # a black pixel
            self._images = np.full((1, 3) + self.dst_hw, padding, np.float32)
            self._box = box
        content_h, content_w = box.content_hw
        resized = self._resize(rgb, box.content_hw)
        for channel, plane in enumerate(cv2.split(resized)):
            view = self._images[0, channel, :content_h, :content_w]
            np.subtract(plane, np.float32(PIXEL_MEAN), out=view, dtype=np.float32)
            np.divide(view, np.float32(PIXEL_SCALE), out=view)
        return self._images, box

    def _resize(self, rgb: np.ndarray, content_hw) -> np.ndarray:
        content_h, content_w = content_hw
        row = area_split_row(rgb.shape[0], content_h) if self._pool is not None else None
        if row is None:
            return cv2.resize(rgb, (content_w, content_h), interpolation=cv2.INTER_AREA)
        source_row = row * rgb.shape[0] // content_h
        resized = np.empty((content_h, content_w, 3), np.uint8)
        top = self._pool.submit(_resize_area_into, rgb[:source_row], resized[:row])
        _resize_area_into(rgb[source_row:], resized[row:])
        top.result()
        return resized

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _resize_area_into(src: np.ndarray, dst: np.ndarray) -> None:
    cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=cv2.INTER_AREA)


def letterbox_labels(labels: np.ndarray, dst_hw):
    """Label or weight image (H, W) uint8 -> letterboxed with nearest-neighbour (ids must not blend)."""
    return letterbox_image(labels, dst_hw, interpolation=cv2.INTER_NEAREST)[0]


def normalize(rgb_batch: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> (..., 3, H, W) float32 model input."""
    x = (rgb_batch.astype(np.float32) - PIXEL_MEAN) / PIXEL_SCALE
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def logits_to_camera(logits: np.ndarray, box: Letterbox) -> np.ndarray:
    """(K, h, w) mask logits at model-output resolution -> (K, H, W) float32 at camera resolution.

    Exact geometry, whatever the stride: camera pixel centre x maps to model-input coordinate
    (x + 0.5) * s - 0.5 with s = content_w / src_w (the letterbox's own resize), and model-input coordinate
    u maps to output-grid coordinate (u + 0.5) / stride - 0.5. Composed: x_out = a * x + (a - 1) / 2 with
    a = s / stride, which warpAffine samples bilinearly. (Cropping the content to whole output pixels and
    resizing shifts masks by up to half an output pixel times the stride when the content is not a
    multiple of the stride.)
    """
    k, out_h, out_w = logits.shape
    src_h, src_w = box.src_hw
    camera_to_grid = camera_to_grid_affine(box, (out_h, out_w))
    out = np.empty((k, src_h, src_w), np.float32)
    for i in range(k):
        out[i] = warp_to_camera(logits[i], camera_to_grid, (0, 0, src_w, src_h))
    return out


def camera_to_grid_affine(box: Letterbox, grid_hw) -> np.ndarray:
    """(2, 3) float64 affine from camera pixel (x, y) to output-grid coordinates (see logits_to_camera)."""
    out_h, out_w = grid_hw
    src_h, src_w = box.src_hw
    a_x = box.content_hw[1] / src_w / (box.dst_hw[1] / out_w)
    a_y = box.content_hw[0] / src_h / (box.dst_hw[0] / out_h)
    return np.array([[a_x, 0.0, (a_x - 1.0) / 2.0], [0.0, a_y, (a_y - 1.0) / 2.0]], np.float64)


def warp_to_camera(grid: np.ndarray, camera_to_grid: np.ndarray, roi) -> np.ndarray:
    """One (h, w) grid map sampled bilinearly at the camera pixels of roi = (x0, y0, x1, y1) (exclusive end)
    -> (y1 - y0, x1 - x0) float32."""
    x0, y0, x1, y1 = roi
    affine = camera_to_grid.copy()
    affine[:, 2] += affine[:, :2] @ np.array([x0, y0], np.float64)  # the ROI's origin is camera (x0, y0)
    return cv2.warpAffine(np.ascontiguousarray(grid, dtype=np.float32), affine, (x1 - x0, y1 - y0),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
