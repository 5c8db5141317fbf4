"""One camera frame -> the node's outputs, with no ROS in sight: the action in force, its prompts, the model,
temporal smoothing of the positive scores and the label image.

Thresholds have one source: the model card's positive gate and mask threshold, each overridden by its
parameter when that is not 0 (as Predictor takes the card's unless told otherwise).

Several cameras share one pipeline (one model, one engine): the frames that waited run together through one
engine call; each camera keeps its own score smoothing.

Two stages, so that one batch's decisions and publishing overlap the next batch's engine run (on 2 CPU cores
the engine leaves a core idle while Python post-processes): run(frames) applies a queued action and runs the
engine, returning a BatchRun that carries everything its frames are decided with (action, prompts, settings);
finish(batch_run) yields each frame's FrameResult. process() and process_batch() do both in one call.

Thread model: request_action() and update_settings() are called from the ROS executor; run() from the
inference worker; finish() from one thread (the node's publishing thread), batches in the order run() made
them. A new action is parsed (and refused) at once, but only applied at the start of the next run(), so a
frame is always segmented with one consistent set of prompts and an action change takes effect with the next
frame the worker takes.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from actiseg_ros.inference.postprocess import sigmoid
from actiseg_ros.ros.action_parsing import ActionCommand, build_prompts, parse_action
from actiseg_ros.ros.params import Settings
from actiseg_ros.ros.smoothing import ScoreSmoother


@dataclass
class ObjectOutput:
    id: int  # label value in /actiseg/labels (1-based position in the candidate list)
    name: str
    prompt: str
    score: float  # the score the decision used (smoothed when smoothing is on)
    raw_score: float  # this frame's score
    active: bool
    bbox: tuple | None  # (x_min, y_min, x_max, y_max) inclusive camera pixels
    area: int  # pixels labelled `id`


@dataclass
class FrameResult:
    labels: np.ndarray  # (H, W) uint8: 0 none, i = objects[i - 1]
    mask: np.ndarray  # (H, W) uint8: 255 where any active object is
    objects: list  # ObjectOutput per candidate
    action: ActionCommand | None
    timings_ms: dict = field(default_factory=dict)


@dataclass
class BatchRun:
    """One engine call's outputs for its frames, waiting for finish() (possibly on another thread)."""
    frames: list  # [(camera name, (H, W, 3) uint8 RGB)]
    command: ActionCommand | None  # the action in force for these frames (None: the model was not run)
    prompts: list  # the prompts the engine ran with, one per command.objects entry
    generation: int  # counts applied actions: smoothing restarts when it changes
    settings: Settings
    outputs: list  # [(mask_logits (K, h, w), positive_logits (K,), Letterbox)] per frame; [] when command is None
    timings_ms: dict  # the call's shared stage times (prompts, preprocess, segmenter)


