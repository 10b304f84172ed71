package group

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, cfg Config, n int) *Coordinator {
	t.Helper()
	c, err := New(cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustJoin(t testing.TB, c *Coordinator, now time.Time, id string, opts JoinOptions) (string, Effects) {
	t.Helper()
	got, eff, err := c.Join(now, id, opts)
	if err != nil {
		t.Fatalf("join %q: %v", id, err)
	}
	return got, eff
}

func TestInvalidInput(t *testing.T) {
	c := mustNew(t, Config{}, 4)
	long := strings.Repeat("x", MaxIDLen+1)
	for _, tc := range []struct {
		id   string
		opts JoinOptions
		want error
	}{
		{"a\nb", JoinOptions{}, ErrInvalidID},
		{"\xff", JoinOptions{}, ErrInvalidID},
		{long, JoinOptions{}, ErrInvalidID},
		{"", JoinOptions{ClientID: "c\x00"}, ErrInvalidID},
		{"", JoinOptions{ClientID: long}, ErrInvalidID},
		{"", JoinOptions{InstanceID: "i\t"}, ErrInvalidID},
		{"", JoinOptions{SessionTimeout: -time.Second}, ErrInvalidSessionTimeout},
		{"", JoinOptions{SessionTimeout: time.Hour}, ErrInvalidSessionTimeout},
	} {
		_, eff, err := c.Join(t0, tc.id, tc.opts)
		if !errors.Is(err, tc.want) {
			t.Errorf("join %q %+v: %v, want %v", tc.id, tc.opts, err, tc.want)
		}
		if !eff.Empty() || c.Len() != 0 {
			t.Errorf("refused join changed something: %+v", eff)
		}
	}
	if _, err := c.Revoked(t0, "a", []int32{-1}); !errors.Is(err, ErrInvalidPartition) {
		t.Errorf("revoked -1: %v", err)
	}
	for _, id := range []string{"", "nobody"} {
		if _, err := c.Heartbeat(t0, id, 0); !errors.Is(err, ErrUnknownMember) {
			t.Errorf("heartbeat %q: %v", id, err)
		}
		if _, err := c.Leave(t0, id); !errors.Is(err, ErrUnknownMember) {
			t.Errorf("leave %q: %v", id, err)
		}
		if _, err := c.Assignment(id); !errors.Is(err, ErrUnknownMember) {
			t.Errorf("assignment %q: %v", id, err)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []Config{
		{SessionTimeout: -1},
		{MinSessionTimeout: -1},
		{MaxSessionTimeout: -1},
		{RevokeTimeout: -1},
		{MaxMembers: -1},
		{MaxPartitions: -1},
		{SessionTimeout: time.Second, MinSessionTimeout: 2 * time.Second},
		{SessionTimeout: time.Hour, MaxSessionTimeout: time.Minute},
		{IDNonce: "a\nb"},
		{IDNonce: strings.Repeat("n", 65)},
	} {
		if _, err := New(cfg, 0); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v): %v, want ErrInvalidConfig", cfg, err)
		}
	}
	c := mustNew(t, Config{}, 0)
	want := Config{
		SessionTimeout: 10 * time.Second, MinSessionTimeout: time.Second, MaxSessionTimeout: 5 * time.Minute,
		RevokeTimeout: 10 * time.Second, MaxMembers: 1000, MaxPartitions: 1 << 16,
	}
	if got := c.Config(); got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	// A short default session lowers the default minimum with it.
	c = mustNew(t, Config{SessionTimeout: 200 * time.Millisecond}, 0)
	if got := c.Config(); got.MinSessionTimeout != 200*time.Millisecond || got.RevokeTimeout != 200*time.Millisecond {
		t.Errorf("short session: %+v", got)
	}
}

func TestGeneratedIDs(t *testing.T) {
	c := mustNew(t, Config{IDNonce: "x9"}, 1)
	mustJoin(t, c, t0, "app-x9-1", JoinOptions{})
	if id, _ := mustJoin(t, c, t0, "", JoinOptions{ClientID: "app"}); id != "app-x9-2" {
		t.Errorf("generated %q, want app-x9-2 (app-x9-1 is taken)", id)
	}
	if id, _ := mustJoin(t, c, t0, "", JoinOptions{}); id != "member-x9-3" {
		t.Errorf("generated %q, want member-x9-3", id)
	}
	// A generated id longer than MaxIDLen can still rejoin.
	long := strings.Repeat("c", MaxIDLen)
	id, _ := mustJoin(t, c, t0, "", JoinOptions{ClientID: long})
	if len(id) <= MaxIDLen {
		t.Fatalf("id %q not longer than MaxIDLen", id)
	}
	if _, _, err := c.Join(t0, id, JoinOptions{ClientID: long}); err != nil {
		t.Errorf("rejoin with a long generated id: %v", err)
	}
}

func TestTimeNeverGoesBack(t *testing.T) {
	c := mustNew(t, Config{SessionTimeout: 10 * time.Second}, 2)
	mustJoin(t, c, t0.Add(5*time.Second), "a", JoinOptions{})
	// An earlier now counts as the latest time seen: the deadline is +15s, not +10s.
	if _, err := c.Heartbeat(t0, "a", c.Generation()); err != nil {
		t.Fatal(err)
	}
	d := c.Describe()
	if !d.Now.Equal(t0.Add(5*time.Second)) || !d.Members[0].SessionDeadline.Equal(t0.Add(15*time.Second)) {
		t.Errorf("now %v deadline %v", d.Now, d.Members[0].SessionDeadline)
	}
	if eff := c.Tick(t0.Add(14 * time.Second)); !eff.Empty() {
		t.Errorf("early tick: %+v", eff)
	}
	eff := c.Tick(t0.Add(15 * time.Second))
	if len(eff.Changes) == 0 || eff.Changes[0].Kind != MemberEvicted {
		t.Errorf("tick at the deadline: %+v", eff)
	}
}

func TestNextDeadline(t *testing.T) {
	c := mustNew(t, Config{SessionTimeout: 10 * time.Second, RevokeTimeout: 3 * time.Second}, 2)
	if _, ok := c.NextDeadline(); ok {
		t.Error("deadline with no members")
	}
	mustJoin(t, c, t0, "a", JoinOptions{})
	if d, ok := c.NextDeadline(); !ok || !d.Equal(t0.Add(10*time.Second)) {
		t.Errorf("next %v %v, want +10s", d, ok)
	}
	mustJoin(t, c, t0.Add(time.Second), "b", JoinOptions{})
	if d, _ := c.NextDeadline(); !d.Equal(t0.Add(4 * time.Second)) {
		t.Errorf("next %v, want the revocation deadline +4s", d)
	}
	// Early is allowed, late is not: after a's heartbeat the bound may stay early, and a tick
	// there makes it exact.
	if _, err := c.Revoked(t0.Add(2*time.Second), "a", []int32{1}); err != nil {
		t.Fatal(err)
	}
	c.Heartbeat(t0.Add(2*time.Second), "a", c.Generation())
	c.Heartbeat(t0.Add(2*time.Second), "b", c.Generation())
	for i := 0; ; i++ {
		d, ok := c.NextDeadline()
		if !ok || d.After(t0.Add(12*time.Second)) || i == 3 {
			t.Fatalf("next %v %v after %d ticks: want +12s", d, ok, i)
		}
		if d.Equal(t0.Add(12 * time.Second)) {
			break
		}
		if eff := c.Tick(d); !eff.Empty() {
			t.Fatalf("tick at an early bound changed %+v", eff)
		}
	}
}

func TestDescribeIsACopy(t *testing.T) {
	c := mustNew(t, Config{}, 4)
	mustJoin(t, c, t0, "a", JoinOptions{})
	d := c.Describe()
	d.Members[0].Owned[0] = 99
	d.Members[0].ID = "z"
	if got := c.Describe(); got.Members[0].Owned[0] != 0 || got.Members[0].ID != "a" {
		t.Errorf("Describe shares memory: %+v", got)
	}
}

func TestChangeStrings(t *testing.T) {
	for _, tc := range []struct {
		c    Change
		want string
	}{
		{Change{Kind: PartitionsGranted, Member: "b", Partitions: []int32{0, 1, 2, 5, 7, 8}}, "granted b 0-2,5,7-8"},
		{Change{Kind: MemberReplaced, Member: "n", Previous: "o"}, "replaced n (was o)"},
		{Change{Kind: GenerationBumped, Generation: 7}, "generation 7"},
		{Change{Kind: ChangeKind(200)}, "ChangeKind(200)"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
	if got := FormatPartitions(nil); got != "-" {
		t.Errorf("empty: %q", got)
	}
}

// TestDeterministic: the same calls give the same Effects, whatever the map iteration order.
func TestDeterministic(t *testing.T) {
	run := func() []string {
		r := rand.New(rand.NewPCG(42, 42))
		c := mustNew(t, Config{SessionTimeout: 3 * time.Second, RevokeTimeout: 2 * time.Second}, 30)
		now := t0
		var log []string
		for range 3000 {
			now = now.Add(time.Duration(r.IntN(400)) * time.Millisecond)
			id := fmt.Sprintf("m%02d", r.IntN(20))
			var eff Effects
			var err error
			switch r.IntN(6) {
			case 0, 1:
				_, eff, err = c.Join(now, id, JoinOptions{})
			case 2:
				eff, err = c.Leave(now, id)
			case 3:
				eff, err = c.Heartbeat(now, id, c.Generation())
			case 4:
				a, _ := c.Assignment(id)
				eff, err = c.Revoked(now, id, a.Revoking)
			default:
				eff = c.Tick(now)
			}
			log = append(log, fmt.Sprintf("%+v %v", eff, err))
		}
		return log
	}
	a, b := run(), run()
	if !reflect.DeepEqual(a, b) {
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("step %d differs:\n%s\n%s", i, a[i], b[i])
			}
		}
	}
}

// TestScale: a full group (BenchmarkRebalance measures the largest partition count); heartbeats
// stay cheap.
func TestScale(t *testing.T) {
	members, parts := 1000, 1<<13
	if testing.Short() {
		members, parts = 100, 4096
	}
	c := mustNew(t, Config{SessionTimeout: time.Minute, MaxSessionTimeout: time.Minute}, parts)
	now := t0
	for i := range members {
		mustJoin(t, c, now, fmt.Sprintf("m%04d", i), JoinOptions{})
	}
	// Nobody confirms: every hand-over is still pending, and the targets are balanced.
	for _, m := range c.Describe().Members {
		n := len(m.Owned) + len(m.Pending)
		if n < parts/members || n > parts/members+1 {
			t.Fatalf("%s targeted with %d", m.ID, n)
		}
	}
	id := fmt.Sprintf("m%04d", members/2)
	allocs := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Millisecond)
		if _, err := c.Heartbeat(now, id, c.Generation()); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("heartbeat allocates %v times", allocs)
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	c := mustNew(b, Config{}, 1024)
	for i := range 1000 {
		mustJoin(b, c, t0, fmt.Sprintf("m%04d", i), JoinOptions{})
	}
	now := t0
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Microsecond)
		if _, err := c.Heartbeat(now, fmt.Sprintf("m%04d", i%1000), c.Generation()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRebalance(b *testing.B) {
	c := mustNew(b, Config{}, 1<<16)
	for i := range 999 {
		mustJoin(b, c, t0, fmt.Sprintf("m%04d", i), JoinOptions{})
	}
	for b.Loop() {
		mustJoin(b, c, t0, "extra", JoinOptions{})
		if _, err := c.Leave(t0, "extra"); err != nil {
			b.Fatal(err)
		}
	}
}
