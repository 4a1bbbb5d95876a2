#!/bin/sh
# Recipes: a spec's train/augment lines set the training (the printed Recipe line and the saved
# "train" / "augment" notes show it), command-line flags override them, a bad line fails with one
# line naming the file, line and key, bad flags fail before training, and --help lists every flag.
# Prints 'N passed, N failed'.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-recipe.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
# note FILE KEY: the model's note (safetensors metadata run.KEY), or nothing
note() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
print(json.loads(b[8:8 + n]).get("__metadata__", {}).get("run." + sys.argv[2], ""))
PY
}
cat >"$T/r.cnn" <<'SPEC'
input 8x8x1
train epochs=2 batch=64 lr=0.002 schedule=cosine warmup=0.5
conv2d 8 3x3 same relu
maxpool 2x2
flatten
augment mixup=0.2
dense 10 softmax
train label_smoothing=0.1 weight_decay=0.0001 patience=5 val_split=0.2
SPEC
ARGS="--data optdigits --seed 2 --threads 1"
$DN train $ARGS --model "$T/r.cnn" --out "$T/a.safetensors" >"$T/a.out" 2>"$T/a.err"
check "a spec with recipe lines trains" test $? -eq 0
expect="Recipe: epochs=2 batch=64 lr=0.002 optimizer=adam schedule=cosine warmup=0.5 weight_decay=0.0001 label_smoothing=0.1 patience=5 val_split=0.2; augment mixup=0.2"
check "the printed recipe line is the spec's" grep -qxF "$expect" "$T/a.out"
check "2 epochs trained (the spec's epochs)" grep -q "^Trained 2 epochs" "$T/a.out"
check "validating on the spec's val_split (0.2 of 3823)" grep -q "validating on 765," "$T/a.out"
check "the train note keeps the recipe" test "$(note "$T/a.safetensors" train)" = \
    "epochs=2 batch=64 lr=0.002 optimizer=adam schedule=cosine warmup=0.5 weight_decay=0.0001 label_smoothing=0.1 patience=5 val_split=0.2"
check "the augment note" test "$(note "$T/a.safetensors" augment)" = "mixup=0.2"
case "$(note "$T/a.safetensors" early_stopping)" in
"restored epoch "*) ok "early-stopping note" ;;
*) bad "early-stopping note" "$(note "$T/a.safetensors" early_stopping)" ;;
esac
$DN summary "$T/a.safetensors" >"$T/summary.out"
check "recipe lines are not layers (summary)" test "$(grep -c 'train \|augment ' "$T/summary.out")" -eq 0
python3 - "$T/a.safetensors" >"$T/spec.txt" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
m = json.loads(b[8:8 + n]).get("__metadata__", {})
print(m.get("spec", ""))
PY
check "the saved spec keeps the recipe lines" grep -qx "train label_smoothing=0.1 weight_decay=0.0001 patience=5 val_split=0.2" "$T/spec.txt"

# flags override the spec's lines
$DN train $ARGS --model "$T/r.cnn" --epochs 1 --batch 32 --schedule step --step-every 2 --step-gamma 0.5 \
    --label-smoothing 0 --patience 0 --val-split 0.1 --augment "mixup=0 shift=1" --weight-decay 0.001 \
    --out "$T/b.safetensors" >"$T/b.out" 2>"$T/b.err"
check "flags override: trains" test $? -eq 0
expect="Recipe: epochs=1 batch=32 lr=0.002 optimizer=adam schedule=step warmup=0.5 step_every=2 step_gamma=0.5 weight_decay=0.001 val_split=0.1; augment shift=1"
check "flags override the spec (printed recipe)" grep -qxF "$expect" "$T/b.out"
check "flags override the spec (train note)" test "$(note "$T/b.safetensors" train)" = \
    "epochs=1 batch=32 lr=0.002 optimizer=adam schedule=step warmup=0.5 step_every=2 step_gamma=0.5 weight_decay=0.001 val_split=0.1"
check "1 epoch trained (the flag's)" grep -q "^Trained 1 epochs" "$T/b.out"

