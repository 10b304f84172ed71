package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/client"
)

// topicFlags are the config flags of `spool topic create` and `spool topic
// alter`.
type topicFlags struct {
	cfg                                   client.TopicConfig
	retention, dedupWindow, ttl           daysValue
	retentionBytes, maxBytes, maxMsgBytes bytesize.Size
	discard, durability, schemaMode       string
	labels                                []string
	clearLabels                           bool
}

// topicFlagFields maps each flag to the topic setting it changes.
var topicFlagFields = []struct {
	flag  string
	field client.TopicField
}{
	{"retention", client.TopicFieldRetention},
	{"retention-bytes", client.TopicFieldRetentionBytes},
	{"max-messages", client.TopicFieldMaxMessages},
	{"max-bytes", client.TopicFieldMaxBytes},
	{"discard", client.TopicFieldDiscard},
	{"dedup-window", client.TopicFieldDedupWindow},
	{"ttl", client.TopicFieldMessageTTL},
	{"durability", client.TopicFieldDurability},
	{"max-message-bytes", client.TopicFieldMaxMessageBytes},
	{"work-queue", client.TopicFieldWorkQueue},
	{"schema", client.TopicFieldSchemaSubject},
	{"schema-mode", client.TopicFieldSchemaMode},
	{"owner", client.TopicFieldOwner},
	{"description", client.TopicFieldDescription},
	{"label", client.TopicFieldLabels},
	{"clear-labels", client.TopicFieldLabels},
}

// register adds the flags to f; alter words their help for `topic alter`,
// where a flag given with 0 returns the setting to the server's default.
func (tf *topicFlags) register(f *pflag.FlagSet, alter bool) {
	help := func(create, change string) string {
		if alter {
			return change
		}
		return create
	}
	f.Var(&tf.retention, "retention", help("delete whole segments older than this (default: keep forever)",
		"delete whole segments older than this; 0: the server's default (keep forever)"))
	f.Var(&tf.retentionBytes, "retention-bytes", help("keep at most this many bytes per partition, oldest segments deleted first (default: no limit)",
		"keep at most this many bytes per partition, oldest segments deleted first; 0: no limit"))
	f.Int64Var(&tf.cfg.MaxMessages, "max-messages", 0, help("bound on the messages stored in the topic (default: no limit); see --discard",
		"bound on the messages stored in the topic; 0: no limit; see --discard"))
	f.Var(&tf.maxBytes, "max-bytes", help("bound on the bytes stored in the topic (default: no limit); see --discard",
		"bound on the bytes stored in the topic; 0: no limit; see --discard"))
	f.Var(newEnum(&tf.discard, "", "old", "new"), "discard", "what a full topic (--max-messages, --max-bytes) does: old drops the oldest segments, new rejects publishes with topic_full"+
		help(" (server default: old)", ""))
	f.Var(&tf.dedupWindow, "dedup-window", help("how long message ids are remembered to drop duplicates (server default: 2m)",
		"how long message ids are remembered to drop duplicates; 0: the server's default (2m)"))
	f.Var(&tf.ttl, "ttl", help("expire messages this long after publishing (default: never)",
		"expire messages this long after publishing (those queue subscriptions read from now on); 0: never"))
	f.Var(newEnum(&tf.durability, "", "always", "interval", "none"), "durability", help(
		"when publishes are acknowledged: always (after fsync), interval or none (these two can lose acknowledged data on power loss) (server default: always)",
		"cannot change after creation: the server refuses a value other than the topic's"))
	f.Var(&tf.maxMsgBytes, "max-message-bytes", help("largest key + value + headers accepted (server default: 1MiB)",
		"largest key + value + headers accepted; 0: the server's default (1MiB)"))
	f.BoolVar(&tf.cfg.WorkQueue, "work-queue", false, help(
		"work-queue retention: delete whole segments once every queue subscription has finished their messages",
		"work-queue retention on (--work-queue) or off (--work-queue=false)"))
	f.StringVar(&tf.cfg.SchemaSubject, "schema", "", help(
		"schema registry `SUBJECT` every message's value is validated against (default: none)",
		"schema registry `SUBJECT` every message's value is validated against; \"\": none (unbinds the topic)"))
	f.Var(newEnum(&tf.schemaMode, "", "reject", "dead-letter"), "schema-mode", "what a message failing schema validation does: reject refuses the publish, dead-letter writes it to the topic dlq.TOPIC instead"+
		help(" (default: reject)", ""))
	f.StringVar(&tf.cfg.Owner, "owner", "", help("event catalog: the `TEAM` that owns the topic",
		"event catalog: the `TEAM` that owns the topic; \"\": none"))
	f.StringVar(&tf.cfg.Description, "description", "", help("event catalog: `TEXT` saying what the topic's events mean",
		"event catalog: `TEXT` saying what the topic's events mean; \"\": none"))
	f.StringArrayVar(&tf.labels, "label", nil, help("event catalog: a label `key=value` (repeatable)",
		"event catalog: a label `key=value` (repeatable); the labels given replace all the topic's labels"))
	if alter {
		f.BoolVar(&tf.clearLabels, "clear-labels", false, "remove all the topic's labels")
	}
}

