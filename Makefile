# digitnet build. `make` builds the library and the CLI; `make demo`, `make test`, `make bench`.
# Every source under src/ (one folder per concern) is part of the library; tests/test_*.c are
# cmocka suites, one binary each; tests/cli/*.sh are end-to-end runs of the CLI on real data.

BUILD   ?= build
CC      ?= gcc
PKGS     = openblas zlib libcjson libpng cairo libmicrohttpd libcurl libzip libcrypto
# pkg-config runs when make reads this file. On a fresh machine neither the -dev packages nor
# pkg-config itself exist yet at that moment, so `make demo` and `make test` install them first
# (the `deps` target) and then build in a second make, which reads this file again.
PKG_OK     := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
OPT     ?= -O2 -march=x86-64-v2 -mtune=native
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Iinclude -Isrc $(PKG_CFLAGS) -fPIC -fopenmp
LDLIBS  += $(PKG_LIBS) -ljpeg -lm -lpthread -fopenmp
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

LIB_SRC  := $(sort $(wildcard src/*.c src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := $(sort $(wildcard tools/*.c))
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
WEB_OBJ  := $(BUILD)/gen/web_index.o
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all check-pkgs deps demo test unit-test cli-test asan-test browser-test serve-test fetch-test bench load-test clean fuzz fuzz-build mcu-test
all: check-pkgs $(BUILD)/libdigitnet.a $(BUILD)/libdigitnet.so $(BUILD)/digitnet

# A plain `make` on a machine without the packages stops with one line saying what to run, instead
# of a compiler error about a missing header.
check-pkgs:
ifneq ($(PKG_OK),yes)
	@echo "digitnet: the build needs Debian packages that are not installed (pkg-config cannot find all of: $(PKGS));" >&2
	@echo "  run 'make deps' (as root it installs them), or 'make demo' / 'make test', which do it first" >&2
	@exit 1
endif

$(BUILD)/%.o: %.c include/digitnet.h $(wildcard src/*.h src/*/*.h src/layers/layers.def tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libdigitnet.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/libdigitnet.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

$(BUILD)/digitnet: $(CLI_OBJ) $(WEB_OBJ) $(BUILD)/libdigitnet.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(WEB_OBJ) $(BUILD)/libdigitnet.a $(LDLIBS)

# The drawing page, compiled into the binary so that `digitnet serve` needs no files beside it.
$(BUILD)/gen/web_index.c: web/index.html
	@mkdir -p $(dir $@)
	xxd -i web/index.html > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/web_index.o: $(BUILD)/gen/web_index.c
	$(CC) $(CFLAGS) -c $< -o $@

# Test helper: renders MNIST test digits as pictures (tests/cli/predict_images.sh, tests/http).
$(BUILD)/tests/render_digits: tests/tools/render_digits.c $(BUILD)/libdigitnet.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdigitnet.a $(LDLIBS)

# _XOPEN_SOURCE: testutil.h removes the scratch directory with nftw.
$(BUILD)/tests/%: tests/%.c tests/testutil.h $(BUILD)/libdigitnet.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -D_XOPEN_SOURCE=700 -o $@ $< $(BUILD)/libdigitnet.a $(LDLIBS) -lcmocka

# The allocation counter wraps the library's malloc, calloc and realloc (tests/test_alloc.c).
$(BUILD)/tests/test_alloc: tests/test_alloc.c tests/testutil.h $(BUILD)/libdigitnet.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -D_XOPEN_SOURCE=700 -o $@ $< $(BUILD)/libdigitnet.a $(LDLIBS) -lcmocka \
		-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

# The regression suite runs the fuzz harness bodies (tests/fuzz/targets.c) on every saved input.
$(BUILD)/tests/test_fuzz_regressions: tests/fuzz/targets.c tests/fuzz/targets.h

deps:
	@sh scripts/install-deps.sh

# Unit suites run from the project root so that they find ../shared/data.
# The gradient checks run twice: with the kernels the CPU gets (AVX-512 where it has it) and with
# the portable ones (DIGITNET_SIMD=generic), so both are checked on any machine.
unit-test: $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; $$t; done
	@echo "== $(BUILD)/tests/test_gradients, portable kernels"; DIGITNET_SIMD=generic $(BUILD)/tests/test_gradients

cli-test: $(BUILD)/digitnet $(BUILD)/tests/render_digits
	@set -e; for t in $(sort $(wildcard tests/cli/*.sh)); do echo "== $$t"; DIGITNET=$(BUILD)/digitnet sh $$t; done

# The HTTP server: status codes, bad bodies, 200 concurrent requests, SIGTERM (curl); then the
# drawing page in headless Chromium through Playwright (tests/browser/run_draw.sh).
serve-test: $(BUILD)/digitnet $(BUILD)/tests/render_digits
	DIGITNET=$(BUILD)/digitnet sh tests/http/run.sh
	DIGITNET=$(BUILD)/digitnet sh tests/browser/run_draw.sh

# The HTML report in headless Chromium through Playwright: real train, eval and cv reports, every
# picture loaded, the accuracy shown = metrics.json's, readable on a phone (tests/browser/run.sh).
browser-test: $(BUILD)/digitnet
	DIGITNET=$(BUILD)/digitnet sh tests/browser/run.sh

# digitnet fetch over real HTTP: a loopback server (tests/fetch/server.py) serves the real files
# under the official mirrors' paths, plus corrupted copies, HTML pages, cut transfers, redirect
# loops and stalls; also train --fetch and the demo script into an empty $DIGITNET_DATA.
fetch-test: $(BUILD)/digitnet
	DIGITNET=$(BUILD)/digitnet sh tests/fetch/run.sh

# The same unit suites once more under AddressSanitizer + UBSan (leak checking on). The sanitizer
# flags go in through OPT: setting CFLAGS or LDLIBS on the command line would override the
# `+=` lines above and drop the include paths and libraries. Tests link with $(CFLAGS), so the
# sanitizer runtimes come along.
asan-test:
	$(MAKE) BUILD=build-asan OPT="-O1 $(SANITIZE)" unit-test

# The int8 C export on emulated Cortex-M (tests/mcu/run.sh): R1 and R2 trained briefly, exported,
# built for QEMU's lm3s6965evb (Cortex-M3, 256 KB flash, 64 KB RAM) and mps2-an386 (Cortex-M4F) with
# tests/mcu's startup file and linker scripts, run on embedded test images under semihosting; every
# logit must equal the host's --int8 path. Prints sizes and instructions per inference.
$(BUILD)/tests/mcu_images: tests/mcu/make_images.c $(BUILD)/libdigitnet.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdigitnet.a $(LDLIBS)

mcu-test: $(BUILD)/digitnet $(BUILD)/tests/mcu_images
	DIGITNET=$(BUILD)/digitnet MAKE_IMAGES=$(BUILD)/tests/mcu_images sh tests/mcu/run.sh

# deps first, then a second make: it reads this file after the packages are there (see PKG_CFLAGS).
test: deps
	$(MAKE) all
	$(MAKE) unit-test
	$(MAKE) cli-test
	$(MAKE) asan-test
	$(MAKE) serve-test
	$(MAKE) fetch-test
	$(MAKE) browser-test
	$(MAKE) mcu-test
	@echo "all test groups passed"

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh $(BUILD)/digitnet

$(BUILD)/bench: bench/bench.c $(BUILD)/libdigitnet.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdigitnet.a $(LDLIBS)

bench: deps
	@sh scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all $(BUILD)/bench
	@BUILD=$(BUILD) sh bench/run.sh

# The server under load (tests/load/run.sh, not part of `make test`): LOAD_SECONDS (60) of wrk sending
# valid, malformed and oversized predict requests at once; requests/s, latency, statuses, crashes and
# resident memory; fails on a failed valid request, a crash or RSS off by over 10%. wrk comes with the
# bench packages.
load-test: $(BUILD)/digitnet $(BUILD)/tests/render_digits
	@command -v wrk >/dev/null || sh scripts/install-deps.sh bench
	DIGITNET=$(BUILD)/digitnet sh tests/load/run.sh

# Fuzzing (tests/fuzz/): libFuzzer harnesses for every parser, built with clang from the same
# sources into build-fuzz/ (the library with -fsanitize=fuzzer-no-link for coverage, each harness
# linked with -fsanitize=fuzzer), all under ASan + UBSan. `make fuzz` runs each harness for
# FUZZ_SECONDS, starting from tests/fuzz/corpus/NAME and tests/fuzz/regressions/NAME; new inputs
# go to build-fuzz/corpus/NAME and crashing ones to build-fuzz/crashes/NAME/. FUZZ_TARGETS picks
# harnesses: `make fuzz FUZZ_TARGETS=spec FUZZ_SECONDS=600`.
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= idx optdigits spec model image
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g $(FUZZ_SAN) -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DDN_NO_MULTIVERSION \
                -Wall -Wextra -Wno-pass-failed -Iinclude -Isrc $(PKG_CFLAGS) -fopenmp
FUZZ_OBJ     := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/src/%.o: src/%.c include/digitnet.h $(wildcard src/*.h src/*/*.h src/layers/layers.def)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libdigitnet.a: $(FUZZ_OBJ)
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/targets.c tests/fuzz/targets.h $(FUZZ_BUILD)/libdigitnet.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libdigitnet.a $(LDLIBS)

fuzz-build: $(FUZZ_BIN)

fuzz:
	@sh scripts/install-deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t; \
	    dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
	    seeds="tests/fuzz/corpus/$$t"; [ -d tests/fuzz/regressions/$$t ] && seeds="$$seeds tests/fuzz/regressions/$$t"; \
	    nice -n 10 $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	        -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ $$dict \
	        $(FUZZ_BUILD)/corpus/$$t $$seeds; \
	done

clean:
	rm -rf build build-asan build-fuzz
