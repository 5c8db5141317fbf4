"""On-disk cache of decoded, letterboxed training frames (config key `frame_cache: DIR`), one .npy per frame.

Decoding a JPEG and resizing it to the model's input is most of a data sample's cost (VISOR frames are
854x480 JPEGs); on a GPU that work, repeated every epoch, is what starves the device. With a frame cache the
first use of a frame stores its letterboxed uint8 RGB image (before photometric jitter) and every later use
reads it with np.load. Jitter is then applied to the cached image's content region instead of to the frame
before resizing: the same augmentation up to interpolation rounding; with `jitter: 0` samples are identical
to the uncached ones (tested).

Layout: DIR/<H>x<W>-v<version>/<2 hex>/<key>.npy, key = SHA-256 of the image file's absolute path, size and
modification time (no need to read the file to find its entry; a rewritten frame gets a new key). Files are
written to a temporary name and renamed, so DataLoader workers and several jobs may fill one cache at once.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def write_atomically(path: Path, write) -> None:
    """write(handle) into a temporary file named for this process, then rename it to `path`: several writers
    (loader threads, grid jobs) may fill one cache at once and a reader never sees a half-written entry. A
    killed writer leaves `.NAME.tmpPID` behind; it is never read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".%s.tmp%d" % (path.name, os.getpid()))
    with open(tmp, "wb") as handle:
        write(handle)
    os.replace(tmp, path)


class FrameCache:
    def __init__(self, directory, input_hw):
        self.folder = Path(directory) / ("%dx%d-v%d" % (input_hw[0], input_hw[1], CACHE_VERSION))
        self.input_hw = tuple(input_hw)
        self.hits = self.misses = 0

    def path(self, image_file) -> Path:
        stat = os.stat(image_file)
        key = "%s|%d|%d" % (os.path.abspath(image_file), stat.st_size, stat.st_mtime_ns)
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.folder / digest[:2] / (digest + ".npy")

    def letterboxed(self, image_file, load):
        """(content (h, w) of the letterbox, uint8 (H, W, 3) image): from the cache, or `load()` then stored.
        `load() -> (image, content_hw)` decodes and letterboxes the frame. The file holds one extra first row
        whose first four bytes are the content size (two little-endian uint16)."""
        path = self.path(image_file)
        try:
            data = np.load(path, allow_pickle=False)
            if data.shape != (self.input_hw[0] + 1, self.input_hw[1], 3) or data.dtype != np.uint8:
                raise ValueError("unexpected cache entry")
            self.hits += 1
            return tuple(int(v) for v in data[0].reshape(-1)[:4].copy().view("<u2")), data[1:]
        except (OSError, ValueError, EOFError):
            pass  # not cached yet (or a file cut short by a crash: rewritten)
        image, content_hw = load()
        header = np.zeros(image.shape[1] * image.shape[2], np.uint8)
        header[:4] = np.array(content_hw, "<u2").view(np.uint8)
        write_atomically(path, lambda handle: np.save(handle, np.concatenate([header.reshape(1, *image.shape[1:]),
                                                                              image])))
        self.misses += 1
        return tuple(content_hw), image
