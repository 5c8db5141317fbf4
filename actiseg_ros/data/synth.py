"""Synthetic egocentric kitchen action data in the ActionVOS layout, and a frame-by-frame stream of it.

Why synthetic: real ActionVOS/VISOR data cannot be downloaded here. The generator is built so that the
action text matters: every scene (one "video": fixed layout and appearance of 7-10 objects plus two hands)
is narrated with several actions whose active objects differ, so the same pixels at the start of different
segments carry different labels, and only the narration tells them apart. Each segment has 3+ negative
objects on average, unnamed positives (the board under the onion being cut, the sponge used to wash a plate,
the bottle poured from) and narration-only positives (the glass being poured into, and the reference objects
of most narrations: "take knife from between board and plate", "turn on tap to rinse mug", "cut onion for
pan"). As in real kitchens, most scenes hold the same staples (sink with tap, chopping board, plate, knife),
so another segment's narration usually names objects that are present but not involved: a model has to read
the text, not only look for what the hands touch (synth_scene.STAPLES, ActionKind.ref_templates).

Labels follow ActionVOS (spec section 2): positive = named in the narration OR meeting a hand-object box in
an annotated frame (hands always), computed from the rendered label images at a fixed reference resolution
(REFERENCE_SIZE), so flags do not depend on the output size.

Data set API
    plan = plan_dataset(PRESETS["tiny"], seed=0)          # scenes, actions, flags; no pixels
    write_dataset(plan, root, size=(128, 96))             # JPEGImages_Sparse, Annotations_Sparse, Weights_Sparse,
                                                          # ImageSets/{train,val,val_human}.json
    dataset_stats(plan)                                   # segments, objects, positives, negatives per segment
Splits: train and val use disjoint scenes. val and val_human share the val scenes but hold different
segments (different actions of those scenes); val_human entries carry redundant/missing/other = false.

Frame-level streaming API (for a ROS replay node)
    stream = SceneStream(seed=3, size=(640, 360))
    for i in range(len(stream)):
        f = stream.render(i)   # StreamFrame: rgb (H, W, 3) uint8, labels (H, W) uint8 object ids,
                               # objects {id: ObjectInfo} flags of the action under way, narration, ...
Consecutive actions of a stream join continuously (each starts and ends with the hands at rest and objects
in place), so it plays as one video with scripted action changes. `render_frame(scene, action, t, frame,
renderer)` is the same for one (action, time) pair.

Determinism: the same seed gives the same scenes, the same ImageSets bytes and the same pixels (for the
same size, on the same numpy/OpenCV build).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actiseg_ros.data.actionvos import LayoutWriter, ObjectInfo, Segment
from actiseg_ros.data.synth_labels import (hand_object_boxes, ids_in_boxes, object_flags, pixel_counts, weight_lut,
                                           weight_map)
from actiseg_ros.data.synth_motion import ACT_END, APPROACH_END, act_times, frame_state
from actiseg_ros.data.synth_render import SceneRenderer
from actiseg_ros.data.synth_scene import Action, Scene, SceneConfig, related_objects, sample_scene
from actiseg_ros.data import synth_domain, taxonomy

REFERENCE_SIZE = (320, 180)  # where hand-object boxes and visibility are measured
MIN_VISIBLE_PIXELS = 12  # at REFERENCE_SIZE; an object must show this much in some annotated frame


@dataclass(frozen=True)
class Preset:
    name: str
    size: tuple  # (W, H) default output size
    train_scenes: int
    val_scenes: int
    actions_per_scene: int
    frames_per_segment: int
    objects: tuple  # objects per scene range, hands not counted


PRESETS = {
    # For tests: a few seconds; 12 train, 4 val and 4 val_human segments.
    "tiny": Preset("tiny", (128, 96), train_scenes=3, val_scenes=2, actions_per_scene=4, frames_per_segment=5,
                   objects=(7, 9)),
    # For training the shipped model on a CPU: 360 train, 60 val and 60 val_human segments at half ActionVOS size.
    "default": Preset("default", (427, 240), train_scenes=90, val_scenes=30, actions_per_scene=4,
                      frames_per_segment=5, objects=(7, 10)),
}


@dataclass
class PlannedAction:
    action: Action
    start: int  # video frame where the action begins (t = 0)
    frames: list  # video frame indices of the annotated (sparse) frames
    times: list  # normalised action time of each annotated frame
    flags: dict  # object name -> (handbox, narration, positive)

    @property
    def act_start(self) -> int:
        return self.start + int(round(APPROACH_END * self.action.duration))

    @property
    def act_end(self) -> int:
        return self.start + int(round(ACT_END * self.action.duration))


@dataclass
class ScenePlan:
    scene: Scene
    actions: list  # PlannedAction, in video order

    @property
    def video(self) -> str:
        return "S%04d" % self.scene.uid

    @property
    def length(self) -> int:
        return sum(p.action.duration for p in self.actions)


@dataclass
class SegmentPlan:
    split: str
    seq_id: int
    scene_plan: ScenePlan
    index: int  # which planned action of the scene

    @property
    def planned(self) -> PlannedAction:
        return self.scene_plan.actions[self.index]


@dataclass
class DatasetPlan:
    preset: Preset
    seed: int
    segments: list = field(default_factory=list)  # SegmentPlan in writing order

    def split(self, name: str) -> list:
        return [s for s in self.segments if s.split == name]


# --- planning (no colour rendering) --------------------------------------------------------------------

def scene_seed(seed: int, split_code: int, index: int) -> int:
    """Independent, reproducible seed per (data set seed, split, scene)."""
    return int(np.random.SeedSequence([seed, split_code, index]).generate_state(1)[0])


def evaluate_action(scene: Scene, action: Action, start: int, n_frames: int,
                    renderer: SceneRenderer) -> PlannedAction | None:
    """Flags of an action measured on reference-size label images, or None when the action is unusable:
    some object never shows (MIN_VISIBLE_PIXELS), its target or tools are hidden in most annotated frames,
    or a hand-object box meets an object the action has nothing to do with (a bystander in the way; see
    synth_scene.related_objects)."""
    names = scene.object_names
    allowed = {i + 1 for i, n in enumerate(names) if n in related_objects(scene, action) or n in taxonomy.HAND_NAMES}
    times, frames = [], []
    for t in act_times(n_frames):
        frame = start + int(round(t * action.duration))
        frames.append(frame)
        times.append((frame - start) / action.duration)
    involved = [names.index(n) + 1 for n in (action.target, *action.roles.values())]
    touched = set()
    seen = np.zeros(len(names) + 1, np.int64)
    shown = np.zeros(len(names) + 1, np.int64)  # frames in which each object shows
    for t, frame in zip(times, frames):
        state = frame_state(scene, action, t, frame)
        rendered = renderer.render(state, frame)
        boxes = hand_object_boxes(state.contacts, rendered.hand_boxes, rendered.object_boxes)
        touched |= ids_in_boxes(rendered.labels, boxes)
        if touched - allowed:
            return None
        counts = pixel_counts(rendered.labels, len(names))
        seen = np.maximum(seen, counts)
        shown += counts >= MIN_VISIBLE_PIXELS
    # Every object shows somewhere; the objects the action is about show in most annotated frames.
    if seen[1:].min() < MIN_VISIBLE_PIXELS or shown[involved].min() * 2 < n_frames:
        return None
    flags = object_flags(names, taxonomy.HAND_NAMES, action.named, touched)
    return PlannedAction(action=action, start=start, frames=frames, times=times, flags=flags)


def plan_scene(uid: int, seed: int, n_actions: int, n_frames: int, objects: tuple = (7, 10),
               domain: str = "kitchen") -> ScenePlan:
    """A scene with `n_actions` valid actions (evaluate_action) laid end to end, whose narrations and
    positive sets all differ; candidates naming more reference objects are tried first. Resamples the scene
    (derived seeds) until that holds."""
    config = SceneConfig(objects=objects, candidate_actions=max(9, 2 * n_actions + 1),
                         domain=synth_domain.domain(domain))
    for attempt in range(40):
        scene = sample_scene(uid, seed if attempt == 0 else scene_seed(seed, 99, attempt), config)
        renderer = SceneRenderer(scene, *REFERENCE_SIZE, labels_only=True)
        chosen, start = [], 0
        narrations, positive_sets = set(), set()
        # Narrations naming more objects the hands leave alone first: they make the text matter most.
        for action in sorted(scene.actions, key=lambda a: -len(a.refs)):
            if action.narration in narrations:
                continue
            planned = evaluate_action(scene, action, start, n_frames, renderer)
            if planned is None:
                continue
            positives = frozenset(n for n, f in planned.flags.items() if f[2])
            if positives in positive_sets:
                continue
            chosen.append(planned)
            narrations.add(action.narration)
            positive_sets.add(positives)
            start += action.duration
            if len(chosen) == n_actions:
                return ScenePlan(scene=scene, actions=chosen)
    raise RuntimeError("no valid scene for uid %d seed %d after 40 attempts" % (uid, seed))


def plan_dataset(preset: Preset, seed: int, progress: bool = False, domain: str = "kitchen") -> DatasetPlan:
    """Scenes, actions and labels of a whole data set, without drawing colour frames. `domain`: a
    synth_domain.DOMAINS name (the shipped model's `kitchen`, or the held-out `kitchen_b`)."""
    plan = DatasetPlan(preset=preset, seed=seed)
    jobs = [("train", 0, i, i) for i in range(preset.train_scenes)]
    jobs += [("val", 1, i, preset.train_scenes + i) for i in range(preset.val_scenes)]
    iterator = jobs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(jobs, desc="planning scenes", unit="scene")
    per_split: dict = {"train": [], "val": [], "val_human": []}
    for split, code, index, uid in iterator:
        scene_plan = plan_scene(uid, scene_seed(seed, code, index), preset.actions_per_scene,
                                preset.frames_per_segment, preset.objects, domain)
        for k in range(len(scene_plan.actions)):
            target = split if split == "train" else ("val" if k % 2 == 0 else "val_human")
            per_split[target].append((scene_plan, k))
    seq_id = 1
    for split in ("train", "val", "val_human"):
        for scene_plan, k in per_split[split]:
            plan.segments.append(SegmentPlan(split=split, seq_id=seq_id, scene_plan=scene_plan, index=k))
            seq_id += 1
    return plan


# --- segments and rendering ----------------------------------------------------------------------------

def frame_name(frame: int) -> str:
    return "frame_%010d.jpg" % frame


def objects_info(scene: Scene, flags: dict) -> dict:
    """{id: ObjectInfo} for a scene's objects under one action's flags."""
    out = {}
    for index, name in enumerate(scene.object_names):
        class_id = taxonomy.class_of_name(name).class_id
        handbox, narration, positive = flags[name]
        out[index + 1] = ObjectInfo(id=index + 1, name=name, class_id=class_id, handbox=handbox,
                                    narration=narration, positive=positive)
    return out


def to_segment(item: SegmentPlan) -> Segment:
    planned = item.planned
    action = planned.action
    scene = item.scene_plan.scene
    noun = taxonomy.class_of_name(scene.object(action.target).name)
    extra = {flag: False for flag in ("redundant", "missing", "other")} if item.split == "val_human" else {}
    return Segment(seq_id=item.seq_id, video=item.scene_plan.video, start=planned.act_start, end=planned.act_end,
                   narration=action.narration, verb=action.verb, verb_class=taxonomy.verb(action.verb).verb_class,
                   noun=noun.key, noun_class=noun.class_id, sparse_frames=[frame_name(f) for f in planned.frames],
                   objects=objects_info(scene, planned.flags), extra=extra)


def render_frame(scene: Scene, action: Action, t: float, frame: int, renderer: SceneRenderer):
    """One frame: (rgb (H, W, 3) uint8, labels (H, W) uint8 ids). `renderer` fixes the size and caches sprites."""
    rendered = renderer.render(frame_state(scene, action, t, frame), frame)
    return rendered.rgb, rendered.labels


def render_segment(item: SegmentPlan, renderer: SceneRenderer) -> tuple:
    """(images, labels, weights): lists with one array per sparse frame."""
    planned = item.planned
    lut = weight_lut({i + 1: planned.flags[n] for i, n in enumerate(item.scene_plan.scene.object_names)})
    images, labels, weights = [], [], []
    for t, frame in zip(planned.times, planned.frames):
        rgb, label = render_frame(item.scene_plan.scene, planned.action, t, frame, renderer)
        images.append(rgb)
        labels.append(label)
        weights.append(weight_map(label, lut))
    return images, labels, weights


def write_dataset(plan: DatasetPlan, root, size: tuple | None = None, progress: bool = False) -> list:
    """Render and write every planned segment into the ActionVOS layout under `root`; returns the Segments."""
    width, height = size or plan.preset.size
    writer = LayoutWriter(root)
    renderers: dict = {}
    segments = []
    iterator = plan.segments
    if progress:
        from tqdm import tqdm

        iterator = tqdm(plan.segments, desc="rendering segments", unit="segment")
    for item in iterator:
        uid = item.scene_plan.scene.uid
        if uid not in renderers:
            renderers.clear()  # scenes come in order; keep one renderer (and its sprite cache) alive
            renderers[uid] = SceneRenderer(item.scene_plan.scene, width, height)
        images, labels, weights = render_segment(item, renderers[uid])
        segment = to_segment(item)
        writer.add(item.split, segment, images, labels, weights)
        segments.append(segment)
    writer.close()
    return segments


# --- statistics ----------------------------------------------------------------------------------------

def dataset_stats(plan: DatasetPlan) -> dict:
    """Per split: segments, scenes, verbs, and per-segment means of objects / positives / negatives; among the
    positive objects that are not hands, the share not named in the narration (in contact only) and the share
    named but not in contact (narration only), and the mean number of narration-only objects per segment."""
    out = {}
    for split in ("train", "val", "val_human"):
        items = plan.split(split)
        if not items:
            continue
        objects = positives = negatives = object_positives = unnamed = named_only = 0
        for item in items:
            for name, (handbox, narration, positive) in item.planned.flags.items():
                objects += 1
                positives += positive
                negatives += 1 - positive
                if positive and name not in taxonomy.HAND_NAMES:
                    object_positives += 1
                    unnamed += int(not narration)
                    named_only += int(narration and not handbox)
        n = len(items)
        out[split] = {
            "segments": n,
            "scenes": len({i.scene_plan.scene.uid for i in items}),
            "verbs": len({i.planned.action.verb for i in items}),
            "objects_per_segment": objects / n,
            "positives_per_segment": positives / n,
            "negatives_per_segment": negatives / n,
            "unnamed_object_positive_fraction": unnamed / max(object_positives, 1),
            "narration_only_object_positive_fraction": named_only / max(object_positives, 1),
            "narration_only_objects_per_segment": named_only / n,
        }
    return out


# --- streaming -----------------------------------------------------------------------------------------

@dataclass
class StreamFrame:
    index: int  # frame index in the stream
    rgb: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) uint8 object ids (ids as in `objects`)
    objects: dict  # {id: ObjectInfo} with the flags of the action under way
    narration: str
    verb: str
    noun: str
    action_index: int
    in_act: bool  # inside the act phase (where data set segments are annotated)


