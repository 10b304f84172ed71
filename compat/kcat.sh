#!/usr/bin/env bash
# Spool's Kafka compatibility suite, kcat part (librdkafka): produce and
# consume with a consumer group, then produce and consume with each
# compression codec, checking counts, contents and per-key order.
# Run by scripts/compat.sh, which sets COMPAT_KAFKA_ADDR, COMPAT_HTTP_ADDR,
# COMPAT_SPOOL (topics are created with the spool CLI) and COMPAT_BATCHCODEC.
set -euo pipefail
: "${COMPAT_KAFKA_ADDR:?}" "${COMPAT_HTTP_ADDR:?}" "${COMPAT_SPOOL:?}" "${COMPAT_BATCHCODEC:?}"
export SPOOL_SERVER=http://$COMPAT_HTTP_ADDR

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
n=100

# kc ARGS: kcat against Spool, for at most 20 s. Errors that librdkafka
# logs (levels 0-3, e.g. PROTOERR) fail it even if kcat recovered.
kc() {
	local rc=0
	timeout 20 kcat -b "$COMPAT_KAFKA_ADDR" -X client.id=spool-compat-kcat "$@" 2>"$tmp/stderr" || rc=$?
	cat "$tmp/stderr" >&2
	[ $rc -ne 124 ] || echo "kcat: timed out after 20 s: kcat $*" >&2
	if grep -q '^%[0-3]|' "$tmp/stderr"; then
		echo "kcat: librdkafka logged errors: kcat $*" >&2
		[ $rc -ne 0 ] || rc=1
	fi
	return $rc
}

# records FROM TO: lines "key-I%5:value-I xxx…" (compressible values).
records() {
	local i pad=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
	for ((i = $1; i < $2; i++)); do
		printf 'key-%d:value-%d %s\n' $((i % 5)) "$i" "${pad:0:i%40+20}"
	done
}

# same WANT GOT: the same lines, and per key in the same order (a stable sort
# by key keeps each key's records in the order received).
same() {
	if ! diff <(sort -s -t: -k1,1 "$1") <(sort -s -t: -k1,1 "$2") >"$tmp/diff"; then
		echo "kcat: received records differ from those sent (< sent, > received):"
		head -20 "$tmp/diff"
		return 1
	fi
}

# group: produce with headers, consume with a consumer group; then produce
# more, and the group resumes from its committed offsets.
group() {
	local topic=compat-kcat-group-$suffix group=compat-kcat-$suffix
	"$COMPAT_SPOOL" topic create "$topic" --partitions 3
	records 0 $n >"$tmp/sent"
	kc -P -t "$topic" -K : -H trace=kcat -H trace=again <"$tmp/sent"
	sed 's/$/|trace=kcat,trace=again/' "$tmp/sent" >"$tmp/want"
	kc -G "$group" -X auto.offset.reset=earliest -c $n -f '%k:%s|%h\n' "$topic" >"$tmp/got"
	same "$tmp/want" "$tmp/got"

	records $n $((n + 10)) >"$tmp/sent"
	kc -P -t "$topic" -K : <"$tmp/sent"
	kc -G "$group" -c 10 -f '%k:%s\n' "$topic" >"$tmp/got"
	same "$tmp/sent" "$tmp/got"
}

# codec CODEC: produce compressed with CODEC, consume, and check that the
# batches Spool serves are compressed with CODEC.
codec() {
	local topic=compat-kcat-$1-$suffix served
	"$COMPAT_SPOOL" topic create "$topic" --partitions 3
	records 0 $n >"$tmp/sent-$1"
	# A long linger puts the records into a few large batches: librdkafka
	# sends a batch uncompressed when compression would not shrink it, as a
	# batch of one small record.
	kc -P -t "$topic" -K : -z "$1" -X linger.ms=200 <"$tmp/sent-$1"
	kc -C -t "$topic" -o beginning -c $n -f '%k:%s\n' >"$tmp/got-$1"
	same "$tmp/sent-$1" "$tmp/got-$1"
	served=$("$COMPAT_BATCHCODEC" -broker "$COMPAT_KAFKA_ADDR" -topic "$topic" -n $n -timeout 20s)
	if [ "$served" != "$1" ]; then
		echo "kcat: produced with $1, the batches served are compressed with: $served"
		return 1
	fi
}

# step NAME COMMAND...: runs COMMAND in the background, so that set -e holds
# inside it (it would not in a condition), and notes a failure.
failed=()
step() {
	echo "kcat: $1"
	"${@:2}" &
	wait $! || failed+=("$1")
}

step "produce $n records with headers, consume them with a consumer group, resume after a commit" group
for c in gzip snappy lz4 zstd; do
	step "produce and consume $n records compressed with $c" codec "$c"
done
if [ ${#failed[@]} -gt 0 ]; then
	printf 'kcat: FAIL: %s\n' "${failed[@]}"
	exit 1
fi
echo "kcat: ok"
