#!/bin/sh
# Load test of `digitnet serve` (issue 6, part 5) with wrk, Debian's package (`make load-test` installs
# it through scripts/install-deps.sh bench). Not part of `make test`: it takes about two minutes.
# Run from the project root; DIGITNET is the binary (build/digitnet).
#
# Starts the server on a free loopback port with the small MNIST test model (tests/tools/test_model.sh)
# and drives it with four wrk runs at once, each rotating its request bodies (tests/load/predict.lua):
#   valid      LOAD_VALID_CONNECTIONS (24) connections, 2 threads: {"pixels": [...]} JSON of real MNIST
#              test digits (half of them inverted) and 280x280 PNG drawings of the same digits
#              (render_digits), LOAD_DIGITS (50) of each
#   malformed  LOAD_BAD_CONNECTIONS (6) connections, 1 thread, each pausing LOAD_BAD_DELAY_MS (5) ms
#              before each request (unpaced, these cheap requests take whatever CPU is left and the mix
#              comes out different on every run): bad and cut JSON, no pixels, 783 and 785 pixels,
#              pixels out of range, truncated and corrupted PNGs, text, an empty body, a PNG claiming
#              36 million pixels (answered 400, or 413 for the last)
#   oversized  1.1 MB bodies, in two runs of one connection each, paced like the malformed ones:
#              with a Content-Length (answered 413 after the headers, connection closed) and chunked
#              (no length: read to the end, then 413)
# Each of the four runs keeps its own counts and latencies. First WARMUP_SECONDS (20) of that load,
# then LOAD_SECONDS (60) of it, sampling the server's VmRSS every second. Before and after, each valid
# body is sent once alone and the answers must be byte for byte the same.
#
# Memory: "RSS after warm-up" is the median of the first 5 samples of the run, "RSS at the end" the
# median of the last 5, both under the same load. Readings with the server idle are shown too, but
# they don't make a criterion: glibc keeps freed memory in its per-thread arenas and gives back only
# what ends up at the top of one, so an idle server after the same load is anywhere in a range of
# about 3 MB (20.9 to 24.0 MB in our runs, 14%) depending on which blocks were freed last.
#
# Prints a Markdown table and exits non-zero if a criterion fails: a valid request answered other than
# 2xx or without a digit, a socket error or timeout on a valid request, a malformed or oversized
# request answered other than 4xx, the server dead or not answering /api/health afterwards, answers
# that changed, RSS at the end more than 10% away from RSS after the warm-up, or no clean stop on
# SIGTERM.
DN=${DIGITNET:-build/digitnet}
DIGITNET=$DN
RENDER=$(dirname "$DN")/tests/render_digits
LOAD_SECONDS=${LOAD_SECONDS:-60}
WARMUP_SECONDS=${WARMUP_SECONDS:-20}
VALID_CONN=${LOAD_VALID_CONNECTIONS:-24}
BAD_CONN=${LOAD_BAD_CONNECTIONS:-6}
BAD_DELAY=${LOAD_BAD_DELAY_MS:-5}
N_VALID=${LOAD_DIGITS:-50} # test digits, each as JSON and as PNG
LUA=$(dirname "$0")/predict.lua
T=$(mktemp -d /tmp/digitnet-load.XXXXXX)
SERVER=
SAMPLER=
cleanup() {
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "load test: $*" >&2; exit 2; }

command -v wrk >/dev/null || die "wrk not found: install Debian's wrk (sh scripts/install-deps.sh bench)"
command -v curl >/dev/null || die "curl not found"
[ -x "$DN" ] || die "$DN not built (make)"
[ -x "$RENDER" ] || die "$RENDER not built (make $RENDER)"
. tests/tools/test_model.sh
test_model || die "no test model"

# --- request bodies
mkdir -p "$T/px" "$T/canvas" "$T/bad"
"$RENDER" pixels "$T/px" "$N_VALID" >/dev/null || die "render_digits pixels"
"$RENDER" canvases "$T/canvas" "$N_VALID" 5 >/dev/null || die "render_digits canvases"
i=0
while [ $i -lt "$N_VALID" ]; do
    f=$(printf '%04d' $i)
    echo "json $T/px/$f.json"
    echo "png $T/canvas/$f.png"
    i=$((i + 1))
