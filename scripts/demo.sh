#!/bin/sh
# make demo: trains and evaluates the reference optdigits network (R1), saves the model and writes
# an HTML report. Data is looked up as `digitnet --data optdigits` does (see README); when it is
# nowhere, it is downloaded from UCI and verified (`--fetch`) into $DIGITNET_DATA or ~/.cache/digitnet.
# DIGITNET_MIRROR="URL ..." downloads from those mirrors instead (tests use a loopback one);
# DEMO_EPOCHS shortens the training, DEMO_OUT moves the output.
set -e
DN=${1:-build/digitnet}
OUT=${DEMO_OUT:-out/demo}
EPOCHS=${DEMO_EPOCHS:-100}
mirrors=""
for m in ${DIGITNET_MIRROR:-}; do mirrors="$mirrors --mirror $m"; done
mkdir -p "$OUT"
echo "== digitnet demo: R1, UCI optdigits, $EPOCHS epochs, batch 128, 80/20 split (seed 42)"
"$DN" summary models/optdigits.cnn
"$DN" train --data optdigits --model models/optdigits.cnn --epochs "$EPOCHS" --batch 128 --test-split 0.2 --seed 42 \
    --out "$OUT/optdigits.safetensors" --report "$OUT/report" --fetch $mirrors
echo
echo "== evaluating the saved model again"
"$DN" eval --model "$OUT/optdigits.safetensors" --quiet | grep -E "^(Evaluating|Test:)"
echo
echo "Model:  $OUT/optdigits.safetensors"
echo "Report: $OUT/report/index.html"
