"""The ActiSeg-NL robustness grid definition (spec sections 4-6): a YAML file under training/configs/grids/
-> methods x noise settings x seeds, each cell a fully resolved training config.

A grid file has these keys (unknown keys are errors naming the file):

    description: free text
    data:            the one clean synthetic data set every cell derives from
      preset: default            # a synth preset (actiseg_ros.data.synth.PRESETS) ...
      train_scenes: 12           # ... with any of its fields overridden
      size: [320, 180]           # frame size W, H (default: the preset's)
      seed: 0
    recipe: [robustness_quick]   # training configs merged in order (names as for `actiseg train --config`)
    set: {val_split: val}        # overrides applied to every method
    seeds: 2                     # seeds 0 .. N-1 (noise draw and training seed of a cell)
    eval_split: val_human        # scored on the CLEAN data set
    feature_cache: true          # cells share OUT/feature_cache (frozen backbone, no jitter: feature_cache.py)
    cost:                        # measured on the target machine; printed as the grid's cost before it runs
      seconds_per_step: {default: 0.7, coteaching: 1.5}   # per optimiser step, by method name
      cell_overhead_seconds: 90  # set-up + infer + eval of one cell (a number, or by method as above)
      measured: "where and when" # free text, printed with the estimate
    methods:                     # name -> extra configs (overlays), overrides and own seed count
      baseline: {seeds: 2}
      pmhm: {set: {loss.pmhm: true, model.aux_heads: 1}}
      gce: {configs: [strategies/gce], seeds: 1}
    noise:                       # name -> `actiseg corrupt` arguments (text_flip, noun_sub, mask_dilate)
      clean: {}
      flip40: {text_flip: 0.4}
      mixed: {text_flip: 0.4, mask_dilate: 15, level: 1}

A noise setting's kind follows from its arguments (clean, flip, substitution, dilation, mixed); its level
(the x of the degradation curves) is the rate in percent, the kernel at 854x480, or for mixed settings
`level` if given, else the rank by severity (1, 2, ...).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from actiseg_ros.data.synth import PRESETS, Preset

from .config import TrainConfig, configs_dir, find_config, load_config, to_dict, validate

METRICS = ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc")  # as in `actiseg eval --json`
METRIC_LABELS = {"p_mIoU": "p-mIoU", "n_mIoU": "n-mIoU", "p_cIoU": "p-cIoU", "n_cIoU": "n-cIoU", "gIoU": "gIoU",
                 "acc": "Acc"}
LOWER_IS_BETTER = ("n_mIoU", "n_cIoU")
NOISE_KINDS = ("clean", "flip", "substitution", "dilation", "mixed")
LEVEL_LABELS = {"flip": "category flip rate (%)", "substitution": "within-category substitution rate (%)",
                "dilation": "dilation kernel at 854x480 (px)", "mixed": "mixed severity (see grid file)"}
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")  # method / noise names: file names, no ':' (see --only)
GRID_KEYS = ("description", "data", "recipe", "set", "seeds", "eval_split", "feature_cache", "cost", "methods",
             "noise")
FINGERPRINT_VERSION = 1


class GridError(ValueError):
    """A grid file that cannot run; the message names the file and the field."""


@dataclass(frozen=True)
class DataSpec:
    preset: str
    seed: int
    size: tuple  # (W, H)
    fields: tuple  # ((Preset field, value), ...) overriding the preset

    def preset_object(self) -> Preset:
        return dataclasses.replace(PRESETS[self.preset], **dict(self.fields))

    def to_json(self) -> dict:
        return {"preset": self.preset, "seed": self.seed, "size": list(self.size), "fields": dict(self.fields)}


@dataclass(frozen=True)
class NoiseSetting:
    name: str
    text_flip: float = 0.0
    noun_sub: float = 0.0
    mask_dilate: int | None = None
    kind: str = "clean"
    level: float = 0.0

    @property
    def is_clean(self) -> bool:
        return self.kind == "clean"

    def corrupt_arguments(self) -> dict:
        """Keyword arguments of actiseg_ros.data.noise_cli.corrupt."""
        return {"flip_rate": self.text_flip, "sub_rate": self.noun_sub, "kernel": self.mask_dilate}

    def to_json(self) -> dict:
        return {"text_flip": self.text_flip, "noun_sub": self.noun_sub, "mask_dilate": self.mask_dilate,
                "kind": self.kind, "level": self.level}


@dataclass(frozen=True)
class Method:
    name: str
    configs: tuple  # overlay config paths, merged after the grid's recipe
    overrides: tuple  # ((dotted key, value), ...)
    seeds: int = 0  # this method's seed count (0: the grid's)


@dataclass(frozen=True)
class Cell:
    method: str
    noise: str
    seed: int

    @property
    def id(self) -> str:
        return "%s__%s__seed%d" % (self.method, self.noise, self.seed)


@dataclass(frozen=True)
class Grid:
    name: str
    source: str  # the grid file
    description: str
    data: DataSpec
    recipe: tuple  # config paths
    overrides: tuple  # ((dotted key, value), ...) for every method
    seeds: tuple
    eval_split: str
    methods: tuple  # Method, in file order
    noise: tuple  # NoiseSetting, in file order
    feature_cache: bool = False  # cells share OUT/feature_cache
    cost: tuple = ()  # ((key, value), ...) of the file's `cost` mapping (estimate_cost)

    def method(self, name: str) -> Method:
        return {m.name: m for m in self.methods}[name]

    def noise_setting(self, name: str) -> NoiseSetting:
        return {n.name: n for n in self.noise}[name]

    def method_seeds(self, method: Method) -> tuple:
        return tuple(range(method.seeds)) if method.seeds else self.seeds

    def cells(self) -> list:
        """Every cell, seed-major then noise then method: an interrupted grid has whole seeds done first.
        A method with its own `seeds` count has cells for those seeds only."""
        seeds = sorted({s for m in self.methods for s in self.method_seeds(m)})
        return [Cell(m.name, n.name, s) for s in seeds for n in self.noise for m in self.methods
                if s in self.method_seeds(m)]

    def parse_cell(self, text: str) -> Cell:
        """'METHOD:NOISE:SEED' -> Cell of this grid (GridError otherwise)."""
        parts = text.split(":")
        if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
            raise GridError("--only %r: expected METHOD:NOISE:SEED, e.g. gce:flip40:0" % text)
        method, noise, seed = parts[0], parts[1], int(parts[2])
        if method not in {m.name for m in self.methods}:
            raise GridError("--only %r: method %r is not in grid %s (methods: %s)"
                            % (text, method, self.name, [m.name for m in self.methods]))
        if noise not in {n.name for n in self.noise}:
            raise GridError("--only %r: noise setting %r is not in grid %s (settings: %s)"
                            % (text, noise, self.name, [n.name for n in self.noise]))
        if seed < 0:
            raise GridError("--only %r: the seed must be >= 0" % text)
        return Cell(method, noise, seed)

    def cells_of_methods(self, names) -> list:
        """The grid's cells of the named methods (GridError for a name that is not one of its methods)."""
        known = [m.name for m in self.methods]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise GridError("--methods %s: not method(s) of grid %s (methods: %s)"
                            % (",".join(unknown) or "''", self.name, known))
        return [c for c in self.cells() if c.method in names]

    def train_config(self, cell: Cell, data_root) -> TrainConfig:
        """The cell's training config: recipe + method overlays, grid and method overrides, data and seed."""
        method = self.method(cell.method)
        overrides = dict(self.overrides)
        overrides.update(dict(method.overrides))
        overrides.update({"data_root": str(data_root), "seed": cell.seed})
        return load_config(list(self.recipe) + list(method.configs), overrides)

    def fingerprint(self, cell: Cell) -> str:
        """Hash of everything that determines a cell's numbers (not where its files live)."""
        config = to_dict(self.train_config(cell, "<train data of this cell>"))
        config.pop("feature_cache")  # where features are cached, not what is trained: results are the same
        for key, default in (("frame_cache", ""), ("loader_workers", 0), ("precision", "fp32")):
            if config.get(key) == default:  # keys added later: at their defaults, earlier cells keep their hash
                config.pop(key)
        if config["loss"].get("pmhm_regions") == "spec":  # added later too
            config["loss"].pop("pmhm_regions")
        document = {"version": FINGERPRINT_VERSION, "data": self.data.to_json(),
                    "noise": self.noise_setting(cell.noise).to_json(), "seed": cell.seed, "train": config,
                    "eval_split": self.eval_split}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {"name": self.name, "source": self.source, "description": self.description,
                "data": self.data.to_json(), "recipe": [str(p) for p in self.recipe],
                "set": dict(self.overrides), "seeds": list(self.seeds), "eval_split": self.eval_split,
                "methods": {m.name: {"configs": [str(p) for p in m.configs], "set": dict(m.overrides)}
                            for m in self.methods},
                "noise": {n.name: n.to_json() for n in self.noise}}


