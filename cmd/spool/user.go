package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/auth/users"
)

// userTimeout bounds one user-management request.
const userTimeout = 30 * time.Second

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users and their API keys (SASL on Kafka, bearer tokens on the native API)",
		Long: "Users authenticate on Kafka with SASL PLAIN or SCRAM-SHA-256/512 (their password) and on\n" +
			"the native API with API keys (Authorization: Bearer <key>). The server keeps only salted\n" +
			"SCRAM credentials and hashes of keys, in the catalog (replicated on a cluster): a password\n" +
			"is never shown, and an API key only once, when `rotate` or `key` issues it.\n" +
			"The commands call the server's /spool/auth/ endpoints at --server (docs/api.md).",
	}
	cmd.AddCommand(newUserAddCmd(), newUserListCmd(), newUserDeleteCmd(), newUserRotateCmd(), newUserKeyCmd(), newUserRevokeCmd())
	return cmd
}

func newUserAddCmd() *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user",
		Long: "Adds a user. With --password-stdin its password is the first line read from stdin (8 to\n" +
			"1024 bytes); without, it gets a random password nobody knows and authenticates with API\n" +
			"keys only (`spool user rotate NAME` issues one). The password is never echoed.",
		Example: "  printf '%s\\n' \"$PASSWORD\" | spool user add alice --password-stdin\n  spool user add ci && spool user rotate ci --expires 720h",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var password string
			if fromStdin {
				line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), users.MaxPassword+2)).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read the password: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
				if password == "" {
					return usageErrorf(cmd, "--password-stdin: no password on stdin")
				}
			} else {
				password = randomPassword()
			}
			body := map[string]string{"name": args[0], "password": password}
			if err := userRequest(cmd, http.MethodPost, "/spool/auth/users", body, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "added user %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")
	return cmd
}

func newUserListCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users and their API keys (never a secret)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Users []users.User `json:"users"`
			}
			if err := userRequest(cmd, http.MethodGet, "/spool/auth/users", nil, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out.Users)
			}
			now := time.Now()
			tw := newTable(w)
			fmt.Fprintln(tw, "USER\tCREATED\tMECHANISMS\tKEY\tKEY CREATED\tKEY STATE")
			for _, u := range out.Users {
				head := fmt.Sprintf("%s\t%s\t%s", u.Name, u.Created.Local().Format(time.DateTime), strings.Join(u.Mechanisms, ","))
				if len(u.Keys) == 0 {
					fmt.Fprintf(tw, "%s\t-\t-\t-\n", head)
				}
				for _, k := range u.Keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", head, k.ID, k.Created.Local().Format(time.DateTime), keyState(k, now))
					head = "\t\t"
				}
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func keyState(k users.Key, now time.Time) string {
	switch {
	case !k.Revoked.IsZero():
		return "revoked " + k.Revoked.Local().Format(time.DateTime)
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return "expired " + k.Expires.Local().Format(time.DateTime)
	case !k.Expires.IsZero():
		return "active until " + k.Expires.Local().Format(time.DateTime)
	}
	return "active"
}

func newUserDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user and its API keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := userRequest(cmd, http.MethodDelete, "/spool/auth/users/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "deleted user %s\n", args[0])
			return nil
		},
	}
}

func newUserRotateCmd() *cobra.Command {
	return newIssueCmd("rotate", "Issue a new API key for a user and revoke its others; print it once",
		"Issues a new API key and, in the same change, revokes every earlier key of the user: only\n"+
			"the new key works afterwards. The key is printed once on stdout and cannot be shown again.")
}

func newUserKeyCmd() *cobra.Command {
	return newIssueCmd("key", "Issue one more API key for a user (its others stay valid); print it once",
		"Issues an API key besides the user's others (to swap keys without a gap, then revoke the old\n"+
			"one). The key is printed once on stdout and cannot be shown again.")
}

func newIssueCmd(verb, short, long string) *cobra.Command {
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if expires < 0 {
				return usageErrorf(cmd, "--expires: must not be negative")
			}
			body := map[string]string{}
			if expires > 0 {
				body["expires_in"] = expires.String()
			}
			var out struct {
				Key   users.Key `json:"key"`
				Token string    `json:"token"`
			}
			path := "/spool/auth/users/" + url.PathEscape(args[0]) + "/" + map[string]string{"rotate": "rotate", "key": "keys"}[verb]
			if err := userRequest(cmd, http.MethodPost, path, body, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			note := "never expires"
			if !out.Key.Expires.IsZero() {
				note = "expires " + out.Key.Expires.Local().Format(time.DateTime)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "issued API key %s for %s (%s); it is shown only this once\n", out.Key.ID, args[0], note)
			return nil
		},
	}
	cmd.Flags().DurationVar(&expires, "expires", 0, "the key's lifetime, e.g. 720h (default: until revoked)")
	return cmd
}

func newUserRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke KEY-ID",
		Short: "Revoke an API key by its id (as `spool user list` shows it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := userRequest(cmd, http.MethodDelete, "/spool/auth/keys/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "revoked API key %s\n", args[0])
			return nil
		},
	}
}

// userRequest calls a /spool/auth/ endpoint on the first node of --server
// that can be reached, with --api-key and the TLS flags.
func userRequest(cmd *cobra.Command, method, path string, body, out any) error {
	return adminRequest(cmd, method, path, body, out, userTimeout)
}

// adminRequest is userRequest with its own timeout.
func adminRequest(cmd *cobra.Command, method, path string, body, out any, timeout time.Duration) error {
	list, err := cmd.Flags().GetString("server")
	if err != nil {
		return err
	}
	tcfg, err := clientTLS(cmd)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg, Proxy: http.ProxyFromEnvironment}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	var lastErr error
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		base := strings.TrimSuffix(a, "/")
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(data))
		if err != nil {
			return usageErrorf(cmd, "--server: %q: %v", a, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if key := apiKey(cmd); key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if isConnectError(err) && ctx.Err() == nil {
				lastErr = err
				continue
			}
			return &serverUnreachableError{err}
		}
		defer resp.Body.Close()
		rdata, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return fmt.Errorf("%s: %w", base, err)
		}
		if resp.StatusCode/100 != 2 {
			var e struct{ Code, Message string }
			if json.Unmarshal(rdata, &e) != nil || e.Code == "" {
				return fmt.Errorf("%s%s: HTTP %s", base, path, resp.Status)
			}
			if e.Code == "not_found" {
				return &notFoundError{e.Message + " (" + e.Code + ")"}
			}
			return fmt.Errorf("%s (%s)", e.Message, e.Code)
		}
		if out != nil {
			if err := json.Unmarshal(rdata, out); err != nil {
				return fmt.Errorf("%s%s: unexpected answer: %w", base, path, err)
			}
		}
		return nil
	}
	if lastErr == nil {
		return usageErrorf(cmd, "--server: no URL given")
	}
	return &serverUnreachableError{lastErr}
}

// randomPassword is the password of a user added without one: 32 random
// bytes nobody sees (the user authenticates with API keys).
func randomPassword() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
