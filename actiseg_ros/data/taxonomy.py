"""The kitchen vocabulary of the synthetic data: object classes with their names, the two hands, and verbs.

Class ids are stable integers taken from EPIC-KITCHENS-100 (`EPIC_100_noun_classes_v2.csv`), whose ids VISOR
and ActionVOS use, so a model trained on synthetic data reads VISOR class ids the same way. The hands use
VISOR's ids: 300 = left hand, 301 = right hand (two classes with one name each, so a within-category
substitution can never turn "left hand" into "right hand").

Every object class has two or more names (synonyms, sub-types, parts): the first is its canonical name.
A name belongs to exactly one class. Some names select a shape variant of their class (a "cleaver" is drawn
with a rectangular blade, a "red onion" is purple); `SHAPE_OF_NAME` says which.

Verb classes are EPIC-100 verb classes too (`verb_classes.csv`); a verb class can be narrated with several
phrasings ("wash" covers "wash", "rinse", "wipe", "clean").

Keys are file-name safe (they end up in ActionVOS sequence folder names `{seq_id}_{video}_{verb}_{noun}`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectClass:
    class_id: int
    key: str  # file-name-safe identifier used for the `noun` field and folder names
    names: tuple  # canonical name first; every name is unique across classes
    kind: str  # 'fixture' (part of the kitchen), 'surface', 'container', 'tool', 'food', 'hand'

    @property
    def name(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class VerbClass:
    verb_class: int
    key: str


# --- object classes (ids: EPIC-KITCHENS-100 noun classes) ----------------------------------------------

OBJECT_CLASSES: tuple = (
    ObjectClass(0, "tap", ("tap", "faucet", "water tap"), "fixture"),
    ObjectClass(1, "spoon", ("spoon", "wooden spoon", "ladle"), "tool"),
    ObjectClass(2, "plate", ("plate", "dish", "saucer"), "surface"),
    ObjectClass(4, "knife", ("knife", "chef knife", "cleaver"), "tool"),
    ObjectClass(5, "pan", ("pan", "frying pan", "skillet"), "container"),
    ObjectClass(6, "lid", ("lid", "pan lid", "pot lid"), "tool"),
    ObjectClass(7, "bowl", ("bowl", "mixing bowl", "salad bowl"), "container"),
    ObjectClass(8, "drawer", ("drawer", "cutlery drawer", "kitchen drawer"), "fixture"),
    ObjectClass(9, "sponge", ("sponge", "scrubber", "scourer"), "tool"),
    ObjectClass(10, "glass", ("glass", "tumbler", "water glass"), "container"),
    ObjectClass(12, "fridge", ("fridge", "fridge door", "refrigerator"), "fixture"),
    ObjectClass(13, "cup", ("cup", "mug", "coffee cup"), "container"),
    ObjectClass(15, "bottle", ("bottle", "oil bottle", "water bottle"), "container"),
    ObjectClass(16, "onion", ("onion", "red onion", "white onion"), "food"),
    ObjectClass(17, "cloth", ("cloth", "tea towel", "dishcloth"), "tool"),
    ObjectClass(18, "chopping-board", ("chopping board", "cutting board", "board"), "surface"),
    ObjectClass(29, "pot", ("pot", "saucepan", "cooking pot"), "container"),
    ObjectClass(30, "potato", ("potato", "sweet potato", "spud"), "food"),
    ObjectClass(33, "bread", ("bread", "loaf", "baguette"), "food"),
    ObjectClass(41, "carrot", ("carrot", "baby carrot", "carrot stick"), "food"),
    ObjectClass(43, "tomato", ("tomato", "cherry tomato", "plum tomato"), "food"),
    ObjectClass(63, "sink", ("sink", "basin", "kitchen sink"), "fixture"),
    ObjectClass(66, "jug", ("jug", "pitcher", "measuring jug"), "container"),
    ObjectClass(87, "peeler", ("peeler", "vegetable peeler", "potato peeler"), "tool"),
)

# Classes of the held-out `kitchen_b` domain of the generator (synth_domain.py): objects the shipped model
# never saw, for measuring fine-tuning to new objects. Kept apart from OBJECT_CLASSES, which is the shipped
# model's vocabulary and the `kitchen` domain's pool (so that domain's scenes stay exactly as they were).
KITCHEN_B_CLASSES: tuple = (
    ObjectClass(3, "cupboard", ("cupboard", "cabinet", "kitchen cupboard"), "fixture"),
    ObjectClass(14, "fork", ("fork", "dinner fork", "carving fork"), "tool"),
    ObjectClass(20, "spatula", ("spatula", "turner", "fish slice"), "tool"),
    ObjectClass(39, "colander", ("colander", "strainer", "sieve"), "container"),
    ObjectClass(40, "jar", ("jar", "glass jar", "jam jar"), "container"),
    ObjectClass(44, "kettle", ("kettle", "electric kettle", "tea kettle"), "container"),
)

LEFT_HAND = ObjectClass(300, "left-hand", ("left hand",), "hand")
RIGHT_HAND = ObjectClass(301, "right-hand", ("right hand",), "hand")
HAND_CLASSES: tuple = (LEFT_HAND, RIGHT_HAND)
HAND_NAMES: tuple = (LEFT_HAND.name, RIGHT_HAND.name)

# Names that select a drawn shape variant of their class; other names use the class's default look.
SHAPE_OF_NAME: dict = {
    "ladle": "ladle", "wooden spoon": "wooden",
    "cleaver": "cleaver", "chef knife": "chef",
    "red onion": "red", "white onion": "white",
    "tea towel": "striped",
    "sweet potato": "sweet",
    "baguette": "baguette",
    "baby carrot": "small", "carrot stick": "small",
    "cherry tomato": "cherry", "plum tomato": "plum",
    "measuring jug": "measuring",
    "mug": "mug",
    "skillet": "castiron",
    "scourer": "steel",
    "carving fork": "carving", "fish slice": "slotted", "electric kettle": "electric",
}

# --- verb classes (ids: EPIC-KITCHENS-100 verb classes) ------------------------------------------------

VERB_CLASSES: tuple = (
    VerbClass(0, "take"),
    VerbClass(1, "put"),
    VerbClass(2, "wash"),
    VerbClass(3, "open"),
    VerbClass(4, "close"),
    VerbClass(6, "turn-on"),
    VerbClass(7, "cut"),
    VerbClass(8, "turn-off"),
    VerbClass(9, "pour"),
    VerbClass(10, "mix"),
    VerbClass(11, "move"),
    VerbClass(15, "shake"),
    VerbClass(19, "peel"),
)


# --- lookups -------------------------------------------------------------------------------------------

ALL_CLASSES: tuple = OBJECT_CLASSES + HAND_CLASSES  # the shipped model's vocabulary
KNOWN_CLASSES: tuple = OBJECT_CLASSES + KITCHEN_B_CLASSES + HAND_CLASSES  # every class the generator draws
_BY_ID = {c.class_id: c for c in KNOWN_CLASSES}
_BY_KEY = {c.key: c for c in KNOWN_CLASSES}
_BY_NAME = {name: c for c in KNOWN_CLASSES for name in c.names}
_VERB_BY_KEY = {v.key: v for v in VERB_CLASSES}


def object_class(key: str) -> ObjectClass:
    """The class with this key (e.g. 'chopping-board'); KeyError names the unknown key."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError("unknown object class key %r" % key) from None


