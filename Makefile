# Thin wrapper over meson. `make` builds, `make check` installs what the
# tests need, builds and runs every test on this machine's kernel and in Debian 12's 6.1 and
# 6.12 kernels under qemu (scripts/check.sh), `make demo` runs the demo,
# `make fuzz FUZZ_TIME=SECONDS` runs each fuzzer that long (fuzz/README.md).
# `make hostcheck` is `make check` without the guests; `make vmcheck` runs only the guests,
# `make vmshell KERNEL=6.1` boots one to a shell, `make kmod` builds fuse.ko from Debian's 6.1
# source with kernel/patches/ and runs a few tests in a 6.1 guest that loads it
# (docs/testing.md). `make vmbench` runs bench/reinit.sh (reinit mode against the direct mount
# and proxy mode, recovery with 1k-100k inodes cached) in a 6.1 guest on that fuse.ko, or on
# VMBENCH_KMOD if given; BENCH_* variables reach the guest (bench/README.md).
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 60
MESON_OPTS ?=
VM_KERNELS ?= 6.1 6.12
VM_JOBS ?= 1
KERNEL ?= 6.1
KMOD_BUILD ?= build-kmod
KMOD_TESTS ?= 10-testfs-kill 11-baseline-enotconn 60-lxcfs-kill
VMBENCH_KMOD ?=

.PHONY: all deps check hostcheck demo bench clean install fuzz fuzz-build vmcheck vmshell vmdeps kmod vmbench

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@scripts/install-deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

deps:
	scripts/install-deps.sh test

# The whole suite runs on the normal build, then on an ASan+UBSan build where any sanitizer
# report fails the test that triggered it (the normal build's run includes a short run of the
# fuzzers, tests/integration/70-fuzz-short.sh, in build-fuzz), then in each kernel of
# VM_KERNELS (the 6.1 guest on a fuse.ko built here), VM_JOBS guests side by side.
check: vmdeps all $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	VM_JOBS=$(VM_JOBS) scripts/check.sh $(BUILD) $(ASAN_BUILD) $(KMOD_BUILD) $(VM_KERNELS)

hostcheck: deps all $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	scripts/check.sh --host-only $(BUILD) $(ASAN_BUILD) $(KMOD_BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false $(MESON_OPTS)

# The libFuzzer harnesses, built by clang with ASan and UBSan in a build directory of their own.
fuzz-build: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

$(FUZZ_BUILD)/build.ninja:
	@command -v clang >/dev/null || scripts/install-deps.sh fuzz
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_lundef=false $(MESON_OPTS)

fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME)

demo:
	scripts/install-deps.sh demo
	$(MAKE) all
	scripts/demo.sh $(BUILD)

bench:
	scripts/install-deps.sh bench
	$(MAKE) all
	bench/run.sh $(BUILD)
	bench/remount.sh $(BUILD)
	bench/nodes.sh $(BUILD)
	NODES_OPEN=0 bench/nodes.sh $(BUILD)

# Only the guests of make check: the 6.1 guest loads a fuse.ko built from kernel/patches/.
vmcheck: vmdeps all
	VM_JOBS=$(VM_JOBS) scripts/check.sh --guests-only $(BUILD) $(ASAN_BUILD) $(KMOD_BUILD) $(VM_KERNELS)

vmshell: vmdeps all
	VM_BUILD=$(BUILD) vm/run.sh --shell $(KERNEL)

vmdeps:
	scripts/install-deps.sh vm

# fuse.ko built out of tree from Debian's linux-source-6.1 with kernel/patches/ applied, then
# loaded instead of the image's own in a 6.1 guest that runs KMOD_TESTS.
kmod: vmdeps all
	kernel/build-kmod.sh 6.1 $(KMOD_BUILD)
	VM_BUILD=$(BUILD) VM_KMOD=$(KMOD_BUILD)/fuse.ko VM_TESTS="$(KMOD_TESTS)" VM_LOGS=test-logs/kmod vm/run.sh 6.1

# Reinit mode's benchmark in a 6.1 guest, on VMBENCH_KMOD or a fuse.ko built here as for kmod.
# Not part of make check; logs and results in test-logs/bench/vm-6.1/test-logs/.
vmbench: vmdeps all
	$(if $(VMBENCH_KMOD),,kernel/build-kmod.sh 6.1 $(KMOD_BUILD))
	VM_BUILD=$(BUILD) VM_KMOD=$(or $(VMBENCH_KMOD),$(KMOD_BUILD)/fuse.ko) VM_LOGS=test-logs/bench vm/run.sh --bench 6.1

install: all
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(KMOD_BUILD)
