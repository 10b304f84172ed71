#!/usr/bin/env bash
# Spool's Kafka compatibility suite, franz-go part: franz-go's own kgo
# integration tests, run against a Spool server or cluster
# (COMPAT_KAFKA_ADDR: one address, or a cluster's separated by commas; set by
# scripts/compat.sh) with KGO_TEST_RF=$COMPAT_REPLICATION_FACTOR (default 1;
# 3 on the suite's three-node cluster). The franz-go source is copied from the module cache
# into a temporary directory at run time; its version is the one compat/go.mod
# requires. Prints one line per test, with the first errors of each failure.
set -euo pipefail
: "${COMPAT_KAFKA_ADDR:?}"
cd "$(dirname "$0")"

# The tests Spool runs (all start at once: -parallel is above their count, so
# a test that hangs until the timeout does not keep the others from running).
# COMPAT_FRANZ_TESTS overrides the list (a -run pattern), for running one.
tests=${COMPAT_FRANZ_TESTS:-'TestGroupETL|TestClient_Produce$|TestGroupSimple|TestConsumeRegex$|TestIssue|TestPing|TestAddRemovePartitions|TestPauseIssue|TestConsumeTopicRetrieval|TestShareGroupETL'}
# Skips that are right for Spool; any other skipped test fails this part.
allowed_skips='TestIssueProduceBrokerTooOldFailsRecords' # Spool advertises Produce v0 on purpose, for librdkafka

version=$(go list -m -f '{{.Version}}' github.com/twmb/franz-go)
src=$(go mod download -json "github.com/twmb/franz-go@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "franz-go: module $version not found in the module cache"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The copy and its compiled tests are kept in COMPAT_FRANZ_DIR when it is
# set (scripts/compat.sh sets it: the single-node and the cluster part
# compile them once).
work=${COMPAT_FRANZ_DIR:-$tmp}
if [ ! -x "$work/kgo.test" ]; then
	rm -rf "$work/franz-go"
	mkdir -p "$work"
	cp -r "$src" "$work/franz-go"
	chmod -R u+w "$work/franz-go"
	(cd "$work/franz-go/pkg/kgo" && go test -c -o "$work/kgo.test" .)
fi

echo "franz-go: kgo $version integration tests against $COMPAT_KAFKA_ADDR"
rc=0
(cd "$work/franz-go/pkg/kgo" &&
	KGO_SEEDS=$COMPAT_KAFKA_ADDR KGO_TEST_RF=${COMPAT_REPLICATION_FACTOR:-1} KGO_TEST_RECORDS=5000 KGO_LOG_LEVEL=none \
		"$work/kgo.test" -test.count=1 -test.timeout 3m -test.parallel 32 -test.v -test.run "$tests") >"$tmp/out" 2>&1 || rc=$?
[ -z "${COMPAT_VERBOSE:-}" ] || cat "$tmp/out"

# Summary: each test's result (subtests indented), the first three distinct
# errors of a failed test, the reason of a skip, and tests still running when
# the timeout hit.
awk -v allowed="$allowed_skips" '
	/^=== (RUN|CONT|NAME|PAUSE)/ { cur = $3; sub(/\/.*/, "", cur); next }
	/^ +[a-z_0-9]+\.go:[0-9]+: / {
		line = $0; sub(/^ +/, "", line)
		if (line ~ /deleting (topic|group)|DELETING (TOPIC|GROUP)|completed in/) next
		if (!seen[cur, line]++ && n[cur] < 3) { msgs[cur] = msgs[cur] "        " line "\n"; n[cur]++ }
		next
	}
	/^ *--- (PASS|FAIL|SKIP): / {
		name = $3; top = (name !~ /\//)
		printf "franz-go: %s%s %s %s\n", substr($0, 1, index($0, "---") - 1), $2, name, $4
		if (top && $2 != "PASS:") printf "%s", msgs[name]
		if (top && $2 == "FAIL:") failed++
		if (top && $2 == "SKIP:" && index("|" allowed "|", "|" name "|") == 0) { failed++; print "        (a skipped test fails this part)" }
		next
	}
	/^panic: test timed out/ { print "franz-go: " $0; timedout = 1; failed++; next }
	timedout && /^\t\tTest/ { name = $1; print "franz-go: TIMEOUT " name; printf "%s", msgs[name]; next }
	END { exit failed > 0 }
' "$tmp/out" || rc=1

if [ $rc -ne 0 ] && ! grep -q '^--- ' "$tmp/out"; then
	tail -n 50 "$tmp/out" # no test ran: show why (build error, panic)
fi
[ $rc -eq 0 ] && echo "franz-go: ok"
exit $rc
