"""The frame pipeline with a real exported model: action in force, labels, action changes, configure errors."""
import numpy as np
import pytest

from exported_model import tiny_export

from actiseg_ros.data.synth import SceneStream
from actiseg_ros.inference.predictor import Predictor
from actiseg_ros.ros.action_parsing import ActionError
from actiseg_ros.ros.params import make_settings
from actiseg_ros.ros.pipeline import ConfigureError, create_pipeline

pytestmark = pytest.mark.training  # real torch models, exports or training steps


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_export(tmp_path_factory) / "model"


@pytest.fixture(scope="module")
def frames():
    stream = SceneStream(seed=1, size=(160, 120), actions=2)
    return [stream.render(i).rgb for i in (5, 40)]


EVERY = 1e-6  # a positive gate every score passes (0 would mean the model card's gate)


def settings(model, **values):
    return make_settings(dict({"model_dir": str(model), "backend": "ort-cpu", "threads": 1,
                               "smoothing.enabled": False}, **values))


def test_no_action_gives_empty_outputs_without_running_the_model(model, frames):
    pipeline = create_pipeline(settings(model))
    result = pipeline.process(frames[0])
    assert result.action is None and result.objects == [] and "segmenter" not in result.timings_ms
    assert result.labels.shape == (120, 160) and not result.labels.any() and not result.mask.any()


def test_labels_equal_the_offline_predictor(model, frames):
    pipeline = create_pipeline(settings(model, positive_gate=EVERY, action="cut onion with knife"))
    result = pipeline.process(frames[0])
    assert [o.name for o in result.objects] == ["onion", "knife", "left hand", "right hand"]
    assert [o.id for o in result.objects] == [1, 2, 3, 4] and all(o.active for o in result.objects)
    predictor = Predictor(model, backend="ort-cpu", threads=1, positive_gate=0.0)
    predictor.set_prompts([o.prompt for o in result.objects])
    assert result.objects[0].prompt == "onion used in the action of cut onion with knife"
    offline = predictor.predict(frames[0])
    np.testing.assert_array_equal(result.labels, offline.labels)
    np.testing.assert_array_equal(result.mask, np.where(offline.labels > 0, 255, 0))
    for got, expected in zip(result.objects, offline.objects):
        assert (got.area, got.bbox, got.active) == (expected.area, expected.bbox, expected.active)
        assert got.score == pytest.approx(expected.score)
    assert result.labels.any(), "with gate 0 every object competes for pixels"


def test_mask_threshold_zero_means_the_model_cards(model, frames, tmp_path):
    """The parameter's default (0) takes the card's calibrated threshold; a value overrides it."""
    import json
    import shutil

    calibrated = tmp_path / "calibrated"
    shutil.copytree(model, calibrated)
    card = json.loads((calibrated / "model_card.json").read_text())
    card["thresholds"]["mask"] = 0.05
    (calibrated / "model_card.json").write_text(json.dumps(card))
    labels = {}
    for name, value in (("card", 0.0), ("explicit", 0.95)):
        pipeline = create_pipeline(settings(calibrated, positive_gate=EVERY, action="cut onion with knife",
                                            mask_threshold=value))
        result = pipeline.process(frames[0])
        predictor = Predictor(calibrated, backend="ort-cpu", threads=1, positive_gate=0.0,
                              mask_threshold=None if value == 0.0 else value)
        predictor.set_prompts([o.prompt for o in result.objects])
        np.testing.assert_array_equal(result.labels, predictor.predict(frames[0]).labels)
        labels[name] = result.labels
    assert (labels["card"] > 0).sum() > (labels["explicit"] > 0).sum()


def test_positive_gate_zero_means_the_model_cards(model, frames, tmp_path):
    """The parameter's default (0) takes the card's gate, as Predictor does; a value overrides it."""
    import json
    import shutil

    raw = [o.raw_score for o in create_pipeline(settings(model, positive_gate=EVERY, action="cut onion with knife"))
           .process(frames[0]).objects]
    carded = tmp_path / "carded"
    shutil.copytree(model, carded)
    card = json.loads((carded / "model_card.json").read_text())
    card["thresholds"]["positive_gate"] = float(np.median(raw))  # some objects above the card's gate, some below
    (carded / "model_card.json").write_text(json.dumps(card))
    pipeline = create_pipeline(settings(carded, action="cut onion with knife"))
    assert pipeline.thresholds() == (card["thresholds"]["positive_gate"], card["thresholds"]["mask"])
    result = pipeline.process(frames[0])
    predictor = Predictor(carded, backend="ort-cpu", threads=1)  # no gate given: the card's
    predictor.set_prompts([o.prompt for o in result.objects])
    offline = predictor.predict(frames[0])
    assert [o.active for o in result.objects] == [bool(a) for a in offline.active]
    np.testing.assert_array_equal(result.labels, offline.labels)
    if len(set(raw)) > 1:
        assert 0 < sum(o.active for o in result.objects) < len(raw)
    override = create_pipeline(settings(carded, positive_gate=EVERY, action="cut onion with knife"))
    assert override.thresholds()[0] == EVERY and all(o.active for o in override.process(frames[0]).objects)


