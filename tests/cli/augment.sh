#!/bin/sh
# digitnet show --augment on the real data in ../shared/data: a grid of each image followed by its
# augmented versions, deterministic for a --seed; bad --augment text is refused with a one-line
# error naming the option, before any data is read and without writing a file.
# Prints 'N passed, N failed' and exits non-zero if anything failed.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-augment.XXXXXX)
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
expect_error() {
    name=$1 pattern=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; status=$?
    if [ $status -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$pattern" "$T/err"; then ok "$name"
    else bad "$name" "exit $status, stderr: $(head -c 300 "$T/err")"; fi
}

# 10 classes x (1 + 7 versions): 24 + 104 * 8 wide, 52 + 124 * 10 high
$DN show --data mnist-10k --augment "shift=2 rotate=12 scale=0.1 elastic=34" --out "$T/mnist.png" >"$T/show.out"
check "show --augment: a 10 x 8 grid (856 x 1292)" png_size "$T/mnist.png" 856 1292
check "show --augment: says what it wrote" grep -q "Wrote $T/mnist.png (10 images, 7 augmented versions each)" "$T/show.out"
$DN show --data mnist-10k --augment "shift=2 rotate=12 scale=0.1 elastic=34" --out "$T/mnist-b.png" >/dev/null
check "show --augment: the same seed draws the same picture" cmp -s "$T/mnist.png" "$T/mnist-b.png"
$DN show --data mnist-10k --augment "shift=2 rotate=12" --out "$T/mnist-c.png" >/dev/null
check "show --augment: other settings draw another picture" sh -c "! cmp -s '$T/mnist.png' '$T/mnist-c.png'"
$DN show --data optdigits --first 3 --augment "shift=0.7 noise=0.05" --out "$T/opt.png" >/dev/null
check "show --first 3 --augment on 8x8 optdigits: 3 rows (856 x 424)" png_size "$T/opt.png" 856 424
# Same images (--first), same title: only the transforms drawn from the seed can tell them apart.
$DN show --data optdigits --first 3 --augment "shift=0.7 noise=0.05" --seed 2 --out "$T/opt-2.png" >/dev/null
check "show --augment: another --seed draws other transforms" sh -c "! cmp -s '$T/opt.png' '$T/opt-2.png'"
expect_error "show --augment: unknown option named" "unknown augment option 'rotat'" \
    $DN show --data optdigits --augment "shift=2 rotat=3" --out "$T/bad.png"
expect_error "show --augment: a value out of range named" "augment option rotate=500" \
    $DN show --data optdigits --augment "rotate=500" --out "$T/bad.png"
expect_error "show --augment: not key=value" "is not key=value" \
    $DN show --data optdigits --augment "shift" --out "$T/bad.png"
check "show --augment: nothing written after a bad option" test ! -e "$T/bad.png"
# --- the report: a model whose "augment" note (run.augment in the file) is set draws the grid and
# lists the settings; one without it does not.
$DN train --data optdigits --model models/optdigits.cnn --epochs 1 --out "$T/m.safetensors" --quiet >/dev/null 2>&1
python3 - "$T/m.safetensors" "$T/aug.safetensors" <<'PY'
import json, struct, sys
d = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', d[:8])[0]
h = json.loads(d[8:8 + n])
h['__metadata__']['run.augment'] = 'shift=1 rotate=10 noise=0.03'
hb = json.dumps(h).encode()
hb += b' ' * ((8 - len(hb) % 8) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hb)) + hb + d[8 + n:])
PY
$DN eval --model "$T/aug.safetensors" --data optdigits --report "$T/rep" --quiet >/dev/null 2>&1
check "report: the augment note draws augmented.png (10 x 8 grid)" png_size "$T/rep/augmented.png" 856 1292
check "report: the page shows the picture" grep -q 'src="augmented.png"' "$T/rep/index.html"
check "report: the settings list the augmentation" grep -q "augmentation</th><td>shift=1 rotate=10 noise=0.03" "$T/rep/index.html"
$DN eval --model "$T/m.safetensors" --data optdigits --report "$T/plain" --quiet >/dev/null 2>&1
check "report: no augment note, no augmentation picture" sh -c "test -s '$T/plain/index.html' && test ! -e '$T/plain/augmented.png' && ! grep -q augmentation '$T/plain/index.html'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
