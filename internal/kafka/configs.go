package kafka

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

// applyConfigs applies Kafka topic configs to a Spool topic config.
func applyConfigs(cfg *catalog.TopicConfig, cs []kmsg.CreateTopicsRequestTopicConfig) error {
	for _, c := range cs {
		if c.Value == nil {
			continue
		}
		if err := applyConfig(cfg, c.Name, *c.Value); err != nil {
			return err
		}
	}
	return catalog.ValidateCatalogInfo(*cfg)
}

// Spool's own topic configs: a topic's schema binding (the subject its
// messages' values are validated against, and what an invalid message
// does) and its event-catalog description. spool.labels is a list of
// key=value pairs, comma-separated (kafka-configs.sh takes a list in
// brackets: --add-config 'spool.labels=[tier=1,pii=no]'); setting it
// replaces every label.
const (
	cfgSchemaSubject = "spool.schema.subject"
	cfgSchemaMode    = "spool.schema.mode"
	cfgOwner         = "spool.owner"
	cfgDescription   = "spool.description"
	cfgLabels        = "spool.labels"
)

// parseLabels reads spool.labels: "" is none; otherwise key=value pairs
// separated by commas, each key once.
func parseLabels(value string) (map[string]string, error) {
	if value == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("config %s: %q is not key=value", cfgLabels, kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("config %s: label %q given twice", cfgLabels, k)
		}
		out[k] = v
	}
	return out, nil
}

// labelsValue is labels as spool.labels: key=value pairs sorted by key,
// comma-separated.
func labelsValue(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// applyConfig sets one Kafka topic config.
func applyConfig(cfg *catalog.TopicConfig, name, value string) error {
	num := func() (int64, error) {
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("config %s: %q is not an integer", name, value)
		}
		return v, nil
	}
	switch name {
	case "retention.ms":
		v, err := num()
		if err != nil {
			return err
		}
		if v < 0 {
			cfg.Retention = 0 // -1: forever
		} else {
			cfg.Retention = time.Duration(v) * time.Millisecond
		}
	case "retention.bytes":
		v, err := num()
		if err != nil {
			return err
		}
		cfg.RetentionBytes = max(v, 0)
	case "max.message.bytes":
		v, err := num()
		if err != nil {
			return err
		}
		if v <= 0 || v > 64<<20 {
			return fmt.Errorf("config max.message.bytes: %d is outside [1, %d]", v, 64<<20)
		}
		cfg.MaxMessageBytes = int32(v)
	case "cleanup.policy":
		if value != "delete" {
			return fmt.Errorf("config cleanup.policy: only delete is supported")
		}
	case cfgSchemaSubject:
		cfg.SchemaSubject = value
	case cfgSchemaMode:
		m, err := catalog.ParseSchemaMode(value)
		if err != nil {
			return fmt.Errorf("config %s: %q: want reject or dead-letter", cfgSchemaMode, value)
		}
		cfg.SchemaMode = m
	case cfgOwner:
		cfg.Owner = value
	case cfgDescription:
		cfg.Description = value
	case cfgLabels:
		labels, err := parseLabels(value)
		if err != nil {
			return err
		}
		cfg.Labels = labels
	case "min.insync.replicas", "segment.bytes", "segment.ms", "compression.type", "message.timestamp.type", "unclean.leader.election.enable":
		// Accepted and ignored: a single node; segments and compression are
		// the server's.
	default:
		return fmt.Errorf("config %s is not supported", name)
	}
	return nil
}

// resetConfig sets one Kafka topic config back to the server default
// (IncrementalAlterConfigs DELETE, and the configs an AlterConfigs request
// leaves out).
func resetConfig(cfg *catalog.TopicConfig, name string, d catalog.Defaults) error {
	switch name {
	case "retention.ms":
		cfg.Retention = d.Retention
	case "retention.bytes":
		cfg.RetentionBytes = d.RetentionBytes
	case "max.message.bytes":
		cfg.MaxMessageBytes = d.MaxMessageBytes
	case cfgSchemaSubject:
		cfg.SchemaSubject = ""
	case cfgSchemaMode:
		cfg.SchemaMode = catalog.SchemaReject
	case cfgOwner:
		cfg.Owner = ""
	case cfgDescription:
		cfg.Description = ""
	case cfgLabels:
		cfg.Labels = nil
	case "cleanup.policy", "min.insync.replicas", "segment.bytes", "segment.ms", "compression.type", "message.timestamp.type", "unclean.leader.election.enable":
	default:
		return fmt.Errorf("config %s is not supported", name)
	}
	return nil
}

