"""Fine-tuning to new objects: `actiseg train --config finetune --data ROOT`, mixing old-domain data in, and the
vocabulary growing through export into the node's action parsing (real training, export and ONNX pipeline)."""
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.data import actionvos  # noqa: E402
from actiseg_ros.data.synth import PRESETS, plan_dataset, write_dataset  # noqa: E402
from actiseg_ros.ros.action_parsing import ActionError, parse_action  # noqa: E402
from actiseg_ros.ros.params import make_settings  # noqa: E402
from actiseg_ros.ros.pipeline import create_pipeline  # noqa: E402
from actiseg_ros.training.config import configs_dir, load_config  # noqa: E402
from actiseg_ros.training.data import training_clips  # noqa: E402
from actiseg_ros.training.vocabulary import split_names, training_vocabulary  # noqa: E402
from conftest import run_actiseg as run  # noqa: E402
from exported_model import tiny_export  # noqa: E402

pytestmark = pytest.mark.training  # real torch models, exports or training steps

SHIPPED_CARD = Path(__file__).resolve().parents[1] / "models" / "default" / "model_card.json"


@pytest.fixture(scope="module")
def kitchen_b(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitchen_b")
    write_dataset(plan_dataset(PRESETS["tiny"], 9, domain="kitchen_b"), root)  # seed 9: it has spatulas
    return root


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A tiny model laid out as models/default is: weights next to a model card with the shipped vocabulary."""
    folder = tmp_path_factory.mktemp("base")
    shutil.copy(tiny_export(tmp_path_factory) / "model.pt", folder / "actiseg_base.pt")
    card = json.loads(SHIPPED_CARD.read_text())
    (folder / "model_card.json").write_text(json.dumps({"vocabulary": card["vocabulary"]}))
    return folder


def test_finetune_recipe_starts_from_the_shipped_model_with_the_robust_loss_and_old_data():
    config = load_config(configs_dir() / "finetune.yaml", {"data_root": "data/x"})
    assert config.init_from == "models/default/actiseg_default.pt"
    assert config.loss.pmhm and config.loss.pmhm_warmup_epochs == 0 and config.loss.strategy == "gce"
    assert config.mix_data == [{"root": "data/synth_default", "split": "train", "segments": 180}]
    shipped = load_config([configs_dir() / "default.yaml", configs_dir() / "default_stage2.yaml"])
    assert config.model == shipped.model  # the shipped checkpoint loads into it
    for bad, message in (([{"split": "train"}], "root"), ([{"root": "a", "segments": -1}], "segments"),
                         ([{"root": "a", "frames": 1}], "unknown"), ({"root": "a"}, "list")):
        with pytest.raises(ValueError, match=message):
            load_config(configs_dir() / "finetune.yaml", {"mix_data": bad})


def test_mix_data_appends_a_fixed_subset_of_another_root(kitchen_b, tiny_data):
    config = load_config(configs_dir() / "tiny.yaml", {"data_root": str(kitchen_b),
                                                       "mix_data": [{"root": str(tiny_data), "segments": 5}]})
    clips = training_clips(config)
    assert len(clips) == 12 + 5
    again = training_clips(config)
    assert [s.name for s in clips.segments] == [s.name for s in again.segments]  # the same subset every time
    assert clips[15].index == 15 and clips[15].prompts == again[15].prompts
    assert set(clips.prompts()) >= set(training_clips(load_config(configs_dir() / "tiny.yaml", {
        "data_root": str(kitchen_b)})).prompts())
    with pytest.raises(actionvos.DatasetError, match="500 segments"):
        training_clips(load_config(configs_dir() / "tiny.yaml", {
            "data_root": str(kitchen_b), "mix_data": [{"root": str(tiny_data), "segments": 500}]}))


def test_vocabulary_is_the_init_models_plus_the_new_datas(kitchen_b, base_model, tmp_path):
    shipped = set(json.loads(SHIPPED_CARD.read_text())["vocabulary"])
    config = load_config(configs_dir() / "tiny.yaml", {"data_root": str(kitchen_b),
                                                       "init_from": str(base_model / "actiseg_base.pt")})
    vocabulary = training_vocabulary(config)
    new = split_names(kitchen_b, "train")
    assert set(vocabulary) == shipped | new and vocabulary == sorted(vocabulary)
    assert new - shipped  # kitchen_b's new classes
    # Without a card next to the init weights, the init run's own training data stands in for it.
    alone = tmp_path / "run" / "model.pt"
    alone.parent.mkdir()
    state = torch.load(base_model / "actiseg_base.pt", map_location="cpu", weights_only=False)
    state["config"]["data_root"] = str(kitchen_b)
    torch.save(state, alone)
    assert set(training_vocabulary(load_config(configs_dir() / "tiny.yaml", {
        "data_root": str(kitchen_b), "init_from": str(alone)}))) == new
    with pytest.raises(ValueError, match="ImageSets"):
        split_names(tmp_path, "train")


def test_finetuned_models_card_lets_the_node_parse_the_new_object(kitchen_b, base_model, tmp_path):
    """Train (2 real steps) from a base model with the shipped vocabulary on kitchen_b data via --data, export
    with the default vocabulary, and load the export in the node's pipeline: "pick up the spatula" names the
    spatula there, and not with the shipped card."""
    run_dir = tmp_path / "run"
    result = run(["train", "--config", "tiny", "--data", str(kitchen_b), "--set", "threads=1",
                  "--set", "init_from=%s" % (base_model / "actiseg_base.pt"), "--set", "max_steps=2",
                  "--out", str(run_dir)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "initialised from" in result.stdout + result.stderr
    exported = tmp_path / "exported"
    result = run(["export", "--checkpoint", str(run_dir / "model.pt"), "--out", str(exported), "--text-fp32"])
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((exported / "model_card.json").read_text())
    assert "spatula" not in json.loads(SHIPPED_CARD.read_text())["vocabulary"]
    new_names = split_names(kitchen_b, "train")
    assert set(card["vocabulary"]) >= new_names | {"chopping board", "knife"}

    assert "spatula" in new_names
    text, noun = "pick up the spatula", "spatula"
    pipeline = create_pipeline(make_settings({"model_dir": str(exported), "backend": "ort-cpu", "threads": 1}))
    try:
        assert noun in pipeline.parse(text).named
    finally:
        pipeline.predictor.close()
    for vocabulary in (json.loads(SHIPPED_CARD.read_text())["vocabulary"], None):  # the shipped card; no card
        with pytest.raises(ActionError, match="names no known object"):
            parse_action(text, vocabulary)


def test_corrupt_flips_over_the_datas_own_vocabulary_new_classes_included(kitchen_b, tmp_path):
    from actiseg_ros.data import taxonomy

    out = tmp_path / "noisy"
    result = run(["corrupt", "--data", str(kitchen_b), "--out", str(out), "--text-flip", "1.0", "--seed", "0",
                  "--workers", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "noise_manifest.json").read_text())
    new_ids = {c.class_id for c in taxonomy.KITCHEN_B_CLASSES}
    assert new_ids & {int(k) for k in manifest["vocabulary"]}
    flips = [c for c in manifest["expressions"] if c["kind"] == "flip"]
    assert any(c["class_id"] in new_ids for c in flips) and any(c["class_id_org"] in new_ids for c in flips)
