"""`actiseg`: the user command line. One subcommand per job; each imports its module only when chosen, so
`actiseg eval` works without torch and `actiseg train` says clearly when torch is missing.

A subcommand module provides `add_arguments(parser)` and `main(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help, extra that provides its heavy dependencies or None)
COMMANDS: dict[str, tuple[str, str, str | None]] = {}


def register(name: str, module: str, help_text: str, extra: str | None = None) -> None:
    COMMANDS[name] = (module, help_text, extra)


register("synth", "actiseg_ros.data.synth_cli", "generate a synthetic ActionVOS-layout data set")
register("import", "actiseg_ros.data.import_cli", "import a ROS 2 bag, COCO labels or VISOR into the ActionVOS layout")
register("corrupt", "actiseg_ros.data.noise_cli", "inject ActiSeg-NL label noise into a training split")
register("eval", "actiseg_ros.evaluation.eval_cli", "score palette-PNG predictions with the six ActionVOS metrics")
register("audit", "actiseg_ros.audit.audit_cli", "rank a split's labels by how suspicious a model finds them")
register("train", "actiseg_ros.training.train_cli", "train a model from a YAML recipe (torch)", extra="train")
register("infer", "actiseg_ros.training.infer",
         "write palette-PNG predictions (exported model, or a .pt checkpoint with torch)", extra="train")
register("calibrate", "actiseg_ros.training.calibrate", "choose a model's mask threshold on a held-out split",
         extra="train")
register("export", "actiseg_ros.training.export",
         "export a checkpoint to ONNX graphs + model card, with parity check (torch)", extra="train")
register("robustness", "actiseg_ros.training.robustness", "ActiSeg-NL robustness benchmark grid (torch)",
         extra="train")
register("bench", "actiseg_ros.inference.bench", "time each available inference backend: latency, throughput, GFLOPs")
register("demo", "actiseg_ros.tools.demo",
         "run the perception node on the synthetic stream: overlay video + JSON report")
register("run", "actiseg_ros.run_cli", "run the ROS 2 perception node alone (no ros2 launch needed)")
register("record", "actiseg_ros.tools.record", "record the camera (and action) topics into a ROS 2 bag (no ros2 bag "
         "needed)")


def _load(name: str):
    module, _help, extra = COMMANDS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = err.name or "a dependency"
        if missing.split(".")[0] in {"torch", "transformers", "efficientnet_lite_pytorch", "onnx", "onnxscript"}:
            hint = " (install it with: pip install 'actiseg_ros[%s]')" % extra if extra else ""
            raise SystemExit("actiseg %s needs the Python package '%s', which is not installed%s"
                             % (name, missing, hint)) from None
        raise


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actiseg", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module, help_text, _extra) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            _load(name).add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    selected = selected if selected in COMMANDS else None
    args = build_parser(selected).parse_args(argv)
    from actiseg_ros.dds import use_default_profile

    use_default_profile()
    return int(_load(args.command).main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
