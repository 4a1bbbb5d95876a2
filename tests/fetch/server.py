#!/usr/bin/env python3
"""A small HTTP server for tests/fetch/run.sh: real data files under the paths of the official mirrors,
with Range support, and test modes that misbehave the ways real servers do.

    server.py DATA_DIR PORT_FILE LOG_FILE

Listens on a free port of 127.0.0.1 (written to PORT_FILE once ready) and logs one line per request
to LOG_FILE: "MODE PATH RANGE STATUS". A URL is /MODE/<path as on the official mirror>:

    /mnist/<file>                          ossci-datasets' MNIST folder
    /cvdf-datasets/mnist/<file>            the Google Cloud copy of MNIST
    /static/public/80/<zip name>           UCI's archive for optdigits (re-packed here with zipfile
                                           from DATA_DIR/optdigits: the real files, a new zip)
    /ml/machine-learning-databases/optdigits/optdigits.{tra,tes}   UCI's older folder, raw files
    /<file>                                the Fashion-MNIST bucket (when Debian's copy is installed)

MNIST comes from DATA_DIR/mnist-10k: the t10k files are the canonical ones, the train files are a
10,000-image subset, so they are *not* the published files and a correct client refuses them.
Fashion-MNIST comes from /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist), whose
gzip headers Debian rewrote; the mirror's exact bytes are rebuilt by putting back the original header
(file name and time stamp) and are served only if they match the published MD5.

Modes: good; corrupt (one byte changed, same size; for the zip, a valid archive with one digit of
optdigits.tes changed); html (200, text/html error page); sniff (the same page as
application/octet-stream); missing (404); cut (sends half of what was asked, then closes); cutonce
(cut only the first request for a path); norange (ignores Range, always 200 with the whole file);
loop (302 to itself, forever); stall (sends a little, then nothing); trickle (the whole body at about
1.5 KB/s: above the client's stall limit, but far too slow).
"""
import gzip
import hashlib
import http.server
import io
import os
import socketserver
import struct
import sys
import threading
import time
import zipfile

ZIP_NAME = "optical+recognition+of+handwritten+digits.zip"
MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
# Fashion-MNIST as published: MD5 from the data set's README, and the gzip time stamps of the
# originals (found by matching that MD5; Debian's copies carry a 2020 one instead).
FASHION = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 1504176606),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", 1504176606),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", 1504176627),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", 1504176627),
}
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Service unavailable</title></head>"
             b"<body><h1>Please sign in to continue</h1></body></html>\n")
MODES = {"good", "corrupt", "html", "sniff", "missing", "cut", "cutonce", "norange", "loop", "stall", "trickle"}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def make_zip(tra, tes, names):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("optdigits.names", names)
        z.writestr("optdigits.tra", tra)
        z.writestr("optdigits.tes", tes)
    return buf.getvalue()


def rebuild_fashion(name):
    """The mirror's bytes from Debian's copy, or None when not installed or not matching."""
    path = os.path.join(FASHION_DIR, name)
    if not os.path.exists(path):
        return None
    data = read(path)
    md5, mtime = FASHION[name]
    if data[:4] != b"\x1f\x8b\x08\x00":  # Debian's: no FNAME flag
        return None
    base = name[:-3].encode()
    original = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + data[8:10] + base + b"\0" + data[10:]
    if hashlib.md5(original).hexdigest() != md5:
        return None
    # Still the same images: the deflate stream was never touched.
    assert gzip.decompress(original) == gzip.decompress(data)
    return original


def corrupt(data):
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]


