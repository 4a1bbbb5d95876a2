#!/bin/sh
# ONNX export and import with real consumers and producers, on the real data in ../shared/data:
#  - R1 and R2 trained briefly by digitnet, exported, checked by onnx.checker (full_check), and run by
#    onnxruntime (onnxruntime-node) on their whole test sets against digitnet's own probabilities;
#  - the reference networks trained briefly in PyTorch and exported with torch.onnx.export (NCHW), a
#    net with BatchNormalization, and R2 laid out NHWC as tf2onnx writes it, imported and compared
#    with PyTorch's probabilities; the imported model through eval --report, predict, serve, export;
#  - R1, R2 and a mixed net exported --int8, checked by onnx.checker and run by onnxruntime against
#    predict --int8 (its own agreement rule, below);
#  - malformed files: one-line errors naming the node and the op.
# Same class on >= 99.9% of rows and every probability within 1e-4. Prints 'N passed, N failed'.
DN=${DIGITNET:-build/digitnet}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/digitnet-onnx.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
TOOLS="$(dirname "$0")/torch_models.py"
DATA=${DIGITNET_TEST_DATA:-../shared/data}
expect_error() {
    name=$1 pattern=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; status=$?
    if [ $status -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$pattern" "$T/err"; then ok "$name"
    else bad "$name" "exit $status, stderr: $(head -c 300 "$T/err")"; fi
}
# agree NAME CMD...: runs a comparison that prints one JSON line and fails below the agreement rule
agree() {
    name=$1; shift
    if "$@" >"$T/agree" 2>"$T/agree.err"; then ok "$name: $(cat "$T/agree")"
    else bad "$name" "$(cat "$T/agree") $(tail -c 400 "$T/agree.err")"; fi
}
predict_all() { # MODEL DATA COUNT OUT.json
    $DN predict --model "$1" --data "$2" --index 0 --count "$3" --top 10 --json >"$4"
}

# --- export: R1 (optdigits, tested on optdigits.tes) and R2 (9,000 MNIST images, tested on the 10k test set)
$DN train --data optdigits --model models/optdigits.cnn --epochs 20 --batch 128 --seed 1 --quiet \
    --out "$T/r1.safetensors" >/dev/null
$DN train --data mnist-10k --model models/mnist.cnn --epochs 2 --batch 64 --val-split 0.1 --seed 1 --quiet \
    --out "$T/r2.safetensors" >/dev/null
for r in r1 r2; do
    $DN export --model "$T/$r.safetensors" --format onnx --out "$T/$r.onnx" >"$T/export.out"
    check "export $r writes the file and says so" grep -q "Wrote $T/$r.onnx: ONNX IR 7, opset 13" "$T/export.out"
    agree "onnx.checker full_check on $r.onnx" $PY "$TOOLS" check "$T/$r.onnx"
done
expect_error "export needs a --format" "export needs --format onnx" $DN export --model "$T/r1.safetensors" --out "$T/x.onnx"
expect_error "export of a spec is refused" "not a trained model" $DN export --model models/optdigits.cnn --format onnx --out "$T/x.onnx"
predict_all "$T/r1.safetensors" optdigits 1797 "$T/r1.json"
predict_all "$T/r2.safetensors" mnist-10k 10000 "$T/r2.json"
if [ -d node_modules/onnxruntime-node ]; then
    agree "onnxruntime R1, all 1797 optdigits.tes rows vs digitnet" \
        node tests/onnx/ort_check.mjs "$T/r1.onnx" optdigits "$DATA/optdigits/optdigits.tes" "$T/r1.json"
    agree "onnxruntime R2, all 10000 MNIST test rows vs digitnet" \
        node tests/onnx/ort_check.mjs "$T/r2.onnx" mnist "$DATA/mnist-10k/t10k-images-idx3-ubyte.gz" "$T/r2.json"
else
    echo "skip - onnxruntime checks: node_modules/onnxruntime-node is missing (scripts/install-deps.sh runs npm ci)"
fi

# --- int8 (export --int8): the quantised R1, R2 and a net with a ReLU of its own, batchnorm, tanh,
# strides and "same" pooling, against predict --int8 (eval --int8's arithmetic). Every step is
# digitnet's integer arithmetic except QLinearConv's requantisation (a float scale, rounding half to
# even, where digitnet has a 32-bit multiplier and a shift, rounding half up): on a tie an int8 value
# can move one step, rarely. So: the same class on >= 99.9% of rows, at most 0.5% of rows with a
# probability more than 1e-6 away (a few in 10,000 are, see the README), and none more than 0.1 away
# (one step of the int8 logits, whose scale is ~0.1-0.2, moves a probability by at most a quarter of it).
printf 'input 8x8x1\nconv2d 8 3x3 same stride=2\nbatchnorm\nrelu\nmaxpool 3x3 stride=1 same\nconv2d 12 2x2 valid tanh\nflatten\ndense 16\ntanh\ndense 10 softmax\n' >"$T/mix.cnn"
$DN train --data optdigits --model "$T/mix.cnn" --epochs 3 --batch 64 --seed 1 --quiet --out "$T/mix.safetensors" >/dev/null
for m in r1:optdigits:1797 r2:mnist-10k:10000 mix:optdigits:1797; do
    r=${m%%:*} rest=${m#*:}; data=${rest%%:*} n=${rest#*:}
    $DN export --model "$T/$r.safetensors" --format onnx --int8 --calibration 1000 --out "$T/${r}-int8.onnx" >"$T/export.out"
    check "export --int8 $r writes the file and says so" grep -q "Wrote $T/${r}-int8.onnx: ONNX IR 7, opset 13, int8" "$T/export.out"
    agree "onnx.checker full_check on ${r}-int8.onnx" $PY "$TOOLS" check "$T/${r}-int8.onnx"
    $DN predict --int8 --calibration 1000 --model "$T/$r.safetensors" --data $data --index 0 --count $n --top 10 --json \
        >"$T/${r}-int8.json"
done
check "the int8 graph has QLinearConv, int8 Max, MaxPool and the lookup Gather" $PY -c "
import onnx, sys
ops = [n.op_type for n in onnx.load('$T/mix-int8.onnx').graph.node]
sys.exit(0 if {'QuantizeLinear', 'QLinearConv', 'Max', 'MaxPool', 'Gather', 'DequantizeLinear'} <= set(ops) else 1)"
check "predict --int8 agrees with eval --int8's accuracy" $PY -c "
import json, subprocess, sys
rows = json.load(open('$T/r2-int8.json'))
acc = sum(r['digit'] == r['label'] for r in rows) / len(rows)
ev = json.loads(subprocess.run(['$DN', 'eval', '--int8', '--calibration', '1000', '--model', '$T/r2.safetensors', '--json'],
                               capture_output=True, text=True, check=True).stdout)
sys.exit(0 if abs(acc - ev['accuracy']) < 1e-9 and ev['arithmetic'] == 'int8' else 1)"
expect_error "export --calibration without --int8 is refused" "go with --int8" \
    $DN export --model "$T/r1.safetensors" --format onnx --calibration 10 --out "$T/x.onnx"
if [ -d node_modules/onnxruntime-node ]; then
    agree "onnxruntime int8 R1, all 1797 optdigits.tes rows vs predict --int8" node tests/onnx/ort_check.mjs \
        "$T/r1-int8.onnx" optdigits "$DATA/optdigits/optdigits.tes" "$T/r1-int8.json" 0.999 0.1 0.005
    agree "onnxruntime int8 R2, all 10000 MNIST test rows vs predict --int8" node tests/onnx/ort_check.mjs \
        "$T/r2-int8.onnx" mnist "$DATA/mnist-10k/t10k-images-idx3-ubyte.gz" "$T/r2-int8.json" 0.999 0.1 0.005
    agree "onnxruntime int8 ReLU/batchnorm/tanh/stride net vs predict --int8" node tests/onnx/ort_check.mjs \
        "$T/mix-int8.onnx" optdigits "$DATA/optdigits/optdigits.tes" "$T/mix-int8.json" 0.999 0.1 0.005
fi

# --- round trip: digitnet's own export imports back to the same predictions
$DN import "$T/r1.onnx" --out "$T/r1-back.safetensors" >/dev/null
predict_all "$T/r1-back.safetensors" optdigits 1797 "$T/r1-back.json"
check "export -> import gives the same spec" sh -c "$DN summary '$T/r1-back.safetensors' | grep -q 'Total params: 102,794'"
agree "export -> import: the same probabilities" $PY -c "
import json, sys
a, b = json.load(open('$T/r1.json')), json.load(open('$T/r1-back.json'))
d = max(abs(x['probability'] - y['probability']) for x, y in zip(a, b))
same = sum(x['digit'] == y['digit'] for x, y in zip(a, b)) / len(a)
print(json.dumps({'same_class': same, 'max_abs_diff': d})); sys.exit(0 if same == 1 and d <= 1e-6 else 1)"

# --- import: PyTorch's reference networks, a BatchNorm net, and tf2onnx's NHWC layout
if $PY -c "import torch, onnx" 2>/dev/null; then
    $PY "$TOOLS" build "$T/torch" >"$T/build.log" 2>&1 || bad "PyTorch models built" "$(tail -5 "$T/build.log")"
    for m in torch_r1:optdigits:1797:NCHW torch_bn:optdigits:1797:NCHW torch_r2:mnist-10k:10000:NCHW nhwc_r2:mnist-10k:10000:NHWC; do
        mod=${m%%:*} rest=${m#*:}; data=${rest%%:*} rest=${rest#*:}; n=${rest%%:*} layout=${rest#*:}
        $DN import "$T/torch/$mod.onnx" --out "$T/$mod.safetensors" >"$T/import.out" 2>&1
        check "import $mod ($layout)" grep -q "$layout layout" "$T/import.out"
        predict_all "$T/$mod.safetensors" $data $n "$T/$mod.json"
        agree "imported $mod vs PyTorch, all $n test rows" $PY "$TOOLS" compare "$T/torch/$mod.npy" "$T/$mod.json"
    done
    $DN import "$T/torch/raw_r2.onnx" --input-scale 1 --out "$T/raw_r2.safetensors" >"$T/import.out" 2>&1
    check "import raw_r2 --input-scale 1 (a graph on raw pixels)" grep -q "raw pixels / 1$" "$T/import.out"
    predict_all "$T/raw_r2.safetensors" mnist-10k 10000 "$T/raw_r2.json"
    agree "imported raw_r2 (input scale folded into the first conv) vs PyTorch" \
        $PY "$TOOLS" compare "$T/torch/raw_r2.npy" "$T/raw_r2.json"
    check "R2 from PyTorch ended in logits: softmax added" sh -c "$DN import '$T/torch/torch_r2.onnx' --out '$T/logits.safetensors' | grep -q 'softmax added'"

    # The imported model works with every command.
    M="$T/torch_r2.safetensors"
    $DN eval --model "$M" --data mnist-10k --report "$T/report" --json >"$T/eval.json"
    check "eval --report on the imported model" test -s "$T/report/index.html"
    check "eval accuracy of the imported model = PyTorch's argmax accuracy" $PY -c "
import json, numpy as np, gzip, sys
p = np.load('$T/torch/torch_r2.npy')
with gzip.open('$DATA/mnist-10k/t10k-labels-idx1-ubyte.gz') as f: y = np.frombuffer(f.read(), np.uint8, offset=8)
sys.exit(0 if abs(json.load(open('$T/eval.json'))['accuracy'] - float(np.mean(p.argmax(1) == y))) <= 0.001 else 1)"
    $DN export --model "$M" --format onnx --out "$T/torch_r2-again.onnx" >/dev/null
    agree "export of the imported model passes onnx.checker" $PY "$TOOLS" check "$T/torch_r2-again.onnx"
    $DN serve --model "$M" --port 0 >"$T/serve.out" 2>&1 &
    spid=$!
    for i in 1 2 3 4 5 6 7 8 9 10; do grep -q "http://" "$T/serve.out" && break; sleep 0.5; done
    url=$(grep -o "http://[0-9.:]*" "$T/serve.out" | head -1)
    $PY -c "
import gzip, json
with gzip.open('$DATA/mnist-10k/t10k-images-idx3-ubyte.gz') as f: b = f.read()[16:16 + 784]
print(json.dumps({'pixels': list(b)}))" >"$T/digit.json"
    curl -s -X POST --data-binary @"$T/digit.json" "$url/api/predict" >"$T/served.json"
    check "serve answers with the imported model (MNIST test digit 0 is a 7)" json "$T/served.json" "j['digit'] == 7"
    kill $spid 2>/dev/null; wait $spid 2>/dev/null

    # --- malformed files: one line naming the node and the op
    expect_error "truncated protobuf" "bad_truncated.onnx: not an ONNX model (the protobuf does not parse" \
        $DN import "$T/torch/bad_truncated.onnx" --out "$T/x.safetensors"
    expect_error "unknown op" "node 'act_1' (Gelu): op not supported" \
        $DN import "$T/torch/bad_unknown_op.onnx" --out "$T/x.safetensors"
    expect_error "wrong initializer size" "node 'conv_1' (Conv): initializer '.*' holds 143 floats but its shape says 144" \
        $DN import "$T/torch/bad_initializer_size.onnx" --out "$T/x.safetensors"
    expect_error "not 10 classes" "node 'dense_1/Softmax' (Softmax) ends the graph with 9 outputs, not 10 classes" \
        $DN import "$T/torch/bad_nine_classes.onnx" --out "$T/x.safetensors"
    check "no model file left by the failed imports" test ! -e "$T/x.safetensors"
else
    echo "skip - import checks: /usr/bin/python3 has no torch or onnx (Debian python3-torch, python3-onnx)"
fi
expect_error "import of a missing file" "nothing.onnx: cannot open" $DN import "$T/nothing.onnx" --out "$T/x.safetensors"

# --- globalavgpool: GlobalAveragePool + Flatten in the float graph, folded into the dense after it in
# the int8 one; onnxruntime against digitnet on every optdigits.tes row; export -> import -> same spec
# and the same probabilities bit for bit.
printf 'input 8x8x1\nconv2d 12 3x3 same relu\nconv2d 16 3x3 same relu\nglobalavgpool\ndropout 0.1\ndense 10 softmax\n' >"$T/gap.cnn"
$DN train --data optdigits --model "$T/gap.cnn" --epochs 3 --batch 64 --seed 1 --quiet --out "$T/gap.safetensors" >/dev/null
$DN export --model "$T/gap.safetensors" --format onnx --out "$T/gap.onnx" >/dev/null
$DN export --model "$T/gap.safetensors" --format onnx --int8 --calibration 1000 --out "$T/gap-int8.onnx" >/dev/null
agree "onnx.checker full_check on gap.onnx" $PY "$TOOLS" check "$T/gap.onnx"
agree "onnx.checker full_check on gap-int8.onnx" $PY "$TOOLS" check "$T/gap-int8.onnx"
check "the float graph has GlobalAveragePool" $PY -c "
import onnx, sys
sys.exit(0 if 'GlobalAveragePool' in [n.op_type for n in onnx.load('$T/gap.onnx').graph.node] else 1)"
predict_all "$T/gap.safetensors" optdigits 1797 "$T/gap.json"
$DN predict --int8 --calibration 1000 --model "$T/gap.safetensors" --data optdigits --index 0 --count 1797 --top 10 --json \
    >"$T/gap-int8.json"
if [ -d node_modules/onnxruntime-node ]; then
    agree "onnxruntime globalavgpool net, all 1797 optdigits.tes rows vs digitnet" \
        node tests/onnx/ort_check.mjs "$T/gap.onnx" optdigits "$DATA/optdigits/optdigits.tes" "$T/gap.json"
    agree "onnxruntime int8 globalavgpool net vs predict --int8" node tests/onnx/ort_check.mjs \
        "$T/gap-int8.onnx" optdigits "$DATA/optdigits/optdigits.tes" "$T/gap-int8.json" 0.999 0.1 0.005
fi
$DN import "$T/gap.onnx" --out "$T/gap-back.safetensors" >/dev/null
check "export -> import keeps the globalavgpool" sh -c "$DN summary '$T/gap-back.safetensors' | grep -q '^ globalavgpool'"
predict_all "$T/gap-back.safetensors" optdigits 1797 "$T/gap-back.json"
check "export -> import -> the same probabilities" cmp -s "$T/gap.json" "$T/gap-back.json"

# --- an ensemble of 3 R1 networks: three subgraphs from the one input, averaged by Mean; onnxruntime
# against digitnet's averaged probabilities on every optdigits.tes row.
$DN train --data optdigits --model models/optdigits.cnn --epochs 2 --batch 128 --seed 1 --ensemble 3 --quiet \
    --out "$T/ens.safetensors" >/dev/null
$DN export --model "$T/ens.safetensors" --format onnx --out "$T/ens.onnx" >/dev/null
agree "onnx.checker full_check on ens.onnx" $PY "$TOOLS" check "$T/ens.onnx"
predict_all "$T/ens.safetensors" optdigits 1797 "$T/ens.json"
if [ -d node_modules/onnxruntime-node ]; then
    agree "onnxruntime ensemble of 3, all 1797 optdigits.tes rows vs digitnet" \
        node tests/onnx/ort_check.mjs "$T/ens.onnx" optdigits "$DATA/optdigits/optdigits.tes" "$T/ens.json"
fi
expect_error "import of an ensemble graph is refused with one line" "only sequential CNNs can be imported" \
    $DN import "$T/ens.onnx" --out "$T/x.safetensors"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
