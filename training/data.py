"""Training data: ActionVOS segments -> letterboxed clips with per-prompt targets and action-guided weights.

Every random choice of a sample (which frames, photometric jitter) comes from a generator seeded by
(seed, epoch, index), so a resumed run sees exactly the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from actiseg_ros.data import actionvos
from actiseg_ros.inference.preprocess import letterbox_image, letterbox_labels, normalize

from .frame_cache import FrameCache
from .losses import remap_action_weights

@dataclass
class ClipSample:
    """One training clip. T frames, K objects of the segment, L tokens.

    images    (T, 3, H, W) float32 normalised, letterboxed
    targets   (T, K, H, W) float32 {0,1}
    weights   (T, K, H, W) float32 {1,2,5}
    objects   (T, K, H, W) bool    each object's own pixels, active or not (targets zero a negative's)
    positive  (K,) float32 clip-level positive flags
    prompts   K prompt strings (ActionVOS form)
    index     position of the segment in the split
    frames    (T,) int64 positions of the picked frames in the segment's sparse_frames
    object_ids K object ids, in prompt order (sorted)
    image_files T paths of the picked frames' image files (the feature cache's key, feature_cache.py)
    (index, frame position, object id) names the same pixels whenever a clip recurs: it keys per-pixel
    state such as ELR targets and NPN candidate labels.
    """

    images: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor
    objects: torch.Tensor
    positive: torch.Tensor
    prompts: list
    index: int
    frames: torch.Tensor
    object_ids: list
    image_files: list


def photometric_jitter(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness/contrast/colour jitter; geometry untouched (left/right hands must stay left/right)."""
    if strength <= 0:
        return rgb
    contrast = 1.0 + rng.uniform(-strength, strength)
    brightness = rng.uniform(-strength, strength) * 64.0
    colour = 1.0 + rng.uniform(-strength / 2, strength / 2, size=3)
    out = (rgb.astype(np.float32) - 127.0) * contrast + 127.0 + brightness
    return np.clip(out * colour, 0, 255).astype(np.uint8)


class SegmentClips(torch.utils.data.Dataset):
    def __init__(self, root, split: str, input_hw, frames_per_clip: int = 5, jitter: float = 0.0,
                 seed: int = 0, skip_bad: bool = False, frame_cache: str = ""):
        data = actionvos.read_split(root, split, skip_bad=skip_bad)
        if not data.segments:
            raise actionvos.DatasetError("%s: split %s has no usable segments" % (root, split))
        self.root, self.split, self.segments, self.skipped = root, split, data.segments, data.skipped
        self.input_hw, self.frames_per_clip, self.jitter, self.seed = tuple(input_hw), frames_per_clip, jitter, seed
        self.epoch = 0
        # Decoded, letterboxed frames on disk (training/frame_cache.py); jitter then goes on after the resize.
        self.frame_cache = FrameCache(frame_cache, self.input_hw) if frame_cache else None

    def _letterboxed(self, image_file, rng):
        if self.frame_cache is None:
            rgb, _ = letterbox_image(photometric_jitter(actionvos.read_image(image_file), rng, self.jitter),
                                     self.input_hw)
            return rgb

        def load():
            image, box = letterbox_image(actionvos.read_image(image_file), self.input_hw)
            return image, box.content_hw

        (height, width), cached = self.frame_cache.letterboxed(image_file, load)
        rgb = cached.copy()
        rgb[:height, :width] = photometric_jitter(rgb[:height, :width], rng, self.jitter)
        return rgb

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.segments)

    def prompts(self) -> list:
        return sorted({seg.prompt(k) for seg in self.segments for k in seg.objects})

    def __getitem__(self, index: int) -> ClipSample:
        segment = self.segments[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        picked = np.arange(len(segment.sparse_frames))
        if self.frames_per_clip < len(picked):
            picked = np.sort(rng.choice(len(picked), self.frames_per_clip, replace=False))
        elif self.frames_per_clip > len(picked):
            # A shorter segment (VISOR has actions of 2 annotated frames) repeats its frames in order, so that
            # every clip of a batch has frames_per_clip frames; no random draw, so other clips are unchanged.
            picked = np.sort(np.resize(picked, self.frames_per_clip))
        frames = [segment.sparse_frames[i] for i in picked]
        object_ids = sorted(segment.objects)
        images, targets, weights, objects = [], [], [], []
        image_files = [str(actionvos.image_path(self.root, self.split, segment.name, f)) for f in frames]
        for frame, image_file in zip(frames, image_files):
            labels = actionvos.read_label_png(actionvos.annotation_path(self.root, self.split, segment.name, frame))
            weight_file = actionvos.weight_path(self.root, self.split, segment.name, frame)
            # Without a weight map every pixel weighs 1 (plain focal loss), as for data with no hand boxes.
            raw = actionvos.read_label_png(weight_file) if weight_file.is_file() else np.ones_like(labels)
            rgb = self._letterboxed(image_file, rng)
            labels = letterbox_labels(labels, self.input_hw)
            raw = letterbox_labels(raw, self.input_hw)
            raw[raw == 0] = 1  # letterbox padding is plain background
            masks = [labels == k for k in object_ids]  # each object's own pixels, active or not
            per_object = [remap_action_weights(raw, mask, bool(segment.objects[k].positive))
                          for mask, k in zip(masks, object_ids)]
            images.append(normalize(rgb))
            targets.append(np.stack([t for t, _ in per_object]))
            weights.append(np.stack([w for _, w in per_object]))
            objects.append(np.stack(masks))
        positive = np.array([segment.objects[k].positive for k in object_ids], np.float32)
        return ClipSample(images=torch.from_numpy(np.stack(images)), targets=torch.from_numpy(np.stack(targets)),
                          weights=torch.from_numpy(np.stack(weights)), objects=torch.from_numpy(np.stack(objects)),
                          positive=torch.from_numpy(positive),
                          prompts=[segment.prompt(k) for k in object_ids], index=index,
                          frames=torch.from_numpy(picked.astype(np.int64)), object_ids=object_ids,
                          image_files=image_files)


class MixedClips(torch.utils.data.Dataset):
    """Several SegmentClips as one data set (the main split first, then each `mix_data` part); a sample's
    `index` is its position in the whole, so per-sample state (ELR, NPN) keys stay unique."""

    def __init__(self, parts: list):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).tolist()
        self.segments = [seg for part in self.parts for seg in part.segments]
        self.skipped = [s for part in self.parts for s in part.skipped]

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)

    def __len__(self) -> int:
        return self.offsets[-1]

    def prompts(self) -> list:
        return sorted({p for part in self.parts for p in part.prompts()})

    def __getitem__(self, index: int) -> ClipSample:
        which = int(np.searchsorted(self.offsets, index, side="right")) - 1
        sample = self.parts[which][index - self.offsets[which]]
        sample.index = index
        return sample


