package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSubCreateQueue(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "jobs", "--partitions", "2")
	r := ok(t, srv, "", "sub", "create", "jobs", "workers", "--mode", "queue", "--ack-timeout", "45s", "--max-deliveries", "7",
		"--backoff-initial", "2s", "--backoff-max", "90s", "--backoff-multiplier", "3", "--backoff-jitter", "equal",
		"--ordering", "key", "--dlq", "failed-jobs", "--on-expired", "drop", "--max-in-flight", "20",
		"--rate-limit", "12.5", "--rate-burst", "4")
	mustContain(t, "stderr", r.stderr, "created subscription workers on topic jobs (queue, start earliest, dead letters to failed-jobs)")
	ok(t, srv, "", "sub", "create", "jobs", "fixed", "--mode", "queue", "--backoff-delays", "1s,10s,1m")

	r = ok(t, srv, "", "sub", "describe", "jobs", "workers")
	mustContain(t, "describe", r.stdout, "Mode:           queue", "Dead-lettered:  0", "Dropped:        0",
		"ack-timeout:        45s", "max-deliveries:     7", "backoff:            2s..1m30s x3, jitter equal",
		"ordering:           key", "dead-letter-topic:  failed-jobs", "on-expired:         drop", "max-in-flight:      20",
		"rate-limit:         12.5/s, burst 4",
		"PARTITION  ACK-FLOOR  END  LAG  READY  WAITING  BLOCKED  IN-FLIGHT  LIMITED  PARKED  OLDEST-UNCONSUMED")
	if strings.Contains(r.stdout, "Generation:") {
		t.Errorf("queue describe shows a generation:\n%s", r.stdout)
	}
	r = ok(t, srv, "", "sub", "describe", "jobs", "fixed")
	mustContain(t, "describe", r.stdout, "backoff:            1s,10s,1m0s (the last one repeating)")

	r = ok(t, srv, "", "sub", "describe", "jobs", "workers", "-o", "json")
	var info subInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatal(err)
	}
	q := info.Queue
	if q == nil || q.AckTimeout != "45s" || q.MaxDeliveries != 7 || q.Backoff.Multiplier != 3 || q.Backoff.Jitter != "equal" ||
		q.Ordering != "key" || q.DeadLetterTopic != "failed-jobs" || q.OnExpired != "drop" || q.RateLimit != 12.5 || q.RateBurst != 4 {
		t.Errorf("queue config %+v", q)
	}
	if info.Dropped == nil || len(info.Partitions) != 2 || info.Partitions[0].Queue == nil {
		t.Errorf("queue describe json: %s", r.stdout)
	}
	r = ok(t, srv, "", "sub", "describe", "jobs", "fixed", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || strings.Join(info.Queue.Backoff.Delays, ",") != "1s,10s,1m0s" {
		t.Errorf("delays: %v %+v", err, info.Queue)
	}

	// Stream subscriptions have no queue state, but a failure policy.
	ok(t, srv, "", "sub", "create", "jobs", "audit", "--on-failure", "stop", "--max-deliveries", "9", "--dlq", "audit-failed")
	r = ok(t, srv, "", "sub", "describe", "jobs", "audit", "-o", "json")
	if strings.Contains(r.stdout, `"queue"`) || strings.Contains(r.stdout, `"dropped"`) {
		t.Errorf("stream describe json has queue fields: %s", r.stdout)
	}
	info = subInfoJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatal(err)
	}
	if f := info.Failure; f == nil || f.OnFailure != "stop" || f.MaxDeliveries != 9 || f.DeadLetterTopic != "audit-failed" {
		t.Errorf("stream failure policy %+v", f)
	}

	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--ack-timeout", "1s")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "stream", "--rate-limit", "3")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--on-failure", "stop")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--on-failure", "skip")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--ack-timeout", "-1s")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--max-deliveries", "-1")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--backoff-jitter", "some")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--backoff-delays", "1s,soon")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--backoff-delays", "1s,-1s")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--backoff-multiplier", "0.5")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--rate-limit", "-3")
	fails(t, exitUsage, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--ordering", "fifo")
	fails(t, exitError, srv, "", "sub", "create", "jobs", "x", "--mode", "queue", "--backoff-initial", "1m", "--backoff-max", "1s")
}

