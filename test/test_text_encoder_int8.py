"""The int8 text encoder: the quantizer (training/quantize.py) on a small real graph, the shipped file in git
against its card and against the float32 encoder, and `actiseg export --text-only` rebuilding it."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from actiseg_ros.inference.model_card import load_model_card

pytestmark = pytest.mark.training  # real torch models, exports or training steps

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "default"
MAX_BYTES = 25 * 10**6
PROMPTS = ["knife used in the action of cut onion with knife", "left hand used in the action of open fridge",
           "potato peeler used in the action of peel potato", "tap used in the action of rinse cup under tap",
           "carrot used in the action of pick up carrot", "dish used in the action of put dish in basin"]


def test_symmetric_int8_per_channel():
    from actiseg_ros.training.quantize import symmetric_int8

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(64, 5)).astype(np.float32) * np.array([1e-3, 1.0, 30.0, 0.0, 2.0], np.float32)
    quantized, scale = symmetric_int8(weights, axis=1)
    assert quantized.dtype == np.int8 and scale.shape == (5,) and scale.dtype == np.float32
    assert scale[3] == 1.0 and not quantized[:, 3].any()  # a zero channel: no division by zero
    assert np.abs(quantized).max() <= 127 and (np.abs(quantized).max(axis=0)[[0, 1, 2, 4]] == 127).all()
    # Round to nearest: every weight within half a step of its channel's scale.
    assert (np.abs(quantized * scale - weights) <= scale / 2 + 1e-7).all()
    rows, row_scale = symmetric_int8(weights, axis=0)
    assert row_scale.shape == (64,)
    assert (np.abs(rows * row_scale[:, None] - weights) <= row_scale[:, None] / 2 + 1e-7).all()


def _embedding_graph(rng):
    """ids (N, L) -> Gather(table) -> MatMul(W) + bias: the shape of a transformer's first steps."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    table = rng.normal(size=(500, 48)).astype(np.float32)
    weight = rng.normal(size=(48, 32)).astype(np.float32) / 7
    bias = rng.normal(size=(32,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["embedded"], name="embed", axis=0),
         helper.make_node("MatMul", ["embedded", "weight"], ["projected"], name="project"),
         helper.make_node("Add", ["projected", "bias"], ["out"], name="bias_add")],
        "tiny", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", "l"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", "l", 32])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weight, "weight"),
         numpy_helper.from_array(bias, "bias")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_quantized_graph_uses_standard_ops_and_matches_float(tmp_path):
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    from actiseg_ros.inference.bench import graph_stats
    from actiseg_ros.training.export import prompt_cosines
    from actiseg_ros.training.quantize import quantize_weights_int8

    rng = np.random.default_rng(1)
    model = _embedding_graph(rng)
    onnx.save(model, str(tmp_path / "float.onnx"))
    quantized, report = quantize_weights_int8(_embedding_graph(np.random.default_rng(1)), min_elements=1000)
    onnx.checker.check_model(quantized)
    onnx.save(quantized, str(tmp_path / "int8.onnx"))
    assert report == {"matmul": 1, "gather": 1, "int8_weights": 500 * 48 + 48 * 32, "float_weights_left": 32,
                      "scales": 500 + 32}
    assert {n.op_type for n in quantized.graph.node} <= {"Gather", "Cast", "Mul", "DequantizeLinear", "MatMul", "Add"}
    assert [o.version for o in quantized.opset_import] == [17]
    assert {i.name: i.data_type for i in quantized.graph.initializer}["table_int8"] == onnx.TensorProto.INT8
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "float.onnx").stat().st_size / 3
    ids = rng.integers(0, 500, (3, 7)).astype(np.int64)
    outputs = [ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
               for name in ("float.onnx", "int8.onnx")]
    assert outputs[1].shape == (3, 7, 32)
    assert prompt_cosines(outputs[0], outputs[1]).min() > 0.999
    assert not np.array_equal(outputs[0], outputs[1])  # really quantized
    # Same parameter and MAC counts for the bench: an int8 weight is one parameter, its scales none.
    feeds = {"ids": ids}
    assert graph_stats(tmp_path / "int8.onnx", feeds) == graph_stats(tmp_path / "float.onnx", feeds)
    # Deterministic: the same float graph gives the same bytes.
    again, _ = quantize_weights_int8(_embedding_graph(np.random.default_rng(1)), min_elements=1000)
    assert again.SerializeToString() == quantized.SerializeToString()


