package config

import (
	"fmt"
	"strings"
	"unicode"
)

// Error is one problem found in a configuration file or in the environment.
type Error struct {
	// File is the name given to Load; it is empty for problems found by
	// ApplyEnv.
	File string
	// Line and Column locate the problem in File, counting from 1. Either
	// may be 0 when unknown (Column is, for instance, for YAML syntax
	// errors, and both are for ApplyEnv problems).
	Line, Column int
	// Path is the dotted key path of the value at fault, such as
	// "kafka.listener" or "kafka.advertised[1]"; it is empty for problems
	// with the document as a whole.
	Path string
	// Msg says what is wrong, without the location.
	Msg string
}

// Error formats e as "file:line:col: path: msg". Parts that are unknown are
// left out; a problem with no file, such as one from ApplyEnv, begins
// with "config: " instead.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("config")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem that Load or ApplyEnv found, in the order they
// were found (document order for Load, environment order for ApplyEnv).
// It always holds at least one Error.
type Errors struct {
	List []*Error
}

// Error returns the problems one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, x := range e.List {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so that errors.As finds an *Error.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.List))
	for i, x := range e.List {
		errs[i] = x
	}
	return errs
}

// suggest returns the candidate closest to name, ignoring case, if it is
// close enough to be a likely typo; otherwise "".
func suggest(name string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 || bestDist > maxTypoDistance(name) {
		return ""
	}
	return best
}

// maxTypoDistance is how many edits a key of this length may be off by and
// still be taken for a typo: one for short keys, about a third of longer
// ones, never more than three.
func maxTypoDistance(name string) int {
	n := len([]rune(name))
	return max(1, min(3, (n+2)/3))
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent characters
// each count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows suffice: the swap rule looks two rows back.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// quoteShort quotes s for a message, cutting it if it is long.
func quoteShort(s string) string {
	const limit = 40
	r := []rune(s)
	if len(r) > limit {
		return fmt.Sprintf("%q...", string(r[:limit]))
	}
	return fmt.Sprintf("%q", s)
}

// plainShort is quoteShort for text shown unquoted, such as a number; text
// that is not printable is quoted after all.
func plainShort(s string) string {
	for _, c := range s {
		if !unicode.IsPrint(c) || c == ' ' {
			return quoteShort(s)
		}
	}
	if len([]rune(s)) > 40 {
		return quoteShort(s)
	}
	return s
}
