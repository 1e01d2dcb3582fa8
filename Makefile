# devnet — build, test and run. See README.md for the two commands that matter:
#   make run    install missing packages, build, bring the default model, start the daemon
#   make test   install missing packages, build, run every test
SHELL := /bin/bash
CC ?= cc
BUILD ?= build
DEVNET_SHARED ?= $(abspath ../shared)
export DEVNET_SHARED

PKGS := openblas libcjson libturbojpeg libpng libmicrohttpd
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT ?= -O3
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -fno-strict-aliasing
CFLAGS ?= $(OPT)
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS) $(SAN) -Icore -Iapi -Iserver $(PKG_CFLAGS) -MMD -MP
LDLIBS = $(PKG_LIBS) -lpthread -lm

CORE_SRC := $(wildcard core/*.c)
API_SRC := $(wildcard api/*.c)
CLI_SRC := $(wildcard cli/*.c)
SERVER_SRC := $(filter-out server/devnetd.c,$(wildcard server/*.c))
TEST_SRC := $(wildcard tests/test_*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
API_OBJ := $(API_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)
DAEMON_OBJ := $(BUILD)/obj/server/devnetd.o
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

BACKBONE_TFLITE := tf2_mobilenet_v2_1.0_224_ptq.tflite
BACKBONE := $(BUILD)/backbone.safetensors

.PHONY: all deps test test-run test-e2e asan run clean backbone bench
all: $(BUILD)/devnet $(BUILD)/devnetd $(BUILD)/libdevnet.a $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet_server.a

deps:
	@tools/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libdevnet.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# api/ (JSON answers, no HTTP) on top of core/; the CLI and the service link both.
$(BUILD)/libdevnet_api.a: $(API_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The operator console (GET /): server/console/index.html compiled into the server library
# as a byte array (tools/embed.sh, od + awk), which server/dn_console.c serves.
CONSOLE_PAGE_C := $(BUILD)/gen/dn_console_page.c
CONSOLE_PAGE_OBJ := $(BUILD)/obj/gen/dn_console_page.o
SERVER_OBJ += $(CONSOLE_PAGE_OBJ)
$(CONSOLE_PAGE_C): server/console/index.html tools/embed.sh
	@mkdir -p $(dir $@)
	sh tools/embed.sh $< dn_console_html > $@.tmp && mv $@.tmp $@
$(CONSOLE_PAGE_OBJ): $(CONSOLE_PAGE_C)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# server/ (daemon subsystems: HTTP, workers, feedback store, models, retraining, metrics).
$(BUILD)/libdevnet_server.a: $(SERVER_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/devnetd: $(DAEMON_OBJ) $(BUILD)/libdevnet_server.a $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a
	$(CC) $(SAN) -o $@ $(DAEMON_OBJ) $(BUILD)/libdevnet_server.a $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a $(LDLIBS)

$(BUILD)/devnet: $(CLI_OBJ) $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a
	$(CC) $(SAN) -o $@ $(CLI_OBJ) $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a $(LDLIBS)

# All criterion test files link into one runner so that one Synthesis line closes the run.
$(BUILD)/test_all: $(TEST_OBJ) $(BUILD)/libdevnet_server.a $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a
	$(CC) $(SAN) -o $@ $(TEST_OBJ) $(BUILD)/libdevnet_server.a $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a $(LDLIBS) -lcriterion

# The default backbone: converted from ../shared (or DEVNET_SHARED) when present,
# otherwise downloaded from its public origin and checked (tools/fetch_backbone.sh).
backbone: $(BACKBONE)
$(BACKBONE): $(BUILD)/devnet tools/fetch_backbone.sh
	@tools/fetch_backbone.sh $(BUILD) && $(BUILD)/devnet import-backbone $(BUILD)/$(BACKBONE_TFLITE) -o $@

test:
	@tools/deps.sh --test
	@$(MAKE) --no-print-directory all $(BUILD)/test_all
	@$(MAKE) --no-print-directory backbone || echo "warning: no backbone; tests that need it will skip"
	@if command -v node >/dev/null && command -v npm >/dev/null; then \
	  [ -d tools/openapi/node_modules ] || npm --prefix tools/openapi ci --no-audit --no-fund || { rm -rf tools/openapi/node_modules; echo "warning: npm ci in tools/openapi failed; the openapi lint and live test will skip"; }; \
	  if [ -d tools/openapi/node_modules ]; then npm --prefix tools/openapi run lint; fi; \
	else echo "warning: node/npm not found; the openapi lint and live test will skip"; fi
	@tools/check_docker_libs.sh $(BUILD)/devnetd
	@$(MAKE) --no-print-directory test-e2e
	@$(MAKE) --no-print-directory test-run

test-run:
	DEVNET_BACKBONE=$(abspath $(BACKBONE)) DEVNET_DEVNETD=$(abspath $(BUILD)/devnetd) $(BUILD)/test_all --jobs 2 --verbose

# The console in headless Chromium (tests/e2e/console.test.mjs); it prints "skipped: why"
# and passes where node, its packages, chromium, the backbone or ../shared are missing.
test-e2e: $(BUILD)/devnetd
	@if ! command -v node >/dev/null; then echo "console e2e skipped: node is not installed"; exit 0; fi; \
	if [ ! -d tests/e2e/node_modules ] && command -v npm >/dev/null; then \
	  npm ci --prefix tests/e2e --no-audit --no-fund || echo "console e2e: npm ci failed"; fi; \
	DEVNET_DEVNETD=$(abspath $(BUILD)/devnetd) DEVNET_BACKBONE=$${DEVNET_BACKBONE:-$(abspath $(BACKBONE))} \
	  node tests/e2e/console.test.mjs

# AddressSanitizer + UBSan build in its own directory; a failing test or a sanitizer report
# fails the run (criterion forks each test and does not fail on LeakSanitizer output itself).
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1" SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all build-asan/test_all build-asan/backbone.safetensors
	set -o pipefail; ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(abspath tools/lsan.supp) DEVNET_BACKBONE=$(abspath build-asan/backbone.safetensors) DEVNET_DEVNETD=$(abspath build-asan/devnetd) \
	  build-asan/test_all --jobs 2 2>&1 | tee build-asan/asan.log; failed=$$?; \
	  if grep -q -E "LeakSanitizer|AddressSanitizer|runtime error" build-asan/asan.log; then echo "asan: sanitizer reports above"; exit 1; fi; \
	  exit $$failed

# The daemon on 127.0.0.1:8080 with its data in $(DEVNET_DATA). On the first run it trains
# a model on ../shared/data/mvtec_bottle when that exists (progress in its log lines);
# without it, it starts not ready and says how to add training images.
DEVNET_DATA ?= devnet-data
RUN_TRAIN_DATA := $(wildcard $(DEVNET_SHARED)/data/mvtec_bottle)
run: deps all backbone
	@mkdir -p $(DEVNET_DATA)
	exec $(BUILD)/devnetd --listen 127.0.0.1:8080 --data-dir $(DEVNET_DATA) --backbone $(BACKBONE) \
	  $(if $(RUN_TRAIN_DATA),--train-data $(RUN_TRAIN_DATA))

# ---- Fuzzing (libFuzzer) ----------------------------------------------------------------
# make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="image model"]: clang builds the libraries with
# coverage (-fsanitize=fuzzer-no-link) and ASan + UBSan into build-fuzz/, and one harness
# per target (tests/fuzz/fuzz_<target>.c over tests/fuzz/fuzz_targets.c, which make test
# also replays); each runs FUZZ_SECONDS on its seeds (tests/fuzz/corpus/<target>/ and
# tests/fuzz/regress/<target>/, read only). New inputs go to build-fuzz/corpus/<target>/,
# findings to build-fuzz/crashes/<target>/, the log to build-fuzz/<target>.log; it fails
# when a harness found something. make fuzz-seeds regenerates tests/fuzz/corpus/.
FUZZ_TARGETS ?= image model tflite request_json multipart service
FUZZ_SECONDS ?= 60
FUZZ_DIR := build-fuzz
# gcc defines __SANITIZE_ADDRESS__ under ASan and core/dn_simd.h then compiles no
# target_clones; clang 14 does not define it, and refuses those clones' 64-byte vector helpers.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  -D__SANITIZE_ADDRESS__=1
FUZZ_OBJ := $(BUILD)/obj/tests/fuzz/fuzz_targets.o
FUZZ_LIBS := $(BUILD)/libdevnet_server.a $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a
.PHONY: fuzz fuzz-build fuzz-seeds

fuzz:
	@[ -n "$$DEVNET_BACKBONE" ] || $(MAKE) --no-print-directory backbone || echo "warning: no backbone; the service harness will not start"
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_DIR) CC=clang OPT=-O1 SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" fuzz-build
	@found=; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crashes/$$t $(FUZZ_DIR)/tmp/$$t; \
	  seeds=tests/fuzz/corpus/$$t; [ -d tests/fuzz/regress/$$t ] && seeds="$$seeds tests/fuzz/regress/$$t"; \
	  start=$$(date +%s); TMPDIR=$(abspath $(FUZZ_DIR)/tmp/$$t) UBSAN_OPTIONS=print_stacktrace=1 DEVNET_BACKBONE=$${DEVNET_BACKBONE:-$(abspath $(BACKBONE))} \
	    $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=30 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/crashes/$$t/ $(FUZZ_DIR)/corpus/$$t $$seeds > $(FUZZ_DIR)/$$t.log 2>&1 || found="$$found $$t"; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_DIR)/$$t.log); \
	  corp=$$(grep -o 'corp: [0-9]*' $(FUZZ_DIR)/$$t.log | tail -1 | cut -d' ' -f2); \
	  echo "fuzz_$$t: $$(( $$(date +%s) - start )) s, $${execs:-0} executions, corpus $${corp:-?} inputs, $$(ls $(FUZZ_DIR)/crashes/$$t | wc -l) files in $(FUZZ_DIR)/crashes/$$t"; \
	  rm -rf $(FUZZ_DIR)/tmp/$$t; \
	done; \
	if [ -n "$$found" ]; then echo "fuzz: findings in:$$found (reproduce: $(FUZZ_DIR)/fuzz_<target> FILE)"; exit 1; fi

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)
.SECONDARY: $(FUZZ_OBJ) $(FUZZ_TARGETS:%=$(BUILD)/obj/tests/fuzz/fuzz_%.o)

$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_OBJ) $(FUZZ_LIBS)
	$(CC) $(SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(FUZZ_LIBS) $(LDLIBS)

fuzz-seeds: $(BUILD)/fuzz-seeds
	rm -rf tests/fuzz/corpus && $(BUILD)/fuzz-seeds tests/fuzz/corpus

$(BUILD)/fuzz-seeds: $(BUILD)/obj/tests/fuzz/fuzz_seeds.o $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a
	$(CC) $(SAN) -o $@ $< $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a $(LDLIBS)

-include $(FUZZ_OBJ:.o=.d) $(FUZZ_TARGETS:%=$(BUILD)/obj/tests/fuzz/fuzz_%.d) $(BUILD)/obj/tests/fuzz/fuzz_seeds.d

clean:
	rm -rf build build-asan build-fuzz

-include $(CORE_OBJ:.o=.d) $(API_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(DAEMON_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
