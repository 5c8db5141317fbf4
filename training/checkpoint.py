"""Checkpoints: written atomically (temp file + rename), so a kill mid-write never corrupts the last one.

The frozen text encoder's weights are not stored (they come from the installed weight package); when the
text encoder is fine-tuned they are.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import torch

LATEST = "latest.pt"


def latest_path(out_dir) -> Path:
    return Path(out_dir) / LATEST


def _atomic_save(obj, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def model_state(model) -> dict:
    """ActiSegModel state without the frozen text encoder."""
    keep_text = model.config.text_trainable
    return {k: v for k, v in model.state_dict().items() if keep_text or not k.startswith("text_encoder.")}


def load_model_state(model, state: dict) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("text_encoder.")]
    if missing or unexpected:
        raise ValueError("checkpoint does not match the model: missing %s, unexpected %s"
                         % (missing[:5], unexpected[:5]))


def save_training_state(path, members: list, step: int, config: dict, strategy_state: dict) -> None:
    """members: train.Member objects; the first one's entries keep the single-model layout, extra models
    (co-teaching's peer) go under "peers"."""
    first, peers = members[0], members[1:]
    _atomic_save({"model": model_state(first.model), "optimizer": first.optimizer.state_dict(),
                  "scheduler": first.scheduler.state_dict(), "step": step, "config": config,
                  "torch_rng": torch.get_rng_state(), "strategy": strategy_state,
                  "peers": [{"model": model_state(m.model), "optimizer": m.optimizer.state_dict(),
                             "scheduler": m.scheduler.state_dict()} for m in peers]}, path)


def load_training_state(path, members: list, strategy) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    saved_strategy = state.get("config", {}).get("loss", {}).get("strategy", "none")
    if saved_strategy != strategy.name:
        raise ValueError("%s was written with loss.strategy %s; this run uses %s"
                         % (path, saved_strategy, strategy.name))
    peers = state.get("peers", [])
    if len(peers) != len(members) - 1:
        raise ValueError("%s holds %d model(s) but this run trains %d" % (path, len(peers) + 1, len(members)))
    for member, saved in zip(members, [state] + peers):
        load_model_state(member.model, saved["model"])
        member.optimizer.load_state_dict(saved["optimizer"])
        member.scheduler.load_state_dict(saved["scheduler"])
    strategy.load_state_dict(state.get("strategy", {}))
    torch.set_rng_state(state["torch_rng"])
    return state


def save_weights(path, model, config: dict, info: dict) -> None:
    """The inference artefact: weights, the config that built them and how they were trained."""
    _atomic_save({"model": model_state(model), "config": config, "info": info}, path)


def read_weights_file(path) -> dict:
    """A weights file's {"model", "config", "info"} dict; FileNotFoundError or ValueError naming the file."""
    if not Path(path).is_file():
        raise FileNotFoundError("weights file not found: %s" % path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError("%s is not a torch weights file (%s)" % (path, err)) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError("%s is not an actiseg checkpoint (no 'model'/'config' entries)" % path)
    return state


# Model settings that change how the weights are fed or trained, not their shapes or meaning.
NOT_ARCHITECTURE = ("input_hw", "pretrained", "backbone_trainable")


def read_init_weights(path, model_config) -> dict:
    """The state of a weights file (save_weights) that a run of `model_config` may start from (init_from).

    The architecture must match the file's (every model setting except NOT_ARCHITECTURE): a different one is
    named here rather than surfacing as a tensor-shape error, or, worse, loading into a differently wired model.
    """
    from .config import from_dict

    try:
        state = read_weights_file(path)
    except (FileNotFoundError, ValueError) as err:
        raise type(err)("init_from: %s" % err) from None
    saved = dataclasses.asdict(from_dict(state["config"]).model)  # old files: from_dict's defaults
    current = dataclasses.asdict(model_config)
    differing = sorted(k for k in current if k not in NOT_ARCHITECTURE and saved[k] != current[k])
    if differing:
        raise ValueError("init_from: %s was trained with a different model: %s" % (
            path, ", ".join("%s %r (this run: %r)" % (k, saved[k], current[k]) for k in differing)))
    return state


def load_weights(path):
    """-> (ActiSegModel in eval mode, config dict, info dict)."""
    from .config import from_dict
    from .modeling.actiseg_model import ActiSegModel

    state = read_weights_file(path)
    config = from_dict(state["config"])
    config.model.pretrained = False  # the weights come from the checkpoint
    model = ActiSegModel(config.model)
    load_model_state(model, state["model"])
    return model.eval(), config, state.get("info", {})
