"""Grid definitions of `actiseg robustness`: the shipped quick/full grids, checks of bad grid files, noise
kinds and levels, --only parsing and cell fingerprints."""
import json
from pathlib import Path

import pytest

from actiseg_ros.training.robustness_grid import Cell, GridError, load_grid, noise_kind

REPO = Path(__file__).resolve().parents[1]
GRIDS = REPO / "training" / "configs" / "grids"
STRATEGIES = {"sce", "gce", "apl", "coteaching", "elr", "npn"}


def write_grid(tmp_path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


MINIMAL = """
data: {preset: tiny}
recipe: [tiny]
methods:
  baseline: {set: {loss.pmhm: false, model.aux_heads: 0}}
noise:
  clean: {}
"""


def test_quick_grid_is_8_methods_by_5_settings_by_2_seeds():
    grid = load_grid(GRIDS / "quick.yaml")
    assert len(grid.cells()) == 80
    assert {m.name for m in grid.methods} == {"baseline", "pmhm"} | STRATEGIES
    assert sorted(n.kind for n in grid.noise) == ["clean", "dilation", "flip", "mixed", "substitution"]
    assert grid.seeds == (0, 1)
    for method in grid.methods:
        config = grid.train_config(Cell(method.name, "clean", 0), "/data")
        assert config.loss.strategy == (method.name if method.name in STRATEGIES else "none")
        assert config.loss.pmhm == (method.name == "pmhm")  # strategies run on the plain model
        assert config.val_split == "val"  # co-teaching must not pick its model on the scored split
        assert config.threads == 1 and config.data_root == "/data"
    mixed = grid.noise_setting("mixed")
    assert (mixed.text_flip, mixed.mask_dilate) == (0.4, 15)


def test_full_grid_has_every_level_and_three_seeds():
    grid = load_grid(GRIDS / "full.yaml")
    levels = {}
    for setting in grid.noise:
        levels.setdefault(setting.kind, []).append(setting.level)
    assert levels["flip"] == [20.0, 40.0, 60.0]
    assert levels["dilation"] == [9.0, 15.0, 21.0]
    assert levels["mixed"] == [1.0, 2.0, 3.0]
    assert len(grid.cells()) == 8 * len(grid.noise) * 3
    assert load_grid(GRIDS / "full.yaml", seeds=1).seeds == (0,)


def test_noise_kind_and_default_levels(tmp_path):
    grid = load_grid(write_grid(tmp_path, MINIMAL + """
  f: {text_flip: 0.2}
  s: {noun_sub: 0.5}
  d: {mask_dilate: 21}
  m2: {text_flip: 0.6, mask_dilate: 21}
  m1: {text_flip: 0.2, mask_dilate: 9}
  given: {noun_sub: 0.1, mask_dilate: 9, level: 7}
"""))
    found = {n.name: (n.kind, n.level) for n in grid.noise}
    assert found == {"clean": ("clean", 0.0), "f": ("flip", 20.0), "s": ("substitution", 50.0),
                     "d": ("dilation", 21.0), "m2": ("mixed", 2.0), "m1": ("mixed", 1.0), "given": ("mixed", 7)}
    assert noise_kind(0.0, 0.0, None) == "clean"
    assert grid.noise_setting("m1").corrupt_arguments() == {"flip_rate": 0.2, "sub_rate": 0.0, "kernel": 9}


@pytest.mark.parametrize("extra, message", [
    ("  bad: {text_flip: 1.5}\n", "text_flip: expected a rate in [0, 1]"),
    ("  bad: {mask_dilate: 10}\n", "mask_dilate: expected an odd kernel"),
    ("  bad: {dilate: 9}\n", "unknown key(s) ['dilate']"),
    ("  Bad:Name: {}\n", "must be lower-case"),
])
def test_bad_noise_settings_name_file_and_field(tmp_path, extra, message):
    path = write_grid(tmp_path, MINIMAL + extra)
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert message in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "colour: red\n", "unknown key(s) ['colour']"),
    (MINIMAL.replace("recipe: [tiny]", "recipe: [no_such_recipe]"), "config no_such_recipe not found"),
    (MINIMAL.replace("preset: tiny", "preset: huge"), "'huge' is not a synth preset"),
    (MINIMAL.replace("preset: tiny", "preset: tiny, scenes: 3"), "unknown key(s) ['scenes']"),
    (MINIMAL.replace("model.aux_heads: 0", "model.aux_heads: 0, loss.strategy: sgd"),
     "method baseline: invalid training config"),
    (MINIMAL.replace("{set: {loss.pmhm: false, model.aux_heads: 0}}",
                     "{configs: [strategies/apl], set: {loss.pmhm: true}}"),
     "replaces the focal mask loss"),
    (MINIMAL + "seeds: 0\n", "seeds must be a positive integer"),
])
def test_bad_grids_fail_before_running(tmp_path, text, message):
    path = write_grid(tmp_path, text)
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_grid_lists_the_shipped_ones():
    with pytest.raises(GridError, match="no_such_grid not found"):
        load_grid("no_such_grid")