def class_by_id(class_id: int) -> ObjectClass:
    try:
        return _BY_ID[int(class_id)]
    except KeyError:
        raise KeyError("unknown class id %r" % class_id) from None


def class_of_name(name: str) -> ObjectClass:
    """The class a name (any synonym) belongs to, case- and space-insensitive."""
    normal = " ".join(name.lower().split())
    try:
        return _BY_NAME[normal]
    except KeyError:
        raise KeyError("no class has the name %r" % name) from None


def verb(key: str) -> VerbClass:
    try:
        return _VERB_BY_KEY[key]
    except KeyError:
        raise KeyError("unknown verb key %r" % key) from None


def shape_of_name(name: str) -> str:
    """The drawn shape variant a name asks for ('default' when the name does not select one)."""
    return SHAPE_OF_NAME.get(name, "default")


def vocabulary(include_hands: bool = True, classes: tuple = OBJECT_CLASSES) -> dict:
    """{class_id: names} for the noise injector's category flips and within-category substitutions (by default
    the shipped model's classes; pass e.g. KNOWN_CLASSES for every class the generator draws)."""
    chosen = tuple(classes) + (HAND_CLASSES if include_hands else ())
    return {c.class_id: tuple(c.names) for c in chosen}


def is_hand_class(class_id: int) -> bool:
    return class_id in (LEFT_HAND.class_id, RIGHT_HAND.class_id)
