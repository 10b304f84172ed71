#!/usr/bin/env bash
# Regenerates server/testdata/prev-release-7e44b4f.tar.gz: a data directory
# written by release 7e44b4f (the last one whose state-store records were
# JSON without a version byte, docs/format/state.md), which
# TestPreviousReleaseDataDir (server/prevrelease_test.go) opens with the
# current code. It builds that release in a temporary git worktree, runs it
# on a temporary data directory (ports chosen by the system), makes the
# state below with its own CLI, stops it cleanly (SIGTERM) and archives the
# directory. The test's expected values follow from these steps; a change
# here needs a change there. Takes about half a minute after the build.
#
#   topics    orders    3 partitions, retention 168h, retention bytes 64 MiB,
#                       dedup window 10m, max message bytes 256 KiB
#             metrics   max messages 1000, max bytes 256 MiB, discard new,
#                       durability interval, ttl 1h, dedup window 30s
#             jobs      2 partitions, durability none
#             jobs-dead and dlq.jobs.workers (dead-letter topics)
#   streams   orders/billing  filter orders.eu.#, start latest (after the first
#                             six messages), consumed to the end of its matches
#             orders/audit    start 2024-06-01T12:00:00Z, reset to offset 2
#             orders/replay   start offset 1
#             metrics/dash    default settings
#   queues    jobs/workers    ordering key, ack timeout 45s, max deliveries 3,
#                             backoff delays 2s,10m with equal jitter, on-expired
#                             drop, rate limit 50 burst 5, max in flight 100
#             jobs/retry      max deliveries 1, backoff 250ms..10s x3 without
#                             jitter, dead-letter topic jobs-dead
#   jobs partition 0: job-0 (key a) and job-1 (key b) acked by workers; job-0
#     dead-lettered by retry (max-deliveries), job-1 rejected by retry and
#     redriven to retry (the copy is offset 2); job-2 (no key) nacked twice
#     by workers, parked for 5-10 minutes with 2 deliveries.
#   jobs partition 1: delayed-soon (delay 3m) and delayed-far (delay 10 years,
#     key k1) parked in both; expires (ttl 1s) dropped by workers and
#     dead-lettered by retry (expired); leased (key k2) leased by a workers
#     consumer that is stopped (SIGSTOP) when the server shuts down; waiting
#     (not yet read by either).
#
# Usage: scripts/prev-release-fixture.sh [OUT.tar.gz]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=7e44b4f
out=${1:-$PWD/server/testdata/prev-release-$rev.tar.gz}

