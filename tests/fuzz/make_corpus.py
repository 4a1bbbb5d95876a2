#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/ from the real data in ../shared/data.

Run from the project root: python3 tests/fuzz/make_corpus.py [path/to/digitnet]. Every file is a
small piece of a real file (a few MNIST digits, a few optdigits rows) or a real model trained for
one epoch; all are valid, so the regression suite expects each to load. The JPEG seeds
(image/*.jpg) were written once with libjpeg from the same MNIST digits and are kept as they are.
"""
import gzip
import os
import struct
import subprocess
import sys
import tempfile
import zlib

DATA = "../shared/data"
OUT = "tests/fuzz/corpus"


def write(target, name, data):
    path = os.path.join(OUT, target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    assert len(data) < 20000, (path, len(data))


def mnist(n, which="t10k"):
    """The first n images (28x28 bytes each) and labels of an MNIST file pair."""
    with gzip.open(f"{DATA}/mnist-10k/{which}-images-idx3-ubyte.gz") as f:
        head = f.read(16)
        images = [f.read(784) for _ in range(n)]
    with gzip.open(f"{DATA}/mnist-10k/{which}-labels-idx1-ubyte.gz") as f:
        f.read(8)
        labels = f.read(n)
    assert struct.unpack(">IIII", head)[0] == 0x803
    return images, labels


def idx_images(images, rows, cols):
    return struct.pack(">IIII", 0x803, len(images), rows, cols) + b"".join(images)


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def idx_input(labels_file, images_file):
    """The idx target's input: u16 little-endian length of the labels file, labels, images."""
    return struct.pack("<H", len(labels_file)) + labels_file + images_file


def make_idx():
    images, labels = mnist(20)
    write("idx", "t10k-raw-3", idx_input(idx_labels(labels[:3]), idx_images(images[:3], 28, 28)))
    write("idx", "t10k-gz-20", idx_input(gzip.compress(idx_labels(labels), mtime=0),
                                         gzip.compress(idx_images(images, 28, 28), mtime=0)))
    train, train_labels = mnist(8, "train")
    write("idx", "train-gz-images-raw-labels-8",
          idx_input(idx_labels(train_labels), gzip.compress(idx_images(train, 28, 28), mtime=0)))
    # The same digits at half size (every second pixel), so that the seeds do not all say 28x28.
    half = [bytes(img[r * 28 + c] for r in range(0, 28, 2) for c in range(0, 28, 2)) for img in images[:6]]
    write("idx", "t10k-raw-14x14-6", idx_input(idx_labels(labels[:6]), idx_images(half, 14, 14)))


def make_optdigits():
    with open(f"{DATA}/optdigits/optdigits.tra", "rb") as f:
        tra = f.read().split(b"\n")
    with open(f"{DATA}/optdigits/optdigits.tes", "rb") as f:
        tes = f.read().split(b"\n")
    write("optdigits", "tra-6", b"\n".join(tra[:6]) + b"\n")
    write("optdigits", "tes-3-crlf", b"\r\n".join(tes[:3]) + b"\r\n")
    header = b",".join([b"Attribute%d" % (i + 1) for i in range(64)] + [b"class"])
    write("optdigits", "data-csv-bom-4", b"\xef\xbb\xbf" + header + b"\r\n" + b"\r\n".join(tra[10:14]) + b"\r\n")
    write("optdigits", "tes-2-no-final-newline-blank-lines", b"\n" + tes[5] + b"\n\n" + tes[6])


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, depth, color_type, rows, palette=None, trns=None):
    """A PNG from already packed rows (each without its filter byte)."""
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    if palette:
        out += png_chunk(b"PLTE", palette)
    if trns:
        out += png_chunk(b"tRNS", trns)
    raw = b"".join(bytes([0]) + row for row in rows)
    return out + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")


def bmp(width, height, bpp, rows, palette=b""):
    """A bottom-up BMP (BITMAPINFOHEADER) from top-down packed rows, padded here to 4 bytes."""
    stride = (width * bpp + 31) // 32 * 4
    pixels = b"".join(row + b"\0" * (stride - len(row)) for row in reversed(rows))
    offset = 14 + 40 + len(palette)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, len(pixels), 2835, 2835,
                       len(palette) // 4, 0)
    return head + info + palette + pixels


def make_images():
    images, _ = mnist(4)
    d = images[0]  # a 7
    grey = [d[r * 28:(r + 1) * 28] for r in range(28)]
    inverted = [bytes(255 - v for v in row) for row in grey]  # dark ink on white, as people draw
    write("image", "digit-grey.png", png(28, 28, 8, 0, inverted))
    rgba = [b"".join(bytes([v, v // 2, 255 - v, v]) for v in row) for row in grey]  # ink on transparent
    write("image", "digit-rgba.png", png(28, 28, 8, 6, rgba))
    palette = b"".join(bytes([i * 17, i * 17, i * 17]) for i in range(16))
    packed4 = [bytes((row[c] >> 4) << 4 | row[c + 1] >> 4 for c in range(0, 28, 2)) for row in inverted]
    write("image", "digit-palette4.png", png(28, 28, 4, 3, packed4, palette, bytes([255] * 15 + [0])))
    grey16 = [b"".join(struct.pack(">H", v * 257) for v in row) for row in inverted]
    write("image", "digit-grey16.png", png(28, 28, 16, 0, grey16))
    write("image", "digit.pgm", b"P5\n# a comment\n28 28\n255\n" + b"".join(inverted))
    write("image", "digit-ascii.pgm",
          b"P2\n28 28\n15\n" + b"\n".join(b" ".join(b"%d" % (v >> 4) for v in row) for row in inverted) + b"\n")
    write("image", "digit.ppm", b"P6 28 28 255\n" + b"".join(bytes([v, v, v]) for row in inverted for v in row))
    bits = [bytes(sum((row[c + k] > 127) << (7 - k) for k in range(8) if c + k < 28) for c in range(0, 28, 8))
            for row in grey]
    write("image", "digit.pbm", b"P4\n28 28\n" + b"".join(bits))
    write("image", "digit-ascii.pbm",
          b"P1\n28 28\n" + b"\n".join(b"".join(b"1" if v > 127 else b"0" for v in row) for row in grey) + b"\n")
    write("image", "digit-24.bmp", bmp(28, 28, 24, [b"".join(bytes([v, v, v]) for v in row) for row in inverted]))
    pal256 = b"".join(bytes([i, i, i, 0]) for i in range(256))
    write("image", "digit-8.bmp", bmp(28, 28, 8, inverted, pal256))
    write("image", "digit-1.bmp", bmp(28, 28, 1, bits, b"\xff\xff\xff\0\0\0\0\0"))
    write("image", "digit-32.bmp", bmp(28, 28, 32, [b"".join(bytes([v, v, v, 255]) for v in row) for row in inverted]))


SMALL_SPECS = {
    "tiny-conv": "input 8x8x1\nconv2d 4 3x3 same relu\nmaxpool 2x2\nflatten\ndense 10 softmax\n",
    "tiny-bn": "input 8x8x1\nconv2d 2 3x3 valid stride=2 tanh\nbatchnorm\nflatten\ndropout 0.2\n"
               "dense 12 sigmoid\ndense 10 softmax\n",
}

ALL_KINDS_SPEC = """# every layer kind and option once
input 12x12x2
conv2d 4 3x3 same stride=2 tanh
batchnorm momentum=0.9 epsilon=0.01
relu
maxpool 2x2 stride=1 same
conv2d 3 1x2 valid
sigmoid
flatten
dropout 0.1
dense 16 linear
tanh
dense 10
softmax
"""


def make_specs():
    for name in ("mnist", "optdigits"):
        with open(f"models/{name}.cnn", "rb") as f:
            write("spec", f"{name}.cnn", f.read())
    write("spec", "all-kinds.cnn", ALL_KINDS_SPEC.encode())
    for name, text in SMALL_SPECS.items():
        write("spec", f"{name}.cnn", text.encode())


def make_models(digitnet):
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in SMALL_SPECS.items():
            spec = os.path.join(tmp, name + ".cnn")
            with open(spec, "w") as f:
                f.write(text)
            out = os.path.join(tmp, name + ".safetensors")
            args = [digitnet, "train", "--data", "optdigits", "--model", spec, "--epochs", "1", "--test-split", "0.95", "--out", out]
            if name == "tiny-conv":
                args += ["--checkpoint", os.path.join(tmp, "ck.safetensors")]
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
            with open(out, "rb") as f:
                write("model", name + ".safetensors", f.read())
        with open(os.path.join(tmp, "ck.safetensors"), "rb") as f:
            write("model", "tiny-conv-checkpoint.safetensors", f.read())


if __name__ == "__main__":
    make_idx()
    make_optdigits()
    make_images()
    make_specs()
    make_models(sys.argv[1] if len(sys.argv) > 1 else "build/digitnet")
