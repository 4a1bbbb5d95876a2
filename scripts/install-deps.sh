#!/bin/sh
# Installs the Debian packages digitnet needs to build, test and benchmark. Run as root it installs
# what is missing; otherwise it prints the exact apt-get line to run.
set -e
cd "$(dirname "$0")/.."
PKGS="gcc make pkg-config libopenblas-dev zlib1g-dev libcjson-dev libpng-dev libjpeg-dev libcairo2-dev
libmicrohttpd-dev libcmocka-dev python3 libcurl4-openssl-dev libzip-dev libssl-dev
xxd curl chromium nodejs"
# make python-test: the Python package's numpy and pytest; make install-test renders the man page with groff.
PKGS="$PKGS python3-numpy python3-pytest groff-base"
# ONNX export / import (src/onnx/, make onnx-test): protobuf-c and Debian's onnx.proto for the build;
# onnx.checker and PyTorch (torch.onnx.export) for the tests.
PKGS="$PKGS libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-onnx python3-torch python3-numpy"
# make test's Cortex-M test (tests/mcu): the Arm cross-compiler, its C library and QEMU's Arm boards.
PKGS="$PKGS gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
# Open MPI: the CLI is built with it, and tests/cli/mpi.sh runs mpirun (README, Scaling out with MPI).
PKGS="$PKGS libopenmpi-dev openmpi-bin"
# `install-deps.sh bench` adds what make bench needs: the full 60k Fashion-MNIST and PyTorch to compare;
# and wrk, the HTTP load generator of make load-test.
[ "$1" = bench ] && PKGS="$PKGS dataset-fashion-mnist python3-torch wrk"
# `install-deps.sh fuzz` adds what make fuzz needs: clang, its libFuzzer and sanitizer runtimes
# (libclang_rt.fuzzer in libclang-rt-14-dev) and LLVM's OpenMP runtime (the library uses -fopenmp).
[ "$1" = fuzz ] && PKGS="$PKGS clang libclang-rt-14-dev libomp-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Debian's nodejs leaves npm to a package of its own; NodeSource's nodejs includes it (and conflicts
# with Debian's npm), so ask for npm only when there is none.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "digitnet: installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || true
        apt-get install -y -qq $missing >/dev/null
    else
        echo "digitnet: missing Debian packages; run:" >&2
        echo "  sudo apt-get install -y$missing" >&2
        exit 1
    fi
fi
# The browser test's one npm package, playwright-core, pinned in package-lock.json. It drives Debian's
# /usr/bin/chromium and downloads no browser of its own.
# onnxruntime-node (make onnx-test) ships its CPU runtime in the package; ONNXRUNTIME_NODE_INSTALL=skip
# stops its install script from downloading GPU providers.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/onnxruntime-node ]; then
    echo "digitnet: npm ci (playwright-core for make browser-test)"
    # Only the browser tests need it: without the npm registry, say so and let demo and build go on.
    npm ci --no-audit --no-fund --loglevel=error ||
        echo "digitnet: npm ci failed; the browser tests (make test) need playwright-core from npm" >&2
fi
