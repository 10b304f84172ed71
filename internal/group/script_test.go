package group

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs each datadriven script under testdata: a sequence of
//
//	# comments and blank lines
//	command arg key=value ...
//	----
//	expected output
//
// against one Coordinator with a fake clock, comparing every command's
// output with the expected block; -rewrite regenerates the blocks.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			env := &scriptEnv{t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			env.now = env.t0
			datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
				out, err := env.run(td)
				if err != nil {
					td.Fatalf(t, "%v", err)
				}
				return out
			})
		})
	}
}

type scriptEnv struct {
	t0, now time.Time
	c       *Coordinator
}

// args splits a command's arguments into positional ones and key=value
// pairs.
func args(td *datadriven.TestData) (pos []string, kv map[string]string) {
	kv = map[string]string{}
	for _, a := range td.CmdArgs {
		if len(a.Vals) == 0 {
			pos = append(pos, a.Key)
		} else {
			kv[a.Key] = strings.Join(a.Vals, ",")
		}
	}
	return pos, kv
}

func (e *scriptEnv) run(td *datadriven.TestData) (string, error) {
	pos, kv := args(td)
	var err error
	dur := func(k string) time.Duration {
		v, ok := kv[k]
		if !ok || err != nil {
			return 0
		}
		var d time.Duration
		d, err = time.ParseDuration(strings.TrimPrefix(v, "+"))
		return d
	}
	num := func(k string, def int64) int64 {
		v, ok := kv[k]
		if !ok || err != nil {
			return def
		}
		var n int64
		n, err = strconv.ParseInt(v, 10, 64)
		return n
	}
	need := func(n int) string {
		if len(pos) < n && err == nil {
			err = fmt.Errorf("want %d positional arguments", n)
		}
		if len(pos) == 0 {
			return ""
		}
		return pos[0]
	}
	if td.Cmd != "new" && e.c == nil {
		return "", fmt.Errorf("script must start with new")
	}

	var eff Effects
	var opErr error
	switch td.Cmd {
	case "new":
		cfg := Config{
			SessionTimeout:    dur("session"),
			MinSessionTimeout: dur("min-session"),
			MaxSessionTimeout: dur("max-session"),
			RevokeTimeout:     dur("revoke"),
			MaxMembers:        int(num("max-members", 0)),
			MaxPartitions:     int(num("max-partitions", 0)),
			IDNonce:           kv["nonce"],
		}
		n := int(num("partitions", 0))
		if err != nil {
			return "", err
		}
		c, err := New(cfg, n)
		if err != nil {
			return "error: " + err.Error(), nil
		}
		e.c = c
		return e.state(), nil
	case "join":
		id := need(1)
		if id == "-" {
			id = ""
		}
		opts := JoinOptions{ClientID: kv["client"], InstanceID: kv["instance"], SessionTimeout: dur("session")}
		if err != nil {
			return "", err
		}
		var got string
		got, eff, opErr = e.c.Join(e.now, id, opts)
		if opErr == nil {
			return "member: " + got + "\n" + e.effects(eff, nil), nil
		}
	case "heartbeat":
		id := need(1)
		gen := num("gen", e.c.Generation())
		if err != nil {
			return "", err
		}
		eff, opErr = e.c.Heartbeat(e.now, id, gen)
	case "leave":
		id := need(1)
		if err != nil {
			return "", err
		}
		eff, opErr = e.c.Leave(e.now, id)
	case "revoked":
		id := need(1)
		var ps []int32
		if len(pos) > 1 {
			ps, err = parsePartitions(pos[1])
		}
		if err != nil {
			return "", err
		}
		eff, opErr = e.c.Revoked(e.now, id, ps)
	case "tick":
		if len(pos) > 0 {
			d, perr := time.ParseDuration(strings.TrimPrefix(pos[0], "+"))
			if perr != nil {
				return "", perr
			}
			e.now = e.now.Add(d)
		}
		eff = e.c.Tick(e.now)
	case "sleep":
		d, perr := time.ParseDuration(need(1))
		if err != nil || perr != nil {
			return "", fmt.Errorf("sleep: %v %v", err, perr)
		}
		e.now = e.now.Add(d)
		return "now " + e.rel(e.now), nil
	case "partitions":
		n, perr := strconv.Atoi(need(1))
		if err != nil || perr != nil {
			return "", fmt.Errorf("partitions: %v %v", err, perr)
		}
		eff, opErr = e.c.SetPartitions(e.now, n)
	case "commit":
		id := need(1)
		gen := num("gen", e.c.Generation())
		p := num("p", 0)
		if err != nil {
			return "", err
		}
		if cerr := e.c.CheckCommit(id, gen, int32(p)); cerr != nil {
			return "error: " + cerr.Error(), nil
		}
		return "ok", nil
	case "assignment":
		a, aerr := e.c.Assignment(need(1))
		if err != nil {
			return "", err
		}
		if aerr != nil {
			return "error: " + aerr.Error(), nil
		}
		return formatAssignment(a), nil
	case "describe":
		return e.state(), nil
	case "next":
		t, ok := e.c.NextDeadline()
		if !ok {
			return "next: none", nil
		}
		return "next: " + e.rel(t), nil
	default:
		return "", fmt.Errorf("unknown command %q", td.Cmd)
	}
	return e.effects(eff, opErr), nil
}

