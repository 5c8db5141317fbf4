"""The shipped int8 text encoder against its float32 graph: prompt features and the default model's metrics.

Run from the repository root with the dev venv (training extra installed: the float32 graph is rebuilt from
the MiniLM weight package and checked against the card's recorded hash):
    python benchmarks/text_encoder_int8.py --model models/default --data data/synth_default \\
        --json benchmarks/results/text_encoder_int8.json --card [--dynamic]

1. Prompt features: every prompt the default model can see here, each (L, 384) token map compared by cosine
   (training.export.prompt_cosines): the card's vocabulary in the prompt template with every narration of
   the `val` and `val_human` splits, which includes every (object, narration) prompt of those splits.
2. Metrics: `actiseg infer` + `actiseg eval` on clean val_human with the float32 and the int8 encoder, the
   card's thresholds as shipped; the change of every metric in points.
3. --dynamic-only: instead, onnxruntime.quantization.quantize_dynamic (per-tensor and per-channel), the
   quantizer tried first and rejected, on the prompts the splits really use and by the metrics; added to
   an existing --json result (and card) as `rejected_dynamic`.
--card writes the summary into the model card (`text_encoder_int8`) and the int8 metrics as the card's
`metrics` (the shipped model's); the graphs are not touched.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# benchmarks/ is this script's folder: training/ from the source tree (the measured code), the runtime from
# the installed package; the machine facts as bench_node records them
from bench_node import cpu_name, load_average
from source_training import import_training

REPO = Path(__file__).resolve().parent.parent
METRICS = ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc")
MIN_COSINE = 0.99
MAX_DELTA_POINTS = 0.5


def all_prompts(card, data_root, splits) -> tuple:
    """-> (sorted prompts: vocabulary x narrations and the splits' own, sorted prompts of the splits, number of
    narrations)."""
    from actiseg_ros.data import actionvos

    narrations, seen = set(), set()
    for split in splits:
        for segment in actionvos.read_split(data_root, split, need_masks=False).segments:
            narrations.add(segment.narration)
            seen.update(actionvos.build_prompt(obj.name, segment.narration) for obj in segment.objects.values())
    grid = {card.prompt_template.format(object=name, narration=narration)
            for name in card.raw["vocabulary"] for narration in narrations}
    return sorted(grid | seen), sorted(seen), len(narrations)


def encode_all(model_dir, prompts, batch: int = 64) -> tuple:
    """-> (token features (N, L, C), attention mask (N, L)) by the runtime's tokenizer and ORT CPU engine."""
    from tqdm import tqdm

    from actiseg_ros.inference.engines.onnxruntime_engine import OrtTextEngine
    from actiseg_ros.inference.model_card import load_model_card
    from actiseg_ros.inference.tokenizer import PromptTokenizer

    card = load_model_card(model_dir)
    tokenizer = PromptTokenizer(card.tokenizer.path, card.max_tokens)
    engine = OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width)
    tokens, masks = [], []
    for start in tqdm(range(0, len(prompts), batch), desc="encode %s" % Path(model_dir).name):
        ids, mask = tokenizer.encode(prompts[start:start + batch])
        tokens.append(engine.run(ids, mask))
        masks.append(mask)
    return np.concatenate(tokens), np.concatenate(masks)


def compare_features(reference, candidate, mask, prompts) -> dict:
    from actiseg_ros.training.export import prompt_cosines

    cosines = prompt_cosines(reference, candidate)
    valid = mask.astype(bool)
    a, b = reference[valid].astype(np.float64), candidate[valid].astype(np.float64)
    token_cosines = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    worst = int(np.argmin(cosines))
    return {"prompts": len(prompts), "cosine_min": float(cosines.min()), "cosine_mean": float(cosines.mean()),
            "worst_prompt": prompts[worst], "token_cosine_min": float(token_cosines.min()),
            "max_abs_diff": float(np.abs(reference - candidate).max()), "met": bool(cosines.min() >= MIN_COSINE)}


