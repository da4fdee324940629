# Thin wrapper over meson. `make` builds, `make check` installs what the
# tests need, builds and runs every test, `make demo` runs the demo.
BUILD ?= build
MESON_OPTS ?=

.PHONY: all deps check demo bench clean install

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@command -v meson >/dev/null || scripts/install-deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

deps:
	scripts/install-deps.sh test

check: deps all
	tests/run-tests.sh $(BUILD)

demo:
	scripts/install-deps.sh demo
	$(MAKE) all
	scripts/demo.sh $(BUILD)

bench: all
	bench/run.sh $(BUILD)

install: all
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD)
