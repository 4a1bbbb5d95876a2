# digitnet build. `make` builds the library and the CLI; `make demo`, `make test`, `make bench`.
# Every source under src/ (one folder per concern) is part of the library; tests/test_*.c are
# cmocka suites, one binary each; tests/cli/*.sh are end-to-end runs of the CLI on real data.

BUILD   ?= build
CC      ?= gcc
# OpenBLAS is not linked into digitnet (its own kernels do every product); the unit tests use it as
# an independent reference for those kernels.
PKGS     = openblas zlib libcjson libpng cairo libmicrohttpd libcurl libzip libcrypto
PKGS    += libprotobuf-c
# pkg-config runs when make reads this file. On a fresh machine neither the -dev packages nor
# pkg-config itself exist yet at that moment, so `make demo` and `make test` install them first
# (the `deps` target) and then build in a second make, which reads this file again.
PKG_OK     := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(filter-out openblas,$(PKGS)) 2>/dev/null)
BLAS_LIBS  := $(shell pkg-config --libs openblas 2>/dev/null)
OPT     ?= -O2 -march=x86-64-v2 -mtune=native
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Iinclude -Isrc $(PKG_CFLAGS) -fPIC -fopenmp
# Nothing reads errno after a math call; without this, sqrtf's errno keeps loops such as Adam's
# scalar. Nothing reads the floating-point exception flags either; without -fno-trapping-math a
# clamp (a < b ? b : a) is a branch and keeps the sigmoid loop scalar. Neither changes a result.
# Nothing is contracted into FMAs (-ffp-contract=off, as C11 mode does by default with gcc but not
# every compiler): every SIMD variant of a kernel computes the same bits.
CFLAGS  += -fno-math-errno -fno-trapping-math -ffp-contract=off
# `digitnet info` reports the flags the library was built with.
$(BUILD)/src/kernels/runtime_info.o: CFLAGS += -DDN_BUILD_OPT='"$(OPT)"'
LDLIBS  += $(PKG_LIBS) -ljpeg -lm -lpthread -fopenmp
# Open MPI, when it is there (scripts/install-deps.sh installs it): the CLI's tools/dist.c is built
# with it and `mpirun digitnet ...` runs one job over the ranks. Read like PKG_CFLAGS above, so a
# first run that installs it builds with it in its second make; without it nothing changes, and the
# library never links MPI.
MPI_OK  := $(shell pkg-config --exists ompi-c 2>/dev/null && echo yes)
ifeq ($(MPI_OK),yes)
$(BUILD)/tools/dist.o: CFLAGS += -DDN_HAVE_MPI $(shell pkg-config --cflags ompi-c)
$(BUILD)/digitnet: LDLIBS += $(shell pkg-config --libs ompi-c)
endif
# dist.o is rebuilt when Open MPI comes or goes (a stamp per state).
MPI_STAMP := $(BUILD)/mpi-$(if $(MPI_OK),on,off).stamp
$(BUILD)/tools/dist.o: $(MPI_STAMP)
$(MPI_STAMP):
	@mkdir -p $(dir $@) && rm -f $(BUILD)/mpi-on.stamp $(BUILD)/mpi-off.stamp && touch $@
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