def test_action_changes_apply_at_the_next_frame_and_bad_ones_keep_the_old(model, frames):
    pipeline = create_pipeline(settings(model, action="stir pan"))
    assert pipeline.process(frames[0]).action.narration == "stir pan"
    pipeline.request_action("wash plate with sponge")
    assert pipeline.action.narration == "stir pan"  # not yet: the worker applies it with the next frame
    assert pipeline.process(frames[1]).action.narration == "wash plate with sponge"
    with pytest.raises(ActionError):
        pipeline.request_action('{"action": 3}')
    assert pipeline.process(frames[1]).action.narration == "wash plate with sponge"
    pipeline.request_action("")
    assert pipeline.process(frames[1]).action is None


def test_a_batch_is_decided_with_the_action_it_ran_with_even_after_a_change(model, frames):
    """The node runs the engine for batch n+1 while it decides batch n on another thread: an action applied
    by the later run() must not relabel the earlier batch, and smoothing restarts with the new action."""
    pipeline = create_pipeline(settings(model, **{"positive_gate": EVERY, "action": "cut onion with knife",
                                                  "smoothing.enabled": True, "smoothing.alpha": 0.5}))
    first = pipeline.run([("head", frames[0]), ("wrist", frames[1])])
    pipeline.request_action("stir pan")
    second = pipeline.run([("head", frames[1])])
    old = list(pipeline.finish(first))
    assert [o.name for o in old[0].objects] == ["onion", "knife", "left hand", "right hand"]
    assert old[1].objects[0].prompt == "onion used in the action of cut onion with knife"
    assert all(r.action.narration == "cut onion with knife" for r in old)
    new = list(pipeline.finish(second))[0]
    assert new.action.narration == "stir pan" and new.objects[0].prompt == "pan used in the action of stir pan"
    assert [o.score for o in new.objects] == pytest.approx([o.raw_score for o in new.objects])  # not smoothed over


def test_gate_changes_at_runtime(model, frames):
    pipeline = create_pipeline(settings(model, positive_gate=EVERY, action="stir pan"))
    assert all(o.active for o in pipeline.process(frames[0]).objects)
    pipeline.update_settings(settings(model, positive_gate=1.0, action="stir pan"))
    result = pipeline.process(frames[0])
    assert not any(o.active for o in result.objects) and not result.mask.any()


def test_candidate_parameters_re_parse_the_action(model, frames):
    pipeline = create_pipeline(settings(model, action="stir pan"))
    pipeline.update_settings(settings(model, action="stir pan", objects=["lid"], always_objects=[""]))
    assert [o.name for o in pipeline.process(frames[0]).objects] == ["pan", "lid"]
    with pytest.raises(ActionError, match="at most 1"):
        pipeline.check_settings(settings(model, action="stir pan", max_objects=1))


def test_smoothing_keeps_scores_between_frames(model, frames):
    pipeline = create_pipeline(settings(model, **{"action": "stir pan", "smoothing.enabled": True,
                                                  "smoothing.alpha": 0.5}))
    first = pipeline.process(frames[0]).objects
    second = pipeline.process(frames[1]).objects
    for a, b in zip(first, second):
        assert b.score == pytest.approx(0.5 * a.raw_score + 0.5 * b.raw_score, abs=1e-6)


def test_configure_errors_name_the_problem(model, tmp_path):
    with pytest.raises(ConfigureError, match="not an exported model folder"):
        create_pipeline(settings(tmp_path))
    with pytest.raises(ConfigureError, match="input_size"):
        create_pipeline(settings(model, input_size=[192, 320]))
    with pytest.raises(ConfigureError, match="parameter action"):
        create_pipeline(settings(model, action='{"objects": 5}'))
    (tmp_path / "model_card.json").write_text("{}")
    with pytest.raises(ConfigureError, match="cannot load the model"):
        create_pipeline(settings(tmp_path))
