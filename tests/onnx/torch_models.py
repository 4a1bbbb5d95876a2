#!/usr/bin/python3
"""ONNX files for tests/onnx/run.sh, made by real producers (Debian's python3-torch and python3-onnx).

  torch_models.py build OUT_DIR     trains the reference networks R1 (optdigits) and R2 (MNIST) in
                                    PyTorch for an epoch or two, exports them with torch.onnx.export
                                    (NCHW), and writes PyTorch's test-set probabilities beside them;
                                    also a small net with BatchNorm, R2 laid out NHWC as tf2onnx writes
                                    Keras models (built with onnx.helper), and malformed files
  torch_models.py compare EXPECTED.npy DIGITNET.json
                                    prints {rows, same_class, max_abs_diff} of digitnet's predictions
                                    against the expected probabilities; exits 1 below 99.9% same class
                                    or above 1e-4
  torch_models.py check MODEL.onnx  onnx.checker.check_model(full_check=True) and the interface
"""
import gzip
import json
import os
import sys

import numpy as np

DATA = os.environ.get("DIGITNET_TEST_DATA", "../shared/data")


def optdigits(name):
    rows = np.loadtxt(os.path.join(DATA, "optdigits", name), delimiter=",", dtype=np.int64)
    return rows[:, :64].reshape(-1, 1, 8, 8).astype(np.float32) / 16.0, rows[:, 64]


def mnist(prefix):
    with gzip.open(os.path.join(DATA, "mnist-10k", prefix + "-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(DATA, "mnist-10k", prefix + "-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def build(out):
    import torch
    import torch.nn as nn
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    torch.set_num_threads(1)
    torch.manual_seed(0)

    def r1():  # models/optdigits.cnn
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Flatten(), nn.Linear(64, 128), nn.Sigmoid(), nn.Dropout(0.25),
            nn.Linear(128, 512), nn.Sigmoid(), nn.Dropout(0.25), nn.Linear(512, 10), nn.Softmax(dim=1))

    def r2():  # models/mnist.cnn, ending in logits as CrossEntropyLoss trains it
        return nn.Sequential(
            nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1600, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))

    def bn():  # batch normalisation after a convolution and after a dense layer
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(128, 32), nn.BatchNorm1d(32), nn.Tanh(), nn.Linear(32, 10), nn.Softmax(dim=1))

    def train(model, x, y, epochs, softmax_out, batch=64, lr=1e-3):
        opt = torch.optim.Adam(model.parameters(), lr)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for i in range(0, len(x), batch):
                idx = order[i:i + batch]
                out = model(x[idx])
                loss = nn.functional.nll_loss(torch.log(out + 1e-9), y[idx]) if softmax_out else \
                    nn.functional.cross_entropy(out, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()

    def export(model, x_test, name, logits):
        x = torch.from_numpy(x_test)
        torch.onnx.export(model, x[:2], os.path.join(out, name + ".onnx"), input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                          opset_version=13)
        with torch.no_grad():
            p = model(x)
            p = torch.softmax(p, 1) if logits else p
        np.save(os.path.join(out, name + ".npy"), p.numpy())
        return p.numpy()

    x_tra, y_tra = optdigits("optdigits.tra")
    x_tes, _ = optdigits("optdigits.tes")
    m1 = r1()
    train(m1, x_tra, y_tra, 2, True, batch=16, lr=3e-3)  # two epochs: small batches to get somewhere
    export(m1, x_tes, "torch_r1", False)
    m3 = bn()
    train(m3, x_tra, y_tra, 2, True, batch=16, lr=3e-3)
    export(m3, x_tes, "torch_bn", False)
    x_train, y_train = mnist("train")
    x_test, _ = mnist("t10k")
    m2 = r2()
    train(m2, x_train, y_train, 1, False)
    p2 = export(m2, x_test, "torch_r2", True)

    # R2 as tf2onnx writes a Keras model: NHWC input scaled to 0..1, Transpose around the NCHW ops,
    # a Reshape to (-1, 1600) of the NHWC tensor, MatMul + Add, Softmax. Weights from the PyTorch R2,
    # the first dense kernel's rows reordered from (C, H, W) to (H, W, C); expected output: PyTorch's.
    w = [t.detach().numpy() for t in m2.parameters()]
    dense1 = w[4].T.reshape(64, 5, 5, 64).transpose(1, 2, 0, 3).reshape(1600, 64)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (w[0], "conv1/kernel"), (w[1], "conv1/bias"), (w[2], "conv2/kernel"), (w[3], "conv2/bias"),
        (dense1, "dense/kernel"), (w[5], "dense/bias"), (w[6].T.copy(), "dense_1/kernel"), (w[7], "dense_1/bias"),
        (np.array([-1, 1600], np.int64), "flatten/shape")]]
    nodes = [
        helper.make_node("Transpose", ["input"], ["t0"], "conv1/transpose", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t0", "conv1/kernel", "conv1/bias"], ["c1"], "conv1", kernel_shape=[5, 5],
                         strides=[1, 1], dilations=[1, 1], auto_pad="VALID"),
        helper.make_node("Relu", ["c1"], ["r1"], "conv1/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], "max_pooling2d", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2/kernel", "conv2/bias"], ["c2"], "conv2", kernel_shape=[2, 2],
                         strides=[1, 1], auto_pad="VALID"),
        helper.make_node("Relu", ["c2"], ["r2"], "conv2/Relu"),
        helper.make_node("MaxPool", ["r2"], ["p2"], "max_pooling2d_1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["p2"], ["t1"], "max_pooling2d_1/transpose", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t1", "flatten/shape"], ["f"], "flatten/Reshape"),
        helper.make_node("MatMul", ["f", "dense/kernel"], ["d1"], "dense/MatMul"),
        helper.make_node("Add", ["d1", "dense/bias"], ["d1b"], "dense/BiasAdd"),
        helper.make_node("Relu", ["d1b"], ["d1r"], "dense/Relu"),
        helper.make_node("MatMul", ["d1r", "dense_1/kernel"], ["d2"], "dense_1/MatMul"),
        helper.make_node("Add", ["d2", "dense_1/bias"], ["d2b"], "dense_1/BiasAdd"),
        helper.make_node("Softmax", ["d2b"], ["dense_1"], "dense_1/Softmax", axis=-1)]
    graph = helper.make_graph(
        nodes, "tf2onnx", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["unk__6", 28, 28, 1])],
        [helper.make_tensor_value_info("dense_1", TensorProto.FLOAT, ["unk__7", 10])], inits)
    nhwc = helper.make_model(graph, producer_name="tf2onnx", opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(nhwc, full_check=True)
    onnx.save(nhwc, os.path.join(out, "nhwc_r2.onnx"))
    np.save(os.path.join(out, "nhwc_r2.npy"), p2)
    # The same graph for raw pixels 0..255 (its first kernel divided by 255): imported with
    # --input-scale 1, digitnet folds the factor back into the first convolution.
    raw_model = onnx.load(os.path.join(out, "nhwc_r2.onnx"))
    for t in raw_model.graph.initializer:
        if t.name == "conv1/kernel":
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) / np.float32(255), t.name))
    onnx.save(raw_model, os.path.join(out, "raw_r2.onnx"))
    np.save(os.path.join(out, "raw_r2.npy"), p2)

    # Malformed files, each from a good one.
    good = onnx.load(os.path.join(out, "torch_r1.onnx"))
    raw = good.SerializeToString()
    with open(os.path.join(out, "bad_truncated.onnx"), "wb") as f:
        f.write(raw[:len(raw) // 2])
    m = onnx.load(os.path.join(out, "torch_r1.onnx"))
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    relu.op_type, relu.name = "Gelu", "act_1"
    onnx.save(m, os.path.join(out, "bad_unknown_op.onnx"))
    m = onnx.load(os.path.join(out, "torch_r1.onnx"))
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    conv.name = "conv_1"
    kernel = next(t for t in m.graph.initializer if t.name == conv.input[1])
    kernel.raw_data = kernel.raw_data[:-4]  # one float short of (16, 1, 3, 3)
    onnx.save(m, os.path.join(out, "bad_initializer_size.onnx"))
    m = nhwc
    for t in m.graph.initializer:
        if t.name == "dense_1/kernel":
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t)[:, :9].copy(), t.name))
        if t.name == "dense_1/bias":
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t)[:9].copy(), t.name))
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 9
    onnx.save(m, os.path.join(out, "bad_nine_classes.onnx"))


