#!/bin/sh
# Ensembles (--ensemble K): train prints each member, saves one file that eval, predict (data rows
# and image files), summary and cv read; the file's probabilities are the mean of the members'
# trained one by one (--seed S+m); checkpoints, int8 and exports are refused with one line.
# Prints 'N passed, N failed' and exits non-zero if anything failed.
DN=${DIGITNET:-build/digitnet}
RENDER=$(dirname "$DN")/tests/render_digits
T=$(mktemp -d /tmp/digitnet-ensemble.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
expect_error() {
    name=$1 pattern=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; status=$?
    if [ $status -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$pattern" "$T/err"; then ok "$name"
    else bad "$name" "exit $status, stderr: $(head -c 300 "$T/err")"; fi
}
ARGS="--data optdigits --model models/optdigits.cnn --epochs 3 --batch 64 --threads 1"

# --- train three members, then each member alone
$DN train $ARGS --seed 4 --ensemble 3 --out "$T/ens.safetensors" >"$T/train.txt" 2>&1
check "train --ensemble 3 exits 0" test $? -eq 0
check "train prints Member 1/3 .. 3/3" sh -c "grep -q '^Member 1/3' '$T/train.txt' && grep -q '^Member 3/3' '$T/train.txt'"
check "train prints 9 epochs (3 per member)" test "$(grep -c '^Epoch ' "$T/train.txt")" -eq 9
check "train says 3 members x 3 epochs" grep -q "Trained 3 members x 3 epochs" "$T/train.txt"
check "each epoch line names its member" test "$(grep -c '^Epoch [1-3]/3 (member [1-3]/3) - ' "$T/train.txt")" -eq 9

# --- on 2 threads members 1 and 2 train side by side: the same file, bit for bit
$DN train $(echo "$ARGS" | sed 's/--threads 1/--threads 2/') --seed 4 --ensemble 3 --out "$T/ens2.safetensors" >"$T/train2.txt" 2>&1
check "train --ensemble 3 --threads 2 exits 0" test $? -eq 0
check "2 threads, members side by side: the same weights, bit for bit" weights "$T/ens.safetensors" "$T/ens2.safetensors"
check "2 threads: every member's 3 epochs reported" test "$(grep -c '^Epoch [1-3]/3 (member [1-3]/3) - ' "$T/train2.txt")" -eq 9
$DN train $ARGS --seed 4 --ensemble 3 --json >"$T/train.json" 2>/dev/null
check "train --json: ensemble 3 in the result and the summary" json "$T/train.json" \
    "j['ensemble'] == 3 and j['summary']['ensemble'] == 3 and j['accuracy'] > 0.5"
for s in 4 5 6; do
    $DN train $ARGS --seed $s --out "$T/single$s.safetensors" >/dev/null 2>&1
done

# --- every command that loads a model
$DN eval --model "$T/ens.safetensors" --json >"$T/eval.json"
check "eval of the ensemble file gives train's test accuracy" python3 -c "
import json, sys
t, e = json.load(open('$T/train.json')), json.load(open('$T/eval.json'))
sys.exit(0 if t['accuracy'] == e['accuracy'] and t['loss'] == e['loss'] else 1)"
$DN summary "$T/ens.safetensors" >"$T/summary.txt"
check "summary says: ensemble of 3" grep -q "Ensemble of 3 members" "$T/summary.txt"
$DN summary "$T/single4.safetensors" >"$T/summary1.txt"
check "a single model's summary does not" sh -c "! grep -q 'Ensemble' '$T/summary1.txt'"
for f in ens single4 single5 single6; do
    $DN predict --model "$T/$f.safetensors" --data optdigits --index 0 --count 40 --top 10 --json >"$T/$f.pred.json"
done
check "predict: the ensemble's probabilities are the mean of its members' (float32, bit for bit)" python3 - "$T" <<'PY'
import json, struct, sys
def f32(x):  # rounds to float32; a double sum or quotient of float32 values rounded so is float32's own
    return struct.unpack("f", struct.pack("f", x))[0]
def probs(name):
    out = [[0.0] * 10 for _ in range(40)]
    for i, p in enumerate(json.load(open(f"{sys.argv[1]}/{name}.pred.json"))):
        for t in p["top"]:
            out[i][t["digit"]] = f32(t["probability"])
    return out
a, b, c, ens = probs("single4"), probs("single5"), probs("single6"), probs("ens")
mean = [[f32(f32(f32(a[i][k] + b[i][k]) + c[i][k]) / 3.0) for k in range(10)] for i in range(40)]
sys.exit(0 if mean == ens and ens != a else 1)
PY
if [ -x "$RENDER" ] && mkdir -p "$T/canvas" && "$RENDER" canvases "$T/canvas" 12 1 >/dev/null 2>&1; then
    $DN predict --model "$T/ens.safetensors" --json "$T"/canvas/*.png >"$T/images.json"
    check "predict IMAGE...: 12 drawn digits answered by the ensemble" json "$T/images.json" "len(j) == 12"
else
    echo "skip - predict IMAGE... ($RENDER not built)"
fi
$DN cv --data optdigits --model models/optdigits.cnn --folds 2 --epochs 1 --batch 64 --ensemble 2 --threads 1 \
    >"$T/cv.txt" 2>&1
check "cv --ensemble 2 trains two members per fold" test "$(grep -c '^Member 2/2' "$T/cv.txt")" -eq 2
check "cv --ensemble 2 exits 0 with a mean" grep -q "2-fold cross-validation: accuracy mean" "$T/cv.txt"

# --- under mpirun every member is trained data-parallel: the same file, bit for bit
if command -v mpirun >/dev/null 2>&1 && $DN info | grep -q "^MPI: *Open MPI"; then
    MA="--data optdigits --model models/optdigits.cnn --epochs 1 --batch 128 --seed 2 --ensemble 2 --quiet --threads 1"
    timeout 300 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 $DN train $MA --out "$T/mpi.safetensors" \
        >/dev/null 2>&1
    $DN train $MA --out "$T/one.safetensors" >/dev/null 2>&1
    check "mpirun -np 2 train --ensemble 2 == one process, bit for bit" python3 -c "
import struct, sys
def data(p):
    b = open(p, 'rb').read()
    return b[8 + struct.unpack('<Q', b[:8])[0]:]
sys.exit(0 if data('$T/mpi.safetensors') == data('$T/one.safetensors') else 1)"
else
    echo "skip - mpirun ensemble check (no mpirun or no MPI build)"
fi

# --- refusals, each one line
expect_error "--checkpoint with --ensemble 2 is refused" "checkpoints of ensembles are not supported" \
    $DN train $ARGS --ensemble 2 --checkpoint "$T/x.ckpt"
check "... and writes no checkpoint" test ! -e "$T/x.ckpt"
expect_error "--resume with --ensemble 2 is refused" "--resume cannot be used with --ensemble 2" \
    $DN train --resume "$T/ens.safetensors" --ensemble 2
expect_error "training an ensemble of 3 as 2 members is refused" "is an ensemble of 3: train it with --ensemble 3" \
    $DN train $ARGS --model "$T/ens.safetensors" --ensemble 2
expect_error "eval --int8 of an ensemble is refused" "ensembles cannot be quantised yet" \
    $DN eval --model "$T/ens.safetensors" --int8
expect_error "export --format c of an ensemble is refused" "ensembles cannot be quantised yet" \
    $DN export --model "$T/ens.safetensors" --format c --name digits --out "$T/c"
$DN export --model "$T/ens.safetensors" --format onnx --out "$T/e.onnx" >"$T/export.txt"
check "export --format onnx of an ensemble says so" grep -q "an ensemble of 3, their probabilities averaged by a Mean node" \
    "$T/export.txt"
if /usr/bin/python3 -c "import onnx" 2>/dev/null; then
    check "the ONNX graph: three members' softmaxes into one Mean, metadata ensemble 3" /usr/bin/python3 -c "
import onnx, sys
m = onnx.load('$T/e.onnx')
onnx.checker.check_model(m, full_check=True)
nodes = m.graph.node
mean = [n for n in nodes if n.op_type == 'Mean']
ok = len(mean) == 1 and len(mean[0].input) == 3 and mean[0].output[0] == 'probabilities'
ok = ok and sum(n.op_type == 'Softmax' for n in nodes) == 3 and {p.key: p.value for p in m.metadata_props}['ensemble'] == '3'
sys.exit(0 if ok else 1)"
else
    echo "skip - ONNX graph check: /usr/bin/python3 has no onnx (Debian python3-onnx)"
fi
expect_error "export --format onnx --int8 of an ensemble is refused" "ensembles cannot be quantised yet" \
    $DN export --model "$T/ens.safetensors" --format onnx --int8 --out "$T/e8.onnx"
check "... and writes no ONNX file" test ! -e "$T/e8.onnx"
expect_error "--ensemble 0 is refused" "--ensemble" $DN train $ARGS --ensemble 0
head -c $(($(wc -c <"$T/ens.safetensors") - 100)) "$T/ens.safetensors" >"$T/cut.safetensors"
expect_error "a truncated ensemble file is refused" "cut.safetensors: tensor 'm2" $DN eval --model "$T/cut.safetensors"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