tmp=$(mktemp -d)
src=$tmp/src
spool_pid=
consumer_pid=
cleanup() {
	[ -n "$consumer_pid" ] && kill -KILL "$consumer_pid" 2>/dev/null || true
	[ -n "$spool_pid" ] && kill -KILL "$spool_pid" 2>/dev/null || true
	git worktree remove --force "$src" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== build $rev"
git worktree add --detach "$src" "$rev" >/dev/null
(cd "$src" && go build -o "$tmp/spool" ./cmd/spool)

data=$tmp/data
(
	# shellcheck disable=SC2046 # one word per variable name
	unset $(compgen -e SPOOL_)
	exec "$tmp/spool" serve --data "$data" --http 127.0.0.1:0 --kafka 127.0.0.1:0 >"$tmp/spool.log" 2>&1
) &
spool_pid=$!
line=
for _ in $(seq 100); do
	line=$(grep -m1 'msg="spool started"' "$tmp/spool.log" || true)
	if [ -n "$line" ] || ! kill -0 "$spool_pid" 2>/dev/null; then
		break
	fi
	sleep 0.1
done
if [ -z "$line" ]; then
	cat "$tmp/spool.log"
	echo "spool did not start" >&2
	exit 1
fi
http=${line#* http=}
http=${http%% *}
export SPOOL_SERVER=http://$http
s() { "$tmp/spool" "$@"; }
pub() { s pub "$@" >/dev/null 2>&1; }
echo "== spool $rev at $SPOOL_SERVER"

echo "== topics"
s topic create orders --partitions 3 --retention 168h --retention-bytes 64MiB --dedup-window 10m --max-message-bytes 256KiB
s topic create metrics --max-messages 1000 --max-bytes 256MiB --discard new --durability interval --ttl 1h --dedup-window 30s
s topic create jobs --partitions 2 --durability none

echo "== stream subscriptions"
pub orders o-0 --partition 0 --subject orders.eu.created --key c1
pub orders o-1 --partition 0 --subject orders.us.created --key c2
pub orders o-2 --partition 0 --subject orders.eu.paid --key c1
pub orders o-3 --partition 1 --subject orders.us.paid --key c3
pub orders o-4 --partition 1 --subject orders.eu.created --key c4
pub orders o-5 --partition 2 --subject orders.eu.shipped --key c5
s sub create orders billing --filter 'orders.eu.#' --start latest
s sub create orders audit --start 2024-06-01T12:00:00Z
s sub create orders replay --start 1
pub orders o-6 --partition 0 --subject orders.eu.created
pub orders o-7 --partition 1 --subject orders.us.created
pub orders o-8 --partition 1 --subject orders.eu.paid
pub orders o-9 --partition 2 --subject orders.eu.created
s consume orders --sub billing --count 3 --timeout 30s >/dev/null
pub orders o-10 --partition 0 --subject orders.us.cancelled
s sub reset orders audit --to 2 >/dev/null
s sub create metrics dash
pub metrics m-0 --id m-0
pub metrics m-1 --id m-1

echo "== queue subscriptions"
s sub create jobs workers --mode queue --ordering key --ack-timeout 45s --max-deliveries 3 \
	--backoff-delays 2s,10m --backoff-jitter equal --on-expired drop --rate-limit 50 --rate-burst 5 --max-in-flight 100
s sub create jobs retry --mode queue --max-deliveries 1 --backoff-initial 250ms --backoff-max 10s \
	--backoff-multiplier 3 --backoff-jitter none --dlq jobs-dead
pub jobs job-0 --partition 0 --key a
pub jobs job-1 --partition 0 --key b
s consume jobs --sub workers --count 2 --timeout 30s >/dev/null
s consume jobs --sub retry --count 1 --nack --timeout 30s >/dev/null
s consume jobs --sub retry --count 1 --reject --timeout 30s >/dev/null
pub jobs delayed-soon --partition 1 --delay 3m
pub jobs delayed-far --partition 1 --delay 87600h --key k1
pub jobs expires --partition 1 --ttl 1s
sleep 3 # expires expires
# Nothing is deliverable to retry: this consumer only makes it read
# partition 1 (parking two messages, dead-lettering one), and times out.
s consume jobs --sub retry --count 1 --timeout 3s >/dev/null 2>&1 || [ $? = 4 ]
s dlq redrive jobs retry --reason rejected
pub jobs job-2 --partition 0
s consume jobs --sub workers --count 1 --nack --timeout 30s >/dev/null
sleep 3 # the first backoff of workers: 1-2 s
s consume jobs --sub workers --count 1 --nack --timeout 30s >/dev/null
"$tmp/spool" consume jobs --sub workers --count 1 >/dev/null 2>&1 &
consumer_pid=$!
sleep 2 # the consumer has joined and is waiting
kill -STOP "$consumer_pid"
pub jobs leased --partition 1 --key k2
pub jobs waiting --partition 1
sleep 1 # leased is leased to the stopped consumer

echo "== state before shutdown"
for sub in orders/billing orders/audit orders/replay metrics/dash jobs/workers jobs/retry; do
	s sub describe "${sub%/*}" "${sub#*/}"
done
s dlq list jobs retry

echo "== stop"
kill -TERM "$spool_pid"
wait "$spool_pid" || {
	cat "$tmp/spool.log"
	exit 1
}
spool_pid=
kill -KILL "$consumer_pid"
consumer_pid=
tar -C "$tmp" -czf "$out" data
echo "== wrote $out ($(wc -c <"$out") bytes)"
