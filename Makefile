# Thin wrapper over meson. `make` builds, `make check` installs what the
# tests need, builds and runs every test, `make demo` runs the demo.
BUILD ?= build
ASAN_BUILD ?= build-asan
MESON_OPTS ?=

.PHONY: all deps check demo bench clean install

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@command -v meson >/dev/null || scripts/install-deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

deps:
	scripts/install-deps.sh test

# The whole suite runs twice: on the normal build, then on an ASan+UBSan build where any
# sanitizer report fails the test that triggered it.
check: deps all $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	tests/run-tests.sh $(BUILD) && tests/run-tests.sh $(ASAN_BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false $(MESON_OPTS)

demo:
	scripts/install-deps.sh demo
	$(MAKE) all
	scripts/demo.sh $(BUILD)

bench: all
	bench/run.sh $(BUILD)

install: all
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
