# veer: bpf objects -> skeletons -> userspace library -> binaries and tests.
# Out-of-tree build in $(BUILD); `make V=1` shows commands.

BUILD ?= build
BIN := $(BUILD)/bin
MACHINE := $(shell uname -m)
ARCH_INC := /usr/include/$(MACHINE)-linux-gnu
# libbpf's __TARGET_ARCH_ names (bpf_tracing.h), from the one machine name.
BPF_ARCH := $(strip $(subst x86_64,x86,$(subst aarch64,arm64,$(subst ppc64le,powerpc,\
	$(subst loongarch64,loongarch,$(subst riscv64,riscv,$(MACHINE)))))))

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

CLANG ?= clang
BPFTOOL ?= bpftool
CXX ?= g++

PKGS := libbpf yaml-0.1 spdlog fmt re2 libnl-3.0 libnl-route-3.0 liburing libmicrohttpd libcurl \
	libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
# mimalloc replaces glibc's malloc in every binary: loading a large config is mostly small
# allocations, and glibc spent a quarter of the load in malloc/free (docs/design.md).
# no-as-needed: nothing calls it by name; it is linked for the symbols it interposes.
ALLOC_LIBS := -Wl,--push-state,--no-as-needed -lmimalloc -Wl,--pop-state
PKG_LIBS = $(ALLOC_LIBS) $(shell pkg-config --libs $(PKGS)) -lelf -lz

# llhttp, veer-proxy's HTTP/1 parser: Debian ships it only as C sources (node-llhttp),
# compiled here from where the package installs them.
LLHTTP_DIR := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
LLHTTP_SRCS := $(addprefix $(LLHTTP_DIR)/,api.c http.c llhttp.c)

