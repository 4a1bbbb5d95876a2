#!/bin/sh
# HTTP tests of `digitnet serve` with curl, on a free loopback port: the pages and status codes,
# every kind of bad body, 200 concurrent predictions that must all come back right, the server still
# answering afterwards, and a clean stop on SIGTERM.
# Prints 'N passed, N failed' and exits non-zero if anything failed.
DN=${DIGITNET:-build/digitnet}
DIGITNET=$DN
RENDER=$(dirname "$DN")/tests/render_digits
T=$(mktemp -d /tmp/digitnet-http.XXXXXX)
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/../lib.sh"
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

. tests/tools/test_model.sh
if ! test_model || [ ! -x "$RENDER" ]; then bad "test model and $RENDER"; finish; fi

# --- start on port 0 (the kernel picks a free one) and read the address it prints
$DN serve --model "$MODEL" --port 0 >"$T/serve.out" 2>"$T/serve.err" &
SERVER=$!
URL=
i=0
while [ $i -lt 100 ] && [ -z "$URL" ]; do
    URL=$(sed -n 's|.*\(http://127\.0\.0\.1:[0-9]*\)/.*|\1|p' "$T/serve.out")
    [ -z "$URL" ] && sleep 0.1
    i=$((i + 1))
done
if [ -z "$URL" ]; then bad "server started" "$(cat "$T/serve.out" "$T/serve.err")"; finish; fi
ok "server listening on $URL (loopback)"

# request NAME EXPECTED_STATUS BODY_PATTERN CURL_ARGS...: the status and a grep -E pattern on the body
request() {
    name=$1 want=$2 pattern=$3; shift 3
    got=$(curl -s -m 30 -o "$T/body" -w '%{http_code}' "$@")
    if [ "$got" = "$want" ] && grep -Eq -- "$pattern" "$T/body"; then ok "$name"
    else bad "$name" "status $got, body: $(head -c 200 "$T/body")"; fi
}
# digit FILE: the "digit" of a /api/predict answer
digit() { sed -n 's/^{"digit":\([0-9]*\|null\),.*/\1/p' "$1"; }

request "GET /api/health" 200 '"status":"ok"' "$URL/api/health"
request "GET / serves the drawing page" 200 '<canvas id="pad"' "$URL/"
curl -s -m 10 -D "$T/headers" -o /dev/null "$URL/"
if grep -qi '^content-type: text/html' "$T/headers"; then ok "the page is text/html"; else bad "the page is text/html"; fi

mkdir -p "$T/px" "$T/canvas"
"$RENDER" pixels "$T/px" 10
"$RENDER" canvases "$T/canvas" 2 5
request "POST a PNG canvas (test image 0, a 7)" 200 '^\{"digit":7,"probability":[0-9.e-]+,"probabilities":\[[^]]*\],"preprocessed":\[[0-9,]*\],"shape":\[28,28\]\}$' \
    -X POST --data-binary @"$T/canvas/0000.png" "$URL/api/predict"
python3 -c "
import json; j = json.load(open('$T/body'))
assert len(j['probabilities']) == 10 and abs(sum(j['probabilities']) - 1) < 1e-4
assert len(j['preprocessed']) == 784 and max(j['preprocessed']) >= 200 and min(j['preprocessed']) == 0" \
    && ok "10 probabilities summing to 1, 784 preprocessed pixels 0..255" || bad "answer contents"
request "POST JSON pixels (white on black)" 200 '^\{"digit":7,' -X POST --data-binary @"$T/px/0000.json" "$URL/api/predict"
request "POST JSON pixels (black on white)" 200 '^\{"digit":2,' -X POST --data-binary @"$T/px/0001.json" "$URL/api/predict"
blank=$(python3 -c "print('{\"pixels\": [' + ','.join(['255'] * 784) + ']}')")
request "a blank drawing: no digit found" 200 '^\{"digit":null,"message":"no digit found"\}$' -X POST -d "$blank" "$URL/api/predict"

# --- bad bodies: 400 with a JSON error, 413 when too big
request "malformed JSON" 400 '^\{"error":"malformed JSON"\}$' -X POST -d '{"pixels": [1, 2,' "$URL/api/predict"
request "JSON without pixels" 400 '"error":"expected an object' -X POST -d '{"pix": []}' "$URL/api/predict"
request "JSON array instead of an object" 400 '"error":"expected an object' -X POST -d '[1,2,3]' "$URL/api/predict"
short=$(python3 -c "print('{\"pixels\": [' + ','.join(['0'] * 783) + ']}')")
request "783 pixels" 400 'holds 783 values; expected 784' -X POST -d "$short" "$URL/api/predict"
long=$(python3 -c "print('{\"pixels\": [' + ','.join(['0'] * 785) + ']}')")
request "785 pixels" 400 'holds 785 values; expected 784' -X POST -d "$long" "$URL/api/predict"
range=$(python3 -c "print('{\"pixels\": [' + ','.join(['0'] * 783 + ['256']) + ']}')")
request "a pixel of 256" 400 'pixel 783 is not a number 0..255' -X POST -d "$range" "$URL/api/predict"
text=$(python3 -c "print('{\"pixels\": [' + ','.join(['0'] * 783 + ['\"x\"']) + ']}')")
request "a pixel that is a string" 400 'pixel 783 is not a number' -X POST -d "$text" "$URL/api/predict"
size=$(wc -c <"$T/canvas/0001.png")
head -c $((size / 2)) "$T/canvas/0001.png" >"$T/truncated.png"
request "truncated PNG" 400 '^\{"error":"PNG: ' -X POST --data-binary @"$T/truncated.png" "$URL/api/predict"
printf 'hello, server' >"$T/hello.txt"
request "a body that is neither image nor JSON" 400 'not a PNG, JPEG, BMP or PGM/PPM image' \
    -X POST --data-binary @"$T/hello.txt" "$URL/api/predict"
