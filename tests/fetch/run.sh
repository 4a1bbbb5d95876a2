#!/bin/sh
# digitnet fetch over real HTTP, no mocks: tests/fetch/server.py serves the real files of
# ../shared/data (and Debian's Fashion-MNIST, when installed) on a free loopback port, under the
# paths of the official mirrors, plus paths that misbehave (corrupted copy, HTML page, connection
# cut mid-transfer, server ignoring Range, redirect loop, stall, 404). Checks that good files verify
# and land, bad ones are refused and leave nothing under a final name, mirrors fall back in order,
# cut transfers resume with a Range request, failures are one clear line within a bounded time; and
# that `digitnet train --fetch` and `make demo`'s script download optdigits into an empty
# $DIGITNET_DATA on a machine that has no data set anywhere.
# Prints 'N passed, N failed' and exits non-zero if anything failed.
ROOT=$(pwd)
DN=${DIGITNET:-build/digitnet}
case $DN in /*) ;; *) DN=$ROOT/$DN ;; esac
DATA=${DIGITNET_TEST_DATA:-../shared/data}
case $DATA in /*) ;; *) DATA=$ROOT/$DATA ;; esac
T=$(mktemp -d /tmp/digitnet-fetch.XXXXXX)
. "$(dirname "$0")/../lib.sh"
skipped=0
skip() { skipped=$((skipped + 1)); echo "skip - $1"; }

# Never read or write the real cache or data of whoever runs this. ($HOME stays: tools such as
# python3 may need it; it is changed only around the one command that tests ~/.cache.)
unset DIGITNET_DATA DIGITNET_MIRROR DIGITNET_FETCH_CONNECT_SECONDS DIGITNET_FETCH_STALL_SECONDS DIGITNET_FETCH_MIN_RATE
export XDG_CACHE_HOME="$T/xdg"

python3 "$ROOT/tests/fetch/server.py" "$DATA" "$T/port" "$T/log" 2>"$T/server.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; [ -n "$KEEP" ] || rm -rf "$T"' EXIT
i=0
while [ ! -s "$T/port" ] && [ $i -lt 200 ] && kill -0 $SERVER 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if [ ! -s "$T/port" ]; then
    echo "the test server did not start: $(cat "$T/server.err")"
    echo "0 passed, 1 failed"
    exit 1
fi
U=http://127.0.0.1:$(cat "$T/port")
# A loopback port nobody listens on: "offline".
CLOSED=http://127.0.0.1:$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")/
ZIP=optical+recognition+of+handwritten+digits.zip
UCI=static/public/80/
UCI_OLD=ml/machine-learning-databases/optdigits/

# fetch NAME ARGS...: runs `digitnet fetch` into $T/out, $T/err, $T/status and $T/seconds
fetch() {
    t0=$(date +%s)
    "$DN" fetch "$@" >"$T/out" 2>"$T/err"
    echo $? >"$T/status"
    echo $(($(date +%s) - t0)) >"$T/seconds"
}
status() { cat "$T/status"; }
# failed_with PATTERN: non-zero exit, and the last line on stderr is one "digitnet: ..." line matching
failed_with() {
    [ "$(status)" -ne 0 ] && tail -1 "$T/err" | grep -q "^digitnet: .*$1"
}
last_error() { echo "exit $(status), last line: $(tail -1 "$T/err")"; }
# same FILE REAL: the landed file is byte for byte the real one
same() { cmp -s "$1" "$2"; }
# requests PATTERN: how many logged requests match (lines "MODE PATH RANGE STATUS")
requests() { grep -c -- "$1" "$T/log"; }
# clean DIR: nothing but verified files in DIR (no .part, no temporary names)
no_leftovers() { [ -z "$(ls -A "$1" | grep -E '\.part$|\.tmp-')" ]; }
no_optdigits() { [ ! -e "$1/optdigits.tra" ] && [ ! -e "$1/optdigits.tes" ]; }

OPT=$DATA/optdigits
MN=$DATA/mnist-10k

# --- a good download: UCI's zip, unpacked, verified, in place
D=$T/d-good
fetch optdigits --data-dir "$D" --mirror "$U/good/$UCI"
check "optdigits from the zip: exit 0" test "$(status)" -eq 0
check "optdigits.tra landed, byte for byte UCI's" same "$D/optdigits/optdigits.tra" "$OPT/optdigits.tra"
check "optdigits.tes landed, byte for byte UCI's" same "$D/optdigits/optdigits.tes" "$OPT/optdigits.tes"
check "no zip, .part or temporary file left" test "$(ls -A "$D/optdigits" | wc -l)" -eq 2
check "stdout says verified and where" grep -q "optdigits: ready in $D/optdigits" "$T/out"
check "... and each file's checksum was verified" test "$(grep -c 'checksum verified' "$T/out")" -eq 2
n_before=$(wc -l <"$T/log")
fetch optdigits --data-dir "$D" --mirror "$U/good/$UCI"
check "second fetch: nothing downloaded, files re-verified in place" \
    sh -c "[ $(status) -eq 0 ] && [ $(wc -l <"$T/log") -eq $n_before ] && [ \$(grep -c 'already here, checksum verified' '$T/out') -eq 2 ]"

# The downloaded set is usable: the data loader finds it under --data-dir.
"$DN" show --data optdigits --data-dir "$D" --first 3 --out "$T/show.png" >/dev/null 2>"$T/show.err"
check "the fetched set loads (show --data-dir)" test -s "$T/show.png"

# --- a mirror of loose files: the zip is 404 there, the raw files are fetched instead
D=$T/d-raw
fetch optdigits --data-dir "$D" --mirror "$U/good/$UCI_OLD"
check "loose-file mirror: zip 404, then optdigits.tra and .tes" \
    sh -c "[ $(status) -eq 0 ] && grep -q 'good /$UCI_OLD$ZIP - 404' '$T/log' && grep -q 'good /${UCI_OLD}optdigits.tes - 200' '$T/log'"
check "loose files verified and landed" same "$D/optdigits/optdigits.tra" "$OPT/optdigits.tra"

# --- a corrupted archive: a well-formed zip whose optdigits.tes differs from UCI's by one digit
D=$T/d-corrupt
fetch optdigits --data-dir "$D" --mirror "$U/corrupt/$UCI"
check "corrupted member refused: checksum mismatch" failed_with "optdigits.tes: checksum mismatch"
check "... and nothing landed" no_optdigits "$D/optdigits"
check "... and no .part or temporary file left" no_leftovers "$D/optdigits"

# --- corrupted MNIST file (same size, one byte changed) and the wrong MNIST training file
D=$T/d-mnist
fetch mnist --data-dir "$D" --mirror "$U/corrupt/mnist/"
check "corrupted t10k-labels refused (sha256)" grep -q "t10k-labels-idx1-ubyte.gz: checksum mismatch: sha256" "$T/err"
check "... nothing landed, no .part left" \
    sh -c "[ $(status) -ne 0 ] && [ -z \"\$(ls -A '$D/mnist')\" ]"
fetch mnist --data-dir "$D" --mirror "$U/good/mnist/"
check "canonical t10k images + labels verified (size, md5, sha256) and landed" \
    sh -c "cmp -s '$D/mnist/t10k-images-idx3-ubyte.gz' '$MN/t10k-images-idx3-ubyte.gz' && cmp -s '$D/mnist/t10k-labels-idx1-ubyte.gz' '$MN/t10k-labels-idx1-ubyte.gz'"
check "the 10k-image training subset is not MNIST's training file: refused by size" \
    failed_with "train-images-idx3-ubyte.gz: the server has 1613309 bytes, expected 9912422"
check "... and no training file landed" \
    sh -c "[ ! -e '$D/mnist/train-images-idx3-ubyte.gz' ] && [ ! -e '$D/mnist/train-labels-idx1-ubyte.gz' ] && [ -z \"\$(ls -A '$D/mnist' | grep part)\" ]"

# --- an HTML page instead of the file, by Content-Type and by content
D=$T/d-html
fetch optdigits --data-dir "$D" --mirror "$U/html/$UCI"
check "HTML page (text/html) refused" failed_with "sent an HTML page (Content-Type text/html)"
check "... nothing landed" sh -c "[ -z \"\$(ls -A '$D/optdigits')\" ]"
fetch optdigits --data-dir "$D" --mirror "$U/sniff/$UCI"
check "HTML page sent as application/octet-stream refused (by its first bytes)" failed_with "sent an HTML page, not the file"
check "... nothing landed" sh -c "[ -z \"\$(ls -A '$D/optdigits')\" ]"
fetch mnist --data-dir "$D" --mirror "$U/sniff/mnist/"
check "an HTML page in place of a file of known size: refused by its size, before its body" \
    failed_with "train-images-idx3-ubyte.gz: the server has [0-9]* bytes, expected 9912422"
check "... every file reported, nothing landed" \
    sh -c "[ \$(grep -c 'the server has [0-9]* bytes' '$T/err') -eq 4 ] && [ -z \"\$(ls -A '$D/mnist')\" ]"

# --- mirrors in order: the first failing falls back to the second
D=$T/d-fallback
fetch optdigits --data-dir "$D" --mirror "$U/missing/$UCI" --mirror "$U/corrupt/$UCI" --mirror "$U/good/$UCI"
check "404 mirror, then corrupted mirror, then a good one: exit 0" test "$(status)" -eq 0
check "... each tried in order" sh -c "grep -n '$ZIP' '$T/log' | tail -3 | awk '{print \$1}' | tr '\n' ' ' | grep -q 'missing.*corrupt.*good'"
check "... each failure reported as 'trying the next mirror' (404 for .tra and .tes, then the checksum)" \
    sh -c "[ \$(grep -c 'HTTP 404; trying the next mirror' '$T/err') -eq 2 ] && [ \$(grep -c 'checksum mismatch.*trying the next mirror' '$T/err') -eq 1 ]"
check "... and the good copy landed" same "$D/optdigits/optdigits.tes" "$OPT/optdigits.tes"
D=$T/d-fallback-mnist
fetch mnist --data-dir "$D" --mirror "$U/missing/mnist/" --mirror "$U/good/cvdf-datasets/mnist/"
check "MNIST: 404 mirror, then the second mirror's t10k files" \
    sh -c "cmp -s '$D/mnist/t10k-labels-idx1-ubyte.gz' '$MN/t10k-labels-idx1-ubyte.gz' && grep -q 'no mirror worked (2 tried)' '$T/err'"

# --- a transfer cut in the middle: kept as .part, resumed with a Range request by the next run
D=$T/d-cut
fetch optdigits --data-dir "$D" --mirror "$U/cut/$UCI"
check "connection cut every time: clear error" failed_with "the connection was cut after [0-9]* of [0-9]* bytes"
check "... resumed on the same mirror (3 requests, 2 with Range)" \
    sh -c "[ $(requests "^cut /$UCI$ZIP") -eq 3 ] && [ $(requests "^cut /$UCI$ZIP bytes=[0-9]*- 206") -eq 2 ]"
check "... nothing under a final name, the partial kept" \
    sh -c "[ ! -e '$D/optdigits/optdigits.tra' ] && [ -s '$D/optdigits/$ZIP.part' ]"
kept=$(wc -c <"$D/optdigits/$ZIP.part")
fetch optdigits --data-dir "$D" --mirror "$U/good/$UCI"
check "second run sends Range: bytes=$kept- and gets 206" grep -q "^good /$UCI$ZIP bytes=$kept- 206" "$T/log"
check "... completes, verifies and lands" \
    sh -c "[ $(status) -eq 0 ] && cmp -s '$D/optdigits/optdigits.tra' '$OPT/optdigits.tra' && [ ! -e '$D/optdigits/$ZIP.part' ]"
D=$T/d-cutonce
fetch mnist --data-dir "$D" --mirror "$U/cutonce/mnist/"
check "cut once: resumed within the same run (Range, 206) and verified" \
    sh -c "grep -q '^cutonce /mnist/t10k-images-idx3-ubyte.gz bytes=[0-9]*- 206' '$T/log' && cmp -s '$D/mnist/t10k-images-idx3-ubyte.gz' '$MN/t10k-images-idx3-ubyte.gz'"

# --- leftovers that are not a prefix of the file
D=$T/d-norange
mkdir -p "$D/optdigits"
head -c 5000 /dev/urandom >"$D/optdigits/$ZIP.part"
fetch optdigits --data-dir "$D" --mirror "$U/norange/$UCI"
check "server ignoring Range (200 to a Range request): restarts cleanly" \
    sh -c "[ $(status) -eq 0 ] && grep -q '^norange /$UCI$ZIP bytes=5000- 200' '$T/log' && cmp -s '$D/optdigits/optdigits.tes' '$OPT/optdigits.tes'"
D=$T/d-stale
mkdir -p "$D/mnist"
head -c 1000 /dev/urandom >"$D/mnist/t10k-labels-idx1-ubyte.gz.part"
fetch mnist --data-dir "$D" --mirror "$U/good/mnist/"
check "a stale .part that resumes into a bad file: detected, downloaded again from the start" \
    sh -c "grep -q 'good /mnist/t10k-labels-idx1-ubyte.gz bytes=1000- 206' '$T/log' && grep -q 't10k-labels-idx1-ubyte.gz: checksum mismatch.*trying again' '$T/err' && cmp -s '$D/mnist/t10k-labels-idx1-ubyte.gz' '$MN/t10k-labels-idx1-ubyte.gz'"
dd if=/dev/zero of="$D/mnist/t10k-images-idx3-ubyte.gz" bs=1 count=1 seek=100 conv=notrunc 2>/dev/null
n_before=$(requests "/mnist/t10k-images-idx3-ubyte.gz")
fetch mnist --data-dir "$D" --mirror "$U/good/mnist/"
check "a damaged file under the final name is not taken as present: fetched again" \
    sh -c "[ $(requests "/mnist/t10k-images-idx3-ubyte.gz") -eq $((n_before + 1)) ] && cmp -s '$D/mnist/t10k-images-idx3-ubyte.gz' '$MN/t10k-images-idx3-ubyte.gz'"

# --- redirect loop, stall, nobody listening: clear errors within a bounded time
D=$T/d-loop
fetch optdigits --data-dir "$D" --mirror "$U/loop/$UCI"
check "redirect loop refused" failed_with "more than 5 redirects: a redirect loop"
check "... after 6 requests, within 10 s" sh -c "[ $(requests "^loop ") -eq 6 ] && [ $(cat "$T/seconds") -le 10 ]"
check "... nothing landed" no_optdigits "$D/optdigits"
D=$T/d-stall
(export DIGITNET_FETCH_STALL_SECONDS=2; fetch optdigits --data-dir "$D" --mirror "$U/stall/$UCI")
check "stalled server: clear error" failed_with "the server stalled (under 1024 bytes/s for 2 s) after [0-9]* of [0-9]* bytes"
check "... within 20 s (stall limit 2 s)" test "$(cat "$T/seconds")" -le 20
check "... nothing under a final name; the partial kept to resume" \
    sh -c "[ ! -e '$D/optdigits/optdigits.tra' ] && [ -s '$D/optdigits/$ZIP.part' ]"
D=$T/d-trickle
(export DIGITNET_FETCH_STALL_SECONDS=2 DIGITNET_FETCH_CONNECT_SECONDS=1 DIGITNET_FETCH_MIN_RATE=100000; fetch optdigits --data-dir "$D" --mirror "$U/trickle/$UCI" --mirror "$U/good/$UCI")
check "a mirror trickling above the stall limit: cut off by the file's time budget" \
    grep -q "too slow: [0-9]* of [0-9]* bytes in the [0-9]* s allowed for this file (under 100000 bytes/s on average)" "$T/err"
check "... then the next mirror, within 30 s" \
    sh -c "[ $(status) -eq 0 ] && [ $(cat "$T/seconds") -le 30 ] && cmp -s '$D/optdigits/optdigits.tra' '$OPT/optdigits.tra'"
(export DIGITNET_FETCH_MIN_RATE=fast; fetch optdigits --data-dir "$D")
check "a bad minimum rate in the environment is refused" grep -q "DIGITNET_FETCH_MIN_RATE: 'fast' is not a number" "$T/err"

# --- a shared data directory: a symlink or hard link planted at a .part is never written through
D=$T/d-symlink
mkdir -p "$D/optdigits" "$D/mnist"
echo "someone else's file" >"$T/victim"
ln -s "$T/victim" "$D/optdigits/$ZIP.part"
ln -s "$T/victim" "$D/mnist/t10k-labels-idx1-ubyte.gz.part"
fetch optdigits --data-dir "$D" --mirror "$U/good/$UCI"
check "a symlink at the archive's .part: refused, named in the error" failed_with "$ZIP.part: is a symbolic link; refusing to write through it"
fetch mnist --data-dir "$D" --mirror "$U/good/mnist/"
check "a symlink at a file's .part: refused" grep -q "t10k-labels-idx1-ubyte.gz.part: is a symbolic link" "$T/err"
check "... the file it points to is untouched" sh -c "[ \"\$(cat '$T/victim')\" = \"someone else's file\" ]"
rm -f "$D/optdigits/$ZIP.part"
ln "$T/victim" "$D/optdigits/$ZIP.part"
fetch optdigits --data-dir "$D" --mirror "$U/good/$UCI"
check "a hard link at a .part: refused" failed_with "$ZIP.part: not a regular file of its own"
check "... the linked file is untouched" sh -c "[ \"\$(cat '$T/victim')\" = \"someone else's file\" ]"

D=$T/d-offline
fetch optdigits --data-dir "$D" --mirror "$CLOSED"
check "nobody listening: one-line error naming the URL" failed_with "${CLOSED}$ZIP: .*onnect"
check "... nothing left behind" sh -c "[ -z \"\$(ls -A '$D/optdigits')\" ]"
fetch optdigits --data-dir "$D" --mirror "ftp://example.org/"
check "a mirror that is not http(s) is refused" failed_with "mirror 'ftp://example.org/' is not an http:// or https:// URL"
fetch kmnist --data-dir "$D"
check "an unknown set is refused" failed_with "unknown data set 'kmnist'"
(export DIGITNET_FETCH_STALL_SECONDS=soon; fetch optdigits --data-dir "$D")
check "a bad timeout in the environment is refused" grep -q "DIGITNET_FETCH_STALL_SECONDS: 'soon' is not a number" "$T/err"

# --- Fashion-MNIST: the mirror's exact bytes, rebuilt from Debian's copy (see server.py)
if grep -q "^/train-images-idx3-ubyte.gz$" "$T/port.served"; then
    D=$T/d-fashion
    fetch fashion-mnist --data-dir "$D" --mirror "$U/missing/" --mirror "$U/good/"
    check "fashion-mnist: 4 files verified (size, md5, sha256) and landed" \
        sh -c "[ $(status) -eq 0 ] && [ \$(grep -c 'checksum verified' '$T/out') -eq 4 ] && [ \$(ls -A '$D/fashion-mnist' | wc -l) -eq 4 ]"
    check "... the same images as Debian's copy" \
        sh -c "[ \"\$(gzip -dc '$D/fashion-mnist/train-images-idx3-ubyte.gz' | sha256sum)\" = \"\$(gzip -dc /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz | sha256sum)\" ]"
else
    skip "fashion-mnist (Debian's dataset-fashion-mnist is not installed)"
fi

# --- the default place: $DIGITNET_DATA, else $XDG_CACHE_HOME/digitnet, else ~/.cache/digitnet
fetch optdigits --mirror "$U/good/$UCI"
check "no --data-dir: into \$XDG_CACHE_HOME/digitnet" \
    sh -c "grep -q 'ready in $XDG_CACHE_HOME/digitnet/optdigits' '$T/out' && cmp -s '$XDG_CACHE_HOME/digitnet/optdigits/optdigits.tra' '$OPT/optdigits.tra'"
mkdir -p "$T/home"
(unset XDG_CACHE_HOME; export HOME="$T/home"; fetch optdigits --mirror "$U/good/$UCI")
check "no XDG_CACHE_HOME: into ~/.cache/digitnet" test -s "$T/home/.cache/digitnet/optdigits/optdigits.tes"
(export DIGITNET_DATA="$T/env-data"; fetch optdigits --mirror "$U/good/$UCI")
check "\$DIGITNET_DATA set: into \$DIGITNET_DATA/optdigits" test -s "$T/env-data/optdigits/optdigits.tes"

# --- a machine with no data anywhere: a directory with the models but no ./data, no ../shared/data
FRESH=$T/fresh/project
mkdir -p "$FRESH"
ln -s "$ROOT/models" "$FRESH/models"
# The cache (now filled above) is on the search path: found there, from anywhere.
(cd "$FRESH" && "$DN" show --data optdigits --first 2 --out "$T/cache.png" >/dev/null 2>"$T/err")
check "the download cache is on the search path" test -s "$T/cache.png"
export XDG_CACHE_HOME="$T/xdg-empty"
(cd "$FRESH" && DIGITNET_DATA="$T/nothing" "$DN" show --data optdigits --first 2 --out "$T/none.png" >/dev/null 2>"$T/err")
check "not found: the message lists the cache and suggests 'digitnet fetch optdigits'" \
    sh -c "grep -q \"$T/xdg-empty/digitnet/optdigits\" '$T/err' && grep -q 'download it with \`digitnet fetch optdigits\`' '$T/err'"

mkdir -p "$T/train-data"
(cd "$FRESH" && DIGITNET_DATA="$T/train-data" "$DN" train --data optdigits --fetch --mirror "$U/missing/$UCI" \
    --mirror "$U/good/$UCI" --model models/optdigits.cnn --epochs 1 --batch 128 --test-split 0.2 --json \
    >"$T/train.json" 2>"$T/train.err")
check "train --fetch: downloads into \$DIGITNET_DATA, trains on all 5,620 rows, JSON alone on stdout" \
    python3 -c "import json,sys; j=json.load(open('$T/train.json')); sys.exit(0 if j['n'] == 1124 and len(j['history']) == 1 else 1)"
check "... the set landed verified" same "$T/train-data/optdigits/optdigits.tra" "$OPT/optdigits.tra"
(cd "$FRESH" && DIGITNET_DATA="$T/cv-data" "$DN" cv --data optdigits --fetch --mirror "$CLOSED" \
    --model models/optdigits.cnn --folds 2 --epochs 1 >"$T/out" 2>"$T/err")
check "cv --fetch offline: says what is missing and where to put it" \
    sh -c "tail -1 '$T/err' | grep -q '^digitnet: optdigits is not here and could not be downloaded: put optdigits.tra and optdigits.tes in $T/cv-data/optdigits (.*onnect'"

# --- the done-when: `make demo` with DIGITNET_DATA at an empty directory and the loopback mirror
mkdir -p "$T/demo-data"
(cd "$FRESH" && DIGITNET_DATA="$T/demo-data" DIGITNET_MIRROR="$U/good/$UCI" DEMO_EPOCHS=2 DEMO_OUT="$T/demo-out" \
    sh "$ROOT/scripts/demo.sh" "$DN" >"$T/demo.out" 2>"$T/demo.err")
demo_status=$?
check "demo: fetched optdigits, verified it, trained; exit 0" \
    sh -c "[ $demo_status -eq 0 ] && cmp -s '$T/demo-data/optdigits/optdigits.tes' '$OPT/optdigits.tes' && grep -q 'downloading $U/good/$UCI$ZIP' '$T/demo.err' && grep -q 'Epoch 2/2' '$T/demo.out' '$T/demo.err'"
check "demo: prints its report path, and the report is there" \
    sh -c "grep -q '^Report: $T/demo-out/report/index.html' '$T/demo.out' && [ -s '$T/demo-out/report/index.html' ]"
[ $demo_status -eq 0 ] || echo "       demo: $(tail -3 "$T/demo.err")"
mkdir -p "$T/demo-offline"
(cd "$FRESH" && DIGITNET_DATA="$T/demo-offline" DIGITNET_MIRROR="$CLOSED" DEMO_EPOCHS=2 DEMO_OUT="$T/demo-out2" \
    sh "$ROOT/scripts/demo.sh" "$DN" >"$T/demo2.out" 2>"$T/demo2.err")
demo_status=$?
check "demo offline: fails, saying exactly what is missing and where to put it" \
    sh -c "[ $demo_status -ne 0 ] && grep -q 'put optdigits.tra and optdigits.tes in $T/demo-offline/optdigits' '$T/demo2.err'"

echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
