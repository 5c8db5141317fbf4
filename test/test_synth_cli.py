import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actiseg_ros import cli
from actiseg_ros.data import actionvos
from actiseg_ros.data.synth_cli import parse_size

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

REPO = Path(__file__).resolve().parent.parent


def test_parse_size_accepts_width_x_height_and_names_bad_values():
    assert parse_size("427x240") == (427, 240)
    assert parse_size(" 97X61 ") == (97, 61)
    for bad in ("427", "x240", "427x", "-3x5", "12x4", "a by b"):
        with pytest.raises(ValueError, match="--size"):
            parse_size(bad)


def test_cli_writes_a_data_set_with_odd_size_and_a_contact_sheet(tmp_path, capsys):
    out = tmp_path / "synth"
    sheet = tmp_path / "sheet.png"
    assert cli.main(["synth", "--preset", "tiny", "--seed", "1", "--out", str(out), "--size", "99x57",
                     "--contact-sheet", str(sheet)]) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "negatives" in printed and "wrote 100 frames at 99x57" in printed
    segments = actionvos.read_split(out, "train").segments
    rgb = actionvos.read_image(actionvos.image_path(out, "train", segments[0].name, segments[0].sparse_frames[0]))
    assert rgb.shape == (57, 99, 3)
    info = json.loads((out / "synth_info.json").read_text())
    assert info["preset"] == "tiny" and info["seed"] == 1 and info["size"] == {"width": 99, "height": 57}
    assert info["splits"]["train"]["segments"] == 12
    assert sheet.stat().st_size > 1000


def test_cli_refuses_to_mix_into_an_existing_data_set_unless_told(tmp_path):
    out = tmp_path / "synth"
    stale = out / actionvos.IMAGES / "train" / "stale_sequence"
    stale.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="--overwrite"):
        cli.main(["synth", "--preset", "tiny", "--out", str(out)])
    assert cli.main(["synth", "--preset", "tiny", "--seed", "2", "--out", str(out), "--overwrite"]) == 0
    assert not stale.exists()
    assert (out / "notes.txt").read_text() == "mine"  # only the layout folders are replaced


def test_cli_rejects_a_bad_size_clearly(tmp_path):
    with pytest.raises(SystemExit, match="WIDTHxHEIGHT"):
        cli.main(["synth", "--preset", "tiny", "--out", str(tmp_path / "x"), "--size", "big"])


def test_cli_runs_as_a_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "actiseg_ros.cli", "synth", "--preset", "tiny", "--seed", "0",
                             "--out", str(tmp_path / "sub")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    for split in ("train", "val", "val_human"):
        assert actionvos.read_split(tmp_path / "sub", split).segments
