//go:build linux

package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/serverhook"
)

// smallFS mounts a tmpfs of size bytes for the test and unmounts it at
// the end; it skips the test where it cannot (not root, no mount).
func smallFS(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for the data directory (CI runs scripts/test.sh as root)")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a %d-byte tmpfs at %s (%v): the disk-full test needs one", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// A data directory on a 96 MiB file system (40 MiB of it taken by a
// filler file) with storage.min-free-bytes at 24 MiB: publishing is refused with the retriable disk_full before
// the file system is full (never a storage error), everything
// acknowledged is readable, /readyz and the metrics say why, writing
// resumes by itself once space is freed (the filler deleted), and a
// restart finds every acknowledged message. The state store's WAL takes
// its space in preallocated chunks of about 18 MiB (Pebble: 1.1 × its
// 16 MiB memtable), at moments of its own: the file system leaves room
// for one beside the watermark.
func TestDiskFullOnSmallFileSystem(t *testing.T) {
	fs := smallFS(t, 96<<20)
	filler := filepath.Join(fs, "filler")
	if err := os.WriteFile(filler, make([]byte, 40<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(fs, "data")
	cfg := Config{DataDir: dataDir, HTTPAddr: "127.0.0.1:0", KafkaAddr: "-", Logger: quiet,
		Storage: StorageConfig{MinFreeBytes: 24 << 20}}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(context.Background()) }()
	b := serverhook.Broker(srv)
	base := "http://" + srv.HTTPAddr()
	ctx := context.Background()
	hc := h2c()
	topics := spoolv1connect.NewTopicServiceClient(hc, base)
	pub := spoolv1connect.NewPublishServiceClient(hc, base)
	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&spoolv1.CreateTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{Partitions: 1}})); err != nil {
		t.Fatal(err)
	}

	// Publish 64 KiB messages until refused.
	acked := map[int64][]byte{}
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 64<<10) }
	publish := func(i int) (*spoolv1.PublishResponse, error) {
		resp, err := pub.Publish(ctx, connect.NewRequest(&spoolv1.PublishRequest{Topic: "t",
			Messages: []*spoolv1.Message{{Value: value(i)}}}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	var refusal error
	i := 0
	for ; i < 1000; i++ {
		resp, err := publish(i)
		if err != nil {
			refusal = err
			break
		}
		acked[resp.Results[0].Offset] = value(i)
	}
	var ce *connect.Error
	if !errors.As(refusal, &ce) || ce.Code() != connect.CodeResourceExhausted {
		t.Fatalf("after %d messages: want resource_exhausted, got %v", i, refusal)
	}
	info := errorInfoOf(ce)
	if info == nil || info.Code != string(errs.DiskFull) || !info.Retriable || info.RetryAfter.AsDuration() != broker.DiskFullRetryAfter {
		t.Fatalf("refusal detail %+v", info)
	}
	if len(acked) < 50 {
		t.Fatalf("only %d messages accepted before the refusal: the watermark refused too early", len(acked))
	}
	t.Logf("%d messages of 64 KiB accepted, then %v", len(acked), refusal)
	if names, err := b.FailedLogs(5); err != nil {
		t.Fatalf("a log failed (%v: %v): the gate let the disk fill", names, err)
	}
	// Writes are refused until the next sample shows the space back: a
	// few more attempts stay refused, never a storage error.
	for range 5 {
		if _, err := publish(i); !errs.Is(asErrs(err), errs.DiskFull) {
			t.Fatalf("again: want disk_full, got %v", err)
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(fs, &st); err != nil || int64(st.Bavail)*st.Bsize < 8<<20 {
		t.Fatalf("free space %d (%v): the gate should stop well above a full disk", int64(st.Bavail)*st.Bsize, err)
	}
	waitUntil(t, 3*time.Second, "the gate to report disk full", func() bool { return b.Disk().Full })
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "disk") {
		t.Fatalf("/readyz %d %q", code, body)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, `spool_publish_rejected_total{reason="disk_full",topic="t"}`) {
		t.Fatal("/metrics has no disk_full refusals")
	}

	// Free space: publishing resumes by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "publishing to resume", func() bool {
		resp, err := publish(i)
		if err != nil {
			if !errs.Is(asErrs(err), errs.DiskFull) {
				t.Fatalf("while waiting for space: %v", err)
			}
			return false
		}
		acked[resp.Results[0].Offset] = value(i)
		return true
	})
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after space returned: %d %q", code, body)
	}
	checkAcked(t, b, acked)

	// A restart on the same directory finds every acknowledged message.
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, serverhook.Broker(srv), acked)
}

// asErrs turns a Connect error's detail back into an *errs.Error.
func asErrs(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	if info := errorInfoOf(ce); info != nil {
		return errs.New(errs.Code(info.Code), "%s", ce.Message())
	}
	return err
}

// checkAcked reads partition 0 of topic t and checks that it holds
// exactly the acknowledged values at their offsets.
func checkAcked(t *testing.T, b *broker.Broker, acked map[int64][]byte) {
	t.Helper()
	got := map[int64][]byte{}
	for off := int64(0); ; {
		r, err := b.ReadRaw("t", 0, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 0 {
			break
		}
		for bt, err := range batch.Batches(r.Data) {
			if err != nil {
				t.Fatal(err)
			}
			for rec, err := range bt.Records(64 << 20) {
				if err != nil {
					t.Fatal(err)
				}
				if o := bt.RecordOffset(rec); o >= off {
					got[o] = append([]byte(nil), rec.Value...)
				}
			}
			off = bt.BaseOffset + int64(bt.LastOffsetDelta) + 1
		}
	}
	if len(got) != len(acked) {
		t.Fatalf("the log holds %d messages, %d were acknowledged", len(got), len(acked))
	}
	for o, v := range acked {
		if !bytes.Equal(got[o], v) {
			t.Fatalf("offset %d: %d bytes, not the acknowledged value", o, len(got[o]))
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
