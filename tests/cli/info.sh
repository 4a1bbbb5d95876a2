#!/bin/sh
# digitnet info: the kernels it reports are the ones the CPU's flags call for, DIGITNET_SIMD=avx2 and
# generic switch them, and --json carries every field make bench prints.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-info.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"

$DN info --json >"$T/info.json"
check "info --json has every field" json "$T/info.json" \
    "all(k in j for k in ['version','cpu','cpu_features','kernels','elementwise_clone','blas','threads','flush_to_zero','compiler','build_flags'])"
if grep -qw avx512f /proc/cpuinfo; then want=avx512
elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then want=avx2
else want=portable; fi
check "info: kernels are $want, as /proc/cpuinfo's flags say" json "$T/info.json" "j['kernels'] == '$want'"
DIGITNET_SIMD=generic $DN info --json >"$T/generic.json"
check "info: DIGITNET_SIMD=generic selects the portable kernels" json "$T/generic.json" "j['kernels'] == 'portable'"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    DIGITNET_SIMD=avx2 $DN info --json >"$T/avx2.json"
    check "info: DIGITNET_SIMD=avx2 selects the AVX2 kernels" json "$T/avx2.json" "j['kernels'] == 'avx2'"
fi
$DN info --json --threads 1 >"$T/one.json"
check "info --threads 1 reports one thread" json "$T/one.json" "j['threads'] == 1"
if grep -qw sse2 /proc/cpuinfo; then
    check "info: flush-to-zero on x86" json "$T/info.json" "j['flush_to_zero'] is True"
fi
$DN info >"$T/info.txt"
check "info text names the CPU model" grep -q "^CPU: *$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['cpu'])" "$T/info.json")" "$T/info.txt"
check "info with an argument is refused" sh -c "! $DN info extra 2>/dev/null"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