# --- loading -------------------------------------------------------------------------------------------

def grids_dir() -> Path:
    return configs_dir() / "grids"


def resolve_grid_path(name) -> Path:
    """'quick' / 'full' (shipped under configs/grids) or a path to a YAML file."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = grids_dir() / (str(name) if str(name).endswith(".yaml") else "%s.yaml" % name)
    if shipped.is_file():
        return shipped
    shipped_names = sorted(p.stem for p in grids_dir().glob("*.yaml"))
    raise GridError("grid %s not found (shipped grids: %s)" % (name, shipped_names))


def resolve_config(name: str, where: str) -> Path:
    found = find_config(name)
    if found is not None:
        return found
    raise GridError("%s: config %s not found (neither a file nor under %s)" % (where, name, configs_dir()))


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GridError("%s: expected a mapping, got %r" % (where, value))
    return value


def _names(value, where: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GridError("%s: expected a config name or a list of them, got %r" % (where, value))
    return value


def _check_name(name, where: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or "__" in name:
        raise GridError("%s: name %r must be lower-case letters, digits, '_' or '-' (no '__')" % (where, name))


def parse_data(values: dict, where: str) -> DataSpec:
    values = dict(_mapping(values, where))
    preset = values.pop("preset", "default")
    if preset not in PRESETS:
        raise GridError("%s.preset: %r is not a synth preset (%s)" % (where, preset, sorted(PRESETS)))
    seed = values.pop("seed", 0)
    if not isinstance(seed, int):
        raise GridError("%s.seed: expected an integer, got %r" % (where, seed))
    size = values.pop("size", None)
    if size is None:
        size = PRESETS[preset].size
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) and s >= 16 for s in size)):
        raise GridError("%s.size: expected [WIDTH, HEIGHT] in pixels (>= 16), got %r" % (where, size))
    allowed = {f.name for f in dataclasses.fields(Preset)} - {"name", "size"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise GridError("%s: unknown key(s) %s; allowed: preset, seed, size, %s" % (where, unknown, sorted(allowed)))
    fields = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))
    spec = DataSpec(preset, seed, tuple(size), fields)
    try:
        spec.preset_object()
    except TypeError as err:
        raise GridError("%s: %s" % (where, err)) from None
    return spec


def noise_kind(text_flip: float, noun_sub: float, mask_dilate) -> str:
    active = [name for name, on in (("flip", text_flip > 0), ("substitution", noun_sub > 0),
                                    ("dilation", mask_dilate is not None)) if on]
    if not active:
        return "clean"
    return active[0] if len(active) == 1 else "mixed"


def parse_noise(name: str, values, where: str) -> NoiseSetting:
    _check_name(name, where)
    values = dict(_mapping(values, "%s.%s" % (where, name)))
    here = "%s.%s" % (where, name)
    unknown = sorted(set(values) - {"text_flip", "noun_sub", "mask_dilate", "level"})
    if unknown:
        raise GridError("%s: unknown key(s) %s; allowed: text_flip, noun_sub, mask_dilate, level" % (here, unknown))
    text_flip, noun_sub = values.get("text_flip", 0.0), values.get("noun_sub", 0.0)
    for key, rate in (("text_flip", text_flip), ("noun_sub", noun_sub)):
        if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise GridError("%s.%s: expected a rate in [0, 1], got %r" % (here, key, rate))
    mask_dilate = values.get("mask_dilate")
    if mask_dilate is not None and (not isinstance(mask_dilate, int) or mask_dilate < 1 or mask_dilate % 2 == 0):
        raise GridError("%s.mask_dilate: expected an odd kernel size >= 1 (at 854x480), got %r" % (here, mask_dilate))
    kind = noise_kind(text_flip, noun_sub, mask_dilate)
    level = values.get("level")
    if level is not None and not isinstance(level, (int, float)):
        raise GridError("%s.level: expected a number, got %r" % (here, level))
    if level is None:
        level = {"clean": 0.0, "flip": 100.0 * text_flip, "substitution": 100.0 * noun_sub,
                 "dilation": float(mask_dilate or 0), "mixed": None}[kind]
    return NoiseSetting(name, float(text_flip), float(noun_sub), mask_dilate, kind, level)


def rank_mixed_levels(settings: list) -> list:
    """Mixed settings without an explicit level get their severity rank (1, 2, ...) by (flip, sub, kernel)."""
    unranked = sorted((s for s in settings if s.level is None),
                      key=lambda s: (s.text_flip, s.noun_sub, s.mask_dilate or 0))
    ranks = {s.name: float(i + 1) for i, s in enumerate(unranked)}
    return [dataclasses.replace(s, level=ranks[s.name]) if s.name in ranks else s for s in settings]


def parse_method(name: str, values, where: str, seeds_override: int | None = None) -> Method:
    _check_name(name, where)
    here = "%s.%s" % (where, name)
    values = dict(_mapping(values, here))
    unknown = sorted(set(values) - {"configs", "set", "seeds"})
    if unknown:
        raise GridError("%s: unknown key(s) %s; allowed: configs, set, seeds" % (here, unknown))
    configs = tuple(resolve_config(c, "%s.configs" % here) for c in _names(values.get("configs"), "%s.configs" % here))
    overrides = tuple(_mapping(values.get("set"), "%s.set" % here).items())
    seeds = values.get("seeds", 0)
    if "seeds" in values and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise GridError("%s.seeds: expected a positive integer, got %r" % (here, seeds))
    return Method(name, configs, overrides, 0 if seeds_override is not None else seeds)


COST_KEYS = ("seconds_per_step", "cell_overhead_seconds", "measured")


def parse_cost(values, where: str) -> tuple:
    values = dict(_mapping(values, where))
    unknown = sorted(set(values) - set(COST_KEYS))
    if unknown:
        raise GridError("%s: unknown key(s) %s; allowed: %s" % (where, unknown, list(COST_KEYS)))
    if not values:
        return ()
    tables = {}
    for key in ("seconds_per_step", "cell_overhead_seconds"):
        value = values.get(key, 0)
        table = {"default": value} if not isinstance(value, dict) else dict(value)
        if "default" not in table:
            raise GridError("%s.%s: needs a `default` entry (the figure of a method without its own)" % (where, key))
        for name, seconds in table.items():
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise GridError("%s: %s.%s must be a number of seconds >= 0, got %r" % (where, key, name, seconds))
        tables[key] = tuple(sorted((k, float(v)) for k, v in table.items()))
    return (("seconds_per_step", tables["seconds_per_step"]),
            ("cell_overhead_seconds", tables["cell_overhead_seconds"]), ("measured", str(values.get("measured", ""))))


def load_grid(name, seeds: int | None = None) -> Grid:
    """Read and check a grid file; every method's training config is built once so that a bad one fails
    now, not after an hour of other cells. `seeds` overrides the file's seed count."""
    path = resolve_grid_path(name)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise GridError("%s: not valid YAML: %s" % (path, err)) from None
    where = str(path)
    document = _mapping(document, where)
    unknown = sorted(set(document) - set(GRID_KEYS))
    if unknown:
        raise GridError("%s: unknown key(s) %s; allowed: %s" % (where, unknown, list(GRID_KEYS)))
    for key in ("data", "recipe", "methods", "noise"):
        if not document.get(key):
            raise GridError("%s: '%s' is missing or empty" % (where, key))
    count = document.get("seeds", 1) if seeds is None else seeds
    if not isinstance(count, int) or count < 1:
        raise GridError("%s: seeds must be a positive integer, got %r" % (where if seeds is None else "--seeds", count))
    noise = rank_mixed_levels([parse_noise(n, v, "%s: noise" % where)
                               for n, v in _mapping(document["noise"], "%s: noise" % where).items()])
    feature_cache = document.get("feature_cache", False)
    if not isinstance(feature_cache, bool):
        raise GridError("%s: feature_cache must be true or false, got %r" % (where, feature_cache))
    grid = Grid(
        name=path.stem, source=str(path), description=str(document.get("description", "")).strip(),
        data=parse_data(document["data"], "%s: data" % where),
        recipe=tuple(resolve_config(c, "%s: recipe" % where) for c in _names(document["recipe"], "%s: recipe" % where)),
        overrides=tuple(_mapping(document.get("set"), "%s: set" % where).items()),
        seeds=tuple(range(count)), eval_split=str(document.get("eval_split", "val_human")),
        methods=tuple(parse_method(n, v, "%s: methods" % where, seeds)
                      for n, v in _mapping(document["methods"], "%s: methods" % where).items()),
        noise=tuple(noise), feature_cache=feature_cache, cost=parse_cost(document.get("cost"), "%s: cost" % where))
    for method in grid.methods:
        try:
            config = grid.train_config(Cell(method.name, grid.noise[0].name, 0), "<data>")
            if grid.feature_cache:
                validate(dataclasses.replace(config, feature_cache="<out>/feature_cache"))
        except (ValueError, OSError) as err:
            raise GridError("%s: method %s: invalid training config: %s" % (where, method.name, err)) from None
    return grid


