#!/usr/bin/env bash
# Plain against TLS, the server in its own process (as users run it): PAIRS
# alternating pairs of `spool bench native --server`, each against a fresh
# server with its data on the disk under test. Prints each run's table.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-5}
MESSAGES=${MESSAGES:-300000}
bin=${BIN:-bin/spool} # not SPOOL_*: the server refuses unknown SPOOL_ variables
work=${BENCH_WORK:-$(mktemp -d)}
trap 'kill $srv 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${BENCH_WORK:-}" ] || rm -rf "$work"' EXIT
"$bin" cert dev --dir "$work/certs" >/dev/null
srv=
run() { # run plain|tls N
	local mode=$1 n=$2 data="$work/data-$1-$2" scheme=http extra=() cli=()
	if [ "$mode" = tls ]; then
		scheme=https
		extra=(--tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server-key.pem")
		cli=(--tls-ca "$work/certs/ca.pem")
	fi
	"$bin" serve --data "$data" --http 127.0.0.1:17070 --kafka - --schema-registry - "${extra[@]}" >"$work/serve-$mode-$n.log" 2>&1 &
	srv=$!
	for _ in $(seq 100); do
		if "$bin" --server "$scheme://127.0.0.1:17070" "${cli[@]}" topic list >/dev/null 2>&1; then break; fi
		sleep 0.1
	done
	echo "== pair $n: $mode"
	"$bin" bench native --server "$scheme://127.0.0.1:17070" "${cli[@]}" --dir "$data" --sizes 256 \
		--messages "$MESSAGES" --rounds 1 --duration 2s
	kill "$srv"; wait "$srv" || true
	rm -rf "$data"
}
for n in $(seq "$PAIRS"); do
	run plain "$n"
	run tls "$n"
done