CFLAGS ?= -O2 -g
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -Wno-missing-field-initializers -MMD -MP \
	-Iuserspace -Iinclude -Itests -I$(BUILD)/bpf -isystem $(LLHTTP_INC) $(PKG_CFLAGS)
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(BPF_ARCH) -Wall \
	-Iinclude -Ibpf -I$(ARCH_INC)

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_SRCS))
# Test-only programs (tests/bpf): bpf/lib logic in a type BPF_PROG_TEST_RUN can run.
TEST_BPF_SRCS := $(wildcard tests/bpf/*.bpf.c)
SKELS += $(patsubst tests/bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(TEST_BPF_SRCS))

LIB_SRCS := $(wildcard userspace/common/*.cpp userspace/config/*.cpp \
	userspace/compiler/*.cpp userspace/datapath/*.cpp userspace/proxy/*.cpp \
	userspace/k8s/*.cpp userspace/reconcile/*.cpp)
LIB_OBJS := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(LIB_SRCS)) \
	$(patsubst $(LLHTTP_DIR)/%.c,$(BUILD)/obj/llhttp/%.o,$(LLHTTP_SRCS))
LIB := $(BUILD)/libveer.a

PROGS := veer-agent veerctl veer-proxy

# One version for every binary (`--version`): `git describe` of the tree built, or
# VEER_VERSION=... where there is no .git (an image build from a copied tree).
ifeq ($(origin VEER_VERSION),undefined)
VEER_VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
endif

UNIT_SRCS := $(wildcard tests/unit/*.cpp)
INTEG_SRCS := $(wildcard tests/integration/*.cpp)
K8S_TEST_SRCS := $(wildcard tests/k8s/*.cpp)
WORLD_OBJS := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(wildcard tests/world/*.cpp))
TOOL_SRCS := $(wildcard tests/tools/*.cpp)
BENCH_SRCS := $(wildcard tests/bench/*.cpp)

ALL_BINS := $(addprefix $(BIN)/,$(PROGS)) $(BIN)/veer-unit-tests \
	$(BIN)/veer-integration-tests $(BIN)/veer-k8s-tests $(patsubst tests/tools/%.cpp,$(BIN)/%,$(TOOL_SRCS))

.PHONY: all deps test unit-test integration-test bench soak demo clean
.DELETE_ON_ERROR:
.SECONDARY:

all: $(ALL_BINS)

deps:
	$(Q)bash scripts/install-deps.sh

# --- BPF -------------------------------------------------------------------
$(BUILD)/bpf/%.tmp.o: bpf/%.bpf.c $(wildcard bpf/lib/*.h include/veer/*.h) | $(BUILD)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bpf/%.tmp.o: tests/bpf/%.bpf.c $(wildcard bpf/lib/*.h include/veer/*.h) | $(BUILD)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bpf/%.bpf.o: $(BUILD)/bpf/%.tmp.o
	$(call msg,GEN-OBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $<

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

# --- userspace -------------------------------------------------------------
# The version is compiled into one object, rebuilt only when the string changes.
$(BUILD)/version.txt: FORCE
	@mkdir -p $(@D)
	$(Q)echo '$(VEER_VERSION)' | cmp -s - $@ || echo '$(VEER_VERSION)' > $@
$(BUILD)/obj/userspace/common/version.o: $(BUILD)/version.txt
$(BUILD)/obj/userspace/common/version.o: CXXFLAGS += -DVEER_VERSION='"$(VEER_VERSION)"'
.PHONY: FORCE

# Every library this build needs, checked once with pkg-config's own message
# (say `make deps`), before any compile can fail on a missing header instead.
$(BUILD)/pkg-config.ok: Makefile | $(BUILD)/bpf
	$(Q)pkg-config --exists --print-errors $(PKGS) || \
		{ echo "missing libraries above: run 'make deps'" >&2; exit 1; }
	$(Q)touch $@

# The skeletons are order-only: the first build makes them before any object,
# and after that each object depends on the skeletons it includes (its .d file).
$(BUILD)/obj/%.o: %.cpp | $(SKELS) $(BUILD)/pkg-config.ok $(BUILD)/layering.ok
	@mkdir -p $(@D)
	$(call msg,CXX,$@)
	$(Q)$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -I$(LLHTTP_INC) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/veer-agent: $(patsubst %.cpp,$(BUILD)/obj/%.o,$(wildcard userspace/agent/*.cpp)) $(LIB) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CXX) $^ $(PKG_LIBS) -o $@

$(BIN)/veerctl: $(BUILD)/obj/userspace/veerctl/main.o $(LIB) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CXX) $^ $(PKG_LIBS) -o $@

$(BIN)/veer-proxy: $(BUILD)/obj/userspace/veer-proxy/main.o $(LIB) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CXX) $^ $(PKG_LIBS) -pthread -o $@

$(BIN)/veer-unit-tests: $(patsubst %.cpp,$(BUILD)/obj/%.o,$(UNIT_SRCS)) $(LIB) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CXX) $^ $(PKG_LIBS) -lgtest -lgtest_main -pthread -o $@

$(BIN)/veer-integration-tests: $(patsubst %.cpp,$(BUILD)/obj/%.o,$(INTEG_SRCS)) $(WORLD_OBJS) \
		$(BUILD)/obj/tests/k8s/test_apiserver.o $(LIB) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CXX) $^ $(PKG_LIBS) -lgtest -lgtest_main -pthread -o $@

# Kubernetes client against tests/tools/veer-test-apiserver.py: real sockets, no root.
$(BIN)/veer-k8s-tests: $(patsubst %.cpp,$(BUILD)/obj/%.o,$(K8S_TEST_SRCS)) $(LIB) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CXX) $^ $(PKG_LIBS) -lgtest -lgtest_main -pthread -o $@

# Test tools share the namespace test world with the integration tests.
$(BIN)/%: $(BUILD)/obj/tests/tools/%.o $(WORLD_OBJS) $(LIB) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CXX) $^ $(PKG_LIBS) -pthread -o $@

# Layers include only downwards (scripts/check-layering.sh says which).
$(BUILD)/layering.ok: scripts/check-layering.sh $(shell find userspace -name '*.h' -o -name '*.cpp') | $(BUILD)/bpf
	$(call msg,LAYERS,userspace)
	$(Q)bash scripts/check-layering.sh
	$(Q)touch $@

$(BUILD)/bpf $(BIN):
	$(Q)mkdir -p $@

# --- entry points ------------------------------------------------------------
unit-test: $(BIN)/veer-unit-tests
	$(Q)$(BIN)/veer-unit-tests

integration-test: all
	$(Q)$(BIN)/veer-integration-tests

# Fuzzing explores in `make fuzz`; the test run only replays the corpora, so a
# crash found by chance never fails an unrelated change.
test: deps
	$(Q)$(MAKE) --no-print-directory -j$(shell nproc) all
	$(Q)bash scripts/run-tests.sh "bash scripts/check-format.sh" \
		$(BIN)/veer-unit-tests $(BIN)/veer-k8s-tests \
		$(BIN)/veer-integration-tests "bash tests/deploy/run.sh $(BIN)" \
		"$(MAKE) --no-print-directory fuzz-corpus" \
		"KERNEL=$(KERNEL) bash vm-tests/run.sh"

bench: deps
	$(Q)$(MAKE) --no-print-directory -j$(shell nproc) all
	$(Q)set -e; for b in tests/bench/*.sh; do bash $$b; done

# The load-and-fault soak (tests/soak/soak.sh): SOAK_TIME seconds of traffic while weights
# flip, veer-proxy and veer-agent are killed and hostile config files come and go. Not part
# of `make test`: it runs for minutes.
SOAK_TIME ?= 600
soak: deps
	$(Q)$(MAKE) --no-print-directory -j$(shell nproc) all
	$(Q)SOAK_TIME=$(SOAK_TIME) bash tests/soak/soak.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory -j$(shell nproc) all
	$(Q)bash scripts/demo.sh

# The integration suite inside QEMU on another kernel (vm-tests/README.md).
KERNEL ?= 6.1
.PHONY: vm-test
vm-test: all
	$(Q)KERNEL=$(KERNEL) bash vm-tests/run.sh

clean:
	$(Q)rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# --- fuzz --------------------------------------------------------------------
# libFuzzer targets (fuzz/README.md): every fuzz/NAME_fuzz.cpp, built with clang++,
# ASan and UBSan against the library sources it may use, with a corpus seeded from
# FUZZ_SEEDS_NAME. `make fuzz-corpus` only replays the corpora.
FUZZ_CXX ?= clang++
FUZZ_CC ?= clang
FUZZ_TIME ?= 60
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_TARGETS := $(patsubst fuzz/%_fuzz.cpp,%,$(wildcard fuzz/*_fuzz.cpp))
# The library sources a fuzz target may compile: no network server (libmicrohttpd).
FUZZ_COMMON_SRCS := $(filter-out userspace/common/status_server.cpp,$(wildcard userspace/common/*.cpp))
FUZZ_LIB_SRCS_loader := $(wildcard userspace/config/*.cpp) $(FUZZ_COMMON_SRCS)
FUZZ_LIB_SRCS_proxy := userspace/proxy/http.cpp
# C objects a target links besides its C++ sources: llhttp under the proxy's parser.
FUZZ_C_OBJS_proxy := $(patsubst $(LLHTTP_DIR)/%.c,$(FUZZ_DIR)/llhttp/%.o,$(LLHTTP_SRCS))
FUZZ_SEEDS_loader := $(shell find configs fuzz/regressions -name '*.yaml')
FUZZ_SEEDS_proxy := $(wildcard fuzz/proxy-seeds/*)
FUZZ_LIB_SRCS_route_table := $(wildcard userspace/config/*.cpp) $(FUZZ_COMMON_SRCS) \
	$(wildcard userspace/proxy/router*.cpp) userspace/proxy/route_table_json.cpp \
	userspace/compiler/compiler.cpp userspace/compiler/maglev.cpp
# The route table the agent would write for every seed step (veer-routes: inventory, the
# seed's own files, the step), generated rather than checked in so it follows the schema.
FUZZ_SEEDS_route_table := $(patsubst configs/%.yaml,$(FUZZ_DIR)/route_table-seeds/%.json,\
	$(wildcard configs/*/steps/*.yaml))
FUZZ_PKGS := yaml-0.1 re2
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_FLAGS := -std=c++20 -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) \
	-Iuserspace -Iinclude -isystem $(LLHTTP_INC) $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null)

.PHONY: fuzz fuzz-corpus
.SECONDEXPANSION:
$(FUZZ_DIR)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(FUZZ_CC) -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) -I$(LLHTTP_INC) -c $< -o $@

$(FUZZ_DIR)/%_fuzz: fuzz/%_fuzz.cpp $$(FUZZ_LIB_SRCS_$$*) $$(FUZZ_C_OBJS_$$*) \
		$(wildcard userspace/*/*.h)
	@mkdir -p $(@D)
	$(call msg,FUZZ-LD,$@)
	$(Q)$(FUZZ_CXX) $(FUZZ_FLAGS) $< $(FUZZ_LIB_SRCS_$*) $(FUZZ_C_OBJS_$*) \
		$(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null) -o $@

