"""Int8 weight-only quantization of an exported ONNX graph (the frozen MiniLM text encoder), so the shipped
encoder fits in git (90 MB fp32 -> 23 MB) and a colcon build of a clone needs no generated file.

Weights are stored as symmetric int8 with one float32 scale per output channel; activations stay float32:
  MatMul(x, W)  ->  MatMul(x, DequantizeLinear(W_int8, scale[N], zero[N], axis=1))
  Gather(E, ids) -> Mul(Cast(Gather(E_int8, ids), float), Gather(scale[V, 1], ids))   (one scale per row)
Only standard ONNX ops at the graph's own opset (DequantizeLinear takes `axis` since opset 13), so every
ONNX Runtime build and execution provider can run it.

Why not onnxruntime.quantization (measured on all-MiniLM-L6-v2, prompt features against fp32, the card's
vocabulary x 3 narrations): quantize_dynamic quantizes the activations too, per tensor, and BERT's outlier
features do not survive it: cosine min 0.945 (per-tensor weights) and 0.987 (per-channel), still < 0.99
with any one of the six MatMul roles or any one layer left in float (<= 33.6 MB); its MatMulNBits path
at 8 bits quantizes MatMul only (Gather: 4 bits only; 58.9 MB), as a com.microsoft contrib op at opset 21.
"""
from __future__ import annotations

import numpy as np

QMAX = 127  # symmetric int8: -127..127, zero point 0


def symmetric_int8(weights: np.ndarray, axis: int) -> tuple:
    """-> (int8 array, float32 scales along `axis`) with weights ~= int8 * scale (pure). A channel of zeros
    gets scale 1 so dequantizing never divides by zero."""
    reduce = tuple(i for i in range(weights.ndim) if i != axis)
    peak = np.abs(weights).max(axis=reduce).astype(np.float32)
    scale = np.where(peak > 0, peak / QMAX, 1.0).astype(np.float32)
    shape = [1] * weights.ndim
    shape[axis] = -1
    quantized = np.clip(np.rint(weights / scale.reshape(shape)), -QMAX, QMAX).astype(np.int8)
    return quantized, scale


def quantize_weights_int8(model, min_elements: int = 4096):
    """Rewrite `model` (an onnx.ModelProto, changed in place and returned) with int8 weights for every
    MatMul whose second input and every Gather (axis 0) whose data is a 2-D float32 initializer of at least
    `min_elements` values. Returns (model, report): the rewritten nodes, the int8 weights, the float32 weights
    left as they were and the float32 scales added."""
    from onnx import NodeProto, TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}

    def eligible(name) -> bool:
        init = inits.get(name)
        return (init is not None and init.data_type == TensorProto.FLOAT and len(init.dims) == 2
                and int(np.prod(init.dims)) >= min_elements)

    dequantized: dict = {}  # MatMul weight name -> its DequantizeLinear output (shared by every user)
    row_quantized: dict = {}  # Gather table name -> (int8 name, scale name)
    head, ordered, new_inits = [], [], []  # head: the DequantizeLinear nodes (inputs are all initializers)
    report = {"matmul": 0, "gather": 0, "int8_weights": 0, "float_weights_left": 0, "scales": 0}
    for original in graph.node:
        node = NodeProto()
        node.CopyFrom(original)
        ordered.append(node)
        if node.op_type == "MatMul" and eligible(node.input[1]):
            name = node.input[1]
            if name not in dequantized:
                quantized, scale = symmetric_int8(numpy_helper.to_array(inits[name]), axis=1)
                new_inits += [numpy_helper.from_array(quantized, name + "_int8"),
                              numpy_helper.from_array(scale, name + "_scale"),
                              numpy_helper.from_array(np.zeros(scale.shape, np.int8), name + "_zero")]
                dequantized[name] = name + "_dequantized"
                head.append(helper.make_node("DequantizeLinear", [name + "_int8", name + "_scale", name + "_zero"],
                                             [dequantized[name]], name=name + "_DequantizeLinear", axis=1))
                report["int8_weights"] += quantized.size
            node.input[1] = dequantized[name]
            report["matmul"] += 1
        elif (node.op_type == "Gather" and eligible(node.input[0])
              and all(a.name != "axis" or a.i == 0 for a in node.attribute)):
            name = node.input[0]
            if name not in row_quantized:
                quantized, scale = symmetric_int8(numpy_helper.to_array(inits[name]), axis=0)
                new_inits += [numpy_helper.from_array(quantized, name + "_int8"),
                              numpy_helper.from_array(scale.reshape(-1, 1), name + "_scale")]
                row_quantized[name] = (name + "_int8", name + "_scale")
                report["int8_weights"] += quantized.size
            table, scales = row_quantized[name]
            output, prefix = node.output[0], node.name or node.output[0]
            node.input[0], node.output[0] = table, prefix + "_int8_rows"
            # Right after the Gather they read, so the node list stays in topological order.
            ordered += [
                helper.make_node("Cast", [node.output[0]], [prefix + "_rows"], name=prefix + "_Cast",
                                 to=TensorProto.FLOAT),
                helper.make_node("Gather", [scales, node.input[1]], [prefix + "_row_scales"],
                                 name=prefix + "_GatherScale", axis=0),
                helper.make_node("Mul", [prefix + "_rows", prefix + "_row_scales"], [output], name=prefix + "_Scale"),
            ]
            report["gather"] += 1
    ordered = head + ordered
    replaced = set(dequantized) | set(row_quantized)
    still_used = {name for node in ordered for name in node.input}
    kept = [init for init in graph.initializer if init.name not in replaced or init.name in still_used]
    del graph.node[:]
    graph.node.extend(ordered)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    report["float_weights_left"] = int(sum(np.prod(i.dims, dtype=np.int64) for i in kept  # biases, norms, small
                                           if i.data_type == TensorProto.FLOAT))
    report["scales"] = int(sum(np.prod(i.dims, dtype=np.int64) for i in new_inits if i.data_type == TensorProto.FLOAT))
    return model, report
