"""Training configuration: one YAML file per recipe under training/configs/, loaded into dataclasses.

Several files may be given; later ones are merged key by key over earlier ones (e.g. the `tiny` recipe
plus the `strategies/gce` overlay), then `--set` overrides. Unknown keys are errors (a typo must not
silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import lnl
from .modeling.actiseg_model import ModelConfig

STRATEGIES = ("none", "sce", "gce", "apl", "coteaching", "elr", "npn")
# Strategies that replace the focal mask term, which PMHM replaces too: the two cannot be combined.
REPLACE_FOCAL = ("apl", "npn")
PRECISIONS = ("fp32", "bf16", "fp16")
# PMHM's split of reliable / uncertain pixels: the spec's, then the named variants (pmhm_loss.REGIONS).
PMHM_REGIONS = ("spec", "balanced", "logit", "balanced_logit")
# Strategies that keep per-clip state (or a second model) in one process: no DDP.
SINGLE_PROCESS = ("coteaching", "elr", "npn")


# Hyper-parameters of the label-noise-learning strategies (spec section 5); the defaults are the spec's.
@dataclass
class SCEConfig:
    alpha: float = lnl.SCE_ALPHA  # BCE weight
    beta: float = lnl.SCE_BETA  # reverse-CE weight
    weight: float = lnl.LNL_TERM_WEIGHT  # of the SCE term added to the mask loss


@dataclass
class GCEConfig:
    q: float = lnl.GCE_Q
    weight: float = lnl.LNL_TERM_WEIGHT  # of the GCE term added to the mask loss


@dataclass
class APLConfig:
    active_weight: float = lnl.APL_ACTIVE_WEIGHT  # GCE
    passive_weight: float = lnl.APL_PASSIVE_WEIGHT  # MAE
    q: float = lnl.GCE_Q


@dataclass
class ELRConfig:
    previous_weight: float = lnl.ELR_PREVIOUS_WEIGHT  # t <- previous_weight * t + (1 - previous_weight) * p
    lam: float = lnl.ELR_LAMBDA


@dataclass
class NPNConfig:
    warmup_epochs: int = lnl.NPN_WARMUP_EPOCHS
    confidence: float = lnl.NPN_CONFIDENCE
    nl_weight: float = lnl.NPN_NL_WEIGHT
    cr_weight: float = lnl.NPN_CR_WEIGHT


@dataclass
class CoTeachingConfig:
    group_size: int = lnl.COTEACHING_GROUP_SIZE  # clips ranked together
    keep_start: float = lnl.COTEACHING_START_RATE  # R(1)
    keep_drop: float = lnl.COTEACHING_TOTAL_DROP  # R falls by this much ...
    ramp_epochs: int = lnl.COTEACHING_RAMP_EPOCHS  # ... over these epochs
    val_segments: int = 32  # segments of val_split scored to pick the better of the two models


@dataclass
class LossConfig:
    positive: float = 2.0  # positive-head weight; mask focal 2 and dice 5 are fixed (spec section 3)
    deep_supervision: bool = True  # focal+dice on earlier decoder layers too (plain model)
    pmhm: bool = True
    # Epochs of plain focal+dice before PMHM's robust loss starts. From the first step, PMHM leaves a fresh
    # mask head stuck on "all background": foreground pixels are its least confident ones, so they fall
    # in the uncertain region, which only carries the weak Tversky term (measured: positive objects' max
    # logit -9.7 after 100 steps). The auxiliary heads are re-copied from the main head when PMHM starts.
    pmhm_warmup_epochs: int = 1  # PMHM robust loss replaces the weighted focal mask loss (needs model.aux_heads >= 1)
    # Re-copy the auxiliary heads from the main head (+ N(0, 1e-3)) when a run starts (not on resume), as the
    # spec initialises them; without it a run from init_from keeps the file's trained auxiliary heads.
    pmhm_reset_aux: bool = False
    # How PMHM splits reliable from uncertain pixels: "spec" (spec section 6) or a named variant of
    # pmhm_loss.REGION_VARIANTS ("balanced": quantiles per predicted class; "logit": margin as |logit|;
    # "balanced_logit": both).
    pmhm_regions: str = "spec"
    # Weight of focal + dice on the ungated object logits against each object's own mask, active or not
    # (objective.object_mask_loss); 0 = the spec's losses only. Needs model.activity_gate.
    object_mask: float = 0.0
    strategy: str = "none"  # label-noise-learning strategy, one of STRATEGIES (see strategies.py)
    sce: SCEConfig = field(default_factory=SCEConfig)
    gce: GCEConfig = field(default_factory=GCEConfig)
    apl: APLConfig = field(default_factory=APLConfig)
    elr: ELRConfig = field(default_factory=ELRConfig)
    npn: NPNConfig = field(default_factory=NPNConfig)
    coteaching: CoTeachingConfig = field(default_factory=CoTeachingConfig)


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
    # Weights file (an earlier run's model.pt) the model starts from instead of the pretrained backbone +
    # fresh layers: a second training stage. Its architecture must match (input_hw may differ); the
    # optimiser and schedule start fresh. A --resume from OUT/latest.pt takes precedence.
    init_from: str = ""
    # More training data mixed into every epoch: a list of {root: DIR, split: train, segments: N} (N = 0: all of
    # that split; otherwise N segments drawn once with `seed`). For fine-tuning on a new domain, a share of the
    # data the init model learnt from keeps the old domain from being forgotten (training/configs/finetune.yaml).
    mix_data: list = field(default_factory=list)
    # Folder of the frozen backbone's features per frame (training/feature_cache.py), filled on first use and
    # shared by runs and jobs: the backbone then runs once per frame and data set instead of at every step; it
    # also keeps the frozen text encoder's features of each data set's prompts (one file per prompt list).
    # Exact, so it needs model.backbone_trainable: false and jitter: 0. "" = off.
    feature_cache: str = ""
    # Folder of decoded, letterboxed frames (training/frame_cache.py), filled on first use: JPEG decoding and
    # resizing happen once per frame instead of every epoch. "" = off.
    frame_cache: str = ""
    loader_workers: int = 0  # threads loading the samples of a batch, one step ahead (0 = in the loop)
    precision: str = "fp32"  # "bf16" or "fp16": autocast mixed precision (fp16 with a gradient scaler, CUDA only)
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
        else:
            value = _coerce(default, value, "%s.%s" % (where, key))
        kwargs[key] = value
    return cls(**kwargs)


def _coerce(default, value, where: str):
    """A scalar of the default's type. YAML 1.1 reads `5e-4` (no dot) as a string; accept it for a float
    field, and name the key for anything else of the wrong type instead of failing deep inside training."""
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) != isinstance(value, bool):
            raise ValueError("%s: expected %s, got %r" % (where, type(default).__name__, value))
        return value
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("%s: expected a number, got %r" % (where, value)) from None
    if isinstance(default, int) and not isinstance(value, int):
        raise ValueError("%s: expected an integer, got %r" % (where, value))
    if isinstance(default, str) and not isinstance(value, str):
        raise ValueError("%s: expected a string, got %r" % (where, value))
    return value


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` merged over `base`: mappings key by key (recursively), anything else replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merge(merged[key], value)
        merged[key] = value
    return merged


def load_config(paths, overrides: dict | None = None) -> TrainConfig:
    """One YAML path, or a list merged in order; then dotted `overrides` ({"loss.strategy": "gce"})."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    values = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
        if not isinstance(loaded, dict):
            raise ValueError("%s: expected a mapping at the top level, got %r" % (path, loaded))
        values = merge(values, loaded)
    for dotted, value in (overrides or {}).items():
        node = values
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    config = _build(TrainConfig, values, " + ".join(str(p) for p in paths))
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    if config.loss.strategy not in STRATEGIES:
        raise ValueError("loss.strategy %r is not one of %s" % (config.loss.strategy, STRATEGIES))
    if config.loss.strategy in REPLACE_FOCAL and config.loss.pmhm:
        raise ValueError("loss.strategy %r replaces the focal mask loss, which PMHM replaces too; set loss.pmhm: false "
                         "and model.aux_heads: 0 (sce, gce, elr and coteaching do combine with PMHM)"
                         % config.loss.strategy)
    validate_strategy_parameters(config.loss)
    if config.loss.object_mask < 0:
        raise ValueError("loss.object_mask must be >= 0, got %r" % config.loss.object_mask)
    if config.loss.object_mask > 0 and not config.model.activity_gate:
        raise ValueError("loss.object_mask trains the mask head's logits before the activity gate; it needs "
                         "model.activity_gate: true")
    if config.loss.pmhm_regions not in PMHM_REGIONS:
        raise ValueError("loss.pmhm_regions must be one of %s, got %r" % (", ".join(PMHM_REGIONS),
                                                                         config.loss.pmhm_regions))
    if config.loss.pmhm and config.model.aux_heads < 1:
        raise ValueError("loss.pmhm needs model.aux_heads >= 1 (set loss.pmhm: false for the plain model)")
    if any(s % 32 for s in config.model.input_hw):
        raise ValueError("model.input_hw %s must be multiples of 32" % (config.model.input_hw,))
    if config.batch_size < 1 or config.frames_per_clip < 1 or config.epochs < 1:
        raise ValueError("batch_size, frames_per_clip and epochs must be >= 1")
    validate_mix_data(config.mix_data)
    if config.precision not in PRECISIONS:
        raise ValueError("precision must be one of %s, got %r" % (", ".join(PRECISIONS), config.precision))
    if config.loader_workers < 0:
        raise ValueError("loader_workers must be >= 0, got %r" % config.loader_workers)
    if config.feature_cache and (config.model.backbone_trainable or config.jitter > 0):
        raise ValueError("feature_cache stores the frozen backbone's features of each frame as it is: it needs "
                         "model.backbone_trainable: false and jitter: 0 (got backbone_trainable %s, jitter %s)"
                         % (config.model.backbone_trainable, config.jitter))


