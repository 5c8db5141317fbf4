"""`actiseg bench`: latency and throughput of each available backend, camera frame to label image and
bare engine, at several camera sizes and prompt counts; plus parameter count and GFLOPs of the graphs.

    actiseg bench --json bench.json --model models/default --sizes 640x480 1280x720 --k 1 4 8

The JSON is a list of records with keys backend, path ('camera': letterbox + segmenter + masks at camera
size; 'engine': the segmenter graph alone on a prepared input; 'text': encoding K new prompts),
input_size (WxH: camera size for 'camera', model input for 'engine' and 'text'), k, p50_ms, p95_ms, hz
(frames per second over the timed loop), cpu_p50_ms (process CPU time per frame), params and gflops
(of the graph behind the record, batch 1).
Every object is forced active (positive gate 0) so post-processing is timed at its full cost.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from .engines.base import BackendUnavailable
from .engines.select import BACKENDS, probe_availability
from .model_card import load_model_card

log = logging.getLogger(__name__)

DEFAULT_SIZES = ("640x480", "1280x720", "854x480")
DEFAULT_K = (1, 4, 8)
MAC_OPS = ("Conv", "MatMul", "Gemm")
FLOAT_TYPES = (1, 10, 11, 16)  # onnx TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
INT8_TYPES = (2, 3)  # UINT8, INT8: quantized weights (the shipped text encoder's, training/quantize.py)
BENCH_PROMPTS = ("knife used in the action of cut onion", "onion used in the action of cut onion",
                 "cutting board used in the action of cut onion", "cup used in the action of drink coffee",
                 "spoon used in the action of stir coffee", "pan used in the action of fry egg",
                 "spatula used in the action of fry egg", "tap used in the action of wash hands")


# --- pure functions ----------------------------------------------------------------------------------

def parse_size(text: str) -> tuple:
    """'1280x720' -> (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must be WIDTHxHEIGHT, e.g. 1280x720, got %r" % text) from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError("size must be positive, got %r" % text)
    return width, height


def summarize(seconds) -> dict:
    """Per-iteration wall times (s) -> p50/p95 latency (ms) and throughput (iterations per second)."""
    seconds = np.asarray(seconds, np.float64)
    if seconds.size == 0:
        raise ValueError("no timings to summarize")
    return {"p50_ms": float(np.percentile(seconds, 50) * 1000), "p95_ms": float(np.percentile(seconds, 95) * 1000),
            "hz": float(seconds.size / seconds.sum())}


def node_macs(op_type: str, input_shapes: list, output_shape, attrs: dict) -> int:
    """Multiply-accumulates of one Conv / MatMul / Gemm node from its shapes.

    Conv: weight (M, C/g, *kernel), output (N, M, *spatial) -> N * M * prod(spatial) * C/g * prod(kernel).
    MatMul: A (..., m, k) -> prod(output) * k (numpy broadcasting; a 1-D A has k = its length).
    Gemm: A (m, k) or transposed (transA) -> m * n * k with output (m, n).
    """
    out = [int(v) for v in output_shape]
    if op_type == "Conv":
        weight = [int(v) for v in input_shapes[1]]
        return int(np.prod(out, dtype=np.int64) * np.prod(weight[1:], dtype=np.int64))
    if op_type == "MatMul":
        k = int(input_shapes[0][-1])
        return int(np.prod(out, dtype=np.int64) * k)
    if op_type == "Gemm":
        a = [int(v) for v in input_shapes[0]]
        k = a[0] if attrs.get("transA", 0) else a[1]
        return int(np.prod(out, dtype=np.int64) * k)
    raise ValueError("no MAC formula for %s" % op_type)


def graph_macs(nodes, shapes: dict) -> int:
    """Sum of node_macs over (op_type, input names, output names, attrs) tuples, given {value: shape}."""
    total = 0
    for op_type, inputs, outputs, attrs in nodes:
        if op_type not in MAC_OPS:
            continue
        missing = [n for n in list(inputs[:2]) + [outputs[0]] if n not in shapes]
        if missing:
            raise ValueError("%s node has values of unknown shape: %s" % (op_type, ", ".join(missing)))
        total += node_macs(op_type, [shapes[n] for n in inputs[:2]], shapes[outputs[0]], attrs)
    return total


# --- graph statistics (needs the `onnx` package; runs the graph once to learn every shape) ------------

def _load_onnx():
    try:
        import onnx
    except ModuleNotFoundError:
        raise ModuleNotFoundError("parameter and FLOP counts need the Python package 'onnx' (pip install onnx); "
                                  "use --no-flops to skip them", name="onnx") from None
    return onnx


def graph_stats(graph_path, feeds: dict) -> dict:
    """{'params', 'macs', 'gflops'} of an ONNX graph for the given inputs (batch as fed).

    Shapes come from running the graph once in ONNX Runtime with the inputs and outputs of every
    Conv/MatMul/Gemm exposed: ONNX's static shape inference loses the batch dimension after the
    exporter's dynamic Reshapes, so it cannot size the attention MatMuls.
    """
    onnx = _load_onnx()
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(graph_path))
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    # An int8 weight counts as one parameter; its quantization scales and zero points count as none.
    names = {init.name for init in model.graph.initializer}
    scales = {name for node in model.graph.node if node.op_type == "DequantizeLinear" for name in node.input[1:]}
    scales |= {name[:-len("_int8")] + "_scale" for name in names if name.endswith("_int8")}
    params = sum(int(np.prod(init.dims, dtype=np.int64)) for init in model.graph.initializer
                 if init.name not in scales and (init.data_type in FLOAT_TYPES
                                                 or (init.data_type in INT8_TYPES and len(init.dims) >= 2)))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            shapes[node.output[0]] = list(tensor.dims)
            if tensor.data_type in FLOAT_TYPES and len(tensor.dims) >= 2:  # weights, not folded scalars/shapes
                params += int(np.prod(numpy_helper.to_array(tensor).shape, dtype=np.int64))
    shapes.update({name: list(np.shape(value)) for name, value in feeds.items()})
    nodes = [(n.op_type, list(n.input), list(n.output),
              {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}) for n in model.graph.node]
    wanted = []
    for op_type, inputs, outputs, _attrs in nodes:
        if op_type in MAC_OPS:
            wanted += [name for name in list(inputs[:2]) + [outputs[0]] if name not in shapes and name not in wanted]
    declared = {o.name for o in model.graph.output}
    for name in wanted:
        if name not in declared:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every node as exported
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for name, value in zip(names, session.run(names, feeds)):
        shapes[name] = list(value.shape)
    macs = graph_macs(nodes, shapes)
    return {"params": int(params), "macs": int(macs), "gflops": 2.0 * macs / 1e9}


