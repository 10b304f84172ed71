package console

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// pageNames are the templates in templates/, each with the layout.
var pageNames = []string{"error", "overview", "topic", "subscription", "messages", "deadletters", "subjects", "subject", "catalog"}

func parsePages() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		out[n] = template.Must(template.New(n).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html"))
	}
	return out
}

var funcs = template.FuncMap{
	"num":   formatInt,
	"bytes": formatBytes,
	"rate":  formatRate,
	"age":   formatAge,
	"ts":    formatTime,
	"seg":   url.PathEscape,
	"query": url.QueryEscape,
	"join":  strings.Join,
	"sub64": func(a, b int64) int64 { return a - b },
	"dict":  dict,
}

// dict makes a map of its key and value arguments, for a template called
// with more than one value.
func dict(kv ...any) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		m[k] = kv[i+1]
	}
	return m
}

// formatInt groups digits by thousands: 1234567 → "1,234,567".
func formatInt(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt64 {
			return strconv.FormatUint(x, 10)
		}
		n = int64(x)
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatBytes is a size in bytes with a binary unit: "512 B", "1.5 KiB".
func formatBytes(v any) string {
	var n float64
	switch x := v.(type) {
	case int:
		n = float64(x)
	case int64:
		n = float64(x)
	case uint64:
		n = float64(x)
	default:
		return fmt.Sprint(v)
	}
	if n < 1024 {
		return fmt.Sprintf("%.0f B", n)
	}
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		n /= 1024
		if n < 1024 || u == "TiB" {
			return fmt.Sprintf("%.1f %s", n, u)
		}
	}
	return ""
}

// formatRate is messages per second; a negative rate is unknown ("—").
func formatRate(r float64) string {
	switch {
	case r < 0 || math.IsNaN(r):
		return "—"
	case r == 0:
		return "0"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 2, 64)
	case r < 1000:
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return formatInt(int64(math.Round(r)))
}

// formatAge is a duration rounded for people: "0", "850ms", "42s",
// "3m20s", "5h2m", "3d4h".
func formatAge(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
}

// formatTime is a UTC timestamp with milliseconds; "—" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}