# --- cost estimate -------------------------------------------------------------------------------------------

def cell_steps(config: TrainConfig, train_segments: int) -> tuple:
    """(optimiser steps, models trained) of a cell with `train_segments` training clips, as train.py schedules
    them: clips // batch_size a step per epoch, or co-teaching's shrinking selection (strategies.CoTeaching)."""
    from .lnl import coteaching_keep_rate
    from .schedule import EpochSchedule
    from .strategies import group_sizes, kept_count

    batch = config.batch_size
    if config.loss.strategy == "coteaching":
        params = config.loss.coteaching
        per_epoch = [sum(-(-kept_count(m, coteaching_keep_rate(e + 1, params.keep_start, params.keep_drop,
                                                                   params.ramp_epochs)) // batch)
                         for m in group_sizes(train_segments, params.group_size)) for e in range(config.epochs)]
        members = 2
    else:
        per_epoch = [train_segments // batch] * config.epochs
        members = 1
    if min(per_epoch) < 1:
        raise GridError("batch_size %d is larger than the %d training segments" % (batch, train_segments))
    return EpochSchedule(per_epoch, config.max_steps).total_steps, members


def estimate_cost(grid: Grid, cells: list, train_segments: int) -> dict:
    """Seconds of each cell from the grid's measured `cost`: steps x the method's seconds per step (co-teaching's
    figure covers both models and its ranking passes) + the method's per-cell overhead (set-up, infer, eval).
    -> {"cells": [(cell, steps, seconds)], "total_seconds", "measured"}; empty if the grid has no `cost`."""
    if not grid.cost:
        return {}
    cost = dict(grid.cost)
    per_step, overhead = dict(cost["seconds_per_step"]), dict(cost["cell_overhead_seconds"])
    rows = []
    for cell in cells:
        steps, _ = cell_steps(grid.train_config(cell, "<data>"), train_segments)
        seconds = (steps * per_step.get(cell.method, per_step["default"])
                   + overhead.get(cell.method, overhead["default"]))
        rows.append((cell, steps, seconds))
    return {"cells": rows, "total_seconds": sum(r[2] for r in rows), "measured": cost["measured"]}


def format_estimate(estimate: dict, jobs: int) -> str:
    """The estimate as text: per method (cells, steps and seconds per cell), the total, and the measurement."""
    if not estimate:
        return "no cost estimate (the grid file has no `cost` section)"
    by_method = {}
    for cell, steps, seconds in estimate["cells"]:
        entry = by_method.setdefault(cell.method, [0, steps, seconds])
        entry[0] += 1
    lines = ["cost estimate (%d cells; measured: %s):" % (len(estimate["cells"]), estimate["measured"] or "-")]
    for method, (count, steps, seconds) in by_method.items():
        lines.append("  %-11s %3d cells x %6.0f s (%d steps) = %5.2f h" % (method, count, seconds, steps,
                                                                         count * seconds / 3600))
    total = estimate["total_seconds"]
    lines.append("  total %.0f s = %.2f h of one job" % (total, total / 3600))
    if jobs > 1:
        lines.append("  with --jobs %d: about %.2f h of wall time if %d cores are free (one torch thread per job; "
                     "the per-step figures were measured one job at a time)" % (jobs, total / 3600 / jobs, jobs))
    return "\n".join(lines)