// parseLabels parses --label key=value flags: keys not empty, each given
// once.
func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("label %q is not key=value", kv)
		case k == "":
			return nil, fmt.Errorf("label %q has an empty key", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// config checks the flags of cmd and returns the topic config they give
// and the settings named by the flags given.
func (tf *topicFlags) config(cmd *cobra.Command) (client.TopicConfig, []client.TopicField, error) {
	for _, d := range []struct {
		flag string
		d    daysValue
	}{{"retention", tf.retention}, {"dedup-window", tf.dedupWindow}, {"ttl", tf.ttl}} {
		if d.d < 0 {
			return client.TopicConfig{}, nil, usageErrorf(cmd, "--%s: must not be negative", d.flag)
		}
	}
	if tf.cfg.MaxMessages < 0 {
		return client.TopicConfig{}, nil, usageErrorf(cmd, "--max-messages: must not be negative")
	}
	if tf.maxMsgBytes > math.MaxInt32 {
		return client.TopicConfig{}, nil, usageErrorf(cmd, "--max-message-bytes: too large")
	}
	cfg := tf.cfg
	cfg.Retention, cfg.DedupWindow, cfg.MessageTTL = time.Duration(tf.retention), time.Duration(tf.dedupWindow), time.Duration(tf.ttl)
	cfg.RetentionBytes, cfg.MaxBytes = int64(tf.retentionBytes), int64(tf.maxBytes)
	cfg.MaxMessageBytes = int32(tf.maxMsgBytes)
	cfg.Discard = map[string]client.Discard{"": client.DiscardDefault, "old": client.DiscardOld, "new": client.DiscardNew}[tf.discard]
	cfg.Durability = map[string]client.Durability{"": client.DurabilityDefault, "always": client.DurabilityAlways,
		"interval": client.DurabilityInterval, "none": client.DurabilityNone}[tf.durability]
	cfg.SchemaMode = map[string]client.SchemaMode{"": client.SchemaModeDefault, "reject": client.SchemaModeReject,
		"dead-letter": client.SchemaModeDeadLetter}[tf.schemaMode]
	if tf.clearLabels && len(tf.labels) > 0 {
		return client.TopicConfig{}, nil, usageErrorf(cmd, "--clear-labels and --label: give one (--label alone replaces all the labels)")
	}
	labels, err := parseLabels(tf.labels)
	if err != nil {
		return client.TopicConfig{}, nil, usageErrorf(cmd, "--label: %v", err)
	}
	cfg.Labels = labels
	var fields []client.TopicField
	for _, ff := range topicFlagFields {
		if cmd.Flags().Changed(ff.flag) && !slices.Contains(fields, ff.field) {
			fields = append(fields, ff.field)
		}
	}
	return cfg, fields, nil
}

func newTopicAlterCmd() *cobra.Command {
	var tf topicFlags
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Change a topic's configuration",
		Long: "Change a topic's configuration while it is in use: only the settings given change, and\n" +
			"they apply at once (retention at the next maintenance pass, within a second). A setting\n" +
			"given as 0 returns to the server's default. The partition count grows with\n" +
			"`spool topic add-partitions`; durability cannot change after creation.\n" +
			"--label replaces all the topic's labels with those given; --clear-labels removes them.\n" +
			"Sizes are a number of bytes, optionally with a unit: 1048576, 512KiB, 64MiB, 10GB.\n" +
			"Durations are Go durations or a number of days: 90s, 30m, 168h, 7d, 1d12h.",
		Example: "  spool topic alter orders --retention 7d\n" +
			"  spool topic alter orders --max-bytes 10GiB --discard new\n" +
			"  spool topic alter orders --retention 0            # back to the server's default\n" +
			"  spool topic alter orders --schema orders-value --schema-mode dead-letter\n" +
			"  spool topic alter orders --owner payments --label tier=1 --label pii=no",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, fields, err := tf.config(cmd)
			if err != nil {
				return err
			}
			if len(fields) == 0 {
				return usageErrorf(cmd, "nothing to change: give at least one setting (see --help)")
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				t, err := c.AlterTopic(ctx, args[0], cfg, fields...)
				if err != nil {
					return err
				}
				changes := make([]string, len(fields))
				for i, f := range fields {
					changes[i] = topicSettingText(t.Config, f)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "altered topic %s: %s\n", t.Name, strings.Join(changes, ", "))
				return nil
			})
		},
	}
	tf.register(cmd.Flags(), true)
	return cmd
}

