# The two commands a new user needs:
#   make run    build and run Spool with its data in ./spool-data
#   make test   the whole test suite (what CI runs)

GO ?= go
# The Go toolchain go.mod names (a patch release with the standard library's
# security fixes): the go command fetches it through the module proxy once
# and uses it for every build and test run from here. A machine's own Go
# ignores go.mod's toolchain line unless told, hence the export.
export GOTOOLCHAIN ?= $(shell sed -n 's/^toolchain //p' go.mod)
BIN := bin/spool
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test bench fuzz clean proto

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/spool

run: build
	./$(BIN) serve --data ./spool-data

test:
	./scripts/test.sh

# Benchmarks, each beside the machine's limits measured in the same run: partition-log
# appends, the native API through the SDK, queue mode, and Kafka clients (Spool and kfake).
bench: build
	./$(BIN) bench log --dir .bench
	./$(BIN) bench native --dir .bench
	./$(BIN) bench queue --dir .bench
	./$(BIN) bench kafka --dir .bench
	./$(BIN) bench latency --dir .bench

# Longer fuzzing than the test suite does; FUZZTIME=10m make fuzz.
fuzz:
	FUZZTIME=$${FUZZTIME:-5m} ./scripts/fuzz.sh

clean:
	rm -rf bin .bench

# Regenerate gen/ from proto/ (needs buf and the two local plugins: see docs/development.md).
proto:
	buf lint
	buf generate
