#!/bin/sh
# Does digitnet's speed depend on the core OpenBLAS picks? The MNIST network on Fashion-MNIST (60k),
# one epoch, batch 64, with the machine's OpenBLAS core and with OPENBLAS_CORETYPE=Prescott (the SSE3
# kernels Debian's OpenBLAS 0.3.21 falls back to on CPUs it does not know), in the order
# A B B A, three times. Two whole `make bench` runs minutes apart differ by up to a fifth on a shared
# machine; runs interleaved this way see the same machine, so their ratio says what the BLAS core
# does and little else. Prints each run's images/s, the median of each side and their ratio, and
# whether the binary links OpenBLAS at all (ldd).
set -e
B=${BUILD:-build}
DN="$B/digitnet"
T=$(mktemp -d /tmp/digitnet-blas.XXXXXX)
trap 'rm -rf "$T"' EXIT
run() { # $1: output file, $2: "plain" (the machine's own core) or "Prescott"
    if [ "$2" = Prescott ]; then core="OPENBLAS_CORETYPE=Prescott"; else core="-u OPENBLAS_CORETYPE"; fi
    env $core "$DN" train --data fashion-mnist --model models/mnist.cnn --epochs 1 --batch 64 --seed 1 --quiet --json >"$1"
}
i=0
for side in plain Prescott Prescott plain plain Prescott Prescott plain plain Prescott Prescott plain; do
    i=$((i + 1))
    run "$T/$i-$side.json" "$side"
done
if ldd "$DN" 2>/dev/null | grep -q libopenblas; then links=true; else links=false; fi
python3 - "$T" "$links" <<'PY'
import glob, json, os, statistics, sys
runs = {"plain": [], "Prescott": []}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json")), key=lambda p: int(os.path.basename(p).split("-")[0])):
    side = os.path.basename(path).split("-")[1][:-5]
    runs[side].append(round(json.load(open(path))["train_images_per_sec"]))
med = {k: statistics.median(v) for k, v in runs.items()}
print(json.dumps({"bench": "blas_cores", "links_openblas": sys.argv[2] == "true",
                  "plain_images_per_sec": runs["plain"], "prescott_images_per_sec": runs["Prescott"],
                  "median_plain": med["plain"], "median_prescott": med["Prescott"],
                  "prescott_vs_plain": round(med["Prescott"] / med["plain"], 3)}))
PY
