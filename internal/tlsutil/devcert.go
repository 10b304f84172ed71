package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DevOptions configures GenerateDev.
type DevOptions struct {
	Dir     string   // where the files go (created if missing)
	Hosts   []string // the server certificate's names and IP addresses
	Clients []string // a client certificate for each name (its subject's CN)
	Force   bool     // overwrite existing files
	Now     time.Time
}

// Validity of the development certificates.
const (
	DevCAValidity   = 10 * 365 * 24 * time.Hour
	DevCertValidity = 365 * 24 * time.Hour
)

// DevFiles names the files GenerateDev writes in a directory.
type DevFiles struct {
	CA, CAKey         string
	Server, ServerKey string
	Clients           map[string][2]string // name: certificate, key
}

// DevPaths returns the files GenerateDev writes for opts.
func DevPaths(opts DevOptions) DevFiles {
	j := func(n string) string { return filepath.Join(opts.Dir, n) }
	f := DevFiles{CA: j("ca.pem"), CAKey: j("ca-key.pem"), Server: j("server.pem"), ServerKey: j("server-key.pem"),
		Clients: map[string][2]string{}}
	for _, c := range opts.Clients {
		f.Clients[c] = [2]string{j("client-" + c + ".pem"), j("client-" + c + "-key.pem")}
	}
	return f
}

// GenerateDev writes a development CA, a server certificate for opts.Hosts
// signed by it, and a client certificate for each of opts.Clients: ECDSA
// P-256, the CA valid 10 years, the others one year, keys readable by
// their owner only (0600). The server certificate may serve as a client
// certificate too (a cluster node dialling its peers). It refuses to
// overwrite an existing file unless opts.Force.
func GenerateDev(opts DevOptions) (DevFiles, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if len(opts.Hosts) == 0 {
		opts.Hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	for _, c := range opts.Clients {
		if c == "" || strings.ContainsAny(c, `/\`) {
			return DevFiles{}, fmt.Errorf("tls: client name %q: want a name without slashes", c)
		}
	}
	files := DevPaths(opts)
	all := []string{files.CA, files.CAKey, files.Server, files.ServerKey}
	for _, c := range opts.Clients {
		all = append(all, files.Clients[c][0], files.Clients[c][1])
	}
	if !opts.Force {
		var exist []string
		for _, f := range all {
			if _, err := os.Stat(f); err == nil {
				exist = append(exist, f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return DevFiles{}, err
			}
		}
		if len(exist) > 0 {
			return DevFiles{}, fmt.Errorf("tls: %s exist already (--force overwrites)", strings.Join(exist, ", "))
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return DevFiles{}, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevFiles{}, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Spool development CA", Organization: []string{"Spool (development)"}},
		NotBefore:             opts.Now.Add(-time.Hour),
		NotAfter:              opts.Now.Add(DevCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, caCert, err := sign(caTmpl, nil, &caKey.PublicKey, caKey)
	if err != nil {
		return DevFiles{}, err
	}
	if err := writeCert(files.CA, caDER); err != nil {
		return DevFiles{}, err
	}
	if err := writeKey(files.CAKey, caKey); err != nil {
		return DevFiles{}, err
	}
	leaf := func(cn string, usage []x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn, Organization: []string{"Spool (development)"}},
			NotBefore:   opts.Now.Add(-time.Hour),
			NotAfter:    opts.Now.Add(DevCertValidity),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: usage,
		}
	}
	srv := leaf(opts.Hosts[0], []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	for _, h := range opts.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			srv.IPAddresses = append(srv.IPAddresses, ip)
		} else {
			srv.DNSNames = append(srv.DNSNames, h)
		}
	}
	if err := issue(srv, caCert, caKey, files.Server, files.ServerKey); err != nil {
		return DevFiles{}, err
	}
	for _, c := range opts.Clients {
		if err := issue(leaf(c, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}), caCert, caKey, files.Clients[c][0], files.Clients[c][1]); err != nil {
			return DevFiles{}, err
		}
	}
	return files, nil
}

// issue makes a key and a certificate of tmpl signed by the CA and writes
// both.
func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, _, err := sign(tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeCert(certFile, der); err != nil {
		return err
	}
	return writeKey(keyFile, key)
}

// sign fills tmpl's serial number and signs it (self-signed when parent is
// nil).
func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

func writeCert(path string, der []byte) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// writeFile replaces path by data (a new file renamed over it, so that a
// server reloading it never reads half a file) with mode perm.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
