# dd2 build. `make` builds build/dd2 (CPU backend); `make CUDA=1` adds src/cuda/*.cu (nvcc).
# Targets: all, test, run, bench, deps, clean, help.   Flags come from pkg-config and mpicc --showme.

CUDA      ?= 0
CUDA_ARCH ?= sm_90
NVCC      ?= nvcc
CC        ?= gcc
BUILD     ?= build
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
PKGS      := hdf5-openmpi yaml-0.1 openblas lapacke libpng zlib

# ---- dependency discovery (printed once as a ✓/✗ summary when something is built) ----
have_pkg = $(shell pkg-config --exists $(1) 2>/dev/null && echo yes)
have_cmd = $(shell command -v $(1) >/dev/null 2>&1 && echo yes)
DEP_NAMES := mpicc $(PKGS) $(if $(filter 1,$(CUDA)),nvcc)
dep_ok = $(if $(filter mpicc,$(1)),$(call have_cmd,mpicc),$(if $(filter nvcc,$(1)),$(call have_cmd,$(NVCC)),$(call have_pkg,$(1))))
MISSING := $(strip $(foreach d,$(DEP_NAMES),$(if $(call dep_ok,$(d)),,$(d))))

NEEDS_DEPS := $(filter-out clean help deps,$(or $(MAKECMDGOALS),all))
ifneq ($(NEEDS_DEPS),)
ifneq ($(MAKE_RESTARTS),)
else
$(info dd2 build: $(foreach d,$(DEP_NAMES),$(if $(call dep_ok,$(d)),✓,✗) $(d)) $(if $(filter 1,$(CUDA)),[CUDA $(CUDA_ARCH)],[CPU]))
endif
ifneq ($(MISSING),)
$(error missing: $(MISSING) -- run `make deps` (tools/install-deps.sh) as root, then make again)
endif
endif

MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter -D_GNU_SOURCE -MMD -MP \
           -Isrc $(MPI_CFLAGS) $(PKG_CFLAGS) -DDD2_GIT_REV=\"$(GIT_REV)\"
LDLIBS  := $(PKG_LIBS) $(MPI_LIBS) -lm -lpthread

LIB_SRCS := $(wildcard src/core/*.c src/io/*.c src/model/*.c src/dist/*.c src/train/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)

ifeq ($(CUDA),1)
CUDA_HOME  ?= $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC))))
NVCCFLAGS  ?= -O2 -g
NVCCFLAGS  += -arch=$(CUDA_ARCH) -Isrc -std=c++17 -Xcompiler -Wall -MMD -MP
CU_SRCS    := $(wildcard src/cuda/*.cu)
CU_OBJS    := $(CU_SRCS:%.cu=$(BUILD)/%.o)
CFLAGS     += -DDD2_CUDA=1 -DDD2_CUDA_ARCH=\"$(CUDA_ARCH)\" -I$(CUDA_HOME)/include
# runtime API only (never -lcuda: the binary must start where no driver is installed)
LDLIBS     += -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib -lcudart -lcublas -lnccl -lstdc++
LIB_OBJS   += $(CU_OBJS)
STAMP      := $(BUILD)/.cuda-1
else
STAMP      := $(BUILD)/.cuda-0
endif

# quiet build lines ("CC src/x.c"); `make V=1` shows the full commands
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-5s %s\n' $(1) $(2)
endif

TEST_SRCS := $(wildcard tests/unit/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/tools/%)

.PHONY: all test run bench deps clean help
.SECONDARY:
all: $(BUILD)/dd2 $(TEST_BINS) $(TOOL_BINS)

# switching CUDA=0/1 rebuilds everything (the objects differ)
$(STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/.cuda-* && rm -rf $(BUILD)/src $(BUILD)/tests $(BUILD)/libdd2.a && touch $@

$(BUILD)/libdd2.a: $(LIB_OBJS)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(BUILD)/%.o: %.c $(STAMP)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu $(STAMP)
	@mkdir -p $(dir $@)
	$(call say,NVCC,$<)
	$(Q)$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/dd2: $(BUILD)/src/main.o $(BUILD)/libdd2.a
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libdd2.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o $(BUILD)/libdd2.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/unit/%.o: CFLAGS += -Itests
# the element-wise CPU ops: full loop vectorisation (still IEEE: no -ffast-math)
$(BUILD)/src/model/ops_cpu_f32.o: CFLAGS += -O3

test: all
	@bash tests/run.sh

# the Slurm tests: a one-node Slurm in a temporary directory (tests/slurm/run.sh; SKIP without Slurm)
.PHONY: slurm-test
slurm-test: $(BUILD)/dd2 $(TOOL_BINS)
	@bash tests/slurm/run.sh

run: $(BUILD)/dd2
	@bash tools/run.sh $(CONFIG)

bench: $(BUILD)/dd2
	@bash tools/bench.sh $(CONFIG)

deps:
	bash tools/install-deps.sh

clean:
	rm -rf $(BUILD)

help:
	@echo "make [CUDA=1 CUDA_ARCH=sm_90]  build build/dd2 (and the tests)"
	@echo "make test                      build and run all tests (ends with 'N passed, N failed')"
	@echo "make run [CONFIG=file] [NP=2]   the whole pipeline on Fashion-MNIST (configs/fmnist-quick.yaml)"
	@echo "make bench [CONFIG=file]       speed tables: dd2 ops/backbone, and the same backbone in PyTorch"
	@echo "make deps                      install the Debian packages (root)"
	@echo "make clean                     remove build/"

-include $(LIB_OBJS:.o=.d) $(BUILD)/src/main.d $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%.d) \
         $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/tools/%.d)