def actiseg(*args) -> None:
    command = [str(Path(sys.executable).parent / "actiseg"), *map(str, args)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def evaluate(model_dir, data_root, split, work: Path, threads: int) -> dict:
    pred = work / "pred"
    actiseg("infer", "--data", data_root, "--split", split, "--out", pred, "--model", model_dir,
            "--threads", threads)
    actiseg("eval", "--pred", pred, "--data", data_root, "--split", split, "--json", work / "eval.json")
    return json.loads((work / "eval.json").read_text())


def deltas(reference: dict, candidate: dict) -> dict:
    change = {name: round(100.0 * (candidate[name] - reference[name]), 3) for name in METRICS}
    worst = max(abs(v) for v in change.values())
    return {"delta_points": change, "max_abs_delta_points": worst, "met": bool(worst <= MAX_DELTA_POINTS)}


def text_latency(model_dir, prompts, threads: int) -> dict:
    """p50 ms of the text engine (ORT CPU) for 1, 4 and 8 new prompts, and its session start."""
    from actiseg_ros.inference.bench import time_calls
    from actiseg_ros.inference.engines.onnxruntime_engine import OrtOptions, OrtTextEngine
    from actiseg_ros.inference.model_card import load_model_card
    from actiseg_ros.inference.tokenizer import PromptTokenizer

    card = load_model_card(model_dir)
    start = time.perf_counter()
    engine = OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width, "ort-cpu",
                           OrtOptions(threads=threads))
    result = {"session_start_ms": round(1000 * (time.perf_counter() - start), 1)}
    tokenizer = PromptTokenizer(card.tokenizer.path, card.max_tokens)
    for k in (1, 4, 8):
        ids, mask = tokenizer.encode(prompts[:k])
        result["p50_ms_%d_prompts" % k] = round(time_calls(lambda: engine.run(ids, mask), 20, 3)["p50_ms"], 1)
    return result


def with_text_graph(source_dir, graph, target: Path) -> Path:
    """A copy of source_dir whose card names `graph` as its text encoder (for the rejected quantizers)."""
    from actiseg_ros.inference.model_card import sha256_file

    shutil.copytree(source_dir, target)
    shutil.copy(graph, target / "text_encoder.onnx")
    card = json.loads((target / "model_card.json").read_text())
    card["graphs"]["text_encoder"] = {"file": "text_encoder.onnx", "sha256": sha256_file(target / "text_encoder.onnx")}
    (target / "model_card.json").write_text(json.dumps(card, indent=2))
    return target


