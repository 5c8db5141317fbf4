"""Domains of the synthetic generator: `kitchen` (the shipped model's data) and the held-out `kitchen_b`.

`kitchen_b` is a kitchen the shipped model never saw, for measuring fine-tuning to new objects: six object
classes outside the shipped vocabulary (cupboard, fork, spatula, colander, jar, kettle: EPIC-KITCHENS-100
noun classes 3, 14, 20, 39, 40, 44, taxonomy.KITCHEN_B_CLASSES) next to some of the old ones, staples and
action kinds that name the new classes often (pour from the kettle, stir the pan with the spatula, whisk
in a bowl with a fork, open the cupboard to get a jar, rinse the colander ...), and a different look:
brushed-steel and tiled counters, taller tiled walls, darker warmer light, stronger shading and a camera
closer to the counter (objects and hands drawn 5% larger).

    plan_dataset(PRESETS["default"], seed, domain="kitchen_b")   # or `actiseg synth --domain kitchen_b`

The `kitchen` domain is synth_scene.KITCHEN: its tables are the generator's original ones, so its output is
byte-identical to earlier versions (checked by hashing a generation before and after).
"""
from __future__ import annotations

import math

import numpy as np

from actiseg_ros.data.synth_geometry import WORLD_H
from actiseg_ros.data.synth_scene import ANY, FOODS, KITCHEN, ActionKind, Background, Domain, _pick

# Keys of the classes a kitchen_b scene may hold: the new ones and the old ones this kitchen shares.
NEW_KEYS = ("cupboard", "fork", "spatula", "colander", "jar", "kettle")
OLD_KEYS = ("tap", "spoon", "plate", "knife", "pan", "bowl", "drawer", "sponge", "glass", "cup", "cloth",
            "chopping-board", "pot", "potato", "carrot", "tomato", "sink")

MOVABLE_B = ("spoon", "plate", "knife", "pan", "bowl", "sponge", "glass", "cup", "cloth", "chopping-board", "pot",
             "potato", "carrot", "tomato", "fork", "spatula", "kettle", "colander", "jar")
PUT_ON_B = {
    "fork": ("plate", "chopping-board"), "spatula": ("pan", "plate", "chopping-board"), "spoon": ("plate", "pan"),
    "potato": ("colander", "chopping-board", "bowl"), "carrot": ("colander", "chopping-board", "plate"),
    "tomato": ("colander", "plate", "bowl"), "cup": ("plate",), "glass": ("plate",), "knife": ("chopping-board",),
    "jar": ("chopping-board", "plate"), "sponge": ("sink",),
}
SUPPORTS_B = ("chopping-board", "plate", "bowl", "pan", "pot", "sink", "colander")
CUPBOARD_ITEMS = ("cup", "glass", "plate", "bowl", "jar", "colander", "kettle", "pot")
UTENSILS_B = ("spoon", "knife", "fork", "spatula", "sponge", "cloth")
CONTAINERS_B = ("bowl", "pan", "pot", "plate", "colander")
WASHABLE_B = ("plate", "cup", "bowl", "glass", "pan", "knife", "spoon", "pot", "chopping-board", "fork", "spatula",
              "colander", "jar", "kettle", "carrot", "potato", "tomato")

