#!/usr/bin/python3
"""PyTorch reference for `make bench`: the same two networks, data, batch sizes and thread count as
bench/bench.c, so the table can print digitnet's figures beside PyTorch's. Prints JSON lines."""
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def optdigits(root):
    rows = []
    for name in ("optdigits.tra", "optdigits.tes"):
        rows.append(np.loadtxt(os.path.join(root, name), delimiter=",", dtype=np.int64))
    a = np.concatenate(rows)
    return (a[:, :64].reshape(-1, 1, 8, 8) / 16.0).astype(np.float32), a[:, 64]


def mnist_net():
    return nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))


def optdigits_net():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(64, 128), nn.Sigmoid(), nn.Dropout(0.25),
        nn.Linear(128, 512), nn.Sigmoid(), nn.Dropout(0.25), nn.Linear(512, 10))


def train_rate(net, x, y, batch, epochs, best_epoch):
    """Images/s of the best epoch (best_epoch) or of the whole run, and the whole run's seconds,
    as bench.c reports digitnet's."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    t0 = time.perf_counter()
    best = 0.0
    for _ in range(epochs):
        e0 = time.perf_counter()
        perm = torch.randperm(len(x))
        for s in range(0, len(x), batch):
            idx_ = perm[s:s + batch]
            opt.zero_grad()
            loss = loss_fn(net(x[idx_]), y[idx_])
            loss.backward()
            opt.step()
        best = max(best, len(x) / (time.perf_counter() - e0))
    seconds = time.perf_counter() - t0
    return (best if best_epoch else len(x) * epochs / seconds), seconds


def infer_rate(net, x):
    net.eval()
    best = 1e30
    with torch.no_grad():
        for _ in range(10):
            t0 = time.perf_counter()
            for s in range(0, 10000 - 999, 1000):
                net(x[s:s + 1000])
            best = min(best, time.perf_counter() - t0)
        lat = []
        for i in range(2000):
            t0 = time.perf_counter()
            net(x[i:i + 1])
            lat.append((time.perf_counter() - t0) * 1e6)
    lat.sort()
    return 10000 / best, lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def main():
    quick = "--quick" in sys.argv
    threads = 2
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    fm = "/usr/share/datasets/fashion-mnist"
    x = torch.from_numpy((idx(f"{fm}/train-images-idx3-ubyte.gz") / 255.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(idx(f"{fm}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xt = torch.from_numpy((idx(f"{fm}/t10k-images-idx3-ubyte.gz") / 255.0).astype(np.float32)).unsqueeze(1)
    # Three epochs of 60k images, the best one reported (the machine may be shared).
    rate, secs = train_rate(mnist_net(), x, y, 64, 1 if quick else 3, True)
    print(json.dumps({"net": "mnist", "what": "train", "threads": threads, "images_per_sec": rate, "seconds": secs}))
    rate, med, p99 = infer_rate(mnist_net(), xt)
    print(json.dumps({"net": "mnist", "what": "infer", "threads": threads, "images_per_sec": rate,
                      "latency_median_us": med, "latency_p99_us": p99}))
    ox, oy = optdigits("../shared/data/optdigits")
    ox, oy = torch.from_numpy(ox[:4496]), torch.from_numpy(oy[:4496])
    epochs = 20 if quick else 100
    rate, secs = train_rate(optdigits_net(), ox, oy, 128, epochs, False)
    print(json.dumps({"net": "optdigits", "what": "train", "threads": threads, "images_per_sec": rate,
                      "seconds": secs, "epochs": epochs}))
    oxt = torch.from_numpy(optdigits("../shared/data/optdigits")[0])
    rate, med, p99 = infer_rate(optdigits_net(), oxt)
    print(json.dumps({"net": "optdigits", "what": "infer", "threads": threads, "images_per_sec": rate,
                      "latency_median_us": med, "latency_p99_us": p99}))


if __name__ == "__main__":
    main()
