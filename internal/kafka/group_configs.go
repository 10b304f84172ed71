package kafka

// Group configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs
// of resource type GROUP (32). Spool knows the share-group configs of
// Kafka 4.x; each group's are stored in the front end's space of the state
// store (group_config_record.go; synced: an acknowledged change survives a
// crash) and may be set before the group exists, as in Kafka. Deleting the
// group (DeleteGroups) deletes them.
//
//   - share.auto.offset.reset (earliest | latest | by_duration:<ISO-8601
//     duration>): where the group's queue subscription on a topic starts
//     when a share member first makes it (see kshare). Default earliest
//     (Kafka's is latest; a Spool queue is a work queue, and losing what was
//     published before the first consumer came would surprise more than it
//     helps). Like Kafka, it matters only then: an existing subscription
//     keeps its position.
//   - share.record.lock.duration.ms (1,000–3,600,000): the acquisition lock
//     of records the group's members fetch, and what RENEW extends a lock
//     to. Unset, the queue subscription's ack timeout applies (default
//     30 s), so a lock set natively on the subscription is honoured.
//     Changes apply to the next fetch.
//   - share.session.timeout.ms (1,000–3,600,000; default 45,000) and
//     share.heartbeat.interval.ms (500–600,000; default 5,000, below the
//     session timeout): member liveness; changes apply to the members'
//     next heartbeat.
//   - share.isolation.level (read_uncommitted | read_committed): Spool has
//     no transactions, so both read the same records.
//
// consumer.* and streams.* configs belong to group protocols Spool does not
// offer (KIP-848 consumer groups, KIP-1071 streams groups): INVALID_CONFIG.
// DescribeConfigs reports every share config, source GROUP_CONFIG when set
// and DEFAULT_CONFIG otherwise, for any valid group name (Kafka does too).

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
	"github.com/spoolmq/spool/internal/kafka/kshare"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

// Share config names.
const (
	gcfgOffsetReset = "share.auto.offset.reset"
	gcfgLock        = "share.record.lock.duration.ms"
	gcfgSession     = "share.session.timeout.ms"
	gcfgHeartbeat   = "share.heartbeat.interval.ms"
	gcfgIsolation   = "share.isolation.level"
)

// groupConfigDef is one group config.
type groupConfigDef struct {
	name  string
	typ   kmsg.ConfigType
	def   func(s *Server) string
	check func(v string) error
	doc   string
}

func intRange(name string, lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("config %s: %q is not an integer", name, v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("config %s: %d is outside [%d, %d]", name, n, lo, hi)
		}
		return nil
	}
}

