package kafka_test

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// closedNow reports whether the server closed the connection (EOF or a
// reset) within a few seconds; a timeout is not a close.
func (r *rawConn) closedNow() bool {
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err := r.nc.Read(b[:])
	if err == io.EOF {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil && strings.Contains(err.Error(), "reset")
}

// The bad-input set before authentication (DESIGN.md, "Fuzzing and the
// bad-input set"): with auth.enabled, a connection that sends anything but
// ApiVersions, SaslHandshake and SaslAuthenticate before authenticating
// is closed without an answer and without reading the request's body,
// and the allowed requests are bounded to small frames.
func TestBadInputBeforeAuthentication(t *testing.T) {
	// alice is added before authentication is enabled (the native API
	// then needs no key).
	dir := t.TempDir()
	first := spooltest.StartServer(t, spooltest.Dir(dir))
	resp, err := http.Post(first.URL()+"/spool/auth/users", "application/json", strings.NewReader(`{"name":"alice","password":"alice-secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("add alice: %s", resp.Status)
	}
	first.Stop()
	srv := spooltest.StartServer(t, spooltest.Dir(dir), spooltest.Config(func(c *server.Config) { c.Auth = server.AuthConfig{Enabled: true} })).Server()
	addr := srv.KafkaAddr()

	// closes: the connection must be closed, the case having allocated
	// under budget bytes.
	closes := func(name string, f []byte, budget uint64) {
		t.Run(name, func(t *testing.T) {
			var closed bool
			grew := heapGrowth(func() {
				c := dialRaw(t, addr)
				c.send(f)
				closed = c.closedNow()
			})
			if !closed {
				t.Fatal("connection not closed")
			}
			t.Logf("%d-byte frame: %d bytes allocated", len(f), grew)
			if grew > budget {
				t.Fatalf("heap grew by %d bytes for a %d-byte frame", grew, len(f))
			}
		})
	}

	// Every API but the three allowed, at its highest version, well formed.
	produce := kmsg.NewPtrProduceRequest()
	produce.Version = 9
	produce.Acks = -1
	produce.TimeoutMillis = 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "t"
	pt.Partitions = append(pt.Partitions, kmsg.NewProduceRequestTopicPartition())
	produce.Topics = append(produce.Topics, pt)
	frames := map[string][]byte{"Produce": reqFrame(produce)}
	for _, key := range []int16{1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 32, 33, 37, 42, 44, 47, 60, 76, 78} {
		req := kmsg.RequestForKey(key)
		req.SetVersion(req.MaxVersion())
		frames[kmsg.NameForKey(key)] = reqFrame(req)
	}
	for name, f := range frames {
		closes(name+" before SASL", f, badInputBudget)
	}
	// A frame declaring 16 MiB (the Produce bound) and one declaring
	// 1 MiB (the bound of others), whose bodies never come: refused on
	// their API key, before the body is allocated.
	big := func(n uint32, key, version int16) []byte {
		f := binary.BigEndian.AppendUint32(nil, n)
		f = binary.BigEndian.AppendUint16(f, uint16(key))
		f = binary.BigEndian.AppendUint16(f, uint16(version))
		return binary.BigEndian.AppendUint32(f, 1)
	}
	const small = 512 << 10 // well under either frame
	closes("Produce frame of 16 MiB before SASL", big(16<<20, 0, 9), small)
	closes("Metadata frame of 1 MiB before SASL", big(1<<20, 3, 12), small)
	// The allowed APIs are bounded to 64 KiB before authentication.
	closes("SaslAuthenticate frame of 1 MiB", big(1<<20, 36, 2), small)
	closes("SaslHandshake frame of 1 MiB", big(1<<20, 17, 1), small)
	closes("ApiVersions frame of 1 MiB", big(1<<20, 18, 3), small)

	t.Run("ApiVersions answered, then Metadata closes", func(t *testing.T) {
		c := dialRaw(t, addr)
		av := kmsg.NewPtrApiVersionsRequest()
		av.Version = 3
		av.ClientSoftwareName, av.ClientSoftwareVersion = "raw", "1"
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 3
		if !c.roundTrip(reqFrame(av), resp) || resp.ErrorCode != 0 {
			t.Fatalf("ApiVersions not answered: %+v", resp)
		}
		md := kmsg.NewPtrMetadataRequest()
		md.Version = 12
		c.send(reqFrame(md))
		if !c.closedNow() {
			t.Fatal("Metadata before SASL answered")
		}
	})
	t.Run("SCRAM garbage fails and closes", func(t *testing.T) {
		c := dialRaw(t, addr)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version = 1
		hs.Mechanism = "SCRAM-SHA-256"
		hresp := kmsg.NewPtrSASLHandshakeResponse()
		hresp.Version = 1
		if !c.roundTrip(reqFrame(hs), hresp) || hresp.ErrorCode != 0 {
			t.Fatalf("SaslHandshake: %+v", hresp)
		}
		au := kmsg.NewPtrSASLAuthenticateRequest()
		au.Version = 2
		au.SASLAuthBytes = []byte("n,,n=\x00,r=" + strings.Repeat("\xff", 100))
		aresp := kmsg.NewPtrSASLAuthenticateResponse()
		aresp.Version = 2
		if !c.roundTrip(reqFrame(au), aresp) {
			t.Fatal("SaslAuthenticate not answered")
		}
		if aresp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
			t.Fatalf("SaslAuthenticate answered %v", kerr.ErrorForCode(aresp.ErrorCode))
		}
		if !c.closedNow() {
			t.Fatal("connection kept after a failed authentication")
		}
	})
	// Messages the SCRAM parser (xdg-go/scram v1.1.2) panicked on, which
	// ended the process: a client-first message without a GS2 flag, and a
	// client-final proof longer than the hash (after the server's nonce).
	scram := func(t *testing.T, c *rawConn, msg []byte) *kmsg.SASLAuthenticateResponse {
		t.Helper()
		au := kmsg.NewPtrSASLAuthenticateRequest()
		au.Version = 2
		au.SASLAuthBytes = msg
		aresp := kmsg.NewPtrSASLAuthenticateResponse()
		aresp.Version = 2
		if !c.roundTrip(reqFrame(au), aresp) {
			t.Fatal("SaslAuthenticate not answered")
		}
		return aresp
	}
	handshake := func(t *testing.T) *rawConn {
		c := dialRaw(t, addr)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version = 1
		hs.Mechanism = "SCRAM-SHA-256"
		hresp := kmsg.NewPtrSASLHandshakeResponse()
		hresp.Version = 1
		if !c.roundTrip(reqFrame(hs), hresp) || hresp.ErrorCode != 0 {
			t.Fatalf("SaslHandshake: %+v", hresp)
		}
		return c
	}
	t.Run("SCRAM client-first without a GS2 flag", func(t *testing.T) {
		c := handshake(t)
		if r := scram(t, c, []byte(",,,")); r.ErrorCode != kerr.SaslAuthenticationFailed.Code {
			t.Fatalf("answered %v", kerr.ErrorForCode(r.ErrorCode))
		}
		if !c.closedNow() {
			t.Fatal("connection kept")
		}
	})
	t.Run("SCRAM client-final with a long proof", func(t *testing.T) {
		c := handshake(t)
		r := scram(t, c, []byte("n,,n=alice,r=abc"))
		_, rest, ok := strings.Cut(string(r.SASLAuthBytes), "r=")
		if r.ErrorCode != 0 || !ok {
			t.Fatalf("client-first: %v %q", kerr.ErrorForCode(r.ErrorCode), r.SASLAuthBytes)
		}
		nonce, _, _ := strings.Cut(rest, ",")
		proof := base64.StdEncoding.EncodeToString(make([]byte, 48))
		if r := scram(t, c, []byte("c=biws,r="+nonce+",p="+proof)); r.ErrorCode != kerr.SaslAuthenticationFailed.Code {
			t.Fatalf("answered %v", kerr.ErrorForCode(r.ErrorCode))
		}
		if !c.closedNow() {
			t.Fatal("connection kept")
		}
	})
	t.Run("Metadata after a SaslHandshake, before SaslAuthenticate", func(t *testing.T) {
		c := dialRaw(t, addr)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version = 1
		hs.Mechanism = "SCRAM-SHA-512"
		hresp := kmsg.NewPtrSASLHandshakeResponse()
		hresp.Version = 1
		if !c.roundTrip(reqFrame(hs), hresp) || hresp.ErrorCode != 0 {
			t.Fatalf("SaslHandshake: %+v", hresp)
		}
		md := kmsg.NewPtrMetadataRequest()
		md.Version = 12
		c.send(reqFrame(md))
		if !c.closedNow() {
			t.Fatal("Metadata before SaslAuthenticate answered")
		}
	})
}