// resetConfigs sets every changeable topic config back to the server
// default (AlterConfigs replaces the whole set).
func resetConfigs(cfg *catalog.TopicConfig, d catalog.Defaults) {
	for _, name := range []string{"retention.ms", "retention.bytes", "max.message.bytes",
		cfgSchemaSubject, cfgSchemaMode, cfgOwner, cfgDescription, cfgLabels} {
		_ = resetConfig(cfg, name, d) // all known
	}
}

// topicConfigDef describes one topic config DescribeConfigs reports.
type topicConfigDef struct {
	name     string
	typ      kmsg.ConfigType
	readOnly bool   // fixed by Spool; AlterConfigs accepts only this value
	broker   string // the broker default's name (its synonym); "": none (Spool's own configs)
	value    func(c catalog.TopicConfig) string
	def      func(d catalog.Defaults) string
	doc      string
}

func constant(v string) func(catalog.TopicConfig) string {
	return func(catalog.TopicConfig) string { return v }
}
func constantDef(v string) func(catalog.Defaults) string {
	return func(catalog.Defaults) string { return v }
}

func retentionMs(d time.Duration) string {
	if d <= 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

func retentionBytes(n int64) string {
	if n <= 0 {
		return "-1"
	}
	return strconv.FormatInt(n, 10)
}

// topicConfigDefs are the topic configs Spool reports, sorted by name.
// retention.ms, retention.bytes and max.message.bytes map to the topic's
// Spool config and can be changed, as can Spool's own spool.* configs;
// cleanup.policy is always delete; the rest are fixed properties of a
// single Spool node, reported so that tools asking for them get true
// answers.
var topicConfigDefs = []topicConfigDef{
	{name: "cleanup.policy", typ: kmsg.ConfigTypeList, broker: "log.cleanup.policy",
		value: constant("delete"), def: constantDef("delete"),
		doc: "Spool deletes old segments (retention); log compaction is not supported."},
	{name: "compression.type", typ: kmsg.ConfigTypeString, readOnly: true, broker: "compression.type",
		value: constant("producer"), def: constantDef("producer"),
		doc: "Batches are stored as the producer compressed them."},
	{name: "max.message.bytes", typ: kmsg.ConfigTypeInt, broker: "message.max.bytes",
		value: func(c catalog.TopicConfig) string { return strconv.Itoa(int(c.MaxMessageBytes)) },
		def:   func(d catalog.Defaults) string { return strconv.Itoa(int(d.MaxMessageBytes)) },
		doc:   "The largest record batch the topic accepts."},
	{name: "message.timestamp.type", typ: kmsg.ConfigTypeString, readOnly: true, broker: "log.message.timestamp.type",
		value: constant("CreateTime"), def: constantDef("CreateTime"),
		doc: "Record timestamps are the producer's."},
	{name: "min.insync.replicas", typ: kmsg.ConfigTypeInt, readOnly: true, broker: "min.insync.replicas",
		value: constant("1"), def: constantDef("1"),
		doc: "A Spool node holds one replica of each partition."},
	{name: "retention.bytes", typ: kmsg.ConfigTypeLong, broker: "log.retention.bytes",
		value: func(c catalog.TopicConfig) string { return retentionBytes(c.RetentionBytes) },
		def:   func(d catalog.Defaults) string { return retentionBytes(d.RetentionBytes) },
		doc:   "Whole segments are deleted while a partition would still hold this many bytes without them; -1: no limit."},
	{name: "retention.ms", typ: kmsg.ConfigTypeLong, broker: "log.retention.ms",
		value: func(c catalog.TopicConfig) string { return retentionMs(c.Retention) },
		def:   func(d catalog.Defaults) string { return retentionMs(d.Retention) },
		doc:   "Whole segments whose newest record is older than this are deleted; -1: keep forever."},
	{name: cfgDescription, typ: kmsg.ConfigTypeString,
		value: func(c catalog.TopicConfig) string { return c.Description }, def: constantDef(""),
		doc: "Event catalog: what the topic's events mean."},
	{name: cfgLabels, typ: kmsg.ConfigTypeList,
		value: func(c catalog.TopicConfig) string { return labelsValue(c.Labels) }, def: constantDef(""),
		doc: "Event catalog: labels, key=value pairs separated by commas; setting them replaces every label."},
	{name: cfgOwner, typ: kmsg.ConfigTypeString,
		value: func(c catalog.TopicConfig) string { return c.Owner }, def: constantDef(""),
		doc: "Event catalog: the team that owns the topic."},
	{name: cfgSchemaMode, typ: kmsg.ConfigTypeString,
		value: func(c catalog.TopicConfig) string { return c.SchemaMode.String() }, def: constantDef(catalog.SchemaReject.String()),
		doc: "What a record whose value fails schema validation does: reject (the produce fails with INVALID_RECORD) or dead-letter (it goes to the topic dlq.<topic>)."},
	{name: cfgSchemaSubject, typ: kmsg.ConfigTypeString,
		value: func(c catalog.TopicConfig) string { return c.SchemaSubject }, def: constantDef(""),
		doc: "The schema registry subject every record's value is validated against; empty: none."},
	{name: "unclean.leader.election.enable", typ: kmsg.ConfigTypeBoolean, readOnly: true, broker: "unclean.leader.election.enable",
		value: constant("false"), def: constantDef("false"),
		doc: "A Spool node has no other replicas to elect."},
}

// describedConfig is one config entry of a DescribeConfigs answer.
type describedConfig struct {
	name, value string
	readOnly    bool
	source      kmsg.ConfigSource
	typ         kmsg.ConfigType
	doc         string
	synonyms    []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
}

// describeTopicConfigs lists a topic's configs; names, if non-empty,
// selects some (unknown names are left out, as in Kafka). rf is the
// partitions' replication factor (1 on a single node).
func describeTopicConfigs(c catalog.TopicConfig, d catalog.Defaults, names []string, rf int32) []describedConfig {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []describedConfig
	for _, def := range topicConfigDefs {
		if len(names) > 0 && !want[def.name] {
			continue
		}
		v, dv, doc := def.value(c), def.def(d), def.doc
		if def.name == "min.insync.replicas" && rf > 1 {
			v, dv, doc = minInsync(rf), minInsync(rf), minInsyncDoc
		}
		dc := describedConfig{name: def.name, value: v, readOnly: def.readOnly, typ: def.typ, doc: doc, source: kmsg.ConfigSourceDefaultConfig}
		if v != dv {
			dc.source = kmsg.ConfigSourceDynamicTopicConfig
			dc.synonyms = append(dc.synonyms, synonym(def.name, v, kmsg.ConfigSourceDynamicTopicConfig))
		}
		if def.broker != "" {
			dc.synonyms = append(dc.synonyms, synonym(def.broker, dv, kmsg.ConfigSourceDefaultConfig))
		}
		out = append(out, dc)
	}
	return out
}

// minInsync is min.insync.replicas of a partition with rf replicas: on a
// cluster a write is acknowledged once a majority of them holds it.
func minInsync(rf int32) string { return strconv.Itoa(int(rf/2 + 1)) }

const minInsyncDoc = "A write is acknowledged once a majority of the partition's replicas (its raft group) holds it."

func synonym(name, value string, src kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
	s.Name, s.Value, s.Source = name, &value, src
	return s
}

// describeBrokerConfigs lists the few broker configs Spool reports; all
// read-only.
func (s *Server) describeBrokerConfigs(names []string) []describedConfig {
	d := s.b.TopicDefaults()
	rf := s.replicationFactor()
	all := []describedConfig{
		{name: "auto.create.topics.enable", value: strconv.FormatBool(*s.cfg.AutoCreateTopics), typ: kmsg.ConfigTypeBoolean},
		{name: "broker.id", value: strconv.Itoa(int(s.cfg.NodeID)), typ: kmsg.ConfigTypeInt},
		{name: "default.replication.factor", value: strconv.Itoa(int(rf)), typ: kmsg.ConfigTypeInt},
		{name: "log.cleanup.policy", value: "delete", typ: kmsg.ConfigTypeList},
		{name: "log.retention.bytes", value: retentionBytes(d.RetentionBytes), typ: kmsg.ConfigTypeLong},
		{name: "log.retention.ms", value: retentionMs(d.Retention), typ: kmsg.ConfigTypeLong},
		{name: "message.max.bytes", value: strconv.Itoa(int(d.MaxMessageBytes)), typ: kmsg.ConfigTypeInt},
		{name: "min.insync.replicas", value: minInsync(rf), typ: kmsg.ConfigTypeInt},
		{name: "node.id", value: strconv.Itoa(int(s.cfg.NodeID)), typ: kmsg.ConfigTypeInt},
		{name: "num.partitions", value: strconv.Itoa(int(d.Partitions)), typ: kmsg.ConfigTypeInt},
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []describedConfig
	for _, c := range all {
		if len(names) > 0 && !want[c.name] {
			continue
		}
		c.readOnly, c.source = true, kmsg.ConfigSourceStaticBrokerConfig
		c.synonyms = []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{synonym(c.name, c.value, c.source)}
		out = append(out, c)
	}
	return out
}

// alterOp is one change of an IncrementalAlterConfigs or AlterConfigs
// request.
type alterOp struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

// applyAlterOps applies changes to a topic config.
func applyAlterOps(cfg *catalog.TopicConfig, ops []alterOp, d catalog.Defaults) error {
	for _, o := range ops {
		switch o.op {
		case kmsg.IncrementalAlterConfigOpSet:
			if o.value == nil {
				return fmt.Errorf("config %s: SET needs a value", o.name)
			}
			if err := applyConfig(cfg, o.name, *o.value); err != nil {
				return err
			}
		case kmsg.IncrementalAlterConfigOpDelete:
			if err := resetConfig(cfg, o.name, d); err != nil {
				return err
			}
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if o.name != "cleanup.policy" {
				return fmt.Errorf("config %s is not a list", o.name)
			}
			if o.value == nil || *o.value != "delete" || o.op == kmsg.IncrementalAlterConfigOpSubtract {
				return fmt.Errorf("config cleanup.policy: only delete is supported")
			}
		default:
			return fmt.Errorf("config %s: unknown operation %d", o.name, o.op)
		}
	}
	return nil
}

// alterTopicConfigs changes a topic's configs (or only checks the changes,
// with validateOnly). reset first sets every changeable config back to its
// default (AlterConfigs replaces the whole set). It returns a Kafka error
// code and message.
func (s *Server) alterTopicConfigs(topic string, ops []alterOp, reset, validateOnly bool) (int16, string) {
	d := s.b.TopicDefaults()
	var applyErr error
	update := func(c *catalog.TopicConfig) error {
		if reset {
			resetConfigs(c, d)
		}
		applyErr = applyAlterOps(c, ops, d)
		return applyErr
	}
	if validateOnly {
		meta, ok := s.b.Topic(topic)
		if !ok {
			return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %q not found", topic)
		}
		cfg := meta.Config
		if err := update(&cfg); err != nil {
			return kerr.InvalidConfig.Code, err.Error()
		}
		if err := cfg.Validate(); err != nil {
			return kerr.InvalidConfig.Code, err.Error()
		}
		if err := catalog.ValidateCatalogInfo(cfg); err != nil {
			return kerr.InvalidConfig.Code, err.Error()
		}
		return 0, ""
	}
	_, err := s.b.UpdateTopicConfig(topic, update)
	switch {
	case err == nil:
		return 0, ""
	case applyErr != nil:
		return kerr.InvalidConfig.Code, applyErr.Error()
	case errs.Is(err, errs.TopicNotFound):
		return kerr.UnknownTopicOrPartition.Code, err.Error()
	case errs.Is(err, errs.InvalidArgument):
		return kerr.InvalidConfig.Code, err.Error()
	}
	return kwire.ErrCode(err), err.Error()
}
