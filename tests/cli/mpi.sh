#!/bin/sh
# MPI (README, "Scaling out with MPI"): mpirun -np 2 and -np 3 train both reference networks (and a
# batchnorm net, and a resumed checkpoint) to the same tensors, bit for bit, as one process; cv and
# sweep print the same results; a bad data file on one rank, a NaN, a killed rank and a stopped rank
# end the whole job non-zero within seconds. Short runs: few epochs, small slices, one thread per
# rank. Skipped (and says so) without mpirun or without an MPI build. Prints 'N passed, N failed'.
DN=${DIGITNET:-build/digitnet}
T=$(mktemp -d /tmp/digitnet-mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib.sh"
if ! command -v mpirun >/dev/null 2>&1 || ! $DN info | grep -q "^MPI: *Open MPI"; then
    echo "skipped: no mpirun or digitnet built without MPI ($($DN info | grep '^MPI'))"
    exit 0
fi
# CI runs as root in a container on 2 cores without a hostfile: allow root, more ranks than cores,
# no binding (the cores are shared), and no cross-memory attach (ptrace is often not allowed).
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN="timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none"
same() { cmp -s "$1" "$2"; }

# --- data-parallel training: the same model as one process
R1="--data optdigits --model models/optdigits.cnn --epochs 2 --batch 128 --test-split 0.2 --seed 3 --threads 1 --quiet"
R2="--data mnist-10k --model models/mnist.cnn --epochs 1 --batch 64 --test-split 0.95 --seed 5 --threads 1 --quiet"
printf 'input 8x8x1\nconv2d 8 3x3 same relu\nbatchnorm\nmaxpool 2x2\nflatten\ndense 32 relu\ndense 10 softmax\n' >"$T/bn.cnn"
BN="--data optdigits --model $T/bn.cnn --epochs 2 --batch 100 --seed 7 --threads 1 --quiet"
for net in R1 R2 BN; do
    eval "args=\$$net"
    $DN train $args --out "$T/$net-1.st" >"$T/$net-1.out"
    grep "^Test:" "$T/$net-1.out" >"$T/$net-1.test"
    for np in 2 3; do
        $MPIRUN -np $np $DN train $args --out "$T/$net-$np.st" >"$T/$net-$np.out" 2>"$T/$net-$np.err"
        check "$net: mpirun -np $np exits 0" test $? -eq 0
        check "$net: mpirun -np $np gives the tensors of one process, bit for bit" weights "$T/$net-1.st" "$T/$net-$np.st"
        grep "^Test:" "$T/$net-$np.out" >"$T/$net-$np.test"
        check "$net: mpirun -np $np prints the same test result, once" same "$T/$net-1.test" "$T/$net-$np.test"
    done
done

# --resume under MPI: 1 epoch on 2 ranks, checkpointed (by rank 0 only), resumed to 2 on 3 ranks
$MPIRUN -np 2 $DN train $R1 --epochs 1 --checkpoint "$T/one.ckpt" >/dev/null 2>&1
$MPIRUN -np 3 $DN train --resume "$T/one.ckpt" --epochs 2 --threads 1 --quiet --out "$T/resumed.st" >/dev/null 2>&1
check "checkpoint on 2 ranks + resume on 3 == one process, bit for bit" weights "$T/R1-1.st" "$T/resumed.st"

# --- cv and sweep: folds and settings spread over the ranks, the same numbers printed
CV="cv --data optdigits --model models/optdigits.cnn --folds 3 --epochs 1 --batch 128 --seed 2 --threads 1 --quiet"
$DN $CV >"$T/cv-1.out"
for np in 2 3; do
    $MPIRUN -np $np $DN $CV >"$T/cv-$np.out" 2>"$T/cv-$np.err"
    check "cv under mpirun -np $np prints what one process prints" same "$T/cv-1.out" "$T/cv-$np.out"
done
check "cv printed its folds" grep -q "^Fold 3: loss" "$T/cv-1.out"
SW="sweep --data optdigits --model models/optdigits.cnn --lr 0.002,0.005 --batch 64,128 --epochs 1 --seed 2 --threads 1 --quiet"
$DN $SW >"$T/sweep-1.out"
$MPIRUN -np 3 $DN $SW >"$T/sweep-3.out" 2>"$T/sweep-3.err"
check "sweep under mpirun -np 3 prints what one process prints" same "$T/sweep-1.out" "$T/sweep-3.out"
check "sweep's table has the 4 settings" test "$(grep -c '^ *[1-4]  0.00' "$T/sweep-1.out")" -eq 4
$DN $SW --json >"$T/sweep.json"
check "sweep --json: best first" json "$T/sweep.json" \
    "len(j['results']) == 4 and all(a['val_accuracy'] >= b['val_accuracy'] for a, b in zip(j['results'], j['results'][1:]))"

# --- failures end the job: non-zero, within seconds, one line from digitnet
# ends_fast NAME SECONDS: the last job ($status, $took) failed within SECONDS
ends_fast() {
    if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$took" -le "$2" ]; then ok "$1"
    else bad "$1" "exit $status after ${took}s; stderr: $(grep digitnet "$T/fail.err" | head -c 300)"; fi
}
mkdir -p "$T/r0" "$T/r1"
DATA=${DIGITNET_DATA:-../shared/data}
cp "$DATA/optdigits/optdigits.tra" "$DATA/optdigits/optdigits.tes" "$T/r0/"
cp "$DATA/optdigits/optdigits.tes" "$T/r1/" # rank 1's copy lacks optdigits.tra
start=$(date +%s)
$MPIRUN -np 2 sh -c "exec $DN train --data $T/r\$OMPI_COMM_WORLD_RANK --model models/optdigits.cnn --epochs 50 --threads 1 --quiet" \
    >/dev/null 2>"$T/fail.err"
status=$? took=$(($(date +%s) - start))
ends_fast "a data file missing on rank 1 ends the job" 20
check "... with one line from rank 1" test "$(grep -c '^digitnet: rank 1: .*optdigits.tra' "$T/fail.err")" -eq 1 -a \
    "$(grep -c '^digitnet:' "$T/fail.err")" -eq 1

printf 'input 8x8x1\nconv2d 4 3x3 same\nflatten\ndense 10 softmax\n' >"$T/linear.cnn"
start=$(date +%s)
$MPIRUN -np 2 $DN train --data optdigits --model "$T/linear.cnn" --epochs 3 --optimizer sgd --lr 1e6 --threads 1 --quiet \
    >/dev/null 2>"$T/fail.err"
status=$? took=$(($(date +%s) - start))
ends_fast "a NaN loss ends the job" 20
check "... with one line" test "$(grep -c '^digitnet: the loss became NaN' "$T/fail.err")" -eq 1 -a \
    "$(grep -c '^digitnet:' "$T/fail.err")" -eq 1

# kill_rank SIGNAL: starts a long training on 2 ranks, sends SIGNAL to one rank once the first epoch
# is under way, and waits for the job; sets $status and $took (seconds from the signal).
kill_rank() {
    $MPIRUN -np 2 $DN train --data optdigits --model models/optdigits.cnn --epochs 1000 --threads 1 \
        --checkpoint "$T/long.ckpt" --checkpoint-every 100000 >"$T/long.out" 2>"$T/fail.err" &
    job=$!
    i=0
    while [ $i -lt 200 ] && ! grep -q "Epoch 1/" "$T/long.out"; do sleep 0.1; i=$((i + 1)); done
    sleep 0.5
    victim=$(pgrep -P "$(pgrep -P $job mpirun || echo $job)" | tail -1)
    start=$(date +%s)
    if [ -n "$victim" ]; then kill -"$1" "$victim"; else bad "kill_rank: found no rank to signal"; fi
    wait $job
    status=$? took=$(($(date +%s) - start))
}
kill_rank KILL
ends_fast "a rank killed mid-training ends the job" 15
DIGITNET_MPI_TIMEOUT=3
export DIGITNET_MPI_TIMEOUT
kill_rank STOP
ends_fast "a rank stopped mid-training ends the job (DIGITNET_MPI_TIMEOUT=3)" 20
check "... saying the other ranks stopped answering" grep -q "no answer from the other ranks" "$T/fail.err"

# Ctrl-C on mpirun reaches every rank: they agree to stop at the same batch, rank 0 writes the
# checkpoint and says how to resume, no rank aborts the job under it.
$MPIRUN -np 2 $DN train --data optdigits --model models/optdigits.cnn --epochs 1000 --threads 1 \
    --checkpoint "$T/int.ckpt" --checkpoint-every 100000 >"$T/int.out" 2>"$T/int.err" &
job=$!
i=0
while [ $i -lt 200 ] && ! grep -q "Epoch 1/" "$T/int.out"; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
kill -INT "$(pgrep -P $job mpirun || echo $job)"
wait $job
check "Ctrl-C: non-zero exit, rank 0 writes the checkpoint and says how to resume" test $? -ne 0 -a -s "$T/int.ckpt"
check "... in one line, no MPI_Abort" test "$(grep -c '^digitnet: interrupted.*resume with' "$T/int.err")" -eq 1 -a \
    "$(grep -c 'MPI_ABORT' "$T/int.err")" -eq 0
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
