"""sensor_msgs/Image <-> numpy, without cv_bridge.

The PyPI cv_bridge is broken with NumPy 2 / OpenCV 5 (it ignores `step` padding, mis-reads 16UC1 and fails
on rgb8), and a ROS 2 install's cv_bridge is not always there (pip-only users). This converter reads the
fields every driver fills (height, width, encoding, is_bigendian, step, data) and validates them first,
so a malformed message becomes an ImageConversionError naming the field instead of a crash or garbage.

`working_cv_bridge()` returns a converter backed by cv_bridge only when one is importable and passes a
self-check against this module on padded and big-endian frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageConversionError(ValueError):
    """The image message cannot be turned into an RGB frame; the message names the field at fault."""


@dataclass(frozen=True)
class Encoding:
    channels: int
    dtype: str  # numpy dtype of one channel, without byte order
    to_rgb: int | None  # OpenCV conversion code from this layout to RGB, None when already RGB
    packed_yuv: bool = False  # 2 bytes per pixel, pixel pairs share chroma: width must be even

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * np.dtype(self.dtype).itemsize


# Names from sensor_msgs/image_encodings.hpp. "yuv422" is UYVY byte order (ROS's historical name), "uyvy"
# its newer alias; "yuv422_yuy2" and "yuyv" are YUYV. 8UC3/8UC4 follow OpenCV's BGR convention, as cv_bridge does.
ENCODINGS: dict = {
    "rgb8": Encoding(3, "uint8", None),
    "bgr8": Encoding(3, "uint8", cv2.COLOR_BGR2RGB),
    "8UC3": Encoding(3, "uint8", cv2.COLOR_BGR2RGB),
    "rgba8": Encoding(4, "uint8", cv2.COLOR_RGBA2RGB),
    "bgra8": Encoding(4, "uint8", cv2.COLOR_BGRA2RGB),
    "8UC4": Encoding(4, "uint8", cv2.COLOR_BGRA2RGB),
    "mono8": Encoding(1, "uint8", cv2.COLOR_GRAY2RGB),
    "8UC1": Encoding(1, "uint8", cv2.COLOR_GRAY2RGB),
    "mono16": Encoding(1, "uint16", cv2.COLOR_GRAY2RGB),
    "16UC1": Encoding(1, "uint16", cv2.COLOR_GRAY2RGB),
    "yuv422": Encoding(2, "uint8", cv2.COLOR_YUV2RGB_UYVY, packed_yuv=True),
    "uyvy": Encoding(2, "uint8", cv2.COLOR_YUV2RGB_UYVY, packed_yuv=True),
    "yuv422_yuy2": Encoding(2, "uint8", cv2.COLOR_YUV2RGB_YUY2, packed_yuv=True),
    "yuyv": Encoding(2, "uint8", cv2.COLOR_YUV2RGB_YUY2, packed_yuv=True),
}


def check_layout(height: int, width: int, encoding: str, step: int, data_size: int,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Encoding:
    """Validate the size fields of an image message against its data; returns the encoding's layout."""
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ImageConversionError("unsupported image encoding %r (supported: %s)"
                                   % (encoding, ", ".join(sorted(ENCODINGS))))
    if height <= 0 or width <= 0:
        raise ImageConversionError("empty image: height %d, width %d" % (height, width))
    if height * width > max_pixels:
        raise ImageConversionError("image %dx%d has %.1f M pixels, more than the limit of %.1f M (parameter "
                                   "max_image_pixels)" % (width, height, height * width / 1e6, max_pixels / 1e6))
    if layout.packed_yuv and width % 2:
        raise ImageConversionError("%s images need an even width, got %d" % (encoding, width))
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageConversionError("step %d is smaller than width %d x %d bytes per pixel = %d for %s"
                                   % (step, width, layout.bytes_per_pixel, row_bytes, encoding))
    if data_size < step * height:
        raise ImageConversionError("data has %d bytes, but step %d x height %d needs %d"
                                   % (data_size, step, height, step * height))
    return layout


