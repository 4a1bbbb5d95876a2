#!/bin/sh
# Checkpoints: 6 epochs in one run equal, bit for bit, 3 epochs resumed for 3 more; an interrupted
# run (SIGINT mid-epoch) writes a checkpoint that resumes to the same weights; a torn save never
# replaces a good file. Prints 'N passed, N failed'.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-ckpt.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
# weights A B: the tensor bytes (everything after the JSON header) of two safetensors files are equal
weights() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
def data(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return b[8 + n:]
sys.exit(0 if data(sys.argv[1]) == data(sys.argv[2]) else 1)
PY
}
ARGS="--data optdigits --model models/optdigits.cnn --batch 128 --test-split 0.2 --seed 3 --quiet"
$DN train $ARGS --epochs 6 --out "$T/six.safetensors" >/dev/null
$DN train $ARGS --epochs 3 --checkpoint "$T/three.ckpt" >/dev/null
check "checkpoint written" test -s "$T/three.ckpt"
$DN train --resume "$T/three.ckpt" --epochs 6 --quiet --out "$T/resumed.safetensors" >/dev/null
check "6 epochs == 3 epochs + resume 3 more, bit for bit" weights "$T/six.safetensors" "$T/resumed.safetensors"
$DN eval --model "$T/three.ckpt" --quiet >/dev/null
check "a checkpoint also loads as a model" test $? -eq 0

# SIGINT in the middle of training: the run stops after the batch, writes its checkpoint, exits 130
# and tells how to resume; resuming reaches the same weights as the uninterrupted run.
# 40 epochs take several seconds on one thread: the signal lands mid-run, whatever the machine.
$DN train $ARGS --epochs 40 --checkpoint "$T/int.ckpt" --checkpoint-every 100 --threads 1 >/dev/null 2>"$T/int.err" &
pid=$!
sleep 1
kill -INT $pid
wait $pid
status=$?
check "interrupted run exits 130" test $status -eq 130
check "interrupted run says how to resume" grep -q "resume with: digitnet train --resume $T/int.ckpt" "$T/int.err"
$DN train --resume "$T/int.ckpt" --quiet --threads 1 --out "$T/int-resumed.safetensors" >/dev/null
$DN train $ARGS --epochs 40 --threads 1 --out "$T/forty.safetensors" >/dev/null
check "interrupted + resumed == uninterrupted, bit for bit" weights "$T/forty.safetensors" "$T/int-resumed.safetensors"

# Torn writes: SIGKILL while saving, again and again (a checkpoint is saved after every epoch, so
# many kills land mid-save); the previous file must stay intact and loadable each time.
cp "$T/three.ckpt" "$T/target.safetensors"
i=0
while [ $i -lt 15 ]; do
    $DN train $ARGS --epochs 4 --checkpoint "$T/target.safetensors" >/dev/null 2>&1 &
    pid=$!
    sleep 0.$((2 + i % 7))
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    $DN eval --model "$T/target.safetensors" --quiet >/dev/null 2>&1 || break
    i=$((i + 1))
done
check "after 15 kills mid-run the model file is always loadable" test $i -eq 15
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
