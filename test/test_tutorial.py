"""The README's "Your own robot, your own labels" runs as written: the bash block between the tutorial markers
is executed, at a tiny scale set through its variables, in a fresh folder with real processes (replay_node,
actiseg record, the importers, a few real training steps, export with its parity check, the node in the demo).
Then its products are checked: the imported labels equal the stream's ground truth, the new objects reach the
model card's vocabulary, and the node ran the new model."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actiseg_ros.data import actionvos

pytestmark = [pytest.mark.ros, pytest.mark.training]

ROOT = Path(__file__).resolve().parent.parent
TINY = {"ACTIONS": "2", "SIZE": "160x120", "EVERY": "3", "SYNTH_SET": "--preset tiny",
        "TRAIN_SET": "--set epochs=1 --set max_steps=3 --set batch_size=2 --set mix_data=[] --set checkpoint_every=3",
        "DEMO_SET": "--actions 2 --size 160x120 --rate 10 --timeout 150"}


def tutorial_block() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- tutorial: own-robot -->\n```bash\n(.*?)```\n<!-- /tutorial -->", text, re.S)
    assert found, "README.md lost its tutorial block (the markers around the bash block)"
    return found.group(1)


def test_readme_tutorial_block_parses():
    block = tutorial_block()
    subprocess.run(["bash", "-n"], input=block, text=True, check=True)
    for command in ("actiseg record", "actiseg import bag", "actiseg import coco", "actiseg train --config finetune",
                    "actiseg export", "actiseg demo"):
        assert command in block


def test_readme_tutorial_runs_at_tiny_scale(tmp_path):
    env = dict(os.environ, **TINY)
    # `.venv/bin` first on the PATH, as the README says: its actiseg, replay_node and python
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    # The block runs from a checkout: its paths (models/default/actiseg_default.pt, the shipped training checkpoint
    # the fine-tuning starts from) are the repository's.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "default").symlink_to(ROOT / "models" / "default")
    script = tmp_path / "tutorial.sh"
    script.write_text("set -euo pipefail\n" + tutorial_block())
    out = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert out.returncode == 0, "tutorial failed:\n%s\n%s" % (out.stdout[-4000:], out.stderr[-6000:])

    # Step 4 reproduced the stream's ground truth exactly: the imported masks are the stand-in labels.
    from actiseg_ros.data.synth import SceneStream
    from actiseg_ros.tools.processes import read_manifest

    header, published, _ = read_manifest(tmp_path / "bags" / "kitchen_replay.jsonl")
    assert header["domain"] == "kitchen_b"
    stream = SceneStream(seed=header["seed"], size=(header["width"], header["height"]), actions=header["actions"],
                         domain="kitchen_b")
    source_of_stamp = {f["stamp_ns"]: f["source_index"] for f in published}
    data = tmp_path / "data" / "my_kitchen"
    segments = actionvos.read_split(data, "train").segments
    assert segments, "the COCO import wrote no training segment"
    checked = 0
    for segment in segments:
        stamps = json.loads((tmp_path / "data" / "my_kitchen_frames" / "Stamps" / ("%s.json" % segment.name))
                            .read_text())
        by_file = {Path(f["file"]).stem: f["stamp_ns"] for f in stamps["frames"]}
        for frame in segment.sparse_frames:
            truth = stream.render(source_of_stamp[by_file[Path(frame).stem]])
            labels = actionvos.read_label_png(actionvos.annotation_path(data, "train", segment.name, frame))
            names = {i: o.name for i, o in segment.objects.items()}
            truth_names = {i: o.name for i, o in truth.objects.items()}
            for object_id, name in names.items():  # ids may be renumbered: compare object by object, by name
                truth_id = next(i for i, n in truth_names.items() if n == name)
                assert np.array_equal(labels == object_id, truth.labels == truth_id), (segment.name, frame, name)
            checked += 1
    assert checked > 0

    # Step 6: the new objects are in the exported card's vocabulary (they were not in the shipped one).
    card = json.loads((tmp_path / "models" / "my_kitchen" / "model_card.json").read_text())
    shipped = json.loads((ROOT / "models" / "default" / "model_card.json").read_text())
    learnt = {o.name for s in segments for o in s.objects.values()}
    new_names = learnt - set(shipped.get("vocabulary") or [])
    assert new_names, "kitchen_b's actions named no object the shipped model lacks"
    assert new_names <= set(card["vocabulary"]), new_names - set(card["vocabulary"])

    # Step 7: the node ran the fine-tuned model on the kitchen_b stream and published outputs.
    report = json.loads((tmp_path / "runs" / "my_kitchen" / "demo.json").read_text())
    assert report["model"].endswith("models/my_kitchen")
    assert report["frames_segmented"] > 0 and report["mean_iou"] is not None
