package main

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/spooltest"
)

// The reported defect, through the command line: five messages acked,
// reset to earliest, and the next consume got none; reset to latest, and
// the backlog was still delivered. Both now do what they say, across
// restarts, and purge skips a backlog.
func TestSubResetAndPurgeQueue(t *testing.T) {
	s := spooltest.StartServer(t)
	ok(t, s.URL(), "", "topic", "create", "jobs", "--partitions", "2")
	ok(t, s.URL(), "", "sub", "create", "jobs", "w", "--mode", "queue")
	ok(t, s.URL(), seq("job", 3), "pub", "jobs", "--partition", "0")
	ok(t, s.URL(), "job3\njob4\njob5\n", "pub", "jobs", "--partition", "1")
	consume := func(args ...string) []string {
		r := ok(t, s.URL(), "", append([]string{"consume", "jobs", "--sub", "w"}, args...)...)
		got := lines(r.stdout)
		slices.Sort(got)
		return got
	}
	all := lines(seq("job", 6))
	slices.Sort(all)
	if got := consume("--count", "6"); !slices.Equal(got, all) {
		t.Fatalf("first consume %q", got)
	}
	s.Restart()
	if got := consume("--timeout", "500ms"); len(got) != 0 {
		t.Fatalf("acked messages delivered again: %q", got)
	}

	r := ok(t, s.URL(), "", "sub", "reset", "jobs", "w", "--to", "earliest")
	mustContain(t, "reset", r.stdout, "PARTITION  COMMITTED  END", "0          0          3", "1          0          3")
	s.Restart()
	if got := consume("--count", "6"); !slices.Equal(got, all) {
		t.Fatalf("after reset to earliest and a restart: %q", got)
	}

	// A backlog, then reset to latest: nothing of it is delivered.
	ok(t, s.URL(), seq("old", 4), "pub", "jobs")
	ok(t, s.URL(), "", "sub", "reset", "jobs", "w", "--to", "latest")
	s.Restart()
	if got := consume("--timeout", "500ms"); len(got) != 0 {
		t.Fatalf("backlog delivered after reset to latest: %q", got)
	}

	// Purge reports what it skipped.
	ok(t, s.URL(), seq("stale", 3), "pub", "jobs")
	r = ok(t, s.URL(), "", "sub", "purge", "jobs", "w", "-o", "json")
	mustContain(t, "purge", r.stderr, "purged subscription w on topic jobs: 3 skipped")
	var pj purgeJSON
	if err := json.Unmarshal([]byte(r.stdout), &pj); err != nil || pj.Skipped != 3 || len(pj.Partitions) != 2 {
		t.Fatalf("purge json %q: %v", r.stdout, err)
	}
	s.Restart()
	ok(t, s.URL(), "fresh\n", "pub", "jobs")
	if got := consume("--count", "1", "--timeout", "5s"); !slices.Equal(got, []string{"fresh"}) {
		t.Fatalf("after purge and restart: %q", got)
	}

	// One partition: partition 1 from its start again, partition 0 untouched.
	r = ok(t, s.URL(), "", "sub", "reset", "jobs", "w", "--partition", "1", "--to", "0")
	mustContain(t, "reset one", r.stderr, "reset partition 1 of subscription w on topic jobs to offset:0")
	info := ok(t, s.URL(), "", "topic", "describe", "jobs", "-o", "json").stdout
	var td struct {
		Partitions []struct {
			Partition int32 `json:"partition"`
			End       int64 `json:"end_offset"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(info), &td); err != nil {
		t.Fatal(err)
	}
	end1 := td.Partitions[1].End
	r = ok(t, s.URL(), "", "consume", "jobs", "--sub", "w", "--count", itoa(end1), "-v")
	for _, l := range lines(r.stdout) {
		if !strings.HasPrefix(l, "1/") {
			t.Errorf("delivered from another partition: %q", l)
		}
	}

	fails(t, exitError, s.URL(), "", "sub", "reset", "jobs", "w", "--partition", "9", "--to", "0")
	r = fails(t, exitError, s.URL(), "", "sub", "reset", "jobs", "w", "--partition", "1", "--to", "999")
	mustContain(t, "out of range", r.stderr, "offset_out_of_range")
	fails(t, exitUsage, s.URL(), "", "sub", "reset", "jobs", "w", "--partition", "-1", "--to", "0")
	fails(t, exitUsage, s.URL(), "", "sub", "reset", "jobs", "w")
	fails(t, exitNotFound, s.URL(), "", "sub", "purge", "jobs", "nope")
	fails(t, exitNotFound, s.URL(), "", "sub", "purge", "nope", "w")
	fails(t, exitError, s.URL(), "", "sub", "purge", "jobs", "w", "--partition", "2")
}

// A stream subscription halted by a failed message shows the halt, and a
// reset of the partition releases it.
func TestSubDescribeShowsHalt(t *testing.T) {
	s := spooltest.StartServer(t)
	ok(t, s.URL(), "", "topic", "create", "orders")
	ok(t, s.URL(), "", "sub", "create", "orders", "ledger", "--on-failure", "stop")
	ok(t, s.URL(), seq("o", 3), "pub", "orders")
	r := ok(t, s.URL(), "", "sub", "describe", "orders", "ledger")
	mustContain(t, "describe", r.stdout, "on-failure:         stop", "HALTED")
	ok(t, s.URL(), "", "sub", "purge", "orders", "ledger")
	r = ok(t, s.URL(), "", "sub", "describe", "orders", "ledger", "-o", "json")
	var info subInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Partitions[0].CommittedOffset != 3 || info.Partitions[0].Halted != nil {
		t.Errorf("after purge: %+v", info.Partitions[0])
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
