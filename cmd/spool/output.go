package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// newTable returns a writer that aligns tab-separated columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// textTime formats t for tables: local time to the second, "-" if unknown.
func textTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

// jsonTime formats t for JSON: RFC 3339 in UTC with all its digits, "" if
// unknown (the field is then omitted).
func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// textLimit formats a count or size limit for tables, where 0 means none.
func textLimit(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

// textDuration formats a configured duration for tables; zero reads as
// zeroMeans.
func textDuration(d time.Duration, zeroMeans string) string {
	if d == 0 {
		return zeroMeans
	}
	return d.String()
}

// textAge formats an age for tables: "-" for none, milliseconds below a
// second, whole seconds above.
func textAge(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// textInts formats partition numbers as "0,1,2", "-" if there are none.
func textInts(ps []int32) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// orDash returns s, or "-" if it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// textKey formats a message key for one line of text: as is when it is
// printable UTF-8 without spaces, otherwise as a Go-quoted string.
func textKey(k []byte) string {
	plain := utf8.Valid(k)
	for _, r := range string(k) {
		if !plain || unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' {
			plain = false
			break
		}
	}
	if plain {
		return string(k)
	}
	return strconv.Quote(string(k))
}

// plural returns "1 message", "2 messages".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
