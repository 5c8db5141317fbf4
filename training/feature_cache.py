"""On-disk cache of the frozen image backbone's features, one file per frame (config key `feature_cache: DIR`).

With `model.backbone_trainable: false` the backbone is a fixed function of the letterboxed frame: in
training mode it still runs in eval mode (ImageNet batch-norm statistics, no drop-connect), so its four
feature maps depend only on the image bytes, the backbone weights and the input size. The training loop
asks this cache for the features of every frame of a batch; a frame seen before is read from disk instead of
running the backbone again (1.15x-1.7x faster CPU steps at 192x320 in two runs at different load, and no
prompt encoding at start-up: benchmarks/results/bench_feature_cache.md). A killed writer may leave a
`.NAME.tmpPID` file behind; it is never read and may be deleted.

Exact only without photometric jitter (a jittered frame differs every epoch); config.validate refuses
`feature_cache` with `jitter > 0` or a trainable backbone. The data pipeline has no spatial augmentation
(letterbox only: left and right hands must stay left and right), so nothing else changes the input.

Layout: DIR/<backbone>-<weights digest>-<H>x<W>-v<version>/<2 hex>/<image digest>.npz, the four maps in
float32. The key is the SHA-256 of the image file's bytes, not its path: the noisy copies of a data set made
by `actiseg corrupt` (hard links to the same frames) share one cache, and a frame rewritten under the same
name gets a new key. Another backbone, other weights (e.g. other batch-norm statistics) or another input
size get another folder. Files are written to a temporary name and renamed, so several training jobs may
fill the same cache at once: a reader never sees a half-written file, and two writers of one frame write
the same bytes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from .frame_cache import write_atomically

CACHE_VERSION = 1
NAMES = ("f4", "f8", "f16", "f32")


def module_digest(module: torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) of a module's state (parameters and buffers, e.g. batch-norm statistics)."""
    digest = hashlib.sha256()
    state = module.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(("%s:%s:%s;" % (name, tensor.dtype, tuple(tensor.shape))).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def file_digest(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:32]


class FeatureCache:
    """features(image_files, images) -> the backbone's [f4, f8, f16, f32] for a batch of frames.

    `encoder` is the model's frozen ImageEncoder; `input_hw` the letterboxed size the images have.
    Counters `hits` and `misses` say how many frames were read and computed.
    """

    def __init__(self, directory, encoder: torch.nn.Module, input_hw, backbone: str):
        self.encoder = encoder
        self.input_hw = tuple(int(s) for s in input_hw)
        self.folder = Path(directory) / ("%s-%s-%dx%d-v%d" % (backbone, module_digest(encoder), *self.input_hw,
                                                               CACHE_VERSION))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0
        self._keys: dict = {}  # image file -> digest; a run reads each file's bytes once

    def path(self, image_file) -> Path:
        image_file = str(image_file)
        key = self._keys.get(image_file)
        if key is None:
            key = self._keys[image_file] = file_digest(image_file)
        return self.folder / key[:2] / (key + ".npz")

    def _read(self, path: Path):
        try:
            with np.load(path) as stored:
                return [torch.from_numpy(stored[name]) for name in NAMES]
        except FileNotFoundError:
            return None

    def _write(self, path: Path, maps: list) -> None:
        write_atomically(path, lambda handle: np.savez(handle, **{name: m.numpy() for name, m in zip(NAMES, maps)}))

    @torch.no_grad()
    def features(self, image_files: list, images: torch.Tensor) -> list:
        """image_files: N paths; images (N, 3, H, W) the same frames as the model sees them (on any device).

        Frames not in the cache go through the encoder together, in eval mode, and are stored. Returns the
        four maps as (N, C, h, w) float32 tensors on the images' device.
        """
        if images.shape[0] != len(image_files):
            raise ValueError("%d image files for %d images" % (len(image_files), images.shape[0]))
        if tuple(images.shape[-2:]) != self.input_hw:
            raise ValueError("images are %s, this cache holds %s inputs" % (tuple(images.shape[-2:]), self.input_hw))
        paths = [self.path(f) for f in image_files]
        found = [self._read(p) for p in paths]
        missing = [i for i, maps in enumerate(found) if maps is None]
        if missing:
            was_training = self.encoder.training
            self.encoder.eval()
            computed = self.encoder(images[missing])
            self.encoder.train(was_training)
            for row, i in enumerate(missing):
                maps = [level[row].detach().cpu().clone() for level in computed]
                self._write(paths[i], maps)
                found[i] = maps
        self.hits += len(paths) - len(missing)
        self.misses += len(missing)
        return [torch.stack([maps[level] for maps in found]).to(images.device) for level in range(len(NAMES))]


def add_prompts_cached(bank, prompts, directory) -> bool:
    """bank.add(prompts) through DIR/prompts-<digest>.pt; returns True when it was read from the cache.

    The frozen text encoder's features of a data set's whole prompt list are stored as one file, keyed by the
    encoder's weights, the tokenizer's vocabulary size and the sorted prompts: the bank is exactly what
    bank.add would compute (the same prompts in the same batches), and every cell of a grid trained on the same
    (noisy) data reads it instead of encoding some 3,500 prompts again (50 s of a 2-core CPU per model).
    """
    prompts = sorted(set(prompts))
    digest = hashlib.sha256()
    digest.update(module_digest(bank.encoder).encode())
    digest.update(str(len(bank.tokenizer)).encode())
    digest.update("\n".join(prompts).encode())
    path = Path(directory) / ("prompts-%s-v%d.pt" % (digest.hexdigest()[:16], CACHE_VERSION))
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        bank.set_features({p: (tokens, mask) for p, tokens, mask in zip(prompts, stored["tokens"], stored["mask"])})
        return True
    bank.add(prompts)
    features = [bank.features(p) for p in prompts]
    stored = {"tokens": torch.stack([t for t, _ in features]), "mask": torch.stack([m for _, m in features])}
    write_atomically(path, lambda handle: torch.save(stored, handle))
    return False
