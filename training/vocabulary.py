"""The object names a trained model knows, for its model card (`actiseg export`).

The node finds the objects of an action command by matching the card's vocabulary in the narration
(actiseg_ros.ros.action_parsing), so the card must list every name the model was trained to segment: all
object names of its training data (`data_root`'s training split and every `mix_data` part), and for a run
that started from another model (`init_from`) that model's vocabulary too: the model card next to its
weights file (models/default/actiseg_default.pt -> models/default/model_card.json), or else, read from the
init weights' own config, its training data (and so on up the chain). A fine-tuned model's vocabulary is
therefore the init model's plus the new data's names: fine-tuned on spatulas, "pick up the spatula" finds one.
"""
from __future__ import annotations

import json
from pathlib import Path

from actiseg_ros.data import actionvos

MAX_INIT_CHAIN = 8  # init_from links followed at most (a cycle of files must not loop forever)


def split_names(root, split: str) -> set:
    """Every object name in ROOT/ImageSets/SPLIT.json; ValueError naming the file when it is missing or bad."""
    path = Path(root) / actionvos.IMAGE_SETS / ("%s.json" % split)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError("cannot read the training data's names from %s (%s); pass --vocabulary" % (path, err)) \
            from None
    except json.JSONDecodeError as err:
        raise ValueError("%s is not valid JSON (%s)" % (path, err)) from None
    names = set()
    for entry in entries if isinstance(entries, list) else []:
        for obj in (entry.get("object_classes") or {}).values() if isinstance(entry, dict) else []:
            if isinstance(obj, dict) and isinstance(obj.get("name"), str) and obj["name"].strip():
                names.add(obj["name"].strip())
    if not names:
        raise ValueError("%s names no objects" % path)
    return names


def card_vocabulary(weights_path) -> list | None:
    """The vocabulary of the model card in the weights file's folder, or None when there is no card."""
    card = Path(weights_path).parent / "model_card.json"
    if not card.is_file():
        return None
    vocabulary = json.loads(card.read_text(encoding="utf-8")).get("vocabulary")
    return list(vocabulary) if isinstance(vocabulary, list) and vocabulary else None


def training_vocabulary(config) -> list:
    """Sorted object names a TrainConfig's model learnt: its data's, plus its init model's (see the module)."""
    from .checkpoint import read_weights_file
    from .config import from_dict

    names: set = set()
    for _ in range(MAX_INIT_CHAIN):
        names |= split_names(config.data_root, config.train_split)
        for entry in config.mix_data:
            names |= split_names(entry["root"], entry.get("split", "train"))
        if not config.init_from:
            break
        from_card = card_vocabulary(config.init_from)
        if from_card is not None:
            names |= set(from_card)
            break
        config = from_dict(read_weights_file(config.init_from)["config"])
    return sorted(names)
