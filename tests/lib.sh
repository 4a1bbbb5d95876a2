# Shared by the shell test scripts (tests/cli, tests/http, tests/fetch): counters and checks.
# Source it, then call the checks; print the closing line with `summary`.
pass=0
fail=0
# ok NAME / bad NAME [DETAIL]: count one result and print it
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; [ -n "$2" ] && echo "       $2"; }
# check NAME CMD...: passes when the command succeeds
check() { name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
# json FILE EXPR: a Python expression over the parsed JSON j (standard library only)
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }
# weights A B: the tensor bytes (everything after the JSON header) of two safetensors files are equal;
# the header differs only in the history's timings.
weights() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
def data(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return b[8 + n:]
sys.exit(0 if data(sys.argv[1]) == data(sys.argv[2]) else 1)
PY
}
