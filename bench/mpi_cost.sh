#!/bin/sh
# The MPI cost model (README, "Scaling out with MPI"): for both reference networks, the bytes a
# data-parallel step exchanges, the measured time per step on this machine for 1, 2 and 3 ranks
# (one thread each), and the smallest batch at which a 10 and a 100 Gbit/s network keep the
# exchange under 10% of a step on R machines, from the measured one-rank compute time.
#   sh bench/mpi_cost.sh            (BUILD=build, RUNS=3: the best of RUNS per measurement)
set -e
cd "$(dirname "$0")/.."
DN=${BUILD:-build}/digitnet
RUNS=${RUNS:-3}
T=$(mktemp -d /tmp/digitnet-mpicost.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none"
$DN info | grep -q "^MPI: *Open MPI" || { echo "digitnet was built without MPI" >&2; exit 1; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for net in r1 r2; do
    if [ $net = r1 ]; then
        batch=128 args="--data optdigits --model models/optdigits.cnn --epochs 3 --test-split 0.2"
    else
        batch=64 args="--data mnist-10k --model models/mnist.cnn --epochs 1"
    fi
    for np in 1 2 3; do
        run=1
        while [ $run -le "$RUNS" ]; do
            if [ $np = 1 ]; then $DN train $args --batch $batch --threads 1 --quiet --json >"$T/$net-$np-$run.json"
            else $MPIRUN -np $np $DN train $args --batch $batch --threads 1 --quiet --json >"$T/$net-$np-$run.json"; fi
            run=$((run + 1))
        done
    done
    # what a step exchanges, for batch sizes 16 .. 8192 (no training: --epochs 0)
    for n in 16 32 64 128 256 512 1024 2048 4096 8192; do
        $MPIRUN -np 2 $DN train $args --epochs 0 --batch $n --threads 1 --quiet --json >"$T/$net-bytes-$n.json"
    done
done
python3 - "$T" <<'PY'
import glob, json, os, sys
t = sys.argv[1]
def load(p): return json.load(open(p))
for net, batch in (("r1", 128), ("r2", 64)):
    print(f"\n{net.upper()} (batch {batch}):")
    rate = {}
    for np_ in (1, 2, 3):
        runs = [load(p) for p in sorted(glob.glob(f"{t}/{net}-{np_}-*.json"))]
        best = max(r["train_images_per_sec"] for r in runs)
        rate[np_] = best
        ex = runs[0].get("exchange_bytes_per_step")
        print(f"  {np_} rank{'s' if np_ > 1 else ' '}: {1000 * batch / best:7.2f} ms per step ({best:,.0f} images/s)"
              + (f", {ex:,.0f} bytes exchanged per step" if ex else ""))
    c = 1.0 / rate[1]  # seconds of compute per image on one rank
    sizes = {}
    for p in glob.glob(f"{t}/{net}-bytes-*.json"):
        j = load(p)
        n = int(os.path.basename(p).split("-")[-1].split(".")[0])
        sizes[n] = j
    any_j = next(iter(sizes.values()))
    print(f"  per step: {any_j['exchange_bytes_per_image']:,.0f} bytes per image of the batch + "
          f"{any_j['exchange_bytes_per_block']:,.0f} bytes per row block (4..16 blocks); "
          f"compute {1e6 * c:.1f} us per image on one rank")
    for gbit in (10, 100):
        bw = gbit * 1e9 / 8
        row = []
        for ranks in (2, 3, 4, 8, 16):
            # ring allgather: each rank receives (R-1)/R of the step's bytes; each computes n/R images
            ok = [n for n in sorted(sizes) if (ranks - 1) / ranks * sizes[n]["exchange_bytes_per_step"] / bw
                  <= 0.1 * c * n / ranks]
            row.append(f"{ranks} machines: " + (f"batch >= {ok[0]}" if ok else "never (<= 8192)"))
        print(f"  exchange under 10% of a step at {gbit} Gbit/s: " + "; ".join(row))
PY
