"""The action command (std_msgs/String on /actiseg/action) -> the objects to segment and their prompts.

Two forms are accepted:
  plain narration   "cut onion with knife"
  JSON              {"action": "cut onion with knife", "objects": ["onion", "knife", "chopping board"]}
Candidates are, in this order and without repeats: the objects of the JSON form, or else the vocabulary
names found in the narration (longest match wins: "red onion" is one object, not also "onion"); then the
always-candidates (the hands by default: they take part in almost every action); then the node's `objects`
parameter. An empty command (or JSON with an empty action and no objects) clears the action.

Anything else is refused with an ActionError saying what is wrong, which the node logs; the previous action
stays in force.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

from actiseg_ros.data import taxonomy

MAX_ACTION_CHARS = 1000  # a narration is a sentence; 10 kB of text is a bug upstream, not an action
MAX_NAME_CHARS = 100
JSON_FIELDS = ("action", "objects")


class ActionError(ValueError):
    """The action command is unusable; the message says why."""


@dataclass(frozen=True)
class ActionCommand:
    narration: str  # the action text the prompts are built from ("" when only objects were given)
    objects: tuple  # candidate object names, prompt order
    named: tuple  # the names that came from the command itself (found in the narration or listed in JSON)


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: the form names are matched in."""
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def default_vocabulary() -> tuple:
    """Every object and hand name of the taxonomy (the names the shipped models were trained with)."""
    return tuple(name for cls in taxonomy.ALL_CLASSES for name in cls.names)


def find_names(narration: str, vocabulary) -> list:
    """Vocabulary names in the narration, in narration order, longest first where names overlap.

    Matches whole words, case-insensitively, with an optional plural 's'/'es' ("onions" -> "onion").
    """
    text = normalize(narration)
    taken = [False] * len(text)
    found = []  # (position, name)
    for name in sorted({normalize(n): n for n in vocabulary if normalize(n)}.items(), key=lambda kv: -len(kv[0])):
        key, original = name
        for match in re.finditer(r"(?<!\w)%s(?:e?s)?(?!\w)" % re.escape(key), text):
            if not any(taken[match.start():match.end()]):
                taken[match.start():match.end()] = [True] * (match.end() - match.start())
                found.append((match.start(), original))
    return [name for _, name in sorted(found)]


def check_text(text: str, what: str, limit: int) -> str:
    if len(text) > limit:
        raise ActionError("%s is %d characters long; the limit is %d" % (what, len(text), limit))
    if "\ufffd" in text:
        raise ActionError("%s is not valid UTF-8 (it arrived with replacement characters U+FFFD)" % what)
    for position, char in enumerate(text):
        if unicodedata.category(char) in ("Cc", "Cs") and char not in "\t\n\r":
            raise ActionError("%s contains the control character U+%04X at position %d" % (what, ord(char), position))
    return " ".join(text.split())


def _parse_json(text: str) -> tuple:
    """-> (narration, objects or None)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ActionError("the action looks like JSON but does not parse: %s" % err) from None
    if not isinstance(data, dict):
        raise ActionError("an action in JSON form must be an object {\"action\": ..., \"objects\": [...]}, got %s"
                          % type(data).__name__)
    unknown = sorted(set(data) - set(JSON_FIELDS))
    if unknown:
        raise ActionError("unknown field(s) %s in the action JSON (expected: %s)"
                          % (", ".join(repr(k) for k in unknown), ", ".join(JSON_FIELDS)))
    narration = data.get("action", "")
    if not isinstance(narration, str):
        raise ActionError("'action' must be a string, got %s" % type(narration).__name__)
    objects = data.get("objects")
    if objects is not None:
        if not isinstance(objects, list):
            raise ActionError("'objects' must be a list of names, got %s" % type(objects).__name__)
        for index, name in enumerate(objects):
            if not isinstance(name, str):
                raise ActionError("'objects'[%d] must be a string, got %s" % (index, type(name).__name__))
            if not name.strip():
                raise ActionError("'objects'[%d] is empty" % index)
        objects = [check_text(name, "'objects'[%d]" % i, MAX_NAME_CHARS) for i, name in enumerate(objects)]
    return narration, objects


def parse_action(text: str, vocabulary=None, always=(), extra=(), max_objects: int = 16) -> ActionCommand | None:
    """The command text -> ActionCommand, or None when it clears the action. Raises ActionError."""
    if not isinstance(text, str):
        raise ActionError("the action must be text, got %s" % type(text).__name__)
    check_text(text, "the action", MAX_ACTION_CHARS)
    stripped = text.strip()
    if not stripped:
        return None
    objects = None
    narration = stripped
    if stripped[0] in "{[":  # no narration starts with a bracket; treat it as (possibly broken) JSON
        narration, objects = _parse_json(stripped)
    narration = check_text(narration, "'action'", MAX_ACTION_CHARS)
    if not narration and not objects:
        return None
    if objects is None:
        named = find_names(narration, default_vocabulary() if vocabulary is None else vocabulary)
    else:
        named = objects
    candidates = list(dict.fromkeys(list(named) + [n for n in always if n] + [n for n in extra if n]))
    if not candidates:
        raise ActionError("no object to segment: the action %r names no known object and no always-candidates or "
                          "'objects' parameter are set" % narration)
    if len(candidates) > max_objects:
        raise ActionError("the action gives %d objects (%s); at most %d are allowed (parameter max_objects)"
                          % (len(candidates), ", ".join(candidates), max_objects))
    return ActionCommand(narration=narration, objects=tuple(candidates), named=tuple(named))


def build_prompts(command: ActionCommand, template: str) -> list:
    """One prompt per candidate, in the model card's template ("{object} used in the action of {narration}").
    Without a narration the object name alone is the prompt."""
    if not command.narration:
        return list(command.objects)
    return [template.format(object=name, narration=command.narration) for name in command.objects]