def pixels(height: int, width: int, encoding: str, is_bigendian: bool, step: int, data,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The message's pixels as (H, W, C) in its own layout and native byte order, step padding removed.

    `data`: bytes, bytearray, array.array('B') or a uint8 array. The result may be a view of `data`.
    """
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    layout = check_layout(height, width, encoding, step, buffer.size, max_pixels)
    rows = buffer[: step * height].reshape(height, step)[:, : width * layout.bytes_per_pixel]
    if layout.dtype != "uint8":
        rows = np.ascontiguousarray(rows).view(np.dtype(layout.dtype).newbyteorder(">" if is_bigendian else "<"))
        rows = rows.astype(np.dtype(layout.dtype).newbyteorder("="), copy=False)
    return rows.reshape(height, width, layout.channels)


def to_rgb8(height: int, width: int, encoding: str, is_bigendian: bool, step: int, data,
            max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any supported encoding -> (H, W, 3) uint8 RGB, C-contiguous.

    16-bit images map linearly to 8 bits (value >> 8), i.e. the full 0..65535 range to 0..255.
    """
    layout = ENCODINGS.get(encoding)
    image = pixels(height, width, encoding, is_bigendian, step, data, max_pixels)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if layout.to_rgb is None:
        return np.ascontiguousarray(image)
    image = np.ascontiguousarray(image)
    if layout.channels == 1:
        image = image[:, :, 0]
    return cv2.cvtColor(image, layout.to_rgb)


def msg_to_rgb8(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image (or anything with its fields) -> (H, W, 3) uint8 RGB."""
    return to_rgb8(int(msg.height), int(msg.width), str(msg.encoding), bool(msg.is_bigendian), int(msg.step),
                   msg.data, max_pixels)


def from_array(array: np.ndarray, encoding: str, step: int | None = None, bigendian: bool = False) -> dict:
    """(H, W[, C]) array laid out as `encoding` -> the Image fields {height, width, encoding, is_bigendian,
    step, data (bytes)}; `step` larger than a row pads every row with zeros (as some drivers do)."""
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ImageConversionError("unsupported image encoding %r" % encoding)
    array = np.asarray(array)
    height, width = array.shape[:2]
    if layout.packed_yuv:
        width = array.shape[1] // 2 if array.ndim == 2 else array.shape[1]
    if array.dtype != np.dtype(layout.dtype):
        raise ImageConversionError("%s needs %s pixels, got %s" % (encoding, layout.dtype, array.dtype))
    ordered = array.astype(array.dtype.newbyteorder(">" if bigendian else "<"), copy=False)
    row = np.ascontiguousarray(ordered).reshape(height, -1).view(np.uint8)
    step = row.shape[1] if step is None else int(step)
    if step < row.shape[1]:
        raise ImageConversionError("step %d is smaller than a row of %d bytes" % (step, row.shape[1]))
    padded = np.zeros((height, step), np.uint8)
    padded[:, : row.shape[1]] = row
    return {"height": int(height), "width": int(width), "encoding": encoding, "is_bigendian": int(bool(bigendian)),
            "step": int(step), "data": padded.tobytes()}


# --- cv_bridge, only when it really works ---------------------------------------------------------------

def _self_check_frames() -> list:
    """Frames whose conversion a broken bridge gets wrong: row padding, big-endian 16 bit, bgr order."""
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    depth = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    return [from_array(bgr, "bgr8", step=7 * 3 + 5), from_array(bgr[:, :, 0], "mono8", step=9),
            from_array(depth, "16UC1", bigendian=True)]


class _Fields:
    def __init__(self, fields: dict):
        self.__dict__.update(fields)


def bridge_is_working(convert) -> bool:
    """True when `convert(msg) -> (H, W, 3) uint8 RGB` agrees with msg_to_rgb8 on the self-check frames."""
    for fields in _self_check_frames():
        msg = _Fields(fields)
        try:
            got = convert(msg)
        except Exception:  # a broken bridge raises anything (AttributeError 'tostring', CvBridgeError, ...)
            return False
        expected = msg_to_rgb8(msg)
        if not isinstance(got, np.ndarray) or got.shape != expected.shape or got.dtype != np.uint8:
            return False
        if np.abs(got.astype(np.int16) - expected.astype(np.int16)).max() > 1:
            return False
    return True


def working_cv_bridge():
    """A converter msg -> (H, W, 3) uint8 RGB backed by cv_bridge, or None when cv_bridge is missing or fails
    the self-check (the PyPI build does)."""
    try:
        from cv_bridge import CvBridge
    except Exception:  # ImportError, or a binary incompatible with this NumPy
        return None
    bridge = CvBridge()

    def convert(msg):
        return np.ascontiguousarray(bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))

    return convert if bridge_is_working(convert) else None


class ImageConverter:
    """msg -> (H, W, 3) uint8 RGB: validates with check_layout, then uses cv_bridge when a working one is
    installed (falling back to this module for encodings it rejects) or this module's converter."""

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS, use_cv_bridge: bool = True):
        self.max_pixels = int(max_pixels)
        self.bridge = working_cv_bridge() if use_cv_bridge else None

    @property
    def name(self) -> str:
        return "cv_bridge" if self.bridge is not None else "numpy"

    def __call__(self, msg) -> np.ndarray:
        data_size = len(msg.data)
        check_layout(int(msg.height), int(msg.width), str(msg.encoding), int(msg.step), data_size, self.max_pixels)
        if self.bridge is not None:
            try:
                return self.bridge(msg)
            except Exception:  # cv_bridge lacks a conversion this module has (e.g. yuv422_yuy2 -> rgb8)
                pass
        return msg_to_rgb8(msg, self.max_pixels)
