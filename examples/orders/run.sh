#!/usr/bin/env bash
# The worked example's one command: builds Spool and the three services,
# starts Spool on a fresh temporary data directory (native API on
# 127.0.0.1:7470, schema registry on 127.0.0.1:7471, Kafka listener off),
# then the orders (:7481), payments (:7482) and shipping (:7483) services,
# each with its own SQLite database, and prints what they log, each line
# prefixed with its service, until Ctrl-C stops them all.
#
# Then, in another terminal: examples/orders/demo.sh all (or one scenario;
# demo.sh help lists them). See examples/orders/README.md.
#
# Environment: SPOOL_HTTP, SPOOL_REGISTRY (Spool's addresses), SHOP_DIR
# (where the binaries, the data and the databases go; default a new
# temporary directory), OTEL_EXPORTER_OTLP_ENDPOINT (export the spans of
# Spool and of the services over OTLP/HTTP, e.g. to Jaeger on
# http://127.0.0.1:4318).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${SHOP_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/spool-shop.XXXXXX")}
mkdir -p "$work"
bin=$work/bin
http=${SPOOL_HTTP:-127.0.0.1:7470}
registry=${SPOOL_REGISTRY:-127.0.0.1:7471}
export SPOOL_SERVER=http://$http SPOOL_SCHEMA_REGISTRY=http://$registry

echo "building bin/spool and the services into $bin"
(cd "$root" && go build -o "$bin/" ./cmd/spool ./examples/orders/orders ./examples/orders/payments ./examples/orders/shipping)

# What demo.sh needs to find them.
env_file=${TMPDIR:-/tmp}/spool-shop.env
cat >"$env_file" <<EOF
export SPOOL_SERVER=$SPOOL_SERVER SPOOL_SCHEMA_REGISTRY=$SPOOL_SCHEMA_REGISTRY
export SHOP_BIN=$bin SHOP_DIR=$work
EOF

pids=()
stop() {
	trap - EXIT INT TERM
	echo "stopping"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -f "$env_file"
	echo "data left in $work"
}
trap stop EXIT INT TERM

# prefix NAME: each line of stdin as "[NAME] line", unbuffered.
prefix() {
	local line
	while IFS= read -r line; do printf '%-10s %s\n' "[$1]" "$line"; done
}

"$bin/spool" serve --data "$work/spool-data" --http "$http" --schema-registry "$registry" --kafka - \
	--log-level warn > >(prefix spool) 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	"$bin/spool" topic list >/dev/null 2>&1 && break
	sleep 0.1
done
"$bin/spool" topic list >/dev/null

port=7481
for svc in orders payments shipping; do
	"$bin/$svc" -db "$work/$svc.db" -http "127.0.0.1:$port" > >(prefix "$svc") 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && break
		sleep 0.1
	done
	port=$((port + 1))
done

echo
echo "Spool at $SPOOL_SERVER (schema registry $SPOOL_SCHEMA_REGISTRY); data in $work"
echo "Topics and subscriptions (each service creates what is missing at start):"
for t in orders payments shipments reminders; do
	"$bin/spool" sub list "$t" | sed "s/^/  $t: /"
done
echo
echo "Ready. In another terminal: examples/orders/demo.sh all   (demo.sh help lists the scenarios)"
echo
wait
