"""`actiseg robustness`: the ActiSeg-NL robustness benchmark (spec sections 4-6).

    actiseg robustness --grid quick|standard|full|GRID.yaml --out DIR [--seeds N] [--jobs 1] [--nice N]
                       [--only METHOD:NOISE:SEED] [--keep-models] [--report-only] [--estimate-only]

Runs every cell {method} x {noise setting} x {seed} of a grid (training/configs/grids/*.yaml, see
robustness_grid.py): the clean synthetic set is generated once into DIR/data/clean; the noisy training
sets are made once per (noise setting, seed) with `actiseg corrupt` (noise seed = the cell seed) and
shared by every method; each cell trains with `actiseg train`'s loop (training seed = the cell seed),
predicts the CLEAN evaluation split (val_human) with `actiseg infer` and scores it with `actiseg eval`.

Resuming: a finished cell has DIR/cells/<cell>.json (written atomically) and is not run again; a cell
killed mid-training resumes from its own checkpoint (DIR/runs/<cell>/latest.pt). Running the same command
again after a kill continues where it stopped. A cell whose definition changed (another recipe, data or
noise under the same names) is refused rather than mixed in: use another --out.

Outputs in DIR: cells.csv, cells.json (every cell: six metrics, wall time), summary.json and table.md
(mean and std over seeds per method x noise), degradation.png and tradeoff.png, log.jsonl (one event per
line: run, data, cell start / skip / done / failed).

Cost: a grid with a `cost` section (measured seconds per step and per-cell overhead) prints its cost before
anything runs (cells x seconds per cell, per method and in total) and logs it; --estimate-only stops there.
With `feature_cache: true` the cells share DIR/feature_cache (the frozen backbone's features and the prompt
banks, training/feature_cache.py): the first cells of each data set fill it, later ones read it.

--only METHOD:NOISE:SEED runs that one cell (into another DIR, with its own data): on CPU it reproduces
the grid's numbers for that cell exactly.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from .robustness_cell import (LOG, EventLog, prepare_clean_data, prepare_noisy_data, read_result, run_cell_task,
                              train_segment_count)
from .robustness_grid import Grid, GridError, estimate_cost, format_estimate, load_grid
from .robustness_report import write_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", required=True,
                        help="'quick' (about 60 min on a 2-core CPU with --jobs 1), 'standard' (about 10 h on a "
                             "2-core CPU, see its printed estimate), 'full' (GPU) or a grid YAML file")
    parser.add_argument("--out", required=True, type=Path, help="output folder (also holds data, runs, cells)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the grid's)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cells run in parallel processes (default 1; each uses the recipe's threads)")
    parser.add_argument("--only", default=None, metavar="METHOD:NOISE:SEED",
                        help="run just this cell, e.g. gce:flip40:0 (use a fresh --out to check reproducibility)")
    parser.add_argument("--methods", default=None, metavar="NAME[,NAME...]",
                        help="run only these methods' cells (the tables still cover every finished cell of DIR); "
                             "e.g. a method added to a grid that is running in another process on the same --out")
    parser.add_argument("--keep-models", action="store_true", help="keep each cell's model.pt (disk: ~15 MB a cell)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the tables and plots from the finished cells without running anything")
    parser.add_argument("--estimate-only", action="store_true",
                        help="print the grid's cost estimate (cells x measured seconds per cell) and stop")
    parser.add_argument("--nice", type=int, default=0, metavar="N",
                        help="lower this process's priority by N (os.nice) before anything runs; the cells' worker "
                             "processes inherit it (default 0)")


def finished_records(grid: Grid, cells: list, out_dir: Path) -> dict:
    """{cell: record} of the finished cells; a record made by another grid definition is an error."""
    done = {}
    for cell in cells:
        record = read_result(out_dir, cell)
        if record is None:
            continue
        expected = grid.fingerprint(cell)
        if record.get("fingerprint") != expected:
            raise GridError("%s/cells/%s.json was made by a different definition of this cell (fingerprint %s, the "
                            "grid now gives %s): use another --out, or delete that file to rerun the cell"
                            % (out_dir, cell.id, record.get("fingerprint"), expected))
        done[cell] = record
    return done


def report(grid: Grid, out_dir: Path, records: list, plots: bool = True) -> list:
    return write_outputs(out_dir, records, grid.to_json(), methods=[m.name for m in grid.methods],
                         noises=[n.name for n in grid.noise], plots=plots)


def run_grid(grid: Grid, out_dir: Path, cells: list, jobs: int = 1, keep_models: bool = False) -> tuple:
    """Run the unfinished cells of `cells`; returns ({cell: record} of all finished ones, [failed cells])."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with EventLog(out_dir / LOG) as log:
        log("run", grid=grid.source, cells=len(cells), jobs=jobs)
        done = finished_records(grid, cells, out_dir)
        for cell in cells:
            if cell in done:
                log("cell_skip", cell=cell.id)
        pending = [c for c in cells if c not in done]
        data_dir = out_dir / "data"
        clean_root = prepare_clean_data(grid, data_dir)
        train_roots = {}
        for noise, seed in dict.fromkeys((c.noise, c.seed) for c in pending):
            train_roots[(noise, seed)] = prepare_noisy_data(grid, clean_root, noise, seed, data_dir)
            log("data", noise=noise, seed=seed, root=str(train_roots[(noise, seed)]))
        tasks = [(grid, c, train_roots[(c.noise, c.seed)], clean_root, out_dir, keep_models) for c in pending]
        failed = []
        progress = tqdm(total=len(cells), initial=len(done), desc="robustness %s" % grid.name, unit="cell",
                        dynamic_ncols=True)

        def finish(cell, record, error) -> None:
            if record is not None:
                done[cell] = record
                log("cell_done", cell=cell.id, wall_seconds=record["wall_seconds"], gIoU=record["gIoU"])
                report(grid, out_dir, list(done.values()), plots=False)  # tables follow the grid; plots at the end
            else:
                failed.append(cell)
                log("cell_failed", cell=cell.id, error=error.strip().splitlines()[-1])
            progress.update(1)
            progress.set_postfix(last=cell.id, failed=len(failed))

        if jobs <= 1:
            for task in tasks:
                progress.set_postfix(running=task[1].id, failed=len(failed))
                finish(*run_cell_task(task))
        else:
            # spawn: a forked child would inherit torch's and OpenCV's thread pools in an unknown state
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = []
                for task in tasks:
                    log("cell_queued", cell=task[1].id)  # "cell_start" comes from the worker, when it begins
                    futures.append(pool.submit(run_cell_task, task))
                for future in as_completed(futures):
                    finish(*future.result())
        progress.close()
        return done, failed


