"""`actiseg bench`: MAC counting (hand-checked formulas and a hand-built graph), timing statistics, and a
real short run on an exported model writing the JSON records."""
import argparse
import json
import sys

import numpy as np
import pytest

from actiseg_ros.inference import bench
from exported_model import tiny_export

pytestmark = pytest.mark.training  # real torch models, exports or training steps


def test_node_macs_formulas():
    # Conv: 1x3x8x8 -> 1x4x8x8 with a 3x3 kernel: every output value is 3*3*3 MACs.
    assert bench.node_macs("Conv", [[1, 3, 8, 8], [4, 3, 3, 3]], [1, 4, 8, 8], {}) == 4 * 64 * 27
    # Depthwise (group = channels): weight (4, 1, 3, 3).
    assert bench.node_macs("Conv", [[1, 4, 8, 8], [4, 1, 3, 3]], [1, 4, 8, 8], {"group": 4}) == 4 * 64 * 9
    # Batched attention-style MatMul (B, h, L, d) x (B, h, d, L).
    assert bench.node_macs("MatMul", [[2, 4, 32, 16], [2, 4, 16, 32]], [2, 4, 32, 32], {}) == 2 * 4 * 32 * 32 * 16
    assert bench.node_macs("Gemm", [[3, 40], [5, 40]], [3, 5], {"transB": 1}) == 3 * 5 * 40
    assert bench.node_macs("Gemm", [[40, 3], [40, 5]], [3, 5], {"transA": 1}) == 3 * 5 * 40
    with pytest.raises(ValueError, match="no MAC formula for Relu"):
        bench.node_macs("Relu", [[1]], [1], {})


def test_graph_macs_sums_only_mac_ops_and_needs_every_shape():
    nodes = [("Conv", ["x", "w"], ["y"], {}), ("Relu", ["y"], ["z"], {}), ("MatMul", ["z2", "m"], ["out"], {})]
    shapes = {"x": [1, 3, 8, 8], "w": [4, 3, 3, 3], "y": [1, 4, 8, 8], "z2": [1, 4, 64], "m": [64, 10],
              "out": [1, 4, 10]}
    assert bench.graph_macs(nodes, shapes) == 4 * 64 * 27 + 4 * 10 * 64
    del shapes["z2"]
    with pytest.raises(ValueError, match="MatMul node has values of unknown shape: z2"):
        bench.graph_macs(nodes, shapes)