class PerceptionPipeline:
    def __init__(self, predictor, settings: Settings, vocabulary=None):
        """predictor: actiseg_ros.inference.predictor.Predictor (or anything with its infer/set_prompts/card)."""
        self.predictor = predictor
        self.vocabulary = vocabulary
        self._lock = threading.Lock()
        self._settings = settings
        self._smoothers: dict = {}  # camera name -> [ScoreSmoother, generation]: finish()'s, one per camera
        self._generation = 0  # applied actions; run() stamps it on its BatchRun
        self._action_text = ""  # the last accepted command, re-parsed when the candidate parameters change
        self._pending: tuple | None = None  # (ActionCommand | None,) waiting for the worker
        self._current: ActionCommand | None = None
        self._prompts: list = []

    # --- executor side ----------------------------------------------------------------------------------

    def parse(self, text: str, settings: Settings | None = None) -> ActionCommand | None:
        """Parse a command with the candidate settings; raises ActionError."""
        settings = settings or self._settings
        return parse_action(text, self.vocabulary, settings.always_objects, settings.objects, settings.max_objects)

    def request_action(self, text: str) -> ActionCommand | None:
        """Parse and queue an action for the next frame; raises ActionError (the current action stays)."""
        command = self.parse(text)
        with self._lock:
            self._action_text = text
            self._pending = (command,)
        return command

    def check_settings(self, settings: Settings) -> None:
        """Raise ActionError if the action in force would be invalid under new candidate settings."""
        self.parse(self._action_text, settings)

    def update_settings(self, settings: Settings) -> None:
        """Apply runtime-changeable settings; the action is re-parsed when its candidate lists changed."""
        old = self._settings
        reparse = (old.objects, old.always_objects, old.max_objects) != (settings.objects, settings.always_objects,
                                                                         settings.max_objects)
        with self._lock:
            command = self.parse(self._action_text, settings) if reparse else None  # may raise: nothing changed yet
            self._settings = settings
            if reparse:
                self._pending = (command,)

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def action(self) -> ActionCommand | None:
        return self._current

    def thresholds(self, settings: Settings | None = None) -> tuple:
        """(positive gate, mask threshold) in force: a parameter's value, or the model card's where it is 0."""
        settings = settings or self._settings
        return (settings.positive_gate or self.predictor.card.positive_gate,
                settings.mask_threshold or self.predictor.card.mask_threshold)

    # --- worker side ------------------------------------------------------------------------------------

    def _smoother(self, camera: str, settings: Settings, generation: int) -> ScoreSmoother:
        entry = self._smoothers.get(camera)
        if entry is None:
            entry = self._smoothers[camera] = [ScoreSmoother(settings.smoothing_alpha, settings.smoothing_hysteresis),
                                               generation]
        smoother = entry[0]
        smoother.configure(settings.smoothing_alpha, settings.smoothing_hysteresis)
        if entry[1] != generation:  # a new action: its first frame is decided on its own score
            smoother.reset()
            entry[1] = generation
        return smoother

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        command = pending[0]
        if command is not None:
            prompts = build_prompts(command, self.predictor.card.prompt_template)
            self.predictor.set_prompts(prompts)  # encodes new prompts once (cached per string)
            self._prompts = prompts
        else:
            self._prompts = []
        self._current = command
        self._generation += 1

    def run(self, frames) -> BatchRun:
        """[(camera, (H, W, 3) uint8 RGB)] -> BatchRun: the queued action applied, then one engine call for all
        frames (none with no action in force). Inference-thread side; one call at a time."""
        settings = self._settings
        began = time.perf_counter()
        self._apply_pending()
        command = self._current
        timings = {"prompts": 1000 * (time.perf_counter() - began)}
        outputs = []
        if command is not None:
            outputs, model_timings = self.predictor.infer_batch([rgb for _camera, rgb in frames])
            timings.update(model_timings)
        return BatchRun(frames=list(frames), command=command, prompts=list(self._prompts),
                        generation=self._generation, settings=settings, outputs=outputs, timings_ms=timings)

    def finish(self, batch: BatchRun):
        """BatchRun -> FrameResult per frame, in order, yielded as each is ready (so the first can be published
        while the next is decided). Each result's timings_ms holds the engine call's shared stage times and its
        own postprocess."""
        if batch.command is None:
            for _camera, rgb in batch.frames:
                yield _empty_result(rgb, dict(batch.timings_ms))
            return
        for (camera, rgb), (mask_logits, positive_logits, box) in zip(batch.frames, batch.outputs):
            yield self._decide(camera, rgb, batch, mask_logits, positive_logits, box)

    def process(self, rgb: np.ndarray, camera: str = "") -> FrameResult:
        """(H, W, 3) uint8 RGB -> FrameResult, both stages in this thread. With no action in force the model is
        not run: empty outputs."""
        return next(self.finish(self.run([(camera, rgb)])))

    def process_batch(self, frames):
        """[(camera, rgb)] -> FrameResult per frame (a generator), both stages in this thread."""
        return self.finish(self.run(frames))

    def _decide(self, camera, rgb, batch: BatchRun, mask_logits, positive_logits, box) -> FrameResult:
        post_began = time.perf_counter()
        settings, command = batch.settings, batch.command
        gate, mask_threshold = self.thresholds(settings)
        raw = sigmoid(np.asarray(positive_logits, np.float32)).astype(np.float32)  # (K,)
        if settings.smoothing_enabled:
            scores, active = self._smoother(camera, settings, batch.generation).update(raw, gate)
        else:
            scores, active = raw, raw >= gate
        labels, results = self.predictor.decide(mask_logits, box, rgb.shape[:2], scores, active, mask_threshold,
                                                prompts=batch.prompts)
        objects = [ObjectOutput(id=r.index + 1, name=command.objects[r.index], prompt=r.prompt, score=float(r.score),
                                raw_score=float(raw[r.index]), active=r.active, bbox=r.bbox, area=r.area)
                   for r in results]
        mask = cv2.compare(labels, 0, cv2.CMP_GT)  # 255 where labelled
        timings = dict(batch.timings_ms)
        timings["postprocess"] = 1000 * (time.perf_counter() - post_began)
        return FrameResult(labels=labels, mask=mask, objects=objects, action=command, timings_ms=timings)


def _empty_result(rgb: np.ndarray, timings: dict) -> FrameResult:
    labels = np.zeros(rgb.shape[:2], np.uint8)
    return FrameResult(labels=labels, mask=labels.copy(), objects=[], action=None, timings_ms=timings)


# --- construction (at configure) ---------------------------------------------------------------------------

class ConfigureError(RuntimeError):
    """The pipeline cannot be built from the settings; the message says what to fix."""


def resolve_model_dir(model_dir: str):
    from pathlib import Path

    if model_dir:
        return Path(model_dir).expanduser()
    from actiseg_ros.paths import models_dir

    try:
        return models_dir() / "default"
    except FileNotFoundError as err:
        raise ConfigureError("no model_dir set and %s" % err) from None


def create_pipeline(settings: Settings) -> PerceptionPipeline:
    """Load the model named by the settings and queue the initial action; raises ConfigureError."""
    from actiseg_ros.inference.predictor import Predictor
    from actiseg_ros.ros.action_parsing import ActionError

    model_dir = resolve_model_dir(settings.model_dir)
    if not (model_dir / "model_card.json").is_file():
        raise ConfigureError("%s is not an exported model folder (no model_card.json); set the parameter model_dir "
                             "to the output of `actiseg export`" % model_dir)
    try:
        predictor = Predictor(model_dir, backend=settings.backend, fallback=settings.fallback_backend or None,
                              threads=settings.threads, max_k=settings.max_objects,
                              max_batch=max(1, len(settings.cameras)))
    except Exception as err:  # model card, graph, backend errors: all end the configure transition, never the node
        raise ConfigureError("cannot load the model in %s: %s" % (model_dir, err)) from None
    expected = tuple(settings.input_size)
    if expected != (0, 0) and expected != tuple(predictor.card.input_hw):
        predictor.close()
        raise ConfigureError("the parameter input_size is %s but the model in %s takes %s (height, width); exported "
                             "graphs have a fixed size: set input_size to [0, 0] or use a model exported at %s"
                             % (list(expected), model_dir, list(predictor.card.input_hw), list(expected)))
    pipeline = PerceptionPipeline(predictor, settings, predictor.card.raw.get("vocabulary") or None)
    if settings.action:
        try:
            pipeline.request_action(settings.action)
        except ActionError as err:
            predictor.close()
            raise ConfigureError("the parameter action is unusable: %s" % err) from None
    return pipeline
