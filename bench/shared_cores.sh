#!/bin/sh
# Two digitnet trainings sharing the machine's cores: the MNIST network on Fashion-MNIST (60k),
# one epoch, batch 64, every core each; first one alone, then two at once. Prints each run's
# images/s and the pair's share of the lone rate. The issue it guards: OpenMP threads that spin
# while they wait burn the time slices the other job needs (see choose_thread_waiting in
# tools/digitnet.c). Extra environment (OMP_WAIT_POLICY=active ...) passes through, to compare.
set -e
B=${BUILD:-build}
DN="$B/digitnet"
T=$(mktemp -d /tmp/digitnet-shared.XXXXXX)
trap 'rm -rf "$T"' EXIT
run() { "$DN" train --data fashion-mnist --model models/mnist.cnn --epochs 1 --batch 64 --seed 1 --quiet --json >"$1"; }
rate() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['train_images_per_sec']))" "$1"; }
run "$T/lone.json"
lone=$(rate "$T/lone.json")
run "$T/a.json" & pa=$!
run "$T/b.json" & pb=$!
wait $pa; wait $pb
a=$(rate "$T/a.json"); b=$(rate "$T/b.json")
python3 - "$lone" "$a" "$b" <<'PY'
import json, sys
lone, a, b = map(float, sys.argv[1:])
print(json.dumps({"bench": "shared_cores", "lone_images_per_sec": lone, "pair_images_per_sec": [a, b],
                  "pair_share_of_lone": [round(a / lone, 3), round(b / lone, 3)]}))
PY
