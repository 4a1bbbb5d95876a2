#!/usr/bin/env python3
"""overflow_model.py IN OUT: a copy of the safetensors model IN with every float32 weight set to 3e38.
Each weight is finite, so the model loads; but the first layer's sums overflow to infinity and the
probabilities come out NaN. For the tests that predict and serve refuse to answer with them."""
import json
import struct
import sys

data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
body = bytearray(data[8 + n:])
for name, t in header.items():
    if name == "__metadata__" or t.get("dtype") != "F32":
        continue
    start, end = t["data_offsets"]
    body[start:end] = struct.pack("<f", 3e38) * ((end - start) // 4)
open(sys.argv[2], "wb").write(data[:8 + n] + bytes(body))