done >"$T/valid.list"
python3 - "$T/px/0002.json" "$T/canvas/0003.png" "$T/bad" >"$T/all-bad.list" <<'EOF' || die "malformed bodies"
import struct, sys, zlib
json_file, png_file, out = sys.argv[1:]
good_json, good_png = open(json_file, 'rb').read(), open(png_file, 'rb').read()
def pixels(values):
    return ('{"pixels": [' + ','.join(values) + ']}').encode()
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
corrupt = bytearray(good_png)
idat = corrupt.find(b'IDAT')
for k in range(idat + 20, idat + 60):
    corrupt[k] ^= 0x5a
big = b'\0' * 1100000
chunked = b''.join(b'%x\r\n' % len(big[k:k + 65536]) + big[k:k + 65536] + b'\r\n'
                   for k in range(0, len(big), 65536)) + b'0\r\n\r\n'
bodies = {
    'bad-json': b'{"pixels": [1, 2,',
    'cut-json': good_json[:len(good_json) // 2],
    'json-array': b'[1,2,3]',
    'no-pixels': b'{"pix": []}',
    'pixels-783': pixels(['0'] * 783),
    'pixels-785': pixels(['0'] * 785),
    'pixel-256': pixels(['0'] * 783 + ['256']),
    'pixel-string': pixels(['0'] * 783 + ['"x"']),
    'cut-png': good_png[:len(good_png) // 2],
    'png-header-only': good_png[:33],
    'corrupt-png': bytes(corrupt),
    'text': b'hello, server',
    'empty': b'',
    # 6000x6000 white pixels in 30 KB of PNG: over the decoded-size limit
    'png-bomb': b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 6000, 6000, 8, 0, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress((b'\0' + b'\xff' * 6000) * 6000, 9)) + chunk(b'IEND', b''),
    'over-1mb': big,
    'raw-over-1mb-chunked': b'POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n'
                            b'Transfer-Encoding: chunked\r\n\r\n' + chunked,
}
for name, body in bodies.items():
    path = '%s/%s' % (out, name)
    open(path, 'wb').write(body)
    print(name, path)
EOF
grep -v over-1mb "$T/all-bad.list" >"$T/bad.list"
grep '^over-1mb ' "$T/all-bad.list" >"$T/length.list"
grep '^raw-over-1mb-chunked ' "$T/all-bad.list" >"$T/chunked.list"

# --- the server, on a port the kernel picks
$DN serve --model "$MODEL" --port 0 >"$T/serve.out" 2>"$T/serve.err" &
SERVER=$!
URL=
i=0
while [ $i -lt 100 ] && [ -z "$URL" ]; do
    URL=$(sed -n 's|.*\(http://127\.0\.0\.1:[0-9]*\)/.*|\1|p' "$T/serve.out")
    [ -z "$URL" ] && sleep 0.1
    i=$((i + 1))
done
[ -n "$URL" ] || die "server did not start: $(cat "$T/serve.out" "$T/serve.err")"

rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVER/status" 2>/dev/null; }
# answers DIR: each valid body sent alone, its answer in DIR/N
answers() {
    mkdir -p "$1"
    n=0
    while read -r kind file; do
        curl -s -m 30 -X POST --data-binary @"$file" "$URL/api/predict" >"$1/$n"
        n=$((n + 1))
    done <"$T/valid.list"
}
# load SECONDS NAME: the four wrk runs at once; their "result" lines in $T/NAME-valid, -bad, -length
# and -chunked
load() {
    wrk -t2 -c"$VALID_CONN" -d"$1"s --timeout 10s -s "$LUA" "$URL/api/predict" -- "$T/valid.list" >"$T/$2-valid" 2>&1 &
    p1=$!
    LOAD_DELAY_MS=$BAD_DELAY wrk -t1 -c"$BAD_CONN" -d"$1"s --timeout 10s -s "$LUA" "$URL/api/predict" -- "$T/bad.list" >"$T/$2-bad" 2>&1 &
    p2=$!
    LOAD_DELAY_MS=$BAD_DELAY wrk -t1 -c1 -d"$1"s --timeout 10s -s "$LUA" "$URL/api/predict" -- "$T/length.list" \
        >"$T/$2-length" 2>&1 &
    p3=$!
    LOAD_DELAY_MS=$BAD_DELAY wrk -t1 -c1 -d"$1"s --timeout 10s -s "$LUA" "$URL/api/predict" -- "$T/chunked.list" \
        >"$T/$2-chunked" 2>&1 &
    p4=$!
    wait $p1 $p2 $p3 $p4
}
# get NAME FILE: a result of a wrk run (0 if it has none)
get() { x=$(sed -n "s/^result $1 //p" "$2"); echo "${x:-0}"; }

answers "$T/before"
load "$WARMUP_SECONDS" warmup
sleep 1 # the last answers go out
RSS_IDLE_START=$(rss)
UPTIME_START=$(uptime)
: >"$T/rss.log"
# one sample a second while the load runs: from 1 s after its start to 1 s before its end
(sleep 1; i=2; while [ $i -lt "$LOAD_SECONDS" ] && kill -0 "$SERVER" 2>/dev/null; do rss >>"$T/rss.log"; sleep 1; i=$((i + 1)); done) &
SAMPLER=$!
load "$LOAD_SECONDS" run
UPTIME_END=$(uptime)
sleep 1
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
SAMPLER=
RSS_IDLE_END=$(rss)
median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'; }
RSS_START=$(head -n 5 "$T/rss.log" | median)
RSS_END=$(tail -n 5 "$T/rss.log" | median)
RSS_MAX=$(sort -n "$T/rss.log" | tail -n 1)

# --- afterwards: alive, healthy, the same answers, a clean stop
alive=no
kill -0 "$SERVER" 2>/dev/null && alive=yes
health=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$URL/api/health")
answers "$T/after"
same=0 total=0 right=0
while read -r kind file; do
    cmp -s "$T/before/$total" "$T/after/$total" && [ -s "$T/after/$total" ] && same=$((same + 1))
    total=$((total + 1))
done <"$T/valid.list"
labels=$(cut -d' ' -f2 "$T/px/labels.txt" | tr -d '\n')
n=0
while [ $n -lt "$total" ]; do
    want=$(echo "$labels" | cut -c$((n / 2 + 1)))
    grep -q "^{\"digit\":$want," "$T/after/$n" && right=$((right + 1))
    n=$((n + 1))
done
kill -TERM "$SERVER" 2>/dev/null
i=0
while [ $i -lt 100 ] && kill -0 "$SERVER" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
stopped=no
if ! kill -0 "$SERVER" 2>/dev/null; then
    wait "$SERVER"
    [ $? -eq 0 ] && grep -q "stopped (SIGTERM)" "$T/serve.out" && stopped=yes
    SERVER=
fi

# --- the table
V=$T/run-valid B=$T/run-bad L=$T/run-length C=$T/run-chunked
sock() { echo $(($(get errors_connect "$1") + $(get errors_read "$1") + $(get errors_write "$1") + $(get errors_timeout "$1"))); }
lat() { echo "$(get p50_ms "$1") / $(get p90_ms "$1") / $(get p99_ms "$1") / $(get max_ms "$1") ms"; }
breakdown() { # the answers of a run by what they say: "kind n, kind n"
    sed -n 's/^result answer-\([^ ]*\) \([0-9]*\)$/\1 \2/p' "$1" | sort -k2,2nr | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }'
}
codes() { sed -n 's/^result status-\([0-9][0-9][0-9]\) \([0-9]*\)$/\1: \2/p' "$1" | paste -sd, - | sed 's/,/, /g'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
v_req=$(get requests "$V") b_req=$(get requests "$B") l_req=$(get requests "$L") c_req=$(get requests "$C")
v_non2xx=$((v_req - $(get status-2xx "$V"))) v_nodigit=$((v_req - $(get answer-digit "$V")))
bad_req=$((b_req + l_req + c_req))
bad_4xx=0 bad_2xx_5xx=0
for f in "$B" "$L" "$C"; do
    bad_4xx=$((bad_4xx + $(get status-4xx "$f")))
    bad_2xx_5xx=$((bad_2xx_5xx + $(get status-2xx "$f") + $(get status-5xx "$f")))
done
seconds=$(get seconds "$V")
rps_total=$(awk -v n=$((v_req + bad_req)) -v s="$seconds" 'BEGIN { printf "%.0f", n / s }')
rss_change=$(awk -v a="${RSS_START:-0}" -v b="${RSS_END:-0}" 'BEGIN { if (a > 0) printf "%+.1f%%", 100 * (b - a) / a; else print "?" }')
rss_ok=$(awk -v a="${RSS_START:-0}" -v b="${RSS_END:-0}" 'BEGIN { d = b - a; if (d < 0) d = -d; print (a > 0 && b > 0 && d <= 0.10 * a) ? "yes" : "no" }')

failed=0
row() { # row WHAT VALUE PASS: yes, no, or - for a measure without a criterion
    case $3 in yes) r=pass ;; no) r=**FAIL**; failed=$((failed + 1)) ;; *) r= ;; esac
    echo "| $1 | $2 | $r |"
}
is() { if [ "$1" = "$2" ]; then echo yes; else echo no; fi; }