def test_parse_only(tmp_path):
    grid = load_grid(write_grid(tmp_path, MINIMAL))
    assert grid.parse_cell("baseline:clean:3") == Cell("baseline", "clean", 3)
    for text, message in (("baseline:clean", "expected METHOD:NOISE:SEED"), ("gce:clean:0", "method 'gce' is not"),
                          ("baseline:flip:0", "noise setting 'flip' is not"), ("baseline:clean:x", "expected")):
        with pytest.raises(GridError, match=message):
            grid.parse_cell(text)


def test_fingerprint_follows_what_determines_the_numbers(tmp_path):
    grid = load_grid(write_grid(tmp_path, MINIMAL + "  f: {text_flip: 0.2}\n"))
    cell = Cell("baseline", "clean", 0)
    assert grid.fingerprint(cell) == grid.fingerprint(Cell("baseline", "clean", 0))
    assert grid.fingerprint(cell) != grid.fingerprint(Cell("baseline", "clean", 1))
    assert grid.fingerprint(cell) != grid.fingerprint(Cell("baseline", "f", 0))
    changed = load_grid(write_grid(tmp_path, MINIMAL.replace("aux_heads: 0}", "aux_heads: 0, lr: 0.5}")
                                   + "  f: {text_flip: 0.2}\n"))
    assert changed.fingerprint(cell) != grid.fingerprint(cell)
    # where the data lives is not part of it
    assert grid.train_config(cell, "/a").data_root == "/a"


def test_standard_grid_cells_recipe_and_seeds():
    grid = load_grid(GRIDS / "standard.yaml")
    assert {m.name for m in grid.methods} == {"baseline", "pmhm", "pmhm_bl"} | STRATEGIES
    assert {n.name: (n.kind, n.text_flip, n.noun_sub, n.mask_dilate) for n in grid.noise} == {
        "clean": ("clean", 0.0, 0.0, None), "flip40": ("flip", 0.4, 0.0, None),
        "sub80": ("substitution", 0.0, 0.8, None), "dilate21": ("dilation", 0.0, 0.0, 21),
        "mixed": ("mixed", 0.4, 0.0, 21)}
    cells = grid.cells()
    # two seeds for every method (at least baseline and PMHM: the issue), the PMHM variant pmhm_bl included
    assert len(cells) == 9 * 5 * 2
    assert {c.seed for c in cells if c.method in ("baseline", "pmhm")} == {0, 1}
    assert cells.index(Cell("npn", "mixed", 0)) < cells.index(Cell("baseline", "clean", 1))  # seed-major
    assert grid.data.preset == "default" and grid.data.seed == 1  # not the init model's data (synth seed 0)
    assert grid.feature_cache and grid.eval_split == "val_human"
    shipped = Path(__file__).resolve().parents[1] / "models" / "default" / "actiseg_default.pt"
    for method in grid.methods:
        config = grid.train_config(Cell(method.name, "clean", 0), "/data")
        assert config.init_from == "models/default/actiseg_default.pt" and shipped.is_file()
        assert not config.model.backbone_trainable and config.jitter == 0.0 and config.threads == 1
        assert config.model.aux_heads == 1  # the init model's architecture for every method
        assert config.loss.pmhm == (method.name in ("pmhm", "pmhm_bl")) and config.loss.pmhm_warmup_epochs == 0
        assert config.loss.pmhm_regions == ("balanced_logit" if method.name == "pmhm_bl" else "spec")
        assert config.loss.pmhm_reset_aux  # PMHM's head starts as a copy of the init model's main head
        assert config.loss.strategy == (method.name if method.name in STRATEGIES else "none")
        assert config.val_split == "val" and config.loss.object_mask == 0.0
        assert (config.epochs, config.lr_drop_epochs, config.batch_size, config.frames_per_clip) == (6, [3, 5], 4, 1)
    assert grid.parse_cell("pmhm:dilate21:1") == Cell("pmhm", "dilate21", 1)
    assert len(load_grid(GRIDS / "standard.yaml", seeds=3).cells()) == 9 * 5 * 3  # --seeds wins over methods'


