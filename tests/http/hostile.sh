#!/bin/sh
# Hostile clients against `digitnet serve`, loopback only (127.0.0.1), with tests/http/attack.py:
#  - a slowloris: 1,100 connections each trickling its header a byte every 2 s, reconnecting when
#    closed; /api/health must answer every probe within 1 s and the server stay under 250 MB;
#  - 8 clients flooding /api/predict with a decompression-bomb JPEG (584 bytes claiming 4096x4096)
#    and then a bomb PNG (918 KB carrying 900 MB of zeros past its last row): the same criteria;
#  - SIGTERM with 600 idle connections open: the server stops within 3 s;
#  - the deadline (--request-timeout) and the per-client limit (--max-per-client), the pixel budget
#    (--max-pixels), JSON followed by garbage, and a model whose output overflows to NaN (500).
# HOSTILE_SECONDS (default 8) is the length of each attack: `make serve-test` runs the short version,
# `make load-test` a minute of each. Prints 'N passed, N failed' and exits non-zero if anything failed.
DN=${DIGITNET:-build/digitnet}
DIGITNET=$DN
RENDER=${RENDER:-$(dirname "$DN")/tests/render_digits}
SECONDS_EACH=${HOSTILE_SECONDS:-8}
ATTACK="python3 $(dirname "$0")/attack.py"
T=$(mktemp -d /tmp/digitnet-hostile.XXXXXX)
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
    [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/../lib.sh"
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

. tests/tools/test_model.sh
if ! test_model || [ ! -x "$RENDER" ]; then bad "test model and $RENDER"; finish; fi
"$RENDER" bombs "$T" || { bad "render_digits bombs"; finish; }

# start MODEL ARGS...: a server on a free port; sets SERVER (its PID) and PORT
start() {
    model=$1; shift
    : >"$T/serve.out"
    $DN serve --model "$model" --port 0 "$@" >"$T/serve.out" 2>"$T/serve.err" &
    SERVER=$!
    PORT=
    i=0
    while [ $i -lt 100 ] && [ -z "$PORT" ]; do
        PORT=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$T/serve.out")
        [ -z "$PORT" ] && sleep 0.1
        i=$((i + 1))
    done
    [ -n "$PORT" ] || { bad "server started" "$(cat "$T/serve.err")"; finish; }
}
# stop: SIGTERM, and the seconds it took to exit in $T/stop
stop() {
    t0=$(date +%s.%N)
    kill -TERM "$SERVER"
    wait "$SERVER"
    echo "$(date +%s.%N) $t0" | awk '{printf "%.2f", $1 - $2}' >"$T/stop"
    SERVER=
}
# bounded RESULT NAME: health answered every probe within 1 s, RSS under 250 MB
bounded() {
    echo "       $(cat "$1")"
    if json "$1" "j['failures'] == 0 and j['probes'] >= 5 and j['health_max_s'] < 1.0"; then ok "$2: /api/health always answered within 1 s"
    else bad "$2: /api/health always answered within 1 s"; fi
    if json "$1" "j['rss_max_mb'] < 250"; then ok "$2: the server stayed under 250 MB"
    else bad "$2: the server stayed under 250 MB"; fi
}

start "$MODEL"
$ATTACK slowloris "$PORT" "$SERVER" 1100 "$SECONDS_EACH" >"$T/slowloris.json"
bounded "$T/slowloris.json" "slowloris, 1,100 connections for $SECONDS_EACH s"
$ATTACK flood "$PORT" "$SERVER" 8 "$SECONDS_EACH" "$T/bomb.jpg" >"$T/jpeg.json"
bounded "$T/jpeg.json" "8 clients sending a 584-byte JPEG claiming 4096x4096"
check "... each answered 400 (truncated)" json "$T/jpeg.json" "list(j['statuses']) == ['400']"
$ATTACK flood "$PORT" "$SERVER" 8 "$SECONDS_EACH" "$T/bomb.png" >"$T/png.json"
bounded "$T/png.json" "8 clients sending a PNG with 900 MB of zeros past its last row"
check "... each answered 200 (a black picture: no digit)" json "$T/png.json" "list(j['statuses']) == ['200'] and j['statuses']['200'] >= 8"

# --- SIGTERM with 600 idle connections open
rm -f "$T/fifo"
mkfifo "$T/fifo"
$ATTACK idle "$PORT" 600 <"$T/fifo" >"$T/idle.out" &
HOLDER=$!
exec 3>"$T/fifo"
i=0
while ! grep -q ready "$T/idle.out" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "600 idle connections open" grep -q "ready 600" "$T/idle.out"
stop
echo "       stopped in $(cat "$T/stop") s"
check "SIGTERM with 600 idle connections: stopped within 3 s" awk "BEGIN { exit !($(cat "$T/stop") < 3) }"
exec 3>&-
wait $HOLDER
HOLDER=

# --- the deadline and the per-client limit, made small
start "$MODEL" --request-timeout 2 --max-per-client 5 --max-pixels 10000
closed=$($ATTACK trickle "$PORT")
check "--request-timeout 2: a trickled header is cut off after 2-3.5 s (took $closed)" \
    awk "BEGIN { exit !(\"$closed\" != \"open\" && $closed >= 1.9 && $closed <= 3.5) }"
$ATTACK crowd "$PORT" 8 >"$T/crowd.json"
check "--max-per-client 5: with 8 idle connections open, the client still gets /api/health ($(cat "$T/crowd.json"))" \
    json "$T/crowd.json" "j['health'] == 200 and j['closed'] == 4"
mkdir -p "$T/canvas" && "$RENDER" canvases "$T/canvas" 1 5 >/dev/null
got=$(curl -s -m 10 -o "$T/body" -w '%{http_code}' --data-binary @"$T/canvas/0000.png" "http://127.0.0.1:$PORT/api/predict")
check "--max-pixels 10000: a 280x280 drawing gets 413" sh -c "[ $got = 413 ] && grep -q 'over the limit of 10000 pixels' '$T/body'"
got=$(curl -s -m 10 -o "$T/body" -w '%{http_code}' -d '{"pixels": [1]} trailing' "http://127.0.0.1:$PORT/api/predict")
check "JSON followed by garbage: 400" sh -c "[ $got = 400 ] && grep -q 'something follows the object' '$T/body'"
stop

# --- a model whose activations overflow: 500 with a message, never a 200 with null probabilities
python3 tests/tools/overflow_model.py "$MODEL" "$T/overflow.safetensors"
start "$T/overflow.safetensors"
got=$(curl -s -m 10 -o "$T/body" -w '%{http_code}' --data-binary @"$T/canvas/0000.png" "http://127.0.0.1:$PORT/api/predict")
check "a model whose output overflows to NaN: 500, saying so" sh -c "[ $got = 500 ] && grep -q 'output is not a number' '$T/body'"
stop
finish
