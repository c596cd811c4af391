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

# Benchmark (not a test): tidepool vs PgBouncer vs direct PostgreSQL, one Markdown table, also in
# bench-results/latest.md. BENCH_QUICK=1 is the < 3 minute CI smoke mode. See scripts/bench/README.md.
bench: all
	TIDEPOOL_BIN=$(CURDIR)/$(BUILD)/tidepool PYTHON=$(PYTHON) scripts/bench.sh

.PHONY: bench