def test_standard_grid_cost_estimate():
    from actiseg_ros.training.robustness_grid import cell_steps, estimate_cost, format_estimate

    grid = load_grid(GRIDS / "standard.yaml")
    cost = dict(grid.cost)
    per_step, overhead = dict(cost["seconds_per_step"]), dict(cost["cell_overhead_seconds"])
    estimate = estimate_cost(grid, grid.cells(), 360)
    rows = {cell: (steps, seconds) for cell, steps, seconds in estimate["cells"]}
    assert rows[Cell("baseline", "clean", 0)][0] == 6 * 90
    assert rows[Cell("baseline", "clean", 0)][1] == pytest.approx(
        540 * per_step.get("baseline", per_step["default"]) + overhead.get("baseline", overhead["default"]))
    assert rows[Cell("pmhm", "clean", 1)][1] == pytest.approx(
        540 * per_step.get("pmhm", per_step["default"]) + overhead.get("pmhm", overhead["default"]))
    # co-teaching: groups of 128, 126 clips; keep 0.95 - 0.1 (epoch - 1) / 6 of each, 4 clips a step
    steps, members = cell_steps(grid.train_config(Cell("coteaching", "clean", 0), "/d"), 360)
    assert members == 2 and rows[Cell("coteaching", "clean", 0)][0] == steps < 540
    assert estimate["total_seconds"] == pytest.approx(sum(s for _, s in rows.values()))
    text = format_estimate(estimate, jobs=2)
    assert "90 cells" in text and "total %.0f s" % estimate["total_seconds"] in text and "--jobs 2" in text


@pytest.mark.parametrize("extra, message", [
    ("cost: {seconds_per_step: {gce: 1.0}}\n", "needs a `default` entry"),
    ("cost: {seconds_per_step: 1.0, cell_overhead_seconds: {npn: 3}}\n", "needs a `default` entry"),
    ("cost: {seconds_per_step: {default: -1}}\n", "seconds >= 0"),
    ("cost: {per_cell: 3}\n", "unknown key(s) ['per_cell']"),
    ("feature_cache: yes please\n", "feature_cache must be true or false"),
    ("feature_cache: true\n", "method baseline: invalid training config"),  # tiny: jitter and a trained backbone
])
def test_bad_cost_and_cache_sections(tmp_path, extra, message):
    path = write_grid(tmp_path, MINIMAL + extra)
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_method_seed_counts(tmp_path):
    grid = load_grid(write_grid(tmp_path, MINIMAL.replace("baseline: {set:", "baseline: {seeds: 3, set:")
                                + "  f: {text_flip: 0.2}\nseeds: 1\n"))
    assert [c.seed for c in grid.cells()] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(GridError, match="seeds: expected a positive integer"):
        load_grid(write_grid(tmp_path, MINIMAL.replace("baseline: {set:", "baseline: {seeds: 0, set:")))


def test_pmhm_regions_at_the_spec_default_keep_the_committed_fingerprints(tmp_path):
    """loss.pmhm_regions was added while the standard grid ran: at "spec" it leaves a cell's fingerprint as it
    was (a committed record of the first sitting still matches), a variant changes it."""
    grid = load_grid(GRIDS / "standard.yaml")
    record = json.loads((REPO / "docs/robustness/standard/cells/pmhm__clean__seed0.json").read_text())
    assert grid.fingerprint(Cell("pmhm", "clean", 0)) == record["fingerprint"]
    assert grid.fingerprint(Cell("pmhm_bl", "clean", 0)) != record["fingerprint"]


def test_cells_of_methods(tmp_path):
    grid = load_grid(GRIDS / "standard.yaml")
    assert grid.cells_of_methods(["pmhm_bl"]) == [Cell("pmhm_bl", n, s) for s in (0, 1)
                                                   for n in ("clean", "flip40", "sub80", "dilate21", "mixed")]
    with pytest.raises(GridError, match="not method.s. of grid standard"):
        grid.cells_of_methods(["pmhm", "nope"])


def test_the_cache_location_is_not_part_of_the_fingerprint(tmp_path):
    import dataclasses

    grid = load_grid(GRIDS / "standard.yaml")
    cell = Cell("pmhm", "dilate21", 0)
    assert "feature_cache" not in grid.to_json()["set"]
    assert dataclasses.replace(grid, feature_cache=False).fingerprint(cell) == grid.fingerprint(cell)


def test_a_cell_finished_by_another_runner_is_taken_not_retrained(tmp_path):
    """Two runners on one --out: the second waits on the cell's lock, then returns the first one's record."""
    import fcntl
    import threading

    from actiseg_ros.training.robustness_cell import run_cell

    grid = load_grid(write_grid(tmp_path, MINIMAL))
    cell = Cell("baseline", "clean", 0)
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "cells").mkdir()
    record = {"method": "baseline", "noise": "clean", "seed": 0, "fingerprint": grid.fingerprint(cell)}
    results = []
    with open(out / "runs" / (cell.id + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other runner is training this cell
        waiter = threading.Thread(target=lambda: results.append(
            run_cell(grid, cell, tmp_path / "no_train_data", tmp_path / "no_clean_data", out)))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not results  # blocked on the lock, not training
        (out / "cells" / (cell.id + ".json")).write_text(json.dumps(record))
    waiter.join(10)
    assert results == [record]
    assert not (out / "runs" / cell.id).exists()  # nothing was trained
