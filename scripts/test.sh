#!/usr/bin/env bash
# The whole test suite: formatting, vet, every test with the race detector,
# a short run of every fuzz target, and the Kafka client compatibility suite
# (scripts/compat.sh, which installs kcat, Node.js and npm with apt-get if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '^gen/' || true)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race"
go test -race -count=1 -timeout 15m ./...

echo "== fuzz (short)"
FUZZTIME=${FUZZTIME:-10s} ./scripts/fuzz.sh

echo "== Kafka client compatibility"
./scripts/compat.sh

echo "== all tests passed"
