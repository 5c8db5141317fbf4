"""Real training on the tiny synthetic preset: every config trains, resume after SIGKILL is exact,
two-process DDP (gloo) runs, and the trained checkpoint goes through infer + eval."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from process_helpers import kill_after_first_checkpoint

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.training.config import configs_dir, load_config  # noqa: E402
from conftest import ACTISEG, run_actiseg as run  # noqa: E402  (the installed console script: `python -m`
# from the repository would import the source tree, where actiseg_ros.training does not exist)

pytestmark = pytest.mark.training  # real torch models, exports or training steps

# Small, fast and deterministic: one torch thread (two spin-wait badly when the CPU is shared).
TINY = ["--config", "tiny", "--set", "threads=1"]


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def max_weight_difference(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="session")
def uninterrupted_run(tiny_data, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("run_full")
    result = run(["train"] + TINY + ["--out", str(out_dir), "--set", "data_root=%s" % tiny_data])
    assert result.returncode == 0, result.stderr[-3000:]
    return out_dir


def test_training_writes_weights_log_and_checkpoint(uninterrupted_run):
    assert (uninterrupted_run / "model.pt").is_file() and (uninterrupted_run / "latest.pt").is_file()
    rows = (uninterrupted_run / "train_log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,") and len(rows) > 2
    state = torch.load(uninterrupted_run / "model.pt", map_location="cpu", weights_only=False)
    assert not any(k.startswith("text_encoder.") for k in state["model"]), "frozen text encoder must not be stored"
    assert any(k.startswith("segmenter.aux_heads.") for k in state["model"])  # PMHM heads are training state


def test_training_changes_the_weights_and_the_loss_falls(uninterrupted_run, tiny_data):
    rows = [line.split(",") for line in (uninterrupted_run / "train_log.csv").read_text().strip().splitlines()[1:]]
    losses = [float(r[3]) for r in rows]
    assert min(losses[len(losses) // 2:]) < losses[0]


def test_resume_after_sigkill_reaches_the_same_weights(tiny_data, uninterrupted_run, tmp_path):
    args = ACTISEG + ["train"] + TINY + ["--out", str(tmp_path), "--set", "data_root=%s" % tiny_data]
    latest = tmp_path / "latest.pt"
    kill_after_first_checkpoint(args, latest)
    assert not (tmp_path / "model.pt").exists()
    killed_at = torch.load(latest, map_location="cpu", weights_only=False)["step"]
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from step %d" % killed_at in resumed.stdout
    difference = max_weight_difference(weights(tmp_path / "model.pt"), weights(uninterrupted_run / "model.pt"))
    assert difference == 0.0, "resumed run differs from the uninterrupted one by %g" % difference


def test_checkpointed_model_goes_through_infer_and_eval(uninterrupted_run, tiny_data, tmp_path):
    pred = tmp_path / "pred"
    result = run(["infer", "--data", str(tiny_data), "--split", "val_human", "--out", str(pred),
                  "--model", str(uninterrupted_run / "model.pt")])
    assert result.returncode == 0, result.stderr[-3000:]
    scores = tmp_path / "scores.json"
    result = run(["eval", "--pred", str(pred), "--data", str(tiny_data), "--split", "val_human", "--json", str(scores)])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(scores.read_text())
    assert metrics["videos"] > 0 and 0.0 <= metrics["gIoU"] <= 1.0


def test_a_second_stage_starts_from_a_weights_file_at_another_input_size(uninterrupted_run, tiny_data, tmp_path):
    """init_from loads the first stage's weights (with learning rates 0 they come out unchanged, BatchNorm
    statistics aside), also at a different input size; a file of another architecture is a config error."""
    first = uninterrupted_run / "model.pt"
    sets = ["init_from=%s" % first, "data_root=%s" % tiny_data, "max_steps=1", "lr=0", "lr_backbone=0",
            "weight_decay=0", "model.input_hw=[96,128]"]
    result = run(["train"] + TINY + ["--out", str(tmp_path / "stage2")] + sum((["--set", s] for s in sets), []))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "initialised from %s" % first in result.stdout
    before, after = weights(first), weights(tmp_path / "stage2" / "model.pt")
    learnt = [k for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert max_weight_difference({k: before[k] for k in learnt}, {k: after[k] for k in learnt}) == 0.0
    fresh = run(["train"] + TINY + ["--out", str(tmp_path / "fresh")] + sum((["--set", s] for s in sets[1:]), []))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert max_weight_difference(before, weights(tmp_path / "fresh" / "model.pt")) > 0  # the check can fail

    for bad, message in ((["model.dim=48"], "dim 32 (this run: 48)"),
                         (["init_from=%s" % (tmp_path / "none.pt")], "not found"),
                         (["init_from=%s" % (uninterrupted_run / "train_log.csv")], "not a torch weights file")):
        result = run(["train"] + TINY + ["--out", str(tmp_path / "bad")] + sum((["--set", s] for s in sets + bad), []))
        assert result.returncode != 0 and "invalid config: init_from" in result.stderr and message in result.stderr
        assert not (tmp_path / "bad" / "latest.pt").exists()


@pytest.mark.parametrize("overrides", [
    ["loss.pmhm=false", "model.aux_heads=0"],
    ["loss.pmhm=false", "model.aux_heads=0", "loss.deep_supervision=false"],
    ["model.aux_heads=2"],
    ["model.text_trainable=true", "loss.pmhm=false", "model.aux_heads=0"],
])
def test_one_training_step_of_each_variant(tiny_data, tmp_path, overrides):
    sets = sum((["--set", o] for o in overrides + ["max_steps=1", "data_root=%s" % tiny_data]), [])
    result = run(["train"] + TINY + ["--out", str(tmp_path)] + sets)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "model.pt").is_file()


def test_two_process_ddp_on_cpu(tiny_data, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m",
                             "actiseg_ros.training.train_cli", "--config", "tiny", "--out", str(tmp_path),
                             "--set", "data_root=%s" % tiny_data, "--set", "max_steps=2", "--set", "threads=1"],
                            capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    info = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=False)["info"]
    assert info["world_size"] == 2 and info["steps"] == 2


def test_shipped_configs_load_and_reject_unknown_keys(tmp_path):
    for path in configs_dir().glob("*.yaml"):
        load_config(path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(bad)
    bad.write_text("loss:\n  pmhm: true\nmodel:\n  aux_heads: 0\n")
    with pytest.raises(ValueError, match="aux_heads"):
        load_config(bad)


def test_config_values_take_their_field_types():
    """YAML 1.1 reads 5e-4 (no dot) as a string: a float field accepts it; other type errors name the key."""
    default = configs_dir() / "default.yaml"
    assert load_config(default, {"lr": "5e-4", "grad_clip": 1}).lr == 5e-4
    for key, value in (("epochs", "3"), ("loss.pmhm", "yes"), ("lr", "fast"), ("model.backbone", 3), ("epochs", 2.5)):
        with pytest.raises(ValueError, match=key.split(".")[-1]):
            load_config(default, {key: value})


def test_checkpoints_from_before_the_activity_gate_load_without_it():
    from actiseg_ros.training.config import from_dict, to_dict

    saved = to_dict(load_config(configs_dir() / "default.yaml"))
    assert from_dict(saved).model.activity_gate is True
    del saved["model"]["activity_gate"]
    assert from_dict(saved).model.activity_gate is False


def test_infer_uses_the_cards_mask_threshold_unless_told_otherwise(tiny_data, tmp_path):
    """The shipped default model on tiny data: a lower mask threshold labels at least the same pixels, and
    the card's own threshold is what `infer` uses by default."""
    import numpy as np

    from actiseg_ros.data import actionvos
    from actiseg_ros.paths import models_dir

    card_threshold = json.loads((models_dir() / "default" / "model_card.json").read_text())["thresholds"]["mask"]
    assert 0.01 < card_threshold < 0.9  # so that "low" and "high" below lie on either side of it
    labelled = {}
    for name, extra in (("low", ["--mask-threshold", "0.01"]), ("default", []),
                        ("card", ["--mask-threshold", str(card_threshold)]), ("high", ["--mask-threshold", "0.9"])):
        out = tmp_path / name
        result = run(["infer", "--data", str(tiny_data), "--split", "val_human", "--out", str(out)] + extra)
        assert result.returncode == 0, result.stderr[-3000:]
        labelled[name] = {p.relative_to(out): actionvos.read_label_png(p) > 0 for p in out.rglob("*.png")}
    for key, default in labelled["default"].items():
        assert np.array_equal(default, labelled["card"][key])
        assert (labelled["high"][key] <= default).all() and (default <= labelled["low"][key]).all()
    assert sum(m.sum() for m in labelled["low"].values()) > sum(m.sum() for m in labelled["high"].values())
    result = run(["infer", "--data", str(tiny_data), "--out", str(tmp_path / "bad"), "--mask-threshold", "1.5"])
    assert result.returncode != 0 and "--mask-threshold must be between 0 and 1" in result.stderr


