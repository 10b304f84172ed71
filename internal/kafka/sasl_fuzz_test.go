package kafka

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/xdg-go/scram"

	"github.com/spoolmq/spool/internal/auth/users"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/state"
)

// FuzzSASL runs arbitrary SASL exchanges through the SaslHandshake and
// SaslAuthenticate handlers (DESIGN.md, "Fuzzing and the bad-input set"),
// against a real user store holding alice: PLAIN messages, and SCRAM
// client-first and client-final messages (in the final one, NONCE stands
// for the nonce the server chose, so that mutations reach the proof's
// check). A first message "client:<password>" runs a real SCRAM client
// with that password instead. Never a panic; every refusal is
// SASL_AUTHENTICATION_FAILED or ILLEGAL_SASL_STATE with a message, and
// closes the connection; the connection authenticates only as alice and
// only with her password.
func FuzzSASL(f *testing.F) {
	const password = "alice-secret"
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
	us, err := users.New(users.Config{Space: b.Space("auth")})
	if err != nil {
		f.Fatal(err)
	}
	if err := us.AddUser("alice", password); err != nil {
		f.Fatal(err)
	}
	s := New(nil, Config{Auth: us, RequireAuth: true, AllowPlainWithoutTLS: true, Logger: quiet})
	mechs := []string{mechPlain, mechSHA256, mechSHA512, "GSSAPI"}

	f.Add(uint8(0), []byte("\x00alice\x00"+password), []byte(nil))
	f.Add(uint8(0), []byte("alice\x00alice\x00"+password), []byte(nil))
	f.Add(uint8(0), []byte("bob\x00alice\x00"+password), []byte(nil))
	f.Add(uint8(0), []byte("\x00alice\x00wrong"), []byte(nil))
	f.Add(uint8(3), []byte("\x00alice\x00"+password), []byte(nil))
	for _, m := range []uint8{1, 2} {
		f.Add(m, []byte("client:"+password), []byte(nil))
		f.Add(m, []byte("client:wrong"), []byte(nil))
		f.Add(m, []byte("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"), []byte("c=biws,r=NONCE,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="))
		f.Add(m, []byte("n,a=alice,n=alice,r=abc"), []byte("c=biws,r=NONCE,p="))
		f.Add(m, []byte("y,,n=nobody,r=abc"), []byte("c=eSws,r=NONCE,p=AAAA"))
		f.Add(m, []byte("p=tls-unique,,n=alice,r=abc,e=x"), []byte("c=biws,r=NONCE,e=bad"))
	}
	f.Fuzz(func(t *testing.T, mech uint8, first, final []byte) {
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		c := newConn(s, server)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version = 1
		hs.Mechanism = mechs[int(mech)%len(mechs)]
		resp, err := s.saslHandshake(context.Background(), c, hs)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
			if hs.Mechanism != "GSSAPI" || code != kerr.UnsupportedSaslMechanism.Code {
				t.Fatalf("handshake %s: %v", hs.Mechanism, kerr.ErrorForCode(code))
			}
			return
		}
		var cc *scram.ClientConversation
		rightPassword := false
		if pw, ok := bytes.CutPrefix(first, []byte("client:")); ok && hs.Mechanism != mechPlain {
			gen := scram.SHA256
			if hs.Mechanism == mechSHA512 {
				gen = scram.SHA512
			}
			cl, err := gen.NewClient("alice", string(pw), "")
			if err != nil {
				return // a password SASLprep refuses
			}
			cc, rightPassword = cl.NewConversation(), string(pw) == password
			msg, err := cc.Step("")
			if err != nil {
				t.Fatal(err)
			}
			first = []byte(msg)
		}
		// step sends one SaslAuthenticate; ok: not refused.
		step := func(msg []byte) (out []byte, ok bool) {
			au := kmsg.NewPtrSASLAuthenticateRequest()
			au.Version = 2
			au.SASLAuthBytes = msg
			r, err := s.saslAuthenticate(context.Background(), c, au)
			if err != nil {
				t.Fatal(err)
			}
			ar := r.(*kmsg.SASLAuthenticateResponse)
			if ar.ErrorCode == 0 {
				return ar.SASLAuthBytes, true
			}
			if (ar.ErrorCode != kerr.SaslAuthenticationFailed.Code && ar.ErrorCode != kerr.IllegalSaslState.Code) ||
				ar.ErrorMessage == nil || *ar.ErrorMessage == "" || !c.closeAfterWrite || c.saslDone || c.principal != "" {
				t.Fatalf("refusal %v %v, close %v, done %v, principal %q", kerr.ErrorForCode(ar.ErrorCode), ar.ErrorMessage,
					c.closeAfterWrite, c.saslDone, c.principal)
			}
			return nil, false
		}
		serverFirst, ok := step(first)
		if ok && !c.saslDone {
			if cc != nil {
				msg, err := cc.Step(string(serverFirst))
				if err != nil {
					t.Fatalf("the client refused the server's first message %q: %v", serverFirst, err)
				}
				final = []byte(msg)
			} else if _, rest, found := strings.Cut(string(serverFirst), "r="); found {
				nonce, _, _ := strings.Cut(rest, ",")
				final = bytes.ReplaceAll(final, []byte("NONCE"), []byte(nonce))
			}
			serverFinal, ok := step(final)
			if ok && cc != nil {
				if _, err := cc.Step(string(serverFinal)); err != nil {
					t.Fatalf("the client refused the server's final message %q: %v", serverFinal, err)
				}
			}
		}
		if !c.saslDone {
			if rightPassword {
				t.Fatal("the right password was refused")
			}
			return
		}
		if c.principal != "alice" {
			t.Fatalf("authenticated as %q", c.principal)
		}
		if hs.Mechanism == mechPlain && !bytes.HasSuffix(first, []byte("\x00"+password)) {
			t.Fatalf("PLAIN %q authenticated", first)
		}
		if cc != nil && (!rightPassword || !cc.Valid()) {
			t.Fatalf("authenticated with the right password %v; the client verified the server: %v", rightPassword, cc.Valid())
		}
	})
}
