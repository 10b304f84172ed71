package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// handshake connects to ln with cfg and returns the server certificate's
// serial number and the principal the server saw.
func handshake(t *testing.T, ln net.Listener, cfg *tls.Config) (string, error) {
	t.Helper()
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		return "", err
	}
	// The server answers with the principal it saw (a one-line protocol).
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String() + " " + string(b), nil
}

func serve(t *testing.T, r *Reloader) net.Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tls.NewListener(inner, r.ServerConfig("test"))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				var b [1]byte
				if _, err := tc.Read(b[:]); err != nil {
					return
				}
				cs := tc.ConnectionState()
				tc.Write([]byte(ConnPrincipal(&cs)))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

func serial(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parsePEMCert(b)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber.String()
}

func TestReloadAndMutualTLS(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	f1, err := GenerateDev(DevOptions{Dir: dir1, Clients: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	f2, err := GenerateDev(DevOptions{Dir: dir2, Clients: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{f1.CAKey, f1.ServerKey, f1.Clients["alice"][1]} {
		if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v; want 0600", k, fi.Mode(), err)
		}
	}
	if _, err := GenerateDev(DevOptions{Dir: dir1}); err == nil {
		t.Fatal("GenerateDev overwrote existing files without Force")
	}
	// The server's files live in their own directory, rotated below.
	sdir := t.TempDir()
	cert, key, ca := filepath.Join(sdir, "cert.pem"), filepath.Join(sdir, "key.pem"), filepath.Join(sdir, "ca.pem")
	copyFile(t, f1.Server, cert)
	copyFile(t, f1.ServerKey, key)
	bundle := append(readFile(t, f1.CA), readFile(t, f2.CA)...)
	if err := os.WriteFile(ca, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(Config{CertFile: cert, KeyFile: key, CAFile: ca, ClientAuth: ClientAuthRequire,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln := serve(t, r)

	trust := filepath.Join(t.TempDir(), "trust.pem")
	if err := os.WriteFile(trust, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	alice, err := ClientConfig(trust, f1.Clients["alice"][0], f1.Clients["alice"][1])
	if err != nil {
		t.Fatal(err)
	}
	alice.ServerName = "localhost"
	got, err := handshake(t, ln, alice)
	if want := serial(t, f1.Server) + " alice"; err != nil || got != want {
		t.Fatalf("handshake: %q, %v; want %q", got, err, want)
	}
	anon, _ := ClientConfig(trust, "", "")
	anon.ServerName = "localhost"
	if _, err := handshake(t, ln, anon); err == nil {
		t.Fatal("a client without a certificate was accepted under client-auth require")
	}

	// Invalid new files: the old certificate stays.
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = handshake(t, ln, alice)
	if want := serial(t, f1.Server) + " alice"; err != nil || got != want {
		t.Fatalf("after a bad rotation: %q, %v; want %q", got, err, want)
	}
	// A certificate without its key: still the old one.
	copyFile(t, f2.Server, cert)
	got, err = handshake(t, ln, alice)
	if want := serial(t, f1.Server) + " alice"; err != nil || got != want {
		t.Fatalf("after a half rotation: %q, %v; want %q", got, err, want)
	}
	// The key arrives: the next handshake sees the new certificate.
	copyFile(t, f2.ServerKey, key)
	got, err = handshake(t, ln, alice)
	if want := serial(t, f2.Server) + " alice"; err != nil || got != want {
		t.Fatalf("after rotation: %q, %v; want %q", got, err, want)
	}
}

func TestPrincipalOf(t *testing.T) {
	if p := PrincipalOf(nil); p != "" {
		t.Fatalf("nil: %q", p)
	}
	c := &x509.Certificate{DNSNames: []string{"svc.example"}}
	if p := PrincipalOf(c); p != "svc.example" {
		t.Fatalf("DNS SAN: %q", p)
	}
	c.Subject.CommonName = "orders"
	if p := PrincipalOf(c); p != "orders" {
		t.Fatalf("CN: %q", p)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, c := range []Config{
		{CertFile: "c"},
		{CertFile: "c", KeyFile: "k", ClientAuth: "require"},
		{CertFile: "c", KeyFile: "k", ClientAuth: "maybe"},
		{CertFile: "c", KeyFile: "k", MinVersion: "1.1"},
	} {
		if err := c.Check(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (Config{CertFile: "c", KeyFile: "k", CAFile: "a", ClientAuth: "request", MinVersion: "1.3"}).Check(); err != nil {
		t.Error(err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := writeFile(to, readFile(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
}

var errNoPEM = errors.New("no PEM certificate")

func parsePEMCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errNoPEM
	}
	return x509.ParseCertificate(block.Bytes)
}
