package users

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

type env struct {
	dir string
	st  *state.Store
	b   *broker.Broker
	s   *Store

	mu  sync.Mutex
	now time.Time
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func newEnv(t *testing.T) *env {
	e := &env{dir: t.TempDir(), now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.open(t)
	t.Cleanup(e.close)
	return e
}

func (e *env) open(t *testing.T) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.Open(filepath.Join(e.dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: e.dir, State: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Space: b.Space("auth"), Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.st, e.b, e.s = st, b, s
}

func (e *env) close() {
	if e.b == nil {
		return
	}
	e.b.Close()
	e.st.Close()
	e.b, e.st = nil, nil
}

func (e *env) restart(t *testing.T) {
	e.close()
	e.open(t)
}

func TestUsersAndKeys(t *testing.T) {
	e := newEnv(t)
	if !e.s.Empty() {
		t.Fatal("new store not empty")
	}
	if err := e.s.AddUser("alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.AddUser("alice", "another one"); !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v", err)
	}
	for _, bad := range []string{"", "a b", "a,b", "a=b", strings.Repeat("x", 129)} {
		if err := e.s.AddUser(bad, "correct horse"); !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if err := e.s.AddUser("bob", "short"); !errs.Is(err, errs.InvalidArgument) {
		t.Errorf("short password: %v", err)
	}
	if !e.s.CheckPassword("alice", "correct horse") || e.s.CheckPassword("alice", "wrong horse") || e.s.CheckPassword("nobody", "correct horse") {
		t.Fatal("CheckPassword")
	}

	tok, k, err := e.s.NewKey("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, TokenPrefix+k.ID+"_") || k.Expires != k.Created.Add(time.Hour) {
		t.Fatalf("token %q key %+v", tok[:len(TokenPrefix)+len(k.ID)], k)
	}
	if u, err := e.s.Authenticate(tok); err != nil || u != "alice" {
		t.Fatalf("Authenticate: %q %v", u, err)
	}
	if _, _, err := e.s.NewKey("nobody", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key of unknown user: %v", err)
	}
	for _, bad := range []string{"", "Bearer x", tok + "x", TokenPrefix + k.ID + "_AAAA", TokenPrefix + "0123456789abcdef_x"} {
		if _, err := e.s.Authenticate(bad); !errs.Is(err, errs.Unauthenticated) {
			t.Errorf("Authenticate(%q): %v", bad, err)
		}
	}

	// The listing carries no secret: no hash, salt, keys or token.
	data, _ := json.Marshal(e.s.Users())
	for _, secret := range []string{"hash", "salt", "stored_key", "server_key", tok} {
		if strings.Contains(string(data), secret) {
			t.Errorf("listing holds %q: %s", secret, data)
		}
	}
	us := e.s.Users()
	if len(us) != 1 || us[0].Name != "alice" || len(us[0].Keys) != 1 || strings.Join(us[0].Mechanisms, ",") != "SCRAM-SHA-256,SCRAM-SHA-512" {
		t.Fatalf("Users: %+v", us)
	}

	// Expiry.
	tok2, _, err := e.s.NewKey("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	e.advance(time.Hour)
	if _, err := e.s.Authenticate(tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired key: %v", err)
	}
	if _, err := e.s.Authenticate(tok2); err != nil {
		t.Fatalf("key without expiry: %v", err)
	}

	// Rotation: the new key works, every earlier one is revoked.
	tok3, k3, err := e.s.Rotate("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Authenticate(tok2); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("rotated key: %v", err)
	}
	if _, err := e.s.Authenticate(tok3); err != nil {
		t.Fatal(err)
	}
	if err := e.s.RevokeKey("0000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}

	// A restart keeps users and keys (and their state).
	e.restart(t)
	if _, err := e.s.Authenticate(tok3); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if _, err := e.s.Authenticate(tok2); err == nil {
		t.Fatal("revoked key authenticates after restart")
	}
	if !e.s.CheckPassword("alice", "correct horse") {
		t.Fatal("password after restart")
	}
	if err := e.s.RevokeKey(k3.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Authenticate(tok3); err == nil {
		t.Fatal("revoked key authenticates")
	}

	// Deleting a user deletes its keys.
	tok4, _, err := e.s.NewKey("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeleteUser("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := e.s.Authenticate(tok4); err == nil {
		t.Fatal("key of a deleted user authenticates")
	}
	e.restart(t)
	if !e.s.Empty() || e.s.CheckPassword("alice", "correct horse") {
		t.Fatal("deleted user back after restart")
	}
	n := 0
	if err := e.b.Space("auth").Scan(nil, func(_, _ []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("%d records left (%v)", n, err)
	}
}

// TestSCRAM runs both SCRAM mechanisms' conversations of xdg-go/scram's
// client against a server looking credentials up in the store.
func TestSCRAM(t *testing.T) {
	e := newEnv(t)
	if err := e.s.AddUser("carol", "s3cret-pass"); err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{ScramSHA256, ScramSHA512} {
		for _, pass := range []string{"s3cret-pass", "wrong-pass"} {
			gen := hashGen(mech)
			srv, err := gen.NewServer(func(name string) (scram.StoredCredentials, error) { return e.s.Credentials(mech, name) })
			if err != nil {
				t.Fatal(err)
			}
			cl, err := gen.NewClient("carol", pass, "")
			if err != nil {
				t.Fatal(err)
			}
			cc, sc := cl.NewConversation(), srv.NewConversation()
			var msg string
			for !cc.Done() {
				if msg, err = cc.Step(msg); err != nil || cc.Done() {
					break
				}
				if msg, err = sc.Step(msg); err != nil {
					break
				}
			}
			ok := err == nil && sc.Valid()
			if ok != (pass == "s3cret-pass") {
				t.Errorf("%s with %s: valid %v (%v)", mech, pass, ok, err)
			}
		}
	}
	cred, err := e.s.Credentials(ScramSHA256, "carol")
	if err != nil || cred.Iters < 4096 || len(cred.Salt) != SaltBytes {
		t.Fatalf("credential: iters %d salt %d %v", cred.Iters, len(cred.Salt), err)
	}
}
