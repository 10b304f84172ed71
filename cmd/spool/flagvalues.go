package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

// enumValue is a string flag limited to a fixed set of words.
type enumValue struct {
	val     *string
	allowed []string
}

func newEnum(p *string, def string, allowed ...string) *enumValue {
	*p = def
	return &enumValue{val: p, allowed: allowed}
}

func (e *enumValue) String() string { return *e.val }
func (e *enumValue) Type() string   { return strings.Join(e.allowed, "|") }

func (e *enumValue) Set(s string) error {
	if !slices.Contains(e.allowed, s) {
		return fmt.Errorf("must be %s", orList(e.allowed))
	}
	*e.val = s
	return nil
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// positionHelp describes the values parsePosition accepts, for flag help.
const positionHelp = "earliest, latest, a non-negative OFFSET (in every partition), an RFC 3339 TIME " +
	"(2026-01-02T15:04:05Z) or a relative TIME such as -1h (now minus one hour): " +
	"the first message at or after that time"

// parsePosition parses a subscription position: "earliest", "latest", a
// non-negative offset, an RFC 3339 time, or "-DURATION" for now minus
// DURATION.
func parsePosition(s string, now time.Time) (client.Position, error) {
	switch s {
	case "earliest":
		return client.Earliest(), nil
	case "latest":
		return client.Latest(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return client.Position{}, fmt.Errorf("offset %d is negative", n)
		}
		return client.AtOffset(n), nil
	}
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		if d, err := time.ParseDuration(rest); err == nil && d >= 0 {
			return client.AtTime(now.Add(-d)), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return client.AtTime(t), nil
	}
	return client.Position{}, fmt.Errorf("%q is not earliest, latest, an offset, an RFC 3339 time or a relative time like -1h", s)
}

// positionFlag parses the position flag name of cmd as a usage error.
func positionFlag(cmd *cobra.Command, name, value string) (client.Position, error) {
	p, err := parsePosition(value, time.Now())
	if err != nil {
		return p, usageErrorf(cmd, "--%s: %v", name, err)
	}
	return p, nil
}

// parseHeaders parses -H key=value flags.
func parseHeaders(kvs []string) ([]client.Header, error) {
	var hs []client.Header
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("header %q is not key=value", kv)
		}
		hs = append(hs, client.Header{Key: k, Value: []byte(v)})
	}
	return hs, nil
}

// addOutputFlag adds --output text|json to cmd.
func addOutputFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().VarP(newEnum(p, "text", "text", "json"), "output", "o",
		"output format: text (human-readable tables) or json (for scripts)")
}

// durationsValue is a flag holding a comma-separated list of durations,
// each not negative.
type durationsValue []time.Duration

func (d *durationsValue) String() string {
	s := make([]string, len(*d))
	for i, v := range *d {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

func (d *durationsValue) Type() string { return "durations" }

func (d *durationsValue) Set(v string) error {
	var out []time.Duration
	for _, f := range strings.Split(v, ",") {
		x, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q is not a duration", f)
		}
		if x < 0 {
			return fmt.Errorf("%s is negative", f)
		}
		out = append(out, x)
	}
	*d = out
	return nil
}
