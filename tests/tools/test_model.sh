# Sourced by the end-to-end scripts (tests/cli/predict_images.sh, tests/http/run.sh,
# tests/browser/run_draw.sh): sets MODEL to a small MNIST model, models/mnist.cnn trained for 3
# epochs on mnist-10k with seed 1 (about 97% on the test set). It is trained once per build of the
# binary and kept beside it, so the three scripts share it; training takes a few seconds.
# Needs DIGITNET set to the binary.
test_model() {
    MODEL="$(dirname "$DIGITNET")/test-mnist-3epochs.safetensors"
    if [ ! -s "$MODEL" ] || [ "$DIGITNET" -nt "$MODEL" ]; then
        "$DIGITNET" train --data mnist-10k --model models/mnist.cnn --epochs 3 --batch 64 --seed 1 --quiet \
            --out "$MODEL" >/dev/null 2>&1 || { echo "cannot train the test model" >&2; return 1; }
    fi
}