// topicSettingText formats one setting of a topic's effective config as
// "flag value".
func topicSettingText(c client.TopicConfig, f client.TopicField) string {
	var v string
	switch f {
	case client.TopicFieldRetention:
		v = textDuration(c.Retention, "forever")
	case client.TopicFieldRetentionBytes:
		v = textLimit(c.RetentionBytes)
	case client.TopicFieldMaxMessages:
		v = textLimit(c.MaxMessages)
	case client.TopicFieldMaxBytes:
		v = textLimit(c.MaxBytes)
	case client.TopicFieldDiscard:
		v = c.Discard.String()
	case client.TopicFieldDedupWindow:
		v = textDuration(c.DedupWindow, "default")
	case client.TopicFieldMessageTTL:
		v = textDuration(c.MessageTTL, "never")
	case client.TopicFieldDurability:
		v = c.Durability.String()
	case client.TopicFieldMaxMessageBytes:
		v = textLimit(int64(c.MaxMessageBytes))
	case client.TopicFieldWorkQueue:
		v = textYesNo(c.WorkQueue)
	case client.TopicFieldSchemaSubject:
		v = orNone(c.SchemaSubject)
	case client.TopicFieldSchemaMode:
		v = c.SchemaMode.String()
	case client.TopicFieldOwner:
		v = orNone(c.Owner)
	case client.TopicFieldDescription:
		v = textDescription(c.Description)
	case client.TopicFieldLabels:
		return "labels " + textLabels(c.Labels)
	}
	for _, ff := range topicFlagFields {
		if ff.field == f {
			return ff.flag + " " + v
		}
	}
	return string(f) + " " + v
}

// orNone is s, or "none" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// textDescription is a topic's description on one line: quoted if it
// holds line breaks or other control characters, "none" if empty.
func textDescription(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return orNone(s)
}

// textLabels is labels as "k=v, k2=v2" sorted by key, or "none".
func textLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ", ")
}

func textYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newTopicAddPartitionsCmd() *cobra.Command {
	var n int32
	cmd := &cobra.Command{
		Use:   "add-partitions NAME --partitions N",
		Short: "Add partitions to a topic",
		Long: "Grow a topic to N partitions (the new total; partitions can only be added, up to 1024).\n" +
			"Every subscription receives the new partitions from their first message; running\n" +
			"consumers get them without restarting. Keyed messages go to murmur2(key) mod the\n" +
			"number of partitions, so a key's later messages may land in another partition than\n" +
			"its earlier ones: per-key order holds only within each partition.",
		Example: "  spool topic add-partitions orders --partitions 6",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("partitions") {
				return usageErrorf(cmd, "--partitions is required")
			}
			if n < 1 {
				return usageErrorf(cmd, "--partitions: the new total number of partitions, at least 1")
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				t, err := c.AddPartitions(ctx, args[0], n)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "topic %s now has %s\n", t.Name, plural(int(t.Config.Partitions), "partition"))
				return nil
			})
		},
	}
	cmd.Flags().Int32Var(&n, "partitions", 0, "the new number of partitions, `N` (more than the topic has; required)")
	return cmd
}

// daysValue is a duration flag that takes Go durations ("90s", "30m",
// "168h") and a leading number of days ("7d", "1d12h").
type daysValue time.Duration

func (d *daysValue) String() string {
	if *d == 0 {
		return "0" // shown as no default in help
	}
	return time.Duration(*d).String()
}
func (d *daysValue) Type() string { return "duration" }

func (d *daysValue) Set(s string) error {
	v, err := parseDays(s)
	if err != nil {
		return err
	}
	*d = daysValue(v)
	return nil
}

// maxDays is the most days a duration holds (time.Duration's range).
const maxDays = math.MaxInt64 / int64(24*time.Hour)

// parseDays parses a Go duration, optionally starting with a whole number
// of days: "7d", "1d12h", "-2d", "90s".
func parseDays(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(t, "-")
	days, rest, ok := strings.Cut(t, "d")
	if !ok {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (such as 90s, 30m, 168h or 7d)", s)
		}
		return d, nil
	}
	n, err := strconv.ParseInt(days, 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(days, "+") || strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
		return 0, fmt.Errorf("%q is not a duration (such as 90s, 30m, 168h, 7d or 1d12h)", s)
	}
	var extra time.Duration
	if rest != "" {
		if extra, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("%q is not a duration (such as 90s, 30m, 168h, 7d or 1d12h)", s)
		}
	}
	if n > maxDays || time.Duration(n)*24*time.Hour > math.MaxInt64-extra {
		return 0, fmt.Errorf("%q is too long", s)
	}
	d := time.Duration(n)*24*time.Hour + extra
	if neg {
		d = -d
	}
	return d, nil
}
