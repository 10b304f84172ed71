// Package subject matches routing keys ("subjects") against subscription
// filters. A subject is a string of dot-separated tokens, such as
// "orders.eu.created". A filter has the same form, where the token "*"
// matches exactly one token and "#" matches zero or more tokens (as in AMQP
// topic exchanges): "orders.*.created" matches "orders.eu.created";
// "orders.#" matches "orders", "orders.eu" and "orders.eu.created".
//
// The empty filter matches every message, including messages without a
// subject; any other filter matches only messages with a subject.
package subject

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen bounds subjects and filters.
const MaxLen = 1024

// ErrInvalid is matched by every invalid-filter error.
var ErrInvalid = errors.New("subject: invalid filter")

// Filter is a compiled filter. The zero value and nil match everything.
type Filter struct {
	tokens []string // nil for the match-all filter
	all    bool
}

// Compile parses a filter. Tokens must be non-empty; "*" and "#" must be
// whole tokens.
func Compile(pattern string) (*Filter, error) {
	if pattern == "" {
		return &Filter{all: true}, nil
	}
	if len(pattern) > MaxLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	toks := strings.Split(pattern, ".")
	out := make([]string, 0, len(toks))
	for i, t := range toks {
		if t == "" {
			return nil, fmt.Errorf("%w: empty token at position %d in %q", ErrInvalid, i+1, pattern)
		}
		if t != "*" && t != "#" && strings.ContainsAny(t, "*#") {
			return nil, fmt.Errorf("%w: %q: '*' and '#' must be whole tokens", ErrInvalid, t)
		}
		if t == "#" && len(out) > 0 && out[len(out)-1] == "#" {
			continue // "#.#" is "#"
		}
		out = append(out, t)
	}
	return &Filter{tokens: out}, nil
}

// MatchAll reports whether f matches every message.
func (f *Filter) MatchAll() bool { return f == nil || f.all }

// String returns the filter as written (normalized).
func (f *Filter) String() string {
	if f.MatchAll() {
		return ""
	}
	return strings.Join(f.tokens, ".")
}

// Match reports whether subject matches. A message without a subject (an
// empty string) matches only the match-all filter.
func (f *Filter) Match(subject string) bool {
	if f.MatchAll() {
		return true
	}
	if subject == "" {
		return false
	}
	// Walk the subject's tokens without allocating, tracking the set of
	// filter positions reachable so far (at most len(tokens)+1 states).
	var stackA, stackB [16]bool
	n := len(f.tokens)
	var cur, next []bool
	if n+1 <= len(stackA) {
		cur, next = stackA[:n+1], stackB[:n+1]
	} else {
		cur, next = make([]bool, n+1), make([]bool, n+1)
	}
	cur[0] = true
	closeHash(f.tokens, cur)
	rest := subject
	for {
		tok, tail, more := strings.Cut(rest, ".")
		clear(next)
		any := false
		for i, ok := range cur {
			if !ok || i == n {
				continue
			}
			switch f.tokens[i] {
			case "#":
				next[i] = true // '#' consumes this token and stays
				any = true
			case "*":
				next[i+1] = true
				any = true
			default:
				if f.tokens[i] == tok {
					next[i+1] = true
					any = true
				}
			}
		}
		if !any {
			return false
		}
		closeHash(f.tokens, next)
		cur, next = next, cur
		if !more {
			break
		}
		rest = tail
	}
	return cur[n]
}

// closeHash marks the positions after every reachable '#' as reachable too:
// '#' may match zero tokens.
func closeHash(tokens []string, set []bool) {
	for i := 0; i < len(tokens); i++ {
		if set[i] && tokens[i] == "#" {
			set[i+1] = true
		}
	}
}