class SceneStream:
    """A continuous video of one synthetic scene doing several narrated actions in a row.

    `SceneStream(seed, size=(W, H), actions=4, domain="kitchen")`; `len(stream)` frames; `stream.render(i)` ->
    StreamFrame; `stream.timeline` lists (first frame, last frame, narration) per action. `domain`: a
    synth_domain.DOMAINS name (the held-out `kitchen_b` stands in for a robot's own kitchen in the tutorial).
    """

    def __init__(self, seed: int, size: tuple = (427, 240), actions: int = 4, frames_per_segment: int = 5,
                 objects: tuple = (7, 10), domain: str = "kitchen"):
        width, height = size
        self.plan = plan_scene(0, int(seed), actions, frames_per_segment, objects, domain)
        self.scene = self.plan.scene
        self.renderer = SceneRenderer(self.scene, int(width), int(height))
        self._infos = [objects_info(self.scene, p.flags) for p in self.plan.actions]

    def __len__(self) -> int:
        return self.plan.length

    @property
    def timeline(self) -> list:
        return [(p.start, p.start + p.action.duration - 1, p.action.narration) for p in self.plan.actions]

    def locate(self, index: int) -> tuple:
        """(action index, normalised time) of a stream frame."""
        if not 0 <= index < len(self):
            raise IndexError("frame %d outside the stream's %d frames" % (index, len(self)))
        for k, planned in enumerate(self.plan.actions):
            if index < planned.start + planned.action.duration:
                return k, (index - planned.start) / planned.action.duration
        raise IndexError(index)  # unreachable: the loop covers every frame

    def render(self, index: int) -> StreamFrame:
        k, t = self.locate(index)
        planned = self.plan.actions[k]
        rgb, labels = render_frame(self.scene, planned.action, t, index, self.renderer)
        action = planned.action
        return StreamFrame(index=index, rgb=rgb, labels=labels, objects=self._infos[k], narration=action.narration,
                           verb=action.verb, noun=taxonomy.class_of_name(self.scene.object(action.target).name).key,
                           action_index=k, in_act=APPROACH_END <= t <= ACT_END)

    def __iter__(self):
        for index in range(len(self)):
            yield self.render(index)
