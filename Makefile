# The README's commands. The real build is CMake; this file only drives it.
#   make          build everything into build/
#   make test     build and run every test (CTest)
#   make demo     the main job, end to end
#   make fuzz     run every fuzzer (FUZZ_SECONDS each)
#   make install  programs, libcpns, headers and cpns.pc under PREFIX
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
PREFIX ?= /usr/local

.PHONY: all deps configure test demo demo-inprocess clean format fuzz install

all: configure
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/install-deps.sh --check 2>/dev/null || scripts/install-deps.sh

configure: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: all
	scripts/demo.sh $(BUILD)/bin

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

# The same procedure with the three engines wired in one process (no sockets), every frame printed.
demo-inprocess: all
	$(BUILD)/bin/cpns-demo

# Fuzzing (clang + libFuzzer): every fuzz/fuzz_*.c for FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: deps
	@test -f build-fuzz/CMakeCache.txt || CC=clang cmake -S . -B build-fuzz -DCPNS_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build build-fuzz -j $(JOBS)
	scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