def validate_mix_data(entries) -> None:
    """mix_data entries are mappings with a `root` and optional `split` (str) and `segments` (int >= 0)."""
    if not isinstance(entries, list):
        raise ValueError("mix_data must be a list of {root, split, segments} mappings, got %r" % (entries,))
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("root"), str) or not entry["root"]:
            raise ValueError("mix_data[%d] must be a mapping with a `root` folder, got %r" % (i, entry))
        unknown = sorted(set(entry) - {"root", "split", "segments"})
        if unknown:
            raise ValueError("mix_data[%d]: unknown key(s) %s; allowed: root, split, segments" % (i, unknown))
        if not isinstance(entry.get("split", "train"), str):
            raise ValueError("mix_data[%d].split must be a split name, got %r" % (i, entry["split"]))
        segments = entry.get("segments", 0)
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 0:
            raise ValueError("mix_data[%d].segments must be an integer >= 0 (0: all), got %r" % (i, segments))


def validate_strategy_parameters(loss: LossConfig) -> None:
    """Range checks of every strategy section (also of unselected ones: a bad value is a mistake anyway)."""
    checks = [
        ("sce.alpha", loss.sce.alpha >= 0, ">= 0"), ("sce.beta", loss.sce.beta >= 0, ">= 0"),
        ("sce.weight", loss.sce.weight >= 0, ">= 0"),
        ("gce.q", 0 < loss.gce.q <= 1, "in (0, 1]"), ("gce.weight", loss.gce.weight >= 0, ">= 0"),
        ("apl.q", 0 < loss.apl.q <= 1, "in (0, 1]"), ("apl.active_weight", loss.apl.active_weight >= 0, ">= 0"),
        ("apl.passive_weight", loss.apl.passive_weight >= 0, ">= 0"),
        ("elr.previous_weight", 0 <= loss.elr.previous_weight < 1, "in [0, 1)"), ("elr.lam", loss.elr.lam >= 0, ">= 0"),
        ("npn.warmup_epochs", loss.npn.warmup_epochs >= 0, ">= 0"),
        ("npn.confidence", 0.5 <= loss.npn.confidence < 1, "in [0.5, 1)"),
        ("npn.nl_weight", loss.npn.nl_weight >= 0, ">= 0"), ("npn.cr_weight", loss.npn.cr_weight >= 0, ">= 0"),
        ("coteaching.group_size", loss.coteaching.group_size >= 1, ">= 1"),
        ("coteaching.keep_start", 0 < loss.coteaching.keep_start <= 1, "in (0, 1]"),
        ("coteaching.keep_drop", 0 <= loss.coteaching.keep_drop < loss.coteaching.keep_start,
         "in [0, keep_start) so that the keep rate stays > 0"),
        ("coteaching.ramp_epochs", loss.coteaching.ramp_epochs >= 1, ">= 1"),
        ("coteaching.val_segments", loss.coteaching.val_segments >= 1, ">= 1"),
    ]
    for name, ok, expected in checks:
        if not ok:
            section, key = name.split(".")
            raise ValueError("loss.%s = %r must be %s" % (name, getattr(getattr(loss, section), key), expected))


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def from_dict(values: dict) -> TrainConfig:
    """A checkpoint's config. Checkpoints written before the activity gate existed were trained without it."""
    model = dict(values.get("model") or {})
    model.setdefault("activity_gate", False)
    return _build(TrainConfig, dict(values, model=model), "checkpoint config")


def configs_dir() -> Path:
    return Path(__file__).resolve().parent / "configs"


def find_config(name: str):
    """A recipe by path, or by name under configs/ ('default', 'strategies/gce'); None if neither exists."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = configs_dir() / (name if name.endswith(".yaml") else name + ".yaml")
    return shipped if shipped.is_file() else None