LIB_SRC  := $(sort $(wildcard src/*.c src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := $(sort $(wildcard tools/*.c))
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
WEB_OBJ  := $(BUILD)/gen/web_index.o
TEST_SRC := $(sort $(wildcard tests/test_*.c))

# Two libraries (STYLE.md, Library boundaries). libdigitnet: networks, layers, kernels, training,
# metrics, model files and data loaders, linking only zlib, cJSON and OpenMP.
# libdigitnet-extra: the folders in EXTRA_DIRS (pictures with cairo, image files with libpng and
# libjpeg, downloads with libcurl, libzip and OpenSSL); the CLI uses both. A new folder under src/
# goes to the core unless it is listed here. The shared objects carry a SONAME of the major
# version (libdigitnet.so.0) and are real files named with the whole version, DN_VERSION in the
# header. The static archives keep every symbol, so the unit tests can call internal functions.
EXTRA_DIRS  = src/plot src/image src/fetch src/onnx
CORE_PKGS   = zlib libcjson
EXTRA_PKGS  = libpng cairo libcurl libzip libcrypto libprotobuf-c
CORE_LIBS  := $(shell pkg-config --libs $(CORE_PKGS) 2>/dev/null) -lm -lpthread -fopenmp
EXTRA_LIBS := $(shell pkg-config --libs $(EXTRA_PKGS) 2>/dev/null) -ljpeg
EXTRA_OBJ  := $(filter $(addprefix $(BUILD)/,$(addsuffix /%,$(EXTRA_DIRS))),$(LIB_OBJ))
CORE_OBJ   := $(filter-out $(EXTRA_OBJ),$(LIB_OBJ))
# Internal helpers of the core that the extra library calls too; its shared object carries private
# (hidden) copies, since the core's shared object exports nothing but the public API.
# (layers/common.o: the spec helpers, window arithmetic and activation names that ONNX import uses.)
SHARED_HELPERS := $(BUILD)/src/error.o $(BUILD)/src/util/atomic_file.o $(BUILD)/src/rng.o \
                  $(BUILD)/src/layers/common.o
DN_VERSION := $(shell sed -n 's/^\#define DN_VERSION "\(.*\)"/\1/p' include/digitnet.h)
SO_MAJOR   := $(firstword $(subst ., ,$(DN_VERSION)))
LIB_A      := $(BUILD)/libdigitnet-extra.a $(BUILD)/libdigitnet.a
SO_FLAGS    = -shared -Wl,--no-undefined -Wl,--as-needed
# Only the functions declared in include/digitnet.h are exported from the shared libraries: the
# library's objects are compiled with hidden visibility and the header marks its declarations
# default. (Programs keep default visibility: the sanitizers look up hooks such as
# __lsan_default_suppressions in the test binaries.)
$(LIB_OBJ): CFLAGS += -fvisibility=hidden
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

# ONNX export and import (src/onnx/): protoc-c turns the onnx.proto Debian ships in libonnx-dev into
# C in the build directory (never committed); src/onnx/onnx_proto.c compiles it, and only src/onnx/
# sees its header.
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
ONNX_GEN   := $(BUILD)/gen/onnx
ONNX_OBJ   := $(filter $(BUILD)/src/onnx/%,$(LIB_OBJ))
$(ONNX_GEN)/onnx.pb-c.c: $(ONNX_PROTO)
	@mkdir -p $(ONNX_GEN)
	protoc-c --c_out=$(ONNX_GEN) --proto_path=$(dir $(ONNX_PROTO)) $(ONNX_PROTO)
$(ONNX_GEN)/onnx.pb-c.h: $(ONNX_GEN)/onnx.pb-c.c ;
$(ONNX_OBJ): $(ONNX_GEN)/onnx.pb-c.c $(ONNX_GEN)/onnx.pb-c.h
$(BUILD)/src/onnx/%.o: CFLAGS += -I$(ONNX_GEN)

.PHONY: onnx-test install uninstall install-test python-test
.PHONY: all check-pkgs deps demo test setup-test unit-test cli-test asan-test tsan-test browser-test serve-test fetch-test bench load-test clean fuzz fuzz-build mcu-test
all: check-pkgs $(LIB_A) $(BUILD)/libdigitnet.so $(BUILD)/libdigitnet-extra.so $(BUILD)/digitnet

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

$(BUILD)/libdigitnet.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libdigitnet-extra.a: $(EXTRA_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/helpers.a: $(SHARED_HELPERS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libdigitnet.so.$(DN_VERSION): $(CORE_OBJ)
	$(CC) $(SO_FLAGS) -Wl,-soname,libdigitnet.so.$(SO_MAJOR) -o $@ $^ $(CORE_LIBS)

# --exclude-libs keeps the helpers' copies out of the extra library's exported symbols.
$(BUILD)/libdigitnet-extra.so.$(DN_VERSION): $(EXTRA_OBJ) $(BUILD)/helpers.a $(BUILD)/libdigitnet.so
	$(CC) $(SO_FLAGS) -Wl,-soname,libdigitnet-extra.so.$(SO_MAJOR) -Wl,--exclude-libs,helpers.a -o $@ \
		$(EXTRA_OBJ) $(BUILD)/helpers.a -L$(BUILD) -ldigitnet $(EXTRA_LIBS) -lm -fopenmp

# Links, not intermediate files for make to delete after the build.
.SECONDARY: $(BUILD)/libdigitnet.so.$(SO_MAJOR) $(BUILD)/libdigitnet-extra.so.$(SO_MAJOR)
$(BUILD)/%.so.$(SO_MAJOR): $(BUILD)/%.so.$(DN_VERSION)
	ln -sf $(notdir $<) $@

$(BUILD)/%.so: $(BUILD)/%.so.$(SO_MAJOR)
	ln -sf $(notdir $<) $@

$(BUILD)/digitnet: $(CLI_OBJ) $(WEB_OBJ) $(LIB_A)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(WEB_OBJ) $(LIB_A) $(LDLIBS)

# The drawing page, compiled into the binary so that `digitnet serve` needs no files beside it.
$(BUILD)/gen/web_index.c: web/index.html
	@mkdir -p $(dir $@)
	xxd -i web/index.html > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/web_index.o: $(BUILD)/gen/web_index.c
	$(CC) $(CFLAGS) -c $< -o $@

# Test helper: renders MNIST test digits as pictures (tests/cli/predict_images.sh, tests/http).
$(BUILD)/tests/render_digits: tests/tools/render_digits.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

# _XOPEN_SOURCE: testutil.h removes the scratch directory with nftw.
$(BUILD)/tests/%: tests/%.c tests/testutil.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -D_XOPEN_SOURCE=700 -o $@ $< $(LIB_A) $(LDLIBS) $(BLAS_LIBS) -lcmocka

# The allocation counter wraps the library's malloc, calloc and realloc (tests/test_alloc.c).
$(BUILD)/tests/test_alloc: tests/test_alloc.c tests/testutil.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -D_XOPEN_SOURCE=700 -o $@ $< $(LIB_A) $(LDLIBS) $(BLAS_LIBS) -lcmocka \
		-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

# The regression suite runs the fuzz harness bodies (tests/fuzz/targets.c) on every saved input.
$(BUILD)/tests/test_fuzz_regressions: tests/fuzz/targets.c tests/fuzz/targets.h

deps:
	@sh scripts/install-deps.sh

# The first run on a machine without the packages (tests/setup/fresh_machine.sh): as root it removes
# libcjson-dev, runs `make demo` once in a fresh copy with pkg-config hidden from the first reading
# of this file, and checks that it succeeds and reinstalls the package. Skipped when not root.
setup-test:
	DIGITNET_DATA=$(TEST_DATA) sh tests/setup/fresh_machine.sh

# make install [PREFIX=/usr/local] [DESTDIR=staging dir]: the header, both libraries (static and
# shared, with their SONAME links), digitnet.pc and digitnet-extra.pc, the CLI, the man page and the
# Python package, where Debian's python3 looks (/usr/lib/python3/dist-packages for PREFIX=/usr,
# PREFIX/lib/python3.N/dist-packages otherwise). The package is told the library's directory in
# digitnet/_paths.py. `make uninstall` with the same PREFIX and DESTDIR removes it all again.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
PYTHON     ?= /usr/bin/python3
PYTHONDIR  ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/$(shell $(PYTHON) -c 'import sys; print("python%d.%d" % sys.version_info[:2])')/dist-packages)
PY_FILES   := $(wildcard python/digitnet/*.py)
SO_NAMES    = libdigitnet libdigitnet-extra

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(PYTHONDIR)/digitnet
	install -m 755 $(BUILD)/digitnet $(DESTDIR)$(BINDIR)/digitnet
	install -m 644 include/digitnet.h $(DESTDIR)$(INCLUDEDIR)/digitnet.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	for l in $(SO_NAMES); do \
	    install -m 755 $(BUILD)/$$l.so.$(DN_VERSION) $(DESTDIR)$(LIBDIR)/ && \
	    ln -sf $$l.so.$(DN_VERSION) $(DESTDIR)$(LIBDIR)/$$l.so.$(SO_MAJOR) && \
	    ln -sf $$l.so.$(SO_MAJOR) $(DESTDIR)$(LIBDIR)/$$l.so || exit 1; \
	    sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(DN_VERSION)|' \
	        pkgconfig/$${l#lib}.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/$${l#lib}.pc || exit 1; \
	done
	install -m 644 man/digitnet.1 $(DESTDIR)$(MANDIR)/man1/digitnet.1
	install -m 644 $(PY_FILES) $(DESTDIR)$(PYTHONDIR)/digitnet/
	printf '# Written by make install.\nLIBDIR = "%s"\n' '$(LIBDIR)' > $(DESTDIR)$(PYTHONDIR)/digitnet/_paths.py
	@if [ -z "$(DESTDIR)" ] && [ -w /etc/ld.so.cache ]; then ldconfig; fi

# The Python package (python/digitnet) with Debian's python3, numpy and pytest, against build/. The
# data sets are ../shared/data's unless DIGITNET_DATA says otherwise.
python-test: all
	DIGITNET=$(BUILD)/digitnet DIGITNET_LIB=$(abspath $(BUILD))/libdigitnet.so PYTHONPATH=python \
		DIGITNET_DATA=$${DIGITNET_DATA:-$(abspath ../shared/data)} $(PYTHON) -m pytest -q -p no:cacheprovider tests/python

# make install into a staging directory, then checks what it installed: the exported symbols, the
# NEEDED lists and SONAMEs, pkg-config, examples/classify.c built against the installed copy and run
# on a rendered MNIST digit, the man page, the installed Python package; then make uninstall.
install-test: all $(BUILD)/tests/render_digits
	DIGITNET=$(BUILD)/digitnet BUILD=$(BUILD) PYTHON=$(PYTHON) DIGITNET_DATA=$${DIGITNET_DATA:-$(abspath ../shared/data)} \
		sh tests/install/run.sh

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/digitnet $(DESTDIR)$(INCLUDEDIR)/digitnet.h $(DESTDIR)$(MANDIR)/man1/digitnet.1
	for l in $(SO_NAMES); do \
	    rm -f $(DESTDIR)$(LIBDIR)/$$l.a $(DESTDIR)$(LIBDIR)/$$l.so $(DESTDIR)$(LIBDIR)/$$l.so.$(SO_MAJOR) \
	          $(DESTDIR)$(LIBDIR)/$$l.so.$(DN_VERSION) $(DESTDIR)$(PKGCONFIGDIR)/$${l#lib}.pc; \
	done
	rm -rf $(DESTDIR)$(PYTHONDIR)/digitnet
	@if [ -z "$(DESTDIR)" ] && [ -w /etc/ld.so.cache ]; then ldconfig; fi
# The tests' real data: the library searches no path of this repository, so the test runs name it
# in $DIGITNET_DATA (TEST_DATA=DIR to use another copy).
TEST_DATA ?= $(abspath ../shared/data)

# Unit suites run from the project root so that they find ../shared/data.
# The gradient checks run with the kernels the CPU gets (AVX-512 where it has it), with the AVX2
# ones (DIGITNET_SIMD=avx2, where the CPU has AVX2) and with the portable ones (DIGITNET_SIMD=generic),
# so every path is checked on a machine that has it; and once more with flush-to-zero, the
# floating-point mode training and inference run in.
unit-test: $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; DIGITNET_DATA=$(TEST_DATA) $$t; done
	@echo "== $(BUILD)/tests/test_gradients, AVX2 kernels"; DIGITNET_SIMD=avx2 $(BUILD)/tests/test_gradients
	@echo "== $(BUILD)/tests/test_gradients, portable kernels"; DIGITNET_SIMD=generic $(BUILD)/tests/test_gradients
	@echo "== $(BUILD)/tests/test_gradients, flush-to-zero"; DIGITNET_TEST_FTZ=1 $(BUILD)/tests/test_gradients

cli-test: $(BUILD)/digitnet $(BUILD)/tests/render_digits
	@set -e; for t in $(sort $(wildcard tests/cli/*.sh)); do echo "== $$t"; DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh $$t; done

# The HTTP server: status codes, bad bodies, 200 concurrent requests, SIGTERM (curl); hostile clients
# (tests/http/hostile.sh: slowloris, decompression-bomb floods, 600 idle connections at SIGTERM, the
# limits); then the drawing page in headless Chromium through Playwright (tests/browser/run_draw.sh).
serve-test: $(BUILD)/digitnet $(BUILD)/tests/render_digits
	DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh tests/http/run.sh
	DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh tests/http/hostile.sh
	DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh tests/browser/run_draw.sh

# The HTML report in headless Chromium through Playwright: real train, eval and cv reports, every
# picture loaded, the accuracy shown = metrics.json's, readable on a phone (tests/browser/run.sh).
browser-test: $(BUILD)/digitnet
	DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh tests/browser/run.sh

# digitnet fetch over real HTTP: a loopback server (tests/fetch/server.py) serves the real files
# under the official mirrors' paths, plus corrupted copies, HTML pages, cut transfers, redirect
# loops and stalls; also train --fetch and the demo script into an empty $DIGITNET_DATA.
fetch-test: $(BUILD)/digitnet
	DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh tests/fetch/run.sh

# ONNX (tests/onnx/run.sh): exported R1 and R2 through onnx.checker and onnxruntime-node on their
# whole test sets; PyTorch-trained and tf2onnx-layout models imported; malformed files.
onnx-test: $(BUILD)/digitnet
	DIGITNET_DATA=$(TEST_DATA) DIGITNET_TEST_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh tests/onnx/run.sh

# The same unit suites once more under AddressSanitizer + UBSan (leak checking on). The sanitizer
# flags go in through OPT: setting CFLAGS or LDLIBS on the command line would override the
# `+=` lines above and drop the include paths and libraries. Tests link with $(CFLAGS), so the
# sanitizer runtimes come along.
asan-test:
	$(MAKE) BUILD=build-asan OPT="-O1 $(SANITIZE)" unit-test

# The threaded suites once more under ThreadSanitizer, in their own build directory: several
# threads predicting with one net at once (tests/test_threads.c). libgomp is not built with TSan, so
# its own barriers would be reported as races: OMP_NUM_THREADS=1 keeps each caller's OpenMP team to
# the calling thread, and the threads under test are the suite's own pthreads. DN_NO_MULTIVERSION:
# the loader runs target_clones resolvers before the TSan runtime is up, which crashes.
TSAN_TESTS = test_threads
tsan-test:
	$(MAKE) BUILD=build-tsan OPT="-O1 -fsanitize=thread -fno-omit-frame-pointer -DDN_NO_MULTIVERSION" \
		$(TSAN_TESTS:%=build-tsan/tests/%)
	@set -e; for t in $(TSAN_TESTS); do echo "== build-tsan/tests/$$t (ThreadSanitizer)"; \
	    OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 exitcode=66" build-tsan/tests/$$t; done

# The int8 C export on emulated Cortex-M (tests/mcu/run.sh): R1 and R2 trained briefly, exported,
# built for QEMU's lm3s6965evb (Cortex-M3, 256 KB flash, 64 KB RAM) and mps2-an386 (Cortex-M4F) with
# tests/mcu's startup file and linker scripts, run on embedded test images under semihosting; every
# logit must equal the host's --int8 path. Prints sizes and instructions per inference.
$(BUILD)/tests/mcu_images: tests/mcu/make_images.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

mcu-test: $(BUILD)/digitnet $(BUILD)/tests/mcu_images
	DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet MAKE_IMAGES=$(BUILD)/tests/mcu_images sh tests/mcu/run.sh

# deps first, then a second make: it reads this file after the packages are there (see PKG_CFLAGS).
test: deps
	$(MAKE) all
	$(MAKE) unit-test
	$(MAKE) cli-test
	$(MAKE) asan-test
	$(MAKE) tsan-test
	$(MAKE) serve-test
	$(MAKE) fetch-test
	$(MAKE) browser-test
	$(MAKE) python-test
	$(MAKE) install-test
	$(MAKE) onnx-test
	$(MAKE) mcu-test
	$(MAKE) setup-test
	@echo "all test groups passed"

# The demo uses this repository's copy of the data when it is beside it (../shared/data) and the
# user named no other; elsewhere digitnet looks in its usual places and downloads what is missing.
demo: deps
	@$(MAKE) --no-print-directory all
	@if [ -z "$$DIGITNET_DATA" ] && [ -d "$(TEST_DATA)/optdigits" ]; then export DIGITNET_DATA="$(TEST_DATA)"; fi; \
	    sh scripts/demo.sh $(BUILD)/digitnet

$(BUILD)/bench: bench/bench.c $(LIB_A)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

# A second bench binary built for a CPU without AVX-512 (x86-64-v3: AVX2 and FMA, no function
# clones), run with DIGITNET_SIMD=avx2: what a laptop without AVX-512 gets, measured on this machine.
AVX2_OPT = -O2 -march=x86-64-v3 -mtune=native -DDN_NO_MULTIVERSION
bench: deps
	@sh scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all $(BUILD)/bench
	@$(MAKE) --no-print-directory BUILD=$(BUILD)-avx2 OPT="$(AVX2_OPT)" $(BUILD)-avx2/bench
	@DIGITNET_DATA=$(TEST_DATA) BUILD=$(BUILD) sh bench/run.sh

# The server under load (tests/load/run.sh, not part of `make test`): LOAD_SECONDS (60) of wrk sending
# valid, malformed and oversized predict requests at once; requests/s, latency, statuses, crashes and
# resident memory; fails on a failed valid request, a crash or RSS off by over 10%. wrk comes with the
# bench packages. Then tests/http/hostile.sh with a minute of each attack.
load-test: $(BUILD)/digitnet $(BUILD)/tests/render_digits
	@command -v wrk >/dev/null || sh scripts/install-deps.sh bench
	DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh tests/load/run.sh
	HOSTILE_SECONDS=60 DIGITNET_DATA=$(TEST_DATA) DIGITNET=$(BUILD)/digitnet sh tests/http/hostile.sh

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

# The ONNX harness: src/onnx/ needs the generated protobuf-c code here too.
FUZZ_TARGETS += onnx
FUZZ_ONNX_OBJ := $(filter $(FUZZ_BUILD)/src/onnx/%,$(FUZZ_OBJ))
$(FUZZ_ONNX_OBJ): $(ONNX_GEN)/onnx.pb-c.c $(ONNX_GEN)/onnx.pb-c.h
$(FUZZ_BUILD)/src/onnx/%.o: FUZZ_CFLAGS += -I$(ONNX_GEN)
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

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
	rm -rf build build-asan build-fuzz build-tsan build-avx2
