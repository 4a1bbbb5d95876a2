#!/bin/sh
# make bench: digitnet's benchmarks, then PyTorch's on the same data (when /usr/bin/python3 has
# torch), printed side by side. Needs Debian's dataset-fashion-mnist (installed by make deps).
set -e
B=${BUILD:-build}
mkdir -p "$B"
# What machine path makes the figures below: CPU, kernels, threads, build flags.
"$B/digitnet" info
echo
"$B/bench" $BENCH_ARGS | tee "$B/bench-digitnet.jsonl"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    /usr/bin/python3 bench/torch_ref.py $BENCH_ARGS | tee "$B/bench-torch.jsonl"
else
    echo "bench: /usr/bin/python3 has no torch (Debian python3-torch); PyTorch column skipped"
    : >"$B/bench-torch.jsonl"
fi
python3 bench/table.py "$B/bench-digitnet.jsonl" "$B/bench-torch.jsonl"
# Two trainings at once on the same cores (bench/shared_cores.sh): each one's share of a lone run.
BUILD="$B" sh bench/shared_cores.sh | tee "$B/bench-shared.jsonl" | python3 -c "
import json, sys
j = json.loads(sys.stdin.read())
a, b = j['pair_images_per_sec']
print(f\"\nTwo MNIST trainings sharing the cores (digitnet train, 1 epoch of Fashion-MNIST each): \"
      f\"{a:,.0f} and {b:,.0f} images/s, {100 * j['pair_share_of_lone'][0]:.0f}% and {100 * j['pair_share_of_lone'][1]:.0f}% \"
      f\"of one alone ({j['lone_images_per_sec']:,.0f} images/s)\")"
# The same training with the machine's OpenBLAS core and with Prescott's, interleaved (bench/blas_cores.sh).
BUILD="$B" sh bench/blas_cores.sh | tee "$B/bench-blas.jsonl" | python3 -c "
import json, sys
j = json.loads(sys.stdin.read())
n = len(j['plain_images_per_sec'])
print(f\"MNIST training with the machine's OpenBLAS core and with OPENBLAS_CORETYPE=Prescott, interleaved \"
      f\"(bench/blas_cores.sh, {n} runs each; digitnet {'links' if j['links_openblas'] else 'does not link'} OpenBLAS): \"
      f\"median {j['median_plain']:,.0f} and {j['median_prescott']:,.0f} images/s, Prescott at {100 * j['prescott_vs_plain']:.1f}% \"
      f\"(runs {', '.join(f'{x:,}' for x in j['plain_images_per_sec'])} and {', '.join(f'{x:,}' for x in j['prescott_images_per_sec'])})\")"
# The kernels a CPU without AVX-512 runs: the x86-64-v3 build (make bench builds it) with
# DIGITNET_SIMD=avx2, one quick pass (one MNIST epoch, 20 optdigits epochs), 2 threads.
if [ -x "$B-avx2/bench" ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    DIGITNET_SIMD=avx2 "$B-avx2/bench" --quick >"$B/bench-avx2.jsonl"
    python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
get = lambda net, what: next(r['images_per_sec'] for r in rows if r['net'] == net and r['what'] == what and r['threads'] == 2)
print(f\"Without AVX-512 (build-avx2: -march=x86-64-v3, DIGITNET_SIMD=avx2, --quick, 2 threads): MNIST training \"
      f\"{get('mnist', 'train'):,.0f} images/s, inference {get('mnist', 'infer'):,.0f}; optdigits training \"
      f\"{get('optdigits', 'train'):,.0f}, inference {get('optdigits', 'infer'):,.0f}\")" "$B/bench-avx2.jsonl"
fi
