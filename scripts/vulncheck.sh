#!/usr/bin/env bash
# govulncheck over the whole module, offline: the Go vulnerability database
# (vuln.go.dev) is not reachable from the machines that run the tests, so its
# OSV records come from the module golang.org/x/vulndb (its data/osv), fetched
# through the Go module proxy like any module, and internal/tools/vulndb
# writes them in the layout govulncheck reads with -db file://. The database
# is as recent as VULNDB_VERSION: move it forward now and then
# (`go list -m golang.org/x/vulndb@latest` prints the newest).
#
# Fails on a vulnerability the code calls unless scripts/vulncheck-ack.txt
# acknowledges it for the exact module (or Go) version found; prints SKIPPED
# and succeeds when the database or govulncheck cannot be fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
# The toolchain go.mod names (see the Makefile), when run without make.
export GOTOOLCHAIN="${GOTOOLCHAIN:-$(sed -n 's/^toolchain //p' go.mod)}"

GOVULNCHECK_VERSION=v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Outside the module, so that its go.mod is left alone.
if ! dl=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" 2>"$tmp/dl.err"); then
	echo "govulncheck SKIPPED: golang.org/x/vulndb@$VULNDB_VERSION could not be downloaded through the module proxy:"
	sed 's/^/    /' "$tmp/dl.err"; echo "$dl" | sed 's/^/    /'
	exit 0
fi
dir=$(echo "$dl" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir/data/osv" ]; then
	echo "govulncheck SKIPPED: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv directory"
	exit 0
fi
go run ./internal/tools/vulndb build -osv "$dir/data/osv" -out "$tmp/db"

if ! GOBIN="$tmp" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" 2>"$tmp/install.err"; then
	echo "govulncheck SKIPPED: golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION could not be installed:"
	sed 's/^/    /' "$tmp/install.err"
	exit 0
fi
echo "govulncheck $GOVULNCHECK_VERSION, database golang.org/x/vulndb@$VULNDB_VERSION, $(go env GOVERSION)"
"$tmp/govulncheck" -db "file://$tmp/db" -format json ./... >"$tmp/scan.json"
go run ./internal/tools/vulndb check -ack scripts/vulncheck-ack.txt <"$tmp/scan.json"