def training_clips(config) -> torch.utils.data.Dataset:
    """The training data of a TrainConfig: `data_root`'s `train_split`, plus every `mix_data` part (a
    deterministic subset of `segments` segments of its split when given)."""
    def clips(root, split):
        return SegmentClips(root, split, config.model.input_hw, config.frames_per_clip, config.jitter, config.seed,
                            config.skip_bad, config.frame_cache)

    main = clips(config.data_root, config.train_split)
    if not config.mix_data:
        return main
    parts = [main]
    for entry in config.mix_data:
        part = clips(entry["root"], entry.get("split", "train"))
        wanted = int(entry.get("segments", 0))
        if wanted > len(part.segments):
            raise actionvos.DatasetError("mix_data %s: %d segments asked for, split %s has %d"
                                         % (entry["root"], wanted, part.split, len(part.segments)))
        if wanted:
            keep = np.sort(np.random.default_rng([config.seed, 4242]).permutation(len(part.segments))[:wanted])
            part.segments = [part.segments[i] for i in keep]
        parts.append(part)
    return MixedClips(parts)


def collate_clips(samples: list) -> dict:
    """Pad K to the batch maximum. Shapes: images (B, T, 3, H, W); targets/weights/objects (B, T, Kmax, H, W);
    positive (B, Kmax); valid (B, Kmax) bool; prompts: B lists; index (B,); frames (B, T) int64;
    object_ids (B, Kmax) int64, -1 in padded slots; image_files: the B*T frames' files, clip-major."""
    k_max = max(s.targets.shape[1] for s in samples)
    b, (t, _, h, w) = len(samples), samples[0].images.shape
    targets = torch.zeros(b, t, k_max, h, w)
    weights = torch.ones(b, t, k_max, h, w)
    objects = torch.zeros(b, t, k_max, h, w, dtype=torch.bool)
    positive = torch.zeros(b, k_max)
    valid = torch.zeros(b, k_max, dtype=torch.bool)
    object_ids = torch.full((b, k_max), -1, dtype=torch.int64)
    for i, s in enumerate(samples):
        k = s.targets.shape[1]
        targets[i, :, :k], weights[i, :, :k], objects[i, :, :k] = s.targets, s.weights, s.objects
        positive[i, :k], valid[i, :k] = s.positive, True
        object_ids[i, :k] = torch.tensor(s.object_ids, dtype=torch.int64)
    return {"images": torch.stack([s.images for s in samples]), "targets": targets, "weights": weights,
            "objects": objects, "positive": positive, "valid": valid, "prompts": [s.prompts for s in samples],
            "index": torch.tensor([s.index for s in samples]), "frames": torch.stack([s.frames for s in samples]),
            "object_ids": object_ids, "image_files": [f for s in samples for f in s.image_files]}


def epoch_order(num_samples: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list:
    """This rank's sample order for one epoch: a permutation keyed by (seed, epoch), dealt round-robin
    to ranks and padded by wrapping so every rank runs the same number of steps (DDP needs that)."""
    order = np.random.default_rng([seed, epoch, 7919]).permutation(num_samples).tolist()
    per_rank = -(-num_samples // world)
    order = (order * 2)[: per_rank * world]
    return order[rank::world]