func oneOf(name string, vals ...string) func(string) error {
	return func(v string) error {
		for _, ok := range vals {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("config %s: %q is not one of %s", name, v, strings.Join(vals, ", "))
	}
}

func msString(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// groupConfigDefs are the group configs, sorted by name.
var groupConfigDefs = []groupConfigDef{
	{name: gcfgOffsetReset, typ: kmsg.ConfigTypeString,
		def: func(*Server) string { return "earliest" },
		check: func(v string) error {
			_, err := parseShareReset(v, time.Now())
			return err
		},
		doc: "Where the group's queue subscription of a topic starts when a member first needs it: earliest, latest or by_duration:<ISO-8601 duration>."},
	{name: gcfgHeartbeat, typ: kmsg.ConfigTypeInt,
		def:   func(s *Server) string { return msString(s.shares.Timings().Heartbeat) },
		check: intRange(gcfgHeartbeat, 500, 600_000),
		doc:   "How often members heartbeat."},
	{name: gcfgIsolation, typ: kmsg.ConfigTypeString,
		def:   func(*Server) string { return "read_uncommitted" },
		check: oneOf(gcfgIsolation, "read_uncommitted", "read_committed"),
		doc:   "Spool has no transactions: both levels read every record."},
	{name: gcfgLock, typ: kmsg.ConfigTypeInt,
		def:   func(*Server) string { return msString(shareDefaultLock) },
		check: intRange(gcfgLock, 1000, 3_600_000),
		doc:   "The acquisition lock of fetched records; unset, the queue subscription's ack timeout."},
	{name: gcfgSession, typ: kmsg.ConfigTypeInt,
		def:   func(s *Server) string { return msString(s.shares.Timings().Session) },
		check: intRange(gcfgSession, 1000, 3_600_000),
		doc:   "A member that does not heartbeat for this long is removed and its records released."},
}

func groupConfigDefOf(name string) (groupConfigDef, bool) {
	for _, d := range groupConfigDefs {
		if d.name == name {
			return d, true
		}
	}
	return groupConfigDef{}, false
}

// groupConfigError explains an unknown group config.
func groupConfigError(name string) error {
	if strings.HasPrefix(name, "consumer.") || strings.HasPrefix(name, "streams.") {
		return fmt.Errorf("config %s: Spool offers classic consumer groups and share groups, not the groups this config is for", name)
	}
	return fmt.Errorf("config %s is not a group config Spool supports", name)
}

// shareSettingsOf turns a group's configs into settings; bad stored values
// (which validation keeps out) fall back to the defaults.
func (s *Server) shareSettingsOf(cfg map[string]string, now time.Time) kshare.Settings {
	tm := s.shares.Timings()
	st := kshare.Settings{
		Start:     catalog.Position{Kind: catalog.Earliest},
		Session:   tm.Session,
		Heartbeat: tm.Heartbeat,
	}
	ms := func(name string) time.Duration {
		n, err := strconv.ParseInt(cfg[name], 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Millisecond
	}
	if v, ok := cfg[gcfgOffsetReset]; ok {
		if p, err := parseShareReset(v, now); err == nil {
			st.Start = p
		}
	}
	st.Lock = ms(gcfgLock)
	if d := ms(gcfgSession); d > 0 {
		st.Session = d
	}
	if d := ms(gcfgHeartbeat); d > 0 {
		st.Heartbeat = d
	}
	return st
}

// loadShareSettings loads a group's settings; on a storage error or a
// record it cannot read it logs and uses the defaults (a heartbeat must not
// fail on them).
func (s *Server) loadShareSettings(group string) kshare.Settings {
	cfg, err := s.loadGroupConfigs(group)
	if err != nil {
		s.logger.Warn("reading a share group's configs failed; using defaults", "group", group, "err", err)
	}
	return s.shareSettingsOf(cfg, time.Now())
}

// parseShareReset parses share.auto.offset.reset.
func parseShareReset(v string, now time.Time) (catalog.Position, error) {
	switch v {
	case "earliest":
		return catalog.Position{Kind: catalog.Earliest}, nil
	case "latest":
		return catalog.Position{Kind: catalog.Latest}, nil
	}
	if d, ok := strings.CutPrefix(v, "by_duration:"); ok {
		dur, err := parseISODuration(d)
		if err != nil {
			return catalog.Position{}, fmt.Errorf("config %s: %v", gcfgOffsetReset, err)
		}
		return catalog.Position{Kind: catalog.AtTime, Time: now.Add(-dur)}, nil
	}
	return catalog.Position{}, fmt.Errorf("config %s: %q is not earliest, latest or by_duration:<ISO-8601 duration>", gcfgOffsetReset, v)
}

// parseISODuration parses a non-negative ISO-8601 duration of days, hours,
// minutes and (fractional) seconds, as Java's Duration.parse: PnDTnHnMn.nS.
func parseISODuration(v string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not an ISO-8601 duration such as PT1H or P1DT12H", v)
	rest, ok := strings.CutPrefix(strings.ToUpper(v), "P")
	if !ok || rest == "" || len(v) > 64 {
		return 0, bad
	}
	var total float64
	inTime := false
	units := 0
	for rest != "" {
		if rest[0] == 'T' {
			if inTime || len(rest) == 1 {
				return 0, bad
			}
			inTime = true
			rest = rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, bad
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, bad
		}
		var unit float64
		switch u := rest[i]; {
		case u == 'D' && !inTime:
			unit = 24 * 3600
		case u == 'H' && inTime:
			unit = 3600
		case u == 'M' && inTime:
			unit = 60
		case u == 'S' && inTime:
			unit = 1
		default:
			return 0, bad
		}
		if unit != 1 && strings.Contains(rest[:i], ".") {
			return 0, bad
		}
		total += n * unit
		units++
		rest = rest[i+1:]
	}
	if units == 0 || total > float64(100*365*24*3600) {
		return 0, bad
	}
	return time.Duration(total * float64(time.Second)), nil
}

// describeGroupConfigs lists a group's configs; names, if non-empty,
// selects some (unknown names are left out).
func (s *Server) describeGroupConfigs(group string, names []string) ([]describedConfig, error) {
	cfg, err := s.loadGroupConfigs(group)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []describedConfig
	for _, def := range groupConfigDefs {
		if len(names) > 0 && !want[def.name] {
			continue
		}
		dv := def.def(s)
		dc := describedConfig{name: def.name, value: dv, typ: def.typ, doc: def.doc, source: kmsg.ConfigSourceDefaultConfig}
		if v, ok := cfg[def.name]; ok {
			dc.value, dc.source = v, kmsg.ConfigSourceGroupConfig
			dc.synonyms = append(dc.synonyms, synonym(def.name, v, kmsg.ConfigSourceGroupConfig))
		}
		dc.synonyms = append(dc.synonyms, synonym("group."+def.name, dv, kmsg.ConfigSourceDefaultConfig))
		out = append(out, dc)
	}
	return out, nil
}

// alterGroupConfigs changes a group's configs (or only checks the changes,
// with validateOnly); reset first removes every config set (AlterConfigs
// replaces the whole set). It returns a Kafka error code and message.
func (s *Server) alterGroupConfigs(group string, ops []alterOp, reset, validateOnly bool) (int16, string) {
	if !kgroup.ValidID(group) {
		return kerr.InvalidGroupID.Code, fmt.Sprintf("%q is not a valid group name", group)
	}
	s.gcfgMu.Lock()
	defer s.gcfgMu.Unlock()
	cfg, err := s.loadGroupConfigs(group)
	if err != nil {
		return kwire.ErrCode(err), err.Error()
	}
	if reset {
		cfg = map[string]string{}
	}
	for _, o := range ops {
		def, ok := groupConfigDefOf(o.name)
		if !ok {
			return kerr.InvalidConfig.Code, groupConfigError(o.name).Error()
		}
		switch o.op {
		case kmsg.IncrementalAlterConfigOpSet:
			if o.value == nil {
				return kerr.InvalidConfig.Code, fmt.Sprintf("config %s: SET needs a value", o.name)
			}
			if err := def.check(*o.value); err != nil {
				return kerr.InvalidConfig.Code, err.Error()
			}
			cfg[o.name] = *o.value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(cfg, o.name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			return kerr.InvalidConfig.Code, fmt.Sprintf("config %s is not a list", o.name)
		default:
			return kerr.InvalidConfig.Code, fmt.Sprintf("config %s: unknown operation %d", o.name, o.op)
		}
	}
	st := s.shareSettingsOf(cfg, time.Now())
	if st.Heartbeat >= st.Session {
		return kerr.InvalidConfig.Code, fmt.Sprintf("%s (%d ms) must be below %s (%d ms)", gcfgHeartbeat, st.Heartbeat.Milliseconds(), gcfgSession, st.Session.Milliseconds())
	}
	if validateOnly {
		return 0, ""
	}
	if err := s.storeGroupConfigs(group, cfg); err != nil {
		return kwire.ErrCode(err), err.Error()
	}
	s.shares.ApplySettings(group, st)
	return 0, ""
}