request "an empty body" 400 '"error":"empty body' -X POST -H 'Content-Type: image/png' --data-binary '' "$URL/api/predict"
python3 -c "
import struct, zlib  # 6000x6000 white pixels: 30 KB of PNG, 36 million pixels
row = b'\0' + b'\xff' * 6000
data = zlib.compress(row * 6000, 9)
chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
open('$T/bomb.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 6000, 6000, 8, 0, 0, 0, 0)) + chunk(b'IDAT', data) + chunk(b'IEND', b''))"
request "a small PNG claiming 36 million pixels: 413" 413 'over the limit' -X POST --data-binary @"$T/bomb.png" "$URL/api/predict"
head -c 1100000 /dev/zero >"$T/big.bin"
request "a 1.1 MB body: 413" 413 '"error":"body over 1 MB"' -X POST --data-binary @"$T/big.bin" "$URL/api/predict"
request "a 1.1 MB chunked body (no length): 413" 413 '"error":"body over 1 MB"' \
    -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.bin" "$URL/api/predict"
request "unknown path: 404" 404 '"error":"not found"' "$URL/api/nothing"
request "unknown path with a body: 404" 404 '"error":"not found"' -X POST -d '{}' "$URL/predict"
request "GET /api/predict: 405" 405 '"error":"use POST"' "$URL/api/predict"
request "DELETE /: 405" 405 '"error":"use GET"' -X DELETE "$URL/"

# --- 200 concurrent requests, each from its own process, half JSON and half PNG; every answer must
# be byte-for-byte the one the same body got when sent alone
"$RENDER" canvases "$T/canvas" 10 5
i=0
while [ $i -lt 10 ]; do
    f=$(printf '%04d' $i)
    curl -s -m 30 -X POST --data-binary @"$T/px/$f.json" "$URL/api/predict" >"$T/ref$i"
    curl -s -m 30 -X POST --data-binary @"$T/canvas/$f.png" "$URL/api/predict" >"$T/ref$((i + 10))"
    i=$((i + 1))
done
pids=
i=0
while [ $i -lt 200 ]; do
    k=$((i % 20)) f=$(printf '%04d' $((i % 10)))
    if [ $k -lt 10 ]; then body="$T/px/$f.json"; else body="$T/canvas/$f.png"; fi
    curl -s -m 60 -o "$T/c$i" -w '%{http_code}' -X POST --data-binary @"$body" "$URL/api/predict" >"$T/s$i" 2>/dev/null &
    pids="$pids $!"
    i=$((i + 1))
done
wait $pids
answered=0 right=0
i=0
while [ $i -lt 200 ]; do
    k=$((i % 20))
    [ "$(cat "$T/s$i")" = 200 ] && answered=$((answered + 1))
    [ -n "$(digit "$T/c$i")" ] && cmp -s "$T/c$i" "$T/ref$k" && right=$((right + 1))
    i=$((i + 1))
done
if [ $answered -eq 200 ]; then ok "200 concurrent requests: all answered 200"; else bad "200 concurrent requests: $answered answered 200"; fi
if [ $right -eq 200 ]; then ok "... and every answer is byte-for-byte the sequential one"; else bad "... $right of 200 answers match"; fi
labels=$(cut -d' ' -f2 "$T/px/labels.txt" | tr -d '\n')
refs=$(i=0; while [ $i -lt 10 ]; do printf '%s' "$(digit "$T/ref$i")"; i=$((i + 1)); done)
pngs=$(i=10; while [ $i -lt 20 ]; do printf '%s' "$(digit "$T/ref$i")"; i=$((i + 1)); done)
if [ "$refs" = "$labels" ]; then ok "the ten JSON answers are the labels ($labels)"; else bad "JSON answers $refs, labels $labels"; fi
if [ "$pngs" = "$labels" ]; then ok "the ten PNG answers are the labels ($labels)"; else bad "PNG answers $pngs, labels $labels"; fi
request "still answering after the burst" 200 '"status":"ok"' "$URL/api/health"
if kill -0 "$SERVER" 2>/dev/null; then ok "server still running"; else bad "server still running"; fi

# --- a second server on the same port is refused with a message
port=${URL##*:}
$DN serve --model "$MODEL" --port "$port" >/dev/null 2>"$T/second.err" &
second=$!
i=0
while [ $i -lt 50 ] && kill -0 $second 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if kill -0 $second 2>/dev/null; then kill $second; bad "a second server on a used port exits"
else wait $second; s=$?; [ $s -ne 0 ] && grep -q "cannot listen" "$T/second.err" && ok "a second server on a used port exits 1 with a message" || bad "second server: exit $s"; fi

# --- SIGTERM: stops cleanly, exit 0, port closed
kill -TERM "$SERVER"
i=0
while [ $i -lt 50 ] && kill -0 "$SERVER" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$SERVER" 2>/dev/null; then bad "SIGTERM stops the server within 5 s"
else
    wait "$SERVER"; s=$?
    if [ $s -eq 0 ] && grep -q "stopped (SIGTERM)" "$T/serve.out"; then ok "SIGTERM: clean stop, exit 0"; else bad "SIGTERM: exit $s"; fi
    SERVER=
fi
if curl -s -m 5 -o /dev/null "$URL/api/health"; then bad "the port is closed after the stop"; else ok "the port is closed after the stop"; fi
finish
