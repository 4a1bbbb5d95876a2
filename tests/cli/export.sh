#!/bin/sh
# int8: eval --int8 reports every metric, close to float; export --format c writes NAME.h and NAME.c;
# a bad export request (a name that is not a C identifier, a directory that cannot be made, a
# layer that cannot be quantised, an unknown or unavailable format) gets one line on stderr, a
# non-zero exit and writes nothing. Prints 'N passed, N failed'.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-export.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
# refused NAME EXPECTED-TEXT CMD...: fails with exactly one line on stderr containing the text, and
# leaves $T/out empty
refused() {
    name=$1 text=$2
    shift 2
    rm -rf "$T/out" && mkdir "$T/out"
    if "$@" >"$T/stdout" 2>"$T/stderr"; then
        bad "$name" "exit status 0"
    elif [ "$(wc -l <"$T/stderr")" -ne 1 ] || ! grep -q -- "$text" "$T/stderr"; then
        bad "$name" "stderr: $(cat "$T/stderr")"
    elif [ -n "$(ls -A "$T/out")" ]; then
        bad "$name" "left files: $(ls -A "$T/out")"
    else
        ok "$name"
    fi
}

$DN train --data optdigits --model models/optdigits.cnn --epochs 3 --batch 128 --test-split 0.2 --seed 5 --quiet \
    --out "$T/r1.safetensors" >/dev/null
$DN eval --model "$T/r1.safetensors" --json >"$T/float.json"
$DN eval --model "$T/r1.safetensors" --int8 --json >"$T/int8.json"
check "eval --int8 reports every metric" json "$T/int8.json" \
    "j['arithmetic'] == 'int8' and j['n'] == 1124 and len(j['confusion']) == 10 and 'roc_auc_macro' in j"
python3 -c "import json,sys; a=json.load(open(sys.argv[1]))['accuracy']; b=json.load(open(sys.argv[2]))['accuracy']; sys.exit(0 if abs(a-b) <= 0.01 else 1)" \
    "$T/float.json" "$T/int8.json"
check "eval --int8 accuracy within a point of float on the same rows" test $? -eq 0

rm -rf "$T/c"
$DN export --model "$T/r1.safetensors" --format c --name r1_model --out "$T/c" >"$T/export.txt" 2>&1
check "export --format c makes the --out directory and writes NAME.h and NAME.c" test -s "$T/c/r1_model.h" -a -s "$T/c/r1_model.c"
check "export prints float and int8 accuracy, flash and RAM" grep -q "float accuracy .*int8 accuracy" "$T/export.txt"
check "export's int8 accuracy equals eval --int8's" grep -q "int8 accuracy $(python3 -c "import json;print('%.4f' % json.load(open('$T/int8.json'))['accuracy'])")" "$T/export.txt"
check "the header has the fixed interface" grep -q "int r1_model_predict(const uint8_t \*pixels, int8_t logits\[r1_model_CLASSES\]);" "$T/c/r1_model.h"
for macro in INPUT_HEIGHT INPUT_WIDTH INPUT_CHANNELS CLASSES ARENA_BYTES; do
    grep -q "#define r1_model_$macro " "$T/c/r1_model.h" || bad "r1_model_$macro is defined"
done
# The exported C builds as a program on this machine.
cat >"$T/c/main.c" <<'C'
#include "r1_model.h"
#include <stdio.h>
int main(void)
{
    uint8_t pixels[r1_model_INPUT_HEIGHT * r1_model_INPUT_WIDTH * r1_model_INPUT_CHANNELS] = {0};
    int8_t logits[r1_model_CLASSES];
    int c = r1_model_predict(pixels, logits);
    printf("%d\n", c >= 0 && c < r1_model_CLASSES && r1_model_predict(pixels, NULL) == c);
    return 0;
}
C
check "the exported C compiles with -std=c99 -Wall -Wextra -Wpedantic -Werror" \
    gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -o "$T/c/run" "$T/c/main.c" "$T/c/r1_model.c"
check "the exported C runs and answers a class" test "$("$T/c/run")" = 1

# Bad requests: one line, nothing written.
refused "a name that is not a C identifier" "not a C identifier" \
    $DN export --model "$T/r1.safetensors" --format c --name 2fast --out "$T/out"
refused "a name with a dash" "not a C identifier" \
    $DN export --model "$T/r1.safetensors" --format c --name my-net --out "$T/out"
touch "$T/plain"
refused "a directory that is a file" "cannot create" \
    $DN export --model "$T/r1.safetensors" --format c --name net --out "$T/plain"
refused "a directory whose parent does not exist" "out/missing/c: cannot create the directory" \
    $DN export --model "$T/r1.safetensors" --format c --name net --out "$T/out/missing/c"
printf 'input 8x8x1\nconv2d 4 3x3 same relu\nmaxpool 2x2\nbatchnorm\nflatten\ndense 10 softmax\n' >"$T/bn.cnn"
$DN train --data optdigits --model "$T/bn.cnn" --epochs 1 --quiet --out "$T/bn.safetensors" >/dev/null
refused "a layer that cannot be quantised" "layer 3 (batchnorm" \
    $DN export --model "$T/bn.safetensors" --format c --name net --out "$T/out"
refused "eval --int8 of a layer that cannot be quantised" "layer 3 (batchnorm" \
    $DN eval --model "$T/bn.safetensors" --int8
$DN export --model "$T/r1.safetensors" --format onnx --out "$T/r1.onnx" --quiet >/dev/null 2>&1
check "--format onnx goes to the ONNX writer (tests/onnx checks the file)" test -s "$T/r1.onnx"
refused "export without --format" "needs --format onnx" $DN export --model "$T/r1.safetensors" --name net --out "$T/out"
refused "an unknown --format" "is not c or onnx" \
    $DN export --model "$T/r1.safetensors" --format tflite --name net --out "$T/out"
refused "export without --name" "needs --name" $DN export --model "$T/r1.safetensors" --format c --out "$T/out"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
