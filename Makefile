# Thin wrapper over CMake: the two commands of the README.
#   make run [ARGS='--tick-ms 500 ...']   set up, build and run the server (data in ./data)
#   make test                             set up, build and pass the whole test suite
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build run test bench clean

all: build

deps:
	@tools/bootstrap.sh $(BOOTSTRAP_FLAGS)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/bin/isoworld $(ARGS)

test: BOOTSTRAP_FLAGS = --e2e --browser
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

bench: build
	$(BUILD)/bin/isoworld-bench $(ARGS)

clean:
	rm -rf $(BUILD)