def test_graph_stats_on_a_hand_built_graph(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(size=(4, 3, 3, 3)), "dw": rng.normal(size=(4, 1, 3, 3)), "m": rng.normal(size=(64, 10)),
               "g": rng.normal(size=(5, 40)), "gb": rng.normal(size=(5,))}
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    initializers.append(numpy_helper.from_array(np.array([0, 4, 64], np.int64), "shape"))  # not a parameter
    nodes = [helper.make_node("Conv", ["x", "w"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c1", "dw"], ["c2"], pads=[1, 1, 1, 1], group=4),
             helper.make_node("Reshape", ["c2", "shape"], ["r"]),
             helper.make_node("MatMul", ["r", "m"], ["mm"]),
             helper.make_node("Flatten", ["mm"], ["f"]),
             helper.make_node("Gemm", ["f", "g", "gb"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    for batch in (1, 3):
        stats = bench.graph_stats(path, {"x": np.zeros((batch, 3, 8, 8), np.float32)})
        macs = batch * (4 * 64 * 27 + 4 * 64 * 9 + 4 * 10 * 64 + 5 * 40)
        assert stats["macs"] == macs and stats["gflops"] == pytest.approx(2 * macs / 1e9)
        assert stats["params"] == sum(v.size for v in weights.values())


def test_summarize_and_parse_size():
    stats = bench.summarize([0.010] * 19 + [0.110])
    assert stats["p50_ms"] == pytest.approx(10.0)
    assert stats["p95_ms"] == pytest.approx(10.0 + 0.05 * 100, rel=0.01)  # numpy linear interpolation
    assert stats["hz"] == pytest.approx(20 / 0.3)
    with pytest.raises(ValueError):
        bench.summarize([])
    assert bench.parse_size("1280x720") == (1280, 720)
    for bad in ("1280", "0x5", "axb"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_size(bad)


def test_paced_calls_start_one_period_apart():
    starts = []

    def call():
        starts.append(__import__("time").perf_counter())

    result = bench.time_calls(call, iterations=5, warmup=2, period=0.02)
    timed = starts[2:]  # the warm-up calls are not paced
    assert len(timed) == 5 and result["p50_ms"] >= 0
    gaps = np.diff(timed)
    assert (gaps >= 0.02 - 1e-3).all(), gaps  # time.sleep never returns early by more than clock granularity
    starts.clear()
    bench.time_calls(call, iterations=5, warmup=0)
    assert np.diff(starts).sum() < 0.05  # unpaced: back to back (paced, the same 4 gaps take >= 0.076 s)


def test_camera_frame_is_deterministic():
    frame = bench.camera_frame(64, 48)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, bench.camera_frame(64, 48))
    assert frame.std() > 20


def test_bench_command_writes_records(tmp_path_factory, tmp_path, capsys):
    model = tiny_export(tmp_path_factory) / "model"
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / "bench.json"
    args = parser.parse_args(["--json", str(out), "--model", str(model), "--backends", "ort-cpu",
                              "--sizes", "160x120", "90x160", "--k", "1", "3", "--iterations", "3", "--warmup", "1"])
    assert bench.main(args) == 0
    records = json.loads(out.read_text())
    assert [(r["path"], r["input_size"], r["k"]) for r in records] == [
        ("text", "1 prompts x 32 tokens", 1), ("engine", "96x64", 1), ("camera", "160x120", 1), ("camera", "90x160", 1),
        ("text", "3 prompts x 32 tokens", 3), ("engine", "96x64", 3), ("camera", "160x120", 3), ("camera", "90x160", 3)]
    for record in records:
        assert {"backend", "input_size", "k", "p50_ms", "p95_ms", "hz", "params", "gflops"} <= set(record)
        assert record["backend"] == "ort-cpu" and record["providers"][0] == "CPUExecutionProvider"
        assert 0 < record["p50_ms"] <= record["p95_ms"] and record["hz"] > 0 and record["cpu_p50_ms"] > 0
    by_key = {(r["path"], r["k"], r["input_size"]): r for r in records}
    text1, text3 = by_key[("text", 1, "1 prompts x 32 tokens")], by_key[("text", 3, "3 prompts x 32 tokens")]
    assert 22e6 < text1["params"] < 23e6  # MiniLM-L6 without its pooler
    assert text3["gflops"] == pytest.approx(3 * text1["gflops"], rel=1e-3)
    engine1, engine3 = by_key[("engine", 1, "96x64")], by_key[("engine", 3, "96x64")]
    assert engine3["gflops"] > engine1["gflops"] > 0 and engine1["params"] == engine3["params"]
    printed = capsys.readouterr().out
    assert "wrote 8 records" in printed and "ort-cpu" in printed


def test_bench_names_a_backend_that_cannot_run(tmp_path_factory, tmp_path):
    from actiseg_ros.inference.engines.select import missing_for, probe_availability

    if missing_for("tensorrt", probe_availability()) is None:
        pytest.skip("native TensorRT is available here")
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--json", str(tmp_path / "b.json"), "--model",
                              str(tiny_export(tmp_path_factory) / "model"),
                              "--backends", "tensorrt", "--no-flops", "--iterations", "1"])
    with pytest.raises(SystemExit, match="'tensorrt' is not available"):
        bench.main(args)


def test_bench_without_onnx_still_times(tmp_path_factory, tmp_path, monkeypatch, capsys):
    model = tiny_export(tmp_path_factory) / "model"
    monkeypatch.setitem(sys.modules, "onnx", None)  # as on a robot: onnx is not a runtime dependency
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / "bench.json"
    args = parser.parse_args(["--json", str(out), "--model", str(model), "--backends", "ort-cpu", "--sizes", "64x48",
                              "--k", "1", "--iterations", "1", "--warmup", "0"])
    assert bench.main(args) == 0
    skipped = "parameter and FLOP counts skipped: parameter and FLOP counts need the Python package 'onnx'"
    assert skipped in capsys.readouterr().out
    records = json.loads(out.read_text())
    assert len(records) == 3 and all(r["gflops"] is None and r["params"] is None for r in records)
