"""Training configuration: one YAML file per recipe under training/configs/, loaded into dataclasses.

Unknown keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .modeling.actiseg_model import ModelConfig

STRATEGIES = ("none", "sce", "gce", "apl", "coteaching", "elr", "npn")


@dataclass
class LossConfig:
    positive: float = 2.0  # positive-head weight; mask focal 2 and dice 5 are fixed (spec section 3)
    deep_supervision: bool = True  # focal+dice on earlier decoder layers too (plain model)
    pmhm: bool = True  # PMHM robust loss replaces the weighted focal mask loss (needs model.aux_heads >= 1)
    strategy: str = "none"  # label-noise-learning strategy


@dataclass
class TrainConfig:
    data_root: str = "data/synth_default"
    train_split: str = "train"
    val_split: str = "val_human"
    frames_per_clip: int = 5
    batch_size: int = 2
    epochs: int = 6
    lr: float = 1e-4
    lr_backbone: float = 1e-4
    weight_decay: float = 1e-4
    lr_drop_epochs: list = field(default_factory=lambda: [3, 5])
    lr_drop_factor: float = 0.1
    grad_clip: float = 0.1
    jitter: float = 0.2
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    checkpoint_every: int = 50  # steps; also at every epoch end
    log_every: int = 10
    max_steps: int = 0  # stop after this many steps in total (0 = run all epochs); for smoke tests
    skip_bad: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ValueError("%s: expected a mapping, got %r" % (where, values))
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError("%s: unknown key(s) %s; allowed: %s" % (where, unknown, sorted(names)))
    kwargs = {}
    for key, value in values.items():
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            value = _build(type(default), value, "%s.%s" % (where, key))
        elif isinstance(default, tuple):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def load_config(path, overrides: dict | None = None) -> TrainConfig:
    with open(path, encoding="utf-8") as handle:
        values = yaml.safe_load(handle) or {}
    for dotted, value in (overrides or {}).items():
        node = values
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    config = _build(TrainConfig, values, str(path))
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    if config.loss.strategy not in STRATEGIES:
        raise ValueError("loss.strategy %r is not one of %s" % (config.loss.strategy, STRATEGIES))
    if config.loss.pmhm and config.model.aux_heads < 1:
        raise ValueError("loss.pmhm needs model.aux_heads >= 1 (set loss.pmhm: false for the plain model)")
    if any(s % 32 for s in config.model.input_hw):
        raise ValueError("model.input_hw %s must be multiples of 32" % (config.model.input_hw,))
    if config.batch_size < 1 or config.frames_per_clip < 1 or config.epochs < 1:
        raise ValueError("batch_size, frames_per_clip and epochs must be >= 1")


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def from_dict(values: dict) -> TrainConfig:
    return _build(TrainConfig, values, "checkpoint config")


def configs_dir() -> Path:
    return Path(__file__).resolve().parent / "configs"
