"""GPU latency of the actiseg segmenter: torch CUDA eager vs torch.compile (fp32 and bf16 autocast), and
ONNX Runtime on whatever providers the machine has. Prints a table and writes JSON.

Run from the repository root on a machine with torch + CUDA (no install needed):
    python benchmarks/gpu_latency.py --checkpoint models/default/actiseg_default.pt --json OUT.json
The training package is imported from the source tree (training/ is installed as actiseg_ros.training;
here it is put on the path under that name).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import source_training  # benchmarks/ is this script's folder

REPO = Path(__file__).resolve().parent.parent


def import_training():
    """Make `actiseg_ros.training` importable from a source checkout without installing."""
    sys.path.insert(0, str(REPO))
    source_training.import_training()


def timed(fn, warmup, iterations, sync):
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--onnx", default=None, help="segmenter.onnx to time with ONNX Runtime")
    parser.add_argument("--json", default="gpu_latency.json")
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    import_training()
    from actiseg_ros.training.modeling.actiseg_model import ActiSegSegmenter, ModelConfig

    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        config = ModelConfig(**{k: (tuple(v) if k == "input_hw" else v) for k, v in state["config"]["model"].items()})
        config.pretrained = False
        segmenter = ActiSegSegmenter(config)
        segmenter.load_state_dict({k[len("segmenter."):]: v for k, v in state["model"].items()
                                   if k.startswith("segmenter.")})
    else:
        config = ModelConfig(pretrained=False)
        segmenter = ActiSegSegmenter(config)
    device = torch.device("cuda")
    segmenter = segmenter.eval().to(device)
    h, w = config.input_hw
    records = []
    gpu = torch.cuda.get_device_name(0)

    def sync():
        torch.cuda.synchronize()

    compiled = torch.compile(segmenter)
    for k in (1, 4, 8):
        images = torch.randn(1, 3, h, w, device=device)
        tokens = torch.randn(1, k, 32, 384, device=device)
        mask = torch.ones(1, k, 32, device=device)
        variants = [("torch-cuda-eager-fp32", segmenter, False), ("torch-cuda-eager-bf16", segmenter, True)]
        if k == 4:  # each compiled shape costs a compilation (tens of seconds): K = 4 only
            variants += [("torch-cuda-compiled-fp32", compiled, False), ("torch-cuda-compiled-bf16", compiled, True)]
        for name, module, autocast in variants:
            def run():
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    module(images, tokens, mask)
            p50, p95 = timed(run, 20, args.iterations, sync)
            records.append({"backend": name, "device": gpu, "input_size": [h, w], "k": k, "p50_ms": round(p50, 3),
                            "p95_ms": round(p95, 3), "hz": round(1000 / p50, 1)})
            print(records[-1], flush=True)
    if args.onnx:
        import onnxruntime as ort

        for providers in (["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]):
            if providers[0] not in ort.get_available_providers():
                print("ONNX Runtime here lacks %s" % providers[0])
                continue
            session = ort.InferenceSession(args.onnx, providers=providers)
            for k in (1, 4, 8):
                feeds = {"images": np.random.randn(1, 3, h, w).astype(np.float32),
                         "text_tokens": np.random.randn(1, k, 32, 384).astype(np.float32),
                         "text_mask": np.ones((1, k, 32), np.float32)}
                p50, p95 = timed(lambda: session.run(None, feeds), 10, args.iterations // 2, lambda: None)
                records.append({"backend": "onnxruntime:" + session.get_providers()[0], "device": gpu,
                                "input_size": [h, w], "k": k, "p50_ms": round(p50, 3), "p95_ms": round(p95, 3),
                                "hz": round(1000 / p50, 1)})
                print(records[-1], flush=True)
    Path(args.json).write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "records": records}, indent=2))


if __name__ == "__main__":
    main()