$(FUZZ_DIR)/%/corpus/.seeded: $$(FUZZ_SEEDS_$$*)
	@mkdir -p $(@D)
	$(Q)for f in $^; do cp $$f $(@D)/$$(echo $$f | tr / _); done; touch $@

route_seed_dir = configs/$(firstword $(subst /, ,$(1)))
$(FUZZ_DIR)/route_table-seeds/%.json: configs/%.yaml $(BIN)/veer-routes
	@mkdir -p $(@D)
	$(call msg,ROUTES,$@)
	$(Q)$(BIN)/veer-routes $(firstword $(wildcard $(call route_seed_dir,$*)/inventory.yaml) \
		configs/bookinfo/inventory.yaml) \
		$(filter-out %/inventory.yaml,$(wildcard $(call route_seed_dir,$*)/*.yaml)) $< \
		> $@ 2>/dev/null || : > $@ # a step the loader rejects has no table: an empty seed

FUZZ_DEPS := $(foreach t,$(FUZZ_TARGETS),$(FUZZ_DIR)/$(t)_fuzz $(FUZZ_DIR)/$(t)/corpus/.seeded)

fuzz: $(FUZZ_DEPS)
	$(Q)set -e; cd $(FUZZ_DIR); for t in $(FUZZ_TARGETS); do \
		./$${t}_fuzz -max_total_time=$(FUZZ_TIME) -max_len=65536 -timeout=10 $$t/corpus; done

fuzz-corpus: $(FUZZ_DEPS)
	$(Q)set -e; cd $(FUZZ_DIR); for t in $(FUZZ_TARGETS); do \
		./$${t}_fuzz -runs=0 -timeout=10 $$t/corpus; done