def main(args) -> int:
    try:
        grid = load_grid(args.grid, args.seeds)
        cells = [grid.parse_cell(args.only)] if args.only else grid.cells()
        if args.methods:
            if args.only:
                raise GridError("--only and --methods choose cells each; give one of them")
            cells = grid.cells_of_methods(args.methods.split(","))
        if args.jobs < 1:
            raise GridError("--jobs must be >= 1, got %d" % args.jobs)
        if args.nice < 0:
            raise GridError("--nice must be >= 0, got %d" % args.nice)
        if args.nice:
            os.nice(args.nice)
        if not args.report_only:
            pending = [c for c in cells if c not in finished_records(grid, cells, args.out)]
            estimate = estimate_cost(grid, pending, train_segment_count(grid, args.out / "data"))
            print("%d of %d cells to run. %s" % (len(pending), len(cells), format_estimate(estimate, args.jobs)),
                  flush=True)
            if estimate and not args.estimate_only:
                with EventLog(args.out / LOG) as log:
                    log("estimate", cells=len(pending), seconds=round(estimate["total_seconds"]), jobs=args.jobs,
                        measured=estimate["measured"])
            if args.estimate_only:
                return 0
        if args.report_only:
            done = finished_records(grid, cells, args.out)
            failed = []
        else:
            done, failed = run_grid(grid, args.out, cells, args.jobs, args.keep_models)
    except GridError as err:
        print("actiseg robustness: error: %s" % err, file=sys.stderr)
        return 2
    if args.methods:  # the tables cover the whole grid's finished cells, not just these
        done = {**finished_records(grid, grid.cells(), args.out), **done}
        cells = grid.cells()
    records = [done[c] for c in cells if c in done]
    written = report(grid, args.out, records) if records else []
    print("%d of %d cells finished; outputs: %s" % (len(records), len(cells), ", ".join(p.name for p in written)))
    if failed:
        print("actiseg robustness: %d cell(s) failed: %s (see %s/cells/*.error.txt); run the same command again to "
              "retry them" % (len(failed), ", ".join(c.id for c in failed), args.out), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="actiseg robustness", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