# bad recipe lines: one line naming the file, the line and the key; exit 1
printf 'input 8x8x1\nflatten\ntrain epochs=3 speed=9\ndense 10 softmax\n' >"$T/bad.cnn"
$DN train $ARGS --model "$T/bad.cnn" >"$T/bad.out" 2>"$T/bad.err"
status=$?
check "a bad train line fails (exit 1)" test $status -eq 1
check "one line of error" test "$(wc -l <"$T/bad.err")" -eq 1
check "the error names file, line and key" grep -q "^digitnet: $T/bad.cnn:3: train: unknown key 'speed'" "$T/bad.err"
printf 'input 8x8x1\nflatten\ndense 10 softmax\naugment rotate=lots\n' >"$T/bad2.cnn"
$DN cv $ARGS --model "$T/bad2.cnn" --folds 2 >/dev/null 2>"$T/bad2.err"
check "cv: a bad augment line fails with its line" grep -q "bad2.cnn:4: augment: .*rotate" "$T/bad2.err"

# bad flags: usage errors before any training
$DN train $ARGS --model "$T/r.cnn" --schedule linear >/dev/null 2>"$T/f.err"
check "--schedule linear is a usage error (exit 2)" test $? -eq 2
check "--schedule error names the flag" grep -q "^digitnet: --schedule: 'linear' is not valid" "$T/f.err"
$DN train $ARGS --model "$T/r.cnn" --label-smoothing 2 >/dev/null 2>"$T/f2.err"
check "--label-smoothing 2 is a usage error" test $? -eq 2
$DN train $ARGS --model "$T/r.cnn" --augment "twist=1" >/dev/null 2>"$T/f3.err"
check "--augment with an unknown key fails naming --augment" grep -q "^digitnet: --augment: " "$T/f3.err"
# early stopping without validation rows: a clear error
printf 'input 8x8x1\nflatten\ndense 10 softmax\n' >"$T/plain.cnn"
$DN train $ARGS --model "$T/plain.cnn" --patience 2 --epochs 1 >/dev/null 2>"$T/p.err"
check "--patience without a validation set fails" grep -q "early stopping (patience 2) needs a validation set" "$T/p.err"

# every flag in --help and in the man page
for flag in --schedule --warmup --step-every --step-gamma --min-lr --weight-decay --label-smoothing --patience --augment --ensemble; do
    if $DN --help | grep -q -- "$flag" && grep -qF -- "$(echo "$flag" | sed 's/-/\\-/g')" man/digitnet.1; then
        ok "$flag documented"
    else
        bad "$flag documented in --help and man/digitnet.1"
    fi
done

# a resumed run continues the recipe and the schedule of the run it resumes: a 3-epoch cosine run
# resumed from its checkpoint of epoch 2 ends, bit for bit, where the uninterrupted run ends
printf 'input 8x8x1\ntrain batch=128 lr=0.005 schedule=cosine warmup=1 weight_decay=0.001 label_smoothing=0.1\nconv2d 4 3x3 same relu\nmaxpool 2x2\nflatten\ndense 10 softmax\n' >"$T/cos.cnn"
$DN train $ARGS --model "$T/cos.cnn" --epochs 3 --quiet --checkpoint "$T/two.ckpt" --checkpoint-every 2 --out "$T/four.safetensors" >/dev/null
$DN train --resume "$T/two.ckpt" --threads 1 --quiet --out "$T/resumed.safetensors" >/dev/null
python3 - "$T/four.safetensors" "$T/resumed.safetensors" <<'PY'
import struct, sys
def data(p):
    b = open(p, "rb").read()
    return b[8 + struct.unpack("<Q", b[:8])[0]:]
sys.exit(0 if data(sys.argv[1]) == data(sys.argv[2]) else 1)
PY
check "cosine + warm-up: 3 epochs == checkpoint of epoch 2 resumed, bit for bit" test $? -eq 0

# sweep: the spec's recipe under the grid's lr and batch
$DN sweep $ARGS --model "$T/r.cnn" --lr 0.002,0.004 --patience 0 >"$T/sweep.out" 2>&1
check "sweep trains the spec's epochs and val_split" grep -q "2 settings, 2 epochs each, validating on 765 images" "$T/sweep.out"
check "sweep prints the recipe" grep -q "^Recipe: epochs=2 batch=64 lr=0.002 optimizer=adam schedule=cosine" "$T/sweep.out"

# cv and the report show the recipe
$DN cv $ARGS --model "$T/r.cnn" --folds 2 --patience 0 --epochs 1 --report "$T/rep" >"$T/cv.out" 2>&1
check "cv trains with the spec's recipe" grep -q "^Recipe: epochs=1 batch=64 lr=0.002" "$T/cv.out"
check "the report has a Training recipe part" grep -q "Training recipe" "$T/rep/index.html"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