func parsePartitions(s string) ([]int32, error) {
	var ps []int32
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, err
			}
		}
		for p := a; p <= b; p++ {
			ps = append(ps, int32(p))
		}
	}
	return ps, nil
}

func (e *scriptEnv) rel(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "+" + t.Sub(e.t0).String()
}

func formatAssignment(a Assignment) string {
	s := fmt.Sprintf("%s gen=%d owned=%s", a.Member, a.Generation, FormatPartitions(a.Owned))
	if len(a.Revoking) > 0 {
		s += " revoking=" + FormatPartitions(a.Revoking)
	}
	return s
}

// effects prints a call's error, changes and assignments, then the group's state.
func (e *scriptEnv) effects(eff Effects, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString("error: " + err.Error() + "\n")
	}
	for _, ch := range eff.Changes {
		b.WriteString("change: " + ch.String() + "\n")
	}
	for _, a := range eff.Assignments {
		b.WriteString("notify: " + formatAssignment(a) + "\n")
	}
	if eff.Generation != e.c.Generation() {
		fmt.Fprintf(&b, "BUG: effects generation %d, coordinator %d\n", eff.Generation, e.c.Generation())
	}
	b.WriteString(e.state())
	return b.String()
}

// state prints Describe: the generation, one line per member, one per run of revocations with
// the same target and deadline, and the unassigned partitions.
func (e *scriptEnv) state() string {
	d := e.c.Describe()
	var b strings.Builder
	fmt.Fprintf(&b, "gen %d, %d partitions, at %s\n", d.Generation, d.Partitions, e.rel(d.Now))
	for _, m := range d.Members {
		b.WriteString("member " + m.ID)
		if m.ClientID != "" {
			b.WriteString(" client=" + m.ClientID)
		}
		if m.InstanceID != "" {
			b.WriteString(" instance=" + m.InstanceID)
		}
		if m.SessionTimeout != e.c.Config().SessionTimeout {
			b.WriteString(" session=" + m.SessionTimeout.String())
		}
		b.WriteString(" deadline=" + e.rel(m.SessionDeadline) + " owned=" + FormatPartitions(m.Owned))
		if len(m.Revoking) > 0 {
			ps := make([]int32, len(m.Revoking))
			for i, r := range m.Revoking {
				ps[i] = r.Partition
			}
			b.WriteString(" revoking=" + FormatPartitions(ps))
		}
		if len(m.Pending) > 0 {
			b.WriteString(" pending=" + FormatPartitions(m.Pending))
		}
		b.WriteString("\n")
	}
	for _, m := range d.Members {
		for i := 0; i < len(m.Revoking); {
			j := i
			var ps []int32
			for ; j < len(m.Revoking) && m.Revoking[j].To == m.Revoking[i].To && m.Revoking[j].Deadline.Equal(m.Revoking[i].Deadline); j++ {
				ps = append(ps, m.Revoking[j].Partition)
			}
			fmt.Fprintf(&b, "revoke %s %s->%s until %s\n", FormatPartitions(ps), m.ID, m.Revoking[i].To, e.rel(m.Revoking[i].Deadline))
			i = j
		}
	}
	if len(d.Unassigned) > 0 {
		b.WriteString("unassigned " + FormatPartitions(d.Unassigned) + "\n")
	}
	return b.String()
}