def test_shipped_text_encoder_is_the_int8_file_in_git():
    card = load_model_card(SHIPPED)  # checks every file's sha256 against the card
    entry = card.raw["graphs"]["text_encoder"]
    assert entry["precision"] == "int8" and entry["sha256_by_precision"]["int8"] == entry["sha256"]
    assert card.text_encoder.path.stat().st_size <= MAX_BYTES
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "--error-unmatch",
                              "models/default/text_encoder.onnx"], capture_output=True, text=True)
    assert tracked.returncode == 0, "the text encoder must be committed: %s" % tracked.stderr
    measured = card.raw["text_encoder_int8"]
    assert measured["files"]["int8"]["sha256"] == entry["sha256"]
    assert measured["files"]["fp32"]["sha256"] == entry["sha256_by_precision"]["fp32"]
    assert measured["prompt_features"]["cosine_min"] >= 0.99 and measured["prompt_features"]["met"]
    assert measured["metrics"]["max_abs_delta_points"] <= 0.5 and measured["metrics"]["met"]
    int8, fp32 = measured["metrics"]["int8"], measured["metrics"]["fp32"]
    assert max(abs(100 * (int8[k] - fp32[k])) for k in ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc")) <= 0.5
    assert card.raw["metrics"]["gIoU"] == pytest.approx(measured["metrics"]["int8"]["gIoU"])


def test_shipped_int8_prompt_features_match_the_float_encoder():
    torch = pytest.importorskip("torch")
    from actiseg_ros.inference.engines.onnxruntime_engine import OrtTextEngine
    from actiseg_ros.inference.tokenizer import PromptTokenizer
    from actiseg_ros.training.export import TEXT_MIN_COSINE, prompt_cosines
    from actiseg_ros.training.modeling.text_encoder import TextEncoder

    card = load_model_card(SHIPPED)
    ids, mask = PromptTokenizer(card.tokenizer.path, card.max_tokens).encode(PROMPTS)
    int8 = OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width).run(ids, mask)
    with torch.no_grad():
        reference = TextEncoder()(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    cosines = prompt_cosines(reference, int8)
    assert cosines.min() >= TEXT_MIN_COSINE
    assert cosines.min() >= card.raw["text_encoder_int8"]["prompt_features"]["cosine_min"] - 1e-3
    assert np.abs(int8[mask == 0]).max() == 0.0  # padding stays exactly zero


def test_int8_weights_dequantized_at_load_give_the_plain_graphs_numbers():
    """OrtOptions.fold_int8_weights (the audit's setting): ONNX Runtime folds the DequantizeLinear of every
    weight once, so the features equal the unoptimised graph's up to float32 rounding (other fusions remain);
    the default fused int8 path differs by far more."""
    import onnxruntime as ort

    from actiseg_ros.inference.engines.onnxruntime_engine import OrtOptions, OrtTextEngine
    from actiseg_ros.inference.tokenizer import PromptTokenizer

    card = load_model_card(SHIPPED)
    ids, mask = PromptTokenizer(card.tokenizer.path, card.max_tokens).encode(PROMPTS)
    folded = OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width,
                           options=OrtOptions(threads=1, fold_int8_weights=True)).run(ids, mask)
    fused = OrtTextEngine(card.text_encoder.path, card.max_tokens, card.text_width,
                          options=OrtOptions(threads=1)).run(ids, mask)
    plain_options = ort.SessionOptions()
    plain_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain_options.intra_op_num_threads = 1
    plain = ort.InferenceSession(str(card.text_encoder.path), plain_options, providers=["CPUExecutionProvider"])
    expected = plain.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    assert np.abs(folded - expected).max() < 1e-4
    assert 1e-3 < np.abs(fused - expected).max() < 0.2


