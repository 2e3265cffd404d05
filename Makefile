# spinq - build, test and benchmark.
#
#   make deps    install the Debian and npm packages the project needs (idempotent)
#   make         release build: build/rel/{spinq,spinq-worker,spinqd}
#   make test    sanitizer build (ASan+UBSan) and every test
#   make test-matrix  the unit tests once per OpenBLAS core type this CPU runs
#   make check-layers  includes point down the layers of common/ (scripts/check_layers.sh)
#   make bench   benchmarks, JSON figures on stdout
#   make bench-big  the LLaMA-3-8B shape quantized, evaluated, served and learned on (bench/big.sh; hours)
#   make run     start the service on its embedded defaults
#   make install / uninstall   PREFIX (default /usr/local) and DESTDIR (deploy/install.mk)
#
# Sources are found by folder: common/*/ -> libspinq.a, proto/ -> libproto.a,
# server/ -> spinqd (main in server/main.c), worker/ -> spinq (worker/main_spinq.c)
# and spinq-worker (worker/main_worker.c); tests/unit/test_*.c -> one Criterion
# binary each.

CC      ?= gcc
PKGS    := jansson libmicrohttpd sqlite3 libuv libpcre2-8 openblas nettle
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -llapack
# MPI (OpenMPI from Debian) when its headers are installed; without them the
# programs still build and run as one process (common/base/par.h)
MPI_PKG    := $(shell pkg-config --exists ompi-c 2>/dev/null && echo ompi-c)
PKG_CFLAGS += $(if $(MPI_PKG),$(shell pkg-config --cflags ompi-c),-DSPQ_NO_MPI)
PKG_LIBS   += $(if $(MPI_PKG),$(shell pkg-config --libs ompi-c))
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
BASE    := -std=c11 -D_GNU_SOURCE $(WARN) -I. $(PKG_CFLAGS) -MMD -MP
LIBS    := $(PKG_LIBS) -lm -lpthread

REL_FLAGS  := -O3 -g -fno-math-errno -fno-trapping-math
ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fno-math-errno -fno-trapping-math -fsanitize=address,undefined -fno-sanitize-recover=undefined

COMMON_SRC := $(wildcard common/*/*.c)
PROTO_SRC  := $(wildcard proto/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
WORKER_SRC := $(filter-out worker/main_%.c,$(wildcard worker/*.c))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
BENCH_SRC  := $(wildcard bench/*.c)

SHARED  ?= $(abspath ../shared)
export SPINQ_SHARED ?= $(SHARED)

# keep objects of test and bench binaries (make would delete them as intermediates)
.SECONDARY:

.PHONY: all deps test test-matrix unit integration bench bench-big run clean asan rel check-layers install uninstall
all: rel

# ---- one set of rules per flavour (rel, asan) ----
define flavour
$(1)_DIR := build/$(1)
$(1)_CFLAGS := $$(BASE) $$($(2))
$(1)_LDFLAGS := $$($(2))

build/$(1)/%.o: %.c Makefile
	@mkdir -p $$(dir $$@)
	@echo "  CC $(1) $$<"
	@$$(CC) $$($(1)_CFLAGS) -c $$< -o $$@

build/$(1)/libspinq.a: $$(COMMON_SRC:%.c=build/$(1)/%.o)
	@rm -f $$@; ar rcs $$@ $$^
build/$(1)/libproto.a: $$(PROTO_SRC:%.c=build/$(1)/%.o) build/$(1)/empty.o
	@rm -f $$@; ar rcs $$@ $$^
build/$(1)/libserver.a: $$(SERVER_SRC:%.c=build/$(1)/%.o) build/$(1)/empty.o
	@rm -f $$@; ar rcs $$@ $$^
build/$(1)/libworker.a: $$(WORKER_SRC:%.c=build/$(1)/%.o) build/$(1)/empty.o
	@rm -f $$@; ar rcs $$@ $$^
build/$(1)/empty.o:
	@mkdir -p $$(dir $$@); echo 'typedef int spq_empty_unit;' | $$(CC) -x c -c - -o $$@

$(1)_LIBS := build/$(1)/libworker.a build/$(1)/libserver.a build/$(1)/libproto.a build/$(1)/libspinq.a

build/$(1)/spinq: build/$(1)/worker/main_spinq.o $$($(1)_LIBS)
	@echo "  LD $$@"
	@$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)
build/$(1)/spinq-worker: build/$(1)/worker/main_worker.o $$($(1)_LIBS)
	@echo "  LD $$@"
	@$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)
build/$(1)/spinqd: build/$(1)/server/main.o $$($(1)_LIBS)
	@echo "  LD $$@"
	@$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)
build/$(1)/tests/%: build/$(1)/tests/unit/%.o $$($(1)_LIBS)
	@echo "  LD $$@"
	@$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS) -lcriterion
build/$(1)/bench/%: build/$(1)/bench/%.o $$($(1)_LIBS)
	@echo "  LD $$@"
	@$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(eval $(call flavour,rel,REL_FLAGS))
$(eval $(call flavour,asan,ASAN_FLAGS))

PROGRAMS := $(if $(wildcard worker/main_spinq.c),spinq) $(if $(wildcard worker/main_worker.c),spinq-worker) \
            $(if $(wildcard server/main.c),spinqd)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=%)
BENCH_BINS := $(BENCH_SRC:bench/%.c=%)

rel: check-layers $(PROGRAMS:%=build/rel/%)
asan: check-layers $(PROGRAMS:%=build/asan/%) $(UNIT_BINS:%=build/asan/tests/%)

# an #include that points up a layer of common/, or a circle, fails the build
check-layers:
	@scripts/check_layers.sh

deps:
	@scripts/deps.sh

# Every test: unit tests (Criterion, sanitizers), then the black-box tests
# against real processes. scripts/test.sh picks the OpenBLAS core type once.
test: deps check-layers
	@$(MAKE) --no-print-directory rel asan
	@scripts/test.sh

unit: asan
	@scripts/test.sh unit

integration: rel asan
	@scripts/test.sh integration

# not part of `make test`: the unit suite under every OpenBLAS kernel set
# this CPU can execute, and "unset", with a table of results
test-matrix: rel asan
	@scripts/test_matrix.sh

bench: deps
	@$(MAKE) --no-print-directory rel $(BENCH_BINS:%=build/rel/bench/%)
	@scripts/bench.sh

# real sizes (bench/big.sh): the LLaMA-3-8B shape, hours on two cores
bench-big: deps
	@$(MAKE) --no-print-directory rel
	@bench/big.sh

run: deps
	@$(MAKE) --no-print-directory rel
	@scripts/run.sh

clean:
	rm -rf build

include deploy/install.mk

-include $(shell find build -name '*.d' 2>/dev/null)
