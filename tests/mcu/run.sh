#!/bin/sh
# The exported C on emulated Cortex-M (make mcu-test, part of make test). Trains R1 (optdigits) and
# R2 (MNIST 10k) briefly, exports each with `digitnet export --format c`, checks the C compiles
# warning-free under -Wall -Wextra -Wpedantic -Werror for x86-64 and arm-none-eabi, builds it with
# tests/mcu's startup file and linker scripts for QEMU's lm3s6965evb (Cortex-M3, 256 KB flash, 64 KB
# RAM) and mps2-an386 (Cortex-M4F), runs a few hundred embedded test images under semihosting with
# -icount shift=0, and checks that every logit equals the host's --int8 path (tests/mcu/make_images.c).
# Also checks that a firmware over the LM3S6965's flash fails to link. Prints sizes and instructions
# per inference, then 'N passed, N failed'.
DN=${DIGITNET:-build/digitnet}
MAKE_IMAGES=${MAKE_IMAGES:-build/tests/mcu_images}
MCU=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/digitnet-mcu.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$MCU/../lib.sh"
for tool in arm-none-eabi-gcc arm-none-eabi-size qemu-system-arm; do
    command -v $tool >/dev/null || { bad "$tool is not installed (scripts/install-deps.sh installs it)"; exit 1; }
done
STRICT="-std=c99 -Wall -Wextra -Wpedantic -Werror"

# model DATA SPEC EPOCHS BATCH IMAGES
run_model() {
    m=$1 data=$2 spec=$3 epochs=$4 batch=$5 images=$6
    d="$T/$m"
    mkdir -p "$d"
    $DN train --data "$data" --model "$spec" --epochs "$epochs" --batch "$batch" --seed 1 --quiet \
        --out "$d/model.safetensors" >/dev/null 2>&1
    check "$m: trained ($epochs epochs)" test -s "$d/model.safetensors"
    $DN export --model "$d/model.safetensors" --format c --name digits --out "$d" --calibration 1000 >"$d/export.txt" 2>&1
    check "$m: digitnet export --format c" test -s "$d/digits.c" -a -s "$d/digits.h"
    sed 's/^/       /' "$d/export.txt"
    check "$m: C99 without warnings on x86-64 gcc" gcc $STRICT -O2 -c "$d/digits.c" -o "$d/x86.o"
    if [ "$(grep -h '^#include' "$d/digits.c" "$d/digits.h" | sort -u | tr '\n' ' ')" = \
        '#include "digits.h" #include <stdint.h> #include <string.h> ' ]; then
        ok "$m: the generated C includes only <stdint.h> and <string.h>"
    else
        bad "$m: the generated C includes another header"
    fi
    "$MAKE_IMAGES" "$d/model.safetensors" "$data" 1000 "$images" "$d/images.h" >"$d/expected.txt" 2>"$d/images.log"
    check "$m: $images test images packed, host int8 logits" test -s "$d/expected.txt"
    for board in lm3s6965evb:cortex-m3 mps2-an386:cortex-m4; do
        board_name=${board%%:*} cpu=${board#*:}
        b="$d/$board_name"
        mkdir -p "$b"
        ARM="arm-none-eabi-gcc -mcpu=$cpu -mthumb -Os -ffunction-sections -fdata-sections"
        if ! $ARM $STRICT -c "$d/digits.c" -o "$b/digits.o" 2>"$b/cc.log"; then
            bad "$m on $board_name: the generated C does not compile warning-free with arm-none-eabi-gcc" "$(head -3 "$b/cc.log")"
            continue
        fi
        ok "$m on $board_name: C99 without warnings on arm-none-eabi-gcc"
        # Compiled for a core without an FPU, float or double would call __aeabi_f* / __aeabi_d*
        # helpers; the only outside symbols allowed are memcpy and 64-bit integer helpers.
        others=$(arm-none-eabi-nm -u "$b/digits.o" | awk '{print $2}' | grep -vE '^(memcpy|__aeabi_(memcpy[48]?|lasr|llsl|llsr|lmul))$')
        check "$m on $board_name: no float, no malloc: it calls nothing but memcpy${others:+ (calls: $others)}" test -z "$others"
        if ! { $ARM -std=c99 -Wall -Wextra -Werror -I"$d" -c "$MCU/main.c" -o "$b/main.o" &&
            $ARM -std=c99 -Wall -Wextra -Werror -c "$MCU/startup.c" -o "$b/startup.o" &&
            $ARM -nostartfiles --specs=nano.specs -Wl,--gc-sections -L"$MCU" -T "$MCU/$board_name.ld" \
                -o "$b/fw.elf" "$b/startup.o" "$b/main.o" "$b/digits.o" -lc -lgcc; } >"$b/link.log" 2>&1; then
            bad "$m on $board_name: firmware does not build" "$(head -3 "$b/link.log")"
            continue
        fi
        ok "$m on $board_name: firmware links within the board's flash and RAM"
        set -- $(arm-none-eabi-size "$b/digits.o" | tail -1)
        model_flash=$(($1 + $2)) model_ram=$(($2 + $3))
        set -- $(arm-none-eabi-size "$b/fw.elf" | tail -1)
        echo "       $m on $board_name: model flash $model_flash bytes (weights + code), RAM $model_ram bytes;" \
            "firmware with $images images: flash $(($1 + $2)), RAM $(($2 + $3)) + 4096 stack"
        timeout 1200 qemu-system-arm -M "$board_name" -nographic -monitor none -serial none \
            -semihosting-config enable=on,target=native -icount shift=0 -kernel "$b/fw.elf" >"$b/out.txt" 2>&1
        status=$?
        check "$m on $board_name: QEMU run exits cleanly" test $status -eq 0
        grep '^img ' "$b/out.txt" >"$b/logits.txt"
        if cmp -s "$b/logits.txt" "$d/expected.txt"; then
            ok "$m on $board_name: every logit of $images images equals the host's --int8 path"
        else
            bad "$m on $board_name: logits differ from the host's --int8 path" \
                "$(diff "$b/logits.txt" "$d/expected.txt" | head -4 | tr '\n' ' ')"
        fi
        grep -E '^(instructions|correct)' "$b/out.txt" | sed "s/^/       $m on $board_name: /"
    done
}

run_model r1 optdigits models/optdigits.cnn 3 128 300
run_model r2 mnist-10k models/mnist.cnn 1 64 200

# The budget is real: R2 with 160 KB more constant data does not fit the LM3S6965's 256 KB.
b="$T/r2/lm3s6965evb"
if [ -f "$b/main.o" ]; then
    printf '#include <stdint.h>\nconst uint8_t ballast[160 * 1024] = {1};\n' >"$T/ballast.c"
    arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb -c "$T/ballast.c" -o "$T/ballast.o"
    if arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb -nostartfiles --specs=nano.specs -L"$MCU" -T "$MCU/lm3s6965evb.ld" \
        -Wl,--undefined=ballast -o "$T/over.elf" "$b/startup.o" "$b/main.o" "$b/digits.o" "$T/ballast.o" -lc -lgcc \
        >"$T/over.log" 2>&1; then
        bad "a firmware over 256 KB of flash links for lm3s6965evb"
    else
        check "a firmware over 256 KB of flash fails to link for lm3s6965evb" grep -q "overflowed" "$T/over.log"
    fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
