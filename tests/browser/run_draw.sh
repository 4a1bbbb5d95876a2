#!/bin/sh
# make serve-test, second half: the drawing page of `digitnet serve` in headless Chromium
# (tests/browser/draw.test.mjs starts the server on a free loopback port). Uses the small MNIST
# model of tests/tools/test_model.sh. Screenshots: build/draw-*.png.
set -e
cd "$(dirname "$0")/../.."
DIGITNET=${DIGITNET:-build/digitnet}
. tests/tools/test_model.sh
test_model
if [ ! -d node_modules/playwright-core ]; then
    echo "serve-test: installing playwright-core (npm ci)"
    ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi
DIGITNET="$DIGITNET" MODEL="$MODEL" SCREENSHOT_DIR=build node --test tests/browser/draw.test.mjs
