package users

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// FuzzApplyChange applies arbitrary bytes as a change of the auth space,
// as the metadata group would (Space.Decide, the broker's apply path, on a
// real state store), with the store's users and keys carried from input
// to input (DESIGN.md, "Fuzzing and the bad-input set"). Never a panic; a
// refusal is an errs error with a code; after each change the store
// holds exactly what its records hold (loaded again, as a restart or a
// restored snapshot would), and every user's credentials are usable.
func FuzzApplyChange(f *testing.F) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := f.TempDir()
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: dir, State: st, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close(); st.Close() })
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := New(Config{Space: b.Space("auth"), Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.AddUser("alice", "alice-secret"); err != nil {
		f.Fatal(err)
	}
	_, k, err := s.NewKey("alice", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	alice := *s.users["alice"]
	bob := alice
	bob.Name = "bob"
	key := *s.keys[k.ID]
	key2 := key
	key2.ID = "0123456789abcdef"
	for _, c := range []change{
		{Op: opAddUser, User: &bob},
		{Op: opAddUser, User: &alice},
		{Op: opDeleteUser, Name: "bob"},
		{Op: opAddKey, Key: &key2, Time: now},
		{Op: opAddKey, Key: &key2, RevokeOthers: true, Time: now},
		{Op: opRevokeKey, Name: key.ID, Time: now},
		{Op: "rename-user", Name: "alice"},
	} {
		data, err := json.Marshal(&c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"op":"add-user","user":{"name":"carol","created":"2026-01-01T00:00:00Z","scram":{"SCRAM-SHA-256":{"salt":"AAAA","iterations":0,"stored_key":null,"server_key":null}}}}`))
	sp := b.Space("auth")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := sp.Decide(data); err != nil && errs.CodeOf(err) == errs.Internal {
			t.Fatalf("%q refused without a code: %v", data, err)
		}
		s.mu.RLock()
		us, ks := maps.Clone(s.users), maps.Clone(s.keys)
		s.mu.RUnlock()
		if err := s.reload(); err != nil {
			t.Fatalf("after %q the records do not load: %v", data, err)
		}
		s.mu.RLock()
		defer s.mu.RUnlock()
		if !reflect.DeepEqual(us, s.users) || !reflect.DeepEqual(ks, s.keys) {
			t.Fatalf("after %q the store holds\n%+v %+v\nand its records\n%+v %+v", data, us, ks, s.users, s.keys)
		}
		for name, u := range s.users {
			if CheckName(name) != nil || u.Name != name {
				t.Fatalf("after %q: user %q named %q", data, name, u.Name)
			}
			for mech, c := range u.Scram {
				if (mech != ScramSHA256 && mech != ScramSHA512) || c.Iterations < 1 || c.Iterations > MaxIterations ||
					len(c.Salt) == 0 || len(c.StoredKey) != hashSize(mech) || len(c.ServerKey) != hashSize(mech) {
					t.Fatalf("after %q: user %q has an unusable %s credential %+v", data, name, mech, c)
				}
			}
		}
		for id, k := range s.keys {
			if k.ID != id || s.users[k.User] == nil {
				t.Fatalf("after %q: key %q %+v", data, id, k)
			}
		}
	})
}
