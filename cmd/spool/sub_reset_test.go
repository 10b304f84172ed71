package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/server"
)

// restartableServer runs a server on dir; restart stops it and starts a
// new one on the same data (at a new address).
type restartableServer struct {
	t   *testing.T
	dir string
	srv *server.Server
	url string
}

func startServerAt(t *testing.T, dir string) *restartableServer {
	r := &restartableServer{t: t, dir: dir}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *restartableServer) start() {
	r.t.Helper()
	srv, err := server.New(server.Config{DataDir: r.dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.srv, r.url = srv, "http://"+srv.HTTPAddr()
}

func (r *restartableServer) stop() {
	if r.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		r.t.Errorf("shutdown: %v", err)
	}
	r.srv = nil
}

func (r *restartableServer) restart() { r.stop(); r.start() }

// The reported defect, through the command line: five messages acked,
// reset to earliest, and the next consume got none; reset to latest, and
// the backlog was still delivered. Both now do what they say, across
// restarts, and purge skips a backlog.
func TestSubResetAndPurgeQueue(t *testing.T) {
	s := startServerAt(t, t.TempDir())
	ok(t, s.url, "", "topic", "create", "jobs", "--partitions", "2")
	ok(t, s.url, "", "sub", "create", "jobs", "w", "--mode", "queue")
	ok(t, s.url, seq("job", 3), "pub", "jobs", "--partition", "0")
	ok(t, s.url, "job3\njob4\njob5\n", "pub", "jobs", "--partition", "1")
	consume := func(args ...string) []string {
		r := ok(t, s.url, "", append([]string{"consume", "jobs", "--sub", "w"}, args...)...)
		got := lines(r.stdout)
		slices.Sort(got)
		return got
	}
	all := lines(seq("job", 6))
	slices.Sort(all)
	if got := consume("--count", "6"); !slices.Equal(got, all) {
		t.Fatalf("first consume %q", got)
	}
	s.restart()
	if got := consume("--timeout", "500ms"); len(got) != 0 {
		t.Fatalf("acked messages delivered again: %q", got)
	}

	r := ok(t, s.url, "", "sub", "reset", "jobs", "w", "--to", "earliest")
	mustContain(t, "reset", r.stdout, "PARTITION  COMMITTED  END", "0          0          3", "1          0          3")
	s.restart()
	if got := consume("--count", "6"); !slices.Equal(got, all) {
		t.Fatalf("after reset to earliest and a restart: %q", got)
	}

	// A backlog, then reset to latest: nothing of it is delivered.
	ok(t, s.url, seq("old", 4), "pub", "jobs")
	ok(t, s.url, "", "sub", "reset", "jobs", "w", "--to", "latest")
	s.restart()
	if got := consume("--timeout", "500ms"); len(got) != 0 {
		t.Fatalf("backlog delivered after reset to latest: %q", got)
	}

	// Purge reports what it skipped.
	ok(t, s.url, seq("stale", 3), "pub", "jobs")
	r = ok(t, s.url, "", "sub", "purge", "jobs", "w", "-o", "json")
	mustContain(t, "purge", r.stderr, "purged subscription w on topic jobs: 3 skipped")
	var pj purgeJSON
	if err := json.Unmarshal([]byte(r.stdout), &pj); err != nil || pj.Skipped != 3 || len(pj.Partitions) != 2 {
		t.Fatalf("purge json %q: %v", r.stdout, err)
	}
	s.restart()
	ok(t, s.url, "fresh\n", "pub", "jobs")
	if got := consume("--count", "1", "--timeout", "5s"); !slices.Equal(got, []string{"fresh"}) {
		t.Fatalf("after purge and restart: %q", got)
	}

	// One partition: partition 1 from its start again, partition 0 untouched.
	r = ok(t, s.url, "", "sub", "reset", "jobs", "w", "--partition", "1", "--to", "0")
	mustContain(t, "reset one", r.stderr, "reset partition 1 of subscription w on topic jobs to offset:0")
	info := ok(t, s.url, "", "topic", "describe", "jobs", "-o", "json").stdout
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
	r = ok(t, s.url, "", "consume", "jobs", "--sub", "w", "--count", itoa(end1), "-v")
	for _, l := range lines(r.stdout) {
		if !strings.HasPrefix(l, "1/") {
			t.Errorf("delivered from another partition: %q", l)
		}
	}

	fails(t, exitError, s.url, "", "sub", "reset", "jobs", "w", "--partition", "9", "--to", "0")
	r = fails(t, exitError, s.url, "", "sub", "reset", "jobs", "w", "--partition", "1", "--to", "999")
	mustContain(t, "out of range", r.stderr, "offset_out_of_range")
	fails(t, exitUsage, s.url, "", "sub", "reset", "jobs", "w", "--partition", "-1", "--to", "0")
	fails(t, exitUsage, s.url, "", "sub", "reset", "jobs", "w")
	fails(t, exitNotFound, s.url, "", "sub", "purge", "jobs", "nope")
	fails(t, exitNotFound, s.url, "", "sub", "purge", "nope", "w")
	fails(t, exitError, s.url, "", "sub", "purge", "jobs", "w", "--partition", "2")
}

// A stream subscription halted by a failed message shows the halt, and a
// reset of the partition releases it.
func TestSubDescribeShowsHalt(t *testing.T) {
	s := startServerAt(t, t.TempDir())
	ok(t, s.url, "", "topic", "create", "orders")
	ok(t, s.url, "", "sub", "create", "orders", "ledger", "--on-failure", "stop")
	ok(t, s.url, seq("o", 3), "pub", "orders")
	r := ok(t, s.url, "", "sub", "describe", "orders", "ledger")
	mustContain(t, "describe", r.stdout, "on-failure:         stop", "HALTED")
	ok(t, s.url, "", "sub", "purge", "orders", "ledger")
	r = ok(t, s.url, "", "sub", "describe", "orders", "ledger", "-o", "json")
	var info subInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Partitions[0].CommittedOffset != 3 || info.Partitions[0].Halted != nil {
		t.Errorf("after purge: %+v", info.Partitions[0])
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