ACTION_KINDS_B: tuple = (
    ActionKind("take", "pick", MOVABLE_B, ("pick up {target}", "take {target}", "grab {target}", "lift {target}"),
               weight=1.0,
               ref_templates=("pick up {target} next to {ref}", "take {target} from beside {ref}",
                              "grab {target} near {ref}", "take {target} from between {ref} and {ref2}")),
    ActionKind("put", "place", tuple(PUT_ON_B), ("put {target} on {support}", "place {target} in {support}",
                                                 "put {target} into {support}", "put down {target}"),
               supports=SUPPORTS_B, weight=1.0,
               ref_templates=("put {target} on {support} next to {ref}", "place {target} in {support} near {ref}",
                              "put {target} on {support} between {ref} and {ref2}")),
    ActionKind("put", "place_beside", tuple(PUT_ON_B),
               ("put {target} next to {support}", "place {target} beside {support}"),
               supports=SUPPORTS_B, weight=0.6,
               ref_templates=("put {target} between {support} and {ref}",
                              "put {target} next to {support} near {ref}")),
    ActionKind("open", "open", ("cupboard",), ("open {target}", "open the {target}", "pull open {target} door"),
               weight=1.2, ref_templates=("open {target} to get {ref}", "open {target} to put away {ref}",
                                          "open {target} to put away {ref} and {ref2}"), refs=CUPBOARD_ITEMS),
    ActionKind("close", "close", ("cupboard",), ("close {target}", "shut {target}", "close the {target}"),
               weight=1.2, ref_templates=("close {target} after taking {ref}",
                                          "close {target} after putting away {ref} and {ref2}"),
               refs=CUPBOARD_ITEMS),
    ActionKind("open", "open", ("drawer",), ("open {target}", "pull open {target}"), weight=0.4,
               ref_templates=("open {target} to get {ref}", "open {target} to put away {ref} and {ref2}"),
               refs=UTENSILS_B),
    ActionKind("close", "close", ("drawer",), ("close {target}", "shut {target}"), weight=0.4,
               ref_templates=("close {target} after taking {ref}",), refs=UTENSILS_B),
    ActionKind("cut", "cut", FOODS, ("cut {target} with {tool}", "slice {target}", "chop {target} on {support}"),
               tools=("knife",), supports=("chopping-board",), weight=1.2,
               ref_templates=("cut {target} with {tool} for {ref}", "chop {target} to put in {ref}",
                              "slice {target} for {ref} and {ref2}"), refs=CONTAINERS_B),
    ActionKind("wash", "scrub", ("plate", "cup", "bowl", "glass", "pan", "colander", "jar"),
               ("wash {target}", "wash {target} with {tool}", "scrub {target} with {tool}",
                "rinse {target} in {support}"),
               tools=("sponge",), supports=("sink",), weight=1.5,
               ref_templates=("rinse {target} under {ref}", "wash {target} with {tool} under {ref}"), refs=("tap",)),
    ActionKind("wash", "wipe", ("chopping-board", "plate"), ("wipe {target} with {tool}", "clean {target}"),
               tools=("cloth", "sponge"), weight=0.6,
               ref_templates=("wipe {target} with {tool} next to {ref}",
                              "wipe {target} between {ref} and {ref2}")),
    ActionKind("pour", "pour", ("cup", "glass", "bowl", "pan", "pot", "colander"),
               ("pour {liquid} from {tool} into {target}", "pour {liquid} into {target}",
                "fill {target} from {tool}"),
               tools=("kettle",), weight=2.2,
               ref_templates=("pour {liquid} from {tool} into {target} next to {ref}",
                              "pour {liquid} into {target} between {ref} and {ref2}"),
               refs=("sink", "plate", "chopping-board", "jar", "spatula", "fork")),
    ActionKind("mix", "stir", ("pan", "pot"), ("stir {target} with {tool}", "flip food in {target} with {tool}",
                                                "mix {target} with {tool}", "turn food in {target}"),
               tools=("spatula",), weight=2.2,
               ref_templates=("stir {target} with {tool} before serving onto {ref}",
                              "flip food in {target} with {tool} next to {ref}",
                              "stir {target} with {tool} before serving onto {ref} and {ref2}"),
               refs=("plate", "bowl", "colander", "jar", "kettle")),
    ActionKind("mix", "stir", ("bowl", "cup"), ("whisk eggs in {target} with {tool}", "beat {target} with {tool}",
                                                 "mix {target} with {tool}"),
               tools=("fork",), weight=1.8,
               ref_templates=("whisk eggs in {target} with {tool} for {ref}",
                              "beat {target} with {tool} next to {ref} and {ref2}"),
               refs=("pan", "pot", "plate", "jar", "kettle")),
    ActionKind("move", "push", MOVABLE_B, ("move {target}", "push {target} aside", "slide {target} away"), weight=0.5,
               ref_templates=("move {target} away from {ref}", "push {target} towards {ref}",
                              "move {target} from beside {ref} towards {ref2}"), refs=ANY),
    ActionKind("shake", "shake", ("jar",), ("shake {target}", "shake the {target}"), weight=1.0,
               ref_templates=("shake {target} over {ref}", "shake {target} over {ref} next to {ref2}"),
               refs=("pan", "pot", "bowl", "plate", "colander", "chopping-board")),
    ActionKind("turn-on", "tap_on", ("tap",), ("turn on {target}", "switch on {target}"), supports=("sink",),
               weight=0.5, ref_templates=("turn on {target} to rinse {ref}",
                                          "turn on {target} to rinse {ref} and {ref2}"), refs=WASHABLE_B),
    ActionKind("turn-off", "tap_off", ("tap",), ("turn off {target}", "turn {target} off"), supports=("sink",),
               weight=0.5, ref_templates=("turn off {target} after rinsing {ref}",), refs=WASHABLE_B),
)


