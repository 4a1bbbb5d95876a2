#!/usr/bin/python3
"""Writes the seed corpus of the ONNX harness, tests/fuzz/corpus/onnx/, with Debian's python3-onnx.

Run from the project root: /usr/bin/python3 tests/fuzz/make_onnx_corpus.py. Three small valid models
with seeded random weights, each importable: an NCHW graph as torch.onnx.export writes it (Conv,
BatchNormalization, Relu, MaxPool, Flatten, Gemm with transB, Softmax), an NHWC graph as tf2onnx
writes it (Transpose, Conv, Reshape, MatMul + Add), and a flat (N, 64) one (Div, Gemm, Sigmoid, Dropout).
"""
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

OUT = "tests/fuzz/corpus/onnx"
rng = np.random.default_rng(0)


def f32(*shape):
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def save(name, nodes, inputs, output_dims, inits):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, inputs)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_dims)],
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    os.makedirs(OUT, exist_ok=True)
    data = model.SerializeToString()
    assert len(data) < 20000, (name, len(data))
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(data)


save("nchw", [
    helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["n"], "bn", epsilon=1e-5),
    helper.make_node("Relu", ["n"], ["r"], "relu"),
    helper.make_node("MaxPool", ["r"], ["p"], "pool", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Flatten", ["p"], ["f"], "flatten", axis=1),
    helper.make_node("Gemm", ["f", "d", "db"], ["l"], "fc", transB=1),
    helper.make_node("Softmax", ["l"], ["y"], "softmax", axis=1)],
    ["N", 1, 8, 8], ["N", 10],
    {"w": f32(3, 1, 3, 3), "b": f32(3), "g": f32(3) + 1, "be": f32(3), "m": f32(3), "v": np.abs(f32(3)) + 0.5,
     "d": f32(10, 48), "db": f32(10)})
save("nhwc", [
    helper.make_node("Transpose", ["x"], ["t"], "to_nchw", perm=[0, 3, 1, 2]),
    helper.make_node("Conv", ["t", "w", "b"], ["c"], "conv", kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"),
    helper.make_node("Tanh", ["c"], ["a"], "tanh"),
    helper.make_node("Transpose", ["a"], ["u"], "to_nhwc", perm=[0, 2, 3, 1]),
    helper.make_node("Reshape", ["u", "shape"], ["f"], "flatten"),
    helper.make_node("MatMul", ["f", "d"], ["l"], "dense"),
    helper.make_node("Add", ["l", "db"], ["z"], "bias"),
    helper.make_node("Softmax", ["z"], ["y"], "softmax", axis=-1)],
    ["N", 8, 8, 1], ["N", 10],
    {"w": f32(4, 1, 2, 2), "b": f32(4), "shape": np.array([-1, 64], np.int64), "d": f32(64, 10), "db": f32(10)})
save("flat", [
    helper.make_node("Div", ["x", "s"], ["q"], "scale"),
    helper.make_node("Gemm", ["q", "d", "db"], ["h"], "hidden"),
    helper.make_node("Sigmoid", ["h"], ["a"], "sigmoid"),
    helper.make_node("Dropout", ["a"], ["o"], "dropout"),
    helper.make_node("Gemm", ["o", "e", "eb"], ["y0"], "out"),
    helper.make_node("Softmax", ["y0"], ["y"], "softmax")],
    ["N", 64], ["N", 10],
    {"s": np.array(16.0, np.float32), "d": f32(64, 12), "db": f32(12), "e": f32(12, 10), "eb": f32(10)})
