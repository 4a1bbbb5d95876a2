#!/bin/sh
# Checkpoints: 6 epochs in one run equal, bit for bit, 3 epochs resumed for 3 more; an interrupted
# run (SIGINT mid-epoch) writes a checkpoint that resumes to the same weights; a torn save never
# replaces a good file. Prints 'N passed, N failed'.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-ckpt.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
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

# Torn writes: SIGKILL inside a save. DIGITNET_TEST_KILL_SAVE=K:N (src/util/atomic_file.c) makes
# the K-th save of the process stop after N bytes of its temporary file and raise SIGKILL, so the
# kill lands mid-save every time. A checkpoint is saved after every epoch: killing the 3rd save
# must leave the 2nd one (2 epochs) at the final name, loadable, and the torn temporary file beside
# it with exactly N bytes (the proof that the kill happened inside the save); killing the 1st save
# leaves the file that was there before the run.
# epochs FILE: the number of epochs in a model file's history
epochs() {
    python3 - "$1" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
print(len(json.loads(json.loads(b[8:8 + n])["__metadata__"]["history"])))
PY
}
for case in "3:1000:2" "1:0:3" "2:50000:1"; do
    save=${case%%:*}; rest=${case#*:}; bytes=${rest%%:*}; want=${rest#*:}
    rm -rf "$T/torn"; mkdir "$T/torn"
    cp "$T/three.ckpt" "$T/torn/target.safetensors"
    DIGITNET_TEST_KILL_SAVE="$save:$bytes" $DN train $ARGS --epochs 4 --checkpoint "$T/torn/target.safetensors" \
        >/dev/null 2>&1
    status=$?
    check "kill in save $save: the run died of SIGKILL (status $status)" test $status -eq 137
    set -- "$T"/torn/target.safetensors.tmp-*
    check "kill in save $save: one torn temporary file is left" test $# -eq 1 -a -f "$1"
    check "kill in save $save: it holds exactly the $bytes bytes written before the kill" \
        test "$(wc -c <"$1")" -eq "$bytes"
    $DN eval --model "$T/torn/target.safetensors" --quiet >/dev/null 2>&1
    check "kill in save $save: the model file still loads" test $? -eq 0
    check "kill in save $save: it is the save before, with $want epochs" test "$(epochs "$T/torn/target.safetensors")" = "$want"
done

# SIGTERM without --checkpoint, in a scratch directory that already holds a file of the default
# name (someone else's): that file is left alone and the checkpoint takes a free name; with --out,
# the checkpoint goes next to it. Absolute paths: the run happens in the scratch directory.
ROOT=$(pwd)
case $DN in /*) DNA=$DN ;; *) DNA=$ROOT/$DN ;; esac
mkdir -p "$T/cwd"
echo "my notes" >"$T/cwd/digitnet-interrupted.ckpt"
ABS_ARGS="--data optdigits --data-dir ${DIGITNET_DATA:-$ROOT/../shared/data} --model $ROOT/models/optdigits.cnn --batch 128 --test-split 0.2 --seed 3 --quiet"
interrupt() { # ARGS...: train in $T/cwd, SIGTERM after a second; stderr in $T/term.err
    (cd "$T/cwd" && exec "$DNA" train $ABS_ARGS --epochs 40 --threads 1 "$@" >/dev/null 2>"$T/term.err") &
    pid=$!
    sleep 1
    kill -TERM $pid
    wait $pid
}
interrupt
check "SIGTERM: exit 130" test $? -eq 130
check "... a file already named digitnet-interrupted.ckpt is not replaced" test "$(cat "$T/cwd/digitnet-interrupted.ckpt")" = "my notes"
check "... the checkpoint takes the next free name, and says so" grep -q "checkpoint written to digitnet-interrupted-2.ckpt" "$T/term.err"
$DN eval --model "$T/cwd/digitnet-interrupted-2.ckpt" --quiet >/dev/null 2>&1
check "... and loads" test $? -eq 0
interrupt --out "$T/cwd/model.safetensors"
check "with --out: the checkpoint is written next to it" sh -c "grep -q 'checkpoint written to $T/cwd/model.safetensors.interrupted.ckpt' '$T/term.err' && [ -s '$T/cwd/model.safetensors.interrupted.ckpt' ]"
check "... and no temporary file is left" test "$(ls "$T/cwd" | grep -c saving)" -eq 0

# An --out that cannot be written is found before the first epoch, not after the training.
start=$(date +%s)
$DN train $ARGS --epochs 40 --out "$T/no-such-dir/model.safetensors" >/dev/null 2>"$T/out.err"
status=$?
check "an unwritable --out: exit 1 before training" sh -c "[ $status -eq 1 ] && [ $(($(date +%s) - start)) -le 3 ]"
check "... saying why" grep -q "\-\-out $T/no-such-dir/model.safetensors: cannot write there: No such file or directory" "$T/out.err"
$DN train $ARGS --epochs 1 --out "$T" >/dev/null 2>"$T/out.err"
check "an --out that is a directory: refused" grep -q "is a directory" "$T/out.err"

# The kill above left the torn temporary file of a dead process; the next save removes it.
$DN train $ARGS --epochs 1 --checkpoint "$T/torn/target.safetensors" >/dev/null 2>&1
check "the next save removes the temporary files of killed saves" test "$(ls "$T/torn" | grep -c 'target.safetensors.tmp-')" -eq 0
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
