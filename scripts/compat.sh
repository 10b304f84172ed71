#!/usr/bin/env bash
# Kafka client compatibility suite: real Kafka clients against a real Spool.
# Each part starts a fresh `spool serve` (ports chosen by the system, its own
# data directory), runs one client, checks what came back and stops the
# server; a failing part prints the server's log and fails the suite, after
# the other parts ran. Parts (docs/kafka.md): interop, kcat, sarama,
# kafka-go, kafkajs, franz-go, and cluster, which starts a cluster of three
# `spool serve` processes and runs the clients in COMPAT_CLUSTER_CLIENTS
# against it, one after the other. COMPAT_PARTS="kcat sarama" runs only
# those; COMPAT_VERBOSE=1 prints franz-go's whole test output.
# Needs Go; kcat, Node.js and npm are installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# The toolchain go.mod names (see the Makefile), when run without make.
export GOTOOLCHAIN="${GOTOOLCHAIN:-$(sed -n 's/^toolchain //p' go.mod)}"
parts=${COMPAT_PARTS:-interop kcat sarama kafka-go kafkajs franz-go cluster}
# The clients the cluster part runs, all of them.
cluster_clients=${COMPAT_CLUSTER_CLIENTS:-interop franz-go kcat sarama kafka-go kafkajs}

tmp=$(mktemp -d)
spool_pids=()
trap 'stop_spool >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

echo "== compat: build spool and the clients"
go build -o "$tmp/spool" ./cmd/spool
(cd compat && go vet ./... && go build -o "$tmp/batchcodec" ./batchcodec &&
	go build -o "$tmp/freeport" ./freeport &&
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
export COMPAT_SPOOL=$tmp/spool COMPAT_BATCHCODEC=$tmp/batchcodec COMPAT_FRANZ_DIR=$tmp/franz-go

# serve DIR ARGS...: starts `spool serve` with its data in DIR/data and its
# log in DIR/spool.log, without the caller's SPOOL_* settings, HTTP and
# Kafka listeners on ports the system chooses, and ARGS; adds its pid to
# spool_pids.
serve() {
	local dir=$1
	shift
	mkdir -p "$dir"
	: >"$dir/spool.log"
	(
		# shellcheck disable=SC2046 # one word per variable name
		unset $(compgen -e SPOOL_)
		exec "$COMPAT_SPOOL" serve --data "$dir/data" --http 127.0.0.1:0 --kafka 127.0.0.1:0 --schema-registry 127.0.0.1:0 "$@" >"$dir/spool.log" 2>&1
	) &
	spool_pids+=($!)
}

# started DIR PID: waits up to 10 s for the server's "spool started" log
# line and prints its "http=… kafka=…" addresses; fails if the server
# exited or did not start in time.
started() {
	local line=
	for _ in $(seq 100); do
		line=$(grep -m1 'msg="spool started"' "$1/spool.log" || true)
		if [ -n "$line" ] || ! kill -0 "$2" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	[ -n "$line" ] || return 1
	local http=${line#* http=} kafka=${line#* kafka=}
	echo "${http%% *} ${kafka%% *}"
}

# start_spool DIR: runs one server with its data in DIR and exports the
# addresses it listens on (from its "spool started" log line).
start_spool() {
	serve "$1"
	local addrs
	if ! addrs=$(started "$1" "${spool_pids[0]}"); then
		echo "spool did not start"
		return 1
	fi
	export COMPAT_HTTP_ADDR=${addrs% *} COMPAT_KAFKA_ADDR=${addrs#* }
}

# start_cluster DIR: runs a cluster of three servers (nodes 1–3, data in
# DIR/n1…n3) and waits until it is ready: every node names the same
# metadata leader and lists the three Kafka listeners, and the leader
# coordinates groups. Exports COMPAT_KAFKA_ADDR (the three, comma-separated),
# COMPAT_HTTP_ADDR (the native API of the coordinator: the SDK routes
# publishes to partition leaders, but its consumers do not follow the
# coordinator yet, and interop's SDK and CLI consumers would retry a node
# that answers "this node does not coordinate subscriptions" until their
# timeout) and COMPAT_REPLICATION_FACTOR=3.
# HTTP and Kafka ports are chosen by the system; the cluster addresses must
# be known to every node before any starts, so they are ports the system
# just handed out (compat/freeport): if one was taken in between, its node
# fails to start and the cluster is started again with new ones.
start_cluster() {
	local dir=$1 try i peers ports a http=() kafka=() ok
	for try in 1 2 3; do
		mapfile -t ports < <("$tmp/freeport" 3)
		peers="1=${ports[0]},2=${ports[1]},3=${ports[2]}"
		for i in 1 2 3; do
			serve "$dir/n$i" --node-id "$i" --peers "$peers" --log-level info
		done
		ok=1 http=() kafka=()
		for i in 1 2 3; do
			if ! a=$(started "$dir/n$i" "${spool_pids[i - 1]}"); then
				ok=
				break
			fi
			http+=("${a% *}") kafka+=("${a#* }")
		done
		[ -z "$ok" ] || break
		if [ "$try" -lt 3 ] && grep -q 'address already in use' "$dir"/n*/spool.log; then
			echo "cluster: a cluster port was taken before its node started; starting again with new ones"
			stop_spool >/dev/null 2>&1 || true
			rm -rf "${dir:?}"/n*
			continue
		fi
		echo "cluster: node $i did not start"
		return 1
	done
	local leader lead want deadline=$((SECONDS + 30)) st
	while :; do
		leader= ok=1
		for i in 1 2 3; do
			st=$("$COMPAT_SPOOL" cluster status -o json --server "http://${http[i - 1]}" 2>/dev/null) || { ok= && break; }
			lead=$(sed -n '/"name": "metadata"/,/}/s/.*"leader": \([0-9]*\).*/\1/p' <<<"$st")
			want=${leader:-$lead}
			if [ -z "$lead" ] || [ "$lead" = 0 ] || [ "$lead" != "$want" ] || [ "$(grep -c '"kafka_addr": "' <<<"$st")" != 3 ]; then
				ok=
				break
			fi
			leader=$lead
		done
		if [ -n "$ok" ] && grep -q 'coordinating=true' "$dir/n$leader/spool.log"; then
			break
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "cluster: not ready within 30 s"
			return 1
		fi
		sleep 0.2
	done
	echo "cluster: nodes 1–3 ready (Kafka ${kafka[*]}), metadata leader and group coordinator: node $leader"
	export COMPAT_HTTP_ADDR=${http[leader - 1]} COMPAT_REPLICATION_FACTOR=3
	COMPAT_KAFKA_ADDR=$(
		IFS=,
		echo "${kafka[*]}"
	)
	export COMPAT_KAFKA_ADDR
}

# stop_spool: SIGTERM to every server started, then up to 30 s for clean
# exits (SIGKILL after). Fails if a server had died or did not exit
# cleanly.
stop_spool() {
	[ ${#spool_pids[@]} -gt 0 ] || return 0
	local pids=("${spool_pids[@]}") pid rc=0
	spool_pids=()
	for pid in "${pids[@]}"; do
		if ! kill -TERM "$pid" 2>/dev/null; then
			echo "spool (pid $pid) had exited during the part"
			rc=1
		fi
	done
	for _ in $(seq 300); do
		for pid in "${pids[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then
				sleep 0.1
				continue 2
			fi
		done
		break
	done
	for pid in "${pids[@]}"; do
		if kill -KILL "$pid" 2>/dev/null; then
			echo "spool (pid $pid) did not stop within 30 s of SIGTERM"
			rc=1
		fi
		wait "$pid" || { echo "spool (pid $pid) exited with status $?"; rc=1; }
	done
	return $rc
}

# client NAME: runs one client against COMPAT_KAFKA_ADDR within its limit.
client() {
	local name=$1 limit rc=0
	case $name in
	interop) set -- 90s "$tmp/interop.test" -test.v -test.count=1 -test.timeout 80s ;;
	kcat) set -- 180s compat/kcat.sh ;;
	sarama) set -- 90s "$tmp/sarama.test" -test.v -test.count=1 -test.timeout 80s ;;
	kafka-go) set -- 90s "$tmp/kafkago.test" -test.v -test.count=1 -test.timeout 80s ;;
	kafkajs) set -- 90s node compat/kafkajs/compat.js ;;
	franz-go) set -- 300s compat/franz-go.sh ;;
	*)
		echo "compat: unknown client $name"
		return 1
		;;
	esac
	limit=$1
	shift
	timeout --kill-after=10 "$limit" "$@" || rc=$?
	[ $rc -ne 124 ] || echo "$name: timed out after $limit"
	return $rc
}