def test_calibration_thresholds_and_choice():
    from actiseg_ros.training.calibrate import choose, parse_thresholds

    assert parse_thresholds("0.3, 0.5,0.3") == [0.5, 0.3]
    for bad in ("", "0.5,x", "0", "1.0", "-0.2"):
        with pytest.raises(ValueError, match="thresholds"):
            parse_thresholds(bad)
    rows = [{"threshold": 0.5, "gIoU": 0.7}, {"threshold": 0.3, "gIoU": 0.8}, {"threshold": 0.2, "gIoU": 0.8},
            {"threshold": 0.1, "gIoU": None}]
    assert choose(rows) == 0.3  # best gIoU; of two equal ones the higher threshold
    with pytest.raises(ValueError):
        choose([{"threshold": 0.5, "gIoU": None}])


def test_calibrate_scores_each_threshold_as_infer_and_eval_do_and_export_adopts_the_choice(
        uninterrupted_run, tiny_data, tmp_path):
    checkpoint = uninterrupted_run / "model.pt"
    report_path = tmp_path / "calibration.json"
    result = run(["calibrate", "--model", str(checkpoint), "--data", str(tiny_data), "--split", "val_human",
                  "--thresholds", "0.3,0.5", "--json", str(report_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert [row["threshold"] for row in report["rows"]] == [0.5, 0.3] and report["split"] == "val_human"
    assert report["chosen"] == max(report["rows"], key=lambda r: (r["gIoU"], r["threshold"]))["threshold"]
    for row in report["rows"]:  # the sweep's scores are the ones infer + eval give at that threshold
        pred, scores = tmp_path / ("pred%s" % row["threshold"]), tmp_path / ("scores%s.json" % row["threshold"])
        assert run(["infer", "--data", str(tiny_data), "--split", "val_human", "--out", str(pred), "--model",
                    str(checkpoint), "--mask-threshold", str(row["threshold"])]).returncode == 0
        assert run(["eval", "--pred", str(pred), "--data", str(tiny_data), "--split", "val_human",
                    "--json", str(scores)]).returncode == 0
        evaluated = json.loads(scores.read_text())
        for key in ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc", "TP", "TN", "FP", "FN"):
            assert row[key] == pytest.approx(evaluated[key], nan_ok=True), key

    exported = tmp_path / "exported"
    result = run(["export", "--checkpoint", str(checkpoint), "--out", str(exported), "--calibration", str(report_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((exported / "model_card.json").read_text())
    assert card["thresholds"]["mask"] == report["chosen"] and card["calibration"]["split"] == "val_human"
    (tmp_path / "not_calibration.json").write_text('{"gIoU": 0.5}')
    result = run(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "bad"),
                  "--calibration", str(tmp_path / "not_calibration.json")])
    assert result.returncode != 0 and "not an `actiseg calibrate` file" in result.stderr


def test_exported_model_predicts_like_the_checkpoint_and_runs_the_demo_layout(uninterrupted_run, tiny_data, tmp_path):
    from actiseg_ros.data import actionvos

    exported = tmp_path / "exported"
    result = run(["export", "--checkpoint", str(uninterrupted_run / "model.pt"), "--out", str(exported)])
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((exported / "model_card.json").read_text())
    assert card["parity"]["mask_logit_max_tolerance_used"] <= 1.0 and card["parity"]["mask_iou"] >= 0.999
    predictions = {}
    for name, model in (("torch", uninterrupted_run / "model.pt"), ("onnx", exported)):
        result = run(["infer", "--data", str(tiny_data), "--split", "val_human", "--out", str(tmp_path / name),
                      "--model", str(model)])
        assert result.returncode == 0, result.stderr[-3000:]
        predictions[name] = {p.relative_to(tmp_path / name): actionvos.read_label_png(p)
                             for p in (tmp_path / name).rglob("*.png")}
    assert predictions["torch"].keys() == predictions["onnx"].keys() and predictions["torch"]
    for key, labels in predictions["torch"].items():
        agreement = (labels == predictions["onnx"][key]).mean()
        assert agreement > 0.999, (key, agreement)
    # The inference-only layout: expressions are the prompts, obj_id the label value.
    segment = actionvos.read_split(tiny_data, "val_human").segments[0]
    frames = [f[:-4] for f in segment.sparse_frames]
    expressions = {str(i): {"exp": segment.prompt(k), "obj_id": str(k)} for i, k in enumerate(sorted(segment.objects))}
    images = [actionvos.read_image(actionvos.image_path(tiny_data, "val_human", segment.name, f + ".jpg"))
              for f in frames]
    demo = tmp_path / "demo"
    actionvos.write_demo_layout(demo, [(actionvos.DemoVideo(segment.name, frames, expressions), images)])
    result = run(["infer", "--data", str(demo), "--split", "demo", "--out", str(tmp_path / "demo_pred"),
                  "--model", str(exported)])
    assert result.returncode == 0, result.stderr[-3000:]
    for f in frames:
        demo_labels = actionvos.read_label_png(tmp_path / "demo_pred" / segment.name / (f + ".png"))
        assert (demo_labels == predictions["onnx"][Path(segment.name) / (f + ".png")]).mean() > 0.999


def test_too_little_data_for_the_batch_is_a_clear_error_not_a_traceback(tiny_data, tmp_path):
    out = run(["train", "--config", "tiny", "--data", str(tiny_data), "--set", "batch_size=1000", "--out",
               str(tmp_path / "run")])
    assert out.returncode != 0
    assert "cannot train: batch_size 1000 is larger than this rank's" in out.stderr
    assert "--set batch_size=N" in out.stderr and "Traceback" not in out.stderr