# --- timing ------------------------------------------------------------------------------------------

def time_calls(function, iterations: int, warmup: int, period: float = 0.0) -> dict:
    """Wall-clock summary plus cpu_p50_ms: the process CPU time per call, which other jobs on a shared
    machine inflate far less than wall time (with one intra-op thread it approximates idle latency).

    period > 0 starts the timed calls every `period` seconds, idle in between, as a camera paces the node:
    on a 2-core VM the same graph measured ~20 ms paced at 30 Hz against 16-21 ms back to back (caches and
    sleeping pool threads go cold between frames)."""
    for _ in range(warmup):
        function()
    seconds, cpu = [], []
    next_start = time.perf_counter()
    for _ in range(iterations):
        if period > 0:
            delay = next_start - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_start = max(next_start, time.perf_counter()) + period
        began, began_cpu = time.perf_counter(), time.process_time()
        function()
        seconds.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return dict(summarize(seconds), cpu_p50_ms=float(np.percentile(cpu, 50) * 1000))


def camera_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 test frame: smooth gradients plus noise, like a camera image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     (x + y) * 127 // max(width + height - 2, 1)], -1)
    return np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)


def bench_backend(model_dir, backend: str, sizes, ks, iterations: int, warmup: int, threads: int, stats: dict,
                  availability=None, spin: bool = False) -> list:
    """All records of one backend; raises BackendUnavailable when it cannot run here."""
    from .predictor import Predictor

    predictor = Predictor(model_dir, backend=backend, text_backend="same", threads=threads, spin=spin, max_k=max(ks),
                          positive_gate=0.0, prompt_cache_size=0, availability=availability)
    card = predictor.card
    model_size = "%dx%d" % (card.input_hw[1], card.input_hw[0])
    common = {"backend": predictor.backend, "providers": predictor.segmenter.providers,
              "device": predictor.segmenter.device, "threads": threads, "spin": spin, "iterations": iterations}
    records = []
    try:
        for k in ks:
            prompts = [BENCH_PROMPTS[i % len(BENCH_PROMPTS)] + ("" if i < len(BENCH_PROMPTS) else " %d" % i)
                       for i in range(k)]
            seg_stats = stats.get(("segmenter", k), {})
            text_stats = stats.get(("text", k), {})
            # prompt_cache_size=0: every call really tokenizes and runs the text encoder
            timing = time_calls(lambda: predictor.text.encode(prompts), max(3, iterations // 5), 1)
            records.append(dict(common, path="text", input_size="%d prompts x %d tokens" % (k, card.max_tokens), k=k,
                                **timing, **_stat_fields(text_stats)))
            predictor.set_prompts(prompts)
            tokens, mask = predictor.prompt_features
            images = np.zeros((1, 3) + tuple(card.input_hw), np.float32)
            timing = time_calls(lambda: predictor.segmenter.run(images, tokens, mask), iterations, warmup)
            records.append(dict(common, path="engine", input_size=model_size, k=k, **timing, **_stat_fields(seg_stats)))
            for width, height in sizes:
                frame = camera_frame(width, height)
                timing = time_calls(lambda: predictor.predict(frame), iterations, warmup)
                records.append(dict(common, path="camera", input_size="%dx%d" % (width, height), k=k, **timing,
                                    **_stat_fields(seg_stats)))
    finally:
        predictor.close()
    return records


def _stat_fields(stats: dict) -> dict:
    return {"params": stats.get("params"), "gflops": None if stats.get("gflops") is None else round(stats["gflops"], 4)}


def model_stats(card, ks) -> dict:
    """{('segmenter', k) | ('text', k): graph_stats} for batch 1 and each K."""
    stats = {}
    for k in ks:
        stats[("segmenter", k)] = graph_stats(card.segmenter.path, {
            "images": np.zeros((1, 3) + tuple(card.input_hw), np.float32),
            "text_tokens": np.zeros((1, k, card.max_tokens, card.text_width), np.float32),
            "text_mask": np.ones((1, k, card.max_tokens), np.float32)})
    text_one = graph_stats(card.text_encoder.path, {"input_ids": np.ones((1, card.max_tokens), np.int64),
                                                    "attention_mask": np.ones((1, card.max_tokens), np.int64)})
    for k in ks:  # every prompt costs the same: fixed length L
        stats[("text", k)] = dict(text_one, macs=text_one["macs"] * k, gflops=text_one["gflops"] * k)
    return stats


# --- command line ------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", required=True, help="write the records here")
    parser.add_argument("--model", default=None, help="exported model folder (default: the installed models/default)")
    parser.add_argument("--backends", nargs="+", default=None, choices=BACKENDS,
                        help="backends to time (default: every one that runs here)")
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[parse_size(s) for s in DEFAULT_SIZES],
                        help="camera sizes WIDTHxHEIGHT (default: %s)" % " ".join(DEFAULT_SIZES))
    parser.add_argument("--k", nargs="+", type=int, default=list(DEFAULT_K), help="prompt counts (default: 1 4 8)")
    parser.add_argument("--iterations", type=int, default=50, help="timed frames per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames first")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    parser.add_argument("--spin", action="store_true", help="let ONNX Runtime's idle threads spin (its default; "
                        "faster on an idle machine, slower when the CPU is shared)")
    parser.add_argument("--no-flops", action="store_true", help="skip parameter and FLOP counting (needs onnx)")


def default_model_dir() -> Path:
    from actiseg_ros.paths import models_dir

    return models_dir() / "default"


def main(args) -> int:
    from tqdm import tqdm

    if args.iterations < 1 or args.warmup < 0 or any(k < 1 for k in args.k):
        raise SystemExit("--iterations and --k must be >= 1 and --warmup >= 0")
    model_dir = Path(args.model) if args.model else default_model_dir()
    card = load_model_card(model_dir)
    stats = {}
    if not args.no_flops:
        try:
            stats = model_stats(card, args.k)
        except ModuleNotFoundError as err:  # onnx is a training/dev dependency, not a runtime one
            print("parameter and FLOP counts skipped: %s" % err)
    availability = probe_availability()
    backends = args.backends or list(BACKENDS)
    records = []
    for backend in tqdm(backends, desc="bench", unit="backend"):
        try:
            records += bench_backend(model_dir, backend, args.sizes, args.k, args.iterations, args.warmup,
                                     args.threads, stats, availability, args.spin)
        except BackendUnavailable as err:
            if args.backends:  # asked for by name: say so loudly
                raise SystemExit(str(err)) from None
            print("skipped %s: %s" % (backend, err.missing))
    if not records:
        raise SystemExit("no backend could run here")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
    print(format_table(records))
    if stats:
        text = stats[("text", args.k[0])]
        print("segmenter: %.2fM parameters; text encoder: %.2fM parameters, %.2f GFLOPs per prompt"
              % (stats[("segmenter", args.k[0])]["params"] / 1e6, text["params"] / 1e6, text["gflops"] / args.k[0]))
    print("wrote %d records to %s" % (len(records), args.json))
    return 0


def format_table(records) -> str:
    lines = ["%-13s %-7s %-22s %3s %9s %9s %8s %9s %8s" % ("backend", "path", "input_size", "k", "p50_ms", "p95_ms",
                                                            "hz", "cpu_ms", "gflops")]
    for r in records:
        lines.append("%-13s %-7s %-22s %3d %9.2f %9.2f %8.1f %9.2f %8s" % (
            r["backend"], r["path"], r["input_size"], r["k"], r["p50_ms"], r["p95_ms"], r["hz"], r["cpu_p50_ms"],
            "-" if r.get("gflops") is None else "%.3f" % r["gflops"]))
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    cli = argparse.ArgumentParser(prog="actiseg bench")
    add_arguments(cli)
    sys.exit(main(cli.parse_args()))
