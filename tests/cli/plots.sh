#!/bin/sh
# End-to-end runs of the picture commands and --report on the real data in ../shared/data:
# digitnet show, digitnet features, and the files a report directory must hold.
# Prints 'N passed, N failed' and exits non-zero if anything failed.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-plots.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
# png_size FILE W H: a PNG (signature and IHDR) of exactly W x H pixels
png_size() {
    python3 -c "
import struct, sys
d = open(sys.argv[1], 'rb').read(24)
ok = d[:8] == b'\x89PNG\r\n\x1a\n' and d[12:16] == b'IHDR' and struct.unpack('>II', d[16:24]) == (int(sys.argv[2]), int(sys.argv[3]))
sys.exit(0 if ok else 1)" "$@"
}
is_png() { python3 -c "import sys; sys.exit(0 if open(sys.argv[1], 'rb').read(8) == b'\\x89PNG\\r\\n\\x1a\\n' else 1)" "$1"; }
expect_error() {
    name=$1 pattern=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; status=$?
    if [ $status -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$pattern" "$T/err"; then ok "$name"
    else bad "$name" "exit $status, stderr: $(head -c 300 "$T/err")"; fi
}

# --- show
$DN show --data optdigits --out "$T/per-class.png" >"$T/show.out"
check "show: per class by default, 10 images in one row (1064 x 176)" png_size "$T/per-class.png" 1064 176
check "show: says what it wrote" grep -q "Wrote $T/per-class.png (10 images)" "$T/show.out"
$DN show --data optdigits --per-class --seed 5 --out "$T/per-class-5.png" >/dev/null
check "show: another --seed picks other images" sh -c "! cmp -s '$T/per-class.png' '$T/per-class-5.png'"
$DN show --data optdigits --per-class --seed 5 --out "$T/per-class-5b.png" >/dev/null
check "show: the same --seed draws the same picture" cmp -s "$T/per-class-5.png" "$T/per-class-5b.png"
$DN show --data mnist-10k --first 25 --out "$T/first.png" --quiet >"$T/quiet.out"
check "show --first 25: three rows of up to 10 (1064 x 424)" png_size "$T/first.png" 1064 424
check "show --quiet prints nothing" test ! -s "$T/quiet.out"
$DN show --data optdigits --first 4 --out "$T/first.svg" >/dev/null
check "show: .svg writes an SVG" grep -q "<svg" "$T/first.svg"
expect_error "show without --out" "needs --out" $DN show --data optdigits
expect_error "show with --per-class and --first" "choose one" $DN show --data optdigits --per-class --first 3 --out "$T/x.png"
expect_error "show --first 0" "--first" $DN show --data optdigits --first 0 --out "$T/x.png"
expect_error "show into a missing directory" "$T/missing/x.png" $DN show --data optdigits --out "$T/missing/x.png"
check "a failed show leaves no file" test ! -e "$T/x.png"

# --- a short R1 run with a report, then eval and features on the saved model
$DN train --data optdigits --model models/optdigits.cnn --epochs 2 --batch 128 --test-split 0.2 --seed 3 \
    --out "$T/r1.safetensors" --report "$T/reports/train" --json >"$T/train.json" 2>/dev/null
R=$T/reports/train
check "train --report: created the nested directory and index.html" test -s "$R/index.html"
check "train --report: metrics.json is the --json object" python3 -c "
import json, sys
a = json.load(open('$R/metrics.json')); b = json.load(open('$T/train.json'))
sys.exit(0 if a == b else 1)"
check "train --report: confusion.csv is metrics.json's matrix" python3 -c "
import csv, json, sys
rows = list(csv.reader(open('$R/confusion.csv')))
j = json.load(open('$R/metrics.json'))
ok = rows[0] == ['true\\\\predicted'] + [str(c) for c in range(10)] and [[int(v) for v in r[1:]] for r in rows[1:]] == j['confusion']
sys.exit(0 if ok else 1)"
for f in confusion.png roc.png curves.png mistakes.png samples.png features-01-conv2d.png features-08-maxpool.png; do
    check "train --report: $f is a PNG" is_png "$R/$f"
done
sizes() { png_size "$R/confusion.png" 640 580 && png_size "$R/curves.png" 1000 420 && png_size "$R/roc.png" 760 600; }
check "train --report: confusion 640 x 580, curves 1000 x 420, ROC 760 x 600" sizes
check "train --report: the page shows every picture in the directory" python3 -c "
import os, re, sys
html = open('$R/index.html').read()
pngs = sorted(f for f in os.listdir('$R') if f.endswith('.png'))
shown = sorted(set(re.findall(r'<img src=\"([^\"]+)\"', html)))
sys.exit(0 if pngs == shown and len(pngs) == 11 else 1)"
check "train --report: the accuracy element holds metrics.json's accuracy, 4 decimals" python3 -c "
import json, re, sys
html = open('$R/index.html').read()
m = re.search(r'id=\"accuracy\">([^<]*)<', html)
sys.exit(0 if m and m.group(1) == '%.4f' % json.load(open('$R/metrics.json'))['accuracy'] else 1)"
check "train --report: no temporary files left" sh -c "! ls '$R' | grep -q tmp"
check "train --report: nothing fetched from elsewhere" sh -c "! grep -Eq '(src|href)=\"(https?:)?//' '$R/index.html'"

$DN eval --model "$T/r1.safetensors" --report "$T/reports/eval" >"$T/eval.out"
check "eval --report: prints where the report is" grep -q "Report: $T/reports/eval/index.html" "$T/eval.out"
check "eval --report: no training curves, but samples and feature maps" sh -c \
    "test ! -e '$T/reports/eval/curves.png' && test -s '$T/reports/eval/samples.png' && test -s '$T/reports/eval/features-01-conv2d.png'"
check "eval --report: same accuracy as the training report (same test rows)" python3 -c "
import json, sys
a = json.load(open('$R/metrics.json'))['accuracy']; b = json.load(open('$T/reports/eval/metrics.json'))['accuracy']
sys.exit(0 if abs(a - b) < 1e-12 else 1)"

$DN cv --data optdigits --model models/optdigits.cnn --folds 2 --epochs 1 --batch 128 --report "$T/reports/cv" --quiet >/dev/null
check "cv --report: the folds picture (1000 x 420)" png_size "$T/reports/cv/cv.png" 1000 420
check "cv --report: confusion, ROC and mistakes; no samples or feature maps" sh -c \
    "test -s '$T/reports/cv/confusion.png' && test -s '$T/reports/cv/roc.png' && test -s '$T/reports/cv/mistakes.png' && test ! -e '$T/reports/cv/samples.png' && ! ls '$T/reports/cv' | grep -q features"
check "cv --report: the fold table" grep -q '<table id="folds">' "$T/reports/cv/index.html"
: >"$T/afile"
expect_error "--report where a file is in the way" "a file of that name is in the way" \
    $DN eval --model "$T/r1.safetensors" --report "$T/afile/report" --quiet

# --- features
$DN features --model "$T/r1.safetensors" --index 7 --out "$T/feat/a" >"$T/feat.out"
check "features: one picture per conv2d and maxpool layer (6)" test "$(ls "$T/feat/a" | grep -c '^features-.*\.png$')" -eq 6
check "features: conv2d 16 on 8x8 is one row of 16 tiles (1168 x 214)" png_size "$T/feat/a/features-01-conv2d.png" 1168 214
check "features: conv2d 64 is four rows (1168 x 304)" png_size "$T/feat/a/features-07-conv2d.png" 1168 304
check "features: lists the files" grep -q "features-08-maxpool.png  maxpool 2x2" "$T/feat.out"
$DN features --model "$T/r1.safetensors" --index 8 --out "$T/feat/b" >/dev/null
check "features: another image gives other pictures" sh -c "! cmp -s '$T/feat/a/features-01-conv2d.png' '$T/feat/b/features-01-conv2d.png'"
expect_error "features on a spec" "is a spec" $DN features --model models/optdigits.cnn --index 0 --out "$T/feat/c"
expect_error "features --index past the end" "--index 5000" $DN features --model "$T/r1.safetensors" --index 5000 --out "$T/feat/c"
expect_error "features without --out" "needs --out" $DN features --model "$T/r1.safetensors" --index 0
expect_error "features: model and data shapes differ" "8x8x1" \
    $DN features --model "$T/r1.safetensors" --data mnist-10k --index 0 --out "$T/feat/c"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