func TestQueueConsumeDeadLetterAndRedrive(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "jobs")
	ok(t, srv, "", "sub", "create", "jobs", "workers", "--mode", "queue", "--max-deliveries", "2",
		"--backoff-initial", "10ms", "--backoff-max", "20ms", "--backoff-jitter", "none", "--ack-timeout", "5s")
	ok(t, srv, "", "sub", "create", "jobs", "audit")
	ok(t, srv, "job 0\njob 1\njob 2\n", "pub", "jobs", "--key", "k")

	r := ok(t, srv, "", "consume", "jobs", "--sub", "workers", "--count", "1", "-v")
	if r.stdout != "0/0 key=k delivery=1 job 0\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	mustContain(t, "stderr", r.stderr, "consumed 1 message from jobs/workers")

	// Two deliveries of each remaining job, nacked: both are dead-lettered.
	r = ok(t, srv, "", "consume", "jobs", "--sub", "workers", "--count", "4", "--nack", "-v")
	got := lines(r.stdout)
	if len(got) != 4 || strings.Count(r.stdout, "delivery=1") != 2 || strings.Count(r.stdout, "delivery=2") != 2 ||
		strings.Contains(r.stdout, "job 0") {
		t.Errorf("nacked deliveries: %q", r.stdout)
	}
	mustContain(t, "stderr", r.stderr, "nacked 4 messages from jobs/workers")
	if strings.Contains(r.stderr, "level=WARN") {
		t.Errorf("warnings for --nack: %s", r.stderr)
	}

	var deadCount int
	deadline := time.Now().Add(10 * time.Second)
	for deadCount < 2 && time.Now().Before(deadline) {
		r = ok(t, srv, "", "dlq", "list", "jobs", "workers", "-o", "json")
		var page deadLettersJSON
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil {
			t.Fatal(err)
		}
		deadCount = len(page.DeadLetters)
		if deadCount == 2 {
			for i, d := range page.DeadLetters {
				if d.Reason != "max-deliveries" || d.Deliveries != 2 || d.Error != "nacked by spool consume --nack" ||
					d.OriginPartition != 0 || d.Redriven || d.Offset != int64(i) || page.NextOffset != 2 {
					t.Errorf("dead letter %d: %+v (next %d)", i, d, page.NextOffset)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if deadCount != 2 {
		t.Fatalf("%d dead letters", deadCount)
	}
	r = ok(t, srv, "", "dlq", "list", "jobs", "workers")
	mustContain(t, "dlq list", r.stdout, "OFFSET  ORIGIN  REASON          DELIVERIES  ERROR", "0/1     max-deliveries  2",
		"nacked by spool consume --nack", "job 1", "job 2")
	r = ok(t, srv, "", "dlq", "list", "jobs", "workers", "--limit", "1")
	if len(lines(r.stdout)) != 2 {
		t.Errorf("--limit 1: %q", r.stdout)
	}
	mustContain(t, "stderr", r.stderr, "more may follow: spool dlq list jobs workers --from 1")

	r = ok(t, srv, "", "dlq", "peek", "jobs", "workers", "1")
	var peek deadLetterJSON
	if err := json.Unmarshal([]byte(r.stdout), &peek); err != nil {
		t.Fatal(err)
	}
	if peek.Offset != 1 || peek.Value != "job 2" || peek.Key == nil || *peek.Key != "k" || peek.OriginOffset != 2 ||
		peek.Reason != "max-deliveries" || len(peek.Headers) == 0 {
		t.Errorf("peek: %s", r.stdout)
	}
	r = fails(t, exitNotFound, srv, "", "dlq", "peek", "jobs", "workers", "7")
	mustContain(t, "stderr", r.stderr, `spool: no dead letter at offset 7 of subscription "workers" on topic "jobs"`)
	fails(t, exitUsage, srv, "", "dlq", "peek", "jobs", "workers", "x")

	// Redrive: a dry run, one, then the rest; the subscription gets them back.
	r = ok(t, srv, "", "dlq", "redrive", "jobs", "workers", "--dry-run", "-o", "json")
	var rep redriveJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Moved != 2 || !rep.DryRun || len(rep.Offsets) != 2 {
		t.Errorf("dry run: %s %v", r.stdout, err)
	}
	mustContain(t, "stderr", r.stderr, "would redrive 2 dead letters of subscription workers on topic jobs to the subscription")
	r = ok(t, srv, "", "dlq", "redrive", "jobs", "workers", "--reason", "rejected")
	mustContain(t, "redrive", r.stdout, "MOVED  SKIPPED  ALREADY\n0      2        0")
	r = ok(t, srv, "", "dlq", "redrive", "jobs", "workers", "--limit", "1", "--rate", "100")
	mustContain(t, "redrive", r.stdout, "1      0        0")
	r = ok(t, srv, "", "dlq", "redrive", "jobs", "workers")
	mustContain(t, "redrive", r.stdout, "1      0        1")
	mustContain(t, "stderr", r.stderr, "redrove 1 dead letter of subscription workers")
	r = ok(t, srv, "", "consume", "jobs", "--sub", "workers", "--count", "2", "-o", "json")
	var msgs []messageJSON
	for _, l := range lines(r.stdout) {
		var m messageJSON
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 2 || msgs[0].Value != "job 1" || msgs[1].Value != "job 2" || msgs[0].DeliveryCount != 1 || msgs[0].FirstDeliveredAt == "" {
		t.Errorf("redriven: %s", r.stdout)
	}
	r = ok(t, srv, "", "dlq", "list", "jobs", "workers")
	if strings.Count(r.stdout, " yes ") != 2 {
		t.Errorf("redriven flags: %s", r.stdout)
	}

	// Reject dead-letters at once.
	ok(t, srv, "", "pub", "jobs", "malformed")
	r = ok(t, srv, "", "consume", "jobs", "--sub", "workers", "--count", "1", "--reject")
	mustContain(t, "stderr", r.stderr, "rejected 1 message from jobs/workers")
	deadline = time.Now().Add(10 * time.Second)
	for {
		r = spool(t, srv, "", "dlq", "peek", "jobs", "workers", "2")
		if r.code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustContain(t, "peek", r.stdout, `"reason": "rejected"`, `"deliveries": 1`, `"error": "rejected by spool consume --reject"`, `"value": "malformed"`)

	deadline = time.Now().Add(10 * time.Second)
	for { // the count follows the dead-letter write
		r = ok(t, srv, "", "sub", "describe", "jobs", "workers")
		if strings.Contains(r.stdout, "Dead-lettered:  3") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustContain(t, "describe", r.stdout, "Dead-lettered:  3", "Lag:            0")

	// The stream subscription saw each message once: redriven copies are
	// for the queue subscription only.
	r = ok(t, srv, "", "consume", "jobs", "--sub", "audit", "--timeout", "500ms")
	if r.stdout != "job 0\njob 1\njob 2\nmalformed\n" {
		t.Errorf("audit: %q", r.stdout)
	}

	fails(t, exitUsage, srv, "", "consume", "jobs", "--sub", "audit", "--nack")
	fails(t, exitUsage, srv, "", "consume", "jobs", "--sub", "workers", "--nack", "--reject")
	// A stream subscription that never dead-lettered lists nothing.
	if r := ok(t, srv, "", "dlq", "list", "jobs", "audit", "-o", "json"); !strings.Contains(r.stdout, `"dead_letters": []`) {
		t.Errorf("dlq list of a stream subscription: %q", r.stdout)
	}
	fails(t, exitNotFound, srv, "", "dlq", "list", "jobs", "nope")
	fails(t, exitNotFound, srv, "", "dlq", "redrive", "nope", "workers")
	fails(t, exitUsage, srv, "", "dlq", "list", "jobs", "workers", "--limit", "0")
	fails(t, exitUsage, srv, "", "dlq", "redrive", "jobs", "workers", "--to", "everyone")
	fails(t, exitUsage, srv, "", "dlq", "redrive", "jobs", "workers", "--reason", "bored")
	fails(t, exitUsage, srv, "", "dlq", "lst")
}

func TestPreview(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "-",
		"job 1":                   "job 1",
		"tab\there":               `"tab\there"`,
		"\xff\xfe":                `"\xff\xfe"`,
		strings.Repeat("é", 45):   strings.Repeat("é", 40) + "…",
		strings.Repeat("a\n", 30): `"` + strings.Repeat(`a\n`, 20) + `"…`,
	} {
		if got := preview(in); got != want {
			t.Errorf("preview(%q) = %q, want %q", in, got, want)
		}
	}
}
