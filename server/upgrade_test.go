package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/state"
)

// A data directory holding a record of a version newer than this build
// reads (written by a later release, then the binary rolled back) stops
// the server at start with an error naming the record and both versions;
// nothing is opened over it, and the record is left as it was.
func TestStartRefusesFutureRecordVersion(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", KafkaAddr: "-", SchemaRegistryAddr: "-", Logger: quiet}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	topics := spoolv1connect.NewTopicServiceClient(h2c(), "http://"+srv.HTTPAddr())
	if _, err := topics.CreateTopic(context.Background(), connect.NewRequest(&spoolv1.CreateTopicRequest{Name: "orders"})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.Get([]byte("t/orders"))
	if err != nil {
		t.Fatal(err)
	}
	v[0] = 99 // a version this build does not know
	b := st.NewBatch()
	b.Set([]byte("t/orders"), v)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	st.Close()

	srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start()
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("a server started over a record of a future version")
	}
	t.Log(err)
	for _, want := range []string{`"t/orders"`, "unknown future version 99", "reads up to version"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("start error %q does not say %q", err, want)
		}
	}
	st, err = state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, _ := st.Get([]byte("t/orders")); got[0] != 99 {
		t.Fatal("the refused record was changed")
	}
}
