#!/usr/bin/env bash
# The worked example's scenarios, against the services run.sh started:
#
#   demo.sh order         outbox publishing and fan-out: one order, paid, shipped, completed
#   demo.sh outage        retries with backoff during a payment outage; the breaker opens and closes
#   demo.sh poison        a message payments cannot handle is dead-lettered, then redriven
#   demo.sh reminder      a delayed reminder finds an order still unpaid
#   demo.sh compensation  a shipment fails: the payment is refunded, the order cancelled
#   demo.sh schema        a breaking change of the orders' schema refused by spool schema check
#   demo.sh replay        a new read model built by replaying the orders topic
#   demo.sh trace         one trace id across the three services
#   demo.sh all           all of them in turn
#
# Watch run.sh's output beside it: the services log every step.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
env_file=${TMPDIR:-/tmp}/spool-shop.env
if [[ ! -f $env_file ]]; then
	echo "demo.sh: run examples/orders/run.sh first (in another terminal)" >&2
	exit 1
fi
# shellcheck source=/dev/null
source "$env_file"
spool=$SHOP_BIN/spool
orders=http://127.0.0.1:7481
payments=http://127.0.0.1:7482
shipping=http://127.0.0.1:7483

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {
	local cmd="$*"
	printf '$ %s\n' "${cmd//$SHOP_BIN\//}"
	"$@"
}
# place JSON: places an order, prints the response and sets $id and $trace.
place() {
	local out
	printf '$ curl -s -XPOST %s/orders -d %s\n' "$orders" "'$1'"
	out=$(curl -sf -XPOST "$orders/orders" -d "$1")
	echo "$out"
	id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$out")
	trace=$(sed -n 's/.*"trace":"\([^"]*\)".*/\1/p' <<<"$out")
}
show() { # show ID: the order, its payment and its shipment
	run curl -s "$orders/orders/$1"
	printf '$ curl -s %s/payments | grep %s\n' "$payments" "$1"
	curl -s "$payments/payments" | grep -w "$1" || echo "(no payment)"
	printf '$ curl -s %s/shipments | grep %s\n' "$shipping" "$1"
	curl -s "$shipping/shipments" | grep -w "$1" || echo "(no shipment)"
}
pause() { sleep "${1:-2}"; }

scenario_order() {
	say "Outbox publishing and fan-out"
	echo "The orders service writes the order and its order.created event in one SQLite transaction;"
	echo "its relay publishes the event. payment.succeeded fans out to shipping and orders."
	place '{"item":"book","amount_cents":1250,"currency":"EUR","address":"Paris"}'
	pause 2
	show "$id"
	run "$spool" sub list payments
	run "$spool" topic read orders --from earliest --count 1 -v
}

scenario_outage() {
	say "A payment outage: retries with backoff, the breaker opens, then closes"
	run curl -s -XPOST "$payments/outage?on=true"
	place '{"item":"lamp","amount_cents":4999,"currency":"USD","address":"Oslo"}'
	local a=$id
	place '{"item":"chair","amount_cents":8900,"currency":"EUR","address":"Lyon"}'
	local b=$id
	echo "(charges fail and are nacked: redelivered after 0.25-0.5 s, then 0.5-1 s, ...; after 5 failures"
	echo " in a row the breaker opens and holds the messages, letting one trial call through every 3 s)"
	pause 4
	run curl -s "$payments/breaker"
	run curl -s "$orders/orders/$a"
	echo "(the orders' reminders come 5 s after they were placed: see REMINDER in run.sh's output)"
	pause 3
	run curl -s -XPOST "$payments/outage?on=false"
	echo "(the next trial call succeeds, the breaker closes, the held messages go through)"
	pause 4
	run curl -s "$payments/breaker"
	show "$a"
	show "$b"
}

scenario_poison() {
	say "A poison message: dead-lettered, then redriven after the fix"
	place '{"item":"test kit","amount_cents":100,"currency":"XTS","address":"Rome"}'
	echo "(payments does not take XTS: handle.Permanent, so the message is dead-lettered at once)"
	pause 2
	run "$spool" dlq list orders payments
	run curl -s "$orders/orders/$id"
	echo "(the fix: payments accepts XTS from now on; then the dead letter is redriven)"
	run curl -s -XPOST "$payments/currencies?add=XTS"
	run "$spool" dlq redrive orders payments
	pause 2
	show "$id"
	run "$spool" dlq list orders payments
}

scenario_reminder() {
	say "A delayed reminder"
	echo "Each order publishes a reminder to itself with Message.Delay = 5 s; when it is delivered,"
	echo "an order still unpaid is flagged. The provider is down, so this one is still unpaid:"
	run curl -s -XPOST "$payments/outage?on=true"
	place '{"item":"pen","amount_cents":300,"currency":"GBP","address":"Leeds"}'
	run curl -s "$orders/orders/$id"
	pause 6
	run curl -s "$orders/orders/$id"
	run curl -s -XPOST "$payments/outage?on=false"
	pause 4
	run curl -s "$orders/orders/$id"
}

scenario_compensation() {
	say "A compensation: the shipment fails, the payment is refunded, the order cancelled"
	place '{"item":"map","amount_cents":700,"currency":"GBP","address":"Atlantis"}'
	pause 3
	show "$id"
}

scenario_schema() {
	say "Schema evolution: spool schema check refuses a breaking change"
	cd "$here/schemas"
	run "$spool" schema register orders-value --file order-event.v1.json
	run "$spool" schema check orders-value --file order-event.v2-compatible.json
	local rc=0
	run "$spool" schema check orders-value --file order-event.v2-breaking.json || rc=$?
	echo "exit status $rc (6: incompatible; a producer's CI stops here)"
	cd - >/dev/null
}

scenario_replay() {
	say "Replay: a new read model from the orders topic's first event"
	run curl -s -XPOST "$orders/replay"
	pause 2
	run curl -s "$orders/report"
	echo "(compare with the orders table:)"
	run curl -s "$orders/orders"
}

scenario_trace() {
	say "One trace across the three services"
	place '{"item":"globe","amount_cents":2500,"currency":"EUR","address":"Vienna"}'
	pause 2
	echo "trace id of the order: $trace"
	show "$id"
	echo "(the same id is in every log line about $id in run.sh's output;"
	echo " with OTEL_EXPORTER_OTLP_ENDPOINT set for run.sh, open the trace in your tracing UI)"
}

case ${1:-help} in
order | outage | poison | reminder | compensation | schema | replay | trace)
	"scenario_$1"
	;;
all)
	for s in order outage poison reminder compensation schema replay trace; do
		"scenario_$s"
	done
	;;
*)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	;;
esac
