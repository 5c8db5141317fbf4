"""What PMHM's split into reliable (S) and uncertain (U) pixels looks like on a grid's training data, at the
first step of a `pmhm` cell: the init model (with its auxiliary head re-copied from the main head, as the
cell does), the cell's own batches, no update. Prints and writes, per data set:

- how the per-row quantile thresholds fall: the share of rows whose tau_h / tau_m equal the largest margin
  a float32 sigmoid can express (|logit| above ~17 gives p == 0 or 1 exactly, margin exactly 0.5), i.e.
  where S is "the saturated pixels" and U "every pixel that is not saturated";
- where the labelled foreground lies: in S, in U, in neither; and which part of the U criterion takes it
  (low margin or high Sobel edge); the foreground's share of the pixels of a positive row;
- the same for the named variants in training/pmhm_loss.py (REGION_VARIANTS), so a variant can be read
  against the spec's split before it is trained.

    nice .venv/bin/python benchmarks/pmhm_split_probe.py --grid-out runs/robustness_standard \
        --noise clean dilate21__seed0 flip40__seed0 --batches 40 --out benchmarks/results/pmhm_split_probe.json

--grid-out is the output folder of `actiseg robustness --grid standard` (its data/ and feature_cache/).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feature_cache import cpu_name  # noqa: E402
from source_training import REPO, import_training  # noqa: E402


def probe(config, batches: int, clean_config=None) -> dict:
    import torch

    from actiseg_ros.training import checkpoint as ckpt
    from actiseg_ros.training.data import epoch_order, training_clips
    from actiseg_ros.training.feature_cache import FeatureCache
    from actiseg_ros.training.objective import downsample, flatten_batch, valid_rows
    from actiseg_ros.training.losses import sobel_magnitude
    from actiseg_ros.training.pmhm_loss import (EDGE_HIGH_QUANTILE, MARGIN_HIGH_QUANTILE, MARGIN_LOW_QUANTILE,
                                                REGION_VARIANTS, per_sample_quantile, pmhm_regions)
    from actiseg_ros.training.train import build_member, load_batch, make_forward

    torch.manual_seed(config.seed)
    dataset = training_clips(config)
    # The same clips with their clean labels (the noisy copies keep the clean set's segments and order): which
    # labelled pixels are noise (dilation band) and which are the true object.
    clean = training_clips(clean_config) if clean_config is not None else None
    member = build_member(config, dataset, torch.device("cpu"), 1, [])
    ckpt.load_model_state(member.model, ckpt.read_init_weights(config.init_from, config.model)["model"])
    member.model.segmenter.aux_heads.reset_from(member.model.segmenter.decoder.mask_head)
    member.model.train()
    cache = FeatureCache(config.feature_cache, member.model.segmenter.image_encoder, config.model.input_hw,
                         config.model.backbone)
    dataset.set_epoch(0)
    if clean is not None:
        clean.set_epoch(0)
    order = epoch_order(len(dataset), config.seed, 0)
    sums: dict = {}

    def add(name, value):
        sums[name] = sums.get(name, 0.0) + float(value)

    for step in range(batches):
        indices = order[step * config.batch_size:(step + 1) * config.batch_size]
        batch = load_batch(dataset, indices, torch.device("cpu"), cache)
        with torch.no_grad():
            rows = flatten_batch(make_forward(member, batch, config)(batch["images"], with_aux=True), batch)
        logits, aux, target = rows["logits"], rows["aux"], rows["target"]
        fg = target >= 0.5
        if clean is not None:
            clean_batch = load_batch(clean, indices, torch.device("cpu"))
            if [Path(f).parts[-3:] for f in clean_batch["image_files"]] != \
                    [Path(f).parts[-3:] for f in batch["image_files"]]:
                raise SystemExit("the clean data's clips differ from the noisy copy's: not the same source")
            true_fg = downsample(valid_rows(clean_batch["targets"], clean_batch), tuple(logits.shape[-2:])) >= 0.5
        prob = torch.sigmoid(logits)
        margin = (prob - 0.5).abs()
        positive_rows = fg.flatten(1).any(1)
        saturated = margin == 0.5
        add("rows", logits.shape[0])
        add("positive_rows", positive_rows.sum())
        add("pixels", logits.numel())
        add("fg_pixels", fg.sum())
        add("fg_pixels_of_positive_rows_pixels", fg[positive_rows].sum())
        add("positive_row_pixels", fg[positive_rows].numel())
        add("saturated_pixels", saturated.sum())
        add("fg_saturated", (saturated & fg).sum())
        add("fg_predicted", (fg & (logits > 0)).sum())
        add("bg_predicted_fg", (~fg & (logits > 0)).sum())
        for name, variant in [("spec", pmhm_regions)] + sorted(REGION_VARIANTS.items()):
            reliable, uncertain = variant(logits, aux)
            add(name + ".S", reliable.sum())
            add(name + ".U", uncertain.sum())
            add(name + ".fg_in_S", (reliable & fg).sum())
            add(name + ".fg_in_U", (uncertain & fg).sum())
            add(name + ".fg_in_neither", (fg & ~reliable & ~uncertain).sum())
            add(name + ".bg_in_S", (reliable & ~fg).sum())
            if clean is not None:
                noise = fg & ~true_fg  # labelled foreground that is not the object (dilation band)
                add(name + ".noise_in_S", (reliable & noise).sum())
                add(name + ".noise_in_U", (uncertain & noise).sum())
                add(name + ".true_fg_in_S", (reliable & true_fg).sum())
                add(name + ".true_fg_in_U", (uncertain & true_fg).sum())
                if name == "spec":
                    add("noise_pixels", noise.sum())
                    add("true_fg_pixels", true_fg.sum())
        # Why the spec's U holds the foreground: the margin criterion, the edge criterion, or both.
        tau_m = per_sample_quantile(margin, MARGIN_LOW_QUANTILE).view(-1, 1, 1)
        tau_h = per_sample_quantile(margin, MARGIN_HIGH_QUANTILE).view(-1, 1, 1)
        edge_map = sobel_magnitude(prob)
        edge = edge_map > per_sample_quantile(edge_map, EDGE_HIGH_QUANTILE).view(-1, 1, 1)
        low = margin < tau_m
        add("fg_low_margin", (fg & low).sum())
        add("fg_high_edge", (fg & edge).sum())
        add("fg_high_edge_only", (fg & edge & ~low).sum())
        add("rows_tau_h_saturated", (tau_h.flatten() == 0.5).sum())
        add("rows_tau_m_saturated", (tau_m.flatten() == 0.5).sum())
    pixels, fg = sums["pixels"], max(sums["fg_pixels"], 1.0)
    result = {
        "batches": batches, "rows": int(sums["rows"]), "positive_rows": int(sums["positive_rows"]),
        "fg_share_of_positive_rows": sums["fg_pixels_of_positive_rows_pixels"] / max(sums["positive_row_pixels"], 1),
        "saturated_share": sums["saturated_pixels"] / pixels,
        "fg_saturated_share": sums["fg_saturated"] / fg,
        "fg_predicted_share": sums["fg_predicted"] / fg,
        "rows_tau_h_at_saturation": sums["rows_tau_h_saturated"] / sums["rows"],
        "rows_tau_m_at_saturation": sums["rows_tau_m_saturated"] / sums["rows"],
        "fg_low_margin": sums["fg_low_margin"] / fg, "fg_high_edge": sums["fg_high_edge"] / fg,
        "fg_high_edge_only": sums["fg_high_edge_only"] / fg,
        "regions": {},
    }
    for name in ["spec"] + sorted(REGION_VARIANTS):
        result["regions"][name] = {
            "S_share": sums[name + ".S"] / pixels, "U_share": sums[name + ".U"] / pixels,
            "fg_in_S": sums[name + ".fg_in_S"] / fg, "fg_in_U": sums[name + ".fg_in_U"] / fg,
            "fg_in_neither": sums[name + ".fg_in_neither"] / fg,
            "fg_share_of_S": sums[name + ".fg_in_S"] / max(sums[name + ".S"], 1.0),
        }
        if clean is not None:
            for key, total in (("noise", "noise_pixels"), ("true_fg", "true_fg_pixels")):
                for region in ("S", "U"):
                    result["regions"][name]["%s_in_%s" % (key, region)] = (
                        sums["%s.%s_in_%s" % (name, key, region)] / max(sums[total], 1.0))
    if clean is not None:
        result["noise_share_of_labelled_fg"] = sums["noise_pixels"] / fg
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid-out", type=Path, required=True)
    parser.add_argument("--noise", nargs="+", default=["clean", "dilate21__seed0", "flip40__seed0"],
                        help="data sets under GRID_OUT/data")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--clean", default="clean", help="the clean data set under GRID_OUT/data ('' = none)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import_training()
    from actiseg_ros.training.config import find_config, load_config

    base = load_config([find_config("robustness_standard")])
    results = {}
    for name in args.noise:
        config = dataclasses.replace(base, data_root=str(args.grid_out / "data" / name),
                                     feature_cache=str((args.grid_out / "feature_cache").resolve()),
                                     init_from=str(REPO / base.init_from),
                                     loss=dataclasses.replace(base.loss, pmhm=True))
        started = time.monotonic()
        clean_config = None
        if args.clean and name != args.clean:
            clean_config = dataclasses.replace(config, data_root=str(args.grid_out / "data" / args.clean))
        results[name] = probe(config, args.batches, clean_config)
        results[name]["seconds"] = round(time.monotonic() - started, 1)
        print(name, json.dumps(results[name], indent=1))
    document = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": cpu_name(),
                "command": "python benchmarks/pmhm_split_probe.py " + " ".join(argv or sys.argv[1:]),
                "init_model": base.init_from, "results": results}
    if args.out:
        args.out.write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
