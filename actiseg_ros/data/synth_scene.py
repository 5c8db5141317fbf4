"""Synthetic kitchen scenes: object layout, appearance, hands, and the actions that can be narrated in them.

A `Scene` is everything that stays fixed while the wearer does several actions: the background style, the
objects (class, name, look, resting pose), the hands' look and rest places. Its `actions` are candidate
`Action`s (verb, narration, the objects in each role, which hand leads, timing); the planner in synth.py
keeps those whose labels come out valid. One scene therefore appears with several narrations whose active
objects differ, which is what makes the action text matter.

Text matters further because, as in real kitchens (and EPIC-KITCHENS / VISOR narrations), most scenes hold
the same staples (STAPLES: sink with tap, chopping board, plate, knife) and most narrations also name one or
two reference objects the hands leave alone ("pick up cup next to sink", "take knife from between board and
plate", "cut onion for pan", "turn on tap to rinse mug": ActionKind.ref_templates, Action.refs). Those are
narration-only positives, and another segment's narration usually names staples that are present but not
involved, so a model that ignores the text, or trusts the wrong text, loses objects either way.

Objects of a scene have distinct classes, so every name (and every narration noun) is unambiguous.
All randomness comes from the generator passed in, so a scene is a pure function of its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from actiseg_ros.data import taxonomy
from actiseg_ros.data.synth_geometry import WORLD_H, WORLD_W, Pose
from actiseg_ros.data.synth_sprites import ON_TOP, SHAPES, SURFACE, Look, sample_look

SKIN_TONES = [(236, 198, 170), (226, 176, 144), (200, 142, 104), (164, 108, 74), (112, 74, 52)]
SLEEVES = [(40, 50, 70), (150, 30, 40), (90, 90, 95), (30, 90, 60), (220, 220, 215), (200, 150, 60)]


@dataclass(frozen=True)
class SceneObject:
    name: str
    key: str  # taxonomy class key
    class_id: int
    look: Look
    pose: Pose  # resting pose (world units)
    layer: int  # drawing layer at rest (synth_sprites FIXTURE .. ON_TOP)
    support: str | None = None  # name of the object it rests on, if any


@dataclass(frozen=True)
class HandLook:
    skin: tuple
    sleeve: tuple
    scale: float
    elbow: dict  # hand name -> (x, y) where the forearm enters (below the frame)
    rest: dict  # hand name -> (x, y) palm position when idle


@dataclass(frozen=True)
class Background:
    seed: int
    wall_h: float  # wall strip height at the top (world units)
    counter_edge: float  # y where the counter top ends (cabinet fronts below when < WORLD_H)
    counter_kind: str  # 'wood' | 'granite' | 'marble' | 'laminate'
    counter_colour: tuple
    wall_colour: tuple
    cabinet_colour: tuple
    light_dir: float  # radians, where the light comes from
    light_strength: float
    tint: tuple  # per-channel white balance multipliers
    noise_sigma: float
    clutter: int  # unlabelled blobs (stains, crumbs, packets) drawn into the background
    exposure: float = 1.0  # overall light level (a domain's dimmer or brighter kitchen)


@dataclass(frozen=True)
class Action:
    verb: str  # taxonomy verb key
    motion: str  # motion script name (synth_motion.MOTIONS)
    narration: str
    target: str  # object name of the narrated main noun
    roles: dict  # role -> object name ('tool', 'support', ...)
    named: tuple  # object names whose class the narration names
    side: str  # 'left hand' | 'right hand': the hand that leads
    duration: int  # frames, approach + act + return
    params: dict = field(default_factory=dict)  # per-action random numbers of the motion script
    refs: tuple = ()  # named reference objects the action leaves alone ("... next to {ref}"); not roles


@dataclass(frozen=True)
class Scene:
    uid: int
    seed: int
    background: Background
    objects: tuple  # SceneObject, ordered as generated
    hands: HandLook
    actions: tuple = ()
    domain: str = "kitchen"  # synth_scene.Domain name

    def object(self, name: str) -> SceneObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError("scene %d has no object named %r" % (self.uid, name))

    def by_key(self, key: str) -> SceneObject | None:
        for obj in self.objects:
            if obj.key == key:
                return obj
        return None

    @property
    def object_names(self) -> list:
        """Every annotated name of the scene, hands included, sorted: position + 1 is the ActionVOS id."""
        return sorted([o.name for o in self.objects] + list(taxonomy.HAND_NAMES))


# --- action kinds --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActionKind:
    verb: str
    motion: str
    targets: tuple  # class keys allowed as the main noun
    templates: tuple  # narration templates over {target} {tool} {support} {liquid}
    tools: tuple = ()  # class keys, one needed
    supports: tuple = ()  # class keys, one needed
    weight: float = 1.0
    # Narrations that also name a reference object the hands leave alone ("pick up cup next to sink",
    # "cut onion for pan", "turn on tap to rinse mug"): templates over {ref} too, and the class keys a
    # reference may have (empty: any object of the scene).
    ref_templates: tuple = ()
    refs: tuple = ()


FOODS = ("onion", "carrot", "tomato", "potato", "bread")
MOVABLE = ("spoon", "plate", "knife", "pan", "lid", "bowl", "sponge", "glass", "cup", "bottle", "onion", "cloth",
           "chopping-board", "pot", "potato", "bread", "carrot", "tomato", "jug", "peeler")
PUT_ON = {  # what may be put on what
    "lid": ("pan", "pot"), "onion": ("chopping-board", "plate", "bowl"), "carrot": ("chopping-board", "plate"),
    "tomato": ("chopping-board", "plate", "bowl"), "potato": ("chopping-board", "bowl"),
    "bread": ("chopping-board", "plate"), "cup": ("plate",), "glass": ("plate",), "knife": ("chopping-board",),
    "spoon": ("plate", "chopping-board"), "peeler": ("chopping-board",), "sponge": ("sink",),
}

ANY = ()  # ref keys: any object of the scene
CONTAINERS = ("bowl", "pan", "pot", "plate")
WASHABLE = ("plate", "cup", "bowl", "glass", "pan", "lid", "knife", "spoon", "pot", "chopping-board", "jug",
            "peeler", "carrot", "potato", "tomato")
UTENSILS = ("spoon", "knife", "peeler", "cloth", "sponge", "lid")
CHILLED = ("onion", "carrot", "tomato", "potato", "bread", "bottle", "jug")

ACTION_KINDS: tuple = (
    ActionKind("take", "pick", MOVABLE, ("pick up {target}", "take {target}", "grab {target}", "lift {target}"),
               weight=1.0,
               ref_templates=("pick up {target} next to {ref}", "take {target} from beside {ref}",
                              "grab {target} near {ref}", "take {target} from between {ref} and {ref2}",
                              "pick up {target} from between {ref} and {ref2}")),
    ActionKind("put", "place", tuple(PUT_ON), ("put {target} on {support}", "place {target} on {support}",
                                               "put {target} onto {support}", "put down {target}"),
               supports=("chopping-board", "plate", "bowl", "pan", "pot", "sink"), weight=1.0,
               ref_templates=("put {target} on {support} next to {ref}", "place {target} on {support} near {ref}",
                              "put {target} on {support} between {ref} and {ref2}")),
    # Beside, not on: the support is named but need not be touched (a narration-only positive).
    ActionKind("put", "place_beside", tuple(PUT_ON),
               ("put {target} next to {support}", "place {target} beside {support}",
                "put {target} down next to {support}"),
               supports=("chopping-board", "plate", "bowl", "pan", "pot", "sink"), weight=0.8,
               ref_templates=("put {target} between {support} and {ref}",
                              "put {target} next to {support} near {ref}")),
    ActionKind("open", "open", ("drawer",), ("open {target}", "pull open {target}", "open the {target}"),
               weight=0.5, ref_templates=("open {target} to get {ref}", "open {target} to put away {ref}",
                                          "open {target} to put away {ref} and {ref2}"), refs=UTENSILS),
    ActionKind("open", "open", ("fridge",), ("open {target}", "pull open {target}", "open the {target}"),
               weight=0.5, ref_templates=("open {target} to put away {ref}", "open {target} to get {ref}",
                                          "open {target} to put away {ref} and {ref2}"), refs=CHILLED),
    ActionKind("close", "close", ("drawer",), ("close {target}", "shut {target}", "close the {target}"),
               weight=0.5, ref_templates=("close {target} after taking {ref}",
                                          "close {target} after taking {ref} and {ref2}"), refs=UTENSILS),
    ActionKind("close", "close", ("fridge",), ("close {target}", "shut {target}", "close the {target}"),
               weight=0.5, ref_templates=("close {target} after taking out {ref}",
                                          "close {target} after taking out {ref} and {ref2}"), refs=CHILLED),
    ActionKind("cut", "cut", FOODS, ("cut {target} with {tool}", "cut {target}", "slice {target}",
                                     "chop {target} with {tool}", "chop {target} on {support}"),
               tools=("knife",), supports=("chopping-board",), weight=3.0,
               ref_templates=("cut {target} with {tool} for {ref}", "chop {target} on {support} to put in {ref}",
                              "slice {target} with {tool} for {ref}", "chop {target} for {ref} and {ref2}"),
               refs=CONTAINERS),
    ActionKind("wash", "scrub", ("plate", "cup", "bowl", "glass", "pan", "lid"),
               ("wash {target}", "wash {target} with {tool}", "scrub {target} with {tool}",
                "rinse {target} in {support}"),
               tools=("sponge",), supports=("sink",), weight=1.5,
               ref_templates=("rinse {target} under {ref}", "wash {target} with {tool} under {ref}"), refs=("tap",)),
    ActionKind("wash", "wipe", ("chopping-board", "plate"),
               ("wipe {target} with {tool}", "wipe {target}", "clean {target} with {tool}"), tools=("cloth", "sponge"),
               weight=1.2, ref_templates=("wipe {target} with {tool} next to {ref}",
                                          "clean {target} with {tool} before putting {ref} on it",
                                          "wipe {target} between {ref} and {ref2}")),
    ActionKind("pour", "pour", ("glass", "cup", "bowl", "pan", "pot"),
               ("pour {liquid} into {target}", "pour {liquid} from {tool} into {target}", "pour {liquid} in {target}"),
               tools=("bottle", "jug"), weight=1.3,
               ref_templates=("pour {liquid} into {target} over {ref}",
                              "pour {liquid} from {tool} into {target} next to {ref}",
                              "pour {liquid} into {target} between {ref} and {ref2}"),
               refs=("sink", "plate", "chopping-board", "knife")),
    ActionKind("mix", "stir", ("pot", "bowl", "pan"), ("stir {target} with {tool}", "stir {target}",
                                                        "mix food in {target}", "mix {target} with {tool}"),
               tools=("spoon",), weight=1.5,
               ref_templates=("stir {target} with {tool} before serving onto {ref}", "mix food in {target} for {ref}",
                              "stir {target} before serving onto {ref} and {ref2}"),
               refs=("plate", "bowl", "cup")),
    ActionKind("move", "push", MOVABLE, ("move {target}", "push {target} aside", "slide {target} away"), weight=0.6,
               ref_templates=("move {target} away from {ref}", "push {target} towards {ref}",
                              "move {target} from beside {ref} towards {ref2}",
                              "slide {target} away from {ref} and {ref2}")),
    ActionKind("shake", "shake", ("bottle", "jug"), ("shake {target}", "shake the {target}"), weight=0.6,
               ref_templates=("shake {target} over {ref}", "shake {target} over {ref} next to {ref2}"),
               refs=("pan", "pot", "bowl", "plate", "sink", "chopping-board", "knife")),
    ActionKind("peel", "peel", ("carrot", "potato"), ("peel {target}", "peel {target} with {tool}"),
               tools=("peeler",), supports=("chopping-board",), weight=1.5,
               ref_templates=("peel {target} with {tool} over {ref}", "peel {target} with {tool} into {ref}",
                              "peel {target} on {support} for {ref} and {ref2}"),
               refs=("bowl", "sink", "plate", "pot", "pan")),
    ActionKind("turn-on", "tap_on", ("tap",), ("turn on {target}", "switch on {target}", "turn {target} on"),
               supports=("sink",), weight=0.6,
               ref_templates=("turn on {target} to rinse {ref}", "turn on {target} to wash {ref}",
                              "turn on {target} to rinse {ref} and {ref2}"), refs=WASHABLE),
    ActionKind("turn-off", "tap_off", ("tap",), ("turn off {target}", "turn {target} off"), supports=("sink",),
               weight=0.6,
               ref_templates=("turn off {target} after rinsing {ref}",
                              "turn off {target} after washing {ref} and {ref2}"), refs=WASHABLE),
)

# Every real kitchen has these; a scene has each with this probability (the sink comes with its tap), so a
# narration of another scene very often names objects present here that the hands leave alone.
STAPLES = {"sink": 0.95, "chopping-board": 0.9, "plate": 0.9, "knife": 0.85}
# Everyday items are more likely fillers than rarer tools (weights; classes not listed weigh 1).
COMMON = {"sponge": 4.0, "bowl": 4.0, "cup": 4.0, "spoon": 3.0, "pan": 3.0, "glass": 2.0, "pot": 2.0, "bottle": 2.0}
REF_PROBABILITY = 0.95  # share of narrations that also name reference objects (when the kind has templates)
PAIR_PROBABILITY = 0.9  # share of those that name two ("take knife from between board and plate")
STAPLE_REF_WEIGHT = 1.5  # references are mostly staples, as in real narrations ("next to the sink")

LIQUIDS = {"bottle": ("oil", "water", "vinegar"), "jug": ("water", "milk", "juice")}

FIXTURE_KEYS = ("drawer", "fridge", "tap", "cupboard")  # targets that exist only where the scene has the fixture


@dataclass(frozen=True)
class Domain:
    """What kind of kitchen a scene comes from: its object classes, staples, action kinds and look.

    `KITCHEN` (below) is the generator as it always was (the shipped model's data); other domains
    (synth_domain.py) swap these tables to make a held-out domain. Sampling consumes random numbers in the
    same order for every domain, so KITCHEN's scenes are exactly those of earlier versions.
    """

    name: str
    classes: tuple  # object class keys a scene may hold (fillers are the non-fixtures among them)
    fixtures: tuple  # (fixture key, probability) in sampling order; a sink brings its tap
    staples: dict  # class key -> probability that a scene holds it (references prefer staples)
    common: dict  # filler weights (classes not listed weigh 1)
    action_kinds: tuple
    put_on: dict  # what may be put on what
    liquids: dict  # pouring tool key -> liquids narrated
    background: object = None  # (rng, has_drawer) -> Background; None: the kitchen's
    camera: float = 1.0  # object and hand size factor: > 1 a camera closer to the counter


# --- sampling helpers ----------------------------------------------------------------------------------

def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _pick_name(rng: np.random.Generator, key: str) -> str:
    names = taxonomy.object_class(key).names
    weights = np.array([2.0] + [1.0] * (len(names) - 1))
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


@dataclass
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: "_Box", margin: float) -> bool:
        return not (self.x1 + margin <= other.x0 or other.x1 + margin <= self.x0 or
                    self.y1 + margin <= other.y0 or other.y1 + margin <= self.y0)


def footprint(look: Look, pose: Pose) -> _Box:
    """Axis-aligned box of an object's (rotated, scaled) w x h rectangle."""
    c, s = abs(math.cos(pose.angle)), abs(math.sin(pose.angle))
    hw, hh = look.w * pose.sx / 2, look.h * pose.sy / 2
    ex, ey = c * hw + s * hh, s * hw + c * hh
    return _Box(pose.x - ex, pose.y - ey, pose.x + ex, pose.y + ey)


def _rest_angle(key: str, rng: np.random.Generator) -> float:
    if key in ("bottle", "jug", "kettle"):
        return -math.pi / 2 + rng.uniform(-0.12, 0.12)  # upright: their local +x is up
    if key in ("knife", "spoon", "peeler", "carrot", "bread", "fork", "spatula"):
        return rng.uniform(-math.pi, math.pi)
    if key in ("chopping-board", "cloth", "sponge", "pan", "pot", "cup"):
        return rng.uniform(-0.2, 0.2) + (math.pi if key in ("pan", "cup") and rng.random() < 0.5 else 0.0)
    return rng.uniform(-0.2, 0.2)


def _sample_background(rng: np.random.Generator, has_drawer: bool) -> Background:
    kinds = ("wood", "granite", "marble", "laminate")
    counters = {"wood": [(170, 120, 75), (200, 160, 110), (120, 80, 50)],
                "granite": [(80, 80, 84), (150, 140, 130), (40, 40, 44)],
                "marble": [(225, 222, 215), (200, 200, 205)],
                "laminate": [(215, 210, 195), (160, 175, 170), (110, 120, 140), (180, 60, 50)]}
    kind = _pick(rng, kinds)
    tone = float(rng.uniform(0.95, 1.08))
    return Background(
        seed=int(rng.integers(2 ** 31)),
        wall_h=float(rng.uniform(25, 95)),
        counter_edge=float(rng.uniform(385, 410)) if has_drawer else WORLD_H,
        counter_kind=kind,
        counter_colour=tuple(float(np.clip(c + rng.uniform(-15, 15), 0, 255)) for c in _pick(rng, counters[kind])),
        wall_colour=tuple(float(np.clip(c + rng.uniform(-20, 20), 0, 255)) for c in
                          _pick(rng, [(230, 228, 220), (200, 215, 225), (225, 210, 180), (150, 180, 160)])),
        cabinet_colour=tuple(float(np.clip(c + rng.uniform(-15, 15), 0, 255)) for c in
                             _pick(rng, [(236, 234, 228), (120, 124, 130), (50, 70, 100), (160, 115, 75)])),
        light_dir=float(rng.uniform(-math.pi, math.pi)),
        light_strength=float(rng.uniform(0.12, 0.3)),
        tint=(tone, 1.0, float(2.0 - tone)),
        noise_sigma=float(rng.uniform(2.0, 7.0)),
        clutter=int(rng.integers(2, 7)),
    )


def _sample_hands(rng: np.random.Generator, camera: float = 1.0) -> HandLook:
    left, right = taxonomy.HAND_NAMES
    return HandLook(
        skin=tuple(float(np.clip(c + rng.uniform(-12, 12), 0, 255)) for c in _pick(rng, SKIN_TONES)),
        sleeve=tuple(float(np.clip(c + rng.uniform(-15, 15), 0, 255)) for c in _pick(rng, SLEEVES)),
        scale=float(rng.uniform(0.9, 1.1)) * camera,
        elbow={left: (float(rng.uniform(90, 230)), float(rng.uniform(600, 660))),
               right: (float(rng.uniform(624, 764)), float(rng.uniform(600, 660)))},
        rest={left: (float(rng.uniform(150, 250)), float(rng.uniform(440, 462))),
              right: (float(rng.uniform(604, 704)), float(rng.uniform(440, 462)))},
    )


class _Layout:
    """Places objects without overlaps on the free counter area."""

    def __init__(self, rng: np.random.Generator, background: Background, hands: HandLook):
        self.rng = rng
        self.bg = background
        self.boxes: list = []
        self.x0, self.x1 = 12.0, WORLD_W - 12.0
        self.y0, self.y1 = background.wall_h + 14.0, background.counter_edge - 14.0
        # Keep the places where idle hands rest clear, so a resting hand never "touches" an object.
        for rx, ry in hands.rest.values():
            self.boxes.append(_Box(rx - 90, ry - 105, rx + 90, ry + 60))

    def reserve(self, box: _Box) -> None:
        self.boxes.append(box)

    def fits(self, box: _Box, margin: float) -> bool:
        if box.x0 < self.x0 or box.x1 > self.x1 or box.y0 < self.y0 or box.y1 > self.y1:
            return False
        return not any(box.overlaps(other, margin) for other in self.boxes)

    def place(self, look: Look, key: str, margin: float = 16.0, tries: int = 120) -> Pose | None:
        for _ in range(tries):
            pose = Pose(float(self.rng.uniform(self.x0, self.x1)), float(self.rng.uniform(self.y0, self.y1)),
                        _rest_angle(key, self.rng))
            box = footprint(look, pose)
            if self.fits(box, margin):
                self.boxes.append(box)
                return pose
        return None


# --- scenes --------------------------------------------------------------------------------------------

@dataclass
class SceneConfig:
    objects: tuple = (7, 10)  # objects per scene (hands not counted), inclusive range
    candidate_actions: int = 9  # actions proposed per scene (the planner keeps the valid ones)
    duration: tuple = (60, 90)  # frames per action (approach + act + return)
    domain: Domain | None = None  # None: KITCHEN, the shipped model's domain


def _needs(kind: ActionKind, target_key: str) -> list:
    needed = [target_key]
    if kind.motion in ("place", "place_beside"):
        return needed  # its support is chosen among the surfaces the scene has
    if kind.tools:
        needed.append(kind.tools[0])
    if kind.supports:
        needed.append(kind.supports[0])
    if target_key == "tap":
        needed.append("sink")
    return needed


# Layout is rejection sampling (random places, _Layout.place) and about one try in eight succeeds, so a seed's
# own random stream can run out of tries (0.875 ** 50: about one scene in 800). Such a scene is then drawn from
# streams derived from (seed, stream): deterministic, and every scene that lays out on its seed's own stream
# stays exactly what it always was.
LAYOUT_ATTEMPTS = 50  # layouts tried per random stream
LAYOUT_STREAMS = 40  # streams tried before the configuration is declared impossible
_LAYOUT_STREAM_SALT = 0x5CE4E  # keeps derived streams apart from other seeds derived from the same seed


def layout_rng(seed: int, stream: int) -> np.random.Generator:
    """The random stream of a scene's layout attempt round: the seed's own for stream 0, derived ones after."""
    return np.random.default_rng(seed if stream == 0 else [seed, _LAYOUT_STREAM_SALT, stream])


def sample_scene(uid: int, seed: int, config: SceneConfig | None = None) -> Scene:
    """A kitchen scene with objects for several actions, laid out; candidate actions in `.actions`.

    Never fails for a configuration that can be laid out: a seed whose stream runs out of LAYOUT_ATTEMPTS
    moves on to derived streams (layout_rng). RuntimeError only when LAYOUT_STREAMS streams all fail, which
    means the object range does not fit on the counter."""
    config = config or SceneConfig()
    if config.domain is None:
        config = replace(config, domain=KITCHEN)
    for stream in range(LAYOUT_STREAMS):
        rng = layout_rng(seed, stream)
        for _attempt in range(LAYOUT_ATTEMPTS):
            scene = _try_scene(uid, seed, rng, config)
            if scene is not None:
                return scene
    raise RuntimeError("could not lay out scene %d (seed %d) in %d attempts on %d random streams: %d to %d objects "
                       "do not fit on the counter" % (uid, seed, LAYOUT_ATTEMPTS * LAYOUT_STREAMS, LAYOUT_STREAMS,
                                                      config.objects[0], config.objects[1]))


def _try_scene(uid: int, seed: int, rng: np.random.Generator, config: SceneConfig) -> Scene | None:
    domain = config.domain
    n_objects = int(rng.integers(config.objects[0], config.objects[1] + 1))
    fixtures = [k for k, p in domain.fixtures if rng.random() < p]
    if "sink" in fixtures:
        fixtures.append("tap")
    # Kitchen staples first (every kitchen has them), then the main actions and the objects they need, as
    # long as they fit in the scene's object count; then random fillers.
    keys: list = list(fixtures) + [k for k, p in domain.staples.items() if k != "sink" and rng.random() < p]
    board_foods: list = []
    for _ in range(3):
        kind = _weighted_kind(rng, domain)
        allowed = [k for k in kind.targets if k not in FIXTURE_KEYS or k in fixtures]
        if kind.supports and kind.supports[0] == "sink" and "sink" not in fixtures:
            continue
        if not allowed:
            continue
        target = _pick(rng, allowed)
        new = [k for k in _needs(kind, target) if k not in keys]
        if len(keys) + len(new) > n_objects:
            continue
        keys += new
        if kind.motion in ("cut", "peel") and target not in board_foods:
            board_foods.append(target)
    needed = set(keys)
    fillers = [k for k in domain.classes if k not in keys and taxonomy.object_class(k).kind != "fixture"]
    weights = np.array([domain.common.get(k, 1.0) for k in fillers])
    fillers = [fillers[i] for i in rng.choice(len(fillers), size=len(fillers), replace=False,
                                              p=weights / weights.sum())]
    # A few spare fillers: those that find no room are left out, the scene keeps at least its minimum.
    keys += fillers[: max(n_objects - len(keys), 0) + 2]
    if len(needed) > config.objects[1] + 2:
        return None

    background = (domain.background or _sample_background)(rng, "drawer" in keys)
    hands = _sample_hands(rng, domain.camera)
    layout = _Layout(rng, background, hands)
    objects = []
    names = {}
    looks = {}
    for key in keys:
        names[key] = _pick_name(rng, key)
        looks[key] = sample_look(key, names[key], rng, domain.camera)
    # Fixtures first: their places are constrained.
    poses: dict = {}
    if "fridge" in keys:
        look = looks["fridge"]
        left_side = rng.random() < 0.5
        x = look.w / 2 - rng.uniform(0, 25)
        pose = Pose(x if left_side else WORLD_W - x, look.h / 2 - 20, 0.0 if left_side else math.pi)
        poses["fridge"] = pose
        box = footprint(look, pose)
        layout.reserve(_Box(box.x0, box.y0, box.x1 + 10, box.y1 + 10))
    if "drawer" in keys:
        look = looks["drawer"]
        pose = Pose(float(rng.uniform(270, 584)), background.counter_edge + 8 + look.h / 2, 0.0)
        poses["drawer"] = pose
    if "cupboard" in keys:  # a wall cupboard hanging above the counter
        look = looks["cupboard"]
        for _ in range(40):  # on the wall, its bottom edge a little below the wall line (within hands' reach)
            pose = Pose(float(rng.uniform(layout.x0 + look.w / 2, layout.x1 - look.w / 2)),
                        background.wall_h - look.h / 2 + float(rng.uniform(25, 45)), 0.0)
            if not any(footprint(look, pose).overlaps(other, 10) for other in layout.boxes):
                break
        else:
            return None
        poses["cupboard"] = pose
        layout.reserve(footprint(look, pose))
    if "sink" in keys:
        look = looks["sink"]
        for _ in range(40):
            pose = Pose(float(rng.uniform(layout.x0 + look.w / 2, layout.x1 - look.w / 2)),
                        background.wall_h + 40 + look.h / 2 + float(rng.uniform(0, 25)), 0.0)
            if layout.fits(footprint(look, pose), 10):
                break
        else:
            return None
        poses["sink"] = pose
        layout.reserve(footprint(look, pose))
        tap = looks["tap"]
        top = pose.y - look.h / 2
        tap_pose = Pose(pose.x + float(rng.uniform(-0.25, 0.25)) * look.w, top - 4 + 0.28 * tap.w, math.pi / 2)
        poses["tap"] = tap_pose
        layout.reserve(footprint(tap, tap_pose))
    # Surfaces (big) before items; foods that will be cut or peeled sit on the board.
    order = sorted((k for k in keys if k not in poses), key=lambda k: (SHAPES[k].layer != SURFACE, k in board_foods))
    supports: dict = {}
    for key in order:
        look = looks[key]
        if key in board_foods and "chopping-board" in poses:
            board = poses["chopping-board"]
            blook = looks["chopping-board"]
            offset = board.apply((float(rng.uniform(-0.15, 0.15)) * blook.w, float(rng.uniform(-0.12, 0.12)) * blook.h))
            angle = board.angle + float(rng.uniform(-0.3, 0.3)) if key in ("carrot", "bread") else _rest_angle(key, rng)
            pose = Pose(float(offset[0]), float(offset[1]), angle)
            board_box = footprint(blook, board)
            box = footprint(look, pose)
            if box.x0 < board_box.x0 or box.x1 > board_box.x1 or box.y0 < board_box.y0 or box.y1 > board_box.y1:
                return None
            supports[key] = "chopping-board"
        else:
            still_needed = sum(1 for k in needed if k not in poses and k != key)
            if key not in needed and len(poses) + still_needed >= n_objects:
                continue
            pose = layout.place(look, key)
            if pose is None:
                if key in needed:
                    return None
                continue
        poses[key] = pose
    keys = [k for k in keys if k in poses]
    if len(keys) < config.objects[0]:
        return None
    for key in keys:
        layer = SHAPES[key].layer if key not in supports else ON_TOP
        support = names[supports[key]] if key in supports else None
        cls = taxonomy.object_class(key)
        objects.append(SceneObject(name=names[key], key=key, class_id=cls.class_id, look=looks[key],
                                   pose=poses[key], layer=layer, support=support))
    scene = Scene(uid=uid, seed=seed, background=background, objects=tuple(objects), hands=hands)
    if domain is not KITCHEN:
        scene = replace(scene, domain=domain.name)
    actions = propose_actions(scene, rng, config)
    if len(actions) < 2:
        return None
    return replace(scene, actions=tuple(actions))


def _weighted_kind(rng: np.random.Generator, domain: Domain) -> ActionKind:
    kinds = domain.action_kinds
    weights = np.array([k.weight for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


def _narration_name(rng: np.random.Generator, obj: SceneObject) -> str:
    """The object's own name mostly, sometimes another name of its class with the same drawn shape."""
    if rng.random() < 0.7:
        return obj.name
    options = [n for n in taxonomy.object_class(obj.key).names
               if taxonomy.shape_of_name(n) in ("default", obj.look.shape)]
    return _pick(rng, options)


def feasible(kind: ActionKind, scene: Scene, put_on: dict | None = None) -> list:
    """(target, roles) pairs this kind of action can be done with in the scene (`put_on`: the domain's)."""
    put_on = PUT_ON if put_on is None else put_on
    out = []
    present = {o.key: o for o in scene.objects}
    for key in kind.targets:
        if key not in present:
            continue
        target = present[key]
        if kind.motion in ("place", "place_beside"):
            if any(o.support == target.name for o in scene.objects):
                continue
            for support in put_on.get(key, ()):
                if support in present and target.support is None:
                    out.append((target, {"support": present[support]}))
            continue
        roles = {}
        if kind.tools:
            tools = [present[t] for t in kind.tools if t in present and t != key]
            if not tools:
                continue
            roles["tool"] = tools[0]
        if kind.supports:
            if kind.supports[0] not in present:
                continue
            roles["support"] = present[kind.supports[0]]
        if kind.motion in ("cut", "peel") and target.support != roles["support"].name:
            continue
        if kind.motion == "stir" and target.look.material >= 2 and key == "bowl":
            continue  # an empty bowl is not stirred
        carries = any(o.support == target.name for o in scene.objects)
        if kind.motion in ("pick", "push", "shake", "scrub") and (target.support is not None or carries):
            continue  # moving a stack would have to move what is on it too
        out.append((target, roles))
    return out


def related_objects(scene: Scene, action: Action) -> set:
    """Names an action can plausibly involve: its target and role objects, what they rest on, what rests on
    them, and the sink with its tap. Hand-object boxes meeting anything else mean the layout got in the way."""
    involved = {action.target, *action.roles.values()}
    related = set(involved)
    for obj in scene.objects:
        if obj.name in involved and obj.support:
            related.add(obj.support)
        if obj.support in involved:
            related.add(obj.name)
    keys = {scene.object(n).key for n in related}
    if keys & {"sink", "tap"}:
        related.update(o.name for o in scene.objects if o.key in ("sink", "tap"))
    return related


def propose_actions(scene: Scene, rng: np.random.Generator, config: SceneConfig) -> list:
    """Candidate actions for a scene: distinct (verb, target) pairs, specific kinds before generic ones."""
    domain = config.domain or KITCHEN
    proposals = []
    seen = set()
    kinds = list(domain.action_kinds)
    weights = np.array([k.weight for k in kinds])
    order = rng.choice(len(kinds), size=len(kinds), replace=False, p=weights / weights.sum())
    specific = [kinds[i] for i in order if kinds[i].motion not in ("pick", "push")]
    generic = [kinds[i] for i in order if kinds[i].motion in ("pick", "push")]
    for kind in specific + generic:
        options = feasible(kind, scene, domain.put_on)
        rng.shuffle(options)
        for target, roles in options[:2]:
            if (kind.verb, target.key) in seen or len(proposals) >= config.candidate_actions:
                continue
            seen.add((kind.verb, target.key))
            proposals.append(_make_action(kind, target, roles, scene, rng, config, domain))
    return proposals


def _pick_refs(rng: np.random.Generator, kind: ActionKind, target: SceneObject, roles: dict,
               scene: Scene, staples: dict | None = None) -> list:
    """Up to two reference objects for a narration ("... next to {ref}"): not the target or a role object, not
    stacked with the target, of a kind the template allows; mostly a kitchen staple, and preferably away from
    the target so the hands do not meet it (the planner drops actions whose hand-object boxes meet an
    unrelated object, so a reference that stays unrelated is a narration-only positive)."""
    taken = {target.name, *(o.name for o in roles.values())}
    taken_keys = {target.key, *(o.key for o in roles.values())}
    options, weights = [], []
    target_box = footprint(target.look, target.pose)
    for obj in scene.objects:
        if obj.name in taken or obj.key in taken_keys or (kind.refs and obj.key not in kind.refs):
            continue
        if obj.support == target.name or target.support == obj.name:
            continue
        staple = obj.key in (STAPLES if staples is None else staples) or obj.key == "tap"
        weight = STAPLE_REF_WEIGHT if staple else 1.0
        if target_box.overlaps(footprint(obj.look, obj.pose), 60.0):
            weight *= 0.25
        options.append(obj)
        weights.append(weight)
    if not options:
        return []
    weights = np.array(weights)
    chosen = rng.choice(len(options), size=min(2, len(options)), replace=False, p=weights / weights.sum())
    return [options[int(i)] for i in chosen]


def _make_action(kind: ActionKind, target: SceneObject, roles: dict, scene: Scene, rng: np.random.Generator,
                 config: SceneConfig, domain: Domain | None = None) -> Action:
    domain = domain or KITCHEN
    template = _pick(rng, kind.templates)
    refs: list = []
    if kind.ref_templates and rng.random() < REF_PROBABILITY:
        refs = _pick_refs(rng, kind, target, roles, scene, domain.staples)
        pairs = [t for t in kind.ref_templates if "{ref2}" in t]
        singles = [t for t in kind.ref_templates if "{ref2}" not in t]
        if refs:
            # Two references where the kind has a template for them, mostly.
            template = _pick(rng, pairs if len(refs) > 1 and pairs and rng.random() < PAIR_PROBABILITY else singles)
            refs = refs[:2 if "{ref2}" in template else 1]
    tool = roles.get("tool")
    support = roles.get("support")
    words = {"target": _narration_name(rng, target)}
    named = [target.name]
    if "{tool}" in template:
        words["tool"] = _narration_name(rng, tool)
        named.append(tool.name)
    if "{support}" in template:
        words["support"] = _narration_name(rng, support)
        named.append(support.name)
    if "{liquid}" in template:
        words["liquid"] = _pick(rng, domain.liquids[tool.key])
    for slot, ref in zip(("ref", "ref2"), refs):
        words[slot] = _narration_name(rng, ref)
        named.append(ref.name)
    narration = template.format(**words)
    # Mostly the hand on the target's side of the frame leads, as people do.
    right_side = target.pose.x > WORLD_W / 2
    side = taxonomy.RIGHT_HAND.name if right_side == (rng.random() < 0.85) else taxonomy.LEFT_HAND.name
    params = {
        "freq": float(rng.uniform(2.0, 3.5)),  # strokes / circles / shakes during the act phase
        "amp": float(rng.uniform(0.8, 1.2)),  # stroke amplitude factor
        "lean": float(rng.uniform(-1.0, 1.0)),  # tool angle offset factor
        "lift": float(rng.uniform(40, 75)),  # lift height (world units)
        "other_holds": bool(rng.random() < 0.6),  # the other hand steadies the target
        "dx": float(rng.uniform(-1.0, 1.0)),  # where on the support / which way to push
        "dy": float(rng.uniform(-1.0, 1.0)),
    }
    return Action(verb=kind.verb, motion=kind.motion, narration=narration, target=target.name,
                  roles={r: o.name for r, o in roles.items()}, named=tuple(dict.fromkeys(named)), side=side,
                  duration=int(rng.integers(config.duration[0], config.duration[1] + 1)), params=params,
                  refs=tuple(r.name for r in refs))


# The shipped model's kitchen: the tables above, exactly as the generator always used them.
KITCHEN = Domain(name="kitchen", classes=tuple(c.key for c in taxonomy.OBJECT_CLASSES),
                 fixtures=(("fridge", 0.3), ("drawer", 0.35), ("sink", STAPLES["sink"])), staples=STAPLES,
                 common=COMMON, action_kinds=ACTION_KINDS, put_on=PUT_ON, liquids=LIQUIDS)
