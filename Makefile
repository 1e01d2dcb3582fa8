# devnet — build, test and run. See README.md for the two commands that matter:
#   make run    install missing packages, build, bring the default model, start the daemon
#   make test   install missing packages, build, run every test
SHELL := /bin/bash
CC ?= cc
BUILD ?= build
DEVNET_SHARED ?= $(abspath ../shared)
export DEVNET_SHARED

PKGS := openblas libcjson libturbojpeg libpng
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT ?= -O3
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -fno-strict-aliasing
CFLAGS ?= $(OPT)
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS) $(SAN) -Icore -Iapi $(PKG_CFLAGS) -MMD -MP
LDLIBS = $(PKG_LIBS) -lpthread -lm

CORE_SRC := $(wildcard core/*.c)
API_SRC := $(wildcard api/*.c)
CLI_SRC := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
API_OBJ := $(API_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

BACKBONE_TFLITE := tf2_mobilenet_v2_1.0_224_ptq.tflite
BACKBONE := $(BUILD)/backbone.safetensors

.PHONY: all deps test test-run asan run clean backbone bench
all: $(BUILD)/devnet $(BUILD)/libdevnet.a $(BUILD)/libdevnet_api.a

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

$(BUILD)/devnet: $(CLI_OBJ) $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a
	$(CC) $(SAN) -o $@ $(CLI_OBJ) $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a $(LDLIBS)

# All criterion test files link into one runner so that one Synthesis line closes the run.
$(BUILD)/test_all: $(TEST_OBJ) $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a
	$(CC) $(SAN) -o $@ $(TEST_OBJ) $(BUILD)/libdevnet_api.a $(BUILD)/libdevnet.a $(LDLIBS) -lcriterion

# The default backbone: converted from ../shared (or DEVNET_SHARED) when present,
# otherwise downloaded from its public origin and checked (tools/fetch_backbone.sh).
backbone: $(BACKBONE)
$(BACKBONE): $(BUILD)/devnet tools/fetch_backbone.sh
	@tools/fetch_backbone.sh $(BUILD) && $(BUILD)/devnet import-backbone $(BUILD)/$(BACKBONE_TFLITE) -o $@

test: deps
	@$(MAKE) --no-print-directory all $(BUILD)/test_all
	@$(MAKE) --no-print-directory backbone || echo "warning: no backbone; tests that need it will skip"
	@$(MAKE) --no-print-directory test-run

test-run:
	DEVNET_BACKBONE=$(abspath $(BACKBONE)) $(BUILD)/test_all --jobs 2 --verbose

# AddressSanitizer + UBSan build in its own directory; a leak report fails the run
# (criterion forks each test and does not fail on LeakSanitizer output itself).
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1" SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all build-asan/test_all build-asan/backbone.safetensors
	set -o pipefail; ASAN_OPTIONS=detect_leaks=1 DEVNET_BACKBONE=$(abspath build-asan/backbone.safetensors) \
	  build-asan/test_all --jobs 2 2>&1 | tee build-asan/asan.log; \
	  if grep -q -E "LeakSanitizer|AddressSanitizer|runtime error" build-asan/asan.log; then echo "asan: sanitizer reports above"; exit 1; fi

run: deps all backbone
	@echo "devnet: built $(BUILD)/devnet and $(BACKBONE); the devnetd daemon does not exist yet (see README)"

clean:
	rm -rf build build-asan

-include $(CORE_OBJ:.o=.d) $(API_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
