"""Action commands: narration matching, the JSON form, clearing, and clear errors for junk."""
import json

import pytest

from actiseg_ros.ros.action_parsing import (ActionError, build_prompts, default_vocabulary, find_names, normalize,
                                            parse_action)

HANDS = ("left hand", "right hand")
TEMPLATE = "{object} used in the action of {narration}"


def test_names_found_in_narration_order_longest_match_first():
    assert find_names("cut red onion on chopping board with knife", default_vocabulary()) == [
        "red onion", "chopping board", "knife"]
    assert find_names("Cut the ONIONS, then wash tomatoes!", default_vocabulary()) == ["onion", "tomato"]
    assert find_names("open the cupboard", default_vocabulary()) == []  # 'cup' only as a whole word
    assert find_names("take spoon", ["spoon", "wooden spoon"]) == ["spoon"]


def test_plain_narration_gives_named_objects_then_hands_then_parameter_objects():
    command = parse_action("  cut onion   with knife ", always=HANDS, extra=["chopping board", "knife"])
    assert command.narration == "cut onion with knife"
    assert command.named == ("onion", "knife")
    assert command.objects == ("onion", "knife", "left hand", "right hand", "chopping board")
    prompts = build_prompts(command, TEMPLATE)
    assert prompts[0] == "onion used in the action of cut onion with knife"
    assert len(prompts) == 5


def test_json_form_lists_the_objects_itself():
    text = json.dumps({"action": "wash plate", "objects": ["plate", "sponge", "left hand"]})
    command = parse_action(text, always=HANDS)
    assert command.objects == ("plate", "sponge", "left hand", "right hand")
    assert command.named == ("plate", "sponge", "left hand")
    only_action = parse_action('{"action": "stir pan"}', always=())
    assert only_action.objects == ("pan",)


def test_objects_without_narration_are_prompted_by_name():
    command = parse_action('{"objects": ["mug"]}')
    assert build_prompts(command, TEMPLATE) == ["mug"]


@pytest.mark.parametrize("text", ["", "   ", "\n\t", '{"action": "", "objects": []}', '{"action": "  "}'])
def test_empty_commands_clear(text):
    assert parse_action(text, always=HANDS) is None


@pytest.mark.parametrize("text, words", [
    ("x" * 10240, ["10240 characters", "limit is 1000"]),
    ("cut onion \ufffd\ufffd", ["not valid UTF-8"]),
    ("cut\x00onion", ["control character U+0000"]),
    ('{"action": 5}', ["'action' must be a string", "int"]),
    ('{"action": "cut onion", "objects": "knife"}', ["'objects' must be a list", "str"]),
    ('{"action": "cut onion", "objects": ["knife", 3]}', ["'objects'[1] must be a string"]),
    ('{"action": "cut onion", "objects": [""]}', ["'objects'[0] is empty"]),
    ('{"action": "cut onion", "verb": "cut"}', ["unknown field(s) 'verb'"]),
    ('{"action": "cut onion"', ["does not parse"]),
    ('["cut onion"]', ["must be an object"]),
    ("{not json at all", ["does not parse"]),
    ("dance wildly", ["names no known object"]),
])
def test_junk_is_refused_with_a_reason(text, words):
    with pytest.raises(ActionError) as err:
        parse_action(text, always=())
    for word in words:
        assert word in str(err.value)


def test_too_many_objects_is_refused():
    names = ["plate", "cup", "bowl", "knife"]
    with pytest.raises(ActionError, match="at most 3"):
        parse_action(json.dumps({"action": "tidy", "objects": names}), max_objects=3)


def test_non_string_input_is_refused():
    with pytest.raises(ActionError, match="must be text"):
        parse_action(b"cut onion")


def test_normalize():
    assert normalize("  Chopping-Board!! ") == "chopping board"