def build_files(data_dir):
    good, bad = {}, {}
    opt = os.path.join(data_dir, "optdigits")
    tra, tes = read(os.path.join(opt, "optdigits.tra")), read(os.path.join(opt, "optdigits.tes"))
    names = read(os.path.join(opt, "optdigits.names"))
    good["/static/public/80/" + ZIP_NAME] = make_zip(tra, tes, names)
    # A well-formed archive (CRC-32 and all) whose optdigits.tes is not UCI's: one class label changed.
    i = tes.index(b"\n") - 1
    tes_changed = tes[:i] + (b"1" if tes[i:i + 1] != b"1" else b"2") + tes[i + 1:]
    bad["/static/public/80/" + ZIP_NAME] = make_zip(tra, tes_changed, names)
    for name, content in (("optdigits.tra", tra), ("optdigits.tes", tes)):
        good["/ml/machine-learning-databases/optdigits/" + name] = content
    for name in MNIST_FILES:
        content = read(os.path.join(data_dir, "mnist-10k", name))
        good["/mnist/" + name] = good["/cvdf-datasets/mnist/" + name] = content
    for name in FASHION:
        content = rebuild_fashion(name)
        if content is not None:
            good["/" + name] = content
    for path, content in good.items():
        bad.setdefault(path, corrupt(content))
    return good, bad


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: a cut is a closed socket
    server_version = "digitnet-test"

    def log_message(self, fmt, *args):  # quiet on stderr; the log file says what happened
        pass

    def note(self, mode, path, status):
        with self.server.log_lock:
            with open(self.server.log_path, "a") as log:
                log.write("%s %s %s %d\n" % (mode, path, self.headers.get("Range", "-"), status))

    def send(self, status, headers, body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("/", 2)
        mode = parts[1] if len(parts) > 2 else ""
        path = "/" + parts[2] if len(parts) > 2 else self.path
        files = self.server.bad if mode == "corrupt" else self.server.good
        if mode not in MODES or path not in files or mode == "missing":
            self.note(mode, path, 404)
            return self.send(404, [("Content-Type", "text/plain")], b"not found\n")
        data = files[path]
        if mode == "html" or mode == "sniff":
            self.note(mode, path, 200)
            kind = "text/html; charset=utf-8" if mode == "html" else "application/octet-stream"
            return self.send(200, [("Content-Type", kind), ("Content-Length", str(len(HTML_PAGE)))], HTML_PAGE)
        if mode == "loop":
            self.note(mode, path, 302)
            return self.send(302, [("Location", self.path), ("Content-Length", "0")])

        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange":
            if not rng.startswith("bytes=") or not rng[6:].split("-")[0].isdigit():
                self.note(mode, path, 400)
                return self.send(400, [("Content-Length", "0")])
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.note(mode, path, 416)
                return self.send(416, [("Content-Range", "bytes */%d" % len(data)), ("Content-Length", "0")])
        body = data[start:]
        status = 206 if start else 200
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))]
        if status == 206:
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data))))
        self.note(mode, path, status)
        self.send(status, headers)

        cut = mode == "cut"
        if mode == "cutonce":
            with self.server.log_lock:
                cut = path not in self.server.cut_done
                self.server.cut_done.add(path)
        if cut:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "trickle":
            for i in range(0, len(body), 150):
                if self.server.stopping:
                    break
                self.wfile.write(body[i:i + 150])
                self.wfile.flush()
                time.sleep(0.1)
            return
        if mode == "stall":
            self.wfile.write(body[:len(body) // 4])
            self.wfile.flush()
            for _ in range(600):  # the client gives up long before; never hold a thread for ever
                time.sleep(0.1)
                if self.server.stopping:
                    break
            return
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    data_dir, port_file, log_path = sys.argv[1:4]
    good, bad = build_files(data_dir)
    server = Server(("127.0.0.1", 0), Handler)
    server.good, server.bad = good, bad
    server.log_path, server.log_lock = log_path, threading.Lock()
    server.cut_done, server.stopping = set(), False
    open(log_path, "w").close()
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(port_file + ".tmp", port_file)
    # Which optional files are served, for the test script to skip what it cannot test.
    with open(port_file + ".served", "w") as f:
        f.write("\n".join(sorted(good)) + "\n")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping = True
        server.server_close()


if __name__ == "__main__":
    main()
