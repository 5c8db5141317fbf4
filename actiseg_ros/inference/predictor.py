"""Predictor: camera frame + prompts -> per-object masks at camera resolution. The one object a ROS node
or a script needs:

    predictor = Predictor("models/default", backend="auto")
    predictor.set_prompts(["knife used in the action of cut onion", "onion used in the action of cut onion"])
    prediction = predictor.predict(rgb)      # rgb: (H, W, 3) uint8
    prediction.labels                        # (H, W) uint8: 0 background, i + 1 = prompt i

Prompts are encoded once per set_prompts(), never per frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .engines.base import EngineInputError
from .engines.onnxruntime_engine import OrtOptions
from .engines.select import AUTO, create_engine
from .engines.tensorrt_engine import TrtOptions
from .model_card import ModelCardError, load_model_card
from .postprocess import MAX_LABELS, active_objects, label_regions_from_grid, labels_for_active, sigmoid
from .preprocess import PIXEL_MEAN, PIXEL_SCALE, FramePreprocessor, logits_to_camera
from .text import PromptEncoder
from .tokenizer import PromptTokenizer


@dataclass
class ObjectResult:
    index: int  # position in the prompt list; its label value is index + 1
    prompt: str
    score: float  # probability that the object takes part in the action
    active: bool  # score >= the positive gate
    area: int  # pixels labelled index + 1 in the camera image
    bbox: tuple | None  # (x_min, y_min, x_max, y_max) inclusive camera pixels, None when area is 0


@dataclass
class Prediction:
    labels: np.ndarray  # (H, W) uint8 at camera resolution: 0 none, i + 1 = prompt i
    scores: np.ndarray  # (K,) float32 positive probabilities
    active: np.ndarray  # (K,) bool
    objects: list  # K ObjectResult
    mask_logits: np.ndarray | None = None  # (K, H, W) float32 at camera resolution, when asked for
    timings_ms: dict = field(default_factory=dict)  # preprocess / segmenter / postprocess


def check_frame(rgb) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise EngineInputError("the frame must be a numpy array, got %s" % type(rgb).__name__)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise EngineInputError("the frame must be an (H, W, 3) uint8 RGB image, got %s %s" % (rgb.shape, rgb.dtype))
    return rgb


def object_results(labels: np.ndarray, prompts, scores, active, regions: dict | None = None) -> list:
    """Area and inclusive bbox of each prompt's pixels in the label image (only active objects have any).

    regions: {index: (x0, y0, x1, y1)} boxes (exclusive ends) outside which label index + 1 does not occur, as
    label_regions_from_grid returns them (an index not listed has no pixels); each object's pixels are then
    counted inside its box instead of the whole image (0.1 ms per object and VGA frame saved)."""
    results = []
    for index, prompt in enumerate(prompts):
        area, bbox, x0, y0 = 0, None, 0, 0
        if active[index] and (regions is None or index in regions):
            window = labels
            if regions is not None:
                x0, y0, x1, y1 = regions[index]
                window = labels[y0:y1, x0:x1]
            pixels = cv2.compare(window, index + 1, cv2.CMP_EQ)
            area = int(cv2.countNonZero(pixels))
        if area:
            x, y, w, h = cv2.boundingRect(pixels)
            bbox = (x0 + x, y0 + y, x0 + x + w - 1, y0 + y + h - 1)
        results.append(ObjectResult(index=index, prompt=prompt, score=float(scores[index]), active=bool(active[index]),
                                    area=area, bbox=bbox))
    return results


class Predictor:
    """Loads a model folder (model card, tokenizer, both graphs) on the chosen backends."""

    def __init__(self, model_dir, backend: str = AUTO, fallback: str | None = None, text_backend: str = "ort-cpu",
                 threads: int = 0, spin: bool = False, device_id: int = 0, fp16: bool = True, cache_dir=None,
                 max_k: int = 8, prompt_cache_size: int = 64, positive_gate: float | None = None,
                 mask_threshold: float | None = None, check_hashes: bool = True, availability=None,
                 max_batch: int = 1, fold_int8_weights: bool = False):
        """text_backend: the text encoder runs once per prompt change, so by default it stays on the CPU
        (no second TensorRT build, no GPU memory); 'same' uses the segmenter's backend. max_batch: the most
        frames infer_batch() runs in one call on backends whose shape limits are fixed when built (TensorRT);
        larger batches are split. fold_int8_weights: ONNX Runtime dequantizes int8 weights once at load
        (faster prompts, more memory; OrtOptions)."""
        self.card = load_model_card(model_dir, check_hashes=check_hashes)
        if (self.card.pixel_mean, self.card.pixel_scale) != (PIXEL_MEAN, PIXEL_SCALE):
            raise ModelCardError("%s: normalization mean/scale %s/%s differ from this runtime's %s/%s"
                                 % (self.card.model_dir, self.card.pixel_mean, self.card.pixel_scale,
                                    PIXEL_MEAN, PIXEL_SCALE))
        ort_options = OrtOptions(threads=threads, spin=spin, device_id=device_id, fp16=fp16, cache_dir=cache_dir,
                                 max_batch=max_batch, max_k=max_k, max_prompts=max_k,
                                 fold_int8_weights=fold_int8_weights)
        trt_options = TrtOptions(device_id=device_id, fp16=fp16, cache_dir=cache_dir, max_batch=max_batch, max_k=max_k,
                                 max_prompts=max_k)
        self.tokenizer = PromptTokenizer(self.card.tokenizer.path, self.card.max_tokens)
        self.segmenter = create_engine("segmenter", self.card, backend, fallback, ort_options, trt_options,
                                       availability)
        text_choice = self.segmenter.name if text_backend == "same" else text_backend
        self.text_engine = create_engine("text", self.card, text_choice, fallback, ort_options, trt_options,
                                         availability)
        self.text = PromptEncoder(self.tokenizer, self.text_engine, prompt_cache_size)
        self.positive_gate = self.card.positive_gate if positive_gate is None else float(positive_gate)
        self.mask_threshold = self.card.mask_threshold if mask_threshold is None else float(mask_threshold)
        self.prompts: list = []
        self._text_tokens = self._text_mask = None
        self._preprocess = FramePreprocessor(self.card.input_hw)
        self._batch_preprocess: list = []  # frames 2.. of infer_batch(), each with its own reused input tensor
        self._batch_inputs: dict = {}  # batch size -> (images, text_tokens, text_mask) buffers of that size

    @property
    def backend(self) -> str:
        return self.segmenter.name

    @property
    def prompt_features(self) -> tuple:
        """(text_tokens (1, K, L, C), text_mask (1, K, L)) of the current prompts, as the segmenter takes them."""
        if self._text_tokens is None:
            raise RuntimeError("call set_prompts() first")
        return self._text_tokens, self._text_mask

    def set_prompts(self, prompts) -> None:
        """Encode the prompts (cached per string); predict() then segments one object per prompt."""
        if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be a list of strings, got %r" % (prompts,))
        prompts = list(prompts)
        limit = min(MAX_LABELS, self.segmenter.max_k or MAX_LABELS)
        if not 1 <= len(prompts) <= limit:
            raise ValueError("between 1 and %d prompts are supported, got %d" % (limit, len(prompts)))
        tokens, mask = self.text.encode(prompts)
        self._text_tokens, self._text_mask = tokens[None], mask[None]  # (1, K, L, C), (1, K, L)
        self._batch_inputs = {}
        self.prompts = prompts

    def infer(self, rgb) -> tuple:
        """-> (mask_logits (K, H/s, W/s) at model resolution, positive_logits (K,), Letterbox, timings_ms).
        One call at a time: the model input tensor is reused across calls (FramePreprocessor)."""
        if self._text_tokens is None:
            raise RuntimeError("call set_prompts() before predict()")
        check_frame(rgb)
        began = time.perf_counter()
        images, box = self._preprocess(rgb)  # (1, 3, H, W) float32, reused by the next call
        prepared = time.perf_counter()
        mask_logits, positive_logits = self.segmenter.run(images, self._text_tokens, self._text_mask)
        done = time.perf_counter()
        timings = {"preprocess": 1000 * (prepared - began), "segmenter": 1000 * (done - prepared)}
        return mask_logits[0], positive_logits[0], box, timings

    def infer_batch(self, frames) -> tuple:
        """Several frames (sizes may differ), one segmenter call over the graph's batch dimension (split into
        calls of the engine's max_batch where it has one): -> ([(mask_logits (K, h, w), positive_logits (K,),
        Letterbox)] per frame, timings_ms of the whole batch). One call at a time, like infer(); one frame
        goes through infer() itself."""
        if self._text_tokens is None:
            raise RuntimeError("call set_prompts() before predict()")
        frames = [check_frame(rgb) for rgb in frames]
        if len(frames) <= 1:
            if not frames:
                raise ValueError("infer_batch needs at least one frame")
            mask_logits, positive_logits, box, timings = self.infer(frames[0])
            return [(mask_logits, positive_logits, box)], timings
        began = time.perf_counter()
        count = len(frames)
        while len(self._batch_preprocess) < count - 1:
            self._batch_preprocess.append(FramePreprocessor(self.card.input_hw))
        if count not in self._batch_inputs:  # the prompts' features repeated per frame, kept until they change
            self._batch_inputs[count] = (np.empty((count, 3) + tuple(self.card.input_hw), np.float32),
                                         np.repeat(self._text_tokens, count, axis=0),
                                         np.repeat(self._text_mask, count, axis=0))
        images, text_tokens, text_mask = self._batch_inputs[count]
        boxes = []
        for index, rgb in enumerate(frames):
            preprocess = self._preprocess if index == 0 else self._batch_preprocess[index - 1]
            frame_images, box = preprocess(rgb)
            images[index] = frame_images[0]
            boxes.append(box)
        prepared = time.perf_counter()
        step = self.segmenter.max_batch or count
        mask_parts, positive_parts = [], []
        for first in range(0, count, step):
            part = slice(first, min(count, first + step))
            mask_logits, positive_logits = self.segmenter.run(images[part], text_tokens[part], text_mask[part])
            mask_parts.append(mask_logits)
            positive_parts.append(positive_logits)
        done = time.perf_counter()
        if len(mask_parts) > 1:
            mask_logits, positive_logits = np.concatenate(mask_parts), np.concatenate(positive_parts)
        timings = {"preprocess": 1000 * (prepared - began), "segmenter": 1000 * (done - prepared)}
        return [(mask_logits[i], positive_logits[i], boxes[i]) for i in range(count)], timings

    def decide(self, mask_logits, box, image_hw, scores, active, mask_threshold: float | None = None,
               camera_logits=None, prompts=None) -> tuple:
        """Label image (H, W) uint8 and per-object results for given decisions: predict() gates the raw
        scores; the ROS node passes temporally smoothed ones. Only active objects' logits are resized to
        camera size unless camera_logits (K, H, W) are already at hand. prompts: those the logits were made
        with, when set_prompts() may have been called since (the node decides on another thread); by default
        the current ones. Safe to call while another thread runs infer()/infer_batch()."""
        active_index = np.flatnonzero(active)
        threshold = self.mask_threshold if mask_threshold is None else mask_threshold
        regions = None
        if camera_logits is not None:
            labels = labels_for_active(camera_logits[active_index], active_index, tuple(image_hw), threshold)
        else:
            if tuple(image_hw) != tuple(box.src_hw):
                raise ValueError("image size %s differs from the letterbox's source %s" % (tuple(image_hw), box.src_hw))
            labels, regions = label_regions_from_grid(mask_logits[active_index], active_index, box, threshold)
        return labels, object_results(labels, self.prompts if prompts is None else prompts, scores, active, regions)

    def predict(self, rgb, return_logits: bool = False) -> Prediction:
        mask_logits, positive_logits, box, timings = self.infer(rgb)
        began = time.perf_counter()
        active = active_objects(positive_logits, self.positive_gate)
        scores = sigmoid(positive_logits).astype(np.float32)
        camera_logits = logits_to_camera(mask_logits, box) if return_logits else None
        labels, objects = self.decide(mask_logits, box, rgb.shape[:2], scores, active, camera_logits=camera_logits)
        timings["postprocess"] = 1000 * (time.perf_counter() - began)
        return Prediction(labels=labels, scores=scores, active=active, objects=objects, mask_logits=camera_logits,
                          timings_ms=timings)

    def close(self) -> None:
        self._preprocess.close()
        for preprocess in self._batch_preprocess:
            preprocess.close()
        self.segmenter.close()
        self.text_engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
