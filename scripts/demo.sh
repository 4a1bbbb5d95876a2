#!/bin/sh
# make demo: trains and evaluates the reference optdigits network (R1), saves the model and writes
# an HTML report. Data is looked up as `digitnet --data optdigits` does (see README).
set -e
DN=${1:-build/digitnet}
OUT=${DEMO_OUT:-out/demo}
mkdir -p "$OUT"
echo "== digitnet demo: R1, UCI optdigits, 100 epochs, batch 128, 80/20 split (seed 42)"
"$DN" summary models/optdigits.cnn
"$DN" train --data optdigits --model models/optdigits.cnn --epochs 100 --batch 128 --test-split 0.2 --seed 42 \
    --out "$OUT/optdigits.safetensors" --report "$OUT/report"
echo
echo "== evaluating the saved model again"
"$DN" eval --model "$OUT/optdigits.safetensors" --quiet | head -1
echo
echo "Model:  $OUT/optdigits.safetensors"
echo "Report: $OUT/report/index.html"