@pytest.fixture
def model_folder(tmp_path):
    """The shipped card, tokenizer and segmenter without a text encoder."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model_card.json", "tokenizer.json", "segmenter.onnx"):
        shutil.copy(SHIPPED / name, folder / name)
    return folder


def test_export_text_only_rebuilds_the_shipped_bytes_then_the_float_one(model_folder):
    pytest.importorskip("torch")
    from actiseg_ros.training.export import export_text_only

    shipped = json.loads((SHIPPED / "model_card.json").read_text())["graphs"]["text_encoder"]
    assert export_text_only(model_folder) == shipped["sha256"]  # byte-identical to the committed file
    assert (model_folder / "model_card.json").read_bytes() == (SHIPPED / "model_card.json").read_bytes()
    assert not [p for p in model_folder.iterdir() if p.name.startswith(".")], "scratch files left behind"

    digest = export_text_only(model_folder, "fp32")
    assert digest == shipped["sha256_by_precision"]["fp32"]
    entry = json.loads((model_folder / "model_card.json").read_text())["graphs"]["text_encoder"]
    assert (entry["precision"], entry["sha256"]) == ("fp32", digest) and "quantization" not in entry
    assert entry["sha256_by_precision"] == shipped["sha256_by_precision"]
    card = load_model_card(model_folder)  # the rewritten card names the float32 file
    assert card.text_encoder.path.stat().st_size > 4 * MAX_BYTES - 10**7


def test_export_text_only_refuses_a_hash_it_cannot_reproduce(model_folder):
    pytest.importorskip("torch")
    from actiseg_ros.training.export import export_text_only

    path = model_folder / "model_card.json"
    card = json.loads(path.read_text())
    card["graphs"]["text_encoder"]["sha256_by_precision"]["int8"] = "0" * 64
    path.write_text(json.dumps(card))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="regenerated int8 text encoder has sha256 %s.*nothing was replaced"
                       % card["graphs"]["text_encoder"]["sha256"]):
        export_text_only(model_folder)
    assert not (model_folder / "text_encoder.onnx").exists() and path.read_bytes() == before
    assert sorted(p.name for p in model_folder.iterdir()) == ["model_card.json", "segmenter.onnx", "tokenizer.json"]


def test_export_writes_the_int8_encoder_by_default(tmp_path_factory, tmp_path):
    """The full `actiseg export` path on the tiny model's checkpoint: int8 text graph, float32 parity to torch,
    the int8 features' cosine in the parity record, a card the runtime loads, no scratch files left."""
    pytest.importorskip("torch")
    from exported_model import tiny_export

    from actiseg_ros.inference.predictor import Predictor
    from actiseg_ros.training.export import PARITY_ATOL, TEXT_MIN_COSINE, export

    checkpoint = tiny_export(tmp_path_factory) / "model.pt"
    card = export(checkpoint, tmp_path / "model")
    entry = card["graphs"]["text_encoder"]
    assert entry["precision"] == "int8" and entry["quantization"]["matmul"] == 36
    # MiniLM is frozen: every model's text encoder is the shipped one, byte for byte.
    assert entry["sha256_by_precision"] == load_model_card(SHIPPED).raw["graphs"]["text_encoder"]["sha256_by_precision"]
    assert card["parity"]["text_max_abs_diff"] <= PARITY_ATOL  # the float32 graph against torch
    assert TEXT_MIN_COSINE <= card["parity"]["text_min_cosine"] < 1.0
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "model_card.json", "segmenter.onnx", "text_encoder.onnx", "tokenizer.json"]
    with Predictor(tmp_path / "model", backend="ort-cpu") as predictor:
        predictor.set_prompts(PROMPTS[:2])
        assert predictor.predict(np.zeros((120, 160, 3), np.uint8)).labels.shape == (120, 160)