echo
echo "digitnet serve under load: $LOAD_SECONDS s after $WARMUP_SECONDS s of warm-up; wrk with $VALID_CONN connections" \
    "of valid requests, $BAD_CONN of malformed ones and 1 each of oversized ones with and without a length, the last three pausing $BAD_DELAY ms before each request"
echo
echo "| measure | value | criterion |"
echo "| --- | --- | --- |"
row "requests/s, all" "$rps_total ($((v_req + bad_req)) requests in $seconds s)" -
row "valid requests (JSON pixels, PNG drawings)" "$v_req, $(get rps "$V")/s" "$(is $((v_req > 0)) 1)"
row "latency of valid requests p50 / p90 / p99 / max" "$(lat "$V")" -
row "malformed requests" "$b_req, $(get rps "$B")/s" -
row "latency of malformed requests p50 / p90 / p99 / max" "$(lat "$B")" -
row "oversized (1.1 MB) requests with a Content-Length" "$l_req, $(get rps "$L")/s" -
row "... latency p50 / p90 / p99 / max" "$(lat "$L")" -
row "oversized (1.1 MB) requests, chunked" "$c_req, $(get rps "$C")/s" -
row "... latency p50 / p90 / p99 / max" "$(lat "$C")" -
row "valid requests answered non-2xx" "$v_non2xx" "$(is "$v_non2xx" 0)"
row "valid requests answered without a digit" "$v_nodigit" "$(is "$v_nodigit" 0)"
row "socket errors and timeouts, valid requests" "$(sock "$V")" "$(is "$(sock "$V")" 0)"
row "malformed and oversized requests answered 4xx" "$bad_4xx of $bad_req" "$(is "$bad_4xx" "$bad_req")"
row "... 2xx or 5xx" "$bad_2xx_5xx" "$(is "$bad_2xx_5xx" 0)"
row "... statuses: malformed; oversized with length; chunked" "$(codes "$B"); $(codes "$L"); $(codes "$C")" -
row "... errors given (malformed)" "$(breakdown "$B")" -
row "socket errors and timeouts: malformed; oversized with length; chunked" "$(sock "$B"); $(sock "$L"); $(sock "$C")" -
row "server process alive after the load" "$alive" "$(is "$alive" yes)"
row "GET /api/health after the load" "$health" "$(is "$health" 200)"
row "valid bodies sent alone after the load: same answers as before" "$same of $total ($right give the label)" "$(is "$same" "$total")"
row "RSS after warm-up (median of the run's first 5 s)" "$(mib "${RSS_START:-0}")" -
row "RSS at the end (median of the last 5 s; highest of the run)" "$(mib "${RSS_END:-0}") ($(mib "${RSS_MAX:-0}"))" -
row "RSS change, end vs after warm-up (limit ±10%)" "$rss_change" "$rss_ok"
row "RSS idle: after warm-up, after the run" "$(mib "${RSS_IDLE_START:-0}"), $(mib "${RSS_IDLE_END:-0}")" -
row "clean stop on SIGTERM (exit 0)" "$stopped" "$(is "$stopped" yes)"
echo
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r);" \
    "$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
echo "RSS every 10 s of the run, MiB: $(awk 'NR % 10 == 1 { printf "%s%.1f", (NR > 1 ? " " : ""), $1 / 1024 }' "$T/rss.log")"
echo "uptime when the run started: $UPTIME_START"
echo "uptime when it ended:        $UPTIME_END"
if [ -s "$T/serve.err" ]; then
    echo
    echo "server stderr:"
    head -n 20 "$T/serve.err"
fi
echo
if [ $failed -eq 0 ]; then echo "load test: all criteria met"; else echo "load test: $failed criteria failed"; fi
[ $failed -eq 0 ]
