#!/bin/sh
# digitnet predict IMAGE...: real MNIST test digits drawn as a user would (dark ink on 280x280 white
# canvases, anywhere and at any size) must be recognised about as well as the raw test images; every
# file format reads the same; blank and broken files are answered as documented.
# Prints 'N passed, N failed' and exits non-zero if anything failed.
DN=${DIGITNET:-build/digitnet}
DIGITNET=$DN
RENDER=$(dirname "$DN")/tests/render_digits
T=$(mktemp -d /tmp/digitnet-images.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

. tests/tools/test_model.sh
if ! test_model || [ ! -x "$RENDER" ]; then bad "test model and $RENDER"; finish; fi

# --- accuracy through the whole image path vs on the raw test images (the same 1000 digits)
N=1000
mkdir -p "$T/canvas"
"$RENDER" canvases "$T/canvas" $N 1
check "$N canvases rendered" test "$(ls "$T/canvas" | grep -c '\.png$')" -eq $N
$DN predict --model "$MODEL" --data mnist-10k --index 0 --count $N --json >"$T/raw.json"
$DN predict --model "$MODEL" --json "$T"/canvas/*.png >"$T/canvas.json"; status=$?
check "predict on $N PNG files exits 0" test $status -eq 0
python3 - "$T/raw.json" "$T/canvas.json" "$T/canvas/labels.txt" >"$T/acc" <<'EOF'
import json, os, sys
raw = json.load(open(sys.argv[1]))
img = json.load(open(sys.argv[2]))
labels = dict(line.split() for line in open(sys.argv[3]))
raw_acc = sum(p["digit"] == p["label"] for p in raw) / len(raw)
img_acc = sum(p["digit"] == int(labels[os.path.basename(p["file"])]) for p in img) / len(img)
print(f"{raw_acc:.4f} {img_acc:.4f} {len(img)}")
EOF
read raw_acc img_acc n_img <"$T/acc"
echo "       accuracy: raw test images $raw_acc, drawn on canvases and read as PNG $img_acc ($n_img files)"
check "every canvas got an answer" test "$n_img" = $N
check "canvas accuracy within 2 points of raw ($img_acc vs $raw_acc)" \
    python3 -c "import sys; sys.exit(0 if $img_acc >= $raw_acc - 0.02 else 1)"
check "raw accuracy is that of a working model (>= 0.95)" python3 -c "import sys; sys.exit(0 if $raw_acc >= 0.95 else 1)"

# --- every format and alpha: the same digit (test image 0 is a 7)
mkdir -p "$T/formats"
label=$("$RENDER" formats "$T/formats" 0)
$DN predict --model "$MODEL" --json "$T"/formats/digit.* >"$T/formats.json"
check "JPEG, BMP, PPM, PGM and RGBA PNG all read as $label" json "$T/formats.json" \
    "len(j) == 5 and all(p['digit'] == $label for p in j)"
check "the five formats agree on the probability within 0.05" json "$T/formats.json" \
    "max(p['probability'] for p in j) - min(p['probability'] for p in j) < 0.05"

# --- photo-like pictures: grey pencil on unevenly lit, noisy paper, blurred (test images 100..139)
mkdir -p "$T/photos"
i=100
while [ $i -lt 140 ]; do
    echo "$i.png $("$RENDER" photo "$T/photos/$i.png" $i $i)" >>"$T/photos/labels.txt"
    i=$((i + 1))
done
$DN predict --model "$MODEL" --json "$T"/photos/*.png >"$T/photos.json"
check "photo-like pictures: at least 37 of 40 right" python3 -c "
import json, os
labels = dict(line.split() for line in open('$T/photos/labels.txt'))
j = json.load(open('$T/photos.json'))
right = sum(p['digit'] == int(labels[os.path.basename(p['file'])]) for p in j)
print('       photo-like pictures: %d of %d right' % (right, len(j)))
assert len(j) == 40 and right >= 37"

# --- text output, --top, --save-preprocessed
mkdir -p "$T/other"
cp "$T/canvas/0000.png" "$T/other/0000.png"
$DN predict --model "$MODEL" --top 3 --save-preprocessed "$T/seen" "$T/canvas/0000.png" "$T/canvas/0001.png" \
    "$T/other/0000.png" >"$T/text"
check "text output: file, digit, probability and two runners-up" \
    grep -Eq "^$T/canvas/0000.png: 7 \([01]\.[0-9]{4}\)  [0-9] \([01]\.[0-9]{4}\)  [0-9] \([01]\.[0-9]{4}\)$" "$T/text"
check "--save-preprocessed wrote one PNG per image, unique names" \
    test "$(ls "$T/seen" | tr '\n' ' ')" = "0000-3.png 0000.png 0001.png "
check "the saved images are 28x28 8-bit grey PNGs" python3 -c "
import struct, sys
for name in ['0000.png', '0001.png']:
    b = open('$T/seen/' + name, 'rb').read()
    assert b[:8] == b'\x89PNG\r\n\x1a\n', name
    w, h, depth, colour = struct.unpack('>IIBB', b[16:26])
    assert (w, h, depth, colour) == (28, 28, 8, 0), (name, w, h, depth, colour)"
check "no temporary files left in the preprocessed directory" test "$(ls -a "$T/seen" | grep -c tmp)" -eq 0
$DN predict --model "$MODEL" --json "$T/seen/0000.png" >"$T/again.json"
check "the saved 28x28 image predicts the same digit again" json "$T/again.json" "j[0]['digit'] == 7"

# --- blank and broken files: blank is an answer (exit 0), unreadable is a failure (exit 1)
python3 -c "
import struct, zlib
def png(w, h, v):
    raw = b''.join(b'\0' + bytes([v]) * w for _ in range(h))
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
open('$T/blank.png', 'wb').write(png(280, 280, 255))
open('$T/black.png', 'wb').write(png(50, 40, 0))
"
$DN predict --model "$MODEL" "$T/blank.png" "$T/black.png" >"$T/blank.out"; status=$?
check "blank images: 'no digit found', exit 0" test $status -eq 0 -a "$(grep -c ': no digit found$' "$T/blank.out")" -eq 2
head -c $(($(wc -c <"$T/canvas/0002.png") / 2)) "$T/canvas/0002.png" >"$T/truncated.png"
printf 'GIF89a....' >"$T/wrong.gif"
$DN predict --model "$MODEL" --json "$T/canvas/0000.png" "$T/truncated.png" "$T/missing.png" "$T/wrong.gif" \
    "$T/blank.png" >"$T/mixed.json" 2>"$T/mixed.err"; status=$?
check "a file that cannot be read makes the exit status 1" test $status -eq 1
check "... but every file is in the JSON, with the reason" json "$T/mixed.json" \
    "[p['digit'] for p in j] == [7, None, None, None, None] and 'PNG' in j[1]['error'] and 'cannot open' in j[2]['error'] and 'not a PNG, JPEG' in j[3]['error'] and j[4]['error'] == 'no digit found'"
check "one line on stderr per unreadable file" test "$(wc -l <"$T/mixed.err")" -eq 3
$DN predict --model models/mnist.cnn "$T/canvas/0000.png" >/dev/null 2>"$T/spec.err"; status=$?
check "a spec instead of a trained model is refused" test $status -ne 0 -a -s "$T/spec.err"

# --- an 8x8 optdigits model gets the 8x8 pipeline
$DN train --data optdigits --model models/optdigits.cnn --epochs 1 --batch 64 --seed 1 --quiet \
    --out "$T/opt.safetensors" >/dev/null 2>&1
$DN predict --model "$T/opt.safetensors" --json --save-preprocessed "$T/seen8" "$T/canvas/0000.png" >"$T/opt.json"
check "optdigits model: a prediction and an 8x8 preprocessed image" json "$T/opt.json" \
    "j[0]['digit'] == j[0]['top'][0]['digit'] and j[0]['top'][0]['probability'] >= j[0]['top'][1]['probability'] > 0 and open(j[0]['preprocessed'], 'rb').read()[16:24] == bytes([0,0,0,8,0,0,0,8])"

# --- a model whose activations overflow (every weight 3e38, each one finite): predict and
# eval --index refuse to print NaN probabilities with success
python3 tests/tools/overflow_model.py "$MODEL" "$T/overflow.safetensors"
$DN predict --model "$T/overflow.safetensors" "$T/canvas/0000.png" >"$T/nan.out" 2>"$T/nan.err"; status=$?
check "an overflowing model: predict exits 1, saying why, printing no probability" \
    sh -c "[ $status -eq 1 ] && grep -q 'output is not a number' '$T/nan.err' && ! grep -qi nan '$T/nan.out'"
$DN eval --model "$T/overflow.safetensors" --index 0 --count 3 >"$T/nan.out" 2>"$T/nan.err"; status=$?
check "... eval --index too" sh -c "[ $status -eq 1 ] && ! grep -qi nan '$T/nan.out'"

finish
