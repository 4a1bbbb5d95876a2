#!/bin/sh
# End-to-end runs of the digitnet CLI on the real data in ../shared/data: short trainings with
# accuracy floors, save/eval round trips, JSON output and every kind of bad input.
# Prints 'N passed, N failed' and exits non-zero if anything failed.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
# expect_error NAME PATTERN CMD...: non-zero exit, one line on stderr matching PATTERN
expect_error() {
    name=$1 pattern=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; status=$?
    if [ $status -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$pattern" "$T/err"; then ok "$name"
    else bad "$name" "exit $status, stderr: $(head -c 300 "$T/err")"; fi
}

# --- summary
$DN summary models/optdigits.cnn >"$T/s1"
check "summary optdigits: 102,794 params" grep -q "Total params: 102,794" "$T/s1"
$DN summary models/mnist.cnn >"$T/s2"
check "summary mnist: 112,202 params" grep -q "Total params: 112,202" "$T/s2"
$DN summary models/mnist.cnn --json >"$T/s2.json"
check "summary --json total_params" json "$T/s2.json" "j['total_params'] == 112202 and len(j['layers']) == 8"

# --- a short R1 training with a floor, saved model, exact eval
$DN train --data optdigits --model models/optdigits.cnn --epochs 20 --batch 128 --test-split 0.2 --seed 42 \
    --out "$T/r1.safetensors" --json >"$T/train.json" 2>"$T/train.err"
check "train exits 0 and writes the model" test -s "$T/r1.safetensors"
check "train --json: one object with the keys" json "$T/train.json" \
    "all(k in j for k in ['accuracy','loss','precision_macro','recall_macro','f1_macro','roc_auc_macro','confusion','per_class','history','train_images_per_sec']) and len(j['history']) == 20 and len(j['confusion']) == 10"
check "R1 20 epochs: test accuracy >= 0.96" json "$T/train.json" "j['accuracy'] >= 0.96"
check "training progress went to stderr with --json" grep -q "Epoch 20/20" "$T/train.err"
$DN eval --model "$T/r1.safetensors" --json >"$T/eval.json"
check "eval reproduces the training accuracy exactly" python3 -c "
import json; a=json.load(open('$T/train.json')); b=json.load(open('$T/eval.json'))
assert a['accuracy'] == b['accuracy'] and a['loss'] == b['loss'] and a['confusion'] == b['confusion']"
check "no temporary files left beside the model" test "$(ls "$T" | grep -c tmp)" -eq 0

# --- determinism: the same seed twice gives the same numbers
$DN train --data optdigits --model models/optdigits.cnn --epochs 3 --batch 128 --test-split 0.2 --seed 7 --threads 2 --json >"$T/d1.json" 2>/dev/null
$DN train --data optdigits --model models/optdigits.cnn --epochs 3 --batch 128 --test-split 0.2 --seed 7 --json >"$T/d2.json" 2>/dev/null
check "same seed, same result" python3 -c "
import json; a=json.load(open('$T/d1.json')); b=json.load(open('$T/d2.json'))
assert a['accuracy'] == b['accuracy'] and [e['loss'] for e in a['history']] == [e['loss'] for e in b['history']]"

# --- the thread count does not change the result: the work is cut by shape, not by thread
$DN train --data optdigits --model models/optdigits.cnn --epochs 3 --batch 128 --test-split 0.2 --seed 7 --threads 1 --json >"$T/t1.json" 2>/dev/null
check "1 thread and 2 threads: the same numbers" python3 -c "
import json; a=json.load(open('$T/d1.json')); b=json.load(open('$T/t1.json'))
assert a['accuracy'] == b['accuracy'] and [e['loss'] for e in a['history']] == [e['loss'] for e in b['history']]"

# --- R2 on the MNIST subset, short; validation split; predict by index
$DN train --data mnist-10k --model models/mnist.cnn --epochs 2 --batch 64 --val-split 0.1 --seed 1 \
    --out "$T/m.safetensors" --json >"$T/mnist.json" 2>/dev/null
check "R2 2 epochs on 9,000 images: accuracy on the 10k test set >= 0.95" json "$T/mnist.json" "j['accuracy'] >= 0.95"
check "R2 history has val_loss and val_accuracy" json "$T/mnist.json" "all(e['val_accuracy'] is not None and e['val_accuracy'] > 0.9 for e in j['history'])"
$DN predict --model "$T/m.safetensors" --data mnist-10k --index 0 --count 5 --json >"$T/pred.json"
check "predict by index: 5 predictions with top-2" json "$T/pred.json" "len(j) == 5 and all(len(p['top']) == 2 for p in j) and j[0]['label'] == 7"

# --- cv, tiny
$DN cv --data optdigits --model models/optdigits.cnn --folds 3 --epochs 2 --batch 128 --seed 1 --json >"$T/cv.json" 2>/dev/null
check "cv --json: 3 folds, mean and std" json "$T/cv.json" \
    "len(j['folds']) == 3 and abs(j['mean_accuracy'] - sum(f['accuracy'] for f in j['folds'])/3) < 1e-12 and abs(j['std_accuracy'] - (sum((f['accuracy'] - j['mean_accuracy'])**2 for f in j['folds'])/3)**0.5) < 1e-12"

# --- bad input: one line, non-zero exit, names the file and the problem
printf '<!DOCTYPE html><html><body>Not found</body></html>' >"$T/page.html"
mkdir -p "$T/html"; for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    cp "$T/page.html" "$T/html/$f"; done
expect_error "HTML saved as data" "HTML" $DN train --data "$T/html" --model models/mnist.cnn --epochs 1
expect_error "missing data set says where it looked" "looked in" $DN train --data mnist --data-dir "$T/none" --model models/mnist.cnn
expect_error "missing model spec" "nosuch.cnn: cannot open" $DN summary "$T/nosuch.cnn"
printf 'input 8x8x1\nconv2d 16 3x3 same relu\nconv3d 4\n' >"$T/bad.cnn"
expect_error "bad spec line gets file:line" "bad.cnn:3: unknown layer 'conv3d'" $DN summary "$T/bad.cnn"
printf 'input 8x8x1\nflatten\ndense 10 relu\n' >"$T/nosoftmax.cnn"
expect_error "last layer without softmax" "softmax" $DN summary "$T/nosoftmax.cnn"
expect_error "model does not fit the data" "expects 28x28x1" $DN train --data optdigits --model models/mnist.cnn --epochs 1
expect_error "eval of a spec, not a model" "not a trained model" $DN eval --model models/mnist.cnn --data mnist-10k
head -c 3000 "$T/r1.safetensors" >"$T/trunc.safetensors"
expect_error "truncated model file" "trunc.safetensors" $DN eval --model "$T/trunc.safetensors"
expect_error "predict: model and data of different shapes" "m.safetensors: the model expects 28x28x1 images but optdigits has 8x8x1" \
    $DN predict --model "$T/m.safetensors" --data optdigits --count 300
expect_error "eval names the model on a shape mismatch" "m.safetensors: the model expects 28x28x1" $DN eval --model "$T/m.safetensors" --data optdigits
expect_error "a fraction where a whole number belongs" "--epochs" $DN train --epochs 2.5
expect_error "unknown option" "unknown option --epoch" $DN train --epoch 3
expect_error "bad number" "--batch" $DN train --batch zero
printf 'input 8x8x1\nflatten\ndense 256\ndense 256\ndense 10 softmax\n' >"$T/linear.cnn"
expect_error "NaN loss stops training" "NaN at epoch 1" $DN train --data optdigits --model "$T/linear.cnn" --epochs 3 --optimizer sgd --lr 1e6 --test-split 0.2
mkdir -p "$T/csv/optdigits"; head -5 ../shared/data/optdigits/optdigits.tra >"$T/csv/optdigits/optdigits.tra"
echo "1,2,3" >>"$T/csv/optdigits/optdigits.tra"; cp "$T/csv/optdigits/optdigits.tra" "$T/csv/optdigits/optdigits.tes"
expect_error "CSV row with the wrong number of values" "line 6: expected 65 values, found 3" \
    $DN train --data optdigits --data-dir "$T/csv" --model models/optdigits.cnn --epochs 1

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
