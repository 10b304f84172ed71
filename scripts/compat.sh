#!/usr/bin/env bash
# Kafka client compatibility suite: real Kafka clients against a real Spool.
# Each part starts a fresh `spool serve` (ports chosen by the system, its own
# data directory), runs one client, checks what came back and stops the
# server; a failing part prints the server's log and fails the suite, after
# the other parts ran. Parts (docs/kafka.md): interop, kcat, sarama,
# kafka-go, kafkajs, franz-go. COMPAT_PARTS="kcat sarama" runs only those;
# COMPAT_VERBOSE=1 prints franz-go's whole test output.
# Needs Go; kcat, Node.js and npm are installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
parts=${COMPAT_PARTS:-interop kcat sarama kafka-go kafkajs franz-go}

tmp=$(mktemp -d)
spool_pid=
trap 'stop_spool >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

echo "== compat: build spool and the clients"
go build -o "$tmp/spool" ./cmd/spool
(cd compat && go vet ./... && go build -o "$tmp/batchcodec" ./batchcodec &&
	go test -c -o "$tmp/" ./sarama ./kafkago ./interop)
missing=
command -v kcat >/dev/null || missing="$missing kcat"
command -v node >/dev/null || missing="$missing nodejs"
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
	echo "== compat: apt-get install$missing"
	timeout 300 apt-get update -qq
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq $missing >/dev/null
fi
timeout 300 npm ci --prefix compat/kafkajs --no-audit --no-fund --loglevel=error
export COMPAT_SPOOL=$tmp/spool COMPAT_BATCHCODEC=$tmp/batchcodec

# start_spool DIR: runs spool serve with its data in DIR, without the
# caller's SPOOL_* settings, and exports the addresses it listens on (from
# its "spool started" log line).
start_spool() {
	mkdir -p "$1"
	: >"$1/spool.log"
	(
		# shellcheck disable=SC2046 # one word per variable name
		unset $(compgen -e SPOOL_)
		exec "$COMPAT_SPOOL" serve --data "$1/data" --http 127.0.0.1:0 --kafka 127.0.0.1:0 >"$1/spool.log" 2>&1
	) &
	spool_pid=$!
	local line=
	for _ in $(seq 100); do
		line=$(grep -m1 'msg="spool started"' "$1/spool.log" || true)
		if [ -n "$line" ] || ! kill -0 "$spool_pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if [ -z "$line" ]; then
		echo "spool did not start"
		return 1
	fi
	COMPAT_KAFKA_ADDR=${line#* kafka=} COMPAT_HTTP_ADDR=${line#* http=}
	export COMPAT_KAFKA_ADDR=${COMPAT_KAFKA_ADDR%% *} COMPAT_HTTP_ADDR=${COMPAT_HTTP_ADDR%% *}
}

# stop_spool: SIGTERM, then up to 30 s for a clean exit (SIGKILL after).
# Fails if the server had died or does not exit cleanly.
stop_spool() {
	[ -n "$spool_pid" ] || return 0
	local pid=$spool_pid rc=0
	spool_pid=
	if ! kill -TERM "$pid" 2>/dev/null; then
		echo "spool had exited during the part"
		rc=1
	fi
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -KILL "$pid" 2>/dev/null; then
		echo "spool did not stop within 30 s of SIGTERM"
		rc=1
	fi
	wait "$pid" || { echo "spool exited with status $?"; rc=1; }
	return $rc
}

# part NAME TIMEOUT COMMAND...: one part against a fresh server.
results=()
failed=0
part() {
	local name=$1 limit=$2 dir=$tmp/$1 rc=0 start=$SECONDS
	shift 2
	case " $parts " in *" $name "*) ;; *) return 0 ;; esac
	echo "== compat: $name"
	start_spool "$dir" || rc=$?
	if [ $rc -eq 0 ]; then
		timeout --kill-after=10 "$limit" "$@" || rc=$?
		[ $rc -ne 124 ] || echo "$name: timed out after $limit"
	fi
	stop_spool || rc=1
	if [ $rc -ne 0 ]; then
		echo "---- spool log of $name (last 100 lines of $(wc -l <"$dir/spool.log")) ----"
		tail -n 100 "$dir/spool.log"
		echo "---- end of spool log ----"
		failed=1
	fi
	results+=("$([ $rc -eq 0 ] && echo PASS || echo FAIL)  $name ($((SECONDS - start)) s)")
}

part interop 90s "$tmp/interop.test" -test.v -test.count=1 -test.timeout 80s
part kcat 180s compat/kcat.sh
part sarama 90s "$tmp/sarama.test" -test.v -test.count=1 -test.timeout 80s
part kafka-go 90s "$tmp/kafkago.test" -test.v -test.count=1 -test.timeout 80s
part kafkajs 90s node compat/kafkajs/compat.js
part franz-go 300s compat/franz-go.sh

echo "== compat: results"
printf '%s\n' "${results[@]}"
exit $failed