# logs DIR...: the end of each server's log.
logs() {
	local d
	for d in "$@"; do
		echo "---- spool log $d (last 100 lines of $(wc -l <"$d/spool.log")) ----"
		tail -n 100 "$d/spool.log"
	done
	echo "---- end of spool logs ----"
}

# part NAME: one client against a fresh server.
results=()
failed=0
part() {
	local name=$1 dir=$tmp/$1 rc=0 start=$SECONDS
	case " $parts " in *" $name "*) ;; *) return 0 ;; esac
	echo "== compat: $name"
	start_spool "$dir" || rc=$?
	[ $rc -ne 0 ] || client "$name" || rc=$?
	stop_spool || rc=1
	if [ $rc -ne 0 ]; then
		logs "$dir"
		failed=1
	fi
	results+=("$([ $rc -eq 0 ] && echo PASS || echo FAIL)  $name ($((SECONDS - start)) s)")
}

# cluster_part: the clients in cluster_clients against one cluster of
# three servers, one after the other.
cluster_part() {
	local dir=$tmp/cluster rc=0 crc name start=$SECONDS t0
	case " $parts " in *" cluster "*) ;; *) return 0 ;; esac
	echo "== compat: cluster (three nodes: $cluster_clients)"
	if start_cluster "$dir"; then
		for name in $cluster_clients; do
			echo "== compat: cluster/$name"
			t0=$SECONDS crc=0
			client "$name" || crc=$?
			[ $crc -eq 0 ] || rc=1
			results+=("$([ $crc -eq 0 ] && echo PASS || echo FAIL)  cluster/$name ($((SECONDS - t0)) s)")
		done
	else
		rc=1
	fi
	stop_spool || rc=1
	if [ $rc -ne 0 ]; then
		logs "$dir"/n*
		failed=1
	fi
	results+=("$([ $rc -eq 0 ] && echo PASS || echo FAIL)  cluster ($((SECONDS - start)) s)")
	unset COMPAT_REPLICATION_FACTOR
}

part interop
part kcat
part sarama
part kafka-go
part kafkajs
part franz-go
cluster_part

echo "== compat: results"
printf '%s\n' "${results[@]}"
exit $failed
