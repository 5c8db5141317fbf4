"""`actiseg import SOURCE ...`: bring outside data into the ActionVOS layout the rest of the product reads.

One module per source, each with `add_arguments(parser)` and `main(args) -> int`, imported only when chosen
(as the top-level `actiseg` command does):
  bag   a ROS 2 bag (sqlite3 or MCAP) -> sequences ready for labelling and for `actiseg infer --split demo`
  coco  a COCO instance-mask export (CVAT, Label Studio, LabelMe) + narrations -> labelled ActionVOS data
  visor EPIC-KITCHENS VISOR (sparse masks, EPIC-100 actions, VISOR-HOS contact) -> the official ActionVOS data
"""
from __future__ import annotations

import importlib

SOURCES = {
    "bag": ("actiseg_ros.data.import_bag", "a ROS 2 bag (sqlite3 or MCAP) -> ActionVOS-layout sequences"),
    "coco": ("actiseg_ros.data.import_coco", "COCO instance masks + narrations -> labelled ActionVOS data"),
    "visor": ("actiseg_ros.data.import_visor", "EPIC-KITCHENS VISOR -> ActionVOS data, as ActionVOS's official "
              "data_prepare_visor.py"),
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for name, (module, help_text) in SOURCES.items():
        source_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as err:  # one source that cannot load must not take the others down
            source_parser.set_defaults(unavailable="%s (%s)" % (module, err))
            continue
        loaded.add_arguments(source_parser)


def main(args) -> int:
    if getattr(args, "unavailable", None):
        raise SystemExit("actiseg import %s is unavailable: %s" % (args.source, args.unavailable))
    return int(importlib.import_module(SOURCES[args.source][0]).main(args) or 0)
