package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// An online backup taken while producers publish holds every message
// acknowledged before it started, the committed offsets and the
// subscriptions; a server started on it serves them and takes new writes.
func TestOnlineBackupRestore(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cfg := Config{DataDir: filepath.Join(root, "data"), HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0",
		SchemaRegistryAddr: "-", Logger: quiet}
	cfg.Storage.SegmentBytes = 256 << 10 // sealed segments, linked into the copy
	cfg.Storage.MaxBatchBytes = 64 << 10
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DefaultProduceTopic("orders"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	adm := kadm.NewClient(kc)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	subs := spoolv1connect.NewSubscriptionServiceClient(h2c(), "http://"+srv.HTTPAddr())
	if _, err := subs.CreateSubscription(ctx, connect.NewRequest(&spoolv1.CreateSubscriptionRequest{Topic: "orders", Name: "billing"})); err != nil {
		t.Fatal(err)
	}

	// Publishers: each value is recorded once acknowledged.
	var (
		mu    sync.Mutex
		acked []string
		stop  atomic.Bool
		seq   atomic.Int64
		wg    sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				var rs []*kgo.Record
				for range 20 {
					rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint(seq.Load() % 7)), Value: fmt.Appendf(nil, "m-%d-%s", seq.Add(1), bytes.Repeat([]byte("x"), 200))})
				}
				res := kc.ProduceSync(ctx, rs...)
				if err := res.FirstErr(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range res {
					acked = append(acked, string(r.Record.Value))
				}
				mu.Unlock()
			}
		})
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20000 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Commit offsets for the subscription (a Kafka group of its name).
	ends, err := adm.ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	commit := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) { commit.AddOffset("orders", o.Partition, o.Offset/2, -1) })
	if err := adm.CommitAllOffsets(ctx, "billing", commit); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	body, _ := json.Marshal(map[string]string{"dir": filepath.Join(root, "backup")})
	resp, err := http.Post("http://"+srv.HTTPAddr()+"/spool/admin/backup", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("backup: %s %v", resp.Status, out)
	}
	time.Sleep(50 * time.Millisecond) // publishing goes on after the backup too
	stop.Store(true)
	wg.Wait()
	t.Logf("backup of %d acknowledged messages: %v", len(before), out)
	if out["linked_segments"].(float64) == 0 {
		t.Fatalf("no sealed segment linked: %v", out)
	}

	// A second backup into the same directory is refused.
	resp, err = http.Post("http://"+srv.HTTPAddr()+"/spool/admin/backup", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("backup into a non-empty directory: %s", resp.Status)
	}

	// Restore: a server on the copy, the original still running.
	rs, err := New(Config{DataDir: filepath.Join(root, "backup"), HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0",
		SchemaRegistryAddr: "-", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	defer rs.Shutdown(ctx)
	rc, err := kgo.NewClient(kgo.SeedBrokers(rs.KafkaAddr()), kgo.DefaultProduceTopic("orders"),
		kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	radm := kadm.NewClient(rc)
	rends, err := radm.ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	total := int64(0)
	rends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset; total += o.Offset })
	seen := map[string]bool{}
	got := map[int32]int64{}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for n := int64(0); n < total; {
		fs := rc.PollFetches(cctx)
		if err := cctx.Err(); err != nil {
			t.Fatalf("read %d of %d records of the restored topic", n, total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)] = true
			got[r.Partition] = r.Offset + 1
			n++
		})
	}
	for _, v := range before {
		if !seen[v] {
			t.Fatalf("message %.12s… acknowledged before the backup is missing from it", v)
		}
	}
	fetched, err := radm.FetchOffsets(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	for p, o := range commit["orders"] {
		if r, ok := fetched.Lookup("orders", p); !ok || r.At != o.At {
			t.Errorf("committed offset of partition %d: %+v, want %d", p, r, o.At)
		}
	}
	rsubs := spoolv1connect.NewSubscriptionServiceClient(h2c(), "http://"+rs.HTTPAddr())
	list, err := rsubs.ListSubscriptions(ctx, connect.NewRequest(&spoolv1.ListSubscriptionsRequest{Topic: "orders"}))
	if err != nil || len(list.Msg.Subscriptions) != 1 || list.Msg.Subscriptions[0].Name != "billing" {
		t.Fatalf("restored subscriptions: %v %v", list, err)
	}
	if err := rc.ProduceSync(ctx, &kgo.Record{Value: []byte("after restore")}).FirstErr(); err != nil {
		t.Fatalf("publish to the restored server: %v", err)
	}
}

// With authorization on a backup needs admin on the cluster: a user
// without a rule is refused, a super user is not; anonymous requests need
// a principal first.
func TestBackupAuthorization(t *testing.T) {
	srv := startAuth(t, AuthConfig{Enabled: true, Authorization: true, SuperUsers: []string{"root"}}, TLSConfig{})
	if err := srv.users.AddUser("root", "root-secret"); err != nil {
		t.Fatal(err)
	}
	alice, _, err := srv.users.NewKey("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	root, _, err := srv.users.NewKey("root", 0)
	if err != nil {
		t.Fatal(err)
	}
	backup := func(key, dir string) (int, string) {
		body, _ := json.Marshal(map[string]string{"dir": dir})
		req, _ := http.NewRequest(http.MethodPost, "http://"+srv.HTTPAddr()+"/spool/admin/backup", bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, fmt.Sprint(out)
	}
	dir := filepath.Join(t.TempDir(), "b")
	if code, out := backup("", dir); code != http.StatusUnauthorized {
		t.Errorf("anonymous: %d %s", code, out)
	}
	if code, out := backup(alice, dir); code != http.StatusForbidden {
		t.Errorf("alice: %d %s", code, out)
	}
	if code, out := backup(root, "relative"); code != http.StatusBadRequest {
		t.Errorf("relative dir: %d %s", code, out)
	}
	if code, out := backup(root, filepath.Join(srv.DataDir(), "x")); code != http.StatusBadRequest {
		t.Errorf("dir in the data directory: %d %s", code, out)
	}
	if code, out := backup(root, dir); code != http.StatusOK {
		t.Errorf("root: %d %s", code, out)
	}
}

// A cluster node refuses an online backup: its partitions are raft logs.
func TestBackupRefusedOnCluster(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv, err := New(Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", KafkaAddr: "-", SchemaRegistryAddr: "-", Logger: quiet,
		Cluster: ClusterConfig{NodeID: 1, Peers: "1=" + addr}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	body, _ := json.Marshal(map[string]string{"dir": filepath.Join(t.TempDir(), "b")})
	resp, err := http.Post("http://"+srv.HTTPAddr()+"/spool/admin/backup", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Code, Message string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusNotImplemented || out.Code != "unsupported" || !strings.Contains(out.Message, "cluster") {
		t.Fatalf("backup on a cluster node: %s %+v", resp.Status, out)
	}
}
