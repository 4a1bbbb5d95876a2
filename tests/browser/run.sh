#!/bin/sh
# make browser-test: writes real reports (a short training run of R1 on optdigits, an eval of the
# saved model, a 2-fold cross-validation) and checks them in headless Chromium
# (tests/browser/report.test.mjs). Screenshots: build/report-screenshot*.png.
set -e
cd "$(dirname "$0")/../.."
DN=${DIGITNET:-build/digitnet}
OUT=build
if [ ! -d node_modules/playwright-core ]; then
    echo "browser-test: installing playwright-core (npm ci)"
    ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi
rm -rf "$OUT/test-report" "$OUT/test-report-eval" "$OUT/test-report-cv"
"$DN" train --data optdigits --model models/optdigits.cnn --epochs 3 --batch 128 --test-split 0.2 --seed 1 \
    --out "$OUT/test-report.safetensors" --report "$OUT/test-report" --quiet >/dev/null
"$DN" eval --model "$OUT/test-report.safetensors" --report "$OUT/test-report-eval" --quiet >/dev/null
"$DN" cv --data optdigits --model models/optdigits.cnn --folds 2 --epochs 1 --batch 128 --seed 1 \
    --report "$OUT/test-report-cv" --quiet >/dev/null
REPORT_DIRS="$OUT/test-report,$OUT/test-report-eval,$OUT/test-report-cv" SCREENSHOT_DIR="$OUT" \
    node --test tests/browser/report.test.mjs
