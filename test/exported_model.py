"""Test helper (not a test file): one real exported model folder per pytest session, shared by the
inference tests (test_engines, test_predictor, test_bench).

It is the tiny recipe's model with its initial weights (ImageNet backbone, MiniLM text encoder, fresh
decoder), saved as a checkpoint and put through the real `actiseg export` path, parity check included.
One change: the positive head's output bias is raised by 6, so that its scores sit around sigmoid(6) and the
activity gate (mask = P(object pixel) x P(active)) lets the fresh mask head's logits through; with a fresh
positive head at sigmoid(0) = 0.5 no pixel could pass the 0.5 mask threshold and every label image would be
empty.
Building needs torch; the tests that use it skip where torch is missing.
"""
from pathlib import Path

import pytest


def tiny_export(tmp_path_factory) -> Path:
    """-> folder holding the checkpoint model.pt and the exported model/ (created on first use)."""
    root = tmp_path_factory.getbasetemp() / "tiny_export"
    if (root / "model" / "model_card.json").is_file():
        return root
    torch = pytest.importorskip("torch", reason="exporting a model for the inference tests needs torch")
    from actiseg_ros.training.checkpoint import save_weights
    from actiseg_ros.training.config import configs_dir, load_config, to_dict
    from actiseg_ros.training.export import export
    from actiseg_ros.training.modeling.actiseg_model import ActiSegModel

    torch.manual_seed(0)
    config = load_config(configs_dir() / "tiny.yaml", {"data_root": str(root)})
    model = ActiSegModel(config.model).eval()
    with torch.no_grad():
        model.segmenter.decoder.positive_head[-1].bias += 6.0
    root.mkdir(parents=True, exist_ok=True)
    save_weights(root / "model.pt", model, to_dict(config), {"steps": 0})
    # Float32 text encoder: the runtime-vs-torch tests compare logits to 1e-4 (the int8 one, as shipped, is
    # checked against float32 in test_text_encoder_int8.py).
    export(root / "model.pt", root / "model", text_precision="fp32")
    return root
