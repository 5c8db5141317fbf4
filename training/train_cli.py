"""`actiseg train --config CONFIG [--config OVERLAY ...] --out DIR [--data ROOT] [--resume] [--set key=value ...]`; also
works under torchrun: `torchrun --nproc_per_node N -m actiseg_ros.training.train_cli --config ... --out ...`.

Example, GCE on the default recipe: `actiseg train --config default --config strategies/gce --out runs/gce`."""
from __future__ import annotations

import argparse
import sys

import yaml

from .config import configs_dir, find_config, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, action="append",
                        help="YAML recipe (a path, or a name from %s such as 'default', 'tiny' or "
                             "'strategies/gce'); repeat it to merge later files over earlier ones" % configs_dir())
    parser.add_argument("--out", required=True, help="run folder: checkpoints, train_log.csv, model.pt")
    parser.add_argument("--data", default=None, metavar="ROOT",
                        help="training data root (ActionVOS layout); the same as --set data_root=ROOT")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/latest.pt if it exists")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set data_root=data/x --set model.aux_heads=0")


def resolve_config_path(name: str):
    found = find_config(name)
    if found is not None:
        return found
    shipped_names = sorted(str(p.relative_to(configs_dir()).with_suffix("")) for p in configs_dir().rglob("*.yaml"))
    raise SystemExit("config %s not found (shipped configs: %s)" % (name, shipped_names))


def parse_overrides(pairs: list) -> dict:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit("--set expects KEY=VALUE, got %r" % pair)
        key, value = pair.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def main(args) -> int:
    from .checkpoint import read_init_weights
    from .train import TrainSetupError, train

    try:
        overrides = parse_overrides(args.set)
        if args.data is not None:
            overrides["data_root"] = args.data
        config = load_config([resolve_config_path(name) for name in args.config], overrides)
    except ValueError as err:
        raise SystemExit("invalid config: %s" % err) from None
    if config.init_from:
        try:  # before any data is read: a wrong file is a config error, not a crash minutes later
            read_init_weights(config.init_from, config.model)
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit("invalid config: %s" % err) from None
    try:
        final = train(config, args.out, resume=args.resume)
    except TrainSetupError as err:
        raise SystemExit("cannot train: %s" % err) from None
    print("weights: %s" % final)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="actiseg train")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
