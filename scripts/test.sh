#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, govulncheck, every test with the race detector,
# a short run of every fuzz target, and the Kafka client compatibility suite
# (scripts/compat.sh, which installs kcat, Node.js and npm with apt-get if missing).
# nftables is installed with apt-get if missing (the e2e network partition test),
# chromium (the web console's browser test) and Debian's prometheus package for
# promtool (deploy/'s alert tests), and PostgreSQL for client/outbox and
# client/idem (scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# The toolchain go.mod names (see the Makefile), when run without make.
export GOTOOLCHAIN="${GOTOOLCHAIN:-$(sed -n 's/^toolchain //p' go.mod)}"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '^gen/' || true)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Known vulnerabilities in the code's call graph (the database comes through
# the module proxy: scripts/vulncheck.sh; SKIPPED when it cannot be fetched).
echo "== govulncheck"
./scripts/vulncheck.sh

# The e2e network partition scenario cuts a node off with nftables (it
# skips, saying why, without nft or root).
if ! command -v nft >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "== apt-get install nftables"
	(timeout 300 apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq nftables >/dev/null) ||
		echo "nftables could not be installed: the network partition scenario will skip"
fi

# The web console's browser test drives headless Chromium (it skips, saying
# why, without /usr/bin/chromium).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "== apt-get install chromium"
	(timeout 300 apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium >/dev/null) ||
		echo "chromium could not be installed: the console's browser test will skip"
fi

# deploy/'s tests check the alerting rules with promtool (they skip, saying
# why, without it). Debian's prometheus package would start a Prometheus
# server: a policy-rc.d refusing service starts is put in place for the
# install when the machine has none, and removed after.
if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "== apt-get install prometheus (promtool)"
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
	fi
	(timeout 300 apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends prometheus >/dev/null) ||
		echo "prometheus (promtool) could not be installed: the alert rule tests will skip"
	if [ -n "$policy" ]; then rm -f "$policy"; fi
fi

# client/outbox and client/idem test against a real PostgreSQL
# (scripts/postgres.sh: installed with apt-get if missing, a private server
# on a port of its own, stopped at the end); without it those tests skip,
# saying why.
if [ -z "${SPOOLTEST_POSTGRES:-}" ]; then
	echo "== PostgreSQL for the tests"
	export SPOOLTEST_PG_PORT="${SPOOLTEST_PG_PORT:-$((50000 + $$ % 10000))}" # runs side by side do not meet
	if pgenv=$(./scripts/postgres.sh start); then
		eval "$pgenv"
		trap './scripts/postgres.sh stop' EXIT
	else
		echo "PostgreSQL could not be started: the outbox and idempotent consumer tests against it will skip"
	fi
fi

echo "== go test -race"
go test -race -count=1 -timeout 15m ./...

echo "== fuzz (short)"
FUZZTIME=${FUZZTIME:-5s} ./scripts/fuzz.sh

echo "== Kafka client compatibility"
./scripts/compat.sh

echo "== all tests passed"