def _background_b(rng: np.random.Generator, has_drawer: bool) -> Background:
    """kitchen_b's look: steel, tiled or dark-stone counters, a taller tiled wall, dimmer warmer light."""
    counters = {"steel": [(176, 180, 186), (150, 154, 160), (196, 198, 202)],
                "tiles": [(226, 222, 206), (120, 160, 170), (190, 90, 70), (60, 70, 90)],
                "granite": [(30, 30, 34), (70, 60, 56)]}
    kind = _pick(rng, ("steel", "tiles", "granite"))
    tone = float(rng.uniform(1.04, 1.16))  # warm (tungsten) white balance
    return Background(
        seed=int(rng.integers(2 ** 31)),
        wall_h=float(rng.uniform(50, 95)),
        counter_edge=float(rng.uniform(395, 420)) if has_drawer else WORLD_H,
        counter_kind=kind,
        counter_colour=tuple(float(np.clip(c + rng.uniform(-12, 12), 0, 255)) for c in _pick(rng, counters[kind])),
        wall_colour=tuple(float(np.clip(c + rng.uniform(-15, 15), 0, 255)) for c in
                          _pick(rng, [(60, 64, 72), (180, 60, 50), (236, 236, 232), (40, 90, 110)])),
        cabinet_colour=tuple(float(np.clip(c + rng.uniform(-15, 15), 0, 255)) for c in
                             _pick(rng, [(30, 30, 34), (200, 190, 170), (90, 60, 45)])),
        light_dir=float(rng.uniform(-math.pi, math.pi)),
        light_strength=float(rng.uniform(0.3, 0.45)),
        tint=(tone, 1.0, float(2.0 - tone)),
        noise_sigma=float(rng.uniform(4.0, 9.0)),
        clutter=int(rng.integers(3, 9)),
        exposure=float(rng.uniform(0.72, 0.9)),
    )


KITCHEN_B = Domain(
    name="kitchen_b", classes=OLD_KEYS + NEW_KEYS,
    fixtures=(("cupboard", 0.55), ("drawer", 0.2), ("sink", 0.9)),
    staples={"sink": 0.9, "pan": 0.7, "kettle": 0.6, "chopping-board": 0.5},
    common={"spatula": 6.0, "colander": 5.0, "fork": 4.0, "jar": 3.0, "kettle": 2.0, "cup": 2.0, "bowl": 2.0,
            "sponge": 2.0},
    action_kinds=ACTION_KINDS_B, put_on=PUT_ON_B, liquids={"kettle": ("water", "hot water", "boiling water")},
    background=_background_b, camera=1.05)

DOMAINS = {"kitchen": KITCHEN, "kitchen_b": KITCHEN_B}


def domain(name: str) -> Domain:
    """The domain with this name; KeyError names the known ones."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise KeyError("unknown synthetic domain %r (known: %s)" % (name, ", ".join(sorted(DOMAINS)))) from None
