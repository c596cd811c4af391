# tidepool: a PostgreSQL connection pooler. `make`, `make test`, `make static`, `make format`.
CC ?= cc
PKGS := libevent openssl
CSTD := -std=c11 -D_GNU_SOURCE
WARN := -Wall -Wextra -Werror -Wno-unused-parameter
OPT ?= -O2 -g
CFLAGS_PKG := $(shell pkg-config --cflags $(PKGS))
LIBS_PKG := $(shell pkg-config --libs $(PKGS)) -lpthread
BUILD ?= build
PYTHON ?= /usr/bin/python3
# The integration suite runs on both cores; each worker starts its own PostgreSQL.
PYTEST_ARGS ?= -n 2

ifdef SANITIZE
OPT := -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
BUILD := build-san
endif

CFLAGS_ALL := $(CSTD) $(WARN) $(OPT) $(SANFLAGS) $(CFLAGS_PKG) -Isrc -MMD -MP $(CFLAGS)
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)

DAEMON_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
DAEMON_OBJ := $(DAEMON_SRC:src/%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/main.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)

all: $(BUILD)/tidepool tidepool $(BUILD)/tidepool-entrypoint

tidepool: $(BUILD)/tidepool
	@ln -sf $(BUILD)/tidepool tidepool

$(BUILD)/tidepool: $(MAIN_OBJ) $(DAEMON_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_PKG)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/unit/%: tests/unit/%.c $(DAEMON_OBJ) | $(BUILD)/unit
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(DAEMON_OBJ) $(LDFLAGS_ALL) $(LIBS_PKG)

$(BUILD) $(BUILD)/unit:
	mkdir -p $@

# A fully static binary (glibc here, musl in the Alpine image).
static:
	$(MAKE) BUILD=build-static LDFLAGS="-static" \
		LIBS_PKG="$$(pkg-config --static --libs $(PKGS)) -lpthread" \
		EP_LIBS="$$(pkg-config --static --libs libcrypto)" build-static/tidepool build-static/tidepool-entrypoint

unit: $(UNIT_BIN)
	@scripts/unit.sh $(UNIT_BIN)

integration: all
	TIDEPOOL_BIN=$(CURDIR)/$(BUILD)/tidepool $(PYTHON) -m pytest -q tests/integration $(PYTEST_ARGS)

test: unit integration

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -rf build build-san build-static tidepool

.PHONY: all static unit integration test format clean