def measure(model, fp32, prompts, seen, narrations, card, args, work) -> dict:
    import onnxruntime

    from actiseg_ros.inference.model_card import sha256_file

    reference, mask = encode_all(fp32, prompts)
    int8_tokens, _ = encode_all(model, prompts)
    features = dict(compare_features(reference, int8_tokens, mask, prompts), seen_in_splits=len(seen),
                    narrations=narrations, splits=args.prompt_splits, condition=">= %.2f" % MIN_COSINE)
    index = {prompt: row for row, prompt in enumerate(prompts)}
    rows = [index[prompt] for prompt in seen]
    features["seen_only"] = compare_features(reference[rows], int8_tokens[rows], mask[rows], seen)
    print("prompt features: %s" % json.dumps(features), flush=True)
    (work / "e_fp32").mkdir()
    (work / "e_int8").mkdir()
    metrics_fp32 = evaluate(fp32, args.data, args.split, work / "e_fp32", args.threads)
    metrics_int8 = evaluate(model, args.data, args.split, work / "e_int8", args.threads)
    evaluation = dict(deltas(metrics_fp32, metrics_int8), split=args.split, mask_threshold=card.mask_threshold,
                      positive_gate=card.positive_gate, fp32=metrics_fp32, int8=metrics_int8,
                      condition="|change| <= %.1f points on every metric" % MAX_DELTA_POINTS)
    print("metrics: %s" % json.dumps(evaluation["delta_points"]), flush=True)
    latency = {name: text_latency(folder, prompts, args.threads)
               for name, folder in (("fp32", fp32), ("int8", model))}
    return {
        "measured": {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "arch": platform.machine(),
                                 "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                                 "load_average_after": load_average()}},
        "files": {precision: {"bytes": os.path.getsize(folder / "text_encoder.onnx"),
                              "sha256": sha256_file(folder / "text_encoder.onnx")}
                  for precision, folder in (("fp32", fp32), ("int8", model))},
        "prompt_features": features,
        "metrics": evaluation,
        "text_latency_ort_cpu": latency,
    }


def measure_dynamic(model, fp32, seen, args, work) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    reference, mask = encode_all(fp32, seen)
    (work / "e_fp32").mkdir()
    metrics_fp32 = evaluate(fp32, args.data, args.split, work / "e_fp32", args.threads)
    result = {"command": "python benchmarks/text_encoder_int8.py " + " ".join(sys.argv[1:])}
    for name, per_channel in (("per_tensor", False), ("per_channel", True)):
        graph = work / ("dynamic_%s.onnx" % name)
        quantize_dynamic(fp32 / "text_encoder.onnx", graph, weight_type=QuantType.QInt8, per_channel=per_channel)
        folder = with_text_graph(model, graph, work / ("m_%s" % name))
        tokens, _ = encode_all(folder, seen)
        (work / ("e_%s" % name)).mkdir()
        result[name] = {"bytes": os.path.getsize(graph),
                        "prompt_features": compare_features(reference, tokens, mask, seen),
                        "metrics": deltas(metrics_fp32, evaluate(folder, args.data, args.split,
                                                                 work / ("e_%s" % name), args.threads))}
        print("dynamic %s: %s" % (name, json.dumps(result[name])), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "default"))
    parser.add_argument("--data", required=True, help="the default model's data (actiseg synth --preset default)")
    parser.add_argument("--split", default="val_human", help="split for the metrics")
    parser.add_argument("--prompt-splits", nargs="+", default=["val", "val_human"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", required=True, help="where the full result goes")
    parser.add_argument("--card", action="store_true",
                        help="also record the summary (and the int8 metrics as `metrics`) in the model card")
    parser.add_argument("--dynamic-only", action="store_true",
                        help="measure onnxruntime.quantization.quantize_dynamic (per-tensor, per-channel) instead, "
                             "and add it to the existing --json result")
    args = parser.parse_args()
    import_training()
    from actiseg_ros.inference.model_card import load_model_card
    from actiseg_ros.training.export import export_text_only

    model = Path(args.model)
    card = load_model_card(model)
    if card.raw["graphs"]["text_encoder"].get("precision") != "int8":
        raise SystemExit("%s: the card's text encoder is not the int8 one" % model)
    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="text_int8_"))
    try:
        fp32 = work / "fp32"
        fp32.mkdir()
        for name in ("model_card.json", card.tokenizer.path.name, card.segmenter.path.name):
            shutil.copy(model / name, fp32 / name)
        export_text_only(fp32, "fp32")  # checked against the card's float32 hash
        prompts, seen, narrations = all_prompts(card, args.data, args.prompt_splits)
        print("%d prompts (%d seen in %s, %d narrations)" % (len(prompts), len(seen), "/".join(args.prompt_splits),
                                                              narrations), flush=True)
        if args.dynamic_only:
            summary = json.loads(Path(args.json).read_text())
            summary["rejected_dynamic"] = measure_dynamic(model, fp32, seen, args, work)
        else:
            summary = measure(model, fp32, prompts, seen, narrations, card, args, work)
            summary["measured"].update(command="python benchmarks/text_encoder_int8.py " + " ".join(sys.argv[1:]))
            summary["measured"]["machine"]["load_average_before"] = load_before
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if args.card:
        path = model / "model_card.json"
        data = json.loads(path.read_text())
        data["text_encoder_int8"] = summary
        if not args.dynamic_only:  # the shipped model's metrics are the int8 encoder's
            data["metrics"] = summary["metrics"]["int8"]
        temp = path.with_name(".model_card.json.tmp")
        temp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(temp, path)
    if args.dynamic_only:
        return 0
    ok = summary["prompt_features"]["met"] and summary["metrics"]["met"]
    print("int8 text encoder: %s" % ("both conditions met" if ok else "CONDITIONS NOT MET"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
