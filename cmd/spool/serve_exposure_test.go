package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesExposure: a non-loopback listener without
// authentication is refused, naming it and the two ways out, before the
// data directory is touched.
func TestServeRefusesExposure(t *testing.T) {
	t.Setenv("SPOOL_CONFIG", "")
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--http", "0.0.0.0:0"}, []string{"without authentication", "http 0.0.0.0:0", "auth.enabled: true", "--insecure"}},
		{[]string{"--kafka", "0.0.0.0:0"}, []string{"kafka 0.0.0.0:0", "--insecure"}},
		{[]string{"--schema-registry", ":0"}, []string{"schema-registry :0", "--insecure"}},
		{[]string{"--debug-addr", "0.0.0.0:0"}, []string{"debug listener", "--insecure"}},
		{[]string{"--node-id", "1", "--peers", "1=0.0.0.0:0,2=127.0.0.1:1,3=127.0.0.1:2"}, []string{"cluster 0.0.0.0:0", "tls.client-auth", "--insecure"}},
	} {
		args := append([]string{"--data", data, "--http", "127.0.0.1:0", "--kafka", "-", "--schema-registry", "-"}, tc.args...)
		code, _, errOut := serve(t, args...)
		if code != exitError {
			t.Errorf("serve %q: exit %d, want %d", tc.args, code, exitError)
		}
		for _, want := range tc.want {
			if !strings.Contains(errOut, want) {
				t.Errorf("serve %q: %q does not say %q", tc.args, errOut, want)
			}
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("a refused configuration created the data directory: %v", err)
	}
}

// TestServeAcceptsExposure: --insecure, its deprecated alias, the
// variable, and auth.enabled each let the server start on 0.0.0.0 (it stops
// at once: its context is already cancelled).
func TestServeAcceptsExposure(t *testing.T) {
	t.Setenv("SPOOL_CONFIG", "")
	for _, tc := range []struct {
		args []string
		env  string
	}{
		{[]string{"--insecure"}, ""},
		{[]string{"--allow-non-loopback"}, ""},
		{nil, "SPOOL_INSECURE=true"},
		{nil, "SPOOL_AUTH_ENABLED=true"},
	} {
		if tc.env != "" {
			k, v, _ := strings.Cut(tc.env, "=")
			t.Setenv(k, v)
		}
		root := newRootCmd()
		var stdout, stderr strings.Builder
		root.SetOut(&stdout)
		root.SetErr(&stderr)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		root.SetContext(ctx)
		root.SetArgs(append([]string{"serve", "--data", t.TempDir(), "--http", "0.0.0.0:0", "--kafka", "-", "--schema-registry", "-", "--log-level", "error"}, tc.args...))
		if code := execute(root); code != exitOK {
			t.Errorf("serve %q (%s): exit %d: %s", tc.args, tc.env, code, stderr.String())
		}
		if tc.env != "" {
			k, _, _ := strings.Cut(tc.env, "=")
			os.Unsetenv(k)
		}
	}
}