-include $(wildcard $(BUILD)/*.d $(BUILD)/unit/*.d)

# The container entrypoint (src/entrypoint/): libc, OpenSSL's hashing and config.c only, none
# of the daemon's networking code. docker-test builds the image and tests it with a real engine.
EP_LIB_OBJ := $(patsubst src/entrypoint/%.c,$(BUILD)/entrypoint/%.o,$(filter-out src/entrypoint/main.c,$(wildcard src/entrypoint/*.c)))
EP_LIBS ?= $(shell pkg-config --libs libcrypto)

entrypoint: $(BUILD)/tidepool-entrypoint

$(BUILD)/tidepool-entrypoint: $(BUILD)/entrypoint/main.o $(EP_LIB_OBJ) $(BUILD)/config.o
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(EP_LIBS)

$(BUILD)/entrypoint/%.o: src/entrypoint/%.c | $(BUILD)/entrypoint
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/entrypoint:
	mkdir -p $@

# test_entrypoint links the entrypoint core and config.c instead of the daemon's objects.
$(BUILD)/unit/test_entrypoint: tests/unit/test_entrypoint.c $(EP_LIB_OBJ) $(BUILD)/config.o | $(BUILD)/unit
	$(CC) $(CFLAGS_ALL) -Isrc/entrypoint -Itests/unit -o $@ $< $(EP_LIB_OBJ) $(BUILD)/config.o $(LDFLAGS_ALL) $(EP_LIBS)

docker-test:
	scripts/docker-test.sh

# Regenerate the variable table of docker/README.md from the entrypoint's --help-markdown.
docker-doc: $(BUILD)/tidepool-entrypoint
	docker/update-env-table.sh $(BUILD)/tidepool-entrypoint

.PHONY: entrypoint docker-test docker-doc

-include $(wildcard $(BUILD)/entrypoint/*.d)

# libFuzzer harnesses (tests/fuzz/): clang-14 with AddressSanitizer and UBSan; the daemon's
# and the entrypoint's sources are rebuilt into build-fuzz/. `make fuzz` runs each harness
# for FUZZ_SECONDS on its seed corpus after replaying the saved crash inputs
# (tests/fuzz/regressions/); `make fuzz FUZZ_TARGETS="fuzz_proto fuzz_config"` runs some.
FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_CFLAGS := $(CSTD) -Wall -Wextra -Wno-unused-parameter -O1 -g -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all $(CFLAGS_PKG) -Isrc -Isrc/entrypoint -MMD -MP
FUZZ_LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c)) \
	$(filter-out src/entrypoint/main.c,$(wildcard src/entrypoint/*.c))
FUZZ_LIB_OBJ := $(patsubst src/%.c,$(FUZZ_BUILD)/lib/%.o,$(FUZZ_LIB_SRC))
FUZZ_SUPPORT_OBJ := $(FUZZ_BUILD)/support/netsim.o $(FUZZ_BUILD)/support/sandbox.o
FUZZ_ALL := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_BIN := $(FUZZ_ALL:%=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/lib/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/support/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/libtidepool-fuzz.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BIN): $(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_SUPPORT_OBJ) $(FUZZ_BUILD)/libtidepool-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_SUPPORT_OBJ) \
		$(FUZZ_BUILD)/libtidepool-fuzz.a $(LIBS_PKG) -ldl

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_TARGETS)

# Replay the seed corpora and saved crash inputs once (seconds; no fuzzing).
fuzz-regress: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh --regress $(FUZZ_TARGETS)

# Which lines of src/ the corpora reach (llvm-cov report; clang's source-based coverage).
fuzz-coverage:
	tests/fuzz/coverage.sh $(FUZZ_TARGETS)

# One hour (SOAK_SECONDS) of mixed load with PostgreSQL restarts and RELOADs; not in CI.
SOAK_SECONDS ?= 3600
soak: all
	TIDEPOOL_BIN=$(CURDIR)/$(BUILD)/tidepool SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) tests/integration/soak.py

.PHONY: fuzz fuzz-build fuzz-regress fuzz-coverage soak

-include $(wildcard $(FUZZ_BUILD)/lib/*.d $(FUZZ_BUILD)/lib/entrypoint/*.d $(FUZZ_BUILD)/support/*.d $(FUZZ_BUILD)/*.d)

# Benchmark (not a test): tidepool vs PgBouncer vs direct PostgreSQL, one Markdown table, also in
# bench-results/latest.md. BENCH_QUICK=1 is the < 3 minute CI smoke mode. See scripts/bench/README.md.
bench: all
	TIDEPOOL_BIN=$(CURDIR)/$(BUILD)/tidepool PYTHON=$(PYTHON) scripts/bench.sh

.PHONY: bench

# The user's scenario (tests/scenario/): Django + gunicorn + Locust at 50 and 100 users, direct
# to PostgreSQL vs through tidepool (transaction pooling). `make scenario` runs the four runs
# (25-45 min) and writes tests/scenario/results/REPORT.md and chart.png; `make scenario-smoke` is
# the CI version (one 30 s pooled run plus Django check/migrate through the pooler, ~1-2 min).
# Needs: python3-django gunicorn python3-locust python3-psycopg2 python3-matplotlib postgresql.
scenario: all
	TIDEPOOL_BIN=$(CURDIR)/$(BUILD)/tidepool /usr/bin/python3 tests/scenario/scenario.py full $(SCENARIO_ARGS)

scenario-smoke: all
	TIDEPOOL_BIN=$(CURDIR)/$(BUILD)/tidepool /usr/bin/python3 tests/scenario/scenario.py smoke $(SCENARIO_ARGS)

.PHONY: scenario scenario-smoke
