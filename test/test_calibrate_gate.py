"""`actiseg calibrate --gates`: the positive gate chosen with the mask threshold, from one pass of a real (tiny)
model; `actiseg infer --positive-gate`; `actiseg export --calibration` writing the chosen gate into the card."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.data import actionvos  # noqa: E402
from actiseg_ros.training.calibrate import choose_pair, parse_gates, read_calibration  # noqa: E402
from actiseg_ros.training.infer import TorchRunner, segment_outputs  # noqa: E402
from conftest import run_actiseg as run  # noqa: E402
from exported_model import tiny_export  # noqa: E402

pytestmark = pytest.mark.training  # real torch models, exports or training steps

COUNTS = ("TP", "TN", "FP", "FN")


def test_gate_choice_rule_and_parsing(tmp_path):
    rows = [{"gate": 0.75, "threshold": 0.5, "gIoU": 0.70}, {"gate": 0.75, "threshold": 0.3, "gIoU": 0.80},
            {"gate": 0.5, "threshold": 0.5, "gIoU": 0.80}, {"gate": 0.5, "threshold": 0.2, "gIoU": 0.80},
            {"gate": 0.3, "threshold": 0.5, "gIoU": None}]
    assert choose_pair(rows) == (0.75, 0.3)  # equal gIoU: the higher gate first, even at a lower threshold
    rows.append({"gate": 0.3, "threshold": 0.1, "gIoU": 0.81})
    assert choose_pair(rows) == (0.3, 0.1)  # a better score wins whatever its gate
    assert choose_pair([{"gate": 0.5, "threshold": 0.2, "gIoU": 0.8},
                        {"gate": 0.5, "threshold": 0.4, "gIoU": 0.8}]) == (0.5, 0.4)
    with pytest.raises(ValueError):
        choose_pair([{"gate": 0.5, "threshold": 0.5, "gIoU": None}])
    assert parse_gates("0.3, 0.75,0.3") == [0.75, 0.3]
    for bad in ("", "0.5,x", "0", "1", "1.2"):
        with pytest.raises(ValueError, match="gates"):
            parse_gates(bad)
    old = tmp_path / "old.json"  # written before gates were calibrated: the card keeps its default gate
    old.write_text(json.dumps({"chosen": 0.2, "split": "val", "criterion": "gIoU", "rows": []}))
    assert read_calibration(old)["positive_gate"] is None and read_calibration(old)["mask_threshold"] == 0.2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"chosen": 0.2, "chosen_gate": 1.5}))
    with pytest.raises(ValueError, match="chosen_gate"):
        read_calibration(bad)


@pytest.fixture(scope="module")
def model_and_gates(tiny_data, tmp_path_factory):
    """The tiny exported model's checkpoint, and two gates read off its own mean positive scores on val_human:
    one above every object's score (nothing active) and one below every score (everything active)."""
    checkpoint = tiny_export(tmp_path_factory) / "model.pt"
    runner = TorchRunner.from_checkpoint(checkpoint, threads=1)
    scores = []
    for segment in actionvos.read_split(tiny_data, "val_human").segments:
        scores.extend(1.0 / (1.0 + np.exp(-segment_outputs(runner, tiny_data, "val_human", segment).positive_logits)))
    low, high = float(min(scores)), float(max(scores))
    assert high < 1.0 and low > 0.0
    return checkpoint, round((high + 1.0) / 2, 6), round(low / 2, 6)


def test_calibrate_sweeps_gates_from_one_pass_as_infer_and_eval_score_them(model_and_gates, tiny_data, tmp_path):
    checkpoint, above_all, below_all = model_and_gates
    report_path = tmp_path / "calibration.json"
    result = run(["calibrate", "--model", str(checkpoint), "--data", str(tiny_data), "--split", "val_human",
                  "--thresholds", "0.5", "--gates", "%s,%s" % (below_all, above_all), "--json", str(report_path),
                  "--threads", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert [(r["gate"], r["threshold"]) for r in report["rows"]] == [(above_all, 0.5), (below_all, 0.5)]
    assert (report["chosen_gate"], report["chosen"]) == choose_pair(report["rows"])
    nothing, everything = report["rows"]
    # No object reaches the high gate: every mask is empty. Every object passes the low one: masks appear
    # (a sample counts as TP/FP by its mask's area, so some active objects still have empty masks).
    assert nothing["TP"] == nothing["FP"] == 0 and nothing["FN"] > 0
    assert everything["TP"] + everything["FP"] > 0 and everything["gIoU"] != nothing["gIoU"]
    for row in report["rows"]:  # each pair's scores are the ones infer + eval give with that gate and threshold
        pred, scores = tmp_path / ("pred%s" % row["gate"]), tmp_path / ("scores%s.json" % row["gate"])
        result = run(["infer", "--data", str(tiny_data), "--split", "val_human", "--out", str(pred), "--model",
                      str(checkpoint), "--mask-threshold", "0.5", "--positive-gate", str(row["gate"]),
                      "--threads", "1"])
        assert result.returncode == 0, result.stderr[-3000:]
        assert run(["eval", "--pred", str(pred), "--data", str(tiny_data), "--split", "val_human",
                    "--json", str(scores)]).returncode == 0
        evaluated = json.loads(scores.read_text())
        for key in ("p_mIoU", "n_mIoU", "p_cIoU", "n_cIoU", "gIoU", "acc") + COUNTS:
            assert row[key] == pytest.approx(evaluated[key], nan_ok=True), key

    result = run(["infer", "--data", str(tiny_data), "--out", str(tmp_path / "bad"), "--model", str(checkpoint),
                  "--positive-gate", "1.5"])
    assert result.returncode != 0 and "--positive-gate must lie strictly between 0 and 1" in result.stderr


def test_calibrate_without_gates_keeps_the_models_own_and_export_writes_the_chosen_gate(
        model_and_gates, tiny_data, tmp_path):
    checkpoint, above_all, _below_all = model_and_gates
    default_path = tmp_path / "default.json"
    result = run(["calibrate", "--model", str(checkpoint), "--data", str(tiny_data), "--split", "val_human",
                  "--thresholds", "0.5,0.3", "--json", str(default_path), "--threads", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    default = json.loads(default_path.read_text())
    assert default["chosen_gate"] == 0.75 and {r["gate"] for r in default["rows"]} == {0.75}

    # A calibration whose chosen gate is the high one: the exported card carries it, and infer on the exported
    # folder (which reads the card, as the node does) then calls no object active.
    gated = dict(default, chosen_gate=above_all, chosen=0.3)
    gated_path = tmp_path / "gated.json"
    gated_path.write_text(json.dumps(gated))
    exported = tmp_path / "exported"
    result = run(["export", "--checkpoint", str(checkpoint), "--out", str(exported), "--calibration",
                  str(gated_path), "--text-fp32", "--vocabulary", "synthetic"])
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((exported / "model_card.json").read_text())
    assert card["thresholds"] == {"positive_gate": above_all, "mask": 0.3}
    assert card["calibration"]["positive_gate"] == above_all
    pred, scores = tmp_path / "pred", tmp_path / "scores.json"
    assert run(["infer", "--data", str(tiny_data), "--split", "val_human", "--out", str(pred), "--model",
                str(exported), "--threads", "1"]).returncode == 0
    assert run(["eval", "--pred", str(pred), "--data", str(tiny_data), "--split", "val_human",
                "--json", str(scores)]).returncode == 0
    evaluated = json.loads(scores.read_text())
    assert evaluated["TP"] == evaluated["FP"] == 0 and evaluated["FN"] > 0
