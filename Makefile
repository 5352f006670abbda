# SPDX-License-Identifier: Apache-2.0
# The README's commands. The real build is CMake; this file only drives it.
#   make          build everything into build/
#   make test     build and run every test (CTest)
#   make demo     the main job, end to end
#   make demo-pkcs11  the same with the PNEs' keys in a SoftHSM2 token (scripts/demo-pkcs11.sh)
#   make demo-ha  the same story on PostgreSQL with two server instances, the active one killed
#   make demo-cluster  three instances, all active on one PostgreSQL, one killed mid-distribution
#   make fuzz     run every fuzzer (FUZZ_SECONDS each)
#   make bench    every benchmark (docs/PERFORMANCE.md); bench-smoke: the same, small and quick
#   make test-sanitize  every test with ASan + UBSan (build-sanitize/)
#   make test-valgrind  the unit and e2e tests under valgrind memcheck
#   make test-repeat    every test N times (default 10) with every core kept busy
#   make test-repeat-sanitize  the same with ASan + UBSan
#   make test-cluster   the cluster tests (ctest -L cluster) N times, one seed each (issue #12: N=20)
#   make install  programs, libcpns and libcpns-store, headers, cpns.pc and cpns-store.pc under PREFIX
#   make docs     the API reference (Doxygen, docs/Doxyfile) into build/api/html
#   make deb      the Debian packages (dpkg-buildpackage) into DEB_DIR (default build-deb/)
#   make test-deb installs them on this machine (root), runs the demo against /usr/bin,
#                 builds a program with pkg-config, runs lintian, then purges them
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
PREFIX ?= /usr/local

.PHONY: all deps configure test docs demo demo-pkcs11 demo-ha demo-cluster demo-inprocess clean format fuzz bench \
	bench-smoke install test-sanitize test-valgrind test-repeat test-repeat-sanitize test-cluster deb test-deb

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

demo-ha: all
	scripts/demo-ha.sh $(BUILD)/bin

demo-pkcs11: all
	scripts/demo-pkcs11.sh $(BUILD)/bin

demo-cluster: all
	scripts/demo-cluster.sh $(BUILD)/bin

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

# The API reference of the public headers; fails on any Doxygen warning.
docs: configure
	cmake --build $(BUILD) --target api-docs

# The same procedure with the three engines wired in one process (no sockets), every frame printed.
demo-inprocess: all
	$(BUILD)/bin/cpns-demo

# Fuzzing (clang + libFuzzer): every fuzz/fuzz_*.c for FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
fuzz: deps
	@test -f $(FUZZ_BUILD)/CMakeCache.txt || CC=clang cmake -S . -B $(FUZZ_BUILD) -DCPNS_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZ_TARGETS)
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
FUZZ_TARGETS = $(basename $(notdir $(wildcard fuzz/fuzz_*.c)))

# Every test (unit, e2e, corpus replays, programs and integration: the daemons
# are built with the sanitizers too) under AddressSanitizer, LeakSanitizer and
# UBSan. Any report aborts the process that made it, so a daemon's report
# fails its test through its exit status, and a leak fails the process at exit.
# verify_asan_link_order=0: install_pkgconfig links a plain program against the
# instrumented libcpns.so with pkg-config alone, so the runtime comes in second.
SAN_BUILD ?= build-sanitize
SAN_ENV = ASAN_OPTIONS=verify_asan_link_order=0:abort_on_error=1:halt_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
test-sanitize: deps
	@test -f $(SAN_BUILD)/CMakeCache.txt || cmake -S . -B $(SAN_BUILD) -DCPNS_SANITIZE=ON \
		-DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j $(JOBS)

# The unit and e2e tests of the normal build under valgrind memcheck: any error,
# and any definite or indirect leak, fails (scripts/valgrind.sh).
test-valgrind: all
	scripts/valgrind.sh $(BUILD) $(JOBS)

# The whole suite N times while busy loops compete for every core: stops at the
# first failing run and names the failed tests (scripts/test-repeat.sh).
N ?= 10
test-repeat: all
	scripts/test-repeat.sh $(N) $(BUILD)

# The same under ASan + UBSan (build-sanitize/).
test-repeat-sanitize: deps
	@test -f $(SAN_BUILD)/CMakeCache.txt || cmake -S . -B $(SAN_BUILD) -DCPNS_SANITIZE=ON \
		-DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(SAN_BUILD) -j $(JOBS)
	$(SAN_ENV) scripts/test-repeat.sh $(N) $(SAN_BUILD)

# The cluster tests (tests/cluster/, issue #12) N times in a row, each run with
# its own seed (CPNS_CLUSTER_SEED): stops at the first failing run and prints
# its seed (scripts/test-cluster.sh). N defaults to 10 here too: the issue's
# bar is `make test-cluster N=20`.
test-cluster: all
	scripts/test-cluster.sh $(N) $(BUILD)

# Benchmarks (docs/PERFORMANCE.md): BENCH {json} lines on stdout, a summary on stderr.
bench: all
	bench/run.sh $(BUILD)/bin full

bench-smoke: all
	bench/run.sh $(BUILD)/bin smoke

# Debian packages (debian/, docs/OPERATIONS.md). The tests do not run again
# inside the package build (nocheck: `make test` runs them); DEB_CHECK=1 runs
# them there too. dpkg-buildpackage writes into the parent directory: the
# files it made (debian/files) are moved to DEB_DIR.
DEB_DIR ?= build-deb
DEB_CHECK ?= 0
DEB_NOCHECK = $(if $(filter 1,$(DEB_CHECK)),,nocheck)
deb:
	@scripts/install-deps.sh --check --deb 2>/dev/null || scripts/install-deps.sh --deb
	DEB_BUILD_OPTIONS="$(strip $(DEB_NOCHECK) $(DEB_BUILD_OPTIONS))" \
		DEB_BUILD_PROFILES="$(strip $(DEB_NOCHECK) $(DEB_BUILD_PROFILES))" \
		dpkg-buildpackage -us -uc -b -j$(JOBS)
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)
	for f in $$(awk '{print $$1}' debian/files); do \
		mv ../$$f $(DEB_DIR)/; done
	mv ../cpns_*.changes $(DEB_DIR)/
	debian/rules clean >/dev/null
	@ls $(DEB_DIR)

test-deb:
	tests/packaging/test-deb.sh $(DEB_DIR)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(DEB_DIR)