def compare(expected_npy, digitnet_json):
    expected = np.load(expected_npy)
    rows = json.load(open(digitnet_json))
    got = np.zeros_like(expected)
    for r in rows:
        for t in r["top"]:
            got[r["index"], t["digit"]] = t["probability"]
    same = float(np.mean(got.argmax(1) == expected.argmax(1)))
    diff = float(np.abs(got - expected).max())
    print(json.dumps({"rows": len(rows), "same_class": same, "max_abs_diff": diff}))
    return 0 if len(rows) == len(expected) and same >= 0.999 and diff <= 1e-4 else 1


def check(path):
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    meta = {p.key: p.value for p in m.metadata_props}
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    out = [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    ok = (m.ir_version >= 7 and m.opset_import[0].version >= 13 and m.graph.input[0].name == "input"
          and m.graph.output[0].name == "probabilities" and isinstance(dims[0], str) and dims[3] == 1
          and out[1] == 10 and all(k in meta for k in ("spec", "raw_max", "class_names", "preprocess")))
    print(json.dumps({"ir_version": m.ir_version, "opset": m.opset_import[0].version, "input": dims,
                      "output": out, "metadata": sorted(meta)}))
    return 0 if ok else 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "build":
        os.makedirs(sys.argv[2], exist_ok=True)
        build(sys.argv[2])
        sys.exit(0)
    sys.exit(compare(sys.argv[2], sys.argv[3]) if cmd == "compare" else check(sys.argv[2]))
